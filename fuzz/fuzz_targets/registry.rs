//! Every format of the registry, forced on arbitrary bytes: the first input byte picks the format (index
//! modulo the registry's length), the rest is the image. Parsed eagerly, then lazily with every lazy node
//! expanded the way a comparison expands it. A new format in `formats::registry()` is fuzzed by this target
//! without new boilerplate. `FWSCAN_FUZZ_FORMAT=NAME` pins one format (the first byte is then ignored), so a
//! run seeded with that format's seed stays on it instead of drifting to the others as the byte mutates.
#![no_main]
use std::sync::{Arc, OnceLock};

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

/// The registry index of `FWSCAN_FUZZ_FORMAT`, read once (an unknown name stops the run at once).
fn pinned() -> Option<usize> {
    static PIN: OnceLock<Option<usize>> = OnceLock::new();
    *PIN.get_or_init(|| {
        let name = std::env::var("FWSCAN_FUZZ_FORMAT").ok()?;
        let i = registry().iter().position(|f| f.name == name);
        Some(i.unwrap_or_else(|| panic!("FWSCAN_FUZZ_FORMAT: no format `{name}` in the registry")))
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, image)) = data.split_first() else {
        return;
    };
    let formats = registry();
    let f = match pinned() {
        Some(i) => &formats[i],
        None => &formats[usize::from(sel) % formats.len()],
    };
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
