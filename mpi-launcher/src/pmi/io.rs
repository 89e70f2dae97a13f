//! The async driver: one socket pair per local rank, lines in, [`NodePmi`] in the middle,
//! replies out, fences through a [`FenceExchange`].
//!
//! A rank gets its end of the pair as an inherited fd named by `PMI_FD` (MPICH's simple PMI
//! client uses it instead of connecting anywhere, so nothing listens on a port). Both ends are
//! made close-on-exec: the child's end must reach only its own rank — were it inherited by a
//! sibling, the server would never see EOF when the rank dies — so the spawner clears the flag in
//! the child alone ([`inherit_fd`]).

use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::pin::Pin;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::UnixStream;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::server::{Action, KvPair, NodePmi, NodePmiError};

/// The longest request line read; a put at the announced maxima is under 1,700 bytes.
const MAX_LINE: usize = 4096;

/// Why a job-wide fence failed.
#[derive(Debug, thiserror::Error)]
pub enum FenceError {
    /// The connection carrying the exchange (to the head or the other launchers) broke.
    #[error("fence exchange lost its connection: {0}")]
    Connection(#[source] io::Error),
    /// The job step ended (another node failed) before the fence completed.
    #[error("the job step ended before the fence completed")]
    StepEnded,
}

/// Where a rank's PMIx data (or none) goes once it is had.
pub type ModexAnswer = tokio::sync::oneshot::Sender<Option<Vec<u8>>>;

/// A node's answer to a direct-modex request: a rank's PMIx data, or none.
pub type ModexFuture = Pin<Box<dyn Future<Output = Option<Vec<u8>>> + Send + 'static>>;

/// Exchanges one node's puts with every other node of the job step.
pub trait FenceExchange {
    /// Sends this node's `puts` of the current fence and returns every node's puts (this
    /// node's included) once all nodes have entered it.
    fn exchange(&self, puts: Vec<KvPair>) -> impl Future<Output = Result<Vec<KvPair>, FenceError>> + Send;

    /// Fetches rank `rank`'s PMIx data from the node it runs on (direct modex). None where
    /// the step has no other node to ask.
    fn fetch_modex(&self, rank: u32) -> ModexFuture {
        let _ = rank;
        Box::pin(async { None })
    }
}

/// The exchange of a job step that runs on one node: its puts are everyone's.
#[derive(Debug, Clone, Copy, Default)]
pub struct SingleNode;

impl FenceExchange for SingleNode {
    async fn exchange(&self, puts: Vec<KvPair>) -> Result<Vec<KvPair>, FenceError> {
        Ok(puts)
    }
}

/// Why the driver stopped early.
#[derive(Debug, thiserror::Error)]
pub enum PmiIoError {
    /// Making a rank's socket usable by tokio failed.
    #[error("setting up the PMI socket of rank {rank}")]
    Socket {
        /// The rank.
        rank: u32,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The driver misused the server (a socket for a rank that is not local).
    #[error(transparent)]
    Server(#[from] NodePmiError),
}

/// What the launcher must hear about while ranks run: each one fails the task.
#[derive(Debug)]
pub enum PmiEvent {
    /// A rank called `PMI_Abort` with `code`.
    Abort { rank: u32, code: i32, msg: Option<String> },
    /// A rank's connection closed before `finalize`.
    RankLost { rank: u32 },
    /// A rank sent something that is not PMI-1; its connection was closed.
    ProtocolError { rank: u32, error: String },
    /// The job-wide fence failed; the ranks were released with an error.
    FenceFailed(FenceError),
}

/// A local rank's socket pair, made before the rank is spawned.
#[derive(Debug)]
pub struct RankSocket {
    /// The rank's global number.
    pub rank: u32,
    child: OwnedFd,
    server: OwnedFd,
}

impl RankSocket {
    /// A connected `AF_UNIX` stream pair for `rank`, both ends close-on-exec.
    pub fn new(rank: u32) -> io::Result<RankSocket> {
        let mut fds = [0; 2];
        // SAFETY: socketpair writes two fds into the array, which we then own.
        let rc =
            unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr()) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: both fds were just created and are owned by nobody else.
        let (child, server) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        Ok(RankSocket { rank, child, server })
    }

    /// The fd number the rank inherits (its `PMI_FD`); pass it to [`inherit_fd`] in the child.
    pub fn child_fd(&self) -> RawFd {
        self.child.as_raw_fd()
    }

    /// The environment MPICH's simple PMI client reads: `PMI_FD` (the socket; with it set,
    /// `PMI_PORT`/`PMI_ID` are not used), `PMI_RANK`, `PMI_SIZE`, and `PMI_SPAWNED=0` (not
    /// started by `MPI_Comm_spawn`). Appnum, kvsname and the process mapping come over the wire.
    pub fn env(&self, size: u32) -> Vec<(String, String)> {
        vec![
            ("PMI_FD".into(), self.child_fd().to_string()),
            ("PMI_RANK".into(), self.rank.to_string()),
            ("PMI_SIZE".into(), size.to_string()),
            ("PMI_SPAWNED".into(), "0".into()),
        ]
    }

    /// Closes the child's end (call once the rank is spawned) and returns the server's end.
    pub fn into_server(self) -> OwnedFd {
        self.server
    }
}

/// Clears close-on-exec on `fd` so the exec'd program inherits it. Only `fcntl`, so it is
/// async-signal-safe and may run between fork and exec (`CommandExt::pre_exec`).
pub fn inherit_fd(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on an fd number has no memory effects; a bad fd returns EBADF.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// What a rank's reader task passes to the driver.
enum FromRank {
    Line(Vec<u8>),
    TooLong,
    Closed,
}

type FenceFuture<'a> = Pin<Box<dyn Future<Output = Result<Vec<KvPair>, FenceError>> + Send + 'a>>;

/// Serves the local ranks' PMI connections (`(rank, server end)`) until every one has closed.
/// Aborts, lost ranks, protocol errors and failed fences go to `events` as they happen, so
/// the launcher can fail the task while the other ranks still run.
pub async fn serve_node<F: FenceExchange + Sync>(
    mut pmi: NodePmi,
    sockets: Vec<(u32, OwnedFd)>,
    fence: &F,
    events: mpsc::UnboundedSender<PmiEvent>,
) -> Result<(), PmiIoError> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    // Dropping the set (the driver cancelled or returned) stops every reader.
    let mut readers = JoinSet::new();
    let mut writers = std::collections::HashMap::new();
    for (rank, fd) in sockets {
        let socket = std::os::unix::net::UnixStream::from(fd);
        let stream = socket
            .set_nonblocking(true)
            .and_then(|()| UnixStream::from_std(socket))
            .map_err(|source| PmiIoError::Socket { rank, source })?;
        let (read, write) = stream.into_split();
        writers.insert(rank, write);
        readers.spawn(read_lines(rank, BufReader::new(read), tx.clone()));
    }
    drop(tx);

    let mut fence_in_flight: Option<FenceFuture<'_>> = None;
    let mut actions = Vec::new();
    loop {
        tokio::select! {
            result = async { fence_in_flight.as_mut().expect("guarded by the condition").await },
                if fence_in_flight.is_some() => {
                fence_in_flight = None;
                match result {
                    Ok(all_puts) => pmi.fence_done(all_puts, &mut actions)?,
                    Err(e) => {
                        tracing::warn!(error = %e, "PMI fence failed");
                        let _ = events.send(PmiEvent::FenceFailed(e));
                        pmi.fence_failed(&mut actions)?;
                    }
                }
            }
            msg = rx.recv() => match msg {
                None => break, // every reader has seen its connection close
                Some((rank, FromRank::Line(line))) => pmi.handle_line(rank, &line, &mut actions)?,
                Some((rank, FromRank::TooLong)) => actions.push(Action::ProtocolError {
                    rank,
                    error: format!("PMI line longer than {MAX_LINE} bytes"),
                }),
                Some((rank, FromRank::Closed)) => pmi.closed(rank, &mut actions)?,
            },
        }
        for action in actions.drain(..) {
            match action {
                Action::Reply { rank, response } => {
                    if let Some(w) = writers.get_mut(&rank) {
                        // A failed write means the rank is gone; its reader reports that.
                        let _ = write_line(w, &response.to_string()).await;
                    }
                }
                Action::Fence { puts } => fence_in_flight = Some(Box::pin(fence.exchange(puts))),
                Action::Abort { rank, code, msg } => {
                    tracing::info!(rank, code, msg = msg.as_deref().unwrap_or(""), "PMI abort");
                    let _ = events.send(PmiEvent::Abort { rank, code, msg });
                }
                Action::RankLost { rank } => {
                    let _ = events.send(PmiEvent::RankLost { rank });
                }
                Action::ProtocolError { rank, error } => {
                    tracing::warn!(rank, %error, "PMI protocol error; closing the rank's connection");
                    // Dropping the write half shuts it down: the rank's next read sees EOF and
                    // fails instead of waiting forever for a reply.
                    writers.remove(&rank);
                    let _ = events.send(PmiEvent::ProtocolError { rank, error });
                }
            }
        }
    }
    Ok(())
}

async fn write_line(w: &mut OwnedWriteHalf, line: &str) -> io::Result<()> {
    w.write_all(line.as_bytes()).await
}

async fn read_lines(
    rank: u32,
    mut reader: BufReader<tokio::net::unix::OwnedReadHalf>,
    tx: mpsc::UnboundedSender<(u32, FromRank)>,
) {
    let mut buf = Vec::new();
    loop {
        buf.clear();
        // Bounded, so a rank writing garbage without newlines cannot grow the launcher.
        let read = (&mut reader).take(MAX_LINE as u64 + 1).read_until(b'\n', &mut buf).await;
        let msg = match read {
            Ok(0) | Err(_) => FromRank::Closed,
            Ok(_) if buf.len() > MAX_LINE => FromRank::TooLong,
            Ok(_) => FromRank::Line(std::mem::take(&mut buf)),
        };
        let stop = !matches!(msg, FromRank::Line(_));
        if tx.send((rank, msg)).is_err() || stop {
            break;
        }
    }
    // After a too-long line the rank's connection is treated as closed, too.
    let _ = tx.send((rank, FromRank::Closed));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pmi::server::{process_mapping, NodeConfig};
    use std::io::{BufRead, Write};

    /// Drives the server over real socket pairs with a scripted client per rank.
    #[tokio::test]
    async fn pmi_driver_answers_and_fences_over_sockets() {
        let pmi = NodePmi::new(NodeConfig {
            size: 2,
            local_ranks: vec![0, 1],
            kvsname: "kvs_t".into(),
            process_mapping: process_mapping(&[2]),
        });
        let sockets: Vec<_> = (0..2).map(|r| RankSocket::new(r).unwrap()).collect();
        assert_eq!(
            sockets[1].env(2)[1..],
            [("PMI_RANK".into(), "1".into()), ("PMI_SIZE".into(), "2".into()), ("PMI_SPAWNED".into(), "0".into())]
        );
        let mut clients = Vec::new();
        let mut servers = Vec::new();
        for s in sockets {
            clients.push(std::os::unix::net::UnixStream::from(s.child.try_clone().unwrap()));
            servers.push((s.rank, s.into_server()));
        }
        let (etx, mut erx) = mpsc::unbounded_channel();
        let client_threads: Vec<_> = clients
            .into_iter()
            .enumerate()
            .map(|(r, c)| {
                std::thread::spawn(move || {
                    let mut w = c.try_clone().unwrap();
                    let mut rd = std::io::BufReader::new(c);
                    let mut ask = |line: String| {
                        w.write_all(line.as_bytes()).unwrap();
                        let mut reply = String::new();
                        rd.read_line(&mut reply).unwrap();
                        reply
                    };
                    ask(format!("cmd=put kvsname=kvs_t key=k{r} value=v {r}\n"));
                    assert_eq!(ask("cmd=barrier_in\n".into()), "cmd=barrier_out rc=0\n");
                    let other = ask(format!("cmd=get kvsname=kvs_t key=k{}\n", 1 - r));
                    assert_eq!(other, format!("cmd=get_result rc=0 value=v {}\n", 1 - r));
                    if r == 0 {
                        assert_eq!(ask("cmd=finalize\n".into()), "cmd=finalize_ack rc=0\n");
                    } // rank 1 just closes: a lost rank
                })
            })
            .collect();
        tokio::time::timeout(std::time::Duration::from_secs(20), serve_node(pmi, servers, &SingleNode, etx))
            .await
            .expect("driver finished")
            .unwrap();
        for t in client_threads {
            t.join().unwrap();
        }
        let ev = erx.recv().await.expect("one event");
        assert!(matches!(ev, PmiEvent::RankLost { rank: 1 }), "{ev:?}");
        assert!(erx.recv().await.is_none());
    }
}
