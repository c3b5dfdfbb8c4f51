//! A candidate's state as its driver publishes it ([`StateCell`], kept in the link the handle
//! shares with the driver) and the public view of it that [`Candidate::state`] hands out
//! ([`StateWatch`]).
//!
//! Not a tokio `watch` channel: that channel's shared part is about 400 bytes (it keeps eight
//! `Notify`s for its receivers), and every candidate would pay it whether or not anybody
//! watches its state: a fifth of what a candidate costs in a process running thousands of
//! elections (issue 12). The cell is the state, a version and one `Notify`, in the allocation
//! the candidate has anyway; a [`StateWatch`] is a reference to it and the version it saw last.
//!
//! [`Candidate::state`]: crate::Candidate::state

use std::fmt;
use std::ops::Deref;
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use crate::error::ElectionError;
use crate::link::Link;
use crate::state::ElectionState;

/// The state a driver publishes, and who waits for its changes.
pub(crate) struct StateCell {
    published: Mutex<Published>,
    /// Notified on every change, and when the driver ends.
    changed: Notify,
}

/// What is behind a [`StateRef`]: the state, with how it came to be.
struct Published {
    value: ElectionState,
    /// Raised by every change: a [`StateWatch`] compares it with the one it saw last.
    version: u64,
    /// The driver has ended: the value is final, and no change will come.
    ended: bool,
}

impl StateCell {
    pub(crate) fn new(value: ElectionState) -> Self {
        Self {
            published: Mutex::new(Published {
                value,
                version: 0,
                ended: false,
            }),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Published> {
        self.published.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The state now.
    pub(crate) fn get(&self) -> ElectionState {
        self.lock().value.clone()
    }

    /// Reads the state now with `f`, without cloning it.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&ElectionState) -> R) -> R {
        f(&self.lock().value)
    }

    /// Publishes a new state and wakes whoever waits for a change.
    pub(crate) fn publish(&self, value: ElectionState) {
        {
            let mut published = self.lock();
            published.value = value;
            published.version += 1;
        }
        self.changed.notify_waiters();
    }

    /// The driver has ended: the state is final. Wakes whoever waits.
    pub(crate) fn end(&self) {
        self.lock().ended = true;
        self.changed.notify_waiters();
    }

    /// Waits until `ready` says yes to the published state (checked at once, then after each
    /// change), and returns the state as it was then, still locked.
    async fn wait_until(
        &self,
        mut ready: impl FnMut(&Published) -> bool,
    ) -> MutexGuard<'_, Published> {
        loop {
            // Registered before the check: a change between the check and the await is not
            // missed.
            let mut notified = pin!(self.changed.notified());
            notified.as_mut().enable();
            {
                let published = self.lock();
                if ready(&published) {
                    return published;
                }
            }
            notified.await;
        }
    }

    /// Waits until the driver has ended.
    pub(crate) async fn ended(&self) {
        drop(self.wait_until(|p| p.ended).await);
    }
}

/// A candidate's state, and a way to wait for its changes: what [`Candidate::state`] returns.
///
/// Like a tokio `watch` receiver: [`borrow`](Self::borrow) reads the state now,
/// [`changed`](Self::changed) waits for the next change, [`wait_for`](Self::wait_for) for a state
/// that satisfies a condition. Each `StateWatch` remembers the last version it saw (marked by
/// `changed`, `wait_for` and [`borrow_and_update`](Self::borrow_and_update)); a new one has seen
/// the state of the moment it was made. Once the candidate's driver has ended (the candidate
/// stopped), its state is final and the waits fail with [`ElectionError::Stopped`].
///
/// A [`StateRef`] holds a lock the driver takes to publish, as a tokio `watch::Ref` does: drop
/// it before awaiting anything, and before reading the same candidate's state again (the lock
/// is not re-entrant). A [`wait_for`](Self::wait_for) condition runs under that lock too.
///
/// ```
/// # use std::time::Duration;
/// # use election_core::{Candidate, Client, ElectionState};
/// # use election_mem::MemCluster;
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let cluster = MemCluster::new();
/// # let client = Client::connect(cluster.backend(), Duration::from_secs(10)).await?;
/// let candidate = client.join(Candidate::builder("/demo", "a").build()?).await?;
/// let mut state = candidate.state();
/// let leading = state.wait_for(ElectionState::is_leader).await?;
/// assert!(leading.token().is_some());
/// drop(leading);
/// candidate.stop().await;
/// // Stopped: the state is final, and once it is seen, waiting for a change fails.
/// assert!(state.borrow_and_update().is_stopped());
/// assert!(state.changed().await.is_err());
/// # Ok(())
/// # }
/// ```
///
/// [`Candidate::state`]: crate::Candidate::state
pub struct StateWatch {
    link: Arc<Link>,
    /// The version seen last.
    seen: u64,
}

impl StateWatch {
    pub(crate) fn new(link: Arc<Link>) -> Self {
        let seen = link.state.lock().version;
        Self { link, seen }
    }

    /// The state now, without marking it seen.
    pub fn borrow(&self) -> StateRef<'_> {
        StateRef(self.link.state.lock())
    }

    /// The state now, marked seen: [`changed`](Self::changed) then waits for the next one.
    pub fn borrow_and_update(&mut self) -> StateRef<'_> {
        let published = self.link.state.lock();
        self.seen = published.version;
        StateRef(published)
    }

    /// Whether the state changed since this watch saw it last. Fails with
    /// [`ElectionError::Stopped`] once the driver has ended and every change was seen.
    pub fn has_changed(&self) -> Result<bool, ElectionError> {
        let published = self.link.state.lock();
        if published.version != self.seen {
            Ok(true)
        } else if published.ended {
            Err(ElectionError::Stopped)
        } else {
            Ok(false)
        }
    }

    /// Waits for a state this watch has not seen, and marks it seen. Returns at once when the
    /// state changed since it was seen last; fails with [`ElectionError::Stopped`] once the
    /// driver has ended and every change was seen.
    pub async fn changed(&mut self) -> Result<(), ElectionError> {
        let seen = self.seen;
        let published = self
            .link
            .state
            .wait_until(|p| p.version != seen || p.ended)
            .await;
        if published.version == seen {
            return Err(ElectionError::Stopped);
        }
        self.seen = published.version;
        Ok(())
    }

    /// Waits until the state satisfies `condition` (checked at once, then on each change), and
    /// returns it, marked seen. Fails with [`ElectionError::Stopped`] when the driver ends first
    /// (its final state checked too).
    ///
    /// `condition` runs with the state locked: it must not read this candidate's state itself
    /// (through its [`Candidate`](crate::Candidate) or another watch).
    pub async fn wait_for(
        &mut self,
        mut condition: impl FnMut(&ElectionState) -> bool,
    ) -> Result<StateRef<'_>, ElectionError> {
        let mut met = false;
        let published = self
            .link
            .state
            .wait_until(|p| {
                met = condition(&p.value);
                met || p.ended
            })
            .await;
        self.seen = published.version;
        if met {
            Ok(StateRef(published))
        } else {
            Err(ElectionError::Stopped)
        }
    }
}

impl Clone for StateWatch {
    fn clone(&self) -> Self {
        Self {
            link: self.link.clone(),
            seen: self.seen,
        }
    }
}

impl fmt::Debug for StateWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateWatch")
            .field("state", &*self.borrow())
            .field("seen", &self.seen)
            .finish()
    }
}

/// The state as a [`StateWatch`] read it: derefs to [`ElectionState`]. It holds the lock the
/// driver takes to publish a change, so keep it briefly: drop it before awaiting anything, and
/// before reading the same candidate's state again.
pub struct StateRef<'a>(MutexGuard<'a, Published>);

impl Deref for StateRef<'_> {
    type Target = ElectionState;

    fn deref(&self) -> &ElectionState {
        &self.0.value
    }
}

impl fmt::Debug for StateRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0.value, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::FencingToken;
    use crate::state::{Contact, StopReason};

    fn leader(token: u64) -> ElectionState {
        ElectionState::Leader {
            token: FencingToken(token),
            contact: Contact::Confirmed,
        }
    }

    #[tokio::test]
    async fn a_watch_sees_each_change_once_and_fails_once_the_driver_ended() {
        let (tx, rx) = Link::pair(ElectionState::Joining);
        let link = tx.shared();
        let mut a = StateWatch::new(link.clone());
        assert!(!a.has_changed().unwrap());
        link.state.publish(ElectionState::Suspended);
        let mut b = a.clone();
        assert!(a.has_changed().unwrap());
        a.changed().await.unwrap();
        assert_eq!(*a.borrow(), ElectionState::Suspended);
        assert!(!a.has_changed().unwrap());
        // A clone keeps what its original had seen.
        assert!(b.has_changed().unwrap());
        // A new watch has seen the state of its making.
        let mut c = StateWatch::new(link.clone());
        assert!(!c.has_changed().unwrap());
        // The last change, then the end: the change first, then the failure.
        link.state
            .publish(ElectionState::Stopped(StopReason::Stopped));
        drop(rx);
        c.changed().await.unwrap();
        assert!(c.borrow().is_stopped());
        assert!(matches!(c.changed().await, Err(ElectionError::Stopped)));
        assert!(matches!(c.has_changed(), Err(ElectionError::Stopped)));
        b.borrow_and_update();
        assert!(b.changed().await.is_err());
        drop(tx);
    }

    #[tokio::test]
    async fn a_waiter_is_woken_by_a_change_from_another_task() {
        let (tx, rx) = Link::pair(ElectionState::Joining);
        let link = tx.shared();
        let mut state = StateWatch::new(link.clone());
        let waiting = tokio::spawn(async move {
            let token = state
                .wait_for(ElectionState::is_leader)
                .await
                .map(|s| s.token());
            token
        });
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
        link.state.publish(ElectionState::Suspended);
        tokio::task::yield_now().await;
        link.state.publish(leader(7));
        assert_eq!(waiting.await.unwrap().unwrap(), Some(FencingToken(7)));
        // A condition never met fails when the driver ends, its final state checked first.
        let mut state = StateWatch::new(link.clone());
        let waiting = tokio::spawn(async move {
            state
                .wait_for(|s| matches!(s, ElectionState::Follower { .. }))
                .await
                .is_err()
        });
        tokio::task::yield_now().await;
        drop(rx);
        assert!(waiting.await.unwrap());
        assert!(StateWatch::new(link)
            .wait_for(ElectionState::is_leader)
            .await
            .is_ok());
        drop(tx);
    }

    #[test]
    fn a_watch_is_two_words() {
        assert_eq!(std::mem::size_of::<StateWatch>(), 16);
    }
}
