//! From a batch script and sbatch's command line to the job they ask for: [`resolve`] and its
//! pure core [`resolve_source`], and the `parse` report, [`Resolved`].
//!
//! Order as in sbatch: command-line syntax errors first; then the script's own checks; then
//! `#SBATCH` options; then command-line options, which override them; then the controller's
//! checks on the final values (array, dependency, GPUs, export) and Slurm's defaults.
//! Environment variables (`SBATCH_*`) are not read.

use serde::Serialize;

use crate::array::{parse_array_with_max, ArraySpec, MAX_ARRAY_SIZE_LIMIT};
use crate::begin::BeginTime;
use crate::dependency::{parse_dependencies, Dependencies};
use crate::error::SlurmError;
use crate::getopt::{scan, Found};
use crate::gpus::{self, GpuRequest};
use crate::options::{JobOptions, Key, SBATCH_OPTIONS};
use crate::patterns::{DEFAULT_ARRAY_OUTPUT, DEFAULT_OUTPUT};
use crate::script::{check_script, directives};
use crate::time::TimeLimit;
use crate::values::{self, Export, SignalSpec, Switches};

/// The job a script and its options ask for, with Slurm's defaults filled in: what
/// `gangway-slurm parse` prints. The serialised keys are exactly the fields below except
/// `submit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resolved {
    /// `-N/--nodes`: at least `min` nodes, at most `max` (`null`: as many as the tasks need).
    pub nodes: NodeRange,
    /// `-n/--ntasks`; without it, nodes × `--ntasks-per-node`, else one per node.
    pub ntasks: u32,
    /// `--cpus-per-gpu`: CPUs for each GPU the job gets on a node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus_per_gpu: Option<u32>,
    /// `--ntasks-per-node`.
    pub ntasks_per_node: Option<u32>,
    /// `-c/--cpus-per-task` (default 1).
    pub cpus_per_task: u32,
    /// GPUs asked for, if any.
    pub gpus: Option<GpuRequest>,
    /// `--mem` (per node) or `--mem-per-cpu`, in megabytes; `0` per node means all of it.
    pub mem_mb: Option<MemoryRequest>,
    /// `-t/--time` in seconds (whole minutes, as Slurm keeps it); `null` for no limit given,
    /// `UNLIMITED` or `0` (the partition's limit applies).
    pub time_limit_s: Option<u64>,
    /// `-J/--job-name`; by default the script's file name, or `wrap`.
    pub name: String,
    /// `-o/--output` pattern; by default `slurm-%j.out`, or `slurm-%A_%a.out` for arrays.
    pub output: String,
    /// `-e/--error` pattern; by default the output file (both streams in one file).
    pub error: String,
    /// `-a/--array`.
    pub array: Option<ArraySpec>,
    /// `-d/--dependency`.
    pub dependencies: Option<Dependencies>,
    /// `-p/--partition` (a gangway pool).
    pub partition: Option<String>,
    /// `-A/--account`.
    pub account: Option<String>,
    /// `-q/--qos`.
    pub qos: Option<String>,
    /// `-C/--constraint`.
    pub constraint: Option<String>,
    /// `--exclusive`: whole nodes.
    pub exclusive: bool,
    /// `--export` (default `ALL`).
    pub export: Export,
    /// `-D/--chdir`; `null` for the directory sbatch runs in.
    pub chdir: Option<String>,
    /// Options accepted but ignored, and directives Slurm would skip.
    pub warnings: Vec<String>,
    /// How to submit (not part of the job description).
    #[serde(skip)]
    pub submit: SubmitOptions,
}

/// A node count range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct NodeRange {
    /// The fewest nodes.
    pub min: u32,
    /// The most nodes, if bounded.
    pub max: Option<u32>,
}

/// Memory per node, per CPU or per GPU, in megabytes (one of them is set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MemoryRequest {
    /// `--mem`.
    pub per_node: Option<u64>,
    /// `--mem-per-cpu`.
    pub per_cpu: Option<u64>,
    /// `--mem-per-gpu`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_gpu: Option<u64>,
}

/// What sbatch itself does with a job beyond describing it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubmitOptions {
    /// Words after the script name, passed to the script.
    pub script_args: Vec<String>,
    /// The script to run: the file's text, or the one `--wrap` makes.
    pub script: String,
    /// `--wrap` command, if used.
    pub wrap: Option<String>,
    /// `--parsable`.
    pub parsable: bool,
    /// `-v`, counted: gangway's own warnings are printed from 1 on.
    pub verbose: u32,
    /// The warnings Slurm's sbatch prints as well.
    pub slurm_warnings: Vec<String>,
    /// `-H/--hold`.
    pub hold: bool,
    /// `--kill-on-invalid-dep=yes`.
    pub kill_on_invalid_dep: bool,
    /// `--uid` and `--gid` (a name or a number).
    pub uid: Option<String>,
    pub gid: Option<String>,
    /// `-W/--wait`.
    pub wait: bool,
    /// `--test-only`.
    pub test_only: bool,
    /// Whether `-n` or `--ntasks-per-node` was given (Slurm then exports `SLURM_NTASKS`).
    pub ntasks_given: bool,
    /// Whether `-c` was given (Slurm then exports `SLURM_CPUS_PER_TASK`).
    pub cpus_given: bool,
    /// `--time` as given (`Unlimited` for `UNLIMITED`/`0`), `None` when not given.
    pub time_limit: Option<TimeLimit>,
    /// `--begin`.
    pub begin: Option<BeginTime>,
    /// `--mail-type` events.
    pub mail_types: Vec<String>,
    /// `--mail-user`.
    pub mail_user: Option<String>,
    /// `--signal`.
    pub signal: Option<SignalSpec>,
    /// `--requeue` (`Some(true)`) or `--no-requeue` (`Some(false)`).
    pub requeue: Option<bool>,
    /// `--nice`.
    pub nice: Option<i32>,
    /// `--comment`.
    pub comment: Option<String>,
    /// `--hint=nomultithread` (1) or `--threads-per-core`.
    pub threads_per_core: Option<u32>,
    /// `--switches`.
    pub switches: Option<Switches>,
}

/// sbatch's script for `--wrap=CMD`.
fn wrap_script(command: &str) -> String {
    format!("#!/bin/sh\n# This script was created by sbatch --wrap.\n\n{command}\n")
}

/// Resolves the batch script at path `script` (read from disk; pass `""` with `--wrap`) with
/// the sbatch options `args`, as given on the command line before the script name.
pub fn resolve(script: &str, args: &[String]) -> Result<Resolved, SlurmError> {
    if !script.is_empty() && wraps(args)? {
        return Err(SlurmError::WrapWithScript);
    }
    let text = if script.is_empty() {
        None
    } else {
        let bytes =
            std::fs::read(script).map_err(|source| SlurmError::ReadScript { path: script.to_string(), source })?;
        Some(String::from_utf8_lossy(&bytes).into_owned())
    };
    resolve_source(text.as_deref().map(|t| (script, t)), args)
}

/// Where sbatch's options end in `argv` (glibc's `+` rule): the index of the first word that
/// is not an option or an option's value. salloc takes its command from there.
pub fn options_end(argv: &[String]) -> Result<usize, SlurmError> {
    Ok(scan(argv, SBATCH_OPTIONS)?.1)
}

/// Resolves a whole sbatch command line (`[OPTIONS…] [SCRIPT [ARGS…]]`), reading the script
/// with `read`.
pub fn resolve_command_line(
    argv: &[String],
    read: impl FnOnce(&str) -> std::io::Result<String>,
) -> Result<Resolved, SlurmError> {
    let (_, at) = scan(argv, SBATCH_OPTIONS)?;
    let (options, rest) = argv.split_at(at);
    let Some((path, script_args)) = rest.split_first() else {
        return resolve_source(None, options);
    };
    if wraps(options)? {
        return Err(SlurmError::WrapWithScript);
    }
    let text = read(path).map_err(|source| SlurmError::ReadScript { path: path.clone(), source })?;
    let mut resolved = resolve_source(Some((path, &text)), options)?;
    resolved.submit.script_args = script_args.to_vec();
    Ok(resolved)
}

/// The pure core: `script` is the script's path (its file name is the default job name) and
/// text, `None` with `--wrap`; `args` are command-line options. Words in `args` after the
/// options are taken as script arguments.
pub fn resolve_source(script: Option<(&str, &str)>, args: &[String]) -> Result<Resolved, SlurmError> {
    let (cli, at) = scan(args, SBATCH_OPTIONS)?;
    let wrap = cli.iter().rev().find(|f| f.name == "wrap").and_then(|f| f.value.clone());
    let (mut opts, text) = match (script, &wrap) {
        (Some(_), Some(_)) => return Err(SlurmError::WrapWithScript),
        (None, None) => return Err(SlurmError::NoScript),
        (None, Some(cmd)) => (JobOptions::default(), wrap_script(cmd)),
        (Some((path, text)), None) => {
            check_script(text)?;
            let found = directives(path, text)?;
            let mut opts = JobOptions { warnings: found.warnings, ..JobOptions::default() };
            let (from_script, used) = scan(&found.args, SBATCH_OPTIONS)?;
            if let Some(word) = found.args.get(used) {
                return Err(SlurmError::InvalidDirective(word.clone()));
            }
            for f in from_script {
                if f.name == "wrap" {
                    opts.warn("#SBATCH --wrap is ignored (sbatch reads --wrap only on its command line)");
                    continue;
                }
                opts.apply(f)?;
            }
            (opts, text.to_string())
        }
    };
    for f in cli {
        opts.apply(f)?;
    }
    let name_default = match script {
        Some((path, _)) => path.rsplit('/').next().filter(|n| !n.is_empty()).unwrap_or("sbatch").to_string(),
        None => "wrap".to_string(),
    };
    let mut resolved = finish(opts, name_default)?;
    resolved.submit.script = text;
    resolved.submit.script_args = args[at..].to_vec();
    Ok(resolved)
}

/// Defaults, cross-option rules and the controller's checks.
fn finish(mut o: JobOptions, name_default: String) -> Result<Resolved, SlurmError> {
    if [o.mem.is_some(), o.mem_per_cpu.is_some(), o.mem_per_gpu.is_some()].iter().filter(|&&s| s).count() > 1 {
        return Err(SlurmError::MemoryConflict);
    }
    if o.exclusive_set && o.oversubscribe_set {
        return Err(SlurmError::ExclusiveConflict);
    }
    // Indices up to Slurm's hard limit: the site's MaxArraySize is the head's to enforce
    // (`gangway head --max-array-size`), as it is slurmctld's.
    let array = o
        .array
        .as_deref()
        .map(|spec| parse_array_with_max(spec, MAX_ARRAY_SIZE_LIMIT))
        .transpose()
        .map_err(SlurmError::Array)?;
    let dependencies =
        o.dependency.as_deref().map(parse_dependencies).transpose().map_err(SlurmError::Dependency)?.flatten();
    let export = o.export.as_deref().map(values::export).transpose()?.unwrap_or_default();
    let gpus = resolve_gpus(&mut o)?;

    let (mut min, mut max) = o.nodes.unwrap_or((1, None));
    if let (Some(n), Some(_)) = (o.ntasks, o.nodes) {
        if n < min {
            o.slurm_warn(&format!("can't run {n} processes on {min} nodes, setting nnodes to {n}"));
            min = n;
        }
        // No more nodes than tasks: `-N 1-3 -n 1` is `1-1`.
        max = max.map(|m| m.min(n));
    }
    // Enough nodes for the tasks at --ntasks-per-node each, within the range asked for.
    if let (Some(n), Some(per_node)) = (o.ntasks, o.ntasks_per_node) {
        min = min.max(n.div_ceil(per_node));
        if let Some(m) = max.filter(|_| o.nodes.is_some()) {
            min = min.min(m);
        }
    }
    let ntasks = match (o.ntasks, o.ntasks_per_node) {
        (Some(n), _) => n,
        // The fewest nodes of the range, each with its tasks (`-N 1-3 --ntasks-per-node=2`: 2).
        (None, Some(per_node)) => min.saturating_mul(per_node),
        // `-N` alone: one task per node, as Slurm counts them (NumTasks=N).
        (None, None) if o.nodes.is_some() => min,
        _ => 1,
    };
    let output = o
        .output
        .take()
        .unwrap_or_else(|| if array.is_some() { DEFAULT_ARRAY_OUTPUT } else { DEFAULT_OUTPUT }.to_string());
    let mem_mb = match (o.mem, o.mem_per_cpu, o.mem_per_gpu) {
        (None, None, None) => None,
        (per_node, per_cpu, per_gpu) => Some(MemoryRequest { per_node, per_cpu, per_gpu }),
    };
    Ok(Resolved {
        nodes: NodeRange { min, max },
        ntasks,
        ntasks_per_node: o.ntasks_per_node,
        cpus_per_task: o.cpus_per_task.unwrap_or(1),
        cpus_per_gpu: o.cpus_per_gpu,
        gpus,
        mem_mb,
        time_limit_s: o.time_limit.and_then(TimeLimit::as_secs),
        name: o.name.take().unwrap_or(name_default),
        error: o.error.take().unwrap_or_else(|| output.clone()),
        output,
        array,
        dependencies,
        partition: o.partition.take(),
        account: o.account.take(),
        qos: o.qos.take(),
        constraint: o.constraint.take(),
        exclusive: o.exclusive == Some(true),
        export,
        chdir: o.chdir.take(),
        submit: SubmitOptions {
            wrap: o.wrap.take(),
            parsable: o.parsable,
            verbose: o.verbose,
            slurm_warnings: std::mem::take(&mut o.slurm_warnings),
            hold: o.hold,
            kill_on_invalid_dep: o.kill_on_invalid_dep,
            uid: o.uid.take(),
            gid: o.gid.take(),
            wait: o.wait,
            test_only: o.test_only,
            ntasks_given: o.ntasks.is_some() || o.ntasks_per_node.is_some(),
            cpus_given: o.cpus_per_task.is_some(),
            time_limit: o.time_limit,
            begin: o.begin,
            mail_types: std::mem::take(&mut o.mail_types),
            mail_user: o.mail_user.take(),
            signal: o.signal,
            requeue: o.requeue,
            nice: o.nice,
            comment: o.comment.take(),
            threads_per_core: o.threads_per_core,
            switches: o.switches,
            script: String::new(),
            script_args: Vec::new(),
        },
        warnings: o.warnings,
    })
}

fn resolve_gpus(o: &mut JobOptions) -> Result<Option<GpuRequest>, SlurmError> {
    fn count(v: Option<&str>) -> Result<Option<(&str, gpus::GpuCount)>, SlurmError> {
        v.map(|t| gpus::gpu_count(t).map(|c| (t, c))).transpose()
    }
    let (gres, per_job, per_node, per_task) =
        (o.gres.take(), o.gpus.take(), o.gpus_per_node.take(), o.gpus_per_task.take());
    let from_gres = match gres.as_deref() {
        Some(text) => {
            let (gpu, ignored) = gpus::gres(text)?;
            for name in ignored {
                o.warn(&format!("--gres={name} is accepted but ignored: gangway schedules only gpu"));
            }
            gpu.map(|g| (text, g))
        }
        None => None,
    };
    gpus::combine(from_gres, count(per_job.as_deref())?, count(per_node.as_deref())?, count(per_task.as_deref())?)
}

/// An sbatch command line, split as sbatch splits it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine {
    /// The options, before the script name.
    pub options: Vec<String>,
    /// The script's path, if given (none with `--wrap`).
    pub script: Option<String>,
    /// The words after the script name.
    pub script_args: Vec<String>,
}

/// Splits a full sbatch command line into its options, script path and script arguments
/// (for callers that read the script themselves).
pub fn split_command_line(argv: &[String]) -> Result<CommandLine, SlurmError> {
    let (_, at) = scan(argv, SBATCH_OPTIONS)?;
    let (options, rest) = argv.split_at(at);
    Ok(CommandLine {
        options: options.to_vec(),
        script: rest.first().cloned(),
        script_args: rest.iter().skip(1).cloned().collect(),
    })
}

/// Whether sbatch options include `--wrap`.
fn wraps(args: &[String]) -> Result<bool, SlurmError> {
    Ok(scan(args, SBATCH_OPTIONS)?.0.iter().any(|f: &Found<Key>| f.name == "wrap"))
}
