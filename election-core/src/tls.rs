//! TLS settings as files, the same for every backend: the CA bundle to trust and, for servers
//! that ask for one, the client's certificate and key. Each backend turns what
//! [`TlsFiles::read`] returns into its own client's configuration.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::secret::read_secret_file;
use crate::ConfigError;

/// Which CAs to trust and which identity to present, as PEM files. Read (and the key file's
/// permissions checked) when a backend is built, not when this value is made.
///
/// ```
/// use election_core::TlsFiles;
///
/// let tls = TlsFiles::new("/etc/election/ca.pem")
///     .client_identity("/etc/election/client.pem", "/etc/election/client-key.pem");
/// assert_eq!(tls.ca_file(), std::path::Path::new("/etc/election/ca.pem"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    ca_file: PathBuf,
    identity: Option<(PathBuf, PathBuf)>,
}

impl TlsFiles {
    /// Trusts the CA certificates in the PEM file `ca_file`, and no others.
    pub fn new(ca_file: impl Into<PathBuf>) -> Self {
        Self {
            ca_file: ca_file.into(),
            identity: None,
        }
    }

    /// Presents the certificate chain in `cert_file` with the private key in `key_file` (PEM).
    /// The key file must not be readable by other users.
    pub fn client_identity(
        mut self,
        cert_file: impl Into<PathBuf>,
        key_file: impl Into<PathBuf>,
    ) -> Self {
        self.identity = Some((cert_file.into(), key_file.into()));
        self
    }

    /// The CA bundle's path.
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// Reads the files and checks that each holds what it should: a PEM certificate in the CA
    /// and certificate files, a PEM private key in a key file that other users cannot read.
    ///
    /// # Errors
    /// [`ConfigError::Backend`] (`what: "TLS"`) naming the file and what is wrong with it;
    /// [`ConfigError::SecretReadableByOthers`] or [`ConfigError::SecretFile`] for the key
    /// file. No message quotes the key.
    pub fn read(&self) -> Result<TlsPem, ConfigError> {
        let ca = read_pem_certificates(&self.ca_file, "CA file")?;
        let identity = match &self.identity {
            None => None,
            Some((cert_file, key_file)) => {
                let cert = read_pem_certificates(cert_file, "client certificate")?;
                let key = read_secret_file(key_file)?;
                if !key.contains("PRIVATE KEY-----") {
                    return Err(tls_error(format!(
                        "client key {key_file:?} holds no PEM private key"
                    )));
                }
                Some(IdentityPem {
                    cert,
                    key,
                    cert_file: cert_file.clone(),
                    key_file: key_file.clone(),
                })
            }
        };
        Ok(TlsPem { ca, identity })
    }
}

/// What [`TlsFiles::read`] read: PEM text, checked for its markers only (each backend's TLS
/// library parses it).
#[derive(Clone)]
pub struct TlsPem {
    /// The CA bundle.
    pub ca: String,
    /// The client's identity, if one was given.
    pub identity: Option<IdentityPem>,
}

/// A client certificate chain and its private key, as PEM text, with the files they came from
/// (for error messages).
#[derive(Clone)]
pub struct IdentityPem {
    /// The certificate chain.
    pub cert: String,
    /// The private key. Never printed.
    pub key: String,
    /// Where the certificate chain came from.
    pub cert_file: PathBuf,
    /// Where the key came from.
    pub key_file: PathBuf,
}

impl fmt::Debug for TlsPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsPem")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for IdentityPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityPem")
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .finish_non_exhaustive()
    }
}

/// A TLS setting that cannot be used.
pub fn tls_error(reason: String) -> ConfigError {
    ConfigError::Backend {
        what: "TLS",
        reason,
    }
}

fn read_pem_certificates(path: &Path, what: &str) -> Result<String, ConfigError> {
    let pem =
        std::fs::read_to_string(path).map_err(|e| tls_error(format!("{what} {path:?}: {e}")))?;
    if !pem.contains("-----BEGIN CERTIFICATE-----") {
        return Err(tls_error(format!(
            "{what} {path:?} holds no PEM certificate"
        )));
    }
    Ok(pem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_empty_files_are_named() {
        let e = TlsFiles::new("/nonexistent/ca.pem").read().unwrap_err();
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
        let dir = std::env::temp_dir().join(format!("election-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, "not a certificate").unwrap();
        let e = TlsFiles::new(&ca).read().unwrap_err();
        assert!(e.to_string().contains("holds no PEM certificate"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
