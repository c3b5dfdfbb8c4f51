//! Shared support for the integration tests: the conformance `Harness` on real ZooKeeper.

pub mod zk;
