//! Slurm batch scripts: what a launcher does differently for an attempt whose `StartTask`
//! carries a [`BatchScript`]. The script is written into the task directory and run with its
//! own interpreter line (as slurmd runs `slurm_script`), in the job's working directory, with
//! standard output and error going straight to the files the job's `--output`/`--error`
//! patterns name instead of the task directory's `stdout.txt`/`stderr.txt`.
//!
//! The rest of the attempt (cgroup, process group, wall clock, kill, report) is the
//! executor's ordinary path: `prepare` rewrites the command line, and `run_in` asks
//! [`Executor::batch_io`] for the files of the task directory it is about to run in.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use gangway_api::messages::{BatchScript, StartTask};

/// The script's file name in the task directory (slurmd's name for it).
pub const SCRIPT_NAME: &str = "slurm_script";

/// The variable holding the batch script's own pid, which the spawn writes in the child.
pub const TASK_PID_ENV: &str = "SLURM_TASK_PID";

/// Writes the script of `start` into `task_dir` and points its command line at it: its
/// interpreter with the script (the spawn sets `SLURM_TASK_PID` to the script's pid). Returns
/// what `run_in` must use instead of the task directory's log files.
pub fn prepare(start: &mut StartTask, task_dir: &Path) -> Option<BatchScript> {
    let batch = start.batch.clone()?;
    // srun finds the launcher through it to start its steps' node parts.
    if let Some(me) = node_bin() {
        start.env.push((gangway_api::slurm_step::NODE_BIN_ENV.into(), me.to_owned()));
    }
    let script = task_dir.join(SCRIPT_NAME);
    if let Err(e) = write_script(&script, &batch.script) {
        // Left to fail where every command that cannot start fails (CommandNotFound).
        tracing::warn!(path = %script.display(), error = %e, "cannot write the batch script");
    }
    // The interpreter line is followed here, as the kernel would: exec'ing the script itself
    // fails with ETXTBSY (exit 126) when a process the launcher is spawning at that moment
    // still holds the descriptor the script was written through. sbatch refuses scripts
    // without one; `/bin/sh` stands in for a start task's hand-made script.
    let mut words = interpreter(&batch.script);
    if words.is_empty() {
        words.push("/bin/sh".to_owned());
    }
    words.push(script.to_string_lossy().into_owned());
    words.extend(batch.args.iter().cloned());
    start.command_line = words.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ");
    Some(batch)
}

/// This launcher's own path (`GANGWAY_NODE_BIN` of batch jobs), looked up once.
pub(crate) fn node_bin() -> Option<&'static str> {
    static PATH: std::sync::LazyLock<Option<String>> =
        std::sync::LazyLock::new(|| std::env::current_exe().ok().map(|p| p.to_string_lossy().into_owned()));
    PATH.as_deref()
}

/// The `#!` line's interpreter and its optional single argument, as execve(2) splits it.
fn interpreter(script: &str) -> Vec<String> {
    let Some(line) = script.lines().next().and_then(|l| l.strip_prefix("#!")) else { return Vec::new() };
    let line = line.trim();
    match line.split_once([' ', '\t']) {
        Some((interp, arg)) if !arg.trim().is_empty() => vec![interp.to_owned(), arg.trim().to_owned()],
        _ if line.is_empty() => Vec::new(),
        _ => vec![line.to_owned()],
    }
}

fn write_script(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // A fresh file, never through what is there: the task directory may be its user's, and a
    // link they left must not lead the launcher's write elsewhere.
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut f = std::fs::OpenOptions::new().create_new(true).write(true).mode(0o700).open(path)?;
    f.write_all(text.as_bytes())?;
    f.set_permissions(std::fs::Permissions::from_mode(0o700))
}

/// Single-quotes a word for `split_command_line` (`'` becomes `'\''`).
fn quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', "'\\''"))
}

/// Opens the script's standard output and error as slurmd does: truncated, created with the
/// user's umask, one file for both when the paths are the same. Returns (stdout, stderr).
pub fn open_outputs(b: &BatchScript) -> std::io::Result<(std::fs::File, std::fs::File)> {
    let open = |p: &str| {
        std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(p)
            .map_err(|e| std::io::Error::new(e.kind(), format!("opening {p}: {e}")))
    };
    let out = open(&b.stdout)?;
    let err = if b.stderr == b.stdout { out.try_clone()? } else { open(&b.stderr)? };
    Ok((out, err))
}

/// The working directory of a batch script.
pub fn work_dir(b: &BatchScript) -> PathBuf {
    PathBuf::from(&b.work_dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpreter_lines_split_as_execve_does() {
        assert_eq!(interpreter("#!/bin/bash\ntrue"), ["/bin/bash"]);
        assert_eq!(interpreter("#! /usr/bin/env  python3 \n"), ["/usr/bin/env", "python3"]);
        assert_eq!(interpreter("#!/bin/sh -e -x\n"), ["/bin/sh", "-e -x"]);
        assert!(interpreter("echo no interpreter\n").is_empty());
    }

    #[test]
    fn the_script_replaces_a_link_instead_of_writing_through_it() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        let script = dir.path().join(SCRIPT_NAME);
        std::os::unix::fs::symlink(&victim, &script).unwrap();
        write_script(&script, "#!/bin/sh\ntrue\n").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
        assert_eq!(std::fs::read_to_string(&script).unwrap(), "#!/bin/sh\ntrue\n");
        assert!(!std::fs::symlink_metadata(&script).unwrap().is_symlink());
        write_script(&script, "#!/bin/sh\nfalse\n").unwrap();
        assert_eq!(std::fs::read_to_string(&script).unwrap(), "#!/bin/sh\nfalse\n", "a rewrite replaces it");
    }

    #[test]
    fn quoted_words_split_back() {
        for w in ["plain", "with space", "it's", "$HOME \"x\"", ""] {
            assert_eq!(gangway_api::cmdline::split_command_line(&quote(w)).unwrap(), vec![w.to_owned()]);
        }
    }
}
