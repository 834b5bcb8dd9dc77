//! Fuzz the `capsule` parser through the registry (FMP headers, PKCS#7 authentication, AMI headers; the
//! payload inside is parsed too), and the PKCS#7 verifier on its own.
#![no_main]

use std::sync::Arc;

use fwscan::formats::{parse_image, ParseOptions};
use fwscan::input::Data;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let opts = ParseOptions {
        format: Some("capsule".into()),
        max_decompressed_total: 16 << 20,
        ..ParseOptions::default()
    };
    let tree = parse_image(Arc::new(Data::Owned(data.to_vec())), &opts);
    tree.walk(&mut |r| {
        let _ = r.notes.len();
    });
    let cert = fwscan::formats::keys::VendorCert::new(data.to_vec());
    let _ = fwscan::formats::capsule::verify_pkcs7(
        data,
        b"payload",
        &[&cert],
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000),
    );
});
