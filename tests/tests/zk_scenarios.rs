//! Fault scenarios on real ZooKeeper 3.8 servers started by the harness: a candidate process
//! killed with SIGKILL, partitions and latency through the proxy, ensemble members killed and
//! frozen, a server restart, an administrator deleting nodes, foreign nodes, missing permissions
//! and bad connect strings. Each test has its own server (or ensemble), a 2 s session timeout
//! (tickTime 200 ms), bounded waits, and checks the contract's invariants over what it recorded.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use election_core::testing::invariants::{check_leaders, check_work};
use election_core::testing::recorder::{Recorder, WorkLog};
use election_core::testing::Harness;
use election_core::{
    Candidate, Client, ConfigError, Contact, CoordinationBackend, ElectionError, ElectionPath,
    ElectionState, ErrorKind, Event, Marker, Notice, Reason, StopReason,
};
use election_tests::scenario::{
    confirmed_leader, direct, participant_ids, persistent, raw, raw_children, wait_state,
    wait_until,
};
use election_tests::zk::ZkHarness;
use election_zk::testing::{ZkEnsemble, ZkServer};
use election_zk::{NodeAcl, ZkBackend};
use tokio::sync::mpsc;
use tokio::time::{sleep, Instant};

use election_tests::candidates::{
    followers_settled, interval_of, join, join_in_order, lead, patience, stop_all, wait_entries,
    SLACK, T,
};

// ---------------------------------------------------------------------------------------------
// A candidate in a separate OS process, killed with SIGKILL.

/// The `zk_candidate` child; killed and reaped on drop, also when a test fails.
struct ChildCandidate {
    child: Child,
    lines: mpsc::UnboundedReceiver<String>,
    transcript: Vec<String>,
}

impl ChildCandidate {
    fn spawn(connect: &str, path: &str, id: &str) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_zk_candidate"))
            .args([connect, path, id, &T.as_millis().to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn zk_candidate");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            child,
            lines,
            transcript: Vec::new(),
        }
    }

    /// The next line starting with `prefix` (bounded).
    async fn expect(&mut self, prefix: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) => {
                    self.transcript.push(line.clone());
                    if line.starts_with(prefix) {
                        return line;
                    }
                }
                Ok(None) => panic!("zk_candidate exited; said {:?}", self.transcript),
                Err(_) => panic!(
                    "zk_candidate said no {prefix} within {limit:?}; said {:?}",
                    self.transcript
                ),
            }
        }
    }
}

impl Drop for ChildCandidate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// L1, S2: a leader in another process killed with SIGKILL (no close, no withdrawal) is succeeded
/// once the server expires its session: not before about the session timeout, and within it
/// plus a margin, by a successor with a larger token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_leader_process_is_succeeded_after_session_expiry() {
    let zk = ZkServer::start();
    let connect = zk.connect_string();
    let path = "/scen/sigkill/leader";
    let mut child = ChildCandidate::spawn(&connect, path, "child");
    let leader_line = child.expect("LEADER", patience()).await;
    let child_token: u64 = leader_line
        .split_whitespace()
        .nth(1)
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("bad line {leader_line:?}"));

    let backend = direct(&connect);
    let mut rec = Recorder::new();
    let b = join(&backend, path, "b").await;
    rec.watch(&b);
    wait_entries(&backend, path, 2).await;
    followers_settled(std::slice::from_ref(&b)).await;
    assert_eq!(
        b.current_leader().await.unwrap().map(|l| l.id),
        Some("child".to_owned())
    );

    let killed_at = Instant::now();
    child.child.kill().expect("SIGKILL the candidate process");
    child.child.wait().expect("reap it");
    let token = tokio::time::timeout(T * 3, b.wait_for_leadership())
        .await
        .unwrap_or_else(|e| Err(e.into()))
        .unwrap_or_else(|e| panic!("no failover after the SIGKILL: {e}; {:?}", b.current()));
    let took = killed_at.elapsed();
    eprintln!("measure: SIGKILL -> successor leads in {took:?} (session timeout {T:?})");
    // The server last heard from the child at most one ping (T/6) before the kill, and expires
    // sessions on tick boundaries.
    assert!(
        took + SLACK >= T,
        "successor led {took:?} after the SIGKILL, before the session could expire"
    );
    assert!(took <= T + Duration::from_secs(1), "failover took {took:?}");
    assert!(token.0 > child_token, "token {token} after {child_token}");
    check_leaders(&rec.leader_intervals()).unwrap();
    b.stop().await;
    wait_entries(&backend, path, 0).await;
}

// ---------------------------------------------------------------------------------------------
// Partitions and latency through the proxy.

/// S2, S4, L4: a leader with running work stalled off the server steps down (its work stopped
/// first) before the server expires its session, and well before its successor starts; after the
/// partition heals it rejoins at the tail with a new session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_leader_with_work_steps_down_before_expiry() {
    let h = ZkHarness::start();
    let admin = direct(&h.server().connect_string());
    let path = "/scen/stall-work/leader";
    let log = WorkLog::new();
    let mut rec = Recorder::new();
    let mut cs = Vec::new();
    for id in ["a", "b", "c"] {
        let c = Candidate::builder(path, id)
            .session_timeout(T)
            .on_leader(log.work(id, Duration::from_millis(100)))
            .join(h.backend().await)
            .await
            .unwrap();
        rec.watch(&c);
        wait_state(&c, "placed", patience(), |s| {
            !matches!(s, ElectionState::Joining)
        })
        .await;
        cs.push(c);
    }
    let t0 = lead(&cs[0]).await;
    followers_settled(&cs).await;
    let session = cs[0].client().session().await.id();
    let cut_at = Instant::now();
    h.cut(session).await;
    let t1 = lead(&cs[1]).await;
    assert!(t1 > t0);

    let a = interval_of(&mut rec, "a").await;
    let b = interval_of(&mut rec, "b").await;
    let a_end = a.end.expect("a stepped down");
    let budget = T.mul_f64(election_core::DEFAULT_STEP_DOWN_FRACTION);
    eprintln!(
        "measure: stall -> a leaves Leader after {:?} (budget {budget:?}), b leads after {:?}",
        a_end - cut_at,
        b.start - cut_at
    );
    assert!(a_end < cut_at + T, "a led past the session timeout");
    assert!(
        a_end <= cut_at + budget + Duration::from_millis(100),
        "a left {:?} after the cut; budget {budget:?}",
        a_end - cut_at
    );
    assert!(a_end <= b.start);
    assert!(
        b.start + SLACK >= cut_at + T,
        "b led {:?} after the cut, before a's session could expire",
        b.start - cut_at
    );
    let spans = log.spans();
    let a_work = spans.iter().find(|s| s.candidate == "a").expect("a worked");
    let a_work_end = a_work.end.expect("a's work stopped");
    assert!(
        a_work_end < cut_at + T,
        "a's work ran past the session timeout"
    );
    check_work(&spans).unwrap();

    // Healed: a's session is gone; it rejoins by itself, with a new session, at the tail.
    h.heal(session).await;
    wait_until("a rejoined at the tail", patience(), || async {
        participant_ids(&admin, path, T).await == ["b", "c", "a"]
    })
    .await;
    assert_ne!(cs[0].client().session().await.id(), session);
    let reasons: Vec<Reason> = rec.transitions("a").into_iter().map(|t| t.reason).collect();
    assert!(reasons.contains(&Reason::StepDownDeadline), "{reasons:?}");
    assert!(reasons.contains(&Reason::Rejoining), "{reasons:?}");

    // The election goes on.
    cs[1].resign().await.unwrap();
    let t2 = lead(&cs[2]).await;
    assert!(t2 > t1);
    sleep(Duration::from_millis(100)).await;
    check_leaders(&rec.leader_intervals()).unwrap();
    check_work(&log.spans()).unwrap();
    stop_all(&cs).await;
    assert!(log.spans().iter().all(|s| s.end.is_some()));
    wait_entries(&admin, path, 0).await;
}

/// How a short outage is made.
#[derive(Clone, Copy, Debug)]
enum Outage {
    /// The proxy stalls: nothing moves.
    Stall,
    /// The proxy delays every chunk this long in each direction: a latency spike.
    Delay(Duration),
}

/// L5 (CURATOR-620/652/653): an outage shorter than the step-down budget: the leader keeps its
/// term (same token), goes Uncertain then Confirmed again, and nobody else leads.
async fn short_outage_keeps_leadership(outage: Outage) {
    let h = ZkHarness::start();
    let admin = direct(&h.server().connect_string());
    let path = "/scen/short-outage/leader";
    let mut rec = Recorder::new();
    // A roomy budget (0.9 T after the last contact), so that an outage the leader has noticed
    // (at T/3 of silence) can end, and the place be verified, well inside it.
    let a = Candidate::builder(path, "a")
        .session_timeout(T)
        .step_down_fraction(0.9)
        .join(h.backend().await)
        .await
        .unwrap();
    rec.watch(&a);
    let token = lead(&a).await;
    let b = join(&h.backend().await, path, "b").await;
    rec.watch(&b);
    wait_entries(&admin, path, 2).await;
    followers_settled(std::slice::from_ref(&b)).await;

    let proxy = h.proxy_of(a.client().session().await.id());
    let started = Instant::now();
    match outage {
        Outage::Stall => proxy.stall(),
        Outage::Delay(d) => proxy.set_delay(d),
    }
    let uncertain = wait_state(&a, "uncertain", patience(), |s| {
        assert!(s.is_leader(), "a left the Leader state: {s:?}");
        matches!(
            s,
            ElectionState::Leader {
                contact: Contact::Uncertain { .. },
                ..
            }
        )
    })
    .await;
    let noticed = started.elapsed();
    // Keep the outage a little longer, still well inside the budget.
    sleep(Duration::from_millis(200)).await;
    match outage {
        Outage::Stall => proxy.resume(),
        Outage::Delay(_) => proxy.set_delay(Duration::ZERO),
    }
    let healed = started.elapsed();
    wait_state(&a, "confirmed again", patience(), |s| {
        assert!(s.is_leader(), "a left the Leader state: {s:?}");
        confirmed_leader(s)
    })
    .await;
    eprintln!(
        "measure: {outage:?}: uncertain after {noticed:?}, healed at {healed:?}, confirmed at {:?} ({uncertain:?})",
        started.elapsed()
    );
    assert_eq!(a.token(), Some(token));
    sleep(Duration::from_millis(200)).await;
    assert!(!b.is_leader());
    assert!(b.events().is_empty());
    let reasons: Vec<Reason> = rec.transitions("a").into_iter().map(|t| t.reason).collect();
    assert!(
        reasons.ends_with(&[
            Reason::Claimed,
            Reason::ContactLost,
            Reason::ContactRestored
        ]),
        "{reasons:?}"
    );
    assert!(
        rec.transitions("b").iter().all(|t| !t.to.is_leader()),
        "b led"
    );
    let intervals = rec.leader_intervals();
    assert_eq!(
        intervals.len(),
        1,
        "leadership changed hands: {intervals:?}"
    );
    assert_eq!(intervals[0].end, None);
    check_leaders(&intervals).unwrap();
    assert_eq!(participant_ids(&admin, path, T).await, ["a", "b"]);
    a.stop().await;
    b.stop().await;
    wait_entries(&admin, path, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_stall_keeps_leadership() {
    short_outage_keeps_leadership(Outage::Stall).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_spike_keeps_leadership() {
    // 400 ms each way: round trips of 800 ms, more than the T/3 of silence that makes the
    // leader uncertain, less than the budget.
    short_outage_keeps_leadership(Outage::Delay(Duration::from_millis(400))).await;
}

// ---------------------------------------------------------------------------------------------
// A 3-node ensemble.

#[derive(Clone, Copy, Debug)]
enum MemberFault {
    KillLeader,
    KillFollower,
    FreezeLeader(Duration),
}

/// Three candidates on the full ensemble connect string; one member fails; the election keeps at
/// most one leader at a time with increasing tokens, every candidate is still in it afterwards,
/// it hands over on resign, and nothing is left after stop.
async fn ensemble_member_fault(fault: MemberFault) {
    let ensemble = Arc::new(tokio::task::block_in_place(|| ZkEnsemble::start(3)));
    let backend = direct(&ensemble.connect_string());
    let path = "/scen/ensemble/leader";
    let mut rec = Recorder::new();
    let cs = join_in_order(&backend, path, &["a", "b", "c"], &mut rec).await;
    let t0 = lead(&cs[0]).await;
    followers_settled(&cs).await;
    let sessions: Vec<_> = {
        let mut v = Vec::new();
        for c in &cs {
            v.push(c.client().session().await.id());
        }
        v
    };

    let zk_leader = ensemble.leader_index().expect("an ensemble leader");
    let started = Instant::now();
    let e = ensemble.clone();
    tokio::task::spawn_blocking(move || match fault {
        MemberFault::KillLeader => {
            e.member(zk_leader).kill();
            e.wait_for_quorum(Duration::from_secs(20)).expect("quorum");
        }
        MemberFault::KillFollower => {
            e.member((zk_leader + 1) % 3).kill();
            e.wait_for_quorum(Duration::from_secs(20)).expect("quorum");
        }
        MemberFault::FreezeLeader(d) => {
            e.member(zk_leader).freeze();
            std::thread::sleep(d);
            e.member(zk_leader).thaw();
            e.wait_for_all(Duration::from_secs(30))
                .expect("whole again");
        }
    })
    .await
    .unwrap();
    let quorum_after = started.elapsed();

    // Settled: one confirmed leader, the others following, all three still in the election.
    wait_until(
        "one confirmed leader and three participants",
        patience() * 2,
        || async {
            let leaders = cs.iter().filter(|c| confirmed_leader(&c.current())).count();
            let following = cs
                .iter()
                .filter(|c| matches!(c.current(), ElectionState::Follower { .. }))
                .count();
            leaders == 1 && following == 2 && {
                let mut ids = participant_ids(&backend, path, T).await;
                ids.sort();
                ids == ["a", "b", "c"]
            }
        },
    )
    .await;
    let settled = started.elapsed();
    let leader = cs.iter().find(|c| c.is_leader()).unwrap();
    let t1 = leader.token().unwrap();
    let mut renewed = Vec::new();
    for (c, s) in cs.iter().zip(&sessions) {
        if c.client().session().await.id() != *s {
            renewed.push(c.id().to_owned());
        }
    }
    let changes: Vec<(String, Reason)> = rec
        .events()
        .into_iter()
        .filter_map(|(id, e)| match e {
            Event::Transition(t) if t.at > started => Some((id, t.reason)),
            _ => None,
        })
        .collect();
    eprintln!(
        "measure: {fault:?} (ZooKeeper leader was member {zk_leader}): quorum after {quorum_after:?}, \
         election settled after {settled:?}; leader {} token {t0} -> {t1}; sessions renewed {renewed:?}; \
         transitions {changes:?}",
        leader.id()
    );
    assert!(t1 >= t0);

    // The election still works: a resignation hands over with a larger token. The successor is
    // the second in the queue as the service lists it now (a follower's own `position` is as of
    // its last listing: one whose predecessor stayed is not woken when an entry ahead of that
    // leaves, so after an expiry and a rejoin it can be stale).
    let queue = participant_ids(&backend, path, T).await;
    let next = cs
        .iter()
        .find(|c| queue.get(1).map(String::as_str) == Some(c.id()))
        .unwrap_or_else(|| panic!("no successor in {queue:?}"));
    leader.resign().await.unwrap();
    let t2 = lead(next).await;
    assert!(t2 > t1);
    sleep(Duration::from_millis(100)).await;
    check_leaders(&rec.leader_intervals()).unwrap();
    stop_all(&cs).await;
    wait_entries(&backend, path, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ensemble_leader_killed() {
    ensemble_member_fault(MemberFault::KillLeader).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ensemble_follower_killed() {
    ensemble_member_fault(MemberFault::KillFollower).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ensemble_leader_frozen_then_thawed() {
    ensemble_member_fault(MemberFault::FreezeLeader(T * 2)).await;
}

// ---------------------------------------------------------------------------------------------
// Server restart, administrators, foreign nodes, permissions, bad input.

/// A standalone server killed and restarted (same port and data dir) within the session
/// timeout: the sessions survive, and so does the leader's term (same token); nobody else leads.
///
/// The candidates ask for the longest session the server grants (20 ticks, 4 s) rather than the
/// scenarios' 2 s: the harness's restart (a new JVM) took 2.4-2.6 s on a loaded 2-core machine,
/// which failed the case's premise, and the case is about a restart that fits inside the timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_restart_within_session_timeout_keeps_the_term() {
    const T: Duration = Duration::from_secs(4);
    let zk = Arc::new(ZkServer::start());
    let backend = direct(&zk.connect_string());
    let path = "/scen/restart/leader";
    let mut rec = Recorder::new();
    let mut cs = Vec::new();
    for id in ["a", "b"] {
        let c = Candidate::builder(path, id)
            .session_timeout(T)
            .join(backend.clone())
            .await
            .unwrap_or_else(|e| panic!("{id} could not join {path}: {e}"));
        rec.watch(&c);
        wait_state(&c, "placed", patience(), |s| {
            matches!(
                s,
                ElectionState::Follower { .. } | ElectionState::Leader { .. }
            )
        })
        .await;
        cs.push(c);
    }
    let token = lead(&cs[0]).await;
    followers_settled(&cs).await;
    let sessions = [
        cs[0].client().session().await.id(),
        cs[1].client().session().await.id(),
    ];
    let started = Instant::now();
    let server = zk.clone();
    tokio::task::spawn_blocking(move || server.restart())
        .await
        .unwrap();
    let restarted = started.elapsed();
    wait_state(&cs[0], "leading, confirmed", patience(), confirmed_leader).await;
    eprintln!(
        "measure: restart took {restarted:?}; leader confirmed again after {:?}; a's transitions {:?}",
        started.elapsed(),
        rec.transitions("a")
            .iter()
            .map(|t| (t.to.name(), t.reason.clone()))
            .collect::<Vec<_>>()
    );
    assert!(
        restarted < T,
        "the restart took {restarted:?}: no session could survive it"
    );
    assert_eq!(cs[0].token(), Some(token));
    assert_eq!(cs[0].client().session().await.id(), sessions[0]);
    assert_eq!(cs[1].client().session().await.id(), sessions[1]);
    sleep(Duration::from_millis(300)).await;
    assert!(!cs[1].is_leader());
    let intervals = rec.leader_intervals();
    assert!(
        intervals
            .iter()
            .all(|i| i.candidate == "a" && i.token == token),
        "{intervals:?}"
    );
    check_leaders(&intervals).unwrap();
    assert_eq!(participant_ids(&backend, path, T).await, ["a", "b"]);
    stop_all(&cs).await;
    wait_entries(&backend, path, 0).await;
}

/// L5, S2, S3: an administrator deletes the whole election subtree (entries, directory and its
/// parent) in one transaction, five times over: candidates report it, re-create it, and a leader
/// exists again with a larger token; never two leaders at once.
///
/// Fails (about 40% of single deletions, so almost always over five): the follower next in line
/// hears its predecessor (the head) go and claims at once, on the shortcut that skips the listing
/// (`on_predecessor_gone`, "nothing can sort between"), although its own entry went in the same
/// transaction; it leaves Leader only when its own watch fires a moment later, while the old
/// leader still leads: an unverified claim (S3) and two leaders at once (S2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_deletes_the_election_root() {
    let zk = ZkServer::start();
    let connect = zk.connect_string();
    let backend = direct(&connect);
    let parent = "/scen/root-gone";
    let path = "/scen/root-gone/leader";
    let mut rec = Recorder::new();
    let cs = join_in_order(&backend, path, &["a", "b"], &mut rec).await;
    let admin = raw(&connect, T).await;
    for round in 0..5 {
        wait_until(
            "one leader, one follower knowing it",
            patience(),
            || async {
                cs.iter().filter(|c| confirmed_leader(&c.current())).count() == 1
                    && cs.iter().any(|c| {
                        matches!(
                            c.current(),
                            ElectionState::Follower {
                                leader: Some(_),
                                ..
                            }
                        )
                    })
            },
        )
        .await;
        let t0 = cs.iter().find_map(|c| c.token()).unwrap();
        let deleted_at = Instant::now();
        let mut deleted = false;
        for _ in 0..20 {
            let children = raw_children(&admin, path).await;
            let mut tx = admin.new_multi_writer();
            for child in &children {
                tx.add_delete(&format!("{path}/{child}"), None).unwrap();
            }
            tx.add_delete(path, None).unwrap();
            tx.add_delete(parent, None).unwrap();
            if tx.commit().await.is_ok() {
                deleted = true;
                break;
            }
        }
        assert!(deleted, "could not delete the election root");
        wait_until("a new leader with a larger token", patience(), || async {
            cs.iter().filter(|c| c.is_leader()).count() == 1
                && cs.iter().filter_map(|c| c.token()).any(|t| t > t0)
        })
        .await;
        eprintln!(
            "measure: round {round}: root deleted -> new leader within {:?}",
            deleted_at.elapsed()
        );
        wait_entries(&backend, path, 2).await;
    }
    for id in ["a", "b"] {
        let reasons: Vec<Reason> = rec.transitions(id).into_iter().map(|t| t.reason).collect();
        assert!(reasons.contains(&Reason::EntryDeleted), "{id}: {reasons:?}");
    }
    let intervals = rec.leader_intervals();
    if let Err(v) = check_leaders(&intervals) {
        let first = intervals[0].start;
        for (id, e) in rec.events() {
            if let Event::Transition(t) = e {
                eprintln!(
                    "  {id} at +{:?}: {} -> {} ({:?})",
                    t.at.saturating_duration_since(first),
                    t.from.name(),
                    t.to.name(),
                    t.reason
                );
            }
        }
        panic!("{v}");
    }
    stop_all(&cs).await;
    wait_entries(&backend, path, 0).await;
}

/// L5 (CURATOR-171): an administrator deletes the leader's entry: it reports it and rejoins at
/// the tail; the next in line leads with a larger token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_deletes_the_leader_entry() {
    let zk = ZkServer::start();
    let connect = zk.connect_string();
    let backend = direct(&connect);
    let path = "/scen/entry-gone/leader";
    let mut rec = Recorder::new();
    let cs = join_in_order(&backend, path, &["a", "b", "c"], &mut rec).await;
    let t0 = lead(&cs[0]).await;
    followers_settled(&cs).await;

    let admin = raw(&connect, T).await;
    let listing = {
        let s = backend.open_session(T).await.unwrap();
        let l = s.list(&ElectionPath::new(path).unwrap()).await.unwrap();
        s.close().await;
        l
    };
    let head = &listing.entries[0].name;
    admin
        .delete(&format!("{path}/{head}"), None)
        .await
        .expect("delete the leader's entry");
    let t1 = lead(&cs[1]).await;
    assert!(t1 > t0);
    wait_until("a rejoined at the tail", patience(), || async {
        participant_ids(&backend, path, T).await == ["b", "c", "a"]
    })
    .await;
    let reasons: Vec<Reason> = rec.transitions("a").into_iter().map(|t| t.reason).collect();
    assert!(reasons.contains(&Reason::EntryDeleted), "{reasons:?}");
    // The entry went from under the leader: it and its successor hear of it at the same moment,
    // so the hand-over is only as tight as the two notifications.
    let a = interval_of(&mut rec, "a").await;
    let b = interval_of(&mut rec, "b").await;
    let a_end = a.end.expect("a stepped down");
    eprintln!(
        "measure: admin delete: a left Leader {:?} {} b entered it",
        if a_end <= b.start {
            b.start - a_end
        } else {
            a_end - b.start
        },
        if a_end <= b.start { "before" } else { "AFTER" }
    );
    assert!(a_end <= b.start + SLACK);
    assert!(a.token < b.token);
    cs[1].resign().await.unwrap();
    assert!(lead(&cs[2]).await > t1);
    stop_all(&cs).await;
    wait_entries(&backend, path, 0).await;
}

/// Three elections over one session: each leads; after stop no znode is left under any of
/// them (read with a plain zookeeper-client session, while the shared session is still open).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_elections_over_one_session_leave_nothing() {
    let zk = ZkServer::start();
    let connect = zk.connect_string();
    let client = Client::connect(direct(&connect), T).await.unwrap();
    let paths = ["/scen/multi/one", "/scen/multi/two", "/scen/other/three"];
    let mut cs = Vec::new();
    for p in paths {
        let config = Candidate::builder(p, "node").build().unwrap();
        cs.push(client.join(config).await.unwrap());
    }
    let mut tokens = Vec::new();
    for c in &cs {
        tokens.push(lead(c).await);
    }
    tokens.sort();
    tokens.dedup();
    assert_eq!(tokens.len(), 3);
    let session = client.session().await.id();
    let admin = raw(&connect, T).await;
    for (p, c) in paths.iter().zip(&cs) {
        assert_eq!(c.client().session().await.id(), session);
        assert_eq!(raw_children(&admin, p).await.len(), 1);
    }
    stop_all(&cs).await;
    for p in paths {
        assert_eq!(
            raw_children(&admin, p).await,
            Vec::<String>::new(),
            "left under {p}"
        );
    }
    // And nothing ephemeral of that session anywhere.
    assert_eq!(
        admin.list_ephemerals("/").await.unwrap(),
        Vec::<String>::new()
    );
    client.close().await;
}

/// A foreign node in the election directory is ignored and reported, never counted, and the
/// election works around it (and leaves it alone).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_node_is_ignored_and_reported() {
    let zk = ZkServer::start();
    let connect = zk.connect_string();
    let backend = direct(&connect);
    let path = "/scen/foreign/leader";
    let admin = raw(&connect, T).await;
    admin.mkdir(path, &persistent()).await.unwrap();
    // Named like another recipe's lock node, and sorting before any election entry.
    let foreign = "lock-0000000000";
    admin
        .create(&format!("{path}/{foreign}"), b"not an entry", &persistent())
        .await
        .unwrap();

    let mut rec = Recorder::new();
    let cs = join_in_order(&backend, path, &["a", "b"], &mut rec).await;
    let t0 = lead(&cs[0]).await;
    followers_settled(&cs).await;
    for id in ["a", "b"] {
        let reported = rec.events().into_iter().any(|(c, e)| {
            c == id
                && matches!(&e, Event::Notice { notice: Notice::ForeignEntries(f), .. } if f == &[foreign.to_owned()])
        });
        assert!(reported, "{id} did not report the foreign node");
    }
    assert_eq!(participant_ids(&backend, path, T).await, ["a", "b"]);
    assert_eq!(
        cs[1].current(),
        ElectionState::Follower {
            position: 1,
            leader: cs[1].current_leader().await.unwrap().map(Arc::new)
        }
    );
    cs[0].resign().await.unwrap();
    assert!(lead(&cs[1]).await > t0);
    stop_all(&cs).await;
    wait_entries(&backend, path, 0).await;
    assert_eq!(raw_children(&admin, path).await, [foreign]);
}

/// NoAuth: a candidate without permission on the election path (or on the parent it would have
/// to create) stops with a typed `Failed`, promptly, and leaves nothing behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_permission_fails_typed_and_leaves_nothing() {
    let zk = ZkServer::start();
    let connect = zk.connect_string();
    let owner: Arc<dyn CoordinationBackend> = Arc::new(
        ZkBackend::builder(connect.as_str())
            .digest_auth("alice", "secret")
            .node_acl(NodeAcl::CreatorAll)
            .build()
            .unwrap(),
    );
    // alice creates /secure/leader (and /secure) with creator-all ACLs, then leaves it empty.
    let alice = owner.open_session(T).await.unwrap();
    let dir = ElectionPath::new("/secure/leader").unwrap();
    let entry = alice
        .create(&dir, &Marker::from_bits(1), b"")
        .await
        .unwrap();
    alice.delete(&dir, &entry.name).await.unwrap();

    let stranger = direct(&connect);
    for path in ["/secure/leader", "/secure/other/leader"] {
        let started = Instant::now();
        let c = join(&stranger, path, "mallory").await;
        let end = wait_state(&c, "stopped", T, |s| matches!(s, ElectionState::Stopped(_))).await;
        eprintln!(
            "measure: NoAuth on {path}: {end:?} after {:?}",
            started.elapsed()
        );
        match end {
            ElectionState::Stopped(StopReason::Failed(why)) => {
                assert!(!why.is_empty());
            }
            other => panic!("{path}: {other:?}"),
        }
        c.stop().await;
    }
    let l = alice.list(&dir).await.unwrap();
    assert!(l.entries.is_empty() && l.foreign.is_empty(), "{l:?}");
    let other = ElectionPath::new("/secure/other/leader").unwrap();
    assert_eq!(alice.list(&other).await.unwrap(), Default::default());
    let admin = raw(&connect, T).await;
    assert_eq!(raw_children(&admin, "/secure/other").await.len(), 0);
    alice.close().await;
}

/// Bad connect strings are typed configuration errors before any connection; an address nobody
/// listens on fails the join with a typed error within the connection timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_or_unreachable_ensemble_is_a_typed_error() {
    for bad in [
        "127.0.0.1:notaport",
        "",
        "127.0.0.1:0",
        "host:2181,,other:2181",
    ] {
        match ZkBackend::builder(bad).build() {
            Err(ConfigError::Backend { what, .. }) => assert_eq!(what, "connect string"),
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    // A loopback port with nothing listening: bind one, note it, free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    for (bound, backend) in [
        (
            Duration::from_millis(500),
            ZkBackend::builder(addr.as_str())
                .connection_timeout(Duration::from_millis(500))
                .build()
                .unwrap(),
        ),
        // Without a connection timeout, the session timeout bounds it.
        (T, ZkBackend::builder(addr.as_str()).build().unwrap()),
    ] {
        let started = Instant::now();
        let err = Candidate::builder("/scen/unreachable", "a")
            .session_timeout(T)
            .join(backend)
            .await
            .unwrap_err();
        let took = started.elapsed();
        eprintln!("measure: unreachable ensemble fails in {took:?} (bound {bound:?}): {err}");
        match &err {
            ElectionError::Backend(e) => assert_eq!(e.kind(), ErrorKind::Other, "{err}"),
            other => panic!("{other:?}"),
        }
        assert!(took <= bound + SLACK, "took {took:?}");
    }
}

/// Issue 17, point 10, on a real server: ZooKeeper's data is lost (the data dir wiped while the
/// server is down) and the server comes back empty. The sessions are gone, the candidate
/// rejoins, and its new term's token (a czxid) is far lower than the one before: tokens do not
/// increase across such a loss. The candidate says so, with a notice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_going_back_after_data_loss_are_reported() {
    let zk = Arc::new(ZkServer::start());
    let connect = zk.connect_string();
    let admin = raw(&connect, T).await;
    // Some history, so that the term's czxid is well above what an empty server starts from.
    for i in 0..30 {
        admin
            .create(&format!("/history-{i}"), &[], &persistent())
            .await
            .unwrap();
    }
    drop(admin);
    let backend = direct(&connect);
    let a = join(&backend, "/scen/lost/leader", "a").await;
    let mut events = a.events();
    let before = lead(&a).await;
    let server = zk.clone();
    tokio::task::spawn_blocking(move || {
        server.kill();
        let data = server.data_dir();
        for entry in std::fs::read_dir(&data).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                std::fs::remove_dir_all(&path).unwrap();
            } else if path.file_name().is_some_and(|n| n != "myid") {
                std::fs::remove_file(&path).unwrap();
            }
        }
        server.restart();
    })
    .await
    .unwrap();
    wait_until(
        "a leads again, with a new token",
        patience() * 2,
        || async { a.current().token().is_some_and(|t| t != before) },
    )
    .await;
    let after = a.current().token().unwrap();
    eprintln!("measure: token {before} before the data loss, {after} after");
    assert!(after < before, "{after} < {before}");
    let mut went_back = None;
    while let Ok(event) = events.try_recv() {
        if let Event::Notice {
            notice: notice @ Notice::TokenWentBack { .. },
            ..
        } = event
        {
            went_back = Some(notice);
        }
    }
    assert_eq!(
        went_back,
        Some(Notice::TokenWentBack {
            token: after,
            last: before
        })
    );
    a.stop().await;
}
