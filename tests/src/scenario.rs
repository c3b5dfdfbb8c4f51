//! Small support shared by the fault scenarios and the benchmark: direct backends, raw
//! zookeeper-client sessions, bounded waits and summary statistics.

use std::sync::Arc;
use std::time::Duration;

use election_core::{Candidate, Client, CoordinationBackend, ElectionPath, ElectionState};
use election_zk::ZkBackend;
use tokio::time::{sleep, Instant};
use zookeeper_client as zk;

/// A backend connecting straight to `connect` (no proxy).
pub fn direct(connect: &str) -> Arc<dyn CoordinationBackend> {
    Arc::new(
        ZkBackend::builder(connect)
            .server_tick_time(election_zk::testing::TICK_TIME)
            .build()
            .expect("valid connect string"),
    )
}

/// A plain zookeeper-client session, for what an administrator or another tool would do.
pub async fn raw(connect: &str, timeout: Duration) -> zk::Client {
    zk::Client::connector()
        .with_session_timeout(timeout)
        .connect(connect)
        .await
        .unwrap_or_else(|e| panic!("raw zookeeper session to {connect}: {e}"))
}

/// Options for a persistent node anyone may use.
pub fn persistent() -> zk::CreateOptions<'static> {
    zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all())
}

/// The children of `path` (none when it does not exist), read with a raw session.
pub async fn raw_children(client: &zk::Client, path: &str) -> Vec<String> {
    match client.list_children(path).await {
        Ok(children) => children,
        Err(zk::Error::NoNode) => Vec::new(),
        Err(e) => panic!("list {path}: {e}"),
    }
}

/// The election entries of `path` in queue order, read through a short-lived admin client.
pub async fn participant_ids(
    backend: &Arc<dyn CoordinationBackend>,
    path: &str,
    timeout: Duration,
) -> Vec<String> {
    let admin = Client::connect(backend.clone(), timeout)
        .await
        .expect("admin session");
    let path = ElectionPath::new(path).expect("valid path");
    let ids = admin
        .participants(&path)
        .await
        .expect("participants")
        .into_iter()
        .map(|p| p.id)
        .collect();
    admin.close().await;
    ids
}

/// Polls `check` every 20 ms until it is true; panics with `what` after `limit`.
pub async fn wait_until<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < deadline, "not within {limit:?}: {what}");
        sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `candidate`'s state satisfies `pred`; panics with the state after `limit`.
pub async fn wait_state(
    candidate: &Candidate,
    what: &str,
    limit: Duration,
    pred: impl FnMut(&ElectionState) -> bool,
) -> ElectionState {
    let mut state = candidate.state();
    let seen = match tokio::time::timeout(limit, state.wait_for(pred)).await {
        Ok(Ok(s)) => Some(s.clone()),
        _ => None,
    };
    match seen {
        Some(s) => s,
        None => panic!(
            "{}: not {what} within {limit:?}; state {:?}",
            candidate.id(),
            candidate.current()
        ),
    }
}

/// `true` for a follower that knows who leads.
pub fn follows_known_leader(s: &ElectionState) -> bool {
    matches!(
        s,
        ElectionState::Follower {
            leader: Some(_),
            ..
        }
    )
}

/// `true` for a candidate that has found its place and knows who leads: the leader, or a
/// follower that knows the leader.
pub fn settled(s: &ElectionState) -> bool {
    s.is_leader() || follows_known_leader(s)
}

/// `true` once a candidate's entry is placed in the queue (following or leading).
pub fn placed(s: &ElectionState) -> bool {
    matches!(
        s,
        ElectionState::Follower { .. } | ElectionState::Leader { .. }
    )
}

/// `true` for a leader whose contact is confirmed.
pub fn confirmed_leader(s: &ElectionState) -> bool {
    matches!(
        s,
        ElectionState::Leader {
            contact: election_core::Contact::Confirmed,
            ..
        }
    )
}

/// Two bare zookeeper-client sessions (30 s) for the raw floor of a hand-over.
pub struct RawFloor {
    a: zk::Client,
    b: zk::Client,
}

impl RawFloor {
    /// Opens both sessions and creates `/bench/floor` unless it exists.
    pub async fn new(connect: &str) -> Self {
        let a = raw(connect, Duration::from_secs(30)).await;
        let b = raw(connect, Duration::from_secs(30)).await;
        match a.mkdir("/bench/floor", &persistent()).await {
            Ok(()) | Err(zk::Error::NodeExists) => {}
            Err(e) => panic!("mkdir /bench/floor: {e}"),
        }
        RawFloor { a, b }
    }

    /// The node each sample deletes.
    const NODE: &'static str = "/bench/floor/node";

    /// Creates [`Self::NODE`] on one session, arms an exists watch on it on the other, and
    /// idles `idle` with nothing in flight: a hand-over measured after an idle gap is compared
    /// with a floor measured after the same gap (the server's threads and ours asleep), not
    /// with one right behind the requests that armed the watch, which measured here about half
    /// as long.
    async fn armed(&self, idle: Duration) -> zk::OneshotWatcher {
        let ephemeral = zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
        self.a.create(Self::NODE, b"", &ephemeral).await.unwrap();
        let (stat, watcher) = self.b.check_and_watch_stat(Self::NODE).await.unwrap();
        assert!(stat.is_some());
        if !idle.is_zero() {
            tokio::time::sleep(idle).await;
        }
        watcher
    }

    /// A delete on one session until an exists-watch fires on the other, the delete sent after
    /// `idle` (see `RawFloor::armed`).
    pub async fn round(&self, idle: Duration) -> Duration {
        let watcher = self.armed(idle).await;
        let started = Instant::now();
        let fired = async {
            let event = watcher.changed().await;
            (Instant::now(), event)
        };
        let (deleted, (fired_at, event)) = tokio::join!(self.a.delete(Self::NODE, None), fired);
        deleted.unwrap();
        assert_eq!(event.event_type, zk::EventType::NodeDeleted);
        fired_at - started
    }

    /// A bare hand-over, the least any implementation's can take: a delete on one session, an
    /// exists watch firing on the other, and that session's confirming read (a `getChildren` of
    /// the parent, as kazoo's and Curator's; ours is a `multiRead`) answered, from the delete
    /// sent, after `idle` (see `RawFloor::armed`).
    pub async fn hand_over(&self, idle: Duration) -> Duration {
        let watcher = self.armed(idle).await;
        let started = Instant::now();
        let confirmed = async {
            let event = watcher.changed().await;
            assert_eq!(event.event_type, zk::EventType::NodeDeleted);
            let children = self.b.list_children("/bench/floor").await.unwrap();
            (Instant::now(), children)
        };
        let (deleted, (confirmed_at, children)) =
            tokio::join!(self.a.delete(Self::NODE, None), confirmed);
        deleted.unwrap();
        assert!(children.is_empty(), "{children:?} left under /bench/floor");
        confirmed_at - started
    }

    /// One request's round trip: an `exists` of `/`, sent after `idle` (see `RawFloor::armed`).
    pub async fn round_trip(&self, idle: Duration) -> Duration {
        if !idle.is_zero() {
            tokio::time::sleep(idle).await;
        }
        let started = Instant::now();
        let stat = self.a.check_stat("/").await.unwrap();
        let elapsed = started.elapsed();
        assert!(stat.is_some());
        elapsed
    }
}

/// Warms a ZooKeeper server's JVM up before anything is measured: `rounds` rounds of every
/// kind of request that `election`, kazoo and Curator send in a hand-over (create, `exists`
/// with a watch and its notification, `getChildren`, `getData`, `setData`, delete, a `multi`
/// of a delete and a create, a `multiRead`), from two bare sessions. A JVM compiles a code path
/// only after some thousand calls, and a server in service has long been warm: measured here,
/// the first few hundred `multi`s' notifications came 40% later than a plain delete's, and
/// 5-15% later once warm. Returns how long it took.
pub async fn warm_server(connect: &str, rounds: usize) -> Duration {
    let started = Instant::now();
    let a = raw(connect, Duration::from_secs(30)).await;
    let b = raw(connect, Duration::from_secs(30)).await;
    let dir = "/bench/warm";
    a.mkdir(dir, &persistent())
        .await
        .expect("warm-up directory");
    let eph = zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
    let seq = zk::CreateMode::EphemeralSequential.with_acls(zk::Acls::anyone_all());
    let node = "/bench/warm/node";
    for i in 0..rounds {
        a.create(node, b"", &eph).await.expect("warm create");
        let (_, watcher) = b.check_and_watch_stat(node).await.expect("warm exists");
        let (_, sequence) = b
            .create("/bench/warm/s-", b"", &seq)
            .await
            .expect("warm sequential");
        let sequential = format!("/bench/warm/s-{sequence}");
        b.list_children(dir).await.expect("warm list");
        b.get_children(dir).await.expect("warm children");
        let mut reader = b.new_multi_reader();
        reader.add_get_data(&sequential).expect("multi read");
        reader.add_get_data(dir).expect("multi read");
        reader.commit().await.expect("warm multi read");
        b.get_data(dir).await.expect("warm get");
        b.set_data(dir, format!("{i}").as_bytes(), None)
            .await
            .expect("warm set");
        if i % 2 == 0 {
            a.delete(node, None).await.expect("warm delete");
            b.delete(&sequential, None).await.expect("warm delete");
        } else {
            let mut multi = a.new_multi_writer();
            multi.add_delete(node, None).expect("multi delete");
            multi
                .add_create("/bench/warm/s-", b"", &seq)
                .expect("multi create");
            let results = multi.commit().await.expect("warm multi");
            if let Some(zk::MultiWriteResult::Create { path, .. }) = results.into_iter().nth(1) {
                a.delete(&path, None).await.expect("warm delete");
            }
            b.delete(&sequential, None).await.expect("warm delete");
        }
        let event = watcher.changed().await;
        assert_eq!(event.event_type, zk::EventType::NodeDeleted);
    }
    // Dropped: both sessions close, their ephemeral nodes go.
    drop((a, b));
    started.elapsed()
}

/// The raw floor of a hand-over, `rounds` times back to back, with no idle time before each: see
/// [`RawFloor::round`].
pub async fn raw_floor(connect: &str, rounds: usize) -> Vec<Duration> {
    let floor = RawFloor::new(connect).await;
    let mut out = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        out.push(floor.round(Duration::ZERO).await);
    }
    out
}

/// Min, p50, p99 and max of a sample, in that order (nearest-rank percentiles).
pub fn summary(samples: &[Duration]) -> [Duration; 4] {
    assert!(!samples.is_empty(), "no samples");
    let mut s = samples.to_vec();
    s.sort();
    let rank = |p: f64| {
        let i = ((p * s.len() as f64).ceil() as usize).clamp(1, s.len());
        s[i - 1]
    };
    [s[0], rank(0.50), rank(0.99), s[s.len() - 1]]
}

/// Milliseconds, for printing.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Count, min, p50, p99 and max of a sample, as a JSON object (milliseconds).
pub fn json_stats(s: &[Duration]) -> String {
    let [min, p50, p99, max] = summary(s);
    format!(
        "{{\"n\": {}, \"min_ms\": {:.3}, \"p50_ms\": {:.3}, \"p99_ms\": {:.3}, \"max_ms\": {:.3}}}",
        s.len(),
        ms(min),
        ms(p50),
        ms(p99),
        ms(max)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let ms: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let [min, p50, p99, max] = summary(&ms);
        assert_eq!(
            (min, p50, p99, max),
            (
                Duration::from_millis(1),
                Duration::from_millis(50),
                Duration::from_millis(99),
                Duration::from_millis(100)
            )
        );
        let one = [Duration::from_millis(7)];
        assert_eq!(summary(&one), [one[0]; 4]);
    }
}
