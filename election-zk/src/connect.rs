//! The connect string: `host:port[,host:port...][/chroot]`, validated before any side effect.
//!
//! Rules, checked by [`ConnectString::parse`]:
//! - at least one host; hosts separated by `,`, no empty element, no whitespace;
//! - a host is a name or IPv4 address (letters, digits, `-`, `.`, `_`) or an IPv6 address in
//!   brackets (`[::1]:2181`); an optional `tcp://` or `tcp+tls://` prefix is accepted (the
//!   builder checks it against its TLS settings: every host is reached the same way);
//! - the port, when present, is a decimal number in `1..=65535`; a missing port means 2181, as in
//!   ZooKeeper's own clients;
//! - an optional chroot follows the last host and must be a valid [`ElectionPath`] (absolute, no
//!   empty or `.`/`..` segment, no trailing slash, not `/` itself, not under `/zookeeper`).

use election_core::{ConfigError, ElectionPath};

const WHAT: &str = "connect string";
const DEFAULT_PORT: u16 = 2181;

/// A validated connect string, split into the host list given to the client and the chroot this
/// backend prefixes to every path itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ConnectString {
    /// `host:port,...`, normalised (scheme dropped, default port filled in).
    pub(crate) hosts: String,
    /// The chroot, if any.
    pub(crate) chroot: Option<ElectionPath>,
    /// How many hosts were written with `tcp://`.
    pub(crate) plain_schemes: usize,
    /// How many hosts were written with `tcp+tls://`.
    pub(crate) tls_schemes: usize,
}

fn invalid(reason: impl Into<String>) -> ConfigError {
    ConfigError::Backend {
        what: WHAT,
        reason: reason.into(),
    }
}

impl ConnectString {
    pub(crate) fn parse(s: &str) -> Result<Self, ConfigError> {
        if s.is_empty() {
            return Err(invalid("is empty"));
        }
        if let Some(c) = s.chars().find(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid(format!(
                "{s:?} contains {c:?}; whitespace and control characters are not allowed"
            )));
        }
        let parts: Vec<&str> = s.split(',').collect();
        let last = parts.len() - 1;
        let mut hosts = Vec::with_capacity(parts.len());
        let mut chroot = None;
        let (mut plain_schemes, mut tls_schemes) = (0, 0);
        for (i, part) in parts.into_iter().enumerate() {
            let part = if let Some(rest) = part.strip_prefix("tcp://") {
                plain_schemes += 1;
                rest
            } else if let Some(rest) = part.strip_prefix("tcp+tls://") {
                tls_schemes += 1;
                rest
            } else if part.contains("://") {
                return Err(invalid(format!(
                    "{part:?}: unknown scheme (only tcp:// and tcp+tls:// are accepted)"
                )));
            } else {
                part
            };
            let hostport = match part.find('/') {
                Some(at) if i == last => {
                    let root = &part[at..];
                    chroot = Some(ElectionPath::new(root).map_err(|e| {
                        invalid(format!("invalid chroot {root:?}: {}", reason_of(&e)))
                    })?);
                    &part[..at]
                }
                Some(_) => {
                    return Err(invalid(format!(
                        "{part:?}: a chroot may only follow the last host"
                    )))
                }
                None => part,
            };
            hosts.push(parse_host_port(hostport)?);
        }
        Ok(Self {
            hosts: hosts.join(","),
            chroot,
            plain_schemes,
            tls_schemes,
        })
    }

    /// The absolute server path of `path` (a path as the election sees it) under the chroot.
    pub(crate) fn absolute(&self, path: &str) -> String {
        match &self.chroot {
            Some(root) => format!("{root}{path}"),
            None => path.to_owned(),
        }
    }
}

fn reason_of(e: &ConfigError) -> String {
    match e {
        ConfigError::InvalidPath { reason, .. } => (*reason).to_owned(),
        other => other.to_string(),
    }
}

/// Validates one `host[:port]` and returns it with the port spelled out.
fn parse_host_port(s: &str) -> Result<String, ConfigError> {
    if s.is_empty() {
        return Err(invalid(
            "has an empty host (check for ',,' or a trailing ',')",
        ));
    }
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let Some(end) = rest.find(']') else {
            return Err(invalid(format!("{s:?}: unclosed '[' in IPv6 address")));
        };
        let host = &rest[..end];
        if host.is_empty()
            || !host
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        {
            return Err(invalid(format!("{s:?}: bad IPv6 address")));
        }
        let after = &rest[end + 1..];
        let port = match after.strip_prefix(':') {
            Some(port) => Some(port),
            None if after.is_empty() => None,
            None => return Err(invalid(format!("{s:?}: expected ':port' after ']'"))),
        };
        (&s[..end + 2], port)
    } else {
        let (host, port) = match s.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (s, None),
        };
        if port.is_some_and(|p| p.contains(':')) {
            return Err(invalid(format!(
                "{s:?}: too many ':' (write an IPv6 address in brackets: [::1]:2181)"
            )));
        }
        if host.is_empty() {
            return Err(invalid(format!("{s:?}: empty host name")));
        }
        if let Some(c) = host
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_')))
        {
            return Err(invalid(format!(
                "{s:?}: {c:?} is not allowed in a host name"
            )));
        }
        (host, port)
    };
    let port = match port {
        None => DEFAULT_PORT,
        Some("") => return Err(invalid(format!("{s:?}: empty port after ':'"))),
        Some(p) if !p.bytes().all(|b| b.is_ascii_digit()) => {
            return Err(invalid(format!("{s:?}: port {p:?} is not a number")))
        }
        Some(p) => match p.parse::<u32>() {
            Ok(0) => return Err(invalid(format!("{s:?}: port 0 is not allowed"))),
            Ok(n) if n <= u32::from(u16::MAX) => n as u16,
            _ => return Err(invalid(format!("{s:?}: port {p} is more than 65535"))),
        },
    };
    Ok(format!("{host}:{port}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> ConnectString {
        ConnectString::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    fn err(s: &str) -> String {
        match ConnectString::parse(s) {
            Err(ConfigError::Backend { what, reason }) => {
                assert_eq!(what, "connect string");
                reason
            }
            other => panic!("{s:?}: expected a connect string error, got {other:?}"),
        }
    }

    #[test]
    fn accepts_ordinary_strings() {
        let c = ok("127.0.0.1:2181");
        assert_eq!((c.hosts.as_str(), c.chroot), ("127.0.0.1:2181", None));
        let c = ok("zk-1.example.com:2181,zk_2:2182,tcp://10.0.0.3:65535/app/election");
        assert_eq!(c.hosts, "zk-1.example.com:2181,zk_2:2182,10.0.0.3:65535");
        assert_eq!(c.chroot.unwrap().as_str(), "/app/election");
        assert_eq!((c.plain_schemes, c.tls_schemes), (1, 0));
        assert_eq!(ok("localhost").hosts, "localhost:2181");
        let c = ok("tcp+tls://a:2281,tcp+tls://b:2281,c/x");
        assert_eq!(
            (c.hosts.as_str(), c.tls_schemes, c.plain_schemes),
            ("a:2281,b:2281,c:2181", 2, 0)
        );
        assert_eq!(
            ok("[::1]:2182,[fe80::1]/x").hosts,
            "[::1]:2182,[fe80::1]:2181"
        );
        assert_eq!(ok("[::ffff:10.0.0.1]:2181").hosts, "[::ffff:10.0.0.1]:2181");
    }

    #[test]
    fn chroot_prefixes_paths() {
        assert_eq!(ok("h:1/root").absolute("/a/b"), "/root/a/b");
        assert_eq!(ok("h:1").absolute("/a/b"), "/a/b");
    }

    #[test]
    fn rejects_malformed_strings_with_a_reason() {
        for (s, why) in [
            ("", "empty"),
            (" 127.0.0.1:2181", "whitespace"),
            ("h:2181,", "empty host"),
            (",h:2181", "empty host"),
            ("h:2181,,h:2182", "empty host"),
            (":2181", "empty host"),
            ("h:", "empty port"),
            ("h:0", "port 0"),
            ("h:65536", "more than 65535"),
            ("h:99999999999999999999", "more than 65535"),
            ("h:21x", "not a number"),
            ("h:-1", "not a number"),
            ("::1:2181", "brackets"),
            ("[::1", "unclosed"),
            ("[]:2181", "IPv6"),
            ("[fe80::zz]:2181", "bad IPv6"),
            ("[::1]2181", "after ']'"),
            ("h@st:2181", "not allowed"),
            ("http://h:2181", "scheme"),
            ("h:1/a,h:2", "last host"),
            // The chroot's own rule is named.
            ("h:1/", "invalid chroot \"/\": must not be the root"),
            ("h:1/a/", "invalid chroot \"/a/\": must not end with '/'"),
            ("h:1/a//b", "invalid chroot \"/a//b\": has an empty segment"),
            (
                "h:1/a/../b",
                "invalid chroot \"/a/../b\": has a '.' or '..' segment",
            ),
            (
                "h:1/zookeeper",
                "invalid chroot \"/zookeeper\": must not be under the reserved",
            ),
            ("h:1//", "invalid chroot \"//\": must not end with '/'"),
        ] {
            let reason = err(s);
            assert!(
                reason.contains(why),
                "{s:?}: {reason:?} should mention {why:?}"
            );
        }
    }
}
