//! How a `zookeeper-client` failure maps onto the [`ErrorKind`] the election acts on.
//!
//! | zookeeper-client | [`ErrorKind`] |
//! |---|---|
//! | `ConnectionLoss`, `Timeout`, `Custom(..)` (request timeouts come back this way), `SessionMoved`, our own request timeout | `OutcomeUnknown` |
//! | `SessionExpired`, `ClientClosed`, `AuthFailed` | `SessionGone` |
//!
//! `SessionMoved` is not the end of the session: the server refuses a request that reached it
//! over a connection the session has since left (the client reconnected to another server). The
//! session lives on, so the election retries (a create is looked up first, as after any lost
//! reply); mapping it to `SessionGone` left a follower with no watch on its predecessor.
//! | `NoNode` | `NotFound` |
//! | `NodeExists` | `AlreadyExists` |
//! | `NoAuth` | `NotPermitted` |
//! | `BadArguments`, `InvalidAcl`, `NoChildrenForEphemerals`, `MarshallingError`, data too large | `Invalid` |
//! | anything else | `Other` |
//!
//! The client's error is kept as the [`source`](std::error::Error::source).

use election_core::{BackendError, ErrorKind};
use zookeeper_client as zk;

/// The classification of one client error.
pub(crate) fn classify(err: &zk::Error) -> ErrorKind {
    use zk::Error as E;
    match err {
        E::ConnectionLoss | E::Timeout | E::Custom(_) | E::SessionMoved => {
            ErrorKind::OutcomeUnknown
        }
        E::SessionExpired | E::ClientClosed | E::AuthFailed => ErrorKind::SessionGone,
        E::NoNode => ErrorKind::NotFound,
        E::NodeExists => ErrorKind::AlreadyExists,
        E::NoAuth => ErrorKind::NotPermitted,
        E::BadArguments(_) | E::InvalidAcl | E::NoChildrenForEphemerals | E::MarshallingError => {
            ErrorKind::Invalid
        }
        _ => ErrorKind::Other,
    }
}

/// Wraps a client error of operation `op` on `path`.
pub(crate) fn backend_error(op: &str, path: &str, err: zk::Error) -> BackendError {
    BackendError::with_source(classify(&err), format!("{op} {path}: {err}"), err)
}

pub use election_core::SecurityError;

/// The identity a backend authenticates with, for [`SecurityError::AuthenticationFailed`].
pub(crate) type AuthDescription = (&'static str, Option<String>);

/// Wraps a failure to open a session: an unreachable ensemble is `Other` (retry with back-off),
/// not `OutcomeUnknown`, since no entry can have been written. Refused credentials are a
/// [`SecurityError::AuthenticationFailed`].
pub(crate) fn connect_error(hosts: &str, err: zk::Error, auth: AuthDescription) -> BackendError {
    use zk::Error as E;
    let kind = match err {
        E::BadArguments(_) | E::InvalidAcl => ErrorKind::Invalid,
        E::AuthFailed => {
            let (mechanism, user) = auth;
            return SecurityError::AuthenticationFailed {
                hosts: hosts.to_owned(),
                mechanism,
                user,
            }
            .into();
        }
        _ => ErrorKind::Other,
    };
    BackendError::with_source(kind, format!("connect to {hosts}: {err}"), err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn maps_every_documented_case() {
        use zk::Error as E;
        for (err, kind) in [
            (E::ConnectionLoss, ErrorKind::OutcomeUnknown),
            (E::Timeout, ErrorKind::OutcomeUnknown),
            (E::SessionExpired, ErrorKind::SessionGone),
            // Issue 17, point 5: the session lives on; retried, not taken for its end.
            (E::SessionMoved, ErrorKind::OutcomeUnknown),
            (E::ClientClosed, ErrorKind::SessionGone),
            (E::AuthFailed, ErrorKind::SessionGone),
            (E::NoNode, ErrorKind::NotFound),
            (E::NodeExists, ErrorKind::AlreadyExists),
            (E::NoAuth, ErrorKind::NotPermitted),
            (E::BadArguments(&"bad"), ErrorKind::Invalid),
            (E::InvalidAcl, ErrorKind::Invalid),
            (E::NoChildrenForEphemerals, ErrorKind::Invalid),
            (E::MarshallingError, ErrorKind::Invalid),
            (E::BadVersion, ErrorKind::Other),
            (E::NotEmpty, ErrorKind::Other),
            (E::Throttled, ErrorKind::Other),
            (E::UnexpectedErrorCode(-999), ErrorKind::Other),
            (E::UnexpectedError("x".into()), ErrorKind::Other),
        ] {
            assert_eq!(classify(&err), kind, "{err:?}");
        }
        // `Error::Custom` (how some request timeouts come back) has no public constructor, so it
        // is covered by the match arm above and by the tests against a real server.
    }

    #[test]
    fn keeps_the_source_and_names_the_operation() {
        let e = backend_error("delete", "/a/b", zk::Error::NoNode);
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert!(e.to_string().contains("delete /a/b"), "{e}");
        let source = e.source().unwrap().downcast_ref::<zk::Error>().unwrap();
        assert_eq!(source, &zk::Error::NoNode);
    }

    #[test]
    fn unreachable_at_connect_is_other() {
        let e = connect_error("127.0.0.1:1", zk::Error::Timeout, ("none configured", None));
        assert_eq!(e.kind(), ErrorKind::Other);
        let e = connect_error(
            "h:1",
            zk::Error::AuthFailed,
            ("SASL DIGEST-MD5", Some("u".into())),
        );
        assert_eq!(e.kind(), ErrorKind::NotPermitted);
        assert_eq!(
            e.source().unwrap().downcast_ref::<SecurityError>(),
            Some(&SecurityError::AuthenticationFailed {
                hosts: "h:1".into(),
                mechanism: "SASL DIGEST-MD5",
                user: Some("u".into())
            })
        );
        assert!(e.to_string().contains("as user \"u\""), "{e}");
    }
}
