//! Compatibility modes on the in-memory service, in virtual time: our entries named in another
//! implementation's shape are still ours (a lost create reply is found again by its marker, no
//! orphan is left), hold the id as plain UTF-8, and the queue with that implementation's
//! contenders hands over in sequence order.

use std::time::Duration;

use election_core::testing::recorder::Recorder;
use election_core::{
    Candidate, Compatibility, ConfigError, ElectionState, Implementation, ListedEntry,
};
use election_mem::MemCluster;

const T: Duration = Duration::from_secs(3);
const P: &str = "/compat/leader";
const MODES: [Compatibility; 3] = [
    Compatibility::CuratorLatch,
    Compatibility::CuratorLock,
    Compatibility::Kazoo,
];

async fn join(cluster: &MemCluster, id: &str, mode: Compatibility) -> Candidate {
    Candidate::builder(P, id)
        .session_timeout(T)
        .compatibility(mode)
        .join(cluster.backend())
        .await
        .unwrap()
}

async fn leads(c: &Candidate) -> election_core::FencingToken {
    tokio::time::timeout(T, c.wait_for_leadership())
        .await
        .unwrap_or_else(|e| Err(e.into()))
        .unwrap_or_else(|e| panic!("{} did not lead: {e}", c.id()))
}

fn shaped(entries: &[ListedEntry], mode: Compatibility) {
    for e in entries {
        assert!(
            e.name
                .ends_with(&format!("{}{:010}", mode.separator(), e.sequence)),
            "{} is not in the {mode} shape",
            e.name
        );
    }
}

/// S5 in every mode: the create's reply is lost; the entry is found again by the marker in its
/// compat-shaped name and adopted: one entry, one create, no orphan; the id reads back plain.
#[tokio::test(start_paused = true)]
async fn a_lost_create_reply_leaves_no_orphan_in_any_mode() {
    for mode in MODES {
        let cluster = MemCluster::new();
        cluster.lose_create_replies(1);
        let a = join(&cluster, "host-a", mode).await;
        let token = leads(&a).await;
        let entries = cluster.entries(P);
        assert_eq!(entries.len(), 1, "{mode}: {entries:?}");
        shaped(&entries, mode);
        assert_eq!(
            cluster.stats().creates,
            1,
            "{mode}: the create was repeated"
        );
        let leader = a.current_leader().await.unwrap().unwrap();
        assert_eq!(
            (leader.id.as_str(), leader.token, leader.payload.len()),
            ("host-a", token, 0)
        );
        assert_eq!(leader.implementation, Implementation::Election);
        a.stop().await;
        assert!(cluster.entries(P).is_empty(), "{mode}");
    }
}

/// S5: stopping while a compat create's outcome is unknown finds it by its marker and deletes
/// it; several lost replies in a row still leave one entry.
#[tokio::test(start_paused = true)]
async fn unknown_creates_in_a_mode_are_swept_or_adopted() {
    for mode in MODES {
        let cluster = MemCluster::new();
        let b = join(&cluster, "b", mode).await;
        leads(&b).await;
        cluster.lose_create_replies(1);
        let a = join(&cluster, "a", mode).await;
        a.stop().await;
        assert_eq!(cluster.entries(P).len(), 1, "{mode}: only b's entry stays");
        cluster.lose_create_replies(3);
        let c = join(&cluster, "c", mode).await;
        tokio::time::sleep(T).await;
        let entries = cluster.entries(P);
        assert_eq!(entries.len(), 2, "{mode}: {entries:?}");
        shaped(&entries, mode);
        assert!(
            matches!(c.current(), ElectionState::Follower { position: 1, leader: Some(ref l) } if l.id == "b"),
            "{mode}: {:?}",
            c.current()
        );
        c.stop().await;
        b.stop().await;
        assert!(cluster.entries(P).is_empty(), "{mode}");
    }
}

/// A queue of ours and the mode's own implementation, interleaved, hands over in sequence
/// order with one leader at a time; a contender of another implementation is still ahead.
#[tokio::test(start_paused = true)]
async fn a_mixed_queue_hands_over_in_sequence_order() {
    for mode in MODES {
        let cluster = MemCluster::new();
        let mut rec = Recorder::new();
        let theirs = mode.implementation();
        let c1 = cluster.create_contender(P, theirs, b"theirs-1");
        let a = join(&cluster, "a", mode).await;
        rec.watch(&a);
        tokio::time::sleep(T / 10).await;
        let c2 = cluster.create_contender(P, theirs, b"theirs-2");
        let b = join(&cluster, "b", mode).await;
        rec.watch(&b);
        tokio::time::sleep(T / 10).await;
        // Ahead: the head is theirs.
        assert!(
            matches!(a.current(), ElectionState::Follower { position: 1, leader: Some(ref l) }
            if l.id == "theirs-1" && l.implementation == theirs),
            "{mode}: {:?}",
            a.current()
        );
        assert!(!b.is_leader());
        // Behind `a` by sequence: `a` leads when c1 leaves, c2 waits (as its own
        // implementation would, seeing a's entry ahead of it).
        cluster.delete_entry(P, &c1);
        leads(&a).await;
        assert!(!b.is_leader());
        // b watches c2 only: its position is the one of its last listing (c1, a, c2, b).
        assert!(
            matches!(b.current(), ElectionState::Follower { position: 3, .. }),
            "{mode}: {:?}",
            b.current()
        );
        a.stop().await;
        // c2 is the head now: b waits for it.
        tokio::time::sleep(T / 10).await;
        assert!(!b.is_leader(), "{mode}: b led beside {c2}");
        cluster.delete_entry(P, &c2);
        leads(&b).await;
        let intervals = rec.leader_intervals();
        assert_eq!(intervals.len(), 2, "{mode}: {intervals:?}");
        assert_eq!(intervals[0].candidate, "a");
        assert!(intervals[0]
            .end
            .is_some_and(|end| end <= intervals[1].start));
        b.stop().await;
    }
}

#[test]
fn a_payload_has_no_place_in_a_mode() {
    let err = Candidate::builder(P, "a")
        .payload(b"10.0.0.1:80".to_vec())
        .compatibility(Compatibility::Kazoo)
        .build()
        .unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::PayloadWithCompatibility(Compatibility::Kazoo)
        ),
        "{err}"
    );
    assert_eq!(
        "curator-lock".parse::<Compatibility>(),
        Ok(Compatibility::CuratorLock)
    );
    assert!("zk".parse::<Compatibility>().is_err());
}
