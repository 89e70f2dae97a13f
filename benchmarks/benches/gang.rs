//! Gang selection on a 10,000-node three-level fat tree (32 nodes per leaf, 16 leaves per spine,
//! one core) at 70% random occupancy: one decision for 512 nodes, counted with the incremental
//! `allocate` and `release` of the chosen gang, so that the index stays at 70%.
//!
//! Between decisions one busy node frees up and one idle node is taken (two `set_node` calls,
//! outside the timing), so each decision sees a different 70%.
//!
//! - `whole_nodes`: 70% of nodes fully busy; the request is 512 idle nodes with 8 GPUs and `ib`.
//! - `shared_gpus`: 35% fully busy and 35% with half their GPUs in use; the request is 4 GPUs on
//!   each of 512 nodes, so partly used nodes are eligible and must be looked at (the worst case
//!   for the index: every leaf holds some).
//!
//! Besides criterion's figures, p50/p99 over 1,000 timed decisions and the index's memory are
//! printed first. `cargo bench -p gangway-benchmarks --bench gang`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion};
use gangway_topology::fabric::{Fabric, NodeId};
use gangway_topology::gang::{select_gang, FreeIndex, GangRequest, NodeNeed, NodeSpec, Resources};

const NODES: u32 = 10_000;
const NODES_PER_LEAF: u32 = 32;
const LEAVES_PER_SPINE: u32 = 16;
const BUSY_PERCENT: u32 = 70;
const GANG_NODES: u32 = 512;
const GIB: u64 = 1 << 30;
const CAPACITY: Resources = Resources::new(64, 8, 512 * GIB);
const HALF_USED: Resources = Resources::new(32, 4, 256 * GIB);

/// xorshift64*, seeded: the same occupancy on every run.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[derive(Clone, Copy)]
enum Scenario {
    WholeNodes,
    SharedGpus,
}

struct Cluster {
    fabric: Fabric,
    free: FreeIndex,
    /// Nodes in use (fully, or half for `SharedGpus`) and nodes idle.
    used: Vec<u32>,
    idle: Vec<u32>,
    used_value: Vec<Resources>,
    rng: XorShift,
    request: GangRequest,
}

impl Cluster {
    fn new(scenario: Scenario) -> Cluster {
        let fabric = Fabric::fat_tree(NODES, NODES_PER_LEAF, &[LEAVES_PER_SPINE]).expect("fat tree");
        assert_eq!(fabric.levels(), 3);
        let spec = NodeSpec { capacity: CAPACITY, features: vec!["ib".to_string()] };
        let mut free = FreeIndex::uniform(&fabric, &spec).expect("index");
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        // Fisher–Yates: exactly 70% of the nodes in use, at random.
        let mut order: Vec<u32> = (0..NODES).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i + 1));
        }
        let (used, idle) = order.split_at((NODES * BUSY_PERCENT / 100) as usize);
        let used_value: Vec<Resources> = (0..used.len())
            .map(|i| match scenario {
                Scenario::SharedGpus if i % 2 == 1 => HALF_USED,
                _ => Resources::ZERO,
            })
            .collect();
        for (&n, &value) in used.iter().zip(&used_value) {
            free.set_node(NodeId(n), value).expect("set_node");
        }
        let features = free.feature_set(&["ib"]).expect("ib");
        let per_node = match scenario {
            Scenario::WholeNodes => NodeNeed { resources: Resources::new(64, 8, 0), features, exclusive: true },
            Scenario::SharedGpus => NodeNeed { resources: Resources::new(8, 4, 64 * GIB), features, exclusive: false },
        };
        let request = GangRequest { nodes: GANG_NODES, per_node, max_leaves: None };
        Cluster { fabric, free, used: used.to_vec(), idle: idle.to_vec(), used_value, rng, request }
    }

    /// One decision as the scheduler makes it: select, allocate, and (the job ends) release.
    fn decide(&mut self) -> usize {
        let gang = select_gang(&self.fabric, &self.free, &self.request).expect("a gang fits");
        self.free.allocate(&gang).expect("allocate");
        self.free.release(&gang).expect("release");
        gang.nodes().len()
    }

    /// One used node becomes idle and one idle node is used the same way: still 70%.
    fn churn(&mut self) {
        let (i, j) = (self.rng.below(self.used.len()), self.rng.below(self.idle.len()));
        std::mem::swap(&mut self.used[i], &mut self.idle[j]);
        self.free.set_node(NodeId(self.idle[j]), CAPACITY).expect("set_node");
        self.free.set_node(NodeId(self.used[i]), self.used_value[i]).expect("set_node");
    }
}

/// 1,000 timed decisions after a warm-up; prints p50, p99 and the index's memory.
fn report_latency(name: &str, scenario: Scenario) {
    let mut cluster = Cluster::new(scenario);
    for _ in 0..200 {
        cluster.churn();
        black_box(cluster.decide());
    }
    let mut timings: Vec<Duration> = Vec::with_capacity(1000);
    for _ in 0..1000 {
        cluster.churn();
        let start = Instant::now();
        black_box(cluster.decide());
        timings.push(start.elapsed());
    }
    timings.sort_unstable();
    let at = |q: f64| timings[((timings.len() as f64 * q) as usize).min(timings.len() - 1)];
    println!(
        "gang/{name}: select_gang + allocate + release of {GANG_NODES} of {NODES} nodes at {BUSY_PERCENT}% busy, \
         1000 decisions: p50 {:?}, p90 {:?}, p99 {:?}, max {:?}",
        at(0.50),
        at(0.90),
        at(0.99),
        timings[timings.len() - 1]
    );
    println!(
        "gang/{name}: FreeIndex::heap_bytes() = {} bytes ({:.1} KiB) for {} nodes and {} switches; Fabric::heap_bytes() = {} bytes",
        cluster.free.heap_bytes(),
        cluster.free.heap_bytes() as f64 / 1024.0,
        cluster.fabric.node_count(),
        cluster.fabric.switch_count(),
        cluster.fabric.heap_bytes(),
    );
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("gang");
    for (name, scenario) in [("whole_nodes", Scenario::WholeNodes), ("shared_gpus", Scenario::SharedGpus)] {
        let mut cluster = Cluster::new(scenario);
        group.bench_function(format!("select_allocate_release_512_of_10000_{name}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    cluster.churn();
                    let start = Instant::now();
                    black_box(cluster.decide());
                    total += start.elapsed();
                }
                total
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);

fn main() {
    report_latency("whole_nodes", Scenario::WholeNodes);
    report_latency("shared_gpus", Scenario::SharedGpus);
    benches();
    Criterion::default().configure_from_args().final_summary();
}
