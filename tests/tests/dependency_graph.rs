//! A 10,000-task fan-in and fan-out through the REST API of a real cluster.

use std::time::Duration;

use gangway_api::*;
use gangway_tests::{wait_for, Cluster, Options};

#[test]
fn a_fan_in_of_10000_then_a_fan_out_of_10000() {
    const N: usize = 10_000;
    let cluster = Cluster::start(Options { nodes: 2, slots: 32, ..Options::default() });
    let mut c = cluster.client();
    c.add_job(&JobAddParameter { id: "graph".into(), uses_task_dependencies: Some(true), ..Default::default() })
        .unwrap();
    let task = |id: String, depends_on: Option<TaskDependencies>| TaskAddParameter {
        id,
        command_line: "/bin/true".into(),
        depends_on,
        ..Default::default()
    };
    // The join first, over a range of tasks not added yet; then its dependents; then its parents.
    let all = TaskDependencies { task_ids: Vec::new(), task_id_ranges: vec![TaskIdRange { start: 1, end: N as i64 }] };
    c.add_task("graph", &task("join".into(), Some(all))).unwrap();
    let on_join = || Some(TaskDependencies { task_ids: vec!["join".into()], task_id_ranges: Vec::new() });
    let outs: Vec<TaskAddParameter> = (1..=N).map(|i| task(format!("out{i}"), on_join())).collect();
    let ins: Vec<TaskAddParameter> = (1..=N).map(|i| task(i.to_string(), None)).collect();
    for chunk in outs.chunks(100).chain(ins.chunks(100)) {
        let r = c.add_task_collection("graph", chunk.to_vec()).unwrap();
        assert!(r.value.iter().all(|x| x.status == "success"), "{:?}", r.value.iter().find(|x| x.status != "success"));
    }
    let counts = wait_for(Duration::from_secs(600), "the graph to run", || {
        let k = c.task_counts("graph").ok()?.task_counts;
        (k.completed == (2 * N + 1) as u64).then_some(k)
    });
    assert_eq!((counts.succeeded, counts.failed), ((2 * N + 1) as u64, 0));
    let join = c.get_task("graph", "join").unwrap();
    let last_in =
        (1..=N).map(|i| c.get_task("graph", &i.to_string()).unwrap().execution_info.end_time.unwrap()).max().unwrap();
    let join_start = join.execution_info.start_time.unwrap();
    assert!(join_start >= last_in, "the join ran after every parent");
    for i in [1, N / 2, N] {
        let out = c.get_task("graph", &format!("out{i}")).unwrap();
        assert!(
            out.execution_info.start_time.unwrap() >= join.execution_info.end_time.unwrap(),
            "out{i} after the join"
        );
    }
}
