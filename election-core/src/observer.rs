//! An observer: follows who leads an election without running in it. It wakes on every change
//! of the queue (it is not a candidate, so the no-herd rule does not bind it).

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::sleep;
use tracing::{debug, warn};

use crate::backend::FencingToken;
use crate::error::{ElectionError, ErrorKind};
use crate::path::ElectionPath;
use crate::session::Session;
use crate::state::{LeaderInfo, LeaderView};

/// Follows the leader of one election. Made by [`Client::observe`](crate::Client::observe); stops when dropped.
///
/// Its view starts [`LeaderView::Unknown`] and becomes [`LeaderView::Nobody`] or
/// [`LeaderView::Leader`] with its first listing: "not known yet" is never mistaken for
/// "nobody leads".
///
/// ```
/// use std::time::Duration;
/// use election_core::{Candidate, Client, ElectionPath};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let cluster = election_mem::MemCluster::new();
/// let a = Candidate::builder("/svc", "a").join(cluster.backend()).await?;
/// let client = Client::connect(cluster.backend(), Duration::from_secs(10)).await?;
/// let observer = client.observe(&ElectionPath::new("/svc")?);
/// // Like every tokio future, bounded by the caller when it must be:
/// let leader = tokio::time::timeout(Duration::from_secs(5), observer.wait_for_leader()).await??;
/// assert_eq!(leader.id, "a");
/// a.stop().await;
/// # Ok(()) }
/// ```
#[must_use = "an observer stops following when dropped"]
pub struct Observer {
    path: ElectionPath,
    session: Session,
    leader: watch::Receiver<LeaderView>,
    task: JoinHandle<()>,
}

impl Observer {
    pub(crate) fn spawn(session: Session, path: ElectionPath) -> Self {
        let (tx, leader) = watch::channel(LeaderView::Unknown);
        let closing = session.closing();
        let owner = session.clone();
        let watched = path.clone();
        // A closing client stops its observers first: the follower is dropped, nothing of it
        // can reopen the session, and the view goes back to Unknown.
        let task = tokio::spawn(async move {
            tokio::select! {
                biased;
                () = closing.cancelled() => {}
                () = follow(owner, watched, &tx) => {}
            }
            tx.send_replace(LeaderView::Unknown);
        });
        Self {
            path,
            session,
            leader,
            task,
        }
    }

    /// `true` once the observer follows no more: its client was closed.
    pub fn is_stopped(&self) -> bool {
        self.session.is_closed()
    }

    /// The election path.
    pub fn path(&self) -> &ElectionPath {
        &self.path
    }

    /// The leader as a watch channel: [`LeaderView::Unknown`] until the first listing, then
    /// [`LeaderView::Nobody`] or [`LeaderView::Leader`]; each change of leader is a change of
    /// this channel.
    pub fn leader(&self) -> watch::Receiver<LeaderView> {
        self.leader.clone()
    }

    /// The view now.
    pub fn current(&self) -> LeaderView {
        self.leader.borrow().clone()
    }

    /// Waits until someone leads (at once if someone does), and returns the leader.
    ///
    /// No timeout of its own: wrap it in `tokio::time::timeout` to bound it. Fails with
    /// [`ElectionError::ClientClosed`] if the client is closed first.
    pub async fn wait_for_leader(&self) -> Result<LeaderInfo, ElectionError> {
        self.next_leader(None).await
    }

    /// Waits until someone other than the leader with token `not` leads (or anyone, with
    /// `None`), and returns the new leader.
    ///
    /// No timeout of its own: wrap it in `tokio::time::timeout` to bound it. Fails with
    /// [`ElectionError::ClientClosed`] if the client is closed first.
    pub async fn next_leader(
        &self,
        not: Option<FencingToken>,
    ) -> Result<LeaderInfo, ElectionError> {
        let mut rx = self.leader.clone();
        loop {
            if self.session.is_closed() {
                return Err(ElectionError::ClientClosed);
            }
            if let LeaderView::Leader(l) = &*rx.borrow_and_update() {
                if Some(l.token) != not {
                    return Ok(l.clone());
                }
            }
            if self.session.is_closed() || rx.changed().await.is_err() {
                return Err(if self.session.is_closed() {
                    ElectionError::ClientClosed
                } else {
                    ElectionError::Stopped
                });
            }
        }
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observer")
            .field("path", &self.path)
            .field("leader", &*self.leader.borrow())
            .finish()
    }
}

async fn follow(client: Session, path: ElectionPath, tx: &watch::Sender<LeaderView>) {
    let mut backoff = Duration::from_millis(10);
    // The head entry the published leader was read from: re-read only when the head changes.
    let mut head_name: Option<String> = None;
    loop {
        let session = client.current();
        let (listing, changed) = match session.list_and_watch(&path).await {
            Ok(x) => x,
            Err(e) => {
                if e.kind() == ErrorKind::SessionGone {
                    if let Err(e) = client.renew(session.id()).await {
                        if matches!(e, ElectionError::ClientClosed) {
                            return;
                        }
                        warn!(path = %path, error = %e, "observer could not open a new session");
                    }
                } else {
                    debug!(path = %path, error = %e, "observer listing failed; retrying");
                }
                // Jittered: observers that failed together (an ensemble failover) spread out.
                sleep(client.jittered(backoff)).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        let queue = crate::foreign::queue(&listing, None);
        let view = match queue.first().copied() {
            None => LeaderView::Nobody,
            // A contender of another implementation leads (a migration under way): the
            // listing has its data.
            Some(crate::foreign::Slot::Foreign(c, kind)) => {
                head_name = None;
                LeaderView::Leader(crate::foreign::leader_of(c, kind))
            }
            Some(crate::foreign::Slot::Ours(head))
                if head_name.as_deref() == Some(head.name.as_str()) =>
            {
                tx.borrow().clone()
            }
            Some(crate::foreign::Slot::Ours(head)) => match session.read(&path, &head.name).await {
                Ok(Some(info)) => match crate::record::decode_listed(&info, head.owner) {
                    Ok(r) => {
                        head_name = Some(head.name.clone());
                        LeaderView::Leader(LeaderInfo {
                            id: r.id,
                            implementation: crate::Implementation::Election,
                            payload: r.payload.into(),
                            token: info.token,
                            session: info.owner,
                        })
                    }
                    Err(e) => {
                        // Someone leads, but not who: not "nobody". Re-read on the next change.
                        warn!(path = %path, entry = %head.name, error = %e, "the head's record cannot be decoded; leader unknown");
                        head_name = None;
                        LeaderView::Unknown
                    }
                },
                // Gone already: its notification has fired; list again.
                Ok(None) => continue,
                // A record we may not read (or cannot) is an unknown leader, until the head
                // changes: not a reason to read it again at once, for ever.
                Err(e) if matches!(e.kind(), ErrorKind::NotPermitted | ErrorKind::Invalid) => {
                    warn!(path = %path, entry = %head.name, error = %e, "observer cannot read the leader's record; the leader stays unknown");
                    head_name = Some(head.name.clone());
                    LeaderView::Unknown
                }
                // Any other failed read (a service in trouble) backs off like a failed listing,
                // never lists again at once.
                Err(e) => {
                    warn!(path = %path, entry = %head.name, error = %e, "observer could not read the head's entry; retrying");
                    sleep(client.jittered(backoff)).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    continue;
                }
            },
        };
        backoff = Duration::from_millis(10);
        if queue.is_empty() {
            head_name = None;
        }
        tx.send_if_modified(|cur| {
            if *cur != view {
                *cur = view;
                true
            } else {
                false
            }
        });
        if tx.is_closed() {
            return;
        }
        let _ = changed.await;
    }
}
