//! The backend conformance suite (feature `testing`), after openraft's `Suite`: a [`Harness`]
//! makes fresh backends and injects the faults a backend can suffer; every case is a public async
//! fn that can run alone; [`conformance_suite!`](crate::conformance_suite) turns them all into
//! tests in a few lines. The contract's invariants are checked by [`invariants`], which the
//! property tests and fuzzers share.
//!
//! ```text
//! // In a backend crate's tests/conformance.rs:
//! election_core::conformance_suite!(paused, my_backend::TestHarness::new());
//! ```

pub mod cases;
pub mod fenced;
pub mod invariants;
pub mod machine;
pub mod recorder;

pub use crate::process::Process;
pub use fenced::{FencedStore, FencedWrite, StaleToken};

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::backend::{CoordinationBackend, SessionId};

/// The text a contender of `implementation` puts before the sequence of its node's name
/// (`unique` stands in for its uuid), for harnesses'
/// [`create_contender`](Harness::create_contender).
///
/// # Panics
/// For [`Implementation::Election`](crate::Implementation::Election).
pub fn contender_prefix(implementation: crate::Implementation, unique: u64) -> String {
    use crate::Implementation as I;
    let uuid = format!(
        "{:08x}-5eed-4000-8000-{:012x}",
        unique >> 48,
        unique & 0xffff_ffff_ffff
    );
    match implementation {
        I::CuratorLatch => format!("_c_{uuid}-latch-"),
        I::CuratorLock => format!("_c_{uuid}-lock-"),
        I::Kazoo => format!("{unique:032x}__lock__"),
        I::Unknown => "member_".to_owned(),
        other => panic!("{other:?} is not a foreign implementation"),
    }
}

/// What the suite needs from a backend under test.
#[async_trait]
pub trait Harness: Send + Sync + 'static {
    /// A backend for one client. Each call may be a separate connection (the ZooKeeper harness
    /// gives each its own proxy, so that one client can be cut off alone).
    async fn backend(&self) -> Arc<dyn CoordinationBackend>;

    /// The session timeout the cases use.
    fn session_timeout(&self) -> Duration;

    /// A fresh election path for the case `case` (unique per harness).
    fn path(&self, case: &str) -> String {
        format!("/conformance/{case}")
    }

    /// Makes the service expire `session` now.
    async fn expire(&self, session: SessionId);

    /// Cuts the client of `session` off from the service (a partition).
    async fn cut(&self, session: SessionId);

    /// Heals a cut.
    async fn heal(&self, session: SessionId);

    /// Crashes the process of `candidate`: it sends nothing more and does not withdraw; the
    /// service must expire its session. The default aborts the candidate, which drops its session
    /// without closing it; a backend whose client closes a dropped session (ZooKeeper's does)
    /// cuts it off first.
    async fn crash(&self, candidate: crate::Candidate) {
        candidate.abort();
    }

    /// Creates, in directory `dir` (an election path), the node of a contender of another
    /// implementation, named as `implementation` names its own (Curator's
    /// `_c_{uuid}-latch-{seq}`, kazoo's `{hex}__lock__{seq}`, ...), with `data`, owned by a
    /// session of a foreign client that lives until [`remove_contender`](Self::remove_contender):
    /// on ZooKeeper an `EPHEMERAL_SEQUENTIAL` node of its own session, on etcd a key on a lease
    /// of its own. Returns its name.
    async fn create_contender(
        &self,
        dir: &str,
        implementation: crate::Implementation,
        data: &[u8],
    ) -> String;

    /// Removes a contender made by [`create_contender`](Self::create_contender), as its client
    /// giving up.
    async fn remove_contender(&self, dir: &str, name: &str);

    /// Whether the backend's first create in a fresh directory reports
    /// [`EntryInfo::sole`](crate::backend::EntryInfo::sole) (the candidate then leads without a
    /// listing); the conformance suite checks that it does. `false` by default: the backend
    /// never reports it, which is always correct.
    fn reports_sole(&self) -> bool {
        false
    }

    /// Slack allowed on timing bounds: zero on virtual time; on a real service, the scheduling
    /// and network noise of the machine.
    fn slack(&self) -> Duration {
        Duration::ZERO
    }
}

/// Generates one test per conformance case for a harness expression.
///
/// `paused`: tests on tokio's paused clock (in-memory backends); `real`: on a multi-threaded
/// runtime in real time (a real service).
#[macro_export]
macro_rules! conformance_suite {
    (paused, $harness:expr) => {
        $crate::conformance_suite!(@list [tokio::test(start_paused = true)] $harness);
    };
    (real, $harness:expr) => {
        $crate::conformance_suite!(
            @list [tokio::test(flavor = "multi_thread", worker_threads = 2)] $harness
        );
    };
    (@list [$attr:meta] $harness:expr) => {
        $crate::conformance_suite!(@cases [$attr] $harness;
            primitives_create_list_read_delete,
            primitives_sole,
            primitives_confirm,
            primitives_watch_gone,
            primitives_close_removes_entries,
            primitives_list_and_watch,
            first_joiner_leads_with_its_entry_token,
            resign_hands_over_in_queue_order,
            only_the_successor_wakes,
            crash_fails_over_after_session_timeout,
            leader_work_ends_before_successor_starts,
            close_while_leading_stops_work_before_successor,
            slow_leader_work_is_aborted_after_grace,
            stop_and_drop_leave_no_entry,
            leader_entry_deleted_by_admin,
            election_root_deleted,
            several_elections_one_session,
            observer_follows_the_leader,
            participants_and_current_leader,
            bad_input_is_rejected_before_side_effects,
            expired_candidate_rejoins_at_the_tail,
            cut_leader_steps_down_before_expiry,
            short_cut_keeps_leadership,
            follower_keeps_place_across_reconnect,
            work_that_returns_ends_its_term,
            work_that_fails_ends_its_term,
            work_that_panics_ends_its_term,
            work_failing_at_once_does_not_starve_the_others,
            work_hands_over_with_term_resign,
            resign_and_stop_from_inside_the_work,
            term_tasks_end_with_the_work,
            stop_returns_after_aborted_work_ended,
            foreign_contender_ahead_is_waited_for,
        );
    };
    (@cases [$attr:meta] $harness:expr; $($case:ident),* $(,)?) => {
        $(
            #[$attr]
            async fn $case() {
                let harness = $harness;
                $crate::testing::cases::$case(&harness).await;
            }
        )*
    };
}

/// Runs every case, one after the other, on one harness.
pub async fn run_all(h: &dyn Harness) {
    use cases::*;
    primitives_create_list_read_delete(h).await;
    primitives_sole(h).await;
    primitives_confirm(h).await;
    primitives_watch_gone(h).await;
    primitives_close_removes_entries(h).await;
    primitives_list_and_watch(h).await;
    foreign_contender_ahead_is_waited_for(h).await;
    first_joiner_leads_with_its_entry_token(h).await;
    resign_hands_over_in_queue_order(h).await;
    only_the_successor_wakes(h).await;
    crash_fails_over_after_session_timeout(h).await;
    leader_work_ends_before_successor_starts(h).await;
    close_while_leading_stops_work_before_successor(h).await;
    slow_leader_work_is_aborted_after_grace(h).await;
    stop_and_drop_leave_no_entry(h).await;
    leader_entry_deleted_by_admin(h).await;
    election_root_deleted(h).await;
    several_elections_one_session(h).await;
    observer_follows_the_leader(h).await;
    participants_and_current_leader(h).await;
    bad_input_is_rejected_before_side_effects(h).await;
    expired_candidate_rejoins_at_the_tail(h).await;
    cut_leader_steps_down_before_expiry(h).await;
    short_cut_keeps_leadership(h).await;
    follower_keeps_place_across_reconnect(h).await;
    work_that_returns_ends_its_term(h).await;
    work_that_fails_ends_its_term(h).await;
    work_that_panics_ends_its_term(h).await;
    work_failing_at_once_does_not_starve_the_others(h).await;
    work_hands_over_with_term_resign(h).await;
    resign_and_stop_from_inside_the_work(h).await;
    term_tasks_end_with_the_work(h).await;
    stop_returns_after_aborted_work_ended(h).await;
}
