//! `sacct`: accounting records of jobs, in Slurm 22.05's columns.
//!
//! [`parse_sacct_args`] reads the command line; [`render_sacct`] prints the head's
//! [`SlurmJob`]s with no I/O, given "now" and the caller's uid. Supported: `-j`, `-u`, `-a`,
//! `-S`/`-E` (see [`crate::acct_time`]), `-s` (long or compact state names), `-r`
//! (partitions), `-A`, `--name`, `-X`, `-n`/`--noheader`, `-P` (`--parsable2`, no trailing
//! `|`), `-p` (`--parsable`, trailing `|`), `--delimiter`, `-o`/`--format` (field names in any
//! case, any unambiguous-by-order prefix as sacct matches them, `%N` width, `%-N` left-justified;
//! `ALL` is not supported), `-b`/`--brief`. Accepted and ignored: `-D`, `-L`, `-M`, `-T`,
//! `-v`, `--noconvert`, `-l` is refused.
//!
//! Steps: without `-X`, every job that has started also gets a `N.batch` line (the batch step
//! sacct shows for every sbatch job: name `batch`, no partition, the job's state, exit code
//! and times), then a `N.S` line per `srun` step its sruns reported (name, nodes, tasks, CPUs,
//! state, exit code, times). `N.extern` is not shown.
//!
//! Which jobs: with `-j`, those jobs whatever their times; otherwise jobs that were eligible
//! or running between `-S` (default: midnight today, UTC) and `-E` (default: now), and unless
//! `-a`/`-u` or run by uid 0, only the caller's own. A `CANCELLED` job reads `CANCELLED by
//! UID` with the job owner's uid (gangway does not record who cancelled).

use gangway_api::slurm::{SlurmJob, SlurmJobState, SlurmStep};
use gangway_api::Timestamp;

use crate::acct_time::{midnight, parse_acct_time};
use crate::format::{
    clock_secs, comma_list, exit_code_str, job_id_str, limit_str, mem_str, nodes_str, parse_job_ids, parse_states,
    run_secs, scan_permuted, time_or, usage_error, user_matches, JobIdSpec, Output, StateFilter,
};
use crate::getopt::{HasArg, OptDef};

/// sacct's default `--format`.
pub const DEFAULT_FIELDS: &str = "JobID,JobName,Partition,Account,AllocCPUS,State,ExitCode";
/// `-b`'s fields.
pub const BRIEF_FIELDS: &str = "JobID,State,ExitCode";

/// A parsed sacct command line.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SacctOptions {
    /// `-j`.
    pub jobs: Option<Vec<JobIdSpec>>,
    /// `-u`.
    pub users: Option<Vec<String>>,
    /// `-a`.
    pub all_users: bool,
    /// `-S`, resolved.
    pub start: Option<Timestamp>,
    /// `-E`, resolved.
    pub end: Option<Timestamp>,
    /// `-s`.
    pub states: Option<StateFilter>,
    /// `-r`.
    pub partitions: Option<Vec<String>>,
    /// `-A`.
    pub accounts: Option<Vec<String>>,
    /// `--name`.
    pub names: Option<Vec<String>>,
    /// `-X`.
    pub allocations: bool,
    /// `-D`: a requeued job's earlier runs too.
    pub duplicates: bool,
    /// `-n`.
    pub no_header: bool,
    /// `-p` (`Some(true)`: trailing delimiter) or `-P` (`Some(false)`).
    pub parsable: Option<bool>,
    /// `--delimiter` (default `|`).
    pub delimiter: String,
    /// The columns.
    pub fields: Vec<Field>,
    /// No `--format`/`-b` was given: the columns are the default (`SACCT_FORMAT` may replace them).
    pub default_fields: bool,
    /// `--help`: print this and exit 0.
    pub help: Option<&'static str>,
}

/// One output column: which field and how wide (negative: left-justified), as sacct keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// Its name as sacct spells it in the header.
    pub name: &'static str,
    /// Width; negative is left-justified.
    pub width: i32,
}

/// The fields gangway can fill, in sacct's (alphabetical) table order, with their default
/// widths: a name matches the first entry it is a case-insensitive prefix of, as in sacct.
const FIELDS: [(&str, i32); 33] = [
    ("Account", 10),
    ("AllocCPUS", 10),
    ("AllocNodes", 10),
    ("AllocTRES", 10),
    ("Constraints", 19),
    ("CPUTime", 10),
    ("CPUTimeRAW", 10),
    ("Elapsed", 10),
    ("ElapsedRaw", 10),
    ("Eligible", 19),
    ("End", 19),
    ("ExitCode", 8),
    ("GID", 6),
    ("Group", 9),
    ("JobID", -12),
    ("JobIDRaw", -12),
    ("JobName", 10),
    ("MaxRSS", 10),
    ("NCPUS", 10),
    ("NNodes", 8),
    ("NodeList", 15),
    ("NTasks", 8),
    ("Partition", 10),
    ("QOS", 10),
    ("Reason", 22),
    ("ReqCPUS", 8),
    ("ReqMem", 10),
    ("ReqNodes", 8),
    ("Start", 19),
    ("State", 10),
    ("Submit", 19),
    ("Timelimit", 10),
    ("User", 9),
];

/// Fields placed after `User` in sacct's table (kept apart so [`FIELDS`] reads in order).
const MORE_FIELDS: [(&str, i32); 4] = [("UID", 6), ("WorkDir", 20), ("TimelimitRaw", 10), ("Restarts", 8)];

/// Reads one `--format` list: `Name[%[-]width]` words separated by commas.
pub fn parse_fields(list: &str) -> Result<Vec<Field>, String> {
    let mut out = Vec::new();
    for word in list.split(',').filter(|w| !w.is_empty()) {
        let (name, width) = match word.split_once('%') {
            Some((name, w)) => {
                let width = w.parse::<i32>().map_err(|_| format!("Invalid field requested: \"{word}\""))?;
                (name, Some(width.clamp(-4096, 4096)))
            }
            None => (word, None),
        };
        let lower = name.to_ascii_lowercase();
        // An exact name wins over sacct's prefix rule, so `Timelimit` never means `TimelimitRaw`.
        let table = FIELDS.iter().chain(MORE_FIELDS.iter());
        let found = table
            .clone()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .or_else(|| table.clone().find(|(n, _)| !lower.is_empty() && n.to_ascii_lowercase().starts_with(&lower)));
        let Some((n, default)) = found else {
            return Err(format!("Invalid field requested: \"{name}\""));
        };
        let width = match width {
            Some(0) | None => *default,
            Some(w) => w,
        };
        out.push(Field { name: n, width });
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opt {
    AllUsers,
    Duplicates,
    Accounts,
    Brief,
    Delimiter,
    End,
    Format,
    Help,
    Ignored,
    Jobs,
    Long,
    Name,
    NoHeader,
    Parsable,
    Parsable2,
    Partition,
    Start,
    State,
    User,
    Allocations,
}

const fn opt(long: &'static str, short: Option<char>, has_arg: HasArg, key: Opt) -> OptDef<Opt> {
    OptDef { long, short, has_arg, key }
}

const TABLE: &[OptDef<Opt>] = &[
    opt("allusers", Some('a'), HasArg::No, Opt::AllUsers),
    opt("accounts", Some('A'), HasArg::Required, Opt::Accounts),
    opt("allocations", Some('X'), HasArg::No, Opt::Allocations),
    opt("brief", Some('b'), HasArg::No, Opt::Brief),
    opt("duplicates", Some('D'), HasArg::No, Opt::Duplicates),
    opt("delimiter", None, HasArg::Required, Opt::Delimiter),
    opt("endtime", Some('E'), HasArg::Required, Opt::End),
    opt("format", Some('o'), HasArg::Required, Opt::Format),
    opt("help", Some('h'), HasArg::No, Opt::Help),
    opt("jobs", Some('j'), HasArg::Required, Opt::Jobs),
    opt("allclusters", Some('L'), HasArg::No, Opt::Ignored),
    opt("long", Some('l'), HasArg::No, Opt::Long),
    opt("clusters", Some('M'), HasArg::Required, Opt::Ignored),
    opt("name", None, HasArg::Required, Opt::Name),
    opt("noconvert", None, HasArg::No, Opt::Ignored),
    opt("noheader", Some('n'), HasArg::No, Opt::NoHeader),
    opt("parsable", Some('p'), HasArg::No, Opt::Parsable),
    opt("parsable2", Some('P'), HasArg::No, Opt::Parsable2),
    opt("partition", Some('r'), HasArg::Required, Opt::Partition),
    opt("starttime", Some('S'), HasArg::Required, Opt::Start),
    opt("state", Some('s'), HasArg::Required, Opt::State),
    opt("truncate", Some('T'), HasArg::No, Opt::Ignored),
    opt("user", Some('u'), HasArg::Required, Opt::User),
    opt("uid", Some('u'), HasArg::Required, Opt::User),
    opt("verbose", Some('v'), HasArg::No, Opt::Ignored),
];

const HELP: &str = "\
sacct [<OPTION>]
    -a, --allusers        all users' jobs
    -A, --accounts        accounts to show
    -b, --brief           JobID, State, ExitCode
    --delimiter           field delimiter with -p/-P (default '|')
    -D, --duplicates      a requeued job's earlier runs too
    -E, --endtime         end of the window (default now)
    -j, --jobs            job ids (N, N_i)
    --name                job names
    -n, --noheader        no header lines
    -o, --format          fields (JobID,JobName%30,...)
    -p, --parsable        '|'-separated, with a trailing '|'
    -P, --parsable2       '|'-separated
    -r, --partition       partitions
    -s, --state           states (CD,F,CA,...)
    -S, --starttime       start of the window (default midnight)
    -u, --user            users
    -X, --allocations     no step lines
";

/// Reads sacct's command line; `now` resolves relative times.
pub fn parse_sacct_args(args: &[String], now: Timestamp) -> Result<SacctOptions, Output> {
    let (found, words) = scan_permuted(args, TABLE).map_err(|e| usage_error("sacct", &e))?;
    let fail = |m: String| Output::fail(format!("sacct: error: {m}"));
    let mut o = SacctOptions { delimiter: "|".into(), ..SacctOptions::default() };
    let mut format: Option<String> = None;
    for f in found {
        let value = f.value.unwrap_or_default();
        match f.key {
            Opt::AllUsers => o.all_users = true,
            Opt::Accounts => o.accounts = Some(comma_list(&value)),
            Opt::Allocations => o.allocations = true,
            Opt::Duplicates => o.duplicates = true,
            Opt::Brief => format = Some(BRIEF_FIELDS.into()),
            Opt::Delimiter => o.delimiter = value,
            Opt::End => o.end = Some(parse_acct_time(&value, now).map_err(fail)?),
            Opt::Format => {
                // Repeated -o lists add up in sacct.
                format = Some(match format {
                    Some(f) if f != BRIEF_FIELDS => format!("{f},{value}"),
                    _ => value,
                });
            }
            Opt::Help => o.help = Some(HELP),
            Opt::Ignored => {}
            Opt::Jobs => {
                let mut ids = o.jobs.take().unwrap_or_default();
                ids.extend(parse_job_ids(&value).map_err(fail)?);
                o.jobs = Some(ids);
            }
            Opt::Long => return Err(fail("--long is not supported by gangway's sacct; use --format".into())),
            Opt::Name => o.names = Some(comma_list(&value)),
            Opt::NoHeader => o.no_header = true,
            Opt::Parsable => o.parsable = Some(true),
            Opt::Parsable2 => o.parsable = Some(false),
            Opt::Partition => o.partitions = Some(comma_list(&value)),
            Opt::Start => o.start = Some(parse_acct_time(&value, now).map_err(fail)?),
            Opt::State => o.states = Some(parse_states(&value).map_err(|m| fail(m.replace('\n', "\nsacct: error: ")))?),
            Opt::User => o.users = Some(comma_list(&value)),
        }
    }
    if !words.is_empty() {
        return Err(fail(format!("Unknown arguments: {}", words.join(" "))));
    }
    o.default_fields = format.is_none();
    o.fields = parse_fields(format.as_deref().unwrap_or(DEFAULT_FIELDS)).map_err(fail)?;
    Ok(o)
}

/// Whether `job` is one sacct would list for `o`, run by `my_uid`, at `now`.
fn selected(job: &SlurmJob, o: &SacctOptions, my_uid: u32, now: Timestamp) -> bool {
    let any = |list: &Option<Vec<String>>, value: &str| list.as_ref().is_none_or(|l| l.iter().any(|v| v == value));
    if let Some(ids) = &o.jobs {
        if !ids.iter().any(|id| id.matches(job)) {
            return false;
        }
    } else {
        let start = o.start.unwrap_or_else(|| midnight(now));
        let end = o.end.unwrap_or(now);
        let began = job.eligible_time.or(job.start_time).unwrap_or(job.submit_time);
        if began > end || job.end_time.is_some_and(|e| e < start) {
            return false;
        }
    }
    let user_ok = match &o.users {
        Some(users) => user_matches(users, job),
        None => o.all_users || o.jobs.is_some() || my_uid == 0 || job.uid == my_uid,
    };
    user_ok
        && o.states.as_ref().is_none_or(|s| s.matches(job.state))
        && any(&o.partitions, &job.partition)
        && any(&o.names, &job.name)
        && o.accounts.as_ref().is_none_or(|a| job.account.as_ref().is_some_and(|x| a.contains(x)))
}

/// The value of `field` for `job` (or its batch step, `step`).
fn value(field: &str, job: &SlurmJob, step: bool, now: Timestamp) -> Option<String> {
    let started = job.start_time.is_some();
    let elapsed = run_secs(job, now);
    let v = match field {
        "Account" => job.account.clone().unwrap_or_default(),
        "AllocCPUS" | "NCPUS" => (if started { job.num_cpus } else { 0 }).to_string(),
        "AllocNodes" => (if started { job.nodes.len() } else { 0 }).to_string(),
        "AllocTRES" if !started => String::new(),
        "AllocTRES" => {
            let mut t = format!("cpu={},node={}", job.num_cpus, job.nodes.len());
            if let Some(g) = &job.gres {
                t.push(',');
                t.push_str(g.split(':').next().unwrap_or(g));
                t.push('=');
                t.push_str(g.rsplit(':').next().unwrap_or("0"));
            }
            t
        }
        "Constraints" => job.constraint.clone().unwrap_or_default(),
        "CPUTime" => clock_secs(elapsed * u64::from(job.num_cpus)),
        "CPUTimeRAW" => (elapsed * u64::from(job.num_cpus)).to_string(),
        "Elapsed" => clock_secs(elapsed),
        "ElapsedRaw" => elapsed.to_string(),
        "Eligible" => time_or(job.eligible_time, "Unknown"),
        "End" => time_or(job.end_time, "Unknown"),
        "ExitCode" => exit_code_str(job),
        "GID" => job.gid.to_string(),
        "Group" => job.gid.to_string(),
        "JobID" if step => format!("{}.batch", job_id_str(job)),
        "JobID" => job_id_str(job),
        "JobIDRaw" if step => format!("{}.batch", job.job_id),
        "JobIDRaw" => job.job_id.to_string(),
        "JobName" if step => "batch".into(),
        "JobName" => job.name.clone(),
        "MaxRSS" => match job.max_rss_kib {
            Some(k) if step => mem_str(k, 0),
            _ => String::new(),
        },
        "NNodes" => (if step { 1 } else { crate::queue_fields::node_count(job) }).to_string(),
        "NodeList" if step => job.nodes.first().cloned().unwrap_or_default(),
        "NodeList" if job.nodes.is_empty() => "None assigned".into(),
        "NodeList" => nodes_str(&job.nodes),
        "NTasks" if step => "1".into(),
        "NTasks" => String::new(),
        "Partition" if step => String::new(),
        "Partition" => job.partition.clone(),
        "QOS" if step => String::new(),
        "QOS" => job.qos.clone().unwrap_or_else(|| "normal".into()),
        "Reason" => crate::queue_fields::reason(job),
        "ReqCPUS" => job.num_cpus.to_string(),
        "ReqMem" => match (job.mem_per_node_mb, job.mem_per_cpu_mb) {
            (Some(mb), _) | (None, Some(mb)) => mem_str(mb, 1),
            (None, None) => "0".into(),
        },
        "ReqNodes" => job.min_nodes.to_string(),
        "Restarts" => job.restarts.to_string(),
        "Start" => time_or(job.start_time, "Unknown"),
        "State" if step && job.state == SlurmJobState::Cancelled => "CANCELLED".into(),
        "State" => state_str(job),
        "Submit" => crate::format::iso_time(job.submit_time),
        "Timelimit" if step => String::new(),
        "Timelimit" => limit_str(job.time_limit_s),
        "TimelimitRaw" => job.time_limit_s.map_or_else(|| "UNLIMITED".into(), |s| (s / 60).to_string()),
        "UID" => job.uid.to_string(),
        "User" if step => String::new(),
        "User" => job.user.clone(),
        "WorkDir" => job.work_dir.clone(),
        _ => return None,
    };
    Some(v)
}

/// The value of `field` for `srun` step `s` of `job`; fields a step does not have of its own
/// read as on the batch step.
fn step_value(field: &str, job: &SlurmJob, s: &SlurmStep, now: Timestamp) -> Option<String> {
    let end = s.end_time.unwrap_or(now);
    let elapsed = end.millis_since(s.start_time) / 1000;
    let v = match field {
        "JobID" => format!("{}.{}", job_id_str(job), s.step_id),
        "JobIDRaw" => format!("{}.{}", job.job_id, s.step_id),
        "JobName" => s.name.clone(),
        "AllocCPUS" | "NCPUS" | "ReqCPUS" => s.cpus.to_string(),
        "AllocNodes" | "NNodes" => s.nodes.len().to_string(),
        "AllocTRES" => format!("cpu={},node={}", s.cpus, s.nodes.len()),
        "NodeList" => nodes_str(&s.nodes),
        "NTasks" => s.ntasks.to_string(),
        "State" => s.state.as_str().to_string(),
        "ExitCode" => format!("{}:{}", s.exit_code.unwrap_or(0), s.signal.unwrap_or(0)),
        "Start" => crate::format::iso_time(s.start_time),
        "End" => time_or(s.end_time, "Unknown"),
        "Elapsed" => clock_secs(elapsed),
        "ElapsedRaw" => elapsed.to_string(),
        "CPUTime" => clock_secs(elapsed * u64::from(s.cpus)),
        "CPUTimeRAW" => (elapsed * u64::from(s.cpus)).to_string(),
        "MaxRSS" => s.max_rss_kib.map(|k| mem_str(k, 0)).unwrap_or_default(),
        _ => return value(field, job, true, now),
    };
    Some(v)
}

/// sacct's `State`: the long name, `CANCELLED by UID` for a cancelled job.
pub fn state_str(job: &SlurmJob) -> String {
    match job.state {
        SlurmJobState::Cancelled => format!("CANCELLED by {}", job.uid),
        s => s.as_str().to_string(),
    }
}

/// sacct's `print_fields_str` for one value: cut to the width with `+` as the last character,
/// padded, then a space; or the value and the delimiter when parsable.
fn cell(out: &mut String, text: &str, field: Field, o: &SacctOptions, last: bool) {
    match o.parsable {
        Some(trailing) => {
            out.push_str(text);
            if trailing || !last {
                out.push_str(&o.delimiter);
            }
        }
        None => {
            let w = field.width.unsigned_abs() as usize;
            let mut shown: String = text.chars().take(w).collect();
            if text.chars().count() > w && w > 0 {
                shown.pop();
                shown.push('+');
            }
            let fill = " ".repeat(w.saturating_sub(shown.chars().count()));
            if field.width < 0 {
                out.push_str(&shown);
                out.push_str(&fill);
            } else {
                out.push_str(&fill);
                out.push_str(&shown);
            }
            out.push(' ');
        }
    }
}

/// Prints `jobs` as sacct would with options `o`, run by `my_uid` at `now`.
pub fn render_sacct(jobs: &[SlurmJob], o: &SacctOptions, my_uid: u32, now: Timestamp) -> Output {
    if let Some(help) = o.help {
        return Output { stdout: help.to_string(), ..Output::default() };
    }
    let mut out = String::new();
    let n = o.fields.len();
    if !o.no_header {
        for (i, f) in o.fields.iter().enumerate() {
            cell(&mut out, f.name, *f, o, i + 1 == n);
        }
        out.push('\n');
        if o.parsable.is_none() {
            for f in &o.fields {
                out.push_str(&"-".repeat(f.width.unsigned_abs() as usize));
                out.push(' ');
            }
            out.push('\n');
        }
    }
    let mut picked: Vec<&SlurmJob> = jobs.iter().filter(|j| selected(j, o, my_uid, now)).collect();
    // sacct lists by job id; an array's elements together, by index.
    picked.sort_by_key(|j| (j.array_job_id.unwrap_or(j.job_id), j.array_task_id));
    for job in picked {
        // `-D`: each earlier run of a requeued job, as it ended, before the current one.
        let earlier = if o.duplicates { job.earlier_runs.as_slice() } else { &[] };
        for run in earlier {
            let mut then = job.clone();
            (then.state, then.start_time, then.end_time) = (run.state, run.start_time, run.end_time);
            (then.nodes, then.exit_code, then.signal, then.steps) =
                (run.nodes.clone(), run.exit_code, None, Vec::new());
            for (i, f) in o.fields.iter().enumerate() {
                let text = value(f.name, &then, false, now).unwrap_or_default();
                cell(&mut out, &text, *f, o, i + 1 == n);
            }
            out.push('\n');
        }
        let steps: &[bool] = if o.allocations || job.start_time.is_none() { &[false] } else { &[false, true] };
        for &step in steps {
            for (i, f) in o.fields.iter().enumerate() {
                let text = value(f.name, job, step, now).unwrap_or_default();
                cell(&mut out, &text, *f, o, i + 1 == n);
            }
            out.push('\n');
        }
        let sruns: &[SlurmStep] = if o.allocations || job.start_time.is_none() { &[] } else { &job.steps };
        for s in sruns {
            for (i, f) in o.fields.iter().enumerate() {
                let text = step_value(f.name, job, s, now).unwrap_or_default();
                cell(&mut out, &text, *f, o, i + 1 == n);
            }
            out.push('\n');
        }
    }
    Output { stdout: out, ..Output::default() }
}

#[cfg(test)]
#[path = "acct_tests.rs"]
mod tests;
