//! The election state machine: every rule of the election contract, decided in one place, with
//! no I/O. Inputs (session states, backend replies, watch firings, timer deadlines, user
//! commands) go in through [`Machine::handle`]; [`Action`]s (backend requests, watches, timers,
//! leader-work control, published transitions) come out, for [`crate::driver`] to execute.
//!
//! The rules, by contract line:
//! - **S2**: a leader that loses contact keeps leading only until
//!   `last_contact + step_down_fraction x timeout - grace`; then it leaves the Leader state and
//!   cancels its work, which has until `last_contact + step_down_fraction x timeout` to end.
//! - **S3**: leadership is claimed only from a listing that shows our entry first and owned by
//!   our current session, or on the deletion of a predecessor that was the head of our last
//!   listing, once a read shows our own entry still there and owned by our session (entries
//!   created later always sort after ours, so nothing can have come between; the read, not our
//!   own watch, rules out our entry having gone in the same transaction).
//! - **S4**: leader work is cancelled when the term ends and awaited (at most the grace, then
//!   aborted) before our entry is deleted or a new term of ours starts. The other way round,
//!   work that ends by itself (returns, fails, panics) while its term is live ends the term as
//!   the candidate's [`WorkEnded`] policy says: resign and rejoin at the tail after a back-off
//!   that grows while terms keep ending at once, leave, or keep leading.
//! - **S5**: a create whose outcome is unknown is looked up by its marker before anything else;
//!   entries of ours that are not our current one are deleted when a listing shows them.
//! - **L3**: a follower watches only its direct predecessor; **L4**: after the session ends we
//!   rejoin at the tail with a new session; **L5**: a lost entry is re-registered, a vanished
//!   predecessor re-listed, a reconnect re-verified.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::backend::{EntryInfo, FencingToken, Listing, Marker, SessionId, SessionState};
use crate::error::{BackendError, ErrorKind};
use crate::path::ElectionPath;
use crate::record::CandidateRecord;
use crate::state::{
    Contact, ElectionState, Event, LeaderInfo, Notice, Reason, StopReason, Transition,
};
use crate::term::WorkEnded;

/// How a term's leader work ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum WorkEnd {
    /// It returned (`()` or `Ok`).
    Returned,
    /// It returned an error: the error's text.
    Failed(String),
    /// It panicked (the work or the closure that makes it): the panic's message.
    Panicked(String),
    /// It was aborted (after the grace, or with the candidate).
    Aborted,
}

/// What the machine needs to know about its candidate; fixed for its life.
#[derive(Clone, Debug)]
pub(crate) struct MachineConfig {
    pub path: ElectionPath,
    pub id: String,
    pub step_down_fraction: f64,
    pub grace: Duration,
    pub rejoin_on_expiry: bool,
    pub has_work: bool,
    /// What to do when the work ends by itself while its term is live.
    pub when_work_ends: WorkEnded,
    /// High 32 bits of every marker this candidate uses: entries with it are ours.
    pub marker_prefix: u32,
}

/// Everything that can happen to a candidate.
#[derive(Debug)]
pub(crate) enum Input {
    /// The session's state changed.
    Session(SessionState),
    /// A new session is ready (after [`Action::OpenSession`]).
    SessionOpened {
        id: SessionId,
        timeout: Duration,
        state: SessionState,
    },
    Created(Result<EntryInfo, BackendError>),
    Listed(Result<Listing, BackendError>),
    Read {
        name: String,
        result: Result<Option<EntryInfo>, BackendError>,
    },
    Deleted {
        name: String,
        result: Result<(), BackendError>,
    },
    /// The predecessor's watch fired (`Ok`: it is gone).
    PredecessorGone {
        name: String,
        result: Result<(), BackendError>,
    },
    /// The predecessor is a look-alike: a node named like an entry that is not a live
    /// session's (persistent, or owned by another session than its name claims).
    PredecessorNotAnEntry {
        name: String,
    },
    /// Our own entry's watch fired (`Ok`: it is gone).
    OwnGone {
        name: String,
        result: Result<(), BackendError>,
    },
    /// Leader work ended, as `end` says; `handover`: it asked to hand over
    /// ([`Term::resign`](crate::Term::resign)).
    WorkDone {
        end: WorkEnd,
        handover: bool,
    },
    /// The deadline set by the last [`Action::SetTimer`] has come.
    Timer,
    /// Give up leadership: rejoin at the tail, or leave for good.
    Resign {
        rejoin: bool,
    },
    /// Withdraw and finish.
    Stop,
    /// Withdraw and finish because the client is closing (it closes the session after).
    Close,
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Action {
    /// Replace the session (the old one ended); answer with [`Input::SessionOpened`]. Every
    /// request and watch of the old session is to be dropped.
    OpenSession,
    /// Close the session (its end deletes an entry of ours that cannot be deleted otherwise);
    /// its end comes back as [`Input::Session`].
    CloseSession,
    /// The machine finishes with something of ours left uncertain on its live session (a create
    /// under way or unknown, an entry not yet deleted): the session belongs to the client and
    /// may live on, so the client sweeps this candidate's entries (its marker prefix) the next
    /// time the session has contact.
    SweepLater,
    Create {
        marker: Marker,
    },
    List,
    Read {
        name: String,
    },
    Delete {
        name: String,
    },
    /// Watch this entry, replacing any predecessor watch.
    WatchPredecessor {
        name: String,
    },
    UnwatchPredecessor,
    /// Watch our own entry, replacing any earlier own watch.
    WatchOwn {
        name: String,
    },
    UnwatchOwn,
    StartWork {
        token: FencingToken,
    },
    /// Signal the work to stop; answer with [`Input::WorkDone`] when it has.
    CancelWork,
    /// The grace is over: abort the work; answer with [`Input::WorkDone`].
    AbortWork,
    /// Deliver [`Input::Timer`] at this instant (replacing any earlier deadline), or never.
    SetTimer(Option<Instant>),
    /// Publish an event (and, for a transition, the new state).
    Emit(Event),
    /// A resignation has completed.
    ResignDone,
    /// The machine has finished; nothing more will come out.
    Finished,
}

/// Our own entry.
#[derive(Clone, Debug, PartialEq, Eq)]
struct OwnEntry {
    name: String,
    token: FencingToken,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// No usable session: a new one was asked for.
    AwaitingSession,
    /// Registering our entry with `marker`. `unknown`: the last create's outcome is unknown, so
    /// look the marker up before creating again; `adopting`: the lookup found this entry of
    /// ours, being read for its token.
    Registering {
        marker: Marker,
        unknown: bool,
        adopting: Option<String>,
    },
    /// Holding an entry; `role` is what we know of its place.
    Holding {
        entry: OwnEntry,
        role: Role,
    },
    /// Giving the entry up: the work is stopped first, then the entry deleted.
    Releasing {
        entry: OwnEntry,
    },
    /// Stopping after a create of this session had an unknown outcome: one last listing, and
    /// any entry of ours it shows is deleted, before finishing (S5: a create applied after the
    /// lookup that followed its lost reply).
    Sweeping {
        listed: bool,
        stop: StopReason,
    },
    Stopped,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Role {
    /// Our place is unknown or being verified.
    Verifying,
    Following {
        predecessor: String,
        predecessor_was_head: bool,
    },
    /// The head left and we were next: reading our own entry before we claim.
    Confirming,
    Leading,
}

/// What to do once the entry has been given up.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Goal {
    Run,
    Rejoin,
    Stop(StopReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Work {
    Idle,
    Running,
    Stopping {
        deadline: Instant,
    },
    /// Aborted after the grace; waiting for the driver to confirm.
    Aborting,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Request {
    Create,
    List,
    Read(String),
    Delete(String),
}

/// A kind of backend call, for back-off: each kind backs off on its own failures and is reset
/// only by its own success (a lookup listing that succeeds says nothing about the create that
/// keeps failing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Create,
    List,
    Read,
    Delete,
    Watch,
}

impl Op {
    const COUNT: usize = 5;
}

/// The election state machine of one candidate in one election.
pub(crate) struct Machine {
    cfg: MachineConfig,
    session: SessionId,
    timeout: Duration,
    /// `None` while connected; the last contact while not.
    last_contact: Option<Instant>,
    session_over: bool,
    phase: Phase,
    goal: Goal,
    work: Work,
    pending: Option<Request>,
    want_list: bool,
    want_read: Option<String>,
    delete_queue: VecDeque<String>,
    retry_at: Option<Instant>,
    /// The back-off of each kind of call, reset only when that kind succeeds.
    backoff: [Duration; Op::COUNT],
    /// The state of the jitter generator, seeded from the marker prefix: deterministic for a
    /// given candidate, different across a fleet.
    jitter: u64,
    /// Our own entry's watch failed: arm it again once the back-off is over.
    rearm_own: Option<String>,
    step_down_at: Option<Instant>,
    stop_deadline: Option<Instant>,
    timer: Option<Instant>,
    attempt: u32,
    /// The head of our last listing, and what we read of it.
    head: Option<String>,
    leader: Option<LeaderInfo>,
    foreign: Vec<String>,
    /// Nodes named like entries that are no live session's (persistent or ownerless): left out
    /// of every listing, as foreign nodes are.
    lookalikes: std::collections::BTreeSet<String>,
    /// The owner of the head of our last listing, as its name claims.
    head_owner: Option<SessionId>,
    /// A create on this session had an unknown outcome: sweep before finishing a stop.
    sweep_before_finish: bool,
    /// The session is being closed (an entry of ours could not be deleted): no more requests
    /// on it; its end decides what comes next.
    closing: bool,
    /// `cfg.marker_prefix` as the 8 hex digits that start our markers.
    marker_prefix: String,
    state: ElectionState,
    out: Vec<Action>,
    /// When the current term's work started.
    term_started: Option<Instant>,
    /// The back-off before rejoining after work that ended by itself; doubles while terms keep
    /// ending soon after they start.
    work_backoff: Duration,
    /// Rejoin no sooner than this long after the release (work that ended by itself).
    rejoin_delay: Option<Duration>,
    /// A user's resignation waits for [`Action::ResignDone`].
    resign_asked: bool,
}

impl Machine {
    /// A machine for a candidate that starts on session `session`.
    pub(crate) fn new(
        cfg: MachineConfig,
        session: SessionId,
        timeout: Duration,
        session_state: SessionState,
        now: Instant,
    ) -> Self {
        let mut m = Self {
            marker_prefix: format!("{:08x}", cfg.marker_prefix),
            jitter: u64::from(cfg.marker_prefix) ^ 0x6a09_e667_f3bc_c908,
            cfg,
            session,
            timeout,
            last_contact: None,
            session_over: false,
            phase: Phase::AwaitingSession,
            goal: Goal::Run,
            work: Work::Idle,
            pending: None,
            want_list: false,
            want_read: None,
            delete_queue: VecDeque::new(),
            retry_at: None,
            backoff: [Duration::ZERO; Op::COUNT],
            rearm_own: None,
            step_down_at: None,
            stop_deadline: None,
            timer: None,
            attempt: 0,
            head: None,
            leader: None,
            foreign: Vec::new(),
            lookalikes: Default::default(),
            head_owner: None,
            sweep_before_finish: false,
            closing: false,
            state: ElectionState::Joining,
            out: Vec::new(),
            term_started: None,
            work_backoff: Duration::ZERO,
            rejoin_delay: None,
            resign_asked: false,
        };
        info!(path = %m.cfg.path, candidate = %m.cfg.id, session = %session, "candidate starting");
        m.start_session(session, timeout, session_state, now);
        m.finish_step(now);
        m
    }

    /// The state as last published.
    pub(crate) fn state(&self) -> &ElectionState {
        &self.state
    }

    /// The candidate id.
    pub(crate) fn id(&self) -> &str {
        &self.cfg.id
    }

    /// The high 32 bits of every marker this candidate uses.
    pub(crate) fn marker_prefix(&self) -> u32 {
        self.cfg.marker_prefix
    }

    /// Takes the actions produced so far.
    pub(crate) fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.out)
    }

    /// Handles one input at `now`.
    pub(crate) fn handle(&mut self, now: Instant, input: Input) {
        if self.phase == Phase::Stopped {
            return;
        }
        match input {
            Input::Session(state) => self.on_session(now, state),
            Input::SessionOpened { id, timeout, state } => {
                if self.phase == Phase::AwaitingSession {
                    self.start_session(id, timeout, state, now);
                    if self.goal == Goal::Run {
                        self.set_state(now, ElectionState::Joining, Reason::Rejoining);
                    }
                }
            }
            Input::Created(result) => self.on_created(now, result),
            Input::Listed(result) => self.on_listed(now, result),
            Input::Read { name, result } => self.on_read(now, name, result),
            Input::Deleted { name, result } => self.on_deleted(now, name, result),
            Input::PredecessorGone { name, result } => self.on_predecessor_gone(now, name, result),
            Input::PredecessorNotAnEntry { name } => self.on_predecessor_not_an_entry(now, name),
            Input::OwnGone { name, result } => self.on_own_gone(now, name, result),
            Input::WorkDone { end, handover } => self.on_work_done(now, end, handover),
            Input::Timer => self.on_timer(now),
            Input::Resign { rejoin } => {
                self.rejoin_delay = None;
                self.resign_asked = true;
                let goal = if rejoin {
                    Goal::Rejoin
                } else {
                    Goal::Stop(StopReason::Resigned)
                };
                self.begin_release(now, goal, Reason::Resigned);
            }
            Input::Stop => {
                self.begin_release(now, Goal::Stop(StopReason::Stopped), Reason::Stopped)
            }
            Input::Close => {
                self.begin_release(now, Goal::Stop(StopReason::ClientClosed), Reason::Stopped)
            }
        }
        self.finish_step(now);
    }

    // ----- session -------------------------------------------------------------------------

    fn start_session(
        &mut self,
        id: SessionId,
        timeout: Duration,
        state: SessionState,
        now: Instant,
    ) {
        self.session = id;
        self.timeout = timeout;
        self.session_over = false;
        self.sweep_before_finish = false;
        self.closing = false;
        self.last_contact = match state {
            SessionState::Connected => None,
            SessionState::Disconnected { last_contact } => Some(last_contact),
            // A fresh session that is already over: handled as an expiry right away.
            SessionState::Expired | SessionState::Closed => Some(now),
        };
        self.pending = None;
        self.retry_at = None;
        self.rearm_own = None;
        self.want_list = false;
        self.want_read = None;
        self.delete_queue.clear();
        self.head = None;
        self.leader = None;
        self.phase = self.new_registration();
        if state.is_terminal() {
            self.on_session(now, state);
        }
    }

    fn new_registration(&mut self) -> Phase {
        Phase::Registering {
            marker: self.next_marker(),
            unknown: false,
            adopting: None,
        }
    }

    /// A marker for a new create attempt: never reused, so that a create applied late (after
    /// the lookup that followed its lost reply) is an orphan of ours, not a twin of the next.
    fn next_marker(&mut self) -> Marker {
        self.attempt = self.attempt.wrapping_add(1);
        Marker::from_bits((u64::from(self.cfg.marker_prefix) << 32) | u64::from(self.attempt))
    }

    fn is_ours(&self, marker: &Marker) -> bool {
        marker.as_str()[..8] == self.marker_prefix
    }

    fn on_session(&mut self, now: Instant, state: SessionState) {
        if self.session_over {
            return;
        }
        match state {
            SessionState::Connected => {
                if self.last_contact.take().is_none() {
                    return;
                }
                debug!(path = %self.cfg.path, candidate = %self.cfg.id, session = %self.session, "contact restored");
                // L5: keep the place, but verify it before claiming or going on leading.
                if let Phase::Holding { .. } = self.phase {
                    self.want_list = true;
                }
            }
            SessionState::Disconnected { last_contact } => {
                if self.last_contact.is_some() {
                    return;
                }
                self.last_contact = Some(last_contact);
                self.on_contact_lost(now, last_contact);
            }
            SessionState::Expired | SessionState::Closed => self.on_session_over(now),
        }
    }

    fn on_contact_lost(&mut self, now: Instant, last_contact: Instant) {
        if let Phase::Holding { entry, role } = &self.phase {
            if *role == Role::Leading {
                // S2: the backend cannot let anyone else lead before last_contact + timeout; we
                // are out of the Leader state, and our work ended, well before that.
                let at = (last_contact + self.budget()).checked_sub(self.cfg.grace);
                let at = at.unwrap_or(last_contact).max(last_contact);
                let token = entry.token;
                self.step_down_at = Some(at);
                if at <= now {
                    self.step_down(now, Reason::StepDownDeadline);
                } else {
                    let contact = Contact::Uncertain { step_down_at: at };
                    self.set_state(
                        now,
                        ElectionState::Leader { token, contact },
                        Reason::ContactLost,
                    );
                }
                return;
            }
        }
        if matches!(
            self.state,
            ElectionState::Follower { .. } | ElectionState::Joining
        ) {
            self.set_state(now, ElectionState::Suspended, Reason::ContactLost);
        }
    }

    fn on_session_over(&mut self, now: Instant) {
        self.session_over = true;
        self.rejoin_delay = None;
        warn!(path = %self.cfg.path, candidate = %self.cfg.id, session = %self.session, "session ended");
        // Every entry of the session is gone: there is nothing left to delete or watch.
        self.pending = None;
        self.delete_queue.clear();
        self.want_list = false;
        self.want_read = None;
        self.retry_at = None;
        self.rearm_own = None;
        self.out.push(Action::UnwatchPredecessor);
        self.out.push(Action::UnwatchOwn);
        self.end_term(now);
        // S4: with the session gone our entry is gone (or going), and a successor may lead at
        // once: work still running gets no grace, it is aborted now.
        if let Work::Stopping { .. } = self.work {
            self.out.push(Action::AbortWork);
            self.work = Work::Aborting;
        }
        self.step_down_at = None;
        match self.goal.clone() {
            Goal::Stop(reason) => {
                if reason == StopReason::Resigned {
                    // The entry is gone with the session: the resignation is complete.
                    self.resign_done();
                }
                self.finish(now, reason, Reason::SessionEnded)
            }
            Goal::Rejoin | Goal::Run if self.cfg.rejoin_on_expiry => {
                if self.goal == Goal::Rejoin {
                    self.goal = Goal::Run;
                    self.resign_done();
                }
                self.phase = Phase::AwaitingSession;
                // Reported even when already suspended: the session ending is news.
                self.emit_transition(now, ElectionState::Suspended, Reason::SessionEnded);
                self.out.push(Action::OpenSession);
            }
            Goal::Rejoin | Goal::Run => {
                if self.goal == Goal::Rejoin {
                    self.resign_done();
                }
                self.finish(now, StopReason::SessionEnded, Reason::SessionEnded)
            }
        }
    }

    fn budget(&self) -> Duration {
        self.timeout.mul_f64(self.cfg.step_down_fraction)
    }

    fn connected(&self) -> bool {
        self.last_contact.is_none() && !self.session_over
    }

    // ----- registering ---------------------------------------------------------------------

    fn on_created(&mut self, now: Instant, result: Result<EntryInfo, BackendError>) {
        if self.pending != Some(Request::Create) {
            return;
        }
        self.pending = None;
        let Phase::Registering { unknown, .. } = &mut self.phase else {
            return;
        };
        match result {
            Ok(info) => {
                self.reset_backoff(Op::Create);
                self.adopt(now, info);
            }
            Err(e) => match e.kind() {
                // S5: the create may have been applied: find it by its marker before anything.
                ErrorKind::OutcomeUnknown | ErrorKind::Other => {
                    *unknown = true;
                    self.sweep_before_finish = true;
                    self.retry_later(now, Op::Create, &e);
                }
                ErrorKind::NotFound | ErrorKind::AlreadyExists => {
                    self.retry_later(now, Op::Create, &e)
                }
                // The session's end is on its way as a state change; until then, back off
                // rather than re-send at once.
                ErrorKind::SessionGone => self.retry_later(now, Op::Create, &e),
                ErrorKind::NotPermitted | ErrorKind::Invalid => self.fail(now, &e),
            },
        }
    }

    fn adopt(&mut self, now: Instant, info: EntryInfo) {
        // Registered, whether by the create's reply or by its lookup: the create succeeded.
        self.reset_backoff(Op::Create);
        debug!(path = %self.cfg.path, candidate = %self.cfg.id, session = %self.session, entry = %info.name, token = %info.token, "entry registered");
        let entry = OwnEntry {
            name: info.name,
            token: info.token,
        };
        self.out.push(Action::WatchOwn {
            name: entry.name.clone(),
        });
        self.phase = Phase::Holding {
            entry,
            role: Role::Verifying,
        };
        self.want_list = true;
        if self.goal != Goal::Run {
            self.release(now);
        }
    }

    fn on_read(
        &mut self,
        now: Instant,
        name: String,
        result: Result<Option<EntryInfo>, BackendError>,
    ) {
        if self.pending != Some(Request::Read(name.clone())) {
            return;
        }
        self.pending = None;
        if let Phase::Holding {
            entry,
            role: Role::Confirming,
        } = &self.phase
        {
            if entry.name == name {
                let entry = entry.clone();
                match result {
                    Ok(Some(info)) if info.owner == self.session => {
                        self.head = Some(entry.name.clone());
                        self.claim(now, entry, false);
                    }
                    Ok(_) => self.entry_lost(now),
                    Err(e) => {
                        // Fall back to listing.
                        self.phase = Phase::Holding {
                            entry,
                            role: Role::Verifying,
                        };
                        self.want_list = true;
                        // Only a confirmation: the listing decides, whatever the error.
                        self.retry_later(now, Op::Read, &e);
                    }
                }
                return;
            }
        }
        if let Phase::Registering {
            adopting, unknown, ..
        } = &mut self.phase
        {
            if adopting.as_deref() == Some(name.as_str()) {
                match result {
                    Ok(Some(info)) if info.owner == self.session => {
                        self.reset_backoff(Op::Read);
                        self.adopt(now, info);
                    }
                    // Gone since the lookup (deleted, or its session ended): register anew.
                    Ok(_) => {
                        *adopting = None;
                        *unknown = false;
                    }
                    Err(e) => self.request_failed(now, Op::Read, &e),
                }
                return;
            }
        }
        if result.is_ok() {
            self.reset_backoff(Op::Read);
        }
        match result {
            Ok(Some(info)) => {
                if self.want_read.as_deref() == Some(name.as_str()) {
                    self.want_read = None;
                }
                if self.head.as_deref() != Some(name.as_str()) {
                    return;
                }
                if info.owner == SessionId(0) || Some(info.owner) != self.head_owner {
                    // A look-alike at the head (persistent, or not owned by the session its
                    // name claims): nobody leads with it; whoever it is ahead of learns so from
                    // its watch.
                    self.found_lookalike(now, name);
                    return;
                }
                match CandidateRecord::decode(&info.data) {
                    Ok(record) => {
                        self.leader = Some(LeaderInfo {
                            id: record.id,
                            payload: record.payload.into(),
                            token: info.token,
                            session: info.owner,
                        });
                        if let ElectionState::Follower { position, .. } = self.state {
                            let leader = self.leader.clone();
                            let to = ElectionState::Follower { position, leader };
                            self.set_state(now, to, Reason::LeaderKnown);
                        }
                    }
                    Err(e) => {
                        warn!(path = %self.cfg.path, candidate = %self.cfg.id, entry = %name, error = %e, "leader record unreadable");
                    }
                }
            }
            // The leader's record only informs: one we may not read (or cannot) is unknown, not
            // a reason to stop.
            Err(e) if matches!(e.kind(), ErrorKind::NotPermitted | ErrorKind::Invalid) => {
                warn!(path = %self.cfg.path, candidate = %self.cfg.id, entry = %name, error = %e, "leader record cannot be read; the leader stays unknown");
                if self.want_read.as_deref() == Some(name.as_str()) {
                    self.want_read = None;
                }
            }
            // The head left already; the next listing tells who leads.
            Ok(None) => {
                if self.want_read.as_deref() == Some(name.as_str()) {
                    self.want_read = None;
                }
            }
            Err(e) => self.request_failed(now, Op::Read, &e),
        }
    }

    // ----- placing ourselves ---------------------------------------------------------------

    fn on_listed(&mut self, now: Instant, result: Result<Listing, BackendError>) {
        if self.pending != Some(Request::List) {
            return;
        }
        self.pending = None;
        let mut listing = match result {
            Ok(l) => l,
            Err(e) => {
                if matches!(self.phase, Phase::Holding { .. }) {
                    self.want_list = true;
                }
                self.request_failed(now, Op::List, &e);
                return;
            }
        };
        self.reset_backoff(Op::List);
        // Look-alikes found earlier are no candidates; forget those that are gone.
        self.lookalikes
            .retain(|name| listing.entries.iter().any(|e| e.name == *name));
        listing
            .entries
            .retain(|e| !self.lookalikes.contains(&e.name));
        if listing.foreign != self.foreign {
            self.foreign = listing.foreign.clone();
            if !self.foreign.is_empty() {
                warn!(path = %self.cfg.path, candidate = %self.cfg.id, foreign = ?self.foreign, "foreign nodes in the election path are ignored");
                self.notice(now, Notice::ForeignEntries(self.foreign.clone()));
            }
        }
        // S5: entries of ours (our marker prefix, our session) other than the current one are
        // orphans of lost create replies: delete them.
        let current = match &self.phase {
            Phase::Holding { entry, .. } | Phase::Releasing { entry } => Some(entry.name.clone()),
            _ => None,
        };
        // A lookup adopts the first entry with its marker; any other is an orphan too.
        let adoptable = match &self.phase {
            Phase::Registering {
                marker,
                unknown: true,
                ..
            } => listing
                .entries
                .iter()
                .find(|e| e.marker == *marker && e.owner == self.session)
                .map(|e| e.name.clone()),
            _ => None,
        };
        for e in &listing.entries {
            if e.owner == self.session
                && self.is_ours(&e.marker)
                && current.as_deref() != Some(e.name.as_str())
                && adoptable.as_deref() != Some(e.name.as_str())
                && !self.delete_queue.contains(&e.name)
            {
                self.delete_queue.push_back(e.name.clone());
            }
        }
        let lookup_failed =
            matches!(self.phase, Phase::Registering { unknown: true, .. }) && adoptable.is_none();
        let fresh = lookup_failed.then(|| self.next_marker());
        match &mut self.phase {
            Phase::Registering {
                marker,
                unknown,
                adopting,
            } if *unknown => {
                match adoptable {
                    Some(name) => *adopting = Some(name),
                    None => {
                        // Not applied (as far as this listing shows): the next attempt gets a
                        // marker of its own.
                        if let Some(fresh) = fresh {
                            *marker = fresh;
                        }
                        *unknown = false;
                        // Leaving: nothing was registered, so nothing to create only to delete.
                        if self.goal != Goal::Run {
                            self.after_release(now);
                        }
                    }
                }
            }
            Phase::Holding { .. } => {
                self.want_list = false;
                self.place(now, &listing);
            }
            Phase::Sweeping { listed, .. } => {
                *listed = true;
                self.sweep_done(now);
            }
            _ => {}
        }
    }

    fn place(&mut self, now: Instant, listing: &Listing) {
        let Phase::Holding { entry, role } = &self.phase else {
            return;
        };
        let (entry, role) = (entry.clone(), role.clone());
        let was_leading = role == Role::Leading;
        let Some(index) = listing.entries.iter().position(|e| e.name == entry.name) else {
            self.entry_lost(now);
            return;
        };
        // S3: the entry must be owned by our current session.
        if listing.entries[index].owner != self.session {
            self.entry_lost(now);
            return;
        }
        if index == 0 {
            self.head = Some(entry.name.clone());
            self.claim(now, entry, was_leading);
            return;
        }
        if was_leading {
            // Something sorts ahead of a leader: impossible with a conforming backend; stop
            // leading at once rather than trust it.
            warn!(path = %self.cfg.path, candidate = %self.cfg.id, "an entry sorts ahead of the leader's; stepping down");
            self.step_down(now, Reason::EntryDeleted);
        }
        let predecessor = listing.entries[index - 1].name.clone();
        let head = listing.entries[0].name.clone();
        if self.head.as_deref() != Some(head.as_str()) {
            self.head = Some(head.clone());
            self.head_owner = Some(listing.entries[0].owner);
            self.leader = None;
            self.want_read = Some(head);
        }
        let watching = matches!(role, Role::Following { predecessor: p, .. } if *p == predecessor);
        if !watching {
            self.out.push(Action::WatchPredecessor {
                name: predecessor.clone(),
            });
        }
        self.phase = Phase::Holding {
            entry,
            role: Role::Following {
                predecessor,
                predecessor_was_head: index == 1,
            },
        };
        let reason = match &self.state {
            ElectionState::Follower { position, .. } if *position > index => {
                Reason::PredecessorLeft
            }
            ElectionState::Suspended => Reason::ContactRestored,
            _ => Reason::Joined,
        };
        let leader = self.leader.clone();
        self.set_state(
            now,
            ElectionState::Follower {
                position: index,
                leader,
            },
            reason,
        );
    }

    /// Our entry is first: lead (S3 checked by the caller), once the last term's work is over.
    fn claim(&mut self, now: Instant, entry: OwnEntry, was_leading: bool) {
        if !self.connected() {
            self.want_list = true;
            return;
        }
        self.out.push(Action::UnwatchPredecessor);
        self.step_down_at = None;
        let token = entry.token;
        self.phase = Phase::Holding {
            entry,
            role: Role::Leading,
        };
        self.leader = None;
        let contact = Contact::Confirmed;
        if was_leading {
            self.set_state(
                now,
                ElectionState::Leader { token, contact },
                Reason::ContactRestored,
            );
            return;
        }
        if self.work != Work::Idle {
            // S4: the previous term's work has not ended yet; verify again once it has.
            self.phase = match std::mem::replace(&mut self.phase, Phase::Stopped) {
                Phase::Holding { entry, .. } => Phase::Holding {
                    entry,
                    role: Role::Verifying,
                },
                other => other,
            };
            return;
        }
        if self.cfg.has_work {
            self.work = Work::Running;
            self.term_started = Some(now);
            self.out.push(Action::StartWork { token });
        }
        let reason = if matches!(self.state, ElectionState::Suspended) {
            Reason::ContactRestored
        } else {
            Reason::Claimed
        };
        self.set_state(now, ElectionState::Leader { token, contact }, reason);
    }

    fn on_predecessor_gone(
        &mut self,
        now: Instant,
        name: String,
        result: Result<(), BackendError>,
    ) {
        let Phase::Holding {
            entry,
            role:
                Role::Following {
                    predecessor,
                    predecessor_was_head,
                },
        } = &self.phase
        else {
            return;
        };
        if *predecessor != name {
            return;
        }
        let (entry, was_head) = (entry.clone(), *predecessor_was_head);
        self.phase = Phase::Holding {
            entry: entry.clone(),
            role: Role::Verifying,
        };
        if result.is_ok() {
            self.reset_backoff(Op::Watch);
        }
        match result {
            // L3 / S3: the head left and we were next: nothing can sort between, so we lead
            // without listing again, once a read shows our own entry still there and ours. Our
            // own watch is not enough: an administrator's multi-op can delete both entries in one
            // transaction, and its notifications come in no set order (a phantom term otherwise).
            // While a verification listing is pending anyway (after a reconnect), that listing
            // decides.
            Ok(()) if was_head && !self.want_list => {
                self.phase = Phase::Holding {
                    entry,
                    role: Role::Confirming,
                };
            }
            // L5: gone, or vanished before the watch was set: list again.
            Ok(()) => self.want_list = true,
            // Whatever the error (a "session gone" can come while the session lives on: its end,
            // if it is ending, comes as a state change), look again after a back-off: nothing
            // may wait with nothing armed.
            Err(e) => {
                self.want_list = true;
                self.retry_later(now, Op::Watch, &e);
            }
        }
    }

    /// Our predecessor is a look-alike that would never go away: leave it out and place
    /// ourselves again.
    fn on_predecessor_not_an_entry(&mut self, now: Instant, name: String) {
        let Phase::Holding {
            entry,
            role: Role::Following { predecessor, .. },
        } = &self.phase
        else {
            return;
        };
        if *predecessor != name {
            return;
        }
        self.phase = Phase::Holding {
            entry: entry.clone(),
            role: Role::Verifying,
        };
        self.found_lookalike(now, name);
        self.want_list = true;
    }

    fn found_lookalike(&mut self, now: Instant, name: String) {
        if !self.lookalikes.insert(name.clone()) {
            return;
        }
        warn!(path = %self.cfg.path, candidate = %self.cfg.id, entry = %name, "a node named like an entry is no live session's (persistent or ownerless): ignored as foreign");
        if self.head.as_deref() == Some(name.as_str()) {
            self.head = None;
            self.head_owner = None;
            self.leader = None;
        }
        if self.want_read.as_deref() == Some(name.as_str()) {
            self.want_read = None;
        }
        self.notice(now, Notice::ForeignEntries(vec![name]));
    }

    fn on_own_gone(&mut self, now: Instant, name: String, result: Result<(), BackendError>) {
        let Phase::Holding { entry, .. } = &self.phase else {
            return;
        };
        if entry.name != name {
            return;
        }
        match result {
            Ok(()) => {
                self.reset_backoff(Op::Watch);
                self.entry_lost(now)
            }
            // The watch failed without telling (whatever the error: a "session gone" can come
            // while the session lives on): arm it again after a back-off, and verify the place
            // meanwhile (a leader relies on this watch to notice its entry deleted).
            Err(e) => {
                self.rearm_own = Some(name);
                self.want_list = true;
                self.retry_later(now, Op::Watch, &e);
            }
        }
    }

    /// Our entry vanished while the session lives (deleted by someone else, or the election root
    /// was deleted): step down if leading, then register again (L5, CURATOR-171).
    fn entry_lost(&mut self, now: Instant) {
        warn!(path = %self.cfg.path, candidate = %self.cfg.id, session = %self.session, "our entry was deleted by someone else; registering again");
        self.rearm_own = None;
        self.out.push(Action::UnwatchPredecessor);
        self.out.push(Action::UnwatchOwn);
        self.end_term(now);
        self.want_list = false;
        self.head = None;
        self.leader = None;
        match self.goal.clone() {
            Goal::Run => {
                self.phase = self.new_registration();
                self.set_state(now, ElectionState::Joining, Reason::EntryDeleted);
            }
            Goal::Rejoin => self.after_release(now),
            Goal::Stop(_) => self.after_release(now),
        }
    }

    // ----- stepping down and releasing -----------------------------------------------------

    /// Leaves the Leader state and cancels the term's work; keeps the entry (the place).
    fn step_down(&mut self, now: Instant, reason: Reason) {
        if let Phase::Holding { role, .. } = &mut self.phase {
            if *role == Role::Leading {
                *role = Role::Verifying;
                self.want_list = true;
            }
        }
        self.step_down_at = None;
        self.end_term(now);
        if let Some(lc) = self.last_contact {
            // S2: the work may run until the budget is spent, not past it.
            let limit = lc + self.budget();
            if let Work::Stopping { deadline } = &mut self.work {
                *deadline = (*deadline).min(limit).max(now);
            }
        }
        self.set_state(now, ElectionState::Suspended, reason);
    }

    /// Ends the current term's work, if any (S4): signal, and abort after the grace.
    fn end_term(&mut self, now: Instant) {
        if self.work == Work::Running {
            self.work = Work::Stopping {
                deadline: now + self.cfg.grace,
            };
            self.out.push(Action::CancelWork);
        }
        if self.state.is_leader() {
            info!(path = %self.cfg.path, candidate = %self.cfg.id, token = ?self.state.token(), session = %self.session, "term over");
        }
    }

    fn begin_release(&mut self, now: Instant, goal: Goal, reason: Reason) {
        if matches!(self.goal, Goal::Stop(_)) {
            return;
        }
        self.goal = goal;
        if let Goal::Stop(_) = self.goal {
            // Bounded: past this we finish anyway; the entry then dies with the session.
            self.stop_deadline = Some(now + self.timeout + self.cfg.grace);
        }
        match &self.phase {
            Phase::Holding { .. } => {
                if self.state.is_leader() {
                    let to = ElectionState::Suspended;
                    self.end_term(now);
                    self.set_state(now, to, reason);
                }
                self.release(now);
            }
            // The create under way is finished (and looked up if need be) first.
            Phase::Registering {
                unknown, adopting, ..
            } if self.pending == Some(Request::Create) || *unknown || adopting.is_some() => {}
            Phase::Registering { .. } | Phase::AwaitingSession => self.after_release(now),
            Phase::Releasing { .. } | Phase::Sweeping { .. } | Phase::Stopped => {}
        }
    }

    fn release(&mut self, now: Instant) {
        let Phase::Holding { entry, .. } = &self.phase else {
            return;
        };
        let entry = entry.clone();
        self.end_term(now);
        self.out.push(Action::UnwatchPredecessor);
        self.phase = Phase::Releasing { entry };
        self.want_list = false;
        self.want_read = None;
    }

    fn on_deleted(&mut self, now: Instant, name: String, result: Result<(), BackendError>) {
        if self.pending != Some(Request::Delete(name.clone())) {
            return;
        }
        self.pending = None;
        let done = match &result {
            Ok(()) => true,
            Err(e) => e.kind() == ErrorKind::NotFound,
        };
        if let Phase::Releasing { entry } = &self.phase {
            if entry.name == name {
                if done {
                    self.reset_backoff(Op::Delete);
                    self.rearm_own = None;
                    self.out.push(Action::UnwatchOwn);
                    self.after_release(now);
                } else if let Err(e) = result {
                    self.delete_failed(now, &e);
                }
                return;
            }
        }
        if self.delete_queue.front() == Some(&name) {
            if done {
                self.reset_backoff(Op::Delete);
                self.delete_queue.pop_front();
                info!(path = %self.cfg.path, candidate = %self.cfg.id, entry = %name, "orphan entry removed");
                self.notice(now, Notice::OrphanRemoved(name));
                self.sweep_done(now);
            } else if let Err(e) = result {
                self.delete_failed(now, &e);
            }
        }
    }

    /// A delete of an entry of ours failed. Refused (no permission, or for good): the entry
    /// would stay for as long as the session lives, ahead of others for ever if it reaches the
    /// head; close the session instead, whose end deletes it. Anything else is retried.
    fn delete_failed(&mut self, now: Instant, e: &BackendError) {
        match e.kind() {
            ErrorKind::NotPermitted | ErrorKind::Invalid => self.close_session(now, e),
            _ => self.retry_later(now, Op::Delete, e),
        }
    }

    /// Closes the session so that the service deletes our entries; its end (a state change)
    /// decides what comes next, as for an expiry.
    fn close_session(&mut self, now: Instant, e: &BackendError) {
        if self.session_over || self.closing {
            return;
        }
        tracing::error!(path = %self.cfg.path, candidate = %self.cfg.id, session = %self.session, error = %e, "an entry of ours cannot be deleted: closing the session so that the service deletes it");
        self.closing = true;
        self.pending = None;
        self.retry_at = None;
        self.rearm_own = None;
        self.end_term(now);
        if self.state.is_leader() {
            self.set_state(now, ElectionState::Suspended, Reason::Failed);
        }
        self.notice(now, Notice::ClosingSession(e.to_string()));
        self.out.push(Action::CloseSession);
    }

    /// Whether an entry of ours may exist on the live session.
    fn may_hold_entry(&self) -> bool {
        !self.session_over
            && (matches!(
                self.phase,
                Phase::Holding { .. }
                    | Phase::Releasing { .. }
                    | Phase::Sweeping { .. }
                    | Phase::Registering { unknown: true, .. }
                    | Phase::Registering {
                        adopting: Some(_),
                        ..
                    }
            ) || !self.delete_queue.is_empty()
                || self.sweep_before_finish
                || self.pending == Some(Request::Create))
    }

    /// The entry is given up (or never was registered): rejoin at the tail, or stop.
    fn after_release(&mut self, now: Instant) {
        match self.goal.clone() {
            Goal::Run => {}
            Goal::Rejoin => {
                self.goal = Goal::Run;
                self.resign_done();
                if self.phase == Phase::AwaitingSession {
                    // No session to register on yet: the new one registers us at the tail when
                    // it opens (registering now would make us ignore it, and hang).
                    return;
                }
                self.phase = self.new_registration();
                self.set_state(now, ElectionState::Joining, Reason::Resigned);
                if let Some(delay) = self.rejoin_delay.take() {
                    // Work that ended at once: the others lead meanwhile, and nothing spins.
                    debug!(path = %self.cfg.path, candidate = %self.cfg.id, session = %self.session, delay = ?delay, "rejoining after a back-off: the leader work ended by itself");
                    self.retry_at = Some(now + delay);
                }
            }
            Goal::Stop(reason) => {
                if self.sweep_before_finish && !self.session_over {
                    self.phase = Phase::Sweeping {
                        listed: false,
                        stop: reason,
                    };
                    return;
                }
                self.stop_now(now, reason);
            }
        }
    }

    fn stop_now(&mut self, now: Instant, reason: StopReason) {
        if reason == StopReason::Resigned {
            self.resign_done();
        }
        let why = if reason == StopReason::Resigned {
            Reason::Resigned
        } else {
            Reason::Stopped
        };
        self.finish(now, reason, why);
    }

    /// Finishes a sweep once its listing came and every entry of ours it showed is gone.
    fn sweep_done(&mut self, now: Instant) {
        if let Phase::Sweeping { listed: true, stop } = &self.phase {
            if self.delete_queue.is_empty() {
                let stop = stop.clone();
                self.stop_now(now, stop);
            }
        }
    }

    fn finish(&mut self, now: Instant, stop: StopReason, reason: Reason) {
        if self.work != Work::Idle {
            self.out.push(Action::AbortWork);
            self.work = Work::Idle;
        }
        self.phase = Phase::Stopped;
        self.pending = None;
        self.step_down_at = None;
        self.retry_at = None;
        self.stop_deadline = None;
        self.set_state(now, ElectionState::Stopped(stop), reason);
        self.out.push(Action::UnwatchPredecessor);
        self.out.push(Action::UnwatchOwn);
        self.out.push(Action::Finished);
    }

    fn fail(&mut self, now: Instant, e: &BackendError) {
        warn!(path = %self.cfg.path, candidate = %self.cfg.id, error = %e, "backend refused; candidate stops");
        self.end_term(now);
        if self.may_hold_entry() && !self.closing {
            // Never leave an entry behind on a session that lives on.
            self.notice(now, Notice::ClosingSession(e.to_string()));
            self.out.push(Action::CloseSession);
        }
        self.finish(now, StopReason::Failed(e.to_string()), Reason::Failed);
    }

    // ----- work and time -------------------------------------------------------------------

    fn on_work_done(&mut self, now: Instant, end: WorkEnd, handover: bool) {
        let token = self.state.token();
        let live = match self.work {
            Work::Idle => return,
            Work::Running => true,
            Work::Stopping { .. } | Work::Aborting => false,
        };
        if end == WorkEnd::Aborted {
            if let Some(token) = token.or(self.last_token()) {
                warn!(path = %self.cfg.path, candidate = %self.cfg.id, token = %token, session = %self.session, "leader work overran its grace and was aborted");
                self.notice(now, Notice::WorkOverranGrace(token));
            }
        }
        self.work = Work::Idle;
        if let Phase::Holding {
            role: Role::Verifying,
            ..
        } = self.phase
        {
            self.want_list = true;
        }
        if live {
            self.work_ended_in_term(now, end, handover, token);
        }
    }

    /// The work ended by itself while its term was live: the term ends as the policy says.
    fn work_ended_in_term(
        &mut self,
        now: Instant,
        end: WorkEnd,
        handover: bool,
        token: Option<FencingToken>,
    ) {
        let reason = match &end {
            _ if handover => Reason::Resigned,
            WorkEnd::Returned | WorkEnd::Aborted => Reason::WorkReturned,
            WorkEnd::Failed(e) => Reason::WorkFailed(e.clone()),
            WorkEnd::Panicked(m) => Reason::WorkPanicked(m.clone()),
        };
        match &end {
            WorkEnd::Failed(e) => {
                warn!(path = %self.cfg.path, candidate = %self.cfg.id, token = ?token, session = %self.session, error = %e, "leader work failed")
            }
            WorkEnd::Panicked(m) => {
                warn!(path = %self.cfg.path, candidate = %self.cfg.id, token = ?token, session = %self.session, panic = %m, "leader work panicked")
            }
            _ => {
                info!(path = %self.cfg.path, candidate = %self.cfg.id, token = ?token, session = %self.session, handover, "leader work returned")
            }
        }
        let policy = if handover {
            WorkEnded::Resign
        } else {
            self.cfg.when_work_ends
        };
        match policy {
            WorkEnded::KeepLeading => {
                if let Some(token) = token {
                    self.notice(now, Notice::WorkFinished(token));
                }
            }
            WorkEnded::Leave => {
                self.begin_release(now, Goal::Stop(StopReason::Resigned), reason);
            }
            WorkEnded::Resign => {
                let lasted = self
                    .term_started
                    .map_or(Duration::ZERO, |start| now.saturating_duration_since(start));
                if lasted >= self.timeout / 2 {
                    self.work_backoff = Duration::ZERO;
                }
                let floor = (self.timeout / 20).max(Duration::from_millis(1));
                self.work_backoff = (self.work_backoff * 2).clamp(floor, self.timeout * 4);
                let delay = jittered(self.work_backoff, next_random(&mut self.jitter));
                self.rejoin_delay = Some(delay);
                self.begin_release(now, Goal::Rejoin, reason);
            }
        }
    }

    /// A resignation is complete: tell the user's, if one was asked (the work's own
    /// hand-over and the [`WorkEnded`] policy resign with nobody waiting).
    fn resign_done(&mut self) {
        if std::mem::take(&mut self.resign_asked) {
            self.out.push(Action::ResignDone);
        }
    }

    fn last_token(&self) -> Option<FencingToken> {
        match &self.phase {
            Phase::Holding { entry, .. } | Phase::Releasing { entry } => Some(entry.token),
            _ => None,
        }
    }

    fn on_timer(&mut self, now: Instant) {
        if self.step_down_at.is_some_and(|t| t <= now) {
            self.step_down_at = None;
            if self.state.is_leader() {
                warn!(path = %self.cfg.path, candidate = %self.cfg.id, token = ?self.state.token(), session = %self.session, "no contact within the step-down budget: stepping down");
                self.step_down(now, Reason::StepDownDeadline);
            }
        }
        if let Work::Stopping { deadline } = self.work {
            if deadline <= now {
                self.out.push(Action::AbortWork);
                self.work = Work::Aborting;
            }
        }
        if self.retry_at.is_some_and(|t| t <= now) {
            self.retry_at = None;
        }
        if self.stop_deadline.is_some_and(|t| t <= now) {
            warn!(path = %self.cfg.path, candidate = %self.cfg.id, session = %self.session, "stop could not withdraw the entry in time; the client sweeps it when the session next has contact");
            let reason = match &self.goal {
                Goal::Stop(r) => r.clone(),
                _ => StopReason::Stopped,
            };
            if self.may_hold_entry() && !self.closing {
                // S5: the session is the client's, and others may keep it alive; a request the
                // driver drops may still be applied (a client sends what it queued).
                self.out.push(Action::SweepLater);
            }
            self.finish(now, reason, Reason::Stopped);
        }
    }

    fn request_failed(&mut self, now: Instant, op: Op, e: &BackendError) {
        match e.kind() {
            ErrorKind::NotPermitted | ErrorKind::Invalid => self.fail(now, e),
            _ => self.retry_later(now, op, e),
        }
    }

    fn reset_backoff(&mut self, op: Op) {
        self.backoff[op as usize] = Duration::ZERO;
    }

    /// Holds every request back for the back-off of `op`, which doubles (from T/50 up to T/4)
    /// with each failure of that kind of call, with jitter: a fleet that failed together (an
    /// ensemble failover) does not retry in step.
    fn retry_later(&mut self, now: Instant, op: Op, e: &BackendError) {
        let floor = (self.timeout / 50).max(Duration::from_millis(1));
        let backoff = &mut self.backoff[op as usize];
        *backoff = (*backoff * 2).clamp(floor, self.timeout / 4);
        let backoff = *backoff;
        let delay = jittered(backoff, next_random(&mut self.jitter));
        debug!(path = %self.cfg.path, candidate = %self.cfg.id, error = %e, op = ?op, backoff = ?backoff, delay = ?delay, "backend call failed; retrying");
        self.notice(now, Notice::Retrying(e.to_string()));
        if self.connected() {
            self.retry_at = Some(now + delay);
        }
    }

    /// Issues the next backend request, if one is wanted and none is under way.
    fn pump(&mut self) {
        // A read of the leader's record only informs: anything else may take its place (the
        // driver drops the read under way; it is asked again later).
        let preemptible = matches!(self.pending, Some(Request::Read(_)))
            && !matches!(
                self.phase,
                Phase::Registering {
                    adopting: Some(_),
                    ..
                }
            );
        if !self.connected() || self.retry_at.is_some() || self.closing {
            return;
        }
        if let Some(name) = self.rearm_own.take() {
            if matches!(&self.phase, Phase::Holding { entry, .. } if entry.name == name) {
                self.out.push(Action::WatchOwn { name });
            }
        }
        if self.pending.is_some() && !preemptible {
            return;
        }
        let request = match &self.phase {
            Phase::Registering {
                adopting: Some(name),
                ..
            } => Request::Read(name.clone()),
            Phase::Registering { unknown: true, .. } => Request::List,
            // S5: orphans of ours that a listing showed go before we create again.
            Phase::Registering { .. } if !self.delete_queue.is_empty() => {
                Request::Delete(self.delete_queue[0].clone())
            }
            Phase::Registering { marker, .. } => {
                let marker = marker.clone();
                self.pending = Some(Request::Create);
                self.out.push(Action::Create { marker });
                return;
            }
            // S5: orphans of ours that a listing showed go before our own entry: once that is
            // deleted we finish, and they would stay behind.
            Phase::Releasing { entry } if self.work == Work::Idle => {
                Request::Delete(self.delete_queue.front().unwrap_or(&entry.name).clone())
            }
            Phase::Holding {
                entry,
                role: Role::Confirming,
            } if self.work == Work::Idle => Request::Read(entry.name.clone()),
            Phase::Holding { .. } if self.want_list => Request::List,
            Phase::Holding { .. } | Phase::Releasing { .. } => {
                if let Some(name) = self.delete_queue.front() {
                    Request::Delete(name.clone())
                } else if let Some(name) = &self.want_read {
                    if preemptible {
                        return;
                    }
                    Request::Read(name.clone())
                } else {
                    return;
                }
            }
            Phase::Sweeping { listed: false, .. } => Request::List,
            Phase::Sweeping { listed: true, .. } => match self.delete_queue.front() {
                Some(name) => Request::Delete(name.clone()),
                None => return,
            },
            Phase::AwaitingSession | Phase::Stopped => return,
        };
        self.out.push(match &request {
            Request::List => Action::List,
            Request::Read(name) => Action::Read { name: name.clone() },
            Request::Delete(name) => Action::Delete { name: name.clone() },
            Request::Create => unreachable!("handled above"),
        });
        self.pending = Some(request);
    }

    fn finish_step(&mut self, _now: Instant) {
        if self.phase != Phase::Stopped {
            self.pump();
        }
        let work_deadline = match self.work {
            Work::Stopping { deadline } => Some(deadline),
            _ => None,
        };
        let next = [
            self.step_down_at,
            work_deadline,
            self.retry_at,
            self.stop_deadline,
        ]
        .into_iter()
        .flatten()
        .min();
        if next != self.timer {
            self.timer = next;
            self.out.push(Action::SetTimer(next));
        }
    }

    fn set_state(&mut self, now: Instant, to: ElectionState, reason: Reason) {
        if to == self.state {
            return;
        }
        self.emit_transition(now, to, reason);
    }

    fn emit_transition(&mut self, now: Instant, to: ElectionState, reason: Reason) {
        let from = std::mem::replace(&mut self.state, to.clone());
        info!(
            path = %self.cfg.path,
            candidate = %self.cfg.id,
            session = %self.session,
            token = ?to.token().or(from.token()),
            from = from.name(),
            to = to.name(),
            reason = ?reason,
            "election transition"
        );
        self.out.push(Action::Emit(Event::Transition(Transition {
            at: now,
            from,
            to,
            reason,
        })));
    }

    fn notice(&mut self, now: Instant, notice: Notice) {
        self.out
            .push(Action::Emit(Event::Notice { at: now, notice }));
    }
}

/// splitmix64: a small, seedable generator (jitter only; nothing here needs to be
/// unpredictable).
pub(crate) fn next_random(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `backoff` with "equal jitter": half of it, plus a random part of the other half
/// (`random` picks which), so retries spread over `[backoff / 2, backoff]`.
pub(crate) fn jittered(backoff: Duration, random: u64) -> Duration {
    let half = backoff / 2;
    let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
    let extra = if nanos == 0 { 0 } else { random % (nanos + 1) };
    backoff - half + Duration::from_nanos(extra)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::ListedEntry;

    const T: Duration = Duration::from_secs(3);
    const ME: SessionId = SessionId(7);

    fn cfg(has_work: bool) -> MachineConfig {
        MachineConfig {
            path: ElectionPath::new("/e").unwrap(),
            id: "me".into(),
            step_down_fraction: 2.0 / 3.0,
            grace: Duration::from_millis(500),
            rejoin_on_expiry: true,
            has_work,
            when_work_ends: WorkEnded::Resign,
            marker_prefix: 0xabcd,
        }
    }

    fn machine(has_work: bool) -> (Machine, Instant) {
        let now = Instant::now();
        let mut m = Machine::new(cfg(has_work), ME, T, SessionState::Connected, now);
        let out = m.take_actions();
        assert!(matches!(out.as_slice(), [Action::Create { .. }]), "{out:?}");
        (m, now)
    }

    fn marker_of(m: &Machine) -> Marker {
        match &m.phase {
            Phase::Registering { marker, .. } => marker.clone(),
            p => panic!("not registering: {p:?}"),
        }
    }

    fn entry(name: &str, seq: u64, owner: SessionId, marker: Marker) -> ListedEntry {
        ListedEntry {
            name: name.into(),
            sequence: seq,
            owner,
            marker,
        }
    }

    fn info(name: &str, seq: u64, marker: Marker) -> EntryInfo {
        EntryInfo {
            name: name.into(),
            sequence: seq,
            owner: ME,
            marker,
            token: FencingToken(100 + seq),
            data: vec![],
        }
    }

    fn other(seq: u64) -> ListedEntry {
        entry(
            &format!("o{seq}"),
            seq,
            SessionId(99),
            Marker::from_bits(seq),
        )
    }

    /// Registered as `mine` at `seq`, behind `ahead` other entries, listed.
    fn placed(has_work: bool, ahead: u64) -> (Machine, Instant, Vec<Action>) {
        let (mut m, now) = machine(has_work);
        let mk = marker_of(&m);
        m.handle(now, Input::Created(Ok(info("mine", ahead, mk.clone()))));
        let out = m.take_actions();
        assert!(
            out.contains(&Action::WatchOwn {
                name: "mine".into()
            }) && out.contains(&Action::List),
            "{out:?}"
        );
        let mut entries: Vec<_> = (0..ahead).map(other).collect();
        entries.push(entry("mine", ahead, ME, mk));
        m.handle(
            now,
            Input::Listed(Ok(Listing {
                entries,
                foreign: vec![],
            })),
        );
        let out = m.take_actions();
        (m, now, out)
    }

    #[test]
    fn unknown_create_is_looked_up_before_creating_again() {
        let (mut m, now) = machine(false);
        let mk = marker_of(&m);
        m.handle(
            now,
            Input::Created(Err(BackendError::new(ErrorKind::OutcomeUnknown, "lost"))),
        );
        assert!(!m
            .take_actions()
            .iter()
            .any(|a| matches!(a, Action::Create { .. } | Action::List)));
        m.handle(now + T, Input::Timer);
        assert_eq!(m.take_actions(), [Action::List, Action::SetTimer(None)]);
        // Found, owned by us: adopted after a read, no second create.
        let l = Listing {
            entries: vec![entry("mine", 0, ME, mk.clone())],
            foreign: vec![],
        };
        m.handle(now + T, Input::Listed(Ok(l)));
        assert_eq!(
            m.take_actions(),
            [Action::Read {
                name: "mine".into()
            }]
        );
        m.handle(
            now + T,
            Input::Read {
                name: "mine".into(),
                result: Ok(Some(info("mine", 0, mk))),
            },
        );
        let out = m.take_actions();
        assert!(
            out.contains(&Action::WatchOwn {
                name: "mine".into()
            }),
            "{out:?}"
        );
        assert!(!out.iter().any(|a| matches!(a, Action::Create { .. })));
    }

    #[test]
    fn marker_under_another_session_is_not_adopted() {
        // CURATOR-696: an entry with our marker from an older session is not ours to lead with.
        let (mut m, now) = machine(false);
        let mk = marker_of(&m);
        m.handle(
            now,
            Input::Created(Err(BackendError::new(ErrorKind::OutcomeUnknown, "lost"))),
        );
        m.handle(now + T, Input::Timer);
        m.take_actions();
        let l = Listing {
            entries: vec![entry("old", 0, SessionId(3), mk)],
            foreign: vec![],
        };
        m.handle(now + T, Input::Listed(Ok(l)));
        let out = m.take_actions();
        assert!(
            out.iter().any(|a| matches!(a, Action::Create { .. })),
            "{out:?}"
        );
        assert!(!m.state().is_leader());
    }

    #[test]
    fn first_in_listing_but_foreign_owner_does_not_lead() {
        let (mut m, now) = machine(false);
        let mk = marker_of(&m);
        m.handle(now, Input::Created(Ok(info("mine", 0, mk.clone()))));
        m.take_actions();
        let l = Listing {
            entries: vec![entry("mine", 0, SessionId(3), mk)],
            foreign: vec![],
        };
        m.handle(now, Input::Listed(Ok(l)));
        assert!(!m.state().is_leader());
        assert_eq!(*m.state(), ElectionState::Joining);
        assert!(m
            .take_actions()
            .iter()
            .any(|a| matches!(a, Action::Create { .. })));
    }

    #[test]
    fn first_in_listing_leads_and_starts_work() {
        let (m, _, out) = placed(true, 0);
        assert!(
            out.contains(&Action::StartWork {
                token: FencingToken(100)
            }),
            "{out:?}"
        );
        assert_eq!(m.state().token(), Some(FencingToken(100)));
    }

    #[test]
    fn head_handover_claims_after_reading_its_own_entry_without_listing() {
        let (mut m, now, out) = placed(false, 1);
        assert!(
            out.contains(&Action::WatchPredecessor { name: "o0".into() }),
            "{out:?}"
        );
        assert!(matches!(
            m.state(),
            ElectionState::Follower { position: 1, .. }
        ));
        m.take_actions();
        m.handle(
            now,
            Input::PredecessorGone {
                name: "o0".into(),
                result: Ok(()),
            },
        );
        assert_eq!(
            m.take_actions(),
            [Action::Read {
                name: "mine".into()
            }]
        );
        assert!(!m.state().is_leader());
        let mk = marker_of_entry();
        m.handle(
            now,
            Input::Read {
                name: "mine".into(),
                result: Ok(Some(info("mine", 1, mk))),
            },
        );
        assert!(m.state().is_leader());
        assert!(!m.take_actions().contains(&Action::List));
    }

    #[test]
    fn head_handover_with_our_entry_deleted_in_the_same_transaction_never_leads() {
        // An administrator's multi-op deletes the head and our entry at once; the predecessor's
        // notification comes first. The confirming read finds nothing: no phantom term.
        let (mut m, now, _) = placed(true, 1);
        m.take_actions();
        m.handle(
            now,
            Input::PredecessorGone {
                name: "o0".into(),
                result: Ok(()),
            },
        );
        m.handle(
            now,
            Input::Read {
                name: "mine".into(),
                result: Ok(None),
            },
        );
        assert_eq!(m.state(), &ElectionState::Joining);
        let out = m.take_actions();
        assert!(
            !out.iter().any(|a| matches!(a, Action::StartWork { .. })),
            "{out:?}"
        );
        assert!(
            !out.iter()
                .any(|a| matches!(a, Action::Emit(Event::Transition(t)) if t.to.is_leader())),
            "{out:?}"
        );
        assert!(
            out.iter().any(|a| matches!(a, Action::Create { .. })),
            "{out:?}"
        );
    }

    #[test]
    fn a_predecessor_that_was_not_head_means_listing_again() {
        let (mut m, now, _) = placed(false, 2);
        m.handle(
            now,
            Input::PredecessorGone {
                name: "o1".into(),
                result: Ok(()),
            },
        );
        assert!(m.take_actions().contains(&Action::List));
        assert!(!m.state().is_leader());
    }

    #[test]
    fn stale_predecessor_notifications_are_ignored() {
        let (mut m, now, _) = placed(false, 1);
        m.handle(
            now,
            Input::PredecessorGone {
                name: "someone-else".into(),
                result: Ok(()),
            },
        );
        assert!(!m.state().is_leader());
        assert!(m.take_actions().is_empty());
    }

    #[test]
    fn no_claim_while_disconnected() {
        let (mut m, now, _) = placed(false, 1);
        m.handle(
            now,
            Input::Session(SessionState::Disconnected { last_contact: now }),
        );
        m.handle(
            now,
            Input::PredecessorGone {
                name: "o0".into(),
                result: Ok(()),
            },
        );
        assert!(!m.state().is_leader());
        m.handle(now, Input::Session(SessionState::Connected));
        assert!(!m.state().is_leader());
        assert!(m.take_actions().contains(&Action::Read {
            name: "mine".into()
        }));
    }

    #[test]
    fn leader_out_of_contact_steps_down_before_the_budget_ends() {
        let (mut m, now, _) = placed(true, 0);
        let lc = now + Duration::from_secs(1);
        m.handle(
            lc + T / 3,
            Input::Session(SessionState::Disconnected { last_contact: lc }),
        );
        let step_down_at = lc + T * 2 / 3 - Duration::from_millis(500);
        assert_eq!(
            m.state(),
            &ElectionState::Leader {
                token: FencingToken(100),
                contact: Contact::Uncertain { step_down_at }
            }
        );
        assert!(m
            .take_actions()
            .contains(&Action::SetTimer(Some(step_down_at))));
        m.handle(step_down_at, Input::Timer);
        assert_eq!(m.state(), &ElectionState::Suspended);
        let out = m.take_actions();
        assert!(out.contains(&Action::CancelWork), "{out:?}");
        // The work gets until the budget's end, not a moment more.
        assert!(
            out.contains(&Action::SetTimer(Some(lc + T * 2 / 3))),
            "{out:?}"
        );
        m.handle(lc + T * 2 / 3, Input::Timer);
        assert!(m.take_actions().contains(&Action::AbortWork));
    }

    #[test]
    fn leader_that_learns_too_late_steps_down_at_once() {
        let (mut m, now, _) = placed(false, 0);
        m.handle(
            now + T,
            Input::Session(SessionState::Disconnected { last_contact: now }),
        );
        assert_eq!(m.state(), &ElectionState::Suspended);
    }

    #[test]
    fn reconnect_reverifies_before_confirming() {
        let (mut m, now, _) = placed(false, 0);
        m.handle(
            now,
            Input::Session(SessionState::Disconnected { last_contact: now }),
        );
        m.take_actions();
        m.handle(now + T / 3, Input::Session(SessionState::Connected));
        assert!(m.take_actions().contains(&Action::List));
        assert!(matches!(
            m.state(),
            ElectionState::Leader {
                contact: Contact::Uncertain { .. },
                ..
            }
        ));
        let l = Listing {
            entries: vec![entry("mine", 0, ME, marker_of_entry())],
            foreign: vec![],
        };
        m.handle(now + T / 3, Input::Listed(Ok(l)));
        assert!(matches!(
            m.state(),
            ElectionState::Leader {
                contact: Contact::Confirmed,
                ..
            }
        ));
    }

    fn marker_of_entry() -> Marker {
        Marker::from_bits((0xabcd_u64 << 32) | 1)
    }

    #[test]
    fn own_watch_failure_rearms_and_reverifies() {
        let (mut m, now, _) = placed(false, 1);
        m.take_actions();
        m.handle(
            now,
            Input::OwnGone {
                name: "mine".into(),
                result: Err(BackendError::new(ErrorKind::OutcomeUnknown, "x")),
            },
        );
        // Not at once (a watch that keeps failing would spin): after a back-off.
        let out = m.take_actions();
        assert!(
            !out.iter()
                .any(|a| matches!(a, Action::WatchOwn { .. } | Action::List)),
            "{out:?}"
        );
        let at = m.timer.expect("a retry timer");
        m.handle(at, Input::Timer);
        let out = m.take_actions();
        assert!(
            out.contains(&Action::WatchOwn {
                name: "mine".into()
            }),
            "{out:?}"
        );
        assert!(out.contains(&Action::List), "{out:?}");
    }

    fn machine_with_prefix(prefix: u32) -> (Machine, Instant) {
        let now = Instant::now();
        let cfg = MachineConfig {
            marker_prefix: prefix,
            ..cfg(false)
        };
        let mut m = Machine::new(cfg, ME, T, SessionState::Connected, now);
        m.take_actions();
        (m, now)
    }

    /// The delay before the retry the machine has just scheduled.
    fn retry_delay(m: &Machine, now: Instant) -> Duration {
        m.retry_at.expect("a retry is scheduled") - now
    }

    /// Issue 17, point 8: a create failing with `Other` is followed by a lookup listing whose
    /// success used to reset the back-off, so the create was retried every T/50 for ever. Now
    /// the create's own back-off keeps doubling.
    #[test]
    fn a_create_that_keeps_failing_backs_off_although_its_lookups_succeed() {
        let (mut m, mut now) = machine(false);
        let floor = T / 50;
        let mut delays = Vec::new();
        for _ in 0..6 {
            m.handle(
                now,
                Input::Created(Err(BackendError::new(ErrorKind::Other, "boom"))),
            );
            delays.push(retry_delay(&m, now));
            m.take_actions();
            now = m.retry_at.unwrap();
            m.handle(now, Input::Timer);
            assert_eq!(m.take_actions(), [Action::List, Action::SetTimer(None)]);
            m.handle(now, Input::Listed(Ok(Listing::default())));
            let out = m.take_actions();
            assert!(
                out.iter().any(|a| matches!(a, Action::Create { .. })),
                "{out:?}"
            );
        }
        for (k, d) in delays.iter().enumerate() {
            let backoff = (floor * 2u32.pow(k as u32)).min(T / 4);
            assert!(
                *d >= backoff / 2 && *d <= backoff,
                "retry {k}: {d:?} outside [{:?}, {backoff:?}] ({delays:?})",
                backoff / 2
            );
        }
    }

    /// Issue 17, point 8: a predecessor watch that keeps failing used to be re-listed and
    /// re-armed at once, round after round with no delay. Now each round waits a growing
    /// back-off.
    #[test]
    fn a_watch_that_keeps_failing_backs_off() {
        let (mut m, mut now, _) = placed(false, 1);
        m.take_actions();
        let mut delays = Vec::new();
        for _ in 0..5 {
            m.handle(
                now,
                Input::PredecessorGone {
                    name: "o0".into(),
                    result: Err(BackendError::new(ErrorKind::Other, "watch failed")),
                },
            );
            let out = m.take_actions();
            assert!(!out.contains(&Action::List), "re-listed at once: {out:?}");
            delays.push(retry_delay(&m, now));
            now = m.retry_at.unwrap();
            m.handle(now, Input::Timer);
            assert!(m.take_actions().contains(&Action::List));
            let l = Listing {
                entries: vec![other(0), entry("mine", 1, ME, marker_of_entry())],
                foreign: vec![],
            };
            m.handle(now, Input::Listed(Ok(l)));
            let out = m.take_actions();
            assert!(
                out.contains(&Action::WatchPredecessor { name: "o0".into() }),
                "{out:?}"
            );
        }
        assert!(
            delays.windows(2).all(|w| w[1] > w[0]),
            "not growing: {delays:?}"
        );
        assert!(delays[4] >= T / 50 * 8, "{delays:?}");
    }

    /// Issue 17, point 8: retries are jittered, deterministically per candidate: two
    /// candidates that fail at the same instant retry at different ones, and the same
    /// candidate (the same seed) always at the same one.
    #[test]
    fn retries_are_jittered_by_candidate() {
        let first_delay = |prefix| {
            let (mut m, now) = machine_with_prefix(prefix);
            m.handle(
                now,
                Input::Created(Err(BackendError::new(ErrorKind::Other, "boom"))),
            );
            retry_delay(&m, now)
        };
        let delays: Vec<Duration> = (1..=8).map(first_delay).collect();
        let mut distinct = delays.clone();
        distinct.sort();
        distinct.dedup();
        assert!(distinct.len() >= 6, "{delays:?}");
        assert_eq!(first_delay(3), delays[2]);
        for d in delays {
            assert!(d >= T / 100 && d <= T / 50, "{d:?}");
        }
    }

    #[test]
    fn jitter_stays_within_half_to_full_backoff() {
        let b = Duration::from_millis(100);
        let mut state = 1;
        for _ in 0..1000 {
            let d = jittered(b, next_random(&mut state));
            assert!(d >= b / 2 && d <= b, "{d:?}");
        }
        assert_eq!(jittered(Duration::ZERO, 7), Duration::ZERO);
    }

    #[test]
    fn own_entry_deleted_while_leading_steps_down_and_rejoins() {
        let (mut m, now, _) = placed(true, 0);
        m.take_actions();
        m.handle(
            now,
            Input::OwnGone {
                name: "mine".into(),
                result: Ok(()),
            },
        );
        assert_eq!(m.state(), &ElectionState::Joining);
        let out = m.take_actions();
        assert!(out.contains(&Action::CancelWork), "{out:?}");
        // Registering again at once is safe while the old term's work ends: the new entry sorts
        // last, so it cannot lead before everyone ahead of it.
        assert!(
            out.iter().any(|a| matches!(a, Action::Create { .. })),
            "{out:?}"
        );
    }

    #[test]
    fn resign_waits_for_work_then_deletes_then_rejoins() {
        let (mut m, now, _) = placed(true, 0);
        m.take_actions();
        m.handle(now, Input::Resign { rejoin: true });
        let out = m.take_actions();
        assert!(out.contains(&Action::CancelWork), "{out:?}");
        assert!(
            !out.iter().any(|a| matches!(a, Action::Delete { .. })),
            "deleted before the work ended: {out:?}"
        );
        assert_eq!(m.state(), &ElectionState::Suspended);
        m.handle(
            now,
            Input::WorkDone {
                end: WorkEnd::Returned,
                handover: false,
            },
        );
        assert!(m.take_actions().contains(&Action::Delete {
            name: "mine".into()
        }));
        m.handle(
            now,
            Input::Deleted {
                name: "mine".into(),
                result: Ok(()),
            },
        );
        let out = m.take_actions();
        assert!(out.contains(&Action::ResignDone), "{out:?}");
        assert!(
            out.iter().any(|a| matches!(a, Action::Create { .. })),
            "{out:?}"
        );
    }

    /// A leader whose work ends by itself at `after` (as `end`): the actions that follow.
    fn work_ends(m: &mut Machine, at: Instant, end: WorkEnd, handover: bool) -> Vec<Action> {
        m.handle(at, Input::WorkDone { end, handover });
        m.take_actions()
    }

    /// Deletes our entry as asked; the actions after.
    fn deleted(m: &mut Machine, at: Instant) -> Vec<Action> {
        m.handle(
            at,
            Input::Deleted {
                name: "mine".into(),
                result: Ok(()),
            },
        );
        m.take_actions()
    }

    fn last_transition(out: &[Action]) -> Option<&Transition> {
        out.iter().rev().find_map(|a| match a {
            Action::Emit(Event::Transition(t)) => Some(t),
            _ => None,
        })
    }

    #[test]
    fn work_that_ends_by_itself_resigns_and_rejoins_after_a_growing_backoff() {
        let (mut m, mut now, out) = placed(true, 0);
        assert!(out.iter().any(|a| matches!(a, Action::StartWork { .. })));
        let mut delays = Vec::new();
        for round in 0..6u64 {
            let out = work_ends(&mut m, now, WorkEnd::Failed(format!("boom {round}")), false);
            let t = last_transition(&out).expect("a transition");
            assert_eq!(t.reason, Reason::WorkFailed(format!("boom {round}")));
            assert_eq!(t.to, ElectionState::Suspended);
            assert!(
                out.contains(&Action::Delete {
                    name: "mine".into()
                }),
                "{out:?}"
            );
            assert!(
                !out.contains(&Action::CancelWork),
                "the work has ended: {out:?}"
            );
            let out = deleted(&mut m, now);
            assert!(!out.contains(&Action::ResignDone), "nobody asked: {out:?}");
            assert_eq!(m.state(), &ElectionState::Joining);
            // No create before the back-off is over.
            assert!(
                !out.iter().any(|a| matches!(a, Action::Create { .. })),
                "{out:?}"
            );
            let at = out
                .iter()
                .find_map(|a| match a {
                    Action::SetTimer(Some(at)) => Some(*at),
                    _ => None,
                })
                .expect("a timer for the back-off");
            delays.push(at - now);
            now = at;
            m.handle(now, Input::Timer);
            let out = m.take_actions();
            let Some(Action::Create { marker }) =
                out.iter().find(|a| matches!(a, Action::Create { .. }))
            else {
                panic!("no create after the back-off: {out:?}");
            };
            // Alone: leads again at once, and the work fails again at once.
            m.handle(
                now,
                Input::Created(Ok(info("mine", round + 1, marker.clone()))),
            );
            m.take_actions();
            let l = Listing {
                entries: vec![entry("mine", round + 1, ME, marker.clone())],
                foreign: vec![],
            };
            m.handle(now, Input::Listed(Ok(l)));
            assert!(m
                .take_actions()
                .iter()
                .any(|a| matches!(a, Action::StartWork { .. })));
        }
        // Doubling (with jitter in [b/2, b]) from T/20, capped at 4 T.
        for (k, d) in delays.iter().enumerate() {
            let b = (T / 20 * 2u32.pow(k as u32)).min(T * 4);
            assert!(
                *d >= b / 2 && *d <= b,
                "round {k}: {d:?} for {b:?} ({delays:?})"
            );
        }
        // A term that lasted resets it.
        now += T;
        work_ends(&mut m, now, WorkEnd::Returned, false);
        let out = deleted(&mut m, now);
        let at = out
            .iter()
            .find_map(|a| match a {
                Action::SetTimer(Some(at)) => Some(*at),
                _ => None,
            })
            .unwrap();
        assert!(at - now <= T / 20, "{:?}", at - now);
    }

    #[test]
    fn work_end_policies_leave_keep_leading_and_handover() {
        // Leave: stops for good, with the panic's message in the reason.
        let (mut m, now, _) = placed(true, 0);
        m.cfg.when_work_ends = WorkEnded::Leave;
        let out = work_ends(&mut m, now, WorkEnd::Panicked("oops".into()), false);
        assert_eq!(
            last_transition(&out).unwrap().reason,
            Reason::WorkPanicked("oops".into())
        );
        deleted(&mut m, now);
        assert_eq!(m.state(), &ElectionState::Stopped(StopReason::Resigned));

        // KeepLeading: today's behaviour, a notice and nothing else.
        let (mut m, now, _) = placed(true, 0);
        m.cfg.when_work_ends = WorkEnded::KeepLeading;
        let out = work_ends(&mut m, now, WorkEnd::Returned, false);
        assert!(m.state().is_leader(), "{out:?}");
        assert!(!out.iter().any(|a| matches!(a, Action::Delete { .. })));
        // ... but a hand-over (Term::resign) resigns whatever the policy.
        let (mut m, now, _) = placed(true, 0);
        m.cfg.when_work_ends = WorkEnded::KeepLeading;
        let out = work_ends(&mut m, now, WorkEnd::Returned, true);
        assert_eq!(last_transition(&out).unwrap().reason, Reason::Resigned);
        assert!(out.contains(&Action::Delete {
            name: "mine".into()
        }));
    }

    #[test]
    fn orphans_of_ours_are_deleted() {
        let (mut m, now) = machine(false);
        let mk = marker_of(&m);
        m.handle(now, Input::Created(Ok(info("mine", 1, mk.clone()))));
        m.take_actions();
        let orphan = entry("orphan", 0, ME, Marker::from_bits((0xabcd_u64 << 32) | 77));
        let l = Listing {
            entries: vec![orphan, entry("mine", 1, ME, mk)],
            foreign: vec![],
        };
        m.handle(now, Input::Listed(Ok(l)));
        // Behind our own orphan for now: delete it, and follow it meanwhile.
        let out = m.take_actions();
        assert!(
            out.contains(&Action::Delete {
                name: "orphan".into()
            }),
            "{out:?}"
        );
    }

    #[test]
    fn session_end_rejoins_with_a_new_session() {
        let (mut m, now, _) = placed(true, 0);
        m.take_actions();
        m.handle(now, Input::Session(SessionState::Expired));
        assert_eq!(m.state(), &ElectionState::Suspended);
        let out = m.take_actions();
        assert!(
            out.contains(&Action::OpenSession) && out.contains(&Action::CancelWork),
            "{out:?}"
        );
        m.handle(
            now,
            Input::SessionOpened {
                id: SessionId(8),
                timeout: T,
                state: SessionState::Connected,
            },
        );
        assert_eq!(m.state(), &ElectionState::Joining);
        assert!(m
            .take_actions()
            .iter()
            .any(|a| matches!(a, Action::Create { .. })));
    }

    #[test]
    fn work_is_aborted_at_once_when_the_session_ends_unforeseen() {
        // Leading and in contact: the expiry is news, and the successor may already lead.
        let (mut m, now, _) = placed(true, 0);
        assert!(m.state().is_leader());
        m.take_actions();
        m.handle(now, Input::Session(SessionState::Expired));
        let out = m.take_actions();
        let cancel = out.iter().position(|a| *a == Action::CancelWork);
        let abort = out.iter().position(|a| *a == Action::AbortWork);
        assert!(
            matches!((cancel, abort), (Some(c), Some(a)) if c < a),
            "cancel then abort in the same step: {out:?}"
        );
        // A work already stopping (stepped down with a grace left) is aborted too.
        let (mut m, now, _) = placed(true, 0);
        m.handle(
            now,
            Input::Session(SessionState::Disconnected { last_contact: now }),
        );
        m.handle(now + T / 2, Input::Timer);
        assert_eq!(m.state(), &ElectionState::Suspended);
        assert!(m.take_actions().contains(&Action::CancelWork));
        m.handle(now + T / 2, Input::Session(SessionState::Expired));
        assert!(m.take_actions().contains(&Action::AbortWork));
    }

    #[test]
    fn stop_is_bounded_when_the_backend_is_unreachable() {
        let (mut m, now, _) = placed(false, 1);
        m.handle(
            now,
            Input::Session(SessionState::Disconnected { last_contact: now }),
        );
        m.handle(now, Input::Stop);
        assert!(!m.take_actions().contains(&Action::Finished));
        m.handle(now + T + Duration::from_millis(500), Input::Timer);
        assert!(m.take_actions().contains(&Action::Finished));
        assert!(matches!(
            m.state(),
            ElectionState::Stopped(StopReason::Stopped)
        ));
    }

    #[test]
    fn session_gone_replies_before_the_state_change_do_not_busy_loop() {
        let (mut m, now) = machine(false);
        m.handle(
            now,
            Input::Created(Err(BackendError::new(ErrorKind::SessionGone, "expired"))),
        );
        let out = m.take_actions();
        assert!(
            !out.iter().any(|a| matches!(a, Action::Create { .. })),
            "re-sent at once: {out:?}"
        );
        // The state change then ends the session as usual.
        m.handle(now, Input::Session(SessionState::Expired));
        assert!(m.take_actions().contains(&Action::OpenSession));
    }

    /// Issue 17, point 7: a leader whose release delete was refused (NoAuth) stopped with its
    /// entry still at the head and its session alive: every follower waited for as long as the
    /// process lived. Now it closes the session, whose end deletes the entry.
    #[test]
    fn a_refused_release_delete_closes_the_session() {
        let (mut m, now, _) = placed(false, 0);
        m.take_actions();
        m.handle(now, Input::Resign { rejoin: false });
        assert!(m.take_actions().contains(&Action::Delete {
            name: "mine".into()
        }));
        m.handle(
            now,
            Input::Deleted {
                name: "mine".into(),
                result: Err(BackendError::new(ErrorKind::NotPermitted, "NoAuth")),
            },
        );
        let out = m.take_actions();
        assert!(out.contains(&Action::CloseSession), "{out:?}");
        assert!(!out.contains(&Action::Finished), "{out:?}");
        assert!(!m.state().is_leader());
        m.handle(now, Input::Session(SessionState::Closed));
        let out = m.take_actions();
        assert!(out.contains(&Action::ResignDone), "{out:?}");
        assert!(out.contains(&Action::Finished), "{out:?}");
        assert_eq!(m.state(), &ElectionState::Stopped(StopReason::Resigned));
    }

    /// Issue 17, point 7: a follower whose read of the leader's record (information only) was
    /// refused stopped for good. Now the leader stays unknown and the follower follows.
    #[test]
    fn an_unreadable_leader_record_is_unknown_not_fatal() {
        let (mut m, now, out) = placed(false, 1);
        assert!(out.contains(&Action::Read { name: "o0".into() }), "{out:?}");
        m.handle(
            now,
            Input::Read {
                name: "o0".into(),
                result: Err(BackendError::new(ErrorKind::NotPermitted, "NoAuth")),
            },
        );
        let out = m.take_actions();
        assert!(!out.contains(&Action::Finished), "{out:?}");
        assert!(
            matches!(
                m.state(),
                ElectionState::Follower {
                    position: 1,
                    leader: None
                }
            ),
            "{:?}",
            m.state()
        );
        // And it still takes over when the head leaves.
        m.handle(
            now,
            Input::PredecessorGone {
                name: "o0".into(),
                result: Ok(()),
            },
        );
        m.handle(
            now,
            Input::Read {
                name: "mine".into(),
                result: Ok(Some(info("mine", 1, marker_of_entry()))),
            },
        );
        assert!(m.state().is_leader());
    }

    /// Issue 17, point 7: a candidate that fails while it holds an entry closes its session,
    /// so that the entry does not outlive it on a session others keep alive.
    #[test]
    fn failing_while_holding_an_entry_closes_the_session() {
        let (mut m, now, _) = placed(false, 1);
        m.take_actions();
        m.handle(
            now,
            Input::PredecessorGone {
                name: "o0".into(),
                result: Err(BackendError::new(ErrorKind::Other, "x")),
            },
        );
        let at = m.retry_at.unwrap();
        m.handle(at, Input::Timer);
        assert!(m.take_actions().contains(&Action::List));
        m.handle(
            at,
            Input::Listed(Err(BackendError::new(ErrorKind::NotPermitted, "NoAuth"))),
        );
        let out = m.take_actions();
        assert!(out.contains(&Action::CloseSession), "{out:?}");
        assert!(out.contains(&Action::Finished), "{out:?}");
    }

    /// Issue 17, point 3: a persistent node with our entry format (a restored tree) was taken
    /// for a live candidate's entry: it never goes away, and nobody behind it ever led. Its
    /// watch now says it is not an entry: it is ignored, and the next listing places us
    /// without it.
    #[test]
    fn a_lookalike_predecessor_is_ignored() {
        let (mut m, now, out) = placed(false, 1);
        assert!(out.contains(&Action::WatchPredecessor { name: "o0".into() }));
        m.handle(now, Input::PredecessorNotAnEntry { name: "o0".into() });
        let out = m.take_actions();
        assert!(out.contains(&Action::List), "{out:?}");
        assert!(
            out.iter().any(|a| matches!(
                a,
                Action::Emit(Event::Notice {
                    notice: Notice::ForeignEntries(_),
                    ..
                })
            )),
            "{out:?}"
        );
        let l = Listing {
            entries: vec![other(0), entry("mine", 1, ME, marker_of_entry())],
            foreign: vec![],
        };
        m.handle(now, Input::Listed(Ok(l)));
        assert!(m.state().is_leader(), "{:?}", m.state());
    }

    /// Issue 17, point 3: the head read shows a persistent node (owner 0): the leader is
    /// unknown, not the look-alike's record.
    #[test]
    fn a_lookalike_head_is_not_reported_as_leader() {
        let (mut m, now, _) = placed(false, 2);
        m.take_actions();
        let mut persistent = info("o0", 0, Marker::from_bits(0));
        persistent.owner = SessionId(0);
        m.handle(
            now,
            Input::Read {
                name: "o0".into(),
                result: Ok(Some(persistent)),
            },
        );
        assert!(
            matches!(m.state(), ElectionState::Follower { leader: None, .. }),
            "{:?}",
            m.state()
        );
    }

    #[test]
    fn fatal_errors_stop_with_the_reason() {
        let (mut m, now) = machine(false);
        m.handle(
            now,
            Input::Created(Err(BackendError::new(ErrorKind::NotPermitted, "NoAuth"))),
        );
        assert!(
            matches!(m.state(), ElectionState::Stopped(StopReason::Failed(msg)) if msg.contains("NoAuth"))
        );
        assert!(m.take_actions().contains(&Action::Finished));
    }
}
