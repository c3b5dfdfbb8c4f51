//! How an entry is named under its election prefix: `_c_{marker}-{lease:016x}`.
//!
//! The order of entries is not in the name (etcd has no sequential keys): it is the key's create
//! revision, which the listing reads from the server.

use election_core::{Marker, SessionId};

/// The prefix of every entry name.
const PREFIX: &str = "_c_";

/// The parts of an entry's name: the marker of the attempt that created it and the lease (the
/// session) it claims to be attached to.
///
/// ```
/// use election_core::{Marker, SessionId};
/// use election_etcd::EntryName;
///
/// let name = EntryName::format(&Marker::from_bits(1), SessionId(0x694d7ab1c3e2f00a));
/// assert_eq!(name, "_c_0000000000000001-694d7ab1c3e2f00a");
/// let parsed = EntryName::parse(&name).unwrap();
/// assert_eq!(parsed.owner, SessionId(0x694d7ab1c3e2f00a));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryName {
    /// The marker of the create that made it.
    pub marker: Marker,
    /// The lease its name claims; the server's record of the lease is what `read` reports.
    pub owner: SessionId,
}

impl EntryName {
    /// The name of the entry created with `marker` on the lease `owner`.
    pub fn format(marker: &Marker, owner: SessionId) -> String {
        format!("{PREFIX}{marker}-{:016x}", owner.0)
    }

    /// Parses an entry name; `None` for any other key name (a foreign key).
    pub fn parse(name: &str) -> Option<Self> {
        let rest = name.strip_prefix(PREFIX)?;
        let (marker, owner) = rest.split_once('-')?;
        let marker = Marker::parse(marker)?;
        if owner.len() != 16
            || !owner
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return None;
        }
        let owner = u64::from_str_radix(owner, 16).ok()?;
        Some(Self {
            marker,
            owner: SessionId(owner),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_look_alikes() {
        let m = Marker::from_bits(0xabc);
        let name = EntryName::format(&m, SessionId(7));
        assert_eq!(
            EntryName::parse(&name),
            Some(EntryName {
                marker: m,
                owner: SessionId(7)
            })
        );
        for bad in [
            "",
            "_c_",
            "x_c_0000000000000abc-0000000000000007",
            "_c_0000000000000abc-7",
            "_c_0000000000000ABC-0000000000000007",
            "_c_0000000000000abc-000000000000000g",
            "_c_0000000000000abc0000000000000007",
            "_c_0000000000000abc-0000000000000007/x",
        ] {
            assert_eq!(EntryName::parse(bad), None, "{bad:?}");
        }
    }
}
