//! The contract's invariants as checks over what was recorded, shared by the conformance suite,
//! the simulation (`election_mem::sim`), the model-based property tests and the fuzzers. One
//! invariant (one contract line) per file; each check is a pure function of plain data, so that
//! every runner feeds it the same way and a failure names the line it broke.
//!
//! | file | line | checks |
//! |---|---|---|
//! | `leaders.rs` | S1, S2 | [`check_leaders`], [`check_leaders_forced`], [`check_leaders_tolerating`] |
//! | `foreign.rs` | S1 (mixed fleet) | [`check_no_leader_behind_foreign`] |
//! | `work.rs` | S4 | [`check_work`], [`check_work_forced`] |
//! | `head.rs` | S3, L2 | [`check_leader_holds_head`] |
//! | `herd.rs` | L3 | [`check_no_herd`] |
//! | `rejoin.rs` | L4 | [`check_rejoined_at_tail`] |
//! | `orphans.rs` | S5 | [`check_no_orphans`] |
//! | `liveness.rs` | L1 | [`check_liveness`] |

mod foreign;
mod head;
mod herd;
mod leaders;
mod liveness;
mod orphans;
mod rejoin;
mod work;

use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

use crate::backend::FencingToken;

pub use foreign::{check_no_leader_behind_foreign, LeaderEntry};
pub use head::{check_leader_holds_head, HeadEntry};
pub use herd::check_no_herd;
pub use leaders::{check_leaders, check_leaders_forced, check_leaders_tolerating};
pub use liveness::check_liveness;
pub use orphans::check_no_orphans;
pub use rejoin::check_rejoined_at_tail;
pub use work::{check_work, check_work_forced};

/// A stretch of time a candidate spent in the Leader state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderInterval {
    /// The candidate id.
    pub candidate: String,
    /// Its term token.
    pub token: FencingToken,
    /// When it entered the Leader state.
    pub start: Instant,
    /// When it left it (`None`: still leading).
    pub end: Option<Instant>,
}

/// A stretch of time a term's leader work ran.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkSpan {
    /// The candidate id.
    pub candidate: String,
    /// The term's token.
    pub token: FencingToken,
    /// When the work started.
    pub start: Instant,
    /// When it ended (returned or was aborted); `None`: still running.
    pub end: Option<Instant>,
}

/// Terms ended by force at `at`: an administrator deleted the candidate's entry (or the whole
/// election root), or expired its session before its timeout, or its process crashed. The first
/// two break the premise of S2 (the service never ends a term before `1 x session_timeout`
/// without contact), so the candidate may learn of it only after its successor does, or may
/// even learn late that its entry had become the head just before it was deleted. Every term of
/// `candidate` whose token is at most `last_token` (the service's counter at `at`: its entry
/// existed then) is treated as over at `at` by the checks; terms with later tokens are checked in
/// full.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Forced {
    /// The candidate whose terms were ended.
    pub candidate: String,
    /// When.
    pub at: Instant,
    /// The largest token handed out by then.
    pub last_token: FencingToken,
}

/// A broken invariant, saying which and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The contract line (S1, S2, S4, ...).
    pub line: &'static str,
    /// What happened.
    pub detail: String,
}

impl Violation {
    pub(crate) fn new(line: &'static str, detail: impl Into<String>) -> Self {
        Self {
            line,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} broken: {}", self.line, self.detail)
    }
}

impl std::error::Error for Violation {}

/// Half-open intervals: a hand-over in the same instant is not an overlap.
pub(crate) fn overlaps(
    a_start: Instant,
    a_end: Option<Instant>,
    b_start: Instant,
    b_end: Option<Instant>,
) -> bool {
    a_end.is_none_or(|e| b_start < e) && b_end.is_none_or(|e| a_start < e)
}

/// The end of the term `(candidate, token)` that ran over `[start, end)`, once terms ended by
/// force are cut short; `None` inside `Some` when nothing of it is left to check.
pub(crate) fn clip(
    candidate: &str,
    token: FencingToken,
    start: Instant,
    end: Option<Instant>,
    forced: &[Forced],
) -> Option<Option<Instant>> {
    let cut = forced
        .iter()
        .filter(|f| f.candidate == candidate && token <= f.last_token)
        .filter(|f| end.is_none_or(|e| f.at < e))
        .map(|f| f.at.max(start))
        .min();
    match cut {
        Some(c) if c <= start => None,
        Some(c) => Some(Some(c)),
        None => Some(end),
    }
}

/// Instants as offsets from `base`, so that messages are the same on every run of a seed.
pub(crate) fn since(base: Instant, at: Instant) -> String {
    format!("+{:.6}s", at.saturating_duration_since(base).as_secs_f64())
}

pub(crate) fn span_text(base: Instant, start: Instant, end: Option<Instant>) -> String {
    match end {
        Some(e) => format!("[{}, {})", since(base, start), since(base, e)),
        None => format!("[{}, ..)", since(base, start)),
    }
}

pub(crate) fn earliest(starts: impl Iterator<Item = Instant>) -> Instant {
    starts.min().unwrap_or_else(Instant::now)
}

/// How long a wait is allowed by [`check_liveness`], for a session timeout: the timeout (for a
/// crashed leader's session to expire), plus the grace of its work, plus round trips.
pub fn liveness_bound(session_timeout: Duration, round_trip: Duration) -> Duration {
    session_timeout * 2 + round_trip * 20 + Duration::from_millis(100)
}
