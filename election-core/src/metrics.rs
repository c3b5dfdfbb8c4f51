//! The library's own metrics, recorded through the [`metrics`](https://docs.rs/metrics) facade:
//! install any exporter (Prometheus, StatsD, ...) in your program and they appear; without one,
//! recording costs next to nothing. Every name the library records is here:
//!
//! | name | kind | labels | what |
//! |---|---|---|---|
//! | `election_transitions_total` | counter | `path`, `from`, `to`, `reason` | state changes of candidates |
//! | `election_terms_total` | counter | `path` | terms led (a candidate entering Leader) |
//! | `election_leader` | gauge | `path` | 1 while a candidate of this process leads `path`, else 0 |
//! | `election_token` | gauge | `path` | the token of the latest term led here (as `f64`: exact below 2^53) |
//! | `election_session_state` | gauge | `state` | 1 for the session state a candidate saw last (`connected`, `disconnected`, `expired`, `closed`), 0 for the others |
//! | `election_session_changes_total` | counter | `state` | session state changes seen by candidates |
//! | `election_takeover_seconds` | histogram | `path` | a new leader's share of a failover: from the notice that its predecessor's entry is gone to leading (the share before it is the old leader's release, or the service's session timeout after a crash) |
//!
//! Label values: `path` is the election path; `from` and `to` are
//! [`ElectionState::name`](crate::ElectionState::name); `reason` is the
//! [`Reason`] variant in snake case (without the text of a work failure).
//!
//! # Hand-over checkpoints
//! For measuring where the time of a hand-over goes, the driver also emits a `tracing` event at
//! `TRACE` level with target [`HANDOVER_TARGET`] at each step of a leader's release and a
//! successor's claim, with the fields `leg` (one of [`HANDOVER_LEGS`]), `path`, `candidate` and
//! `session`. With no subscriber enabled for that target they cost one relaxed atomic load each.
//! `zk_bench --legs` records them with a `tracing-subscriber` layer and prints each leg's share.

use std::time::Duration;

use metrics::{counter, gauge, histogram};

use crate::backend::SessionState;
use crate::path::ElectionPath;
use crate::state::{ElectionState, Reason, Transition};

/// Records a transition of a candidate on `path`.
pub(crate) fn transition(path: &ElectionPath, t: &Transition) {
    let path = path.to_string();
    counter!(
        "election_transitions_total",
        "path" => path.clone(),
        "from" => t.from.name(),
        "to" => t.to.name(),
        "reason" => reason_name(&t.reason),
    )
    .increment(1);
    match (&t.from, &t.to) {
        (from, ElectionState::Leader { token, .. }) if !from.is_leader() => {
            counter!("election_terms_total", "path" => path.clone()).increment(1);
            gauge!("election_leader", "path" => path.clone()).set(1.0);
            gauge!("election_token", "path" => path).set(token.0 as f64);
        }
        (from, to) if from.is_leader() && !to.is_leader() => {
            gauge!("election_leader", "path" => path).set(0.0);
        }
        _ => {}
    }
}

/// Records a take-over on `path`: from the predecessor's entry gone to leading.
pub(crate) fn takeover(path: &ElectionPath, took: Duration) {
    histogram!("election_takeover_seconds", "path" => path.to_string()).record(took.as_secs_f64());
}

/// The `tracing` target of the hand-over checkpoints (see the [module docs](self)).
pub const HANDOVER_TARGET: &str = "election::handover";

/// The hand-over checkpoints, in the order a graceful hand-over passes them: the old leader's
/// driver receives the resignation (`resign_received`), tells its work to stop
/// (`work_cancel`), learns that the work and its tasks ended (`work_ended`), hands the delete of
/// its entry to the backend (`delete_sent`) and receives its answer (`delete_answered`); the
/// backend of the successor receives the watch notification (`watch_fired`, emitted by
/// backends that can tell), its driver receives it (`notified`), hands the confirming request to
/// the backend and receives its answer (`read_sent`, `read_answered` when it reads its own entry
/// to confirm it; `list_sent`, `list_answered` when it lists the election to find its place),
/// starts the new term's work (`work_start`) and publishes the Leader state (`published`).
pub const HANDOVER_LEGS: [&str; 13] = [
    "resign_received",
    "work_cancel",
    "work_ended",
    "delete_sent",
    "delete_answered",
    "watch_fired",
    "notified",
    "read_sent",
    "read_answered",
    "list_sent",
    "list_answered",
    "work_start",
    "published",
];

/// Emits one hand-over checkpoint (see [`HANDOVER_TARGET`]).
#[inline]
pub(crate) fn checkpoint(
    leg: &'static str,
    path: &ElectionPath,
    candidate: &str,
    session: crate::SessionId,
) {
    tracing::trace!(target: HANDOVER_TARGET, leg, path = %path, candidate, session = %session);
}

/// Records a session state a candidate saw.
pub(crate) fn session_state(state: &SessionState) {
    let now = session_state_name(state);
    counter!("election_session_changes_total", "state" => now).increment(1);
    for name in ["connected", "disconnected", "expired", "closed"] {
        gauge!("election_session_state", "state" => name).set(if name == now { 1.0 } else { 0.0 });
    }
}

fn session_state_name(state: &SessionState) -> &'static str {
    match state {
        SessionState::Connected => "connected",
        SessionState::Disconnected { .. } => "disconnected",
        SessionState::Expired => "expired",
        SessionState::Closed => "closed",
    }
}

/// The label of a reason: its variant in snake case.
fn reason_name(reason: &Reason) -> &'static str {
    match reason {
        Reason::Joined => "joined",
        Reason::Claimed => "claimed",
        Reason::LeaderKnown => "leader_known",
        Reason::PredecessorLeft => "predecessor_left",
        Reason::ContactLost => "contact_lost",
        Reason::ContactRestored => "contact_restored",
        Reason::StepDownDeadline => "step_down_deadline",
        Reason::Resigned => "resigned",
        Reason::EntryDeleted => "entry_deleted",
        Reason::SessionEnded => "session_ended",
        Reason::Rejoining => "rejoining",
        Reason::Stopped => "stopped",
        Reason::Failed => "failed",
        Reason::WorkReturned => "work_returned",
        Reason::WorkFailed(_) => "work_failed",
        Reason::WorkPanicked(_) => "work_panicked",
        Reason::ForeignContenderAhead => "foreign_contender_ahead",
    }
}
