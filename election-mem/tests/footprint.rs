//! Issues 12 and 18: what a candidate costs in memory, counted by a counting global allocator
//! (the bytes allocated and not yet freed: deterministic on the paused clock, so its per-election
//! figure is asserted as an upper bound; no timing involved). Run with `--nocapture` to see the
//! numbers:
//!
//! ```sh
//! cargo test -p election-mem --test footprint -- --nocapture
//! ```
//!
//! One test in this binary on purpose: the allocator counts the whole process, and tests run in
//! parallel threads.

use std::alloc::System;
use std::time::Duration;

use election_core::record::CandidateRecord;
use election_core::{Candidate, Client, ElectionPath, Marker, Watch};
use election_mem::MemCluster;
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Elections measured: enough that one-off allocations (a map's node, a buffer's growth) are
/// spread thin.
const N: usize = 2000;

/// The ceiling asserted on the live bytes per election, in-memory server included (its share
/// is about 0.75 KiB, measured apart by [`server_share`]: the entry, its parent node, the
/// watch). Measured at 1,979 bytes when set (1,216 of them the client's, the handle included:
/// the driver's task 640, the link with the candidate's state 192, the handle 56, the kept
/// first event 40, the entry's name once (shared by the machine, the driver and the head), the
/// path, the id, the payload if any, the client's registries, a share of the session's state
/// changes); 2,003 before the record was encoded for each create instead of kept, 2,131
/// before the task went from 768 to 640 bytes, 2,208 before the entry's name was shared (it
/// was kept three times), 2,336 before the task went from 896 to 768 bytes (the machine's rare
/// fields boxed, names as boxed `str`s), 2,824 before the drivers on a session shared one
/// waiter on its state (each had a 144-byte future of its own, and the
/// in-memory server a channel per subscriber), 2,864 before a follower's leader was shared
/// between the states that name it (the state was 72 bytes, held twice), 3,168 before the
/// state moved out of a tokio `watch` channel (416 bytes) into the link, 3,517 before the
/// machine's cold fields were boxed and the kept events made compact (the task was 1 KiB, the
/// event 192 bytes), 3,929 before the driver's cold fields were boxed (its task was 1,408
/// bytes), 7.6 KiB before issue 12's work on the driver (the driver's task alone was 2.9 KiB),
/// 200 KiB in issue 12's first report.
const CEILING: usize = 2005;

/// The ceiling asserted on the client's share alone: the live bytes per election less the
/// in-memory server's share measured apart. Issue 12 asks for less than 2 KiB: measured at
/// 1,216 bytes when set (1,240 before the record was encoded for each create instead of kept,
/// 1,368 before the task went from 768 to 640 bytes, 1,445 before the
/// entry's name was shared, 1,573 before the task went from 896 to 768 bytes, 1,692 before the
/// drivers on a session shared one waiter on its state,
/// 1,732 before a follower's leader was shared, 2,036 before the state left tokio's `watch`,
/// 2,385 before the machine's cold fields were boxed and the kept events made compact, 2,798
/// before the driver's cold fields were boxed).
const CLIENT_CEILING: usize = 1240;

/// Bytes allocated and not freed since `region` began, and the allocations among them (a
/// reallocation's growth counts as allocated, its shrinking as freed).
fn live(region: &Region<'_, System>) -> (isize, isize) {
    let c = region.change();
    (
        c.bytes_allocated as isize - c.bytes_deallocated as isize,
        c.allocations as isize - c.deallocations as isize,
    )
}

/// What the in-memory server keeps for one of the elections measured, and the backend's own
/// objects a candidate holds: the calls a sole candidate's join makes (a create that finds
/// the directory empty, and a watch on its own entry; no session-state subscription, which
/// the drivers on a session share), made directly on a session of a fresh cluster, the watch
/// kept as a candidate keeps it. The entry's name the create returns is not counted: a candidate keeps it as
/// its own.
async fn server_share() -> f64 {
    let cluster = MemCluster::new();
    let session = cluster
        .backend()
        .open_session(Duration::from_secs(10))
        .await
        .unwrap();
    let record = CandidateRecord {
        id: "c".into(),
        payload: Vec::new(),
    }
    .encode();
    let mut kept = Vec::with_capacity(N + 1);
    let join = |path: String, i: u64| {
        let session = session.clone();
        let record = record.clone();
        async move {
            let path = ElectionPath::new(path).unwrap();
            let info = session
                .create(&path, &Marker::from_bits(i), &record)
                .await
                .unwrap();
            assert!(info.sole, "{path} is a fresh election");
            let Watch::Armed(notification) = session.watch_gone(&path, &info.name).await.unwrap()
            else {
                panic!("the entry just made is there")
            };
            // No session-state subscription: the drivers on a session share one.
            Some(notification)
        }
    };
    // Warm up, as the candidates do.
    kept.push(join("/footprint/warm".into(), u64::MAX).await);
    let region = Region::new(GLOBAL);
    for i in 0..N {
        kept.push(join(format!("/footprint/e/{i:05}"), i as u64).await);
    }
    let (bytes, _) = live(&region);
    drop(kept);
    session.close().await;
    bytes as f64 / N as f64
}

#[test]
fn memory_per_election() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let server = server_share().await;
        let cluster = MemCluster::new();
        let client = Client::connect(cluster.backend(), Duration::from_secs(10))
            .await
            .unwrap();
        // Warm up: the first election's one-off allocations (the runtime's timer wheel, the
        // client's maps) are not per election.
        let warm = client
            .join(Candidate::builder("/footprint/warm", "w").build().unwrap())
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(1), warm.wait_for_leadership())
            .await
            .unwrap_or_else(|e| Err(e.into()))
            .unwrap();
        let region = Region::new(GLOBAL);
        // N elections, one candidate each, over one client session, as zk_scale runs them.
        let mut candidates = Vec::with_capacity(N);
        for i in 0..N {
            let c = client
                .join(
                    Candidate::builder(format!("/footprint/e/{i:05}"), "c")
                        .build()
                        .unwrap(),
                )
                .await
                .unwrap();
            candidates.push(c);
        }
        for c in &candidates {
            tokio::time::timeout(Duration::from_secs(1), c.wait_for_leadership())
                .await
                .unwrap_or_else(|e| Err(e.into()))
                .unwrap();
        }
        // Settled: nothing is in flight.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (bytes, blocks) = live(&region);
        let per = bytes as f64 / N as f64;
        let client_per = per - server;
        println!(
            "live memory per election (in-memory server included, the handle too): {per:.0} bytes \
             in {:.1} allocations ({N} elections, {:.2} MiB in all); ceiling {CEILING} bytes; \
             an Event is {} bytes\n\
             of which the in-memory server's share (measured apart): {server:.0} bytes; the \
             client's: {client_per:.0} bytes (ceiling {CLIENT_CEILING})",
            blocks as f64 / N as f64,
            bytes as f64 / (1024.0 * 1024.0),
            std::mem::size_of::<election_core::Event>(),
        );
        assert!(
            per <= CEILING as f64,
            "{per:.0} bytes per election, more than the ceiling of {CEILING}"
        );
        assert!(
            client_per <= CLIENT_CEILING as f64,
            "the client's share: {client_per:.0} bytes per election, more than the ceiling of \
             {CLIENT_CEILING}"
        );
        for c in &candidates {
            c.stop().await;
        }
        drop(candidates);
        warm.stop().await;
        client.close().await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        // Nothing of a stopped election is left but what outlives its candidate by design: the
        // election's directory on the server (ZooKeeper keeps it too), the highest term token the
        // client saw there: about 330 bytes. A driver left behind would be 1.3 KiB by itself.
        let (left, _) = live(&region);
        let left_per = left as f64 / N as f64;
        println!(
            "left after every candidate stopped and the client closed: {left_per:.0} bytes per \
             election"
        );
        assert!(
            left_per <= 1024.0,
            "{left_per:.0} bytes per election left after {N} elections stopped"
        );

        // A receiver that lags: w's events are never read while the lead passes back and forth
        // between w and a leader with the largest payload, 200 times. Each hand-over gives w
        // events that carry that leader's info (a fresh read of its record each time).
        let big = vec![7u8; election_core::MAX_PAYLOAD_LEN];
        let l = Candidate::builder("/footprint/lag", "l")
            .payload(big)
            .join(cluster.clone())
            .await
            .unwrap();
        l.wait_for_leadership().await.unwrap();
        let w = Candidate::builder("/footprint/lag", "w")
            .join(cluster.clone())
            .await
            .unwrap();
        let lagging = w.events();
        let region = Region::new(GLOBAL);
        for _ in 0..200 {
            l.resign().await.unwrap();
            w.wait_for_leadership().await.unwrap();
            w.resign().await.unwrap();
            l.wait_for_leadership().await.unwrap();
        }
        let mut w_state = w.state();
        w_state
            .wait_for(|s| matches!(s, election_core::ElectionState::Follower { leader: Some(_), .. }))
            .await
            .unwrap();
        let (grew, _) = live(&region);
        println!(
            "a receiver lagging {} events behind (it keeps the last {}) a follower of a {} KiB payload: \
             live memory grew by {:.1} MiB",
            lagging.len(),
            election_core::EVENTS_CAPACITY,
            election_core::MAX_PAYLOAD_LEN / 1024,
            grew as f64 / (1024.0 * 1024.0),
        );
        drop(lagging);
        w.stop().await;
        l.stop().await;
    });
}
