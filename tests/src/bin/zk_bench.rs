//! Failover benchmark on a real standalone ZooKeeper 3.8 server started by the harness: graceful
//! failover latency by number of candidates, crash failover against the session timeout, the
//! server's requests and watch notifications per failover, and the raw floor (a delete seen by an
//! exists-watch on another session, with the bare zookeeper-client).
//!
//! `cargo run --release -p election-tests --bin zk_bench -- [--quick] [--rounds N]
//! [--sizes 2,10,50,200] [--crash-rounds N] [--out PATH] [--server-warmup N]`
//!
//! Prints a table and writes JSON (default `target/zk-bench.json`).
//!
//! `zk_bench --legs [--rounds N] [--sizes 2,10,50] [--gap-ms N]` instead breaks the graceful
//! hand-over into its legs (see `election_tests::legs`): candidates with leader work, from
//! `resign()` to the successor's work running, p50/p99 per leg, with the raw floor, a read round
//! trip and the host's steal time measured in the same run (each after `--gap-ms` of idle time,
//! 5 by default), and the slowest rounds leg by leg.
//!
//! # Counting server work
//! ZooKeeper 3.8.0's `mntr` has no per-opcode counters. What it has, and what we use:
//! - `zk_cnt_updatelatency`: one sample per write request (create, delete, and session
//!   create/close), recorded when the request completes. Pings are not writes, so this is exact.
//! - `zk_cnt_readlatency`: one sample per non-write request: reads, `exists`, `getChildren`,
//!   **and pings** (the client's own, and this backend's `exists /` every T/6). We use a long
//!   session timeout (30 s) in the measured phase, measure the background rate while idle, and
//!   subtract it; the correction is reported.
//! - `zk_sum_node_{deleted,children,created,changed}_watch_count`: for each node event, the
//!   number of watchers it fired (a histogram's sum): exactly the watch notifications sent.
//! - `zk_watch_count`: watches currently registered (a gauge), before and after.
//!
//! `zk_packets_received` counts pings too, and four-letter words do not go through the request
//! pipeline at all, so reading `mntr` does not disturb the counters above.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use election_core::testing::recorder::Recorder;
use election_core::{Candidate, CoordinationBackend};
use election_tests::scenario::{
    self, direct, follows_known_leader, json_stats, ms, raw_floor, summary, wait_state,
};
use election_zk::testing::ZkServer;
use election_zk::ZkBackend;
use tokio::time::{sleep, timeout, Instant};

/// Session timeout of the graceful and counting phases: long, so pings stay rare.
const QUIET_TIMEOUT: Duration = Duration::from_secs(30);
/// Session timeout of the crash phase (the tests' value).
const CRASH_TIMEOUT: Duration = Duration::from_secs(2);

struct Args {
    rounds: usize,
    sizes: Vec<usize>,
    crash_rounds: usize,
    out: String,
    legs: bool,
    /// With `--legs`: idle time before each hand-over, floor sample and round trip.
    gap: Duration,
    /// Rounds of every request kind sent to the fresh server first
    /// (`election_tests::scenario::warm_server`).
    server_warmup: usize,
}

fn parse_args() -> Args {
    let mut args = Args {
        rounds: 100,
        sizes: vec![2, 10, 50, 200],
        crash_rounds: 5,
        out: "target/zk-bench.json".into(),
        legs: false,
        gap: election_tests::legs::GAP,
        server_warmup: 2000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().unwrap_or_else(|| panic!("{name} needs a value"));
        match a.as_str() {
            "--quick" => {
                args.rounds = 10;
                args.sizes = vec![2, 10, 50];
                args.crash_rounds = 2;
            }
            "--rounds" => args.rounds = value("--rounds").parse().expect("--rounds N"),
            "--crash-rounds" => {
                args.crash_rounds = value("--crash-rounds").parse().expect("--crash-rounds N")
            }
            "--sizes" => {
                args.sizes = value("--sizes")
                    .split(',')
                    .map(|s| s.parse().expect("--sizes 2,10,50"))
                    .collect()
            }
            "--out" => args.out = value("--out"),
            "--legs" => args.legs = true,
            "--gap-ms" => {
                args.gap = Duration::from_millis(value("--gap-ms").parse().expect("--gap-ms N"))
            }
            "--server-warmup" => {
                args.server_warmup = value("--server-warmup").parse().expect("--server-warmup N")
            }
            "-h" | "--help" => {
                println!("zk_bench [--quick] [--rounds N] [--sizes 2,10,50,200] [--crash-rounds N] [--out PATH] [--legs [--gap-ms N]] [--server-warmup N]");
                std::process::exit(0);
            }
            other => panic!("unknown argument {other:?} (try --help)"),
        }
    }
    assert!(args.rounds > 0 && args.sizes.iter().all(|&n| n >= 2));
    args
}

fn shell(cmd: &str, args: &[&str]) -> String {
    std::process::Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| "?".into())
}

fn counter(m: &BTreeMap<String, String>, key: &str) -> f64 {
    m.get(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("mntr has no numeric {key}"))
}

const WATCH_SUMS: [&str; 4] = [
    "zk_sum_node_deleted_watch_count",
    "zk_sum_node_children_watch_count",
    "zk_sum_node_created_watch_count",
    "zk_sum_node_changed_watch_count",
];

/// The counters we read, as one snapshot.
#[derive(Clone, Copy)]
struct Counters {
    at: Instant,
    writes: f64,
    reads_and_pings: f64,
    notifications: f64,
    watches: f64,
}

async fn counters(zk: &Arc<ZkServer>) -> Counters {
    let zk = zk.clone();
    let m = tokio::task::spawn_blocking(move || zk.mntr())
        .await
        .unwrap();
    Counters {
        at: Instant::now(),
        writes: counter(&m, "zk_cnt_updatelatency"),
        reads_and_pings: counter(&m, "zk_cnt_readlatency"),
        notifications: WATCH_SUMS.iter().map(|k| counter(&m, k)).sum(),
        watches: counter(&m, "zk_watch_count"),
    }
}

struct Graceful {
    candidates: usize,
    samples: Vec<Duration>,
    /// Per failover, how many candidates other than the resigner (and the previous round's
    /// resigner, still finishing its rejoin) changed state: 1 (the successor) when there is no
    /// herd.
    woken: Vec<usize>,
    writes_per_failover: f64,
    reads_per_failover: f64,
    ping_correction_per_failover: f64,
    notifications_per_failover: f64,
    watches_before: f64,
    watches_after: f64,
}

async fn placed(c: &Candidate) {
    wait_state(c, "placed", Duration::from_secs(30), scenario::placed).await;
}

async fn graceful(zk: &Arc<ZkServer>, n: usize, rounds: usize) -> Graceful {
    let backend = direct(&zk.connect_string());
    let path = format!("/bench/graceful-{n}");
    let mut cs = Vec::with_capacity(n);
    for i in 0..n {
        let c = Candidate::builder(path.as_str(), format!("c{i:03}"))
            .session_timeout(QUIET_TIMEOUT)
            .join(backend.clone())
            .await
            .expect("join");
        placed(&c).await;
        cs.push(c);
    }
    tokio::time::timeout(Duration::from_secs(10), cs[0].wait_for_leadership())
        .await
        .unwrap_or_else(|e| Err(e.into()))
        .expect("first leads");
    let mut rec = Recorder::new();
    for c in &cs {
        rec.watch(c);
    }
    // Background (pings) while idle, to correct the read count.
    let idle0 = counters(zk).await;
    sleep(Duration::from_secs(2)).await;
    let idle1 = counters(zk).await;
    let ping_rate =
        (idle1.reads_and_pings - idle0.reads_and_pings) / (idle1.at - idle0.at).as_secs_f64();

    let mut order: Vec<usize> = (0..n).collect();
    let mut samples = Vec::with_capacity(rounds);
    let mut woken = Vec::with_capacity(rounds);
    let mut prev_leaver: Option<usize> = None;
    let before = counters(zk).await;
    for round in 0..rounds {
        rec.clear();
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
        let prev_leaver_now = Some(leader);
        // The resigner is back at the tail, and knows the leader, before the next round: its
        // own transitions must not be counted in the next round.
        wait_state(
            &cs[leader],
            "a follower knowing the leader",
            Duration::from_secs(10),
            follows_known_leader,
        )
        .await;
        let moved: Vec<(String, String)> = rec
            .events()
            .into_iter()
            .filter_map(|(id, e)| match e {
                // The resigner of the previous round may still finish its own rejoin (it reads
                // the leader's record once the head has claimed): its own business, not a wake.
                election_core::Event::Transition(t)
                    if id != cs[leader].id()
                        && prev_leaver
                            .is_none_or(|p: usize| p == successor || id != cs[p].id()) =>
                {
                    Some((id, format!("{:?}->{:?} {:?}", t.from, t.to, t.reason)))
                }
                _ => None,
            })
            .collect();
        let others: std::collections::BTreeSet<_> = moved.iter().map(|(id, _)| id).collect();
        if others.len() > 1 && std::env::var_os("ZK_BENCH_DEBUG").is_some() {
            eprintln!("round {round}: leaver {}: {moved:?}", cs[leader].id());
        }
        woken.push(others.len());
        prev_leaver = prev_leaver_now;
    }
    let after = counters(zk).await;
    let f = rounds as f64;
    let correction = ping_rate * (after.at - before.at).as_secs_f64();
    for c in &cs {
        c.stop().await;
    }
    Graceful {
        candidates: n,
        samples,
        woken,
        writes_per_failover: (after.writes - before.writes) / f,
        reads_per_failover: (after.reads_and_pings - before.reads_and_pings - correction) / f,
        ping_correction_per_failover: correction / f,
        notifications_per_failover: (after.notifications - before.notifications) / f,
        watches_before: before.watches,
        watches_after: after.watches,
    }
}

/// The leader is cut off for good through its proxy, then aborted (a crash: no close); the
/// successor leads once the server expires the session.
async fn crash(zk: &Arc<ZkServer>, rounds: usize) -> Vec<Duration> {
    let successor_backend = direct(&zk.connect_string());
    let mut out = Vec::new();
    for round in 0..rounds {
        let path = format!("/bench/crash-{round}");
        let proxy = zk.proxy();
        let proxied: Arc<dyn CoordinationBackend> = Arc::new(
            ZkBackend::builder(proxy.addr().to_string())
                .server_tick_time(election_zk::testing::TICK_TIME)
                .build()
                .unwrap(),
        );
        let a = Candidate::builder(path.as_str(), "a")
            .session_timeout(CRASH_TIMEOUT)
            .join(proxied)
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(10), a.wait_for_leadership())
            .await
            .unwrap_or_else(|e| Err(e.into()))
            .unwrap();
        let b = Candidate::builder(path.as_str(), "b")
            .session_timeout(CRASH_TIMEOUT)
            .join(successor_backend.clone())
            .await
            .unwrap();
        wait_state(
            &b,
            "a follower knowing the leader",
            Duration::from_secs(10),
            follows_known_leader,
        )
        .await;
        let started = Instant::now();
        proxy.cut();
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

/// `--legs`: the graceful hand-over leg by leg (see `election_tests::legs`).
async fn legs(zk: &Arc<ZkServer>, args: &Args, machine: &str) {
    use election_tests::legs;
    let marks = legs::Marks::install();
    let cpu0 = election_tests::host::CpuTimes::now();
    let mut results = Vec::new();
    for &n in &args.sizes {
        eprintln!("hand-over legs, {n} candidates, {} rounds ...", args.rounds);
        let connect = zk.connect_string();
        let backend = direct(&connect);
        results.push(
            legs::hand_overs(
                &marks,
                &connect,
                backend,
                n,
                args.rounds,
                QUIET_TIMEOUT,
                args.gap,
            )
            .await,
        );
    }
    let steal = election_tests::host::Cpu::between(cpu0, election_tests::host::CpuTimes::now())
        .map_or_else(|| "?".to_owned(), |c| format!("{:.1}%", c.steal));
    let mut t = String::new();
    let _ = writeln!(t, "election zk_bench --legs: {machine}");
    let _ = writeln!(
        t,
        "\nGraceful hand-over leg by leg: resign() -> the successor's work runs ({} rounds each, leader work awaiting cancellation; each round also takes one raw floor and one read round trip sample; {:?} idle before each; host steal time during the run {steal})",
        args.rounds,
        args.gap
    );
    t.push_str(&legs::table(&results));
    let _ = writeln!(
        t,
        "\nThe {} slowest rounds at each size, and the legs that took longest over their p50:",
        legs::SLOWEST
    );
    t.push_str(&legs::slowest(&results));
    print!("{t}");
}

fn row(label: &str, s: &[Duration]) -> String {
    let [min, p50, p99, max] = summary(s);
    format!(
        "{label:<28} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
        ms(min),
        ms(p50),
        ms(p99),
        ms(max)
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = parse_args();
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let date = shell("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]);
    let kernel = shell("uname", &["-sr"]);
    let zk = Arc::new(tokio::task::block_in_place(ZkServer::start_for_benchmark));
    let version = zk
        .mntr()
        .get("zk_version")
        .cloned()
        .unwrap_or_default()
        .split('-')
        .next()
        .unwrap_or("?")
        .to_owned();
    let machine = format!(
        "nproc {nproc}, {kernel}, {date}; ZooKeeper {version} standalone (tickTime 200 ms, forceSync=no)"
    );
    eprintln!("zk_bench: {machine}");
    let warmed =
        election_tests::scenario::warm_server(&zk.connect_string(), args.server_warmup).await;
    let machine = format!(
        "{machine}; server warmed by {} rounds of every request kind ({:.1} s)",
        args.server_warmup,
        warmed.as_secs_f64()
    );
    if args.legs {
        legs(&zk, &args, &machine).await;
        return;
    }

    let mut graceful_results = Vec::new();
    for &n in &args.sizes {
        eprintln!(
            "graceful failover, {n} candidates, {} rounds ...",
            args.rounds
        );
        graceful_results.push(graceful(&zk, n, args.rounds).await);
    }
    eprintln!("crash failover, {} rounds ...", args.crash_rounds);
    let crashes = if args.crash_rounds > 0 {
        crash(&zk, args.crash_rounds).await
    } else {
        Vec::new()
    };
    eprintln!("raw floor, {} rounds ...", args.rounds);
    let raw_floor = raw_floor(&zk.connect_string(), args.rounds).await;

    let mut t = String::new();
    let _ = writeln!(t, "election zk_bench: {machine}");
    let _ = writeln!(
        t,
        "\nGraceful failover: resign() -> successor's state() shows Leader ({} rounds each, session timeout {QUIET_TIMEOUT:?})",
        args.rounds
    );
    let _ = writeln!(
        t,
        "{:<28} {:>8} {:>8} {:>8} {:>8}   (ms)",
        "", "min", "p50", "p99", "max"
    );
    for g in &graceful_results {
        let _ = writeln!(
            t,
            "{}",
            row(&format!("{} candidates", g.candidates), &g.samples)
        );
    }
    let _ = writeln!(t, "{}", row("raw floor (delete -> watch)", &raw_floor));
    if !crashes.is_empty() {
        let _ = writeln!(
            t,
            "\nCrash failover: leader cut off and aborted -> successor leads (session timeout {CRASH_TIMEOUT:?}, {} rounds)",
            crashes.len()
        );
        let [min, p50, _, max] = summary(&crashes);
        let _ = writeln!(
            t,
            "min {:.0} ms ({:.2} x T), p50 {:.0} ms ({:.2} x T), max {:.0} ms ({:.2} x T)",
            ms(min),
            min.as_secs_f64() / CRASH_TIMEOUT.as_secs_f64(),
            ms(p50),
            p50.as_secs_f64() / CRASH_TIMEOUT.as_secs_f64(),
            ms(max),
            max.as_secs_f64() / CRASH_TIMEOUT.as_secs_f64()
        );
    }
    let _ = writeln!(
        t,
        "\nCost per graceful failover (a resign: the resigner also rejoins at the tail)"
    );
    let _ = writeln!(
        t,
        "{:<14} {:>8} {:>16} {:>12} {:>14} {:>18} {:>16}",
        "candidates",
        "writes",
        "reads (-pings)",
        "ping corr.",
        "watch notif.",
        "woken (mean/max)",
        "zk_watch_count"
    );
    for g in &graceful_results {
        let mean = g.woken.iter().sum::<usize>() as f64 / g.woken.len() as f64;
        let max = g.woken.iter().max().copied().unwrap_or(0);
        let _ = writeln!(
            t,
            "{:<14} {:>8.2} {:>16.2} {:>12.2} {:>14.2} {:>12.2}/{:<5} {:>7}->{:<7}",
            g.candidates,
            g.writes_per_failover,
            g.reads_per_failover,
            g.ping_correction_per_failover,
            g.notifications_per_failover,
            mean,
            max,
            g.watches_before,
            g.watches_after
        );
    }
    print!("{t}");

    let mut j = String::from("{\n");
    let _ = writeln!(
        j,
        "  \"machine\": {{\"nproc\": {nproc}, \"kernel\": \"{kernel}\", \"date\": \"{date}\", \"zookeeper\": \"{version}\"}},"
    );
    let _ = writeln!(j, "  \"rounds\": {},", args.rounds);
    let _ = writeln!(j, "  \"graceful\": [");
    for (i, g) in graceful_results.iter().enumerate() {
        let _ = writeln!(
            j,
            "    {{\"candidates\": {}, \"latency\": {}, \"writes_per_failover\": {:.3}, \"reads_per_failover\": {:.3}, \"ping_correction_per_failover\": {:.3}, \"watch_notifications_per_failover\": {:.3}, \"woken_others_max\": {}, \"woken_others_mean\": {:.3}, \"zk_watch_count_before\": {}, \"zk_watch_count_after\": {}}}{}",
            g.candidates,
            json_stats(&g.samples),
            g.writes_per_failover,
            g.reads_per_failover,
            g.ping_correction_per_failover,
            g.notifications_per_failover,
            g.woken.iter().max().copied().unwrap_or(0),
            g.woken.iter().sum::<usize>() as f64 / g.woken.len() as f64,
            g.watches_before,
            g.watches_after,
            if i + 1 < graceful_results.len() { "," } else { "" }
        );
    }
    let _ = writeln!(j, "  ],");
    if crashes.is_empty() {
        let _ = writeln!(j, "  \"crash\": null,");
    } else {
        let ratios: Vec<String> = crashes
            .iter()
            .map(|d| format!("{:.3}", d.as_secs_f64() / CRASH_TIMEOUT.as_secs_f64()))
            .collect();
        let _ = writeln!(
            j,
            "  \"crash\": {{\"session_timeout_ms\": {}, \"latency\": {}, \"ratios_to_timeout\": [{}]}},",
            CRASH_TIMEOUT.as_millis(),
            json_stats(&crashes),
            ratios.join(", ")
        );
    }
    let _ = writeln!(j, "  \"raw_floor\": {}", json_stats(&raw_floor));
    j.push_str("}\n");
    if let Some(dir) = std::path::Path::new(&args.out).parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir).expect("create the output dir");
        }
    }
    std::fs::write(&args.out, j).unwrap_or_else(|e| panic!("write {}: {e}", args.out));
    eprintln!("wrote {}", args.out);
}
