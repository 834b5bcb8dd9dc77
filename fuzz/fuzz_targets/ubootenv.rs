//! Fuzz the `uboot-env` parser on a whole input (eager: compressed contents are expanded too).
#![no_main]

use std::sync::Arc;

use fwscan::formats::{parse_image, ParseOptions};
use fwscan::input::Data;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let opts = ParseOptions {
        format: Some("uboot-env".into()),
        max_decompressed_total: 16 << 20,
        ..ParseOptions::default()
    };
    let tree = parse_image(Arc::new(Data::Owned(data.to_vec())), &opts);
    let _ = fwscan::compare::all_notes(&tree);
});
