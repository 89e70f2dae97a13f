//! Gang decisions in the scheduler core: a multi-instance task of 512 nodes, each asking for
//! 8 cores, 2 GPUs and 64 GiB, on a 10,000-node three-level fat tree (32 nodes per leaf, 16
//! leaves per spine) of 64-core, 512 GiB, 8-GPU nodes, every one partly in use (cores and
//! GPUs: half of the nodes at half, the rest at a quarter). A decision is the queueing of the
//! task until its `StartGang`: the pool's incremental fabric index, `select_gang`, a concrete
//! pick of cores and GPUs on each of the 512 nodes, and the index updates of taking them. The
//! gang's release (512 `TaskReleased`) happens between decisions, outside the timing.
//!
//! p50/p99 over 1,000 decisions are printed first. `cargo bench -p gangway-benchmarks --bench scheduler_gang`

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion};
use gangway_runner::scheduler::{Decision, Event, Fill, Held, NodeKey, Policy, QueueKey, Scheduler, TaskKey};
use gangway_topology::alloc::{pick, Need};
use gangway_topology::fabric::Fabric;

const NODES: u32 = 10_000;
const GANG_NODES: u32 = 512;

use gangway_benchmarks::gpu_node_inventory as node;

struct Cluster {
    s: Scheduler,
    next: TaskKey,
    need: Need,
}

impl Cluster {
    fn new() -> Cluster {
        let fabric = Arc::new(Fabric::fat_tree(NODES, 32, &[16]).expect("fat tree"));
        let mut s = Scheduler::with_fabric(fabric.clone());
        let mut out = Vec::new();
        s.on_event(
            Event::PoolAdded { pool: 0, slots_per_node: 64, fill: Fill::Pack, policy: Policy::default() },
            &mut out,
        );
        let inventory = node();
        let half = Need { cpus: 32, memory_mib: 256 << 10, gpus: 4, ..Need::default() };
        let quarter = Need { cpus: 16, memory_mib: 128 << 10, gpus: 2, ..Need::default() };
        for k in 0..NODES {
            let busy = if k % 2 == 0 { &half } else { &quarter };
            let grant = pick(&inventory, &inventory.all_free(), busy).expect("fits an idle node");
            let held =
                vec![Held { task: u64::MAX - u64::from(k), slots: 1, grant, end: None, owner: Default::default() }];
            // The fat tree numbers its nodes in order: node k is fabric node k.
            let place = Some(k);
            let ev = Event::NodeUp { node: k, pool: 0, inventory: inventory.clone(), held, schedulable: true, place };
            s.on_event(ev, &mut out);
        }
        assert!(out.is_empty());
        let need = Need { cpus: 8, memory_mib: 64 << 10, gpus: 2, ..Need::default() };
        Cluster { s, next: 0, need }
    }

    /// Queues the gang and returns its nodes once started.
    fn decide(&mut self) -> Vec<NodeKey> {
        self.next += 1;
        let task = self.next;
        let mut out = Vec::with_capacity(1);
        let ev = Event::TaskQueued {
            task,
            pool: 0,
            order: QueueKey::new(0, task, task),
            slots: 1,
            need: Some(self.need.clone()),
            gang: Some(GANG_NODES),
            limit: None,
            job: Default::default(),
        };
        self.s.on_event(ev, &mut out);
        match out.pop() {
            Some(Decision::StartGang { nodes, .. }) => nodes.into_iter().map(|(k, _)| k).collect(),
            other => panic!("no gang: {other:?}"),
        }
    }

    fn release(&mut self, nodes: &[NodeKey]) {
        let mut out = Vec::new();
        for &node in nodes {
            self.s.on_event(Event::TaskReleased { task: self.next, node }, &mut out);
        }
        assert!(out.is_empty());
    }
}

fn report_latency() {
    let mut cluster = Cluster::new();
    for _ in 0..100 {
        let nodes = cluster.decide();
        cluster.release(&nodes);
    }
    let mut timings: Vec<Duration> = Vec::with_capacity(1000);
    for _ in 0..1000 {
        let start = Instant::now();
        let nodes = black_box(cluster.decide());
        timings.push(start.elapsed());
        assert_eq!(nodes.len() as u32, GANG_NODES);
        cluster.release(&nodes);
    }
    timings.sort_unstable();
    let at = |q: f64| timings[((timings.len() as f64 * q) as usize).min(timings.len() - 1)];
    println!(
        "scheduler_gang: {GANG_NODES} of {NODES} partly used nodes, 1000 decisions: p50 {:?}, p90 {:?}, p99 {:?}, max {:?}",
        at(0.50),
        at(0.90),
        at(0.99),
        timings[timings.len() - 1]
    );
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("scheduler_gang");
    group.sample_size(20);
    let mut cluster = Cluster::new();
    group.bench_function("gang_512_of_10000_partly_used", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                let nodes = black_box(cluster.decide());
                total += start.elapsed();
                cluster.release(&nodes);
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, bench);

fn main() {
    report_latency();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
