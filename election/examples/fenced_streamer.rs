//! A small streamer tested under the seeded simulation: three replicas, one leads and streams
//! numbered records downstream, each write carrying its term's fencing token; the downstream is
//! a `FencedStore`. Thousands of fault schedules (crashes, partitions, expiries, process
//! pauses, ...) run over it, and after every op two checks run over what the store accepted:
//! the store's own (no write of an older term after a newer one) and the streamer's (records
//! numbered 0, 1, 2, ... with none lost or written twice).
//!
//! ```sh
//! cargo run -p election --features sim --example fenced_streamer            # 1000 schedules
//! cargo run -p election --features sim --example fenced_streamer -- unfenced # the bug, caught
//! ```
//!
//! `election/tests/streamer_sim.rs` runs both variants in the test command: the fenced one
//! passes 1000 schedules, the unfenced one (a downstream that ignores the token) is caught.

use std::time::Duration;

use election::sim::{SimLog, Simulation};
use election::testing::{FencedStore, StaleToken};
use election::Term;

/// Sending a record downstream takes this long: a process pause can fall in the middle of it.
pub const SEND: Duration = Duration::from_millis(100);

/// The streamer's leader work for one term: fence the store with the term's token, resume after
/// the last record it accepted, then send numbered records with the token until the term ends.
/// A refusal (a newer term has fenced or written) ends the work: this replica no longer leads.
///
/// Fencing first matters: without it, a deposed leader that has not noticed yet (cut off, or
/// paused) can write record `n` between this leader's read of `n - 1` and its own write of `n`,
/// and `n` is written twice.
pub async fn stream(store: FencedStore, log: SimLog, term: Term) -> Result<(), StaleToken> {
    let token = term.token();
    store.fence(token)?;
    let first = last_record(&store).map_or(0, |n| n + 1);
    log.line(format_args!(
        "streaming from record {first} with token {token}"
    ));
    let mut next = first;
    loop {
        tokio::select! {
            biased;
            () = term.cancelled() => {
                log.line(format_args!("term {token} over after records {first}..{next}"));
                return Ok(());
            }
            () = tokio::time::sleep(SEND) => {}
        }
        // The record reaches the downstream now, with the token of the term that sent it.
        if let Err(e) = store.write(token, next.to_string()) {
            log.line(format_args!("record {next} refused: {e}"));
            return Err(e);
        }
        next += 1;
    }
}

/// The number of the last record the store accepted.
pub fn last_record(store: &FencedStore) -> Option<u64> {
    store
        .writes()
        .last()
        .map(|w| w.value.parse().expect("records are numbers"))
}

/// The streamer's own check: records 0, 1, 2, ... in order, none lost, none written twice.
pub fn records_in_sequence(store: &FencedStore) -> Result<(), String> {
    for (i, w) in store.writes().iter().enumerate() {
        if w.value != i.to_string() {
            return Err(format!(
                "record {} (token {}) accepted at position {i}",
                w.value, w.token
            ));
        }
    }
    Ok(())
}

/// The streamer under the simulation: `store` makes each run's downstream (`FencedStore::new`
/// fences; `FencedStore::unfenced` is a downstream that ignores the token).
pub fn simulation(store: fn() -> FencedStore) -> Simulation<FencedStore> {
    Simulation::new(store)
        .replicas(3)
        .paths(["/streamer/leader"])
        .on_leader(|replica| {
            // What the service gives `Candidate::builder(..).on_leader` in production.
            let (store, log) = (replica.state().clone(), replica.log());
            move |term: Term| stream(store.clone(), log.clone(), term)
        })
        .check(|store: &FencedStore| store.check())
        .check(records_in_sequence)
        .check_at_end(|store: &FencedStore| match last_record(store) {
            Some(_) => Ok(()),
            None => Err("nothing was streamed"),
        })
}

#[allow(dead_code)] // The test includes this file for the functions above.
fn main() {
    let unfenced = std::env::args().nth(1).as_deref() == Some("unfenced");
    let store = if unfenced {
        FencedStore::unfenced
    } else {
        FencedStore::new
    };
    let sim = simulation(store);
    if unfenced {
        let found = (0..1000)
            .map(|seed| sim.run_seed(seed))
            .find(|r| r.violation.is_some());
        match found {
            Some(report) => {
                println!("{}", report.trace);
                println!(
                    "ELECTION_SEED={} breaks the unfenced streamer: {}",
                    report.seed.expect("seeded"),
                    report.violation.expect("found")
                );
            }
            None => println!("no schedule of 1000 broke the unfenced streamer"),
        }
    } else {
        let started = std::time::Instant::now();
        let summary = sim.run_seeds(0..1000);
        println!(
            "{} schedules ({} ops) passed in {:.1} s",
            summary.schedules,
            summary.ops,
            started.elapsed().as_secs_f64()
        );
    }
}
