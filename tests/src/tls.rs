//! Speaking to a test cluster's head by hand over its TLS port: node identities made by
//! joining (as a launcher does), and a local plaintext proxy to the head, so that tests that
//! write raw HTTP or launcher lines keep a plain `TcpStream` (clonable, with timeouts).

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;

use gangway_api::client::ClientConfig;
use gangway_api::http::HttpClient;

/// A node's certificate and key (PEM), from a join.
#[derive(Debug, Clone)]
pub struct NodeIdentity {
    pub name: String,
    pub cert: String,
    pub key: String,
}

fn ca_pem(config: &ClientConfig) -> Vec<u8> {
    std::fs::read(config.ca.as_ref().expect("client.json names the CA")).expect("reading the CA")
}

/// Joins the cluster of `config` as `name` with `token`: the identity, or the head's refusal
/// (status and message).
pub fn join_with(config: &ClientConfig, token: &str, name: &str) -> Result<NodeIdentity, (u16, String)> {
    use gangway_launcher::join::{request_certificate, JoinError};
    match request_certificate(&mut http(config), token, name) {
        Ok((cert, key)) => Ok(NodeIdentity { name: name.into(), cert, key }),
        Err(JoinError::Refused { status, message }) => Err((status, message)),
        Err(JoinError::Unreachable(e)) => panic!("POST /nodes/join: {e}"),
    }
}

/// Joins as `name` with the test cluster's own join token (see [`crate::join_args`]).
pub fn join_as(state: &Path, config: &ClientConfig, name: &str) -> NodeIdentity {
    crate::join_args(state, config);
    let token = std::fs::read_to_string(state.join("join.token")).expect("join.token");
    join_with(config, token.trim(), name).unwrap_or_else(|e| panic!("joining as {name}: {e:?}"))
}

/// TLS settings for the head of `config`, presenting `identity` when given.
pub fn client_tls(config: &ClientConfig, identity: Option<&NodeIdentity>) -> Arc<rustls::ClientConfig> {
    let id = identity.map(|i| (i.cert.as_bytes(), i.key.as_bytes()));
    gangway_api::tls::client_config(&ca_pem(config), id).expect("TLS config")
}

/// The head's `host:port`.
pub fn head_addr(config: &ClientConfig) -> String {
    config.url.trim_start_matches("https://").trim_end_matches('/').to_owned()
}

/// A plain connection that a proxy thread carries over TLS to the head (presenting
/// `identity`); it closes when the head closes (or refuses the handshake).
pub fn connect_tls(config: &ClientConfig, identity: Option<&NodeIdentity>) -> TcpStream {
    let listener = TcpListener::bind("127.0.0.1:0").expect("proxy listener");
    let local = listener.local_addr().unwrap();
    let tls = tokio_rustls::TlsConnector::from(client_tls(config, identity));
    let head = head_addr(config);
    let host = head.rsplit_once(':').map_or(head.clone(), |(h, _)| h.to_owned());
    let name = gangway_api::tls::server_name(&host).expect("server name");
    std::thread::spawn(move || {
        let Ok((plain, _)) = listener.accept() else { return };
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async move {
            plain.set_nonblocking(true).unwrap();
            let mut plain = tokio::net::TcpStream::from_std(plain).unwrap();
            let Ok(tcp) = tokio::net::TcpStream::connect(&head).await else { return };
            let _ = tcp.set_nodelay(true);
            let Ok(mut tls) = tls.connect(name, tcp).await else { return };
            let _ = tokio::io::copy_bidirectional(&mut plain, &mut tls).await;
        });
    });
    let s = TcpStream::connect(local).expect("connecting to the proxy");
    let _ = s.set_nodelay(true);
    s
}

/// A plain HTTP client of the head of `config` (over TLS, no certificate), for raw requests.
pub fn http(config: &ClientConfig) -> HttpClient {
    HttpClient::new(&config.url).expect("url").with_tls(client_tls(config, None))
}
