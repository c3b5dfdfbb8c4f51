//! Session state and last contact: this backend's own, conservative record of when the
//! ZooKeeper **leader** last heard of this session, and the [`SessionState`] published from it.
//!
//! # What counts as contact
//! On an ensemble, a session is expired by the elected ZooKeeper leader, which hears of a client
//! only through the member the client is connected to: that member collects the sessions it has
//! heard from and passes them on in its reply to the leader's next ping (every `tickTime / 2`).
//! Reads (`exists`, `getChildren`, `getData`) are answered by the member alone, and a member cut
//! off from its leader goes on answering them until its `syncLimit` runs out, long after the
//! leader may have expired the session. So a read's reply proves nothing, and only replies that
//! passed through the leader count:
//!
//! - `sync` (our keep-alive, every [`period`](Liveness::period)) and writes (`create`, `delete`):
//!   the member forwards them to the leader and replies only once the leader has answered.
//!   Such a reply to a request **sent** at `s` is a *proof* at `s`.
//! - A proof at `s` shows that the member's link to the leader carried everything the member sent
//!   before `s`, including its replies to the leader's pings. A proof `p` older than `s` by at
//!   least the [`margin`](Liveness::margin) (`tickTime / 2` plus the link's delay) was followed by
//!   at least one such ping reply before `s`, which told the leader of the session; the leader
//!   then counted the session's timeout from no earlier than `p`. So **last contact** is the
//!   latest proof at least one margin older than the newest proof: a lower bound on when the
//!   leader last heard of us. The margin is the price of the proof: leaders step down that much
//!   earlier after a silence.
//! - Standalone servers expire sessions themselves; the same rule holds there, conservatively.
//! - The session's creation is contact at the instant the connect started.
//!
//! # Published state
//! - `Disconnected { last_contact }` as soon as the client reports `Disconnected` **or** no proof
//!   has come for [`silence`](Liveness::silence), whichever is first;
//! - `Connected` again only on a proof sent less than `silence` ago while the client is connected
//!   (an answer to a request queued during the outage is an old proof);
//! - `Expired` on the client's `Expired` or a request failing with `SessionExpired`; `Closed` on
//!   close, `AuthFailed` or the client's `Closed`. Terminal states never change again.
//!
//! # A suspended host
//! The monotonic clock stops while the host is suspended, but ZooKeeper's does not: on resume,
//! last contact would look fresher than it is. The monitor compares the wall clock with the
//! monotonic clock at every wake-up; time the wall clock saw and the monotonic clock did not is
//! taken off every recorded proof, and the session is reported `Disconnected` so the election
//! re-verifies its place before it goes on. A forward jump of the wall clock (an NTP step) is
//! treated the same way: conservative, never unsafe. What is left: between the resume and the
//! monitor's first wake-up (the next timer tick) a leader may still act on its old view.
//!
//! The monitor task ends when the state becomes terminal or the session is dropped (it is
//! aborted then): no stray task outlives a session.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use election_core::clock::SuspendDetector;
use election_core::{SessionId, SessionState};
use tokio::sync::watch;
use tokio::time::{sleep_until, Instant};
use zookeeper_client as zk;

/// Keep-alive syncs per session timeout, at least.
const SYNCS_PER_TIMEOUT: u32 = 6;
/// Keep-alive syncs per session timeout, at most.
const MAX_SYNCS_PER_TIMEOUT: u32 = 20;
/// Silence, as a fraction (1/N) of the timeout, after which we report `Disconnected`.
const SILENCE_DIVISOR: u32 = 3;
/// Proofs kept while they wait to become old enough to count; more are thinned out (which only
/// makes last contact older).
const MAX_PENDING_PROOFS: usize = 64;

/// The proofs seen, and the contact they establish.
#[derive(Debug)]
struct Proofs {
    /// Last contact: a lower bound on when the ZooKeeper leader last heard of the session.
    contact: Instant,
    /// The send instant of the newest proof.
    newest: Instant,
    /// Proofs newer than `contact`, oldest first, not yet one margin older than `newest`.
    pending: VecDeque<Instant>,
}

/// The shared record: last contact and the published state.
#[derive(Debug)]
pub(crate) struct Liveness {
    session: SessionId,
    timeout: Duration,
    margin: Duration,
    proofs: Mutex<Proofs>,
    state: watch::Sender<SessionState>,
}

impl Liveness {
    /// A record for a session created after `created` (its creation passed through the leader)
    /// and confirmed by a proof sent at `confirmed`. `margin` is how far the leader's view of the
    /// session may lag a proof.
    pub(crate) fn new(
        session: SessionId,
        timeout: Duration,
        margin: Duration,
        created: Instant,
        confirmed: Instant,
    ) -> Self {
        let live = Self {
            session,
            timeout,
            margin,
            proofs: Mutex::new(Proofs {
                contact: created,
                newest: created,
                pending: VecDeque::new(),
            }),
            state: watch::Sender::new(SessionState::Connected),
        };
        live.record_proof(confirmed);
        live
    }

    /// The silence after which the session counts as disconnected.
    pub(crate) fn silence(&self) -> Duration {
        self.timeout / SILENCE_DIVISOR
    }

    /// The keep-alive period: half the margin, so that contact lags the newest proof by little
    /// more than the margin; but no more often than `timeout / 20` (a short tickTime would
    /// otherwise cost many requests for little), and at least every `timeout / 6`.
    pub(crate) fn period(&self) -> Duration {
        (self.margin / 2)
            .max(self.timeout / MAX_SYNCS_PER_TIMEOUT)
            .min(self.timeout / SYNCS_PER_TIMEOUT)
            .max(Duration::from_millis(1))
    }

    /// When a keep-alive is next due after one sent (or planned) at `from`: one period later.
    fn keep_alive_due(&self, from: Instant) -> Instant {
        from + self.period()
    }

    /// The instant from which the session counts as silent: one [`silence`](Self::silence)
    /// after the newest proof was sent.
    fn silence_deadline(&self) -> Instant {
        self.last_proof() + self.silence()
    }

    /// Whether no proof has come for [`silence`](Self::silence) by `now`.
    fn silent_at(&self, now: Instant) -> bool {
        now >= self.silence_deadline()
    }

    /// The monitor's timers for a wake-up at `now` while `state` is published (see [`Wakes`]).
    fn wakes(&self, state: SessionState, now: Instant) -> Wakes {
        Wakes {
            // Only a connected session can fall silent: a disconnected one is reported already,
            // and a terminal one is never reported again.
            silence: (state == SessionState::Connected).then(|| self.silence_deadline()),
            // Wake at least every period, so a suspend is noticed within one.
            check_clocks: now + self.period(),
        }
    }

    /// The monitor's silence timer fired at `now`: reports `Disconnected` if the session is still
    /// silent (a proof may have come in the meantime). Returns whether it was silent.
    fn silence_check(&self, now: Instant) -> bool {
        let silent = self.silent_at(now);
        if silent {
            self.disconnect("no proof of contact within a third of the session timeout");
        }
        silent
    }

    /// How far the leader's view of the session may lag a proof.
    #[cfg(test)]
    pub(crate) fn margin(&self) -> Duration {
        self.margin
    }

    /// A new receiver of the published state.
    pub(crate) fn subscribe(&self) -> watch::Receiver<SessionState> {
        self.state.subscribe()
    }

    /// The published state now.
    pub(crate) fn current(&self) -> SessionState {
        *self.state.borrow()
    }

    fn proofs(&self) -> std::sync::MutexGuard<'_, Proofs> {
        self.proofs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Last contact: the latest proof at least one margin older than the newest (see the module
    /// docs). Never later than the truth; never moves back except for a suspended host.
    pub(crate) fn last_contact(&self) -> Instant {
        self.proofs().contact
    }

    /// The send instant of the newest proof: what silence is measured from.
    pub(crate) fn last_proof(&self) -> Instant {
        self.proofs().newest
    }

    /// Records a reply that passed through the ZooKeeper leader, to a request sent at `sent_at`.
    pub(crate) fn record_proof(&self, sent_at: Instant) {
        let mut p = self.proofs();
        if sent_at <= p.contact {
            return;
        }
        let at = p.pending.partition_point(|&q| q < sent_at);
        if p.pending.get(at) != Some(&sent_at) {
            p.pending.insert(at, sent_at);
        }
        if p.pending.len() > MAX_PENDING_PROOFS {
            // Drop the second oldest: the oldest keeps contact advancing; the newest keeps the
            // window; losing one in between only delays contact.
            p.pending.remove(1);
        }
        p.newest = p.newest.max(sent_at);
        let Some(horizon) = p.newest.checked_sub(self.margin) else {
            return;
        };
        while p.pending.front().is_some_and(|&q| q <= horizon) {
            let q = p.pending.pop_front().expect("checked");
            p.contact = p.contact.max(q);
        }
    }

    /// Takes `unseen` (time the host was suspended) off every recorded proof and reports the
    /// session disconnected, so the election re-verifies before it goes on.
    pub(crate) fn suspended(&self, unseen: Duration) {
        {
            let mut p = self.proofs();
            let back = |t: Instant| t.checked_sub(unseen).unwrap_or(t);
            p.contact = back(p.contact);
            p.newest = back(p.newest);
            for q in p.pending.iter_mut() {
                *q = back(*q);
            }
        }
        tracing::warn!(
            session = %self.session,
            unseen_ms = unseen.as_millis() as u64,
            "the wall clock moved on while the monotonic clock stood still (host suspended?): \
             last contact moved back"
        );
        self.disconnect("host suspended");
    }

    /// Publishes `next` unless the state is already terminal (terminal states are final) or
    /// unchanged. Returns whether it was published.
    pub(crate) fn publish(&self, next: SessionState, why: &'static str) -> bool {
        let published = self.state.send_if_modified(|state| {
            if state.is_terminal() || *state == next {
                return false;
            }
            // `Disconnected` keeps the instant it was first reported with: a later, fresher
            // value would only be published through `Connected`.
            if matches!(
                (*state, next),
                (
                    SessionState::Disconnected { .. },
                    SessionState::Disconnected { .. }
                )
            ) {
                return false;
            }
            *state = next;
            true
        });
        if published {
            match next {
                SessionState::Connected => {
                    tracing::info!(session = %self.session, why, "zookeeper session connected")
                }
                SessionState::Disconnected { last_contact } => tracing::warn!(
                    session = %self.session,
                    why,
                    silent_ms = last_contact.elapsed().as_millis() as u64,
                    "zookeeper session disconnected"
                ),
                SessionState::Expired => {
                    tracing::warn!(session = %self.session, why, "zookeeper session expired")
                }
                SessionState::Closed => {
                    tracing::info!(session = %self.session, why, "zookeeper session closed")
                }
            }
        }
        published
    }

    /// Reports `Disconnected` with the current last contact (if not already disconnected).
    fn disconnect(&self, why: &'static str) {
        let last_contact = self.last_contact();
        self.publish(SessionState::Disconnected { last_contact }, why);
    }
}

/// The monitor's timers besides the keep-alive, computed at each wake-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Wakes {
    /// When the session counts as silent, if a silence is to be watched for (while connected).
    silence: Option<Instant>,
    /// The next comparison of the wall clock with the monotonic clock.
    check_clocks: Instant,
}

type Sync = Pin<Box<dyn Future<Output = (Instant, Result<(), SyncError>)> + Send>>;

#[derive(Debug)]
enum SyncError {
    Client(zk::Error),
    NoReply,
}

/// The keep-alive: a `sync`, which the member the client is connected to forwards to the
/// ZooKeeper leader and answers only after the leader has.
fn keep_alive(client: zk::Client, bound: Duration) -> Sync {
    Box::pin(async move {
        let sent_at = Instant::now();
        // The request is queued when `sync` is called, so `sent_at` precedes its sending.
        let reply = tokio::time::timeout(bound, client.sync("/")).await;
        let result = match reply {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(SyncError::Client(e)),
            Err(_) => Err(SyncError::NoReply),
        };
        (sent_at, result)
    })
}

/// The monitor task's body: keeps the session proven, watches the client's state, and
/// publishes ours.
pub(crate) async fn monitor(client: zk::Client, live: Arc<Liveness>) {
    let mut client_state = client.state_watcher();
    let mut ours = live.subscribe();
    let mut next_sync = live.keep_alive_due(Instant::now());
    let mut in_flight: Option<Sync> = None;
    let mut clocks = SuspendDetector::new();
    loop {
        let state = *ours.borrow_and_update();
        if state.is_terminal() {
            break;
        }
        if let Some(unseen) = clocks.check() {
            live.suspended(unseen);
            next_sync = Instant::now();
            continue;
        }
        let wakes = live.wakes(state, Instant::now());
        tokio::select! {
            biased;
            changed = client_state.changed() => match changed {
                zk::SessionState::Disconnected => live.disconnect("client reported disconnected"),
                zk::SessionState::SyncConnected => {
                    // Confirm at once: only a proof makes us connected again.
                    if in_flight.is_none() {
                        next_sync = Instant::now();
                    }
                }
                zk::SessionState::Expired => {
                    live.publish(SessionState::Expired, "client reported expired");
                }
                zk::SessionState::AuthFailed => {
                    live.publish(SessionState::Closed, "authentication failed");
                }
                zk::SessionState::Closed => {
                    live.publish(SessionState::Closed, "client closed");
                }
                // Read-only sessions are never asked for.
                zk::SessionState::ConnectedReadOnly => {}
            },
            _ = ours.changed() => {}
            (sent_at, result) = async { in_flight.as_mut().expect("guarded").await },
                if in_flight.is_some() =>
            {
                in_flight = None;
                let now = Instant::now();
                match result {
                    Ok(()) => {
                        live.record_proof(sent_at);
                        let fresh = !live.silent_at(now);
                        if client.state() != zk::SessionState::SyncConnected {
                            next_sync = live.keep_alive_due(now);
                        } else if fresh {
                            live.publish(SessionState::Connected, "sync answered");
                            next_sync = live.keep_alive_due(sent_at).max(now);
                        } else {
                            // An old request answered after a reconnect: confirm with a new one.
                            next_sync = now;
                        }
                    }
                    Err(SyncError::Client(zk::Error::SessionExpired)) => {
                        live.publish(SessionState::Expired, "sync: session expired");
                    }
                    Err(SyncError::Client(zk::Error::AuthFailed)) => {
                        live.publish(SessionState::Closed, "sync: authentication failed");
                    }
                    Err(e) => {
                        tracing::debug!(session = %live.session, error = ?e, "zookeeper keep-alive sync failed");
                        next_sync = live.keep_alive_due(now);
                    }
                }
            }
            _ = sleep_until(next_sync), if in_flight.is_none() => {
                in_flight = Some(keep_alive(client.clone(), live.timeout));
            }
            // Without a silence to watch for the branch is disabled (its placeholder instant is
            // never waited on).
            _ = sleep_until(wakes.silence.unwrap_or(wakes.check_clocks)), if wakes.silence.is_some() => {
                live.silence_check(Instant::now());
            }
            _ = sleep_until(wakes.check_clocks) => {}
        }
    }
    tracing::debug!(session = %live.session, "zookeeper session monitor ends");
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(6);
    const MARGIN: Duration = Duration::from_millis(500);

    fn live() -> (Liveness, Instant) {
        let t0 = Instant::now();
        (Liveness::new(SessionId(1), T, MARGIN, t0, t0), t0)
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn terminal_states_are_final() {
        let (l, _) = live();
        assert!(l.publish(SessionState::Expired, "test"));
        assert!(!l.publish(SessionState::Connected, "test"));
        assert!(!l.publish(SessionState::Closed, "test"));
        assert_eq!(l.current(), SessionState::Expired);
    }

    #[test]
    fn disconnected_keeps_its_first_last_contact() {
        let (l, t0) = live();
        l.disconnect("test");
        l.record_proof(t0 + ms(1000));
        l.record_proof(t0 + ms(2000));
        assert_eq!(l.last_contact(), t0 + ms(1000));
        l.disconnect("test");
        assert_eq!(l.current(), SessionState::Disconnected { last_contact: t0 });
    }

    #[test]
    fn a_proof_counts_only_once_a_newer_one_is_a_margin_younger() {
        let (l, t0) = live();
        l.record_proof(t0 + ms(300));
        // Nothing yet proves the leader heard of the session after t0.
        assert_eq!(l.last_contact(), t0);
        assert_eq!(l.last_proof(), t0 + ms(300));
        l.record_proof(t0 + ms(700));
        // 700 - 500 = 200: no proof at or before it but t0.
        assert_eq!(l.last_contact(), t0);
        l.record_proof(t0 + ms(800));
        // 800 - 500 = 300: the proof at 300 now counts.
        assert_eq!(l.last_contact(), t0 + ms(300));
        l.record_proof(t0 + ms(2000));
        assert_eq!(l.last_contact(), t0 + ms(800));
        assert_eq!(l.last_proof(), t0 + ms(2000));
    }

    #[test]
    fn proofs_out_of_order_and_old_ones() {
        let (l, t0) = live();
        l.record_proof(t0 + ms(900));
        l.record_proof(t0 + ms(100));
        assert_eq!(l.last_contact(), t0 + ms(100));
        l.record_proof(t0 + ms(50));
        assert_eq!(l.last_contact(), t0 + ms(100), "never moves back");
        l.record_proof(t0 + ms(1500));
        assert_eq!(l.last_contact(), t0 + ms(900));
    }

    #[test]
    fn many_pending_proofs_are_thinned_not_lost_at_the_ends() {
        let (l, t0) = live();
        for i in 1..=200u64 {
            l.record_proof(t0 + ms(i));
        }
        assert_eq!(l.proofs().pending.len(), MAX_PENDING_PROOFS);
        assert_eq!(l.last_contact(), t0);
        l.record_proof(t0 + ms(1000));
        // The oldest pending proof (1 ms) survived the thinning and now counts, or a later one.
        assert!(l.last_contact() >= t0 + ms(1));
        assert!(l.last_contact() <= t0 + ms(500));
    }

    #[test]
    fn a_proof_recorded_twice_is_kept_once() {
        let (l, t0) = live();
        for at in [100, 100, 200, 200, 100] {
            l.record_proof(t0 + ms(at));
        }
        assert_eq!(l.proofs().pending, [t0 + ms(100), t0 + ms(200)]);
    }

    #[test]
    fn a_suspend_moves_contact_back_and_disconnects() {
        let (l, t0) = live();
        l.record_proof(t0 + ms(2000));
        let before = l.last_contact();
        // The test's instants may be too close to the clock's origin to go back 10 s.
        l.suspended(ms(10));
        assert_eq!(l.last_contact(), before - ms(10));
        assert!(matches!(l.current(), SessionState::Disconnected { .. }));
    }

    #[test]
    fn a_keep_alive_is_due_one_period_after_the_last() {
        let (l, t0) = live();
        assert_eq!(l.period(), ms(300));
        assert_eq!(l.keep_alive_due(t0), t0 + ms(300));
        assert_eq!(l.keep_alive_due(t0 + ms(1000)), t0 + ms(1300));
    }

    #[test]
    fn the_monitor_wakes_no_earlier_than_its_timers_are_due() {
        let (l, t0) = live();
        l.record_proof(t0 + ms(1000));
        let now = t0 + ms(1500);
        let wakes = l.wakes(SessionState::Connected, now);
        // Silence is measured from the newest proof's send instant: 1 s + T/3.
        assert_eq!(wakes.silence, Some(t0 + ms(3000)));
        // The clocks are compared every period, never at once (a busy loop).
        assert_eq!(wakes.check_clocks, now + ms(300));
        assert!(wakes.silence.unwrap() > now && wakes.check_clocks > now);
        // A session reported disconnected, or ended, has no silence to watch for.
        let disconnected = SessionState::Disconnected { last_contact: t0 };
        for state in [disconnected, SessionState::Expired, SessionState::Closed] {
            let wakes = l.wakes(state, now);
            assert_eq!(wakes.silence, None, "{state:?}");
            assert_eq!(wakes.check_clocks, now + ms(300), "{state:?}");
        }
    }

    /// The gap a surviving mutant showed: the client still holds its connection, the server
    /// has stopped answering; the session must be reported `Disconnected` once no proof has
    /// come for a third of the session timeout, not when the client notices.
    #[test]
    fn a_connected_session_that_hears_nothing_is_disconnected_after_the_silence() {
        let (l, t0) = live();
        l.record_proof(t0 + ms(400));
        l.record_proof(t0 + ms(1000));
        let contact = l.last_contact();
        assert_eq!(contact, t0 + ms(400));
        // The monitor, connected, arms the silence timer at the newest proof plus T/3.
        let deadline = l
            .wakes(SessionState::Connected, t0 + ms(1100))
            .silence
            .expect("a connected session watches for silence");
        assert_eq!(deadline, t0 + ms(3000));
        // Just before it: still connected.
        assert!(!l.silent_at(deadline - ms(1)));
        assert!(!l.silence_check(deadline - ms(1)));
        assert_eq!(l.current(), SessionState::Connected);
        // At it: disconnected, with the last contact as it stood.
        assert!(l.silent_at(deadline));
        assert!(l.silence_check(deadline));
        assert_eq!(
            l.current(),
            SessionState::Disconnected {
                last_contact: contact
            }
        );
        // Now there is no silence left to watch for until a proof makes it connected again.
        assert_eq!(l.wakes(l.current(), deadline).silence, None);
    }

    #[test]
    fn a_proof_that_came_in_time_defers_the_silence() {
        let (l, t0) = live();
        let first = l.wakes(SessionState::Connected, t0).silence.unwrap();
        assert_eq!(first, t0 + ms(2000));
        // A proof arrives before the timer fires: the timer finds the session not silent.
        l.record_proof(t0 + ms(1500));
        assert!(!l.silence_check(first));
        assert_eq!(l.current(), SessionState::Connected);
        assert_eq!(
            l.wakes(SessionState::Connected, first).silence,
            Some(t0 + ms(3500))
        );
    }

    #[test]
    fn timing_fractions() {
        let (l, _) = live();
        // T/6 = 1 s; the margin asks for a sync every 250 ms, but T/20 = 300 ms is the floor.
        assert_eq!(l.period(), ms(300));
        let tighter = Liveness::new(SessionId(1), T, ms(1400), Instant::now(), Instant::now());
        assert_eq!(tighter.period(), ms(700));
        let short_margin = Liveness::new(SessionId(1), T, ms(10), Instant::now(), Instant::now());
        assert_eq!(short_margin.period(), T / 20);
        assert_eq!(l.silence(), ms(2000));
        assert_eq!(l.margin(), MARGIN);
        let long_margin = Liveness::new(SessionId(1), T, T, Instant::now(), Instant::now());
        assert_eq!(long_margin.period(), ms(1000));
    }
}
