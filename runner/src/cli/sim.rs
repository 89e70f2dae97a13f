//! `gangway sim`: replays an SWF trace through the scheduler core and prints the figures.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use gangway_runner::scheduler::{Backfill, Policy, DEFAULT_RESERVATIONS, MAX_RESERVATIONS};
use gangway_runner::sim::{self, swf, Machine, Metrics};
use gangway_topology::fabric::Fabric;

/// What `gangway sim` was asked.
#[derive(clap::Args)]
pub struct Args {
    /// The trace (`.swf` or `.swf.gz`).
    #[arg(long)]
    pub trace: PathBuf,
    /// fcfs | easy | conservative (a reservation for each of the first --reservations waiting
    /// tasks) | firstfit | default (a pool's default: EASY over the deadline order, examining at
    /// most 64 shapes per pass). fcfs, easy, conservative and firstfit keep submission order.
    #[arg(long, default_value = "default")]
    pub policy: String,
    /// Replay only jobs START..START+COUNT (0-based, after skipped lines), each window on an
    /// empty machine; repeatable.
    #[arg(long = "window", value_name = "START:COUNT")]
    pub windows: Vec<String>,
    /// Simulated nodes (default: the fabric's nodes, else the trace's MaxNodes).
    #[arg(long)]
    pub nodes: Option<u32>,
    /// Cores per node (default: the trace's MaxProcs / MaxNodes, else 1).
    #[arg(long)]
    pub cores_per_node: Option<u32>,
    /// GPUs per node.
    #[arg(long, default_value_t = 0)]
    pub gpus_per_node: u32,
    /// A Slurm topology.conf: its nodes are the simulated nodes, gangs placed on its switch tree.
    #[arg(long)]
    pub fabric: Option<PathBuf>,
    /// Shapes a pass may examine past the first that cannot start (default: unbounded for
    /// fcfs, easy and firstfit, as the classic algorithms; 64 for default).
    #[arg(long)]
    pub max_examined: Option<usize>,
    /// With --policy conservative: how many waiting tasks get a reservation (1-64, default 8).
    #[arg(long)]
    pub reservations: Option<u32>,
    /// Fair share between the trace's users (PriorityWeightFairshare=10000, recalculated every
    /// 300 simulated seconds), as `gangway head --priority PriorityWeightFairshare=10000`.
    #[arg(long)]
    pub fair_share: bool,
}

/// One replayed stretch of the trace.
#[derive(serde::Serialize)]
struct Window {
    start: usize,
    count: usize,
    #[serde(flatten)]
    metrics: Metrics,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    trace: String,
    policy: String,
    /// Whether fair share ordered the users' jobs.
    fair_share: bool,
    max_examined: Option<usize>,
    nodes: u32,
    cores_per_node: u32,
    gpus_per_node: u32,
    /// Lines not replayed, by reason.
    skipped: std::collections::BTreeMap<&'static str, u64>,
    windows: Vec<Window>,
    /// The mean over the windows of each window's figures (the largest wait for `maxWait`).
    overall: Metrics,
}

/// The policy a `--policy` name stands for, and the bound on shapes examined per pass.
fn policy(name: &str, max_examined: Option<usize>, reservations: Option<u32>) -> anyhow::Result<Policy> {
    if reservations.is_some() && name != "conservative" {
        bail!("--reservations goes with --policy conservative");
    }
    if let Some(n) = reservations.filter(|n| *n == 0 || *n > MAX_RESERVATIONS) {
        bail!("--reservations is {n}; it must be between 1 and {MAX_RESERVATIONS}");
    }
    let classic = |backfill| Ok::<_, anyhow::Error>(Policy::classic(backfill));
    let mut policy = match name {
        "fcfs" => classic(Backfill::Fcfs)?,
        "easy" => classic(Backfill::Easy)?,
        "firstfit" => classic(Backfill::FirstFit)?,
        // What a pool gets when it names none: EASY over the deadline order, with the live
        // bound on a pass.
        "default" => Policy::default(),
        "conservative" => classic(Backfill::Conservative(reservations.unwrap_or(DEFAULT_RESERVATIONS)))?,
        other => bail!("unknown policy {other:?}: use fcfs, easy, conservative, firstfit or default"),
    };
    if max_examined == Some(0) {
        bail!("--max-examined must be at least 1");
    }
    if let Some(n) = max_examined {
        policy.max_examined = n;
    }
    Ok(policy)
}

/// `START:COUNT` of a trace of `jobs` jobs, checked.
fn window(spec: &str, jobs: usize) -> anyhow::Result<(usize, usize)> {
    let parsed = spec.split_once(':').and_then(|(s, c)| Some((s.trim().parse().ok()?, c.trim().parse().ok()?)));
    let Some((start, count)) = parsed else {
        bail!("--window {spec:?}: expected START:COUNT (0-based index of the first job, number of jobs)");
    };
    if count == 0 {
        bail!("--window {spec}: the count must be at least 1");
    }
    if start >= jobs || jobs - start < count {
        bail!("--window {spec} is outside the trace: it has {jobs} jobs (indexes 0..{})", jobs.saturating_sub(1));
    }
    Ok((start, count))
}

/// The simulated machine: the options, else the fabric's nodes, else the trace's header.
fn machine(args: &Args, trace: &swf::Trace, fabric: Option<&Fabric>) -> anyhow::Result<Machine> {
    let header_nodes = trace.max_nodes.or(trace.max_procs);
    let nodes = match (args.nodes, fabric) {
        (Some(n), Some(f)) if n > f.node_count() => {
            bail!("--nodes {n} is more than the fabric's {} nodes", f.node_count())
        }
        (Some(n), _) => n,
        (None, Some(f)) => f.node_count(),
        (None, None) => match header_nodes {
            Some(n) => u32::try_from(n).context("the trace's MaxNodes is too large")?,
            None => bail!("the trace has no MaxNodes or MaxProcs header: give --nodes and --cores-per-node"),
        },
    };
    if nodes == 0 {
        bail!("--nodes must be at least 1");
    }
    let cores_per_node = match args.cores_per_node {
        Some(0) => bail!("--cores-per-node must be at least 1"),
        Some(c) => c,
        // The archive's convention: MaxProcs over MaxNodes, one processor per node without both.
        None => match (trace.max_procs, trace.max_nodes) {
            (Some(p), Some(n)) if n > 0 && p >= n => {
                u32::try_from(p / n).context("MaxProcs / MaxNodes is too large")?
            }
            _ => 1,
        },
    };
    Ok(Machine { nodes, cores_per_node, gpus_per_node: args.gpus_per_node })
}

/// Runs the replay and renders it (a table, or JSON).
pub fn run(args: &Args, json: bool) -> anyhow::Result<String> {
    let policy = policy(&args.policy, args.max_examined, args.reservations)?;
    let mut trace = swf::Trace::open(&args.trace)?;
    let fabric = match &args.fabric {
        Some(path) => Some(Arc::new(read_fabric(path)?)),
        None => None,
    };
    let machine = machine(args, &trace, fabric.as_deref())?;
    // A job the machine can never hold would wait forever: it is left out, and counted.
    let before = trace.jobs.len();
    trace.jobs.retain(|j| machine.nodes_for(j.procs) <= u64::from(machine.nodes));
    if trace.jobs.len() < before {
        *trace.skipped.entry("larger than the machine").or_default() += (before - trace.jobs.len()) as u64;
    }
    if trace.jobs.is_empty() {
        bail!("{}: no job to replay ({} lines skipped)", args.trace.display(), trace.skipped_total());
    }
    let spans = if args.windows.is_empty() {
        vec![(0, trace.jobs.len())]
    } else {
        args.windows.iter().map(|w| window(w, trace.jobs.len())).collect::<anyhow::Result<_>>()?
    };
    let mut windows = Vec::new();
    for (start, count) in spans {
        let weights = args.fair_share.then(gangway_runner::scheduler::fair::Weights::fair_share);
        let ran = sim::replay_weighted(&trace.jobs[start..start + count], machine, policy, fabric.clone(), weights)?;
        windows.push(Window { start, count, metrics: sim::metrics(&ran, machine.procs()) });
    }
    let report = Report {
        trace: args.trace.display().to_string(),
        policy: args.policy.clone(),
        fair_share: args.fair_share,
        max_examined: (policy.max_examined != usize::MAX).then_some(policy.max_examined),
        nodes: machine.nodes,
        cores_per_node: machine.cores_per_node,
        gpus_per_node: machine.gpus_per_node,
        overall: overall(&windows),
        skipped: trace.skipped,
        windows,
    };
    if json {
        return Ok(serde_json::to_string_pretty(&report)? + "\n");
    }
    Ok(table(&report))
}

fn read_fabric(path: &Path) -> anyhow::Result<Fabric> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    Fabric::parse(&text).with_context(|| format!("{}", path.display()))
}

/// The mean of the windows' figures; the largest of their largest waits.
fn overall(windows: &[Window]) -> Metrics {
    let n = windows.len().max(1) as f64;
    let mean = |f: fn(&Metrics) -> f64| windows.iter().map(|w| f(&w.metrics)).sum::<f64>() / n;
    Metrics {
        jobs: windows.iter().map(|w| w.metrics.jobs).sum(),
        avg_bsld: mean(|m| m.avg_bsld),
        avg_wait: mean(|m| m.avg_wait),
        max_wait: windows.iter().map(|w| w.metrics.max_wait).max().unwrap_or(0),
        utilization: mean(|m| m.utilization),
        makespan: mean(|m| m.makespan as f64).round() as u64,
    }
}

fn table(r: &Report) -> String {
    let mut s = String::new();
    let bound = r.max_examined.map_or("unbounded".to_string(), |n| n.to_string());
    let fair = if r.fair_share { ", fair share" } else { "" };
    let _ = writeln!(s, "trace {}  policy {}{fair} (examined per pass: {bound})", r.trace, r.policy);
    let _ = writeln!(
        s,
        "machine {} nodes x {} cores{}",
        r.nodes,
        r.cores_per_node,
        if r.gpus_per_node > 0 { format!(" x {} GPUs", r.gpus_per_node) } else { String::new() }
    );
    for (why, n) in &r.skipped {
        let _ = writeln!(s, "skipped {n} lines: {why}");
    }
    let _ = writeln!(
        s,
        "{:<14} {:>6} {:>10} {:>12} {:>10} {:>7} {:>10}",
        "WINDOW", "JOBS", "BSLD", "AVG WAIT", "MAX WAIT", "UTIL", "MAKESPAN"
    );
    let row = |s: &mut String, name: &str, m: &Metrics| {
        let _ = writeln!(
            s,
            "{:<14} {:>6} {:>10.2} {:>12.0} {:>10} {:>7.3} {:>10}",
            name, m.jobs, m.avg_bsld, m.avg_wait, m.max_wait, m.utilization, m.makespan
        );
    };
    for w in &r.windows {
        row(&mut s, &format!("{}:{}", w.start, w.count), &w.metrics);
    }
    if r.windows.len() > 1 {
        row(&mut s, "overall", &r.overall);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_and_policies_are_checked() {
        assert_eq!(window("10:5", 20).unwrap(), (10, 5));
        assert_eq!(window("15:5", 20).unwrap(), (15, 5));
        for (spec, says) in
            [("16:5", "outside the trace"), ("20:1", "outside the trace"), ("3", "START:COUNT"), ("1:0", "at least 1")]
        {
            let e = window(spec, 20).unwrap_err().to_string();
            assert!(e.contains(says), "{spec}: {e}");
        }
        assert_eq!(policy("easy", None, None).unwrap().max_examined, usize::MAX);
        assert_eq!(policy("default", None, None).unwrap(), Policy::default());
        assert_eq!(
            policy("fcfs", Some(8), None).unwrap(),
            Policy { max_examined: 8, ..Policy::classic(Backfill::Fcfs) }
        );
        assert!(policy("sjf", None, None).unwrap_err().to_string().contains("unknown policy \"sjf\""));
        assert_eq!(policy("conservative", None, None).unwrap().backfill, Backfill::Conservative(8));
        assert_eq!(policy("conservative", None, Some(64)).unwrap().backfill, Backfill::Conservative(64));
        assert!(policy("conservative", None, Some(65)).unwrap_err().to_string().contains("between 1 and 64"));
        assert!(policy("easy", None, Some(2)).unwrap_err().to_string().contains("with --policy conservative"));
    }
}
