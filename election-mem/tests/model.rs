//! Model-based property test (proptest-state-machine): a reference model of one election's
//! queue and of who runs says who must lead; the simulation (`election_mem::sim`) applies the
//! same operations; after every step the two must agree, and the simulation's own invariants
//! (S1-S5, L3) must hold. A failure shrinks to a minimal sequence of operations.
//!
//! Checked after every step, once the system has settled:
//! - L2: the queue is the model's queue (succession in queue order; a place changes only when
//!   its candidate leaves);
//! - S3/L1: exactly the model's head leads (or nobody, with an empty queue);
//! - L3: when the leader resigns or leaves, only it and its direct successor change state;
//! - L4: a candidate whose session expired (and that was not stopped) is back, at the tail;
//! - S5: a candidate that stopped, left, was dropped or crashed has no entry (the model drops
//!   it), and one whose create reply was lost holds exactly one.
//!
//! `PROPTEST_CASES` sets the number of sequences (default 512).
#![cfg(feature = "sim")]

use std::time::Duration;

use election_core::{ElectionState, Event};
use election_mem::sim::{Op, Sim, SimSetup, WorkKind};
use proptest::prelude::*;
use proptest_state_machine::{prop_state_machine, ReferenceStateMachine, StateMachineTest};

/// One step, with candidates named by their index among the running ones (in join order) and
/// clients by their index among the live ones.
#[derive(Clone, Debug)]
enum Step {
    Join(WorkKind),
    JoinLostReply,
    Resign(usize),
    Leave(usize),
    Stop(usize),
    Drop(usize),
    Crash(usize),
    Expire(usize),
    /// Expired behind a member cut off from the service's leader (stale reads meanwhile).
    ExpireIsolated(usize),
    ForceExpire(usize),
    DeleteEntry(usize),
    /// A contender of another implementation joins (Curator latch, Curator lock, kazoo,
    /// unknown; by index): while one is there, none of ours leads.
    ContenderJoins(u8),
    /// A contender of another implementation leaves (by index among them).
    ContenderLeaves(usize),
}

#[derive(Clone, Debug, Default)]
struct Model {
    /// Candidate ids in queue order.
    queue: Vec<String>,
    /// Running candidates, in join order.
    running: Vec<String>,
    /// One client per candidate, in join order, with whether it crashed.
    clients: Vec<(String, bool)>,
    joined: usize,
    /// Contenders of other implementations on the path.
    foreign: usize,
}

impl Model {
    fn live_clients(&self) -> Vec<String> {
        self.clients
            .iter()
            .filter(|(_, crashed)| !crashed)
            .map(|(id, _)| id.clone())
            .collect()
    }

    fn move_to_tail(&mut self, id: &str) {
        if let Some(i) = self.queue.iter().position(|q| q == id) {
            let id = self.queue.remove(i);
            self.queue.push(id);
        }
    }

    fn remove(&mut self, id: &str) {
        self.queue.retain(|q| q != id);
        self.running.retain(|q| q != id);
    }
}

struct ElectionModel;

const MAX: usize = 10;

impl ReferenceStateMachine for ElectionModel {
    type State = Model;
    type Transition = Step;

    fn init_state() -> BoxedStrategy<Model> {
        Just(Model::default()).boxed()
    }

    fn transitions(state: &Model) -> BoxedStrategy<Step> {
        let work = prop_oneof![
            Just(WorkKind::None),
            Just(WorkKind::Quick),
            Just(WorkKind::Slow),
            Just(WorkKind::Stubborn)
        ];
        let (n, c, q) = (
            state.running.len(),
            state.live_clients().len(),
            state.queue.len(),
        );
        // Only steps valid now, so that few are rejected (preconditions still guard shrinking).
        let mut options: Vec<(u32, BoxedStrategy<Step>)> = Vec::new();
        if state.joined < MAX {
            options.push((3, work.prop_map(Step::Join).boxed()));
            options.push((1, Just(Step::JoinLostReply).boxed()));
        }
        if n > 0 {
            options.push((3, (0..n).prop_map(Step::Resign).boxed()));
            options.push((1, (0..n).prop_map(Step::Leave).boxed()));
            options.push((1, (0..n).prop_map(Step::Stop).boxed()));
            options.push((1, (0..n).prop_map(Step::Drop).boxed()));
        }
        if c > 0 {
            options.push((1, (0..c).prop_map(Step::Crash).boxed()));
            options.push((1, (0..c).prop_map(Step::Expire).boxed()));
            options.push((1, (0..c).prop_map(Step::ExpireIsolated).boxed()));
            options.push((1, (0..c).prop_map(Step::ForceExpire).boxed()));
        }
        if q > 0 {
            options.push((1, (0..q).prop_map(Step::DeleteEntry).boxed()));
        }
        // A stock contender that joins while one of ours leads leads beside it (it does not
        // see our entries): the model lets contenders join only while none of ours leads.
        if q == 0 || state.foreign > 0 {
            options.push((1, (0u8..4).prop_map(Step::ContenderJoins).boxed()));
        }
        if state.foreign > 0 {
            let f = state.foreign;
            options.push((1, (0..f).prop_map(Step::ContenderLeaves).boxed()));
        }
        if options.is_empty() {
            // Everyone has joined and gone: time passing is all that is left.
            return Just(Step::Resign(usize::MAX)).boxed();
        }
        proptest::strategy::Union::new_weighted(options).boxed()
    }

    fn preconditions(state: &Model, step: &Step) -> bool {
        match step {
            Step::Join(_) | Step::JoinLostReply => state.joined < MAX,
            Step::Resign(usize::MAX) => true,
            Step::Resign(i) | Step::Leave(i) | Step::Stop(i) | Step::Drop(i) => {
                *i < state.running.len()
            }
            Step::Crash(i) | Step::Expire(i) | Step::ExpireIsolated(i) | Step::ForceExpire(i) => {
                *i < state.live_clients().len()
            }
            Step::DeleteEntry(i) => *i < state.queue.len(),
            Step::ContenderJoins(_) => state.queue.is_empty() || state.foreign > 0,
            Step::ContenderLeaves(i) => *i < state.foreign,
        }
    }

    fn apply(mut state: Model, step: &Step) -> Model {
        match step {
            Step::Join(_) | Step::JoinLostReply => {
                let id = format!("c{}", state.joined);
                state.joined += 1;
                state.queue.push(id.clone());
                state.running.push(id.clone());
                state.clients.push((id, false));
            }
            Step::Resign(usize::MAX) => {}
            Step::Resign(i) => {
                let id = state.running[*i].clone();
                state.move_to_tail(&id);
            }
            Step::Leave(i) | Step::Stop(i) | Step::Drop(i) => {
                let id = state.running[*i].clone();
                state.remove(&id);
            }
            Step::Crash(i) => {
                let id = state.live_clients()[*i].clone();
                state.remove(&id);
                for c in &mut state.clients {
                    if c.0 == id {
                        c.1 = true;
                    }
                }
            }
            Step::Expire(i) | Step::ExpireIsolated(i) | Step::ForceExpire(i) => {
                let id = state.live_clients()[*i].clone();
                if state.running.contains(&id) {
                    state.move_to_tail(&id);
                }
            }
            Step::DeleteEntry(i) => {
                let id = state.queue[*i].clone();
                state.move_to_tail(&id);
            }
            Step::ContenderJoins(_) => state.foreign += 1,
            Step::ContenderLeaves(_) => state.foreign -= 1,
        }
        state
    }
}

struct System {
    rt: tokio::runtime::Runtime,
    sim: Option<Sim>,
    /// The model before the step being applied.
    before: Model,
}

impl Drop for System {
    fn drop(&mut self) {
        // The simulation's sessions and tasks need the runtime to go away.
        let _guard = self.rt.enter();
        self.sim.take();
    }
}

const TIMEOUT_MS: u16 = 1000;

fn settle() -> Op {
    // Past a crashed session's timeout, a stubborn leader's grace and a few round trips.
    Op::Advance { ms: 3 * TIMEOUT_MS }
}

fn transitions_per_candidate(sim: &mut Sim) -> std::collections::BTreeMap<String, usize> {
    let mut out = std::collections::BTreeMap::new();
    for (id, e) in sim.recorder().events() {
        if let Event::Transition(_) = e {
            *out.entry(id).or_insert(0) += 1;
        }
    }
    out
}

impl StateMachineTest for ElectionModel {
    type SystemUnderTest = System;
    type Reference = ElectionModel;

    fn init_test(_: &Model) -> System {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        let sim = rt.block_on(Sim::new(SimSetup {
            session_timeout_ms: TIMEOUT_MS,
            paths: 1,
            max_candidates: 50,
            seed: 7,
        }));
        System {
            rt,
            sim: Some(sim),
            before: Model::default(),
        }
    }

    fn apply(mut sut: System, after: &Model, step: Step) -> System {
        let model = sut.before.clone();
        let sim = sut.sim.as_mut().unwrap();
        // While a contender of another implementation is there, none of ours leads.
        let leader_before = model.queue.first().cloned().filter(|_| model.foreign == 0);
        let successor = model.queue.get(1).cloned();
        let before = transitions_per_candidate(sim);
        sut.rt.block_on(async {
            let outcome = match &step {
                Step::Join(work) => {
                    sim.join_alone(0, *work).await;
                    Ok(())
                }
                Step::JoinLostReply => {
                    sim.apply(Op::LoseCreateReply).await.ok();
                    sim.join_alone(0, WorkKind::Quick).await;
                    Ok(())
                }
                Step::Resign(usize::MAX) => Ok(()),
                Step::Resign(i) => sim.apply(Op::Resign { who: *i as u8 }).await,
                Step::Leave(i) => sim.apply(Op::Leave { who: *i as u8 }).await,
                Step::Stop(i) => sim.apply(Op::Stop { who: *i as u8 }).await,
                Step::Drop(i) => sim.apply(Op::Drop { who: *i as u8 }).await,
                Step::Crash(i) => sim.apply(Op::Crash { client: *i as u8 }).await,
                Step::Expire(i) => sim.apply(Op::Expire { client: *i as u8 }).await,
                Step::ExpireIsolated(i) => {
                    sim.apply(Op::ExpireBehindIsolatedMember { client: *i as u8 })
                        .await
                }
                Step::ForceExpire(i) => sim.apply(Op::ForceExpire { client: *i as u8 }).await,
                Step::DeleteEntry(i) => {
                    sim.apply(Op::DeleteEntry {
                        path: 0,
                        index: *i as u8,
                    })
                    .await
                }
                Step::ContenderJoins(kind) => {
                    sim.apply(Op::Contender {
                        path: 0,
                        kind: *kind,
                    })
                    .await
                }
                Step::ContenderLeaves(i) => {
                    sim.apply(Op::ContenderLeaves {
                        path: 0,
                        index: *i as u8,
                    })
                    .await
                }
            };
            let outcome = outcome.and(sim.apply(settle()).await);
            if let Err(v) = outcome {
                panic!("{v}\n--- trace ---\n{}", sim.trace());
            }
        });
        let queue = sim.queue(0);
        assert_eq!(
            queue,
            after.queue,
            "L2/S5/L4: queue after {step:?}\n--- trace ---\n{}",
            sim.trace()
        );
        let leaders = sim.leaders(0);
        let expected: Vec<String> = after
            .queue
            .first()
            .cloned()
            .filter(|_| after.foreign == 0)
            .into_iter()
            .collect();
        assert_eq!(
            leaders,
            expected,
            "S3/L1: leader after {step:?}\n--- trace ---\n{}",
            sim.trace()
        );
        // L3: a hand-over by the leader wakes only its successor.
        if let (Step::Resign(i) | Step::Leave(i), Some(leader)) = (&step, &leader_before) {
            if model.running.get(*i) == Some(leader) {
                let now = transitions_per_candidate(sim);
                for (id, n) in &now {
                    let woke = *n > before.get(id).copied().unwrap_or(0);
                    let allowed =
                        Some(id) == leader_before.as_ref() || Some(id) == successor.as_ref();
                    assert!(
                        !woke || allowed,
                        "L3: {id} woke when {leader} handed over to {successor:?}\n--- trace ---\n{}",
                        sim.trace()
                    );
                }
            }
        }
        // L4: an expired candidate that runs says it rejoined.
        if let Step::Expire(i) | Step::ExpireIsolated(i) | Step::ForceExpire(i) = &step {
            let id = &model.live_clients()[*i];
            if after.running.contains(id) {
                let state = sim.state_of(id);
                assert!(
                    !matches!(state, Some(ElectionState::Stopped(_)) | None),
                    "L4: {id} did not rejoin: {state:?}"
                );
            }
        }
        sut.before = after.clone();
        sut
    }

    fn teardown(mut sut: System) {
        let sim = sut.sim.take().unwrap();
        let report = sut.rt.block_on(sim.finish());
        report.check();
    }
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512)
}

prop_state_machine! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        max_shrink_iters: 2048,
        .. ProptestConfig::default()
    })]

    #[test]
    fn the_election_follows_its_model(sequential 1..30 => ElectionModel);
}

#[test]
fn settle_covers_a_crash() {
    // A crashed leader's session expires after the timeout: one settle must cover it.
    if let Op::Advance { ms } = settle() {
        assert!(
            Duration::from_millis(u64::from(ms)) > Duration::from_millis(2 * u64::from(TIMEOUT_MS))
        );
    }
}
