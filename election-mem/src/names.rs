//! Entry names, as ZooKeeper's backend makes them: `_c_{marker}-{session:016x}-{sequence:010}`.
//! Anything else in an election directory is a foreign node.

use election_core::{Marker, SessionId};

/// The name of an entry before the service appends its sequence number.
pub(crate) fn entry_prefix(marker: &Marker, session: SessionId) -> String {
    format!("_c_{marker}-{:016x}-", session.0)
}

/// Parses an entry name into marker, owner session and sequence.
pub(crate) fn parse_entry(name: &str) -> Option<(Marker, SessionId, u64)> {
    let rest = name.strip_prefix("_c_")?;
    let (marker, rest) = rest.split_once('-')?;
    let (session, seq) = rest.split_once('-')?;
    if session.len() != 16 || seq.len() != 10 || !seq.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let marker = Marker::parse(marker)?;
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
        assert_eq!(parse_entry(&name), Some((m, SessionId(7), 3)));
        for foreign in [
            "lock",
            "_c_x-1-2",
            "_c_000000000000002a-0000000000000007-3",
            "",
        ] {
            assert_eq!(parse_entry(foreign), None, "{foreign}");
        }
    }
}
