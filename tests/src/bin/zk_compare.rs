//! Side-by-side graceful hand-over on one real ZooKeeper 3.8 server: `election`, kazoo's
//! `Election` (Debian's `python3-kazoo`) and Curator's `LeaderLatch` (Debian's
//! `libcurator-*-java`), interleaved finely, with the host's steal time, so that the ratios
//! survive a noisy machine.
//!
//! `cargo run --release -p election-tests --bin zk_compare -- [--quick] [--rounds N] [--warmup N] [--server-warmup N]
//! [--block N] [--sizes 2,10,50] [--gap-ms N] [--out PATH]` (`scripts/bench-zk.sh` installs the peers and
//! runs it).
//!
//! # What is measured
//! The same interval for all three: from "the leader starts to let go" to "the next leader's
//! work starts", read with a monotonic clock in the process where both happen (all C candidates
//! of an implementation live in one process, each with a ZooKeeper session of its own, so no
//! clock crosses processes):
//! - `election` (this process): `Instant::now()` just before the leader's
//!   [`Candidate::resign`] (which cancels its `on_leader` work, waits for it, gives up its entry
//!   and rejoins at the tail), until the successor's `on_leader` work starts running;
//! - kazoo (`tests/peers/kazoo_bench.py`): `time.monotonic_ns()` just before the leader function
//!   is told to return (`Election.run` then releases its lock; the contender's loop runs again,
//!   so it rejoins at the tail), until the next leader function starts;
//! - Curator (`tests/peers/CuratorBench.java`): `System.nanoTime()` just before
//!   `LeaderLatch.close()` (then a new latch on the same session rejoins at the tail), until the
//!   next `LeaderLatchListener.isLeader()` starts.
//!
//! Each round then waits until the old leader is back at the tail (our resigner a follower that
//! knows the leader; kazoo's and Curator's old leader with a node of its own again), and the
//! harness sleeps the same idle gap (`--gap-ms`) before the next round of any implementation.
//! `--warmup` unmeasured rounds of each come first (the JVM compiles its hot paths), and before
//! anything, `--server-warmup` rounds (2000 by default) of every kind of request any of the three
//! sends, from bare sessions (`election_tests::scenario::warm_server`): a server in service has
//! long been warm, and a cold one answers the request kinds it has seen least (a `multi`, a
//! `multiRead`) markedly slower for the first few hundred.
//!
//! # Interleaving
//! For each number of candidates, the three implementations are set up side by side on their own
//! paths (same server, same session timeout), then run in blocks of `--block` rounds in turn:
//! election, kazoo, Curator, election, kazoo, Curator, ... until each has `--rounds` rounds. Each
//! block of one implementation is compared with the neighbouring blocks of the others (same
//! cycle): the p50 ratios per cycle and their median are printed besides the pooled percentiles,
//! with the host's steal time and busy CPU share (`/proc/stat`) over each pass and over the run.
//!
//! Interleaved in the same cycles (a block of each after the three implementations' blocks), and
//! printed per pass: the raw floor (a delete on one session seen by an exists watch on another,
//! bare zookeeper-client), one request's round trip (an `exists`) and a bare hand-over (that
//! delete, the watch firing, and the watching session's `getChildren` answered: the least any
//! implementation's hand-over can take), each sent after the same idle gap as a hand-over (the
//! floor and round trip measured right behind other requests, with nothing asleep, came out at
//! about half), our p50 against the goal of floor + one round trip + 0.2 ms, and the
//! bare hand-over's p50 against each implementation's.
//!
//! Writes JSON (default `target/zk-compare.json`).

use std::fmt::Write as _;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use election_core::{Candidate, CoordinationBackend, ElectionState};
use election_tests::host::{Cpu, CpuTimes};
use election_tests::peers::{self, Probe};
use election_tests::scenario::{
    direct, follows_known_leader, json_stats, ms, summary, wait_state, warm_server, RawFloor,
};
use election_zk::testing::ZkServer;
use tokio::sync::mpsc;
use tokio::time::{sleep, timeout, Instant};

/// Session timeout of every candidate of every implementation: long, so pings stay rare.
const SESSION_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest any one step may take before the benchmark fails.
const LIMIT: Duration = Duration::from_secs(30);

const IMPLS: [&str; 3] = ["election", "kazoo", "Curator"];

struct Args {
    rounds: usize,
    warmup: usize,
    /// Rounds of every request kind sent to the fresh server before anything else
    /// ([`warm_server`]).
    server_warmup: usize,
    block: usize,
    sizes: Vec<usize>,
    gap: Duration,
    out: String,
    /// Our candidates on a current-thread runtime (`--runtime current`) instead of two worker
    /// threads (the default, `--runtime multi`).
    current_thread: bool,
}

fn parse_args() -> Args {
    let mut args = Args {
        rounds: 200,
        warmup: 10,
        server_warmup: 2000,
        block: 5,
        sizes: vec![2, 10, 50],
        gap: Duration::from_millis(20),
        out: "target/zk-compare.json".into(),
        current_thread: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().unwrap_or_else(|| panic!("{name} needs a value"));
        match a.as_str() {
            "--quick" => {
                args.rounds = 30;
                args.warmup = 5;
            }
            "--warmup" => args.warmup = value("--warmup").parse().expect("--warmup N"),
            "--server-warmup" => {
                args.server_warmup = value("--server-warmup").parse().expect("--server-warmup N")
            }
            "--rounds" => args.rounds = value("--rounds").parse().expect("--rounds N"),
            "--block" => args.block = value("--block").parse().expect("--block N"),
            "--gap-ms" => {
                args.gap = Duration::from_millis(value("--gap-ms").parse().expect("--gap-ms N"))
            }
            "--sizes" => {
                args.sizes = value("--sizes")
                    .split(',')
                    .map(|s| s.parse().expect("--sizes 2,10,50"))
                    .collect()
            }
            "--out" => args.out = value("--out"),
            "--runtime" => {
                args.current_thread = match value("--runtime").as_str() {
                    "current" => true,
                    "multi" => false,
                    other => panic!("--runtime current|multi, not {other:?}"),
                }
            }
            "-h" | "--help" => {
                println!(
                    "zk_compare [--quick] [--rounds N] [--warmup N] [--server-warmup N] [--block N] [--sizes 2,10,50] [--gap-ms N] [--out PATH] [--runtime multi|current]"
                );
                std::process::exit(0);
            }
            other => panic!("unknown argument {other:?} (try --help)"),
        }
    }
    assert!(args.rounds > 0, "--rounds must be at least 1");
    assert!(args.block > 0, "--block must be at least 1");
    assert!(
        args.sizes.iter().all(|&n| n >= 2),
        "--sizes: a hand-over needs at least 2 candidates"
    );
    args
}

/// Nearest-rank median of ratios.
fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len().div_ceil(2) - 1]
}

fn p50(s: &[Duration]) -> Duration {
    summary(s)[1]
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64().max(1e-9)
}

/// Our C candidates on one path, each with a session of its own, in this process.
struct Ours {
    cs: Vec<Candidate>,
    order: Vec<usize>,
    /// (candidate index, when its `on_leader` work started)
    led: mpsc::UnboundedReceiver<(usize, Instant)>,
}

impl Ours {
    async fn start(backend: &Arc<dyn CoordinationBackend>, path: &str, n: usize) -> Self {
        let (tx, mut led) = mpsc::unbounded_channel();
        let mut cs = Vec::with_capacity(n);
        for i in 0..n {
            let tx = tx.clone();
            let c = Candidate::builder(path, format!("c{i:03}"))
                .session_timeout(SESSION_TIMEOUT)
                .on_leader(move |term| {
                    let tx = tx.clone();
                    async move {
                        // The leader's work starts.
                        let _ = tx.send((i, Instant::now()));
                        term.cancelled().await
                    }
                })
                .join(backend.clone())
                .await
                .expect("join");
            let mut st = c.state();
            timeout(
                LIMIT,
                st.wait_for(|s| {
                    matches!(
                        s,
                        ElectionState::Follower { .. } | ElectionState::Leader { .. }
                    )
                }),
            )
            .await
            .unwrap_or_else(|_| panic!("{} not placed: {:?}", c.id(), c.current()))
            .expect("candidate alive");
            drop(st);
            cs.push(c);
        }
        let (first, _) = timeout(LIMIT, led.recv())
            .await
            .expect("nobody leads")
            .expect("work channel open");
        assert_eq!(first, 0, "c{first:03} leads, c000 joined first");
        Ours {
            cs,
            order: (0..n).collect(),
            led,
        }
    }

    async fn round(&mut self) -> Duration {
        let (leader, successor) = (self.order[0], self.order[1]);
        // The leader starts to let go.
        let started = Instant::now();
        self.cs[leader].resign().await.expect("resign");
        let (next, led_at) = timeout(LIMIT, self.led.recv())
            .await
            .unwrap_or_else(|_| panic!("c{successor:03} did not lead after c{leader:03} resigned"))
            .expect("work channel open");
        assert_eq!(
            next, successor,
            "c{next:03} leads, c{successor:03} was next"
        );
        // Settled: the resigner is back at the tail and knows the leader.
        wait_state(
            &self.cs[leader],
            "a follower knowing the leader",
            LIMIT,
            follows_known_leader,
        )
        .await;
        self.order.rotate_left(1);
        led_at - started
    }

    async fn stop(self) {
        for c in &self.cs {
            c.stop().await;
        }
    }
}

/// One pass: the three implementations with `n` candidates each, interleaved in blocks.
struct Pass {
    candidates: usize,
    /// Per implementation (in [`IMPLS`] order), per cycle, that block's samples.
    blocks: [Vec<Vec<Duration>>; 3],
    /// The raw floor, a round trip and a bare hand-over, `block` of each per cycle.
    floor: Vec<Duration>,
    rtt: Vec<Duration>,
    bare: Vec<Duration>,
    cpu: Option<Cpu>,
    seconds: f64,
}

impl Pass {
    fn pooled(&self, i: usize) -> Vec<Duration> {
        self.blocks[i].iter().flatten().copied().collect()
    }

    /// The goal for our p50: floor + one round trip + 0.2 ms, from this pass's p50s.
    fn goal(&self) -> Duration {
        p50(&self.floor) + p50(&self.rtt) + Duration::from_micros(200)
    }

    /// Per cycle, our block's p50 over implementation `i`'s block p50.
    fn block_ratios(&self, i: usize) -> Vec<f64> {
        self.blocks[0]
            .iter()
            .zip(&self.blocks[i])
            .map(|(ours, theirs)| ratio(p50(ours), p50(theirs)))
            .collect()
    }
}

async fn pass(
    zk: &ZkServer,
    classes: &std::path::Path,
    n: usize,
    args: &Args,
    backend: &Arc<dyn CoordinationBackend>,
    raw: &RawFloor,
) -> Pass {
    let connect = zk.connect_string();
    let mut ours = Ours::start(backend, &format!("/bench/cmp-election-{n}"), n).await;
    let (mut kazoo, mut curator) = blocking(|| {
        (
            Probe::kazoo(
                &connect,
                &format!("/bench/cmp-kazoo-{n}"),
                n,
                SESSION_TIMEOUT,
            ),
            Probe::curator(
                classes,
                &connect,
                &format!("/bench/cmp-curator-{n}"),
                n,
                SESSION_TIMEOUT,
            ),
        )
    });
    // Unmeasured rounds first, the same number for each: the JVM compiles its hot paths, and
    // every implementation has handed over before its first measured round.
    for _ in 0..args.warmup {
        ours.round().await;
        sleep(args.gap).await;
        blocking(|| kazoo.round());
        sleep(args.gap).await;
        blocking(|| curator.round());
        sleep(args.gap).await;
    }
    let cpu0 = CpuTimes::now();
    let t0 = Instant::now();
    let mut blocks: [Vec<Vec<Duration>>; 3] = Default::default();
    let (mut floor, mut rtt, mut bare) = (Vec::new(), Vec::new(), Vec::new());
    let mut done = 0;
    while done < args.rounds {
        let len = args.block.min(args.rounds - done);
        for (i, blocks) in blocks.iter_mut().enumerate() {
            let mut samples = Vec::with_capacity(len);
            for _ in 0..len {
                let d = match i {
                    0 => ours.round().await,
                    1 => blocking(|| kazoo.round()),
                    _ => blocking(|| curator.round()),
                };
                samples.push(d);
                sleep(args.gap).await;
            }
            blocks.push(samples);
        }
        // After the same idle gap as every hand-over, each.
        for _ in 0..len {
            floor.push(raw.round(args.gap).await);
            rtt.push(raw.round_trip(args.gap).await);
            bare.push(raw.hand_over(args.gap).await);
        }
        sleep(args.gap).await;
        done += len;
    }
    let seconds = t0.elapsed().as_secs_f64();
    let cpu = Cpu::between(cpu0, CpuTimes::now());
    ours.stop().await;
    blocking(|| {
        kazoo.quit();
        curator.quit();
    });
    Pass {
        candidates: n,
        blocks,
        floor,
        rtt,
        bare,
        cpu,
        seconds,
    }
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

fn shell(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| "?".into())
}

/// Runs a peer's blocking call: beside the workers of a multi-threaded runtime, or on the one
/// thread of a current-thread runtime (our candidates then wait, as between any of our blocks).
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::current().runtime_flavor() {
        tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

fn main() {
    let args = parse_args();
    let runtime = if args.current_thread {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
    }
    .expect("runtime");
    runtime.block_on(run(args));
}

async fn run(args: Args) {
    // The peers first: a missing package or a probe that does not compile fails at once.
    let classes = std::env::temp_dir().join(format!("election-zk-compare-{}", std::process::id()));
    peers::check_kazoo("kazoo_bench.py").unwrap_or_else(|e| panic!("{e}"));
    peers::compile_curator("CuratorBench.java", &classes).unwrap_or_else(|e| panic!("{e}"));

    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let date = shell("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]);
    let kernel = shell("uname", &["-sr"]);
    let kazoo_version = shell(
        peers::PYTHON,
        &[
            "-c",
            "import kazoo.version; print(kazoo.version.__version__)",
        ],
    );
    // Debian links curator-framework-<version>.jar to curator-framework.jar.
    let curator_version = std::fs::read_dir("/usr/share/java")
        .into_iter()
        .flatten()
        .flatten()
        .find_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let version = name
                .strip_prefix("curator-framework-")?
                .strip_suffix(".jar")?;
            Some(version.to_owned())
        })
        .unwrap_or_else(|| "?".into());
    let zk = Arc::new(blocking(ZkServer::start_for_benchmark));
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
        "nproc {nproc}, {kernel}, {date}; ZooKeeper {version} standalone (tickTime 200 ms, forceSync=no); kazoo {kazoo_version}, Curator {curator_version}"
    );
    eprintln!("zk_compare: {machine}");
    let connect = zk.connect_string();
    let backend = direct(&connect);
    let warmed = warm_server(&connect, args.server_warmup).await;
    let machine = format!(
        "{machine}; server warmed by {} rounds of every request kind ({:.1} s); election on a {} runtime",
        args.server_warmup,
        warmed.as_secs_f64(),
        if args.current_thread {
            "current-thread"
        } else {
            "two-worker"
        }
    );
    eprintln!("{machine}");

    let raw = RawFloor::new(&connect).await;
    let cpu_start = CpuTimes::now();
    let mut passes = Vec::new();
    for &n in &args.sizes {
        eprintln!(
            "{n} candidates: election, kazoo, Curator in blocks of {}, {} rounds each ...",
            args.block, args.rounds
        );
        passes.push(pass(&zk, &classes, n, &args, &backend, &raw).await);
    }
    let cpu_run = Cpu::between(cpu_start, CpuTimes::now());
    let _ = std::fs::remove_dir_all(&classes);

    let floor: Vec<Duration> = passes.iter().flat_map(|p| p.floor.clone()).collect();
    let rtt: Vec<Duration> = passes.iter().flat_map(|p| p.rtt.clone()).collect();

    let mut t = String::new();
    let _ = writeln!(t, "election zk_compare: {machine}");
    let _ = writeln!(
        t,
        "\nGraceful hand-over, leader lets go -> next leader's work starts, measured in each implementation's process;\n\
         {} rounds each, interleaved in blocks of {} (election, kazoo, Curator, ...), idle gap {:?}, session timeout {:?}",
        args.rounds, args.block, args.gap, SESSION_TIMEOUT
    );
    let _ = writeln!(
        t,
        "{:<28} {:>8} {:>8} {:>8} {:>8}   (ms)",
        "", "min", "p50", "p99", "max"
    );
    for p in &passes {
        let _ = writeln!(
            t,
            "{} candidates ({}, {:.0} s):",
            p.candidates,
            Cpu::text(p.cpu),
            p.seconds
        );
        for (i, name) in IMPLS.iter().enumerate() {
            let _ = writeln!(t, "{}", row(&format!("  {name}"), &p.pooled(i)));
        }
        let ours = p.pooled(0);
        let [_, our50, our99, _] = summary(&ours);
        for (i, name) in IMPLS.iter().enumerate().skip(1) {
            let theirs = p.pooled(i);
            let [_, their50, their99, _] = summary(&theirs);
            let blocks = p.block_ratios(i);
            let _ = writeln!(
                t,
                "  election/{name:<8} p50 {:.2}x pooled, {:.2}x median of {} block ratios (range {:.2}-{:.2}); p99 {:.2}x",
                ratio(our50, their50),
                median(&blocks),
                blocks.len(),
                blocks.iter().copied().fold(f64::INFINITY, f64::min),
                blocks.iter().copied().fold(0.0, f64::max),
                ratio(our99, their99),
            );
        }
        let _ = writeln!(t, "{}", row("  raw floor (delete->watch)", &p.floor));
        let _ = writeln!(t, "{}", row("  round trip (exists)", &p.rtt));
        let _ = writeln!(t, "{}", row("  bare hand-over", &p.bare));
        let [_, bare50, _, _] = summary(&p.bare);
        let [_, k50, _, _] = summary(&p.pooled(1));
        let [_, c50, _, _] = summary(&p.pooled(2));
        let _ = writeln!(
            t,
            "  bare hand-over (delete, watch fires, getChildren answered: the least any can take), p50 {:.2}x kazoo's p50, {:.2}x Curator's; election's {:.2}x the bare one's (+{:.2} ms)",
            ratio(bare50, k50),
            ratio(bare50, c50),
            ratio(our50, bare50),
            ms(our50) - ms(bare50)
        );
        let _ = writeln!(
            t,
            "  election p50 {:.2} ms against the goal floor + round trip + 0.2 ms = {:.2} ms: {:+.2} ms",
            ms(our50),
            ms(p.goal()),
            ms(our50) - ms(p.goal())
        );
    }
    let _ = writeln!(t, "\n{}", row("raw floor, all passes", &floor));
    let _ = writeln!(t, "{}", row("round trip, all passes", &rtt));
    let _ = writeln!(
        t,
        "Goals (issue 12): p50 <= 0.6x kazoo and <= 0.5x Curator, p99 <= 0.6x kazoo; p50 <= floor + round trip + 0.2 ms"
    );
    let _ = writeln!(
        t,
        "Host CPU over the run (/proc/stat, share of all CPU time): {}",
        Cpu::text(cpu_run)
    );
    print!("{t}");

    let mut j = String::from("{\n");
    let _ = writeln!(
        j,
        "  \"machine\": {{\"nproc\": {nproc}, \"kernel\": \"{kernel}\", \"date\": \"{date}\", \"zookeeper\": \"{version}\", \"kazoo\": \"{kazoo_version}\", \"curator\": \"{curator_version}\"}},"
    );
    let _ = writeln!(
        j,
        "  \"rounds\": {}, \"block\": {}, \"gap_ms\": {}, \"session_timeout_ms\": {},",
        args.rounds,
        args.block,
        args.gap.as_millis(),
        SESSION_TIMEOUT.as_millis()
    );
    let _ = writeln!(j, "  {},", Cpu::json(cpu_run));
    let _ = writeln!(j, "  \"raw_floor\": {},", json_stats(&floor));
    let _ = writeln!(j, "  \"round_trip\": {},", json_stats(&rtt));
    let _ = writeln!(j, "  \"passes\": [");
    for (k, p) in passes.iter().enumerate() {
        let fmt_ratios = |r: &[f64]| {
            r.iter()
                .map(|x| format!("{x:.3}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let [_, our50, our99, _] = summary(&p.pooled(0));
        let [_, k50, k99, _] = summary(&p.pooled(1));
        let [_, c50, c99, _] = summary(&p.pooled(2));
        let (rk, rc) = (p.block_ratios(1), p.block_ratios(2));
        let _ = writeln!(
            j,
            "    {{\"candidates\": {}, {}, \"seconds\": {:.1}, \"election\": {}, \"kazoo\": {}, \"curator\": {}, \
             \"p50_ratio_kazoo\": {:.3}, \"p50_ratio_curator\": {:.3}, \"p99_ratio_kazoo\": {:.3}, \"p99_ratio_curator\": {:.3}, \
             \"block_p50_ratios_kazoo\": [{}], \"block_p50_ratios_curator\": [{}], \
             \"median_block_p50_ratio_kazoo\": {:.3}, \"median_block_p50_ratio_curator\": {:.3}, \
             \"raw_floor\": {}, \"round_trip\": {}, \"bare_hand_over\": {}, \"goal_p50_ms\": {:.3}}}{}",
            p.candidates,
            Cpu::json(p.cpu),
            p.seconds,
            json_stats(&p.pooled(0)),
            json_stats(&p.pooled(1)),
            json_stats(&p.pooled(2)),
            ratio(our50, k50),
            ratio(our50, c50),
            ratio(our99, k99),
            ratio(our99, c99),
            fmt_ratios(&rk),
            fmt_ratios(&rc),
            median(&rk),
            median(&rc),
            json_stats(&p.floor),
            json_stats(&p.rtt),
            json_stats(&p.bare),
            ms(p.goal()),
            if k + 1 < passes.len() { "," } else { "" }
        );
    }
    j.push_str("  ]\n}\n");
    if let Some(dir) = std::path::Path::new(&args.out).parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir).expect("create the output dir");
        }
    }
    std::fs::write(&args.out, j).unwrap_or_else(|e| panic!("write {}: {e}", args.out));
    eprintln!("wrote {}", args.out);
}
