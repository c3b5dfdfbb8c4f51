//! Entry names: how an election entry's marker, owner session and sequence are spelled in a
//! znode name, and how a child name is read back (or recognised as foreign).
//!
//! # Format
//! ```text
//! _c_{marker}-{owner}-{sequence}
//! _c_0123456789abcdef-00000100a3f20001-0000000003
//! ```
//! - `_c_`: fixed tag (a "candidate" entry);
//! - `marker`: the per-attempt [`Marker`], 16 lowercase hex digits (protected create);
//! - `owner`: the creating session's id, 16 lowercase hex digits;
//! - `sequence`: appended by ZooKeeper for `EPHEMERAL_SEQUENTIAL` nodes: the parent's child
//!   version, a signed 32-bit counter written with `%010d` (up to 19 digits are accepted, for
//!   servers that use 64-bit sequences). After 2^31 creations under one parent the counter wraps
//!   to negative numbers (`-2147483648`, then `-2147483647`, ... `-000000001`): such a name is
//!   still ours, and its sequence is read as the unsigned 32-bit value, so it sorts after every
//!   positive one, in creation order.
//!
//! In a [`Compatibility`] mode the sequence follows the other implementation's separator
//! instead of `-`, so that it orders our entry by its sequence (and reads the id it holds):
//! ```text
//! _c_{marker}-{owner}-latch-{sequence}    Curator LeaderLatch
//! _c_{marker}-{owner}-lock-{sequence}     Curator InterProcessMutex / LeaderSelector
//! _c_{marker}-{owner}__lock__{sequence}   kazoo Lock / Election
//! ```
//! Such a name is ours just the same (marker and owner from the name). A stock Curator node
//! (`_c_{uuid}-latch-..`: the UUID has dashes) or kazoo node (`{32 hex}__lock__..`: no tag)
//! never reads as ours.
//!
//! Any other child name is foreign: reported apart, never counted as a candidate.

use std::fmt;

use election_core::{Compatibility, Marker, SessionId};

const TAG: &str = "_c_";
const OWNER_LEN: usize = 16;
const MIN_SEQUENCE_LEN: usize = 10;
const MAX_SEQUENCE_LEN: usize = 19;

/// The parsed name of an election entry.
///
/// ```
/// use election_zk::EntryName;
/// let name = EntryName::parse("_c_0123456789abcdef-00000100a3f20001-0000000003").unwrap();
/// assert_eq!(name.marker.as_str(), "0123456789abcdef");
/// assert_eq!(name.owner.0, 0x0000_0100_a3f2_0001);
/// assert_eq!(name.sequence, 3);
/// assert_eq!(name.to_string(), "_c_0123456789abcdef-00000100a3f20001-0000000003");
/// assert!(EntryName::parse("lock-0000000001").is_none());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryName {
    /// The marker the entry was created with.
    pub marker: Marker,
    /// The session that created the entry (as spelled in the name; the znode's `ephemeralOwner`
    /// is the authority).
    pub owner: SessionId,
    /// The sequence ZooKeeper appended.
    pub sequence: u64,
    /// The compatibility mode the name is shaped for; `None`: our own shape.
    pub compatibility: Option<Compatibility>,
}

const MODES: [Compatibility; 3] = [
    Compatibility::CuratorLatch,
    Compatibility::CuratorLock,
    Compatibility::Kazoo,
];

impl EntryName {
    /// The prefix given to ZooKeeper for a sequential create; ZooKeeper appends the sequence.
    pub fn prefix(marker: &Marker, owner: SessionId) -> String {
        Self::prefix_in(marker, owner, None)
    }

    /// The prefix of an entry shaped for `mode` (our own shape for `None`).
    pub fn prefix_in(marker: &Marker, owner: SessionId, mode: Option<Compatibility>) -> String {
        let separator = mode.map_or("-", Compatibility::separator);
        format!("{TAG}{marker}-{:016x}{separator}", owner.0)
    }

    /// Reads a child name; `None` when it is not an election entry (a foreign node).
    pub fn parse(name: &str) -> Option<Self> {
        let rest = name.strip_prefix(TAG)?;
        let marker = Marker::parse(rest.get(..Marker::LEN)?)?;
        let rest = rest[Marker::LEN..].strip_prefix('-')?;
        let owner = rest.get(..OWNER_LEN)?;
        if !owner
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return None;
        }
        let owner = u64::from_str_radix(owner, 16).ok()?;
        let rest = &rest[OWNER_LEN..];
        // The compatibility separators first: `-latch-` and `-lock-` also start with `-`.
        let (compatibility, sequence) = match MODES
            .iter()
            .find_map(|m| rest.strip_prefix(m.separator()).map(|s| (Some(*m), s)))
        {
            Some(found) => found,
            None => (None, rest.strip_prefix('-')?),
        };
        let sequence = parse_sequence(sequence)?;
        Some(Self {
            marker,
            owner: SessionId(owner),
            sequence,
            compatibility,
        })
    }
}

/// Reads ZooKeeper's `%010d` sequence: 10 to 19 digits, or a wrapped (negative) 32-bit counter
/// of width 10 or 11 with its sign, read as the unsigned 32-bit value it wrapped to.
fn parse_sequence(text: &str) -> Option<u64> {
    if let Some(digits) = text.strip_prefix('-') {
        if !(MIN_SEQUENCE_LEN - 1..=MIN_SEQUENCE_LEN).contains(&digits.len())
            || !digits.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let value: i64 = text.parse().ok()?;
        let wrapped = i32::try_from(value).ok().filter(|v| *v < 0)?;
        return Some(u64::from(wrapped as u32));
    }
    if !(MIN_SEQUENCE_LEN..=MAX_SEQUENCE_LEN).contains(&text.len())
        || !text.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    text.parse().ok()
}

/// ZooKeeper's spelling of `sequence`: its counter is a signed 32-bit number, so a wrapped one
/// (above `i32::MAX`) is written negative; a 64-bit sequence as it is.
fn spell_sequence(sequence: u64) -> String {
    match u32::try_from(sequence) {
        Ok(v) => format!("{:010}", v as i32),
        Err(_) => format!("{sequence:010}"),
    }
}

impl fmt::Display for EntryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}",
            Self::prefix_in(&self.marker, self.owner, self.compatibility),
            spell_sequence(self.sequence)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_the_documented_example() {
        let n = EntryName::parse("_c_0123456789abcdef-00000100a3f20001-0000000003").unwrap();
        assert_eq!(n.marker, Marker::parse("0123456789abcdef").unwrap());
        assert_eq!(n.owner, SessionId(0x100_a3f2_0001));
        assert_eq!(n.sequence, 3);
    }

    #[test]
    fn prefix_plus_ten_digits_is_an_entry() {
        let m = Marker::from_bits(7);
        let name = format!(
            "{}{}",
            EntryName::prefix(&m, SessionId(u64::MAX)),
            "0000000042"
        );
        let n = EntryName::parse(&name).unwrap();
        assert_eq!(
            (n.marker, n.owner, n.sequence),
            (m, SessionId(u64::MAX), 42)
        );
    }

    #[test]
    fn accepts_a_64_bit_sequence() {
        let n = EntryName::parse("_c_0123456789abcdef-0000000000000001-2147483648000").unwrap();
        assert_eq!(n.sequence, 2_147_483_648_000);
    }

    #[test]
    fn a_wrapped_sequence_is_ours_and_sorts_after_the_positive_ones() {
        let at = |seq: &str| {
            EntryName::parse(&format!("_c_0123456789abcdef-0000000000000001-{seq}"))
                .unwrap_or_else(|| panic!("{seq} is ours"))
        };
        // ZooKeeper's `%010d` after 2^31 creations: the counter wraps to i32::MIN and climbs.
        let created = [
            "2147483646",
            "2147483647",
            "-2147483648",
            "-2147483647",
            "-000000002",
            "-000000001",
        ];
        let sequences: Vec<u64> = created.iter().map(|s| at(s).sequence).collect();
        assert!(
            sequences.windows(2).all(|w| w[0] < w[1]),
            "creation order: {sequences:?}"
        );
        assert_eq!(at("-2147483648").sequence, 1 << 31);
        assert_eq!(at("-000000001").sequence, u64::from(u32::MAX));
        for text in created {
            let name = at(text);
            assert!(name.to_string().ends_with(&format!("-{text}")), "{name}");
            assert_eq!(EntryName::parse(&name.to_string()), Some(name));
        }
    }

    #[test]
    fn other_names_are_foreign() {
        for name in [
            "",
            "_c_",
            "lock-0000000001",
            "_c_0123456789abcdef-00000100a3f20001-",
            "_c_0123456789abcdef-00000100a3f20001-000000003",
            // A negative sequence has 9 or 10 digits after its sign (`%010d`).
            "_c_0123456789abcdef-00000100a3f20001--00000000001",
            "_c_0123456789abcdef-00000100a3f20001-00000000003x",
            "_c_0123456789abcdef-00000100a3f20001--00000001",
            "_c_0123456789abcdef-00000100a3f20001--0000000000",
            "_c_0123456789abcdef-00000100a3f20001--2147483649",
            "_c_0123456789abcdef-00000100a3f20001-+000000001",
            "_c_0123456789ABCDEF-00000100a3f20001-0000000003",
            "_c_0123456789abcdef-00000100A3F20001-0000000003",
            "_c_0123456789abcdef_00000100a3f20001-0000000003",
            "_c_0123456789abcdef-00000100a3f2000-0000000003",
            "_c_0123456789abcdef-00000100a3f20001-00000000000000000001",
            "x_c_0123456789abcdef-00000100a3f20001-0000000003",
            "_c_0123456789abcdé-00000100a3f20001-0000000003",
            "_c_0123456789abcdef-00000100a3f20001-latch0000000003",
            "_c_0123456789abcdef-00000100a3f20001__lock0000000003",
            "_c_0123456789abcdef-00000100a3f20001-lock-000000003",
            // Stock Curator and kazoo nodes.
            "_c_5d0e6b1a-3c2f-4b9e-9f5a-6a7c1e2d3b4f-latch-0000000003",
            "_c_5d0e6b1a-3c2f-4b9e-9f5a-6a7c1e2d3b4f-lock-0000000003",
            "9f1c0e4a5b6d4e2f8a7b3c1d0e9f8a7b__lock__0000000005",
        ] {
            assert_eq!(EntryName::parse(name), None, "{name:?}");
        }
    }

    #[test]
    fn compatibility_shapes_are_ours_and_read_as_the_peers_read_them() {
        let m = Marker::parse("0123456789abcdef").unwrap();
        let owner = SessionId(0x100_a3f2_0001);
        for (mode, text) in [
            (
                Compatibility::CuratorLatch,
                "_c_0123456789abcdef-00000100a3f20001-latch-0000000007",
            ),
            (
                Compatibility::CuratorLock,
                "_c_0123456789abcdef-00000100a3f20001-lock-0000000007",
            ),
            (
                Compatibility::Kazoo,
                "_c_0123456789abcdef-00000100a3f20001__lock__0000000007",
            ),
        ] {
            assert_eq!(
                format!("{}0000000007", EntryName::prefix_in(&m, owner, Some(mode))),
                text
            );
            let n = EntryName::parse(text).unwrap_or_else(|| panic!("{text} is ours"));
            assert_eq!((&n.marker, n.owner, n.sequence), (&m, owner, 7));
            assert_eq!(n.compatibility, Some(mode));
            assert_eq!(n.to_string(), text);
            // The peer's own rules: Curator sorts by the text after the last `latch-`/`lock-`,
            // kazoo matches `__lock__` + 10 digits at the end; both see sequence 7.
            let kind = election_core::Implementation::of_foreign(text);
            assert_eq!(kind, mode.implementation(), "{text}");
            assert_eq!(election_core::foreign::zookeeper_sequence(text), Some(7));
        }
    }

    proptest! {
        #[test]
        fn round_trips(marker in any::<u64>(), owner in any::<u64>(), sequence in 0u64..=i32::MAX as u64, mode in 0usize..4) {
            let compatibility = MODES.get(mode).copied();
            let n = EntryName { marker: Marker::from_bits(marker), owner: SessionId(owner), sequence, compatibility };
            let text = n.to_string();
            let separator = compatibility.map_or(1, |m| m.separator().len());
            prop_assert_eq!(text.len(), 3 + 16 + 1 + 16 + separator + 10);
            prop_assert_eq!(EntryName::parse(&text), Some(n));
        }

        #[test]
        fn never_panics(name in "\\PC{0,64}") {
            let _ = EntryName::parse(&name);
        }
    }
}
