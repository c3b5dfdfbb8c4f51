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
/// Longest entry data a candidate of ours writes: a record's header, id and payload. Entry
/// data read back beyond this is no record of ours (the decoder reports it as foreign); a
/// backend keeps no more than one byte past it.
pub const MAX_RECORD_LEN: usize = 3 + MAX_ID_LEN + MAX_PAYLOAD_LEN;
/// Most data kept of a foreign contender (shown as its id and payload, never trusted); the
/// rest is cut off when the listing is read.
pub const MAX_FOREIGN_DATA_LEN: usize = 4096;
/// Most names of foreign children (neither entries nor contenders) a listing keeps; the others
/// are counted ([`Listing::foreign_omitted`](crate::Listing::foreign_omitted)).
pub const MAX_FOREIGN_NAMES: usize = 64;
/// Longest name of a foreign child a listing keeps, in bytes; a longer one is cut (on a
/// character boundary) and marked with `…`.
pub const MAX_FOREIGN_NAME_LEN: usize = 256;
/// Longest session timeout accepted (ZooKeeper's servers cap theirs far lower by default).
pub const MAX_SESSION_TIMEOUT: Duration = Duration::from_secs(3600);

/// Refuses entry data over a backend's limit `max` (in bytes) before anything is sent, as
/// [`ErrorKind::Invalid`](crate::ErrorKind::Invalid): a request over the service's own limit
/// would be dropped with the connection, and look like a lost reply.
pub fn check_data_len(data: &[u8], max: usize) -> Result<(), crate::BackendError> {
    if data.len() > max {
        return Err(crate::BackendError::new(
            crate::ErrorKind::Invalid,
            format!(
                "entry data of {} bytes is more than the limit of {max}",
                data.len()
            ),
        ));
    }
    Ok(())
}

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

/// Cuts `data` to at most `max` bytes and frees the rest; the length it had when cut.
pub fn cap_data(data: &mut Vec<u8>, max: usize) -> Option<usize> {
    if data.len() <= max {
        return None;
    }
    let len = data.len();
    data.truncate(max);
    data.shrink_to_fit();
    Some(len)
}

/// `name` as a listing keeps it: at most [`MAX_FOREIGN_NAME_LEN`] bytes, cut on a character
/// boundary and marked with `…` when longer.
pub(crate) fn foreign_name(name: &str) -> String {
    if name.len() <= MAX_FOREIGN_NAME_LEN {
        return name.to_owned();
    }
    let mut end = MAX_FOREIGN_NAME_LEN - '…'.len_utf8();
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &name[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_data_and_names() {
        let mut d = vec![7u8; 10];
        assert_eq!(cap_data(&mut d, 10), None);
        assert_eq!(cap_data(&mut d, 4), Some(10));
        assert_eq!(d, [7, 7, 7, 7]);
        assert!(d.capacity() < 10);
        assert_eq!(foreign_name("short"), "short");
        let long = "é".repeat(MAX_FOREIGN_NAME_LEN);
        let cut = foreign_name(&long);
        assert!(
            cut.len() <= MAX_FOREIGN_NAME_LEN && cut.ends_with('…'),
            "{cut}"
        );
        assert!(long.starts_with(cut.trim_end_matches('…')));
    }
}
