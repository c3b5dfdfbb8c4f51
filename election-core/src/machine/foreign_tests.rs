//! Unit tests of the machine with contenders of other implementations (Curator, kazoo) in the
//! election directory: never lead while one is ahead, watch it, report it, say why we wait.

use super::*;
use crate::backend::{ListedContender, ListedEntry};
use crate::foreign::Implementation;
use crate::path::ElectionPath;

const T: Duration = Duration::from_secs(3);
const ME: SessionId = SessionId(7);
const CURATOR: &str = "_c_5d0e6b1a-3c2f-4b9e-9f5a-6a7c1e2d3b4f-latch-0000000001";
const KAZOO: &str = "9f1c0e4a5b6d4e2f8a7b3c1d0e9f8a7b__lock__0000000005";

fn machine(compatible: Option<Implementation>) -> (Machine, Instant, Marker) {
    let cfg = MachineConfig {
        path: ElectionPath::new("/e").unwrap(),
        id: "me".into(),
        step_down_fraction: 2.0 / 3.0,
        grace: Duration::from_millis(500).into(),
        rejoin_on_expiry: true,
        has_work: true,
        when_work_ends: WorkEnded::Resign,
        marker_prefix: 0xabcd,
        compatible,
        leader_notes: true,
    };
    let now = Instant::now();
    let mut m = Machine::new(cfg, ME, T, SessionState::Connected, now);
    let marker = match m.take_actions().as_slice() {
        [Action::Create { marker }] => marker.clone(),
        out => panic!("{out:?}"),
    };
    (m, now, marker)
}

fn contender(name: &str, seq: u64, data: &[u8]) -> ListedContender {
    ListedContender {
        name: name.into(),
        sequence: seq,
        owner: SessionId(0x51),
        token: FencingToken(50 + seq),
        data: data.to_vec(),
    }
}

/// Registered as `mine` at sequence `seq`, then listed with `contenders`.
fn placed(
    compatible: Option<Implementation>,
    seq: u64,
    contenders: Vec<ListedContender>,
) -> (Machine, Instant, Vec<Action>) {
    let (mut m, now, marker) = machine(compatible);
    m.handle(
        now,
        Input::Created(Ok(EntryInfo {
            name: "mine".into(),
            sequence: seq,
            owner: ME,
            marker: marker.clone(),
            token: FencingToken(100 + seq),
            data: vec![],
            sole: false,
        })),
    );
    m.take_actions();
    m.handle(now, Input::Listed(Ok(listing(&marker, seq, contenders))));
    let out = m.take_actions();
    (m, now, out)
}

fn listing(marker: &Marker, seq: u64, contenders: Vec<ListedContender>) -> Listing {
    Listing {
        entries: vec![ListedEntry {
            name: "mine".into(),
            sequence: seq,
            owner: ME,
            marker: marker.clone(),
        }],
        contenders,
        foreign: vec![],
        foreign_omitted: 0,
    }
}

fn reported(out: &[Action]) -> Option<Vec<crate::state::ForeignContender>> {
    out.iter().find_map(|a| match a {
        Action::Emit(Event::Notice {
            notice: Notice::ForeignContenders(c),
            ..
        }) => Some(c.clone()),
        _ => None,
    })
}

fn marker(m: &Machine) -> Marker {
    Marker::from_bits((u64::from(m.marker_prefix()) << 32) | 1)
}

#[test]
fn a_curator_leader_ahead_is_waited_for_watched_reported_and_shown_as_leader() {
    let (mut m, now, out) = placed(None, 2, vec![contender(CURATOR, 1, b"curator-host")]);
    assert!(!m.state().is_leader());
    assert!(
        out.contains(&Action::WatchPredecessor {
            name: CURATOR.into()
        }),
        "{out:?}"
    );
    // Its data is in the listing: nothing to read.
    assert!(
        !out.iter().any(|a| matches!(a, Action::Read { .. })),
        "{out:?}"
    );
    let c = reported(&out).expect("contenders reported");
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].implementation, Implementation::CuratorLatch);
    assert_eq!(c[0].id, "curator-host");
    // The state says why it waits: a Curator latch leads.
    match m.state() {
        ElectionState::Follower {
            position: 1,
            leader: Some(l),
        } => {
            assert_eq!(l.implementation, Implementation::CuratorLatch);
            assert_eq!(l.id, "curator-host");
            assert_eq!(l.token, FencingToken(51));
            assert_eq!(l.session, SessionId(0x51));
        }
        s => panic!("{s:?}"),
    }
    // It leaves: list again (a foreign contender may have come meanwhile), not a bare
    // confirmation, then lead.
    m.handle(
        now,
        Input::PredecessorGone {
            name: CURATOR.into(),
            result: Ok(()),
        },
    );
    let out = m.take_actions();
    assert!(out.contains(&Action::List), "{out:?}");
    assert!(!m.state().is_leader());
    let mk = marker(&m);
    m.handle(now, Input::Listed(Ok(listing(&mk, 2, vec![]))));
    let out = m.take_actions();
    assert_eq!(m.state().token(), Some(FencingToken(102)));
    assert_eq!(reported(&out), Some(vec![]), "the last one left: {out:?}");
}

#[test]
fn a_stock_contender_behind_us_is_still_ahead_it_does_not_see_our_entries() {
    // kazoo ignores our entries: it leads whatever its sequence, so we must not.
    let (m, _, out) = placed(None, 2, vec![contender(KAZOO, 5, b"kazoo-1")]);
    assert!(!m.state().is_leader());
    assert!(
        out.contains(&Action::WatchPredecessor { name: KAZOO.into() }),
        "{out:?}"
    );
    assert!(matches!(
        m.state(),
        ElectionState::Follower { position: 1, leader: Some(l) } if l.implementation == Implementation::Kazoo
    ));
}

#[test]
fn in_a_compatibility_mode_its_contenders_are_ordered_by_sequence() {
    // Our entries named as Curator's latch: Curator orders them, and we order its by sequence.
    let (m, _, _) = placed(
        Some(Implementation::CuratorLatch),
        0,
        vec![contender(CURATOR, 1, b"curator-host")],
    );
    assert_eq!(m.state().token(), Some(FencingToken(100)));
    // Ahead by sequence: wait.
    let (m, _, out) = placed(
        Some(Implementation::CuratorLatch),
        2,
        vec![contender(CURATOR, 1, b"curator-host")],
    );
    assert!(!m.state().is_leader());
    assert!(out.contains(&Action::WatchPredecessor {
        name: CURATOR.into()
    }));
    // Another implementation is still ahead of us, whatever its sequence.
    let (m, _, _) = placed(
        Some(Implementation::CuratorLatch),
        0,
        vec![contender(KAZOO, 5, b"kazoo-1")],
    );
    assert!(!m.state().is_leader());
}

#[test]
fn unreadable_data_is_shown_as_such_and_never_trusted() {
    let (m, _, out) = placed(None, 2, vec![contender(CURATOR, 1, &[0xff, 0x00, 0xfe])]);
    assert!(!m.state().is_leader());
    assert_eq!(reported(&out).unwrap()[0].id, "<3 bytes, not UTF-8>");
    // Even data that decodes as one of our records is a foreign contender's, not ours.
    let record = CandidateRecord {
        id: "impostor".into(),
        payload: vec![],
    }
    .encode();
    let (m, _, _) = placed(None, 2, vec![contender(CURATOR, 1, &record)]);
    assert!(!m.state().is_leader());
}

#[test]
fn a_persistent_sequential_node_is_foreign_and_ignored() {
    let mut persistent = contender("lock-0000000000", 0, b"");
    persistent.owner = SessionId(0);
    let (m, _, out) = placed(None, 1, vec![persistent]);
    assert_eq!(m.state().token(), Some(FencingToken(101)));
    assert!(out.iter().any(|a| matches!(a,
        Action::Emit(Event::Notice { notice: Notice::ForeignEntries(f), .. }) if f == &["lock-0000000000".to_owned()])),
        "{out:?}");
}

#[test]
fn a_leader_that_finds_a_foreign_contender_ahead_steps_down() {
    let (mut m, now, _) = placed(None, 0, vec![]);
    assert!(m.state().is_leader());
    // Contact lost and restored: the leader lists again and finds a Curator latch that came.
    m.handle(
        now,
        Input::Session(SessionState::Disconnected { last_contact: now }),
    );
    m.handle(now, Input::Session(SessionState::Connected));
    let out = m.take_actions();
    assert!(out.contains(&Action::List), "{out:?}");
    let mk = marker(&m);
    m.handle(
        now,
        Input::Listed(Ok(listing(&mk, 0, vec![contender(CURATOR, 1, b"c")]))),
    );
    let out = m.take_actions();
    assert!(!m.state().is_leader());
    assert!(out.contains(&Action::CancelWork), "{out:?}");
    assert!(
        out.iter().any(|a| matches!(a,
            Action::Emit(Event::Transition(t)) if t.reason == Reason::ForeignContenderAhead)),
        "{out:?}"
    );
}

#[test]
fn behind_several_contenders_we_watch_the_one_directly_ahead() {
    let (m, _, out) = placed(
        None,
        9,
        vec![
            contender(CURATOR, 1, b"a"),
            contender(KAZOO, 5, b"b"),
            contender("member_0000000012", 12, b"c"),
        ],
    );
    assert!(out.contains(&Action::WatchPredecessor {
        name: "member_0000000012".into()
    }));
    assert!(matches!(
        m.state(),
        ElectionState::Follower { position: 3, leader: Some(l) } if l.id == "a"
    ));
}

/// A Curator latch node at `seq`, of its own session.
fn latch(seq: u64) -> ListedContender {
    let mut c = contender(
        &format!("_c_5d0e6b1a-3c2f-4b9e-9f5a-6a7c1e2d3b4f-latch-{seq:010}"),
        seq,
        format!("curator-{seq}").as_bytes(),
    );
    c.owner = SessionId(0x100 + seq);
    c
}

#[test]
fn in_a_compatibility_mode_the_queue_hands_over_in_sequence_order() {
    // Curator latches at 1, 2 and 4; ours at 3. We wait behind 2 (Curator's own order agrees:
    // it sorts our `-latch-` entry at 3), and lead once 1 and 2 are gone, with 4 behind us.
    let mode = Some(Implementation::CuratorLatch);
    let (mut m, now, out) = placed(mode, 3, vec![latch(1), latch(2), latch(4)]);
    assert!(
        out.contains(&Action::WatchPredecessor {
            name: latch(2).name.into()
        }),
        "{out:?}"
    );
    assert!(matches!(
        m.state(),
        ElectionState::Follower { position: 2, leader: Some(l) }
            if l.id == "curator-1" && l.implementation == Implementation::CuratorLatch
    ));
    let mk = marker(&m);
    // 1 leaves (our watch is on 2), then 2: its watch fires. A contender of another implementation was seen, so the claim
    // comes from a listing, never from the notification alone.
    m.handle(
        now,
        Input::PredecessorGone {
            name: latch(2).name.into(),
            result: Ok(()),
        },
    );
    let out = m.take_actions();
    assert!(out.contains(&Action::List), "{out:?}");
    assert!(!m.state().is_leader());
    m.handle(now, Input::Listed(Ok(listing(&mk, 3, vec![latch(4)]))));
    assert_eq!(m.state().token(), Some(FencingToken(103)));
    m.take_actions();
    // A latch joining behind a leader of ours in this mode does not unseat it.
    m.handle(
        now,
        Input::Session(SessionState::Disconnected { last_contact: now }),
    );
    m.handle(now, Input::Session(SessionState::Connected));
    assert!(m.take_actions().contains(&Action::List));
    m.handle(
        now,
        Input::Listed(Ok(listing(&mk, 3, vec![latch(4), latch(5)]))),
    );
    assert_eq!(m.state().token(), Some(FencingToken(103)));
    // A Curator *lock* or kazoo node does not order our latch-named entry: ahead, whatever its
    // sequence; the leader steps down.
    m.handle(
        now,
        Input::Session(SessionState::Disconnected { last_contact: now }),
    );
    m.handle(now, Input::Session(SessionState::Connected));
    m.take_actions();
    let lock = contender(
        "_c_5d0e6b1a-3c2f-4b9e-9f5a-6a7c1e2d3b4f-lock-0000000006",
        6,
        b"lock",
    );
    m.handle(
        now,
        Input::Listed(Ok(listing(&mk, 3, vec![latch(4), lock.clone()]))),
    );
    let out = m.take_actions();
    assert!(!m.state().is_leader());
    assert!(
        out.contains(&Action::WatchPredecessor {
            name: lock.name.into()
        }),
        "{out:?}"
    );
}

#[test]
fn each_mode_orders_only_its_own_kind_by_sequence() {
    let lock = |seq: u64| {
        contender(
            &format!("_c_5d0e6b1a-3c2f-4b9e-9f5a-6a7c1e2d3b4f-lock-{seq:010}"),
            seq,
            b"l",
        )
    };
    let kazoo = |seq: u64| {
        contender(
            &format!("9f1c0e4a5b6d4e2f8a7b3c1d0e9f8a7b__lock__{seq:010}"),
            seq,
            b"k",
        )
    };
    use Implementation::{CuratorLatch, CuratorLock, Kazoo};
    // (mode, the contender behind our entry at 1, whether we lead)
    let cases = [
        (Some(CuratorLatch), latch(2), true),
        (Some(CuratorLatch), lock(2), false),
        (Some(CuratorLatch), kazoo(2), false),
        (Some(CuratorLock), lock(2), true),
        (Some(CuratorLock), latch(2), false),
        (Some(Kazoo), kazoo(2), true),
        (Some(Kazoo), lock(2), false),
        (None, latch(2), false),
        (None, kazoo(2), false),
    ];
    for (mode, c, leads) in cases {
        let name = c.name.clone();
        let (m, _, _) = placed(mode, 1, vec![c]);
        assert_eq!(m.state().is_leader(), leads, "{mode:?} with {name}");
    }
}

#[test]
fn the_leader_read_of_a_compatibility_entry_of_ours_shows_its_plain_id() {
    let (mut m, now, marker) = machine(Some(Implementation::Kazoo));
    m.handle(
        now,
        Input::Created(Ok(EntryInfo {
            name: "mine".into(),
            sequence: 4,
            owner: ME,
            marker: marker.clone(),
            token: FencingToken(104),
            data: b"me".to_vec(),
            sole: false,
        })),
    );
    m.take_actions();
    let head = "_c_00000000000000aa-0000000000000009__lock__0000000002";
    let mut l = listing(&marker, 4, vec![]);
    l.entries.insert(
        0,
        ListedEntry {
            name: head.into(),
            sequence: 2,
            owner: SessionId(9),
            marker: Marker::from_bits(0xaa),
        },
    );
    m.handle(now, Input::Listed(Ok(l)));
    let out = m.take_actions();
    assert!(out.contains(&Action::Read { name: head.into() }), "{out:?}");
    m.handle(
        now,
        Input::Read {
            name: head.into(),
            result: Ok(Some(EntryInfo {
                name: head.into(),
                sequence: 2,
                owner: SessionId(9),
                marker: Marker::from_bits(0xaa),
                token: FencingToken(102),
                data: b"host-a".to_vec(),
                sole: false,
            })),
        },
    );
    assert!(matches!(
        m.state(),
        ElectionState::Follower { position: 1, leader: Some(l) }
            if l.id == "host-a" && l.payload.is_empty() && l.implementation == Implementation::Election
    ));
}
