//! End-to-end harness: starts `gangway up --nodes N --detach`, submits tasks running
//! `/bin/true` in collections of 100, and reports completed tasks per second; then submits
//! single tasks one at a time on the idle cluster and reports submit→start latency.
//!
//! `cargo build --release --bins && target/release/gangway-e2e-bench [--tasks 2000] [--nodes 1]
//! [--slots-per-node N] [--samples 200] [--nodes-dir DIR]`
//!
//! The head's state (and its fsyncs) live in `$TMPDIR`; `--nodes-dir` puts the nodes' task
//! directories elsewhere (a node-local scratch such as /dev/shm).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use gangway_api::client::{Client, ClientConfig, ListOptions};
use gangway_api::*;
use gangway_benchmarks::{percentile, LocalCluster};

struct Args {
    tasks: usize,
    nodes: u32,
    slots: Option<u32>,
    samples: usize,
    nodes_dir: Option<PathBuf>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut a = Args { tasks: 2000, nodes: 1, slots: None, samples: 200, nodes_dir: None };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--tasks" => a.tasks = value()?.parse()?,
            "--nodes" => a.nodes = value()?.parse()?,
            "--slots-per-node" => a.slots = Some(value()?.parse()?),
            "--samples" => a.samples = value()?.parse()?,
            "--nodes-dir" => a.nodes_dir = Some(PathBuf::from(value()?)),
            other => bail!("unknown option {other}; see the source's header for usage"),
        }
    }
    Ok(a)
}

/// `--help`: this file's header.
const USAGE: &str = r#"End-to-end harness: starts `gangway up --nodes N --detach`, submits tasks running
`/bin/true` in collections of 100, and reports completed tasks per second; then submits
single tasks one at a time on the idle cluster and reports submit→start latency.

`cargo build --release --bins && target/release/gangway-e2e-bench [--tasks 2000] [--nodes 1]
[--slots-per-node N] [--samples 200] [--nodes-dir DIR]`

The head's state (and its fsyncs) live in `$TMPDIR`; `--nodes-dir` puts the nodes' task
directories elsewhere (a node-local scratch such as /dev/shm)."#;

fn main() -> anyhow::Result<()> {
    if gangway_benchmarks::wants_help(USAGE) {
        return Ok(());
    }
    let args = parse_args()?;
    let tag = format!("gangway-bench-{}", std::process::id());
    let nodes_dir = args.nodes_dir.as_ref().map(|d| d.join(&tag));
    let cluster = LocalCluster::up(&tag, args.nodes, args.slots, nodes_dir)?;
    measure(&args, &cluster.state)
}

fn measure(args: &Args, state: &std::path::Path) -> anyhow::Result<()> {
    let config = ClientConfig::from_state_dir(state)?;
    let mut c = Client::new(&config)?;
    let slots = c.get_pool("default")?.task_slots_per_node;

    // Throughput.
    c.add_job(&JobAddParameter { id: "throughput".into(), ..Default::default() })?;
    let start_wall = Timestamp::now();
    let start = Instant::now();
    for chunk in (0..args.tasks).collect::<Vec<_>>().chunks(100) {
        let tasks = chunk
            .iter()
            .map(|i| TaskAddParameter {
                id: format!("t{i:06}"),
                command_line: "/bin/true".into(),
                ..Default::default()
            })
            .collect();
        c.add_task_collection("throughput", tasks)?;
    }
    let submitted = start.elapsed();
    loop {
        if c.task_counts("throughput")?.task_counts.completed == args.tasks as u64 {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let tasks = c.list_tasks("throughput", &ListOptions::default())?;
    let last_end = tasks.iter().filter_map(|t| t.execution_info.end_time).max().context("no end time")?;
    let secs = last_end.micros_since(start_wall) as f64 / 1e6;
    let failed = tasks.iter().filter(|t| t.execution_info.result != Some(TaskExecutionResult::Success)).count();

    // Latency on an idle cluster.
    c.add_job(&JobAddParameter { id: "latency".into(), ..Default::default() })?;
    let mut lat = Vec::with_capacity(args.samples);
    for i in 0..args.samples {
        let t0 = Timestamp::now();
        let id = format!("l{i}");
        c.add_task(
            "latency",
            &TaskAddParameter { id: id.clone(), command_line: "/bin/true".into(), ..Default::default() },
        )?;
        let t = loop {
            let t = c.get_task("latency", &id)?;
            if t.state == TaskState::Completed {
                break t;
            }
            std::thread::sleep(Duration::from_micros(500));
        };
        let started = t.execution_info.start_time.context("no start time")?;
        lat.push(started.micros_since(t0) as f64 / 1000.0);
    }
    lat.sort_by(f64::total_cmp);
    println!(
        "{{\"nodes\": {}, \"slots_per_node\": {slots}, \"tasks\": {}, \"failed\": {failed}, \"submit_s\": {:.3}, \"run_s\": {secs:.3}, \"tasks_per_s\": {:.0}, \"latency_ms\": {{\"p50\": {:.2}, \"p99\": {:.2}, \"samples\": {}}}}}",
        args.nodes,
        args.tasks,
        submitted.as_secs_f64(),
        args.tasks as f64 / secs,
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat.len()
    );
    Ok(())
}
