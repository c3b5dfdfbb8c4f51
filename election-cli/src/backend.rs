//! The coordination service named on the command line: building the backend (validated, its
//! secrets read from files or the environment, no traffic) and connecting with a backoff
//! bounded by `--connection-timeout`.

use std::net::{ToSocketAddrs, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use election::secret::read_password_file;
use election::{Client, ConfigError, CoordinationBackend, ElectionError, ErrorKind};
use tokio::time::{sleep, Instant};
use tracing::warn;

use crate::{exit, Service, ZK_SASL_PASSWORD_ENV};

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

/// Builds the backend of `service`, reading its secrets (a client key, a password) from their
/// files or environment variables; a bad connect string or security setting is a usage error.
/// Nothing read is ever printed.
pub fn build(service: &Service) -> Result<Backend, (i32, String)> {
    if let Some(zk) = &service.zookeeper {
        return build_zk(zk, service);
    }
    if let Some(endpoints) = &service.etcd {
        return build_etcd(endpoints, service);
    }
    Err((exit::USAGE, "one of --zookeeper or --etcd is needed".into()))
}

fn usage(reason: impl Into<String>) -> (i32, String) {
    (exit::USAGE, reason.into())
}

/// The password of `user`: from `file` (checked as a secret file) or the environment variable
/// `env`, exactly one of them. `file_flag` and `user_flag` name the flags in messages.
fn password(
    user_flag: &str,
    user: Option<&String>,
    file_flag: &str,
    file: Option<&PathBuf>,
    env: &str,
) -> Result<Option<String>, (i32, String)> {
    let from_env = std::env::var_os(env);
    let Some(user) = user else {
        if from_env.is_some() {
            return Err(usage(format!(
                "{env} is set but {user_flag} is not: whose password is it?"
            )));
        }
        return Ok(None);
    };
    match (file, from_env) {
        (Some(_), Some(_)) => Err(usage(format!(
            "the password of {user_flag} {user:?} is given twice: use {file_flag} or {env}, not both"
        ))),
        (Some(path), None) => read_password_file(path)
            .map(Some)
            .map_err(|e| usage(format!("{file_flag}: {e}"))),
        (None, Some(value)) => match value.into_string() {
            Ok(p) if !p.is_empty() => Ok(Some(p)),
            Ok(_) => Err(usage(format!("{env} is empty"))),
            Err(_) => Err(usage(format!("{env} is not valid UTF-8"))),
        },
        (None, None) => Err(usage(format!(
            "{user_flag} {user:?} needs a password: {file_flag} FILE, or the password in {env}"
        ))),
    }
}

/// A build error of a backend: a secret file refused is named by its flag.
fn config_error(
    flags: &[(&str, Option<&PathBuf>)],
    fallback: &str,
    e: ConfigError,
) -> (i32, String) {
    let path = match &e {
        ConfigError::SecretReadableByOthers { path, .. } | ConfigError::SecretFile { path, .. } => {
            Some(path)
        }
        _ => None,
    };
    let flag = path.and_then(|p| {
        flags
            .iter()
            .find(|(_, f)| f.is_some_and(|f| f == p))
            .map(|(flag, _)| *flag)
    });
    usage(format!("{}: {e}", flag.unwrap_or(fallback)))
}

fn build_zk(zk: &str, service: &Service) -> Result<Backend, (i32, String)> {
    let sec = &service.security;
    let mut builder = election::zk::ZkBackend::builder(zk.to_owned())
        .connection_timeout(service.connection_timeout);
    if let Some(tick) = service.zk_tick_time {
        builder = builder.server_tick_time(tick);
    }
    if let Some(ca) = &sec.zk_tls_ca {
        let mut tls = election::zk::ZkTls::new(ca);
        if let (Some(cert), Some(key)) = (&sec.zk_tls_cert, &sec.zk_tls_key) {
            tls = tls.client_identity(cert, key);
        }
        builder = builder.tls(tls);
    }
    if let Some(password) = password(
        "--zk-sasl-user",
        sec.zk_sasl_user.as_ref(),
        "--zk-sasl-password-file",
        sec.zk_sasl_password_file.as_ref(),
        ZK_SASL_PASSWORD_ENV,
    )? {
        let user = sec.zk_sasl_user.clone().unwrap_or_default();
        builder = builder.sasl_digest_md5(user, password);
    }
    let backend = builder.build().map_err(|e| {
        config_error(
            &[
                ("--zk-tls-key", sec.zk_tls_key.as_ref()),
                ("--zk-tls-cert", sec.zk_tls_cert.as_ref()),
                ("--zk-tls-ca", sec.zk_tls_ca.as_ref()),
            ],
            &format!("--zookeeper {zk:?}"),
            e,
        )
    })?;
    let first_host = backend
        .hosts()
        .split(',')
        .next()
        .unwrap_or_default()
        .to_owned();
    Ok(Backend {
        what: format!("ZooKeeper at {}", backend.hosts()),
        backend: Arc::new(backend),
        first_host,
    })
}

#[cfg(feature = "etcd")]
fn build_etcd(endpoints: &str, service: &Service) -> Result<Backend, (i32, String)> {
    let sec = &service.security;
    let list: Vec<String> = endpoints.split(',').map(str::to_owned).collect();
    let first_host = list.first().cloned().unwrap_or_default();
    let mut builder =
        election::etcd::EtcdBackend::builder(list).connect_timeout(service.connection_timeout);
    if let Some(ca) = &sec.etcd_tls_ca {
        let mut tls = election::etcd::EtcdTls::new(ca);
        if let (Some(cert), Some(key)) = (&sec.etcd_tls_cert, &sec.etcd_tls_key) {
            tls = tls.client_identity(cert, key);
        }
        builder = builder.tls_files(tls);
    }
    if let Some(password) = password(
        "--etcd-user",
        sec.etcd_user.as_ref(),
        "--etcd-password-file",
        sec.etcd_password_file.as_ref(),
        crate::ETCD_PASSWORD_ENV,
    )? {
        let user = sec.etcd_user.clone().unwrap_or_default();
        builder = builder.auth(user, password);
    }
    let backend = builder.build().map_err(|e| {
        config_error(
            &[
                ("--etcd-tls-key", sec.etcd_tls_key.as_ref()),
                ("--etcd-tls-cert", sec.etcd_tls_cert.as_ref()),
                ("--etcd-tls-ca", sec.etcd_tls_ca.as_ref()),
            ],
            &format!("--etcd {endpoints:?}"),
            e,
        )
    })?;
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

    /// The exit code and one-line reason of a failure that retrying cannot cure: a refusal for
    /// a reason of security is [`exit::REFUSED`], said in the words of its typed error.
    pub fn refusal(&self, e: &ElectionError) -> (i32, String) {
        let ElectionError::Backend(backend) = e else {
            return (exit::FAILURE, format!("{}: {e}", self.what));
        };
        if backend.kind() != ErrorKind::NotPermitted {
            return (exit::FAILURE, format!("{}: {e}", self.what));
        }
        let why = election::SecurityError::of(backend)
            .map_or_else(|| backend.to_string(), ToString::to_string);
        (
            exit::REFUSED,
            format!("{} refused this client: {why}", self.what),
        )
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
                Ok(Err(e)) if !e.is_retryable() => return Err(self.refusal(&e)),
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
