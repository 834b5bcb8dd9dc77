//! OpenPOWER secure-boot containers (issue 22.6, point 3). No signed container is shipped by Debian and
//! op-build's signed PNOR images are not in a repository that allows copying them, so the container is
//! written here field by field from skiboot's `libstb/container.h` (packed, big-endian), around the real
//! `skiboot.lid` of Debian's qemu-system-data, with one software key and zero keys and signatures.

use std::path::Path;

use serde_json::Value;

use crate::harness::{fwscan, have_file, inspect_json};

const SKIBOOT: &str = "/usr/share/qemu/skiboot.lid";

/// `ROM_container_raw` (0x1AA bytes), `ROM_prefix_header_raw` (0x62), prefix data (3 hardware signatures +
/// 1 software key, 132 bytes each), `ROM_sw_header_raw` (0x62), 1 software signature, zeros to 4 KiB.
fn container(payload: &[u8], hrmor: u64) -> Vec<u8> {
    let mut b = vec![0u8; 0x1000];
    b[0..4].copy_from_slice(&0x1708_2011u32.to_be_bytes());
    b[4..6].copy_from_slice(&1u16.to_be_bytes());
    b[6..14].copy_from_slice(&((0x1000 + payload.len()) as u64).to_be_bytes());
    b[14..22].copy_from_slice(&hrmor.to_be_bytes());
    b[22..30].copy_from_slice(&0x3000_0000u64.to_be_bytes());
    let ph = 0x1AA;
    let sh = ph + 0x62 + 4 * 132;
    for h in [ph, sh] {
        b[h..h + 2].copy_from_slice(&1u16.to_be_bytes());
        b[h + 2] = 1; // SHA-512
        b[h + 3] = 1; // SHA-512/ECDSA-521
    }
    b[ph + 0x18] = 1; // sw_key_count
    b[sh + 0x19..sh + 0x21].copy_from_slice(&(payload.len() as u64).to_be_bytes());
    b[sh + 0x21..sh + 0x61].fill(0xAB);
    b.extend_from_slice(payload);
    b
}

fn find<'a>(n: &'a Value, name: &str) -> Option<&'a Value> {
    if n["name"] == name {
        return Some(n);
    }
    n["children"].as_array()?.iter().find_map(|c| find(c, name))
}

#[test]
fn a_container_around_real_skiboot_lists_its_headers_and_checks_clean() {
    if !have_file(SKIBOOT, "Debian qemu-system-data") {
        return;
    }
    let payload = std::fs::read(SKIBOOT).unwrap();
    let img = container(&payload, 0x3000_0000);
    let dir = std::env::temp_dir().join(format!("fwscan-stb-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("skiboot.lid.stb");
    std::fs::write(&p, &img).unwrap();
    let out = fwscan().args(["check"]).arg(&p).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let t = inspect_json(&p);
    let root = &t["root"];
    assert_eq!(root["attrs"]["format"], "stb-container");
    let names: Vec<(&str, u64, u64)> = root["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap(),
                c["offset"].as_u64().unwrap(),
                c["size"].as_u64().unwrap(),
            )
        })
        .collect();
    let sh = 0x1AA + 0x62 + 4 * 132;
    assert_eq!(
        names,
        [
            ("container-header", 0, 0x1AA),
            ("prefix-header", 0x1AA, 0x62),
            ("prefix-data", 0x20C, 4 * 132),
            ("sw-header", sh, 0x62),
            ("sw-signatures", sh + 0x62, 132),
            ("reserved", sh + 0x62 + 132, 0x1000 - (sh + 0x62 + 132)),
            ("payload", 0x1000, payload.len() as u64),
        ]
    );
    let ch = find(root, "container-header").unwrap();
    assert_eq!(ch["attrs"]["target-hrmor"], "0x30000000");
    assert_eq!(ch["attrs"]["container-size"], 0x1000 + payload.len() as u64);
    let sw = find(root, "sw-header").unwrap();
    assert_eq!(sw["attrs"]["payload-size"], payload.len() as u64);
    assert_eq!(sw["attrs"]["hash-alg"], 1);
    assert_eq!(sw["attrs"]["payload-hash"], "ab".repeat(64).as_str());
    assert_eq!(
        find(root, "prefix-header").unwrap()["attrs"]["sw-key-count"],
        1
    );
    // The payload is the real skiboot, parsed as such.
    assert_eq!(find(root, "payload").unwrap()["attrs"]["format"], "skiboot");

    // A payload size past the end, or four software keys: not a container (nothing checked).
    for (at, bytes) in [
        (
            0x1AA + 0x62 + 4 * 132 + 0x19,
            &(u64::MAX / 2).to_be_bytes()[..],
        ),
        (0x1AA + 0x18, &[4u8][..]),
    ] {
        let mut bad = img.clone();
        bad[at..at + bytes.len()].copy_from_slice(bytes);
        std::fs::write(&p, &bad).unwrap();
        let out = fwscan()
            .args(["inspect", "--format", "json"])
            .arg(&p)
            .output()
            .unwrap();
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        assert_ne!(doc["root"]["attrs"]["format"], "stb-container", "{at:#x}");
    }
    let _ = Path::new(SKIBOOT);
}
