//! How an `etcd-client` failure maps onto the [`ErrorKind`] the election acts on.
//!
//! | etcd-client | [`ErrorKind`] |
//! |---|---|
//! | gRPC `Unavailable`, `DeadlineExceeded`, `Cancelled`, `Unknown`, `Internal`, `Aborted`, `DataLoss`; a transport or I/O error; our own request timeout | `OutcomeUnknown` |
//! | gRPC `NotFound` "requested lease not found"; a keep-alive answered "lease not found" | `SessionGone` |
//! | gRPC `NotFound` otherwise | `NotFound` |
//! | gRPC `PermissionDenied`, `Unauthenticated` | `NotPermitted` |
//! | gRPC `InvalidArgument`, `OutOfRange` (a request too large); invalid arguments or URI | `Invalid` |
//! | anything else (`ResourceExhausted`: "too many requests", refused before it was applied) | `Other` |
//!
//! `Unavailable` covers "request timed out", "leader changed" and "no leader": a proposal may
//! still be applied after any of them, so a write that fails so is `OutcomeUnknown` (the election
//! looks its entry up by marker before anything else). The client's error is kept as the
//! [`source`](std::error::Error::source).

use election_core::{BackendError, ErrorKind};
use etcd_client::Error as E;
use tonic::Code;

/// The message etcd answers a write on a lease it does not know (revoked or expired).
pub(crate) const LEASE_NOT_FOUND: &str = "lease not found";

/// The classification of one client error.
pub(crate) fn classify(err: &E) -> ErrorKind {
    match err {
        E::GRpcStatus(status) => match status.code() {
            Code::NotFound if status.message().contains(LEASE_NOT_FOUND) => ErrorKind::SessionGone,
            Code::NotFound => ErrorKind::NotFound,
            Code::PermissionDenied | Code::Unauthenticated => ErrorKind::NotPermitted,
            Code::InvalidArgument | Code::OutOfRange => ErrorKind::Invalid,
            Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Cancelled
            | Code::Unknown
            | Code::Internal
            | Code::Aborted
            | Code::DataLoss => ErrorKind::OutcomeUnknown,
            _ => ErrorKind::Other,
        },
        E::TransportError(_) | E::IoError(_) => ErrorKind::OutcomeUnknown,
        E::LeaseKeepAliveError(m) if m.contains(LEASE_NOT_FOUND) => ErrorKind::SessionGone,
        E::InvalidArgs(_) | E::InvalidUri(_) => ErrorKind::Invalid,
        _ => ErrorKind::Other,
    }
}

/// Wraps a client error of operation `op` on `key`.
pub(crate) fn backend_error(op: &str, key: &str, err: E) -> BackendError {
    BackendError::with_source(classify(&err), format!("{op} {key}: {err}"), err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;
    use tonic::Status;

    #[test]
    fn maps_every_documented_case() {
        for (err, kind) in [
            (
                E::GRpcStatus(Status::unavailable("etcdserver: request timed out")),
                ErrorKind::OutcomeUnknown,
            ),
            (
                E::GRpcStatus(Status::unavailable("etcdserver: no leader")),
                ErrorKind::OutcomeUnknown,
            ),
            (
                E::GRpcStatus(Status::deadline_exceeded("x")),
                ErrorKind::OutcomeUnknown,
            ),
            (
                E::GRpcStatus(Status::cancelled("x")),
                ErrorKind::OutcomeUnknown,
            ),
            (
                E::GRpcStatus(Status::not_found("etcdserver: requested lease not found")),
                ErrorKind::SessionGone,
            ),
            (E::GRpcStatus(Status::not_found("x")), ErrorKind::NotFound),
            (
                E::GRpcStatus(Status::permission_denied("x")),
                ErrorKind::NotPermitted,
            ),
            (
                E::GRpcStatus(Status::unauthenticated("x")),
                ErrorKind::NotPermitted,
            ),
            (
                E::GRpcStatus(Status::invalid_argument("etcdserver: request is too large")),
                ErrorKind::Invalid,
            ),
            (
                E::GRpcStatus(Status::resource_exhausted("etcdserver: too many requests")),
                ErrorKind::Other,
            ),
            (
                E::IoError(std::io::Error::other("reset")),
                ErrorKind::OutcomeUnknown,
            ),
            (
                E::LeaseKeepAliveError("lease not found".into()),
                ErrorKind::SessionGone,
            ),
            (E::LeaseKeepAliveError("closed".into()), ErrorKind::Other),
            (E::InvalidArgs("x".into()), ErrorKind::Invalid),
            (E::WatchError("x".into()), ErrorKind::Other),
        ] {
            assert_eq!(classify(&err), kind, "{err:?}");
        }
    }

    #[test]
    fn keeps_the_source_and_names_the_operation() {
        let e = backend_error("delete", "/a/b", E::InvalidArgs("bad".into()));
        assert_eq!(e.kind(), ErrorKind::Invalid);
        assert!(e.to_string().contains("delete /a/b"), "{e}");
        assert!(e.source().unwrap().downcast_ref::<E>().is_some());
    }
}
