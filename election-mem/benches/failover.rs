//! Failover benchmark on the in-memory backend: simulated failovers per second, and the work
//! per failover (backend calls, woken candidates) for 10, 100 and 1000 candidates.
//!
//! `cargo bench -p election-mem --bench failover` (add `-- --quick` for fewer rounds).
//!
//! A failover here is a graceful hand-over: the leader leaves, its successor leads. The work
//! must stay flat as candidates grow: one delete by the leaver, one notification to the
//! successor, then either one listing (steady rotation) or one read of its own entry (a head
//! hand-over: no listing).

use std::collections::BTreeSet;
use std::time::Duration;

use election_core::{Candidate, SessionId};
use election_mem::MemCluster;

const PATH: &str = "/bench/leader";
const TIMEOUT: Duration = Duration::from_secs(10);

struct Row {
    candidates: usize,
    rounds: usize,
    per_second: f64,
    calls: f64,
    max_calls: u64,
    lists: u64,
    woken: f64,
    max_woken: usize,
}

async fn join(cluster: &MemCluster, i: usize) -> Candidate {
    Candidate::builder(PATH, format!("c{i}"))
        .session_timeout(TIMEOUT)
        .join(cluster.backend())
        .await
        .expect("join")
}

async fn session_of(c: &Candidate) -> SessionId {
    c.client().session().await.id()
}

async fn run(n: usize, rounds: usize) -> Row {
    let cluster = MemCluster::new();
    let mut cs = std::collections::VecDeque::new();
    for i in 0..n {
        cs.push_back(join(&cluster, i).await);
    }
    tokio::time::timeout(TIMEOUT, cs[0].wait_for_leadership())
        .await
        .unwrap_or_else(|e| Err(e.into()))
        .expect("first leads");
    tokio::time::sleep(Duration::from_millis(1)).await;
    let (mut calls, mut max_calls, mut lists, mut woken, mut max_woken) = (0, 0, 0, 0, 0);
    let mut elapsed = Duration::ZERO;
    for round in 0..rounds {
        let leaver = cs.pop_front().expect("leader");
        let leaver_session = session_of(&leaver).await;
        cluster.reset_stats();
        let started = std::time::Instant::now();
        leaver.leave().await.expect("leave");
        tokio::time::timeout(TIMEOUT, cs[0].wait_for_leadership())
            .await
            .unwrap_or_else(|e| Err(e.into()))
            .expect("successor leads");
        elapsed += started.elapsed();
        let stats = cluster.stats();
        let c = stats.calls();
        calls += c;
        max_calls = max_calls.max(c);
        lists += stats.lists;
        let w: BTreeSet<_> = stats
            .notifications
            .keys()
            .filter(|s| **s != leaver_session)
            .collect();
        woken += w.len();
        max_woken = max_woken.max(w.len());
        // Keep the field at n candidates (not measured).
        drop(leaver);
        cs.push_back(join(&cluster, n + round).await);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    for c in &cs {
        c.stop().await;
    }
    Row {
        candidates: n,
        rounds,
        per_second: rounds as f64 / elapsed.as_secs_f64(),
        calls: calls as f64 / rounds as f64,
        max_calls,
        lists,
        woken: woken as f64 / rounds as f64,
        max_woken,
    }
}

/// A head hand-over: the successor's last listing showed the leader at the head, so it leads on
/// the deletion notification and a read of its own entry, with no listing. Measured as the first
/// failover of fresh fields.
async fn head_handover(n: usize, fields: usize) -> (f64, u64, f64) {
    let (mut calls, mut lists, mut woken) = (0, 0, 0);
    for _ in 0..fields {
        let cluster = MemCluster::new();
        let mut cs = Vec::new();
        for i in 0..n {
            cs.push(join(&cluster, i).await);
        }
        tokio::time::timeout(TIMEOUT, cs[0].wait_for_leadership())
            .await
            .unwrap_or_else(|e| Err(e.into()))
            .expect("first leads");
        tokio::time::sleep(Duration::from_millis(1)).await;
        let leaver_session = session_of(&cs[0]).await;
        cluster.reset_stats();
        cs[0].leave().await.expect("leave");
        tokio::time::timeout(TIMEOUT, cs[1].wait_for_leadership())
            .await
            .unwrap_or_else(|e| Err(e.into()))
            .expect("successor leads");
        let stats = cluster.stats();
        calls += stats.calls();
        lists += stats.lists;
        woken += stats
            .notifications
            .keys()
            .filter(|s| **s != leaver_session)
            .count();
        for c in &cs {
            c.stop().await;
        }
    }
    (
        calls as f64 / fields as f64,
        lists,
        woken as f64 / fields as f64,
    )
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let rounds = if quick { 50 } else { 500 };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("runtime");
    println!("in-memory backend, graceful failover (leader leaves -> successor leads), {rounds} rounds each");
    println!(
        "machine: {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();
    println!("steady rotation (the successor's last listing predates the previous hand-over, so it lists once):");
    println!();
    println!("| candidates | failovers/s | backend calls/failover (max) | re-lists | woken candidates/failover (max) |");
    println!("|---:|---:|---:|---:|---:|");
    for n in [10, 100, 1000] {
        let row = rt.block_on(run(n, rounds));
        println!(
            "| {} | {:.0} | {:.2} ({}) | {} | {:.2} ({}) |",
            row.candidates,
            row.per_second,
            row.calls,
            row.max_calls,
            row.lists,
            row.woken,
            row.max_woken
        );
        assert_eq!(row.rounds, rounds);
    }
    let fields = if quick { 3 } else { 20 };
    println!();
    println!("head hand-over (the successor had seen the leader at the head), {fields} fresh fields each:");
    println!();
    println!("| candidates | backend calls/failover | re-lists | woken candidates/failover |");
    println!("|---:|---:|---:|---:|");
    for n in [10, 100, 1000] {
        let (calls, lists, woken) = rt.block_on(head_handover(n, fields));
        println!("| {n} | {calls:.2} | {lists} | {woken:.2} |");
    }
}
