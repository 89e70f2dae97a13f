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
