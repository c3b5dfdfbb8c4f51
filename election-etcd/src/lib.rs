//! etcd v3 backend for `election`: [`EtcdBackend`] implements
//! [`CoordinationBackend`](election_core::CoordinationBackend) on
//! [etcd-client](https://docs.rs/etcd-client), one lease (and one client) per
//! [`open_session`](election_core::CoordinationBackend::open_session).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use election_core::{CoordinationBackend, ElectionPath, Marker};
//! use election_etcd::EtcdBackend;
//!
//! // Validated here: a malformed endpoint is a typed error, before any connection.
//! let backend: Arc<dyn CoordinationBackend> =
//!     Arc::new(EtcdBackend::builder(["127.0.0.1:2379"]).namespace("/ns").build()?);
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
//! | election | etcd |
//! |---|---|
//! | session | a lease; its TTL is the session timeout rounded up to whole seconds, or the server's minimum TTL when that is more: [`timeout`](election_core::BackendSession::timeout) reports what was granted |
//! | entry | the key `{namespace}{dir}/_c_{marker}-{lease:016x}` (see [`EntryName`]) attached to the lease, created in a transaction only when absent |
//! | order, fencing token | the key's create revision: the cluster's revision counter never goes back, also when a prefix is deleted and re-created |
//! | listing | one range over `{namespace}{dir}/`, sorted by create revision; keys that are not entries, and the first segment of deeper keys, are foreign |
//! | directory | the key `{namespace}{dir}`, empty and without lease, put with the first entry (so that an administrator's delete of the directory behaves as on ZooKeeper) |
//! | `watch_gone` | a watch on the key from the revision after the read that found it; a compacted revision means read again, never a lost event |
//! | close | lease revoke |
//!
//! An entry's data is stored as given: the election core writes a versioned
//! [`CandidateRecord`](election_core::CandidateRecord), so tools in any language can read who
//! leads.
//!
//! # Session state
//! A keep-alive is sent every TTL/6 and answered by the raft leader, which expires leases; last
//! contact is the send time of the latest answered one, and the session is reported
//! `Disconnected` after TTL/3 without one. Writes do not count (etcd renews a lease on
//! keep-alives only). See the `liveness` module source for the rules.
//!
//! # Testing
//! With the `testing` feature, [`testing`] runs real etcd members (single members and
//! 3-member clusters) as child processes, with the partitioning TCP proxy of
//! `election_zk::testing`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod backend;
mod error;
mod liveness;
mod names;
mod session;
#[cfg(feature = "tls")]
mod tls;

pub use backend::{EtcdBackend, EtcdBackendBuilder, MAX_TIMEOUT};
pub use names::EntryName;
pub use session::{EtcdSession, MAX_DATA_LEN};
#[cfg(feature = "tls")]
pub use tls::EtcdTls;

#[cfg(feature = "testing")]
pub mod testing;
