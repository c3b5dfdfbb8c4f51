//! Observers on the in-memory backend: what they publish before and after their first listing,
//! and how they retry.

use std::time::Duration;

use election_core::{Candidate, Client, ElectionPath};
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
    leader.wait_for_leadership(T).await.unwrap();
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
    // And it does retry, spaced out: over 10 s, far fewer than one attempt per 10 ms.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let reads = cluster.stats().reads;
    assert!((2..=20).contains(&reads), "{reads} reads in 10 s");
    cluster.allow("/obs/read-error", Permission::Read);
    drop(observer);
    leader.stop().await;
}
