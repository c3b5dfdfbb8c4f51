//! Hostile data from another tenant of the ZooKeeper ensemble, on a real server: thousands of
//! foreign children and a foreign node of about 1 MB in the election directory. The candidate
//! still leads, lists them as foreign (never as candidates), and leaves them as they were.
//! (A lying length prefix in entry data is `RecordError::Truncated`, covered by
//! `election_core::record`'s tests and the `decode` fuzz target.)

use std::sync::Arc;
use std::time::{Duration, Instant};

use election_core::{BackendSession, Candidate, CoordinationBackend, ElectionPath};
use election_zk::testing::{ZkServer, TICK_TIME};
use election_zk::ZkBackend;
use tokio::time::timeout;
use zookeeper_client as zk;

const T: Duration = Duration::from_secs(4);
const FOREIGN: usize = 3000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_foreign_children_and_a_large_foreign_node() {
    let server = ZkServer::start();
    let raw = zk::Client::connector()
        .with_session_timeout(T)
        .connect(&server.connect_string())
        .await
        .expect("raw client");
    let open = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
    raw.create("/h", &[], &open).await.unwrap();
    raw.create("/h/leader", &[], &open).await.unwrap();
    let started = Instant::now();
    for batch in (0..FOREIGN).collect::<Vec<_>>().chunks(500) {
        let mut pending = tokio::task::JoinSet::new();
        for &i in batch {
            let raw = raw.clone();
            let open = open.clone();
            pending.spawn(async move {
                raw.create(&format!("/h/leader/tenant-{i:05}"), b"x", &open)
                    .await
                    .map(|_| ())
            });
        }
        while let Some(done) = pending.join_next().await {
            done.unwrap().unwrap();
        }
    }
    // Close to jute.maxbuffer (1 MiB by default): the largest a tenant can write.
    let big = vec![0xabu8; 1_000_000];
    raw.create("/h/leader/tenant-big", &big, &open)
        .await
        .unwrap();
    eprintln!(
        "measure: {FOREIGN} foreign children and 1 MB of foreign data created in {:?}",
        started.elapsed()
    );

    let backend: Arc<dyn CoordinationBackend> = Arc::new(
        ZkBackend::builder(server.connect_string())
            .server_tick_time(TICK_TIME)
            .build()
            .unwrap(),
    );
    let session: Arc<dyn BackendSession> = backend.open_session(T).await.unwrap();
    let dir = ElectionPath::new("/h/leader").unwrap();
    let started = Instant::now();
    let listing = session.list(&dir).await.unwrap();
    eprintln!(
        "measure: listing {} foreign children took {:?}",
        listing.foreign.len(),
        started.elapsed()
    );
    assert!(listing.entries.is_empty());
    assert_eq!(listing.foreign.len(), FOREIGN + 1);
    session.close().await;

    let started = Instant::now();
    let c = Candidate::builder("/h/leader", "alpha")
        .session_timeout(T)
        .join(backend.clone())
        .await
        .unwrap();
    timeout(Duration::from_secs(10), c.wait_for_leadership())
        .await
        .expect("leads in time")
        .expect("leads");
    eprintln!(
        "measure: led among the foreign children after {:?}",
        started.elapsed()
    );
    let leader = c.current_leader().await.unwrap().expect("a leader");
    assert_eq!(leader.id, "alpha");
    let participants = c.participants().await.unwrap();
    assert_eq!(participants.len(), 1, "foreign children are not candidates");
    c.stop().await;

    let children = raw.list_children("/h/leader").await.unwrap();
    assert_eq!(children.len(), FOREIGN + 1, "foreign children untouched");
    let (data, _) = raw.get_data("/h/leader/tenant-big").await.unwrap();
    assert_eq!(data.len(), big.len());
}
