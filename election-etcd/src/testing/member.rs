//! etcd members as child processes: [`EtcdMember`] and [`EtcdCluster`].

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::{require_etcd, HarnessError, TcpProxy};

/// `--heartbeat-interval` of every member the harness starts (etcd's default).
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(100);
/// `--election-timeout` of every member the harness starts (etcd's default). The least lease TTL
/// the members grant is `1.5 x` this, rounded up to whole seconds: 2 s.
pub const ELECTION_TIMEOUT: Duration = Duration::from_millis(1000);

/// How long a member (or a cluster) may take to serve after a launch.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Starts tried with fresh ports when a port turns out to be taken.
const START_ATTEMPTS: u32 = 4;
const LOG_TAIL_LINES: usize = 40;
const LAUNCH_MARKER: &str = "--- harness: launch";

/// The TLS files of a member started with [`EtcdMember::start_secure`] (PEM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdSecurity {
    /// The server certificate (it must name `127.0.0.1`).
    pub cert_file: PathBuf,
    /// The server's private key.
    pub key_file: PathBuf,
    /// The CA the client certificates must chain to.
    pub ca_file: PathBuf,
}

/// One etcd member as a child process on loopback, with its own ports and data dir.
///
/// All methods take `&self`, so a member can be shared with a thread that injects faults.
/// Dropping it kills and reaps the process; a member started alone also removes its directory.
///
/// ```no_run
/// use election_etcd::testing::EtcdMember;
///
/// let etcd = EtcdMember::start();
/// let endpoint = etcd.endpoint(); // "127.0.0.1:PORT"
/// etcd.freeze(); // SIGSTOP: clients see silence
/// etcd.thaw();
/// etcd.restart(); // same ports, same data dir
/// # let _ = endpoint;
/// ```
#[derive(Debug)]
pub struct EtcdMember {
    name: String,
    client_port: u16,
    peer_port: u16,
    initial_cluster: String,
    data_dir: PathBuf,
    log_path: PathBuf,
    /// For a member started with [`EtcdMember::start_secure`]: its TLS files and the plain
    /// port of its health endpoint.
    secure: Option<(EtcdSecurity, u16)>,
    process: Mutex<Process>,
    // Last: the directory goes after the process is reaped.
    _dir: Option<TempDir>,
}

#[derive(Debug, Default)]
struct Process {
    child: Option<Child>,
    frozen: bool,
}

impl EtcdMember {
    /// Starts a single-member cluster and waits until it serves.
    ///
    /// # Panics
    /// When etcd is not installed, or it does not serve within 30 s (with its log).
    pub fn start() -> EtcdMember {
        Self::start_with(None)
    }

    /// Starts a single-member cluster that serves clients over TLS only (`https://`, with
    /// `--client-cert-auth`: clients must present a certificate signed by the CA), and waits
    /// until it serves. Its health is probed on a plain metrics port.
    ///
    /// # Panics
    /// As [`start`](Self::start).
    pub fn start_secure(security: EtcdSecurity) -> EtcdMember {
        Self::start_with(Some(security))
    }

    fn start_with(security: Option<EtcdSecurity>) -> EtcdMember {
        let mut last = String::new();
        for _ in 0..START_ATTEMPTS {
            let dir = tempfile::Builder::new()
                .prefix("etcd-member-")
                .tempdir()
                .expect("temp dir for an etcd member");
            let ports = reserve_ports(3).expect("free ports");
            let (client, peer) = (ports[0], ports[1]);
            let name = "m0".to_owned();
            let initial = format!("{name}=http://127.0.0.1:{peer}");
            let root = dir.path().to_owned();
            let mut member = EtcdMember::new(name, client, peer, initial, &root, Some(dir));
            member.secure = security.clone().map(|s| (s, ports[2]));
            member.launch();
            match member.wait_ready(READY_TIMEOUT) {
                Ok(()) => return member,
                Err(e) => last = e.to_string(),
            }
        }
        panic!("no etcd member started in {START_ATTEMPTS} attempts; last: {last}");
    }

    fn new(
        name: String,
        client_port: u16,
        peer_port: u16,
        initial_cluster: String,
        root: &Path,
        dir: Option<TempDir>,
    ) -> Self {
        let data_dir = root.join(format!("{name}.data"));
        let log_path = root.join(format!("{name}.log"));
        Self {
            name,
            client_port,
            peer_port,
            initial_cluster,
            data_dir,
            log_path,
            secure: None,
            process: Mutex::new(Process::default()),
            _dir: dir,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Process> {
        self.process.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn launch(&self) {
        let bin = require_etcd();
        let mut process = self.lock();
        assert!(
            process.child.is_none(),
            "{} is already running",
            self.describe()
        );
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", self.log_path.display()));
        let _ = writeln!(log, "{LAUNCH_MARKER}");
        let err = log.try_clone().expect("log handle");
        let scheme = if self.secure.is_some() {
            "https"
        } else {
            "http"
        };
        let client = format!("{scheme}://127.0.0.1:{}", self.client_port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let mut command = Command::new(&bin);
        if let Some((tls, metrics_port)) = &self.secure {
            command
                .arg("--cert-file")
                .arg(&tls.cert_file)
                .arg("--key-file")
                .arg(&tls.key_file)
                .arg("--trusted-ca-file")
                .arg(&tls.ca_file)
                .arg("--client-cert-auth")
                .args([
                    "--listen-metrics-urls",
                    &format!("http://127.0.0.1:{metrics_port}"),
                ]);
        }
        let child = command
            .arg("--name")
            .arg(&self.name)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &self.initial_cluster])
            .args(["--initial-cluster-state", "new"])
            .args([
                "--initial-cluster-token",
                // One token per cluster: its members must agree on it.
                &cluster_token(&self.initial_cluster),
            ])
            .arg(format!(
                "--heartbeat-interval={}",
                HEARTBEAT_INTERVAL.as_millis()
            ))
            .arg(format!(
                "--election-timeout={}",
                ELECTION_TIMEOUT.as_millis()
            ))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
        tracing::debug!(pid = child.id(), member = %self.describe(), "etcd launched");
        process.child = Some(child);
        process.frozen = false;
    }

    /// Waits until the member answers `GET /health` with `"health":"true"` (it has a leader).
    pub fn wait_ready(&self, timeout: Duration) -> Result<(), HarnessError> {
        let deadline = Instant::now() + timeout;
        let mut last: String;
        loop {
            {
                let mut process = self.lock();
                if let Some(child) = process.child.as_mut() {
                    if let Ok(Some(status)) = child.try_wait() {
                        process.child = None;
                        return Err(HarnessError::NotReady {
                            what: self.describe(),
                            waited: timeout,
                            detail: format!("exited: {status}\n{}", self.log_report()),
                        });
                    }
                }
            }
            let health = match &self.secure {
                Some((_, metrics_port)) => SocketAddr::from((Ipv4Addr::LOCALHOST, *metrics_port)),
                None => self.client_addr(),
            };
            match http_get(health, "/health", PROBE_TIMEOUT) {
                Ok(body) if body.contains("\"health\":\"true\"") => return Ok(()),
                Ok(body) => last = body,
                Err(e) => last = e.to_string(),
            }
            if Instant::now() >= deadline {
                return Err(HarnessError::NotReady {
                    what: self.describe(),
                    waited: timeout,
                    detail: format!("last probe: {last}\n{}", self.log_report()),
                });
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// The client address.
    pub fn client_addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.client_port))
    }

    /// The endpoint to give a backend: `127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        self.client_addr().to_string()
    }

    /// The member's name (`m0`, `m1`, ...).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The last `lines` lines of the member's log.
    pub fn log_tail(&self, lines: usize) -> String {
        read_tail(&self.log_path, lines).unwrap_or_else(|e| format!("(no log: {e})"))
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.lock().child.as_ref().map(Child::id)
    }

    /// Whether the process is running (frozen counts as running).
    pub fn is_running(&self) -> bool {
        let mut process = self.lock();
        if let Some(child) = process.child.as_mut() {
            if let Ok(Some(_)) = child.try_wait() {
                process.child = None;
            }
        }
        process.child.is_some()
    }

    /// Kills the member with SIGKILL and reaps it. Does nothing when it is not running.
    pub fn kill(&self) {
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

    /// Stops the member with SIGSTOP: connections stay open but nothing answers.
    ///
    /// # Panics
    /// When it is not running.
    pub fn freeze(&self) {
        let mut process = self.lock();
        let pid = process
            .child
            .as_ref()
            .map(Child::id)
            .unwrap_or_else(|| panic!("{} is not running", self.describe()));
        signal(pid, "STOP").unwrap_or_else(|e| panic!("cannot freeze {}: {e}", self.describe()));
        process.frozen = true;
    }

    /// Resumes a frozen member with SIGCONT. Does nothing when it is not frozen.
    pub fn thaw(&self) {
        let mut process = self.lock();
        if let (true, Some(child)) = (process.frozen, process.child.as_ref()) {
            signal(child.id(), "CONT")
                .unwrap_or_else(|e| panic!("cannot thaw {}: {e}", self.describe()));
        }
        process.frozen = false;
    }

    /// Kills the member (if running) and launches it again on the same ports and data dir, and
    /// waits until it serves (a member of a cluster serves once the cluster has a leader).
    ///
    /// # Panics
    /// When it does not serve within 30 s.
    pub fn restart(&self) {
        self.kill();
        self.revive();
        self.wait_ready(READY_TIMEOUT)
            .unwrap_or_else(|e| panic!("restart: {e}"));
    }

    /// Launches a killed member again on the same ports and data dir, without waiting.
    pub fn revive(&self) {
        if !self.is_running() {
            self.launch();
        }
    }

    /// A TCP proxy in front of the client port: give its address to a backend to cut or stall
    /// that client alone.
    pub fn proxy(&self) -> TcpProxy {
        TcpProxy::start(self.client_addr())
    }

    fn describe(&self) -> String {
        format!(
            "etcd member {} on 127.0.0.1:{} (peer port {})",
            self.name, self.client_port, self.peer_port
        )
    }

    fn log_report(&self) -> String {
        format!(
            "--- last {LOG_TAIL_LINES} lines of {} ---\n{}",
            self.log_path.display(),
            self.log_tail(LOG_TAIL_LINES)
        )
    }
}

impl Drop for EtcdMember {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!(
                "{} at the time of the panic:\n{}",
                self.describe(),
                self.log_report()
            );
        }
        self.kill();
    }
}

/// `n` etcd members forming one cluster on loopback.
///
/// Dropping it kills every member and removes the directory.
#[derive(Debug)]
pub struct EtcdCluster {
    members: Vec<EtcdMember>,
    _dir: TempDir,
}

impl EtcdCluster {
    /// Starts `n` members and waits until every one serves.
    ///
    /// # Panics
    /// When etcd is not installed, or the cluster does not serve within 30 s.
    pub fn start(n: usize) -> EtcdCluster {
        assert!(n >= 1, "a cluster has at least one member");
        let mut last = String::new();
        for _ in 0..START_ATTEMPTS {
            let dir = tempfile::Builder::new()
                .prefix("etcd-cluster-")
                .tempdir()
                .expect("temp dir for an etcd cluster");
            let ports: Vec<[u16; 2]> = {
                let all = reserve_ports(2 * n).expect("free ports");
                all.chunks(2).map(|c| [c[0], c[1]]).collect()
            };
            let initial = ports
                .iter()
                .enumerate()
                .map(|(i, [_, peer])| format!("m{i}=http://127.0.0.1:{peer}"))
                .collect::<Vec<_>>()
                .join(",");
            let members: Vec<EtcdMember> = ports
                .iter()
                .enumerate()
                .map(|(i, [client, peer])| {
                    EtcdMember::new(
                        format!("m{i}"),
                        *client,
                        *peer,
                        initial.clone(),
                        dir.path(),
                        None,
                    )
                })
                .collect();
            members.iter().for_each(EtcdMember::launch);
            let ready = members
                .iter()
                .map(|m| m.wait_ready(READY_TIMEOUT))
                .collect::<Result<Vec<_>, _>>();
            match ready {
                Ok(_) => return EtcdCluster { members, _dir: dir },
                Err(e) => last = e.to_string(),
            }
        }
        panic!("no etcd cluster of {n} started in {START_ATTEMPTS} attempts; last: {last}");
    }

    /// The member at `index`.
    pub fn member(&self, index: usize) -> &EtcdMember {
        &self.members[index]
    }

    /// Every member.
    pub fn members(&self) -> &[EtcdMember] {
        &self.members
    }

    /// Every member's endpoint.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(EtcdMember::endpoint).collect()
    }
}

/// The `--initial-cluster-token` of the cluster `initial_cluster` describes: the same for each of
/// its members, different for clusters on other ports.
fn cluster_token(initial_cluster: &str) -> String {
    let ports: Vec<&str> = initial_cluster
        .split(',')
        .filter_map(|m| m.rsplit(':').next())
        .collect();
    format!("harness-{}", ports.join("-"))
}

/// Reserves `n` distinct free loopback ports: all are bound at once, then released.
fn reserve_ports(n: usize) -> io::Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<io::Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect()
}

/// A minimal HTTP/1.0 GET; the body of the answer.
fn http_get(addr: SocketAddr, path: &str, timeout: Duration) -> io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer
        .split_once("\r\n\r\n")
        .map_or(answer.clone(), |(_, body)| body.to_owned()))
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
