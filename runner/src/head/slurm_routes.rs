//! The Slurm front door's REST routes (`/slurm/…`): thin handlers over the state's Slurm
//! operations, behind the same token as every other call.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use gangway_api::slurm::{
    PriorityList, ShareList, SlurmCancel, SlurmCancelled, SlurmJob, SlurmJobList, SlurmStep, SlurmSubmit, SlurmUpdate,
};

use super::error::{parse_body, ApiError};
use super::identity::Caller;
use super::state::HeadState;
use super::Head;

type H = State<Arc<Head>>;

/// The largest `--nice` adjustment, either way (Slurm's `NICE_OFFSET - 3`).
const NICE_MAX: u32 = 2_147_483_645;
type Who = axum::Extension<Caller>;

/// `/slurm/jobs` (list, submit), `/slurm/jobs/{id}`, `/slurm/cancel` and the per-job
/// `hold`, `release`, `requeue`, `update` and `step` operations.
pub fn router() -> Router<Arc<Head>> {
    Router::new()
        .route("/slurm/jobs", get(list).post(submit))
        .route("/slurm/jobs/{id}", get(show))
        .route("/slurm/jobs/{id}/{action}", post(control))
        .route("/slurm/cancel", post(cancel))
        .route("/slurm/priorities", get(priorities))
        .route("/slurm/shares", get(shares))
}

/// Every waiting Slurm job's priority factors (sprio) the caller may see.
async fn priorities(State(head): H, who: Who) -> Json<PriorityList> {
    let mut list = head.read(|st| st.priorities());
    list.jobs.retain(|p| !head.private_data.hides(&who, Some(p.uid)));
    Json(list)
}

/// The share tree (sshare): accounts, and the caller's own users' rows (every user's for an
/// admin): usage is private, as under Slurm's `PrivateData=usage`, and the head enforces it.
async fn shares(State(head): H, who: Who) -> Json<ShareList> {
    let mut list = head.read(|st| st.shares());
    list.rows.retain(|r| r.uid.is_none_or(|uid| who.may_change(Some(uid))));
    for r in &mut list.rows {
        if let Some(uid) = r.uid {
            r.user = Some(head.users.name(uid).await);
        }
    }
    Json(list)
}

/// Every job (others' without their command), or with `accounting=true` (sacct) only the
/// caller's own unless it is an admin, with the purged jobs of the store's history
/// (`MinJobAge`; `since=MS`: those that ended since): accounting is private, as under Slurm's
/// `PrivateData=usage`, and the head enforces it, not the client.
async fn list(
    State(head): H,
    who: Who,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<SlurmJobList>, ApiError> {
    let accounting = q.get("accounting").is_some_and(|v| v == "true");
    let mut list = head.read(|st| st.slurm_jobs());
    if accounting {
        let since = match q.get("since") {
            Some(s) => s.parse().map_err(|_| ApiError::invalid(format!("since '{s}' is not milliseconds")))?,
            None => 0,
        };
        let (store, uid) = (head.store.clone(), (!who.admin).then_some(who.uid));
        let rows = tokio::task::spawn_blocking(move || store.history(uid, since))
            .await
            .map_err(|e| ApiError::new(axum::http::StatusCode::INTERNAL_SERVER_ERROR, "InternalError", e.to_string()))?
            .map_err(|e| {
                ApiError::new(
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                    "StoreError",
                    format!("reading history: {e}"),
                )
            })?;
        let live: std::collections::HashSet<u64> = list.jobs.iter().map(|j| j.job_id).collect();
        let old = rows.iter().filter_map(|b| serde_json::from_str::<SlurmJob>(b).ok());
        list.jobs.extend(old.filter(|j| !live.contains(&j.job_id)).collect::<Vec<_>>());
        list.jobs.sort_by_key(|j| j.job_id);
    }
    list.jobs.retain(|j| {
        let own = who.may_change(Some(j.uid));
        (own || !accounting) && !head.private_data.hides(&who, Some(j.uid))
    });
    list.jobs = list.jobs.into_iter().map(|j| super::privacy::slurm_job(&who, j)).collect();
    Ok(Json(list))
}

async fn show(State(head): H, who: Who, Path(id): Path<String>) -> Result<Json<SlurmJob>, ApiError> {
    let not_found = || ApiError::not_found("InvalidJobId", format!("Invalid job id specified: {id}"));
    let n: u64 = id.parse().map_err(|_| not_found())?;
    let job = head.read(|st| st.slurm_job(n)).filter(|j| !head.private_data.hides(&who, Some(j.uid)));
    job.map(|j| Json(super::privacy::slurm_job(&who, j))).ok_or_else(not_found)
}

/// A user submits as themselves: the uid and gid sbatch sends must be the caller's (its gid
/// one of the caller's groups) unless the caller is an admin, and the name is the head's.
async fn submit(
    State(head): H,
    who: Who,
    once: super::requests::Once,
    body: Bytes,
) -> Result<axum::response::Response, ApiError> {
    let mut req: SlurmSubmit = parse_body(&body)?;
    if !who.admin {
        let denied = |msg: String| ApiError::new(axum::http::StatusCode::FORBIDDEN, "AuthorizationFailure", msg);
        if req.uid != who.uid {
            let msg = format!("Invalid user id: the job names uid {}, and the caller is uid {}", req.uid, who.uid);
            return Err(denied(msg));
        }
        let (uid, gid) = (req.uid, req.gid);
        if !head.groups.of(uid).await.contains(&gid) {
            return Err(denied(format!("Invalid group id: uid {uid} is not in group {gid}")));
        }
        req.user = String::new();
        if req.nice.is_some_and(|n| n < 0) {
            let msg = "Invalid nice value: only admins may give a negative --nice".to_owned();
            return Err(denied(msg));
        }
    }
    if let Some(n) = req.nice.filter(|n| n.unsigned_abs() > NICE_MAX) {
        return Err(ApiError::invalid(format!(
            "Invalid nice value {n}: it must be between -{NICE_MAX} and {NICE_MAX}"
        )));
    }
    if req.user.is_empty() {
        req.user = head.users.name(req.uid).await;
    }
    let addr = head.url.trim_start_matches("https://").to_owned();
    // With a request id, the answer is remembered in the commit that queues the job: a
    // retry after a lost answer (or a head restart) gets this job, never a second one.
    let submitted = head
        .apply_durable(|st, fx| {
            let r = st.slurm_submit(req, &addr, fx);
            if let (Ok(done), Some(once)) = (&r, &once) {
                st.remember(once.record(done), fx);
            }
            r
        })
        .await?;
    Ok(super::requests::recorded(axum::response::IntoResponse::into_response(Json(submitted)), &once))
}

async fn cancel(State(head): H, who: Who, body: Bytes) -> Result<Json<SlurmCancelled>, ApiError> {
    let req: SlurmCancel = parse_body(&body)?;
    Ok(Json(head.apply_durable(|st, fx| st.slurm_cancel(req, &who, fx)).await))
}

/// Whether `who` may change every job `spec` names (a spec that names none is the
/// operation's own error).
fn may_change(st: &HeadState, who: &Caller, spec: &str) -> Result<(), ApiError> {
    st.slurm_resolve(spec)
        .unwrap_or_default()
        .iter()
        .try_for_each(|id| st.may_change_job(who, &id.to_string()))
        .map_err(|mut e| {
            // Slurm's words first: scontrol prints them ("Access/permission denied for job 12").
            e.body.message.value = format!("Access/permission denied: {}", e.body.message.value);
            e
        })
}

async fn control(
    State(head): H,
    who: Who,
    Path((id, action)): Path<(String, String)>,
    body: Bytes,
) -> Result<(), ApiError> {
    match action.as_str() {
        "hold" | "release" => {
            head.apply_durable(|st, fx| {
                may_change(st, &who, &id)?;
                st.slurm_hold(&id, action == "hold", fx)
            })
            .await
        }
        "requeue" => {
            head.apply_durable(|st, fx| {
                may_change(st, &who, &id)?;
                st.slurm_requeue(&id, fx)
            })
            .await
        }
        "update" => {
            let u: SlurmUpdate = parse_body(&body)?;
            head.apply_durable(|st, fx| {
                may_change(st, &who, &id)?;
                st.slurm_update(&id, u, fx)
            })
            .await
        }
        "step" => {
            let s: SlurmStep = parse_body(&body)?;
            head.apply_durable(|st, fx| {
                may_change(st, &who, &id)?;
                st.slurm_step(&id, s, fx)
            })
            .await
        }
        other => Err(ApiError::not_found(
            "ResourceNotFound",
            format!("no Slurm operation '{other}'; use hold, release, requeue, update or step"),
        )),
    }
}
