//! The core's conformance suite, in full, on the in-memory backend, in virtual time.

use std::sync::Arc;
use std::time::Duration;

use election_core::testing::Harness;
use election_core::{CoordinationBackend, SessionId};
use election_mem::MemCluster;

struct MemHarness {
    cluster: MemCluster,
}

impl MemHarness {
    fn new() -> Self {
        Self {
            cluster: MemCluster::new(),
        }
    }
}

#[async_trait::async_trait]
impl Harness for MemHarness {
    fn reports_sole(&self) -> bool {
        true
    }

    async fn backend(&self) -> Arc<dyn CoordinationBackend> {
        self.cluster.backend()
    }

    fn session_timeout(&self) -> Duration {
        Duration::from_secs(3)
    }

    async fn expire(&self, session: SessionId) {
        self.cluster.expire_session(session);
    }

    async fn cut(&self, session: SessionId) {
        self.cluster.cut(session);
    }

    async fn heal(&self, session: SessionId) {
        self.cluster.heal(session);
    }

    async fn create_contender(
        &self,
        dir: &str,
        implementation: election_core::Implementation,
        data: &[u8],
    ) -> String {
        self.cluster.create_contender(dir, implementation, data)
    }

    async fn remove_contender(&self, dir: &str, name: &str) {
        assert!(
            self.cluster.delete_entry(dir, name),
            "{dir}/{name} not found"
        );
    }
}

election_core::conformance_suite!(paused, MemHarness::new());

/// The whole suite on one service, one case after another (openraft's `test_all`).
#[tokio::test(start_paused = true)]
async fn all_cases_on_one_service() {
    election_core::testing::run_all(&MemHarness::new()).await;
}
