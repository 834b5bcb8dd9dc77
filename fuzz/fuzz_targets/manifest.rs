//! Manifest JSON parsing and validation.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = fwscan::manifest::Manifest::parse(data, std::path::Path::new("fuzz.json"));
});
