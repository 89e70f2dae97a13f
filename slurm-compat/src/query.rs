//! The read commands' edge: `squeue`, `sinfo`, `sacct` and `scontrol show job|node|partition`
//! parse their command line, fetch what they print from the head (`GET /slurm/jobs`,
//! `/nodes`, `/pools`) and hand it to the pure formatters ([`crate::queue`],
//! [`crate::info`], [`crate::acct`], [`crate::show`]). The only I/O of those commands is here.
//! So are the environment defaults Slurm's commands read: `SQUEUE_FORMAT`, `SQUEUE_FORMAT2`,
//! `SACCT_FORMAT`, `SINFO_FORMAT`.

use std::io::Write;
use std::process::ExitCode;

use gangway_api::client::Client;
use gangway_api::slurm::SlurmJob;
use gangway_api::{ComputeNode, Pool, Timestamp};

use crate::cluster;
use crate::format::Output;

/// A non-empty environment variable (the `*_FORMAT` defaults users set).
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Writes an [`Output`] and turns its status into the process's.
fn finish(out: Output) -> ExitCode {
    // A closed pipe (`squeue | head -1`) is not an error worth reporting.
    let _ = std::io::stdout().write_all(out.stdout.as_bytes());
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().write_all(out.stderr.as_bytes());
    ExitCode::from(out.code)
}

/// What the head answered with, or the failure as Slurm's command `prog` reports a dead
/// controller (`slurm_load_jobs error: …`).
fn fetch<T>(
    prog: &str,
    what: &str,
    call: impl FnOnce(&mut Client) -> Result<T, gangway_api::client::ClientError>,
) -> Result<T, Output> {
    let mut client = cluster::connect(prog).map_err(Output::fail)?;
    call(&mut client).map_err(|e| Output::fail(format!("{what} error: {}", cluster::message(&e))))
}

fn jobs(prog: &str) -> Result<Vec<SlurmJob>, Output> {
    fetch(prog, "slurm_load_jobs", |c| c.slurm_jobs()).map(|l| l.jobs)
}

/// Partitions, nodes and jobs: what sinfo and `scontrol show node|partition` print from.
type Cluster = (Vec<Pool>, Vec<ComputeNode>, Vec<SlurmJob>);

fn nodes_and_pools(prog: &str) -> Result<Cluster, Output> {
    let pools = fetch(prog, "slurm_load_partitions", |c| c.list_pools())?;
    let nodes = fetch(prog, "slurm_load_node", |c| c.list_nodes(None))?;
    // Node CPU counts use the running jobs; without the Slurm view (an older head) the
    // nodes' busy slots alone decide.
    let jobs = jobs(prog).unwrap_or_default();
    Ok((pools, nodes, jobs))
}

/// `squeue ARGS…`.
pub fn squeue_main(args: &[String]) -> ExitCode {
    let (uid, _) = cluster::ids();
    let mut opts = match crate::queue::parse_squeue_args(args, uid) {
        Ok(o) => o,
        Err(out) => return finish(out),
    };
    // squeue's SQUEUE_FORMAT / SQUEUE_FORMAT2 stand in for -o / -O when neither (nor -l) is given.
    if opts.format.is_none() && opts.long_format.is_none() && !opts.long {
        opts.format = env("SQUEUE_FORMAT");
        if opts.format.is_none() {
            opts.long_format = env("SQUEUE_FORMAT2");
        }
    }
    if opts.help.is_some() {
        return finish(crate::queue::render_squeue(&[], &opts, Timestamp::now()));
    }
    match jobs("squeue") {
        Ok(list) => finish(crate::queue::render_squeue(&list, &opts, Timestamp::now())),
        Err(out) => finish(out),
    }
}

/// `sacct ARGS…`.
pub fn sacct_main(args: &[String]) -> ExitCode {
    let now = Timestamp::now();
    let (uid, _) = cluster::ids();
    let mut opts = match crate::acct::parse_sacct_args(args, now) {
        Ok(o) => o,
        Err(out) => return finish(out),
    };
    if let Some(format) = env("SACCT_FORMAT").filter(|_| opts.default_fields) {
        match crate::acct::parse_fields(&format) {
            Ok(fields) => opts.fields = fields,
            Err(m) => return finish(Output::fail(format!("sacct: error: {m}"))),
        }
    }
    if opts.help.is_some() {
        return finish(crate::acct::render_sacct(&[], &opts, uid, now));
    }
    match fetch("sacct", "slurm_load_jobs", |c| c.slurm_accounting()).map(|l| l.jobs) {
        Ok(list) => finish(crate::acct::render_sacct(&list, &opts, uid, now)),
        Err(out) => finish(out),
    }
}

/// `sprio ARGS…`.
pub fn sprio_main(args: &[String]) -> ExitCode {
    let opts = match crate::fairshare::parse_sprio_args(args) {
        Ok(o) => o,
        Err(out) => return finish(out),
    };
    if opts.help.is_some() {
        return finish(crate::fairshare::render_sprio(&Default::default(), &opts));
    }
    match fetch("sprio", "slurm_load_jobs", |c| c.slurm_priorities()) {
        Ok(list) => finish(crate::fairshare::render_sprio(&list, &opts)),
        Err(out) => finish(out),
    }
}

/// `sshare ARGS…`.
pub fn sshare_main(args: &[String]) -> ExitCode {
    let opts = match crate::fairshare::parse_sshare_args(args) {
        Ok(o) => o,
        Err(out) => return finish(out),
    };
    if opts.help.is_some() {
        return finish(crate::fairshare::render_sshare(&Default::default(), &opts, 0));
    }
    let (me, _) = cluster::ids();
    match fetch("sshare", "slurm_get_shares", |c| c.slurm_shares()) {
        Ok(list) => finish(crate::fairshare::render_sshare(&list, &opts, me)),
        Err(out) => finish(out),
    }
}

/// `sinfo ARGS…`.
pub fn sinfo_main(args: &[String]) -> ExitCode {
    let mut opts = match crate::info::parse_sinfo_args(args) {
        Ok(o) => o,
        Err(out) => return finish(out),
    };
    if opts.format.is_none() && !opts.reasons {
        opts.format = env("SINFO_FORMAT");
    }
    if opts.help.is_some() {
        return finish(crate::info::render_sinfo(&[], &[], &[], &opts, Timestamp::now()));
    }
    match nodes_and_pools("sinfo") {
        Ok((pools, nodes, jobs)) => finish(crate::info::render_sinfo(&pools, &nodes, &jobs, &opts, Timestamp::now())),
        Err(out) => finish(out),
    }
}

/// `scontrol [-o] show job|node|partition [NAME]` (Slurm's abbreviations `jobs`, `nodes`,
/// `partitions`, `PartitionName=`… included); `None` when `args` asks for something else,
/// for the caller to handle.
pub fn scontrol_show(args: &[String]) -> Option<ExitCode> {
    let (one_liner, rest) = crate::show::split_flags(args);
    let [show, entity, tail @ ..] = rest else { return None };
    if !show.eq_ignore_ascii_case("show") {
        return None;
    }
    let kind = match entity.to_ascii_lowercase().as_str() {
        "job" | "jobs" | "jobid" => "job",
        "node" | "nodes" | "nodename" => "node",
        "partition" | "partitions" | "partitionname" => "partition",
        _ => return None,
    };
    // `show job=5`, `show jobid 5`, `show job 5`: Slurm takes the name after `=` too.
    let name = tail.first().map(|w| w.split_once('=').map_or(w.as_str(), |(_, v)| v).to_string());
    let name = name.as_deref().filter(|n| !n.is_empty());
    let now = Timestamp::now();
    let out = match kind {
        "job" => match jobs("scontrol") {
            Ok(list) => crate::show::show_job_with(&list, name, one_liner, crate::show::details_asked(args), now),
            Err(out) => out,
        },
        _ => match nodes_and_pools("scontrol") {
            Ok((pools, nodes, jobs)) if kind == "node" => {
                crate::show::show_node(&pools, &nodes, &jobs, name, one_liner)
            }
            Ok((pools, nodes, jobs)) => crate::show::show_partition(&pools, &nodes, &jobs, name, one_liner),
            Err(out) => out,
        },
    };
    Some(finish(out))
}
