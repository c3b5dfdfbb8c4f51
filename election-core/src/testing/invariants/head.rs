//! S3 (verified claim) and L2 (succession in queue order), at one instant: every candidate in the
//! Leader state holds the first entry of the queue, the one with its own token.

use super::{Forced, Violation};
use crate::backend::FencingToken;

/// The first entry of an election's queue, as the service has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeadEntry {
    /// The candidate id in the entry's record.
    pub candidate: String,
    /// The entry's token.
    pub token: FencingToken,
}

/// S3 and L2: each `(candidate, token)` in the Leader state now is the head of the queue with
/// that token. Since the service orders entries by creation, a leader that always holds the head
/// means succession follows queue order. A term ended by force (see [`Forced`]) is exempt: its
/// candidate may not know yet.
pub fn check_leader_holds_head(
    leaders: &[(String, FencingToken)],
    head: Option<&HeadEntry>,
    forced: &[Forced],
) -> Result<(), Violation> {
    for (id, token) in leaders {
        if forced
            .iter()
            .any(|f| &f.candidate == id && *token <= f.last_token)
        {
            continue;
        }
        let holds = head.is_some_and(|h| &h.candidate == id && h.token == *token);
        if !holds {
            return Err(Violation::new(
                "S3",
                format!(
                    "{id} is in the Leader state with token {token} but the head of the queue is {}",
                    match head {
                        Some(h) => format!("{} (token {})", h.candidate, h.token),
                        None => "nobody".to_owned(),
                    }
                ),
            ));
        }
    }
    Ok(())
}
