//! Answers the head's file requests: a task directory's listing, or bytes of one file.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use gangway_api::messages::{base64_encode, FilesResult};
use gangway_api::task::{FileProperties, NodeFile};
use gangway_api::Timestamp;

use crate::executor::EXPIRY_MARKER;

/// Lists `task_dir` recursively, or reads `len` bytes of `path` from `offset`.
pub fn answer(task_dir: &Path, path: Option<&str>, offset: u64, len: u64) -> FilesResult {
    if !task_dir.is_dir() {
        return FilesResult::NotFound;
    }
    match path {
        None => {
            let mut files = Vec::new();
            list(task_dir, task_dir, &mut files);
            files.sort_by(|a, b| a.name.cmp(&b.name));
            FilesResult::List { files }
        }
        Some(p) => match inside(task_dir, p) {
            Some(full) => read(&full, offset, len),
            None => FilesResult::Error { message: format!("'{p}' is outside the task directory") },
        },
    }
}

/// The node's own files (`HeadMessage::ReadFiles` with `node`): listed, read or deleted
/// under the node root, within its Azure Batch directories only (the node's key and the
/// records of its running tasks are never shown).
pub fn node_files(
    root: &Path,
    path: Option<&str>,
    offset: u64,
    len: u64,
    remove: Option<gangway_api::messages::DeleteFile>,
) -> FilesResult {
    let shown = |p: &str| gangway_api::messages::NODE_FILE_DIRS.contains(&p.split('/').next().unwrap_or(""));
    match (path, remove) {
        (None, _) => {
            let mut files = Vec::new();
            for d in gangway_api::messages::NODE_FILE_DIRS {
                let dir = root.join(d);
                if let Ok(meta) = std::fs::metadata(&dir) {
                    files.push(entry(root, &dir, &meta));
                    list(root, &dir, &mut files);
                }
            }
            files.sort_by(|a, b| a.name.cmp(&b.name));
            FilesResult::List { files }
        }
        (Some(p), _) if !shown(p) => FilesResult::NotFound,
        (Some(p), Some(d)) if p.contains('/') => delete(root, p, d.recursive),
        // A node's top-level directories stay.
        (Some(p), Some(_)) => FilesResult::Error { message: format!("'{p}' is one of the node's own directories") },
        (Some(p), None) => answer(root, Some(p), offset, len),
    }
}

/// Deletes `rel` in the task directory: a file or link (never what a link points to), or a
/// directory (with everything in it only when `recursive`; else it must be empty).
pub fn delete(task_dir: &Path, rel: &str, recursive: bool) -> FilesResult {
    let outside = || FilesResult::Error { message: format!("'{rel}' is outside the task directory") };
    let rel = rel.trim_end_matches('/');
    if rel.is_empty() || rel.starts_with('/') || rel.split('/').any(|c| c == ".." || c == ".") {
        return outside();
    }
    let (Ok(base), full) = (task_dir.canonicalize(), task_dir.join(rel)) else { return FilesResult::NotFound };
    // The entry itself may be a link; what holds it must lie inside the task directory.
    let parent = full.parent().and_then(|p| p.canonicalize().ok());
    if !parent.is_some_and(|p| p.starts_with(&base)) {
        return if full.parent().is_some_and(|p| p.exists()) { outside() } else { FilesResult::NotFound };
    }
    let meta = match std::fs::symlink_metadata(&full) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return FilesResult::NotFound,
        Err(e) => return FilesResult::Error { message: format!("{}: {e}", full.display()) },
    };
    let done = match (meta.is_dir(), recursive) {
        (true, true) => std::fs::remove_dir_all(&full),
        (true, false) => std::fs::remove_dir(&full),
        (false, _) => std::fs::remove_file(&full),
    };
    match done {
        Ok(()) => FilesResult::Deleted,
        Err(e) if meta.is_dir() && !recursive => FilesResult::Error {
            message: format!("'{rel}' is a directory that is not empty ({e}); delete it with recursive=true"),
        },
        Err(e) => FilesResult::Error { message: format!("deleting '{rel}': {e}") },
    }
}

/// Runs `f` as the user who owns `dir` (a task directory) when that is not the launcher's
/// own (and the launcher can switch): a link the user swaps in leads nowhere they could not
/// reach themselves.
pub fn as_owner_of<T: Send>(dir: &Path, f: impl FnOnce() -> T + Send) -> std::io::Result<T> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    let owner = std::fs::metadata(dir).ok().map(|m| (m.uid(), m.gid())).filter(|(uid, _)| *uid != me);
    match owner {
        Some((uid, gid)) if me == 0 => crate::users::with_ids(uid, gid, &[gid], || Ok(f())),
        _ => Ok(f()),
    }
}

/// The canonical path of `rel` if it stays inside `base` (symbolic links included).
fn inside(base: &Path, rel: &str) -> Option<PathBuf> {
    if rel.starts_with('/') || rel.split('/').any(|c| c == "..") {
        return None;
    }
    let base = base.canonicalize().ok()?;
    let full = match base.join(rel).canonicalize() {
        Ok(f) => f,
        // A missing file is reported as such, not as an escape.
        Err(_) => return Some(base.join(rel)),
    };
    full.starts_with(&base).then_some(full)
}

fn read(path: &Path, offset: u64, len: u64) -> FilesResult {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return FilesResult::NotFound,
        Err(e) => return FilesResult::Error { message: format!("opening {}: {e}", path.display()) },
    };
    let size = match f.metadata() {
        Ok(m) if m.is_dir() => return FilesResult::Error { message: format!("{} is a directory", path.display()) },
        Ok(m) => m.len(),
        Err(e) => return FilesResult::Error { message: e.to_string() },
    };
    if offset > size || (offset == size && size > 0 && len > 0) {
        return FilesResult::RangeNotSatisfiable { size };
    }
    let mut buf = Vec::new();
    let r = f.seek(SeekFrom::Start(offset)).and_then(|_| f.take(len).read_to_end(&mut buf));
    match r {
        Ok(_) => FilesResult::Data { data: base64_encode(&buf), size },
        Err(e) => FilesResult::Error { message: format!("reading {}: {e}", path.display()) },
    }
}

/// The listing entry of `path` (named relative to `base`).
fn entry(base: &Path, path: &Path, meta: &std::fs::Metadata) -> NodeFile {
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(Timestamp(0), |d| Timestamp(d.as_micros() as i64));
    NodeFile {
        name: path.strip_prefix(base).unwrap_or(path).to_string_lossy().into_owned(),
        is_directory: meta.is_dir(),
        properties: Some(FileProperties {
            content_length: if meta.is_dir() { 0 } else { meta.len() },
            last_modified: modified,
        }),
    }
}

fn list(base: &Path, dir: &Path, out: &mut Vec<NodeFile>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let path = e.path();
        let Ok(meta) = e.metadata() else { continue };
        let file = entry(base, &path, &meta);
        if file.name == EXPIRY_MARKER {
            continue;
        }
        out.push(file);
        if meta.is_dir() {
            list(base, &path, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_lists_and_refuses_escapes() {
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().join("task");
        std::fs::create_dir_all(t.join("wd")).unwrap();
        std::fs::write(t.join("stdout.txt"), b"hello world").unwrap();
        std::fs::write(dir.path().join("secret"), b"x").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), t.join("wd/link")).unwrap();
        match answer(&t, Some("stdout.txt"), 6, 100) {
            FilesResult::Data { data, size } => {
                assert_eq!(size, 11);
                assert_eq!(gangway_api::messages::base64_decode(&data).unwrap(), b"world");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(answer(&t, Some("stdout.txt"), 12, 1), FilesResult::RangeNotSatisfiable { size: 11 }));
        assert!(matches!(answer(&t, Some("nope.txt"), 0, 1), FilesResult::NotFound));
        assert!(matches!(answer(&t, Some("wd/link"), 0, 1), FilesResult::Error { .. }), "a symlink out is refused");
        assert!(matches!(answer(&t, Some("../secret"), 0, 1), FilesResult::Error { .. }));
        match answer(&t, None, 0, 0) {
            FilesResult::List { files } => {
                let names: Vec<_> = files.iter().map(|f| f.name.as_str()).collect();
                assert_eq!(names, ["stdout.txt", "wd", "wd/link"]);
            }
            other => panic!("{other:?}"),
        }
    }
}
