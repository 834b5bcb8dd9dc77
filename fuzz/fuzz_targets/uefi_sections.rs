//! FFS section parsing (all section types, encapsulation, decompression) on arbitrary bytes, eagerly and
//! through the lazy expander.
#![no_main]
use std::sync::Arc;

use fwscan::formats::uefi::section;
use fwscan::formats::{Ctx, ParseOptions};
use fwscan::input::Data;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let d = Arc::new(Data::Owned(data.to_vec()));
    for eager in [true, false] {
        let opts = ParseOptions {
            eager,
            max_decompressed_total: 16 << 20,
            max_decompressed_section: 4 << 20,
            ..ParseOptions::default()
        };
        let ctx = Ctx::new(&opts);
        let (mut secs, _) = section::sections(&ctx, &d, 0, data.len() as u64);
        for s in &mut secs {
            s.expand();
        }
    }
});
