//! Schedules: what a simulation run does, derived from one `u64` seed with a small
//! self-contained PRNG (splitmix64), or given op by op (property tests, fuzzers).
//!
//! Every op names candidates, clients and paths by a small index that is resolved modulo what
//! exists when the op runs, so that any `Vec<Op>` is a valid schedule: shrinking and fuzzing
//! never produce an invalid one.

use std::fmt;
use std::time::Duration;

/// splitmix64: small, fast, and enough to derive every parameter of a run from one seed.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`0` when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    /// `true` with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// A small index for an op.
    pub fn index(&mut self) -> u8 {
        self.next_u64() as u8
    }
}

/// How a candidate's leader work behaves when its term ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum WorkKind {
    /// No leader work.
    None,
    /// Stops as soon as it is cancelled.
    Quick,
    /// Takes half the grace to stop.
    Slow,
    /// Ignores cancellation: aborted after the grace.
    Stubborn,
    /// Fails at once on every term: the candidate resigns each time (after a growing back-off)
    /// and must not starve the others.
    FailsAtOnce,
}

/// One operation of a schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub enum Op {
    /// A new candidate joins `path`, on client `client` (an index past the last client opens a
    /// new one).
    Join {
        /// Client index.
        client: u8,
        /// Path index.
        path: u8,
        /// Its leader work.
        work: WorkKind,
    },
    /// A running candidate resigns and rejoins at the tail.
    Resign {
        /// Candidate index, among the running ones.
        who: u8,
    },
    /// A running candidate leaves for good.
    Leave {
        /// Candidate index, among the running ones.
        who: u8,
    },
    /// A running candidate is stopped.
    Stop {
        /// Candidate index, among the running ones.
        who: u8,
    },
    /// A running candidate's handle is dropped.
    Drop {
        /// Candidate index, among the running ones.
        who: u8,
    },
    /// A client process crashes: its candidates end at once, its session expires later.
    Crash {
        /// Client index, among the live ones.
        client: u8,
    },
    /// A client is cut off until the service expires its session, then heals (the service
    /// ending a session the way it may: no contact for the timeout).
    Expire {
        /// Client index, among the live ones.
        client: u8,
    },
    /// The member a client is connected to loses the service's leader until the service
    /// expires the session, then hears its leader again (the client learns of the expiry then).
    ExpireBehindIsolatedMember {
        /// Client index, among the live ones.
        client: u8,
    },
    /// An administrator expires a client's session now (breaks S2's premise: exempted).
    ForceExpire {
        /// Client index, among the live ones.
        client: u8,
    },
    /// A client is cut off from the service.
    Cut {
        /// Client index, among the live ones.
        client: u8,
    },
    /// The member a client is connected to loses the service's leader: the service stops
    /// hearing of the session while the member goes on answering reads (see
    /// [`MemCluster::isolate_member_of`](crate::MemCluster::isolate_member_of)). Healed by
    /// `Heal`.
    IsolateMember {
        /// Client index, among the live ones.
        client: u8,
    },
    /// A cut (or isolated) client is healed.
    Heal {
        /// Client index, among the live ones.
        client: u8,
    },
    /// The next create's reply is lost after the service applied it.
    LoseCreateReply,
    /// Watch notifications to a client are delayed (0 removes the delay).
    DelayNotifications {
        /// Client index, among the live ones.
        client: u8,
        /// Delay in milliseconds.
        ms: u16,
    },
    /// Every operation takes this long to reach the service.
    Latency {
        /// Milliseconds.
        ms: u8,
    },
    /// An administrator deletes an election's root (entries and all).
    DeleteRoot {
        /// Path index.
        path: u8,
    },
    /// An administrator deletes one entry of an election.
    DeleteEntry {
        /// Path index.
        path: u8,
        /// Entry index, in queue order.
        index: u8,
    },
    /// Virtual time passes.
    Advance {
        /// Milliseconds.
        ms: u16,
    },
    /// A tool restores a persistent node named like an entry into an election (a look-alike:
    /// it never goes away, and must never be taken for a candidate).
    Lookalike {
        /// Path index.
        path: u8,
    },
    /// A client process pauses as a whole for `ms` of virtual time, as in a stop-the-world GC
    /// pause, a frozen VM or a stopped container: its candidates' drivers (step-down timers
    /// included), their leader work and its session's keep-alive all stand still, the service
    /// stops hearing it (and expires its session after its timeout); then it resumes as if
    /// nothing happened, its leader work first. The contract's S2 cannot hold across a pause
    /// the session did not survive: the terms it spans are exempted, and fencing is checked
    /// instead.
    Pause {
        /// Client index, among the live ones.
        client: u8,
        /// How long, in milliseconds.
        ms: u16,
    },
    /// A replica process starts (or restarts, as a supervisor starts a crashed one again): a new
    /// client, with a candidate on every path (with the user's leader work in a
    /// [`Simulation`](super::Simulation), else `Quick` work).
    Restart,
    /// A client of another implementation joins an election on the same path (a migration):
    /// an ephemeral sequential node named as Curator's `LeaderLatch` (`kind` 0), Curator's
    /// lock (1), kazoo's lock (2) or an unknown implementation (3) names it, taking the next
    /// sequence among ours.
    Contender {
        /// Path index.
        path: u8,
        /// Which implementation (modulo 4).
        kind: u8,
    },
    /// A contender of another implementation leaves (its node is deleted).
    ContenderLeaves {
        /// Path index.
        path: u8,
        /// Contender index, in sequence order.
        index: u8,
    },
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The parameters of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct SimSetup {
    /// Session timeout of every client, in milliseconds (clamped into 500..=10 000).
    pub session_timeout_ms: u16,
    /// How many election paths (clamped into 1..=4).
    pub paths: u8,
    /// At most this many candidates ever join (clamped into 1..=50).
    pub max_candidates: u8,
    /// Seeds the candidates' settings and markers.
    pub seed: u64,
}

impl SimSetup {
    /// The session timeout.
    pub fn session_timeout(&self) -> Duration {
        Duration::from_millis(u64::from(self.session_timeout_ms.clamp(500, 10_000)))
    }

    /// The number of paths.
    pub fn path_count(&self) -> usize {
        usize::from(self.paths.clamp(1, 4))
    }

    /// The candidate limit.
    pub fn candidate_limit(&self) -> usize {
        usize::from(self.max_candidates.clamp(1, 50))
    }
}

/// A whole run: its setup and its ops.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "arbitrary", derive(arbitrary::Arbitrary))]
pub struct Schedule {
    /// The run's parameters.
    pub setup: SimSetup,
    /// What happens, in order.
    pub ops: Vec<Op>,
}

impl Schedule {
    /// The schedule of `seed`: 1 to 50 candidates over 1 to 3 paths, and up to 150 ops, mostly
    /// joins early and faults later, with time passing between.
    pub fn from_seed(seed: u64) -> Self {
        let mut rng = SplitMix64::new(seed);
        let timeouts = [1000u16, 2000, 3000, 4000];
        let session_timeout_ms = timeouts[rng.below(4) as usize];
        let paths = 1 + rng.below(3) as u8;
        let max_candidates = if rng.chance(15) {
            20 + rng.below(31) as u8
        } else {
            1 + rng.below(10) as u8
        };
        let n_ops = 10 + rng.below(141) as usize;
        let mut ops = Vec::with_capacity(n_ops);
        for _ in 0..(1 + rng.below(u64::from(max_candidates))) {
            ops.push(join(&mut rng));
        }
        while ops.len() < n_ops {
            ops.push(op(&mut rng));
        }
        Self {
            setup: SimSetup {
                session_timeout_ms,
                paths,
                max_candidates,
                seed: rng.next_u64(),
            },
            ops,
        }
    }
}

fn join(rng: &mut SplitMix64) -> Op {
    let work = match rng.below(5) {
        0 => WorkKind::None,
        1 => WorkKind::Quick,
        2 => WorkKind::Slow,
        3 => WorkKind::Stubborn,
        _ => WorkKind::FailsAtOnce,
    };
    Op::Join {
        client: rng.index(),
        path: rng.index(),
        work,
    }
}

fn op(rng: &mut SplitMix64) -> Op {
    let (who, client) = (rng.index(), rng.index());
    match rng.below(100) {
        0..=11 => join(rng),
        12..=19 => Op::Resign { who },
        20..=22 => Op::Leave { who },
        23..=25 => Op::Stop { who },
        26..=27 => Op::Drop { who },
        28..=30 => Op::Crash { client },
        31..=34 => Op::Expire { client },
        35..=36 => Op::ForceExpire { client },
        37..=39 => Op::Cut { client },
        40..=42 => Op::IsolateMember { client },
        43..=49 => Op::Heal { client },
        50..=53 => Op::LoseCreateReply,
        54..=56 => Op::DelayNotifications {
            client,
            ms: if rng.chance(30) {
                0
            } else {
                rng.below(500) as u16
            },
        },
        57..=58 => Op::Latency {
            ms: if rng.chance(50) {
                0
            } else {
                rng.below(50) as u8
            },
        },
        59 => Op::DeleteRoot { path: rng.index() },
        60..=61 => Op::DeleteEntry {
            path: rng.index(),
            index: rng.index(),
        },
        62 => Op::Lookalike { path: rng.index() },
        63..=65 => Op::Pause {
            client,
            ms: pause_ms(rng),
        },
        66 => Op::Contender {
            path: rng.index(),
            kind: rng.index(),
        },
        67..=68 => Op::ContenderLeaves {
            path: rng.index(),
            index: rng.index(),
        },
        _ => Op::Advance {
            ms: match rng.below(10) {
                0..=5 => rng.below(200) as u16,
                6..=8 => rng.below(3000) as u16,
                _ => rng.below(12_000) as u16,
            },
        },
    }
}

/// A pause's length: often shorter than a step-down budget (harmless), often longer than a
/// session timeout (the session expires while the process stands still).
fn pause_ms(rng: &mut SplitMix64) -> u16 {
    match rng.below(3) {
        0 => rng.below(500) as u16,
        1 => 500 + rng.below(2500) as u16,
        _ => 3000 + rng.below(6000) as u16,
    }
}

impl Schedule {
    /// The schedule of `seed` for a service of `replicas` processes (clamped into 1..=16), each
    /// running one candidate on each of `paths` election paths (clamped into 1..=4), with the
    /// user's leader work: the replicas join first, then up to 100 ops of every fault,
    /// pauses included. A replica that crashes, leaves, stops or is dropped is started again
    /// (as a supervisor would) a little later, on a new process.
    pub fn for_service(seed: u64, replicas: usize, paths: usize) -> Self {
        let mut rng = SplitMix64::new(seed ^ 0x5eed_5e41_1ce5_0000);
        let timeouts = [1000u16, 2000, 3000, 4000];
        let session_timeout_ms = timeouts[rng.below(4) as usize];
        let n_ops = 10 + rng.below(91) as usize;
        let mut ops = vec![Op::Restart; replicas.clamp(1, 16)];
        let mut restarts = 0;
        for _ in 0..n_ops {
            ops.extend(service_op(&mut rng, &mut restarts));
        }
        Self {
            setup: SimSetup {
                session_timeout_ms,
                paths: paths.clamp(1, 4) as u8,
                max_candidates: 50,
                seed: rng.next_u64(),
            },
            ops,
        }
    }
}

/// One op of a service's schedule, and the restart that follows a replica's end (at most 8 a
/// run): the fleet is the user's, so no other joins.
pub(crate) fn service_op(rng: &mut SplitMix64, restarts: &mut u32) -> Vec<Op> {
    let op = match op(rng) {
        Op::Join { .. } => Op::Advance {
            ms: rng.below(1000) as u16,
        },
        other => other,
    };
    let ended = matches!(
        op,
        Op::Crash { .. } | Op::Leave { .. } | Op::Stop { .. } | Op::Drop { .. }
    );
    if ended && *restarts < 8 {
        *restarts += 1;
        let wait = Op::Advance {
            ms: rng.below(2000) as u16,
        };
        vec![op, wait, Op::Restart]
    } else {
        vec![op]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_the_same_schedule() {
        assert_eq!(Schedule::from_seed(7), Schedule::from_seed(7));
        assert_ne!(Schedule::from_seed(7), Schedule::from_seed(8));
    }
}
