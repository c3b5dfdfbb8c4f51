//! A mixed fleet on one real ZooKeeper 3.8 server: stock Curator 5.4 (`LeaderLatch`, and
//! `InterProcessMutex` as the Maxwell HA patch uses it) and kazoo 2.8 (`Election`) contenders,
//! run as real peer processes (`tests/peers/`), on the same path as an `election` candidate.
//! A candidate of ours with a stock peer ahead of it never leads until the peer gives up, then
//! leads; checked from the peers' own reports ("LEADER", "NOT_LEADER" on their stdout), our
//! candidate's recorded transitions, and the server's children.
//!
//! Needs Debian's `libcurator-framework-java`, `libcurator-recipes-java`,
//! `libcurator-client-java` and `python3-kazoo` (`scripts/test.sh` installs them), `javac`, and
//! `/usr/bin/python3` (Debian's, which sees python3-kazoo; a pyenv `python3` does not).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use election_core::foreign::zookeeper_sequence;
use election_core::testing::recorder::Recorder;
use election_core::{
    Candidate, Compatibility, CoordinationBackend, ElectionState, Event, Implementation, Notice,
};
use election_tests::candidates::{lead, patience, SLACK, T};
use election_tests::peers;
use election_tests::scenario::{direct, raw, raw_children, wait_state};
use election_zk::testing::ZkServer;
use election_zk::EntryName;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// `CuratorPeer.java` compiled once per test binary into a temporary directory.
fn curator_classes() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir =
            std::env::temp_dir().join(format!("election-curator-peer-{}", std::process::id()));
        peers::compile_curator("CuratorPeer.java", &dir).unwrap_or_else(|e| panic!("{e}"));
        dir
    })
}

/// A peer process of another implementation; killed and reaped on drop.
struct Peer {
    name: &'static str,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::UnboundedReceiver<(Instant, String)>,
    transcript: Vec<(Instant, String)>,
}

impl Peer {
    fn curator(connect: &str, path: &str, id: &str, mode: &str) -> Self {
        let classes = curator_classes();
        let cmd = Command::new("java")
            .args([
                "-Xmx64m",
                "-XX:+UseSerialGC",
                "-XX:TieredStopAtLevel=1",
                "-Djava.net.preferIPv4Stack=true",
                "-cp",
                &peers::curator_classpath(Some(classes)),
                "CuratorPeer",
                connect,
                path,
                id,
                mode,
                &T.as_millis().to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("java could not run: {e}"));
        Self::new("curator", cmd)
    }

    fn kazoo(connect: &str, path: &str, id: &str) -> Self {
        peers::check_kazoo("kazoo_peer.py").unwrap_or_else(|e| panic!("{e}"));
        let cmd = Command::new(peers::PYTHON)
            .arg(peers::peers_dir().join("kazoo_peer.py"))
            .args([connect, path, id, &T.as_millis().to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("{} could not run: {e}", peers::PYTHON));
        Self::new("kazoo", cmd)
    }

    fn new(name: &'static str, mut child: Child) -> Self {
        let stdout = child.stdout.take().expect("piped stdout");
        let stdin = child.stdin.take();
        let (tx, lines) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        Self {
            name,
            child,
            stdin,
            lines,
            transcript: Vec::new(),
        }
    }

    /// The next line starting with `prefix` (bounded): its text and when it was read.
    async fn expect(&mut self, prefix: &str, limit: Duration) -> (Instant, String) {
        let deadline = Instant::now() + limit;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some((at, line))) => {
                    self.transcript.push((at, line.clone()));
                    assert!(!line.starts_with("ERROR"), "{} peer: {line}", self.name);
                    if line.starts_with(prefix) {
                        return (at, line);
                    }
                }
                Ok(None) => panic!(
                    "{} peer exited before saying {prefix:?}; it said {:?}",
                    self.name, self.transcript
                ),
                Err(_) => panic!(
                    "{} peer did not say {prefix:?} within {limit:?}; it said {:?}",
                    self.name, self.transcript
                ),
            }
        }
    }

    /// Its node's name and when it said it leads (the two lines come in either order).
    async fn node_and_leader(&mut self) -> (String, Instant) {
        let (mut node, mut leading) = (None, None);
        while node.is_none() || leading.is_none() {
            let (at, line) = self.expect("", patience()).await;
            if let Some(name) = line.strip_prefix("NODE ") {
                node = Some(name.to_owned());
            } else if line == "LEADER" {
                leading = Some(at);
            }
        }
        (
            node.unwrap_or_default(),
            leading.unwrap_or_else(Instant::now),
        )
    }

    /// Every line said so far, kept in the transcript; fails on an `ERROR` line.
    fn drain(&mut self) {
        while let Ok((at, line)) = self.lines.try_recv() {
            assert!(!line.starts_with("ERROR"), "{} peer: {line}", self.name);
            self.transcript.push((at, line));
        }
    }

    /// Its leader intervals, from its own reports: `LEADER` to `NOT_LEADER` (or still open).
    fn leader_intervals(&mut self) -> Vec<(Instant, Option<Instant>)> {
        self.drain();
        let mut out: Vec<(Instant, Option<Instant>)> = Vec::new();
        for (at, line) in &self.transcript {
            match line.as_str() {
                "LEADER" => out.push((*at, None)),
                "NOT_LEADER" => {
                    if let Some(last) = out.last_mut().filter(|l| l.1.is_none()) {
                        last.1 = Some(*at);
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// Tells the peer to give up (close its latch, release its lock, leave its election).
    fn close(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = writeln!(stdin, "CLOSE");
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Our candidate joins behind `peer`, which leads: it waits (a follower whose leader is the
/// peer, reported as `implementation` with its id), never leads while the peer holds its node,
/// and leads once the peer gives up.
async fn ours_waits_for(
    server: &ZkServer,
    path: &str,
    mut peer: Peer,
    implementation: Implementation,
    peer_id: Option<&str>,
) {
    let (node, _) = peer.node_and_leader().await;
    let backend: Arc<dyn CoordinationBackend> = direct(&server.connect_string());
    let mut rec = Recorder::new();
    let ours = Candidate::builder(path, "ours-1")
        .session_timeout(T)
        .join(backend)
        .await
        .expect("join");
    rec.watch(&ours);
    let mut events = ours.events();
    let state = wait_state(&ours, "waiting behind the peer", patience(), |s| {
        matches!(s, ElectionState::Follower { leader: Some(l), .. } if l.implementation == implementation)
    })
    .await;
    let ElectionState::Follower {
        position: 1,
        leader: Some(leader),
    } = state
    else {
        panic!("not first behind the peer: {state:?}");
    };
    if let Some(id) = peer_id {
        assert_eq!(leader.id, id, "{leader:?}");
    }
    // Reported, with the implementation it looks like.
    let mut reported = false;
    while let Ok(e) = events.try_recv() {
        if let Event::Notice {
            notice: Notice::ForeignContenders(c),
            ..
        } = e
        {
            reported |= c.len() == 1 && c[0].name == node && c[0].implementation == implementation;
        }
    }
    assert!(reported, "the contender {node} was not reported");
    // A while behind it: never leads.
    tokio::time::sleep(T / 2).await;
    assert!(!ours.is_leader(), "led beside the {} peer", peer.name);
    let closed_at = Instant::now();
    peer.close();
    let (peer_stopped, _) = peer.expect("NOT_LEADER", patience()).await;
    let token = lead(&ours).await;
    let intervals = rec.leader_intervals();
    assert_eq!(intervals.len(), 1, "{intervals:?}");
    assert!(
        intervals[0].start >= closed_at,
        "led before the peer was told to close"
    );
    assert!(
        intervals[0].start + SLACK >= peer_stopped,
        "led {:?} before the peer said it stopped",
        peer_stopped - intervals[0].start
    );
    // The server agrees: the peer's node is gone, ours is the only child.
    let admin = raw(&server.connect_string(), T).await;
    let children = raw_children(&admin, path).await;
    assert!(!children.contains(&node), "{children:?}");
    assert_eq!(children.len(), 1, "{children:?}");
    println!(
        "{implementation:?}: ours led with token {token} {:?} after the peer said NOT_LEADER",
        intervals[0].start.saturating_duration_since(peer_stopped)
    );
    peer.expect("CLOSED", patience()).await;
    ours.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curator_latch_ahead_is_waited_for_then_ours_leads() {
    let server = ZkServer::start();
    let path = "/mixed/curator-latch";
    let peer = Peer::curator(&server.connect_string(), path, "curator-1", "latch");
    ours_waits_for(
        &server,
        path,
        peer,
        Implementation::CuratorLatch,
        Some("curator-1"),
    )
    .await;
}

/// The Maxwell HA patch: a Curator `InterProcessMutex` on a fixed path (its node's data is the
/// host's address, not an id: shown, never trusted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curator_mutex_ahead_is_waited_for_then_ours_leads() {
    let server = ZkServer::start();
    let path = "/mixed/curator-mutex";
    let peer = Peer::curator(&server.connect_string(), path, "curator-2", "mutex");
    ours_waits_for(&server, path, peer, Implementation::CuratorLock, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kazoo_election_ahead_is_waited_for_then_ours_leads() {
    let server = ZkServer::start();
    let path = "/mixed/kazoo";
    let peer = Peer::kazoo(&server.connect_string(), path, "kazoo-1");
    ours_waits_for(&server, path, peer, Implementation::Kazoo, Some("kazoo-1")).await;
}

/// One member of a mixed queue: a stock peer, or a candidate of ours in a compatibility mode.
enum Member {
    Theirs(Peer),
    Ours(Candidate),
}

/// The election children of `path` on the server, ascending by sequence.
async fn children_by_sequence(admin: &zookeeper_client::Client, path: &str) -> Vec<String> {
    let mut children = raw_children(admin, path).await;
    children.sort_by_key(|c| zookeeper_sequence(c));
    children
}

/// In compatibility mode `mode`, three stock peers (`new_peer`) and three candidates of ours
/// join one path in turn (theirs, ours, theirs, ours, ...): the server's sequences interleave
/// them. Each round the head leads, alone (checked from ours' states, the peers' own reports
/// and the server's children: the leader's node is the first by sequence), then gives up, and
/// the next by sequence leads, whichever implementation it is. Every leader interval (ours
/// from their transitions, the peers' from their `LEADER`/`NOT_LEADER` lines) is disjoint from
/// the others, within the line-reading slack.
async fn mixed_queue_hands_over_in_sequence_order(
    path: &str,
    mode: Compatibility,
    new_peer: impl Fn(&str, &str) -> Peer,
) {
    let server = ZkServer::start();
    let connect = server.connect_string();
    let admin = raw(&connect, T).await;
    let backend: Arc<dyn CoordinationBackend> = direct(&connect);
    let mut rec = Recorder::new();
    let mut members: Vec<(String, Member)> = Vec::new();
    for i in 1..=3 {
        let mut peer = new_peer(&connect, &format!("theirs-{i}"));
        let (_, line) = peer.expect("NODE ", patience()).await;
        let node = line["NODE ".len()..].to_owned();
        members.push((node, Member::Theirs(peer)));
        let before = raw_children(&admin, path).await;
        let ours = Candidate::builder(path, format!("ours-{i}"))
            .session_timeout(T)
            .compatibility(mode)
            .join(backend.clone())
            .await
            .expect("join");
        rec.watch(&ours);
        wait_state(&ours, "registered", patience(), |s| {
            !matches!(s, ElectionState::Joining)
        })
        .await;
        let after = raw_children(&admin, path).await;
        let new: Vec<_> = after.into_iter().filter(|c| !before.contains(c)).collect();
        assert_eq!(new.len(), 1, "{new:?}");
        let parsed = EntryName::parse(&new[0]).expect("our entry reads as ours");
        assert_eq!(parsed.compatibility, Some(mode), "{}", new[0]);
        // The stock implementation's own rule sees it as its own kind, at its sequence.
        assert_eq!(Implementation::of_foreign(&new[0]), mode.implementation());
        members.push((new[0].clone(), Member::Ours(ours)));
    }
    // Joined one after another: the server's order is the join order.
    let names: Vec<String> = members.iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(children_by_sequence(&admin, path).await, names);
    // From the previous leader being told to give up to the next one leading.
    let mut rounds = Vec::new();
    let mut closed_at = Instant::now();
    for round in 0..members.len() {
        let head = members[round].0.clone();
        match &mut members[round].1 {
            Member::Theirs(peer) => {
                // It may have said so already (read while waiting for its NODE line).
                peer.drain();
                if !peer.transcript.iter().any(|(_, l)| l == "LEADER") {
                    peer.expect("LEADER", patience()).await;
                }
            }
            Member::Ours(c) => {
                lead(c).await;
            }
        }
        rounds.push(closed_at.elapsed());
        // Alone: the server's first child is the head's; nobody behind it leads by its own
        // report or state.
        assert_eq!(
            children_by_sequence(&admin, path).await.first(),
            Some(&head)
        );
        for (name, m) in &mut members[round + 1..] {
            match m {
                Member::Theirs(p) => {
                    p.drain();
                    assert!(
                        !p.transcript.iter().any(|(_, l)| l == "LEADER"),
                        "{name} leads beside the head {head}"
                    );
                }
                Member::Ours(c) => assert!(!c.is_leader(), "{name} leads beside {head}"),
            }
        }
        // Ours behind a head of theirs says who leads, and as which implementation.
        if let (Member::Theirs(_), Some((_, Member::Ours(next)))) =
            (&members[round].1, members.get(round + 1))
        {
            let ElectionState::Follower {
                leader: Some(l), ..
            } = next.current()
            else {
                panic!("{:?}", next.current());
            };
            assert_eq!(l.implementation, mode.implementation());
            // InterProcessMutex writes the host's address, the others their id.
            if mode == Compatibility::CuratorLock {
                assert!(!l.id.is_empty(), "{l:?}");
            } else {
                assert!(l.id.starts_with("theirs-"), "{l:?}");
            }
        }
        closed_at = Instant::now();
        match &mut members[round].1 {
            Member::Theirs(peer) => {
                peer.close();
                peer.expect("NOT_LEADER", patience()).await;
                peer.expect("CLOSED", patience()).await;
            }
            Member::Ours(c) => c.stop().await,
        }
    }
    assert!(children_by_sequence(&admin, path).await.is_empty());
    // Every leader interval, both sides' reports: one at a time, in queue order.
    let mut intervals: Vec<(Instant, Instant, String)> = Vec::new();
    for i in rec.leader_intervals() {
        intervals.push((i.start, i.end.expect("ours stopped"), i.candidate.clone()));
    }
    for (name, m) in &mut members {
        if let Member::Theirs(p) = m {
            let mine = p.leader_intervals();
            assert_eq!(mine.len(), 1, "{name}: {mine:?}");
            intervals.push((mine[0].0, mine[0].1.expect("peer stopped"), name.clone()));
        }
    }
    intervals.sort_by_key(|i| i.0);
    assert_eq!(intervals.len(), members.len(), "{intervals:?}");
    for w in intervals.windows(2) {
        // A peer's lines are read a little after it says them: its NOT_LEADER may be read
        // after ours has claimed (never by more than the slack).
        assert!(
            w[1].0 + SLACK >= w[0].1,
            "{} led {:?} before {} stopped",
            w[1].2,
            w[0].1 - w[1].0,
            w[0].2
        );
    }
    let order: Vec<&str> = intervals.iter().map(|i| i.2.as_str()).collect();
    let ours_named: Vec<String> = members
        .iter()
        .map(|(n, m)| match m {
            Member::Theirs(_) => n.clone(),
            Member::Ours(c) => c.id().to_owned(),
        })
        .collect();
    assert_eq!(order, ours_named, "leaders out of sequence order");
    println!("{mode}: 6 members, hand-overs in sequence order; time from one leader giving up to the next leading {:?}", &rounds[1..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curator_latch_mode_hands_over_in_sequence_order() {
    mixed_queue_hands_over_in_sequence_order(
        "/compat/curator-latch",
        Compatibility::CuratorLatch,
        |connect, id| Peer::curator(connect, "/compat/curator-latch", id, "latch"),
    )
    .await;
}

/// The Maxwell HA patch's `InterProcessMutex`, sharing its path with ours.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curator_lock_mode_hands_over_in_sequence_order() {
    mixed_queue_hands_over_in_sequence_order(
        "/compat/curator-lock",
        Compatibility::CuratorLock,
        |connect, id| Peer::curator(connect, "/compat/curator-lock", id, "mutex"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kazoo_mode_hands_over_in_sequence_order() {
    mixed_queue_hands_over_in_sequence_order(
        "/compat/kazoo",
        Compatibility::Kazoo,
        |connect, id| Peer::kazoo(connect, "/compat/kazoo", id),
    )
    .await;
}
