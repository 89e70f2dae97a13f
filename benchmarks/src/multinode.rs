//! Multi-node launch latency on the namespace cluster (needs root): submit → every instance of
//! a 4-node multi-instance task running (the primary's application starts only once every
//! instance has run its coordination command), over 20 runs.
//!
//! `cargo build --release --bins && sudo target/release/gangway-multinode-bench [--hosts 4] [--runs 20]`

use std::time::Duration;

use anyhow::{bail, Context};
use gangway_api::*;
use gangway_tests::netns::{available, NetCluster, NetOptions};

/// `--help`: this file's header.
const USAGE: &str = r#"Multi-node launch latency on the namespace cluster (needs root): submit → every instance of
a 4-node multi-instance task running (the primary's application starts only once every
instance has run its coordination command), over 20 runs.

`cargo build --release --bins && sudo target/release/gangway-multinode-bench [--hosts 4] [--runs 20]`"#;

fn main() -> anyhow::Result<()> {
    if gangway_benchmarks::wants_help(USAGE) {
        return Ok(());
    }
    let mut hosts = 4u32;
    let mut runs = 20u32;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--hosts" => hosts = value.parse()?,
            "--runs" => runs = value.parse()?,
            other => bail!("unknown option {other} (accepted: --hosts N, --runs N)"),
        }
    }
    if !available() {
        bail!("the namespace cluster needs root and iproute2");
    }
    let cluster = NetCluster::start(NetOptions { hosts: hosts as usize, ..Default::default() });
    let mut c = cluster.client();
    c.add_job(&JobAddParameter { id: "bench".into(), ..Default::default() })?;
    let mut lat = Vec::new();
    for i in 0..runs {
        let id = format!("t{i}");
        let t0 = Timestamp::now();
        c.add_task(
            "bench",
            &TaskAddParameter {
                id: id.clone(),
                command_line: "/bin/true".into(),
                multi_instance_settings: Some(MultiInstanceSettings {
                    number_of_instances: hosts,
                    coordination_command_line: Some("/bin/true".into()),
                    common_resource_files: Vec::new(),
                }),
                ..Default::default()
            },
        )?;
        let t = loop {
            let t = c.get_task("bench", &id)?;
            if t.state == TaskState::Completed {
                break t;
            }
            std::thread::sleep(Duration::from_micros(500));
        };
        if t.execution_info.exit_code != Some(0) {
            bail!("run {i} failed: {:?}", t.execution_info);
        }
        // startTime is the application's start on the primary: after every instance coordinated.
        let started = t.execution_info.start_time.context("no start time")?;
        lat.push(started.micros_since(t0) as f64 / 1000.0);
    }
    lat.sort_by(f64::total_cmp);
    let pct = |p: f64| lat[((lat.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "{{\"hosts\": {hosts}, \"runs\": {runs}, \"submit_to_all_instances_running_ms\": {{\"p50\": {:.2}, \"p90\": {:.2}, \"max\": {:.2}}}}}",
        pct(0.5),
        pct(0.9),
        pct(1.0)
    );
    Ok(())
}
