//! Leader election over a coordination service.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod backend;
mod config;
mod error;
mod path;
pub mod record;

pub use backend::{
    BackendSession, CoordinationBackend, EntryInfo, FencingToken, ListedEntry, Listing, Marker,
    Notification, SessionId, SessionState, Watch,
};
pub use config::{MAX_ID_LEN, MAX_PAYLOAD_LEN, MAX_SESSION_TIMEOUT};
pub use error::{BackendError, ConfigError, ElectionError, ErrorKind};
pub use path::{ElectionPath, MAX_PATH_LEN};
pub use record::CandidateRecord;
