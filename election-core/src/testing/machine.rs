//! The I/O-free election machine alone, driven step by step against a small model of the
//! service, for fuzzing and property tests: every [`Step`] is an event the outside world can
//! cause (a reply, a failure, a lost reply, a disconnect, an expiry, another candidate joining or
//! leaving, an administrator deleting our entry, leader work ending, time passing, a user
//! command), and after every step the machine's actions are executed by the model and checked.
//!
//! Checks, by contract line (a [`Violation`] names the line):
//! - **S1 beside another implementation**: no claim while a foreign contender (a stock Curator
//!   latch, [`Step::ForeignJoin`]) created before our entry is there.
//! - **S2**: while out of contact, the machine leaves the Leader state, and its work ends, before
//!   `last_contact + step_down_fraction x timeout`.
//! - **S3**: it starts work and enters the Leader state only while its entry is the head of the
//!   queue, owned by its live session, with contact.
//! - **S4**: it starts a term's work only when the last term's work has ended, and never deletes
//!   the entry it holds while its work runs.
//! - **S5**: it never creates a second entry while it knows of one (a create whose reply was lost
//!   is looked up first), an entry applied late is deleted once seen, nothing of ours is left
//!   once everything settled, and a clean stop leaves no entry.
//! - **L1**: once the faults stop and the others leave, it leads (or finishes, if told to stop).
//! - The driver's contract: at most one backend request at a time; a new session only after the
//!   old one ended; nothing after `Finished`.
//!
//! Any sequence of steps is valid input: a step that makes no sense now does nothing.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::backend::SessionState;
use crate::backend::{
    EntryInfo, FencingToken, ListedContender, ListedEntry, Listing, Marker, SessionId,
};
use crate::error::{BackendError, ErrorKind};
use crate::machine::{Action, Input, Machine, MachineConfig, WorkEnd};
use crate::path::ElectionPath;
use crate::record::CandidateRecord;
use crate::state::{ElectionState, Event, StopReason};
use crate::term::WorkEnded;

use super::invariants::Violation;

/// The machine's settings for one run.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Setup {
    /// Step-down fraction in percent (clamped into 5..=95).
    pub fraction_pct: u8,
    /// Leader-work grace in percent of the step-down budget (clamped into 1..=90).
    pub grace_pct: u8,
    /// Whether the candidate rejoins after its session ends.
    pub rejoin: bool,
    /// Whether the candidate has leader work.
    pub has_work: bool,
    /// What the candidate does when its work ends by itself while leading.
    pub when_work_ends: WorkEnded,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            fraction_pct: 66,
            grace_pct: 25,
            rejoin: true,
            has_work: true,
            when_work_ends: WorkEnded::Resign,
        }
    }
}

/// One event from outside the machine.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Step {
    /// The service answers the request under way (or the new session is ready).
    Reply,
    /// The request under way fails without being applied (`kind` picks the error kind among
    /// outcome unknown, other, already exists, not permitted and invalid).
    Fail(u8),
    /// The request under way is applied but its reply is lost (outcome unknown).
    LoseReply,
    /// The create under way fails with outcome unknown and is not applied yet: the service
    /// applies it later, just after the next create (a request still in the pipeline).
    LateCreate,
    /// Replies stop coming: the session is disconnected.
    Disconnect,
    /// Contact resumes (or the machine learns its session expired meanwhile).
    Reconnect,
    /// The session expires: out of contact, once the timeout has passed since the last contact
    /// (time advances to then); in contact, an administrator's forced expiry.
    Expire,
    /// Another candidate joins at the tail.
    Join,
    /// Another candidate's entry (picked by index) leaves.
    Leave(u8),
    /// Another candidate's entry leaves and contact is lost at the same instant: the
    /// disconnect is handled first (the driver puts session changes first), then the
    /// notification that was already on its way.
    LeaveAndDisconnect(u8),
    /// An administrator deletes our entry.
    DeleteOwn,
    /// An armed watch fails while the session lives and stays connected: the predecessor's,
    /// or with the high bit set our own entry's. The low bits pick the error kind as for
    /// [`Step::Fail`], plus `SessionGone` (a client can report one without the session
    /// ending: a watch torn down with its task, a session moved to another server). The
    /// machine must look again or re-arm: nothing may wait with nothing armed.
    WatchFail(u8),
    /// Leader work returns by itself (or, once cancelled, stops in time).
    WorkDone,
    /// Leader work ends by itself while it runs: fails (`0`), panics (`1`), or hands over with
    /// `Term::resign` and returns (otherwise). Once cancelled, as [`Step::WorkDone`].
    WorkEnds(u8),
    /// Time advances to the machine's next deadline, which fires.
    Timer,
    /// Time advances by this many milliseconds (deadlines on the way fire).
    Advance(u16),
    /// The user resigns (`true`: rejoin at the tail).
    Resign(bool),
    /// The user stops the candidate.
    Stop,
    /// A contender of another implementation (a stock Curator latch) joins at the tail: it does
    /// not see our entries, so none of ours may claim while it is there; it leaves as others
    /// do ([`Step::Leave`]).
    ForeignJoin,
}

const TIMEOUT: Duration = Duration::from_secs(3);
const OTHERS: u64 = 1 << 40;

#[derive(Clone, Debug)]
struct Entry {
    name: String,
    seq: u64,
    owner: u64,
    marker: Marker,
    token: u64,
    mine: bool,
    /// A contender of another implementation (listed apart, as a contender).
    foreign: bool,
    /// Applied late (the machine cannot know of it before its next listing).
    late: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Pending {
    Create(Marker),
    List,
    Read(String),
    /// Read our own entry (and the leader note?).
    Confirm(String, bool),
    /// Record the leader note.
    Note(String),
    Delete(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Work {
    Idle,
    Running(FencingToken),
    Cancelled(FencingToken),
}

/// A run of the machine against the model service.
struct Run {
    machine: Machine,
    budget: Duration,
    now: Instant,
    zxid: u64,
    next_seq: u64,
    next_session: u64,
    session: u64,
    server_alive: bool,
    told_over: bool,
    connected: bool,
    last_contact: Instant,
    entries: Vec<Entry>,
    pending: Option<Pending>,
    opening: bool,
    pred_watch: Option<Arc<str>>,
    own_watch: Option<Arc<str>>,
    deferred: Vec<Input>,
    timer: Option<Instant>,
    work: Work,
    inbox: VecDeque<Input>,
    finished: bool,
    state: ElectionState,
    last_term: Option<FencingToken>,
    stop_at: Option<Instant>,
    rejoin: bool,
    late_marker: Option<Marker>,
    /// The leader note: the last entry recorded as leading (by the machine, or by another
    /// candidate that led before it left).
    note: Option<String>,
    resigns_pending: usize,
    /// The machine has work and a policy by which the term ends with it.
    leads_only_with_work: bool,
    /// The machine handed a sweep of its entries to the client: done once the session has
    /// contact.
    sweep_pending: bool,
    /// Sessions the machine closed while the service could not be reached: the service expires
    /// them (and deletes their entries) a timeout later, which `calm` lets happen.
    closed_unreachable: Vec<u64>,
    trace: String,
}

/// Runs `steps` on a fresh machine with `setup`, then lets it settle without faults, checking
/// every invariant on the way. Returns the trace, or the first violation with the trace so far.
pub fn run_steps(setup: &Setup, steps: &[Step]) -> Result<String, (Violation, String)> {
    let mut run = Run::new(setup);
    let mut result = run.drain();
    for (i, step) in steps.iter().enumerate() {
        if result.is_err() || run.finished {
            break;
        }
        let _ = writeln!(run.trace, "#{i} {step:?}");
        result = run.step(step).and_then(|()| run.drain());
    }
    if result.is_ok() {
        let _ = writeln!(run.trace, "calm");
        result = run.calm();
    }
    match result {
        Ok(()) => Ok(run.trace),
        Err(v) => {
            let _ = writeln!(run.trace, "VIOLATION {v}");
            Err((v, run.trace))
        }
    }
}

fn err(kind: ErrorKind, what: &str) -> BackendError {
    BackendError::new(kind, what)
}

/// The failures a service can report for a request it did not apply. (`NotFound` and
/// `SessionGone` are the model's to give, when true: a lying service is out of scope.)
fn kind_of(k: u8) -> ErrorKind {
    match k % 5 {
        0 => ErrorKind::OutcomeUnknown,
        1 => ErrorKind::Other,
        2 => ErrorKind::AlreadyExists,
        3 => ErrorKind::NotPermitted,
        _ => ErrorKind::Invalid,
    }
}

/// The failures a watch can report while its session lives: those of [`kind_of`], plus
/// `SessionGone`.
fn watch_kind_of(k: u8) -> ErrorKind {
    match k % 6 {
        5 => ErrorKind::SessionGone,
        k => kind_of(k),
    }
}

impl Run {
    fn new(setup: &Setup) -> Self {
        let fraction = f64::from(setup.fraction_pct.clamp(5, 95)) / 100.0;
        let budget = TIMEOUT.mul_f64(fraction);
        let grace = budget.mul_f64(f64::from(setup.grace_pct.clamp(1, 90)) / 100.0);
        let cfg = MachineConfig {
            path: ElectionPath::new("/fuzz/election").expect("valid path"),
            id: "me".into(),
            step_down_fraction: fraction,
            grace: grace.into(),
            rejoin_on_expiry: setup.rejoin,
            has_work: setup.has_work,
            when_work_ends: setup.when_work_ends,
            marker_prefix: 0x5eed,
            compatible: None,
            leader_notes: true,
        };
        let now = Instant::now();
        let machine = Machine::new(cfg, SessionId(1), TIMEOUT, SessionState::Connected, now);
        Self {
            machine,
            budget,
            now,
            zxid: 0,
            next_seq: 0,
            next_session: 2,
            session: 1,
            server_alive: true,
            told_over: false,
            connected: true,
            last_contact: now,
            entries: Vec::new(),
            pending: None,
            opening: false,
            pred_watch: None,
            own_watch: None,
            deferred: Vec::new(),
            timer: None,
            work: Work::Idle,
            inbox: VecDeque::new(),
            finished: false,
            state: ElectionState::Joining,
            last_term: None,
            stop_at: None,
            rejoin: setup.rejoin,
            leads_only_with_work: setup.has_work && setup.when_work_ends != WorkEnded::KeepLeading,
            late_marker: None,
            note: None,
            resigns_pending: 0,
            sweep_pending: false,
            closed_unreachable: Vec::new(),
            trace: String::new(),
        }
    }

    fn ours(&self) -> impl Iterator<Item = &Entry> {
        self.entries
            .iter()
            .filter(move |e| e.mine && e.owner == self.session)
    }

    /// Ours, without entries applied late that no listing has shown yet.
    fn ours_known(&self) -> impl Iterator<Item = &Entry> {
        self.ours().filter(|e| !e.late)
    }

    fn input(&mut self, input: Input) -> Result<(), Violation> {
        if self.finished {
            return Ok(());
        }
        self.machine.handle(self.now, input);
        self.actions()
    }

    /// Delivers queued inputs (watch firings, work endings) until none is left.
    fn drain(&mut self) -> Result<(), Violation> {
        self.actions()?;
        while let Some(input) = self.inbox.pop_front() {
            self.input(input)?;
        }
        self.check()?;
        self.check_armed()
    }

    /// Nothing waits with nothing armed: a running candidate whose session is connected always
    /// has a request under way, a timer set, work that will report its end, a new session
    /// coming, or the watch its state relies on (a follower its predecessor's, a leader its
    /// own entry's; any watch otherwise). Out of contact, the session's next state is what it
    /// waits for.
    fn check_armed(&self) -> Result<(), Violation> {
        if self.finished || !self.connected || !self.server_alive || self.opening {
            return Ok(());
        }
        let busy = self.pending.is_some()
            || self.timer.is_some()
            || !self.inbox.is_empty()
            || matches!(self.work, Work::Cancelled(_));
        let watching = match self.state {
            ElectionState::Follower { .. } => self.pred_watch.is_some(),
            ElectionState::Leader { .. } => self.own_watch.is_some(),
            _ => self.pred_watch.is_some() || self.own_watch.is_some(),
        };
        if busy || watching {
            Ok(())
        } else {
            Err(Violation::new(
                "L1",
                format!(
                    "waiting in {:?} with no request, watch, timer or listing wanted",
                    self.state
                ),
            ))
        }
    }

    fn remove(&mut self, name: &str) -> bool {
        let Some(i) = self.entries.iter().position(|e| e.name == name) else {
            return false;
        };
        self.entries.remove(i);
        self.zxid += 1;
        let fired = |w: &mut Option<Arc<str>>| w.as_deref() == Some(name) && w.take().is_some();
        if fired(&mut self.pred_watch) {
            let input = Input::PredecessorGone {
                name: name.into(),
                result: Ok(()),
            };
            self.notify(input);
        }
        if fired(&mut self.own_watch) {
            let input = Input::OwnGone {
                name: name.into(),
                result: Ok(()),
            };
            self.notify(input);
        }
        true
    }

    fn notify(&mut self, input: Input) {
        if !self.server_alive {
            return;
        }
        if self.connected {
            self.inbox.push_back(input);
        } else {
            self.deferred.push(input);
        }
    }

    fn info(&self, e: &Entry) -> EntryInfo {
        let id = if e.mine {
            "me".to_owned()
        } else {
            format!("other-{}", e.owner)
        };
        EntryInfo {
            name: e.name.clone(),
            sequence: e.seq,
            owner: SessionId(e.owner),
            marker: e.marker.clone(),
            token: FencingToken(e.token),
            data: CandidateRecord {
                id,
                payload: Vec::new(),
            }
            .encode(),
            sole: false,
        }
    }

    fn create(&mut self, owner: u64, marker: Marker, mine: bool) -> Entry {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.zxid += 1;
        let entry = Entry {
            name: format!("_c_{marker}-{owner:016x}-{seq:010}"),
            seq,
            owner,
            marker,
            token: self.zxid,
            mine,
            foreign: false,
            late: false,
        };
        self.entries.push(entry.clone());
        entry
    }

    /// Applies the pending request on the service; its reply.
    fn apply(&mut self, pending: Pending) -> Input {
        match pending {
            Pending::Create(marker) => {
                // As a backend that can tell: nothing else in the directory as it is made.
                let sole = self.entries.is_empty();
                let e = self.create(self.session, marker, true);
                if let Some(late) = self.late_marker.take() {
                    self.create(self.session, late, true);
                    if let Some(l) = self.entries.last_mut() {
                        l.late = true;
                    }
                }
                Input::Created(Ok(EntryInfo {
                    sole,
                    ..self.info(&e)
                }))
            }
            Pending::List => {
                for e in &mut self.entries {
                    e.late = false;
                }
                let mut sorted = self.entries.clone();
                sorted.sort_by_key(|e| e.seq);
                Input::Listed(Ok(Listing {
                    entries: sorted
                        .iter()
                        .filter(|e| !e.foreign)
                        .map(|e| ListedEntry {
                            name: e.name.clone(),
                            sequence: e.seq,
                            owner: SessionId(e.owner),
                            marker: e.marker.clone(),
                        })
                        .collect(),
                    contenders: sorted
                        .iter()
                        .filter(|e| e.foreign)
                        .map(|e| ListedContender {
                            name: e.name.clone(),
                            sequence: e.seq,
                            owner: SessionId(e.owner),
                            token: FencingToken(e.token),
                            data: b"curator-peer".to_vec(),
                        })
                        .collect(),
                    foreign: Vec::new(),
                    foreign_omitted: 0,
                }))
            }
            Pending::Read(name) => {
                let result = Ok(self
                    .entries
                    .iter()
                    .find(|e| e.name == name)
                    .map(|e| self.info(e)));
                Input::Read { name, result }
            }
            Pending::Confirm(name, note) => {
                let own = self
                    .entries
                    .iter()
                    .find(|e| e.name == name)
                    .map(|e| self.info(e));
                Input::Confirmed {
                    name,
                    result: Ok(crate::backend::Confirmation {
                        own,
                        leader_note: if note { self.note.clone() } else { None },
                    }),
                }
            }
            Pending::Note(name) => {
                self.note = Some(name.clone());
                Input::Noted {
                    name,
                    result: Ok(()),
                }
            }
            Pending::Delete(name) => {
                let result = if self.remove(&name) {
                    Ok(())
                } else {
                    Err(err(ErrorKind::NotFound, "no such entry"))
                };
                Input::Deleted { name, result }
            }
        }
    }

    fn failed(pending: Pending, e: BackendError) -> Input {
        match pending {
            Pending::Create(_) => Input::Created(Err(e)),
            Pending::List => Input::Listed(Err(e)),
            Pending::Read(name) => Input::Read {
                name,
                result: Err(e),
            },
            Pending::Delete(name) => Input::Deleted {
                name,
                result: Err(e),
            },
            Pending::Confirm(name, ..) => Input::Confirmed {
                name,
                result: Err(e),
            },
            Pending::Note(name) => Input::Noted {
                name,
                result: Err(e),
            },
        }
    }

    /// A request that cannot reach the service fails as a real client's would.
    fn unreachable(&self) -> Option<BackendError> {
        if !self.connected {
            Some(err(ErrorKind::OutcomeUnknown, "connection loss"))
        } else if !self.server_alive {
            Some(err(ErrorKind::SessionGone, "session expired"))
        } else {
            None
        }
    }

    fn step(&mut self, step: &Step) -> Result<(), Violation> {
        match step {
            Step::Reply => {
                if let Some(p) = self.pending.take() {
                    let input = match self.unreachable() {
                        Some(e) => Self::failed(p, e),
                        None => self.apply(p),
                    };
                    self.input(input)?;
                } else if self.opening {
                    self.opening = false;
                    self.session = self.next_session;
                    self.next_session += 1;
                    self.server_alive = true;
                    self.told_over = false;
                    self.connected = true;
                    self.input(Input::SessionOpened {
                        id: SessionId(self.session),
                        timeout: TIMEOUT,
                        state: SessionState::Connected,
                    })?;
                }
            }
            Step::Fail(k) => {
                if let Some(p) = self.pending.take() {
                    let input = Self::failed(p, err(kind_of(*k), "injected failure"));
                    self.input(input)?;
                }
            }
            Step::LateCreate => {
                if let Some(Pending::Create(marker)) = &self.pending {
                    if self.unreachable().is_none() && self.late_marker.is_none() {
                        self.late_marker = Some(marker.clone());
                        self.pending = None;
                        let e = err(ErrorKind::OutcomeUnknown, "request timed out");
                        self.input(Input::Created(Err(e)))?;
                    }
                }
            }
            Step::LoseReply => {
                if let Some(p) = self.pending.take() {
                    if self.unreachable().is_none() {
                        // A listing whose reply is lost shows the machine nothing: entries it
                        // has not seen stay unseen.
                        let unseen: Vec<String> = self
                            .entries
                            .iter()
                            .filter(|e| e.late)
                            .map(|e| e.name.clone())
                            .collect();
                        let _ = self.apply(p.clone());
                        for e in &mut self.entries {
                            if unseen.contains(&e.name) {
                                e.late = true;
                            }
                        }
                    }
                    let input = Self::failed(p, err(ErrorKind::OutcomeUnknown, "reply lost"));
                    self.input(input)?;
                }
            }
            Step::Disconnect => {
                if self.connected && !self.told_over && !self.opening {
                    self.connected = false;
                    self.last_contact = self.now;
                    let last_contact = self.now;
                    self.input(Input::Session(SessionState::Disconnected { last_contact }))?;
                }
            }
            Step::Reconnect => {
                if !self.connected && !self.told_over {
                    self.connected = true;
                    if self.server_alive {
                        self.client_sweep();
                        self.input(Input::Session(SessionState::Connected))?;
                        let deferred = std::mem::take(&mut self.deferred);
                        self.inbox.extend(deferred);
                    } else {
                        self.told_over = true;
                        self.deferred.clear();
                        self.input(Input::Session(SessionState::Expired))?;
                    }
                }
            }
            Step::Expire => {
                if self.server_alive && !self.told_over && !self.opening {
                    if !self.connected {
                        let at = self.last_contact + TIMEOUT;
                        self.advance_to(at)?;
                    }
                    self.expire_server();
                    if self.connected {
                        self.told_over = true;
                        self.input(Input::Session(SessionState::Expired))?;
                    }
                }
            }
            Step::Join => {
                let owner = OTHERS + self.zxid;
                let marker = Marker::from_bits(0xffff_0000_0000 + self.zxid);
                self.create(owner, marker, false);
            }
            Step::ForeignJoin => {
                let owner = OTHERS + self.zxid;
                let seq = self.next_seq;
                self.next_seq += 1;
                self.zxid += 1;
                self.entries.push(Entry {
                    name: format!(
                        "_c_{:08x}-5eed-4000-8000-{seq:012x}-latch-{seq:010}",
                        self.zxid
                    ),
                    seq,
                    owner,
                    marker: Marker::from_bits(0xfeed_0000_0000 + self.zxid),
                    token: self.zxid,
                    mine: false,
                    foreign: true,
                    late: false,
                });
            }
            Step::Leave(i) => {
                let others: Vec<String> = self
                    .entries
                    .iter()
                    .filter(|e| !e.mine)
                    .map(|e| e.name.clone())
                    .collect();
                if !others.is_empty() {
                    let name = others[usize::from(*i) % others.len()].clone();
                    // Another candidate at the head led, and recorded its note, before it left.
                    let head = self.entries.iter().min_by_key(|e| e.seq);
                    if head.is_some_and(|h| h.name == name && !h.foreign) {
                        self.note = Some(name.clone());
                    }
                    self.remove(&name);
                }
            }
            Step::LeaveAndDisconnect(i) => {
                if !self.connected || self.told_over || self.opening {
                    return Ok(());
                }
                self.step(&Step::Leave(*i))?;
                let queued: Vec<Input> = self.inbox.drain(..).collect();
                self.connected = false;
                self.last_contact = self.now;
                let last_contact = self.now;
                self.input(Input::Session(SessionState::Disconnected { last_contact }))?;
                self.inbox.extend(queued);
            }
            Step::DeleteOwn => {
                let mine: Vec<String> = self.ours().map(|e| e.name.clone()).collect();
                if let Some(name) = mine.first() {
                    self.remove(name);
                }
            }
            Step::WatchFail(k) => {
                let result = Err(err(watch_kind_of(k & 0x7f), "watch failed"));
                if k & 0x80 != 0 {
                    if let Some(name) = self.own_watch.take() {
                        self.input(Input::OwnGone { name, result })?;
                    }
                } else if let Some(name) = self.pred_watch.take() {
                    self.input(Input::PredecessorGone { name, result })?;
                }
            }
            Step::WorkDone => match self.work {
                Work::Running(_) | Work::Cancelled(_) => {
                    self.work = Work::Idle;
                    self.inbox.push_back(Input::WorkDone {
                        end: WorkEnd::Returned,
                        handover: false,
                    });
                }
                Work::Idle => {}
            },
            Step::WorkEnds(k) => match self.work {
                Work::Running(_) | Work::Cancelled(_) => {
                    self.work = Work::Idle;
                    let (end, handover) = match k % 3 {
                        0 => (WorkEnd::Failed("failed".into()), false),
                        1 => (WorkEnd::Panicked("panicked".into()), false),
                        _ => (WorkEnd::Returned, true),
                    };
                    self.inbox.push_back(Input::WorkDone { end, handover });
                }
                Work::Idle => {}
            },
            Step::Timer => {
                if let Some(at) = self.timer {
                    self.advance_to(at.max(self.now))?;
                }
            }
            Step::Advance(ms) => {
                let at = self.now + Duration::from_millis(u64::from(*ms));
                self.advance_to(at)?;
            }
            Step::Resign(rejoin) => {
                self.resigns_pending += 1;
                if !matches!(self.state, ElectionState::Stopped(_)) && !*rejoin {
                    self.stop_at.get_or_insert(self.now);
                }
                self.input(Input::Resign { rejoin: *rejoin })?;
            }
            Step::Stop => {
                self.stop_at.get_or_insert(self.now);
                self.input(Input::Stop)?;
            }
        }
        Ok(())
    }

    /// The client's sweep of a stopped machine's entries, once the session has contact.
    fn client_sweep(&mut self) {
        if !self.sweep_pending || !self.connected || !self.server_alive {
            return;
        }
        self.sweep_pending = false;
        let mine: Vec<String> = self.ours().map(|e| e.name.clone()).collect();
        for name in mine {
            self.remove(&name);
        }
    }

    fn expire_server(&mut self) {
        self.server_alive = false;
        // A request of a session that ended is never applied.
        self.late_marker = None;
        self.pred_watch = None;
        self.own_watch = None;
        self.deferred.clear();
        let mine: Vec<String> = self
            .entries
            .iter()
            .filter(|e| e.owner == self.session)
            .map(|e| e.name.clone())
            .collect();
        for name in mine {
            self.remove(&name);
        }
    }

    /// Advances time to `at`, firing the machine's deadlines on the way, as tokio's timer would.
    fn advance_to(&mut self, at: Instant) -> Result<(), Violation> {
        loop {
            match self.timer {
                Some(t) if t <= at && !self.finished => {
                    self.now = self.now.max(t);
                    self.timer = None;
                    self.check()?;
                    self.input(Input::Timer)?;
                    self.drain()?;
                }
                _ => break,
            }
        }
        self.now = self.now.max(at);
        self.check()
    }

    fn actions(&mut self) -> Result<(), Violation> {
        let was_finished = self.finished;
        for action in self.machine.take_actions() {
            // The driver executes the rest of the batch that holds `Finished`, then stops.
            if was_finished {
                return Err(Violation::new(
                    "driver",
                    format!("action {action:?} after Finished"),
                ));
            }
            self.action(action)?;
        }
        Ok(())
    }

    fn request(&mut self, p: Pending) -> Result<(), Violation> {
        // One request at a time, except that a read (which changes nothing) may be replaced: the
        // driver then drops it, and its reply never comes.
        if let Some(old) = &self.pending {
            if !matches!(old, Pending::Read(_) | Pending::Note(_)) {
                return Err(Violation::new(
                    "driver",
                    format!("request {p:?} issued while {old:?} is under way"),
                ));
            }
        }
        self.pending = Some(p);
        Ok(())
    }

    fn watch(&mut self, name: Arc<str>, own: bool) {
        let exists = self.entries.iter().any(|e| *e.name == *name);
        let unreachable = self.unreachable();
        let slot = if own {
            &mut self.own_watch
        } else {
            &mut self.pred_watch
        };
        *slot = None;
        let result = match unreachable {
            Some(e) => Err(e),
            None if exists => {
                *slot = Some(name);
                return;
            }
            None => Ok(()),
        };
        self.inbox.push_back(if own {
            Input::OwnGone { name, result }
        } else {
            Input::PredecessorGone { name, result }
        });
    }

    fn action(&mut self, action: Action) -> Result<(), Violation> {
        match action {
            Action::OpenSession => {
                if !self.told_over {
                    return Err(Violation::new(
                        "driver",
                        "asked for a new session while the old one lives",
                    ));
                }
                if !self.rejoin {
                    return Err(Violation::new(
                        "L4",
                        "opened a new session to rejoin although re-candidacy is off",
                    ));
                }
                self.opening = true;
                self.pending = None;
                self.pred_watch = None;
                self.own_watch = None;
            }
            Action::SweepLater => {
                self.sweep_pending = true;
                self.client_sweep();
            }
            Action::CloseSession => {
                if !self.told_over {
                    // Closed from this side: the service deletes the session's entries (if it
                    // can be reached; else they go when it expires), and the client reports the
                    // session closed at once.
                    if self.connected && self.server_alive {
                        self.expire_server();
                    } else if self.server_alive {
                        self.closed_unreachable.push(self.session);
                    }
                    self.told_over = true;
                    self.pending = None;
                    self.deferred.clear();
                    self.inbox.push_back(Input::Session(SessionState::Closed));
                }
            }
            Action::Create { marker } => {
                if let Some(e) = self.ours_known().next() {
                    return Err(Violation::new(
                        "S5",
                        format!("a second create while {} is held by this session", e.name),
                    ));
                }
                self.request(Pending::Create(marker))?;
            }
            Action::List => self.request(Pending::List)?,
            Action::Read { name } => self.request(Pending::Read(name))?,
            Action::Confirm { name, note } => self.request(Pending::Confirm(name, note))?,
            Action::NoteLeader { name } => self.request(Pending::Note(name))?,
            Action::Delete { name } => {
                // The entry of the term whose work still runs.
                let term = match self.work {
                    Work::Running(t) | Work::Cancelled(t) => Some(t.0),
                    Work::Idle => None,
                };
                let held = self
                    .entries
                    .iter()
                    .any(|e| e.name == name && Some(e.token) == term);
                if held {
                    return Err(Violation::new(
                        "S4",
                        format!("entry {name} given up while its leader work still runs"),
                    ));
                }
                self.request(Pending::Delete(name))?;
            }
            Action::WatchPredecessor { name } => self.watch(name, false),
            Action::UnwatchPredecessor => self.pred_watch = None,
            Action::WatchOwn { name } => self.watch(name, true),
            Action::UnwatchOwn => self.own_watch = None,
            Action::StartWork { token } => {
                if self.work != Work::Idle {
                    return Err(Violation::new(
                        "S4",
                        format!(
                            "work of term {token} started while {:?} has not ended",
                            self.work
                        ),
                    ));
                }
                self.check_claim(token)?;
                self.work = Work::Running(token);
            }
            Action::CancelWork => {
                if let Work::Running(t) = self.work {
                    self.work = Work::Cancelled(t);
                }
            }
            Action::AbortWork => {
                if self.work != Work::Idle {
                    self.work = Work::Idle;
                    self.inbox.push_back(Input::WorkDone {
                        end: WorkEnd::Aborted,
                        handover: false,
                    });
                }
            }
            Action::SetTimer(at) => self.timer = at,
            Action::Emit(Event::Transition(t)) => {
                let _ = writeln!(
                    self.trace,
                    "  {} -> {} ({:?})",
                    t.from.name(),
                    t.to.name(),
                    t.reason
                );
                if let ElectionState::Leader { token, .. } = t.to {
                    if !t.from.is_leader() {
                        self.check_claim(token)?;
                        if self.last_term.is_some_and(|last| token < last) {
                            return Err(Violation::new(
                                "S1",
                                format!("term {token} claimed after term {:?}", self.last_term),
                            ));
                        }
                        self.last_term = Some(token);
                    }
                }
                self.state = t.to;
            }
            Action::Emit(Event::Notice { .. }) => {}
            Action::ResignDone => {
                if self.resigns_pending == 0 {
                    return Err(Violation::new(
                        "driver",
                        "resignation reported done with none asked for",
                    ));
                }
                self.resigns_pending -= 1;
            }
            Action::Finished => {
                self.finished = true;
                self.check_finished()?;
            }
        }
        Ok(())
    }

    /// S3: a claim is made only on the head entry, ours, owned by our live session, in contact,
    /// and (S1 beside another implementation) with no foreign contender created before our
    /// entry still there (our listing after the create showed it).
    fn check_claim(&self, token: FencingToken) -> Result<(), Violation> {
        if let Some(mine) = self.entries.iter().find(|e| e.mine && e.token == token.0) {
            if let Some(f) = self.entries.iter().find(|e| e.foreign && e.seq < mine.seq) {
                return Err(Violation::new(
                    "S1",
                    format!(
                        "claimed term {token} while the foreign contender {} precedes our entry",
                        f.name
                    ),
                ));
            }
        }
        let head = self
            .entries
            .iter()
            .filter(|e| !e.foreign)
            .min_by_key(|e| e.seq);
        let ok = self.connected
            && self.server_alive
            && head.is_some_and(|h| h.mine && h.owner == self.session && h.token == token.0);
        if ok {
            Ok(())
        } else {
            Err(Violation::new(
                "S3",
                format!(
                    "claimed term {token} with head {:?}, session {} alive {} connected {}",
                    head.map(|h| (&h.name, h.token, h.mine)),
                    self.session,
                    self.server_alive,
                    self.connected
                ),
            ))
        }
    }

    /// S5: a stop that had contact and time enough leaves nothing behind.
    fn check_finished(&self) -> Result<(), Violation> {
        let Some(asked) = self.stop_at else {
            return Ok(());
        };
        let clean = self.connected
            && self.server_alive
            && self.now < asked + TIMEOUT
            && !matches!(self.state, ElectionState::Stopped(StopReason::Failed(_)));
        // An entry applied after the machine's last listing is one it cannot know of.
        match self.ours_known().next() {
            Some(e) if clean => Err(Violation::new(
                "S5",
                format!("stopped with entry {} left behind", e.name),
            )),
            _ => Ok(()),
        }
    }

    /// The invariants that hold at every instant.
    fn check(&self) -> Result<(), Violation> {
        // Leader work owns its term: unless the candidate keeps leading when its work ends, it
        // never leads with no work running.
        if self.leads_only_with_work && self.state.is_leader() && self.work == Work::Idle {
            return Err(Violation::new(
                "S4",
                "leading after the term's work ended (policy: the work owns its term)",
            ));
        }
        // (Two entries of ours can exist for a round trip: a create applied late is found by the
        // next listing and deleted. A second create while one is known, and an orphan left once
        // everything settled, are checked where they happen.)
        if !self.connected && !self.told_over {
            let limit = self.last_contact + self.budget;
            if self.state.is_leader() && self.now >= limit {
                return Err(Violation::new(
                    "S2",
                    format!(
                        "still leading {:?} after the last contact (budget {:?})",
                        self.now - self.last_contact,
                        self.budget
                    ),
                ));
            }
            if self.work != Work::Idle && self.now > limit {
                return Err(Violation::new(
                    "S2",
                    format!(
                        "leader work still running {:?} after the last contact (budget {:?})",
                        self.now - self.last_contact,
                        self.budget
                    ),
                ));
            }
        }
        Ok(())
    }

    /// L1: no more faults, the others leave; the machine must lead (or finish) in a bounded
    /// number of steps.
    fn calm(&mut self) -> Result<(), Violation> {
        self.step(&Step::Reconnect)?;
        self.drain()?;
        // Sessions closed while the service could not be reached expire there now.
        for session in std::mem::take(&mut self.closed_unreachable) {
            if session == self.session && self.server_alive {
                self.expire_server();
            } else {
                let gone: Vec<String> = self
                    .entries
                    .iter()
                    .filter(|e| e.owner == session)
                    .map(|e| e.name.clone())
                    .collect();
                for name in gone {
                    self.remove(&name);
                }
            }
        }
        self.drain()?;
        let others: Vec<String> = self
            .entries
            .iter()
            .filter(|e| !e.mine)
            .map(|e| e.name.clone())
            .collect();
        for name in others {
            self.remove(&name);
        }
        self.drain()?;
        for _ in 0..500 {
            if self.finished {
                break;
            }
            if let ElectionState::Leader {
                contact: crate::Contact::Confirmed,
                ..
            } = self.state
            {
                if self.pending.is_none() && self.inbox.is_empty() {
                    return Ok(());
                }
            }
            let step = if self.pending.is_some() || self.opening {
                Step::Reply
            } else if matches!(self.work, Work::Cancelled(_)) {
                Step::WorkDone
            } else if self.timer.is_some() {
                Step::Timer
            } else {
                break;
            };
            self.step(&step)?;
            self.drain()?;
        }
        if self.finished && self.server_alive && !self.told_over {
            // S5: whatever a finished machine leaves on a session that lives on is swept by the
            // client (or went with the session it closed).
            if let Some(e) = self.ours().next() {
                return Err(Violation::new(
                    "S5",
                    format!("finished leaving {} on a live session", e.name),
                ));
            }
        }
        if self.finished || self.state.is_leader() {
            let ours = self.ours_known().count();
            let stopped_cleanly = self.finished && self.check_finished().is_ok();
            if ours > 1 || (ours == 1 && !self.state.is_leader() && !stopped_cleanly) {
                return Err(Violation::new(
                    "S5",
                    format!("{ours} entries of ours left once everything settled"),
                ));
            }
            return Ok(());
        }
        Err(Violation::new(
            "L1",
            format!(
                "once the faults stopped and the others left, the machine neither leads nor \
                 finished: {:?}, pending {:?}, timer {}",
                self.state,
                self.pending,
                self.timer.is_some()
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default setup without leader work.
    fn no_work() -> Setup {
        Setup {
            has_work: false,
            ..Setup::default()
        }
    }

    /// Runs `steps` and panics with the violation and the trace if an invariant breaks.
    fn holds(setup: Setup, steps: &[Step]) {
        run_steps(&setup, steps).unwrap_or_else(|(v, t)| panic!("{v}\n{t}"));
    }

    #[test]
    fn a_lone_candidate_leads_then_stops_cleanly() {
        let steps = [
            Step::Reply,
            Step::Reply,
            Step::Stop,
            Step::WorkDone,
            Step::Reply,
        ];
        let trace = run_steps(&Setup::default(), &steps).unwrap();
        assert!(trace.contains("-> leader"), "{trace}");
        assert!(trace.contains("-> stopped"), "{trace}");
    }

    /// Regression: a resignation (with rejoin) that arrived while the machine waited for a new
    /// session (its old one had expired) registered at once, on no session, so the machine
    /// ignored the new session when it came and hung in Joining for ever. Found by the property
    /// test `machine_steps`.
    #[test]
    fn resign_while_awaiting_a_new_session_does_not_hang() {
        let steps = [Step::Expire, Step::Resign(true)];
        let setup = Setup {
            has_work: false,
            ..Setup::default()
        };
        let trace = run_steps(&setup, &steps).unwrap_or_else(|(v, t)| panic!("{v}\n{t}"));
        assert!(trace.contains("-> leader"), "{trace}");
    }

    /// Regression (found by `machine_steps`): while disconnected, the head left and then an
    /// administrator deleted our entry; on reconnect the predecessor's notification came first
    /// and the machine claimed on it, with no entry (S3), before the next one told it.
    #[test]
    fn no_claim_on_a_stale_notification_after_a_reconnect() {
        let steps = [
            Step::Join,
            Step::Reply,
            Step::Reply,
            Step::Disconnect,
            Step::Leave(0),
            Step::DeleteOwn,
            Step::LoseReply,
        ];
        holds(
            Setup {
                has_work: false,
                rejoin: false,
                ..Setup::default()
            },
            &steps,
        );
    }

    /// A mutant that survived (`connected` always true): a notification handled just after
    /// contact was lost must not make the follower claim (it would lead with no step-down
    /// deadline armed).
    #[test]
    fn no_claim_on_a_notification_handled_after_contact_was_lost() {
        let steps = [
            Step::Join,
            Step::Reply,
            Step::Reply,
            Step::Reply,
            Step::LeaveAndDisconnect(0),
            Step::Advance(3000),
        ];
        holds(no_work(), &steps);
    }

    /// Regression (found by `machine_steps` with late creates): an orphan of ours that a
    /// listing showed while releasing was dropped when the release finished (S5).
    #[test]
    fn orphans_seen_while_releasing_are_deleted_before_finishing() {
        let steps = [
            Step::Expire,
            Step::Reply,
            Step::LateCreate,
            Step::Timer,
            Step::Reply,
            Step::Reply,
            Step::Resign(false),
            Step::Reply,
            Step::Reply,
        ];
        holds(no_work(), &steps);
    }

    /// A mutant that survived: a failed predecessor watch must lead to a new listing, or the
    /// follower waits for ever.
    #[test]
    fn a_failed_predecessor_watch_is_armed_again() {
        let steps = [
            Step::Join,
            Step::Reply,
            Step::Reply,
            Step::Reply,
            Step::WatchFail(1),
        ];
        holds(no_work(), &steps);
    }

    /// Issue 17, point 6: a predecessor watch that fails with "session gone" while the session
    /// stays connected left the follower with nothing armed, waiting for ever.
    #[test]
    fn a_predecessor_watch_lost_with_session_gone_is_looked_at_again() {
        let steps = [
            Step::Join,
            Step::Reply,
            Step::Reply,
            Step::Reply,
            Step::WatchFail(5),
        ];
        holds(no_work(), &steps);
    }

    /// Issue 17, point 6: a leader whose own watch failed with "session gone" while connected
    /// was left with nothing armed: an administrator deleting its entry would go unnoticed.
    #[test]
    fn a_leader_whose_own_watch_is_lost_arms_it_again() {
        let steps = [
            Step::Reply,
            Step::Reply,
            Step::WatchFail(0x85),
            Step::DeleteOwn,
        ];
        holds(no_work(), &steps);
    }

    /// Issue 17, point 2: a stop that runs out of time while out of contact finishes with its
    /// entry (or a create) still on a session that may live on (others share it): the client
    /// sweeps it when contact resumes.
    #[test]
    fn a_stop_that_hits_its_deadline_leaves_a_sweep_behind() {
        for steps in [
            &[
                Step::Reply,
                Step::Reply,
                Step::Disconnect,
                Step::Stop,
                Step::Timer,
                Step::Timer,
                Step::Timer,
            ][..],
            &[
                Step::LoseReply,
                Step::Disconnect,
                Step::Stop,
                Step::Timer,
                Step::Timer,
                Step::Timer,
            ][..],
        ] {
            let trace = run_steps(&no_work(), steps).unwrap_or_else(|(v, t)| panic!("{v}\n{t}"));
            assert!(trace.contains("-> stopped"), "{trace}");
        }
    }

    #[test]
    fn a_cut_leader_steps_down_in_time() {
        let steps = [
            Step::Reply,
            Step::Reply,
            Step::Join,
            Step::Disconnect,
            Step::Advance(2500),
            Step::Expire,
            Step::Reconnect,
        ];
        let trace = run_steps(&Setup::default(), &steps).unwrap();
        assert!(
            trace.contains("leader -> suspended (StepDownDeadline)"),
            "{trace}"
        );
    }
}
