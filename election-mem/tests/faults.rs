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
    session
        .create(&p, &Marker::from_bits(1), b"")
        .await
        .unwrap();
    cluster.cut(session.id());
    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster.crash(session.id());
    cluster.heal(session.id());
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(!cluster.session_alive(session.id()));
    assert!(cluster.entries(p.as_str()).is_empty());
}

/// Regression (found by the simulation, `ELECTION_SEED=17`): a cut-off client whose session an
/// administrator expired got `SessionGone` replies at once, and never a `Disconnected` state; a
/// candidate withdrawing on it re-sent its delete in a loop at one virtual instant. A cut-off
/// client now hears nothing (connection loss), notices the silence, and learns of the expiry
/// when contact resumes.
#[tokio::test(start_paused = true)]
async fn a_cut_off_client_learns_of_a_forced_expiry_only_on_heal() {
    use election_core::{ErrorKind, SessionState};
    let cluster = MemCluster::new();
    let session = cluster
        .backend()
        .open_session(Duration::from_secs(3))
        .await
        .unwrap();
    let p = ElectionPath::new("/faults/forced-while-cut").unwrap();
    cluster.cut(session.id());
    cluster.expire_session(session.id());
    let e = session.list(&p).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::OutcomeUnknown);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(matches!(
        *session.state().borrow(),
        SessionState::Disconnected { .. }
    ));
    cluster.heal(session.id());
    assert_eq!(*session.state().borrow(), SessionState::Expired);
    assert_eq!(
        session.list(&p).await.unwrap_err().kind(),
        ErrorKind::SessionGone
    );
}
