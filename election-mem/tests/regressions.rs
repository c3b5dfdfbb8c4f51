//! Named regressions: each test stages a failure that an upstream leader-election library
//! shipped (the contract names them), on the in-memory service in virtual time, and shows that
//! we survive it. Each runs as a fixed simulation schedule, so every invariant of
//! `election_mem::sim` is checked too (S1-S5, L1, L3), and adds the assertion particular to it.

use std::time::Duration;

use election_core::{Candidate, Client, ElectionState, Reason};
use election_mem::sim::{run_schedule, Op, Schedule, Sim, SimSetup, WorkKind};
use election_mem::MemCluster;

const T: u16 = 2000;

fn setup() -> SimSetup {
    SimSetup {
        session_timeout_ms: T,
        paths: 1,
        max_candidates: 50,
        seed: 11,
    }
}

/// Runs `ops` after `n` candidates joined on clients of their own (work: quick), then checks
/// everything; returns the trace.
fn staged(n: usize, work: WorkKind, ops: &[Op]) -> String {
    let mut all: Vec<Op> = (0..n)
        .map(|i| Op::Join {
            client: i as u8,
            path: 0,
            work,
        })
        .collect();
    all.push(Op::Advance { ms: 50 });
    all.extend_from_slice(ops);
    let report = run_schedule(&Schedule {
        setup: setup(),
        ops: all,
    });
    report.check();
    report.trace
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

/// CURATOR-3: a create whose reply is lost (ConnectionLoss after the server applied it) left an
/// orphan entry that led for ever. Protected create: we look the entry up by its marker and
/// adopt it; nothing is left behind (S5), and the candidate leads with it.
#[test]
fn curator_3_lost_create_reply_leaves_no_orphan() {
    let trace = staged(
        0,
        WorkKind::None,
        &[
            Op::LoseCreateReply,
            Op::Join {
                client: 0,
                path: 0,
                work: WorkKind::Quick,
            },
            Op::Advance { ms: 500 },
            Op::Stop { who: 0 },
            Op::Advance { ms: 100 },
        ],
    );
    assert!(trace.contains("c0: joining -> leader"), "{trace}");
}

/// CURATOR-18: the connection is lost around a create, and the candidate is closed before it
/// found out: the entry stayed. We finish the lookup before withdrawing.
#[test]
fn curator_18_stop_right_after_a_lost_create_reply() {
    staged(
        1,
        WorkKind::Quick,
        &[
            Op::LoseCreateReply,
            Op::Join {
                client: 9,
                path: 0,
                work: WorkKind::None,
            },
            Op::Stop { who: 1 },
            Op::Advance { ms: 500 },
        ],
    );
}

/// CURATOR-54 (and k8s#23731): leader work went on after the leader lost its session. Work is
/// cancelled when the term ends, awaited (bounded by the grace) before the entry is given up,
/// and never overlaps its successor's (S4).
#[test]
fn curator_54_leader_work_ends_before_the_successor_starts() {
    for work in [WorkKind::Quick, WorkKind::Slow, WorkKind::Stubborn] {
        staged(
            3,
            work,
            &[
                Op::Expire { client: 0 },
                Op::Advance { ms: 200 },
                Op::Resign { who: 1 },
                Op::Advance { ms: 2000 },
            ],
        );
    }
}

/// CURATOR-171: the leader's entry deleted by someone else: the leader did not notice. We step
/// down, report it, and rejoin at the tail.
#[test]
fn curator_171_entry_deleted_by_someone_else() {
    let trace = staged(
        3,
        WorkKind::Quick,
        &[
            Op::DeleteEntry { path: 0, index: 0 },
            Op::Advance { ms: 200 },
        ],
    );
    assert!(
        trace.contains("c0: leader[3] -> joining (EntryDeleted)"),
        "{trace}"
    );
    assert!(
        trace.contains("c1: follower#1(leader c0) -> leader"),
        "{trace}"
    );
}

/// CURATOR-444/460 (and zookeeper-client reporting `Expired` only at ~1.75 x the timeout): a
/// leader cut off must step down within its budget of its last contact, before the service can
/// expire it, not when its client library says so.
#[test]
fn curator_444_460_cut_leader_steps_down_before_expiry() {
    let trace = staged(
        2,
        WorkKind::Slow,
        &[
            Op::Cut { client: 0 },
            Op::Advance { ms: 3 * T },
            Op::Heal { client: 0 },
            Op::Advance { ms: 500 },
        ],
    );
    assert!(
        trace.contains("c0: leader[3]? -> suspended (StepDownDeadline)"),
        "{trace}"
    );
}

/// CURATOR-498: after a reconnect, a latch deleted an entry that was not its own (and a second
/// leader appeared). We only ever delete entries with our own marker prefix and session, and a
/// second candidate on the same session and path keeps its entry.
#[test]
fn curator_498_never_deletes_an_entry_that_is_not_its_own() {
    let trace = staged(
        0,
        WorkKind::None,
        &[
            Op::Join {
                client: 0,
                path: 0,
                work: WorkKind::Quick,
            },
            Op::LoseCreateReply,
            Op::Join {
                client: 0,
                path: 0,
                work: WorkKind::Quick,
            },
            Op::Advance { ms: 300 },
            Op::Cut { client: 0 },
            Op::Advance { ms: 100 },
            Op::Heal { client: 0 },
            Op::Advance { ms: 300 },
            Op::Resign { who: 0 },
            Op::Advance { ms: 300 },
        ],
    );
    assert!(!trace.contains("EntryDeleted"), "{trace}");
}

/// CURATOR-620/652/653: across a reconnect within the session, the candidate keeps its place and
/// verifies it before claiming; a follower that was next in line does not claim while cut off.
#[test]
fn curator_620_652_653_reconnect_keeps_the_place_and_reverifies() {
    let trace = staged(
        3,
        WorkKind::Quick,
        &[
            Op::Cut { client: 1 },
            Op::Advance { ms: 800 },
            Op::Leave { who: 0 },
            Op::Advance { ms: 300 },
            Op::Heal { client: 1 },
            Op::Advance { ms: 300 },
        ],
    );
    assert!(trace.contains("c1: suspended -> leader"), "{trace}");
}

/// CURATOR-696: an entry of an expired session was taken for the candidate's own. After an
/// expiry, only an entry of the new session counts (S3): never a leader without its entry.
#[test]
fn curator_696_no_claim_on_an_entry_of_an_expired_session() {
    staged(
        2,
        WorkKind::Quick,
        &[
            Op::LoseCreateReply,
            Op::ForceExpire { client: 0 },
            Op::Advance { ms: 300 },
            Op::ForceExpire { client: 1 },
            Op::Advance { ms: 300 },
        ],
    );
}

/// CURATOR-724 (and client-go#879): after its session expired, the candidate did not rejoin.
/// We rejoin with a new session, at the tail, and say so (L4).
#[test]
fn curator_724_expired_candidate_rejoins_at_the_tail() {
    let trace = staged(
        3,
        WorkKind::Quick,
        &[Op::Expire { client: 1 }, Op::Advance { ms: 300 }],
    );
    assert!(
        trace.contains("c1: suspended -> joining (Rejoining)"),
        "{trace}"
    );
    assert!(trace.contains("c1: joining -> follower#2"), "{trace}");
}

/// kazoo 9b0a793 (and zookeeper-async): the predecessor vanished between the listing and the
/// watch, and the candidate waited for ever on a watch that could never fire. We re-list.
#[test]
fn kazoo_9b0a793_predecessor_gone_between_list_and_watch() {
    // With 10 ms per request, c2's create lands at 10 ms and its listing at 20 ms; c1 leaves at
    // 25 ms, before c2's watch (30 ms) is set.
    let trace = staged(
        2,
        WorkKind::None,
        &[
            Op::Latency { ms: 10 },
            Op::Join {
                client: 9,
                path: 0,
                work: WorkKind::None,
            },
            Op::Advance { ms: 24 },
            Op::Leave { who: 1 },
            Op::Advance { ms: 200 },
            Op::Leave { who: 0 },
            Op::Advance { ms: 200 },
        ],
    );
    assert!(
        trace.contains("c2: follower#1(leader c0) -> leader"),
        "{trace}"
    );
}

/// etcd#19597, "phantom leader": Campaign returned success with no key behind it. A candidate
/// whose session was expired never stays or becomes leader without its entry (S3 after every
/// op), and the next one leads.
#[test]
fn etcd_19597_no_phantom_leader_after_expiry() {
    let trace = staged(
        2,
        WorkKind::Quick,
        &[Op::ForceExpire { client: 0 }, Op::Advance { ms: 300 }],
    );
    assert!(
        trace.contains("c1: follower#1(leader c0) -> leader"),
        "{trace}"
    );
}

/// zookeeper-async's LeaderLatch stayed leader after its session expired (split brain). A leader
/// cut off until the service expires it is out of the Leader state before its successor leads,
/// and rejoins as a follower when it heals.
#[test]
fn zookeeper_async_latch_split_brain_after_expiry() {
    let trace = staged(
        2,
        WorkKind::Stubborn,
        &[
            Op::Cut { client: 0 },
            Op::Advance { ms: 2 * T },
            Op::Heal { client: 0 },
            Op::Advance { ms: 300 },
        ],
    );
    assert!(
        trace.contains("c0: suspended -> joining (Rejoining)"),
        "{trace}"
    );
}

/// L1/L3 (and a mutant that survived): when the leader leaves, its successor leads on the
/// notification and a read of its own entry, with no listing: two round trips (the leaver's
/// delete, the successor's read), whatever the queue length.
#[test]
fn the_successor_claims_on_the_notification_without_listing() {
    rt().block_on(async {
        let cluster = MemCluster::new();
        let mut cs = Vec::new();
        for i in 0..4 {
            cs.push(
                Candidate::builder("/reg/fast-claim", format!("c{i}"))
                    .session_timeout(Duration::from_secs(2))
                    .join(cluster.backend())
                    .await
                    .unwrap(),
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::timeout(Duration::from_secs(1), cs[0].wait_for_leadership())
            .await
            .unwrap_or_else(|e| Err(e.into()))
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        cluster.set_latency(Duration::from_millis(10));
        // The successor's events of the hand-over only (the first call hands over all since
        // its start).
        let mut events = cs[1].events();
        while events.try_recv().is_ok() {}
        let lists = cluster.stats().lists;
        let left = tokio::time::Instant::now();
        cs[0].leave().await.unwrap();
        tokio::time::timeout(Duration::from_secs(1), cs[1].wait_for_leadership())
            .await
            .unwrap_or_else(|e| Err(e.into()))
            .unwrap();
        assert_eq!(cluster.stats().lists, lists, "the successor listed again");
        // The leaver's delete, then the successor's read of its own entry: two calls of 10 ms,
        // no listing (the read rules out its entry having gone in the same transaction).
        assert!(
            left.elapsed() <= Duration::from_millis(20),
            "{:?}",
            left.elapsed()
        );
        while let Ok(e) = events.try_recv() {
            if let election_core::Event::Transition(t) = e {
                assert_eq!(t.reason, Reason::Claimed);
            }
        }
    });
}

/// A mutant that survived: a stopped candidate frees its id on its client, so the same id can
/// join again on the same client.
#[test]
fn a_stopped_candidate_frees_its_id_on_the_client() {
    rt().block_on(async {
        let cluster = MemCluster::new();
        let client = Client::connect(cluster.backend(), Duration::from_secs(2))
            .await
            .unwrap();
        for _ in 0..2 {
            let c = client
                .join(Candidate::builder("/reg/same-id", "again").build().unwrap())
                .await
                .expect("the id is free again");
            tokio::time::timeout(Duration::from_secs(1), c.wait_for_leadership())
                .await
                .unwrap_or_else(|e| Err(e.into()))
                .unwrap();
            c.stop().await;
            assert!(matches!(c.current(), ElectionState::Stopped(_)));
        }
    });
}

/// The simulation can also be driven op by op, with the queue inspected between ops.
#[test]
fn a_simulation_step_by_step() {
    rt().block_on(async {
        let mut sim = Sim::new(setup()).await;
        let a = sim.join_alone(0, WorkKind::Quick).await;
        let b = sim.join_alone(0, WorkKind::Quick).await;
        sim.apply(Op::Advance { ms: 100 }).await.unwrap();
        assert_eq!(sim.queue(0), [a.clone(), b.clone()]);
        sim.apply(Op::Resign { who: 0 }).await.unwrap();
        sim.apply(Op::Advance { ms: 100 }).await.unwrap();
        assert_eq!(sim.queue(0), [b.clone(), a]);
        assert_eq!(sim.leaders(0), [b]);
        sim.finish().await.check();
    });
}

/// Mutants that survived: transitions say why. A follower moves up with `PredecessorLeft`, comes
/// back from a cut with `ContactRestored`.
#[test]
fn transitions_say_why() {
    let trace = staged(
        3,
        WorkKind::None,
        &[
            Op::Leave { who: 1 },
            Op::Advance { ms: 100 },
            Op::Cut { client: 2 },
            Op::Advance { ms: 1000 },
            Op::Heal { client: 2 },
            Op::Advance { ms: 100 },
        ],
    );
    assert!(
        trace.contains("c2: follower#2(leader c0) -> follower#1(leader c0) (PredecessorLeft)"),
        "{trace}"
    );
    assert!(
        trace.contains("c2: follower#1(leader c0) -> suspended (ContactLost)"),
        "{trace}"
    );
    assert!(
        trace.contains("c2: suspended -> follower#1(leader c0) (ContactRestored)"),
        "{trace}"
    );
}

/// Mutants that survived: foreign nodes in the election path are reported once (not on every
/// listing), and never counted.
#[test]
fn foreign_nodes_are_reported_once() {
    rt().block_on(async {
        let cluster = MemCluster::new();
        cluster.create_foreign("/reg/foreign", "lock");
        let a = Candidate::builder("/reg/foreign", "a")
            .session_timeout(Duration::from_secs(2))
            .join(cluster.backend())
            .await
            .unwrap();
        let mut events = a.events();
        tokio::time::timeout(Duration::from_secs(1), a.wait_for_leadership())
            .await
            .unwrap_or_else(|e| Err(e.into()))
            .unwrap();
        for _ in 0..3 {
            a.resign().await.unwrap();
            tokio::time::timeout(Duration::from_secs(1), a.wait_for_leadership())
                .await
                .unwrap_or_else(|e| Err(e.into()))
                .unwrap();
        }
        let mut notices = 0;
        while let Ok(e) = events.try_recv() {
            if let election_core::Event::Notice {
                notice: election_core::Notice::ForeignEntries(names),
                ..
            } = e
            {
                assert_eq!(names, ["lock"]);
                notices += 1;
            }
        }
        assert_eq!(
            notices, 1,
            "one notice for one foreign node, over four listings or more"
        );
        a.stop().await;
    });
}

/// A backend whose first session expires right after a candidate has read its state: at the
/// second subscription to the session's state (where `join` used to subscribe again for the
/// driver), or else at the first create. Models an `Expired` published between `join` reading
/// the state and the driver starting to watch it (a race on a multi-threaded runtime).
mod expiry_during_join {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use async_trait::async_trait;
    use election_core::{
        BackendError, BackendSession, CoordinationBackend, ElectionPath, EntryInfo, Listing,
        Marker, SessionId, SessionState, Watch,
    };
    use election_mem::MemCluster;
    use tokio::sync::watch;

    pub struct Backend {
        pub cluster: MemCluster,
        pub fired: Arc<AtomicBool>,
    }

    struct Session {
        inner: Arc<dyn BackendSession>,
        cluster: MemCluster,
        fired: Arc<AtomicBool>,
        subscriptions: AtomicUsize,
    }

    impl Session {
        fn expire_once(&self) {
            if !self.fired.swap(true, Ordering::SeqCst) {
                self.cluster.expire_session(self.inner.id());
            }
        }
    }

    #[async_trait]
    impl CoordinationBackend for Backend {
        async fn open_session(
            &self,
            timeout: Duration,
        ) -> Result<Arc<dyn BackendSession>, BackendError> {
            let inner = self.cluster.backend().open_session(timeout).await?;
            Ok(Arc::new(Session {
                inner,
                cluster: self.cluster.clone(),
                fired: self.fired.clone(),
                subscriptions: AtomicUsize::new(0),
            }))
        }
    }

    #[async_trait]
    impl BackendSession for Session {
        fn id(&self) -> SessionId {
            self.inner.id()
        }
        fn timeout(&self) -> Duration {
            self.inner.timeout()
        }
        fn state(&self) -> watch::Receiver<SessionState> {
            if self.subscriptions.fetch_add(1, Ordering::SeqCst) == 1 {
                self.expire_once();
            }
            self.inner.state()
        }
        async fn create(
            &self,
            dir: &ElectionPath,
            marker: &Marker,
            data: &[u8],
        ) -> Result<EntryInfo, BackendError> {
            self.expire_once();
            self.inner.create(dir, marker, data).await
        }
        async fn list(&self, dir: &ElectionPath) -> Result<Listing, BackendError> {
            self.inner.list(dir).await
        }
        async fn list_and_watch(
            &self,
            dir: &ElectionPath,
        ) -> Result<(Listing, election_core::Notification), BackendError> {
            self.inner.list_and_watch(dir).await
        }
        async fn watch_gone(&self, dir: &ElectionPath, name: &str) -> Result<Watch, BackendError> {
            self.inner.watch_gone(dir, name).await
        }
        async fn read(
            &self,
            dir: &ElectionPath,
            name: &str,
        ) -> Result<Option<EntryInfo>, BackendError> {
            self.inner.read(dir, name).await
        }
        async fn delete(&self, dir: &ElectionPath, name: &str) -> Result<(), BackendError> {
            self.inner.delete(dir, name).await
        }
        async fn close(&self) {
            self.inner.close().await
        }
    }
}

/// Issue 17, point 9: `join` read the session's state, then the driver subscribed again and
/// marked it seen; an `Expired` published in between was lost, and the candidate retried
/// "session gone" in Joining for ever without asking for a new session. Now the driver keeps
/// the receiver `join` read from: the expiry is seen, and the candidate rejoins on a new
/// session and leads.
#[tokio::test(start_paused = true)]
async fn an_expiry_right_after_join_read_the_state_is_not_lost() {
    let cluster = MemCluster::new();
    let fired = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let backend: std::sync::Arc<dyn election_core::CoordinationBackend> =
        std::sync::Arc::new(expiry_during_join::Backend {
            cluster: cluster.clone(),
            fired: fired.clone(),
        });
    let t = Duration::from_secs(3);
    let a = Candidate::builder("/join/race", "a")
        .session_timeout(t)
        .join(backend)
        .await
        .unwrap();
    let led = tokio::time::timeout(t * 3, a.wait_for_leadership())
        .await
        .unwrap_or_else(|e| Err(e.into()));
    assert!(fired.load(std::sync::atomic::Ordering::SeqCst));
    assert!(led.is_ok(), "never led: {:?}", *a.state().borrow());
    a.stop().await;
}

/// Issue 8: a candidate whose leader work fails at once on every term, at the head of the
/// queue, does not starve the others: it resigns each time (after a back-off that grows), the
/// next candidate leads and keeps leading, and the failing one waits behind it. L1 is checked by
/// the run's liveness check (among the candidates whose work does not fail), S1/S4 over the
/// whole history; a busy loop would stall virtual time and be reported as a livelock.
#[test]
fn work_failing_at_once_does_not_starve_the_others() {
    rt().block_on(async {
        let mut sim = Sim::new(setup()).await;
        let a = sim.join_alone(0, WorkKind::FailsAtOnce).await;
        sim.apply(Op::Advance { ms: 3 * T }).await.unwrap();
        let b = sim.join_alone(0, WorkKind::Quick).await;
        let c = sim.join_alone(0, WorkKind::Quick).await;
        sim.apply(Op::Advance { ms: 2 * T }).await.unwrap();
        assert_eq!(sim.leaders(0), std::slice::from_ref(&b));
        assert_eq!(sim.queue(0), [b.clone(), c.clone(), a.clone()]);
        sim.apply(Op::Resign { who: 1 }).await.unwrap();
        sim.apply(Op::Advance { ms: T }).await.unwrap();
        assert_eq!(sim.leaders(0), [c]);
        let report = sim.finish().await;
        report.check();
        assert!(
            report.trace.contains("WorkFailed(\"fails at once\")"),
            "{}",
            report.trace
        );
    });
}
