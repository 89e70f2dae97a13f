//! The scheduler core alone: decisions per second with 100,000 queued tasks on 1,000 nodes.
//!
//! `cargo bench -p gangway-benchmarks --bench scheduler`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use gangway_runner::scheduler::{Decision, Event, Fill, QueueKey, Scheduler};

const NODES: u32 = 1000;
const SLOTS: u32 = 4;
const QUEUED: u64 = 100_000;

/// A pool of busy nodes with `QUEUED` tasks waiting, of mixed priority and size.
fn loaded(fill: Fill) -> (Scheduler, u64) {
    let mut s = Scheduler::new();
    let mut out = Vec::new();
    s.on_event(Event::PoolAdded { pool: 0, slots_per_node: SLOTS, fill }, &mut out);
    for node in 0..NODES {
        s.on_event(Event::NodeUp { node, pool: 0, used: SLOTS, schedulable: true, place: None }, &mut out);
    }
    for task in 0..QUEUED {
        let order = QueueKey::new((task % 7) as i32, task / 100, task);
        let slots = 1 + (task % 3 == 0) as u32;
        s.on_event(Event::TaskQueued { task, pool: 0, order, slots, gang: None }, &mut out);
    }
    assert!(out.is_empty());
    (s, QUEUED)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("scheduler");
    g.sample_size(20);
    for fill in [Fill::Spread, Fill::Pack] {
        // Steady state: a task ends, the freed slot is filled, a new task arrives.
        let (mut s, mut next) = loaded(fill);
        let mut out = Vec::new();
        let mut node = 0;
        g.throughput(Throughput::Elements(1));
        g.bench_function(format!("release_and_decide_{fill:?}"), |b| {
            b.iter(|| {
                out.clear();
                s.on_event(Event::TaskReleased { node, slots: 2 }, &mut out);
                node = (node + 1) % NODES;
                next += 1;
                let order = QueueKey::new((next % 7) as i32, next / 100, next);
                s.on_event(
                    Event::TaskQueued { task: next, pool: 0, order, slots: 1 + (next % 3 == 0) as u32, gang: None },
                    &mut out,
                );
                black_box(&out);
            })
        });
        // A burst: every node frees all its slots at once (4,000 slots for 100k queued tasks).
        g.throughput(Throughput::Elements((NODES * SLOTS) as u64));
        g.bench_function(format!("fill_empty_cluster_{fill:?}"), |b| {
            b.iter_batched(
                || loaded(fill).0,
                |mut s| {
                    let mut out: Vec<Decision> = Vec::with_capacity(8192);
                    for node in 0..NODES {
                        s.on_event(Event::TaskReleased { node, slots: SLOTS }, &mut out);
                    }
                    assert!(out.len() as u32 >= NODES * SLOTS / 2);
                    black_box(out)
                },
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
