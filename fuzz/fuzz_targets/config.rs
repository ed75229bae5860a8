#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| mta_core::fuzzing::config::parse(data));
