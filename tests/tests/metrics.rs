//! `/metrics` scraped from a live head: Prometheus' text format, and values that match the
//! cluster (issue 20, in part).

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use gangway_api::{JobAddParameter, TaskAddParameter, TaskState};
use gangway_tests::{wait_for, Cluster, Options};

#[test]
fn metrics_describe_the_cluster_in_prometheus_text_format() {
    let cluster = Cluster::start(Options { nodes: 2, slots: 2, ..Options::default() });
    let mut c = cluster.client();
    c.add_job(&JobAddParameter { id: "m".into(), ..Default::default() }).unwrap();
    c.add_task("m", &TaskAddParameter { id: "t".into(), command_line: "true".into(), ..Default::default() }).unwrap();
    wait_for(Duration::from_secs(30), "the task to complete", || {
        (c.get_task("m", "t").ok()?.state == TaskState::Completed).then_some(())
    });
    let r = c.raw("GET", "/metrics", None, &[]).unwrap();
    assert_eq!(r.status, 200);
    let text = r.text();
    // Every sample names a family declared with HELP and TYPE before it.
    let mut declared = Vec::new();
    let mut samples: HashMap<String, f64> = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(["gauge", "counter", "histogram"].contains(&kind), "{line}");
            declared.push(name.to_owned());
        } else if !line.starts_with("# HELP ") {
            let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("not a sample: {line}"));
            let name = series.split('{').next().unwrap();
            // A histogram's samples are its name with `_bucket`, `_sum` or `_count`.
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|f| declared.iter().any(|d| d == f)))
                .unwrap_or(name);
            assert!(declared.iter().any(|d| d == family), "{name} has no TYPE before it:\n{text}");
            samples.insert(series.to_owned(), value.parse().unwrap_or_else(|_| panic!("not a number: {line}")));
        }
    }
    let get = |s: &str| samples.get(s).copied().unwrap_or_else(|| panic!("no {s} in:\n{text}"));
    assert_eq!(get(r#"gangway_tasks{pool="default",state="completed"}"#), 1.0);
    assert_eq!(get(r#"gangway_jobs{pool="default",state="active"}"#), 1.0);
    assert_eq!(get(r#"gangway_nodes{pool="default",state="idle"}"#), 2.0);
    assert_eq!(get("gangway_launcher_connections"), 2.0);
    assert_eq!(get("gangway_store_write_failing"), 0.0);
    assert_eq!(get(r#"gangway_cpus_allocated{pool="default"}"#), 0.0, "nothing runs now");
    let cpus: f64 = c.list_nodes(None).unwrap().iter().map(|n| f64::from(n.resources.cpus)).sum();
    assert_eq!(get(r#"gangway_cpus{pool="default"}"#), cpus);
    assert!(get(r#"gangway_memory_bytes{pool="default"}"#) > 0.0);
    // The head's own work: the task's wait, passes and commits were measured.
    assert_eq!(get("gangway_task_submit_to_start_seconds_count"), 1.0);
    assert_eq!(get(r#"gangway_task_submit_to_start_seconds_bucket{le="+Inf"}"#), 1.0);
    assert!(get("gangway_scheduler_pass_seconds_count") >= 1.0);
    assert!(get("gangway_store_commit_seconds_count") >= 1.0);
    assert_eq!(get("gangway_launcher_reconnects_total"), 0.0, "no launcher had to reconnect");

    // Prometheus' own client library reads it (Debian's python3-prometheus-client).
    let python = if Path::new("/usr/bin/python3").exists() { "/usr/bin/python3" } else { "python3" };
    let parse = "import sys\nfrom prometheus_client.parser import text_string_to_metric_families as parse\n\
                 fams = list(parse(sys.stdin.read()))\nprint(len(fams), sum(len(f.samples) for f in fams))";
    let mut child = Command::new(python)
        .args(["-c", parse])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 (scripts/deps.sh installs it)");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the Prometheus parser refused it (scripts/deps.sh installs it): {err}\n{text}");
    let counts = String::from_utf8_lossy(&out.stdout);
    let families = counts.split_whitespace().next().and_then(|n| n.parse::<usize>().ok()).unwrap_or(0);
    assert_eq!(families, declared.len(), "every family parsed: {counts}");

    // Without credentials: 401, as the API.
    let mut anon = gangway_tests::tls::http(&cluster.config);
    let r = anon.request("GET", "/metrics", &[], None).unwrap();
    assert_eq!(r.status, 401, "{}", r.text());
}
