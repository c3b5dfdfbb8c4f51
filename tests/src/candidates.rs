//! Candidates in the fault scenarios on real servers (ZooKeeper and etcd alike): joining in a
//! known order, waiting for leadership, counting entries, and bounded waits, with the session
//! timeout every scenario uses.

use std::sync::Arc;
use std::time::Duration;

use election_core::testing::invariants::LeaderInterval;
use election_core::testing::recorder::Recorder;
use election_core::{Candidate, CoordinationBackend, ElectionPath, ElectionState, FencingToken};
use tokio::time::{sleep, Instant};

use crate::scenario::{wait_state, wait_until};

/// The session timeout every scenario asks for (ZooKeeper's servers run tickTime 200 ms; 2 s is
/// also the least lease TTL the etcd members grant).
pub const T: Duration = Duration::from_secs(2);
/// Scheduling and network noise allowed on timing bounds on this machine.
pub const SLACK: Duration = Duration::from_millis(500);

/// Time enough for anything promised within a few session timeouts.
pub fn patience() -> Duration {
    T * 6
}

/// Joins `id` at `path` with a payload naming it and the scenario session timeout.
pub async fn join(backend: &Arc<dyn CoordinationBackend>, path: &str, id: &str) -> Candidate {
    Candidate::builder(path, id)
        .payload(format!("payload-of-{id}").into_bytes())
        .session_timeout(T)
        .join(backend.clone())
        .await
        .unwrap_or_else(|e| panic!("{id} could not join {path}: {e}"))
}

/// Joins `ids` in order, each once the previous one's entry is registered, so the queue order
/// is the join order.
pub async fn join_in_order(
    backend: &Arc<dyn CoordinationBackend>,
    path: &str,
    ids: &[&str],
    rec: &mut Recorder,
) -> Vec<Candidate> {
    let mut out = Vec::new();
    for id in ids {
        let c = join(backend, path, id).await;
        rec.watch(&c);
        wait_state(&c, "placed", patience(), |s| {
            matches!(
                s,
                ElectionState::Follower { .. } | ElectionState::Leader { .. }
            )
        })
        .await;
        out.push(c);
    }
    out
}

/// Waits (bounded) until `c` leads; returns its token.
pub async fn lead(c: &Candidate) -> FencingToken {
    tokio::time::timeout(patience(), c.wait_for_leadership())
        .await
        .unwrap_or_else(|e| Err(e.into()))
        .unwrap_or_else(|e| panic!("{} did not lead: {e}; state {:?}", c.id(), c.current()))
}

/// The number of entries at `path`, listed through a short-lived session.
pub async fn entry_count(backend: &Arc<dyn CoordinationBackend>, path: &str) -> usize {
    let s = backend.open_session(T).await.expect("admin session");
    let n = s
        .list(&ElectionPath::new(path).unwrap())
        .await
        .expect("list")
        .entries
        .len();
    s.close().await;
    n
}

/// Waits (bounded) until `path` has exactly `n` entries.
pub async fn wait_entries(backend: &Arc<dyn CoordinationBackend>, path: &str, n: usize) {
    let what = format!("{path} has {n} entries");
    wait_until(&what, patience(), || async {
        entry_count(backend, path).await == n
    })
    .await;
}

/// Stops every candidate, in order.
pub async fn stop_all(cs: &[Candidate]) {
    for c in cs {
        c.stop().await;
    }
}

/// Every candidate other than the leader knows the leader (its first listing and read are done).
pub async fn followers_settled(cs: &[Candidate]) {
    for c in cs.iter().filter(|c| !c.is_leader()) {
        wait_state(c, "a follower knowing the leader", patience(), |s| {
            matches!(
                s,
                ElectionState::Follower {
                    leader: Some(_),
                    ..
                }
            )
        })
        .await;
    }
}

/// `id`'s first Leader interval. The driver publishes a state (`Candidate::state`) just before
/// the transition on the event stream, so a test that saw the state may wait a moment for it.
pub async fn interval_of(rec: &mut Recorder, id: &str) -> LeaderInterval {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        if let Some(i) = rec
            .leader_intervals()
            .into_iter()
            .find(|i| i.candidate == id)
        {
            return i;
        }
        assert!(
            Instant::now() < deadline,
            "{id} never led: {:?}",
            rec.events()
        );
        sleep(Duration::from_millis(5)).await;
    }
}
