//! Fuzz the Intel FIT pass over a whole BIOS space: the input is taken as a descriptor-less BIOS image
//! (mapped below 4 GiB), so its last 0x40 bytes hold the FIT pointer; every FIT target (microcode, ACM,
//! KM, BPM, IBB segments) is parsed and verified. No panic, and every node stays inside the input.
//! Run: `RUSTC_BOOTSTRAP=1 cargo fuzz run intel_fit -- -max_total_time=60`.
#![no_main]

use std::sync::Arc;

use fwscan::formats::{intel, Ctx, ParseOptions};
use fwscan::input::Data;
use fwscan::region::{Region, RegionKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let d = Arc::new(Data::Owned(data.to_vec()));
    let mut root = Region::new(RegionKind::Image, "", &d, 0, data.len() as u64)
        .with_attr("format", "uefi");
    let ctx = Ctx::new(&ParseOptions::default());
    intel::annotate(&ctx, &mut root);
    root.walk(&mut |r| {
        assert!(r.end() <= data.len() as u64, "{} past the end", r.name);
    });
});
