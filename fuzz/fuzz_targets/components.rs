//! Fuzz stand-alone component detection (FIT, uImage, U-Boot, environment, squashfs, jffs2, UBI, cpio,
//! xz/gzip, zImage, FDT) on a whole input, the way a file of its own is parsed.
#![no_main]

use std::sync::Arc;

use fwscan::formats::{parse_image, ParseOptions};
use fwscan::input::Data;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let opts = ParseOptions {
        max_decompressed_total: 16 << 20,
        max_decompressed_section: 8 << 20,
        ..ParseOptions::default()
    };
    let _ = fwscan::formats::detect_standalone(data);
    let tree = parse_image(Arc::new(Data::Owned(data.to_vec())), &opts);
    tree.walk(&mut |r| {
        let _ = r.notes.len();
    });
});
