//! `election run`: join the election, run the command while leading, stop its whole process
//! group before leadership is given up.
//!
//! Timing: a leader out of contact with the service must have stopped its child within the
//! step-down budget, `2/3 x --session-timeout` after its last contact (before the service can
//! expire its session and let a successor lead). The library's leader grace is set to
//! `--grace + margin`: the supervisor's stop sends SIGTERM, waits up to `--grace`, sends SIGKILL
//! and waits up to `margin` (250 ms, or a quarter of the budget if less) for the group to be
//! reaped. `--grace + margin` must be below the budget, or `run` refuses to start. If the
//! library aborts the work anyway (the session ended under it), the group gets SIGKILL at once.

use std::ffi::OsString;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use election::{
    Candidate, Client, ElectionState, StopReason, Term, WorkEnded, DEFAULT_STEP_DOWN_FRACTION,
};
use metrics::{counter, gauge};
use rustix::process::{Pid, Signal};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::Notify;
use tokio::time::{sleep, Instant};
use tracing::{error, info, warn};

use crate::child::{self, ChildEnv, Stopped};
use crate::guard::Guard;
use crate::notify::Notifier;
use crate::{backend, exit, fail, OnExit, RunArgs};

/// The most a stop waits after SIGKILL for the group to be reaped.
const KILL_MARGIN: Duration = Duration::from_millis(250);

/// The timing of a stop, checked against the step-down budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// SIGTERM to SIGKILL.
    pub grace: Duration,
    /// SIGKILL to giving up on the group being reaped.
    pub margin: Duration,
    /// `2/3 x session timeout`.
    pub budget: Duration,
}

impl Timing {
    /// The timing for `session_timeout` and `--grace` (default: a quarter of the budget).
    pub fn new(session_timeout: Duration, grace: Option<Duration>) -> Result<Timing, String> {
        let budget = session_timeout.mul_f64(DEFAULT_STEP_DOWN_FRACTION);
        let margin = KILL_MARGIN.min(budget / 4);
        let grace = grace.unwrap_or(budget / 4);
        if grace + margin >= budget {
            let fmt = |d: Duration| {
                humantime::format_duration(Duration::from_millis(d.as_millis() as u64)).to_string()
            };
            return Err(format!(
                "--grace {} does not fit: a leader out of contact must have stopped its command within {} (2/3 of --session-timeout {}), and a stop takes the grace plus up to {} to kill and reap; use a --grace below {} or a longer --session-timeout",
                fmt(grace),
                fmt(budget),
                fmt(session_timeout),
                fmt(margin),
                fmt(budget - margin),
            ));
        }
        Ok(Timing {
            grace,
            margin,
            budget,
        })
    }

    /// The leader grace given to the library: the whole stop.
    pub fn library_grace(&self) -> Duration {
        self.grace + self.margin
    }
}

/// What the leader work and the main loop share.
struct Ctx {
    argv: Vec<OsString>,
    path: String,
    id: String,
    timing: Timing,
    session_timeout: Duration,
    on_exit: OnExit,
    client: Client,
    guard: Option<Guard>,
    state: Mutex<Shared>,
    /// Woken when the work asks the supervisor to exit.
    exit: Notify,
}

#[derive(Default)]
struct Shared {
    /// The running child's process group.
    group: Option<Pid>,
    /// The status of the last child that ended.
    last_status: Option<ExitStatus>,
    /// An exit the work asked for (`--on-exit exit`, a command that cannot be started).
    exit_code: Option<i32>,
    /// Groups whose leader ended but whose members may still end later (a stop cut short, a
    /// lingering process): their adopted members are reaped on SIGCHLD.
    leftover: std::collections::BTreeSet<i32>,
}

impl Ctx {
    fn shared(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn request_exit(&self, code: i32) {
        self.shared().exit_code = Some(code);
        self.exit.notify_one();
    }

    fn announce(&self, group: Pid, live: bool) {
        if let Some(guard) = &self.guard {
            guard.announce(group, live);
        }
    }
}

/// A running child's process group, known to the supervisor (SIGHUP, a second signal) and to
/// the guard process while it lives. Dropped while armed (the work aborted by the election: its
/// session ended, or the stop overran), it kills the group with SIGKILL at once.
struct Running {
    ctx: Arc<Ctx>,
    group: Pid,
    armed: bool,
}

impl Running {
    fn new(ctx: Arc<Ctx>, group: Pid) -> Self {
        ctx.shared().group = Some(group);
        ctx.announce(group, true);
        Self {
            ctx,
            group,
            armed: true,
        }
    }

    /// The group was stopped (or its stop gave up): forget it.
    fn done(mut self) {
        self.armed = false;
        self.forget();
    }

    fn forget(&self) {
        let mut shared = self.ctx.shared();
        if shared.group == Some(self.group) {
            shared.group = None;
        }
        if !child::group_gone(self.group) {
            shared.leftover.insert(self.group.as_raw_nonzero().get());
        }
        drop(shared);
        self.ctx.announce(self.group, false);
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.armed {
            warn!(path = %self.ctx.path, group = self.group.as_raw_nonzero().get(), "the command's stop was cut short: SIGKILL to its process group");
            child::signal_group(self.group, Signal::KILL);
            self.forget();
        }
    }
}

/// Runs `election run`; returns the exit code.
pub async fn run(args: RunArgs) -> i32 {
    let service = &args.service;
    let timing = match Timing::new(service.session_timeout, args.grace) {
        Ok(t) => t,
        Err(e) => return fail(exit::USAGE, e),
    };
    if let Err((code, reason)) = child::check_program(&args.command[0]) {
        return fail(code, reason);
    }
    let backend = match backend::build(service) {
        Ok(b) => b,
        Err((code, reason)) => return fail(code, reason),
    };
    let id = args.id.clone().unwrap_or_else(backend::host_name);
    // A compatibility mode's entry holds the id alone: no payload.
    let payload = match args.compat {
        Some(_) => String::new(),
        None => args
            .payload
            .clone()
            .or_else(|| backend.local_address())
            .unwrap_or_else(backend::host_name),
    };
    let compat = |b: election::CandidateBuilder| match args.compat {
        Some(mode) => b.compatibility(mode),
        None => b,
    };
    let policy = match args.on_exit {
        OnExit::Resign => WorkEnded::Resign,
        OnExit::Exit => WorkEnded::Leave,
        // The work itself restarts the command: it returns only when its term ends.
        OnExit::Restart => WorkEnded::Resign,
    };
    // Checked in full before anything is created: a bad path or id is a usage error.
    let check = compat(Candidate::builder(service.path.clone(), id.clone()))
        .payload(payload.clone().into_bytes())
        .session_timeout(service.session_timeout)
        .leader_grace(timing.library_grace())
        .build();
    if let Err(e) = check {
        return fail(exit::USAGE, e);
    }
    if let Some(addr) = args.metrics {
        let installed = metrics_exporter_prometheus::PrometheusBuilder::new()
            .with_http_listener(addr)
            .install();
        if let Err(e) = installed {
            return fail(exit::USAGE, format!("--metrics {addr}: {e}"));
        }
    }
    let notifier = Notifier::from_env();
    child::become_subreaper();
    let guard = match Guard::start() {
        Ok(g) => Some(g),
        Err(e) => {
            warn!(error = %e, "cannot start the guard process: grandchildren are not covered if the supervisor is killed");
            None
        }
    };
    let mut signals = match Signals::install() {
        Ok(s) => s,
        Err(e) => {
            return fail(
                exit::FAILURE,
                format!("cannot install signal handlers: {e}"),
            )
        }
    };
    let connect = backend.connect(service.session_timeout, service.connection_timeout);
    let client = tokio::select! {
        connected = connect => match connected {
            Ok(c) => c,
            Err((code, reason)) => return fail(code, reason),
        },
        () = signals.stop() => {
            info!("signal before joining: exiting");
            return 0;
        }
    };
    let ctx = Arc::new(Ctx {
        argv: args.command.clone(),
        path: service.path.clone(),
        id: id.clone(),
        timing,
        session_timeout: service.session_timeout,
        on_exit: args.on_exit,
        client: client.clone(),
        guard,
        state: Mutex::new(Shared::default()),
        exit: Notify::new(),
    });
    let work_ctx = ctx.clone();
    let config = compat(Candidate::builder(service.path.clone(), id.clone()))
        .payload(payload.into_bytes())
        .session_timeout(service.session_timeout)
        .leader_grace(timing.library_grace())
        .when_work_ends(policy)
        .on_leader(move |term| lead(work_ctx.clone(), term))
        .build();
    let config = match config {
        Ok(c) => c,
        Err(e) => return fail(exit::USAGE, e),
    };
    let candidate = match client.join(config).await {
        Ok(c) => c,
        Err(e) => {
            client.close().await;
            let (code, _) = backend.refusal(&e);
            return fail(code, format!("cannot join {}: {e}", service.path));
        }
    };
    info!(path = %service.path, candidate = %id, session = %client.session_id(), grace = ?timing.grace, budget = ?timing.budget, "joined; waiting to lead");
    let code = supervise(&ctx, &candidate, &notifier, signals).await;
    client.close().await;
    code
}

/// Why the main loop ended.
enum Shutdown {
    /// SIGTERM or SIGINT; whether a child was running then.
    Signal(bool),
    /// The work asked to exit.
    Requested,
    /// The candidate stopped by itself.
    Stopped(StopReason),
}

/// The signals the supervisor handles, installed before it connects: from then on SIGTERM and
/// SIGINT no longer kill it outright (before it joins they end it with nothing created).
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
    chld: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
            chld: signal(SignalKind::child())?,
        })
    }

    /// SIGTERM or SIGINT.
    async fn stop(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}

async fn supervise(ctx: &Ctx, candidate: &Candidate, notifier: &Notifier, signals: Signals) -> i32 {
    let Signals {
        mut term,
        mut int,
        mut hup,
        mut chld,
    } = signals;
    let mut state = candidate.state();
    let mut ready = false;
    let path = ctx.path.clone();
    let shutdown = loop {
        let now = state.borrow_and_update().clone();
        publish(&path, &now, notifier, &mut ready);
        if let ElectionState::Stopped(reason) = now {
            break Shutdown::Stopped(reason);
        }
        tokio::select! {
            _ = term.recv() => break Shutdown::Signal(ctx.shared().group.is_some()),
            _ = int.recv() => break Shutdown::Signal(ctx.shared().group.is_some()),
            _ = hup.recv() => {
                if let Some(group) = ctx.shared().group {
                    info!(group = group.as_raw_nonzero().get(), "SIGHUP: forwarded to the command");
                    child::signal_group(group, Signal::HUP);
                }
            }
            () = ctx.exit.notified() => break Shutdown::Requested,
            _ = chld.recv() => reap_leftovers(ctx),
            changed = state.changed() => if changed.is_err() {
                break Shutdown::Stopped(StopReason::Stopped);
            },
        }
    };
    notifier.send("STOPPING=1");
    info!(path = %path, candidate = %ctx.id, "withdrawing");
    // Withdraw: the work stops the command (SIGTERM, grace, SIGKILL), then the entry goes.
    // A second SIGTERM or SIGINT meanwhile kills the command's group at once.
    {
        let stop = candidate.stop();
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => break,
                _ = term.recv() => kill_now(ctx),
                _ = int.recv() => kill_now(ctx),
            }
        }
    }
    gauge!("election_cli_leader", "path" => path.clone()).set(0.0);
    let shared = ctx.shared();
    match shutdown {
        Shutdown::Signal(was_running) => match (was_running, shared.last_status) {
            (true, Some(status)) => child::exit_code(status),
            _ => 0,
        },
        Shutdown::Requested => shared.exit_code.unwrap_or(exit::FAILURE),
        Shutdown::Stopped(StopReason::Resigned) => shared.exit_code.unwrap_or(0),
        Shutdown::Stopped(reason) => {
            fail(exit::FAILURE, format!("the election stopped: {reason:?}"))
        }
    }
}

/// Reaps what ended of the groups left over from earlier terms (see [`Shared::leftover`]).
fn reap_leftovers(ctx: &Ctx) {
    let mut shared = ctx.shared();
    let current = shared.group.map(|g| g.as_raw_nonzero().get());
    shared.leftover.retain(|&id| {
        if Some(id) == current {
            return false;
        }
        match Pid::from_raw(id) {
            Some(group) => child::reap_group(group) || !child::group_gone(group),
            None => false,
        }
    });
}

fn kill_now(ctx: &Ctx) {
    if let Some(group) = ctx.shared().group {
        warn!(
            group = group.as_raw_nonzero().get(),
            "second signal: SIGKILL to the command's process group"
        );
        child::signal_group(group, Signal::KILL);
    }
}

/// sd_notify and gauges for a new state.
fn publish(path: &str, state: &ElectionState, notifier: &Notifier, ready: &mut bool) {
    let status = match state {
        ElectionState::Joining => "joining".to_owned(),
        ElectionState::Follower { position, leader } => match leader {
            Some(l) => format!(
                "following {} (token {}), position {position}",
                l.id, l.token
            ),
            None => format!("following, position {position}"),
        },
        ElectionState::Leader { token, .. } => format!("leading with token {token}"),
        ElectionState::Suspended => "suspended: contact uncertain".to_owned(),
        ElectionState::Stopped(reason) => format!("stopped: {reason:?}"),
    };
    let leading = state.is_leader();
    gauge!("election_cli_leader", "path" => path.to_owned()).set(if leading { 1.0 } else { 0.0 });
    if let Some(token) = state.token() {
        gauge!("election_cli_token", "path" => path.to_owned()).set(token.0 as f64);
    }
    let joined = matches!(
        state,
        ElectionState::Follower { .. } | ElectionState::Leader { .. }
    );
    if joined && !*ready {
        *ready = true;
        notifier.send(&format!("READY=1\nSTATUS={status}"));
    } else {
        notifier.send(&format!("STATUS={status}"));
    }
}

/// The leader work: runs the command for the term, and stops it when the term ends.
async fn lead(ctx: Arc<Ctx>, term: Term) -> Result<(), String> {
    let token = term.token();
    let mut backoff = ctx.session_timeout / 20;
    loop {
        let env = ChildEnv {
            vars: vec![
                ("ELECTION_TOKEN", token.to_string()),
                ("ELECTION_PATH", ctx.path.clone()),
                ("ELECTION_ID", ctx.id.clone()),
                ("ELECTION_SESSION", ctx.client.session_id().to_string()),
            ],
        };
        let (mut process, group) = match child::spawn(&ctx.argv, &env) {
            Ok(started) => started,
            Err(e) => {
                let code = match e.kind() {
                    std::io::ErrorKind::NotFound => exit::NOT_FOUND,
                    std::io::ErrorKind::PermissionDenied => exit::NOT_EXECUTABLE,
                    _ => exit::FAILURE,
                };
                error!(path = %ctx.path, token = %token, error = %e, "cannot start the command; withdrawing");
                counter!("election_cli_child_exits_total", "path" => ctx.path.clone(), "outcome" => "spawn_failed").increment(1);
                ctx.request_exit(code);
                return Err(format!("cannot start the command: {e}"));
            }
        };
        let running = Running::new(ctx.clone(), group);
        counter!("election_cli_child_starts_total", "path" => ctx.path.clone()).increment(1);
        info!(path = %ctx.path, token = %token, pid = group.as_raw_nonzero().get(), "command started");
        let started = Instant::now();
        let exited = tokio::select! {
            biased;
            () = term.cancelled() => None,
            status = process.wait() => Some(status),
        };
        let (status, outcome) = match exited {
            None => {
                info!(path = %ctx.path, token = %token, "term over: stopping the command (SIGTERM to its group)");
                let (status, how) =
                    child::stop_group(&mut process, group, ctx.timing.grace, ctx.timing.margin)
                        .await;
                let outcome = match how {
                    Stopped::Terminated => "terminated",
                    Stopped::Killed => "killed",
                    Stopped::Lingering => "lingering",
                };
                (status, outcome)
            }
            Some(status) => {
                let status = status.ok();
                // The command is done; what it left in its group does not outlive the term.
                if !child::group_gone(group) {
                    info!(path = %ctx.path, token = %token, "the command exited; stopping what it left in its group");
                    child::stop_group(&mut process, group, ctx.timing.grace, ctx.timing.margin)
                        .await;
                }
                (status, "exited")
            }
        };
        if !child::group_gone(group) {
            error!(path = %ctx.path, token = %token, "the command's process group is still there after SIGKILL");
        }
        running.done();
        if status.is_some() {
            ctx.shared().last_status = status;
        }
        let code = status.map(child::exit_code);
        counter!("election_cli_child_exits_total", "path" => ctx.path.clone(), "outcome" => outcome).increment(1);
        info!(path = %ctx.path, token = %token, outcome, status = ?code, "command ended");
        if outcome != "exited" {
            return Ok(());
        }
        match ctx.on_exit {
            OnExit::Resign => {
                return match code {
                    Some(0) => Ok(()),
                    _ => Err(format!("the command exited with status {code:?}")),
                };
            }
            OnExit::Exit => {
                ctx.request_exit(code.unwrap_or(exit::FAILURE));
                return Ok(());
            }
            OnExit::Restart => {
                if started.elapsed() >= ctx.session_timeout / 2 {
                    backoff = ctx.session_timeout / 20;
                }
                info!(path = %ctx.path, token = %token, delay = ?backoff, "restarting the command");
                tokio::select! {
                    () = term.cancelled() => return Ok(()),
                    () = sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(ctx.session_timeout * 4);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_grace_fits_and_a_long_one_is_refused() {
        let t = Timing::new(Duration::from_secs(3), None).unwrap();
        assert_eq!(t.budget, Duration::from_secs(2));
        assert_eq!(t.grace, Duration::from_millis(500));
        assert_eq!(t.margin, Duration::from_millis(250));
        assert!(Timing::new(Duration::from_secs(3), Some(Duration::from_millis(1700))).is_ok());
        let e = Timing::new(Duration::from_secs(3), Some(Duration::from_millis(1750))).unwrap_err();
        assert!(e.contains("--grace 1s 750ms does not fit"), "{e}");
        // Short sessions scale the margin down with the budget.
        let t = Timing::new(Duration::from_millis(600), None).unwrap();
        assert_eq!(t.margin, Duration::from_millis(100));
        assert!(t.library_grace() < t.budget);
    }
}
