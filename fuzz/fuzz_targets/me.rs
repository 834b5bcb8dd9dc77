//! Fuzz the `me` parser: any input must parse (or fail with a note) without panicking, hanging or
//! allocating without bound. Run: `RUSTC_BOOTSTRAP=1 cargo fuzz run me -- -max_total_time=60`.
#![no_main]

use std::sync::Arc;

use fwscan::formats::{self, ParseOptions};
use fwscan::input::Data;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let opts = ParseOptions {
        format: Some("me".into()),
        ..ParseOptions::default()
    };
    let tree = formats::parse_image(Arc::new(Data::Owned(data.to_vec())), &opts);
    // Every node must lie inside the input (or in a buffer of its own).
    tree.walk(&mut |r| {
        if std::sync::Arc::ptr_eq(&r.data, &tree.data) {
            assert!(r.end() <= data.len() as u64, "{} past the end", r.path);
        }
    });
});
