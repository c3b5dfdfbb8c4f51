//! The four-letter-word client (`srvr`, `mntr`, `conf`, ...) and parsers for its answers.
//!
//! A four-letter word is a raw TCP exchange on the client port: send four ASCII bytes, read until
//! the server closes. The harness uses it for readiness, leader lookup and ownership checks.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// A server's role, from the `Mode:` line of `srvr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Mode {
    /// A single server, not part of an ensemble.
    Standalone,
    /// The ensemble leader.
    Leader,
    /// An ensemble follower.
    Follower,
    /// An ensemble observer.
    Observer,
    /// A partitioned member serving reads only (`readonlymode.enabled`).
    ReadOnly,
}

impl Mode {
    fn parse(value: &str) -> Option<Mode> {
        match value.trim() {
            "standalone" => Some(Mode::Standalone),
            "leader" => Some(Mode::Leader),
            "follower" => Some(Mode::Follower),
            "observer" => Some(Mode::Observer),
            "read-only" => Some(Mode::ReadOnly),
            _ => None,
        }
    }
}

/// Sends the four-letter word `cmd` to `addr` and returns the whole answer.
///
/// `timeout` bounds the whole exchange (connect, write, read to end of stream). A frozen server
/// accepts the connection (the kernel does) but never answers: that gives an error of kind
/// [`io::ErrorKind::TimedOut`].
pub fn four_letter(addr: SocketAddr, cmd: &str, timeout: Duration) -> io::Result<String> {
    let deadline = Instant::now() + timeout;
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_nodelay(true)?;
    stream.set_write_timeout(Some(remaining(deadline)?))?;
    stream.write_all(cmd.as_bytes())?;
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        stream.set_read_timeout(Some(remaining(deadline)?))?;
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                return Err(timed_out(cmd, addr, timeout));
            }
            Err(e) => return Err(e),
        }
    }
    String::from_utf8(answer).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

fn remaining(deadline: Instant) -> io::Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(io::Error::new(io::ErrorKind::TimedOut, "deadline passed"))
    } else {
        Ok(left)
    }
}

fn timed_out(cmd: &str, addr: SocketAddr, timeout: Duration) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!("no answer to `{cmd}` from {addr} within {timeout:?}"),
    )
}

/// The role in a `srvr` answer; `None` when the server is not serving (no quorum yet, or
/// `This ZooKeeper instance is not currently serving requests`).
pub fn parse_mode(srvr: &str) -> Option<Mode> {
    srvr.lines()
        .find_map(|line| line.strip_prefix("Mode:"))
        .and_then(Mode::parse)
}

/// Parses the tab-separated `key\tvalue` lines of `mntr` (e.g. `zk_version`, `zk_znode_count`).
pub fn parse_mntr(mntr: &str) -> BTreeMap<String, String> {
    mntr.lines()
        .filter_map(|line| line.split_once('\t'))
        .map(|(key, value)| (key.trim().to_owned(), value.trim().to_owned()))
        .collect()
}

/// Parses the `key=value` lines of `conf` (e.g. `dataDir`, `clientPort`).
pub fn parse_conf(conf: &str) -> BTreeMap<String, String> {
    conf.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.trim().to_owned(), value.trim().to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_srvr_mode() {
        let srvr = "Zookeeper version: 3.8.0\nLatency min/avg/max: 0/0.0/0\nMode: follower\nNode count: 5\n";
        assert_eq!(parse_mode(srvr), Some(Mode::Follower));
        assert_eq!(
            parse_mode("This ZooKeeper instance is not currently serving requests\n"),
            None
        );
    }

    #[test]
    fn parses_mntr_and_conf() {
        let mntr = parse_mntr("zk_version\t3.8.0-1, built on x\nzk_znode_count\t5\n");
        assert_eq!(mntr["zk_znode_count"], "5");
        assert!(mntr["zk_version"].starts_with("3.8.0"));
        let conf = parse_conf("clientPort=2181\ndataDir=/tmp/x/data/version-2\n");
        assert_eq!(conf["dataDir"], "/tmp/x/data/version-2");
    }
}
