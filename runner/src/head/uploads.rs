//! The head's file store: `PUT`, `GET`, `DELETE /files/{name}` and `GET /files`.
//!
//! Files live in `STATE_DIR/files/`. An upload is streamed to a temporary file in
//! `STATE_DIR/files.tmp/`, fsync'ed, renamed into place and the directory fsync'ed, so a
//! `201` means the file survives a crash and a reader never sees half a file. Every call needs
//! the admin token, except `GET /files/{name}`, which also accepts the cluster secret: launchers
//! fetch `uploadedFile` resource files with it.

use std::io;
use std::path::{Path as FsPath, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use gangway_api::files::validate_file_name;
use gangway_api::{ListResponse, Timestamp, UploadedFile};
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};

use super::error::ApiError;
use super::{auth, Head};

/// The largest file one `PUT /files/{name}` may store.
pub const MAX_UPLOAD: u64 = 1 << 30;

type H = State<Arc<Head>>;

/// Where stored files live.
pub fn files_dir(state_dir: &FsPath) -> PathBuf {
    state_dir.join("files")
}

fn tmp_dir(files: &FsPath) -> PathBuf {
    files.with_extension("tmp")
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

/// The admin token, or (when `launchers_too`) the cluster secret.
fn authorize(head: &Head, headers: &HeaderMap, launchers_too: bool) -> Result<(), ApiError> {
    let presented = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    if auth::token_matches(presented, &head.token) || (launchers_too && auth::token_matches(presented, &head.secret)) {
        return Ok(());
    }
    let msg = if presented.is_none() {
        "this call needs an Authorization: Bearer <token> header (the token is in client.json)"
    } else {
        "the bearer token is not valid for this cluster"
    };
    Err(ApiError::new(StatusCode::UNAUTHORIZED, "AuthenticationFailed", msg))
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

fn internal(what: String, e: io::Error) -> ApiError {
    tracing::error!(error = %e, "{what}");
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", format!("{what}: {e}"))
}

/// `PUT /files/{name}`: stores the raw body durably; `201` once it is.
pub async fn put_file(State(head): H, Path(name): Path<String>, headers: HeaderMap, body: Body) -> Response {
    match store(&head, &name, &headers, body).await {
        Ok(()) => StatusCode::CREATED.into_response(),
        Err(e) => e.into_response(),
    }
}

async fn store(head: &Arc<Head>, name: &str, headers: &HeaderMap, body: Body) -> Result<(), ApiError> {
    authorize(head, headers, false)?;
    checked_name(name)?;
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_UPLOAD) {
        return Err(too_large());
    }
    let tmp = tmp_dir(&head.files_dir).join(format!("{name}.{}", head.new_request_id()));
    let r = write_durably(&head.files_dir, &tmp, name, body).await;
    if r.is_err() {
        let _ = tokio::fs::remove_file(&tmp).await;
    }
    r
}

async fn write_durably(dir: &FsPath, tmp: &FsPath, name: &str, mut body: Body) -> Result<(), ApiError> {
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

async fn sync_dir(dir: &FsPath) -> io::Result<()> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || std::fs::File::open(&dir)?.sync_all())
        .await
        .unwrap_or_else(|e| Err(io::Error::other(e)))
}

/// `GET /files`: every stored file, by name.
pub async fn list_files(State(head): H, headers: HeaderMap) -> Result<Json<ListResponse<UploadedFile>>, ApiError> {
    authorize(&head, &headers, false)?;
    let dir = head.files_dir.clone();
    let listed = tokio::task::spawn_blocking(move || list_dir(&dir)).await.unwrap_or_else(|e| Err(io::Error::other(e)));
    let mut value = listed.map_err(|e| internal(format!("listing {}", head.files_dir.display()), e))?;
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

/// `GET /files/{name}`: the file's bytes, streamed (admin token or cluster secret).
pub async fn get_file(State(head): H, Path(name): Path<String>, headers: HeaderMap) -> Result<Response, ApiError> {
    authorize(&head, &headers, true)?;
    checked_name(&name)?;
    let path = head.files_dir.join(&name);
    let file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(file_not_found(&name)),
        Err(e) => return Err(internal(format!("opening {}", path.display()), e)),
    };
    let size = file.metadata().await.map_err(|e| internal(format!("reading {}", path.display()), e))?.len();
    let body = Body::new(FileBody { file, buf: vec![0; 64 * 1024].into_boxed_slice() });
    Ok((
        [(header::CONTENT_TYPE, "application/octet-stream".to_owned()), (header::CONTENT_LENGTH, size.to_string())],
        body,
    )
        .into_response())
}

/// `DELETE /files/{name}`.
pub async fn delete_file(State(head): H, Path(name): Path<String>, headers: HeaderMap) -> Result<StatusCode, ApiError> {
    authorize(&head, &headers, false)?;
    checked_name(&name)?;
    let path = head.files_dir.join(&name);
    match tokio::fs::remove_file(&path).await {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(file_not_found(&name)),
        Err(e) => return Err(internal(format!("removing {}", path.display()), e)),
    }
    sync_dir(&head.files_dir).await.map_err(|e| internal(format!("syncing {}", head.files_dir.display()), e))?;
    Ok(StatusCode::OK)
}

/// A response body read from a file in 64 KiB pieces, so a large file never sits in memory.
struct FileBody {
    file: tokio::fs::File,
    buf: Box<[u8]>,
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
