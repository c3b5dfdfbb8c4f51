//! systemd readiness and status (`sd_notify`), when `NOTIFY_SOCKET` is set. The variable is
//! removed from the child's environment: the supervisor is the service systemd watches.

use std::os::unix::net::UnixDatagram;

use tracing::debug;

/// A connection to systemd's notification socket, if the supervisor runs under systemd with
/// `Type=notify`.
#[derive(Debug)]
pub struct Notifier {
    socket: Option<(UnixDatagram, std::os::unix::net::SocketAddr)>,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET` (a path, or `@name` for an abstract socket).
    pub fn from_env() -> Self {
        let socket = std::env::var_os("NOTIFY_SOCKET").and_then(|name| {
            let name = name.to_string_lossy().into_owned();
            let addr = if let Some(abstract_name) = name.strip_prefix('@') {
                use std::os::linux::net::SocketAddrExt;
                std::os::unix::net::SocketAddr::from_abstract_name(abstract_name.as_bytes()).ok()?
            } else {
                std::os::unix::net::SocketAddr::from_pathname(&name).ok()?
            };
            Some((UnixDatagram::unbound().ok()?, addr))
        });
        Self { socket }
    }

    /// Sends `state` (such as `READY=1\nSTATUS=leading`); does nothing without systemd.
    pub fn send(&self, state: &str) {
        if let Some((socket, addr)) = &self.socket {
            if let Err(e) = socket.send_to_addr(state.as_bytes(), addr) {
                debug!(error = %e, "sd_notify failed");
            }
        }
    }
}
