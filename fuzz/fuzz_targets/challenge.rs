//! libFuzzer target: any bytes as a `POST /challenge` body (see `fxn_fuzz::check`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fxn_fuzz::check(data));
