//! Scheduling over time on a real cluster: a whole-cluster task behind a stream of small ones
//! gets a planned start, shown on the task, and starts no later than it said.

use std::time::{Duration, Instant};

use gangway_api::*;
use gangway_tests::{wait_for, Cluster, Options};

fn limited(id: &str, cmd: &str, limit: Duration) -> TaskAddParameter {
    TaskAddParameter {
        id: id.into(),
        command_line: cmd.into(),
        constraints: Some(TaskConstraints { max_wall_clock_time: Some(IsoDuration(limit)), ..Default::default() }),
        ..Default::default()
    }
}

#[test]
fn a_stream_of_small_tasks_cannot_starve_a_whole_cluster_task() {
    let cluster = Cluster::start(Options { nodes: 4, slots: 2, ..Options::default() });
    let mut c = cluster.client();
    c.add_job(&JobAddParameter { id: "stream".into(), ..Default::default() }).unwrap();
    // Three one-slot tasks of 2 s a second keep about six of the eight slots busy.
    let mut n = 0;
    let mut add_small = |c: &mut gangway_api::client::Client| {
        n += 1;
        c.add_task("stream", &limited(&format!("s{n:03}"), "sleep 2", Duration::from_secs(6))).unwrap();
    };
    let began = Instant::now();
    while began.elapsed() < Duration::from_secs(3) {
        add_small(&mut c);
        std::thread::sleep(Duration::from_millis(330));
    }
    let mut big = limited("big", "/bin/true", Duration::from_secs(10));
    big.multi_instance_settings = Some(MultiInstanceSettings {
        number_of_instances: 4,
        coordination_command_line: None,
        common_resource_files: Vec::new(),
    });
    c.add_task("stream", &big).unwrap();
    let first = c.get_task("stream", "big").unwrap();
    assert_eq!(first.state, TaskState::Active, "the cluster was busy: big had to wait");
    let plan = first.planned_start.expect("the first task that cannot start has a planned start");
    let mut nodes = plan.nodes.clone();
    nodes.sort();
    assert_eq!(nodes, ["node1", "node2", "node3", "node4"]);
    // The stream goes on; the plan never moves later, and big starts by it.
    let started = wait_for(Duration::from_secs(30), "big to start", || {
        add_small(&mut c);
        std::thread::sleep(Duration::from_millis(330));
        let t = c.get_task("stream", "big").ok()?;
        if let Some(p) = &t.planned_start {
            assert!(
                p.start_time <= plan.start_time,
                "the plan receded: {:?} after {:?}",
                p.start_time,
                plan.start_time
            );
        }
        t.execution_info.start_time
    });
    assert!(started <= plan.start_time, "big started at {started:?}, after its planned start {:?}", plan.start_time);
    let done = wait_for(Duration::from_secs(30), "big to end", || {
        let t = c.get_task("stream", "big").ok()?;
        (t.state == TaskState::Completed).then_some(t)
    });
    assert_eq!(done.execution_info.exit_code, Some(0));
    assert!(done.planned_start.is_none(), "only a waiting task has a plan");
    c.terminate_job("stream", None).ok();
    cluster.wait_idle(4);
}
