//! Shared support for the integration tests: the conformance `Harness` on real ZooKeeper and on
//! real etcd, and helpers for the fault scenarios and the benchmark.

pub mod candidates;
pub mod etcd;
pub mod host;
pub mod legs;
pub mod peers;
pub mod scenario;
pub mod zk;
