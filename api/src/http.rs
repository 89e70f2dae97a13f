//! Minimal blocking HTTP/1.1 client over TCP, or over the head's Unix socket.
//!
//! The CLI and the benchmarks only ever talk to our own REST server over plain
//! HTTP, so an async runtime plus a full client stack would cost build time and
//! dependencies for nothing. This speaks just enough HTTP/1.1 for that server:
//! keep-alive, and `Content-Length`, chunked and close-delimited bodies.
//!
//! `https://` URLs are spoken over rustls, with the cluster CA given by [`HttpClient::with_tls`]
//! (and a launcher's own certificate in that config).
//!
//! A client on the head's own machine may be given the head's Unix socket: connecting
//! there skips TCP's handshake and teardown, which is much of what a short command such as
//! `sbatch` costs. When the socket cannot be reached (a state directory shared with
//! another machine, a head that is gone) the client uses the URL as usual.

use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Bounds on what a misbehaving peer can make us buffer before we give up.
const MAX_LINE: u64 = 64 * 1024;
const MAX_HEADERS: usize = 256;

type Conn = BufReader<Stream>;

/// A connection to the server.
#[derive(Debug)]
enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.flush(),
            Stream::Unix(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// Everything that can go wrong while talking to the server.
#[derive(Debug)]
pub enum HttpError {
    /// The base URL or request path is unusable.
    BadUrl(String),
    /// No TCP connection could be made to `addr`.
    Connect { addr: String, source: io::Error },
    /// The connection failed (or timed out) mid-exchange.
    Io(io::Error),
    /// The server sent something that is not valid HTTP/1.x.
    Protocol(String),
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::BadUrl(m) => write!(f, "bad URL: {m}"),
            HttpError::Connect { addr, source } => write!(f, "cannot connect to {addr}: {source}"),
            HttpError::Io(e) => write!(f, "HTTP I/O error: {e}"),
            HttpError::Protocol(m) => write!(f, "HTTP protocol error: {m}"),
        }
    }
}

impl std::error::Error for HttpError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HttpError::Connect { source, .. } => Some(source),
            HttpError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for HttpError {
    fn from(e: io::Error) -> Self {
        HttpError::Io(e)
    }
}

fn proto(m: impl Into<String>) -> HttpError {
    HttpError::Protocol(m.into())
}

/// A fully read response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// In arrival order; chunked trailers are appended after the headers.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// First header named `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body as text, with invalid UTF-8 replaced rather than rejected.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One keep-alive connection to one server; reconnects when the server closed it.
#[derive(Debug)]
pub struct HttpClient {
    base: String,
    host: String,
    port: u16,
    authority: String,
    prefix: String,
    conn: Option<Conn>,
    timeout: Duration,
    /// The server's Unix socket, tried before TCP.
    unix: Option<PathBuf>,
    /// An `https` base URL.
    https: bool,
    /// TLS settings for `https` (the CA the server is checked against).
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl HttpClient {
    /// `base` is like `https://127.0.0.1:8080`, `http://host:8080/prefix`; `https` needs
    /// [`HttpClient::with_tls`] before the first request.
    pub fn new(base: &str) -> Result<Self, HttpError> {
        let bad = |why: &str| HttpError::BadUrl(format!("{why}: {base:?}"));
        let url = base.trim();
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("missing http:// scheme"))?;
        let https = scheme.eq_ignore_ascii_case("https");
        if !https && !scheme.eq_ignore_ascii_case("http") {
            return Err(bad("unsupported scheme"));
        }
        let (authority, prefix) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if rest.contains(['?', '#', '@']) {
            return Err(bad("base URL must not carry a query, fragment or credentials"));
        }
        let default_port = if https { 443 } else { 80 };
        let (host, port) = split_host_port(authority, default_port).ok_or_else(|| bad("invalid host or port"))?;
        let prefix = prefix.trim_end_matches('/').to_string();
        let scheme = if https { "https" } else { "http" };
        let (base, authority) = (format!("{scheme}://{authority}{prefix}"), authority.to_string());
        Ok(Self {
            base,
            host,
            port,
            authority,
            prefix,
            conn: None,
            timeout: Duration::from_secs(60),
            unix: None,
            https,
            tls: None,
        })
    }

    /// The TLS settings an `https` base URL is spoken with.
    pub fn with_tls(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(config);
        self.conn = None;
        self
    }

    /// Connect, read and write timeout (default 60 s); zero means none.
    pub fn with_timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self.conn = None; // an open socket would keep the old timeout
        self
    }

    /// Connects through the Unix socket at `path` when it answers, and over TCP otherwise.
    pub fn with_unix_socket(mut self, path: &Path) -> Self {
        self.unix = Some(path.to_path_buf());
        self.conn = None;
        self
    }

    /// The normalised base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Sends one request; `path` starts with `/`, may carry a query, and is appended to the base prefix.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<Response, HttpError> {
        let req = self.encode_request(method, path, headers, body)?;
        let head = method.eq_ignore_ascii_case("HEAD");
        // Taken out so that any failure leaves no half-used connection behind.
        let (mut conn, reused) = match self.conn.take() {
            Some(c) => (c, true),
            None => (self.connect()?, false),
        };
        let mut outcome = exchange(&mut conn, &req, head);
        if reused && matches!(outcome, Err(Failure { stale: true, .. })) {
            // Servers drop idle keep-alive connections whenever they like; with no
            // response byte seen, the request almost surely was never processed.
            conn = self.connect()?;
            outcome = exchange(&mut conn, &req, head);
        }
        let (resp, keep) = outcome.map_err(|f| f.error)?;
        if keep {
            self.conn = Some(conn);
        }
        Ok(resp)
    }

    fn encode_request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<Vec<u8>, HttpError> {
        // Whitespace or CR/LF in any of these would let a caller forge header lines.
        if !path.starts_with('/') || path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(HttpError::BadUrl(format!(
                "request path must start with '/' and contain no whitespace: {path:?}"
            )));
        }
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(proto(format!("invalid method {method:?}")));
        }
        let bad_name = |k: &str| k.is_empty() || k.bytes().any(|b| b <= b' ' || b == b':' || b == 0x7f);
        if let Some((k, _)) =
            headers.iter().find(|(k, v)| bad_name(k) || v.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0))
        {
            return Err(proto(format!("invalid request header {k:?}")));
        }
        let given = |n: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(n));
        let mut h = format!("{method} {}{path} HTTP/1.1\r\n", self.prefix);
        if !given("host") {
            h.push_str(&format!("Host: {}\r\n", self.authority));
        }
        if !given("connection") {
            h.push_str("Connection: keep-alive\r\n");
        }
        for (k, v) in headers {
            // We own body framing: a stale caller-supplied length would desync the connection.
            if k.eq_ignore_ascii_case("content-length") || k.eq_ignore_ascii_case("transfer-encoding") {
                continue;
            }
            h.push_str(&format!("{k}: {v}\r\n"));
        }
        // Some servers answer 411 to a bodiless POST/PUT without an explicit length.
        if body.is_some() || ["POST", "PUT", "PATCH"].iter().any(|m| m.eq_ignore_ascii_case(method)) {
            h.push_str(&format!("Content-Length: {}\r\n", body.map_or(0, <[u8]>::len)));
        }
        h.push_str("\r\n");
        let mut out = h.into_bytes();
        out.extend_from_slice(body.unwrap_or_default());
        Ok(out)
    }

    fn connect(&self) -> Result<Conn, HttpError> {
        let fail = |source| HttpError::Connect { addr: self.authority.clone(), source };
        let timeout = Some(self.timeout).filter(|t| !t.is_zero());
        if let Some(s) = self.unix.as_deref().and_then(|p| UnixStream::connect(p).ok()) {
            s.set_read_timeout(timeout).map_err(fail)?;
            s.set_write_timeout(timeout).map_err(fail)?;
            return Ok(BufReader::new(Stream::Unix(s)));
        }
        let mut last = io::Error::new(io::ErrorKind::NotFound, "host resolved to no addresses");
        // Try every address: `localhost` often resolves to ::1 first while the server listens on IPv4.
        for addr in (self.host.as_str(), self.port).to_socket_addrs().map_err(fail)? {
            match timeout.map_or_else(|| TcpStream::connect(addr), |t| TcpStream::connect_timeout(&addr, t)) {
                Ok(s) => {
                    // Small request/response exchanges otherwise stall on Nagle + delayed ACK.
                    s.set_nodelay(true).map_err(fail)?;
                    s.set_read_timeout(timeout).map_err(fail)?;
                    s.set_write_timeout(timeout).map_err(fail)?;
                    if !self.https {
                        return Ok(BufReader::new(Stream::Tcp(s)));
                    }
                    let config = self.tls.clone().ok_or_else(|| {
                        HttpError::BadUrl(format!(
                            "{} is https: the cluster's CA certificate is needed (GANGWAY_CA, or `ca` in client.json)",
                            self.base
                        ))
                    })?;
                    let name = crate::tls::server_name(&self.host).map_err(HttpError::BadUrl)?;
                    let conn = rustls::ClientConnection::new(config, name).map_err(|e| fail(io::Error::other(e)))?;
                    let mut tls = rustls::StreamOwned::new(conn, s);
                    // The handshake now, so a certificate the CA did not sign fails the connect.
                    while tls.conn.is_handshaking() {
                        tls.conn.complete_io(&mut tls.sock).map_err(fail)?;
                    }
                    return Ok(BufReader::new(Stream::Tls(Box::new(tls))));
                }
                Err(e) => last = e,
            }
        }
        Err(fail(last))
    }
}

fn split_host_port(auth: &str, default_port: u16) -> Option<(String, u16)> {
    let (host, port) = match auth.strip_prefix('[') {
        Some(v6) => {
            let (h, after) = v6.split_once(']')?;
            (h, if after.is_empty() { None } else { Some(after.strip_prefix(':')?) })
        }
        None => match auth.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (auth, None),
        },
    };
    if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '[' || c == ']') {
        return None;
    }
    let port = match port {
        None => default_port,
        Some(p) => num(p, 10).and_then(|p| u16::try_from(p).ok()).filter(|&p| p != 0)?,
    };
    Some((host.to_string(), port))
}

/// Strict digits-only parse: `str::parse` would also accept a leading `+`.
fn num(s: &str, radix: u32) -> Option<u64> {
    (!s.is_empty() && s.chars().all(|c| c.is_digit(radix))).then(|| u64::from_str_radix(s, radix).ok()).flatten()
}

/// Keeps error messages readable when the server sends a huge garbage line.
fn clip(line: &str) -> String {
    line.chars().take(80).collect()
}

/// A failed exchange; `stale` means the connection died before any response byte.
struct Failure {
    stale: bool,
    error: HttpError,
}

fn exchange(conn: &mut Conn, req: &[u8], head: bool) -> Result<(Response, bool), Failure> {
    let io_fail = |e: io::Error| {
        use io::ErrorKind::*;
        let stale = matches!(e.kind(), ConnectionReset | ConnectionAborted | BrokenPipe | NotConnected | UnexpectedEof);
        Failure { stale, error: HttpError::Io(e) }
    };
    conn.get_mut().write_all(req).map_err(io_fail)?;
    match conn.fill_buf() {
        Ok([]) => return Err(Failure { stale: true, error: proto("server closed the connection before responding") }),
        Ok(_) => {}
        Err(e) => return Err(io_fail(e)),
    }
    let (resp, keep) = read_response(conn, head).map_err(|error| Failure { stale: false, error })?;
    // Surplus buffered bytes mean the server broke message framing; don't trust the stream.
    Ok((resp, keep && conn.buffer().is_empty()))
}

/// Returns the response and whether the connection may be reused.
fn read_response<R: BufRead>(r: &mut R, head: bool) -> Result<(Response, bool), HttpError> {
    let (status, http10, mut headers) = loop {
        let line = read_line(r)?;
        let (status, http10) = parse_status(&line)?;
        let mut headers = Vec::new();
        read_headers(r, &mut headers)?;
        // Interim responses (100 Continue, 103 Early Hints) precede the real one.
        if !(100..200).contains(&status) || status == 101 {
            break (status, http10, headers);
        }
    };
    let tokens = |name: &str| -> Vec<String> {
        let named = headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name));
        named.flat_map(|(_, v)| v.split(',')).map(|t| t.trim().to_ascii_lowercase()).collect()
    };
    let connection = tokens("connection");
    let codings = tokens("transfer-encoding");
    // HTTP/1.0 closes by default; HTTP/1.1 keeps alive by default.
    let mut keep =
        if http10 { connection.iter().any(|t| t == "keep-alive") } else { !connection.iter().any(|t| t == "close") };
    let mut body = Vec::new();
    if status == 101 {
        keep = false; // the connection now speaks another protocol
    } else if head || status == 204 || status == 304 {
        // These never carry a body, whatever their Content-Length claims.
    } else if !codings.is_empty() {
        if codings.last().is_some_and(|c| c == "chunked") {
            read_chunked(r, &mut body, &mut headers)?;
        } else {
            keep = false;
            r.read_to_end(&mut body)?;
        }
    } else if let Some(len) = content_length(&headers)? {
        read_len(r, len, &mut body)?;
    } else {
        keep = false;
        r.read_to_end(&mut body)?;
    }
    Ok((Response { status, headers, body }, keep))
}

fn read_line<R: BufRead>(r: &mut R) -> Result<String, HttpError> {
    let mut buf = Vec::new();
    r.by_ref().take(MAX_LINE).read_until(b'\n', &mut buf)?;
    if buf.pop() != Some(b'\n') {
        let too_long = buf.len() as u64 + 1 >= MAX_LINE;
        return Err(proto(if too_long { "response line too long" } else { "connection closed mid-response" }));
    }
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

fn parse_status(line: &str) -> Result<(u16, bool), HttpError> {
    let bad = || proto(format!("bad status line {:?}", clip(line)));
    let mut parts = line.splitn(3, ' ');
    let minor = parts.next().and_then(|v| v.strip_prefix("HTTP/1.")).ok_or_else(bad)?;
    let code = parts.next().filter(|c| c.len() == 3).and_then(|c| num(c, 10)).filter(|&s| s >= 100);
    Ok((code.ok_or_else(bad)? as u16, minor == "0"))
}

fn read_headers<R: BufRead>(r: &mut R, out: &mut Vec<(String, String)>) -> Result<(), HttpError> {
    for _ in 0..MAX_HEADERS {
        let line = read_line(r)?;
        if line.is_empty() {
            return Ok(());
        }
        // Also rejects obsolete line folding, which our server never emits.
        let valid = |(n, _): &(&str, &str)| !n.is_empty() && !n.contains(char::is_whitespace);
        let (name, value) = line
            .split_once(':')
            .filter(valid)
            .ok_or_else(|| proto(format!("malformed header line {:?}", clip(&line))))?;
        out.push((name.to_string(), value.trim().to_string()));
    }
    Err(proto(format!("more than {MAX_HEADERS} header lines")))
}

fn content_length(headers: &[(String, String)]) -> Result<Option<u64>, HttpError> {
    let mut found = None;
    let values = headers.iter().filter(|(k, _)| k.eq_ignore_ascii_case("content-length"));
    for v in values.flat_map(|(_, v)| v.split(',')).map(str::trim) {
        let n = num(v, 10).ok_or_else(|| proto(format!("invalid Content-Length {:?}", clip(v))))?;
        if found.is_some_and(|f| f != n) {
            return Err(proto("conflicting Content-Length values"));
        }
        found = Some(n);
    }
    Ok(found)
}

fn read_len<R: BufRead>(r: &mut R, len: u64, body: &mut Vec<u8>) -> Result<(), HttpError> {
    // Grows with the bytes that actually arrive instead of trusting a huge advertised length.
    let got = r.by_ref().take(len).read_to_end(body)? as u64;
    if got < len {
        return Err(proto(format!("connection closed after {got} of {len} body bytes")));
    }
    Ok(())
}

fn read_chunked<R: BufRead>(
    r: &mut R,
    body: &mut Vec<u8>,
    trailers: &mut Vec<(String, String)>,
) -> Result<(), HttpError> {
    loop {
        let line = read_line(r)?;
        let size = line.split_once(';').map_or(line.as_str(), |(s, _)| s).trim();
        let n = num(size, 16).ok_or_else(|| proto(format!("bad chunk size line {:?}", clip(&line))))?;
        if n == 0 {
            return read_headers(r, trailers);
        }
        read_len(r, n, body)?;
        if !read_line(r)?.is_empty() {
            return Err(proto("chunk data not followed by CRLF"));
        }
    }
}

/// Percent-encodes a query-string component (RFC 3986 unreserved characters pass through).
pub fn encode_component(s: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::thread;

    const OK: &str = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

    /// Accepts one connection per `script` entry, answers each request on it with the next
    /// canned reply, then closes it. Yields the accept count (a client that failed to reuse its
    /// connection leaves an extra one queued) and the raw requests.
    fn server(script: Vec<Vec<&'static str>>) -> (String, thread::JoinHandle<(usize, Vec<String>)>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let handle = thread::spawn(move || {
            let (mut accepts, mut seen) = (0, Vec::new());
            for replies in script {
                let mut conn = BufReader::new(listener.accept().unwrap().0);
                accepts += 1;
                for reply in replies {
                    let Some(req) = read_request(&mut conn) else { break };
                    seen.push(req);
                    conn.get_mut().write_all(reply.as_bytes()).unwrap();
                }
            }
            listener.set_nonblocking(true).unwrap();
            thread::sleep(Duration::from_millis(20));
            (accepts + usize::from(listener.accept().is_ok()), seen)
        });
        (base, handle)
    }

    fn read_request(r: &mut BufReader<TcpStream>) -> Option<String> {
        let (mut text, mut len) = (String::new(), 0);
        while !text.ends_with("\r\n\r\n") {
            let mut line = String::new();
            if r.read_line(&mut line).ok()? == 0 {
                return None;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
            text += &line;
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body).ok()?;
        Some(text + &String::from_utf8_lossy(&body))
    }

    fn client(base: &str) -> HttpClient {
        HttpClient::new(base).unwrap().with_timeout(Duration::from_secs(5))
    }

    #[test]
    fn content_length_body_and_request_format() {
        let (base, srv) =
            server(vec![vec!["HTTP/1.1 201 Created\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"]]);
        let mut c = client(&format!("{base}/api/"));
        assert_eq!(c.base_url(), format!("{base}/api"));
        let r = c.request("POST", "/jobs?x=1", &[("X-Trace", "t1")], Some(b"abc")).unwrap();
        assert_eq!((r.status, r.text().as_str(), r.header("content-TYPE")), (201, "hello", Some("text/plain")));
        let req = &srv.join().unwrap().1[0];
        assert!(req.starts_with("POST /api/jobs?x=1 HTTP/1.1\r\n") && req.ends_with("\r\n\r\nabc"), "{req:?}");
        for h in [
            "\r\nHost: 127.0.0.1:",
            "\r\nConnection: keep-alive\r\n",
            "\r\nX-Trace: t1\r\n",
            "\r\nContent-Length: 3\r\n",
        ] {
            assert!(req.contains(h), "{h:?} missing from {req:?}");
        }
    }

    #[test]
    fn keep_alive_reuses_one_connection_across_chunked_bodies() {
        let chunked = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 42\r\n\r\n";
        let (base, srv) = server(vec![vec![chunked, OK]]);
        let mut c = client(&base);
        let r = c.request("GET", "/a", &[], None).unwrap();
        assert_eq!((r.text().as_str(), r.header("x-sum")), ("hello world", Some("42")));
        assert_eq!(c.request("PUT", "/b", &[], None).unwrap().text(), "ok");
        let (accepts, seen) = srv.join().unwrap();
        assert_eq!(accepts, 1);
        assert!(!seen[0].contains("Content-Length") && seen[1].contains("\r\nContent-Length: 0\r\n"), "{seen:?}");
    }

    #[test]
    fn reconnects_when_server_closed_idle_connection() {
        let (base, srv) = server(vec![vec![OK], vec![OK]]);
        let mut c = client(&base);
        assert_eq!(c.request("GET", "/", &[], None).unwrap().status, 200);
        assert!(c.conn.is_some());
        thread::sleep(Duration::from_millis(50)); // let the server's close arrive first
        assert_eq!(c.request("POST", "/", &[], Some(b"x")).unwrap().text(), "ok");
        assert_eq!(srv.join().unwrap().0, 2);
    }

    #[test]
    fn honours_connection_close_and_eof_bodies() {
        let close = "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok";
        let (base, srv) = server(vec![vec![close], vec!["HTTP/1.0 200 OK\r\n\r\nuntil eof"]]);
        let mut c = client(&base);
        assert_eq!(c.request("GET", "/", &[], None).unwrap().text(), "ok");
        assert!(c.conn.is_none());
        assert_eq!(c.request("GET", "/", &[], None).unwrap().text(), "until eof");
        assert!(c.conn.is_none());
        assert_eq!(srv.join().unwrap().0, 2);
    }

    #[test]
    fn head_204_and_interim_responses_have_no_body() {
        let head = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
        let (base, srv) = server(vec![vec![head, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", OK]]);
        let mut c = client(&base);
        let r = c.request("HEAD", "/", &[], None).unwrap();
        assert_eq!((r.status, r.header("content-length"), r.body.len()), (200, Some("5"), 0));
        assert_eq!(c.request("DELETE", "/x", &[], None).unwrap().status, 204);
        assert_eq!(c.request("GET", "/", &[], None).unwrap().text(), "ok");
        assert_eq!(srv.join().unwrap().0, 1);
    }

    #[test]
    fn malformed_or_truncated_responses_are_errors() {
        let (base, srv) = server(vec![
            vec!["SPDY/9 what\r\n\r\n"],
            vec!["HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"],
            vec!["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab"],
            vec!["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"],
            vec!["HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\nab"],
        ]);
        let mut c = client(&base);
        for _ in 0..5 {
            let e = c.request("GET", "/", &[], None).unwrap_err();
            assert!(matches!(e, HttpError::Protocol(_)) && c.conn.is_none(), "{e}");
        }
        assert_eq!(srv.join().unwrap().0, 5);
    }

    #[test]
    fn https_needs_a_ca_and_bad_urls_and_unsafe_requests_are_refused() {
        let mut c = HttpClient::new("https://127.0.0.1:1").unwrap();
        assert_eq!((c.port, c.base_url()), (1, "https://127.0.0.1:1"));
        assert_eq!(HttpClient::new("https://h").unwrap().port, 443);
        // Refused before any connection is made: there is no CA to check the server against.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        c = HttpClient::new(&format!("https://{}", listener.local_addr().unwrap())).unwrap();
        match c.request("GET", "/", &[], None) {
            Err(HttpError::BadUrl(m)) => assert!(m.contains("CA certificate is needed"), "{m}"),
            other => panic!("{other:?}"),
        }
        for bad in [
            "",
            "127.0.0.1:8080",
            "ftp://h/",
            "http://",
            "http://:80",
            "http://h:",
            "http://h:99999",
            "http://h:+80",
            "http://h/p?q=1",
            "http://u@h",
            "http://[::1",
        ] {
            assert!(matches!(HttpClient::new(bad), Err(HttpError::BadUrl(_))), "{bad:?}");
        }
        let c = HttpClient::new("http://[::1]:9/x/").unwrap();
        assert_eq!((c.host.as_str(), c.port, c.prefix.as_str(), c.base_url()), ("::1", 9, "/x", "http://[::1]:9/x"));
        let mut c = HttpClient::new("HTTP://h").unwrap();
        assert_eq!(c.port, 80);
        // Rejected before any connection attempt, so the unresolvable host never matters.
        assert!(matches!(c.request("GET", "no-slash", &[], None), Err(HttpError::BadUrl(_))));
        assert!(matches!(c.request("GET", "/a b", &[], None), Err(HttpError::BadUrl(_))));
        assert!(matches!(c.request("GET", "/", &[("X", "a\r\nEvil: 1")], None), Err(HttpError::Protocol(_))));
        assert!(matches!(c.request("GE T", "/", &[], None), Err(HttpError::Protocol(_))));
    }

    #[test]
    fn connect_failure_names_the_address() {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let e = client(&format!("http://127.0.0.1:{port}")).request("GET", "/", &[], None).unwrap_err();
        assert!(matches!(e, HttpError::Connect { .. }) && e.to_string().contains(&format!(":{port}")), "{e}");
        assert!(std::error::Error::source(&e).is_some());
    }

    #[test]
    fn encode_component_cases() {
        assert_eq!(encode_component("AZaz09-._~"), "AZaz09-._~");
        assert_eq!(encode_component("a b&c=d/e?f#g+h%"), "a%20b%26c%3Dd%2Fe%3Ff%23g%2Bh%25");
        assert_eq!(encode_component("é"), "%C3%A9");
        assert_eq!(encode_component(""), "");
    }
}
