//! S1 across implementations (a mixed fleet: Curator or kazoo contenders on the same path): no
//! candidate of ours is in the Leader state while a contender of another implementation that
//! precedes its entry in the service's order is there.
//!
//! Such a contender was created before our entry, so the candidate's first listing after its
//! create showed it, and every claim of ours comes from a listing or a hand-over behind it.

use super::Violation;

/// A candidate of ours in the Leader state now, with its entry's place in the service's order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderEntry {
    /// The candidate id.
    pub candidate: String,
    /// Its entry's sequence (ZooKeeper's suffix).
    pub sequence: u64,
}

/// S1: no leader of ours holds an entry that a live foreign contender precedes.
/// `contenders` are `(name, sequence)` of the foreign contenders there now.
pub fn check_no_leader_behind_foreign(
    leaders: &[LeaderEntry],
    contenders: &[(String, u64)],
) -> Result<(), Violation> {
    for l in leaders {
        if let Some((name, seq)) = contenders.iter().find(|(_, seq)| *seq < l.sequence) {
            return Err(Violation::new(
                "S1",
                format!(
                    "{} leads with its entry at sequence {} while the foreign contender {name} \
                     (sequence {seq}) precedes it",
                    l.candidate, l.sequence
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_preceding_contender_is_a_violation_a_later_one_is_not() {
        let leaders = [LeaderEntry {
            candidate: "a".into(),
            sequence: 5,
        }];
        assert!(check_no_leader_behind_foreign(&leaders, &[("c".into(), 7)]).is_ok());
        let v = check_no_leader_behind_foreign(&leaders, &[("c".into(), 3)]).unwrap_err();
        assert_eq!(v.line, "S1");
        assert!(check_no_leader_behind_foreign(&[], &[("c".into(), 3)]).is_ok());
    }
}
