//! The hand-over checkpoints (`election_core::metrics::HANDOVER_TARGET`): the `TRACE` events a
//! leader's release and its successor's claim emit, in order, with the candidate that passed
//! them. `zk_bench --legs` times a hand-over from them, so a missing or misplaced checkpoint
//! would silently break that breakdown.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use election_core::metrics::{HANDOVER_LEGS, HANDOVER_TARGET};
use election_core::{Candidate, ElectionState};
use election_mem::MemCluster;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

const P: &str = "/legs/election";
const T: Duration = Duration::from_secs(3);

/// Every checkpoint seen, as (candidate, leg).
#[derive(Clone, Default)]
struct Legs(Arc<Mutex<Vec<(String, String)>>>);

#[derive(Default)]
struct Fields {
    leg: Option<String>,
    candidate: Option<String>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "leg" => self.leg = Some(value.to_owned()),
            "candidate" => self.candidate = Some(value.to_owned()),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.record_str(field, format!("{value:?}").trim_matches('"'));
    }
}

impl<S: Subscriber> Layer<S> for Legs {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() != HANDOVER_TARGET {
            return;
        }
        let mut f = Fields::default();
        event.record(&mut f);
        let (candidate, leg) = (f.candidate.expect("candidate"), f.leg.expect("leg"));
        assert!(HANDOVER_LEGS.contains(&leg.as_str()), "unknown leg {leg}");
        self.0.lock().unwrap().push((candidate, leg));
    }
}

impl Legs {
    /// `id`'s legs since the last call, in order.
    fn take(&self, id: &str) -> Vec<String> {
        let mut all = self.0.lock().unwrap();
        let (mine, rest): (Vec<_>, Vec<_>) = all.drain(..).partition(|(c, _)| c == id);
        *all = rest;
        mine.into_iter().map(|(_, leg)| leg).collect()
    }
}

/// Whether `want` appears in `seen` in this order (other legs may sit between).
fn in_order(seen: &[String], want: &[&str]) -> bool {
    let mut it = seen.iter();
    want.iter().all(|w| it.any(|s| s == w))
}

async fn join(cluster: &MemCluster, id: &str) -> Candidate {
    let c = Candidate::builder(P, id)
        .session_timeout(T)
        .on_leader(|term| async move { term.cancelled().await })
        .join(cluster)
        .await
        .unwrap();
    let mut st = c.state();
    tokio::time::timeout(
        T,
        st.wait_for(|s| {
            s.is_leader()
                || matches!(
                    s,
                    ElectionState::Follower {
                        leader: Some(_),
                        ..
                    }
                )
        }),
    )
    .await
    .unwrap()
    .unwrap();
    c
}

/// Two graceful hand-overs among three candidates with leader work: a -> b, where b saw a at the
/// head and confirms by reading its own entry, then b -> c, where c's last listing predates the
/// first hand-over and (no leader notes here) it lists the election again. Each side passes its
/// checkpoints in the documented order.
#[test]
fn a_graceful_handover_passes_every_checkpoint_in_order() {
    let legs = Legs::default();
    let subscriber = tracing_subscriber::registry().with(legs.clone());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    tracing::subscriber::with_default(subscriber, || {
        rt.block_on(async {
            let cluster = MemCluster::new();
            let a = join(&cluster, "a").await;
            assert!(a.is_leader());
            let b = join(&cluster, "b").await;
            let c = join(&cluster, "c").await;
            tokio::time::sleep(Duration::from_millis(100)).await;
            for id in ["a", "b", "c"] {
                legs.take(id);
            }

            a.resign().await.unwrap();
            tokio::time::timeout(T, b.wait_for_leadership())
                .await
                .unwrap()
                .unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
            let (left, took) = (legs.take("a"), legs.take("b"));
            let release = [
                "resign_received",
                "work_cancel",
                "work_ended",
                "delete_sent",
                "delete_answered",
            ];
            assert!(in_order(&left, &release), "a's legs: {left:?}");
            let claim = [
                "notified",
                "read_sent",
                "read_answered",
                "work_start",
                "published",
            ];
            assert!(in_order(&took, &claim), "b's legs: {took:?}");
            assert!(
                !took.iter().any(|l| l.starts_with("list_")),
                "b saw a at the head: no listing ({took:?})"
            );
            legs.take("c");

            b.resign().await.unwrap();
            tokio::time::timeout(T, c.wait_for_leadership())
                .await
                .unwrap()
                .unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
            let (left, took) = (legs.take("b"), legs.take("c"));
            assert!(in_order(&left, &release), "b's legs: {left:?}");
            // c's listing predates the first hand-over, and the in-memory backend keeps no
            // leader notes: c lists the election again.
            let claim = [
                "notified",
                "list_sent",
                "list_answered",
                "work_start",
                "published",
            ];
            assert!(in_order(&took, &claim), "c's legs: {took:?}");

            for x in [a, b, c] {
                x.stop().await;
            }
        })
    });
}
