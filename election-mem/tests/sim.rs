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

/// Two candidates on one path, the leader's process paused for `pause_ms`, then time passes.
fn paused_leader(pause_ms: u16) -> election_mem::sim::Report {
    use election_mem::sim::{run_schedule, Op, SimSetup, WorkKind};
    let join = |client| Op::Join {
        client,
        path: 0,
        work: WorkKind::Quick,
    };
    run_schedule(&Schedule {
        setup: SimSetup {
            session_timeout_ms: 2000,
            paths: 1,
            max_candidates: 2,
            seed: 5,
        },
        ops: vec![
            join(0),
            join(1),
            Op::Advance { ms: 100 },
            Op::Pause {
                client: 0,
                ms: pause_ms,
            },
            Op::Advance { ms: 9000 },
        ],
    })
}

#[test]
fn a_pause_the_session_outlives_exempts_nothing() {
    let report = paused_leader(600);
    report.check();
    assert!(
        report.trace.contains("pauses for 0.600 s"),
        "{}",
        report.trace
    );
    assert!(!report.trace.contains("exempt"), "{}", report.trace);
    assert!(!report.trace.contains("rejected"), "{}", report.trace);
}

#[test]
fn a_pause_past_the_sessions_expiry_exempts_the_term_and_says_why() {
    let report = paused_leader(5000);
    report.check();
    let trace = &report.trace;
    assert!(
        trace.contains("S2/S4 exempt: terms of c0 up to token 4, from +0.103000s")
            && trace.contains("expired its session at +2.103000s")
            && trace.contains("fencing is checked instead"),
        "{trace}"
    );
    // The successor led while c0 stood still; c0 left the Leader state only when it woke, and
    // learning that its session had ended, aborted its work at once (no grace): the work,
    // waiting on its cancellation, wrote nothing late.
    assert!(
        trace.contains("2.103000   c1: follower#1(leader c0) -> leader[4] (Claimed)"),
        "{trace}"
    );
    assert!(
        trace.contains("5.103000   c0: leader[3] -> suspended (SessionEnded)"),
        "{trace}"
    );
    assert!(!trace.contains("rejected"), "{trace}");
}
