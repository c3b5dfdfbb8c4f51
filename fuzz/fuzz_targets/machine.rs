//! Fuzz target `machine`: see `election_fuzz::check_machine`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| election_fuzz::check_machine(data));
