//! Tokens and the cluster secret, kept in the state directory with mode 0600.

use std::fs;
use std::path::Path;

use anyhow::Context;

/// A new random secret: 32 bytes from the kernel, hex-encoded.
pub fn random_secret() -> anyhow::Result<String> {
    gangway_api::common::random_hex(32).context("reading /dev/urandom")
}

/// Reads the secret in `path`, creating it (mode 0600) on first use.
pub fn load_or_create_secret(path: &Path) -> anyhow::Result<String> {
    match fs::read_to_string(path) {
        Ok(s) if !s.trim().is_empty() => return Ok(s.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    let secret = random_secret()?;
    write_private(path, secret.as_bytes())?;
    Ok(secret)
}

/// Writes `data` to `path` atomically with mode 0600.
pub fn write_private(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    gangway_api::files::write_private(path, data).map_err(anyhow::Error::msg)
}

/// The token of an `Authorization: Bearer TOKEN` header.
pub fn bearer(header: Option<&str>) -> Option<&str> {
    header.and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer "))).map(str::trim)
}

/// Whether `a` and `b` are equal, in time that depends only on their lengths (a refusal does
/// not tell how much of a secret matched).
pub fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Compares a presented bearer token with the expected one in constant time.
pub fn token_matches(header: Option<&str>, expected: &str) -> bool {
    bearer(header).is_some_and(|presented| same_secret(presented.as_bytes(), expected.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        assert!(token_matches(Some("Bearer abc"), "abc"));
        assert!(!token_matches(Some("Bearer abd"), "abc"));
        assert!(!token_matches(Some("abc"), "abc"));
        assert!(!token_matches(None, "abc"));
        assert!(!token_matches(Some("Bearer "), "abc"));
    }

    #[test]
    fn secrets_persist_with_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cluster.secret");
        let a = load_or_create_secret(&p).unwrap();
        assert_eq!(a.len(), 64);
        assert_eq!(load_or_create_secret(&p).unwrap(), a);
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
    }
}
