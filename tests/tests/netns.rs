//! The namespace cluster: launchers on their own addresses reach the head across a bridge,
//! a cut link makes a node unusable until it is restored, and teardown leaves nothing.

use std::time::Duration;

use gangway_api::*;
use gangway_tests::netns::{available, netns_exists, NetCluster, NetOptions};
use gangway_tests::wait_for;

#[test]
fn launchers_in_namespaces_register_with_their_own_addresses() {
    if !available() {
        eprintln!("skipped: needs root and iproute2");
        return;
    }
    let names;
    {
        let cluster = NetCluster::start(NetOptions { hosts: 3, ..Default::default() });
        names = cluster.netns_names();
        let mut c = cluster.client();
        let nodes = c.list_nodes(None).unwrap();
        let mut addrs: Vec<(String, String)> = nodes.iter().map(|n| (n.id.clone(), n.ip_address.clone())).collect();
        addrs.sort();
        let expected: Vec<(String, String)> =
            cluster.hosts.iter().map(|h| (h.name.clone(), h.address.clone())).collect();
        assert_eq!(addrs, expected);
        c.add_job(&JobAddParameter { id: "j".into(), ..Default::default() }).unwrap();
        c.add_task(
            "j",
            &TaskAddParameter {
                id: "t".into(),
                command_line: "/bin/sh -c 'ip -4 -o addr show eth0'".into(),
                ..Default::default()
            },
        )
        .unwrap();
        let t = wait_for(Duration::from_secs(20), "the task", || {
            let t = c.get_task("j", "t").ok()?;
            (t.state == TaskState::Completed).then_some(t)
        });
        let node = t.node_info.unwrap().node_id;
        let host = cluster.hosts.iter().find(|h| h.name == node).unwrap();
        let out = String::from_utf8(c.get_task_file("j", "t", "stdout.txt", 0).unwrap()).unwrap();
        assert!(out.contains(&host.address), "the task ran inside {node}'s namespace: {out}");
    }
    for n in names {
        assert!(!netns_exists(&n), "namespace {n} left behind");
    }
}

#[test]
fn a_cut_link_makes_the_node_unusable_and_it_returns_when_restored() {
    if !available() {
        eprintln!("skipped: needs root and iproute2");
        return;
    }
    let cluster = NetCluster::start(NetOptions { hosts: 2, ..Default::default() });
    let mut c = cluster.client();
    cluster.set_link(1, false);
    wait_for(Duration::from_secs(20), "host2 to become unusable", || {
        (c.get_node("host2").ok()?.state == NodeState::Unusable).then_some(())
    });
    cluster.set_link(1, true);
    wait_for(Duration::from_secs(30), "host2 to return", || {
        (c.get_node("host2").ok()?.state == NodeState::Idle).then_some(())
    });
}

#[test]
fn across_hosts_a_killed_launcher_and_a_restarted_head_lose_nothing() {
    if !available() {
        eprintln!("skipped: needs root and iproute2");
        return;
    }
    let mut cluster = NetCluster::start(NetOptions { hosts: 3, slots: 2, ..Default::default() });
    let log = cluster.dir.path().join("ran.log");
    let mut c = cluster.client();
    c.add_job(&JobAddParameter { id: "mh".into(), ..Default::default() }).unwrap();
    let tasks = (0..60)
        .map(|i| TaskAddParameter {
            id: format!("t{i:02}"),
            command_line: format!(
                "/bin/sh -c 'sleep 0.3; echo $AZ_BATCH_TASK_ID >> {}; exit {}'",
                log.display(),
                i % 3
            ),
            ..Default::default()
        })
        .collect();
    c.add_task_collection("mh", tasks).unwrap();
    wait_for(Duration::from_secs(30), "tasks to run on every host", || {
        let nodes = c.list_nodes(None).ok()?;
        (nodes.iter().filter(|n| n.running_tasks_count > 0).count() == 3).then_some(())
    });
    // A host's launcher dies mid-task, then the head dies too and comes back.
    cluster.kill_launcher(2);
    cluster.kill_head();
    std::thread::sleep(Duration::from_millis(300));
    cluster.start_head();
    let mut c = cluster.client();
    wait_for(Duration::from_secs(120), "every task to complete", || {
        (c.task_counts("mh").ok()?.task_counts.completed == 60).then_some(())
    });
    let tasks = c.list_tasks("mh", &Default::default()).unwrap();
    for t in &tasks {
        let i: i32 = t.id[1..].parse().unwrap();
        assert_eq!(t.execution_info.exit_code, Some(i % 3), "{} has its real exit code: {:?}", t.id, t.execution_info);
        assert_eq!(t.execution_info.retry_count, 0);
    }
    assert!(tasks.iter().any(|t| t.execution_info.requeue_count > 0), "the lost host's tasks were requeued");
    assert!(tasks
        .iter()
        .all(|t| t.node_info.as_ref().unwrap().node_id != "host3" || t.execution_info.requeue_count == 0));
    let text = std::fs::read_to_string(&log).unwrap();
    let mut seen = std::collections::HashMap::new();
    for line in text.lines() {
        *seen.entry(line.to_owned()).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 60, "every task ran");
    // Tasks on the killed host went on under their supervisors, but their ends never reached
    // the head, which requeued them when it called the host lost: only those may have run twice.
    let requeued: std::collections::HashSet<&str> =
        tasks.iter().filter(|t| t.execution_info.requeue_count > 0).map(|t| t.id.as_str()).collect();
    let twice: Vec<_> = seen.iter().filter(|(id, n)| **n > 1 && !requeued.contains(id.as_str())).collect();
    assert!(twice.is_empty(), "ran to completion twice without being requeued: {twice:?}");
    // The head remembers host3 across its restart, and finds it lost.
    wait_for(Duration::from_secs(20), "host3 to be unusable", || {
        (c.get_node("host3").ok()?.state == NodeState::Unusable).then_some(())
    });
}

#[test]
fn a_four_node_multi_instance_task_across_hosts() {
    if !available() {
        eprintln!("skipped: needs root and iproute2");
        return;
    }
    let cluster = NetCluster::start(NetOptions { hosts: 4, ..Default::default() });
    let mut c = cluster.client();
    c.add_job(&JobAddParameter { id: "mi".into(), ..Default::default() }).unwrap();
    let task = TaskAddParameter {
        id: "t".into(),
        command_line: "/bin/sh -c 'echo app $AZ_BATCH_HOST_LIST $AZ_BATCH_MASTER_NODE'".into(),
        multi_instance_settings: Some(MultiInstanceSettings {
            number_of_instances: 4,
            coordination_command_line: Some(
                "/bin/sh -c 'echo coord $AZ_BATCH_NODE_ID $AZ_BATCH_IS_CURRENT_NODE_MASTER $AZ_BATCH_NODE_LIST $CCP_NODES'".into(),
            ),
            common_resource_files: Vec::new(),
        }),
        ..Default::default()
    };
    c.add_task("mi", &task).unwrap();
    let t = wait_for(Duration::from_secs(30), "the 4-node task", || {
        let t = c.get_task("mi", "t").ok()?;
        (t.state == TaskState::Completed).then_some(t)
    });
    assert_eq!(t.execution_info.exit_code, Some(0), "{:?}", t.execution_info);
    let primary = t.node_info.unwrap().node_id;
    let out = String::from_utf8(c.get_task_file("mi", "t", "stdout.txt", 0).unwrap()).unwrap();
    let app = out.lines().find(|l| l.starts_with("app ")).expect("the application ran on the primary");
    let listed: Vec<&str> = app.split(' ').nth(1).unwrap().split(',').collect();
    let mut sorted = listed.clone();
    sorted.sort();
    let mut addrs: Vec<&str> = cluster.hosts.iter().map(|h| h.address.as_str()).collect();
    addrs.sort();
    assert_eq!(sorted, addrs, "AZ_BATCH_HOST_LIST lists the four addresses: {app}");
    let primary_addr = &cluster.hosts.iter().find(|h| h.name == primary).unwrap().address;
    assert_eq!(listed[0], primary_addr.as_str(), "the primary is first");
    assert!(app.ends_with(&format!("{primary_addr}:6000")), "{app}");
    // Coordination ran on all four hosts, each in its own namespace, with the same lists.
    for (k, h) in cluster.hosts.iter().enumerate() {
        let stdout = std::fs::read_to_string(cluster.root(k).join("workitems/mi/job-1/t/stdout.txt")).unwrap();
        let coord =
            stdout.lines().find(|l| l.starts_with("coord ")).unwrap_or_else(|| panic!("no coordination on {}", h.name));
        let master = if h.name == primary { "true" } else { "false" };
        assert!(coord.starts_with(&format!("coord {} {master} {}", h.name, listed.join(";"))), "{coord}");
        assert!(coord.contains(&format!(" 4 {} ", listed[0])), "CCP_NODES: {coord}");
    }
}

#[test]
fn with_a_two_leaf_fabric_a_gang_lands_under_one_leaf() {
    if !available() {
        eprintln!("skipped: needs root and iproute2");
        return;
    }
    let conf = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        conf.path(),
        "SwitchName=leaf1 Nodes=host[1-3]\nSwitchName=leaf2 Nodes=host[4-6]\nSwitchName=spine Switches=leaf[1-2]\n",
    )
    .unwrap();
    let cluster =
        NetCluster::start(NetOptions { hosts: 6, fabric: Some(conf.path().to_path_buf()), ..Default::default() });
    let mut c = cluster.client();
    c.add_job(&JobAddParameter { id: "g".into(), ..Default::default() }).unwrap();
    // Make host1 and host2 (both on leaf1) busy: leaf1 keeps one idle node, leaf2 three. The
    // other hosts take no work while the busy tasks are placed.
    let set = |c: &mut gangway_api::client::Client, host: &str, on: bool| {
        let op = if on { "enablescheduling" } else { "disablescheduling" };
        let r = c.raw("POST", &format!("/pools/default/nodes/{host}/{op}"), Some(b"{}"), &[]).unwrap();
        assert!(r.status < 300, "{}", r.text());
    };
    for h in ["host3", "host4", "host5", "host6"] {
        set(&mut c, h, false);
    }
    for i in 0..2 {
        c.add_task(
            "g",
            &TaskAddParameter { id: format!("busy{i}"), command_line: "sleep 30".into(), ..Default::default() },
        )
        .unwrap();
    }
    let busy: Vec<String> = wait_for(Duration::from_secs(20), "two busy tasks", || {
        let ts = c.list_tasks("g", &Default::default()).ok()?;
        let nodes: Vec<String> =
            ts.iter().filter(|t| t.state == TaskState::Running).map(|t| t.node_info.clone().unwrap().node_id).collect();
        (nodes.len() == 2).then_some(nodes)
    });
    let mut sorted = busy.clone();
    sorted.sort();
    assert_eq!(sorted, ["host1", "host2"]);
    for h in ["host3", "host4", "host5", "host6"] {
        set(&mut c, h, true);
    }
    let leaf = |h: &str| if ["host1", "host2", "host3"].contains(&h) { 1 } else { 2 };
    let task = TaskAddParameter {
        id: "gang".into(),
        command_line: "/bin/true".into(),
        multi_instance_settings: Some(MultiInstanceSettings { number_of_instances: 2, ..Default::default() }),
        ..Default::default()
    };
    c.add_task("g", &task).unwrap();
    let t = wait_for(Duration::from_secs(20), "the gang", || {
        let t = c.get_task("g", "gang").ok()?;
        (t.state == TaskState::Completed).then_some(t)
    });
    let mut gang = vec![t.node_info.unwrap().node_id];
    let sub: ListResponse<SubtaskInformation> =
        serde_json::from_slice(&c.raw("GET", "/jobs/g/tasks/gang/subtasksinfo", None, &[]).unwrap().body).unwrap();
    gang.extend(sub.value.into_iter().map(|s| s.node_info.node_id));
    assert_eq!(gang.len(), 2);
    assert!(gang.iter().all(|h| !busy.contains(h)), "the gang avoids busy nodes: {gang:?} vs {busy:?}");
    assert_eq!((leaf(&gang[0]), leaf(&gang[1])), (2, 2), "both instances under leaf2: {gang:?} (busy {busy:?})");
}

#[test]
fn a_multi_instance_task_on_a_lost_host_is_requeued_whole() {
    if !available() {
        eprintln!("skipped: needs root and iproute2");
        return;
    }
    let mut cluster = NetCluster::start(NetOptions { hosts: 3, ..Default::default() });
    let mut c = cluster.client();
    c.add_job(&JobAddParameter { id: "lost".into(), ..Default::default() }).unwrap();
    let task = TaskAddParameter {
        id: "t".into(),
        command_line: "/bin/sh -c 'sleep 4; echo done $AZ_BATCH_HOST_LIST'".into(),
        multi_instance_settings: Some(MultiInstanceSettings { number_of_instances: 2, ..Default::default() }),
        ..Default::default()
    };
    c.add_task("lost", &task).unwrap();
    let sub_node = wait_for(Duration::from_secs(20), "the task to run", || {
        let t = c.get_task("lost", "t").ok()?;
        if t.state != TaskState::Running {
            return None;
        }
        let sub: ListResponse<SubtaskInformation> =
            serde_json::from_slice(&c.raw("GET", "/jobs/lost/tasks/t/subtasksinfo", None, &[]).ok()?.body).ok()?;
        sub.value.first().map(|s| s.node_info.node_id.clone())
    });
    let k = cluster.hosts.iter().position(|h| h.name == sub_node).unwrap();
    cluster.kill_launcher(k);
    let t = wait_for(Duration::from_secs(30), "the task to complete elsewhere", || {
        let t = c.get_task("lost", "t").ok()?;
        (t.state == TaskState::Completed).then_some(t)
    });
    assert_eq!(t.execution_info.exit_code, Some(0), "{:?}", t.execution_info);
    assert_eq!((t.execution_info.requeue_count, t.execution_info.retry_count), (1, 0), "requeued whole, not retried");
    let sub: ListResponse<SubtaskInformation> =
        serde_json::from_slice(&c.raw("GET", "/jobs/lost/tasks/t/subtasksinfo", None, &[]).unwrap().body).unwrap();
    let mut nodes = vec![t.node_info.unwrap().node_id];
    nodes.extend(sub.value.into_iter().map(|s| s.node_info.node_id));
    assert!(!nodes.contains(&sub_node), "the second run avoided the lost host: {nodes:?}");
}

#[test]
fn mpich_ranks_across_namespace_hosts() {
    if !available() {
        eprintln!("skipped: needs root and iproute2");
        return;
    }
    let cluster = NetCluster::start(NetOptions { hosts: 2, slots: 2, ..Default::default() });
    let exe = gangway_tests::compile_mpich_hello(cluster.dir.path());
    let mut c = cluster.client();
    c.add_job(&JobAddParameter { id: "mpi".into(), ..Default::default() }).unwrap();
    let task = TaskAddParameter {
        id: "t".into(),
        command_line: exe.display().to_string(),
        multi_instance_settings: Some(MultiInstanceSettings { number_of_instances: 2, ..Default::default() }),
        mpi: Some(MpiSettings { ranks_per_node: 2, ..Default::default() }),
        ..Default::default()
    };
    c.add_task("mpi", &task).unwrap();
    let t = wait_for(Duration::from_secs(60), "the MPI job", || {
        let t = c.get_task("mpi", "t").ok()?;
        (t.state == TaskState::Completed).then_some(t)
    });
    let mut lines = Vec::new();
    let mut errs = String::new();
    for k in 0..2 {
        let dir = cluster.root(k).join("workitems/mpi/job-1/t");
        lines.extend(std::fs::read_to_string(dir.join("stdout.txt")).unwrap_or_default().lines().map(str::to_owned));
        errs.push_str(&std::fs::read_to_string(dir.join("stderr.txt")).unwrap_or_default());
    }
    assert_eq!(t.execution_info.exit_code, Some(0), "{:?}\n{errs}", t.execution_info);
    lines.sort();
    assert_eq!(lines, (0..4).map(|r| format!("rank={r} size=4 sum=10")).collect::<Vec<_>>(), "{errs}");
}
