//! The process-pause fault (`MemCluster::pause`): a stop-the-world pause of a client, on the
//! paused clock. The service stops hearing the paused session and expires it after its timeout;
//! the paused client learns nothing until the pause ends. S2 cannot hold across a pause; fencing
//! downstream (`FencedStore`) is what keeps a paused leader's late writes out.

use std::time::Duration;

use election_core::testing::FencedStore;
use election_core::{Candidate, ElectionState};
use election_mem::MemCluster;
use tokio::time::{sleep, timeout, Instant};

const T: Duration = Duration::from_secs(3);

/// Leader work that writes to `store` with its token every 500 ms until its term ends.
async fn writer(cluster: &MemCluster, id: &str, store: FencedStore) -> Candidate {
    Candidate::builder("/svc", id)
        .session_timeout(T)
        .on_leader(move |term| {
            let store = store.clone();
            let id = term.token();
            async move {
                loop {
                    // A rejected write is the fence doing its job; the work goes on until its
                    // term ends, as a real one would until told.
                    let _ = store.write(id, format!("write of term {id}"));
                    tokio::select! {
                        _ = sleep(Duration::from_millis(500)) => {}
                        _ = term.cancelled() => return,
                    }
                }
            }
        })
        .join(cluster.backend())
        .await
        .expect("join")
}

#[tokio::test(start_paused = true)]
async fn a_paused_leader_is_expired_and_learns_only_when_it_wakes() {
    let cluster = MemCluster::new();
    let store = FencedStore::new();
    let a = writer(&cluster, "a", store.clone()).await;
    let a_token = timeout(T, a.wait_for_leadership()).await.unwrap().unwrap();
    let b = writer(&cluster, "b", store.clone()).await;
    sleep(Duration::from_secs(1)).await;

    let paused_at = Instant::now();
    cluster.pause(a.session_id(), T * 3);
    // The service expires a's session after T; b leads then.
    let b_token = timeout(T * 2, b.wait_for_leadership())
        .await
        .unwrap()
        .unwrap();
    let b_led_after = paused_at.elapsed();
    assert!(b_token > a_token);
    assert!(
        b_led_after >= T && b_led_after <= T + Duration::from_millis(100),
        "{b_led_after:?}"
    );
    // The paused leader has heard nothing: it still reports Leader (S2 cannot hold here).
    assert!(
        matches!(a.current(), ElectionState::Leader { token, .. } if token == a_token),
        "{:?}",
        a.current()
    );
    // a's work goes on writing with its old token: the fence rejects each write after b's first.
    sleep(T * 3 - b_led_after + Duration::from_secs(1)).await;
    assert!(
        !a.is_leader(),
        "a learned its session expired once the pause ended"
    );
    assert!(store.rejected() >= 1, "{store:?}");
    let writes = store.writes();
    assert!(writes.iter().any(|w| w.token == a_token));
    assert!(writes.iter().any(|w| w.token == b_token));
    store
        .check()
        .expect("the fenced store saw the terms in order");
    a.stop().await;
    b.stop().await;
}

#[tokio::test(start_paused = true)]
async fn an_unfenced_store_catches_the_paused_leaders_late_writes() {
    let cluster = MemCluster::new();
    let store = FencedStore::unfenced();
    let a = writer(&cluster, "a", store.clone()).await;
    timeout(T, a.wait_for_leadership()).await.unwrap().unwrap();
    let b = writer(&cluster, "b", store.clone()).await;
    sleep(Duration::from_secs(1)).await;
    cluster.pause(a.session_id(), T * 3);
    timeout(T * 2, b.wait_for_leadership())
        .await
        .unwrap()
        .unwrap();
    sleep(T * 3).await;
    let v = store.check().expect_err("a wrote after b without a fence");
    assert_eq!(v.line, "fencing");
    a.stop().await;
    b.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_pause_shorter_than_the_timeout_changes_nothing() {
    let cluster = MemCluster::new();
    let a = Candidate::builder("/svc", "a")
        .session_timeout(T)
        .join(cluster.backend())
        .await
        .unwrap();
    let a_token = timeout(T, a.wait_for_leadership()).await.unwrap().unwrap();
    let b = Candidate::builder("/svc", "b")
        .session_timeout(T)
        .join(cluster.backend())
        .await
        .unwrap();
    sleep(Duration::from_secs(1)).await;
    cluster.pause(b.session_id(), T / 2);
    sleep(T).await;
    assert!(a.is_leader());
    assert_eq!(a.session_id(), cluster.queue("/svc")[0].owner);
    assert_eq!(
        cluster.queue("/svc").len(),
        2,
        "b's entry lived through its pause"
    );
    // b's session is heard again: a resign hands over to it.
    a.resign().await.unwrap();
    let b_token = timeout(T, b.wait_for_leadership()).await.unwrap().unwrap();
    assert!(b_token > a_token);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_stop_during_a_pause_closes_when_the_pause_ends() {
    let cluster = MemCluster::new();
    let a = Candidate::builder("/svc", "a")
        .session_timeout(T)
        .join(cluster.backend())
        .await
        .unwrap();
    timeout(T, a.wait_for_leadership()).await.unwrap().unwrap();
    let b = Candidate::builder("/svc", "b")
        .session_timeout(T)
        .join(cluster.backend())
        .await
        .unwrap();
    sleep(Duration::from_secs(1)).await;
    let paused_at = Instant::now();
    cluster.pause(b.session_id(), T / 2);
    // b's withdrawal is sent only once its process wakes; a goes on leading meanwhile.
    b.stop().await;
    assert!(paused_at.elapsed() >= T / 2, "{:?}", paused_at.elapsed());
    assert!(a.is_leader());
    assert_eq!(cluster.queue("/svc").len(), 1, "b withdrew once awake");
    a.stop().await;
}
