//! S4 (work is scoped to the term): the leader work of two terms never runs at the same time.

use super::{clip, earliest, overlaps, span_text, Forced, Violation, WorkSpan};

/// S4: leader work of two different terms never runs at the same time.
pub fn check_work(spans: &[WorkSpan]) -> Result<(), Violation> {
    check_work_forced(spans, &[])
}

/// [`check_work`], with the work of terms ended by force (see [`Forced`]) treated as over at that
/// instant: its candidate could not know the term had ended.
pub fn check_work_forced(spans: &[WorkSpan], forced: &[Forced]) -> Result<(), Violation> {
    let base = earliest(spans.iter().map(|s| s.start));
    let clipped: Vec<(&WorkSpan, Option<_>)> = spans
        .iter()
        .filter_map(|s| Some((s, clip(&s.candidate, s.token, s.start, s.end, forced)?)))
        .collect();
    for (i, (a, a_end)) in clipped.iter().enumerate() {
        for (b, b_end) in &clipped[i + 1..] {
            if a.token != b.token && overlaps(a.start, *a_end, b.start, *b_end) {
                return Err(Violation::new(
                    "S4",
                    format!(
                        "work of {} (token {}) {} overlaps work of {} (token {}) {}",
                        a.candidate,
                        a.token,
                        span_text(base, a.start, a.end),
                        b.candidate,
                        b.token,
                        span_text(base, b.start, b.end)
                    ),
                ));
            }
        }
    }
    Ok(())
}
