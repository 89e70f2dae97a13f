use gangway_api::slurm::{PriorityFactors, PriorityList, ShareList, ShareRow};

use super::*;

fn args(line: &str) -> Vec<String> {
    line.split_whitespace().map(String::from).collect()
}

fn list() -> PriorityList {
    let job = |job_id, user: &str, uid, fairshare: f64, age: f64| PriorityFactors {
        job_id,
        partition: "default".into(),
        user: user.into(),
        uid,
        account: "default".into(),
        priority: (1000.0 * age) as i64 + (10_000.0 * fairshare) as i64,
        age,
        fairshare,
        job_size: 0.0,
        weighted_age: (1000.0 * age) as i64,
        weighted_fairshare: (10_000.0 * fairshare) as i64,
        weighted_job_size: 0,
        nice: 0,
    };
    PriorityList {
        weight_age: 1000,
        weight_fairshare: 10_000,
        weight_job_size: 0,
        jobs: vec![job(12, "alice", 1001, 0.25, 0.5), job(13, "bob", 1002, 0.5, 0.0)],
    }
}

fn sprio(line: &str) -> Output {
    render_sprio(&list(), &parse_sprio_args(&args(line)).expect("parses"))
}

#[test]
fn sprio_prints_the_weighted_factors_and_leaves_out_those_without_weight() {
    let out = sprio("");
    assert_eq!(
        out.stdout,
        "          JOBID PARTITION   PRIORITY        AGE  FAIRSHARE\n\
         \x20            12 default         3000        500       2500\n\
         \x20            13 default         5000          0       5000\n"
    );
}

#[test]
fn sprio_filters_by_job_and_user_and_shows_weights_and_normalized_values() {
    assert_eq!(sprio("-h -u bob").stdout.lines().count(), 1);
    assert!(sprio("-h -j12").stdout.contains(" 12 "));
    assert!(!sprio("-h -j12").stdout.contains(" 13 "));
    let w = sprio("-w");
    assert!(w.stdout.lines().nth(1).expect("a weights line").contains("Weights"));
    assert!(w.stdout.lines().nth(1).expect("a weights line").ends_with("10000"));
    assert!(sprio("-n -h -j12").stdout.contains("0.2500000"));
    let long = sprio("-l");
    assert!(long.stdout.starts_with("          JOBID PARTITION     USER   PRIORITY"), "{}", long.stdout);
    assert!(long.stdout.lines().next().expect("header").ends_with("NICE"));
    let none = sprio("-j99");
    assert_eq!(none.stderr, "Unable to find jobs matching user/id(s) specified\n");
    assert_eq!(sprio("-h -o %i|%u|%Y|%N").stdout, "12|alice|3000|0\n13|bob|5000|0\n");
}

#[test]
fn sprio_refuses_what_it_does_not_know() {
    let e = parse_sprio_args(&args("--bogus")).unwrap_err();
    assert!(e.stderr.starts_with("sprio: unrecognized option '--bogus'"), "{}", e.stderr);
    let e = parse_sprio_args(&args("-jx")).unwrap_err();
    assert!(e.stderr.contains("Invalid job id: x"), "{}", e.stderr);
}

fn shares() -> ShareList {
    let row = |account: &str, user: Option<(&str, u32)>, usage, fairshare| ShareRow {
        account: account.into(),
        user: user.map(|u| u.0.to_owned()),
        uid: user.map(|u| u.1),
        raw_shares: 1,
        norm_shares: 0.5,
        raw_usage: usage,
        effective_usage: 0.5,
        fairshare,
    };
    ShareList {
        rows: vec![
            row("physics", None, 300, 0.25),
            row("physics", Some(("alice", 1001)), 300, 0.25),
            row("physics", Some(("bob", 1002)), 0, 0.5),
        ],
    }
}

#[test]
fn sshare_shows_the_tree_and_only_the_callers_users_by_default() {
    let o = parse_sshare_args(&[]).expect("parses");
    let out = render_sshare(&shares(), &o, 1001).stdout;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "             Account       User  RawShares  NormShares    RawUsage  EffectvUsage  FairShare");
    assert!(lines[1].starts_with("-------------------- ----------"));
    assert!(lines[2].starts_with("root "));
    assert!(lines[2].contains("        300 "), "{}", lines[2]);
    assert!(lines[3].starts_with(" physics "));
    assert!(lines[4].starts_with("  physics ") && lines[4].contains("alice"));
    assert_eq!(lines.len(), 5, "bob's row is not the caller's: {out}");
    let all = render_sshare(&shares(), &parse_sshare_args(&args("-a")).expect("parses"), 1001).stdout;
    assert!(all.contains("bob"));
    let parsable = render_sshare(&shares(), &parse_sshare_args(&args("-P -h -u bob")).expect("parses"), 1001);
    assert_eq!(parsable.stdout, "root|||0.000000|300|1.000000|\nphysics||1|0.500000|300|0.500000|0.250000\nphysics|bob|1|0.500000|0|0.500000|0.500000\n");
    let e = parse_sshare_args(&args("-l")).unwrap_err();
    assert!(e.stderr.contains("not supported"), "{}", e.stderr);
}
