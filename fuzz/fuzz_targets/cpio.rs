//! Fuzz the `cpio` parser through the registry on a whole input (eager: members and compressed contents
//! are parsed too).
#![no_main]

use std::sync::Arc;

use fwscan::formats::{parse_image, ParseOptions};
use fwscan::input::Data;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let opts = ParseOptions {
        format: Some("cpio".into()),
        max_decompressed_total: 16 << 20,
        ..ParseOptions::default()
    };
    let tree = parse_image(Arc::new(Data::Owned(data.to_vec())), &opts);
    tree.walk(&mut |r| {
        let _ = r.notes.len();
    });
});
