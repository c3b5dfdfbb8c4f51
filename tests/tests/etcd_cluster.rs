//! Real 3-member etcd clusters started by the harness: candidates spread over the members, a
//! member frozen under the leader's client, a member killed; and compaction while followers
//! wait. Each test has its own cluster (or member), a 2 s session timeout, bounded waits, and
//! checks the contract's invariants over what it recorded.

use std::sync::Arc;
use std::time::Duration;

use election_core::testing::invariants::check_leaders;
use election_core::testing::recorder::Recorder;
use election_core::{Candidate, CoordinationBackend, ElectionState, FencingToken, Reason};
use election_etcd::testing::{EtcdCluster, EtcdMember};
use election_etcd::EtcdBackend;
use election_tests::scenario::{participant_ids, wait_state, wait_until};
use etcd_client::CompactionOptions;
use tokio::time::{sleep, Instant};

/// The session timeout every test asks for: the least TTL the harness's members grant.
const T: Duration = Duration::from_secs(2);
/// Scheduling and network noise allowed on timing bounds on this machine.
const SLACK: Duration = Duration::from_millis(500);

fn patience() -> Duration {
    T * 8
}

fn backend(endpoints: &[String]) -> Arc<dyn CoordinationBackend> {
    Arc::new(
        EtcdBackend::builder(endpoints.iter().cloned())
            .build()
            .expect("valid endpoints"),
    )
}

async fn join(backend: Arc<dyn CoordinationBackend>, path: &str, id: &str) -> Candidate {
    Candidate::builder(path, id)
        .session_timeout(T)
        .join(backend)
        .await
        .unwrap_or_else(|e| panic!("{id} could not join {path}: {e}"))
}

async fn placed(c: &Candidate) {
    wait_state(c, "placed and knowing the leader", patience(), |s| {
        matches!(
            s,
            ElectionState::Leader { .. }
                | ElectionState::Follower {
                    leader: Some(_),
                    ..
                }
        )
    })
    .await;
}

async fn lead(c: &Candidate) -> FencingToken {
    tokio::time::timeout(patience(), c.wait_for_leadership())
        .await
        .unwrap_or_else(|e| Err(e.into()))
        .unwrap_or_else(|e| panic!("{} did not lead: {e}; state {:?}", c.id(), c.current()))
}

/// S2 on a cluster: candidate `a` reaches the cluster only through member 0, `b` and `c` through
/// members 1 and 2. Member 0 is frozen (SIGSTOP) under the leader `a`: `a` steps down before its
/// lease can expire, and `b` leads only after that; thawed, `a` rejoins at the tail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_frozen_under_the_leader() {
    let cluster = EtcdCluster::start(3);
    let endpoints = cluster.endpoints();
    let path = "/cluster/frozen/leader";
    let mut rec = Recorder::new();
    let mut cs = Vec::new();
    for (i, id) in ["a", "b", "c"].into_iter().enumerate() {
        let c = join(backend(&endpoints[i..=i]), path, id).await;
        rec.watch(&c);
        placed(&c).await;
        cs.push(c);
    }
    let t0 = lead(&cs[0]).await;
    let frozen_at = Instant::now();
    cluster.member(0).freeze();
    let t1 = lead(&cs[1]).await;
    assert!(t1 > t0);
    let intervals = rec.leader_intervals();
    let a = intervals.iter().find(|i| i.candidate == "a").unwrap();
    let b = intervals.iter().find(|i| i.candidate == "b").unwrap();
    let a_end = a.end.expect("a stepped down");
    eprintln!(
        "measure: member frozen -> a leaves Leader after {:?}, b leads after {:?}",
        a_end - frozen_at,
        b.start - frozen_at
    );
    assert!(a_end < frozen_at + T, "a led past its lease TTL");
    assert!(a_end <= b.start);
    assert!(
        b.start + SLACK >= frozen_at + T,
        "b led {:?} after the freeze, before a's lease could expire",
        b.start - frozen_at
    );
    cluster.member(0).thaw();
    let admin = backend(&endpoints[1..]);
    // `a` behind the other two. Their order may have changed: when the frozen member was the
    // cluster's raft leader, keep-alives stop until a new one is elected, and `b`'s and `c`'s
    // leases can end too (seen: both lost theirs as the member was thawed, and `c` came back
    // first: c, b, a).
    wait_until("a rejoined at the tail", patience(), || async {
        let ids = participant_ids(&admin, path, T).await;
        ids.len() == 3 && ids[2] == "a"
    })
    .await;
    let reasons: Vec<Reason> = rec.transitions("a").into_iter().map(|t| t.reason).collect();
    assert!(reasons.contains(&Reason::StepDownDeadline), "{reasons:?}");
    check_leaders(&rec.leader_intervals()).unwrap();
    for c in &cs {
        c.stop().await;
    }
}

/// L1 on a cluster: every candidate knows every endpoint; one member after the other is killed
/// and restarted while the leader resigns in turn: the election goes on with one leader at a
/// time and increasing tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_killed_in_turn_while_leadership_rotates() {
    let cluster = EtcdCluster::start(3);
    let endpoints = cluster.endpoints();
    let path = "/cluster/rotate/leader";
    let mut rec = Recorder::new();
    let mut cs = Vec::new();
    for id in ["a", "b", "c"] {
        let c = join(backend(&endpoints), path, id).await;
        rec.watch(&c);
        placed(&c).await;
        cs.push(c);
    }
    let mut last = lead(&cs[0]).await;
    for round in 0..3 {
        cluster.member(round).kill();
        let leader = cs.iter().find(|c| c.is_leader()).expect("a leader");
        leader.resign().await.expect("resign");
        wait_until("a new leader with a larger token", patience(), || async {
            cs.iter().filter(|c| c.is_leader()).count() == 1
                && cs.iter().filter_map(|c| c.token()).any(|t| t > last)
        })
        .await;
        last = cs.iter().find_map(|c| c.token()).unwrap();
        cluster.member(round).restart();
    }
    check_leaders(&rec.leader_intervals()).unwrap();
    for c in &cs {
        c.stop().await;
    }
}

/// A compaction while followers wait loses no hand-over: the history is compacted to the
/// current revision (with 200 unrelated writes before it) while `b` watches `a`'s key, and `b`
/// leads as soon as `a` resigns; the same with `b` stalled across the delete and a compaction
/// past it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_while_followers_wait() {
    let etcd = EtcdMember::start();
    let endpoint = etcd.endpoint();
    let proxy = etcd.proxy();
    let path = "/compaction/leader";
    let mut rec = Recorder::new();
    let a = join(backend(std::slice::from_ref(&endpoint)), path, "a").await;
    rec.watch(&a);
    let t0 = lead(&a).await;
    let b = join(backend(&[proxy.addr().to_string()]), path, "b").await;
    rec.watch(&b);
    placed(&b).await;
    let mut admin = etcd_client::Client::connect([endpoint.as_str()], None)
        .await
        .expect("admin client");
    let mut revision = 0;
    for i in 0..200 {
        let put = admin
            .put(format!("/elsewhere/{i}"), "x", None)
            .await
            .unwrap();
        revision = put.header().unwrap().revision();
    }
    admin
        .compact(revision, Some(CompactionOptions::new().with_physical()))
        .await
        .expect("compact");
    let resigned_at = Instant::now();
    a.resign().await.unwrap();
    let t1 = lead(&b).await;
    eprintln!(
        "measure: after a compaction, resign -> successor leads in {:?}",
        resigned_at.elapsed()
    );
    assert!(t1 > t0);
    assert!(resigned_at.elapsed() < Duration::from_secs(1));

    // Queue: b (leader), a (rejoined at the tail), c, which watches a through a proxy of its
    // own. Stall c, let a withdraw, compact past the delete, heal c.
    placed(&a).await;
    let c_proxy = etcd.proxy();
    let c = join(backend(&[c_proxy.addr().to_string()]), path, "c").await;
    rec.watch(&c);
    placed(&c).await;
    c_proxy.stall();
    a.stop().await;
    let mut revision = 0;
    for i in 0..50 {
        let put = admin
            .put(format!("/elsewhere/{i}"), "y", None)
            .await
            .unwrap();
        revision = put.header().unwrap().revision();
    }
    admin
        .compact(revision, Some(CompactionOptions::new().with_physical()))
        .await
        .expect("compact");
    sleep(Duration::from_millis(300)).await;
    c_proxy.resume();
    let b_resigned = Instant::now();
    b.resign().await.unwrap();
    lead(&c).await;
    eprintln!(
        "measure: follower stalled across a delete and a compaction: leads {:?} after the resign",
        b_resigned.elapsed()
    );
    check_leaders(&rec.leader_intervals()).unwrap();
    b.stop().await;
    c.stop().await;
}
