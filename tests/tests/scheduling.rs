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

#[test]
fn slurm_shows_time_limits_and_planned_starts() {
    let pool = PoolAddParameter {
        id: "short".into(),
        task_slots_per_node: Some(2),
        default_time_limit: Some(IsoDuration(Duration::from_secs(600))),
        max_time_limit: Some(IsoDuration(Duration::from_secs(3600))),
        enable_inter_node_communication: true,
        ..Default::default()
    };
    let cluster = Cluster::start(Options { nodes: 2, pool: Some(pool), ..Options::default() });
    let door = gangway_tests::slurm::SlurmFrontDoor::new(cluster.config.clone());
    let run = |cmd: &str, args: &[&str]| {
        let out = door.run(cmd, args);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // Over the partition's MaxTime: refused in Slurm's words, nothing queued.
    let (ok, _, err) = run("sbatch", &["-p", "short", "--time=2:00:00", "--wrap", "true"]);
    assert!(!ok);
    assert!(err.contains("Requested time limit is invalid (missing or exceeds some limit)"), "{err}");
    let (_, part, _) = run("scontrol", &["show", "partition", "short"]);
    assert!(part.contains("DefaultTime=00:10:00 ") && part.contains("MaxTime=01:00:00 "), "{part}");
    let (_, sinfo, _) = run("sinfo", &["-h", "-p", "short", "-o", "%l"]);
    assert_eq!(sinfo.trim(), "1:00:00");
    // A two-node job of 10 minutes holds both nodes; a second one waits for it, planned for
    // when the first reaches its limit, on both nodes.
    let (ok, first, err) = run(
        "sbatch",
        &["--parsable", "-o", "/dev/null", "-p", "short", "-N", "2", "--exclusive", "--wrap", "sleep 60"],
    );
    assert!(ok, "{err}");
    let first = first.trim().to_string();
    wait_for(Duration::from_secs(30), "the first job to run", || {
        (run("squeue", &["-h", "-o", "%T", "-j", &first]).1.trim() == "RUNNING").then_some(())
    });
    let (_, limit, _) = run("squeue", &["-h", "-o", "%l", "-j", &first]);
    assert_eq!(limit.trim(), "10:00", "the partition's DefaultTime applies");
    let (ok, second, err) =
        run("sbatch", &["--parsable", "-o", "/dev/null", "-p", "short", "-N", "2", "--time=5", "--wrap", "true"]);
    assert!(ok, "{err}");
    let second = second.trim().to_string();
    let (_, started, _) = run("squeue", &["-h", "-o", "%S", "-j", &first]);
    let (_, start, _) = run("squeue", &["--start", "-h", "-o", "%i %S %e %Y"]);
    let fields: Vec<&str> = start.split_whitespace().collect();
    assert_eq!(fields.len(), 4, "{start}");
    assert_eq!(fields[0], second);
    assert!(fields[1] > started.trim(), "planned {} after the first's start {started}", fields[1]);
    assert_eq!(fields[3], "node[1-2]");
    let (_, show, _) = run("scontrol", &["show", "job", &second]);
    assert!(show.contains(&format!("StartTime={} EndTime={} ", fields[1], fields[2])), "{show}");
    assert!(show.contains("NodeList= SchedNodeList=node[1-2]\n"), "{show}");
    run("scancel", &[&first, &second]);
    cluster.wait_idle(2);
}

#[test]
fn a_pass_cut_short_at_max_pass_time_goes_on_at_once() {
    // Every pass yields after one start: what one release frees is filled by the continuations.
    let cluster = Cluster::start(Options {
        nodes: 1,
        slots: 4,
        head_args: vec!["--max-pass-time".into(), "0ms".into()],
        ..Options::default()
    });
    let mut c = cluster.client();
    c.add_job(&JobAddParameter { id: "j".into(), ..Default::default() }).unwrap();
    let mut whole = limited("whole", "sleep 1", Duration::from_secs(60));
    whole.required_slots = Some(4);
    c.add_task("j", &whole).unwrap();
    for i in 0..4 {
        c.add_task("j", &limited(&format!("t{i}"), "sleep 5", Duration::from_secs(60))).unwrap();
    }
    let starts = wait_for(Duration::from_secs(20), "the four tasks to start", || {
        let tasks = c.list_tasks("j", &Default::default()).ok()?;
        let starts: Vec<Timestamp> =
            tasks.iter().filter(|t| t.id != "whole").filter_map(|t| t.execution_info.start_time).collect();
        (starts.len() == 4).then_some(starts)
    });
    let (first, last) = (starts.iter().min().unwrap(), starts.iter().max().unwrap());
    assert!(last.millis_since(*first) < 3000, "they started together, not one per ending: {starts:?}");
    c.terminate_job("j", None).ok();
    cluster.wait_idle(1);
}
