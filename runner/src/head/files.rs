//! Task files: the head asks the node that ran the task, over its launcher stream.

use std::sync::Arc;
use std::time::Duration;

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use gangway_api::messages::{base64_decode, DeleteFile, FilesResult, HeadMessage};
use gangway_api::{ListResponse, NodeFile};

use super::error::ApiError;
use super::identity::Caller;
use super::routes::parse_range;
use super::state::resources::{job_not_found, node_not_found, pool_not_found, task_not_found};
use super::Head;

/// Bytes asked of a launcher per message.
const CHUNK: u64 = 4 << 20;
/// Largest whole-file answer; bigger files are read with `Range`.
const MAX_BODY: u64 = 256 << 20;
/// How long a launcher may take to answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// Rejects paths that could leave the task directory.
pub fn check_relative_path(path: &str) -> Result<(), ApiError> {
    let bad = |why: &str| {
        Err(ApiError::invalid(format!("file path '{path}' {why}; paths are relative to the task directory")))
    };
    if path.is_empty() {
        return bad("is empty");
    }
    if path.starts_with('/') {
        return bad("is absolute");
    }
    if path.contains('\0') || path.contains('\\') {
        return bad("contains a NUL or backslash");
    }
    if path.split('/').any(|c| c == "..") {
        return bad("contains '..'");
    }
    Ok(())
}

/// Whose files: a task's (on the node that ran it), or a node's own.
#[derive(Clone, Copy)]
enum Target<'a> {
    Task { job: &'a str, task: &'a str },
    Node { pool: &'a str, node: &'a str },
}

async fn ask(
    head: &Arc<Head>,
    target: Target<'_>,
    path: Option<String>,
    offset: u64,
    len: u64,
    delete: Option<DeleteFile>,
) -> Result<FilesResult, ApiError> {
    let tx = head.read(|st| {
        let node = match target {
            Target::Task { job, task } => {
                let j = st.jobs.get(job).ok_or_else(|| job_not_found(job))?;
                let t = j.tasks.get(task).ok_or_else(|| task_not_found(job, task))?;
                t.wire.node_info.as_ref().map(|n| n.node_id.clone()).ok_or_else(|| {
                    ApiError::not_found(
                        "FileNotFound",
                        format!("task '{task}' has not run on any node yet, so it has no files"),
                    )
                })?
            }
            Target::Node { pool, node } => {
                st.pools.get(pool).ok_or_else(|| pool_not_found(pool))?;
                st.nodes.get(node).filter(|n| n.wire.pool_id == pool).ok_or_else(|| node_not_found(node))?;
                node.to_owned()
            }
        };
        let conn = st.nodes.get(&node).and_then(|n| n.conn.as_ref()).ok_or_else(|| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "NodeNotConnected",
                format!("node '{node}', which holds the files, is not connected"),
            )
        })?;
        Ok::<_, ApiError>((conn.tx.clone(), node))
    })?;
    let (tx, node) = tx;
    let req = head.new_request_id();
    let (answer_tx, answer_rx) = tokio::sync::oneshot::channel();
    head.file_requests.lock().expect("file request lock").insert(req, (node, answer_tx));
    let (job, task, node) = match target {
        Target::Task { job, task } => (job.to_owned(), task.to_owned(), false),
        Target::Node { .. } => (String::new(), String::new(), true),
    };
    let msg = HeadMessage::ReadFiles { req, job, task, path, offset, len, delete, node };
    let sent = tx.send(msg).is_ok();
    let answer =
        if sent { tokio::time::timeout(ANSWER_TIMEOUT, answer_rx).await.ok().and_then(Result::ok) } else { None };
    head.file_requests.lock().expect("file request lock").remove(&req);
    answer.ok_or_else(|| {
        ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "NodeDidNotAnswer",
            "the node did not answer the file request in time",
        )
    })
}

/// Routes a launcher's answer to the waiting request, when `node` is the node it was sent to
/// (one node cannot answer for another's files).
pub fn answered(head: &Head, node: &str, req: u64, result: FilesResult) {
    let mut requests = head.file_requests.lock().expect("file request lock");
    match requests.get(&req) {
        Some((asked, _)) if asked != node => {
            tracing::warn!(node, asked = %asked, req, "a node answered a file request sent to another node; ignored");
        }
        Some(_) => {
            let (_, tx) = requests.remove(&req).expect("checked");
            let _ = tx.send(result);
        }
        None => {}
    }
}

fn node_error(result: FilesResult, what: &str) -> ApiError {
    match result {
        FilesResult::NotFound => ApiError::not_found("FileNotFound", format!("{what} does not exist")),
        FilesResult::Error { message } => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "NodeFileError", message),
        _ => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "UnexpectedNodeAnswer",
            "the node answered the file request with something else",
        ),
    }
}

/// A task's files (its outputs) are its job's owner's and the admins' to read.
fn may_read(head: &Head, who: &Caller, job: &str) -> Result<(), ApiError> {
    head.read(|st| st.owner_or_admin(who, job, "read its files"))
}

/// `GET /jobs/{job}/tasks/{task}/files`.
pub async fn list_task_files(
    State(head): State<Arc<Head>>,
    who: axum::Extension<Caller>,
    Path((job, task)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<ListResponse<NodeFile>>, ApiError> {
    may_read(&head, &who, &job)?;
    list_files(&head, Target::Task { job: &job, task: &task }, &q).await
}

/// The files of `target`: the top level, or everything with `recursive=true`.
async fn list_files(
    head: &Arc<Head>,
    target: Target<'_>,
    q: &HashMap<String, String>,
) -> Result<Json<ListResponse<NodeFile>>, ApiError> {
    let recursive = recursive_flag(q)?;
    match ask(head, target, None, 0, 0, None).await? {
        FilesResult::List { mut files } => {
            // Azure lists the top level only, unless asked for everything.
            if !recursive {
                files.retain(|f| !f.name.contains('/'));
            }
            Ok(Json(ListResponse { value: files, next_link: None }))
        }
        other => Err(node_error(other, "the directory")),
    }
}

/// `GET /jobs/{job}/tasks/{task}/files/{path}`, with `Range` support.
pub async fn get_task_file(
    State(head): State<Arc<Head>>,
    who: axum::Extension<Caller>,
    Path((job, task, path)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    may_read(&head, &who, &job)?;
    get_file(&head, Target::Task { job: &job, task: &task }, &path, &headers).await
}

/// One file of `target`, whole or the `Range` asked for.
async fn get_file(head: &Arc<Head>, target: Target<'_>, path: &str, headers: &HeaderMap) -> Result<Response, ApiError> {
    check_relative_path(path)?;
    let range = parse_range(headers)?;
    let (first, last) = range.unwrap_or((0, None));
    let mut body = Vec::new();
    let mut offset = first;
    let size = loop {
        let want = last.map_or(CHUNK, |l| (l + 1).saturating_sub(offset).min(CHUNK));
        match ask(head, target, Some(path.to_owned()), offset, want, None).await? {
            FilesResult::Data { data, size } => {
                let bytes = base64_decode(&data)
                    .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, "UnexpectedNodeAnswer", e))?;
                offset += bytes.len() as u64;
                body.extend_from_slice(&bytes);
                let end = last.map_or(size, |l| (l + 1).min(size));
                if bytes.is_empty() || offset >= end {
                    break size;
                }
                if body.len() as u64 > MAX_BODY {
                    return Err(ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "FileTooLarge",
                        format!("'{path}' is larger than {MAX_BODY} bytes; read it in parts with a Range header"),
                    ));
                }
            }
            FilesResult::RangeNotSatisfiable { size } => {
                return Ok((StatusCode::RANGE_NOT_SATISFIABLE, [(header::CONTENT_RANGE, format!("bytes */{size}"))])
                    .into_response());
            }
            other => return Err(node_error(other, &format!("file '{path}'"))),
        }
    };
    let mut resp =
        (StatusCode::OK, [(header::CONTENT_TYPE, "application/octet-stream".to_owned())], body.clone()).into_response();
    if range.is_some() {
        *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
        let end = first + body.len() as u64;
        let value = format!("bytes {first}-{}/{size}", end.saturating_sub(1));
        resp.headers_mut().insert(header::CONTENT_RANGE, value.parse().expect("ascii header"));
    }
    Ok(resp)
}

/// `recursive=true|false` (default false).
fn recursive_flag(q: &HashMap<String, String>) -> Result<bool, ApiError> {
    match q.get("recursive").map(String::as_str) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(ApiError::invalid(format!("recursive is '{other}'; it must be true or false"))),
    }
}

/// `DELETE /jobs/{job}/tasks/{task}/files/{path}[?recursive=true]`: for those who may change the
/// job.
pub async fn delete_task_file(
    State(head): State<Arc<Head>>,
    who: axum::Extension<Caller>,
    Path((job, task, path)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<StatusCode, ApiError> {
    head.read(|st| st.may_change_job(&who, &job))?;
    delete_file(&head, Target::Task { job: &job, task: &task }, &path, &q).await
}

/// Deletes a file (or, with `recursive=true`, a directory) of `target`.
async fn delete_file(
    head: &Arc<Head>,
    target: Target<'_>,
    path: &str,
    q: &HashMap<String, String>,
) -> Result<StatusCode, ApiError> {
    check_relative_path(path)?;
    let recursive = recursive_flag(q)?;
    match ask(head, target, Some(path.to_owned()), 0, 0, Some(DeleteFile { recursive })).await? {
        FilesResult::Deleted => Ok(StatusCode::OK),
        FilesResult::Error { message } => Err(ApiError::conflict("FileNotDeleted", message)),
        other => Err(node_error(other, &format!("'{path}'"))),
    }
}

/// A node's own files hold every task's: admins only.
fn may_read_node(who: &Caller) -> Result<(), ApiError> {
    match who.admin {
        true => Ok(()),
        false => Err(super::state::resources::admins_only("read or change a node's files")),
    }
}

/// `GET /pools/{pool}/nodes/{node}/files[?recursive=true]`: the node's Azure Batch directories.
pub async fn list_node_files(
    State(head): State<Arc<Head>>,
    who: axum::Extension<Caller>,
    Path((pool, node)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<ListResponse<NodeFile>>, ApiError> {
    may_read_node(&who)?;
    list_files(&head, Target::Node { pool: &pool, node: &node }, &q).await
}

/// `GET /pools/{pool}/nodes/{node}/files/{path}`, with `Range` support.
pub async fn get_node_file(
    State(head): State<Arc<Head>>,
    who: axum::Extension<Caller>,
    Path((pool, node, path)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    may_read_node(&who)?;
    get_file(&head, Target::Node { pool: &pool, node: &node }, &path, &headers).await
}

/// `DELETE /pools/{pool}/nodes/{node}/files/{path}[?recursive=true]`.
pub async fn delete_node_file(
    State(head): State<Arc<Head>>,
    who: axum::Extension<Caller>,
    Path((pool, node, path)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<StatusCode, ApiError> {
    may_read_node(&who)?;
    delete_file(&head, Target::Node { pool: &pool, node: &node }, &path, &q).await
}

#[cfg(test)]
mod tests {
    use super::check_relative_path;

    #[test]
    fn paths_that_escape_are_refused() {
        for ok in ["stdout.txt", "wd/out.dat", "wd/a/b.txt", "wd/..x"] {
            assert!(check_relative_path(ok).is_ok(), "{ok}");
        }
        for bad in ["", "/etc/passwd", "../x", "wd/../../x", "wd/..", "a\\b"] {
            assert!(check_relative_path(bad).is_err(), "{bad}");
        }
    }
}
