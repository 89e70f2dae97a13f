//! Application packages over HTTP. `PUT /applications/{id}/versions/{v}` (admins) stores a zip
//! or tar.gz archive; `GET /applications` and `GET /applications/{id}` list them; `PATCH
//! /applications/{id}` sets the default version; `DELETE /applications/{id}/versions/{v}`
//! (admins) removes one; `GET …/versions/{v}/content` serves the archive (to any caller, and
//! to launchers with the cluster secret).
//!
//! Archives live in `STATE_DIR/applications/ID/VERSION`, each beside `VERSION.json`, its
//! record (format, SHA-256, size), written after the archive is durable; the head's registry
//! ([`HeadState::set_applications`]) is rebuilt from them at start-up, and the default
//! version is `ID/default`.

use std::io;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use gangway_api::files::validate_file_name;
use gangway_api::*;

use super::error::{parse_body, ApiError};
use super::identity::{Caller, Connection};
use super::state::HeadState;
use super::uploads::{internal, sync_dir, tmp_dir, write_durably, FileBody};
use super::Head;

type H = State<Arc<Head>>;

/// Where packages live, beside the file store.
pub fn applications_dir(files_dir: &FsPath) -> PathBuf {
    files_dir.with_file_name("applications")
}

/// The registry on disk (records that cannot be read are left out, with a warning).
pub fn load(dir: &FsPath) -> Vec<Application> {
    let mut apps = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return apps };
    for e in entries.flatten() {
        let Ok(id) = e.file_name().into_string() else { continue };
        let mut versions = Vec::new();
        for v in std::fs::read_dir(e.path()).into_iter().flatten().flatten() {
            let name = v.file_name().to_string_lossy().into_owned();
            if !name.ends_with(".json") {
                continue;
            }
            match std::fs::read(v.path())
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<PackageVersion>(&b).map_err(|e| e.to_string()))
            {
                Ok(pv) => versions.push(pv),
                Err(err) => {
                    tracing::warn!(file = %v.path().display(), err, "unreadable application package record; left out")
                }
            }
        }
        if versions.is_empty() {
            continue;
        }
        versions.sort_by(|a, b| a.version.cmp(&b.version));
        let default_version = std::fs::read_to_string(e.path().join("default")).ok().map(|s| s.trim().to_owned());
        apps.push(Application { id, versions, default_version });
    }
    apps.sort_by(|a, b| a.id.cmp(&b.id));
    apps
}

/// Writes a small record whole: to a `.part` file, synced, then renamed into place (the
/// caller syncs the directory).
async fn write_record(path: &FsPath, bytes: &[u8]) -> io::Result<()> {
    let part = path.with_extension("part");
    tokio::fs::write(&part, bytes).await?;
    tokio::fs::File::open(&part).await?.sync_all().await?;
    tokio::fs::rename(&part, path).await
}

fn names(id: &str, version: Option<&str>) -> Result<(), ApiError> {
    validate_file_name(id).map_err(|e| ApiError::invalid(format!("application id: {e}")))?;
    if let Some(v) = version {
        validate_file_name(v).map_err(|e| ApiError::invalid(format!("version: {e}")))?;
        if v == "default" || v.ends_with(".json") {
            return Err(ApiError::invalid(format!("version '{v}' is reserved")));
        }
    }
    Ok(())
}

async fn caller(head: &Head, headers: &HeaderMap, conn: Option<&Connection>) -> Result<Caller, ApiError> {
    super::routes::caller(head, headers, conn).await
}

fn admins_only(who: &Caller, what: &str) -> Result<(), ApiError> {
    if who.admin {
        Ok(())
    } else {
        Err(super::state::resources::admins_only(what))
    }
}

/// `PUT /applications/{id}/versions/{v}`: the body is the archive.
pub async fn put_version(
    State(head): H,
    conn: Option<Extension<Connection>>,
    Path((id, version)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Application>), ApiError> {
    admins_only(&caller(&head, &headers, conn.as_deref()).await?, "upload application packages")?;
    names(&id, Some(&version))?;
    let dir = applications_dir(&head.files_dir).join(&id);
    tokio::fs::create_dir_all(&dir).await.map_err(|e| internal(format!("creating {}", dir.display()), e))?;
    let tmp = tmp_dir(&head.files_dir).join(format!("app-{id}-{version}.{}", head.new_request_id()));
    let staged = format!(".{version}.incoming");
    if let Err(e) = write_durably(&dir, &tmp, &staged, body).await {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(e);
    }
    let archive = dir.join(&staged);
    let read = tokio::fs::read(&archive).await.map_err(|e| internal(format!("reading {}", archive.display()), e))?;
    let Some(format) = PackageFormat::sniff(&read) else {
        let _ = tokio::fs::remove_file(&archive).await;
        return Err(ApiError::invalid(format!(
            "the body is not a zip or tar.gz archive (it starts with {:02x?})",
            &read[..read.len().min(4)]
        )));
    };
    let record = PackageVersion {
        version: version.clone(),
        format,
        sha256: gangway_api::sha256::hex_digest(&read),
        size: read.len() as u64,
    };
    drop(read);
    let json = serde_json::to_vec_pretty(&record).expect("records serialize");
    tokio::fs::rename(&archive, dir.join(&version)).await.map_err(|e| internal(format!("storing {version}"), e))?;
    write_record(&dir.join(format!("{version}.json")), &json)
        .await
        .map_err(|e| internal(format!("recording {version}"), e))?;
    let default_path = dir.join("default");
    if !default_path.exists() {
        write_record(&default_path, version.as_bytes())
            .await
            .map_err(|e| internal("recording the default".into(), e))?;
    }
    sync_dir(&dir).await.map_err(|e| internal(format!("syncing {}", dir.display()), e))?;
    tracing::info!(application = id, version, sha256 = record.sha256, "application package uploaded");
    let app = head.apply_durable(|st, _| st.put_application_version(&id, record)).await;
    Ok((StatusCode::CREATED, Json(app)))
}

/// `GET /applications`.
pub async fn list(
    State(head): H,
    conn: Option<Extension<Connection>>,
    headers: HeaderMap,
) -> Result<Json<ListResponse<Application>>, ApiError> {
    caller(&head, &headers, conn.as_deref()).await?;
    let value = head.read(|st: &HeadState| st.applications.values().cloned().collect());
    Ok(Json(ListResponse { value, next_link: None }))
}

/// `GET /applications/{id}`.
pub async fn get(
    State(head): H,
    conn: Option<Extension<Connection>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Application>, ApiError> {
    caller(&head, &headers, conn.as_deref()).await?;
    head.read(|st| st.applications.get(&id).cloned()).map(Json).ok_or_else(|| super::state::apps_not_found(&id))
}

/// `PATCH /applications/{id}`: `{"defaultVersion": "…"}` (admins).
pub async fn patch(
    State(head): H,
    conn: Option<Extension<Connection>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Application>, ApiError> {
    admins_only(&caller(&head, &headers, conn.as_deref()).await?, "change application packages")?;
    let p: ApplicationPatchParameter = parse_body(&body)?;
    names(&id, Some(&p.default_version))?;
    let app = head.read(|st| st.applications.get(&id).cloned()).ok_or_else(|| super::state::apps_not_found(&id))?;
    if !app.versions.iter().any(|v| v.version == p.default_version) {
        return Err(super::state::versions_not_found(&id, &p.default_version));
    }
    let dir = applications_dir(&head.files_dir).join(&id);
    let write = async {
        write_record(&dir.join("default"), p.default_version.as_bytes()).await?;
        sync_dir(&dir).await
    };
    write.await.map_err(|e| internal("recording the default".into(), e))?;
    head.apply_durable(|st, _| st.set_default_version(&id, &p.default_version)).await.map(Json)
}

/// `DELETE /applications/{id}/versions/{v}` (admins).
pub async fn delete_version(
    State(head): H,
    conn: Option<Extension<Connection>>,
    Path((id, version)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    admins_only(&caller(&head, &headers, conn.as_deref()).await?, "delete application packages")?;
    names(&id, Some(&version))?;
    head.apply_durable(|st, _| st.remove_application_version(&id, &version)).await?;
    let dir = applications_dir(&head.files_dir).join(&id);
    for f in [format!("{version}.json"), version.clone()] {
        match tokio::fs::remove_file(dir.join(&f)).await {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(internal(format!("removing {f}"), e)),
        }
    }
    let default = tokio::fs::read_to_string(dir.join("default")).await.unwrap_or_default();
    if default.trim() == version {
        let _ = tokio::fs::remove_file(dir.join("default")).await;
    }
    let _ = tokio::fs::remove_dir(&dir).await;
    Ok(StatusCode::OK)
}

/// `GET /applications/{id}/versions/{v}/content`: the archive.
pub async fn content(
    State(head): H,
    conn: Option<Extension<Connection>>,
    Path((id, version)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    // Nodes (by their certificate) unpack packages; users may read them too.
    match super::joining::node_of(&head, conn.as_deref()) {
        Some(node) => drop(node?),
        None => drop(caller(&head, &headers, conn.as_deref()).await?),
    }
    names(&id, Some(&version))?;
    let known =
        head.read(|st| st.applications.get(&id).is_some_and(|a| a.versions.iter().any(|v| v.version == version)));
    if !known {
        return Err(super::state::versions_not_found(&id, &version));
    }
    let path = applications_dir(&head.files_dir).join(&id).join(&version);
    let file = tokio::fs::File::open(&path).await.map_err(|e| internal(format!("opening {}", path.display()), e))?;
    let size = file.metadata().await.map_err(|e| internal(format!("reading {}", path.display()), e))?.len();
    Ok((
        [(header::CONTENT_TYPE, "application/octet-stream".to_owned()), (header::CONTENT_LENGTH, size.to_string())],
        Body::new(FileBody::new(file)),
    )
        .into_response())
}
