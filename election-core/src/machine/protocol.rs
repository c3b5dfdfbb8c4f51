//! The machine's protocol: what goes in ([`Input`]), what comes out ([`Action`]), and what it is
//! built with ([`MachineConfig`]). The driver speaks only this; the rules are in
//! [`super::Machine`].

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::backend::{EntryInfo, FencingToken, Listing, Marker, SessionId, SessionState};
use crate::error::BackendError;
use crate::path::ElectionPath;
use crate::state::Event;
use crate::term::WorkEnded;

/// How a term's leader work ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum WorkEnd {
    /// It returned (`()` or `Ok`).
    Returned,
    /// It returned an error: the error's text.
    Failed(String),
    /// It panicked (the work or the closure that makes it): the panic's message.
    Panicked(String),
    /// It was aborted (after the grace, or with the candidate).
    Aborted,
}

/// A duration kept as nanoseconds: 8 bytes, not a `Duration`'s 16, in every candidate's task
/// (issue 12; 584 years fit, and longer saturates).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Nanos(u64);

impl Nanos {
    pub fn get(self) -> Duration {
        Duration::from_nanos(self.0)
    }
}

impl From<Duration> for Nanos {
    fn from(d: Duration) -> Self {
        Self(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }
}

/// What the machine needs to know about its candidate; fixed for its life.
#[derive(Clone, Debug)]
pub(crate) struct MachineConfig {
    pub path: ElectionPath,
    /// Shared with the candidate's handle and its client's registry: one copy per candidate.
    pub id: Arc<str>,
    pub step_down_fraction: f64,
    /// The leader work's grace (see [`Nanos`]).
    pub grace: Nanos,
    pub rejoin_on_expiry: bool,
    pub has_work: bool,
    /// What to do when the work ends by itself while its term is live.
    pub when_work_ends: WorkEnded,
    /// High 32 bits of every marker this candidate uses: entries with it are ours.
    pub marker_prefix: u32,
    /// The implementation whose names our entries take (a compatibility mode), whose
    /// contenders therefore order ours by sequence; `None`: none, every foreign contender is
    /// ahead of ours.
    pub compatible: Option<crate::foreign::Implementation>,
    /// The backend keeps leader notes ([`BackendSession::keeps_leader_notes`](crate::BackendSession::keeps_leader_notes)).
    pub leader_notes: bool,
}

/// Everything that can happen to a candidate.
#[derive(Debug)]
pub(crate) enum Input {
    /// The session's state changed.
    Session(SessionState),
    /// A new session is ready (after [`Action::OpenSession`]).
    SessionOpened {
        id: SessionId,
        timeout: Duration,
        state: SessionState,
    },
    Created(Result<EntryInfo, BackendError>),
    Listed(Result<Listing, BackendError>),
    Read {
        name: String,
        result: Result<Option<EntryInfo>, BackendError>,
    },
    Deleted {
        name: String,
        result: Result<(), BackendError>,
    },
    /// The answer to [`Action::Confirm`]: our entry as read, and the leader note if asked for.
    Confirmed {
        name: String,
        result: Result<crate::backend::Confirmation, BackendError>,
    },
    /// The answer to [`Action::NoteLeader`].
    Noted {
        name: String,
        result: Result<(), BackendError>,
    },
    /// The predecessor's watch fired (`Ok`: it is gone).
    PredecessorGone {
        name: Arc<str>,
        result: Result<(), BackendError>,
    },
    /// The predecessor is a look-alike: a node named like an entry that is not a live
    /// session's (persistent, or owned by another session than its name claims).
    PredecessorNotAnEntry {
        name: Arc<str>,
    },
    /// Our own entry's watch fired (`Ok`: it is gone).
    OwnGone {
        name: Arc<str>,
        result: Result<(), BackendError>,
    },
    /// Leader work ended, as `end` says; `handover`: it asked to hand over
    /// ([`Term::resign`](crate::Term::resign)).
    WorkDone {
        end: WorkEnd,
        handover: bool,
    },
    /// The deadline set by the last [`Action::SetTimer`] has come.
    Timer,
    /// Give up leadership: rejoin at the tail, or leave for good.
    Resign {
        rejoin: bool,
    },
    /// Withdraw and finish.
    Stop,
    /// Withdraw and finish because the client is closing (it closes the session after).
    Close,
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Action {
    /// Replace the session (the old one ended); answer with [`Input::SessionOpened`]. Every
    /// request and watch of the old session is to be dropped.
    OpenSession,
    /// Close the session (its end deletes an entry of ours that cannot be deleted otherwise);
    /// its end comes back as [`Input::Session`].
    CloseSession,
    /// The machine finishes with something of ours left uncertain on its live session (a create
    /// under way or unknown, an entry not yet deleted): the session belongs to the client and
    /// may live on, so the client sweeps this candidate's entries (its marker prefix) the next
    /// time the session has contact.
    SweepLater,
    Create {
        marker: Marker,
    },
    List,
    Read {
        name: String,
    },
    Delete {
        name: String,
    },
    /// Read our entry `name` and (with `note`) the leader note, at once (one round trip);
    /// answer with [`Input::Confirmed`].
    Confirm {
        name: String,
        note: bool,
    },
    /// Record that our entry `name` leads ([`BackendSession::note_leader`]); answer with
    /// [`Input::Noted`]. Like a read of the leader's record, it may be replaced by any other
    /// request (the driver drops it).
    NoteLeader {
        name: String,
    },
    /// Watch this entry, replacing any predecessor watch.
    WatchPredecessor {
        name: Arc<str>,
    },
    UnwatchPredecessor,
    /// Watch our own entry, replacing any earlier own watch.
    WatchOwn {
        name: Arc<str>,
    },
    UnwatchOwn,
    StartWork {
        token: FencingToken,
    },
    /// Signal the work to stop; answer with [`Input::WorkDone`] when it has.
    CancelWork,
    /// The grace is over: abort the work; answer with [`Input::WorkDone`].
    AbortWork,
    /// Deliver [`Input::Timer`] at this instant (replacing any earlier deadline), or never.
    SetTimer(Option<Instant>),
    /// Publish an event (and, for a transition, the new state).
    Emit(Event),
    /// A resignation has completed.
    ResignDone,
    /// The machine has finished; nothing more will come out.
    Finished,
}
