//! What `squeue`, `sinfo`, `sacct` and `scontrol show` share: reading `%`-format strings,
//! padding and cutting columns the way Slurm's `printf` calls do, Slurm's time, duration and
//! exit-code spellings, and the `-t`/`-s` state and `-u` user and `-j` id lists.
//!
//! Times are printed and read in UTC: the commands are pure (no clock, no time zone), the
//! caller passes "now", and gangway's clusters run in UTC (so did the reference).

use gangway_api::slurm::{SlurmJob, SlurmJobState};
use gangway_api::time::civil_from_days;
use gangway_api::Timestamp;

/// One `%` field of a `-o` format: `%[.][width]letter` followed by literal text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PercentField {
    /// The field letter (`i`, `P`, …).
    pub letter: char,
    /// Width; 0 prints the value as it is.
    pub width: usize,
    /// `.`: right-justified.
    pub right: bool,
    /// The literal text up to the next `%`.
    pub suffix: String,
}

/// A parsed `-o` format: literal text before the first `%`, then the fields.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PercentFormat {
    /// Text printed before the first field.
    pub prefix: String,
    /// The fields in order.
    pub fields: Vec<PercentField>,
}

/// Reads a `-o` format as squeue's and sinfo's `_parse_token` do: the text is split at every
/// `%` (so `%%` is no field at all, as with `strtok`), each piece is an optional `.`, a
/// decimal width and a letter, and the rest of the piece is printed after the field.
/// A `#` width (sinfo's "as wide as the widest value") is returned as `usize::MAX`.
pub fn parse_percent_format(format: &str) -> PercentFormat {
    let mut out = PercentFormat::default();
    let mut pieces = format.split('%');
    out.prefix = pieces.next().unwrap_or_default().to_string();
    for piece in pieces.filter(|p| !p.is_empty()) {
        let mut chars = piece.char_indices().peekable();
        let right = matches!(chars.peek(), Some((_, '.')));
        if right {
            chars.next();
        }
        let mut width: usize = 0;
        let mut auto = false;
        while let Some(&(_, c)) = chars.peek() {
            match c {
                '0'..='9' => width = width.saturating_mul(10).saturating_add(c as usize - '0' as usize),
                '#' => auto = true,
                _ => break,
            }
            chars.next();
        }
        // Slurm takes whatever byte follows as the letter, even the end of the piece.
        let Some((at, letter)) = chars.next() else {
            out.fields.push(PercentField { letter: '\0', width, right, suffix: String::new() });
            continue;
        };
        let suffix = piece[at + letter.len_utf8()..].to_string();
        out.fields.push(PercentField { letter, width: if auto { usize::MAX } else { width }, right, suffix });
    }
    out
}

/// Cap on a single column, so a `%99999999i` cannot make us print gigabytes.
const MAX_WIDTH: usize = 4096;

/// squeue's `_print_str`: right-justified values are padded on the left, left-justified
/// ones on the right; with `cut` (every field but node lists) the value is cut to `width`.
/// A width of 0 prints the value as it is.
pub fn pad(value: &str, width: usize, right: bool, cut: bool) -> String {
    let width = width.min(MAX_WIDTH);
    if width == 0 {
        return value.to_string();
    }
    // `%.Ns` (left-justified) always cuts; `%Ns` only through squeue's cut buffer.
    let shown: String = if (cut || !right) && value.chars().count() > width {
        value.chars().take(width).collect()
    } else {
        value.to_string()
    };
    let shown_len = shown.chars().count();
    if shown_len >= width {
        return shown;
    }
    let fill = " ".repeat(width - shown_len);
    if right {
        fill + &shown
    } else {
        shown + &fill
    }
}

/// squeue's `_print_secs` (`%M`, `%l`, `%L`): `M:SS`, `H:MM:SS` or `D-HH:MM:SS`; negative or
/// more than a year is `INVALID`.
pub fn squeue_secs(secs: i64) -> String {
    const YEAR: i64 = 365 * 24 * 3600;
    if !(0..=YEAR).contains(&secs) {
        return "INVALID".into();
    }
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}-{h:02}:{m:02}:{s:02}")
    } else if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

/// Slurm's `secs2time_str` (sacct's `Elapsed`, scontrol's `RunTime`): `HH:MM:SS` or
/// `D-HH:MM:SS`.
pub fn clock_secs(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}-{h:02}:{m:02}:{s:02}")
    } else {
        format!("{h:02}:{m:02}:{s:02}")
    }
}

/// A time limit as scontrol and sacct print it: `UNLIMITED` or [`clock_secs`].
pub fn limit_str(limit_s: Option<u64>) -> String {
    limit_s.map_or_else(|| "UNLIMITED".into(), clock_secs)
}

/// Slurm's `slurm_make_time_str` with its default format: `2026-11-23T05:49:44`.
pub fn iso_time(t: Timestamp) -> String {
    let secs = t.0.div_euclid(1_000_000);
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}", sod / 3600, sod / 60 % 60, sod % 60)
}

/// `iso_time`, or `missing` (`N/A` for squeue, `Unknown` for sacct and scontrol).
pub fn time_or(t: Option<Timestamp>, missing: &str) -> String {
    t.map_or_else(|| missing.to_string(), iso_time)
}

/// The date line `squeue -l` and `sinfo -l` print first: `Mon Nov 23 09:40:00 2026`.
pub fn date_line(now: Timestamp) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let secs = now.0.div_euclid(1_000_000);
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    let weekday = DAYS[days.rem_euclid(7) as usize];
    let month = MONTHS[(m as usize).saturating_sub(1).min(11)];
    format!("{weekday} {month} {d:2} {:02}:{:02}:{:02} {y}", sod / 3600, sod / 60 % 60, sod % 60)
}

/// Seconds from `from` to `to` (0 if `to` is earlier).
pub fn secs_between(from: Timestamp, to: Timestamp) -> u64 {
    to.micros_since(from) / 1_000_000
}

/// How long a job has run (squeue's `job_time_used`): 0 while pending, up to now while
/// running, up to its end once ended.
pub fn run_secs(job: &SlurmJob, now: Timestamp) -> u64 {
    match (job.state, job.start_time) {
        (SlurmJobState::Pending, _) | (_, None) => 0,
        (_, Some(start)) => secs_between(start, job.end_time.unwrap_or(now)),
    }
}

/// `ExitCode`: `code:signal`, as sacct and scontrol print it.
pub fn exit_code_str(job: &SlurmJob) -> String {
    format!("{}:{}", job.exit_code.unwrap_or(0), job.signal.unwrap_or(0))
}

/// The job id `%i` and sacct's `JobID` print: `123`, or `100_4` for an array element.
pub fn job_id_str(job: &SlurmJob) -> String {
    match (job.array_job_id, job.array_task_id) {
        (Some(a), Some(t)) => format!("{a}_{t}"),
        _ => job.job_id.to_string(),
    }
}

/// Nodes as a compressed hostlist (`node[01-04]`), sorted as Slurm's node bitmaps are;
/// empty for none.
pub fn nodes_str(nodes: &[String]) -> String {
    gangway_topology::hostlist::compress_hostlist(nodes)
}

/// A size in MiB as Slurm's `convert_num_unit` writes it: `512M`, `4G`, `1.50G`.
pub fn mem_str(value: u64, start_unit: usize) -> String {
    const UNITS: [char; 6] = ['K', 'M', 'G', 'T', 'P', 'E'];
    let mut v = value as f64;
    let mut unit = start_unit.min(UNITS.len() - 1);
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if v.fract() == 0.0 {
        format!("{v:.0}{}", UNITS[unit])
    } else {
        format!("{v:.2}{}", UNITS[unit])
    }
}

/// A size in MiB as `scontrol show job` writes it (Slurm's `CONVERT_NUM_UNIT_EXACT`): in a
/// larger unit only while it divides exactly: `162000M`, `4G`, `1536M`; nothing is `0`.
pub fn mem_str_exact(value: u64, start_unit: usize) -> String {
    if value == 0 {
        return "0".into();
    }
    const UNITS: [char; 6] = ['K', 'M', 'G', 'T', 'P', 'E'];
    let (mut v, mut unit) = (value, start_unit.min(UNITS.len() - 1));
    while v >= 1024 && v % 1024 == 0 && unit + 1 < UNITS.len() {
        v /= 1024;
        unit += 1;
    }
    format!("{v}{}", UNITS[unit])
}

/// The civil date of a timestamp (UTC).
pub(crate) fn civil_date(t: Timestamp) -> (i64, u32, u32) {
    civil_from_days(t.0.div_euclid(1_000_000).div_euclid(86_400))
}

/// Which job states a `-t`/`-s` list asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateFilter {
    /// `all`.
    All,
    /// The listed states gangway has; states it never produces (`SUSPENDED`, `PREEMPTED`, …)
    /// are accepted and match nothing.
    Some(Vec<SlurmJobState>),
}

impl StateFilter {
    /// Whether `state` is asked for.
    pub fn matches(&self, state: SlurmJobState) -> bool {
        match self {
            StateFilter::All => true,
            StateFilter::Some(states) => states.contains(&state),
        }
    }
}

const ALL_STATES: [SlurmJobState; 8] = [
    SlurmJobState::Pending,
    SlurmJobState::Running,
    SlurmJobState::Completed,
    SlurmJobState::Failed,
    SlurmJobState::Cancelled,
    SlurmJobState::Timeout,
    SlurmJobState::NodeFail,
    SlurmJobState::Completing,
];

/// Slurm's states gangway never reports, long and compact names (`job_state_num` knows them).
const OTHER_STATES: [(&str, &str); 12] = [
    ("SUSPENDED", "S"),
    ("BOOT_FAIL", "BF"),
    ("DEADLINE", "DL"),
    ("OUT_OF_MEMORY", "OOM"),
    ("PREEMPTED", "PR"),
    ("CONFIGURING", "CF"),
    ("RESIZING", "RS"),
    ("REQUEUED", "RQ"),
    ("REQUEUE_FED", "RF"),
    ("REQUEUE_HOLD", "RH"),
    ("REVOKED", "RV"),
    ("SPECIAL_EXIT", "SE"),
];

/// Reads a `-t`/`--states` list (squeue) or `-s`/`--state` list (sacct): comma-separated long
/// or compact names in any case, or `all`. The error is the two lines squeue prints.
pub fn parse_states(list: &str) -> Result<StateFilter, String> {
    if list.eq_ignore_ascii_case("all") {
        return Ok(StateFilter::All);
    }
    let mut states = Vec::new();
    for word in list.split(',').filter(|w| !w.is_empty()) {
        if let Some(s) =
            ALL_STATES.iter().find(|s| word.eq_ignore_ascii_case(s.as_str()) || word.eq_ignore_ascii_case(s.short()))
        {
            states.push(*s);
        } else if !OTHER_STATES.iter().any(|(l, c)| word.eq_ignore_ascii_case(l) || word.eq_ignore_ascii_case(c)) {
            let mut valid: Vec<&str> = ALL_STATES.iter().map(|s| s.as_str()).collect();
            valid.extend(OTHER_STATES.iter().map(|(l, _)| *l));
            return Err(format!("Invalid job state specified: {word}\nValid job states include: {}", valid.join(",")));
        }
    }
    Ok(StateFilter::Some(states))
}

/// A `-u` list: user names or numeric uids, matched against the job's user and uid.
pub fn user_matches(users: &[String], job: &SlurmJob) -> bool {
    users.iter().any(|u| *u == job.user || u.parse::<u32>().ok() == Some(job.uid))
}

/// One entry of a `-j` list: a job id, or an array element `A_T`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobIdSpec {
    /// The job id (or the array's id).
    pub id: u64,
    /// The array index, for `A_T`.
    pub task: Option<u32>,
}

impl JobIdSpec {
    /// Whether `job` is this one: its own id, or its array's id (all elements, or the named one).
    pub fn matches(&self, job: &SlurmJob) -> bool {
        match self.task {
            None => job.job_id == self.id || job.array_job_id == Some(self.id),
            Some(t) => job.array_job_id == Some(self.id) && job.array_task_id == Some(t),
        }
    }
}

/// Reads a `-j` list: `12,13_2,14.batch` (a step suffix is ignored: gangway lists jobs).
/// The error is `Invalid job id: WORD`.
pub fn parse_job_ids(list: &str) -> Result<Vec<JobIdSpec>, String> {
    let mut out = Vec::new();
    for word in list.split(',').filter(|w| !w.is_empty()) {
        let base = word.split('.').next().unwrap_or_default();
        let (id, task) = match base.split_once('_') {
            Some((id, task)) => (id, Some(task)),
            None => (base, None),
        };
        let id = id.parse::<u64>().ok().filter(|&i| i > 0);
        let task = match task {
            None => Some(None),
            Some(t) => t.parse::<u32>().ok().map(Some),
        };
        match (id, task) {
            (Some(id), Some(task)) => out.push(JobIdSpec { id, task }),
            _ => return Err(format!("Invalid job id: {word}")),
        }
    }
    Ok(out)
}

/// What a query command prints and its exit status.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Output {
    /// Standard output.
    pub stdout: String,
    /// Standard error (warnings, or the error that failed the command).
    pub stderr: String,
    /// Exit status.
    pub code: u8,
}

impl Output {
    /// A failure: `message` (lines, without the final newline) on stderr, exit 1.
    pub fn fail(message: impl Into<String>) -> Output {
        Output { stdout: String::new(), stderr: format!("{}\n", message.into()), code: 1 }
    }
}

/// getopt_long without `+`: options may follow other words (squeue, sinfo and sacct scan
/// the whole line); returns the options and the other words. `--` ends the options.
pub(crate) fn scan_permuted<K: Copy + PartialEq>(
    args: &[String],
    table: &[crate::getopt::OptDef<K>],
) -> Result<(Vec<crate::getopt::Found<K>>, Vec<String>), crate::getopt::GetoptError> {
    let mut found = Vec::new();
    let mut words = Vec::new();
    let mut rest = args;
    while !rest.is_empty() {
        let (mut f, at) = crate::getopt::scan(rest, table)?;
        found.append(&mut f);
        if at > 0 && rest.get(at - 1).is_some_and(|a| a == "--") {
            words.extend(rest[at..].iter().cloned());
            break;
        }
        match rest.get(at) {
            Some(word) => {
                words.push(word.clone());
                rest = &rest[at + 1..];
            }
            None => break,
        }
    }
    Ok((found, words))
}

/// The two lines glibc and Slurm print for a bad option.
pub(crate) fn usage_error(command: &str, e: &crate::getopt::GetoptError) -> Output {
    Output::fail(format!("{command}: {e}\nTry \"{command} --help\" for more information"))
}

/// Splits a comma list, dropping empty words.
pub fn comma_list(list: &str) -> Vec<String> {
    list.split(',').filter(|w| !w.is_empty()).map(String::from).collect()
}

#[cfg(test)]
#[path = "format_tests.rs"]
mod tests;

/// Constructed jobs, nodes and pools the query modules' tests format.
#[cfg(test)]
#[path = "fixtures_tests.rs"]
pub(crate) mod fixtures;

/// `0-3,8`: ids as Slurm's bitmap strings print them.
pub use gangway_topology::ids::compress_ids as id_ranges;
