//! [`ZkBackend`]: the ZooKeeper [`CoordinationBackend`], its builder and its settings, validated
//! at [`ZkBackendBuilder::build`] before anything touches the network.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use election_core::{
    BackendError, BackendSession, ConfigError, CoordinationBackend, ElectionPath, ErrorKind,
};
use tokio::time::Instant;
use zookeeper_client as zk;

use crate::connect::ConnectString;
use crate::error::{backend_error, connect_error, AuthDescription};
use crate::session::ZkSession;

/// The ACL given to the nodes this backend creates (entries and missing parents).
///
/// # The rule
/// Every candidate of an election needs CREATE and DELETE on the election's directory (ZooKeeper
/// checks both on the parent of the entry), and READ to list it; and whichever candidate finds
/// the directory missing (first join, or after an administrator deleted it) creates it, with
/// this ACL. So every candidate of one election must use the same `NodeAcl` and, with
/// [`CreatorAll`](Self::CreatorAll), the same digest identity: a directory re-created by one
/// identity refuses the others. A directory provisioned by an administrator must grant them
/// CREATE, DELETE and READ. A join that is refused says which node refused and its ACL; an
/// entry that cannot be deleted is never left behind (the session is closed, which deletes it).
///
/// # Who can delete a leader's entry
/// ZooKeeper checks DELETE on the *parent* of the node deleted: on the election directory. With
/// [`CreatorAllAnyoneRead`](Self::CreatorAllAnyoneRead) (the default once the backend
/// authenticates) or [`CreatorAll`](Self::CreatorAll), only the election's identity holds
/// DELETE there, so another tenant's client cannot delete the leader's entry to force a
/// failover, nor join. With [`Open`](Self::Open), anyone can.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeAcl {
    /// `world:anyone` with every permission: anyone may read, join or delete. The default
    /// without authentication.
    Open,
    /// Every permission for the authenticated creator only (`auth::` with all permissions);
    /// needs [`ZkBackendBuilder::digest_auth`]. Other identities cannot even read the entries,
    /// nor join: every candidate of the election must use the same identity (see the rule
    /// above).
    CreatorAll,
    /// Every permission for the authenticated creator (`auth::`), READ for `world:anyone`:
    /// anyone may list the election and read who leads, only the election's identity may join
    /// or delete. The default when the backend authenticates (digest or SASL); needs it.
    CreatorAllAnyoneRead,
}

/// What every session of a backend shares.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) connect: ConnectString,
    pub(crate) connection_timeout: Option<Duration>,
    pub(crate) auth: Option<DigestAuth>,
    #[cfg(feature = "sasl")]
    pub(crate) sasl: Option<SaslAuth>,
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<crate::tls::TlsSettings>,
    pub(crate) acl: NodeAcl,
    pub(crate) tick_time: Option<Duration>,
    pub(crate) probe_members: bool,
}

/// ZooKeeper's default `tickTime`, assumed when [`ZkBackendBuilder::server_tick_time`] is not set.
pub const DEFAULT_SERVER_TICK_TIME: Duration = Duration::from_secs(2);

impl Settings {
    /// A connector with this backend's credentials and TLS settings.
    pub(crate) fn connector(&self, timeout: Duration) -> zk::Connector {
        let mut connector = zk::Client::connector().with_session_timeout(timeout);
        if let Some(auth) = &self.auth {
            connector = connector.with_auth("digest", &auth.credentials());
        }
        #[cfg(feature = "sasl")]
        if let Some(sasl) = &self.sasl {
            connector = connector.with_sasl(zk::SaslOptions::digest_md5(
                sasl.user.clone(),
                sasl.password.clone(),
            ));
        }
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            connector = connector.with_tls(tls.options.clone());
        }
        connector
    }

    /// Connects `connector` to `hosts`: over TLS to every host when TLS is set.
    pub(crate) async fn connect(
        &self,
        connector: zk::Connector,
        hosts: &str,
    ) -> Result<zk::Client, zk::Error> {
        #[cfg(feature = "tls")]
        if self.tls.is_some() {
            return connector.secure_connect(hosts).await;
        }
        connector.connect(hosts).await
    }

    /// Who this backend authenticates as, for errors and logs (never a password).
    pub(crate) fn identity(&self) -> AuthDescription {
        #[cfg(feature = "sasl")]
        if let Some(sasl) = &self.sasl {
            return ("SASL DIGEST-MD5", Some(sasl.user.clone()));
        }
        match &self.auth {
            Some(auth) => ("digest", Some(auth.user.clone())),
            None => ("none configured", None),
        }
    }

    /// How far the ZooKeeper leader's view of a session of `timeout` may lag a proof of contact
    /// (see [`crate::liveness`]): the leader pings each member every `tickTime / 2`, plus as much
    /// again for the member's delays, so three quarters of a tick; never more than 3/8 of the
    /// timeout, since ZooKeeper grants no session timeout under two ticks unless its
    /// `minSessionTimeout` is lowered.
    pub(crate) fn leader_lag_margin(&self, timeout: Duration) -> Duration {
        let tick = self.tick_time.unwrap_or(DEFAULT_SERVER_TICK_TIME);
        (tick * 3 / 4).min(timeout * 3 / 8)
    }
}

/// `user:password` for ZooKeeper's digest scheme.
#[derive(Clone)]
pub(crate) struct DigestAuth {
    user: String,
    password: String,
}

impl DigestAuth {
    fn credentials(&self) -> Vec<u8> {
        format!("{}:{}", self.user, self.password).into_bytes()
    }
}

impl fmt::Debug for DigestAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DigestAuth({}:<redacted>)", self.user)
    }
}

/// A user and password for SASL DIGEST-MD5.
#[cfg(feature = "sasl")]
#[derive(Clone)]
pub(crate) struct SaslAuth {
    user: String,
    password: String,
}

#[cfg(feature = "sasl")]
impl fmt::Debug for SaslAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SaslAuth(DIGEST-MD5 {}:<redacted>)", self.user)
    }
}

/// The ZooKeeper backend: opens one ZooKeeper session (one `zookeeper_client::Client`) per
/// [`open_session`](CoordinationBackend::open_session).
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use std::time::Duration;
/// use election_core::CoordinationBackend;
/// use election_zk::ZkBackend;
///
/// let backend: Arc<dyn CoordinationBackend> = Arc::new(
///     ZkBackend::builder("10.0.0.1:2181,10.0.0.2:2181/services")
///         .connection_timeout(Duration::from_secs(5))
///         .build()?,
/// );
/// let session = backend.open_session(Duration::from_secs(10)).await?;
/// println!("session {} with timeout {:?}", session.id(), session.timeout());
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct ZkBackend {
    settings: Arc<Settings>,
}

impl ZkBackend {
    /// Starts a builder for the ensemble at `connect_string`:
    /// `host:port[,host:port...][/chroot]` (see [`ZkBackendBuilder::build`] for the rules).
    pub fn builder(connect_string: impl Into<String>) -> ZkBackendBuilder {
        ZkBackendBuilder {
            connect_string: connect_string.into(),
            connection_timeout: None,
            auth: None,
            #[cfg(feature = "sasl")]
            sasl: None,
            #[cfg(feature = "tls")]
            tls: None,
            acl: None,
            tick_time: None,
            probe_members: true,
        }
    }

    /// The hosts sessions connect to, normalised (`host:port,...`, without the chroot).
    pub fn hosts(&self) -> &str {
        &self.settings.connect.hosts
    }

    /// The chroot every path is placed under, if any.
    pub fn chroot(&self) -> Option<&ElectionPath> {
        self.settings.connect.chroot.as_ref()
    }

    /// The ACL of the nodes this backend creates.
    pub fn node_acl(&self) -> NodeAcl {
        self.settings.acl
    }
}

/// A `ZkBackend` is usable wherever an `Arc<dyn CoordinationBackend>` is wanted, with no manual
/// wrap: `Candidate::builder(..).join(ZkBackend::builder(zk).build()?)`.
impl From<ZkBackend> for Arc<dyn election_core::CoordinationBackend> {
    fn from(backend: ZkBackend) -> Self {
        Arc::new(backend)
    }
}

/// Builds a [`ZkBackend`]; nothing is checked or contacted until [`build`](Self::build).
#[derive(Clone)]
#[must_use]
pub struct ZkBackendBuilder {
    connect_string: String,
    connection_timeout: Option<Duration>,
    auth: Option<DigestAuth>,
    #[cfg(feature = "sasl")]
    sasl: Option<SaslAuth>,
    #[cfg(feature = "tls")]
    tls: Option<crate::tls::ZkTls>,
    acl: Option<NodeAcl>,
    tick_time: Option<Duration>,
    probe_members: bool,
}

impl fmt::Debug for ZkBackendBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("ZkBackendBuilder");
        d.field("connect_string", &self.connect_string)
            .field("connection_timeout", &self.connection_timeout)
            .field("auth", &self.auth);
        #[cfg(feature = "sasl")]
        d.field("sasl", &self.sasl);
        #[cfg(feature = "tls")]
        d.field("tls", &self.tls);
        d.field("acl", &self.acl)
            .field("tick_time", &self.tick_time)
            .field("probe_members", &self.probe_members)
            .finish()
    }
}

impl ZkBackendBuilder {
    /// The servers' `tickTime` (default [`DEFAULT_SERVER_TICK_TIME`], ZooKeeper's own default).
    ///
    /// On an ensemble the elected ZooKeeper leader expires sessions, and hears of a session only
    /// through the member it is connected to, every `tickTime / 2`. A leader therefore counts its
    /// last contact three quarters of a tick before its latest proof that the ZooKeeper leader
    /// was reachable, and steps down that much earlier after a silence (at most 3/8 of the
    /// session timeout). Set the real value to step down no earlier than needed; a value below
    /// the real one would let a leader lead on past its session's expiry.
    pub fn server_tick_time(mut self, tick: Duration) -> Self {
        self.tick_time = Some(tick);
        self
    }

    /// Whether opening a session first asks each host of the connect string what session
    /// timeout it grants, and asks for the least (default `true`; only done with two hosts or
    /// more). ZooKeeper renegotiates the timeout on every reconnect, and a member with a lower
    /// `maxSessionTimeout` would otherwise shorten the session without the election knowing.
    /// Turn it off only when every member has the same `maxSessionTimeout` (at least the timeout
    /// asked for): it costs a short-lived session per member at each session open.
    pub fn probe_members(mut self, probe: bool) -> Self {
        self.probe_members = probe;
        self
    }

    /// Bounds [`open_session`](CoordinationBackend::open_session): when no session is
    /// established within this time (an unreachable ensemble, a refused connection), it fails
    /// with an [`ErrorKind::Other`] error. Defaults to the session timeout asked for.
    pub fn connection_timeout(mut self, timeout: Duration) -> Self {
        self.connection_timeout = Some(timeout);
        self
    }

    /// Authenticates every session with ZooKeeper's digest scheme (`addauth digest
    /// user:password`). Needed to use [`NodeAcl::CreatorAll`] and to work under nodes whose ACL
    /// names this identity.
    pub fn digest_auth(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.auth = Some(DigestAuth {
            user: user.into(),
            password: password.into(),
        });
        self
    }

    /// Authenticates every session with SASL DIGEST-MD5 as `user` (a `user_<name>` of the
    /// servers' JAAS `Server` section). A refused password stops the candidate with
    /// [`SecurityError::AuthenticationFailed`](crate::SecurityError::AuthenticationFailed).
    ///
    /// GSSAPI (Kerberos) is not offered: zookeeper-client supports it only through the system's
    /// Kerberos libraries and a ticket cache, which this project cannot build or test without a
    /// KDC. Read the password from a file with
    /// [`read_password_file`](election_core::secret::read_password_file), never from a command
    /// line.
    #[cfg(feature = "sasl")]
    pub fn sasl_digest_md5(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.sasl = Some(SaslAuth {
            user: user.into(),
            password: password.into(),
        });
        self
    }

    /// Connects over TLS to every host (the servers' `secureClientPort`), checking each
    /// server's certificate against the CA of `tls` and the host name of the connect string.
    /// The files are read (and the key's permissions checked) by [`build`](Self::build).
    #[cfg(feature = "tls")]
    pub fn tls(mut self, tls: crate::tls::ZkTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// The ACL of the nodes this backend creates: [`NodeAcl::CreatorAllAnyoneRead`] by default
    /// when the backend authenticates (digest or SASL), else [`NodeAcl::Open`].
    pub fn node_acl(mut self, acl: NodeAcl) -> Self {
        self.acl = Some(acl);
        self
    }

    /// Validates the settings, without any network traffic.
    ///
    /// # Errors
    /// [`ConfigError::Backend`] with `what` naming the setting:
    /// - `"connect string"`: empty; whitespace; an empty host (`a:1,,b:2`); a host with characters
    ///   other than letters, digits, `-`, `.`, `_` (IPv6 goes in brackets: `[::1]:2181`); a port
    ///   that is empty, not a number, 0 or above 65535 (a missing port means 2181); a scheme other
    ///   than `tcp://`; a chroot not after the last host, or not a valid
    ///   [`ElectionPath`] (`/`, `//`, trailing `/`, `.`/`..`, `/zookeeper`);
    /// - `"digest auth"`: an empty user, or a user containing `:`;
    /// - `"node ACL"`: [`NodeAcl::CreatorAll`] or [`NodeAcl::CreatorAllAnyoneRead`] without
    ///   authentication;
    /// - `"sasl"`: an empty user or password;
    /// - `"TLS"`: a CA, certificate or key file that cannot be read or holds no usable PEM;
    ///   `tcp+tls://` hosts without [`tls`](Self::tls), or `tcp://` hosts with it.
    ///
    /// [`ConfigError::SecretReadableByOthers`] for a client key file other users can read,
    /// [`ConfigError::SecretFile`] for one that cannot be read.
    /// [`ConfigError::ZeroDuration`] for a zero connection timeout.
    pub fn build(self) -> Result<ZkBackend, ConfigError> {
        let connect = ConnectString::parse(&self.connect_string)?;
        if self.connection_timeout == Some(Duration::ZERO) {
            return Err(ConfigError::ZeroDuration("connection timeout"));
        }
        if self.tick_time == Some(Duration::ZERO) {
            return Err(ConfigError::ZeroDuration("server tick time"));
        }
        if let Some(auth) = &self.auth {
            if auth.user.is_empty() || auth.user.contains(':') {
                return Err(ConfigError::Backend {
                    what: "digest auth",
                    reason: format!("user {:?} must be non-empty and without ':'", auth.user),
                });
            }
        }
        #[allow(unused_mut)]
        let mut authenticated = self.auth.is_some();
        #[cfg(feature = "sasl")]
        if let Some(sasl) = &self.sasl {
            if sasl.user.is_empty() || sasl.password.is_empty() {
                return Err(ConfigError::Backend {
                    what: "sasl",
                    reason: format!("user {:?} and its password must be non-empty", sasl.user),
                });
            }
            authenticated = true;
        }
        let acl = self.acl.unwrap_or(if authenticated {
            NodeAcl::CreatorAllAnyoneRead
        } else {
            NodeAcl::Open
        });
        if acl != NodeAcl::Open && !authenticated {
            return Err(ConfigError::Backend {
                what: "node ACL",
                reason: format!(
                    "{acl:?} needs an authenticated identity: set digest_auth or sasl_digest_md5"
                ),
            });
        }
        #[cfg(feature = "tls")]
        let tls = match &self.tls {
            Some(tls) => {
                if connect.plain_schemes > 0 {
                    return Err(ConfigError::Backend {
                        what: "TLS",
                        reason: "the connect string names tcp:// hosts, but TLS is set: every \
                                 host is reached over TLS (write them without a scheme, or \
                                 with tcp+tls://)"
                            .into(),
                    });
                }
                Some(crate::tls::load(tls)?)
            }
            None => None,
        };
        #[cfg(feature = "tls")]
        let tls_set = tls.is_some();
        #[cfg(not(feature = "tls"))]
        let tls_set = false;
        if connect.tls_schemes > 0 && !tls_set {
            return Err(ConfigError::Backend {
                what: "TLS",
                reason: if cfg!(feature = "tls") {
                    "tcp+tls:// hosts need TLS settings: call ZkBackendBuilder::tls".into()
                } else {
                    "tcp+tls:// hosts need the `tls` feature of election-zk".into()
                },
            });
        }
        Ok(ZkBackend {
            settings: Arc::new(Settings {
                connect,
                connection_timeout: self.connection_timeout,
                auth: self.auth,
                #[cfg(feature = "sasl")]
                sasl: self.sasl,
                #[cfg(feature = "tls")]
                tls,
                acl,
                tick_time: self.tick_time,
                probe_members: self.probe_members,
            }),
        })
    }
}

/// How long asking one member what session timeout it grants may take.
const PROBE_BOUND: Duration = Duration::from_secs(2);

impl ZkBackend {
    /// The session timeout to ask for so that every member grants the same one.
    ///
    /// ZooKeeper renegotiates a session's timeout whenever the client reconnects, within the
    /// `minSessionTimeout..=maxSessionTimeout` of the member it reconnects to; and the session's
    /// deadlines then follow the new value. A member with a lower `maxSessionTimeout` would
    /// shorten the session behind the election's back (zookeeper-client 0.11 does not report the
    /// renegotiated value), so that its leader would step down too late. With more than one host
    /// in the connect string, each member is asked first (a short-lived session each, in
    /// parallel, bounded by 2 s), and the least it grants is asked for: every member then grants
    /// it on any reconnect. A member that cannot be asked is skipped, with a warning.
    async fn timeout_every_member_grants(&self, timeout: Duration) -> Duration {
        let hosts: Vec<String> = self
            .settings
            .connect
            .hosts
            .split(',')
            .map(str::to_owned)
            .collect();
        if hosts.len() < 2 || !self.settings.probe_members {
            return timeout;
        }
        let bound = PROBE_BOUND.min(self.settings.connection_timeout.unwrap_or(PROBE_BOUND));
        let mut probes = tokio::task::JoinSet::new();
        for host in hosts {
            // One try: a member that refuses the connection is skipped at once.
            let connector = self.settings.connector(timeout).with_fail_eagerly();
            let settings = self.settings.clone();
            probes.spawn(async move {
                let connecting = settings.connect(connector, &host);
                let granted = match tokio::time::timeout(bound, connecting).await {
                    // Dropping the client closes its session.
                    Ok(Ok(client)) => Some(client.session_timeout()),
                    _ => None,
                };
                (host, granted)
            });
        }
        let mut least = timeout;
        while let Some(probe) = probes.join_next().await {
            match probe {
                Ok((host, Some(granted))) => {
                    if granted < least {
                        tracing::info!(
                            host,
                            granted_ms = granted.as_millis() as u64,
                            asked_ms = timeout.as_millis() as u64,
                            "a member grants a shorter session timeout: asking every member for it"
                        );
                    }
                    least = least.min(granted);
                }
                Ok((host, None)) => tracing::warn!(
                    host,
                    "cannot ask this member what session timeout it grants; if its \
                     maxSessionTimeout is lower, a reconnect to it would shorten the session"
                ),
                Err(e) => tracing::warn!(error = %e, "session timeout probe failed"),
            }
        }
        least
    }
}

/// Why a connect failed.
enum Refusal {
    Zk(zk::Error),
    #[cfg(feature = "tls")]
    Tls(crate::error::SecurityError),
}

/// The longest session timeout ZooKeeper can be asked for (milliseconds in an `i32`).
const MAX_TIMEOUT: Duration = Duration::from_millis(i32::MAX as u64);

#[async_trait]
impl CoordinationBackend for ZkBackend {
    /// Connects a new `zookeeper_client::Client` asking for `timeout`; the server may grant
    /// another (within its `minSessionTimeout..=maxSessionTimeout`), which
    /// [`BackendSession::timeout`] reports.
    ///
    /// **Needs a tokio runtime**: the client spawns its session task on it (zookeeper-client
    /// panics without one; this method fails with [`ErrorKind::Invalid`] instead).
    ///
    /// # Errors
    /// - [`ErrorKind::Invalid`]: `timeout` is zero or above `i32::MAX` milliseconds, or no tokio
    ///   runtime;
    /// - [`ErrorKind::Other`]: no session within the connection timeout (unreachable ensemble);
    /// - [`ErrorKind::NotPermitted`]: authentication failed.
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
                "the ZooKeeper backend needs a tokio runtime",
            ));
        }
        let settings = &self.settings;
        let hosts = settings.connect.hosts.as_str();
        let timeout = self.timeout_every_member_grants(timeout).await;
        let connector = settings.connector(timeout);
        let bound = settings.connection_timeout.unwrap_or(timeout);
        let created = Instant::now();
        let deadline = created + bound;
        let unreachable = || {
            BackendError::new(
                ErrorKind::Other,
                format!("connect to {hosts}: no session within {bound:?}"),
            )
        };
        let connecting = tokio::time::timeout_at(deadline, settings.connect(connector, hosts));
        #[cfg(feature = "tls")]
        let connecting = async {
            let Some(tls) = &settings.tls else {
                return connecting.await.map(|r| r.map_err(Refusal::Zk));
            };
            // A handshake of our own per host, to say why TLS fails (zookeeper-client would
            // retry until the deadline and report a timeout).
            let diagnosis = tls.diagnose(hosts, bound);
            tokio::pin!(connecting, diagnosis);
            tokio::select! {
                biased;
                Some(refused) = &mut diagnosis => {
                    tracing::error!(error = %refused, "TLS to ZooKeeper refused");
                    Ok(Err(Refusal::Tls(refused)))
                }
                connected = &mut connecting => connected.map(|r| r.map_err(Refusal::Zk)),
            }
        };
        #[cfg(not(feature = "tls"))]
        let connecting = async { connecting.await.map(|r| r.map_err(Refusal::Zk)) };
        let client = match connecting.await {
            Err(_) => return Err(unreachable()),
            Ok(Err(Refusal::Zk(e))) => {
                let e = connect_error(hosts, e, settings.identity());
                if e.kind() == ErrorKind::NotPermitted {
                    tracing::error!(error = %e, "ZooKeeper refused the credentials");
                }
                return Err(e);
            }
            #[cfg(feature = "tls")]
            Ok(Err(Refusal::Tls(e))) => return Err(e.into()),
            Ok(Ok(client)) => client,
        };
        // The session was created (by the ZooKeeper leader) after `created`. Confirm with a
        // `sync`, which passes through the leader, before anything counts as contact.
        let sent_at = Instant::now();
        match tokio::time::timeout_at(deadline.max(sent_at + timeout), client.sync("/")).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(backend_error("connect: confirm", "/", e)),
            Err(_) => return Err(unreachable()),
        }
        Ok(Arc::new(ZkSession::start(
            client,
            settings.clone(),
            created,
            sent_at,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(b: ZkBackendBuilder) -> (String, String) {
        match b.build() {
            Err(ConfigError::Backend { what, reason }) => (what.to_owned(), reason),
            other => panic!("expected a backend config error, got {other:?}"),
        }
    }

    #[test]
    fn builds_with_defaults() {
        let b = ZkBackend::builder("127.0.0.1:2181/chroot").build().unwrap();
        assert_eq!(b.hosts(), "127.0.0.1:2181");
        assert_eq!(b.chroot().unwrap().as_str(), "/chroot");
        assert_eq!(b.node_acl(), NodeAcl::Open);
    }

    #[test]
    fn malformed_connect_string_fails_at_build() {
        let (what, _) = reason(ZkBackend::builder("127.0.0.1:0"));
        assert_eq!(what, "connect string");
        let (what, _) = reason(ZkBackend::builder(""));
        assert_eq!(what, "connect string");
    }

    #[test]
    fn creator_all_needs_auth() {
        let (what, _) = reason(ZkBackend::builder("h:1").node_acl(NodeAcl::CreatorAll));
        assert_eq!(what, "node ACL");
        let b = ZkBackend::builder("h:1")
            .digest_auth("u", "p")
            .node_acl(NodeAcl::CreatorAll)
            .build()
            .unwrap();
        assert_eq!(b.node_acl(), NodeAcl::CreatorAll);
    }

    #[test]
    fn digest_user_is_checked_and_password_redacted() {
        let (what, _) = reason(ZkBackend::builder("h:1").digest_auth("a:b", "p"));
        assert_eq!(what, "digest auth");
        let (what, _) = reason(ZkBackend::builder("h:1").digest_auth("", "p"));
        assert_eq!(what, "digest auth");
        let b = ZkBackend::builder("h:1").digest_auth("u", "secret");
        assert!(!format!("{b:?}").contains("secret"));
    }

    #[test]
    fn zero_connection_timeout_is_rejected() {
        let e = ZkBackend::builder("h:1")
            .connection_timeout(Duration::ZERO)
            .build()
            .unwrap_err();
        assert_eq!(e, ConfigError::ZeroDuration("connection timeout"));
    }

    #[test]
    fn open_session_rejects_bad_timeouts_without_connecting() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let b = ZkBackend::builder("127.0.0.1:1").build().unwrap();
        for t in [Duration::ZERO, MAX_TIMEOUT + Duration::from_millis(1)] {
            let e = rt.block_on(b.open_session(t)).err().unwrap();
            assert_eq!(e.kind(), ErrorKind::Invalid, "{t:?}");
        }
    }

    #[test]
    fn unreachable_ensemble_fails_within_the_connection_timeout() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // A port nobody listens on: bind one, note it, and free it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let b = ZkBackend::builder(format!("127.0.0.1:{port}"))
            .connection_timeout(Duration::from_millis(300))
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

    #[test]
    fn open_session_outside_a_runtime_is_an_error_not_a_panic() {
        let b = ZkBackend::builder("127.0.0.1:1").build().unwrap();
        let fut = b.open_session(Duration::from_secs(1));
        // Poll once by hand, with no runtime entered.
        struct Noop;
        impl std::task::Wake for Noop {
            fn wake(self: Arc<Self>) {}
        }
        let waker = std::task::Waker::from(Arc::new(Noop));
        let mut cx = std::task::Context::from_waker(&waker);
        let mut fut = fut;
        match fut.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(Err(e)) => assert_eq!(e.kind(), ErrorKind::Invalid),
            other => panic!(
                "expected an immediate error, got {:?}",
                other.map(|r| r.is_ok())
            ),
        }
    }
}
