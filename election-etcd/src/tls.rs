//! TLS to the etcd members from PEM files: [`EtcdTls`], read and checked when the backend is
//! built.

use election_core::tls_probe::Probe;
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
pub type EtcdTls = election_core::TlsFiles;

/// Reads the files of `tls` into etcd-client's options, and the probe that diagnoses a refused
/// handshake with the same roots and identity.
pub(crate) fn load(tls: &EtcdTls) -> Result<(TlsOptions, Probe), ConfigError> {
    let pem = tls.read()?;
    let probe = Probe::new(&pem, tls.ca_file())?;
    let mut options = TlsOptions::new().ca_certificate(Certificate::from_pem(pem.ca));
    if let Some(id) = pem.identity {
        options = options.identity(Identity::from_pem(id.cert, id.key));
    }
    Ok((options, probe))
}
