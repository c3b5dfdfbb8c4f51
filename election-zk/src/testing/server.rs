//! One ZooKeeper server as a child JVM: a standalone server or one member of a [`ZkEnsemble`].
//!
//! The server owns a temp dir holding `zoo.cfg`, the data dir and the log of every launch. Its
//! ports stay the same across restarts, so client sessions can survive a restart within their
//! timeout.
//!
//! [`ZkEnsemble`]: super::ZkEnsemble

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::four_letter::{self, Mode};
use super::secure::{ZkSecurity, NETTY_JARS};
use super::{require_zookeeper, HarnessError, TcpProxy, ZkInstall};

/// How long a server may take to serve after a launch before the harness gives up.
pub(crate) const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound for one four-letter exchange made by the panicking helpers.
const FOUR_LETTER_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound for one readiness probe: short, so a frozen server does not stall the polling.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// How many fresh ports a standalone start tries when its port turns out to be taken.
const START_ATTEMPTS: u32 = 5;
/// How many launches a restart tries when its port stays busy (each after up to 5 s of waiting
/// for the port to be free).
const RESTART_ATTEMPTS: u32 = 3;
const LOG_TAIL_LINES: usize = 40;
const LOG_FILE: &str = "zookeeper.log";
/// Written to the log before each launch, so a failure is judged on the latest launch only.
const LAUNCH_MARKER: &str = "--- harness: launch";

/// A ZooKeeper server running as a child JVM on loopback, with its own port and temp dir.
///
/// All methods take `&self` (the process state is behind a mutex), so a server can be shared
/// with a thread that injects faults while the test runs. Dropping it kills and reaps the JVM
/// and removes the directory.
///
/// ```no_run
/// use election_zk::testing::ZkServer;
///
/// let zk = ZkServer::start();
/// let connect = zk.connect_string(); // "127.0.0.1:PORT"
/// zk.freeze(); // SIGSTOP: clients see silence
/// zk.thaw();
/// zk.restart(); // same port, same data dir
/// # let _ = connect;
/// ```
#[derive(Debug)]
pub struct ZkServer {
    install: ZkInstall,
    client_port: u16,
    /// Every port the JVM binds (client, and for a member quorum and election): probed before a
    /// restart.
    ports: Vec<u16>,
    member_id: Option<u64>,
    /// The `secureClientPort`, for a server started with [`ZkServer::start_secure`].
    secure_port: Option<u16>,
    /// Extra JVM arguments (the JAAS file) and classpath (Netty) of a secure server.
    jvm_args: Vec<String>,
    /// Whether the JVM compiles hot code fully (see [`ServerSettings::full_jit`]).
    full_jit: bool,
    process: Mutex<Process>,
    // Last, so the directory goes after the JVM is reaped.
    dir: TempDir,
}

#[derive(Debug, Default)]
struct Process {
    child: Option<Child>,
    frozen: bool,
    launches: u32,
}

/// The `tickTime` every server the harness starts runs with.
pub const TICK_TIME: Duration = Duration::from_millis(200);

/// Settings of a server's `zoo.cfg` that tests vary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ServerSettings {
    /// `syncLimit`, in ticks: how long a follower waits for its leader (and the leader for a
    /// follower) before giving up on the link.
    pub(crate) sync_limit: u32,
    /// `maxSessionTimeout`: longer session timeouts asked for are cut to this.
    pub(crate) max_session_timeout: Duration,
    /// `tickTime`; `minSessionTimeout` is two ticks, ZooKeeper's own default.
    pub(crate) tick_time: Duration,
    /// The JVM's full optimising compiler (C2), as a server in service runs. Off, the JVM stops
    /// at its quick compiler (C1): it starts sooner and spends less CPU compiling, which suits
    /// tests that start many short-lived servers on two cores, but its steady state answers
    /// each request with more CPU time (about 1.4 times, in `zk_scale`'s floor).
    pub(crate) full_jit: bool,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            sync_limit: 5,
            max_session_timeout: Duration::from_secs(60),
            tick_time: TICK_TIME,
            full_jit: false,
        }
    }
}

/// How a member of an ensemble is configured; the ensemble builds one per member.
#[derive(Debug, Clone)]
pub(crate) struct MemberConfig {
    /// This member's `myid`.
    pub(crate) id: u64,
    /// `(id, quorum port, election port)` of every member as this member reaches it: its own
    /// ports for itself, and for a peer either the peer's ports or those of a proxy in front of
    /// them.
    pub(crate) servers: Vec<(u64, u16, u16)>,
}

/// What one readiness probe saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Probe {
    /// The JVM is not running (killed, or it exited on its own).
    Down,
    /// No answer to `srvr` in time (starting, or frozen).
    Silent,
    /// Answering, but not serving clients (no quorum yet).
    NotServing,
    /// Serving clients in this mode.
    Serving(Mode),
}

/// Why a wait for readiness failed.
pub(crate) struct ReadyFailure {
    /// The port is held by someone else: choosing other ports may help.
    pub(crate) port_conflict: bool,
    pub(crate) error: HarnessError,
}

impl ZkServer {
    /// Starts a standalone server on a free loopback port and waits until it serves.
    ///
    /// # Panics
    /// When ZooKeeper is not installed, or the server does not serve within 30 s (the message
    /// holds the tail of the server log).
    pub fn start() -> ZkServer {
        Self::start_with(None, ServerSettings::default())
    }

    /// Starts a standalone server as [`start`](Self::start) does, with `tickTime` set to `tick`
    /// instead of [`TICK_TIME`] (and so a shortest session timeout of two ticks): for measuring
    /// crash failover against the server's tick.
    ///
    /// # Panics
    /// As [`start`](Self::start); also when `tick` is under 1 ms.
    pub fn start_with_tick_time(tick: Duration) -> ZkServer {
        assert!(
            tick >= Duration::from_millis(1),
            "tickTime {tick:?} is under 1 ms"
        );
        Self::start_with(
            None,
            ServerSettings {
                tick_time: tick,
                ..ServerSettings::default()
            },
        )
    }

    /// Starts a standalone server as [`start`](Self::start) does, its JVM running as a server in
    /// service does, with the full optimising compiler (C2): for benchmarks. [`start`](Self::start)
    /// stops the JVM at its quick compiler (C1), which starts sooner and suits tests, but whose
    /// compiled code costs the server more CPU time per request (about 1.4 times, in
    /// `zk_scale`'s floor).
    ///
    /// # Panics
    /// As [`start`](Self::start).
    pub fn start_for_benchmark() -> ZkServer {
        Self::start_with(
            None,
            ServerSettings {
                full_jit: true,
                ..ServerSettings::default()
            },
        )
    }

    /// Starts a standalone server with a `secureClientPort` (TLS, with the key store of
    /// `security`) beside its plain client port, and with SASL DIGEST-MD5 when `security` has
    /// users, and waits until it serves.
    ///
    /// # Panics
    /// As [`start`](Self::start); also when Debian's Netty jars are missing.
    pub fn start_secure(security: ZkSecurity) -> ZkServer {
        Self::start_with(Some(security), ServerSettings::default())
    }

    fn start_with(security: Option<ZkSecurity>, settings: ServerSettings) -> ZkServer {
        let install = require_zookeeper();
        let mut attempt = 1;
        loop {
            let (port, secure_port) = match reserve_ports(2) {
                Ok(ports) => (ports[0], ports[1]),
                Err(e) => panic!("cannot find a free loopback port: {e}"),
            };
            let secure = security.as_ref().map(|s| (s, secure_port));
            let server = ZkServer::prepare_with(install.clone(), port, None, settings, secure)
                .unwrap_or_else(|e| panic!("cannot prepare a ZooKeeper server: {e}"));
            let started = Instant::now();
            let outcome = server
                .launch()
                .map_err(|error| ReadyFailure {
                    port_conflict: false,
                    error,
                })
                .and_then(|()| server.await_serving(READY_TIMEOUT));
            match outcome {
                Ok(mode) => {
                    tracing::debug!(port, ?mode, elapsed = ?started.elapsed(), "ZooKeeper ready");
                    return server;
                }
                // Another process took the port between the probe and the JVM's bind.
                Err(failure) if failure.port_conflict && attempt < START_ATTEMPTS => {
                    tracing::debug!(port, attempt, "port taken, retrying on another port");
                    attempt += 1;
                }
                Err(failure) => panic!(
                    "ZooKeeper did not start (attempt {attempt} of {START_ATTEMPTS}): {}",
                    failure.error
                ),
            }
        }
    }

    /// Creates the directory and `zoo.cfg` without launching anything.
    pub(crate) fn prepare(
        install: ZkInstall,
        client_port: u16,
        member: Option<MemberConfig>,
        settings: ServerSettings,
    ) -> Result<ZkServer, HarnessError> {
        Self::prepare_with(install, client_port, member, settings, None)
    }

    fn prepare_with(
        install: ZkInstall,
        client_port: u16,
        member: Option<MemberConfig>,
        settings: ServerSettings,
        secure: Option<(&ZkSecurity, u16)>,
    ) -> Result<ZkServer, HarnessError> {
        let dir = tempfile::Builder::new()
            .prefix("election-zk-")
            .tempdir()
            .map_err(|e| HarnessError::io("cannot create a temp dir", e))?;
        let data_dir = dir.path().join("data");
        fs::create_dir(&data_dir).map_err(|e| HarnessError::io("cannot create the data dir", e))?;

        let mut cfg = format!(
            "tickTime={}\ninitLimit=10\nsyncLimit={}\ndataDir={}\nclientPort={client_port}\n\
             clientPortAddress=127.0.0.1\nmaxClientCnxns=0\nminSessionTimeout={}\n\
             maxSessionTimeout={}\n4lw.commands.whitelist=*\npreAllocSize=4096\n\
             admin.enableServer=false\nforceSync=no\n",
            settings.tick_time.as_millis(),
            settings.sync_limit,
            data_dir.display(),
            (settings.tick_time * 2).as_millis(),
            settings.max_session_timeout.as_millis(),
        );
        let mut ports = vec![client_port];
        let member_id = member.as_ref().map(|m| m.id);
        if let Some(member) = &member {
            // Without this a one-member ensemble would run standalone.
            cfg.push_str("standaloneEnabled=false\n");
            for &(id, quorum, election) in &member.servers {
                let _ = writeln!(cfg, "server.{id}=127.0.0.1:{quorum}:{election}");
                if id == member.id {
                    ports.extend([quorum, election]);
                }
            }
            fs::write(data_dir.join("myid"), format!("{}\n", member.id))
                .map_err(|e| HarnessError::io("cannot write myid", e))?;
        }
        let mut jvm_args = Vec::new();
        if let Some((security, secure_port)) = secure {
            ports.push(secure_port);
            cfg.push_str(&security.zoo_cfg(secure_port));
            let mut classpath = install.classpath.clone();
            for jar in NETTY_JARS {
                if !Path::new(jar).is_file() {
                    return Err(HarnessError::io(
                        format!("{jar} is missing: ZooKeeper's TLS needs Netty (libnetty-java)"),
                        io::Error::from(io::ErrorKind::NotFound),
                    ));
                }
                classpath.push(':');
                classpath.push_str(jar);
            }
            jvm_args.extend(["-cp".to_owned(), classpath]);
            if let Some(jaas) = security.jaas() {
                let path = dir.path().join("jaas.conf");
                fs::write(&path, jaas)
                    .map_err(|e| HarnessError::io("cannot write jaas.conf", e))?;
                jvm_args.push(format!(
                    "-Djava.security.auth.login.config={}",
                    path.display()
                ));
            }
        }
        fs::write(dir.path().join("zoo.cfg"), cfg)
            .map_err(|e| HarnessError::io("cannot write zoo.cfg", e))?;
        Ok(ZkServer {
            install,
            client_port,
            ports,
            member_id,
            secure_port: secure.map(|(_, port)| port),
            jvm_args,
            full_jit: settings.full_jit,
            process: Mutex::new(Process::default()),
            dir,
        })
    }

    /// Spawns the JVM; does not wait for it to serve.
    pub(crate) fn launch(&self) -> Result<(), HarnessError> {
        let mut process = self.lock();
        if process.child.is_some() {
            return Ok(());
        }
        process.launches += 1;
        let log_path = self.log_path();
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| HarnessError::io(format!("cannot open {}", log_path.display()), e))?;
        let _ = writeln!(
            log,
            "{LAUNCH_MARKER} {} on port {} ---",
            process.launches, self.client_port
        );
        let stderr = log
            .try_clone()
            .map_err(|e| HarnessError::io("cannot clone the log file handle", e))?;
        let mut command = Command::new(&self.install.java);
        command.args([
            "-Xmx256m",
            "-XX:+UseSerialGC",
            "-Djava.net.preferIPv4Stack=true",
            "-Dzookeeper.admin.enableServer=false",
        ]);
        if !self.full_jit {
            command.arg("-XX:TieredStopAtLevel=1");
        }
        if self.jvm_args.is_empty() {
            command.args(["-cp", &self.install.classpath]);
        } else {
            // A secure server's classpath (with Netty) and JAAS file.
            command.args(&self.jvm_args);
        }
        let child = command
            .arg("org.apache.zookeeper.server.quorum.QuorumPeerMain")
            .arg(self.dir.path().join("zoo.cfg"))
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            .spawn()
            .map_err(|e| {
                HarnessError::io(format!("cannot spawn {}", self.install.java.display()), e)
            })?;
        tracing::debug!(
            port = self.client_port,
            pid = child.id(),
            "ZooKeeper launched"
        );
        process.child = Some(child);
        process.frozen = false;
        Ok(())
    }

    /// Polls `srvr` until the server serves in the mode its role expects, then checks that the
    /// server answering on the port is this one (its `dataDir`).
    pub(crate) fn await_serving(&self, timeout: Duration) -> Result<Mode, ReadyFailure> {
        let started = Instant::now();
        let mut last = Probe::Silent;
        while started.elapsed() < timeout {
            last = self.probe(PROBE_TIMEOUT);
            match &last {
                Probe::Down => {
                    return Err(self.ready_failure(started.elapsed(), &last, "the JVM exited"));
                }
                Probe::Serving(mode) if self.expects(*mode) => {
                    return match self.answering_is_ours() {
                        Ok(()) => Ok(*mode),
                        Err(why) => Err(ReadyFailure {
                            port_conflict: true,
                            error: self.not_ready(started.elapsed(), &last, &why),
                        }),
                    };
                }
                _ => thread::sleep(POLL_INTERVAL),
            }
        }
        Err(self.ready_failure(started.elapsed(), &last, "timed out"))
    }

    fn ready_failure(&self, waited: Duration, last: &Probe, why: &str) -> ReadyFailure {
        ReadyFailure {
            port_conflict: self.last_launch_hit_busy_port(),
            error: self.not_ready(waited, last, why),
        }
    }

    /// Whether the log of the latest launch reports a port that could not be bound.
    pub(crate) fn last_launch_hit_busy_port(&self) -> bool {
        let tail = self.log_tail(400);
        let last_launch = tail.rsplit(LAUNCH_MARKER).next().unwrap_or_default();
        last_launch.contains("Address already in use") || last_launch.contains("BindException")
    }

    pub(crate) fn not_ready(&self, waited: Duration, last: &Probe, why: &str) -> HarnessError {
        HarnessError::NotReady {
            what: self.describe(),
            waited,
            detail: format!("{why}; last probe: {last:?}\n{}", self.log_report()),
        }
    }

    fn expects(&self, mode: Mode) -> bool {
        match self.member_id {
            None => mode == Mode::Standalone,
            Some(_) => matches!(mode, Mode::Leader | Mode::Follower | Mode::Observer),
        }
    }

    pub(crate) fn answering_is_ours(&self) -> Result<(), String> {
        let conf = self
            .try_four_letter("conf", FOUR_LETTER_TIMEOUT)
            .map_err(|e| format!("`conf` failed: {e}"))?;
        let data_dir = four_letter::parse_conf(&conf)
            .remove("dataDir")
            .unwrap_or_default();
        let ours = self.data_dir();
        if Path::new(&data_dir).starts_with(&ours) {
            Ok(())
        } else {
            Err(format!(
                "another server answers on port {}: its dataDir is {data_dir:?}, ours is {}",
                self.client_port,
                ours.display()
            ))
        }
    }

    /// Probes the server once: is the JVM running, and what does `srvr` say?
    pub(crate) fn probe(&self, timeout: Duration) -> Probe {
        if !self.is_running() {
            return Probe::Down;
        }
        match self.try_four_letter("srvr", timeout) {
            Ok(srvr) => match four_letter::parse_mode(&srvr) {
                Some(mode) => Probe::Serving(mode),
                None => Probe::NotServing,
            },
            Err(_) => Probe::Silent,
        }
    }

    /// Waits until the server serves in its expected mode (`standalone`, or for an ensemble
    /// member `leader`/`follower`/`observer`) and returns that mode.
    pub fn wait_ready(&self, timeout: Duration) -> Result<Mode, HarnessError> {
        self.await_serving(timeout).map_err(|failure| failure.error)
    }

    /// The client address, `127.0.0.1:PORT`.
    pub fn client_addr(&self) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, self.client_port))
    }

    /// The connect string for a ZooKeeper client, `127.0.0.1:PORT`.
    pub fn connect_string(&self) -> String {
        self.client_addr().to_string()
    }

    /// The `secureClientPort` of a server started with [`start_secure`](Self::start_secure).
    pub fn secure_port(&self) -> Option<u16> {
        self.secure_port
    }

    /// `127.0.0.1:SECURE_PORT`, for a TLS client.
    ///
    /// # Panics
    /// When the server was not started with [`start_secure`](Self::start_secure).
    pub fn secure_connect_string(&self) -> String {
        let port = self
            .secure_port
            .unwrap_or_else(|| panic!("{} has no secureClientPort", self.describe()));
        format!("127.0.0.1:{port}")
    }

    /// The client port; the same across restarts.
    pub fn port(&self) -> u16 {
        self.client_port
    }

    /// The `myid` of an ensemble member; `None` for a standalone server.
    pub fn member_id(&self) -> Option<u64> {
        self.member_id
    }

    /// The data dir (snapshots and transaction logs); the same across restarts.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The log file: stdout and stderr of every launch, each introduced by a `--- harness` line.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join(LOG_FILE)
    }

    /// The last `lines` lines of the server log (reads at most the last 256 KiB).
    pub fn log_tail(&self, lines: usize) -> String {
        read_tail(&self.log_path(), lines)
            .unwrap_or_else(|e| format!("(cannot read {}: {e})", self.log_path().display()))
    }

    /// The process id of the running JVM; `None` when it is not running.
    pub fn pid(&self) -> Option<u32> {
        let mut process = self.lock();
        reap_if_exited(&mut process);
        process.child.as_ref().map(Child::id)
    }

    /// Whether the JVM is running (a frozen JVM is running).
    pub fn is_running(&self) -> bool {
        self.pid().is_some()
    }

    /// Whether the JVM is stopped by [`freeze`](Self::freeze).
    pub fn is_frozen(&self) -> bool {
        self.lock().frozen
    }

    /// Sends a four-letter word and returns the answer.
    ///
    /// # Panics
    /// When the server does not answer within 5 s; use [`try_four_letter`](Self::try_four_letter)
    /// when failure is an expected outcome.
    pub fn four_letter(&self, cmd: &str) -> String {
        self.try_four_letter(cmd, FOUR_LETTER_TIMEOUT)
            .unwrap_or_else(|e| panic!("`{cmd}` to {} failed: {e}", self.describe()))
    }

    /// Sends a four-letter word; `timeout` bounds the whole exchange. A frozen server gives an
    /// error of kind [`io::ErrorKind::TimedOut`], a killed one `ConnectionRefused`.
    pub fn try_four_letter(&self, cmd: &str, timeout: Duration) -> io::Result<String> {
        four_letter::four_letter(self.client_addr(), cmd, timeout)
    }

    /// The server's role from `srvr`; `None` when it does not answer within 1 s or does not
    /// serve.
    pub fn mode(&self) -> Option<Mode> {
        match self.probe(Duration::from_secs(1)) {
            Probe::Serving(mode) => Some(mode),
            _ => None,
        }
    }

    /// The `mntr` metrics, e.g. `zk_version`, `zk_znode_count`, `zk_watch_count`,
    /// `zk_num_alive_connections`.
    ///
    /// # Panics
    /// When the server does not answer within 5 s.
    pub fn mntr(&self) -> BTreeMap<String, String> {
        four_letter::parse_mntr(&self.four_letter("mntr"))
    }

    /// Kills the JVM with SIGKILL and reaps it: a crash. Sessions stay in the data dir and
    /// survive a [`restart`](Self::restart) within their timeout. Does nothing when not running.
    pub fn kill(&self) {
        let mut process = self.lock();
        if let Some(mut child) = process.child.take() {
            if let Err(e) = child.kill() {
                // Only fails when the child was already reaped, which take() rules out, or
                // when it is gone already: wait() below settles both.
                tracing::debug!(error = %e, "SIGKILL failed");
            }
            if let Err(e) = child.wait() {
                panic!("cannot reap the JVM of {}: {e}", self.describe());
            }
            tracing::debug!(port = self.client_port, "ZooKeeper killed");
        }
        process.frozen = false;
    }

    /// Stops the JVM with SIGTERM, waits up to 10 s for it to exit, then kills it. Does nothing
    /// when not running.
    pub fn stop(&self) {
        let mut process = self.lock();
        let Some(pid) = process.child.as_ref().map(Child::id) else {
            return;
        };
        if process.frozen {
            let _ = signal(pid, "CONT");
            process.frozen = false;
        }
        if signal(pid, "TERM").is_ok() {
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                reap_if_exited(&mut process);
                if process.child.is_none() {
                    return;
                }
                thread::sleep(Duration::from_millis(20));
            }
        }
        drop(process);
        self.kill();
    }

    /// Stops the JVM with SIGSTOP and waits until all its threads are stopped: connections stay
    /// open but nothing answers, like a long GC pause or a silent partition.
    ///
    /// # Panics
    /// When the server is not running.
    pub fn freeze(&self) {
        let mut process = self.lock();
        reap_if_exited(&mut process);
        let pid = process
            .child
            .as_ref()
            .map(Child::id)
            .unwrap_or_else(|| panic!("cannot freeze {}: not running", self.describe()));
        signal(pid, "STOP").unwrap_or_else(|e| panic!("cannot freeze {}: {e}", self.describe()));
        process.frozen = true;
        // kill(2) returns before the group stop completes: the kernel wakes one thread, which
        // then stops the others. On a loaded machine the JVM can still answer a request
        // meanwhile, so wait until every thread is stopped.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !all_threads_stopped(pid) {
            assert!(
                Instant::now() < deadline,
                "{} did not stop within 5 s of SIGSTOP",
                self.describe()
            );
            thread::sleep(Duration::from_millis(2));
        }
    }

    /// Resumes a frozen JVM with SIGCONT. Does nothing when it is not frozen.
    pub fn thaw(&self) {
        let mut process = self.lock();
        if !process.frozen {
            return;
        }
        if let Some(pid) = process.child.as_ref().map(Child::id) {
            signal(pid, "CONT").unwrap_or_else(|e| panic!("cannot thaw {}: {e}", self.describe()));
        }
        process.frozen = false;
    }

    /// Kills the JVM, starts it again on the same port and data dir, and waits until it serves.
    ///
    /// An ensemble member serves only once it has joined a quorum: to restart a member while the
    /// quorum is down, use [`revive`](Self::revive) on several members and wait afterwards.
    ///
    /// # Panics
    /// When the server does not serve within 30 s of a launch, or its port stays busy for about
    /// 20 s.
    pub fn restart(&self) {
        self.kill();
        let mut attempt = 1;
        loop {
            self.revive();
            match self.await_serving(READY_TIMEOUT) {
                Ok(_) => return,
                // The port is still (or again) held: revive() waited for it, give it more time.
                Err(failure) if failure.port_conflict && attempt < RESTART_ATTEMPTS => {
                    tracing::debug!(port = self.client_port, attempt, "port busy on restart");
                    self.kill();
                    thread::sleep(Duration::from_millis(200 * u64::from(attempt)));
                    attempt += 1;
                }
                Err(failure) => panic!(
                    "restart failed (attempt {attempt} of {RESTART_ATTEMPTS}): {}",
                    failure.error
                ),
            }
        }
    }

    /// Starts the JVM again (same port, same data dir) after [`kill`](Self::kill) or
    /// [`stop`](Self::stop) without waiting for it to serve; pair it with
    /// [`wait_ready`](Self::wait_ready) or [`ZkEnsemble::wait_for_quorum`]. Does nothing when it
    /// is running. Waits up to 5 s for the ports to be free first.
    ///
    /// # Panics
    /// When the JVM cannot be spawned.
    ///
    /// [`ZkEnsemble::wait_for_quorum`]: super::ZkEnsemble::wait_for_quorum
    pub fn revive(&self) {
        if self.is_running() {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.ports.iter().all(|&port| port_is_free(port)) && Instant::now() < deadline {
            thread::sleep(POLL_INTERVAL);
        }
        self.launch().unwrap_or_else(|e| panic!("{e}"));
    }

    /// Starts a [`TcpProxy`] in front of this server's client port.
    pub fn proxy(&self) -> TcpProxy {
        TcpProxy::start(self.client_addr())
    }

    fn lock(&self) -> MutexGuard<'_, Process> {
        // A panic while holding the lock leaves the state usable: recover it, Drop needs it.
        self.process.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn describe(&self) -> String {
        match self.member_id {
            None => format!("ZooKeeper standalone on 127.0.0.1:{}", self.client_port),
            Some(id) => format!(
                "ZooKeeper member {id} on 127.0.0.1:{} (ports {:?})",
                self.client_port, self.ports
            ),
        }
    }

    /// A report for error messages: the log path and its last lines.
    pub(crate) fn log_report(&self) -> String {
        format!(
            "--- last {LOG_TAIL_LINES} lines of {} ---\n{}",
            self.log_path().display(),
            self.log_tail(LOG_TAIL_LINES)
        )
    }
}

impl Drop for ZkServer {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!(
                "{} at the time of the panic:\n{}",
                self.describe(),
                self.log_report()
            );
        }
        let mut process = self.lock();
        if let Some(mut child) = process.child.take() {
            if process.frozen {
                let _ = signal(child.id(), "CONT");
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        process.frozen = false;
    }
}

/// Reserves `n` distinct free loopback ports: all are bound at once, then released.
pub(crate) fn reserve_ports(n: usize) -> io::Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<io::Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect()
}

/// Whether a listener could bind the port now (std sets SO_REUSEADDR, as ZooKeeper does).
fn port_is_free(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

fn reap_if_exited(process: &mut Process) {
    if let Some(child) = process.child.as_mut() {
        if let Ok(Some(status)) = child.try_wait() {
            tracing::debug!(pid = child.id(), %status, "ZooKeeper exited on its own");
            process.child = None;
            process.frozen = false;
        }
    }
}

/// Sends a signal with `kill(1)`: the workspace forbids the `unsafe` a libc call would need.
fn signal(pid: u32, name: &str) -> io::Result<()> {
    let status = Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "`kill -{name} {pid}` failed: {status}"
        )))
    }
}

/// Whether every thread of `pid` is stopped (state `T`, or `t` under a tracer), per /proc.
fn all_threads_stopped(pid: u32) -> bool {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().all(|task| {
        fs::read_to_string(task.path().join("stat")).is_ok_and(|stat| {
            // The state follows the command name, which is in parentheses and may hold spaces.
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next())
                .is_some_and(|state| state == 'T' || state == 't')
        })
    })
}

fn read_tail(path: &Path, lines: usize) -> io::Result<String> {
    const MAX: u64 = 256 * 1024;
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(MAX)))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    Ok(all[all.len().saturating_sub(lines)..].join("\n"))
}
