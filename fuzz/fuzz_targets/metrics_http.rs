#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| mta_core::metrics::fuzzing::http(data));
