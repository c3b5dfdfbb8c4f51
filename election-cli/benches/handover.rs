//! `cargo bench -p election-cli --bench handover`: how long `election run` takes to hand the
//! command over, with real processes on a real ZooKeeper server it starts (tickTime 200 ms,
//! session timeout 2 s).
//!
//! - SIGTERM of the leader's supervisor until the successor's child has started (the old child
//!   traps SIGTERM and exits; its supervisor withdraws; the successor claims and starts its
//!   child), over `ROUNDS` rounds: min, p50, p99, max.
//! - SIGKILL of the leader's supervisor until the successor's child starts, against the session
//!   timeout (the successor waits for the server to expire the dead session).
//!
//! Times are taken from the children's own start lines (wall clock), so they include a process
//! start (`sh` and `date`) on each side.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, SystemTime};

use common::*;

const ROUNDS: usize = 40;
const KILL_ROUNDS: usize = 3;
const LONG: Duration = Duration::from_secs(20);

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn main() {
    let w = World::new("/bench/handover");
    let zk = w.connect();
    let mut n = 0;
    let mut next_id = || {
        n += 1;
        format!("s{n}")
    };

    // SIGTERM rounds: a leader and one follower; after each hand-over a new follower joins.
    let mut leader = w.supervisor(&next_id(), &zk, &[], &["run"]);
    w.wait_line("the first child", LONG, |l| l.kind == "start");
    let mut sigterm = Vec::new();
    for _ in 0..ROUNDS {
        let follower = w.supervisor(&next_id(), &zk, &[], &["run"]);
        wait_queued(&w, &zk, 2);
        let sent = SystemTime::now();
        leader.signal("TERM");
        let next = w.wait_line("the successor's child", LONG, |l| {
            l.kind == "start" && l.id == follower.id
        });
        sigterm.push(ms_between(sent, next.at()));
        leader.wait(LONG);
        leader = follower;
    }
    sigterm.sort_by(f64::total_cmp);

    // SIGKILL rounds.
    let mut sigkill = Vec::new();
    for _ in 0..KILL_ROUNDS {
        let follower = w.supervisor(&next_id(), &zk, &[], &["run"]);
        wait_queued(&w, &zk, 2);
        let sent = SystemTime::now();
        leader.signal("KILL");
        let next = w.wait_line("the successor's child", LONG, |l| {
            l.kind == "start" && l.id == follower.id
        });
        sigkill.push(ms_between(sent, next.at()));
        leader.wait(LONG);
        leader = follower;
    }
    leader.signal("TERM");
    leader.wait(LONG);
    w.check();

    println!("election run hand-over, ZooKeeper standalone (tickTime 200 ms), session timeout {T}");
    println!(
        "SIGTERM -> successor's child started, {ROUNDS} rounds: min {:.1} ms, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        sigterm[0],
        percentile(&sigterm, 0.5),
        percentile(&sigterm, 0.99),
        sigterm[sigterm.len() - 1]
    );
    let t = T_DUR.as_secs_f64() * 1e3;
    let ratios: Vec<String> = sigkill
        .iter()
        .map(|ms| format!("{ms:.0} ms ({:.2} x T)", ms / t))
        .collect();
    println!(
        "SIGKILL -> successor's child started, {KILL_ROUNDS} rounds: {}",
        ratios.join(", ")
    );
}

/// Waits until `n` copies are in the queue.
fn wait_queued(w: &World, zk: &str, n: usize) {
    let start = std::time::Instant::now();
    loop {
        let (_, s) = w.status_json(zk);
        if s["participants"].as_array().map_or(0, |p| p.len()) >= n {
            return;
        }
        assert!(start.elapsed() < LONG, "never {n} in the queue: {s}");
        std::thread::sleep(Duration::from_millis(10));
    }
}
