//! Unit tests of the election machine: one rule each, driven input by input.

use super::*;
use crate::backend::ListedEntry;
use crate::path::ElectionPath;

const T: Duration = Duration::from_secs(3);
const ME: SessionId = SessionId(7);

fn cfg(has_work: bool) -> MachineConfig {
    MachineConfig {
        path: ElectionPath::new("/e").unwrap(),
        id: "me".into(),
        step_down_fraction: 2.0 / 3.0,
        grace: Duration::from_millis(500).into(),
        rejoin_on_expiry: true,
        has_work,
        when_work_ends: WorkEnded::Resign,
        marker_prefix: 0xabcd,
        compatible: None,
        leader_notes: true,
    }
}

fn machine(has_work: bool) -> (Machine, Instant) {
    machine_with(cfg(has_work))
}

fn machine_with(cfg: MachineConfig) -> (Machine, Instant) {
    let now = Instant::now();
    let mut m = Machine::new(cfg, ME, T, SessionState::Connected, now);
    let out = m.take_actions();
    assert!(matches!(out.as_slice(), [Action::Create { .. }]), "{out:?}");
    (m, now)
}

fn marker_of(m: &Machine) -> Marker {
    match &m.phase {
        Phase::Registering { marker, .. } => marker.clone(),
        p => panic!("not registering: {p:?}"),
    }
}

fn entry(name: &str, seq: u64, owner: SessionId, marker: Marker) -> ListedEntry {
    ListedEntry {
        name: name.into(),
        sequence: seq,
        owner,
        marker,
    }
}

fn info(name: &str, seq: u64, marker: Marker) -> EntryInfo {
    EntryInfo {
        name: name.into(),
        sequence: seq,
        owner: ME,
        marker,
        token: FencingToken(100 + seq),
        data: vec![],
        sole: false,
    }
}

fn other(seq: u64) -> ListedEntry {
    entry(
        &format!("o{seq}"),
        seq,
        SessionId(99),
        Marker::from_bits(seq),
    )
}

/// Registered as `mine` at `seq`, behind `ahead` other entries, listed.
fn placed(has_work: bool, ahead: u64) -> (Machine, Instant, Vec<Action>) {
    placed_with(cfg(has_work), ahead)
}

/// As [`placed`], on a backend that keeps no leader notes: a head hand-over is confirmed by a
/// read of our own entry alone ([`Action::Read`]), where with notes the same request also reads
/// the note ([`Action::Confirm`]); what follows the answer is the same.
fn placed_reading(has_work: bool, ahead: u64) -> (Machine, Instant, Vec<Action>) {
    placed_with(
        MachineConfig {
            leader_notes: false,
            ..cfg(has_work)
        },
        ahead,
    )
}

fn placed_with(cfg: MachineConfig, ahead: u64) -> (Machine, Instant, Vec<Action>) {
    let (mut m, now) = machine_with(cfg);
    let mk = marker_of(&m);
    m.handle(now, Input::Created(Ok(info("mine", ahead, mk.clone()))));
    let out = m.take_actions();
    assert!(
        out.contains(&Action::WatchOwn {
            name: "mine".into()
        }) && out.contains(&Action::List),
        "{out:?}"
    );
    let mut entries: Vec<_> = (0..ahead).map(other).collect();
    entries.push(entry("mine", ahead, ME, mk));
    m.handle(
        now,
        Input::Listed(Ok(Listing {
            entries,
            foreign: vec![],
            contenders: vec![],
            foreign_omitted: 0,
        })),
    );
    let out = m.take_actions();
    (m, now, out)
}

#[test]
fn unknown_create_is_looked_up_before_creating_again() {
    let (mut m, now) = machine(false);
    let mk = marker_of(&m);
    m.handle(
        now,
        Input::Created(Err(BackendError::new(ErrorKind::OutcomeUnknown, "lost"))),
    );
    assert!(!m
        .take_actions()
        .iter()
        .any(|a| matches!(a, Action::Create { .. } | Action::List)));
    m.handle(now + T, Input::Timer);
    assert_eq!(m.take_actions(), [Action::List, Action::SetTimer(None)]);
    // Found, owned by us: adopted after a read, no second create.
    let l = Listing {
        entries: vec![entry("mine", 0, ME, mk.clone())],
        foreign: vec![],
        contenders: vec![],
        foreign_omitted: 0,
    };
    m.handle(now + T, Input::Listed(Ok(l)));
    assert_eq!(
        m.take_actions(),
        [Action::Read {
            name: "mine".into()
        }]
    );
    m.handle(
        now + T,
        Input::Read {
            name: "mine".into(),
            result: Ok(Some(info("mine", 0, mk))),
        },
    );
    let out = m.take_actions();
    assert!(
        out.contains(&Action::WatchOwn {
            name: "mine".into()
        }),
        "{out:?}"
    );
    assert!(!out.iter().any(|a| matches!(a, Action::Create { .. })));
}

#[test]
fn marker_under_another_session_is_not_adopted() {
    // CURATOR-696: an entry with our marker from an older session is not ours to lead with.
    let (mut m, now) = machine(false);
    let mk = marker_of(&m);
    m.handle(
        now,
        Input::Created(Err(BackendError::new(ErrorKind::OutcomeUnknown, "lost"))),
    );
    m.handle(now + T, Input::Timer);
    m.take_actions();
    let l = Listing {
        entries: vec![entry("old", 0, SessionId(3), mk)],
        foreign: vec![],
        contenders: vec![],
        foreign_omitted: 0,
    };
    m.handle(now + T, Input::Listed(Ok(l)));
    let out = m.take_actions();
    assert!(
        out.iter().any(|a| matches!(a, Action::Create { .. })),
        "{out:?}"
    );
    assert!(!m.state().is_leader());
}

#[test]
fn first_in_listing_but_foreign_owner_does_not_lead() {
    let (mut m, now) = machine(false);
    let mk = marker_of(&m);
    m.handle(now, Input::Created(Ok(info("mine", 0, mk.clone()))));
    m.take_actions();
    let l = Listing {
        entries: vec![entry("mine", 0, SessionId(3), mk)],
        foreign: vec![],
        contenders: vec![],
        foreign_omitted: 0,
    };
    m.handle(now, Input::Listed(Ok(l)));
    assert!(!m.state().is_leader());
    assert_eq!(*m.state(), ElectionState::Joining);
    assert!(m
        .take_actions()
        .iter()
        .any(|a| matches!(a, Action::Create { .. })));
}

#[test]
fn first_in_listing_leads_and_starts_work() {
    let (m, _, out) = placed(true, 0);
    assert!(
        out.contains(&Action::StartWork {
            token: FencingToken(100)
        }),
        "{out:?}"
    );
    assert_eq!(m.state().token(), Some(FencingToken(100)));
}

#[test]
fn head_handover_claims_after_reading_its_own_entry_without_listing() {
    let (mut m, now, out) = placed_reading(false, 1);
    assert!(
        out.contains(&Action::WatchPredecessor { name: "o0".into() }),
        "{out:?}"
    );
    assert!(matches!(
        m.state(),
        ElectionState::Follower { position: 1, .. }
    ));
    m.take_actions();
    m.handle(
        now,
        Input::PredecessorGone {
            name: "o0".into(),
            result: Ok(()),
        },
    );
    assert_eq!(
        m.take_actions(),
        [Action::Read {
            name: "mine".into()
        }]
    );
    assert!(!m.state().is_leader());
    let mk = marker_of_entry();
    m.handle(
        now,
        Input::Read {
            name: "mine".into(),
            result: Ok(Some(info("mine", 1, mk))),
        },
    );
    assert!(m.state().is_leader());
    assert!(!m.take_actions().contains(&Action::List));
}

/// Where leaders keep notes, the successor of the head confirms with the same one request as
/// further back, which reads the note too (not needed to decide: the head had nothing ahead);
/// the note that its own claim then writes needs no read of the directory of its own.
#[test]
fn with_leader_notes_the_head_handover_reads_the_note_in_the_same_request() {
    let (mut m, now, _) = placed(false, 1);
    m.take_actions();
    m.handle(
        now,
        Input::PredecessorGone {
            name: "o0".into(),
            result: Ok(()),
        },
    );
    assert_eq!(
        m.take_actions(),
        [Action::Confirm {
            name: "mine".into(),
            note: true,
        }]
    );
    m.handle(
        now,
        Input::Confirmed {
            name: "mine".into(),
            result: Ok(Confirmation {
                own: Some(info("mine", 1, marker_of_entry())),
                // Whatever it names: the predecessor was the head.
                leader_note: Some("o-older".into()),
            }),
        },
    );
    assert!(m.state().is_leader());
    let out = m.take_actions();
    assert!(
        out.contains(&Action::NoteLeader {
            name: "mine".into()
        }),
        "{out:?}"
    );
    assert!(!out.contains(&Action::List), "{out:?}");
}

#[test]
fn head_handover_with_our_entry_deleted_in_the_same_transaction_never_leads() {
    // An administrator's multi-op deletes the head and our entry at once; the predecessor's
    // notification comes first. The confirming read finds nothing: no phantom term.
    let (mut m, now, _) = placed_reading(true, 1);
    m.take_actions();
    m.handle(
        now,
        Input::PredecessorGone {
            name: "o0".into(),
            result: Ok(()),
        },
    );
    m.handle(
        now,
        Input::Read {
            name: "mine".into(),
            result: Ok(None),
        },
    );
    assert_eq!(m.state(), &ElectionState::Joining);
    let out = m.take_actions();
    assert!(
        !out.iter().any(|a| matches!(a, Action::StartWork { .. })),
        "{out:?}"
    );
    assert!(
        !out.iter()
            .any(|a| matches!(a, Action::Emit(Event::Transition(t)) if t.to.is_leader())),
        "{out:?}"
    );
    assert!(
        out.iter().any(|a| matches!(a, Action::Create { .. })),
        "{out:?}"
    );
}

/// S3 / L3: the note names the predecessor (it led, so nothing was left ahead of it) and our
/// entry is still ours: we lead without listing.
#[test]
fn the_note_naming_the_predecessor_and_ours_confirmed_we_lead() {
    let (mut m, now, _) = placed(false, 3);
    m.handle(
        now,
        Input::PredecessorGone {
            name: "o2".into(),
            result: Ok(()),
        },
    );
    let out = m.take_actions();
    assert!(
        out.contains(&Action::Confirm {
            name: "mine".into(),
            note: true,
        }),
        "{out:?}"
    );
    // Our entry gone (an administrator's multi-op took it with the predecessor): no term.
    let (mut lost, _, _) = placed(false, 3);
    lost.handle(
        now,
        Input::PredecessorGone {
            name: "o2".into(),
            result: Ok(()),
        },
    );
    lost.take_actions();
    lost.handle(
        now,
        Input::Confirmed {
            name: "mine".into(),
            result: Ok(conf(None, Some("o2"))),
        },
    );
    assert!(!lost.state().is_leader());
    assert!(has_create(&lost.take_actions()));
    m.handle(
        now,
        Input::Confirmed {
            name: "mine".into(),
            result: Ok(conf(Some(info("mine", 3, marker_of_entry())), Some("o2"))),
        },
    );
    assert!(m.state().is_leader(), "{:?}", m.state());
    assert!(!m.take_actions().contains(&Action::List));
}

/// A failed confirmation falls back to a listing, after a back-off.
#[test]
fn a_failed_confirmation_lists_again() {
    let (mut m, now, _) = placed(false, 2);
    m.handle(
        now,
        Input::PredecessorGone {
            name: "o1".into(),
            result: Ok(()),
        },
    );
    m.take_actions();
    m.handle(
        now,
        Input::Confirmed {
            name: "mine".into(),
            result: Err(BackendError::new(ErrorKind::OutcomeUnknown, "lost")),
        },
    );
    assert!(!m.state().is_leader());
    m.handle(now + T, Input::Timer);
    assert!(m.take_actions().contains(&Action::List));
}

/// The predecessor was not the head, one entry behind it or nine: one round trip reads our entry
/// and the leader note, not the entries our listing had ahead of it. The note decides: naming
/// the predecessor (it led, so nothing was left ahead of it), we lead; naming another (the
/// entry ahead of it), or none, we list.
#[test]
fn behind_the_head_the_leader_note_decides() {
    for (ahead, (note, leads)) in [2, 10].into_iter().flat_map(|ahead: u64| {
        let pred = format!("o{}", ahead - 1);
        [
            (Some(pred), true),
            (Some("o0".to_owned()), false),
            (None, false),
        ]
        .map(|case| (ahead, case))
    }) {
        let pred = format!("o{}", ahead - 1);
        let note = note.as_deref();
        let (mut m, now, _) = placed(false, ahead);
        m.handle(
            now,
            Input::PredecessorGone {
                name: pred.as_str().into(),
                result: Ok(()),
            },
        );
        let out = m.take_actions();
        assert!(
            out.contains(&Action::Confirm {
                name: "mine".into(),
                note: true,
            }),
            "{out:?}"
        );
        assert!(!out.contains(&Action::List), "{out:?}");
        m.handle(
            now,
            Input::Confirmed {
                name: "mine".into(),
                result: Ok(conf(Some(info("mine", ahead, marker_of_entry())), note)),
            },
        );
        assert_eq!(m.state().is_leader(), leads, "{ahead} ahead, note {note:?}");
        assert_eq!(
            m.take_actions().contains(&Action::List),
            !leads,
            "{ahead} ahead, note {note:?}"
        );
    }
}

/// A backend without leader notes: far behind, a listing decides, and no leader writes one.
#[test]
fn without_leader_notes_far_behind_means_listing() {
    let now = Instant::now();
    let mut m = Machine::new(
        MachineConfig {
            leader_notes: false,
            ..cfg(false)
        },
        ME,
        T,
        SessionState::Connected,
        now,
    );
    let mk = marker_of(&m);
    let ahead = 10;
    m.handle(now, Input::Created(Ok(info("mine", ahead, mk.clone()))));
    m.take_actions();
    let mut entries: Vec<_> = (0..ahead).map(other).collect();
    entries.push(entry("mine", ahead, ME, mk.clone()));
    listed(&mut m, now, entries);
    m.take_actions();
    m.handle(
        now,
        Input::PredecessorGone {
            name: format!("o{}", ahead - 1).into(),
            result: Ok(()),
        },
    );
    let out = m.take_actions();
    assert!(out.contains(&Action::List), "{out:?}");
    assert!(!out.iter().any(|a| matches!(a, Action::Confirm { .. })));
    // Even one entry ahead of the predecessor: a listing, not reads one by one.
    let (mut near, _) = {
        let mut n = Machine::new(
            MachineConfig {
                leader_notes: false,
                ..cfg(false)
            },
            ME,
            T,
            SessionState::Connected,
            now,
        );
        let nk = marker_of(&n);
        n.handle(now, Input::Created(Ok(info("mine", 2, nk.clone()))));
        n.take_actions();
        listed(
            &mut n,
            now,
            vec![other(0), other(1), entry("mine", 2, ME, nk)],
        );
        n.take_actions();
        (n, ())
    };
    near.handle(
        now,
        Input::PredecessorGone {
            name: "o1".into(),
            result: Ok(()),
        },
    );
    let out = near.take_actions();
    assert!(out.contains(&Action::List), "{out:?}");
    assert!(!out.iter().any(|a| matches!(a, Action::Confirm { .. })));
    m.handle(
        now,
        Input::Listed(Ok(Listing {
            entries: vec![entry("mine", ahead, ME, mk)],
            ..Listing::default()
        })),
    );
    assert!(m.state().is_leader());
    let out = m.take_actions();
    assert!(
        !out.iter().any(|a| matches!(a, Action::NoteLeader { .. })),
        "{out:?}"
    );
}

/// A leader records its note once it leads; the note gives way to any other request.
fn sole(name: &str, marker: Marker) -> EntryInfo {
    EntryInfo {
        sole: true,
        ..info(name, 0, marker)
    }
}

#[test]
fn a_create_that_found_the_directory_empty_leads_without_listing_or_note() {
    let (mut m, now) = machine(true);
    let mk = marker_of(&m);
    m.handle(now, Input::Created(Ok(sole("mine", mk))));
    let out = m.take_actions();
    assert!(m.state().is_leader(), "{:?}", m.state());
    assert_eq!(m.state().token(), Some(FencingToken(100)));
    assert!(
        out.contains(&Action::WatchOwn {
            name: "mine".into()
        }) && out.contains(&Action::StartWork {
            token: FencingToken(100)
        }),
        "{out:?}"
    );
    assert!(
        !out.iter().any(|a| matches!(
            a,
            Action::List | Action::NoteLeader { .. } | Action::Read { .. }
        )),
        "{out:?}"
    );
    // The rest of the term as any other: our entry deleted by someone else ends it.
    m.handle(
        now,
        Input::OwnGone {
            name: "mine".into(),
            result: Ok(()),
        },
    );
    assert!(!m.state().is_leader());
}

#[test]
fn a_sole_create_while_leaving_or_after_a_lost_reply_does_not_lead() {
    // Stopped while the create was under way: the entry is given up, never led with.
    let (mut m, now) = machine(false);
    let mk = marker_of(&m);
    m.handle(now, Input::Stop);
    m.take_actions();
    m.handle(now, Input::Created(Ok(sole("mine", mk))));
    let out = m.take_actions();
    assert!(!m.state().is_leader());
    assert!(
        out.contains(&Action::Delete {
            name: "mine".into()
        }),
        "{out:?}"
    );
    // A create of this session lost its reply earlier: a listing looks for its entry (S5),
    // whatever the next create says.
    let (mut m, now) = machine(false);
    m.handle(
        now,
        Input::Created(Err(BackendError::new(ErrorKind::OutcomeUnknown, "lost"))),
    );
    m.handle(now + T, Input::Timer);
    m.take_actions();
    let empty = Listing {
        entries: vec![],
        foreign: vec![],
        contenders: vec![],
        foreign_omitted: 0,
    };
    m.handle(now + T, Input::Listed(Ok(empty)));
    let mk = marker_of(&m);
    m.take_actions();
    m.handle(now + T, Input::Created(Ok(sole("mine", mk))));
    assert!(!m.state().is_leader());
    assert!(m.take_actions().contains(&Action::List));
}

#[test]
fn a_sole_create_while_disconnected_lists_once_connected() {
    let (mut m, now) = machine(false);
    let mk = marker_of(&m);
    m.handle(
        now,
        Input::Session(SessionState::Disconnected { last_contact: now }),
    );
    m.handle(now, Input::Created(Ok(sole("mine", mk))));
    assert!(!m.state().is_leader());
    m.handle(now, Input::Session(SessionState::Connected));
    assert!(m.take_actions().contains(&Action::List));
}

#[test]
fn a_new_leader_records_its_note() {
    let (mut m, now, out) = placed(false, 0);
    assert!(m.state().is_leader());
    assert!(
        out.contains(&Action::NoteLeader {
            name: "mine".into()
        }),
        "{out:?}"
    );
    m.handle(
        now,
        Input::Noted {
            name: "mine".into(),
            result: Err(BackendError::new(ErrorKind::NotPermitted, "NoAuth")),
        },
    );
    // Only a hint: a failure is not retried, and changes nothing.
    let out = m.take_actions();
    assert!(
        !out.iter().any(|a| matches!(a, Action::NoteLeader { .. })),
        "{out:?}"
    );
    assert!(m.state().is_leader());
}

#[test]
fn no_claim_while_disconnected() {
    let (mut m, now, _) = placed_reading(false, 1);
    m.handle(
        now,
        Input::Session(SessionState::Disconnected { last_contact: now }),
    );
    m.handle(
        now,
        Input::PredecessorGone {
            name: "o0".into(),
            result: Ok(()),
        },
    );
    assert!(!m.state().is_leader());
    m.handle(now, Input::Session(SessionState::Connected));
    assert!(!m.state().is_leader());
    assert!(m.take_actions().contains(&Action::Read {
        name: "mine".into()
    }));
}

#[test]
fn leader_out_of_contact_steps_down_before_the_budget_ends() {
    let (mut m, now, _) = placed(true, 0);
    let lc = now + Duration::from_secs(1);
    m.handle(
        lc + T / 3,
        Input::Session(SessionState::Disconnected { last_contact: lc }),
    );
    let step_down_at = lc + T * 2 / 3 - Duration::from_millis(500);
    assert_eq!(
        m.state(),
        &ElectionState::Leader {
            token: FencingToken(100),
            contact: Contact::Uncertain { step_down_at }
        }
    );
    assert!(m
        .take_actions()
        .contains(&Action::SetTimer(Some(step_down_at))));
    m.handle(step_down_at, Input::Timer);
    assert_eq!(m.state(), &ElectionState::Suspended);
    let out = m.take_actions();
    assert!(out.contains(&Action::CancelWork), "{out:?}");
    // The work gets until the budget's end, not a moment more.
    assert!(
        out.contains(&Action::SetTimer(Some(lc + T * 2 / 3))),
        "{out:?}"
    );
    m.handle(lc + T * 2 / 3, Input::Timer);
    assert!(m.take_actions().contains(&Action::AbortWork));
}

#[test]
fn leader_that_learns_too_late_steps_down_at_once() {
    let (mut m, now, _) = placed(false, 0);
    m.handle(
        now + T,
        Input::Session(SessionState::Disconnected { last_contact: now }),
    );
    assert_eq!(m.state(), &ElectionState::Suspended);
}

#[test]
fn reconnect_reverifies_before_confirming() {
    let (mut m, now, _) = placed(false, 0);
    m.handle(
        now,
        Input::Session(SessionState::Disconnected { last_contact: now }),
    );
    m.take_actions();
    m.handle(now + T / 3, Input::Session(SessionState::Connected));
    assert!(m.take_actions().contains(&Action::List));
    assert!(matches!(
        m.state(),
        ElectionState::Leader {
            contact: Contact::Uncertain { .. },
            ..
        }
    ));
    let l = Listing {
        entries: vec![entry("mine", 0, ME, marker_of_entry())],
        foreign: vec![],
        contenders: vec![],
        foreign_omitted: 0,
    };
    m.handle(now + T / 3, Input::Listed(Ok(l)));
    assert!(matches!(
        m.state(),
        ElectionState::Leader {
            contact: Contact::Confirmed,
            ..
        }
    ));
}

fn marker_of_entry() -> Marker {
    Marker::from_bits((0xabcd_u64 << 32) | 1)
}

#[test]
fn own_watch_failure_rearms_and_reverifies() {
    let (mut m, now, _) = placed(false, 1);
    m.take_actions();
    m.handle(
        now,
        Input::OwnGone {
            name: "mine".into(),
            result: Err(BackendError::new(ErrorKind::OutcomeUnknown, "x")),
        },
    );
    // Not at once (a watch that keeps failing would spin): after a back-off.
    let out = m.take_actions();
    assert!(
        !out.iter()
            .any(|a| matches!(a, Action::WatchOwn { .. } | Action::List)),
        "{out:?}"
    );
    let at = m.timer.expect("a retry timer");
    m.handle(at, Input::Timer);
    let out = m.take_actions();
    assert!(
        out.contains(&Action::WatchOwn {
            name: "mine".into()
        }),
        "{out:?}"
    );
    assert!(out.contains(&Action::List), "{out:?}");
}

fn machine_with_prefix(prefix: u32) -> (Machine, Instant) {
    let now = Instant::now();
    let cfg = MachineConfig {
        marker_prefix: prefix,
        compatible: None,
        ..cfg(false)
    };
    let mut m = Machine::new(cfg, ME, T, SessionState::Connected, now);
    m.take_actions();
    (m, now)
}

/// The delay before the retry the machine has just scheduled.
fn retry_delay(m: &Machine, now: Instant) -> Duration {
    m.cold().retry_at.expect("a retry is scheduled") - now
}

/// Issue 17, point 8: a create failing with `Other` is followed by a lookup listing whose
/// success used to reset the back-off, so the create was retried every T/50 for ever. Now
/// the create's own back-off keeps doubling.
#[test]
fn a_create_that_keeps_failing_backs_off_although_its_lookups_succeed() {
    let (mut m, mut now) = machine(false);
    let floor = T / 50;
    let mut delays = Vec::new();
    for _ in 0..6 {
        m.handle(
            now,
            Input::Created(Err(BackendError::new(ErrorKind::Other, "boom"))),
        );
        delays.push(retry_delay(&m, now));
        m.take_actions();
        now = m.cold().retry_at.unwrap();
        m.handle(now, Input::Timer);
        assert_eq!(m.take_actions(), [Action::List, Action::SetTimer(None)]);
        m.handle(now, Input::Listed(Ok(Listing::default())));
        let out = m.take_actions();
        assert!(
            out.iter().any(|a| matches!(a, Action::Create { .. })),
            "{out:?}"
        );
    }
    for (k, d) in delays.iter().enumerate() {
        let backoff = (floor * 2u32.pow(k as u32)).min(T / 4);
        assert!(
            *d >= backoff / 2 && *d <= backoff,
            "retry {k}: {d:?} outside [{:?}, {backoff:?}] ({delays:?})",
            backoff / 2
        );
    }
}

/// Issue 17, point 8: a predecessor watch that keeps failing used to be re-listed and
/// re-armed at once, round after round with no delay. Now each round waits a growing
/// back-off.
#[test]
fn a_watch_that_keeps_failing_backs_off() {
    let (mut m, mut now, _) = placed(false, 1);
    m.take_actions();
    let mut delays = Vec::new();
    for _ in 0..5 {
        m.handle(
            now,
            Input::PredecessorGone {
                name: "o0".into(),
                result: Err(BackendError::new(ErrorKind::Other, "watch failed")),
            },
        );
        let out = m.take_actions();
        assert!(!out.contains(&Action::List), "re-listed at once: {out:?}");
        delays.push(retry_delay(&m, now));
        now = m.cold().retry_at.unwrap();
        m.handle(now, Input::Timer);
        assert!(m.take_actions().contains(&Action::List));
        let l = Listing {
            entries: vec![other(0), entry("mine", 1, ME, marker_of_entry())],
            foreign: vec![],
            contenders: vec![],
            foreign_omitted: 0,
        };
        m.handle(now, Input::Listed(Ok(l)));
        let out = m.take_actions();
        assert!(
            out.contains(&Action::WatchPredecessor { name: "o0".into() }),
            "{out:?}"
        );
    }
    assert!(
        delays.windows(2).all(|w| w[1] > w[0]),
        "not growing: {delays:?}"
    );
    assert!(delays[4] >= T / 50 * 8, "{delays:?}");
}

/// Issue 17, point 8: retries are jittered, deterministically per candidate: two
/// candidates that fail at the same instant retry at different ones, and the same
/// candidate (the same seed) always at the same one.
#[test]
fn retries_are_jittered_by_candidate() {
    let first_delay = |prefix| {
        let (mut m, now) = machine_with_prefix(prefix);
        m.handle(
            now,
            Input::Created(Err(BackendError::new(ErrorKind::Other, "boom"))),
        );
        retry_delay(&m, now)
    };
    let delays: Vec<Duration> = (1..=8).map(first_delay).collect();
    let mut distinct = delays.clone();
    distinct.sort();
    distinct.dedup();
    assert!(distinct.len() >= 6, "{delays:?}");
    assert_eq!(first_delay(3), delays[2]);
    for d in delays {
        assert!(d >= T / 100 && d <= T / 50, "{d:?}");
    }
}

#[test]
fn jitter_stays_within_half_to_full_backoff() {
    let b = Duration::from_millis(100);
    let mut state = 1;
    for _ in 0..1000 {
        let d = jittered(b, next_random(&mut state));
        assert!(d >= b / 2 && d <= b, "{d:?}");
    }
    assert_eq!(jittered(Duration::ZERO, 7), Duration::ZERO);
}

#[test]
fn own_entry_deleted_while_leading_steps_down_and_rejoins() {
    let (mut m, now, _) = placed(true, 0);
    m.take_actions();
    m.handle(
        now,
        Input::OwnGone {
            name: "mine".into(),
            result: Ok(()),
        },
    );
    assert_eq!(m.state(), &ElectionState::Joining);
    let out = m.take_actions();
    assert!(out.contains(&Action::CancelWork), "{out:?}");
    // Registering again at once is safe while the old term's work ends: the new entry sorts
    // last, so it cannot lead before everyone ahead of it.
    assert!(
        out.iter().any(|a| matches!(a, Action::Create { .. })),
        "{out:?}"
    );
}

/// A [`Confirmation`] as a backend answers it.
fn conf(own: Option<EntryInfo>, note: Option<&str>) -> Confirmation {
    Confirmation {
        own,
        leader_note: note.map(str::to_owned),
    }
}

/// Whether `out` deletes our entry "mine".
fn deletes_mine(out: &[Action]) -> bool {
    out.contains(&Action::Delete {
        name: "mine".into(),
    })
}

/// A resignation that rejoins gives its entry up once the work has ended (S4), then registers
/// again at the tail one round trip after the delete was answered: the delete's own.
#[test]
fn resign_waits_for_work_then_rejoins_one_round_trip_after_the_delete() {
    let (mut m, now, _) = placed(true, 0);
    m.take_actions();
    m.handle(now, Input::Resign { rejoin: true });
    let out = m.take_actions();
    assert!(out.contains(&Action::CancelWork), "{out:?}");
    assert!(
        !deletes_mine(&out),
        "given up before the work ended: {out:?}"
    );
    let out = work_ends(&mut m, now, WorkEnd::Returned, false);
    assert!(deletes_mine(&out), "{out:?}");
    let rtt = Duration::from_millis(3);
    let out = deleted(&mut m, now + rtt);
    assert!(out.contains(&Action::ResignDone), "{out:?}");
    assert_eq!(m.state(), &ElectionState::Joining);
    // The successor's confirming read goes first: no create queued ahead of it.
    assert!(!has_create(&out), "{out:?}");
    assert!(
        out.contains(&Action::SetTimer(Some(now + rtt * 2))),
        "{out:?}"
    );
    m.handle(now + rtt, Input::Timer);
    assert!(!has_create(&m.take_actions()), "too early");
    m.handle(now + rtt * 2, Input::Timer);
    let out = m.take_actions();
    assert!(has_create(&out), "{out:?}");
    let mk = marker_of(&m);
    m.handle(
        now + rtt * 2,
        Input::Created(Ok(info("again", 1, mk.clone()))),
    );
    listed(
        &mut m,
        now + rtt * 2,
        vec![other(0), entry("again", 1, ME, mk)],
    );
    assert!(
        matches!(m.state(), ElectionState::Follower { position: 1, .. }),
        "{:?}",
        m.state()
    );
}

/// The rejoin's wait is at most a twentieth of the session timeout, and none when the delete
/// took no time (the in-memory backend without injected latency).
#[test]
fn the_rejoin_wait_is_capped_and_none_after_an_instant_delete() {
    for (rtt, wait) in [
        (T, Some(T / 20)),
        (T / 40, Some(T / 40)),
        (Duration::ZERO, None),
    ] {
        let (mut m, now, _) = placed(false, 0);
        m.take_actions();
        m.handle(now, Input::Resign { rejoin: true });
        assert!(deletes_mine(&m.take_actions()));
        let out = deleted(&mut m, now + rtt);
        match wait {
            Some(wait) => {
                assert!(!has_create(&out), "{rtt:?}: {out:?}");
                assert!(
                    out.contains(&Action::SetTimer(Some(now + rtt + wait))),
                    "{rtt:?}: {out:?}"
                );
            }
            None => assert!(has_create(&out), "{rtt:?}: {out:?}"),
        }
    }
}

/// A rejoin whose entry was gone already registers anew after the same wait; a stop during the
/// wait finishes at once, with nothing created.
#[test]
fn a_rejoin_of_a_gone_entry_registers_anew_and_a_stop_during_the_wait_creates_nothing() {
    let (mut m, now, _) = placed(false, 0);
    m.take_actions();
    m.handle(now, Input::Resign { rejoin: true });
    assert!(deletes_mine(&m.take_actions()));
    let rtt = Duration::from_millis(2);
    m.handle(
        now + rtt,
        Input::Deleted {
            name: "mine".into(),
            result: Err(BackendError::new(ErrorKind::NotFound, "NoNode")),
        },
    );
    let out = m.take_actions();
    assert!(out.contains(&Action::ResignDone), "{out:?}");
    assert!(!has_create(&out), "{out:?}");
    m.handle(now + rtt * 2, Input::Timer);
    assert!(has_create(&m.take_actions()));

    let (mut m, now, _) = placed(false, 0);
    m.take_actions();
    m.handle(now, Input::Resign { rejoin: true });
    m.take_actions();
    deleted(&mut m, now + rtt);
    m.handle(now + rtt, Input::Stop);
    let out = m.take_actions();
    assert!(out.contains(&Action::Finished), "{out:?}");
    assert!(!has_create(&out), "{out:?}");
    m.handle(now + rtt * 2, Input::Timer);
    assert!(!has_create(&m.take_actions()));
}

/// A delete of unknown outcome is sent again; the wait is the round trip of the one answered.
#[test]
fn a_rejoin_whose_delete_is_retried_waits_for_the_answered_one() {
    let (mut m, now, _) = placed(false, 0);
    m.take_actions();
    m.handle(now, Input::Resign { rejoin: true });
    assert!(deletes_mine(&m.take_actions()));
    m.handle(
        now + T,
        Input::Deleted {
            name: "mine".into(),
            result: Err(BackendError::new(ErrorKind::OutcomeUnknown, "lost")),
        },
    );
    let resend = now + T + retry_delay(&m, now + T);
    m.take_actions();
    m.handle(resend, Input::Timer);
    assert!(deletes_mine(&m.take_actions()));
    let rtt = Duration::from_millis(1);
    let out = deleted(&mut m, resend + rtt);
    assert!(
        out.contains(&Action::SetTimer(Some(resend + rtt * 2))),
        "{out:?}"
    );
}

/// Work that ended by itself rejoins after its back-off, whatever the delete's round trip: the
/// others lead meanwhile.
#[test]
fn a_rejoin_after_a_back_off_waits_the_back_off() {
    let mut waits = Vec::new();
    for rtt in [Duration::from_millis(1), T / 4] {
        let (mut m, now, _) = placed(true, 0);
        m.take_actions();
        let out = work_ends(&mut m, now, WorkEnd::Returned, false);
        assert!(deletes_mine(&out), "{out:?}");
        let out = deleted(&mut m, now + rtt);
        assert!(!has_create(&out), "{out:?}");
        waits.push(retry_delay(&m, now + rtt));
    }
    // The same seed, the same back-off: the round trip played no part.
    assert_eq!(waits[0], waits[1]);
    assert!(waits[0] >= T / 40, "{waits:?}");
}

/// A leader whose work ends by itself at `after` (as `end`): the actions that follow.
fn work_ends(m: &mut Machine, at: Instant, end: WorkEnd, handover: bool) -> Vec<Action> {
    m.handle(at, Input::WorkDone { end, handover });
    m.take_actions()
}

/// Deletes our entry as asked; the actions after.
fn deleted(m: &mut Machine, at: Instant) -> Vec<Action> {
    m.handle(
        at,
        Input::Deleted {
            name: "mine".into(),
            result: Ok(()),
        },
    );
    m.take_actions()
}

fn last_transition(out: &[Action]) -> Option<&Transition> {
    out.iter().rev().find_map(|a| match a {
        Action::Emit(Event::Transition(t)) => Some(t),
        _ => None,
    })
}

#[test]
fn work_that_ends_by_itself_resigns_and_rejoins_after_a_growing_backoff() {
    let (mut m, mut now, out) = placed(true, 0);
    assert!(out.iter().any(|a| matches!(a, Action::StartWork { .. })));
    let mut delays = Vec::new();
    for round in 0..6u64 {
        let out = work_ends(&mut m, now, WorkEnd::Failed(format!("boom {round}")), false);
        let t = last_transition(&out).expect("a transition");
        assert_eq!(t.reason, Reason::WorkFailed(format!("boom {round}")));
        assert_eq!(t.to, ElectionState::Suspended);
        assert!(
            out.contains(&Action::Delete {
                name: "mine".into()
            }),
            "{out:?}"
        );
        assert!(
            !out.contains(&Action::CancelWork),
            "the work has ended: {out:?}"
        );
        let out = deleted(&mut m, now);
        assert!(!out.contains(&Action::ResignDone), "nobody asked: {out:?}");
        assert_eq!(m.state(), &ElectionState::Joining);
        // No create before the back-off is over.
        assert!(
            !out.iter().any(|a| matches!(a, Action::Create { .. })),
            "{out:?}"
        );
        let at = out
            .iter()
            .find_map(|a| match a {
                Action::SetTimer(Some(at)) => Some(*at),
                _ => None,
            })
            .expect("a timer for the back-off");
        delays.push(at - now);
        now = at;
        m.handle(now, Input::Timer);
        let out = m.take_actions();
        let Some(Action::Create { marker }) =
            out.iter().find(|a| matches!(a, Action::Create { .. }))
        else {
            panic!("no create after the back-off: {out:?}");
        };
        // Alone: leads again at once, and the work fails again at once.
        m.handle(
            now,
            Input::Created(Ok(info("mine", round + 1, marker.clone()))),
        );
        m.take_actions();
        let l = Listing {
            entries: vec![entry("mine", round + 1, ME, marker.clone())],
            foreign: vec![],
            contenders: vec![],
            foreign_omitted: 0,
        };
        m.handle(now, Input::Listed(Ok(l)));
        assert!(m
            .take_actions()
            .iter()
            .any(|a| matches!(a, Action::StartWork { .. })));
    }
    // Doubling (with jitter in [b/2, b]) from T/20, capped at 4 T.
    for (k, d) in delays.iter().enumerate() {
        let b = (T / 20 * 2u32.pow(k as u32)).min(T * 4);
        assert!(
            *d >= b / 2 && *d <= b,
            "round {k}: {d:?} for {b:?} ({delays:?})"
        );
    }
    // A term that lasted resets it.
    now += T;
    work_ends(&mut m, now, WorkEnd::Returned, false);
    let out = deleted(&mut m, now);
    let at = out
        .iter()
        .find_map(|a| match a {
            Action::SetTimer(Some(at)) => Some(*at),
            _ => None,
        })
        .unwrap();
    assert!(at - now <= T / 20, "{:?}", at - now);
}

#[test]
fn work_end_policies_leave_keep_leading_and_handover() {
    // Leave: stops for good, with the panic's message in the reason.
    let (mut m, now, _) = placed(true, 0);
    m.cfg.when_work_ends = WorkEnded::Leave;
    let out = work_ends(&mut m, now, WorkEnd::Panicked("oops".into()), false);
    assert_eq!(
        last_transition(&out).unwrap().reason,
        Reason::WorkPanicked("oops".into())
    );
    deleted(&mut m, now);
    assert_eq!(m.state(), &ElectionState::Stopped(StopReason::Resigned));

    // KeepLeading: today's behaviour, a notice and nothing else.
    let (mut m, now, _) = placed(true, 0);
    m.cfg.when_work_ends = WorkEnded::KeepLeading;
    let out = work_ends(&mut m, now, WorkEnd::Returned, false);
    assert!(m.state().is_leader(), "{out:?}");
    assert!(!out.iter().any(|a| matches!(a, Action::Delete { .. })));
    // ... but a hand-over (Term::resign) resigns whatever the policy.
    let (mut m, now, _) = placed(true, 0);
    m.cfg.when_work_ends = WorkEnded::KeepLeading;
    let out = work_ends(&mut m, now, WorkEnd::Returned, true);
    assert_eq!(last_transition(&out).unwrap().reason, Reason::Resigned);
    assert!(out.contains(&Action::Delete {
        name: "mine".into()
    }));
}

#[test]
fn orphans_of_ours_are_deleted() {
    let (mut m, now) = machine(false);
    let mk = marker_of(&m);
    m.handle(now, Input::Created(Ok(info("mine", 1, mk.clone()))));
    m.take_actions();
    let orphan = entry("orphan", 0, ME, Marker::from_bits((0xabcd_u64 << 32) | 77));
    let l = Listing {
        entries: vec![orphan, entry("mine", 1, ME, mk)],
        foreign: vec![],
        contenders: vec![],
        foreign_omitted: 0,
    };
    m.handle(now, Input::Listed(Ok(l)));
    // Behind our own orphan for now: delete it, and follow it meanwhile.
    let out = m.take_actions();
    assert!(
        out.contains(&Action::Delete {
            name: "orphan".into()
        }),
        "{out:?}"
    );
}

/// Only markers with all 8 digits of our prefix are ours: another candidate on the same
/// session whose prefix differs in its first or its last digit is not an orphan of ours.
#[test]
fn a_prefix_differing_in_one_digit_is_not_ours() {
    let (mut m, now) = machine(false);
    let mk = marker_of(&m);
    m.handle(now, Input::Created(Ok(info("mine", 2, mk.clone()))));
    m.take_actions();
    let first = entry(
        "first",
        0,
        ME,
        Marker::from_bits((0x1000_abcd_u64 << 32) | 1),
    );
    let last = entry("last", 1, ME, Marker::from_bits((0xabce_u64 << 32) | 1));
    let l = Listing {
        entries: vec![first, last, entry("mine", 2, ME, mk)],
        foreign: vec![],
        contenders: vec![],
        foreign_omitted: 0,
    };
    m.handle(now, Input::Listed(Ok(l)));
    let out = m.take_actions();
    assert!(
        !out.iter().any(|a| matches!(a, Action::Delete { .. })),
        "another candidate's entry taken for an orphan of ours: {out:?}"
    );
    assert!(
        matches!(m.state(), ElectionState::Follower { position: 2, .. }),
        "{:?}",
        m.state()
    );
}

#[test]
fn session_end_rejoins_with_a_new_session() {
    let (mut m, now, _) = placed(true, 0);
    m.take_actions();
    m.handle(now, Input::Session(SessionState::Expired));
    assert_eq!(m.state(), &ElectionState::Suspended);
    let out = m.take_actions();
    assert!(
        out.contains(&Action::OpenSession) && out.contains(&Action::CancelWork),
        "{out:?}"
    );
    m.handle(
        now,
        Input::SessionOpened {
            id: SessionId(8),
            timeout: T,
            state: SessionState::Connected,
        },
    );
    assert_eq!(m.state(), &ElectionState::Joining);
    assert!(m
        .take_actions()
        .iter()
        .any(|a| matches!(a, Action::Create { .. })));
}

#[test]
fn work_is_aborted_at_once_when_the_session_ends_unforeseen() {
    // Leading and in contact: the expiry is news, and the successor may already lead.
    let (mut m, now, _) = placed(true, 0);
    assert!(m.state().is_leader());
    m.take_actions();
    m.handle(now, Input::Session(SessionState::Expired));
    let out = m.take_actions();
    let cancel = out.iter().position(|a| *a == Action::CancelWork);
    let abort = out.iter().position(|a| *a == Action::AbortWork);
    assert!(
        matches!((cancel, abort), (Some(c), Some(a)) if c < a),
        "cancel then abort in the same step: {out:?}"
    );
    // A work already stopping (stepped down with a grace left) is aborted too.
    let (mut m, now, _) = placed(true, 0);
    m.handle(
        now,
        Input::Session(SessionState::Disconnected { last_contact: now }),
    );
    m.handle(now + T / 2, Input::Timer);
    assert_eq!(m.state(), &ElectionState::Suspended);
    assert!(m.take_actions().contains(&Action::CancelWork));
    m.handle(now + T / 2, Input::Session(SessionState::Expired));
    assert!(m.take_actions().contains(&Action::AbortWork));
}

#[test]
fn stop_is_bounded_when_the_backend_is_unreachable() {
    let (mut m, now, _) = placed(false, 1);
    m.handle(
        now,
        Input::Session(SessionState::Disconnected { last_contact: now }),
    );
    m.handle(now, Input::Stop);
    assert!(!m.take_actions().contains(&Action::Finished));
    m.handle(now + T + Duration::from_millis(500), Input::Timer);
    assert!(m.take_actions().contains(&Action::Finished));
    assert!(matches!(
        m.state(),
        ElectionState::Stopped(StopReason::Stopped)
    ));
}

#[test]
fn session_gone_replies_before_the_state_change_do_not_busy_loop() {
    let (mut m, now) = machine(false);
    m.handle(
        now,
        Input::Created(Err(BackendError::new(ErrorKind::SessionGone, "expired"))),
    );
    let out = m.take_actions();
    assert!(
        !out.iter().any(|a| matches!(a, Action::Create { .. })),
        "re-sent at once: {out:?}"
    );
    // The state change then ends the session as usual.
    m.handle(now, Input::Session(SessionState::Expired));
    assert!(m.take_actions().contains(&Action::OpenSession));
}

/// Issue 17, point 7: a leader whose release delete was refused (NoAuth) stopped with its
/// entry still at the head and its session alive: every follower waited for as long as the
/// process lived. Now it closes the session, whose end deletes the entry.
#[test]
fn a_refused_release_delete_closes_the_session() {
    let (mut m, now, _) = placed(false, 0);
    m.take_actions();
    m.handle(now, Input::Resign { rejoin: false });
    assert!(m.take_actions().contains(&Action::Delete {
        name: "mine".into()
    }));
    m.handle(
        now,
        Input::Deleted {
            name: "mine".into(),
            result: Err(BackendError::new(ErrorKind::NotPermitted, "NoAuth")),
        },
    );
    let out = m.take_actions();
    assert!(out.contains(&Action::CloseSession), "{out:?}");
    assert!(!out.contains(&Action::Finished), "{out:?}");
    assert!(!m.state().is_leader());
    m.handle(now, Input::Session(SessionState::Closed));
    let out = m.take_actions();
    assert!(out.contains(&Action::ResignDone), "{out:?}");
    assert!(out.contains(&Action::Finished), "{out:?}");
    assert_eq!(m.state(), &ElectionState::Stopped(StopReason::Resigned));
}

/// Issue 17, point 7: a follower whose read of the leader's record (information only) was
/// refused stopped for good. Now the leader stays unknown and the follower follows.
#[test]
fn an_unreadable_leader_record_is_unknown_not_fatal() {
    let (mut m, now, out) = placed_reading(false, 1);
    assert!(out.contains(&Action::Read { name: "o0".into() }), "{out:?}");
    m.handle(
        now,
        Input::Read {
            name: "o0".into(),
            result: Err(BackendError::new(ErrorKind::NotPermitted, "NoAuth")),
        },
    );
    let out = m.take_actions();
    assert!(!out.contains(&Action::Finished), "{out:?}");
    assert!(
        matches!(
            m.state(),
            ElectionState::Follower {
                position: 1,
                leader: None
            }
        ),
        "{:?}",
        m.state()
    );
    // And it still takes over when the head leaves.
    m.handle(
        now,
        Input::PredecessorGone {
            name: "o0".into(),
            result: Ok(()),
        },
    );
    m.handle(
        now,
        Input::Read {
            name: "mine".into(),
            result: Ok(Some(info("mine", 1, marker_of_entry()))),
        },
    );
    assert!(m.state().is_leader());
}

/// Issue 17, point 7: a candidate that fails while it holds an entry closes its session,
/// so that the entry does not outlive it on a session others keep alive.
#[test]
fn failing_while_holding_an_entry_closes_the_session() {
    let (mut m, now, _) = placed(false, 1);
    m.take_actions();
    m.handle(
        now,
        Input::PredecessorGone {
            name: "o0".into(),
            result: Err(BackendError::new(ErrorKind::Other, "x")),
        },
    );
    let at = m.cold().retry_at.unwrap();
    m.handle(at, Input::Timer);
    assert!(m.take_actions().contains(&Action::List));
    m.handle(
        at,
        Input::Listed(Err(BackendError::new(ErrorKind::NotPermitted, "NoAuth"))),
    );
    let out = m.take_actions();
    assert!(out.contains(&Action::CloseSession), "{out:?}");
    assert!(out.contains(&Action::Finished), "{out:?}");
}

/// Issue 17, point 3: a persistent node with our entry format (a restored tree) was taken
/// for a live candidate's entry: it never goes away, and nobody behind it ever led. Its
/// watch now says it is not an entry: it is ignored, and the next listing places us
/// without it.
#[test]
fn a_lookalike_predecessor_is_ignored() {
    let (mut m, now, out) = placed(false, 1);
    assert!(out.contains(&Action::WatchPredecessor { name: "o0".into() }));
    m.handle(now, Input::PredecessorNotAnEntry { name: "o0".into() });
    let out = m.take_actions();
    assert!(out.contains(&Action::List), "{out:?}");
    assert!(
        out.iter().any(|a| matches!(
            a,
            Action::Emit(Event::Notice {
                notice: Notice::ForeignEntries(_),
                ..
            })
        )),
        "{out:?}"
    );
    let l = Listing {
        entries: vec![other(0), entry("mine", 1, ME, marker_of_entry())],
        foreign: vec![],
        contenders: vec![],
        foreign_omitted: 0,
    };
    m.handle(now, Input::Listed(Ok(l)));
    assert!(m.state().is_leader(), "{:?}", m.state());
}

/// Issue 17, point 3: the head read shows a persistent node (owner 0): the leader is
/// unknown, not the look-alike's record.
#[test]
fn a_lookalike_head_is_not_reported_as_leader() {
    let (mut m, now, _) = placed(false, 2);
    m.take_actions();
    let mut persistent = info("o0", 0, Marker::from_bits(0));
    persistent.owner = SessionId(0);
    m.handle(
        now,
        Input::Read {
            name: "o0".into(),
            result: Ok(Some(persistent)),
        },
    );
    assert!(
        matches!(m.state(), ElectionState::Follower { leader: None, .. }),
        "{:?}",
        m.state()
    );
}

#[test]
fn fatal_errors_stop_with_the_reason() {
    let (mut m, now) = machine(false);
    m.handle(
        now,
        Input::Created(Err(BackendError::new(ErrorKind::NotPermitted, "NoAuth"))),
    );
    assert!(
        matches!(m.state(), ElectionState::Stopped(StopReason::Failed(msg)) if msg.contains("NoAuth"))
    );
    assert!(m.take_actions().contains(&Action::Finished));
}

// ----- rules that mutation testing found unguarded (issue 14) ------------------------------

fn transitions(out: &[Action]) -> Vec<&Transition> {
    out.iter()
        .filter_map(|a| match a {
            Action::Emit(Event::Transition(t)) => Some(t),
            _ => None,
        })
        .collect()
}

fn has_create(out: &[Action]) -> bool {
    out.iter().any(|a| matches!(a, Action::Create { .. }))
}

/// Answers every `List` with `listing`, and fires the timer when one is set, until the machine
/// finishes; returns everything it asked for on the way.
fn run_to_finish(m: &mut Machine, mut now: Instant, listing: &Listing) -> Vec<Action> {
    let mut all = Vec::new();
    for _ in 0..20 {
        let out = m.take_actions();
        all.extend(out.iter().cloned());
        if out.contains(&Action::Finished) {
            return all;
        }
        if out.contains(&Action::List) {
            m.handle(now, Input::Listed(Ok(listing.clone())));
        } else {
            now += T;
            m.handle(now, Input::Timer);
        }
    }
    panic!("never finished: {all:?}");
}

/// A stop that meets a create whose reply was lost: the lookup shows it was not applied, so
/// the candidate stops without creating anything (the machine's `goal != Run` test after an
/// unknown create's lookup).
#[test]
fn stop_during_an_unknown_create_that_was_not_applied_creates_nothing() {
    let (mut m, now) = machine(false);
    m.handle(
        now,
        Input::Created(Err(BackendError::new(ErrorKind::OutcomeUnknown, "lost"))),
    );
    m.take_actions();
    m.handle(now, Input::Stop);
    let out = m.take_actions();
    assert!(
        !out.contains(&Action::Finished),
        "stopped before the lookup: {out:?}"
    );
    m.handle(now + T, Input::Timer);
    assert!(m.take_actions().contains(&Action::List));
    listed(&mut m, now + T, vec![other(0)]);
    // The lookup's listing already shows nothing of ours: the stop ends at once, no create,
    // no second listing.
    let out = m.take_actions();
    assert!(!has_create(&out), "created while leaving: {out:?}");
    let out = if out.contains(&Action::Finished) {
        out
    } else {
        run_to_finish(
            &mut m,
            now + T,
            &Listing {
                entries: vec![other(0)],
                foreign: vec![],
                contenders: vec![],
                foreign_omitted: 0,
            },
        )
    };
    assert!(!has_create(&out), "created while leaving: {out:?}");
    assert_eq!(m.state(), &ElectionState::Stopped(StopReason::Stopped));
}

/// The same lookup for a candidate that runs on: it creates again, with a fresh marker.
#[test]
fn an_unknown_create_that_was_not_applied_is_sent_again_with_a_fresh_marker() {
    let (mut m, now) = machine(false);
    let first = marker_of(&m);
    m.handle(
        now,
        Input::Created(Err(BackendError::new(ErrorKind::OutcomeUnknown, "lost"))),
    );
    m.handle(now + T, Input::Timer);
    assert!(m.take_actions().contains(&Action::List));
    listed(&mut m, now + T, vec![]);
    let mut out = m.take_actions();
    for i in 2..6 {
        if has_create(&out) {
            break;
        }
        m.handle(now + T * i, Input::Timer);
        out = m.take_actions();
    }
    let marker = out.iter().find_map(|a| match a {
        Action::Create { marker } => Some(marker.clone()),
        _ => None,
    });
    assert!(
        marker.as_ref().is_some_and(|mk| *mk != first),
        "no fresh create: {out:?}"
    );
    assert!(!matches!(m.state(), ElectionState::Stopped(_)));
}

/// S5: a stop while a create is in flight waits for its reply, then deletes what it created.
#[test]
fn stop_while_a_create_is_in_flight_waits_for_the_reply_then_deletes() {
    let (mut m, now) = machine(false);
    let mk = marker_of(&m);
    m.handle(now, Input::Stop);
    let out = m.take_actions();
    assert!(
        !out.contains(&Action::Finished),
        "stopped with a create in flight (its entry would be orphaned): {out:?}"
    );
    m.handle(now, Input::Created(Ok(info("mine", 0, mk))));
    let out = m.take_actions();
    assert!(
        out.contains(&Action::Delete {
            name: "mine".into()
        }),
        "{out:?}"
    );
    let out = deleted(&mut m, now);
    assert!(out.contains(&Action::Finished), "{out:?}");
    assert_eq!(m.state(), &ElectionState::Stopped(StopReason::Stopped));
}

/// A stop while a failed create backs off: nothing is in flight, so it stops at once and never
/// sends the create.
#[test]
fn stop_while_a_create_backs_off_stops_at_once() {
    let (mut m, now) = machine(false);
    m.handle(
        now,
        Input::Created(Err(BackendError::new(ErrorKind::NotFound, "no parent"))),
    );
    m.take_actions();
    m.handle(now, Input::Stop);
    let out = m.take_actions();
    assert!(out.contains(&Action::Finished), "{out:?}");
    assert!(!has_create(&out), "{out:?}");
    m.handle(now + T, Input::Timer);
    assert!(!has_create(&m.take_actions()));
}

/// A follower that stops says `Stopped`; one that resigns without rejoining says `Resigned`.
#[test]
fn the_last_transition_says_whether_the_candidate_stopped_or_resigned() {
    for (input, reason, stop) in [
        (Input::Stop, Reason::Stopped, StopReason::Stopped),
        (
            Input::Resign { rejoin: false },
            Reason::Resigned,
            StopReason::Resigned,
        ),
    ] {
        let (mut m, now, _) = placed(false, 1);
        m.handle(now, input);
        let mut out = m.take_actions();
        if !out.contains(&Action::Finished) {
            out.extend(deleted(&mut m, now));
        }
        let t = *transitions(&out).last().expect("a transition");
        assert_eq!(t.to, ElectionState::Stopped(stop));
        assert_eq!(t.reason, reason);
    }
}

/// A follower registered through the lookup of a create whose reply was lost: its stop must
/// sweep, since a late copy of that create may still land.
fn placed_after_an_unknown_create() -> (Machine, Instant) {
    let (mut m, now) = machine(false);
    let mk = marker_of(&m);
    m.handle(
        now,
        Input::Created(Err(BackendError::new(ErrorKind::OutcomeUnknown, "lost"))),
    );
    m.handle(now + T, Input::Timer);
    assert!(m.take_actions().contains(&Action::List));
    let listing = Listing {
        entries: vec![other(0), entry("mine", 1, ME, mk.clone())],
        foreign: vec![],
        contenders: vec![],
        foreign_omitted: 0,
    };
    m.handle(now + T, Input::Listed(Ok(listing.clone())));
    m.take_actions();
    m.handle(
        now + T,
        Input::Read {
            name: "mine".into(),
            result: Ok(Some(info("mine", 1, mk))),
        },
    );
    m.take_actions();
    m.handle(now + T, Input::Listed(Ok(listing)));
    m.take_actions();
    assert!(
        matches!(m.state(), ElectionState::Follower { position: 1, .. }),
        "{:?}",
        m.state()
    );
    (m, now + T)
}

/// The sweep a stop runs after an unknown create deletes every entry of ours it lists, then
/// finishes as soon as the last delete is answered (not at the stop's deadline).
#[test]
fn the_sweep_before_stopping_deletes_our_entries_then_finishes_at_once() {
    let (mut m, now) = placed_after_an_unknown_create();
    m.handle(now, Input::Stop);
    assert!(m.take_actions().contains(&Action::Delete {
        name: "mine".into()
    }));
    let out = deleted(&mut m, now);
    assert!(
        !out.contains(&Action::Finished),
        "finished without sweeping: {out:?}"
    );
    assert!(out.contains(&Action::List), "{out:?}");
    // The lost create's late twin, under our prefix and session, is listed.
    let late = Marker::from_bits((0xabcd_u64 << 32) | 99);
    listed(&mut m, now, vec![other(0), entry("late", 5, ME, late)]);
    let out = m.take_actions();
    assert!(
        out.contains(&Action::Delete {
            name: "late".into()
        }),
        "{out:?}"
    );
    m.handle(
        now,
        Input::Deleted {
            name: "late".into(),
            result: Ok(()),
        },
    );
    let out = m.take_actions();
    assert!(out.contains(&Action::Finished), "{out:?}");
    assert_eq!(m.state(), &ElectionState::Stopped(StopReason::Stopped));
}

/// A sweep whose listing shows nothing of ours finishes on that listing.
#[test]
fn a_sweep_that_finds_nothing_finishes_on_its_listing() {
    let (mut m, now) = placed_after_an_unknown_create();
    m.handle(now, Input::Stop);
    m.take_actions();
    assert!(deleted(&mut m, now).contains(&Action::List));
    listed(&mut m, now, vec![other(0)]);
    assert!(m.take_actions().contains(&Action::Finished));
}

/// Finishing aborts leader work that is still running, and only then.
#[test]
fn finishing_aborts_running_work_and_only_running_work() {
    // A leader whose backend refuses for good: its work is aborted as it stops.
    let (mut m, now, out) = placed(true, 0);
    assert!(out.iter().any(|a| matches!(a, Action::StartWork { .. })));
    m.handle(now, Input::Resign { rejoin: false });
    m.take_actions();
    m.handle(now + T * 2, Input::Timer);
    let out = m.take_actions();
    assert!(out.contains(&Action::Finished), "{out:?}");
    assert!(out.contains(&Action::AbortWork), "{out:?}");
    // A follower has none to abort.
    let (mut m, now, _) = placed(true, 1);
    m.take_actions();
    m.handle(now, Input::Stop);
    let mut out = m.take_actions();
    if !out.contains(&Action::Finished) {
        out.extend(deleted(&mut m, now));
    }
    assert!(out.contains(&Action::Finished), "{out:?}");
    assert!(!out.contains(&Action::AbortWork), "{out:?}");
}

/// A follower that moves up the queue says why: its predecessor left.
#[test]
fn moving_up_the_queue_is_reported_as_predecessor_left() {
    let (mut m, now, _) = placed(false, 2);
    assert!(matches!(
        m.state(),
        ElectionState::Follower { position: 2, .. }
    ));
    m.handle(
        now,
        Input::PredecessorGone {
            name: "o1".into(),
            result: Ok(()),
        },
    );
    m.take_actions();
    m.handle(
        now,
        Input::Confirmed {
            name: "mine".into(),
            result: Ok(conf(Some(info("mine", 2, marker_of_entry())), None)),
        },
    );
    assert!(m.take_actions().contains(&Action::List));
    listed(
        &mut m,
        now,
        vec![other(0), entry("mine", 2, ME, marker_of_entry())],
    );
    let out = m.take_actions();
    let t = *transitions(&out).last().expect("a transition");
    assert!(
        matches!(t.to, ElectionState::Follower { position: 1, .. }),
        "{t:?}"
    );
    assert_eq!(t.reason, Reason::PredecessorLeft);
}

/// The record of `o{seq}`, owned by `other`'s session, as a read returns it.
fn other_info(seq: u64, id: &str) -> EntryInfo {
    EntryInfo {
        name: format!("o{seq}"),
        sequence: seq,
        owner: SessionId(99),
        marker: Marker::from_bits(seq),
        token: FencingToken(100 + seq),
        data: crate::record::CandidateRecord {
            id: id.into(),
            payload: b"10.0.0.9".to_vec(),
        }
        .encode(),
        sole: false,
    }
}

fn read_head(m: &mut Machine, now: Instant, result: Result<Option<EntryInfo>, BackendError>) {
    m.handle(
        now,
        Input::Read {
            name: "o0".into(),
            result,
        },
    );
}

fn reads(out: &[Action]) -> usize {
    out.iter()
        .filter(|a| matches!(a, Action::Read { .. }))
        .count()
}

/// A follower reads the head's record and reports who leads, once.
#[test]
fn the_heads_record_tells_who_leads() {
    let (mut m, now, out) = placed(false, 2);
    assert!(out.contains(&Action::Read { name: "o0".into() }), "{out:?}");
    read_head(&mut m, now, Ok(Some(other_info(0, "alpha"))));
    let out = m.take_actions();
    let t = *transitions(&out).last().expect("a transition");
    assert_eq!(t.reason, Reason::LeaderKnown);
    let ElectionState::Follower {
        position: 2,
        leader: Some(leader),
    } = m.state()
    else {
        panic!("{:?}", m.state());
    };
    assert_eq!(leader.id, "alpha");
    assert_eq!(&*leader.payload, b"10.0.0.9");
    assert_eq!(leader.token, FencingToken(100));
    assert_eq!(leader.session, SessionId(99));
    // Read once: nothing asks for it again.
    assert_eq!(reads(&out), 0, "{out:?}");
    m.handle(now + T, Input::Timer);
    assert_eq!(reads(&m.take_actions()), 0);
}

/// The head's record under a session other than the one the listing showed is a look-alike's.
#[test]
fn a_head_record_under_another_session_is_not_the_leader() {
    let (mut m, now, _) = placed(false, 2);
    m.take_actions();
    let mut moved = other_info(0, "alpha");
    moved.owner = SessionId(55);
    read_head(&mut m, now, Ok(Some(moved)));
    assert!(
        matches!(m.state(), ElectionState::Follower { leader: None, .. }),
        "{:?}",
        m.state()
    );
}

/// A read of a record that is no longer the head's (the head changed meanwhile) informs
/// nothing.
#[test]
fn a_record_read_after_the_head_moved_on_is_not_reported() {
    let (mut m, now, _) = placed(false, 2);
    m.take_actions();
    m.head = Some("o1".into());
    read_head(&mut m, now, Ok(Some(other_info(0, "alpha"))));
    assert!(
        matches!(m.state(), ElectionState::Follower { leader: None, .. }),
        "{:?}",
        m.state()
    );
}

/// A head read that fails for a passing reason is retried; one that is refused or finds the
/// head gone is not asked again.
#[test]
fn head_reads_retry_passing_failures_only() {
    let (mut m, now, _) = placed(false, 2);
    m.take_actions();
    read_head(
        &mut m,
        now,
        Err(BackendError::new(ErrorKind::OutcomeUnknown, "timeout")),
    );
    let out = m.take_actions();
    assert!(
        out.iter().any(|a| matches!(
            a,
            Action::Emit(Event::Notice {
                notice: Notice::Retrying(_),
                ..
            })
        )),
        "{out:?}"
    );
    let at = m.cold().retry_at.expect("a retry");
    m.handle(at, Input::Timer);
    assert!(m
        .take_actions()
        .contains(&Action::Read { name: "o0".into() }));

    for result in [
        Err(BackendError::new(ErrorKind::NotPermitted, "NoAuth")),
        Ok(None),
    ] {
        let (mut m, now, _) = placed(false, 2);
        m.take_actions();
        read_head(&mut m, now, result);
        let out = m.take_actions();
        assert_eq!(reads(&out), 0, "{out:?}");
        assert!(m.cold().retry_at.is_none());
        m.handle(now + T, Input::Timer);
        assert_eq!(reads(&m.take_actions()), 0);
    }
}

/// The hand-over's confirming read of our own entry, answered after contact was lost: no
/// claim until contact is back (S2).
#[test]
fn a_claim_read_answered_while_disconnected_does_not_lead() {
    let (mut m, now, _) = placed_reading(false, 1);
    m.take_actions();
    m.handle(
        now,
        Input::PredecessorGone {
            name: "o0".into(),
            result: Ok(()),
        },
    );
    assert!(m.take_actions().contains(&Action::Read {
        name: "mine".into()
    }));
    m.handle(
        now,
        Input::Session(SessionState::Disconnected { last_contact: now }),
    );
    m.handle(
        now,
        Input::Read {
            name: "mine".into(),
            result: Ok(Some(info("mine", 1, marker_of_entry()))),
        },
    );
    assert!(!m.state().is_leader(), "{:?}", m.state());
    // Nor does it ask the service anything while out of contact.
    let out = m.take_actions();
    assert!(
        !out.iter()
            .any(|a| matches!(a, Action::Read { .. } | Action::List)),
        "{out:?}"
    );
    // Back in contact, it verifies before it claims.
    m.handle(now, Input::Session(SessionState::Connected));
    assert!(!m.state().is_leader());
    let out = m.take_actions();
    assert!(
        out.iter()
            .any(|a| matches!(a, Action::Read { .. } | Action::List)),
        "{out:?}"
    );
}

/// S3: the confirming read shows our entry under another session: not ours, never claimed.
#[test]
fn a_claim_read_of_an_entry_another_session_owns_does_not_lead() {
    let (mut m, now, _) = placed_reading(false, 1);
    m.take_actions();
    m.handle(
        now,
        Input::PredecessorGone {
            name: "o0".into(),
            result: Ok(()),
        },
    );
    m.take_actions();
    let mut theirs = info("mine", 1, marker_of_entry());
    theirs.owner = SessionId(5);
    m.handle(
        now,
        Input::Read {
            name: "mine".into(),
            result: Ok(Some(theirs)),
        },
    );
    assert!(!m.state().is_leader(), "{:?}", m.state());
    assert!(has_create(&m.take_actions()));
}

/// S5: the lookup's read shows the entry under another session: not adopted; a fresh create.
#[test]
fn a_lookup_read_of_an_entry_another_session_owns_is_not_adopted() {
    let (mut m, now) = machine(false);
    let mk = marker_of(&m);
    m.handle(
        now,
        Input::Created(Err(BackendError::new(ErrorKind::OutcomeUnknown, "lost"))),
    );
    m.handle(now + T, Input::Timer);
    m.take_actions();
    listed(&mut m, now + T, vec![entry("mine", 0, ME, mk.clone())]);
    m.take_actions();
    let mut theirs = info("mine", 0, mk);
    theirs.owner = SessionId(5);
    m.handle(
        now + T,
        Input::Read {
            name: "mine".into(),
            result: Ok(Some(theirs)),
        },
    );
    let mut out = m.take_actions();
    for i in 2..6 {
        if has_create(&out) {
            break;
        }
        m.handle(now + T * i, Input::Timer);
        out = m.take_actions();
    }
    assert!(has_create(&out), "{out:?}");
    assert!(!out.iter().any(|a| matches!(a, Action::WatchOwn { .. })));
}

/// Without rejoin on expiry, a session's end stops the candidate.
#[test]
fn without_rejoin_on_expiry_a_session_end_stops() {
    let now = Instant::now();
    let mut m = Machine::new(
        MachineConfig {
            rejoin_on_expiry: false,
            ..cfg(false)
        },
        ME,
        T,
        SessionState::Connected,
        now,
    );
    m.take_actions();
    m.handle(now, Input::Session(SessionState::Expired));
    let out = m.take_actions();
    assert!(out.contains(&Action::Finished), "{out:?}");
    assert!(!out.contains(&Action::OpenSession), "{out:?}");
    assert_eq!(m.state(), &ElectionState::Stopped(StopReason::SessionEnded));
}

/// A resignation whose delete meets the session's end is complete (the entry went with the
/// session); the candidate rejoins (or stops, without rejoin on expiry). A session that ends
/// while nobody resigned completes no resignation.
#[test]
fn a_session_end_completes_a_resignation_under_way_and_only_then() {
    for rejoin_on_expiry in [true, false] {
        let now = Instant::now();
        let mut m = Machine::new(
            MachineConfig {
                rejoin_on_expiry,
                ..cfg(false)
            },
            ME,
            T,
            SessionState::Connected,
            now,
        );
        let mk = marker_of(&m);
        m.handle(now, Input::Created(Ok(info("mine", 0, mk.clone()))));
        m.handle(
            now,
            Input::Listed(Ok(Listing {
                entries: vec![entry("mine", 0, ME, mk)],
                foreign: vec![],
                contenders: vec![],
                foreign_omitted: 0,
            })),
        );
        assert!(m.state().is_leader());
        m.take_actions();
        m.handle(now, Input::Resign { rejoin: true });
        assert!(deletes_mine(&m.take_actions()));
        m.handle(now, Input::Session(SessionState::Expired));
        let out = m.take_actions();
        assert!(
            out.contains(&Action::ResignDone),
            "rejoin_on_expiry {rejoin_on_expiry}: {out:?}"
        );
        assert_eq!(out.contains(&Action::OpenSession), rejoin_on_expiry);
    }
    // Nobody resigned: no resignation to complete.
    for rejoin_on_expiry in [true, false] {
        let now = Instant::now();
        let mut m = Machine::new(
            MachineConfig {
                rejoin_on_expiry,
                ..cfg(false)
            },
            ME,
            T,
            SessionState::Connected,
            now,
        );
        m.take_actions();
        m.handle(now, Input::Session(SessionState::Expired));
        assert!(!m.take_actions().contains(&Action::ResignDone));
    }
}

/// A head read still under way when our entry is lost is no lookup: even an entry of our own
/// session (another candidate of this client on the same path) is never adopted by it.
#[test]
fn a_head_read_answered_after_our_entry_was_lost_adopts_nothing() {
    let (mut m, now, out) = placed(false, 1);
    assert!(out.contains(&Action::Read { name: "o0".into() }), "{out:?}");
    m.handle(
        now,
        Input::OwnGone {
            name: "mine".into(),
            result: Ok(()),
        },
    );
    m.take_actions();
    let mut sibling = other_info(0, "sibling");
    sibling.owner = ME;
    read_head(&mut m, now, Ok(Some(sibling)));
    let out = m.take_actions();
    assert!(
        !out.contains(&Action::WatchOwn { name: "o0".into() }),
        "{out:?}"
    );
    assert!(
        matches!(m.phase, Phase::Registering { .. }),
        "{:?}",
        m.phase
    );
}

fn foreign_notices(out: &[Action]) -> Vec<Vec<String>> {
    out.iter()
        .filter_map(|a| match a {
            Action::Emit(Event::Notice {
                notice: Notice::ForeignEntries(names),
                ..
            }) => Some(names.clone()),
            _ => None,
        })
        .collect()
}

/// Foreign nodes are reported when they change, not on every listing, and an empty set is
/// not news.
#[test]
fn foreign_nodes_are_reported_once_per_change() {
    let (mut m, now, out) = placed(false, 1);
    assert!(foreign_notices(&out).is_empty(), "{out:?}");
    let listing = |foreign: &[&str]| Listing {
        entries: vec![other(0), entry("mine", 1, ME, marker_of_entry())],
        foreign: foreign.iter().map(|s| s.to_string()).collect(),
        contenders: vec![],
        foreign_omitted: 0,
    };
    let relist = |m: &mut Machine, foreign: &[&str]| {
        m.handle(
            now,
            Input::PredecessorGone {
                name: "o0".into(),
                result: Err(BackendError::new(ErrorKind::Other, "watch lost")),
            },
        );
        let at = m.cold().retry_at.unwrap_or(now);
        m.handle(at, Input::Timer);
        m.take_actions();
        m.handle(at, Input::Listed(Ok(listing(foreign))));
        foreign_notices(&m.take_actions())
    };
    assert_eq!(
        relist(&mut m, &["config"]),
        vec![vec!["config".to_string()]]
    );
    assert!(relist(&mut m, &["config"]).is_empty());
    assert!(relist(&mut m, &[]).is_empty());
    assert_eq!(relist(&mut m, &["lock"]), vec![vec!["lock".to_string()]]);
}

/// A listing with thousands of foreign children, some with huge names, as a backend that does
/// not bound them might hand over: the machine keeps and reports a bounded number of names,
/// each bounded, and counts the rest; the count is news when it changes.
#[test]
fn thousands_of_foreign_children_are_counted_not_kept() {
    use crate::limits::{MAX_FOREIGN_NAMES, MAX_FOREIGN_NAME_LEN};
    let (mut m, now, _) = placed(false, 1);
    let huge = "h".repeat(1 << 20);
    let mut names: Vec<String> = (0..5000).map(|i| format!("junk-{i:05}")).collect();
    names.push(huge.clone());
    // Not sorted, as a backend might list them.
    names.reverse();
    let relist = |m: &mut Machine, foreign: Vec<String>| {
        m.handle(
            now,
            Input::PredecessorGone {
                name: "o0".into(),
                result: Err(BackendError::new(ErrorKind::Other, "watch lost")),
            },
        );
        let at = m.cold().retry_at.unwrap_or(now);
        m.handle(at, Input::Timer);
        m.take_actions();
        let listing = Listing {
            entries: vec![other(0), entry("mine", 1, ME, marker_of_entry())],
            foreign,
            contenders: vec![],
            foreign_omitted: 0,
        };
        m.handle(at, Input::Listed(Ok(listing)));
        m.take_actions()
    };
    let omitted = |out: &[Action]| -> Vec<usize> {
        out.iter()
            .filter_map(|a| match a {
                Action::Emit(Event::Notice {
                    notice: Notice::ForeignEntriesOmitted(n),
                    ..
                }) => Some(*n),
                _ => None,
            })
            .collect()
    };
    let out = relist(&mut m, names.clone());
    let reported = foreign_notices(&out);
    assert_eq!(reported.len(), 1, "{reported:?}");
    let kept = &reported[0];
    assert_eq!(kept.len(), MAX_FOREIGN_NAMES);
    assert!(kept.iter().all(|n| n.len() <= MAX_FOREIGN_NAME_LEN));
    assert!(kept.windows(2).all(|w| w[0] < w[1]), "sorted");
    // The first in byte order: the huge name ("h...") sorts before "junk-".
    assert!(
        kept[0].starts_with("hhh") && kept[0].ends_with('…'),
        "{}",
        &kept[0][..8]
    );
    assert_eq!(kept[1], "junk-00000");
    assert_eq!(omitted(&out), [names.len() - MAX_FOREIGN_NAMES]);
    assert_eq!(m.strangers().foreign.len(), MAX_FOREIGN_NAMES);
    // The same children, in another order: no news.
    names.reverse();
    let out = relist(&mut m, names.clone());
    assert!(
        foreign_notices(&out).is_empty() && omitted(&out).is_empty(),
        "{out:?}"
    );
    // One more beyond those kept: the count is news.
    names.push("zzz".into());
    let out = relist(&mut m, names.clone());
    assert_eq!(omitted(&out), [names.len() - MAX_FOREIGN_NAMES]);
    // Back to a few names: they are news, and no count goes with them (nothing is omitted).
    let out = relist(&mut m, vec!["a".into(), "b".into()]);
    assert_eq!(foreign_notices(&out).len(), 1, "{out:?}");
    assert!(omitted(&out).is_empty(), "{out:?}");
    // They count for nothing in the queue: one entry ahead, and it is that.
    assert!(
        matches!(m.state(), ElectionState::Follower { position: 1, .. }),
        "{:?}",
        m.state()
    );
    drop(huge);
}

/// A look-alike is remembered only while listings still show it.
#[test]
fn lookalikes_are_forgotten_once_gone() {
    let (mut m, now, _) = placed(false, 1);
    m.take_actions();
    m.handle(now, Input::PredecessorNotAnEntry { name: "o0".into() });
    m.take_actions();
    let mine = entry("mine", 1, ME, marker_of_entry());
    listed(&mut m, now, vec![other(0), mine.clone()]);
    assert!(m.state().is_leader());
    assert!(m.strangers().lookalikes.contains("o0"));
    m.handle(now, Input::Resign { rejoin: true });
    assert!(deletes_mine(&m.take_actions()));
    assert!(has_create(&deleted(&mut m, now)));
    let mk = marker_of(&m);
    m.handle(now, Input::Created(Ok(info("again", 2, mk.clone()))));
    m.take_actions();
    // A live contender of another implementation in the same listing does not keep it either.
    m.handle(
        now,
        Input::Listed(Ok(Listing {
            entries: vec![entry("again", 2, ME, mk)],
            foreign: vec![],
            contenders: vec![crate::backend::ListedContender {
                name: "latch-0000000009".into(),
                sequence: 9,
                owner: SessionId(77),
                token: FencingToken(9),
                data: b"peer".to_vec(),
            }],
            foreign_omitted: 0,
        })),
    );
    assert!(
        m.strangers().lookalikes.is_empty(),
        "{:?}",
        m.strangers().lookalikes
    );
}

/// A follower out of contact is suspended; back in contact, its listing restores it with the
/// reason said.
#[test]
fn a_suspended_follower_is_restored_by_its_listing() {
    let (mut m, now, _) = placed(false, 1);
    m.take_actions();
    m.handle(
        now,
        Input::Session(SessionState::Disconnected { last_contact: now }),
    );
    assert_eq!(m.state(), &ElectionState::Suspended);
    m.handle(now, Input::Session(SessionState::Connected));
    assert!(m.take_actions().contains(&Action::List));
    listed(
        &mut m,
        now,
        vec![other(0), entry("mine", 1, ME, marker_of_entry())],
    );
    let out = m.take_actions();
    let t = *transitions(&out).last().expect("a transition");
    assert!(
        matches!(t.to, ElectionState::Follower { position: 1, .. }),
        "{t:?}"
    );
    assert_eq!(t.reason, Reason::ContactRestored);
}

/// A leader that stepped down at its deadline leads again once back in contact: a new start
/// of its work (the old term's work was ended), reason ContactRestored.
#[test]
fn a_leader_that_stepped_down_reclaims_with_new_work_after_contact_returns() {
    let (mut m, now, _) = placed(true, 0);
    m.take_actions();
    m.handle(
        now + T,
        Input::Session(SessionState::Disconnected { last_contact: now }),
    );
    assert_eq!(m.state(), &ElectionState::Suspended);
    assert!(m.take_actions().contains(&Action::CancelWork));
    m.handle(
        now + T,
        Input::WorkDone {
            end: WorkEnd::Returned,
            handover: false,
        },
    );
    m.handle(now + T, Input::Session(SessionState::Connected));
    assert!(m.take_actions().contains(&Action::List));
    listed(
        &mut m,
        now + T,
        vec![entry("mine", 0, ME, marker_of_entry())],
    );
    let out = m.take_actions();
    assert!(
        out.iter().any(|a| matches!(a, Action::StartWork { .. })),
        "leading again without work: {out:?}"
    );
    let t = *transitions(&out).last().expect("a transition");
    assert!(t.to.is_leader());
    assert_eq!(t.reason, Reason::ContactRestored);
}

/// A look-alike found behind the head leaves what we know of the leader alone.
#[test]
fn a_lookalike_behind_the_head_keeps_the_known_leader() {
    let (mut m, now, _) = placed(false, 2);
    m.take_actions();
    read_head(&mut m, now, Ok(Some(other_info(0, "alpha"))));
    m.take_actions();
    m.handle(now, Input::PredecessorNotAnEntry { name: "o1".into() });
    assert!(m.take_actions().contains(&Action::List));
    listed(
        &mut m,
        now,
        vec![other(0), other(1), entry("mine", 2, ME, marker_of_entry())],
    );
    let out = m.take_actions();
    assert!(
        matches!(m.state(), ElectionState::Follower { position: 1, leader: Some(l) } if l.id == "alpha"),
        "{:?}",
        m.state()
    );
    assert_eq!(reads(&out), 0, "{out:?}");
}

/// A look-alike head found by its watch is not read again.
#[test]
fn a_lookalike_head_is_not_read() {
    let (mut m, now, out) = placed(false, 1);
    assert!(out.contains(&Action::Read { name: "o0".into() }), "{out:?}");
    m.handle(now, Input::PredecessorNotAnEntry { name: "o0".into() });
    m.take_actions();
    // The read under way answers late; nothing asks for the look-alike again.
    read_head(&mut m, now, Ok(Some(other_info(0, "ghost"))));
    let mut out = m.take_actions();
    listed(
        &mut m,
        now,
        vec![other(0), entry("mine", 1, ME, marker_of_entry())],
    );
    out.extend(m.take_actions());
    assert!(m.state().is_leader(), "{:?}", m.state());
    m.handle(now + T, Input::Timer);
    out.extend(m.take_actions());
    assert!(
        !out.contains(&Action::Read { name: "o0".into() }),
        "{out:?}"
    );
}

fn closes_session(out: &[Action]) -> bool {
    out.contains(&Action::CloseSession)
}

/// A resignation that meets a create whose reply was lost looks it up before creating again:
/// it never has two entries at once.
#[test]
fn a_resignation_during_an_unknown_create_looks_it_up_before_creating_again() {
    let (mut m, now) = machine(false);
    let mk = marker_of(&m);
    m.handle(
        now,
        Input::Created(Err(BackendError::new(ErrorKind::OutcomeUnknown, "lost"))),
    );
    m.take_actions();
    m.handle(now, Input::Resign { rejoin: true });
    assert!(!has_create(&m.take_actions()));
    m.handle(now + T, Input::Timer);
    let out = m.take_actions();
    assert!(!has_create(&out), "created before the lookup: {out:?}");
    assert!(out.contains(&Action::List), "{out:?}");
    // It was applied: adopted, then released (deleted) before anything else.
    listed(&mut m, now + T, vec![entry("mine", 0, ME, mk.clone())]);
    m.take_actions();
    m.handle(
        now + T,
        Input::Read {
            name: "mine".into(),
            result: Ok(Some(info("mine", 0, mk))),
        },
    );
    let out = m.take_actions();
    assert!(!has_create(&out), "{out:?}");
    // Given up before anything else, in the step that registers anew: one entry at a time.
    assert!(deletes_mine(&out), "{out:?}");
}

/// A refusal that stops a candidate holding nothing closes nothing; one that stops a candidate
/// which may hold an entry (a create of unknown outcome earlier) closes the session, whose end
/// deletes it.
#[test]
fn a_refusal_closes_the_session_only_when_an_entry_may_be_held() {
    let (mut m, now) = machine(false);
    m.handle(
        now,
        Input::Created(Err(BackendError::new(ErrorKind::NotPermitted, "NoAuth"))),
    );
    let out = m.take_actions();
    assert!(out.contains(&Action::Finished), "{out:?}");
    assert!(!closes_session(&out), "{out:?}");

    let (mut m, now) = machine(false);
    m.handle(
        now,
        Input::Created(Err(BackendError::new(ErrorKind::OutcomeUnknown, "lost"))),
    );
    m.handle(now + T, Input::Timer);
    m.take_actions();
    listed(&mut m, now + T, vec![]);
    let mut out = m.take_actions();
    for i in 2..6 {
        if has_create(&out) {
            break;
        }
        m.handle(now + T * i, Input::Timer);
        out = m.take_actions();
    }
    assert!(has_create(&out), "{out:?}");
    // The lost create may still land (a late copy): refused now, the session is closed.
    m.handle(
        now + T * 6,
        Input::Created(Err(BackendError::new(ErrorKind::NotPermitted, "NoAuth"))),
    );
    let out = m.take_actions();
    assert!(out.contains(&Action::Finished), "{out:?}");
    assert!(closes_session(&out), "{out:?}");
}

/// A stop that cannot finish in time leaves a sweep to the client only if an entry may exist:
/// a create still in flight may land.
#[test]
fn a_stop_past_its_deadline_sweeps_later_only_if_an_entry_may_exist() {
    // A create in flight when the stop's deadline passes.
    let (mut m, now) = machine(false);
    m.handle(now, Input::Stop);
    m.take_actions();
    m.handle(now + T + Duration::from_secs(1), Input::Timer);
    let out = m.take_actions();
    assert!(out.contains(&Action::Finished), "{out:?}");
    assert!(out.contains(&Action::SweepLater), "{out:?}");
    // Nothing in flight, nothing held: nothing to sweep (it stops at once).
    let (mut m, now) = machine(false);
    m.handle(
        now,
        Input::Created(Err(BackendError::new(ErrorKind::NotFound, "no parent"))),
    );
    m.take_actions();
    m.handle(now, Input::Stop);
    let out = m.take_actions();
    assert!(out.contains(&Action::Finished), "{out:?}");
    assert!(!out.contains(&Action::SweepLater), "{out:?}");
}

/// A resignation that ends the candidate completes (ResignDone); a stop completes none.
#[test]
fn only_a_resignation_reports_resign_done() {
    for (input, done) in [
        (Input::Resign { rejoin: false }, true),
        (Input::Stop, false),
    ] {
        let (mut m, now, _) = placed(false, 1);
        m.take_actions();
        m.handle(now, input);
        let mut out = m.take_actions();
        out.extend(deleted(&mut m, now));
        assert!(out.contains(&Action::Finished), "{out:?}");
        assert_eq!(out.contains(&Action::ResignDone), done, "{out:?}");
    }
}

/// Work that overruns its grace is reported; work that ends in time is not.
#[test]
fn only_work_that_overran_its_grace_is_reported() {
    let overran = |out: &[Action]| {
        out.iter().any(|a| {
            matches!(
                a,
                Action::Emit(Event::Notice {
                    notice: Notice::WorkOverranGrace(FencingToken(100)),
                    ..
                })
            )
        })
    };
    for (end, reported) in [(WorkEnd::Aborted, true), (WorkEnd::Returned, false)] {
        let (mut m, now, _) = placed(true, 0);
        m.take_actions();
        m.handle(now, Input::Resign { rejoin: true });
        m.take_actions();
        m.handle(
            now,
            Input::WorkDone {
                end: end.clone(),
                handover: false,
            },
        );
        assert_eq!(overran(&m.take_actions()), reported, "{end:?}");
    }
}

/// Another candidate of the same client on the same path (same session, another marker
/// prefix) is no orphan of ours: never deleted.
#[test]
fn a_sibling_candidates_entry_on_our_session_is_not_an_orphan() {
    let (mut m, now) = machine(false);
    let mk = marker_of(&m);
    m.handle(now, Input::Created(Ok(info("mine", 1, mk.clone()))));
    m.take_actions();
    let sibling = entry("sibling", 0, ME, Marker::from_bits((0x1234_u64 << 32) | 1));
    listed(&mut m, now, vec![sibling, entry("mine", 1, ME, mk)]);
    let out = m.take_actions();
    assert!(
        !out.iter().any(|a| matches!(a, Action::Delete { .. })),
        "{out:?}"
    );
    assert!(
        matches!(m.state(), ElectionState::Follower { position: 1, .. }),
        "{:?}",
        m.state()
    );
}

/// A success resets the back-off of its kind of call: the next failure waits the floor again.
#[test]
fn a_success_resets_the_back_off() {
    let (mut m, mut now, _) = placed(false, 1);
    m.take_actions();
    let floor = T / 50;
    // The predecessor's watch fails: re-listed after a back-off.
    let watch_fails = |m: &mut Machine, now: &mut Instant| {
        m.handle(
            *now,
            Input::PredecessorGone {
                name: "o0".into(),
                result: Err(BackendError::new(ErrorKind::Other, "watch lost")),
            },
        );
        m.take_actions();
        *now = m.cold().retry_at.unwrap_or(*now);
        m.handle(*now, Input::Timer);
        assert!(m.take_actions().contains(&Action::List));
    };
    // The listing fails: the delay before the next, which is then sent.
    let list_fails = |m: &mut Machine, now: &mut Instant| {
        m.handle(
            *now,
            Input::Listed(Err(BackendError::new(ErrorKind::OutcomeUnknown, "timeout"))),
        );
        m.take_actions();
        let d = retry_delay(m, *now);
        *now = m.cold().retry_at.unwrap();
        m.handle(*now, Input::Timer);
        assert!(m.take_actions().contains(&Action::List));
        d
    };
    watch_fails(&mut m, &mut now);
    let delays: Vec<_> = (0..4).map(|_| list_fails(&mut m, &mut now)).collect();
    assert!(delays[3] > floor, "no back-off: {delays:?}");
    // A listing that succeeds resets the listing's back-off.
    listed(
        &mut m,
        now,
        vec![other(0), entry("mine", 1, ME, marker_of_entry())],
    );
    assert!(m
        .take_actions()
        .contains(&Action::WatchPredecessor { name: "o0".into() }));
    watch_fails(&mut m, &mut now);
    let d = list_fails(&mut m, &mut now);
    assert!(d <= floor, "not reset: {d:?} after {delays:?}");
}

/// After a lookup that finds a late copy of an older attempt (an orphan) and not the current
/// one, the orphan is deleted before the next create is sent.
#[test]
fn orphans_are_deleted_before_creating_again() {
    let (mut m, now) = machine(false);
    m.handle(
        now,
        Input::Created(Err(BackendError::new(ErrorKind::OutcomeUnknown, "lost"))),
    );
    m.handle(now + T, Input::Timer);
    m.take_actions();
    let older = Marker::from_bits((0xabcd_u64 << 32) | 99);
    listed(&mut m, now + T, vec![entry("late", 0, ME, older)]);
    let mut out = m.take_actions();
    for i in 2..6 {
        if out
            .iter()
            .any(|a| matches!(a, Action::Delete { .. } | Action::Create { .. }))
        {
            break;
        }
        m.handle(now + T * i, Input::Timer);
        out = m.take_actions();
    }
    assert!(
        out.contains(&Action::Delete {
            name: "late".into()
        }),
        "{out:?}"
    );
    assert!(
        !has_create(&out),
        "created before the orphan was deleted: {out:?}"
    );
    m.handle(
        now + T * 6,
        Input::Deleted {
            name: "late".into(),
            result: Ok(()),
        },
    );
    assert!(has_create(&m.take_actions()));
}

/// A stop's deadline ends the candidate with the reason it was asked to stop for.
#[test]
fn a_stop_deadline_keeps_the_reason_of_the_stop() {
    let (mut m, now, _) = placed(false, 1);
    m.handle(
        now,
        Input::Session(SessionState::Disconnected { last_contact: now }),
    );
    m.handle(now, Input::Resign { rejoin: false });
    m.handle(now + T + Duration::from_secs(1), Input::Timer);
    assert!(m.take_actions().contains(&Action::Finished));
    assert_eq!(m.state(), &ElectionState::Stopped(StopReason::Resigned));
}

/// A stop whose session is being closed (a refused delete) leaves nothing to sweep when its
/// deadline passes: the session's end deletes the entry.
#[test]
fn a_stop_deadline_while_the_session_closes_sweeps_nothing() {
    let (mut m, now, _) = placed(false, 0);
    m.take_actions();
    m.handle(now, Input::Stop);
    assert!(m.take_actions().contains(&Action::Delete {
        name: "mine".into()
    }));
    m.handle(
        now,
        Input::Deleted {
            name: "mine".into(),
            result: Err(BackendError::new(ErrorKind::NotPermitted, "NoAuth")),
        },
    );
    assert!(m.take_actions().contains(&Action::CloseSession));
    m.handle(now + T + Duration::from_secs(1), Input::Timer);
    let out = m.take_actions();
    assert!(out.contains(&Action::Finished), "{out:?}");
    assert!(!out.contains(&Action::SweepLater), "{out:?}");
}

/// S4: the hand-over's confirming read waits until the last term's work has ended.
#[test]
fn the_confirming_read_waits_for_the_last_terms_work() {
    let (mut m, now, _) = placed_reading(true, 0);
    m.take_actions();
    m.handle(
        now,
        Input::OwnGone {
            name: "mine".into(),
            result: Ok(()),
        },
    );
    let out = m.take_actions();
    assert!(out.contains(&Action::CancelWork), "{out:?}");
    let mk = out
        .iter()
        .find_map(|a| match a {
            Action::Create { marker } => Some(marker.clone()),
            _ => None,
        })
        .expect("registers again");
    m.handle(now, Input::Created(Ok(info("again", 5, mk.clone()))));
    m.take_actions();
    listed(&mut m, now, vec![other(3), entry("again", 5, ME, mk)]);
    m.take_actions();
    m.handle(
        now,
        Input::PredecessorGone {
            name: "o3".into(),
            result: Ok(()),
        },
    );
    let out = m.take_actions();
    assert!(
        !out.contains(&Action::Read {
            name: "again".into()
        }),
        "read before the old work ended: {out:?}"
    );
    m.handle(
        now,
        Input::WorkDone {
            end: WorkEnd::Returned,
            handover: false,
        },
    );
    let out = m.take_actions();
    assert!(
        out.contains(&Action::Read {
            name: "again".into()
        }),
        "{out:?}"
    );
}

/// The jitter's generator is splitmix64, output for output (a seeded run must replay the same
/// retries on every build): the reference's first outputs from state 0.
#[test]
fn the_generator_is_splitmix64() {
    let mut state = 0;
    let out: Vec<u64> = (0..3).map(|_| next_random(&mut state)).collect();
    assert_eq!(
        out,
        [
            0xe220_a839_7b1d_cdaf,
            0x6e78_9e6a_a1b9_65f4,
            0x06c4_5d18_8009_454f
        ]
    );
}

/// An overrun is reported with the token of the term whose work it was, also when the report
/// comes after the candidate has rejoined with a new entry (found by the simulation with
/// process pauses: it reported the new entry's token).
#[test]
fn an_overrun_reported_after_rejoining_names_the_old_terms_token() {
    let (mut m, now, _) = placed(true, 0);
    m.take_actions();
    m.handle(now, Input::Session(SessionState::Expired));
    assert!(m.take_actions().contains(&Action::AbortWork));
    m.handle(
        now,
        Input::SessionOpened {
            id: SessionId(8),
            timeout: T,
            state: SessionState::Connected,
        },
    );
    let mk = m
        .take_actions()
        .iter()
        .find_map(|a| match a {
            Action::Create { marker } => Some(marker.clone()),
            _ => None,
        })
        .expect("registers on the new session");
    let mut again = info("again", 6, mk);
    again.owner = SessionId(8);
    m.handle(now, Input::Created(Ok(again)));
    m.take_actions();
    m.handle(
        now,
        Input::WorkDone {
            end: WorkEnd::Aborted,
            handover: false,
        },
    );
    let out = m.take_actions();
    let reported: Vec<_> = out
        .iter()
        .filter_map(|a| match a {
            Action::Emit(Event::Notice {
                notice: Notice::WorkOverranGrace(t),
                ..
            }) => Some(*t),
            _ => None,
        })
        .collect();
    assert_eq!(reported, [FencingToken(100)], "{out:?}");
}

/// Answers the machine's listing with `entries` (no foreign nodes, no contenders).
fn listed(m: &mut Machine, now: Instant, entries: Vec<ListedEntry>) {
    m.handle(
        now,
        Input::Listed(Ok(Listing {
            entries,
            foreign: vec![],
            contenders: vec![],
            foreign_omitted: 0,
        })),
    );
}
