//! Slurm's `MinJobAge`: a finished Slurm job leaves the head's memory, and its records the
//! store's live tables, once it ended that long ago; its accounting record (the `SlurmJob`
//! view sacct reads) moves to the store's `history` table in the same commit, where
//! `sacct` still finds it. Azure jobs stay until deleted, as Azure Batch keeps them.

use std::time::Duration;

use gangway_api::{JobState, Timestamp};

use super::{Effects, HeadState};
use crate::store::Write;

/// Slurm's default `MinJobAge`.
pub const DEFAULT_MIN_JOB_AGE: Duration = Duration::from_secs(300);

impl HeadState {
    /// Sets `MinJobAge` (`--min-job-age`; zero keeps every job, as in Slurm).
    pub fn set_min_job_age(&mut self, age: Duration) {
        self.min_job_age = age;
    }

    /// How often a purge pass runs: often enough that a job leaves soon after its age.
    pub fn purge_every(&self) -> Option<Duration> {
        (!self.min_job_age.is_zero())
            .then(|| (self.min_job_age / 4).clamp(Duration::from_millis(250), Duration::from_secs(30)))
    }

    /// Purges the finished Slurm jobs that ended `MinJobAge` before `now`; returns their ids.
    /// A job that others still depend on stays (their conditions count on it).
    pub fn purge_finished(&mut self, now: Timestamp, fx: &mut Effects) -> Vec<u64> {
        if self.min_job_age.is_zero() {
            return Vec::new();
        }
        let cutoff = Timestamp(now.0.saturating_sub(self.min_job_age.as_micros().min(i64::MAX as u128) as i64));
        let due: Vec<String> = self
            .jobs
            .values()
            .filter(|j| j.wire.slurm.is_some() && j.wire.state == JobState::Completed)
            .filter(|j| j.wire.execution_info.end_time.is_some_and(|e| e <= cutoff))
            .filter(|j| !j.tasks.values().any(|t| self.deps.has_dependents(t.key)))
            .map(|j| j.wire.id.clone())
            .collect();
        let mut purged = Vec::with_capacity(due.len());
        for id in due {
            let Ok(n) = id.parse::<u64>() else { continue };
            let mut array = None;
            if let Some(view) = self.slurm_job(n) {
                array = view.array_job_id;
                let end = view.end_time.unwrap_or(now);
                fx.writes.push(Write::PutHistory {
                    job_id: n,
                    uid: view.uid,
                    end_ms: end.millis_since(Timestamp(0)),
                    body: serde_json::to_string(&view).expect("Slurm jobs serialize"),
                });
            }
            self.forget_job(&id, false, fx);
            self.slurm.forget(n, array);
            purged.push(n);
        }
        if !purged.is_empty() {
            tracing::debug!(jobs = purged.len(), "finished jobs purged (MinJobAge)");
        }
        purged
    }
}
