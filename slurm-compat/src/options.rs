//! sbatch's options: the table (every option sbatch 22.05 knows, so real scripts do not fail
//! on ones gangway has no use for), and [`JobOptions`], what they add up to once applied in
//! order — `#SBATCH` lines first, then the command line, the last setting of an option winning.
//!
//! Values Slurm checks as it reads them (`--time`, `--nodes`, `--mem`, …) are checked here as
//! they are applied, so a bad `#SBATCH` value fails even when the command line overrides it,
//! as in Slurm; values the controller checks (`--array`, `--dependency`, `--gres`,
//! `--export`) are kept as text and checked once, on the final value, by `resolve`.

use crate::begin::{parse_begin, BeginTime};
use crate::error::SlurmError;
use crate::getopt::{Found, HasArg, OptDef};
use crate::time::{parse_time_limit, TimeLimit};
use crate::values::{self, SignalSpec, Switches};

/// What an option does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opt {
    Account,
    Array,
    Begin,
    Chdir,
    Constraint,
    CpusPerGpu,
    CpusPerTask,
    Deadline,
    Dependency,
    Error,
    Exclusive,
    Export,
    Gpus,
    GpusPerNode,
    GpusPerTask,
    Gres,
    Hint,
    Hold,
    JobName,
    KillOnInvalidDep,
    MailType,
    MailUser,
    Mem,
    MemPerCpu,
    MemPerGpu,
    Nodes,
    NoRequeue,
    Nice,
    Comment,
    ThreadsPerCore,
    Ntasks,
    NtasksPerNode,
    Output,
    Oversubscribe,
    Parsable,
    Partition,
    Qos,
    Requeue,
    Signal,
    Switches,
    TestOnly,
    Time,
    TimeMin,
    Uid,
    Gid,
    Wait,
    Wrap,
    /// `--help`, `--usage`, `--version`: sbatch prints and exits; nothing to resolve.
    Info,
    /// `--verbose`, `--quiet`: no effect on the job.
    Chatter,
    /// Known to sbatch, accepted, and ignored by gangway with a warning.
    Ignored,
}

/// Two table entries are the same option when their keys are equal: for [`Opt::Ignored`]
/// entries, the long name tells them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key(pub Opt, pub &'static str);

const fn def(long: &'static str, short: Option<char>, has_arg: HasArg, opt: Opt) -> OptDef<Key> {
    let name = if matches!(opt, Opt::Ignored | Opt::Info) { long } else { "" };
    OptDef { long, short, has_arg, key: Key(opt, name) }
}

use HasArg::{No, Optional as Maybe, Required as Req};

/// sbatch's options (Slurm 22.05, plus a few later additions scripts may carry).
pub static SBATCH_OPTIONS: &[OptDef<Key>] = &[
    def("account", Some('A'), Req, Opt::Account),
    def("acctg-freq", None, Req, Opt::Ignored),
    def("array", Some('a'), Req, Opt::Array),
    def("batch", None, Req, Opt::Ignored),
    def("bb", None, Req, Opt::Ignored),
    def("bbf", None, Req, Opt::Ignored),
    def("begin", Some('b'), Req, Opt::Begin),
    def("chdir", Some('D'), Req, Opt::Chdir),
    def("cluster", None, Req, Opt::Ignored),
    def("cluster-constraint", None, Req, Opt::Ignored),
    def("clusters", Some('M'), Req, Opt::Ignored),
    def("comment", None, Req, Opt::Comment),
    def("constraint", Some('C'), Req, Opt::Constraint),
    def("container", None, Req, Opt::Ignored),
    def("container-id", None, Req, Opt::Ignored),
    def("context", None, Req, Opt::Ignored),
    def("contiguous", None, No, Opt::Ignored),
    def("core-spec", Some('S'), Req, Opt::Ignored),
    def("cores-per-socket", None, Req, Opt::Ignored),
    def("cpu-freq", None, Req, Opt::Ignored),
    def("cpus-per-gpu", None, Req, Opt::CpusPerGpu),
    def("cpus-per-task", Some('c'), Req, Opt::CpusPerTask),
    def("deadline", None, Req, Opt::Deadline),
    def("delay-boot", None, Req, Opt::Ignored),
    def("dependency", Some('d'), Req, Opt::Dependency),
    def("distribution", Some('m'), Req, Opt::Ignored),
    def("error", Some('e'), Req, Opt::Error),
    def("exclude", Some('x'), Req, Opt::Ignored),
    def("exclusive", None, Maybe, Opt::Exclusive),
    def("export", None, Req, Opt::Export),
    def("export-file", None, Req, Opt::Ignored),
    def("extra", None, Req, Opt::Ignored),
    def("extra-node-info", Some('B'), Req, Opt::Ignored),
    def("get-user-env", None, Maybe, Opt::Ignored),
    def("gid", None, Req, Opt::Gid),
    def("gpu-bind", None, Req, Opt::Ignored),
    def("gpu-freq", None, Req, Opt::Ignored),
    def("gpus", Some('G'), Req, Opt::Gpus),
    def("gpus-per-node", None, Req, Opt::GpusPerNode),
    def("gpus-per-socket", None, Req, Opt::Ignored),
    def("gpus-per-task", None, Req, Opt::GpusPerTask),
    def("gres", None, Req, Opt::Gres),
    def("gres-flags", None, Req, Opt::Ignored),
    def("help", Some('h'), No, Opt::Info),
    def("hint", None, Req, Opt::Hint),
    def("hold", Some('H'), No, Opt::Hold),
    def("ignore-pbs", None, No, Opt::Ignored),
    def("input", Some('i'), Req, Opt::Ignored),
    def("job-name", Some('J'), Req, Opt::JobName),
    def("kill-on-invalid-dep", None, Req, Opt::KillOnInvalidDep),
    def("licenses", Some('L'), Req, Opt::Ignored),
    def("mail-type", None, Req, Opt::MailType),
    def("mail-user", None, Req, Opt::MailUser),
    def("mcs-label", None, Req, Opt::Ignored),
    def("mem", None, Req, Opt::Mem),
    def("mem-bind", None, Req, Opt::Ignored),
    def("mem-per-cpu", None, Req, Opt::MemPerCpu),
    def("mem-per-gpu", None, Req, Opt::MemPerGpu),
    def("mincpus", None, Req, Opt::Ignored),
    def("network", None, Req, Opt::Ignored),
    def("nice", None, Maybe, Opt::Nice),
    def("no-kill", Some('k'), Maybe, Opt::Ignored),
    def("no-requeue", None, No, Opt::NoRequeue),
    def("nodefile", Some('F'), Req, Opt::Ignored),
    def("nodelist", Some('w'), Req, Opt::Ignored),
    def("nodes", Some('N'), Req, Opt::Nodes),
    def("ntasks", Some('n'), Req, Opt::Ntasks),
    def("ntasks-per-core", None, Req, Opt::Ignored),
    def("ntasks-per-gpu", None, Req, Opt::Ignored),
    def("ntasks-per-node", None, Req, Opt::NtasksPerNode),
    def("ntasks-per-socket", None, Req, Opt::Ignored),
    def("ntasks-per-tres", None, Req, Opt::Ignored),
    def("open-mode", None, Req, Opt::Ignored),
    def("output", Some('o'), Req, Opt::Output),
    def("overcommit", Some('O'), No, Opt::Ignored),
    def("oversubscribe", Some('s'), No, Opt::Oversubscribe),
    def("parsable", None, No, Opt::Parsable),
    def("partition", Some('p'), Req, Opt::Partition),
    def("power", None, Req, Opt::Ignored),
    def("prefer", None, Req, Opt::Ignored),
    def("priority", None, Req, Opt::Ignored),
    def("profile", None, Req, Opt::Ignored),
    def("propagate", None, Maybe, Opt::Ignored),
    def("qos", Some('q'), Req, Opt::Qos),
    def("quiet", Some('Q'), No, Opt::Chatter),
    def("reboot", None, No, Opt::Ignored),
    def("requeue", None, No, Opt::Requeue),
    def("reservation", None, Req, Opt::Ignored),
    def("signal", None, Req, Opt::Signal),
    def("sockets-per-node", None, Req, Opt::Ignored),
    def("spread-job", None, No, Opt::Ignored),
    def("switches", None, Req, Opt::Switches),
    def("tasks-per-node", None, Req, Opt::NtasksPerNode),
    def("test-only", None, No, Opt::TestOnly),
    def("thread-spec", None, Req, Opt::Ignored),
    def("threads-per-core", None, Req, Opt::ThreadsPerCore),
    def("time", Some('t'), Req, Opt::Time),
    def("time-min", None, Req, Opt::TimeMin),
    def("tmp", None, Req, Opt::Ignored),
    def("tres-bind", None, Req, Opt::Ignored),
    def("tres-per-task", None, Req, Opt::Ignored),
    def("uid", None, Req, Opt::Uid),
    def("usage", None, No, Opt::Info),
    def("use-min-nodes", None, No, Opt::Ignored),
    def("verbose", Some('v'), No, Opt::Chatter),
    def("version", Some('V'), No, Opt::Info),
    def("wait", Some('W'), No, Opt::Wait),
    def("wait-all-nodes", None, Req, Opt::Ignored),
    def("wckey", None, Req, Opt::Ignored),
    def("wrap", None, Req, Opt::Wrap),
];

/// Everything the options add up to, before defaults and the controller's checks.
#[derive(Debug, Default)]
pub struct JobOptions {
    pub nodes: Option<(u32, Option<u32>)>,
    pub ntasks: Option<u32>,
    pub ntasks_per_node: Option<u32>,
    pub cpus_per_task: Option<u32>,
    pub cpus_per_gpu: Option<u32>,
    pub time_limit: Option<TimeLimit>,
    pub mem: Option<u64>,
    pub mem_per_cpu: Option<u64>,
    pub mem_per_gpu: Option<u64>,
    pub gres: Option<String>,
    pub gpus: Option<String>,
    pub gpus_per_node: Option<String>,
    pub gpus_per_task: Option<String>,
    pub name: Option<String>,
    pub output: Option<String>,
    pub error: Option<String>,
    pub array: Option<String>,
    pub dependency: Option<String>,
    pub partition: Option<String>,
    pub account: Option<String>,
    pub qos: Option<String>,
    pub constraint: Option<String>,
    /// `Some(true)` whole nodes, `Some(false)` oversubscribe, `None` shared (the default).
    pub exclusive: Option<bool>,
    pub exclusive_set: bool,
    pub oversubscribe_set: bool,
    pub export: Option<String>,
    pub chdir: Option<String>,
    pub wrap: Option<String>,
    pub parsable: bool,
    pub hold: bool,
    /// `--kill-on-invalid-dep=yes`.
    pub kill_on_invalid_dep: bool,
    /// `--uid`/`--gid`: submit as another user (an admin's option; the head refuses others).
    pub uid: Option<String>,
    pub gid: Option<String>,
    pub wait: bool,
    pub test_only: bool,
    pub begin: Option<BeginTime>,
    pub mail_types: Vec<String>,
    pub mail_user: Option<String>,
    pub signal: Option<SignalSpec>,
    pub requeue: Option<bool>,
    /// `--nice[=N]` (100 when no N is given).
    pub nice: Option<i32>,
    /// `--comment`.
    pub comment: Option<String>,
    /// `--hint=nomultithread` (1) or `--threads-per-core`.
    pub threads_per_core: Option<u32>,
    pub switches: Option<Switches>,
    pub warnings: Vec<String>,
    /// The warnings Slurm's sbatch itself prints (the rest only with `-v`).
    pub slurm_warnings: Vec<String>,
    /// `-v`, counted.
    pub verbose: u32,
}

impl JobOptions {
    /// Applies one option, in order.
    pub fn apply(&mut self, found: Found<Key>) -> Result<(), SlurmError> {
        let Found { key: Key(opt, _), name, value } = found;
        let v = value.clone().unwrap_or_default();
        match opt {
            Opt::Account => self.account = Some(v),
            Opt::Array => self.array = Some(v),
            Opt::Begin => {
                self.begin = Some(parse_begin(&v).map_err(|source| SlurmError::Begin { option: "begin", source })?);
            }
            Opt::Chdir => self.chdir = Some(v),
            Opt::Constraint => self.constraint = Some(v),
            Opt::CpusPerGpu => {
                self.cpus_per_gpu = Some(values::positive_int(name, &v)?);
            }
            Opt::CpusPerTask => self.cpus_per_task = Some(values::positive_int(name, &v)?),
            Opt::Deadline => {
                parse_begin(&v).map_err(|source| SlurmError::Begin { option: "deadline", source })?;
                self.warn("--deadline is accepted but ignored");
            }
            Opt::Dependency => self.dependency = Some(v),
            Opt::Error => self.error = Some(none_is_dev_null(v)),
            Opt::Exclusive => {
                self.exclusive = values::exclusive(value.as_deref())?;
                self.exclusive_set = true;
                if self.exclusive.is_none() {
                    self.warn(&format!(
                        "--exclusive={v} is accepted but ignored: gangway allocates whole nodes or shares them"
                    ));
                }
            }
            Opt::Oversubscribe => {
                self.exclusive = Some(false);
                self.oversubscribe_set = true;
            }
            Opt::Export => self.export = Some(v),
            Opt::Gpus => self.gpus = Some(v),
            Opt::GpusPerNode => self.gpus_per_node = Some(v),
            Opt::GpusPerTask => self.gpus_per_task = Some(v),
            Opt::Gres => self.gres = Some(v),
            Opt::Hint => {
                values::hint(&v)?;
                for word in v.split(',') {
                    match word {
                        // compute_bound: every core of a socket, one thread each.
                        "nomultithread" | "compute_bound" => self.threads_per_core = Some(1),
                        "multithread" => self.threads_per_core = None,
                        _ => self.warn(&format!("--hint={word} is accepted but ignored")),
                    }
                }
            }
            Opt::ThreadsPerCore => {
                let n = v.parse::<u32>().ok().filter(|n| *n > 0);
                self.threads_per_core = Some(n.ok_or(SlurmError::Spec {
                    option: "--threads-per-core",
                    value: v.clone(),
                    expected: "a positive number",
                })?);
            }
            Opt::Hold => self.hold = true,
            Opt::KillOnInvalidDep => {
                self.kill_on_invalid_dep = match v.to_ascii_lowercase().as_str() {
                    "yes" => true,
                    "no" => false,
                    _ => {
                        return Err(SlurmError::Spec { option: "kill-on-invalid-dep", value: v, expected: "yes or no" })
                    }
                }
            }
            Opt::Uid => self.uid = Some(v),
            Opt::Gid => self.gid = Some(v),
            Opt::JobName => self.name = Some(v),
            Opt::MailType => {
                // Slurm ORs the events in, so a later `NONE` clears nothing.
                let events = values::mail_types(&v)?;
                if !events.is_empty() {
                    self.mail_types.extend(events);
                    self.warn("--mail-type is recorded, but gangway sends no mail");
                }
            }
            Opt::MailUser => {
                self.mail_user = Some(v);
                self.warn("--mail-user is recorded, but gangway sends no mail");
            }
            Opt::Mem => self.mem = Some(values::megabytes(name, &v)?),
            Opt::MemPerCpu => self.mem_per_cpu = Some(values::megabytes(name, &v)?),
            Opt::MemPerGpu => {
                self.mem_per_gpu = Some(values::megabytes(name, &v)?);
            }
            Opt::Nodes => self.nodes = Some(values::node_count(&v)?),
            Opt::Ntasks => self.ntasks = Some(values::positive_int(name, &v)?),
            Opt::NtasksPerNode => self.ntasks_per_node = Some(values::positive_int("ntasks-per-node", &v)?),
            Opt::NoRequeue => {
                self.requeue = Some(false);
                self.warn("--no-requeue is accepted but ignored");
            }
            Opt::Output => self.output = Some(none_is_dev_null(v)),
            Opt::Parsable => self.parsable = true,
            Opt::Partition => self.partition = Some(v),
            Opt::Qos => self.qos = Some(v),
            Opt::Comment => self.comment = Some(v),
            Opt::Nice => {
                let n = if v.is_empty() {
                    100
                } else {
                    v.trim().parse().map_err(|_| SlurmError::Number { option: name, value: v.clone() })?
                };
                self.nice = Some(n);
            }
            Opt::Requeue => {
                self.requeue = Some(true);
                self.warn("--requeue is accepted but ignored");
            }
            Opt::Signal => {
                self.signal = Some(values::signal(&v)?);
                self.warn("--signal is accepted but ignored: no signal is sent before the time limit");
            }
            Opt::Switches => {
                self.switches = Some(values::switches(&v)?);
                self.warn("--switches is accepted but ignored");
            }
            Opt::TestOnly => self.test_only = true,
            Opt::Time => {
                self.time_limit =
                    Some(parse_time_limit(&v).map_err(|source| SlurmError::Time { option: "time", source })?);
            }
            Opt::TimeMin => {
                parse_time_limit(&v).map_err(|source| SlurmError::Time { option: "time-min", source })?;
                self.warn("--time-min is accepted but ignored");
            }
            Opt::Wait => self.wait = true,
            Opt::Wrap => self.wrap = Some(v),
            Opt::Info => self.warn(&format!("--{name} is ignored here (sbatch would print it and exit)")),
            Opt::Chatter if name == "verbose" => self.verbose += 1,
            Opt::Chatter => {}
            Opt::Ignored => self.warn(&format!("--{name} is accepted but ignored")),
        }
        Ok(())
    }

    /// Records a warning once: what gangway notes that Slurm passes over in silence (sbatch
    /// prints it only with `-v`; `gangway-slurm parse` always shows it).
    pub fn warn(&mut self, message: &str) {
        if !self.warnings.iter().any(|w| w == message) {
            self.warnings.push(message.to_string());
        }
    }

    /// Records a warning Slurm's sbatch prints as well (always printed).
    pub fn slurm_warn(&mut self, message: &str) {
        self.warn(message);
        if !self.slurm_warnings.iter().any(|w| w == message) {
            self.slurm_warnings.push(message.to_string());
        }
    }
}

/// `--output=none` and `--error=none` (any case) mean `/dev/null`.
fn none_is_dev_null(v: String) -> String {
    if v.eq_ignore_ascii_case("none") {
        "/dev/null".to_string()
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_unique() {
        for w in SBATCH_OPTIONS.windows(2) {
            assert!(w[0].long < w[1].long, "{} before {}", w[0].long, w[1].long);
        }
        let mut shorts: Vec<char> = SBATCH_OPTIONS.iter().filter_map(|d| d.short).collect();
        let n = shorts.len();
        shorts.sort_unstable();
        shorts.dedup();
        assert_eq!(shorts.len(), n, "a short option is used twice");
    }

    #[test]
    fn sbatch_short_options() {
        let shorts: String = {
            let mut v: Vec<char> = SBATCH_OPTIONS.iter().filter_map(|d| d.short).collect();
            v.sort_unstable();
            v.into_iter().collect()
        };
        assert_eq!(shorts, "ABCDFGHJLMNOQSVWabcdehikmnopqstvwx");
    }
}
