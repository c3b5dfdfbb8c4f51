//! Observers on the in-memory backend: what they publish before and after their first listing,
//! and how they retry.

use std::time::Duration;

use election_core::{Candidate, Client, ElectionPath, LeaderView};
use election_mem::{MemCluster, Permission};

const T: Duration = Duration::from_secs(3);

/// Issue 18, point 7: an observer that cannot read the head's entry backs off (with jitter)
/// before it lists again, instead of listing and reading in a tight loop.
#[tokio::test(start_paused = true)]
async fn an_observer_that_cannot_read_backs_off() {
    let cluster = MemCluster::new();
    let leader = Candidate::builder("/obs/read-error", "a")
        .session_timeout(T)
        .join(cluster.backend())
        .await
        .unwrap();
    tokio::time::timeout(T, leader.wait_for_leadership())
        .await
        .unwrap_or_else(|e| Err(e.into()))
        .unwrap();
    cluster.deny("/obs/read-error", Permission::Read);
    let client = Client::connect(cluster.backend(), T).await.unwrap();
    cluster.reset_stats();
    let observer = client.observe(&ElectionPath::new("/obs/read-error").unwrap());
    // No virtual time passes while tasks are runnable: a spinning observer does all its work in
    // these yields, one that backs off sleeps after its first attempt.
    for _ in 0..2000 {
        tokio::task::yield_now().await;
    }
    let busy = cluster.stats().reads;
    assert!(
        busy <= 2,
        "{busy} reads before any time passed: the observer spins"
    );
    // Spaced out over time, too: a refused read leaves the leader unknown until the head
    // changes (other failed reads are retried with the back-off), so over 10 s far fewer than
    // one attempt per 10 ms.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let reads = cluster.stats().reads;
    assert!((1..=20).contains(&reads), "{reads} reads in 10 s");
    assert_eq!(*observer.leader().borrow(), LeaderView::Unknown);
    cluster.allow("/obs/read-error", Permission::Read);
    drop(observer);
    leader.stop().await;
}

/// Issue 8, point 3: before its first listing an observer says "not known yet", not "nobody
/// leads", while someone does; then it knows the leader, and "nobody" once the election empties.
#[tokio::test(start_paused = true)]
async fn an_observer_tells_unknown_from_nobody() {
    let cluster = MemCluster::new();
    let path = ElectionPath::new("/obs/unknown").unwrap();
    let a = Candidate::builder(path.as_str(), "a")
        .session_timeout(T)
        .join(cluster.backend())
        .await
        .unwrap();
    tokio::time::timeout(T, a.wait_for_leadership())
        .await
        .unwrap_or_else(|e| Err(e.into()))
        .unwrap();
    let client = Client::connect(cluster.backend(), T).await.unwrap();
    cluster.set_latency(Duration::from_millis(50));
    let observer = client.observe(&path);
    assert_eq!(observer.current(), LeaderView::Unknown);
    assert!(!observer.current().is_known());
    let leader = tokio::time::timeout(T, observer.wait_for_leader())
        .await
        .expect("a leader within T")
        .unwrap();
    assert_eq!(leader.id, "a");
    assert_eq!(observer.current().leader(), Some(&leader));
    a.stop().await;
    let mut view = observer.leader();
    tokio::time::timeout(T, view.wait_for(|v| *v == LeaderView::Nobody))
        .await
        .expect("nobody leads once a stopped")
        .unwrap();
}

/// An observer of an empty election knows, after its first listing, that nobody leads.
#[tokio::test(start_paused = true)]
async fn an_observer_of_an_empty_election_sees_nobody() {
    let cluster = MemCluster::new();
    let client = Client::connect(cluster.backend(), T).await.unwrap();
    let observer = client.observe(&ElectionPath::new("/obs/empty").unwrap());
    assert_eq!(observer.current(), LeaderView::Unknown);
    let mut view = observer.leader();
    tokio::time::timeout(T, view.wait_for(LeaderView::is_known))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(observer.current(), LeaderView::Nobody);
}
