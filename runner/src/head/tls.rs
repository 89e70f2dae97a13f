//! The cluster CA and the head's TLS.
//!
//! `gangway head` creates the CA once (`STATE_DIR/tls/ca.key`, 0600, and `ca.crt`, which
//! clients and launchers on other machines are given) and a fresh server certificate for
//! itself at every start, for the names and addresses it is reached by. A node that joins
//! gets a client certificate signed by the CA for its own key (the launcher keeps the key);
//! the TCP port then verifies any client certificate against the CA, and the head maps a
//! verified certificate to its node by fingerprint (`state/trust.rs`), where revocation lives.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, PublicKeyData, SignatureAlgorithm, PKCS_ECDSA_P256_SHA256,
};
use rustls::server::WebPkiClientVerifier;

/// The CA's subject: fixed, so the issuer rebuilt from the key at each start matches the
/// certificate on disk.
const CA_NAME: &str = "gangway cluster CA";
/// How long the CA and the certificates it issues are valid: revocation, not expiry, ends a
/// node's certificate.
const VALID_DAYS: i64 = 3650;

/// The cluster's CA: its certificate as clients get it, and what signs with it.
pub struct ClusterCa {
    ca_pem: String,
    ca_path: PathBuf,
    issuer: rcgen::Certificate,
    key: KeyPair,
}

impl ClusterCa {
    /// Loads the CA under `dir` (`STATE_DIR/tls`), creating it the first time.
    pub fn load_or_create(dir: &Path) -> anyhow::Result<ClusterCa> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        // Others may read the CA's certificate (clients need it), never its key.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("setting the mode of {}", dir.display()))?;
        let (key_path, ca_path) = (dir.join("ca.key"), dir.join("ca.crt"));
        let key = match std::fs::read_to_string(&key_path) {
            Ok(pem) => {
                KeyPair::from_pem(&pem).with_context(|| format!("{} holds no usable key", key_path.display()))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).context("making the CA's key")?;
                super::auth::write_private(&key_path, key.serialize_pem().as_bytes())?;
                key
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", key_path.display())),
        };
        let issuer = ca_params().self_signed(&key).context("signing the CA certificate")?;
        let ca_pem = match std::fs::read_to_string(&ca_path) {
            Ok(pem) => pem,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let pem = issuer.pem();
                write_public(&ca_path, pem.as_bytes())?;
                pem
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", ca_path.display())),
        };
        gangway_api::tls::roots(ca_pem.as_bytes())
            .map_err(|e| anyhow::anyhow!("the CA certificate {}: {e}", ca_path.display()))?;
        Ok(ClusterCa { ca_pem, ca_path, issuer, key })
    }

    /// The CA's certificate (PEM), which clients check the head against.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Where the CA's certificate is (for `client.json`).
    pub fn ca_path(&self) -> &Path {
        &self.ca_path
    }

    /// The TCP port's TLS: a new certificate for `names` (host names and addresses), and
    /// client certificates verified against the CA when presented (REST clients present none).
    pub fn server_config(&self, names: &[String]) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).context("making the head's key")?;
        let mut params = CertificateParams::new(names.to_vec()).context("the head's names")?;
        params.distinguished_name = name("gangway head");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        validity(&mut params);
        let cert = params.signed_by(&key, &self.issuer, &self.key).context("signing the head's certificate")?;
        let provider = gangway_api::tls::provider();
        let roots = gangway_api::tls::roots(self.ca_pem.as_bytes()).map_err(anyhow::Error::msg)?;
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .allow_unauthenticated()
            .build()
            .context("the client certificate verifier")?;
        let chain = vec![cert.der().clone()];
        let key = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).map_err(anyhow::Error::msg)?;
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS versions")?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .context("the head's certificate")?;
        Ok(Arc::new(config))
    }

    /// A client certificate for node `node`, for the public key `public_key` (a P-256 point,
    /// uncompressed, as the launcher sends it): its PEM and fingerprint.
    pub fn issue_node(&self, node: &str, public_key: &[u8]) -> Result<(String, String), String> {
        // An uncompressed P-256 point: 0x04, then 32 bytes of x and 32 of y.
        if public_key.len() != 65 || public_key[0] != 4 {
            return Err(format!(
                "publicKey must be an uncompressed P-256 public key (65 bytes starting with 04), got {} bytes",
                public_key.len()
            ));
        }
        let mut params = CertificateParams::new(Vec::new()).map_err(|e| e.to_string())?;
        params.distinguished_name = name(node);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        validity(&mut params);
        let key = NodeKey(public_key.to_vec());
        let cert = params.signed_by(&key, &self.issuer, &self.key).map_err(|e| format!("signing: {e}"))?;
        Ok((cert.pem(), gangway_api::tls::fingerprint(cert.der())))
    }
}

/// A node's public key, as rcgen signs a certificate for it.
struct NodeKey(Vec<u8>);

impl PublicKeyData for NodeKey {
    fn der_bytes(&self) -> &[u8] {
        &self.0
    }

    fn algorithm(&self) -> &SignatureAlgorithm {
        &PKCS_ECDSA_P256_SHA256
    }
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = name(CA_NAME);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    validity(&mut params);
    params
}

fn name(common: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common);
    dn
}

/// From a day ago (clocks differ) for [`VALID_DAYS`].
fn validity(params: &mut CertificateParams) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let at = |secs: i64| rcgen::date_time_ymd(1970, 1, 1) + std::time::Duration::from_secs(secs.max(0) as u64);
    params.not_before = at(now - 86_400);
    params.not_after = at(now + VALID_DAYS * 86_400);
}

/// Writes a file others may read (the CA's certificate), through a temporary file.
fn write_public(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, data).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

/// The names the head's certificate carries: `localhost` and the loopback addresses, this
/// machine's host name, the address it listens on, and the site's own (`--tls-name`).
pub fn head_names(listen: std::net::IpAddr, extra: &[String]) -> Vec<String> {
    let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned(), listen.to_string()];
    if let Some(h) = gangway_api::users::host_name() {
        names.push(h);
    }
    names.extend(extra.iter().cloned());
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ca_survives_a_restart_and_its_certificates_verify() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ClusterCa::load_or_create(&dir.path().join("tls")).unwrap();
        let again = ClusterCa::load_or_create(&dir.path().join("tls")).unwrap();
        assert_eq!(ca.ca_pem(), again.ca_pem(), "the CA is created once");
        use std::os::unix::fs::PermissionsExt;
        let mode = |f: &str| std::fs::metadata(dir.path().join("tls").join(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode("ca.key"), mode("ca.crt")), (0o600, 0o644));
        // A node certificate issued after the restart chains to the CA made before it.
        let node_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let (pem, fp) = again.issue_node("node3", node_key.public_key_raw()).unwrap();
        let der = gangway_api::tls::certs_from_pem(pem.as_bytes()).unwrap().remove(0);
        assert_eq!(fp, gangway_api::tls::fingerprint(&der));
        let roots = gangway_api::tls::roots(ca.ca_pem().as_bytes()).unwrap();
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), gangway_api::tls::provider()).build().unwrap();
        let now = rustls::pki_types::UnixTime::now();
        verifier.verify_client_cert(&der, &[], now).expect("the node certificate verifies");
        // A certificate from another CA does not.
        let other = ClusterCa::load_or_create(&dir.path().join("other")).unwrap();
        let (pem, _) = other.issue_node("node3", node_key.public_key_raw()).unwrap();
        let der = gangway_api::tls::certs_from_pem(pem.as_bytes()).unwrap().remove(0);
        assert!(verifier.verify_client_cert(&der, &[], now).is_err());
        assert!(ca.issue_node("node3", b"short").unwrap_err().contains("uncompressed P-256"));
        assert!(ca.server_config(&head_names("127.0.0.1".parse().unwrap(), &["head.example".into()])).is_ok());
    }
}
