//! Real processes against a real ZooKeeper server: supervisors (`election run`) and a child
//! script that logs its start, its token and its stop, and holds a lock (`flock`) for as long
//! as any process of its group lives, so that two children running at once cannot go unseen.
#![allow(dead_code, unused_imports)]

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[cfg(feature = "etcd")]
pub use election_etcd::testing::EtcdMember;
pub use election_zk::testing::{TcpProxy, ZkServer};

/// The session timeout every test uses (the server's tickTime is 200 ms).
pub const T: &str = "2s";
pub const T_DUR: Duration = Duration::from_secs(2);

/// The supervisor binary.
pub fn election() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_election"));
    c.env_remove("NOTIFY_SOCKET");
    for (k, _) in std::env::vars() {
        if k.starts_with("ELECTION_") {
            c.env_remove(k);
        }
    }
    c
}

/// The child: `child.sh LOG LOCK MODE [ARG]`. Modes:
/// - `run`: runs until SIGTERM (then logs `term` and exits 7), with a grandchild `sleep`; logs
///   `hup` on SIGHUP;
/// - `ignore`: ignores SIGTERM (and so does its grandchild): only SIGKILL stops it;
/// - `exit N`: exits at once with status N;
/// - `exitafter S N`: exits after S seconds with status N.
const CHILD: &str = r#"#!/bin/sh
log=$1; lock=$2; mode=$3
now() { date +%s%N; }
exec 9>>"$lock"
if ! flock -n 9; then
  echo "overlap $ELECTION_ID $ELECTION_TOKEN $(now)" >> "$log"
  exit 97
fi
case "$mode" in
  run)
    # Set before the start line, so that a test that saw the line can signal at once. The
    # grandchild ignores SIGHUP (an ignored signal stays ignored across exec).
    trap 'echo "term $ELECTION_ID $ELECTION_TOKEN $(now)" >> "$log"; exit 7' TERM
    trap '' HUP ;;
  ignore)
    trap '' TERM ;;
esac
echo "start $ELECTION_ID $ELECTION_TOKEN $(now) $$ $ELECTION_SESSION $ELECTION_PATH ${NOTIFY_SOCKET:-unset}" >> "$log"
case "$mode" in
  run)
    sleep 1000 &
    trap 'echo "hup $ELECTION_ID $ELECTION_TOKEN $(now)" >> "$log"' HUP
    echo "grandchild $ELECTION_ID $ELECTION_TOKEN $!" >> "$log"
    # `wait` returns early when a trapped signal (SIGHUP) comes in: wait again.
    while kill -0 $! 2>/dev/null; do wait; done ;;
  ignore)
    sleep 1000 &
    echo "grandchild $ELECTION_ID $ELECTION_TOKEN $!" >> "$log"
    while :; do wait; done ;;
  exit)
    exit "$4" ;;
  exitafter)
    sleep "$4"
    exit "$5" ;;
esac
"#;

/// The service a world runs on.
pub enum Service {
    Zk(ZkServer),
    #[cfg(feature = "etcd")]
    Etcd(EtcdMember),
}

/// One test's world: a ZooKeeper server (or an etcd member), a directory with the child script,
/// its log and lock.
pub struct World {
    pub service: Service,
    pub dir: tempfile::TempDir,
    pub path: String,
}

impl World {
    /// A world on a new ZooKeeper server.
    pub fn new(path: &str) -> World {
        World::on(Service::Zk(ZkServer::start()), path)
    }

    /// A world on a new etcd member.
    #[cfg(feature = "etcd")]
    pub fn etcd(path: &str) -> World {
        World::on(Service::Etcd(EtcdMember::start()), path)
    }

    /// The ZooKeeper server.
    pub fn zk(&self) -> &ZkServer {
        match &self.service {
            Service::Zk(zk) => zk,
            #[cfg(feature = "etcd")]
            Service::Etcd(_) => panic!("not a ZooKeeper world"),
        }
    }

    /// The connect string (or endpoint) of the service.
    pub fn connect(&self) -> String {
        match &self.service {
            Service::Zk(zk) => zk.connect_string(),
            #[cfg(feature = "etcd")]
            Service::Etcd(etcd) => etcd.endpoint(),
        }
    }

    /// The flags that name the service at `connect`.
    pub fn service_flags(&self, connect: &str) -> Vec<String> {
        match &self.service {
            Service::Zk(_) => vec![
                "--zookeeper".into(),
                connect.into(),
                "--zk-tick-time".into(),
                "200ms".into(),
            ],
            #[cfg(feature = "etcd")]
            Service::Etcd(_) => vec!["--etcd".into(), connect.into()],
        }
    }

    pub fn on(service: Service, path: &str) -> World {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("child.sh");
        fs::write(&script, CHILD).unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        World {
            service,
            dir,
            path: path.to_owned(),
        }
    }

    pub fn log(&self) -> PathBuf {
        self.dir.path().join("child.log")
    }

    pub fn lock(&self) -> PathBuf {
        self.dir.path().join("child.lock")
    }

    /// The child command line for `mode`.
    pub fn child(&self, mode: &[&str]) -> Vec<String> {
        let mut v = vec![
            self.dir.path().join("child.sh").display().to_string(),
            self.log().display().to_string(),
            self.lock().display().to_string(),
        ];
        v.extend(mode.iter().map(|s| s.to_string()));
        v
    }

    /// Starts `election run` as `id` against `connect`, with `extra` flags, running `child`.
    pub fn supervisor(
        &self,
        id: &str,
        connect: &str,
        extra: &[&str],
        child: &[&str],
    ) -> Supervisor {
        self.supervisor_with(id, connect, extra, child, &[])
    }

    /// [`supervisor`](Self::supervisor) with environment variables.
    pub fn supervisor_with(
        &self,
        id: &str,
        connect: &str,
        extra: &[&str],
        child: &[&str],
        env: &[(&str, &str)],
    ) -> Supervisor {
        let stderr = self.dir.path().join(format!("{id}.stderr"));
        let mut cmd = election();
        cmd.args(["run", "--path", &self.path, "--id", id])
            .args(self.service_flags(connect))
            .args(["--session-timeout", T])
            .args(extra)
            .arg("--")
            .args(self.child(child))
            .envs(env.iter().copied())
            .env("RUST_LOG", "info,zookeeper_client=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&stderr).unwrap());
        Supervisor {
            id: id.to_owned(),
            child: Some(cmd.spawn().unwrap()),
            stderr,
        }
    }

    /// Every line of the child log.
    pub fn lines(&self) -> Vec<Line> {
        fs::read_to_string(self.log())
            .unwrap_or_default()
            .lines()
            .filter_map(Line::parse)
            .collect()
    }

    /// Waits until the log has a line that `f` accepts, and returns it.
    pub fn wait_line(&self, what: &str, within: Duration, f: impl Fn(&Line) -> bool) -> Line {
        let start = Instant::now();
        loop {
            if let Some(l) = self.lines().into_iter().find(|l| f(l)) {
                return l;
            }
            if start.elapsed() > within {
                panic!(
                    "no {what} within {within:?}; child log:\n{}\n{}",
                    fs::read_to_string(self.log()).unwrap_or_default(),
                    self.stderrs()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Every supervisor's stderr so far.
    pub fn stderrs(&self) -> String {
        let mut out = String::new();
        for entry in fs::read_dir(self.dir.path()).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".stderr") {
                out.push_str(&format!(
                    "--- {name}\n{}\n",
                    fs::read_to_string(entry.path()).unwrap_or_default()
                ));
            }
        }
        out
    }

    /// `true` when no process holds the child lock (every child and grandchild is gone).
    pub fn lock_free(&self) -> bool {
        Command::new("flock")
            .args(["-n"])
            .arg(self.lock())
            .arg("true")
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    /// Waits until the lock is free; returns when it was seen free.
    pub fn wait_lock_free(&self, within: Duration) -> SystemTime {
        let start = Instant::now();
        while !self.lock_free() {
            if start.elapsed() > within {
                panic!(
                    "the child's group still runs after {within:?}; log:\n{}",
                    fs::read_to_string(self.log()).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        SystemTime::now()
    }

    /// The checks every case ends with: no two children ran at once, and the term tokens of
    /// the children, in start order, never went down (equal only for restarts in one term).
    pub fn check(&self) -> Vec<Line> {
        let lines = self.lines();
        let overlaps: Vec<_> = lines.iter().filter(|l| l.kind == "overlap").collect();
        assert!(
            overlaps.is_empty(),
            "children overlapped: {overlaps:?}\n{lines:#?}"
        );
        let starts: Vec<_> = lines.iter().filter(|l| l.kind == "start").collect();
        for w in starts.windows(2) {
            assert!(
                w[1].token >= w[0].token,
                "tokens went back: {:?} then {:?}",
                w[0],
                w[1]
            );
        }
        lines
    }

    /// `election status --json` on this world's path.
    pub fn status_json(&self, connect: &str) -> (Option<i32>, serde_json::Value) {
        let out = election()
            .args(["status", "--path", &self.path, "--json"])
            .args(self.service_flags(connect))
            .output()
            .unwrap();
        let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "status output is not JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        });
        (out.status.code(), v)
    }
}

/// One line of the child log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub kind: String,
    pub id: String,
    pub token: u64,
    /// Wall-clock nanoseconds (for `start`, `term`, `overlap`); the pid for `grandchild`.
    pub value: u64,
    pub rest: Vec<String>,
}

impl Line {
    fn parse(s: &str) -> Option<Line> {
        let mut it = s.split_whitespace();
        Some(Line {
            kind: it.next()?.to_owned(),
            id: it.next()?.to_owned(),
            token: it.next()?.parse().ok()?,
            value: it.next()?.parse().ok()?,
            rest: it.map(str::to_owned).collect(),
        })
    }

    pub fn at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.value)
    }
}

/// A running `election run`.
pub struct Supervisor {
    pub id: String,
    pub child: Option<Child>,
    pub stderr: PathBuf,
}

impl Supervisor {
    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} {} failed", self.pid());
    }

    /// Waits for the supervisor to exit.
    pub fn wait(&mut self, within: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                return status;
            }
            if start.elapsed() > within {
                panic!(
                    "{} did not exit within {within:?}; stderr:\n{}",
                    self.id,
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs `election` with `args` to the end.
pub fn run_election(args: &[&str]) -> Output {
    election().args(args).stdin(Stdio::null()).output().unwrap()
}

/// Whether process `pid` runs (a zombie, dead but not yet reaped by init, does not count).
pub fn alive(pid: u64) -> bool {
    let Ok(stat) = fs::read_to_string(Path::new(&format!("/proc/{pid}/stat"))) else {
        return false;
    };
    // `pid (comm) S ...`: the state follows the last `)`.
    let state = stat
        .rsplit(')')
        .next()
        .and_then(|r| r.split_whitespace().next());
    !matches!(state, Some("Z") | Some("X") | None)
}

/// GET `path` from `addr` over plain HTTP/1.0; returns the body.
pub fn http_get(addr: &str, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// Milliseconds from `a` to `b` (negative when `b` is earlier).
pub fn ms_between(a: SystemTime, b: SystemTime) -> f64 {
    match b.duration_since(a) {
        Ok(d) => d.as_secs_f64() * 1e3,
        Err(e) => -e.duration().as_secs_f64() * 1e3,
    }
}
