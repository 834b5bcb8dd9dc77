//! Every registered format, through detection, on arbitrary bytes; then the baseline-free checks.
#![no_main]
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let opts = fwscan::formats::ParseOptions {
        max_decompressed_total: 16 << 20,
        max_decompressed_section: 8 << 20,
        ..Default::default()
    };
    let tree = fwscan::formats::parse_image(Arc::new(fwscan::input::Data::Owned(data.to_vec())), &opts);
    let _ = fwscan::region::note_findings(&tree);
    let _ = fwscan::check::code_outside_ffs(&tree);
});
