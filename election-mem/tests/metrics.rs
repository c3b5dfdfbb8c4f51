//! The library's own metrics (`election_core::metrics`), recorded through the `metrics` facade:
//! what a hand-over records, read back through metrics-util's debugging recorder.

use std::time::Duration;

use election_core::Candidate;
use election_mem::MemCluster;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};

const T: Duration = Duration::from_secs(3);

/// A graceful hand-over: two terms, two leaders, and the successor's take-over time (from the
/// notice that its predecessor's entry is gone to leading) recorded once, small.
#[test]
fn a_handover_records_terms_and_the_successors_takeover_time() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    metrics::with_local_recorder(&recorder, || {
        rt.block_on(async {
            let cluster = MemCluster::new();
            let a = Candidate::builder("/metrics/handover", "a")
                .session_timeout(T)
                .join(&cluster)
                .await
                .unwrap();
            a.wait_for_leadership().await.unwrap();
            let b = Candidate::builder("/metrics/handover", "b")
                .session_timeout(T)
                .join(&cluster)
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
            a.stop().await;
            tokio::time::timeout(T, b.wait_for_leadership())
                .await
                .unwrap()
                .unwrap();
            b.stop().await;
        })
    });
    let (mut terms, mut takeovers) = (None, Vec::new());
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let ours = key
            .key()
            .labels()
            .any(|l| l.key() == "path" && l.value() == "/metrics/handover");
        match (ours, key.key().name(), value) {
            (true, "election_terms_total", DebugValue::Counter(n)) => terms = Some(n),
            (true, "election_takeover_seconds", DebugValue::Histogram(v)) => {
                takeovers.extend(v.into_iter().map(|x| x.into_inner()))
            }
            _ => {}
        }
    }
    assert_eq!(terms, Some(2));
    // Only b took over from a predecessor; a led from the start.
    assert_eq!(takeovers.len(), 1, "{takeovers:?}");
    assert!((0.0..0.5).contains(&takeovers[0]), "{takeovers:?}");
}

/// Take-over time is a new leader's: a follower whose predecessor (not the leader) left, and
/// which then stops without ever leading, records none.
#[test]
fn a_follower_that_never_leads_records_no_takeover() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    let path = "/metrics/no-takeover";
    metrics::with_local_recorder(&recorder, || {
        rt.block_on(async {
            let cluster = MemCluster::new();
            let join = |id: &'static str| {
                Candidate::builder(path, id)
                    .session_timeout(T)
                    .join(&cluster)
            };
            let a = join("a").await.unwrap();
            a.wait_for_leadership().await.unwrap();
            let b = join("b").await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
            let c = join("c").await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert_eq!(cluster.entries(path).len(), 3);
            // c's predecessor goes; a still leads.
            b.stop().await;
            tokio::time::sleep(Duration::from_secs(2)).await;
            c.stop().await;
            a.stop().await;
        })
    });
    let takeovers: Vec<f64> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| {
            key.key().name() == "election_takeover_seconds"
                && key
                    .key()
                    .labels()
                    .any(|l| l.key() == "path" && l.value() == path)
        })
        .flat_map(|(_, _, _, value)| match value {
            DebugValue::Histogram(v) => v.into_iter().map(|x| x.into_inner()).collect(),
            _ => Vec::new(),
        })
        .collect();
    assert!(takeovers.is_empty(), "{takeovers:?}");
}
