//! Signature files, public keys and secret keys (no password: the KDF is never reached) from untrusted
//! bytes: must never panic; a parsed signature must round-trip.
#![no_main]
use fwscan::manifest::minisign::{PublicKey, SecretKey, SignatureFile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(sf) = SignatureFile::parse(data) {
        let again = SignatureFile::parse(sf.to_file().as_bytes()).expect("round trip");
        assert_eq!(again, sf);
        // Verification with an arbitrary (possibly invalid or small-order) key must not panic.
        let key = PublicKey {
            id: sf.key_id,
            key: sf.signature[..32].try_into().unwrap(),
        };
        let _ = sf.verify_data(&key, data);
        let _ = sf.verify_global(&key);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = PublicKey::parse_file(text);
        let _ = SecretKey::parse_file(text, None);
    }
});
