//! `scontrol hold|release|requeue JOBLIST` and `scontrol update JobId=N TimeLimit=…`.

use std::process::ExitCode;

use gangway_api::slurm::SlurmUpdate;

use crate::cluster;
use crate::time::{parse_time_limit, TimeLimit};

/// Whether `scontrol WORD …` is one of the commands here.
pub fn handles(word: &str) -> bool {
    matches!(word.to_ascii_lowercase().as_str(), "hold" | "uhold" | "release" | "requeue" | "update")
}

/// Runs `scontrol hold|release|requeue|update …` (`args` starts with that word).
pub fn main(args: &[String]) -> ExitCode {
    let result = match args.first().map(|w| w.to_ascii_lowercase()).as_deref() {
        Some("hold" | "uhold") => each(&args[1..], "hold"),
        Some("release") => each(&args[1..], "release"),
        Some("requeue") => each(&args[1..], "requeue"),
        Some("update") => update(&args[1..]),
        _ => Err("scontrol: error: expected hold, release, requeue or update".to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            gangway_api::errln!("{msg}");
            ExitCode::FAILURE
        }
    }
}

/// `hold 12,13 14_2`: the action on every job named.
fn each(words: &[String], action: &str) -> Result<(), String> {
    let ids: Vec<&str> = words.iter().flat_map(|w| w.split(',')).filter(|w| !w.is_empty()).collect();
    if ids.is_empty() {
        return Err(format!("scontrol: error: {action}: no job id given"));
    }
    let mut client = cluster::connect("scontrol")?;
    let mut failed = Vec::new();
    for id in ids {
        if let Err(e) = client.slurm_control(id, action) {
            failed.push(format!("{} for job {id}", cluster::message(&e).split(':').next().unwrap_or("error")));
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(failed.join("\n"))
    }
}

/// `update JobId=N TimeLimit=T` (keys in any case; `Job=` for `JobId=`).
fn update(words: &[String]) -> Result<(), String> {
    let mut job = None;
    let mut u = SlurmUpdate::default();
    for w in words {
        let (k, v) = w.split_once('=').ok_or_else(|| format!("scontrol: error: Invalid input: {w}"))?;
        match k.to_ascii_lowercase().as_str() {
            "jobid" | "job" => job = Some(v.to_owned()),
            "timelimit" => match parse_time_limit(v) {
                Ok(TimeLimit::Unlimited) => u.unlimited = true,
                Ok(limit) => u.time_limit_s = limit.as_secs(),
                Err(_) => return Err(format!("scontrol: error: Invalid TimeLimit value: {v}")),
            },
            _ => return Err(format!("scontrol: error: Update of {k} is not supported by gangway (only TimeLimit)")),
        }
    }
    let job = job.ok_or("scontrol: error: No job id specified (JobId=…)")?;
    let mut client = cluster::connect("scontrol")?;
    client
        .slurm_update(&job, &u)
        .map_err(|e| format!("{} for job {job}", cluster::message(&e).split(':').next().unwrap_or("error")))
}
