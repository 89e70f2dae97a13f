//! The head node: REST API, launcher connections, state and store.
//!
//! Data flow: an HTTP handler or a launcher message calls [`Head::apply`], which runs a
//! change on [`HeadState`] under one lock, hands the resulting records to the store, and
//! — once the store reports them durable — sends the launcher messages and wakes the
//! handler. Timers (node lost, job deadline) fire back through the same path.

mod applications;
pub mod auth;
pub mod error;
mod files;
pub mod filter;
pub mod identity;
mod joining;
mod launcher;
mod listing;
mod metrics;
pub mod privacy;
mod requests;
mod routes;
pub(crate) use gangway_api::sha256;
mod slurm_routes;
pub mod state;
mod tls;
mod uploads;
mod users;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use gangway_api::client::ClientConfig;
use gangway_api::messages::FilesResult;
use gangway_api::{PoolAddParameter, TaskSchedulingPolicy};
use tokio::sync::oneshot;

use crate::store::{SqliteStore, Store};
pub use state::{Effects, HeadState, Timer};

/// How the head is run.
#[derive(Debug, Clone)]
pub struct HeadConfig {
    /// Where `state.db`, `client.json` and `cluster.secret` live.
    pub state_dir: PathBuf,
    /// Address to listen on (port 0 picks one).
    pub listen: SocketAddr,
    /// How long a node may be out of contact before its tasks are requeued.
    pub node_timeout: Duration,
    /// How often launchers heartbeat.
    pub heartbeat: Duration,
    /// Slots per node of the `default` pool when the head creates it.
    pub default_pool_slots: u32,
    /// A Slurm `topology.conf`: gangs are placed under the lowest common switch.
    pub fabric: Option<PathBuf>,
    /// Admins beyond root and the head's own user: user names or uids, `@group` names or gids.
    pub admins: Vec<String>,
    /// The munged that decodes clients' MUNGE credentials (None: munge's default socket).
    pub munge_socket: Option<String>,
    /// How many jobs may be open, in all and per user.
    pub job_limits: state::limits::JobLimits,
    /// The most connections served at once (launchers' streams included), TCP and socket.
    pub max_connections: usize,
    /// How much of other users' jobs a user sees.
    pub private_data: privacy::PrivateData,
    /// The longest an API call may take before it is answered with a timeout.
    pub request_timeout: Duration,
    /// How priorities are weighed and what limits running work.
    pub fairness: state::fairness::FairnessConfig,
    /// How long one scheduling pass may hold the state before it yields.
    pub max_pass_time: Duration,
    /// Slurm's `MaxArraySize`: array indices must be below it.
    pub max_array_size: u32,
    /// Names and addresses the head's TLS certificate carries beyond its own (`--tls-name`).
    pub tls_names: Vec<String>,
    /// Slurm's `MinJobAge`: how long a finished Slurm job stays in memory (zero: for ever).
    pub min_job_age: Duration,
}

/// The running head, shared by every connection.
pub struct Head {
    state: Mutex<HeadState>,
    store: Arc<SqliteStore>,
    token: String,
    secret: String,
    url: String,
    /// `STATE_DIR/files`: the file store (`/files`).
    files_dir: PathBuf,
    /// File requests waiting for their node's answer: the node asked, and the waiter.
    file_requests: Mutex<HashMap<u64, (String, oneshot::Sender<FilesResult>)>>,
    next_request: AtomicU64,
    /// Names of the uids Slurm jobs are submitted by.
    users: users::UserNames,
    /// Their groups (a user submits only in one of theirs).
    groups: users::UserGroups,
    /// Who may change anything.
    admins: identity::Admins,
    /// The munged socket MUNGE credentials are decoded with (None: munge's default).
    munge_socket: Option<String>,
    /// How much of other users' jobs a user sees.
    private_data: privacy::PrivateData,
    /// The longest an API call may take.
    request_timeout: Duration,
    /// The cluster CA (node certificates).
    ca: tls::ClusterCa,
    /// Client request ids (`UID:ID`) being done now: a concurrent repeat waits its turn.
    requests_in_flight: Mutex<std::collections::HashSet<String>>,
}

impl Head {
    /// Runs one change under the lock and returns its result and a future that resolves
    /// when the change is durable (after which its messages have been sent).
    pub fn apply<R>(self: &Arc<Self>, f: impl FnOnce(&mut HeadState, &mut Effects) -> R) -> (R, oneshot::Receiver<()>) {
        let mut fx = Effects::default();
        let (done_tx, done_rx) = oneshot::channel();
        let mut st = self.state.lock().expect("head state lock");
        let r = f(&mut st, &mut fx);
        st.flush_nodes(&mut fx);
        let Effects { writes, sends, timers } = fx;
        // Submitted under the lock, so the store sees changes in the order they were made.
        self.store.submit(
            writes,
            Some(Box::new(move || {
                for (tx, msg) in sends {
                    let _ = tx.send(msg);
                }
                let _ = done_tx.send(());
            })),
        );
        drop(st);
        for t in timers {
            self.arm(t);
        }
        (r, done_rx)
    }

    /// Like [`Head::apply`], and waits until the change is durable.
    pub async fn apply_durable<R>(self: &Arc<Self>, f: impl FnOnce(&mut HeadState, &mut Effects) -> R) -> R {
        let (r, done) = self.apply(f);
        let _ = done.await;
        r
    }

    /// Reads the state without changing it.
    pub fn read<R>(&self, f: impl FnOnce(&HeadState) -> R) -> R {
        f(&self.state.lock().expect("head state lock"))
    }

    fn arm(self: &Arc<Self>, t: Timer) {
        let head = self.clone();
        tokio::spawn(async move {
            match t {
                Timer::NodeLost { node, generation, after } => {
                    tokio::time::sleep(after).await;
                    head.apply(|st, fx| st.node_lost(&node, generation, fx));
                }
                Timer::JobDeadline { job, at } => {
                    sleep_until(at).await;
                    head.apply(|st, fx| st.job_deadline(&job, at, fx));
                }
                Timer::Purge { after } => {
                    tokio::time::sleep(after).await;
                    head.apply(|st, fx| {
                        st.purge_finished(gangway_api::Timestamp::now(), fx);
                        fx.timers.push(Timer::Purge { after });
                    });
                }
                Timer::Reprioritize { after } => {
                    tokio::time::sleep(after).await;
                    head.apply(|st, fx| {
                        st.reprioritize(fx);
                        fx.timers.push(Timer::Reprioritize { after });
                    });
                }
                Timer::Pass => {
                    // Behind whatever waits for the state now.
                    tokio::task::yield_now().await;
                    head.apply(|st, fx| st.resume_pass(fx));
                }
                Timer::Schedule { id, at } => {
                    sleep_until(at).await;
                    head.apply(|st, fx| st.schedule_due(&id, fx));
                }
                Timer::SlurmBegin { job, at } => {
                    sleep_until(at).await;
                    head.apply(|st, fx| st.slurm_begin(job, fx));
                }
            }
        });
    }

    fn new_request_id(&self) -> u64 {
        self.next_request.fetch_add(1, Ordering::Relaxed)
    }
}

/// Sleeps until `at`, rounded up to the next millisecond (waking a moment early would find
/// what is due still before its time).
async fn sleep_until(at: gangway_api::Timestamp) {
    let wait = at.millis_since(gangway_api::Timestamp::now());
    tokio::time::sleep(Duration::from_millis(wait + 1)).await;
}

/// The head's Unix socket in its state directory (named in `client.json`).
pub use gangway_api::client::SOCKET_FILE;

/// How long a connection may take to send a request's headers (also bounds idle keep-alive):
/// a silent client cannot hold a descriptor forever.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves HTTP/1.1 (with upgrades, for launchers) on every accepted connection, over TLS
/// when given an acceptor (the TCP port). Accept errors (out of descriptors, a connection
/// reset before accept) are retried by the listener.
async fn accept_loop<L>(
    mut listener: L,
    app: axum::Router,
    peer_of: fn(&L::Io) -> Option<identity::Peer>,
    connections: Arc<tokio::sync::Semaphore>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) where
    L: axum::serve::Listener,
    L::Io: FirstByte,
{
    let mut refused: u64 = 0;
    loop {
        let (io, _) = listener.accept().await;
        // At the cap, a new connection is closed at once: the head keeps descriptors for the
        // connections it serves (and its store) instead of running out of them.
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            refused += 1;
            if refused.is_power_of_two() {
                tracing::warn!(refused, "at the connection cap (--max-connections); closing new connections");
            }
            drop(io);
            continue;
        };
        // What every request of the connection carries: the Unix-socket peer, known for the
        // connection's life, and its share of the cap (a launcher's stream keeps it after the
        // upgrade ends this connection's HTTP part).
        let conn = identity::Connection { peer: peer_of(&io), permit: Arc::new(permit), node_cert: None };
        let (app, tls) = (app.clone(), tls.clone());
        // The handshake runs in the connection's own task: a slow client holds up no other.
        tokio::spawn(async move {
            let Some(tls) = tls else { return serve_connection(io, conn, app).await };
            // A client that speaks plain HTTP to the TLS port is told so, in HTTP.
            match tokio::time::timeout(HEADER_READ_TIMEOUT, io.first_byte()).await {
                Ok(Some(TLS_HANDSHAKE)) => {}
                Ok(Some(_)) => {
                    let mut io = io;
                    let _ = tokio::io::AsyncWriteExt::write_all(&mut io, &plain_http_answer()).await;
                    return;
                }
                _ => return,
            }
            let io = match tokio::time::timeout(HEADER_READ_TIMEOUT, tls.accept(io)).await {
                Ok(Ok(io)) => io,
                Ok(Err(e)) => return tracing::debug!(error = %e, "TLS handshake failed"),
                Err(_) => return tracing::debug!("TLS handshake timed out"),
            };
            // A client certificate here was verified against the cluster CA; whose it is, the
            // head looks up by its fingerprint.
            let node_cert = io
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| gangway_api::tls::fingerprint(c).into());
            serve_connection(io, identity::Connection { node_cert, ..conn }, app).await
        });
    }
}

/// The first byte of every TLS connection: a handshake record.
const TLS_HANDSHAKE: u8 = 22;

/// The answer to plain HTTP on the TLS port, in Azure's error shape.
fn plain_http_answer() -> Vec<u8> {
    let body = serde_json::json!({"code": "TlsRequired", "message": {"lang": "en-US",
        "value": "this port speaks TLS: use the head's https:// URL, with the cluster's CA certificate (GANGWAY_CA)"}})
    .to_string();
    format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A connection whose first byte can be seen without taking it.
trait FirstByte {
    fn first_byte(&self) -> impl std::future::Future<Output = Option<u8>> + Send;
}

impl FirstByte for tokio::net::TcpStream {
    async fn first_byte(&self) -> Option<u8> {
        let mut b = [0u8; 1];
        matches!(self.peek(&mut b).await, Ok(1)).then_some(b[0])
    }
}

impl FirstByte for tokio::net::UnixStream {
    async fn first_byte(&self) -> Option<u8> {
        // Never asked: the socket speaks plain HTTP.
        None
    }
}

/// Serves one connection's requests until it ends.
async fn serve_connection<I>(io: I, conn: identity::Connection, app: axum::Router)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;
    let service = TowerToHyperService::new(tower_layer::Layer::layer(&axum::Extension(conn.clone()), app));
    let http = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    if let Err(e) = http.await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
    drop(conn);
}

/// Listens on `path` (replacing a socket a previous head left), for clients on this machine.
/// `None`, with a warning, when it cannot: clients then use TCP.
fn bind_unix(path: &Path) -> Option<tokio::net::UnixListener> {
    if let Err(e) = std::fs::remove_file(path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(path = %path.display(), error = %e, "cannot replace the old socket; serving TCP only");
            return None;
        }
    }
    // Every user of the machine may connect: the kernel tells the head who they are.
    let open_to_all = |_: &tokio::net::UnixListener| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))
    };
    match tokio::net::UnixListener::bind(path) {
        Ok(l) => {
            if let Err(e) = open_to_all(&l) {
                tracing::warn!(path = %path.display(), error = %e, "cannot open the socket to every user");
            }
            Some(l)
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot listen on a Unix socket; serving TCP only");
            None
        }
    }
}

/// Raises the soft limit on open files to the hard limit: every launcher holds one stream.
fn raise_fd_limit() {
    // SAFETY: getrlimit/setrlimit on plain structs.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            let old = lim.rlim_cur;
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 {
                tracing::debug!(from = old, to = lim.rlim_max, "raised the open-files limit");
            }
        }
    }
}

/// Starts the head and serves until SIGINT or SIGTERM.
pub async fn serve(config: HeadConfig) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.state_dir)
        .with_context(|| format!("creating the state directory {}", config.state_dir.display()))?;
    let dir = &config.state_dir;
    // Others may reach the socket in it, but not list it or read what it holds.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711))
            .with_context(|| format!("setting the mode of the state directory {}", dir.display()))?;
    }
    let admins = identity::Admins::new(&config.admins)?;
    raise_fd_limit();
    let token = auth::load_or_create_secret(&dir.join("admin.token"))?;
    let secret = auth::load_or_create_secret(&dir.join("cluster.secret"))?;
    let files_dir = uploads::files_dir(dir);
    uploads::init(&files_dir).with_context(|| format!("creating the file store {}", files_dir.display()))?;
    let fabric = match &config.fabric {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("reading the fabric {}", path.display()))?;
            let f = gangway_topology::fabric::Fabric::parse(&text)
                .map_err(|e| anyhow::anyhow!("the fabric {} is not valid: {e}", path.display()))?;
            tracing::info!(nodes = f.node_count(), switches = f.switch_count(), "fabric loaded");
            Some(f)
        }
        None => None,
    };
    let store = Arc::new(SqliteStore::open(dir)?);
    let snapshot = store.load()?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let addr = listener.local_addr().context("reading the listening address")?;
    let url = format!("https://{addr}");
    let ca = tls::ClusterCa::load_or_create(&dir.join("tls"))?;
    let tls = tokio_rustls::TlsAcceptor::from(ca.server_config(&tls::head_names(addr.ip(), &config.tls_names))?);
    let head = Arc::new(Head {
        state: Mutex::new(HeadState::new(config.node_timeout, config.heartbeat)),
        store: store.clone(),
        token: token.clone(),
        secret,
        url: url.clone(),
        files_dir,
        file_requests: Mutex::new(HashMap::new()),
        next_request: AtomicU64::new(1),
        users: users::UserNames::default(),
        groups: users::UserGroups::default(),
        admins,
        munge_socket: config.munge_socket.clone(),
        private_data: config.private_data,
        request_timeout: config.request_timeout,
        ca,
        requests_in_flight: Mutex::default(),
    });
    if let Some(f) = fabric {
        head.state.lock().expect("head state lock").set_fabric(f);
    }
    {
        let mut st = head.state.lock().expect("head state lock");
        st.set_job_limits(config.job_limits);
        st.set_fairness(&config.fairness);
        st.set_max_pass_time(config.max_pass_time);
        st.set_max_array_size(config.max_array_size);
        st.set_min_job_age(config.min_job_age);
        st.set_job_token_key(&head.secret);
        st.set_api_url(&head.url);
        st.set_applications(applications::load(&applications::applications_dir(&head.files_dir)));
    }
    let restored = head.apply_durable(|st, fx| st.restore(snapshot, fx)).await;
    restored.map_err(|e| anyhow::anyhow!("the state store holds a record this head cannot read: {e}"))?;
    let after = config.fairness.calc_period;
    head.apply(|_, fx| fx.timers.push(Timer::Reprioritize { after }));
    if let Some(after) = head.read(|st| st.purge_every()) {
        head.apply(|_, fx| fx.timers.push(Timer::Purge { after }));
    }
    let has_default = head.read(|st| st.pools.contains_key("default"));
    if !has_default {
        let pool = PoolAddParameter {
            id: "default".into(),
            display_name: None,
            task_slots_per_node: Some(config.default_pool_slots),
            default_memory_per_cpu_mib: None,
            mpi_default: None,
            task_scheduling_policy: Some(TaskSchedulingPolicy::default()),
            enable_inter_node_communication: true,
            start_task: None,
            default_time_limit: None,
            max_time_limit: None,
            application_package_references: Vec::new(),
        };
        head.apply_durable(|st, fx| st.add_pool(pool, fx))
            .await
            .map_err(|e| anyhow::anyhow!("creating the default pool: {}", e.body.message.value))?;
    }
    // Absolute, so clients started anywhere find it.
    let socket_path = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone()).join(SOCKET_FILE);
    let unix = bind_unix(&socket_path);
    let socket = unix.as_ref().map(|_| socket_path.clone());
    let ca = Some(head.ca.ca_path().to_path_buf());
    let client = ClientConfig { url: url.clone(), token, socket, munge: None, ca };
    let json = serde_json::to_vec_pretty(&client).expect("client config serializes");
    auth::write_private(&dir.join("client.json"), &json)?;
    tracing::info!(%url, state_dir = %dir.display(), "head listening");

    let app = routes::router(head.clone());
    let shutdown = async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term.recv() => {},
        }
    };
    // Small request/response pairs and launcher messages must not wait for Nagle's algorithm.
    let tcp = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let connections = Arc::new(tokio::sync::Semaphore::new(config.max_connections.max(1)));
    let serve_unix = async {
        match unix {
            Some(l) => accept_loop(l, app.clone(), identity::peer_of, connections.clone(), None).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = accept_loop(tcp, app.clone(), |_| None, connections.clone(), Some(tls)) => {},
        _ = serve_unix => {},
        _ = shutdown => tracing::info!("shutting down"),
    }
    if socket_path.exists() {
        let _ = std::fs::remove_file(&socket_path);
    }
    // Everything acknowledged is already durable; this flushes what is still queued.
    store.close();
    Ok(())
}
