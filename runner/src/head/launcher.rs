//! The head's end of a launcher's control stream: HTTP upgrade, then JSON lines.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use gangway_api::messages::{HeadMessage, LauncherMessage, LAUNCHER_PROTOCOL};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

use super::error::ApiError;
use super::{files, joining, Head};

/// Longest line a launcher may send (file answers carry up to 4 MiB of base64).
const MAX_LINE: u64 = 8 << 20;
/// How long a new connection may take to say hello.
const HELLO_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// `GET /v1/launcher` with `Upgrade`: authenticates the node by the certificate its TLS
/// connection presented and takes over the connection.
pub async fn upgrade(State(head): State<Arc<Head>>, mut req: Request) -> Response {
    let conn = req.extensions().get::<super::identity::Connection>().cloned();
    let node = match joining::node_of(&head, conn.as_ref()) {
        Some(Ok(node)) => node,
        Some(Err(e)) => {
            tracing::warn!(why = %e.body.message.value, "launcher refused");
            return e.into_response();
        }
        None => {
            tracing::warn!("launcher refused: no node certificate");
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "AuthenticationFailed",
                "a launcher connects over TLS with its node certificate (join first with a join token: `gangway-node --join-token`)",
            )
            .into_response();
        }
    };
    let wants = req.headers().get(header::UPGRADE).and_then(|v| v.to_str().ok()) == Some(LAUNCHER_PROTOCOL);
    if !wants {
        return ApiError::new(
            StatusCode::UPGRADE_REQUIRED,
            "UpgradeRequired",
            format!("this endpoint needs Upgrade: {LAUNCHER_PROTOCOL}"),
        )
        .into_response();
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    // The stream counts under the connection cap for as long as it lives.
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(io) => serve(head, node, TokioIo::new(io)).await,
            Err(e) => tracing::warn!(error = %e, "launcher upgrade failed"),
        }
        drop(conn);
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::UPGRADE, LAUNCHER_PROTOCOL)
        .header(header::CONNECTION, "upgrade")
        .body(Body::empty())
        .expect("static response")
}

async fn read_message<R: AsyncRead + Unpin>(
    rd: &mut BufReader<R>,
    buf: &mut Vec<u8>,
) -> Result<Option<LauncherMessage>, String> {
    buf.clear();
    let n = (&mut *rd).take(MAX_LINE).read_until(b'\n', buf).await.map_err(|e| e.to_string())?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() != Some(&b'\n') {
        return Err(format!("message longer than {MAX_LINE} bytes or cut off"));
    }
    serde_json::from_slice(buf).map(Some).map_err(|e| format!("malformed message: {e}"))
}

/// Tells the launcher of `node` why it is refused (its last line) and logs it.
async fn refuse<W: AsyncWrite + Unpin>(wr: &mut W, node: &str, why: String) {
    tracing::warn!(node, why, "launcher refused");
    let line = serde_json::json!({"type": "refused", "reason": why});
    let _ = wr.write_all(format!("{line}\n").as_bytes()).await;
}

/// Serves the stream of the launcher of `node` (as its certificate says).
async fn serve<S: AsyncRead + AsyncWrite + Send + 'static>(head: Arc<Head>, node: String, io: S) {
    let (rd, mut wr) = tokio::io::split(io);
    let mut rd = BufReader::new(rd);
    let mut buf = Vec::new();
    let hello = match tokio::time::timeout(HELLO_TIMEOUT, read_message(&mut rd, &mut buf)).await {
        Ok(Ok(Some(LauncherMessage::Hello(h)))) => *h,
        other => {
            tracing::warn!(?other, "launcher connection closed: the first message must be hello");
            return;
        }
    };
    let name = hello.name.clone();
    if name != node {
        return refuse(&mut wr, &name, format!("certificate for {node} used by {name}")).await;
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<HeadMessage>();
    let (registered, _) = head.apply(|st, fx| st.register(hello, tx.clone(), fx));
    let (generation, welcome) = match registered {
        Ok(r) => r,
        Err(e) => return refuse(&mut wr, &name, e.to_string()).await,
    };
    tracing::info!(node = %name, generation, "launcher connected");
    let heartbeat = std::time::Duration::from_millis(welcome.heartbeat_ms);
    // The welcome goes out before anything queued for this connection.
    let welcome = serde_json::to_vec(&HeadMessage::Welcome(welcome)).expect("messages serialize");
    // This launcher's interval, as the welcome says. The head's own heartbeat on an idle
    // stream comes every two: well inside the three a launcher waits before it calls the head
    // silent, at half the messages (at 10,000 nodes, thousands a second).
    let idle = heartbeat * 2;
    let writer = tokio::spawn(async move {
        let mut out = welcome;
        out.push(b'\n');
        if wr.write_all(&out).await.is_err() {
            return;
        }
        loop {
            // An idle stream carries the head's heartbeat, so the launcher never takes the
            // silence for a dead head (and drops out of the scheduler while it reconnects).
            let msg = match tokio::time::timeout(idle, rx.recv()).await {
                Ok(Some(msg)) => msg,
                Ok(None) => return,
                Err(_) => HeadMessage::Heartbeat,
            };
            out.clear();
            serde_json::to_writer(&mut out, &msg).expect("messages serialize");
            out.push(b'\n');
            // Batch what is already queued into one write.
            while let Ok(more) = rx.try_recv() {
                serde_json::to_writer(&mut out, &more).expect("messages serialize");
                out.push(b'\n');
            }
            if wr.write_all(&out).await.is_err() || wr.flush().await.is_err() {
                return;
            }
        }
    });
    let deadline = heartbeat * 3;
    loop {
        let msg = match tokio::time::timeout(deadline, read_message(&mut rd, &mut buf)).await {
            Err(_) => {
                tracing::warn!(node = %name, "no heartbeat from launcher; dropping its connection");
                break;
            }
            Ok(Err(e)) => {
                tracing::warn!(node = %name, error = %e, "dropping launcher connection");
                break;
            }
            Ok(Ok(None)) => break,
            Ok(Ok(Some(m))) => m,
        };
        match msg {
            LauncherMessage::Heartbeat => {}
            LauncherMessage::TaskFinished(f) => {
                head.apply(|st, fx| st.finish_attempt(&name, f, fx));
            }
            LauncherMessage::PmiFence { id, instance, epoch, puts } => {
                head.apply(|st, fx| st.pmi_fence(&name, id, instance, epoch, puts, fx));
            }
            LauncherMessage::PmixModex { id, to, modex } => {
                head.apply(|st, fx| st.pmix_modex(&name, id, to, modex, fx));
            }
            LauncherMessage::InstanceReady { id, instance } => {
                head.apply(|st, fx| st.instance_ready(&name, id, instance, fx));
            }
            LauncherMessage::Agent(relay) => {
                head.apply(|st, fx| st.agent_relay(&name, relay, fx));
            }
            LauncherMessage::StartTaskStatus(info) => {
                head.apply(|st, fx| st.start_task_status(&name, generation, info, fx));
            }
            LauncherMessage::Files { req, result } => files::answered(&head, &name, req, result),
            LauncherMessage::Hello(_) => {
                tracing::warn!(node = %name, "second hello on one connection; dropping it");
                break;
            }
        }
    }
    writer.abort();
    tracing::info!(node = %name, generation, "launcher disconnected");
    head.apply(|st, fx| st.disconnected(&name, generation, fx));
}
