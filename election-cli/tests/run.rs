//! `election run` with real processes on a real ZooKeeper server (session timeout 2 s,
//! tickTime 200 ms). Every case ends with `World::check`: no two children (with their
//! grandchildren) ran at once, and the tokens grew.

mod common;

use std::time::{Duration, SystemTime};

use common::*;

const LONG: Duration = Duration::from_secs(15);

#[test]
fn sigterm_hands_over_in_milliseconds_and_exits_with_the_childs_status() {
    let w = World::new("/cli/sigterm");
    let zk = w.connect();
    let mut a = w.supervisor("a", &zk, &[], &["run"]);
    let first = w.wait_line("a's child", LONG, |l| l.kind == "start" && l.id == "a");
    // b, then c, queued behind a (c started once b is in the queue: the order is known).
    let mut b = w.supervisor("b", &zk, &[], &["run"]);
    wait_queued(&w, &zk, 2);
    let mut c = w.supervisor("c", &zk, &[], &["run"]);
    let s = wait_queued(&w, &zk, 3);
    assert_eq!(s["leader"]["id"], "a");
    assert_eq!(s["participants"][1]["id"], "b");

    // The child's environment.
    assert!(
        first.rest[1].starts_with("0x"),
        "ELECTION_SESSION: {first:?}"
    );
    assert_eq!(first.rest[2], w.path, "ELECTION_PATH");
    // SIGHUP is forwarded (the child traps it once it logged its grandchild).
    w.wait_line("a's grandchild", LONG, |l| {
        l.kind == "grandchild" && l.id == "a"
    });
    a.signal("HUP");
    w.wait_line("the child's hup", LONG, |l| l.kind == "hup" && l.id == "a");

    let sent = SystemTime::now();
    a.signal("TERM");
    let next = w.wait_line("b's child", LONG, |l| l.kind == "start" && l.id == "b");
    // The child traps SIGTERM and exits 7: the supervisor exits with that status.
    assert_eq!(a.wait(LONG).code(), Some(7), "a's stderr:\n{}", a.stderr());
    let lines = w.lines();
    assert!(lines.iter().any(|l| l.kind == "term" && l.id == "a"));
    let handover = ms_between(sent, next.at());
    eprintln!("SIGTERM of the leader's supervisor -> successor's child started: {handover:.1} ms");
    assert!(next.token > first.token);
    // Well under the session timeout: the entry was withdrawn, not left to expire.
    assert!(handover < 1000.0, "hand-over took {handover} ms");

    b.signal("INT");
    w.wait_line("c's child", LONG, |l| l.kind == "start" && l.id == "c");
    assert_eq!(b.wait(LONG).code(), Some(7));
    c.signal("TERM");
    assert_eq!(c.wait(LONG).code(), Some(7));
    w.wait_lock_free(Duration::from_secs(2));
    let lines = w.check();
    assert_eq!(lines.iter().filter(|l| l.kind == "start").count(), 3);
    // Nobody is left in the election.
    let (code, s) = w.status_json(&zk);
    assert_eq!(code, Some(3), "{s}");
    assert_eq!(s["participants"].as_array().unwrap().len(), 0);
}

#[test]
fn sigkill_of_the_supervisor_kills_its_child_and_grandchild_at_once() {
    let w = World::new("/cli/sigkill");
    let zk = w.connect();
    let mut a = w.supervisor("a", &zk, &[], &["run"]);
    w.wait_line("a's child", LONG, |l| l.kind == "start" && l.id == "a");
    let grandchild = w.wait_line("a's grandchild", LONG, |l| l.kind == "grandchild");
    let _b = w.supervisor("b", &zk, &[], &["run"]);
    // The parent-death signal fires when the *thread* that forked the child ends: tokio's
    // blocking threads end after 10 s idle. Wait past that, so that a child forked from such a
    // thread would have been killed already (and b queued meanwhile).
    std::thread::sleep(Duration::from_secs(11));
    assert!(
        alive(grandchild.value) && !w.lock_free(),
        "the child died early"
    );
    let killed = SystemTime::now();
    a.signal("KILL");
    a.wait(LONG);
    let gone = w.wait_lock_free(Duration::from_secs(1));
    assert!(!alive(grandchild.value), "the grandchild survived");
    let next = w.wait_line("b's child", T_DUR * 4, |l| l.kind == "start" && l.id == "b");
    eprintln!(
        "SIGKILL of the leader's supervisor: its group gone after {:.1} ms; successor's child started after {:.0} ms (session timeout {T})",
        ms_between(killed, gone),
        ms_between(killed, next.at())
    );
    assert!(next.at() > gone);
    w.check();
}

#[test]
fn a_partitioned_leader_kills_a_child_that_ignores_sigterm_before_the_successor_starts() {
    let w = World::new("/cli/partition");
    let proxy = TcpProxy::start(w.zk().client_addr());
    let via_proxy = proxy.addr().to_string();
    let zk = w.connect();
    let _a = w.supervisor("a", &via_proxy, &["--grace", "300ms"], &["ignore"]);
    let first = w.wait_line("a's child", LONG, |l| l.kind == "start" && l.id == "a");
    let _b = w.supervisor("b", &zk, &["--grace", "300ms"], &["run"]);
    wait_queued(&w, &zk, 2);
    let cut = SystemTime::now();
    proxy.cut();
    let gone = w.wait_lock_free(T_DUR * 2);
    let next = w.wait_line("b's child", T_DUR * 4, |l| l.kind == "start" && l.id == "b");
    eprintln!(
        "leader cut off: its group (ignoring SIGTERM) gone {:.0} ms after the cut, successor's child started at {:.0} ms",
        ms_between(cut, gone),
        ms_between(cut, next.at())
    );
    assert!(
        gone < next.at(),
        "the successor started before the old group was gone"
    );
    assert!(next.token > first.token);
    // It ignored SIGTERM: it never logged a `term`, it was killed, with its grandchild.
    assert!(!w.lines().iter().any(|l| l.kind == "term" && l.id == "a"));
    let grandchild = w.wait_line("a's grandchild", LONG, |l| {
        l.kind == "grandchild" && l.id == "a"
    });
    assert!(!alive(grandchild.value), "a's grandchild survived");
    w.check();
}

#[test]
fn on_exit_exit_withdraws_and_exits_with_the_childs_status() {
    let w = World::new("/cli/on-exit-exit");
    let zk = w.connect();
    let mut a = w.supervisor("a", &zk, &["--on-exit", "exit"], &["exitafter", "0.3", "5"]);
    assert_eq!(a.wait(LONG).code(), Some(5), "stderr:\n{}", a.stderr());
    let (code, s) = w.status_json(&zk);
    assert_eq!(code, Some(3), "the entry was left behind: {s}");
    w.check();
}

#[test]
fn on_exit_restart_runs_it_again_in_the_same_term() {
    let w = World::new("/cli/on-exit-restart");
    let zk = w.connect();
    let mut a = w.supervisor("a", &zk, &["--on-exit", "restart"], &["exit", "1"]);
    let start = std::time::Instant::now();
    while w.lines().iter().filter(|l| l.kind == "start").count() < 4 {
        assert!(start.elapsed() < LONG, "not restarted: {:?}", w.lines());
        std::thread::sleep(Duration::from_millis(20));
    }
    a.signal("TERM");
    // The last child had ended: no child ran when the signal came.
    assert_eq!(a.wait(LONG).code(), Some(0), "stderr:\n{}", a.stderr());
    let lines = w.check();
    let starts: Vec<_> = lines.iter().filter(|l| l.kind == "start").collect();
    assert!(
        starts.iter().all(|l| l.token == starts[0].token),
        "restarts are in one term: {starts:?}"
    );
    let gaps: Vec<f64> = starts
        .windows(2)
        .map(|p| ms_between(p[0].at(), p[1].at()))
        .collect();
    // Backoff from T/20 (100 ms), doubling: each gap is at least its backoff.
    assert!(
        gaps[0] >= 100.0 && gaps[1] >= 200.0 && gaps[2] >= 400.0,
        "no growing backoff: {gaps:?}"
    );
}

#[test]
fn a_child_that_dies_at_once_does_not_starve_the_others() {
    let w = World::new("/cli/on-exit-resign");
    let zk = w.connect();
    let _a = w.supervisor("a", &zk, &[], &["exit", "1"]);
    w.wait_line("a's child", LONG, |l| l.kind == "start" && l.id == "a");
    let _b = w.supervisor("b", &zk, &[], &["run"]);
    w.wait_line("b's child", LONG, |l| l.kind == "start" && l.id == "b");
    std::thread::sleep(Duration::from_secs(1));
    let lines = w.check();
    // b's child still runs (no term), and a does not spin.
    assert!(!lines.iter().any(|l| l.kind == "term"));
    let a_starts = lines
        .iter()
        .filter(|l| l.kind == "start" && l.id == "a")
        .count();
    assert!(a_starts <= 3, "a spun: {a_starts} starts");
    assert!(!w.lock_free(), "b's child is not running");
}

#[test]
fn bad_input_exits_non_zero_with_one_line_and_creates_nothing() {
    let w = World::new("/cli/bad");
    let zk = w.connect();
    // (arguments, exit code, in the message, whether the message is ours: one line starting
    // with `election:`; clap's own usage errors add a usage hint)
    let cases: Vec<(Vec<&str>, i32, &str, bool)> = vec![
        (
            vec![
                "run",
                "--zookeeper",
                &zk,
                "--path",
                "/cli/bad",
                "--grace",
                "0s",
                "--",
                "true",
            ],
            2,
            "more than zero",
            false,
        ),
        (
            vec![
                "run",
                "--zookeeper",
                &zk,
                "--path",
                "/cli/bad",
                "--bogus",
                "--",
                "true",
            ],
            2,
            "--bogus",
            false,
        ),
        (
            vec!["run", "--path", "/cli/bad", "--", "true"],
            2,
            "--zookeeper",
            false,
        ),
        (
            vec![
                "run",
                "--zookeeper",
                &zk,
                "--path",
                "/cli/bad",
                "--session-timeout",
                "10",
                "--",
                "true",
            ],
            2,
            "duration",
            false,
        ),
        (
            vec![
                "run",
                "--zookeeper",
                &zk,
                "--path",
                "/cli/bad",
                "--on-exit",
                "sometimes",
                "--",
                "true",
            ],
            2,
            "sometimes",
            false,
        ),
        (
            vec!["run", "--zookeeper", &zk, "--path", "/cli/bad"],
            2,
            "COMMAND",
            false,
        ),
        (
            vec![
                "run",
                "--zookeeper",
                &zk,
                "--path",
                "relative",
                "--",
                "true",
            ],
            2,
            "path",
            true,
        ),
        (
            vec![
                "run",
                "--zookeeper",
                "a:b:c",
                "--path",
                "/cli/bad",
                "--",
                "true",
            ],
            2,
            "--zookeeper",
            true,
        ),
        (
            vec![
                "run",
                "--zookeeper",
                &zk,
                "--path",
                "/cli/bad",
                "--session-timeout",
                "3s",
                "--grace",
                "2s",
                "--",
                "true",
            ],
            2,
            "does not fit",
            true,
        ),
        (
            vec![
                "run",
                "--zookeeper",
                &zk,
                "--path",
                "/cli/bad",
                "--",
                "/no/such/command",
            ],
            127,
            "not found",
            true,
        ),
        (
            vec![
                "run",
                "--zookeeper",
                "127.0.0.1:1",
                "--path",
                "/cli/bad",
                "--connection-timeout",
                "1s",
                "--",
                "true",
            ],
            69,
            "cannot reach",
            true,
        ),
        (
            vec![
                "status",
                "--zookeeper",
                "127.0.0.1:1",
                "--path",
                "/cli/bad",
                "--connection-timeout",
                "1s",
            ],
            69,
            "cannot reach",
            true,
        ),
    ];
    for (args, code, needle, ours) in cases {
        let out = run_election(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        if ours {
            let reasons: Vec<_> = stderr
                .lines()
                .filter(|l| l.starts_with("election: "))
                .collect();
            assert_eq!(reasons.len(), 1, "{args:?}: {stderr}");
            assert!(reasons[0].contains(needle), "{args:?}: {stderr}");
        }
    }
    // The `/no/such/command` case ran against the real server: nothing was created.
    let out = run_election(&["status", "--zookeeper", &zk, "--path", "/cli/bad", "--json"]);
    assert_eq!(out.status.code(), Some(3));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["participants"].as_array().unwrap().len(), 0);
}

#[test]
fn status_watch_and_metrics() {
    let w = World::new("/cli/status");
    let zk = w.connect();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let metrics = format!("127.0.0.1:{port}");
    let notify_path = w.dir.path().join("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).unwrap();
    notify.set_read_timeout(Some(LONG)).unwrap();
    let mut a = w.supervisor_with(
        "a",
        &zk,
        &["--payload", "10.0.0.7:8080", "--metrics", &metrics],
        &["run"],
        &[("NOTIFY_SOCKET", notify_path.to_str().unwrap())],
    );
    let first = w.wait_line("a's child", LONG, |l| l.kind == "start" && l.id == "a");
    // systemd readiness, and the socket is not passed on to the child.
    let mut buf = [0u8; 512];
    let mut got = String::new();
    while !got.contains("READY=1") {
        let n = notify.recv(&mut buf).expect("no sd_notify message");
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
        got.push('\n');
    }
    assert_eq!(first.rest[3], "unset", "NOTIFY_SOCKET reached the child");
    let mut b = w.supervisor("b", &zk, &[], &["run"]);

    // watch, in JSON, from before the hand-over
    let mut watch = election()
        .args(["watch", "--zookeeper", &zk, "--path", &w.path, "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // and in text, with JSON logs on stderr
    let mut watch_text = election()
        .args([
            "--log-format",
            "json",
            "watch",
            "--zookeeper",
            &zk,
            "--path",
            &w.path,
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    loop {
        let (code, s) = w.status_json(&zk);
        if s["participants"].as_array().unwrap().len() == 2 {
            assert_eq!(code, Some(0));
            assert_eq!(s["leader"]["id"], "a");
            assert_eq!(s["leader"]["payload"], "10.0.0.7:8080");
            assert_eq!(s["leader"]["token"], first.token);
            assert_eq!(s["participants"][1]["id"], "b");
            break;
        }
        assert!(start.elapsed() < LONG, "b never queued: {s}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let text = run_election(&["status", "--zookeeper", &zk, "--path", &w.path]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.starts_with(&format!(
            "leader: id=a payload=10.0.0.7:8080 token={}",
            first.token
        )),
        "{text}"
    );
    assert!(text.contains("participants: 2\n  1 id=a"), "{text}");
    assert!(text.contains("\n  2 id=b"), "{text}");

    let scrape = http_get(&metrics, "/metrics");
    for needle in [
        "election_cli_leader{path=\"/cli/status\"} 1",
        &format!("election_cli_token{{path=\"/cli/status\"}} {}", first.token),
        "election_cli_child_starts_total{path=\"/cli/status\"} 1",
        "election_transitions_total{",
        "reason=\"claimed\"",
        "election_terms_total{path=\"/cli/status\"} 1",
    ] {
        assert!(scrape.contains(needle), "no {needle} in:\n{scrape}");
    }

    a.signal("TERM");
    let next = w.wait_line("b's child", LONG, |l| l.kind == "start" && l.id == "b");
    a.wait(LONG);
    std::thread::sleep(Duration::from_millis(300));
    let kill = std::process::Command::new("kill")
        .args(["-INT", &watch.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = watch.wait_with_output_timeout();
    assert_eq!(out.0, Some(0));
    let lines: Vec<serde_json::Value> = out
        .1
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let tokens: Vec<u64> = lines
        .iter()
        .filter_map(|l| l["leader"]["token"].as_u64())
        .collect();
    assert_eq!(tokens, vec![first.token, next.token], "{lines:?}");
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &watch_text.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let (code, text) = watch_text.wait_with_output_timeout();
    assert_eq!(code, Some(0));
    let text: Vec<&str> = text.lines().collect();
    assert_eq!(text.len(), 2, "{text:?}");
    assert!(
        text[0].ends_with(&format!(
            " leader id=a payload=10.0.0.7:8080 token={} session={}",
            first.token, first.rest[1]
        )),
        "{text:?}"
    );
    assert!(text[1].contains(" leader id=b "), "{text:?}");
    let mut logs = String::new();
    std::io::Read::read_to_string(&mut watch_text.stderr.take().unwrap(), &mut logs).unwrap();
    let first_log: serde_json::Value = serde_json::from_str(logs.lines().next().unwrap())
        .unwrap_or_else(|e| panic!("--log-format json wrote no JSON ({e}): {logs}"));
    assert!(first_log["level"].is_string(), "{first_log}");
    b.signal("TERM");
    b.wait(LONG);
    w.check();
}

/// Waits until `n` copies are in the queue; returns the status.
fn wait_queued(w: &World, connect: &str, n: usize) -> serde_json::Value {
    let start = std::time::Instant::now();
    loop {
        let (_, s) = w.status_json(connect);
        if s["participants"].as_array().map_or(0, |p| p.len()) >= n {
            return s;
        }
        assert!(start.elapsed() < LONG, "never {n} in the queue: {s}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

trait WaitOutput {
    fn wait_with_output_timeout(&mut self) -> (Option<i32>, String);
}

impl WaitOutput for std::process::Child {
    fn wait_with_output_timeout(&mut self) -> (Option<i32>, String) {
        use std::io::Read;
        let start = std::time::Instant::now();
        let status = loop {
            if let Some(s) = self.try_wait().unwrap() {
                break s;
            }
            assert!(start.elapsed() < LONG, "watch did not exit");
            std::thread::sleep(Duration::from_millis(10));
        };
        let mut out = String::new();
        self.stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        (status.code(), out)
    }
}

/// `--compat`: the leader's entry holds the id alone (status shows the id with an empty
/// payload); with `--etcd`, `--payload` or an unknown mode it is a
/// usage error before anything is created.
#[test]
fn compat_entry_holds_the_id_alone() {
    let w = World::new("/cli/compat");
    let zk = w.connect();
    let mut a = w.supervisor("a", &zk, &["--compat", "curator-latch"], &["run"]);
    w.wait_line("a's child", LONG, |l| l.kind == "start" && l.id == "a");
    let s = wait_queued(&w, &zk, 1);
    assert_eq!(s["leader"]["id"], "a", "{s}");
    assert_eq!(s["leader"]["payload"], "", "{s}");
    // Without the mode the payload defaults to this host's address; in it, the entry holds
    // the id alone (its `-latch-` name is checked by tests/tests/zk_mixed_fleet.rs).
    a.signal("TERM");
    a.wait(LONG);
    for (extra, needle) in [
        (&["--compat", "kazoo", "--payload", "x"][..], "--payload"),
        (&["--compat", "zk"][..], "unknown compatibility mode"),
    ] {
        let mut args = vec!["run", "--zookeeper", &zk, "--path", "/cli/compat"];
        args.extend_from_slice(extra);
        args.extend(["--", "true"]);
        let out = run_election(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
    let out = run_election(&[
        "run",
        "--etcd",
        "127.0.0.1:1",
        "--path",
        "/cli/compat",
        "--compat",
        "kazoo",
        "--",
        "true",
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
