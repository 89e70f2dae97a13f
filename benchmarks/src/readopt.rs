//! Launcher restart harness: starts `gangway up --nodes 1 --detach` with N slots, runs N
//! tasks (`sleep 600`) on the node, SIGKILLs its launcher and starts it again with the same
//! command line, and reports how long the new launcher took to take its tasks back: its own
//! re-adoption (records read, supervisors re-opened), and from its start until the head shows
//! the node running with every task kept (none requeued).
//!
//! `cargo build --release --bins && target/release/gangway-readopt-bench [--tasks 64] [--rounds 5]`

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use gangway_api::client::{Client, ClientConfig, ListOptions};
use gangway_api::*;
use gangway_benchmarks::{percentile, LocalCluster};

/// `--help`: this file's header.
const USAGE: &str = r#"Launcher restart harness: starts `gangway up --nodes 1 --detach` with N slots, runs N
tasks (`sleep 600`) on the node, SIGKILLs its launcher and starts it again with the same
command line, and reports how long the new launcher took to take its tasks back: its own
re-adoption (records read, supervisors re-opened), and from its start until the head shows
the node running with every task kept (none requeued).

`cargo build --release --bins && target/release/gangway-readopt-bench [--tasks 64] [--rounds 5]`"#;

fn main() -> anyhow::Result<()> {
    if gangway_benchmarks::wants_help(USAGE) {
        return Ok(());
    }
    let (mut tasks, mut rounds) = (64usize, 5usize);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--tasks" => tasks = value.parse()?,
            "--rounds" => rounds = value.parse()?,
            other => bail!("unknown option {other}; see --help"),
        }
    }
    let tag = format!("gangway-readopt-{}", std::process::id());
    let cluster = LocalCluster::up(&tag, 1, Some(tasks as u32), None)?;
    let mut launcher = Launcher::from_pids(&cluster.state)?;
    let result = measure(&cluster.state, &mut launcher, tasks, rounds);
    launcher.stop();
    result
}

/// The node's launcher: the one `gangway up` started, then the ones this harness starts.
struct Launcher {
    pid: i32,
    argv: Vec<String>,
    env: Vec<(String, String)>,
    child: Option<std::process::Child>,
    log: std::path::PathBuf,
    /// Its node root.
    root: std::path::PathBuf,
}

impl Launcher {
    fn from_pids(state: &std::path::Path) -> anyhow::Result<Launcher> {
        let pids: serde_json::Value = serde_json::from_slice(&std::fs::read(state.join("cluster.pids"))?)?;
        let pid = pids["nodes"][0].as_i64().context("no node in cluster.pids")? as i32;
        let split = |b: Vec<u8>| -> Vec<String> {
            b.split(|c| *c == 0).filter(|s| !s.is_empty()).map(|s| String::from_utf8_lossy(s).into_owned()).collect()
        };
        let argv = split(std::fs::read(format!("/proc/{pid}/cmdline"))?);
        let env = split(std::fs::read(format!("/proc/{pid}/environ"))?)
            .into_iter()
            .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
            .collect();
        let root = pids["node_roots"][0].as_str().context("no node root in cluster.pids")?.into();
        Ok(Launcher { pid, argv, env, child: None, log: state.join("node1.restarts.log"), root })
    }

    /// SIGKILLs the launcher and waits until it is gone.
    fn kill(&mut self) {
        // SAFETY: kill(2) on the launcher's pid, which this harness watches until it is gone.
        unsafe { libc::kill(self.pid, libc::SIGKILL) };
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
        while std::path::Path::new(&format!("/proc/{}/stat", self.pid)).exists() {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn start(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log)?;
        let child = std::process::Command::new(&self.argv[0])
            .args(&self.argv[1..])
            .env_clear()
            .envs(self.env.iter().cloned())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        self.pid = child.id() as i32;
        self.child = Some(child);
        Ok(())
    }

    /// SIGTERM (its tasks are stopped with it), as `gangway down` would.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on our own child.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let _ = c.wait();
        }
    }
}

fn measure(state: &std::path::Path, launcher: &mut Launcher, tasks: usize, rounds: usize) -> anyhow::Result<()> {
    let mut c = Client::new(&ClientConfig::from_state_dir(state)?)?;
    c.add_job(&JobAddParameter { id: "held".into(), ..Default::default() })?;
    let add: Vec<TaskAddParameter> = (0..tasks)
        .map(|i| TaskAddParameter { id: format!("t{i:03}"), command_line: "sleep 600".into(), ..Default::default() })
        .collect();
    c.add_task_collection("held", add)?;
    let all_running =
        |c: &mut Client| -> anyhow::Result<bool> { Ok(c.task_counts("held")?.task_counts.running == tasks as u64) };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !all_running(&mut c)? {
        if Instant::now() > deadline {
            bail!("the tasks did not all start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Each task's record is written as its supervisor starts: all of them are there to take back.
    let records = launcher.root.join(gangway_launcher::supervise::RUNNING_DIR);
    let recorded = || {
        std::fs::read_dir(&records)
            .map(|d| d.flatten().filter(|e| e.path().extension().is_some_and(|x| x == "json")).count())
            .unwrap_or(0)
    };
    while recorded() < tasks {
        if Instant::now() > deadline {
            bail!("the tasks' supervisors did not all start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let (mut own, mut total) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let before = std::fs::read_to_string(&launcher.log).unwrap_or_default().matches("re-adopted").count();
        launcher.kill();
        let t0 = Instant::now();
        launcher.start()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let log = gangway_tests::strip_ansi(&std::fs::read_to_string(&launcher.log).unwrap_or_default());
            let readopted = log.matches("re-adopted").count() > before;
            let node = c.get_node("node1")?;
            if readopted && node.state == NodeState::Running && all_running(&mut c)? {
                total.push(t0.elapsed().as_secs_f64() * 1000.0);
                let line = log.lines().rfind(|l| l.contains("re-adopted")).unwrap_or_default();
                let ms =
                    line.split("ms=").nth(1).and_then(|v| v.split_whitespace().next()).and_then(|v| v.parse().ok());
                let kept = line.split("running=").nth(1).and_then(|v| v.split_whitespace().next()).unwrap_or("?");
                if kept != tasks.to_string() {
                    bail!("round {round}: the launcher re-adopted {kept} tasks, not {tasks}: {line}");
                }
                own.push(ms.unwrap_or(f64::NAN));
                break;
            }
            if Instant::now() > deadline {
                let counts = c.task_counts("held")?.task_counts;
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                bail!(
                    "round {round}: the node did not come back with its tasks (node {:?}, {} running, re-adopted: {readopted}); its log ends:\n{}",
                    node.state,
                    counts.running,
                    tail.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let requeued =
        c.list_tasks("held", &ListOptions::default())?.iter().filter(|t| t.execution_info.requeue_count > 0).count();
    if requeued > 0 {
        bail!("{requeued} tasks were requeued: a restart must keep them");
    }
    c.terminate_job("held", None)?;
    own.sort_by(f64::total_cmp);
    total.sort_by(f64::total_cmp);
    println!(
        "{{\"tasks\": {tasks}, \"rounds\": {rounds}, \"readopt_ms\": {{\"p50\": {:.2}, \"max\": {:.2}}}, \"restart_to_running_ms\": {{\"p50\": {:.1}, \"max\": {:.1}}}}}",
        percentile(&own, 0.5),
        own.last().copied().unwrap_or(f64::NAN),
        percentile(&total, 0.5),
        total.last().copied().unwrap_or(f64::NAN),
    );
    Ok(())
}
