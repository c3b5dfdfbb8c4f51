//! Scale benchmark on real standalone ZooKeeper servers started by the harness (tickTime 200 ms,
//! and one at 2000 ms for the crash phase):
//!
//! - **elections**: N elections (default 10,000), one candidate each on distinct paths, over one
//!   [`Client`] session in one process: time until all are placed, client memory per election
//!   (RSS delta), one leader each (checked), and a hand-over in one of them (two more candidates
//!   join it on a second client) that must wake exactly one candidate of the whole process.
//! - **path**: M candidates (default 1000) on one path, a session each, beside 50 on another path
//!   in the same process: time until all are placed, client memory per candidate, and graceful
//!   failover p50/p99 of both, measured in interleaved blocks, with candidates woken and server
//!   requests per failover (from `mntr`, as `zk_bench` counts them).
//! - **crash**: the leader is cut off and aborted; the successor leads once the server expires
//!   the session. At tickTime 200 ms (T = 2 s) and 2000 ms (T = 4 s, the shortest there); each
//!   round against the goal T + one tick + 10 ms.
//!
//! Each memory-measuring phase runs in a child process of its own (this binary with `--child`),
//! so its RSS delta is not blurred by what an earlier phase freed.
//!
//! `cargo run --release -p election-tests --bin zk_scale -- [--quick] [--elections N]
//! [--candidates M] [--rounds R] [--crash-rounds K] [--phases elections,path,crash]
//! [--server-warmup N]`
//!
//! The server is warmed first (`--server-warmup`, 2000 rounds of every request kind by default,
//! as `zk_bench` and `zk_compare` do): a server in service has long had its request paths
//! compiled by the JVM, and a cold one answers the first thousands of requests slower.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use election_core::{Candidate, Client, CoordinationBackend, ElectionState, StateWatch};
use election_tests::host::{Cpu, CpuTimes};
use election_tests::scenario::{follows_known_leader, ms, settled, summary, wait_state};
use election_zk::testing::ZkServer;
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

/// Counts the bytes the process holds, for client memory per election beside the RSS delta
/// (which also holds what the allocator keeps back and the high-water mark of the burst).
#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

/// Bytes allocated and not freed since `region` began.
fn live(region: &Region<'_, std::alloc::System>) -> i64 {
    let c = region.change();
    c.bytes_allocated as i64 - c.bytes_deallocated as i64
}
use election_zk::ZkBackend;
use tokio::time::{sleep, timeout, Instant};

/// Session timeout of the elections and path phases: long, so pings stay rare.
const QUIET_TIMEOUT: Duration = Duration::from_secs(30);
/// The smaller election of the path phase, measured in the same run as the large one.
const BASE_CANDIDATES: usize = 50;
/// Rounds per block in the path phase: the two elections take turns every block.
const BLOCK: usize = 5;

struct Args {
    elections: usize,
    candidates: usize,
    rounds: usize,
    crash_rounds: usize,
    phases: Vec<String>,
    child: Option<String>,
    connect: String,
    /// The server's process id, for a child to read the JVM's CPU time.
    server_pid: Option<u32>,
    /// Rounds of every request kind sent to the server before anything is measured.
    server_warmup: usize,
}

fn parse_args() -> Args {
    let mut args = Args {
        elections: 10_000,
        candidates: 1000,
        rounds: 40,
        crash_rounds: 3,
        phases: vec!["elections".into(), "path".into(), "crash".into()],
        child: None,
        connect: String::new(),
        server_pid: None,
        server_warmup: 2000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().unwrap_or_else(|| panic!("{name} needs a value"));
        let number = |v: String, name: &str| -> usize {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} needs a number, not {v:?}"))
        };
        match a.as_str() {
            "--quick" => {
                args.elections = 1000;
                args.candidates = 200;
                args.rounds = 10;
                args.crash_rounds = 1;
            }
            "--elections" => args.elections = number(value(&a), "--elections"),
            "--candidates" => args.candidates = number(value(&a), "--candidates"),
            "--rounds" => args.rounds = number(value(&a), "--rounds"),
            "--crash-rounds" => args.crash_rounds = number(value(&a), "--crash-rounds"),
            "--phases" => args.phases = value(&a).split(',').map(str::to_owned).collect(),
            "--child" => args.child = Some(value(&a)),
            "--connect" => args.connect = value(&a),
            "--server-warmup" => {
                args.server_warmup = number(value(&a), "--server-warmup");
            }
            "--server-pid" => {
                args.server_pid = Some(number(value(&a), "--server-pid") as u32);
            }
            "-h" | "--help" => {
                println!(
                    "zk_scale [--quick] [--elections N] [--candidates M] [--rounds R] \
                     [--crash-rounds K] [--phases elections,path,crash] [--server-warmup N]"
                );
                std::process::exit(0);
            }
            other => panic!("unknown argument {other:?} (try --help)"),
        }
    }
    for p in &args.phases {
        assert!(
            ["elections", "path", "crash"].contains(&p.as_str()),
            "unknown phase {p:?}: elections, path or crash"
        );
    }
    assert!(args.elections >= 1 && args.candidates >= 2 && args.rounds >= 1);
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

/// This process's resident set, in bytes (`/proc/self/statm`, pages of `getconf PAGESIZE`).
fn rss() -> u64 {
    static PAGE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let page = *PAGE.get_or_init(|| shell("getconf", &["PAGESIZE"]).parse().unwrap_or(4096));
    let statm = std::fs::read_to_string("/proc/self/statm").expect("read /proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("resident pages in /proc/self/statm");
    pages * page
}

fn kib(bytes: f64) -> f64 {
    bytes / 1024.0
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// CPU time (user + system) of process `pid` (`self` for this one) so far, from
/// `/proc/<pid>/stat` (clock ticks of `getconf CLK_TCK`); `None` where it cannot be read.
fn cpu_time(pid: &str) -> Option<Duration> {
    static TICK: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    let hz = *TICK.get_or_init(|| shell("getconf", &["CLK_TCK"]).parse().unwrap_or(100.0));
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: count from after its closing parenthesis.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_secs_f64((utime + stime) / hz))
}

/// CPU time of this process and of the server's (when its pid is known), now.
fn cpu_pair(server_pid: Option<u32>) -> (Option<Duration>, Option<Duration>) {
    (
        cpu_time("self"),
        server_pid.and_then(|p| cpu_time(&p.to_string())),
    )
}

fn cpu_between(
    a: (Option<Duration>, Option<Duration>),
    b: (Option<Duration>, Option<Duration>),
) -> (f64, f64) {
    let d = |x: Option<Duration>, y: Option<Duration>| match (x, y) {
        (Some(x), Some(y)) => ms(y.saturating_sub(x)),
        _ => f64::NAN,
    };
    (d(a.0, b.0), d(a.1, b.1))
}

fn backend(connect: &str, tick: Duration) -> Arc<dyn CoordinationBackend> {
    Arc::new(
        ZkBackend::builder(connect)
            .server_tick_time(tick)
            .build()
            .expect("valid connect string"),
    )
}

fn is_placed(s: &ElectionState) -> bool {
    matches!(
        s,
        ElectionState::Follower { .. } | ElectionState::Leader { .. }
    )
}

async fn placed(c: &Candidate, limit: Duration) {
    let mut st = c.state();
    timeout(limit, st.wait_for(is_placed))
        .await
        .unwrap_or_else(|_| panic!("{} not placed: {:?}", c.id(), c.current()))
        .expect("candidate alive");
}

// ---------------------------------------------------------------------------------------------
// Server counters (see zk_bench for what each one counts).

fn counter(m: &BTreeMap<String, String>, key: &str) -> f64 {
    m.get(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("mntr has no numeric {key}"))
}

#[derive(Clone, Copy)]
struct Counters {
    at: Instant,
    writes: f64,
    reads_and_pings: f64,
    notifications: f64,
    /// Watches registered now (a gauge).
    watches: f64,
}

/// `mntr` of the server at `addr` (host:port), through the harness's four-letter-word client.
async fn counters(addr: &str) -> Counters {
    let addr: std::net::SocketAddr = addr.parse().expect("host:port");
    let m = tokio::task::spawn_blocking(move || {
        let text =
            election_zk::testing::four_letter::four_letter(addr, "mntr", Duration::from_secs(10))
                .expect("mntr");
        text.lines()
            .filter_map(|l| l.split_once('\t'))
            .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
            .collect::<BTreeMap<_, _>>()
    })
    .await
    .expect("mntr task");
    Counters {
        at: Instant::now(),
        writes: counter(&m, "zk_cnt_updatelatency"),
        reads_and_pings: counter(&m, "zk_cnt_readlatency"),
        notifications: [
            "zk_sum_node_deleted_watch_count",
            "zk_sum_node_children_watch_count",
            "zk_sum_node_created_watch_count",
            "zk_sum_node_changed_watch_count",
        ]
        .iter()
        .map(|k| counter(&m, k))
        .sum(),
        watches: counter(&m, "zk_watch_count"),
    }
}

// ---------------------------------------------------------------------------------------------
// Phase: many elections over one session.

/// Lines of `key value` a child prints for its parent.
fn report(key: &str, value: impl std::fmt::Display) {
    println!("{key} {value}");
}

async fn child_elections(connect: &str, n: usize, server_pid: Option<u32>) {
    let backend = backend(connect, election_zk::testing::TICK_TIME);
    let client = Client::connect(backend.clone(), QUIET_TIMEOUT)
        .await
        .expect("client session");
    // Warm up what one election allocates once per process (the runtime's timer wheel, the
    // tracing callsites, the client's first request), then measure from here. Its election
    // sits beside the ones measured, so their parent `/scale/e` exists as the floor's does
    // (otherwise the first thousands of joins all find it missing and race to create it).
    let warm = client
        .join(
            Candidate::builder("/scale/e/warm", "w")
                .build()
                .expect("config"),
        )
        .await
        .expect("join");
    placed(&warm, Duration::from_secs(30)).await;
    warm.stop().await;
    sleep(Duration::from_millis(200)).await;
    let before = rss();
    let heap = Region::new(GLOBAL);
    let c0 = counters(connect).await;
    let cpu0 = cpu_pair(server_pid);
    let started = Instant::now();
    let mut cs = Vec::with_capacity(n);
    for i in 0..n {
        let config = Candidate::builder(format!("/scale/e/{i:05}"), "c")
            .build()
            .expect("config");
        cs.push(client.join(config).await.expect("join"));
    }
    let joined = started.elapsed();
    for c in &cs {
        placed(c, Duration::from_secs(120)).await;
    }
    let all_placed = started.elapsed();
    let leaders = cs.iter().filter(|c| c.is_leader()).count();
    // A leader may be placed before the watch on its own entry is armed (the first candidate
    // of a fresh election leads on its create's reply): the work is done once every election
    // has that watch too. Counted to then.
    let mut c1 = counters(connect).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while c1.watches - c0.watches < n as f64 && Instant::now() < deadline {
        sleep(Duration::from_millis(10)).await;
        c1 = counters(connect).await;
    }
    let settled = c1.at - started;
    let cpu1 = cpu_pair(server_pid);
    // Settle (the leaders' confirming reads), then measure.
    sleep(Duration::from_millis(500)).await;
    let after = rss();
    let held = live(&heap);
    report("elections", n);
    report("heap_grew", held);
    report("join_calls_ms", ms(joined));
    report("placed_ms", ms(all_placed));
    report("settled_ms", ms(settled));
    report("watches_armed", c1.watches - c0.watches);
    report("leaders", leaders);
    report("writes_per_election", (c1.writes - c0.writes) / n as f64);
    report(
        "reads_per_election",
        (c1.reads_and_pings - c0.reads_and_pings) / n as f64,
    );
    let (ours, server) = cpu_between(cpu0, cpu1);
    report("placing_cpu_ms", format!("{ours:.0} {server:.0}"));
    report("rss_before", before);
    report("rss_after", after);

    // A hand-over in election 0: two more candidates on a second client; the leader resigns.
    let other = Client::connect(backend.clone(), QUIET_TIMEOUT)
        .await
        .expect("second session");
    let mut extra = Vec::new();
    for id in ["d", "e"] {
        let c = other
            .join(
                Candidate::builder("/scale/e/00000", id)
                    .build()
                    .expect("config"),
            )
            .await
            .expect("join");
        placed(&c, Duration::from_secs(30)).await;
        extra.push(c);
    }
    // Both know the leader before the hand-over.
    for c in &extra {
        wait_state(
            c,
            "a follower knowing the leader",
            Duration::from_secs(10),
            follows_known_leader,
        )
        .await;
    }
    let mut seen: Vec<StateWatch> = cs.iter().chain(extra.iter()).map(|c| c.state()).collect();
    for s in &mut seen {
        s.borrow_and_update();
    }
    let handover = Instant::now();
    cs[0].leave().await.expect("leave");
    timeout(Duration::from_secs(10), extra[0].wait_for_leadership())
        .await
        .expect("the next in line leads")
        .expect("alive");
    let took = handover.elapsed();
    // Anything else that would move has had time to.
    sleep(Duration::from_millis(300)).await;
    let woken = seen
        .iter()
        .enumerate()
        .filter(|(i, s)| *i != 0 && s.has_changed().unwrap_or(false))
        .count();
    report("handover_ms", ms(took));
    report("woken", woken);
    // Every candidate told to stop at once, as `Client::close` does.
    let c2 = counters(connect).await;
    let cpu2 = cpu_pair(server_pid);
    let stop = Instant::now();
    let stopping = cs.len() + extra.len();
    let mut stops = tokio::task::JoinSet::new();
    for c in cs.drain(..).chain(extra.drain(..)) {
        stops.spawn(async move { c.stop().await });
    }
    while let Some(done) = stops.join_next().await {
        done.expect("stop task");
    }
    report("stop_all_ms", ms(stop.elapsed()));
    let cpu3 = cpu_pair(server_pid);
    let c3 = counters(connect).await;
    let (ours, server) = cpu_between(cpu2, cpu3);
    report("stopping_cpu_ms", format!("{ours:.0} {server:.0}"));
    report(
        "stop_requests",
        format!(
            "{:.2} {:.2}",
            (c3.writes - c2.writes) / stopping as f64,
            (c3.reads_and_pings - c2.reads_and_pings) / stopping as f64
        ),
    );
    other.close().await;

    // Again, now that the directories exist (a restarted process): one create per join.
    let c4 = counters(connect).await;
    let cpu4 = cpu_pair(server_pid);
    let started = Instant::now();
    for i in 0..n {
        let config = Candidate::builder(format!("/scale/e/{i:05}"), "c")
            .build()
            .expect("config");
        cs.push(client.join(config).await.expect("join"));
    }
    for c in &cs {
        placed(c, Duration::from_secs(120)).await;
    }
    report("again_placed_ms", ms(started.elapsed()));
    let cpu5 = cpu_pair(server_pid);
    let c5 = counters(connect).await;
    let (ours, server) = cpu_between(cpu4, cpu5);
    report("again_cpu_ms", format!("{ours:.0} {server:.0}"));
    report(
        "again_requests",
        format!(
            "{:.2} {:.2}",
            (c5.writes - c4.writes) / n as f64,
            (c5.reads_and_pings - c4.reads_and_pings) / n as f64
        ),
    );
    client.close().await;
    drop(cs);

    // The floor: the fewest requests a join on a fresh path needs (the directory's create, the
    // entry's and the exists watch on it: a create numbered 0 needs no listing), sent by a bare
    // zookeeper-client session for as many elections at once, on the same server after our
    // run. Ours sends one more: the entry's create first, which fails while the directory is
    // missing (a directory that exists, the usual case, costs nothing more).
    let (took, held, writes, reads, cpu) = floor(connect, n, server_pid).await;
    report("floor_ms", ms(took));
    report("floor_heap_grew", held);
    report("floor_requests", format!("{writes:.2} {reads:.2}"));
    report("floor_cpu_ms", format!("{:.0} {:.0}", cpu.0, cpu.1));
}

/// `n` fresh elections' fewest requests over one bare zookeeper-client session, all at once:
/// how long until every one is answered, the bytes then held (the client's watch on each entry,
/// and the watcher that keeps it), requests per election (writes, reads) and the CPU time of
/// this process and of the server meanwhile.
async fn floor(
    connect: &str,
    n: usize,
    server_pid: Option<u32>,
) -> (Duration, i64, f64, f64, (f64, f64)) {
    use zookeeper_client as zk;
    let client = zk::Client::connector()
        .with_session_timeout(QUIET_TIMEOUT)
        .connect(connect)
        .await
        .expect("floor session");
    let dir = || zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    for p in ["/floor", "/floor/e"] {
        client
            .create(p, &[], &dir())
            .await
            .expect("floor directory");
    }
    let c0 = counters(connect).await;
    let cpu0 = cpu_pair(server_pid);
    let heap = Region::new(GLOBAL);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let client = client.clone();
        tasks.spawn(async move {
            let path = format!("/floor/e/{i:05}");
            let entry = format!("{path}/c-");
            client.create(&path, &[], &dir()).await.expect("create dir");
            let ephemeral = zk::CreateMode::EphemeralSequential.with_acls(zk::Acls::anyone_all());
            let (_, sequence) = client
                .create(&entry, b"c", &ephemeral)
                .await
                .expect("create entry");
            let name = format!("{entry}{sequence}");
            let (_, watcher) = client
                .check_and_watch_stat(&name)
                .await
                .expect("exists watch");
            // Kept until counted: dropping it would remove the watch (one more request).
            watcher
        });
    }
    let mut watchers = Vec::with_capacity(n);
    while let Some(done) = tasks.join_next().await {
        watchers.push(done.expect("floor task"));
    }
    let took = started.elapsed();
    drop(tasks);
    let held = live(&heap);
    let cpu1 = cpu_pair(server_pid);
    let c1 = counters(connect).await;
    drop(watchers);
    (
        took,
        held,
        (c1.writes - c0.writes) / n as f64,
        (c1.reads_and_pings - c0.reads_and_pings) / n as f64,
        cpu_between(cpu0, cpu1),
    )
}

// ---------------------------------------------------------------------------------------------
// Phase: many candidates on one path, a session each.

struct Group {
    path: String,
    backend: Arc<dyn CoordinationBackend>,
    cs: Vec<Candidate>,
    /// Queue order: leader first.
    order: Vec<usize>,
    prev_leaver: Option<usize>,
}

async fn populate(backend: &Arc<dyn CoordinationBackend>, path: &str, n: usize) -> Group {
    let mut joins = tokio::task::JoinSet::new();
    for i in 0..n {
        let backend = backend.clone();
        let path = path.to_owned();
        joins.spawn(async move {
            // Joined one after the other on the server, so the queue order is the id order.
            let c = Candidate::builder(path, format!("c{i:04}"))
                .session_timeout(QUIET_TIMEOUT)
                .join(backend)
                .await
                .expect("join");
            placed(&c, Duration::from_secs(120)).await;
            (i, c)
        });
    }
    let mut cs: Vec<Option<Candidate>> = (0..n).map(|_| None).collect();
    while let Some(done) = joins.join_next().await {
        let (i, c) = done.expect("join task");
        cs[i] = Some(c);
    }
    let cs: Vec<Candidate> = cs.into_iter().map(|c| c.expect("joined")).collect();
    // Queue order by position.
    let mut order: Vec<(usize, usize)> = cs
        .iter()
        .enumerate()
        .map(|(i, c)| match c.current() {
            ElectionState::Leader { .. } => (0, i),
            ElectionState::Follower { position, .. } => (position, i),
            other => panic!("{} not placed: {other:?}", c.id()),
        })
        .collect();
    order.sort();
    Group {
        path: path.to_owned(),
        backend: backend.clone(),
        cs,
        order: order.into_iter().map(|(_, i)| i).collect(),
        prev_leaver: None,
    }
}

async fn knows_leader(c: &Candidate) {
    wait_state(c, "settled", Duration::from_secs(20), settled).await;
}

/// One graceful failover: the leader resigns (and rejoins at the tail at once), or with `leave`
/// leaves and joins again (on a new session) only after the successor leads, so that its
/// rejoin is not part of the hand-over. Returns the hand-over time and how many candidates other
/// than the leaver changed state (1 without a herd).
async fn failover(g: &mut Group, seen: &mut [StateWatch], leave: bool) -> (Duration, usize) {
    for s in seen.iter_mut() {
        s.borrow_and_update();
    }
    let (leader, successor) = (g.order[0], g.order[1]);
    let mut st = g.cs[successor].state();
    st.borrow_and_update();
    let lead = tokio::spawn(async move {
        st.wait_for(|s| s.is_leader()).await.expect("alive");
        Instant::now()
    });
    let started = Instant::now();
    if leave {
        g.cs[leader].leave().await.expect("leave");
    } else {
        g.cs[leader].resign().await.expect("resign");
    }
    let led_at = timeout(Duration::from_secs(10), lead)
        .await
        .unwrap_or_else(|_| panic!("{} did not lead", g.cs[successor].id()))
        .expect("wait task");
    g.order.rotate_left(1);
    if leave {
        let again = Candidate::builder(g.path.as_str(), g.cs[leader].id())
            .session_timeout(QUIET_TIMEOUT)
            .join(g.backend.clone())
            .await
            .expect("join again");
        seen[leader] = again.state();
        g.cs[leader] = again;
    }
    // The resigner is back at the tail and knows the new leader before the next round.
    knows_leader(&g.cs[leader]).await;
    let woken = seen
        .iter()
        .enumerate()
        .filter(|(i, s)| {
            *i != leader
                // The previous round's resigner may still finish its own rejoin.
                && (g.prev_leaver != Some(*i) || *i == successor)
                && s.has_changed().unwrap_or(false)
        })
        .count();
    g.prev_leaver = Some(leader);
    (led_at - started, woken)
}

struct PathResult {
    samples: Vec<Duration>,
    woken: Vec<usize>,
    writes: f64,
    reads: f64,
    notifications: f64,
}

async fn child_path(connect: &str, m: usize, rounds: usize) {
    let backend = backend(connect, election_zk::testing::TICK_TIME);
    // Warm up: one session, one candidate.
    let warm = Candidate::builder("/scale/warm-path", "w")
        .session_timeout(QUIET_TIMEOUT)
        .join(backend.clone())
        .await
        .expect("join");
    placed(&warm, Duration::from_secs(30)).await;
    warm.stop().await;
    drop(warm);
    sleep(Duration::from_millis(500)).await;

    let before = rss();
    let heap = Region::new(GLOBAL);
    let started = Instant::now();
    let mut big = populate(&backend, "/scale/path-big", m).await;
    let all_placed = started.elapsed();
    for c in &big.cs {
        knows_leader(c).await;
    }
    sleep(Duration::from_millis(500)).await;
    let after = rss();
    let held = live(&heap);
    report("candidates", m);
    report("heap_grew", held);
    report("placed_ms", ms(all_placed));
    report("rss_before", before);
    report("rss_after", after);

    let started = Instant::now();
    let mut base = populate(&backend, "/scale/path-base", BASE_CANDIDATES).await;
    report("base_placed_ms", ms(started.elapsed()));
    for c in &base.cs {
        knows_leader(c).await;
    }
    let mut big_seen: Vec<_> = big.cs.iter().map(|c| c.state()).collect();
    let mut base_seen: Vec<_> = base.cs.iter().map(|c| c.state()).collect();

    // The background request rate (pings, keep-alive reads) while idle, to subtract.
    let idle0 = counters(connect).await;
    sleep(Duration::from_secs(3)).await;
    let idle1 = counters(connect).await;
    let ping_rate =
        (idle1.reads_and_pings - idle0.reads_and_pings) / (idle1.at - idle0.at).as_secs_f64();
    report("idle_reads_per_s", ping_rate);

    let mut results: [PathResult; 4] = std::array::from_fn(|_| PathResult {
        samples: Vec::new(),
        woken: Vec::new(),
        writes: 0.0,
        reads: 0.0,
        notifications: 0.0,
    });
    let cpu0 = CpuTimes::now();
    let mut done = 0;
    while done < rounds {
        let block = BLOCK.min(rounds - done);
        for (k, result) in results.iter_mut().enumerate() {
            let (group, seen) = if k % 2 == 0 {
                (&mut base, &mut base_seen)
            } else {
                (&mut big, &mut big_seen)
            };
            let leave = k >= 2;
            let c0 = counters(connect).await;
            for _ in 0..block {
                let (took, woken) = failover(group, seen, leave).await;
                result.samples.push(took);
                result.woken.push(woken);
                // The same idle gap after every failover.
                sleep(Duration::from_millis(20)).await;
            }
            let c1 = counters(connect).await;
            result.writes += c1.writes - c0.writes;
            result.reads +=
                c1.reads_and_pings - c0.reads_and_pings - ping_rate * (c1.at - c0.at).as_secs_f64();
            result.notifications += c1.notifications - c0.notifications;
        }
        done += block;
    }
    let steal_pct = Cpu::between(cpu0, CpuTimes::now()).map_or(f64::NAN, |c| c.steal);
    report("steal_pct", steal_pct);
    for (label, r) in ["base", "big", "base_leave", "big_leave"]
        .iter()
        .zip(results.iter())
    {
        let f = r.samples.len() as f64;
        let [min, p50, p99, max] = summary(&r.samples);
        report(
            &format!("{label}_latency_ms"),
            format!(
                "{:.3} {:.3} {:.3} {:.3}",
                ms(min),
                ms(p50),
                ms(p99),
                ms(max)
            ),
        );
        report(
            &format!("{label}_woken_mean_max"),
            format!(
                "{:.2} {}",
                r.woken.iter().sum::<usize>() as f64 / f,
                r.woken.iter().max().copied().unwrap_or(0)
            ),
        );
        report(
            &format!("{label}_per_failover"),
            format!(
                "{:.2} {:.2} {:.2}",
                r.writes / f,
                r.reads / f,
                r.notifications / f
            ),
        );
    }
    let stop = Instant::now();
    let mut stops = tokio::task::JoinSet::new();
    for c in big.cs.drain(..).chain(base.cs.drain(..)) {
        stops.spawn(async move { c.stop().await });
    }
    while stops.join_next().await.is_some() {}
    report("stop_all_ms", ms(stop.elapsed()));
}

// ---------------------------------------------------------------------------------------------
// Phase: crash failover against the session timeout.

/// The leader is cut off for good through its proxy, then aborted (a crash: no close); the
/// successor leads once the server expires the session.
async fn crash(
    zk: &ZkServer,
    tick: Duration,
    session_timeout: Duration,
    rounds: usize,
) -> Vec<Duration> {
    let successor_backend = backend(&zk.connect_string(), tick);
    let mut out = Vec::new();
    for round in 0..rounds {
        let path = format!("/scale/crash-{}-{round}", tick.as_millis());
        let proxy = zk.proxy();
        let proxied = backend(&proxy.addr().to_string(), tick);
        let a = Candidate::builder(path.as_str(), "a")
            .session_timeout(session_timeout)
            .join(proxied)
            .await
            .expect("join a");
        timeout(Duration::from_secs(20), a.wait_for_leadership())
            .await
            .expect("a leads in time")
            .expect("a leads");
        let b = Candidate::builder(path.as_str(), "b")
            .session_timeout(session_timeout)
            .join(successor_backend.clone())
            .await
            .expect("join b");
        knows_leader(&b).await;
        // A random phase against the server's tick and the leader's pings.
        sleep(Duration::from_millis(137 * (round as u64 + 1) % 1000)).await;
        let started = Instant::now();
        proxy.cut();
        a.abort();
        timeout(session_timeout * 4, b.wait_for_leadership())
            .await
            .expect("failover after a crash in time")
            .expect("b leads");
        let took = started.elapsed();
        eprintln!(
            "  crash round {round}: {:.0} ms ({:.3} x T, goal <= T + tick + 10 ms = {:.0} ms)",
            ms(took),
            took.as_secs_f64() / session_timeout.as_secs_f64(),
            ms(session_timeout + tick + Duration::from_millis(10))
        );
        out.push(took);
        b.stop().await;
    }
    out
}

// ---------------------------------------------------------------------------------------------

/// Runs this binary as a child for one phase and returns what it reported.
fn run_child(
    phase: &str,
    connect: &str,
    server_pid: Option<u32>,
    args: &Args,
) -> BTreeMap<String, String> {
    let exe = std::env::current_exe().expect("own executable");
    let mut command = std::process::Command::new(exe);
    if let Some(pid) = server_pid {
        command.args(["--server-pid", &pid.to_string()]);
    }
    let out = command
        .args([
            "--child",
            phase,
            "--connect",
            connect,
            "--elections",
            &args.elections.to_string(),
            "--candidates",
            &args.candidates.to_string(),
            "--rounds",
            &args.rounds.to_string(),
        ])
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("run the child");
    assert!(
        out.status.success(),
        "phase {phase} failed ({}); its output:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn get<T: std::str::FromStr>(m: &BTreeMap<String, String>, key: &str) -> T {
    m.get(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("the child reported no {key}: {m:?}"))
}

fn floats(m: &BTreeMap<String, String>, key: &str) -> Vec<f64> {
    m.get(key)
        .unwrap_or_else(|| panic!("the child reported no {key}"))
        .split_whitespace()
        .map(|v| v.parse().expect("number"))
        .collect()
}

fn main() {
    let args = parse_args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    if let Some(phase) = args.child.clone() {
        rt.block_on(async {
            match phase.as_str() {
                "elections" => {
                    child_elections(&args.connect, args.elections, args.server_pid).await
                }
                "path" => child_path(&args.connect, args.candidates, args.rounds).await,
                other => panic!("no child phase {other}"),
            }
        });
        return;
    }

    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let date = shell("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]);
    let kernel = shell("uname", &["-sr"]);
    let zk = ZkServer::start_for_benchmark();
    let version = zk
        .mntr()
        .get("zk_version")
        .cloned()
        .unwrap_or_default()
        .split('-')
        .next()
        .unwrap_or("?")
        .to_owned();
    let warmed = rt.block_on(election_tests::scenario::warm_server(
        &zk.connect_string(),
        args.server_warmup,
    ));
    let machine = format!(
        "nproc {nproc}, {kernel}, {date}; ZooKeeper {version} standalone (forceSync=no); \
         server warmed by {} rounds of every request kind ({:.1} s)",
        args.server_warmup,
        warmed.as_secs_f64()
    );
    let mut t = String::new();
    let _ = writeln!(t, "election zk_scale: {machine}");
    eprintln!("zk_scale: {machine}");
    let goal_mark = |ok: bool| if ok { "ok" } else { "MISSED" };

    if args.phases.iter().any(|p| p == "elections") {
        eprintln!("{} elections over one session ...", args.elections);
        let r = run_child("elections", &zk.connect_string(), zk.pid(), &args);
        let n: usize = get(&r, "elections");
        let grew = get::<u64>(&r, "rss_after").saturating_sub(get(&r, "rss_before"));
        let per = grew as f64 / n as f64;
        let held_per = get::<i64>(&r, "heap_grew") as f64 / n as f64;
        let placed_ms: f64 = get(&r, "placed_ms");
        let leaders: usize = get(&r, "leaders");
        let woken: usize = get(&r, "woken");
        let _ = writeln!(
            t,
            "\n{n} elections, one candidate each, over one Client session:"
        );
        let _ = writeln!(
            t,
            "  all placed in {placed_ms:.0} ms (join calls returned after {:.0} ms; every own-entry watch armed, {:.0} of {n}, after {:.0} ms)   goal < 2000 ms: {}",
            get::<f64>(&r, "join_calls_ms"),
            get::<f64>(&r, "watches_armed"),
            get::<f64>(&r, "settled_ms"),
            goal_mark(placed_ms < 2000.0)
        );
        let _ = writeln!(
            t,
            "  client memory per election: {:.2} KiB held (counting allocator: bytes allocated and not freed)   goal < 2 KiB: {}\n  \
             ({:.2} KiB of it is what zookeeper-client holds for a watch and its watcher: the floor below, counted the same way)\n  \
             as RSS: {:.1} -> {:.1} MiB, {:.2} KiB per election (with what the allocator keeps back of the burst)",
            kib(held_per),
            goal_mark(held_per < 2048.0),
            kib(get::<i64>(&r, "floor_heap_grew") as f64 / n as f64),
            mib(get(&r, "rss_before")),
            mib(get(&r, "rss_after")),
            kib(per),
        );
        let _ = writeln!(
            t,
            "  server requests per election while joining (to every watch armed): {:.2} writes, {:.2} reads (and pings)",
            get::<f64>(&r, "writes_per_election"),
            get::<f64>(&r, "reads_per_election")
        );
        let _ = writeln!(
            t,
            "  leaders: {leaders} of {n}: {}",
            goal_mark(leaders == n)
        );
        let _ = writeln!(
            t,
            "  a hand-over in one of them ({:.2} ms) woke {woken} candidate(s) of {}   goal 1: {}",
            get::<f64>(&r, "handover_ms"),
            n + 2,
            goal_mark(woken == 1)
        );
        let cpu = floats(&r, "placing_cpu_ms");
        let floor_ms: f64 = get(&r, "floor_ms");
        let floor_requests = floats(&r, "floor_requests");
        let floor_cpu = floats(&r, "floor_cpu_ms");
        let _ = writeln!(
            t,
            "  CPU while placing: {:.0} ms ours, {:.0} ms the server's",
            cpu[0], cpu[1]
        );
        let _ = writeln!(
            t,
            "  floor: a bare zookeeper-client session doing the fewest requests of a fresh join \
             ({:.2} writes, {:.2} reads) for {n} elections at once: {floor_ms:.0} ms \
             (CPU {:.0} ms ours, {:.0} ms the server's); placed / floor: {:.2}x",
            floor_requests[0],
            floor_requests[1],
            floor_cpu[0],
            floor_cpu[1],
            placed_ms / floor_ms
        );
        let again = floats(&r, "again_requests");
        let again_cpu = floats(&r, "again_cpu_ms");
        let _ = writeln!(
            t,
            "  placed again, the directories in place (a restart): {:.0} ms ({:.2} writes, {:.2} reads per election; CPU {:.0} ms ours, {:.0} ms the server's)",
            get::<f64>(&r, "again_placed_ms"),
            again[0],
            again[1],
            again_cpu[0],
            again_cpu[1]
        );
        let stop_requests = floats(&r, "stop_requests");
        let stop_cpu = floats(&r, "stopping_cpu_ms");
        let _ = writeln!(
            t,
            "  stopping all at once took {:.0} ms ({:.2} writes, {:.2} reads per candidate; CPU {:.0} ms ours, {:.0} ms the server's)",
            get::<f64>(&r, "stop_all_ms"),
            stop_requests[0],
            stop_requests[1],
            stop_cpu[0],
            stop_cpu[1]
        );
        print!("{t}");
        t.clear();
    }

    if args.phases.iter().any(|p| p == "path") {
        eprintln!(
            "{} and {BASE_CANDIDATES} candidates on one path each, a session each, {} failovers each ...",
            args.candidates, args.rounds
        );
        let r = run_child("path", &zk.connect_string(), zk.pid(), &args);
        let m: usize = get(&r, "candidates");
        let grew = get::<u64>(&r, "rss_after").saturating_sub(get(&r, "rss_before"));
        let base = floats(&r, "base_latency_ms");
        let big = floats(&r, "big_latency_ms");
        let base_leave = floats(&r, "base_leave_latency_ms");
        let big_leave = floats(&r, "big_leave_latency_ms");
        let _ = writeln!(
            t,
            "\n{m} candidates on one path, a session each (beside {BASE_CANDIDATES} on another path; blocks of {BLOCK} failovers in turn; host steal {:.1}%):",
            get::<f64>(&r, "steal_pct")
        );
        let _ = writeln!(
            t,
            "  all placed in {:.0} ms ({BASE_CANDIDATES}: {:.0} ms); client memory per candidate (with its session): {:.1} KiB held (counting allocator), RSS {:.1} -> {:.1} MiB, {:.1} KiB",
            get::<f64>(&r, "placed_ms"),
            get::<f64>(&r, "base_placed_ms"),
            kib(get::<i64>(&r, "heap_grew") as f64 / m as f64),
            mib(get(&r, "rss_before")),
            mib(get(&r, "rss_after")),
            kib(grew as f64 / m as f64)
        );
        let _ = writeln!(
            t,
            "  {:<16} {:>8} {:>8} {:>8} {:>8}  (ms)   {:>14} {:>8} {:>14} {:>12}",
            "graceful",
            "min",
            "p50",
            "p99",
            "max",
            "woken mean/max",
            "writes",
            "reads(-idle)",
            "watch notif."
        );
        for (label, key, lat) in [
            (format!("{BASE_CANDIDATES} candidates"), "base", &base),
            (format!("{m} candidates"), "big", &big),
        ] {
            let woken = floats(&r, &format!("{key}_woken_mean_max"));
            let per = floats(&r, &format!("{key}_per_failover"));
            let _ = writeln!(
                t,
                "  {label:<16} {:>8.2} {:>8.2} {:>8.2} {:>8.2}        {:>8.2}/{:<5} {:>8.2} {:>14.2} {:>12.2}",
                lat[0], lat[1], lat[2], lat[3], woken[0], woken[1], per[0], per[1], per[2]
            );
        }
        let (r50, r99) = (big[1] / base[1], big[2] / base[2]);
        let _ = writeln!(
            t,
            "  ratio {m}/{BASE_CANDIDATES}: p50 {r50:.2}x, p99 {r99:.2}x   goal p50 within 10%: {}",
            goal_mark(r50 <= 1.10)
        );
        let _ = writeln!(
            t,
            "  leave, rejoin after the successor leads (no rejoin inside the hand-over), same blocks:"
        );
        for (label, key, lat) in [
            (
                format!("{BASE_CANDIDATES} candidates"),
                "base_leave",
                &base_leave,
            ),
            (format!("{m} candidates"), "big_leave", &big_leave),
        ] {
            let woken = floats(&r, &format!("{key}_woken_mean_max"));
            let _ = writeln!(
                t,
                "  {label:<16} {:>8.2} {:>8.2} {:>8.2} {:>8.2}        {:>8.2}/{:<5}",
                lat[0], lat[1], lat[2], lat[3], woken[0], woken[1]
            );
        }
        let _ = writeln!(
            t,
            "  ratio {m}/{BASE_CANDIDATES} (leave): p50 {:.2}x, p99 {:.2}x",
            big_leave[1] / base_leave[1],
            big_leave[2] / base_leave[2]
        );
        print!("{t}");
        t.clear();
    }

    if args.phases.iter().any(|p| p == "crash") && args.crash_rounds > 0 {
        let mut servers = Vec::new();
        for (tick, session_timeout) in [
            (Duration::from_millis(200), Duration::from_secs(2)),
            (Duration::from_millis(2000), Duration::from_secs(4)),
        ] {
            eprintln!(
                "crash failover, tickTime {tick:?}, session timeout {session_timeout:?}, {} rounds ...",
                args.crash_rounds
            );
            let own;
            let server = if tick == election_zk::testing::TICK_TIME {
                &zk
            } else {
                own = ZkServer::start_with_tick_time(tick);
                &own
            };
            let rounds = rt.block_on(crash(server, tick, session_timeout, args.crash_rounds));
            servers.push((tick, session_timeout, rounds));
        }
        let _ = writeln!(
            t,
            "\nCrash failover: leader cut off and aborted -> successor leads (goal <= T + one tick + 10 ms)"
        );
        for (tick, session_timeout, rounds) in &servers {
            let goal = *session_timeout + *tick + Duration::from_millis(10);
            let each: Vec<String> = rounds.iter().map(|d| format!("{:.0}", ms(*d))).collect();
            let worst = rounds.iter().max().copied().unwrap_or_default();
            let _ = writeln!(
                t,
                "  tickTime {:>4} ms, T {:>4} ms: rounds [{}] ms; worst {:.3} x T, {:.3} x goal ({:.0} ms): {}",
                tick.as_millis(),
                session_timeout.as_millis(),
                each.join(", "),
                worst.as_secs_f64() / session_timeout.as_secs_f64(),
                worst.as_secs_f64() / goal.as_secs_f64(),
                ms(goal),
                goal_mark(worst <= goal)
            );
        }
        print!("{t}");
    }
}
