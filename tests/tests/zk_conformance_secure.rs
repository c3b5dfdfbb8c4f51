//! The core's conformance suite, in full, over TLS and SASL DIGEST-MD5: a real standalone
//! ZooKeeper 3.8 server per case with a `secureClientPort` (certificates generated at test
//! time) and a JAAS user; every client presents a client certificate, checks the server's,
//! authenticates with SASL and creates its nodes with the authenticated default ACL (creator
//! all, anyone read). Needs ZooKeeper and Debian's Netty jars (`scripts/test.sh` installs them).

use election_tests::zk::ZkHarness;

election_core::conformance_suite!(real, ZkHarness::start_secure());
