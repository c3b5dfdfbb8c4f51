//! The limits on what a candidate may carry, and the check of a candidate id: used by the
//! builder at the boundary, by the record the machine encodes, and by the decoding of records
//! read back from the service (which anyone with write access can craft: an id or payload over
//! these limits is reported as foreign, never copied), so none depends on the others.

use std::time::Duration;

use crate::error::ConfigError;

/// Longest candidate id, in bytes.
pub const MAX_ID_LEN: usize = 256;
/// Largest payload, in bytes. ZooKeeper rejects a znode over about 1 MiB (`jute.maxbuffer`); we
/// keep well clear of it, leaving room for the record header and the request framing.
pub const MAX_PAYLOAD_LEN: usize = 512 * 1024;
/// Longest session timeout accepted (ZooKeeper's servers cap theirs far lower by default).
pub const MAX_SESSION_TIMEOUT: Duration = Duration::from_secs(3600);

/// Checks a candidate id: non-empty, at most [`MAX_ID_LEN`] bytes, no control character.
pub(crate) fn validate_id(id: &str) -> Result<(), ConfigError> {
    if id.is_empty() {
        return Err(ConfigError::EmptyId);
    }
    if id.len() > MAX_ID_LEN {
        return Err(ConfigError::IdTooLong {
            len: id.len(),
            max: MAX_ID_LEN,
        });
    }
    if id.chars().any(char::is_control) {
        return Err(ConfigError::IdHasControl(id.to_owned()));
    }
    Ok(())
}
