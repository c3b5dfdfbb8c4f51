//! The tokio driver: runs one candidate's [`Machine`] against a backend session. It executes the
//! machine's actions (requests, watches, timers, leader work) and feeds their outcomes back as
//! inputs, one at a time. It decides nothing itself.

use std::any::Any;
use std::future::{pending, Future};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::{sleep, sleep_until, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{error, warn};

use crate::backend::FencingToken;
use crate::backend::{BackendSession, SessionState, Watch};
use crate::foreign::Compatibility;
use crate::machine::{Action, Input, Machine, WorkEnd};
use crate::path::ElectionPath;
use crate::process::{Frozen, Role};
use crate::session::Session;
use crate::state::{ElectionState, Event, Notice, Reason, StopReason, Transition};
use crate::term::{LeaderWork, Term, WORK_OF};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A user's command to a running candidate.
pub(crate) enum Command {
    Resign {
        rejoin: bool,
        done: oneshot::Sender<()>,
    },
    Stop,
    /// The client is closing: withdraw as on `Stop`, with its own reason.
    Close,
}

/// The channels a driver publishes on.
pub(crate) struct Outlets {
    pub state: watch::Sender<ElectionState>,
    pub events: Arc<crate::events::EventsOutlet>,
    /// Never sent on: dropped when the driver ends, which is what `stop` waits for.
    #[allow(dead_code)]
    pub done: watch::Sender<()>,
}

pub(crate) struct Driver {
    machine: Machine,
    /// The client's shared session: renewal, sweeps, tokens seen, the member registry.
    client: Session,
    path: ElectionPath,
    record: Arc<[u8]>,
    /// How our entries are named (a compatibility mode), or our own names.
    compatibility: Option<Compatibility>,
    session: Arc<dyn BackendSession>,
    session_state: watch::Receiver<SessionState>,
    session_open: bool,
    commands: mpsc::UnboundedReceiver<Command>,
    commands_open: bool,
    request: Option<BoxFuture<Input>>,
    predecessor: Option<BoxFuture<Input>>,
    own: Option<BoxFuture<Input>>,
    opening: Option<BoxFuture<Arc<dyn BackendSession>>>,
    work_fn: Option<LeaderWork>,
    /// The running term's work (at most one): its task ends with how the work ended, once the
    /// tasks it spawned with [`Term::spawn`] have ended too.
    work: JoinSet<WorkEnd>,
    work_cancel: Option<CancellationToken>,
    /// Aborts the work at its next await point (the task then still waits for its tasks).
    work_abort: Option<CancellationToken>,
    /// Set by [`Term::resign`].
    work_handover: Option<Arc<AtomicBool>>,
    timer: Option<Instant>,
    resign_waiters: Vec<oneshot::Sender<()>>,
    outlets: Outlets,
    /// When the latest notice that the predecessor's entry is gone came: the start of this
    /// candidate's share of a take-over (metrics only).
    predecessor_gone_at: Option<Instant>,
}

impl Driver {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        machine: Machine,
        client: Session,
        path: ElectionPath,
        record: Vec<u8>,
        compatibility: Option<Compatibility>,
        session: Arc<dyn BackendSession>,
        session_state: watch::Receiver<SessionState>,
        commands: mpsc::UnboundedReceiver<Command>,
        work_fn: Option<LeaderWork>,
        outlets: Outlets,
    ) -> Self {
        // `session_state` is the receiver the machine's first state was read from (marked
        // seen then): a change published since is still to come.
        Self {
            machine,
            client,
            path,
            record: record.into(),
            compatibility,
            session,
            session_state,
            session_open: true,
            commands,
            commands_open: true,
            request: None,
            predecessor: None,
            own: None,
            opening: None,
            work_fn,
            work: JoinSet::new(),
            work_cancel: None,
            work_abort: None,
            work_handover: None,
            timer: None,
            predecessor_gone_at: None,
            resign_waiters: Vec::new(),
            outlets,
        }
    }

    /// Runs until the machine finishes. If the driver itself fails (a panic in a backend call
    /// it polls), the candidate stops with [`StopReason::Failed`] and its entry is withdrawn.
    /// Either way, leader work still running is aborted and awaited before this returns (and
    /// with it, before [`Candidate::stop`](crate::Candidate::stop) does).
    pub(crate) async fn run(mut self) {
        let outcome = AssertUnwindSafe(self.run_machine()).catch_unwind().await;
        // S4: the work ends before anything of ours is given up.
        self.end_work().await;
        if let Err(panic) = outcome {
            self.died(&panic_message(&*panic));
        }
        self.client.release_member(&self.path, self.machine.id());
    }

    async fn run_machine(&mut self) {
        loop {
            let mut finished = false;
            for action in self.machine.take_actions() {
                finished |= self.execute(action);
            }
            if finished {
                break;
            }
            let input = self.next_input().await;
            self.machine.handle(Instant::now(), input);
        }
    }

    /// Aborts the work, if any, and waits until it (and its tasks) ended.
    async fn end_work(&mut self) {
        if let Some(cancel) = self.work_cancel.take() {
            cancel.cancel();
        }
        if let Some(abort) = self.work_abort.take() {
            abort.cancel();
        }
        while self.work.join_next().await.is_some() {}
    }

    /// The driver failed (its work already ended): publish `Stopped(Failed)` and withdraw
    /// whatever entry the candidate holds (deleted by marker once the session has contact).
    fn died(&mut self, panic: &str) {
        let reason = format!("the candidate's driver failed: {panic}");
        error!(path = %self.path, candidate = %self.machine.id(), session = %self.session.id(), panic = %panic, "candidate driver failed; withdrawing its entry");
        self.client.sweep_later(
            self.path.clone(),
            &self.session,
            self.machine.marker_prefix(),
        );
        let from = self.outlets.state.borrow().clone();
        if !from.is_stopped() {
            let to = ElectionState::Stopped(StopReason::Failed(reason));
            self.outlets.events.send(Event::Transition(Transition {
                at: Instant::now(),
                from,
                to: to.clone(),
                reason: Reason::Failed,
            }));
            self.outlets.state.send_replace(to);
        }
        // Resignations waiting on it fail (`Stopped`) as their senders go.
        self.resign_waiters.clear();
    }

    async fn next_input(&mut self) -> Input {
        enum Wake {
            Input(Input),
            Opened(Arc<dyn BackendSession>),
            Command(Option<Command>),
        }
        let Self {
            session_state,
            session_open,
            timer,
            opening,
            own,
            predecessor,
            request,
            work,
            work_handover,
            commands,
            commands_open,
            ..
        } = self;
        // `biased`: a fixed order keeps runs on the paused clock reproducible, and puts what
        // bears on safety (contact, deadlines) first.
        let wake = tokio::select! {
            biased;
            changed = session_state.changed(), if *session_open => match changed {
                Ok(()) => {
                    let state = *session_state.borrow_and_update();
                    crate::metrics::session_state(&state);
                    Wake::Input(Input::Session(state))
                }
                Err(_) => {
                    *session_open = false;
                    Wake::Input(Input::Session(SessionState::Closed))
                }
            },
            () = wait_until(*timer) => {
                *timer = None;
                Wake::Input(Input::Timer)
            }
            session = take(opening) => Wake::Opened(session),
            input = take(own) => Wake::Input(input),
            input = take(predecessor) => Wake::Input(input),
            input = take(request) => Wake::Input(input),
            // Before the work: a call the work made before it returned (a resign from inside
            // the work) is handled before its end.
            command = commands.recv(), if *commands_open => Wake::Command(command),
            Some(done) = work.join_next(), if !work.is_empty() => {
                let end = match done {
                    Ok(end) => end,
                    Err(e) if e.is_panic() => WorkEnd::Panicked(panic_message(&*e.into_panic())),
                    Err(_) => WorkEnd::Aborted,
                };
                let handover = work_handover.take().is_some_and(|h| h.load(Ordering::SeqCst));
                Wake::Input(Input::WorkDone { end, handover })
            }
        };
        match wake {
            Wake::Input(input) => {
                match &input {
                    Input::PredecessorGone { result: Ok(()), .. } => {
                        self.predecessor_gone_at = Some(Instant::now());
                        self.checkpoint("notified");
                    }
                    Input::WorkDone { .. } => self.checkpoint("work_ended"),
                    Input::Deleted { .. } | Input::Requeued { .. } => {
                        self.checkpoint("delete_answered")
                    }
                    Input::Read { .. } | Input::Confirmed { .. } => {
                        self.checkpoint("read_answered")
                    }
                    Input::Listed(_) => self.checkpoint("list_answered"),
                    _ => {}
                }
                input
            }
            Wake::Opened(session) => {
                let (id, timeout) = (session.id(), session.timeout());
                self.session_state = session.state();
                let state = *self.session_state.borrow_and_update();
                self.session_open = true;
                self.session = session;
                Input::SessionOpened { id, timeout, state }
            }
            Wake::Command(Some(Command::Resign { rejoin, done })) => {
                self.checkpoint("resign_received");
                self.resign_waiters.push(done);
                Input::Resign { rejoin }
            }
            Wake::Command(Some(Command::Stop)) => Input::Stop,
            Wake::Command(Some(Command::Close)) => Input::Close,
            // The handle was dropped: withdraw, as `stop` would.
            Wake::Command(None) => {
                self.commands_open = false;
                Input::Stop
            }
        }
    }

    /// A hand-over checkpoint (see [`crate::metrics::HANDOVER_TARGET`]).
    fn checkpoint(&self, leg: &'static str) {
        crate::metrics::checkpoint(leg, &self.path, self.machine.id(), self.session.id());
    }

    /// Executes one action; `true` when the machine has finished.
    fn execute(&mut self, action: Action) -> bool {
        let s = self.session.clone();
        let path = self.path.clone();
        match action {
            Action::OpenSession => {
                self.request = None;
                self.predecessor = None;
                self.own = None;
                let client = self.client.clone();
                let old = s.id();
                self.opening = Some(Box::pin(async move {
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
                let record = self.record.clone();
                let compatibility = self.compatibility;
                self.request = Some(Box::pin(async move {
                    Input::Created(match compatibility {
                        None => s.create(&path, &marker, &record).await,
                        Some(mode) => s.create_compatible(&path, &marker, mode, &record).await,
                    })
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
            Action::Confirm { name, ahead, note } => {
                self.checkpoint("read_sent");
                self.request = Some(Box::pin(async move {
                    let result = s.confirm(&path, &name, &ahead, note).await;
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
            Action::Requeue { old, marker } => {
                // The old leader's checkpoints are the same as for a delete: its entry is given
                // up here.
                self.checkpoint("delete_sent");
                let record = self.record.clone();
                let mode = self.compatibility;
                self.request = Some(Box::pin(async move {
                    let result = s.requeue(&path, &old, &marker, mode, &record).await;
                    Input::Requeued { old, result }
                }));
            }
            Action::WatchPredecessor { name } => {
                self.predecessor = Some(Box::pin(async move {
                    match watch_gone(&*s, &path, &name).await {
                        Gone::NotAnEntry => Input::PredecessorNotAnEntry { name },
                        Gone::Done(result) => Input::PredecessorGone { name, result },
                    }
                }));
            }
            Action::UnwatchPredecessor => self.predecessor = None,
            Action::WatchOwn { name } => {
                self.own = Some(Box::pin(async move {
                    // Our own entry is never a look-alike: if it were, it is not ours to hold.
                    let result = match watch_gone(&*s, &path, &name).await {
                        Gone::NotAnEntry => Ok(()),
                        Gone::Done(result) => result,
                    };
                    Input::OwnGone { name, result }
                }));
            }
            Action::UnwatchOwn => self.own = None,
            Action::StartWork { token } => {
                if let Some(work_fn) = &self.work_fn {
                    self.checkpoint("work_start");
                    let cancel = CancellationToken::new();
                    let abort = CancellationToken::new();
                    let process = self.client.process();
                    let term = Term::new(
                        token,
                        cancel.clone(),
                        self.outlets.done.subscribe(),
                        process.clone(),
                    );
                    self.work_handover = Some(term.handover_flag());
                    self.work.spawn(Frozen::new(
                        process,
                        Role::Work,
                        run_work(work_fn.clone(), term, abort.clone()),
                    ));
                    self.work_cancel = Some(cancel);
                    self.work_abort = Some(abort);
                }
            }
            Action::CancelWork => {
                if let Some(cancel) = self.work_cancel.take() {
                    self.checkpoint("work_cancel");
                    cancel.cancel();
                }
            }
            Action::AbortWork => {
                if let Some(abort) = self.work_abort.take() {
                    abort.cancel();
                }
            }
            Action::SetTimer(at) => self.timer = at,
            Action::Emit(event) => {
                // The event first: whoever sees the new state can already find its transition.
                let mut claimed = false;
                let (state, seen) = match &event {
                    Event::Transition(t) => {
                        crate::metrics::transition(&self.path, t);
                        if t.to.is_leader() && !t.from.is_leader() {
                            claimed = true;
                            if let Some(gone) = self.predecessor_gone_at.take() {
                                crate::metrics::takeover(&self.path, t.at - gone);
                            }
                        }
                        (Some(t.to.clone()), token_seen(t).map(|k| (t.at, k)))
                    }
                    Event::Notice { .. } => (None, None),
                };
                self.outlets.events.send(event);
                if let Some(state) = state {
                    self.outlets.state.send_replace(state);
                }
                if claimed {
                    self.checkpoint("published");
                }
                if let Some((at, token)) = seen {
                    if let Some(last) = self.client.note_token(&self.path, token) {
                        error!(path = %self.path, candidate = %self.machine.id(), token = %token, last = %last, "term token went back: the service lost its data and was rebuilt; fencing downstream will reject this leader until told");
                        let notice = Notice::TokenWentBack { token, last };
                        self.outlets.events.send(Event::Notice { at, notice });
                    }
                }
            }
            Action::ResignDone => {
                for waiter in self.resign_waiters.drain(..) {
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

async fn watch_gone(session: &dyn BackendSession, path: &ElectionPath, name: &str) -> Gone {
    match session.watch_gone(path, name).await {
        Err(e) => Gone::Done(Err(e)),
        Ok(Watch::Gone) => Gone::Done(Ok(())),
        Ok(Watch::NotAnEntry) => Gone::NotAnEntry,
        Ok(Watch::Armed(notification)) => Gone::Done(notification.await),
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

async fn wait_until(at: Option<Instant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => pending().await,
    }
}

/// Awaits the future in `slot`, if any, and empties the slot; never completes when empty.
async fn take<T>(slot: &mut Option<BoxFuture<T>>) -> T {
    match slot {
        Some(future) => {
            let out = future.await;
            *slot = None;
            out
        }
        None => pending().await,
    }
}
