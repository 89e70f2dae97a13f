//! Join tokens and node certificates: what a join uses up, what a certificate proves, and
//! what survives a restart.

use gangway_api::tokens::JoinTokenAddParameter;
use gangway_api::*;

use super::Sim;

/// A stand-in for the CA: a certificate named after what it was issued for.
fn issue(fp: &str) -> impl FnOnce() -> Result<(String, String), String> + '_ {
    move || Ok((format!("PEM of {fp}"), fp.to_owned()))
}

fn token(sim: &mut Sim, id: &str, p: JoinTokenAddParameter) -> String {
    let t = sim.apply(|st, fx| st.add_join_token(p, id.into(), "s3cret", fx)).unwrap();
    assert_eq!(t.token.as_deref(), Some(format!("gwn_{id}_s3cret").as_str()), "shown once, whole");
    t.id
}

#[test]
fn a_join_token_is_used_up_expires_and_binds_its_node() {
    let mut sim = Sim::with_pool(1, NodeFillType::Spread);
    let once = token(&mut sim, "once", JoinTokenAddParameter::default());
    let why = |e: crate::head::error::ApiError| e.body.message.value;
    let e = sim.apply(|st, fx| st.join_node(&once, "wrong", "n1", issue("fp1"), fx)).unwrap_err();
    assert_eq!(why(e), "join token not valid for this cluster");
    let pem = sim.apply(|st, fx| st.join_node(&once, "s3cret", "n1", issue("fp1"), fx)).unwrap();
    assert_eq!(pem, "PEM of fp1");
    let e = sim.apply(|st, fx| st.join_node(&once, "s3cret", "n2", issue("fp2"), fx)).unwrap_err();
    assert_eq!(why(e), "join token already used (token once)");
    assert_eq!(sim.st.node_of_cert("fp1"), Ok("n1"));
    assert!(sim.st.node_of_cert("fp2").unwrap_err().contains("not issued to a node of this cluster"));
    assert!(sim.st.join_tokens(Timestamp::now()).is_empty(), "a used token is not listed");

    // Several uses; an expired token; bad parameters.
    let p = JoinTokenAddParameter { uses: Some(2), ..Default::default() };
    let two = token(&mut sim, "two", p);
    for (name, fp) in [("n2", "fp2"), ("n3", "fp3")] {
        sim.apply(|st, fx| st.join_node(&two, "s3cret", name, issue(fp), fx)).unwrap();
    }
    let p = JoinTokenAddParameter {
        expires_in: Some(IsoDuration(std::time::Duration::from_millis(1))),
        ..Default::default()
    };
    let short = token(&mut sim, "short", p);
    std::thread::sleep(std::time::Duration::from_millis(5));
    let e = sim.apply(|st, fx| st.join_node(&short, "s3cret", "n4", issue("fp4"), fx)).unwrap_err();
    assert!(why(e).starts_with("join token expired (token short expired at "));
    for (p, msg) in [
        (JoinTokenAddParameter { uses: Some(0), ..Default::default() }, "uses must be between 1 and 100000"),
        (JoinTokenAddParameter { node: Some("a b".into()), ..Default::default() }, "a b"),
    ] {
        let e = sim.apply(|st, fx| st.add_join_token(p, "bad".into(), "x", fx)).unwrap_err();
        assert!(why(e).contains(msg));
    }

    // A name that holds a certificate needs a token for that name, which replaces it.
    let any = token(&mut sim, "any", JoinTokenAddParameter { uses: Some(5), ..Default::default() });
    let e = sim.apply(|st, fx| st.join_node(&any, "s3cret", "n1", issue("fp5"), fx)).unwrap_err();
    assert_eq!(e.status, axum::http::StatusCode::CONFLICT);
    assert!(why(e).contains("node n1 already has a certificate"));
    let p = JoinTokenAddParameter { node: Some("n1".into()), ..Default::default() };
    let for_n1 = token(&mut sim, "forn1", p);
    let e = sim.apply(|st, fx| st.join_node(&for_n1, "s3cret", "n9", issue("fp9"), fx)).unwrap_err();
    assert_eq!(why(e), "join token forn1 is for node n1, not n9");
    sim.apply(|st, fx| st.join_node(&for_n1, "s3cret", "n1", issue("fp6"), fx)).unwrap();
    assert_eq!(sim.st.node_of_cert("fp6"), Ok("n1"));
    assert!(sim.st.node_of_cert("fp1").unwrap_err().contains("the certificate of n1 was revoked"));
    // A refused issue (a bad public key) uses nothing up.
    let fail = || Err::<(String, String), String>("publicKey must be an uncompressed P-256 public key".into());
    let e = sim.apply(|st, fx| st.join_node(&any, "s3cret", "n7", fail, fx)).unwrap_err();
    assert!(why(e).contains("publicKey"));
    let left = sim.st.join_tokens(Timestamp::now()).into_iter().find(|t| t.id == "any").unwrap().uses_left;
    assert_eq!(left, 5);

    // Everything survives a restart of the head: used tokens stay used, revoked stay revoked.
    let again = sim.restart();
    assert_eq!(again.st.node_of_cert("fp6"), Ok("n1"));
    assert_eq!(again.st.node_of_cert("fp3"), Ok("n3"));
    assert!(again.st.node_of_cert("fp1").unwrap_err().contains("revoked"));
    let mut again = again;
    let e = again.apply(|st, fx| st.join_node(&once, "s3cret", "n8", issue("fp8"), fx)).unwrap_err();
    assert_eq!(why(e), "join token already used (token once)");
}

#[test]
fn a_removed_node_loses_its_certificate_and_a_node_reaches_only_the_files_its_work_names() {
    let mut sim = Sim::with_pool(1, NodeFillType::Spread);
    let join = token(&mut sim, "t", JoinTokenAddParameter { uses: Some(2), ..Default::default() });
    sim.apply(|st, fx| st.join_node(&join, "s3cret", "n1", issue("fp1"), fx)).unwrap();
    sim.connect("n1", &[], Vec::new());
    sim.connect("n2", &[], Vec::new());
    // A task of uid 1001 runs on one node, naming `in.txt` and storing outputs under `out-`.
    let p = JobAddParameter {
        id: "j".into(),
        pool_info: Some(PoolInformation { pool_id: "p".into() }),
        ..Default::default()
    };
    sim.apply(|st, fx| st.add_job(p, Owner { uid: 1001, name: "alice".into() }, fx)).unwrap();
    let t = TaskAddParameter {
        id: "t".into(),
        command_line: "true".into(),
        resource_files: vec![ResourceFile {
            file_path: "in.txt".into(),
            uploaded_file: Some("in.txt".into()),
            ..Default::default()
        }],
        output_files: vec![OutputFile {
            file_pattern: "*.log".into(),
            destination: OutputFileDestination { uploaded_file: Some("out-".into()), ..Default::default() },
            upload_options: Default::default(),
        }],
        ..Default::default()
    };
    sim.apply(|st, fx| st.add_task("j", t, fx)).unwrap();
    let on = sim.node_of("j", "t").to_owned();
    let other = if on == "n1" { "n2" } else { "n1" };
    let reach =
        |sim: &Sim, node: &str, uid: u32, name: &str, write: bool| sim.st.node_may_reach(node, uid, name, write, 0);
    assert!(reach(&sim, &on, 1001, "in.txt", false));
    assert!(!reach(&sim, &on, 1001, "secrets.txt", false), "a file its work does not name");
    assert!(!reach(&sim, other, 1001, "in.txt", false), "a node that does not run the task");
    assert!(!reach(&sim, &on, 1002, "in.txt", false), "another user's file of that name");
    assert!(!reach(&sim, &on, 0, "in.txt", false), "the head user's");
    assert!(reach(&sim, &on, 1001, "out-x.log", true));
    assert!(!reach(&sim, &on, 1001, "in.txt", true), "stored only under its outputs' prefix");
    assert!(!reach(&sim, other, 1001, "out-x.log", true));
    // Once the task ends, its node reaches nothing more.
    sim.finish(&on, "j/t#1", 0);
    assert!(!reach(&sim, &on, 1001, "in.txt", false));

    // Removing n1 (idle or not, once it leaves) revokes its certificate.
    let p = NodeRemoveParameter {
        node_list: vec!["n1".into()],
        node_deallocation_option: Some(ComputeNodeDeallocationOption::Requeue),
    };
    sim.apply(|st, fx| st.remove_nodes("p", p, fx)).unwrap();
    assert!(!sim.st.nodes.contains_key("n1"), "it left");
    assert!(sim.st.node_of_cert("fp1").unwrap_err().contains("the certificate of n1 was revoked"));
    // It may join again (no live certificate holds its name).
    sim.apply(|st, fx| st.join_node(&join, "s3cret", "n1", issue("fp2"), fx)).unwrap();
    assert_eq!(sim.st.node_of_cert("fp2"), Ok("n1"));
}
