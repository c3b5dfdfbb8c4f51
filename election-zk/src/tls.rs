//! TLS to the servers' `secureClientPort`: the settings (PEM files, read and checked when the
//! backend is built) and the diagnosis of a refused handshake.
//!
//! zookeeper-client retries a failed TLS handshake like any lost connection, and reports only a
//! timeout at the end. So while a session is being opened, each host also gets one handshake of
//! our own with the same roots and client identity; when every host refuses it for a reason
//! retrying cannot cure (an untrusted, expired or misnamed certificate, a plain-TCP port), the
//! open fails at once with a [`SecurityError`] that says which.

use std::fmt;
use std::io::ErrorKind as IoKind;
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use election_core::tls::tls_error;
use election_core::ConfigError;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{CertificateError, ClientConfig, ClientConnection, RootCertStore};
use zookeeper_client as zk;

use crate::error::SecurityError;

/// TLS settings for [`ZkBackendBuilder::tls`](crate::ZkBackendBuilder::tls): the CA bundle the
/// servers' certificates must chain to and, when the servers ask for one (ZooKeeper's
/// `ssl.clientAuth`, `need` by default), the client certificate and key. All are PEM files,
/// read when the backend is built.
///
/// The server's certificate must name the host as written in the connect string (a DNS name,
/// or an IP address in its subject alternative names). There is no switch to turn that check
/// off.
///
/// ```
/// use election_zk::ZkTls;
///
/// let tls = ZkTls::new("/etc/election/zk-ca.pem")
///     .client_identity("/etc/election/client.pem", "/etc/election/client-key.pem");
/// # let _ = tls;
/// ```
pub type ZkTls = election_core::TlsFiles;

/// Reads the files of `tls` and builds both the client's settings and our own handshake's.
pub(crate) fn load(tls: &ZkTls) -> Result<TlsSettings, ConfigError> {
    let pem = tls.read()?;
    let ca_file = tls.ca_file();
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem.ca.as_bytes()) {
        let cert = cert.map_err(|e| tls_error(format!("CA file {ca_file:?}: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| tls_error(format!("CA file {ca_file:?}: {e}")))?;
    }
    let provider = crypto_provider();
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(e.to_string()))?
        .with_root_certificates(roots);
    let mut options = zk::TlsOptions::new()
        .with_pem_ca(&pem.ca)
        .map_err(|e| tls_error(format!("CA file {ca_file:?}: {e}")))?;
    let probe = match &pem.identity {
        None => builder.with_no_client_auth(),
        Some(id) => {
            let (cert_file, key_file) = (&id.cert_file, &id.key_file);
            let chain = CertificateDer::pem_slice_iter(id.cert.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| tls_error(format!("client certificate {cert_file:?}: {e}")))?;
            // The parse error never quotes the key.
            let key = PrivateKeyDer::from_pem_slice(id.key.as_bytes()).map_err(|_| {
                tls_error(format!("client key {key_file:?} holds no PEM private key"))
            })?;
            options = options
                .with_pem_identity(&id.cert, &id.key)
                .map_err(|_| tls_error(format!("client key {key_file:?} cannot be used")))?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                tls_error(format!(
                    "client certificate {cert_file:?} and key {key_file:?}: {e}"
                ))
            })?
        }
    };
    Ok(TlsSettings {
        options,
        probe: Arc::new(probe),
    })
}

/// The crypto provider: the process default if one is installed, else aws-lc-rs, installed as
/// the default. zookeeper-client builds its TLS configuration with the process default, and
/// rustls cannot pick one by itself when more than one provider is compiled in (etcd-client's
/// `tls` feature brings in ring).
fn crypto_provider() -> Arc<CryptoProvider> {
    if let Some(provider) = CryptoProvider::get_default() {
        return provider.clone();
    }
    // Losing a race to another installer is fine: either provider will do.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
}

/// The loaded TLS settings a backend shares with its sessions.
#[derive(Clone)]
pub(crate) struct TlsSettings {
    pub(crate) options: zk::TlsOptions,
    probe: Arc<ClientConfig>,
}

impl fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // zk::TlsOptions's Debug leaves the key out, but keep the output short anyway.
        f.write_str("TlsSettings { .. }")
    }
}

/// What one handshake of ours found.
#[derive(Debug)]
enum Handshake {
    /// Done: the server is fine as far as TLS goes.
    Accepted,
    /// The host could not be reached (or did not answer in time): nothing learned.
    Unreachable,
    /// Refused for a reason that retrying cannot cure.
    Refused(SecurityError),
}

impl TlsSettings {
    /// One handshake with each of `hosts` (`host:port,...`), in parallel, each bounded by
    /// `bound`. `Some` when every host refused it; then the error of the first host.
    pub(crate) async fn diagnose(&self, hosts: &str, bound: Duration) -> Option<SecurityError> {
        let mut probes = Vec::new();
        for host in hosts.split(',') {
            let config = self.probe.clone();
            let host = host.to_owned();
            probes.push(tokio::task::spawn_blocking(move || {
                handshake(config, &host, bound)
            }));
        }
        let mut first = None;
        for probe in probes {
            match probe.await {
                Ok(Handshake::Refused(e)) => {
                    first.get_or_insert(e);
                }
                Ok(Handshake::Accepted | Handshake::Unreachable) | Err(_) => return None,
            }
        }
        first
    }
}

/// Splits `host:port` or `[v6]:port`.
fn split_host(hostport: &str) -> Option<(&str, u16)> {
    let (host, port) = hostport.rsplit_once(':')?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    Some((host, port.parse().ok()?))
}

fn handshake(config: Arc<ClientConfig>, hostport: &str, bound: Duration) -> Handshake {
    let Some((host, port)) = split_host(hostport) else {
        return Handshake::Unreachable;
    };
    let Ok(name) = ServerName::try_from(host.to_owned()) else {
        return Handshake::Refused(SecurityError::TlsHandshake {
            host: hostport.to_owned(),
            detail: format!("{host:?} is not a valid TLS server name"),
        });
    };
    let started = Instant::now();
    let Ok(addrs) = (host, port).to_socket_addrs() else {
        return Handshake::Unreachable;
    };
    let Some(mut sock) = addrs
        .into_iter()
        .find_map(|a| TcpStream::connect_timeout(&a, bound).ok())
    else {
        return Handshake::Unreachable;
    };
    let left = bound
        .saturating_sub(started.elapsed())
        .max(Duration::from_millis(50));
    let _ = sock.set_read_timeout(Some(left));
    let _ = sock.set_write_timeout(Some(left));
    let Ok(mut conn) = ClientConnection::new(config, name) else {
        return Handshake::Unreachable;
    };
    while conn.is_handshaking() {
        if started.elapsed() > bound {
            return Handshake::Unreachable;
        }
        match conn.complete_io(&mut sock) {
            Ok((0, 0)) if conn.is_handshaking() => {
                return Handshake::Refused(SecurityError::NotTls {
                    host: hostport.to_owned(),
                    detail: "the server closed the connection without answering the TLS \
                             handshake"
                        .into(),
                })
            }
            Ok(_) => {}
            Err(e) => return classify(hostport, e),
        }
    }
    // TLS 1.3 sends the server's verdict on our certificate after the handshake: wait briefly
    // for an alert.
    let _ = sock.set_read_timeout(Some(Duration::from_millis(100)));
    if let Err(e) = conn.complete_io(&mut sock) {
        if let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
            return Handshake::Refused(SecurityError::TlsHandshake {
                host: hostport.to_owned(),
                detail: format!("the server refused the client certificate: {tls}"),
            });
        }
    }
    Handshake::Accepted
}

fn classify(hostport: &str, e: std::io::Error) -> Handshake {
    let host = hostport.to_owned();
    let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
        return match e.kind() {
            IoKind::UnexpectedEof | IoKind::ConnectionReset | IoKind::ConnectionAborted => {
                Handshake::Refused(SecurityError::NotTls {
                    host,
                    detail: format!(
                        "the server dropped the connection during the TLS handshake ({e})"
                    ),
                })
            }
            _ => Handshake::Unreachable,
        };
    };
    let detail = tls.to_string();
    Handshake::Refused(match tls {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                SecurityError::UntrustedCertificate { host, detail }
            }
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => {
                SecurityError::CertificateExpired { host, detail }
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                SecurityError::CertificateNameMismatch { host, detail }
            }
            _ => SecurityError::TlsHandshake { host, detail },
        },
        rustls::Error::InvalidMessage(_)
        | rustls::Error::InappropriateMessage { .. }
        | rustls::Error::InappropriateHandshakeMessage { .. } => {
            SecurityError::NotTls { host, detail }
        }
        _ => SecurityError::TlsHandshake { host, detail },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_hosts() {
        assert_eq!(split_host("127.0.0.1:2281"), Some(("127.0.0.1", 2281)));
        assert_eq!(split_host("[::1]:2281"), Some(("::1", 2281)));
        assert_eq!(split_host("zk.example.com:1"), Some(("zk.example.com", 1)));
        assert_eq!(split_host("nope"), None);
    }

    #[test]
    fn a_missing_or_empty_ca_file_is_a_config_error() {
        let e = load(&ZkTls::new("/nonexistent/ca.pem")).unwrap_err();
        assert!(matches!(e, ConfigError::Backend { what: "TLS", .. }), "{e}");
        let dir = std::env::temp_dir().join(format!("election-zk-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = dir.join("empty.pem");
        std::fs::write(&ca, "not a certificate\n").unwrap();
        let e = load(&ZkTls::new(&ca)).unwrap_err();
        assert!(e.to_string().contains("no PEM certificate"), "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
