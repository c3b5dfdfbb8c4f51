//! Session state and last contact: this backend's own, conservative record of when the server
//! last heard from this client, and the [`SessionState`] published from it.
//!
//! zookeeper-client reports `Disconnected` only after about 0.4x the session timeout without a
//! reply and `Expired` at about 1.75x, and does not expose when it last heard from the server. The
//! election steps a leader down at `last_contact + fraction x timeout`, so `last_contact` must
//! never be later than the truth. We therefore keep our own record:
//!
//! - a monitor task sends a cheap request (`exists /`) every `timeout / 6` and, when the reply
//!   comes, records the instant the request was **sent**: the server received it no earlier
//!   than that, so this is a lower bound on when the server last heard from us (the instant of the
//!   reply would be an upper bound, off by the round trip);
//! - every user request that gets a server reply records its send instant the same way;
//! - `Disconnected { last_contact }` is published as soon as the client reports `Disconnected`
//!   **or** no reply has come for `timeout / 3`, whichever is first;
//! - `Connected` again only on a reply sent less than `timeout / 3` ago while the client is
//!   connected (a reply to a request queued during the outage is contact, but an old one);
//! - `Expired` on the client's `Expired` or a request failing with `SessionExpired`; `Closed` on
//!   close, `AuthFailed` or the client's `Closed`. Terminal states never change again.
//!
//! The monitor task ends when the state becomes terminal or the session is dropped (it is
//! aborted then): no stray task outlives a session.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use election_core::{SessionId, SessionState};
use tokio::sync::watch;
use tokio::time::{sleep_until, Instant};
use zookeeper_client as zk;

/// Pings per session timeout.
const PINGS_PER_TIMEOUT: u32 = 6;
/// Silence, as a fraction (1/N) of the timeout, after which we report `Disconnected`.
const SILENCE_DIVISOR: u32 = 3;

/// The shared record: last contact and the published state.
#[derive(Debug)]
pub(crate) struct Liveness {
    session: SessionId,
    timeout: Duration,
    last_contact: Mutex<Instant>,
    state: watch::Sender<SessionState>,
}

impl Liveness {
    /// A record for a session just confirmed by a reply to a request sent at `contact`.
    pub(crate) fn new(session: SessionId, timeout: Duration, contact: Instant) -> Self {
        Self {
            session,
            timeout,
            last_contact: Mutex::new(contact),
            state: watch::Sender::new(SessionState::Connected),
        }
    }

    /// The silence after which the session counts as disconnected.
    pub(crate) fn silence(&self) -> Duration {
        self.timeout / SILENCE_DIVISOR
    }

    /// The ping period.
    pub(crate) fn period(&self) -> Duration {
        self.timeout / PINGS_PER_TIMEOUT
    }

    /// A new receiver of the published state.
    pub(crate) fn subscribe(&self) -> watch::Receiver<SessionState> {
        self.state.subscribe()
    }

    /// The published state now.
    pub(crate) fn current(&self) -> SessionState {
        *self.state.borrow()
    }

    /// The latest send instant of a request that got a server reply.
    pub(crate) fn last_contact(&self) -> Instant {
        *self.last_contact.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a server reply to a request sent at `sent_at`. Never moves last contact back.
    pub(crate) fn record_reply(&self, sent_at: Instant) {
        let mut last = self.last_contact.lock().unwrap_or_else(|e| e.into_inner());
        if sent_at > *last {
            *last = sent_at;
        }
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

type Ping = Pin<Box<dyn Future<Output = (Instant, Result<(), PingError>)> + Send>>;

#[derive(Debug)]
enum PingError {
    Client(zk::Error),
    NoReply,
}

fn ping(client: zk::Client, bound: Duration) -> Ping {
    Box::pin(async move {
        let sent_at = Instant::now();
        // The request is sent when `check_stat` is called, so `sent_at` precedes it.
        let reply = tokio::time::timeout(bound, client.check_stat("/")).await;
        let result = match reply {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(PingError::Client(e)),
            Err(_) => Err(PingError::NoReply),
        };
        (sent_at, result)
    })
}

/// The monitor task's body: pings, watches the client's state, and publishes ours.
pub(crate) async fn monitor(client: zk::Client, live: Arc<Liveness>) {
    let mut client_state = client.state_watcher();
    let mut ours = live.subscribe();
    let mut next_ping = Instant::now() + live.period();
    let mut in_flight: Option<Ping> = None;
    loop {
        let state = *ours.borrow_and_update();
        if state.is_terminal() {
            break;
        }
        let connected = state == SessionState::Connected;
        let silence_deadline = live.last_contact() + live.silence();
        tokio::select! {
            biased;
            changed = client_state.changed() => match changed {
                zk::SessionState::Disconnected => live.disconnect("client reported disconnected"),
                zk::SessionState::SyncConnected => {
                    // Confirm at once: only a reply makes us connected again.
                    if in_flight.is_none() {
                        next_ping = Instant::now();
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
                        live.record_reply(sent_at);
                        let fresh = now.saturating_duration_since(live.last_contact()) < live.silence();
                        if client.state() != zk::SessionState::SyncConnected {
                            next_ping = now + live.period();
                        } else if fresh {
                            live.publish(SessionState::Connected, "ping answered");
                            next_ping = (sent_at + live.period()).max(now);
                        } else {
                            // An old request answered after a reconnect: confirm with a new one.
                            next_ping = now;
                        }
                    }
                    Err(PingError::Client(zk::Error::SessionExpired)) => {
                        live.publish(SessionState::Expired, "ping: session expired");
                    }
                    Err(PingError::Client(zk::Error::AuthFailed)) => {
                        live.publish(SessionState::Closed, "ping: authentication failed");
                    }
                    Err(e) => {
                        tracing::debug!(session = %live.session, error = ?e, "zookeeper ping failed");
                        next_ping = now + live.period();
                    }
                }
            }
            _ = sleep_until(next_ping), if in_flight.is_none() => {
                in_flight = Some(ping(client.clone(), live.timeout));
            }
            _ = sleep_until(silence_deadline), if connected => {
                if Instant::now() >= live.last_contact() + live.silence() {
                    live.disconnect("no reply within a third of the session timeout");
                }
            }
        }
    }
    tracing::debug!(session = %live.session, "zookeeper session monitor ends");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live() -> Liveness {
        Liveness::new(SessionId(1), Duration::from_secs(6), Instant::now())
    }

    #[test]
    fn terminal_states_are_final() {
        let l = live();
        assert!(l.publish(SessionState::Expired, "test"));
        assert!(!l.publish(SessionState::Connected, "test"));
        assert!(!l.publish(SessionState::Closed, "test"));
        assert_eq!(l.current(), SessionState::Expired);
    }

    #[test]
    fn disconnected_keeps_its_first_last_contact() {
        let l = live();
        let first = l.last_contact();
        l.disconnect("test");
        l.record_reply(first + Duration::from_secs(1));
        l.disconnect("test");
        assert_eq!(
            l.current(),
            SessionState::Disconnected {
                last_contact: first
            }
        );
    }

    #[test]
    fn last_contact_never_moves_back() {
        let l = live();
        let t = l.last_contact();
        l.record_reply(t + Duration::from_millis(5));
        l.record_reply(t);
        assert_eq!(l.last_contact(), t + Duration::from_millis(5));
    }

    #[test]
    fn timing_fractions() {
        let l = live();
        assert_eq!(l.period(), Duration::from_secs(1));
        assert_eq!(l.silence(), Duration::from_secs(2));
    }
}
