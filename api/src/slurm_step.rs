//! The wire between `srun` and the node parts of its job step.
//!
//! `srun` (in `gangway-slurm`) is the step's hub, as Slurm's srun is: it listens on a TCP
//! port of the batch host and starts one part per node of the step — `gangway-node
//! slurm-step ADDR NODE` — directly on its own node and through the launchers' agent relay
//! (the one Open MPI's daemons use) on the others. Each part connects back, says
//! [`PartMessage::Hello`] with the step's key, gets its [`StepStart`], starts its node's
//! tasks, serves them PMI-1 or PMIx, and sends their output, fences and exits back. One JSON object
//! per line in both directions.

use serde::{Deserialize, Serialize};

/// The variable carrying the step's key to a part (never on a command line that stays).
pub const KEY_ENV: &str = "GANGWAY_STEP_KEY";
/// The variable that gives `gangway-node rsh-agent HOST` its words (instead of the command
/// line, which anyone on the node can read).
pub const AGENT_COMMAND_ENV: &str = "GANGWAY_AGENT_COMMAND";
/// The variable carrying the partition's `mpiDefault` (Slurm's `MpiDefault`) into a Slurm
/// batch job, for its `srun`s.
pub const MPI_DEFAULT_ENV: &str = "GANGWAY_MPI_DEFAULT";
/// The variable naming `gangway-node`'s path inside a Slurm batch job.
pub const NODE_BIN_ENV: &str = "GANGWAY_NODE_BIN";

/// Everything a part needs to start its node's tasks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepStart {
    /// `SLURM_JOB_ID`.
    pub job_id: u32,
    /// The step's id within its job.
    pub step_id: u32,
    /// This node's index in the step (`%n`).
    pub node_index: u32,
    /// This node's name (`%N`).
    pub node_name: String,
    /// Global ranks of this node's tasks, in local-id order.
    pub ranks: Vec<u32>,
    /// Tasks in the whole step.
    pub ntasks: u32,
    /// The tasks' environment: srun's, with the step's and this node's variables.
    pub env: Vec<(String, String)>,
    /// Working directory (srun's).
    pub cwd: String,
    /// The program and its arguments.
    pub command: Vec<String>,
    /// With `--multi-prog`: each of this node's tasks' own program and arguments, in the
    /// order of `ranks` (empty: every task runs `command`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rank_commands: Vec<Vec<String>>,
    /// `-o` pattern; `None` sends standard output back to srun.
    pub output: Option<String>,
    /// `-e` pattern; `None` sends standard error back to srun.
    pub error: Option<String>,
    /// Which process-management interface the tasks are served (`--mpi`).
    #[serde(default)]
    pub mpi: StepMpi,
    /// The step's node names, by node index (PMIx's node map).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<String>,
    /// The PMI KVS name, the same on every node.
    pub kvsname: String,
    /// The step node of every rank, by rank (for `PMI_process_mapping`).
    pub rank_nodes: Vec<u32>,
    /// CPUs per task (`-c`).
    pub cpus_per_task: u32,
    /// `--cpu-bind`, as given.
    pub cpu_bind: Option<String>,
    /// `--gpu-bind`, as given.
    pub gpu_bind: Option<String>,
    /// `--gpus-per-task`.
    pub gpus_per_task: Option<u32>,
    /// Which tasks read srun's standard input (`-i`).
    pub stdin_to: StdinTarget,
    /// `--pty`: task 0 runs on a pseudo-terminal of this size (the node that has it makes
    /// one; the other tasks' output goes to `/dev/null`, as in Slurm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pty: Option<WindowSize>,
}

/// The process-management interface a step's tasks are served, from `--mpi`,
/// `SLURM_MPI_TYPE` or the default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StepMpi {
    /// PMIx for programs linked to Open MPI, PMI-1 for the rest (the default).
    #[default]
    Auto,
    /// PMI-1's wire protocol over `PMI_FD` (`--mpi=pmi2`, `pmi1`): MPICH and its family.
    Pmi1,
    /// PMIx (`--mpi=pmix`): Open MPI and other PMIx clients.
    Pmix,
    /// Nothing (`--mpi=none`).
    None,
}

impl StepMpi {
    /// The interface `--mpi=VALUE` names, or Slurm's error for a value gangway does not serve.
    pub fn parse(value: &str) -> Result<StepMpi, String> {
        match value {
            "auto" => Ok(StepMpi::Auto),
            "pmi2" | "pmi1" | "pmi" | "mpich" | "mvapich" => Ok(StepMpi::Pmi1),
            "pmix" | "pmix_v3" | "pmix_v4" | "pmix_v5" | "openmpi" => Ok(StepMpi::Pmix),
            "none" => Ok(StepMpi::None),
            // Slurm 22.05's five lines (srun prefixes the first).
            other => Err(format!(
                "Couldn't find the specified plugin name for mpi/{other} looking at all files\n\
                 srun: error: cannot find mpi plugin for mpi/{other}\n\
                 srun: error: MPI: Cannot create context for mpi/{other}\n\
                 srun: error: MPI: Unable to load any plugin\n\
                 srun: error: Invalid MPI type '{other}', --mpi=list for acceptable types"
            )),
        }
    }
}

/// A terminal's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowSize {
    /// Lines.
    pub rows: u16,
    /// Columns.
    pub cols: u16,
}

/// Which tasks get srun's standard input.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StdinTarget {
    /// Every task (srun's default).
    #[default]
    All,
    /// Only this task (`-i N`).
    Task(u32),
    /// None: the tasks read `/dev/null` (`-i none`).
    None,
}

/// From a part to srun.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum PartMessage {
    /// The first line: who this is, and the step's key.
    Hello {
        /// The part's node index.
        node_index: u32,
        /// The key srun gave it.
        key: String,
    },
    /// A piece of a task's output.
    Output {
        /// The task.
        rank: u32,
        /// Standard error rather than output.
        stderr: bool,
        /// The bytes.
        #[serde(flatten)]
        data: Data,
    },
    /// The node's puts of PMI fence `epoch`.
    Fence {
        /// Fences are numbered from 0 on every node.
        epoch: u32,
        /// The node's puts since the last fence.
        puts: Vec<(String, String)>,
    },
    /// A rank called `PMI_Abort`: the whole step must end.
    Abort {
        /// The rank.
        rank: u32,
        /// Its abort code.
        code: i32,
        /// Its message.
        message: Option<String>,
    },
    /// The node's PMIx server wants rank `rank`'s data (direct modex): srun asks the rank's node.
    ModexRequest {
        /// The request, numbered by the asking node.
        id: u64,
        /// The rank whose data is wanted.
        rank: u32,
    },
    /// The answer to node `to`'s request `id`: the rank's data (hex), or none.
    ModexData {
        /// The request.
        id: u64,
        /// The node that asked.
        to: u32,
        /// The data, hex; `None` when it could not be had.
        data: Option<String>,
    },
    /// A task that had joined the step's MPI job (connected to its PMIx server) ended
    /// without finalizing: its peers would wait for it forever, so the whole step must end.
    Lost {
        /// The task.
        rank: u32,
    },
    /// A task ended.
    Exited {
        /// The task.
        rank: u32,
        /// Its exit code, or `None` when a signal ended it.
        code: Option<i32>,
        /// The signal that ended it.
        signal: Option<i32>,
    },
    /// The part could not start its tasks.
    Failed {
        /// Why.
        message: String,
    },
    /// Every task of the node has ended and its output was sent.
    Done {
        /// The highest resident set size of one of the node's tasks, in KiB.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_rss_kib: Option<u64>,
    },
}

impl PartMessage {
    /// An output message for `data`.
    pub fn output(rank: u32, stderr: bool, data: Vec<u8>) -> PartMessage {
        PartMessage::Output { rank, stderr, data: data.into() }
    }
}

/// From srun to a part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum SrunMessage {
    /// Start the node's tasks.
    Start(Box<StepStart>),
    /// Fence `epoch` is complete: every node's puts.
    FenceDone {
        /// The fence.
        epoch: u32,
        /// Every node's puts.
        all: Vec<(String, String)>,
    },
    /// Send `signal` to every task of the node.
    Signal {
        /// The signal number.
        signal: i32,
    },
    /// Kill every task of the node now (another task failed, or srun is going away).
    Kill,
    /// A piece of srun's standard input.
    Input {
        /// The bytes.
        #[serde(flatten)]
        data: Data,
    },
    /// srun's standard input ended.
    InputEnd,
    /// srun's terminal changed size (`--pty`): the task's pseudo-terminal follows.
    Resize(WindowSize),
    /// Node `from` wants local rank `rank`'s PMIx data (its request `id`).
    ModexRequest {
        /// The asking node's request.
        id: u64,
        /// A rank of this node.
        rank: u32,
        /// The asking node.
        from: u32,
    },
    /// The answer to this node's request `id`.
    ModexData {
        /// The request.
        id: u64,
        /// The data, hex; `None` when it could not be had.
        data: Option<String>,
    },
}

/// Bytes on the wire: `text` when they are UTF-8 (the usual case, and readable), `bytes`
/// otherwise.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Data {
    /// The bytes, as text when they are UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The bytes otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<Vec<u8>>,
}

impl From<Vec<u8>> for Data {
    fn from(data: Vec<u8>) -> Data {
        match String::from_utf8(data) {
            Ok(text) => Data { text: Some(text), bytes: None },
            Err(e) => Data { text: None, bytes: Some(e.into_bytes()) },
        }
    }
}

impl Data {
    /// The bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.text.map(String::into_bytes).or(self.bytes).unwrap_or_default()
    }
}

/// The variable naming a salloc allocation's holder (`ADDR:PORT`) for the commands salloc runs.
pub const SALLOC_ADDR_ENV: &str = "GANGWAY_SALLOC_ADDR";
/// The variable carrying the allocation's key to the holder and to salloc's commands.
pub const SALLOC_KEY_ENV: &str = "GANGWAY_SALLOC_KEY";

/// What the holder of a salloc allocation (the job's batch script) tells salloc once it
/// runs, through a file in the submit directory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocReady {
    /// The port it listens on, on the allocation's first node.
    pub port: u16,
    /// The key every request to it must carry, made by the holder (so no secret travels
    /// through the head or stays in the job's stored environment; the file is its user's).
    #[serde(default)]
    pub key: String,
    /// The job's `SLURM_*` environment, for salloc's command.
    pub env: Vec<(String, String)>,
}

/// From salloc, or an srun run under it, to the allocation's holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum AllocRequest {
    /// The first line: run `srun ARGS…` inside the allocation.
    Srun {
        /// The allocation's key.
        key: String,
        /// srun's arguments.
        args: Vec<String>,
        /// The caller's environment.
        env: Vec<(String, String)>,
        /// The caller's working directory.
        cwd: String,
    },
    /// The first line: salloc's command ended; the allocation ends with its exit code.
    Release {
        /// The allocation's key.
        key: String,
        /// The command's exit code.
        code: i32,
    },
    /// A piece of the caller's standard input.
    Input {
        /// The bytes.
        #[serde(flatten)]
        data: Data,
    },
    /// The caller's standard input ended.
    InputEnd,
    /// The caller got a signal: pass it to the srun inside.
    Signal {
        /// The signal number.
        signal: i32,
    },
}

/// From the holder back to an srun run under salloc.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum AllocReply {
    /// Output of the srun inside.
    Output {
        /// Standard error rather than output.
        stderr: bool,
        /// The bytes.
        #[serde(flatten)]
        data: Data,
    },
    /// The srun inside exited with this code.
    Exited {
        /// Its exit code.
        code: i32,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_travel_as_text_when_they_can() {
        let line = serde_json::to_string(&PartMessage::output(3, true, b"hi\n".to_vec())).unwrap();
        assert_eq!(line, r#"{"t":"output","rank":3,"stderr":true,"text":"hi\n"}"#);
        let odd = SrunMessage::Input { data: vec![0xff, b'a'].into() };
        let back: SrunMessage = serde_json::from_str(&serde_json::to_string(&odd).unwrap()).unwrap();
        let SrunMessage::Input { data } = back else { panic!("{back:?}") };
        assert_eq!(data.into_bytes(), [0xff, b'a']);
    }
}
