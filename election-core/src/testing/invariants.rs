//! The contract's safety invariants as checks over what was recorded, shared by the conformance
//! suite, the property tests, the simulation and the fuzzers.

use std::collections::BTreeMap;
use std::fmt;

use tokio::time::Instant;

use crate::backend::FencingToken;

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

/// A broken invariant, saying which and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The contract line (S1, S2, S4, ...).
    pub line: &'static str,
    /// What happened.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} broken: {}", self.line, self.detail)
    }
}

impl std::error::Error for Violation {}

fn overlaps(
    a_start: Instant,
    a_end: Option<Instant>,
    b_start: Instant,
    b_end: Option<Instant>,
) -> bool {
    // Half-open intervals: a hand-over in the same instant is not an overlap.
    a_end.is_none_or(|e| b_start < e) && b_end.is_none_or(|e| a_start < e)
}

/// S1 and S2: no two candidates are in the Leader state at the same instant; a token names at
/// most one candidate; and the tokens of successive terms strictly increase (the same token
/// again only for the same candidate resuming its own term, with nobody else between).
pub fn check_leaders(intervals: &[LeaderInterval]) -> Result<(), Violation> {
    let mut sorted = intervals.to_vec();
    sorted.sort_by_key(|i| (i.start, i.token));
    for (i, a) in sorted.iter().enumerate() {
        for b in &sorted[i + 1..] {
            if a.candidate != b.candidate && overlaps(a.start, a.end, b.start, b.end) {
                return Err(Violation {
                    line: "S2",
                    detail: format!("{a:?} and {b:?} lead at the same time"),
                });
            }
        }
    }
    let mut owner: BTreeMap<FencingToken, &str> = BTreeMap::new();
    for i in &sorted {
        if let Some(o) = owner.insert(i.token, &i.candidate) {
            if o != i.candidate {
                return Err(Violation {
                    line: "S1",
                    detail: format!("token {} names both {o} and {}", i.token, i.candidate),
                });
            }
        }
    }
    for w in sorted.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        let resumed = a.token == b.token && a.candidate == b.candidate;
        if !resumed && b.token <= a.token {
            return Err(Violation {
                line: "S1",
                detail: format!(
                    "term {:?} of {} follows term {:?} of {}",
                    b.token, b.candidate, a.token, a.candidate
                ),
            });
        }
    }
    Ok(())
}

/// S1, and S2 with a tolerance: for runs where an administrator deletes entries from under
/// their owners. The deposed leader and its successor then learn at the same moment, so an
/// overlap no longer than `tolerance` is allowed; tokens must still strictly increase.
pub fn check_leaders_tolerating(
    intervals: &[LeaderInterval],
    tolerance: std::time::Duration,
) -> Result<(), Violation> {
    let trimmed: Vec<LeaderInterval> = intervals
        .iter()
        .map(|i| LeaderInterval {
            end: i
                .end
                .map(|e| e.checked_sub(tolerance).unwrap_or(i.start).max(i.start)),
            ..i.clone()
        })
        .collect();
    check_leaders(&trimmed)
}

/// S4: leader work of two different terms never runs at the same time.
pub fn check_work(spans: &[WorkSpan]) -> Result<(), Violation> {
    for (i, a) in spans.iter().enumerate() {
        for b in &spans[i + 1..] {
            if a.token != b.token && overlaps(a.start, a.end, b.start, b.end) {
                return Err(Violation {
                    line: "S4",
                    detail: format!("work {a:?} and {b:?} overlap"),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn iv(c: &str, t: u64, s: u64, e: Option<u64>) -> LeaderInterval {
        let base = Instant::now();
        LeaderInterval {
            candidate: c.into(),
            token: FencingToken(t),
            start: base + Duration::from_secs(s),
            end: e.map(|e| base + Duration::from_secs(e)),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn catches_overlap_and_token_order() {
        assert!(check_leaders(&[iv("a", 1, 0, Some(5)), iv("b", 2, 5, None)]).is_ok());
        assert_eq!(
            check_leaders(&[iv("a", 1, 0, Some(6)), iv("b", 2, 5, None)])
                .unwrap_err()
                .line,
            "S2"
        );
        assert_eq!(
            check_leaders(&[iv("a", 2, 0, Some(5)), iv("b", 1, 5, None)])
                .unwrap_err()
                .line,
            "S1"
        );
        assert_eq!(
            check_leaders(&[iv("a", 1, 0, Some(5)), iv("b", 1, 6, None)])
                .unwrap_err()
                .line,
            "S1"
        );
        // The same candidate resuming its own term is allowed.
        assert!(check_leaders(&[iv("a", 1, 0, Some(5)), iv("a", 1, 7, None)]).is_ok());
    }
}
