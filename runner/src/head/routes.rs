//! The REST routes: thin handlers that parse, call [`HeadState`](super::HeadState), and answer.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use gangway_api::*;

use super::error::{parse_body, ApiError};
use super::identity::{self, Caller, Connection};
use super::listing::{
    page, select_list, select_one, JOB_FIELDS, NODE_COUNT_FIELDS, NODE_FIELDS, POOL_FIELDS, SCHEDULE_FIELDS,
    TASK_FIELDS,
};
use super::requests::{in_the_same_commit, recorded, Once};
use super::state::resources::{admins_only, job_not_found, node_not_found, pool_not_found, task_not_found};
use super::state::{HeadState, JobRec};
use super::{auth, files, launcher, privacy, uploads, Head};
use serde_json::Value;

type H = State<Arc<Head>>;
/// Who is calling (set by [`identify`]).
type Who = axum::Extension<Caller>;
type Q = Query<HashMap<String, String>>;
type ApiResult<T> = Result<T, ApiError>;

/// Most tasks one `addtaskcollection` call may carry.
pub const MAX_COLLECTION: usize = 100;

/// Every route; all but `/openapi.json` and the launcher stream need a caller: the admin
/// token, or a peer on the Unix socket (`/files` checks the token itself: launchers may read
/// stored files with the cluster secret).
pub fn router(head: Arc<Head>) -> Router {
    let api = Router::new()
        .route("/pools", get(list_pools).post(add_pool))
        .route("/pools/{pool}", get(get_pool).delete(delete_pool))
        .route("/pools/{pool}/nodes", get(list_pool_nodes))
        .route("/pools/{pool}/nodes/{node}", get(get_pool_node))
        .route("/pools/{pool}/nodes/{node}/files", get(files::list_node_files))
        .route("/pools/{pool}/nodes/{node}/files/{*path}", get(files::get_node_file).delete(files::delete_node_file))
        .route("/pools/{pool}/nodes/{node}/disablescheduling", post(disable_pool_node_scheduling))
        .route("/pools/{pool}/nodes/{node}/enablescheduling", post(enable_pool_node_scheduling))
        .route("/pools/{pool}/removenodes", post(remove_nodes))
        .route("/nodes", get(list_nodes))
        .route("/nodecounts", get(node_counts))
        .route("/nodes/{node}", get(get_node))
        .route("/nodes/{node}/disablescheduling", post(disable_node_scheduling))
        .route("/nodes/{node}/enablescheduling", post(enable_node_scheduling))
        .route("/jobs", get(list_jobs).post(add_job))
        .route("/jobs/{job}", get(get_job).delete(delete_job).patch(patch_job).put(update_job))
        .route("/jobs/{job}/terminate", post(terminate_job))
        .route("/jobs/{job}/disable", post(disable_job))
        .route("/jobs/{job}/enable", post(enable_job))
        .route("/jobs/{job}/taskcounts", get(task_counts))
        .route("/jobs/{job}/jobpreparationandreleasetaskstatus", get(prep_release_status))
        .route("/jobs/{job}/tasks", get(list_tasks).post(add_task))
        .route("/jobs/{job}/addtaskcollection", post(add_task_collection))
        .route("/jobs/{job}/tasks/{task}", get(get_task).put(update_task).delete(delete_task))
        .route("/jobs/{job}/tasks/{task}/terminate", post(terminate_task))
        .route("/jobs/{job}/tasks/{task}/reactivate", post(reactivate_task))
        .route("/jobs/{job}/tasks/{task}/subtasksinfo", get(subtasks_info))
        .route("/jobs/{job}/tasks/{task}/files", get(files::list_task_files))
        .route("/jobs/{job}/tasks/{task}/files/{*path}", get(files::get_task_file).delete(files::delete_task_file))
        .route("/jobschedules", get(list_schedules).post(add_schedule))
        .route(
            "/jobschedules/{id}",
            get(get_schedule).patch(patch_schedule).put(update_schedule).delete(delete_schedule),
        )
        .route("/jobschedules/{id}/{action}", post(schedule_action))
        .route("/tokens", get(list_tokens).post(add_token))
        .route("/tokens/{id}", axum::routing::delete(revoke_token))
        .route("/jointokens", get(super::joining::list).post(super::joining::add))
        .route("/metrics", get(metrics))
        .merge(super::slurm_routes::router())
        .route_layer(middleware::from_fn_with_state(head.clone(), super::requests::once))
        .route_layer(middleware::from_fn_with_state(head.clone(), writable))
        .route_layer(middleware::from_fn_with_state(head.clone(), identify))
        .route_layer(middleware::from_fn(bounded_body))
        .route_layer(middleware::from_fn_with_state(head.clone(), bounded_time))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY));
    Router::new()
        .route("/openapi.json", get(openapi))
        .route(gangway_api::messages::LAUNCHER_PATH, get(launcher::upgrade))
        // A join done once per request id: a node whose answer was lost asks again with the
        // same id and key and gets the same certificate, its single-use token not spent twice.
        .route(
            "/nodes/join",
            axum::routing::post(super::joining::join)
                .route_layer(middleware::from_fn_with_state(head.clone(), super::requests::once)),
        )
        .route("/files", get(uploads::list_files))
        .route("/files/{name}", get(uploads::get_file).put(uploads::put_file).delete(uploads::delete_file))
        .route("/applications", get(super::applications::list))
        .route("/applications/{id}", get(super::applications::get).patch(super::applications::patch))
        .route(
            "/applications/{id}/versions/{version}",
            axum::routing::put(super::applications::put_version).delete(super::applications::delete_version),
        )
        .route("/applications/{id}/versions/{version}/content", get(super::applications::content))
        .merge(api)
        .fallback(|| async {
            ApiError::not_found("ResourceNotFound", "no such resource; see /openapi.json for the API")
        })
        .with_state(head)
}

/// The largest request body a call takes (uploads stream to the file store, with their own
/// limit): Slurm's default `max_script_size` is 4 MiB, and a script travels with its
/// environment.
pub const MAX_BODY: usize = 8 << 20;

/// Refuses, in Azure's shape, a body its `Content-Length` says is over [`MAX_BODY`] (one
/// without it is cut at the limit by the router).
async fn bounded_body(req: Request, next: Next) -> Response {
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if let Some(n) = declared.filter(|n| *n > MAX_BODY as u64) {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestBodyTooLarge",
            format!("the request body is {n} bytes; a call takes at most {MAX_BODY} (8 MiB)"),
        )
        .into_response();
    }
    next.run(req).await
}

/// `GET /metrics`: Prometheus' text format.
async fn metrics(State(head): H) -> Response {
    let store =
        super::metrics::StoreFacts { failing: head.store.failing().is_some(), commits: head.store.commit_seconds() };
    let text = head.read(|st| super::metrics::render(st, &store, gangway_api::out::dropped()));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}

/// Refuses a change (503, which clients retry) while the state store cannot write: what it
/// would change could not be made durable. Reads go on from memory.
async fn writable(State(head): H, req: Request, next: Next) -> Response {
    if !matches!(*req.method(), axum::http::Method::GET | axum::http::Method::HEAD) {
        if let Some(why) = head.store.failing() {
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "StateStoreUnavailable",
                format!("the head cannot write its state ({why}); changes are refused until it can, reads still work"),
            )
            .into_response();
        }
    }
    next.run(req).await
}

/// Answers a call that takes longer than `--request-timeout` with Azure's `OperationTimedOut`
/// (a change it made may still take effect), so a stuck node or store never holds a client.
async fn bounded_time(State(head): H, req: Request, next: Next) -> Response {
    match tokio::time::timeout(head.request_timeout, next.run(req)).await {
        Ok(r) => r,
        Err(_) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "OperationTimedOut",
            format!(
                "the call did not finish within {:?} (--request-timeout); a change it asked for may still take effect",
                head.request_timeout
            ),
        )
        .into_response(),
    }
}

/// Finds who is calling ([`Caller`], a request extension for the handlers): the admin token
/// makes an admin; a MUNGE credential (`Authorization: Munge …`, decoded by the local munged)
/// names its user; a user's API token (`gwt_…`) acts as its owner until it expires; without
/// a token, a Unix-socket peer is the user the kernel named; over TCP a call without a token
/// is refused.
async fn identify(State(head): H, mut req: Request, next: Next) -> Response {
    let conn = req.extensions().get::<Connection>().cloned();
    match caller(&head, req.headers(), conn.as_ref()).await {
        Ok(caller) => {
            if let Some(job) = &caller.scope {
                if !within_scope(job, req.method().as_str(), req.uri().path()) {
                    return ApiError::new(
                        StatusCode::FORBIDDEN,
                        "AuthorizationFailure",
                        format!("a job manager's credential may only add and read the tasks of job {job}"),
                    )
                    .into_response();
                }
            }
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}

/// What a job manager's credential for `job` may do: read the job and its task counts, list
/// and add its tasks, read a task, its files and subtasks.
fn within_scope(job: &str, method: &str, path: &str) -> bool {
    let parts: Vec<String> = path.trim_matches('/').split('/').map(percent_decode).collect();
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    match (method, parts.as_slice()) {
        (_, ["jobs", j, ..]) if *j != job => false,
        ("GET", ["jobs", _] | ["jobs", _, "taskcounts" | "tasks"] | ["jobs", _, "tasks", _, ..]) => true,
        ("POST", ["jobs", _, "tasks" | "addtaskcollection"]) => true,
        _ => false,
    }
}

/// `%XX` escapes decoded (a malformed one is left as it is).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (b[i], b.get(i + 1).and_then(|c| hex(*c)), b.get(i + 2).and_then(|c| hex(*c))) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Who a request with `headers` on connection `conn` comes from (see [`identify`]).
pub(super) async fn caller(head: &Head, headers: &HeaderMap, conn: Option<&Connection>) -> ApiResult<Caller> {
    let refuse = |why: String| ApiError::new(StatusCode::UNAUTHORIZED, "AuthenticationFailed", why);
    let presented = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let peer = conn.and_then(|c| c.peer);
    let bearer = auth::bearer(presented);
    let user_token = bearer.and_then(gangway_api::tokens::split_token);
    if auth::token_matches(presented, &head.token) {
        return Ok(Caller {
            uid: peer.map_or(head.admins.head_uid(), |p| p.uid),
            admin: true,
            by_job: false,
            scope: None,
        });
    }
    if let Some(cred) = presented.and_then(|h| h.strip_prefix("Munge ")) {
        let (uid, gid) = identity::unmunge(head.munge_socket.as_deref(), cred.trim()).await.map_err(refuse)?;
        return Ok(Caller { uid, admin: head.admins.is_admin(uid, Some(gid)).await, by_job: false, scope: None });
    }
    let job_token = |b: &&str| {
        b.starts_with(super::state::tokens::JOB_TOKEN_PREFIX)
            || b.starts_with(super::state::tokens::MANAGER_TOKEN_PREFIX)
    };
    if let Some(job_token) = bearer.filter(job_token) {
        let cred = head.read(|st| st.job_token_user(job_token)).map_err(refuse)?;
        // A job manager's credential never carries its owner's admin rights.
        let admin = cred.scope.is_none() && head.admins.is_admin(cred.uid, None).await;
        return Ok(Caller { uid: cred.uid, admin, by_job: true, scope: cred.scope });
    }
    if let Some((id, secret)) = user_token {
        let uid = head.read(|st| st.token_user(id, secret, Timestamp::now())).map_err(refuse)?;
        return Ok(Caller { uid, admin: head.admins.is_admin(uid, None).await, by_job: false, scope: None });
    }
    match (peer, presented) {
        (Some(p), None) => {
            Ok(Caller { uid: p.uid, admin: head.admins.is_admin(p.uid, Some(p.gid)).await, by_job: false, scope: None })
        }
        (None, None) => Err(refuse(
            "this call needs an Authorization: Bearer <token> header (the token is in client.json), \
             or the head's Unix socket"
                .into(),
        )),
        (_, Some(_)) => Err(refuse("the bearer token is not valid for this cluster".into())),
    }
}

/// `POST /tokens`: a token acting as the caller, shown once.
async fn add_token(
    State(head): H,
    who: Who,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<gangway_api::tokens::ApiToken>)> {
    if who.by_job {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "AuthorizationFailure",
            "a job credential cannot create tokens: it lasts only as long as its job",
        ));
    }
    let p: gangway_api::tokens::TokenAddParameter =
        if body.iter().all(u8::is_ascii_whitespace) { Default::default() } else { parse_body(&body)? };
    let random = |n| {
        gangway_api::common::random_hex(n).map_err(|e| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", format!("reading /dev/urandom: {e}"))
        })
    };
    let (id, secret) = (random(8)?, random(32)?);
    let owner = Owner { uid: who.uid, name: head.users.name(who.uid).await };
    let token = head.apply_durable(|st, fx| st.add_token(owner, p, id, &secret, fx)).await?;
    Ok((StatusCode::CREATED, Json(token)))
}

/// `GET /tokens`: the caller's tokens (every user's for an admin), without their secrets.
async fn list_tokens(State(head): H, who: Who) -> Json<ListResponse<gangway_api::tokens::ApiToken>> {
    Json(ListResponse { value: head.read(|st| st.tokens_for(&who)), next_link: None })
}

/// `DELETE /tokens/{id}`: revokes one of the caller's tokens (any, for an admin).
async fn revoke_token(State(head): H, who: Who, Path(id): Path<String>) -> ApiResult<StatusCode> {
    head.apply_durable(|st, fx| st.revoke_token(&who, &id, fx)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The user a task with `identity` runs as when that is not its job's owner, if the caller
/// may have it: `userName` names the caller themselves (no change) or, for an admin, anyone;
/// an `admin` auto-user is root, for admins only; a `nonadmin` one is the owner.
async fn run_as(head: &Head, who: &Caller, identity: Option<&UserIdentity>) -> ApiResult<Option<Owner>> {
    let Some(identity) = identity else { return Ok(None) };
    match (&identity.user_name, &identity.auto_user) {
        (Some(_), Some(_)) => Err(ApiError::invalid("userIdentity: give userName or autoUser, not both")),
        (None, None) => Ok(None),
        (None, Some(auto)) => match auto.elevation_level {
            ElevationLevel::NonAdmin => Ok(None),
            ElevationLevel::Admin if who.admin => Ok(Some(Owner { uid: 0, name: "root".into() })),
            ElevationLevel::Admin => Err(admins_only("run tasks with autoUser.elevationLevel admin")),
        },
        (Some(name), None) => {
            let lookup = name.clone();
            let uid = tokio::task::spawn_blocking(move || gangway_api::users::user_id(&lookup)).await.ok().flatten();
            let uid = uid.ok_or_else(|| {
                ApiError::invalid(format!("userIdentity.userName '{name}' is not a user on the head's machine"))
            })?;
            if uid != who.uid && !who.admin {
                let me = head.users.name(who.uid).await;
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "AuthorizationFailure",
                    format!(
                        "{me} may not run tasks as {name}: a user runs tasks only as themselves (admins as anyone)"
                    ),
                ));
            }
            Ok(Some(Owner { uid, name: name.clone() }))
        }
    }
}

/// Refuses `what` to a caller that is not an admin.
fn admin(who: &Caller, what: &str) -> ApiResult<()> {
    if who.admin {
        Ok(())
    } else {
        Err(admins_only(what))
    }
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], include_str!("openapi.json"))
}

async fn list_pools(State(head): H, Query(q): Q) -> ApiResult<Json<Value>> {
    let list = head
        .read(|st| page(st.pools.iter().map(|(k, p)| (k.as_str(), &p.wire)), &q, POOL_FIELDS, &head.url, "/pools"))?;
    select_list(list, &q, "Pool").map(Json)
}

async fn add_pool(State(head): H, who: Who, once: Once, body: Bytes) -> ApiResult<Response> {
    admin(&who, "create pools")?;
    let p: PoolAddParameter = parse_body(&body)?;
    in_the_same_commit(&head, &once, StatusCode::CREATED, |st, fx| st.add_pool(p, fx)).await
}

async fn get_pool(State(head): H, Path(id): Path<String>) -> ApiResult<Json<Pool>> {
    head.read(|st| st.pools.get(&id).map(|p| p.wire.clone())).ok_or_else(|| pool_not_found(&id)).map(Json)
}

async fn delete_pool(State(head): H, who: Who, Path(id): Path<String>) -> ApiResult<StatusCode> {
    admin(&who, "delete pools")?;
    head.apply_durable(|st, fx| st.delete_pool(&id, fx)).await?;
    Ok(StatusCode::ACCEPTED)
}

/// `GET /nodecounts`: each pool's nodes by state, as Azure Batch counts them.
async fn node_counts(State(head): H, Query(q): Q) -> ApiResult<Json<Value>> {
    let counts: Vec<(String, PoolNodeCounts)> = head.read(|st| {
        let mut by_pool: std::collections::BTreeMap<&str, PoolNodeCounts> = st
            .pools
            .keys()
            .map(|p| (p.as_str(), PoolNodeCounts { pool_id: p.clone(), ..Default::default() }))
            .collect();
        for n in st.nodes.values() {
            if let Some(c) = by_pool.get_mut(n.wire.pool_id.as_str()) {
                c.dedicated.add(n.wire.state);
            }
        }
        by_pool.into_values().map(|c| (c.pool_id.clone(), c)).collect()
    });
    let list = page(counts.iter().map(|(k, c)| (k.as_str(), c)), &q, NODE_COUNT_FIELDS, &head.url, "/nodecounts")?;
    select_list(list, &q, "PoolNodeCounts").map(Json)
}

async fn list_nodes(State(head): H, Query(q): Q) -> ApiResult<Json<Value>> {
    let list = head
        .read(|st| page(st.nodes.iter().map(|(k, n)| (k.as_str(), &n.wire)), &q, NODE_FIELDS, &head.url, "/nodes"))?;
    select_list(list, &q, "ComputeNode").map(Json)
}

async fn list_pool_nodes(State(head): H, Path(pool): Path<String>, Query(q): Q) -> ApiResult<Json<Value>> {
    let list = head.read(|st| {
        if !st.pools.contains_key(&pool) {
            return Err(pool_not_found(&pool));
        }
        let nodes = st.nodes.iter().filter(|(_, n)| n.wire.pool_id == pool).map(|(k, n)| (k.as_str(), &n.wire));
        page(nodes, &q, NODE_FIELDS, &head.url, &format!("/pools/{pool}/nodes"))
    })?;
    select_list(list, &q, "ComputeNode").map(Json)
}

async fn get_node(State(head): H, Path(id): Path<String>) -> ApiResult<Json<ComputeNode>> {
    head.read(|st| st.nodes.get(&id).map(|n| n.wire.clone())).ok_or_else(|| node_not_found(&id)).map(Json)
}

async fn get_pool_node(State(head): H, Path((pool, id)): Path<(String, String)>) -> ApiResult<Json<ComputeNode>> {
    head.read(|st| st.nodes.get(&id).filter(|n| n.wire.pool_id == pool).map(|n| n.wire.clone()))
        .ok_or_else(|| node_not_found(&id))
        .map(Json)
}

/// The optional body of `disablescheduling`.
fn disable_option(body: &[u8]) -> ApiResult<Option<ComputeNodeDeallocationOption>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    Ok(parse_body::<NodeDisableSchedulingParameter>(body)?.node_disable_scheduling_option)
}

async fn disable_pool_node_scheduling(
    State(head): H,
    who: Who,
    Path((pool, node)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    admin(&who, "disable scheduling on nodes")?;
    let option = disable_option(&body)?;
    head.apply_durable(|st, fx| st.disable_node_scheduling(Some(&pool), &node, option, fx)).await?;
    Ok(StatusCode::OK)
}

async fn disable_node_scheduling(
    State(head): H,
    who: Who,
    Path(node): Path<String>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    admin(&who, "disable scheduling on nodes")?;
    let option = disable_option(&body)?;
    head.apply_durable(|st, fx| st.disable_node_scheduling(None, &node, option, fx)).await?;
    Ok(StatusCode::OK)
}

async fn enable_pool_node_scheduling(
    State(head): H,
    who: Who,
    Path((pool, node)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    admin(&who, "enable scheduling on nodes")?;
    head.apply_durable(|st, fx| st.enable_node_scheduling(Some(&pool), &node, fx)).await?;
    Ok(StatusCode::OK)
}

async fn enable_node_scheduling(State(head): H, who: Who, Path(node): Path<String>) -> ApiResult<StatusCode> {
    admin(&who, "enable scheduling on nodes")?;
    head.apply_durable(|st, fx| st.enable_node_scheduling(None, &node, fx)).await?;
    Ok(StatusCode::OK)
}

async fn remove_nodes(State(head): H, who: Who, Path(pool): Path<String>, body: Bytes) -> ApiResult<StatusCode> {
    admin(&who, "remove nodes")?;
    let p: NodeRemoveParameter = parse_body(&body)?;
    head.apply_durable(|st, fx| st.remove_nodes(&pool, p, fx)).await?;
    Ok(StatusCode::ACCEPTED)
}

async fn list_jobs(State(head): H, who: Who, Query(q): Q) -> ApiResult<Json<Value>> {
    let mut list =
        head.read(|st| page(st.jobs.iter().map(|(k, j)| (k.as_str(), &j.wire)), &q, JOB_FIELDS, &head.url, "/jobs"))?;
    list.value.retain(|j| !head.private_data.hides(&who, j.owner.as_ref().map(|o| o.uid)));
    list.value = list.value.into_iter().map(|j| privacy::job(&who, j)).collect();
    select_list(list, &q, "Job").map(Json)
}

async fn add_job(State(head): H, who: Who, once: Once, body: Bytes) -> ApiResult<Response> {
    let p: JobAddParameter = parse_body(&body)?;
    let owner = Owner { uid: who.uid, name: head.users.name(who.uid).await };
    in_the_same_commit(&head, &once, StatusCode::CREATED, |st, fx| st.add_job(p, owner, fx)).await
}

async fn get_job(State(head): H, who: Who, Path(id): Path<String>, Query(q): Q) -> ApiResult<Json<Value>> {
    let job = head.read(|st| visible(&head, &who, st, &id).map(|j| j.wire.clone()))?;
    select_one(privacy::job(&who, job), &q, "Job").map(Json)
}

async fn patch_job(State(head): H, who: Who, Path(id): Path<String>, body: Bytes) -> ApiResult<StatusCode> {
    let p: JobPatchParameter = parse_body(&body)?;
    head.apply_durable(|st, fx| {
        st.may_change_job(&who, &id)?;
        st.patch_job(&id, p, fx)
    })
    .await?;
    Ok(StatusCode::OK)
}

async fn delete_job(State(head): H, who: Who, Path(id): Path<String>) -> ApiResult<StatusCode> {
    head.apply_durable(|st, fx| {
        st.may_change_job(&who, &id)?;
        st.delete_job(&id, fx)
    })
    .await?;
    Ok(StatusCode::ACCEPTED)
}

async fn terminate_job(State(head): H, who: Who, Path(id): Path<String>, body: Bytes) -> ApiResult<StatusCode> {
    let p: JobTerminateParameter =
        if body.iter().all(u8::is_ascii_whitespace) { Default::default() } else { parse_body(&body)? };
    head.apply_durable(|st, fx| {
        st.may_change_job(&who, &id)?;
        st.terminate_job(&id, p.terminate_reason, fx)
    })
    .await?;
    Ok(StatusCode::ACCEPTED)
}

async fn list_schedules(State(head): H, who: Who, Query(q): Q) -> ApiResult<Json<Value>> {
    let mut list = head.read(|st| {
        page(st.schedules.iter().map(|(k, s)| (k.as_str(), s)), &q, SCHEDULE_FIELDS, &head.url, "/jobschedules")
    })?;
    list.value.retain(|s| !head.private_data.hides(&who, s.owner.as_ref().map(|o| o.uid)));
    list.value = list.value.into_iter().map(|s| privacy::schedule(&who, s)).collect();
    select_list(list, &q, "JobSchedule").map(Json)
}

async fn add_schedule(State(head): H, who: Who, once: Once, body: Bytes) -> ApiResult<Response> {
    let p: JobScheduleAddParameter = parse_body(&body)?;
    let owner = Owner { uid: who.uid, name: head.users.name(who.uid).await };
    in_the_same_commit(&head, &once, StatusCode::CREATED, |st, fx| st.add_schedule(p, owner, fx)).await
}

async fn get_schedule(State(head): H, who: Who, Path(id): Path<String>, Query(q): Q) -> ApiResult<Json<Value>> {
    let s = head.read(|st| {
        st.schedules
            .get(&id)
            .filter(|s| !head.private_data.hides(&who, s.owner.as_ref().map(|o| o.uid)))
            .cloned()
            .ok_or_else(|| ApiError::not_found("JobScheduleNotFound", format!("job schedule '{id}' does not exist")))
    })?;
    select_one(privacy::schedule(&who, s), &q, "JobSchedule").map(Json)
}

async fn patch_schedule(State(head): H, who: Who, Path(id): Path<String>, body: Bytes) -> ApiResult<StatusCode> {
    let p: JobSchedulePatchParameter = parse_body(&body)?;
    head.apply_durable(|st, fx| {
        st.may_change_schedule(&who, &id)?;
        st.change_schedule(&id, p.schedule, p.job_specification, fx)
    })
    .await?;
    Ok(StatusCode::OK)
}

async fn update_schedule(State(head): H, who: Who, Path(id): Path<String>, body: Bytes) -> ApiResult<StatusCode> {
    let p: JobScheduleUpdateParameter = parse_body(&body)?;
    head.apply_durable(|st, fx| {
        st.may_change_schedule(&who, &id)?;
        st.change_schedule(&id, Some(p.schedule), Some(p.job_specification), fx)
    })
    .await?;
    Ok(StatusCode::OK)
}

async fn delete_schedule(State(head): H, who: Who, Path(id): Path<String>) -> ApiResult<StatusCode> {
    head.apply_durable(|st, fx| {
        st.may_change_schedule(&who, &id)?;
        st.delete_schedule(&id, fx)
    })
    .await?;
    Ok(StatusCode::ACCEPTED)
}

/// `POST /jobschedules/{id}/disable|enable|terminate`.
async fn schedule_action(
    State(head): H,
    who: Who,
    Path((id, action)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let status = match action.as_str() {
        "disable" | "enable" => StatusCode::NO_CONTENT,
        "terminate" => StatusCode::ACCEPTED,
        _ => return Err(ApiError::not_found("ResourceNotFound", "no such resource; see /openapi.json for the API")),
    };
    head.apply_durable(|st, fx| {
        st.may_change_schedule(&who, &id)?;
        match action.as_str() {
            "disable" => st.disable_schedule(&id, fx),
            "enable" => st.enable_schedule(&id, fx),
            _ => st.terminate_schedule(&id, fx),
        }
    })
    .await?;
    Ok(status)
}

async fn update_job(State(head): H, who: Who, Path(id): Path<String>, body: Bytes) -> ApiResult<StatusCode> {
    let p: JobUpdateParameter = parse_body(&body)?;
    head.apply_durable(|st, fx| {
        st.may_change_job(&who, &id)?;
        st.update_job(&id, p, fx)
    })
    .await?;
    Ok(StatusCode::OK)
}

async fn update_task(
    State(head): H,
    who: Who,
    Path((job, task)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let p: TaskUpdateParameter = parse_body(&body)?;
    head.apply_durable(|st, fx| {
        st.may_change_job(&who, &job)?;
        st.update_task(&job, &task, p, fx)
    })
    .await?;
    Ok(StatusCode::OK)
}

async fn reactivate_task(State(head): H, who: Who, Path((job, task)): Path<(String, String)>) -> ApiResult<StatusCode> {
    head.apply_durable(|st, fx| {
        st.may_change_job(&who, &job)?;
        st.reactivate_task(&job, &task, fx)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_task(State(head): H, who: Who, Path((job, task)): Path<(String, String)>) -> ApiResult<StatusCode> {
    head.apply_durable(|st, fx| {
        st.may_change_job(&who, &job)?;
        st.delete_task(&job, &task, fx)
    })
    .await?;
    Ok(StatusCode::OK)
}

async fn disable_job(State(head): H, who: Who, Path(id): Path<String>, body: Bytes) -> ApiResult<StatusCode> {
    let p: JobDisableParameter = parse_body(&body)?;
    head.apply_durable(|st, fx| {
        st.may_change_job(&who, &id)?;
        st.disable_job(&id, p.disable_tasks, fx)
    })
    .await?;
    Ok(StatusCode::ACCEPTED)
}

async fn enable_job(State(head): H, who: Who, Path(id): Path<String>) -> ApiResult<StatusCode> {
    head.apply_durable(|st, fx| {
        st.may_change_job(&who, &id)?;
        st.enable_job(&id, fx)
    })
    .await?;
    Ok(StatusCode::ACCEPTED)
}

/// `GET /jobs/{id}/jobpreparationandreleasetaskstatus`: where its preparation and release
/// tasks ran, and how.
async fn prep_release_status(
    State(head): H,
    who: Who,
    Path(id): Path<String>,
) -> ApiResult<Json<ListResponse<JobPreparationAndReleaseTaskExecutionInformation>>> {
    head.read(|st| visible(&head, &who, st, &id).map(|j| j.wire.prep_release.clone()))
        .map(|value| Json(ListResponse { value, next_link: None }))
}

async fn task_counts(State(head): H, who: Who, Path(id): Path<String>) -> ApiResult<Json<TaskCountsResult>> {
    head.read(|st| visible(&head, &who, st, &id).and_then(|_| st.task_counts(&id))).map(Json)
}

/// Job `id` if `who` may see it at all (else: not found, as if it did not exist).
fn visible<'s>(head: &Head, who: &Caller, st: &'s HeadState, id: &str) -> ApiResult<&'s JobRec> {
    st.jobs
        .get(id)
        .filter(|j| !head.private_data.hides(who, j.wire.owner.as_ref().map(|o| o.uid)))
        .ok_or_else(|| job_not_found(id))
}

async fn list_tasks(State(head): H, who: Who, Path(job): Path<String>, Query(q): Q) -> ApiResult<Json<Value>> {
    let list = head.read(|st| {
        let j = visible(&head, &who, st, &job)?;
        let mut list = page(
            j.tasks.iter().map(|(k, t)| (k.as_str(), &t.wire)),
            &q,
            TASK_FIELDS,
            &head.url,
            &format!("/jobs/{job}/tasks"),
        )?;
        let now = Timestamp::now();
        for t in &mut list.value {
            if let Some(r) = j.tasks.get(&t.id) {
                t.planned_start = st.planned_start(r.key, now);
                t.dependency = st.dependency_status(r.key);
            }
        }
        let owner = j.wire.owner.as_ref().map(|o| o.uid);
        list.value = list.value.into_iter().map(|t| privacy::task(&who, owner, t)).collect();
        Ok(list)
    })?;
    select_list(list, &q, "Task").map(Json)
}

async fn add_task(State(head): H, who: Who, once: Once, Path(job): Path<String>, body: Bytes) -> ApiResult<Response> {
    let p: TaskAddParameter = parse_body(&body)?;
    let run_as = run_as(&head, &who, p.user_identity.as_ref()).await?;
    in_the_same_commit(&head, &once, StatusCode::CREATED, |st, fx| {
        st.may_change_job(&who, &job)?;
        st.add_task_as(&job, p, run_as, fx)
    })
    .await
}

/// Adds up to 100 tasks; each gets its own result, as in Azure Batch. The job must exist and
/// be active, or nothing is added.
async fn add_task_collection(
    State(head): H,
    who: Who,
    once: Once,
    Path(job): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let p: TaskAddCollectionParameter = parse_body(&body)?;
    // Each task's user, or why it may not have it (that task's own result).
    let mut users = Vec::with_capacity(p.value.len().min(MAX_COLLECTION));
    for t in p.value.iter().take(MAX_COLLECTION) {
        users.push(run_as(&head, &who, t.user_identity.as_ref()).await);
    }
    if p.value.len() > MAX_COLLECTION {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestBodyTooLarge",
            format!("the collection holds {} tasks; at most {MAX_COLLECTION} may be added in one call", p.value.len()),
        ));
    }
    let answer = head
        .apply_durable(|st, fx| {
            st.may_change_job(&who, &job)?;
            let j = st.jobs.get(&job).ok_or_else(|| job_not_found(&job))?;
            if j.wire.state != JobState::Active {
                return Err(ApiError::conflict(
                    "JobNotActive",
                    format!("job '{job}' is not active; no tasks can be added"),
                ));
            }
            let mut seen = std::collections::HashSet::new();
            let results: Vec<TaskAddResult> = p
                .value
                .into_iter()
                .zip(users)
                .map(|(t, user)| {
                    let id = t.id.clone();
                    let r = if seen.insert(id.clone()) {
                        user.and_then(|run_as| st.add_task_as(&job, t, run_as, fx))
                    } else {
                        Err(ApiError::conflict("TaskExists", format!("task '{id}' appears twice in the collection")))
                    };
                    match r {
                        Ok(()) => TaskAddResult { status: "success".into(), task_id: id, error: None },
                        Err(e) => TaskAddResult { status: "clienterror".into(), task_id: id, error: Some(e.body) },
                    }
                })
                .collect();
            let answer = TaskAddCollectionResult { value: results };
            // Remembered with the tasks it added (see requests.rs).
            if let Some(o) = &once {
                st.remember(o.record(&answer), fx);
            }
            Ok(answer)
        })
        .await?;
    Ok(recorded(Json(answer).into_response(), &once))
}

async fn get_task(
    State(head): H,
    who: Who,
    Path((job, task)): Path<(String, String)>,
    Query(q): Q,
) -> ApiResult<Json<Value>> {
    let t = head.read(|st| {
        let j = visible(&head, &who, st, &job)?;
        let t = j.tasks.get(&task).ok_or_else(|| task_not_found(&job, &task))?;
        let t = Task {
            planned_start: st.planned_start(t.key, Timestamp::now()),
            dependency: st.dependency_status(t.key),
            ..t.wire.clone()
        };
        Ok(privacy::task(&who, j.wire.owner.as_ref().map(|o| o.uid), t))
    })?;
    select_one(t, &q, "Task").map(Json)
}

async fn subtasks_info(
    State(head): H,
    who: Who,
    Path((job, task)): Path<(String, String)>,
) -> ApiResult<Json<ListResponse<SubtaskInformation>>> {
    head.read(|st| visible(&head, &who, st, &job).and_then(|_| st.subtasks_info(&job, &task)))
        .map(|value| Json(ListResponse { value, next_link: None }))
}

async fn terminate_task(State(head): H, who: Who, Path((job, task)): Path<(String, String)>) -> ApiResult<StatusCode> {
    head.apply_durable(|st, fx| {
        st.may_change_job(&who, &job)?;
        st.terminate_task(&job, &task, fx)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The `Range: bytes=N-[M]` header, when present: (first byte, last byte inclusive).
pub fn parse_range(headers: &HeaderMap) -> ApiResult<Option<(u64, Option<u64>)>> {
    let Some(v) = headers.get(header::RANGE) else { return Ok(None) };
    let s = v.to_str().unwrap_or("");
    let bad = || ApiError::invalid(format!("Range '{s}' is not supported; use bytes=FIRST- or bytes=FIRST-LAST"));
    let spec = s.strip_prefix("bytes=").ok_or_else(bad)?;
    let (a, b) = spec.split_once('-').ok_or_else(bad)?;
    let first: u64 = a.trim().parse().map_err(|_| bad())?;
    let last = if b.trim().is_empty() { None } else { Some(b.trim().parse::<u64>().map_err(|_| bad())?) };
    if last.is_some_and(|l| l < first) {
        return Err(bad());
    }
    Ok(Some((first, last)))
}

#[cfg(test)]
mod tests {
    use super::within_scope;

    #[test]
    fn a_job_managers_credential_adds_and_reads_its_jobs_tasks_only() {
        let cases = [
            ("GET", "/jobs/s:job-1", true),
            ("GET", "/jobs/s%3Ajob-1/tasks", true),
            ("POST", "/jobs/s:job-1/tasks", true),
            ("POST", "/jobs/s:job-1/addtaskcollection", true),
            ("GET", "/jobs/s:job-1/taskcounts", true),
            ("GET", "/jobs/s:job-1/tasks/7/files/wd/out.dat", true),
            ("DELETE", "/jobs/s:job-1/tasks/7", false),
            ("POST", "/jobs/s:job-1/terminate", false),
            ("PATCH", "/jobs/s:job-1", false),
            ("GET", "/jobs/other/tasks", false),
            ("POST", "/jobs/other/tasks", false),
            ("GET", "/jobs", false),
            ("POST", "/jobs", false),
            ("GET", "/pools", false),
            ("POST", "/tokens", false),
            ("POST", "/slurm/jobs", false),
        ];
        for (method, path, ok) in cases {
            assert_eq!(within_scope("s:job-1", method, path), ok, "{method} {path}");
        }
    }
}
