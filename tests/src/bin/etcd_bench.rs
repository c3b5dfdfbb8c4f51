//! Failover benchmark on a real single etcd 3.4 member started by the harness: graceful failover
//! latency by number of candidates, crash failover against the lease TTL, and the raw floor (a
//! delete seen by a watch on another client, with the bare etcd-client).
//!
//! `cargo run --release -p election-tests --bin etcd_bench -- [--rounds N] [--sizes 2,10,50]
//! [--crash-rounds N] [--out PATH]`
//!
//! Prints a table and writes JSON (default `target/etcd-bench.json`).

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use election_core::{Candidate, CoordinationBackend};
use election_etcd::testing::EtcdMember;
use election_etcd::EtcdBackend;
use election_tests::scenario::{self, json_stats, ms, summary, wait_state};
use etcd_client::{EventType, WatchOptions};
use tokio::time::{timeout, Instant};

/// Session timeout of the graceful phase: long, so keep-alives stay rare.
const QUIET_TIMEOUT: Duration = Duration::from_secs(30);
/// Session timeout of the crash phase (the tests' value, the least TTL the member grants).
const CRASH_TIMEOUT: Duration = Duration::from_secs(2);

struct Args {
    rounds: usize,
    sizes: Vec<usize>,
    crash_rounds: usize,
    out: String,
}

fn parse_args() -> Args {
    let mut args = Args {
        rounds: 100,
        sizes: vec![2, 10, 50],
        crash_rounds: 5,
        out: "target/etcd-bench.json".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().unwrap_or_else(|| panic!("{name} needs a value"));
        match a.as_str() {
            "--rounds" => args.rounds = value("--rounds").parse().expect("a number"),
            "--crash-rounds" => {
                args.crash_rounds = value("--crash-rounds").parse().expect("a number")
            }
            "--sizes" => {
                args.sizes = value("--sizes")
                    .split(',')
                    .map(|s| s.parse().expect("a number"))
                    .collect()
            }
            "--out" => args.out = value("--out"),
            other => panic!("unknown argument {other:?}"),
        }
    }
    args
}

fn backend(endpoint: &str) -> Arc<dyn CoordinationBackend> {
    Arc::new(EtcdBackend::builder([endpoint]).build().expect("endpoint"))
}

async fn settled(c: &Candidate) {
    wait_state(c, "settled", Duration::from_secs(30), scenario::settled).await;
}

/// Resign -> the successor in Leader, `rounds` times round the queue of `n`.
async fn graceful(endpoint: &str, n: usize, rounds: usize) -> Vec<Duration> {
    let backend = backend(endpoint);
    let path = format!("/bench/graceful-{n}");
    let mut cs = Vec::with_capacity(n);
    for i in 0..n {
        let c = Candidate::builder(path.as_str(), format!("c{i:03}"))
            .session_timeout(QUIET_TIMEOUT)
            .join(backend.clone())
            .await
            .expect("join");
        settled(&c).await;
        cs.push(c);
    }
    let mut order: Vec<usize> = (0..n).collect();
    let mut samples = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let (leader, successor) = (order[0], order[1]);
        let mut st = cs[successor].state();
        st.borrow_and_update();
        let seen = tokio::spawn(async move {
            st.wait_for(|s| s.is_leader()).await.expect("alive");
            Instant::now()
        });
        let started = Instant::now();
        cs[leader].resign().await.expect("resign");
        let led_at = timeout(Duration::from_secs(10), seen)
            .await
            .unwrap_or_else(|_| panic!("round {round}: {} did not lead", cs[successor].id()))
            .unwrap();
        samples.push(led_at - started);
        order.rotate_left(1);
        settled(&cs[leader]).await;
    }
    for c in &cs {
        c.stop().await;
    }
    samples
}

/// The leader is aborted (a crash: its keep-alives stop, its lease is not revoked); the
/// successor leads once etcd expires the lease.
async fn crash(endpoint: &str, rounds: usize) -> Vec<Duration> {
    let mut out = Vec::new();
    for round in 0..rounds {
        let path = format!("/bench/crash-{round}");
        let a = Candidate::builder(path.as_str(), "a")
            .session_timeout(CRASH_TIMEOUT)
            .join(backend(endpoint))
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(10), a.wait_for_leadership())
            .await
            .unwrap_or_else(|e| Err(e.into()))
            .unwrap();
        let b = Candidate::builder(path.as_str(), "b")
            .session_timeout(CRASH_TIMEOUT)
            .join(backend(endpoint))
            .await
            .unwrap();
        settled(&b).await;
        let started = Instant::now();
        a.abort();
        tokio::time::timeout(CRASH_TIMEOUT * 3, b.wait_for_leadership())
            .await
            .unwrap_or_else(|e| Err(e.into()))
            .expect("failover after a crash");
        out.push(started.elapsed());
        b.stop().await;
    }
    out
}

/// The bare client: a delete on one client until a watch on another sees it.
async fn floor(endpoint: &str, rounds: usize) -> Vec<Duration> {
    let mut writer = etcd_client::Client::connect([endpoint], None)
        .await
        .unwrap();
    let mut watcher = etcd_client::Client::connect([endpoint], None)
        .await
        .unwrap();
    let mut out = Vec::new();
    for round in 0..rounds {
        let key = format!("/bench/floor/{round}");
        let put = writer.put(key.clone(), "x", None).await.unwrap();
        let from = put.header().unwrap().revision() + 1;
        let mut stream = watcher
            .watch(
                key.clone(),
                Some(WatchOptions::new().with_start_revision(from)),
            )
            .await
            .unwrap();
        // The creation acknowledgement comes first.
        let ack = stream.message().await.unwrap().unwrap();
        assert!(ack.created());
        let started = Instant::now();
        writer.delete(key, None).await.unwrap();
        loop {
            let resp = stream.message().await.unwrap().unwrap();
            if resp
                .events()
                .iter()
                .any(|e| e.event_type() == EventType::Delete)
            {
                break;
            }
        }
        out.push(started.elapsed());
    }
    out
}

fn row(label: &str, s: &[Duration]) -> String {
    let [min, p50, p99, max] = summary(s);
    format!(
        "| {label} | {:.2} | {:.2} | {:.2} | {:.2} |",
        ms(min),
        ms(p50),
        ms(p99),
        ms(max)
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = parse_args();
    let etcd = EtcdMember::start();
    let endpoint = etcd.endpoint();
    let mut table = String::from(
        "| graceful failover (resign -> successor in Leader) | min | p50 | p99 | max (ms) |\n|---|---:|---:|---:|---:|\n",
    );
    let mut json = String::from("{\n  \"graceful\": {");
    for (i, &n) in args.sizes.iter().enumerate() {
        let s = graceful(&endpoint, n, args.rounds).await;
        let _ = writeln!(table, "{}", row(&format!("{n} candidates"), &s));
        let sep = if i == 0 { "" } else { "," };
        let _ = write!(json, "{sep}\n    \"{n}\": {}", json_stats(&s));
    }
    let f = floor(&endpoint, args.rounds).await;
    let _ = writeln!(
        table,
        "{}",
        row(
            "raw floor: bare client, delete on one client -> watch fires on another",
            &f
        )
    );
    let c = crash(&endpoint, args.crash_rounds).await;
    let crash_json = if c.is_empty() {
        "null".to_owned()
    } else {
        json_stats(&c)
    };
    let _ = write!(
        json,
        "\n  }},\n  \"floor\": {},\n  \"crash\": {},\n  \"crash_ttl_ms\": {}\n}}\n",
        json_stats(&f),
        crash_json,
        CRASH_TIMEOUT.as_millis()
    );
    println!("{table}");
    // `--crash-rounds 0` skips the crash phase.
    if !c.is_empty() {
        let [cmin, _, _, cmax] = summary(&c);
        println!(
            "crash failover (leader aborted, lease TTL {:?}): {:.0}-{:.0} ms, {:.2}-{:.2} x the TTL",
            CRASH_TIMEOUT,
            ms(cmin),
            ms(cmax),
            cmin.as_secs_f64() / CRASH_TIMEOUT.as_secs_f64(),
            cmax.as_secs_f64() / CRASH_TIMEOUT.as_secs_f64()
        );
    }
    std::fs::write(&args.out, json).unwrap_or_else(|e| panic!("write {}: {e}", args.out));
    println!("wrote {}", args.out);
}
