//! Notifications: a ZooKeeper one-shot watch turned into the election's [`Notification`], a
//! `'static` future that resolves `Ok(())` on the change and `Err(SessionGone)` when the session
//! ends first.
//!
//! Each armed watch waits in its own small tokio task, aborted when the notification is dropped
//! (which removes the watch on the client). The task shields the caller from the client's
//! one-shot receiver, which panics if the client's session task is torn down (at runtime
//! shutdown) without delivering an event: that comes out as `SessionGone` instead.

use std::future::Future;
use std::sync::{Mutex, Weak};
use std::time::Duration;

use election_core::metrics::HANDOVER_TARGET;
use election_core::{BackendError, ErrorKind, Notification, SessionId};
use tokio::task::JoinHandle;
use zookeeper_client as zk;

use crate::error::{backend_error, classify};

/// The client of a session, shared with its armed watches; `None` once the session is closed.
pub(crate) type ClientSlot = Mutex<Option<zk::Client>>;

struct AbortOnDrop(JoinHandle<Result<(), BackendError>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn spawn(task: impl Future<Output = Result<(), BackendError>> + Send + 'static) -> Notification {
    let mut guard = AbortOnDrop(tokio::spawn(task));
    Box::pin(async move {
        match (&mut guard.0).await {
            Ok(result) => result,
            Err(e) => Err(BackendError::with_source(
                ErrorKind::SessionGone,
                "the watch ended with the client's runtime",
                e,
            )),
        }
    })
}

fn session_ended(state: zk::SessionState, path: &str) -> BackendError {
    BackendError::new(
        ErrorKind::SessionGone,
        format!("watch on {path}: session ended ({state})"),
    )
}

/// A notification that fires on any change the watcher reports (used for the children of an
/// election directory, or its creation).
pub(crate) fn on_any_change(watcher: zk::OneshotWatcher, path: String) -> Notification {
    spawn(async move {
        let event = watcher.changed().await;
        match event.event_type {
            zk::EventType::Session => Err(session_ended(event.session_state, &path)),
            _ => Ok(()),
        }
    })
}

/// A notification that fires when the node at `path` is deleted. An exists watch also fires on
/// data changes: those re-arm it.
pub(crate) fn on_deleted(
    watcher: zk::OneshotWatcher,
    slot: Weak<ClientSlot>,
    path: String,
    session: SessionId,
    bound: Duration,
) -> Notification {
    spawn(async move {
        let mut watcher = watcher;
        loop {
            let event = watcher.changed().await;
            match event.event_type {
                zk::EventType::NodeDeleted => {
                    tracing::trace!(target: HANDOVER_TARGET, leg = "watch_fired", path = %path, session = %session);
                    return Ok(());
                }
                zk::EventType::Session => return Err(session_ended(event.session_state, &path)),
                zk::EventType::NodeCreated
                | zk::EventType::NodeDataChanged
                | zk::EventType::NodeChildrenChanged => {}
            }
            watcher = loop {
                let client = slot
                    .upgrade()
                    .and_then(|slot| slot.lock().unwrap_or_else(|e| e.into_inner()).clone())
                    .ok_or_else(|| {
                        BackendError::new(
                            ErrorKind::SessionGone,
                            format!("watch on {path}: session closed"),
                        )
                    })?;
                match tokio::time::timeout(bound, client.check_and_watch_stat(&path)).await {
                    Ok(Ok((None, _))) => return Ok(()),
                    Ok(Ok((Some(_), watcher))) => break watcher,
                    Ok(Err(e)) if classify(&e) == ErrorKind::OutcomeUnknown => {}
                    Ok(Err(e)) => return Err(backend_error("re-arm watch", &path, e)),
                    Err(_) => {}
                }
                tokio::time::sleep(bound / 20).await;
            };
        }
    })
}
