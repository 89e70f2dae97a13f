use super::*;

struct Sim {
    s: Scheduler,
    out: Vec<Decision>,
    next_task: u64,
}

impl Sim {
    fn new(slots: u32, fill: Fill, nodes: &[NodeKey]) -> Sim {
        let mut sim = Sim { s: Scheduler::new(), out: Vec::new(), next_task: 0 };
        sim.ev(Event::PoolAdded { pool: 0, slots_per_node: slots, fill });
        for &n in nodes {
            sim.ev(Event::NodeUp { node: n, pool: 0, used: 0, schedulable: true, place: None });
        }
        sim
    }

    fn ev(&mut self, e: Event) {
        self.s.on_event(e, &mut self.out);
    }

    fn submit(&mut self, priority: i32, job: u64, slots: u32) -> TaskKey {
        self.next_task += 1;
        let task = self.next_task;
        self.ev(Event::TaskQueued { task, pool: 0, order: QueueKey::new(priority, job, task), slots, gang: None });
        task
    }

    fn take(&mut self) -> Vec<(TaskKey, NodeKey)> {
        self.out
            .drain(..)
            .map(|d| match d {
                Decision::Start { task, node } => (task, node),
                Decision::StartGang { .. } => panic!("unexpected gang {d:?}"),
            })
            .collect()
    }

    fn gang(&mut self, n: u32) -> TaskKey {
        self.next_task += 1;
        let task = self.next_task;
        self.ev(Event::TaskQueued { task, pool: 0, order: QueueKey::new(0, 1, task), slots: 0, gang: Some(n) });
        task
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
    sim.ev(Event::NodeUp { node: 7, pool: 0, used: 0, schedulable: true, place: None });
    let mut order = Vec::new();
    for _ in 0..5 {
        let started = sim.take();
        assert_eq!(started.len(), 1);
        order.push(started[0].0);
        sim.ev(Event::TaskReleased { node: 7, slots: 1 });
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
    sim.ev(Event::TaskReleased { node: 1, slots: 3 });
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
    sim.ev(Event::NodeUp { node: 1, pool: 0, used: 0, schedulable: true, place: None });
    assert_eq!(sim.take(), vec![(b, 1)]);
    assert_eq!(sim.s.queued_len(0), 0);
}

#[test]
fn a_returning_node_counts_the_slots_its_tasks_still_hold() {
    let mut sim = Sim::new(2, Fill::Spread, &[]);
    sim.ev(Event::NodeUp { node: 1, pool: 0, used: 2, schedulable: true, place: None });
    sim.submit(0, 1, 1);
    assert!(sim.take().is_empty());
    sim.ev(Event::TaskReleased { node: 1, slots: 1 });
    assert_eq!(sim.take().len(), 1);
}

#[test]
fn lookahead_is_bounded() {
    let mut sim = Sim::new(2, Fill::Spread, &[1]);
    sim.submit(0, 1, 1); // takes one slot; one left
    sim.take();
    for _ in 0..MAX_LOOKAHEAD {
        sim.submit(0, 1, 2);
    }
    sim.submit(0, 1, 1);
    assert!(sim.take().is_empty(), "the small task sits beyond the look-ahead bound");
}

#[test]
fn a_gang_takes_whole_idle_nodes_at_once() {
    let mut sim = Sim::new(2, Fill::Spread, &[1, 2, 3]);
    let busy = sim.submit(0, 1, 1); // half of node 1
    assert_eq!(sim.take(), vec![(busy, 1)]);
    let g = sim.gang(2);
    assert_eq!(sim.out.drain(..).collect::<Vec<_>>(), vec![Decision::StartGang { task: g, nodes: vec![2, 3] }]);
    assert_eq!((sim.s.free_slots(2), sim.s.free_slots(3)), (Some(0), Some(0)));
    // Three whole nodes are not there until node 1 and the gang's nodes are free again.
    let g3 = sim.gang(3);
    let small = sim.submit(0, 1, 1);
    assert_eq!(sim.take(), vec![(small, 1)], "a small task behind the waiting gang still runs");
    for node in [2, 3] {
        sim.ev(Event::TaskReleased { node, slots: 2 });
    }
    sim.ev(Event::TaskReleased { node: 1, slots: 1 });
    assert!(sim.out.is_empty(), "node 1 still runs the small task");
    sim.ev(Event::TaskReleased { node: 1, slots: 1 });
    assert_eq!(sim.out.drain(..).collect::<Vec<_>>(), vec![Decision::StartGang { task: g3, nodes: vec![1, 2, 3] }]);
    assert_eq!(sim.s.pool_node_count(0), 3);
}

#[test]
fn on_a_fabric_a_gang_lands_under_one_leaf() {
    let conf = "SwitchName=leaf1 Nodes=n[1-4]\nSwitchName=leaf2 Nodes=n[5-8]\nSwitchName=spine Switches=leaf[1-2]\n";
    let fabric = std::sync::Arc::new(gangway_topology::fabric::Fabric::parse(conf).unwrap());
    let mut sim = Sim { s: Scheduler::with_fabric(fabric.clone()), out: Vec::new(), next_task: 0 };
    sim.ev(Event::PoolAdded { pool: 0, slots_per_node: 1, fill: Fill::Spread });
    // Node keys 1..8 are n1..n8; n1 (on leaf1) is busy.
    for k in 1..=8u32 {
        let place = fabric.node_id(&format!("n{k}")).unwrap().0;
        sim.ev(Event::NodeUp { node: k, pool: 0, used: u32::from(k == 1), schedulable: true, place: Some(place) });
    }
    let g = sim.gang(4);
    // The lowest keys (n2..n5) would straddle both leaves; leaf2 holds four idle nodes.
    assert_eq!(sim.out.drain(..).collect::<Vec<_>>(), vec![Decision::StartGang { task: g, nodes: vec![5, 6, 7, 8] }]);
    let g2 = sim.gang(2);
    let Some(Decision::StartGang { task, nodes }) = sim.out.pop() else { panic!("no second gang") };
    assert_eq!(task, g2);
    assert!(nodes.iter().all(|k| (2..=4).contains(k)), "{nodes:?}");
}
