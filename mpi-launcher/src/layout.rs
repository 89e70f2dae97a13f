//! The Azure Batch directory layout under the node root, and each task's environment.

use std::path::{Path, PathBuf};

use gangway_api::messages::{RunStartTask, StartTask};

/// Directories every node has under its root.
pub const NODE_DIRS: &[&str] = &["applications", "fsmounts", "running", "shared", "startup", "volatile", "workitems"];

/// The root of one node.
#[derive(Debug, Clone)]
pub struct NodeLayout {
    /// `AZ_BATCH_NODE_ROOT_DIR`.
    pub root: PathBuf,
    /// Whether the node has GPUs (a task given none of them is told so).
    pub has_gpus: bool,
}

impl NodeLayout {
    /// Creates the node directories.
    pub fn create(root: &Path) -> std::io::Result<NodeLayout> {
        for d in NODE_DIRS {
            std::fs::create_dir_all(root.join(d))?;
        }
        Ok(NodeLayout { root: root.to_path_buf(), has_gpus: false })
    }

    /// `workitems/<job>/job-1/<task>`: the task directory (`AZ_BATCH_TASK_DIR`).
    pub fn task_dir(&self, job: &str, task: &str) -> PathBuf {
        self.root.join("workitems").join(job).join("job-1").join(task)
    }

    /// `applications/`: application packages, each unpacked once.
    pub fn packages_dir(&self) -> PathBuf {
        self.root.join("applications")
    }

    /// `startup/`: the start task's directory (`AZ_BATCH_NODE_STARTUP_DIR`).
    pub fn startup_dir(&self) -> PathBuf {
        self.root.join("startup")
    }

    /// The environment of a task attempt: a small inherited base, the `AZ_BATCH_*` variables
    /// of the reference, then the job's and the task's own settings.
    pub fn task_env(&self, start: &StartTask, node: &str, account_url: &str) -> Vec<(String, String)> {
        let task_dir = self.task_dir(&start.id.job, &start.id.task);
        let mut env = self.base_env(&start.pool, node, account_url, &task_dir);
        env.extend([
            ("AZ_BATCH_JOB_ID".to_owned(), start.id.job.clone()),
            ("AZ_BATCH_TASK_ID".to_owned(), start.id.task.clone()),
            ("GANGWAY_ATTEMPT".to_owned(), start.id.attempt.to_string()),
            ("GANGWAY_SLOTS".to_owned(), start.slots.to_string()),
        ]);
        for p in &start.packages {
            let dir = self.packages_dir().join(p.dir_name());
            env.extend(p.env_names().into_iter().map(|n| (n, dir.display().to_string())));
        }
        if let Some(prep) = &start.job_prep_task {
            let dir = self.task_dir(&start.id.job, prep);
            env.push(("AZ_BATCH_JOB_PREP_DIR".to_owned(), dir.display().to_string()));
            env.push(("AZ_BATCH_JOB_PREP_WORKING_DIR".to_owned(), dir.join("wd").display().to_string()));
        }
        // The job's and the task's settings come last and win.
        env.extend(start.env.iter().cloned());
        // Its GPUs, by index in PCI bus order (as gangway numbers them), whatever it set; a
        // task that asked for resources but no GPU, on a GPU node, is shown none (where the
        // devices controller cannot keep it off them, this is what does).
        if let Some(a) = start.allocation.as_ref() {
            if !a.gpus.is_empty() || (!a.is_empty() && self.has_gpus) {
                let list = a.gpus.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
                for k in ["CUDA_VISIBLE_DEVICES", "GPU_DEVICE_ORDINAL", "ROCR_VISIBLE_DEVICES"] {
                    env.push((k.to_owned(), list.clone()));
                }
                env.push(("CUDA_DEVICE_ORDER".to_owned(), "PCI_BUS_ID".to_owned()));
            }
        }
        env
    }

    /// The cluster CA's certificate, readable by every task (`GANGWAY_CA`).
    pub fn cluster_ca(&self) -> PathBuf {
        self.root.join("cluster-ca.crt")
    }

    /// The start task's environment: the same as a task's, but in `startup/` and without
    /// `AZ_BATCH_JOB_ID` and `AZ_BATCH_TASK_ID` (it belongs to no job).
    pub fn start_task_env(&self, start: &RunStartTask, node: &str, account_url: &str) -> Vec<(String, String)> {
        let mut env = self.base_env(&start.pool, node, account_url, &self.startup_dir());
        env.extend(start.env.iter().cloned());
        env
    }

    /// What every process gets: an inherited base, `PATH`, `HOME`, `PWD` and the node's and
    /// its directory's `AZ_BATCH_*` variables.
    fn base_env(&self, pool: &str, node: &str, account_url: &str, task_dir: &Path) -> Vec<(String, String)> {
        let wd = task_dir.join("wd");
        let s = |p: &Path| p.to_string_lossy().into_owned();
        let mut env: Vec<(String, String)> = Vec::new();
        for key in ["LANG", "LC_ALL", "TZ", "USER", "LOGNAME", "SHELL", "TERM", "TMPDIR"] {
            if let Ok(v) = std::env::var(key) {
                env.push((key.into(), v));
            }
        }
        let base_path = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
        let shared = self.root.join("shared");
        env.push(("PATH".into(), format!("{base_path}:{}:{}", s(&shared), s(&wd))));
        env.push(("HOME".into(), s(&wd)));
        env.push(("PWD".into(), s(&wd)));
        let az = [
            ("AZ_BATCH_ACCOUNT_NAME", "gangway".to_owned()),
            ("AZ_BATCH_ACCOUNT_URL", account_url.to_owned()),
            // The cluster CA, for the `gangway` CLI and `srun` in a task (with GANGWAY_URL).
            ("GANGWAY_CA", s(&self.cluster_ca())),
            ("AZ_BATCH_POOL_ID", pool.to_owned()),
            ("AZ_BATCH_NODE_ID", node.to_owned()),
            ("AZ_BATCH_NODE_IS_DEDICATED", "true".to_owned()),
            ("AZ_BATCH_NODE_ROOT_DIR", s(&self.root)),
            ("AZ_BATCH_NODE_SHARED_DIR", s(&shared)),
            ("AZ_BATCH_NODE_STARTUP_DIR", s(&self.startup_dir())),
            ("AZ_BATCH_NODE_MOUNTS_DIR", s(&self.root.join("fsmounts"))),
            ("AZ_BATCH_TASK_DIR", s(task_dir)),
            ("AZ_BATCH_TASK_WORKING_DIR", s(&wd)),
        ];
        env.extend(az.into_iter().map(|(k, v)| (k.to_owned(), v)));
        env
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gangway_api::messages::AttemptId;

    #[test]
    fn environment_follows_the_reference() {
        let layout = NodeLayout { root: PathBuf::from("/r"), has_gpus: false };
        let start = StartTask {
            id: AttemptId { job: "j1".into(), task: "t1".into(), attempt: 2 },
            pool: "p".into(),
            command_line: "x".into(),
            env: vec![("FOO".into(), "bar".into()), ("AZ_BATCH_POOL_ID".into(), "override".into())],
            max_wall_clock_ms: None,
            retention_ms: 0,
            slots: 1,
            allocation: None,
            resource_files: Vec::new(),
            output_files: Vec::new(),
            job_prep_task: None,
            packages: Vec::new(),
            multi_instance: None,
            mpi: None,
            batch: None,
            user: None,
        };
        let env = layout.task_env(&start, "node1", "http://h:1");
        let get = |k: &str| env.iter().rev().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("AZ_BATCH_TASK_DIR"), Some("/r/workitems/j1/job-1/t1"));
        assert_eq!(get("AZ_BATCH_TASK_WORKING_DIR"), Some("/r/workitems/j1/job-1/t1/wd"));
        assert_eq!(get("HOME"), Some("/r/workitems/j1/job-1/t1/wd"));
        assert_eq!(get("AZ_BATCH_NODE_SHARED_DIR"), Some("/r/shared"));
        assert_eq!(get("AZ_BATCH_NODE_STARTUP_DIR"), Some("/r/startup"));
        assert_eq!(get("AZ_BATCH_NODE_ID"), Some("node1"));
        assert_eq!(get("AZ_BATCH_JOB_ID"), Some("j1"));
        assert_eq!(get("FOO"), Some("bar"));
        assert_eq!(get("AZ_BATCH_POOL_ID"), Some("override"), "user settings win");
        assert!(get("PATH").unwrap().ends_with(":/r/shared:/r/workitems/j1/job-1/t1/wd"));
    }

    #[test]
    fn the_start_task_runs_in_startup_without_a_job() {
        let layout = NodeLayout { root: PathBuf::from("/r"), has_gpus: false };
        let start = RunStartTask {
            pool: "p".into(),
            command_line: "x".into(),
            env: vec![("FOO".into(), "bar".into())],
            max_task_retry_count: 0,
        };
        let env = layout.start_task_env(&start, "node1", "http://h:1");
        let get = |k: &str| env.iter().rev().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("AZ_BATCH_TASK_DIR"), Some("/r/startup"));
        assert_eq!(get("AZ_BATCH_TASK_WORKING_DIR"), Some("/r/startup/wd"));
        assert_eq!((get("HOME"), get("PWD")), (Some("/r/startup/wd"), Some("/r/startup/wd")));
        assert_eq!(get("AZ_BATCH_NODE_STARTUP_DIR"), Some("/r/startup"));
        assert_eq!(get("AZ_BATCH_NODE_SHARED_DIR"), Some("/r/shared"));
        assert_eq!((get("AZ_BATCH_POOL_ID"), get("AZ_BATCH_NODE_ID")), (Some("p"), Some("node1")));
        assert_eq!((get("AZ_BATCH_JOB_ID"), get("AZ_BATCH_TASK_ID")), (None, None));
        assert_eq!(get("FOO"), Some("bar"));
    }
}
