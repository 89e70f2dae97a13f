use super::fixtures::{job, NOW};
use super::*;

fn check_pad(value: &str, width: usize, right: bool, cut: bool, expected: &str) {
    assert_eq!(pad(value, width, right, cut), expected, "{value:?} width {width} right {right} cut {cut}");
}

#[test]
fn padding_as_squeue_prints() {
    check_pad("JOBID", 18, true, true, "             JOBID");
    check_pad("12", 6, false, true, "12    ");
    check_pad("verylongname", 8, true, true, "verylong"); // %.8j cuts from the right end
    check_pad("verylongname", 8, false, true, "verylong");
    check_pad("verylongname", 8, false, false, "verylong"); // %-8 (`%.8s`) always cuts
    check_pad("node[01-10]", 4, true, false, "node[01-10]"); // node lists are never cut
    check_pad("anything", 0, true, true, "anything");
    check_pad("", 3, true, true, "   ");
}

fn check_format(spec: &str, prefix: &str, fields: &[(char, usize, bool, &str)]) {
    let parsed = parse_percent_format(spec);
    assert_eq!(parsed.prefix, prefix, "{spec:?}");
    let got: Vec<(char, usize, bool, &str)> =
        parsed.fields.iter().map(|f| (f.letter, f.width, f.right, f.suffix.as_str())).collect();
    assert_eq!(got, fields, "{spec:?}");
}

#[test]
fn percent_formats() {
    check_format(
        "%.18i %.9P %.8j %.8u %.2t %.10M %.6D %R",
        "",
        &[
            ('i', 18, true, " "),
            ('P', 9, true, " "),
            ('j', 8, true, " "),
            ('u', 8, true, " "),
            ('t', 2, true, " "),
            ('M', 10, true, " "),
            ('D', 6, true, " "),
            ('R', 0, false, ""),
        ],
    );
    check_format("%i,%t", "", &[('i', 0, false, ","), ('t', 0, false, "")]);
    check_format("id=%i", "id=", &[('i', 0, false, "")]);
    check_format("%-10i|", "", &[('-', 0, false, "10i|")]); // squeue has no '-' flag
    check_format("%10i", "", &[('i', 10, false, "")]);
    check_format("%#P %N", "", &[('P', usize::MAX, false, " "), ('N', 0, false, "")]);
    check_format("%%i", "", &[('i', 0, false, "")]); // strtok drops the empty piece
    check_format("no fields", "no fields", &[]);
    check_format("%.", "", &[('\0', 0, true, "")]);
}

#[test]
fn durations() {
    for (secs, expected) in [
        (0, "0:00"),
        (5, "0:05"),
        (65, "1:05"),
        (3600, "1:00:00"),
        (3661, "1:01:01"),
        (86_400 + 3 * 3600 + 4 * 60 + 5, "1-03:04:05"),
        (-1, "INVALID"),
        (400 * 86_400, "INVALID"),
    ] {
        assert_eq!(squeue_secs(secs), expected, "{secs}");
    }
    assert_eq!(clock_secs(0), "00:00:00");
    assert_eq!(clock_secs(3661), "01:01:01");
    assert_eq!(clock_secs(2 * 86_400 + 1), "2-00:00:01");
    assert_eq!(limit_str(None), "UNLIMITED");
    assert_eq!(limit_str(Some(1800)), "00:30:00");
}

#[test]
fn times() {
    assert_eq!(iso_time(NOW), "2026-11-23T09:40:00");
    assert_eq!(iso_time(Timestamp(0)), "1970-01-01T00:00:00");
    assert_eq!(time_or(None, "Unknown"), "Unknown");
    assert_eq!(date_line(NOW), "Mon Nov 23 09:40:00 2026");
    assert_eq!(date_line(Timestamp(0)), "Thu Jan  1 00:00:00 1970");
}

#[test]
fn exit_codes_and_ids() {
    let mut j = job(7);
    assert_eq!(exit_code_str(&j), "0:0");
    j.exit_code = Some(2);
    assert_eq!(exit_code_str(&j), "2:0");
    j.exit_code = Some(0);
    j.signal = Some(9);
    assert_eq!(exit_code_str(&j), "0:9");
    assert_eq!(job_id_str(&j), "7");
    j.array_job_id = Some(5);
    j.array_task_id = Some(2);
    assert_eq!(job_id_str(&j), "5_2");
}

#[test]
fn sizes() {
    assert_eq!(mem_str(128, 1), "128M");
    assert_eq!(mem_str(4096, 1), "4G");
    assert_eq!(mem_str(1536, 1), "1.50G");
    assert_eq!(mem_str(2156, 0), "2.11M");
    assert_eq!(mem_str(0, 0), "0K");
    assert_eq!(mem_str_exact(162_000, 1), "162000M");
    assert_eq!(mem_str_exact(4096, 1), "4G");
    assert_eq!(mem_str_exact(1536, 1), "1536M");
    assert_eq!(mem_str_exact(1 << 20, 1), "1T");
}

fn check_states(list: &str, expected: Result<StateFilter, &str>) {
    assert_eq!(parse_states(list), expected.map_err(String::from), "{list:?}");
}

#[test]
fn state_lists() {
    use SlurmJobState::*;
    check_states("all", Ok(StateFilter::All));
    check_states("ALL", Ok(StateFilter::All));
    check_states("PD,R", Ok(StateFilter::Some(vec![Pending, Running])));
    check_states("pending,running,cg", Ok(StateFilter::Some(vec![Pending, Running, Completing])));
    check_states("CD,F,CA,TO,NF", Ok(StateFilter::Some(vec![Completed, Failed, Cancelled, Timeout, NodeFail])));
    check_states("PD,R,CG,CF,S", Ok(StateFilter::Some(vec![Pending, Running, Completing]))); // CF, S: never ours
    check_states(
        "bogus",
        Err("Invalid job state specified: bogus\nValid job states include: PENDING,RUNNING,COMPLETED,FAILED,\
             CANCELLED,TIMEOUT,NODE_FAIL,COMPLETING,SUSPENDED,BOOT_FAIL,DEADLINE,OUT_OF_MEMORY,PREEMPTED,\
             CONFIGURING,RESIZING,REQUEUED,REQUEUE_FED,REQUEUE_HOLD,REVOKED,SPECIAL_EXIT"),
    );
    assert!(StateFilter::Some(vec![Pending]).matches(Pending));
    assert!(!StateFilter::Some(vec![Pending]).matches(Running));
}

#[test]
fn job_id_lists() {
    let ids = parse_job_ids("12,13_2,14.batch").unwrap();
    assert_eq!(
        ids,
        vec![JobIdSpec { id: 12, task: None }, JobIdSpec { id: 13, task: Some(2) }, JobIdSpec { id: 14, task: None }]
    );
    assert_eq!(parse_job_ids("x"), Err("Invalid job id: x".into()));
    assert_eq!(parse_job_ids("0"), Err("Invalid job id: 0".into()));
    assert_eq!(parse_job_ids("5_x"), Err("Invalid job id: 5_x".into()));
    let mut element = job(21);
    element.array_job_id = Some(20);
    element.array_task_id = Some(1);
    assert!(JobIdSpec { id: 20, task: None }.matches(&element));
    assert!(JobIdSpec { id: 21, task: None }.matches(&element));
    assert!(JobIdSpec { id: 20, task: Some(1) }.matches(&element));
    assert!(!JobIdSpec { id: 20, task: Some(2) }.matches(&element));
}

#[test]
fn users() {
    let j = job(1);
    assert!(user_matches(&["alice".into()], &j));
    assert!(user_matches(&["bob".into(), "1000".into()], &j));
    assert!(!user_matches(&["bob".into()], &j));
}

#[test]
fn options_anywhere() {
    use crate::getopt::{HasArg, OptDef};
    let table = [
        OptDef { long: "noheader", short: Some('h'), has_arg: HasArg::No, key: 1 },
        OptDef { long: "jobs", short: Some('j'), has_arg: HasArg::Required, key: 2 },
    ];
    let args: Vec<String> = ["a", "-h", "b", "-j", "5", "--", "-h"].iter().map(|s| s.to_string()).collect();
    let (found, words) = scan_permuted(&args, &table).unwrap();
    assert_eq!(found.iter().map(|f| f.key).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(words, vec!["a", "b", "-h"]);
    let err = usage_error("squeue", &scan_permuted(&["--foo".to_string()], &table).unwrap_err());
    assert_eq!(err.stderr, "squeue: unrecognized option '--foo'\nTry \"squeue --help\" for more information\n");
    assert_eq!(err.code, 1);
}

proptest::proptest! {
    /// Any spec built from fields parses back to the same letters, widths and justification.
    #[test]
    fn percent_specs_round_trip(fields in proptest::collection::vec(
        (proptest::sample::select(vec!['i', 'j', 'P', 'u', 't', 'T', 'M', 'D', 'R', 'N', 'l']),
         0usize..300, proptest::bool::ANY, "[ ,|:a-z]{0,3}"), 0..8),
        prefix in "[a-z =]{0,4}")
    {
        let mut spec = prefix.clone();
        for (letter, width, right, suffix) in &fields {
            spec.push('%');
            if *right { spec.push('.'); }
            if *width > 0 { spec.push_str(&width.to_string()); }
            spec.push(*letter);
            spec.push_str(suffix);
        }
        let parsed = parse_percent_format(&spec);
        proptest::prop_assert_eq!(&parsed.prefix, &prefix);
        let got: Vec<(char, usize, bool, String)> =
            parsed.fields.into_iter().map(|f| (f.letter, f.width, f.right, f.suffix)).collect();
        let want: Vec<(char, usize, bool, String)> = fields;
        proptest::prop_assert_eq!(got, want);
    }

    /// Padding gives at least the width, and exactly the width whenever it cuts.
    #[test]
    fn padding_widths(value in ".{0,30}", width in 0usize..40, right in proptest::bool::ANY, cut in proptest::bool::ANY) {
        let out = pad(&value, width, right, cut);
        let n = out.chars().count();
        proptest::prop_assert!(n >= width.min(MAX_WIDTH));
        if width > 0 && (cut || !right) {
            proptest::prop_assert_eq!(n, width);
        }
    }

    #[test]
    fn parsers_never_panic(s in ".{0,40}") {
        let _ = parse_percent_format(&s);
        let _ = parse_states(&s);
        let _ = parse_job_ids(&s);
    }
}
