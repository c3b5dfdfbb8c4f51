//! The conformance cases. Each is a public async fn that runs alone on a [`Harness`], and names
//! the contract lines it checks.

use crate::backend::Confirmation;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::{sleep, timeout, Instant};

use crate::backend::{BackendSession, Marker, SessionState, Watch};
use crate::candidate::Candidate;
use crate::client::Client;
use crate::error::{ConfigError, ElectionError, ErrorKind};
use crate::path::ElectionPath;
use crate::state::{ElectionState, Event, Notice, Reason};

use super::invariants::{check_leaders, check_leaders_tolerating, check_work};
use super::recorder::{Recorder, WorkLog};
use super::Harness;

fn path(h: &dyn Harness, case: &str) -> ElectionPath {
    ElectionPath::new(h.path(case)).expect("harness path is valid")
}

/// Time enough for anything the contract promises within a few session timeouts.
fn patience(h: &dyn Harness) -> Duration {
    h.session_timeout() * 6 + h.slack() * 4
}

/// Lets notifications and replies settle.
async fn settle(h: &dyn Harness) {
    sleep(Duration::from_millis(20) + h.slack()).await;
}

async fn admin(h: &dyn Harness) -> Arc<dyn BackendSession> {
    h.backend()
        .await
        .open_session(h.session_timeout())
        .await
        .expect("admin session")
}

async fn join(h: &dyn Harness, p: &ElectionPath, id: &str) -> Candidate {
    Candidate::builder(p.as_str(), id)
        .payload(format!("payload-of-{id}").into_bytes())
        .session_timeout(h.session_timeout())
        .join(h.backend().await)
        .await
        .expect("join")
}

async fn join_with_work(
    h: &dyn Harness,
    p: &ElectionPath,
    id: &str,
    log: &WorkLog,
    stop_delay: Duration,
) -> Candidate {
    Candidate::builder(p.as_str(), id)
        .session_timeout(h.session_timeout())
        .on_leader(log.work(id, stop_delay))
        .join(h.backend().await)
        .await
        .expect("join")
}

async fn lead(h: &dyn Harness, c: &Candidate) -> crate::FencingToken {
    tokio::time::timeout(patience(h), c.wait_for_leadership())
        .await
        .unwrap_or_else(|e| Err(e.into()))
        .unwrap_or_else(|e| panic!("{} did not lead: {e}; state {:?}", c.id(), c.current()))
}

async fn entry_count(h: &dyn Harness, p: &ElectionPath) -> usize {
    admin_list(h, p).await.entries.len()
}

async fn admin_list(h: &dyn Harness, p: &ElectionPath) -> crate::Listing {
    let s = admin(h).await;
    let l = s.list(p).await.expect("list");
    s.close().await;
    l
}

/// Waits (bounded) until `p` has `n` entries.
async fn wait_entries(h: &dyn Harness, p: &ElectionPath, n: usize) {
    let deadline = Instant::now() + patience(h);
    let s = admin(h).await;
    loop {
        let got = s.list(p).await.expect("list").entries.len();
        if got == n {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{p}: {got} entries, expected {n}"
        );
        sleep(Duration::from_millis(10) + h.slack() / 4).await;
    }
    s.close().await;
}

/// Leader `a` (its token returned) and follower `b`, both recorded, both entries in place.
async fn recorded_leader_and_follower(
    h: &dyn Harness,
    p: &ElectionPath,
) -> (Candidate, Candidate, Recorder, crate::FencingToken) {
    let mut rec = Recorder::new();
    let a = join(h, p, "a").await;
    rec.watch(&a);
    let t0 = lead(h, &a).await;
    let b = join(h, p, "b").await;
    rec.watch(&b);
    wait_entries(h, p, 2).await;
    (a, b, rec, t0)
}

async fn ids_in_order(c: &Candidate) -> Vec<String> {
    c.participants()
        .await
        .expect("participants")
        .into_iter()
        .map(|p| p.id)
        .collect()
}

/// Backend contract: create (with missing parents), list order, owner and marker, read, token
/// order, delete and NotFound, missing directory.
pub async fn primitives_create_list_read_delete(h: &dyn Harness) {
    let p = ElectionPath::new(format!("{}/deep/er", h.path("primitives"))).unwrap();
    let s = admin(h).await;
    assert_eq!(*s.state().borrow(), SessionState::Connected);
    assert!(s
        .list(&p)
        .await
        .expect("list of a missing dir")
        .entries
        .is_empty());
    let mut infos = Vec::new();
    for i in 0..3u64 {
        let m = Marker::from_bits(0xabc0 + i);
        let info = s
            .create(&p, &m, format!("data{i}").as_bytes())
            .await
            .expect("create");
        assert_eq!(info.owner, s.id());
        assert_eq!(info.marker, m);
        assert_eq!(info.data, format!("data{i}").into_bytes());
        infos.push(info);
    }
    assert!(
        infos
            .windows(2)
            .all(|w| w[0].token < w[1].token && w[0].sequence < w[1].sequence),
        "{infos:?}"
    );
    let listing = s.list(&p).await.expect("list");
    assert_eq!(
        listing.entries,
        infos.iter().map(|i| i.listed()).collect::<Vec<_>>()
    );
    let read = s
        .read(&p, &infos[1].name)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(read, infos[1]);
    s.delete(&p, &infos[1].name).await.expect("delete");
    let again = s.delete(&p, &infos[1].name).await.unwrap_err();
    assert_eq!(again.kind(), ErrorKind::NotFound);
    assert_eq!(s.read(&p, &infos[1].name).await.expect("read"), None);
    assert_eq!(s.list(&p).await.unwrap().entries.len(), 2);
    // A later create sorts last and has a larger token.
    let last = s
        .create(&p, &Marker::from_bits(1), b"")
        .await
        .expect("create");
    assert!(last.token > infos[2].token && last.sequence > infos[2].sequence);
    s.close().await;
}

/// Backend contract: a create reports [`EntryInfo::sole`](crate::backend::EntryInfo::sole) only
/// with nothing else in its directory (and then a listing shows it alone); never a second
/// create, a create beside a contender of another implementation, or a read. A
/// backend whose harness says [`Harness::reports_sole`] reports it for the first create in a
/// fresh directory.
pub async fn primitives_sole(h: &dyn Harness) {
    let s = admin(h).await;
    // A contender of another implementation alone in the directory: not sole. First, while
    // nothing of ours made the directories (a secured service's would be closed to it).
    let q = path(h, "sole-beside-contender");
    let contender = h
        .create_contender(q.as_str(), crate::Implementation::CuratorLatch, b"peer")
        .await;
    let beside = s
        .create(&q, &Marker::from_bits(0xd5), b"")
        .await
        .expect("create");
    assert!(!beside.sole, "a create beside a contender: {beside:?}");
    s.delete(&q, &beside.name).await.expect("delete");
    h.remove_contender(q.as_str(), &contender).await;
    let p = path(h, "sole");
    let first = s
        .create(&p, &Marker::from_bits(0xd1), b"one")
        .await
        .expect("create");
    assert_eq!(
        first.sole,
        h.reports_sole(),
        "the first create in a fresh directory: {first:?}"
    );
    if first.sole {
        let listing = s.list(&p).await.expect("list");
        assert_eq!(listing.entries, vec![first.listed()]);
        assert!(listing.contenders.is_empty() && listing.foreign.is_empty());
    }
    let second = s
        .create(&p, &Marker::from_bits(0xd2), b"two")
        .await
        .expect("create");
    assert!(!second.sole, "a second create: {second:?}");
    let read = s.read(&p, &first.name).await.expect("read").expect("there");
    assert!(!read.sole, "a read: {read:?}");
    // Alone again: a create may be sole again only where the service says nothing else is
    // there; whatever it says, a sole entry is alone.
    s.delete(&p, &first.name).await.expect("delete");
    s.delete(&p, &second.name).await.expect("delete");
    let again = s
        .create(&p, &Marker::from_bits(0xd4), b"")
        .await
        .expect("create");
    if again.sole {
        assert_eq!(
            s.list(&p).await.expect("list").entries,
            vec![again.listed()]
        );
    }
    s.delete(&p, &again.name).await.expect("delete");
    s.close().await;
}

/// Backend contract: `confirm` reads our entry as `read` does; a missing own entry is `None`. A
/// leader note, where the backend keeps one, names the entry last noted, and outlives it;
/// without `note` none is read.
pub async fn primitives_confirm(h: &dyn Harness) {
    let p = path(h, "confirm");
    let s = admin(h).await;
    let mut infos = Vec::new();
    for i in 0..2u64 {
        let info = s
            .create(&p, &Marker::from_bits(0xc0 + i), format!("c{i}").as_bytes())
            .await
            .expect("create");
        infos.push(info);
    }
    let names: Vec<String> = infos.iter().map(|i| i.name.clone()).collect();
    let (b, c) = (&names[0], &names[1]);
    let read = s.read(&p, c).await.expect("read");
    let confirm = |note: bool| {
        let (s, p, c) = (s.clone(), p.clone(), c.clone());
        async move { s.confirm(&p, &c, note).await.expect("confirm") }
    };
    let seen = |own: &Option<crate::EntryInfo>| Confirmation {
        own: own.clone(),
        leader_note: None,
    };
    assert_eq!(confirm(false).await, seen(&read));
    // The note: none yet, then the entry noted (where the backend keeps notes).
    assert_eq!(confirm(true).await, seen(&read));
    s.note_leader(&p, b).await.expect("note");
    let noted = confirm(true).await;
    assert_eq!(noted.own, read);
    assert!(
        noted.leader_note.is_none() || noted.leader_note.as_deref() == Some(b.as_str()),
        "{noted:?}"
    );
    assert_eq!(
        s.keeps_leader_notes(),
        noted.leader_note.is_some(),
        "a backend that keeps notes reads them back"
    );
    assert_eq!(confirm(false).await, seen(&read));
    s.delete(&p, b).await.expect("delete");
    // A note outlives its entry: it says the entry led once.
    let gone = confirm(true).await;
    assert_eq!((&gone.own, &gone.leader_note), (&read, &noted.leader_note));
    s.delete(&p, c).await.expect("delete");
    assert_eq!(confirm(false).await, seen(&None));
    s.close().await;
}

/// Backend contract: `watch_gone` reports a missing entry at once, fires on deletion by another
/// session and on the owner's session closing, and not otherwise.
pub async fn primitives_watch_gone(h: &dyn Harness) {
    let p = path(h, "watch-gone");
    let owner = admin(h).await;
    let watcher = admin(h).await;
    assert!(matches!(
        watcher.watch_gone(&p, "_c_nothing").await.expect("watch"),
        Watch::Gone
    ));
    let a = owner.create(&p, &Marker::from_bits(1), b"a").await.unwrap();
    let b = owner.create(&p, &Marker::from_bits(2), b"b").await.unwrap();
    let Watch::Armed(wa) = watcher.watch_gone(&p, &a.name).await.unwrap() else {
        panic!("a exists")
    };
    let Watch::Armed(mut wb) = watcher.watch_gone(&p, &b.name).await.unwrap() else {
        panic!("b exists")
    };
    // Nothing happened: nothing fires.
    assert!(timeout(Duration::from_millis(50) + h.slack(), &mut wb)
        .await
        .is_err());
    owner.delete(&p, &a.name).await.unwrap();
    timeout(patience(h), wa)
        .await
        .expect("fires on delete")
        .expect("Ok on delete");
    owner.close().await;
    timeout(patience(h), wb)
        .await
        .expect("fires when the owner closes")
        .expect("Ok when gone");
    watcher.close().await;
}

/// Backend contract: closing a session deletes its entries and ends in `Closed`.
pub async fn primitives_close_removes_entries(h: &dyn Harness) {
    let p = path(h, "close");
    let s = admin(h).await;
    s.create(&p, &Marker::from_bits(1), b"").await.unwrap();
    let mut state = s.state();
    s.close().await;
    s.close().await; // idempotent
    timeout(
        patience(h),
        state.wait_for(|st| *st == SessionState::Closed),
    )
    .await
    .expect("closed")
    .ok();
    wait_entries(h, &p, 0).await;
}

/// Backend contract: `list_and_watch` fires when an entry is added, even to a missing dir.
pub async fn primitives_list_and_watch(h: &dyn Harness) {
    let p = path(h, "list-watch");
    let s = admin(h).await;
    let (l, n) = s
        .list_and_watch(&p)
        .await
        .expect("list_and_watch on a missing dir");
    assert!(l.entries.is_empty());
    let other = admin(h).await;
    other.create(&p, &Marker::from_bits(1), b"").await.unwrap();
    timeout(patience(h), n)
        .await
        .expect("fires on create")
        .expect("ok");
    let (l, n) = s.list_and_watch(&p).await.unwrap();
    assert_eq!(l.entries.len(), 1);
    other.create(&p, &Marker::from_bits(2), b"").await.unwrap();
    timeout(patience(h), n)
        .await
        .expect("fires on a second create")
        .expect("ok");
    s.close().await;
    other.close().await;
}

/// S3: the first joiner leads, and its token is its entry's token, as others read it.
pub async fn first_joiner_leads_with_its_entry_token(h: &dyn Harness) {
    let p = path(h, "first-joiner");
    let a = join(h, &p, "a").await;
    let token = lead(h, &a).await;
    let b = join(h, &p, "b").await;
    let leader = b.current_leader().await.unwrap().expect("a leads");
    assert_eq!((leader.id.as_str(), leader.token), ("a", token));
    assert_eq!(&*leader.payload, b"payload-of-a");
    settle(h).await;
    assert!(!b.is_leader());
    assert!(
        matches!(b.current(), ElectionState::Follower { position: 1, .. }),
        "{:?}",
        b.current()
    );
    a.stop().await;
    b.stop().await;
}

/// L1, L2, S1: resignations hand leadership over in queue order, with increasing tokens, and the
/// resigner rejoins at the tail.
pub async fn resign_hands_over_in_queue_order(h: &dyn Harness) {
    let p = path(h, "resign-order");
    let mut rec = Recorder::new();
    let mut cs = Vec::new();
    for id in ["a", "b", "c", "d"] {
        let c = join(h, &p, id).await;
        rec.watch(&c);
        cs.push(c);
        wait_entries(h, &p, cs.len()).await;
    }
    let mut order = Vec::new();
    let mut queues = Vec::new();
    let mut last = lead(h, &cs[0]).await;
    order.push("a".to_owned());
    for round in 0..6 {
        let leader = cs.iter().find(|c| c.is_leader()).expect("a leader");
        let queue = ids_in_order(leader).await;
        let expected_next = queue[1].clone();
        queues.push((leader.id().to_owned(), queue));
        leader.resign().await.expect("resign");
        let next = cs.iter().find(|c| c.id() == expected_next).unwrap();
        let token = lead(h, next).await;
        assert!(token > last, "round {round}: token {token} after {last}");
        last = token;
        order.push(expected_next);
    }
    // Each round's successor was the second in the queue (checked as it led). A resigner rejoins
    // at the tail: in the next round's queue it is last, or not back yet (its new entry is
    // created after its resignation returns, so a slow create can land a round later).
    for w in queues.windows(2) {
        let (resigner, queue) = (&w[0].0, &w[1].1);
        if let Some(i) = queue.iter().position(|id| id == resigner) {
            assert_eq!(
                i,
                queue.len() - 1,
                "{resigner} did not rejoin at the tail: {queues:?}"
            );
        }
    }
    assert_eq!(order.len(), 7);
    assert_eq!(order[..4], ["a", "b", "c", "d"], "{queues:?}");
    check_leaders(&rec.leader_intervals()).unwrap();
    for c in &cs {
        c.stop().await;
    }
    assert_eq!(entry_count(h, &p).await, 0);
}

/// L3: when the leader leaves, only its direct successor wakes; the others see nothing.
pub async fn only_the_successor_wakes(h: &dyn Harness) {
    let p = path(h, "no-herd");
    let mut cs = Vec::new();
    for i in 0..6 {
        cs.push(join(h, &p, &format!("c{i}")).await);
        wait_entries(h, &p, cs.len()).await;
    }
    lead(h, &cs[0]).await;
    // Every follower knows its place and the leader before we look.
    let deadline = Instant::now() + patience(h);
    while !cs[1..].iter().all(|c| {
        matches!(
            c.current(),
            ElectionState::Follower {
                leader: Some(_),
                ..
            }
        )
    }) {
        assert!(Instant::now() < deadline, "followers did not settle");
        settle(h).await;
    }
    let mut rec = Recorder::new();
    for c in &cs {
        rec.watch(c);
    }
    // Watching hands over each candidate's events from its start: only the hand-over counts.
    rec.clear();
    cs[0].leave().await.unwrap();
    lead(h, &cs[1]).await;
    settle(h).await;
    for c in &cs[2..] {
        let woken = rec.transitions(c.id());
        assert!(
            woken.is_empty(),
            "{} woke on a hand-over that was not its own: {woken:?}",
            c.id()
        );
    }
    assert_eq!(
        rec.transitions("c1").last().map(|t| t.reason.clone()),
        Some(Reason::Claimed)
    );
    for c in &cs {
        c.stop().await;
    }
}

/// L1, S2: a crashed leader (no close) is succeeded once the service expires its session, not
/// before, and within the session timeout plus a few round trips.
pub async fn crash_fails_over_after_session_timeout(h: &dyn Harness) {
    let p = path(h, "crash");
    let a = join(h, &p, "a").await;
    lead(h, &a).await;
    let b = join(h, &p, "b").await;
    wait_entries(h, &p, 2).await;
    settle(h).await;
    let crashed_at = Instant::now();
    h.crash(a).await;
    lead(h, &b).await;
    let took = crashed_at.elapsed();
    let t = h.session_timeout();
    assert!(
        took + h.slack() >= t,
        "successor led {took:?} after the crash, before the session timeout {t:?}"
    );
    assert!(
        took <= t * 2 + h.slack() * 4,
        "successor took {took:?} (session timeout {t:?})"
    );
    b.stop().await;
    wait_entries(h, &p, 0).await;
}

/// S4: the leader's work has ended before its successor's work starts.
pub async fn leader_work_ends_before_successor_starts(h: &dyn Harness) {
    let p = path(h, "work-order");
    let log = WorkLog::new();
    let stop_delay = h.session_timeout() / 20;
    let a = join_with_work(h, &p, "a", &log, stop_delay).await;
    lead(h, &a).await;
    let b = join_with_work(h, &p, "b", &log, stop_delay).await;
    wait_entries(h, &p, 2).await;
    a.resign().await.unwrap();
    lead(h, &b).await;
    settle(h).await;
    b.resign().await.unwrap();
    lead(h, &a).await;
    settle(h).await;
    let spans = log.spans();
    assert!(spans.len() >= 3, "{spans:?}");
    check_work(&spans).unwrap();
    a.stop().await;
    b.stop().await;
    assert!(
        log.spans().iter().all(|s| s.end.is_some()),
        "work left running after stop"
    );
}

/// S4 across [`Client::close`] (issue 18, point 1): closing the client of a leader stops its
/// candidates first (their work ended and awaited, their entries deleted), then closes the
/// session, so the successor's work starts only after ours ended; and the client stays closed:
/// no rejoin, no observer reopening a session, no join.
pub async fn close_while_leading_stops_work_before_successor(h: &dyn Harness) {
    let p = path(h, "close-leading");
    let log = WorkLog::new();
    let stop_delay = h.session_timeout() / 10;
    let client = Client::connect(h.backend().await, h.session_timeout())
        .await
        .unwrap();
    let a = client
        .join(
            Candidate::builder(p.as_str(), "a")
                .on_leader(log.work("a", stop_delay))
                .build()
                .unwrap(),
        )
        .await
        .unwrap();
    lead(h, &a).await;
    let observer = client.observe(&p);
    let b = join_with_work(h, &p, "b", &log, stop_delay).await;
    wait_entries(h, &p, 2).await;
    let closed_session = client.session_id();
    let closing_at = Instant::now();
    client.close().await;
    lead(h, &b).await;
    settle(h).await;
    let spans = log.spans();
    check_work(&spans).unwrap();
    assert_eq!(spans.len(), 2, "{spans:?}");
    // a's work was stopped as `stop` stops it, given its time to wind down, not aborted by the
    // session's end.
    let a_end = spans[0].end.expect("a's work ended");
    assert!(
        a_end >= closing_at + stop_delay,
        "a's work was cut short: {spans:?}"
    );
    assert_eq!(
        a.current(),
        ElectionState::Stopped(crate::StopReason::ClientClosed)
    );
    // Closed stays closed.
    sleep(h.session_timeout() * 2).await;
    assert_eq!(
        a.current(),
        ElectionState::Stopped(crate::StopReason::ClientClosed)
    );
    assert_eq!(
        client.session_id(),
        closed_session,
        "the session was reopened"
    );
    assert_eq!(entry_count(h, &p).await, 1);
    assert!(observer.is_stopped());
    assert!(matches!(
        observer.wait_for_leader().await,
        Err(ElectionError::ClientClosed)
    ));
    assert!(matches!(
        client
            .join(Candidate::builder(p.as_str(), "c").build().unwrap())
            .await,
        Err(ElectionError::ClientClosed)
    ));
    assert!(matches!(
        client.current_leader(&p).await,
        Err(ElectionError::ClientClosed)
    ));
    b.stop().await;
}

/// S4: work that ignores cancellation is aborted after the grace, reported, and the successor
/// leads only after that.
pub async fn slow_leader_work_is_aborted_after_grace(h: &dyn Harness) {
    let p = path(h, "work-grace");
    let log = WorkLog::new();
    let grace = h.session_timeout() / 10;
    let stubborn = Candidate::builder(p.as_str(), "stubborn")
        .session_timeout(h.session_timeout())
        .leader_grace(grace)
        .on_leader(log.work("stubborn", Duration::from_secs(3600)))
        .join(h.backend().await)
        .await
        .unwrap();
    let mut events = stubborn.events();
    lead(h, &stubborn).await;
    let next = join_with_work(h, &p, "next", &log, Duration::ZERO).await;
    wait_entries(h, &p, 2).await;
    let started = Instant::now();
    stubborn.resign().await.unwrap();
    assert!(
        started.elapsed() + h.slack() >= grace,
        "resign returned before the grace"
    );
    lead(h, &next).await;
    settle(h).await;
    check_work(&log.spans()).unwrap();
    let mut overran = false;
    while let Ok(e) = events.try_recv() {
        overran |= matches!(
            e,
            Event::Notice {
                notice: Notice::WorkOverranGrace(_),
                ..
            }
        );
    }
    assert!(overran, "no WorkOverranGrace notice");
    stubborn.stop().await;
    next.stop().await;
}

/// S5: after stop, after leave, and after a dropped handle, no entry of the candidate stays.
pub async fn stop_and_drop_leave_no_entry(h: &dyn Harness) {
    let p = path(h, "no-orphans");
    let a = join(h, &p, "a").await;
    let b = join(h, &p, "b").await;
    let c = join(h, &p, "c").await;
    wait_entries(h, &p, 3).await;
    a.stop().await;
    a.stop().await; // idempotent
    assert!(matches!(a.current(), ElectionState::Stopped(_)));
    b.leave().await.unwrap();
    wait_entries(h, &p, 1).await;
    drop(c);
    wait_entries(h, &p, 0).await;
}

/// L5 (CURATOR-171): the leader's entry deleted by an administrator: it steps down, reports it
/// and rejoins at the tail; the next candidate leads with a larger token.
pub async fn leader_entry_deleted_by_admin(h: &dyn Harness) {
    let p = path(h, "admin-delete");
    let (a, b, mut rec, t0) = recorded_leader_and_follower(h, &p).await;
    let s = admin(h).await;
    let head = s.list(&p).await.unwrap().entries[0].name.clone();
    s.delete(&p, &head).await.unwrap();
    let t1 = lead(h, &b).await;
    assert!(t1 > t0);
    wait_entries(h, &p, 2).await;
    settle(h).await;
    assert!(!a.is_leader());
    assert!(rec
        .transitions("a")
        .iter()
        .any(|t| t.reason == Reason::EntryDeleted));
    assert_eq!(ids_in_order(&b).await, ["b", "a"]);
    // The entry went from under the leader: it and its successor hear of it at the same moment,
    // so the hand-over is only as tight as the two notifications (no grace can be honoured).
    let iv = rec.leader_intervals();
    assert!(
        iv.iter().any(|i| i.candidate == "a" && i.end.is_some()),
        "a stepped down: {iv:?}"
    );
    check_leaders_tolerating(&iv, h.slack()).unwrap();
    s.close().await;
    a.stop().await;
    b.stop().await;
}

/// L5: the election root deleted (entries first, then the node): candidates re-create it and an
/// election goes on, with a larger token.
pub async fn election_root_deleted(h: &dyn Harness) {
    let p = path(h, "root-deleted");
    let (a, b, mut rec, t0) = recorded_leader_and_follower(h, &p).await;
    let s = admin(h).await;
    let parent = ElectionPath::new(
        h.path("root-deleted")
            .rsplit_once('/')
            .map(|x| x.0)
            .unwrap()
            .to_owned(),
    )
    .unwrap();
    let last = p.segments().last().unwrap().to_owned();
    let mut deleted = false;
    for _ in 0..20 {
        // As `deleteall` would, but pipelined: one session's requests are applied in order, so
        // the directory goes before the candidates can register again.
        let entries = s.list(&p).await.unwrap().entries;
        let deletes = futures_util::future::join_all(entries.iter().map(|e| s.delete(&p, &e.name)));
        let (_, root) = tokio::join!(deletes, s.delete(&parent, &last));
        if root.is_ok() {
            deleted = true;
            break;
        }
    }
    assert!(deleted, "could not delete the election root");
    let deadline = Instant::now() + patience(h);
    let t1 = loop {
        if let Some(t) = a.token().or(b.token()) {
            if t > t0 {
                break t;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no new leader after the root was deleted: a {:?} b {:?}",
            a.current(),
            b.current()
        );
        settle(h).await;
    };
    assert!(t1 > t0);
    wait_entries(h, &p, 2).await;
    // Entries were deleted from under their owners (maybe the leader's, in a later round of the
    // loop above), so a deposed leader may hear of it as its successor claims: overlaps within
    // the slack are tolerated (none on virtual time), token order is not.
    check_leaders_tolerating(&rec.leader_intervals(), h.slack()).unwrap();
    s.close().await;
    a.stop().await;
    b.stop().await;
}

/// Several elections over one session; each leads on its own path; nothing left after stop.
pub async fn several_elections_one_session(h: &dyn Harness) {
    let client = Client::connect(h.backend().await, h.session_timeout())
        .await
        .unwrap();
    let mut cs = Vec::new();
    for i in 0..3 {
        let p = path(h, &format!("multi-{i}"));
        let config = Candidate::builder(p.as_str(), "node").build().unwrap();
        cs.push((p, client.join(config).await.unwrap()));
    }
    let mut tokens = Vec::new();
    for (_, c) in &cs {
        tokens.push(lead(h, c).await);
    }
    tokens.sort();
    tokens.dedup();
    assert_eq!(tokens.len(), 3);
    let session = client.session().await.id();
    for (_, c) in &cs {
        assert_eq!(c.client().session().await.id(), session);
    }
    for (p, c) in &cs {
        c.stop().await;
        assert_eq!(entry_count(h, p).await, 0);
    }
    client.close().await;
}

/// An observer follows the leader without running: it sees each new leader.
pub async fn observer_follows_the_leader(h: &dyn Harness) {
    let p = path(h, "observer");
    let watcher = Client::connect(h.backend().await, h.session_timeout())
        .await
        .unwrap();
    let observer = watcher.observe(&p);
    let a = join(h, &p, "a").await;
    let ta = lead(h, &a).await;
    let seen = tokio::time::timeout(patience(h), observer.next_leader(None))
        .await
        .expect("observer sees a")
        .unwrap();
    assert_eq!((seen.id.as_str(), seen.token), ("a", ta));
    let b = join(h, &p, "b").await;
    wait_entries(h, &p, 2).await;
    a.leave().await.unwrap();
    let tb = lead(h, &b).await;
    let seen = tokio::time::timeout(patience(h), observer.next_leader(Some(ta)))
        .await
        .expect("observer sees b")
        .unwrap();
    assert_eq!((seen.id.as_str(), seen.token), ("b", tb));
    b.stop().await;
    let deadline = Instant::now() + patience(h);
    while observer.current() != crate::LeaderView::Nobody {
        assert!(Instant::now() < deadline, "observer still shows a leader");
        settle(h).await;
    }
    drop(observer);
    watcher.close().await;
}

/// Participants in queue order, with payloads; the current leader read fresh.
pub async fn participants_and_current_leader(h: &dyn Harness) {
    let p = path(h, "participants");
    let mut cs = Vec::new();
    for id in ["x", "y", "z"] {
        cs.push(join(h, &p, id).await);
        wait_entries(h, &p, cs.len()).await;
    }
    let ps = cs[2].participants().await.unwrap();
    assert_eq!(
        ps.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
        ["x", "y", "z"]
    );
    assert!(ps
        .iter()
        .all(|p| p.payload == format!("payload-of-{}", p.id).into_bytes()));
    assert!(ps.windows(2).all(|w| w[0].token < w[1].token));
    let leader = cs[1].current_leader().await.unwrap().unwrap();
    assert_eq!(leader.id, "x");
    for c in &cs {
        c.stop().await;
    }
    assert_eq!(cs[0].current_leader().await.unwrap(), None);
}

/// Bad input: typed errors before any side effect.
pub async fn bad_input_is_rejected_before_side_effects(h: &dyn Harness) {
    let p = path(h, "bad-input");
    let backend = h.backend().await;
    let bad = [
        Candidate::builder("no-slash", "a"),
        Candidate::builder(p.as_str(), ""),
        Candidate::builder(p.as_str(), "a").payload(vec![0; crate::MAX_PAYLOAD_LEN + 1]),
        Candidate::builder(p.as_str(), "a").session_timeout(Duration::ZERO),
        Candidate::builder(p.as_str(), "a").step_down_fraction(1.0),
        Candidate::builder(p.as_str(), "a")
            .session_timeout(h.session_timeout())
            .leader_grace(h.session_timeout()),
    ];
    for b in bad {
        let err = b.join(backend.clone()).await.unwrap_err();
        assert!(matches!(err, ElectionError::Config(_)), "{err}");
    }
    let client = Client::connect(backend.clone(), h.session_timeout())
        .await
        .unwrap();
    let a = client
        .join(Candidate::builder(p.as_str(), "a").build().unwrap())
        .await
        .unwrap();
    let dup = client
        .join(Candidate::builder(p.as_str(), "a").build().unwrap())
        .await
        .unwrap_err();
    assert!(matches!(dup, ElectionError::Duplicate { .. }), "{dup}");
    // `join` returns before the entry is registered: wait, so that a is first.
    wait_entries(h, &p, 1).await;
    let b = client
        .join(Candidate::builder(p.as_str(), "b").build().unwrap())
        .await
        .unwrap();
    lead(h, &a).await;
    let waited = tokio::time::timeout(h.session_timeout() / 4, b.wait_for_leadership())
        .await
        .unwrap_or_else(|e| Err(e.into()))
        .unwrap_err();
    assert!(matches!(waited, ElectionError::Timeout), "{waited}");
    a.stop().await;
    b.stop().await;
    assert_eq!(entry_count(h, &p).await, 0);
    assert!(matches!(
        ElectionPath::new("/a/../b").unwrap_err(),
        ConfigError::InvalidPath { .. }
    ));
    client.close().await;
}

/// L4 (CURATOR-724, etcd#19597): a candidate whose session expired rejoins by itself with a new
/// session, at the tail, and says so.
pub async fn expired_candidate_rejoins_at_the_tail(h: &dyn Harness) {
    let p = path(h, "rejoin");
    let mut rec = Recorder::new();
    let mut cs = Vec::new();
    for id in ["a", "b", "c"] {
        let c = join(h, &p, id).await;
        rec.watch(&c);
        cs.push(c);
        wait_entries(h, &p, cs.len()).await;
    }
    lead(h, &cs[0]).await;
    let old = cs[1].client().session().await.id();
    h.expire(old).await;
    let deadline = Instant::now() + patience(h);
    loop {
        let new = cs[1].client().session().await.id();
        if new != old && ids_in_order(&cs[0]).await == ["a", "c", "b"] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "b did not rejoin at the tail: {:?}",
            cs[1].current()
        );
        settle(h).await;
    }
    let reasons: Vec<Reason> = rec.transitions("b").into_iter().map(|t| t.reason).collect();
    assert!(reasons.contains(&Reason::SessionEnded), "{reasons:?}");
    assert!(reasons.contains(&Reason::Rejoining), "{reasons:?}");
    cs[0].resign().await.unwrap();
    lead(h, &cs[2]).await;
    check_leaders(&rec.leader_intervals()).unwrap();
    for c in &cs {
        c.stop().await;
    }
}

/// S2: a leader cut off from the service leaves the Leader state within the step-down budget of
/// its last contact, and its successor leads only after the service expired its session: never
/// two leaders at once.
pub async fn cut_leader_steps_down_before_expiry(h: &dyn Harness) {
    let p = path(h, "cut-leader");
    let mut rec = Recorder::new();
    let log = WorkLog::new();
    let a = join_with_work(h, &p, "a", &log, Duration::ZERO).await;
    rec.watch(&a);
    lead(h, &a).await;
    let b = join_with_work(h, &p, "b", &log, Duration::ZERO).await;
    rec.watch(&b);
    wait_entries(h, &p, 2).await;
    settle(h).await;
    let session = a.client().session().await.id();
    let cut_at = Instant::now();
    h.cut(session).await;
    lead(h, &b).await;
    let intervals = rec.leader_intervals();
    check_leaders(&intervals).unwrap();
    check_work(&log.spans()).unwrap();
    let a_end = intervals
        .iter()
        .find(|i| i.candidate == "a")
        .and_then(|i| i.end)
        .expect("a stepped down");
    let b_start = intervals
        .iter()
        .find(|i| i.candidate == "b")
        .map(|i| i.start)
        .expect("b led");
    let budget = h
        .session_timeout()
        .mul_f64(crate::DEFAULT_STEP_DOWN_FRACTION);
    assert!(
        a_end <= cut_at + budget + h.slack(),
        "a left {:?} after the cut; budget {budget:?}",
        a_end - cut_at
    );
    assert!(
        b_start + h.slack() >= cut_at + h.session_timeout(),
        "b led {:?} after the cut",
        b_start - cut_at
    );
    assert!(a_end <= b_start);
    h.heal(session).await;
    a.stop().await;
    b.stop().await;
}

/// L5 (CURATOR-620/652/653): a cut shorter than the step-down budget: the leader keeps leading
/// the same term and verifies its place again; nobody else leads.
pub async fn short_cut_keeps_leadership(h: &dyn Harness) {
    let p = path(h, "short-cut");
    let mut rec = Recorder::new();
    // A roomy budget (step down at 0.85 T after the last contact), so that a cut the client
    // has noticed can heal, and the place be verified, well inside it.
    let a = Candidate::builder(p.as_str(), "a")
        .session_timeout(h.session_timeout())
        .step_down_fraction(0.9)
        .leader_grace(h.session_timeout() / 20)
        .join(h.backend().await)
        .await
        .unwrap();
    rec.watch(&a);
    let token = lead(h, &a).await;
    let b = join(h, &p, "b").await;
    rec.watch(&b);
    wait_entries(h, &p, 2).await;
    settle(h).await;
    let session = a.client().session().await.id();
    h.cut(session).await;
    // Until the leader has noticed (it must, within the detection delay), then heal.
    let deadline = Instant::now() + patience(h);
    loop {
        match a.current() {
            ElectionState::Leader {
                contact: crate::Contact::Uncertain { .. },
                ..
            } => break,
            ElectionState::Leader { .. } => {}
            other => panic!("a left the Leader state during a short cut: {other:?}"),
        }
        assert!(Instant::now() < deadline, "a never noticed the cut");
        sleep(Duration::from_millis(5)).await;
    }
    h.heal(session).await;
    let deadline = Instant::now() + patience(h);
    loop {
        if let ElectionState::Leader {
            contact: crate::Contact::Confirmed,
            ..
        } = a.current()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a did not confirm its lead: {:?}",
            a.current()
        );
        settle(h).await;
    }
    assert_eq!(a.token(), Some(token));
    assert!(!b.is_leader());
    let intervals = rec.leader_intervals();
    assert_eq!(
        intervals.len(),
        1,
        "leadership changed hands: {intervals:?}"
    );
    assert_eq!(intervals[0].end, None);
    a.stop().await;
    b.stop().await;
}

/// L5: a follower that reconnects within its session keeps its place in the queue.
pub async fn follower_keeps_place_across_reconnect(h: &dyn Harness) {
    let p = path(h, "follower-reconnect");
    let mut cs = Vec::new();
    for id in ["a", "b", "c"] {
        cs.push(join(h, &p, id).await);
        wait_entries(h, &p, cs.len()).await;
    }
    lead(h, &cs[0]).await;
    let before = admin_list(h, &p).await.entries;
    let session = cs[1].client().session().await.id();
    h.cut(session).await;
    sleep(h.session_timeout() / 2).await;
    h.heal(session).await;
    let deadline = Instant::now() + patience(h);
    while !matches!(cs[1].current(), ElectionState::Follower { .. }) {
        assert!(
            Instant::now() < deadline,
            "b did not come back: {:?}",
            cs[1].current()
        );
        settle(h).await;
    }
    assert_eq!(
        admin_list(h, &p).await.entries,
        before,
        "the queue changed across a reconnect"
    );
    cs[0].resign().await.unwrap();
    lead(h, &cs[1]).await;
    for c in &cs {
        c.stop().await;
    }
}

/// How the first term's work of [`work_ending_case`] ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ending {
    Returns,
    Fails,
    Panics,
    ClosurePanics,
}

/// Waits (bounded) for a transition of `events` that `want` accepts.
async fn transition_where(
    h: &dyn Harness,
    events: &mut tokio::sync::broadcast::Receiver<Event>,
    what: &str,
    want: impl Fn(&crate::Transition) -> bool,
) -> crate::Transition {
    use tokio::sync::broadcast::error::RecvError;
    let wait = async {
        loop {
            match events.recv().await {
                Ok(Event::Transition(t)) if want(&t) => return t,
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => panic!("events closed before {what}"),
            }
        }
    };
    timeout(patience(h), wait)
        .await
        .unwrap_or_else(|_| panic!("no transition: {what}"))
}

/// Waits (bounded) until the queue, as `c` reads it, is `ids`.
async fn wait_queue(h: &dyn Harness, c: &Candidate, ids: &[&str]) {
    let deadline = Instant::now() + patience(h);
    loop {
        let got = ids_in_order(c).await;
        if got == ids {
            return;
        }
        assert!(Instant::now() < deadline, "queue {got:?}, expected {ids:?}");
        sleep(Duration::from_millis(10) + h.slack() / 4).await;
    }
}

/// `b` leads first; `a`, next in line, has work whose first term ends at once as `ending` says
/// (later terms run until cancelled). When `b` resigns, `a` leads, its work ends, and with it
/// the term: `a` resigns with the reason naming how, `b` leads again, `a` rejoins behind it.
async fn work_ending_case(h: &dyn Harness, case: &str, ending: Ending) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let p = path(h, case);
    let mut rec = Recorder::new();
    let b = join(h, &p, "b").await;
    rec.watch(&b);
    let t0 = lead(h, &b).await;
    let terms = Arc::new(AtomicUsize::new(0));
    let n = terms.clone();
    let a = Candidate::builder(p.as_str(), "a")
        .session_timeout(h.session_timeout())
        .on_leader(move |term: crate::Term| {
            let first = n.fetch_add(1, Ordering::SeqCst) == 0;
            if first && ending == Ending::ClosurePanics {
                panic!("closure panicked");
            }
            async move {
                if first {
                    match ending {
                        Ending::Returns => return Ok(()),
                        Ending::Fails => return Err("disk full".to_owned()),
                        Ending::Panics => panic!("work panicked"),
                        Ending::ClosurePanics => unreachable!(),
                    }
                }
                term.cancelled().await;
                Ok(())
            }
        })
        .join(h.backend().await)
        .await
        .expect("join");
    rec.watch(&a);
    let mut events = a.events();
    wait_entries(h, &p, 2).await;
    b.resign().await.expect("resign");
    // a's term may be over before its state could be read: follow its transitions.
    let claimed = transition_where(h, &mut events, "a leads", |t| t.to.is_leader()).await;
    let t1 = claimed.to.token().expect("a token");
    assert!(t1 > t0);
    let expected = match ending {
        Ending::Returns => Reason::WorkReturned,
        Ending::Fails => Reason::WorkFailed("disk full".into()),
        Ending::Panics => Reason::WorkPanicked("work panicked".into()),
        Ending::ClosurePanics => Reason::WorkPanicked("closure panicked".into()),
    };
    let t = transition_where(h, &mut events, "a's term ends with its work", |t| {
        t.from.is_leader()
    })
    .await;
    assert_eq!(t.reason, expected, "{t:?}");
    let t2 = lead(h, &b).await;
    assert!(t2 > t1, "b leads after a with a larger token");
    // `a` goes on as a candidate: it rejoins at the tail, behind b.
    wait_queue(h, &b, &["b", "a"]).await;
    assert!(!a.current().is_stopped(), "{:?}", a.current());
    assert_eq!(terms.load(Ordering::SeqCst), 1, "a led once");
    check_leaders(&rec.leader_intervals()).unwrap();
    a.stop().await;
    b.stop().await;
    assert_eq!(entry_count(h, &p).await, 0);
}

/// S4, leader work owns its term: work that returns while its term is live ends the term (the
/// default policy resigns, [`Reason::WorkReturned`]); the successor leads; the candidate rejoins
/// at the tail.
pub async fn work_that_returns_ends_its_term(h: &dyn Harness) {
    work_ending_case(h, "work-returns", Ending::Returns).await;
}

/// S4: work that fails ends its term with the error's text ([`Reason::WorkFailed`]).
pub async fn work_that_fails_ends_its_term(h: &dyn Harness) {
    work_ending_case(h, "work-fails", Ending::Fails).await;
}

/// S4: work that panics ends its term with the panic's message ([`Reason::WorkPanicked`]); the
/// candidate goes on. A panic in the `on_leader` closure itself (not its future) is the same:
/// it never takes the candidate down with its entry at the head of the queue.
pub async fn work_that_panics_ends_its_term(h: &dyn Harness) {
    work_ending_case(h, "work-panics", Ending::Panics).await;
    work_ending_case(h, "work-closure-panics", Ending::ClosurePanics).await;
}

/// L1 with failing work: a candidate whose work fails at once on every term does not starve the
/// others (they lead) and does not spin (its terms come at a back-off that grows).
pub async fn work_failing_at_once_does_not_starve_the_others(h: &dyn Harness) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let p = path(h, "work-fails-at-once");
    let mut rec = Recorder::new();
    let t = h.session_timeout();
    let terms = Arc::new(AtomicUsize::new(0));
    let n = terms.clone();
    let a = Candidate::builder(p.as_str(), "a")
        .session_timeout(t)
        .on_leader(move |_term| {
            n.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), _>("no disk") }
        })
        .join(h.backend().await)
        .await
        .expect("join");
    rec.watch(&a);
    // Alone, it leads and fails again and again, but no faster than its back-off (from T/20,
    // doubling): a handful of terms in 3 T, not thousands.
    sleep(t * 3).await;
    let alone = terms.load(Ordering::SeqCst);
    assert!(
        (2..=12).contains(&alone),
        "{alone} terms in 3 T: the back-off does not hold"
    );
    let log = WorkLog::new();
    let b = join_with_work(h, &p, "b", &log, Duration::ZERO).await;
    rec.watch(&b);
    lead(h, &b).await;
    // b keeps leading: a waits behind it.
    let before = terms.load(Ordering::SeqCst);
    sleep(t * 2).await;
    assert!(b.is_leader(), "b lost leadership: {:?}", b.current());
    assert_eq!(terms.load(Ordering::SeqCst), before, "a led while b did");
    wait_queue(h, &b, &["b", "a"]).await;
    check_leaders(&rec.leader_intervals()).unwrap();
    a.stop().await;
    b.stop().await;
    check_work(&log.spans()).unwrap();
    assert_eq!(entry_count(h, &p).await, 0);
}

/// The work hands over by itself with [`Term::resign`](crate::Term::resign): it returns at
/// once, and the candidate resigns as the work returns, whatever the policy.
pub async fn work_hands_over_with_term_resign(h: &dyn Harness) {
    let p = path(h, "work-hands-over");
    let (go, ready) = tokio::sync::watch::channel(false);
    let a = Candidate::builder(p.as_str(), "a")
        .session_timeout(h.session_timeout())
        .when_work_ends(crate::WorkEnded::KeepLeading)
        .on_leader(move |term: crate::Term| {
            let mut ready = ready.clone();
            async move {
                if !*ready.borrow_and_update() {
                    let _ = ready.wait_for(|go| *go).await;
                    term.resign();
                    return;
                }
                term.cancelled().await;
            }
        })
        .join(h.backend().await)
        .await
        .expect("join");
    let mut events = a.events();
    let t0 = lead(h, &a).await;
    let b = join(h, &p, "b").await;
    wait_entries(h, &p, 2).await;
    go.send_replace(true);
    let t = transition_where(h, &mut events, "a hands over", |t| t.from.is_leader()).await;
    assert_eq!(t.reason, Reason::Resigned);
    assert!(lead(h, &b).await > t0);
    wait_queue(h, &b, &["b", "a"]).await;
    a.stop().await;
    b.stop().await;
    assert_eq!(entry_count(h, &p).await, 0);
}

/// `resign()` and `stop()` called from inside the candidate's own leader work return at once
/// (they would otherwise wait for the work, which waits for them, until the grace ran out and
/// the work was aborted) and take effect as the work returns.
pub async fn resign_and_stop_from_inside_the_work(h: &dyn Harness) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    let p = path(h, "resign-from-work");
    let grace = h.session_timeout() / 4;
    let (handle_tx, handle_rx) = tokio::sync::watch::channel(None::<Arc<Candidate>>);
    // For each term: how long the call took, and whether the work went on after it.
    let calls: Arc<Mutex<Vec<(Duration, bool)>>> = Arc::default();
    let terms = Arc::new(AtomicUsize::new(0));
    let (calls2, terms2) = (calls.clone(), terms.clone());
    let a = Candidate::builder(p.as_str(), "a")
        .session_timeout(h.session_timeout())
        .leader_grace(grace)
        .on_leader(move |term: crate::Term| {
            let mut handle = handle_rx.clone();
            let (calls, n) = (calls2.clone(), terms2.fetch_add(1, Ordering::SeqCst));
            async move {
                let me = handle
                    .wait_for(Option::is_some)
                    .await
                    .expect("handle")
                    .clone()
                    .expect("set");
                let started = Instant::now();
                if n == 0 {
                    me.resign().await.expect("resign from the work");
                } else {
                    me.stop().await;
                }
                let took = started.elapsed();
                calls.lock().unwrap().push((took, false));
                // The call took effect: the term is over.
                term.cancelled().await;
                calls.lock().unwrap().last_mut().unwrap().1 = true;
            }
        })
        .join(h.backend().await)
        .await
        .expect("join");
    let a = Arc::new(a);
    let mut events = a.events();
    lead(h, &a).await;
    let b = join(h, &p, "b").await;
    wait_entries(h, &p, 2).await;
    handle_tx.send_replace(Some(a.clone()));
    lead(h, &b).await;
    wait_queue(h, &b, &["b", "a"]).await;
    // Second term: stop from inside.
    b.resign().await.unwrap();
    let stopped = async {
        let mut state = a.state();
        while !state.borrow_and_update().is_stopped() {
            state.changed().await.expect("state");
        }
    };
    timeout(patience(h), stopped).await.expect("a stops");
    lead(h, &b).await;
    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 2, "{calls:?}");
    for (took, went_on) in &calls {
        assert!(*took <= h.slack(), "the call from the work took {took:?}");
        assert!(went_on, "the work was aborted: {calls:?}");
    }
    while let Ok(e) = events.try_recv() {
        assert!(
            !matches!(
                e,
                Event::Notice {
                    notice: Notice::WorkOverranGrace(_),
                    ..
                }
            ),
            "the work overran its grace"
        );
    }
    assert_eq!(
        a.current(),
        ElectionState::Stopped(crate::StopReason::Stopped)
    );
    handle_tx.send_replace(None);
    b.stop().await;
    assert_eq!(entry_count(h, &p).await, 0);
}

/// Tasks the work spawns with [`Term::spawn`](crate::Term::spawn) end with the work: cancelled
/// and awaited before the entry is given up, whether the work stops on cancellation, returns
/// by itself, or is aborted after the grace.
pub async fn term_tasks_end_with_the_work(h: &dyn Harness) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    /// Counts live tasks: one more while it exists.
    struct Alive(Arc<AtomicUsize>);
    impl Drop for Alive {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }
    let p = path(h, "term-tasks");
    let alive = Arc::new(AtomicUsize::new(0));
    let spawned = Arc::new(AtomicUsize::new(0));
    let (alive2, spawned2) = (alive.clone(), spawned.clone());
    let grace = h.session_timeout() / 10;
    let a = Candidate::builder(p.as_str(), "a")
        .session_timeout(h.session_timeout())
        .leader_grace(grace)
        .on_leader(move |term: crate::Term| {
            let (alive, spawned) = (alive2.clone(), spawned2.clone());
            async move {
                for _ in 0..3 {
                    alive.fetch_add(1, Ordering::SeqCst);
                    spawned.fetch_add(1, Ordering::SeqCst);
                    let guard = Alive(alive.clone());
                    term.spawn(async move {
                        let _guard = guard;
                        // Ignores the term's cancellation: only Term::spawn's ends it.
                        loop {
                            sleep(Duration::from_millis(5)).await;
                        }
                    });
                }
                term.cancelled().await;
            }
        })
        .join(h.backend().await)
        .await
        .expect("join");
    lead(h, &a).await;
    let b = join(h, &p, "b").await;
    wait_entries(h, &p, 2).await;
    while spawned.load(Ordering::SeqCst) < 3 {
        sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(alive.load(Ordering::SeqCst), 3);
    a.resign().await.unwrap();
    assert_eq!(
        alive.load(Ordering::SeqCst),
        0,
        "tasks of the term outlived its resignation"
    );
    lead(h, &b).await;
    a.stop().await;
    b.stop().await;
    assert_eq!(alive.load(Ordering::SeqCst), 0);
    assert_eq!(entry_count(h, &p).await, 0);
}

/// `stop()` returns only once the leader work has ended, also when the work was aborted with
/// the candidate (the session ended while it led, and the candidate does not rejoin).
pub async fn stop_returns_after_aborted_work_ended(h: &dyn Harness) {
    let p = path(h, "stop-awaits-work");
    let log = WorkLog::new();
    let a = Candidate::builder(p.as_str(), "a")
        .session_timeout(h.session_timeout())
        .rejoin_on_expiry(false)
        .on_leader(log.work("a", Duration::from_secs(3600)))
        .join(h.backend().await)
        .await
        .expect("join");
    lead(h, &a).await;
    let session = a.client().session().await.id();
    h.expire(session).await;
    a.stop().await;
    assert!(a.current().is_stopped(), "{:?}", a.current());
    assert!(
        log.spans().iter().all(|s| s.end.is_some()),
        "stop returned while the work ran: {:?}",
        log.spans()
    );
}

/// S1 across implementations: a contender of another implementation (a Curator latch) ahead of
/// a candidate is listed with its order, owner, token and data; the candidate waits behind it
/// (its follower state names it as the leader, with its implementation and id), reports it,
/// never leads beside it, and leads once it is gone.
pub async fn foreign_contender_ahead_is_waited_for(h: &dyn Harness) {
    use crate::foreign::Implementation;
    let p = path(h, "foreign_contender_ahead_is_waited_for");
    let name = h
        .create_contender(p.as_str(), Implementation::CuratorLatch, b"curator-1")
        .await;
    let mut rec = Recorder::new();
    let a = join(h, &p, "a").await;
    rec.watch(&a);
    let mut events = a.events();
    wait_entries(h, &p, 1).await;
    // The listing carries it, ordered with our entry, with its data and live owner.
    let l = admin_list(h, &p).await;
    assert_eq!(l.contenders.len(), 1, "{l:?}");
    let c = &l.contenders[0];
    assert_eq!(c.name, name);
    assert_eq!(c.data, b"curator-1");
    assert_ne!(c.owner, crate::SessionId(0), "{c:?}");
    assert!(c.sequence < l.entries[0].sequence, "{l:?}");
    assert!(l.foreign.is_empty(), "{l:?}");
    let deadline = Instant::now() + patience(h);
    loop {
        if let ElectionState::Follower {
            position: 1,
            leader: Some(leader),
        } = a.current()
        {
            assert_eq!(leader.implementation, Implementation::CuratorLatch);
            assert_eq!(leader.id, "curator-1");
            assert_eq!(leader.token, c.token);
            break;
        }
        assert!(Instant::now() < deadline, "a: {:?}", a.current());
        sleep(Duration::from_millis(10) + h.slack() / 4).await;
    }
    let mut reported = false;
    while let Ok(e) = events.try_recv() {
        if let Event::Notice {
            notice: Notice::ForeignContenders(cs),
            ..
        } = e
        {
            reported |= cs.iter().any(|c| {
                c.name == name
                    && c.implementation == Implementation::CuratorLatch
                    && c.id == "curator-1"
            });
        }
    }
    assert!(reported, "the contender was not reported");
    sleep(h.session_timeout()).await;
    assert!(!a.is_leader(), "a led beside the contender");
    let removed = Instant::now();
    h.remove_contender(p.as_str(), &name).await;
    lead(h, &a).await;
    let intervals = rec.leader_intervals();
    assert!(
        intervals.len() == 1 && intervals[0].start >= removed,
        "{intervals:?}"
    );
    a.stop().await;
}
