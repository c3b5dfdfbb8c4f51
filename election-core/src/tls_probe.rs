//! One TLS handshake of our own per host, to say why a backend's client cannot connect.
//!
//! The clients of both services retry a failed TLS handshake like any lost connection and
//! report only a timeout at the end. So while a session is being opened, each host also gets
//! one handshake of ours with the same roots and client identity; when every host refuses it
//! for a reason retrying cannot cure (an untrusted, expired or misnamed certificate, a plain
//! port, a client certificate refused), the open fails at once with a [`SecurityError`] that
//! says which. For a client configured without TLS, [`Probe::plain`] asks instead whether the
//! host answers a TLS handshake (then TLS was forgotten).
//!
//! Only with the `tls` feature (it needs rustls).

use std::io::ErrorKind as IoKind;
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    AlertDescription, CertificateError, ClientConfig, ClientConnection, DigitallySignedStruct,
    RootCertStore, SignatureScheme,
};

use crate::tls::{tls_error, TlsPem};
use crate::{ConfigError, SecurityError};

/// The crypto provider: the process default if one is installed, else aws-lc-rs, installed as
/// the default. Some clients (zookeeper-client) build their TLS configuration with the process
/// default, and rustls cannot pick one by itself when more than one provider is compiled in.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    if let Some(provider) = CryptoProvider::get_default() {
        return provider.clone();
    }
    // Losing a race to another installer is fine: either provider will do.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
}

/// What a handshake is checked against: the TLS settings of a backend, or none.
#[derive(Clone, Debug)]
pub struct Probe {
    config: Arc<ClientConfig>,
    /// Configured without TLS: the probe only asks whether the host speaks TLS.
    plain: bool,
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

impl Probe {
    /// A probe with the roots and client identity of `pem` (read from the file `ca_file`, for
    /// messages).
    ///
    /// # Errors
    /// [`ConfigError::Backend`] (`what: "TLS"`) when a certificate or the key cannot be used.
    pub fn new(pem: &TlsPem, ca_file: &std::path::Path) -> Result<Probe, ConfigError> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(pem.ca.as_bytes()) {
            let cert = cert.map_err(|e| tls_error(format!("CA file {ca_file:?}: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| tls_error(format!("CA file {ca_file:?}: {e}")))?;
        }
        let builder = ClientConfig::builder_with_provider(crypto_provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error(e.to_string()))?
            .with_root_certificates(roots);
        let config = match &pem.identity {
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
                builder.with_client_auth_cert(chain, key).map_err(|e| {
                    tls_error(format!(
                        "client certificate {cert_file:?} and key {key_file:?}: {e}"
                    ))
                })?
            }
        };
        Ok(Probe {
            config: Arc::new(config),
            plain: false,
        })
    }

    /// A probe for a client configured without TLS: it finds a host that answers a TLS
    /// handshake ([`SecurityError::TlsRequired`]), and learns nothing from any other.
    pub fn plain() -> Probe {
        let config = ClientConfig::builder_with_provider(crypto_provider())
            .with_safe_default_protocol_versions()
            .expect("the provider's default protocol versions")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate))
            .with_no_client_auth();
        Probe {
            config: Arc::new(config),
            plain: true,
        }
    }

    /// One handshake with each of `hosts` (`host:port`, or `[v6]:port`), in parallel, each
    /// bounded by `bound`. `Some` when every host refused it (then the error of the first
    /// host); `None` when any host accepted it or could not be reached.
    pub async fn diagnose<S: AsRef<str>>(
        &self,
        hosts: &[S],
        bound: Duration,
    ) -> Option<SecurityError> {
        let mut probes = Vec::new();
        for host in hosts {
            let probe = self.clone();
            let host = host.as_ref().to_owned();
            probes.push(tokio::task::spawn_blocking(move || {
                probe.handshake(&host, bound)
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

    fn handshake(&self, hostport: &str, bound: Duration) -> Handshake {
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
        let Ok(mut conn) = ClientConnection::new(self.config.clone(), name) else {
            return Handshake::Unreachable;
        };
        while conn.is_handshaking() {
            if started.elapsed() > bound {
                return Handshake::Unreachable;
            }
            match conn.complete_io(&mut sock) {
                Ok((0, 0)) if conn.is_handshaking() => {
                    return self.not_tls(
                        hostport,
                        "the server closed the connection without answering the TLS handshake"
                            .into(),
                    )
                }
                Ok(_) => {}
                Err(e) => return self.classify(hostport, e),
            }
        }
        if self.plain {
            return Handshake::Refused(SecurityError::TlsRequired {
                host: hostport.to_owned(),
                detail: "the server completed a TLS handshake".into(),
            });
        }
        // TLS 1.3 sends the server's verdict on our certificate after the handshake: wait
        // briefly for an alert.
        let _ = sock.set_read_timeout(Some(Duration::from_millis(100)));
        if let Err(e) = conn.complete_io(&mut sock) {
            if let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                return Handshake::Refused(SecurityError::ClientCertificateRefused {
                    host: hostport.to_owned(),
                    detail: tls.to_string(),
                });
            }
        }
        Handshake::Accepted
    }

    fn not_tls(&self, hostport: &str, detail: String) -> Handshake {
        if self.plain {
            // A plain server, as configured: nothing to say.
            return Handshake::Unreachable;
        }
        Handshake::Refused(SecurityError::NotTls {
            host: hostport.to_owned(),
            detail,
        })
    }

    fn classify(&self, hostport: &str, e: std::io::Error) -> Handshake {
        let host = hostport.to_owned();
        let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
            return match e.kind() {
                IoKind::UnexpectedEof | IoKind::ConnectionReset | IoKind::ConnectionAborted => self
                    .not_tls(
                        hostport,
                        format!("the server dropped the connection during the TLS handshake ({e})"),
                    ),
                _ => Handshake::Unreachable,
            };
        };
        let detail = tls.to_string();
        if self.plain {
            return match tls {
                // The host sent TLS records: it speaks TLS.
                rustls::Error::AlertReceived(_)
                | rustls::Error::InvalidCertificate(_)
                | rustls::Error::PeerIncompatible(_)
                | rustls::Error::PeerMisbehaved(_) => {
                    Handshake::Refused(SecurityError::TlsRequired { host, detail })
                }
                _ => Handshake::Unreachable,
            };
        }
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
                CertificateError::NotValidForName
                | CertificateError::NotValidForNameContext { .. } => {
                    SecurityError::CertificateNameMismatch { host, detail }
                }
                _ => SecurityError::TlsHandshake { host, detail },
            },
            rustls::Error::AlertReceived(
                AlertDescription::CertificateRequired
                | AlertDescription::BadCertificate
                | AlertDescription::UnknownCA
                | AlertDescription::CertificateUnknown
                | AlertDescription::CertificateExpired
                | AlertDescription::CertificateRevoked
                | AlertDescription::AccessDenied,
            ) => SecurityError::ClientCertificateRefused { host, detail },
            rustls::Error::InvalidMessage(_)
            | rustls::Error::InappropriateMessage { .. }
            | rustls::Error::InappropriateHandshakeMessage { .. } => {
                SecurityError::NotTls { host, detail }
            }
            _ => SecurityError::TlsHandshake { host, detail },
        })
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

/// For [`Probe::plain`] only, which sends nothing after the handshake: any certificate will do
/// to learn that the host speaks TLS.
#[derive(Debug)]
struct AnyCertificate;

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        crypto_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_closed_port_teaches_nothing() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let host = [format!("127.0.0.1:{port}")];
        assert_eq!(
            Probe::plain().diagnose(&host, Duration::from_secs(1)).await,
            None
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_port_that_closes_at_once_is_not_tls() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let host = [l.local_addr().unwrap().to_string()];
        let server = std::thread::spawn(move || drop(l.accept()));
        let pem = TlsPem {
            ca: String::new(),
            identity: None,
        };
        let probe = Probe::new(&pem, std::path::Path::new("ca.pem")).unwrap();
        let e = probe.diagnose(&host, Duration::from_secs(5)).await;
        assert!(matches!(e, Some(SecurityError::NotTls { .. })), "{e:?}");
        server.join().unwrap();
    }
}
