//! `gangway-node`: the per-node launcher. It connects out to the head, registers, and runs
//! the task attempts the head sends, each in its own process group and cgroup.

use gangway_launcher::{cgroup, connection, executor, layout, supervise};

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;

/// The gangway node launcher.
#[derive(Parser, Debug)]
#[command(
    name = "gangway-node",
    version,
    about = "The gangway node launcher: joins a head and runs its tasks",
    after_help = "Signals: SIGTERM (or Ctrl-C) stops the node's tasks and exits. SIGUSR2 exits at once and \
                  leaves the tasks running under their supervisors: the next gangway-node started on the same \
                  --root takes them back (a restart or an upgrade without draining the node)."
)]
struct Args {
    /// The head's URL (https://HOST:PORT).
    #[arg(long, env = "GANGWAY_HEAD")]
    head: String,
    /// The cluster CA's certificate (the head's STATE_DIR/tls/ca.crt); kept after the first start.
    #[arg(long, env = "GANGWAY_CA")]
    ca: Option<PathBuf>,
    /// A file holding a join token (`gangway node join-token`): needed once, to join.
    #[arg(long)]
    join_token_file: Option<PathBuf>,
    /// Node name (default: the hostname).
    #[arg(long)]
    name: Option<String>,
    /// Root directory for task directories (AZ_BATCH_NODE_ROOT_DIR).
    #[arg(long, default_value = "/var/lib/gangway/node")]
    root: PathBuf,
    /// Pool to join.
    #[arg(long, default_value = "default")]
    pool: String,
    /// Address to report to the head (default: the local address of the connection).
    #[arg(long)]
    address: Option<String>,
    /// Grace period between SIGTERM and SIGKILL when a task is killed.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    kill_grace: Duration,
    /// Report this hwloc XML topology instead of the machine's own (simulates big nodes in tests).
    #[arg(long, conflicts_with = "synthetic")]
    topology_xml: Option<PathBuf>,
    /// Report this hwloc synthetic topology (`pack:2 numa:2 core:16 pu:2`) instead of the machine's.
    #[arg(long)]
    synthetic: Option<String>,
    /// Memory (MiB) kept for the system and the launcher: never allocated to tasks.
    #[arg(long, default_value_t = 0)]
    memory_reserve: u64,
    /// The most processes and threads one task may have at once (0: no limit).
    #[arg(long, default_value_t = 0)]
    task_pids_max: u64,
    /// Run tasks without cgroups (process groups only).
    #[arg(long)]
    no_cgroups: bool,
    /// Log level (error, warn, info, debug, trace); RUST_LOG also works.
    #[arg(long, default_value = "info")]
    log_level: String,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    gangway_api::time::parse_human_duration(s)
}

/// What the node reports: a declared topology, else what discovery finds, else /proc.
fn node_resources(
    xml: Option<&std::path::Path>,
    synthetic: Option<&str>,
) -> anyhow::Result<(gangway_topology::NodeResources, Option<gangway_topology::model::NodeTopology>)> {
    let local = gangway_topology::discover::local_resources();
    if let Some(path) = xml {
        let topo = gangway_topology::hwloc::from_xml_file(path)
            .with_context(|| format!("reading the declared topology {}", path.display()))?;
        return Ok((topo.resources(), Some(topo)));
    }
    if let Some(desc) = synthetic {
        let topo = gangway_topology::hwloc::from_synthetic(desc)
            .with_context(|| format!("reading the synthetic topology '{desc}'"))?;
        return Ok((topo.resources(), Some(topo)));
    }
    match gangway_topology::hwloc::discover_local() {
        Ok(topo) => {
            let mut r = topo.resources();
            // Some VMs show less NUMA-local memory in sysfs than the kernel's total.
            r.memory_bytes = r.memory_bytes.max(local.memory_bytes);
            Ok((r, Some(topo)))
        }
        Err(e) => {
            tracing::warn!(error = %e, "topology discovery failed; reporting CPUs and memory from /proc");
            Ok((local, None))
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_owned()).unwrap_or_else(|_| "node".into())
}

fn main() -> anyhow::Result<()> {
    // `gangway-node rsh-agent …` and `gangway-node rank-step -- …`: helpers of an Open MPI
    // launch, run inside a task (see agent_cli.rs); they take no launcher options.
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(code) = gangway_launcher::agent_cli::run_helper(&argv) {
        std::process::exit(code);
    }
    // `gangway-node supervise FD NAME`: one task process's supervisor (supervise.rs).
    if argv.get(1).is_some_and(|a| a == "supervise") {
        std::process::exit(gangway_launcher::supervise::main(&argv[2..]));
    }
    // `gangway-node rank-group SPEC`: a managed-MPI attempt's ranks (rank_group.rs).
    if argv.get(1).is_some_and(|a| a == "rank-group") {
        std::process::exit(gangway_launcher::rank_group::main(&argv[2..]));
    }
    let args = Args::parse();
    let level = std::env::var("RUST_LOG").unwrap_or(args.log_level.clone());
    tracing_subscriber::fmt()
        .with_max_level(level.parse::<tracing::Level>().unwrap_or(tracing::Level::INFO))
        .with_writer(std::io::stderr)
        .init();
    let name = args.name.clone().unwrap_or_else(hostname);
    gangway_api::common::validate_id("node", &name).map_err(anyhow::Error::msg)?;
    let layout = layout::NodeLayout::create(&args.root)
        .with_context(|| format!("creating the node root {}", args.root.display()))?;
    // Tasks an earlier run of this launcher left running (or ended meanwhile): their cgroups
    // are kept, and they are taken back before the first hello.
    let found = supervise::found(&args.root);
    let cgroups = if args.no_cgroups {
        None
    } else {
        let keep = supervise::kept_cgroups(&found);
        match cgroup::NodeCgroups::create_keeping(&gangway_launcher::cgroup_name(&name, &args.root), &keep) {
            Ok(cg) => Some(cg),
            Err(e) => {
                tracing::warn!(error = %e, "cgroups unavailable; tasks are contained by process groups only");
                None
            }
        }
    };
    let join_token = match (&args.join_token_file, std::env::var("GANGWAY_JOIN_TOKEN")) {
        (Some(f), _) => {
            Some(std::fs::read_to_string(f).with_context(|| format!("reading the join token {}", f.display()))?)
        }
        (None, Ok(t)) if !t.is_empty() => Some(t),
        _ => None,
    };
    if !args.head.starts_with("https://") {
        anyhow::bail!("--head {}: the head speaks TLS; give its https:// URL", args.head);
    }
    let tls =
        gangway_launcher::join::load_or_join(&args.root, &args.head, &name, args.ca.as_deref(), join_token.as_deref())?;
    let (mut resources, topology) = node_resources(args.topology_xml.as_deref(), args.synthetic.as_deref())?;
    resources.memory_reserve_bytes = args.memory_reserve.saturating_mul(1 << 20).min(resources.memory_bytes);
    let boot_id = format!("{:x}-{}", std::process::id(), gangway_api::Timestamp::now().0);
    let exec = Arc::new(
        executor::Executor::new(layout, name.clone(), args.head.clone(), cgroups, args.kill_grace)
            .with_head_tls(Some(tls.clone()))
            .with_topology(topology.clone())
            .with_task_pids_max(args.task_pids_max)
            .with_supervisor(std::env::current_exe().ok().map(|me| supervise::Supervisor::beside(&me))),
    );
    let me = connection::Identity {
        name,
        address: args.address.clone(),
        pool: args.pool.clone(),
        resources,
        topology,
        boot_id,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let result = rt.block_on(async {
        exec.readopt(found);
        exec.resume_retention();
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).context("SIGTERM handler")?;
        let mut handover =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined2()).context("SIGUSR2 handler")?;
        let stay = async {
            let mut tls = tls;
            let mut rejoined = false;
            loop {
                match connection::run(&args.head, tls.clone(), &me, exec.clone()).await {
                    // A removed node's certificate is revoked: a join token brings it back, once.
                    Err(e) if e.downcast_ref::<connection::CertificateRefused>().is_some() && !rejoined => {
                        let Some(token) = join_token.clone() else { return Err(e) };
                        tracing::warn!(error = %e, "joining the cluster again");
                        gangway_launcher::join::forget(&args.root);
                        let (root, head, name, ca) =
                            (args.root.clone(), args.head.clone(), me.name.clone(), args.ca.clone());
                        tls = tokio::task::spawn_blocking(move || {
                            gangway_launcher::join::load_or_join(&root, &head, &name, ca.as_deref(), Some(&token))
                        })
                        .await??;
                        exec.set_head_tls(Some(tls.clone()));
                        rejoined = true;
                    }
                    r => return r,
                }
            }
        };
        let r = tokio::select! {
            r = stay => r,
            _ = tokio::signal::ctrl_c() => Ok(()),
            _ = term.recv() => Ok(()),
            _ = handover.recv() => {
                // An upgrade or restart: the tasks stay with their supervisors, and the next
                // launcher on this root takes them back. Nothing is dropped on the way out
                // (dropping would kill the tasks' cgroups).
                tracing::info!(running = exec.running_ids().len(), "leaving the running tasks to the next launcher");
                std::process::exit(0);
            }
        };
        tracing::info!("stopping: killing running tasks");
        exec.stop_all().await;
        r
    });
    // Dropping the executor removes the node's cgroups.
    drop(exec);
    rt.shutdown_timeout(Duration::from_secs(1));
    result
}
