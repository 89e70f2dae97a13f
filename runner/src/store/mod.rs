//! The state store: durable records of pools, jobs and tasks.
//!
//! Records are the API resources themselves (their JSON) plus the few internal columns the
//! head needs to rebuild its state (creation order, attempt number). A write is acknowledged
//! (its callback runs) only after the transaction holding it is committed and fsync'ed; many
//! writes share one commit (group commit), so durability does not cap throughput.

mod sqlite;

pub use sqlite::SqliteStore;

/// One change to persist.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Insert or replace a pool.
    PutPool { id: String, body: String },
    /// Remove a pool.
    DeletePool { id: String },
    /// Insert or replace a job.
    PutJob { id: String, seq: u64, body: String },
    /// Remove a job and all its tasks.
    DeleteJob { id: String },
    /// A task, deleted from its job.
    DeleteTask { job: String, id: String },
    /// A job schedule, created or changed.
    PutSchedule { id: String, body: String },
    /// A job schedule, deleted.
    DeleteSchedule { id: String },
    /// Insert or replace a task.
    PutTask { job: String, id: String, seq: u64, attempt: u32, body: String },
    /// Insert or replace a node (its resource and what the head must remember of its launcher).
    PutNode(StoredNode),
    /// Forget a node (it left its pool).
    DeleteNode { id: String },
    /// Set a named counter (Slurm's next job id): it only ever grows, so ids are never reused.
    PutCounter { name: String, value: u64 },
    /// Insert or replace an API token (its digest, never the token).
    PutToken { id: String, body: String },
    /// Forget an API token (revoked).
    DeleteToken { id: String },
    /// A finished Slurm job purged from the head's memory (its accounting record, for sacct).
    PutHistory { job_id: u64, uid: u32, end_ms: u64, body: String },
    /// Insert or replace a join token or node certificate record (`join:ID`, `cert:FINGERPRINT`).
    PutTrust { id: String, body: String },
    /// Remember a client request id's answer (`UID:ID`).
    PutRequest { key: String, at_ms: u64, body: String },
    /// Forget the request ids remembered before `at_ms`.
    DeleteRequestsBefore { at_ms: u64 },
    /// Replace the fair-share usage: every (account, uid, usage) as decayed to `at`.
    PutUsage { at: u64, rows: Vec<(String, u32, f64)> },
}

/// A node as stored: the resource plus the launcher facts that must survive a head restart.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredNode {
    /// Node id.
    pub id: String,
    /// The node resource.
    pub body: String,
    /// Its launcher's boot id (a new one reruns the pool's start task).
    pub boot_id: String,
    /// Removal was asked for.
    pub leaving: bool,
    /// Its start task with waitForSuccess has not succeeded.
    pub wait_for_start: bool,
}

/// What the store holds, read back at start-up.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Pool bodies.
    pub pools: Vec<String>,
    /// (seq, body) of every job, in creation order.
    pub jobs: Vec<(u64, String)>,
    /// (job, seq, attempt, body) of every task, in creation order.
    pub tasks: Vec<StoredTask>,
    /// Every node, by id.
    pub nodes: Vec<StoredNode>,
    /// Named counters.
    pub counters: Vec<(String, u64)>,
    /// API token bodies.
    pub tokens: Vec<String>,
    /// Job schedule bodies.
    pub schedules: Vec<String>,
    /// Join token and node certificate records.
    pub trust: Vec<String>,
    /// Remembered client request ids, oldest first.
    pub requests: Vec<String>,
    /// Fair-share usage: (account, uid, usage), and the instant it was decayed to.
    pub usage: Vec<(String, u32, f64)>,
    pub usage_at: u64,
}

/// A task as stored.
#[derive(Debug)]
pub struct StoredTask {
    /// Its job's id.
    pub job: String,
    /// Creation order.
    pub seq: u64,
    /// Attempt number of its latest (or current) run.
    pub attempt: u32,
    /// The task resource.
    pub body: String,
}

/// Runs once the writes it was submitted with are durable.
pub type Durable = Box<dyn FnOnce() + Send>;

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Opening or migrating the database.
    #[error("opening the state store {path}: {source}")]
    Open {
        /// The database file.
        path: String,
        /// The SQLite error.
        #[source]
        source: rusqlite::Error,
    },
    /// Reading it back.
    #[error("reading the state store: {0}")]
    Load(#[source] rusqlite::Error),
}

/// A durable store with group commit.
pub trait Store: Send + Sync {
    /// Everything stored, for rebuilding the head's state.
    fn load(&self) -> Result<Snapshot, StoreError>;
    /// Queues `writes`; `done` runs after they are committed and synced, in submission order.
    fn submit(&self, writes: Vec<Write>, done: Option<Durable>);
}
