//! Application packages on the node: each version (named by its archive's digest) is fetched
//! from the head (the node proven by its certificate), checked against its SHA-256, and unpacked once into
//! `applications/ID#VERSION#DIGEST`, which a marker file completes (a half-unpacked one is
//! never used). Unpacking is one at a time per node.

use std::path::Path;

use gangway_api::apps::{PackageFormat, PackageToInstall};
use gangway_api::http::encode_component;

use crate::executor::Executor;

/// The failure code of an attempt whose application package could not be had (a
/// pre-processing error).
pub const PACKAGE_FAILED: &str = "ApplicationPackageFailed";

const DONE: &str = ".gangway-unpacked";

impl Executor {
    /// Unpacks what `packages` name that this node has not unpacked yet.
    pub(crate) async fn install_packages(&self, packages: &[PackageToInstall]) -> Result<(), String> {
        for p in packages {
            let what = format!("application package {} version {}", p.application_id, p.version);
            if p.sha256.is_empty() {
                return Err(format!("{what} is no longer on the head"));
            }
            let dir = self.layout.packages_dir().join(p.dir_name());
            if dir.join(DONE).exists() {
                continue;
            }
            let _one_at_a_time = self.package_lock.lock().await;
            if dir.join(DONE).exists() {
                continue;
            }
            let (head, p2) = (self.head_link(), p.clone());
            let bytes = tokio::task::spawn_blocking(move || download(&head, &p2))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("{what}: {e}"))?;
            let digest = gangway_api::sha256::hex_digest(&bytes);
            if digest != p.sha256 {
                return Err(format!("{what}: its archive's SHA-256 is {digest}, not {} as the head records", p.sha256));
            }
            let format = p.format;
            tokio::task::spawn_blocking(move || unpack(&dir, format, &bytes))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("{what}: {e}"))?;
            tracing::info!(application = %p.application_id, version = %p.version, "application package unpacked");
        }
        Ok(())
    }
}

fn download(head: &crate::join::HeadLink, p: &PackageToInstall) -> Result<Vec<u8>, String> {
    let mut http = head.client()?;
    let path = format!(
        "/applications/{}/versions/{}/content",
        encode_component(&p.application_id),
        encode_component(&p.version)
    );
    let resp = http.request("GET", &path, &[], None).map_err(|e| e.to_string())?;
    if !(200..300).contains(&resp.status) {
        return Err(format!("the head answered {} ({})", resp.status, String::from_utf8_lossy(&resp.body)));
    }
    Ok(resp.body)
}

/// Unpacks `archive` into `dir` through a temporary directory beside it, then marks it done.
fn unpack(dir: &Path, format: PackageFormat, archive: &[u8]) -> Result<(), String> {
    let parent = dir.parent().ok_or("no parent directory")?;
    std::fs::create_dir_all(parent).map_err(|e| format!("creating {}: {e}", parent.display()))?;
    let staging = tempfile::Builder::new().prefix(".unpacking-").tempdir_in(parent).map_err(|e| e.to_string())?;
    let file = staging.path().join("archive");
    std::fs::write(&file, archive).map_err(|e| format!("writing the archive: {e}"))?;
    let out = staging.path().join("content");
    std::fs::create_dir(&out).map_err(|e| e.to_string())?;
    let mut cmd = match format {
        PackageFormat::TarGz => {
            let mut c = std::process::Command::new("tar");
            c.arg("-xzf").arg(&file).arg("-C").arg(&out).arg("--no-same-owner");
            c
        }
        PackageFormat::Zip => {
            let mut c = std::process::Command::new("unzip");
            c.arg("-q").arg(&file).arg("-d").arg(&out);
            c
        }
    };
    let done = cmd.output().map_err(|e| format!("running {:?}: {e}", cmd.get_program()))?;
    if !done.status.success() {
        return Err(format!("unpacking failed: {}", String::from_utf8_lossy(&done.stderr).trim()));
    }
    std::fs::write(out.join(DONE), b"").map_err(|e| e.to_string())?;
    if dir.exists() {
        // A half-unpacked one from before (no marker): replaced.
        std::fs::remove_dir_all(dir).map_err(|e| format!("removing {}: {e}", dir.display()))?;
    }
    std::fs::rename(&out, dir).map_err(|e| format!("moving into {}: {e}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tar_gz_is_unpacked_and_marked_done() {
        let src = tempfile::tempdir().unwrap();
        std::fs::create_dir(src.path().join("bin")).unwrap();
        std::fs::write(src.path().join("bin/tool"), "#!/bin/sh\necho hi\n").unwrap();
        let archive = src.path().join("a.tar.gz");
        let ok = std::process::Command::new("tar")
            .arg("-czf")
            .arg(&archive)
            .arg("-C")
            .arg(src.path())
            .arg("bin")
            .status()
            .unwrap();
        assert!(ok.success());
        let bytes = std::fs::read(&archive).unwrap();
        assert_eq!(PackageFormat::sniff(&bytes), Some(PackageFormat::TarGz));
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("applications/tool#1#abc");
        unpack(&dir, PackageFormat::TarGz, &bytes).unwrap();
        assert_eq!(std::fs::read_to_string(dir.join("bin/tool")).unwrap(), "#!/bin/sh\necho hi\n");
        assert!(dir.join(DONE).exists());
        let e = unpack(&root.path().join("applications/bad"), PackageFormat::TarGz, b"\x1f\x8bnot really").unwrap_err();
        assert!(e.starts_with("unpacking failed"), "{e}");
    }
}
