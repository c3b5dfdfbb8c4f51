//! L1 (failover), checked as liveness: once faults stop, a leader exists within a bound.

use std::time::Duration;

use super::Violation;

/// L1: `running` candidates of an election have been free of faults for `waited`, at least
/// `bound` (see [`liveness_bound`](super::liveness_bound)); exactly one of them must lead
/// (`leaders`), and it must be one of them.
pub fn check_liveness(
    running: &[String],
    leaders: &[String],
    waited: Duration,
    bound: Duration,
) -> Result<(), Violation> {
    if running.is_empty() || waited < bound {
        return Ok(());
    }
    match leaders {
        [one] if running.contains(one) => Ok(()),
        [] => Err(Violation::new(
            "L1",
            format!("no leader among {running:?} {waited:?} after the faults stopped"),
        )),
        more => Err(Violation::new(
            "L1",
            format!("leaders {more:?} among running {running:?} after the faults stopped"),
        )),
    }
}
