//! A ZooKeeper ensemble: `n` [`ZkServer`] members forming a quorum on loopback, optionally with
//! every link between two members routed through a [`TcpProxy`] so one member can be cut off
//! from its peers while it keeps serving its clients.

use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use super::four_letter::Mode;
use super::server::{reserve_ports, MemberConfig, Probe, ServerSettings, READY_TIMEOUT};
use super::{require_zookeeper, HarnessError, TcpProxy, ZkServer};

const PROBE_TIMEOUT: Duration = Duration::from_millis(300);
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// How many times the whole ensemble is started again when one of its ports turns out taken.
const START_ATTEMPTS: u32 = 3;

/// `n` ZooKeeper servers on loopback forming one ensemble; each member has its own dir and
/// ports. Dropping the ensemble kills every member and removes their dirs.
///
/// ```no_run
/// use std::time::Duration;
/// use election_zk::testing::ZkEnsemble;
///
/// let zk = ZkEnsemble::start(3);
/// let leader = zk.leader_index().unwrap();
/// zk.member(leader).kill();
/// let new_leader = zk.wait_for_quorum(Duration::from_secs(10)).unwrap();
/// assert_ne!(new_leader, leader);
/// ```
#[derive(Debug)]
pub struct ZkEnsemble {
    members: Vec<ZkServer>,
    /// With [`ZkEnsembleBuilder::proxied_peer_links`]: every directed link between two members.
    peer_links: Vec<PeerLink>,
}

/// The proxies through which member `from` reaches member `to`: one in front of `to`'s quorum
/// port, one in front of its election port.
#[derive(Debug)]
struct PeerLink {
    from: usize,
    to: usize,
    quorum: TcpProxy,
    election: TcpProxy,
}

/// Options for a [`ZkEnsemble`]; made by [`ZkEnsemble::builder`].
///
/// ```no_run
/// use election_zk::testing::ZkEnsemble;
///
/// // Followers wait 25 ticks (5 s) for their leader; every peer link goes through a proxy.
/// let zk = ZkEnsemble::builder(3).sync_limit(25).proxied_peer_links().start();
/// zk.isolate(0); // member 0 keeps serving its clients but hears no peer
/// zk.reconnect(0);
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct ZkEnsembleBuilder {
    n: usize,
    settings: Vec<ServerSettings>,
    proxied: bool,
}

impl ZkEnsembleBuilder {
    /// `syncLimit` of every member, in ticks of [`TICK_TIME`](super::TICK_TIME) (default 5): how
    /// long a member cut off from its leader goes on serving its clients.
    pub fn sync_limit(mut self, ticks: u32) -> Self {
        for s in &mut self.settings {
            s.sync_limit = ticks;
        }
        self
    }

    /// `maxSessionTimeout` of member `index` (default 60 s): a session that connects, or
    /// reconnects, to that member gets at most this timeout.
    ///
    /// # Panics
    /// When `index` is out of range.
    pub fn max_session_timeout(mut self, index: usize, timeout: Duration) -> Self {
        self.settings[index].max_session_timeout = timeout;
        self
    }

    /// Routes every link between two members (quorum and leader-election connections, each
    /// direction on its own proxy) through a [`TcpProxy`], so that [`ZkEnsemble::isolate`] can
    /// cut any member off from its peers. Each member's `zoo.cfg` names itself at its own ports
    /// and every peer at the ports of the proxies in front of that peer.
    pub fn proxied_peer_links(mut self) -> Self {
        self.proxied = true;
        self
    }

    /// Starts the members and waits until one is the leader and all others follow it.
    ///
    /// # Panics
    /// When ZooKeeper is not installed, or the ensemble is not complete within 30 s (the message
    /// holds each member's state and log tail).
    pub fn start(self) -> ZkEnsemble {
        let n = self.n;
        let install = require_zookeeper();
        let mut attempt = 1;
        loop {
            let ports = reserve_ports(3 * n)
                .unwrap_or_else(|e| panic!("cannot find free loopback ports: {e}"));
            let own: Vec<(u16, u16)> = (0..n)
                .map(|i| (ports[3 * i + 1], ports[3 * i + 2]))
                .collect();
            let loopback = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
            let mut peer_links = Vec::new();
            if self.proxied {
                for from in 0..n {
                    for to in (0..n).filter(|&to| to != from) {
                        peer_links.push(PeerLink {
                            from,
                            to,
                            quorum: TcpProxy::start(loopback(own[to].0)),
                            election: TcpProxy::start(loopback(own[to].1)),
                        });
                    }
                }
            }
            let members = (0..n)
                .map(|i| {
                    let servers = (0..n)
                        .map(|j| {
                            let link = peer_links.iter().find(|l| l.from == i && l.to == j);
                            let (quorum, election) = match link {
                                Some(l) => (l.quorum.addr().port(), l.election.addr().port()),
                                None => own[j],
                            };
                            (j as u64 + 1, quorum, election)
                        })
                        .collect();
                    let member = MemberConfig {
                        id: i as u64 + 1,
                        servers,
                    };
                    ZkServer::prepare(
                        install.clone(),
                        ports[3 * i],
                        Some(member),
                        self.settings[i],
                    )
                    .unwrap_or_else(|e| panic!("cannot prepare an ensemble member: {e}"))
                })
                .collect();
            let ensemble = ZkEnsemble {
                members,
                peer_links,
            };
            let started = Instant::now();
            for member in &ensemble.members {
                member.launch().unwrap_or_else(|e| panic!("{e}"));
            }
            match ensemble.await_complete(READY_TIMEOUT) {
                Ok(leader) => {
                    tracing::debug!(n, leader, elapsed = ?started.elapsed(), "ensemble ready");
                    return ensemble;
                }
                // Another process took a port between the probe and a JVM's bind.
                Err((port_conflict, _)) if port_conflict && attempt < START_ATTEMPTS => {
                    tracing::debug!(attempt, "ensemble port taken, retrying on other ports");
                    attempt += 1;
                }
                Err((_, error)) => panic!(
                    "the ensemble did not start (attempt {attempt} of {START_ATTEMPTS}): {error}"
                ),
            }
        }
    }
}

impl ZkEnsemble {
    /// Options for an ensemble of `n` members: `syncLimit`, a member's `maxSessionTimeout`,
    /// proxied peer links.
    ///
    /// # Panics
    /// When `n` is 0.
    pub fn builder(n: usize) -> ZkEnsembleBuilder {
        assert!(n > 0, "an ensemble needs at least one member");
        ZkEnsembleBuilder {
            n,
            settings: vec![ServerSettings::default(); n],
            proxied: false,
        }
    }

    /// Starts `n` members with the default settings and waits until one is the leader and all
    /// others follow it.
    ///
    /// # Panics
    /// When `n` is 0, ZooKeeper is not installed, or the ensemble is not complete within 30 s
    /// (the message holds each member's state and log tail).
    pub fn start(n: usize) -> ZkEnsemble {
        Self::builder(n).start()
    }

    /// Cuts member `index` off from all its peers, silently: its quorum and election links stall
    /// (no byte moves, no connection closes) while it keeps serving its clients, until its own
    /// `syncLimit` runs out. In that window the member answers its clients' reads for sessions
    /// the elected leader no longer hears of. Undone by [`reconnect`](Self::reconnect).
    ///
    /// # Panics
    /// When the ensemble was not built with
    /// [`proxied_peer_links`](ZkEnsembleBuilder::proxied_peer_links).
    pub fn isolate(&self, index: usize) {
        for link in self.peer_links_of(index) {
            link.quorum.stall();
            link.election.stall();
        }
        tracing::debug!(member = index + 1, "member isolated from its peers");
    }

    /// Undoes [`isolate`](Self::isolate): the member's peer links forward again.
    ///
    /// # Panics
    /// As [`isolate`](Self::isolate).
    pub fn reconnect(&self, index: usize) {
        for link in self.peer_links_of(index) {
            link.quorum.resume();
            link.election.resume();
        }
        tracing::debug!(member = index + 1, "member reconnected to its peers");
    }

    fn peer_links_of(&self, index: usize) -> impl Iterator<Item = &PeerLink> {
        assert!(
            !self.peer_links.is_empty(),
            "isolating a member needs an ensemble built with proxied_peer_links()"
        );
        self.peer_links
            .iter()
            .filter(move |l| l.from == index || l.to == index)
    }

    /// Waits until every member serves, one as leader, and each answering member is ours.
    /// The error says whether a port conflict caused it.
    fn await_complete(&self, timeout: Duration) -> Result<usize, (bool, HarnessError)> {
        let started = Instant::now();
        let mut probes = Vec::new();
        while started.elapsed() < timeout {
            probes = self.probe_all();
            if let Some(i) = probes.iter().position(|p| *p == Probe::Down) {
                let conflict = self.members[i].last_launch_hit_busy_port();
                let why = format!("member {} exited", i + 1);
                return Err((conflict, self.not_ready(&why, started.elapsed(), &probes)));
            }
            if let Some(leader) = complete(&probes) {
                for member in &self.members {
                    if let Err(why) = member.answering_is_ours() {
                        return Err((true, self.not_ready(&why, started.elapsed(), &probes)));
                    }
                }
                return Ok(leader);
            }
            thread::sleep(POLL_INTERVAL);
        }
        Err((
            false,
            self.not_ready("timed out", started.elapsed(), &probes),
        ))
    }

    /// The member at `index` (0-based; its `myid` is `index + 1`), to kill, freeze, thaw or
    /// restart it.
    ///
    /// # Panics
    /// When `index` is out of range.
    pub fn member(&self, index: usize) -> &ZkServer {
        &self.members[index]
    }

    /// All members, in `myid` order.
    pub fn members(&self) -> &[ZkServer] {
        &self.members
    }

    /// The connect string with every member, `127.0.0.1:p1,127.0.0.1:p2,...`.
    pub fn connect_string(&self) -> String {
        self.members
            .iter()
            .map(ZkServer::connect_string)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Every member's role from `srvr`, probed in parallel (300 ms each); `None` for a member
    /// that is down, frozen or not serving.
    pub fn modes(&self) -> Vec<Option<Mode>> {
        self.probe_all()
            .into_iter()
            .map(|probe| match probe {
                Probe::Serving(mode) => Some(mode),
                _ => None,
            })
            .collect()
    }

    /// The index of the member that says `Mode: leader`, if exactly one does.
    pub fn leader_index(&self) -> Option<usize> {
        let modes = self.modes();
        let mut leaders = (0..modes.len()).filter(|&i| modes[i] == Some(Mode::Leader));
        match (leaders.next(), leaders.next()) {
            (Some(leader), None) => Some(leader),
            _ => None,
        }
    }

    /// Waits until a quorum serves: exactly one member answers `leader` and, with it, a majority
    /// of members serve. Returns the leader's index. Killed and frozen members do not answer, so
    /// after killing the leader the leader found is a new one.
    pub fn wait_for_quorum(&self, timeout: Duration) -> Result<usize, HarnessError> {
        let majority = self.members.len() / 2 + 1;
        let started = Instant::now();
        loop {
            let probes = self.probe_all();
            let leaders: Vec<usize> = (0..probes.len())
                .filter(|&i| probes[i] == Probe::Serving(Mode::Leader))
                .collect();
            let serving = probes
                .iter()
                .filter(|p| {
                    matches!(
                        p,
                        Probe::Serving(Mode::Leader) | Probe::Serving(Mode::Follower)
                    )
                })
                .count();
            if leaders.len() == 1 && serving >= majority {
                return Ok(leaders[0]);
            }
            if started.elapsed() >= timeout {
                return Err(self.not_ready("no quorum", started.elapsed(), &probes));
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Waits until every member serves again, one of them as leader; returns its index. Use it
    /// after reviving members, to know the ensemble is whole. Fails at once when a member is not
    /// running (killed, or its JVM exited).
    pub fn wait_for_all(&self, timeout: Duration) -> Result<usize, HarnessError> {
        self.await_complete(timeout).map_err(|(_, error)| error)
    }

    /// Starts one [`TcpProxy`] in front of each member, in member order; pass them to
    /// [`connect_string`](super::connect_string) to give a client the proxied ensemble.
    pub fn proxies(&self) -> Vec<TcpProxy> {
        self.members.iter().map(ZkServer::proxy).collect()
    }

    fn probe_all(&self) -> Vec<Probe> {
        thread::scope(|scope| {
            let probes: Vec<_> = self
                .members
                .iter()
                .map(|member| scope.spawn(move || member.probe(PROBE_TIMEOUT)))
                .collect();
            probes
                .into_iter()
                .map(|probe| probe.join().unwrap_or(Probe::Silent))
                .collect()
        })
    }

    fn not_ready(&self, why: &str, waited: Duration, probes: &[Probe]) -> HarnessError {
        let mut detail = format!("{why}; last probes: {probes:?}");
        for member in &self.members {
            detail.push_str(&format!(
                "\n{}:\n{}",
                member.describe(),
                member.log_report()
            ));
        }
        HarnessError::NotReady {
            what: format!("ZooKeeper ensemble {}", self.connect_string()),
            waited,
            detail,
        }
    }
}

/// The leader's index when one member leads and all others follow.
fn complete(probes: &[Probe]) -> Option<usize> {
    let leader = probes
        .iter()
        .position(|p| *p == Probe::Serving(Mode::Leader))?;
    let all_follow = probes
        .iter()
        .enumerate()
        .all(|(i, p)| i == leader || *p == Probe::Serving(Mode::Follower));
    all_follow.then_some(leader)
}
