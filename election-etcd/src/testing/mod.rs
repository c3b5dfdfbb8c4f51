//! Test harness: real etcd members run as child processes, single or as a cluster, and the TCP
//! proxy that partitions them (one copy, in `election_zk::testing`, re-exported here).
//!
//! Compiled only with the `testing` feature. Everything here uses std threads, std::net and
//! blocking calls with bounded timeouts, so it works under any async runtime.
//!
//! - [`EtcdMember`]: one member with its own ports and data dir; kill (SIGKILL), freeze
//!   (SIGSTOP), thaw (SIGCONT) and restart on the same ports and data dir.
//! - [`EtcdCluster`]: `n` members forming one cluster on loopback.
//! - [`TcpProxy`]: a loopback forwarder that can cut connections, stall them, or add latency.
//!
//! # Installation
//! Every start calls [`require_etcd`], which panics with install instructions when no etcd
//! binary is found: tests never skip silently.
//!
//! # Cleanup
//! Dropping a member or a cluster kills and reaps the processes (thawing frozen ones first) and
//! removes their directories, also while a test unwinds from a panic; the tail of each log is
//! then printed. If the test process itself is SIGKILLed, destructors do not run.

mod install;
mod member;

pub use election_zk::testing::{HarnessError, TcpProxy};
pub use install::{require_etcd, CACHE_SUBDIR, ETCD_BIN_VAR};
pub use member::{EtcdCluster, EtcdMember, EtcdSecurity, ELECTION_TIMEOUT, HEARTBEAT_INTERVAL};
