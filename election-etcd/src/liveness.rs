//! Session state and last contact: this backend's own record of when the etcd **leader** last
//! renewed this session's lease, and the [`SessionState`] published from it.
//!
//! # What counts as contact
//! A lease is expired by the raft leader, `TTL` after the last keep-alive it received (a leader
//! change only pushes the deadline later). A keep-alive is answered by the leader itself (a
//! follower forwards it and waits), so an answered keep-alive **sent** at `s` proves the lease
//! runs until at least `s + TTL`: last contact is the send instant of the latest answered
//! keep-alive. Nothing else counts: a write with the lease attached does not renew it (etcd
//! renews a lease on keep-alives only), and reads, even linearizable ones, say nothing about the
//! lease.
//!
//! Keep-alives go over one gRPC stream and etcd answers them in order, so the `n`-th answer on a
//! stream belongs to the `n`-th request sent on it: the send instants wait in a queue. A stream
//! that fails is dropped with its queue and a new one opened, so an answer can never be paired
//! with a later send than its own.
//!
//! # Published state
//! - `Disconnected { last_contact }` after [`silence`](Liveness::silence) (a third of the TTL)
//!   without a new proof;
//! - `Connected` again on a proof sent less than `silence` ago (an answer to a request queued
//!   during an outage is an old proof);
//! - `Expired` when a keep-alive is answered with TTL 0 (the lease is gone: expired, or revoked by
//!   someone else) or a write fails with "lease not found"; `Closed` on close or drop. Terminal
//!   states never change again.
//!
//! # A suspended host
//! The monotonic clock stops while the host is suspended, but etcd's does not: on resume, last
//! contact would look fresher than it is. The keep-alive task compares the wall clock with the
//! monotonic clock at every silence check (every TTL/12); time the wall clock saw and the
//! monotonic clock did not is taken off last contact, the keep-alive stream is reopened (its
//! pending send instants are dropped with it), and the session is reported `Disconnected`, so
//! the election re-verifies before it goes on. A forward step of the wall clock is treated the
//! same way: conservative, never unsafe.

use std::sync::Mutex;
use std::time::Duration;

use election_core::{SessionId, SessionState};
use tokio::sync::watch;
use tokio::time::Instant;

/// Keep-alives per TTL.
pub(crate) const KEEP_ALIVES_PER_TTL: u32 = 6;
/// Silence, as a fraction (1/N) of the TTL, after which we report `Disconnected`.
const SILENCE_DIVISOR: u32 = 3;

/// The record of contact of one session, and its published state.
#[derive(Debug)]
pub(crate) struct Liveness {
    id: SessionId,
    timeout: Duration,
    contact: Mutex<Instant>,
    state: watch::Sender<SessionState>,
}

impl Liveness {
    /// A session whose lease was granted after `granted_after`.
    pub(crate) fn new(id: SessionId, timeout: Duration, granted_after: Instant) -> Self {
        Self {
            id,
            timeout,
            contact: Mutex::new(granted_after),
            state: watch::Sender::new(SessionState::Connected),
        }
    }

    /// How often a keep-alive is sent.
    pub(crate) fn period(&self) -> Duration {
        self.timeout / KEEP_ALIVES_PER_TTL
    }

    /// How long without a proof before the session is reported `Disconnected`.
    pub(crate) fn silence(&self) -> Duration {
        self.timeout / SILENCE_DIVISOR
    }

    /// Last contact: the send instant of the latest answered keep-alive.
    pub(crate) fn last_contact(&self) -> Instant {
        *self.contact.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a keep-alive sent at `sent` and answered with a live lease.
    pub(crate) fn record_proof(&self, sent: Instant) {
        let contact = {
            let mut c = self.contact.lock().unwrap_or_else(|e| e.into_inner());
            if sent > *c {
                *c = sent;
            }
            *c
        };
        let fresh = contact.elapsed() < self.silence();
        self.state.send_if_modified(|s| match *s {
            SessionState::Connected if !fresh => {
                *s = SessionState::Disconnected {
                    last_contact: contact,
                };
                true
            }
            SessionState::Disconnected { .. } if fresh => {
                tracing::info!(session = %self.id, "etcd session connected again");
                *s = SessionState::Connected;
                true
            }
            SessionState::Disconnected { last_contact } if last_contact != contact => {
                *s = SessionState::Disconnected {
                    last_contact: contact,
                };
                true
            }
            _ => false,
        });
    }

    /// Reports `Disconnected` once the silence has lasted long enough.
    pub(crate) fn check_silence(&self) {
        let contact = self.last_contact();
        if contact.elapsed() < self.silence() {
            return;
        }
        self.state.send_if_modified(|s| {
            if *s == SessionState::Connected {
                tracing::warn!(
                    session = %self.id,
                    silent_ms = contact.elapsed().as_millis() as u64,
                    "etcd session disconnected: no keep-alive answered"
                );
                *s = SessionState::Disconnected {
                    last_contact: contact,
                };
                true
            } else {
                false
            }
        });
    }

    /// Publishes a terminal state (or `Disconnected`); a terminal state is never replaced.
    pub(crate) fn publish(&self, state: SessionState, why: &str) {
        self.state.send_if_modified(|s| {
            if s.is_terminal() || *s == state {
                return false;
            }
            tracing::info!(session = %self.id, ?state, why, "etcd session state");
            *s = state;
            true
        });
    }

    /// Takes `unseen` (time the host was suspended) off last contact and reports the session
    /// disconnected.
    pub(crate) fn suspended(&self, unseen: Duration) {
        let contact = {
            let mut c = self.contact.lock().unwrap_or_else(|e| e.into_inner());
            *c = c.checked_sub(unseen).unwrap_or(*c);
            *c
        };
        tracing::warn!(
            session = %self.id,
            unseen_ms = unseen.as_millis() as u64,
            "the wall clock moved on while the monotonic clock stood still (host suspended?): \
             last contact moved back"
        );
        self.state.send_if_modified(|s| {
            if s.is_terminal() {
                return false;
            }
            *s = SessionState::Disconnected {
                last_contact: contact,
            };
            true
        });
    }

    /// The current state.
    pub(crate) fn current(&self) -> SessionState {
        *self.state.borrow()
    }

    /// A receiver of the state.
    pub(crate) fn subscribe(&self) -> watch::Receiver<SessionState> {
        self.state.subscribe()
    }
}

/// Resolves when the session behind `state` is over.
pub(crate) async fn ended(state: &mut watch::Receiver<SessionState>) {
    // An error means the sender is gone: the session was dropped.
    let _ = state.wait_for(SessionState::is_terminal).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_suspend_moves_contact_back_and_disconnects() {
        let start = Instant::now();
        tokio::time::advance(Duration::from_secs(5)).await;
        let live = Liveness::new(SessionId(1), Duration::from_secs(3), Instant::now());
        let contact = live.last_contact();
        live.suspended(Duration::from_secs(2));
        assert_eq!(live.last_contact(), contact - Duration::from_secs(2));
        assert_eq!(
            live.current(),
            SessionState::Disconnected {
                last_contact: contact - Duration::from_secs(2)
            }
        );
        assert!(live.last_contact() > start);
    }

    #[tokio::test(start_paused = true)]
    async fn silence_then_fresh_proof_then_terminal() {
        let start = Instant::now();
        let live = Liveness::new(SessionId(1), Duration::from_secs(3), start);
        assert_eq!(live.period(), Duration::from_millis(500));
        live.check_silence();
        assert_eq!(live.current(), SessionState::Connected);
        tokio::time::advance(Duration::from_millis(1100)).await;
        live.check_silence();
        assert_eq!(
            live.current(),
            SessionState::Disconnected {
                last_contact: start
            }
        );
        // An old answer moves last contact but does not reconnect.
        live.record_proof(start + Duration::from_millis(50));
        assert_eq!(
            live.current(),
            SessionState::Disconnected {
                last_contact: start + Duration::from_millis(50)
            }
        );
        live.record_proof(Instant::now());
        assert_eq!(live.current(), SessionState::Connected);
        live.publish(SessionState::Expired, "test");
        live.record_proof(Instant::now());
        live.publish(SessionState::Closed, "test");
        assert_eq!(live.current(), SessionState::Expired);
    }
}
