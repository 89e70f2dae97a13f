//! One EASY backfill pass at scale: 10,000 nodes (64 cores, 512 GiB, 8 GPUs each), every
//! one busy with tasks whose time limits end at spread-out times, and 10,000 tasks queued
//! of mixed shapes (one-node requests of 1–64 CPUs and 0–8 GPUs, gangs of 2–64 nodes with a
//! request on each, whole-node gangs), the first of them a 64-node gang that cannot start.
//! Each iteration: the running task whose limit ends first ends (the clock moves there), a
//! new task arrives, and the pass that follows runs (reservation, then backfill).
//!
//! Criterion reports the mean; the percentiles of the same passes are printed after each
//! case (`p50`, `p99`, `max`), with the pass bounded by the pool's default (64 shapes
//! examined past the first that cannot start) and unbounded (every shape examined).
//!
//! `cargo bench -p gangway-benchmarks --bench backfill`

use std::collections::BTreeSet;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use gangway_benchmarks::gpu_node_inventory;
use gangway_runner::scheduler::{
    Backfill, Decision, Event, Fill, Held, NodeKey, Policy, QueueKey, Scheduler, TaskKey, Time, MAX_LOOKAHEAD,
};
use gangway_topology::alloc::Need;

const NODES: u32 = 10_000;
const QUEUED: u64 = 10_000;
const MINUTE: Time = 60_000;

/// Task `n`'s request: (need on each node, gang size).
fn request(n: u64) -> (Option<Need>, Option<u32>) {
    let cpus = [1, 1, 2, 4, 8, 16, 32, 64][(n % 8) as usize];
    let gpus = [0, 0, 0, 1, 2, 0, 4, 8][(n / 8 % 8) as usize].min(cpus);
    let need = Need { cpus, memory_mib: u64::from(cpus) * 4096, gpus, ..Need::default() };
    match n % 10 {
        // A whole-node gang.
        0 => (None, Some([2, 4, 8, 16][(n / 10 % 4) as usize])),
        // A gang with a request on each node.
        1 | 2 => (Some(need), Some([2, 4, 8, 16, 32, 64][(n / 10 % 6) as usize])),
        _ => (Some(need), None),
    }
}

/// Task `n`'s time limit: 5 minutes to 8 hours.
fn limit(n: u64) -> Time {
    [5, 30, 60, 120, 240, 480][(n % 6) as usize] * MINUTE
}

/// (end, task, node) of what runs, the earliest end first.
type Running = BTreeSet<(Time, TaskKey, NodeKey)>;

fn record(out: &mut Vec<Decision>, running: &mut Running, now: Time, limit_of: impl Fn(TaskKey) -> Time) {
    for d in out.drain(..) {
        match d {
            Decision::Start { task, node, .. } => {
                running.insert((now + limit_of(task), task, node));
            }
            Decision::StartGang { task, nodes } => {
                for (node, _) in nodes {
                    running.insert((now + limit_of(task), task, node));
                }
            }
        }
    }
}

fn queue(s: &mut Scheduler, out: &mut Vec<Decision>, task: TaskKey) {
    let (need, gang) = request(task);
    let order = QueueKey::new(0, task, 0);
    let ev = Event::TaskQueued {
        task,
        pool: 0,
        order,
        slots: 1,
        need,
        gang,
        limit: Some(limit(task)),
        job: Default::default(),
    };
    s.on_event(ev, out);
}

/// Every node busy: two half-node tasks each, ending at spread-out times; the queue full,
/// a 64-node gang first.
fn loaded(max_examined: usize) -> (Scheduler, Running, Time) {
    let inv = gpu_node_inventory();
    let mut s = Scheduler::new();
    let mut out = Vec::new();
    let now: Time = 1_000_000_000;
    s.advance(now);
    let policy = Policy { backfill: Backfill::Easy, max_examined, ..Policy::default() };
    s.on_event(Event::PoolAdded { pool: 0, slots_per_node: 64, fill: Fill::Pack, policy }, &mut out);
    let whole = inv.whole();
    let mut running = Running::new();
    for node in 0..NODES {
        let half = |part: u32| gangway_topology::alloc::Grant {
            cores: whole.cores[(part * 32) as usize..((part + 1) * 32) as usize].to_vec(),
            memory_mib: whole.memory_mib / 2,
            gpus: whole.gpus[(part * 4) as usize..((part + 1) * 4) as usize].to_vec(),
        };
        let held: Vec<Held> = (0..2)
            .map(|part| {
                let task = u64::MAX - u64::from(node) * 2 - u64::from(part);
                let end = now + (u64::from(node) * 7919 + u64::from(part) * 104_729) % (480 * MINUTE) + MINUTE;
                running.insert((end, task, node));
                Held { task, slots: 32, grant: half(part), end: Some(end), owner: Default::default() }
            })
            .collect();
        let ev = Event::NodeUp { node, pool: 0, inventory: inv.clone(), held, schedulable: true, place: None };
        s.on_event(ev, &mut out);
    }
    s.on_event(
        Event::TaskQueued {
            task: 0,
            pool: 0,
            order: QueueKey::new(1, 0, 0),
            slots: 1,
            need: None,
            gang: Some(64),
            limit: Some(60 * MINUTE),
            job: Default::default(),
        },
        &mut out,
    );
    for task in 1..QUEUED {
        queue(&mut s, &mut out, task);
    }
    assert!(out.is_empty(), "a full cluster starts nothing");
    (s, running, now)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("backfill");
    g.sample_size(30);
    for (name, bound) in [("bounded", MAX_LOOKAHEAD), ("unbounded", usize::MAX)] {
        let (mut s, mut running, mut now) = loaded(bound);
        let mut out = Vec::new();
        let mut next = QUEUED;
        let mut passes: Vec<Duration> = Vec::new();
        let mut started = 0usize;
        g.bench_function(format!("pass_10k_nodes_10k_queued_{name}"), |b| {
            b.iter(|| {
                let Some((end, task, node)) = running.pop_first() else { return };
                now = now.max(end);
                next += 1;
                let t0 = Instant::now();
                s.advance(now);
                s.apply(Event::TaskReleased { task, node });
                queue(&mut s, &mut out, next);
                passes.push(t0.elapsed());
                started += out.len();
                record(&mut out, &mut running, now, limit);
                black_box(&running);
            })
        });
        passes.sort();
        let at = |q: f64| passes[((passes.len() - 1) as f64 * q) as usize];
        eprintln!(
            "backfill {name}: {} passes, {started} starts; pass p50 {:?}, p99 {:?}, max {:?}",
            passes.len(),
            at(0.5),
            at(0.99),
            passes.last().copied().unwrap_or_default()
        );
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
