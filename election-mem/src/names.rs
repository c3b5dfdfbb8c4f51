//! Entry names, as ZooKeeper's backend makes them: `_c_{marker}-{session:016x}-{sequence:010}`,
//! or in a [`Compatibility`] mode `_c_{marker}-{session:016x}{separator}{sequence:010}` with
//! the other implementation's separator (`-latch-`, `-lock-`, `__lock__`). Anything else in an
//! election directory is a foreign node (a contender when it ends in a sequence).

use election_core::{Compatibility, Marker, SessionId};

const MODES: [Compatibility; 3] = [
    Compatibility::CuratorLatch,
    Compatibility::CuratorLock,
    Compatibility::Kazoo,
];

/// The name of an entry before the service appends its sequence number.
pub(crate) fn entry_prefix(marker: &Marker, session: SessionId) -> String {
    entry_prefix_in(marker, session, None)
}

/// The name of an entry shaped for `mode` (our own shape for `None`), before its sequence.
pub(crate) fn entry_prefix_in(
    marker: &Marker,
    session: SessionId,
    mode: Option<Compatibility>,
) -> String {
    let separator = mode.map_or("-", Compatibility::separator);
    format!("_c_{marker}-{:016x}{separator}", session.0)
}

/// Parses an entry name (either shape) into marker, owner session and sequence.
pub(crate) fn parse_entry(name: &str) -> Option<(Marker, SessionId, u64)> {
    let rest = name.strip_prefix("_c_")?;
    let marker = Marker::parse(rest.get(..Marker::LEN)?)?;
    let rest = rest[Marker::LEN..].strip_prefix('-')?;
    let session = rest.get(..16)?;
    if !session.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let rest = &rest[16..];
    let seq = MODES
        .iter()
        .find_map(|m| rest.strip_prefix(m.separator()))
        .or_else(|| rest.strip_prefix('-'))?;
    if seq.len() != 10 || !seq.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let session = u64::from_str_radix(session, 16).ok()?;
    Some((marker, SessionId(session), seq.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_foreign_names() {
        let m = Marker::from_bits(42);
        let name = format!("{}{:010}", entry_prefix(&m, SessionId(7)), 3);
        assert_eq!(parse_entry(&name), Some((m.clone(), SessionId(7), 3)));
        for mode in MODES {
            let name = format!("{}{:010}", entry_prefix_in(&m, SessionId(7), Some(mode)), 3);
            assert_eq!(
                parse_entry(&name),
                Some((m.clone(), SessionId(7), 3)),
                "{name}"
            );
        }
        for foreign in [
            "lock",
            "_c_x-1-2",
            "_c_000000000000002a-0000000000000007-3",
            "",
            "_c_5d0e6b1a-3c2f-4b9e-9f5a-6a7c1e2d3b4f-latch-0000000003",
            "9f1c0e4a5b6d4e2f8a7b3c1d0e9f8a7b__lock__0000000005",
        ] {
            assert_eq!(parse_entry(foreign), None, "{foreign}");
        }
    }
}
