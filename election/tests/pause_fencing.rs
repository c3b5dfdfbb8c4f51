//! A leader paused like a JVM in a stop-the-world GC (`MemCluster::pause`) wakes after its
//! successor took over and finishes the write it had begun, with its old token. A fencing
//! downstream (`election::testing::FencedStore`) rejects it; one that ignores tokens lets it in,
//! and the store's checks catch that. On the paused clock: deterministic.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use election::mem::MemCluster;
use election::testing::{FencedStore, StaleToken};
use election::{Candidate, FencingToken};
use tokio::sync::Notify;
use tokio::time::{sleep, timeout};

const T: Duration = Duration::from_secs(3);
const PAUSE: Duration = Duration::from_secs(9);

/// What the first term's late write got.
type Late = Arc<Mutex<Option<Result<(), StaleToken>>>>;

/// A service whose leader work writes at the start of its term, then (first term only) is caught
/// by a pause mid-write when `gc` fires and finishes that write after it.
async fn service(
    cluster: &MemCluster,
    id: &'static str,
    store: FencedStore,
    gc: Arc<Notify>,
    late: Late,
) -> Candidate {
    Candidate::builder("/svc/leader", id)
        .session_timeout(T)
        .on_leader(move |term| {
            let (store, gc, late) = (store.clone(), gc.clone(), late.clone());
            async move {
                let token: FencingToken = term.token();
                store
                    .write(token, format!("{id}: first"))
                    .expect("first write");
                if id == "a" {
                    gc.notified().await;
                    // The model pauses only the backend; the work stands still here as the
                    // paused process would, then completes the write it had begun.
                    sleep(PAUSE).await;
                    *late.lock().unwrap() = Some(store.write(token, format!("{id}: late")));
                }
                term.cancelled().await;
            }
        })
        .join(cluster.backend())
        .await
        .unwrap()
}

/// Runs the scenario; returns the two tokens and what the late write got.
async fn scenario(
    store: FencedStore,
) -> (FencingToken, FencingToken, Option<Result<(), StaleToken>>) {
    let cluster = MemCluster::new();
    let gc = Arc::new(Notify::new());
    let late: Late = Arc::default();
    let a = service(&cluster, "a", store.clone(), gc.clone(), late.clone()).await;
    let token_a = timeout(T, a.wait_for_leadership()).await.unwrap().unwrap();
    let b = service(&cluster, "b", store.clone(), gc.clone(), late.clone()).await;
    sleep(Duration::from_secs(1)).await;

    cluster.pause(a.session_id(), PAUSE);
    gc.notify_one();
    let token_b = timeout(T * 2, b.wait_for_leadership())
        .await
        .unwrap()
        .unwrap();
    assert!(token_b > token_a);
    assert!(
        a.is_leader(),
        "paused: a has heard nothing yet (S2 cannot hold across a pause)"
    );
    sleep(PAUSE).await;
    assert!(!a.is_leader(), "woken, a learned its session expired");
    let late = late.lock().unwrap().clone();
    a.stop().await;
    b.stop().await;
    (token_a, token_b, late)
}

#[tokio::test(start_paused = true)]
async fn the_woken_leaders_late_write_is_rejected_by_the_fence() {
    let store = FencedStore::new();
    let (token_a, token_b, late) = scenario(store.clone()).await;
    assert_eq!(
        late,
        Some(Err(StaleToken {
            token: token_a,
            highest: token_b
        }))
    );
    assert_eq!(store.rejected(), 1);
    let values: Vec<String> = store.writes().into_iter().map(|w| w.value).collect();
    assert_eq!(values, ["a: first", "b: first"]);
    store.check().unwrap();
}

#[tokio::test(start_paused = true)]
async fn without_the_fence_the_checks_catch_the_late_write() {
    let store = FencedStore::unfenced();
    let (_, _, late) = scenario(store.clone()).await;
    assert_eq!(late, Some(Ok(())));
    let values: Vec<String> = store.writes().into_iter().map(|w| w.value).collect();
    assert_eq!(values, ["a: first", "b: first", "a: late"]);
    let violation = store.check().unwrap_err();
    assert_eq!(violation.line, "fencing");
}
