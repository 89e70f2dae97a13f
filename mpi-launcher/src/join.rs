//! This node's place in the cluster's trust: the cluster CA it checks the head against and the
//! certificate it proves who it is with, kept in `ROOT/tls/`. The first start joins with a
//! join token (`gangway node join-token`): the launcher makes its own key, sends the public
//! half with its name, and keeps the certificate the head's CA signs for it; later starts
//! reuse it. The key never leaves the node.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use gangway_api::http::HttpClient;
use gangway_api::tokens::{NodeJoinParameter, NodeJoinResult};

/// How the head is reached over HTTP: its URL and the TLS settings (the cluster CA, and this
/// node's certificate) for an `https` URL.
#[derive(Debug, Clone, Default)]
pub struct HeadLink {
    pub url: String,
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl HeadLink {
    /// A blocking client of the head.
    pub fn client(&self) -> Result<HttpClient, String> {
        let c = HttpClient::new(&self.url).map_err(|e| e.to_string())?;
        Ok(match &self.tls {
            Some(t) => c.with_tls(t.clone()),
            None => c,
        })
    }
}

/// Where a node keeps its trust.
fn tls_dir(root: &Path) -> PathBuf {
    root.join("tls")
}

/// This node's TLS settings for the head at `head` (an `https` URL): the CA from `ca` (kept
/// in the node's directory) or from an earlier start, and the node's certificate, joining
/// with `join_token` when it has none yet (or when its certificate is from another CA).
pub fn load_or_join(
    root: &Path,
    head: &str,
    name: &str,
    ca: Option<&Path>,
    join_token: Option<&str>,
) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let dir = tls_dir(root);
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    let (ca_file, cert_file, key_file) = (dir.join("ca.crt"), dir.join("node.crt"), dir.join("node.key"));
    let ca_pem = match ca {
        Some(ca) => std::fs::read(ca).with_context(|| format!("reading the cluster CA {}", ca.display()))?,
        None => std::fs::read(&ca_file).map_err(|_| {
            anyhow::anyhow!("--ca FILE is needed: the cluster CA's certificate (the head's STATE_DIR/tls/ca.crt)")
        })?,
    };
    gangway_api::tls::roots(&ca_pem).map_err(|e| anyhow::anyhow!("the cluster CA: {e}"))?;
    // Tasks get it as GANGWAY_CA, for their own calls to the head.
    let public = root.join("cluster-ca.crt");
    std::fs::write(&public, &ca_pem)
        .and_then(|()| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&public, std::fs::Permissions::from_mode(0o644))
        })
        .with_context(|| format!("writing {}", public.display()))?;
    // The certificate from an earlier join counts only under the same CA.
    let same_ca = std::fs::read(&ca_file).is_ok_and(|kept| kept == ca_pem);
    if same_ca {
        if let (Ok(cert), Ok(key)) = (std::fs::read(&cert_file), std::fs::read(&key_file)) {
            return gangway_api::tls::client_config(&ca_pem, Some((&cert, &key)))
                .map_err(|e| anyhow::anyhow!("this node's certificate in {}: {e}", dir.display()));
        }
    }
    let Some(token) = join_token else {
        bail!(
            "node {name} has not joined this cluster yet: give it a join token (--join-token-file FILE, from `gangway node join-token` on the head)"
        );
    };
    let mut client = HttpClient::new(head)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .with_tls(gangway_api::tls::client_config(&ca_pem, None).map_err(anyhow::Error::msg)?);
    // A head that is not up yet is waited for, as the stream waits for it.
    let mut backoff = std::time::Duration::from_millis(50);
    let (cert, key) = loop {
        match request_certificate(&mut client, token, name) {
            Ok(joined) => break joined,
            Err(JoinError::Unreachable(e @ gangway_api::http::HttpError::BadUrl(_))) => {
                bail!("joining the cluster at {head}: {e}")
            }
            Err(JoinError::Unreachable(e)) => {
                tracing::warn!(head, error = %e, retry_in = ?backoff, "cannot reach the head to join");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(std::time::Duration::from_secs(2));
            }
            Err(JoinError::Refused { message, .. }) => {
                bail!("the head at {head} refused node {name}'s join: {message}")
            }
        }
    };
    write_private(&key_file, key.as_bytes())?;
    write_private(&cert_file, cert.as_bytes())?;
    write_private(&ca_file, &ca_pem)?;
    tracing::info!(node = name, "joined the cluster: certificate kept in {}", dir.display());
    gangway_api::tls::client_config(&ca_pem, Some((cert.as_bytes(), key.as_bytes()))).map_err(anyhow::Error::msg)
}

/// Why a join did not give a certificate.
#[derive(Debug)]
pub enum JoinError {
    /// The head said no (the token, the name): its status and message.
    Refused { status: u16, message: String },
    /// The head could not be reached (or the URL is unusable).
    Unreachable(gangway_api::http::HttpError),
}

/// Joins as node `name` with join token `token` through `client` (which checks the head
/// against the cluster CA): a key is made here and only its public half is sent. Returns the
/// certificate and the key (PEM).
pub fn request_certificate(client: &mut HttpClient, token: &str, name: &str) -> Result<(String, String), JoinError> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("P-256 key generation");
    let body = serde_json::to_vec(&NodeJoinParameter {
        name: name.to_owned(),
        public_key: gangway_api::sha256::hex(key.public_key_raw()),
    })
    .expect("serializes");
    let auth = format!("Bearer {}", token.trim());
    // One request id for every try: a head that did the join but whose answer was lost
    // (it restarted, the connection dropped) gives the same certificate again.
    let id = gangway_api::client::new_request_id();
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
        (gangway_api::client::REQUEST_ID_HEADER, id.as_str()),
    ];
    let deadline = std::time::Instant::now() + gangway_api::client::DEFAULT_MESSAGE_TIMEOUT;
    let mut delay = std::time::Duration::from_millis(50);
    let resp = loop {
        let outcome = client.request("POST", "/nodes/join", &headers, Some(&body));
        let again = match &outcome {
            Ok(r) => r.status == 503,
            Err(_) => true,
        };
        if !again || std::time::Instant::now() + delay > deadline {
            break outcome.map_err(JoinError::Unreachable)?;
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(std::time::Duration::from_secs(1));
    };
    let refused = |message| JoinError::Refused { status: resp.status, message };
    if resp.status != 201 {
        let why = serde_json::from_slice::<gangway_api::ErrorBody>(&resp.body).map(|b| b.message.value);
        return Err(refused(why.unwrap_or_else(|_| resp.text())));
    }
    let joined: NodeJoinResult =
        serde_json::from_slice(&resp.body).map_err(|e| refused(format!("the head's answer to the join: {e}")))?;
    Ok((joined.certificate, key.serialize_pem()))
}

/// Forgets this node's certificate (it was refused: the node must join again).
pub fn forget(root: &Path) {
    let dir = tls_dir(root);
    let _ = std::fs::remove_file(dir.join("node.crt"));
    let _ = std::fs::remove_file(dir.join("node.key"));
}

/// Writes a file only this node's launcher reads.
fn write_private(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    gangway_api::files::write_private(path, data).map_err(anyhow::Error::msg)
}
