//! TLS and SASL for the test servers: a PKI generated at test time (a CA, server and client
//! certificates, an expired server certificate, and a second CA that signed none of them), and
//! the settings of a server with a `secureClientPort` and a SASL DIGEST-MD5 JAAS section.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use tempfile::TempDir;

/// Certificates and keys in PEM files in a temp dir, removed on drop.
///
/// - [`ca_file`](Self::ca_file): the CA that signed the server and client certificates;
/// - [`other_ca_file`](Self::other_ca_file): a CA that signed nothing here (for "untrusted");
/// - [`client_cert_file`](Self::client_cert_file), [`client_key_file`](Self::client_key_file)
///   (mode 0600): a client identity the servers accept;
/// - the server certificate names only the IP address `127.0.0.1`, so a client that connects
///   to `localhost` sees a name mismatch; the expired one (2020) names `127.0.0.1` too.
#[derive(Debug)]
pub struct TestPki {
    dir: TempDir,
}

const CA: &str = "ca.pem";
const OTHER_CA: &str = "other-ca.pem";
const SERVER: &str = "server-keystore.pem";
const EXPIRED_SERVER: &str = "expired-server-keystore.pem";
const CLIENT_CERT: &str = "client.pem";
const CLIENT_KEY: &str = "client-key.pem";

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("CA")
}

fn leaf(issuer: &CertifiedIssuer<'static, KeyPair>, name: &str, expired: bool) -> (String, String) {
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("params");
    params.distinguished_name.push(DnType::CommonName, name);
    if expired {
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2020, 12, 31);
    }
    let key = KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, issuer).expect("certificate");
    (cert.pem(), key.serialize_pem())
}

fn write(path: &Path, text: &str, mode: u32) {
    fs::write(path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", path.display()));
}

impl TestPki {
    /// Generates everything (ECDSA P-256 keys; a few milliseconds).
    ///
    /// # Panics
    /// When the temp dir cannot be written.
    pub fn generate() -> TestPki {
        let dir = tempfile::Builder::new()
            .prefix("election-zk-pki-")
            .tempdir()
            .expect("temp dir");
        let root = ca("election test CA");
        write(&dir.path().join(CA), &root.pem(), 0o644);
        write(
            &dir.path().join(OTHER_CA),
            &ca("an unrelated CA").pem(),
            0o644,
        );
        // ZooKeeper's PEM key store: the PKCS#8 key, then the certificate.
        let (cert, key) = leaf(&root, "zookeeper", false);
        write(&dir.path().join(SERVER), &format!("{key}{cert}"), 0o600);
        let (cert, key) = leaf(&root, "zookeeper (expired)", true);
        write(
            &dir.path().join(EXPIRED_SERVER),
            &format!("{key}{cert}"),
            0o600,
        );
        let (cert, key) = leaf(&root, "election client", false);
        write(&dir.path().join(CLIENT_CERT), &cert, 0o644);
        write(&dir.path().join(CLIENT_KEY), &key, 0o600);
        TestPki { dir }
    }

    /// The CA that signed the servers' and the client's certificates.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join(CA)
    }

    /// A CA that signed nothing the servers present.
    pub fn other_ca_file(&self) -> PathBuf {
        self.dir.path().join(OTHER_CA)
    }

    /// The client certificate, signed by [`ca_file`](Self::ca_file).
    pub fn client_cert_file(&self) -> PathBuf {
        self.dir.path().join(CLIENT_CERT)
    }

    /// The client's private key (mode 0600).
    pub fn client_key_file(&self) -> PathBuf {
        self.dir.path().join(CLIENT_KEY)
    }

    /// The server's private key followed by its certificate (for `127.0.0.1`), in one PEM
    /// file (mode 0600): ZooKeeper's PEM key store, and what etcd takes as both `--cert-file`
    /// and `--key-file`.
    pub fn server_key_and_cert_file(&self) -> PathBuf {
        self.dir.path().join(SERVER)
    }

    /// As [`server_key_and_cert_file`](Self::server_key_and_cert_file), with a certificate
    /// that expired in 2020.
    pub fn expired_server_key_and_cert_file(&self) -> PathBuf {
        self.dir.path().join(EXPIRED_SERVER)
    }

    /// The directory holding the files, for tests that add their own.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// How a test server secures itself: a `secureClientPort` with a key store from a [`TestPki`]
/// (the plain `clientPort` stays open, for the harness's four-letter words and for tests that
/// need an unencrypted client), and SASL DIGEST-MD5 users in a JAAS `Server` section.
///
/// ```no_run
/// use election_zk::testing::{TestPki, ZkSecurity, ZkServer};
///
/// let pki = TestPki::generate();
/// let zk = ZkServer::start_secure(ZkSecurity::new(&pki).sasl_user("election", "s3cret"));
/// let connect = zk.secure_connect_string(); // "127.0.0.1:SECURE_PORT"
/// # let _ = connect;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZkSecurity {
    pub(crate) keystore: PathBuf,
    pub(crate) truststore: PathBuf,
    pub(crate) users: Vec<(String, String)>,
    pub(crate) require_sasl: bool,
}

impl ZkSecurity {
    /// TLS with the valid server certificate of `pki`; clients must present a certificate
    /// signed by its CA (`ssl.clientAuth=need`).
    pub fn new(pki: &TestPki) -> Self {
        Self {
            keystore: pki.dir.path().join(SERVER),
            truststore: pki.ca_file(),
            users: Vec::new(),
            require_sasl: false,
        }
    }

    /// As [`new`](Self::new), but the server presents a certificate that expired in 2020.
    pub fn expired_certificate(pki: &TestPki) -> Self {
        Self {
            keystore: pki.dir.path().join(EXPIRED_SERVER),
            ..Self::new(pki)
        }
    }

    /// Adds a SASL DIGEST-MD5 user (`user_<name>="<password>"` in the JAAS `Server` section).
    pub fn sasl_user(mut self, user: &str, password: &str) -> Self {
        self.users.push((user.to_owned(), password.to_owned()));
        self
    }

    /// Refuses every client that has not authenticated with SASL
    /// (`enforce.auth.enabled=true`, `enforce.auth.schemes=sasl`).
    pub fn require_sasl(mut self) -> Self {
        self.require_sasl = true;
        self
    }

    /// The lines this adds to `zoo.cfg`.
    pub(crate) fn zoo_cfg(&self, secure_port: u16) -> String {
        let mut cfg = format!(
            "serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory\n\
             secureClientPort={secure_port}\nsecureClientPortAddress=127.0.0.1\n\
             ssl.keyStore.location={}\nssl.keyStore.type=PEM\n\
             ssl.trustStore.location={}\nssl.trustStore.type=PEM\n\
             ssl.clientAuth=need\nssl.hostnameVerification=false\n",
            self.keystore.display(),
            self.truststore.display(),
        );
        if !self.users.is_empty() {
            cfg.push_str(
                "authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider\n",
            );
        }
        if self.require_sasl {
            cfg.push_str("enforce.auth.enabled=true\nenforce.auth.schemes=sasl\n");
        }
        cfg
    }

    /// The JAAS file's content, when there are SASL users.
    pub(crate) fn jaas(&self) -> Option<String> {
        if self.users.is_empty() {
            return None;
        }
        let users: String = self
            .users
            .iter()
            .map(|(u, p)| format!("\n  user_{u}=\"{p}\""))
            .collect();
        Some(format!(
            "Server {{\n  org.apache.zookeeper.server.auth.DigestLoginModule required{users};\n}};\n"
        ))
    }
}

/// The Netty jars ZooKeeper's TLS needs beside those `zookeeper.jar`'s manifest names
/// (Debian's manifest misses the codec and the resolver).
pub(crate) const NETTY_JARS: [&str; 3] = [
    "/usr/share/java/netty-codec.jar",
    "/usr/share/java/netty-resolver.jar",
    "/usr/share/java/netty-transport-native-unix-common.jar",
];
