//! [`ZkSession`]: one ZooKeeper session (one `zookeeper_client::Client`) and the election
//! primitives on it.
//!
//! Every request is bounded by the session timeout (a request made while disconnected is queued
//! by the client until it reconnects; past the bound it fails with `OutcomeUnknown`), and every
//! server reply is recorded as contact (see [`crate::liveness`]).

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use election_core::limits::{cap_data, check_data_len, MAX_FOREIGN_DATA_LEN, MAX_RECORD_LEN};
use election_core::metrics::HANDOVER_TARGET;
use election_core::{
    BackendError, BackendSession, Compatibility, Confirmation, ElectionPath, EntryInfo, ErrorKind,
    FencingToken, ListedContender, ListedEntry, Listing, Marker, Notification, SessionId,
    SessionState, Watch,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use zookeeper_client as zk;

use crate::backend::{NodeAcl, Settings};
use crate::error::backend_error;
use crate::liveness::Liveness;
use crate::names::EntryName;
use crate::watch::{self as notify, ClientSlot};

/// Largest entry data this backend sends. ZooKeeper's `jute.maxbuffer` is 1 MiB for the whole
/// packet; an oversized request makes the server drop the connection, which would look like a
/// lost reply, so it is refused here as `Invalid` instead.
pub const MAX_DATA_LEN: usize = 1_000_000;

/// Attempts at a create whose directory vanished (`NoNode`) before giving up, besides one per
/// missing ancestor.
const CREATE_ATTEMPTS: usize = 3;
/// Attempts at `list_and_watch` when the directory appears or vanishes between the two requests.
const LIST_WATCH_ATTEMPTS: usize = 3;

/// One ZooKeeper session. Made by [`ZkBackend`](crate::ZkBackend) through
/// [`CoordinationBackend::open_session`](election_core::CoordinationBackend::open_session).
///
/// Dropping it closes the session without waiting (the server then deletes its entries); call
/// [`close`](BackendSession::close) to wait for that.
pub struct ZkSession {
    id: SessionId,
    timeout: Duration,
    settings: Arc<Settings>,
    client: Arc<ClientSlot>,
    live: Arc<Liveness>,
    monitor: Mutex<Option<JoinHandle<()>>>,
    /// Exists watches on our own new entries, set by the read of their token after a `multi`
    /// (whose create answers with no stat on ZooKeeper 3.8, ZOOKEEPER-4026) and kept for the
    /// watch on its own entry that the candidate asks for next ([`BackendSession::watch_gone`]),
    /// which then costs no request. By entry path; taken by the first watch on that path,
    /// dropped with the entry or the session.
    armed: Mutex<std::collections::HashMap<String, zk::OneshotWatcher>>,
    /// The election directories' data as a confirming `multiRead` last read it (a leader note,
    /// or empty; `None` for data of someone else's) and its version, by directory path: the
    /// leader note written right after the claim it confirmed then needs no read of its own.
    /// By the path of the entry confirmed; taken by its note, dropped with the entry or the
    /// session.
    dir_seen: Mutex<std::collections::HashMap<String, DirSeen>>,
}

/// An election directory's data as a confirmation read it (`None`: data of someone else's, not
/// a leader note), and its version.
type DirSeen = (Option<Vec<u8>>, i32);

/// How a `multi` creating an election's directory and its entry ended.
enum WithDir {
    Created {
        name: String,
        czxid: i64,
    },
    /// The directory exists (made meanwhile): nothing was created.
    DirExists,
    /// The directory's parent is missing: nothing was created.
    ParentMissing,
    /// The directory's create was refused (`NoAuth` under a parent that denies CREATE, ...).
    DirRefused(BackendError),
}

impl std::fmt::Debug for ZkSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZkSession")
            .field("id", &self.id)
            .field("timeout", &self.timeout)
            .field("state", &self.live.current())
            .finish()
    }
}

impl ZkSession {
    /// Wraps a connected client whose session was created after `created` and confirmed by a
    /// `sync` sent at `confirmed`, and starts its monitor task.
    pub(crate) fn start(
        client: zk::Client,
        settings: Arc<Settings>,
        created: Instant,
        confirmed: Instant,
    ) -> Self {
        let id = SessionId(client.session_id().0 as u64);
        let timeout = client.session_timeout();
        let margin = settings.leader_lag_margin(timeout);
        let live = Arc::new(Liveness::new(id, timeout, margin, created, confirmed));
        let monitor = tokio::spawn(crate::liveness::monitor(client.clone(), live.clone()));
        tracing::info!(
            session = %id,
            timeout_ms = timeout.as_millis() as u64,
            margin_ms = margin.as_millis() as u64,
            keep_alive_ms = live.period().as_millis() as u64,
            "zookeeper session opened"
        );
        Self {
            id,
            timeout,
            settings,
            client: Arc::new(Mutex::new(Some(client))),
            live,
            monitor: Mutex::new(Some(monitor)),
            armed: Mutex::new(std::collections::HashMap::new()),
            dir_seen: Mutex::new(std::collections::HashMap::new()),
        }
    }

    fn armed(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, zk::OneshotWatcher>> {
        self.armed.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drops what is kept for our entry at `path` (its armed watch, its directory as its
    /// confirmation read it), as the entry is given up.
    fn forget(&self, path: &str) {
        self.armed().remove(path);
        self.dir_seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(path);
    }

    /// The token (`czxid`) of our entry at `path`, just created by a `multi` whose answer had
    /// no stat, read with an exists watch that is kept for the candidate's own-entry watch.
    /// `None`: gone already (its session ended, or someone deleted it).
    async fn token_read(&self, path: &str) -> Result<Option<i64>, BackendError> {
        let armed = self
            .request("exists", path, |client| async move {
                client.check_and_watch_stat(path).await
            })
            .await?;
        Ok(match armed {
            (Some(stat), watcher) => {
                self.armed().insert(path.to_owned(), watcher);
                Some(stat.czxid)
            }
            // Dropping the watcher removes the creation watch the client set.
            (None, _) => None,
        })
    }

    fn client(&self) -> Result<zk::Client, BackendError> {
        self.client
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| BackendError::new(ErrorKind::SessionGone, "the session is closed"))
    }

    fn absolute(&self, path: &str) -> String {
        self.settings.connect.absolute(path)
    }

    fn entry_path(&self, dir: &ElectionPath, name: &str) -> Result<String, BackendError> {
        if name.is_empty() || name.contains('/') {
            return Err(BackendError::new(
                ErrorKind::Invalid,
                format!("{name:?} is not an entry name"),
            ));
        }
        Ok(format!("{}/{name}", self.absolute(dir.as_str())))
    }

    /// Runs one read (answered by the member the client is connected to, so no proof of
    /// contact; see [`crate::liveness`]), bounded by the session timeout, recording a
    /// `SessionExpired` as the end of the session.
    async fn request<T, F, Fut>(&self, op: &str, path: &str, f: F) -> Result<T, BackendError>
    where
        F: FnOnce(zk::Client) -> Fut,
        Fut: Future<Output = Result<T, zk::Error>>,
    {
        self.run(op, path, false, f).await
    }

    /// Runs one write: as [`request`](Self::request), and its success, which passed through the
    /// ZooKeeper leader, is a proof of contact at the instant it was sent.
    async fn write<T, F, Fut>(&self, op: &str, path: &str, f: F) -> Result<T, BackendError>
    where
        F: FnOnce(zk::Client) -> Fut,
        Fut: Future<Output = Result<T, zk::Error>>,
    {
        self.run(op, path, true, f).await
    }

    async fn run<T, F, Fut>(
        &self,
        op: &str,
        path: &str,
        proves: bool,
        f: F,
    ) -> Result<T, BackendError>
    where
        F: FnOnce(zk::Client) -> Fut,
        Fut: Future<Output = Result<T, zk::Error>>,
    {
        let client = self.client()?;
        let sent_at = Instant::now();
        match tokio::time::timeout(self.timeout, f(client)).await {
            Ok(Ok(value)) => {
                if proves {
                    self.live.record_proof(sent_at);
                }
                Ok(value)
            }
            Ok(Err(e)) => {
                match e {
                    zk::Error::SessionExpired => {
                        self.live
                            .publish(SessionState::Expired, "request: session expired");
                    }
                    zk::Error::AuthFailed | zk::Error::ClientClosed => {
                        self.live
                            .publish(SessionState::Closed, "request: client closed");
                    }
                    _ => {}
                }
                tracing::debug!(session = %self.id, op, path, error = %e, "zookeeper request failed");
                Err(backend_error(op, path, e))
            }
            Err(_) => Err(BackendError::new(
                ErrorKind::OutcomeUnknown,
                format!(
                    "{op} {path}: no reply within the session timeout of {:?}",
                    self.timeout
                ),
            )),
        }
    }

    /// Creates the missing ones among `path` and its ancestors, as persistent nodes.
    ///
    /// Only what is missing (as Curator's `mkdirs`): ZooKeeper checks the parent's ACL before it
    /// checks for existence, so a create of an ancestor that exists under a parent that denies
    /// CREATE (an administrator's read-only `/svc` holding a provisioned `/svc/app`) answers
    /// `NoAuth`, not `NodeExists`. Two round trips: every existence check is sent before the
    /// first reply is awaited, then every create of a missing node (the client sends in call
    /// order and the server applies one session's requests in order).
    async fn create_parents(&self, path: &str) -> Result<(), BackendError> {
        let ancestors = ancestors(path);
        let acl = self.settings.acl;
        self.request("create parents", path, |client| async move {
            let checks: Vec<_> = ancestors.iter().map(|p| client.check_stat(p)).collect();
            let mut missing = Vec::new();
            for (p, check) in ancestors.iter().zip(checks) {
                if check.await?.is_none() {
                    missing.push(*p);
                }
            }
            let options = acl.options(zk::CreateMode::Persistent);
            let pending: Vec<_> = missing
                .iter()
                .map(|p| client.create(p, &[], &options))
                .collect();
            let mut first_error = None;
            for reply in pending {
                match reply.await {
                    Ok(_) | Err(zk::Error::NodeExists) => {}
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
            first_error.map_or(Ok(()), Err)
        })
        .await
    }

    /// A `NoAuth` on creating `node` (or its missing ancestors), explained: which node refused
    /// (the nearest existing ancestor, where ZooKeeper checked CREATE), its ACL, and who this
    /// backend authenticates as. Other errors are returned as they are.
    async fn explain_refusal(&self, node: &str, e: BackendError) -> BackendError {
        if e.kind() != ErrorKind::NotPermitted {
            return e;
        }
        let Ok(client) = self.client() else {
            return e;
        };
        let mut detail = String::from("the refusing node could not be found");
        let mut cur = node.rfind('/').map(|i| &node[..i]);
        while let Some(p) = cur.filter(|p| !p.is_empty()) {
            match tokio::time::timeout(self.timeout, client.get_acl(p)).await {
                Ok(Ok((acls, _))) => {
                    let acls: Vec<String> = acls
                        .iter()
                        .map(|a| format!("{}:{}={}", a.scheme(), a.id(), a.permission()))
                        .collect();
                    detail = format!("{p} refused, with ACL [{}]", acls.join(", "));
                    break;
                }
                Ok(Err(zk::Error::NoNode)) => cur = p.rfind('/').map(|i| &p[..i]),
                Ok(Err(err)) => {
                    detail = format!(
                        "{p} refused, with an ACL this identity cannot even read ({err}): \
                         another identity's, such as its creator's with NodeAcl::CreatorAll"
                    );
                    break;
                }
                Err(_) => break,
            }
        }
        let who = match self.settings.identity() {
            (mechanism, Some(user)) => format!("{mechanism} user {user:?}"),
            (_, None) => "no identity (world:anyone)".to_owned(),
        };
        tracing::error!(session = %self.id, node, detail = %detail, who = %who, "zookeeper refused to create an election entry");
        BackendError::with_source(
            ErrorKind::NotPermitted,
            format!(
                "create {node}: {detail}; this backend authenticates as {who} \
                 with node ACL {:?}. Every candidate of an election needs CREATE, DELETE and READ \
                 on its directory (with NodeAcl::CreatorAll or CreatorAllAnyoneRead, all must \
                 use the same identity)",
                self.settings.acl
            ),
            e,
        )
    }

    /// Our entry `name` in `dir_path`, just created with `marker`, `czxid` and `data`. Sole
    /// when its sequence number is 0: the directory had no child before (ZooKeeper numbers a
    /// sequential node by its parent's `cversion`, which every child's create and delete raise:
    /// a create after a delete in the same directory never gets 0).
    fn created(
        &self,
        dir_path: &str,
        name: String,
        marker: &Marker,
        czxid: i64,
        data: &[u8],
    ) -> Result<EntryInfo, BackendError> {
        let parsed = EntryName::parse(&name).ok_or_else(|| {
            BackendError::new(
                ErrorKind::Other,
                format!("created {dir_path}/{name}, a name this backend cannot read"),
            )
        })?;
        Ok(EntryInfo {
            name,
            sequence: parsed.sequence,
            owner: self.id,
            marker: marker.clone(),
            token: FencingToken(czxid as u64),
            data: data.to_vec(),
            sole: parsed.sequence == 0,
        })
    }

    /// The directory `dir_path` and the entry `entry_prefix` (ephemeral, sequential) in it, in
    /// one `multi`: both or neither. The entry's token is read back when the answer has no stat
    /// (ZooKeeper 3.8, ZOOKEEPER-4026), with the watch the candidate asks for next.
    async fn create_with_dir(
        &self,
        dir_path: &str,
        entry_prefix: &str,
        data: &[u8],
    ) -> Result<WithDir, BackendError> {
        let acl = self.settings.acl;
        let outcome = self
            .write("create", entry_prefix, |client| async move {
                let dir_options = acl.options(zk::CreateMode::Persistent);
                let options = acl.options(zk::CreateMode::EphemeralSequential);
                let mut multi = client.new_multi_writer();
                multi.add_create(dir_path, &[], &dir_options)?;
                multi.add_create(entry_prefix, data, &options)?;
                match multi.commit().await {
                    Ok(results) => Ok(Ok(results)),
                    Err(zk::MultiWriteError::OperationFailed { index, source }) => {
                        Ok(Err((index, source)))
                    }
                    Err(zk::MultiWriteError::RequestFailed { source }) => Err(source),
                }
            })
            .await?;
        let results = match outcome {
            Ok(results) => results,
            Err((0, zk::Error::NodeExists)) => return Ok(WithDir::DirExists),
            Err((0, zk::Error::NoNode)) => return Ok(WithDir::ParentMissing),
            Err((0, e)) => return Ok(WithDir::DirRefused(backend_error("create", dir_path, e))),
            Err((_, e)) => return Err(backend_error("create", entry_prefix, e)),
        };
        // ZooKeeper 3.8 answers a create inside a `multi` with no stat (ZOOKEEPER-4026): the
        // token is then read back, with the watch the candidate asks for next
        // ([`token_read`](Self::token_read)).
        let Some(zk::MultiWriteResult::Create { path, stat }) = results.into_iter().nth(1) else {
            return Err(BackendError::new(
                ErrorKind::OutcomeUnknown,
                format!("create {entry_prefix}: the multi's answer has no create"),
            ));
        };
        let name = path.rsplit('/').next().unwrap_or(path.as_str()).to_owned();
        let czxid = if stat.is_invalid() {
            match self.token_read(&path).await? {
                Some(czxid) => czxid,
                // Gone at once (its session ended, or it was deleted): the caller looks the
                // marker up (nothing found: none created).
                None => {
                    return Err(BackendError::new(
                        ErrorKind::OutcomeUnknown,
                        format!("create {path}: created, then gone before its token could be read"),
                    ))
                }
            }
        } else {
            stat.czxid
        };
        Ok(WithDir::Created { name, czxid })
    }

    /// Creates our entry with `marker`, in our own shape or `mode`'s.
    async fn create_named(
        &self,
        dir: &ElectionPath,
        marker: &Marker,
        mode: Option<Compatibility>,
        data: &[u8],
    ) -> Result<EntryInfo, BackendError> {
        check_data_len(data, MAX_DATA_LEN)?;
        let dir_path = self.absolute(dir.as_str());
        let prefix = EntryName::prefix_in(marker, self.id, mode);
        let path = format!("{dir_path}/{prefix}");
        let acl = self.settings.acl;
        // Optimistic: the directory usually exists, so try the entry first (one round trip).
        // When the server says it is missing, create the directory and the entry in one
        // `multi`; when the directory's own parent is missing too, send the creates of every
        // ancestor and of the entry back to back, with no existence checks (the client sends in
        // call order and the server applies one session's requests in order: one round trip).
        // Only the entry's reply decides: an ancestor that exists answers `NodeExists` (or
        // `NoAuth` under a parent that denies CREATE, issue 17), which does not matter once the
        // entry is created. When the entry still cannot be created and an ancestor was refused,
        // fall back to creating only the missing ancestors, after existence checks, to say which
        // node refused. `NoNode` on the entry is a definite "not applied", so retrying after it
        // cannot make a second entry.
        let ancestors = ancestors(&dir_path);
        let p = &path;
        // How many of the nearest ancestors (the directory first) go before the entry.
        let mut depth = 0;
        let mut checked = false;
        for _ in 0..CREATE_ATTEMPTS + ancestors.len() {
            // Only the directory is missing (the usual case of a new election): create it and
            // the entry in one `multi`, one request where two creates would be two.
            if depth == 1 {
                match self.create_with_dir(&dir_path, p, data).await {
                    Ok(WithDir::Created { name, czxid }) => {
                        tracing::debug!(session = %self.id, path = %dir_path, name, czxid, "directory and entry created");
                        return self.created(&dir_path, name, marker, czxid, data);
                    }
                    // Made by someone else meanwhile: the entry alone again.
                    Ok(WithDir::DirExists) => depth = 0,
                    // Its parent is missing too: every ancestor, back to back.
                    Ok(WithDir::ParentMissing) => depth = ancestors.len(),
                    Ok(WithDir::DirRefused(refused)) => {
                        if checked {
                            return Err(self.explain_refusal(p, refused).await);
                        }
                        checked = true;
                        depth = 0;
                        if let Err(e) = self.create_parents(&dir_path).await {
                            return Err(self.explain_refusal(p, e).await);
                        }
                    }
                    Err(e) => return Err(self.explain_refusal(p, e).await),
                }
                continue;
            }
            let made = Mutex::new(Vec::new());
            let made_ref = &made;
            let chain = &ancestors[ancestors.len() - depth..];
            let created = self
                .write("create", p, |client| async move {
                    let dir_options = acl.options(zk::CreateMode::Persistent);
                    // Sent before any reply is awaited, top-most ancestor first.
                    let dirs: Vec<_> = chain
                        .iter()
                        .map(|d| client.create(d, &[], &dir_options))
                        .collect();
                    let options = acl.options(zk::CreateMode::EphemeralSequential);
                    let entry = client.create(p, data, &options);
                    let mut outcomes = Vec::with_capacity(dirs.len());
                    for d in dirs {
                        outcomes.push(d.await.map(|_| ()));
                    }
                    *made_ref.lock().unwrap_or_else(|e| e.into_inner()) = outcomes;
                    entry.await
                })
                .await;
            let made = made.into_inner().unwrap_or_else(|e| e.into_inner());
            match created {
                Ok((stat, sequence)) => {
                    let name = format!("{prefix}{sequence}");
                    tracing::debug!(session = %self.id, path = %dir_path, name, czxid = stat.czxid, "entry created");
                    return self.created(&dir_path, name, marker, stat.czxid, data);
                }
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    let top_missing = matches!(made.first(), None | Some(Err(zk::Error::NoNode)));
                    let refusal = chain.iter().zip(made).find(|(_, r)| {
                        !matches!(r, Ok(()) | Err(zk::Error::NodeExists | zk::Error::NoNode))
                    });
                    match refusal {
                        Some((node, Err(refused))) => {
                            let refused = backend_error("create", node, refused);
                            if checked {
                                return Err(self.explain_refusal(p, refused).await);
                            }
                            // Create only what is missing, after checking, then the entry alone.
                            checked = true;
                            depth = 0;
                            if let Err(e) = self.create_parents(&dir_path).await {
                                return Err(self.explain_refusal(p, e).await);
                            }
                        }
                        // The directory is missing: create it first. Its parent is missing
                        // too: create every ancestor first (an existing one answers
                        // `NodeExists`), rather than one level more per round trip.
                        _ if top_missing && depth < ancestors.len() => {
                            depth = if depth == 0 { 1 } else { ancestors.len() };
                        }
                        // Created, and deleted again before the entry came (or nothing more to
                        // create): the same again.
                        _ => {}
                    }
                }
                Err(e) => return Err(self.explain_refusal(p, e).await),
            }
        }
        Err(BackendError::new(
            ErrorKind::NotFound,
            format!("create {path}: the election directory keeps vanishing"),
        ))
    }

    /// Sorts `children` into entries, foreign contenders (a name ending in a ZooKeeper
    /// sequence: read for their data and owner, one `getData` each) and foreign names.
    async fn listing(
        &self,
        dir_path: &str,
        children: Vec<String>,
    ) -> Result<Listing, BackendError> {
        let mut listing = Listing::default();
        listing.entries.reserve(children.len());
        for child in children {
            match EntryName::parse(&child) {
                Some(entry) => listing.entries.push(ListedEntry {
                    name: child,
                    sequence: entry.sequence,
                    owner: entry.owner,
                    marker: entry.marker,
                }),
                None => match election_core::foreign::zookeeper_sequence(&child) {
                    Some(sequence) => {
                        let path = format!("{dir_path}/{child}");
                        let p = &path;
                        let read = self
                            .request("read contender", p, |client| async move {
                                match client.get_data(p).await {
                                    Ok(found) => Ok(Some(found)),
                                    Err(zk::Error::NoNode) => Ok(None),
                                    Err(e) => Err(e),
                                }
                            })
                            .await?;
                        // Gone since the listing: no longer a contender.
                        if let Some((mut data, stat)) = read {
                            // Shown, never trusted: keep no more than the limit.
                            if let Some(len) = cap_data(&mut data, MAX_FOREIGN_DATA_LEN) {
                                tracing::warn!(path = %path, len, "oversized contender data cut");
                            }
                            listing.contenders.push(ListedContender {
                                name: child,
                                sequence,
                                owner: SessionId(stat.ephemeral_owner as u64),
                                token: FencingToken(stat.czxid as u64),
                                data,
                            });
                        }
                    }
                    None => listing.push_foreign(&child),
                },
            }
        }
        listing
            .entries
            .sort_unstable_by(|a, b| (a.sequence, &a.name).cmp(&(b.sequence, &b.name)));
        listing
            .contenders
            .sort_by(|a, b| (a.sequence, &a.name).cmp(&(b.sequence, &b.name)));
        Ok(listing)
    }
}

#[async_trait]
impl BackendSession for ZkSession {
    fn id(&self) -> SessionId {
        self.id
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn state(&self) -> watch::Receiver<SessionState> {
        self.live.subscribe()
    }

    async fn create(
        &self,
        dir: &ElectionPath,
        marker: &Marker,
        data: &[u8],
    ) -> Result<EntryInfo, BackendError> {
        self.create_named(dir, marker, None, data).await
    }

    async fn create_compatible(
        &self,
        dir: &ElectionPath,
        marker: &Marker,
        mode: Compatibility,
        data: &[u8],
    ) -> Result<EntryInfo, BackendError> {
        self.create_named(dir, marker, Some(mode), data).await
    }

    async fn list(&self, dir: &ElectionPath) -> Result<Listing, BackendError> {
        let path = self.absolute(dir.as_str());
        let p = &path;
        let children = self
            .request("list", p, |client| async move {
                match client.get_children(p).await {
                    Ok((children, _)) => Ok(children),
                    Err(zk::Error::NoNode) => Ok(Vec::new()),
                    Err(e) => Err(e),
                }
            })
            .await?;
        self.listing(&path, children).await
    }

    async fn list_and_watch(
        &self,
        dir: &ElectionPath,
    ) -> Result<(Listing, Notification), BackendError> {
        let path = self.absolute(dir.as_str());
        for _ in 0..LIST_WATCH_ATTEMPTS {
            let p = &path;
            let listed = self
                .request("list and watch", p, |client| async move {
                    match client.get_and_watch_children(p).await {
                        Ok((children, _, watcher)) => Ok(Some((children, watcher))),
                        Err(zk::Error::NoNode) => Ok(None),
                        Err(e) => Err(e),
                    }
                })
                .await?;
            if let Some((children, watcher)) = listed {
                let notification = notify::on_any_change(watcher, path.clone());
                return Ok((self.listing(&path, children).await?, notification));
            }
            // No directory: watch for its creation instead.
            let watched = self
                .request("watch creation of", p, |client| async move {
                    let (stat, watcher) = client.check_and_watch_stat(p).await?;
                    Ok(stat.is_none().then_some(watcher))
                })
                .await?;
            if let Some(watcher) = watched {
                let notification = notify::on_any_change(watcher, path.clone());
                return Ok((Listing::default(), notification));
            }
            // Created in between: list it.
        }
        Err(BackendError::new(
            ErrorKind::Other,
            format!("list and watch {path}: the directory keeps appearing and vanishing"),
        ))
    }

    async fn watch_gone(&self, dir: &ElectionPath, name: &str) -> Result<Watch, BackendError> {
        let path = self.entry_path(dir, name)?;
        // Our own new entry, whose token read set this watch already.
        let armed = self.armed().remove(&path);
        if let Some(watcher) = armed {
            return Ok(Watch::Armed(notify::on_deleted(
                watcher,
                Arc::downgrade(&self.client),
            )));
        }
        let p = &path;
        // An entry's name claims its owner; a foreign contender's does not (only persistence
        // makes it a look-alike).
        let claimed = EntryName::parse(name).map(|n| n.owner);
        let armed = self
            .request("watch", p, |client| async move {
                let (stat, watcher) = client.check_and_watch_stat(p).await?;
                Ok(stat.map(|stat| (stat.ephemeral_owner, watcher)))
            })
            .await?;
        Ok(match armed {
            // Dropping the watcher removes the creation watch the client set on the missing node.
            None => Watch::Gone,
            // A persistent node (ephemeralOwner 0) or one not owned by the session its name
            // claims: a look-alike that would never go away.
            Some((owner, _))
                if owner == 0 || claimed.is_some_and(|c| c != SessionId(owner as u64)) =>
            {
                Watch::NotAnEntry
            }
            Some((_, watcher)) => {
                Watch::Armed(notify::on_deleted(watcher, Arc::downgrade(&self.client)))
            }
        })
    }

    async fn read(
        &self,
        dir: &ElectionPath,
        name: &str,
    ) -> Result<Option<EntryInfo>, BackendError> {
        let parsed = parse_entry(name)?;
        let path = self.entry_path(dir, name)?;
        let p = &path;
        let read = self
            .request("read", p, |client| async move {
                match client.get_data(p).await {
                    Ok(found) => Ok(Some(found)),
                    Err(zk::Error::NoNode) => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .await?;
        Ok(read.map(|(data, stat)| entry_read(&path, name, parsed, data, &stat)))
    }

    /// One `multiRead` (ZooKeeper 3.6 and later): our entry's `getData` and the directory's
    /// (its data holds the leader note), answered together, a missing node as its own error.
    /// One request, where two reads would each cross the server's request pipeline.
    async fn confirm(
        &self,
        dir: &ElectionPath,
        own: &str,
        note: bool,
    ) -> Result<Confirmation, BackendError> {
        if !note {
            return Ok(Confirmation {
                own: self.read(dir, own).await?,
                leader_note: None,
            });
        }
        let parsed = parse_entry(own)?;
        let own_path = self.entry_path(dir, own)?;
        let dir_path = self.absolute(dir.as_str());
        let (o, d) = (&own_path, &dir_path);
        let results = self
            .request("confirm", o, |client| async move {
                let mut reads = client.new_multi_reader();
                reads.add_get_data(o)?;
                reads.add_get_data(d)?;
                reads.commit().await
            })
            .await?;
        let mut results = results.into_iter();
        let found = |r: Option<zk::MultiReadResult>, path: &str| match r {
            Some(zk::MultiReadResult::Data { data, stat }) => Ok(Some((data, stat))),
            Some(zk::MultiReadResult::Error {
                err: zk::Error::NoNode,
            }) => Ok(None),
            Some(zk::MultiReadResult::Error { err }) => Err(backend_error("confirm", path, err)),
            _ => Err(BackendError::new(
                ErrorKind::Other,
                format!("confirm {path}: the multiRead's answer does not match its request"),
            )),
        };
        let own_found = found(results.next(), &own_path)?;
        let leader_note = found(results.next(), &dir_path)?.and_then(|(data, stat)| {
            let note = leader_note_of(&data);
            let kept = (data.is_empty() || note.is_some()).then_some(data);
            self.dir_seen
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(own_path.clone(), (kept, stat.version));
            note
        });
        let own = own_found.map(|(data, stat)| entry_read(&own_path, own, parsed, data, &stat));
        Ok(Confirmation { own, leader_note })
    }

    fn keeps_leader_notes(&self) -> bool {
        true
    }

    /// The directory's data, when it is empty or a leader note already; anything else is
    /// someone's data, never overwritten. Written with the version read, so a note never
    /// replaces data written meanwhile.
    async fn note_leader(&self, dir: &ElectionPath, name: &str) -> Result<(), BackendError> {
        let entry = self.entry_path(dir, name)?;
        let dir_path = self.absolute(dir.as_str());
        let d = &dir_path;
        // Read by the confirmation of this claim a moment ago: no read again. (A write since
        // makes ours fail on its version, as it would after a read.)
        let seen = self
            .dir_seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&entry);
        let (data, version) = match seen {
            Some((data, version)) => (data, version),
            None => {
                let Some((data, stat)) = self
                    .request("read leader note", d, |client| async move {
                        match client.get_data(d).await {
                            Ok(found) => Ok(Some(found)),
                            Err(zk::Error::NoNode) => Ok(None),
                            Err(e) => Err(e),
                        }
                    })
                    .await?
                else {
                    return Ok(());
                };
                let note = data.is_empty() || leader_note_of(&data).is_some();
                (note.then_some(data), stat.version)
            }
        };
        let Some(data) = data else {
            tracing::debug!(session = %self.id, path = %dir_path, "the election directory holds data of its own: no leader note");
            return Ok(());
        };
        if leader_note_of(&data).as_deref() == Some(name) {
            return Ok(());
        }
        let note = [LEADER_NOTE_PREFIX, name.as_bytes()].concat();
        let n = &note;
        self.write("write leader note", d, |client| async move {
            match client.set_data(d, n, Some(version)).await {
                // Written meanwhile (a newer leader's note, or someone's data), or the
                // directory is gone: leave it.
                Ok(_) | Err(zk::Error::BadVersion) | Err(zk::Error::NoNode) => Ok(()),
                Err(e) => Err(e),
            }
        })
        .await
    }

    async fn delete(&self, dir: &ElectionPath, name: &str) -> Result<(), BackendError> {
        let path = self.entry_path(dir, name)?;
        self.forget(&path);
        let p = &path;
        let id = self.id;
        self.write("delete", p, |client| async move {
            tracing::trace!(target: HANDOVER_TARGET, leg = "wire", path = %p, session = %id);
            client.delete(p, None).await
        })
        .await
    }

    async fn close(&self) {
        self.armed().clear();
        self.dir_seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        let client = self.client.lock().unwrap_or_else(|e| e.into_inner()).take();
        let monitor = self
            .monitor
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(monitor) = monitor {
            monitor.abort();
            let _ = monitor.await;
        }
        let Some(client) = client else {
            return;
        };
        // zookeeper-client has no explicit close: the session is closed (a CloseSession request,
        // after which the server deletes the ephemeral nodes) when the last clone of the client is
        // dropped. Requests still in flight hold clones; they are bounded by the timeout.
        let mut client_state = client.state_watcher();
        drop(client);
        let closed = tokio::time::timeout(self.timeout, async {
            while !client_state.peek_state().is_terminated() {
                client_state.changed().await;
            }
        })
        .await;
        if closed.is_err() {
            tracing::warn!(session = %self.id, "zookeeper session not confirmed closed within its timeout; it will expire");
        }
        self.live.publish(SessionState::Closed, "closed");
    }
}

impl Drop for ZkSession {
    fn drop(&mut self) {
        if let Some(monitor) = self
            .monitor
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            monitor.abort();
        }
        // Dropping the last client clone closes the session on the server.
        self.live.publish(SessionState::Closed, "dropped");
    }
}

/// `path` and its ancestors below the root, top-most first: `/a/b` gives `/a`, `/a/b`.
fn ancestors(path: &str) -> Vec<&str> {
    path.char_indices()
        .filter(|&(i, c)| c == '/' && i > 0)
        .map(|(i, _)| &path[..i])
        .chain(std::iter::once(path))
        .collect()
}

/// `auth::` ALL and `world:anyone` READ.
static CREATOR_ALL_ANYONE_READ: [zk::Acl; 2] = [
    zk::Acl::new_const(zk::Permission::ALL, "auth", ""),
    zk::Acl::new_const(zk::Permission::READ, "world", "anyone"),
];

impl NodeAcl {
    fn options(self, mode: zk::CreateMode) -> zk::CreateOptions<'static> {
        mode.with_acls(match self {
            NodeAcl::Open => zk::Acls::anyone_all(),
            NodeAcl::CreatorAll => zk::Acls::creator_all(),
            NodeAcl::CreatorAllAnyoneRead => zk::Acls::new(&CREATOR_ALL_ANYONE_READ),
        })
    }
}

/// How a leader note starts in an election directory's data (the entry name follows).
const LEADER_NOTE_PREFIX: &[u8] = b"election-leader-note/1 ";

/// The entry a leader note names, if `data` is one.
fn leader_note_of(data: &[u8]) -> Option<String> {
    let name = data.strip_prefix(LEADER_NOTE_PREFIX)?;
    std::str::from_utf8(name)
        .ok()
        .filter(|n| !n.is_empty() && !n.contains('/'))
        .map(str::to_owned)
}

/// `name` as an entry name of ours, or `Invalid`.
fn parse_entry(name: &str) -> Result<EntryName, BackendError> {
    EntryName::parse(name).ok_or_else(|| {
        BackendError::new(
            ErrorKind::Invalid,
            format!("{name:?} is not an election entry name"),
        )
    })
}

/// The entry `name` (at `path`) as read: owner and token from the server's stat, not from the
/// name's claim.
fn entry_read(
    path: &str,
    name: &str,
    parsed: EntryName,
    mut data: Vec<u8>,
    stat: &zk::Stat,
) -> EntryInfo {
    // More than any record of ours: foreign. Keep one byte past the limit, so that the decoder
    // still sees it is too long.
    if let Some(len) = cap_data(&mut data, MAX_RECORD_LEN + 1) {
        tracing::warn!(path = %path, len, "oversized data under an entry's name cut");
    }
    EntryInfo {
        name: name.to_owned(),
        sequence: parsed.sequence,
        owner: SessionId(stat.ephemeral_owner as u64),
        marker: parsed.marker,
        token: FencingToken(stat.czxid as u64),
        data,
        sole: false,
    }
}
