//! A candidate's event outlet: what its driver emits and [`Candidate::events`] hands out.
//!
//! A broadcast channel of [`EVENTS_CAPACITY`] slots costs about 15 KiB, allocated when it is
//! made, and most candidates never have their events read (a process running 10,000 elections
//! would spend 150 MiB on them). So the channel is made at the first
//! [`subscribe`](EventsOutlet::subscribe); until then the outlet keeps the newest events (at most
//! what the channel would keep) and counts the ones it let go. The first subscriber gets what it
//! would have got from a receiver subscribed when the candidate started: the kept events in
//! order, after a `Lagged(n)` for the `n` lost ones if there were any.
//!
//! [`Candidate::events`]: crate::Candidate::events

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::broadcast;

use tokio::time::Instant;

use crate::backend::FencingToken;
use crate::candidate::EVENTS_CAPACITY;
use crate::state::{Contact, ElectionState, Event, Reason, Transition};

/// How many events a receiver holds: the broadcast channel rounds its capacity up to a power
/// of two, and so does what is kept before it exists.
fn kept_capacity() -> usize {
    EVENTS_CAPACITY.next_power_of_two()
}

/// What a plain state is (no leader known, contact confirmed): a kept transition holds its
/// kind and its one number (a follower's position, a leader's token).
#[derive(Clone, Copy)]
enum Kind {
    Joining,
    Follower,
    Leader,
    Suspended,
}

/// The reasons without data, as a kept transition numbers them.
const PLAIN_REASONS: [Reason; 15] = [
    Reason::Joined,
    Reason::Claimed,
    Reason::LeaderKnown,
    Reason::PredecessorLeft,
    Reason::ContactLost,
    Reason::ContactRestored,
    Reason::StepDownDeadline,
    Reason::Resigned,
    Reason::EntryDeleted,
    Reason::ForeignContenderAhead,
    Reason::SessionEnded,
    Reason::Rejoining,
    Reason::Stopped,
    Reason::Failed,
    Reason::WorkReturned,
];

/// A plain state's kind and number; `None` for any other.
fn plain(state: &ElectionState) -> Option<(Kind, u64)> {
    match state {
        ElectionState::Joining => Some((Kind::Joining, 0)),
        ElectionState::Follower {
            position,
            leader: None,
        } => Some((Kind::Follower, u64::try_from(*position).ok()?)),
        ElectionState::Leader {
            token,
            contact: Contact::Confirmed,
        } => Some((Kind::Leader, token.0)),
        ElectionState::Suspended => Some((Kind::Suspended, 0)),
        _ => None,
    }
}

/// The plain state of `kind` and `number`.
fn unplain(kind: Kind, number: u64) -> ElectionState {
    match kind {
        Kind::Joining => ElectionState::Joining,
        Kind::Follower => ElectionState::Follower {
            position: usize::try_from(number).expect("a position kept from a usize"),
            leader: None,
        },
        Kind::Leader => ElectionState::Leader {
            token: FencingToken(number),
            contact: Contact::Confirmed,
        },
        Kind::Suspended => ElectionState::Suspended,
    }
}

/// An event kept until the first subscriber: a transition between plain states for a reason
/// without data in 40 bytes, not the [`Event`]'s 192 (a candidate keeps its first events for
/// as long as nobody reads them, most of them for their whole life; issue 12); any other event
/// boxed. The first subscriber gets the very events sent.
enum KeptEvent {
    Transition {
        at: Instant,
        from: u64,
        to: u64,
        /// The kinds of `from` and `to`.
        kinds: [Kind; 2],
        /// An index into [`PLAIN_REASONS`].
        reason: u8,
    },
    Other(Box<Event>),
}

impl KeptEvent {
    fn new(event: Event) -> Self {
        if let Event::Transition(t) = &event {
            if let (Some((from_kind, from)), Some((to_kind, to)), Some(reason)) = (
                plain(&t.from),
                plain(&t.to),
                PLAIN_REASONS.iter().position(|r| *r == t.reason),
            ) {
                return Self::Transition {
                    at: t.at,
                    from,
                    to,
                    kinds: [from_kind, to_kind],
                    reason: reason as u8,
                };
            }
        }
        Self::Other(Box::new(event))
    }

    fn at(&self) -> Instant {
        match self {
            Self::Transition { at, .. } => *at,
            Self::Other(event) => match &**event {
                Event::Transition(t) => t.at,
                Event::Notice { at, .. } => *at,
            },
        }
    }

    fn event(self) -> Event {
        match self {
            Self::Transition {
                at,
                from,
                to,
                kinds: [from_kind, to_kind],
                reason,
            } => Event::Transition(Transition {
                at,
                from: unplain(from_kind, from),
                to: unplain(to_kind, to),
                reason: PLAIN_REASONS[usize::from(reason)].clone(),
            }),
            Self::Other(event) => *event,
        }
    }
}

enum Outlet {
    /// Nobody asked for the events yet.
    Kept {
        /// The newest events, oldest first: at most [`kept_capacity`].
        events: VecDeque<KeptEvent>,
        /// How many older ones were let go.
        lost: u64,
    },
    /// Someone did: the channel.
    Open(broadcast::Sender<Event>),
}

/// The events of one candidate, shared by its driver (which sends) and its handle (which
/// subscribes).
pub(crate) struct EventsOutlet {
    outlet: Mutex<Outlet>,
}

impl EventsOutlet {
    pub(crate) fn new() -> Self {
        Self {
            outlet: Mutex::new(Outlet::Kept {
                events: VecDeque::new(),
                lost: 0,
            }),
        }
    }

    /// Sends `event` to the subscribers, or keeps it for the first one.
    pub(crate) fn send(&self, event: Event) {
        let mut outlet = self.outlet.lock().unwrap_or_else(|e| e.into_inner());
        match &mut *outlet {
            Outlet::Kept { events, lost } => {
                if events.len() == kept_capacity() {
                    events.pop_front();
                    *lost += 1;
                } else if events.len() == events.capacity() {
                    // Doubling from one, not from the four a first push would reserve: most
                    // candidates emit one or two events before a change of leader (and most
                    // never have them read).
                    events.reserve_exact(events.len().max(1));
                }
                events.push_back(KeptEvent::new(event));
            }
            // No receiver: nobody is listening now, and later subscribers start from their
            // own subscription.
            Outlet::Open(tx) => {
                let _ = tx.send(event);
            }
        }
    }

    /// A receiver: the first one gets every event since the candidate started (or a `Lagged`
    /// for those it could not keep, then the newest), later ones the events from now on.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Event> {
        let mut outlet = self.outlet.lock().unwrap_or_else(|e| e.into_inner());
        match &mut *outlet {
            Outlet::Open(tx) => tx.subscribe(),
            Outlet::Kept { events, lost } => {
                let (tx, rx) = broadcast::channel(EVENTS_CAPACITY);
                if let Some(first) = events.front() {
                    // Stand-ins for the lost events, overwritten by the kept ones below (there
                    // are `kept_capacity` of them whenever any was lost): the receiver's first
                    // `recv` says `Lagged(lost)`, as a receiver that fell behind would hear.
                    let at = first.at();
                    for _ in 0..*lost {
                        let _ = tx.send(Event::Notice {
                            at,
                            notice: crate::state::Notice::WorkFinished(crate::FencingToken(0)),
                        });
                    }
                }
                for event in events.drain(..) {
                    let _ = tx.send(event.event());
                }
                *outlet = Outlet::Open(tx);
                rx
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Notice;
    use std::sync::Arc;
    use tokio::sync::broadcast::error::TryRecvError;
    use tokio::time::Instant;

    fn notice(i: u64) -> Event {
        Event::Notice {
            at: Instant::now(),
            notice: Notice::WorkFinished(crate::FencingToken(i)),
        }
    }

    fn number(e: Event) -> u64 {
        match e {
            Event::Notice {
                notice: Notice::WorkFinished(t),
                ..
            } => t.0,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn the_first_subscriber_gets_every_event_since_the_start() {
        let outlet = EventsOutlet::new();
        for i in 1..=3 {
            outlet.send(notice(i));
        }
        let mut first = outlet.subscribe();
        outlet.send(notice(4));
        let mut later = outlet.subscribe();
        outlet.send(notice(5));
        let got: Vec<u64> = std::iter::from_fn(|| first.try_recv().ok())
            .map(number)
            .collect();
        assert_eq!(got, [1, 2, 3, 4, 5]);
        assert_eq!(number(later.try_recv().expect("5")), 5);
        assert_eq!(later.try_recv().unwrap_err(), TryRecvError::Empty);
    }

    #[test]
    fn the_first_subscriber_hears_how_many_were_lost_then_the_newest() {
        for extra in [0u64, 1, 7, 200] {
            let outlet = EventsOutlet::new();
            let total = kept_capacity() as u64 + extra;
            for i in 1..=total {
                outlet.send(notice(i));
            }
            let mut rx = outlet.subscribe();
            if extra > 0 {
                assert_eq!(rx.try_recv().unwrap_err(), TryRecvError::Lagged(extra));
            }
            let got: Vec<u64> = std::iter::from_fn(|| rx.try_recv().ok())
                .map(number)
                .collect();
            assert_eq!(
                got,
                ((extra + 1)..=total).collect::<Vec<_>>(),
                "extra {extra}"
            );
        }
    }

    /// Issue 12: a candidate keeps room for the events it emitted, not for four of them
    /// (about 200 bytes each) from the first one on.
    #[test]
    fn kept_events_take_the_room_they_need() {
        let capacity = |o: &EventsOutlet| match &*o.outlet.lock().unwrap() {
            Outlet::Kept { events, .. } => events.capacity(),
            Outlet::Open(_) => unreachable!("nobody subscribed"),
        };
        let outlet = EventsOutlet::new();
        assert_eq!(capacity(&outlet), 0);
        outlet.send(notice(1));
        assert_eq!(capacity(&outlet), 1);
        for i in 2..=5 {
            outlet.send(notice(i));
        }
        assert!(
            (5..=8).contains(&capacity(&outlet)),
            "{}",
            capacity(&outlet)
        );
        for i in 6..=1000 {
            outlet.send(notice(i));
        }
        assert!(capacity(&outlet) <= 2 * kept_capacity());
    }

    /// Issue 12: events are kept compactly until the first subscriber, who gets every one as
    /// it was sent: plain states and others (a known leader, uncertain contact, a stop), every
    /// reason, notices.
    #[test]
    fn kept_events_come_out_as_sent() {
        let at = Instant::now();
        let leader = crate::state::LeaderInfo {
            id: "l".into(),
            implementation: crate::Implementation::Election,
            payload: Arc::from(&b"10.0.0.7"[..]),
            token: crate::FencingToken(9),
            session: crate::SessionId(3),
        };
        let states = [
            ElectionState::Joining,
            ElectionState::Follower {
                position: 4,
                leader: None,
            },
            ElectionState::Follower {
                position: 1,
                leader: Some(Arc::new(leader)),
            },
            ElectionState::Leader {
                token: crate::FencingToken(7),
                contact: Contact::Confirmed,
            },
            ElectionState::Leader {
                token: crate::FencingToken(8),
                contact: Contact::Uncertain { step_down_at: at },
            },
            ElectionState::Suspended,
            ElectionState::Stopped(crate::StopReason::Failed("boom".into())),
            ElectionState::Follower {
                position: usize::MAX,
                leader: None,
            },
        ];
        let mut reasons = PLAIN_REASONS.to_vec();
        reasons.push(Reason::WorkFailed("failed".into()));
        reasons.push(Reason::WorkPanicked("panicked".into()));
        let mut sent = Vec::new();
        for (i, from) in states.iter().enumerate() {
            for (j, to) in states.iter().enumerate() {
                sent.push(Event::Transition(Transition {
                    at: at + std::time::Duration::from_millis((i * 10 + j) as u64),
                    from: from.clone(),
                    to: to.clone(),
                    reason: reasons[(i * states.len() + j) % reasons.len()].clone(),
                }));
            }
        }
        sent.push(Event::Notice {
            at,
            notice: Notice::OrphanRemoved("n".into()),
        });
        for sent in sent.chunks(kept_capacity()) {
            let outlet = EventsOutlet::new();
            for event in sent {
                outlet.send(event.clone());
            }
            let mut rx = outlet.subscribe();
            let got: Vec<Event> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
            assert_eq!(got, sent);
        }
    }

    #[test]
    fn a_receiver_that_falls_behind_an_open_outlet_lags_as_before() {
        let outlet = EventsOutlet::new();
        let mut rx = outlet.subscribe();
        let total = kept_capacity() as u64 + 3;
        for i in 1..=total {
            outlet.send(notice(i));
        }
        assert_eq!(rx.try_recv().unwrap_err(), TryRecvError::Lagged(3));
        assert_eq!(number(rx.try_recv().expect("oldest kept")), 4);
    }
}
