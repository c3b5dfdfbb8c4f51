//! S1 (one leader per term, tokens increase) and S2 (step down before anyone else can lead): over
//! the Leader-state intervals of every candidate of one election.

use std::collections::BTreeMap;

use tokio::time::Instant;

use super::{clip, earliest, overlaps, span_text, Forced, LeaderInterval, Violation};
use crate::backend::FencingToken;

/// S1 and S2: no two candidates are in the Leader state at the same instant; a token names at
/// most one candidate; and the tokens of successive terms strictly increase (the same token
/// again only for the same candidate resuming its own term, with nobody else between).
pub fn check_leaders(intervals: &[LeaderInterval]) -> Result<(), Violation> {
    check_leaders_forced(intervals, &[])
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

/// [`check_leaders`], with terms ended by force (see [`Forced`]) treated as over at that instant
/// for the overlap check (S2); S1 is checked in full.
pub fn check_leaders_forced(
    intervals: &[LeaderInterval],
    forced: &[Forced],
) -> Result<(), Violation> {
    let mut sorted = intervals.to_vec();
    sorted.sort_by_key(|i| (i.start, i.token));
    let base = earliest(sorted.iter().map(|i| i.start));
    let show = |i: &LeaderInterval| {
        format!(
            "{} (token {}) leading {}",
            i.candidate,
            i.token,
            span_text(base, i.start, i.end)
        )
    };
    // Terms ended by force before they were known to have started drop out of the checks of
    // overlap and order; the rest are cut at the forced end.
    let clipped: Vec<(&LeaderInterval, Option<Instant>)> = sorted
        .iter()
        .filter_map(|i| Some((i, clip(&i.candidate, i.token, i.start, i.end, forced)?)))
        .collect();
    for (n, (a, a_end)) in clipped.iter().enumerate() {
        for (b, b_end) in &clipped[n + 1..] {
            if a.candidate != b.candidate && overlaps(a.start, *a_end, b.start, *b_end) {
                return Err(Violation::new(
                    "S2",
                    format!("{} and {} lead at the same time", show(a), show(b)),
                ));
            }
        }
    }
    let mut owner: BTreeMap<FencingToken, &str> = BTreeMap::new();
    for i in &sorted {
        if let Some(o) = owner.insert(i.token, &i.candidate) {
            if o != i.candidate {
                return Err(Violation::new(
                    "S1",
                    format!("token {} names both {o} and {}", i.token, i.candidate),
                ));
            }
        }
    }
    for w in clipped.windows(2) {
        let (a, b) = (w[0].0, w[1].0);
        let resumed = a.token == b.token && a.candidate == b.candidate;
        if !resumed && b.token <= a.token {
            return Err(Violation::new(
                "S1",
                format!("{} follows {}", show(b), show(a)),
            ));
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

    #[tokio::test(start_paused = true)]
    async fn a_forced_end_clips_the_term() {
        let base = Instant::now();
        let both = [iv("a", 1, 0, Some(6)), iv("b", 2, 5, None)];
        let forced = [Forced {
            candidate: "a".into(),
            at: base + Duration::from_secs(5),
            last_token: FencingToken(1),
        }];
        assert!(check_leaders_forced(&both, &forced).is_ok());
        let late = [Forced {
            candidate: "a".into(),
            at: base + Duration::from_millis(5500),
            last_token: FencingToken(1),
        }];
        assert_eq!(check_leaders_forced(&both, &late).unwrap_err().line, "S2");
    }
}
