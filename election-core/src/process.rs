//! A simulated process's stop-the-world pause (feature `testing`): while a [`Process`] is
//! paused, none of the tasks of the clients attached to it is polled (each candidate's driver,
//! with its step-down timer, its leader work and the tasks the work spawned with
//! [`Term::spawn`](crate::Term::spawn)), as a GC pause or a frozen VM stops every thread of a
//! JVM. Timers that fall due meanwhile fire when the pause ends. The backend side of the pause
//! (the service no longer hearing the process) is the backend's: `election_mem::MemCluster::pause`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::time::{sleep_until, Instant};

/// What a frozen task is, which decides the order tasks are woken in when a pause ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// Leader work and its tasks: woken first.
    Work,
    /// A candidate's driver: woken after the work.
    Driver,
}

/// One simulated process, which can be paused as a whole (feature `testing`). Attach it to a
/// client with [`ClientBuilder::process`](crate::ClientBuilder::process); clones share one
/// process.
///
/// When a pause ends, leader work is polled before the drivers: the worst case, the one a real
/// pause can produce, where a thread paused in the middle of a write finishes it before anything
/// else of the process runs (and before the candidate notices its term is over).
///
/// ```
/// use std::time::Duration;
/// use election_core::testing::Process;
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let process = Process::new();
/// process.pause(Duration::from_secs(5));
/// assert!(process.is_paused());
/// tokio::time::sleep(Duration::from_secs(5)).await;
/// assert!(!process.is_paused());
/// assert_eq!(process.pauses(), 1);
/// # }
/// ```
#[derive(Clone, Default)]
pub struct Process {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    until: Option<Instant>,
    /// Tasks that were due to run while paused, in the order they were first held.
    held: Vec<(Role, Waker)>,
    pauses: u64,
}

impl Process {
    /// A process that runs.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Pauses the process for `duration` of (tokio) time from now; a pause already running is
    /// extended if this one ends later. Must be called on a tokio runtime (a timer task ends
    /// the pause).
    pub fn pause(&self, duration: Duration) {
        let end = Instant::now() + duration;
        {
            let mut inner = self.lock();
            inner.until = Some(inner.until.map_or(end, |u| u.max(end)));
            inner.pauses += 1;
        }
        let this = self.clone();
        tokio::spawn(async move {
            sleep_until(end).await;
            if this.lock().until.is_some_and(|u| u <= Instant::now()) {
                this.resume();
            }
        });
    }

    /// Ends the pause now, if any: the tasks that were held run, leader work first.
    pub fn resume(&self) {
        let held = {
            let mut inner = self.lock();
            inner.until = None;
            std::mem::take(&mut inner.held)
        };
        for role in [Role::Work, Role::Driver] {
            for (_, waker) in held.iter().filter(|(r, _)| *r == role) {
                waker.wake_by_ref();
            }
        }
    }

    /// `true` while paused.
    pub fn is_paused(&self) -> bool {
        self.lock().until.is_some_and(|u| Instant::now() < u)
    }

    /// When the running pause ends, if paused.
    pub fn paused_until(&self) -> Option<Instant> {
        self.lock().until.filter(|u| Instant::now() < *u)
    }

    /// How many pauses were asked for.
    pub fn pauses(&self) -> u64 {
        self.lock().pauses
    }

    /// `true` (and the task registered to be woken at the pause's end) while paused.
    fn hold(&self, role: Role, cx: &Context<'_>) -> bool {
        let mut inner = self.lock();
        if inner.until.is_none_or(|u| Instant::now() >= u) {
            return false;
        }
        if !inner.held.iter().any(|(_, w)| w.will_wake(cx.waker())) {
            inner.held.push((role, cx.waker().clone()));
        }
        true
    }
}

impl fmt::Debug for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.lock();
        f.debug_struct("Process")
            .field("paused_until", &inner.until)
            .field("pauses", &inner.pauses)
            .finish()
    }
}

/// Polls `inner` only while `process` (if any) is not paused. `inner` is held as it is (an
/// `async` block is pinned in a `Box` by the caller; a candidate's driver needs no box).
pub(crate) struct Frozen<F> {
    process: Option<Process>,
    role: Role,
    inner: F,
}

impl<F: Future + Unpin> Frozen<F> {
    pub(crate) fn new(process: Option<Process>, role: Role, inner: F) -> Self {
        Self {
            process,
            role,
            inner,
        }
    }
}

impl<F: Future + Unpin> Future for Frozen<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        if let Some(p) = &this.process {
            if p.hold(this.role, cx) {
                return Poll::Pending;
            }
        }
        Pin::new(&mut this.inner).poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn a_paused_task_runs_nothing_until_the_pause_ends_then_work_runs_first() {
        let process = Process::new();
        let order = Arc::new(Mutex::new(Vec::new()));
        let ticks = Arc::new(AtomicU32::new(0));
        let start = Instant::now();
        let spawn = |role: Role, name: &'static str| {
            let (order, ticks) = (order.clone(), ticks.clone());
            tokio::spawn(Frozen::new(
                Some(process.clone()),
                role,
                Box::pin(async move {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    ticks.fetch_add(1, Ordering::SeqCst);
                    order.lock().unwrap().push((name, Instant::now() - start));
                }),
            ))
        };
        // The driver is spawned first, so without the rule it would run first.
        let d = spawn(Role::Driver, "driver");
        let w = spawn(Role::Work, "work");
        tokio::task::yield_now().await;
        process.pause(Duration::from_secs(4));
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(ticks.load(Ordering::SeqCst), 0, "nothing runs while paused");
        assert!(process.is_paused());
        d.await.unwrap();
        w.await.unwrap();
        let order = order.lock().unwrap().clone();
        assert_eq!(
            order,
            [
                ("work", Duration::from_secs(4)),
                ("driver", Duration::from_secs(4))
            ]
        );
        assert!(!process.is_paused());
    }

    #[tokio::test(start_paused = true)]
    async fn resume_ends_a_pause_early_and_a_longer_pause_extends_it() {
        let process = Process::new();
        process.pause(Duration::from_secs(2));
        process.pause(Duration::from_secs(5));
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(process.is_paused(), "the longer pause holds");
        process.resume();
        assert!(!process.is_paused());
        assert_eq!(process.paused_until(), None);
        assert_eq!(process.pauses(), 2);
        let t = tokio::spawn(Frozen::new(
            Some(process.clone()),
            Role::Driver,
            Box::pin(async { 7 }),
        ));
        assert_eq!(t.await.unwrap(), 7);
    }
}
