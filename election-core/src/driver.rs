//! The tokio driver: runs one candidate's [`Machine`] against a backend session. It executes the
//! machine's actions (requests, watches, timers, leader work) and feeds their outcomes back as
//! inputs, one at a time. It decides nothing itself.
//!
//! The driver is the candidate's task itself: a [`Future`] written out by hand rather than an
//! `async fn`, so that the task holds the driver's fields once and nothing else (an `async fn`
//! taking the driver by value kept it twice, and the futures of a `select!` besides: 2.9 KiB
//! per candidate, paid by every election of a process that runs thousands). What it waits on
//! is polled in a fixed order (see [`Driver::poll_input`]); what is rarely waited on (a timer,
//! a backend call) is boxed only while it runs.

use std::any::Any;
use std::future::{pending, Future};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use futures_util::FutureExt;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::{sleep, sleep_until, Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tracing::{error, warn};

use crate::backend::FencingToken;
use crate::backend::{BackendSession, EntryInfo, Notification, SessionState, Watch};
use crate::foreign::Compatibility;
use crate::link::{Command, CommandReceiver};
use crate::machine::{Action, Input, Machine, WorkEnd};
use crate::path::ElectionPath;
use crate::process::{Frozen, Role};
use crate::session::{Session, StateChanges};
use crate::state::{ElectionState, Event, Notice, Reason, StopReason, Transition};
use crate::term::{LeaderWork, Term, WORK_OF};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// The running term's work task: aborted if the driver is dropped without ending it (its task
/// aborted), as a crashed process's work would be.
struct WorkTask(JoinHandle<WorkEnd>);

impl Drop for WorkTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A candidate's leader work: the closure that starts it, and the running term's work. Boxed,
/// and only for a candidate that has leader work: the slot would otherwise cost 40 bytes inline
/// in every candidate's task, one per election (issue 12).
struct WorkSlot {
    work_fn: LeaderWork,
    /// The running term's work (at most one): its task ends with how the work ended, once the
    /// tasks it spawned with [`Term::spawn`] have ended too.
    task: Option<WorkTask>,
    /// A term's work made by [`Action::StartWork`] and not spawned yet: spawned once the
    /// driver's poll has nothing else to do (see [`Driver::spawn_started_work`]).
    starting: Option<Frozen<BoxFuture<WorkEnd>>>,
    cancel: Option<CancellationToken>,
    /// Aborts the work at its next await point (the task then still waits for its tasks).
    abort: Option<CancellationToken>,
    /// Set by [`Term::resign`].
    handover: Option<Arc<AtomicBool>>,
}

/// Where the driver is in its life.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Running the machine.
    Running,
    /// The machine finished, or the driver failed (the panic's message is in [`Rare`]): the
    /// work is being ended before anything of ours is given up (S4).
    Ending,
    /// Done: nothing more to poll.
    Done,
}

/// The parts of a driver that few candidates use, boxed together, and only while any is set: 8
/// bytes inline, not 40, in every candidate's task (issue 12).
#[derive(Default)]
struct Rare {
    /// A new session being opened (after an expiry).
    opening: Option<BoxFuture<Arc<dyn BackendSession>>>,
    /// The resignations waiting for [`Action::ResignDone`].
    resign_waiters: Vec<oneshot::Sender<()>>,
    /// When the latest notice that the predecessor's entry is gone came: the start of this
    /// candidate's share of a take-over (metrics only).
    predecessor_gone_at: Option<Instant>,
    /// The message of a panic that failed the driver, while its work is being ended.
    panic: Option<String>,
}

impl Rare {
    fn is_empty(&self) -> bool {
        self.opening.is_none()
            && self.resign_waiters.is_empty()
            && self.predecessor_gone_at.is_none()
            && self.panic.is_none()
    }
}

pub(crate) struct Driver {
    /// The machine; it also holds the candidate's path and id.
    machine: Machine,
    /// The client's shared session: renewal, sweeps, tokens seen, the member registry.
    client: Session,
    /// The payload of our entries' record, `None` when empty. The record itself (or the id
    /// alone, in a compatibility mode) is encoded for each create, not kept: its id is the
    /// machine's.
    payload: Option<Arc<[u8]>>,
    /// How our entries are named (a compatibility mode), or our own names.
    compatibility: Option<Compatibility>,
    session: Arc<dyn BackendSession>,
    /// The session's state changes; `None` once its channel closed.
    session_state: Option<StateChanges>,
    commands_open: bool,
    request: Option<BoxFuture<Input>>,
    /// The watch on the predecessor's entry, while there is one. Boxed: 8 bytes inline, not 40,
    /// in every candidate's task, for what only a follower arms (issue 12).
    predecessor: Option<Box<EntryWatch>>,
    own: EntryWatch,
    /// The leader work; `None` for a candidate without.
    work: Option<Box<WorkSlot>>,
    /// The timer the machine set, if any: a sleep until its deadline, dropped when it fires
    /// or the timer is cleared.
    timer: Option<Pin<Box<Sleep>>>,
    /// What few candidates use (see [`Rare`]); `None` while none of it is set.
    rare: Option<Box<Rare>>,
    stage: Stage,
    /// The commands, the events and the state, shared with the handle. Last, so dropped last:
    /// its drop makes the state final, which is what a stop waits for, once everything else of
    /// the driver is gone (a work task aborted with it included).
    commands: CommandReceiver,
}

impl Driver {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        machine: Machine,
        client: Session,
        payload: Vec<u8>,
        compatibility: Option<Compatibility>,
        session: Arc<dyn BackendSession>,
        session_state: StateChanges,
        commands: CommandReceiver,
        work_fn: Option<LeaderWork>,
    ) -> Self {
        // `session_state` starts after the state the machine was made with: a change published
        // since is still to come.
        Self {
            machine,
            client,
            payload: (!payload.is_empty()).then(|| payload.into()),
            compatibility,
            session,
            session_state: Some(session_state),
            commands,
            commands_open: true,
            request: None,
            predecessor: None,
            own: EntryWatch::Idle,
            work: work_fn.map(|work_fn| {
                Box::new(WorkSlot {
                    work_fn,
                    task: None,
                    starting: None,
                    cancel: None,
                    abort: None,
                    handover: None,
                })
            }),
            timer: None,
            rare: None,
            stage: Stage::Running,
        }
    }

    /// Runs the machine: executes its actions, then feeds it the next input, until it
    /// finishes (`Ready`) or nothing it waits on is ready (`Pending`).
    fn poll_machine(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            let mut finished = false;
            for action in self.machine.take_actions() {
                finished |= self.execute(action);
            }
            if finished {
                return Poll::Ready(());
            }
            let input = match self.poll_input(cx) {
                Poll::Ready(input) => input,
                // Its handle is polled on the next turn: the work's end then wakes us.
                Poll::Pending if self.spawn_started_work() => continue,
                Poll::Pending => return Poll::Pending,
            };
            self.machine.handle(Instant::now(), input);
        }
    }

    /// Spawns the term's work that [`Action::StartWork`] made, once nothing else is to be done
    /// in this poll; `true` if there was one. A worker thread runs next the task woken last
    /// (tokio's LIFO slot), and the requests sent after a claim (the leader note) wake the
    /// backend's connection task: spawned as soon as it was made, the work was pushed out of
    /// that slot and waited behind them (`zk_bench --legs`: its first poll came 0.05-0.06 ms
    /// after the spawn; spawned last, 0.03-0.04 ms).
    fn spawn_started_work(&mut self) -> bool {
        let Some(work) = &mut self.work else {
            return false;
        };
        let Some(starting) = work.starting.take() else {
            return false;
        };
        work.task = Some(WorkTask(tokio::spawn(starting)));
        true
    }

    /// Aborts the work, if any (it is then awaited by [`poll_work_ended`](Self::poll_work_ended)).
    fn end_work(&mut self) {
        let Some(work) = &mut self.work else { return };
        // Made but never spawned (the machine finished in the same poll): it never runs.
        work.starting = None;
        if let Some(cancel) = work.cancel.take() {
            cancel.cancel();
        }
        if let Some(abort) = work.abort.take() {
            abort.cancel();
        }
    }

    /// Ready once the work (and its tasks) ended.
    fn poll_work_ended(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(work) = &mut self.work {
            if let Some(task) = &mut work.task {
                let _ = ready!(Pin::new(&mut task.0).poll(cx));
                work.task = None;
            }
        }
        Poll::Ready(())
    }

    /// The driver failed (its work already ended): publish `Stopped(Failed)` and withdraw
    /// whatever entry the candidate holds (deleted by marker once the session has contact).
    fn died(&mut self, panic: &str) {
        let reason = format!("the candidate's driver failed: {panic}");
        error!(path = %self.machine.path(), candidate = %self.machine.id(), session = %self.session.id(), panic = %panic, "candidate driver failed; withdrawing its entry");
        self.client.sweep_later(
            self.machine.path().clone(),
            &self.session,
            self.machine.marker_prefix(),
        );
        let from = self.commands.link().state.get();
        if !from.is_stopped() {
            let to = ElectionState::Stopped(StopReason::Failed(reason));
            self.commands
                .link()
                .events
                .send(Event::Transition(Transition {
                    at: Instant::now(),
                    from,
                    to: to.clone(),
                    reason: Reason::Failed,
                }));
            self.commands.link().state.publish(to);
        }
        // Resignations waiting on it fail (`Stopped`) as their senders go.
        if let Some(rare) = &mut self.rare {
            rare.resign_waiters.clear();
        }
        self.tidy_rare();
    }

    /// The next input, polled in a fixed order: a fixed order keeps runs on the paused clock
    /// reproducible, and puts what bears on safety (contact, deadlines) first. Each source is
    /// polled only while it is live, and a future that completes leaves its slot.
    fn poll_input(&mut self, cx: &mut Context<'_>) -> Poll<Input> {
        if let Some(changes) = &mut self.session_state {
            if let Poll::Ready(change) = changes.poll_next(cx) {
                let state = match change {
                    Some((state, next)) => {
                        crate::metrics::session_state(&state);
                        self.session_state = Some(next);
                        state
                    }
                    None => {
                        self.session_state = None;
                        SessionState::Closed
                    }
                };
                return Poll::Ready(Input::Session(state));
            }
        }
        if let Some(timer) = &mut self.timer {
            if timer.as_mut().poll(cx).is_ready() {
                self.timer = None;
                return Poll::Ready(Input::Timer);
            }
        }
        if let Some(rare) = &mut self.rare {
            if let Poll::Ready(session) = poll_slot(&mut rare.opening, cx) {
                self.tidy_rare();
                return Poll::Ready(self.opened(session));
            }
        }
        if let Poll::Ready((name, gone)) = self.own.poll_gone(cx) {
            // Our own entry is never a look-alike: if it were, it is not ours to hold.
            let result = match gone {
                Gone::NotAnEntry => Ok(()),
                Gone::Done(result) => result,
            };
            return Poll::Ready(self.noted(Input::OwnGone { name, result }));
        }
        if let Some(Poll::Ready((name, gone))) = self.predecessor.as_mut().map(|w| w.poll_gone(cx))
        {
            self.predecessor = None;
            return Poll::Ready(self.noted(match gone {
                Gone::NotAnEntry => Input::PredecessorNotAnEntry { name },
                Gone::Done(result) => Input::PredecessorGone { name, result },
            }));
        }
        if let Poll::Ready(input) = poll_slot(&mut self.request, cx) {
            return Poll::Ready(self.noted(input));
        }
        // Before the work: a call the work made before it returned (a resign from inside
        // the work) is handled before its end.
        if self.commands_open {
            if let Poll::Ready(command) = self.commands.poll_recv(cx) {
                return Poll::Ready(self.command(command));
            }
        }
        if let Some(work) = &mut self.work {
            let done = match &mut work.task {
                Some(task) => Pin::new(&mut task.0).poll(cx),
                None => Poll::Pending,
            };
            if let Poll::Ready(done) = done {
                work.task = None;
                let end = match done {
                    Ok(end) => end,
                    Err(e) if e.is_panic() => WorkEnd::Panicked(panic_message(&*e.into_panic())),
                    Err(_) => WorkEnd::Aborted,
                };
                let handover = work
                    .handover
                    .take()
                    .is_some_and(|h| h.load(Ordering::SeqCst));
                return Poll::Ready(self.noted(Input::WorkDone { end, handover }));
            }
        }
        Poll::Pending
    }

    /// An input from a backend call, a watch or the work: its hand-over checkpoint noted.
    fn noted(&mut self, input: Input) -> Input {
        match &input {
            Input::PredecessorGone { result: Ok(()), .. } => {
                self.rare().predecessor_gone_at = Some(Instant::now());
                self.checkpoint("notified");
            }
            Input::WorkDone { .. } => self.checkpoint("work_ended"),
            Input::Deleted { .. } => self.checkpoint("delete_answered"),
            Input::Read { .. } | Input::Confirmed { .. } => self.checkpoint("read_answered"),
            Input::Listed(_) => self.checkpoint("list_answered"),
            _ => {}
        }
        input
    }

    /// The rare parts, boxed on first use.
    fn rare(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Box::default)
    }

    /// Frees the rare parts once none is set.
    fn tidy_rare(&mut self) {
        if self.rare.as_ref().is_some_and(|r| r.is_empty()) {
            self.rare = None;
        }
    }

    /// A new session is open: the driver moves to it.
    fn opened(&mut self, session: Arc<dyn BackendSession>) -> Input {
        let (id, timeout) = (session.id(), session.timeout());
        let (now, changes) = self.client.state_changes(&session);
        self.session_state = Some(changes);
        self.session = session;
        Input::SessionOpened {
            id,
            timeout,
            state: now,
        }
    }

    fn command(&mut self, command: Option<Command>) -> Input {
        match command {
            Some(Command::Resign { rejoin, done }) => {
                self.checkpoint("resign_received");
                self.rare().resign_waiters.push(done);
                Input::Resign { rejoin }
            }
            Some(Command::Stop) => Input::Stop,
            Some(Command::Close) => Input::Close,
            // The handle was dropped: withdraw, as `stop` would.
            None => {
                self.commands_open = false;
                Input::Stop
            }
        }
    }

    /// A hand-over checkpoint (see [`crate::metrics::HANDOVER_TARGET`]).
    fn checkpoint(&self, leg: &'static str) {
        crate::metrics::checkpoint(
            leg,
            self.machine.path(),
            self.machine.id(),
            self.session.id(),
        );
    }

    /// Executes one action; `true` when the machine has finished.
    fn execute(&mut self, action: Action) -> bool {
        let s = self.session.clone();
        let path = self.machine.path().clone();
        match action {
            Action::OpenSession => {
                self.request = None;
                self.predecessor = None;
                self.own = EntryWatch::Idle;
                let client = self.client.clone();
                let old = s.id();
                self.rare().opening = Some(Box::pin(async move {
                    let mut backoff = Duration::from_millis(50);
                    loop {
                        match client.renew(old).await {
                            Ok(session) => return session,
                            // The client is closing: it stops this candidate (`Command::Close`);
                            // nothing reopens a closed client's session.
                            Err(crate::ElectionError::ClientClosed) => pending().await,
                            Err(e) => {
                                let delay = client.jittered(backoff);
                                warn!(error = %e, backoff = ?backoff, delay = ?delay, "could not open a new session; retrying");
                                sleep(delay).await;
                                backoff = (backoff * 2).min(Duration::from_secs(5));
                            }
                        }
                    }
                }));
            }
            Action::SweepLater => {
                let prefix = self.machine.marker_prefix();
                self.client.sweep_later(path, &s, prefix);
            }
            Action::CloseSession => {
                // Not awaited here: its end comes back through the session's state.
                tokio::spawn(async move { s.close().await });
            }
            Action::Create { marker } => {
                let compatibility = self.compatibility;
                let record = match compatibility {
                    // The id as plain UTF-8, as the other implementation writes (and reads)
                    // its participants' ids.
                    Some(_) => self.machine.id().as_bytes().to_vec(),
                    None => crate::record::encode(
                        self.machine.id(),
                        self.payload.as_deref().unwrap_or_default(),
                    ),
                };
                self.request = Some(Box::pin(async move {
                    let created = match compatibility {
                        None => s.create(&path, &marker, &record).await,
                        Some(mode) => s.create_compatible(&path, &marker, mode, &record).await,
                    };
                    Input::Created(created.map(kept_for_life))
                }));
            }
            Action::List => {
                self.checkpoint("list_sent");
                self.request = Some(Box::pin(async move { Input::Listed(s.list(&path).await) }));
            }
            Action::Read { name } => {
                self.checkpoint("read_sent");
                self.request = Some(Box::pin(async move {
                    let result = s.read(&path, &name).await;
                    Input::Read { name, result }
                }));
            }
            Action::Confirm { name, note } => {
                self.checkpoint("read_sent");
                self.request = Some(Box::pin(async move {
                    let result = s.confirm(&path, &name, note).await;
                    Input::Confirmed { name, result }
                }));
            }
            Action::NoteLeader { name } => {
                self.request = Some(Box::pin(async move {
                    let result = s.note_leader(&path, &name).await;
                    Input::Noted { name, result }
                }));
            }
            Action::Delete { name } => {
                self.checkpoint("delete_sent");
                self.request = Some(Box::pin(async move {
                    let result = s.delete(&path, &name).await;
                    Input::Deleted { name, result }
                }));
            }
            Action::WatchPredecessor { name } => {
                self.predecessor = Some(Box::new(EntryWatch::arm(s, path, name)));
            }
            Action::UnwatchPredecessor => self.predecessor = None,
            Action::WatchOwn { name } => self.own = EntryWatch::arm(s, path, name),
            Action::UnwatchOwn => self.own = EntryWatch::Idle,
            Action::StartWork { token } => {
                // Out of its slot while the term is made (which reads the driver), then back.
                if let Some(mut work) = self.work.take() {
                    self.checkpoint("work_start");
                    let cancel = CancellationToken::new();
                    let abort = CancellationToken::new();
                    let process = self.client.process();
                    let term = Term::new(
                        token,
                        cancel.clone(),
                        self.commands.shared(),
                        process.clone(),
                    );
                    work.handover = Some(term.handover_flag());
                    // The machine starts a term's work only once the last one ended.
                    debug_assert!(
                        work.task.is_none() && work.starting.is_none(),
                        "a second work task"
                    );
                    let run: BoxFuture<WorkEnd> =
                        Box::pin(run_work(work.work_fn.clone(), term, abort.clone()));
                    work.starting = Some(Frozen::new(process, Role::Work, run));
                    work.cancel = Some(cancel);
                    work.abort = Some(abort);
                    self.work = Some(work);
                }
            }
            Action::CancelWork => {
                if let Some(cancel) = self.work.as_mut().and_then(|w| w.cancel.take()) {
                    self.checkpoint("work_cancel");
                    cancel.cancel();
                }
            }
            Action::AbortWork => {
                if let Some(abort) = self.work.as_mut().and_then(|w| w.abort.take()) {
                    abort.cancel();
                }
            }
            Action::SetTimer(at) => match (at, &mut self.timer) {
                (Some(at), Some(timer)) => timer.as_mut().reset(at),
                (Some(at), None) => self.timer = Some(Box::pin(sleep_until(at))),
                (None, _) => self.timer = None,
            },
            Action::Emit(event) => {
                // The event first: whoever sees the new state can already find its transition.
                let mut claimed = false;
                let (state, seen) = match &event {
                    Event::Transition(t) => {
                        crate::metrics::transition(&path, t);
                        if t.to.is_leader() && !t.from.is_leader() {
                            claimed = true;
                            let gone = self
                                .rare
                                .as_mut()
                                .and_then(|r| r.predecessor_gone_at.take());
                            if let Some(gone) = gone {
                                self.tidy_rare();
                                crate::metrics::takeover(&path, t.at - gone);
                            }
                        }
                        (Some(t.to.clone()), token_seen(t).map(|k| (t.at, k)))
                    }
                    Event::Notice { .. } => (None, None),
                };
                self.commands.link().events.send(event);
                if let Some(state) = state {
                    self.commands.link().state.publish(state);
                }
                if claimed {
                    self.checkpoint("published");
                }
                if let Some((at, token)) = seen {
                    if let Some(last) = self.client.note_token(&path, token) {
                        error!(path = %path, candidate = %self.machine.id(), token = %token, last = %last, "term token went back: the service lost its data and was rebuilt; fencing downstream will reject this leader until told");
                        let notice = Notice::TokenWentBack { token, last };
                        self.commands
                            .link()
                            .events
                            .send(Event::Notice { at, notice });
                    }
                }
            }
            Action::ResignDone => {
                let waiters = self
                    .rare
                    .as_mut()
                    .map(|r| std::mem::take(&mut r.resign_waiters));
                self.tidy_rare();
                for waiter in waiters.into_iter().flatten() {
                    let _ = waiter.send(());
                }
            }
            Action::Finished => return true,
        }
        false
    }
}

/// One term's leader work, in its own task: the user's closure is called here (never in the
/// driver's task), panics are caught, and the tasks the work spawned with [`Term::spawn`] are
/// cancelled and awaited before the task ends.
async fn run_work(work_fn: LeaderWork, term: Term, abort: CancellationToken) -> WorkEnd {
    // Cancels the term's tasks even if this task is dropped (the driver gone).
    let _tasks_guard = term.tasks_guard();
    let tasks = term.clone();
    let owner = term.owner();
    let user = WORK_OF.scope(
        owner,
        AssertUnwindSafe(async move { work_fn(term).await }).catch_unwind(),
    );
    let end = tokio::select! {
        biased;
        () = abort.cancelled() => WorkEnd::Aborted,
        out = user => match out {
            Ok(Ok(())) => WorkEnd::Returned,
            Ok(Err(e)) => WorkEnd::Failed(e),
            Err(panic) => WorkEnd::Panicked(panic_message(&*panic)),
        },
    };
    tasks.end_tasks().await;
    end
}

/// A created entry, as the machine keeps it while it holds the entry: its name without the
/// spare capacity a backend's formatting leaves (a third more, kept by every candidate; issue
/// 12).
fn kept_for_life(mut info: EntryInfo) -> EntryInfo {
    info.name.shrink_to_fit();
    info
}

/// The message of a panic payload (`panic!` with a literal or a formatted message).
fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-text payload".to_owned()
    }
}

/// How a watched entry's watch ended.
enum Gone {
    /// Gone (`Ok`), or the watch failed.
    Done(Result<(), crate::BackendError>),
    /// The node is a look-alike, not a live session's entry.
    NotAnEntry,
}

/// A watch on an entry (our own, or our predecessor's): the call that arms it, then the
/// notification it armed. Only the call is boxed, and only while it runs: an armed watch, the
/// state most candidates spend their life in, holds the notification and the entry's name.
enum EntryWatch {
    Idle,
    /// The entry's name comes back with the outcome.
    Arming(BoxFuture<(Arc<str>, Result<Watch, crate::BackendError>)>),
    Armed {
        name: Arc<str>,
        notification: Notification,
    },
}

impl EntryWatch {
    fn arm(session: Arc<dyn BackendSession>, path: ElectionPath, name: Arc<str>) -> Self {
        Self::Arming(Box::pin(async move {
            let watch = session.watch_gone(&path, &name).await;
            (name, watch)
        }))
    }

    /// How the watch ended, with the entry's name; never ready while idle. An armed
    /// notification is polled at once, in the same poll as the call that armed it.
    fn poll_gone(&mut self, cx: &mut Context<'_>) -> Poll<(Arc<str>, Gone)> {
        loop {
            match self {
                Self::Idle => return Poll::Pending,
                Self::Arming(arming) => {
                    let (name, watch) = ready!(arming.as_mut().poll(cx));
                    let gone = match watch {
                        Err(e) => Gone::Done(Err(e)),
                        Ok(Watch::Gone) => Gone::Done(Ok(())),
                        Ok(Watch::NotAnEntry) => Gone::NotAnEntry,
                        Ok(Watch::Armed(notification)) => {
                            *self = Self::Armed { name, notification };
                            continue;
                        }
                    };
                    *self = Self::Idle;
                    return Poll::Ready((name, gone));
                }
                Self::Armed { notification, .. } => {
                    let result = ready!(notification.as_mut().poll(cx));
                    let Self::Armed { name, .. } = std::mem::replace(self, Self::Idle) else {
                        unreachable!("armed")
                    };
                    return Poll::Ready((name, Gone::Done(result)));
                }
            }
        }
    }
}

/// The term token a transition shows: our own claim, or the leader a follower read.
fn token_seen(t: &Transition) -> Option<FencingToken> {
    match &t.to {
        ElectionState::Leader { token, .. } if !t.from.is_leader() => Some(*token),
        ElectionState::Follower {
            leader: Some(leader),
            ..
        } => Some(leader.token),
        _ => None,
    }
}

/// Polls the future in `slot`, if any, and empties the slot when it completes; never ready
/// when empty.
fn poll_slot<T>(slot: &mut Option<BoxFuture<T>>, cx: &mut Context<'_>) -> Poll<T> {
    let Some(future) = slot else {
        return Poll::Pending;
    };
    let out = ready!(future.as_mut().poll(cx));
    *slot = None;
    Poll::Ready(out)
}

impl Future for Driver {
    type Output = ();

    /// Runs until the machine finishes. If the driver itself fails (a panic in a backend call
    /// it polls), the candidate stops with [`StopReason::Failed`] and its entry is withdrawn.
    /// Either way, leader work still running is aborted and awaited before this completes (and
    /// with it, before [`Candidate::stop`](crate::Candidate::stop) returns).
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        loop {
            match this.stage {
                Stage::Running => {
                    let polled =
                        std::panic::catch_unwind(AssertUnwindSafe(|| this.poll_machine(cx)));
                    match polled {
                        Ok(Poll::Pending) => return Poll::Pending,
                        Ok(Poll::Ready(())) => {}
                        Err(panic) => this.rare().panic = Some(panic_message(&*panic)),
                    }
                    // S4: the work ends before anything of ours is given up.
                    this.end_work();
                    this.stage = Stage::Ending;
                }
                Stage::Ending => {
                    if this.poll_work_ended(cx).is_pending() {
                        return Poll::Pending;
                    }
                    if let Some(panic) = this.rare.as_mut().and_then(|r| r.panic.take()) {
                        this.died(&panic);
                    }
                    this.client
                        .release_member(this.machine.path(), this.machine.shared_id());
                    this.stage = Stage::Done;
                    return Poll::Ready(());
                }
                Stage::Done => return Poll::Ready(()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 12: a candidate's task is one allocation, the driver and tokio's task header and
    /// trailer (104 bytes), rounded up to 128 bytes on x86-64 (tokio aligns a task's cell to a
    /// cache line). At most 536 bytes of driver keep the task at 640 bytes (measured with
    /// tokio 1.54: 544 bytes made a 768-byte task), every candidate of a process running
    /// thousands of elections; the next 128 bytes are paid by each of them. What most
    /// candidates never use (leader work, back-offs, a lost contact, foreign nodes, a
    /// follower's leader, orphans to delete, a stop's reason, a take-over's start, a
    /// predecessor's watch, a new session being opened, waiting resignations, a panic's
    /// message, the work's abort deadline) is boxed, and only while used; names are shared
    /// `Arc<str>`s, durations nanoseconds. The driver is 536 bytes (the machine 352); 656 (a
    /// 768-byte task) before the predecessor's watch, the driver's rare fields and the work's
    /// deadline were boxed, the head's read became a flag and the grace nanoseconds; 792 (an
    /// 896-byte task) before the session-state waiter was shared and the machine's rare
    /// fields boxed, 904 (a 1 KiB task) before the machine's cold fields were.
    #[cfg(target_pointer_width = "64")]
    #[test]
    fn a_candidates_task_stays_within_640_bytes() {
        let driver = std::mem::size_of::<Frozen<Driver>>();
        assert!(
            driver <= 536,
            "the driver is {driver} bytes (the machine {}): its task no longer fits in 640 bytes",
            std::mem::size_of::<Machine>()
        );
    }
}
