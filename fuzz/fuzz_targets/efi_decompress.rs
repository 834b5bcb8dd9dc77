//! The hand-written EFI 1.1 / Tiano decompressor.
#![no_main]
use fwscan::formats::decompress::efi::{decompress, Version};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for v in [Version::Efi11, Version::Tiano] {
        if let Ok(out) = decompress(data, v, 1 << 22) {
            assert!(out.len() <= 1 << 22);
        }
    }
});
