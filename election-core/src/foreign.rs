//! Contenders of other election implementations in an election directory (Curator's
//! `LeaderLatch`, `LeaderSelector` and `InterProcessMutex`, kazoo's `Election` and `Lock`): how
//! their names are recognised, which implementation a name looks like, and how their id is shown.
//!
//! A ZooKeeper sequence counter belongs to the parent node and is shared by every client that
//! creates under it, so a foreign sequential node's suffix orders it among our entries. Stock
//! Curator and kazoo do not order *our* entries, though: Curator sorts a child without its
//! `latch-`/`lock-` marker after all of its own, and kazoo ignores every child without
//! `__lock__`. Whatever our place, such a contender leads as soon as it is first among its own
//! kind, so the election machine treats it as ahead of every entry of ours (see
//! [`Implementation::orders_ours`]), unless the candidate runs in the [`Compatibility`] mode of
//! that implementation: our entries are then named in its shape, it orders them by sequence,
//! and we order its contenders by sequence among ours.
//!
//! Name shapes (ZooKeeper appends the 10-digit sequence):
//! ```text
//! _c_5d0e6b1a-3c2f-4b9e-9f5a-6a7c1e2d3b4f-latch-0000000003   Curator LeaderLatch
//! _c_5d0e6b1a-3c2f-4b9e-9f5a-6a7c1e2d3b4f-lock-0000000004    Curator InterProcessMutex / LeaderSelector
//! 9f1c0e4a5b6d4e2f8a7b3c1d0e9f8a7b__lock__0000000005          kazoo Lock / Election
//! ```

use std::fmt;
use std::sync::Arc;

use crate::backend::{ListedContender, ListedEntry, Listing, SessionId};
use crate::state::{ForeignContender, LeaderInfo};

/// Which election implementation an entry or a foreign contender looks like, by its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Implementation {
    /// One of ours: an `election` candidate's entry.
    Election,
    /// Curator's `LeaderLatch` (`..latch-{seq}`).
    CuratorLatch,
    /// Curator's `InterProcessMutex` or `LeaderSelector` (`..lock-{seq}`).
    CuratorLock,
    /// kazoo's `Lock` or `Election` (`..__lock__{seq}`).
    Kazoo,
    /// A sequential node of some other implementation.
    Unknown,
}

impl Implementation {
    /// Which implementation the foreign child `name` looks like. Only the text before the
    /// sequence is looked at: `..__lock__` is kazoo, `..latch-` Curator's latch, `..lock-`
    /// Curator's lock, anything else unknown.
    pub fn of_foreign(name: &str) -> Self {
        let Some((prefix, _)) = split_sequence(name) else {
            return Self::Unknown;
        };
        if prefix.ends_with("__lock__") {
            Self::Kazoo
        } else if prefix.ends_with("latch-") {
            Self::CuratorLatch
        } else if prefix.ends_with("lock-") {
            Self::CuratorLock
        } else {
            Self::Unknown
        }
    }

    /// Whether a contender of this implementation orders our entries among its own by their
    /// sequence. Stock Curator and kazoo do not (they sort ours last, or ignore them), so a
    /// contender of theirs leads whenever it is first among its own kind: ours must treat it as
    /// ahead of every entry of ours, whatever the sequences say.
    pub fn orders_ours(self) -> bool {
        matches!(self, Self::Election)
    }
}

/// A compatibility mode: our entries are named (and hold their id) so that one other
/// implementation on the same path orders them by their ZooKeeper sequence among its own nodes
/// and reads their id, and our candidates order that implementation's contenders by sequence
/// among ours. For a rolling migration from that implementation; see `docs/migrating.md`.
///
/// In every mode the entry's data is the candidate id as plain UTF-8 (what the other
/// implementation reads as a participant's id), so no payload is offered: a candidate with a
/// payload and a compatibility mode is a [`ConfigError`](crate::ConfigError). Our own
/// guarantees stay: the marker and the session are in the name (a create whose reply is lost
/// is found again), ownership is checked by the node's `ephemeralOwner`, and the token is the
/// node's `czxid`. ZooKeeper only: other backends refuse the create with
/// [`ErrorKind::Invalid`](crate::ErrorKind::Invalid).
///
/// Name shapes (ZooKeeper appends the 10-digit sequence):
/// ```text
/// _c_{marker}-{session:016x}-latch-0000000007   CuratorLatch (LeaderLatch sorts by the text after `latch-`)
/// _c_{marker}-{session:016x}-lock-0000000007    CuratorLock (InterProcessMutex, LeaderSelector: after `lock-`)
/// _c_{marker}-{session:016x}__lock__0000000007  Kazoo (Lock, Election: `__lock__` + 10 digits at the end)
/// ```
/// The kazoo shape keeps our `_c_` tag rather than kazoo's bare 32 hex digits: a stock kazoo
/// node (`uuid4().hex` + `__lock__`) would otherwise read as a marker and a session of ours.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Compatibility {
    /// Curator's `LeaderLatch`.
    CuratorLatch,
    /// Curator's `InterProcessMutex` and `LeaderSelector` (the Maxwell HA patch).
    CuratorLock,
    /// kazoo's `Lock` and `Election`.
    Kazoo,
}

impl Compatibility {
    /// The implementation whose names this mode takes.
    pub fn implementation(self) -> Implementation {
        match self {
            Self::CuratorLatch => Implementation::CuratorLatch,
            Self::CuratorLock => Implementation::CuratorLock,
            Self::Kazoo => Implementation::Kazoo,
        }
    }

    /// What ends the name before the sequence: `-latch-`, `-lock-` or `__lock__`.
    pub fn separator(self) -> &'static str {
        match self {
            Self::CuratorLatch => "-latch-",
            Self::CuratorLock => "-lock-",
            Self::Kazoo => "__lock__",
        }
    }

    /// The mode named as on the command line: `curator-latch`, `curator-lock`, `kazoo`.
    pub fn name(self) -> &'static str {
        match self {
            Self::CuratorLatch => "curator-latch",
            Self::CuratorLock => "curator-lock",
            Self::Kazoo => "kazoo",
        }
    }
}

impl fmt::Display for Compatibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Compatibility {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "curator-latch" => Ok(Self::CuratorLatch),
            "curator-lock" => Ok(Self::CuratorLock),
            "kazoo" => Ok(Self::Kazoo),
            other => Err(format!(
                "unknown compatibility mode {other:?}: expected curator-latch, curator-lock or kazoo"
            )),
        }
    }
}

impl fmt::Display for Implementation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Election => "election",
            Self::CuratorLatch => "Curator LeaderLatch",
            Self::CuratorLock => "Curator lock (InterProcessMutex, LeaderSelector)",
            Self::Kazoo => "kazoo lock (Lock, Election)",
            Self::Unknown => "unknown implementation",
        })
    }
}

/// The ZooKeeper sequence a foreign child's name ends with (`%010d`, as ZooKeeper appends it
/// to an `EPHEMERAL_SEQUENTIAL` or `PERSISTENT_SEQUENTIAL` node); `None` for a name without one.
///
/// A counter that wrapped past 2^31 is written negative; it is read as the unsigned 32-bit
/// value it wrapped to, so it sorts after the positive ones, as our own entries' sequences do.
/// The sign is recognised when it follows the implementation's separator (`latch-`, `lock-`,
/// `__lock__`), or as the first of the last 10 characters.
///
/// ```
/// use election_core::foreign::zookeeper_sequence;
/// assert_eq!(zookeeper_sequence("_c_5d0e6b1a-latch-0000000003"), Some(3));
/// assert_eq!(zookeeper_sequence("9f1c0e4a__lock__0000000012"), Some(12));
/// assert_eq!(zookeeper_sequence("_c_5d0e6b1a-lock--000000001"), Some(u64::from(u32::MAX)));
/// assert_eq!(zookeeper_sequence("config"), None);
/// assert_eq!(zookeeper_sequence("node-123"), None);
/// ```
pub fn zookeeper_sequence(name: &str) -> Option<u64> {
    split_sequence(name).map(|(_, seq)| seq)
}

const SEQ_LEN: usize = 10;

/// Splits a name into the text before its sequence and the sequence.
fn split_sequence(name: &str) -> Option<(&str, u64)> {
    let at = name.len().checked_sub(SEQ_LEN)?;
    // Not a char boundary: the tail is not ASCII, so no sequence.
    let (head, tail) = (name.get(..at)?, name.get(at..)?);
    if tail.bytes().all(|b| b.is_ascii_digit()) {
        // `-` + 10 digits after a known separator: a wrapped counter of 10-digit magnitude.
        if let Some(before) = head.strip_suffix('-') {
            if ["latch-", "lock-", "__lock__"]
                .iter()
                .any(|sep| before.ends_with(sep))
            {
                let value: i64 = tail.parse().ok()?;
                let wrapped = i32::try_from(-value).ok().filter(|v| *v < 0)?;
                return Some((before, u64::from(wrapped as u32)));
            }
        }
        let value: u64 = tail.parse().ok()?;
        return Some((head, value));
    }
    // `-` + 9 digits: a wrapped counter of smaller magnitude.
    let digits = tail.strip_prefix('-')?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let value: i64 = digits.parse().ok()?;
    let wrapped = i32::try_from(-value).ok().filter(|v| *v < 0)?;
    Some((head, u64::from(wrapped as u32)))
}

/// How a foreign contender's id is shown: its data as plain UTF-8 (Curator and kazoo write the
/// id so), or `<N bytes, not UTF-8>`. Shown only, never trusted: nothing is decided by it.
pub fn foreign_id(data: &[u8]) -> String {
    match std::str::from_utf8(data) {
        Ok(text) => text.to_owned(),
        Err(_) => format!("<{} bytes, not UTF-8>", data.len()),
    }
}

/// One place in the queue as candidates of ours see it.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Slot<'a> {
    Ours(&'a ListedEntry),
    Foreign(&'a ListedContender, Implementation),
}

impl<'a> Slot<'a> {
    pub(crate) fn name(&self) -> &'a str {
        match self {
            Self::Ours(e) => &e.name,
            Self::Foreign(c, _) => &c.name,
        }
    }

    pub(crate) fn owner(&self) -> SessionId {
        match self {
            Self::Ours(e) => e.owner,
            Self::Foreign(c, _) => c.owner,
        }
    }

    pub(crate) fn is_foreign(&self) -> bool {
        matches!(self, Self::Foreign(..))
    }
}

/// The queue as candidates of ours see it: the listing's entries and its live foreign
/// contenders, in the order that keeps every implementation on the path from leading beside
/// another of ours. A contender whose implementation orders our entries (the implementation
/// whose names ours take, `compatible`) is ordered by its sequence among ours; any other is
/// ahead of every entry of ours (it leads whenever it is first among its own kind), in sequence
/// order. A persistent contender (no owner) would never go away: it is left out, as a
/// look-alike is.
pub(crate) fn queue(listing: &Listing, compatible: Option<Implementation>) -> Vec<Slot<'_>> {
    let mut ahead = Vec::new();
    let mut merged: Vec<(u64, Slot<'_>)> = listing
        .entries
        .iter()
        .map(|e| (e.sequence, Slot::Ours(e)))
        .collect();
    for c in &listing.contenders {
        if c.owner == SessionId(0) {
            continue;
        }
        let kind = Implementation::of_foreign(&c.name);
        if Some(kind) == compatible || kind.orders_ours() {
            merged.push((c.sequence, Slot::Foreign(c, kind)));
        } else {
            ahead.push((c.sequence, Slot::Foreign(c, kind)));
        }
    }
    ahead.sort_by(|a, b| (a.0, a.1.name()).cmp(&(b.0, b.1.name())));
    merged.sort_by(|a, b| (a.0, a.1.name()).cmp(&(b.0, b.1.name())));
    ahead.into_iter().chain(merged).map(|(_, s)| s).collect()
}

/// The live foreign contenders of a queue, as a user sees them, in queue order.
pub(crate) fn contenders(queue: &[Slot<'_>]) -> Vec<ForeignContender> {
    queue
        .iter()
        .filter_map(|slot| match slot {
            Slot::Foreign(c, kind) => Some(ForeignContender {
                name: c.name.clone(),
                implementation: *kind,
                id: foreign_id(&c.data),
                session: c.owner,
                sequence: c.sequence,
            }),
            Slot::Ours(_) => None,
        })
        .collect()
}

/// A foreign contender at the head, as the leader.
pub(crate) fn leader_of(c: &ListedContender, kind: Implementation) -> LeaderInfo {
    LeaderInfo {
        id: foreign_id(&c.data),
        implementation: kind,
        payload: Arc::from(c.data.as_slice()),
        token: c.token,
        session: c.owner,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn recognises_the_three_shapes() {
        let cases = [
            (
                "_c_5d0e6b1a-3c2f-4b9e-9f5a-6a7c1e2d3b4f-latch-0000000003",
                Implementation::CuratorLatch,
                3,
            ),
            (
                "_c_5d0e6b1a-3c2f-4b9e-9f5a-6a7c1e2d3b4f-lock-0000000004",
                Implementation::CuratorLock,
                4,
            ),
            (
                "9f1c0e4a5b6d4e2f8a7b3c1d0e9f8a7b__lock__0000000005",
                Implementation::Kazoo,
                5,
            ),
            ("lock-0000000006", Implementation::CuratorLock, 6),
            ("member_0000000007", Implementation::Unknown, 7),
        ];
        for (name, kind, seq) in cases {
            assert_eq!(Implementation::of_foreign(name), kind, "{name}");
            assert_eq!(zookeeper_sequence(name), Some(seq), "{name}");
        }
    }

    #[test]
    fn names_without_a_sequence_are_not_contenders() {
        for name in [
            "",
            "config",
            "node-123",
            "x-00000000a1",
            "latch-",
            "12345678",
        ] {
            assert_eq!(zookeeper_sequence(name), None, "{name:?}");
        }
    }

    #[test]
    fn wrapped_counters_sort_after_positive_ones() {
        let created = [
            "x__lock__2147483647",
            "x__lock__-2147483648",
            "x__lock__-1500000000",
            "x__lock__-000000002",
            "x__lock__-000000001",
        ];
        let seqs: Vec<u64> = created
            .iter()
            .map(|n| zookeeper_sequence(n).unwrap())
            .collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
        assert_eq!(
            Implementation::of_foreign(created[1]),
            Implementation::Kazoo
        );
        assert_eq!(
            Implementation::of_foreign("_c_u-latch--000000001"),
            Implementation::CuratorLatch
        );
    }

    #[test]
    fn ids_are_utf8_or_shown_as_unreadable() {
        assert_eq!(foreign_id(b"host-a"), "host-a");
        assert_eq!(foreign_id(&[0xff, 0xfe, 0]), "<3 bytes, not UTF-8>");
        assert!(!Implementation::CuratorLatch.orders_ours());
        assert!(Implementation::Election.orders_ours());
    }

    proptest! {
        #[test]
        fn never_panics(name in "\\PC{0,40}", data in proptest::collection::vec(any::<u8>(), 0..16)) {
            let _ = Implementation::of_foreign(&name);
            let _ = zookeeper_sequence(&name);
            let _ = foreign_id(&data);
        }
    }
}
