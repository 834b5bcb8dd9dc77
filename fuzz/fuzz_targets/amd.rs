//! Fuzz the `amd` parser: any input must parse (or fail with a note) without panicking, hanging or
//! allocating without bound. The `registry` target forces `amd` on raw inputs too, but the EFS is only
//! looked for at 0x20000 and beyond, which small fuzz inputs never reach: here the input starts there. Run: `RUSTC_BOOTSTRAP=1 cargo fuzz run amd -- -max_total_time=60`.
#![no_main]

use std::sync::Arc;

use fwscan::formats::{self, ParseOptions};
use fwscan::input::Data;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let opts = ParseOptions {
        format: Some("amd".into()),
        ..ParseOptions::default()
    };
    // The EFS is looked for at 0x20000 (and further offsets): the input starts there, so that its
    // pointers (flash offsets or x86 addresses) land in the input.
    let mut image = vec![0xFFu8; 0x20000];
    image.extend_from_slice(data);
    let tree = formats::parse_image(Arc::new(Data::Owned(image.clone())), &opts);
    // Every node must lie inside the input (or in a buffer of its own).
    tree.walk(&mut |r| {
        if std::sync::Arc::ptr_eq(&r.data, &tree.data) {
            assert!(r.end() <= image.len() as u64, "{} past the end", r.path);
        }
    });
});
