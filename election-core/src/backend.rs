//! The backend contract: the few primitives an ordered-queue election needs from a coordination
//! service (ZooKeeper, etcd, the in-memory one), and the rules each implementation must keep.
//!
//! Nothing here knows about leaders: who leads, when to step down and what to do after a lost
//! reply are decided once, in the election state machine (`machine.rs`). A backend only stores and orders entries.
//!
//! # Mapping onto ZooKeeper and etcd v3
//!
//! | here | ZooKeeper | etcd v3 |
//! |---|---|---|
//! | session | client session (`sessionId`) | lease, kept alive |
//! | entry | ephemeral sequential znode | key attached to the lease |
//! | `sequence` | the 10-digit suffix | the key's create revision |
//! | [`FencingToken`] | the znode's `czxid` | the key's create revision |
//! | [`Marker`] | in the znode name (protected create) | in the key |
//! | `watch_gone` | `exists` watch | watch on the key, from its revision |
//! | `list_and_watch` | `getChildren` watch | range, then watch on the prefix |

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::error::BackendError;
use crate::foreign::Compatibility;
use crate::path::ElectionPath;

/// A coordination service that can open sessions. Object safe: pick one at run time as
/// `Arc<dyn CoordinationBackend>`.
///
/// ### To ensure correctness, an implementation must
/// - open a *new* session on every call: never hand back one that has expired or closed;
/// - fail with a bounded, typed [`BackendError`] when the service cannot be reached, rather than
///   wait for ever;
/// - accept the timeout it was given or report the one it negotiated through
///   [`BackendSession::timeout`] (the election's step-down deadline is computed from that).
#[async_trait]
pub trait CoordinationBackend: Send + Sync + 'static {
    /// Opens a session that the service ends when it hears nothing from this client for
    /// `timeout`.
    async fn open_session(
        &self,
        timeout: Duration,
    ) -> Result<Arc<dyn BackendSession>, BackendError>;
}

/// One live session on a coordination service, and the operations made on it.
///
/// Every entry created through a session is ephemeral: it lives exactly as long as the session.
///
/// ### To ensure correctness, an implementation must
/// - **never let the service end the session before `timeout()` has passed since the last
///   contact it reports** in [`SessionState::Disconnected`]: `last_contact` is the instant this
///   client last had a reply from the service (a lower bound on when the service last heard from
///   it). The election steps a leader down before `last_contact + timeout()`; a `last_contact`
///   later than the truth breaks that.
/// - report [`SessionState::Disconnected`] within a fraction of the timeout (ZooKeeper's client
///   does so after about 0.4x) once replies stop coming;
/// - report [`SessionState::Expired`] or [`SessionState::Closed`] only when the session can never
///   be used again, and never go back to `Connected` after them;
/// - deliver the notifications of one session in the order the service applied the changes
///   behind them (ZooKeeper guarantees this; an in-memory fault may delay them, never reorder
///   them within a session);
/// - classify every failure with [`ErrorKind`](crate::ErrorKind), and use
///   [`ErrorKind::OutcomeUnknown`](crate::ErrorKind::OutcomeUnknown) whenever a write may have
///   been applied although no reply came (connection loss, a request timeout);
/// - bound every call: a request made while disconnected fails or completes within the session
///   timeout, it does not hang for ever.
#[async_trait]
pub trait BackendSession: Send + Sync + 'static {
    /// The service's id for this session; unique among the service's sessions, never reused.
    fn id(&self) -> SessionId;

    /// The session timeout the service granted (it may differ from the one asked for).
    fn timeout(&self) -> Duration;

    /// The session's state as this client sees it. The first value is the state now.
    fn state(&self) -> watch::Receiver<SessionState>;

    /// Creates an ephemeral entry owned by this session in directory `dir`, ordered after every
    /// entry in `dir` that exists, creating `dir` and its missing parents (as ordinary, persistent
    /// nodes) first.
    ///
    /// The entry's name must carry `marker` and this session's id, so that
    /// [`list`](Self::list) reports both: after an [`OutcomeUnknown`](crate::ErrorKind) the
    /// election finds the entry again by its marker instead of creating a second one.
    /// `data` is stored as given and returned by [`read`](Self::read).
    ///
    /// [`EntryInfo::sole`] may be set only when the service guarantees that `dir` held no other
    /// node when the entry was made (the conformance suite checks it); leave it `false` when
    /// unsure: the candidate then lists, which is always right.
    async fn create(
        &self,
        dir: &ElectionPath,
        marker: &Marker,
        data: &[u8],
    ) -> Result<EntryInfo, BackendError>;

    /// Like [`create`](Self::create), with the entry named in the shape of `mode` (see
    /// [`Compatibility`]) so that that implementation orders it by its sequence among its own
    /// nodes; `data` is the candidate id as plain UTF-8. [`list`](Self::list) and
    /// [`read`](Self::read) must report such an entry as an entry (marker and session from its
    /// name), never as a contender.
    ///
    /// The default refuses with [`ErrorKind::Invalid`](crate::ErrorKind::Invalid): only a
    /// backend that other implementations share (ZooKeeper) has these modes.
    async fn create_compatible(
        &self,
        dir: &ElectionPath,
        marker: &Marker,
        mode: Compatibility,
        data: &[u8],
    ) -> Result<EntryInfo, BackendError> {
        let _ = (dir, marker, data);
        Err(BackendError::new(
            crate::ErrorKind::Invalid,
            format!("this backend has no {mode} compatibility mode (ZooKeeper only)"),
        ))
    }

    /// Lists the election entries in `dir`, ordered by `sequence`, with the contenders of other
    /// implementations (foreign children that carry the service's order: on ZooKeeper a
    /// sequence suffix, on etcd a lease) apart, and the names of every other child (foreign
    /// nodes) apart. A missing `dir` is an empty listing.
    ///
    /// One request to the service, whatever the number of entries, plus (where the service does
    /// not list data, as ZooKeeper) one read per foreign contender: their data and owner are in
    /// the listing. A contender gone between the two is left out.
    async fn list(&self, dir: &ElectionPath) -> Result<Listing, BackendError>;

    /// Like [`list`](Self::list), and arms a one-shot notification that fires on the next change
    /// of the set of entries in `dir` (an entry added or removed, `dir` created or deleted).
    /// Used by observers, never by candidates (it wakes on every change).
    async fn list_and_watch(
        &self,
        dir: &ElectionPath,
    ) -> Result<(Listing, Notification), BackendError>;

    /// Arms a one-shot notification that fires when the entry `name` in `dir` is deleted (or its
    /// session ends). Data changes do not fire it. When the entry does not exist at the time the
    /// watch is set, returns [`Watch::Gone`] at once: the caller never waits on an entry that
    /// vanished between its listing and its watch. When a node of that name exists but is not a
    /// live session's entry (a persistent node, or one owned by another session than the one
    /// its name claims: a look-alike, restored or copied by a tool), returns
    /// [`Watch::NotAnEntry`] (on ZooKeeper, from the `exists` stat's `ephemeralOwner`): it would
    /// never go away, and nobody behind it would ever lead.
    ///
    /// The notification resolves `Ok(())` when the entry is gone, and
    /// `Err(`[`SessionGone`](crate::ErrorKind::SessionGone)`)` when this session ends first. It
    /// survives a reconnect within the session (a deletion made meanwhile is reported then).
    async fn watch_gone(&self, dir: &ElectionPath, name: &str) -> Result<Watch, BackendError>;

    /// Reads the entry `name` in `dir`; `None` when it does not exist.
    async fn read(&self, dir: &ElectionPath, name: &str)
        -> Result<Option<EntryInfo>, BackendError>;

    /// Reads our entry `own` in `dir` (as [`read`](Self::read)) and, with `note`, the
    /// election's leader note (see [`note_leader`](Self::note_leader)): how a candidate confirms
    /// its claim once its predecessor left. Where the service can, in one request (ZooKeeper's
    /// `multiRead`), so that it costs one round trip.
    ///
    /// The default reads the entry alone, and no note.
    async fn confirm(
        &self,
        dir: &ElectionPath,
        own: &str,
        note: bool,
    ) -> Result<Confirmation, BackendError> {
        let _ = note;
        Ok(Confirmation {
            own: self.read(dir, own).await?,
            leader_note: None,
        })
    }

    /// Whether this backend keeps leader notes ([`note_leader`](Self::note_leader)) and
    /// confirms in one request ([`confirm`](Self::confirm)); `false` by default. Without them,
    /// a candidate whose predecessor was not the head of its last listing lists the election
    /// to confirm its claim, and no leader writes a note.
    fn keeps_leader_notes(&self) -> bool {
        false
    }

    /// Records, where the election's other candidates can read it, that our entry `name` in
    /// `dir` leads now: a hint, written after the claim was verified, that says "this entry
    /// was the head at some instant". A successor whose predecessor was that entry then needs
    /// no listing to know that nothing is left ahead of it (entries never sort ahead of one
    /// created before them). Best effort: a failure is the caller's to ignore.
    ///
    /// The default records nothing (and [`confirm`](Self::confirm) then reads no note).
    /// ZooKeeper keeps it as the election directory's data, and never overwrites data that is
    /// not such a note.
    async fn note_leader(&self, dir: &ElectionPath, name: &str) -> Result<(), BackendError> {
        let _ = (dir, name);
        Ok(())
    }

    /// Deletes the entry `name` in `dir`. Fails with [`NotFound`](crate::ErrorKind::NotFound)
    /// when it does not exist.
    async fn delete(&self, dir: &ElectionPath, name: &str) -> Result<(), BackendError>;

    /// Closes the session: the service deletes its entries now, and the state becomes
    /// [`SessionState::Closed`]. Idempotent; best effort when the service is unreachable (the
    /// session then expires by itself).
    ///
    /// Dropping the last reference to a session without closing it is up to the backend:
    /// ZooKeeper's client closes the session; the in-memory backend treats it as a crashed
    /// client and lets the session expire.
    async fn close(&self);
}

/// A one-shot notification armed by [`BackendSession::watch_gone`] or
/// [`BackendSession::list_and_watch`]. Dropping it disarms it on this side.
pub type Notification = Pin<Box<dyn Future<Output = Result<(), BackendError>> + Send + 'static>>;

/// The result of arming a [`BackendSession::watch_gone`].
pub enum Watch {
    /// The entry did not exist when the watch was set.
    Gone,
    /// The entry existed; the notification fires when it is gone.
    Armed(Notification),
    /// A node of that name exists, but it is not an entry of a live session (persistent, or
    /// owned by another session than its name claims): a look-alike, to be ignored.
    NotAnEntry,
}

impl fmt::Debug for Watch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Gone => "Gone",
            Self::Armed(_) => "Armed(..)",
            Self::NotAnEntry => "NotAnEntry",
        })
    }
}

/// A backend session id. Shown in hex, as ZooKeeper shows it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({:#x})", self.0)
    }
}

/// A session's state as its client sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionState {
    /// Replies are coming.
    Connected,
    /// No reply for a while; the session may still be alive on the service, which ends it no
    /// earlier than `last_contact + timeout`.
    Disconnected {
        /// A lower bound on when the service last heard from this client: the send time of the
        /// latest request it answered (the reply time can be later than the truth by a round
        /// trip).
        last_contact: Instant,
    },
    /// The service ended the session: its entries are gone.
    Expired,
    /// The session was closed by this client (or failed for good, such as on an authentication
    /// failure): its entries are gone or going.
    Closed,
}

impl SessionState {
    /// `true` for [`Expired`](Self::Expired) and [`Closed`](Self::Closed): the session is over.
    pub fn is_terminal(&self) -> bool {
        matches!(self, Self::Expired | Self::Closed)
    }
}

/// A unique per-attempt marker put into an entry's name, so that an entry whose create reply was
/// lost can be found again (Curator's "protected" create). 16 lowercase hex digits.
///
/// Held inline (no allocation): a listing of a thousand entries parses a thousand of them.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Marker([u8; Marker::LEN]);

impl Marker {
    /// Length of a marker in characters.
    pub const LEN: usize = 16;

    /// A marker from 64 bits.
    pub fn from_bits(bits: u64) -> Self {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; Self::LEN];
        for (i, b) in out.iter_mut().enumerate() {
            *b = HEX[((bits >> (60 - 4 * i)) & 0xf) as usize];
        }
        Self(out)
    }

    /// Parses a marker as found in an entry name; `None` unless it is 16 lowercase hex digits.
    pub fn parse(s: &str) -> Option<Self> {
        let bytes: [u8; Self::LEN] = s.as_bytes().try_into().ok()?;
        bytes
            .iter()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            .then_some(Self(bytes))
    }

    /// The marker as text.
    pub fn as_str(&self) -> &str {
        // Only ever lowercase hex digits (see `from_bits` and `parse`).
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Display for Marker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Marker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Marker({})", self.as_str())
    }
}

/// The term token (fencing token) of a leadership term: strictly increases with each new term of
/// an election path, across sessions, restarts and re-creation of the path, as long as the
/// service keeps its data (a ZooKeeper rebuilt from nothing starts its zxids again; a candidate
/// that sees a token go back reports [`Notice::TokenWentBack`](crate::Notice::TokenWentBack)).
/// Downstream systems reject writes that carry a token older than one they have seen.
///
/// On ZooKeeper it is the `czxid` of the leader's entry; on etcd its create revision.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FencingToken(pub u64);

impl FencingToken {
    /// The token as a number, for sending downstream.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for FencingToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Debug for FencingToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FencingToken({})", self.0)
    }
}

/// One election entry as a listing reports it: enough to order the queue and verify ownership,
/// without reading any entry's data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedEntry {
    /// The backend's name for the entry, used to address it in later calls.
    pub name: String,
    /// Its place in the directory's order (ZooKeeper's sequence suffix).
    pub sequence: u64,
    /// The session that owns it.
    pub owner: SessionId,
    /// The marker it was created with.
    pub marker: Marker,
}

/// A contender of another election implementation (Curator, kazoo, ...) as a listing reports
/// it: a foreign child that the service orders among our entries. On ZooKeeper, a child whose
/// name ends in a ZooKeeper sequence ([`zookeeper_sequence`](crate::foreign::zookeeper_sequence));
/// on etcd, a key attached to a lease. Which implementation it is, and what to do with it, the
/// election machine decides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedContender {
    /// The child's name.
    pub name: String,
    /// Its place in the directory's order, comparable with [`ListedEntry::sequence`]
    /// (ZooKeeper: the sequence suffix, from the parent's counter shared by every client;
    /// etcd: the key's create revision).
    pub sequence: u64,
    /// The session that owns it, as the service records it (ZooKeeper's `ephemeralOwner`, etcd's
    /// lease); `SessionId(0)` for a persistent node, which never goes away by itself.
    pub owner: SessionId,
    /// Its creation's place in the service's history (ZooKeeper's `czxid`, etcd's create
    /// revision): the token its term has.
    pub token: FencingToken,
    /// Its data as stored (Curator and kazoo write their id as UTF-8).
    pub data: Vec<u8>,
}

/// What [`BackendSession::confirm`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Confirmation {
    /// Our own entry, as [`BackendSession::read`] returns it.
    pub own: Option<EntryInfo>,
    /// The entry named by the election's leader note, when asked for and there is one.
    pub leader_note: Option<String>,
}

/// The entries of an election directory, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listing {
    /// Election entries, ascending by `sequence`.
    pub entries: Vec<ListedEntry>,
    /// Contenders of other implementations, ascending by `sequence`.
    pub contenders: Vec<ListedContender>,
    /// Names of children that are neither election entries nor contenders: ignored, never
    /// counted as candidates. Sorted; add with [`push_foreign`](Self::push_foreign), which
    /// keeps at most [`MAX_FOREIGN_NAMES`](crate::limits::MAX_FOREIGN_NAMES), each at most
    /// [`MAX_FOREIGN_NAME_LEN`](crate::limits::MAX_FOREIGN_NAME_LEN) bytes long.
    pub foreign: Vec<String>,
    /// How many more foreign children there were than [`foreign`](Self::foreign) keeps
    /// (another tenant may put thousands under the election path: they are counted, not kept).
    pub foreign_omitted: usize,
}

impl Listing {
    /// Adds the name of a foreign child: kept (cut to
    /// [`MAX_FOREIGN_NAME_LEN`](crate::limits::MAX_FOREIGN_NAME_LEN) bytes) if it is among
    /// the first [`MAX_FOREIGN_NAMES`](crate::limits::MAX_FOREIGN_NAMES) in byte order, so that
    /// the names kept do not depend on the order children are listed in; counted in
    /// [`foreign_omitted`](Self::foreign_omitted) otherwise. A name already kept is not added
    /// twice.
    pub fn push_foreign(&mut self, name: &str) {
        let name = crate::limits::foreign_name(name);
        let at = match self.foreign.binary_search(&name) {
            Ok(_) => return,
            Err(at) => at,
        };
        if at >= crate::limits::MAX_FOREIGN_NAMES {
            self.foreign_omitted += 1;
            return;
        }
        self.foreign.insert(at, name);
        if self.foreign.len() > crate::limits::MAX_FOREIGN_NAMES {
            self.foreign.pop();
            self.foreign_omitted += 1;
        }
    }

    /// Applies the limits to a listing however it was built (by any backend): foreign names
    /// as [`push_foreign`](Self::push_foreign) keeps them, and each contender's data cut to
    /// [`MAX_FOREIGN_DATA_LEN`](crate::limits::MAX_FOREIGN_DATA_LEN). Contenders themselves
    /// are all kept: the order of the queue needs them.
    pub fn bound(&mut self) {
        let sorted = self.foreign.windows(2).all(|w| w[0] < w[1]);
        let fits = self.foreign.len() <= crate::limits::MAX_FOREIGN_NAMES
            && self
                .foreign
                .iter()
                .all(|n| n.len() <= crate::limits::MAX_FOREIGN_NAME_LEN);
        if !(sorted && fits) {
            let names = std::mem::take(&mut self.foreign);
            for name in &names {
                self.push_foreign(name);
            }
        }
        for c in &mut self.contenders {
            crate::limits::cap_data(&mut c.data, crate::limits::MAX_FOREIGN_DATA_LEN);
        }
    }
}

/// A whole entry, as [`BackendSession::create`] and [`BackendSession::read`] return it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryInfo {
    /// The backend's name for the entry.
    pub name: String,
    /// Its place in the directory's order.
    pub sequence: u64,
    /// The session that owns it.
    pub owner: SessionId,
    /// The marker it was created with.
    pub marker: Marker,
    /// The token of the term this entry leads, if it ever leads.
    pub token: FencingToken,
    /// The data stored with it.
    pub data: Vec<u8>,
    /// Set only by a create, and only when the service guarantees that the directory held no
    /// other node when this entry was made, and so none is ahead of it (on ZooKeeper: sequence
    /// number 0, the first child the directory ever had). The candidate then leads on the
    /// create's reply, with no listing, and records no leader note (no successor ever needs
    /// one naming it: nothing of ours sorts ahead of it). `false` whenever unsure, and from
    /// every read.
    pub sole: bool,
}

impl EntryInfo {
    /// The listing view of this entry.
    pub fn listed(&self) -> ListedEntry {
        ListedEntry {
            name: self.name.clone(),
            sequence: self.sequence,
            owner: self.owner,
            marker: self.marker.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_round_trips_and_rejects_other_text() {
        let m = Marker::from_bits(0xdead_beef);
        assert_eq!(m.as_str(), "00000000deadbeef");
        assert_eq!(Marker::parse(m.as_str()), Some(m));
        assert_eq!(Marker::parse("00000000DEADBEEF"), None);
        assert_eq!(Marker::parse("abc"), None);
        for bits in [0, 1, 0xabcd_0000_0001, u64::MAX, 0x0123_4567_89ab_cdef] {
            let m = Marker::from_bits(bits);
            assert_eq!(m.as_str(), format!("{bits:016x}"));
            assert_eq!(m.to_string(), format!("{bits:016x}"));
        }
        // Ordered as the text is.
        assert!(Marker::from_bits(0x0f) < Marker::from_bits(0xf0));
    }

    #[test]
    fn session_id_shows_hex() {
        assert_eq!(SessionId(255).to_string(), "0xff");
    }

    fn _object_safe(_: &dyn CoordinationBackend, _: &dyn BackendSession) {}
}
