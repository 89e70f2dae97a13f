//! Scheduling over time, driven by scripts with a simulated clock: one line per step.
//!
//! ```text
//! nodes N cpus C [gpus G [type T]]
//!                              N more nodes of C one-thread cores and G GPUs named T
//! policy fcfs|easy|firstfit    the pool's policy (before `nodes`)
//! order deadline|submit        how it orders jobs of equal priority (before `nodes`; default submit)
//! at T                         the clock is T seconds
//! queue NAME [gang=N] [cpus=N] [gpus=N] [type=T] [limit=S] [prio=P] [user=U] [account=A] [job=J] [nice=N]
//!                              a task (a gang of N nodes, whole nodes without cpus/gpus) of
//!                              job J (default: a job of its own), owned by U in A (default 0)
//! weights [age=W] [fairshare=W] [size=W] [maxage=S] [halflife=S] [gpu=B]
//!                              multifactor priority weights (before `nodes`)
//! limits [user_jobs=N] [user_cpus=N] [user_gpus=N] [account_jobs=N] [account_cpus=N] [account_gpus=N]
//!                              limits on running work (before `nodes`)
//! reprioritize                 recalculate usage and priorities now (the head's timer)
//! priority NAME P              NAME's multifactor priority is P
//! held NAME REASON|-           NAME waits on Slurm's limit REASON (or on none)
//! end NAME                     NAME ends on all its nodes
//! started NAME…                exactly these tasks started since the last check (`started -`: none)
//! planned NAME T [on K…]       NAME's reservation starts at T (on nodes K…); `planned NAME -`: none
//! ```

use std::collections::BTreeMap;

use super::*;

struct Script {
    s: Scheduler,
    out: Vec<Decision>,
    names: BTreeMap<String, TaskKey>,
    nodes_of: BTreeMap<TaskKey, Vec<NodeKey>>,
    policy: Policy,
    fill: Fill,
    started: Vec<String>,
}

fn inventory(cpus: u32, gpus: u32) -> Arc<NodeInventory> {
    typed_inventory(cpus, gpus, "test")
}

fn typed_inventory(cpus: u32, gpus: u32, name: &str) -> Arc<NodeInventory> {
    let res = gangway_topology::NodeResources {
        cpus,
        cores: cpus,
        memory_bytes: 1 << 30,
        gpus: (0..gpus)
            .map(|index| gangway_topology::Gpu {
                index,
                name: name.into(),
                uuid: String::new(),
                pci_bus_id: String::new(),
            })
            .collect(),
        ..Default::default()
    };
    Arc::new(NodeInventory::flat(&res, 0))
}

fn kv(words: &[&str], key: &str) -> Option<u64> {
    let prefix = format!("{key}=");
    words.iter().find_map(|w| w.strip_prefix(&prefix)).map(|v| v.parse().unwrap())
}

impl Script {
    fn new() -> Script {
        Script {
            s: Scheduler::new(),
            out: Vec::new(),
            names: BTreeMap::new(),
            nodes_of: BTreeMap::new(),
            policy: Policy::classic(Backfill::Easy),
            fill: Fill::Pack,
            started: Vec::new(),
        }
    }

    fn collect(&mut self) {
        for d in self.out.drain(..) {
            let (task, nodes) = d.placement();
            self.nodes_of.insert(task, nodes);
            let name = self.names.iter().find(|(_, &t)| t == task).map(|(n, _)| n.clone()).unwrap();
            self.started.push(name);
        }
    }

    fn step(&mut self, line: &str) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words[..] {
            [] => {}
            ["policy", name] => {
                self.policy.backfill = match name {
                    "fcfs" => Backfill::Fcfs,
                    "easy" => Backfill::Easy,
                    "firstfit" => Backfill::FirstFit,
                    _ => match name.strip_prefix("conservative:") {
                        Some(n) => Backfill::Conservative(n.parse().unwrap()),
                        None => panic!("policy {name}"),
                    },
                }
            }
            ["fill", "spread"] => self.fill = Fill::Spread,
            ["order", "deadline"] => self.policy.order = Order::Deadline(Deadline::DEFAULT),
            ["order", "submit"] => self.policy.order = Order::Submit,
            ["nodes", n, "cpus", c, ref rest @ ..] => {
                let (gpus, name) = match rest {
                    ["gpus", g] => (g.parse().unwrap(), "test"),
                    ["gpus", g, "type", t] => (g.parse().unwrap(), *t),
                    _ => (0, "test"),
                };
                let inv = typed_inventory(c.parse().unwrap(), gpus, name);
                let slots: u32 = c.parse().unwrap();
                let first = self.s.pool_node_count(0) as NodeKey;
                if first == 0 {
                    let policy = self.policy;
                    let ev = Event::PoolAdded { pool: 0, slots_per_node: slots, fill: self.fill, policy };
                    self.s.on_event(ev, &mut self.out);
                }
                for node in first..first + n.parse::<NodeKey>().unwrap() {
                    self.s.on_event(Event::idle_node(node, 0, inv.clone(), None), &mut self.out);
                }
            }
            ["at", t] => self.s.advance(t.parse::<Time>().unwrap() * 1000),
            ["weights", ref opts @ ..] => {
                let mut w = fair::Weights::none();
                w.age = kv(opts, "age").unwrap_or(0) as u32;
                w.fairshare = kv(opts, "fairshare").unwrap_or(0) as u32;
                w.job_size = kv(opts, "size").unwrap_or(0) as u32;
                w.max_age = kv(opts, "maxage").map_or(w.max_age, |s| s * 1000);
                w.decay_half_life = kv(opts, "halflife").map_or(w.decay_half_life, |s| s * 1000);
                w.gpu_billing = kv(opts, "gpu").map_or(1.0, |b| b as f64);
                let limits = self.s.fair.limits;
                self.s.set_fairness(w, limits);
            }
            ["limits", ref opts @ ..] => {
                let cap = |k: &str| kv(opts, k).map(|v| v as u32);
                let limits = fair::Limits {
                    per_user: fair::Caps { jobs: cap("user_jobs"), cpus: cap("user_cpus"), gpus: cap("user_gpus") },
                    per_account: fair::Caps {
                        jobs: cap("account_jobs"),
                        cpus: cap("account_cpus"),
                        gpus: cap("account_gpus"),
                    },
                };
                let w = self.s.fair.weights.clone();
                self.s.set_fairness(w, limits);
            }
            ["reprioritize"] => {
                let now = self.s.now;
                self.s.reprioritize(now);
                self.s.schedule(&mut self.out);
            }
            ["priority", name, p] => {
                let f = self.s.priority(self.names[name]).unwrap_or_else(|| panic!("{line}: {name} is not waiting"));
                assert_eq!(f.priority, p.parse::<i64>().unwrap(), "{line}: {f:?}");
            }
            ["held", name, reason] => {
                let got = self.s.held_by_limit(self.names[name]).map(|r| r.slurm());
                assert_eq!(got, (reason != "-").then_some(reason), "{line}");
            }
            ["queue", name, ref opts @ ..] => {
                let task = self.names.len() as TaskKey + 1;
                self.names.insert(name.to_string(), task);
                let gang = kv(opts, "gang").map(|g| g as u32);
                let (cpus, gpus) = (kv(opts, "cpus").unwrap_or(0) as u32, kv(opts, "gpus").unwrap_or(0) as u32);
                let gpu_type = opts.iter().find_map(|w| w.strip_prefix("type=")).map(str::to_owned);
                let need = (cpus > 0 || gpus > 0).then(|| Need { cpus, gpus, gpu_type, ..Need::default() });
                let slots = if need.is_some() { cpus.max(1) } else { 1 };
                let prio = kv(opts, "prio").unwrap_or(0) as i32;
                let owner = fair::Owner {
                    user: kv(opts, "user").unwrap_or(0) as u32,
                    account: kv(opts, "account").unwrap_or(0) as u32,
                };
                let job = fair::JobFacts { owner, eligible: self.s.now, nice: kv(opts, "nice").unwrap_or(0) as i32 };
                let ev = Event::TaskQueued {
                    task,
                    pool: 0,
                    order: QueueKey::new(prio, kv(opts, "job").unwrap_or(task), task),
                    slots,
                    need,
                    gang,
                    limit: kv(opts, "limit").map(|s| s * 1000),
                    job,
                };
                self.s.on_event(ev, &mut self.out);
            }
            ["end", name] => {
                let task = self.names[name];
                let nodes = self.nodes_of.remove(&task).unwrap_or_else(|| panic!("{name} is not running"));
                for node in nodes {
                    self.s.apply(Event::TaskReleased { task, node });
                }
                self.s.schedule(&mut self.out);
            }
            ["started", ref names @ ..] => {
                self.collect();
                let mut got = std::mem::take(&mut self.started);
                got.sort();
                let mut want: Vec<String> = names.iter().filter(|n| **n != "-").map(|n| n.to_string()).collect();
                want.sort();
                assert_eq!(got, want, "{line}");
            }
            ["planned", name, ref rest @ ..] => {
                self.collect();
                let planned = self.s.planned(self.names[name]);
                match rest {
                    ["-"] => assert_eq!(planned, None, "{line}"),
                    [t, ref on @ ..] => {
                        let p = planned.unwrap_or_else(|| panic!("{line}: no plan"));
                        assert_eq!(p.start, t.parse::<Time>().unwrap() * 1000, "{line}");
                        if let ["on", ref nodes @ ..] = on {
                            let mut got = p.nodes.clone();
                            got.sort();
                            let want: Vec<NodeKey> = nodes.iter().map(|k| k.parse().unwrap()).collect();
                            assert_eq!(got, want, "{line}");
                        }
                    }
                    _ => panic!("{line}"),
                }
            }
            _ => panic!("unknown step {line:?}"),
        }
    }

    fn run(text: &str) {
        let mut s = Script::new();
        for line in text.lines() {
            s.step(line.trim());
        }
        s.collect();
        assert!(s.started.is_empty(), "starts not checked at the end: {:?}", s.started);
    }
}

#[test]
fn what_ends_by_the_reservation_passes_it_and_what_outlasts_it_waits() {
    Script::run(
        "nodes 4 cpus 1
         at 0
         queue A gang=3 limit=100
         started A
         at 1
         queue B gang=4 limit=50
         started -
         planned B 100 on 0 1 2 3
         at 2
         queue C gang=1 limit=200
         queue D gang=1 limit=99
         queue E gang=1 limit=98
         started E
         planned B 100
         at 99
         end E
         started -
         at 100
         end A
         started B
         planned C 150
         at 150
         end B
         started C D",
    );
}

#[test]
fn fcfs_lets_nothing_pass_and_first_fit_lets_anything_pass() {
    Script::run(
        "policy fcfs
         nodes 4 cpus 1
         queue A gang=3 limit=100
         queue B gang=4 limit=50
         queue E gang=1 limit=10
         started A
         planned E -
         end A
         started B",
    );
    Script::run(
        "policy firstfit
         nodes 4 cpus 1
         queue A gang=3 limit=100
         queue B gang=4 limit=50
         queue C gang=1 limit=1000
         started A C
         planned B -",
    );
}

#[test]
fn what_outlasts_the_reservation_may_use_only_what_it_leaves() {
    // B needs 3 of the 4 nodes at 100: one node is spare then, so one long task may run now.
    Script::run(
        "nodes 4 cpus 1
         queue A gang=2 limit=100
         queue B gang=3 limit=50
         queue C gang=1 limit=1000
         queue D gang=1 limit=1000
         started A C
         planned B 100
         at 100
         end A
         started B",
    );
}

#[test]
fn gpu_requests_are_reserved_on_the_node_where_they_will_fit() {
    // A holds 3 GPUs of a node, B all 4 of the other. C (4 GPUs) is planned on A's node at 100:
    // the GPU left free there goes only to a task that gives it back by then; cores are spare.
    Script::run(
        "nodes 2 cpus 8 gpus 4
         queue A cpus=1 gpus=3 limit=100
         queue B cpus=1 gpus=4 limit=200
         started A B
         at 1
         queue C cpus=1 gpus=4 limit=50
         planned C 100
         queue D cpus=1 gpus=1 limit=1000
         queue E cpus=2 limit=1000
         started E
         queue F cpus=1 gpus=1 limit=90
         started F
         planned C 100
         at 91
         end F
         started -
         at 100
         end A
         started C
         at 200
         end B
         started D",
    );
}

#[test]
fn a_gang_is_reserved_on_nodes_free_now_and_nodes_freed_later() {
    // Two nodes are idle, A and B end at 100 and 300: the 3-node gang G is planned at 100 on
    // the two idle nodes and A's. The idle nodes take only what ends by then.
    Script::run(
        "nodes 4 cpus 2
         queue A gang=1 limit=100
         queue B gang=1 limit=300
         started A B
         queue G gang=3 limit=10
         planned G 100 on 0 2 3
         queue L gang=1 limit=101
         queue S gang=2 limit=100
         started S
         at 100
         end A
         end S
         started G
         at 110
         end G
         started L",
    );
}

#[test]
fn a_task_without_a_limit_gives_no_start_time_and_blocks_nothing() {
    // A's end is unknown: B gets no planned start, and with no reservation C may start.
    Script::run(
        "nodes 2 cpus 1
         queue A gang=1
         queue B gang=2 limit=10
         planned B -
         queue C gang=1 limit=5
         started A C",
    );
}

#[test]
fn a_stream_of_small_tasks_cannot_starve_a_whole_cluster_job() {
    // Four nodes of four cores kept busy by one-core tasks of up to 10 s, one a second, some
    // of them ending early; a 4-node job arrives and gets a start time that never recedes,
    // and starts by then.
    let mut s = Script::new();
    s.step("nodes 4 cpus 4");
    let mut running: Vec<(u64, String)> = Vec::new();
    let mut n = 0;
    let mut planned = None;
    for t in 0..200u64 {
        s.step(&format!("at {t}"));
        for (_, name) in running.iter().filter(|(end, _)| *end == t) {
            s.step(&format!("end {name}"));
        }
        running.retain(|(end, _)| *end != t);
        n += 1;
        s.step(&format!("queue s{n} cpus=1 limit=10"));
        if t == 5 {
            s.step("queue BIG gang=4 limit=50");
        }
        s.collect();
        for name in std::mem::take(&mut s.started) {
            if name == "BIG" {
                assert!(t <= planned.expect("BIG had a plan"), "BIG started at {t}, after its plan");
                return;
            }
            // Every third one ends early.
            let run = if name[1..].parse::<u64>().unwrap() % 3 == 0 { 4 } else { 10 };
            running.push((t + run, name));
        }
        if t >= 5 {
            let p = s.s.planned(s.names["BIG"]).expect("BIG always has a start time").start / 1000;
            assert!(planned.is_none_or(|q| p <= q), "BIG's start receded from {planned:?} to {p}");
            planned = Some(p);
        }
    }
    panic!("BIG never started; its plan said {planned:?}");
}

#[test]
fn conservative_backfilling_protects_every_reservation_easy_only_the_first() {
    // A holds 2 of 4 nodes until 100; B (3 nodes) is planned at 100, C (all 4) after B, at
    // 150. D (1 node until 200) fits in the node B leaves, so it does not delay B, but it
    // would delay C: EASY starts it, conservative does not.
    let script = |policy: &str, d_starts: &str| {
        format!(
            "policy {policy}
             nodes 4 cpus 1
             queue A gang=2 limit=100
             started A
             queue B gang=3 limit=50
             queue C gang=4 limit=50
             planned B 100
             queue D gang=1 limit=200
             started {d_starts}
             planned B 100"
        )
    };
    Script::run(&script("easy", "D"));
    Script::run(
        &(script("conservative:4", "-")
            + "
         planned C 150
         queue E gang=1 limit=40
         started E
         at 40
         end E
         at 100
         end A
         started B
         at 150
         end B
         started C
         at 200
         end C
         started D"),
    );
}

#[test]
fn conservative_reservations_follow_each_other_on_shared_resources() {
    // A holds the node's 4 GPUs until 100. B (3 GPUs) is planned at 100; C (2 GPUs) cannot
    // have them beside B's claim, so it is planned when B ends, at 150. What ends before a
    // reservation may still use its claims; cores nobody claims are free.
    Script::run(
        "policy conservative:4
         nodes 1 cpus 8 gpus 4
         queue A cpus=1 gpus=4 limit=100
         started A
         queue B cpus=1 gpus=3 limit=50
         queue C cpus=1 gpus=2 limit=50
         planned B 100
         planned C 150
         queue D cpus=1 gpus=1 limit=10
         started -
         queue E cpus=2 limit=1000
         started E
         at 100
         end A
         started B D
         planned C 150
         at 110
         end D
         at 150
         end B
         started C",
    );
}

mod promises {
    //! Property: under EASY and conservative backfilling, when every task ends by its time
    //! limit, the first waiting task starts no later than the first planned start it got as
    //! the first. (Conservative's later reservations are recomputed on every pass and may
    //! move, as another reservation takes other nodes: they are estimates.)
    use std::collections::{BTreeMap, BTreeSet};

    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone)]
    struct Job {
        submit: Time,
        cpus: u32,
        gpus: u32,
        gang: Option<u32>,
        limit: Time,
        run: Time,
    }

    fn jobs() -> impl Strategy<Value = Vec<Job>> {
        let job = (0..40u64, 0..4u32, 0..3u32, 0..4u32, 1..30u64, 0..100u32).prop_map(
            |(submit, cpus, gpus, gang, limit, frac)| Job {
                submit,
                cpus,
                gpus,
                gang: (gang > 1).then_some(gang),
                limit,
                run: (limit * u64::from(frac) / 100).max(1),
            },
        );
        prop::collection::vec(job, 1..40)
    }

    fn replay(jobs: &[Job], nodes: u32, backfill: Backfill) -> Result<(), TestCaseError> {
        let mut s = Scheduler::new();
        let mut out = Vec::new();
        let policy = Policy::classic(backfill);
        s.apply(Event::PoolAdded { pool: 0, slots_per_node: 4, fill: Fill::Pack, policy });
        let inv = inventory(4, 2);
        for node in 0..nodes {
            s.apply(Event::idle_node(node, 0, inv.clone(), None));
        }
        let mut order: Vec<usize> = (0..jobs.len()).collect();
        order.sort_by_key(|&i| jobs[i].submit);
        let mut next = 0;
        let mut running: BTreeSet<(Time, TaskKey, NodeKey)> = BTreeSet::new();
        let mut promised: BTreeMap<TaskKey, Time> = BTreeMap::new();
        // Waiting tasks by submission position.
        let mut waiting: BTreeMap<usize, TaskKey> = BTreeMap::new();
        loop {
            let now = match (running.first().map(|r| r.0), order.get(next).map(|&i| jobs[i].submit)) {
                (Some(a), Some(b)) => a.min(b),
                (Some(t), None) | (None, Some(t)) => t,
                (None, None) => break,
            };
            s.advance(now * 1000);
            while running.first().is_some_and(|r| r.0 == now) {
                let (_, task, node) = running.pop_first().unwrap();
                s.apply(Event::TaskReleased { task, node });
            }
            while let Some(&i) = order.get(next).filter(|&&i| jobs[i].submit == now) {
                let j = &jobs[i];
                let need = (j.cpus > 0 || j.gpus > 0).then(|| Need { cpus: j.cpus, gpus: j.gpus, ..Need::default() });
                let task = i as TaskKey;
                s.apply(Event::TaskQueued {
                    task,
                    pool: 0,
                    // In submission order: nothing that comes later goes ahead.
                    order: QueueKey::new(0, next as u64, 0),
                    slots: j.cpus.max(1),
                    need,
                    gang: j.gang.filter(|g| *g <= nodes),
                    limit: Some(j.limit * 1000),
                    job: Default::default(),
                });
                waiting.insert(next, task);
                next += 1;
            }
            s.schedule(&mut out);
            for d in out.drain(..) {
                let (task, nodes) = d.placement();
                waiting.retain(|_, t| *t != task);
                if let Some(p) = promised.get(&task) {
                    prop_assert!(now * 1000 <= *p, "task {task} started at {now} s, after its planned start {p} ms");
                }
                for node in nodes {
                    running.insert((now + jobs[task as usize].run, task, node));
                }
            }
            if let Some((_, &head)) = waiting.first_key_value() {
                if let (None, Some(p)) = (promised.get(&head), s.planned(head)) {
                    promised.insert(head, p.start);
                }
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
        #[test]
        fn a_planned_start_is_kept_when_tasks_end_by_their_limits(jobs in jobs(), nodes in 1..5u32) {
            replay(&jobs, nodes, Backfill::Easy)?;
            replay(&jobs, nodes, Backfill::Conservative(4))?;
        }
    }
}

#[test]
fn a_task_whose_search_gives_up_starts_where_its_reservation_says() {
    // 70 nodes with a T4 free each, then one A100 node: a search for an A100 gives up after
    // 64 nodes, but the task's reservation finds the A100 node free now, and it starts there.
    Script::run(
        "nodes 70 cpus 4 gpus 1 type t4
         nodes 1 cpus 4 gpus 1 type a100
         queue H cpus=1 gpus=1 type=a100 limit=100
         started H
         queue Y cpus=4 limit=1000
         started Y",
    );
}

#[test]
fn fair_share_puts_the_user_who_used_less_first_once_priorities_are_recalculated() {
    let run = |recalc: &str, first: &str| {
        Script::run(&format!(
            "weights fairshare=10000
             nodes 1 cpus 1
             at 0
             queue A user=1 limit=1000
             started A
             at 1
             queue B user=1 limit=1000
             queue C user=2 limit=1000
             at 100
             {recalc}
             end A
             started {first}"
        ))
    };
    // Until usage is recalculated both users have had nothing charged: submission order.
    run("", "B");
    // Alice used the node for 100 s; Bob's job passes hers.
    run("reprioritize", "C");
}

#[test]
fn the_multifactor_priority_is_the_weighted_sum_less_nice_and_tasks_of_one_job_keep_their_order() {
    Script::run(
        "weights age=1000 fairshare=10000 maxage=100
         nodes 1 cpus 1
         at 0
         queue A user=1 limit=1000
         started A
         queue B user=1 job=7 limit=10
         queue C user=1 job=7 limit=10
         queue D user=2 nice=6000 limit=10
         priority B 10000
         priority D 4000
         at 50
         reprioritize
         priority B 5500
         priority D 4500
         end A
         started B
         end B
         started C
         end C
         started D",
    );
}

#[test]
fn a_user_at_a_limit_waits_without_holding_up_others_or_getting_a_reservation() {
    Script::run(
        "limits user_jobs=1
         nodes 2 cpus 1
         queue A user=1 limit=100
         queue B user=1 limit=100
         queue C user=2 limit=100
         started A C
         held B QOSMaxJobsPerUserLimit
         held C -
         planned B -
         end A
         started B",
    );
    Script::run(
        "limits user_cpus=4
         nodes 1 cpus 8
         queue A user=1 cpus=3 limit=100
         queue B user=1 cpus=2 limit=100
         queue C user=2 cpus=2 limit=100
         queue D user=1 cpus=1 limit=100
         started A C D
         held B QOSMaxCpuPerUserLimit
         end D
         started -
         end A
         started B",
    );
    Script::run(
        "limits account_jobs=1 user_gpus=1
         nodes 2 cpus 4 gpus 2
         queue A user=1 account=1 cpus=1 limit=100
         queue B user=2 account=1 cpus=1 limit=100
         queue C user=3 account=2 cpus=1 gpus=2 limit=100
         queue D user=3 account=2 cpus=1 gpus=1 limit=100
         started A D
         held B QOSMaxJobsPerAccount
         held C QOSMaxGRESPerUser
         end A
         started B",
    );
}

#[test]
fn under_a_limit_the_first_task_that_may_start_gets_the_reservation() {
    // B is at its user's limit: the reservation goes to C, so D, which would outlast it on the
    // free node, waits, and E, which ends before it, passes.
    Script::run(
        "limits user_jobs=1
         nodes 3 cpus 1
         queue A user=1 gang=2 limit=100
         queue B user=1 gang=3 limit=100
         queue C user=2 gang=3 limit=100
         started A
         planned B -
         planned C 100
         queue D user=3 gang=1 limit=1000
         queue E user=3 gang=1 limit=50
         started E
         at 50
         end E
         started -
         at 100
         end A
         started B",
    );
}

#[test]
fn the_deadline_order_puts_short_narrow_jobs_first_but_never_past_its_bound() {
    // Deadlines: L at 16 × 1000 s, S at 2 + 16 × 10 s, U (no limit) at 400,000 s; W's task
    // order holds within its job though its second task is the shorter.
    Script::run(
        "order deadline
         nodes 1 cpus 1
         at 0
         queue A limit=100
         started A
         queue L limit=1000
         queue U
         at 2
         queue S limit=10
         queue W1 job=50 limit=1000
         queue W2 job=50 limit=1
         at 100
         end A
         started S
         end S
         started L
         end L
         started W1
         end W1
         started W2
         end W2
         started U",
    );
    // A job whose deadline is 400,000 s after it became eligible is passed by nothing that
    // became eligible later than that.
    Script::run(
        "order deadline
         nodes 1 cpus 1
         at 0
         queue A limit=500000
         started A
         queue L limit=100000
         at 390000
         queue S1 limit=10
         at 399990
         queue S2 limit=10
         at 399999
         end A
         started S1
         at 400000
         end S1
         started L
         end L
         started S2",
    );
    // Past 400,000 s a job goes above every multifactor priority (here a nice one, which any
    // later job would otherwise pass).
    Script::run(
        "order deadline
         nodes 1 cpus 1
         at 0
         queue A limit=500000
         started A
         queue N nice=100 limit=10
         at 399000
         queue B limit=10
         at 400000
         end A
         started N
         end N
         started B",
    );
}

/// Spent after `left` checks.
struct Checks(u32);

impl Budget for Checks {
    fn spent(&mut self) -> bool {
        self.0 = self.0.saturating_sub(1);
        self.0 == 0
    }
}

#[test]
fn a_pass_cut_short_by_its_budget_goes_on_where_it_left_off_next_time() {
    let mut s = Scheduler::new();
    let mut out = Vec::new();
    s.apply(Event::PoolAdded { pool: 0, slots_per_node: 1, fill: Fill::Pack, policy: Policy::default() });
    for node in 0..4 {
        s.apply(Event::idle_node(node, 0, inventory(1, 0), None));
    }
    for task in 1..=6 {
        let order = QueueKey::new(0, task, task);
        let job = fair::JobFacts::default();
        s.apply(Event::TaskQueued { task, pool: 0, order, slots: 1, need: None, gang: None, limit: None, job });
    }
    // Two decisions, then the budget is spent: the pass yields with work left.
    assert!(s.schedule_within(&mut out, &mut Checks(2)));
    assert_eq!(out.len(), 2);
    assert!(s.pass_due());
    // Even a budget spent at once makes one decision.
    assert!(s.schedule_within(&mut out, &mut Checks(1)));
    assert_eq!(out.len(), 3);
    // The rest: the fourth node, and nothing more fits.
    assert!(!s.schedule_within(&mut out, &mut Unbounded));
    let started: Vec<TaskKey> = out.drain(..).map(|d| d.placement().0).collect();
    assert_eq!(started, [1, 2, 3, 4]);
    assert!(!s.pass_due());
}
