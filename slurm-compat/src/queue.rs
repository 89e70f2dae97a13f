//! `squeue`: which jobs are queued or running, in Slurm 22.05's columns.
//!
//! [`parse_squeue_args`] reads the command line (glibc `getopt_long` rules, options anywhere);
//! [`render_squeue`] filters and prints the head's [`SlurmJob`]s with no I/O, given "now".
//! Supported: `-h`, `-l`, `-o/--format` (the `%` letters of [`crate::queue_fields`]),
//! `-O/--Format` (`name[:[.]width][suffix]`, comma-separated), `--json`, `-j` (a list, or
//! `-j` alone then a list as the next word), `-u`, `--me`, `-t` (long or compact state names,
//! `all`), `-p`, `-n`, `-A`, `-q`, `-w`, `-r` (array elements one per line; without it
//! pending elements of one array fold into `123_[1-3]`, as squeue does). Accepted and
//! ignored: `-a`, `--hide`, `-M`, `--local`, `--federation`, `--sibling`, `-v`, `-S`,
//! `-P`, `--noconvert`, `--array-unique`. `-s` lists the running `srun` steps in squeue's
//! step columns (`STEPID NAME PARTITION USER TIME NODELIST`), with `-h`, `-j`, `-u`, `-p` and
//! `-s` with a list of `JOB.STEP` ids; `-o` with `-s` is refused. `--start` lists pending jobs
//! by their planned start (`%S`, `%Y` SCHEDNODES: the scheduler's reservation; `N/A` and
//! `(null)` for jobs that have none). `-i` (iterate) and `-L` (licenses) are refused with a
//! message.
//!
//! Like slurmctld with `MinJobAge=300`, a job that ended more than 300 s ago is gone: it is
//! not listed even with `-t all`, and `-j` naming only it fails with `slurm_load_jobs error:
//! Invalid job id specified`. Without `-t`, ended jobs are not listed (also with `-j`), which
//! is what `while squeue -h -j $id | grep -q .` loops rely on. `--json` applies the filters
//! (Slurm 22.05 ignores them there).

use gangway_api::slurm::{SlurmJob, SlurmJobState};
use gangway_api::Timestamp;

use crate::format::{
    comma_list, date_line, pad, parse_job_ids, parse_percent_format, parse_states, scan_permuted, secs_between,
    usage_error, user_matches, JobIdSpec, Output, StateFilter,
};
use crate::getopt::{HasArg, OptDef};
use crate::queue_fields::{
    cut_for, extra_value, job_json, letter_info, letter_value, long_name_letter, Cut, Row, EXTRA_LONG_NAMES,
};

/// squeue's default `-o`.
pub const DEFAULT_FORMAT: &str = "%.18i %.9P %.8j %.8u %.2t %.10M %.6D %R";
/// squeue `--start`'s format.
pub const START_FORMAT: &str = "%.18i %.9P %.8j %.8u %.2t %.19S %.6D %20Y %R";
/// squeue `-l`'s format.
pub const LONG_FORMAT: &str = "%.18i %.9P %.8j %.8u %.8T %.10M %.9l %.6D %R";
/// How long an ended job stays visible to squeue and scontrol (slurmctld's default `MinJobAge`).
pub const MIN_JOB_AGE_S: u64 = 300;

/// A parsed squeue command line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SqueueOptions {
    /// `-h`.
    pub no_header: bool,
    /// `-l`.
    pub long: bool,
    /// `-o`.
    pub format: Option<String>,
    /// `-O`.
    pub long_format: Option<String>,
    /// `--json`.
    pub json: bool,
    /// `-j`.
    pub jobs: Option<Vec<JobIdSpec>>,
    /// `-t`.
    pub states: Option<StateFilter>,
    /// `-u` / `--me`.
    pub users: Option<Vec<String>>,
    /// `-p`.
    pub partitions: Option<Vec<String>>,
    /// `-n`.
    pub names: Option<Vec<String>>,
    /// `-A`.
    pub accounts: Option<Vec<String>>,
    /// `-q`.
    pub qos: Option<Vec<String>>,
    /// `-w`, expanded.
    pub nodes: Option<Vec<String>>,
    /// `-r`.
    pub array_elements: bool,
    /// `--start`: pending jobs by planned start, in its own columns (unless `-o`/`-O`/`-t`).
    pub start: bool,
    /// `-s`: list steps, those `JOB.STEP` ids only when given.
    pub steps: Option<Vec<String>>,
    /// `--help` / `--usage`: print this and exit 0.
    pub help: Option<&'static str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opt {
    Account,
    All,
    Array,
    Ignored,
    Format,
    LongFormat,
    Help,
    Usage,
    Iterate,
    Jobs,
    Long,
    Licenses,
    Me,
    Name,
    Nodes,
    NoHeader,
    Partitions,
    Qos,
    Steps,
    Start,
    States,
    Users,
    Json,
    Version,
}

const fn opt(long: &'static str, short: Option<char>, has_arg: HasArg, key: Opt) -> OptDef<Opt> {
    OptDef { long, short, has_arg, key }
}

const TABLE: &[OptDef<Opt>] = &[
    opt("accounts", Some('A'), HasArg::Required, Opt::Account),
    opt("all", Some('a'), HasArg::No, Opt::All),
    opt("array", Some('r'), HasArg::No, Opt::Array),
    opt("array-unique", None, HasArg::No, Opt::Ignored),
    opt("Format", Some('O'), HasArg::Required, Opt::LongFormat),
    opt("format", Some('o'), HasArg::Required, Opt::Format),
    opt("federation", None, HasArg::No, Opt::Ignored),
    opt("help", None, HasArg::No, Opt::Help),
    opt("hide", None, HasArg::No, Opt::Ignored),
    opt("iterate", Some('i'), HasArg::Required, Opt::Iterate),
    opt("jobs", Some('j'), HasArg::Optional, Opt::Jobs),
    opt("json", None, HasArg::No, Opt::Json),
    opt("local", None, HasArg::No, Opt::Ignored),
    opt("long", Some('l'), HasArg::No, Opt::Long),
    opt("licenses", Some('L'), HasArg::Required, Opt::Licenses),
    opt("cluster", Some('M'), HasArg::Required, Opt::Ignored),
    opt("clusters", Some('M'), HasArg::Required, Opt::Ignored),
    opt("me", None, HasArg::No, Opt::Me),
    opt("name", Some('n'), HasArg::Required, Opt::Name),
    opt("noconvert", None, HasArg::No, Opt::Ignored),
    opt("node", Some('w'), HasArg::Required, Opt::Nodes),
    opt("nodes", Some('w'), HasArg::Required, Opt::Nodes),
    opt("nodelist", Some('w'), HasArg::Required, Opt::Nodes),
    opt("noheader", Some('h'), HasArg::No, Opt::NoHeader),
    opt("partitions", Some('p'), HasArg::Required, Opt::Partitions),
    opt("priority", Some('P'), HasArg::No, Opt::Ignored),
    opt("qos", Some('q'), HasArg::Required, Opt::Qos),
    opt("reservation", Some('R'), HasArg::Required, Opt::Ignored),
    opt("sib", None, HasArg::No, Opt::Ignored),
    opt("sibling", None, HasArg::No, Opt::Ignored),
    opt("sort", Some('S'), HasArg::Required, Opt::Ignored),
    opt("start", None, HasArg::No, Opt::Start),
    opt("steps", Some('s'), HasArg::Optional, Opt::Steps),
    opt("states", Some('t'), HasArg::Required, Opt::States),
    opt("usage", None, HasArg::No, Opt::Usage),
    opt("user", Some('u'), HasArg::Required, Opt::Users),
    opt("users", Some('u'), HasArg::Required, Opt::Users),
    opt("verbose", Some('v'), HasArg::No, Opt::Ignored),
    opt("version", Some('V'), HasArg::No, Opt::Version),
];

const HELP: &str = "\
Usage: squeue [OPTIONS]
  -A, --account=account(s)        comma separated list of accounts to view
  -h, --noheader                  no headers on output
  -j, --job=job(s)                comma separated list of jobs IDs to view
  -l, --long                      long report
      --me                        equivalent to --user=<my uid>
  -n, --name=job_name(s)          comma separated list of job names to view
  -o, --format=format             format specification
  -O, --Format=format             format specification
  -p, --partition=partition(s)    comma separated list of partitions to view
  -q, --qos=qos(s)                comma separated list of qos's to view
  -r, --array                     display one job array element per line
      --start                     print expected start times of pending jobs
  -t, --states=states             comma separated list of states to view,
                                  default is pending and running,
                                  '--states=all' reports all states
  -u, --user=user_name(s)         comma separated list of users to view
  -w, --nodelist=hostlist         list of nodes to view
      --json                      produce JSON output
";

/// Reads squeue's command line (without the program name); `my_uid` is what `--me` means.
/// The error is what squeue prints, with its exit status.
pub fn parse_squeue_args(args: &[String], my_uid: u32) -> Result<SqueueOptions, Output> {
    let (found, words) = scan_permuted(args, TABLE).map_err(|e| usage_error("squeue", &e))?;
    let mut o = SqueueOptions::default();
    let mut job_flag = false;
    let fail = |m: String| Output::fail(format!("squeue: error: {m}"));
    for f in found {
        let value = f.value.unwrap_or_default();
        match f.key {
            Opt::Account => o.accounts = Some(comma_list(&value)),
            Opt::All | Opt::Ignored => {}
            Opt::Array => o.array_elements = true,
            Opt::Format => {
                if o.long_format.is_some() {
                    return Err(fail("-o (--format) is incompatible with -O (--Format)".into()));
                }
                o.format = Some(value);
            }
            Opt::LongFormat => {
                if o.format.is_some() {
                    return Err(fail("-O (--Format) is incompatible with -o (--format)".into()));
                }
                o.long_format = Some(value);
            }
            Opt::Help => o.help = Some(HELP),
            Opt::Usage => o.help = Some("Usage: squeue [-A account] [-j jobid] [-n name] [-o format] [-p partitions] [-t states] [-u user_name] [-ahjlrv]\n"),
            Opt::Version => o.help = Some("slurm 22.05.8 (gangway)\n"),
            Opt::Steps => o.steps = Some(comma_list(&value)),
            Opt::Start => o.start = true,
            Opt::Iterate | Opt::Licenses => {
                return Err(fail(format!("--{} is not supported by gangway's squeue", f.name)))
            }
            Opt::Jobs => {
                job_flag = true;
                if !value.is_empty() {
                    o.jobs = Some(parse_job_ids(&value).map_err(fail)?);
                }
            }
            Opt::Json => o.json = true,
            Opt::Long => o.long = true,
            Opt::Me => o.users = Some(vec![my_uid.to_string()]),
            Opt::Name => o.names = Some(comma_list(&value)),
            Opt::Nodes => {
                let hosts = gangway_topology::hostlist::expand_hostlist(&value)
                    .map_err(|_| fail(format!("'{value}' invalid entry for --nodelist")))?;
                o.nodes = Some(hosts);
            }
            Opt::NoHeader => o.no_header = true,
            Opt::Partitions => o.partitions = Some(comma_list(&value)),
            Opt::Qos => o.qos = Some(comma_list(&value)),
            Opt::States => o.states = Some(parse_states(&value).map_err(|m| fail(m.replace('\n', "\nsqueue: error: ")))?),
            Opt::Users => o.users = Some(comma_list(&value)),
        }
    }
    let mut words = words.into_iter();
    if job_flag && o.jobs.is_none() {
        if let Some(list) = words.next() {
            o.jobs = Some(parse_job_ids(&list).map_err(fail)?);
        }
    }
    // `-s` alone takes its list from the next word, as `-j` does.
    if o.steps.as_ref().is_some_and(Vec::is_empty) {
        if let Some(list) = words.next() {
            o.steps = Some(comma_list(&list));
        }
    }
    if let Some(extra) = words.next() {
        return Err(fail(format!("Unrecognized option: {extra}")));
    }
    if o.steps.is_some() && (o.format.is_some() || o.long_format.is_some() || o.json) {
        return Err(fail(
            "-s (--steps) prints squeue's step columns only; -o, -O and --json are not supported with it".into(),
        ));
    }
    if o.long && o.format.is_some() {
        return Err(Output::fail(
            "squeue: fatal: Options -o(--format) and -l(--long) are mutually exclusive. Please remove one and retry.",
        ));
    }
    Ok(o)
}

/// Whether slurmctld would still know `job` at `now` (see the module doc).
pub fn still_known(job: &SlurmJob, now: Timestamp) -> bool {
    match (job.state.is_finished(), job.end_time) {
        (true, Some(end)) => secs_between(end, now) <= MIN_JOB_AGE_S,
        _ => true,
    }
}

/// Whether `job` passes every filter of `o`.
fn selected(job: &SlurmJob, o: &SqueueOptions) -> bool {
    let any = |list: &Option<Vec<String>>, value: &str| list.as_ref().is_none_or(|l| l.iter().any(|v| v == value));
    let any_ci = |list: &Option<Vec<String>>, value: Option<&str>| {
        list.as_ref().is_none_or(|l| value.is_some_and(|v| l.iter().any(|x| x.eq_ignore_ascii_case(v))))
    };
    let state_ok = match &o.states {
        Some(filter) => filter.matches(job.state),
        None if o.start => job.state == SlurmJobState::Pending,
        None => !job.state.is_finished(),
    };
    state_ok
        && o.jobs.as_ref().is_none_or(|ids| ids.iter().any(|id| id.matches(job)))
        && o.users.as_ref().is_none_or(|u| user_matches(u, job))
        && any(&o.partitions, &job.partition)
        && any(&o.names, &job.name)
        && any_ci(&o.accounts, job.account.as_deref())
        && any_ci(&o.qos, job.qos.as_deref())
        && o.nodes.as_ref().is_none_or(|n| job.nodes.iter().any(|h| n.contains(h)))
}

/// squeue's default order: partition, then state (pending first), then job id.
fn sort_key(job: &SlurmJob) -> (String, u8, u64, u32) {
    let state = match job.state {
        SlurmJobState::Pending => 0,
        SlurmJobState::Running => 1,
        SlurmJobState::Completed | SlurmJobState::Completing => 3,
        SlurmJobState::Cancelled => 4,
        SlurmJobState::Failed => 5,
        SlurmJobState::Timeout => 6,
        SlurmJobState::NodeFail => 7,
        SlurmJobState::OutOfMemory => 8,
    };
    (job.partition.clone(), state, job.array_job_id.unwrap_or(job.job_id), job.array_task_id.unwrap_or(0))
}

/// Folds the pending elements of each array (same name and partition) into one row, as
/// squeue's `_combine_pending_array_tasks` does.
fn fold_arrays<'a>(jobs: Vec<&'a SlurmJob>) -> Vec<Row<'a>> {
    fold_pending(jobs, |job, array| (array, job.name.as_str(), job.partition.as_str()))
        .into_iter()
        .map(|(job, tasks)| Row { job, tasks: (tasks.len() > 1).then(|| array_tasks(job, &tasks)) })
        .collect()
}

/// Gathers the pending elements of each array (those whose `key` is the same) under the first
/// of them: every job in order but the others, each with the pending indices it stands for
/// (sorted; empty for a job that is no pending element). Linear in the number of jobs.
pub(crate) fn fold_pending<'a, K: Eq + std::hash::Hash>(
    jobs: impl IntoIterator<Item = &'a SlurmJob>,
    key: impl Fn(&'a SlurmJob, u64) -> K,
) -> Vec<(&'a SlurmJob, Vec<u32>)> {
    let mut out: Vec<(&'a SlurmJob, Vec<u32>)> = Vec::new();
    let mut first: std::collections::HashMap<K, usize> = std::collections::HashMap::new();
    for job in jobs {
        if let (SlurmJobState::Pending, Some(array), Some(task)) = (job.state, job.array_job_id, job.array_task_id) {
            match first.entry(key(job, array)) {
                std::collections::hash_map::Entry::Occupied(at) => {
                    out[*at.get()].1.push(task);
                    continue;
                }
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(out.len());
                    out.push((job, vec![task]));
                    continue;
                }
            }
        }
        out.push((job, Vec::new()));
    }
    for (_, tasks) in &mut out {
        tasks.sort_unstable();
        tasks.dedup();
    }
    out
}

/// Folded indices as squeue and scontrol write them, with the array's `%N`: `1-3,5%2`.
pub(crate) fn array_tasks(job: &SlurmJob, tasks: &[u32]) -> String {
    let throttle = job.array_throttle.map_or_else(String::new, |n| format!("%{n}"));
    format!("{}{throttle}", ranges(tasks))
}

/// Indices as Slurm's `bit_fmt` writes them: `1-3,5`.
pub use gangway_topology::ids::compress_ids as ranges;

/// One printable column.
struct Column {
    header: String,
    width: usize,
    right: bool,
    suffix: String,
    kind: ColumnKind,
}

enum ColumnKind {
    Letter(char),
    Extra(&'static str),
    /// An unknown letter or name: prints nothing but its suffix (the token itself).
    Invalid,
}

/// Turns `-o` or `-O` into columns; unknown fields become warnings, as squeue prints them.
fn columns(o: &SqueueOptions, warnings: &mut String) -> (String, Vec<Column>) {
    if let Some(spec) = &o.long_format {
        let mut cols = Vec::new();
        for token in spec.split(',').filter(|t| !t.is_empty()) {
            let (name, rest) = token.split_once(':').unwrap_or((token, ""));
            let (right, digits) = match rest.strip_prefix('.') {
                Some(d) => (true, d),
                None => (false, rest),
            };
            let width_end = digits.find(|c: char| !c.is_ascii_digit()).unwrap_or(digits.len());
            let width = if token.contains(':') { digits[..width_end].parse().unwrap_or(0) } else { 20 };
            let suffix = if token.contains(':') { digits[width_end..].to_string() } else { String::new() };
            let lower = name.to_ascii_lowercase();
            let kind = if let Some(l) = long_name_letter(&lower) {
                ColumnKind::Letter(l)
            } else if let Some((n, _)) = EXTRA_LONG_NAMES.iter().find(|(n, _)| *n == lower) {
                ColumnKind::Extra(n)
            } else {
                warnings.push_str(&format!("squeue: error: Invalid job format specification: {name}\n"));
                ColumnKind::Invalid
            };
            let header = match &kind {
                ColumnKind::Letter(l) => letter_info(*l).map(|(h, _)| h).unwrap_or_default().to_string(),
                ColumnKind::Extra(n) => {
                    EXTRA_LONG_NAMES.iter().find(|(x, _)| x == n).map(|(_, h)| h.to_string()).unwrap_or_default()
                }
                ColumnKind::Invalid => String::new(),
            };
            cols.push(Column { header, width, right, suffix, kind });
        }
        return (String::new(), cols);
    }
    let default = match (o.start, o.long) {
        (true, _) => START_FORMAT,
        (false, true) => LONG_FORMAT,
        (false, false) => DEFAULT_FORMAT,
    };
    let spec = o.format.as_deref().unwrap_or(default);
    let parsed = parse_percent_format(spec);
    let cols = parsed
        .fields
        .into_iter()
        .map(|f| match letter_info(f.letter) {
            Some((header, _)) => Column {
                header: header.to_string(),
                width: f.width,
                right: f.right,
                suffix: f.suffix,
                kind: ColumnKind::Letter(f.letter),
            },
            None => {
                warnings.push_str(&format!("squeue: error: Invalid job format specification: {}\n", f.letter));
                let width = if f.width > 0 { f.width.to_string() } else { String::new() };
                let token = format!("%{}{width}{}{}", if f.right { "." } else { "" }, f.letter, f.suffix);
                Column { header: String::new(), width: 0, right: false, suffix: token, kind: ColumnKind::Invalid }
            }
        })
        .collect();
    (parsed.prefix, cols)
}

/// Prints `jobs` (everything the head knows) as squeue would with options `o` at `now`.
pub fn render_squeue(jobs: &[SlurmJob], o: &SqueueOptions, now: Timestamp) -> Output {
    if let Some(help) = o.help {
        return Output { stdout: help.to_string(), ..Output::default() };
    }
    let known: Vec<&SlurmJob> = jobs.iter().filter(|j| still_known(j, now)).collect();
    // squeue asks slurmctld for one job when -j names exactly one; an unknown one fails.
    if let Some([single]) = o.jobs.as_deref() {
        if !known.iter().any(|j| single.matches(j)) {
            return Output::fail("slurm_load_jobs error: Invalid job id specified");
        }
    }
    let mut picked: Vec<&SlurmJob> = known.into_iter().filter(|j| selected(j, o)).collect();
    picked.sort_by_cached_key(|j| sort_key(j));
    if o.start {
        // `--sort=S`: the earliest planned start first, those without one after.
        picked.sort_by_key(|j| j.start_time.or(j.planned_start).map_or(i64::MAX, |t| t.0));
    }
    if let Some(wanted) = &o.steps {
        return render_steps(&picked, wanted, o.no_header, now);
    }
    if o.json {
        let list: Vec<serde_json::Value> = picked.iter().map(|j| job_json(j, now)).collect();
        let doc = serde_json::json!({ "meta": { "Slurm": { "release": "22.05.8" } }, "errors": [], "jobs": list });
        let text = serde_json::to_string_pretty(&doc).unwrap_or_default();
        return Output { stdout: text + "\n", ..Output::default() };
    }
    let rows = if o.array_elements {
        picked.into_iter().map(|job| Row { job, tasks: None }).collect()
    } else {
        fold_arrays(picked)
    };
    let mut out = Output::default();
    let (prefix, cols) = columns(o, &mut out.stderr);
    if o.long {
        out.stdout.push_str(&date_line(now));
        out.stdout.push('\n');
    }
    if !o.no_header {
        out.stdout.push_str(&prefix);
        for c in &cols {
            let cut = !matches!(c.kind, ColumnKind::Letter('N' | 'R'));
            out.stdout.push_str(&pad(&c.header, c.width, c.right, cut));
            out.stdout.push_str(&c.suffix);
        }
        out.stdout.push('\n');
    }
    for row in &rows {
        out.stdout.push_str(&prefix);
        for c in &cols {
            let (value, cut) = match c.kind {
                ColumnKind::Letter(l) => (letter_value(l, row, now), cut_for(l, row) == Cut::Yes),
                ColumnKind::Extra(n) => (extra_value(n, row.job), true),
                ColumnKind::Invalid => (String::new(), true),
            };
            out.stdout.push_str(&pad(&value, c.width, c.right, cut));
            out.stdout.push_str(&c.suffix);
        }
        out.stdout.push('\n');
    }
    out
}

/// `squeue -s`: the running steps of `jobs` (`wanted`: only these `JOB.STEP` ids, when any),
/// in squeue's default step format `%.15i %.8j %.9P %.8u %.9M %N`.
fn render_steps(jobs: &[&SlurmJob], wanted: &[String], no_header: bool, now: Timestamp) -> Output {
    let line = |id: &str, name: &str, part: &str, user: &str, time: &str, nodes: &str| {
        format!(
            "{} {} {} {} {} {}\n",
            pad(id, 15, true, true),
            pad(name, 8, true, true),
            pad(part, 9, true, true),
            pad(user, 8, true, true),
            pad(time, 9, true, true),
            nodes
        )
    };
    let mut out = Output::default();
    if !no_header {
        out.stdout.push_str(&line("STEPID", "NAME", "PARTITION", "USER", "TIME", "NODELIST"));
    }
    for job in jobs.iter().filter(|j| j.state == SlurmJobState::Running) {
        for s in job.steps.iter().filter(|s| s.state == SlurmJobState::Running) {
            let id = format!("{}.{}", crate::format::job_id_str(job), s.step_id);
            if !wanted.is_empty() && !wanted.contains(&id) {
                continue;
            }
            let time = crate::format::squeue_secs(secs_between(s.start_time, now) as i64);
            let nodes = crate::format::nodes_str(&s.nodes);
            out.stdout.push_str(&line(&id, &s.name, &job.partition, &job.user, &time, &nodes));
        }
    }
    out
}

#[cfg(test)]
#[path = "queue_tests.rs"]
mod tests;
