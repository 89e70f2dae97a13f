//! The scheduler core alone: decisions per second with 100,000 queued tasks on 1,000 nodes,
//! for slots-only tasks and for tasks that ask for cores, memory and GPUs (mixed shapes on
//! nodes of 64 cores, 512 GiB and 8 GPUs); `fair_*`: the same resources with fair share on
//! (charged as tasks run) and tasks of 50 users.
//!
//! `cargo bench -p gangway-benchmarks --bench scheduler`

use std::collections::VecDeque;
use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use gangway_runner::scheduler::fair::{JobFacts, Limits, Owner, Weights};
use gangway_runner::scheduler::{Decision, Event, Fill, Held, NodeKey, Policy, QueueKey, Scheduler, TaskKey};
use gangway_topology::alloc::{CoreSlot, Need, NodeInventory};

const NODES: u32 = 1000;
const SLOTS: u32 = 4;
const QUEUED: u64 = 100_000;

use gangway_benchmarks::gpu_node_inventory as big_node;

fn small_node() -> Arc<NodeInventory> {
    Arc::new(NodeInventory::new((0..SLOTS).map(|c| CoreSlot { pus: vec![c], numa: 0 }).collect(), 8 << 10, Vec::new()))
}

/// Task `n`'s shape: 1–64 CPUs (mostly small), 0–8 GPUs (most none), memory by CPU.
fn shape(n: u64) -> Need {
    let cpus = [1, 1, 2, 4, 8, 16, 32, 64][(n % 8) as usize];
    let gpus = [0, 0, 0, 1, 2, 0, 4, 8][(n / 8 % 8) as usize].min(cpus);
    Need { cpus, memory_mib: u64::from(cpus) * 4096, gpus, ..Need::default() }
}

/// What a cluster is running: (task, node) in start order, so the oldest ends first.
type Running = VecDeque<(TaskKey, NodeKey)>;

fn record(out: &mut Vec<Decision>, running: &mut Running) -> usize {
    let n = out.len();
    for d in out.drain(..) {
        match d {
            Decision::Start { task, node, .. } => running.push_back((task, node)),
            Decision::StartGang { task, nodes } => running.extend(nodes.into_iter().map(|(n, _)| (task, n))),
        }
    }
    n
}

/// A pool of busy nodes with `QUEUED` tasks waiting, of mixed priority and size; `need`
/// gives a task's resources (None: slots only).
fn loaded(
    fill: Fill,
    slots: u32,
    inventory: Arc<NodeInventory>,
    need: fn(u64) -> Option<Need>,
    fair: bool,
) -> (Scheduler, Running) {
    let mut s = Scheduler::new();
    if fair {
        s.set_fairness(Weights::fair_share(), Limits::default());
    }
    let mut out = Vec::new();
    let mut running = Running::new();
    s.on_event(Event::PoolAdded { pool: 0, slots_per_node: slots, fill, policy: Policy::default() }, &mut out);
    // Every node starts full: a whole-node holder each, released first.
    for node in 0..NODES {
        let task = u64::MAX - u64::from(node);
        let held = vec![Held { task, slots, grant: inventory.whole(), end: None, owner: Default::default() }];
        let ev = Event::NodeUp { node, pool: 0, inventory: inventory.clone(), held, schedulable: true, place: None };
        s.on_event(ev, &mut out);
        running.push_back((task, node));
    }
    for task in 0..QUEUED {
        let order = QueueKey::new((task % 7) as i32, task / 100, task);
        let slots = 1 + task.is_multiple_of(3) as u32;
        s.on_event(
            Event::TaskQueued {
                task,
                pool: 0,
                order,
                slots,
                need: need(task),
                gang: None,
                limit: None,
                job: facts(task, fair),
            },
            &mut out,
        );
    }
    assert!(out.is_empty());
    (s, running)
}

/// Task `n`'s job facts: one of 50 users when `fair`, else nobody's.
fn facts(n: u64, fair: bool) -> JobFacts {
    let owner = Owner { account: 0, user: if fair { (n / 100 % 50) as u32 } else { 0 } };
    JobFacts { owner, eligible: 0, nice: 0 }
}

fn slots_only(_: u64) -> Option<Need> {
    None
}

fn mixed(n: u64) -> Option<Need> {
    Some(shape(n))
}

/// A benchmark case: name, slots per node, the nodes, the tasks' needs, fair share.
type Case = (&'static str, u32, fn() -> Arc<NodeInventory>, fn(u64) -> Option<Need>, bool);

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("scheduler");
    g.sample_size(20);
    let cases: [Case; 3] = [
        ("slots", SLOTS, small_node, slots_only, false),
        ("resources", 64, big_node, mixed, false),
        ("fair_resources", 64, big_node, mixed, true),
    ];
    for (name, slots_per_node, inventory, need, fair) in cases {
        for fill in [Fill::Spread, Fill::Pack] {
            // Steady state: the oldest running task ends, what fits is started, a new task
            // arrives. Measured per ending; `decisions` counts what they started.
            let (mut s, mut running) = loaded(fill, slots_per_node, inventory(), need, fair);
            let mut out = Vec::new();
            let mut next = QUEUED;
            let mut decisions = 0usize;
            let mut endings = 0usize;
            g.throughput(Throughput::Elements(1));
            g.bench_function(format!("{name}_release_and_decide_{fill:?}"), |b| {
                b.iter(|| {
                    let Some((task, node)) = running.pop_front() else { return };
                    s.on_event(Event::TaskReleased { task, node }, &mut out);
                    next += 1;
                    let order = QueueKey::new((next % 7) as i32, next / 100, next);
                    let slots = 1 + next.is_multiple_of(3) as u32;
                    s.on_event(
                        Event::TaskQueued {
                            task: next,
                            pool: 0,
                            order,
                            slots,
                            need: need(next),
                            gang: None,
                            limit: None,
                            job: facts(next, fair),
                        },
                        &mut out,
                    );
                    decisions += record(&mut out, &mut running);
                    endings += 1;
                    black_box(&running);
                })
            });
            eprintln!("{name} {fill:?}: {decisions} decisions for {endings} endings");
            // A burst: every node frees all it holds at once.
            g.throughput(Throughput::Elements(u64::from(NODES)));
            g.bench_function(format!("{name}_fill_empty_cluster_{fill:?}"), |b| {
                b.iter_batched(
                    || loaded(fill, slots_per_node, inventory(), need, fair),
                    |(mut s, mut running)| {
                        let mut out: Vec<Decision> = Vec::with_capacity(8192);
                        let mut started = Running::new();
                        while let Some((task, node)) = running.pop_front() {
                            s.on_event(Event::TaskReleased { task, node }, &mut out);
                            record(&mut out, &mut started);
                        }
                        assert!(started.len() as u32 >= NODES, "{}", started.len());
                        black_box(started)
                    },
                    BatchSize::LargeInput,
                )
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
