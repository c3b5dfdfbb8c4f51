//! The conformance [`Harness`] on a real etcd member: every client connects through a TCP proxy
//! of its own, so one session can be cut off alone.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use election_core::testing::Harness;
use election_core::{BackendError, BackendSession, CoordinationBackend, SessionId};
use election_etcd::testing::{EtcdMember, TcpProxy};
use election_etcd::EtcdBackend;

type Proxies = Arc<Mutex<BTreeMap<SessionId, Arc<TcpProxy>>>>;

/// A single etcd member with proxied clients.
pub struct EtcdHarness {
    member: EtcdMember,
    timeout: Duration,
    sessions: Proxies,
    /// The leases of foreign contenders, by key.
    contenders: Mutex<BTreeMap<String, (etcd_client::Client, i64)>>,
}

impl EtcdHarness {
    /// Starts a member (etcd's default heartbeat and election timeout: the least TTL it grants
    /// is 2 s); cases use a 2 s session timeout.
    pub fn start() -> Self {
        Self {
            member: EtcdMember::start(),
            timeout: Duration::from_secs(2),
            sessions: Arc::default(),
            contenders: Mutex::default(),
        }
    }

    /// The member.
    pub fn member(&self) -> &EtcdMember {
        &self.member
    }

    /// The proxy the client of `session` connects through.
    ///
    /// # Panics
    /// When `session` was not opened through this harness.
    pub fn proxy_of(&self, session: SessionId) -> Arc<TcpProxy> {
        self.sessions
            .lock()
            .expect("sessions")
            .get(&session)
            .cloned()
            .unwrap_or_else(|| panic!("session {session} was not opened through this harness"))
    }
}

/// An etcd backend whose connections go through one proxy, remembering which sessions it
/// opened.
struct Proxied {
    backend: EtcdBackend,
    proxy: Arc<TcpProxy>,
    sessions: Proxies,
}

#[async_trait]
impl CoordinationBackend for Proxied {
    async fn open_session(
        &self,
        timeout: Duration,
    ) -> Result<Arc<dyn BackendSession>, BackendError> {
        let session = self.backend.open_session(timeout).await?;
        self.sessions
            .lock()
            .expect("sessions")
            .insert(session.id(), self.proxy.clone());
        Ok(session)
    }
}

#[async_trait]
impl Harness for EtcdHarness {
    async fn backend(&self) -> Arc<dyn CoordinationBackend> {
        let proxy = Arc::new(TcpProxy::start(self.member.client_addr()));
        let backend = EtcdBackend::builder([proxy.addr().to_string()])
            .build()
            .expect("valid endpoint");
        Arc::new(Proxied {
            backend,
            proxy,
            sessions: self.sessions.clone(),
        })
    }

    fn session_timeout(&self) -> Duration {
        self.timeout
    }

    async fn expire(&self, session: SessionId) {
        // The honest way: silence until the leader expires the lease, then let the client
        // reconnect and hear it.
        let proxy = self.proxy_of(session);
        proxy.cut();
        tokio::time::sleep(self.timeout + Duration::from_millis(1200)).await;
        proxy.resume();
    }

    async fn cut(&self, session: SessionId) {
        // Silence, with the connection open: what a partition looks like to both ends.
        self.proxy_of(session).stall();
    }

    async fn heal(&self, session: SessionId) {
        self.proxy_of(session).resume();
    }

    async fn create_contender(
        &self,
        dir: &str,
        implementation: election_core::Implementation,
        data: &[u8],
    ) -> String {
        let mut client =
            etcd_client::Client::connect([self.member.client_addr().to_string()], None)
                .await
                .expect("etcd client");
        // Long enough for any case; revoked when the contender is removed.
        let lease = client.lease_grant(60, None).await.expect("lease").id();
        let name = format!(
            "{}{:010}",
            election_core::testing::contender_prefix(implementation, lease as u64),
            lease as u64 % 1_000_000_000
        );
        let key = format!("{dir}/{name}");
        client
            .put(
                key.clone(),
                data,
                Some(etcd_client::PutOptions::new().with_lease(lease)),
            )
            .await
            .expect("put a contender");
        self.contenders
            .lock()
            .expect("contenders")
            .insert(key, (client, lease));
        name
    }

    async fn remove_contender(&self, dir: &str, name: &str) {
        let key = format!("{dir}/{name}");
        let found = self.contenders.lock().expect("contenders").remove(&key);
        let (mut client, lease) =
            found.unwrap_or_else(|| panic!("{key} is no contender of this harness"));
        client.lease_revoke(lease).await.expect("revoke");
    }

    fn slack(&self) -> Duration {
        Duration::from_millis(500)
    }
}
