//! The head's file store (`/files`) and the rules resource files follow, shared by the head
//! (checks at submit) and the launcher (checks again before writing anything).

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// Longest name a stored file may have.
pub const MAX_FILE_NAME: usize = 255;

/// One entry of `GET /files`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UploadedFile {
    /// The name it was stored under (`PUT /files/{name}`).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// When it was last written.
    pub last_modified: Timestamp,
}

/// Checks a stored file's name: like an id (letters, digits, `-`, `_`) but also `.`; 1 to 255
/// characters, and not `.` or `..`.
pub fn validate_file_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_FILE_NAME {
        return Err(format!("file name '{name}' must be 1 to {MAX_FILE_NAME} characters long"));
    }
    if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))) {
        return Err(format!(
            "file name '{name}' contains '{c}'; file names may hold only letters, digits, '-', '_' and '.'"
        ));
    }
    if name == "." || name == ".." {
        return Err(format!("file name '{name}' is not allowed"));
    }
    Ok(())
}

/// Checks a resource file's `filePath`: relative, without `..` or empty components.
pub fn check_file_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("must not be empty".into());
    }
    if path.starts_with('/') {
        return Err(format!("'{path}' is absolute; it must be relative to the task's working directory"));
    }
    if path.contains('\0') {
        return Err(format!("{path:?} contains a NUL byte"));
    }
    for part in path.split('/') {
        match part {
            ".." => return Err(format!("'{path}' contains '..'; it must stay inside the task's working directory")),
            "" | "." => {
                return Err(format!("'{path}' has an empty or '.' component; name a file such as 'in/data.txt'"))
            }
            _ => {}
        }
    }
    Ok(())
}

/// Parses `fileMode`: octal permission bits such as `0755` or `644` (at most `0777`: no
/// set-id or sticky bits).
pub fn parse_file_mode(mode: &str) -> Result<u32, String> {
    let bad = || format!("'{mode}' is not an octal file mode such as '0755' (1 to 4 digits 0-7)");
    if mode.is_empty() || mode.len() > 4 || !mode.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return Err(bad());
    }
    let bits = u32::from_str_radix(mode, 8).map_err(|_| bad())?;
    // A task's file that runs as its owner (or as root) must not run as anyone else.
    if bits & 0o7000 != 0 {
        return Err(format!(
            "'{mode}' sets the setuid, setgid or sticky bit; only permission bits (0-0777) may be set"
        ));
    }
    Ok(bits)
}

/// Checks an `httpUrl`: `http://` or `https://` followed by a host.
pub fn check_http_url(url: &str) -> Result<(), String> {
    let rest = ["http://", "https://"]
        .iter()
        .find_map(|p| url.get(..p.len()).filter(|s| s.eq_ignore_ascii_case(p)).map(|_| &url[p.len()..]))
        .ok_or_else(|| format!("'{url}' must start with http:// or https://"))?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("'{url}' has no host"));
    }
    Ok(())
}

/// Writes `data` to `path` with mode 0600 (a secret, a key), through a temporary file that is
/// fsync'ed and renamed over it; an error names the file.
pub fn write_private(path: &std::path::Path, data: &[u8]) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| format!("writing {}: {e}", tmp.display()))?;
    f.write_all(data).and_then(|()| f.sync_all()).map_err(|e| format!("writing {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("renaming {} to {}: {e}", tmp.display(), path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["a", "run.sh", "data-1_2.tar.gz", ".hidden"] {
            assert!(validate_file_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "ü", &"x".repeat(256)] {
            assert!(validate_file_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn paths() {
        for ok in ["a", "in/data.txt", "x/y/z..w"] {
            assert!(check_file_path(ok).is_ok(), "{ok}");
        }
        for bad in ["", "/etc/passwd", "../x", "a/../../b", "a//b", "a/", "./a", "a\0b"] {
            assert!(check_file_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn modes() {
        assert_eq!(parse_file_mode("0755"), Ok(0o755));
        assert_eq!(parse_file_mode("644"), Ok(0o644));
        assert_eq!(parse_file_mode("0777"), Ok(0o777));
        for setid in ["4755", "2755", "1777", "7777"] {
            assert!(parse_file_mode(setid).unwrap_err().contains("sets the setuid, setgid or sticky bit"), "{setid}");
        }
        for bad in ["", "8", "0x755", "07555", "rwx", "-1"] {
            assert!(parse_file_mode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn urls() {
        assert!(check_http_url("http://h:1/x").is_ok());
        assert!(check_http_url("HTTPS://h/x?y").is_ok());
        for bad in ["ftp://h/x", "h/x", "http://", "http:///x", "file:///etc/passwd"] {
            assert!(check_http_url(bad).is_err(), "{bad}");
        }
    }
}
