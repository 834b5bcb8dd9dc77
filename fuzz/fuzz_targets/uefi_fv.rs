//! Whole-image UEFI parsing (volume scan, files, sections, decompression) on arbitrary bytes.
#![no_main]
use std::sync::Arc;

use fwscan::formats::{self, ParseOptions};
use fwscan::input::Data;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let opts = ParseOptions {
        format: Some("uefi".into()),
        max_decompressed_total: 16 << 20,
        max_decompressed_section: 4 << 20,
        ..ParseOptions::default()
    };
    let tree = formats::parse_image(Arc::new(Data::Owned(data.to_vec())), &opts);
    let _ = fwscan::compare::all_notes(&tree);
});
