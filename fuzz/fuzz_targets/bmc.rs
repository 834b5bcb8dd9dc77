//! Fuzz BMC layout discovery and partition parsing: the input is laid at the start of a blank 1 MiB flash
//! (the smallest BMC image considered); discovery scans every erase block.
#![no_main]

use std::sync::Arc;

use fwscan::formats::{parse_image, ParseOptions};
use fwscan::input::Data;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut img = vec![0xFFu8; 1 << 20];
    let n = data.len().min(img.len());
    img[..n].copy_from_slice(&data[..n]);
    let opts = ParseOptions {
        format: Some("bmc".into()),
        max_decompressed_total: 16 << 20,
        ..ParseOptions::default()
    };
    let tree = parse_image(Arc::new(Data::Owned(img)), &opts);
    let _ = fwscan::compare::all_notes(&tree);
});
