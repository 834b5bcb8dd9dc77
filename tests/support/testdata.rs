//! Generates the fixtures under `testdata/` deterministically. Run `cargo run --example gen_testdata`
//! to rewrite them; `tests/basics.rs` checks that regeneration is byte-identical.

#![allow(dead_code)]

use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use fwscan::formats::{self, Layout, ParseOptions};
use fwscan::input::Data;
use fwscan::manifest::{BaselineOptions, Manifest, PolicyRules, Product};

/// Deterministic pseudo-random bytes (xorshift64*), so fixtures need no RNG crate and never change.
pub fn prng_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The flashrom layout of the core fixture (a 512 KiB flash with boot code, firmware, per-machine
/// configuration and unused space).
pub const CORE_LAYOUT: &str = "\
# fwscan core fixture: flashrom layout (start:end name, hex, inclusive)
00000000:0000ffff boot
00010000:0006ffff firmware
00070000:00077fff config
";

/// Size of the core fixture.
pub const CORE_SIZE: usize = 0x80000;

/// The golden core image: random code in `boot` and `firmware` (firmware only partly filled, the rest
/// erased), random per-machine bytes in `config`, and an erased tail not covered by the layout.
pub fn core_image() -> Vec<u8> {
    let mut img = vec![0xFFu8; CORE_SIZE];
    img[0..0x10000].copy_from_slice(&prng_bytes(1, 0x10000));
    // A version banner, as real firmware carries one: audits identify the product and version by it.
    let banner = b"$BANNER$ Example Corp EX-1000 firmware version 1.0.0\0";
    img[0x100..0x100 + banner.len()].copy_from_slice(banner);
    img[0x10000..0x58000].copy_from_slice(&prng_bytes(2, 0x48000));
    img[0x70000..0x71000].copy_from_slice(&prng_bytes(3, 0x1000));
    img
}

/// The golden manifest of the core image (fixed times so that it is reproducible).
pub fn core_manifest(image: &[u8]) -> Manifest {
    let layout = Layout::parse_flashrom(CORE_LAYOUT, "user").expect("fixture layout parses");
    let opts = ParseOptions {
        layout: Some(layout.clone()),
        ..ParseOptions::default()
    };
    let tree = formats::parse_image(std::sync::Arc::new(Data::Owned(image.to_vec())), &opts);
    let created = UNIX_EPOCH + Duration::from_secs(1_767_225_600); // 2026-01-01T00:00:00Z
    Manifest::from_tree(
        &tree,
        BaselineOptions {
            product: Product {
                vendor: "Example Corp".into(),
                product: "EX-1000".into(),
                component: "bios".into(),
                version: "1.0.0".into(),
                build_id: Some("fixture".into()),
            },
            sequence: 1,
            now: created,
            expires: Some(created + Duration::from_secs(100 * 365 * 86_400)),
            layout: Some(layout),
            rules: PolicyRules {
                mutable: vec!["config".into()],
                ..PolicyRules::default()
            },
            ..BaselineOptions::default()
        },
    )
    .expect("fixture manifest builds")
}

/// The fixture signing key. Its seed is in this file, so it proves nothing outside `testdata/`.
pub fn fixture_key() -> fwscan::manifest::minisign::SecretKey {
    fwscan::manifest::minisign::SecretKey::from_seed(*b"fwscanTD", [0x5A; 32])
}

/// A trust policy that trusts the fixture key for the fixture product.
pub fn fixture_trust_policy() -> String {
    let public = fixture_key().public();
    format!(
        "{{\n  \"schema_version\": 1,\n  \"keys\": [\n    {{\n      \"id\": \"{}\",\n      \"public_key\": \"{}\",\n      \"role\": \"vendor\",\n      \"name\": \"fwscan test fixtures (NOT A REAL KEY: its seed is public)\",\n      \"products\": [\"EX-1000\"]\n    }}\n  ],\n  \"rules\": [ {{ \"product\": \"EX-1000\", \"threshold\": 1, \"min_sequence\": 1 }} ]\n}}\n",
        public.id.to_hex(),
        public.to_base64()
    )
}

/// The minisign signature of manifest bytes with the fixture key.
pub fn fixture_signature(manifest: &Manifest, bytes: &[u8]) -> String {
    let comment = fwscan::manifest::verify::trusted_comment(manifest, bytes);
    fixture_key()
        .sign(
            bytes,
            fwscan::manifest::minisign::SigAlg::Prehashed,
            "signature from the fwscan test fixture key",
            &comment,
        )
        .expect("fixture signs")
        .to_file()
}

/// Writes every fixture under `dir` (relative names as in the repository's `testdata/`).
pub fn generate(dir: &Path) -> std::io::Result<Vec<String>> {
    let core = dir.join("core");
    std::fs::create_dir_all(&core)?;
    let img = core_image();
    let manifest = core_manifest(&img);
    let mut tampered = img.clone();
    // An implant: 16 bytes patched into the firmware region.
    tampered[0x23456..0x23466].copy_from_slice(&prng_bytes(4, 16));
    let manifest_bytes = manifest.to_json().into_bytes();
    let signature = fixture_signature(&manifest, &manifest_bytes);
    let files = [
        ("core/golden.bin", img),
        ("core/golden.layout", CORE_LAYOUT.as_bytes().to_vec()),
        ("core/golden.manifest.json", manifest_bytes),
        ("core/golden.manifest.json.minisig", signature.into_bytes()),
        ("trust.json", fixture_trust_policy().into_bytes()),
        ("core/tampered.bin", tampered),
    ];
    let mut names = Vec::new();
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes)?;
        names.push(name.to_string());
    }
    Ok(names)
}
