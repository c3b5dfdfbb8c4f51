//! Tests of the ZooKeeper test harness itself: real servers, an ensemble, and the proxy.
//!
//! They need ZooKeeper installed (the harness panics with install instructions otherwise) and
//! use only four-letter words and raw TCP, no ZooKeeper client. Each test has its own ports and
//! dirs, so they run in parallel.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use election_zk::testing::four_letter::{four_letter, parse_mode};
use election_zk::testing::{connect_string, Mode, TcpProxy, ZkEnsemble, ZkServer};

fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

fn answers_srvr(addr: SocketAddr) -> bool {
    matches!(four_letter(addr, "srvr", Duration::from_secs(2)), Ok(s) if s.contains("Mode:"))
}

#[test]
fn standalone_answers_srvr_and_mntr() {
    let started = Instant::now();
    let zk = ZkServer::start();
    eprintln!("measure: standalone ready in {:?}", started.elapsed());

    assert_eq!(zk.connect_string(), format!("127.0.0.1:{}", zk.port()));
    assert!(zk.four_letter("srvr").contains("Mode: standalone"));
    assert_eq!(zk.mode(), Some(Mode::Standalone));
    let mntr = zk.mntr();
    assert!(
        mntr.get("zk_version").is_some_and(|v| v.starts_with("3.")),
        "mntr: {mntr:?}"
    );
    assert_eq!(
        mntr.get("zk_server_state").map(String::as_str),
        Some("standalone")
    );
}

#[test]
fn restart_keeps_port_and_data_dir() {
    let zk = ZkServer::start();
    let port = zk.port();
    let pid = zk.pid().expect("running");
    let data_dir = zk.data_dir();

    let started = Instant::now();
    zk.restart();
    eprintln!("measure: standalone restart in {:?}", started.elapsed());

    assert_eq!(zk.port(), port);
    assert_ne!(zk.pid(), Some(pid));
    assert!(!pid_alive(pid), "the old JVM {pid} was reaped");
    assert_eq!(zk.mode(), Some(Mode::Standalone));
    assert!(zk
        .four_letter("conf")
        .contains(&*data_dir.to_string_lossy()));
    assert!(data_dir.join("version-2").is_dir(), "the data dir survives");
}

#[test]
fn freeze_silences_the_server_and_thaw_recovers_it() {
    let zk = ZkServer::start();
    zk.freeze();
    assert!(zk.is_frozen());
    let err = zk
        .try_four_letter("srvr", Duration::from_millis(300))
        .expect_err("a frozen server does not answer");
    assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");

    zk.thaw();
    assert!(!zk.is_frozen());
    assert!(zk.four_letter("srvr").contains("Mode: standalone"));
}

#[test]
fn kill_and_drop_leave_no_jvm_behind() {
    let zk = ZkServer::start();
    let pid = zk.pid().expect("running");
    zk.kill();
    assert!(!pid_alive(pid), "kill reaps the JVM {pid}");
    assert!(!zk.is_running());
    assert_eq!(
        zk.try_four_letter("srvr", Duration::from_secs(1))
            .map_err(|e| e.kind()),
        Err(io::ErrorKind::ConnectionRefused)
    );

    // Drop must also handle a frozen JVM.
    zk.revive();
    zk.wait_ready(Duration::from_secs(30)).expect("revived");
    let pid = zk.pid().expect("running");
    let dir = zk.data_dir().parent().expect("temp dir").to_path_buf();
    zk.freeze();
    drop(zk);
    assert!(!pid_alive(pid), "drop reaps the frozen JVM {pid}");
    assert!(!dir.exists(), "drop removes {}", dir.display());
}

#[test]
fn ensemble_elects_a_new_leader_when_the_leader_fails() {
    let started = Instant::now();
    let zk = ZkEnsemble::start(3);
    eprintln!("measure: 3-node ensemble ready in {:?}", started.elapsed());

    assert_eq!(zk.connect_string().split(',').count(), 3);
    let modes = zk.modes();
    assert_eq!(
        modes.iter().filter(|m| **m == Some(Mode::Leader)).count(),
        1
    );
    assert_eq!(
        modes.iter().filter(|m| **m == Some(Mode::Follower)).count(),
        2
    );
    let leader = zk.leader_index().expect("one leader");

    // One proxy per member; the joined connect string reaches every member through them.
    let proxies = zk.proxies();
    let proxied = connect_string(&proxies);
    assert_eq!(proxied.split(',').count(), 3);
    for addr in proxied.split(',') {
        assert!(answers_srvr(addr.parse().expect("addr")), "srvr via {addr}");
    }
    drop(proxies);

    // Crash the leader.
    let killed_at = Instant::now();
    zk.member(leader).kill();
    let new_leader = zk
        .wait_for_quorum(Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "measure: new leader after SIGKILL of the leader in {:?}",
        killed_at.elapsed()
    );
    assert_ne!(new_leader, leader);

    // The old leader rejoins as a follower on its old ports.
    let started = Instant::now();
    zk.member(leader).restart();
    eprintln!("measure: member restart in {:?}", started.elapsed());
    assert_eq!(zk.member(leader).mode(), Some(Mode::Follower));
    zk.wait_for_all(Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}"));

    // Freeze the leader: the others give up on it and elect another one.
    let frozen = zk.leader_index().expect("one leader");
    let frozen_at = Instant::now();
    zk.member(frozen).freeze();
    let next = zk
        .wait_for_quorum(Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "measure: new leader after SIGSTOP of the leader in {:?}",
        frozen_at.elapsed()
    );
    assert_ne!(next, frozen);
    zk.member(frozen).thaw();
    zk.wait_for_all(Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn proxy_forwards_cuts_stalls_and_resumes_zookeeper_traffic() {
    let zk = ZkServer::start();
    let proxy = zk.proxy();
    assert_eq!(proxy.target(), zk.client_addr());
    assert!(answers_srvr(proxy.addr()));

    proxy.cut();
    let through_cut = four_letter(proxy.addr(), "srvr", Duration::from_secs(1));
    assert!(
        !matches!(&through_cut, Ok(s) if s.contains("Mode:")),
        "a cut proxy forwards nothing: {through_cut:?}"
    );
    proxy.resume();
    assert!(answers_srvr(proxy.addr()));

    proxy.stall();
    let err = four_letter(proxy.addr(), "srvr", Duration::from_millis(300))
        .expect_err("a stalled proxy delivers no reply");
    assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");

    // A request sent during the stall is answered once the proxy resumes.
    let mut stream = TcpStream::connect(proxy.addr()).expect("connect");
    stream.write_all(b"srvr").expect("write");
    stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    let mut byte = [0u8; 1];
    let read = stream.read(&mut byte);
    assert!(
        matches!(&read, Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)),
        "no reply while stalled: {read:?}"
    );
    proxy.resume();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut reply = String::new();
    stream
        .read_to_string(&mut reply)
        .expect("reply after resume");
    assert_eq!(parse_mode(&reply), Some(Mode::Standalone), "{reply}");
}

/// An echo server on loopback that stops when dropped.
struct Echo {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl Echo {
    fn start() -> Echo {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let acceptor = thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((mut stream, _)) => {
                        let _ = stream.set_nonblocking(false);
                        // Ends when the peer closes, or within the read timeout after.
                        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                        thread::spawn(move || {
                            let mut buf = [0u8; 1024];
                            while let Ok(n @ 1..) = stream.read(&mut buf) {
                                if stream.write_all(&buf[..n]).is_err() {
                                    break;
                                }
                            }
                        });
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Echo {
            addr,
            stop,
            acceptor: Some(acceptor),
        }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn round_trip(stream: &mut TcpStream, msg: &[u8]) -> io::Result<Vec<u8>> {
    stream.write_all(msg)?;
    let mut got = vec![0u8; msg.len()];
    stream.read_exact(&mut got)?;
    Ok(got)
}

#[test]
fn proxy_delays_counts_and_cuts_connections() {
    let echo = Echo::start();
    let proxy = TcpProxy::start(echo.addr);
    let mut stream = TcpStream::connect(proxy.addr()).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    assert_eq!(round_trip(&mut stream, b"ping").expect("echo"), b"ping");
    assert_eq!(proxy.connection_count(), 1);

    proxy.set_delay(Duration::from_millis(150));
    let sent = Instant::now();
    assert_eq!(round_trip(&mut stream, b"slow").expect("echo"), b"slow");
    let rtt = sent.elapsed();
    eprintln!("measure: proxy round trip with 150 ms delay each way: {rtt:?}");
    assert!(rtt >= Duration::from_millis(300), "{rtt:?}");
    assert!(rtt < Duration::from_millis(1500), "{rtt:?}");
    proxy.set_delay(Duration::ZERO);

    // A cut closes the open connection and every new one.
    proxy.cut();
    let mut buf = [0u8; 4];
    let read = stream.read(&mut buf);
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "the cut connection is closed: {read:?}"
    );
    assert_eq!(proxy.connection_count(), 0);
    let mut during_cut = TcpStream::connect(proxy.addr()).expect("the listener accepts");
    during_cut
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    assert!(round_trip(&mut during_cut, b"lost").is_err());

    proxy.resume();
    let mut again = TcpStream::connect(proxy.addr()).expect("connect");
    again
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    assert_eq!(round_trip(&mut again, b"back").expect("echo"), b"back");
    drop(again);

    // Dropping the proxy ends its threads promptly.
    let dropped = Instant::now();
    drop(proxy);
    assert!(
        dropped.elapsed() < Duration::from_secs(1),
        "{:?}",
        dropped.elapsed()
    );
}

#[test]
#[should_panic(expected = "only forwards to loopback")]
fn proxy_refuses_a_non_loopback_target() {
    let _ = TcpProxy::start(SocketAddr::from(([192, 0, 2, 1], 2181)));
}
