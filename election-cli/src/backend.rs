//! The coordination service named on the command line: building the backend (validated, no
//! traffic) and connecting with a backoff bounded by `--connection-timeout`.

use std::net::{ToSocketAddrs, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use election::{Client, CoordinationBackend};
use tokio::time::{sleep, Instant};
use tracing::warn;

use crate::{exit, Service};

/// A backend and how to name it in messages.
pub struct Backend {
    pub backend: Arc<dyn CoordinationBackend>,
    /// `ZooKeeper at HOSTS` or `etcd at ENDPOINTS`.
    pub what: String,
    /// The first host, to find this host's address towards the service.
    first_host: String,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend").field("what", &self.what).finish()
    }
}

/// Builds the backend of `service`; a bad connect string is a usage error.
pub fn build(service: &Service) -> Result<Backend, (i32, String)> {
    if let Some(zk) = &service.zookeeper {
        let mut builder = election::zk::ZkBackend::builder(zk.clone())
            .connection_timeout(service.connection_timeout);
        if let Some(tick) = service.zk_tick_time {
            builder = builder.server_tick_time(tick);
        }
        let backend = builder
            .build()
            .map_err(|e| (exit::USAGE, format!("--zookeeper {zk:?}: {e}")))?;
        let first_host = backend
            .hosts()
            .split(',')
            .next()
            .unwrap_or_default()
            .to_owned();
        return Ok(Backend {
            what: format!("ZooKeeper at {}", backend.hosts()),
            backend: Arc::new(backend),
            first_host,
        });
    }
    if let Some(endpoints) = &service.etcd {
        return build_etcd(endpoints, service);
    }
    Err((exit::USAGE, "one of --zookeeper or --etcd is needed".into()))
}

#[cfg(feature = "etcd")]
fn build_etcd(endpoints: &str, service: &Service) -> Result<Backend, (i32, String)> {
    let list: Vec<String> = endpoints.split(',').map(str::to_owned).collect();
    let first_host = list.first().cloned().unwrap_or_default();
    let backend = election::etcd::EtcdBackend::builder(list)
        .connect_timeout(service.connection_timeout)
        .build()
        .map_err(|e| (exit::USAGE, format!("--etcd {endpoints:?}: {e}")))?;
    Ok(Backend {
        what: format!("etcd at {endpoints}"),
        backend: Arc::new(backend),
        first_host,
    })
}

#[cfg(not(feature = "etcd"))]
fn build_etcd(_endpoints: &str, _service: &Service) -> Result<Backend, (i32, String)> {
    Err((
        exit::USAGE,
        "--etcd: this build of election has no etcd support (feature `etcd`)".into(),
    ))
}

impl Backend {
    /// This host's address towards the service (the source address a packet to its first host
    /// would leave from), or `None`. No packet is sent.
    pub fn local_address(&self) -> Option<String> {
        let host = self
            .first_host
            .trim_start_matches("http://")
            .trim_start_matches("https://");
        let target = host
            .to_socket_addrs()
            .or_else(|_| (host, 2181).to_socket_addrs())
            .ok()?
            .next()?;
        let bind = if target.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        };
        let socket = UdpSocket::bind(bind).ok()?;
        socket.connect(target).ok()?;
        Some(socket.local_addr().ok()?.ip().to_string())
    }

    /// Opens a session, retrying with a growing backoff until `limit` has passed.
    pub async fn connect(
        &self,
        session_timeout: Duration,
        limit: Duration,
    ) -> Result<Client, (i32, String)> {
        let deadline = Instant::now() + limit;
        let mut backoff = Duration::from_millis(100);
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let attempt = tokio::time::timeout(
                remaining,
                Client::builder(self.backend.clone())
                    .session_timeout(session_timeout)
                    .connect(),
            )
            .await;
            let error = match attempt {
                Ok(Ok(client)) => return Ok(client),
                Ok(Err(e)) if !e.is_retryable() => {
                    return Err((exit::FAILURE, format!("{}: {e}", self.what)))
                }
                Ok(Err(e)) => e.to_string(),
                Err(_) => "no session established in time".to_owned(),
            };
            if Instant::now() + backoff >= deadline {
                return Err((
                    exit::UNAVAILABLE,
                    format!(
                        "cannot reach {} within {} (--connection-timeout): {error}",
                        self.what,
                        humantime::format_duration(limit)
                    ),
                ));
            }
            warn!(service = %self.what, error = %error, retry_in = ?backoff, "cannot connect; retrying");
            sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }
}

/// This host's name (`uname -n`).
pub fn host_name() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}
