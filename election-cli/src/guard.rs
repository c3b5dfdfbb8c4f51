//! The guard: a tiny process that kills the child's whole process group when the supervisor
//! dies, however it dies (SIGKILL included).
//!
//! The parent-death signal (`child.rs`) reaches only the supervisor's direct child; a
//! grandchild (`sh -c 'prog &'`, a daemon's workers) would survive it. So the supervisor starts
//! this binary again as the hidden subcommand `election __guard`, in a process group of its
//! own, with a pipe on its stdin whose only writer is the supervisor (the write end is
//! close-on-exec, so the child never holds it). The supervisor writes `+<group>` when a child
//! starts and `-<group>` when the group is gone. When the supervisor dies, the kernel closes
//! the pipe; the guard reads end-of-file and sends SIGKILL to every group it was told of, then
//! exits. It ignores SIGINT, SIGTERM and SIGHUP (a Ctrl-C in a terminal, a `systemctl stop`
//! that signals the whole cgroup) so that it outlives the supervisor when it must.

use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;

use rustix::process::{Pid, Signal};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::signal::unix::{signal, SignalKind};
use tracing::{info, warn};

use crate::child::signal_group;

/// The hidden subcommand that runs the guard.
pub const SUBCOMMAND: &str = "__guard";

/// The supervisor's end of the guard.
#[derive(Debug)]
pub struct Guard {
    /// Written with plain blocking writes of a few bytes (the guard reads at once, the pipe
    /// holds 64 KiB), so that a drop guard can announce too.
    stdin: Mutex<ChildStdin>,
    child: Mutex<Child>,
}

impl Guard {
    /// Starts the guard (this same binary, `election __guard`).
    pub fn start() -> std::io::Result<Guard> {
        let exe = std::env::current_exe()?;
        let mut child = Command::new(exe)
            .arg(SUBCOMMAND)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .env_remove("NOTIFY_SOCKET")
            .env_remove(crate::ZK_SASL_PASSWORD_ENV)
            .env_remove(crate::ETCD_PASSWORD_ENV)
            .process_group(0)
            .spawn()?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| std::io::Error::other("the guard has no stdin"))?;
        Ok(Guard {
            stdin: Mutex::new(stdin),
            child: Mutex::new(child),
        })
    }

    /// Tells the guard a child's group exists (`live`) or is gone.
    pub fn announce(&self, group: Pid, live: bool) {
        let line = format!(
            "{}{}\n",
            if live { '+' } else { '-' },
            group.as_raw_nonzero()
        );
        let mut stdin = self.stdin.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = stdin.write_all(line.as_bytes()) {
            warn!(error = %e, "the guard process is gone: grandchildren are no longer covered if the supervisor is killed");
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        // Closing the pipe ends the guard (with nothing left to kill); reap it.
        let child = self.child.get_mut().unwrap_or_else(|e| e.into_inner());
        let _ = child.try_wait();
    }
}

/// The guard's own main: returns when the supervisor is gone, after killing what it left.
pub async fn run() {
    // Handlers that do nothing: the signals no longer end this process.
    let mut ignored = Vec::new();
    for kind in [
        SignalKind::interrupt(),
        SignalKind::terminate(),
        SignalKind::hangup(),
    ] {
        match signal(kind) {
            Ok(s) => ignored.push(s),
            Err(e) => warn!(error = %e, "guard cannot ignore a signal"),
        }
    }
    let mut groups: BTreeSet<i32> = BTreeSet::new();
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let (live, id) = match line.split_at_checked(1) {
            Some(("+", id)) => (true, id),
            Some(("-", id)) => (false, id),
            _ => continue,
        };
        if let Ok(group) = id.parse::<i32>() {
            if live {
                groups.insert(group);
            } else {
                groups.remove(&group);
            }
        }
    }
    for group in groups.into_iter().filter_map(Pid::from_raw) {
        info!(
            group = group.as_raw_nonzero().get(),
            "supervisor gone: killing its child's process group"
        );
        signal_group(group, Signal::KILL);
    }
    drop(ignored);
}
