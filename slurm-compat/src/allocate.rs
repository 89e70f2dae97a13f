//! `srun` outside an allocation: as Slurm's srun does, it first asks for an allocation (a
//! batch job sized by `-N`/`-n`/`-c` and the allocation options `-p`, `-t`, `-J`, …), whose
//! script is this same srun, run again inside the allocation where it starts the step. This
//! srun follows the job: it copies the step's output and error to its own as they grow,
//! cancels the job on Ctrl-C, and exits with the step's exit code.
//!
//! The output travels through two hidden files in the working directory
//! (`.gangway-srun-N.out`/`.err`), removed at the end: like sbatch's output files they assume
//! the directory is shared with the allocation's first node (true of an embedded cluster and
//! of a shared home). Standard input is not forwarded.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use gangway_api::client::Client;
use gangway_api::slurm::SlurmCancel;

use crate::cluster;
use crate::resolve_command_line;
use crate::step::StepRequest;
use crate::submit::{build_request, exit_status, submit_error};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_interrupt(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// The sbatch command line that allocates for `r` and runs `srun ARGS…` inside.
pub fn allocation_args(r: &StepRequest, srun: &Path, args: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(n) = r.ntasks {
        out.push(format!("--ntasks={n}"));
    }
    if let Some(n) = r.nodes {
        out.push(format!("--nodes={n}"));
    }
    if let Some(c) = r.cpus_per_task {
        out.push(format!("--cpus-per-task={c}"));
    }
    out.extend(r.allocation.iter().cloned());
    if !r.allocation.iter().any(|a| a.starts_with("--job-name=")) {
        let name = r.command.first().map(|c| c.rsplit('/').next().unwrap_or(c)).unwrap_or("srun");
        out.push(format!("--job-name={name}"));
    }
    out.push("--output=.gangway-srun-%j.out".into());
    out.push("--error=.gangway-srun-%j.err".into());
    let mut words = vec![quote(&srun.to_string_lossy()), "srun".to_owned()];
    words.extend(args.iter().map(|a| quote(a)));
    out.push(format!("--wrap={}", words.join(" ")));
    out
}

/// `'word'`, with single quotes inside written as `'\''`, for `sh`.
fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// Allocates, runs the step inside, follows it; the step's exit code.
pub fn run(r: &StepRequest, args: &[String]) -> Result<ExitCode, String> {
    let srun = std::env::current_exe().map_err(|e| format!("finding this binary: {e}"))?;
    let sbatch = allocation_args(r, &srun, args);
    let resolved =
        resolve_command_line(&sbatch, |_| Err(std::io::Error::other("no script"))).map_err(|e| e.render("srun"))?;
    let cwd = std::env::current_dir().map_err(|e| format!("getcwd failed: {e}"))?;
    let req = build_request(&resolved, &cwd, None)?;
    let mut client = cluster::connect("srun")?;
    let id = client
        .slurm_submit(&req)
        .map_err(|e| {
            submit_error(&e).replace("sbatch: error: Batch job submission failed", "Unable to allocate resources")
        })?
        .job_id;
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_interrupt as extern "C" fn(libc::c_int) as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_interrupt as extern "C" fn(libc::c_int) as libc::sighandler_t);
    }
    let work = PathBuf::from(&req.work_dir);
    let mut out = Follow::new(work.join(format!(".gangway-srun-{id}.out")));
    let mut err = Follow::new(work.join(format!(".gangway-srun-{id}.err")));
    let result = follow(&mut client, id, &mut out, &mut err);
    out.remove();
    err.remove();
    result
}

fn follow(client: &mut Client, id: u64, out: &mut Follow, err: &mut Follow) -> Result<ExitCode, String> {
    let mut delay = Duration::from_millis(5);
    let mut cancelled = false;
    loop {
        if INTERRUPTED.load(Ordering::SeqCst) && !cancelled {
            eprintln!("srun: interrupt received; cancelling job {id}");
            let cancel = SlurmCancel { jobs: vec![id.to_string()], ..SlurmCancel::default() };
            client.slurm_cancel(&cancel).map_err(|e| cluster::message(&e))?;
            cancelled = true;
        }
        let job = client.slurm_job(id).map_err(|e| format!("job {id}: {}", cluster::message(&e)))?;
        let moved = out.copy_to(&mut std::io::stdout()) | err.copy_to(&mut std::io::stderr());
        if job.state.is_finished() {
            // What the step wrote just before it ended.
            out.copy_to(&mut std::io::stdout());
            err.copy_to(&mut std::io::stderr());
            let code = exit_status(&job);
            if code != 0 && !cancelled {
                eprintln!("srun: error: job {id}: {} with exit code {code}", job.state.as_str());
            }
            return Ok(ExitCode::from(code.clamp(0, 255) as u8));
        }
        delay = if moved { Duration::from_millis(5) } else { (delay * 2).min(Duration::from_millis(100)) };
        std::thread::sleep(delay);
    }
}

/// A file another process appends to, copied on as it grows.
struct Follow {
    path: PathBuf,
    file: Option<std::fs::File>,
}

impl Follow {
    fn new(path: PathBuf) -> Follow {
        Follow { path, file: None }
    }

    /// Copies what was added since the last call; whether anything was.
    fn copy_to(&mut self, to: &mut impl Write) -> bool {
        if self.file.is_none() {
            self.file = std::fs::File::open(&self.path).ok();
        }
        let Some(f) = &mut self.file else { return false };
        let mut buf = Vec::new();
        if f.read_to_end(&mut buf).is_err() || buf.is_empty() {
            return false;
        }
        let _ = to.write_all(&buf);
        let _ = to.flush();
        true
    }

    fn remove(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allocation_runs_this_srun_again_with_the_same_words() {
        let args: Vec<String> = ["-n", "2", "-p", "gpu", "-l", "sh", "-c", "echo 'it''s' $X"].map(String::from).into();
        let r = crate::step::parse(&args).unwrap();
        let sbatch = allocation_args(&r, Path::new("/opt/gangway-slurm"), &args);
        assert_eq!(
            sbatch,
            [
                "--ntasks=2",
                "--partition=gpu",
                "--job-name=sh",
                "--output=.gangway-srun-%j.out",
                "--error=.gangway-srun-%j.err",
                r#"--wrap='/opt/gangway-slurm' srun '-n' '2' '-p' 'gpu' '-l' 'sh' '-c' 'echo '\''it'\'''\''s'\'' $X'"#,
            ]
        );
        let named = crate::step::parse(&["-J".into(), "mine".into(), "true".into()]).unwrap();
        let sbatch = allocation_args(&named, Path::new("/x"), &["-J".into(), "mine".into(), "true".into()]);
        assert!(sbatch.contains(&"--job-name=mine".to_owned()) && !sbatch.contains(&"--job-name=true".to_owned()));
    }
}
