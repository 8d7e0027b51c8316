//! PostgreSQL NOTIFY payloads and URLs (`polylock::fuzzing::postgres_notifications`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| polylock::fuzzing::postgres_notifications(data));
