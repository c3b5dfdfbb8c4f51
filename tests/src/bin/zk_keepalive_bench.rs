//! The cost of proving contact through the ZooKeeper leader, on a real 3-member 3.8 ensemble
//! started by the harness (tickTime 200 ms): what a `sync` (our keep-alive, forwarded to the
//! leader) costs against an `exists` (answered by the member alone), from a client connected to
//! a follower; and how many requests an idle election session sends per second.
//!
//! `cargo run --release -p election-tests --bin zk_keepalive_bench -- [--rounds N] [--sessions N]
//! [--idle-secs N]`

use std::time::Duration;

use election_core::CoordinationBackend;
use election_tests::scenario::{ms, raw, summary};
use election_zk::testing::{Mode, ZkEnsemble, TICK_TIME};
use election_zk::ZkBackend;
use tokio::time::{sleep, Instant};

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} needs a number"))
        })
        .unwrap_or(default)
}

fn row(label: &str, s: &[Duration]) {
    let [min, p50, p99, max] = summary(s);
    println!(
        "{label:<44} {:>8.3} {:>8.3} {:>8.3} {:>8.3}",
        ms(min),
        ms(p50),
        ms(p99),
        ms(max)
    );
}

/// Requests the member has received so far (pings and four-letter words included).
fn packets(ensemble: &ZkEnsemble, member: usize) -> f64 {
    ensemble
        .member(member)
        .mntr()
        .get("zk_packets_received")
        .and_then(|v| v.parse().ok())
        .expect("mntr has zk_packets_received")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let rounds = arg("--rounds", 300) as usize;
    let sessions = arg("--sessions", 20) as usize;
    let idle = Duration::from_secs(arg("--idle-secs", 5));
    let ensemble = tokio::task::block_in_place(|| ZkEnsemble::start(3));
    let follower = ensemble
        .modes()
        .iter()
        .position(|m| *m == Some(Mode::Follower))
        .expect("a follower");
    let connect = ensemble.member(follower).connect_string();
    println!(
        "3-member ZooKeeper 3.8 ensemble on loopback, tickTime {TICK_TIME:?}; client on a follower"
    );

    let client = raw(&connect, Duration::from_secs(10)).await;
    let (mut syncs, mut reads) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let t = Instant::now();
        client.sync("/").await.expect("sync");
        syncs.push(t.elapsed());
        let t = Instant::now();
        client.check_stat("/").await.expect("exists");
        reads.push(t.elapsed());
    }
    println!(
        "{:<44} {:>8} {:>8} {:>8} {:>8}",
        "round trip (ms)", "min", "p50", "p99", "max"
    );
    row("exists / (answered by the member)", &reads);
    row("sync / (forwarded to the ZooKeeper leader)", &syncs);
    let [_, sync_p50, ..] = summary(&syncs);
    let [_, read_p50, ..] = summary(&reads);
    println!(
        "sync / exists at p50: {:.2}x",
        sync_p50.as_secs_f64() / read_p50.as_secs_f64()
    );
    drop(client);

    for (label, tick) in [
        ("server_tick_time 200 ms", Some(TICK_TIME)),
        ("default (tickTime assumed 2 s)", None),
    ] {
        let mut builder = ZkBackend::builder(connect.as_str());
        if let Some(tick) = tick {
            builder = builder.server_tick_time(tick);
        }
        let backend = builder.build().expect("valid connect string");
        let mut open = Vec::new();
        for _ in 0..sessions {
            open.push(
                backend
                    .open_session(Duration::from_secs(10))
                    .await
                    .expect("session"),
            );
        }
        sleep(Duration::from_millis(500)).await;
        let e = &ensemble;
        let before = tokio::task::block_in_place(|| packets(e, follower));
        let t = Instant::now();
        sleep(idle).await;
        let after = tokio::task::block_in_place(|| packets(e, follower));
        // Each mntr is one packet of its own.
        let per_session = (after - before - 1.0) / sessions as f64 / t.elapsed().as_secs_f64();
        println!(
            "idle session, T 10 s, {label}: {per_session:.2} requests/s per session \
             ({sessions} sessions, {idle:?})"
        );
        for s in open {
            s.close().await;
        }
    }
}
