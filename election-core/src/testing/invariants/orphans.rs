//! S5 (nothing orphaned): after stop, resign, a dropped handle or a lost create reply, no entry
//! of the candidate stays behind, and a candidate never holds two entries in one election.

use std::collections::BTreeSet;

use super::Violation;

/// S5: `queue` is the election's candidate ids in queue order (one per entry, from the entries'
/// records); `gone` are candidates that have withdrawn (stopped, left, dropped) while in contact
/// with the service. No id may appear twice, and none of `gone` may appear at all.
pub fn check_no_orphans(queue: &[String], gone: &BTreeSet<String>) -> Result<(), Violation> {
    let mut seen = BTreeSet::new();
    for id in queue {
        if !seen.insert(id) {
            return Err(Violation::new(
                "S5",
                format!("{id} holds two entries in one election: {queue:?}"),
            ));
        }
        if gone.contains(id) {
            return Err(Violation::new(
                "S5",
                format!("{id} withdrew but its entry stayed behind: {queue:?}"),
            ));
        }
    }
    Ok(())
}
