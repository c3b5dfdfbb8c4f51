//! What a user sees of a candidate: its state, the reasons it changes, and notices.

use std::sync::Arc;

use tokio::time::Instant;

use crate::backend::{FencingToken, SessionId};
use crate::foreign::Implementation;

/// A candidate's state, as its driver publishes it
/// ([`Candidate::state`](crate::Candidate::state)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ElectionState {
    /// Registering an entry in the queue (at start, and when rejoining).
    Joining,
    /// In the queue behind `position` others.
    ///
    /// Position and leader are as of this candidate's last listing: to keep failover work flat
    /// (no herd), a follower is woken only when its direct predecessor leaves, so it does not
    /// hear of changes further ahead. Ask [`Client::current_leader`](crate::Client::current_leader)
    /// or run an [`Observer`](crate::Observer) for a live view.
    Follower {
        /// How many entries are ahead of this one (1: next in line).
        position: usize,
        /// The leader as of the last listing, once its record has been read. Shared by every
        /// copy of the state (the candidate's own, its watches', its events'): 16 bytes in
        /// each, not 64.
        leader: Option<Arc<LeaderInfo>>,
    },
    /// This candidate leads the term named by `token`.
    Leader {
        /// The term's fencing token: send it with every write made as leader.
        token: FencingToken,
        /// Whether contact with the backend is confirmed right now.
        contact: Contact,
    },
    /// Contact with the backend is uncertain: not leading, place kept if the session survives.
    Suspended,
    /// The candidate has stopped for good.
    Stopped(StopReason),
}

impl ElectionState {
    /// `true` in [`ElectionState::Leader`].
    pub fn is_leader(&self) -> bool {
        matches!(self, Self::Leader { .. })
    }

    /// `true` in [`ElectionState::Stopped`]: the candidate will not change state again.
    pub fn is_stopped(&self) -> bool {
        matches!(self, Self::Stopped(_))
    }

    /// The term token while leading.
    pub fn token(&self) -> Option<FencingToken> {
        match self {
            Self::Leader { token, .. } => Some(*token),
            _ => None,
        }
    }

    /// A short name of the state, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Joining => "joining",
            Self::Follower { .. } => "follower",
            Self::Leader { .. } => "leader",
            Self::Suspended => "suspended",
            Self::Stopped(_) => "stopped",
        }
    }
}

/// A leader's contact with the backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Contact {
    /// The session is connected and this leader's place was verified.
    Confirmed,
    /// Replies stopped coming. The leader keeps leading, because the backend cannot let anyone
    /// else lead yet, and steps down at `step_down_at` unless contact is restored and its place
    /// verified again before then.
    Uncertain {
        /// When this leader steps down at the latest.
        step_down_at: Instant,
    },
}

/// The leader as a follower or observer knows it.
///
/// The leader may be a contender of another implementation (a Curator or kazoo client on the
/// same path, during a migration): then `implementation` says which, `id` is its data read as
/// plain UTF-8 (or `<N bytes, not UTF-8>`: shown, never trusted), `payload` its raw data, and
/// a candidate of ours waits behind it (a follower whose leader is foreign waits for it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderInfo {
    /// The leader's candidate id.
    pub id: String,
    /// Which implementation leads: [`Implementation::Election`] for one of ours.
    pub implementation: Implementation,
    /// The leader's payload, shared by every copy of this value (states and events).
    pub payload: Arc<[u8]>,
    /// The leader's term token.
    pub token: FencingToken,
    /// The leader's session.
    pub session: SessionId,
}

/// What an [`Observer`](crate::Observer) knows of who leads an election.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum LeaderView {
    /// Not known yet: the observer has not listed the election since it started (or cannot
    /// read the head's record). Not the same as [`LeaderView::Nobody`].
    #[default]
    Unknown,
    /// The observer's last listing found the election empty: nobody leads.
    Nobody,
    /// This candidate leads, as of the observer's last listing.
    Leader(LeaderInfo),
}

impl LeaderView {
    /// The leader, if one is known.
    pub fn leader(&self) -> Option<&LeaderInfo> {
        match self {
            Self::Leader(info) => Some(info),
            _ => None,
        }
    }

    /// `false` while [`LeaderView::Unknown`].
    pub fn is_known(&self) -> bool {
        !matches!(self, Self::Unknown)
    }
}

/// One participant of an election, in queue order
/// ([`Client::participants`](crate::Client::participants)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Participant {
    /// The candidate id (for a contender of another implementation, its data as UTF-8, or
    /// `<N bytes, not UTF-8>`).
    pub id: String,
    /// Which implementation it is: [`Implementation::Election`] for one of ours.
    pub implementation: Implementation,
    /// Its payload.
    pub payload: Vec<u8>,
    /// The token its term has (or will have) if it leads.
    pub token: FencingToken,
    /// Its session.
    pub session: SessionId,
}

/// Why a candidate stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// [`Candidate::stop`](crate::Candidate::stop) was called or the handle was dropped.
    Stopped,
    /// [`Candidate::leave`](crate::Candidate::leave) was called, or the leader work ended under
    /// [`WorkEnded::Leave`](crate::WorkEnded::Leave).
    Resigned,
    /// The session ended and re-candidacy is off.
    SessionEnded,
    /// The backend refused for good (no permission, a rejected request), or the candidate's
    /// driver failed (a panic in a backend call): the message says why.
    Failed(String),
    /// [`Client::close`](crate::Client::close) was called on the client this candidate runs
    /// on: it withdrew as on `stop`, and the closed client does not rejoin.
    ClientClosed,
}

/// Why a state changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Our entry was registered and our place in the queue is known.
    Joined,
    /// Our entry was verified first in the queue and owned by our live session.
    Claimed,
    /// The leader's record was read (a follower learns who leads).
    LeaderKnown,
    /// An entry ahead of ours left; we moved up.
    PredecessorLeft,
    /// Replies from the backend stopped coming.
    ContactLost,
    /// Contact came back and our place was verified again.
    ContactRestored,
    /// Contact stayed lost until the step-down deadline: we stepped down before the backend could
    /// expire the session.
    StepDownDeadline,
    /// We resigned (and rejoin at the tail, or leave).
    Resigned,
    /// Our entry was deleted by someone else (or the election root was deleted).
    EntryDeleted,
    /// A contender of another implementation (Curator, kazoo) came ahead of our entry while we
    /// led: it does not see ours and leads already, so we stepped down.
    ForeignContenderAhead,
    /// The session expired or closed.
    SessionEnded,
    /// After our session ended, we rejoin at the tail with a new session.
    Rejoining,
    /// The candidate was stopped.
    Stopped,
    /// The backend refused for good, or the candidate's driver failed (its
    /// [`StopReason::Failed`] says why).
    Failed,
    /// The leader work returned while its term was live.
    WorkReturned,
    /// The leader work failed while its term was live: the error's text.
    WorkFailed(String),
    /// The leader work panicked while its term was live: the panic's message.
    WorkPanicked(String),
}

/// A change of state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    /// When it happened.
    pub at: Instant,
    /// The state before.
    pub from: ElectionState,
    /// The state after.
    pub to: ElectionState,
    /// Why.
    pub reason: Reason,
}

/// A contender of another implementation (Curator, kazoo, ...) in an election directory: a
/// foreign sequential node, which candidates of ours never lead beside.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForeignContender {
    /// Its node's name.
    pub name: String,
    /// Which implementation its name looks like.
    pub implementation: Implementation,
    /// Its data as plain UTF-8 (Curator and kazoo store their id so), or
    /// `<N bytes, not UTF-8>`: shown, never trusted.
    pub id: String,
    /// The session that owns it.
    pub session: SessionId,
    /// Its place in the directory's order (ZooKeeper's sequence).
    pub sequence: u64,
}

/// Something worth knowing that does not change the state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// Children of the election path that are not election entries: ignored, never counted.
    /// At most [`MAX_FOREIGN_NAMES`](crate::limits::MAX_FOREIGN_NAMES) of them (the first in
    /// byte order), each cut to [`MAX_FOREIGN_NAME_LEN`](crate::limits::MAX_FOREIGN_NAME_LEN)
    /// bytes.
    ForeignEntries(Vec<String>),
    /// How many foreign children the election path held beyond those
    /// [`ForeignEntries`](Self::ForeignEntries) names: counted, not kept. Reported with it
    /// when the count changes.
    ForeignEntriesOmitted(usize),
    /// Contenders of other implementations in the election path (a Curator or kazoo client on
    /// the same path), in the order this candidate queues them: a candidate of ours never leads
    /// while one of them is ahead of it, and a contender whose implementation does not order
    /// our entries (stock Curator and kazoo) is ahead of every entry of ours. Reported when the
    /// set changes; empty when the last one left.
    ForeignContenders(Vec<ForeignContender>),
    /// An entry of ours that was not our current one (from a create whose reply was lost) was
    /// found and deleted.
    OrphanRemoved(String),
    /// Leader work did not stop within the grace and was aborted.
    WorkOverranGrace(FencingToken),
    /// Leader work returned on its own while the term went on.
    WorkFinished(FencingToken),
    /// A backend call failed and will be retried.
    Retrying(String),
    /// An entry of ours could not be deleted (the error says why, such as no permission), or
    /// the candidate failed while it may hold one: the session is closed so that the service
    /// deletes it, rather than leave it in the queue for as long as the session lives. Other
    /// candidates on the same client move to a new session.
    ClosingSession(String),
    /// A term token lower than one this client saw before in the same election: the service
    /// lost its data and was rebuilt (ZooKeeper's zxids start again from small numbers), and
    /// downstream systems that fence will reject the new leader's writes until they are told.
    TokenWentBack {
        /// The token just seen (a claim, or the leader a follower read).
        token: FencingToken,
        /// The highest token this client had seen in the election.
        last: FencingToken,
    },
}

/// An item of a candidate's event stream ([`Candidate::events`](crate::Candidate::events)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The state changed.
    Transition(Transition),
    /// A notice.
    Notice {
        /// When.
        at: Instant,
        /// What.
        notice: Notice,
    },
}
