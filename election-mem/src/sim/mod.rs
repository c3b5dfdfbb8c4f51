//! Deterministic simulation (feature `sim`): many candidates on a [`MemCluster`], over one or
//! more election paths, driven through a [`Schedule`] of operations and faults on tokio's paused
//! clock, with the contract's invariants (`election_core::testing::invariants`) checked after
//! every op, then liveness once the faults stop, then that nothing is left behind.
//!
//! One `u64` seed derives everything ([`Schedule::from_seed`]); [`run_seed`] runs it on a fresh
//! current-thread runtime with paused time, so the same seed gives the same [`Report::trace`],
//! byte for byte. A failure reports `ELECTION_SEED=<n>` and the trace ([`Report::check`]).
//!
//! ```
//! let report = election_mem::sim::run_seed(42);
//! report.check(); // panics with ELECTION_SEED=42 and the trace on a violation
//! assert_eq!(report.trace, election_mem::sim::run_seed(42).trace);
//! ```
//!
//! What is checked, and when:
//! - after every op: S3/L2 (every candidate in the Leader state holds the head of its queue),
//!   S1 in a mixed fleet (no candidate in the Leader state holds an entry that a foreign
//!   contender, `Op::Contender`, precedes),
//!   L3 (every entry is watched by at most one other candidate), S5 (no candidate holds two
//!   entries, a stopped one holds none);
//! - at the end: S1/S2 over every Leader interval and S4 over every work span, with terms ended
//!   by force (administrator deletes and expiries, crashes) treated as over at that instant;
//!   L1 (once every fault is undone, each election with a running candidate has exactly one
//!   leader within [`liveness_bound`](election_core::testing::invariants::liveness_bound));
//!   S5 (after everyone stops, no entry is left).
//!
//! Process pauses ([`Op::Pause`]) freeze a client's whole process; when the service expired the
//! session during the pause, the terms it spanned are exempted from S2, S3 and S4 from the
//! pause's start (the trace says so), since no election can step a frozen process down, and
//! fencing is checked instead: the built-in leader work writes to a
//! [`FencedStore`] per path, and every write the store
//! refused must come from a term a pause or a force ended.
//!
//! [`Simulation`] runs your own leader work and checks in the same engine.

mod schedule;
mod service;
mod trace;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use election_core::testing::invariants::{
    check_leader_holds_head, check_leaders_forced, check_liveness, check_no_herd,
    check_no_leader_behind_foreign, check_no_orphans, check_work_forced, Forced, HeadEntry,
    LeaderEntry, Violation,
};
use election_core::testing::recorder::{Recorder, WorkLog};
use election_core::testing::{FencedStore, Process};
use election_core::{
    Candidate, CandidateBuilder, Client, ElectionState, Event, FencingToken, SessionId, Term,
};
use futures_util::FutureExt;
use tokio::time::{sleep, Instant};

use crate::MemCluster;

pub use schedule::{Op, Schedule, SimSetup, SplitMix64, WorkKind};
pub use service::{Replica, Simulation, Summary};
pub use trace::{SimLog, Trace};

/// What a run did and found.
#[derive(Debug)]
pub struct Report {
    /// The seed, when the schedule came from one.
    pub seed: Option<u64>,
    /// The trace: ops, transitions and notices with virtual times.
    pub trace: String,
    /// The first broken invariant, if any.
    pub violation: Option<Violation>,
    /// Candidates that joined.
    pub candidates: usize,
    /// Ops run.
    pub ops: usize,
}

impl Report {
    /// Panics with `ELECTION_SEED=<n>`, the violation and the trace if an invariant broke.
    pub fn check(&self) {
        if let Some(v) = &self.violation {
            let seed = self
                .seed
                .map(|s| format!("ELECTION_SEED={s}"))
                .unwrap_or_else(|| "(schedule given op by op)".to_owned());
            panic!(
                "{seed}\n{v}\n--- trace ---\n{}--- end ---\n{seed}\n{v}",
                self.trace
            );
        }
    }
}

/// Runs the schedule of `seed` on a fresh paused runtime.
pub fn run_seed(seed: u64) -> Report {
    let mut report = run_schedule(&Schedule::from_seed(seed));
    report.seed = Some(seed);
    report
}

/// Runs `schedule` on a fresh current-thread runtime with paused time, on a thread of its own.
///
/// A run whose virtual time stops advancing (tasks that keep one another busy at one instant:
/// a livelock) never returns by itself; after `ELECTION_SIM_WALL_LIMIT` seconds of wall time
/// (default 60) it is reported as an L1 violation with the trace so far (its thread is left
/// behind).
pub fn run_schedule(schedule: &Schedule) -> Report {
    run_schedule_with(schedule, None)
}

/// Makes a run's paths and the user's hooks, afresh for each run.
pub(crate) type MakeHooks = std::sync::Arc<dyn Fn() -> (Vec<String>, Hooks) + Send + Sync>;

pub(crate) fn run_schedule_with(schedule: &Schedule, make: Option<MakeHooks>) -> Report {
    let limit = std::env::var("ELECTION_SIM_WALL_LIMIT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let (tx, rx) = std::sync::mpsc::channel();
    let (trace_tx, trace_rx) = std::sync::mpsc::channel();
    let schedule = schedule.clone();
    std::thread::spawn(move || {
        let report = run_here(
            &schedule,
            |shared| {
                let _ = trace_tx.send(shared);
            },
            make,
        );
        let _ = tx.send(report);
    });
    match rx.recv_timeout(Duration::from_secs(limit)) {
        Ok(report) => report,
        Err(_) => {
            let trace = trace_rx
                .try_recv()
                .map(|t| t.lock().unwrap_or_else(|e| e.into_inner()).clone())
                .unwrap_or_default();
            Report {
                seed: None,
                trace: format!("{trace}(no progress of virtual time for {limit} s of wall time)\n"),
                violation: Some(Violation {
                    line: "L1",
                    detail: format!(
                        "livelock: virtual time stopped advancing (no progress for {limit} s of wall time)"
                    ),
                }),
                candidates: 0,
                ops: 0,
            }
        }
    }
}

fn run_here(
    schedule: &Schedule,
    share: impl FnOnce(std::sync::Arc<std::sync::Mutex<String>>),
    make: Option<MakeHooks>,
) -> Report {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime");
    rt.block_on(async {
        let mut sim = match make {
            Some(make) => {
                let (paths, hooks) = make();
                Sim::with_hooks(schedule.setup.clone(), Some(paths), Some(hooks))
            }
            None => Sim::new(schedule.setup.clone()).await,
        };
        share(sim.trace.shared());
        for op in &schedule.ops {
            if sim.apply(*op).await.is_err() {
                break;
            }
        }
        sim.finish().await
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Running,
    /// Stop, leave or drop asked for.
    Withdrawing,
    Crashed,
}

struct SimCandidate {
    id: String,
    client: usize,
    path: usize,
    handle: Option<Candidate>,
    status: Status,
    /// Its leader work fails at once on every term: it is not expected to hold leadership.
    fails_at_once: bool,
}

struct SimClient {
    client: Client,
    crashed: bool,
    /// The process it runs in, for pauses.
    process: Process,
}

/// A pause of a client's process, until it is known whether its session outlived it.
struct PauseRec {
    client: usize,
    session: SessionId,
    start: Instant,
    end: Instant,
    /// The service's counter at the start: the terms that existed then.
    last_token: FencingToken,
    resolved: bool,
}

/// Gives a candidate (its builder, id, path index, log and the work log for S4) its work.
pub(crate) type GiveWork =
    dyn Fn(CandidateBuilder, &str, usize, SimLog, &WorkLog) -> CandidateBuilder;

/// What a user's simulation ([`Simulation`]) puts into a run, made afresh for each run.
pub(crate) struct Hooks {
    /// Gives a candidate (id, path index) the user's leader work.
    pub(crate) work: Box<GiveWork>,
    /// The user's checks, after every op and at the end.
    pub(crate) check: Box<dyn Fn() -> Result<(), String>>,
    /// The user's checks once the faults stopped and a leader is back.
    pub(crate) check_end: Box<dyn Fn() -> Result<(), String>>,
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim")
            .field("paths", &self.paths)
            .field("clients", &self.clients.len())
            .field("candidates", &self.candidates.len())
            .field("ops", &self.ops)
            .field("violation", &self.violation.is_some())
            .finish_non_exhaustive()
    }
}

/// A simulation in progress: call [`apply`](Self::apply) per op, then [`finish`](Self::finish).
/// Must run on a runtime with paused time (as [`run_schedule`] makes).
pub struct Sim {
    cluster: MemCluster,
    setup: SimSetup,
    rng: SplitMix64,
    trace: Trace,
    recorder: Recorder,
    work: WorkLog,
    paths: Vec<String>,
    clients: Vec<SimClient>,
    candidates: Vec<SimCandidate>,
    forced: Vec<Forced>,
    pauses: Vec<PauseRec>,
    /// One fencing downstream per path, written by the built-in leader work.
    fences: Vec<FencedStore>,
    /// What leader work logged (the user's lines, the built-in work's rejected writes), merged
    /// into the trace in time order.
    lines: SimLog,
    hooks: Option<Hooks>,
    ops: usize,
    violation: Option<Violation>,
}

impl Sim {
    /// A simulation with no candidates yet.
    pub async fn new(setup: SimSetup) -> Self {
        Self::with_hooks(setup, None, None)
    }

    pub(crate) fn with_hooks(
        setup: SimSetup,
        paths: Option<Vec<String>>,
        hooks: Option<Hooks>,
    ) -> Self {
        let paths: Vec<String> = paths.unwrap_or_else(|| {
            (0..setup.path_count())
                .map(|i| format!("/sim/election-{i}"))
                .collect()
        });
        let fences = paths.iter().map(|_| FencedStore::new()).collect();
        let rng = SplitMix64::new(setup.seed);
        let mut trace = Trace::new();
        trace.line(format!("setup {setup:?}"));
        Self {
            cluster: MemCluster::new(),
            setup,
            rng,
            trace,
            recorder: Recorder::new(),
            work: WorkLog::new(),
            paths,
            clients: Vec::new(),
            candidates: Vec::new(),
            forced: Vec::new(),
            pauses: Vec::new(),
            fences,
            lines: SimLog::new(),
            hooks,
            ops: 0,
            violation: None,
        }
    }

    /// The service under test.
    pub fn cluster(&self) -> &MemCluster {
        &self.cluster
    }

    /// The trace so far.
    pub fn trace(&self) -> String {
        self.trace.text()
    }

    /// The election paths.
    pub fn paths(&self) -> &[String] {
        &self.paths
    }

    /// The candidate ids of `path` (by index) in queue order, as the service has them.
    pub fn queue(&self, path: usize) -> Vec<String> {
        self.cluster
            .queue(&self.paths[path % self.paths.len()])
            .into_iter()
            .filter_map(|e| e.candidate)
            .collect()
    }

    /// The state of candidate `id` now (`None`: unknown or crashed).
    pub fn state_of(&self, id: &str) -> Option<ElectionState> {
        self.candidates
            .iter()
            .find(|c| c.id == id)
            .and_then(|c| c.handle.as_ref())
            .map(|h| h.current())
    }

    /// Ids of the candidates in the Leader state now, on `path` (by index).
    pub fn leaders(&self, path: usize) -> Vec<String> {
        let path = path % self.paths.len();
        self.candidates
            .iter()
            .filter(|c| c.path == path)
            .filter(|c| c.handle.as_ref().is_some_and(|h| h.is_leader()))
            .map(|c| c.id.clone())
            .collect()
    }

    /// Ids of the running candidates (not withdrawing, not crashed), in join order.
    pub fn running(&self) -> Vec<String> {
        self.running_indices()
            .into_iter()
            .map(|i| self.candidates[i].id.clone())
            .collect()
    }

    /// The recorder of every candidate's events.
    pub fn recorder(&mut self) -> &mut Recorder {
        &mut self.recorder
    }

    fn running_indices(&self) -> Vec<usize> {
        (0..self.candidates.len())
            .filter(|&i| self.candidates[i].status == Status::Running)
            .collect()
    }

    fn live_clients(&self) -> Vec<usize> {
        (0..self.clients.len())
            .filter(|&i| !self.clients[i].crashed)
            .collect()
    }

    fn pick<T: Copy>(items: &[T], index: u8) -> Option<T> {
        (!items.is_empty()).then(|| items[usize::from(index) % items.len()])
    }

    async fn session_of(&self, client: usize) -> SessionId {
        self.clients[client].client.session().await.id()
    }

    fn candidates_of_client(&self, client: usize) -> Vec<usize> {
        (0..self.candidates.len())
            .filter(|&i| self.candidates[i].client == client)
            .filter(|&i| self.candidates[i].status != Status::Crashed)
            .collect()
    }

    fn force(&mut self, i: usize, why: &str) {
        let id = self.candidates[i].id.clone();
        self.trace.line(format!("  forced end for {id} ({why})"));
        self.forced.push(Forced {
            candidate: id,
            at: Instant::now(),
            last_token: election_core::FencingToken(self.cluster.zxid()),
        });
    }

    /// Exempts from S2 and S4 the terms of a paused process whose session the service ended
    /// while it stood still (from the pause's start): nothing the process could do would have
    /// stepped it down in time. A pause the session outlived exempts nothing.
    fn resolve_pauses(&mut self) {
        let now = Instant::now();
        for n in 0..self.pauses.len() {
            let p = &self.pauses[n];
            if p.resolved {
                continue;
            }
            let ended = self
                .cluster
                .ended_at(p.session)
                .filter(|&e| p.start <= e && e <= p.end);
            let Some(ended) = ended else {
                if p.end <= now {
                    self.pauses[n].resolved = true;
                }
                continue;
            };
            let (c, start, last_token) = (p.client, p.start, p.last_token);
            self.pauses[n].resolved = true;
            let stamp = |at: Instant| {
                format!(
                    "+{:.6}s",
                    at.saturating_duration_since(self.trace.start())
                        .as_secs_f64()
                )
            };
            let (from, expired) = (stamp(start), stamp(ended));
            for i in self.candidates_of_client(c) {
                let id = self.candidates[i].id.clone();
                self.trace.line(format!(
                    "  S2/S4 exempt: terms of {id} up to token {last_token}, from {from}: its process was paused when the service expired its session at {expired}, so a successor may lead before it wakes (no election can prevent that); fencing is checked instead"
                ));
                self.forced.push(Forced {
                    candidate: id,
                    at: start,
                    last_token,
                });
            }
        }
    }

    /// Applies one op, lets the system run for a moment, and checks the invariants that hold at
    /// every instant. `Err` once an invariant broke (the run should stop).
    pub async fn apply(&mut self, op: Op) -> Result<(), Violation> {
        if let Some(v) = &self.violation {
            return Err(v.clone());
        }
        let n = self.ops;
        self.ops += 1;
        self.trace.line(format!("#{n} {op}"));
        self.run_op(op).await;
        sleep(Duration::from_millis(1)).await;
        self.record();
        match self.check_now().and_then(|()| self.check_user(false)) {
            Ok(()) => Ok(()),
            Err(v) => {
                self.trace.line(format!("VIOLATION {v}"));
                self.violation = Some(v.clone());
                Err(v)
            }
        }
    }

    async fn run_op(&mut self, op: Op) {
        let t = self.setup.session_timeout();
        match op {
            Op::Join { client, path, work } => self.join(client, path, work).await,
            Op::Resign { who } => self.command(who, "resign"),
            Op::Leave { who } => self.command(who, "leave"),
            Op::Stop { who } => self.command(who, "stop"),
            Op::Drop { who } => self.command(who, "drop"),
            Op::Crash { client } => {
                let Some(c) = Self::pick(&self.live_clients(), client) else {
                    return;
                };
                let session = self.session_of(c).await;
                self.trace
                    .line(format!("  client {c} (session {session}) crashes"));
                self.cluster.crash(session);
                self.clients[c].crashed = true;
                for i in self.candidates_of_client(c) {
                    self.force(i, "crash");
                    self.candidates[i].status = Status::Crashed;
                    if let Some(h) = self.candidates[i].handle.take() {
                        h.abort();
                    }
                }
            }
            Op::Expire { client } => {
                let Some(c) = Self::pick(&self.live_clients(), client) else {
                    return;
                };
                let session = self.session_of(c).await;
                self.trace
                    .line(format!("  client {c} cut until session {session} expires"));
                self.cluster.cut(session);
                self.sleep_recording(t + Duration::from_millis(1)).await;
                self.cluster.heal(session);
            }
            Op::ExpireBehindIsolatedMember { client } => {
                let Some(c) = Self::pick(&self.live_clients(), client) else {
                    return;
                };
                let session = self.session_of(c).await;
                self.trace.line(format!(
                    "  client {c}'s member isolated until session {session} expires"
                ));
                self.cluster.isolate_member_of(session);
                self.sleep_recording(t + Duration::from_millis(1)).await;
                self.cluster.heal(session);
            }
            Op::ForceExpire { client } => {
                let Some(c) = Self::pick(&self.live_clients(), client) else {
                    return;
                };
                let session = self.session_of(c).await;
                if self.cluster.session_alive(session) {
                    for i in self.candidates_of_client(c) {
                        self.force(i, "forced expiry");
                    }
                }
                self.trace
                    .line(format!("  session {session} of client {c}"));
                self.cluster.expire_session(session);
            }
            Op::Cut { client } => {
                if let Some(c) = Self::pick(&self.live_clients(), client) {
                    let session = self.session_of(c).await;
                    self.trace.line(format!("  client {c} session {session}"));
                    self.cluster.cut(session);
                }
            }
            Op::IsolateMember { client } => {
                if let Some(c) = Self::pick(&self.live_clients(), client) {
                    let session = self.session_of(c).await;
                    self.trace.line(format!("  client {c} session {session}"));
                    self.cluster.isolate_member_of(session);
                }
            }
            Op::Heal { client } => {
                if let Some(c) = Self::pick(&self.live_clients(), client) {
                    let session = self.session_of(c).await;
                    self.trace.line(format!("  client {c} session {session}"));
                    self.cluster.heal(session);
                }
            }
            Op::LoseCreateReply => self.cluster.lose_create_replies(1),
            Op::DelayNotifications { client, ms } => {
                if let Some(c) = Self::pick(&self.live_clients(), client) {
                    let session = self.session_of(c).await;
                    self.cluster
                        .delay_notifications(session, Duration::from_millis(u64::from(ms)));
                }
            }
            Op::Latency { ms } => self
                .cluster
                .set_latency(Duration::from_millis(u64::from(ms))),
            Op::DeleteRoot { path } => {
                let p = usize::from(path) % self.paths.len();
                for i in 0..self.candidates.len() {
                    if self.candidates[i].path == p && self.candidates[i].status != Status::Crashed
                    {
                        self.force(i, "root deleted");
                    }
                }
                let n = self.cluster.delete_tree(&self.paths[p]);
                self.trace.line(format!("  {} nodes deleted", n));
            }
            Op::DeleteEntry { path, index } => {
                let p = usize::from(path) % self.paths.len();
                let queue = self.cluster.queue(&self.paths[p]);
                let Some(e) = Self::pick(&queue.iter().collect::<Vec<_>>(), index) else {
                    return;
                };
                let (name, owner) = (e.name.clone(), e.candidate.clone());
                if let Some(owner) = &owner {
                    if let Some(i) = self.candidates.iter().position(|c| &c.id == owner) {
                        self.force(i, "entry deleted");
                    }
                }
                self.trace.line(format!("  entry of {owner:?}"));
                self.cluster.delete_entry(&self.paths[p], &name);
            }
            Op::Advance { ms } => {
                self.sleep_recording(Duration::from_millis(u64::from(ms)))
                    .await
            }
            Op::Pause { client, ms } => {
                let Some(c) = Self::pick(&self.live_clients(), client) else {
                    return;
                };
                let session = self.session_of(c).await;
                let d = Duration::from_millis(u64::from(ms));
                self.trace.line(format!(
                    "  client {c} (session {session}) pauses for {:.3} s",
                    d.as_secs_f64()
                ));
                let now = Instant::now();
                self.pauses.push(PauseRec {
                    client: c,
                    session,
                    start: now,
                    end: now + d,
                    last_token: FencingToken(self.cluster.zxid()),
                    resolved: false,
                });
                self.cluster.pause(session, d);
                self.clients[c].process.pause(d);
            }
            Op::Restart => {
                let before = self.clients.len();
                for p in 0..self.paths.len() {
                    let client = (self.clients.len() > before).then_some(before);
                    self.join_inner(client, p, WorkKind::Quick, None).await;
                }
            }
            Op::Lookalike { path } => {
                let p = usize::from(path) % self.paths.len();
                let name = self
                    .cluster
                    .create_lookalike(&self.paths[p], election_core::SessionId(0x0bad_cafe));
                self.trace.line(format!("  {name}"));
            }
            Op::Contender { path, kind } => {
                use election_core::Implementation as I;
                let p = usize::from(path) % self.paths.len();
                let kind =
                    [I::CuratorLatch, I::CuratorLock, I::Kazoo, I::Unknown][usize::from(kind) % 4];
                let name = self.cluster.create_contender(
                    &self.paths[p],
                    kind,
                    format!("foreign-{}", self.ops).as_bytes(),
                );
                self.trace.line(format!("  {name}"));
            }
            Op::ContenderLeaves { path, index } => {
                let p = usize::from(path) % self.paths.len();
                let contenders = self.cluster.contenders(&self.paths[p]);
                let Some(c) = Self::pick(&contenders.iter().collect::<Vec<_>>(), index) else {
                    return;
                };
                let name = c.name.clone();
                self.trace.line(format!("  {name}"));
                self.cluster.delete_entry(&self.paths[p], &name);
            }
        }
    }

    /// Joins a new candidate on a client of its own, on `path` (by index), that always rejoins
    /// after its session ends; its id. For model-based tests that need to know who is who.
    pub async fn join_alone(&mut self, path: usize, work: WorkKind) -> String {
        let n = self.ops;
        self.ops += 1;
        self.trace
            .line(format!("#{n} join on a client of its own, path {path}"));
        let id = format!("c{}", self.candidates.len());
        self.join_inner(None, path, work, Some(true)).await;
        sleep(Duration::from_millis(1)).await;
        self.record();
        id
    }

    async fn join(&mut self, client: u8, path: u8, work: WorkKind) {
        let live = self.live_clients();
        let pick = usize::from(client) % (live.len() + 1);
        let client = (pick < live.len()).then(|| live[pick]);
        self.join_inner(client, usize::from(path), work, None).await;
    }

    async fn join_inner(
        &mut self,
        client: Option<usize>,
        path: usize,
        work: WorkKind,
        rejoin: Option<bool>,
    ) {
        if self.candidates.len() >= self.setup.candidate_limit() {
            self.trace.line("  (no more candidates)");
            return;
        }
        let c = if let Some(c) = client {
            c
        } else {
            let process = Process::new();
            let client = Client::builder(self.cluster.backend())
                .session_timeout(self.setup.session_timeout())
                .seed(self.rng.next_u64())
                .process(process.clone())
                .connect()
                .await
                .expect("the in-memory service opens sessions");
            self.clients.push(SimClient {
                client,
                crashed: false,
                process,
            });
            self.clients.len() - 1
        };
        let p = path % self.paths.len();
        let id = format!("c{}", self.candidates.len());
        let fraction = [0.5, 2.0 / 3.0, 0.8][self.rng.below(3) as usize];
        let budget = self.setup.session_timeout().mul_f64(fraction);
        let grace = budget / 4;
        let rejoin = rejoin.unwrap_or_else(|| !self.rng.chance(10));
        let mut builder = Candidate::builder(self.paths[p].as_str(), id.as_str())
            .payload(format!("addr-of-{id}").into_bytes())
            .step_down_fraction(fraction)
            .leader_grace(grace)
            .rejoin_on_expiry(rejoin);
        let fence = (self.fences[p].clone(), self.lines.named(&id));
        builder = match (&self.hooks, work) {
            (Some(hooks), _) => (hooks.work)(builder, &id, p, self.lines.named(&id), &self.work),
            (None, WorkKind::None) => builder,
            (None, WorkKind::Quick) => {
                builder.on_leader(fenced(self.work.work(&id, Duration::ZERO), fence))
            }
            (None, WorkKind::Slow) => {
                builder.on_leader(fenced(self.work.work(&id, grace / 2), fence))
            }
            (None, WorkKind::Stubborn) => builder.on_leader(fenced(
                self.work.work(&id, Duration::from_secs(3600)),
                fence,
            )),
            (None, WorkKind::FailsAtOnce) => builder.on_leader(self.work.failing(&id)),
        };
        let fails_at_once = self.hooks.is_none() && work == WorkKind::FailsAtOnce;
        let work = if self.hooks.is_some() {
            "the user's".to_owned()
        } else {
            format!("{work:?}")
        };
        let config = builder
            .build()
            .expect("the simulation's settings are valid");
        let handle = self.clients[c]
            .client
            .join(config)
            .await
            .expect("ids are unique");
        self.recorder.watch(&handle);
        self.trace.line(format!(
            "  {id} on client {c}, path {p}, step-down {fraction:.2}, rejoin {rejoin}, work {work}"
        ));
        self.candidates.push(SimCandidate {
            id,
            client: c,
            path: p,
            handle: Some(handle),
            status: Status::Running,
            fails_at_once,
        });
    }

    /// Sends a user command to a running candidate without waiting for it (the simulation goes
    /// on while it completes).
    fn command(&mut self, who: u8, what: &str) {
        let Some(i) = Self::pick(&self.running_indices(), who) else {
            return;
        };
        let c = &mut self.candidates[i];
        self.trace.line(format!("  {} {what}", c.id));
        let Some(h) = c.handle.as_ref() else { return };
        // One poll sends the command; the driver carries it out whether or not we wait.
        match what {
            "resign" => {
                let _ = h.resign().now_or_never();
            }
            "leave" => {
                let _ = h.leave().now_or_never();
                c.status = Status::Withdrawing;
            }
            "stop" => {
                let _ = h.stop().now_or_never();
                c.status = Status::Withdrawing;
            }
            _ => {
                c.status = Status::Withdrawing;
                // Dropped: the driver withdraws in the background. Keep a receiver of its state.
                drop(c.handle.take());
            }
        }
    }

    /// Sleeps `d` in slices, recording events on the way (a candidate's event buffer is
    /// bounded).
    async fn sleep_recording(&mut self, d: Duration) {
        let end = Instant::now() + d;
        while Instant::now() < end {
            let step = (end - Instant::now()).min(Duration::from_millis(250));
            sleep(step).await;
            self.record();
        }
    }

    fn record(&mut self) {
        let mut new = self.recorder.take_new();
        // Stable: events of one instant keep the order candidates joined in.
        new.sort_by_key(|(_, e)| match e {
            Event::Transition(t) => t.at,
            Event::Notice { at, .. } => *at,
        });
        let mut lines = self.lines.take();
        // Stable merge by time: at one instant, transitions before what the work logged.
        let mut events = new.iter().peekable();
        lines.reverse();
        loop {
            let next_event = events.peek().map(|(_, e)| match e {
                Event::Transition(t) => t.at,
                Event::Notice { at, .. } => *at,
            });
            let next_line = lines.last().map(|l| l.0);
            match (next_event, next_line) {
                (Some(e), Some(l)) if l < e => {
                    let (at, id, text) = lines.pop().expect("peeked");
                    self.trace.work_line(at, &id, &text);
                }
                (Some(_), _) => {
                    let (id, e) = events.next().expect("peeked");
                    self.trace.event(id, e);
                }
                (None, Some(_)) => {
                    let (at, id, text) = lines.pop().expect("peeked");
                    self.trace.work_line(at, &id, &text);
                }
                (None, None) => break,
            }
        }
    }

    /// The user's checks (none without a [`Simulation`]).
    fn check_user(&self, end: bool) -> Result<(), Violation> {
        let Some(hooks) = &self.hooks else {
            return Ok(());
        };
        let result = if end {
            (hooks.check)().and_then(|()| (hooks.check_end)())
        } else {
            (hooks.check)()
        };
        result.map_err(|detail| Violation {
            line: "user check",
            detail,
        })
    }

    /// Fencing, where S2 and S4 were exempted: every write the built-in leader work made that
    /// the fenced store rejected came from a term a fault ended by force (a pause past the
    /// session's expiry, a crash, an administrator): a stale write from any other term means
    /// the step-down or the work's scoping failed. And the store's own checks.
    fn check_fencing(&self) -> Result<(), Violation> {
        for store in &self.fences {
            store.check()?;
        }
        for (id, token) in self.lines.rejected() {
            let exempt = self
                .forced
                .iter()
                .any(|f| f.candidate == id && token <= f.last_token);
            if !exempt {
                return Err(Violation {
                    line: "S4",
                    detail: format!(
                        "{id} wrote with token {token} after a newer term had written, and no fault ended its term by force"
                    ),
                });
            }
        }
        Ok(())
    }

    fn check_now(&mut self) -> Result<(), Violation> {
        self.resolve_pauses();
        for p in 0..self.paths.len() {
            let queue = self.cluster.queue(&self.paths[p]);
            let head = queue.first().and_then(|e| {
                Some(HeadEntry {
                    candidate: e.candidate.clone()?,
                    token: e.token,
                })
            });
            let leaders: Vec<_> = self
                .candidates
                .iter()
                .filter(|c| c.path == p && c.status != Status::Crashed)
                .filter_map(|c| Some((c.id.clone(), c.handle.as_ref()?.token()?)))
                .collect();
            check_leader_holds_head(&leaders, head.as_ref(), &self.forced)?;
            // S1 in a mixed fleet: no leader of ours behind a foreign contender.
            let entries = self.cluster.entries(&self.paths[p]);
            let ours: Vec<LeaderEntry> = leaders
                .iter()
                .filter_map(|(id, token)| {
                    let e = queue
                        .iter()
                        .find(|e| e.candidate.as_ref() == Some(id) && e.token == *token)?;
                    let seq = entries.iter().find(|l| l.name == e.name)?.sequence;
                    Some(LeaderEntry {
                        candidate: id.clone(),
                        sequence: seq,
                    })
                })
                .collect();
            let contenders: Vec<(String, u64)> = self
                .cluster
                .contenders(&self.paths[p])
                .into_iter()
                .map(|c| (c.name, c.sequence))
                .collect();
            check_no_leader_behind_foreign(&ours, &contenders)?;
            // A candidate whose entry was taken by force keeps its old watch until it learns
            // (notifications may be delayed up to half a second): give it a second.
            let settled = self.forced.iter().rev().all(|f| {
                self.candidates
                    .iter()
                    .find(|c| c.id == f.candidate)
                    .map(|c| c.path)
                    != Some(p)
                    || f.at + Duration::from_secs(1) <= Instant::now()
            });
            if settled {
                check_no_herd(&self.cluster.watchers(&self.paths[p]))?;
            }
            let ids: Vec<String> = queue.iter().filter_map(|e| e.candidate.clone()).collect();
            let gone: BTreeSet<String> = self
                .candidates
                .iter()
                .filter(|c| c.path == p && !self.clients[c.client].crashed)
                .filter(|c| {
                    c.handle
                        .as_ref()
                        .is_some_and(|h| matches!(h.current(), ElectionState::Stopped(_)))
                })
                .map(|c| c.id.clone())
                .collect();
            check_no_orphans(&ids, &gone)?;
        }
        Ok(())
    }

    fn check_history(&mut self) -> Result<(), Violation> {
        let intervals = self.recorder.leader_intervals();
        let mut by_path: BTreeMap<usize, Vec<_>> = BTreeMap::new();
        for i in intervals {
            let p = self
                .candidates
                .iter()
                .find(|c| c.id == i.candidate)
                .map_or(0, |c| c.path);
            by_path.entry(p).or_default().push(i);
        }
        for intervals in by_path.values() {
            check_leaders_forced(intervals, &self.forced)?;
        }
        let spans = self.work.spans();
        let mut by_path: BTreeMap<usize, Vec<_>> = BTreeMap::new();
        for s in spans {
            let p = self
                .candidates
                .iter()
                .find(|c| c.id == s.candidate)
                .map_or(0, |c| c.path);
            by_path.entry(p).or_default().push(s);
        }
        for spans in by_path.values() {
            check_work_forced(spans, &self.forced)?;
        }
        Ok(())
    }

    async fn check_liveness(&mut self) -> Result<(), Violation> {
        self.trace.line("faults stop");
        self.cluster.clear_faults();
        // Contenders of other implementations leave too: none of ours leads while one is there.
        for p in &self.paths {
            for c in self.cluster.contenders(p) {
                self.trace.line(format!("  contender {} leaves", c.name));
                self.cluster.delete_entry(p, &c.name);
            }
        }
        // A process pause cannot be undone: wait for the last to end.
        let paused = self.pauses.iter().map(|p| p.end).max();
        if let Some(end) = paused.filter(|&e| e > Instant::now()) {
            self.trace.line("  waiting for paused processes to wake");
            self.sleep_recording(end - Instant::now()).await;
        }
        let bound = election_core::testing::invariants::liveness_bound(
            self.setup.session_timeout(),
            Duration::from_millis(10),
        );
        self.sleep_recording(bound).await;
        self.check_now()?;
        for p in 0..self.paths.len() {
            let running: Vec<String> = self
                .candidates
                .iter()
                .filter(|c| c.path == p && c.status == Status::Running)
                // Work that fails at once gives every term up: the others must lead, not it.
                .filter(|c| !c.fails_at_once)
                .filter(|c| {
                    c.handle
                        .as_ref()
                        .is_some_and(|h| !matches!(h.current(), ElectionState::Stopped(_)))
                })
                .map(|c| c.id.clone())
                .collect();
            let leaders = self.leaders(p);
            check_liveness(&running, &leaders, bound, bound)?;
        }
        self.check_user(true)
    }

    async fn check_teardown(&mut self) -> Result<(), Violation> {
        self.trace.line("everyone stops");
        for c in &mut self.candidates {
            if let Some(h) = &c.handle {
                let _ = h.stop().now_or_never();
            }
        }
        self.sleep_recording(self.setup.session_timeout() * 3).await;
        self.check_history()?;
        for p in &self.paths {
            let left = self.cluster.queue(p);
            if !left.is_empty() {
                return Err(Violation {
                    line: "S5",
                    detail: format!("entries left after everyone stopped: {left:?}"),
                });
            }
        }
        if let Some(s) = self.work.spans().iter().find(|s| s.end.is_none()) {
            return Err(Violation {
                line: "S4",
                detail: format!(
                    "work of {} (token {}) still runs after stop",
                    s.candidate, s.token
                ),
            });
        }
        Ok(())
    }

    /// Undoes the faults, checks liveness, stops everyone, checks the whole history and that
    /// nothing is left; the report.
    pub async fn finish(mut self) -> Report {
        if self.violation.is_none() {
            let result = match self.check_liveness().await {
                Ok(()) => self.check_teardown().await,
                Err(v) => Err(v),
            };
            let result = result
                .and_then(|()| self.check_history())
                .and_then(|()| self.check_fencing())
                .and_then(|()| self.check_user(false));
            if let Err(v) = result {
                self.trace.line(format!("VIOLATION {v}"));
                self.violation = Some(v);
            }
        } else if let Err(v) = self.check_history() {
            self.trace.line(format!("also: {v}"));
        }
        if self.violation.is_none() {
            self.trace.line("ok");
        }
        Report {
            seed: None,
            candidates: self.candidates.len(),
            ops: self.ops,
            violation: self.violation,
            trace: self.trace.text(),
        }
    }
}

type BoxWork = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Built-in leader work that also writes to its path's fenced store, at the start of its term
/// and once it stops: the write a pause delays past a successor's is rejected, and noted.
fn fenced<F>(
    work: F,
    (store, log): (FencedStore, SimLog),
) -> impl Fn(Term) -> BoxWork + Send + Sync + 'static
where
    F: Fn(Term) -> BoxWork + Send + Sync + 'static,
{
    move |term: Term| {
        let inner = work(term.clone());
        let (store, log) = (store.clone(), log.clone());
        Box::pin(async move {
            let token = term.token();
            fenced_write(&store, &log, token, "start");
            inner.await;
            fenced_write(&store, &log, token, "end");
        })
    }
}

fn fenced_write(store: &FencedStore, log: &SimLog, token: FencingToken, what: &str) {
    if let Err(e) = store.write(token, format!("{} {what}", log.who())) {
        log.line(format_args!("write {what:?} rejected: {e}"));
        log.note_rejected(token);
    }
}
