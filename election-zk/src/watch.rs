//! Notifications: a ZooKeeper one-shot watch turned into the election's [`Notification`], a
//! `'static` future that resolves `Ok(())` on the change and `Err(SessionGone)` when the session
//! ends first.
//!
//! An armed watch is a plain future, polled by whoever awaits the notification (a candidate's
//! driver): the client's session task wakes that task directly when the event comes, with no
//! task of our own in between (one task hop less on every hand-over). Dropping the notification
//! drops the client's watcher, which removes the watch on the client. The client's one-shot
//! receiver panics if the client's session task is torn down (at runtime shutdown) without
//! delivering an event: that panic is caught here and comes out as `SessionGone` instead.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Mutex, Weak};

use election_core::metrics::HANDOVER_TARGET;
use election_core::{BackendError, ErrorKind, Notification, SessionId};
use futures_util::future::{self, Either};
use futures_util::FutureExt;
use zookeeper_client as zk;

use crate::error::{backend_error, classify};

/// The client of a session, shared with its armed watches; `None` once the session is closed.
pub(crate) type ClientSlot = Mutex<Option<zk::Client>>;

/// The watch as a notification; a panic of the client's receiver ends it as `SessionGone`.
fn notification(
    watch: impl Future<Output = Result<(), BackendError>> + Send + 'static,
) -> Notification {
    Box::pin(AssertUnwindSafe(watch).catch_unwind().map(|out| match out {
        Ok(result) => result,
        Err(_) => Err(BackendError::new(
            ErrorKind::SessionGone,
            "the watch ended with the client's session task",
        )),
    }))
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
    notification(async move {
        let event = watcher.changed().await;
        match event.event_type {
            zk::EventType::Session => Err(session_ended(event.session_state, &path)),
            _ => Ok(()),
        }
    })
}

/// A notification that fires when the watched node is deleted. An exists watch also fires on
/// data changes: those re-arm it.
///
/// An armed watch is what a candidate holds for as long as it holds its entry (its own entry's
/// watch), so the waiting future holds only what it waits on: the client's watcher, and the
/// client's slot for a re-arm. The node's path comes with the event (relative to the chroot, as
/// the client takes paths), the session's id and timeout from the client: none is kept (issue
/// 12: 312 bytes a watch before, and the path's copy besides). The re-arm, rare, runs in a box
/// of its own.
pub(crate) fn on_deleted(watcher: zk::OneshotWatcher, slot: Weak<ClientSlot>) -> Notification {
    notification(deleted(watcher, slot))
}

/// [`on_deleted`]'s future: the client's `changed` future, then an answer at hand, or the
/// boxed re-arm. Combinators, not an `async` block: that one kept the event beside the client's
/// future (264 bytes against 184).
fn deleted(
    watcher: zk::OneshotWatcher,
    slot: Weak<ClientSlot>,
) -> impl Future<Output = Result<(), BackendError>> + Send + 'static {
    watcher.changed().then(move |event| match event.event_type {
        zk::EventType::NodeDeleted => {
            tracing::trace!(target: HANDOVER_TARGET, leg = "watch_fired", path = %event.path, session = %session_of(&slot));
            Either::Left(future::ready(Ok(())))
        }
        zk::EventType::Session => Either::Left(future::ready(Err(session_ended(
            event.session_state,
            "an entry",
        )))),
        zk::EventType::NodeCreated
        | zk::EventType::NodeDataChanged
        | zk::EventType::NodeChildrenChanged => {
            Either::Right(Box::pin(until_deleted(slot, event.path)))
        }
    })
}

/// The session's id, for the hand-over checkpoint (only evaluated when that target is on).
fn session_of(slot: &Weak<ClientSlot>) -> SessionId {
    client_of(slot)
        .map(|c| SessionId(c.session_id().0 as u64))
        .unwrap_or(SessionId(0))
}

/// The session's client, while the session is open.
fn client_of(slot: &Weak<ClientSlot>) -> Option<zk::Client> {
    slot.upgrade()
        .and_then(|slot| slot.lock().unwrap_or_else(|e| e.into_inner()).clone())
}

/// After a data change on the node at `path`: the exists watch set again, and waited on, until
/// the node is deleted or the session ends.
async fn until_deleted(slot: Weak<ClientSlot>, path: String) -> Result<(), BackendError> {
    loop {
        let Some(watcher) = rearm(&slot, &path).await? else {
            // Deleted meanwhile.
            return Ok(());
        };
        let event = watcher.changed().await;
        match event.event_type {
            zk::EventType::NodeDeleted => {
                tracing::trace!(target: HANDOVER_TARGET, leg = "watch_fired", path = %path, session = %session_of(&slot));
                return Ok(());
            }
            zk::EventType::Session => return Err(session_ended(event.session_state, &path)),
            zk::EventType::NodeCreated
            | zk::EventType::NodeDataChanged
            | zk::EventType::NodeChildrenChanged => {}
        }
    }
}

/// Sets the exists watch on `path` again: the new watcher, or `None` when the node is gone.
/// Retries (every twentieth of the session timeout, each try bounded by the timeout) while the
/// outcome is unknown.
async fn rearm(
    slot: &Weak<ClientSlot>,
    path: &str,
) -> Result<Option<zk::OneshotWatcher>, BackendError> {
    loop {
        let client = client_of(slot).ok_or_else(|| {
            BackendError::new(
                ErrorKind::SessionGone,
                format!("watch on {path}: session closed"),
            )
        })?;
        let bound = client.session_timeout();
        match tokio::time::timeout(bound, client.check_and_watch_stat(path)).await {
            Ok(Ok((None, _))) => return Ok(None),
            Ok(Ok((Some(_), watcher))) => return Ok(Some(watcher)),
            Ok(Err(e)) if classify(&e) == ErrorKind::OutcomeUnknown => {}
            Ok(Err(e)) => return Err(backend_error("re-arm watch", path, e)),
            Err(_) => {}
        }
        tokio::time::sleep(bound / 20).await;
    }
}
