//! `gangway sim`: a workload replayed through the live scheduler core in simulated time.
//!
//! The simulator owns the clock and the nodes; the [`Scheduler`] is the one the head runs.
//! Each trace job becomes a task of the processor-count model: `ceil(procs / cores per node)`
//! whole nodes at once (a gang), with the job's estimate as its time limit. The policy sees
//! only that (and the submit instant); the job's actual run time decides only when the
//! simulator releases its nodes. Every event of one instant (ends first, then submissions) is
//! applied before the scheduler is asked once for its decisions, as a head woken once would.
//!
//! Metrics are the archive's usual ones: bounded slowdown `max(1, (wait + run) / max(run,
//! 10 s))`, wait, utilization `Σ run × procs / ((last start − first submit) × processors)` and
//! makespan (last end − first submit).

pub mod swf;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

use gangway_topology::alloc::NodeInventory;
use gangway_topology::fabric::Fabric;

use crate::scheduler::fair::{JobFacts, Owner};
use crate::scheduler::{Event, Fill, NodeKey, Policy, QueueKey, Scheduler, TaskKey, Time};
use swf::Job;

/// The bounded slowdown's threshold, seconds.
pub const BSLD_THRESHOLD: u64 = 10;

/// The simulated cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Machine {
    /// Nodes.
    pub nodes: u32,
    /// CPUs per node (one thread each).
    pub cores_per_node: u32,
    /// GPUs per node.
    pub gpus_per_node: u32,
}

impl Machine {
    /// Processors in all.
    pub fn procs(&self) -> u64 {
        u64::from(self.nodes) * u64::from(self.cores_per_node)
    }

    /// Whole nodes a job of `procs` processors takes.
    pub fn nodes_for(&self, procs: u64) -> u64 {
        procs.div_ceil(u64::from(self.cores_per_node.max(1)))
    }
}

/// What one job did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ran {
    /// Its trace job number.
    pub id: u64,
    /// Submitted, started (seconds).
    pub submit: u64,
    pub start: u64,
    /// Ran for (seconds), on this many processors.
    pub run: u64,
    pub procs: u64,
}

/// The figures of one replay.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Metrics {
    /// Jobs that ran.
    pub jobs: usize,
    /// Average bounded slowdown.
    pub avg_bsld: f64,
    /// Average and largest wait, seconds.
    pub avg_wait: f64,
    pub max_wait: u64,
    /// Busy processor-time over what the machine offered from the first submit to the last start.
    pub utilization: f64,
    /// Last end − first submit, seconds.
    pub makespan: u64,
}

/// Why a replay could not run.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SimError {
    /// A job needs more nodes than the machine has: it would wait forever.
    #[error("job {id} needs {procs} processors ({nodes} nodes) and the machine has {have} nodes")]
    TooBig { id: u64, procs: u64, nodes: u64, have: u32 },
    /// The scheduler left jobs waiting with nothing running (a policy bug, never expected).
    #[error("{0} jobs still wait with nothing running at the end of the trace")]
    Stuck(usize),
}

/// Replays `jobs` (sorted by submit time) on `machine` under `policy`, with the gang
/// placement of `fabric` when given (its nodes are the machine's).
pub fn replay(
    jobs: &[Job],
    machine: Machine,
    policy: Policy,
    fabric: Option<Arc<Fabric>>,
) -> Result<Vec<Ran>, SimError> {
    replay_weighted(jobs, machine, policy, fabric, None)
}

/// How often a replay with priority weights recalculates them, in simulated seconds (Slurm's
/// default `PriorityCalcPeriod`, as the head's).
pub const PRIORITY_CALC_PERIOD: u64 = 300;

/// [`replay`] with multifactor priority `weights` (fair share between the trace's users),
/// recalculated every [`PRIORITY_CALC_PERIOD`] as the head does.
pub fn replay_weighted(
    jobs: &[Job],
    machine: Machine,
    policy: Policy,
    fabric: Option<Arc<Fabric>>,
    weights: Option<crate::scheduler::fair::Weights>,
) -> Result<Vec<Ran>, SimError> {
    for j in jobs {
        let nodes = machine.nodes_for(j.procs);
        if nodes > u64::from(machine.nodes) {
            return Err(SimError::TooBig { id: j.id, procs: j.procs, nodes, have: machine.nodes });
        }
    }
    let mut s = match &fabric {
        Some(f) => Scheduler::with_fabric(f.clone()),
        None => Scheduler::new(),
    };
    let ms = |secs: u64| secs.saturating_mul(1000) as Time;
    s.advance(jobs.first().map_or(0, |j| ms(j.submit)));
    s.apply(Event::PoolAdded { pool: 0, slots_per_node: 1, fill: Fill::Pack, policy });
    let weighted = weights.is_some();
    if let Some(w) = weights {
        s.set_fairness(w, Default::default());
    }
    let mut recalculated = jobs.first().map_or(0, |j| j.submit);
    let res = gangway_topology::NodeResources {
        cpus: machine.cores_per_node,
        cores: machine.cores_per_node,
        memory_bytes: 1 << 30,
        gpus: (0..machine.gpus_per_node)
            .map(|index| gangway_topology::Gpu {
                index,
                name: "simulated GPU".into(),
                uuid: String::new(),
                pci_bus_id: String::new(),
            })
            .collect(),
        ..Default::default()
    };
    let inventory = Arc::new(NodeInventory::flat(&res, 0));
    for node in 0..machine.nodes {
        let place = fabric.as_ref().map(|_| node);
        s.apply(Event::idle_node(node as NodeKey, 0, inventory.clone(), place));
    }
    let mut ran: Vec<Option<Ran>> = vec![None; jobs.len()];
    // (end, task, nodes) of what runs, the earliest end first.
    let mut running: BinaryHeap<Reverse<(u64, TaskKey, Vec<NodeKey>)>> = BinaryHeap::new();
    let mut out = Vec::new();
    let mut next = 0;
    loop {
        let next_end = running.peek().map(|Reverse((t, _, _))| *t);
        let next_submit = jobs.get(next).map(|j| j.submit);
        let now = match (next_end, next_submit) {
            (Some(e), Some(s)) => e.min(s),
            (Some(t), None) | (None, Some(t)) => t,
            (None, None) => break,
        };
        s.advance(ms(now));
        while running.peek().is_some_and(|Reverse((t, _, _))| *t == now) {
            let Reverse((_, task, nodes)) = running.pop().expect("peeked");
            for node in nodes {
                s.apply(Event::TaskReleased { task, node });
            }
        }
        while let Some(j) = jobs.get(next).filter(|j| j.submit == now) {
            s.apply(Event::TaskQueued {
                task: next as TaskKey,
                pool: 0,
                order: QueueKey::new(0, next as u64, 0),
                slots: 1,
                need: None,
                gang: Some(machine.nodes_for(j.procs) as u32),
                limit: Some(ms(j.estimate)),
                job: JobFacts { owner: Owner { account: 0, user: j.user }, eligible: ms(j.submit), nice: 0 },
            });
            next += 1;
        }
        if weighted && now >= recalculated + PRIORITY_CALC_PERIOD {
            s.reprioritize(ms(now));
            recalculated = now;
        }
        s.schedule(&mut out);
        for d in out.drain(..) {
            let (task, nodes) = d.placement();
            let j = &jobs[task as usize];
            ran[task as usize] = Some(Ran { id: j.id, submit: j.submit, start: now, run: j.run, procs: j.procs });
            running.push(Reverse((now + j.run, task, nodes)));
        }
    }
    let waiting = ran.iter().filter(|r| r.is_none()).count();
    if waiting > 0 {
        return Err(SimError::Stuck(waiting));
    }
    Ok(ran.into_iter().flatten().collect())
}

/// The figures of `ran` on a machine of `procs` processors.
pub fn metrics(ran: &[Ran], procs: u64) -> Metrics {
    let n = ran.len().max(1) as f64;
    let first_submit = ran.iter().map(|r| r.submit).min().unwrap_or(0);
    let last_start = ran.iter().map(|r| r.start).max().unwrap_or(0);
    let last_end = ran.iter().map(|r| r.start + r.run).max().unwrap_or(0);
    let bsld = |r: &Ran| {
        let wait = (r.start - r.submit) as f64;
        ((wait + r.run as f64) / r.run.max(BSLD_THRESHOLD) as f64).max(1.0)
    };
    let busy: f64 = ran.iter().map(|r| r.run as f64 * r.procs as f64).sum();
    let span = (last_start - first_submit) as f64 * procs as f64;
    Metrics {
        jobs: ran.len(),
        avg_bsld: ran.iter().map(bsld).sum::<f64>() / n,
        avg_wait: ran.iter().map(|r| (r.start - r.submit) as f64).sum::<f64>() / n,
        max_wait: ran.iter().map(|r| r.start - r.submit).max().unwrap_or(0),
        utilization: if span > 0.0 { busy / span } else { 0.0 },
        makespan: last_end - first_submit,
    }
}

#[cfg(test)]
mod tests;
