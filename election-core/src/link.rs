//! What a candidate's handle and its driver share, in one allocation per candidate: the
//! candidate's events ([`EventsOutlet`]), the commands its handle (and its client, on close)
//! sends to the driver, and the driver's state ([`StateCell`], which the handle's
//! [`StateWatch`](crate::StateWatch)es read and the client's close waits on; issue 12).
//!
//! The commands are a plain queue under a lock, not a tokio channel: a command is rare (a
//! resignation, a stop, a close), and an unbounded tokio channel costs about 1 KiB from the
//! start (its shared state and a first block of 32 slots), a cost every election of a process
//! running thousands of them would pay. The queue behaves as that channel did: commands come
//! out in the order sent; the driver hears that every sender is gone (`None`) once the queue
//! is empty; a send fails once the driver is gone, and commands still queued then are dropped
//! (a resignation waiting on one hears `Stopped`).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use tokio::sync::oneshot;

use crate::events::EventsOutlet;
use crate::state::ElectionState;
use crate::state_watch::StateCell;

/// A user's command to a running candidate.
pub(crate) enum Command {
    Resign {
        rejoin: bool,
        done: oneshot::Sender<()>,
    },
    Stop,
    /// The client is closing: withdraw as on `Stop`, with its own reason.
    Close,
}

/// The shared part of one candidate.
pub(crate) struct Link {
    /// The driver's events: the first subscriber gets every one since the start.
    pub events: EventsOutlet,
    /// The driver's state; final once the driver has ended (its [`CommandReceiver`] dropped).
    pub state: StateCell,
    commands: Mutex<Mailbox>,
}

struct Mailbox {
    /// The commands queued, oldest first. Boxed, and only while any is queued: 8 bytes, not
    /// 32, in every candidate's link, for commands most candidates get once in their life
    /// (issue 12).
    #[allow(clippy::box_collection)]
    queue: Option<Box<VecDeque<Command>>>,
    /// Live [`CommandSender`]s (a handle's and its client's, each 8 bytes: never near
    /// `u32::MAX`). A `u32` beside `closed`: 8 bytes less in every candidate's link (issue 12).
    senders: u32,
    /// The [`CommandReceiver`] is gone: sends fail.
    closed: bool,
    /// The driver's task, to wake on a command or when the last sender goes.
    waker: Option<Waker>,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("state", &self.state.get())
            .finish_non_exhaustive()
    }
}

impl Link {
    /// A link for a driver whose state starts as `state`, with its driver's end and a first
    /// sender.
    pub(crate) fn pair(state: ElectionState) -> (CommandSender, CommandReceiver) {
        let link = Arc::new(Self {
            events: EventsOutlet::new(),
            state: StateCell::new(state),
            commands: Mutex::new(Mailbox {
                queue: None,
                senders: 1,
                closed: false,
                waker: None,
            }),
        });
        (
            CommandSender { link: link.clone() },
            CommandReceiver { link },
        )
    }

    fn mailbox(&self) -> MutexGuard<'_, Mailbox> {
        self.commands.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Sends commands to the driver (and reaches the candidate's events). Clones count as
/// senders: the driver hears when the last one is gone.
pub(crate) struct CommandSender {
    link: Arc<Link>,
}

impl CommandSender {
    /// Queues `command`; gives it back when the driver is gone.
    pub(crate) fn send(&self, command: Command) -> Result<(), Command> {
        let waker = {
            let mut mailbox = self.link.mailbox();
            if mailbox.closed {
                return Err(command);
            }
            mailbox
                .queue
                .get_or_insert_with(Box::default)
                .push_back(command);
            mailbox.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }

    /// The shared part: the events and the state.
    pub(crate) fn link(&self) -> &Link {
        &self.link
    }

    /// The shared part, to keep.
    pub(crate) fn shared(&self) -> Arc<Link> {
        self.link.clone()
    }
}

impl Clone for CommandSender {
    fn clone(&self) -> Self {
        self.link.mailbox().senders += 1;
        Self {
            link: self.link.clone(),
        }
    }
}

impl Drop for CommandSender {
    fn drop(&mut self) {
        let waker = {
            let mut mailbox = self.link.mailbox();
            mailbox.senders -= 1;
            if mailbox.senders > 0 {
                return;
            }
            mailbox.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// The driver's end: receives the commands, publishes the events.
pub(crate) struct CommandReceiver {
    link: Arc<Link>,
}

impl CommandReceiver {
    /// The next command; `None` once every sender is gone and nothing is queued.
    pub(crate) fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<Command>> {
        let mut mailbox = self.link.mailbox();
        if let Some(queue) = &mut mailbox.queue {
            let command = queue.pop_front();
            if queue.is_empty() {
                mailbox.queue = None;
            }
            if let Some(command) = command {
                return Poll::Ready(Some(command));
            }
        }
        if mailbox.senders == 0 {
            return Poll::Ready(None);
        }
        match &mut mailbox.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// The shared part: the events and the state.
    pub(crate) fn link(&self) -> &Link {
        &self.link
    }

    /// The shared part, to keep (a term's owner).
    pub(crate) fn shared(&self) -> Arc<Link> {
        self.link.clone()
    }
}

/// The driver's end is dropped when the driver ends, however it ends (returned, failed, or its
/// task aborted): its state is final then, which is what
/// [`Candidate::stop`](crate::Candidate::stop) and the client's close wait for.
impl Drop for CommandReceiver {
    fn drop(&mut self) {
        // Dropped outside the lock: a resignation's sender wakes its waiter.
        let queued = {
            let mut mailbox = self.link.mailbox();
            mailbox.closed = true;
            mailbox.waker = None;
            mailbox.queue.take()
        };
        drop(queued);
        self.link.state.end();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;

    #[tokio::test]
    async fn commands_come_in_order_then_none_when_every_sender_is_gone() {
        let (tx, rx) = Link::pair(ElectionState::Joining);
        let tx2 = tx.clone();
        assert!(tx.send(Command::Stop).is_ok());
        assert!(tx2.send(Command::Close).is_ok());
        drop(tx);
        assert!(matches!(
            poll_fn(|cx| rx.poll_recv(cx)).await,
            Some(Command::Stop)
        ));
        // One sender left, nothing queued after the next: it waits, then hears the end.
        assert!(matches!(
            poll_fn(|cx| rx.poll_recv(cx)).await,
            Some(Command::Close)
        ));
        // Issue 12: nothing queued, no queue kept.
        assert!(rx.link.mailbox().queue.is_none());
        let waiting = tokio::spawn(async move { poll_fn(|cx| rx.poll_recv(cx)).await.is_none() });
        tokio::task::yield_now().await;
        drop(tx2);
        assert!(waiting.await.unwrap());
    }

    #[tokio::test]
    async fn a_send_wakes_the_driver_and_fails_once_it_is_gone() {
        let (tx, rx) = Link::pair(ElectionState::Joining);
        let waiting = tokio::spawn(async move {
            let got = poll_fn(|cx| rx.poll_recv(cx)).await;
            (matches!(got, Some(Command::Stop)), rx)
        });
        tokio::task::yield_now().await;
        assert!(tx.send(Command::Stop).is_ok());
        let (got, rx) = waiting.await.unwrap();
        assert!(got);
        let (done, wait) = oneshot::channel();
        assert!(tx.send(Command::Resign { rejoin: true, done }).is_ok());
        // The driver goes with a resignation still queued: its waiter hears so.
        drop(rx);
        assert!(wait.await.is_err());
        assert!(tx.send(Command::Stop).is_err());
    }
}
