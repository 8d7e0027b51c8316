//! BSON documents as the MongoDB backend reads them (`polylock::fuzzing::mongo_documents`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| polylock::fuzzing::mongo_documents(data));
