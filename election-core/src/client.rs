//! The client: one backend session shared by any number of candidates and observers (several
//! elections over one session), renewed when it ends, and the queries that need no candidate.
//! The session itself is owned by `Session` (`session.rs`).

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::info;

use crate::backend::{BackendSession, CoordinationBackend};
use crate::candidate::Candidate;
use crate::config::{validate_session_timeout, CandidateConfig, DEFAULT_SESSION_TIMEOUT};
use crate::driver::Driver;
use crate::error::{ElectionError, ErrorKind};
use crate::foreign::Compatibility;
use crate::machine::{Machine, MachineConfig};
use crate::observer::Observer;
use crate::path::ElectionPath;
use crate::process::{Frozen, Role};
use crate::session::Session;
use crate::state::{LeaderInfo, Participant};

/// A session on a backend, shared by the candidates and observers made from it.
///
/// Cloning is cheap; the session is closed when the last clone, candidate and observer are gone
/// (or on [`close`](Self::close), which stops every candidate and observer on it first and
/// stays closed). When the session ends (the service expired it), the first candidate,
/// observer or query to notice opens a new one and the others move to it: a client used for
/// queries alone recovers too.
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
    session: Session,
}

/// Builds a [`Client`].
#[must_use]
pub struct ClientBuilder {
    backend: Arc<dyn CoordinationBackend>,
    timeout: Duration,
    seed: Option<u64>,
    process: Option<crate::process::Process>,
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

    /// Attaches the client to a simulated [`Process`](crate::testing::Process) (feature
    /// `testing`): while it is paused, none of this client's candidates' tasks (driver, leader
    /// work, the work's tasks) is polled, as in a stop-the-world pause.
    #[cfg(feature = "testing")]
    pub fn process(mut self, process: crate::testing::Process) -> Self {
        self.process = Some(process);
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
            session: Session::new(self.backend, self.timeout, session, seed, self.process),
        })
    }
}

impl Client {
    /// A builder for a client on `backend`.
    pub fn builder(backend: impl Into<Arc<dyn CoordinationBackend>>) -> ClientBuilder {
        ClientBuilder {
            backend: backend.into(),
            timeout: DEFAULT_SESSION_TIMEOUT,
            seed: None,
            process: None,
        }
    }

    /// Opens a session of `session_timeout` on `backend`.
    pub async fn connect(
        backend: impl Into<Arc<dyn CoordinationBackend>>,
        session_timeout: Duration,
    ) -> Result<Self, ElectionError> {
        Self::builder(backend)
            .session_timeout(session_timeout)
            .connect()
            .await
    }

    /// The current session.
    pub async fn session(&self) -> Arc<dyn BackendSession> {
        self.session.current()
    }

    /// The id of the current session.
    pub fn session_id(&self) -> crate::SessionId {
        self.session.current().id()
    }

    /// `true` once [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.session.is_closed()
    }

    /// Joins the election `config` names, on this client's session. Checks the configuration
    /// against the session the backend granted before creating anything.
    ///
    /// Returns once the candidate runs: its entry is registered in the background (the state
    /// leaves [`ElectionState::Joining`](crate::ElectionState::Joining) when it is), so two
    /// joins in a row on a multi-threaded runtime may queue in either order. Fails with
    /// [`ElectionError::ClientClosed`] once the client is closed.
    pub async fn join(&self, config: CandidateConfig) -> Result<Candidate, ElectionError> {
        let session = self.session.usable().await?;
        let grace = config.grace_for(session.timeout())?;
        // One copy of the id for the handle, the machine and the client's registry.
        let id: Arc<str> = config.id.as_str().into();
        self.session.reserve_member(&config.path, &id)?;
        let machine_config = MachineConfig {
            path: config.path.clone(),
            id: id.clone(),
            step_down_fraction: config.step_down_fraction,
            grace: grace.into(),
            rejoin_on_expiry: config.rejoin_on_expiry,
            has_work: config.work.is_some(),
            when_work_ends: config.when_work_ends,
            marker_prefix: self.session.next_random() as u32,
            compatible: config.compatibility.map(Compatibility::implementation),
            leader_notes: session.keeps_leader_notes(),
        };
        // The state and the changes after it: the driver goes on from this very value, so a
        // change published after it (an expiry) is one the driver still sees.
        let (state_now, session_state) = self.session.state_changes(&session);
        let machine = Machine::new(
            machine_config,
            session.id(),
            session.timeout(),
            state_now,
            Instant::now(),
        );
        // Events are kept from the start: the first `events()` call sees the first transitions.
        let (commands_tx, commands_rx) = crate::link::Link::pair(machine.state().clone());
        let driver = Driver::new(
            machine,
            self.session.clone(),
            config.payload,
            config.compatibility,
            session,
            session_state,
            commands_rx,
            config.work,
        );
        let task = tokio::spawn(Frozen::new(self.session.process(), Role::Driver, driver));
        self.session
            .register_member(&config.path, &id, commands_tx.clone());
        Ok(Candidate::new(
            config.path,
            id,
            self.clone(),
            commands_tx,
            task,
        ))
    }

    #[cfg(feature = "testing")]
    pub(crate) fn mark_crashed(&self) {
        self.session.mark_crashed();
    }

    /// Follows the leader of `path` without running in it. On a closed client the observer
    /// stops at once.
    pub fn observe(&self, path: &ElectionPath) -> Observer {
        Observer::spawn(self.session.clone(), path.clone())
    }

    /// Who leads `path` now, read fresh from the backend (one listing and one read). A session
    /// that ended is replaced first; fails with [`ElectionError::ClientClosed`] once closed.
    pub async fn current_leader(
        &self,
        path: &ElectionPath,
    ) -> Result<Option<LeaderInfo>, ElectionError> {
        let mut session = self.session.usable().await?;
        let mut renewed = false;
        // The head may leave between the listing and the read: list again (bounded).
        for _ in 0..8 {
            let attempt = async {
                let listing = session.list(path).await?;
                for slot in crate::foreign::queue(&listing, None) {
                    let head = match slot {
                        // A contender of another implementation leads (a migration under way).
                        crate::foreign::Slot::Foreign(c, kind) => {
                            return Ok(Some(Some(crate::foreign::leader_of(c, kind))))
                        }
                        crate::foreign::Slot::Ours(head) => head,
                    };
                    let Some(info) = session.read(path, &head.name).await? else {
                        return Ok(None);
                    };
                    if info.owner == crate::SessionId(0) || info.owner != head.owner {
                        // A look-alike (persistent, or not owned by the session its name
                        // claims): nobody leads with it, as the machine sees it.
                        continue;
                    }
                    return match crate::record::decode_listed(&info, head.owner) {
                        Ok(record) => Ok(Some(Some(LeaderInfo {
                            id: record.id,
                            implementation: crate::Implementation::Election,
                            payload: record.payload.into(),
                            token: info.token,
                            session: info.owner,
                        }))),
                        Err(e) => Err(crate::BackendError::new(
                            ErrorKind::Invalid,
                            format!(
                                "the leader's entry {} holds a record that cannot be decoded: {e}",
                                head.name
                            ),
                        )),
                    };
                }
                Ok(Some(None))
            }
            .await;
            match attempt {
                Ok(Some(leader)) => return Ok(leader),
                Ok(None) => {}
                Err(e) if e.kind() == ErrorKind::SessionGone && !renewed => {
                    renewed = true;
                    session = self.session.renew(session.id()).await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(crate::BackendError::new(
            ErrorKind::Other,
            "the head of the queue left eight times while being read",
        )
        .into())
    }

    /// The participants of `path` in queue order (one listing, one read per participant of ours;
    /// contenders of other implementations come with the listing, and those that do not order
    /// our entries are first, as candidates of ours queue them). A
    /// session that ended is replaced first; fails with [`ElectionError::ClientClosed`] once
    /// closed.
    pub async fn participants(
        &self,
        path: &ElectionPath,
    ) -> Result<Vec<Participant>, ElectionError> {
        let mut session = self.session.usable().await?;
        let mut renewed = false;
        loop {
            let attempt = async {
                let listing = session.list(path).await?;
                let queue = crate::foreign::queue(&listing, None);
                let mut out = Vec::with_capacity(queue.len());
                for slot in queue {
                    let entry = match slot {
                        crate::foreign::Slot::Ours(entry) => entry,
                        // A contender of another implementation: the listing has its data.
                        crate::foreign::Slot::Foreign(c, kind) => {
                            out.push(Participant {
                                id: crate::foreign::foreign_id(&c.data),
                                implementation: kind,
                                payload: c.data.clone(),
                                token: c.token,
                                session: c.owner,
                            });
                            continue;
                        }
                    };
                    // An entry that left meanwhile is simply no longer a participant.
                    if let Some(info) = session.read(path, &entry.name).await? {
                        if let Ok(record) = crate::record::decode_listed(&info, entry.owner) {
                            out.push(Participant {
                                id: record.id,
                                implementation: crate::Implementation::Election,
                                payload: record.payload,
                                token: info.token,
                                session: info.owner,
                            });
                        }
                    }
                }
                Ok::<_, crate::BackendError>(out)
            }
            .await;
            match attempt {
                Ok(out) => return Ok(out),
                Err(e) if e.kind() == ErrorKind::SessionGone && !renewed => {
                    renewed = true;
                    session = self.session.renew(session.id()).await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Closes the client for good: stops every candidate on it as
    /// [`Candidate::stop`](crate::Candidate::stop) would (their leader work ended and awaited,
    /// their entries deleted, so a successor's work never starts before theirs ended), stops
    /// its observers, then closes the session. Candidates stop with
    /// [`StopReason::ClientClosed`](crate::StopReason::ClientClosed); nothing reopens the
    /// session afterwards, and later joins, observers and queries fail with
    /// [`ElectionError::ClientClosed`]. Idempotent.
    pub async fn close(&self) {
        self.session.close().await;
    }
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("timeout", &self.timeout)
            .field("seed", &self.seed)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("session", &self.session)
            .finish()
    }
}
