//! `gangway`: the head node and the command-line client.

mod cli;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use gangway_api::client::{Client, ClientConfig};
use gangway_api::{NodeFillType, StartTask};

use cli::commands;

#[derive(Parser)]
#[command(name = "gangway", version, about = "Batch runner for MPI and GPU work on HPC clusters")]
struct Cli {
    /// State directory of the cluster (default: $GANGWAY_STATE_DIR, else ~/.local/state/gangway).
    #[arg(long, global = true, env = "GANGWAY_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// Print JSON instead of tables (read commands).
    #[arg(long, global = true)]
    json: bool,
    /// Log level for `head` (error, warn, info, debug, trace); RUST_LOG also works.
    #[arg(long, global = true, default_value = "info")]
    log_level: String,
    #[command(subcommand)]
    cmd: Cmd,
}

fn duration(s: &str) -> Result<Duration, String> {
    gangway_api::time::parse_human_duration(s)
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the head node (REST API, scheduler, state store).
    Head {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8640")]
        listen: SocketAddr,
        /// How long a node may be out of contact before its tasks are requeued.
        #[arg(long, default_value = "30s", value_parser = duration)]
        node_timeout: Duration,
        /// How often launchers heartbeat.
        #[arg(long, default_value = "2s", value_parser = duration)]
        heartbeat: Duration,
        /// Task slots per node of the `default` pool, when the head creates it.
        #[arg(long, default_value_t = 1)]
        default_slots: u32,
        /// A Slurm topology.conf describing the switch tree: multi-instance tasks land on the
        /// nodes with the fewest switches between them.
        #[arg(long)]
        fabric: Option<PathBuf>,
        /// Admins beyond root and the head's own user: a user (name or uid) or `@group`;
        /// repeat it or separate with commas. Users change only their own jobs; admins any.
        #[arg(long = "admin", value_name = "USER|@GROUP")]
        admins: Vec<String>,
        /// The munged socket that decodes clients' MUNGE credentials (default: munge's own).
        #[arg(long)]
        munge_socket: Option<String>,
        /// The most jobs open (not completed) at once, in all (Slurm's MaxJobCount).
        #[arg(long, default_value_t = gangway_runner::head::state::limits::DEFAULT_MAX_JOBS)]
        max_jobs: usize,
        /// The most jobs one user may have open (Slurm's MaxSubmitJobs; default: no limit but --max-jobs).
        #[arg(long)]
        max_jobs_per_user: Option<usize>,
        /// The most connections served at once (each launcher holds one); more are closed.
        #[arg(long, default_value_t = 32_768)]
        max_connections: usize,
        /// What users see of others' jobs: `details` (ids, states, owners; no commands,
        /// scripts or environments) or `jobs` (nothing, as Slurm's PrivateData=jobs).
        #[arg(long, default_value = "details", value_parser = ["details", "jobs"])]
        private_data: String,
        /// The longest an API call may take before it is answered with OperationTimedOut.
        #[arg(long, default_value = "120s", value_parser = duration)]
        request_timeout: Duration,
        /// A priority setting, with slurm.conf's name: PriorityWeightAge, PriorityWeightFairshare,
        /// PriorityWeightJobSize, PriorityMaxAge, PriorityDecayHalfLife, PriorityCalcPeriod,
        /// PriorityFavorSmall, TRESBillingWeights (repeat it). Default: age 1000, fair share 10000.
        #[arg(long = "priority", value_name = "NAME=VALUE")]
        priority: Vec<String>,
        /// A name or address the head is reached by, for its TLS certificate (beyond
        /// localhost, this machine's host name and the listen address; repeat it).
        #[arg(long = "tls-name")]
        tls_names: Vec<String>,
        /// Slurm's MinJobAge: a finished Slurm job leaves memory (squeue, scontrol) this long
        /// after it ended, and sacct finds it in the store's history (0: never).
        #[arg(long, default_value = "300s", value_parser = duration)]
        min_job_age: Duration,
        /// Slurm's MaxArraySize: job array indices must be below it (1 to 4000001).
        #[arg(long, default_value_t = gangway_api::slurm::MAX_ARRAY_SIZE,
              value_parser = clap::value_parser!(u32).range(1..=4_000_001))]
        max_array_size: u32,
        /// How long one scheduling pass may take before it yields to other work and goes on
        /// (Slurm's bf_max_time).
        #[arg(long, default_value = "100ms", value_parser = duration)]
        max_pass_time: Duration,
        /// An account's raw fair-share shares (default 1 each; repeat it).
        #[arg(long = "share", value_name = "ACCOUNT=SHARES")]
        shares: Vec<String>,
        /// A limit on running work: MaxJobsPerUser=N, MaxTRESPerUser=cpu=N,gres/gpu=M,
        /// MaxJobsPerAccount=N, MaxTRESPerAccount=… (repeat it).
        #[arg(long = "limit", value_name = "NAME=VALUE")]
        limits: Vec<String>,
    },
    /// Start an embedded cluster on this machine: a head and N launchers over loopback.
    Up {
        /// Number of launchers (node1…nodeN).
        #[arg(long, default_value_t = 2)]
        nodes: u32,
        /// Return once every node is idle, leaving the cluster running.
        #[arg(long)]
        detach: bool,
        /// Task slots per node of the default pool (default: this machine's CPU count).
        #[arg(long)]
        slots_per_node: Option<u32>,
        /// How long a node may be out of contact before its tasks are requeued.
        #[arg(long, default_value = "30s")]
        node_timeout: String,
        /// Address for the head to listen on.
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
        /// Directory for the nodes' root directories (default: STATE_DIR/nodes), e.g. a local scratch disk.
        #[arg(long)]
        nodes_dir: Option<PathBuf>,
        /// Every node declares this hwloc XML topology (emulates, say, 8-GPU nodes on a laptop).
        #[arg(long, conflicts_with = "synthetic")]
        topology_xml: Option<PathBuf>,
        /// Every node declares this hwloc synthetic topology (`pack:2 numa:2 core:16 pu:2`).
        #[arg(long)]
        synthetic: Option<String>,
        /// Memory (MiB) each node keeps for the system and its launcher.
        #[arg(long, default_value_t = 0)]
        memory_reserve: u64,
    },
    /// Stop the cluster `gangway up --detach` started.
    Down,
    /// Submit a command as a new job with one task (or a task of an existing job).
    Submit {
        /// Pool to run in (default: the pool `default`).
        #[arg(long)]
        pool: Option<String>,
        /// Job id (adds a task when the job exists).
        #[arg(long)]
        job: Option<String>,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
        /// Wall-clock limit (90s, 10m, 2h, PT1H…).
        #[arg(long, value_parser = duration)]
        time: Option<Duration>,
        /// Retries after a non-zero exit (-1: unlimited).
        #[arg(long, allow_hyphen_values = true)]
        retries: Option<i32>,
        /// Task slots the task occupies.
        #[arg(long)]
        slots: Option<u32>,
        /// CPUs the task (each instance) gets for itself (whole cores).
        #[arg(long)]
        cpus: Option<u32>,
        /// Memory limit in MiB (each instance); 0: all of the node's memory.
        #[arg(long = "mem")]
        memory_mib: Option<u64>,
        /// GPUs the task (each instance) gets for itself.
        #[arg(long)]
        gpus: Option<u32>,
        /// With --gpus: a word of the GPUs' name (h100, a100).
        #[arg(long)]
        gpu_type: Option<String>,
        /// The whole node (each instance's), shared with nothing else.
        #[arg(long)]
        exclusive: bool,
        /// Run N copies of the command as tasks 1..N (each sees its own AZ_BATCH_TASK_ID).
        #[arg(long, default_value_t = 1)]
        tasks: u32,
        /// Run one multi-instance task on N whole nodes (an MPI job): the command runs on the
        /// primary once the coordination command has run on every node.
        #[arg(long)]
        nodes: Option<u32>,
        /// With --nodes: the coordination command line, run on every instance first.
        #[arg(long)]
        coordination: Option<String>,
        /// Launch this many MPI ranks per node, each pinned to its placement (MPICH family over
        /// PMI-1; Open MPI through mpirun and gangway's agent, see --mpi).
        #[arg(long)]
        ranks_per_node: Option<u32>,
        /// With --ranks-per-node: CPUs per rank (default: the node split evenly).
        #[arg(long)]
        cpus_per_rank: Option<u32>,
        /// With --ranks-per-node: GPUs per rank.
        #[arg(long, default_value_t = 0)]
        gpus_per_rank: u32,
        /// With --ranks-per-node: cores, threads, numa or none.
        #[arg(long)]
        bind: Option<String>,
        /// With --ranks-per-node: closest, shared or none.
        #[arg(long)]
        gpu_bind: Option<String>,
        /// With --ranks-per-node: how ranks start. auto (default): the launcher reads the
        /// program file (the command's first word, found on PATH or in the working directory)
        /// and picks pmix if it names Open MPI's libmpi.so.40/libopen-rte/libopen-pal, else
        /// pmi (scripts and static binaries too: wrap Open MPI programs or say --mpi pmix).
        /// pmi: direct launch over PMI-1 (MPICH). pmix: direct launch under the launcher's
        /// PMIx server (Open MPI). openmpi: mpirun on the primary, its daemons started through
        /// gangway's agent (no ssh), a rankfile from the placement.
        #[arg(long = "mpi", value_parser = ["auto", "pmi", "pmix", "openmpi"])]
        mpi_impl: Option<String>,
        /// A file you stored with `gangway file put`, put in the task's working directory under
        /// its name (an `uploadedFile` resource file); repeat for more.
        #[arg(long = "file", value_name = "NAME")]
        files: Vec<String>,
        /// Run as this user (`userIdentity.userName`): yourself, or anyone for an admin.
        #[arg(long = "user", value_name = "NAME", conflicts_with = "elevated")]
        user_name: Option<String>,
        /// Run as root (an admin auto-user, `elevationLevel: admin`); admins only.
        #[arg(long)]
        elevated: bool,
        /// With --job: run only after these tasks of the job have succeeded (`dependsOn`):
        /// ids and integer ranges, comma-separated (`prep,1-100`).
        #[arg(long, value_name = "IDS")]
        depends_on: Option<String>,
        /// A new job stays open when its tasks are done (more may be added with --job; end it
        /// with `gangway job terminate`); by default it ends with them.
        #[arg(long)]
        keep_open: bool,
        /// Wait for the task and exit with its exit code.
        #[arg(long)]
        wait: bool,
        /// The command and its arguments.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Jobs: list, show ID, terminate ID, disable ID, enable ID, delete ID.
    Job {
        /// list | show | terminate | disable (requeueing what runs) | enable | delete
        action: String,
        /// Job id.
        id: Option<String>,
    },
    /// Tasks: list JOB, show JOB TASK, logs JOB TASK, terminate JOB TASK, reactivate JOB TASK,
    /// delete JOB TASK.
    Task {
        /// list | show | logs | terminate | reactivate | delete
        action: String,
        /// Job id.
        job: String,
        /// Task id.
        task: Option<String>,
        /// logs: show stderr.txt instead of stdout.txt.
        #[arg(long)]
        stderr: bool,
        /// logs: keep printing until the task completes.
        #[arg(long, short)]
        follow: bool,
    },
    /// Nodes: list, show ID, disable ID, enable ID, remove ID, join-token [ID].
    Node {
        /// list | show | disable | enable | remove | join-token
        action: String,
        /// Node id (join-token: the only node that may join with it).
        id: Option<String>,
        /// disable, remove: what happens to the node's running tasks (default requeue).
        #[arg(long, value_parser = ["requeue", "terminate", "taskcompletion"])]
        option: Option<String>,
        /// join-token: how long it is valid (default 1h).
        #[arg(long, value_parser = duration)]
        expires: Option<Duration>,
        /// join-token: how many nodes may join with it (default 1).
        #[arg(long)]
        uses: Option<u32>,
    },
    /// Pools: list, show ID, create ID, delete ID.
    Pool {
        /// list | show | create | delete
        action: String,
        /// Pool id.
        id: Option<String>,
        /// create: task slots per node.
        #[arg(long)]
        slots: Option<u32>,
        /// create: spread or pack.
        #[arg(long, value_parser = ["spread", "pack"])]
        fill: Option<String>,
        /// create: memory (MiB) per CPU of tasks that ask for CPUs but no memory (Slurm's DefMemPerCPU).
        #[arg(long)]
        default_mem_per_cpu: Option<u64>,
        /// create: what srun serves a step that names no --mpi (Slurm's MpiDefault).
        #[arg(long, value_parser = ["auto", "pmi2", "pmix", "none"])]
        mpi_default: Option<String>,
        /// create: what later tasks may do when the first cannot start (default easy).
        #[arg(long, value_parser = ["fcfs", "firstfit", "easy", "conservative"])]
        backfill: Option<String>,
        /// create: with --backfill conservative, how many waiting tasks get a reservation (1-64, default 8).
        #[arg(long, requires = "backfill")]
        reservations: Option<u32>,
        /// create: how jobs of equal priority are ordered: deadline (short, narrow jobs first,
        /// none passed for more than 400,000 s; the default) or submit.
        #[arg(long, value_parser = ["deadline", "submit"])]
        order: Option<String>,
        /// create: time limit of tasks that set none (like 30m, 2h; Slurm's DefaultTime).
        #[arg(long, value_parser = duration)]
        default_time: Option<std::time::Duration>,
        /// create: the largest time limit a task may ask for (Slurm's MaxTime).
        #[arg(long, value_parser = duration)]
        max_time: Option<std::time::Duration>,
        /// create: allow multi-instance tasks.
        #[arg(long)]
        inter_node: bool,
        /// create: a command every node runs when it joins (split like a task's, no shell).
        #[arg(long)]
        start_task: Option<String>,
        /// create: whether nodes wait for the start task to succeed before taking tasks (default true).
        #[arg(long, requires = "start_task")]
        start_task_wait: Option<bool>,
        /// create: reruns of the start task after a non-zero exit (-1: unlimited; default 0).
        #[arg(long, requires = "start_task", allow_hyphen_values = true)]
        start_task_retries: Option<i32>,
    },
    /// Wait until every task of a job has completed; exit 0 if all succeeded.
    Wait {
        /// Job id.
        job: String,
    },
    /// A one-screen summary of the cluster.
    Status,
    /// The head's file store (for `uploadedFile` resource files): put LOCAL, list, delete NAME.
    File {
        /// put | get (to stdout) | list | delete
        action: String,
        /// put: the local file; get, delete: the stored file's name.
        arg: Option<String>,
        /// put: store it under this name (default: the local file's name).
        #[arg(long)]
        name: Option<String>,
    },
    /// Application packages: list, upload ID VERSION ARCHIVE (zip or tar.gz; admins), default
    /// ID VERSION, delete ID VERSION.
    App {
        /// list | upload | default | delete
        action: String,
        /// The application id, version and (upload) the archive.
        args: Vec<String>,
    },
    /// Job schedules: create [--id ID] [--every 1h] [--start-window 10m] [--pool P] -- CMD,
    /// list, show ID, disable ID, enable ID, terminate ID, delete ID (with its jobs).
    Schedule {
        /// create | list | show | disable | enable | terminate | delete
        action: String,
        /// The schedule id (create: optional).
        id: Option<String>,
        /// create: its id.
        #[arg(long = "id", value_name = "ID")]
        new_id: Option<String>,
        /// create: run every this long (90s, 10m, 1h, PT1H…); without it, once.
        #[arg(long, value_parser = duration)]
        every: Option<Duration>,
        /// create: how late a run may still start (else it is skipped; default: no limit).
        #[arg(long, value_parser = duration)]
        start_window: Option<Duration>,
        /// create: the pool its jobs run in (default: default).
        #[arg(long)]
        pool: Option<String>,
        /// create: the command each run runs (as the job's manager task).
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// API tokens acting as you: create [--name N] [--expires 30d], list, revoke ID.
    Token {
        /// create | list | revoke
        action: String,
        /// revoke: the token's id.
        id: Option<String>,
        /// create: a name to tell it apart.
        #[arg(long)]
        name: Option<String>,
        /// create: how long it is valid (default: until revoked).
        #[arg(long, value_parser = duration)]
        expires: Option<Duration>,
    },
    /// Show a node's topology as a tree, plan per-rank placement on it, or pick a gang on a fabric.
    Topo {
        /// Read this hwloc XML file instead of the local machine.
        #[arg(long)]
        xml: Option<PathBuf>,
        /// Use an hwloc synthetic topology (`pack:2 numa:2 core:8 pu:2`).
        #[arg(long)]
        synthetic: Option<String>,
        /// Plan ranks: `ranks=8,gpus-per-rank=1[,cpus-per-rank=4][,bind=cores][,gpu-bind=closest]`.
        #[arg(long)]
        plan: Option<String>,
        /// A Slurm topology.conf describing the switch tree.
        #[arg(long)]
        fabric: Option<PathBuf>,
        /// With --fabric: the gang a request would take on the empty fabric (`nodes=16[,max-leaves=2]`).
        #[arg(long)]
        gang: Option<String>,
    },
    /// Replay an SWF workload trace through the scheduler core in simulated time (no processes)
    /// and print average bounded slowdown, waits, utilization and makespan, per window and overall.
    Sim(cli::sim::Args),
    /// Run a Slurm command (`sbatch`, `srun`, `squeue`, `scancel`, `sinfo`, `scontrol`, `sacct`,
    /// `parse`, `install-shims`) through `gangway-slurm`.
    Slurm {
        /// The command and its arguments, as Slurm's command takes them.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        args: Vec<String>,
    },
    /// Print a completion script for SHELL (bash, zsh, fish, elvish, powershell): for bash,
    /// `source <(gangway completions bash)`, or save it in ~/.local/share/bash-completion/completions/gangway.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

fn main() {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            gangway_api::errln!("gangway: {e:#}");
            std::process::exit(2);
        }
    }
}

fn state_dir(cli: &Option<PathBuf>) -> PathBuf {
    cli.clone().unwrap_or_else(ClientConfig::default_state_dir)
}

fn run(cli: Cli) -> anyhow::Result<i32> {
    let client = || -> anyhow::Result<(Client, ClientConfig)> {
        let config = ClientConfig::discover(cli.state_dir.as_deref())?;
        Ok((Client::new(&config)?, config))
    };
    match cli.cmd {
        Cmd::Head {
            listen,
            node_timeout,
            heartbeat,
            default_slots,
            fabric,
            admins,
            munge_socket,
            max_jobs,
            max_jobs_per_user,
            max_connections,
            private_data,
            request_timeout,
            priority,
            shares,
            limits,
            max_pass_time,
            max_array_size,
            tls_names,
            min_job_age,
        } => {
            let mut fairness = gangway_runner::head::state::fairness::FairnessConfig::default();
            for p in &priority {
                fairness.set_priority(p).map_err(|e| anyhow::anyhow!("--priority {e}"))?;
            }
            for s in &shares {
                fairness.set_share(s).map_err(|e| anyhow::anyhow!("--share {e}"))?;
            }
            for l in &limits {
                fairness.set_limit(l).map_err(|e| anyhow::anyhow!("--limit {e}"))?;
            }
            let level = std::env::var("RUST_LOG").unwrap_or(cli.log_level.clone());
            tracing_subscriber::fmt()
                .with_max_level(level.parse::<tracing::Level>().unwrap_or(tracing::Level::INFO))
                .with_writer(std::io::stderr)
                .init();
            let config = gangway_runner::head::HeadConfig {
                state_dir: state_dir(&cli.state_dir),
                listen,
                node_timeout,
                heartbeat,
                default_pool_slots: default_slots,
                fabric,
                admins,
                munge_socket,
                job_limits: gangway_runner::head::state::limits::JobLimits {
                    max_jobs,
                    max_per_user: max_jobs_per_user,
                },
                max_connections,
                private_data: match private_data.as_str() {
                    "jobs" => gangway_runner::head::privacy::PrivateData::Jobs,
                    _ => gangway_runner::head::privacy::PrivateData::Details,
                },
                request_timeout,
                fairness,
                max_pass_time,
                max_array_size,
                tls_names,
                min_job_age,
            };
            let rt =
                tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
            rt.block_on(gangway_runner::head::serve(config))?;
            Ok(0)
        }
        Cmd::Up {
            nodes,
            detach,
            slots_per_node,
            node_timeout,
            listen,
            nodes_dir,
            topology_xml,
            synthetic,
            memory_reserve,
        } => {
            // Slots default to the CPUs of the node the launchers report.
            let (cpus, topology) = match (topology_xml, synthetic) {
                (Some(xml), _) => {
                    let xml = std::fs::canonicalize(&xml).with_context(|| format!("finding {}", xml.display()))?;
                    let t = gangway_topology::hwloc::from_xml_file(&xml)
                        .with_context(|| format!("reading the topology {}", xml.display()))?;
                    (t.pu_count() as u32, Some(("--topology-xml", xml.into_os_string())))
                }
                (None, Some(s)) => {
                    let t = gangway_topology::hwloc::from_synthetic(&s)
                        .with_context(|| format!("reading the synthetic topology '{s}'"))?;
                    (t.pu_count() as u32, Some(("--synthetic", s.into())))
                }
                (None, None) => (gangway_topology::discover::local_resources().cpus, None),
            };
            cli::cluster::up(cli::cluster::UpOptions {
                topology,
                memory_reserve,
                nodes,
                state_dir: state_dir(&cli.state_dir),
                detach,
                slots_per_node: slots_per_node.unwrap_or(cpus),
                node_timeout,
                listen,
                nodes_dir,
            })?;
            Ok(0)
        }
        Cmd::Down => cli::cluster::down(&state_dir(&cli.state_dir)).map(|_| 0),
        Cmd::Submit {
            pool,
            job,
            name,
            time,
            retries,
            slots,
            cpus,
            memory_mib,
            gpus,
            gpu_type,
            exclusive,
            tasks,
            nodes,
            coordination,
            ranks_per_node,
            cpus_per_rank,
            gpus_per_rank,
            bind,
            gpu_bind,
            mpi_impl,
            files,
            user_name,
            elevated,
            depends_on,
            keep_open,
            wait,
            command,
        } => {
            let (mut c, _) = client()?;
            commands::submit(
                &mut c,
                commands::Submit {
                    pool,
                    job,
                    name,
                    time,
                    retries,
                    slots,
                    resources: (cpus.is_some()
                        || memory_mib.is_some()
                        || gpus.is_some()
                        || gpu_type.is_some()
                        || exclusive)
                        .then_some(gangway_api::TaskResources {
                            cpus,
                            cores: None,
                            memory_mib,
                            gpus,
                            gpu_type,
                            exclusive,
                        }),
                    tasks,
                    nodes,
                    coordination,
                    mpi: ranks_per_node.map(|ranks_per_node| gangway_api::MpiSettings {
                        ranks_per_node,
                        cpus_per_rank,
                        gpus_per_rank,
                        bind,
                        gpu_bind,
                        implementation: mpi_impl,
                    }),
                    files,
                    depends_on,
                    keep_open,
                    user_identity: (user_name.is_some() || elevated).then(|| gangway_api::UserIdentity {
                        user_name,
                        auto_user: elevated.then(|| gangway_api::AutoUserSpecification {
                            elevation_level: gangway_api::ElevationLevel::Admin,
                            ..Default::default()
                        }),
                    }),
                    wait,
                    command,
                },
            )
        }
        Cmd::Job { action, id } => commands::job(&mut client()?.0, &action, id.as_deref(), cli.json).map(|_| 0),
        Cmd::Task { action, job, task, stderr, follow } => {
            commands::task(&mut client()?.0, &action, &job, task.as_deref(), cli.json, stderr, follow).map(|_| 0)
        }
        Cmd::Node { action, id, expires, uses, .. } if action == "join-token" => {
            cli::token::join_token(&mut client()?.0, id.as_deref(), expires, uses, cli.json).map(|_| 0)
        }
        Cmd::Node { action, id, option, expires, uses } => {
            if expires.is_some() || uses.is_some() {
                anyhow::bail!("--expires and --uses apply only to `node join-token`");
            }
            let option = option.map(|o| commands::deallocation_option(&o)).transpose()?;
            commands::node(&mut client()?.0, &action, id.as_deref(), cli.json, option).map(|_| 0)
        }
        Cmd::Pool {
            action,
            id,
            slots,
            fill,
            default_mem_per_cpu,
            mpi_default,
            backfill,
            reservations,
            order,
            default_time,
            max_time,
            inter_node,
            start_task,
            start_task_wait,
            start_task_retries,
        } => {
            let fill = fill.map(|f| if f == "pack" { NodeFillType::Pack } else { NodeFillType::Spread });
            let start_task = start_task.map(|command_line| StartTask {
                command_line,
                environment_settings: Vec::new(),
                wait_for_success: start_task_wait.unwrap_or(true),
                max_task_retry_count: start_task_retries.unwrap_or(0),
            });
            let backfill = backfill.map(|b| match b.as_str() {
                "fcfs" => gangway_api::Backfill::Fcfs,
                "firstfit" => gangway_api::Backfill::Firstfit,
                "conservative" => gangway_api::Backfill::Conservative,
                _ => gangway_api::Backfill::Easy,
            });
            let order = order.map(|o| match o.as_str() {
                "submit" => gangway_api::QueueOrder::Submit,
                _ => gangway_api::QueueOrder::Deadline,
            });
            let create = commands::PoolCreate {
                slots,
                default_mem_per_cpu,
                mpi_default,
                fill,
                backfill,
                reservations,
                order,
                default_time: default_time.map(gangway_api::IsoDuration),
                max_time: max_time.map(gangway_api::IsoDuration),
                inter_node,
                start_task,
            };
            commands::pool(&mut client()?.0, &action, id.as_deref(), cli.json, create).map(|_| 0)
        }
        Cmd::Wait { job } => commands::wait(&mut client()?.0, &job),
        Cmd::Topo { xml, synthetic, plan, fabric, gang } => {
            use cli::topo;
            topo::check_sources(xml.is_some(), synthetic.is_some(), fabric.is_some(), plan.is_some(), gang.is_some())?;
            if let Some(f) = fabric {
                gangway_api::out!("{}", topo::fabric(&f, gang.as_deref(), cli.json)?);
                return Ok(0);
            }
            let source = match (&xml, &synthetic) {
                (Some(x), _) => topo::Source::Xml(x),
                (_, Some(s)) => topo::Source::Synthetic(s),
                _ => topo::Source::Local,
            };
            let t = topo::load(source)?;
            match plan {
                Some(spec) => gangway_api::out!("{}", topo::plan(&t, &spec, cli.json)?),
                None if cli.json => gangway_api::outln!("{}", serde_json::to_string_pretty(&t)?),
                None => gangway_api::out!("{}", topo::tree(&t)),
            }
            Ok(0)
        }
        Cmd::File { action, arg, name } => {
            cli::file::file(&mut client()?.0, &action, arg.as_deref(), name.as_deref(), cli.json).map(|_| 0)
        }
        Cmd::App { action, args } => cli::file::app(&mut client()?.0, &action, &args, cli.json).map(|_| 0),
        Cmd::Schedule { action, id, new_id, every, start_window, pool, command } => {
            let create = cli::schedule::Create { id: new_id.or(id), every, start_window, pool, command };
            cli::schedule::schedule(&mut client()?.0, &action, create, cli.json).map(|_| 0)
        }
        Cmd::Token { action, id, name, expires } => {
            cli::token::token(&mut client()?.0, &action, id.as_deref(), name, expires, cli.json).map(|_| 0)
        }
        Cmd::Sim(args) => {
            gangway_api::out!("{}", cli::sim::run(&args, cli.json)?);
            Ok(0)
        }
        Cmd::Slurm { args } => cli::cluster::slurm(&args, cli.state_dir.as_deref()),
        Cmd::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut <Cli as clap::CommandFactory>::command(), "gangway", &mut script);
            gangway_api::out!("{}", String::from_utf8_lossy(&script));
            Ok(0)
        }
        Cmd::Status => {
            let (mut c, config) = client()?;
            commands::status(&mut c, &config.url, cli.json)?;
            Ok(0)
        }
    }
}
