//! `gangway-deps-bench`: the head's cost per task of a job whose tasks form a chain of
//! fan-ins, through the head's state alone (no store, no network, no processes).
//!
//! Layer k holds `--layer` tasks; each depends on the join task of layer k-1, and the join
//! of layer k depends on every task of its layer (one `taskIdRanges` entry). Every task is
//! added, scheduled, started on one of `--nodes` fake launchers and reported done at once,
//! so what is measured is the head's work: validation, the dependency engine, the scheduler,
//! the task records. The same tasks without dependencies are run first, for comparison.
//!
//! ```text
//! gangway-deps-bench [--tasks 100000] [--layer 1000] [--nodes 100] [--slots 16]
//! ```

use std::time::{Duration, Instant};

use gangway_api::messages::{HeadMessage, Hello, TaskFinished};
use gangway_api::*;
use gangway_runner::head::{Effects, HeadState};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

struct Args {
    tasks: u64,
    layer: u64,
    nodes: u32,
    slots: u32,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args { tasks: 100_000, layer: 1_000, nodes: 100, slots: 16 };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))?;
        match flag.as_str() {
            "--tasks" => a.tasks = value.parse()?,
            "--layer" => a.layer = value.parse()?,
            "--nodes" => a.nodes = value.parse()?,
            "--slots" => a.slots = value.parse()?,
            other => anyhow::bail!("unknown option {other}"),
        }
    }
    anyhow::ensure!(a.layer > 0 && a.tasks >= a.layer, "--tasks must be at least --layer, and --layer at least 1");
    Ok(a)
}

/// A head and its fake launchers.
struct Bench {
    st: HeadState,
    nodes: Vec<(String, UnboundedReceiver<HeadMessage>)>,
}

impl Bench {
    fn apply<R>(&mut self, f: impl FnOnce(&mut HeadState, &mut Effects) -> R) -> R {
        let mut fx = Effects::default();
        let r = f(&mut self.st, &mut fx);
        self.st.flush_nodes(&mut fx);
        for (tx, msg) in fx.sends {
            let _ = tx.send(msg);
        }
        r
    }

    fn new(a: &Args) -> anyhow::Result<Bench> {
        let mut b = Bench { st: HeadState::new(Duration::from_secs(60), Duration::from_secs(1)), nodes: Vec::new() };
        let pool = PoolAddParameter { id: "p".into(), task_slots_per_node: Some(a.slots), ..Default::default() };
        b.apply(|st, fx| st.add_pool(pool, fx)).map_err(|e| anyhow::anyhow!("{:?}", e.body))?;
        for i in 0..a.nodes {
            let (tx, rx) = unbounded_channel();
            let hello = Hello {
                name: format!("n{i}"),
                address: "10.0.0.1".into(),
                pool: "p".into(),
                resources: Default::default(),
                root_dir: "/var/gangway".into(),
                running: Vec::new(),
                finished: Vec::new(),
                boot_id: "boot".into(),
                topology: None,
            };
            b.apply(|st, fx| st.register(hello, tx, fx))?;
            b.nodes.push((format!("n{i}"), rx));
        }
        Ok(b)
    }

    /// Adds the job's tasks; returns how many.
    fn submit(&mut self, a: &Args, job: &str, dependencies: bool) -> anyhow::Result<u64> {
        let owner = Owner { uid: 0, name: "root".into() };
        let p = JobAddParameter {
            id: job.into(),
            pool_info: Some(PoolInformation { pool_id: "p".into() }),
            uses_task_dependencies: Some(dependencies),
            ..Default::default()
        };
        self.apply(|st, fx| st.add_job(p, owner, fx)).map_err(|e| anyhow::anyhow!("{:?}", e.body))?;
        let layers = a.tasks / a.layer;
        let mut added = 0;
        for k in 0..layers {
            let first = k * a.layer + 1;
            let on = |ids: Vec<String>, ranges: Vec<TaskIdRange>| {
                dependencies.then_some(TaskDependencies { task_ids: ids, task_id_ranges: ranges })
            };
            let mut tasks: Vec<TaskAddParameter> = (first..first + a.layer)
                .map(|n| TaskAddParameter {
                    id: n.to_string(),
                    command_line: "true".into(),
                    depends_on: if k == 0 { None } else { on(vec![format!("join{}", k - 1)], Vec::new()) },
                    ..Default::default()
                })
                .collect();
            let range = TaskIdRange { start: first as i64, end: (first + a.layer - 1) as i64 };
            tasks.push(TaskAddParameter {
                id: format!("join{k}"),
                command_line: "true".into(),
                depends_on: on(Vec::new(), vec![range]),
                ..Default::default()
            });
            for t in tasks {
                self.apply(|st, fx| st.add_task(job, t, fx)).map_err(|e| anyhow::anyhow!("{:?}", e.body))?;
                added += 1;
            }
        }
        Ok(added)
    }

    /// Reports every started attempt done, until nothing more starts; returns how many ran.
    fn run(&mut self) -> u64 {
        let mut ran = 0;
        loop {
            let mut finished = Vec::new();
            for (node, rx) in &mut self.nodes {
                while let Ok(m) = rx.try_recv() {
                    if let HeadMessage::StartTask(s) = m {
                        finished.push((node.clone(), TaskFinished::exited_now(s.id, 0)));
                    }
                }
            }
            if finished.is_empty() {
                return ran;
            }
            for (node, f) in finished {
                self.apply(|st, fx| st.finish_attempt(&node, f, fx));
                ran += 1;
            }
        }
    }
}

fn measure(a: &Args, dependencies: bool) -> anyhow::Result<()> {
    let mut b = Bench::new(a)?;
    let t0 = Instant::now();
    let added = b.submit(a, "chain", dependencies)?;
    let submitted = t0.elapsed();
    let ran = b.run();
    let total = t0.elapsed();
    anyhow::ensure!(ran == added, "{ran} of {added} tasks ran");
    let counts = b.st.task_counts("chain").map_err(|e| anyhow::anyhow!("{:?}", e.body))?.task_counts;
    anyhow::ensure!(counts.succeeded == added, "{counts:?}");
    let per = |d: Duration| d.as_secs_f64() * 1e6 / added as f64;
    println!(
        "{:<16} {added} tasks: add {:.1} µs/task, schedule+start+finish {:.1} µs/task, total {:.1} µs/task ({:.2} s)",
        if dependencies { "with dependsOn" } else { "without" },
        per(submitted),
        per(total - submitted),
        per(total),
        total.as_secs_f64()
    );
    Ok(())
}

/// `--help`: this file's header.
const USAGE: &str = r#"`gangway-deps-bench`: the head's cost per task of a job whose tasks form a chain of
fan-ins, through the head's state alone (no store, no network, no processes).

Layer k holds `--layer` tasks; each depends on the join task of layer k-1, and the join
of layer k depends on every task of its layer (one `taskIdRanges` entry). Every task is
added, scheduled, started on one of `--nodes` fake launchers and reported done at once,
so what is measured is the head's work: validation, the dependency engine, the scheduler,
the task records. The same tasks without dependencies are run first, for comparison.

```text
gangway-deps-bench [--tasks 100000] [--layer 1000] [--nodes 100] [--slots 16]
```"#;

fn main() -> anyhow::Result<()> {
    if gangway_benchmarks::wants_help(USAGE) {
        return Ok(());
    }
    let a = args()?;
    println!(
        "{} layers of {} tasks, each layer after the previous one's join; {} nodes x {} slots",
        a.tasks / a.layer,
        a.layer,
        a.nodes,
        a.slots
    );
    measure(&a, false)?;
    measure(&a, true)?;
    Ok(())
}
