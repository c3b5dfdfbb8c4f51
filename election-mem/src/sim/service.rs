//! [`Simulation`]: your own service's leader work under the seeded simulation, with your own
//! checks over what it wrote, next to the contract's.

use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use election_core::testing::recorder::WorkLog;
use election_core::{CandidateBuilder, Term, WorkResult};

use super::{run_schedule_with, Hooks, MakeHooks, Report, Schedule, SimLog};

type Check<S> = Arc<dyn Fn(&S) -> Result<(), String> + Send + Sync>;
type Work<S> =
    Arc<dyn Fn(CandidateBuilder, &Replica<'_, S>, &WorkLog) -> CandidateBuilder + Send + Sync>;

/// A replica's view of a run, given to [`Simulation::on_leader`] to make its leader work: the
/// run's shared state (your simulated downstream), which candidate and path the work is for,
/// and where to log into the trace.
#[derive(Debug)]
pub struct Replica<'a, S> {
    state: &'a S,
    id: &'a str,
    path: &'a str,
    log: SimLog,
}

impl<S> Replica<'_, S> {
    /// The run's state, made by the function given to [`Simulation::new`] (one per run, shared
    /// by every replica).
    pub fn state(&self) -> &S {
        self.state
    }

    /// The candidate id (`c0`, `c1`, ...; a restarted replica gets a new one).
    pub fn id(&self) -> &str {
        self.id
    }

    /// The election path.
    pub fn path(&self) -> &str {
        self.path
    }

    /// Where the work writes lines into the trace (stamped with the virtual time and the
    /// candidate id, merged with the transitions).
    pub fn log(&self) -> SimLog {
        self.log.clone()
    }
}

/// What [`Simulation::run_seeds`] ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    /// Schedules run.
    pub schedules: u64,
    /// Ops run, over all schedules.
    pub ops: usize,
    /// Candidates that joined, over all schedules.
    pub candidates: usize,
}

/// Your service's failover under the seeded simulation: `replicas` processes, each running a
/// candidate on each election path with your leader work, through seeded schedules of every
/// fault the simulation has (crashes and restarts, cuts and heals, session expiry, a member cut
/// off from the service's leader, lost create replies, delayed notifications, latency,
/// administrators deleting entries and roots, look-alike entries, resignations, and process
/// pauses); the contract's invariants checked as for the built-in runs, then yours, after every
/// op and at the end. A failure panics with `ELECTION_SEED=<n>` and a trace that interleaves
/// the candidates' transitions with the lines your work logged.
///
/// `S` is the state one run shares: your simulated downstream (a
/// [`FencedStore`](election_core::testing::FencedStore), a map, a channel's log), made afresh
/// for each run by the function given to [`new`](Self::new).
///
/// ```
/// use election_core::testing::FencedStore;
/// use election_mem::sim::Simulation;
///
/// Simulation::new(FencedStore::new)
///     .replicas(3)
///     .on_leader(|replica| {
///         // The closure you give `Candidate::builder(..).on_leader` in production.
///         let store = replica.state().clone();
///         move |term: election_core::Term| {
///             let store = store.clone();
///             async move {
///                 let _ = store.write(term.token(), "hello");
///                 term.cancelled().await;
///             }
///         }
///     })
///     .check(|store: &FencedStore| store.check())
///     .run_seeds(0..20);
/// ```
///
/// What a pause does and why S2 cannot hold across one: see [`Op::Pause`](super::Op::Pause).
pub struct Simulation<S> {
    state: Arc<dyn Fn() -> S + Send + Sync>,
    replicas: usize,
    paths: Vec<String>,
    session_timeout: Option<Duration>,
    work: Option<Work<S>>,
    checks: Vec<Check<S>>,
    end_checks: Vec<Check<S>>,
}

impl<S> std::fmt::Debug for Simulation<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulation")
            .field("replicas", &self.replicas)
            .field("paths", &self.paths)
            .field("session_timeout", &self.session_timeout)
            .field("work", &self.work.is_some())
            .field("checks", &self.checks.len())
            .field("end_checks", &self.end_checks.len())
            .finish()
    }
}

impl<S: Send + Sync + 'static> Simulation<S> {
    /// A simulation whose runs each start from the state `state()` makes: 3 replicas on one
    /// path (`/service/leader`), no leader work yet, no checks of yours.
    pub fn new(state: impl Fn() -> S + Send + Sync + 'static) -> Self {
        Self {
            state: Arc::new(state),
            replicas: 3,
            paths: vec!["/service/leader".to_owned()],
            session_timeout: None,
            work: None,
            checks: Vec::new(),
            end_checks: Vec::new(),
        }
    }

    /// How many replicas (processes) run the service (clamped into 1..=16; default 3).
    pub fn replicas(mut self, n: usize) -> Self {
        self.replicas = n.clamp(1, 16);
        self
    }

    /// The election paths each replica runs a candidate on (1 to 4; default one,
    /// `/service/leader`).
    ///
    /// # Panics
    /// On no path, more than 4, or a path that is not a valid election path.
    pub fn paths<P: Into<String>>(mut self, paths: impl IntoIterator<Item = P>) -> Self {
        let paths: Vec<String> = paths.into_iter().map(Into::into).collect();
        assert!(
            (1..=4).contains(&paths.len()),
            "a simulation runs 1 to 4 election paths, not {}",
            paths.len()
        );
        for p in &paths {
            if let Err(e) = election_core::ElectionPath::new(p.as_str()) {
                panic!("{p:?} is not an election path: {e}");
            }
        }
        self.paths = paths;
        self
    }

    /// The session timeout of every replica (default: drawn by each seed from 1, 2, 3 and
    /// 4 s). Clamped into 0.5..=10 s.
    pub fn session_timeout(mut self, timeout: Duration) -> Self {
        self.session_timeout = Some(timeout);
        self
    }

    /// The leader work: `make` is called for each candidate with its [`Replica`] and returns
    /// the closure you give [`CandidateBuilder::on_leader`] in production (called once per
    /// term with the [`Term`]: its token, its cancellation).
    pub fn on_leader<M, F, Fut>(mut self, make: M) -> Self
    where
        M: Fn(&Replica<'_, S>) -> F + Send + Sync + 'static,
        F: Fn(Term) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: WorkResult,
    {
        // Recorded for S4 (the work of two terms never runs at once) as the built-in work is.
        self.work = Some(Arc::new(move |builder, replica, spans| {
            builder.on_leader(spans.around(replica.id(), make(replica)))
        }));
        self
    }

    /// A check of yours over the run's state, run after every op and at the end (after every
    /// candidate stopped); an `Err` fails the run with its text.
    pub fn check<E: Display>(
        mut self,
        check: impl Fn(&S) -> Result<(), E> + Send + Sync + 'static,
    ) -> Self {
        self.checks
            .push(Arc::new(move |s| check(s).map_err(|e| e.to_string())));
        self
    }

    /// A check of yours run once, after the faults stopped and the election had time to
    /// recover (a leader is back on every path): that the service made progress, for example.
    pub fn check_at_end<E: Display>(
        mut self,
        check: impl Fn(&S) -> Result<(), E> + Send + Sync + 'static,
    ) -> Self {
        self.end_checks
            .push(Arc::new(move |s| check(s).map_err(|e| e.to_string())));
        self
    }

    /// The schedule `seed` gives this simulation.
    pub fn schedule(&self, seed: u64) -> Schedule {
        let mut schedule = Schedule::for_service(seed, self.replicas, self.paths.len());
        if let Some(t) = self.session_timeout {
            schedule.setup.session_timeout_ms = t.as_millis().clamp(500, 10_000) as u16;
        }
        schedule
    }

    /// Runs the schedule of `seed`; the report says what broke, if anything
    /// ([`Report::check`] panics with the seed and the trace).
    pub fn run_seed(&self, seed: u64) -> Report {
        let mut report = self.run_schedule(&self.schedule(seed));
        report.seed = Some(seed);
        report
    }

    /// Runs any schedule (one a property test generated, one a fuzzer found): its ops name
    /// clients and candidates by indices resolved against what exists, so every schedule is
    /// valid.
    pub fn run_schedule(&self, schedule: &Schedule) -> Report {
        run_schedule_with(schedule, Some(self.hooks()))
    }

    /// Runs the schedule of every seed of `seeds`, and panics at the first that fails with
    /// `ELECTION_SEED=<n>`, what broke and the trace. With the environment variable
    /// `ELECTION_SEED` set, runs that seed alone and prints its trace: how a failure is
    /// replayed.
    pub fn run_seeds(&self, seeds: impl IntoIterator<Item = u64>) -> Summary {
        let only = std::env::var("ELECTION_SEED")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok());
        let mut summary = Summary {
            schedules: 0,
            ops: 0,
            candidates: 0,
        };
        let mut one = |seed: u64, print: bool| {
            let report = self.run_seed(seed);
            if print {
                println!("{}", report.trace);
            }
            report.check();
            summary.schedules += 1;
            summary.ops += report.ops;
            summary.candidates += report.candidates;
        };
        match only {
            Some(seed) => one(seed, true),
            None => seeds.into_iter().for_each(|seed| one(seed, false)),
        }
        summary
    }

    /// A proptest strategy of this simulation's schedules (feature `proptest`): the replicas
    /// start, then 10 to 100 ops drawn as [`Schedule::for_service`] draws them (each from a
    /// number of its own), so that a failing schedule shrinks to fewer ops. Run one with
    /// [`run_schedule`](Self::run_schedule); a shrunk schedule is printed by proptest as a
    /// value to paste back.
    #[cfg(feature = "proptest")]
    pub fn schedules(&self) -> impl proptest::strategy::Strategy<Value = Schedule> {
        use super::schedule::{service_op, SimSetup, SplitMix64};
        use proptest::prelude::*;
        let replicas = self.replicas;
        let paths = self.paths.len() as u8;
        let fixed = self.session_timeout;
        (
            0..4u16,
            any::<u64>(),
            proptest::collection::vec(any::<u64>(), 10..100),
        )
            .prop_map(move |(t, seed, draws)| {
                let mut ops = vec![super::Op::Restart; replicas];
                let mut restarts = 0;
                for draw in draws {
                    ops.extend(service_op(&mut SplitMix64::new(draw), &mut restarts));
                }
                let session_timeout_ms = match fixed {
                    Some(t) => t.as_millis().clamp(500, 10_000) as u16,
                    None => 1000 * (t + 1),
                };
                Schedule {
                    setup: SimSetup {
                        session_timeout_ms,
                        paths,
                        max_candidates: 50,
                        seed,
                    },
                    ops,
                }
            })
    }

    fn hooks(&self) -> MakeHooks {
        let state_fn = self.state.clone();
        let work = self.work.clone();
        let checks = self.checks.clone();
        let end_checks = self.end_checks.clone();
        let paths = self.paths.clone();
        Arc::new(move || {
            let state = Arc::new(state_fn());
            let all = |checks: Vec<Check<S>>, state: Arc<S>| {
                Box::new(move || checks.iter().try_for_each(|c| c(&state)))
                    as Box<dyn Fn() -> Result<(), String>>
            };
            let hooks = Hooks {
                work: {
                    let (state, work, paths) = (state.clone(), work.clone(), paths.clone());
                    Box::new(move |builder, id, path, log, spans| match &work {
                        Some(work) => work(
                            builder,
                            &Replica {
                                state: &state,
                                id,
                                path: &paths[path],
                                log,
                            },
                            spans,
                        ),
                        None => builder,
                    })
                },
                check: all(checks.clone(), state.clone()),
                check_end: all(end_checks.clone(), state),
            };
            (paths.clone(), hooks)
        })
    }
}
