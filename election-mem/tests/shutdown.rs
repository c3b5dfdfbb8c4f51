//! Issue 18, point 6: handles that outlive their runtime. Nothing can be withdrawn once the
//! runtime is gone (`stop().await` before leaving `main` does that), but dropping them must not
//! panic.

use std::time::Duration;

use election_core::Candidate;
use election_mem::MemCluster;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
}

#[test]
fn dropping_a_session_after_its_runtime_is_gone_does_not_panic() {
    let cluster = MemCluster::new();
    let rt = runtime();
    let session = rt
        .block_on(cluster.backend().open_session(Duration::from_secs(3)))
        .unwrap();
    let id = session.id();
    drop(rt);
    drop(session);
    // The service learned the client went away; with no runtime to time the expiry, it ends
    // the session at once rather than keep it (and its entries) for ever.
    assert!(!cluster.session_alive(id));
}

#[test]
fn dropping_a_candidate_after_its_runtime_is_gone_does_not_panic() {
    let cluster = MemCluster::new();
    let rt = runtime();
    let candidate = rt.block_on(async {
        let c = Candidate::builder("/shutdown/candidate", "a")
            .session_timeout(Duration::from_secs(3))
            .join(cluster.backend())
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(3), c.wait_for_leadership())
            .await
            .unwrap_or_else(|e| Err(e.into()))
            .unwrap();
        c
    });
    let id = rt.block_on(candidate.client().session()).id();
    drop(rt);
    drop(candidate);
    assert!(!cluster.session_alive(id));
    assert!(cluster.entries("/shutdown/candidate").is_empty());
}
