//! `election run --etcd` on a real etcd member (TTL 2 s): a hand-over on SIGTERM and a
//! failover on SIGKILL, with no two children at once and growing tokens.
#![cfg(feature = "etcd")]

mod common;

use std::time::{Duration, SystemTime};

use common::*;

const LONG: Duration = Duration::from_secs(20);

#[test]
fn etcd_hand_over_on_sigterm_and_failover_on_sigkill() {
    let w = World::etcd("/cli/etcd");
    let etcd = w.connect();
    let mut a = w.supervisor("a", &etcd, &[], &["run"]);
    let first = w.wait_line("a's child", LONG, |l| l.kind == "start" && l.id == "a");
    let mut b = w.supervisor("b", &etcd, &[], &["run"]);
    let start = std::time::Instant::now();
    loop {
        let (code, s) = w.status_json(&etcd);
        if s["participants"].as_array().map_or(0, |p| p.len()) == 2 {
            assert_eq!(code, Some(0));
            assert_eq!(s["leader"]["id"], "a");
            break;
        }
        assert!(start.elapsed() < LONG, "b never queued: {s}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let sent = SystemTime::now();
    a.signal("TERM");
    let second = w.wait_line("b's child", LONG, |l| l.kind == "start" && l.id == "b");
    assert_eq!(a.wait(LONG).code(), Some(7));
    eprintln!(
        "etcd: SIGTERM -> successor's child started: {:.1} ms",
        ms_between(sent, second.at())
    );
    assert!(second.token > first.token);

    let _c = w.supervisor("c", &etcd, &[], &["run"]);
    std::thread::sleep(Duration::from_millis(500));
    let killed = SystemTime::now();
    b.signal("KILL");
    b.wait(LONG);
    let gone = w.wait_lock_free(Duration::from_secs(1));
    let third = w.wait_line("c's child", LONG, |l| l.kind == "start" && l.id == "c");
    eprintln!(
        "etcd: SIGKILL -> group gone after {:.1} ms, successor's child started after {:.0} ms (TTL {T})",
        ms_between(killed, gone),
        ms_between(killed, third.at())
    );
    assert!(third.token > second.token);
    w.check();
}
