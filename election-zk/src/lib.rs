//! placeholder
//!
//! With the `testing` feature, `election_zk::testing` runs real ZooKeeper servers (standalone and
//! ensembles) and a TCP proxy that cuts or stalls connections, for integration tests.

#[cfg(feature = "testing")]
pub mod testing;
