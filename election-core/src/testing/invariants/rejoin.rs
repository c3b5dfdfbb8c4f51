//! L4 (re-candidacy): a candidate whose session expired, and that was not stopped, rejoins by
//! itself at the tail of the queue.

use super::Violation;

/// L4: `queue` is the election's candidate ids in queue order, after `candidate`'s session
/// expired and it had time to rejoin; `ahead` are the candidates whose entries existed when it
/// expired (and still exist). It must be in the queue again, behind every one of them.
pub fn check_rejoined_at_tail(
    queue: &[String],
    candidate: &str,
    ahead: &[String],
) -> Result<(), Violation> {
    let Some(at) = queue.iter().position(|c| c == candidate) else {
        return Err(Violation::new(
            "L4",
            format!("{candidate} did not rejoin after its session expired; queue {queue:?}"),
        ));
    };
    for a in ahead {
        if let Some(p) = queue.iter().position(|c| c == a) {
            if p > at {
                return Err(Violation::new(
                    "L4",
                    format!("{candidate} rejoined ahead of {a}, which was there before; queue {queue:?}"),
                ));
            }
        }
    }
    Ok(())
}
