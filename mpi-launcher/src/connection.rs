//! The launcher's control stream to the head: connect out over TLS (the head checked against
//! the cluster CA, this node proven by its certificate), upgrade, hello, then JSON lines;
//! reconnect with backoff after any drop, keeping tasks running and reports until acknowledged.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use gangway_api::messages::{HeadMessage, Hello, LauncherMessage, LAUNCHER_PATH, LAUNCHER_PROTOCOL};
use gangway_topology::NodeResources;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::executor::{Executor, StopReason};

/// How long one connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long the upgrade and the welcome may take once connected.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Who this launcher is.
pub struct Identity {
    /// Node name.
    pub name: String,
    /// Address reported to the head.
    pub address: Option<String>,
    /// Pool to join.
    pub pool: String,
    /// Hardware.
    pub resources: NodeResources,
    /// Detailed topology, when discovered or declared.
    pub topology: Option<gangway_topology::model::NodeTopology>,
    /// Random per process.
    pub boot_id: String,
}

/// Why a session with the head ended.
enum Ended {
    /// Worth retrying.
    Dropped(String),
    /// The head refused this launcher: retrying will not help.
    Refused(String),
    /// The head does not accept this node's certificate (revoked, not issued here).
    CertificateRefused(String),
    /// The head removed this node from its pool.
    Left,
}

/// Keeps a session with the head up until the process is told to stop; returns an error
/// only when the head refuses this launcher for good (its certificate, an unknown pool).
pub async fn run(head: &str, tls: Arc<rustls::ClientConfig>, me: &Identity, exec: Arc<Executor>) -> anyhow::Result<()> {
    let (host, port) = parse_head_url(head)?;
    let name = gangway_api::tls::server_name(&host).map_err(anyhow::Error::msg)?;
    let tls = tokio_rustls::TlsConnector::from(tls);
    let mut backoff = Duration::from_millis(50);
    loop {
        match session(&host, port, (&tls, &name), me, &exec).await {
            Ended::Refused(why) => bail!("the head at {head} refused this launcher: {why}"),
            Ended::CertificateRefused(why) => {
                return Err(
                    CertificateRefused(format!("the head at {head} refused this node's certificate: {why}")).into()
                )
            }
            Ended::Left => {
                tracing::info!(head, "removed from the pool by the head; leaving");
                return Ok(());
            }
            Ended::Dropped(why) => {
                // A session that got as far as the welcome starts the backoff afresh.
                if exec.out.lock().expect("lock").take().is_some() {
                    backoff = Duration::from_millis(50);
                }
                tracing::warn!(head, why, retry_in = ?backoff, "not connected to the head");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// The head refused this node's certificate (a node removed from its pool, whose certificate
/// was revoked): joining again, with a join token, is the way back.
#[derive(Debug)]
pub struct CertificateRefused(pub String);

impl std::fmt::Display for CertificateRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CertificateRefused {}

/// `https://host:port[/]` → (host, port).
pub fn parse_head_url(url: &str) -> anyhow::Result<(String, u16)> {
    let rest = url.strip_prefix("https://").with_context(|| format!("head URL '{url}' must start with https://"))?;
    let hostport = rest.trim_end_matches('/');
    let (host, port) = hostport.rsplit_once(':').with_context(|| format!("head URL '{url}' needs a port"))?;
    let port = port.parse().with_context(|| format!("head URL '{url}' has a bad port"))?;
    Ok((host.trim_start_matches('[').trim_end_matches(']').to_owned(), port))
}

async fn session(
    host: &str,
    port: u16,
    (tls, server): (&tokio_rustls::TlsConnector, &rustls::pki_types::ServerName<'static>),
    me: &Identity,
    exec: &Arc<Executor>,
) -> Ended {
    // A cut link makes SYNs vanish; without a bound the kernel retries for minutes.
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((host, port))).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Ended::Dropped(format!("connecting to {host}:{port}: {e}")),
        Err(_) => return Ended::Dropped(format!("connecting to {host}:{port}: timed out")),
    };
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr().map(|a| a.ip().to_string()).unwrap_or_default();
    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.connect(server.clone(), stream)).await {
        Ok(Ok(s)) => s,
        // Also a head whose certificate the CA did not sign: not this cluster's head.
        Ok(Err(e)) => return Ended::Dropped(format!("TLS with the head at {host}:{port}: {e}")),
        Err(_) => return Ended::Dropped(format!("TLS with the head at {host}:{port}: timed out")),
    };
    let (rd, mut wr) = tokio::io::split(stream);
    let mut rd = BufReader::new(rd);
    let req = format!(
        "GET {LAUNCHER_PATH} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: {LAUNCHER_PROTOCOL}\r\nConnection: Upgrade\r\n\r\n"
    );
    if let Err(e) = write(&mut wr, req.as_bytes()).await {
        return Ended::Dropped(e.to_string());
    }
    let mut status = String::new();
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, rd.read_line(&mut status)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Ended::Dropped(e.to_string()),
        Err(_) => return Ended::Dropped("no answer to the upgrade".into()),
    }
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        match rd.read_line(&mut line).await {
            Ok(0) | Err(_) => return Ended::Dropped("connection closed during upgrade".into()),
            Ok(_) if line == "\r\n" => break,
            Ok(_) => {
                if let Some((k, v)) = line.split_once(':') {
                    if k.trim().eq_ignore_ascii_case("content-length") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
            }
        }
    }
    if !status.starts_with("HTTP/1.1 101") {
        if status.contains(" 401 ") {
            // The reason is in the body, in Azure's error shape.
            let mut body = vec![0u8; length.min(64 << 10)];
            let read = tokio::time::timeout(HANDSHAKE_TIMEOUT, rd.read_exact(&mut body)).await;
            let why = read
                .ok()
                .and_then(Result::ok)
                .and_then(|_| serde_json::from_slice::<gangway_api::ErrorBody>(&body).ok())
                .map_or_else(|| "see the head's log".to_owned(), |b| b.message.value);
            return Ended::CertificateRefused(why);
        }
        return Ended::Dropped(format!("unexpected answer to the upgrade: {}", status.trim()));
    }
    let hello = Hello {
        name: me.name.clone(),
        address: me.address.clone().unwrap_or(local),
        pool: me.pool.clone(),
        resources: me.resources.clone(),
        root_dir: exec.layout.root.to_string_lossy().into_owned(),
        running: exec.running_ids(),
        finished: exec.unacked(),
        boot_id: me.boot_id.clone(),
        topology: me.topology.clone(),
    };
    let mut line = serde_json::to_vec(&LauncherMessage::Hello(Box::new(hello))).expect("messages serialize");
    line.push(b'\n');
    if let Err(e) = write(&mut wr, &line).await {
        return Ended::Dropped(e.to_string());
    }
    let mut buf = Vec::new();
    let welcome = match tokio::time::timeout(HANDSHAKE_TIMEOUT, read_head(&mut rd, &mut buf))
        .await
        .unwrap_or(Err("no welcome from the head".into()))
    {
        Ok(Some(HeadMessage::Welcome(w))) => w,
        Ok(_) => {
            let text = String::from_utf8_lossy(&buf).into_owned();
            if text.contains("\"refused\"") {
                return Ended::Refused(text.trim().to_owned());
            }
            return Ended::Dropped("the head did not welcome this launcher".into());
        }
        Err(e) => return Ended::Dropped(e),
    };
    tracing::info!(node = %me.name, "connected to the head");
    exec.node_timeout_ms.store(welcome.node_timeout_ms, std::sync::atomic::Ordering::Relaxed);
    for id in &welcome.kill {
        exec.stop(id, StopReason::Killed("NodeReconciliation".into()));
    }
    // The pool's application packages, unpacked in the background (a task that needs one
    // first waits for the unpacking under way).
    if !welcome.packages.is_empty() {
        let (exec, packages) = (exec.clone(), welcome.packages.clone());
        tokio::spawn(async move {
            if let Err(e) = exec.install_packages(&packages).await {
                tracing::warn!(error = %e, "the pool's application packages could not be unpacked at join");
            }
        });
    }
    let (tx, mut rx) = mpsc::unbounded_channel::<LauncherMessage>();
    *exec.out.lock().expect("lock") = Some(tx.clone());
    // Reports that ended between the hello and now.
    for f in exec.unacked() {
        let _ = tx.send(LauncherMessage::TaskFinished(f));
    }
    // The start task may have ended while the head could not hear it (or the head forgot).
    if let Some(status) = exec.start_task_status() {
        let _ = tx.send(LauncherMessage::StartTaskStatus(status));
    }
    let heartbeat = Duration::from_millis(welcome.heartbeat_ms.max(50));
    let writer = tokio::spawn(async move {
        let mut tick = tokio::time::interval(heartbeat);
        let mut out = Vec::new();
        loop {
            out.clear();
            tokio::select! {
                _ = tick.tick() => serde_json::to_writer(&mut out, &LauncherMessage::Heartbeat).expect("serialize"),
                m = rx.recv() => match m {
                    Some(m) => serde_json::to_writer(&mut out, &m).expect("serialize"),
                    None => return,
                },
            }
            out.push(b'\n');
            while let Ok(m) = rx.try_recv() {
                serde_json::to_writer(&mut out, &m).expect("serialize");
                out.push(b'\n');
            }
            if write(&mut wr, &out).await.is_err() {
                return;
            }
        }
    });
    let why = loop {
        let msg = match tokio::time::timeout(heartbeat * 3, read_head(&mut rd, &mut buf)).await {
            Err(_) => break "the head went silent".to_owned(),
            Ok(Err(e)) => break e,
            Ok(Ok(None)) => break "the head closed the connection".to_owned(),
            Ok(Ok(Some(m))) => m,
        };
        if handle(msg, exec, &tx) == Flow::Leave {
            writer.abort();
            return Ended::Left;
        }
    };
    writer.abort();
    Ended::Dropped(why)
}

/// Writes and flushes (TLS holds written data in records until flushed).
async fn write<W: tokio::io::AsyncWrite + Unpin>(wr: &mut W, data: &[u8]) -> std::io::Result<()> {
    wr.write_all(data).await?;
    wr.flush().await
}

/// Whether the session goes on after a message.
#[derive(PartialEq, Eq)]
enum Flow {
    Continue,
    Leave,
}

fn handle(msg: HeadMessage, exec: &Arc<Executor>, tx: &mpsc::UnboundedSender<LauncherMessage>) -> Flow {
    match msg {
        HeadMessage::RunStartTask(spec) => exec.run_start_task(spec),
        HeadMessage::Leave => return Flow::Leave,
        HeadMessage::StartTask(start) => exec.start(*start),
        HeadMessage::KillTask { id, reason } => exec.stop(&id, StopReason::Killed(reason)),
        HeadMessage::SignalTask { id, signal } => {
            let n = exec.signal(&id, signal);
            tracing::info!(job = %id.job, task = %id.task, signal, processes = n, "signalled a task");
        }
        HeadMessage::RunApplication { id } => exec.run_application(&id),
        HeadMessage::PmiFenceDone { id, epoch, puts } => {
            if let Some(tx) = exec.fences.lock().expect("lock").remove(&(id, epoch)) {
                let _ = tx.send(puts);
            }
        }
        HeadMessage::PmixModex { id, modex } => exec.pmix_modex(id, modex),
        HeadMessage::Agent(relay) => crate::agent::from_head(exec, relay),
        HeadMessage::Ack { id } => exec.acked(&id),
        HeadMessage::RemoveTaskDir { job, task } => exec.remove_task_dir(&job, &task),
        HeadMessage::ReadFiles { req, job, task, path, offset, len, delete, node } => {
            let tx = tx.clone();
            let (root, dir) = (exec.layout.root.clone(), exec.layout.task_dir(&job, &task));
            tokio::task::spawn_blocking(move || {
                let result = if node {
                    crate::files::node_files(&root, path.as_deref(), offset, len, delete)
                } else {
                    // A task directory its user owns is read (and changed) as that user.
                    let answer = || match (delete, path.as_deref()) {
                        (Some(d), Some(p)) => crate::files::delete(&dir, p, d.recursive),
                        _ => crate::files::answer(&dir, path.as_deref(), offset, len),
                    };
                    crate::files::as_owner_of(&dir, answer)
                        .unwrap_or_else(|e| gangway_api::messages::FilesResult::Error { message: e.to_string() })
                };
                let _ = tx.send(LauncherMessage::Files { req, result });
            });
        }
        HeadMessage::Welcome(_) => tracing::warn!("unexpected second welcome; ignored"),
        HeadMessage::Heartbeat => {}
    }
    Flow::Continue
}

async fn read_head<R: tokio::io::AsyncRead + Unpin>(
    rd: &mut BufReader<R>,
    buf: &mut Vec<u8>,
) -> Result<Option<HeadMessage>, String> {
    buf.clear();
    let n = (&mut *rd).take(16 << 20).read_until(b'\n', buf).await.map_err(|e| e.to_string())?;
    if n == 0 {
        return Ok(None);
    }
    match serde_json::from_slice::<HeadMessage>(buf) {
        Ok(m) => Ok(Some(m)),
        Err(_) if String::from_utf8_lossy(buf).contains("\"refused\"") => Ok(None),
        Err(e) => Err(format!("malformed message from the head: {e}")),
    }
}
