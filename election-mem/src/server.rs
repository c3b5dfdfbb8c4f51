//! The in-memory coordination service: a tree of nodes with ephemeral sequential entries, a
//! global creation counter (the term token), one-shot watches, and sessions that the server
//! expires only when it has heard nothing from the client for the session timeout. Plus the
//! fault API that tests drive.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use election_core::{
    BackendError, CoordinationBackend, EntryInfo, ErrorKind, FencingToken, ListedContender,
    ListedEntry, Listing, Marker, SessionId, SessionState,
};
use tokio::sync::{oneshot, watch};
use tokio::time::{sleep_until, Instant};
use tracing::debug;

use crate::names::{entry_prefix, entry_prefix_in, parse_entry};
use crate::session::MemSession;

/// Counters of what the service did, for benchmarks and herd checks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Creates applied or attempted.
    pub creates: u64,
    /// Plain listings.
    pub lists: u64,
    /// Listings that armed a watch (observers).
    pub list_watches: u64,
    /// `watch_gone` calls.
    pub watches: u64,
    /// Reads.
    pub reads: u64,
    /// Deletes.
    pub deletes: u64,
    /// Watch notifications delivered, per receiving session.
    pub notifications: BTreeMap<SessionId, u64>,
}

impl Stats {
    /// Every backend call counted.
    pub fn calls(&self) -> u64 {
        self.creates + self.lists + self.list_watches + self.watches + self.reads + self.deletes
    }

    /// Watch notifications delivered, in all.
    pub fn notifications_total(&self) -> u64 {
        self.notifications.values().sum()
    }
}

/// An election entry as [`MemCluster::queue`] shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuedEntry {
    /// The entry's name.
    pub name: String,
    /// The session that owns it.
    pub owner: SessionId,
    /// Its token (creation counter).
    pub token: FencingToken,
    /// The candidate id in its record.
    pub candidate: Option<String>,
}

/// A kind of request that an administrator's ACL can refuse on the entries of one directory
/// ([`MemCluster::deny`]), as ZooKeeper answers `NoAuth`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Permission {
    /// Creating entries in the directory (ZooKeeper's CREATE on the parent).
    Create,
    /// Deleting entries from the directory (ZooKeeper's DELETE on the parent).
    Delete,
    /// Reading an entry's data and owner (ZooKeeper's READ on the entry).
    Read,
    /// Listing the directory (ZooKeeper's READ on the parent).
    List,
}

/// Settings of a [`MemCluster`].
#[derive(Clone, Debug)]
pub struct MemConfig {
    /// How long after the last contact a cut-off client notices and reports `Disconnected`, as
    /// a fraction of its session timeout (ZooKeeper's client: about 0.4; default 1/3).
    pub disconnect_detection: f64,
    /// Session timeouts are clamped into this range, as a ZooKeeper server does.
    pub min_session_timeout: Duration,
    /// See `min_session_timeout`.
    pub max_session_timeout: Duration,
    /// How long a connected client whose session the service ends by force takes to reconnect
    /// and learn it: it reports `Disconnected` at once (the service drops its connection) and
    /// `Expired` this much later, as ZooKeeper's clients do. Default 10 ms.
    pub reconnect_delay: Duration,
}

impl Default for MemConfig {
    fn default() -> Self {
        Self {
            disconnect_detection: 1.0 / 3.0,
            min_session_timeout: Duration::from_millis(1),
            max_session_timeout: Duration::from_secs(3600),
            reconnect_delay: Duration::from_millis(10),
        }
    }
}

/// An in-memory coordination service. Clone it to share; [`backend`](Self::backend) gives the
/// [`CoordinationBackend`] that candidates use, and the other methods inject faults.
///
/// Deterministic under tokio's paused clock: no hash maps, no randomness, no wall clock.
#[derive(Clone)]
pub struct MemCluster {
    pub(crate) inner: Arc<Mutex<Server>>,
}

/// The high bits of the sessions that own foreign contenders ([`MemCluster::create_contender`]):
/// no session of the service has them, so none expires.
const FOREIGN_SESSIONS: u64 = 0xf0f0 << 48;

pub(crate) type Waiter = oneshot::Sender<Result<(), BackendError>>;

pub(crate) struct Node {
    data: Vec<u8>,
    czxid: u64,
    owner: Option<SessionId>,
    /// Next sequence number for children (ZooKeeper's cversion-based suffix).
    next_seq: u64,
    /// Sessions waiting for this node to go.
    gone_watchers: Vec<(SessionId, Waiter)>,
    /// Sessions waiting for the set of children to change.
    child_watchers: Vec<(SessionId, Waiter)>,
}

impl Node {
    fn new(data: Vec<u8>, czxid: u64, owner: Option<SessionId>) -> Self {
        Self {
            data,
            czxid,
            owner,
            next_seq: 0,
            gone_watchers: Vec::new(),
            child_watchers: Vec::new(),
        }
    }
}

/// A session's state as its client sees it, with one watch channel per subscriber: tokio's
/// watch wakes several waiters of one channel in a random order, which would make runs on the
/// paused clock differ from one to the next; separate channels are woken in the order sent.
pub(crate) struct StateTx {
    main: watch::Sender<SessionState>,
    subscribers: Mutex<Vec<watch::Sender<SessionState>>>,
}

impl StateTx {
    fn new(state: SessionState) -> Self {
        Self {
            main: watch::channel(state).0,
            subscribers: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn borrow(&self) -> watch::Ref<'_, SessionState> {
        self.main.borrow()
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<SessionState> {
        let mut subs = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
        subs.retain(|tx| !tx.is_closed());
        let (tx, rx) = watch::channel(*self.main.borrow());
        subs.push(tx);
        rx
    }

    pub(crate) fn send_replace(&self, state: SessionState) {
        self.main.send_replace(state);
        self.fan_out(state);
    }

    pub(crate) fn send_if_modified(&self, modify: impl FnOnce(&mut SessionState) -> bool) {
        if self.main.send_if_modified(modify) {
            let state = *self.main.borrow();
            self.fan_out(state);
        }
    }

    fn fan_out(&self, state: SessionState) {
        let subs = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
        for tx in subs.iter() {
            tx.send_replace(state);
        }
    }
}

pub(crate) struct SessionRec {
    pub timeout: Duration,
    pub state: StateTx,
    /// The client process is there (not dropped, not crashed).
    pub client_alive: bool,
    /// Frozen: requests hang, nothing is delivered, as for a stopped process.
    pub frozen: bool,
    /// Paused (a stop-the-world pause) until then: `frozen` while it lasts, the client alive.
    pub paused_until: Option<Instant>,
    /// Cut off from the service: the server hears nothing, the client gets no replies.
    pub cut: bool,
    /// The member the client is connected to lost the service's leader: the service hears
    /// nothing of the session, but the member answers reads from the tree as it was (`stale`),
    /// cannot pass writes on, and delivers no notification.
    pub unheard: bool,
    /// The tree as the isolated member last saw it, while `unheard`.
    pub stale: Option<Snapshot>,
    /// Watches armed while `unheard`, settled against the real tree when the member hears its
    /// leader again: `Some(path)` for a node's deletion, `None` for a change of children.
    pub heal_watches: Vec<(Option<String>, Waiter)>,
    pub last_heard: Instant,
    /// Bumped whenever contact resumes, so stale expiry timers do nothing.
    pub contact_epoch: u64,
    pub expired: bool,
    /// When the service expired (or closed) it.
    pub expired_at: Option<Instant>,
    pub notify_delay: Duration,
    pub outbox: VecDeque<(Instant, Waiter)>,
}

/// A node as a member that lost its leader still sees it.
#[derive(Clone, Debug)]
pub(crate) struct NodeView {
    data: Vec<u8>,
    czxid: u64,
    owner: Option<SessionId>,
}

/// The tree at one instant, by path.
pub(crate) type Snapshot = BTreeMap<String, NodeView>;

pub(crate) struct Server {
    pub config: MemConfig,
    pub zxid: u64,
    pub next_session: u64,
    pub nodes: BTreeMap<String, Node>,
    pub sessions: BTreeMap<SessionId, SessionRec>,
    pub stats: Stats,
    pub lose_create_replies: u32,
    pub latency: Duration,
    pub self_ref: Weak<Mutex<Server>>,
    /// Watches on directories none of whose ancestors exist yet.
    pub pending_root_watchers: Vec<(SessionId, Waiter)>,
    /// Requests refused on a directory's entries (`MemCluster::deny`).
    pub denied: std::collections::BTreeSet<(String, Permission)>,
}

fn parent_of(path: &str) -> Option<&str> {
    let i = path.rfind('/')?;
    if i == 0 {
        (path.len() > 1).then_some("/")
    } else {
        Some(&path[..i])
    }
}

fn child_path(dir: &str, name: &str) -> String {
    format!("{dir}/{name}")
}

/// The children of `dir` in a map keyed by path.
fn children_in<'a, N>(
    nodes: &'a BTreeMap<String, N>,
    dir: &'a str,
) -> impl Iterator<Item = (&'a str, &'a N)> + 'a {
    let prefix = format!("{dir}/");
    nodes
        .range(prefix.clone()..)
        .take_while(move |(k, _)| k.starts_with(&prefix))
        .filter_map(move |(k, n)| {
            let rest = &k[dir.len() + 1..];
            (!rest.contains('/')).then_some((rest, n))
        })
}

/// The election entries, foreign contenders and foreign names among `children` (name, data,
/// czxid, owner), as ZooKeeper's `getChildren` and a read of each foreign sequential child: a
/// look-alike (a persistent node named like an entry) is listed as an entry, by name alone;
/// only its stat tells.
fn listing_of<'a>(
    children: impl Iterator<Item = (&'a str, &'a [u8], u64, Option<SessionId>)>,
) -> Listing {
    let mut listing = Listing::default();
    for (name, data, czxid, owner) in children {
        match parse_entry(name) {
            Some((marker, owner, sequence)) => listing.entries.push(ListedEntry {
                name: name.to_owned(),
                sequence,
                owner,
                marker,
            }),
            None => match election_core::foreign::zookeeper_sequence(name) {
                Some(sequence) => listing.contenders.push(ListedContender {
                    name: name.to_owned(),
                    sequence,
                    owner: owner.unwrap_or(SessionId(0)),
                    token: FencingToken(czxid),
                    data: data[..data.len().min(election_core::limits::MAX_FOREIGN_DATA_LEN)]
                        .to_vec(),
                }),
                None => listing.push_foreign(name),
            },
        }
    }
    listing.entries.sort_by_key(|e| e.sequence);
    listing.contenders.sort_by_key(|c| c.sequence);
    listing
}

/// An entry read from a node's `data`, `czxid` and owner.
fn entry_of(name: &str, data: &[u8], czxid: u64, owner: Option<SessionId>) -> Option<EntryInfo> {
    let (marker, _, sequence) = parse_entry(name)?;
    Some(EntryInfo {
        name: name.to_owned(),
        sequence,
        // The service's record, as ZooKeeper's `ephemeralOwner`: 0 for a persistent node.
        owner: owner.unwrap_or(SessionId(0)),
        marker,
        token: FencingToken(czxid),
        data: data.to_vec(),
        sole: false,
    })
}

impl Server {
    fn children<'a>(&'a self, dir: &'a str) -> impl Iterator<Item = (&'a str, &'a Node)> + 'a {
        children_in(&self.nodes, dir)
    }

    /// The tree now, as a member that loses its leader keeps seeing it.
    fn snapshot(&self) -> Snapshot {
        self.nodes
            .iter()
            .map(|(path, n)| {
                let view = NodeView {
                    data: n.data.clone(),
                    czxid: n.czxid,
                    owner: n.owner,
                };
                (path.clone(), view)
            })
            .collect()
    }

    /// The stale tree `session`'s member answers reads from, when it lost its leader.
    pub(crate) fn stale_view(&self, session: SessionId) -> Option<&Snapshot> {
        self.sessions
            .get(&session)
            .filter(|r| r.unheard)
            .and_then(|r| r.stale.as_ref())
    }

    /// Refuses a write from a session whose member lost its leader: the member cannot pass it
    /// on, and the client hears nothing back (outcome unknown; it was not applied).
    pub(crate) fn writable(&self, session: SessionId) -> Result<(), BackendError> {
        if self.sessions.get(&session).is_some_and(|r| r.unheard) {
            return Err(BackendError::new(
                ErrorKind::OutcomeUnknown,
                "no reply: the member lost its leader",
            ));
        }
        Ok(())
    }

    /// `listing` as `session` sees it (stale when its member lost its leader).
    pub(crate) fn listing_for(&self, session: SessionId, dir: &str) -> Listing {
        match self.stale_view(session) {
            Some(view) => listing_of(
                children_in(view, dir).map(|(name, n)| (name, n.data.as_slice(), n.czxid, n.owner)),
            ),
            None => self.listing(dir),
        }
    }

    /// `read` as `session` sees it (stale when its member lost its leader).
    pub(crate) fn read_for(&self, session: SessionId, dir: &str, name: &str) -> Option<EntryInfo> {
        match self.stale_view(session) {
            Some(view) => {
                let n = view.get(&child_path(dir, name))?;
                entry_of(name, &n.data, n.czxid, n.owner)
            }
            None => self.read(dir, name),
        }
    }

    /// Whether the node exists as `session` sees it.
    pub(crate) fn exists_for(&self, session: SessionId, dir: &str, name: &str) -> bool {
        let path = child_path(dir, name);
        match self.stale_view(session) {
            Some(view) => view.contains_key(&path),
            None => self.nodes.contains_key(&path),
        }
    }

    /// A watch armed by `session` while its member lost its leader: settled when the member
    /// hears its leader again (a node's deletion watch fires then if the node is gone, else
    /// stays armed on it; a children watch fires), or failed when the session ends.
    pub(crate) fn watch_on_heal(
        &mut self,
        session: SessionId,
        gone_path: Option<String>,
    ) -> oneshot::Receiver<Result<(), BackendError>> {
        let (tx, rx) = oneshot::channel();
        if let Some(rec) = self.sessions.get_mut(&session) {
            rec.heal_watches.push((gone_path, tx));
        }
        rx
    }

    /// Settles the watches `session` armed while its member lost its leader.
    fn settle_heal_watches(&mut self, session: SessionId) {
        let Some(rec) = self.sessions.get_mut(&session) else {
            return;
        };
        for (gone_path, tx) in std::mem::take(&mut rec.heal_watches) {
            match gone_path.and_then(|p| self.nodes.get_mut(&p)) {
                Some(node) => node.gone_watchers.push((session, tx)),
                None => self.deliver(session, tx, Ok(())),
            }
        }
    }

    pub(crate) fn session_usable(&self, id: SessionId) -> Result<(), BackendError> {
        match self.sessions.get(&id) {
            None => Err(BackendError::new(ErrorKind::SessionGone, "no such session")),
            Some(s) if *s.state.borrow() == SessionState::Closed => {
                Err(BackendError::new(ErrorKind::SessionGone, "session closed"))
            }
            // A cut-off client hears nothing from the service, not even that its session
            // expired: it learns that when contact resumes, as with ZooKeeper.
            Some(s) if s.cut => Err(BackendError::new(
                ErrorKind::OutcomeUnknown,
                "connection loss (cut off)",
            )),
            Some(s) if s.expired => {
                Err(BackendError::new(ErrorKind::SessionGone, "session expired"))
            }
            Some(_) => Ok(()),
        }
    }

    pub(crate) fn is_frozen(&self, id: SessionId) -> bool {
        self.sessions.get(&id).is_some_and(|s| s.frozen)
    }

    /// When the pause of `id`'s client ends, if it is paused (frozen but alive).
    pub(crate) fn paused_until(&self, id: SessionId) -> Option<Instant> {
        self.sessions
            .get(&id)
            .filter(|s| s.frozen && s.client_alive)
            .and_then(|s| s.paused_until)
    }

    /// The pause of `session`'s client ends: it is heard again (unless cut off meanwhile), and
    /// learns what happened during the pause: that its session expired, or nothing.
    pub(crate) fn end_pause(&mut self, session: SessionId) {
        let Some(rec) = self.sessions.get_mut(&session) else {
            return;
        };
        if !rec.client_alive || rec.paused_until.is_none() {
            return;
        }
        rec.frozen = false;
        rec.paused_until = None;
        debug!(session = %session, expired = rec.expired, "mem: pause ended");
        if rec.cut || rec.unheard {
            // Still cut off: the silence goes on, and the heal will tell. But the woken client
            // notices the silence as it would have without the pause (a cut during the pause
            // could not tell it): Disconnected, counted from the last contact before the pause,
            // once the detection delay since then has passed (at once after a long pause).
            let last_contact = rec.last_heard;
            let epoch = rec.contact_epoch;
            let notice_at = last_contact + rec.timeout.mul_f64(self.config.disconnect_detection);
            let weak = self.self_ref.clone();
            spawn_timer(async move {
                sleep_until(notice_at).await;
                let Some(server) = weak.upgrade() else { return };
                let guard = lock(&server);
                if let Some(rec) = guard.sessions.get(&session) {
                    let silent = rec.contact_epoch == epoch || rec.expired;
                    let cut_off = rec.cut || rec.unheard;
                    if silent
                        && cut_off
                        && !rec.frozen
                        && *rec.state.borrow() == SessionState::Connected
                    {
                        rec.state
                            .send_replace(SessionState::Disconnected { last_contact });
                    }
                }
            });
            return;
        }
        if rec.expired {
            // As an expiry it learns of on reconnecting (unless it already knew, or closed).
            rec.state.send_if_modified(|s| {
                let tell = matches!(
                    s,
                    SessionState::Connected | SessionState::Disconnected { .. }
                );
                if tell {
                    *s = SessionState::Expired;
                }
                tell
            });
            return;
        }
        rec.contact_epoch += 1;
        rec.last_heard = Instant::now();
        // Healed during the pause (a heal cannot reach a paused process): it is connected
        // again, and the watches it armed behind an isolated member are settled now.
        rec.state.send_if_modified(|s| {
            let tell = matches!(s, SessionState::Disconnected { .. });
            if tell {
                *s = SessionState::Connected;
            }
            tell
        });
        self.settle_heal_watches(session);
        self.flush_outbox(session);
    }

    fn bump(&mut self) -> u64 {
        self.zxid += 1;
        self.zxid
    }

    fn ensure_parents(&mut self, dir: &str) {
        let mut missing = Vec::new();
        let mut cur = Some(dir);
        while let Some(p) = cur {
            if p == "/" || self.nodes.contains_key(p) {
                break;
            }
            missing.push(p.to_owned());
            cur = parent_of(p);
        }
        for p in missing.into_iter().rev() {
            let z = self.bump();
            self.nodes.insert(p.clone(), Node::new(Vec::new(), z, None));
            self.fire_children_of_parent(&p);
        }
    }

    pub(crate) fn create(
        &mut self,
        session: SessionId,
        dir: &str,
        marker: &Marker,
        mode: Option<election_core::Compatibility>,
        data: &[u8],
    ) -> Result<EntryInfo, BackendError> {
        self.stats.creates += 1;
        self.session_usable(session)?;
        self.ensure_parents(dir);
        // Nothing else in the directory as this entry is made: it leads without a listing.
        let sole = self.children(dir).next().is_none();
        let parent = self.nodes.get_mut(dir).expect("parent just ensured");
        let seq = parent.next_seq;
        parent.next_seq += 1;
        let name = format!("{}{seq:010}", entry_prefix_in(marker, session, mode));
        let token = self.bump();
        self.nodes.insert(
            child_path(dir, &name),
            Node::new(data.to_vec(), token, Some(session)),
        );
        self.fire_children(dir);
        debug!(session = %session, dir, name = %name, token, "mem: entry created");
        if self.lose_create_replies > 0 {
            self.lose_create_replies -= 1;
            return Err(BackendError::new(
                ErrorKind::OutcomeUnknown,
                "reply lost (injected fault)",
            ));
        }
        Ok(EntryInfo {
            name,
            sequence: seq,
            owner: session,
            marker: marker.clone(),
            token: FencingToken(token),
            data: data.to_vec(),
            sole,
        })
    }

    /// By name alone, as ZooKeeper's `getChildren`: a look-alike (a persistent node named like
    /// an entry) is listed as an entry; only its stat tells.
    pub(crate) fn listing(&self, dir: &str) -> Listing {
        listing_of(
            self.children(dir)
                .map(|(name, n)| (name, n.data.as_slice(), n.czxid, n.owner)),
        )
    }

    pub(crate) fn read(&self, dir: &str, name: &str) -> Option<EntryInfo> {
        let node = self.nodes.get(&child_path(dir, name))?;
        entry_of(name, &node.data, node.czxid, node.owner)
    }

    /// Whether the node `name` in `dir` exists but is not the entry of the session its name
    /// claims (a persistent look-alike, or another session's node), or, for a foreign name, is
    /// persistent (it never goes away by itself).
    pub(crate) fn is_lookalike(&self, dir: &str, name: &str) -> bool {
        self.nodes.get(&child_path(dir, name)).is_some_and(|node| {
            node.owner.is_none()
                || parse_entry(name).is_some_and(|(_, owner, _)| Some(owner) != node.owner)
        })
    }

    /// Arms a watch for the node's deletion; `None` if it does not exist.
    pub(crate) fn watch_gone(
        &mut self,
        session: SessionId,
        dir: &str,
        name: &str,
    ) -> Option<oneshot::Receiver<Result<(), BackendError>>> {
        let node = self.nodes.get_mut(&child_path(dir, name))?;
        let (tx, rx) = oneshot::channel();
        node.gone_watchers.push((session, tx));
        Some(rx)
    }

    /// Arms a watch on the set of children of `dir` (or on `dir` appearing).
    pub(crate) fn watch_children(
        &mut self,
        session: SessionId,
        dir: &str,
    ) -> oneshot::Receiver<Result<(), BackendError>> {
        let (tx, rx) = oneshot::channel();
        match self.nodes.get_mut(dir) {
            Some(node) => node.child_watchers.push((session, tx)),
            None => {
                // Watch the nearest existing ancestor's children: `dir` (or a parent of it)
                // appearing changes them.
                let mut cur = parent_of(dir);
                loop {
                    match cur {
                        Some(p) if self.nodes.contains_key(p) => {
                            self.nodes
                                .get_mut(p)
                                .expect("exists")
                                .child_watchers
                                .push((session, tx));
                            break;
                        }
                        Some(p) => cur = parent_of(p),
                        None => {
                            self.pending_root_watchers.push((session, tx));
                            break;
                        }
                    }
                }
            }
        }
        rx
    }

    pub(crate) fn delete(&mut self, dir: &str, name: &str) -> Result<(), BackendError> {
        self.stats.deletes += 1;
        let path = child_path(dir, name);
        if self.children(&path).next().is_some() {
            return Err(BackendError::new(ErrorKind::Invalid, "node has children"));
        }
        self.remove_node(&path)
            .then_some(())
            .ok_or_else(|| BackendError::new(ErrorKind::NotFound, format!("no node {path}")))
    }

    fn remove_node(&mut self, path: &str) -> bool {
        let Some(node) = self.nodes.remove(path) else {
            return false;
        };
        self.bump();
        for (session, tx) in node.gone_watchers {
            self.deliver(session, tx, Ok(()));
        }
        for (session, tx) in node.child_watchers {
            self.deliver(session, tx, Ok(()));
        }
        self.fire_children_of_parent(path);
        true
    }

    fn fire_children_of_parent(&mut self, path: &str) {
        match parent_of(path) {
            Some("/") | None => {
                for (session, tx) in std::mem::take(&mut self.pending_root_watchers) {
                    self.deliver(session, tx, Ok(()));
                }
            }
            Some(parent) => {
                let parent = parent.to_owned();
                self.fire_children(&parent);
            }
        }
    }

    fn fire_children(&mut self, dir: &str) {
        let Some(node) = self.nodes.get_mut(dir) else {
            return;
        };
        for (session, tx) in std::mem::take(&mut node.child_watchers) {
            self.deliver(session, tx, Ok(()));
        }
    }

    /// Delivers a notification to `session` in order: at once when nothing is delayed or queued
    /// and the client is reachable, else through its outbox.
    fn deliver(&mut self, session: SessionId, tx: Waiter, result: Result<(), BackendError>) {
        let Some(rec) = self.sessions.get_mut(&session) else {
            let _ = tx.send(result);
            return;
        };
        if result.is_ok() {
            *self.stats.notifications.entry(session).or_default() += 1;
        }
        let now = Instant::now();
        let reachable = !rec.cut && !rec.frozen && !rec.unheard;
        if reachable && rec.notify_delay.is_zero() && rec.outbox.is_empty() {
            let _ = tx.send(result);
            return;
        }
        let due = now + rec.notify_delay;
        // The result is carried by the sender being fired later with Ok(()); errors are only
        // ever sent directly (on expiry the outbox is flushed with errors).
        rec.outbox.push_back((due, tx));
        self.schedule_outbox(session, due);
    }

    fn schedule_outbox(&self, session: SessionId, due: Instant) {
        let weak = self.self_ref.clone();
        spawn_timer(async move {
            sleep_until(due).await;
            if let Some(server) = weak.upgrade() {
                lock(&server).flush_outbox(session);
            }
        });
    }

    pub(crate) fn flush_outbox(&mut self, session: SessionId) {
        let Some(rec) = self.sessions.get_mut(&session) else {
            return;
        };
        if rec.cut || rec.frozen || rec.unheard {
            return;
        }
        let now = Instant::now();
        while rec.outbox.front().is_some_and(|(due, _)| *due <= now) {
            let (_, tx) = rec.outbox.pop_front().expect("front exists");
            let _ = tx.send(Ok(()));
        }
    }

    pub(crate) fn open_session(
        &mut self,
        timeout: Duration,
    ) -> (SessionId, Duration, watch::Receiver<SessionState>) {
        self.next_session += 1;
        let id = SessionId(0x1000_0000_0000 + self.next_session);
        let timeout = timeout.clamp(
            self.config.min_session_timeout,
            self.config.max_session_timeout,
        );
        let tx = StateTx::new(SessionState::Connected);
        let rx = tx.subscribe();
        self.sessions.insert(
            id,
            SessionRec {
                timeout,
                state: tx,
                client_alive: true,
                frozen: false,
                paused_until: None,
                cut: false,
                unheard: false,
                stale: None,
                heal_watches: Vec::new(),
                last_heard: Instant::now(),
                contact_epoch: 0,
                expired: false,
                expired_at: None,
                notify_delay: Duration::ZERO,
                outbox: VecDeque::new(),
            },
        );
        debug!(session = %id, ?timeout, "mem: session opened");
        (id, timeout, rx)
    }

    /// The server stops hearing from `session` now: it expires `timeout` later unless contact
    /// resumes; the client (if it is there to notice) reports Disconnected after the detection
    /// delay.
    pub(crate) fn lose_contact(&mut self, session: SessionId, notify_client: bool) {
        let detection = self.config.disconnect_detection;
        let Some(rec) = self.sessions.get_mut(&session) else {
            return;
        };
        if rec.expired || *rec.state.borrow() == SessionState::Closed {
            return;
        }
        let now = Instant::now();
        let was_hearing = !rec.cut && rec.client_alive && !rec.frozen && !rec.unheard;
        if !was_hearing {
            return;
        }
        rec.last_heard = now;
        rec.contact_epoch += 1;
        let epoch = rec.contact_epoch;
        let expire_at = now + rec.timeout;
        let notice_at = now + rec.timeout.mul_f64(detection);
        let weak = self.self_ref.clone();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime (a handle dropped after its runtime shut down): nothing can time the
            // expiry, and nothing of the client runs any more. End the session now rather than
            // keep it, and its entries, for ever; never panic in a drop.
            debug!(session = %session, "mem: client gone with no runtime to time its expiry; expiring now");
            self.expire(session, false);
            return;
        };
        runtime.spawn(async move {
            if notify_client {
                sleep_until(notice_at).await;
                let Some(server) = weak.upgrade() else { return };
                let guard = lock(&server);
                if let Some(rec) = guard.sessions.get(&session) {
                    // Also when the service expired the session meanwhile (an administrator's
                    // forced expiry): the cut-off client cannot know, and notices the silence.
                    let silent = rec.contact_epoch == epoch || rec.expired;
                    let cut_off = rec.cut || rec.unheard;
                    if silent && cut_off && *rec.state.borrow() == SessionState::Connected {
                        rec.state
                            .send_replace(SessionState::Disconnected { last_contact: now });
                    }
                }
            }
            sleep_until(expire_at).await;
            let Some(server) = weak.upgrade() else { return };
            let mut guard = lock(&server);
            if guard
                .sessions
                .get(&session)
                .is_some_and(|r| r.contact_epoch == epoch)
            {
                guard.expire(session, false);
            }
        });
    }

    /// Contact resumes: the server hears the client again, or tells it its session expired.
    pub(crate) fn restore_contact(&mut self, session: SessionId) {
        let Some(rec) = self.sessions.get_mut(&session) else {
            return;
        };
        rec.cut = false;
        let was_unheard = std::mem::replace(&mut rec.unheard, false);
        rec.stale = None;
        if !rec.client_alive || rec.frozen {
            // A client that crashed (or went away) while cut off is not heard again: the expiry
            // its silence started stays due. A paused one is heard again when its pause ends
            // (`end_pause`), which settles what the heal would have.
            return;
        }
        rec.contact_epoch += 1;
        rec.last_heard = Instant::now();
        if rec.expired {
            rec.state.send_replace(SessionState::Expired);
            return;
        }
        if rec.client_alive && !rec.frozen {
            rec.state.send_if_modified(|s| {
                let changed = *s != SessionState::Connected;
                *s = SessionState::Connected;
                changed
            });
            if was_unheard {
                self.settle_heal_watches(session);
            }
            self.flush_outbox(session);
        }
    }

    /// Ends `session` on the server: its entries are deleted (firing watches) and its own
    /// watches fail with SessionGone. The client is told at once unless it is cut off (it then
    /// learns when contact resumes, as with ZooKeeper) or `quietly`.
    pub(crate) fn expire(&mut self, session: SessionId, closed: bool) {
        let Some(rec) = self.sessions.get_mut(&session) else {
            return;
        };
        if rec.expired {
            return;
        }
        rec.expired = true;
        rec.expired_at = Some(Instant::now());
        rec.contact_epoch += 1;
        let tell_client = !rec.cut && !rec.frozen && !rec.unheard;
        // The client hears first: a leader leaves its state in the same instant the others learn
        // its entry is gone. Closed is the client's own doing; an expiry it learns as ZooKeeper's
        // clients do: the service drops the connection (Disconnected), and the reconnect is told
        // the session expired.
        if closed {
            rec.state.send_replace(SessionState::Closed);
        } else if tell_client {
            let now = Instant::now();
            rec.state
                .send_replace(SessionState::Disconnected { last_contact: now });
            let weak = self.self_ref.clone();
            let told_at = now + self.config.reconnect_delay;
            spawn_timer(async move {
                sleep_until(told_at).await;
                let Some(server) = weak.upgrade() else { return };
                let guard = lock(&server);
                if let Some(rec) = guard.sessions.get(&session) {
                    // A client cut off meanwhile learns when contact resumes.
                    let closed = *rec.state.borrow() == SessionState::Closed;
                    if !rec.cut && !rec.frozen && !rec.unheard && !closed {
                        rec.state.send_replace(SessionState::Expired);
                    }
                }
            });
        }
        let heal_watches = std::mem::take(&mut rec.heal_watches).into_iter();
        let waiting = rec.outbox.drain(..).map(|(_, tx)| tx);
        for tx in waiting.chain(heal_watches.map(|(_, tx)| tx)) {
            let _ = tx.send(Err(BackendError::new(
                ErrorKind::SessionGone,
                "session ended",
            )));
        }
        debug!(session = %session, closed, "mem: session ended");
        let gone = BackendError::new(ErrorKind::SessionGone, "session ended");
        // This session's watches end with it.
        let keys: Vec<String> = self.nodes.keys().cloned().collect();
        for k in &keys {
            let node = self.nodes.get_mut(k).expect("listed");
            for list in [&mut node.gone_watchers, &mut node.child_watchers] {
                let mut i = 0;
                while i < list.len() {
                    if list[i].0 == session {
                        let (_, tx) = list.swap_remove(i);
                        let _ = tx.send(Err(BackendError::new(gone.kind(), "session ended")));
                    } else {
                        i += 1;
                    }
                }
            }
        }
        // Then its ephemeral entries go, in path order.
        let owned: Vec<String> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.owner == Some(session))
            .map(|(k, _)| k.clone())
            .collect();
        for path in owned {
            self.remove_node(&path);
        }
    }

    pub(crate) fn delete_tree(&mut self, root: &str) -> usize {
        let prefix = format!("{root}/");
        let mut doomed: Vec<String> = self
            .nodes
            .keys()
            .filter(|k| k.as_str() == root || k.starts_with(&prefix))
            .cloned()
            .collect();
        // Children before parents.
        doomed.sort_by_key(|k| std::cmp::Reverse(k.matches('/').count()));
        let n = doomed.len();
        for path in doomed {
            self.remove_node(&path);
        }
        n
    }
}

impl Server {
    /// `NotPermitted` when an administrator denied `permission` on `dir`'s entries.
    pub(crate) fn permitted(&self, dir: &str, permission: Permission) -> Result<(), BackendError> {
        if self.denied.contains(&(dir.to_owned(), permission)) {
            return Err(BackendError::new(
                ErrorKind::NotPermitted,
                format!("{dir}: no {permission:?} permission (injected ACL)"),
            ));
        }
        Ok(())
    }
}

pub(crate) fn lock(server: &Mutex<Server>) -> MutexGuard<'_, Server> {
    server.lock().unwrap_or_else(|e| e.into_inner())
}

impl Default for MemCluster {
    fn default() -> Self {
        Self::new()
    }
}

impl MemCluster {
    /// A new, empty service with default settings.
    pub fn new() -> Self {
        Self::with_config(MemConfig::default())
    }

    /// A new, empty service.
    pub fn with_config(config: MemConfig) -> Self {
        let inner = Arc::new_cyclic(|weak| {
            Mutex::new(Server {
                config,
                zxid: 0,
                next_session: 0,
                nodes: BTreeMap::new(),
                sessions: BTreeMap::new(),
                stats: Stats::default(),
                lose_create_replies: 0,
                latency: Duration::ZERO,
                self_ref: weak.clone(),
                pending_root_watchers: Vec::new(),
                denied: Default::default(),
            })
        });
        Self { inner }
    }

    pub(crate) fn server(&self) -> MutexGuard<'_, Server> {
        lock(&self.inner)
    }

    /// The backend to give candidates and clients.
    pub fn backend(&self) -> Arc<dyn CoordinationBackend> {
        Arc::new(MemBackend {
            cluster: self.clone(),
        })
    }

    // ----- faults --------------------------------------------------------------------------

    /// Expires `session` now, as an administrator's forced expiry would: its entries go, and
    /// the client learns at once (or when contact resumes, if it is cut off).
    ///
    /// This breaks the premise of step-down safety (the service ending a session before the
    /// timeout): use it to test re-candidacy, not overlap.
    pub fn expire_session(&self, session: SessionId) {
        self.server().expire(session, false);
    }

    /// Cuts the client of `session` off: the server stops hearing it (and expires the session
    /// after its timeout), the client gets no replies and reports `Disconnected` after the
    /// detection delay.
    pub fn cut(&self, session: SessionId) {
        let mut s = self.server();
        s.lose_contact(session, true);
        if let Some(rec) = s.sessions.get_mut(&session) {
            rec.cut = true;
        }
    }

    /// The member the client of `session` is connected to loses the service's leader, silently
    /// (ZooKeeper: a follower cut off from its leader, which goes on serving its clients until
    /// its `syncLimit` runs out). The service stops hearing of the session and expires it after
    /// its timeout; the member goes on answering reads, from the tree as it is now; writes get
    /// no reply (not applied); notifications wait. A client that proves contact through the
    /// leader reports `Disconnected` after the detection delay, as for a cut. Undone by
    /// [`heal`](Self::heal), which tells the client if its session expired meanwhile.
    pub fn isolate_member_of(&self, session: SessionId) {
        let mut s = self.server();
        s.lose_contact(session, true);
        let snapshot = s.snapshot();
        if let Some(rec) = s.sessions.get_mut(&session) {
            if !rec.expired && !rec.cut && !rec.frozen {
                rec.unheard = true;
                rec.stale = Some(snapshot);
            }
        }
    }

    /// Heals a cut: the client is heard again, or learns that its session expired meanwhile.
    pub fn heal(&self, session: SessionId) {
        self.server().restore_contact(session);
    }

    /// The client of `session` crashes: it sends nothing more (the session expires after its
    /// timeout), its requests hang and it is told nothing. Pair with
    /// [`Candidate::abort`](election_core::Candidate::abort) to end the candidate's task too.
    pub fn crash(&self, session: SessionId) {
        let mut s = self.server();
        s.lose_contact(session, false);
        if let Some(rec) = s.sessions.get_mut(&session) {
            rec.frozen = true;
            rec.client_alive = false;
        }
    }

    /// The client process of `session` pauses for `duration`, as a stop-the-world GC pause
    /// freezes a JVM: the service stops hearing it now (and expires its session `timeout`
    /// later, as for [`crash`](Self::crash)); during the pause its requests and notifications
    /// hang and its session reports no change. When the pause ends it resumes as if nothing
    /// happened: it is heard again, and learns only then that its session expired, if it did.
    ///
    /// This is the service's side of the pause. For the process's side, attach the client to an
    /// `election_core::testing::Process` (`ClientBuilder::process`) and pause it for the same
    /// time: its candidates' drivers (step-down timers included) and leader work then stand
    /// still too, as in the simulation's `Op::Pause`. Without it the candidate's own timers
    /// and work go on running.
    ///
    /// A leader paused past its session timeout cannot step down in time, so the contract's S2
    /// does not hold across a pause: its successor may lead, and write, before the paused
    /// leader learns its term is over. Only fencing downstream (see
    /// `election_core::testing::FencedStore`) keeps the old leader's late writes out.
    pub fn pause(&self, session: SessionId, duration: Duration) {
        let end = Instant::now() + duration;
        {
            let mut s = self.server();
            s.lose_contact(session, false);
            let Some(rec) = s.sessions.get_mut(&session) else {
                return;
            };
            if !rec.client_alive {
                return;
            }
            rec.frozen = true;
            rec.paused_until = Some(rec.paused_until.map_or(end, |u| u.max(end)));
            debug!(session = %session, ?duration, "mem: client paused");
        }
        let cluster = self.clone();
        spawn_timer(async move {
            sleep_until(end).await;
            let mut s = cluster.server();
            if s.sessions
                .get(&session)
                .and_then(|r| r.paused_until)
                .is_some_and(|u| u <= Instant::now())
            {
                s.end_pause(session);
            }
        });
    }

    /// The next `n` creates (by any session) are applied but their replies are lost: the caller
    /// gets an outcome-unknown error.
    pub fn lose_create_replies(&self, n: u32) {
        self.server().lose_create_replies += n;
    }

    /// Delays every watch notification to `session` by `delay` (order within the session is
    /// kept; across sessions it changes).
    pub fn delay_notifications(&self, session: SessionId, delay: Duration) {
        if let Some(rec) = self.server().sessions.get_mut(&session) {
            rec.notify_delay = delay;
        }
    }

    /// Adds `latency` before every operation is applied.
    pub fn set_latency(&self, latency: Duration) {
        self.server().latency = latency;
    }

    /// Deletes `path` and everything under it, as an administrator's `deleteall` would. Returns
    /// how many nodes went.
    pub fn delete_tree(&self, path: &str) -> usize {
        self.server().delete_tree(path)
    }

    /// Deletes the entry `name` under `dir` from outside (an administrator). `false` if absent.
    pub fn delete_entry(&self, dir: &str, name: &str) -> bool {
        let mut s = self.server();
        s.delete(dir, name).is_ok()
    }

    /// The service loses its data and is rebuilt empty, as a ZooKeeper ensemble restored with
    /// no snapshot: every session ends (its clients learn it as an expiry), every node goes,
    /// and the creation counter starts again from 0, so term tokens go back.
    pub fn lose_data(&self) {
        let mut s = self.server();
        let sessions: Vec<SessionId> = s.sessions.keys().copied().collect();
        for id in sessions {
            s.expire(id, false);
        }
        let tops: Vec<String> = s
            .nodes
            .keys()
            .filter(|k| k.rfind('/') == Some(0))
            .cloned()
            .collect();
        for top in tops {
            s.delete_tree(&top);
        }
        s.zxid = 0;
    }

    /// Creates a persistent node named like an election entry, as a tree restored or copied by
    /// a tool would hold: it never goes away by itself, and only its stat (no owner) tells it
    /// from a live candidate's entry. It takes the next sequence of `dir`. Returns its name.
    pub fn create_lookalike(&self, dir: &str, claimed_owner: SessionId) -> String {
        let mut s = self.server();
        s.ensure_parents(dir);
        let parent = s.nodes.get_mut(dir).expect("parent just ensured");
        let seq = parent.next_seq;
        parent.next_seq += 1;
        let marker = Marker::from_bits(0x00c0_ffee_0000_0000 | seq);
        let name = format!("{}{seq:010}", entry_prefix(&marker, claimed_owner));
        let z = s.bump();
        s.nodes
            .insert(child_path(dir, &name), Node::new(Vec::new(), z, None));
        s.fire_children(dir);
        name
    }

    /// Creates the ephemeral sequential node of a contender of another implementation in `dir`,
    /// named as that implementation names its nodes (Curator's `_c_{uuid}-latch-{seq}` or
    /// `_c_{uuid}-lock-{seq}`, kazoo's `{uuid hex}__lock__{seq}`, or `member_{seq}` for
    /// [`Implementation::Unknown`](election_core::Implementation::Unknown)), with `data` as its
    /// data (Curator and kazoo write their id as UTF-8). It takes the next sequence of `dir`,
    /// shared with the entries, and is owned by a foreign client's session that stays alive
    /// until the node is deleted ([`delete_entry`](Self::delete_entry)). Returns its name.
    ///
    /// # Panics
    /// For [`Implementation::Election`](election_core::Implementation::Election): an entry of
    /// ours is created by a candidate.
    pub fn create_contender(
        &self,
        dir: &str,
        implementation: election_core::Implementation,
        data: &[u8],
    ) -> String {
        use election_core::Implementation as I;
        let mut s = self.server();
        s.ensure_parents(dir);
        let parent = s.nodes.get_mut(dir).expect("parent just ensured");
        let seq = parent.next_seq;
        parent.next_seq += 1;
        let z = s.bump();
        let uuid = format!("{z:08x}-5eed-4000-8000-{seq:012x}");
        let name = match implementation {
            I::CuratorLatch => format!("_c_{uuid}-latch-{seq:010}"),
            I::CuratorLock => format!("_c_{uuid}-lock-{seq:010}"),
            I::Kazoo => format!("{z:016x}{seq:016x}__lock__{seq:010}"),
            I::Unknown => format!("member_{seq:010}"),
            other => panic!("create_contender: {other:?} is not a foreign implementation"),
        };
        let owner = SessionId(FOREIGN_SESSIONS | z);
        s.nodes.insert(
            child_path(dir, &name),
            Node::new(data.to_vec(), z, Some(owner)),
        );
        s.fire_children(dir);
        name
    }

    /// Creates a persistent node that is not an election entry (a foreign node).
    pub fn create_foreign(&self, dir: &str, name: &str) {
        let mut s = self.server();
        s.ensure_parents(dir);
        let z = s.bump();
        s.nodes
            .insert(child_path(dir, name), Node::new(Vec::new(), z, None));
        s.fire_children(dir);
    }

    /// Refuses `permission` on the entries of `dir` from now on, as a ZooKeeper ACL that does
    /// not grant it: the request fails with [`ErrorKind::NotPermitted`]. Faults and inspection
    /// (`delete_entry`, `queue`, ...) are not affected. Undo with [`allow`](Self::allow).
    pub fn deny(&self, dir: &str, permission: Permission) {
        self.server().denied.insert((dir.to_owned(), permission));
    }

    /// Grants `permission` on the entries of `dir` again.
    pub fn allow(&self, dir: &str, permission: Permission) {
        self.server().denied.remove(&(dir.to_owned(), permission));
    }

    // ----- inspection ----------------------------------------------------------------------

    /// The election entries under `dir`, in order, as the service has them now.
    pub fn entries(&self, dir: &str) -> Vec<ListedEntry> {
        self.server().listing(dir).entries
    }

    /// The contenders of other implementations under `dir` (foreign children ending in a
    /// sequence, [`create_contender`](Self::create_contender)), ascending by sequence, as the
    /// service has them now.
    pub fn contenders(&self, dir: &str) -> Vec<ListedContender> {
        self.server().listing(dir).contenders
    }

    /// The election entries under `dir`, in order, with their tokens and the candidate id of
    /// their records (`None` when the data is not a candidate record). Only live sessions'
    /// entries: look-alikes ([`create_lookalike`](Self::create_lookalike)) are left out
    /// ([`entries`](Self::entries) lists by name, as a candidate's listing does).
    pub fn queue(&self, dir: &str) -> Vec<QueuedEntry> {
        let s = self.server();
        s.listing(dir)
            .entries
            .into_iter()
            .filter_map(|e| {
                let node = s.nodes.get(&child_path(dir, &e.name))?;
                if node.owner != Some(e.owner) {
                    return None;
                }
                Some(QueuedEntry {
                    candidate: election_core::CandidateRecord::decode_entry(&node.data)
                        .ok()
                        .map(|r| r.id),
                    token: FencingToken(node.czxid),
                    name: e.name,
                    owner: e.owner,
                })
            })
            .collect()
    }

    /// For each election entry under `dir`, in order, how many sessions other than its owner,
    /// holding an entry of their own in `dir` and in contact, have a live `watch_gone` on it (one
    /// whose notification has not been dropped). A session whose entry was taken away, or that
    /// is cut off (it cannot know yet), is not counted.
    pub fn watchers(&self, dir: &str) -> Vec<(String, usize)> {
        let s = self.server();
        let listing = s.listing(dir);
        // A session cut off, frozen, or behind a member that lost the service's leader hears of
        // nothing until it heals, and then verifies before it acts: its stale watches wake nobody.
        let reachable = |id: &SessionId| {
            s.sessions
                .get(id)
                .is_some_and(|r| !r.cut && !r.frozen && !r.unheard)
        };
        let holders: Vec<SessionId> = listing
            .entries
            .iter()
            .map(|e| e.owner)
            .filter(reachable)
            .collect();
        listing
            .entries
            .into_iter()
            .filter_map(|e| {
                let node = s.nodes.get(&child_path(dir, &e.name))?;
                let n = node
                    .gone_watchers
                    .iter()
                    .filter(|(session, tx)| {
                        *session != e.owner && holders.contains(session) && !tx.is_closed()
                    })
                    .count();
                Some((e.name, n))
            })
            .collect()
    }

    /// Undoes every fault that can be undone: heals every cut, removes notification delays and
    /// latency, and cancels pending lost replies. Crashed clients stay crashed.
    pub fn clear_faults(&self) {
        let cut: Vec<SessionId> = {
            let mut s = self.server();
            s.latency = Duration::ZERO;
            s.lose_create_replies = 0;
            for rec in s.sessions.values_mut() {
                rec.notify_delay = Duration::ZERO;
            }
            s.sessions
                .iter()
                .filter(|(_, r)| r.cut || r.unheard)
                .map(|(id, _)| *id)
                .collect()
        };
        for id in cut {
            self.heal(id);
        }
    }

    /// Whether the service still has `session` alive.
    pub fn session_alive(&self, session: SessionId) -> bool {
        self.server()
            .sessions
            .get(&session)
            .is_some_and(|s| !s.expired && *s.state.borrow() != SessionState::Closed)
    }

    /// When the service ended `session` (expired or closed it), if it has.
    pub fn ended_at(&self, session: SessionId) -> Option<Instant> {
        self.server()
            .sessions
            .get(&session)
            .and_then(|s| s.expired_at)
    }

    /// Whether any node exists at `path`.
    pub fn exists(&self, path: &str) -> bool {
        self.server().nodes.contains_key(path)
    }

    /// The global creation counter now (the last token handed out).
    pub fn zxid(&self) -> u64 {
        self.server().zxid
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        self.server().stats.clone()
    }

    /// Resets the counters.
    pub fn reset_stats(&self) {
        self.server().stats = Stats::default();
    }
}

/// The [`CoordinationBackend`] of a [`MemCluster`].
#[derive(Debug)]
pub struct MemBackend {
    cluster: MemCluster,
}

/// A cluster is usable wherever an `Arc<dyn CoordinationBackend>` is wanted (its
/// [`backend`](MemCluster::backend)): `Candidate::builder(..).join(cluster.clone())`.
impl From<MemCluster> for Arc<dyn CoordinationBackend> {
    fn from(cluster: MemCluster) -> Self {
        cluster.backend()
    }
}

impl From<&MemCluster> for Arc<dyn CoordinationBackend> {
    fn from(cluster: &MemCluster) -> Self {
        cluster.backend()
    }
}

impl std::fmt::Debug for MemCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.server();
        f.debug_struct("MemCluster")
            .field("sessions", &s.sessions.len())
            .field("stats", &s.stats)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl CoordinationBackend for MemBackend {
    async fn open_session(
        &self,
        timeout: Duration,
    ) -> Result<Arc<dyn election_core::BackendSession>, BackendError> {
        let (id, timeout, state) = self.cluster.server().open_session(timeout);
        Ok(Arc::new(MemSession::new(
            self.cluster.clone(),
            id,
            timeout,
            state,
        )))
    }
}

/// Spawns a timer task on the current runtime; without one (a handle dropped after its runtime
/// shut down) there is nobody left to notify, and nothing is spawned: a drop must not panic.
fn spawn_timer(task: impl std::future::Future<Output = ()> + Send + 'static) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(task);
    }
}
