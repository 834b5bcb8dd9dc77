//! Every format of the registry, forced on arbitrary bytes: the first input byte picks the format (index
//! modulo the registry's length), the rest is the image. Parsed eagerly, then lazily with every lazy node
//! expanded the way a comparison expands it. A new format in `formats::registry()` is fuzzed by this target
//! without new boilerplate.
#![no_main]
use std::sync::Arc;

use fwscan::formats::{parse_image, registry, ParseOptions};
use fwscan::input::Data;
use fwscan::region::Region;
use libfuzzer_sys::fuzz_target;

fn expand_all(r: &mut Region) {
    r.expand();
    for c in &mut r.children {
        expand_all(c);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, image)) = data.split_first() else {
        return;
    };
    let formats = registry();
    let f = &formats[usize::from(sel) % formats.len()];
    let bytes = Arc::new(Data::Owned(image.to_vec()));
    for eager in [true, false] {
        let opts = ParseOptions {
            format: Some(f.name.into()),
            eager,
            max_decompressed_total: 16 << 20,
            max_decompressed_section: 8 << 20,
            ..ParseOptions::default()
        };
        let mut tree = parse_image(Arc::clone(&bytes), &opts);
        if !eager {
            expand_all(&mut tree);
        }
        let _ = fwscan::region::note_findings(&tree);
    }
});
