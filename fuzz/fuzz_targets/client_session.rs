#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| smtp_proto::fuzzing::client::client_session(data));
