//! A leadership term as handed to leader-scoped work: its fencing token, the signal that it is
//! over, the tasks it spawned, and how the work ends.

use std::fmt::Display;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::backend::FencingToken;
use crate::link::Link;
use crate::process::{Frozen, Process, Role};

tokio::task_local! {
    /// Set in the task of a candidate's leader work (and the tasks of [`Term::spawn`]): the
    /// candidate's link, by which its handle knows a call comes from its own work.
    pub(crate) static WORK_OF: Arc<Link>;
}

/// One leadership term, given to the work registered with
/// [`CandidateBuilder::on_leader`](crate::CandidateBuilder::on_leader).
///
/// The work must stop soon after [`cancelled`](Self::cancelled) fires: the candidate waits for it,
/// at most the configured grace, before it gives up its entry; past the grace it is aborted at
/// its next await point. Code that never awaits (a blocking loop) cannot be stopped that way:
/// it runs on, and on a `current_thread` runtime it also stops every other task, the step-down
/// timer included. Run blocking code with `tokio::task::spawn_blocking` and stop it yourself.
///
/// When the work ends by itself while the term is live, the term ends as the builder's
/// [`WorkEnded`] policy says (by default the candidate resigns and rejoins at the tail).
#[derive(Clone, Debug)]
pub struct Term {
    token: FencingToken,
    cancel: CancellationToken,
    handover: Arc<AtomicBool>,
    tasks: TaskTracker,
    tasks_cancel: CancellationToken,
    owner: Arc<Link>,
    process: Option<Process>,
}

impl Term {
    pub(crate) fn new(
        token: FencingToken,
        cancel: CancellationToken,
        owner: Arc<Link>,
        process: Option<Process>,
    ) -> Self {
        let tasks_cancel = cancel.child_token();
        Self {
            token,
            cancel,
            handover: Arc::new(AtomicBool::new(false)),
            tasks: TaskTracker::new(),
            tasks_cancel,
            owner,
            process,
        }
    }

    /// The term's fencing token: send it with every write made as leader.
    pub fn token(&self) -> FencingToken {
        self.token
    }

    /// Completes when the term ends (step-down, resignation, stop, lost entry or session).
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await
    }

    /// `true` once the term has ended.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// The term's cancellation token, to hand to other tasks.
    pub fn cancellation(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Hands leadership over once the work returns: returns at once, and when the work
    /// returns the candidate resigns and rejoins at the tail (whatever the [`WorkEnded`]
    /// policy), with the transition's reason [`Reason::Resigned`](crate::Reason::Resigned).
    /// For work that decides by itself that another candidate should lead.
    pub fn resign(&self) {
        self.handover
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Spawns a task that belongs to the term: it is cancelled (dropped at its next await
    /// point) when the work ends, however it ends, and the candidate waits for it as it waits
    /// for the work. Tasks spawned otherwise (`tokio::spawn`) and blocking code are the
    /// caller's to stop: they outlive the term.
    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let cancel = self.tasks_cancel.clone();
        let scoped = WORK_OF.scope(self.owner.clone(), async move {
            tokio::select! {
                biased;
                () = cancel.cancelled() => {}
                () = task => {}
            }
        });
        self.tasks.spawn(Frozen::new(
            self.process.clone(),
            Role::Work,
            Box::pin(scoped),
        ));
    }

    pub(crate) fn handover_flag(&self) -> Arc<AtomicBool> {
        self.handover.clone()
    }

    /// Cancels the term's tasks and waits for them.
    pub(crate) async fn end_tasks(&self) {
        self.tasks_cancel.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// A guard that cancels the term's tasks when dropped (the work aborted by its driver
    /// going away).
    pub(crate) fn tasks_guard(&self) -> tokio_util::sync::DropGuard {
        self.tasks_cancel.clone().drop_guard()
    }

    pub(crate) fn owner(&self) -> Arc<Link> {
        self.owner.clone()
    }
}

/// What to do when the leader work ends by itself while its term is live (set with
/// [`CandidateBuilder::when_work_ends`](crate::CandidateBuilder::when_work_ends)).
///
/// The transition out of the Leader state says how the work ended:
/// [`Reason::WorkReturned`](crate::Reason::WorkReturned),
/// [`Reason::WorkFailed`](crate::Reason::WorkFailed) (with the error's text) or
/// [`Reason::WorkPanicked`](crate::Reason::WorkPanicked) (with the panic's message).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum WorkEnded {
    /// Resign and rejoin at the tail (the default), after a back-off that doubles while terms
    /// keep ending soon after they start (within half the session timeout), from `T/20` up to
    /// `4 x T`, and starts again after a term that lasted: a work that fails at once on every
    /// term lets the others lead and does not spin.
    #[default]
    Resign,
    /// Leave the election for good (the candidate stops with
    /// [`StopReason::Resigned`](crate::StopReason::Resigned)).
    Leave,
    /// Keep leading (for work that only starts something and returns): the term ends only as
    /// terms otherwise do. Reported by [`Notice::WorkFinished`](crate::Notice::WorkFinished).
    KeepLeading,
}

/// What leader work may return: `()`, or `Result<(), E>` for any `E: Display` (a boxed error,
/// `anyhow::Error`, a `String`). An `Err` ends the term as [`WorkEnded`] says, with the error's
/// text in the transition's reason.
pub trait WorkResult: Send + 'static {
    /// The work's outcome: `Err` with the error's text when it failed.
    fn into_outcome(self) -> Result<(), String>;
}

impl WorkResult for () {
    fn into_outcome(self) -> Result<(), String> {
        Ok(())
    }
}

impl<E: Display + Send + 'static> WorkResult for Result<(), E> {
    fn into_outcome(self) -> Result<(), String> {
        self.map_err(|e| e.to_string())
    }
}

/// Leader-scoped work: called once per term with that term (in the work's own task).
pub(crate) type LeaderWork = Arc<
    dyn Fn(Term) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'static>>
        + Send
        + Sync,
>;
