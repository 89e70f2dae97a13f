//! Fetching a task's resource files into its working directory before it starts.
//!
//! Each file comes from exactly one source: `path` (a copy of a file on the node),
//! `httpUrl` (plain `http://` through the crate's own client; `https://` through the system
//! `curl`, which verifies the server against the system CA store) or `uploadedFile` (the head's
//! file store, read with the node's certificate, for the task's user). The head checked every field at submit; they are checked again here because
//! this is where a bad `filePath` would do harm: nothing is ever written outside `dest`, and a
//! file is written to a temporary name and renamed, so a symlink left in `dest` by an earlier
//! attempt is replaced, not followed.

use crate::join::HeadLink;
use crate::users::TaskUser;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use gangway_api::files::{check_file_path, parse_file_mode, validate_file_name};
use gangway_api::http::encode_component;
use gangway_api::messages::StartTask;
use gangway_api::{ErrorBody, ErrorCategory, ResourceFile, TaskFailureInformation, Timestamp};

use crate::executor::{Executor, Outcome};

/// The failure code of an attempt whose resource files could not be fetched (Azure's term).
pub const DOWNLOAD_FAILED: &str = "ResourceFileDownloadFailed";

impl Executor {
    /// Sets the TLS settings the launcher reaches the head with (the cluster CA and this
    /// node's certificate), for `uploadedFile` resource files, packages and outputs.
    pub fn with_head_tls(self, tls: Option<std::sync::Arc<rustls::ClientConfig>>) -> Executor {
        self.set_head_tls(tls);
        self
    }

    /// Replaces the TLS settings (a node that joined again).
    pub fn set_head_tls(&self, tls: Option<std::sync::Arc<rustls::ClientConfig>>) {
        *self.head_tls.write().expect("lock") = tls;
    }

    /// Fetches an attempt's resource files into `task_dir/wd`. A failure is the attempt's
    /// outcome: no exit code, so the head does not retry it (a pre-processing error).
    pub(crate) async fn fetch_resource_files(&self, start: &StartTask, task_dir: &Path) -> Result<(), Outcome> {
        if let Err(e) = self.install_packages(&start.packages).await {
            tracing::info!(job = %start.id.job, task = %start.id.task, error = %e, "application package failed");
            return Err(Outcome::failed(crate::packages::PACKAGE_FAILED, e));
        }
        if start.resource_files.is_empty() {
            return Ok(());
        }
        let wd = task_dir.join("wd");
        let user = self.user_of(task_dir);
        let owner = start.user.as_ref().map(|u| u.uid);
        fetch(&start.resource_files, &wd, &self.head_link(), user.as_deref(), owner).await.map_err(|e| {
            tracing::info!(job = %start.id.job, task = %start.id.task, error = %e, "resource file download failed");
            Outcome {
                exit_code: None,
                failure: Some(TaskFailureInformation {
                    category: ErrorCategory::UserError,
                    code: DOWNLOAD_FAILED.into(),
                    message: e.to_string(),
                }),
                start_time: None,
                end_time: Timestamp::now(),
                max_rss_bytes: None,
            }
        })
    }
}

/// Why a resource file could not be put in place. Every message names the file and its source.
#[derive(Debug, thiserror::Error)]
pub enum ResourceFileError {
    /// The file's description is not usable (no or several sources, bad mode, bad name).
    #[error("resource file '{file}': {why}")]
    Invalid {
        /// Its `filePath`.
        file: String,
        /// What is wrong.
        why: String,
    },
    /// `filePath` would land outside the working directory.
    #[error("resource file '{file}': refused: {why}")]
    Escape {
        /// Its `filePath`.
        file: String,
        /// How it escapes.
        why: String,
    },
    /// Copying from `path` failed.
    #[error("resource file '{file}' from path {from}: {err}")]
    Copy {
        /// Its `filePath`.
        file: String,
        /// The source path.
        from: String,
        /// What went wrong.
        #[source]
        err: io::Error,
    },
    /// Downloading (from `httpUrl` or the head's file store) failed.
    #[error("resource file '{file}' from {from}: {why}")]
    Download {
        /// Its `filePath`.
        file: String,
        /// `httpUrl …` or `uploadedFile …`.
        from: String,
        /// What went wrong (transport error or the server's status and message).
        why: String,
    },
    /// Writing it into the working directory failed.
    #[error("resource file '{file}': writing {path}: {err}")]
    Write {
        /// Its `filePath`.
        file: String,
        /// Where.
        path: PathBuf,
        /// What went wrong.
        #[source]
        err: io::Error,
    },
}

/// Fetches every file of `files` into `dest` (the task's working directory), in order; stops at
/// the first failure. `head` is for `uploadedFile`.
/// For a task that runs as `user`, `path` sources are opened with the user's permissions and
/// the files are put in `dest` by the user (see `place_as`); `uploadedFile`s are `owner`'s
/// (the uid the task runs as; None: the head's own user's).
pub async fn fetch(
    files: &[ResourceFile],
    dest: &Path,
    head: &HeadLink,
    user: Option<&TaskUser>,
    owner: Option<u32>,
) -> Result<(), ResourceFileError> {
    fetch_with(files, dest, head, None, user, owner).await
}

/// [`fetch`], with `ca_bundle` (when set) given to `curl` as `CURL_CA_BUNDLE` for `https://`
/// URLs in place of the system CA store; only the child sees it.
async fn fetch_with(
    files: &[ResourceFile],
    dest: &Path,
    head: &HeadLink,
    ca_bundle: Option<&Path>,
    user: Option<&TaskUser>,
    owner: Option<u32>,
) -> Result<(), ResourceFileError> {
    for f in files {
        fetch_one(f, dest, head, ca_bundle, user, owner).await?;
    }
    Ok(())
}

enum Source<'a> {
    Path(&'a str),
    Http(&'a str),
    Uploaded(&'a str),
}

fn source_of(f: &ResourceFile) -> Result<Source<'_>, ResourceFileError> {
    match (&f.path, &f.http_url, &f.uploaded_file) {
        (Some(p), None, None) => Ok(Source::Path(p)),
        (None, Some(u), None) => Ok(Source::Http(u)),
        (None, None, Some(n)) => Ok(Source::Uploaded(n)),
        _ => Err(ResourceFileError::Invalid {
            file: f.file_path.clone(),
            why: "exactly one of httpUrl, path and uploadedFile must be set".into(),
        }),
    }
}

async fn fetch_one(
    f: &ResourceFile,
    dest: &Path,
    head: &HeadLink,
    ca_bundle: Option<&Path>,
    user: Option<&TaskUser>,
    owner: Option<u32>,
) -> Result<(), ResourceFileError> {
    let file = f.file_path.clone();
    check_file_path(&f.file_path).map_err(|why| ResourceFileError::Escape { file: file.clone(), why })?;
    let mode = f
        .file_mode
        .as_deref()
        .map(parse_file_mode)
        .transpose()
        .map_err(|why| ResourceFileError::Invalid { file: file.clone(), why: format!("fileMode: {why}") })?;
    let source = source_of(f)?;
    // A task's user owns its working directory (and may have left links in it): the file is
    // fetched into a private staging directory and put in place by the user.
    let staging = match user {
        Some(_) => Some(
            tempfile::Builder::new().prefix("gangway-fetch").tempdir().map_err(|err| ResourceFileError::Write {
                file: file.clone(),
                path: std::env::temp_dir(),
                err,
            })?,
        ),
        None => None,
    };
    let (target, tmp) = match &staging {
        Some(dir) => (dest.join(&f.file_path), dir.path().join("file")),
        None => {
            let target = prepare_target(dest, &f.file_path)?;
            let tmp = tmp_name(&target);
            (target, tmp)
        }
    };
    let written = match source {
        Source::Path(from) => copy(&file, from, &tmp, user.cloned()).await,
        Source::Http(url) if is_https(url) => download_https(&file, url, &tmp, ca_bundle).await,
        Source::Http(url) => {
            let bytes = download_url(&file, url).await?;
            write(&file, &tmp, bytes).await
        }
        Source::Uploaded(name) => {
            validate_file_name(name).map_err(|why| ResourceFileError::Invalid {
                file: file.clone(),
                why: format!("uploadedFile: {why}"),
            })?;
            let bytes = download_uploaded(&file, name, head, owner).await?;
            write(&file, &tmp, bytes).await
        }
    };
    if let Some(u) = user {
        return written.and_then(|()| place_as(u, &tmp, dest, &f.file_path, mode));
    }
    let finished = written.and_then(|()| {
        let werr = |err| ResourceFileError::Write { file: file.clone(), path: target.clone(), err };
        if let Some(m) = mode {
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(m)).map_err(werr)?;
        }
        std::fs::rename(&tmp, &target).map_err(werr)
    });
    if finished.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    finished
}

/// Puts the fetched file `staged` (the launcher's) at `dest/rel` as `user`, with `mode` or
/// the staged file's permission bits: the user creates the directories and the file, so a
/// link they left can lead only where they may write themselves.
fn place_as(
    user: &TaskUser,
    staged: &Path,
    dest: &Path,
    rel: &str,
    mode: Option<u32>,
) -> Result<(), ResourceFileError> {
    use std::os::unix::fs::PermissionsExt as _;
    let werr = |path: &Path, err| ResourceFileError::Write { file: rel.to_owned(), path: path.to_owned(), err };
    let mut src = std::fs::File::open(staged).map_err(|e| werr(staged, e))?;
    let bits = src.metadata().map_err(|e| werr(staged, e))?.permissions().mode() & 0o777;
    let mode = mode.unwrap_or(bits);
    let placed = user.with_permissions(|| {
        let target = prepare_target(dest, rel).map_err(io::Error::other)?;
        let tmp = tmp_name(&target);
        let _ = std::fs::remove_file(&tmp);
        let mut out = std::fs::File::options().write(true).create_new(true).open(&tmp)?;
        let copied = io::copy(&mut src, &mut out)
            .and_then(|_| out.set_permissions(std::fs::Permissions::from_mode(mode)))
            .and_then(|()| std::fs::rename(&tmp, &target));
        if copied.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        copied
    });
    placed.map_err(|e| match e.get_ref().and_then(|i| i.downcast_ref::<ResourceFileError>()) {
        Some(ResourceFileError::Escape { file, why }) => {
            ResourceFileError::Escape { file: file.clone(), why: why.clone() }
        }
        _ => werr(&dest.join(rel), e),
    })
}

/// Creates the parent directories of `dest/rel` and checks that they resolve inside `dest`
/// (a directory on the way could be a symlink an earlier attempt left).
fn prepare_target(dest: &Path, rel: &str) -> Result<PathBuf, ResourceFileError> {
    let target = dest.join(rel);
    let werr = |path: &Path, err| ResourceFileError::Write { file: rel.to_owned(), path: path.to_owned(), err };
    std::fs::create_dir_all(dest).map_err(|e| werr(dest, e))?;
    let parent = target.parent().unwrap_or(dest);
    std::fs::create_dir_all(parent).map_err(|e| werr(parent, e))?;
    let root = dest.canonicalize().map_err(|e| werr(dest, e))?;
    let real = parent.canonicalize().map_err(|e| werr(parent, e))?;
    if !real.starts_with(&root) {
        return Err(ResourceFileError::Escape {
            file: rel.to_owned(),
            why: format!("its directory resolves to {}, outside the working directory", real.display()),
        });
    }
    Ok(target)
}

fn tmp_name(target: &Path) -> PathBuf {
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    target.with_file_name(format!(".{name}.gangway-{}", std::process::id()))
}

/// Copies the regular file `from` to `tmp` with its permission bits (never set-id ones),
/// opening it as `user` when the task runs as one: a file the user could not read stays unread.
async fn copy(file: &str, from: &str, tmp: &Path, user: Option<TaskUser>) -> Result<(), ResourceFileError> {
    use std::os::unix::fs::PermissionsExt as _;
    let (from_owned, tmp_owned) = (from.to_owned(), tmp.to_owned());
    let r = tokio::task::spawn_blocking(move || {
        let mut src = crate::users::as_user(user.as_ref(), || std::fs::File::open(&from_owned))?;
        let meta = src.metadata()?;
        if !meta.is_file() {
            return Err(io::Error::other("not a regular file"));
        }
        let mut dst = std::fs::File::create(&tmp_owned)?;
        io::copy(&mut src, &mut dst)?;
        dst.set_permissions(std::fs::Permissions::from_mode(meta.permissions().mode() & 0o777))
    })
    .await
    .unwrap_or_else(|e| Err(io::Error::other(e)));
    r.map_err(|err| ResourceFileError::Copy { file: file.to_owned(), from: from.to_owned(), err })
}

async fn write(file: &str, tmp: &Path, bytes: Vec<u8>) -> Result<(), ResourceFileError> {
    tokio::fs::write(tmp, bytes).await.map_err(|err| ResourceFileError::Write {
        file: file.to_owned(),
        path: tmp.to_owned(),
        err,
    })
}

/// Splits `http://authority/path?query` into the base the client takes and the request path.
fn split_url(url: &str) -> Option<(String, String)> {
    let (scheme, rest) = url.split_once("://")?;
    let rest = rest.split('#').next().unwrap_or("");
    let at = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(at);
    let path = if path.starts_with('/') { path.to_owned() } else { format!("/{path}") };
    Some((format!("{scheme}://{authority}"), path))
}

fn is_https(url: &str) -> bool {
    url.get(..8).is_some_and(|s| s.eq_ignore_ascii_case("https://"))
}

/// The longest an `https://` download may take, in seconds (curl's `--max-time`).
const HTTPS_MAX_TIME_S: u32 = 300;

/// Downloads an `https://` URL into `tmp` with the system `curl`: https only (redirects
/// included), the server's certificate verified (against `ca_bundle` when set, else the
/// system CA store), any status but 2xx an error. curl's configuration files are not read.
async fn download_https(file: &str, url: &str, tmp: &Path, ca_bundle: Option<&Path>) -> Result<(), ResourceFileError> {
    let fail = |why: String| ResourceFileError::Download { file: file.to_owned(), from: format!("httpUrl {url}"), why };
    let mut cmd = tokio::process::Command::new("curl");
    cmd.arg("--disable")
        .args(["--fail", "--silent", "--show-error", "--location"])
        .args(["--proto", "=https", "--proto-redir", "=https"])
        .args(["--max-time", &HTTPS_MAX_TIME_S.to_string()])
        .arg("--output")
        .arg(tmp)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    if let Some(ca) = ca_bundle {
        cmd.env("CURL_CA_BUNDLE", ca);
    }
    let out = match cmd.output().await {
        Ok(out) => out,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(fail(
                "https downloads need the curl command, which is not installed on this node (install curl)".into(),
            ))
        }
        Err(e) => return Err(fail(format!("running curl: {e}"))),
    };
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stderr: String = stderr.trim().chars().take(500).collect();
    let status = match out.status.code() {
        Some(c) => format!("exit code {c}"),
        None => format!("{}", out.status),
    };
    Err(fail(if stderr.is_empty() {
        format!("curl failed ({status})")
    } else {
        format!("curl failed ({status}): {stderr}")
    }))
}

async fn download_url(file: &str, url: &str) -> Result<Vec<u8>, ResourceFileError> {
    let from = format!("httpUrl {url}");
    let (base, path) = split_url(url).ok_or_else(|| ResourceFileError::Download {
        file: file.to_owned(),
        from: from.clone(),
        why: "not a URL".into(),
    })?;
    get(file, from, HeadLink { url: base, tls: None }, path).await
}

async fn download_uploaded(
    file: &str,
    name: &str,
    head: &HeadLink,
    owner: Option<u32>,
) -> Result<Vec<u8>, ResourceFileError> {
    let mut path = format!("/files/{}", encode_component(name));
    if let Some(uid) = owner {
        path.push_str(&format!("?owner={uid}"));
    }
    // The node's certificate says who asks; the head lets it reach only the files of users
    // whose work it runs.
    get(file, format!("uploadedFile {name}"), head.clone(), path).await
}

/// One GET with the blocking client, off the runtime's threads; anything but 2xx is an error.
async fn get(file: &str, from: String, server: HeadLink, path: String) -> Result<Vec<u8>, ResourceFileError> {
    let r = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, String> {
        let mut client = server.client()?;
        let resp = client.request("GET", &path, &[], None).map_err(|e| e.to_string())?;
        if (200..300).contains(&resp.status) {
            return Ok(resp.body);
        }
        let detail = serde_json::from_slice::<ErrorBody>(&resp.body)
            .map(|b| format!("{}: {}", b.code, b.message.value))
            .unwrap_or_else(|_| resp.text().chars().take(200).collect());
        Err(format!("the server answered {}: {}", resp.status, detail.trim()))
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()));
    r.map_err(|why| ResourceFileError::Download { file: file.to_owned(), from, why })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_path(file: &str, src: &Path, mode: Option<&str>) -> ResourceFile {
        ResourceFile {
            file_path: file.into(),
            path: Some(src.to_string_lossy().into_owned()),
            file_mode: mode.map(Into::into),
            ..Default::default()
        }
    }

    async fn run(files: &[ResourceFile], dest: &Path) -> Result<(), ResourceFileError> {
        fetch(files, dest, &HeadLink::default(), None, None).await
    }

    #[tokio::test]
    async fn resource_files_copy_from_paths_into_subdirectories_with_modes() {
        let src = tempfile::tempdir().unwrap();
        let dest = tempfile::tempdir().unwrap();
        std::fs::write(src.path().join("a.sh"), "#!/bin/sh\necho hi\n").unwrap();
        std::fs::write(src.path().join("b.txt"), "data").unwrap();
        let files = [
            from_path("run.sh", &src.path().join("a.sh"), Some("0755")),
            from_path("in/deep/b.txt", &src.path().join("b.txt"), Some("600")),
        ];
        run(&files, dest.path()).await.unwrap();
        let meta = |p: &str| std::fs::metadata(dest.path().join(p)).unwrap().permissions().mode() & 0o7777;
        assert_eq!(std::fs::read_to_string(dest.path().join("run.sh")).unwrap(), "#!/bin/sh\necho hi\n");
        assert_eq!(std::fs::read_to_string(dest.path().join("in/deep/b.txt")).unwrap(), "data");
        assert_eq!(meta("run.sh"), 0o755);
        assert_eq!(meta("in/deep/b.txt"), 0o600);
        // Nothing but the files themselves is left behind.
        let names: Vec<_> = std::fs::read_dir(dest.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[tokio::test]
    async fn a_path_is_read_with_the_tasks_users_permissions() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        // The tests run as root (CI does): the task's user here is `nobody`.
        assert_eq!(unsafe { libc::geteuid() }, 0, "this test needs root, as the launcher that switches users");
        let run_as = gangway_api::messages::RunAs { uid: 65534, gid: None, name: "nobody".into() };
        let nobody = TaskUser::resolve(Some(&run_as)).unwrap().expect("nobody exists");
        let src = tempfile::tempdir().unwrap();
        std::fs::set_permissions(src.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
        let (secret, public) = (src.path().join("secret"), src.path().join("public"));
        std::fs::write(&secret, "s3cret").unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&public, "hello").unwrap();
        std::fs::set_permissions(&public, std::fs::Permissions::from_mode(0o4755)).unwrap();
        // As the executor leaves it: the working directory is the user's.
        let dest = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dest.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
        let wd = dest.path().join("wd");
        std::fs::create_dir(&wd).unwrap();
        nobody.give(&wd).unwrap();
        let e = fetch(&[from_path("s", &secret, None)], &wd, &HeadLink::default(), Some(&nobody), None)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("resource file 's' from path") && e.contains("Permission denied"), "{e}");
        assert!(!wd.join("s").exists());
        fetch(&[from_path("sub/p", &public, None)], &wd, &HeadLink::default(), Some(&nobody), None).await.unwrap();
        let meta = std::fs::metadata(wd.join("sub/p")).unwrap();
        assert_eq!(std::fs::read_to_string(wd.join("sub/p")).unwrap(), "hello");
        assert_eq!((meta.uid(), meta.mode() & 0o7777), (65534, 0o755), "the user's, without the set-id bit");
        assert_eq!(std::fs::metadata(wd.join("sub")).unwrap().uid(), 65534);
        // A link the user left where the file goes (or its temporary name) leads nowhere the
        // user could not write: root's file stays as it was.
        let root_file = src.path().join("roots");
        std::fs::write(&root_file, "root's").unwrap();
        std::os::unix::fs::symlink(&root_file, wd.join("sub/q")).unwrap();
        std::os::unix::fs::symlink(&root_file, tmp_name(&wd.join("sub/q"))).unwrap();
        std::os::unix::fs::symlink(src.path(), wd.join("away")).unwrap();
        fetch(&[from_path("sub/q", &public, None)], &wd, &HeadLink::default(), Some(&nobody), None).await.unwrap();
        assert_eq!(std::fs::read_to_string(&root_file).unwrap(), "root's");
        assert_eq!(std::fs::read_to_string(wd.join("sub/q")).unwrap(), "hello", "the link was replaced");
        let e = fetch(&[from_path("away/r", &public, None)], &wd, &HeadLink::default(), Some(&nobody), None)
            .await
            .unwrap_err();
        assert!(matches!(e, ResourceFileError::Escape { .. }), "{e}");
        assert!(!src.path().join("r").exists());
    }

    #[tokio::test]
    async fn resource_files_that_would_escape_are_refused() {
        let src = tempfile::tempdir().unwrap();
        let outer = tempfile::tempdir().unwrap();
        let dest = outer.path().join("wd");
        std::fs::create_dir(&dest).unwrap();
        std::fs::write(src.path().join("x"), "x").unwrap();
        for bad in ["../x", "a/../../x", "/tmp/x", ""] {
            let e = run(&[from_path(bad, &src.path().join("x"), None)], &dest).await.unwrap_err();
            assert!(matches!(e, ResourceFileError::Escape { .. }), "{bad}: {e}");
        }
        // A symlinked directory left in the working directory is not followed out of it.
        std::os::unix::fs::symlink(outer.path(), dest.join("link")).unwrap();
        let e = run(&[from_path("link/x", &src.path().join("x"), None)], &dest).await.unwrap_err();
        assert!(matches!(e, ResourceFileError::Escape { .. }), "{e}");
        assert!(!outer.path().join("x").exists());
        // A symlink in the file's place is replaced, not written through.
        std::os::unix::fs::symlink(outer.path().join("victim"), dest.join("f")).unwrap();
        run(&[from_path("f", &src.path().join("x"), None)], &dest).await.unwrap();
        assert!(!outer.path().join("victim").exists());
        assert_eq!(std::fs::read_to_string(dest.join("f")).unwrap(), "x");
    }

    #[tokio::test]
    async fn resource_file_errors_name_the_file_and_the_source() {
        let dest = tempfile::tempdir().unwrap();
        let e = run(&[from_path("a", Path::new("/no/such/file"), None)], dest.path()).await.unwrap_err();
        assert!(matches!(e, ResourceFileError::Copy { .. }));
        let msg = e.to_string();
        assert!(msg.contains("'a'") && msg.contains("/no/such/file"), "{msg}");

        // Nothing listens on port 9: curl's connection error, with its exit code.
        let https = ResourceFile {
            file_path: "b".into(),
            http_url: Some("https://127.0.0.1:9/b".into()),
            ..Default::default()
        };
        let msg = run(&[https], dest.path()).await.unwrap_err().to_string();
        assert!(
            msg.contains("httpUrl https://127.0.0.1:9/b") && msg.contains("'b'") && msg.contains("exit code 7"),
            "{msg}"
        );

        let up = ResourceFile { file_path: "c".into(), uploaded_file: Some("c.sh".into()), ..Default::default() };
        let msg = run(&[up], dest.path()).await.unwrap_err().to_string();
        assert!(msg.contains("uploadedFile c.sh") && msg.contains("'c'"), "{msg}");

        let two = ResourceFile { uploaded_file: Some("x".into()), ..from_path("d", Path::new("/x"), None) };
        assert!(matches!(run(&[two], dest.path()).await.unwrap_err(), ResourceFileError::Invalid { .. }));
        let mode = from_path("e", Path::new("/x"), Some("999"));
        assert!(run(&[mode], dest.path()).await.unwrap_err().to_string().contains("fileMode"));
        assert!(!dest.path().join("a").exists());
    }

    #[test]
    fn urls_split_into_base_and_path() {
        let s = |u| split_url(u).unwrap();
        assert_eq!(s("http://h:8/a/b?c=1#f"), ("http://h:8".into(), "/a/b?c=1".into()));
        assert_eq!(s("http://h"), ("http://h".into(), "/".into()));
        assert_eq!(s("http://h?q"), ("http://h".into(), "/?q".into()));
    }

    /// `https://` through the system curl, against a throwaway CA and a python3 HTTPS server.
    mod https {
        use super::*;
        use std::io::{BufRead, BufReader};
        use std::process::{Child, Command, Stdio};

        fn openssl(dir: &Path, args: &[&str]) {
            let out = Command::new("openssl").args(args).current_dir(dir).output().expect("run openssl");
            assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }

        /// A self-signed CA `<name>.pem` (key `<name>.key`) in `dir`.
        fn make_ca(dir: &Path, name: &str) {
            let (key, pem, subj) = (format!("{name}.key"), format!("{name}.pem"), format!("/CN=gangway test {name}"));
            openssl(
                dir,
                &[
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-keyout",
                    &key,
                    "-out",
                    &pem,
                    "-days",
                    "2",
                    "-subj",
                    &subj,
                    "-addext",
                    "basicConstraints=critical,CA:TRUE",
                    "-addext",
                    "keyUsage=critical,keyCertSign,cRLSign",
                ],
            );
        }

        /// `server.pem`/`server.key` for localhost (and 127.0.0.1), signed by CA `ca`.
        fn make_server_cert(dir: &Path, ca: &str) {
            std::fs::write(
                dir.join("ext.cnf"),
                "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
            )
            .unwrap();
            openssl(
                dir,
                &[
                    "req",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-keyout",
                    "server.key",
                    "-out",
                    "server.csr",
                    "-subj",
                    "/CN=localhost",
                ],
            );
            let (ca_pem, ca_key) = (format!("{ca}.pem"), format!("{ca}.key"));
            openssl(
                dir,
                &[
                    "x509",
                    "-req",
                    "-in",
                    "server.csr",
                    "-CA",
                    &ca_pem,
                    "-CAkey",
                    &ca_key,
                    "-CAcreateserial",
                    "-out",
                    "server.pem",
                    "-days",
                    "2",
                    "-extfile",
                    "ext.cnf",
                ],
            );
        }

        const SERVER: &str = r#"
import functools, http.server, ssl, sys
root, cert, key = sys.argv[1:4]
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=root)
handler.log_message = lambda *a: None
httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
print(httpd.server_address[1], flush=True)
httpd.serve_forever()
"#;

        /// The python3 HTTPS server, killed (and reaped) on drop.
        struct Server {
            child: Child,
            port: u16,
        }

        impl Drop for Server {
            fn drop(&mut self) {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }

        /// Serves `dir/root` over https on 127.0.0.1 with `dir/server.{pem,key}`.
        fn serve(dir: &Path) -> Server {
            let child = Command::new("python3")
                .arg("-c")
                .arg(SERVER)
                .arg(dir.join("root"))
                .arg(dir.join("server.pem"))
                .arg(dir.join("server.key"))
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("run python3");
            let mut server = Server { child, port: 0 };
            let mut line = String::new();
            BufReader::new(server.child.stdout.take().unwrap()).read_line(&mut line).unwrap();
            server.port = line.trim().parse().unwrap_or_else(|_| panic!("python3 server said {line:?}"));
            server
        }

        /// A tempdir with CAs `ca` (which signed the server's certificate) and `other`, a file
        /// `root/data.bin`, and the server running.
        fn setup() -> (tempfile::TempDir, Server) {
            let dir = tempfile::tempdir().unwrap();
            make_ca(dir.path(), "ca");
            make_ca(dir.path(), "other");
            make_server_cert(dir.path(), "ca");
            std::fs::create_dir(dir.path().join("root")).unwrap();
            let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
            std::fs::write(dir.path().join("root/data.bin"), data).unwrap();
            let server = serve(dir.path());
            (dir, server)
        }

        fn from_url(file: &str, url: &str, mode: Option<&str>) -> ResourceFile {
            ResourceFile {
                file_path: file.into(),
                http_url: Some(url.into()),
                file_mode: mode.map(Into::into),
                ..Default::default()
            }
        }

        #[tokio::test]
        async fn resource_files_over_https_are_fetched_with_curl() {
            let (dir, server) = setup();
            let dest = tempfile::tempdir().unwrap();
            let ca = dir.path().join("ca.pem");
            let url = format!("https://localhost:{}/data.bin", server.port);
            let files = [from_url("in/data.bin", &url, Some("0640"))];
            fetch_with(&files, dest.path(), &HeadLink::default(), Some(&ca), None, None).await.unwrap();
            let got = std::fs::read(dest.path().join("in/data.bin")).unwrap();
            assert_eq!(got, std::fs::read(dir.path().join("root/data.bin")).unwrap());
            let mode = std::fs::metadata(dest.path().join("in/data.bin")).unwrap().permissions().mode() & 0o7777;
            assert_eq!(mode, 0o640);
            // Nothing but the file is left behind.
            let names: Vec<_> =
                std::fs::read_dir(dest.path().join("in")).unwrap().map(|e| e.unwrap().file_name()).collect();
            assert_eq!(names.len(), 1, "{names:?}");
        }

        #[tokio::test]
        async fn resource_files_over_https_with_an_unverifiable_certificate_fail() {
            let (dir, server) = setup();
            let dest = tempfile::tempdir().unwrap();
            let url = format!("https://localhost:{}/data.bin", server.port);
            // Against another CA, and against the system store: the certificate does not verify.
            for ca in [Some(dir.path().join("other.pem")), None] {
                let e = fetch_with(
                    &[from_url("d", &url, None)],
                    dest.path(),
                    &HeadLink::default(),
                    ca.as_deref(),
                    None,
                    None,
                )
                .await
                .unwrap_err();
                assert!(matches!(e, ResourceFileError::Download { .. }), "{e}");
                let msg = e.to_string();
                assert!(msg.contains(&format!("httpUrl {url}")) && msg.contains("'d'"), "{msg}");
                assert!(msg.contains("exit code 60") && msg.contains("certificate"), "{msg}");
                assert!(std::fs::read_dir(dest.path()).unwrap().next().is_none(), "left a file behind");
            }
        }

        #[tokio::test]
        async fn resource_files_over_https_that_are_missing_fail_with_the_status() {
            let (dir, server) = setup();
            let dest = tempfile::tempdir().unwrap();
            let ca = dir.path().join("ca.pem");
            let url = format!("https://localhost:{}/nope.bin", server.port);
            let e = fetch_with(&[from_url("n", &url, None)], dest.path(), &HeadLink::default(), Some(&ca), None, None)
                .await
                .unwrap_err();
            let msg = e.to_string();
            assert!(msg.contains(&format!("httpUrl {url}")) && msg.contains("'n'"), "{msg}");
            assert!(msg.contains("404") && msg.contains("exit code 22"), "{msg}");
            assert!(std::fs::read_dir(dest.path()).unwrap().next().is_none(), "left a file behind");
        }
    }
}
