//! `election run` and `election status` against an etcd member with TLS (`--client-cert-auth`,
//! certificates generated at test time) and authentication enabled: the password from a file
//! or `ELECTION_ETCD_PASSWORD`, never printed; a wrong password is exit 77 with one line and no
//! key written. One member; about 3 s.
#![cfg(feature = "etcd")]

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::{Output, Stdio};
use std::time::Duration;

use common::*;
use election_etcd::testing::EtcdSecurity;
use election_zk::testing::TestPki;
use etcd_client::{Certificate, ConnectOptions, GetOptions, Identity, TlsOptions};

const LONG: Duration = Duration::from_secs(20);
const PASSWORD: &str = "etcd-pw-91c4e2-s3cret";
const WRONG: &str = "etcd-wrong-5d7e-s3cret";

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn assert_no_secret(what: &str, output: &str) {
    for secret in [PASSWORD, WRONG] {
        assert!(
            !output.contains(secret),
            "{what} printed a password:\n{output}"
        );
    }
}

/// An administrator's client: enables auth (first call) or lists the keys under `prefix`.
fn admin<T>(
    endpoint: &str,
    pki: &TestPki,
    user: Option<&str>,
    f: impl AsyncFnOnce(etcd_client::Client) -> T,
) -> T {
    let tls = TlsOptions::new()
        .ca_certificate(Certificate::from_pem(
            fs::read_to_string(pki.ca_file()).unwrap(),
        ))
        .identity(Identity::from_pem(
            fs::read_to_string(pki.client_cert_file()).unwrap(),
            fs::read_to_string(pki.client_key_file()).unwrap(),
        ));
    let mut options = ConnectOptions::new().with_tls(tls);
    if let Some(user) = user {
        options = options.with_user(user, PASSWORD);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = etcd_client::Client::connect([endpoint], Some(options))
            .await
            .expect("TLS client");
        f(client).await
    })
}

#[test]
fn etcd_run_and_status_with_tls_and_a_password_from_a_file_or_the_environment() {
    let pki = TestPki::generate();
    let member = EtcdMember::start_secure(EtcdSecurity {
        cert_file: pki.server_key_and_cert_file(),
        key_file: pki.server_key_and_cert_file(),
        ca_file: pki.ca_file(),
    });
    let endpoint = format!("https://{}", member.endpoint());
    admin(&endpoint, &pki, None, async |mut c| {
        c.role_add("root").await.unwrap();
        c.user_add("root", PASSWORD, None).await.unwrap();
        c.user_grant_role("root", "root").await.unwrap();
        c.auth_enable().await.unwrap();
    });
    let w = World::on(Service::Etcd(member), "/cli/etcd-secure");
    let dir = w.dir.path().to_owned();
    let secret = |name: &str, text: &str| {
        let p = dir.join(name);
        fs::write(&p, format!("{text}\n")).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        p.display().to_string()
    };
    let password_file = secret("etcd-password", PASSWORD);
    let wrong_file = secret("etcd-wrong", WRONG);
    let (ca, cert, key) = (
        pki.ca_file().display().to_string(),
        pki.client_cert_file().display().to_string(),
        pki.client_key_file().display().to_string(),
    );
    let tls = [
        "--etcd-tls-ca",
        &ca,
        "--etcd-tls-cert",
        &cert,
        "--etcd-tls-key",
        &key,
        "--etcd-user",
        "root",
    ];

    let mut a_flags = tls.to_vec();
    a_flags.extend(["--etcd-password-file", &password_file]);
    let mut a = w.supervisor("a", &endpoint, &a_flags, &["run"]);
    w.wait_line("a's child", LONG, |l| l.kind == "start" && l.id == "a");

    // status with the password in the environment.
    let out = election()
        .args(["status", "--json", "--path", &w.path])
        .args(w.service_flags(&endpoint))
        .args(tls)
        .env("ELECTION_ETCD_PASSWORD", PASSWORD)
        .env("RUST_LOG", "debug")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_no_secret("status", &text(&out));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["leader"]["id"], "a", "{s}");

    // A wrong password: exit 77, one line, nothing written under its path.
    let out = election()
        .args(["run", "--path", "/cli/etcd-wrong", "--etcd", &endpoint])
        .args(tls)
        .args(["--etcd-password-file", &wrong_file, "--", "true"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_no_secret("a refused run", &text(&out));
    assert_eq!(out.status.code(), Some(77), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("election: "))
        .collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    eprintln!("exit 77: {}", lines[0]);
    assert!(lines[0].contains("authentication failed"), "{}", lines[0]);
    let keys = admin(&endpoint, &pki, Some("root"), async |mut c| {
        c.get(
            "/cli/etcd-wrong",
            Some(GetOptions::new().with_prefix().with_keys_only()),
        )
        .await
        .unwrap()
        .kvs()
        .len()
    });
    assert_eq!(keys, 0, "a refused run wrote keys");

    // A CA that did not sign the member's certificate: exit 77, said in the typed error's words.
    let other_ca = pki.other_ca_file().display().to_string();
    let started = std::time::Instant::now();
    let out = election()
        .args(["run", "--path", "/cli/etcd-untrusted", "--etcd", &endpoint])
        .args(["--etcd-tls-ca", &other_ca, "--etcd-tls-cert", &cert])
        .args(["--etcd-tls-key", &key, "--etcd-user", "root"])
        .args(["--etcd-password-file", &password_file, "--", "true"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(77), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("exit 77 in {:?}: {stderr}", started.elapsed());
    assert!(stderr.contains("not signed by a trusted CA"), "{stderr}");

    a.signal("TERM");
    assert_eq!(a.wait(LONG).code(), Some(7), "{}", a.stderr());
    w.check();
    assert_no_secret("a", &w.stderrs());
}
