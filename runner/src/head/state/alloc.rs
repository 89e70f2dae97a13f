//! Allocations in the head: what a task needs of each node (from its `resources`, its `mpi`
//! section, or a Slurm job's request, all through the one `resources` field), whether any
//! node of its pool could ever give it, and what it was given (the task's `allocation`,
//! persisted with it, which is what rebuilds the scheduler's holdings after a restart).

use std::sync::Arc;

use gangway_api::{
    Backfill, NodeAllocation, Pool, QueueOrder, Task, TaskConstraints, TaskResources, TaskSchedulingPolicy,
};
use gangway_topology::alloc::{Grant, Need, NodeInventory};

use super::{HeadState, NodeRec};
use crate::head::error::ApiError;
use crate::scheduler::fair::Owner;
use crate::scheduler::{self, Held, Policy, TaskKey, Time};

/// What the scheduler core does with a pool's `taskSchedulingPolicy`.
pub(crate) fn policy_of(t: &TaskSchedulingPolicy) -> Policy {
    let backfill = match t.backfill.unwrap_or_default() {
        Backfill::Fcfs => scheduler::Backfill::Fcfs,
        Backfill::Firstfit => scheduler::Backfill::FirstFit,
        Backfill::Easy => scheduler::Backfill::Easy,
        Backfill::Conservative => {
            scheduler::Backfill::Conservative(t.reservations.unwrap_or(scheduler::DEFAULT_RESERVATIONS))
        }
    };
    let max_examined = t.max_tasks_examined.map_or(scheduler::MAX_LOOKAHEAD, |n| n as usize);
    let order = match t.order.unwrap_or_default() {
        QueueOrder::Submit => scheduler::Order::Submit,
        QueueOrder::Deadline => scheduler::Order::Deadline(scheduler::Deadline::DEFAULT),
    };
    Policy { backfill, max_examined, order }
}

/// A task's own time limit, if it has a finite one.
fn own_limit(c: Option<&TaskConstraints>) -> Option<std::time::Duration> {
    c.and_then(|c| c.max_wall_clock_time).filter(|d| !d.is_unlimited()).map(|d| d.0)
}

/// The time limit the scheduler plans a task of `pool` with (ms): its own, else the pool's
/// default, else its maximum (as Slurm's `DefaultTime` falls back to `MaxTime`); None: none.
pub(crate) fn time_limit(pool: &Pool, c: Option<&TaskConstraints>) -> Option<Time> {
    let d = own_limit(c).or(pool.default_time_limit.map(|d| d.0)).or(pool.max_time_limit.map(|d| d.0))?;
    Some(d.as_millis().min(u128::from(u64::MAX / 2)) as Time)
}

/// Refuses a time limit (`field`, as the request named it) above the pool's maximum, in
/// Slurm's words.
pub(crate) fn check_time_limit(
    pool: &Pool,
    asked: Option<gangway_api::IsoDuration>,
    field: &str,
) -> Result<(), ApiError> {
    let Some(max) = pool.max_time_limit else { return Ok(()) };
    let asked = match asked {
        Some(d) if d.is_unlimited() => "unlimited".to_owned(),
        Some(d) if d > max => d.to_string(),
        _ => return Ok(()),
    };
    Err(ApiError::invalid(format!(
        "Requested time limit is invalid (missing or exceeds some limit): {field} {asked} is above \
         pool '{}''s maxTimeLimit {max}",
        pool.id
    )))
}

/// The most of any one amount a request may name (beyond it is a typo, not a machine).
const ABSURD_CPUS: u32 = 1 << 20;
const ABSURD_GPUS: u32 = 1 << 12;
const ABSURD_MIB: u64 = 1 << 40;

/// Checks `resources` field by field; `memoryMiB: 0` is all of the node's memory (Slurm's `--mem=0`).
pub(crate) fn check_resources(r: &TaskResources) -> Result<(), ApiError> {
    if let Some(c) = r.cpus {
        if c == 0 || c > ABSURD_CPUS {
            return Err(ApiError::invalid(format!("resources.cpus is {c}; it must be 1 to {ABSURD_CPUS}")));
        }
    }
    if let Some(c) = r.cores.filter(|c| *c == 0 || *c > ABSURD_CPUS) {
        return Err(ApiError::invalid(format!("resources.cores is {c}; it must be 1 to {ABSURD_CPUS}")));
    }
    if let Some(m) = r.memory_mib.filter(|m| *m > ABSURD_MIB) {
        return Err(ApiError::invalid(format!("resources.memoryMiB is {m}; it must be at most {ABSURD_MIB}")));
    }
    if let Some(g) = r.gpus.filter(|g| *g > ABSURD_GPUS) {
        return Err(ApiError::invalid(format!("resources.gpus is {g}; it must be at most {ABSURD_GPUS}")));
    }
    if let Some(t) = &r.gpu_type {
        let ok = !t.is_empty() && t.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !ok {
            return Err(ApiError::invalid(format!(
                "resources.gpuType is '{t}'; it must be a word of the GPU's name (letters, digits, '_', '-', '.')"
            )));
        }
        if r.gpus.unwrap_or(0) == 0 {
            return Err(ApiError::invalid("resources.gpuType names a type but resources.gpus is not set"));
        }
    }
    Ok(())
}

/// What `t` needs of each of its nodes, or None for a slots-only task. `resources` win;
/// what they leave out comes from `mpi` (ranks × CPUs per rank, in cores unless ranks bind
/// to threads; ranks × GPUs per rank); MPI ranks without a CPU count spread over the whole node.
pub(crate) fn task_need(t: &Task) -> Option<Need> {
    task_need_of(&t.resources.clone().unwrap_or_default(), t.mpi.as_ref())
}

/// What `r` and `mpi` ask of each node (see [`task_need`]).
pub(crate) fn task_need_of(r: &TaskResources, mpi: Option<&gangway_api::MpiSettings>) -> Option<Need> {
    let asked_nothing = *r == TaskResources::default();
    if r.exclusive {
        return Some(Need { whole: true, ..Need::default() });
    }
    let mut need = Need {
        cpus: r.cpus.unwrap_or(0),
        cores: r.cores.unwrap_or(0),
        memory_mib: r.memory_mib.unwrap_or(0),
        all_memory: r.memory_mib == Some(0),
        gpus: r.gpus.unwrap_or(0),
        gpu_type: r.gpu_type.clone(),
        ..Need::default()
    };
    if let Some(m) = mpi {
        match m.cpus_per_rank {
            _ if r.cpus.is_some() => {}
            Some(c) if m.bind.as_deref() == Some("threads") => need.cpus = m.ranks_per_node.saturating_mul(c),
            Some(c) => need.cores = m.ranks_per_node.saturating_mul(c),
            None if asked_nothing => return Some(Need { whole: true, ..Need::default() }),
            None => need.cores = m.ranks_per_node,
        }
        if r.gpus.is_none() {
            need.gpus = m.ranks_per_node.saturating_mul(m.gpus_per_rank);
        }
    }
    (need != Need::default()).then_some(need)
}

/// `r` with the pool's default memory per CPU (`per_cpu`, MiB) applied when it asks for CPUs,
/// or its MPI ranks imply cores, but names no memory, as Slurm's `DefMemPerCPU` does (a core
/// counts as one CPU here).
pub(crate) fn with_default_memory(
    r: Option<TaskResources>,
    mpi: Option<&gangway_api::MpiSettings>,
    per_cpu: Option<u64>,
) -> Option<TaskResources> {
    let Some(per_cpu) = per_cpu else { return r };
    let Some(need) = task_need_of(&r.clone().unwrap_or_default(), mpi) else { return r };
    let cpus = need.cpus.max(need.cores);
    if need.whole || cpus == 0 || r.as_ref().is_some_and(|r| r.memory_mib.is_some()) {
        return r;
    }
    Some(TaskResources { memory_mib: Some(per_cpu.saturating_mul(u64::from(cpus))), ..r.unwrap_or_default() })
}

impl HeadState {
    /// When and where the scheduler plans to start the waiting task `key` (None for any task
    /// it does not hold a reservation for, queued or not), seen at `now`
    /// (a plan whose time has passed, because what it waits for outlasts its limit, reads now).
    pub(crate) fn planned_start(&self, key: TaskKey, now: gangway_api::Timestamp) -> Option<gangway_api::PlannedStart> {
        let plan = self.sched.planned(key)?;
        let nodes = plan.nodes.iter().filter_map(|k| self.node_names.get(k).cloned()).collect();
        let at = gangway_api::Timestamp(i64::try_from(plan.start).ok()?.saturating_mul(1000));
        Some(gangway_api::PlannedStart { start_time: at.max(now), nodes })
    }

    /// Why `need` can never be met when the nodes of `pool` are known and none of them could
    /// ever meet it: the resource, the amount and the largest node's. Too few nodes that
    /// could is no reason to refuse: nodes may join (Slurm queues such a job with
    /// `PartitionNodeLimit`, Azure keeps such a task active).
    pub(crate) fn need_shortfall(&self, pool: &str, need: &Need) -> Option<String> {
        let in_pool = || self.nodes.values().filter(|n| n.wire.pool_id == pool && !n.leaving);
        // Stops at the first node that could hold it, the usual case (squeue asks for every
        // pending job), without gathering the pool's nodes.
        if in_pool().next().is_none() || in_pool().any(|n| n.inventory.shortfall(need).is_none()) {
            return None;
        }
        let nodes: Vec<&NodeRec> = in_pool().collect();
        // Name what the largest node lacks: the node that falls least short on each amount.
        let largest = NodeInventory::new(
            nodes
                .iter()
                .map(|n| &n.inventory)
                .max_by_key(|i| i.cores.len())
                .map(|i| i.cores.clone())
                .unwrap_or_default(),
            nodes.iter().map(|n| n.inventory.memory_mib).max().unwrap_or(0),
            nodes
                .iter()
                .map(|n| &n.inventory)
                .max_by_key(|i| i.gpus_of_type(need.gpu_type.as_deref()))
                .map(|i| i.gpus.clone())
                .unwrap_or_default(),
        );
        largest.shortfall(need).map(|s| s.to_string())
    }

    /// The memory (MiB) of the largest node of `pool` (0 without nodes).
    pub(crate) fn largest_memory_mib(&self, pool: &str) -> u64 {
        self.nodes.values().filter(|n| n.wire.pool_id == pool).map(|n| n.inventory.memory_mib).max().unwrap_or(0)
    }

    /// Refuses a task whose need no node of `pool` could ever meet.
    pub(crate) fn check_need_fits(&self, pool: &str, need: &Need) -> Result<(), ApiError> {
        match self.need_shortfall(pool, need) {
            Some(why) => Err(ApiError::invalid(format!("resources: the task can never run in pool '{pool}': {why}"))),
            None => Ok(()),
        }
    }

    /// What the tasks running on `node` hold there, for the scheduler (after a reconnect or a
    /// head restart: from each task's persisted allocation).
    pub(crate) fn held_on(&mut self, node: &str, running: impl Iterator<Item = (TaskKey, u32)>) -> Vec<Held> {
        let owners: Vec<(TaskKey, u32, Owner)> = running
            .map(|(task, slots)| {
                let job = self.task_index.get(&task).map(|(j, _)| j.clone()).unwrap_or_default();
                (task, slots, self.owner_of(&job))
            })
            .collect();
        let Some(n) = self.nodes.get(node) else { return Vec::new() };
        owners
            .into_iter()
            .map(|(task, slots, owner)| {
                let found = self.task_index.get(&task).and_then(|(j, t)| {
                    let j = self.jobs.get(j)?;
                    Some((j.tasks.get(t)?, self.pools.get(&j.wire.pool_info.pool_id)?))
                });
                let grant = found
                    .and_then(|(t, _)| t.wire.allocation.iter().find(|a| a.node_id == node))
                    .map_or_else(Grant::default, |a| n.inventory.grant_of(&a.cpus, a.memory_mib, &a.gpus));
                // It ends, at the latest, its limit after it started.
                let end = found.and_then(|(t, pool)| {
                    let start = t.wire.execution_info.start_time?;
                    let limit = time_limit(&pool.wire, Some(&t.wire.constraints))?;
                    Some(millis(start).saturating_add(limit))
                });
                Held { task, slots, grant, end, owner }
            })
            .collect()
    }

    /// What users and the launcher see of `grant` on `node`.
    pub(crate) fn allocation_of(&self, node: &str, grant: &Grant) -> NodeAllocation {
        let cpus = self.nodes.get(node).map_or_else(Vec::new, |n| n.inventory.cpus_of(&grant.cores));
        NodeAllocation { node_id: node.to_owned(), cpus, memory_mib: grant.memory_mib, gpus: grant.gpus.clone() }
    }
}

/// The inventory of a node that registered with `resources` (and `topology`, when it has one).
pub(crate) fn inventory_of(
    resources: &gangway_topology::NodeResources,
    topology: Option<&gangway_topology::model::NodeTopology>,
) -> Arc<NodeInventory> {
    let reserve = resources.memory_reserve_bytes >> 20;
    Arc::new(match topology.filter(|t| !t.cores.is_empty()) {
        Some(t) => NodeInventory::from_topology(t, reserve),
        None => NodeInventory::flat(resources, reserve),
    })
}

/// `t` as the scheduler's clock reads it: milliseconds since the Unix epoch.
pub(crate) fn millis(t: gangway_api::Timestamp) -> Time {
    (t.0.max(0) / 1000) as Time
}

#[cfg(test)]
mod tests {
    use super::*;
    use gangway_api::MpiSettings;

    fn task(resources: Option<TaskResources>, mpi: Option<MpiSettings>) -> Task {
        let mut t: Task = serde_json::from_value(serde_json::json!({
            "id": "t", "creationTime": "2026-01-01T00:00:00Z", "state": "active",
            "stateTransitionTime": "2026-01-01T00:00:00Z", "commandLine": "true",
            "constraints": {}, "requiredSlots": 1, "executionInfo": {"retryCount": 0, "requeueCount": 0}
        }))
        .unwrap();
        t.resources = resources;
        t.mpi = mpi;
        t
    }

    #[test]
    fn needs_come_from_resources_then_mpi() {
        assert_eq!(task_need(&task(None, None)), None, "slots only");
        let r = TaskResources { cpus: Some(4), memory_mib: Some(512), gpus: Some(2), ..Default::default() };
        let n = task_need(&task(Some(r), None)).unwrap();
        assert_eq!((n.cpus, n.memory_mib, n.gpus, n.whole), (4, 512, 2, false));
        let mpi = MpiSettings { ranks_per_node: 4, cpus_per_rank: Some(2), gpus_per_rank: 1, ..Default::default() };
        let n = task_need(&task(None, Some(mpi.clone()))).unwrap();
        assert_eq!((n.cores, n.cpus, n.gpus), (8, 0, 4), "ranks × cores and GPUs per rank");
        let threads = MpiSettings { bind: Some("threads".into()), ..mpi.clone() };
        assert_eq!(task_need(&task(None, Some(threads))).unwrap().cpus, 8);
        let spread = MpiSettings { ranks_per_node: 2, ..Default::default() };
        assert!(task_need(&task(None, Some(spread))).unwrap().whole, "ranks over the whole node own it");
        let mem = TaskResources { memory_mib: Some(0), ..Default::default() };
        assert!(task_need(&task(Some(mem), None)).unwrap().all_memory);
        let excl = TaskResources { exclusive: true, cpus: Some(1), ..Default::default() };
        assert!(task_need(&task(Some(excl), Some(mpi))).unwrap().whole);
    }

    #[test]
    fn bad_resources_are_refused_by_field() {
        for (r, field) in [
            (TaskResources { cpus: Some(0), ..Default::default() }, "resources.cpus"),
            (TaskResources { memory_mib: Some(u64::MAX), ..Default::default() }, "resources.memoryMiB"),
            (TaskResources { gpus: Some(1 << 20), ..Default::default() }, "resources.gpus"),
            (
                TaskResources { gpus: Some(1), gpu_type: Some("h 100".into()), ..Default::default() },
                "resources.gpuType",
            ),
            (TaskResources { gpu_type: Some("h100".into()), ..Default::default() }, "resources.gpuType"),
        ] {
            let e = check_resources(&r).unwrap_err().body.message.value;
            assert!(e.contains(field), "{e} names {field}");
        }
    }
}
