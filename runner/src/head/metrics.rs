//! `GET /metrics`: what the head knows, in Prometheus' text exposition format (0.0.4), for a
//! scraper that authenticates as any other caller (a bearer token). Gauges are read from the
//! state at scrape time, so a scrape costs O(jobs + tasks + nodes) and changes nothing.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::state::HeadState;
use crate::histogram::Histogram;

/// A state's wire name (`running`, `idle`, …).
fn name_of(state: impl serde::Serialize) -> String {
    serde_json::to_value(state).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// A label value, escaped as the format wants.
fn label(v: &str) -> String {
    v.replace('\\', r"\\").replace('"', "\\\"").replace('\n', r"\n")
}

/// One metric family: help, type, and its samples (labels, value).
struct Family {
    name: &'static str,
    help: &'static str,
    kind: &'static str,
    samples: Vec<(String, f64)>,
}

impl Family {
    fn new(name: &'static str, kind: &'static str, help: &'static str) -> Family {
        Family { name, help, kind, samples: Vec::new() }
    }

    fn add(&mut self, labels: &[(&str, &str)], value: f64) {
        let l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", label(v))).collect();
        let labels = if l.is_empty() { String::new() } else { format!("{{{}}}", l.join(",")) };
        self.samples.push((labels, value));
    }

    fn write(&self, out: &mut String) {
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} {}", self.name, self.kind);
        for (labels, value) in &self.samples {
            let _ = writeln!(out, "{}{labels} {value}", self.name);
        }
    }
}

/// Counts by (pool, state) as samples.
fn by_pool_state(f: &mut Family, counts: BTreeMap<(String, String), u64>) {
    for ((pool, state), n) in counts {
        f.add(&[("pool", &pool), ("state", &state)], n as f64);
    }
}

/// What the store tells `/metrics`.
pub struct StoreFacts {
    /// Whether commits fail now.
    pub failing: bool,
    /// How long commits took.
    pub commits: Histogram,
}

/// A histogram family: its buckets, sum and count.
fn histogram(out: &mut String, name: &str, help: &str, h: &Histogram) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} histogram");
    let (buckets, sum, count) = h.buckets();
    for (le, n) in buckets {
        let le = if le.is_infinite() { "+Inf".to_owned() } else { le.to_string() };
        let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {n}");
    }
    let _ = writeln!(out, "{name}_sum {sum}");
    let _ = writeln!(out, "{name}_count {count}");
}

/// The exposition of `st`, with the store's and the process's own facts.
pub fn render(st: &HeadState, store: &StoreFacts, dropped_writes: u64) -> String {
    let mut jobs: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut tasks: BTreeMap<(String, String), u64> = BTreeMap::new();
    for j in st.jobs.values() {
        let pool = j.wire.pool_info.pool_id.clone();
        *jobs.entry((pool.clone(), name_of(j.wire.state))).or_default() += 1;
        for t in j.tasks.values() {
            *tasks.entry((pool.clone(), name_of(t.wire.state))).or_default() += 1;
        }
    }
    let mut nodes: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut capacity: BTreeMap<String, [u64; 6]> = BTreeMap::new();
    let mut connected = 0u64;
    for n in st.nodes.values() {
        let w = &n.wire;
        *nodes.entry((w.pool_id.clone(), name_of(w.state))).or_default() += 1;
        let c = capacity.entry(w.pool_id.clone()).or_default();
        let r = &w.resources;
        c[0] += u64::from(r.cpus);
        c[1] += u64::from(w.allocated.cpus);
        c[2] += r.memory_bytes.saturating_sub(r.memory_reserve_bytes);
        c[3] += w.allocated.memory_mib << 20;
        c[4] += r.gpus.len() as u64;
        c[5] += w.allocated.gpus.len() as u64;
        connected += u64::from(n.conn.is_some());
    }
    let mut families = vec![
        Family::new("gangway_jobs", "gauge", "Jobs by pool and state."),
        Family::new("gangway_tasks", "gauge", "Tasks by their job's pool and state."),
        Family::new("gangway_nodes", "gauge", "Compute nodes by pool and state."),
    ];
    by_pool_state(&mut families[0], jobs);
    by_pool_state(&mut families[1], tasks);
    by_pool_state(&mut families[2], nodes);
    let resources: [(&'static str, &'static str); 6] = [
        ("gangway_cpus", "Logical CPUs of the pool's nodes."),
        ("gangway_cpus_allocated", "Logical CPUs of cores allocated to running tasks."),
        ("gangway_memory_bytes", "Memory of the pool's nodes that tasks may be given (less the reserve)."),
        ("gangway_memory_allocated_bytes", "Memory allocated to running tasks."),
        ("gangway_gpus", "GPUs of the pool's nodes."),
        ("gangway_gpus_allocated", "GPUs allocated to running tasks."),
    ];
    for (k, (name, help)) in resources.into_iter().enumerate() {
        let mut f = Family::new(name, "gauge", help);
        for (pool, c) in &capacity {
            f.add(&[("pool", pool)], c[k] as f64);
        }
        families.push(f);
    }
    let mut f = Family::new("gangway_launcher_connections", "gauge", "Launchers connected now.");
    f.add(&[], connected as f64);
    families.push(f);
    let mut f =
        Family::new("gangway_store_write_failing", "gauge", "1 while the state store cannot write (changes get 503).");
    f.add(&[], if store.failing { 1.0 } else { 0.0 });
    families.push(f);
    let mut f = Family::new(
        "gangway_output_writes_dropped_total",
        "counter",
        "Writes to the head's standard output or error that failed and were dropped.",
    );
    f.add(&[], dropped_writes as f64);
    families.push(f);
    let mut f = Family::new("gangway_launcher_reconnects_total", "counter", "Launchers that connected again.");
    f.add(&[], st.stats.launcher_reconnects as f64);
    families.push(f);
    let mut out = String::new();
    for f in &families {
        f.write(&mut out);
    }
    let s = &st.stats;
    histogram(&mut out, "gangway_scheduler_pass_seconds", "How long each scheduler pass took.", &s.pass_seconds);
    histogram(&mut out, "gangway_scheduler_pass_decisions", "Starts each scheduler pass decided.", &s.pass_decisions);
    let wait = "From a task's submission to its first start.";
    histogram(&mut out, "gangway_task_submit_to_start_seconds", wait, &s.submit_to_start_seconds);
    histogram(&mut out, "gangway_store_commit_seconds", "How long each state store commit took.", &store.commits);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped_and_families_have_help_and_type() {
        assert_eq!(label("a\"b\\c\nd"), r#"a\"b\\c\nd"#);
        let mut f = Family::new("x_total", "counter", "X.");
        f.add(&[("pool", "p\"1")], 2.0);
        f.add(&[], 0.5);
        let mut out = String::new();
        f.write(&mut out);
        assert_eq!(out, "# HELP x_total X.\n# TYPE x_total counter\nx_total{pool=\"p\\\"1\"} 2\nx_total 0.5\n");
    }
}
