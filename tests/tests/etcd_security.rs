//! etcd with TLS (`--client-cert-auth`, certificates generated at test time) and
//! authentication enabled: a candidate leads with `tls_files` + `auth`; a wrong password and no
//! credentials are refused before any entry exists; a loose key file is refused at build. Each
//! TLS refusal (untrusted, expired or misnamed certificate, no client certificate, TLS to a
//! plain member, a plain endpoint for a TLS member) is a typed [`SecurityError`], found well
//! within the connect timeout. Four etcd members in all (about 1 s each to start). Needs etcd
//! (`scripts/test.sh` unpacks Debian's).

use std::sync::Arc;
use std::time::{Duration, Instant};

use election_core::{
    BackendError, Candidate, CoordinationBackend, ElectionError, ElectionState, ErrorKind,
    SecurityError, StopReason,
};
use election_etcd::testing::{EtcdMember, EtcdSecurity};
use election_etcd::{EtcdBackend, EtcdBackendBuilder, EtcdTls};
use election_zk::testing::TestPki;
use etcd_client::{Certificate, ConnectOptions, GetOptions, Identity, TlsOptions};
use tokio::time::timeout;

const T: Duration = Duration::from_secs(3);
const WAIT: Duration = Duration::from_secs(15);
/// Long, so that a refusal reported well within it was diagnosed, not timed out.
const CONNECT_BOUND: Duration = Duration::from_secs(20);

fn tls(pki: &TestPki) -> EtcdTls {
    EtcdTls::new(pki.ca_file()).client_identity(pki.client_cert_file(), pki.client_key_file())
}

/// Joins with `backend`, which must be refused: at the join (the session cannot be opened), or
/// by the candidate stopping with a reason (the session opens, the first write is refused).
async fn refused_join(backend: EtcdBackendBuilder) -> (Option<ErrorKind>, String) {
    let started = Instant::now();
    let outcome = Candidate::builder("/svc/leader", "mallory")
        .session_timeout(T)
        .join(Arc::new(
            backend
                .connect_timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
        ) as Arc<dyn CoordinationBackend>)
        .await;
    let refusal = match outcome {
        Err(ElectionError::Backend(e)) => (Some(e.kind()), e.to_string()),
        Err(other) => panic!("unexpected {other}"),
        Ok(c) => {
            let mut state = c.state();
            let end = timeout(WAIT, async {
                loop {
                    if let ElectionState::Stopped(why) = state.borrow_and_update().clone() {
                        return why;
                    }
                    state.changed().await.expect("state");
                }
            })
            .await
            .expect("the candidate stops");
            match end {
                StopReason::Failed(why) => (None, why),
                other => panic!("expected Failed, got {other:?}"),
            }
        }
    };
    eprintln!("measure: refused in {:?}: {}", started.elapsed(), refusal.1);
    refusal
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_and_auth_lead_and_refusals_leave_nothing() {
    let pki = TestPki::generate();
    let member = EtcdMember::start_secure(EtcdSecurity {
        cert_file: pki.server_key_and_cert_file(),
        key_file: pki.server_key_and_cert_file(),
        ca_file: pki.ca_file(),
    });
    let endpoint = format!("https://{}", member.endpoint());

    // An administrator enables authentication, over TLS.
    let raw_tls = TlsOptions::new()
        .ca_certificate(Certificate::from_pem(
            std::fs::read_to_string(pki.ca_file()).unwrap(),
        ))
        .identity(Identity::from_pem(
            std::fs::read_to_string(pki.client_cert_file()).unwrap(),
            std::fs::read_to_string(pki.client_key_file()).unwrap(),
        ));
    let mut admin = etcd_client::Client::connect(
        [endpoint.clone()],
        Some(ConnectOptions::new().with_tls(raw_tls.clone())),
    )
    .await
    .expect("TLS client");
    admin.role_add("root").await.unwrap();
    admin.user_add("root", "root-s3cret", None).await.unwrap();
    admin.user_grant_role("root", "root").await.unwrap();
    admin.auth_enable().await.unwrap();

    let backend = EtcdBackend::builder([endpoint.clone()])
        .tls_files(tls(&pki))
        .auth("root", "root-s3cret")
        .namespace("/tenant");
    let leader = Candidate::builder("/svc/leader", "alpha")
        .session_timeout(T)
        .join(Arc::new(backend.clone().build().unwrap()) as Arc<dyn CoordinationBackend>)
        .await
        .expect("joins over TLS with credentials");
    timeout(WAIT, leader.wait_for_leadership())
        .await
        .expect("leads in time")
        .expect("leads");

    // A wrong password, and no credentials at all: refused for good, typed.
    let (kind, why) = refused_join(
        EtcdBackend::builder([endpoint.clone()])
            .tls_files(tls(&pki))
            .auth("root", "wrong"),
    )
    .await;
    assert_eq!(kind, Some(ErrorKind::NotPermitted), "{why}");
    assert!(why.contains("authentication failed"), "{why}");
    let (e, _) = refused(
        EtcdBackend::builder([endpoint.clone()])
            .tls_files(tls(&pki))
            .auth("root", "wrong"),
    )
    .await;
    assert_eq!(
        e,
        SecurityError::AuthenticationFailed {
            hosts: endpoint.clone(),
            mechanism: "user and password",
            user: Some("root".into()),
        }
    );
    assert!(!why.contains("wrong"), "the password leaked: {why}");
    // Without credentials etcd takes the client certificate's CN ("election client") as the
    // user, who has no role: the lease is granted (etcd does not check it), the first write
    // is refused.
    let (_, why) =
        refused_join(EtcdBackend::builder([endpoint.clone()]).tls_files(tls(&pki))).await;
    assert!(why.contains("permission denied"), "{why}");

    let mut root = etcd_client::Client::connect(
        [endpoint.clone()],
        Some(
            ConnectOptions::new()
                .with_tls(raw_tls)
                .with_user("root", "root-s3cret"),
        ),
    )
    .await
    .unwrap();
    let keys = root
        .get("/", Some(GetOptions::new().with_prefix().with_keys_only()))
        .await
        .unwrap();
    let keys: Vec<String> = keys
        .kvs()
        .iter()
        .map(|kv| String::from_utf8_lossy(kv.key()).into_owned())
        .collect();
    // The election directory's own key, and one entry: the leader's.
    let entries: Vec<&String> = keys.iter().filter(|k| k.contains("/_c_")).collect();
    assert_eq!(entries.len(), 1, "{keys:?}");
    assert!(entries[0].starts_with("/tenant/svc/leader/_c_"), "{keys:?}");

    leader.stop().await;
}

/// Opens a session that must be refused; returns the security error and how long it took.
async fn refused(backend: EtcdBackendBuilder) -> (SecurityError, Duration) {
    let backend = backend
        .connect_timeout(CONNECT_BOUND)
        .build()
        .expect("valid settings");
    let started = Instant::now();
    let e: BackendError = backend
        .open_session(T)
        .await
        .err()
        .expect("the session must be refused");
    let took = started.elapsed();
    assert_eq!(e.kind(), ErrorKind::NotPermitted, "{e}");
    let source = SecurityError::of(&e)
        .unwrap_or_else(|| panic!("no SecurityError in {e}"))
        .clone();
    eprintln!("measure: refused in {took:?}: {e}");
    assert!(
        took < CONNECT_BOUND / 2,
        "diagnosed, not timed out: {took:?}"
    );
    (source, took)
}

fn secure_member(pki: &TestPki, cert: std::path::PathBuf) -> EtcdMember {
    EtcdMember::start_secure(EtcdSecurity {
        cert_file: cert.clone(),
        key_file: cert,
        ca_file: pki.ca_file(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tls_refusal_is_typed_and_quick() {
    let pki = TestPki::generate();
    let member = secure_member(&pki, pki.server_key_and_cert_file());
    let https = format!("https://{}", member.endpoint());
    let builder = |endpoint: &str| EtcdBackend::builder([endpoint.to_owned()]);

    // A CA that did not sign the member's certificate; the candidate stops with the reason.
    let untrusted = || {
        builder(&https).tls_files(
            EtcdTls::new(pki.other_ca_file())
                .client_identity(pki.client_cert_file(), pki.client_key_file()),
        )
    };
    let (e, _) = refused(untrusted()).await;
    assert!(
        matches!(e, SecurityError::UntrustedCertificate { ref host, .. } if *host == member.endpoint()),
        "{e:?}"
    );
    let (kind, why) = refused_join(untrusted()).await;
    assert_eq!(kind, Some(ErrorKind::NotPermitted), "{why}");
    assert!(why.contains("not signed by a trusted CA"), "{why}");

    // The certificate names 127.0.0.1 only; `localhost` is another name.
    let port = member.endpoint().rsplit_once(':').unwrap().1.to_owned();
    let (e, _) = refused(builder(&format!("https://localhost:{port}")).tls_files(tls(&pki))).await;
    assert!(
        matches!(e, SecurityError::CertificateNameMismatch { .. }),
        "{e:?}"
    );

    // No client certificate, while the member requires one (`--client-cert-auth`).
    let (e, _) = refused(builder(&https).tls_files(EtcdTls::new(pki.ca_file()))).await;
    assert!(
        matches!(e, SecurityError::ClientCertificateRefused { .. }),
        "{e:?}"
    );

    // No TLS configured for a member that expects it.
    let (e, _) = refused(builder(&member.endpoint())).await;
    assert!(matches!(e, SecurityError::TlsRequired { .. }), "{e:?}");
    let (e, _) = refused(builder(&format!("http://{}", member.endpoint()))).await;
    assert!(matches!(e, SecurityError::TlsRequired { .. }), "{e:?}");

    // TLS to a member that serves plain HTTP.
    let plain = EtcdMember::start();
    let (e, _) =
        refused(builder(&format!("https://{}", plain.endpoint())).tls_files(tls(&pki))).await;
    assert!(matches!(e, SecurityError::NotTls { .. }), "{e:?}");
    // ... while plain HTTP to it serves (the probe finds nothing to say).
    let ok = builder(&plain.endpoint()).build().unwrap();
    ok.open_session(T)
        .await
        .expect("a plain session")
        .close()
        .await;

    // An expired member certificate.
    let expired = secure_member(&pki, pki.expired_server_key_and_cert_file());
    let (e, _) =
        refused(builder(&format!("https://{}", expired.endpoint())).tls_files(tls(&pki))).await;
    assert!(
        matches!(e, SecurityError::CertificateExpired { .. }),
        "{e:?}"
    );

    // Nothing was written by any refused client: the members hold no key.
    for (endpoint, tls) in [
        (&https, Some(&pki)),
        (&format!("http://{}", plain.endpoint()), None),
    ] {
        let mut options = ConnectOptions::new();
        if let Some(pki) = tls {
            options = options.with_tls(raw_tls(pki));
        }
        let mut c = etcd_client::Client::connect([endpoint.clone()], Some(options))
            .await
            .unwrap();
        let keys = c
            .get("/", Some(GetOptions::new().with_prefix().with_keys_only()))
            .await
            .unwrap();
        assert_eq!(keys.kvs().len(), 0, "{endpoint}");
    }
}

fn raw_tls(pki: &TestPki) -> TlsOptions {
    TlsOptions::new()
        .ca_certificate(Certificate::from_pem(
            std::fs::read_to_string(pki.ca_file()).unwrap(),
        ))
        .identity(Identity::from_pem(
            std::fs::read_to_string(pki.client_cert_file()).unwrap(),
            std::fs::read_to_string(pki.client_key_file()).unwrap(),
        ))
}

#[test]
fn a_key_file_others_can_read_is_refused_at_build() {
    use std::os::unix::fs::PermissionsExt;
    let pki = TestPki::generate();
    let key = pki.dir().join("loose-key.pem");
    std::fs::copy(pki.client_key_file(), &key).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o604)).unwrap();
    let e = EtcdBackend::builder(["https://127.0.0.1:2379"])
        .tls_files(EtcdTls::new(pki.ca_file()).client_identity(pki.client_cert_file(), &key))
        .build()
        .unwrap_err();
    assert_eq!(
        e,
        election_core::ConfigError::SecretReadableByOthers {
            path: key,
            mode: 0o604
        }
    );
}
