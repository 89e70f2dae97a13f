//! Checks a task's `resourceFiles` at submit, so a launcher only ever sees well-formed ones.

use gangway_api::files::{check_file_path, check_http_url, parse_file_mode, validate_file_name};
use gangway_api::ResourceFile;

use crate::head::error::ApiError;

/// Checks every file of `files`; errors name the field and index (`resourceFiles[1].filePath: …`).
pub(crate) fn check_resource_files(files: &[ResourceFile], field: &str) -> Result<(), ApiError> {
    for (i, f) in files.iter().enumerate() {
        check_one(f).map_err(|(sub, why)| ApiError::invalid(format!("{field}[{i}]{sub}: {why}")))?;
    }
    Ok(())
}

/// `Err((".field" or "", why))`.
fn check_one(f: &ResourceFile) -> Result<(), (&'static str, String)> {
    let sources = [f.http_url.is_some(), f.path.is_some(), f.uploaded_file.is_some()];
    let n = sources.iter().filter(|s| **s).count();
    if n != 1 {
        return Err(("", format!("exactly one of httpUrl, path and uploadedFile must be set ({n} are)")));
    }
    check_file_path(&f.file_path).map_err(|e| (".filePath", e))?;
    if let Some(url) = &f.http_url {
        check_http_url(url).map_err(|e| (".httpUrl", e))?;
    }
    if let Some(p) = &f.path {
        if !p.starts_with('/') || p.contains('\0') {
            return Err((".path", format!("{p:?} must be an absolute path on the node")));
        }
    }
    if let Some(name) = &f.uploaded_file {
        validate_file_name(name).map_err(|e| (".uploadedFile", e))?;
    }
    if let Some(mode) = &f.file_mode {
        parse_file_mode(mode).map_err(|e| (".fileMode", e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(path: &str, name: &str) -> ResourceFile {
        ResourceFile { file_path: path.into(), uploaded_file: Some(name.into()), ..Default::default() }
    }

    /// `files` is refused with a message that starts with `prefix`.
    fn refused(files: &[ResourceFile], prefix: &str) {
        let e = check_resource_files(files, "resourceFiles").expect_err(prefix);
        let msg = e.body.message.value;
        assert!(msg.starts_with(prefix), "{msg:?} should start with {prefix:?}");
        assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
    }

    #[test]
    fn good_files_pass() {
        let files = [
            up("run.sh", "run.sh"),
            ResourceFile { file_path: "in/a.txt".into(), path: Some("/shared/a.txt".into()), ..Default::default() },
            ResourceFile {
                file_path: "b".into(),
                http_url: Some("https://example.org/b?x=1".into()),
                file_mode: Some("0755".into()),
                ..Default::default()
            },
        ];
        check_resource_files(&files, "resourceFiles").unwrap();
        check_resource_files(&[], "resourceFiles").unwrap();
    }

    #[test]
    fn every_bad_case_names_the_field_and_index() {
        let ok = up("a", "a");
        let both = ResourceFile { path: Some("/x".into()), ..up("a", "a") };
        refused(&[ok.clone(), both], "resourceFiles[1]: exactly one of httpUrl, path and uploadedFile");
        refused(&[ResourceFile { file_path: "a".into(), ..Default::default() }], "resourceFiles[0]: exactly one");
        refused(&[up("../a", "a")], "resourceFiles[0].filePath: '../a' contains '..'");
        refused(&[ok.clone(), up("/etc/x", "a")], "resourceFiles[1].filePath: '/etc/x' is absolute");
        refused(&[up("", "a")], "resourceFiles[0].filePath: must not be empty");
        refused(&[up("a/", "a")], "resourceFiles[0].filePath:");
        let ftp = ResourceFile { file_path: "a".into(), http_url: Some("ftp://h/a".into()), ..Default::default() };
        refused(&[ftp], "resourceFiles[0].httpUrl: 'ftp://h/a' must start with http:// or https://");
        let rel = ResourceFile { file_path: "a".into(), path: Some("rel/a".into()), ..Default::default() };
        refused(&[rel], "resourceFiles[0].path:");
        refused(&[up("a", "../etc")], "resourceFiles[0].uploadedFile: file name '../etc' contains '/'");
        refused(&[ResourceFile { file_mode: Some("0x1".into()), ..ok }], "resourceFiles[0].fileMode: '0x1'");
    }
}
