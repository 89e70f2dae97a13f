//! Priority and fairness: the multifactor priority of waiting jobs, every user's and
//! account's decayed usage (fair share), and limits on what a user or an account runs at once.
//!
//! Usage is billed in CPU-milliseconds: a task's CPUs (a GPU weighs
//! [`Weights::gpu_billing`] CPUs; a task given no cores bills its slots) for as long as it
//! holds them, decayed with a half-life. The fair-share factor is Slurm's Fair Tree over a
//! two-level tree: accounts (with their configured shares) and, under each, its users (one
//! share each).

use std::collections::BTreeMap;

use super::keys::KeyMap;
use super::{TaskKey, Time};

/// A user, as the head numbers it (its uid).
pub type UserKey = u32;
/// An account, as the head numbers it.
pub type AccountKey = u32;

/// Whose a task is: an association of a user with an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Owner {
    pub account: AccountKey,
    pub user: UserKey,
}

/// What a task's job brings to its priority (the same for every task of the job).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JobFacts {
    /// Whose it is.
    pub owner: Owner,
    /// When it became eligible to run (its age counts from there).
    pub eligible: Time,
    /// Slurm's nice: subtracted from the multifactor priority.
    pub nice: i32,
}

/// A day, in the scheduler's milliseconds.
pub const DAY: Time = 86_400_000;

/// How the multifactor priority weighs its factors (Slurm's `PriorityWeight*`), and how
/// usage is billed and decays.
#[derive(Debug, Clone, PartialEq)]
pub struct Weights {
    pub age: u32,
    pub fairshare: u32,
    pub job_size: u32,
    /// Age at which the age factor reaches 1 (`PriorityMaxAge`).
    pub max_age: Time,
    /// Usage halves in this long (`PriorityDecayHalfLife`; 0: no decay).
    pub decay_half_life: Time,
    /// Smaller jobs get the larger size factor (`PriorityFavorSmall`).
    pub favor_small: bool,
    /// What a GPU bills, in CPUs (`TRESBillingWeights=GRES/gpu=…`).
    pub gpu_billing: f64,
    /// Accounts' raw shares (one each when not named).
    pub account_shares: BTreeMap<AccountKey, u32>,
}

impl Weights {
    /// No factor counts: jobs run in their job priority's and then submission order (the
    /// simulator's reference policies).
    pub fn none() -> Weights {
        Weights {
            age: 0,
            fairshare: 0,
            job_size: 0,
            max_age: 7 * DAY,
            decay_half_life: 7 * DAY,
            favor_small: false,
            gpu_billing: 1.0,
            account_shares: BTreeMap::new(),
        }
    }

    /// Fair share alone (what `--priority PriorityWeightFairshare=10000` gives).
    pub fn fair_share() -> Weights {
        Weights { fairshare: 10_000, ..Weights::none() }
    }

    fn any(&self) -> bool {
        self.age > 0 || self.fairshare > 0 || self.job_size > 0
    }
}

impl Default for Weights {
    fn default() -> Weights {
        Weights::none()
    }
}

/// Caps on what one user (or account) runs at once; None: no cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Caps {
    pub jobs: Option<u32>,
    pub cpus: Option<u32>,
    pub gpus: Option<u32>,
}

impl Caps {
    fn any(&self) -> bool {
        self.jobs.is_some() || self.cpus.is_some() || self.gpus.is_some()
    }
}

/// Limits on running work (Slurm's `MaxJobsPerUser`, `MaxTRESPerUser`, and per account).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    pub per_user: Caps,
    pub per_account: Caps,
}

impl Limits {
    /// Whether any limit is set.
    pub fn any(&self) -> bool {
        self.per_user.any() || self.per_account.any()
    }
}

/// Which limit holds a task back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitReason {
    JobsPerUser,
    CpusPerUser,
    GpusPerUser,
    JobsPerAccount,
    CpusPerAccount,
    GpusPerAccount,
}

impl LimitReason {
    /// Slurm's pending reason for it.
    pub fn slurm(self) -> &'static str {
        match self {
            LimitReason::JobsPerUser => "QOSMaxJobsPerUserLimit",
            LimitReason::CpusPerUser => "QOSMaxCpuPerUserLimit",
            LimitReason::GpusPerUser => "QOSMaxGRESPerUser",
            LimitReason::JobsPerAccount => "QOSMaxJobsPerAccount",
            LimitReason::CpusPerAccount => "QOSMaxCpuPerAccount",
            LimitReason::GpusPerAccount => "QOSMaxGRESPerAccount",
        }
    }
}

/// What a user or an account runs now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Running {
    pub jobs: u32,
    pub cpus: u32,
    pub gpus: u32,
}

impl Running {
    /// The first cap that one more job of `cpus` and `gpus` would pass.
    fn over(&self, caps: &Caps, cpus: u32, gpus: u32) -> Option<usize> {
        let after = [self.jobs.saturating_add(1), self.cpus.saturating_add(cpus), self.gpus.saturating_add(gpus)];
        let caps = [caps.jobs, caps.cpus, caps.gpus];
        (0..3).find(|&i| caps[i].is_some_and(|c| after[i] > c))
    }
}

/// A job's priority and its factors (sprio's columns).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Factors {
    /// The multifactor priority: the weighted factors less nice.
    pub priority: i64,
    /// Normalized factors, each in [0, 1].
    pub age: f64,
    pub fairshare: f64,
    pub job_size: f64,
    pub nice: i32,
}

/// One row of the share tree (sshare's): an account (user None) or one of its users.
#[derive(Debug, Clone, PartialEq)]
pub struct ShareRow {
    pub account: AccountKey,
    pub user: Option<UserKey>,
    pub raw_shares: u32,
    pub norm_shares: f64,
    /// Decayed usage, billed CPU-seconds.
    pub raw_usage: f64,
    pub effective_usage: f64,
    pub fairshare: f64,
}

/// What a running task is charged for (summed over the nodes it holds).
#[derive(Debug, Clone, Copy)]
struct Charge {
    owner: Owner,
    cpus: u32,
    gpus: u32,
    /// Charged up to here.
    since: Time,
    /// The nodes it still holds something on.
    nodes: u32,
}

/// Usage, fair share and limits.
#[derive(Debug, Default)]
pub struct Fair {
    pub weights: Weights,
    pub limits: Limits,
    /// Decayed billed CPU-milliseconds of every association seen.
    usage: BTreeMap<Owner, f64>,
    /// Decayed up to here (None: nothing was yet).
    decayed_to: Option<Time>,
    /// Each association's fair-share factor, as of the last refresh.
    factors: KeyMap<Owner, f64>,
    running: KeyMap<TaskKey, Charge>,
    by_user: KeyMap<UserKey, Running>,
    by_account: KeyMap<AccountKey, Running>,
}

impl Fair {
    /// A ledger with nothing charged yet.
    pub fn new(weights: Weights, limits: Limits) -> Fair {
        Fair { weights, limits, ..Fair::default() }
    }

    /// Whether the priority is anything but the job's own priority.
    pub fn weighs(&self) -> bool {
        self.weights.any()
    }

    /// `owner` has work: it joins the share tree (which changes its siblings' shares).
    pub fn know(&mut self, owner: Owner) {
        if let std::collections::btree_map::Entry::Vacant(e) = self.usage.entry(owner) {
            e.insert(0.0);
            self.refresh_factors();
        }
    }

    /// Whether anything is charged: usage while priorities weigh anything, running work while
    /// limits are set (with neither, as in the simulator's reference policies, nothing is).
    fn tracks(&self) -> bool {
        self.weighs() || self.limits.any()
    }

    /// `task` of `owner` now holds `cpus` and `gpus` on one more node.
    pub fn start(&mut self, task: TaskKey, owner: Owner, cpus: u32, gpus: u32, now: Time) {
        if !self.tracks() {
            return;
        }
        self.know(owner);
        let new = !self.running.contains_key(&task);
        let gpu_billing = self.weights.gpu_billing;
        let c = self.running.entry(task).or_insert(Charge { owner, cpus: 0, gpus: 0, since: now, nodes: 0 });
        charge(&mut self.usage, c, now, gpu_billing);
        c.cpus += cpus;
        c.gpus += gpus;
        c.nodes += 1;
        let jobs = u32::from(new);
        for r in [self.by_user.entry(owner.user).or_default(), self.by_account.entry(owner.account).or_default()] {
            r.jobs += jobs;
            r.cpus += cpus;
            r.gpus += gpus;
        }
    }

    /// `task` gave back `cpus` and `gpus` on one node; returns whether its owner now runs
    /// less of something limited (so its other waiting work may start).
    pub fn release(&mut self, task: TaskKey, cpus: u32, gpus: u32, now: Time) -> bool {
        let gpu_billing = self.weights.gpu_billing;
        if self.running.is_empty() {
            return false;
        }
        let Some(c) = self.running.get_mut(&task) else { return false };
        charge(&mut self.usage, c, now, gpu_billing);
        c.cpus = c.cpus.saturating_sub(cpus);
        c.gpus = c.gpus.saturating_sub(gpus);
        c.nodes = c.nodes.saturating_sub(1);
        let owner = c.owner;
        let ended = c.nodes == 0;
        if ended {
            self.running.remove(&task);
        }
        for r in [self.by_user.entry(owner.user).or_default(), self.by_account.entry(owner.account).or_default()] {
            r.jobs -= u32::from(ended && r.jobs > 0);
            r.cpus = r.cpus.saturating_sub(cpus);
            r.gpus = r.gpus.saturating_sub(gpus);
        }
        self.limits.any()
    }

    /// Whether `owner` may start one more job of `cpus` and `gpus` under the limits.
    pub fn allows(&self, owner: Owner, cpus: u32, gpus: u32) -> Result<(), LimitReason> {
        use LimitReason::*;
        let user = self.by_user.get(&owner.user).copied().unwrap_or_default();
        if let Some(i) = user.over(&self.limits.per_user, cpus, gpus) {
            return Err([JobsPerUser, CpusPerUser, GpusPerUser][i]);
        }
        let account = self.by_account.get(&owner.account).copied().unwrap_or_default();
        if let Some(i) = account.over(&self.limits.per_account, cpus, gpus) {
            return Err([JobsPerAccount, CpusPerAccount, GpusPerAccount][i]);
        }
        Ok(())
    }

    /// Every association's decayed usage (billed CPU-milliseconds), and the instant it was
    /// decayed to (what the head stores).
    pub fn usage(&self) -> (Time, Vec<(Owner, f64)>) {
        (self.decayed_to.unwrap_or(0), self.usage.iter().map(|(o, u)| (*o, *u)).collect())
    }

    /// Takes back stored usage (before anything runs), decayed to `at`.
    pub fn restore_usage(&mut self, at: Time, rows: impl IntoIterator<Item = (Owner, f64)>) {
        for (o, u) in rows {
            if u.is_finite() && u >= 0.0 {
                *self.usage.entry(o).or_insert(0.0) += u;
            }
        }
        // Stored before anything was decayed (0): decay from the next refresh on.
        if at > 0 {
            self.decayed_to = Some(self.decayed_to.map_or(at, |t| t.max(at)));
        }
        self.refresh_factors();
    }

    /// What `user` runs now.
    pub fn running_of(&self, user: UserKey) -> Running {
        self.by_user.get(&user).copied().unwrap_or_default()
    }

    /// Charges running work up to `now`, decays every usage to `now` and recomputes the
    /// fair-share factors.
    pub fn refresh(&mut self, now: Time) {
        let gpu_billing = self.weights.gpu_billing;
        for c in self.running.values_mut() {
            charge(&mut self.usage, c, now, gpu_billing);
        }
        let half_life = self.weights.decay_half_life;
        match self.decayed_to {
            Some(since) if half_life > 0 && now > since => {
                let keep = 0.5f64.powf((now - since) as f64 / half_life as f64);
                for u in self.usage.values_mut() {
                    *u *= keep;
                }
            }
            _ => {}
        }
        self.decayed_to = Some(self.decayed_to.map_or(now, |t| t.max(now)));
        self.refresh_factors();
    }

    /// The share tree, accounts first (in rank order), each followed by its users (in rank
    /// order), with Slurm's Fair Tree factors: at each level a sibling's level fair share is
    /// its share of the level over its share of the level's usage (infinite without usage);
    /// accounts are taken in that order, higher first, those that tie together (their users
    /// ranked as one level, as Slurm merges tied siblings), and a user's factor is its rank
    /// over the number of users (the first 1, ties alike). An account's row shows its first
    /// user's factor.
    pub fn shares(&self) -> Vec<ShareRow> {
        let total: f64 = self.usage.values().sum();
        let accounts = self.accounts();
        let all_shares: u64 = accounts.iter().map(|(_, s, _)| u64::from(*s)).sum();
        let level = |share: f64, used: f64, of: f64| {
            let u = if of > 0.0 { used / of } else { 0.0 };
            if u > 0.0 {
                share / u
            } else {
                f64::INFINITY
            }
        };
        // (account level, its users' levels, the account) in rank order.
        let mut ranked: Vec<RankedAccount> = accounts
            .into_iter()
            .map(|(account, raw, users)| {
                let used: f64 = users.iter().map(|(_, u)| u).sum();
                let s_user = 1.0 / users.len() as f64;
                let users = users.into_iter().map(|(user, u)| (level(s_user, u, used), user, u)).collect();
                (level(f64::from(raw) / all_shares.max(1) as f64, used, total), users, account, raw)
            })
            .collect();
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.2.cmp(&b.2)));
        let n_users: usize = ranked.iter().map(|(_, users, _, _)| users.len()).sum();
        let mut factor_of: KeyMap<Owner, f64> = KeyMap::default();
        let mut rank = n_users;
        let mut i = 0;
        while i < ranked.len() {
            // Accounts that tie rank their users together.
            let j = i + ranked[i..].iter().take_while(|a| a.0 == ranked[i].0).count();
            let mut users: Vec<(f64, Owner)> = ranked[i..j]
                .iter()
                .flat_map(|(_, users, account, _)| {
                    users.iter().map(|(lf, user, _)| (*lf, Owner { account: *account, user: *user }))
                })
                .collect();
            users.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            let mut last: Option<(f64, usize)> = None;
            for (lf, owner) in users {
                let r = match last {
                    Some((l, r)) if l == lf => r,
                    _ => rank,
                };
                last = Some((lf, r));
                rank -= 1;
                factor_of.insert(owner, r as f64 / n_users.max(1) as f64);
            }
            i = j;
        }
        let mut rows = Vec::new();
        for (_, mut users, account, raw) in ranked {
            let s_account = f64::from(raw) / all_shares.max(1) as f64;
            let account_usage: f64 = users.iter().map(|(_, _, u)| u).sum();
            let s_user = 1.0 / users.len() as f64;
            users.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            let factor = |user: UserKey| factor_of.get(&Owner { account, user }).copied().unwrap_or(0.0);
            rows.push(ShareRow {
                account,
                user: None,
                raw_shares: raw,
                norm_shares: s_account,
                raw_usage: account_usage / 1000.0,
                effective_usage: if total > 0.0 { account_usage / total } else { 0.0 },
                fairshare: users.first().map_or(0.0, |(_, user, _)| factor(*user)),
            });
            for (_, user, u) in users {
                rows.push(ShareRow {
                    account,
                    user: Some(user),
                    raw_shares: 1,
                    norm_shares: s_account * s_user,
                    raw_usage: u / 1000.0,
                    effective_usage: if account_usage > 0.0 { u / account_usage } else { 0.0 },
                    fairshare: factor(user),
                });
            }
        }
        rows
    }

    /// Accounts with their raw shares and their users' usage.
    fn accounts(&self) -> Vec<AccountUsage> {
        let mut out: Vec<AccountUsage> = Vec::new();
        for (o, u) in &self.usage {
            match out.last_mut() {
                Some((a, _, users)) if *a == o.account => users.push((o.user, *u)),
                _ => {
                    let shares = self.weights.account_shares.get(&o.account).copied().unwrap_or(1);
                    out.push((o.account, shares, vec![(o.user, *u)]));
                }
            }
        }
        out
    }

    fn refresh_factors(&mut self) {
        let rows = self.shares();
        self.factors.clear();
        for r in rows {
            if let Some(user) = r.user {
                self.factors.insert(Owner { account: r.account, user }, r.fairshare);
            }
        }
    }

    /// The priority of a job with `facts` whose tasks ask `cpus` in all, on a cluster of
    /// `cluster_cpus`, at `now`.
    pub fn priority(&self, facts: &JobFacts, cpus: u32, cluster_cpus: u32, now: Time) -> Factors {
        let w = &self.weights;
        if !w.any() {
            return Factors { nice: facts.nice, priority: -i64::from(facts.nice), ..Factors::default() };
        }
        let age =
            if w.max_age == 0 { 1.0 } else { (now.saturating_sub(facts.eligible) as f64 / w.max_age as f64).min(1.0) };
        let share = self.factors.get(&facts.owner).copied().unwrap_or(1.0);
        let size = (f64::from(cpus) / f64::from(cluster_cpus.max(1))).min(1.0);
        let job_size = if w.favor_small { 1.0 - size } else { size };
        let weighted = f64::from(w.age) * age + f64::from(w.fairshare) * share + f64::from(w.job_size) * job_size;
        Factors { priority: weighted as i64 - i64::from(facts.nice), age, fairshare: share, job_size, nice: facts.nice }
    }
}

/// An account, its raw shares, and its users' usage.
type AccountUsage = (AccountKey, u32, Vec<(UserKey, f64)>);

/// An account's level fair share, its users' (level fair share, user, usage), the account and
/// its raw shares.
type RankedAccount = (f64, Vec<(f64, UserKey, f64)>, AccountKey, u32);

/// Adds what `c` used since it was last charged to its owner's usage.
fn charge(usage: &mut BTreeMap<Owner, f64>, c: &mut Charge, now: Time, gpu_billing: f64) {
    if now > c.since {
        let billed = f64::from(c.cpus) + gpu_billing * f64::from(c.gpus);
        *usage.entry(c.owner).or_insert(0.0) += billed * (now - c.since) as f64;
        c.since = now;
    }
}
