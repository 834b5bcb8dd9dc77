//! Intel GbE regions as real boards ship them (issue 22.1): every word of a bank is named by its meaning,
//! only the MAC and the checksum are per-machine, the checksum is checked for the bank in use only, and
//! real regions give no finding.
//!
//! The regions are made here by code with the structure of three real `gbe.bin` files shipped for coreboot
//! builds (no licence allows copying them; each was measured with `fwscan check` and `inspect`: exit 0, no
//! finding, the children listed below):
//!
//! | board | source (repository @ commit : path) | sha256 | controller | bank in use | checksum |
//! |---|---|---|---|---|---|
//! | ThinkPad T440p | suisuss/T440p_Coreboot_Files @ 997255af : gbe.bin | 5f7192a9…ee4b | I217-LM (0x153A) | 0 (bank 1 stale) | 0xBABA, word 0x03 bit 0 set |
//! | ThinkPad X230 | m4rc0linux/x230-coreboot @ 9146eb23 : gbe.bin | 67409996…43ad | 82579LM (0x1502) | 1 (bank 0 stale) | 0xBABA, word 0x19 bit 6 set |
//! | GA-Z77X-UD5H | al3xtjames/coreboot_3rdparty_blobs_mainboard_gigabyte_ga-z77x-ud5h @ 89a1f2b2 : gbe.bin | f4e78cba…d410 | 82579V (0x1503) | 0 (bank 1 erased) | word 0x3F = 0xFFFF, word 0x19 bit 6 clear (never computed) |
//!
//! Common to all three: words 0x40-0x4A zero, the extended configuration pointer 0x28 (byte 0xA0) in word
//! 0x14 with 18-26 (data, address) pairs counted in word 0x15 bits 15:8, and a 0x384-byte block with the
//! signature word 0x5369 at word 0x100; the rest of each bank is 0xFF.

use std::path::Path;

use serde_json::Value;

use crate::harness::{fwscan, inspect_json};

/// One board's GbE NVM, as in the table above.
pub(crate) struct Board {
    device: u16,
    used_bank: usize,
    /// The "checksum valid" bit is set (and the checksum word right); false: word 0x3F left 0xFFFF.
    claimed: bool,
    ext_pairs: u16,
}

const T440P: Board = Board {
    device: 0x153A,
    used_bank: 0,
    claimed: true,
    ext_pairs: 25,
};
pub(crate) const X230: Board = Board {
    device: 0x1502,
    used_bank: 1,
    claimed: true,
    ext_pairs: 18,
};
const Z77: Board = Board {
    device: 0x1503,
    used_bank: 0,
    claimed: false,
    ext_pairs: 26,
};

fn w16(b: &mut [u8], word: usize, v: u16) {
    b[2 * word..2 * word + 2].copy_from_slice(&v.to_le_bytes());
}

fn sum(b: &[u8]) -> u16 {
    (0..0x3F).fold(0u16, |s, i| {
        s.wrapping_add(u16::from_le_bytes([b[2 * i], b[2 * i + 1]]))
    })
}

/// One 4 KiB bank of `board`; `valid`: the signature says the bank is in use.
pub(crate) fn bank(board: &Board, valid: bool) -> Vec<u8> {
    let mut b = vec![0xFFu8; 0x1000];
    b[..6].copy_from_slice(&[0x3C, 0x97, 0x0E, 0x12, 0x34, 0x56]);
    let lpt = board.device == 0x153A;
    w16(&mut b, 0x03, 0x0800 | u16::from(lpt && board.claimed));
    w16(&mut b, 0x05, 0x00D3);
    w16(&mut b, 0x08, 0x1000);
    w16(&mut b, 0x0A, 0x10C3);
    w16(&mut b, 0x0B, 0x21F3);
    w16(&mut b, 0x0C, 0x17AA);
    w16(&mut b, 0x0D, board.device);
    w16(&mut b, 0x0E, 0);
    w16(&mut b, 0x0F, 0);
    w16(&mut b, 0x10, 0x0702);
    w16(&mut b, 0x13, if valid { 0xA505 } else { 0x0005 });
    w16(&mut b, 0x14, 0x3028);
    w16(&mut b, 0x15, board.ext_pairs << 8);
    w16(
        &mut b,
        0x19,
        0x2B00 | if !lpt && board.claimed { 0x40 } else { 0 },
    );
    for w in 0x1A..0x30 {
        w16(&mut b, w, 0x0215);
    }
    // Words 0x40-0x4A: zero.
    b[0x80..0x96].fill(0);
    // The extended configuration area: (data, address) pairs from byte 0xA0.
    for i in 0..usize::from(board.ext_pairs) {
        let o = 0xA0 + 4 * i;
        b[o..o + 4].copy_from_slice(&[0x02, 0x34, 0x30 + i as u8, 0x00]);
    }
    // The block at word 0x100.
    b[0x200..0x584].fill(0);
    w16(&mut b, 0x100, 0x5369);
    w16(&mut b, 0x101, 0x0384);
    w16(&mut b, 0x102, 0x0001);
    b[0x328] = 0x03;
    b[0x329] = 0x3D;
    if valid && board.claimed {
        let ck = 0xBABAu16.wrapping_sub(sum(&b));
        w16(&mut b, 0x3F, ck);
    }
    b
}

/// The 8 KiB region: the bank in use valid, the other one a stale copy (or erased when it is bank 1 of a
/// board that never switched banks).
fn region(board: &Board) -> Vec<u8> {
    let mut out = Vec::new();
    for k in 0..2 {
        if k == board.used_bank {
            out.extend(bank(board, true));
        } else if board.used_bank == 0 && !board.claimed {
            out.extend(vec![0xFFu8; 0x1000]);
        } else {
            out.extend(bank(board, false));
        }
    }
    out
}

fn check(p: &Path) -> (i32, Value) {
    let out = fwscan()
        .args(["check", "--format", "json"])
        .arg(p)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    // `check --format json` prints one report per image.
    (out.status.code().unwrap(), v[0].clone())
}

fn children(tree: &Value) -> Vec<(String, String, u64, u64)> {
    tree["root"]["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["path"].as_str().unwrap().to_string(),
                c["policy"].as_str().unwrap_or("").to_string(),
                c["offset"].as_u64().unwrap(),
                c["size"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn real_gbe_regions_are_structured_and_clean() {
    let dir = tempfile::tempdir().unwrap();
    for (name, board) in [("t440p", &T440P), ("x230", &X230), ("z77", &Z77)] {
        let p = dir.path().join(format!("{name}-gbe.bin"));
        std::fs::write(&p, region(board)).unwrap();
        let (code, rep) = check(&p);
        assert_eq!(code, 0, "{name}: {rep:#}");
        assert!(crate::harness::code_paths(&rep).is_empty(), "{name}");
        let tree = inspect_json(&p);
        assert_eq!(tree["root"]["attrs"]["format"], "gbe", "{name}");
        let kids = children(&tree);
        let names: Vec<&str> = kids.iter().map(|k| k.0.as_str()).collect();
        let ext_end = 0xA0 + 4 * u64::from(board.ext_pairs);
        let mut want = vec![
            ("mac", 0, 6),
            ("words", 6, 0x78),
            ("checksum", 0x7E, 2),
            ("hw-words", 0x80, 0x20),
            ("ext-config", 0xA0, ext_end - 0xA0),
            ("padding", ext_end, 0x200 - ext_end),
            ("firmware-block", 0x200, 0x384),
            ("padding#2", 0x584, 0xA7C),
        ];
        let bank1: Vec<(String, u64, u64)> = if board.used_bank == 0 && !board.claimed {
            // An erased bank 1 is one gap with the free space of bank 0.
            want[7].2 += 0x1000;
            Vec::new()
        } else {
            want.iter()
                .map(|(n, o, s)| {
                    let n = match *n {
                        "padding" => "padding#3".to_string(),
                        "padding#2" => "padding#4".to_string(),
                        n => format!("bank1-{n}"),
                    };
                    (n, o + 0x1000, *s)
                })
                .collect()
        };
        let mut all: Vec<(String, u64, u64)> = want
            .drain(..)
            .map(|(n, o, s)| (n.to_string(), o, s))
            .collect();
        all.extend(bank1);
        let got: Vec<(String, u64, u64)> = kids.iter().map(|k| (k.0.clone(), k.2, k.3)).collect();
        assert_eq!(got, all, "{name}: {names:?}");
        for (path, policy, _, _) in &kids {
            let per_machine = path.ends_with("mac") || path.ends_with("checksum");
            if !path.starts_with("padding") {
                assert_eq!(
                    policy,
                    if per_machine { "mutable" } else { "static" },
                    "{name}: {path}"
                );
            }
        }
        // The checksum is checked (and its sum recorded) for the bank in use only.
        let used = if board.used_bank == 0 {
            "checksum"
        } else {
            "bank1-checksum"
        };
        for k in tree["root"]["children"].as_array().unwrap() {
            let p = k["path"].as_str().unwrap();
            if p.ends_with("checksum") {
                assert_eq!(k["attrs"]["sum"].is_string(), p == used, "{name}: {p}");
            }
        }
        let ck = tree["root"]["children"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["path"] == used)
            .unwrap();
        assert_eq!(ck["attrs"]["checksum-claimed"], board.claimed, "{name}");
        let words = &tree["root"]["children"][1]["attrs"];
        assert_eq!(
            words["device-id"],
            format!("{:#06x}", board.device),
            "{name}"
        );
    }
}

#[test]
fn gbe_tampering_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let write = |n: &str, b: &[u8]| {
        let p = dir.path().join(n);
        std::fs::write(&p, b).unwrap();
        p
    };
    // A wrong checksum where the NVM claims it was computed: not taken for a GbE region of its own
    // (unrecognised, exit 2: nothing was checked), and inside a flash descriptor a `gbe-checksum`.
    let mut bad = region(&T440P);
    bad[0x0C] ^= 1;
    let (code, rep) = check(&write("bad.bin", &bad));
    assert_eq!(code, 2, "{rep:#}");
    let regs = [(0, 0, 0), (3, 1, 2), (1, 3, 0x7F)];
    let mut img = vec![0xFFu8; 0x80000];
    img[..0x1000].copy_from_slice(&crate::support::spi::descriptor(&regs));
    img[0x1000..0x3000].copy_from_slice(&bad);
    let (code, rep) = check(&write("spi-bad.bin", &img));
    assert_eq!(code, 1, "{rep:#}");
    assert_eq!(
        crate::harness::code_paths(&rep),
        [("gbe-checksum".into(), "gbe/checksum".into())]
    );
    // The same region with its checksum right: clean inside the descriptor too.
    img[0x1000..0x3000].copy_from_slice(&region(&T440P));
    let (code, rep) = check(&write("spi.bin", &img));
    assert_eq!(code, 0, "{rep:#}");
    // Data in a bank's free space is still `padding-not-empty`.
    let mut hidden = region(&T440P);
    hidden[0x800] = 0xCC;
    let (code, rep) = check(&write("hidden.bin", &hidden));
    assert_eq!(code, 1, "{rep:#}");
    assert_eq!(
        crate::harness::code_paths(&rep),
        [("padding-not-empty".into(), "padding#2".into())]
    );
    // Against a baseline: a new MAC (with its checksum) passes; a changed PHY setting is named.
    let golden = write("golden.bin", &region(&T440P));
    let man = dir.path().join("m.json");
    let out = fwscan()
        .arg("baseline")
        .arg(&golden)
        .arg("-o")
        .arg(&man)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let scan = |p: &Path| -> (i32, Value) {
        let out = fwscan()
            .arg("scan")
            .arg(p)
            .arg("--manifest")
            .arg(&man)
            .args(["--insecure-unsigned", "--format", "json"])
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
        (out.status.code().unwrap(), v)
    };
    let mut mac = region(&T440P);
    mac[5] = 0x99;
    let ck = 0xBABAu16.wrapping_sub(sum(&mac));
    w16(&mut mac, 0x3F, ck);
    let (code, rep) = scan(&write("mac.bin", &mac));
    assert_eq!(code, 0, "{rep:#}");
    let mut phy = region(&T440P);
    phy[0xA4] ^= 0x10;
    let (code, rep) = scan(&write("phy.bin", &phy));
    assert_eq!(code, 1, "{rep:#}");
    assert_eq!(
        crate::harness::code_paths(&rep),
        [("region-modified".into(), "ext-config".into())]
    );
}
