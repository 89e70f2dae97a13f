//! Messages between the head and a launcher.
//!
//! The launcher connects out to the head (`GET /v1/launcher` with `Upgrade: gangway-launcher`
//! and the cluster secret as bearer token); after `101 Switching Protocols` both sides exchange
//! these messages as JSON, one per line. Every message about a task names its `attempt`, so a
//! report from an attempt the head has already given up on is recognised and ignored.

use serde::{Deserialize, Serialize};

use crate::node::StartTaskInformation;
use crate::task::TaskFailureInformation;
use crate::time::Timestamp;
use gangway_topology::model::NodeTopology;
use gangway_topology::NodeResources;

/// The path launchers connect to.
pub const LAUNCHER_PATH: &str = "/v1/launcher";
/// The `Upgrade` protocol name.
pub const LAUNCHER_PROTOCOL: &str = "gangway-launcher/1";

/// Identifies one attempt at running a task.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AttemptId {
    /// Job id.
    pub job: String,
    /// Task id.
    pub task: String,
    /// Attempt number, counting retries and requeues.
    pub attempt: u32,
}

/// Launcher → head.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LauncherMessage {
    /// First message on every connection.
    Hello(Box<Hello>),
    /// Liveness, sent every `heartbeat_ms`.
    Heartbeat,
    /// A task attempt ended; repeated on every reconnect until the head acknowledges it.
    TaskFinished(TaskFinished),
    /// This node's MPI ranks entered a PMI fence: their puts since the last one.
    PmiFence {
        /// Which attempt.
        id: AttemptId,
        /// Which instance (node) of it.
        instance: u32,
        /// Fence number on that node (0, 1, …).
        epoch: u32,
        /// Key-value pairs put by this node's ranks.
        puts: Vec<(String, String)>,
    },
    /// A PMIx direct-modex message for instance `to` of the attempt.
    PmixModex {
        /// Which attempt.
        id: AttemptId,
        /// The instance it goes to.
        to: u32,
        /// The request or answer.
        modex: PmixModex,
    },
    /// An instance of a multi-instance attempt ran its coordination command successfully.
    InstanceReady {
        /// Which attempt.
        id: AttemptId,
        /// Which instance.
        instance: u32,
    },
    /// How the pool's start task is going: sent when each of its attempts starts, when it
    /// completes, after every welcome, and in answer to a repeated [`HeadMessage::RunStartTask`].
    StartTaskStatus(StartTaskInformation),
    /// gangway's remote-launch agent (Open MPI's `plm_rsh_agent`): a request to run a command
    /// on another instance of the attempt, its end, or its cancellation, for the head to relay.
    Agent(AgentRelay),
    /// Answer to [`HeadMessage::ReadFiles`].
    Files {
        /// The request it answers.
        req: u64,
        /// What was found.
        result: FilesResult,
    },
}

/// What gangway's remote-launch agent asks for, relayed by the head between the instances of
/// an Open MPI attempt (`mpirun` calls the agent instead of ssh; no node needs ssh).
/// A PMIx direct-modex exchange between two instances of a managed MPI attempt, relayed by
/// the head: a node's server wants a rank's data from the instance that runs the rank.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum PmixModex {
    /// Instance `from` asks for rank `rank`'s data (its request `req`).
    Request {
        /// The asker's request number.
        req: u64,
        /// The rank.
        rank: u32,
        /// The asking instance.
        from: u32,
    },
    /// The answer to request `req`: the data (hex), or none.
    Data {
        /// The request.
        req: u64,
        /// The rank's data, hex; `None` when it could not be had.
        data: Option<String>,
    },
}

/// `Run` and `Kill` go to the instance on `host`; `Exited` goes back to instance `origin`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum AgentRelay {
    /// Run `command` with `sh -c` in the cgroup of the attempt's instance on `host`.
    Run {
        /// Which attempt.
        id: AttemptId,
        /// The instance whose agent asks.
        origin: u32,
        /// The request's number on that instance.
        req: u64,
        /// The host as `mpirun` named it: a node name or address of one of the instances.
        host: String,
        /// The agent's words joined with spaces, as sshd joins them.
        command: String,
    },
    /// The command of request `req` from instance `origin` ended.
    Exited {
        /// Which attempt.
        id: AttemptId,
        /// The instance whose agent asked.
        origin: u32,
        /// The request's number on that instance.
        req: u64,
        /// Its exit code (128+N for signal N); absent when it could not be started.
        exit_code: Option<i32>,
        /// Why it could not be started.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// The agent that asked went away (killed by `mpirun`): kill the command.
    Kill {
        /// Which attempt.
        id: AttemptId,
        /// The instance whose agent asked.
        origin: u32,
        /// The request's number on that instance.
        req: u64,
        /// Where the command runs.
        host: String,
    },
}

/// Contents or listing of a task's files.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FilesResult {
    /// Bytes of one file from the requested offset (base64), and the file's full size.
    Data {
        /// Base64 of the bytes.
        data: String,
        /// Size of the whole file.
        size: u64,
    },
    /// The task directory's entries.
    List {
        /// Entries, paths relative to the task directory.
        files: Vec<crate::task::NodeFile>,
    },
    /// The file or directory does not exist.
    NotFound,
    /// It was deleted.
    Deleted,
    /// The range starts past the end of the file.
    RangeNotSatisfiable {
        /// Size of the whole file.
        size: u64,
    },
    /// Anything else.
    Error {
        /// What went wrong.
        message: String,
    },
}

/// Registration: who the node is, what it has, and what it is doing.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hello {
    /// Node name (unique in the cluster).
    pub name: String,
    /// Address other nodes and users reach it at.
    pub address: String,
    /// The pool it joins.
    pub pool: String,
    /// Its hardware.
    pub resources: NodeResources,
    /// Its root directory (`AZ_BATCH_NODE_ROOT_DIR`).
    pub root_dir: String,
    /// Attempts still running on it (after a reconnect).
    pub running: Vec<AttemptId>,
    /// Ended attempts the head has not acknowledged yet.
    pub finished: Vec<TaskFinished>,
    /// Random id of this launcher process: a new one means the launcher restarted.
    pub boot_id: String,
    /// Its detailed topology (cores, NUMA, GPUs, NICs), for placement.
    #[serde(default)]
    pub topology: Option<NodeTopology>,
}

/// The directories of a node root that the node files API shows (Azure Batch's; not the
/// node's key, nor the records of its running tasks).
pub const NODE_FILE_DIRS: [&str; 6] = ["applications", "fsmounts", "shared", "startup", "volatile", "workitems"];

/// The failure code of an attempt its launcher lost track of (its supervisor ended without
/// saying how the task did): the head requeues it, as it requeues the work of a lost node.
pub const TASK_LOST: &str = "TaskLost";

/// The end of one attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskFinished {
    /// Which attempt.
    pub id: AttemptId,
    /// Exit code (128+N when killed by signal N); absent when the command never started.
    pub exit_code: Option<i32>,
    /// Why it failed beyond its exit code (command not found, time limit, terminated).
    pub failure: Option<TaskFailureInformation>,
    /// When the process started.
    pub start_time: Option<Timestamp>,
    /// When it was reaped.
    pub end_time: Timestamp,
    /// Peak memory of its cgroup, when known.
    pub max_rss_bytes: Option<u64>,
    /// The instance, for a multi-instance attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<u32>,
}

impl TaskFinished {
    /// The report of attempt `id` that just exited with `code` (started and ended now).
    pub fn exited_now(id: AttemptId, code: i32) -> TaskFinished {
        let now = Timestamp::now();
        TaskFinished {
            id,
            exit_code: Some(code),
            failure: None,
            start_time: Some(now),
            end_time: now,
            max_rss_bytes: None,
            instance: None,
        }
    }
}

/// Head → launcher.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HeadMessage {
    /// Registration accepted.
    Welcome(Welcome),
    /// Nothing else was sent for a heartbeat interval: the head is alive, the stream holds.
    Heartbeat,
    /// Run an attempt.
    StartTask(Box<StartTask>),
    /// Kill an attempt (grace period, then SIGKILL).
    KillTask {
        /// Which attempt.
        id: AttemptId,
        /// `TaskTerminated`, `JobTerminated`, …: becomes the failure code.
        reason: String,
    },
    /// Send `signal` to every process of an attempt on this node (`scancel --signal`); the
    /// attempt keeps running unless the signal ends it.
    SignalTask {
        /// Which attempt.
        id: AttemptId,
        /// The signal number.
        signal: i32,
    },
    /// Every node of a managed MPI attempt entered fence `epoch`: everyone's puts.
    PmiFenceDone {
        /// Which attempt.
        id: AttemptId,
        /// Fence number.
        epoch: u32,
        /// Every node's puts, in instance order.
        puts: Vec<(String, String)>,
    },
    /// A PMIx direct-modex message from another instance of the attempt.
    PmixModex {
        /// Which attempt.
        id: AttemptId,
        /// The request or answer.
        modex: PmixModex,
    },
    /// Every instance of this multi-instance attempt has coordinated: the primary runs the application.
    RunApplication {
        /// Which attempt.
        id: AttemptId,
    },
    /// A remote-launch agent message relayed from another instance of the attempt.
    Agent(AgentRelay),
    /// The head has durably recorded this attempt's end.
    Ack {
        /// Which attempt.
        id: AttemptId,
    },
    /// Read a task file (`path` set) or list the task directory (`path` absent).
    ReadFiles {
        /// Echoed in the answer.
        req: u64,
        /// Job id.
        job: String,
        /// Task id.
        task: String,
        /// Relative path inside the task directory, already checked not to escape it.
        path: Option<String>,
        /// First byte.
        offset: u64,
        /// At most this many bytes.
        len: u64,
        /// Delete the file (or, with `recursive`, the directory and what it holds) instead.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        delete: Option<DeleteFile>,
        /// The node's own files instead of a task's: `job` and `task` are ignored and paths
        /// are relative to the node root, whose Azure Batch directories ([`NODE_FILE_DIRS`])
        /// alone are shown.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        node: bool,
    },
    /// Remove a task's directory now (job deleted).
    RemoveTaskDir {
        /// Job id.
        job: String,
        /// Task id.
        task: String,
    },
    /// Run the pool's start task, unless this launcher process already ran (or runs) it: then
    /// only report its status again.
    RunStartTask(RunStartTask),
    /// The node was removed from its pool: stop every task, remove the cgroups and exit.
    Leave,
}

/// The pool's start task, as a launcher runs it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunStartTask {
    /// The pool (for `AZ_BATCH_POOL_ID`).
    pub pool: String,
    /// The command line, to be split into arguments (no shell).
    pub command_line: String,
    /// Its own environment settings.
    pub env: Vec<(String, String)>,
    /// Reruns after a non-zero exit (-1: unlimited).
    pub max_task_retry_count: i32,
}

/// Reply to [`Hello`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Welcome {
    /// How often to heartbeat.
    pub heartbeat_ms: u64,
    /// How long the head waits for a launcher that went away before it declares the node
    /// lost and requeues its tasks (0: not said, from an older head). Supervised tasks that
    /// have had no launcher for this long stop, so they never run beside their requeued copies.
    #[serde(default)]
    pub node_timeout_ms: u64,
    /// Attempts the launcher reported running that the head no longer wants: kill them.
    pub kill: Vec<AttemptId>,
    /// The pool's application packages: unpacked as the node joins (before its tasks need them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<crate::apps::PackageToInstall>,
}

/// One node's part of a multi-instance attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstancePlan {
    /// This instance (0 is the primary, which runs the application).
    pub instance: u32,
    /// Addresses of every instance's node, in instance order.
    pub hosts: Vec<String>,
    /// Names of those nodes.
    pub nodes: Vec<String>,
    /// CPUs of those nodes (for `CCP_NODES`).
    pub cpus: Vec<u32>,
    /// Run on every instance first.
    pub coordination_command_line: Option<String>,
    /// Fetched into the task directory by every instance.
    pub common_resource_files: Vec<crate::task::ResourceFile>,
}

/// Everything a launcher needs to run one attempt.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StartTask {
    /// Which attempt.
    pub id: AttemptId,
    /// The pool (for `AZ_BATCH_POOL_ID`).
    pub pool: String,
    /// The command line, to be split into arguments (no shell).
    pub command_line: String,
    /// Job common environment overlaid by the task's own.
    pub env: Vec<(String, String)>,
    /// Kill after this many milliseconds from start.
    pub max_wall_clock_ms: Option<u64>,
    /// Keep the task directory this long after it ends.
    pub retention_ms: u64,
    /// Slots it occupies (exported as `GANGWAY_SLOTS`).
    pub slots: u32,
    /// What it was given on this node: its cgroup's CPUs and memory limit, its GPUs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocation: Option<crate::task::NodeAllocation>,
    /// This node's part of a multi-instance attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multi_instance: Option<InstancePlan>,
    /// Start these MPI ranks (with PMI-1) instead of one process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mpi: Option<crate::task::MpiSettings>,
    /// Files to fetch into the working directory before starting (checked at submit).
    #[serde(default)]
    pub resource_files: Vec<crate::task::ResourceFile>,
    /// The task id of its job's preparation task, when the job has one: the task's
    /// environment names its directory (`AZ_BATCH_JOB_PREP_DIR`, `…_WORKING_DIR`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_prep_task: Option<String>,
    /// Application packages to unpack (once per node) before it starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<crate::apps::PackageToInstall>,
    /// Files to copy out when it ends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub output_files: Vec<crate::outputs::OutputFile>,
    /// A Slurm batch script to run instead of the command line (on the primary, for a
    /// multi-instance attempt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<BatchScript>,
    /// The user it runs as (its job's owner); None: the launcher's own user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<RunAs>,
}

/// Who a task runs as: its job's owner, looked up on the node by uid (as slurmd does).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunAs {
    /// The user's uid.
    pub uid: u32,
    /// The group to run in (one of the user's, checked by the head); None: the user's primary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    /// The user's name, for messages.
    pub name: String,
}

/// How a launcher runs a Slurm batch script: written into the task directory and run with
/// its own interpreter line, in the job's working directory, its output going straight to
/// the files `--output`/`--error` name (as slurmd opens them), not to `stdout.txt`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchScript {
    /// The script's text.
    pub script: String,
    /// Its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// Absolute working directory.
    pub work_dir: String,
    /// Absolute path standard output is written to (truncated first).
    pub stdout: String,
    /// Absolute path for standard error; the same as `stdout` means one file for both.
    pub stderr: String,
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (file contents travel inside JSON lines).
pub fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes [`base64_encode`]'s output.
pub fn base64_decode(s: &str) -> Result<Vec<u8>, String> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes() {
        let v = B64.iter().position(|&b| b == c).ok_or_else(|| format!("invalid base64 character {:?}", c as char))?;
        acc = acc << 6 | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        assert_eq!(base64_encode(b"hello"), "aGVsbG8=");
        assert_eq!(base64_encode(b""), "");
        assert_eq!(base64_encode(b"ab"), "YWI=");
        for n in 0..40u8 {
            let data: Vec<u8> = (0..n).map(|i| i.wrapping_mul(37)).collect();
            assert_eq!(base64_decode(&base64_encode(&data)).unwrap(), data);
        }
        assert!(base64_decode("a*b").is_err());
    }
}

/// How a task file is deleted (`DELETE …/files/{path}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteFile {
    /// A directory is deleted with everything in it (else only when empty).
    pub recursive: bool,
}
