//! Errors: the backend error classification the state machine decides on, configuration errors
//! raised at the boundary, and the errors of the public handle's calls.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

/// What a backend failure means for the election, whatever the backend.
///
/// The state machine decides between retrying, looking an entry up, and rejoining from this
/// alone, so a backend must map every failure of its client onto one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The request may or may not have been applied (connection lost, request timed out). A
    /// create that fails this way must be looked up by its marker before anything else.
    OutcomeUnknown,
    /// The session has expired or was closed: nothing more can be done on it, and every
    /// ephemeral entry it owned is gone or will be.
    SessionGone,
    /// The entry or path does not exist.
    NotFound,
    /// The entry or path already exists.
    AlreadyExists,
    /// The backend refused for lack of permission (ZooKeeper `NoAuth`).
    NotPermitted,
    /// The request was malformed for this backend (too large, bad name). Not retried.
    Invalid,
    /// Anything else; retried with back-off.
    Other,
}

impl ErrorKind {
    /// Whether trying again can help: a request whose outcome is unknown, a session that ended
    /// (a new one can be opened), or an unclassified failure. Not a missing or existing entry,
    /// a refusal for lack of permission, or a malformed request.
    pub fn is_retryable(self) -> bool {
        matches!(self, Self::OutcomeUnknown | Self::SessionGone | Self::Other)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::OutcomeUnknown => "outcome unknown",
            Self::SessionGone => "session gone",
            Self::NotFound => "not found",
            Self::AlreadyExists => "already exists",
            Self::NotPermitted => "not permitted",
            Self::Invalid => "invalid request",
            Self::Other => "backend error",
        })
    }
}

/// A failed backend call: its [`ErrorKind`] and, when there is one, the client's own error.
#[derive(Debug)]
pub struct BackendError {
    kind: ErrorKind,
    message: String,
    source: Option<Box<dyn StdError + Send + Sync + 'static>>,
}

impl BackendError {
    /// A new error of `kind` with a human-readable message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// A new error of `kind` wrapping the client's error.
    pub fn with_source(
        kind: ErrorKind,
        message: impl Into<String>,
        source: impl StdError + Send + Sync + 'static,
    ) -> Self {
        Self {
            kind,
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }

    /// The classification the state machine acts on.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Whether trying again can help ([`ErrorKind::is_retryable`]).
    pub fn is_retryable(&self) -> bool {
        self.kind.is_retryable()
    }
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl StdError for BackendError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

/// A configuration value rejected before any side effect.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The election path breaks a rule of [`ElectionPath`](crate::ElectionPath).
    #[error("invalid election path {path:?}: {reason}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// The candidate id is empty.
    #[error("candidate id must not be empty")]
    EmptyId,
    /// The candidate id is longer than [`MAX_ID_LEN`](crate::MAX_ID_LEN).
    #[error("candidate id is {len} bytes, more than the limit of {max}")]
    IdTooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The candidate id has a control character.
    #[error("candidate id {0:?} has a control character")]
    IdHasControl(String),
    /// The payload is larger than [`MAX_PAYLOAD_LEN`](crate::MAX_PAYLOAD_LEN).
    #[error("payload is {len} bytes, more than the limit of {max}")]
    PayloadTooLarge {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A duration that must be positive is zero.
    #[error("{0} must be greater than zero")]
    ZeroDuration(&'static str),
    /// The step-down fraction is not strictly between 0 and 1.
    #[error("step-down fraction {0} must be strictly between 0 and 1, and leave a non-zero step-down budget")]
    StepDownFraction(f64),
    /// The leader-work grace does not fit inside the step-down budget.
    #[error(
        "leader-work grace {grace:?} must be shorter than the step-down budget {budget:?} \
         (step_down_fraction x session_timeout)"
    )]
    GraceTooLong {
        /// The grace asked for.
        grace: Duration,
        /// `step_down_fraction x session_timeout`.
        budget: Duration,
    },
    /// A payload was given with a compatibility mode: in those modes the entry's data is the
    /// candidate id as plain UTF-8 (what Curator and kazoo read), so there is no room for one.
    #[error("a payload cannot be offered in the {0} compatibility mode: the entry's data is the candidate id as plain UTF-8")]
    PayloadWithCompatibility(crate::Compatibility),
    /// A duration is too large to be represented or accepted.
    #[error("{what} of {value:?} is more than the limit of {max:?}")]
    DurationTooLong {
        /// Which setting.
        what: &'static str,
        /// The value asked for.
        value: Duration,
        /// The limit.
        max: Duration,
    },
    /// A file holding a secret (a private key, a password) grants permissions to users outside
    /// its owner and group: refused, since anyone on the machine could read it.
    #[error(
        "{path:?} is readable by other users (mode {mode:04o}): refusing to use it as a secret; \
         run `chmod o-rwx` on it (0600 is usual)"
    )]
    SecretReadableByOthers {
        /// The file.
        path: std::path::PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A file holding a secret cannot be used (missing, unreadable, empty, malformed). The
    /// reason never quotes the content.
    #[error("secret file {path:?}: {reason}")]
    SecretFile {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A backend-specific setting is malformed (a connect string, say).
    #[error("{what}: {reason}")]
    Backend {
        /// Which setting.
        what: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// Why a call on a [`Candidate`](crate::Candidate) or [`Client`](crate::Client) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ElectionError {
    /// The configuration was rejected before any side effect.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A backend call failed: refused for good (no permission, a malformed request), or for
    /// now (an unreachable service at connect time, a session that ended): see
    /// [`is_retryable`](ElectionError::is_retryable).
    #[error("backend: {0}")]
    Backend(#[from] BackendError),
    /// The candidate has stopped (it was stopped, or its session ended and re-candidacy is off).
    #[error("the candidate has stopped")]
    Stopped,
    /// A wait bounded with `tokio::time::timeout` ran out of time (converted from its
    /// `Elapsed`, so that `timeout(limit, candidate.wait_for_leadership()).await??` works in a
    /// function returning `ElectionError`).
    #[error("timed out")]
    Timeout,
    /// The client was closed ([`Client::close`](crate::Client::close)): nothing runs on it
    /// any more, and it does not reopen its session.
    #[error("the client was closed")]
    ClientClosed,
    /// A second candidate was asked for on the same session and path under the same id.
    #[error("candidate {id:?} already runs in election {path}")]
    Duplicate {
        /// The election path.
        path: String,
        /// The candidate id.
        id: String,
    },
}

impl ElectionError {
    /// Whether the same call can succeed if made again later: a backend failure that is
    /// retryable ([`BackendError::is_retryable`]) or a wait that ran out of time. Not bad
    /// configuration, a stopped candidate, a closed client or a duplicate candidate.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Backend(e) => e.is_retryable(),
            Self::Timeout => true,
            Self::Config(_) | Self::Stopped | Self::ClientClosed | Self::Duplicate { .. } => false,
        }
    }
}

impl From<tokio::time::error::Elapsed> for ElectionError {
    fn from(_: tokio::time::error::Elapsed) -> Self {
        Self::Timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_error_keeps_kind_and_source() {
        let io = std::io::Error::new(std::io::ErrorKind::BrokenPipe, "pipe");
        let e = BackendError::with_source(ErrorKind::OutcomeUnknown, "create", io);
        assert_eq!(e.kind(), ErrorKind::OutcomeUnknown);
        assert_eq!(e.to_string(), "outcome unknown: create");
        assert_eq!(e.source().unwrap().to_string(), "pipe");
    }
}
