//! Contract lines checked in exact virtual time, with the in-memory service's faults. (The
//! conformance suite in `conformance.rs` covers every line a backend can influence; these are
//! the ones that need exact instants or faults only this backend has.)

use std::time::Duration;

use election_core::testing::invariants::{check_leaders, check_work};
use election_core::testing::recorder::{Recorder, WorkLog};
use election_core::{Candidate, Contact, ElectionState, Event, Notice, Reason};
use election_mem::{MemCluster, MemConfig, Permission};
use tokio::time::{sleep, Instant};

const T: Duration = Duration::from_secs(3);
const P: &str = "/contract/leader";

async fn join(cluster: &MemCluster, id: &str) -> Candidate {
    Candidate::builder(P, id)
        .session_timeout(T)
        .join(cluster.backend())
        .await
        .unwrap()
}

async fn join_work(cluster: &MemCluster, id: &str, log: &WorkLog, stop: Duration) -> Candidate {
    Candidate::builder(P, id)
        .session_timeout(T)
        .on_leader(log.work(id, stop))
        .join(cluster.backend())
        .await
        .unwrap()
}

/// A leader `a` and a follower `b`, both recorded, settled.
async fn leader_and_follower(cluster: &MemCluster) -> (Candidate, Candidate, Recorder) {
    let mut rec = Recorder::new();
    let a = join(cluster, "a").await;
    rec.watch(&a);
    tokio::time::timeout(T, a.wait_for_leadership())
        .await
        .unwrap_or_else(|e| Err(e.into()))
        .unwrap();
    let b = join(cluster, "b").await;
    rec.watch(&b);
    sleep(Duration::from_millis(10)).await;
    (a, b, rec)
}

/// S2, exactly: cut at t, the client notices at t + T/3, the leader leaves the Leader state at
/// t + 2/3 T - grace (grace = T/6 by default) = t + T/2, and the successor leads at t + T, when
/// the service expires the session. Never two leaders.
#[tokio::test(start_paused = true)]
async fn s2_step_down_deadlines_are_exact() {
    let cluster = MemCluster::new();
    let (a, b, mut rec) = leader_and_follower(&cluster).await;
    let cut = Instant::now();
    cluster.cut(a.client().session().await.id());
    tokio::time::timeout(T * 2, b.wait_for_leadership())
        .await
        .unwrap_or_else(|e| Err(e.into()))
        .unwrap();
    let iv = rec.leader_intervals();
    check_leaders(&iv).unwrap();
    let a_iv = iv.iter().find(|i| i.candidate == "a").unwrap();
    let b_iv = iv.iter().find(|i| i.candidate == "b").unwrap();
    assert_eq!(
        a_iv.end.unwrap() - cut,
        T / 2,
        "a must step down at exactly T/2 after the cut"
    );
    assert_eq!(
        b_iv.start - cut,
        T,
        "b must lead exactly when the session expires"
    );
    // While uncertain, a said when it would step down.
    let uncertain = rec.transitions("a").into_iter().find_map(|t| match t.to {
        ElectionState::Leader {
            contact: Contact::Uncertain { step_down_at },
            ..
        } => Some((t.at, step_down_at)),
        _ => None,
    });
    let (noticed, promised) = uncertain.expect("a reported uncertain contact");
    assert_eq!(noticed - cut, T / 3);
    assert_eq!(promised - cut, T / 2);
}

/// S2 when the client notices the loss of contact later than the budget: it steps down the
/// moment it learns, still before the service can expire the session.
#[tokio::test(start_paused = true)]
async fn s2_late_detection_steps_down_at_once() {
    let cluster = MemCluster::with_config(MemConfig {
        disconnect_detection: 0.9,
        ..MemConfig::default()
    });
    let (a, b, mut rec) = leader_and_follower(&cluster).await;
    let cut = Instant::now();
    cluster.cut(a.client().session().await.id());
    tokio::time::timeout(T * 2, b.wait_for_leadership())
        .await
        .unwrap_or_else(|e| Err(e.into()))
        .unwrap();
    let iv = rec.leader_intervals();
    check_leaders(&iv).unwrap();
    let a_end = iv.iter().find(|i| i.candidate == "a").unwrap().end.unwrap();
    assert_eq!(a_end - cut, T.mul_f64(0.9));
    let reasons: Vec<Reason> = rec.transitions("a").into_iter().map(|t| t.reason).collect();
    assert!(reasons.contains(&Reason::StepDownDeadline), "{reasons:?}");
}

/// S4 under a cut: the work is cancelled at the step-down, aborted at the budget's end if it
/// will not stop, and the successor's work starts only after the session expired.
#[tokio::test(start_paused = true)]
async fn s4_slow_work_is_aborted_within_the_budget_on_a_cut() {
    let cluster = MemCluster::new();
    let log = WorkLog::new();
    let a = join_work(&cluster, "a", &log, Duration::from_secs(3600)).await;
    tokio::time::timeout(T, a.wait_for_leadership())
        .await
        .unwrap_or_else(|e| Err(e.into()))
        .unwrap();
    let b = join_work(&cluster, "b", &log, Duration::ZERO).await;
    sleep(Duration::from_millis(10)).await;
    let cut = Instant::now();
    cluster.cut(a.client().session().await.id());
    tokio::time::timeout(T * 2, b.wait_for_leadership())
        .await
        .unwrap_or_else(|e| Err(e.into()))
        .unwrap();
    sleep(Duration::from_millis(1)).await;
    let spans = log.spans();
    check_work(&spans).unwrap();
    let a_span = spans.iter().find(|s| s.candidate == "a").unwrap();
    // Budget 2/3 T after the last contact (the cut): the work is gone by then.
    assert_eq!(a_span.end.unwrap() - cut, T * 2 / 3);
    let b_span = spans.iter().find(|s| s.candidate == "b").unwrap();
    assert_eq!(b_span.start - cut, T);
}

/// S5: a create whose reply is lost is found again by its marker: exactly one entry, no orphan,
/// and the candidate leads with it.
#[tokio::test(start_paused = true)]
async fn s5_lost_create_reply_leaves_one_entry() {
    let cluster = MemCluster::new();
    cluster.lose_create_replies(1);
    let a = join(&cluster, "a").await;
    let token = tokio::time::timeout(T, a.wait_for_leadership())
        .await
        .unwrap_or_else(|e| Err(e.into()))
        .unwrap();
    let entries = cluster.entries(P);
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(
        cluster.stats().creates,
        1,
        "the lost create must not be repeated"
    );
    assert_eq!(a.current_leader().await.unwrap().unwrap().token, token);
    a.stop().await;
    assert!(cluster.entries(P).is_empty());
}

/// S5: stopping while the create's outcome is still unknown looks it up and deletes it.
#[tokio::test(start_paused = true)]
async fn s5_stop_during_an_unknown_create_leaves_nothing() {
    let cluster = MemCluster::new();
    let b = join(&cluster, "b").await;
    tokio::time::timeout(T, b.wait_for_leadership())
        .await
        .unwrap_or_else(|e| Err(e.into()))
        .unwrap();
    cluster.lose_create_replies(1);
    let a = join(&cluster, "a").await;
    a.stop().await;
    assert_eq!(cluster.entries(P).len(), 1, "only b's entry stays");
    assert!(matches!(a.current(), ElectionState::Stopped(_)));
    b.stop().await;
    assert!(cluster.entries(P).is_empty());
}

/// S5: several lost replies in a row still give exactly one entry.
#[tokio::test(start_paused = true)]
async fn s5_repeated_lost_replies() {
    let cluster = MemCluster::new();
    let b = join(&cluster, "b").await;
    cluster.lose_create_replies(3);
    let a = join(&cluster, "a").await;
    tokio::time::timeout(T, b.wait_for_leadership())
        .await
        .unwrap_or_else(|e| Err(e.into()))
        .unwrap();
    sleep(T).await;
    let entries = cluster.entries(P);
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert!(
        matches!(a.current(), ElectionState::Follower { position: 1, .. }),
        "{:?}",
        a.current()
    );
    a.stop().await;
    b.stop().await;
    assert!(cluster.entries(P).is_empty());
}

/// L3, counted on the service: a hand-over notifies the successor's session only, and costs the
/// leaver's delete and the successor's read of its own entry (no listing), whatever the number of
/// candidates.
#[tokio::test(start_paused = true)]
async fn l3_one_notification_per_failover() {
    for n in [3usize, 30] {
        let cluster = MemCluster::new();
        let mut cs = Vec::new();
        for i in 0..n {
            cs.push(join(&cluster, &format!("c{i}")).await);
        }
        tokio::time::timeout(T, cs[0].wait_for_leadership())
            .await
            .unwrap_or_else(|e| Err(e.into()))
            .unwrap();
        sleep(Duration::from_millis(1)).await;
        let leaver = cs[0].client().session().await.id();
        let successor = cs[1].client().session().await.id();
        cluster.reset_stats();
        cs[0].leave().await.unwrap();
        tokio::time::timeout(T, cs[1].wait_for_leadership())
            .await
            .unwrap_or_else(|e| Err(e.into()))
            .unwrap();
        sleep(Duration::from_millis(1)).await;
        let stats = cluster.stats();
        let woken: Vec<_> = stats
            .notifications
            .keys()
            .filter(|s| **s != leaver)
            .collect();
        assert_eq!(woken, [&successor], "n={n}");
        assert_eq!(
            (stats.deletes, stats.reads, stats.lists, stats.calls()),
            (1, 1, 0, 2),
            "n={n}: {stats:?}"
        );
        for c in &cs {
            c.stop().await;
        }
    }
}

/// L5 (kazoo 9b0a793): the predecessor leaves between the successor's listing and its watch:
/// the watch reports it gone at once and the successor lists again instead of waiting for ever.
#[tokio::test(start_paused = true)]
async fn l5_predecessor_vanishes_between_listing_and_watch() {
    let cluster = MemCluster::new();
    let a = join(&cluster, "a").await;
    tokio::time::timeout(T, a.wait_for_leadership())
        .await
        .unwrap_or_else(|e| Err(e.into()))
        .unwrap();
    let b = join(&cluster, "b").await;
    sleep(Duration::from_millis(1)).await;
    // Every call now takes 10 ms: c lists at +10 ms, then arms its watch on b at +20 ms.
    cluster.set_latency(Duration::from_millis(10));
    let joining = tokio::spawn({
        let backend = cluster.backend();
        async move {
            Candidate::builder(P, "c")
                .session_timeout(T)
                .join(backend)
                .await
                .unwrap()
        }
    });
    // c's session opens at once; its create lands at +10 ms, its listing at +20 ms, its watch on
    // b at +30 ms: b leaves (delete applied at +25 ms) in between.
    sleep(Duration::from_millis(15)).await;
    let b_leaves = tokio::spawn(async move { b.leave().await.unwrap() });
    let c = joining.await.unwrap();
    b_leaves.await.unwrap();
    sleep(Duration::from_millis(200)).await;
    assert!(
        matches!(c.current(), ElectionState::Follower { position: 1, .. }),
        "c must follow a directly: {:?}",
        c.current()
    );
    a.leave().await.unwrap();
    tokio::time::timeout(T, c.wait_for_leadership())
        .await
        .unwrap_or_else(|e| Err(e.into()))
        .unwrap();
    c.stop().await;
}

/// Delayed notifications (kept in order per session): the successor leads later, never
/// alongside the old leader.
#[tokio::test(start_paused = true)]
async fn delayed_notifications_delay_but_never_overlap() {
    let cluster = MemCluster::new();
    let (a, b, mut rec) = leader_and_follower(&cluster).await;
    cluster.delay_notifications(b.client().session().await.id(), Duration::from_millis(700));
    let resigned = Instant::now();
    a.resign().await.unwrap();
    tokio::time::timeout(T, b.wait_for_leadership())
        .await
        .unwrap_or_else(|e| Err(e.into()))
        .unwrap();
    assert_eq!(resigned.elapsed(), Duration::from_millis(700));
    check_leaders(&rec.leader_intervals()).unwrap();
    a.stop().await;
    b.stop().await;
}

/// Another tenant puts thousands of foreign children under the election path (some with
/// 64 KiB names) and a contender with 1 MiB of data: a listing keeps a bounded number of
/// names, each bounded, counts the rest, and cuts the contender's data; a candidate of ours
/// still leads among them.
#[tokio::test(start_paused = true)]
async fn thousands_of_foreign_children_keep_a_listing_bounded() {
    use election_core::limits::{MAX_FOREIGN_DATA_LEN, MAX_FOREIGN_NAMES, MAX_FOREIGN_NAME_LEN};
    use election_core::ElectionPath;
    const N: usize = 5000;
    let cluster = MemCluster::new();
    let mut stored = 0;
    for i in 0..N {
        let name = if i % 50 == 0 {
            format!("big-{i:05}-{}", "x".repeat(64 * 1024))
        } else {
            format!("junk-{i:05}")
        };
        stored += name.len();
        cluster.create_foreign(P, &name);
    }
    let a = join(&cluster, "a").await;
    tokio::time::timeout(T, a.wait_for_leadership())
        .await
        .unwrap_or_else(|e| Err(e.into()))
        .unwrap();
    // A contender (ahead of ours: stock Curator does not order our entries) with huge data.
    cluster.create_contender(
        P,
        election_core::Implementation::CuratorLock,
        &vec![b'd'; 1 << 20],
    );
    let session = cluster.backend().open_session(T).await.unwrap();
    let listing = session.list(&ElectionPath::new(P).unwrap()).await.unwrap();
    session.close().await;
    assert_eq!(listing.entries.len(), 1);
    assert_eq!(listing.foreign.len(), MAX_FOREIGN_NAMES);
    assert_eq!(listing.foreign_omitted, N - MAX_FOREIGN_NAMES);
    assert!(listing
        .foreign
        .iter()
        .all(|n| n.len() <= MAX_FOREIGN_NAME_LEN));
    assert_eq!(listing.contenders.len(), 1);
    assert_eq!(listing.contenders[0].data.len(), MAX_FOREIGN_DATA_LEN);
    let kept: usize = listing.foreign.iter().map(String::len).sum::<usize>()
        + listing
            .contenders
            .iter()
            .map(|c| c.data.len())
            .sum::<usize>();
    eprintln!(
        "measure: {N} foreign children ({stored} bytes of names) and 1 MiB of contender data \
         listed as {kept} bytes ({} names kept, {} counted)",
        listing.foreign.len(),
        listing.foreign_omitted
    );
    assert!(kept < 64 * 1024, "{kept}");
    a.stop().await;
}

/// Foreign nodes in the election directory are ignored and reported, never counted.
#[tokio::test(start_paused = true)]
async fn foreign_nodes_are_ignored_and_reported() {
    let cluster = MemCluster::new();
    cluster.create_foreign(P, "lock-0000000000");
    let a = join(&cluster, "a").await;
    let mut events = a.events();
    tokio::time::timeout(T, a.wait_for_leadership())
        .await
        .unwrap_or_else(|e| Err(e.into()))
        .unwrap();
    cluster.create_foreign(P, "another");
    let b = join(&cluster, "b").await;
    sleep(Duration::from_millis(1)).await;
    assert!(
        matches!(b.current(), ElectionState::Follower { position: 1, .. }),
        "{:?}",
        b.current()
    );
    a.resign().await.unwrap();
    tokio::time::timeout(T, b.wait_for_leadership())
        .await
        .unwrap_or_else(|e| Err(e.into()))
        .unwrap();
    let mut reported = false;
    while let Ok(e) = events.try_recv() {
        if let Event::Notice {
            notice: Notice::ForeignEntries(names),
            ..
        } = e
        {
            reported |= names.contains(&"another".to_owned());
        }
    }
    assert!(reported, "foreign node not reported");
    a.stop().await;
    b.stop().await;
    assert_eq!(cluster.entries(P).len(), 0);
}

/// L4 with re-candidacy off: the candidate stops, reporting why.
#[tokio::test(start_paused = true)]
async fn l4_without_recandidacy_stops() {
    let cluster = MemCluster::new();
    let a = Candidate::builder(P, "a")
        .session_timeout(T)
        .rejoin_on_expiry(false)
        .join(cluster.backend())
        .await
        .unwrap();
    tokio::time::timeout(T, a.wait_for_leadership())
        .await
        .unwrap_or_else(|e| Err(e.into()))
        .unwrap();
    cluster.expire_session(a.client().session().await.id());
    // The client learns of the expiry when it reconnects, as ZooKeeper's do.
    sleep(MemConfig::default().reconnect_delay + Duration::from_millis(1)).await;
    assert_eq!(
        a.current(),
        ElectionState::Stopped(election_core::StopReason::SessionEnded)
    );
    assert!(matches!(
        tokio::time::timeout(T, a.wait_for_leadership())
            .await
            .unwrap_or_else(|e| Err(e.into())),
        Err(election_core::ElectionError::Stopped)
    ));
}

/// Dropping a handle withdraws at once (no wait for the session to expire).
#[tokio::test(start_paused = true)]
async fn s5_dropped_handle_withdraws_promptly() {
    let cluster = MemCluster::new();
    let a = join(&cluster, "a").await;
    let b = join(&cluster, "b").await;
    tokio::time::timeout(T, a.wait_for_leadership())
        .await
        .unwrap_or_else(|e| Err(e.into()))
        .unwrap();
    let dropped = Instant::now();
    drop(a);
    tokio::time::timeout(T, b.wait_for_leadership())
        .await
        .unwrap_or_else(|e| Err(e.into()))
        .unwrap();
    assert!(dropped.elapsed() < T / 10, "took {:?}", dropped.elapsed());
    b.stop().await;
    assert!(cluster.entries(P).is_empty());
}

/// S3: an administrator deletes the leader's entry and its successor's in one transaction: the
/// successor must not lead with its deleted entry (a phantom term whose token is larger than the
/// real next leader's). Here both notifications are ready together; the machine's unit test
/// `head_handover_with_our_entry_deleted_in_the_same_transaction_never_leads` stages the order in
/// which the predecessor's comes first, and `zk_scenarios` does it on ZooKeeper.
#[tokio::test(start_paused = true)]
async fn s3_no_claim_with_an_entry_deleted_in_the_same_transaction() {
    let cluster = MemCluster::new();
    let mut rec = Recorder::new();
    let mut cs = Vec::new();
    for id in ["a", "b", "c"] {
        let c = join(&cluster, id).await;
        rec.watch(&c);
        cs.push(c);
        sleep(Duration::from_millis(1)).await;
    }
    tokio::time::timeout(T, cs[0].wait_for_leadership())
        .await
        .unwrap_or_else(|e| Err(e.into()))
        .unwrap();
    sleep(Duration::from_millis(10)).await;
    let entries = cluster.entries(P);
    // One instant, predecessor first, no chance for anyone to run in between: a multi-op.
    assert!(cluster.delete_entry(P, &entries[0].name));
    assert!(cluster.delete_entry(P, &entries[1].name));
    // c leads next; a and b rejoin behind it.
    tokio::time::timeout(T, cs[2].wait_for_leadership())
        .await
        .unwrap_or_else(|e| Err(e.into()))
        .unwrap();
    sleep(Duration::from_millis(10)).await;
    let iv = rec.leader_intervals();
    assert!(
        !iv.iter().any(|i| i.candidate == "b"),
        "b led with a deleted entry: {iv:?}"
    );
    check_leaders(&iv).unwrap();
    for c in &cs {
        c.stop().await;
    }
}

/// S2, S4 (ZooKeeper ensemble): the member the leader is connected to loses the service's leader
/// and goes on answering its reads from the tree as it was. The service expires the leader's
/// session a timeout after it last heard of it, and the follower (on a healthy member) leads
/// then; the leader, which counts only proofs through the service's leader as contact, has left
/// the Leader state and ended its work by then. Its stale member still lists its entry at the head
/// after the expiry: a client that believed such replies would have led on.
#[tokio::test(start_paused = true)]
async fn s2_leader_on_an_isolated_member_steps_down_before_expiry() {
    let cluster = MemCluster::new();
    let log = WorkLog::new();
    let mut rec = Recorder::new();
    let a = join_work(&cluster, "a", &log, Duration::ZERO).await;
    rec.watch(&a);
    tokio::time::timeout(T, a.wait_for_leadership())
        .await
        .unwrap_or_else(|e| Err(e.into()))
        .unwrap();
    let b = join_work(&cluster, "b", &log, Duration::ZERO).await;
    rec.watch(&b);
    sleep(Duration::from_millis(10)).await;
    let session = a.client().session().await;
    let cut = Instant::now();
    cluster.isolate_member_of(session.id());

    tokio::time::timeout(T * 2, b.wait_for_leadership())
        .await
        .unwrap_or_else(|e| Err(e.into()))
        .unwrap();
    let led_at = Instant::now() - cut;
    assert_eq!(led_at, T, "b leads when the service expires a's session");
    assert!(!a.is_leader());
    // a's member still shows a at the head: its reads are stale.
    let path = election_core::ElectionPath::new(P).unwrap();
    let stale = session.list(&path).await.unwrap();
    assert_eq!(stale.entries.len(), 2, "{stale:?}");
    assert_eq!(stale.entries[0].owner, session.id());
    assert_eq!(
        cluster.entries(P).len(),
        1,
        "the service has expired a's entry"
    );
    // Writes get no reply while isolated.
    let write = session
        .create(&path, &election_core::Marker::from_bits(9), b"")
        .await
        .unwrap_err();
    assert_eq!(write.kind(), election_core::ErrorKind::OutcomeUnknown);

    check_leaders(&rec.leader_intervals()).unwrap();
    check_work(&log.spans()).unwrap();
    let a_work = log
        .spans()
        .into_iter()
        .find(|s| s.candidate == "a")
        .unwrap();
    let budget = T.mul_f64(election_core::DEFAULT_STEP_DOWN_FRACTION);
    assert!(a_work.end.unwrap() - cut <= budget, "{a_work:?}");

    // Healed: a learns its session expired and rejoins at the tail.
    cluster.heal(session.id());
    sleep(Duration::from_millis(100)).await;
    let queue: Vec<_> = cluster
        .queue(P)
        .into_iter()
        .filter_map(|e| e.candidate)
        .collect();
    assert_eq!(queue, ["b", "a"]);
    a.stop().await;
    b.stop().await;
    assert!(cluster.entries(P).is_empty());
}

/// A connected client whose session the service ends by force hears `Disconnected` first (the
/// service drops its connection) and `Expired` only once it reconnects, as on ZooKeeper; a
/// leader so ended leaves the Leader state at the first and aborts its work at the second.
#[tokio::test(start_paused = true)]
async fn forced_expiry_is_disconnected_first_then_expired() {
    let cluster = MemCluster::new();
    let log = WorkLog::new();
    let mut rec = Recorder::new();
    let a = join_work(&cluster, "a", &log, Duration::from_secs(60)).await;
    rec.watch(&a);
    tokio::time::timeout(T, a.wait_for_leadership())
        .await
        .unwrap_or_else(|e| Err(e.into()))
        .unwrap();
    let session = a.client().session().await;
    let mut state = session.state();
    cluster.expire_session(session.id());
    assert!(matches!(
        *state.borrow_and_update(),
        election_core::SessionState::Disconnected { .. }
    ));
    let delay = MemConfig::default().reconnect_delay;
    sleep(delay - Duration::from_millis(1)).await;
    assert!(matches!(
        *state.borrow(),
        election_core::SessionState::Disconnected { .. }
    ));
    sleep(Duration::from_millis(2)).await;
    assert_eq!(*state.borrow(), election_core::SessionState::Expired);
    let reasons: Vec<Reason> = rec.transitions("a").into_iter().map(|t| t.reason).collect();
    assert!(
        reasons.starts_with(&[Reason::Claimed, Reason::ContactLost, Reason::SessionEnded]),
        "{reasons:?}"
    );
    // Its stubborn work (60 s to stop) was aborted when the expiry was learnt.
    let span = log
        .spans()
        .into_iter()
        .find(|s| s.candidate == "a")
        .unwrap();
    assert!(
        span.end.is_some_and(|end| end - span.start <= delay * 2),
        "{span:?}"
    );
    a.stop().await;
}

/// Issue 17, point 7: a leader whose release delete is refused (an administrator's ACL) used
/// to stop with its entry at the head and its session alive: the follower waited for as long
/// as the process lived. Now the leader closes its session, whose end deletes the entry, and
/// the follower takes over.
#[tokio::test(start_paused = true)]
async fn a_refused_release_delete_closes_the_session_and_hands_over() {
    let cluster = MemCluster::new();
    let (a, b, mut rec) = leader_and_follower(&cluster).await;
    cluster.deny(P, Permission::Delete);
    let left = tokio::time::timeout(T, a.leave()).await;
    assert!(left.is_ok(), "leave hung");
    tokio::time::timeout(T, b.wait_for_leadership())
        .await
        .unwrap_or_else(|e| Err(e.into()))
        .unwrap();
    assert_eq!(cluster.queue(P).len(), 1, "{:?}", cluster.queue(P));
    let notices: Vec<Notice> = rec
        .events()
        .into_iter()
        .filter_map(|(id, e)| match e {
            Event::Notice { notice, .. } if id == "a" => Some(notice),
            _ => None,
        })
        .collect();
    assert!(
        notices
            .iter()
            .any(|n| matches!(n, Notice::ClosingSession(_))),
        "{notices:?}"
    );
    check_leaders(&rec.leader_intervals()).unwrap();
    cluster.allow(P, Permission::Delete);
    b.stop().await;
}

/// Issue 17, point 7: a follower whose read of the leader's record (information only) is
/// refused used to stop for good. Now the leader stays unknown, and the follower takes over
/// when the leader leaves.
#[tokio::test(start_paused = true)]
async fn an_unreadable_leader_record_does_not_stop_a_follower() {
    let cluster = MemCluster::new();
    cluster.deny(P, Permission::Read);
    let a = join(&cluster, "a").await;
    tokio::time::timeout(T, a.wait_for_leadership())
        .await
        .unwrap_or_else(|e| Err(e.into()))
        .unwrap();
    let b = join(&cluster, "b").await;
    sleep(Duration::from_millis(100)).await;
    assert!(
        matches!(
            *b.state().borrow(),
            ElectionState::Follower { leader: None, .. }
        ),
        "{:?}",
        *b.state().borrow()
    );
    a.leave().await.unwrap();
    tokio::time::timeout(T, b.wait_for_leadership())
        .await
        .unwrap_or_else(|e| Err(e.into()))
        .unwrap();
    b.stop().await;
}

/// Issue 17, point 2: a stop that hits its deadline with its create's outcome unknown used to
/// drop it, assuming the entry would end with the session; but the session is the client's, and
/// a second candidate keeps it alive. The entry applied for the stopped candidate stayed for
/// good (once at the head, nobody would lead). Now the client sweeps the stopped candidate's
/// entries when the session has contact again.
///
/// Timeline (T = 3 s, latency 1 s, grace T/6): the create is applied at 1 s and its reply lost;
/// the stop is asked at 1.01 s and waits for the lookup; the lookup is in flight when the
/// session is cut at 1.6 s, so it fails; the stop gives up at its deadline (1.01 + T + grace =
/// 4.51 s), before the service would expire the cut session (1.6 + T = 4.6 s); heal at 4.55 s.
#[tokio::test(start_paused = true)]
async fn s5_a_stop_out_of_time_leaves_nothing_on_a_shared_session() {
    let cluster = MemCluster::new();
    let client = election_core::Client::connect(cluster.backend(), T)
        .await
        .unwrap();
    let b = client
        .join(Candidate::builder(P, "b").build().unwrap())
        .await
        .unwrap();
    tokio::time::timeout(T, b.wait_for_leadership())
        .await
        .unwrap_or_else(|e| Err(e.into()))
        .unwrap();
    let start = Instant::now();
    cluster.set_latency(Duration::from_secs(1));
    cluster.lose_create_replies(1);
    let a = client
        .join(Candidate::builder(P, "a").build().unwrap())
        .await
        .unwrap();
    tokio::time::sleep_until(start + Duration::from_millis(1010)).await;
    let stopping = tokio::spawn(async move {
        a.stop().await;
        Instant::now()
    });
    tokio::time::sleep_until(start + Duration::from_millis(1600)).await;
    let session = client.session().await.id();
    cluster.cut(session);
    let stopped = stopping.await.unwrap();
    assert_eq!(stopped - start, Duration::from_millis(4510));
    assert!(
        cluster
            .queue(P)
            .iter()
            .any(|e| e.candidate.as_deref() == Some("a")),
        "the setup must leave a's entry: {:?}",
        cluster.queue(P)
    );
    tokio::time::sleep_until(start + Duration::from_millis(4550)).await;
    cluster.heal(session);
    assert!(cluster.session_alive(session));
    sleep(Duration::from_secs(5)).await;
    let queue = cluster.queue(P);
    assert!(
        queue.iter().all(|e| e.candidate.as_deref() == Some("b")),
        "a's entry is left: {queue:?}"
    );
    cluster.set_latency(Duration::ZERO);
    tokio::time::timeout(T, b.wait_for_leadership())
        .await
        .unwrap_or_else(|e| Err(e.into()))
        .unwrap();
    b.stop().await;
}

/// Issue 17, point 3: look-alike persistent entries (a tree restored or copied by a tool) at
/// the head and in the middle of the queue were taken for live candidates: they never go away,
/// and nobody behind them ever led. They are reported as foreign and ignored.
#[tokio::test(start_paused = true)]
async fn lookalike_persistent_entries_do_not_block_the_election() {
    let cluster = MemCluster::new();
    let head = cluster.create_lookalike(P, election_core::SessionId(0x1234));
    let mut rec = Recorder::new();
    let a = join(&cluster, "a").await;
    rec.watch(&a);
    tokio::time::timeout(T, a.wait_for_leadership())
        .await
        .unwrap_or_else(|e| Err(e.into()))
        .unwrap();
    let middle = cluster.create_lookalike(P, election_core::SessionId(0x5678));
    let b = join(&cluster, "b").await;
    rec.watch(&b);
    sleep(Duration::from_millis(100)).await;
    assert_eq!(cluster.entries(P).len(), 4);
    a.leave().await.unwrap();
    tokio::time::timeout(T, b.wait_for_leadership())
        .await
        .unwrap_or_else(|e| Err(e.into()))
        .unwrap();
    check_leaders(&rec.leader_intervals()).unwrap();
    let foreign: Vec<String> = rec
        .events()
        .into_iter()
        .filter_map(|(_, e)| match e {
            Event::Notice {
                notice: Notice::ForeignEntries(names),
                ..
            } => Some(names),
            _ => None,
        })
        .flatten()
        .collect();
    assert!(foreign.contains(&head), "{foreign:?}");
    assert!(foreign.contains(&middle), "{foreign:?}");
    b.stop().await;
    assert_eq!(cluster.entries(P).len(), 2, "only the look-alikes stay");
}

/// Issue 17, point 10: when the service loses its data and is rebuilt, tokens (ZooKeeper's
/// czxids) start again from small numbers: downstream fencing would reject every new leader.
/// A candidate whose new term's token is lower than the last one its client saw says so,
/// loudly, with a notice (and an error-level log).
#[tokio::test(start_paused = true)]
async fn a_token_lower_than_the_last_one_seen_is_reported() {
    let cluster = MemCluster::new();
    for i in 0..20 {
        cluster.create_foreign("/busy", &format!("n{i}"));
    }
    let mut rec = Recorder::new();
    let a = join(&cluster, "a").await;
    rec.watch(&a);
    tokio::time::timeout(T, a.wait_for_leadership())
        .await
        .unwrap_or_else(|e| Err(e.into()))
        .unwrap();
    let before = a.current().token().unwrap();
    cluster.lose_data();
    let after = loop {
        tokio::time::timeout(T * 2, a.wait_for_leadership())
            .await
            .unwrap_or_else(|e| Err(e.into()))
            .unwrap();
        match a.current().token() {
            Some(t) if t != before => break t,
            _ => sleep(Duration::from_millis(10)).await,
        }
    };
    assert!(after < before, "{after} < {before}");
    let went_back: Vec<Notice> = rec
        .events()
        .into_iter()
        .filter_map(|(_, e)| match e {
            Event::Notice {
                notice: notice @ Notice::TokenWentBack { .. },
                ..
            } => Some(notice),
            _ => None,
        })
        .collect();
    assert_eq!(
        went_back,
        [Notice::TokenWentBack {
            token: after,
            last: before
        }]
    );
    a.stop().await;
}

/// The same for a follower: the leader's token it reads after the service was rebuilt is lower
/// than the one it read before, and its own client says so, although it never led.
#[tokio::test(start_paused = true)]
async fn a_follower_that_reads_a_lower_leader_token_reports_it() {
    let cluster = MemCluster::new();
    for i in 0..20 {
        cluster.create_foreign("/busy", &format!("n{i}"));
    }
    let mut rec = Recorder::new();
    let a = join(&cluster, "a").await;
    rec.watch(&a);
    tokio::time::timeout(T, a.wait_for_leadership())
        .await
        .unwrap_or_else(|e| Err(e.into()))
        .unwrap();
    let before = a.current().token().unwrap();
    let b = join(&cluster, "b").await;
    rec.watch(&b);
    let knows = |s: &ElectionState| matches!(s, ElectionState::Follower { leader: Some(l), .. } if l.token == before);
    tokio::time::timeout(T, b.state().wait_for(knows))
        .await
        .unwrap()
        .unwrap();
    cluster.lose_data();
    // Both rejoin; whichever follows must read a lower token for the new leader.
    let deadline = tokio::time::Instant::now() + T * 4;
    let follower = loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no leader with a lower token and a follower knowing it: a {:?}, b {:?}",
            a.current(),
            b.current()
        );
        sleep(Duration::from_millis(10)).await;
        let leader = [&a, &b].into_iter().find(|c| c.is_leader());
        match leader.and_then(|l| l.current().token()) {
            Some(t) if t < before => {
                let f = if a.is_leader() { &b } else { &a };
                if matches!(f.current(), ElectionState::Follower { leader: Some(l), .. } if l.token == t)
                {
                    break f.id().to_owned();
                }
            }
            _ => {}
        }
    };
    let went_back: Vec<String> = rec
        .events()
        .into_iter()
        .filter_map(|(id, e)| match e {
            Event::Notice {
                notice: Notice::TokenWentBack { last, .. },
                ..
            } if last == before => Some(id),
            _ => None,
        })
        .collect();
    assert!(
        went_back.contains(&follower),
        "the follower {follower} reported no TokenWentBack: {went_back:?}"
    );
    a.stop().await;
    b.stop().await;
}

/// Issue 17, points 7 and 8, for observers: an observer that may not read the leader's record
/// used to list and read again at once, for ever (a busy loop). The leader is now unknown
/// until the head changes.
#[tokio::test(start_paused = true)]
async fn an_observer_that_cannot_read_the_leader_does_not_spin() {
    let cluster = MemCluster::new();
    cluster.set_latency(Duration::from_millis(1));
    let a = join(&cluster, "a").await;
    tokio::time::timeout(T, a.wait_for_leadership())
        .await
        .unwrap_or_else(|e| Err(e.into()))
        .unwrap();
    cluster.deny(P, Permission::Read);
    let client = election_core::Client::connect(cluster.backend(), T)
        .await
        .unwrap();
    let observer = client.observe(&election_core::ElectionPath::new(P).unwrap());
    sleep(Duration::from_millis(100)).await;
    cluster.reset_stats();
    sleep(Duration::from_secs(1)).await;
    let stats = cluster.stats();
    assert!(
        stats.reads + stats.list_watches <= 4,
        "observer spins: {stats:?}"
    );
    assert_eq!(
        *observer.leader().borrow(),
        election_core::LeaderView::Unknown
    );
    drop(observer);
    a.stop().await;
}
