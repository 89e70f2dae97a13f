//! sbatch options from `#SBATCH` lines and the command line, resolved into a job description:
//! one `check` per behaviour, many cases.

use gangway_slurm::{resolve_command_line, resolve_source, split_command_line, CommandLine, Resolved};
use serde_json::{json, Value};

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// A script with the given `#SBATCH` (or other) lines, then a command.
fn script(lines: &str) -> String {
    format!("#!/bin/bash\n{lines}\nsrun hostname\n")
}

fn resolve(lines: &str, args: &[&str]) -> Result<Resolved, String> {
    resolve_source(Some(("job.sh", &script(lines))), &strings(args)).map_err(|e| e.render("sbatch"))
}

fn job(lines: &str, args: &[&str]) -> Resolved {
    resolve(lines, args).unwrap_or_else(|e| panic!("lines {lines:?} args {args:?}: {e}"))
}

/// Checks one key of the `parse` JSON.
fn check(lines: &str, args: &[&str], key: &str, expected: Value) {
    let value = serde_json::to_value(job(lines, args)).unwrap();
    assert_eq!(value[key], expected, "key {key}, lines {lines:?}, args {args:?}");
}

fn check_err(lines: &str, args: &[&str], expected: &str) {
    match resolve(lines, args) {
        Ok(job) => panic!("lines {lines:?} args {args:?} should fail, got {job:?}"),
        Err(e) => assert_eq!(e, expected, "lines {lines:?} args {args:?}"),
    }
}

#[test]
fn json_has_exactly_the_documented_keys() {
    let value = serde_json::to_value(job("", &[])).unwrap();
    let mut keys: Vec<&str> = value.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "account",
            "array",
            "chdir",
            "constraint",
            "cpus_per_task",
            "dependencies",
            "error",
            "exclusive",
            "export",
            "gpus",
            "mem_mb",
            "name",
            "nodes",
            "ntasks",
            "ntasks_per_node",
            "output",
            "partition",
            "qos",
            "time_limit_s",
            "warnings"
        ]
    );
    assert_eq!(
        value,
        json!({
            "nodes": {"min": 1, "max": null}, "ntasks": 1, "ntasks_per_node": null, "cpus_per_task": 1,
            "gpus": null, "mem_mb": null, "time_limit_s": null, "name": "job.sh",
            "output": "slurm-%j.out", "error": "slurm-%j.out", "array": null, "dependencies": null,
            "partition": null, "account": null, "qos": null, "constraint": null, "exclusive": false,
            "export": {"mode": "all", "vars": []}, "chdir": null, "warnings": []
        })
    );
}

#[test]
fn every_option_form() {
    // --opt=value, --opt value, -Xvalue, -X value, from the command line and from #SBATCH.
    for args in [&["--nodes=2"][..], &["--nodes", "2"], &["-N2"], &["-N", "2"]] {
        check("", args, "nodes", json!({"min": 2, "max": 2}));
        check(&format!("#SBATCH {}", args.join(" ")), &[], "nodes", json!({"min": 2, "max": 2}));
    }
    for args in [&["--ntasks=4"][..], &["--ntasks", "4"], &["-n4"], &["-n", "4"]] {
        check("", args, "ntasks", json!(4));
    }
    for args in [&["--cpus-per-task=8"][..], &["-c8"], &["-c", "8"]] {
        check("", args, "cpus_per_task", json!(8));
    }
    check("", &["-Hv", "-N2"], "nodes", json!({"min": 2, "max": 2}));
    check("", &["--ntasks-per-n=2"], "ntasks_per_node", json!(2)); // getopt abbreviation
}

#[test]
fn nodes_and_tasks() {
    check("#SBATCH -N 2-4", &[], "nodes", json!({"min": 2, "max": 4}));
    check("#SBATCH -N 2-", &[], "nodes", json!({"min": 2, "max": null}));
    check("#SBATCH -N 4\n#SBATCH --ntasks-per-node=2", &[], "ntasks", json!(8));
    check("#SBATCH -n 10\n#SBATCH --ntasks-per-node=4", &[], "nodes", json!({"min": 3, "max": null}));
    check("#SBATCH --tasks-per-node=3", &[], "ntasks_per_node", json!(3));
    // `-N` alone: one task per node (Slurm's NumTasks=2, 3); nothing: one task.
    check("#SBATCH -N 2", &[], "ntasks", json!(2));
    check("#SBATCH -N 3 -c 30", &[], "ntasks", json!(3));
    check("#SBATCH -N 2 -c 2 --gpus-per-node 4", &[], "ntasks", json!(2));
    check("", &[], "ntasks", json!(1));
    // Fewer tasks than nodes: as many nodes as tasks, at most (Slurm's NumNodes=2-2).
    let job = job("#SBATCH -N 4 -n 2", &[]);
    assert_eq!((job.nodes.min, job.nodes.max), (2, Some(2)));
    assert!(job.warnings.iter().any(|w| w.contains("can't run 2 processes on 4 nodes")), "{:?}", job.warnings);
}

#[test]
fn time_limits() {
    for (t, secs) in [
        ("10", json!(600)),
        ("1:30", json!(120)),
        ("2:00:00", json!(7200)),
        ("1-0", json!(86_400)),
        ("1-2:30", json!(95_400)),
        ("1-02:30:00", json!(95_400)),
        ("UNLIMITED", json!(null)),
        ("infinite", json!(null)),
        ("0", json!(null)),
    ] {
        check(&format!("#SBATCH --time={t}"), &[], "time_limit_s", secs.clone());
        check("", &["-t", t], "time_limit_s", secs);
    }
}

#[test]
fn memory() {
    check("#SBATCH --mem=4G", &[], "mem_mb", json!({"per_node": 4096, "per_cpu": null}));
    check("#SBATCH --mem=500", &[], "mem_mb", json!({"per_node": 500, "per_cpu": null}));
    check("#SBATCH --mem=2T", &[], "mem_mb", json!({"per_node": 2_097_152, "per_cpu": null}));
    check("#SBATCH --mem=1024K", &[], "mem_mb", json!({"per_node": 1, "per_cpu": null}));
    check("#SBATCH --mem=16gb", &[], "mem_mb", json!({"per_node": 16_384, "per_cpu": null}));
    check("", &["--mem-per-cpu=2000M"], "mem_mb", json!({"per_node": null, "per_cpu": 2000}));
    check("", &["--mem-per-gpu=8G"], "mem_mb", json!({"per_node": null, "per_cpu": null, "per_gpu": 8192}));
    check("#SBATCH --cpus-per-gpu=6", &[], "cpus_per_gpu", json!(6));
    check_err(
        "#SBATCH --mem=4G",
        &["--mem-per-cpu=1G"],
        "sbatch: fatal: --mem, --mem-per-cpu, and --mem-per-gpu are mutually exclusive.",
    );
    check_err("#SBATCH --mem=lots", &[], "sbatch: error: Invalid --mem specification");
}

#[test]
fn gpus() {
    let g = |per_job: Value, per_node: Value, per_task: Value, t: Value| json!({"per_job": per_job, "per_node": per_node, "per_task": per_task, "type": t});
    check("#SBATCH --gres=gpu:2", &[], "gpus", g(json!(null), json!(2), json!(null), json!(null)));
    check("#SBATCH --gres=gpu:a100:4", &[], "gpus", g(json!(null), json!(4), json!(null), json!("a100")));
    check("#SBATCH --gres=gpu:v100:1,mps:50", &[], "gpus", g(json!(null), json!(1), json!(null), json!("v100")));
    check("#SBATCH -G 8", &[], "gpus", g(json!(8), json!(null), json!(null), json!(null)));
    check("#SBATCH --gpus=h100:8", &[], "gpus", g(json!(8), json!(null), json!(null), json!("h100")));
    check("#SBATCH --gpus-per-node=4", &[], "gpus", g(json!(null), json!(4), json!(null), json!(null)));
    check("#SBATCH --gpus-per-task=a100:1", &[], "gpus", g(json!(null), json!(null), json!(1), json!("a100")));
    check(
        "#SBATCH --gres=gpu:2\n#SBATCH --gpus-per-task=1",
        &[],
        "gpus",
        g(json!(null), json!(2), json!(1), json!(null)),
    );
    check("#SBATCH --gres=gpu:2", &["--gres=none"], "gpus", json!(null));
    let job = job("#SBATCH --gres=shard:2", &[]);
    assert_eq!(job.gpus, None);
    assert!(job.warnings.iter().any(|w| w.contains("--gres=shard")), "{:?}", job.warnings);
    check_err(
        "#SBATCH --gpus=a100:1\n#SBATCH --gpus-per-task=v100:1",
        &[],
        "sbatch: error: Invalid generic resource (gres) specification",
    );
    check_err("#SBATCH --gres=gpu:x:y:z", &[], "sbatch: error: Invalid generic resource (gres) specification");
    check_err("#SBATCH --gpus=0", &[], "sbatch: error: Invalid generic resource (gres) specification");
}

#[test]
fn names_and_files() {
    check("#SBATCH -J train", &[], "name", json!("train"));
    check("#SBATCH --job-name=\"my job\"", &[], "name", json!("my job"));
    check("#SBATCH -o out-%j.txt", &[], "output", json!("out-%j.txt"));
    check("#SBATCH -o out-%j.txt", &[], "error", json!("out-%j.txt"));
    check("#SBATCH -o o.txt\n#SBATCH -e e.txt", &[], "error", json!("e.txt"));
    check("#SBATCH --output=none", &[], "output", json!("/dev/null"));
    check("#SBATCH --array=1-4", &[], "output", json!("slurm-%A_%a.out"));
    check("#SBATCH -D /scratch/run", &[], "chdir", json!("/scratch/run"));
    check("#SBATCH --chdir=sub", &[], "chdir", json!("sub"));
}

#[test]
fn scheduling_fields() {
    check("#SBATCH -p gpu", &[], "partition", json!("gpu"));
    check("#SBATCH --partition=a,b", &[], "partition", json!("a,b"));
    check("#SBATCH -A proj1", &[], "account", json!("proj1"));
    check("#SBATCH --qos=high", &[], "qos", json!("high"));
    check("#SBATCH -C \"haswell&ib\"", &[], "constraint", json!("haswell&ib"));
    check("#SBATCH --exclusive", &[], "exclusive", json!(true));
    check("#SBATCH --exclusive", &["--exclusive=oversubscribe"], "exclusive", json!(false));
    check("", &[], "exclusive", json!(false));
    let job = job("#SBATCH --exclusive=user", &[]);
    assert!(!job.exclusive && job.warnings.iter().any(|w| w.contains("--exclusive=user")));
    check_err("#SBATCH --exclusive=yes", &[], "sbatch: error: Invalid --exclusive specification");
}

#[test]
fn arrays_and_dependencies() {
    check("#SBATCH -a 1-10:2%2", &[], "array", json!({"indices": [1, 3, 5, 7, 9], "max_running": 2}));
    check("#SBATCH --array=0,4,8", &[], "array", json!({"indices": [0, 4, 8], "max_running": null}));
    check(
        "#SBATCH -d afterok:12:13,afterany:14_2",
        &[],
        "dependencies",
        json!({"combine": "all", "conditions": [
            {"type": "afterok", "job": "12", "delay_minutes": null},
            {"type": "afterok", "job": "13", "delay_minutes": null},
            {"type": "afterany", "job": "14_2", "delay_minutes": null},
        ]}),
    );
    check(
        "",
        &["--dependency=after:5+10?singleton"],
        "dependencies",
        json!({"combine": "any", "conditions": [
            {"type": "after", "job": "5", "delay_minutes": 10}, {"type": "singleton"}
        ]}),
    );
    for (args, kill) in
        [(&[][..], false), (&["--kill-on-invalid-dep=yes"][..], true), (&["--kill-on-invalid-dep=NO"][..], false)]
    {
        assert_eq!(job("#SBATCH -d afterok:12", args).submit.kill_on_invalid_dep, kill, "{args:?}");
    }
    // The controller checks the final value: a bad #SBATCH --array overridden is fine.
    check("#SBATCH --array=5-1", &["--array=1-2"], "array", json!({"indices": [1, 2], "max_running": null}));
}

#[test]
fn export() {
    check("#SBATCH --export=NONE", &[], "export", json!({"mode": "none", "vars": []}));
    check(
        "#SBATCH --export=ALL,OMP_NUM_THREADS=4",
        &[],
        "export",
        json!({"mode": "all", "vars": [{"name": "OMP_NUM_THREADS", "value": "4"}]}),
    );
    check(
        "",
        &["--export=A=1,B"],
        "export",
        json!({"mode": "none", "vars": [{"name": "A", "value": "1"}, {"name": "B", "value": null}]}),
    );
    check_err("#SBATCH --export=", &[], "sbatch: error: Invalid --export specification");
}

#[test]
fn submit_behaviour_is_recorded() {
    let job = job(
        "#SBATCH --mail-type=END,FAIL\n#SBATCH --mail-user=a@b.c\n#SBATCH --hold\n#SBATCH --signal=B:USR1@90\n\
         #SBATCH --requeue\n#SBATCH --begin=now+1hour",
        &["--parsable", "-W", "--test-only", "--switches=1@10:00", "--hint=nomultithread", "--no-requeue"],
    );
    let s = &job.submit;
    assert_eq!((s.parsable, s.wait, s.test_only, s.hold), (true, true, true, true));
    assert_eq!(s.mail_types, ["END", "FAIL"]);
    assert_eq!(s.mail_user.as_deref(), Some("a@b.c"));
    assert_eq!(s.signal.map(|sig| (sig.signal, sig.seconds_before, sig.batch_only)), Some((10, 90, true)));
    assert_eq!(s.requeue, Some(false), "the command line wins");
    assert_eq!(s.switches.map(|sw| (sw.count, sw.max_wait_secs)), Some((1, Some(600))));
    assert_eq!(s.begin, Some(gangway_slurm::begin::BeginTime::Relative(3600)));
    assert_eq!(s.threads_per_core, Some(1), "--hint=nomultithread: one thread per core");
    for option in ["--mail-type", "--mail-user", "--signal", "--requeue", "--no-requeue", "--switches"] {
        assert!(job.warnings.iter().any(|w| w.starts_with(option)), "no warning for {option}: {:?}", job.warnings);
    }
    // The head holds a job until its begin time: nothing to warn about.
    assert!(!job.warnings.iter().any(|w| w.starts_with("--begin")), "{:?}", job.warnings);
}

#[test]
fn ignored_options_warn() {
    let ignored = job("#SBATCH --nodelist=n[1-2]\n#SBATCH --comment=x\n#SBATCH --contiguous\n#SBATCH -x n3", &[]);
    for option in ["--nodelist", "--contiguous", "--exclude"] {
        let want = format!("{option} is accepted but ignored");
        assert!(ignored.warnings.contains(&want), "{option}: {:?}", ignored.warnings);
    }
    // --comment is kept (squeue %k shows it).
    assert_eq!(ignored.submit.comment.as_deref(), Some("x"));
    assert!(!ignored.warnings.iter().any(|w| w.starts_with("--comment")), "{:?}", ignored.warnings);
    let quiet = job("#SBATCH -v\n#SBATCH --quiet", &[]);
    assert!(quiet.warnings.is_empty(), "{:?}", quiet.warnings);
}

#[test]
fn command_line_wins_and_directives_stop_at_the_first_command() {
    check("#SBATCH -N 2\n#SBATCH -J a", &["-N", "3"], "nodes", json!({"min": 3, "max": 3}));
    check("#SBATCH -J a", &["-J", "b"], "name", json!("b"));
    check("#SBATCH -J a\n#SBATCH -J b", &[], "name", json!("b"));
    check("#SBATCH -J a\nmodule load x\n#SBATCH -J b", &[], "name", json!("a"));
    check("# comment\n\n#SBATCH -J a\n  \n#SBATCH -J c", &[], "name", json!("c"));
    check(" #SBATCH -J indented", &[], "name", json!("job.sh"));
    // A directive's words continue on the next #SBATCH line, as one command line.
    check("#SBATCH -J\n#SBATCH split", &[], "name", json!("split"));
}

#[test]
fn script_arguments_and_wrap() {
    let job = job("", &["-N1", "in.dat", "-n", "5"]);
    assert_eq!(job.submit.script_args, ["in.dat", "-n", "5"]);
    assert_eq!(job.ntasks, 1, "words after the first non-option belong to the script");

    let argv = strings(&["-N2", "run.sh", "x", "--y"]);
    let job = resolve_command_line(&argv, |path| {
        assert_eq!(path, "run.sh");
        Ok(script("#SBATCH -J fromfile"))
    })
    .unwrap();
    assert_eq!((job.name.as_str(), job.nodes.min), ("fromfile", 2));
    assert_eq!(job.submit.script_args, ["x", "--y"]);

    let job = resolve_source(None, &strings(&["--wrap=hostname", "-N2"])).unwrap();
    assert_eq!((job.name.as_str(), job.nodes.min, job.output.as_str()), ("wrap", 2, "slurm-%j.out"));
    assert_eq!(job.submit.wrap.as_deref(), Some("hostname"));
    assert!(job.submit.script.starts_with("#!/bin/sh\n") && job.submit.script.ends_with("\nhostname\n"));

    let err = resolve_command_line(&strings(&["--wrap=true", "run.sh"]), |_| unreachable!()).unwrap_err();
    assert_eq!(err.render("sbatch"), "sbatch: error: Script arguments not permitted with --wrap option");
    let err = resolve_source(None, &[]).unwrap_err();
    assert!(err.render("sbatch").contains("no batch script"));
}

#[test]
fn unknown_options_fail_like_slurm() {
    let hint = "\nTry \"sbatch --help\" for more information";
    check_err("", &["--bogus"], &format!("sbatch: unrecognized option '--bogus'{hint}"));
    check_err("#SBATCH --bogus=1", &[], &format!("sbatch: unrecognized option '--bogus=1'{hint}"));
    check_err("", &["-Z"], &format!("sbatch: invalid option -- 'Z'{hint}"));
    check_err("", &["--time"], &format!("sbatch: option '--time' requires an argument{hint}"));
    check_err("#SBATCH -t", &[], &format!("sbatch: option requires an argument -- 't'{hint}"));
    check_err("", &["--hold=yes"], &format!("sbatch: option '--hold' doesn't allow an argument{hint}"));
    check_err(
        "",
        &["--mem-per=1"],
        &format!("sbatch: option '--mem-per=1' is ambiguous; possibilities: '--mem-per-cpu' '--mem-per-gpu'{hint}"),
    );
}

#[test]
fn malformed_values_fail_like_slurm() {
    for (lines, args, expected) in [
        ("#SBATCH --time=abc", &[][..], "sbatch: error: Invalid --time specification"),
        ("", &["-t", "1:2:3:4"][..], "sbatch: error: Invalid --time specification"),
        ("#SBATCH --nodes=0", &[], "sbatch: error: \"0\" is not a valid node count"),
        ("#SBATCH -N 4-2", &[], "sbatch: error: Maximum node count 2 is less than minimum node count 4"),
        ("#SBATCH --array=5-1", &[], "sbatch: error: Batch job submission failed: Invalid job array specification"),
        // Past Slurm's hard limit; the site's MaxArraySize (1001 by default) is the head's.
        (
            "#SBATCH --array=0-4000001",
            &[],
            "sbatch: error: Batch job submission failed: Invalid job array specification",
        ),
        ("#SBATCH -d afterok:x", &[], "sbatch: error: Batch job submission failed: Job dependency problem"),
        ("#SBATCH --ntasks=0", &[], "sbatch: error: Invalid numeric value \"0\" for --ntasks."),
        ("#SBATCH -c two", &[], "sbatch: error: Invalid numeric value \"two\" for --cpus-per-task."),
        ("#SBATCH --begin=later", &[], "sbatch: error: Invalid --begin specification"),
        ("#SBATCH --signal=FOO", &[], "sbatch: error: Invalid --signal specification"),
        ("#SBATCH --kill-on-invalid-dep=maybe", &[], "sbatch: error: Invalid --kill-on-invalid-dep specification"),
        ("#SBATCH --mail-type=SOMETIMES", &[], "sbatch: error: Invalid --mail-type specification"),
        ("#SBATCH --hint=fast", &[], "sbatch: error: unrecognized --hint argument \"fast\", see --hint=help"),
        ("#SBATCH -J my job", &[], "sbatch: error: Invalid directive found in batch script: job"),
        ("#SBATCH -J 'oops", &[], "sbatch: fatal: job.sh: line 2: Unmatched `'` in [#SBATCH -J 'oops]"),
        (
            "#SBATCH --exclusive",
            &["-s"],
            "sbatch: fatal: --exclusive and --oversubscribe options are mutually exclusive",
        ),
    ] {
        check_err(lines, args, expected);
    }
    // Slurm checks --time as it reads it: a bad #SBATCH value fails even when overridden.
    check_err("#SBATCH --time=abc", &["--time=10"], "sbatch: error: Invalid --time specification");
}

#[test]
fn scripts_sbatch_refuses() {
    let err = |text: &str| resolve_source(Some(("j.sh", text)), &[]).unwrap_err().render("sbatch");
    assert_eq!(err(""), "sbatch: error: Batch script is empty!");
    assert!(err("echo hi\n").starts_with("sbatch: error: This does not look like a batch script."));
    assert!(err("#!/bin/sh\r\necho\r\n").contains("DOS line breaks"));
    assert!(err("#!/bin/sh\n#SBATCH -N1\n#SBATCH hetjob\n").contains("heterogeneous"));
}

#[test]
fn default_name_is_the_file_name() {
    let job = resolve_source(Some(("/home/u/runs/train.sbatch", &script(""))), &[]).unwrap();
    assert_eq!(job.name, "train.sbatch");
}

#[test]
fn splitting_a_command_line() {
    let split = split_command_line(&strings(&["-N", "2", "--hold", "job.sh", "-N", "3"])).unwrap();
    assert_eq!(
        split,
        CommandLine {
            options: strings(&["-N", "2", "--hold"]),
            script: Some("job.sh".into()),
            script_args: strings(&["-N", "3"])
        }
    );
    let split = split_command_line(&strings(&["--wrap", "echo hi"])).unwrap();
    assert_eq!((split.options.len(), split.script), (2, None));
}
