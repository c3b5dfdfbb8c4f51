//! Replays the committed corpus of every target through the same checks the fuzzers run, on
//! stable Rust: `cargo test --manifest-path fuzz/Cargo.toml`.

use std::path::Path;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no corpus for {target}");
    for f in &files {
        let data = std::fs::read(f).unwrap();
        let result = std::panic::catch_unwind(|| check(&data));
        assert!(result.is_ok(), "{target}: {} fails", f.display());
    }
    println!("{target}: {} inputs replayed", files.len());
}

#[test]
fn machine_corpus() {
    replay("machine", election_fuzz::check_machine);
}

#[test]
fn sim_corpus() {
    replay("sim", election_fuzz::check_schedule);
}

#[test]
fn input_corpus() {
    replay("input", election_fuzz::check_input);
}

#[test]
fn decode_corpus() {
    replay("decode", election_fuzz::check_decode);
}
