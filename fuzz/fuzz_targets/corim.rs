//! CoRIM decoding on its own (issue 24): the bounded CBOR codec, the `COSE_Sign1` and `COSE_Sign` envelopes
//! (a signer that names no alg included), CoMID decoding, the fwscan profile's baseline check, and every
//! collected signature tried against an EdDSA key (the seeds' own) and the P-521 key of the OCP S.A.F.E.
//! vectors, so the signature-parsing side of each key type meets hostile bytes too. Must never panic or hang;
//! whatever the codec decodes it re-encodes deterministically, and that encoding decodes to the same bytes.
#![no_main]
use std::sync::OnceLock;

use fwscan::manifest::corim::{self, cbor, cose};
use libfuzzer_sys::fuzz_target;

fn keys() -> &'static [cose::VerifyingKey] {
    static KEYS: OnceLock<Vec<cose::VerifyingKey>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let ed = cose::SigningKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(&[0x42; 32]));
        let p521 = cose::VerifyingKey::from_pem(include_str!(
            "../../testdata/corim/ocp-safe-tetrel-ecdsa-p521.pub.pem"
        ))
        .expect("the OCP vectors' P-521 key");
        vec![ed.verifying_key(), p521]
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = cbor::decode(data) {
        let once = cbor::encode(&v);
        let again = cbor::decode(&once).expect("the encoder's output decodes");
        assert_eq!(
            cbor::encode(&again),
            once,
            "deterministic encoding is stable"
        );
        let _ = cbor::is_deterministic(data);
    }
    let Ok(c) = corim::decode(data) else {
        return;
    };
    let _ = corim::profile_baseline(&c, std::path::Path::new("fuzz"));
    for s in c.signatures.iter().take(8) {
        for k in keys() {
            let _ = k.verify(s.alg, &s.tbs, &s.sig);
        }
    }
});
