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

/// A backend whose sessions after the first take a second to open.
struct SlowRenewal {
    cluster: MemCluster,
    opened: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl election_core::CoordinationBackend for SlowRenewal {
    async fn open_session(
        &self,
        timeout: Duration,
    ) -> Result<std::sync::Arc<dyn election_core::BackendSession>, election_core::BackendError>
    {
        if self
            .opened
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            > 0
        {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        self.cluster.backend().open_session(timeout).await
    }
}

/// A close that comes while a candidate is moving to a new session (its old one expired)
/// still stops it at once, and leaves no session open.
#[tokio::test(start_paused = true)]
async fn close_during_a_renewal_stops_the_candidate() {
    let cluster = MemCluster::new();
    let path = ElectionPath::new("/session/close-renewing").unwrap();
    let backend: std::sync::Arc<dyn election_core::CoordinationBackend> =
        std::sync::Arc::new(SlowRenewal {
            cluster: cluster.clone(),
            opened: Default::default(),
        });
    let client = Client::connect(backend, T).await.unwrap();
    let a = client
        .join(Candidate::builder(path.as_str(), "a").build().unwrap())
        .await
        .unwrap();
    tokio::time::timeout(T, a.wait_for_leadership())
        .await
        .unwrap()
        .unwrap();
    cluster.expire_session(client.session_id());
    let mut state = a.state();
    tokio::time::timeout(T, state.wait_for(|s| *s == ElectionState::Suspended))
        .await
        .unwrap()
        .unwrap();
    let closing = tokio::time::Instant::now();
    client.close().await;
    assert!(
        closing.elapsed() < Duration::from_secs(1),
        "close waited for the renewal"
    );
    assert_eq!(
        a.current(),
        ElectionState::Stopped(StopReason::ClientClosed)
    );
    tokio::time::sleep(T * 2).await;
    assert!(!cluster.session_alive(client.session_id()));
    assert!(cluster.entries(path.as_str()).is_empty());
}

/// A backend that refuses to open any session after the first while `refusing` is set, and
/// records (in virtual time) when each session was asked for; `hammered` is notified once it
/// was asked 40 times (a retry loop without backoff never lets the paused clock move on).
struct Refusing {
    cluster: MemCluster,
    refusing: std::sync::atomic::AtomicBool,
    asked: std::sync::Mutex<Vec<tokio::time::Instant>>,
    hammered: tokio::sync::Notify,
}

#[async_trait::async_trait]
impl election_core::CoordinationBackend for Refusing {
    async fn open_session(
        &self,
        timeout: Duration,
    ) -> Result<std::sync::Arc<dyn election_core::BackendSession>, election_core::BackendError>
    {
        let first = {
            let mut asked = self.asked.lock().unwrap();
            asked.push(tokio::time::Instant::now());
            if asked.len() == 40 {
                self.hammered.notify_one();
            }
            asked.len() == 1
        };
        if !first && self.refusing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(election_core::BackendError::new(
                election_core::ErrorKind::OutcomeUnknown,
                "service unreachable (test)",
            ));
        }
        self.cluster.backend().open_session(timeout).await
    }
}

/// A candidate whose session ended and whose new one cannot be opened retries with a backoff
/// that doubles from 50 ms up to 5 s (each delay jittered between half of it and all of it):
/// it neither hammers an unreachable service nor gives up, and rejoins once it can.
#[tokio::test(start_paused = true)]
async fn reopening_a_session_backs_off_doubling_to_five_seconds() {
    let cluster = MemCluster::new();
    let path = ElectionPath::new("/session/reopen-backoff").unwrap();
    let backend = std::sync::Arc::new(Refusing {
        cluster: cluster.clone(),
        refusing: std::sync::atomic::AtomicBool::new(true),
        asked: Default::default(),
        hammered: Default::default(),
    });
    let shared: std::sync::Arc<dyn election_core::CoordinationBackend> = backend.clone();
    let client = Client::connect(shared, T).await.unwrap();
    let a = client
        .join(Candidate::builder(path.as_str(), "a").build().unwrap())
        .await
        .unwrap();
    tokio::time::timeout(T, a.wait_for_leadership())
        .await
        .unwrap()
        .unwrap();
    cluster.expire_session(client.session_id());
    tokio::select! {
        () = tokio::time::sleep(Duration::from_secs(30)) => {}
        () = backend.hammered.notified() => {}
    }
    let asked = backend.asked.lock().unwrap().clone();
    // The first open was the client's own; then one renewal attempt per retry.
    let gaps: Vec<Duration> = asked[1..].windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        (8..30).contains(&gaps.len()),
        "{} retries in 30 s: {gaps:?}",
        gaps.len()
    );
    for (i, gap) in gaps.iter().enumerate() {
        let backoff =
            (Duration::from_millis(50) * 2u32.pow(i.min(10) as u32)).min(Duration::from_secs(5));
        assert!(
            *gap >= backoff / 2 && *gap <= backoff,
            "retry {i} came {gap:?} after the one before; its backoff is {backoff:?} (all: {gaps:?})"
        );
    }
    backend
        .refusing
        .store(false, std::sync::atomic::Ordering::SeqCst);
    tokio::time::timeout(T * 3, a.wait_for_leadership())
        .await
        .unwrap()
        .unwrap();
    a.stop().await;
    client.close().await;
}
