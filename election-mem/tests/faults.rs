//! The in-memory service's fault API, where the simulation found it wrong.

use std::time::Duration;

use election_core::{ElectionPath, Marker};
use election_mem::MemCluster;

/// Regression (found by the simulation, `ELECTION_SEED=29`): a client that crashed while cut
/// off was "heard" again when the cut healed, so its session never expired and its entries
/// stayed for ever.
#[tokio::test(start_paused = true)]
async fn a_client_that_crashed_while_cut_off_still_expires() {
    let cluster = MemCluster::new();
    let session = cluster
        .backend()
        .open_session(Duration::from_secs(3))
        .await
        .unwrap();
    let p = ElectionPath::new("/faults/crash-while-cut").unwrap();
    session.create(&p, &Marker::from_bits(1), b"").await.unwrap();
    cluster.cut(session.id());
    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster.crash(session.id());
    cluster.heal(session.id());
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(!cluster.session_alive(session.id()));
    assert!(cluster.entries(p.as_str()).is_empty());
}
