use super::*;

fn node(size: u32, local: &[u32]) -> NodePmi {
    NodePmi::new(NodeConfig {
        size,
        local_ranks: local.to_vec(),
        kvsname: "kvs_1".into(),
        process_mapping: process_mapping(&[local.len() as u32]),
    })
}

/// Feeds one line and returns the actions as lines: replies as `rank: line`, others as Debug.
fn feed(pmi: &mut NodePmi, rank: u32, line: &str) -> Vec<String> {
    let mut out = Vec::new();
    pmi.handle_line(rank, line.as_bytes(), &mut out).expect("local rank");
    render(out)
}

fn render(out: Vec<Action>) -> Vec<String> {
    out.into_iter()
        .map(|a| match a {
            Action::Reply { rank, response } => format!("{rank}: {}", response.to_string().trim_end()),
            other => format!("{other:?}"),
        })
        .collect()
}

fn fence_done(pmi: &mut NodePmi, puts: &[(&str, &str)]) -> Vec<String> {
    let mut out = Vec::new();
    let puts = puts.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    pmi.fence_done(puts, &mut out).expect("fence in flight");
    render(out)
}

#[test]
fn observed_mpich_sequence_with_two_local_ranks() {
    let mut pmi = node(2, &[0, 1]);
    for r in [0, 1] {
        assert_eq!(
            feed(&mut pmi, r, "cmd=init pmi_version=1 pmi_subversion=1\n"),
            [format!("{r}: cmd=response_to_init pmi_version=1 pmi_subversion=1 rc=0")]
        );
        assert_eq!(
            feed(&mut pmi, r, "cmd=get_maxes\n"),
            [format!("{r}: cmd=maxes kvsname_max=256 keylen_max=256 vallen_max=1024 rc=0")]
        );
        assert_eq!(feed(&mut pmi, r, "cmd=get_appnum\n"), [format!("{r}: cmd=appnum appnum=0 rc=0")]);
        assert_eq!(feed(&mut pmi, r, "cmd=get_my_kvsname\n"), [format!("{r}: cmd=my_kvsname kvsname=kvs_1 rc=0")]);
        assert_eq!(
            feed(&mut pmi, r, "cmd=get kvsname=kvs_1 key=PMI_process_mapping\n"),
            [format!("{r}: cmd=get_result rc=0 value=(vector,(0,1,2))")]
        );
    }
    // First barrier: nothing put yet, an empty fence.
    assert!(feed(&mut pmi, 0, "cmd=barrier_in\n").is_empty());
    assert_eq!(feed(&mut pmi, 1, "cmd=barrier_in\n"), ["Fence { puts: [] }"]);
    assert_eq!(fence_done(&mut pmi, &[]), ["0: cmd=barrier_out rc=0", "1: cmd=barrier_out rc=0"]);

    // Rank 0 broadcasts; the put is not visible before the fence.
    assert_eq!(feed(&mut pmi, 0, "cmd=put kvsname=kvs_1 key=-bcast-1-0 value=abc\n"), ["0: cmd=put_result rc=0"]);
    assert_eq!(
        feed(&mut pmi, 1, "cmd=get kvsname=kvs_1 key=-bcast-1-0\n"),
        ["1: cmd=get_result rc=-1 msg=key_not_found"]
    );
    assert!(feed(&mut pmi, 0, "cmd=barrier_in\n").is_empty());
    let fence = feed(&mut pmi, 1, "cmd=barrier_in\n");
    assert_eq!(fence, [r#"Fence { puts: [("-bcast-1-0", "abc")] }"#]);
    fence_done(&mut pmi, &[("-bcast-1-0", "abc")]);
    assert_eq!(feed(&mut pmi, 1, "cmd=get kvsname=kvs_1 key=-bcast-1-0\n"), ["1: cmd=get_result rc=0 value=abc"]);

    // Every rank puts its shared-memory address, then reads the other's after the fence.
    let hex = "ab".repeat(300);
    for r in [0, 1] {
        let line = format!("cmd=put kvsname=kvs_1 key=-allgather-shm-1-{r} value={hex}\n");
        assert_eq!(feed(&mut pmi, r, &line), [format!("{r}: cmd=put_result rc=0")]);
    }
    feed(&mut pmi, 0, "cmd=barrier_in\n");
    let mut out = Vec::new();
    pmi.handle(1, Request::BarrierIn, &mut out).unwrap();
    let [Action::Fence { puts }] = &out[..] else { panic!("expected a fence, got {out:?}") };
    assert_eq!(puts.len(), 2);
    let mut out = Vec::new();
    pmi.fence_done(puts.clone(), &mut out).unwrap();
    assert_eq!(out.len(), 2);
    for r in [0, 1] {
        let line = format!("cmd=get kvsname=kvs_1 key=-allgather-shm-1-{}\n", 1 - r);
        assert_eq!(feed(&mut pmi, r, &line), [format!("{r}: cmd=get_result rc=0 value={hex}")]);
    }
    assert!(!pmi.all_done());
    for r in [0, 1] {
        assert_eq!(feed(&mut pmi, r, "cmd=finalize\n"), [format!("{r}: cmd=finalize_ack rc=0")]);
    }
    assert!(pmi.all_done());
    // Closing after finalize is the normal end, not a loss.
    let mut out = Vec::new();
    pmi.closed(0, &mut out).unwrap();
    assert!(out.is_empty());
}

#[test]
fn other_nodes_puts_arrive_with_the_fence() {
    let mut pmi = node(4, &[2, 3]);
    feed(&mut pmi, 2, "cmd=put kvsname=kvs_1 key=mine value=2\n");
    feed(&mut pmi, 2, "cmd=barrier_in\n");
    assert_eq!(feed(&mut pmi, 3, "cmd=barrier_in\n"), [r#"Fence { puts: [("mine", "2")] }"#]);
    fence_done(&mut pmi, &[("theirs", "0 1 = x"), ("mine", "2")]);
    assert_eq!(feed(&mut pmi, 3, "cmd=get kvsname=kvs_1 key=theirs\n"), ["3: cmd=get_result rc=0 value=0 1 = x"]);
    assert_eq!(feed(&mut pmi, 3, "cmd=get kvsname=kvs_1 key=mine\n"), ["3: cmd=get_result rc=0 value=2"]);
    // The next fence carries only the puts made since.
    feed(&mut pmi, 2, "cmd=barrier_in\n");
    assert_eq!(feed(&mut pmi, 3, "cmd=barrier_in\n"), ["Fence { puts: [] }"]);
}

#[test]
fn refusals_and_errors() {
    let mut pmi = node(2, &[0, 1]);
    assert_eq!(feed(&mut pmi, 0, "cmd=get kvsname=kvs_1 key=nope\n"), ["0: cmd=get_result rc=-1 msg=key_not_found"]);
    assert_eq!(feed(&mut pmi, 0, "cmd=get kvsname=other key=x\n"), ["0: cmd=get_result rc=-1 msg=unknown_kvsname"]);
    let long = format!("cmd=put kvsname=kvs_1 key=k value={}\n", "x".repeat(1025));
    assert_eq!(feed(&mut pmi, 0, &long), ["0: cmd=put_result rc=-1 msg=invalid_val_length"]);
    assert_eq!(
        feed(&mut pmi, 0, "cmd=init pmi_version=2 pmi_subversion=0\n"),
        ["0: cmd=response_to_init pmi_version=1 pmi_subversion=1 rc=-1 msg=unsupported_pmi_version"]
    );
    assert_eq!(
        feed(&mut pmi, 1, "cmd=publish_name service=a port=b\n"),
        ["1: cmd=publish_result rc=-1 msg=not_supported"]
    );
    // A spawn block is swallowed line by line and refused at endcmd.
    assert!(feed(&mut pmi, 1, "mcmd=spawn\n").is_empty());
    assert!(feed(&mut pmi, 1, "nprocs=2\n").is_empty());
    assert!(feed(&mut pmi, 1, "execname=/bin/true\n").is_empty());
    assert_eq!(feed(&mut pmi, 1, "endcmd\n"), ["1: cmd=spawn_result rc=-1 msg=not_supported"]);
    assert_eq!(
        feed(&mut pmi, 1, "garbage\n"),
        [r#"ProtocolError { rank: 1, error: "PMI line does not start with cmd= or mcmd=: \"garbage\"" }"#]
    );
    feed(&mut pmi, 1, "cmd=barrier_in\n");
    assert_eq!(
        feed(&mut pmi, 1, "cmd=barrier_in\n"),
        [r#"ProtocolError { rank: 1, error: "barrier_in while already in the barrier" }"#]
    );
    let mut out = Vec::new();
    assert_eq!(pmi.handle(7, Request::GetMaxes, &mut out), Err(NodePmiError::NotLocal { rank: 7 }));
    assert_eq!(pmi.fence_done(Vec::new(), &mut out), Err(NodePmiError::NoFence));
    assert!(out.is_empty());
}

#[test]
fn abort_and_lost_rank_are_reported() {
    let mut pmi = node(2, &[0, 1]);
    assert_eq!(
        feed(&mut pmi, 0, "cmd=abort exitcode=3 message=bad input file\n"),
        [r#"Abort { rank: 0, code: 3, msg: Some("bad input file") }"#]
    );
    feed(&mut pmi, 1, "cmd=barrier_in\n");
    let mut out = Vec::new();
    pmi.closed(0, &mut out).unwrap();
    pmi.closed(0, &mut out).unwrap();
    assert_eq!(out, [Action::RankLost { rank: 0 }], "reported once");
    assert!(!pmi.all_done());
}

#[test]
fn failed_fence_releases_ranks_with_an_error() {
    let mut pmi = node(2, &[0, 1]);
    feed(&mut pmi, 0, "cmd=barrier_in\n");
    feed(&mut pmi, 1, "cmd=barrier_in\n");
    let mut out = Vec::new();
    pmi.fence_failed(&mut out).unwrap();
    assert_eq!(render(out), ["0: cmd=barrier_out rc=-1", "1: cmd=barrier_out rc=-1"]);
}

#[test]
fn process_mappings() {
    let check = |blocks: &[u32], expected: &str| assert_eq!(process_mapping(blocks), expected, "{blocks:?}");
    check(&[2], "(vector,(0,1,2))");
    check(&[2, 2], "(vector,(0,2,2))");
    check(&[1], "(vector,(0,1,1))");
    check(&[4, 4, 4, 4], "(vector,(0,4,4))");
    check(&[3, 3, 2], "(vector,(0,2,3),(2,1,2))");
    check(&[1, 2, 1], "(vector,(0,1,1),(1,1,2),(2,1,1))");
    check(&[2, 0, 2], "(vector,(0,2,2))");
    check(&[], "(vector)");
}

#[test]
fn process_mappings_of_any_distribution() {
    let check = |nodes: &[u32], expected: &str| assert_eq!(super::process_mapping_of(nodes), expected, "{nodes:?}");
    // srun -m cyclic over two nodes where the second has one CPU (mn-distribution.txt).
    check(&[0, 1, 0, 0, 0], "(vector,(0,2,1),(0,1,3))");
    check(&[0, 1, 0, 1], "(vector,(0,2,1),(0,2,1))");
    // plane=3 on the same allocation.
    check(&[0, 0, 0, 1, 0], "(vector,(0,1,3),(1,1,1),(0,1,1))");
}
