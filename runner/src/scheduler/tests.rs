use proptest::prelude::*;

use super::*;

struct Sim {
    s: Scheduler,
    out: Vec<Decision>,
    next_task: u64,
}

/// A node of `cpus` one-thread cores and 1 GiB, no GPUs.
fn small(cpus: u32) -> Arc<NodeInventory> {
    let res = gangway_topology::NodeResources { cpus, cores: cpus, memory_bytes: 1 << 30, ..Default::default() };
    Arc::new(NodeInventory::flat(&res, 0))
}

/// dgx_like: 2 NUMA domains of 16 cores × 2 threads, GPUs 0-3 on NUMA 0, 4-7 on NUMA 1, 2 GiB.
fn dgx() -> Arc<NodeInventory> {
    Arc::new(NodeInventory::from_topology(&gangway_topology::placement::dgx_like_fixture(), 0))
}

fn up(node: NodeKey, used: u32) -> Event {
    let held = (used > 0).then(|| Held {
        task: 1_000_000 + node as u64,
        slots: used,
        grant: Grant::default(),
        end: None,
        owner: Default::default(),
    });
    Event::NodeUp {
        node,
        pool: 0,
        inventory: small(8),
        held: held.into_iter().collect(),
        schedulable: true,
        place: None,
    }
}

fn need(cpus: u32, memory_mib: u64, gpus: u32) -> Option<Need> {
    Some(Need { cpus, memory_mib, gpus, ..Need::default() })
}

impl Sim {
    fn new(slots: u32, fill: Fill, nodes: &[NodeKey]) -> Sim {
        let mut sim = Sim { s: Scheduler::new(), out: Vec::new(), next_task: 0 };
        sim.ev(Event::PoolAdded { pool: 0, slots_per_node: slots, fill, policy: Policy::default() });
        for &n in nodes {
            sim.ev(up(n, 0));
        }
        sim
    }

    /// A pool of `slots` slots per node whose nodes are `inventory`.
    fn with_nodes(slots: u32, fill: Fill, inventory: Arc<NodeInventory>, nodes: &[NodeKey]) -> Sim {
        let mut sim = Sim::new(slots, fill, &[]);
        for &node in nodes {
            sim.ev(Event::idle_node(node, 0, inventory.clone(), None));
        }
        sim
    }

    fn ev(&mut self, e: Event) {
        self.s.on_event(e, &mut self.out);
    }

    fn submit(&mut self, priority: i32, job: u64, slots: u32) -> TaskKey {
        self.submit_need(priority, job, slots, None)
    }

    fn submit_need(&mut self, priority: i32, job: u64, slots: u32, need: Option<Need>) -> TaskKey {
        self.next_task += 1;
        let task = self.next_task;
        self.ev(Event::TaskQueued {
            task,
            pool: 0,
            order: QueueKey::new(priority, job, task),
            slots,
            need,
            gang: None,
            limit: None,
            job: Default::default(),
        });
        task
    }

    fn take(&mut self) -> Vec<(TaskKey, NodeKey)> {
        self.take_grants().into_iter().map(|(t, n, _)| (t, n)).collect()
    }

    fn take_grants(&mut self) -> Vec<(TaskKey, NodeKey, Grant)> {
        self.out
            .drain(..)
            .map(|d| match d {
                Decision::Start { task, node, grant } => (task, node, grant),
                Decision::StartGang { .. } => panic!("unexpected gang {d:?}"),
            })
            .collect()
    }

    fn gang(&mut self, n: u32) -> TaskKey {
        self.gang_need(n, 0, None)
    }

    fn gang_need(&mut self, n: u32, slots: u32, need: Option<Need>) -> TaskKey {
        self.next_task += 1;
        let task = self.next_task;
        self.ev(Event::TaskQueued {
            task,
            pool: 0,
            order: QueueKey::new(0, 1, task),
            slots,
            need,
            gang: Some(n),
            limit: None,
            job: Default::default(),
        });
        task
    }

    fn take_gang(&mut self) -> (TaskKey, Vec<NodeKey>) {
        match self.out.pop() {
            Some(Decision::StartGang { task, nodes }) => (task, nodes.into_iter().map(|(k, _)| k).collect()),
            other => panic!("expected a gang, got {other:?}"),
        }
    }

    fn release(&mut self, task: TaskKey, node: NodeKey) {
        self.ev(Event::TaskReleased { task, node });
    }
}

#[test]
fn spread_puts_tasks_on_the_emptiest_node() {
    let mut sim = Sim::new(2, Fill::Spread, &[1, 2]);
    for _ in 0..4 {
        sim.submit(0, 1, 1);
    }
    assert_eq!(sim.take(), vec![(1, 1), (2, 2), (3, 1), (4, 2)]);
}

#[test]
fn pack_fills_a_node_first() {
    let mut sim = Sim::new(2, Fill::Pack, &[1, 2]);
    for _ in 0..4 {
        sim.submit(0, 1, 1);
    }
    assert_eq!(sim.take(), vec![(1, 1), (2, 1), (3, 2), (4, 2)]);
}

#[test]
fn priority_then_job_order_then_task_order() {
    let mut sim = Sim::new(1, Fill::Spread, &[]);
    let low = sim.submit(-5, 1, 1);
    let old_job = sim.submit(0, 2, 1);
    let high = sim.submit(100, 3, 1);
    let new_job = sim.submit(0, 4, 1);
    let old_job_later_task = sim.submit(0, 2, 1);
    assert!(sim.take().is_empty(), "no node, no decisions");
    sim.ev(up(7, 0));
    let mut order = Vec::new();
    for _ in 0..5 {
        let started = sim.take();
        assert_eq!(started.len(), 1);
        order.push(started[0].0);
        sim.release(started[0].0, 7);
    }
    assert_eq!(order, vec![high, old_job, old_job_later_task, new_job, low]);
}

#[test]
fn required_slots_are_honoured() {
    let mut sim = Sim::new(4, Fill::Spread, &[1]);
    let big = sim.submit(0, 1, 3);
    let too_big_now = sim.submit(0, 1, 2);
    let small = sim.submit(0, 1, 1);
    // The 2-slot task does not fit next to the 3-slot one; the 1-slot task behind it does.
    assert_eq!(sim.take(), vec![(big, 1), (small, 1)]);
    assert_eq!(sim.s.free_slots(1), Some(0));
    sim.release(big, 1);
    assert_eq!(sim.take(), vec![(too_big_now, 1)]);
    assert!(!sim.s.fits_pool(0, 5));
}

#[test]
fn unschedulable_and_lost_nodes_get_nothing() {
    let mut sim = Sim::new(1, Fill::Spread, &[1, 2]);
    sim.ev(Event::NodeSchedulable { node: 1, schedulable: false });
    sim.ev(Event::NodeDown { node: 2 });
    let t = sim.submit(0, 1, 1);
    assert!(sim.take().is_empty());
    sim.ev(Event::NodeSchedulable { node: 1, schedulable: true });
    assert_eq!(sim.take(), vec![(t, 1)]);
}

#[test]
fn withdrawn_tasks_never_start() {
    let mut sim = Sim::new(1, Fill::Spread, &[]);
    let a = sim.submit(0, 1, 1);
    let b = sim.submit(0, 1, 1);
    sim.ev(Event::TaskWithdrawn { task: a });
    sim.ev(up(1, 0));
    assert_eq!(sim.take(), vec![(b, 1)]);
    assert_eq!(sim.s.queued_len(0), 0);
}

#[test]
fn a_returning_node_counts_the_slots_its_tasks_still_hold() {
    let mut sim = Sim::new(2, Fill::Spread, &[]);
    sim.ev(up(1, 2));
    sim.submit(0, 1, 1);
    assert!(sim.take().is_empty());
    sim.release(1_000_001, 1);
    assert_eq!(sim.take().len(), 1);
    sim.release(1_000_001, 1);
    assert_eq!(sim.s.free_slots(1), Some(1), "a second release gives nothing back");
}

#[test]
fn lookahead_is_bounded_in_shapes() {
    let mut sim = Sim::with_nodes(2, Fill::Spread, small(2), &[1]);
    sim.submit(0, 1, 1); // takes one slot; one left
    sim.take();
    // Many tasks of one shape that does not fit count once: the small task behind them runs.
    for _ in 0..2 * MAX_LOOKAHEAD {
        sim.submit(0, 1, 2);
    }
    let small_task = sim.submit(0, 1, 1);
    assert_eq!(sim.take(), vec![(small_task, 1)]);
    sim.release(small_task, 1);
    // As many distinct shapes that do not fit as the bound: the task behind them waits.
    for cpus in 0..MAX_LOOKAHEAD as u32 {
        sim.submit_need(0, 1, 1, need(3 + cpus, 0, 0));
    }
    sim.submit(0, 1, 1);
    assert!(sim.take().is_empty(), "the small task sits beyond the look-ahead bound");
}

#[test]
fn a_blocked_shape_is_tried_again_on_the_node_that_frees_up() {
    let mut sim = Sim::with_nodes(8, Fill::Pack, small(2), &[1, 2]);
    let a = sim.submit_need(0, 1, 1, need(2, 0, 0));
    let b = sim.submit_need(0, 1, 1, need(2, 0, 0));
    assert_eq!(sim.take().len(), 2);
    // Blocked: both nodes are full.
    let c = sim.submit_need(0, 1, 1, need(2, 0, 0));
    let d = sim.submit_need(0, 1, 1, need(1, 0, 0));
    assert!(sim.take().is_empty());
    sim.release(b, 2);
    assert_eq!(sim.take(), vec![(c, 2)], "the older task takes node 2, the 1-CPU one waits");
    sim.release(a, 1);
    assert_eq!(sim.take(), vec![(d, 1)]);
}

#[test]
fn a_gang_takes_whole_idle_nodes_at_once() {
    let mut sim = Sim::new(2, Fill::Spread, &[1, 2, 3]);
    let busy = sim.submit(0, 1, 1); // half of node 1
    assert_eq!(sim.take(), vec![(busy, 1)]);
    let g = sim.gang(2);
    assert_eq!(sim.take_gang(), (g, vec![2, 3]));
    assert_eq!((sim.s.free_slots(2), sim.s.free_slots(3)), (Some(0), Some(0)));
    // Three whole nodes are not there until node 1 and the gang's nodes are free again.
    let g3 = sim.gang(3);
    let small = sim.submit(0, 1, 1);
    assert_eq!(sim.take(), vec![(small, 1)], "a small task behind the waiting gang still runs");
    for node in [2, 3] {
        sim.release(g, node);
    }
    sim.release(busy, 1);
    assert!(sim.out.is_empty(), "node 1 still runs the small task");
    sim.release(small, 1);
    assert_eq!(sim.take_gang(), (g3, vec![1, 2, 3]));
    assert_eq!(sim.s.pool_node_count(0), 3);
}

#[test]
fn on_a_fabric_a_gang_lands_under_one_leaf() {
    let conf = "SwitchName=leaf1 Nodes=n[1-4]\nSwitchName=leaf2 Nodes=n[5-8]\nSwitchName=spine Switches=leaf[1-2]\n";
    let fabric = std::sync::Arc::new(gangway_topology::fabric::Fabric::parse(conf).unwrap());
    let mut sim = Sim { s: Scheduler::with_fabric(fabric.clone()), out: Vec::new(), next_task: 0 };
    sim.ev(Event::PoolAdded { pool: 0, slots_per_node: 1, fill: Fill::Spread, policy: Policy::default() });
    // Node keys 1..8 are n1..n8; n1 (on leaf1) is busy.
    for k in 1..=8u32 {
        let place = fabric.node_id(&format!("n{k}")).unwrap().0;
        let held: Vec<Held> = (k == 1)
            .then(|| Held { task: 99, slots: 1, grant: Grant::default(), end: None, owner: Default::default() })
            .into_iter()
            .collect();
        sim.ev(Event::NodeUp { node: k, pool: 0, inventory: small(1), held, schedulable: true, place: Some(place) });
    }
    let g = sim.gang(4);
    // The lowest keys (n2..n5) would straddle both leaves; leaf2 holds four idle nodes.
    assert_eq!(sim.take_gang(), (g, vec![5, 6, 7, 8]));
    let g2 = sim.gang(2);
    let (task, nodes) = sim.take_gang();
    assert_eq!(task, g2);
    assert!(nodes.iter().all(|k| (2..=4).contains(k)), "{nodes:?}");
}

#[test]
fn two_one_core_tasks_on_a_two_core_node_get_different_cores() {
    let mut sim = Sim::with_nodes(8, Fill::Pack, small(2), &[1]);
    let a = sim.submit_need(0, 1, 1, need(1, 0, 0));
    let b = sim.submit_need(0, 1, 1, need(1, 0, 0));
    let c = sim.submit_need(0, 1, 1, need(1, 0, 0));
    let started = sim.take_grants();
    assert_eq!(started.iter().map(|s| s.0).collect::<Vec<_>>(), vec![a, b], "no third core");
    assert_ne!(started[0].2.cores, started[1].2.cores);
    sim.release(a, 1);
    let next = sim.take_grants();
    assert_eq!((next[0].0, &next[0].2.cores), (c, &started[0].2.cores), "the freed core goes to the next task");
}

#[test]
fn memory_is_a_limit_on_sharing() {
    let mut sim = Sim::with_nodes(8, Fill::Pack, small(8), &[1]);
    let a = sim.submit_need(0, 1, 1, need(1, 700, 0));
    let b = sim.submit_need(0, 1, 1, need(1, 700, 0));
    assert_eq!(sim.take(), vec![(a, 1)], "1 GiB holds one 700 MiB task");
    sim.release(a, 1);
    assert_eq!(sim.take(), vec![(b, 1)]);
}

#[test]
fn eight_one_gpu_tasks_share_an_eight_gpu_node() {
    let mut sim = Sim::with_nodes(64, Fill::Pack, dgx(), &[1]);
    for _ in 0..9 {
        sim.submit_need(0, 1, 1, need(2, 64, 1));
    }
    let started = sim.take_grants();
    assert_eq!(started.len(), 8, "eight at once, the ninth waits for a GPU");
    let mut gpus: Vec<u32> = started.iter().flat_map(|s| s.2.gpus.clone()).collect();
    gpus.sort_unstable();
    assert_eq!(gpus, (0..8).collect::<Vec<_>>());
}

#[test]
fn a_partial_gang_leaves_the_rest_of_its_nodes_to_others() {
    let mut sim = Sim::with_nodes(64, Fill::Spread, dgx(), &[1, 2]);
    let g = sim.gang_need(2, 1, need(2, 128, 0));
    let (task, nodes) = sim.take_gang();
    assert_eq!((task, nodes), (g, vec![1, 2]));
    // A whole-node task waits; what fits beside the gang runs beside it.
    sim.submit_need(0, 1, 1, Some(Need { whole: true, ..Need::default() }));
    let a = sim.submit_need(0, 1, 1, need(30, 0, 8));
    let b = sim.submit_need(0, 1, 1, need(2, 0, 1));
    let started = sim.take();
    assert_eq!(started.iter().map(|s| s.0).collect::<Vec<_>>(), vec![a, b]);
    assert_ne!(started[0].1, started[1].1, "all 8 GPUs of one node went to {a}");
    // 64 cores less the gang's 2, a's 15 and b's 1.
    assert_eq!(sim.s.free_resources(1).unwrap().free_cores() + sim.s.free_resources(2).unwrap().free_cores(), 46);
    assert_eq!(sim.s.queued_len(0), 1, "the whole-node task waits");
}

#[test]
fn a_need_no_node_can_hold_waits_and_never_shares_gpus() {
    // 8 ranks × 2 GPUs on one 8-GPU node: 16 GPUs, never silently 2 ranks per GPU.
    let mut sim = Sim::with_nodes(64, Fill::Pack, dgx(), &[1]);
    sim.submit_need(0, 1, 1, need(8, 0, 16));
    assert!(sim.take().is_empty());
    assert_eq!(sim.s.queued_len(0), 1);
}

#[test]
fn a_whole_node_task_takes_every_slot_and_core() {
    let mut sim = Sim::with_nodes(4, Fill::Pack, small(4), &[1]);
    let whole = sim.submit_need(0, 1, 1, Some(Need { whole: true, ..Need::default() }));
    let started = sim.take_grants();
    assert_eq!((started[0].0, started[0].2.cores.len()), (whole, 4));
    assert_eq!(sim.s.free_slots(1), Some(0));
    sim.submit(0, 1, 1);
    assert!(sim.take().is_empty(), "not even a slots-only task shares it");
}

#[derive(Debug, Clone)]
enum Op {
    Submit {
        cpus: u32,
        mem: u64,
        gpus: u32,
        gang: Option<u32>,
    },
    Release(usize),
    /// A running task queued again (a retry or requeue) before its old attempt's release.
    Requeue(usize),
    Restart(NodeKey),
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(
        prop_oneof![
            4 => (0u32..24, 0u64..900, 0u32..4, prop::option::weighted(0.2, 1u32..4))
                .prop_map(|(cpus, mem, gpus, gang)| Op::Submit { cpus, mem, gpus, gang }),
            4 => (0usize..64).prop_map(Op::Release),
            1 => (0usize..64).prop_map(Op::Requeue),
            1 => (1u32..4).prop_map(Op::Restart),
        ],
        1..150,
    )
}

proptest! {
    /// Random submit/release sequences, with nodes restarting (the head's NodeDown/NodeUp
    /// with what their tasks still hold) in the middle: no core or GPU is ever in two live
    /// allocations, memory is never over-committed, and every allocation is released once.
    #[test]
    fn no_core_or_gpu_is_ever_in_two_live_allocations(ops in ops()) {
        let inv = dgx();
        let mut sim = Sim::with_nodes(1000, Fill::Pack, inv.clone(), &[1, 2, 3]);
        // Live allocations: task → (node, grant) parts, as the head records them.
        let mut live: Vec<(TaskKey, Vec<(NodeKey, Grant)>)> = Vec::new();
        for op in ops {
            match op {
                Op::Submit { cpus, mem, gpus, gang } => {
                    let n = need(cpus, mem, gpus);
                    match gang {
                        Some(g) => { sim.gang_need(g, 1, n); }
                        None => { sim.submit_need(0, 1, 1, n); }
                    }
                }
                Op::Release(i) if !live.is_empty() => {
                    let (task, parts) = live.swap_remove(i % live.len());
                    for (node, _) in parts {
                        sim.release(task, node);
                        sim.release(task, node);
                    }
                }
                Op::Release(_) => {}
                Op::Requeue(i) if !live.is_empty() => {
                    let (task, parts) = live.swap_remove(i % live.len());
                    let order = QueueKey::new(0, 1, task);
                    sim.ev(Event::TaskQueued { task, pool: 0, order, slots: 1, need: need(4, 100, 1), gang: None, limit: None , job: Default::default()});
                    for (node, _) in parts {
                        sim.release(task, node);
                    }
                }
                Op::Requeue(_) => {}
                Op::Restart(node) => {
                    sim.ev(Event::NodeDown { node });
                    let held = live
                        .iter()
                        .flat_map(|(t, parts)| parts.iter().filter(|p| p.0 == node).map(|p| Held { task: *t, slots: 1, grant: p.1.clone(), end: None, owner: Default::default() }))
                        .collect();
                    sim.ev(Event::NodeUp { node, pool: 0, inventory: inv.clone(), held, schedulable: true, place: None });
                }
            }
            for d in sim.out.drain(..) {
                match d {
                    Decision::Start { task, node, grant } => live.push((task, vec![(node, grant)])),
                    Decision::StartGang { task, nodes } => {
                        let mut keys: Vec<NodeKey> = nodes.iter().map(|n| n.0).collect();
                        keys.sort_unstable();
                        keys.dedup();
                        prop_assert_eq!(keys.len(), nodes.len(), "a gang on one node twice");
                        live.push((task, nodes));
                    }
                }
            }
            for node in 1..=3u32 {
                let grants: Vec<&Grant> = live.iter().flat_map(|(_, p)| p.iter().filter(|p| p.0 == node).map(|p| &p.1)).collect();
                let mut cores: Vec<u32> = grants.iter().flat_map(|g| g.cores.iter().copied()).collect();
                let mut gpus: Vec<u32> = grants.iter().flat_map(|g| g.gpus.iter().copied()).collect();
                let (nc, ng) = (cores.len(), gpus.len());
                cores.sort_unstable();
                cores.dedup();
                gpus.sort_unstable();
                gpus.dedup();
                prop_assert_eq!(cores.len(), nc, "a core in two allocations on node {}", node);
                prop_assert_eq!(gpus.len(), ng, "a GPU in two allocations on node {}", node);
                let mem: u64 = grants.iter().map(|g| g.memory_mib).sum();
                prop_assert!(mem <= inv.memory_mib);
                let free = sim.s.free_resources(node).unwrap();
                prop_assert_eq!(free.memory_mib(), inv.memory_mib - mem, "memory released once");
                prop_assert_eq!(free.free_cores() as usize, inv.cores.len() - nc, "cores released once");
            }
        }
        for (task, parts) in live.drain(..) {
            for (node, _) in parts {
                sim.release(task, node);
            }
        }
        sim.out.clear();
        for node in 1..=3u32 {
            let free = sim.s.free_resources(node).unwrap();
            // Whatever started after the last check holds the rest: only check nothing leaked.
            prop_assert!(free.free_cores() as usize <= inv.cores.len());
        }
    }
}

#[test]
fn on_a_fabric_a_partial_gang_goes_where_its_need_fits_under_one_leaf() {
    let conf = "SwitchName=leaf1 Nodes=n[1-4]\nSwitchName=leaf2 Nodes=n[5-8]\nSwitchName=spine Switches=leaf[1-2]\n";
    let fabric = Arc::new(gangway_topology::fabric::Fabric::parse(conf).unwrap());
    let mut sim = Sim { s: Scheduler::with_fabric(fabric.clone()), out: Vec::new(), next_task: 0 };
    sim.ev(Event::PoolAdded { pool: 0, slots_per_node: 64, fill: Fill::Pack, policy: Policy::default() });
    let inv = dgx();
    // n1 and n2 have 2 of their 32 cores left.
    let busy = gangway_topology::alloc::pick(&inv, &inv.all_free(), &need(60, 0, 0).unwrap()).unwrap();
    for k in 1..=8u32 {
        let place = fabric.node_id(&format!("n{k}")).unwrap().0;
        let held: Vec<Held> = (k <= 2)
            .then(|| Held {
                task: 100 + u64::from(k),
                slots: 1,
                grant: busy.clone(),
                end: None,
                owner: Default::default(),
            })
            .into_iter()
            .collect();
        sim.ev(Event::NodeUp { node: k, pool: 0, inventory: inv.clone(), held, schedulable: true, place: Some(place) });
    }
    let g = sim.gang_need(4, 1, need(8, 0, 1));
    assert_eq!(sim.take_gang(), (g, vec![5, 6, 7, 8]), "leaf1 has only two nodes with 4 free cores");
    // The index follows takes and releases: once n1 and n2 are free, leaf1 holds the next one.
    sim.release(101, 1);
    sim.release(102, 2);
    let g2 = sim.gang_need(4, 1, need(8, 0, 8));
    assert_eq!(sim.take_gang(), (g2, vec![1, 2, 3, 4]), "leaf2's nodes have 7 GPUs left, not 8");
}

#[test]
fn a_task_queued_again_is_not_placed_where_its_last_attempt_still_holds_resources() {
    let mut sim = Sim::with_nodes(8, Fill::Pack, small(4), &[1]);
    let t = sim.submit_need(0, 1, 1, need(2, 0, 0));
    let first = sim.take_grants();
    assert_eq!(first.len(), 1);
    // A retry queued before the first attempt's release (as the head does): node 1 has room,
    // but the task still holds part of it, so it waits instead of holding it twice.
    sim.ev(Event::TaskQueued {
        task: t,
        pool: 0,
        order: QueueKey::new(0, 1, t),
        slots: 1,
        need: need(2, 0, 0),
        gang: None,
        limit: None,
        job: Default::default(),
    });
    assert!(sim.take().is_empty());
    // Tasks of its shape behind it wait with it (the head releases the old attempt right after).
    let other = sim.submit_need(0, 1, 1, need(2, 0, 0));
    assert!(sim.take().is_empty());
    sim.release(t, 1);
    let started = sim.take_grants();
    assert_eq!(started.iter().map(|s| s.0).collect::<Vec<_>>(), vec![t, other]);
    assert_eq!(started[0].2.cores, first[0].2.cores, "the retry takes what was given back");
    sim.release(t, 1);
    sim.release(other, 1);
    assert_eq!(sim.s.free_resources(1).unwrap().free_cores(), 4, "everything was given back once");
}
