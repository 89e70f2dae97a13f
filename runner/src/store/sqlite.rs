//! SQLite in WAL mode with `synchronous = FULL`: every commit fsyncs the log.
//!
//! One writer thread owns the connection. It takes every batch waiting in its channel,
//! applies them in one transaction, commits, then runs their callbacks: under load each
//! fsync covers hundreds of writes.

use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use rusqlite::{params, Connection, ToSql};

use super::{Durable, Snapshot, Store, StoreError, StoredNode, StoredTask, Write};

/// How many batches one commit may take, so a flood of writes still acknowledges steadily.
const MAX_BATCHES_PER_COMMIT: usize = 4096;

/// Writes submitted together and what to run once they are durable.
type Batch = (Vec<Write>, Option<Durable>);

/// The embedded SQLite store (`state.db` in the head's state directory).
pub struct SqliteStore {
    tx: Mutex<Option<mpsc::Sender<Batch>>>,
    writer: Mutex<Option<thread::JoinHandle<()>>>,
    path: String,
    /// A connection for reading history (opened at the first read; WAL readers do not block the writer).
    reader: Mutex<Option<Connection>>,
    /// Why commits fail now, while they do.
    failing: Arc<Mutex<Option<String>>>,
    /// How long each commit took (`/metrics`).
    commits: Arc<Mutex<crate::histogram::Histogram>>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS pools (id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, seq INTEGER NOT NULL, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (
    job TEXT NOT NULL, id TEXT NOT NULL, seq INTEGER NOT NULL, attempt INTEGER NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (job, id)
);
CREATE TABLE IF NOT EXISTS nodes (
    id TEXT PRIMARY KEY, body TEXT NOT NULL, boot_id TEXT NOT NULL, leaving INTEGER NOT NULL, wait_for_start INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS schedules (id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trust (id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS requests (key TEXT PRIMARY KEY, at_ms INTEGER NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS requests_by_time ON requests (at_ms);
CREATE TABLE IF NOT EXISTS history (job_id INTEGER PRIMARY KEY, uid INTEGER NOT NULL, end_ms INTEGER NOT NULL, body TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS history_by_user ON history (uid, end_ms);
CREATE INDEX IF NOT EXISTS history_by_end ON history (end_ms);
CREATE TABLE IF NOT EXISTS usage (account TEXT NOT NULL, uid INTEGER NOT NULL, usage REAL NOT NULL, PRIMARY KEY (account, uid));
";

fn open(path: &str) -> Result<Connection, rusqlite::Error> {
    let conn = Connection::open(path)?;
    // The head's alone (SQLite gives its log and shared-memory files the database's mode).
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))?;
    }
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL in WAL mode syncs the log on every commit: an acknowledged write survives power loss.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch(SCHEMA)?;
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating if needed) `dir/state.db` and starts the writer thread.
    pub fn open(dir: &Path) -> Result<SqliteStore, StoreError> {
        let path = dir.join("state.db").to_string_lossy().into_owned();
        let conn = open(&path).map_err(|source| StoreError::Open { path: path.clone(), source })?;
        let (tx, rx) = mpsc::channel();
        let failing = Arc::new(Mutex::new(None));
        let commits = Arc::new(Mutex::new(crate::histogram::Histogram::new(&crate::histogram::SECONDS)));
        let (writer_failing, writer_commits) = (failing.clone(), commits.clone());
        let writer = thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer_loop(conn, rx, &writer_failing, &writer_commits))
            .map_err(|e| StoreError::Open {
                path: path.clone(),
                source: rusqlite::Error::ToSqlConversionFailure(e.into()),
            })?;
        Ok(SqliteStore {
            tx: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
            path,
            reader: Mutex::new(None),
            failing,
            commits,
        })
    }

    /// How long the commits so far took.
    pub fn commit_seconds(&self) -> crate::histogram::Histogram {
        self.commits.lock().expect("store lock").clone()
    }

    /// Why the store cannot write now (a full disk, an I/O error), while it cannot: its
    /// writes wait and are retried until they succeed.
    pub fn failing(&self) -> Option<String> {
        self.failing.lock().expect("store lock").clone()
    }

    /// The purged jobs' records (bodies) of user `uid` (every user's for None) that ended at
    /// or after `since_ms`, by job id. Blocking: async callers run it off their workers.
    pub fn history(&self, uid: Option<u32>, since_ms: u64) -> Result<Vec<String>, StoreError> {
        let mut reader = self.reader.lock().expect("store reader lock");
        if reader.is_none() {
            *reader = Some(open(&self.path).map_err(StoreError::Load)?);
        }
        let conn = reader.as_ref().expect("opened");
        let since = since_ms.min(i64::MAX as u64) as i64;
        let rows = match uid {
            Some(uid) => conn
                .prepare_cached("SELECT body FROM history WHERE uid = ?1 AND end_ms >= ?2 ORDER BY job_id")
                .and_then(|mut q| q.query_map(params![uid, since], |r| r.get(0))?.collect()),
            None => conn
                .prepare_cached("SELECT body FROM history WHERE end_ms >= ?1 ORDER BY job_id")
                .and_then(|mut q| q.query_map(params![since], |r| r.get(0))?.collect()),
        };
        rows.map_err(StoreError::Load)
    }

    /// Waits for every queued write to be durable and stops the writer.
    pub fn close(&self) {
        drop(self.tx.lock().expect("store lock").take());
        if let Some(h) = self.writer.lock().expect("store lock").take() {
            let _ = h.join();
        }
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.close();
    }
}

fn writer_loop(
    mut conn: Connection,
    rx: mpsc::Receiver<Batch>,
    failing: &Mutex<Option<String>>,
    commits: &Mutex<crate::histogram::Histogram>,
) {
    while let Ok(first) = rx.recv() {
        let mut batches = vec![first];
        while batches.len() < MAX_BATCHES_PER_COMMIT {
            match rx.try_recv() {
                Ok(b) => batches.push(b),
                Err(_) => break,
            }
        }
        // A commit that fails (a full disk, an I/O error) is rolled back and tried again, with
        // what came since, until it succeeds: nothing is acknowledged before it is durable,
        // and meanwhile `failing` says why (the head refuses new changes with 503).
        let mut wait = Duration::from_millis(100);
        let mut began = std::time::Instant::now();
        while let Err(e) = commit(&mut conn, &batches) {
            let why = e.to_string();
            let mut f = failing.lock().expect("store lock");
            if f.is_none() {
                tracing::error!(error = %why, "the state store cannot write; retrying until it can");
            }
            *f = Some(why);
            drop(f);
            thread::sleep(wait);
            wait = (wait * 2).min(Duration::from_secs(2));
            batches.extend(std::iter::from_fn(|| rx.try_recv().ok()));
            began = std::time::Instant::now();
        }
        commits.lock().expect("store lock").observe(began.elapsed().as_secs_f64());
        if failing.lock().expect("store lock").take().is_some() {
            tracing::info!("the state store writes again");
        }
        for (_, done) in batches {
            if let Some(done) = done {
                done();
            }
        }
    }
}

/// The counter holding the instant the stored usage was decayed to.
const USAGE_AT: &str = "usage_at";

fn commit(conn: &mut Connection, batches: &[Batch]) -> Result<(), rusqlite::Error> {
    let tx = conn.transaction()?;
    // Every statement is prepared once per connection and reused from its cache.
    let run = |sql: &str, p: &[&dyn ToSql]| tx.prepare_cached(sql)?.execute(p).map(drop);
    for w in batches.iter().flat_map(|(writes, _)| writes) {
        match w {
            Write::PutTask { job, id, seq, attempt, body } => run(
                "INSERT INTO tasks (job, id, seq, attempt, body) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (job, id) DO UPDATE SET attempt = excluded.attempt, body = excluded.body",
                params![job, id, *seq as i64, attempt, body],
            )?,
            Write::PutPool { id, body } => {
                run("INSERT OR REPLACE INTO pools (id, body) VALUES (?1, ?2)", params![id, body])?
            }
            Write::DeletePool { id } => run("DELETE FROM pools WHERE id = ?1", params![id])?,
            Write::PutJob { id, seq, body } => {
                run("INSERT OR REPLACE INTO jobs (id, seq, body) VALUES (?1, ?2, ?3)", params![id, *seq as i64, body])?
            }
            Write::PutNode(n) => run(
                "INSERT OR REPLACE INTO nodes (id, body, boot_id, leaving, wait_for_start) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![n.id, n.body, n.boot_id, n.leaving, n.wait_for_start],
            )?,
            Write::DeleteNode { id } => run("DELETE FROM nodes WHERE id = ?1", params![id])?,
            Write::PutCounter { name, value } => {
                run("INSERT OR REPLACE INTO counters (name, value) VALUES (?1, ?2)", params![name, *value as i64])?
            }
            Write::PutSchedule { id, body } => {
                run("INSERT OR REPLACE INTO schedules (id, body) VALUES (?1, ?2)", params![id, body])?
            }
            Write::DeleteSchedule { id } => run("DELETE FROM schedules WHERE id = ?1", params![id])?,
            Write::DeleteTask { job, id } => run("DELETE FROM tasks WHERE job = ?1 AND id = ?2", params![job, id])?,
            Write::DeleteJob { id } => {
                run("DELETE FROM tasks WHERE job = ?1", params![id])?;
                run("DELETE FROM jobs WHERE id = ?1", params![id])?;
            }
            Write::PutToken { id, body } => {
                run("INSERT OR REPLACE INTO tokens (id, body) VALUES (?1, ?2)", params![id, body])?
            }
            Write::DeleteToken { id } => run("DELETE FROM tokens WHERE id = ?1", params![id])?,
            Write::PutHistory { job_id, uid, end_ms, body } => run(
                "INSERT OR REPLACE INTO history (job_id, uid, end_ms, body) VALUES (?1, ?2, ?3, ?4)",
                params![*job_id as i64, uid, (*end_ms).min(i64::MAX as u64) as i64, body],
            )?,
            Write::PutTrust { id, body } => {
                run("INSERT OR REPLACE INTO trust (id, body) VALUES (?1, ?2)", params![id, body])?
            }
            Write::PutRequest { key, at_ms, body } => run(
                "INSERT OR REPLACE INTO requests (key, at_ms, body) VALUES (?1, ?2, ?3)",
                params![key, (*at_ms).min(i64::MAX as u64) as i64, body],
            )?,
            Write::DeleteRequestsBefore { at_ms } => {
                run("DELETE FROM requests WHERE at_ms < ?1", params![(*at_ms).min(i64::MAX as u64) as i64])?
            }
            Write::PutUsage { at, rows } => {
                run("DELETE FROM usage", params![])?;
                for (account, uid, usage) in rows {
                    run("INSERT INTO usage (account, uid, usage) VALUES (?1, ?2, ?3)", params![account, uid, usage])?;
                }
                run("INSERT OR REPLACE INTO counters (name, value) VALUES (?1, ?2)", params![USAGE_AT, *at as i64])?
            }
        }
    }
    tx.commit()
}

impl Store for SqliteStore {
    fn load(&self) -> Result<Snapshot, StoreError> {
        // A second connection: the writer's is busy on its own thread, and WAL readers do not block it.
        let conn = open(&self.path).map_err(StoreError::Load)?;
        let mut snap = Snapshot::default();
        let mut q = conn.prepare("SELECT body FROM pools ORDER BY id").map_err(StoreError::Load)?;
        snap.pools = q.query_map([], |r| r.get(0)).and_then(Iterator::collect).map_err(StoreError::Load)?;
        let mut q = conn.prepare("SELECT seq, body FROM jobs ORDER BY seq").map_err(StoreError::Load)?;
        snap.jobs = q
            .query_map([], |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)))
            .and_then(Iterator::collect)
            .map_err(StoreError::Load)?;
        let mut q = conn.prepare("SELECT job, seq, attempt, body FROM tasks ORDER BY seq").map_err(StoreError::Load)?;
        snap.tasks = q
            .query_map([], |r| {
                Ok(StoredTask { job: r.get(0)?, seq: r.get::<_, i64>(1)? as u64, attempt: r.get(2)?, body: r.get(3)? })
            })
            .and_then(Iterator::collect)
            .map_err(StoreError::Load)?;
        let mut q = conn
            .prepare("SELECT id, body, boot_id, leaving, wait_for_start FROM nodes ORDER BY id")
            .map_err(StoreError::Load)?;
        snap.nodes = q
            .query_map([], |r| {
                Ok(StoredNode {
                    id: r.get(0)?,
                    body: r.get(1)?,
                    boot_id: r.get(2)?,
                    leaving: r.get(3)?,
                    wait_for_start: r.get(4)?,
                })
            })
            .and_then(Iterator::collect)
            .map_err(StoreError::Load)?;
        let mut q = conn.prepare("SELECT name, value FROM counters").map_err(StoreError::Load)?;
        snap.counters = q
            .query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))
            .and_then(Iterator::collect)
            .map_err(StoreError::Load)?;
        let mut q = conn.prepare("SELECT body FROM tokens ORDER BY id").map_err(StoreError::Load)?;
        snap.tokens = q.query_map([], |r| r.get(0)).and_then(Iterator::collect).map_err(StoreError::Load)?;
        let mut q = conn.prepare("SELECT body FROM schedules ORDER BY id").map_err(StoreError::Load)?;
        snap.schedules = q.query_map([], |r| r.get(0)).and_then(Iterator::collect).map_err(StoreError::Load)?;
        let mut q = conn.prepare("SELECT body FROM trust ORDER BY id").map_err(StoreError::Load)?;
        snap.trust = q.query_map([], |r| r.get(0)).and_then(Iterator::collect).map_err(StoreError::Load)?;
        let mut q = conn.prepare("SELECT body FROM requests ORDER BY at_ms").map_err(StoreError::Load)?;
        snap.requests = q.query_map([], |r| r.get(0)).and_then(Iterator::collect).map_err(StoreError::Load)?;
        let mut q = conn.prepare("SELECT account, uid, usage FROM usage").map_err(StoreError::Load)?;
        snap.usage = q
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .and_then(Iterator::collect)
            .map_err(StoreError::Load)?;
        snap.usage_at = snap.counters.iter().find(|(n, _)| n == USAGE_AT).map_or(0, |(_, v)| *v);
        Ok(snap)
    }

    fn submit(&self, writes: Vec<Write>, done: Option<Durable>) {
        let guard = self.tx.lock().expect("store lock");
        match guard.as_ref() {
            Some(tx) if tx.send((writes, done)).is_ok() => {}
            _ => tracing::error!("write submitted after the store was closed; dropped"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn writes_survive_reopen_and_callbacks_run_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        for i in 0..100u64 {
            let order = order.clone();
            store.submit(
                vec![Write::PutTask {
                    job: "j".into(),
                    id: format!("t{i}"),
                    seq: i,
                    attempt: 1,
                    body: format!("{{\"n\":{i}}}"),
                }],
                Some(Box::new(move || order.lock().unwrap().push(i))),
            );
        }
        store.submit(vec![Write::PutJob { id: "j".into(), seq: 1, body: "{}".into() }], None);
        store.submit(vec![Write::PutPool { id: "p".into(), body: "{\"id\":\"p\"}".into() }], None);
        let node = StoredNode {
            id: "n1".into(),
            body: "{}".into(),
            boot_id: "b".into(),
            leaving: true,
            wait_for_start: false,
        };
        store.submit(vec![Write::PutNode(node.clone())], None);
        store.submit(
            vec![Write::PutNode(StoredNode { id: "n2".into(), ..node.clone() }), Write::DeleteNode { id: "n2".into() }],
            None,
        );
        store.submit(
            vec![Write::PutTask { job: "j".into(), id: "t0".into(), seq: 0, attempt: 2, body: "{}".into() }],
            None,
        );
        store.close();
        assert_eq!(*order.lock().unwrap(), (0..100).collect::<Vec<_>>());

        let store = SqliteStore::open(dir.path()).unwrap();
        let snap = store.load().unwrap();
        assert_eq!(snap.pools.len(), 1);
        assert_eq!(
            snap.nodes,
            vec![StoredNode {
                id: "n1".into(),
                body: "{}".into(),
                boot_id: "b".into(),
                leaving: true,
                wait_for_start: false
            }]
        );
        assert_eq!(snap.jobs, vec![(1, "{}".to_string())]);
        assert_eq!(snap.tasks.len(), 100);
        assert_eq!((snap.tasks[0].seq, snap.tasks[0].attempt), (0, 2), "an update keeps the task's place");
        assert_eq!(snap.tasks[99].body, "{\"n\":99}");

        let acked = Arc::new(AtomicUsize::new(0));
        let a = acked.clone();
        store.submit(
            vec![Write::DeleteJob { id: "j".into() }],
            Some(Box::new(move || {
                a.fetch_add(1, Ordering::SeqCst);
            })),
        );
        store.close();
        assert_eq!(acked.load(Ordering::SeqCst), 1);
        let snap = SqliteStore::open(dir.path()).unwrap().load().unwrap();
        assert!(snap.jobs.is_empty() && snap.tasks.is_empty());
    }
}
