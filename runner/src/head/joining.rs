//! The HTTP edge of node trust (`state/trust.rs`): join tokens for admins, the join itself,
//! and which node a connection's certificate names.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::{Extension, Json};
use gangway_api::tokens::{JoinToken, JoinTokenAddParameter, NodeJoinParameter, NodeJoinResult};
use gangway_api::{ListResponse, Timestamp};

use super::error::{parse_body, ApiError};
use super::identity::{Caller, Connection};
use super::state::resources::admins_only;
use super::{auth, Head};

/// `POST /jointokens` (admins): a join token, shown once.
pub async fn add(
    State(head): State<Arc<Head>>,
    Extension(who): Extension<Caller>,
    body: Bytes,
) -> Result<(StatusCode, Json<JoinToken>), ApiError> {
    if !who.admin || who.by_job {
        return Err(admins_only("make join tokens"));
    }
    let p: JoinTokenAddParameter =
        if body.iter().all(u8::is_ascii_whitespace) { Default::default() } else { parse_body(&body)? };
    let (id, secret) = (random(8)?, random(32)?);
    let token = head.apply_durable(|st, fx| st.add_join_token(p, id, &secret, fx)).await?;
    Ok((StatusCode::CREATED, Json(token)))
}

/// `GET /jointokens` (admins): the join tokens still usable, without their secrets.
pub async fn list(
    State(head): State<Arc<Head>>,
    Extension(who): Extension<Caller>,
) -> Result<Json<ListResponse<JoinToken>>, ApiError> {
    if !who.admin {
        return Err(admins_only("list join tokens"));
    }
    Ok(Json(ListResponse { value: head.read(|st| st.join_tokens(Timestamp::now())), next_link: None }))
}

/// `POST /nodes/join`, with a join token: the node's certificate, for the public key it sent.
pub async fn join(
    State(head): State<Arc<Head>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<NodeJoinResult>), ApiError> {
    let presented = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let Some((id, secret)) = auth::bearer(presented).and_then(gangway_api::tokens::split_join_token) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "AuthenticationFailed",
            "joining needs a join token (Authorization: Bearer gwn_…, from `gangway node join-token`)",
        ));
    };
    let p: NodeJoinParameter = parse_body(&body)?;
    let key = p
        .public_key_bytes()
        .ok_or_else(|| ApiError::invalid("publicKey must be hex (an uncompressed P-256 public key)"))?;
    let certificate = head
        .apply_durable(|st, fx| st.join_node(id, secret, &p.name, || head.ca.issue_node(&p.name, &key), fx))
        .await?;
    Ok((StatusCode::CREATED, Json(NodeJoinResult { certificate, ca: head.ca.ca_pem().to_owned() })))
}

/// The node whose certificate the connection presented: None without one, else the node or
/// why its certificate is refused (not issued here, revoked).
pub fn node_of(head: &Head, conn: Option<&Connection>) -> Option<Result<String, ApiError>> {
    let fp = conn?.node_cert.as_deref()?;
    Some(
        head.read(|st| st.node_of_cert(fp).map(str::to_owned))
            .map_err(|why| ApiError::new(StatusCode::UNAUTHORIZED, "AuthenticationFailed", why)),
    )
}

fn random(n: usize) -> Result<String, ApiError> {
    gangway_api::common::random_hex(n).map_err(|e| {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", format!("reading /dev/urandom: {e}"))
    })
}
