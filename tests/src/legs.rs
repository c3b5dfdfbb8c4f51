//! The graceful hand-over leg by leg, for `zk_bench --legs`: where the time goes between "the
//! leader lets go" (`resign()` called) and "the next leader's work runs" (the successor's work
//! closure is first polled).
//!
//! The driver emits a `tracing` event at each checkpoint (target [`HANDOVER_TARGET`]); [`Marks`]
//! is a `tracing-subscriber` layer that stamps each with an [`Instant`] as it is emitted. Without
//! that layer the events cost one atomic load each, so the library measured is the one users
//! run.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use election_core::metrics::HANDOVER_TARGET;
use election_core::{Candidate, CoordinationBackend};
use tokio::sync::mpsc;
use tokio::time::timeout;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::Registry;

use crate::scenario::{self, ms, summary, wait_state, RawFloor};

/// One checkpoint as it was emitted.
#[derive(Clone, Debug)]
pub struct Mark {
    /// When the event was emitted (stamped by the layer).
    pub at: Instant,
    /// The checkpoint's name (`leg` field).
    pub leg: String,
    /// The candidate id, when the event names one.
    pub candidate: Option<String>,
    /// The session id as displayed, when the event names one.
    pub session: Option<String>,
}

/// A `tracing-subscriber` layer recording hand-over checkpoints.
#[derive(Clone, Default)]
pub struct Marks(Arc<Mutex<Vec<Mark>>>);

impl Marks {
    /// Installs a global subscriber that records the hand-over checkpoints and nothing else.
    /// Panics if a global subscriber is already set.
    pub fn install() -> Self {
        let marks = Marks::default();
        let filter = tracing_subscriber::filter::Targets::new()
            .with_target(HANDOVER_TARGET, tracing::Level::TRACE);
        let subscriber = Registry::default().with(marks.clone().with_filter(filter));
        tracing::subscriber::set_global_default(subscriber)
            .expect("no global tracing subscriber set before");
        marks
    }

    /// Takes the marks recorded so far.
    pub fn take(&self) -> Vec<Mark> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

#[derive(Default)]
struct Fields {
    leg: Option<String>,
    candidate: Option<String>,
    session: Option<String>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.set(field, value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.set(field, format!("{value:?}"));
    }
}

impl Fields {
    fn set(&mut self, field: &Field, value: String) {
        match field.name() {
            "leg" => self.leg = Some(value),
            "candidate" => self.candidate = Some(value),
            "session" => self.session = Some(value),
            _ => {}
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for Marks {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let at = Instant::now();
        let mut fields = Fields::default();
        event.record(&mut fields);
        if let Some(leg) = fields.leg {
            self.0.lock().unwrap().push(Mark {
                at,
                leg,
                candidate: fields.candidate,
                session: fields.session,
            });
        }
    }
}

/// The legs, in print order: (label, from, to). `from`/`to` name checkpoints; `resign` is the
/// call, `running` the successor's work first polled, `confirm_*` the successor's confirming
/// request (a read of its own entry, or a listing when it must find its place again). The old
/// leader's checkpoints are its own, the successor's its own (`watch_fired` is matched by the
/// successor's session).
pub const LEGS: [(&str, &str, &str); 14] = [
    ("resign() -> driver has it", "resign", "resign_received"),
    ("-> work told to stop", "resign_received", "work_cancel"),
    ("-> work ended and joined", "work_cancel", "work_ended"),
    ("-> delete sent", "work_ended", "delete_sent"),
    ("delete sent -> handed to the client", "delete_sent", "wire"),
    ("handed to the client -> watch fired", "wire", "watch_fired"),
    (
        "delete sent -> answered (old)",
        "delete_sent",
        "delete_answered",
    ),
    ("delete sent -> watch fired", "delete_sent", "watch_fired"),
    ("-> successor's driver has it", "watch_fired", "notified"),
    ("-> confirming request sent", "notified", "confirm_sent"),
    (
        "-> confirming request answered",
        "confirm_sent",
        "confirm_answered",
    ),
    ("-> new work started", "confirm_answered", "work_start"),
    ("-> new work running", "work_start", "running"),
    ("work started -> published", "work_start", "published"),
];

/// Idle time before each measured operation (hand-over, floor sample, round trip), so that
/// each starts from the same quiet state, unless told otherwise (`zk_bench --legs --gap-ms N`;
/// `zk_compare` idles 20 ms).
pub const GAP: Duration = Duration::from_millis(5);

/// How many of the slowest rounds [`slowest`] breaks down at each candidate count.
pub const SLOWEST: usize = 3;

/// The allowance of the goal over the floor and one round trip.
pub const ALLOWANCE: Duration = Duration::from_micros(200);

/// One candidate count's samples: per leg of [`LEGS`], the whole hand-over, and the raw floor
/// and a read round trip measured in the same rounds.
pub struct Sizes {
    /// Number of candidates.
    pub candidates: usize,
    /// Samples per leg, in [`LEGS`] order.
    pub legs: Vec<Vec<Duration>>,
    /// `resign()` called -> the successor's work runs.
    pub total: Vec<Duration>,
    /// Per round: the hand-over over (that round's floor + round trip + [`ALLOWANCE`]).
    pub ratio: Vec<f64>,
    /// The raw floor, one sample per round (delete on one bare session -> exists watch fires
    /// on another).
    pub floor: Vec<Duration>,
    /// An `exists` round trip on a bare session, one sample per round.
    pub rtt: Vec<Duration>,
    /// Rounds whose successor confirmed with a read of its own entry / with a listing.
    pub by_read: usize,
    /// See `by_read`.
    pub by_list: usize,
    /// Rounds with a checkpoint missing (not counted in the legs).
    pub incomplete: usize,
    /// Per complete round, in the order of `total` and of each leg's samples: that round's
    /// floor and round trip (`floor` and `rtt` hold every round's, complete or not).
    pub round_floor: Vec<(Duration, Duration)>,
}

/// Runs `rounds` graceful hand-overs among `n` candidates with leader work, recording the
/// checkpoints of each; each round also takes one floor sample and one round trip on bare
/// sessions, so that both see the same load as the hand-over; `gap` of idle time comes before
/// each of the three.
pub async fn hand_overs(
    marks: &Marks,
    connect: &str,
    backend: Arc<dyn CoordinationBackend>,
    n: usize,
    rounds: usize,
    session_timeout: Duration,
    gap: Duration,
) -> Sizes {
    let probe = RawFloor::new(connect).await;
    let path = format!("/bench/legs-{n}");
    let (running_tx, mut running) = mpsc::unbounded_channel::<(String, Instant)>();
    let mut cs = Vec::with_capacity(n);
    for i in 0..n {
        let id = format!("c{i:03}");
        let tx = running_tx.clone();
        let work_id = id.clone();
        let c = Candidate::builder(path.as_str(), id)
            .session_timeout(session_timeout)
            .on_leader(move |term| {
                let tx = tx.clone();
                let id = work_id.clone();
                async move {
                    let _ = tx.send((id, Instant::now()));
                    term.cancelled().await;
                }
            })
            .join(backend.clone())
            .await
            .expect("join");
        settled(&c).await;
        cs.push(c);
    }
    let first = timeout(Duration::from_secs(10), running.recv())
        .await
        .expect("the first leader's work runs")
        .expect("open");
    assert_eq!(first.0, cs[0].id());
    let mut out = Sizes {
        candidates: n,
        legs: vec![Vec::with_capacity(rounds); LEGS.len()],
        total: Vec::with_capacity(rounds),
        ratio: Vec::with_capacity(rounds),
        floor: Vec::with_capacity(rounds),
        rtt: Vec::with_capacity(rounds),
        by_read: 0,
        by_list: 0,
        incomplete: 0,
        round_floor: Vec::with_capacity(rounds),
    };
    let mut order: Vec<usize> = (0..n).collect();
    for round in 0..rounds {
        let floor = probe.round(gap).await;
        let rtt = probe.round_trip(gap).await;
        out.floor.push(floor);
        out.rtt.push(rtt);
        let (leader, successor) = (order[0], order[1]);
        tokio::time::sleep(gap).await;
        marks.take();
        let started = Instant::now();
        cs[leader].resign().await.expect("resign");
        let (id, ran) = timeout(Duration::from_secs(10), running.recv())
            .await
            .unwrap_or_else(|_| panic!("round {round}: {} did not lead", cs[successor].id()))
            .expect("open");
        assert_eq!(
            id,
            cs[successor].id(),
            "round {round}: the next in line leads"
        );
        // The resigner is back at the tail and knows the leader: its rejoin is not counted in
        // the next round.
        settled(&cs[leader]).await;
        order.rotate_left(1);
        let got = marks.take();
        let (old, new) = (cs[leader].id(), cs[successor].id());
        let find = |legs: &[&str], who: &str, after: Instant| {
            got.iter()
                .find(|m| {
                    legs.contains(&m.leg.as_str())
                        && m.candidate.as_deref() == Some(who)
                        && m.at >= after
                })
                .cloned()
        };
        let notified = find(&["notified"], new, started);
        let confirm_sent = notified
            .as_ref()
            .and_then(|n| find(&["read_sent", "list_sent"], new, n.at));
        let confirm_answered = confirm_sent.as_ref().and_then(|c| {
            let answer = if c.leg == "read_sent" {
                "read_answered"
            } else {
                "list_answered"
            };
            find(&[answer], new, c.at)
        });
        match confirm_sent.as_ref().map(|c| c.leg.as_str()) {
            Some("read_sent") => out.by_read += 1,
            Some(_) => out.by_list += 1,
            None => {}
        }
        let session = notified.as_ref().and_then(|m| m.session.clone());
        let at = |point: &str| -> Option<Instant> {
            match point {
                "resign" => Some(started),
                "running" => Some(ran),
                "confirm_sent" => confirm_sent.as_ref().map(|m| m.at),
                "confirm_answered" => confirm_answered.as_ref().map(|m| m.at),
                "notified" => notified.as_ref().map(|m| m.at),
                "resign_received" | "work_cancel" | "work_ended" | "delete_sent"
                | "delete_answered" => find(&[point], old, started).map(|m| m.at),
                // The backend's own checkpoint, by the old leader's session.
                "wire" => {
                    let sent = find(&["delete_sent"], old, started)?;
                    got.iter()
                        .find(|m| m.leg == point && m.session == sent.session && m.at >= sent.at)
                        .map(|m| m.at)
                }
                "watch_fired" => got
                    .iter()
                    .find(|m| m.leg == point && m.session == session && m.at >= started)
                    .map(|m| m.at),
                _ => find(&[point], new, started).map(|m| m.at),
            }
        };
        let points: Option<Vec<(Instant, Instant)>> = LEGS
            .iter()
            .map(|(_, from, to)| Some((at(from)?, at(to)?)))
            .collect();
        match points {
            Some(points) => {
                for (i, (from, to)) in points.into_iter().enumerate() {
                    out.legs[i].push(to.saturating_duration_since(from));
                }
                let total = ran - started;
                out.total.push(total);
                out.round_floor.push((floor, rtt));
                out.ratio
                    .push(total.as_secs_f64() / (floor + rtt + ALLOWANCE).as_secs_f64());
            }
            None => out.incomplete += 1,
        }
    }
    for c in &cs {
        c.stop().await;
    }
    out
}

async fn settled(c: &Candidate) {
    wait_state(c, "settled", Duration::from_secs(30), scenario::settled).await;
}

/// The [`SLOWEST`] slowest rounds at each candidate count, leg by leg: where a p99 goes. Each
/// line gives the round's whole hand-over, its floor and round trip (sampled just before it),
/// and the legs that took longest over their own p50, with that excess.
pub fn slowest(results: &[Sizes]) -> String {
    let mut t = String::new();
    for r in results {
        let p50s: Vec<Duration> = r
            .legs
            .iter()
            .map(|l| {
                if l.is_empty() {
                    Duration::ZERO
                } else {
                    summary(l)[1]
                }
            })
            .collect();
        let mut rounds: Vec<usize> = (0..r.total.len()).collect();
        rounds.sort_by_key(|&i| std::cmp::Reverse(r.total[i]));
        for &i in rounds.iter().take(SLOWEST) {
            let mut over: Vec<(Duration, &str)> = chain()
                .map(|k| (r.legs[k][i].saturating_sub(p50s[k]), LEGS[k].0))
                .collect();
            over.sort_by_key(|&(d, _)| std::cmp::Reverse(d));
            let (floor, rtt) = r.round_floor[i];
            let _ = write!(
                t,
                "C={:<4} {:>7.3} ms (floor {:.3}, rtt {:.3}); over p50:",
                r.candidates,
                ms(r.total[i]),
                ms(floor),
                ms(rtt)
            );
            for (d, label) in over.iter().take(3) {
                let _ = write!(t, " {} +{:.3},", label.trim_start_matches("-> "), ms(*d));
            }
            t.pop();
            let _ = writeln!(t);
        }
    }
    t
}

/// The indices of the [`LEGS`] that follow one another from `resign` to `running`, each
/// starting where the last ended: the others ("delete sent -> answered (old)", "delete sent ->
/// watch fired", "work started -> published") overlap them.
fn chain() -> impl Iterator<Item = usize> {
    let mut end = "resign";
    LEGS.iter()
        .enumerate()
        .filter(move |(_, (_, from, to))| {
            let next = *from == end;
            if next {
                end = to;
            }
            next
        })
        .map(|(k, _)| k)
}

/// The median of a sample of ratios.
pub fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or(f64::NAN)
}

/// The table: p50/p99 of each leg per candidate count, the whole hand-over, the floor and round
/// trip of the same rounds, and the goal (floor + one round trip + 0.2 ms).
pub fn table(results: &[Sizes]) -> String {
    let mut t = String::new();
    let _ = write!(t, "{:<34}", "leg (ms, p50 / p99)");
    for r in results {
        let _ = write!(t, " {:>17}", format!("C={}", r.candidates));
    }
    let _ = writeln!(t);
    let cell = |s: &[Duration]| {
        if s.is_empty() {
            return "-".to_owned();
        }
        let [_, p50, p99, _] = summary(s);
        format!("{:.3} / {:.3}", ms(p50), ms(p99))
    };
    let mut line = |label: &str, f: &dyn Fn(&Sizes) -> String| {
        let _ = write!(t, "{label:<34}");
        for r in results {
            let _ = write!(t, " {:>17}", f(r));
        }
        let _ = writeln!(t);
    };
    for (i, (label, _, _)) in LEGS.iter().enumerate() {
        line(label, &|r| cell(&r.legs[i]));
    }
    line("resign() -> new work running", &|r| cell(&r.total));
    line("raw floor (delete -> watch)", &|r| cell(&r.floor));
    line("raw read round trip", &|r| cell(&r.rtt));
    line("goal: floor + rtt + 0.2 (p50s)", &|r| {
        let [_, f, _, _] = summary(&r.floor);
        let [_, rt, _, _] = summary(&r.rtt);
        format!("{:.3}", ms(f + rt + ALLOWANCE))
    });
    line("hand-over p50 / goal", &|r| {
        if r.total.is_empty() {
            return "-".to_owned();
        }
        let [_, f, _, _] = summary(&r.floor);
        let [_, rt, _, _] = summary(&r.rtt);
        let [_, p50, _, _] = summary(&r.total);
        format!(
            "{:.2}x",
            p50.as_secs_f64() / (f + rt + ALLOWANCE).as_secs_f64()
        )
    });
    line("median of per-round ratios", &|r| {
        format!("{:.2}x", median(&r.ratio))
    });
    line("confirmed by read / by listing", &|r| {
        format!("{} / {}", r.by_read, r.by_list)
    });
    line("rounds with a checkpoint missing", &|r| {
        r.incomplete.to_string()
    });
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The chain runs from `resign` to `running` without a gap, and leaves out exactly the legs
    /// that overlap it.
    #[test]
    fn the_chain_covers_the_hand_over_once() {
        let legs: Vec<_> = chain().map(|k| LEGS[k]).collect();
        assert_eq!(legs.first().map(|l| l.1), Some("resign"));
        assert_eq!(legs.last().map(|l| l.2), Some("running"));
        for pair in legs.windows(2) {
            assert_eq!(pair[0].2, pair[1].1, "{pair:?}");
        }
        let left: Vec<&str> = LEGS
            .iter()
            .filter(|l| !legs.contains(l))
            .map(|l| l.0)
            .collect();
        assert_eq!(
            left,
            [
                "delete sent -> answered (old)",
                "delete sent -> watch fired",
                "work started -> published"
            ]
        );
    }
}
