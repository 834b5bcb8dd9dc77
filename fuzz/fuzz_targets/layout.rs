//! flashrom layout text, then applying it to an image of the same bytes.
#![no_main]
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(layout) = fwscan::formats::Layout::parse_flashrom(text, "fuzz") {
            let mut notes = Vec::new();
            let _ = layout.apply(&Arc::new(fwscan::input::Data::Owned(data.to_vec())), &mut notes);
        }
    }
});
