//! `client-request-id` on mutating calls (Azure Batch's header): the head does such a call
//! once. A repeat of the same id by the same caller gets the first answer again (a client
//! that lost the answer, or saw the head restart, retries safely); the id on a different
//! request is refused with 409; an id that is not a UUID's shape with 400. A call that
//! creates what the server names (a Slurm submission) remembers its answer in the same commit
//! as the change ([`Recorded`]), as do the Azure adds (jobs, tasks, task collections, pools,
//! schedules: [`in_the_same_commit`]); the others are remembered in the commit right after.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use gangway_api::client::{valid_request_id, REQUEST_ID_HEADER};
use gangway_api::Timestamp;

use super::error::ApiError;
use super::identity::Caller;
use super::state::requests::Remembered;
use super::Head;

/// What a handler learns of the request id it serves, to remember its answer itself.
#[derive(Debug, Clone)]
pub struct RequestOnce {
    /// `UID:ID`.
    pub key: String,
    /// The request's digest.
    pub digest: String,
}

impl RequestOnce {
    /// The record of `answer`, given now with status 200.
    pub fn record(&self, answer: &impl serde::Serialize) -> Remembered {
        Remembered {
            key: self.key.clone(),
            digest: self.digest.clone(),
            status: 200,
            body: serde_json::to_string(answer).expect("answers serialize"),
            at_ms: Timestamp::now().0.max(0) as u64 / 1000,
        }
    }
}

impl RequestOnce {
    /// The record of an answer with `status` and no body.
    pub fn record_status(&self, status: StatusCode) -> Remembered {
        Remembered { status: status.as_u16(), body: String::new(), ..self.record(&()) }
    }
}

/// Marks a response whose handler remembered it already (in the commit of its change).
#[derive(Debug, Clone, Copy)]
pub struct Recorded;

/// What a handler gets of its call's request id, if it has one.
pub type Once = Option<axum::Extension<RequestOnce>>;

/// Makes `change` and, for a call with a request id, remembers its answer (`status`, no body)
/// in the same commit: a head that dies after the commit still gives a retry this answer
/// (not `…Exists`).
pub async fn in_the_same_commit<E>(
    head: &Arc<Head>,
    once: &Once,
    status: StatusCode,
    change: impl FnOnce(&mut super::state::HeadState, &mut super::state::Effects) -> Result<(), E>,
) -> Result<Response, E> {
    head.apply_durable(|st, fx| {
        let r = change(st, fx);
        if let (Ok(()), Some(o)) = (&r, once) {
            st.remember(o.record_status(status), fx);
        }
        r
    })
    .await?;
    Ok(recorded(status.into_response(), once))
}

/// `resp`, marked remembered when the call had a request id (its handler remembered it).
pub fn recorded(mut resp: Response, once: &Once) -> Response {
    if once.is_some() {
        resp.extensions_mut().insert(Recorded);
    }
    resp
}

/// Takes the id out of the in-flight set when the call ends, however it ends.
struct InFlight(Arc<Head>, String);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.requests_in_flight.lock().expect("lock").remove(&self.1);
    }
}

/// Calls whose answer holds a secret shown once (an API token, a join token): never stored,
/// so a repeat of one of these makes another secret rather than showing the first again.
const SECRET_ANSWERS: [&str; 2] = ["/tokens", "/jointokens"];

/// The middleware (inside `identify`, so the caller is known).
pub async fn once(State(head): State<Arc<Head>>, req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD) || SECRET_ANSWERS.contains(&req.uri().path()) {
        return next.run(req).await;
    }
    let Some(value) = req.headers().get(REQUEST_ID_HEADER) else { return next.run(req).await };
    let id = match value.to_str() {
        Ok(s) if valid_request_id(s) => s.to_owned(),
        _ => {
            let shown = String::from_utf8_lossy(value.as_bytes()).into_owned();
            return ApiError::invalid(format!(
                "{REQUEST_ID_HEADER} '{shown}' is not a request id: it must be a UUID (8-4-4-4-12 hex digits)"
            ))
            .into_response();
        }
    };
    let uid = req.extensions().get::<Caller>().map_or(u32::MAX, |c| c.uid);
    let key = format!("{uid}:{id}");
    let what = format!("{} {}\n", req.method(), req.uri().path_and_query().map_or("", |p| p.as_str()));
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, super::routes::MAX_BODY).await {
        Ok(b) => b,
        Err(e) => return ApiError::invalid(format!("reading the request body: {e}")).into_response(),
    };
    let digest = gangway_api::sha256::hex_digest(&[what.as_bytes(), &bytes].concat());
    // In flight first, then remembered: a repeat that arrives while the first is being done
    // is told to come back (503, which clients retry) rather than doing it twice.
    if !head.requests_in_flight.lock().expect("lock").insert(key.clone()) {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "RequestInProgress",
            format!("the request with {REQUEST_ID_HEADER} {id} is still being done; try again"),
        )
        .into_response();
    }
    let _in_flight = InFlight(head.clone(), key.clone());
    if let Some(r) = head.read(|st| st.remembered(&key).cloned()) {
        return replay(&r, &digest, &id);
    }
    let mut req = Request::from_parts(parts, Body::from(bytes));
    req.extensions_mut().insert(RequestOnce { key: key.clone(), digest: digest.clone() });
    let resp = next.run(req).await;
    if !resp.status().is_success() || resp.extensions().get::<Recorded>().is_some() {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", "reading the answer").into_response();
    };
    let rec = Remembered {
        key,
        digest,
        status: parts.status.as_u16(),
        body: String::from_utf8_lossy(&bytes).into_owned(),
        at_ms: Timestamp::now().0.max(0) as u64 / 1000,
    };
    head.apply_durable(|st, fx| st.remember(rec, fx)).await;
    Response::from_parts(parts, Body::from(bytes))
}

/// The first answer to a repeated request, or 409 when the id came with another request.
fn replay(r: &Remembered, digest: &str, id: &str) -> Response {
    if r.digest != digest {
        return ApiError::new(
            StatusCode::CONFLICT,
            "RequestIdReused",
            format!("{REQUEST_ID_HEADER} {id} was already used for a different request"),
        )
        .into_response();
    }
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::OK);
    let mut resp = (status, r.body.clone()).into_response();
    if !r.body.is_empty() {
        resp.headers_mut().insert(header::CONTENT_TYPE, "application/json".parse().expect("a header value"));
    }
    resp
}
