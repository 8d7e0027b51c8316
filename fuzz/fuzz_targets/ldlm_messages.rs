//! Protobuf LDLM replies and gRPC statuses (`polylock::fuzzing::ldlm_messages`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| polylock::fuzzing::ldlm_messages(data));
