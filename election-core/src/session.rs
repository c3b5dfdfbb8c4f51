//! The shared session: the one owner of a client's backend session. It renews the session when
//! it ends, closes it, and knows every candidate running on it, so that
//! [`Client::close`](crate::Client::close) stops them before the session goes, and stays
//! closed. Candidates' drivers, observers and the client's queries hold it; none of them calls
//! back into the [`Client`](crate::Client).

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::{FutureExt, Shared, WeakShared};
use futures_util::task::noop_waker_ref;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::backend::{BackendSession, CoordinationBackend, FencingToken, SessionId, SessionState};
use crate::error::{ElectionError, ErrorKind};
use crate::link::{Command, CommandSender};
use crate::machine::{jittered, next_random};
use crate::path::ElectionPath;

/// A client's session, shared by the client, its candidates' drivers and its observers.
#[derive(Clone)]
pub(crate) struct Session {
    inner: Arc<SessionInner>,
}

/// The candidates running on a session, by path and id (`None`: reserved, not yet running).
type Members = BTreeMap<(ElectionPath, Arc<str>), Option<Member>>;

/// A candidate running on the session: how to stop it and how to know it has (its link's
/// state receiver, whose channel closes when the candidate's driver has ended).
struct Member {
    commands: CommandSender,
}

pub(crate) struct SessionInner {
    backend: Arc<dyn CoordinationBackend>,
    timeout: Duration,
    /// The current backend session (read without waiting: `Candidate::session_id`).
    current: Mutex<Arc<dyn BackendSession>>,
    /// Held while a new session is opened: one renewal at a time.
    renewing: tokio::sync::Mutex<()>,
    /// Cancelled by `close`: no renewal after it, and observers stop.
    closed: CancellationToken,
    rng: Mutex<u64>,
    /// Jitter for the retries of drivers and observers: a stream apart from the markers', so
    /// that retries do not change which markers a seeded run uses.
    jitter: Jitter,
    members: Mutex<Members>,
    /// The highest term token seen in each election (claims and leaders read).
    tokens: Mutex<BTreeMap<ElectionPath, FencingToken>>,
    crashed: AtomicBool,
    /// The simulated process the client runs in (testing), whose pauses freeze its tasks.
    process: Option<crate::process::Process>,
    /// The latest known state of a backend session, and the change after it, shared by the
    /// drivers on that session (see [`StateChanges`]). Weak: once no driver holds it, the next
    /// one subscribes anew, and no change is kept for nobody.
    changes: Mutex<Option<(SessionId, SessionState, WeakShared<NextChange>)>>,
}

/// The changes of a backend session's state, one after the other, shared by every driver on
/// the session: each resolves to the next state and the change after it (`None` once the
/// session's channel is closed).
///
/// One waiter on the session's channel, however many candidates the session runs: a driver
/// holds 16 bytes of it, where a waiter of its own on the channel was a 144-byte future
/// (issue 12). Every driver sees every change, in order: a driver that polls late gets the
/// changes it missed one by one, each at once.
#[derive(Clone)]
pub(crate) struct StateChanges(Shared<NextChange>);

type NextChange = Pin<Box<dyn Future<Output = Option<(SessionState, StateChanges)>> + Send>>;

impl StateChanges {
    /// The changes of `state` after the value it has seen.
    fn after(mut state: watch::Receiver<SessionState>) -> Self {
        let next: NextChange = Box::pin(async move {
            state.changed().await.ok()?;
            let now = *state.borrow_and_update();
            Some((now, StateChanges::after(state)))
        });
        Self(next.shared())
    }

    /// Polls for the next change.
    pub(crate) fn poll_next(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<(SessionState, StateChanges)>> {
        Pin::new(&mut self.0).poll(cx)
    }

    /// The next change if it has come already.
    fn ready(&self) -> Option<Option<(SessionState, StateChanges)>> {
        let mut cx = std::task::Context::from_waker(noop_waker_ref());
        match self.clone().poll_next(&mut cx) {
            std::task::Poll::Ready(next) => Some(next),
            std::task::Poll::Pending => None,
        }
    }
}

impl Drop for SessionInner {
    fn drop(&mut self) {
        if self.crashed.load(Ordering::SeqCst) {
            return;
        }
        let session = self
            .current
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        // Without a runtime there is nothing to close it with: the service expires it.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { session.close().await });
        }
    }
}

impl Session {
    pub(crate) fn new(
        backend: Arc<dyn CoordinationBackend>,
        timeout: Duration,
        session: Arc<dyn BackendSession>,
        seed: u64,
        process: Option<crate::process::Process>,
    ) -> Self {
        Self {
            inner: Arc::new(SessionInner {
                backend,
                timeout,
                current: Mutex::new(session),
                renewing: tokio::sync::Mutex::new(()),
                closed: CancellationToken::new(),
                rng: Mutex::new(seed),
                jitter: Jitter::new(seed),
                members: Mutex::new(BTreeMap::new()),
                tokens: Mutex::new(BTreeMap::new()),
                crashed: AtomicBool::new(false),
                process,
                changes: Mutex::new(None),
            }),
        }
    }

    /// The simulated process the client runs in, if any (testing).
    pub(crate) fn process(&self) -> Option<crate::process::Process> {
        self.inner.process.clone()
    }

    /// The state of `session` now, and its changes after it: what a driver on it starts from.
    /// Drivers on the same session share one waiter on its state (see [`StateChanges`]).
    pub(crate) fn state_changes(
        &self,
        session: &Arc<dyn BackendSession>,
    ) -> (SessionState, StateChanges) {
        let mut latest = self.inner.changes.lock().unwrap_or_else(|e| e.into_inner());
        let shared = match &*latest {
            Some((id, state, next)) if *id == session.id() => {
                next.upgrade().map(|next| (*state, StateChanges(next)))
            }
            _ => None,
        };
        let (state, mut next) = shared.unwrap_or_else(|| {
            let mut receiver = session.state();
            let state = *receiver.borrow_and_update();
            (state, StateChanges::after(receiver))
        });
        // Up to date: the changes that came since the last driver looked. (A channel closed
        // stays the next change: the driver hears of it as before.)
        let mut state = state;
        while let Some(Some((now, after))) = next.ready() {
            state = now;
            next = after;
        }
        *latest = next.0.downgrade().map(|weak| (session.id(), state, weak));
        (state, next)
    }

    /// The current backend session (it may have ended: see [`usable`](Self::usable)).
    pub(crate) fn current(&self) -> Arc<dyn BackendSession> {
        self.inner.current.lock().expect("session lock").clone()
    }

    /// The current session, or a new one when it has expired or was closed by the backend,
    /// so that a client with no candidate (queries only) recovers. Fails once the client is
    /// closed.
    pub(crate) async fn usable(&self) -> Result<Arc<dyn BackendSession>, ElectionError> {
        if self.is_closed() {
            return Err(ElectionError::ClientClosed);
        }
        let session = self.current();
        let state = *session.state().borrow();
        match state {
            SessionState::Expired | SessionState::Closed => self.renew(session.id()).await,
            SessionState::Connected | SessionState::Disconnected { .. } => Ok(session),
        }
    }

    /// Replaces the session `old` by a new one, unless another caller already did. Fails with
    /// [`ElectionError::ClientClosed`] once the client is closed: nothing reopens it.
    pub(crate) async fn renew(
        &self,
        old: SessionId,
    ) -> Result<Arc<dyn BackendSession>, ElectionError> {
        let _one_at_a_time = self.inner.renewing.lock().await;
        if self.is_closed() {
            return Err(ElectionError::ClientClosed);
        }
        let current = self.current();
        if current.id() != old {
            return Ok(current);
        }
        let fresh = self.inner.backend.open_session(self.inner.timeout).await?;
        if self.is_closed() {
            // Closed while the new session was being opened: it is not ours to keep.
            fresh.close().await;
            return Err(ElectionError::ClientClosed);
        }
        info!(old = %old, session = %fresh.id(), "session renewed");
        *self.inner.current.lock().expect("session lock") = fresh.clone();
        Ok(fresh)
    }

    /// `true` once [`close`](Self::close) began.
    pub(crate) fn is_closed(&self) -> bool {
        self.inner.closed.is_cancelled()
    }

    /// Completes when [`close`](Self::close) begins.
    pub(crate) fn closing(&self) -> CancellationToken {
        self.inner.closed.clone()
    }

    /// Closes for good, in order: no renewal from now on and observers stop; every candidate is
    /// stopped as `stop` would stop it (leader work ended and awaited, entry deleted); then the
    /// backend session is closed. A successor's work therefore never starts before ours ended
    /// (S4). Idempotent; later joins fail with [`ElectionError::ClientClosed`].
    pub(crate) async fn close(&self) {
        let members: Vec<Arc<crate::link::Link>> = {
            let mut members = self.inner.members.lock().expect("members lock");
            self.inner.closed.cancel();
            members
                .values_mut()
                .filter_map(Option::take)
                .map(|m| {
                    let _ = m.commands.send(Command::Close);
                    m.commands.shared()
                })
                .collect()
        };
        if !members.is_empty() {
            info!(session = %self.current().id(), candidates = members.len(), "client closing: stopping its candidates first");
        }
        for done in members {
            done.state.ended().await;
        }
        let session = self.current();
        info!(session = %session.id(), "client closed");
        session.close().await;
    }

    /// Draws the next marker prefix.
    pub(crate) fn next_random(&self) -> u64 {
        // splitmix64: small, seedable, good enough for unique markers.
        next_random(&mut self.inner.rng.lock().expect("rng lock"))
    }

    /// `backoff` with jitter (between half of it and all of it), for the retries of drivers
    /// and observers: a fleet that failed together does not retry in step. Seeded with the
    /// client, so a seeded simulation replays.
    pub(crate) fn jittered(&self, backoff: Duration) -> Duration {
        self.inner.jitter.delay(backoff)
    }

    /// Reserves `(path, id)` for a candidate about to run; fails when one runs already, or once
    /// the client is closed.
    pub(crate) fn reserve_member(
        &self,
        path: &ElectionPath,
        id: &Arc<str>,
    ) -> Result<(), ElectionError> {
        let mut members = self.inner.members.lock().expect("members lock");
        if self.is_closed() {
            return Err(ElectionError::ClientClosed);
        }
        let key = (path.clone(), id.clone());
        if members.contains_key(&key) {
            return Err(ElectionError::Duplicate {
                path: path.to_string(),
                id: id.to_string(),
            });
        }
        members.insert(key, None);
        Ok(())
    }

    /// Registers the running candidate reserved as `(path, id)`, for `close` to stop it. A
    /// close that began meanwhile is passed on at once.
    pub(crate) fn register_member(
        &self,
        path: &ElectionPath,
        id: &Arc<str>,
        commands: CommandSender,
    ) {
        let mut members = self.inner.members.lock().expect("members lock");
        if self.is_closed() {
            let _ = commands.send(Command::Close);
            return;
        }
        if let Some(slot) = members.get_mut(&(path.clone(), id.clone())) {
            *slot = Some(Member { commands });
        }
    }

    pub(crate) fn release_member(&self, path: &ElectionPath, id: &Arc<str>) {
        self.inner
            .members
            .lock()
            .expect("members lock")
            .remove(&(path.clone(), id.clone()));
    }

    /// Records a term token seen in `path`; the highest one seen before when `token` is lower
    /// (tokens only go back when the service lost its data), after which `token` is the new
    /// reference, so that one regression is reported once.
    pub(crate) fn note_token(
        &self,
        path: &ElectionPath,
        token: FencingToken,
    ) -> Option<FencingToken> {
        let mut tokens = self.inner.tokens.lock().expect("tokens lock");
        let last = tokens.insert(path.clone(), token);
        match last {
            Some(last) if token < last => Some(last),
            Some(last) => {
                tokens.insert(path.clone(), last.max(token));
                None
            }
            None => None,
        }
    }

    /// The process "crashed" (`Candidate::abort`): the session is not closed when dropped.
    #[cfg(feature = "testing")]
    pub(crate) fn mark_crashed(&self) {
        self.inner.crashed.store(true, Ordering::SeqCst);
    }

    /// Deletes, once `session` has contact, every entry in `path` that it owns under a marker
    /// starting with `prefix`: what a stopped candidate may have left on a session that lives
    /// on (a create still queued when its stop ran out of time, an entry it could not delete).
    /// One listing sent after the candidate stopped is enough: a session's requests are
    /// applied in order. Ends when done, when the session ends (its entries went with it), or
    /// when the client is gone (it closes the session).
    pub(crate) fn sweep_later(
        &self,
        path: ElectionPath,
        session: &Arc<dyn BackendSession>,
        prefix: u32,
    ) {
        info!(path = %path, session = %session.id(), prefix = %format_args!("{prefix:08x}"), "sweeping a stopped candidate's entries when the session has contact");
        tokio::spawn(sweep(
            Arc::downgrade(&self.inner),
            path,
            Arc::downgrade(session),
            session.state(),
            format!("{prefix:08x}"),
        ));
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.current().id())
            .field("timeout", &self.inner.timeout)
            .field("closed", &self.is_closed())
            .finish()
    }
}

async fn sweep(
    owner: std::sync::Weak<SessionInner>,
    path: ElectionPath,
    session: std::sync::Weak<dyn BackendSession>,
    mut state: watch::Receiver<SessionState>,
    prefix: String,
) {
    let mut backoff = Duration::from_millis(50);
    loop {
        loop {
            match *state.borrow_and_update() {
                SessionState::Connected => break,
                SessionState::Expired | SessionState::Closed => return,
                SessionState::Disconnected { .. } => {}
            }
            if state.changed().await.is_err() {
                return;
            }
        }
        // Held only for one attempt: a sweep neither keeps the client alive nor the session
        // open (a client that went away without closing it is a crash, as it should be).
        let (Some(owner), Some(session)) = (owner.upgrade(), session.upgrade()) else {
            return;
        };
        let result = async {
            let listing = session.list(&path).await?;
            let ours = listing
                .entries
                .iter()
                .filter(|e| e.owner == session.id() && e.marker.as_str().starts_with(&prefix));
            for e in ours {
                match session.delete(&path, &e.name).await {
                    Ok(()) => {
                        info!(path = %path, session = %session.id(), entry = %e.name, "entry of a stopped candidate removed")
                    }
                    Err(err) if err.kind() == ErrorKind::NotFound => {}
                    Err(err) => return Err(err),
                }
            }
            Ok(())
        }
        .await;
        match result {
            Ok(()) => return,
            Err(e) if e.kind() == ErrorKind::SessionGone => return,
            Err(e) if matches!(e.kind(), ErrorKind::NotPermitted | ErrorKind::Invalid) => {
                tracing::error!(path = %path, session = %session.id(), error = %e, "an entry of a stopped candidate cannot be deleted: closing the session so that the service deletes it");
                session.close().await;
                return;
            }
            Err(e) => {
                let delay = owner.jitter.delay(backoff);
                tracing::warn!(path = %path, session = %session.id(), error = %e, delay = ?delay, "sweep failed; retrying");
                drop((owner, session));
                tokio::time::sleep(delay).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// A seeded source of retry jitter.
struct Jitter(Mutex<u64>);

impl Jitter {
    fn new(seed: u64) -> Self {
        Self(Mutex::new(seed ^ 0xbb67_ae85_84ca_a73b))
    }

    /// `backoff` with "equal jitter": somewhere in `[backoff / 2, backoff]`.
    fn delay(&self, backoff: Duration) -> Duration {
        jittered(
            backoff,
            next_random(&mut self.0.lock().expect("jitter lock")),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 17, point 8: the retries of drivers (new sessions) and observers are jittered per
    /// client, reproducibly for a seed.
    #[test]
    fn retry_delays_are_jittered_per_client_seed() {
        let b = Duration::from_millis(100);
        let delays = |j: Jitter| (0..4).map(|_| j.delay(b)).collect::<Vec<_>>();
        let one = delays(Jitter::new(1));
        assert_eq!(one, delays(Jitter::new(1)));
        let two = delays(Jitter::new(2));
        assert_ne!(one, two);
        assert!(one.iter().chain(&two).all(|d| *d >= b / 2 && *d <= b));
        assert!(one.windows(2).any(|w| w[0] != w[1]), "{one:?}");
    }

    /// Every holder of the changes sees every change, in order, however late it polls; the
    /// channel's end comes out as `None`; one waiter on the channel serves them all.
    #[tokio::test]
    async fn shared_state_changes_reach_every_driver_in_order() {
        use std::future::poll_fn;
        let (tx, mut rx) = watch::channel(SessionState::Connected);
        rx.borrow_and_update();
        let early = StateChanges::after(rx);
        let late = early.clone();
        let at = tokio::time::Instant::now();
        let changes = [
            SessionState::Disconnected { last_contact: at },
            SessionState::Connected,
            SessionState::Expired,
        ];
        let mut early = early;
        let mut seen = Vec::new();
        for change in changes {
            tx.send_replace(change);
            let (state, next) = poll_fn(|cx| early.poll_next(cx)).await.expect("a change");
            seen.push(state);
            early = next;
        }
        assert_eq!(seen, changes);
        // The one that polls only now gets the three, one by one, at once.
        let mut late = late;
        for change in changes {
            let (state, next) = late.ready().expect("ready").expect("a change");
            assert_eq!(state, change);
            late = next;
        }
        assert!(late.ready().is_none(), "no fourth change");
        // One receiver for all: the first `after` keeps the only one.
        assert_eq!(tx.receiver_count(), 1);
        drop(tx);
        assert!(poll_fn(|cx| early.poll_next(cx)).await.is_none());
        assert!(matches!(late.ready(), Some(None)));
    }
}
