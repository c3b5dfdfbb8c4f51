//! An in-memory coordination backend for `election`: ZooKeeper-like where it matters (the
//! service expires a session only after hearing nothing for its timeout, ephemeral ordered
//! entries, a global creation counter for term tokens, one-shot watches, ownership), with a
//! fault API, and deterministic under tokio's paused clock. For testing failover logic with no
//! ZooKeeper at hand.
//!
//! ```
//! use std::time::Duration;
//! use election_core::Candidate;
//! use election_mem::MemCluster;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), election_core::ElectionError> {
//! let cluster = MemCluster::new();
//! let a = Candidate::builder("/svc", "a").session_timeout(Duration::from_secs(3)).join(cluster.backend()).await?;
//! let b = Candidate::builder("/svc", "b").session_timeout(Duration::from_secs(3)).join(cluster.backend()).await?;
//! tokio::time::timeout(Duration::from_secs(1), a.wait_for_leadership()).await??;
//!
//! // Cut the leader off: it steps down, the service expires its session, b takes over.
//! let session = a.session_id();
//! cluster.cut(session);
//! tokio::time::timeout(Duration::from_secs(5), b.wait_for_leadership()).await??;
//! assert!(!a.is_leader());
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![warn(missing_debug_implementations)]
#![warn(missing_docs)]

mod names;
mod server;
mod session;
#[cfg(feature = "sim")]
pub mod sim;

pub use server::{MemBackend, MemCluster, MemConfig, Permission, QueuedEntry, Stats};
pub use session::MemSession;
