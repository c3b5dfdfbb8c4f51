//! The core's conformance suite, in full, on a real single etcd 3.4 member (one per case). Needs
//! etcd: `scripts/test.sh` unpacks it; without it these tests fail with a message saying how.

use election_tests::etcd::EtcdHarness;

election_core::conformance_suite!(real, EtcdHarness::start());
