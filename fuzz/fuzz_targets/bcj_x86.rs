//! The hand-written x86 BCJ filter: decode never panics and encode/decode round-trips.
#![no_main]
use fwscan::formats::decompress::bcj::{x86_decode, x86_encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut v = data.to_vec();
    x86_encode(&mut v);
    x86_decode(&mut v);
    assert_eq!(v, data);
});
