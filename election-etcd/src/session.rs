//! [`EtcdSession`]: one lease (one etcd client) and the election primitives on it.
//!
//! Every request is bounded by the session timeout (past it, it fails with `OutcomeUnknown`).
//! The keep-alive task keeps the lease and the record of contact (see [`crate::liveness`]).

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use election_core::limits::{MAX_FOREIGN_DATA_LEN, MAX_RECORD_LEN};
use election_core::{
    BackendError, BackendSession, ElectionPath, EntryInfo, ErrorKind, FencingToken,
    ListedContender, ListedEntry, Listing, Marker, Notification, SessionId, SessionState, Watch,
};
use etcd_client::{
    Client, Compare, CompareOp, EventType, GetOptions, KeyValue, PutOptions, SortOrder, SortTarget,
    Txn, TxnOp, WatchOptions,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{sleep, Instant};

use crate::backend::Settings;
use crate::error::{backend_error, classify};
use election_core::clock::SuspendDetector;

use crate::liveness::{ended, Liveness};
use crate::names::EntryName;

/// Largest entry data this backend sends: etcd refuses requests above its
/// `--max-request-bytes` (1.5 MiB by default).
pub const MAX_DATA_LEN: usize = 1_000_000;

/// Keep-alives sent and not yet answered on one stream before it is given up and reopened.
const MAX_PENDING_KEEP_ALIVES: usize = 64;

/// One etcd lease, kept alive. Made by [`EtcdBackend`](crate::EtcdBackend) through
/// [`CoordinationBackend::open_session`](election_core::CoordinationBackend::open_session).
///
/// Dropping it stops the keep-alives without revoking the lease: the lease (and its entries)
/// expires one TTL later, as after a crash. Call [`close`](BackendSession::close) to revoke it.
pub struct EtcdSession {
    id: SessionId,
    lease: i64,
    timeout: Duration,
    settings: Arc<Settings>,
    client: Client,
    live: Arc<Liveness>,
    keeper: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for EtcdSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdSession")
            .field("id", &self.id)
            .field("timeout", &self.timeout)
            .field("state", &self.live.current())
            .finish()
    }
}

impl EtcdSession {
    /// Wraps the lease `lease` of TTL `timeout` granted after `granted_after`, and starts its
    /// keep-alive task.
    pub(crate) fn start(
        client: Client,
        settings: Arc<Settings>,
        lease: i64,
        timeout: Duration,
        granted_after: Instant,
    ) -> Self {
        let id = SessionId(lease as u64);
        let live = Arc::new(Liveness::new(id, timeout, granted_after));
        let keeper = tokio::spawn(keep_alive(client.clone(), lease, live.clone()));
        tracing::info!(
            session = %id,
            ttl_s = timeout.as_secs(),
            keep_alive_ms = live.period().as_millis() as u64,
            "etcd session opened"
        );
        Self {
            id,
            lease,
            timeout,
            settings,
            client,
            live,
            keeper: Mutex::new(Some(keeper)),
        }
    }

    fn open(&self) -> Result<Client, BackendError> {
        if self.live.current().is_terminal() {
            return Err(BackendError::new(
                ErrorKind::SessionGone,
                format!("the session is {:?}", self.live.current()),
            ));
        }
        Ok(self.client.clone())
    }

    /// The key prefix of the entries of `dir`: `{namespace}{dir}/`.
    fn dir_prefix(&self, dir: &ElectionPath) -> String {
        format!("{}/", self.settings.key(dir.as_str()))
    }

    fn entry_key(&self, dir: &ElectionPath, name: &str) -> Result<String, BackendError> {
        if name.is_empty() || name.contains('/') {
            return Err(BackendError::new(
                ErrorKind::Invalid,
                format!("{name:?} is not an entry name"),
            ));
        }
        Ok(format!("{}{name}", self.dir_prefix(dir)))
    }

    /// Runs one request bounded by the session timeout; a "lease not found" ends the session.
    async fn run<T, F, Fut>(&self, op: &str, key: &str, f: F) -> Result<T, BackendError>
    where
        F: FnOnce(Client) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let client = self.open()?;
        match tokio::time::timeout(self.timeout, f(client)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => {
                if classify(&e) == ErrorKind::SessionGone {
                    self.live
                        .publish(SessionState::Expired, "request: lease not found");
                }
                tracing::debug!(session = %self.id, op, key, error = %e, "etcd request failed");
                Err(backend_error(op, key, e))
            }
            Err(_) => Err(BackendError::new(
                ErrorKind::OutcomeUnknown,
                format!(
                    "{op} {key}: no reply within the session timeout of {:?}",
                    self.timeout
                ),
            )),
        }
    }

    /// The listing of the keys under `prefix`, ascending by create revision.
    fn listing(prefix: &str, kvs: &[KeyValue]) -> Listing {
        let mut listing = Listing::default();
        for kv in kvs {
            let Some(rest) = kv.key().strip_prefix(prefix.as_bytes()) else {
                continue;
            };
            let rest = String::from_utf8_lossy(rest);
            match rest.split_once('/') {
                // A deeper key: its first segment is a foreign child.
                Some((child, _)) => listing.push_foreign(child),
                None => match EntryName::parse(&rest) {
                    Some(name) => listing.entries.push(ListedEntry {
                        name: rest.into_owned(),
                        sequence: kv.create_revision() as u64,
                        owner: name.owner,
                        marker: name.marker,
                    }),
                    // A key on a lease lives as long as its session, as an entry does: a
                    // contender of another implementation, ordered by its create revision.
                    None if kv.lease() != 0 => listing.contenders.push(ListedContender {
                        name: rest.into_owned(),
                        sequence: kv.create_revision() as u64,
                        owner: SessionId(kv.lease() as u64),
                        token: FencingToken(kv.create_revision() as u64),
                        // Read apart: the range lists keys only.
                        data: Vec::new(),
                    }),
                    None => listing.push_foreign(&rest),
                },
            }
        }
        listing
            .entries
            .sort_by(|a, b| (a.sequence, &a.name).cmp(&(b.sequence, &b.name)));
        listing
            .contenders
            .sort_by(|a, b| (a.sequence, &a.name).cmp(&(b.sequence, &b.name)));
        listing
    }

    /// One range over the prefix of `dir`, sorted by create revision; with the revision it
    /// was read at.
    async fn range(&self, op: &str, dir: &ElectionPath) -> Result<(Listing, i64), BackendError> {
        let prefix = self.dir_prefix(dir);
        let p = prefix.clone();
        let resp = self
            .run(op, &prefix, |mut c| async move {
                c.get(
                    p,
                    Some(
                        GetOptions::new()
                            .with_prefix()
                            .with_keys_only()
                            .with_sort(SortTarget::Create, SortOrder::Ascend),
                    ),
                )
                .await
            })
            .await?;
        let revision = resp.header().map_or(0, |h| h.revision());
        let mut listing = Self::listing(&prefix, resp.kvs());
        // The range lists keys only: read each contender's data (one get each; only where
        // another implementation shares the prefix). One gone meanwhile is no contender.
        let mut contenders = Vec::with_capacity(listing.contenders.len());
        for mut c in std::mem::take(&mut listing.contenders) {
            let key = format!("{prefix}{}", c.name);
            let k = key.clone();
            let resp = self
                .run("read contender", &key, |mut cl| async move {
                    cl.get(k, None).await
                })
                .await?;
            if let Some(kv) = resp
                .kvs()
                .first()
                .filter(|kv| kv.create_revision() as u64 == c.sequence)
            {
                // Shown, never trusted: no more than the limit is copied.
                let value = kv.value();
                if value.len() > MAX_FOREIGN_DATA_LEN {
                    let len = value.len();
                    tracing::warn!(key = %key, len, "oversized contender data cut");
                }
                c.data = value[..value.len().min(MAX_FOREIGN_DATA_LEN)].to_vec();
                contenders.push(c);
            }
        }
        listing.contenders = contenders;
        Ok((listing, revision))
    }
}

#[async_trait]
impl BackendSession for EtcdSession {
    fn id(&self) -> SessionId {
        self.id
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn state(&self) -> watch::Receiver<SessionState> {
        self.live.subscribe()
    }

    /// One transaction: when the entry's key does not exist, put it with the lease, and put the
    /// directory's own key (`{namespace}{dir}`, empty, without lease) when that is missing, so
    /// that the directory can be deleted as on ZooKeeper. Ancestors get no key: etcd has no
    /// directories.
    async fn create(
        &self,
        dir: &ElectionPath,
        marker: &Marker,
        data: &[u8],
    ) -> Result<EntryInfo, BackendError> {
        election_core::limits::check_data_len(data, MAX_DATA_LEN)?;
        let name = EntryName::format(marker, self.id);
        let key = self.entry_key(dir, &name)?;
        let dir_key = self.settings.key(dir.as_str());
        let lease = self.lease;
        let (k, v) = (key.clone(), data.to_vec());
        let resp = self
            .run("create", &key, |mut c| async move {
                let mark_dir = Txn::new()
                    .when([Compare::create_revision(
                        dir_key.clone(),
                        CompareOp::Equal,
                        0,
                    )])
                    .and_then([TxnOp::put(dir_key, Vec::new(), None)]);
                let txn = Txn::new()
                    .when([Compare::create_revision(k.clone(), CompareOp::Equal, 0)])
                    .and_then([
                        TxnOp::put(k, v, Some(PutOptions::new().with_lease(lease))),
                        TxnOp::txn(mark_dir),
                    ]);
                c.txn(txn).await
            })
            .await?;
        if !resp.succeeded() {
            return Err(BackendError::new(
                ErrorKind::AlreadyExists,
                format!("create {key}: the key exists"),
            ));
        }
        let revision = resp.header().map_or(0, |h| h.revision());
        tracing::debug!(session = %self.id, key, revision, "entry created");
        Ok(EntryInfo {
            name,
            sequence: revision as u64,
            owner: self.id,
            marker: marker.clone(),
            token: FencingToken(revision as u64),
            data: data.to_vec(),
            // A create in a txn with no revision bound cannot tell that the prefix was empty.
            sole: false,
        })
    }

    async fn list(&self, dir: &ElectionPath) -> Result<Listing, BackendError> {
        Ok(self.range("list", dir).await?.0)
    }

    /// A range, then a watch on the prefix from the revision after it: fires on the first
    /// key created or deleted there (a data change does not fire it), and also, so that the
    /// caller lists again, when the watch cannot go on (compacted, cancelled, the stream lost).
    async fn list_and_watch(
        &self,
        dir: &ElectionPath,
    ) -> Result<(Listing, Notification), BackendError> {
        let (listing, revision) = self.range("list and watch", dir).await?;
        let prefix = self.dir_prefix(dir);
        let mut client = self.open()?;
        let mut state = self.live.subscribe();
        let id = self.id;
        let notification = Box::pin(async move {
            let watched = async {
                let options = WatchOptions::new()
                    .with_prefix()
                    .with_start_revision(revision + 1);
                let mut stream = client.watch(prefix.clone(), Some(options)).await?;
                while let Some(resp) = stream.message().await? {
                    if resp.canceled() || resp.compact_revision() > 0 {
                        break;
                    }
                    let changed = resp.events().iter().any(|ev| match ev.event_type() {
                        EventType::Delete => true,
                        EventType::Put => ev.kv().is_some_and(|kv| kv.version() == 1),
                    });
                    if changed {
                        break;
                    }
                }
                Ok::<(), etcd_client::Error>(())
            };
            tokio::select! {
                biased;
                _ = ended(&mut state) => Err(BackendError::new(ErrorKind::SessionGone, "session ended")),
                r = watched => {
                    if let Err(e) = r {
                        tracing::debug!(session = %id, prefix, error = %e, "prefix watch lost: list again");
                    }
                    Ok(())
                }
            }
        });
        Ok((listing, notification))
    }

    async fn watch_gone(&self, dir: &ElectionPath, name: &str) -> Result<Watch, BackendError> {
        let key = self.entry_key(dir, name)?;
        let claimed = EntryName::parse(name).map(|n| n.owner);
        let k = key.clone();
        let resp = self
            .run("watch", &key, |mut c| async move { c.get(k, None).await })
            .await?;
        let Some(kv) = resp.kvs().first() else {
            return Ok(Watch::Gone);
        };
        // An entry's name claims its lease; a foreign contender's does not (only the lack of
        // a lease makes it a look-alike).
        if kv.lease() == 0 || claimed.is_some_and(|c| c != SessionId(kv.lease() as u64)) {
            return Ok(Watch::NotAnEntry);
        }
        let found = Found {
            key,
            create_revision: kv.create_revision(),
            from: resp.header().map_or(0, |h| h.revision()) + 1,
        };
        let client = self.open()?;
        let state = self.live.subscribe();
        let (id, timeout) = (self.id, self.timeout);
        Ok(Watch::Armed(Box::pin(wait_gone(
            client, found, state, id, timeout,
        ))))
    }

    async fn read(
        &self,
        dir: &ElectionPath,
        name: &str,
    ) -> Result<Option<EntryInfo>, BackendError> {
        let Some(parsed) = EntryName::parse(name) else {
            return Err(BackendError::new(
                ErrorKind::Invalid,
                format!("{name:?} is not an election entry name"),
            ));
        };
        let key = self.entry_key(dir, name)?;
        let k = key.clone();
        let resp = self
            .run("read", &key, |mut c| async move { c.get(k, None).await })
            .await?;
        Ok(resp.kvs().first().map(|kv| EntryInfo {
            name: name.to_owned(),
            sequence: kv.create_revision() as u64,
            // The server's record of the lease, not the name's claim.
            owner: SessionId(kv.lease() as u64),
            marker: parsed.marker,
            token: FencingToken(kv.create_revision() as u64),
            // More than any record of ours is foreign: one byte past the limit tells the
            // decoder so.
            data: kv.value()[..kv.value().len().min(MAX_RECORD_LEN + 1)].to_vec(),
            sole: false,
        }))
    }

    /// Deletes exactly the key `{namespace}{dir}/{name}` (an entry, or the key a directory
    /// got when its first entry was created).
    async fn delete(&self, dir: &ElectionPath, name: &str) -> Result<(), BackendError> {
        let key = self.entry_key(dir, name)?;
        let k = key.clone();
        let resp = self
            .run(
                "delete",
                &key,
                |mut c| async move { c.delete(k, None).await },
            )
            .await?;
        if resp.deleted() == 0 {
            return Err(BackendError::new(
                ErrorKind::NotFound,
                format!("delete {key}: no such key"),
            ));
        }
        Ok(())
    }

    async fn close(&self) {
        let keeper = self.keeper.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some(keeper) = keeper else {
            return;
        };
        keeper.abort();
        let _ = keeper.await;
        if !self.live.current().is_terminal() {
            let mut lease = self.client.lease_client();
            match tokio::time::timeout(self.timeout, lease.revoke(self.lease)).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) if classify(&e) == ErrorKind::SessionGone => {}
                Ok(Err(e)) => {
                    tracing::warn!(session = %self.id, error = %e, "lease not revoked; it will expire");
                }
                Err(_) => tracing::warn!(
                    session = %self.id,
                    "lease revoke not answered within the TTL; it will expire"
                ),
            }
        }
        self.live.publish(SessionState::Closed, "closed");
    }
}

impl Drop for EtcdSession {
    fn drop(&mut self) {
        if let Some(keeper) = self
            .keeper
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            keeper.abort();
        }
        self.live.publish(SessionState::Closed, "dropped");
    }
}

/// An entry a `watch_gone` found: its key, its create revision and the revision to watch from.
struct Found {
    key: String,
    create_revision: i64,
    from: i64,
}

/// What one watch stream ended with.
enum Seen {
    /// The entry was deleted (or replaced by another key of the same name).
    Gone,
    /// The watch cannot go on from where it was (compacted, cancelled, the stream lost): read
    /// the key again and watch from the revision of that read.
    ReadAgain,
}

/// Waits until the entry `found` is gone, or the session is over.
async fn wait_gone(
    client: Client,
    mut found: Found,
    mut state: watch::Receiver<SessionState>,
    id: SessionId,
    timeout: Duration,
) -> Result<(), BackendError> {
    let session_gone = || BackendError::new(ErrorKind::SessionGone, "session ended");
    let retry = timeout / 6;
    loop {
        let watched = watch_once(client.clone(), &found);
        let seen = tokio::select! {
            biased;
            _ = ended(&mut state) => return Err(session_gone()),
            seen = watched => seen,
        };
        match seen {
            Ok(Seen::Gone) => return Ok(()),
            Ok(Seen::ReadAgain) => {}
            Err(e) => {
                tracing::debug!(session = %id, key = found.key, error = %e, "entry watch lost: reading again");
            }
        }
        // Read again, until a read succeeds: it tells whether the entry went meanwhile.
        loop {
            let mut c = client.clone();
            let read = tokio::time::timeout(timeout, c.get(found.key.clone(), None));
            let read = tokio::select! {
                biased;
                _ = ended(&mut state) => return Err(session_gone()),
                read = read => read,
            };
            match read {
                Ok(Ok(resp)) => {
                    match resp.kvs().first() {
                        Some(kv) if kv.create_revision() == found.create_revision => {}
                        _ => return Ok(()),
                    }
                    found.from = resp.header().map_or(0, |h| h.revision()) + 1;
                    break;
                }
                _ => {
                    tokio::select! {
                        biased;
                        _ = ended(&mut state) => return Err(session_gone()),
                        _ = sleep(retry) => {}
                    }
                }
            }
        }
    }
}

/// One watch stream on the entry's key from `found.from`. Its first message is the creation
/// acknowledgement; the delete comes in a later one.
async fn watch_once(mut client: Client, found: &Found) -> Result<Seen, etcd_client::Error> {
    let options = WatchOptions::new().with_start_revision(found.from);
    let mut stream = client.watch(found.key.clone(), Some(options)).await?;
    while let Some(resp) = stream.message().await? {
        if resp.compact_revision() > 0 || resp.canceled() {
            return Ok(Seen::ReadAgain);
        }
        for ev in resp.events() {
            match ev.event_type() {
                EventType::Delete => return Ok(Seen::Gone),
                EventType::Put => {
                    if ev
                        .kv()
                        .is_some_and(|kv| kv.create_revision() != found.create_revision)
                    {
                        return Ok(Seen::Gone);
                    }
                }
            }
        }
    }
    Ok(Seen::ReadAgain)
}

/// The keep-alive task: one stream at a time, a keep-alive every period, answers paired with
/// their send instants in order (see [`crate::liveness`]).
async fn keep_alive(client: Client, lease: i64, live: Arc<Liveness>) {
    let period = live.period();
    let check = period / 2;
    let mut suspend = SuspendDetector::new();
    loop {
        if live.current().is_terminal() {
            return;
        }
        // Opening the stream sends one keep-alive and waits for its answer.
        let sent = Instant::now();
        let mut lc = client.lease_client();
        let opened = tokio::select! {
            opened = tokio::time::timeout(period * 2, lc.keep_alive(lease)) => opened,
            _ = checking(&live, check, &mut suspend) => unreachable!("checking never ends"),
        };
        let (mut keeper, mut stream) = match opened {
            Ok(Ok(pair)) => {
                live.record_proof(sent);
                pair
            }
            Ok(Err(e)) => {
                if classify(&e) == ErrorKind::SessionGone {
                    live.publish(SessionState::Expired, "keep-alive: lease not found");
                    return;
                }
                tracing::debug!(lease, error = %e, "keep-alive stream not opened; retrying");
                tokio::select! {
                    _ = sleep(check) => {}
                    _ = checking(&live, check, &mut suspend) => {}
                }
                continue;
            }
            Err(_) => continue,
        };
        let mut pending: VecDeque<Instant> = VecDeque::new();
        let mut tick = tokio::time::interval_at(Instant::now() + period, period);
        let mut silence_check = tokio::time::interval(check);
        loop {
            tokio::select! {
                biased;
                answer = stream.message() => match answer {
                    Ok(Some(resp)) => {
                        let Some(sent) = pending.pop_front() else {
                            tracing::warn!(lease, "keep-alive answer without a request; reopening");
                            break;
                        };
                        if resp.ttl() <= 0 {
                            live.publish(SessionState::Expired, "keep-alive: lease not found");
                            return;
                        }
                        live.record_proof(sent);
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::debug!(lease, error = %e, "keep-alive stream failed; reopening");
                        break;
                    }
                },
                _ = tick.tick() => {
                    if pending.len() >= MAX_PENDING_KEEP_ALIVES {
                        break;
                    }
                    pending.push_back(Instant::now());
                    if !matches!(tokio::time::timeout(period, keeper.keep_alive()).await, Ok(Ok(()))) {
                        break;
                    }
                }
                _ = silence_check.tick() => {
                    if let Some(unseen) = suspend.check() {
                        // The pending send instants are as stale: drop them with the stream.
                        live.suspended(unseen);
                        break;
                    }
                    live.check_silence();
                }
            }
        }
    }
}

/// Checks the clocks and the silence every `every`, for ever.
async fn checking(live: &Liveness, every: Duration, suspend: &mut SuspendDetector) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        if let Some(unseen) = suspend.check() {
            live.suspended(unseen);
        }
        live.check_silence();
    }
}
