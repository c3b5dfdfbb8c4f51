//! TLS to the etcd members from PEM files: [`EtcdTls`], read and checked when the backend is
//! built.

use std::path::PathBuf;

use election_core::secret::read_secret_file;
use election_core::ConfigError;
use etcd_client::{Certificate, Identity, TlsOptions};

/// TLS settings for [`EtcdBackendBuilder::tls_files`](crate::EtcdBackendBuilder::tls_files):
/// the CA bundle the members' certificates must chain to and, for members started with
/// `--client-cert-auth`, the client certificate and key. All are PEM files, read by
/// [`build`](crate::EtcdBackendBuilder::build); the key file must not be readable by other
/// users. The member's certificate must name the host of the endpoint.
///
/// ```
/// use election_etcd::EtcdTls;
///
/// let tls = EtcdTls::new("/etc/election/etcd-ca.pem")
///     .client_identity("/etc/election/client.pem", "/etc/election/client-key.pem");
/// # let _ = tls;
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdTls {
    ca_file: PathBuf,
    identity: Option<(PathBuf, PathBuf)>,
}

impl EtcdTls {
    /// Trusts the CA certificates in the PEM file `ca_file`, and no others.
    pub fn new(ca_file: impl Into<PathBuf>) -> Self {
        Self {
            ca_file: ca_file.into(),
            identity: None,
        }
    }

    /// Presents the certificate chain in `cert_file` with the private key in `key_file`.
    pub fn client_identity(
        mut self,
        cert_file: impl Into<PathBuf>,
        key_file: impl Into<PathBuf>,
    ) -> Self {
        self.identity = Some((cert_file.into(), key_file.into()));
        self
    }

    /// Reads and checks the files.
    pub(crate) fn load(&self) -> Result<TlsOptions, ConfigError> {
        let bad = |reason: String| ConfigError::Backend {
            what: "TLS",
            reason,
        };
        let ca = std::fs::read_to_string(&self.ca_file)
            .map_err(|e| bad(format!("CA file {:?}: {e}", self.ca_file)))?;
        if !ca.contains("-----BEGIN CERTIFICATE-----") {
            return Err(bad(format!(
                "CA file {:?} holds no PEM certificate",
                self.ca_file
            )));
        }
        let mut tls = TlsOptions::new().ca_certificate(Certificate::from_pem(ca));
        if let Some((cert_file, key_file)) = &self.identity {
            let cert = std::fs::read_to_string(cert_file)
                .map_err(|e| bad(format!("client certificate {cert_file:?}: {e}")))?;
            if !cert.contains("-----BEGIN CERTIFICATE-----") {
                return Err(bad(format!(
                    "client certificate {cert_file:?} holds no PEM certificate"
                )));
            }
            let key = read_secret_file(key_file)?;
            if !key.contains("PRIVATE KEY-----") {
                return Err(bad(format!(
                    "client key {key_file:?} holds no PEM private key"
                )));
            }
            tls = tls.identity(Identity::from_pem(cert, key));
        }
        Ok(tls)
    }
}
