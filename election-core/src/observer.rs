//! An observer: follows who leads an election without running in it. It wakes on every change
//! of the queue (it is not a candidate, so the no-herd rule does not bind it).

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::sleep;
use tracing::{debug, warn};

use crate::client::Client;
use crate::error::ErrorKind;
use crate::path::ElectionPath;
use crate::record::CandidateRecord;
use crate::state::LeaderInfo;

/// Follows the leader of one election. Made by [`Client::observe`]; stops when dropped.
pub struct Observer {
    path: ElectionPath,
    leader: watch::Receiver<Option<LeaderInfo>>,
    task: JoinHandle<()>,
}

impl Observer {
    pub(crate) fn spawn(client: Client, path: ElectionPath) -> Self {
        let (tx, leader) = watch::channel(None);
        let task = tokio::spawn(follow(client, path.clone(), tx));
        Self { path, leader, task }
    }

    /// The election path.
    pub fn path(&self) -> &ElectionPath {
        &self.path
    }

    /// The leader as a watch channel (`None`: nobody leads); each change of leader is a change
    /// of this channel.
    pub fn leader(&self) -> watch::Receiver<Option<LeaderInfo>> {
        self.leader.clone()
    }

    /// Waits until someone other than the leader with token `not` leads (or anyone, with
    /// `None`), and returns the new leader. `None` after `timeout`.
    pub async fn next_leader(
        &self,
        not: Option<crate::FencingToken>,
        timeout: Duration,
    ) -> Option<LeaderInfo> {
        let mut rx = self.leader.clone();
        let wait = async {
            loop {
                if let Some(l) = rx.borrow_and_update().clone() {
                    if Some(l.token) != not {
                        return Some(l);
                    }
                }
                if rx.changed().await.is_err() {
                    return None;
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.ok().flatten()
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn follow(client: Client, path: ElectionPath, tx: watch::Sender<Option<LeaderInfo>>) {
    let mut backoff = Duration::from_millis(10);
    // The head entry the published leader was read from: re-read only when the head changes.
    let mut head_name: Option<String> = None;
    loop {
        let session = client.session().await;
        let (listing, changed) = match session.list_and_watch(&path).await {
            Ok(x) => x,
            Err(e) => {
                if e.kind() == ErrorKind::SessionGone {
                    if let Err(e) = client.renew_session(session.id()).await {
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
        let leader = match listing.entries.first() {
            None => None,
            Some(head) if head_name.as_deref() == Some(head.name.as_str()) => tx.borrow().clone(),
            Some(head) => match session.read(&path, &head.name).await {
                Ok(Some(info)) => {
                    head_name = Some(head.name.clone());
                    CandidateRecord::decode(&info.data)
                        .ok()
                        .map(|r| LeaderInfo {
                            id: r.id,
                            payload: r.payload,
                            token: info.token,
                            session: info.owner,
                        })
                }
                // Gone already: its notification has fired; list again.
                Ok(None) => continue,
                // Issue 18, point 7: a read that fails (no permission, a service in trouble)
                // backs off like a failed listing, never lists again at once.
                Err(e) => {
                    warn!(path = %path, entry = %head.name, error = %e, "observer could not read the head's entry; retrying");
                    sleep(client.jittered(backoff)).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    continue;
                }
            },
        };
        backoff = Duration::from_millis(10);
        if listing.entries.is_empty() {
            head_name = None;
        }
        tx.send_if_modified(|cur| {
            if *cur != leader {
                *cur = leader;
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
