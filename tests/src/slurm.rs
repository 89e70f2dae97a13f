//! Running the Slurm front door against a test cluster: `gangway-slurm COMMAND` with the
//! cluster's address, from a work directory, with `sbatch`/`srun`/… shims on the `PATH` that
//! jobs inherit.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use gangway_api::client::{Client, ClientConfig};
use gangway_api::slurm::SlurmJob;

use crate::{bin, wait_for};

/// A work directory and shims for one cluster.
pub struct SlurmFrontDoor {
    /// Where commands run and scripts write.
    pub work: tempfile::TempDir,
    /// `sbatch`, `srun`, … links.
    pub shims: tempfile::TempDir,
    config: ClientConfig,
}

impl SlurmFrontDoor {
    /// Installs the shims for the cluster at `config`.
    pub fn new(config: ClientConfig) -> SlurmFrontDoor {
        let work = tempfile::Builder::new().prefix("gangway-slurm-work").tempdir().expect("work dir");
        let shims = tempfile::Builder::new().prefix("gangway-slurm-shims").tempdir().expect("shim dir");
        let made = Command::new(bin("gangway-slurm")).arg("install-shims").arg(shims.path()).output().expect("shims");
        assert!(made.status.success(), "install-shims: {}", String::from_utf8_lossy(&made.stderr));
        SlurmFrontDoor { work, shims, config }
    }

    /// The work directory.
    pub fn work(&self) -> &Path {
        self.work.path()
    }

    /// `PATH` with the shims first.
    pub fn path(&self) -> String {
        format!("{}:{}", self.shims.path().display(), std::env::var("PATH").unwrap_or_default())
    }

    /// `program` set to run in the work directory against this cluster, with the shims first
    /// on its `PATH`.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        c.current_dir(self.work())
            .env("GANGWAY_URL", &self.config.url)
            .env("GANGWAY_CA", self.config.ca.as_ref().unwrap())
            .env("GANGWAY_TOKEN", &self.config.token)
            .env_remove("GANGWAY_STATE_DIR")
            .env("PATH", self.path());
        c
    }

    /// Runs `gangway-slurm COMMAND ARGS…` in the work directory.
    pub fn run(&self, command: &str, args: &[&str]) -> Output {
        self.command(bin("gangway-slurm")).arg(command).args(args).output().expect("running gangway-slurm")
    }

    /// Runs `sh -c LINE` in the work directory.
    pub fn shell(&self, line: &str) -> Output {
        self.command("sh").args(["-c", line]).output().expect("running sh")
    }

    /// `sbatch --parsable ARGS…`: the job id.
    pub fn sbatch(&self, args: &[&str]) -> u64 {
        let mut all = vec!["--parsable"];
        all.extend_from_slice(args);
        let out = self.run("sbatch", &all);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "sbatch {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        stdout.trim().parse().unwrap_or_else(|_| panic!("sbatch printed {stdout:?}"))
    }

    /// Job `id` as the head shows it now.
    pub fn job(&self, id: u64) -> SlurmJob {
        Client::new(&self.config).expect("client").slurm_job(id).unwrap_or_else(|e| panic!("job {id}: {e}"))
    }

    /// Waits for job `id` to end.
    pub fn wait_end(&self, id: u64, timeout: Duration) -> SlurmJob {
        let mut c = Client::new(&self.config).expect("client");
        wait_for(timeout, &format!("job {id} to end"), || c.slurm_job(id).ok().filter(|j| j.state.is_finished()))
    }

    /// A file of the work directory.
    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.work().join(name)).unwrap_or_else(|e| panic!("reading {name}: {e}"))
    }

    /// A file's lines, sorted.
    pub fn sorted_lines(&self, name: &str) -> Vec<String> {
        let mut lines: Vec<String> = self.read(name).lines().map(str::to_owned).collect();
        lines.sort();
        lines
    }
}
