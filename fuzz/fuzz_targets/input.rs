//! Fuzz target `input`: see `election_fuzz::check_input`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| election_fuzz::check_input(data));
