//! The worked example of "Testing your own failover" (`examples/fenced_streamer.rs`) in the test
//! command: the fenced streamer passes 1000 seeded schedules with process pauses among the
//! faults, and the same streamer over a downstream that ignores the token is caught by the same
//! checks, with the seed that replays it.
//!
//! `ELECTION_SEED=<n>` replays one schedule of the fenced streamer and prints its trace;
//! `ELECTION_SIM_CASES=<n>` changes how many run (default 1000).

use election::sim::Op;
use election::testing::FencedStore;

#[path = "../examples/fenced_streamer.rs"]
mod streamer;

fn cases() -> u64 {
    std::env::var("ELECTION_SIM_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

#[test]
fn the_fenced_streamer_keeps_every_check_through_1000_schedules_with_pauses() {
    let sim = streamer::simulation(FencedStore::new);
    if std::env::var_os("ELECTION_SEED").is_some() {
        sim.run_seeds(0..0);
        return;
    }
    let started = std::time::Instant::now();
    let (mut pauses, mut exempt, mut refused) = (0, 0, 0);
    for seed in 0..cases() {
        let report = sim.run_seed(seed);
        report.check();
        let schedule = sim.schedule(seed);
        pauses += schedule
            .ops
            .iter()
            .filter(|op| matches!(op, Op::Pause { .. }))
            .count();
        exempt += usize::from(report.trace.contains("S2/S4 exempt"));
        refused += usize::from(report.trace.contains("refused: stale fencing token"));
    }
    println!(
        "{} schedules, {pauses} pauses, {exempt} runs where a pause outlasted a leader's session, {refused} where the store refused a deposed leader's record, in {:.1} s",
        cases(),
        started.elapsed().as_secs_f64()
    );
    // The fence was put to work, not merely present.
    if cases() >= 1000 {
        assert!(
            pauses > 500 && exempt > 20 && refused > 10,
            "{pauses} {exempt} {refused}"
        );
    }
}

#[test]
fn a_downstream_that_ignores_the_token_is_caught_with_the_seed_that_replays_it() {
    let sim = streamer::simulation(FencedStore::unfenced);
    let report = (0..200)
        .map(|seed| sim.run_seed(seed))
        .find(|r| r.violation.is_some())
        .expect("a schedule of 200 breaks the unfenced streamer");
    let seed = report.seed.expect("seeded");
    let violation = report.violation.clone().expect("found");
    println!("ELECTION_SEED={seed} breaks the unfenced streamer: {violation}");
    assert_eq!(violation.line, "user check");
    assert!(
        violation.detail.contains("fencing broken") || violation.detail.contains("accepted at"),
        "{violation}"
    );
    // The trace interleaves our transitions with what the work did, up to the violation.
    assert!(report.trace.contains("work: streaming from record"));
    assert!(report.trace.contains("pauses for"));
    assert!(report.trace.contains("VIOLATION user check"));
    // What a failing test prints: the seed and the trace.
    let panic = std::panic::catch_unwind(|| report.check()).expect_err("the report fails");
    let message = panic
        .downcast_ref::<String>()
        .expect("a formatted panic message");
    assert!(
        message.starts_with(&format!("ELECTION_SEED={seed}\n")),
        "{message}"
    );
    assert!(message.contains("--- trace ---"));
    // And the seed replays it: the same trace, byte for byte.
    assert_eq!(sim.run_seed(seed).trace, report.trace);
}

#[test]
fn a_proptest_strategy_of_schedules_shrinks_the_unfenced_streamers_failure() {
    use proptest::test_runner::{Config, TestError, TestRunner};

    let sim = streamer::simulation(FencedStore::unfenced);
    let mut runner = TestRunner::new_with_rng(
        Config {
            cases: 64,
            max_shrink_iters: 300,
            failure_persistence: None,
            ..Config::default()
        },
        proptest::test_runner::TestRng::deterministic_rng(
            proptest::test_runner::RngAlgorithm::ChaCha,
        ),
    );
    let result = runner.run(&sim.schedules(), |schedule| {
        let report = sim.run_schedule(&schedule);
        proptest::prop_assert!(report.violation.is_none(), "{}", report.violation.unwrap());
        Ok(())
    });
    let Err(TestError::Fail(why, minimal)) = result else {
        panic!("the unfenced streamer survived 64 generated schedules: {result:?}");
    };
    println!("shrunk to {} ops: {why}", minimal.ops.len());
    // The shrunk schedule still fails, the same way, every time it runs.
    let report = sim.run_schedule(&minimal);
    assert_eq!(
        report.violation.as_ref().map(|v| v.line),
        Some("user check")
    );
    assert_eq!(sim.run_schedule(&minimal).trace, report.trace);
    assert!(minimal.ops.iter().any(|op| matches!(
        op,
        Op::Pause { .. } | Op::ForceExpire { .. } | Op::DeleteEntry { .. } | Op::DeleteRoot { .. }
    )));
}
