//! The conformance [`Harness`] on a real ZooKeeper server: every client connects through a TCP
//! proxy of its own, so one session can be cut off alone.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use election_core::testing::Harness;
use election_core::{BackendError, BackendSession, Candidate, CoordinationBackend, SessionId};
use election_zk::testing::{TcpProxy, TestPki, ZkSecurity, ZkServer};
use election_zk::{ZkBackend, ZkTls};

type Proxies = Arc<Mutex<BTreeMap<SessionId, Arc<TcpProxy>>>>;

/// A standalone ZooKeeper server with proxied clients.
pub struct ZkHarness {
    server: ZkServer,
    /// For a secure server: the PKI its certificates come from (clients use TLS and SASL).
    pki: Option<TestPki>,
    timeout: Duration,
    sessions: Proxies,
    /// The sessions of foreign contenders, by node path.
    contenders: Mutex<BTreeMap<String, zookeeper_client::Client>>,
}

impl ZkHarness {
    /// Starts a server (tickTime 200 ms); cases use a 2 s session timeout.
    pub fn start() -> Self {
        Self {
            server: ZkServer::start(),
            pki: None,
            timeout: Duration::from_secs(2),
            sessions: Arc::default(),
            contenders: Mutex::default(),
        }
    }

    /// Starts a server with a `secureClientPort` and SASL DIGEST-MD5 (user `election`); cases
    /// use a 4 s session timeout. Every client connects over TLS (with a client certificate) and
    /// authenticates with SASL, so its nodes get the default authenticated ACL (creator all,
    /// anyone read).
    pub fn start_secure() -> Self {
        let pki = TestPki::generate();
        let server =
            ZkServer::start_secure(ZkSecurity::new(&pki).sasl_user(SASL_USER, SASL_PASSWORD));
        let harness = Self {
            server,
            pki: Some(pki),
            // 4 s (the longest the server grants at tickTime 200 ms), not 2: zookeeper-client
            // gives a connection 2/5 of the session timeout, and a TLS handshake plus the two
            // SASL round trips to a JVM on a loaded 2-core machine went past 800 ms once in two
            // runs at 2 s, and past 1.2 s once at 3 s (a CI run sharing the cores with a
            // release build: a join timed out).
            timeout: Duration::from_secs(4),
            sessions: Arc::default(),
            contenders: Mutex::default(),
        };
        harness.warm_up();
        harness
    }

    /// Opens and closes one TLS + SASL session with a generous bound, on a thread of its own
    /// (the caller may be inside a runtime). A fresh JVM's first TLS handshake and SASL
    /// exchange load and compile the code of both, which on a loaded machine takes longer than
    /// zookeeper-client's connection timeout (2/5 of the 2 s sessions of the cases), so the
    /// first case to connect would time out for reasons of the test machine, not the backend.
    fn warm_up(&self) {
        let pki = self.pki.as_ref().expect("a secure harness");
        let backend = ZkBackend::builder(self.server.secure_connect_string())
            .tls(
                ZkTls::new(pki.ca_file())
                    .client_identity(pki.client_cert_file(), pki.client_key_file()),
            )
            .sasl_digest_md5(SASL_USER, SASL_PASSWORD)
            .connection_timeout(Duration::from_secs(30))
            .build()
            .expect("valid TLS and SASL settings");
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                let started = std::time::Instant::now();
                let session = backend
                    .open_session(Duration::from_secs(10))
                    .await
                    .expect("a first TLS + SASL session to the fresh server");
                eprintln!(
                    "measure: first TLS + SASL session in {:?}",
                    started.elapsed()
                );
                session.close().await;
            });
        })
        .join()
        .expect("warm-up thread");
    }

    /// The server.
    pub fn server(&self) -> &ZkServer {
        &self.server
    }

    /// The proxy the client of `session` connects through: to stall it, cut it, or slow it down
    /// with [`TcpProxy::set_delay`].
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

const SASL_USER: &str = "election";
const SASL_PASSWORD: &str = "conformance-s3cret";

/// A ZooKeeper backend whose connections go through one proxy, remembering which sessions it
/// opened.
struct Proxied {
    backend: ZkBackend,
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
impl Harness for ZkHarness {
    fn reports_sole(&self) -> bool {
        true
    }

    async fn backend(&self) -> Arc<dyn CoordinationBackend> {
        let backend = match &self.pki {
            None => {
                let proxy = Arc::new(TcpProxy::start(self.server.client_addr()));
                let backend = ZkBackend::builder(proxy.addr().to_string())
                    .server_tick_time(election_zk::testing::TICK_TIME)
                    .build()
                    .expect("valid connect string");
                (backend, proxy)
            }
            Some(pki) => {
                let secure = self.server.secure_connect_string();
                let proxy = Arc::new(TcpProxy::start(secure.parse().expect("address")));
                // The proxy listens on 127.0.0.1, the name the server's certificate carries.
                let backend = ZkBackend::builder(proxy.addr().to_string())
                    .server_tick_time(election_zk::testing::TICK_TIME)
                    .tls(
                        ZkTls::new(pki.ca_file())
                            .client_identity(pki.client_cert_file(), pki.client_key_file()),
                    )
                    .sasl_digest_md5(SASL_USER, SASL_PASSWORD)
                    .build()
                    .expect("valid TLS and SASL settings");
                (backend, proxy)
            }
        };
        let (backend, proxy) = backend;
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
        // The honest way: silence until the server expires the session, then let the client
        // reconnect and hear it.
        let proxy = self.proxy_of(session);
        proxy.cut();
        tokio::time::sleep(self.timeout + Duration::from_millis(600)).await;
        proxy.resume();
    }

    async fn cut(&self, session: SessionId) {
        // Silence, with the connection open: what a partition looks like to both ends.
        self.proxy_of(session).stall();
    }

    async fn heal(&self, session: SessionId) {
        self.proxy_of(session).resume();
    }

    async fn crash(&self, candidate: Candidate) {
        // zookeeper-client closes a dropped session: cut the link first, so nothing is said.
        let session = candidate.client().session().await.id();
        self.proxy_of(session).cut();
        candidate.abort();
    }

    async fn create_contender(
        &self,
        dir: &str,
        implementation: election_core::Implementation,
        data: &[u8],
    ) -> String {
        use zookeeper_client as zk;
        let client = crate::scenario::raw(&self.server.connect_string(), self.timeout).await;
        let persistent = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
        let mut at = String::new();
        for part in dir.split('/').filter(|p| !p.is_empty()) {
            at = format!("{at}/{part}");
            match client.create(&at, &[], &persistent).await {
                Ok(_) | Err(zk::Error::NodeExists) => {}
                Err(e) => panic!("create {at}: {e}"),
            }
        }
        let unique = client.session_id().0 as u64;
        let prefix = election_core::testing::contender_prefix(implementation, unique);
        let options = zk::CreateMode::EphemeralSequential.with_acls(zk::Acls::anyone_all());
        let (_, sequence) = client
            .create(&format!("{dir}/{prefix}"), data, &options)
            .await
            .unwrap_or_else(|e| panic!("create a contender in {dir}: {e}"));
        let name = format!("{prefix}{sequence}");
        self.contenders
            .lock()
            .expect("contenders")
            .insert(format!("{dir}/{name}"), client);
        name
    }

    async fn remove_contender(&self, dir: &str, name: &str) {
        let path = format!("{dir}/{name}");
        let client = self.contenders.lock().expect("contenders").remove(&path);
        let client = client.unwrap_or_else(|| panic!("{path} is no contender of this harness"));
        client
            .delete(&path, None)
            .await
            .unwrap_or_else(|e| panic!("delete {path}: {e}"));
    }

    fn slack(&self) -> Duration {
        Duration::from_millis(500)
    }
}
