//! PE32/TE attribute extraction (goblin, with fwscan's TE header pre-checks).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = fwscan::formats::pe::describe(data, false);
    let _ = fwscan::formats::pe::describe(data, true);
});
