//! S2 and S4 on a real 3-member ensemble when the member a leader is connected to is cut off from
//! its peers, silently, while it goes on answering its clients.
//!
//! A follower that loses its ZooKeeper leader keeps serving reads until its `syncLimit` runs out;
//! meanwhile the elected leader, which hears of the follower's sessions only through it, expires
//! them a session timeout after it last did. A candidate that counted the isolated member's
//! replies as contact would lead on, with its work running, while its successor (connected to
//! another member) already leads. Contact must prove that the ZooKeeper leader still hears us.
//!
//! Each case runs at a different ratio of the session timeout to `syncLimit x tickTime`, all with
//! the isolated member giving up long after the session could have expired.

use std::sync::Arc;
use std::time::Duration;

use election_core::testing::invariants::{check_leaders, check_work};
use election_core::testing::recorder::{Recorder, WorkLog};
use election_core::{Candidate, CoordinationBackend, ElectionState};
use election_tests::scenario::{direct, wait_state, wait_until};
use election_zk::testing::{Mode, ZkEnsemble, TICK_TIME};
use election_zk::ZkBackend;
use tokio::time::{sleep, Instant};

/// A backend that connects to one member only, telling it the servers' tickTime.
fn member_backend(connect: &str) -> Arc<dyn CoordinationBackend> {
    Arc::new(
        ZkBackend::builder(connect)
            .server_tick_time(TICK_TIME)
            .build()
            .expect("valid connect string"),
    )
}

/// Candidate `a` leads through member `x`, which is then isolated from its peers; `b`, on another
/// member, must not lead before `a` has left the Leader state and its work has ended.
async fn isolated_member_leader_steps_down_before_successor(sync_limit: u32, t: Duration) {
    let ensemble = Arc::new(tokio::task::block_in_place(|| {
        ZkEnsemble::builder(3)
            .sync_limit(sync_limit)
            .proxied_peer_links()
            .start()
    }));
    let modes = ensemble.modes();
    let zk_leader = modes
        .iter()
        .position(|m| *m == Some(Mode::Leader))
        .expect("an ensemble leader");
    // `a` talks to a follower only; `b` to the ZooKeeper leader, which does the expiring.
    let x = (0..3).find(|&i| i != zk_leader).expect("a follower");
    let patience = t * 8 + TICK_TIME * sync_limit * 2;
    let path = format!("/isolated/s{sync_limit}/leader");
    let log = WorkLog::new();
    let mut rec = Recorder::new();

    let a = Candidate::builder(path.as_str(), "a")
        .session_timeout(t)
        .on_leader(log.work("a", Duration::ZERO))
        .join(member_backend(&ensemble.member(x).connect_string()))
        .await
        .unwrap();
    rec.watch(&a);
    let token_a = wait_state(&a, "leading", patience, |s| s.is_leader())
        .await
        .token()
        .expect("a leader has a token");
    let b = Candidate::builder(path.as_str(), "b")
        .session_timeout(t)
        .on_leader(log.work("b", Duration::ZERO))
        .join(member_backend(&ensemble.member(zk_leader).connect_string()))
        .await
        .unwrap();
    rec.watch(&b);
    wait_state(&b, "following a", patience, |s| {
        matches!(
            s,
            ElectionState::Follower {
                leader: Some(_),
                ..
            }
        )
    })
    .await;
    // Let contact settle after the joins.
    sleep(t / 2).await;

    let cut_at = Instant::now();
    let e = ensemble.clone();
    tokio::task::block_in_place(|| e.isolate(x));
    let token_b = wait_state(&b, "leading", patience, |s| s.is_leader())
        .await
        .token()
        .expect("a leader has a token");
    assert!(token_b > token_a);
    wait_state(&a, "out of the Leader state", patience, |s| !s.is_leader()).await;
    sleep(Duration::from_millis(50)).await;

    let intervals = rec.leader_intervals();
    let spans = log.spans();
    let first = |id: &str| {
        intervals
            .iter()
            .find(|i| i.candidate == id)
            .unwrap_or_else(|| panic!("{id} never led: {intervals:?}"))
            .clone()
    };
    let (ia, ib) = (first("a"), first("b"));
    let a_end = ia.end.expect("a left the Leader state");
    let a_work_end = spans
        .iter()
        .find(|s| s.candidate == "a")
        .and_then(|s| s.end)
        .expect("a's work ended");
    let a_done = a_end.max(a_work_end);
    let overlap = a_done.saturating_duration_since(ib.start);
    let gap = ib.start.saturating_duration_since(a_done);
    eprintln!(
        "measure: syncLimit {sync_limit} x {TICK_TIME:?}, T {t:?}: a left Leader {:?} after the \
         cut, its work ended at {:?}, b led at {:?}: overlap {overlap:?}, gap {gap:?}",
        a_end - cut_at,
        a_work_end - cut_at,
        ib.start - cut_at,
    );
    check_leaders(&intervals).unwrap_or_else(|v| panic!("two leaders: {v}"));
    check_work(&spans).unwrap_or_else(|v| panic!("two works: {v}"));

    // Healed: the member rejoins the quorum, `a` (its session expired) rejoins at the tail.
    let e = ensemble.clone();
    tokio::task::block_in_place(|| e.reconnect(x));
    let admin = direct(&ensemble.member(zk_leader).connect_string());
    wait_until("a rejoined behind b", patience, || async {
        election_tests::scenario::participant_ids(&admin, &path, t).await == ["b", "a"]
    })
    .await;
    a.stop().await;
    b.stop().await;
    wait_until("no entry left", patience, || async {
        election_tests::scenario::participant_ids(&admin, &path, t)
            .await
            .is_empty()
    })
    .await;
}

/// syncLimit 25 ticks (5 s) against T = 2 s: the member gives up 2.5 T after the cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_limit_2_5_t() {
    isolated_member_leader_steps_down_before_successor(25, Duration::from_secs(2)).await;
}

/// syncLimit 5 ticks (1 s, ZooKeeper's default ratio) against T = 500 ms: the member gives up 2 T
/// after the cut (the Maxwell patch's 5 s session on default servers, scaled down ten times).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_limit_2_t() {
    isolated_member_leader_steps_down_before_successor(5, Duration::from_millis(500)).await;
}

/// syncLimit 15 ticks (3 s) against T = 2 s: the member gives up 1.5 T after the cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_limit_1_5_t() {
    isolated_member_leader_steps_down_before_successor(15, Duration::from_secs(2)).await;
}

/// Point 5: a member with a lower `maxSessionTimeout` shortens a session that reconnects to it.
/// Member 1 grants at most 1 s, the others 60 s; `a` asks for 4 s and reaches members 0 and 1
/// through proxies, `b` talks to member 2. `a` leads, loses member 0 (and reconnects to member 1,
/// which renegotiates the session down to 1 s), then loses member 1 too. The server expires `a`
/// 1 s after it last heard of it; `a` must have stepped down, its work ended, before `b` leads.
/// The backend asks every member first and asks for what all grant, so `a`'s deadlines are
/// counted from 1 s from the start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_granting_a_shorter_session_timeout_shortens_the_budget() {
    let ensemble = Arc::new(tokio::task::block_in_place(|| {
        ZkEnsemble::builder(3)
            .max_session_timeout(1, Duration::from_secs(1))
            .start()
    }));
    let asked = Duration::from_secs(4);
    let patience = Duration::from_secs(20);
    let path = "/renegotiated/leader";
    let log = WorkLog::new();
    let mut rec = Recorder::new();
    let p0 = election_zk::testing::TcpProxy::start(ensemble.member(0).client_addr());
    let p1 = election_zk::testing::TcpProxy::start(ensemble.member(1).client_addr());
    let a = Candidate::builder(path, "a")
        .session_timeout(asked)
        // Slow to stop: it runs until the budget's end, when it is aborted.
        .on_leader(log.work("a", Duration::from_secs(60)))
        .join(member_backend(&format!("{},{}", p0.addr(), p1.addr())))
        .await
        .unwrap();
    rec.watch(&a);
    wait_state(&a, "leading", patience, |s| s.is_leader()).await;
    let session = a.client().session().await;
    eprintln!(
        "measure: asked {asked:?}, the session's timeout is {:?}",
        session.timeout()
    );
    assert_eq!(
        session.timeout(),
        Duration::from_secs(1),
        "the least any member grants"
    );
    let b = Candidate::builder(path, "b")
        .session_timeout(asked)
        .on_leader(log.work("b", Duration::ZERO))
        .join(member_backend(&ensemble.member(2).connect_string()))
        .await
        .unwrap();
    rec.watch(&b);
    wait_state(&b, "following a", patience, |s| {
        matches!(
            s,
            ElectionState::Follower {
                leader: Some(_),
                ..
            }
        )
    })
    .await;

    // Member 0 goes silent: a reconnects to member 1, which grants at most 1 s.
    p0.stall();
    let moved = Instant::now();
    wait_until("a reconnected through member 1", patience, || async {
        p1.connection_count() > 0 && a.current().is_leader() && {
            matches!(
                a.current(),
                ElectionState::Leader {
                    contact: election_core::Contact::Confirmed,
                    ..
                }
            )
        }
    })
    .await;
    eprintln!(
        "measure: a confirmed again through member 1 after {:?}",
        moved.elapsed()
    );
    sleep(Duration::from_millis(300)).await;
    // Then member 1 too: the server expires a's session 1 s after it last heard of it.
    p1.stall();
    wait_state(&b, "leading", patience, |s| s.is_leader()).await;
    sleep(Duration::from_millis(50)).await;
    check_leaders(&rec.leader_intervals()).unwrap_or_else(|v| panic!("two leaders: {v}"));
    check_work(&log.spans()).unwrap_or_else(|v| panic!("two works: {v}"));
    p0.resume();
    p1.resume();
    a.stop().await;
    b.stop().await;
}
