//! The core's conformance suite, in full, on a real standalone ZooKeeper 3.8 server (one per
//! case). Needs ZooKeeper installed: `scripts/test.sh` installs it; without it these tests fail
//! with a message saying how.

use election_tests::zk::ZkHarness;

election_core::conformance_suite!(real, ZkHarness::start());
