//! TLS between the head and everything that reaches it over TCP (clients, launchers): the
//! cluster CA's certificate is the one trust anchor they check the head against, a launcher
//! presents the certificate the head issued it when it joined, and the head knows which node a
//! certificate belongs to by its fingerprint (the SHA-256 of its DER encoding).
//!
//! rustls on the `ring` provider; everything here is shared by the blocking client (`http.rs`),
//! the launcher and the head.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};

/// The cluster CA's certificate, under the head's state directory (`tls/ca.crt`): what clients
/// on other machines need (as `GANGWAY_CA`) to reach the head over TCP.
pub const CA_PATH: &str = "tls/ca.crt";

/// The one crypto provider every TLS config here uses: ring, chosen for its build time
/// (aws-lc-sys is the slowest crate to build here); rustls marks it deprecated only because it
/// has no post-quantum key exchange.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    static PROVIDER: std::sync::OnceLock<Arc<rustls::crypto::CryptoProvider>> = std::sync::OnceLock::new();
    #[allow(deprecated)]
    PROVIDER
        .get_or_init(|| {
            // Key exchange on X25519 (or P-256): a handshake on P-384, which clients were seen
            // to pick, costs the head several times as much when every launcher reconnects.
            let mut p = rustls::crypto::ring::default_provider();
            p.kx_groups = vec![rustls::crypto::ring::kx_group::X25519, rustls::crypto::ring::kx_group::SECP256R1];
            Arc::new(p)
        })
        .clone()
}

/// Every certificate in a PEM text (in order), or what is wrong with it.
pub fn certs_from_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>().map_err(|e| e.to_string())?;
    if certs.is_empty() {
        return Err("no certificate in it".into());
    }
    Ok(certs)
}

/// The private key in a PEM text.
pub fn key_from_pem(pem: &[u8]) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| format!("no usable private key in it ({e})"))
}

/// The trust anchors in a CA's PEM.
pub fn roots(ca_pem: &[u8]) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for c in certs_from_pem(ca_pem)? {
        roots.add(c).map_err(|e| format!("not a usable CA certificate: {e}"))?;
    }
    Ok(roots)
}

/// A client's TLS settings: the head is checked against `ca_pem`; `identity` (certificate and
/// key PEM) is presented when given (a launcher's node certificate).
pub fn client_config(ca_pem: &[u8], identity: Option<(&[u8], &[u8])>) -> Result<Arc<ClientConfig>, String> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots(ca_pem)?);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder
            .with_client_auth_cert(certs_from_pem(cert)?, key_from_pem(key)?)
            .map_err(|e| format!("the certificate and key do not go together: {e}"))?,
    };
    Ok(Arc::new(config))
}

/// [`client_config`] from a CA file, naming the file in any error.
pub fn client_config_from_file(ca: &Path) -> Result<Arc<ClientConfig>, String> {
    let pem = std::fs::read(ca).map_err(|e| format!("cannot read the cluster CA {}: {e}", ca.display()))?;
    client_config(&pem, None).map_err(|e| format!("the cluster CA {}: {e}", ca.display()))
}

/// The name the head's certificate is checked against: the host of its URL.
pub fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(host.trim_start_matches('[').trim_end_matches(']').to_owned())
        .map_err(|e| format!("'{host}' cannot name a TLS server: {e}"))
}

/// A certificate's fingerprint: the hex SHA-256 of its DER encoding.
pub fn fingerprint(der: &[u8]) -> String {
    crate::sha256::hex_digest(der)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_pem_is_named() {
        assert!(certs_from_pem(b"hello").unwrap_err().contains("no certificate"));
        assert!(key_from_pem(b"hello").unwrap_err().contains("no usable private key"));
        assert!(client_config(b"", None).is_err());
        assert!(server_name("head.example").is_ok());
        assert!(server_name("10.0.0.1").is_ok());
        assert!(server_name("[::1]").is_ok());
    }
}
