//! L3 (no herd): a change of leader wakes only the direct successor of the entry that left,
//! because every entry is watched by at most one candidate (the one right behind it).

use super::Violation;

/// L3: `watchers` gives, per entry, how many candidates other than its owner have a live watch
/// on it. Each must be at most one, so that an entry leaving wakes one candidate, whatever the
/// number of candidates.
pub fn check_no_herd(watchers: &[(String, usize)]) -> Result<(), Violation> {
    match watchers.iter().find(|(_, n)| *n > 1) {
        Some((entry, n)) => Err(Violation::new(
            "L3",
            format!("{n} candidates watch entry {entry}: its leaving would wake a herd"),
        )),
        None => Ok(()),
    }
}
