#![no_main]
//! See `tower_hf_auth::fuzzing::session_cookie` for what the input is and what must hold.

libfuzzer_sys::fuzz_target!(|data: &[u8]| tower_hf_auth::fuzzing::session_cookie(data));
