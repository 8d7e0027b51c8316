//! Backend URLs of every scheme, lock names and options (`polylock::fuzzing::url_options`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| polylock::fuzzing::url_options(data));
