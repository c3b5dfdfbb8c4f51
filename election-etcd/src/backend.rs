//! [`EtcdBackend`]: the etcd v3 [`CoordinationBackend`], its builder and its settings, validated
//! at [`EtcdBackendBuilder::build`] before anything touches the network.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use election_core::{
    BackendError, BackendSession, ConfigError, CoordinationBackend, ElectionPath, ErrorKind,
    SecurityError,
};
use etcd_client::{Client, ConnectOptions};
use tokio::time::Instant;

use crate::error::backend_error;
use crate::session::EtcdSession;

/// The longest session timeout (lease TTL) this backend asks for: etcd's own maximum TTL.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(9_000_000_000);

/// What every session of a backend shares.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) endpoints: Vec<String>,
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) auth: Option<Credentials>,
    pub(crate) namespace: Option<ElectionPath>,
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<etcd_client::TlsOptions>,
    /// Diagnoses a connection that fails for a reason of security: with the roots and identity
    /// of `tls_files`, or (without TLS) whether the members speak TLS.
    #[cfg(feature = "tls")]
    pub(crate) probe: Option<election_core::tls_probe::Probe>,
}

impl Settings {
    /// The key of `path` (an election directory or the parent of one) under the namespace.
    pub(crate) fn key(&self, path: &str) -> String {
        match &self.namespace {
            Some(ns) => format!("{}{path}", ns.as_str()),
            None => path.to_owned(),
        }
    }
}

/// A user and password for etcd's authentication.
#[derive(Clone)]
pub(crate) struct Credentials {
    pub(crate) user: String,
    pub(crate) password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credentials({}:<redacted>)", self.user)
    }
}

/// The etcd backend: opens one etcd client (one gRPC channel) and one lease per
/// [`open_session`](CoordinationBackend::open_session).
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use std::time::Duration;
/// use election_core::CoordinationBackend;
/// use election_etcd::EtcdBackend;
///
/// let backend: Arc<dyn CoordinationBackend> = Arc::new(
///     EtcdBackend::builder(["10.0.0.1:2379", "10.0.0.2:2379", "10.0.0.3:2379"])
///         .namespace("/services")
///         .connect_timeout(Duration::from_secs(5))
///         .build()?,
/// );
/// let session = backend.open_session(Duration::from_secs(10)).await?;
/// println!("lease {} with TTL {:?}", session.id(), session.timeout());
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct EtcdBackend {
    settings: Arc<Settings>,
}

impl EtcdBackend {
    /// Starts a builder for the cluster reached at `endpoints`: `host:port`, `http://host:port`
    /// or (with the `tls` feature) `https://host:port` each.
    pub fn builder<I, S>(endpoints: I) -> EtcdBackendBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        EtcdBackendBuilder {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            connect_timeout: None,
            auth: None,
            namespace: None,
            #[cfg(feature = "tls")]
            tls: None,
            #[cfg(feature = "tls")]
            tls_files: None,
        }
    }

    /// The endpoints sessions connect to, as given.
    pub fn endpoints(&self) -> &[String] {
        &self.settings.endpoints
    }

    /// The prefix every key is placed under, if any.
    pub fn namespace(&self) -> Option<&ElectionPath> {
        self.settings.namespace.as_ref()
    }
}

/// Builds an [`EtcdBackend`]; nothing is checked or contacted until [`build`](Self::build).
#[derive(Clone)]
#[must_use]
pub struct EtcdBackendBuilder {
    endpoints: Vec<String>,
    connect_timeout: Option<Duration>,
    auth: Option<Credentials>,
    namespace: Option<String>,
    #[cfg(feature = "tls")]
    tls: Option<etcd_client::TlsOptions>,
    #[cfg(feature = "tls")]
    tls_files: Option<crate::EtcdTls>,
}

impl fmt::Debug for EtcdBackendBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EtcdBackendBuilder")
            .field("endpoints", &self.endpoints)
            .field("connect_timeout", &self.connect_timeout)
            .field("auth", &self.auth)
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl EtcdBackendBuilder {
    /// Bounds [`open_session`](CoordinationBackend::open_session): when no lease is granted
    /// within this time (an unreachable cluster, a refused connection), it fails with an
    /// [`ErrorKind::Other`] error. Defaults to the session timeout asked for.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// Authenticates every session as `user` (etcd's `auth enable` must be on, and the user's
    /// role must allow read and write on the election keys).
    pub fn auth(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.auth = Some(Credentials {
            user: user.into(),
            password: password.into(),
        });
        self
    }

    /// A prefix put before every key this backend reads or writes, like a ZooKeeper chroot:
    /// with `"/services"`, the election `/maxwell/leader` lives under the keys
    /// `/services/maxwell/leader/...`. It must be a valid [`ElectionPath`].
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }

    /// TLS to the members (the CA to trust, a client identity): applies to `https://` endpoints
    /// and to endpoints without a scheme.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, tls: etcd_client::TlsOptions) -> Self {
        self.tls = Some(tls);
        self
    }

    /// TLS from PEM files ([`EtcdTls`](crate::EtcdTls)), read and checked by
    /// [`build`](Self::build): a key file other users can read is refused.
    #[cfg(feature = "tls")]
    pub fn tls_files(mut self, tls: crate::EtcdTls) -> Self {
        self.tls_files = Some(tls);
        self
    }

    /// Validates the settings, without any network traffic.
    ///
    /// # Errors
    /// [`ConfigError::Backend`] with `what` naming the setting:
    /// - `"endpoints"`: none; an empty one; whitespace; a scheme other than `http://` or
    ///   `https://` (`https://` needs the `tls` feature); a path after the port; a host with
    ///   characters other than letters, digits, `-`, `.`, `_` (IPv6 goes in brackets:
    ///   `[::1]:2379`); a port that is missing, not a number, 0 or above 65535;
    /// - `"auth"`: an empty user;
    /// - `"namespace"`: not a valid [`ElectionPath`];
    /// - `"TLS"`: a CA, certificate or key file of [`tls_files`](Self::tls_files) that cannot
    ///   be read or holds no PEM. A key file other users can read is
    ///   [`ConfigError::SecretReadableByOthers`].
    ///
    /// [`ConfigError::ZeroDuration`] for a zero connect timeout.
    pub fn build(self) -> Result<EtcdBackend, ConfigError> {
        if self.endpoints.is_empty() {
            return Err(bad("endpoints", "at least one endpoint is needed".into()));
        }
        for e in &self.endpoints {
            check_endpoint(e).map_err(|reason| bad("endpoints", format!("{e:?}: {reason}")))?;
        }
        if self.connect_timeout == Some(Duration::ZERO) {
            return Err(ConfigError::ZeroDuration("connect timeout"));
        }
        if let Some(auth) = &self.auth {
            if auth.user.is_empty() {
                return Err(bad("auth", "the user must not be empty".into()));
            }
        }
        #[cfg(feature = "tls")]
        if self.tls.is_some() || self.tls_files.is_some() {
            if let Some(e) = self.endpoints.iter().find(|e| e.starts_with("http://")) {
                return Err(bad(
                    "endpoints",
                    format!("{e:?}: TLS is configured, so the endpoint must be https:// (or have no scheme)"),
                ));
            }
        }
        #[cfg(feature = "tls")]
        let (tls, probe) = match &self.tls_files {
            Some(files) => {
                let (options, probe) = crate::tls::load(files)?;
                (Some(options), Some(probe))
            }
            // Our own handshake cannot know the roots of options given whole; without TLS it
            // asks whether the members expect it.
            None if self.tls.is_some() => (self.tls, None),
            None if self.endpoints.iter().any(|e| e.starts_with("https://")) => (None, None),
            None => (None, Some(election_core::tls_probe::Probe::plain())),
        };
        let namespace = match self.namespace {
            None => None,
            Some(ns) => Some(
                ElectionPath::new(ns.clone())
                    .map_err(|e| bad("namespace", format!("{ns:?} is not a valid path: {e}")))?,
            ),
        };
        Ok(EtcdBackend {
            settings: Arc::new(Settings {
                endpoints: self.endpoints,
                connect_timeout: self.connect_timeout,
                auth: self.auth,
                namespace,
                #[cfg(feature = "tls")]
                tls,
                #[cfg(feature = "tls")]
                probe,
            }),
        })
    }
}

fn bad(what: &'static str, reason: String) -> ConfigError {
    ConfigError::Backend { what, reason }
}

/// Checks one endpoint: `[scheme://]host:port`.
fn check_endpoint(e: &str) -> Result<(), &'static str> {
    if e.is_empty() {
        return Err("empty endpoint");
    }
    if e.chars().any(char::is_whitespace) {
        return Err("whitespace in an endpoint");
    }
    let rest = if let Some(rest) = e.strip_prefix("http://") {
        rest
    } else if let Some(rest) = e.strip_prefix("https://") {
        if cfg!(not(feature = "tls")) {
            return Err("https:// needs the `tls` feature of election-etcd");
        }
        rest
    } else if e.contains("://") {
        return Err("the scheme must be http:// or https://");
    } else {
        e
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains('/') {
        return Err("an endpoint has no path");
    }
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (host, port) = v6.split_once(']').ok_or("an unclosed [ in the host")?;
        if host.is_empty() || !host.chars().all(|c| c.is_ascii_hexdigit() || c == ':') {
            return Err("not an IPv6 address in brackets");
        }
        (host, port.strip_prefix(':').ok_or("no port")?)
    } else {
        let (host, port) = rest.rsplit_once(':').ok_or("no port")?;
        if host.is_empty()
            || !host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        {
            return Err("a host is letters, digits, '-', '.', '_'");
        }
        (host, port)
    };
    let _ = host;
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err("the port must be a number in 1..=65535"),
        Ok(_) => Ok(()),
    }
}

/// The lease TTL to ask for a session timeout: whole seconds, rounded up.
/// How long a connection without TLS may take before we ask whether the members expect TLS.
#[cfg(feature = "tls")]
const PLAIN_PROBE_DELAY: Duration = Duration::from_millis(300);

/// `host:port` of an endpoint, without its scheme or trailing slash.
#[cfg(feature = "tls")]
fn host_port(endpoint: &str) -> &str {
    let rest = endpoint
        .strip_prefix("https://")
        .or_else(|| endpoint.strip_prefix("http://"))
        .unwrap_or(endpoint);
    rest.strip_suffix('/').unwrap_or(rest)
}

/// Wraps a failure of `Client::connect`: refused credentials are a
/// [`SecurityError::AuthenticationFailed`]; a refusal is `NotPermitted` and bad settings
/// `Invalid`; anything else `Other` (retry with back-off: no entry can have been written).
fn connect_error(settings: &Settings, endpoints: &str, e: etcd_client::Error) -> BackendError {
    if let Some(auth) = &settings.auth {
        // etcd 3.4 answers a wrong user or password with InvalidArgument.
        if e.to_string().contains("authentication failed") {
            return SecurityError::AuthenticationFailed {
                hosts: endpoints.to_owned(),
                mechanism: "user and password",
                user: Some(auth.user.clone()),
            }
            .into();
        }
    }
    let kind = match crate::error::classify(&e) {
        k @ (ErrorKind::NotPermitted | ErrorKind::Invalid) => k,
        _ => ErrorKind::Other,
    };
    BackendError::with_source(kind, format!("connect to {endpoints}: {e}"), e)
}

pub(crate) fn ttl_for(timeout: Duration) -> i64 {
    let secs = timeout.as_secs() + u64::from(timeout.subsec_nanos() > 0);
    secs.max(1) as i64
}

#[async_trait]
impl CoordinationBackend for EtcdBackend {
    /// Grants a lease whose TTL is `timeout` rounded up to whole seconds; the server may grant
    /// more (its minimum TTL, `1.5 x election-timeout` rounded up), and
    /// [`BackendSession::timeout`] reports what it granted.
    ///
    /// **Needs a tokio runtime**: the session's keep-alive runs as a task on it.
    ///
    /// # Errors
    /// - [`ErrorKind::Invalid`]: `timeout` is zero or above [`MAX_TIMEOUT`], or no tokio runtime;
    /// - [`ErrorKind::Other`]: no lease within the connect timeout (unreachable cluster);
    /// - [`ErrorKind::NotPermitted`], with a [`SecurityError`] as its
    ///   [source](std::error::Error::source): a wrong user or password; with the `tls`
    ///   feature also an untrusted, expired or misnamed member certificate, a client
    ///   certificate refused or missing, TLS to a plain member or a plain endpoint for a member
    ///   that expects TLS (found by one handshake of our own per member, so within moments, not
    ///   at the connect timeout).
    async fn open_session(
        &self,
        timeout: Duration,
    ) -> Result<Arc<dyn BackendSession>, BackendError> {
        if timeout.is_zero() || timeout > MAX_TIMEOUT {
            return Err(BackendError::new(
                ErrorKind::Invalid,
                format!("session timeout {timeout:?} must be in (0, {MAX_TIMEOUT:?}]"),
            ));
        }
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(BackendError::new(
                ErrorKind::Invalid,
                "the etcd backend needs a tokio runtime",
            ));
        }
        let settings = &self.settings;
        let endpoints = settings.endpoints.join(",");
        let bound = settings.connect_timeout.unwrap_or(timeout);
        let deadline = Instant::now() + bound;
        let ttl = ttl_for(timeout);
        // HTTP/2 pings find a dead connection (a silent partition) well within the timeout.
        let granted_guess = Duration::from_secs(ttl as u64);
        let mut options = ConnectOptions::new()
            .with_connect_timeout(bound)
            .with_keep_alive(granted_guess / 4, granted_guess / 4)
            .with_keep_alive_while_idle(true);
        if let Some(auth) = &settings.auth {
            options = options.with_user(auth.user.clone(), auth.password.clone());
        }
        #[cfg(feature = "tls")]
        if let Some(tls) = &settings.tls {
            options = options.with_tls(tls.clone());
        }
        let unreachable = |detail: String| {
            BackendError::new(
                ErrorKind::Other,
                format!("connect to {endpoints}: no lease within {bound:?}{detail}"),
            )
        };
        let attempt = async {
            let client = match tokio::time::timeout_at(
                deadline,
                Client::connect(&settings.endpoints, Some(options)),
            )
            .await
            {
                Err(_) => return Err(unreachable(String::new())),
                Ok(Err(e)) => return Err(connect_error(settings, &endpoints, e)),
                Ok(Ok(client)) => client,
            };
            // The lease is counted from when the leader grants it, after this instant.
            let sent_at = Instant::now();
            let mut lease = client.lease_client();
            match tokio::time::timeout_at(deadline, lease.grant(ttl, None)).await {
                Err(_) => Err(unreachable(String::new())),
                Ok(Err(e)) => {
                    let e = backend_error("grant lease on", &endpoints, e);
                    // No entry can exist yet: an unknown outcome is only a lease that expires.
                    Err(match e.kind() {
                        ErrorKind::OutcomeUnknown => unreachable(format!(": {e}")),
                        _ => e,
                    })
                }
                Ok(Ok(granted)) => Ok((client, sent_at, granted)),
            }
        };
        #[cfg(feature = "tls")]
        let attempt = async {
            let Some(probe) = &settings.probe else {
                return attempt.await;
            };
            // A handshake of our own per member, to say why TLS fails (etcd-client retries a
            // refused handshake until the deadline). Without TLS, only when the connection is
            // slow to come: a member that answers TLS was meant to be reached over it.
            let hosts: Vec<&str> = settings.endpoints.iter().map(|e| host_port(e)).collect();
            let delay = if settings.tls.is_none() {
                PLAIN_PROBE_DELAY.min(bound / 4)
            } else {
                Duration::ZERO
            };
            let started = Instant::now();
            let diagnosis = async {
                tokio::time::sleep(delay).await;
                probe.diagnose(&hosts, bound).await
            };
            tokio::pin!(attempt, diagnosis);
            let refused = tokio::select! {
                biased;
                Some(refused) = &mut diagnosis => refused,
                done = &mut attempt => match done {
                    // etcd-client may give up on a refused handshake before our own is done:
                    // its verdict explains a failure to connect.
                    Err(e) if e.kind() == ErrorKind::Other => {
                        let verdict = if started.elapsed() < delay {
                            // Failed before our handshake was due: make it now.
                            probe.diagnose(&hosts, bound).await
                        } else {
                            diagnosis.await
                        };
                        match verdict {
                            Some(refused) => refused,
                            None => return Err(e),
                        }
                    }
                    done => return done,
                },
            };
            tracing::error!(endpoints = %endpoints, error = %refused, "etcd refused this client");
            Err(refused.into())
        };
        let (client, sent_at, granted) = attempt.await?;
        if granted.ttl() <= 0 {
            return Err(BackendError::new(
                ErrorKind::Other,
                format!("grant lease on {endpoints}: {}", granted.error()),
            ));
        }
        Ok(Arc::new(EtcdSession::start(
            client,
            settings.clone(),
            granted.id(),
            Duration::from_secs(granted.ttl() as u64),
            sent_at,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn what(b: EtcdBackendBuilder) -> String {
        match b.build() {
            Err(ConfigError::Backend { what, .. }) => what.to_owned(),
            other => panic!("expected a backend config error, got {other:?}"),
        }
    }

    #[test]
    fn builds_with_defaults() {
        let b = EtcdBackend::builder(["127.0.0.1:2379", "http://h-1.example:2379", "[::1]:1"])
            .namespace("/ns")
            .build()
            .unwrap();
        assert_eq!(b.endpoints().len(), 3);
        assert_eq!(b.namespace().unwrap().as_str(), "/ns");
    }

    #[test]
    fn malformed_endpoints_fail_at_build() {
        let none: [&str; 0] = [];
        assert_eq!(what(EtcdBackend::builder(none)), "endpoints");
        for bad in [
            "",
            "127.0.0.1",
            "127.0.0.1:0",
            "127.0.0.1:65536",
            "127.0.0.1:x",
            "h:1/path",
            "unix://sock:1",
            "a b:1",
            "h!:1",
            "[::1:1",
            ":2379",
        ] {
            assert_eq!(what(EtcdBackend::builder([bad])), "endpoints", "{bad:?}");
        }
        #[cfg(not(feature = "tls"))]
        assert_eq!(what(EtcdBackend::builder(["https://h:1"])), "endpoints");
    }

    #[test]
    fn namespace_auth_and_timeout_are_checked() {
        assert_eq!(
            what(EtcdBackend::builder(["h:1"]).namespace("ns")),
            "namespace"
        );
        assert_eq!(
            what(EtcdBackend::builder(["h:1"]).namespace("/ns/")),
            "namespace"
        );
        assert_eq!(what(EtcdBackend::builder(["h:1"]).auth("", "p")), "auth");
        let b = EtcdBackend::builder(["h:1"]).auth("u", "secret");
        assert!(!format!("{b:?}").contains("secret"));
        let e = EtcdBackend::builder(["h:1"])
            .connect_timeout(Duration::ZERO)
            .build()
            .unwrap_err();
        assert_eq!(e, ConfigError::ZeroDuration("connect timeout"));
    }

    #[cfg(feature = "tls")]
    #[test]
    fn an_http_endpoint_with_tls_settings_is_refused_at_build() {
        let tls = etcd_client::TlsOptions::new();
        let e = EtcdBackend::builder(["https://h:1", "http://h:2"])
            .tls(tls.clone())
            .build()
            .unwrap_err();
        assert!(
            matches!(&e, ConfigError::Backend { what: "endpoints", reason } if reason.contains("http://h:2")),
            "{e}"
        );
        EtcdBackend::builder(["https://h:1", "h:2"])
            .tls(tls)
            .build()
            .unwrap();
    }

    #[cfg(feature = "tls")]
    #[test]
    fn endpoints_become_host_and_port() {
        assert_eq!(host_port("https://h:1/"), "h:1");
        assert_eq!(host_port("http://[::1]:2"), "[::1]:2");
        assert_eq!(host_port("h:3"), "h:3");
    }

    #[test]
    fn ttl_rounds_up_to_whole_seconds() {
        assert_eq!(ttl_for(Duration::from_millis(1)), 1);
        assert_eq!(ttl_for(Duration::from_secs(2)), 2);
        assert_eq!(ttl_for(Duration::from_millis(2001)), 3);
    }

    #[test]
    fn open_session_rejects_bad_timeouts_without_connecting() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let b = EtcdBackend::builder(["127.0.0.1:1"]).build().unwrap();
        for t in [Duration::ZERO, MAX_TIMEOUT + Duration::from_secs(1)] {
            let e = rt.block_on(b.open_session(t)).err().unwrap();
            assert_eq!(e.kind(), ErrorKind::Invalid, "{t:?}");
        }
    }

    #[test]
    fn unreachable_cluster_fails_within_the_connect_timeout() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let b = EtcdBackend::builder([format!("127.0.0.1:{port}")])
            .connect_timeout(Duration::from_millis(300))
            .build()
            .unwrap();
        let start = std::time::Instant::now();
        let e = rt
            .block_on(b.open_session(Duration::from_secs(30)))
            .err()
            .unwrap();
        let took = start.elapsed();
        assert_eq!(e.kind(), ErrorKind::Other, "{e}");
        assert!(took < Duration::from_secs(2), "took {took:?}");
    }
}
