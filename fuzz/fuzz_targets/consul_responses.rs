//! Consul HTTP reply bodies: KV reads, transactions, sessions (`polylock::fuzzing::consul_responses`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| polylock::fuzzing::consul_responses(data));
