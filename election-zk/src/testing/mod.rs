//! Test harness: real ZooKeeper servers run as child JVMs, and a TCP proxy that partitions them.
//!
//! Compiled only with the `testing` feature. Everything here uses std threads, std::net and
//! blocking calls with bounded timeouts, so it works under any async runtime, including a paused
//! tokio clock.
//!
//! - [`ZkServer`]: one standalone server (or one ensemble member) with its own temp dir and port;
//!   kill, freeze (SIGSTOP), thaw (SIGCONT) and restart on the same port and data dir.
//! - [`ZkEnsemble`]: `n` servers forming a quorum on loopback; leader lookup and quorum waits.
//! - [`TcpProxy`]: a loopback forwarder that can [`cut`](TcpProxy::cut) connections, silently
//!   [`stall`](TcpProxy::stall) them, or add latency.
//! - [`four_letter`]: the four-letter-word client (`srvr`, `mntr`, `conf`) used for readiness.
//!
//! # Errors
//! Operations the harness expects to succeed (starting, killing, restarting) panic with a
//! message that includes the tail of the server log: a test cannot go on without them. Queries
//! whose failure is a legitimate test outcome return a `Result` ([`ZkServer::try_four_letter`],
//! [`ZkEnsemble::wait_for_quorum`], [`ZkServer::wait_ready`]).
//!
//! # Installation
//! Every start function calls [`require_zookeeper`], which panics with install instructions when
//! ZooKeeper or java is missing: tests never skip silently.
//!
//! # Cleanup
//! Dropping a [`ZkServer`] or [`ZkEnsemble`] kills and reaps the JVMs (thawing frozen ones first)
//! and removes their directories, also while a test unwinds from a panic; in that case the tail
//! of each server log is printed to help debugging. If the test process itself is killed
//! (SIGKILL), destructors do not run and the JVMs are left behind.

mod ensemble;
pub mod four_letter;
mod install;
mod proxy;
mod secure;
mod server;

use std::fmt;
use std::io;
use std::time::Duration;

pub use ensemble::{ZkEnsemble, ZkEnsembleBuilder};
pub use four_letter::Mode;
pub use install::{require_zookeeper, ZkInstall};
pub use proxy::{connect_string, TcpProxy};
pub use secure::{TestPki, ZkSecurity};
pub use server::{ZkServer, TICK_TIME};

/// Why a harness operation failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum HarnessError {
    /// A server or an ensemble did not reach the expected state within the bound.
    NotReady {
        /// What was awaited, e.g. `ZooKeeper standalone on 127.0.0.1:40123`.
        what: String,
        /// How long the harness waited.
        waited: Duration,
        /// The last observed state and the tail of the relevant server logs.
        detail: String,
    },
    /// A process or file operation failed.
    Io {
        /// What the harness was doing.
        context: String,
        /// The underlying error.
        source: io::Error,
    },
}

impl fmt::Display for HarnessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HarnessError::NotReady {
                what,
                waited,
                detail,
            } => write!(f, "{what} was not ready after {waited:?}\n{detail}"),
            HarnessError::Io { context, source } => write!(f, "{context}: {source}"),
        }
    }
}

impl std::error::Error for HarnessError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HarnessError::Io { source, .. } => Some(source),
            HarnessError::NotReady { .. } => None,
        }
    }
}

impl HarnessError {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        HarnessError::Io {
            context: context.into(),
            source,
        }
    }
}
