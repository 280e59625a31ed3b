#![no_main]
//! See `tower_hf_auth::fuzzing::id_token` for what the input is and what must hold.

libfuzzer_sys::fuzz_target!(|data: &[u8]| tower_hf_auth::fuzzing::id_token(data));
