//! Every `BackendSession` primitive against a real ZooKeeper 3.8 started by hand (one standalone
//! server for the whole file, started as a child JVM on a free loopback port).
//!
//! Needs `java` and `/usr/share/java/zookeeper.jar` (Debian's `zookeeper` package): without them
//! the test fails with a message saying so; it never skips silently. Set
//! `ELECTION_ZK_JAR_DIR` to use jars from another directory.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use election_core::{
    BackendSession, CoordinationBackend, ElectionPath, ErrorKind, FencingToken, Marker, SessionId,
    SessionState, Watch,
};
use election_zk::{EntryName, ZkBackend};
use tokio::time::{timeout, Instant};
use zookeeper_client as zk;

/// A standalone ZooKeeper child process, killed and reaped on drop.
struct Server {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Server {
    fn start() -> Self {
        let jars = std::env::var("ELECTION_ZK_JAR_DIR").unwrap_or("/usr/share/java".into());
        let jar = format!("{jars}/zookeeper.jar");
        assert!(
            std::path::Path::new(&jar).exists(),
            "these tests need a ZooKeeper server jar at {jar} (apt-get install zookeeper, or set \
             ELECTION_ZK_JAR_DIR)"
        );
        let java_ok = Command::new("java")
            .arg("-version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(java_ok, "these tests need `java` on PATH to run ZooKeeper");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!("election-zk-{}-{port}", std::process::id()));
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let cfg = format!(
            "tickTime=200\ninitLimit=10\nsyncLimit=5\ndataDir={data}\nclientPort={port}\n\
             clientPortAddress=127.0.0.1\nmaxClientCnxns=0\nminSessionTimeout=400\n\
             maxSessionTimeout=60000\n4lw.commands.whitelist=*\npreAllocSize=4096\n\
             admin.enableServer=false\nforceSync=no\n",
            data = dir.join("data").display()
        );
        std::fs::write(dir.join("zoo.cfg"), cfg).unwrap();
        let log = std::fs::File::create(dir.join("server.log")).unwrap();
        let child = Command::new("java")
            .args([
                "-Xmx128m",
                "-XX:+UseSerialGC",
                "-XX:TieredStopAtLevel=1",
                "-Djava.net.preferIPv4Stack=true",
                "-Dzookeeper.admin.enableServer=false",
                "-cp",
                &format!("{jars}/zookeeper.jar:{jars}/slf4j-simple.jar"),
                "org.apache.zookeeper.server.quorum.QuorumPeerMain",
            ])
            .arg(dir.join("zoo.cfg"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn java");
        let mut server = Self { child, port, dir };
        server.wait_ready();
        server
    }

    fn four_letter(&self, cmd: &str) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        s.write_all(cmd.as_bytes()).ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        Some(out)
    }

    fn wait_ready(&mut self) {
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if let Some(status) = self.child.try_wait().unwrap() {
                let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
                panic!("ZooKeeper exited with {status} before serving; its log:\n{log}");
            }
            if self
                .four_letter("srvr")
                .is_some_and(|s| s.contains("Mode: standalone"))
                && self
                    .four_letter("conf")
                    .is_some_and(|c| c.contains(&self.dir.join("data").display().to_string()))
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("ZooKeeper on port {} not serving after 30 s", self.port);
    }

    fn connect(&self, chroot: &str) -> String {
        format!("127.0.0.1:{}{chroot}", self.port)
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn path(p: &str) -> ElectionPath {
    ElectionPath::new(p).unwrap()
}

fn marker(n: u64) -> Marker {
    Marker::from_bits(n)
}

async fn open(backend: &ZkBackend, t: Duration) -> Arc<dyn BackendSession> {
    backend.open_session(t).await.expect("open session")
}

const T: Duration = Duration::from_secs(4);
const WAIT: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_primitive_against_a_real_server() {
    let server = Server::start();
    let backend = ZkBackend::builder(server.connect("/t1")).build().unwrap();
    let dir = path("/services/x/leader");

    let a = open(&backend, T).await;
    let b = open(&backend, T).await;
    assert_eq!(a.timeout(), T, "the server grants the timeout asked for");
    assert_eq!(*a.state().borrow(), SessionState::Connected);
    assert_ne!(a.id(), b.id());

    // create: the chroot, the directory and its parents are missing.
    let e1 = a.create(&dir, &marker(1), b"one").await.unwrap();
    let parsed = EntryName::parse(&e1.name).unwrap();
    assert_eq!((parsed.marker, parsed.owner), (marker(1), a.id()));
    assert_eq!(e1.owner, a.id());
    assert_eq!(e1.sequence, parsed.sequence);
    assert_eq!(e1.data, b"one");
    let e2 = b.create(&dir, &marker(2), b"two").await.unwrap();
    let e3 = a.create(&dir, &marker(3), b"").await.unwrap();
    assert!(e1.sequence < e2.sequence && e2.sequence < e3.sequence);
    assert!(
        e1.token < e2.token && e2.token < e3.token,
        "czxid increases"
    );

    // A foreign child, written with a plain client under the chroot.
    let raw = zk::Client::connector()
        .with_session_timeout(T)
        .connect(&server.connect(""))
        .await
        .unwrap();
    let persistent = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    raw.create("/t1/services/x/leader/lock-0000000000", b"", &persistent)
        .await
        .unwrap();

    // A foreign contender: Curator's latch name, ephemeral sequential on the plain client.
    let ephemeral = zk::CreateMode::EphemeralSequential.with_acls(zk::Acls::anyone_all());
    let (stat, seq) = raw
        .create(
            "/t1/services/x/leader/_c_u-latch-",
            b"curator-1",
            &ephemeral,
        )
        .await
        .unwrap();
    let curator = format!("_c_u-latch-{seq}");
    raw.create("/t1/services/x/leader/notes", b"", &persistent)
        .await
        .unwrap();

    // list: ordered by sequence; children ending in a sequence are contenders (with their
    // owner, czxid and data; a persistent one has no owner), the others foreign.
    let listing = b.list(&dir).await.unwrap();
    let names: Vec<_> = listing.entries.iter().map(|e| e.name.clone()).collect();
    assert_eq!(names, [e1.name.clone(), e2.name.clone(), e3.name.clone()]);
    assert_eq!(listing.foreign, ["notes"]);
    let contenders: Vec<_> = listing
        .contenders
        .iter()
        .map(|c| (c.name.as_str(), c.owner, c.data.as_slice()))
        .collect();
    assert_eq!(
        contenders,
        [
            ("lock-0000000000", SessionId(0), &b""[..]),
            (
                curator.as_str(),
                SessionId(raw.session_id().0 as u64),
                &b"curator-1"[..]
            ),
        ]
    );
    assert!(listing.contenders[1].sequence > listing.entries[2].sequence);
    assert_eq!(listing.contenders[1].token, FencingToken(stat.czxid as u64));
    raw.delete(&format!("/t1/services/x/leader/{curator}"), None)
        .await
        .unwrap();
    raw.delete("/t1/services/x/leader/notes", None)
        .await
        .unwrap();
    assert_eq!(listing.entries[1].owner, b.id());
    assert_eq!(listing.entries[1].marker, marker(2));
    assert_eq!(
        b.list(&path("/missing/dir")).await.unwrap(),
        Default::default()
    );

    // read: token from czxid, owner from ephemeralOwner, data as stored.
    let r2 = a.read(&dir, &e2.name).await.unwrap().unwrap();
    assert_eq!(r2, e2);
    let gone_name = EntryName::prefix(&marker(9), a.id()) + "0000000099";
    assert_eq!(a.read(&dir, &gone_name).await.unwrap(), None);
    assert_eq!(
        a.read(&dir, "lock-0000000000").await.unwrap_err().kind(),
        ErrorKind::Invalid
    );

    // watch_gone: Gone for a missing entry; fires on delete by another session.
    assert!(matches!(
        a.watch_gone(&dir, &gone_name).await.unwrap(),
        Watch::Gone
    ));
    let Watch::Armed(mut fired) = a.watch_gone(&dir, &e2.name).await.unwrap() else {
        panic!("e2 exists")
    };
    // A data change re-arms (by the path the event names, under the chroot), it does not fire.
    raw.set_data(
        &format!("/t1/services/x/leader/{}", e2.name),
        b"changed",
        None,
    )
    .await
    .unwrap();
    assert!(
        timeout(Duration::from_millis(300), &mut fired)
            .await
            .is_err(),
        "a data change fired the watch"
    );
    b.delete(&dir, &e2.name).await.unwrap();
    timeout(WAIT, fired)
        .await
        .expect("fires")
        .expect("Ok on delete");

    // delete: NotFound when missing.
    assert_eq!(
        b.delete(&dir, &e2.name).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );

    // list_and_watch: fires on a new entry; on a missing dir, fires on its creation.
    let (listing, changed) = b.list_and_watch(&dir).await.unwrap();
    assert_eq!(listing.entries.len(), 2);
    let e4 = b.create(&dir, &marker(4), b"").await.unwrap();
    timeout(WAIT, changed).await.expect("fires").unwrap();
    let fresh = path("/fresh/dir");
    let (listing, changed) = b.list_and_watch(&fresh).await.unwrap();
    assert!(listing.entries.is_empty());
    b.create(&fresh, &marker(5), b"").await.unwrap();
    timeout(WAIT, changed).await.expect("fires").unwrap();

    // Oversized data is refused before sending.
    let big = vec![0u8; election_zk::MAX_DATA_LEN + 1];
    assert_eq!(
        a.create(&dir, &marker(6), &big).await.unwrap_err().kind(),
        ErrorKind::Invalid
    );

    // Tokens keep increasing across deletion and re-creation of the directory.
    let old_token = e4.token;
    b.delete(&dir, &e4.name).await.unwrap();
    a.delete(&dir, &e1.name).await.unwrap();
    a.delete(&dir, &e3.name).await.unwrap();
    raw.delete("/t1/services/x/leader/lock-0000000000", None)
        .await
        .unwrap();
    raw.delete("/t1/services/x/leader", None).await.unwrap();
    let e7 = a.create(&dir, &marker(7), b"").await.unwrap();
    assert_eq!(e7.sequence, 0, "the sequence restarts with the directory");
    assert!(e7.token > old_token, "the token does not");

    // close: the server deletes the entries at once; the state is Closed; calls fail.
    let mut b_state = b.state();
    let eb = b.create(&dir, &marker(8), b"").await.unwrap();
    b.close().await;
    assert_eq!(*b_state.borrow_and_update(), SessionState::Closed);
    let names: Vec<_> = a
        .list(&dir)
        .await
        .unwrap()
        .entries
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, [e7.name], "{} was deleted by close", eb.name);
    assert_eq!(
        b.list(&dir).await.unwrap_err().kind(),
        ErrorKind::SessionGone
    );
    b.close().await; // idempotent

    // A dropped session is closed too.
    let c = open(&backend, T).await;
    let ec = c.create(&dir, &marker(10), b"").await.unwrap();
    drop(c);
    let start = Instant::now();
    while a.read(&dir, &ec.name).await.unwrap().is_some() {
        assert!(start.elapsed() < WAIT, "a dropped session's entry stays");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    a.close().await;
    drop(server);
}

/// Freezes the server (SIGSTOP): the session reports `Disconnected` with a `last_contact` no
/// later than the freeze, within a third of the timeout, then `Expired`; its watches end with
/// `SessionGone`, its calls fail with `SessionGone`, and the server deletes its entries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_server_disconnects_early_then_expires() {
    let server = Server::start();
    let backend = ZkBackend::builder(server.connect("/t2"))
        .server_tick_time(election_zk::testing::TICK_TIME)
        .build()
        .unwrap();
    let dir = path("/e");
    let t = Duration::from_secs(2);
    // Last contact lags the last proof by the margin (3/4 tick) and up to a keep-alive period.
    let lag = election_zk::testing::TICK_TIME * 3 / 4 + t / 20;
    let watcher = open(&backend, t).await;
    let other = open(&backend, T).await;
    let mine = watcher.create(&dir, &marker(1), b"").await.unwrap();
    let theirs = other.create(&dir, &marker(2), b"").await.unwrap();
    let Watch::Armed(notification) = watcher.watch_gone(&dir, &theirs.name).await.unwrap() else {
        panic!("exists")
    };
    let notification = tokio::spawn(notification);
    let mut state = watcher.state();

    // Let a few pings go by, then freeze.
    tokio::time::sleep(t / 2).await;
    let frozen_at = Instant::now();
    server.signal("-STOP");

    let disconnected = timeout(t, state.wait_for(|s| *s != SessionState::Connected))
        .await
        .expect("Disconnected within the timeout")
        .map(|s| *s)
        .unwrap();
    let seen_at = Instant::now();
    let SessionState::Disconnected { last_contact } = disconnected else {
        panic!("expected Disconnected first, got {disconnected:?}")
    };
    assert!(
        last_contact <= frozen_at,
        "last contact is before the freeze"
    );
    let after_contact = seen_at - last_contact;
    assert!(
        after_contact <= t / 3 + lag + Duration::from_millis(250),
        "Disconnected {after_contact:?} after last contact (timeout {t:?})"
    );
    eprintln!(
        "disconnected {:?} after the freeze, {after_contact:?} after last contact",
        seen_at - frozen_at
    );

    let expired = timeout(t * 2, state.wait_for(|s| s.is_terminal()))
        .await
        .expect("Expired within 2x the timeout")
        .map(|s| *s)
        .unwrap();
    assert_eq!(expired, SessionState::Expired);
    eprintln!("expired {:?} after the freeze", Instant::now() - frozen_at);
    let ended = timeout(WAIT, notification).await.unwrap().unwrap();
    assert_eq!(ended.unwrap_err().kind(), ErrorKind::SessionGone);
    assert_eq!(
        watcher.list(&dir).await.unwrap_err().kind(),
        ErrorKind::SessionGone
    );

    server.signal("-CONT");
    // The server expires both frozen sessions; a new session sees no entry of the expired one.
    let fresh = open(&backend, T).await;
    let start = Instant::now();
    loop {
        let listing = fresh.list(&dir).await.unwrap();
        if listing.entries.iter().all(|e| e.name != mine.name) {
            break;
        }
        assert!(start.elapsed() < WAIT, "the expired session's entry stays");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        *watcher.state().borrow(),
        SessionState::Expired,
        "terminal stays"
    );
    fresh.close().await;
    other.close().await;
}

/// Digest auth with creator-all ACLs: the authenticated identity works, another is refused
/// with `NotPermitted`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_auth_and_creator_all_acl() {
    let server = Server::start();
    let dir = path("/secure/leader");
    let owner = ZkBackend::builder(server.connect("/t3"))
        .digest_auth("alice", "secret")
        .node_acl(election_zk::NodeAcl::CreatorAll)
        .build()
        .unwrap();
    let stranger = ZkBackend::builder(server.connect("/t3")).build().unwrap();
    let other_user = ZkBackend::builder(server.connect("/t3"))
        .digest_auth("bob", "secret")
        .build()
        .unwrap();

    let a = open(&owner, T).await;
    let entry = a.create(&dir, &marker(1), b"x").await.unwrap();
    assert_eq!(a.list(&dir).await.unwrap().entries.len(), 1);

    for backend in [&stranger, &other_user] {
        let s = open(backend, T).await;
        assert_eq!(
            s.list(&dir).await.unwrap_err().kind(),
            ErrorKind::NotPermitted
        );
        assert_eq!(
            s.create(&dir, &marker(2), b"").await.unwrap_err().kind(),
            ErrorKind::NotPermitted
        );
        assert_eq!(
            s.read(&dir, &entry.name).await.unwrap_err().kind(),
            ErrorKind::NotPermitted
        );
        s.close().await;
    }
    // The same identity from a second session has every permission.
    let a2 = open(&owner, T).await;
    assert_eq!(
        a2.read(&dir, &entry.name).await.unwrap().unwrap().owner,
        a.id()
    );
    a2.close().await;
    a.close().await;
}

/// Issue 17, point 1 (reproduced on 3.8): ZooKeeper checks the parent's ACL before existence,
/// so creating an ancestor that exists under a parent that denies CREATE answers `NoAuth`. With
/// an administrator's `/svc` (world: read only) holding an open `/svc/app`, the first join on
/// `/svc/app/leader` used to stop with "not authorized" (although it had created the
/// directory), under a chroot too, and again whenever the directory was deleted. Only missing
/// ancestors are created now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_ancestor_under_a_read_only_parent_does_not_stop_a_candidate() {
    let server = Server::start();
    let admin = zk::Client::connect(&server.connect("")).await.unwrap();
    let open = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    for p in ["/svc", "/svc/app", "/ch", "/ch/svc", "/ch/svc/app"] {
        admin.create(p, &[], &open).await.unwrap();
    }
    for p in ["/svc", "/ch/svc"] {
        admin
            .set_acl(p, &zk::Acls::anyone_read(), None)
            .await
            .unwrap();
    }
    for chroot in ["", "/ch"] {
        let backend: Arc<dyn CoordinationBackend> =
            Arc::new(ZkBackend::builder(server.connect(chroot)).build().unwrap());
        for round in 0..2 {
            let c = election_core::Candidate::builder("/svc/app/leader", "a")
                .session_timeout(T)
                .join(backend.clone())
                .await
                .unwrap();
            let led = tokio::time::timeout(WAIT, c.wait_for_leadership())
                .await
                .unwrap_or_else(|e| Err(e.into()));
            assert!(
                led.is_ok(),
                "chroot {chroot:?}, round {round}: {:?}",
                *c.state().borrow()
            );
            c.stop().await;
            // An administrator deletes the (empty) directory; the next join creates it again.
            admin
                .delete(&format!("{chroot}/svc/app/leader"), None)
                .await
                .unwrap();
        }
    }
}

/// Issue 17, point 3: a persistent node named like an entry (a tree restored or copied by a
/// tool) has `ephemeralOwner` 0 and never goes away; taken for a live candidate's entry, nobody
/// behind it ever led. Its `exists` stat tells it apart: `watch_gone` answers `NotAnEntry`, and
/// a candidate behind it leads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persistent_lookalike_entry_does_not_block_the_election() {
    let server = Server::start();
    let admin = zk::Client::connect(&server.connect("")).await.unwrap();
    let open = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    for p in ["/la", "/la/leader"] {
        admin.create(p, &[], &open).await.unwrap();
    }
    let lookalike = format!(
        "{}0000000000",
        EntryName::prefix(&marker(0xc0ffee), election_core::SessionId(0x1234))
    );
    admin
        .create(&format!("/la/leader/{lookalike}"), b"restored", &open)
        .await
        .unwrap();
    let backend: Arc<dyn CoordinationBackend> =
        Arc::new(ZkBackend::builder(server.connect("")).build().unwrap());
    let s = backend.open_session(T).await.unwrap();
    let dir = path("/la/leader");
    assert_eq!(s.list(&dir).await.unwrap().entries[0].name, lookalike);
    assert!(matches!(
        s.watch_gone(&dir, &lookalike).await.unwrap(),
        Watch::NotAnEntry
    ));
    s.close().await;
    let c = election_core::Candidate::builder("/la/leader", "a")
        .session_timeout(T)
        .join(backend)
        .await
        .unwrap();
    let led = tokio::time::timeout(WAIT, c.wait_for_leadership())
        .await
        .unwrap_or_else(|e| Err(e.into()));
    assert!(led.is_ok(), "{:?}", *c.state().borrow());
    c.stop().await;
}

/// Issue 17, point 4: with `NodeAcl::CreatorAll`, a candidate that (re-)creates the election
/// directory owns it, and a candidate with other credentials is refused. The refusal says which
/// node refused, its ACL and who we are, so the misconfiguration (the rule: one identity per
/// election) is plain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_join_names_the_node_and_its_acl() {
    let server = Server::start();
    let creator_all = |user: &str| -> Arc<dyn CoordinationBackend> {
        Arc::new(
            ZkBackend::builder(server.connect(""))
                .digest_auth(user, "secret")
                .node_acl(election_zk::NodeAcl::CreatorAll)
                .build()
                .unwrap(),
        )
    };
    let alice = election_core::Candidate::builder("/acl/leader", "alice")
        .session_timeout(T)
        .join(creator_all("alice"))
        .await
        .unwrap();
    tokio::time::timeout(WAIT, alice.wait_for_leadership())
        .await
        .unwrap_or_else(|e| Err(e.into()))
        .unwrap();
    let bob = election_core::Candidate::builder("/acl/leader", "bob")
        .session_timeout(T)
        .join(creator_all("bob"))
        .await
        .unwrap();
    let why = failure(&bob).await;
    for part in ["/acl/leader refused", "\"bob\"", "CreatorAll"] {
        assert!(why.contains(part), "{part:?} missing from {why:?}");
    }
    alice.stop().await;

    // A directory whose ACL can be read is quoted.
    let admin = zk::Client::connect(&server.connect("")).await.unwrap();
    let read_only = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_read());
    admin.create("/ro", &[], &read_only).await.unwrap();
    let open: Arc<dyn CoordinationBackend> =
        Arc::new(ZkBackend::builder(server.connect("")).build().unwrap());
    let c = election_core::Candidate::builder("/ro/leader", "c")
        .session_timeout(T)
        .join(open)
        .await
        .unwrap();
    let why = failure(&c).await;
    for part in ["/ro refused, with ACL [world:anyone=", "no identity"] {
        assert!(why.contains(part), "{part:?} missing from {why:?}");
    }
}

/// Waits until `c` stops, and returns why it failed.
async fn failure(c: &election_core::Candidate) -> String {
    let end = timeout(WAIT, async {
        let mut state = c.state();
        loop {
            if let election_core::ElectionState::Stopped(why) = state.borrow_and_update().clone() {
                return why;
            }
            state.changed().await.unwrap();
        }
    })
    .await
    .expect("the candidate stops");
    let election_core::StopReason::Failed(why) = end else {
        panic!("{end:?}")
    };
    eprintln!("measure: refusal message: {why}");
    why
}

/// Issue 17, points 4 and 7 on a real server: an administrator's directory that grants no
/// DELETE refuses the leader's release; the leader closes its session instead, whose end
/// deletes the entry (before: the entry stayed at the head for as long as the process lived),
/// and the follower takes over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_delete_never_leaves_the_entry() {
    let server = Server::start();
    let admin = zk::Client::connect(&server.connect("")).await.unwrap();
    let open = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    admin.create("/nodel", &[], &open).await.unwrap();
    let no_delete = [zk::Acl::new(
        zk::Permission::READ
            | zk::Permission::WRITE
            | zk::Permission::CREATE
            | zk::Permission::ADMIN,
        zk::AuthId::anyone(),
    )];
    let mode = zk::CreateMode::Persistent.with_acls(zk::Acls::new(&no_delete));
    admin.create("/nodel/leader", &[], &mode).await.unwrap();
    let backend: Arc<dyn CoordinationBackend> =
        Arc::new(ZkBackend::builder(server.connect("")).build().unwrap());
    let join = |id: &'static str| {
        election_core::Candidate::builder("/nodel/leader", id)
            .session_timeout(T)
            .join(backend.clone())
    };
    let a = join("a").await.unwrap();
    tokio::time::timeout(WAIT, a.wait_for_leadership())
        .await
        .unwrap_or_else(|e| Err(e.into()))
        .unwrap();
    let b = join("b").await.unwrap();
    timeout(WAIT, async {
        while admin.list_children("/nodel/leader").await.unwrap().len() < 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    let _ = timeout(WAIT, a.leave()).await.expect("leave returns");
    tokio::time::timeout(WAIT, b.wait_for_leadership())
        .await
        .unwrap_or_else(|e| Err(e.into()))
        .unwrap();
    let left = admin.list_children("/nodel/leader").await.unwrap();
    assert_eq!(left.len(), 1, "{left:?}");
    b.stop().await;
    let left = admin.list_children("/nodel/leader").await.unwrap();
    assert!(left.is_empty(), "{left:?}");
    drop(a);
}

/// The server's count of write requests and of other requests (reads, and pings) so far.
fn request_counts(server: &Server) -> (u64, u64) {
    let mntr = server.four_letter("mntr").expect("mntr");
    let count = |key: &str| -> u64 {
        mntr.lines()
            .find_map(|l| l.strip_prefix(key)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("mntr has no {key}"))
    };
    (
        count("zk_cnt_updatelatency\t"),
        count("zk_cnt_readlatency\t"),
    )
}

/// Issue 12: what a create costs the server, counted with `mntr` (writes exactly; reads with
/// pings and keep-alives, so "at most one" more than sent). A fresh directory under an existing
/// parent costs two writes and no existence check: the entry's create, answered `NoNode`, then
/// one `multi` creating the directory and the entry; and one read, of the entry's token
/// (ZooKeeper 3.8 answers a `multi`'s create with no stat), which sets the watch on the entry.
/// An existing directory costs one write. A missing parent as well costs the `multi`, answered
/// `NoNode`, then every ancestor's create before the entry's, back to back (those that exist
/// answer `NodeExists`): 1 + 1 + 4 writes for `/deep/a/b`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_directory_costs_two_writes_and_no_existence_check() {
    let server = Server::start();
    let backend = ZkBackend::builder(server.connect("")).build().unwrap();
    // A long timeout: few pings and keep-alives between the counts.
    let s = open(&backend, Duration::from_secs(30)).await;
    s.create(&path("/fresh/first"), &marker(1), b"")
        .await
        .unwrap();
    let cases = [
        ("/fresh/second", 2, 1, "a fresh directory"),
        ("/fresh/second", 1, 0, "an existing directory"),
        ("/deep/a/b", 6, 0, "a fresh directory and parents"),
    ];
    for (i, (dir, writes, reads, what)) in cases.into_iter().enumerate() {
        let (w0, r0) = request_counts(&server);
        let e = s
            .create(&path(dir), &marker(10 + i as u64), b"x")
            .await
            .unwrap();
        let (w1, r1) = request_counts(&server);
        eprintln!(
            "measure: create in {what}: {} writes, {} reads",
            w1 - w0,
            r1 - r0
        );
        assert_eq!(w1 - w0, writes, "writes for a create in {what}");
        assert!(
            r1 - r0 <= reads + 1,
            "no existence checks for {what}: {} reads",
            r1 - r0
        );
        // Its directory made by this create, or by the one before in the same session: the
        // first child it ever had, or not.
        assert_eq!(e.sole, i != 1, "{what}: {e:?}");
        let listing = s.list(&path(dir)).await.unwrap();
        assert!(
            listing.entries.iter().any(|l| l.name == e.name),
            "{what}: the entry is listed"
        );
    }
    s.close().await;
}

/// Issue 12: the watch on a candidate's own new entry costs no request when the read of the
/// entry's token set it already (an entry created with its directory, in one `multi`), and it
/// fires when the entry goes. Twenty entries, so that a keep-alive in the window (at most one
/// with `T` = 30 s) cannot pass for the twenty reads a watch each would cost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_read_of_a_new_entry_arms_its_own_watch() {
    const N: usize = 20;
    let server = Server::start();
    let backend = ZkBackend::builder(server.connect("")).build().unwrap();
    let s = open(&backend, Duration::from_secs(30)).await;
    s.create(&path("/armed/warm"), &marker(1), b"")
        .await
        .unwrap();
    let mut entries = Vec::new();
    for i in 0..N {
        let dir = path(&format!("/armed/e{i}"));
        let e = s.create(&dir, &marker(10 + i as u64), b"").await.unwrap();
        assert!(e.sole, "the first entry of a fresh directory: {e:?}");
        entries.push((dir, e));
    }
    let (w0, r0) = request_counts(&server);
    let mut watches = Vec::new();
    for (dir, e) in &entries {
        let Watch::Armed(fired) = s.watch_gone(dir, &e.name).await.unwrap() else {
            panic!("our entry {} is there", e.name);
        };
        watches.push(fired);
    }
    let (w1, r1) = request_counts(&server);
    eprintln!(
        "measure: {N} own-entry watches: {} writes, {} reads",
        w1 - w0,
        r1 - r0
    );
    assert_eq!(w1 - w0, 0);
    assert!(r1 - r0 <= 1, "{} reads for {N} armed watches", r1 - r0);
    // Armed for real: each fires when its entry goes, not before.
    for ((dir, e), mut fired) in entries.iter().zip(watches) {
        assert!(
            timeout(Duration::from_millis(50), &mut fired)
                .await
                .is_err(),
            "{} fired while its entry is there",
            e.name
        );
        s.delete(dir, &e.name).await.unwrap();
        timeout(Duration::from_secs(10), fired)
            .await
            .expect("the watch fires when the entry is deleted")
            .expect("a deletion, not the session's end");
    }
    s.close().await;
}

/// Issue 12: the leader note written right after a claim its confirmation verified costs one
/// write and no read (the confirming `multiRead` read the directory's data and version), and it
/// names the new leader. Twenty elections, so that a keep-alive in the window (at most one with
/// `T` = 30 s) cannot pass for the twenty reads a note each would cost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_note_after_its_confirmation_costs_no_read() {
    const N: usize = 20;
    let server = Server::start();
    let backend = ZkBackend::builder(server.connect("")).build().unwrap();
    let s = open(&backend, Duration::from_secs(30)).await;
    let mut claims = Vec::new();
    for i in 0..N {
        let dir = path(&format!("/noted/e{i}"));
        let head = s.create(&dir, &marker(100 + i as u64), b"").await.unwrap();
        let next = s.create(&dir, &marker(200 + i as u64), b"").await.unwrap();
        s.note_leader(&dir, &head.name).await.unwrap();
        s.delete(&dir, &head.name).await.unwrap();
        let c = s.confirm(&dir, &next.name, true).await.unwrap();
        assert_eq!(c.leader_note.as_deref(), Some(head.name.as_str()));
        assert!(c.own.is_some());
        claims.push((dir, next));
    }
    let (w0, r0) = request_counts(&server);
    for (dir, next) in &claims {
        s.note_leader(dir, &next.name).await.unwrap();
    }
    let (w1, r1) = request_counts(&server);
    eprintln!(
        "measure: {N} notes after their confirmations: {} writes, {} reads",
        w1 - w0,
        r1 - r0
    );
    assert_eq!(w1 - w0, N as u64, "one write per note");
    assert!(r1 - r0 <= 1, "{} reads for {N} notes", r1 - r0);
    for (dir, next) in &claims {
        let c = s.confirm(dir, &next.name, true).await.unwrap();
        assert_eq!(c.leader_note.as_deref(), Some(next.name.as_str()), "{dir}");
    }
    s.close().await;
}
