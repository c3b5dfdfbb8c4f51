//! Stock peers of other implementations, run as processes: Curator (Debian's `libcurator-*-java`,
//! compiled with `javac` at run time) and kazoo (Debian's `python3-kazoo`, run with
//! `/usr/bin/python3`). Here: finding and compiling them with clear errors when something is
//! missing, and [`Probe`], a long-lived benchmark probe driven one line at a time
//! (`tests/peers/kazoo_bench.py`, `tests/peers/CuratorBench.java`).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Debian's Curator 5 jars.
pub const CURATOR_JARS: [&str; 3] = [
    "/usr/share/java/curator-recipes.jar",
    "/usr/share/java/curator-framework.jar",
    "/usr/share/java/curator-client.jar",
];

/// Debian's python, which sees `python3-kazoo` (a pyenv `python3` does not).
pub const PYTHON: &str = "/usr/bin/python3";

/// The packages that provide the peers, for error messages.
pub const PEER_PACKAGES: &str = "python3-kazoo libcurator-framework-java libcurator-recipes-java \
     libcurator-client-java default-jdk-headless (scripts/test.sh and scripts/bench-zk.sh install them)";

/// `tests/peers`, where the peers' sources live.
pub fn peers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("peers")
}

/// The class path of a Curator peer: the Curator jars, ZooKeeper's client, a silent logger, and
/// `classes` (where the peer was compiled) when given.
pub fn curator_classpath(classes: Option<&Path>) -> String {
    let mut parts: Vec<String> = CURATOR_JARS.iter().map(|s| (*s).to_owned()).collect();
    parts.push("/usr/share/java/zookeeper.jar".into());
    parts.push("/usr/share/java/slf4j-nop.jar".into());
    if let Some(c) = classes {
        parts.push(c.display().to_string());
    }
    parts.join(":")
}

/// Compiles `tests/peers/<source>` against Curator into `out`; `Err` says what is missing or
/// what javac said.
pub fn compile_curator(source: &str, out: &Path) -> Result<(), String> {
    for jar in CURATOR_JARS {
        if !Path::new(jar).exists() {
            return Err(format!("{jar} is missing: install {PEER_PACKAGES}"));
        }
    }
    std::fs::create_dir_all(out).map_err(|e| format!("create {}: {e}", out.display()))?;
    let output = Command::new("javac")
        .arg("-d")
        .arg(out)
        .arg("-cp")
        .arg(curator_classpath(None))
        .arg(peers_dir().join(source))
        .output()
        .map_err(|e| format!("javac could not run ({e}): install {PEER_PACKAGES}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "javac failed on tests/peers/{source}:\n{}",
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// Checks that [`PYTHON`] imports kazoo and compiles `tests/peers/<source>`; `Err` says why not.
pub fn check_kazoo(source: &str) -> Result<(), String> {
    let file = peers_dir().join(source);
    let output = Command::new(PYTHON)
        .args([
            "-c",
            "import sys, kazoo.client, kazoo.recipe.election; \
             compile(open(sys.argv[1]).read(), sys.argv[1], 'exec')",
        ])
        .arg(&file)
        .output()
        .map_err(|e| format!("{PYTHON} could not run ({e}): install {PEER_PACKAGES}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{PYTHON} cannot import kazoo or compile tests/peers/{source} (install {PEER_PACKAGES}):\n{}",
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// How long a probe may stay silent before the harness gives up on it (the probes give up on
/// their own after 30 s and say so).
const SILENCE: Duration = Duration::from_secs(60);

/// A long-lived benchmark probe process speaking the line protocol of `tests/peers/kazoo_bench.py`
/// and `tests/peers/CuratorBench.java`: it says `READY`, then answers each `ROUND` with
/// `ROUND <microseconds>`, and `QUIT` with `CLOSED`; `ERROR <text>` when it fails. Killed and
/// reaped on drop.
pub struct Probe {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

impl Probe {
    /// Starts `cmd` (its stdin and stdout piped, stderr inherited) and waits for `READY`.
    pub fn start(name: impl Into<String>, mut cmd: Command) -> Self {
        let name = name.into();
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("{name} probe could not start ({e}): install {PEER_PACKAGES}")
            });
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut probe = Probe {
            name,
            stdin: child.stdin.take(),
            child,
            lines,
        };
        let ready = probe.line("starting");
        if ready != "READY" {
            probe.broken(&format!("said {ready:?} instead of READY"));
        }
        probe
    }

    /// `tests/peers/kazoo_bench.py`: `n` kazoo `Election` contenders on `path`.
    pub fn kazoo(connect: &str, path: &str, n: usize, session_timeout: Duration) -> Self {
        let mut cmd = Command::new(PYTHON);
        cmd.arg(peers_dir().join("kazoo_bench.py")).args([
            connect,
            path,
            &n.to_string(),
            &session_timeout.as_millis().to_string(),
        ]);
        Self::start(format!("kazoo ({n} candidates)"), cmd)
    }

    /// `tests/peers/CuratorBench.java`, compiled into `classes` by [`compile_curator`]: `n`
    /// Curator `LeaderLatch` contenders on `path`.
    pub fn curator(
        classes: &Path,
        connect: &str,
        path: &str,
        n: usize,
        session_timeout: Duration,
    ) -> Self {
        let mut cmd = Command::new("java");
        cmd.args([
            "-Xmx256m",
            "-XX:+UseSerialGC",
            "-Djava.net.preferIPv4Stack=true",
            "-cp",
            &curator_classpath(Some(classes)),
            "CuratorBench",
            connect,
            path,
            &n.to_string(),
            &session_timeout.as_millis().to_string(),
        ]);
        Self::start(format!("Curator ({n} candidates)"), cmd)
    }

    fn broken(&mut self, what: &str) -> ! {
        let _ = self.child.kill();
        let status = self.child.wait();
        panic!("the {} probe {what} (exit: {status:?})", self.name)
    }

    fn line(&mut self, doing: &str) -> String {
        match self.lines.recv_timeout(SILENCE) {
            Ok(line) => match line.strip_prefix("ERROR ") {
                Some(error) => self.broken(&format!("failed while {doing}: {error}")),
                None => line,
            },
            Err(mpsc::RecvTimeoutError::Timeout) => {
                self.broken(&format!("said nothing for {SILENCE:?} while {doing}"))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                self.broken(&format!("exited while {doing}"))
            }
        }
    }

    fn send(&mut self, command: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open until quit");
        if let Err(e) = writeln!(stdin, "{command}").and_then(|()| stdin.flush()) {
            self.broken(&format!("cannot be written to ({e})"));
        }
    }

    /// One hand-over, as the probe measured it.
    pub fn round(&mut self) -> Duration {
        self.send("ROUND");
        let line = self.line("handing over");
        match line
            .strip_prefix("ROUND ")
            .and_then(|us| us.trim().parse::<u64>().ok())
        {
            Some(us) => Duration::from_micros(us),
            None => self.broken(&format!("answered ROUND with {line:?}")),
        }
    }

    /// Asks the probe to close every contender and exit, and waits for it.
    pub fn quit(mut self) {
        self.send("QUIT");
        let closed = self.line("closing");
        if closed != "CLOSED" {
            self.broken(&format!("answered QUIT with {closed:?}"));
        }
        drop(self.stdin.take());
        let status = self.child.wait().expect("wait for the probe");
        assert!(
            status.success(),
            "the {} probe exited with {status}",
            self.name
        );
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
