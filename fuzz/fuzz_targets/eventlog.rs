//! TCG event logs (`fwscan eventlog`): parse, decode every event, replay every bank, and bind against a
//! tiny tree, and predict PCR 0 from it. Any input must end in a log or an error naming an offset, never a panic.
#![no_main]
use std::sync::Arc;

use fwscan::evidence::{examine, Inputs};
use fwscan::formats::tpm::eventlog::{parse, Limits};
use fwscan::formats::{parse_image, ParseOptions};
use fwscan::input::Data;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_events: 4096,
        max_event_data: 1 << 16,
        ..Limits::default()
    };
    if let Ok(log) = parse(data, &limits) {
        for e in &log.events {
            let _ = e.decode();
        }
    }
    let tree = parse_image(Arc::new(Data::Owned(data.to_vec())), &ParseOptions::default());
    let images = vec![("fuzz".to_string(), tree)];
    let _ = examine(
        &Inputs {
            log_path: "fuzz",
            log: data,
            images: &images,
            reported: None,
            predict: true,
        },
        &limits,
    );
});
