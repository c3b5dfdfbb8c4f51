//! The election path: an absolute, slash-separated name validated like a ZooKeeper path.

use std::fmt;
use std::sync::Arc;

use crate::error::ConfigError;

/// Longest election path we accept, in bytes. ZooKeeper has no hard limit below the packet size,
/// but a path is repeated in every request and watch, so we keep it well inside 1 KiB.
pub const MAX_PATH_LEN: usize = 1024;

/// A validated election path such as `/services/maxwell/leader`.
///
/// Rules (ZooKeeper's, so that every backend can store it): starts with `/`, is not `/` itself, has
/// no empty segment (`//`), no trailing slash, no `.` or `..` segment, no control characters, no
/// `zookeeper` as first segment (reserved by ZooKeeper), and at most [`MAX_PATH_LEN`] bytes.
///
/// ```
/// use election_core::ElectionPath;
/// let p = ElectionPath::new("/services/maxwell/leader").unwrap();
/// assert_eq!(p.as_str(), "/services/maxwell/leader");
/// assert!(ElectionPath::new("services/x").is_err());
/// assert!(ElectionPath::new("/a//b").is_err());
/// ```
///
/// Cloning is cheap: clones share the text (a process running thousands of elections keeps each
/// path once, however many places hold it).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ElectionPath(Arc<str>);

impl ElectionPath {
    /// Validates `path` and wraps it.
    pub fn new(path: impl Into<String>) -> Result<Self, ConfigError> {
        let path = path.into();
        validate(&path).map_err(|reason| ConfigError::InvalidPath {
            path: path.clone(),
            reason,
        })?;
        Ok(Self(path.into()))
    }

    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path's segments, in order (`/a/b` gives `a`, `b`).
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0[1..].split('/')
    }
}

fn validate(path: &str) -> Result<(), &'static str> {
    if path.is_empty() {
        return Err("is empty");
    }
    if !path.starts_with('/') {
        return Err("must start with '/'");
    }
    if path == "/" {
        return Err("must not be the root '/'");
    }
    if path.len() > MAX_PATH_LEN {
        return Err("is longer than 1024 bytes");
    }
    if path.ends_with('/') {
        return Err("must not end with '/'");
    }
    for (i, segment) in path[1..].split('/').enumerate() {
        if segment.is_empty() {
            return Err("has an empty segment ('//')");
        }
        if segment == "." || segment == ".." {
            return Err("has a '.' or '..' segment");
        }
        if i == 0 && segment == "zookeeper" {
            return Err("must not be under the reserved '/zookeeper'");
        }
        if segment.chars().any(is_forbidden_char) {
            return Err("has a control or non-character code point");
        }
    }
    Ok(())
}

/// ZooKeeper's `PathUtils.validatePath` rejects these.
fn is_forbidden_char(c: char) -> bool {
    c == '\u{0}'
        || ('\u{1}'..='\u{1f}').contains(&c)
        || ('\u{7f}'..='\u{9f}').contains(&c)
        || ('\u{e000}'..='\u{f8ff}').contains(&c)
        || ('\u{fff0}'..='\u{ffff}').contains(&c)
}

impl fmt::Display for ElectionPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ElectionPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl AsRef<str> for ElectionPath {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_paths() {
        for p in ["/a", "/services/maxwell/leader", "/a-b_c.d/e f", "/é/ü"] {
            assert!(ElectionPath::new(p).is_ok(), "{p}");
        }
    }

    #[test]
    fn rejects_bad_paths_with_reason() {
        for (p, why) in [
            ("", "empty"),
            ("a", "start"),
            ("/", "root"),
            ("/a/", "end"),
            ("/a//b", "empty segment"),
            ("/a/./b", "'.'"),
            ("/a/..", "'.'"),
            ("/zookeeper/x", "reserved"),
            ("/a\u{0}b", "control"),
            ("/a\nb", "control"),
        ] {
            let err = ElectionPath::new(p).unwrap_err();
            assert!(err.to_string().contains(why), "{p:?}: {err}");
        }
        assert!(ElectionPath::new(format!("/{}", "x".repeat(MAX_PATH_LEN))).is_err());
    }

    #[test]
    fn segments_split_on_slash() {
        let p = ElectionPath::new("/a/b/c").unwrap();
        assert_eq!(p.segments().collect::<Vec<_>>(), ["a", "b", "c"]);
    }
}
