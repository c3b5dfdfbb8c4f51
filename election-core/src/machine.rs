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
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::backend::{
    Confirmation, EntryInfo, FencingToken, Listing, Marker, SessionId, SessionState,
};
use crate::error::{BackendError, ErrorKind};
use crate::foreign;
use crate::path::ElectionPath;
use crate::record::CandidateRecord;
use crate::state::{
    Contact, ElectionState, Event, ForeignContender, LeaderInfo, Notice, Reason, StopReason,
    Transition,
};
use crate::term::WorkEnded;

#[cfg(test)]
mod foreign_tests;
mod protocol;
#[cfg(test)]
mod tests;

pub(crate) use protocol::{Action, Input, MachineConfig, WorkEnd};

/// Our own entry.
#[derive(Clone, Debug, PartialEq, Eq)]
struct OwnEntry {
    name: Arc<str>,
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
    /// Giving the entry up: the work is stopped first, then the entry deleted. `delete_sent`:
    /// when the delete under way was sent (a rejoin waits as long again before it registers:
    /// see [`Machine::hold_off_rejoin`]).
    Releasing {
        entry: OwnEntry,
        delete_sent: Option<Instant>,
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
    /// (Names as boxed `str`s: 8 bytes less inline than `String`s; issue 12.)
    Following {
        predecessor: Arc<str>,
        ahead: Ahead,
    },
    /// The predecessor left: reading our own entry, and checking that nothing is left ahead of
    /// it (the entries that were, or the leader note naming it), before we claim.
    Confirming {
        predecessor: Arc<str>,
        ahead: Ahead,
    },
    Leading,
}

/// What a follower knows of the entries ahead of its predecessor, from its last listing. Once
/// the predecessor is gone, nothing new can come between them and us: entries sort in the order
/// the service created them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ahead {
    /// None: the predecessor was the head of our last listing. Our own entry is all there is to
    /// read (with the leader note, in one request).
    Head,
    /// One or more, all ours: the leader note decides (read with our own entry, in one request), or a
    /// listing. Checking the few that were ahead by reads in the same request, as this once did
    /// for up to 8, made a ZooKeeper `multiRead` of 10 reads at 10 candidates, 0.11-0.12 ms
    /// slower than one of 2 (issue 12); the note names the predecessor whenever it led, which is
    /// every hand-over of leadership.
    Others,
    /// A contender of another implementation was seen on the path (one may have come ahead
    /// since), or the predecessor was not the head and the backend keeps no leader notes:
    /// only a listing decides.
    Unknown,
}

/// What to do once the entry has been given up.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Goal {
    Run,
    Rejoin,
    /// Boxed: 8 bytes inline, not 24, in every candidate's task (issue 12).
    Stop(Box<StopReason>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Work {
    Idle,
    Running,
    /// Told to stop; aborted at [`Cold::work_deadline`].
    Stopping,
    /// Aborted after the grace; waiting for the driver to confirm.
    Aborting,
}

/// (Names as boxed `str`s: 8 bytes less inline than `String`s in every candidate's task;
/// issue 12.)
#[derive(Debug, Clone, PartialEq, Eq)]
enum Request {
    Create,
    List,
    Read(Arc<str>),
    /// Read our own entry, and the leader note ([`Action::Confirm`]).
    Confirm(Arc<str>),
    /// Record that our entry (this one) leads ([`Action::NoteLeader`]); preemptible.
    Note(Arc<str>),
    Delete(Arc<str>),
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

/// What a candidate's listings showed besides the entries it queues behind: foreign nodes,
/// contenders of other implementations, look-alikes. Most elections never have any, so a
/// machine keeps these collections (80 bytes inline) boxed, and only while one is not empty:
/// the machine lives inline in its candidate's task, one per election (issue 12).
#[derive(Debug, Default)]
struct Strangers {
    foreign: Vec<String>,
    /// How many more foreign children the last listing counted than it kept.
    foreign_omitted: usize,
    /// The foreign contenders of our last listing, as last reported.
    contenders: Vec<ForeignContender>,
    /// Nodes named like entries that are no live session's (persistent or ownerless): left out
    /// of every listing, as foreign nodes are.
    lookalikes: std::collections::BTreeSet<String>,
}

/// What a machine without [`Strangers`] reads.
static NO_STRANGERS: Strangers = Strangers {
    foreign: Vec::new(),
    foreign_omitted: 0,
    contenders: Vec::new(),
    lookalikes: std::collections::BTreeSet::new(),
};

impl Strangers {
    fn is_empty(&self) -> bool {
        self.foreign.is_empty()
            && self.foreign_omitted == 0
            && self.contenders.is_empty()
            && self.lookalikes.is_empty()
    }
}

/// Entries of ours to delete, oldest first (orphans a listing showed, S5). Boxed, and only
/// while any is queued: 8 bytes inline, not 32, in every candidate's task, for a queue most
/// candidates never fill (issue 12).
#[derive(Debug, Default)]
#[allow(clippy::box_collection)]
struct Orphans(Option<Box<VecDeque<String>>>);

impl Orphans {
    fn front(&self) -> Option<&String> {
        self.0.as_ref().and_then(|q| q.front())
    }

    fn is_empty(&self) -> bool {
        self.front().is_none()
    }

    fn contains(&self, name: &String) -> bool {
        self.0.as_ref().is_some_and(|q| q.contains(name))
    }

    fn push_back(&mut self, name: String) {
        self.0.get_or_insert_with(Box::default).push_back(name);
    }

    fn pop_front(&mut self) -> Option<String> {
        let queue = self.0.as_mut()?;
        let name = queue.pop_front();
        if queue.is_empty() {
            self.0 = None;
        }
        name
    }

    fn clear(&mut self) {
        self.0 = None;
    }
}

/// What a machine keeps of its terms' leader work. Only a candidate with leader work has it,
/// boxed: 48 bytes that most candidates of a process running thousands of elections would
/// otherwise carry inline in their tasks (issue 12).
#[derive(Debug, Default)]
struct WorkTerms {
    /// When the current term's work started.
    started: Option<Instant>,
    /// The token of the term whose work was started last: the one a `WorkDone` is about,
    /// whatever entry the candidate holds by the time it comes.
    token: Option<FencingToken>,
    /// The back-off before rejoining after work that ended by itself; doubles while terms keep
    /// ending soon after they start.
    backoff: Duration,
}

/// A machine's rarely set fields: a candidate connected, with no back-off, no stop under way
/// and no pending rejoin delay holds none of them, and the machine then keeps no [`Cold`] at
/// all (8 bytes inline, not 104, in every candidate's task; issue 12).
#[derive(Default)]
struct Cold {
    /// `None` while connected; the last contact while not.
    last_contact: Option<Instant>,
    retry_at: Option<Instant>,
    /// Our own entry's watch failed: arm it again once the back-off is over.
    rearm_own: Option<Arc<str>>,
    step_down_at: Option<Instant>,
    stop_deadline: Option<Instant>,
    /// While the work is [`Work::Stopping`]: when it is aborted if it has not ended. Here, not
    /// in the variant: 8 bytes less inline in every candidate's task (issue 12).
    work_deadline: Option<Instant>,
    /// Rejoin no sooner than this long after the release (work that ended by itself).
    rejoin_delay: Option<Duration>,
}

impl Cold {
    /// Nothing set.
    const NONE: Self = Self {
        last_contact: None,
        retry_at: None,
        rearm_own: None,
        step_down_at: None,
        stop_deadline: None,
        work_deadline: None,
        rejoin_delay: None,
    };

    fn is_empty(&self) -> bool {
        self.last_contact.is_none()
            && self.retry_at.is_none()
            && self.rearm_own.is_none()
            && self.step_down_at.is_none()
            && self.stop_deadline.is_none()
            && self.work_deadline.is_none()
            && self.rejoin_delay.is_none()
    }
}

/// The [`Cold`] fields of a machine that has none set.
static NO_COLD: Cold = Cold::NONE;

/// The election state machine of one candidate in one election.
pub(crate) struct Machine {
    cfg: MachineConfig,
    session: SessionId,
    /// The session timeout in nanoseconds (see [`timeout`](Self::timeout)): 8 bytes inline, not
    /// a `Duration`'s 16 (issue 12; 584 years fit).
    timeout_nanos: u64,
    /// What most candidates never set (a lost contact, a back-off, a stop under way): boxed,
    /// and only while any of it is set (see [`Cold`]).
    cold: Option<Box<Cold>>,
    session_over: bool,
    phase: Phase,
    goal: Goal,
    work: Work,
    pending: Option<Request>,
    want_list: bool,
    /// The record of the head of our last listing ([`head`](Self::head)) is to be read. A flag
    /// beside the head, not a copy of its name: 16 bytes less inline (issue 12).
    want_read: bool,
    /// A term began: record the leader note ([`Action::NoteLeader`]) while leading.
    want_note: bool,
    delete_queue: Orphans,
    /// The back-off of each kind of call, reset only when that kind succeeds. Boxed, and only
    /// while one is running: 80 bytes most candidates never need (issue 12).
    backoff: Option<Box<[Duration; Op::COUNT]>>,
    timer: Option<Instant>,
    attempt: u32,
    /// How many numbers the jitter generator gave (see [`Machine::random`]): a `u32` beside
    /// `attempt`, not the generator's 8-byte state (issue 12).
    draws: u32,
    /// The head of our last listing, and what we read of it. A boxed `str`: 8 bytes less
    /// inline than a `String` (issue 12).
    head: Option<Arc<str>>,
    /// Behind an `Arc`: 64 bytes inline that a candidate that leads, or has not read its leader
    /// yet, does not use, and one copy shared with the states it publishes (issue 12).
    leader: Option<Arc<LeaderInfo>>,
    /// What listings showed besides entries (see [`Strangers`]); `None` while nothing.
    strangers: Option<Box<Strangers>>,
    /// A contender of another implementation was seen on the path: no claim on a notification
    /// alone from then on (one may have come ahead of us since our last listing).
    seen_contenders: bool,
    /// The owner of the head of our last listing, as its name claims (`SessionId(0)`: none
    /// known; no live session has that id).
    head_owner: SessionId,
    /// A create on this session had an unknown outcome: sweep before finishing a stop.
    sweep_before_finish: bool,
    /// The session is being closed (an entry of ours could not be deleted): no more requests
    /// on it; its end decides what comes next.
    closing: bool,
    state: ElectionState,
    out: Vec<Action>,
    /// The terms' leader work, for a candidate that has leader work (see [`WorkTerms`]).
    work_terms: Option<Box<WorkTerms>>,
    /// A user's resignation waits for [`Action::ResignDone`].
    resign_asked: bool,
}

/// `d` in nanoseconds, saturating (a session timeout is minutes at most).
fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl Machine {
    /// The session timeout.
    fn timeout(&self) -> Duration {
        Duration::from_nanos(self.timeout_nanos)
    }

    /// A machine for a candidate that starts on session `session`.
    pub(crate) fn new(
        cfg: MachineConfig,
        session: SessionId,
        timeout: Duration,
        session_state: SessionState,
        now: Instant,
    ) -> Self {
        let mut m = Self {
            work_terms: cfg.has_work.then(Box::default),
            cfg,
            session,
            timeout_nanos: nanos(timeout),
            cold: None,
            session_over: false,
            phase: Phase::AwaitingSession,
            goal: Goal::Run,
            work: Work::Idle,
            pending: None,
            want_list: false,
            want_read: false,
            want_note: false,
            delete_queue: Orphans::default(),
            backoff: None,
            timer: None,
            attempt: 0,
            draws: 0,
            head: None,
            leader: None,
            strangers: None,
            seen_contenders: false,
            head_owner: SessionId(0),
            sweep_before_finish: false,
            closing: false,
            state: ElectionState::Joining,
            out: Vec::new(),
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

    /// The candidate id, as shared with its handle and its client.
    pub(crate) fn shared_id(&self) -> &std::sync::Arc<str> {
        &self.cfg.id
    }

    /// The election path.
    pub(crate) fn path(&self) -> &ElectionPath {
        &self.cfg.path
    }

    /// The high 32 bits of every marker this candidate uses.
    pub(crate) fn marker_prefix(&self) -> u32 {
        self.cfg.marker_prefix
    }

    /// What the listings showed besides entries (empty while nothing).
    fn strangers(&self) -> &Strangers {
        self.strangers.as_deref().unwrap_or(&NO_STRANGERS)
    }

    fn strangers_mut(&mut self) -> &mut Strangers {
        self.strangers.get_or_insert_with(Box::default)
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
            Input::Confirmed { name, result } => self.on_confirmed(now, name, result),
            Input::Noted { name, result } => {
                if matches!(&self.pending, Some(Request::Note(n)) if **n == *name) {
                    self.pending = None;
                    self.want_note = false;
                    if let Err(e) = result {
                        // Only a hint for successors: without it they list.
                        debug!(path = %self.cfg.path, candidate = %self.cfg.id, entry = %name, error = %e, "leader note not recorded");
                    }
                }
            }
            Input::PredecessorGone { name, result } => self.on_predecessor_gone(now, name, result),
            Input::PredecessorNotAnEntry { name } => self.on_predecessor_not_an_entry(now, name),
            Input::OwnGone { name, result } => self.on_own_gone(now, name, result),
            Input::WorkDone { end, handover } => self.on_work_done(now, end, handover),
            Input::Timer => self.on_timer(now),
            Input::Resign { rejoin } => {
                self.update_cold(|c| c.rejoin_delay = None);
                self.resign_asked = true;
                let goal = if rejoin {
                    Goal::Rejoin
                } else {
                    Goal::Stop(Box::new(StopReason::Resigned))
                };
                self.begin_release(now, goal, Reason::Resigned);
            }
            Input::Stop => self.begin_release(
                now,
                Goal::Stop(Box::new(StopReason::Stopped)),
                Reason::Stopped,
            ),
            Input::Close => self.begin_release(
                now,
                Goal::Stop(Box::new(StopReason::ClientClosed)),
                Reason::Stopped,
            ),
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
        self.timeout_nanos = nanos(timeout);
        self.session_over = false;
        self.sweep_before_finish = false;
        self.closing = false;
        let last_contact = match state {
            SessionState::Connected => None,
            SessionState::Disconnected { last_contact } => Some(last_contact),
            // A fresh session that is already over: handled as an expiry right away.
            SessionState::Expired | SessionState::Closed => Some(now),
        };
        self.update_cold(|c| c.last_contact = last_contact);
        self.pending = None;
        self.update_cold(|c| c.retry_at = None);
        self.update_cold(|c| c.rearm_own = None);
        self.want_list = false;
        self.want_read = false;
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

    /// The next number of the jitter generator: splitmix64 seeded from the marker prefix
    /// (deterministic for a given candidate, different across a fleet). splitmix64's state
    /// after `n` draws is the seed plus `n` times its increment, so the count is all it keeps.
    fn random(&mut self) -> u64 {
        let seed = u64::from(self.cfg.marker_prefix) ^ 0x6a09_e667_f3bc_c908;
        let mut state = seed.wrapping_add(SPLITMIX_GAMMA.wrapping_mul(u64::from(self.draws)));
        self.draws = self.draws.wrapping_add(1);
        next_random(&mut state)
    }

    /// A marker for a new create attempt: never reused, so that a create applied late (after
    /// the lookup that followed its lost reply) is an orphan of ours, not a twin of the next.
    fn next_marker(&mut self) -> Marker {
        self.attempt = self.attempt.wrapping_add(1);
        Marker::from_bits((u64::from(self.cfg.marker_prefix) << 32) | u64::from(self.attempt))
    }

    fn is_ours(&self, marker: &Marker) -> bool {
        // Our markers start with the 8 hex digits of `cfg.marker_prefix` (see `next_marker`);
        // a marker is inline, so nothing is kept per candidate and nothing allocated.
        let ours = Marker::from_bits(u64::from(self.cfg.marker_prefix) << 32);
        marker.as_str().as_bytes()[..8] == ours.as_str().as_bytes()[..8]
    }

    fn on_session(&mut self, now: Instant, state: SessionState) {
        if self.session_over {
            return;
        }
        match state {
            SessionState::Connected => {
                if self.update_cold(|c| c.last_contact.take()).is_none() {
                    return;
                }
                debug!(path = %self.cfg.path, candidate = %self.cfg.id, session = %self.session, "contact restored");
                // L5: keep the place, but verify it before claiming or going on leading.
                if let Phase::Holding { .. } = self.phase {
                    self.want_list = true;
                }
            }
            SessionState::Disconnected { last_contact } => {
                if self.cold().last_contact.is_some() {
                    return;
                }
                self.update_cold(|c| c.last_contact = Some(last_contact));
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
                let at = (last_contact + self.budget()).checked_sub(self.cfg.grace.get());
                let at = at.unwrap_or(last_contact).max(last_contact);
                let token = entry.token;
                self.update_cold(|c| c.step_down_at = Some(at));
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
        self.update_cold(|c| c.rejoin_delay = None);
        warn!(path = %self.cfg.path, candidate = %self.cfg.id, session = %self.session, "session ended");
        // Every entry of the session is gone: there is nothing left to delete or watch.
        self.pending = None;
        self.delete_queue.clear();
        self.want_list = false;
        self.want_read = false;
        self.update_cold(|c| c.retry_at = None);
        self.update_cold(|c| c.rearm_own = None);
        self.out.push(Action::UnwatchPredecessor);
        self.out.push(Action::UnwatchOwn);
        self.end_term(now);
        // S4: with the session gone our entry is gone (or going), and a successor may lead at
        // once: work still running gets no grace, it is aborted now.
        if self.work == Work::Stopping {
            self.out.push(Action::AbortWork);
            self.set_work(Work::Aborting);
        }
        self.update_cold(|c| c.step_down_at = None);
        match self.goal.clone() {
            Goal::Stop(reason) => {
                if *reason == StopReason::Resigned {
                    // The entry is gone with the session: the resignation is complete.
                    self.resign_done();
                }
                self.finish(now, *reason, Reason::SessionEnded)
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
        self.timeout().mul_f64(self.cfg.step_down_fraction)
    }

    /// The rarely set fields (all `None` when none is set).
    fn cold(&self) -> &Cold {
        self.cold.as_deref().unwrap_or(&NO_COLD)
    }

    /// Changes the rarely set fields: boxed while any is set, dropped once none is.
    fn update_cold<R>(&mut self, f: impl FnOnce(&mut Cold) -> R) -> R {
        match &mut self.cold {
            Some(cold) => {
                let r = f(cold);
                if cold.is_empty() {
                    self.cold = None;
                }
                r
            }
            None => {
                let mut cold = Cold::NONE;
                let r = f(&mut cold);
                if !cold.is_empty() {
                    self.cold = Some(Box::new(cold));
                }
                r
            }
        }
    }

    /// Moves the work to `work`; its abort deadline goes with the stopping stage.
    fn set_work(&mut self, work: Work) {
        self.work = work;
        if work != Work::Stopping && self.cold().work_deadline.is_some() {
            self.update_cold(|c| c.work_deadline = None);
        }
    }

    fn connected(&self) -> bool {
        self.cold().last_contact.is_none() && !self.session_over
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
            name: info.name.into(),
            token: info.token,
        };
        self.out.push(Action::WatchOwn {
            name: entry.name.clone(),
        });
        self.phase = Phase::Holding {
            entry: entry.clone(),
            role: Role::Verifying,
        };
        self.want_list = true;
        if self.goal != Goal::Run {
            self.release(now);
            return;
        }
        // S3: the create itself showed our entry alone in the directory, made by this session
        // (the backend vouches for it only on a create's reply): a listing now could show no
        // more, so lead without one. No leader note either: one is read only for a predecessor
        // that had many of ours ahead of it, and nothing of ours sorts ahead of this entry.
        // Not after a create of this session lost its reply: a listing also looks for that
        // create's entry, to delete it (S5).
        if info.sole && self.connected() && !self.sweep_before_finish {
            debug!(path = %self.cfg.path, candidate = %self.cfg.id, session = %self.session, entry = %entry.name, "the create found the directory empty: leading without a listing");
            self.head = Some(entry.name.clone());
            self.claim(now, entry, false);
            if matches!(
                self.phase,
                Phase::Holding {
                    role: Role::Leading,
                    ..
                }
            ) {
                self.want_list = false;
                self.want_note = false;
            }
        }
    }

    /// A read came back: it was for one of three things, each with its own handler.
    fn on_read(
        &mut self,
        now: Instant,
        name: String,
        result: Result<Option<EntryInfo>, BackendError>,
    ) {
        if !matches!(&self.pending, Some(Request::Read(n)) if **n == *name) {
            return;
        }
        self.pending = None;
        match &self.phase {
            Phase::Holding {
                entry,
                role: Role::Confirming { .. },
            } if *entry.name == *name => {
                let entry = entry.clone();
                self.on_claim_read(now, entry, result);
            }
            Phase::Registering { adopting, .. } if adopting.as_deref() == Some(name.as_str()) => {
                self.on_lookup_read(now, result);
            }
            _ => self.on_leader_read(now, name, result),
        }
    }

    /// S3: the read of our own entry that confirms a claim on the head hand-over.
    fn on_claim_read(
        &mut self,
        now: Instant,
        entry: OwnEntry,
        result: Result<Option<EntryInfo>, BackendError>,
    ) {
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
    }

    /// S3: the answer to [`Action::Confirm`]: our own entry, and the leader note (unless it
    /// names our predecessor, a listing decides, when the predecessor was not the head).
    fn on_confirmed(
        &mut self,
        now: Instant,
        name: String,
        result: Result<Confirmation, BackendError>,
    ) {
        if !matches!(&self.pending, Some(Request::Confirm(n)) if **n == *name) {
            return;
        }
        self.pending = None;
        let (entry, predecessor, head) = match &self.phase {
            Phase::Holding {
                entry,
                role: Role::Confirming { predecessor, ahead },
            } if *entry.name == *name => {
                (entry.clone(), predecessor.clone(), *ahead == Ahead::Head)
            }
            _ => return,
        };
        // Nothing is left ahead: the predecessor was the head of our last listing, or the head
        // once since (its note names it, and is written only after its claim was verified).
        let clear = |c: &Confirmation| head || c.leader_note.as_deref() == Some(&*predecessor);
        match result {
            Ok(c) if clear(&c) => self.on_claim_read(now, entry, Ok(c.own)),
            // Our entry is gone: that decides without a listing.
            Ok(Confirmation { own: None, .. }) => self.entry_lost(now),
            Ok(_) => {
                self.reset_backoff(Op::Read);
                self.phase = Phase::Holding {
                    entry,
                    role: Role::Verifying,
                };
                self.want_list = true;
            }
            Err(e) => self.on_claim_read(now, entry, Err(e)),
        }
    }

    /// S5: the read of an entry a lookup found under our marker after a create whose outcome
    /// was unknown: adopt it if it is still there and ours.
    fn on_lookup_read(&mut self, now: Instant, result: Result<Option<EntryInfo>, BackendError>) {
        match result {
            Ok(Some(info)) if info.owner == self.session => {
                self.reset_backoff(Op::Read);
                self.adopt(now, info);
            }
            // Gone since the lookup (deleted, or its session ended): register anew.
            Ok(_) => {
                if let Phase::Registering {
                    adopting, unknown, ..
                } = &mut self.phase
                {
                    *adopting = None;
                    *unknown = false;
                }
            }
            Err(e) => self.request_failed(now, Op::Read, &e),
        }
    }

    /// The read of the head's record, to say who leads (information only, and the look-alike
    /// check: a head that no live session owns leads nobody).
    fn on_leader_read(
        &mut self,
        now: Instant,
        name: String,
        result: Result<Option<EntryInfo>, BackendError>,
    ) {
        if result.is_ok() {
            self.reset_backoff(Op::Read);
        }
        match result {
            Ok(Some(info)) => {
                if self.want_read && self.head.as_deref() == Some(name.as_str()) {
                    self.want_read = false;
                }
                if self.head.as_deref() != Some(name.as_str()) {
                    return;
                }
                if info.owner == SessionId(0) || info.owner != self.head_owner {
                    // A look-alike at the head (persistent, or not owned by the session its
                    // name claims): nobody leads with it; whoever it is ahead of learns so from
                    // its watch.
                    self.found_lookalike(now, name);
                    return;
                }
                // A record, or the id alone (a candidate in a compatibility mode).
                match CandidateRecord::decode_entry(&info.data) {
                    Ok(record) => {
                        self.leader = Some(Arc::new(LeaderInfo {
                            id: record.id,
                            implementation: foreign::Implementation::Election,
                            payload: record.payload.into(),
                            token: info.token,
                            session: info.owner,
                        }));
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
                if self.want_read && self.head.as_deref() == Some(name.as_str()) {
                    self.want_read = false;
                }
            }
            // The head left already; the next listing tells who leads.
            Ok(None) => {
                if self.want_read && self.head.as_deref() == Some(name.as_str()) {
                    self.want_read = false;
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
        // Another tenant may have put thousands of children, or huge ones, under the path:
        // keep no more of them than the limits of a listing, whatever the backend kept.
        listing.bound();
        // Look-alikes found earlier are no candidates; forget those that are gone.
        if let Some(strangers) = &mut self.strangers {
            strangers.lookalikes.retain(|name| {
                listing.entries.iter().any(|e| e.name == *name)
                    || listing.contenders.iter().any(|c| c.name == *name)
            });
        }
        let lookalikes = &self.strangers().lookalikes;
        listing.entries.retain(|e| !lookalikes.contains(&e.name));
        listing.contenders.retain(|c| !lookalikes.contains(&c.name));
        // A persistent sequential node never goes away by itself: foreign, not a contender.
        if listing.contenders.iter().any(|c| c.owner == SessionId(0)) {
            let (persistent, live) = std::mem::take(&mut listing.contenders)
                .into_iter()
                .partition::<Vec<_>, _>(|c| c.owner == SessionId(0));
            listing.contenders = live;
            for c in persistent {
                listing.push_foreign(&c.name);
            }
        }
        let contenders = foreign::contenders(&foreign::queue(&listing, self.cfg.compatible));
        self.seen_contenders |= !contenders.is_empty();
        if contenders != self.strangers().contenders {
            self.strangers_mut().contenders = contenders.clone();
            warn!(path = %self.cfg.path, candidate = %self.cfg.id, contenders = ?contenders, "contenders of other implementations in the election path: none of ours leads while one is ahead");
            self.notice(now, Notice::ForeignContenders(contenders));
        }
        let seen = self.strangers();
        if listing.foreign != seen.foreign || listing.foreign_omitted != seen.foreign_omitted {
            let strangers = self.strangers_mut();
            strangers.foreign = listing.foreign.clone();
            strangers.foreign_omitted = listing.foreign_omitted;
            if !listing.foreign.is_empty() {
                warn!(path = %self.cfg.path, candidate = %self.cfg.id, foreign = ?listing.foreign, omitted = listing.foreign_omitted, "foreign nodes in the election path are ignored");
                self.notice(now, Notice::ForeignEntries(listing.foreign.clone()));
            }
            if listing.foreign_omitted > 0 {
                self.notice(now, Notice::ForeignEntriesOmitted(listing.foreign_omitted));
            }
        }
        if self.strangers.as_ref().is_some_and(|s| s.is_empty()) {
            self.strangers = None;
        }
        // S5: entries of ours (our marker prefix, our session) other than the current one are
        // orphans of lost create replies: delete them.
        let current = match &self.phase {
            Phase::Holding { entry, .. } | Phase::Releasing { entry, .. } => {
                Some(entry.name.clone())
            }
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
        match &mut self.phase {
            Phase::Registering {
                unknown: true,
                adopting,
                ..
            } => match adoptable {
                Some(name) => *adopting = Some(name),
                None => {
                    // Not applied (as far as this listing shows): the next attempt gets a
                    // marker of its own.
                    let fresh = self.next_marker();
                    if let Phase::Registering {
                        marker, unknown, ..
                    } = &mut self.phase
                    {
                        *marker = fresh;
                        *unknown = false;
                    }
                    // Leaving: nothing was registered, so nothing to create only to delete.
                    if self.goal != Goal::Run {
                        self.after_release(now);
                    }
                }
            },
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
        // Foreign contenders (Curator, kazoo) take their places in the queue too: never lead
        // beside one that is ahead of us.
        let queue = foreign::queue(listing, self.cfg.compatible);
        let Some(index) = queue.iter().position(|s| s.name() == &*entry.name) else {
            self.entry_lost(now);
            return;
        };
        // S3: the entry must be owned by our current session.
        if queue[index].owner() != self.session {
            self.entry_lost(now);
            return;
        }
        if index == 0 {
            self.head = Some(entry.name.clone());
            self.claim(now, entry, was_leading);
            return;
        }
        if was_leading {
            // Something sorts ahead of a leader: a foreign contender that came while we led (it
            // ignores our entries, so it leads already), or a non-conforming backend: stop
            // leading at once rather than trust it.
            let reason = if queue[..index].iter().any(|s| s.is_foreign()) {
                warn!(path = %self.cfg.path, candidate = %self.cfg.id, token = ?self.state.token(), "a foreign contender sorts ahead of the leader's entry; stepping down");
                Reason::ForeignContenderAhead
            } else {
                warn!(path = %self.cfg.path, candidate = %self.cfg.id, "an entry sorts ahead of the leader's; stepping down");
                Reason::EntryDeleted
            };
            self.step_down(now, reason);
        }
        let predecessor: Arc<str> = queue[index - 1].name().into();
        let head_slot = queue[0];
        let head = head_slot.name().to_owned();
        if self.head.as_deref() != Some(head.as_str()) {
            self.head = Some(head.as_str().into());
            self.head_owner = head_slot.owner();
            match head_slot {
                // A foreign head: the listing has its data; nothing to read.
                foreign::Slot::Foreign(c, kind) => {
                    self.leader = Some(Arc::new(foreign::leader_of(c, kind)));
                    self.want_read = false;
                }
                foreign::Slot::Ours(_) => {
                    self.leader = None;
                    self.want_read = true;
                }
            }
        }
        // The head left and we were next: nothing of ours can come between, but a foreign
        // contender that does not order ours sorts ahead whenever it comes. After a foreign
        // predecessor, list again rather than confirm.
        // Once a contender of another implementation was seen on the path, every claim comes
        // from a listing.
        // Behind more than the head, the leader note decides, where the backend keeps notes;
        // without them, only the head's successor confirms by reading.
        let ahead = if self.seen_contenders {
            Ahead::Unknown
        } else if index == 1 {
            Ahead::Head
        } else if self.cfg.leader_notes {
            Ahead::Others
        } else {
            Ahead::Unknown
        };
        let watching = matches!(role, Role::Following { predecessor: p, .. } if *p == *predecessor);
        if !watching {
            self.out.push(Action::WatchPredecessor {
                name: predecessor.clone(),
            });
        }
        self.phase = Phase::Holding {
            entry,
            role: Role::Following { predecessor, ahead },
        };
        // From Follower, a new state means a new position, and positions only fall while we
        // hold one entry (new entries sort behind all existing ones): someone ahead left.
        let reason = match &self.state {
            ElectionState::Follower { .. } => Reason::PredecessorLeft,
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
        self.update_cold(|c| c.step_down_at = None);
        let token = entry.token;
        self.phase = Phase::Holding {
            entry,
            role: Role::Leading,
        };
        self.leader = None;
        // The record of a head we followed says nothing a leader needs.
        self.want_read = false;
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
        self.want_note = self.cfg.leader_notes;
        if self.cfg.has_work {
            self.work = Work::Running;
            let terms = self.work_terms.get_or_insert_with(Box::default);
            terms.started = Some(now);
            terms.token = Some(token);
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
        name: Arc<str>,
        result: Result<(), BackendError>,
    ) {
        let Phase::Holding {
            entry,
            role: Role::Following { predecessor, ahead },
        } = &self.phase
        else {
            return;
        };
        if **predecessor != *name {
            return;
        }
        let (entry, predecessor, ahead) = (entry.clone(), predecessor.clone(), *ahead);
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
            // Behind more than the head, the same read takes the leader note, which shows
            // whether the predecessor led (so nothing was left ahead of it): one round trip,
            // however long the queue, where a listing grows with it. When it does not name the
            // predecessor, a listing decides.
            Ok(()) if !self.want_list && ahead != Ahead::Unknown => {
                self.phase = Phase::Holding {
                    entry,
                    role: Role::Confirming { predecessor, ahead },
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
    fn on_predecessor_not_an_entry(&mut self, now: Instant, name: Arc<str>) {
        let Phase::Holding {
            entry,
            role: Role::Following { predecessor, .. },
        } = &self.phase
        else {
            return;
        };
        if **predecessor != *name {
            return;
        }
        self.phase = Phase::Holding {
            entry: entry.clone(),
            role: Role::Verifying,
        };
        self.found_lookalike(now, name.to_string());
        self.want_list = true;
    }

    fn found_lookalike(&mut self, now: Instant, name: String) {
        if !self.strangers_mut().lookalikes.insert(name.clone()) {
            return;
        }
        warn!(path = %self.cfg.path, candidate = %self.cfg.id, entry = %name, "a node named like an entry is no live session's (persistent or ownerless): ignored as foreign");
        if self.head.as_deref() == Some(name.as_str()) {
            self.head = None;
            self.head_owner = SessionId(0);
            self.leader = None;
            self.want_read = false;
        }
        self.notice(now, Notice::ForeignEntries(vec![name]));
    }

    fn on_own_gone(&mut self, now: Instant, name: Arc<str>, result: Result<(), BackendError>) {
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
                self.update_cold(|c| c.rearm_own = Some(name));
                self.want_list = true;
                self.retry_later(now, Op::Watch, &e);
            }
        }
    }

    /// Our entry vanished while the session lives (deleted by someone else, or the election root
    /// was deleted): step down if leading, then register again (L5, CURATOR-171).
    fn entry_lost(&mut self, now: Instant) {
        warn!(path = %self.cfg.path, candidate = %self.cfg.id, session = %self.session, "our entry was deleted by someone else; registering again");
        self.update_cold(|c| c.rearm_own = None);
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
        self.update_cold(|c| c.step_down_at = None);
        self.end_term(now);
        if let Some(lc) = self.cold().last_contact {
            // S2: the work may run until the budget is spent, not past it.
            let limit = lc + self.budget();
            if self.work == Work::Stopping {
                self.update_cold(|c| {
                    if let Some(deadline) = &mut c.work_deadline {
                        *deadline = (*deadline).min(limit).max(now);
                    }
                });
            }
        }
        self.set_state(now, ElectionState::Suspended, reason);
    }

    /// Ends the current term's work, if any (S4): signal, and abort after the grace.
    fn end_term(&mut self, now: Instant) {
        if self.work == Work::Running {
            let deadline = now + self.cfg.grace.get();
            self.set_work(Work::Stopping);
            self.update_cold(|c| c.work_deadline = Some(deadline));
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
            let stop_deadline = Some(now + self.timeout() + self.cfg.grace.get());
            self.update_cold(|c| c.stop_deadline = stop_deadline);
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
            // (A lookup's find, `adopting`, is only ever made while `unknown`.)
            Phase::Registering { unknown, .. }
                if self.pending == Some(Request::Create) || *unknown => {}
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
        self.phase = Phase::Releasing {
            entry,
            delete_sent: None,
        };
        self.want_list = false;
        self.want_read = false;
    }

    fn on_deleted(&mut self, now: Instant, name: String, result: Result<(), BackendError>) {
        if !matches!(&self.pending, Some(Request::Delete(n)) if **n == *name) {
            return;
        }
        self.pending = None;
        let done = match &result {
            Ok(()) => true,
            Err(e) => e.kind() == ErrorKind::NotFound,
        };
        if let Phase::Releasing { entry, delete_sent } = &self.phase {
            if *entry.name == *name {
                if done {
                    let delete_sent = *delete_sent;
                    self.released(now);
                    self.hold_off_rejoin(now, delete_sent);
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

    /// The entry is gone (deleted by us, or found gone): rejoin or stop.
    fn released(&mut self, now: Instant) {
        self.reset_backoff(Op::Delete);
        self.update_cold(|c| c.rearm_own = None);
        self.out.push(Action::UnwatchOwn);
        self.after_release(now);
    }

    /// A resignation that rejoins at once registers again one round trip after its entry is
    /// gone: the delete's own, measured from `delete_sent` to `now`, at most a twentieth of the
    /// session timeout, and none when the delete took no time.
    ///
    /// The successor confirms its claim as soon as our entry is gone, with one read (S3). A
    /// create sent as soon as the delete is answered reaches the service just as that read
    /// does, and the read waits behind it (a standalone ZooKeeper holds reads behind writes not
    /// yet logged; on etcd both go through raft): the hand-over took two round trips where it
    /// needs one (measured on ZooKeeper 3.8 and etcd 3.4, issue 12). Once the successor has
    /// read, our create costs it nothing, and we rejoin at the tail either way.
    fn hold_off_rejoin(&mut self, now: Instant, delete_sent: Option<Instant>) {
        let Some(sent) = delete_sent else {
            return;
        };
        let hold = now.saturating_duration_since(sent).min(self.timeout() / 20);
        if hold.is_zero()
            || !matches!(self.phase, Phase::Registering { .. })
            || self.cold().retry_at.is_some()
            || !self.connected()
        {
            return;
        }
        debug!(path = %self.cfg.path, candidate = %self.cfg.id, session = %self.session, hold = ?hold, "rejoining one round trip after the delete, once the successor has read");
        self.update_cold(|c| c.retry_at = Some(now + hold));
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
    /// decides what comes next, as for an expiry. Called once per session at most: it answers
    /// a delete's reply, and neither a closing session nor an ended one has a request under way
    /// (both drop it, and `pump` sends nothing more).
    fn close_session(&mut self, now: Instant, e: &BackendError) {
        tracing::error!(path = %self.cfg.path, candidate = %self.cfg.id, session = %self.session, error = %e, "an entry of ours cannot be deleted: closing the session so that the service deletes it");
        self.closing = true;
        self.pending = None;
        self.update_cold(|c| c.retry_at = None);
        self.update_cold(|c| c.rearm_own = None);
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
                if let Some(delay) = self.update_cold(|c| c.rejoin_delay.take()) {
                    // Work that ended at once: the others lead meanwhile, and nothing spins.
                    debug!(path = %self.cfg.path, candidate = %self.cfg.id, session = %self.session, delay = ?delay, "rejoining after a back-off: the leader work ended by itself");
                    self.update_cold(|c| c.retry_at = Some(now + delay));
                }
            }
            Goal::Stop(reason) => {
                if self.sweep_before_finish && !self.session_over {
                    self.phase = Phase::Sweeping {
                        listed: false,
                        stop: *reason,
                    };
                    return;
                }
                self.stop_now(now, *reason);
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
            self.set_work(Work::Idle);
        }
        self.phase = Phase::Stopped;
        self.pending = None;
        self.update_cold(|c| c.step_down_at = None);
        self.update_cold(|c| c.retry_at = None);
        self.update_cold(|c| c.stop_deadline = None);
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
            Work::Stopping | Work::Aborting => false,
        };
        if end == WorkEnd::Aborted {
            if let Some(token) = self.work_terms.as_ref().and_then(|w| w.token) {
                warn!(path = %self.cfg.path, candidate = %self.cfg.id, token = %token, session = %self.session, "leader work overran its grace and was aborted");
                self.notice(now, Notice::WorkOverranGrace(token));
            }
        }
        self.set_work(Work::Idle);
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
                self.begin_release(now, Goal::Stop(Box::new(StopReason::Resigned)), reason);
            }
            WorkEnded::Resign => {
                let timeout = self.timeout();
                let terms = self.work_terms.get_or_insert_with(Box::default);
                let lasted = terms
                    .started
                    .map_or(Duration::ZERO, |start| now.saturating_duration_since(start));
                if lasted >= timeout / 2 {
                    terms.backoff = Duration::ZERO;
                }
                let floor = (timeout / 20).max(Duration::from_millis(1));
                terms.backoff = (terms.backoff * 2).clamp(floor, timeout * 4);
                let delay = jittered(terms.backoff, self.random());
                self.update_cold(|c| c.rejoin_delay = Some(delay));
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

    fn on_timer(&mut self, now: Instant) {
        if self.cold().step_down_at.is_some_and(|t| t <= now) {
            self.update_cold(|c| c.step_down_at = None);
            if self.state.is_leader() {
                warn!(path = %self.cfg.path, candidate = %self.cfg.id, token = ?self.state.token(), session = %self.session, "no contact within the step-down budget: stepping down");
                self.step_down(now, Reason::StepDownDeadline);
            }
        }
        if self.work == Work::Stopping && self.cold().work_deadline.is_some_and(|d| d <= now) {
            self.out.push(Action::AbortWork);
            self.set_work(Work::Aborting);
        }
        if self.cold().retry_at.is_some_and(|t| t <= now) {
            self.update_cold(|c| c.retry_at = None);
        }
        if self.cold().stop_deadline.is_some_and(|t| t <= now) {
            warn!(path = %self.cfg.path, candidate = %self.cfg.id, session = %self.session, "stop could not withdraw the entry in time; the client sweeps it when the session next has contact");
            let reason = match &self.goal {
                Goal::Stop(r) => StopReason::clone(r),
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
        if let Some(backoff) = &mut self.backoff {
            backoff[op as usize] = Duration::ZERO;
            if backoff.iter().all(Duration::is_zero) {
                self.backoff = None;
            }
        }
    }

    /// Holds every request back for the back-off of `op`, which doubles (from T/50 up to T/4)
    /// with each failure of that kind of call, with jitter: a fleet that failed together (an
    /// ensemble failover) does not retry in step.
    fn retry_later(&mut self, now: Instant, op: Op, e: &BackendError) {
        let timeout = self.timeout();
        let floor = (timeout / 50).max(Duration::from_millis(1));
        let backoff = &mut self.backoff.get_or_insert_with(Box::default)[op as usize];
        *backoff = (*backoff * 2).clamp(floor, timeout / 4);
        let backoff = *backoff;
        let delay = jittered(backoff, self.random());
        debug!(path = %self.cfg.path, candidate = %self.cfg.id, error = %e, op = ?op, backoff = ?backoff, delay = ?delay, "backend call failed; retrying");
        self.notice(now, Notice::Retrying(e.to_string()));
        if self.connected() {
            self.update_cold(|c| c.retry_at = Some(now + delay));
        }
    }

    /// Issues the next backend request, if one is wanted and none is under way.
    fn pump(&mut self, now: Instant) {
        // A read of the leader's record only informs: anything else may take its place (the
        // driver drops the read under way; it is asked again later).
        let preemptible = matches!(self.pending, Some(Request::Read(_) | Request::Note(_)))
            && !matches!(
                self.phase,
                Phase::Registering {
                    adopting: Some(_),
                    ..
                }
            );
        if !self.connected() || self.cold().retry_at.is_some() || self.closing {
            return;
        }
        if let Some(name) = self.update_cold(|c| c.rearm_own.take()) {
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
            } => Request::Read(name.as_str().into()),
            Phase::Registering { unknown: true, .. } => Request::List,
            // S5: orphans of ours that a listing showed go before we create again.
            Phase::Registering { marker, .. } => match self.delete_queue.front() {
                Some(name) => Request::Delete(name.as_str().into()),
                None => {
                    let marker = marker.clone();
                    self.pending = Some(Request::Create);
                    self.out.push(Action::Create { marker });
                    return;
                }
            },
            // S5: orphans of ours that a listing showed go before our own entry: once that is
            // deleted we finish, and they would stay behind.
            Phase::Releasing { entry, .. } if self.work == Work::Idle => {
                match self.delete_queue.front() {
                    Some(name) => Request::Delete(name.as_str().into()),
                    None => {
                        let name = entry.name.clone();
                        // A rejoin without a back-off waits one round trip before it registers:
                        // the delete's (see `hold_off_rejoin`).
                        if self.goal == Goal::Rejoin && self.cold().rejoin_delay.is_none() {
                            if let Phase::Releasing { delete_sent, .. } = &mut self.phase {
                                *delete_sent = Some(now);
                            }
                        }
                        Request::Delete(name)
                    }
                }
            }
            Phase::Holding {
                entry,
                role: Role::Confirming { ahead, .. },
            } if self.work == Work::Idle => match ahead {
                // The predecessor was the head: our own entry is all there is to read. Where
                // leaders keep notes, the same one request reads the note too: the note this
                // claim writes then needs no read of its own.
                Ahead::Head if !self.cfg.leader_notes => Request::Read(entry.name.clone()),
                _ => {
                    let name: Arc<str> = entry.name.clone();
                    self.out.push(Action::Confirm {
                        name: name.to_string(),
                        note: self.cfg.leader_notes,
                    });
                    self.pending = Some(Request::Confirm(name));
                    return;
                }
            },
            Phase::Holding { .. } if self.want_list => Request::List,
            Phase::Holding { .. } | Phase::Releasing { .. } => {
                if let Some(name) = self.delete_queue.front() {
                    Request::Delete(name.as_str().into())
                } else if let (true, Some(name)) = (self.want_read, &self.head) {
                    if preemptible {
                        return;
                    }
                    Request::Read(name.clone())
                } else if let (
                    true,
                    Phase::Holding {
                        entry,
                        role: Role::Leading,
                    },
                ) = (self.want_note, &self.phase)
                {
                    if preemptible {
                        return;
                    }
                    Request::Note(entry.name.clone())
                } else {
                    return;
                }
            }
            Phase::Sweeping { listed: false, .. } => Request::List,
            Phase::Sweeping { listed: true, .. } => match self.delete_queue.front() {
                Some(name) => Request::Delete(name.as_str().into()),
                None => return,
            },
            Phase::AwaitingSession | Phase::Stopped => return,
        };
        self.out.push(match &request {
            Request::List => Action::List,
            Request::Read(name) => Action::Read {
                name: name.to_string(),
            },
            Request::Delete(name) => Action::Delete {
                name: name.to_string(),
            },
            Request::Note(name) => Action::NoteLeader {
                name: name.to_string(),
            },
            Request::Create | Request::Confirm(_) => {
                unreachable!("handled above")
            }
        });
        self.pending = Some(request);
    }

    fn finish_step(&mut self, now: Instant) {
        if self.phase != Phase::Stopped {
            self.pump(now);
        }
        let work_deadline = self.cold().work_deadline;
        let next = [
            self.cold().step_down_at,
            work_deadline,
            self.cold().retry_at,
            self.cold().stop_deadline,
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

/// splitmix64's increment.
const SPLITMIX_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// splitmix64: a small, seedable generator (jitter only; nothing here needs to be
/// unpredictable).
pub(crate) fn next_random(state: &mut u64) -> u64 {
    *state = state.wrapping_add(SPLITMIX_GAMMA);
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
