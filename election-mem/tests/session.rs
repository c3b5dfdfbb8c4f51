//! The shared session (issue 8, point 4): one owner renews and closes it.

use std::time::Duration;

use election_core::{Candidate, Client, ElectionError, ElectionPath, ElectionState, StopReason};
use election_mem::MemCluster;

const T: Duration = Duration::from_secs(3);

/// A client used only for queries recovers after its session expired: the next query opens a
/// new session instead of failing for ever.
#[tokio::test(start_paused = true)]
async fn a_query_only_client_renews_its_session_after_expiry() {
    let cluster = MemCluster::new();
    let path = ElectionPath::new("/session/queries").unwrap();
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
    let first = client.session_id();
    assert_eq!(client.current_leader(&path).await.unwrap().unwrap().id, "a");
    cluster.expire_session(first);
    tokio::time::sleep(T).await;
    let leader = client.current_leader(&path).await.expect("a new session");
    assert_eq!(leader.unwrap().id, "a");
    assert_ne!(client.session_id(), first);
    assert!(cluster.session_alive(client.session_id()));
    assert_eq!(client.participants(&path).await.unwrap().len(), 1);
    // Also when the expiry is learnt by the query itself (no state change seen yet).
    let second = client.session_id();
    cluster.expire_session(second);
    assert_eq!(client.participants(&path).await.unwrap().len(), 1);
    a.stop().await;
    client.close().await;
}

/// `close()` means closed: a candidate that would rejoin after its session ended and an
/// observer that would reopen a session both stop, with a reason that says why, and nothing
/// opens a session on the client again.
#[tokio::test(start_paused = true)]
async fn close_is_not_undone_by_candidates_or_observers() {
    let cluster = MemCluster::new();
    let path = ElectionPath::new("/session/close").unwrap();
    let client = Client::connect(cluster.backend(), T).await.unwrap();
    let a = client
        .join(
            Candidate::builder(path.as_str(), "a")
                .rejoin_on_expiry(true)
                .build()
                .unwrap(),
        )
        .await
        .unwrap();
    tokio::time::timeout(T, a.wait_for_leadership())
        .await
        .unwrap_or_else(|e| Err(e.into()))
        .unwrap();
    let observer = client.observe(&path);
    tokio::time::timeout(T, observer.wait_for_leader())
        .await
        .unwrap()
        .unwrap();
    let session = client.session_id();
    client.close().await;
    assert_eq!(
        a.current(),
        ElectionState::Stopped(StopReason::ClientClosed)
    );
    tokio::time::sleep(T * 4).await;
    assert_eq!(client.session_id(), session);
    assert!(!cluster.session_alive(session));
    assert!(cluster.entries(path.as_str()).is_empty());
    assert!(matches!(
        tokio::time::timeout(T, a.wait_for_leadership())
            .await
            .unwrap_or_else(|e| Err(e.into())),
        Err(ElectionError::ClientClosed)
    ));
    assert!(matches!(
        observer.wait_for_leader().await,
        Err(ElectionError::ClientClosed)
    ));
    assert!(matches!(
        client.participants(&path).await,
        Err(ElectionError::ClientClosed)
    ));
    let late = client.observe(&path);
    assert!(late.is_stopped());
    client.close().await; // idempotent
}
