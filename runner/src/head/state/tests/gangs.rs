//! The head's relay of Open MPI agent requests between the instances of an attempt.

use gangway_api::messages::{AgentRelay, AttemptId, HeadMessage};
use gangway_api::*;

use super::Sim;

/// A head with a 3-node pool allowing multi-instance tasks, and a 2-instance managed MPI task
/// running; returns the attempt and its nodes (primary first).
fn gang() -> (Sim, AttemptId, [String; 2]) {
    let mut sim = Sim::with_gang_pool(&["n1", "n2", "n3"]);
    sim.job("j", 0);
    let t = TaskAddParameter {
        id: "t".into(),
        command_line: "./app".into(),
        multi_instance_settings: Some(MultiInstanceSettings { number_of_instances: 2, ..Default::default() }),
        mpi: Some(MpiSettings { ranks_per_node: 2, implementation: Some("openmpi".into()), ..Default::default() }),
        ..Default::default()
    };
    sim.apply(|st, fx| st.add_task("j", t, fx)).unwrap();
    let mut nodes: Vec<(u32, String)> = Vec::new();
    for n in ["n1", "n2", "n3"] {
        let rx = &mut sim.conns.get_mut(n).unwrap().0;
        while let Ok(m) = rx.try_recv() {
            if let HeadMessage::StartTask(s) = m {
                nodes.push((s.multi_instance.unwrap().instance, n.to_owned()));
            }
        }
    }
    nodes.sort();
    assert_eq!(nodes.len(), 2, "{nodes:?}");
    let id = AttemptId { job: "j".into(), task: "t".into(), attempt: 1 };
    (sim, id, [nodes[0].1.clone(), nodes[1].1.clone()])
}

/// Agent messages sent to `node` since the last look.
fn relayed(sim: &mut Sim, node: &str) -> Vec<AgentRelay> {
    let rx = &mut sim.conns.get_mut(node).unwrap().0;
    std::iter::from_fn(|| rx.try_recv().ok())
        .filter_map(|m| match m {
            HeadMessage::Agent(a) => Some(a),
            _ => None,
        })
        .collect()
}

#[test]
fn agent_requests_reach_the_named_instance_and_their_end_comes_back() {
    let (mut sim, id, [primary, other]) = gang();
    let run = AgentRelay::Run { id: id.clone(), origin: 0, req: 7, host: other.clone(), command: "orted".into() };
    sim.apply(|st, fx| st.agent_relay(&primary, run.clone(), fx));
    assert_eq!(relayed(&mut sim, &other), [run]);
    let exited = AgentRelay::Exited { id: id.clone(), origin: 0, req: 7, exit_code: Some(0), error: None };
    sim.apply(|st, fx| st.agent_relay(&other, exited.clone(), fx));
    assert_eq!(relayed(&mut sim, &primary), [exited]);
    let kill = AgentRelay::Kill { id: id.clone(), origin: 0, req: 8, host: other.clone() };
    sim.apply(|st, fx| st.agent_relay(&primary, kill.clone(), fx));
    assert_eq!(relayed(&mut sim, &other), [kill]);
}

#[test]
fn an_unknown_host_is_answered_at_once_and_strangers_are_ignored() {
    let (mut sim, id, [primary, other]) = gang();
    let run = AgentRelay::Run { id: id.clone(), origin: 0, req: 1, host: "n9".into(), command: "orted".into() };
    sim.apply(|st, fx| st.agent_relay(&primary, run, fx));
    match relayed(&mut sim, &primary).as_slice() {
        [AgentRelay::Exited { req: 1, exit_code: None, error: Some(e), .. }] => {
            assert!(e.contains("'n9'") && e.contains(&other), "{e}")
        }
        other => panic!("expected an error answer, got {other:?}"),
    }
    // A node outside the gang, and an attempt the task has moved past, get nothing relayed.
    let third = ["n1", "n2", "n3"].into_iter().find(|n| *n != primary && *n != other).unwrap();
    let run = AgentRelay::Run { id: id.clone(), origin: 0, req: 2, host: other.clone(), command: "x".into() };
    sim.apply(|st, fx| st.agent_relay(third, run, fx));
    let stale = AttemptId { attempt: 0, ..id };
    let run = AgentRelay::Run { id: stale, origin: 0, req: 3, host: other.clone(), command: "x".into() };
    sim.apply(|st, fx| st.agent_relay(&primary, run, fx));
    assert!(relayed(&mut sim, &other).is_empty());
    assert!(relayed(&mut sim, third).is_empty());
}

/// Signal messages sent to `node` since the last look, as `(attempt, signal)`.
fn signals(sim: &mut Sim, node: &str) -> Vec<(AttemptId, i32)> {
    let rx = &mut sim.conns.get_mut(node).unwrap().0;
    std::iter::from_fn(|| rx.try_recv().ok())
        .filter_map(|m| match m {
            HeadMessage::SignalTask { id, signal } => Some((id, signal)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_signal_reaches_every_instance_and_records_nothing() {
    let (mut sim, id, [primary, other]) = gang();
    let writes = sim.writes.len();
    sim.apply(|st, fx| st.signal_task("j", "t", 10, fx));
    assert_eq!(signals(&mut sim, &primary), [(id.clone(), 10)]);
    assert_eq!(signals(&mut sim, &other), [(id, 10)]);
    assert!(signals(&mut sim, "n3").is_empty(), "the node outside the gang");
    assert_eq!(sim.writes.len(), writes, "a signal changes nothing the head keeps");
    assert_eq!(sim.task("j", "t").state, TaskState::Running);
}
