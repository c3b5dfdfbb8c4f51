//! Leader election over a coordination service (ZooKeeper, or the in-memory backend for tests),
//! with the safety rules the classic recipes get wrong built in: a leader out of contact steps
//! down before its session can expire, a create that loses its reply leaves no orphan, an
//! expired candidate rejoins, and every term has a fencing token.
//!
//! Where things are:
//! - [`backend`]: the [`CoordinationBackend`] contract a backend implements;
//! - `machine`: the one I/O-free election state machine (all behaviour lives there);
//! - `driver`: the tokio task that runs it against a backend;
//! - [`Candidate`], [`CandidateBuilder`], [`Client`], [`Observer`]: the public API;
//! - [`ElectionState`], [`Event`], [`Term`]: what a user sees;
//! - `testing` (feature `testing`): the conformance suite every backend runs.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use election_core::{Candidate, CoordinationBackend};
//! use election_mem::MemCluster;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), election_core::ElectionError> {
//! let cluster = MemCluster::new();
//! let a = Candidate::builder("/svc/leader", "a").join(cluster.backend()).await?;
//! let b = Candidate::builder("/svc/leader", "b").join(cluster.backend()).await?;
//! let token = tokio::time::timeout(Duration::from_secs(1), a.wait_for_leadership()).await??;
//! a.resign().await?; // b leads next, with a larger token; a rejoins behind b
//! let next = tokio::time::timeout(Duration::from_secs(1), b.wait_for_leadership()).await??;
//! assert!(next > token);
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_debug_implementations)]
#![warn(missing_docs)]

pub mod backend;
mod candidate;
mod client;
pub mod clock;
mod config;
mod driver;
mod error;
mod events;
pub mod foreign;
pub mod limits;
mod link;
mod machine;
pub mod metrics;
mod observer;
mod path;
// Processes are made only by tests (`testing::Process`); without them every gate is open.
#[cfg_attr(not(feature = "testing"), allow(dead_code))]
mod process;
pub mod record;
pub mod secret;
mod security;
pub(crate) mod session;
mod state;
mod state_watch;
mod term;
#[cfg(feature = "testing")]
pub mod testing;
pub mod tls;
#[cfg(feature = "tls")]
pub mod tls_probe;

pub use backend::{
    BackendSession, Confirmation, CoordinationBackend, EntryInfo, FencingToken, ListedContender,
    ListedEntry, Listing, Marker, Notification, SessionId, SessionState, Watch,
};
pub use candidate::{Candidate, EVENTS_CAPACITY};
pub use client::{Client, ClientBuilder};
pub use config::{
    CandidateBuilder, CandidateConfig, DEFAULT_SESSION_TIMEOUT, DEFAULT_STEP_DOWN_FRACTION,
};
pub use error::{BackendError, ConfigError, ElectionError, ErrorKind};
pub use foreign::{Compatibility, Implementation};
pub use limits::{MAX_ID_LEN, MAX_PAYLOAD_LEN, MAX_SESSION_TIMEOUT};
pub use observer::Observer;
pub use path::{ElectionPath, MAX_PATH_LEN};
pub use record::CandidateRecord;
pub use security::SecurityError;
pub use state::{
    Contact, ElectionState, Event, ForeignContender, LeaderInfo, LeaderView, Notice, Participant,
    Reason, StopReason, Transition,
};
pub use state_watch::{StateRef, StateWatch};
pub use term::{Term, WorkEnded, WorkResult};
pub use tls::TlsFiles;
