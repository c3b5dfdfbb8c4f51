//! TLS and SASL DIGEST-MD5 against real ZooKeeper 3.8 servers with a `secureClientPort`, a key
//! store and a JAAS file generated at test time (`election_zk::testing::{TestPki, ZkSecurity}`):
//! a candidate leads over TLS + SASL, its entries are protected by the default ACL, and each
//! refusal (untrusted, expired or misnamed certificate, plain port, wrong password, no
//! credentials where the ensemble requires them, a key file others can read) is a typed error.
//!
//! One server per test function (two in all, about 1 s each to start). Needs `java` and
//! Debian's `zookeeper` package (`scripts/test.sh` installs it); fails, never skips, without.

use std::error::Error as _;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use election_core::{
    BackendError, Candidate, ConfigError, CoordinationBackend, ElectionError, ElectionState,
    ErrorKind, StopReason,
};
use election_zk::testing::{TestPki, ZkSecurity, ZkServer, TICK_TIME};
use election_zk::{NodeAcl, SecurityError, ZkBackend, ZkBackendBuilder, ZkTls};
use tokio::time::timeout;
use zookeeper_client as zk;

const T: Duration = Duration::from_secs(4);
const WAIT: Duration = Duration::from_secs(10);
/// Long, so that a refusal reported well within it was diagnosed, not timed out.
const CONNECT_BOUND: Duration = Duration::from_secs(20);

fn tls(pki: &TestPki) -> ZkTls {
    ZkTls::new(pki.ca_file()).client_identity(pki.client_cert_file(), pki.client_key_file())
}

fn secure(connect: &str, tls: ZkTls) -> ZkBackendBuilder {
    ZkBackend::builder(connect)
        .server_tick_time(TICK_TIME)
        .connection_timeout(CONNECT_BOUND)
        .tls(tls)
}

/// Opens a session that must be refused; returns the security error and how long it took.
async fn refused(backend: ZkBackendBuilder) -> (SecurityError, Duration) {
    let backend = backend.build().expect("valid settings");
    let started = Instant::now();
    let e: BackendError = backend
        .open_session(T)
        .await
        .err()
        .expect("the session must be refused");
    let took = started.elapsed();
    assert_eq!(e.kind(), ErrorKind::NotPermitted, "{e}");
    let source = e
        .source()
        .and_then(|s| s.downcast_ref::<SecurityError>())
        .unwrap_or_else(|| panic!("no SecurityError in {e}"))
        .clone();
    eprintln!("measure: refused in {took:?}: {e}");
    (source, took)
}

async fn stopped_reason(c: &Candidate) -> String {
    let end = timeout(WAIT, async {
        let mut state = c.state();
        loop {
            if let ElectionState::Stopped(why) = state.borrow_and_update().clone() {
                return why;
            }
            state.changed().await.expect("state channel");
        }
    })
    .await
    .expect("the candidate must stop");
    match end {
        StopReason::Failed(why) => why,
        other => panic!("expected Failed, got {other:?}"),
    }
}

async fn raw(connect: &str) -> zk::Client {
    zk::Client::connector()
        .with_session_timeout(T)
        .connect(connect)
        .await
        .expect("plain client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_sasl_lead_and_every_refusal_is_typed() {
    let pki = TestPki::generate();
    let server = ZkServer::start_secure(ZkSecurity::new(&pki).sasl_user("election", "s3cret"));
    let connect = server.secure_connect_string();

    // A candidate leads over TLS + SASL, under a chroot.
    let backend = secure(&format!("{connect}/tenant"), tls(&pki))
        .sasl_digest_md5("election", "s3cret")
        .build()
        .unwrap();
    assert_eq!(backend.node_acl(), NodeAcl::CreatorAllAnyoneRead);
    let leader = Candidate::builder("/svc/leader", "alpha")
        .session_timeout(T)
        .join(backend.clone())
        .await
        .unwrap();
    timeout(WAIT, leader.wait_for_leadership())
        .await
        .expect("leads in time")
        .expect("leads");

    // A second client, unauthenticated, on the plain port: it can read who leads, but neither
    // delete the leader's entry nor join.
    let stranger = raw(&server.connect_string()).await;
    let children = stranger
        .list_children("/tenant/svc/leader")
        .await
        .expect("anyone may list");
    assert_eq!(children.len(), 1, "{children:?}");
    let entry = format!("/tenant/svc/leader/{}", children[0]);
    let (data, _) = stranger.get_data(&entry).await.expect("anyone may read");
    assert!(data.windows(5).any(|w| w == b"alpha"), "{data:?}");
    assert_eq!(stranger.delete(&entry, None).await, Err(zk::Error::NoAuth));
    let (acl, _) = stranger.get_acl("/tenant/svc/leader").await.unwrap();
    let acl: Vec<String> = acl
        .iter()
        .map(|a| format!("{}:{}={}", a.scheme(), a.id(), a.permission()))
        .collect();
    eprintln!("measure: election directory ACL {acl:?}");
    assert!(
        acl.iter().any(|a| a.starts_with("sasl:election="))
            && acl.iter().any(|a| a.starts_with("world:anyone=")),
        "{acl:?}"
    );
    let unauthenticated = ZkBackend::builder(server.connect_string()).build().unwrap();
    let intruder = Candidate::builder("/tenant/svc/leader", "mallory")
        .session_timeout(T)
        .join(unauthenticated)
        .await
        .unwrap();
    let why = stopped_reason(&intruder).await;
    assert!(why.contains("refused"), "{why}");
    assert!(leader.is_leader(), "the leader kept its term");

    // Wrong SASL password: a typed refusal, and the candidate stops with the reason.
    let wrong =
        || secure(&format!("{connect}/tenant"), tls(&pki)).sasl_digest_md5("election", "wrong");
    let (e, took) = refused(wrong()).await;
    assert_eq!(
        e,
        SecurityError::AuthenticationFailed {
            hosts: connect.clone(),
            mechanism: "SASL DIGEST-MD5",
            user: Some("election".into())
        }
    );
    assert!(took < CONNECT_BOUND, "{took:?}");
    assert!(!e.to_string().contains("wrong"), "the password leaked: {e}");
    // A candidate joining with it fails at once, with the typed reason.
    match Candidate::builder("/svc/leader", "beta")
        .session_timeout(T)
        .join(wrong().build().unwrap())
        .await
    {
        Err(ElectionError::Backend(e)) => {
            assert_eq!(e.kind(), ErrorKind::NotPermitted);
            assert!(
                matches!(
                    e.source().and_then(|s| s.downcast_ref::<SecurityError>()),
                    Some(SecurityError::AuthenticationFailed { .. })
                ),
                "{e}"
            );
        }
        other => panic!("expected a refused join, got {:?}", other.map(|_| ())),
    }
    assert_eq!(
        stranger
            .list_children("/tenant/svc/leader")
            .await
            .unwrap()
            .len(),
        1,
        "the refused candidate left nothing"
    );

    // A CA that did not sign the server's certificate.
    let (e, took) = refused(secure(
        &connect,
        ZkTls::new(pki.other_ca_file())
            .client_identity(pki.client_cert_file(), pki.client_key_file()),
    ))
    .await;
    assert!(
        matches!(e, SecurityError::UntrustedCertificate { ref host, .. } if *host == connect),
        "{e:?}"
    );
    assert!(took < CONNECT_BOUND, "{took:?}");

    // The certificate names 127.0.0.1 only; `localhost` is another name.
    let port = server.secure_port().unwrap();
    let (e, _) = refused(secure(&format!("localhost:{port}"), tls(&pki))).await;
    assert!(
        matches!(e, SecurityError::CertificateNameMismatch { .. }),
        "{e:?}"
    );

    // The plain client port given where TLS is expected.
    let (e, _) = refused(secure(&server.connect_string(), tls(&pki))).await;
    assert!(matches!(e, SecurityError::NotTls { .. }), "{e:?}");

    // No client certificate, while the server needs one.
    let (e, _) = refused(secure(&connect, ZkTls::new(pki.ca_file()))).await;
    assert!(
        matches!(e, SecurityError::ClientCertificateRefused { .. }),
        "{e:?}"
    );

    leader.stop().await;
    assert!(stranger
        .list_children("/tenant/svc/leader")
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_certificate_and_required_sasl_are_typed_refusals() {
    let pki = TestPki::generate();
    let server = ZkServer::start_secure(
        ZkSecurity::expired_certificate(&pki)
            .sasl_user("election", "s3cret")
            .require_sasl(),
    );
    let (e, took) = refused(
        secure(&server.secure_connect_string(), tls(&pki)).sasl_digest_md5("election", "s3cret"),
    )
    .await;
    assert!(
        matches!(e, SecurityError::CertificateExpired { .. }),
        "{e:?}"
    );
    assert!(took < CONNECT_BOUND, "{took:?}");

    // The ensemble requires SASL: a client without credentials is refused, typed.
    let (e, _) =
        refused(ZkBackend::builder(server.connect_string()).connection_timeout(CONNECT_BOUND))
            .await;
    assert_eq!(
        e,
        SecurityError::AuthenticationFailed {
            hosts: server.connect_string(),
            mechanism: "none configured",
            user: None
        }
    );
    // With SASL, the plain port serves.
    let ok = ZkBackend::builder(server.connect_string())
        .sasl_digest_md5("election", "s3cret")
        .build()
        .unwrap();
    let s = ok.open_session(T).await.expect("SASL session");
    s.close().await;
}

#[test]
fn a_key_file_others_can_read_is_refused_at_build() {
    let pki = TestPki::generate();
    let key = pki.dir().join("loose-key.pem");
    std::fs::copy(pki.client_key_file(), &key).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = ZkBackend::builder("127.0.0.1:2281")
        .tls(ZkTls::new(pki.ca_file()).client_identity(pki.client_cert_file(), &key))
        .build()
        .unwrap_err();
    assert_eq!(
        e,
        ConfigError::SecretReadableByOthers {
            path: key.clone(),
            mode: 0o644
        }
    );
    // Mixed schemes and TLS hosts without TLS settings are refused too.
    let e = ZkBackend::builder("tcp+tls://127.0.0.1:2281")
        .build()
        .unwrap_err();
    assert!(matches!(e, ConfigError::Backend { what: "TLS", .. }), "{e}");
    let e = ZkBackend::builder("tcp://127.0.0.1:2281")
        .tls(ZkTls::new(pki.ca_file()))
        .build()
        .unwrap_err();
    assert!(matches!(e, ConfigError::Backend { what: "TLS", .. }), "{e}");
    let b = ZkBackend::builder("tcp+tls://127.0.0.1:2281")
        .tls(tls(&pki))
        .sasl_digest_md5("u", "hunter2")
        .build()
        .unwrap();
    assert!(!format!("{b:?}").contains("hunter2"));
    let _: Arc<dyn CoordinationBackend> = b.into();
}
