//! The Slurm front door's REST routes (`/slurm/…`): thin handlers over the state's Slurm
//! operations, behind the same token as every other call.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use gangway_api::slurm::{
    SlurmCancel, SlurmCancelled, SlurmJob, SlurmJobList, SlurmStep, SlurmSubmit, SlurmSubmitted, SlurmUpdate,
};

use super::error::{parse_body, ApiError};
use super::Head;

type H = State<Arc<Head>>;

/// `/slurm/jobs` (list, submit), `/slurm/jobs/{id}`, `/slurm/cancel` and the per-job
/// `hold`, `release`, `requeue`, `update` and `step` operations.
pub fn router() -> Router<Arc<Head>> {
    Router::new()
        .route("/slurm/jobs", get(list).post(submit))
        .route("/slurm/jobs/{id}", get(show))
        .route("/slurm/jobs/{id}/{action}", post(control))
        .route("/slurm/cancel", post(cancel))
}

async fn list(State(head): H) -> Json<SlurmJobList> {
    Json(head.read(|st| st.slurm_jobs()))
}

async fn show(State(head): H, Path(id): Path<String>) -> Result<Json<SlurmJob>, ApiError> {
    let not_found = || ApiError::not_found("InvalidJobId", format!("Invalid job id specified: {id}"));
    let n: u64 = id.parse().map_err(|_| not_found())?;
    head.read(|st| st.slurm_job(n)).map(Json).ok_or_else(not_found)
}

async fn submit(State(head): H, body: Bytes) -> Result<Json<SlurmSubmitted>, ApiError> {
    let mut req: SlurmSubmit = parse_body(&body)?;
    if req.user.is_empty() {
        req.user = head.users.name(req.uid).await;
    }
    let addr = head.url.trim_start_matches("http://").to_owned();
    head.apply_durable(|st, fx| st.slurm_submit(req, &addr, fx)).await.map(Json)
}

async fn cancel(State(head): H, body: Bytes) -> Result<Json<SlurmCancelled>, ApiError> {
    let req: SlurmCancel = parse_body(&body)?;
    Ok(Json(head.apply_durable(|st, fx| st.slurm_cancel(req, fx)).await))
}

async fn control(State(head): H, Path((id, action)): Path<(String, String)>, body: Bytes) -> Result<(), ApiError> {
    match action.as_str() {
        "hold" => head.apply_durable(|st, fx| st.slurm_hold(&id, true, fx)).await,
        "release" => head.apply_durable(|st, fx| st.slurm_hold(&id, false, fx)).await,
        "requeue" => head.apply_durable(|st, fx| st.slurm_requeue(&id, fx)).await,
        "update" => {
            let u: SlurmUpdate = parse_body(&body)?;
            head.apply_durable(|st, fx| st.slurm_update(&id, u, fx)).await
        }
        "step" => {
            let s: SlurmStep = parse_body(&body)?;
            head.apply_durable(|st, fx| st.slurm_step(&id, s, fx)).await
        }
        other => Err(ApiError::not_found(
            "ResourceNotFound",
            format!("no Slurm operation '{other}'; use hold, release, requeue, update or step"),
        )),
    }
}
