//! Hostile data from another tenant of the ZooKeeper ensemble, on a real server: thousands of
//! foreign children, a foreign node of about 1 MB, a contender and a node named like an entry
//! each with about 1 MB of data in the election directory. The candidate still leads, lists
//! them as foreign (never as candidates), keeps a bounded part of them (`election_core::limits`)
//! and leaves them as they were.
//! (A lying length prefix in entry data is `RecordError::Truncated`, covered by
//! `election_core::record`'s tests and the `decode` fuzz target.)

use std::sync::Arc;
use std::time::{Duration, Instant};

use election_core::limits::{
    MAX_FOREIGN_DATA_LEN, MAX_FOREIGN_NAMES, MAX_FOREIGN_NAME_LEN, MAX_RECORD_LEN,
};
use election_core::{
    BackendSession, Candidate, CoordinationBackend, ElectionPath, Marker, SessionId,
};
use election_zk::testing::{ZkServer, TICK_TIME};
use election_zk::{EntryName, ZkBackend};
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
    // A name of 64 KiB.
    let long = format!("tenant-long-{}", "n".repeat(64 * 1024));
    raw.create(&format!("/h/leader/{long}"), b"", &open)
        .await
        .unwrap();
    // A contender of another implementation (persistent: a tenant's, not a live client's) and
    // a node named like an entry of ours, each with about 1 MB of data.
    let contender = "_c_u-lock-0000000001";
    raw.create(&format!("/h/leader/{contender}"), &big, &open)
        .await
        .unwrap();
    let lookalike = format!(
        "{}0000000002",
        EntryName::prefix(&Marker::from_bits(0xbad), SessionId(0x1234))
    );
    raw.create(&format!("/h/leader/{lookalike}"), &big, &open)
        .await
        .unwrap();
    let foreign = FOREIGN + 2;
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
    // Bounded: a few names kept, the rest counted; the contender kept (the order needs it)
    // with a bounded part of its data; the look-alike is listed by name, as an entry.
    assert_eq!(listing.entries.len(), 1, "{:?}", listing.entries);
    assert_eq!(listing.foreign.len(), MAX_FOREIGN_NAMES);
    assert_eq!(listing.foreign_omitted, foreign - MAX_FOREIGN_NAMES);
    assert!(listing
        .foreign
        .iter()
        .all(|n| n.len() <= MAX_FOREIGN_NAME_LEN));
    assert_eq!(listing.contenders.len(), 1);
    assert_eq!(listing.contenders[0].data.len(), MAX_FOREIGN_DATA_LEN);
    let kept: usize = listing.foreign.iter().map(String::len).sum::<usize>()
        + listing
            .contenders
            .iter()
            .map(|c| c.data.len())
            .sum::<usize>();
    eprintln!("measure: the listing keeps {kept} bytes of foreign names and data");
    // Reading the look-alike keeps no more than a record's largest size and one byte.
    let read = session
        .read(&dir, &lookalike)
        .await
        .unwrap()
        .expect("the look-alike is there");
    assert_eq!(read.data.len(), MAX_RECORD_LEN + 1);
    assert!(read.data.capacity() <= MAX_RECORD_LEN + 1);
    assert!(
        election_core::CandidateRecord::decode(&read.data).is_err(),
        "not a record of ours"
    );
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
    assert_eq!(children.len(), foreign + 2, "foreign children untouched");
    let (data, _) = raw.get_data("/h/leader/tenant-big").await.unwrap();
    assert_eq!(data.len(), big.len());
}
