//! `election run` and `election status` against a ZooKeeper server with a `secureClientPort`
//! (certificates generated at test time) and SASL DIGEST-MD5: every secret comes from a file
//! or an environment variable, none is ever printed or passed on to the command, a key file
//! other users can read is refused before any connection, and a refusal by the service is a
//! one-line reason with exit 77 and nothing created.
//!
//! One secure server for the whole file (about 1 s to start); the test takes a few seconds.

mod common;

use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use common::*;
use election_zk::testing::{TestPki, ZkSecurity};

const LONG: Duration = Duration::from_secs(15);
/// Distinctive, so that finding it anywhere in an output means a leak.
const PASSWORD: &str = "pw-7f3c9e1d-s3cret";
const WRONG: &str = "wrong-4b2a-s3cret";
const USAGE: i32 = 2;
const REFUSED: i32 = 77;

fn secret_file(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, text).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    p
}

fn flag(name: &str, path: &Path) -> [String; 2] {
    [name.to_owned(), path.display().to_string()]
}

/// The TLS flags with the test PKI's client identity and `ca`.
fn tls_flags(pki: &TestPki, ca: &Path, key: &Path) -> Vec<String> {
    let mut v = Vec::new();
    v.extend(flag("--zk-tls-ca", ca));
    v.extend(flag("--zk-tls-cert", &pki.client_cert_file()));
    v.extend(flag("--zk-tls-key", key));
    v
}

/// Whether `path` exists on the server (read on its plain port, unauthenticated: the ACLs
/// let anyone read).
fn exists(connect: &str, path: &str) -> bool {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = zookeeper_client::Client::connector()
            .with_session_timeout(T_DUR)
            .connect(connect)
            .await
            .expect("plain client");
        client.check_stat(path).await.expect("check_stat").is_some()
    })
}

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

/// The one line a refused run prints on stderr.
fn one_line(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("election: "))
        .collect();
    assert_eq!(lines.len(), 1, "expected one reason line:\n{stderr}");
    eprintln!("exit {:?}: {}", out.status.code(), lines[0]);
    lines[0].to_owned()
}

#[test]
fn run_and_status_over_tls_and_sasl_with_secrets_from_files_and_env_only() {
    let pki = TestPki::generate();
    let server = ZkServer::start_secure(ZkSecurity::new(&pki).sasl_user("election", PASSWORD));
    let plain = server.connect_string();
    let secure = server.secure_connect_string();
    let w = World::on(Service::Zk(server), "/cli/secure");
    let dir = w.dir.path().to_owned();
    let password_file = secret_file(&dir, "zk-password", &format!("{PASSWORD}\n"), 0o600);
    let wrong_file = secret_file(&dir, "zk-wrong", &format!("{WRONG}\n"), 0o600);
    let loose_key = secret_file(
        &dir,
        "loose-key.pem",
        &fs::read_to_string(pki.client_key_file()).unwrap(),
        0o644,
    );
    let tls = tls_flags(&pki, &pki.ca_file(), &pki.client_key_file());
    let tls: Vec<&str> = tls.iter().map(String::as_str).collect();

    // a: TLS + SASL, the password from a file.
    let mut a_flags = tls.clone();
    let pw = flag("--zk-sasl-password-file", &password_file);
    a_flags.extend(["--zk-sasl-user", "election", &pw[0], &pw[1]]);
    let mut a = w.supervisor("a", &secure, &a_flags, &["run"]);
    let first = w.wait_line("a's child", LONG, |l| l.kind == "start" && l.id == "a");

    // b: the same, the password from ELECTION_ZK_SASL_PASSWORD; it queues behind a.
    let mut b_flags = tls.clone();
    b_flags.extend(["--zk-sasl-user", "election"]);
    let mut b = w.supervisor_with(
        "b",
        &secure,
        &b_flags,
        &["run"],
        &[("ELECTION_ZK_SASL_PASSWORD", PASSWORD)],
    );

    // status over TLS without SASL (the default ACL lets anyone read), then with SASL from the
    // environment, logging at debug level: a leads, b queues, no password printed.
    let status = |extra: &[&str], env: &[(&str, &str)]| -> Output {
        election()
            .args(["status", "--json", "--path", &w.path])
            .args(w.service_flags(&secure))
            .args(&tls)
            .args(extra)
            .envs(env.iter().copied())
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let start = std::time::Instant::now();
    loop {
        let out = status(&[], &[]);
        assert_no_secret("status", &text(&out));
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(s["leader"]["id"], "a", "{s}");
        if s["participants"].as_array().unwrap().len() == 2 {
            assert_eq!(s["participants"][1]["id"], "b", "{s}");
            break;
        }
        assert!(
            start.elapsed() < LONG,
            "b never queued: {s}\n{}",
            w.stderrs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = status(
        &["--zk-sasl-user", "election"],
        &[("ELECTION_ZK_SASL_PASSWORD", PASSWORD)],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_no_secret("status with SASL", &text(&out));

    // a hands over to b, whose child does not inherit the password variable.
    a.signal("TERM");
    assert_eq!(a.wait(LONG).code(), Some(7), "{}", a.stderr());
    let second = w.wait_line("b's child", LONG, |l| l.kind == "start" && l.id == "b");
    assert!(second.token > first.token);
    let environ = fs::read(format!("/proc/{}/environ", second.rest[0])).unwrap();
    let environ = String::from_utf8_lossy(&environ);
    assert!(
        environ.contains("ELECTION_TOKEN=") && !environ.contains("ELECTION_ZK_SASL_PASSWORD"),
        "the child's environment: {environ}"
    );
    assert_no_secret("the child's environment", &environ);

    // A wrong password: refused at once, one line, exit 77, nothing created.
    let wrong_path = "/cli/secure-wrong";
    let wf = flag("--zk-sasl-password-file", &wrong_file);
    let out = election()
        .args(["run", "--path", wrong_path, "--zookeeper", &secure])
        .args(&tls)
        .args(["--zk-sasl-user", "election", &wf[0], &wf[1], "--", "true"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_no_secret("a refused run", &text(&out));
    assert_eq!(out.status.code(), Some(REFUSED), "{}", text(&out));
    let line = one_line(&out);
    assert!(
        line.contains("refused") && line.contains("authentication failed"),
        "{line}"
    );
    assert!(
        !exists(&plain, wrong_path),
        "a refused run created its path"
    );

    // A CA that did not sign the server's certificate: exit 77, the reason in one line.
    let untrusted = tls_flags(&pki, &pki.other_ca_file(), &pki.client_key_file());
    let out = election()
        .args(["status", "--path", &w.path])
        .args(w.service_flags(&secure))
        .args(&untrusted)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(REFUSED), "{}", text(&out));
    let line = one_line(&out);
    assert!(line.contains("not signed by a trusted CA"), "{line}");

    // A key file others can read: refused before any connection (nothing listening here is
    // ever connected to), exit 2, a one-line reason naming the flag.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let trap = listener.local_addr().unwrap().to_string();
    let loose = tls_flags(&pki, &pki.ca_file(), &loose_key);
    let out = election()
        .args(["run", "--path", "/cli/secure-loose", "--zookeeper", &trap])
        .args(&loose)
        .args(["--zk-sasl-user", "election", &pw[0], &pw[1], "--", "true"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(USAGE), "{}", text(&out));
    let line = one_line(&out);
    assert!(
        line.contains("--zk-tls-key") && line.contains("chmod") && line.contains("0644"),
        "{line}"
    );
    assert!(
        listener.accept().is_err(),
        "the refused run connected to the service"
    );
    assert_no_secret("a refused key", &text(&out));

    // A password file others can read is refused the same way.
    let loose_pw = secret_file(&dir, "loose-pw", PASSWORD, 0o604);
    let lp = flag("--zk-sasl-password-file", &loose_pw);
    let out = election()
        .args(["status", "--path", "/x", "--zookeeper", &trap])
        .args(&tls)
        .args(["--zk-sasl-user", "election", &lp[0], &lp[1]])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(USAGE), "{}", text(&out));
    let line = one_line(&out);
    assert!(line.contains("--zk-sasl-password-file"), "{line}");
    assert!(listener.accept().is_err());

    b.signal("TERM");
    assert_eq!(b.wait(LONG).code(), Some(7), "{}", b.stderr());
    w.check();
    assert_no_secret("a and b", &w.stderrs());
}

#[test]
fn no_password_flag_and_help_never_shows_a_password() {
    // There is no flag that takes a password.
    for flag in ["--zk-sasl-password", "--etcd-password"] {
        let out = run_election(&[
            "status",
            "--path",
            "/x",
            "--zookeeper",
            "h:1",
            flag,
            PASSWORD,
        ]);
        assert_eq!(out.status.code(), Some(USAGE), "{flag}: {}", text(&out));
    }
    // Help names the secret flags and variables, and shows no value of a password variable.
    for sub in ["run", "status", "watch"] {
        let out = election()
            .args([sub, "--help"])
            .env("ELECTION_ZK_SASL_PASSWORD", PASSWORD)
            .env("ELECTION_ETCD_PASSWORD", PASSWORD)
            .env("ELECTION_ZK_SASL_USER", "election")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0));
        let help = text(&out);
        assert_no_secret("--help", &help);
        for needle in [
            "--zk-tls-ca",
            "--zk-tls-key",
            "--zk-sasl-password-file",
            "ELECTION_ZK_SASL_PASSWORD",
            "--etcd-password-file",
            "ELECTION_ETCD_PASSWORD",
            "--etcd-tls-key",
        ] {
            assert!(
                help.contains(needle),
                "{sub} --help lacks {needle}:\n{help}"
            );
        }
    }
    // A SASL user with no password, and a password given twice, are usage errors.
    let dir = tempfile::tempdir().unwrap();
    let pw = secret_file(dir.path(), "pw", PASSWORD, 0o600);
    let out = run_election(&[
        "status",
        "--path",
        "/x",
        "--zookeeper",
        "127.0.0.1:1",
        "--zk-sasl-user",
        "u",
    ]);
    assert_eq!(out.status.code(), Some(USAGE), "{}", text(&out));
    assert!(
        one_line(&out).contains("needs a password"),
        "{}",
        text(&out)
    );
    let out = election()
        .args(["status", "--path", "/x", "--zookeeper", "127.0.0.1:1"])
        .args(["--zk-sasl-user", "u", "--zk-sasl-password-file"])
        .arg(&pw)
        .env("ELECTION_ZK_SASL_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(USAGE), "{}", text(&out));
    assert!(one_line(&out).contains("not both"), "{}", text(&out));
    assert_no_secret("usage errors", &text(&out));
}
