//! How fast the simulation runs: schedules per second, for the built-in schedules (1-50
//! candidates over 1-3 paths, every fault, pauses included) and for the fenced streamer of
//! `fenced_streamer.rs` (3 replicas, your-own-work schedules). Each schedule runs on its own
//! thread and paused-clock runtime, one at a time, so the numbers are for one core.
//!
//! ```sh
//! cargo run --release -p election --features sim --example sim_bench [-- <schedules>]
//! ```

use std::time::Instant;

#[path = "fenced_streamer.rs"]
mod streamer;

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);

    let started = Instant::now();
    let (mut ops, mut pauses) = (0, 0);
    for seed in 0..n {
        let schedule = election::sim::Schedule::from_seed(seed);
        pauses += schedule
            .ops
            .iter()
            .filter(|op| matches!(op, election::sim::Op::Pause { .. }))
            .count();
        let report = election::sim::run_seed(seed);
        report.check();
        ops += report.ops;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "built-in schedules: {n} in {secs:.2} s: {:.0} schedules/s ({ops} ops, {pauses} pauses, {:.0} ops/s)",
        n as f64 / secs,
        ops as f64 / secs
    );

    let sim = streamer::simulation(election::testing::FencedStore::new);
    let started = Instant::now();
    let (mut ops, mut pauses) = (0, 0);
    for seed in 0..n {
        pauses += sim
            .schedule(seed)
            .ops
            .iter()
            .filter(|op| matches!(op, election::sim::Op::Pause { .. }))
            .count();
        let report = sim.run_seed(seed);
        report.check();
        ops += report.ops;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "fenced streamer, 3 replicas: {n} in {secs:.2} s: {:.0} schedules/s ({ops} ops, {pauses} pauses, {:.0} ops/s)",
        n as f64 / secs,
        ops as f64 / secs
    );
}
