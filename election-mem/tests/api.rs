//! API habits (issue 8, point 5): waits without a mandatory timeout, events from the start,
//! the candidate's session id, backends that convert into `Arc<dyn CoordinationBackend>`,
//! errors that say whether a retry helps and what happened, `Debug` everywhere.

use std::time::Duration;

use election_core::{
    BackendError, Candidate, Client, ElectionError, ElectionPath, ElectionState, ErrorKind, Event,
    Marker, Reason,
};
use election_mem::MemCluster;

const T: Duration = Duration::from_secs(3);

/// `wait_for_leadership` takes no timeout: it waits as long as it takes (here an hour of
/// virtual time), and a caller bounds it with `tokio::time::timeout` (`Elapsed` converts into
/// `ElectionError::Timeout`).
#[tokio::test(start_paused = true)]
async fn waits_have_no_timeout_of_their_own() {
    let cluster = MemCluster::new();
    let a = Candidate::builder("/api/wait", "a")
        .session_timeout(T)
        .join(cluster.clone())
        .await
        .unwrap();
    tokio::time::timeout(T, a.wait_for_leadership())
        .await
        .unwrap()
        .unwrap();
    let b = Candidate::builder("/api/wait", "b")
        .session_timeout(T)
        .join(&cluster)
        .await
        .unwrap();
    let bounded: Result<_, ElectionError> =
        async { tokio::time::timeout(T, b.wait_for_leadership()).await? }.await;
    assert!(
        matches!(bounded, Err(ElectionError::Timeout)),
        "{bounded:?}"
    );
    assert!(bounded.unwrap_err().is_retryable());
    let waiting = async {
        let started = tokio::time::Instant::now();
        let token = b.wait_for_leadership().await.unwrap();
        (token, started.elapsed())
    };
    let stop_later = async {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        a.stop().await;
    };
    let ((token, waited), ()) = tokio::join!(waiting, stop_later);
    assert!(waited >= Duration::from_secs(3600));
    assert_eq!(b.token(), Some(token));
    b.stop().await;
}

/// The first `events()` call sees the candidate's first transitions, even when made after
/// them: its receiver was subscribed before the candidate ran.
#[tokio::test(start_paused = true)]
async fn events_cannot_miss_the_first_transitions() {
    let cluster = MemCluster::new();
    let a = Candidate::builder("/api/events", "a")
        .session_timeout(T)
        .join(cluster.backend())
        .await
        .unwrap();
    tokio::time::timeout(T, a.wait_for_leadership())
        .await
        .unwrap()
        .unwrap();
    let mut events = a.events();
    let mut reasons = Vec::new();
    while let Ok(event) = events.try_recv() {
        if let Event::Transition(t) = event {
            reasons.push((t.from.name(), t.to.name(), t.reason));
        }
    }
    assert_eq!(
        reasons.first(),
        Some(&("joining", "leader", Reason::Claimed)),
        "{reasons:?}"
    );
    // Later calls start from the call on.
    assert!(a.events().try_recv().is_err());
    a.stop().await;
}

/// `Candidate::session_id` names the session its entry is on, also after it rejoined on a new
/// one.
#[tokio::test(start_paused = true)]
async fn a_candidate_knows_its_session() {
    let cluster = MemCluster::new();
    let a = Candidate::builder("/api/session", "a")
        .session_timeout(T)
        .join(cluster.backend())
        .await
        .unwrap();
    tokio::time::timeout(T, a.wait_for_leadership())
        .await
        .unwrap()
        .unwrap();
    let first = a.session_id();
    assert_eq!(cluster.queue("/api/session")[0].owner, first);
    cluster.expire_session(first);
    tokio::time::sleep(T).await;
    tokio::time::timeout(T, a.wait_for_leadership())
        .await
        .unwrap()
        .unwrap();
    assert_ne!(a.session_id(), first);
    assert_eq!(cluster.queue("/api/session")[0].owner, a.session_id());
    a.stop().await;
}

/// An undecodable leader record is reported as such, not as "the head kept changing", and is
/// not worth retrying.
#[tokio::test(start_paused = true)]
async fn an_undecodable_leader_record_says_so() {
    let cluster = MemCluster::new();
    let path = ElectionPath::new("/api/garbage").unwrap();
    let raw = cluster.backend().open_session(T).await.unwrap();
    raw.create(&path, &Marker::from_bits(7), b"\xffnot a record")
        .await
        .unwrap();
    let client = Client::connect(cluster.clone(), T).await.unwrap();
    let err = client.current_leader(&path).await.unwrap_err();
    let message = err.to_string();
    assert!(message.contains("cannot be decoded"), "{message}");
    assert!(!message.contains("kept changing"), "{message}");
    assert!(!err.is_retryable());
    client.close().await;
    raw.close().await;
}

#[test]
fn errors_say_whether_a_retry_can_help() {
    let backend = |kind| ElectionError::Backend(BackendError::new(kind, "x"));
    for kind in [
        ErrorKind::OutcomeUnknown,
        ErrorKind::SessionGone,
        ErrorKind::Other,
    ] {
        assert!(backend(kind).is_retryable(), "{kind}");
    }
    for kind in [
        ErrorKind::NotFound,
        ErrorKind::AlreadyExists,
        ErrorKind::NotPermitted,
        ErrorKind::Invalid,
    ] {
        assert!(!backend(kind).is_retryable(), "{kind}");
    }
    assert!(!ElectionError::Stopped.is_retryable());
    assert!(!ElectionError::ClientClosed.is_retryable());
    assert!(!ElectionError::from(election_core::ConfigError::EmptyId).is_retryable());
}

/// Every public handle prints something useful with `{:?}`.
#[tokio::test(start_paused = true)]
async fn public_types_are_debug() {
    let cluster = MemCluster::new();
    let builder = Candidate::builder("/api/debug", "a").payload(b"p".to_vec());
    assert!(format!("{builder:?}").contains("CandidateBuilder"));
    let client_builder = Client::builder(cluster.clone());
    assert!(format!("{client_builder:?}").contains("ClientBuilder"));
    let client = client_builder.session_timeout(T).connect().await.unwrap();
    let a = client.join(builder.build().unwrap()).await.unwrap();
    tokio::time::timeout(T, a.wait_for_leadership())
        .await
        .unwrap()
        .unwrap();
    let observer = client.observe(a.path());
    for text in [
        format!("{client:?}"),
        format!("{a:?}"),
        format!("{observer:?}"),
        format!("{cluster:?}"),
    ] {
        assert!(text.len() > 5, "{text}");
    }
    assert!(matches!(a.current(), ElectionState::Leader { .. }));
    drop(observer);
    a.stop().await;
    client.close().await;
}
