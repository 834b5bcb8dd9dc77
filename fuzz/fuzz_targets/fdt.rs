//! Fuzz the flattened device tree reader and the fixed-partitions layout reader.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(f) = fwscan::formats::fdt::Fdt::parse(data) {
        let _ = f.str_list(&f.root, "compatible");
    }
    let _ = fwscan::formats::bmc::fixed_partitions(data);
    let _ = fwscan::formats::fit::fit_images(data);
});
