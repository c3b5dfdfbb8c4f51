//! A loopback TCP proxy that injects network faults between a client and a server: cut
//! connections, silent stalls (a partition where packets vanish), and latency.
//!
//! Built on std threads and blocking sockets with 20 ms timeouts: every loop rechecks the
//! proxy's flags at least that often, so faults take effect within a tick and every thread ends
//! soon after the proxy is dropped. Each connection uses four threads (a reader and a writer per
//! direction, joined by a channel that carries the read time so latency does not add up).

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How often every proxy loop rechecks its flags.
const TICK: Duration = Duration::from_millis(20);
const ACCEPT_POLL: Duration = Duration::from_millis(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const BUFFER: usize = 16 * 1024;

const FORWARDING: u8 = 0;
const STALLED: u8 = 1;
const CUT: u8 = 2;

/// A TCP forwarder on `127.0.0.1:<free port>` in front of one loopback target, with fault
/// controls. Point a client at [`addr`](Self::addr) instead of the server.
///
/// - [`cut`](Self::cut): closes every connection now and closes new ones until
///   [`resume`](Self::resume): the client sees the connection drop (a FIN, not a RST: std cannot
///   set `SO_LINGER`).
/// - [`stall`](Self::stall): connections stay open, but no byte moves in either direction and
///   new connections are accepted but not connected to the target: a silent partition. Bytes
///   already sent stay buffered and are delivered after [`resume`](Self::resume).
/// - [`set_delay`](Self::set_delay): each chunk is delivered that long after it was read.
///
/// Dropping the proxy closes its connections and joins all its threads (within a few ticks).
///
/// ```no_run
/// use election_zk::testing::{TcpProxy, ZkServer};
///
/// let zk = ZkServer::start();
/// let proxy = TcpProxy::start(zk.client_addr());
/// let connect = proxy.addr().to_string(); // give this to the client
/// proxy.stall(); // the client hears nothing, the server sees no traffic
/// proxy.resume();
/// # let _ = connect;
/// ```
#[derive(Debug)]
pub struct TcpProxy {
    addr: SocketAddr,
    target: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    target: SocketAddr,
    flow: AtomicU8,
    delay_nanos: AtomicU64,
    shutdown: AtomicBool,
    connections: Mutex<Vec<Arc<Connection>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// One proxied connection: the accepted client socket and, once connected, the upstream one.
#[derive(Debug)]
struct Connection {
    client: TcpStream,
    upstream: OnceLock<TcpStream>,
    closed: AtomicBool,
    /// Directions still forwarding; the connection closes when both have ended.
    open_directions: AtomicU8,
}

impl TcpProxy {
    /// Starts a proxy on `127.0.0.1:0` forwarding to `target`.
    ///
    /// # Panics
    /// When `target` is not a loopback address (the harness never touches the real network), or
    /// the listener cannot be bound.
    pub fn start(target: SocketAddr) -> TcpProxy {
        assert!(
            target.ip().is_loopback(),
            "TcpProxy only forwards to loopback addresses, not {target}"
        );
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap_or_else(|e| panic!("cannot bind a proxy listener on 127.0.0.1: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("cannot read the proxy address: {e}"));
        listener
            .set_nonblocking(true)
            .unwrap_or_else(|e| panic!("cannot make the proxy listener non-blocking: {e}"));
        let shared = Arc::new(Shared {
            target,
            flow: AtomicU8::new(FORWARDING),
            delay_nanos: AtomicU64::new(0),
            shutdown: AtomicBool::new(false),
            connections: Mutex::new(Vec::new()),
            threads: Mutex::new(Vec::new()),
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name(format!("proxy-{}-accept", addr.port()))
                .spawn(move || accept_loop(&shared, &listener))
                .unwrap_or_else(|e| panic!("cannot spawn the proxy thread: {e}"))
        };
        tracing::debug!(%addr, %target, "proxy started");
        TcpProxy {
            addr,
            target,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address the proxy forwards to.
    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// Closes every current connection in both directions and closes new ones as soon as they
    /// are accepted, until [`resume`](Self::resume).
    pub fn cut(&self) {
        self.shared.flow.store(CUT, Ordering::SeqCst);
        for connection in lock(&self.shared.connections).iter() {
            connection.close();
        }
        tracing::debug!(addr = %self.addr, "proxy cut");
    }

    /// Stops moving bytes in both directions while keeping the connections open; new
    /// connections are accepted but not forwarded. Undone by [`resume`](Self::resume).
    pub fn stall(&self) {
        self.shared.flow.store(STALLED, Ordering::SeqCst);
        tracing::debug!(addr = %self.addr, "proxy stalled");
    }

    /// Forwards again: stalled bytes flow, and after a cut new connections are served.
    pub fn resume(&self) {
        self.shared.flow.store(FORWARDING, Ordering::SeqCst);
        tracing::debug!(addr = %self.addr, "proxy resumed");
    }

    /// Delivers each chunk `delay` after it was read, in both directions (zero by default).
    /// Applies to chunks read from now on, and to those waiting.
    pub fn set_delay(&self, delay: Duration) {
        let nanos = u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX);
        self.shared.delay_nanos.store(nanos, Ordering::SeqCst);
    }

    /// The number of client connections currently open through the proxy.
    pub fn connection_count(&self) -> usize {
        let mut connections = lock(&self.shared.connections);
        connections.retain(|c| !c.is_closed());
        connections.len()
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        for connection in lock(&self.shared.connections).drain(..) {
            connection.close();
        }
        // Every thread sees the shutdown flag within a tick. A connection thread may still
        // spawn its pumps after a round is taken: take rounds until none is left.
        loop {
            let threads = std::mem::take(&mut *lock(&self.shared.threads));
            if threads.is_empty() {
                break;
            }
            for thread in threads {
                let _ = thread.join();
            }
        }
    }
}

/// Joins proxy addresses into a ZooKeeper connect string, `127.0.0.1:p1,127.0.0.1:p2,...`.
pub fn connect_string(proxies: &[TcpProxy]) -> String {
    proxies
        .iter()
        .map(|p| p.addr().to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    fn flow(&self) -> u8 {
        self.flow.load(Ordering::SeqCst)
    }

    fn delay(&self) -> Duration {
        Duration::from_nanos(self.delay_nanos.load(Ordering::SeqCst))
    }

    fn is_shutdown(&self) -> bool {
        self.shutdown.load(Ordering::SeqCst)
    }

    fn spawn(self: &Arc<Self>, name: String, f: impl FnOnce(&Arc<Shared>) + Send + 'static) {
        let shared = Arc::clone(self);
        match thread::Builder::new().name(name).spawn(move || f(&shared)) {
            Ok(handle) => {
                let mut threads = lock(&self.threads);
                threads.retain(|t| !t.is_finished());
                threads.push(handle);
            }
            Err(e) => tracing::warn!(error = %e, "proxy cannot spawn a thread"),
        }
    }
}

impl Connection {
    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let _ = self.client.shutdown(Shutdown::Both);
        if let Some(upstream) = self.upstream.get() {
            let _ = upstream.shutdown(Shutdown::Both);
        }
    }

    fn finish_direction(&self) {
        if self.open_directions.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.close();
        }
    }
}

fn accept_loop(shared: &Arc<Shared>, listener: &TcpListener) {
    while !shared.is_shutdown() {
        match listener.accept() {
            Ok((client, peer)) => {
                if shared.flow() == CUT {
                    drop(client);
                    continue;
                }
                match Connection::new(client) {
                    Ok(connection) => {
                        lock(&shared.connections).push(Arc::clone(&connection));
                        shared.spawn(format!("proxy-conn-{}", peer.port()), move |shared| {
                            connect_upstream(shared, &connection);
                        });
                    }
                    Err(e) => tracing::debug!(error = %e, "proxy drops a connection"),
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => thread::sleep(ACCEPT_POLL),
            Err(e) => {
                tracing::debug!(error = %e, "proxy accept failed");
                thread::sleep(TICK);
            }
        }
    }
}

impl Connection {
    fn new(client: TcpStream) -> io::Result<Arc<Connection>> {
        client.set_nonblocking(false)?;
        client.set_nodelay(true)?;
        client.set_read_timeout(Some(TICK))?;
        client.set_write_timeout(Some(TICK))?;
        Ok(Arc::new(Connection {
            client,
            upstream: OnceLock::new(),
            closed: AtomicBool::new(false),
            open_directions: AtomicU8::new(2),
        }))
    }
}

/// Connects to the target once the proxy forwards (not while stalled), then starts the pumps.
fn connect_upstream(shared: &Arc<Shared>, connection: &Arc<Connection>) {
    loop {
        if shared.is_shutdown() || connection.is_closed() || shared.flow() == CUT {
            connection.close();
            return;
        }
        if shared.flow() == FORWARDING {
            break;
        }
        thread::sleep(TICK);
    }
    let upstream = match TcpStream::connect_timeout(&shared.target, CONNECT_TIMEOUT).and_then(|s| {
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(TICK))?;
        s.set_write_timeout(Some(TICK))?;
        Ok(s)
    }) {
        Ok(upstream) => upstream,
        Err(e) => {
            tracing::debug!(target = %shared.target, error = %e, "proxy cannot reach its target");
            connection.close();
            return;
        }
    };
    let _ = connection.upstream.set(upstream);
    // A cut between the check above and set() could not shut the upstream socket: do it now.
    if connection.is_closed() {
        connection.close();
        return;
    }
    let (Some(upstream), client) = (connection.upstream.get(), &connection.client) else {
        return;
    };
    for (name, src, dst) in [("up", client, upstream), ("down", upstream, client)] {
        let (Ok(src), Ok(dst)) = (src.try_clone(), dst.try_clone()) else {
            connection.close();
            return;
        };
        let (tx, rx) = mpsc::channel();
        let port = client.peer_addr().map(|a| a.port()).unwrap_or(0);
        let reader_connection = Arc::clone(connection);
        shared.spawn(format!("proxy-{port}-{name}-read"), move |shared| {
            read_loop(shared, &reader_connection, src, &tx);
        });
        let writer_connection = Arc::clone(connection);
        shared.spawn(format!("proxy-{port}-{name}-write"), move |shared| {
            write_loop(shared, &writer_connection, dst, &rx);
        });
    }
}

fn stopped(shared: &Shared, connection: &Connection) -> bool {
    shared.is_shutdown() || connection.is_closed()
}

/// Reads from one socket into the channel, stamping each chunk with its read time. Stops
/// reading while stalled, so unread bytes wait in the kernel buffers.
fn read_loop(
    shared: &Shared,
    connection: &Connection,
    mut src: TcpStream,
    tx: &Sender<(Instant, Vec<u8>)>,
) {
    let mut buf = vec![0u8; BUFFER];
    while !stopped(shared, connection) {
        match shared.flow() {
            STALLED => {
                thread::sleep(TICK);
                continue;
            }
            CUT => {
                connection.close();
                return;
            }
            _ => {}
        }
        match src.read(&mut buf) {
            // End of stream: dropping `tx` makes the writer pass the half-close on.
            Ok(0) => return,
            Ok(n) => {
                if tx.send((Instant::now(), buf[..n].to_vec())).is_err() {
                    return;
                }
            }
            Err(e) if is_retryable(&e) => {}
            Err(_) => {
                connection.close();
                return;
            }
        }
    }
}

/// Writes chunks from the channel to the other socket once their delay has passed, holding them
/// while stalled. Passes a half-close on when the reader has seen end of stream.
fn write_loop(
    shared: &Shared,
    connection: &Connection,
    mut dst: TcpStream,
    rx: &Receiver<(Instant, Vec<u8>)>,
) {
    while !stopped(shared, connection) {
        match rx.recv_timeout(TICK) {
            Ok((read_at, bytes)) => {
                if !wait_until_due(shared, connection, read_at)
                    || write_all(shared, connection, &mut dst, &bytes).is_err()
                {
                    connection.close();
                    return;
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                let _ = dst.shutdown(Shutdown::Write);
                connection.finish_direction();
                return;
            }
        }
    }
}

/// Sleeps (in ticks) until the chunk read at `read_at` is due and the proxy forwards; false when
/// the connection or the proxy ended meanwhile.
fn wait_until_due(shared: &Shared, connection: &Connection, read_at: Instant) -> bool {
    loop {
        if stopped(shared, connection) || shared.flow() == CUT {
            return false;
        }
        let wait = (read_at + shared.delay()).saturating_duration_since(Instant::now());
        if shared.flow() == FORWARDING && wait.is_zero() {
            return true;
        }
        thread::sleep(if wait.is_zero() { TICK } else { wait.min(TICK) });
    }
}

fn write_all(
    shared: &Shared,
    connection: &Connection,
    dst: &mut TcpStream,
    mut bytes: &[u8],
) -> io::Result<()> {
    while !bytes.is_empty() {
        if stopped(shared, connection) {
            return Err(io::ErrorKind::ConnectionAborted.into());
        }
        match dst.write(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if is_retryable(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn is_retryable(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}
