//! The candidate handle: what a user holds while running in an election.
use std::sync::Arc;

use tokio::sync::{broadcast, oneshot};
use tokio::task::JoinHandle;

use crate::backend::FencingToken;
use crate::client::Client;
use crate::config::CandidateBuilder;
use crate::error::ElectionError;
use crate::link::{Command, CommandSender};
use crate::path::ElectionPath;
use crate::state::{ElectionState, Event, LeaderInfo, Participant};
use crate::state_watch::{StateCell, StateWatch};

/// How many events a receiver of [`Candidate::events`] may fall behind before it loses the
/// oldest: a candidate emits a handful per change of leader, so tens are plenty for a reader
/// that keeps up. The channel is allocated at the first [`Candidate::events`] call; until then a
/// candidate keeps only the events it has emitted (at most this many).
pub const EVENTS_CAPACITY: usize = 64;

/// A running candidate.
///
/// Dropping the handle withdraws the candidate in the background, as [`stop`](Self::stop)
/// does; `stop` also waits until that is done.
///
/// **Shutting down**: withdrawal runs on the tokio runtime, so a runtime that shuts down (the
/// end of `main`, a panic) withdraws nothing: the entry stays until the service expires the
/// session, and a successor waits up to the session timeout. Call `stop().await` on every
/// candidate (or [`Client::close`](crate::Client::close)) before leaving `main`. A handle
/// dropped after its runtime is gone does not panic.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use election_core::{Candidate, CoordinationBackend};
/// use election_mem::MemCluster;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), election_core::ElectionError> {
/// let cluster = MemCluster::new();
/// let backend: Arc<dyn CoordinationBackend> = cluster.backend();
/// let candidate = Candidate::builder("/services/maxwell/leader", "maxwell-1")
///     .payload(b"10.0.0.7:8080".to_vec())
///     .on_leader(|term| async move {
///         // Act as leader, sending term.token() with every write, until the term ends.
///         term.cancelled().await;
///     })
///     .join(backend)
///     .await?;
/// let token = tokio::time::timeout(Duration::from_secs(5), candidate.wait_for_leadership()).await??;
/// assert!(candidate.is_leader());
/// println!("leading with token {token}");
/// candidate.stop().await;
/// # Ok(()) }
/// ```
#[must_use = "a candidate withdraws from the election when its handle is dropped"]
pub struct Candidate {
    path: ElectionPath,
    id: Arc<str>,
    client: Client,
    /// Commands to the driver, its events (the first `events()` call gets every one since the
    /// start) and its state (final once the driver has ended).
    commands: CommandSender,
    task: Option<JoinHandle<()>>,
}

impl Candidate {
    /// Starts building a candidate with `id` for the election at `path`.
    pub fn builder(path: impl Into<String>, id: impl Into<String>) -> CandidateBuilder {
        CandidateBuilder::new(path, id)
    }

    pub(crate) fn new(
        path: ElectionPath,
        id: Arc<str>,
        client: Client,
        commands: CommandSender,
        task: JoinHandle<()>,
    ) -> Self {
        Self {
            path,
            id,
            client,
            commands,
            task: Some(task),
        }
    }

    /// The driver's state, kept in the link the handle shares with the driver.
    fn state_cell(&self) -> &StateCell {
        &self.commands.link().state
    }

    /// The election path.
    pub fn path(&self) -> &ElectionPath {
        &self.path
    }

    /// The candidate id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The client (session) this candidate runs on.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The id of the session this candidate runs on: its client's current session (a new one
    /// after the old one ended and the candidate rejoined).
    pub fn session_id(&self) -> crate::SessionId {
        self.client.session_id()
    }

    /// The state, to read and to wait on: follower with position and known leader, leader
    /// with its token, suspended, stopped (see [`StateWatch`]).
    pub fn state(&self) -> StateWatch {
        StateWatch::new(self.commands.shared())
    }

    /// The state now.
    pub fn current(&self) -> ElectionState {
        self.state_cell().get()
    }

    /// A stream of transitions (with reasons) and notices. The first call gets every event
    /// since the candidate started (its receiver was subscribed before the candidate ran, so
    /// the first transitions cannot be missed); later calls get the events from the call on.
    ///
    /// A receiver that falls more than [`EVENTS_CAPACITY`] events behind loses the oldest: its
    /// next `recv` says `Lagged(n)` with how many were lost, and goes on from the oldest kept.
    /// What it lost is gone for it (the transitions, with their reasons and notices); the
    /// current state is never lost: [`state`](Self::state) always holds it. Events share the
    /// leader payloads they carry ([`LeaderInfo::payload`] is an `Arc`), so a lagging receiver
    /// holds at most [`EVENTS_CAPACITY`] events, not that many copies of each payload.
    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.commands.link().events.subscribe()
    }

    /// `true` while this candidate leads.
    pub fn is_leader(&self) -> bool {
        self.state_cell().with(ElectionState::is_leader)
    }

    /// The term token while leading.
    pub fn token(&self) -> Option<FencingToken> {
        self.state_cell().with(ElectionState::token)
    }

    /// Waits until this candidate leads (at once if it does), and returns its term token.
    ///
    /// No timeout of its own, like every tokio future: bound it with
    /// `tokio::time::timeout(limit, candidate.wait_for_leadership())` where it must be (its
    /// `Elapsed` converts into [`ElectionError::Timeout`]). Fails with
    /// [`ElectionError::Stopped`] if the candidate stops first, and with
    /// [`ElectionError::ClientClosed`] if its client is closed.
    pub async fn wait_for_leadership(&self) -> Result<FencingToken, ElectionError> {
        let mut state = self.state();
        let now = state
            .wait_for(|s| s.token().is_some() || s.is_stopped())
            .await?;
        match &*now {
            ElectionState::Stopped(reason) => Err(stopped_error(reason)),
            s => s.token().ok_or(ElectionError::Stopped),
        }
    }

    /// Who leads now, read fresh from the backend.
    pub async fn current_leader(&self) -> Result<Option<LeaderInfo>, ElectionError> {
        self.client.current_leader(&self.path).await
    }

    /// The participants in queue order, read fresh from the backend.
    pub async fn participants(&self) -> Result<Vec<Participant>, ElectionError> {
        self.client.participants(&self.path).await
    }

    /// Gives up leadership (its work is stopped and awaited first) and rejoins at the tail of the
    /// queue. A follower also moves to the tail. Returns once the old entry is gone.
    ///
    /// Called from this candidate's own leader work (or a task of its
    /// [`Term::spawn`](crate::Term::spawn)), it returns at once: the term's cancellation fires,
    /// and the resignation completes once the work has returned (waiting for it there would
    /// wait for itself).
    pub async fn resign(&self) -> Result<(), ElectionError> {
        self.send_resign(true).await
    }

    /// Gives up leadership and leaves the election for good (the entry is deleted). Returns once
    /// the entry is gone; from this candidate's own leader work, at once (as for
    /// [`resign`](Self::resign)).
    pub async fn leave(&self) -> Result<(), ElectionError> {
        self.send_resign(false).await?;
        if !self.in_own_work() {
            self.drain().await;
        }
        Ok(())
    }

    async fn send_resign(&self, rejoin: bool) -> Result<(), ElectionError> {
        let (done, wait) = oneshot::channel();
        self.commands
            .send(Command::Resign { rejoin, done })
            .map_err(|_| ElectionError::Stopped)?;
        if self.in_own_work() {
            return Ok(());
        }
        wait.await.map_err(|_| ElectionError::Stopped)
    }

    /// Withdraws: stops leader work (awaited, bounded by the grace, then aborted and awaited),
    /// deletes the entry, and waits until all of that is done. Idempotent. Called from this
    /// candidate's own leader work, it returns at once, and the withdrawal goes on once the
    /// work has returned.
    pub async fn stop(&self) {
        let _ = self.commands.send(Command::Stop);
        if !self.in_own_work() {
            self.drain().await;
        }
    }

    /// Whether the caller runs in this candidate's own leader work (or one of its term's tasks).
    fn in_own_work(&self) -> bool {
        crate::term::WORK_OF
            .try_with(|owner| std::ptr::eq(&**owner, self.commands.link()))
            .unwrap_or(false)
    }

    /// Waits until the driver has ended (its state is final then).
    async fn drain(&self) {
        self.state_cell().ended().await;
    }

    /// Ends the candidate at once, as if its process had crashed: no withdrawal, no session
    /// close, leader work aborted. Its entry stays until its session ends; for a candidate with
    /// its own session ([`CandidateBuilder::join`]) that is when the backend expires it. For crash
    /// tests only (feature `testing`).
    #[cfg(feature = "testing")]
    pub fn abort(mut self) {
        self.client.mark_crashed();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Drop for Candidate {
    fn drop(&mut self) {
        if self.task.is_some() {
            let _ = self.commands.send(Command::Stop);
        }
    }
}

impl std::fmt::Debug for Candidate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Candidate")
            .field("path", &self.path)
            .field("id", &self.id)
            .field("state", &self.current())
            .finish()
    }
}

/// The error a wait on a stopped candidate ends with.
fn stopped_error(reason: &crate::StopReason) -> ElectionError {
    match reason {
        crate::StopReason::ClientClosed => ElectionError::ClientClosed,
        _ => ElectionError::Stopped,
    }
}
