//! ZooKeeper backend for `election`: [`ZkBackend`] implements
//! [`CoordinationBackend`](election_core::CoordinationBackend) on
//! [zookeeper-client](https://docs.rs/zookeeper-client), one ZooKeeper session per
//! [`open_session`](election_core::CoordinationBackend::open_session).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use election_core::{CoordinationBackend, ElectionPath, Marker};
//! use election_zk::ZkBackend;
//!
//! // Validated here: a malformed connect string is a typed error, before any connection.
//! let backend: Arc<dyn CoordinationBackend> =
//!     Arc::new(ZkBackend::builder("127.0.0.1:2181/chroot").build()?);
//!
//! // Needs a tokio runtime.
//! let session = backend.open_session(Duration::from_secs(10)).await?;
//! let dir = ElectionPath::new("/services/maxwell/leader")?;
//! let entry = session.create(&dir, &Marker::from_bits(0x1234), b"data").await?;
//! let listing = session.list(&dir).await?;
//! assert_eq!(listing.entries[0].name, entry.name);
//! session.close().await;
//! # Ok(()) }
//! ```
//!
//! # Layout on the server
//! - The chroot of the connect string, if any, is prefixed to every path by this backend (it is
//!   created, like the election directory and its parents, as persistent nodes when missing).
//! - An election directory holds one ephemeral sequential znode per entry, named
//!   `_c_{marker}-{session:016x}-{sequence:010}`, e.g.
//!   `_c_0123456789abcdef-00000100a3f20001-0000000003` (see [`EntryName`]). Other children are
//!   foreign: listed apart, never counted.
//! - An entry's data is stored as given: the election core writes a versioned
//!   [`CandidateRecord`](election_core::CandidateRecord) (version byte `0x01`, big-endian `u16`
//!   id length, UTF-8 id, payload), so tools in any language can read who leads.
//! - The fencing token of an entry is its `czxid`; the owner reported by `read` is the znode's
//!   `ephemeralOwner`.
//!
//! # Session state
//! This backend keeps its own record of last contact (the send time of the latest request the
//! server answered, with a ping every `timeout / 6`) and reports `Disconnected` after
//! `timeout / 3` of silence, well before zookeeper-client would (about 0.4x), and long before it
//! reports `Expired` (about 1.75x). See the `liveness` module source for the rules.
//!
//! # Testing
//! With the `testing` feature, [`testing`] runs real ZooKeeper servers (standalone and
//! ensembles) as child processes, and a TCP proxy that cuts or stalls connections.
#![forbid(unsafe_code)]
#![warn(missing_debug_implementations)]
#![warn(missing_docs)]

mod backend;
mod connect;
mod error;
mod liveness;
mod names;
mod session;
#[cfg(feature = "tls")]
mod tls;
mod watch;

pub use backend::{NodeAcl, ZkBackend, ZkBackendBuilder, DEFAULT_SERVER_TICK_TIME};
pub use error::SecurityError;
pub use names::EntryName;
pub use session::{ZkSession, MAX_DATA_LEN};
#[cfg(feature = "tls")]
pub use tls::ZkTls;

#[cfg(feature = "testing")]
pub mod testing;
