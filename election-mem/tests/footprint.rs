//! Issue 18, point 8: what a candidate costs in memory. Prints the resident memory added per
//! candidate (no timing involved); run with `--nocapture` to see the numbers:
//!
//! ```sh
//! cargo test -p election-mem --test footprint -- --nocapture
//! ```
//!
//! One test in this binary on purpose: resident memory is per process, and tests run in
//! parallel threads.

use std::time::Duration;

use election_core::{Candidate, Client};
use election_mem::MemCluster;

/// Resident memory of this process, from `/proc/self/statm` (Linux).
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[test]
fn memory_per_candidate() {
    const N: usize = 256;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async {
        let cluster = MemCluster::new();
        let client = Client::connect(cluster.backend(), Duration::from_secs(10))
            .await
            .unwrap();
        // Warm up: the first candidate's one-off allocations are not per candidate.
        let warm = client
            .join(Candidate::builder("/footprint/warm", "w").build().unwrap())
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(1), warm.wait_for_leadership())
            .await
            .unwrap_or_else(|e| Err(e.into()))
            .unwrap();
        let Some(before) = resident_bytes() else {
            eprintln!("no /proc/self/statm: nothing measured");
            return;
        };
        let mut candidates = Vec::with_capacity(N);
        for i in 0..N {
            let c = client
                .join(
                    Candidate::builder(format!("/footprint/e{i}"), "c")
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
        let after = resident_bytes().unwrap();
        let per = after.saturating_sub(before) / N as u64;
        println!(
            "resident memory per candidate: {:.1} KiB ({N} candidates, {:.1} MiB in all); \
             an Event is {} bytes",
            per as f64 / 1024.0,
            after.saturating_sub(before) as f64 / (1024.0 * 1024.0),
            std::mem::size_of::<election_core::Event>(),
        );
        // Loose on purpose (allocator noise): the event buffer alone used to be ~190 KiB.
        assert!(per < 64 * 1024, "{per} bytes per candidate");
        for c in &candidates {
            c.stop().await;
        }
        warm.stop().await;
        client.close().await;

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
        let before = resident_bytes().unwrap();
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
        let after = resident_bytes().unwrap();
        println!(
            "a receiver lagging {} events behind (it keeps the last {}) a follower of a {} KiB payload: \
             resident memory grew by {:.1} MiB",
            lagging.len(),
            election_core::EVENTS_CAPACITY,
            election_core::MAX_PAYLOAD_LEN / 1024,
            after.saturating_sub(before) as f64 / (1024.0 * 1024.0),
        );
        drop(lagging);
        w.stop().await;
        l.stop().await;
    });
}
