//! Fuzz target `decode`: see `election_fuzz::check_decode`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| election_fuzz::check_decode(data));
