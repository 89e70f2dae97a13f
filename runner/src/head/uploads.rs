//! The head's file store: `PUT`, `GET`, `DELETE /files/{name}` and `GET /files`.
//!
//! Files live in `STATE_DIR/files/`. An upload is streamed to a temporary file in
//! `STATE_DIR/files.tmp/`, fsync'ed, renamed into place and the directory fsync'ed, so a
//! `201` means the file survives a crash and a reader never sees half a file.
//!
//! Every user has their own files: the caller (as the API identifies them) stores, lists, reads
//! and deletes only theirs. The head's own user's (the admin token's) live in `files/`, every
//! other user's in `files.users/UID/`. Launchers read with the cluster secret, naming whose
//! file (`?owner=UID`, the user the task runs as): a task gets only its own user's files; and
//! they store a task's `uploadedFile` output files the same way (a `PUT` with the secret must
//! name its owner).

use std::io;
use std::path::{Path as FsPath, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::Json;
use gangway_api::files::validate_file_name;
use gangway_api::{ListResponse, Timestamp, UploadedFile};
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};

use super::error::ApiError;
use super::identity::Connection;
use super::Head;

/// The largest file one `PUT /files/{name}` may store.
pub const MAX_UPLOAD: u64 = 1 << 30;

type H = State<Arc<Head>>;

/// Where stored files live.
pub fn files_dir(state_dir: &FsPath) -> PathBuf {
    state_dir.join("files")
}

pub(crate) fn tmp_dir(files: &FsPath) -> PathBuf {
    files.with_extension("tmp")
}

/// Where `uid`'s files live (created on first use, the head's alone).
fn owner_dir(head: &Head, uid: u32) -> io::Result<PathBuf> {
    if uid == head.admins.head_uid() {
        return Ok(head.files_dir.clone());
    }
    let dir = head.files_dir.with_extension("users").join(uid.to_string());
    if !dir.is_dir() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir)?;
    }
    Ok(dir)
}

/// Whose files a request names: a node (by its certificate) asks for the task user's
/// (`?owner=UID`, the head's user's without it) file `name` (`write`: to store it), and may
/// only reach one that work it runs names; anyone else gets their own.
async fn files_of(
    head: &Head,
    headers: &HeaderMap,
    conn: Option<&Connection>,
    query: &HashMap<String, String>,
    node_access: Option<(&str, bool)>,
) -> Result<PathBuf, ApiError> {
    let node = match node_access {
        Some(access) => super::joining::node_of(head, conn).transpose()?.map(|n| (n, access)),
        None => None,
    };
    let uid = match node {
        Some((node, (name, write))) => {
            let head_uid = head.admins.head_uid();
            let uid = match query.get("owner") {
                Some(o) => o.parse().map_err(|_| ApiError::invalid(format!("owner '{o}' is not a uid")))?,
                None => head_uid,
            };
            if !head.read(|st| st.node_may_reach(&node, uid, name, write, head_uid)) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "AuthorizationFailure",
                    format!("node {node} runs no task of uid {uid} that names the file '{name}'"),
                ));
            }
            uid
        }
        None => super::routes::caller(head, headers, conn).await?.uid,
    };
    owner_dir(head, uid).map_err(|e| internal(format!("creating the file store of uid {uid}"), e))
}

/// Creates the store's directories and removes uploads a crash left half-written.
pub fn init(files: &FsPath) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(files)?;
    // Files are served through the head, which checks who asks; no one reads them directly.
    std::fs::set_permissions(files, std::fs::Permissions::from_mode(0o700))?;
    let tmp = tmp_dir(files);
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)
}

fn checked_name(name: &str) -> Result<(), ApiError> {
    validate_file_name(name).map_err(ApiError::invalid)
}

fn file_not_found(name: &str) -> ApiError {
    ApiError::not_found("FileNotFound", format!("no file named '{name}' has been uploaded (see GET /files)"))
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "RequestBodyTooLarge",
        format!("the upload is larger than {MAX_UPLOAD} bytes (1 GiB), the most one file may hold"),
    )
}

pub(crate) fn internal(what: String, e: io::Error) -> ApiError {
    tracing::error!(error = %e, "{what}");
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", format!("{what}: {e}"))
}

/// `PUT /files/{name}`: stores the raw body durably; `201` once it is.
pub async fn put_file(
    State(head): H,
    conn: Option<Extension<Connection>>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match store(&head, conn.as_deref(), &name, &query, &headers, body).await {
        Ok(()) => StatusCode::CREATED.into_response(),
        Err(e) => e.into_response(),
    }
}

/// Stores an upload into the caller's files (a node, by its certificate, stores a task's
/// output file into `?owner=UID`'s: it writes only so, naming whose).
async fn store(
    head: &Arc<Head>,
    conn: Option<&Connection>,
    name: &str,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    body: Body,
) -> Result<(), ApiError> {
    checked_name(name)?;
    let dir = files_of(head, headers, conn, query, query.contains_key("owner").then_some((name, true))).await?;
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_UPLOAD) {
        return Err(too_large());
    }
    let tmp = tmp_dir(&head.files_dir).join(format!("{name}.{}", head.new_request_id()));
    let r = write_durably(&dir, &tmp, name, body).await;
    if r.is_err() {
        let _ = tokio::fs::remove_file(&tmp).await;
    }
    r
}

pub(crate) async fn write_durably(dir: &FsPath, tmp: &FsPath, name: &str, mut body: Body) -> Result<(), ApiError> {
    let mut f = tokio::fs::File::create(tmp).await.map_err(|e| internal(format!("creating {}", tmp.display()), e))?;
    let mut size = 0u64;
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let frame = frame.map_err(|e| ApiError::invalid(format!("reading the upload: {e}")))?;
        let Ok(data) = frame.into_data() else { continue };
        size += data.len() as u64;
        if size > MAX_UPLOAD {
            return Err(too_large());
        }
        f.write_all(&data).await.map_err(|e| internal(format!("writing {}", tmp.display()), e))?;
    }
    f.sync_all().await.map_err(|e| internal(format!("syncing {}", tmp.display()), e))?;
    drop(f);
    let dest = dir.join(name);
    tokio::fs::rename(tmp, &dest).await.map_err(|e| internal(format!("renaming into {}", dest.display()), e))?;
    sync_dir(dir).await.map_err(|e| internal(format!("syncing {}", dir.display()), e))?;
    tracing::info!(file = name, size, "file uploaded");
    Ok(())
}

pub(crate) async fn sync_dir(dir: &FsPath) -> io::Result<()> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || std::fs::File::open(&dir)?.sync_all())
        .await
        .unwrap_or_else(|e| Err(io::Error::other(e)))
}

/// `GET /files`: every stored file, by name.
pub async fn list_files(
    State(head): H,
    conn: Option<Extension<Connection>>,
    headers: HeaderMap,
) -> Result<Json<ListResponse<UploadedFile>>, ApiError> {
    let dir = files_of(&head, &headers, conn.as_deref(), &HashMap::new(), None).await?;
    let at = dir.clone();
    let listed = tokio::task::spawn_blocking(move || list_dir(&at)).await.unwrap_or_else(|e| Err(io::Error::other(e)));
    let mut value = listed.map_err(|e| internal(format!("listing {}", dir.display()), e))?;
    value.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Json(ListResponse { value, next_link: None }))
}

fn list_dir(dir: &FsPath) -> io::Result<Vec<UploadedFile>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else { continue };
        if !meta.is_file() || validate_file_name(&name).is_err() {
            continue;
        }
        let modified = meta.modified().ok().and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok());
        let last_modified = Timestamp(modified.map_or(0, |d| d.as_micros() as i64));
        out.push(UploadedFile { name, size: meta.len(), last_modified });
    }
    Ok(out)
}

/// `GET /files/{name}`: the file's bytes, streamed (to its owner, or a node whose work names it).
pub async fn get_file(
    State(head): H,
    conn: Option<Extension<Connection>>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    checked_name(&name)?;
    let dir = files_of(&head, &headers, conn.as_deref(), &query, Some((&name, false))).await?;
    let path = dir.join(&name);
    let file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(file_not_found(&name)),
        Err(e) => return Err(internal(format!("opening {}", path.display()), e)),
    };
    let size = file.metadata().await.map_err(|e| internal(format!("reading {}", path.display()), e))?.len();
    let body = Body::new(FileBody::new(file));
    Ok((
        [(header::CONTENT_TYPE, "application/octet-stream".to_owned()), (header::CONTENT_LENGTH, size.to_string())],
        body,
    )
        .into_response())
}

/// `DELETE /files/{name}`.
pub async fn delete_file(
    State(head): H,
    conn: Option<Extension<Connection>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let dir = files_of(&head, &headers, conn.as_deref(), &HashMap::new(), None).await?;
    checked_name(&name)?;
    let path = dir.join(&name);
    match tokio::fs::remove_file(&path).await {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(file_not_found(&name)),
        Err(e) => return Err(internal(format!("removing {}", path.display()), e)),
    }
    sync_dir(&dir).await.map_err(|e| internal(format!("syncing {}", dir.display()), e))?;
    Ok(StatusCode::OK)
}

/// A response body read from a file in 64 KiB pieces, so a large file never sits in memory.
pub(crate) struct FileBody {
    file: tokio::fs::File,
    buf: Box<[u8]>,
}

impl FileBody {
    /// A body streaming `file`.
    pub(crate) fn new(file: tokio::fs::File) -> FileBody {
        FileBody { file, buf: vec![0; 64 * 1024].into_boxed_slice() }
    }
}

impl HttpBody for FileBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, io::Error>>> {
        let me = &mut *self;
        let mut rb = ReadBuf::new(&mut me.buf);
        match Pin::new(&mut me.file).poll_read(cx, &mut rb) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
            Poll::Ready(Ok(())) if rb.filled().is_empty() => Poll::Ready(None),
            Poll::Ready(Ok(())) => Poll::Ready(Some(Ok(hyper::body::Frame::data(Bytes::copy_from_slice(rb.filled()))))),
        }
    }
}
