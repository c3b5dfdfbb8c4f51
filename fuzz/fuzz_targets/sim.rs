//! Fuzz target `sim`: see `election_fuzz::check_schedule`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| election_fuzz::check_schedule(data));
