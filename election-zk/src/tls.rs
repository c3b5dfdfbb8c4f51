//! TLS to the servers' `secureClientPort`: the settings (PEM files, read and checked when the
//! backend is built) and the diagnosis of a refused handshake.
//!
//! zookeeper-client retries a failed TLS handshake like any lost connection, and reports only a
//! timeout at the end. So while a session is being opened, each host also gets one handshake of
//! our own with the same roots and client identity ([`election_core::tls_probe`]); when every
//! host refuses it for a reason retrying cannot cure (an untrusted, expired or misnamed
//! certificate, a plain-TCP port, a refused client certificate), the open fails at once with a
//! [`SecurityError`] that says which.

use std::fmt;
use std::time::Duration;

use election_core::tls::tls_error;
use election_core::tls_probe::{crypto_provider, Probe};
use election_core::{ConfigError, SecurityError};
use zookeeper_client as zk;

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
    // zookeeper-client builds its TLS configuration with the process default provider.
    let _ = crypto_provider();
    let probe = Probe::new(&pem, ca_file)?;
    let mut options = zk::TlsOptions::new()
        .with_pem_ca(&pem.ca)
        .map_err(|e| tls_error(format!("CA file {ca_file:?}: {e}")))?;
    if let Some(id) = &pem.identity {
        let key_file = &id.key_file;
        options = options
            .with_pem_identity(&id.cert, &id.key)
            .map_err(|_| tls_error(format!("client key {key_file:?} cannot be used")))?;
    }
    Ok(TlsSettings { options, probe })
}

/// The loaded TLS settings a backend shares with its sessions.
#[derive(Clone)]
pub(crate) struct TlsSettings {
    pub(crate) options: zk::TlsOptions,
    probe: Probe,
}

impl fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // zk::TlsOptions's Debug leaves the key out, but keep the output short anyway.
        f.write_str("TlsSettings { .. }")
    }
}

impl TlsSettings {
    /// One handshake with each of `hosts` (`host:port,...`), in parallel, each bounded by
    /// `bound`. `Some` when every host refused it; then the error of the first host.
    pub(crate) async fn diagnose(&self, hosts: &str, bound: Duration) -> Option<SecurityError> {
        let hosts: Vec<&str> = hosts.split(',').collect();
        self.probe.diagnose(&hosts, bound).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
