//! Fault scenarios on real etcd 3.4 members started by the harness: a candidate process killed
//! with SIGKILL, a leader partitioned through the proxy, an administrator deleting the leader's
//! key, the whole prefix, or revoking the leader's lease, a foreign key, and bad or unreachable
//! endpoints. Each test has its own member, a 2 s session timeout (the least TTL the members
//! grant), bounded waits, and checks the contract's invariants over what it recorded.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use election_core::testing::invariants::{check_leaders, check_work};
use election_core::testing::recorder::{Recorder, WorkLog};
use election_core::testing::Harness;
use election_core::{
    Candidate, ConfigError, CoordinationBackend, ElectionPath, ElectionState, ErrorKind, Reason,
};
use election_etcd::testing::EtcdMember;
use election_etcd::EtcdBackend;
use election_tests::etcd::EtcdHarness;
use election_tests::scenario::{participant_ids, wait_state, wait_until};
use etcd_client::{DeleteOptions, GetOptions};
use tokio::sync::mpsc;
use tokio::time::{sleep, Instant};

use election_tests::candidates::{
    entry_count, followers_settled, interval_of, join, join_in_order, lead, patience, stop_all,
    wait_entries, SLACK, T,
};

fn direct(endpoint: &str) -> Arc<dyn CoordinationBackend> {
    Arc::new(
        EtcdBackend::builder([endpoint])
            .build()
            .expect("valid endpoint"),
    )
}

/// A plain etcd client, for what an administrator or another tool would do.
async fn raw(endpoint: &str) -> etcd_client::Client {
    etcd_client::Client::connect([endpoint], None)
        .await
        .unwrap_or_else(|e| panic!("raw etcd client to {endpoint}: {e}"))
}

// ---------------------------------------------------------------------------------------------
// A candidate in a separate OS process, killed with SIGKILL.

/// The `etcd_candidate` child; killed and reaped on drop, also when a test fails.
struct ChildCandidate {
    child: Child,
    lines: mpsc::UnboundedReceiver<String>,
    transcript: Vec<String>,
}

impl ChildCandidate {
    fn spawn(endpoint: &str, path: &str, id: &str) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_etcd_candidate"))
            .args([endpoint, path, id, &T.as_millis().to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn etcd_candidate");
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
                Ok(None) => panic!("etcd_candidate exited; said {:?}", self.transcript),
                Err(_) => panic!(
                    "etcd_candidate said no {prefix} within {limit:?}; said {:?}",
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

/// L1, S2: a leader in another process killed with SIGKILL (no revoke, no withdrawal) is
/// succeeded once its lease expires: not before about the TTL, and within it plus a margin, by a
/// successor with a larger token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_leader_process_is_succeeded_after_lease_expiry() {
    let etcd = EtcdMember::start();
    let endpoint = etcd.endpoint();
    let path = "/scen/sigkill/leader";
    let mut child = ChildCandidate::spawn(&endpoint, path, "child");
    let leader_line = child.expect("LEADER", patience()).await;
    let child_token: u64 = leader_line
        .split_whitespace()
        .nth(1)
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("bad line {leader_line:?}"));

    let backend = direct(&endpoint);
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
    eprintln!("measure: SIGKILL -> successor leads in {took:?} (lease TTL {T:?})");
    // The leader last renewed the lease at most one keep-alive period (T/6) before the kill; etcd
    // checks expiry every 500 ms and revokes through raft.
    assert!(
        took + SLACK >= T,
        "successor led {took:?} after the SIGKILL, before the lease could expire"
    );
    assert!(
        took <= T + Duration::from_millis(1500),
        "failover took {took:?}"
    );
    assert!(token.0 > child_token, "token {token} after {child_token}");
    check_leaders(&rec.leader_intervals()).unwrap();
    b.stop().await;
    wait_entries(&backend, path, 0).await;
}

// ---------------------------------------------------------------------------------------------
// A partition through the proxy.

/// S2, S4, L4: a leader with running work stalled off etcd steps down (its work stopped first)
/// before its lease can expire, and before its successor starts; after the partition heals it
/// rejoins at the tail with a new lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_leader_with_work_steps_down_before_expiry() {
    let h = EtcdHarness::start();
    let admin = direct(&h.member().endpoint());
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
    assert!(a_end < cut_at + T, "a led past the lease TTL");
    assert!(
        a_end <= cut_at + budget + Duration::from_millis(100),
        "a left {:?} after the cut; budget {budget:?}",
        a_end - cut_at
    );
    assert!(a_end <= b.start);
    assert!(
        b.start + SLACK >= cut_at + T,
        "b led {:?} after the cut, before a's lease could expire",
        b.start - cut_at
    );
    wait_until("b's work started", patience(), || async {
        log.spans().iter().any(|s| s.candidate == "b")
    })
    .await;
    let spans = log.spans();
    let a_work = spans.iter().find(|s| s.candidate == "a").expect("a worked");
    let a_work_end = a_work.end.expect("a's work stopped");
    assert!(a_work_end < cut_at + T, "a's work ran past the lease TTL");
    let b_work = spans.iter().find(|s| s.candidate == "b").expect("b worked");
    eprintln!(
        "measure: a's work ended {:?} after the cut, b's began {:?} after it",
        a_work_end - cut_at,
        b_work.start - cut_at
    );
    assert!(a_work_end <= b_work.start, "a's work ended after b's began");
    check_work(&spans).unwrap();

    // Healed: a's lease is gone; it rejoins by itself, with a new lease, at the tail.
    h.heal(session).await;
    wait_until("a rejoined at the tail", patience(), || async {
        participant_ids(&admin, path, T).await == ["b", "c", "a"]
    })
    .await;
    assert_ne!(cs[0].client().session().await.id(), session);
    let reasons: Vec<Reason> = rec.transitions("a").into_iter().map(|t| t.reason).collect();
    assert!(reasons.contains(&Reason::StepDownDeadline), "{reasons:?}");
    assert!(reasons.contains(&Reason::Rejoining), "{reasons:?}");

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

// ---------------------------------------------------------------------------------------------
// An administrator at work.

/// The key of the head entry of `path`, as an administrator finds it.
async fn head_key(client: &mut etcd_client::Client, path: &str) -> (String, i64) {
    let resp = client
        .get(
            format!("{path}/"),
            Some(GetOptions::new().with_prefix().with_sort(
                etcd_client::SortTarget::Create,
                etcd_client::SortOrder::Ascend,
            )),
        )
        .await
        .expect("range");
    let kv = resp.kvs().first().expect("an entry");
    (kv.key_str().unwrap().to_owned(), kv.lease())
}

/// L5 (CURATOR-171): an administrator deletes the leader's key: it reports it and rejoins at the
/// tail; the next in line leads with a larger token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_deletes_the_leader_key() {
    let etcd = EtcdMember::start();
    let backend = direct(&etcd.endpoint());
    let path = "/scen/admin-delete/leader";
    let mut rec = Recorder::new();
    let cs = join_in_order(&backend, path, &["a", "b"], &mut rec).await;
    let t0 = lead(&cs[0]).await;
    followers_settled(&cs).await;
    let mut admin = raw(&etcd.endpoint()).await;
    let (key, _) = head_key(&mut admin, path).await;
    let resp = admin.delete(key.clone(), None).await.expect("delete");
    assert_eq!(resp.deleted(), 1, "{key}");
    let t1 = lead(&cs[1]).await;
    assert!(t1 > t0);
    wait_until("a rejoined at the tail", patience(), || async {
        participant_ids(&backend, path, T).await == ["b", "a"]
    })
    .await;
    let reasons: Vec<Reason> = rec.transitions("a").into_iter().map(|t| t.reason).collect();
    assert!(reasons.contains(&Reason::EntryDeleted), "{reasons:?}");
    election_core::testing::invariants::check_leaders_tolerating(&rec.leader_intervals(), SLACK)
        .unwrap();
    stop_all(&cs).await;
    wait_entries(&backend, path, 0).await;
}

/// L5 and the token: an administrator deletes the whole prefix (every entry and the directory's
/// key, in one request), three times over: each time the candidates register again and a leader
/// leads with a larger token than any before (the create revision never goes back).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_deletes_the_whole_prefix_and_tokens_still_increase() {
    let etcd = EtcdMember::start();
    let backend = direct(&etcd.endpoint());
    let root = "/scen/prefix-gone";
    let path = "/scen/prefix-gone/leader";
    let mut rec = Recorder::new();
    let cs = join_in_order(&backend, path, &["a", "b"], &mut rec).await;
    let mut admin = raw(&etcd.endpoint()).await;
    let mut last = lead(&cs[0]).await;
    for round in 0..3 {
        followers_settled(&cs).await;
        let deleted_at = Instant::now();
        let resp = admin
            .delete(root, Some(DeleteOptions::new().with_prefix()))
            .await
            .expect("delete the prefix");
        assert!(resp.deleted() >= 2, "deleted {}", resp.deleted());
        wait_until("a new leader with a larger token", patience(), || async {
            cs.iter().filter(|c| c.is_leader()).count() == 1
                && cs.iter().filter_map(|c| c.token()).any(|t| t > last)
        })
        .await;
        let token = cs.iter().find_map(|c| c.token()).unwrap();
        eprintln!(
            "measure: round {round}: prefix deleted -> leader with token {token} (was {last}) within {:?}",
            deleted_at.elapsed()
        );
        assert!(token > last);
        last = token;
        wait_entries(&backend, path, 2).await;
    }
    election_core::testing::invariants::check_leaders_tolerating(&rec.leader_intervals(), SLACK)
        .unwrap();
    stop_all(&cs).await;
    wait_entries(&backend, path, 0).await;
}

/// etcd#19597 ("phantom leader": Campaign reported success with no key behind it), S3: an
/// administrator revokes the leader's lease; its keys go with it, its session is over, it is
/// out of Leader and never leads without a key; the next in line leads, and it rejoins with a
/// new lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_revokes_the_leader_lease_and_no_phantom_leader_remains() {
    let etcd = EtcdMember::start();
    let backend = direct(&etcd.endpoint());
    let path = "/scen/revoke/leader";
    let mut rec = Recorder::new();
    let cs = join_in_order(&backend, path, &["a", "b"], &mut rec).await;
    let t0 = lead(&cs[0]).await;
    followers_settled(&cs).await;
    let session = cs[0].client().session().await.id();
    let mut admin = raw(&etcd.endpoint()).await;
    let (_, lease) = head_key(&mut admin, path).await;
    assert_eq!(lease as u64, session.0, "the head key is on a's lease");
    admin.lease_revoke(lease).await.expect("revoke");
    let t1 = lead(&cs[1]).await;
    assert!(t1 > t0);
    wait_until("a rejoined with a new lease", patience(), || async {
        participant_ids(&backend, path, T).await == ["b", "a"]
    })
    .await;
    assert_ne!(cs[0].client().session().await.id(), session);
    assert!(!cs[0].is_leader());
    // Every Leader interval of a ended before b's began: nobody led on without its key.
    election_core::testing::invariants::check_leaders_tolerating(&rec.leader_intervals(), SLACK)
        .unwrap();
    stop_all(&cs).await;
    wait_entries(&backend, path, 0).await;
}

/// Foreign keys under the prefix (not entry names, deeper keys, a key that looks like an entry
/// but is on no lease) are never candidates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_keys_are_ignored() {
    let etcd = EtcdMember::start();
    let backend = direct(&etcd.endpoint());
    let path = "/scen/foreign/leader";
    let mut admin = raw(&etcd.endpoint()).await;
    // Sorted before any entry by create revision.
    for key in [
        format!("{path}/notes"),
        format!("{path}/sub/deeper"),
        format!("{path}/_c_00000000000000aa-0000000000000001"),
    ] {
        admin.put(key, "x", None).await.expect("put");
    }
    let mut rec = Recorder::new();
    let cs = join_in_order(&backend, path, &["a", "b"], &mut rec).await;
    lead(&cs[0]).await;
    let s = backend.open_session(T).await.unwrap();
    let listing = s.list(&ElectionPath::new(path).unwrap()).await.unwrap();
    s.close().await;
    assert_eq!(listing.foreign, ["notes", "sub"]);
    // The look-alike parses as an entry name: listed, but never a leader.
    assert_eq!(listing.entries.len(), 3, "{listing:?}");
    assert_eq!(participant_ids(&backend, path, T).await, ["a", "b"]);
    cs[0].resign().await.unwrap();
    lead(&cs[1]).await;
    check_leaders(&rec.leader_intervals()).unwrap();
    stop_all(&cs).await;
}

/// Bad endpoints are typed errors before any side effect; an unreachable cluster is a bounded,
/// typed error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_or_unreachable_endpoints_are_typed_errors() {
    for bad in ["", "localhost", "localhost:0", "ftp://h:1", "h:1/x"] {
        match EtcdBackend::builder([bad]).build() {
            Err(ConfigError::Backend { what, .. }) => assert_eq!(what, "endpoints"),
            other => panic!("{bad:?}: {other:?}"),
        }
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let backend: Arc<dyn CoordinationBackend> = Arc::new(
        EtcdBackend::builder([format!("127.0.0.1:{port}")])
            .connect_timeout(Duration::from_millis(500))
            .build()
            .unwrap(),
    );
    let started = Instant::now();
    let e = backend.open_session(T).await.err().expect("no server");
    assert_eq!(e.kind(), ErrorKind::Other, "{e}");
    assert!(started.elapsed() < Duration::from_secs(2));
    let started = Instant::now();
    let joined = Candidate::builder("/scen/unreachable/leader", "a")
        .session_timeout(T)
        .join(backend)
        .await;
    // Either join fails, or the candidate keeps trying without ever leading.
    if let Ok(c) = joined {
        sleep(T).await;
        assert!(!c.is_leader());
        c.stop().await;
    }
    assert!(started.elapsed() < T * 4);
}

// ---------------------------------------------------------------------------------------------
// A create whose reply is lost after etcd applied it.

/// A backend whose sessions lose the reply of their first create: the transaction is applied
/// on the real member, and the caller hears `OutcomeUnknown`, as after a connection lost in
/// flight.
struct LosesFirstCreateReply {
    inner: Arc<dyn CoordinationBackend>,
}

struct LossySession {
    inner: Arc<dyn election_core::BackendSession>,
    lost: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl CoordinationBackend for LosesFirstCreateReply {
    async fn open_session(
        &self,
        timeout: Duration,
    ) -> Result<Arc<dyn election_core::BackendSession>, election_core::BackendError> {
        Ok(Arc::new(LossySession {
            inner: self.inner.open_session(timeout).await?,
            lost: std::sync::atomic::AtomicBool::new(false),
        }))
    }
}

#[async_trait::async_trait]
impl election_core::BackendSession for LossySession {
    fn id(&self) -> election_core::SessionId {
        self.inner.id()
    }
    fn timeout(&self) -> Duration {
        self.inner.timeout()
    }
    fn state(&self) -> tokio::sync::watch::Receiver<election_core::SessionState> {
        self.inner.state()
    }
    async fn create(
        &self,
        dir: &ElectionPath,
        marker: &election_core::Marker,
        data: &[u8],
    ) -> Result<election_core::EntryInfo, election_core::BackendError> {
        let created = self.inner.create(dir, marker, data).await?;
        if !self.lost.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return Err(election_core::BackendError::new(
                ErrorKind::OutcomeUnknown,
                format!("reply of the create of {} lost (test)", created.name),
            ));
        }
        Ok(created)
    }
    async fn list(
        &self,
        dir: &ElectionPath,
    ) -> Result<election_core::Listing, election_core::BackendError> {
        self.inner.list(dir).await
    }
    async fn list_and_watch(
        &self,
        dir: &ElectionPath,
    ) -> Result<(election_core::Listing, election_core::Notification), election_core::BackendError>
    {
        self.inner.list_and_watch(dir).await
    }
    async fn watch_gone(
        &self,
        dir: &ElectionPath,
        name: &str,
    ) -> Result<election_core::Watch, election_core::BackendError> {
        self.inner.watch_gone(dir, name).await
    }
    async fn read(
        &self,
        dir: &ElectionPath,
        name: &str,
    ) -> Result<Option<election_core::EntryInfo>, election_core::BackendError> {
        self.inner.read(dir, name).await
    }
    async fn delete(
        &self,
        dir: &ElectionPath,
        name: &str,
    ) -> Result<(), election_core::BackendError> {
        self.inner.delete(dir, name).await
    }
    async fn close(&self) {
        self.inner.close().await
    }
}

/// etcd#21128, S5: a create applied by etcd whose reply is lost leaves no orphan: the candidate
/// finds its key again by its marker, holds exactly one entry, leads with it, and leaves nothing
/// when it stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_create_reply_leaves_one_entry() {
    let etcd = EtcdMember::start();
    let plain = direct(&etcd.endpoint());
    let path = "/scen/lost-create/leader";
    let lossy: Arc<dyn CoordinationBackend> = Arc::new(LosesFirstCreateReply {
        inner: plain.clone(),
    });
    let mut rec = Recorder::new();
    let a = join(&lossy, path, "a").await;
    rec.watch(&a);
    let t0 = lead(&a).await;
    let b = join(&lossy, path, "b").await;
    rec.watch(&b);
    wait_state(&b, "placed", patience(), |s| {
        matches!(s, ElectionState::Follower { .. })
    })
    .await;
    // Each candidate created once (its reply lost), and holds exactly that entry.
    sleep(Duration::from_millis(200)).await;
    assert_eq!(entry_count(&plain, path).await, 2);
    assert_eq!(participant_ids(&plain, path, T).await, ["a", "b"]);
    a.resign().await.unwrap();
    let t1 = lead(&b).await;
    assert!(t1 > t0);
    check_leaders(&rec.leader_intervals()).unwrap();
    stop_all(&[a, b]).await;
    wait_entries(&plain, path, 0).await;
}

// ---------------------------------------------------------------------------------------------
// etcd's own election (client/v3/concurrency) failures, staged against ours.

/// etcd#11051: `Campaign` reported leadership although its own key was gone. Here: an
/// administrator deletes the leader's key and its successor's in one transaction; the successor,
/// woken by its predecessor's deletion, must not lead with the key it no longer has: it reads its
/// own key before claiming (S3), finds it gone, registers again, and leads with a new, larger
/// token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_11051_no_leadership_with_its_own_key_gone() {
    let etcd = EtcdMember::start();
    let backend = direct(&etcd.endpoint());
    let path = "/scen/etcd-11051/leader";
    let mut rec = Recorder::new();
    let cs = join_in_order(&backend, path, &["a", "b"], &mut rec).await;
    lead(&cs[0]).await;
    followers_settled(&cs).await;
    let mut admin = raw(&etcd.endpoint()).await;
    let resp = admin
        .get(
            format!("{path}/"),
            Some(GetOptions::new().with_prefix().with_sort(
                etcd_client::SortTarget::Create,
                etcd_client::SortOrder::Ascend,
            )),
        )
        .await
        .expect("range");
    let keys: Vec<(String, i64)> = resp
        .kvs()
        .iter()
        .filter(|kv| kv.key_str().is_ok_and(|k| k.contains("/_c_")))
        .map(|kv| (kv.key_str().unwrap().to_owned(), kv.create_revision()))
        .collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    let deleted_b = keys[1].1;
    let txn = etcd_client::Txn::new().and_then(
        keys.iter()
            .map(|(k, _)| etcd_client::TxnOp::delete(k.as_str(), None))
            .collect::<Vec<_>>(),
    );
    admin
        .txn(txn)
        .await
        .expect("delete both keys in one transaction");
    // Someone leads again, with a token newer than both deleted keys.
    wait_until("a leader with a new key", patience(), || async {
        cs.iter()
            .any(|c| c.token().is_some_and(|t| t.0 > deleted_b as u64))
    })
    .await;
    sleep(Duration::from_millis(100)).await;
    let intervals = rec.leader_intervals();
    assert!(
        intervals
            .iter()
            .all(|i| !(i.candidate == "b" && i.token.0 == deleted_b as u64)),
        "b led with the key the transaction deleted: {intervals:?}"
    );
    election_core::testing::invariants::check_leaders_tolerating(&intervals, SLACK).unwrap();
    stop_all(&cs).await;
    wait_entries(&backend, path, 0).await;
}

/// etcd#22123: `Resign` forgot leadership after a failed request, and the key stayed: nobody led.
/// Here: the leader resigns while its client is cut off, so its delete cannot go through. It
/// leaves the Leader state at once (its work ends first), keeps trying, and its key goes with
/// its lease if it cannot: its successor leads within about a TTL, and once healed the resigner
/// rejoins at the tail. Nothing is left stuck, nobody leads twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_22123_a_resign_whose_request_fails_still_hands_over() {
    let h = EtcdHarness::start();
    let admin = direct(&h.member().endpoint());
    let path = "/scen/etcd-22123/leader";
    let mut rec = Recorder::new();
    let mut cs = Vec::new();
    for id in ["a", "b"] {
        let c = join(&h.backend().await, path, id).await;
        rec.watch(&c);
        wait_state(&c, "placed", patience(), |s| {
            !matches!(s, ElectionState::Joining)
        })
        .await;
        cs.push(c);
    }
    let t0 = lead(&cs[0]).await;
    followers_settled(&cs).await;
    let proxy = h.proxy_of(cs[0].session_id());
    proxy.stall();
    let cut_at = Instant::now();
    // The resignation cannot complete while the client is cut off: run it aside.
    let a = Arc::new(cs.remove(0));
    let resigning = {
        let a = a.clone();
        tokio::spawn(async move { a.resign().await })
    };
    wait_state(&a, "out of the Leader state", patience(), |s| {
        !s.is_leader()
    })
    .await;
    let t1 = lead(&cs[0]).await;
    eprintln!(
        "measure: resign with the client cut off: successor led {:?} after the cut",
        cut_at.elapsed()
    );
    assert!(t1 > t0);
    proxy.resume();
    let _ = tokio::time::timeout(patience(), resigning)
        .await
        .expect("the resignation finishes once healed");
    wait_until("a rejoined at the tail", patience(), || async {
        participant_ids(&admin, path, T).await == ["b", "a"]
    })
    .await;
    check_leaders(&rec.leader_intervals()).unwrap();
    a.stop().await;
    stop_all(&cs).await;
    wait_entries(&admin, path, 0).await;
}
