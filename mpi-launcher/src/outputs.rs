//! Output files: when an attempt ends, the files its `outputFiles` patterns match are copied to
//! their destinations (a directory on this node, or `PUT` to an HTTP URL), as the task's user,
//! and what happened is written to `fileuploadout.txt` and `fileuploaderr.txt` in the task
//! directory, as Azure Batch writes them.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use gangway_api::http::{encode_component, HttpClient};
use gangway_api::outputs::{path_matches, OutputFile, OutputFileDestination};

/// Where the head is, for the `uploadedFile` destination: how to reach it (this node's
/// certificate says who writes) and whose file store (the task's user).
#[derive(Debug, Clone, Default)]
pub struct HeadStore {
    pub head: crate::join::HeadLink,
    pub owner: Option<u32>,
}

/// Copies what `files` name for an attempt that ended with `success`; `Err` says what failed
/// (the details are in `fileuploaderr.txt`).
pub fn upload(task_dir: &Path, files: &[OutputFile], success: bool, head: &HeadStore) -> Result<(), String> {
    let (mut out, mut err) = (String::new(), String::new());
    let mut failed = 0;
    for f in files {
        let condition = f.upload_options.upload_condition;
        if !condition.applies(success) {
            let _ = writeln!(out, "{}: not uploaded ({condition:?} and the task {})", f.file_pattern, outcome(success));
            continue;
        }
        let (base, pattern) = match f.file_pattern.strip_prefix("../") {
            Some(rest) => (task_dir.to_path_buf(), rest),
            None => (task_dir.join("wd"), f.file_pattern.as_str()),
        };
        let parts: Vec<&str> = pattern.split('/').collect();
        // What a match is named by at its destination: its path below the pattern's fixed
        // leading directories (a pattern without wildcards: its file name).
        let fixed = parts.iter().take_while(|p| !p.contains(['*', '?', '['])).count();
        let wild = fixed < parts.len();
        let mut found = Vec::new();
        walk(&base, &mut Vec::new(), &parts, &mut found);
        if found.is_empty() {
            let _ = writeln!(out, "{}: no file matched", f.file_pattern);
        }
        for rel in found {
            let name = if wild { rel[fixed.min(rel.len() - 1)..].join("/") } else { rel[rel.len() - 1].clone() };
            let source = base.join(rel.join("/"));
            match copy_out(&source, f, &name, wild, head) {
                Ok(to) => {
                    let _ = writeln!(out, "uploaded {} to {to}", rel.join("/"));
                }
                Err(e) => {
                    failed += 1;
                    let _ = writeln!(err, "{}: {e}", rel.join("/"));
                }
            }
        }
    }
    let _ = std::fs::write(task_dir.join("fileuploadout.txt"), out);
    let _ = std::fs::write(task_dir.join("fileuploaderr.txt"), &err);
    match failed {
        0 => Ok(()),
        n => Err(format!("{n} output file(s) could not be uploaded: {}", err.lines().next().unwrap_or_default())),
    }
}

fn outcome(success: bool) -> &'static str {
    if success {
        "succeeded"
    } else {
        "failed"
    }
}

/// Every regular file under `dir` (`rel` deep) whose path matches `pattern`; directories are
/// entered but links to them are not followed.
fn walk(dir: &Path, rel: &mut Vec<String>, pattern: &[&str], found: &mut Vec<Vec<String>>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let Ok(name) = e.file_name().into_string() else { continue };
        let Ok(kind) = e.file_type() else { continue };
        rel.push(name);
        let path: Vec<&str> = rel.iter().map(String::as_str).collect();
        if kind.is_dir() {
            walk(&e.path(), rel, pattern, found);
        } else if path_matches(pattern, &path) && std::fs::metadata(e.path()).is_ok_and(|m| m.is_file()) {
            found.push(rel.clone());
        }
        rel.pop();
    }
}

/// Copies one file to `f`'s destination as `name`; returns where it went.
fn copy_out(source: &Path, f: &OutputFile, name: &str, wild: bool, head: &HeadStore) -> Result<String, String> {
    if let Some(prefix) = &f.destination.uploaded_file {
        let stored = OutputFileDestination::store_name(prefix, name, wild);
        let body = std::fs::read(source).map_err(|e| format!("reading it: {e}"))?;
        let mut path = format!("/files/{}", encode_component(&stored));
        if let Some(uid) = head.owner {
            path.push_str(&format!("?owner={uid}"));
        }
        let mut http = head.head.client()?;
        let headers = [("Content-Type", "application/octet-stream")];
        let resp = http.request("PUT", &path, &headers, Some(&body)).map_err(|e| format!("storing {stored}: {e}"))?;
        if !(200..300).contains(&resp.status) {
            return Err(format!(
                "storing {stored} on the head: HTTP {} {}",
                resp.status,
                String::from_utf8_lossy(&resp.body)
            ));
        }
        return Ok(format!("the head's file {stored}"));
    }
    if let Some(dir) = &f.destination.path {
        let to = PathBuf::from(dir).join(name);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("creating {}: {e}", parent.display()))?;
        }
        std::fs::copy(source, &to).map_err(|e| format!("copying to {}: {e}", to.display()))?;
        return Ok(to.display().to_string());
    }
    let c = f.destination.container.as_ref().ok_or("no destination")?;
    let (base, query) = c.container_url.split_once('?').map_or((c.container_url.as_str(), None), |(b, q)| (b, Some(q)));
    let object = match (&c.path, wild) {
        (Some(p), false) => p.clone(),
        (Some(p), true) => format!("{}/{name}", p.trim_end_matches('/')),
        (None, _) => name.to_owned(),
    };
    let encoded: Vec<String> = object.split('/').filter(|s| !s.is_empty()).map(encode_component).collect();
    let path = format!("/{}{}", encoded.join("/"), query.map(|q| format!("?{q}")).unwrap_or_default());
    let body = std::fs::read(source).map_err(|e| format!("reading it: {e}"))?;
    let mut http = HttpClient::new(base).map_err(|e| e.to_string())?;
    let headers = [("Content-Type", "application/octet-stream"), ("x-ms-blob-type", "BlockBlob")];
    let resp = http.request("PUT", &path, &headers, Some(&body)).map_err(|e| format!("PUT {base}{path}: {e}"))?;
    if !(200..300).contains(&resp.status) {
        return Err(format!("PUT {base}{path}: HTTP {}", resp.status));
    }
    Ok(format!("{base}{path}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use gangway_api::outputs::{OutputFileUploadOptions, UploadCondition};

    #[test]
    fn matching_files_are_copied_keeping_their_path_below_the_pattern() {
        let task = tempfile::tempdir().unwrap();
        let dest = tempfile::tempdir().unwrap();
        let wd = task.path().join("wd");
        std::fs::create_dir_all(wd.join("res/a")).unwrap();
        for (p, body) in [("res/a/x.dat", "x"), ("res/y.dat", "y"), ("res/z.txt", "z"), ("top.dat", "t")] {
            std::fs::write(wd.join(p), body).unwrap();
        }
        std::fs::write(task.path().join("stdout.txt"), "out").unwrap();
        let to = |sub: &str| OutputFileDestination {
            path: Some(dest.path().join(sub).display().to_string()),
            ..Default::default()
        };
        let file = |pattern: &str, sub: &str, condition| OutputFile {
            file_pattern: pattern.into(),
            destination: to(sub),
            upload_options: OutputFileUploadOptions { upload_condition: condition },
        };
        let files = [
            file("res/**/*.dat", "dats", UploadCondition::TaskCompletion),
            file("../std*.txt", "logs", UploadCondition::TaskCompletion),
            file("top.dat", "only-on-failure", UploadCondition::TaskFailure),
            file("nothing*", "none", UploadCondition::TaskCompletion),
        ];
        upload(task.path(), &files, true, &HeadStore::default()).unwrap();
        let read = |p: &str| std::fs::read_to_string(dest.path().join(p)).ok();
        assert_eq!(read("dats/a/x.dat").as_deref(), Some("x"));
        assert_eq!(read("dats/y.dat").as_deref(), Some("y"));
        assert_eq!(read("dats/z.txt"), None);
        assert_eq!(read("logs/stdout.txt").as_deref(), Some("out"));
        assert!(!dest.path().join("only-on-failure").exists());
        let log = std::fs::read_to_string(task.path().join("fileuploadout.txt")).unwrap();
        assert!(log.contains("top.dat: not uploaded (TaskFailure and the task succeeded)"), "{log}");
        assert!(log.contains("nothing*: no file matched"), "{log}");
        assert_eq!(std::fs::read_to_string(task.path().join("fileuploaderr.txt")).unwrap(), "");
        // A destination that cannot be written: the error is named and logged.
        let blocked = OutputFile {
            file_pattern: "top.dat".into(),
            destination: OutputFileDestination { path: Some("/proc/no/such".into()), ..Default::default() },
            upload_options: Default::default(),
        };
        let e = upload(task.path(), &[blocked], true, &HeadStore::default()).unwrap_err();
        assert!(e.starts_with("1 output file(s) could not be uploaded: top.dat: creating /proc/no/such"), "{e}");
        let err = std::fs::read_to_string(task.path().join("fileuploaderr.txt")).unwrap();
        assert!(err.starts_with("top.dat: creating /proc/no/such"), "{err}");
    }
}
