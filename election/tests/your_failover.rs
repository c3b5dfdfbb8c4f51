//! "Test your own failover": what a user's test of their service looks like, on the in-memory
//! backend with tokio's paused clock (session timeouts pass in no time, and every run is the
//! same). It needs only `election` (feature `mem` or `testing`) and tokio with `test-util`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use election::mem::MemCluster;
use election::{Candidate, FencingToken};

const T: Duration = Duration::from_secs(3);

/// A downstream store that fences: it refuses a write whose token is older than one it saw.
#[derive(Clone, Default)]
struct FencedStore {
    writes: Arc<Mutex<Vec<(String, FencingToken)>>>,
}

impl FencedStore {
    fn write(&self, who: &str, token: FencingToken) -> Result<(), String> {
        let mut w = self.writes.lock().unwrap();
        if let Some((_, last)) = w.last() {
            if token < *last {
                return Err(format!("{who}: token {token} is older than {last}"));
            }
        }
        w.push((who.to_owned(), token));
        Ok(())
    }
}

async fn service(cluster: &MemCluster, id: &'static str, store: FencedStore) -> Candidate {
    Candidate::builder("/svc/leader", id)
        .session_timeout(T)
        .on_leader(move |term| {
            let store = store.clone();
            async move {
                let cancelled = term.cancellation();
                while !cancelled.is_cancelled() {
                    store.write(id, term.token()).expect("fenced write");
                    tokio::select! {
                        _ = cancelled.cancelled() => {}
                        _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    }
                }
            }
        })
        .join(cluster.backend())
        .await
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn the_standby_takes_over_when_the_leader_is_cut_off() {
    let cluster = MemCluster::new();
    let store = FencedStore::default();
    let a = service(&cluster, "a", store.clone()).await;
    let b = service(&cluster, "b", store.clone()).await;
    let token_a = tokio::time::timeout(T, a.wait_for_leadership())
        .await
        .unwrap_or_else(|e| Err(e.into()))
        .unwrap();

    let cut_at = tokio::time::Instant::now();
    cluster.cut(a.client().session().await.id()); // a is partitioned from the service
    let token_b = tokio::time::timeout(T * 2, b.wait_for_leadership())
        .await
        .unwrap_or_else(|e| Err(e.into()))
        .unwrap();
    assert!(token_b > token_a);
    // b leads once the service expired a's session: exactly T after the cut, in virtual time.
    assert_eq!(cut_at.elapsed(), T);
    assert!(!a.is_leader(), "a stepped down before b led");

    // Every write went through the fence, a's before b's.
    let writes = store.writes.lock().unwrap().clone();
    let first_b = writes.iter().position(|(w, _)| w == "b").unwrap();
    assert!(writes[..first_b].iter().all(|(w, _)| w == "a"));
    assert!(writes[first_b..].iter().all(|(w, _)| w == "b"));

    a.stop().await;
    b.stop().await;
}
