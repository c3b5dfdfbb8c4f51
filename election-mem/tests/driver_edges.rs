//! Issue 18, point 2: a panic in a backend call the candidate's driver polls must not wedge the
//! election. Before, the driver task died: the candidate stayed as it was with its entry at the
//! head of the queue, nobody else led, and `stop()` returned at once with nothing withdrawn.
//! Now the candidate stops with `Stopped(Failed)` saying why, and its entry is withdrawn.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use election_core::backend::{BackendSession, CoordinationBackend};
use election_core::{
    BackendError, Candidate, ElectionError, ElectionPath, ElectionState, EntryInfo, Listing,
    Marker, Notification, SessionId, SessionState, StopReason, Watch,
};
use election_mem::MemCluster;
use tokio::sync::watch;

const T: Duration = Duration::from_secs(3);
const P: &str = "/driver-panic/leader";

/// The in-memory backend, with a delete that panics once when armed.
struct Panicky {
    inner: Arc<dyn CoordinationBackend>,
    armed: Arc<AtomicBool>,
}

struct PanickySession {
    inner: Arc<dyn BackendSession>,
    armed: Arc<AtomicBool>,
}

#[async_trait]
impl CoordinationBackend for Panicky {
    async fn open_session(
        &self,
        timeout: Duration,
    ) -> Result<Arc<dyn BackendSession>, BackendError> {
        let inner = self.inner.open_session(timeout).await?;
        Ok(Arc::new(PanickySession {
            inner,
            armed: self.armed.clone(),
        }))
    }
}

#[async_trait]
impl BackendSession for PanickySession {
    fn id(&self) -> SessionId {
        self.inner.id()
    }
    fn timeout(&self) -> Duration {
        self.inner.timeout()
    }
    fn state(&self) -> watch::Receiver<SessionState> {
        self.inner.state()
    }
    async fn create(
        &self,
        dir: &ElectionPath,
        marker: &Marker,
        data: &[u8],
    ) -> Result<EntryInfo, BackendError> {
        self.inner.create(dir, marker, data).await
    }
    async fn list(&self, dir: &ElectionPath) -> Result<Listing, BackendError> {
        self.inner.list(dir).await
    }
    async fn list_and_watch(
        &self,
        dir: &ElectionPath,
    ) -> Result<(Listing, Notification), BackendError> {
        self.inner.list_and_watch(dir).await
    }
    async fn watch_gone(&self, dir: &ElectionPath, name: &str) -> Result<Watch, BackendError> {
        self.inner.watch_gone(dir, name).await
    }
    async fn read(
        &self,
        dir: &ElectionPath,
        name: &str,
    ) -> Result<Option<EntryInfo>, BackendError> {
        self.inner.read(dir, name).await
    }
    async fn delete(&self, dir: &ElectionPath, name: &str) -> Result<(), BackendError> {
        if self.armed.swap(false, Ordering::SeqCst) {
            panic!("injected panic in delete");
        }
        self.inner.delete(dir, name).await
    }
    async fn close(&self) {
        self.inner.close().await
    }
}

#[tokio::test(start_paused = true)]
async fn a_panic_in_a_backend_call_stops_the_candidate_and_withdraws_its_entry() {
    let cluster = MemCluster::new();
    let armed = Arc::new(AtomicBool::new(false));
    let backend: Arc<dyn CoordinationBackend> = Arc::new(Panicky {
        inner: cluster.backend(),
        armed: armed.clone(),
    });
    let a = Candidate::builder(P, "a")
        .session_timeout(T)
        .on_leader(|term| async move { term.cancelled().await })
        .join(backend)
        .await
        .unwrap();
    tokio::time::timeout(T, a.wait_for_leadership())
        .await
        .unwrap_or_else(|e| Err(e.into()))
        .unwrap();
    let b = Candidate::builder(P, "b")
        .session_timeout(T)
        .join(cluster.backend())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(b.participants().await.unwrap().len(), 2);
    armed.store(true, Ordering::SeqCst);
    // The resignation's delete panics in a's driver.
    assert!(matches!(a.resign().await, Err(ElectionError::Stopped)));
    match a.current() {
        ElectionState::Stopped(StopReason::Failed(why)) => {
            assert!(why.contains("injected panic in delete"), "{why}")
        }
        other => panic!("a is {other:?}, not Stopped(Failed)"),
    }
    // Its entry is withdrawn: b leads, alone in the queue.
    tokio::time::timeout(T, b.wait_for_leadership())
        .await
        .unwrap_or_else(|e| Err(e.into()))
        .expect("b leads");
    let ids: Vec<String> = b
        .participants()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(ids, ["b"]);
    a.stop().await;
    b.stop().await;
}

/// Issue 18, point 3: `stop()` returned while aborted work still ran (the driver ended without
/// awaiting it): here the session ends while the candidate leads with work that ignores its
/// cancellation, and the candidate does not rejoin, so it finishes at once with the work
/// aborted. On a multi-threaded runtime the caller of `stop()` then ran before the aborted
/// work was even dropped. Now the driver awaits the work before it ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_returns_only_after_aborted_work_has_ended() {
    for round in 0..20 {
        let cluster = MemCluster::new();
        let ended = Arc::new(AtomicBool::new(false));
        struct Ended(Arc<AtomicBool>);
        impl Drop for Ended {
            fn drop(&mut self) {
                // Dropping takes a moment (a flush, say).
                std::thread::sleep(Duration::from_millis(20));
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let flag = ended.clone();
        let a = Candidate::builder(P, "a")
            .session_timeout(T)
            .rejoin_on_expiry(false)
            .on_leader(move |_term| {
                let guard = Ended(flag.clone());
                async move {
                    let _guard = guard;
                    // Ignores its cancellation.
                    std::future::pending::<()>().await
                }
            })
            .join(cluster.backend())
            .await
            .unwrap();
        tokio::time::timeout(T, a.wait_for_leadership())
            .await
            .unwrap_or_else(|e| Err(e.into()))
            .unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        cluster.expire_session(a.client().session().await.id());
        a.stop().await;
        assert!(a.current().is_stopped(), "{:?}", a.current());
        assert!(
            ended.load(Ordering::SeqCst),
            "round {round}: stop() returned while the aborted work was still running"
        );
    }
}

/// Issue 18, point 5: `leave()` called from the candidate's own leader work returns at once
/// (it waited for the work, which waited for it, until the grace ran out and the work was
/// aborted) and takes effect as the work returns: the candidate leaves for good, nothing stays.
#[tokio::test(start_paused = true)]
async fn leave_from_inside_the_work_returns_at_once_and_takes_effect() {
    let cluster = MemCluster::new();
    let (handle_tx, handle_rx) = watch::channel(None::<Arc<Candidate>>);
    let went_on = Arc::new(AtomicBool::new(false));
    let flag = went_on.clone();
    let a = Candidate::builder(P, "a")
        .session_timeout(T)
        .on_leader(move |term| {
            let (mut handle, flag) = (handle_rx.clone(), flag.clone());
            async move {
                let me = handle
                    .wait_for(Option::is_some)
                    .await
                    .unwrap()
                    .clone()
                    .unwrap();
                let started = tokio::time::Instant::now();
                me.leave().await.expect("leave from the work");
                assert_eq!(started.elapsed(), Duration::ZERO, "leave waited");
                term.cancelled().await;
                flag.store(true, Ordering::SeqCst);
            }
        })
        .join(cluster.backend())
        .await
        .unwrap();
    let a = Arc::new(a);
    let mut events = a.events();
    tokio::time::timeout(T, a.wait_for_leadership())
        .await
        .unwrap_or_else(|e| Err(e.into()))
        .unwrap();
    let b = Candidate::builder(P, "b")
        .session_timeout(T)
        .join(cluster.backend())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    handle_tx.send_replace(Some(a.clone()));
    tokio::time::timeout(T, b.wait_for_leadership())
        .await
        .unwrap_or_else(|e| Err(e.into()))
        .expect("b leads");
    assert!(went_on.load(Ordering::SeqCst), "the work was aborted");
    assert_eq!(a.current(), ElectionState::Stopped(StopReason::Resigned));
    while let Ok(e) = events.try_recv() {
        assert!(
            !matches!(
                e,
                election_core::Event::Notice {
                    notice: election_core::Notice::WorkOverranGrace(_),
                    ..
                }
            ),
            "the work overran its grace"
        );
    }
    let ids: Vec<String> = b
        .participants()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert_eq!(ids, ["b"]);
    handle_tx.send_replace(None);
    b.stop().await;
}
