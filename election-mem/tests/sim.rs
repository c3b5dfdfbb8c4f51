//! Seeded simulation (`election_mem::sim`): many schedules of ops and faults, each derived from
//! one seed, every invariant checked; a failure prints `ELECTION_SEED=<n>` and the trace.
//!
//! - `ELECTION_SEED=<n>`: run that seed alone (twice, comparing the traces).
//! - `ELECTION_SIM_CASES=<n>`: how many seeds (default 2000); `ELECTION_SIM_FROM=<n>`: first seed.
#![cfg(feature = "sim")]

use std::time::Instant;

use election_mem::sim::{run_seed, Schedule};

fn env(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[test]
fn seeded_schedules_keep_every_invariant() {
    if let Some(seed) = env("ELECTION_SEED") {
        let report = run_seed(seed);
        println!("{}", report.trace);
        report.check();
        return;
    }
    let cases = env("ELECTION_SIM_CASES").unwrap_or(2000);
    let from = env("ELECTION_SIM_FROM").unwrap_or(0);
    let started = Instant::now();
    let (mut ops, mut candidates) = (0, 0);
    for seed in from..from + cases {
        let report = run_seed(seed);
        report.check();
        ops += report.ops;
        candidates += report.candidates;
    }
    println!(
        "{cases} schedules ({ops} ops, {candidates} candidates) in {:?}",
        started.elapsed()
    );
}

#[test]
fn the_same_seed_gives_the_same_trace() {
    for seed in [
        env("ELECTION_SEED").unwrap_or(1),
        2,
        3,
        17,
        29,
        99,
        178,
        218,
        1079,
    ] {
        let a = run_seed(seed);
        let b = run_seed(seed);
        assert_eq!(a.trace, b.trace, "ELECTION_SEED={seed}: traces differ");
        assert!(a.trace.lines().count() > 10);
    }
}

#[test]
fn a_seed_derives_a_schedule_of_the_documented_shape() {
    for seed in 0..200 {
        let s = Schedule::from_seed(seed);
        assert!((1..=3).contains(&s.setup.path_count()));
        assert!((1..=50).contains(&s.setup.candidate_limit()));
        assert!((10..=150).contains(&s.ops.len()));
    }
}
