//! `srun`: its options, and where it runs. Inside a batch job a step is started over the
//! job's nodes by [`crate::step_hub`] (one node part per node through gangway's launchers,
//! PMI-1 for MPI ranks, output relayed back here); outside an allocation srun first gets one
//! ([`crate::allocate`]).

use std::io::Write;
use std::process::ExitCode;

/// What a step asks for.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct StepRequest {
    /// `-n`.
    pub ntasks: Option<u32>,
    /// `-N`.
    pub nodes: Option<u32>,
    /// `-c`.
    pub cpus_per_task: Option<u32>,
    /// `-l`.
    pub label: bool,
    /// `--ntasks-per-node`.
    pub ntasks_per_node: Option<u32>,
    /// `-w/--nodelist`.
    pub nodelist: Option<String>,
    /// `-m/--distribution`.
    pub distribution: Option<String>,
    /// `--cpu-bind`.
    pub cpu_bind: Option<String>,
    /// `--gpu-bind`.
    pub gpu_bind: Option<String>,
    /// `--gpus-per-task`.
    pub gpus_per_task: Option<u32>,
    /// `--mpi`.
    pub mpi: Option<String>,
    /// `-K/--kill-on-bad-exit`.
    pub kill_on_bad_exit: bool,
    /// `-i/--input`: `none`, a task id, or a file to read instead of standard input.
    pub input: Option<String>,
    /// `-O/--overcommit`: more tasks than CPUs.
    pub overcommit: bool,
    /// `-q/--quit-on-interrupt`: one Ctrl-C ends the step.
    pub quit_on_interrupt: bool,
    /// `--multi-prog`: the command is a file naming each task's program.
    pub multi_prog: bool,
    /// `--pty`: task 0 runs on a pseudo-terminal connected to srun's terminal.
    pub pty: bool,
    /// `--export`: `ALL` (the default), `NONE`, or a list of names and `NAME=value`.
    pub export: Option<String>,
    /// `-D/--chdir`: the tasks' working directory.
    pub chdir: Option<String>,
    /// `-x/--exclude`: nodes the step must not use.
    pub exclude: Option<String>,
    /// `-o`.
    pub output: Option<String>,
    /// `-e`.
    pub error: Option<String>,
    /// Allocation options for srun outside an allocation, as sbatch's long options
    /// (`--partition=P`, `--time=T`, …); inside one they do not apply.
    pub allocation: Vec<String>,
    /// The command and its arguments.
    pub command: Vec<String>,
}

/// Runs `srun ARGS…`.
pub fn main(args: &[String]) -> ExitCode {
    let outside = env("SLURM_JOB_ID").is_none();
    // Under salloc, on the submit host: the allocation's holder runs this srun inside it.
    let under_salloc =
        !outside && env("AZ_BATCH_TASK_DIR").is_none() && env(gangway_api::slurm_step::SALLOC_ADDR_ENV).is_some();
    let r = match parse(args) {
        Ok(r) => r,
        Err(msg) => return Failure::option("srun", &msg).exit("srun"),
    };
    let ran = (|| {
        // Raw mode for as long as the step runs (outside an allocation, once it is granted);
        // an srun elsewhere that runs this one gets the size.
        let _raw = (r.pty && !outside).then(crate::terminal::Raw::enter);
        if r.pty && (outside || under_salloc) {
            std::env::set_var(crate::terminal::SIZE_ENV, crate::terminal::size_text(crate::terminal::size()));
        }
        if outside {
            crate::allocate::run(&r, args)
        } else if under_salloc {
            Ok(crate::salloc::forward_srun(args).map(ExitCode::from)?)
        } else {
            Ok(crate::step_hub::run(&r).map(ExitCode::from)?)
        }
    })();
    ran.unwrap_or_else(|f| f.exit("srun"))
}

/// Why `sbatch`, `srun` or `salloc` failed: a mistake on its command line, for which Slurm's
/// exit with 255, or anything else (exit 1).
#[derive(Debug)]
pub enum Failure {
    /// The message as it is printed (`sbatch: error: Invalid --time specification`, or
    /// glibc's unknown-option lines).
    Usage(String),
    /// What went wrong, printed as `PROG: error: …`.
    Other(String),
}

impl From<String> for Failure {
    fn from(s: String) -> Failure {
        Failure::Other(s)
    }
}

impl Failure {
    /// Prints it for `prog` and gives its exit code.
    pub fn exit(self, prog: &str) -> ExitCode {
        match self {
            Failure::Usage(m) => {
                gangway_api::errln!("{m}");
                ExitCode::from(255)
            }
            Failure::Other(m) => {
                report(prog, &m);
                ExitCode::FAILURE
            }
        }
    }

    /// A mistake srun's own option reading found (`unrecognized option '--x'`), in Slurm's words.
    fn option(prog: &str, msg: &str) -> Failure {
        if msg.starts_with("unrecognized option") || msg.starts_with("option '") {
            Failure::Usage(format!("{prog}: {msg}\nTry \"{prog} --help\" for more information"))
        } else {
            Failure::Usage(format!("{prog}: error: {msg}"))
        }
    }
}

/// Prints an error as `PROG: error: …`, once: messages that already name a command (the
/// cluster lookup's, sbatch's submit errors) keep their own prefix.
pub(crate) fn report(prog: &str, msg: &str) {
    for line in msg.lines() {
        let line = line.strip_prefix("sbatch: error: ").unwrap_or(line);
        let line = line.strip_prefix(&format!("{prog}: error: ")).unwrap_or(line);
        gangway_api::errln!("{prog}: error: {line}");
    }
}

/// Reads srun's options up to the command (glibc's `+`: the first word that is not an option).
pub fn parse(args: &[String]) -> Result<StepRequest, String> {
    let mut r = StepRequest::default();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        if !arg.starts_with('-') || arg == "-" {
            break;
        }
        i += 1;
        if arg == "--" {
            break;
        }
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if arg.starts_with("--") => (n.to_owned(), Some(v.to_owned())),
            _ if !arg.starts_with("--") && arg.chars().count() > 2 => {
                let at = arg.char_indices().nth(2).map_or(arg.len(), |(i, _)| i);
                (arg[..at].to_owned(), Some(arg[at..].to_owned()))
            }
            _ => (arg.clone(), None),
        };
        let flag = matches!(
            name.as_str(),
            "-l" | "--label"
                | "--overlap"
                | "--exact"
                | "-Q"
                | "--quiet"
                | "-v"
                | "-K"
                | "--kill-on-bad-exit"
                | "--exclusive"
                | "--unbuffered"
                | "-u"
                | "-O"
                | "--overcommit"
                | "-X"
                | "--disable-status"
                | "-E"
                | "--preserve-env"
                | "-Z"
                | "--no-allocate"
                | "-k"
                | "--no-kill"
                | "--contiguous"
                | "--spread-job"
                | "--use-min-nodes"
                | "--propagate"
                | "--pty"
                | "--multi-prog"
                | "--verbose"
                | "-s"
                | "--oversubscribe"
                | "-q"
                | "--quit-on-interrupt"
        );
        // -K takes an optional value (`-K1`, `--kill-on-bad-exit=0`).
        let with_value = matches!(name.as_str(), "-K" | "--kill-on-bad-exit") && inline.is_some();
        if flag && !with_value {
            if inline.is_some() && !arg.starts_with("--") {
                return Err(format!("invalid option -- '{}'", &arg[1..]));
            }
            r.label |= matches!(name.as_str(), "-l" | "--label");
            r.kill_on_bad_exit |= matches!(name.as_str(), "-K" | "--kill-on-bad-exit");
            r.overcommit |= matches!(name.as_str(), "-O" | "--overcommit");
            r.quit_on_interrupt |= matches!(name.as_str(), "-q" | "--quit-on-interrupt");
            r.multi_prog |= name == "--multi-prog";
            r.pty |= name == "--pty";
            continue;
        }
        let value = match inline {
            Some(v) => v,
            None => {
                let v = args.get(i).cloned().ok_or_else(|| format!("option '{name}' requires an argument"))?;
                i += 1;
                v
            }
        };
        let count = |v: &str| v.parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(|| format!("invalid {name}: {v}"));
        match name.as_str() {
            "-n" | "--ntasks" => r.ntasks = Some(count(&value)?),
            // `-N min-max`: the step takes the minimum.
            "-N" | "--nodes" => r.nodes = Some(count(value.split('-').next().unwrap_or_default())?),
            "--export" => r.export = Some(value),
            "-D" | "--chdir" => r.chdir = Some(value),
            "-x" | "--exclude" => r.exclude = Some(value),
            // Accepted, and without effect on a gangway step.
            "--hint"
            | "--mem-bind"
            | "--threads-per-core"
            | "--ntasks-per-socket"
            | "--ntasks-per-core"
            | "--sockets-per-node"
            | "--cores-per-socket"
            | "--cpus-per-gpu"
            | "--mem-per-gpu"
            | "--gpus-per-socket"
            | "--network"
            | "--profile"
            | "--signal"
            | "--comment"
            | "--switches"
            | "--gres-flags"
            | "--accel-bind"
            | "--jobid"
            | "--het-group"
            | "-W"
            | "--wait"
            | "--prolog"
            | "--epilog"
            | "--task-prolog"
            | "--task-epilog"
            | "--slurmd-debug"
            | "--open-mode"
            | "--container"
            | "-r"
            | "--relative"
            | "-d"
            | "--dependency"
            | "--cpu-freq"
            | "--mail-type"
            | "--mail-user"
            | "--nice"
            | "--priority"
            | "--reservation"
            | "--wckey"
            | "--bcast"
            | "--compress" => {}
            "-c" | "--cpus-per-task" => r.cpus_per_task = Some(count(&value)?),
            "-o" | "--output" => r.output = Some(value),
            "-e" | "--error" => r.error = Some(value),
            "--mpi" => r.mpi = Some(value),
            "-i" | "--input" => r.input = Some(value),
            "--cpu-bind" | "--cpu_bind" => r.cpu_bind = Some(value),
            "--gpu-bind" => r.gpu_bind = Some(value),
            "-m" | "--distribution" => r.distribution = Some(value),
            "-K" | "--kill-on-bad-exit" => r.kill_on_bad_exit = value != "0",
            "-J" | "--job-name" | "-p" | "--partition" | "-t" | "--time" | "-A" | "--account" | "-q" | "--qos"
            | "-C" | "--constraint" | "-G" | "--gpus" | "--gres" | "--mem" | "--mem-per-cpu" | "--gpus-per-node"
            | "--gpus-per-task" | "-w" | "--nodelist" | "--ntasks-per-node" | "--tasks-per-node" => {
                match name.as_str() {
                    "-w" | "--nodelist" => r.nodelist = Some(value.clone()),
                    "--ntasks-per-node" | "--tasks-per-node" => r.ntasks_per_node = Some(count(&value)?),
                    "--gpus-per-task" => r.gpus_per_task = Some(count(&value)?),
                    _ => {}
                }
                r.allocation.push(format!("{}={value}", long_name(&name)));
            }
            _ => return Err(format!("unrecognized option '{arg}'")),
        }
    }
    r.command = args[i..].to_vec();
    if r.command.is_empty() {
        return Err("No command given to execute.".into());
    }
    Ok(r)
}

/// sbatch's long name for an srun option.
fn long_name(name: &str) -> &str {
    match name {
        "-J" => "--job-name",
        "-p" => "--partition",
        "-t" => "--time",
        "-A" => "--account",
        "-q" => "--qos",
        "-C" => "--constraint",
        "-G" => "--gpus",
        "-w" => "--nodelist",
        "--tasks-per-node" => "--ntasks-per-node",
        long => long,
    }
}

/// A variable of the environment, when set and not empty.
pub(crate) fn env(k: &str) -> Option<String> {
    std::env::var(k).ok().filter(|v| !v.is_empty())
}

/// The job's next step id: a counter in the task directory, under a lock, so concurrent
/// sruns of one job get distinct ids.
pub(crate) fn next_step_id() -> Result<u32, String> {
    use std::os::fd::AsRawFd;
    let dir = env("AZ_BATCH_TASK_DIR").ok_or("AZ_BATCH_TASK_DIR is not set (not inside a gangway job)")?;
    let path = std::path::Path::new(&dir).join("slurm_steps");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| format!("opening {}: {e}", path.display()))?;
    // SAFETY: flock on a descriptor we own; released when it closes.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(format!("locking {}", path.display()));
    }
    let mut text = String::new();
    std::io::Read::read_to_string(&mut f, &mut text).map_err(|e| e.to_string())?;
    let step: u32 = text.trim().parse().unwrap_or(0);
    std::io::Seek::rewind(&mut f).map_err(|e| e.to_string())?;
    f.set_len(0).map_err(|e| e.to_string())?;
    write!(f, "{}", step + 1).map_err(|e| e.to_string())?;
    Ok(step)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn options_stop_at_the_command() {
        let r = parse(&args("--ntasks=2 -l -o out-%t hostname -n 5")).unwrap();
        assert_eq!((r.ntasks, r.label, r.output.as_deref()), (Some(2), true, Some("out-%t")));
        assert_eq!(r.command, ["hostname", "-n", "5"]);
        assert!(parse(&args("-n 0 true")).is_err());
        assert!(parse(&args("--bogus true")).is_err());
        assert!(parse(&args("-n 2")).is_err());
        let m = parse(&args("--multi-prog -n 2 mpmd.conf")).unwrap();
        assert!(m.multi_prog && m.command == ["mpmd.conf"]);
        assert!(!parse(&args("-n 2 true")).unwrap().multi_prog);
        assert!(parse(&args("--pty bash")).unwrap().pty);
    }
}
