//! The supervised command: started in a process group of its own, dying with the supervisor,
//! and stopped (its whole group) with SIGTERM, a grace, then SIGKILL.
//!
//! The one `unsafe` of this crate is [`die_with_supervisor`].

use std::ffi::OsString;
use std::io;
use std::process::ExitStatus;
use std::time::Duration;

use rustix::process::{kill_process_group, test_kill_process_group, Pid, Signal};
use tokio::process::{Child, Command};
use tokio::time::{sleep, Instant};
use tracing::{debug, warn};

/// How often a stop looks whether the process group is empty.
const POLL: Duration = Duration::from_millis(5);

/// What the child gets besides the supervisor's environment.
#[derive(Debug, Clone)]
pub struct ChildEnv {
    /// `ELECTION_TOKEN`, `ELECTION_PATH`, `ELECTION_ID`, `ELECTION_SESSION`.
    pub vars: Vec<(&'static str, String)>,
}

/// Starts `argv` directly (no shell), in a process group of its own (its pid is the group id),
/// with stdin, stdout and stderr inherited, `env` added, `NOTIFY_SOCKET` and the password
/// variables ([`SECRET_ENV`](crate::SECRET_ENV)) removed, and
/// SIGKILL as its parent-death signal.
///
/// Must be called from a thread that lives as long as the supervisor: the parent-death signal
/// fires when the *thread* that forked the child ends (the supervisor runs a current-thread
/// runtime on its main thread, and starts children there).
pub fn spawn(argv: &[OsString], env: &ChildEnv) -> io::Result<(Child, Pid)> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no command to run"))?;
    let mut command = Command::new(program);
    command
        .args(args)
        .env_remove("NOTIFY_SOCKET")
        .process_group(0)
        .kill_on_drop(false);
    for key in crate::SECRET_ENV {
        command.env_remove(key);
    }
    for (key, value) in &env.vars {
        command.env(key, value);
    }
    die_with_supervisor(&mut command);
    let child = command.spawn()?;
    let pid = child
        .id()
        .and_then(|id| Pid::from_raw(id as i32))
        .ok_or_else(|| io::Error::other("the child has no pid"))?;
    Ok((child, pid))
}

/// Sets SIGKILL as the child's parent-death signal, between fork and exec: if the supervisor is
/// killed (even with SIGKILL), the kernel kills its direct child at once. If the supervisor
/// died before the signal was set (between fork and `prctl`), the child fails to start instead.
///
/// Grandchildren are not covered by this signal; the guard process (`guard.rs`) kills the
/// child's whole process group when the supervisor dies.
#[allow(unsafe_code)]
fn die_with_supervisor(command: &mut Command) {
    let supervisor = rustix::process::getpid();
    // SAFETY: the closure runs in the forked child before exec. It only makes system calls
    // that are async-signal-safe (`prctl`, `getppid`), allocates nothing (an `Errno` converts
    // into an `io::Error` without allocating) and touches no lock.
    unsafe {
        command.pre_exec(move || {
            rustix::process::set_parent_process_death_signal(Some(Signal::KILL))?;
            if rustix::process::getppid() != Some(supervisor) {
                // The supervisor is already gone: do not start an orphan.
                return Err(rustix::io::Errno::SRCH.into());
            }
            Ok(())
        });
    }
}

/// Sends `signal` to the process group `group`; a group that is gone is not an error.
pub fn signal_group(group: Pid, signal: Signal) {
    match kill_process_group(group, signal) {
        Ok(()) | Err(rustix::io::Errno::SRCH) => {}
        Err(e) => {
            warn!(group = group.as_raw_nonzero().get(), ?signal, error = %e, "cannot signal the child's process group")
        }
    }
}

/// `true` once no process of the group `group` is left (zombies count until reaped).
pub fn group_gone(group: Pid) -> bool {
    matches!(test_kill_process_group(group), Err(rustix::io::Errno::SRCH))
}

/// Makes the supervisor a child subreaper: the child's orphaned descendants (a grandchild whose
/// parent died) are re-parented to the supervisor rather than to init, so that it reaps them
/// itself ([`reap_group`]) and knows at once when the group is gone, whatever init does (a
/// container without one, an init slow to reap).
pub fn become_subreaper() {
    if let Err(e) = rustix::process::set_child_subreaper(Some(rustix::process::getpid())) {
        warn!(error = %e, "cannot become a child subreaper: orphaned grandchildren are left to init to reap");
    }
}

/// Reaps the exited processes of `group` that are the supervisor's children (grandchildren
/// adopted as a subreaper). Call only once the group's leader, the direct child, was reaped
/// through its handle (it would otherwise be reaped here, from under the handle). Returns
/// `false` once the supervisor has no child left in the group.
pub fn reap_group(group: Pid) -> bool {
    use rustix::process::{waitid, WaitId, WaitIdOptions};
    loop {
        match waitid(
            WaitId::Pgid(Some(group)),
            WaitIdOptions::EXITED | WaitIdOptions::NOHANG,
        ) {
            Ok(Some(_)) => continue,
            Ok(None) => return true,
            Err(_) => return false,
        }
    }
}

/// How a stop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Everything in the group ended within the grace, after SIGTERM.
    Terminated,
    /// SIGKILL was needed.
    Killed,
    /// SIGKILL was sent but some process of the group was still there after `margin` (a
    /// zombie no one reaps, a process stuck in the kernel).
    Lingering,
}

/// Stops the child and its whole group: SIGTERM to the group, up to `grace` for the child to be
/// reaped and the group to empty, then SIGKILL to the group and up to `margin` more. Returns the
/// child's status (if it was reaped) and how the stop went.
pub async fn stop_group(
    child: &mut Child,
    group: Pid,
    grace: Duration,
    margin: Duration,
) -> (Option<ExitStatus>, Stopped) {
    signal_group(group, Signal::TERM);
    let deadline = Instant::now() + grace;
    if let Some(status) = wait_gone(child, group, deadline).await {
        return (Some(status), Stopped::Terminated);
    }
    debug!(
        group = group.as_raw_nonzero().get(),
        "grace over: SIGKILL to the child's process group"
    );
    signal_group(group, Signal::KILL);
    let status = wait_gone(child, group, Instant::now() + margin).await;
    match status {
        Some(status) => (Some(status), Stopped::Killed),
        None => (child.try_wait().ok().flatten(), Stopped::Lingering),
    }
}

/// Waits until the child is reaped and its group is empty, until `deadline`.
pub async fn wait_gone(child: &mut Child, group: Pid, deadline: Instant) -> Option<ExitStatus> {
    let status = tokio::select! {
        status = child.wait() => status.ok()?,
        () = tokio::time::sleep_until(deadline) => return None,
    };
    // The leader is reaped: what is left of the group are grandchildren, adopted by the
    // supervisor (a subreaper) once their parent died, reaped here as they end.
    loop {
        reap_group(group);
        if group_gone(group) {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        sleep(POLL).await;
    }
}

/// The supervisor's exit code for a child's status: its exit code, or `128 + N` when signal `N`
/// killed it (the shell's convention).
pub fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => 1,
    }
}

/// Resolves the program to run as `execvp` would, so that a command that cannot be run is a
/// usage error before anything is created (exit 127 when not found, 126 when not executable).
pub fn check_program(program: &OsString) -> Result<(), (i32, String)> {
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};
    let executable = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    let path = Path::new(program);
    if path.as_os_str().is_empty() {
        return Err((127, "the command is empty".into()));
    }
    let candidates: Vec<PathBuf> =
        if path.components().count() > 1 || program.to_string_lossy().contains('/') {
            vec![path.to_path_buf()]
        } else {
            std::env::var_os("PATH")
                .map(|paths| {
                    std::env::split_paths(&paths)
                        .map(|d| d.join(path))
                        .collect()
                })
                .unwrap_or_default()
        };
    if candidates.iter().any(|p| executable(p)) {
        return Ok(());
    }
    if candidates.iter().any(|p| p.exists()) {
        Err((126, format!("{} is not an executable file", path.display())))
    } else {
        Err((127, format!("command not found: {}", path.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn exit_codes_follow_the_shell() {
        assert_eq!(exit_code(ExitStatus::from_raw(5 << 8)), 5);
        assert_eq!(exit_code(ExitStatus::from_raw(0)), 0);
        // Killed by SIGKILL (9) and SIGTERM (15).
        assert_eq!(exit_code(ExitStatus::from_raw(9)), 137);
        assert_eq!(exit_code(ExitStatus::from_raw(15)), 143);
    }

    #[test]
    fn programs_are_resolved_like_execvp() {
        assert!(check_program(&"sh".into()).is_ok());
        assert!(check_program(&"/bin/sh".into()).is_ok());
        assert_eq!(
            check_program(&"no-such-program-here".into()).unwrap_err().0,
            127
        );
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("not-executable");
        std::fs::write(&plain, "").unwrap();
        assert_eq!(check_program(&plain.into_os_string()).unwrap_err().0, 126);
        assert_eq!(check_program(&"".into()).unwrap_err().0, 127);
    }
}
