//! The client: one backend session shared by any number of candidates and observers (several
//! elections over one session), renewed when it ends, and the queries that need no candidate.

use std::collections::hash_map::RandomState;
use std::collections::BTreeSet;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::Instant;
use tracing::info;

use crate::backend::{BackendSession, CoordinationBackend, FencingToken, SessionId};
use crate::candidate::Candidate;
use crate::config::{validate_session_timeout, CandidateConfig, DEFAULT_SESSION_TIMEOUT};
use crate::driver::{Driver, Outlets};
use crate::error::{ElectionError, ErrorKind};
use crate::machine::{jittered, next_random, Machine, MachineConfig};
use crate::observer::Observer;
use crate::path::ElectionPath;
use crate::record::CandidateRecord;
use crate::state::{LeaderInfo, Participant};

/// A session on a backend, shared by the candidates and observers made from it.
///
/// Cloning is cheap; the session is closed when the last clone, candidate and observer are gone
/// (or on [`close`](Self::close)). When the session ends, the first candidate to notice opens a
/// new one and the others move to it.
///
/// ```
/// use election_core::{Candidate, Client};
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), election_core::ElectionError> {
/// let backend = election_mem::MemCluster::new().backend();
/// let client = Client::connect(backend, std::time::Duration::from_secs(10)).await?;
/// let scheduler = client.join(Candidate::builder("/jobs/scheduler", "node-1").build()?).await?;
/// let compactor = client.join(Candidate::builder("/jobs/compactor", "node-1").build()?).await?;
/// scheduler.stop().await;
/// compactor.stop().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<ClientInner>,
}

struct ClientInner {
    backend: Arc<dyn CoordinationBackend>,
    timeout: Duration,
    session: tokio::sync::Mutex<Arc<dyn BackendSession>>,
    rng: Mutex<u64>,
    /// Jitter for the retries of drivers and observers: a stream apart from the markers', so
    /// that retries do not change which markers a seeded run uses.
    jitter: Jitter,
    members: Mutex<BTreeSet<(ElectionPath, String)>>,
    /// The highest term token seen in each election (claims and leaders read).
    tokens: Mutex<std::collections::BTreeMap<ElectionPath, FencingToken>>,
    crashed: std::sync::atomic::AtomicBool,
}

impl Drop for ClientInner {
    fn drop(&mut self) {
        if self.crashed.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let session = self.session.get_mut().clone();
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { session.close().await });
        }
    }
}

/// Builds a [`Client`].
#[must_use]
pub struct ClientBuilder {
    backend: Arc<dyn CoordinationBackend>,
    timeout: Duration,
    seed: Option<u64>,
}

impl ClientBuilder {
    /// The session timeout asked of the backend (default 10 s).
    pub fn session_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Seeds the markers this client puts into entry names, for reproducible simulation runs.
    /// Without it they are random.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Opens the session.
    pub async fn connect(self) -> Result<Client, ElectionError> {
        validate_session_timeout(self.timeout)?;
        let session = self.backend.open_session(self.timeout).await?;
        info!(session = %session.id(), timeout = ?session.timeout(), "session opened");
        let seed = self
            .seed
            .unwrap_or_else(|| RandomState::new().hash_one(std::process::id()));
        Ok(Client {
            inner: Arc::new(ClientInner {
                backend: self.backend,
                timeout: self.timeout,
                session: tokio::sync::Mutex::new(session),
                rng: Mutex::new(seed),
                jitter: Jitter::new(seed),
                members: Mutex::new(BTreeSet::new()),
                tokens: Mutex::new(Default::default()),
                crashed: Default::default(),
            }),
        })
    }
}

impl Client {
    /// A builder for a client on `backend`.
    pub fn builder(backend: Arc<dyn CoordinationBackend>) -> ClientBuilder {
        ClientBuilder {
            backend,
            timeout: DEFAULT_SESSION_TIMEOUT,
            seed: None,
        }
    }

    /// Opens a session of `session_timeout` on `backend`.
    pub async fn connect(
        backend: Arc<dyn CoordinationBackend>,
        session_timeout: Duration,
    ) -> Result<Self, ElectionError> {
        Self::builder(backend)
            .session_timeout(session_timeout)
            .connect()
            .await
    }

    /// The current session.
    pub async fn session(&self) -> Arc<dyn BackendSession> {
        self.inner.session.lock().await.clone()
    }

    /// Replaces the session `old` by a new one, unless another caller already did.
    pub(crate) async fn renew_session(
        &self,
        old: SessionId,
    ) -> Result<Arc<dyn BackendSession>, ElectionError> {
        let mut current = self.inner.session.lock().await;
        if current.id() == old {
            let fresh = self.inner.backend.open_session(self.inner.timeout).await?;
            info!(old = %old, session = %fresh.id(), "session renewed");
            *current = fresh;
        }
        Ok(current.clone())
    }

    fn next_random(&self) -> u64 {
        // splitmix64: small, seedable, good enough for unique markers.
        next_random(&mut self.inner.rng.lock().expect("rng lock"))
    }

    /// `backoff` with jitter (between half of it and all of it), for the retries of this
    /// client's drivers and observers: a fleet that failed together does not retry in step.
    /// Seeded with the client, so a seeded simulation replays.
    pub(crate) fn jittered(&self, backoff: Duration) -> Duration {
        self.inner.jitter.delay(backoff)
    }

    /// Joins the election `config` names, on this client's session. Checks the configuration
    /// against the session the backend granted before creating anything.
    ///
    /// Returns once the candidate runs: its entry is registered in the background (the state
    /// leaves [`ElectionState::Joining`](crate::ElectionState::Joining) when it is), so two joins in a row on a multi-threaded
    /// runtime may queue in either order.
    pub async fn join(&self, config: CandidateConfig) -> Result<Candidate, ElectionError> {
        let session = self.session().await;
        let grace = config.grace_for(session.timeout())?;
        let key = (config.path.clone(), config.id.clone());
        if !self.inner.members.lock().expect("members lock").insert(key) {
            return Err(ElectionError::Duplicate {
                path: config.path.to_string(),
                id: config.id,
            });
        }
        let record = CandidateRecord {
            id: config.id.clone(),
            payload: config.payload.clone(),
        }
        .encode();
        let machine_config = MachineConfig {
            path: config.path.clone(),
            id: config.id.clone(),
            step_down_fraction: config.step_down_fraction,
            grace,
            rejoin_on_expiry: config.rejoin_on_expiry,
            has_work: config.work.is_some(),
            when_work_ends: config.when_work_ends,
            marker_prefix: self.next_random() as u32,
        };
        // One receiver, read and kept: the driver goes on from this very value, so a change
        // published after it (an expiry) is one the driver still sees.
        let mut session_state = session.state();
        let state_now = *session_state.borrow_and_update();
        let machine = Machine::new(
            machine_config,
            session.id(),
            session.timeout(),
            state_now,
            Instant::now(),
        );
        let (state_tx, state_rx) = watch::channel(machine.state().clone());
        let (events_tx, _) = broadcast::channel(1024);
        let (done_tx, done_rx) = watch::channel(());
        let (commands_tx, commands_rx) = mpsc::unbounded_channel();
        let driver = Driver::new(
            machine,
            self.clone(),
            config.path.clone(),
            record,
            session,
            session_state,
            commands_rx,
            config.work,
            Outlets {
                state: state_tx,
                events: events_tx.clone(),
                done: done_tx,
            },
        );
        let task = tokio::spawn(driver.run());
        Ok(Candidate::new(
            config.path,
            config.id,
            self.clone(),
            state_rx,
            events_tx,
            commands_tx,
            done_rx,
            task,
        ))
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

    pub(crate) fn release_member(&self, path: &ElectionPath, id: &str) {
        self.inner
            .members
            .lock()
            .expect("members lock")
            .remove(&(path.clone(), id.to_owned()));
    }

    pub(crate) fn mark_crashed(&self) {
        self.inner
            .crashed
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Follows the leader of `path` without running in it.
    pub fn observe(&self, path: &ElectionPath) -> Observer {
        Observer::spawn(self.clone(), path.clone())
    }

    /// Who leads `path` now, read fresh from the backend (one listing and one read).
    pub async fn current_leader(
        &self,
        path: &ElectionPath,
    ) -> Result<Option<LeaderInfo>, ElectionError> {
        let session = self.session().await;
        // The head may leave between the listing and the read: list again (bounded).
        for _ in 0..8 {
            let listing = session.list(path).await?;
            let Some(head) = listing.entries.first() else {
                return Ok(None);
            };
            if let Some(info) = session.read(path, &head.name).await? {
                if let Ok(record) = CandidateRecord::decode(&info.data) {
                    return Ok(Some(LeaderInfo {
                        id: record.id,
                        payload: record.payload,
                        token: info.token,
                        session: info.owner,
                    }));
                }
            }
        }
        Err(
            crate::BackendError::new(ErrorKind::Other, "the head kept changing while being read")
                .into(),
        )
    }

    /// The participants of `path` in queue order (one listing, one read per participant).
    pub async fn participants(
        &self,
        path: &ElectionPath,
    ) -> Result<Vec<Participant>, ElectionError> {
        let session = self.session().await;
        let listing = session.list(path).await?;
        let mut out = Vec::with_capacity(listing.entries.len());
        for entry in &listing.entries {
            // An entry that left meanwhile is simply no longer a participant.
            if let Some(info) = session.read(path, &entry.name).await? {
                if let Ok(record) = CandidateRecord::decode(&info.data) {
                    out.push(Participant {
                        id: record.id,
                        payload: record.payload,
                        token: info.token,
                        session: info.owner,
                    });
                }
            }
        }
        Ok(out)
    }

    /// Closes the session now (its entries go with it). Candidates still running on it see it
    /// end.
    pub async fn close(&self) {
        self.session().await.close().await;
    }
}

async fn sweep(
    client: std::sync::Weak<ClientInner>,
    path: ElectionPath,
    session: std::sync::Weak<dyn BackendSession>,
    mut state: watch::Receiver<crate::SessionState>,
    prefix: String,
) {
    use crate::SessionState;
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
        let (Some(client), Some(session)) = (client.upgrade(), session.upgrade()) else {
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
                let delay = client.jitter.delay(backoff);
                tracing::warn!(path = %path, session = %session.id(), error = %e, delay = ?delay, "sweep failed; retrying");
                drop((client, session));
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
}
