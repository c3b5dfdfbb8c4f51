//! Leader election for services that run in HA pairs or fleets: run several copies, exactly one
//! is active.
//!
//! This is the crate to depend on. It re-exports the public API of `election-core` (candidates,
//! clients, observers, states and events, the backend contract) and, behind features, the
//! backends and the test support:
//!
//! | feature | gives | default |
//! |---|---|---|
//! | `zookeeper` | [`zk`]: the ZooKeeper backend ([`zk::ZkBackend`]) | yes |
//! | `etcd` | `etcd`: the etcd v3 backend (`etcd::EtcdBackend`); building it needs `protoc` | no |
//! | `tls` | TLS for the enabled backends: `zk::ZkTls` for ZooKeeper's `secureClientPort`, `etcd::EtcdTls` for etcd | no |
//! | `sasl` | SASL DIGEST-MD5 to ZooKeeper (`zk::ZkBackendBuilder::sasl_digest_md5`) | no |
//! | `mem` | `mem`: the in-memory backend (`mem::MemCluster`): virtual time, fault injection | no |
//! | `testing` | `testing`: conformance suite, transition recorder, work log, invariant checks (turns on `mem`) | no |
//! | `sim` | `sim` (also `mem::sim`): the seeded, replayable simulation, with your own leader work and checks in it (turns on `testing`) | no |
//! | `proptest` | `sim::Simulation::schedules`: a proptest strategy of schedules, which shrink (turns on `sim`) | no |
//!
//! A production service uses the default; its tests add `mem` (or `testing`) in
//! `[dev-dependencies]`:
//!
//! ```toml
//! [dependencies]
//! election = "0.1"
//! tokio = { version = "1", features = ["full"] }
//!
//! [dev-dependencies]
//! election = { version = "0.1", features = ["mem"] }
//! tokio = { version = "1", features = ["full", "test-util"] }
//! ```
//!
//! # A candidate
//!
//! ```no_run
//! use std::time::Duration;
//! use election::Candidate;
//!
//! # #[cfg(feature = "zookeeper")]
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     // A ZkBackend converts into the Arc<dyn CoordinationBackend> that `join` takes.
//!     let backend = election::zk::ZkBackend::builder("zk1:2181,zk2:2181,zk3:2181").build()?;
//!     let candidate = Candidate::builder("/services/streamer/leader", "streamer-1")
//!         .session_timeout(Duration::from_secs(10))
//!         .on_leader(|term| async move {
//!             // Runs once per term: send term.token() with every write, stop when cancelled.
//!             term.cancellation().cancelled().await;
//!         })
//!         .join(backend)
//!         .await?;
//!     // No timeout of its own: bound it with tokio::time::timeout where it must be.
//!     let token = tokio::time::timeout(Duration::from_secs(60), candidate.wait_for_leadership()).await??;
//!     println!("leading with token {token}");
//!     candidate.stop().await; // withdraw before leaving main
//!     Ok(())
//! }
//! # #[cfg(not(feature = "zookeeper"))]
//! # fn main() {}
//! ```
//!
//! The contract every backend keeps (S1-S5, L1-L5) is in the repository's `docs/contract.md`.
#![forbid(unsafe_code)]
#![warn(missing_debug_implementations)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub use election_core::{
    backend, foreign, limits, record, secret, tls, BackendError, BackendSession, Candidate,
    CandidateBuilder, CandidateConfig, CandidateRecord, Client, ClientBuilder, Compatibility,
    ConfigError, Contact, CoordinationBackend, ElectionError, ElectionPath, ElectionState,
    EntryInfo, ErrorKind, Event, FencingToken, ForeignContender, Implementation, LeaderInfo,
    LeaderView, ListedContender, ListedEntry, Listing, Marker, Notice, Notification, Observer,
    Participant, Reason, SecurityError, SessionId, SessionState, StateRef, StateWatch, StopReason,
    Term, TlsFiles, Transition, Watch, WorkEnded, WorkResult, DEFAULT_SESSION_TIMEOUT,
    DEFAULT_STEP_DOWN_FRACTION, EVENTS_CAPACITY, MAX_ID_LEN, MAX_PATH_LEN, MAX_PAYLOAD_LEN,
    MAX_SESSION_TIMEOUT,
};

/// The names of the metrics the library records (see the module's table).
pub use election_core::metrics;

/// The cancellation signal a [`Term`] carries ([`Term::cancellation`]), from `tokio-util`.
pub use tokio_util::sync::CancellationToken;

/// For backend authors: [`CoordinationBackend`] and [`BackendSession`] are `async_trait` traits.
pub use async_trait::async_trait;

/// The ZooKeeper backend (feature `zookeeper`, on by default).
///
/// ```no_run
/// use std::sync::Arc;
/// use election::CoordinationBackend;
/// use election::zk::ZkBackend;
///
/// # fn demo() -> Result<(), election::ConfigError> {
/// let backend: Arc<dyn CoordinationBackend> = Arc::new(
///     ZkBackend::builder("zk1:2181,zk2:2181,zk3:2181/chroot").build()?,
/// );
/// # let _ = backend;
/// # Ok(())
/// # }
/// ```
#[cfg(feature = "zookeeper")]
#[cfg_attr(docsrs, doc(cfg(feature = "zookeeper")))]
pub mod zk {
    pub use election_zk::*;
}

/// The etcd v3 backend (feature `etcd`): a lease per session, a key on the lease per entry, the
/// key's create revision as order and fencing token.
///
/// ```no_run
/// use std::sync::Arc;
/// use election::CoordinationBackend;
/// use election::etcd::EtcdBackend;
///
/// # fn demo() -> Result<(), election::ConfigError> {
/// let backend: Arc<dyn CoordinationBackend> = Arc::new(
///     EtcdBackend::builder(["etcd1:2379", "etcd2:2379", "etcd3:2379"])
///         .namespace("/services")
///         .build()?,
/// );
/// # let _ = backend;
/// # Ok(())
/// # }
/// ```
#[cfg(feature = "etcd")]
#[cfg_attr(docsrs, doc(cfg(feature = "etcd")))]
pub mod etcd {
    pub use election_etcd::*;
}

/// The in-memory backend (feature `mem`): ZooKeeper-like sessions and watches in one process,
/// deterministic under tokio's paused clock, with fault injection. For testing your own
/// failover logic without a server.
#[cfg(feature = "mem")]
#[cfg_attr(docsrs, doc(cfg(feature = "mem")))]
pub mod mem {
    pub use election_mem::*;
}

/// Test support (feature `testing`): the backend conformance suite, a transition
/// [`Recorder`](testing::recorder::Recorder), a leader-work
/// [`WorkLog`](testing::recorder::WorkLog) and the contract's invariant checks.
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing {
    pub use election_core::conformance_suite;
    pub use election_core::testing::*;
}

/// The seeded, replayable simulation (feature `sim`): thousands of fault schedules (crashes,
/// partitions, expiries, lost replies, administrators, process pauses, ...) over your own
/// leader work, with your own checks over what it wrote, next to the contract's; a failure
/// prints `ELECTION_SEED=<n>` and a trace that replays it. Start at [`sim::Simulation`].
///
/// ```
/// use election::sim::Simulation;
/// use election::testing::FencedStore;
/// use election::Term;
///
/// Simulation::new(FencedStore::new)
///     .replicas(3)
///     .on_leader(|replica| {
///         let store = replica.state().clone();
///         move |term: Term| {
///             let store = store.clone();
///             async move {
///                 let _ = store.write(term.token(), "a record");
///                 term.cancelled().await;
///             }
///         }
///     })
///     .check(|store: &FencedStore| store.check())
///     .run_seeds(0..10);
/// ```
#[cfg(feature = "sim")]
#[cfg_attr(docsrs, doc(cfg(feature = "sim")))]
pub mod sim {
    pub use election_mem::sim::*;
}

/// Every Rust code block of the README, compiled (and run, unless marked `no_run`) as a doctest.
#[cfg(all(
    doctest,
    feature = "zookeeper",
    feature = "etcd",
    feature = "sim",
    feature = "tls",
    feature = "sasl"
))]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
