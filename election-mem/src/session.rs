//! A client's session on the in-memory service: the [`BackendSession`] candidates use.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use election_core::{
    BackendError, BackendSession, Compatibility, ElectionPath, EntryInfo, ErrorKind, Listing,
    Marker, Notification, SessionId, SessionState, Watch,
};
use tokio::sync::{oneshot, watch};

use crate::server::{MemCluster, Permission};

/// A session on a [`MemCluster`]. Dropping it without [`close`](BackendSession::close) is a
/// client that went away: the service expires the session after its timeout.
pub struct MemSession {
    cluster: MemCluster,
    id: SessionId,
    timeout: Duration,
    state: watch::Receiver<SessionState>,
    closed: AtomicBool,
}

impl MemSession {
    pub(crate) fn new(
        cluster: MemCluster,
        id: SessionId,
        timeout: Duration,
        state: watch::Receiver<SessionState>,
    ) -> Self {
        Self {
            cluster,
            id,
            timeout,
            state,
            closed: AtomicBool::new(false),
        }
    }

    /// Waits while the client is paused: it resumes when its pause ends.
    async fn wait_out_pause(&self) {
        loop {
            let paused_until = self.cluster.server().paused_until(self.id);
            match paused_until {
                Some(until) => tokio::time::sleep_until(until).await,
                None => break,
            }
        }
    }

    /// Waits the configured latency, then while the client is paused, then hangs for ever if it
    /// is frozen (crashed).
    async fn enter(&self) {
        let latency = self.cluster.server().latency;
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        self.wait_out_pause().await;
        if self.cluster.server().is_frozen(self.id) {
            std::future::pending::<()>().await;
        }
    }
}

fn notification(rx: oneshot::Receiver<Result<(), BackendError>>) -> Notification {
    Box::pin(async move {
        rx.await
            .unwrap_or_else(|_| Err(BackendError::new(ErrorKind::SessionGone, "session ended")))
    })
}

impl MemSession {
    /// Creates our entry with `marker`, in our own shape or `mode`'s (as ZooKeeper's backend
    /// names them).
    async fn create_named(
        &self,
        dir: &ElectionPath,
        marker: &Marker,
        mode: Option<Compatibility>,
        data: &[u8],
    ) -> Result<EntryInfo, BackendError> {
        self.enter().await;
        let mut s = self.cluster.server();
        s.writable(self.id)?;
        if s.session_usable(self.id).is_ok() {
            s.permitted(dir.as_str(), Permission::Create)?;
        }
        s.create(self.id, dir.as_str(), marker, mode, data)
    }
}

#[async_trait]
impl BackendSession for MemSession {
    fn id(&self) -> SessionId {
        self.id
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn state(&self) -> watch::Receiver<SessionState> {
        // A channel of its own for each caller (see `StateTx`): deterministic wake-up order.
        self.cluster
            .server()
            .sessions
            .get(&self.id)
            .map(|rec| rec.state.subscribe())
            .unwrap_or_else(|| self.state.clone())
    }

    async fn create(
        &self,
        dir: &ElectionPath,
        marker: &Marker,
        data: &[u8],
    ) -> Result<EntryInfo, BackendError> {
        self.create_named(dir, marker, None, data).await
    }

    async fn create_compatible(
        &self,
        dir: &ElectionPath,
        marker: &Marker,
        mode: Compatibility,
        data: &[u8],
    ) -> Result<EntryInfo, BackendError> {
        self.create_named(dir, marker, Some(mode), data).await
    }

    async fn list(&self, dir: &ElectionPath) -> Result<Listing, BackendError> {
        self.enter().await;
        let mut s = self.cluster.server();
        s.stats.lists += 1;
        if s.stale_view(self.id).is_none() {
            s.session_usable(self.id)?;
            s.permitted(dir.as_str(), Permission::List)?;
        }
        Ok(s.listing_for(self.id, dir.as_str()))
    }

    async fn list_and_watch(
        &self,
        dir: &ElectionPath,
    ) -> Result<(Listing, Notification), BackendError> {
        self.enter().await;
        let mut s = self.cluster.server();
        s.stats.list_watches += 1;
        if s.stale_view(self.id).is_some() {
            let listing = s.listing_for(self.id, dir.as_str());
            let rx = s.watch_on_heal(self.id, None);
            return Ok((listing, notification(rx)));
        }
        s.session_usable(self.id)?;
        s.permitted(dir.as_str(), Permission::List)?;
        let listing = s.listing(dir.as_str());
        let rx = s.watch_children(self.id, dir.as_str());
        Ok((listing, notification(rx)))
    }

    async fn watch_gone(&self, dir: &ElectionPath, name: &str) -> Result<Watch, BackendError> {
        self.enter().await;
        let mut s = self.cluster.server();
        s.stats.watches += 1;
        if s.stale_view(self.id).is_some() {
            return Ok(if s.exists_for(self.id, dir.as_str(), name) {
                let path = format!("{}/{name}", dir.as_str());
                Watch::Armed(notification(s.watch_on_heal(self.id, Some(path))))
            } else {
                Watch::Gone
            });
        }
        s.session_usable(self.id)?;
        if s.is_lookalike(dir.as_str(), name) {
            return Ok(Watch::NotAnEntry);
        }
        Ok(match s.watch_gone(self.id, dir.as_str(), name) {
            Some(rx) => Watch::Armed(notification(rx)),
            None => Watch::Gone,
        })
    }

    async fn read(
        &self,
        dir: &ElectionPath,
        name: &str,
    ) -> Result<Option<EntryInfo>, BackendError> {
        self.enter().await;
        let mut s = self.cluster.server();
        s.stats.reads += 1;
        if s.stale_view(self.id).is_none() {
            s.session_usable(self.id)?;
            s.permitted(dir.as_str(), Permission::Read)?;
        }
        Ok(s.read_for(self.id, dir.as_str(), name))
    }

    async fn delete(&self, dir: &ElectionPath, name: &str) -> Result<(), BackendError> {
        self.enter().await;
        let mut s = self.cluster.server();
        s.writable(self.id)?;
        s.session_usable(self.id)?;
        s.permitted(dir.as_str(), Permission::Delete)?;
        s.delete(dir.as_str(), name)
    }

    async fn close(&self) {
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        // A paused process sends its close when it wakes.
        self.wait_out_pause().await;
        let mut s = self.cluster.server();
        // A cut-off or crashed client cannot reach the service: the session expires by itself.
        if s.session_usable(self.id).is_ok() && s.writable(self.id).is_ok() {
            s.expire(self.id, true);
        } else if let Some(rec) = s.sessions.get(&self.id) {
            rec.state.send_replace(SessionState::Closed);
        }
    }
}

impl std::fmt::Debug for MemSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemSession")
            .field("id", &self.id)
            .field("timeout", &self.timeout)
            .field("state", &*self.state.borrow())
            .finish_non_exhaustive()
    }
}

impl Drop for MemSession {
    fn drop(&mut self) {
        if !self.closed.load(Ordering::SeqCst) {
            // The client is gone without a word: the service stops hearing it.
            let mut s = self.cluster.server();
            s.lose_contact(self.id, false);
            if let Some(rec) = s.sessions.get_mut(&self.id) {
                rec.client_alive = false;
            }
        }
    }
}
