//! Manifest parsing and validation: JSON manifests and CoRIMs (bounded CBOR, COSE, CoMID decoding, and the
//! fwscan profile's check of its reference values against its embedded baseline).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::path::Path::new("fuzz");
    let _ = fwscan::manifest::Manifest::parse(data, path);
    if let Ok(c) = fwscan::manifest::corim::decode(data) {
        let _ = fwscan::manifest::corim::profile_baseline(&c, path);
    }
});
