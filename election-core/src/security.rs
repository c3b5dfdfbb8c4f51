//! Why a service refused this client for a reason of security: one typed error for every
//! backend, carried as the [`source`](std::error::Error::source) of a [`BackendError`] of kind
//! [`ErrorKind::NotPermitted`] (which stops a candidate with the reason, leaving nothing).

use std::error::Error as _;

use crate::{BackendError, ErrorKind};

/// Why a session could not be opened for a reason of security: the
/// [`source`](std::error::Error::source) of the [`BackendError`] (of kind
/// [`ErrorKind::NotPermitted`], which stops a candidate with this reason) that
/// [`open_session`](crate::CoordinationBackend::open_session) returns. The ZooKeeper and etcd
/// backends both report their refusals with it.
///
/// ```
/// # fn check(e: &election_core::BackendError) {
/// use election_core::SecurityError;
///
/// match SecurityError::of(e) {
///     Some(SecurityError::UntrustedCertificate { host, .. }) => eprintln!("check the CA of {host}"),
///     Some(other) => eprintln!("{other}"),
///     None => eprintln!("{e}"),
/// }
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecurityError {
    /// The server's certificate does not chain to a CA of the TLS settings.
    #[error("{host}: the server's certificate is not signed by a trusted CA ({detail})")]
    UntrustedCertificate {
        /// `host:port` as configured.
        host: String,
        /// What the TLS library said.
        detail: String,
    },
    /// The server's certificate has expired, or is not valid yet.
    #[error("{host}: the server's certificate has expired or is not yet valid ({detail})")]
    CertificateExpired {
        /// `host:port` as configured.
        host: String,
        /// What the TLS library said.
        detail: String,
    },
    /// The server's certificate does not name the host as configured.
    #[error("{host}: the server's certificate is not valid for this host name ({detail})")]
    CertificateNameMismatch {
        /// `host:port` as configured.
        host: String,
        /// What the TLS library said.
        detail: String,
    },
    /// TLS was configured but nothing speaks TLS on that port: most likely a plain port was
    /// given where the TLS one was meant (ZooKeeper's `clientPort` rather than its
    /// `secureClientPort`; an etcd member serving `http://`).
    #[error(
        "{host}: no TLS answer on this port; is it the service's plain port rather than its TLS \
         one? ({detail})"
    )]
    NotTls {
        /// `host:port` as configured.
        host: String,
        /// What was seen.
        detail: String,
    },
    /// The server speaks TLS on that port but the client was configured without it (an
    /// `http://` etcd endpoint for a member serving `https://`).
    #[error("{host}: the server expects TLS on this port; configure TLS for it ({detail})")]
    TlsRequired {
        /// `host:port` as configured.
        host: String,
        /// What was seen.
        detail: String,
    },
    /// The server requires a client certificate signed by a CA it trusts, and this client
    /// presented none, or one the server refused.
    #[error(
        "{host}: the server refused the client certificate, or requires one and none was \
         configured ({detail})"
    )]
    ClientCertificateRefused {
        /// `host:port` as configured.
        host: String,
        /// What the TLS library said.
        detail: String,
    },
    /// The TLS handshake failed for another reason (no common protocol version or cipher
    /// suite, ...).
    #[error("{host}: TLS handshake failed ({detail})")]
    TlsHandshake {
        /// `host:port` as configured.
        host: String,
        /// What the TLS library said.
        detail: String,
    },
    /// The service refused the session's credentials (a wrong password, an unknown user), or
    /// requires authentication and none was configured.
    #[error("{hosts}: authentication failed ({mechanism}{})", user.as_deref().map(|u| format!(" as user {u:?}")).unwrap_or_default())]
    AuthenticationFailed {
        /// The hosts or endpoints, as configured.
        hosts: String,
        /// `"SASL DIGEST-MD5"`, `"digest"`, `"user and password"` or `"none configured"`.
        mechanism: &'static str,
        /// The user, when one was configured (never the password).
        user: Option<String>,
    },
}

impl SecurityError {
    /// The security error a backend error carries, if it is one.
    pub fn of(e: &BackendError) -> Option<&SecurityError> {
        e.source().and_then(|s| s.downcast_ref::<SecurityError>())
    }
}

impl From<SecurityError> for BackendError {
    /// The [`BackendError`] (kind [`ErrorKind::NotPermitted`]) that stops a candidate with this
    /// reason.
    fn from(e: SecurityError) -> Self {
        BackendError::with_source(ErrorKind::NotPermitted, format!("connect: {e}"), e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_found_in_the_backend_error_it_becomes() {
        let e = SecurityError::AuthenticationFailed {
            hosts: "h:1".into(),
            mechanism: "user and password",
            user: Some("u".into()),
        };
        let b = BackendError::from(e.clone());
        assert_eq!(b.kind(), ErrorKind::NotPermitted);
        assert_eq!(SecurityError::of(&b), Some(&e));
        assert!(b.to_string().contains("as user \"u\""), "{b}");
        assert_eq!(
            SecurityError::of(&BackendError::new(ErrorKind::NotPermitted, "x")),
            None
        );
    }
}
