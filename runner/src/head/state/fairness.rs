//! The head's side of priority and fairness: whose a job is (its owner's uid and its
//! account), what the scheduler core needs to order it, the periodic recalculation, and what
//! `sprio` and `sshare` show. The policy itself is the core's (`scheduler::fair`).

use std::collections::BTreeMap;
use std::time::Duration;

use gangway_api::slurm::{PriorityFactors, PriorityList, ShareList, ShareRow};

use super::{Effects, HeadState, JobRec};
use crate::scheduler::fair::{AccountKey, Caps, JobFacts, Limits, Owner, Weights};
use crate::scheduler::TaskKey;

/// The account of a job that names none (every Azure job, a Slurm job without `-A`).
pub const DEFAULT_ACCOUNT: &str = "default";

/// How the head weighs priorities and limits running work (`gangway head --priority`,
/// `--share`, `--limit`).
#[derive(Debug, Clone, PartialEq)]
pub struct FairnessConfig {
    /// The weights (account shares are named in `shares`).
    pub weights: Weights,
    /// Accounts' raw shares, by name.
    pub shares: Vec<(String, u32)>,
    pub limits: Limits,
    /// How often priorities are recalculated (Slurm's `PriorityCalcPeriod`).
    pub calc_period: Duration,
}

impl Default for FairnessConfig {
    fn default() -> FairnessConfig {
        FairnessConfig {
            weights: Weights::none(),
            shares: Vec::new(),
            limits: Limits::default(),
            calc_period: Duration::from_secs(300),
        }
    }
}

impl FairnessConfig {
    /// Applies one `--priority NAME=VALUE` setting (slurm.conf's names).
    pub fn set_priority(&mut self, setting: &str) -> Result<(), String> {
        let (name, value) = setting
            .split_once('=')
            .ok_or_else(|| format!("'{setting}' is not NAME=VALUE (like PriorityWeightFairshare=10000)"))?;
        let w = &mut self.weights;
        match name {
            "PriorityWeightAge" => w.age = weight(name, value)?,
            "PriorityWeightFairshare" => w.fairshare = weight(name, value)?,
            "PriorityWeightJobSize" => w.job_size = weight(name, value)?,
            "PriorityMaxAge" => w.max_age = millis(name, value)?,
            "PriorityDecayHalfLife" => w.decay_half_life = millis(name, value)?,
            "PriorityCalcPeriod" => {
                self.calc_period = Duration::from_millis(millis(name, value)?.max(1000));
            }
            "PriorityFavorSmall" => {
                w.favor_small = match value.to_ascii_lowercase().as_str() {
                    "yes" | "true" | "1" => true,
                    "no" | "false" | "0" => false,
                    _ => return Err(format!("{name}={value}: expected YES or NO")),
                }
            }
            "TRESBillingWeights" => {
                for part in value.split(',') {
                    let (tres, v) = part
                        .split_once('=')
                        .ok_or_else(|| format!("{name}: '{part}' is not TRES=WEIGHT (like GRES/gpu=2.0)"))?;
                    let v: f64 = v
                        .parse()
                        .ok()
                        .filter(|v: &f64| v.is_finite() && *v >= 0.0)
                        .ok_or_else(|| format!("{name}: '{v}' is not a weight"))?;
                    match tres.to_ascii_lowercase().as_str() {
                        "gres/gpu" | "gpu" => w.gpu_billing = v,
                        "cpu" if v == 1.0 => {}
                        "cpu" => return Err(format!("{name}: usage is billed in CPUs, so CPU's weight is 1.0")),
                        _ => return Err(format!("{name}: unknown TRES '{tres}' (CPU or GRES/gpu)")),
                    }
                }
            }
            _ => {
                return Err(format!(
                    "unknown priority setting '{name}' (PriorityWeightAge, PriorityWeightFairshare, \
                     PriorityWeightJobSize, PriorityMaxAge, PriorityDecayHalfLife, PriorityCalcPeriod, \
                     PriorityFavorSmall, TRESBillingWeights)"
                ))
            }
        }
        Ok(())
    }

    /// Applies one `--share ACCOUNT=N` setting.
    pub fn set_share(&mut self, setting: &str) -> Result<(), String> {
        let (account, n) =
            setting.split_once('=').ok_or_else(|| format!("'{setting}' is not ACCOUNT=SHARES (like physics=40)"))?;
        let n: u32 = n
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("{account}: shares must be a positive number, not '{n}'"))?;
        if account.is_empty() {
            return Err(format!("'{setting}' names no account"));
        }
        self.shares.retain(|(a, _)| a != account);
        self.shares.push((account.to_owned(), n));
        Ok(())
    }

    /// Applies one `--limit NAME=VALUE` setting (Slurm's QOS limit names).
    pub fn set_limit(&mut self, setting: &str) -> Result<(), String> {
        let (name, value) =
            setting.split_once('=').ok_or_else(|| format!("'{setting}' is not NAME=VALUE (like MaxJobsPerUser=4)"))?;
        let l = &mut self.limits;
        match name {
            "MaxJobsPerUser" => l.per_user.jobs = Some(count(name, value)?),
            "MaxJobsPerAccount" => l.per_account.jobs = Some(count(name, value)?),
            "MaxTRESPerUser" => tres_caps(name, value, &mut l.per_user)?,
            "MaxTRESPerAccount" => tres_caps(name, value, &mut l.per_account)?,
            _ => {
                return Err(format!(
                    "unknown limit '{name}' (MaxJobsPerUser, MaxTRESPerUser, MaxJobsPerAccount, MaxTRESPerAccount)"
                ))
            }
        }
        Ok(())
    }
}

fn weight(name: &str, value: &str) -> Result<u32, String> {
    value.parse().map_err(|_| format!("{name}={value}: a weight is a whole number from 0 to 4294967295"))
}

fn count(name: &str, value: &str) -> Result<u32, String> {
    value.parse().map_err(|_| format!("{name}={value}: expected a whole number"))
}

/// `cpu=64,gres/gpu=8` into `caps`.
fn tres_caps(name: &str, value: &str, caps: &mut Caps) -> Result<(), String> {
    for part in value.split(',') {
        let (tres, n) = part
            .split_once('=')
            .ok_or_else(|| format!("{name}: '{part}' is not TRES=COUNT (like cpu=64 or gres/gpu=8)"))?;
        let n = count(name, n)?;
        match tres.to_ascii_lowercase().as_str() {
            "cpu" => caps.cpus = Some(n),
            "gres/gpu" | "gpu" => caps.gpus = Some(n),
            _ => return Err(format!("{name}: unknown TRES '{tres}' (cpu or gres/gpu)")),
        }
    }
    Ok(())
}

/// A duration as slurm.conf writes it (Slurm's forms: minutes `30`, `DAYS-HOURS` `7-0`, …),
/// or with a unit (`10s`, `2h`, `1d`).
fn millis(name: &str, value: &str) -> Result<u64, String> {
    let err = || format!("{name}={value}: expected minutes, DAYS-HOURS (like 7-0) or a duration (like 90s, 2h, 1d)");
    if let Some(secs) = gangway_api::time::slurm_duration_secs(value) {
        return secs.checked_mul(1000).ok_or_else(err);
    }
    gangway_api::time::parse_human_duration(value).map(|d| d.as_millis() as u64).map_err(|_| err())
}

/// Account names the scheduler knows, numbered: the default account is 0, what the
/// scheduler's `Owner::default()` (an owner not known) stands for.
#[derive(Debug)]
pub(crate) struct Accounts {
    keys: BTreeMap<String, AccountKey>,
    names: Vec<String>,
}

impl Default for Accounts {
    fn default() -> Accounts {
        Accounts { keys: BTreeMap::from([(DEFAULT_ACCOUNT.to_owned(), 0)]), names: vec![DEFAULT_ACCOUNT.to_owned()] }
    }
}

impl Accounts {
    pub fn key(&mut self, name: &str) -> AccountKey {
        if let Some(k) = self.keys.get(name) {
            return *k;
        }
        let k = self.names.len() as AccountKey;
        self.names.push(name.to_owned());
        self.keys.insert(name.to_owned(), k);
        k
    }

    pub fn name(&self, key: AccountKey) -> &str {
        self.names.get(key as usize).map_or("", String::as_str)
    }
}

impl JobRec {
    /// Its account's name.
    pub(crate) fn account(&self) -> &str {
        self.wire.slurm.as_ref().and_then(|s| s.request.account.as_deref()).unwrap_or(DEFAULT_ACCOUNT)
    }

    /// Its owner's uid (root's for a job from before owners were kept).
    pub(crate) fn uid(&self) -> u32 {
        self.wire.owner.as_ref().map_or(0, |o| o.uid)
    }
}

impl HeadState {
    /// Sets how priorities are weighed and what limits running work (before any task comes).
    pub fn set_fairness(&mut self, config: &FairnessConfig) {
        let mut weights = config.weights.clone();
        for (account, n) in &config.shares {
            weights.account_shares.insert(self.accounts.key(account), *n);
        }
        self.sched.set_fairness(weights, config.limits);
    }

    /// Whose job `job` is, in the scheduler's numbers.
    pub(crate) fn owner_of(&mut self, job: &str) -> Owner {
        let Some(j) = self.jobs.get(job) else { return Owner::default() };
        Owner { user: j.uid(), account: self.accounts.key(j.account()) }
    }

    /// What job `job` brings to its priority.
    pub(crate) fn job_facts(&mut self, job: &str) -> JobFacts {
        let owner = self.owner_of(job);
        let Some(j) = self.jobs.get(job) else { return JobFacts::default() };
        let slurm = j.wire.slurm.as_ref();
        let eligible = slurm.and_then(|s| s.eligible_time).unwrap_or(j.wire.creation_time);
        let nice = slurm.and_then(|s| s.request.nice).unwrap_or(0);
        JobFacts { owner, eligible: super::alloc::millis(eligible), nice }
    }

    /// Recalculates usage, fair share and every waiting job's priority, and starts what that
    /// lets start (the head's `PriorityCalcPeriod` timer).
    pub(crate) fn reprioritize(&mut self, fx: &mut Effects) {
        self.sched.reprioritize(super::alloc::millis(gangway_api::Timestamp::now()));
        self.sched_pass(fx);
        // The usage outlives the head: stored with every recalculation.
        let (at, usage) = self.sched.usage();
        if !usage.is_empty() {
            let rows = usage.into_iter().map(|(o, u)| (self.accounts.name(o.account).to_owned(), o.user, u)).collect();
            fx.writes.push(crate::store::Write::PutUsage { at, rows });
        }
    }

    /// Takes back the usage an earlier head stored.
    pub(crate) fn restore_usage(&mut self, at: u64, rows: &[(String, u32, f64)]) {
        let rows: Vec<(Owner, f64)> =
            rows.iter().map(|(a, uid, u)| (Owner { account: self.accounts.key(a), user: *uid }, *u)).collect();
        self.sched.restore_usage(at, rows);
    }

    /// The priority factors of waiting task `task` (sprio's row).
    pub(crate) fn priority_of(&self, task: TaskKey) -> Option<PriorityFactors> {
        let f = self.sched.priority(task)?;
        let (job, _) = self.task_index.get(&task)?;
        let j = self.jobs.get(job)?;
        let s = j.wire.slurm.as_ref()?;
        let w = self.sched.weights();
        Some(PriorityFactors {
            job_id: s.job_id,
            partition: j.wire.pool_info.pool_id.clone(),
            user: j.wire.owner.as_ref().map(|o| o.name.clone()).unwrap_or_default(),
            uid: j.uid(),
            account: j.account().to_owned(),
            priority: f.priority,
            age: f.age,
            fairshare: f.fairshare,
            job_size: f.job_size,
            weighted_age: (f.age * f64::from(w.age)) as i64,
            weighted_fairshare: (f.fairshare * f64::from(w.fairshare)) as i64,
            weighted_job_size: (f.job_size * f64::from(w.job_size)) as i64,
            nice: f.nice,
        })
    }

    /// Every waiting Slurm job's priority factors, by job id.
    pub(crate) fn priorities(&self) -> PriorityList {
        let w = self.sched.weights();
        let mut jobs: Vec<PriorityFactors> =
            self.jobs.values().flat_map(|j| j.tasks.values()).filter_map(|t| self.priority_of(t.key)).collect();
        jobs.sort_by_key(|p| p.job_id);
        PriorityList { weight_age: w.age, weight_fairshare: w.fairshare, weight_job_size: w.job_size, jobs }
    }

    /// The share tree (sshare's rows; users by uid, their names are the caller's to find).
    pub(crate) fn shares(&self) -> ShareList {
        let rows = self
            .sched
            .shares()
            .into_iter()
            .map(|r| ShareRow {
                account: self.accounts.name(r.account).to_owned(),
                user: None,
                uid: r.user,
                raw_shares: r.raw_shares,
                norm_shares: r.norm_shares,
                raw_usage: r.raw_usage.round() as u64,
                effective_usage: r.effective_usage,
                fairshare: r.fairshare,
            })
            .collect();
        ShareList { rows }
    }
}
