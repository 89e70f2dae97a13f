//! Limits against abuse that the head enforces whatever the client checked: how many jobs may
//! be open (not completed) in all and per user (Slurm's `MaxJobCount` and `MaxSubmitJobs`).
//! The counts are kept as jobs open and complete, so a submission checks them in O(1).

use std::collections::HashMap;

use axum::http::StatusCode;

use super::HeadState;
use crate::head::error::ApiError;

/// The most open jobs by default (the scale the head is built for).
pub const DEFAULT_MAX_JOBS: usize = 1_000_000;

/// How many jobs may be open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobLimits {
    /// In all (`--max-jobs`).
    pub max_jobs: usize,
    /// Per user (`--max-jobs-per-user`; None: no limit but the total).
    pub max_per_user: Option<usize>,
}

impl Default for JobLimits {
    fn default() -> JobLimits {
        JobLimits { max_jobs: DEFAULT_MAX_JOBS, max_per_user: None }
    }
}

/// The open jobs, in all and by owner.
#[derive(Debug, Default)]
pub(crate) struct OpenJobs {
    all: usize,
    by_owner: HashMap<u32, usize>,
}

impl HeadState {
    /// Sets the job limits (the head's options).
    pub fn set_job_limits(&mut self, limits: JobLimits) {
        self.limits = limits;
    }

    /// `n` more open jobs of `owner` (None: from before owners) would stay within the limits;
    /// else the refusal, with Slurm's words, naming the limit.
    pub(crate) fn may_open_jobs(&self, owner: Option<u32>, n: usize) -> Result<(), ApiError> {
        let full = |msg: String| ApiError::new(StatusCode::TOO_MANY_REQUESTS, "JobLimitReached", msg);
        if self.open.all + n > self.limits.max_jobs {
            return Err(full(format!(
                "Slurm temporarily unable to accept job: {} jobs are open and the head takes at most {} (--max-jobs)",
                self.open.all, self.limits.max_jobs
            )));
        }
        if let (Some(max), Some(uid)) = (self.limits.max_per_user, owner) {
            let have = self.open.by_owner.get(&uid).copied().unwrap_or(0);
            if have + n > max {
                return Err(full(format!(
                    "Job violates accounting/QOS policy (job submit limit, user's size and/or time limits): \
                     uid {uid} has {have} open jobs and may have {max} (--max-jobs-per-user)"
                )));
            }
        }
        Ok(())
    }

    /// A job of `owner` opened (`true`) or completed or went away while open (`false`).
    pub(crate) fn count_open(&mut self, owner: Option<u32>, opened: bool) {
        let o = &mut self.open;
        o.all = if opened { o.all + 1 } else { o.all.saturating_sub(1) };
        if let Some(uid) = owner {
            let n = o.by_owner.entry(uid).or_default();
            *n = if opened { *n + 1 } else { n.saturating_sub(1) };
            if *n == 0 {
                o.by_owner.remove(&uid);
            }
        }
    }
}
