//! Fuzz the Intel structure parsers (Boot Guard KM/BPM, startup ACM header and signature, microcode scan,
//! FIT table): any input must parse or fail without panicking, hanging or allocating without bound.
//! Run: `RUSTC_BOOTSTRAP=1 cargo fuzz run intel_structures -- -max_total_time=60`.
#![no_main]

use fwscan::formats::intel::{acm, bootguard, fit, microcode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = bootguard::key_manifest(data);
    let _ = bootguard::boot_policy(data);
    let _ = acm::parse(data);
    let _ = fit::parse(data, 0);
    for (off, u) in microcode::scan(data) {
        assert!(off + u.total_size as usize <= data.len());
    }
});
