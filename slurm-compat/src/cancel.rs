//! `scancel`: job ids (`N`, array elements `N_i`, `N_[1-3,5]`, comma lists) and the `-u`,
//! `-n`, `-t`, `-p` filters, and `-s`/`--signal` (send a signal to running jobs instead of
//! cancelling them), sent to the head in one request. Silent on success, as scancel is.

use std::process::ExitCode;

use gangway_api::slurm::{SlurmCancel, SlurmJobState};

use crate::cluster;

const USAGE: &str = "Usage: scancel [OPTIONS] [job_id[_array_id][,...]]";

/// Runs `scancel ARGS…`.
pub fn main(args: &[String]) -> ExitCode {
    let req = match parse(args) {
        Ok(r) => r,
        Err(msg) if msg.starts_with("unrecognized option") || msg.starts_with("option '") => {
            gangway_api::errln!("scancel: {msg}\nTry \"scancel --help\" for more information");
            return ExitCode::FAILURE;
        }
        Err(msg) => {
            gangway_api::errln!("scancel: error: {msg}");
            gangway_api::errln!("{USAGE}");
            return ExitCode::FAILURE;
        }
    };
    if req.jobs.is_empty()
        && req.user.is_none()
        && req.name.is_none()
        && req.states.is_empty()
        && req.partition.is_none()
    {
        gangway_api::errln!("scancel: error: No job identification provided");
        return ExitCode::FAILURE;
    }
    let mut client = match cluster::connect("scancel") {
        Ok(c) => c,
        Err(msg) => {
            gangway_api::errln!("{msg}");
            return ExitCode::FAILURE;
        }
    };
    match client.slurm_cancel(&req) {
        Ok(done) => {
            let mut failed = false;
            for id in &done.invalid {
                gangway_api::errln!("scancel: error: Kill job error on job id {id}: Invalid job id specified");
                failed = true;
            }
            // Slurm complains about ended jobs only when they were named, not filtered for.
            for id in done.finished.iter().filter(|id| named(&req.jobs, **id)) {
                gangway_api::errln!(
                    "scancel: error: Kill job error on job id {id}: Job/step already completing or completed"
                );
                failed = true;
            }
            for id in &done.denied {
                gangway_api::errln!("scancel: error: Kill job error on job id {id}: Access/permission denied");
                failed = true;
            }
            // Slurm signals only running jobs; a pending one is an error and stays pending.
            for id in &done.pending {
                gangway_api::errln!("scancel: error: Kill job error on job id {id}: Job is pending execution");
                failed = true;
            }
            if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            gangway_api::errln!("scancel: error: {}", cluster::message(&e));
            ExitCode::FAILURE
        }
    }
}

fn named(jobs: &[String], id: u64) -> bool {
    jobs.iter().any(|j| j.parse::<u64>() == Ok(id))
}

/// The request an scancel command line asks for.
pub fn parse(args: &[String]) -> Result<SlurmCancel, String> {
    let mut req = SlurmCancel::default();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        if !arg.starts_with('-') || arg == "-" {
            req.jobs.extend(job_ids(arg)?);
            continue;
        }
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if arg.starts_with("--") => (n.to_owned(), Some(v.to_owned())),
            _ if !arg.starts_with("--") && arg.len() > 2 => (arg[..2].to_owned(), Some(arg[2..].to_owned())),
            _ => (arg.clone(), None),
        };
        let takes_value = matches!(
            name.as_str(),
            "-u" | "--user"
                | "-n"
                | "--name"
                | "--jobname"
                | "-t"
                | "--state"
                | "-p"
                | "--partition"
                | "-s"
                | "--signal"
                | "-A"
                | "--account"
                | "-q"
                | "--qos"
                | "-M"
                | "--clusters"
                | "-w"
                | "--nodelist"
                | "--reservation"
                | "-R"
                | "--wckey"
        );
        let mut value = || -> Result<String, String> {
            if let Some(v) = inline.clone() {
                return Ok(v);
            }
            let v = args.get(i).cloned().ok_or_else(|| format!("option {name} requires an argument"))?;
            i += 1;
            Ok(v)
        };
        match name.as_str() {
            "-u" | "--user" => req.user = Some(value()?),
            "-n" | "--name" | "--jobname" => req.name = Some(value()?),
            "-p" | "--partition" => req.partition = Some(value()?),
            "-t" | "--state" => {
                for s in value()?.split(',') {
                    req.states.push(state(s)?);
                }
            }
            "-s" | "--signal" => {
                let v = value()?;
                req.signal = Some(signal_number(&v).ok_or_else(|| format!("Unknown job signal: {v}"))?);
            }
            "-b" | "--batch" | "-f" | "--full" | "-Q" | "--quiet" | "-v" | "--verbose" | "-i" | "--interactive" => {
                if inline.is_some() && !arg.starts_with("--") {
                    return Err(format!("invalid option -- '{}'", &arg[1..]));
                }
            }
            _ if takes_value => {
                let _ = value()?;
                return Err(format!("{name} is not supported by gangway"));
            }
            _ => return Err(format!("unrecognized option '{arg}'")),
        }
    }
    Ok(req)
}

/// Signal names as Slurm's `sig_name2num` reads them (any case, with or without `SIG`).
const SIGNALS: &[(&str, i32)] = &[
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ABRT", libc::SIGABRT),
    ("KILL", libc::SIGKILL),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("USR1", libc::SIGUSR1),
    ("USR2", libc::SIGUSR2),
    ("URG", libc::SIGURG),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("XCPU", libc::SIGXCPU),
    ("PIPE", libc::SIGPIPE),
    ("WINCH", libc::SIGWINCH),
];

/// `--signal`'s value: a name (`USR1`, `SIGUSR1`, `usr1`) or a number (`10`); None when
/// it is neither (scancel then sends nothing).
pub fn signal_number(s: &str) -> Option<i32> {
    let s = s.trim();
    if let Ok(n) = s.parse::<i32>() {
        // 0 would only probe; numbers past SIGRTMAX name no signal.
        return (1..=libc::SIGRTMAX()).contains(&n).then_some(n);
    }
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    SIGNALS.iter().find(|(n, _)| *n == name).map(|&(_, v)| v)
}

/// `12`, `12_3`, `12_[1-3,5]` and comma lists of them, as the head takes ids (`N` or `N_i`).
fn job_ids(word: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    // Commas inside brackets belong to the array list.
    let mut depth = 0;
    let mut start = 0;
    let mut parts = Vec::new();
    for (k, c) in word.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&word[start..k]);
                start = k + 1;
            }
            _ => {}
        }
    }
    parts.push(&word[start..]);
    for part in parts.into_iter().filter(|p| !p.is_empty()) {
        let bad = || format!("Invalid job id {part}");
        match part.split_once('_') {
            None => {
                part.parse::<u64>().map_err(|_| bad())?;
                out.push(part.to_owned());
            }
            Some((id, tasks)) => {
                id.parse::<u64>().map_err(|_| bad())?;
                let tasks = tasks.strip_prefix('[').and_then(|t| t.strip_suffix(']')).unwrap_or(tasks);
                for range in tasks.split(',') {
                    let (a, b) = range.split_once('-').unwrap_or((range, range));
                    let (a, b): (u32, u32) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
                    if b < a || b - a > 1_000_000 {
                        return Err(bad());
                    }
                    out.extend((a..=b).map(|t| format!("{id}_{t}")));
                }
            }
        }
    }
    Ok(out)
}

/// A state as `-t` takes it (long or compact name, any case).
fn state(s: &str) -> Result<SlurmJobState, String> {
    Ok(match s.to_ascii_uppercase().as_str() {
        "PENDING" | "PD" => SlurmJobState::Pending,
        "RUNNING" | "R" => SlurmJobState::Running,
        "COMPLETING" | "CG" => SlurmJobState::Completing,
        "COMPLETED" | "CD" => SlurmJobState::Completed,
        "FAILED" | "F" => SlurmJobState::Failed,
        "CANCELLED" | "CA" => SlurmJobState::Cancelled,
        "TIMEOUT" | "TO" => SlurmJobState::Timeout,
        "NODE_FAIL" | "NF" => SlurmJobState::NodeFail,
        _ => return Err(format!("Invalid job state specified: {s}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn ids_and_filters() {
        let r = parse(&args("12 13_2,14_[1-3,5] -u alice --name=x -tPD,R")).unwrap();
        assert_eq!(r.jobs, ["12", "13_2", "14_1", "14_2", "14_3", "14_5"]);
        assert_eq!((r.user.as_deref(), r.name.as_deref()), (Some("alice"), Some("x")));
        assert_eq!(r.states, [SlurmJobState::Pending, SlurmJobState::Running]);
    }

    fn check_signal(word: &str, expected: Option<i32>) {
        assert_eq!(signal_number(word), expected, "{word}");
    }

    #[test]
    fn signal_names_and_numbers() {
        check_signal("USR1", Some(libc::SIGUSR1));
        check_signal("SIGUSR1", Some(libc::SIGUSR1));
        check_signal("usr2", Some(libc::SIGUSR2));
        check_signal("SigTerm", Some(libc::SIGTERM));
        check_signal("KILL", Some(9));
        check_signal("10", Some(10));
        check_signal("9", Some(9));
        for bad in ["", "0", "-1", "65", "USR3", "SIG", "SIGSIGUSR1", "1x", "USR1 2"] {
            check_signal(bad, None);
        }
        let r = parse(&args("-s USR1 12")).unwrap();
        assert_eq!((r.signal, r.jobs.as_slice()), (Some(libc::SIGUSR1), ["12".to_owned()].as_slice()));
        assert_eq!(parse(&args("--signal=SIGTERM 12")).unwrap().signal, Some(libc::SIGTERM));
        assert_eq!(parse(&args("-sHUP 12")).unwrap().signal, Some(libc::SIGHUP));
        assert_eq!(parse(&args("-s BOGUS 12")), Err("Unknown job signal: BOGUS".to_owned()));
    }

    #[test]
    fn bad_input_is_refused() {
        for bad in ["x12", "12_", "12_[3-1]", "-t BOGUS", "--frobnicate", "-u"] {
            assert!(parse(&args(bad)).is_err(), "{bad}");
        }
    }
}
