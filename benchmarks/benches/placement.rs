//! `plan_ranks` on the hand-built `dgx_like` node (target: ≤ 50 µs for 8 ranks × 1 GPU).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use gangway_topology::placement::{dgx_like_fixture, plan_ranks, PlacementRequest, ReserveFrom};

fn placement(c: &mut Criterion) {
    let node = dgx_like_fixture();
    let eight = PlacementRequest { gpus_per_rank: 1, ..PlacementRequest::new(8) };
    c.bench_function("plan_ranks/dgx_like/8x1gpu", |b| b.iter(|| plan_ranks(black_box(&node), black_box(&eight))));
    let sixteen = PlacementRequest {
        gpus_per_rank: 1,
        reserve_cores_per_socket: 1,
        reserve_from: ReserveFrom::First,
        ..PlacementRequest::new(16)
    };
    c.bench_function("plan_ranks/dgx_like/16x1gpu_shared", |b| {
        b.iter(|| plan_ranks(black_box(&node), black_box(&sixteen)))
    });
}

criterion_group!(benches, placement);
criterion_main!(benches);
