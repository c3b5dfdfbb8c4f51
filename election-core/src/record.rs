//! The candidate record stored as an entry's data: the candidate id and its payload, in a small
//! versioned format that tools in any language can read to learn who leads.
//!
//! # Format, version 1
//! ```text
//! byte 0      : 0x01 (format version)
//! bytes 1..3  : id length N, big-endian u16
//! bytes 3..3+N: candidate id, UTF-8
//! the rest    : payload, opaque bytes
//! ```
//! A reader must reject a version it does not know rather than guess.

use crate::limits::{MAX_ID_LEN, MAX_PAYLOAD_LEN};

const VERSION: u8 = 1;

/// A candidate's id and payload, as stored in its entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CandidateRecord {
    /// The candidate id.
    pub id: String,
    /// The payload (say, the address where the leader serves).
    pub payload: Vec<u8>,
}

/// Why entry data could not be read as a [`CandidateRecord`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// Shorter than its header says.
    #[error("record truncated")]
    Truncated,
    /// A format version this library does not know.
    #[error("unknown record version {0}")]
    UnknownVersion(u8),
    /// The id is not UTF-8, or breaks the id rules.
    #[error("record id is not a valid candidate id")]
    BadId,
    /// The payload is larger than [`MAX_PAYLOAD_LEN`]: no candidate of this library wrote it,
    /// so it is reported rather than copied.
    #[error("record payload of {len} bytes is more than the limit of {max}")]
    PayloadTooLarge {
        /// The payload's length.
        len: usize,
        /// The limit.
        max: usize,
    },
}

impl CandidateRecord {
    /// Encodes the record. The id and payload are assumed valid (the config checked them).
    pub fn encode(&self) -> Vec<u8> {
        encode(&self.id, &self.payload)
    }

    /// Decodes entry data, which may come from anyone with write access to the service: the
    /// length prefix is checked against the data, the id against the id rules, and the payload
    /// against [`MAX_PAYLOAD_LEN`] before anything is copied.
    pub fn decode(data: &[u8]) -> Result<Self, RecordError> {
        let (&version, rest) = data.split_first().ok_or(RecordError::Truncated)?;
        if version != VERSION {
            return Err(RecordError::UnknownVersion(version));
        }
        if rest.len() < 2 {
            return Err(RecordError::Truncated);
        }
        let len = u16::from_be_bytes([rest[0], rest[1]]) as usize;
        let rest = &rest[2..];
        if rest.len() < len {
            return Err(RecordError::Truncated);
        }
        let id = std::str::from_utf8(&rest[..len]).map_err(|_| RecordError::BadId)?;
        if crate::limits::validate_id(id).is_err() {
            return Err(RecordError::BadId);
        }
        let payload = &rest[len..];
        if payload.len() > MAX_PAYLOAD_LEN {
            return Err(RecordError::PayloadTooLarge {
                len: payload.len(),
                max: MAX_PAYLOAD_LEN,
            });
        }
        Ok(Self {
            id: id.to_owned(),
            payload: payload.to_vec(),
        })
    }

    /// Decodes the data of an entry of ours in either form: a record, or (a candidate in a
    /// [`Compatibility`](crate::Compatibility) mode) the id alone as plain UTF-8, with no
    /// payload. The two cannot be confused: a record starts with its version byte, a control
    /// character that no valid id has. Anything else is the record's error.
    pub fn decode_entry(data: &[u8]) -> Result<Self, RecordError> {
        Self::decode(data).or_else(|e| match std::str::from_utf8(data) {
            Ok(id) if crate::limits::validate_id(id).is_ok() => Ok(Self {
                id: id.to_owned(),
                payload: Vec::new(),
            }),
            _ => Err(e),
        })
    }
}

/// The record of a listed entry of ours that was read as `info`: in either form
/// ([`CandidateRecord::decode_entry`]) when the service's owner is the live session the name
/// claims (`claimed`), as a record only otherwise: a look-alike (persistent, or owned by another
/// session) is never taken for a compatibility entry on the strength of readable text.
pub(crate) fn decode_listed(
    info: &crate::backend::EntryInfo,
    claimed: crate::backend::SessionId,
) -> Result<CandidateRecord, RecordError> {
    if info.owner == claimed && info.owner != crate::backend::SessionId(0) {
        CandidateRecord::decode_entry(&info.data)
    } else {
        CandidateRecord::decode(&info.data)
    }
}

/// The record of `id` and `payload` (see [`CandidateRecord::encode`]), without a
/// `CandidateRecord` to hold them: a candidate keeps its id and payload, and encodes its record
/// only for each create.
pub(crate) fn encode(id: &str, payload: &[u8]) -> Vec<u8> {
    let id = id.as_bytes();
    debug_assert!(id.len() <= MAX_ID_LEN && payload.len() <= MAX_PAYLOAD_LEN);
    let mut out = Vec::with_capacity(3 + id.len() + payload.len());
    out.push(VERSION);
    out.extend_from_slice(&(id.len() as u16).to_be_bytes());
    out.extend_from_slice(id);
    out.extend_from_slice(payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_compatibility_entry_holds_the_id_alone() {
        let plain = CandidateRecord::decode_entry(b"host-a").unwrap();
        assert_eq!((plain.id.as_str(), plain.payload.len()), ("host-a", 0));
        let r = CandidateRecord {
            id: "ab".into(),
            payload: vec![9],
        };
        assert_eq!(CandidateRecord::decode_entry(&r.encode()), Ok(r));
        assert!(CandidateRecord::decode_entry(b"").is_err());
        assert!(CandidateRecord::decode_entry(&[0xff, 0xfe]).is_err());
        assert!(CandidateRecord::decode_entry(&[1, 0, 9, b'x']).is_err());
    }

    #[test]
    fn layout_is_as_documented() {
        let r = CandidateRecord {
            id: "ab".into(),
            payload: vec![9],
        };
        assert_eq!(r.encode(), [1, 0, 2, b'a', b'b', 9]);
    }

    #[test]
    fn rejects_bad_data() {
        assert_eq!(CandidateRecord::decode(&[]), Err(RecordError::Truncated));
        assert_eq!(
            CandidateRecord::decode(&[2, 0, 0]),
            Err(RecordError::UnknownVersion(2))
        );
        assert_eq!(
            CandidateRecord::decode(&[1, 0, 5, b'a']),
            Err(RecordError::Truncated)
        );
        assert_eq!(CandidateRecord::decode(&[1, 0, 0]), Err(RecordError::BadId));
        assert_eq!(
            CandidateRecord::decode(&[1, 0, 1, 0xff]),
            Err(RecordError::BadId)
        );
        // A length prefix that lies (says more than there is), at the largest it can say.
        assert_eq!(
            CandidateRecord::decode(&[1, 0xff, 0xff, b'a', b'b']),
            Err(RecordError::Truncated)
        );
        // An id longer than the rules allow, though the prefix is honest.
        let mut long = vec![1, 0x01, 0x01];
        long.extend(std::iter::repeat_n(b'a', 257));
        assert_eq!(CandidateRecord::decode(&long), Err(RecordError::BadId));
        // Another tenant's oversized data.
        let mut big = vec![1, 0, 1, b'a'];
        big.resize(4 + MAX_PAYLOAD_LEN + 1, 0);
        assert_eq!(
            CandidateRecord::decode(&big),
            Err(RecordError::PayloadTooLarge {
                len: MAX_PAYLOAD_LEN + 1,
                max: MAX_PAYLOAD_LEN
            })
        );
        big.pop();
        assert_eq!(
            CandidateRecord::decode(&big).unwrap().payload.len(),
            MAX_PAYLOAD_LEN
        );
    }

    proptest! {
        #[test]
        fn round_trips(id in "[a-z0-9-]{1,64}", payload in proptest::collection::vec(any::<u8>(), 0..256)) {
            let r = CandidateRecord { id, payload };
            prop_assert_eq!(CandidateRecord::decode(&r.encode()), Ok(r));
        }
    }
}
