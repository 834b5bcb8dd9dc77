//! Writes small valid inputs for the fuzz targets into `fuzz/seeds/TARGET/` (issue 15: seeded fuzzing
//! starts past the headers and found the `fdt` overflows that unseeded runs missed). Every seed is made
//! here, by code, from fwscan's own writers: `cargo run --example gen_fuzz_seeds [-- OUT_DIR]`. They are
//! committed in `fuzz/seeds/` (`fuzz/corpus/` is libFuzzer's working corpus and not kept); fuzz with both:
//! `cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run fdt corpus/fdt seeds/fdt -- -rss_limit_mb=2048 -timeout=10`.
//!
//! The `registry` target gets seeds for the formats fwscan can write (uefi, fit, uimage, uboot-env, fmap,
//! cbfs, pe, elf, ffs, slof, skiboot, psp, npcm-bootblock, stm, stb-container, squashfs3, supermicro) or
//! has a small sample of (cramfs, romfs, yaffs2: binwalk's, in testdata/oldfs); the first byte selects the
//! format. The `corim` target gets the export and testdata/corim's vectors. Formats without a writer yet
//! (squashfs 4, jffs2, UBI, Intel IFD/ME/GbE, NVRAM stores, whole BMC flashes, option ROMs) and
//! `pe_describe` get no seeds and start from nothing.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use fwscan::formats::decompress::efi::Version;
use fwscan::formats::uefi::build::*;
use fwscan::manifest::minisign::{SecretKey, SigAlg};
use fwscan::manifest::{BaselineOptions, Manifest};

/// A flattened device tree writer: enough for seeds (nodes, string/cell/byte properties).
enum P<'a> {
    Str(&'a str, &'a str),
    Cells(&'a str, &'a [u32]),
    Bytes(&'a str, &'a [u8]),
}

struct N<'a> {
    name: &'a str,
    props: Vec<P<'a>>,
    kids: Vec<N<'a>>,
}

fn fdt(root: &N) -> Vec<u8> {
    fn w(v: &mut Vec<u8>, x: u32) {
        v.extend_from_slice(&x.to_be_bytes());
    }
    fn pad(v: &mut Vec<u8>) {
        while v.len() % 4 != 0 {
            v.push(0);
        }
    }
    fn name_off(strings: &mut Vec<u8>, n: &str) -> u32 {
        let off = strings.len() as u32;
        strings.extend_from_slice(n.as_bytes());
        strings.push(0);
        off
    }
    fn node(st: &mut Vec<u8>, strings: &mut Vec<u8>, n: &N) {
        w(st, 1);
        st.extend_from_slice(n.name.as_bytes());
        st.push(0);
        pad(st);
        for p in &n.props {
            let (name, val): (&str, Vec<u8>) = match p {
                P::Str(k, v) => (k, [v.as_bytes(), &[0]].concat()),
                P::Cells(k, c) => (k, c.iter().flat_map(|x| x.to_be_bytes()).collect()),
                P::Bytes(k, b) => (k, b.to_vec()),
            };
            w(st, 3);
            w(st, val.len() as u32);
            let o = name_off(strings, name);
            w(st, o);
            st.extend_from_slice(&val);
            pad(st);
        }
        for k in &n.kids {
            node(st, strings, k);
        }
        w(st, 2);
    }
    let (mut st, mut strings) = (Vec::new(), Vec::new());
    node(&mut st, &mut strings, root);
    w(&mut st, 9);
    let off_struct = 40 + 16u32; // header, then an empty memory reservation map
    let off_strings = off_struct + st.len() as u32;
    let total = off_strings + strings.len() as u32;
    let mut b = Vec::new();
    for x in [
        0xD00D_FEED,
        total,
        off_struct,
        off_strings,
        40,
        17,
        16,
        0,
        strings.len() as u32,
        st.len() as u32,
    ] {
        w(&mut b, x);
    }
    b.extend_from_slice(&[0u8; 16]);
    b.extend_from_slice(&st);
    b.extend_from_slice(&strings);
    b
}

fn uimage(data: &[u8], comp: u8) -> Vec<u8> {
    let mut h = vec![0u8; 64];
    h[0..4].copy_from_slice(&0x2705_1956u32.to_be_bytes());
    h[8..12].copy_from_slice(&1_700_000_000u32.to_be_bytes());
    h[12..16].copy_from_slice(&(data.len() as u32).to_be_bytes());
    h[16..20].copy_from_slice(&0x8000u32.to_be_bytes());
    h[20..24].copy_from_slice(&0x8000u32.to_be_bytes());
    h[24..28].copy_from_slice(&crc32fast::hash(data).to_be_bytes());
    h[28] = 5; // Linux
    h[29] = 2; // ARM
    h[30] = 2; // kernel
    h[31] = comp;
    h[32..40].copy_from_slice(b"fwscan\0\0");
    let hc = crc32fast::hash(&h);
    h[4..8].copy_from_slice(&hc.to_be_bytes());
    [h, data.to_vec()].concat()
}

fn ubootenv(vars: &[&str], size: usize) -> Vec<u8> {
    let mut body: Vec<u8> = Vec::new();
    for v in vars {
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    body.resize(size - 4, 0);
    [crc32fast::hash(&body).to_le_bytes().to_vec(), body].concat()
}

/// A squashfs 3.1 image, little-endian (the bit fields of squashfs_compat.h then fall on byte boundaries):
/// a root directory of `entries`, each a file (name, contents) or, named `link->target`, a symlink. Data
/// blocks of 4 KiB, zlib where that shrinks them, no fragments; the inode table one stored metadata block,
/// the directory table one zlib block. Enough for the fuzzer to start past the superblock; the full writer
/// (both byte orders, fragments, subdirectories, several metadata blocks) is `tests/oldfs.rs`'s, checked
/// there against `unsquashfs`, as this one's output was once (`unsquashfs -lln`).
fn squashfs3(entries: &[(&str, &[u8])]) -> Vec<u8> {
    const BS: usize = 4096;
    let zlib = |d: &[u8]| {
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut z, d).expect("zlib");
        z.finish().expect("zlib")
    };
    let meta = |d: &[u8], compress: bool| {
        let (h, body) = if compress {
            let z = zlib(d);
            (z.len() as u16, z)
        } else {
            (0x8000 | d.len() as u16, d.to_vec())
        };
        [h.to_le_bytes().to_vec(), body].concat()
    };
    // Inode numbers 1..=n for the entries, n + 1 for the root (mksquashfs numbers the root last).
    let root = entries.len() as u32 + 1;
    let mut img = vec![0u8; 119];
    let mut inodes = Vec::new();
    let mut dir = vec![(entries.len() - 1) as u8];
    dir.extend_from_slice(&0u32.to_le_bytes()); // the inodes' metadata block, inode table relative
    dir.extend_from_slice(&1u32.to_le_bytes()); // the first entry's inode number
    let base = |kind: u16, mode: u16, number: u32| {
        let mut b = (kind | mode << 4).to_le_bytes().to_vec();
        b.extend_from_slice(&[0, 0]); // uid and gid table indexes
        b.extend_from_slice(&1_200_000_000u32.to_le_bytes());
        b.extend_from_slice(&number.to_le_bytes());
        b
    };
    for (i, (name, body)) in entries.iter().enumerate() {
        let number = i as u32 + 1;
        let (kind, name, inode) = match name.split_once("->") {
            Some((link, target)) => {
                let mut b = base(3, 0o777, number);
                b.extend_from_slice(&1u32.to_le_bytes());
                b.extend_from_slice(&(target.len() as u16).to_le_bytes());
                b.extend_from_slice(target.as_bytes());
                (3u16, link, b)
            }
            None => {
                let mut b = base(2, 0o644, number);
                b.extend_from_slice(&(img.len() as u64).to_le_bytes());
                b.extend_from_slice(&u32::MAX.to_le_bytes()); // no fragment
                b.extend_from_slice(&0u32.to_le_bytes());
                b.extend_from_slice(&(body.len() as u32).to_le_bytes());
                for chunk in body.chunks(BS) {
                    let z = zlib(chunk);
                    let (size, bytes) = if z.len() < chunk.len() {
                        (z.len() as u32, z)
                    } else {
                        (chunk.len() as u32 | 1 << 24, chunk.to_vec())
                    };
                    b.extend_from_slice(&size.to_le_bytes());
                    img.extend_from_slice(&bytes);
                }
                (2, *name, b)
            }
        };
        dir.extend_from_slice(&(inodes.len() as u16 | kind << 13).to_le_bytes());
        dir.push((name.len() - 1) as u8);
        dir.extend_from_slice(&((number - 1) as u16).to_le_bytes());
        dir.extend_from_slice(name.as_bytes());
        inodes.extend_from_slice(&inode);
    }
    let root_at = inodes.len() as u64;
    inodes.extend_from_slice(&base(1, 0o755, root));
    inodes.extend_from_slice(&2u32.to_le_bytes()); // links: no subdirectories
    inodes.extend_from_slice(&(dir.len() as u32 + 3).to_le_bytes()); // size 19 bits, offset 0 above
    inodes.extend_from_slice(&0u32.to_le_bytes()); // the listing's block, directory table relative
    inodes.extend_from_slice(&root.to_le_bytes()); // the root's parent is itself
    let inode_table = img.len() as u64;
    img.extend_from_slice(&meta(&inodes, false));
    let dir_table = img.len() as u64;
    img.extend_from_slice(&meta(&dir, true));
    let frag_table = img.len() as u64;
    let uid_table = img.len() as u64;
    img.extend_from_slice(&0u32.to_le_bytes());
    let gid_table = img.len() as u64;
    img.extend_from_slice(&0u32.to_le_bytes());
    let used = img.len() as u64;
    let mut sb = b"hsqs".to_vec();
    for v in [root, used as u32, uid_table as u32, gid_table as u32] {
        sb.extend_from_slice(&v.to_le_bytes());
    }
    for v in [inode_table as u32, dir_table as u32] {
        sb.extend_from_slice(&v.to_le_bytes());
    }
    for v in [3u16, 1, BS as u16, 12] {
        sb.extend_from_slice(&v.to_le_bytes()); // version 3.1, block size and its log
    }
    sb.extend_from_slice(&[1 << 4, 1, 1]); // flags (no fragments), one uid, one gid
    sb.extend_from_slice(&1_200_000_000u32.to_le_bytes());
    sb.extend_from_slice(&root_at.to_le_bytes()); // root inode: block 0, offset root_at
    for v in [BS as u32, 0, frag_table as u32] {
        sb.extend_from_slice(&v.to_le_bytes()); // block size, fragments, fragment table (2.x)
    }
    for v in [
        used,
        uid_table,
        gid_table,
        inode_table,
        dir_table,
        frag_table,
        u64::MAX,
    ] {
        sb.extend_from_slice(&v.to_le_bytes());
    }
    assert_eq!(sb.len(), 119);
    img[..119].copy_from_slice(&sb);
    img.resize(img.len().div_ceil(4096) * 4096, 0);
    img
}

fn main() {
    let out = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds"));
    let put = |target: &str, name: &str, bytes: &[u8]| {
        let d = out.join(target);
        std::fs::create_dir_all(&d).expect("mkdir");
        std::fs::write(d.join(name), bytes).expect("write");
    };
    // The `registry` target: the first byte picks the format (its index in the registry).
    let put_format = |format: &str, name: &str, bytes: &[u8]| {
        let i = fwscan::formats::registry()
            .iter()
            .position(|f| f.name == format)
            .unwrap_or_else(|| panic!("no format {format} in the registry"));
        let mut seed = vec![u8::try_from(i).expect("fewer than 256 formats")];
        seed.extend_from_slice(bytes);
        put("registry", &format!("{format}-{name}"), &seed);
    };
    let code: Vec<u8> = (0..512u32)
        .map(|i| {
            if i % 7 == 0 {
                0xE8
            } else {
                (i * 31 % 251) as u8
            }
        })
        .collect();
    put("bcj_x86", "calls.bin", &code);

    let text = b"firmware firmware firmware volume volume".repeat(4);
    put(
        "efi_decompress",
        "efi11.bin",
        &efi_compress(&text, Version::Efi11),
    );
    put(
        "efi_decompress",
        "tiano.bin",
        &efi_compress(&text, Version::Tiano),
    );
    put(
        "efi_decompress",
        "stored.bin",
        &efi_store(&text, Version::Tiano),
    );

    let pe = [b"MZ".to_vec(), vec![0u8; 62]].concat();
    let secs = sections(&[
        section(0x10, &pe),
        ui("Seed"),
        lzma_section(&sections(&[section(0x19, b"raw"), ui("Inner")])),
        gzip_section(&section(0x19, b"gzip raw")),
        brotli_section(&section(0x19, b"brotli raw")),
        crc32_section(&section(0x19, b"crc")),
        compression_section(1, 0, &efi_compress(b"", Version::Tiano)),
    ]);
    put("uefi_sections", "mixed.bin", &secs);
    let f = file(
        guid_bytes("11111111-2222-3333-4444-555555555555"),
        0x07,
        &secs,
        0,
    );
    let inner = volume(
        FFS2,
        None,
        &[file(
            guid_bytes("AAAAAAAA-1111-2222-3333-444444444444"),
            0x07,
            &section(0x10, &pe),
            0,
        )],
        0x1000,
    );
    let f2 = file(
        guid_bytes("22222222-2222-3333-4444-555555555555"),
        0x0B,
        &fv_image(&inner),
        0,
    );
    let fv = volume(
        FFS2,
        Some(guid_bytes("AAAAAAAA-0000-0000-0000-000000000000")),
        &[f, f2, pad_file(64)],
        0x4000,
    );
    put_format("uefi", "volume.bin", &fv);
    put("parse_image", "volume.bin", &fv);
    put_format(
        "uefi",
        "ffs3.bin",
        &volume(FFS3, None, &[pad_file(32)], 0x1000),
    );

    let tree = N {
        name: "",
        props: vec![
            P::Str("compatible", "aspeed,ast2600"),
            P::Cells("#address-cells", &[1]),
        ],
        kids: vec![N {
            name: "flash@0",
            props: vec![P::Str("compatible", "jedec,spi-nor")],
            kids: vec![N {
                name: "partitions",
                props: vec![
                    P::Str("compatible", "fixed-partitions"),
                    P::Cells("#address-cells", &[1]),
                    P::Cells("#size-cells", &[1]),
                ],
                kids: vec![
                    N {
                        name: "u-boot@0",
                        props: vec![P::Cells("reg", &[0, 0x60000]), P::Str("label", "u-boot")],
                        kids: vec![],
                    },
                    N {
                        name: "kernel@100000",
                        props: vec![
                            P::Cells("reg", &[0x100000, 0x900000]),
                            P::Str("label", "kernel"),
                        ],
                        kids: vec![],
                    },
                ],
            }],
        }],
    };
    let dtb = fdt(&tree);
    put("fdt", "partitions.dtb", &dtb);
    let kernel = b"kernel image bytes".repeat(8);
    let digest = fwscan::hash::sha256(&kernel);
    let fit = fdt(&N {
        name: "",
        props: vec![
            P::Str("description", "seed FIT"),
            P::Cells("#address-cells", &[1]),
        ],
        kids: vec![
            N {
                name: "images",
                props: vec![],
                kids: vec![
                    N {
                        name: "kernel-1",
                        props: vec![
                            P::Str("type", "kernel"),
                            P::Str("compression", "none"),
                            P::Bytes("data", &kernel),
                        ],
                        kids: vec![N {
                            name: "hash-1",
                            props: vec![P::Str("algo", "sha256"), P::Bytes("value", &digest)],
                            kids: vec![],
                        }],
                    },
                    N {
                        name: "fdt-1",
                        props: vec![P::Str("type", "flat_dt"), P::Bytes("data", &dtb)],
                        kids: vec![],
                    },
                ],
            },
            N {
                name: "configurations",
                props: vec![P::Str("default", "conf-1")],
                kids: vec![N {
                    name: "conf-1",
                    props: vec![P::Str("kernel", "kernel-1"), P::Str("fdt", "fdt-1")],
                    kids: vec![],
                }],
            },
        ],
    });
    put("fdt", "fit.itb", &fit);
    put_format("fit", "fit.itb", &fit);
    put_format("uimage", "none.img", &uimage(&kernel, 0));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &kernel).expect("gzip");
    put_format(
        "uimage",
        "gzip.img",
        &uimage(&gz.finish().expect("gzip"), 1),
    );
    let env = ubootenv(
        &[
            "bootcmd=bootm 20080000",
            "bootdelay=2",
            "ethaddr=00:11:22:33:44:55",
        ],
        0x1000,
    );
    put_format("uboot-env", "env.bin", &env);
    // coreboot: a CBFS (a raw file, a payload with a CODE and an ENTR segment) on its own and behind a
    // flash map.
    let mut payload = Vec::new();
    for (t, off, len) in [(*b"CODE", 56u32, 4u32), (*b"ENTR", 0, 0)] {
        payload.extend_from_slice(&t);
        payload.extend_from_slice(&0u32.to_be_bytes());
        payload.extend_from_slice(&off.to_be_bytes());
        payload.extend_from_slice(&0x1000u64.to_be_bytes());
        payload.extend_from_slice(&len.to_be_bytes());
        payload.extend_from_slice(&len.to_be_bytes());
    }
    payload.extend_from_slice(&[0x90; 4]);
    let cbfs = fwscan::formats::coreboot::cbfs::build(
        &[
            ("raw/plain", 0x50, None, b"plain data"),
            ("fallback/payload", 0x20, None, &payload),
        ],
        0xE00,
    );
    put_format("cbfs", "files.bin", &cbfs);
    let mut rom = fwscan::formats::coreboot::fmap::build(
        0x1000,
        &[
            (0, 0x1000, "BIOS"),
            (0, 0x200, "FMAP"),
            (0x200, 0xE00, "COREBOOT"),
        ],
    );
    rom[0x200..].copy_from_slice(&cbfs);
    put_format("fmap", "rom.bin", &rom);
    // Older BMC file systems: binwalk's samples (testdata/oldfs, MIT, see its PROVENANCE).
    let sample = |name: &str| {
        std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("testdata/oldfs")
                .join(name),
        )
        .expect("testdata/oldfs sample")
    };
    let cramfs = sample("cramfs.bin");
    put_format("cramfs", "binwalk.bin", &cramfs);
    put_format("romfs", "binwalk.bin", &sample("romfs.bin"));
    put_format("yaffs2", "binwalk.bin", &sample("yaffs2.bin"));
    // squashfs 3.1 (the only sample, testdata's, is 2.5 MB): a file of three blocks (text in zlib, then two
    // stored: noise does not shrink), a small one, a symlink.
    let init: Vec<u8> = (0..188u32)
        .flat_map(|i| fwscan::hash::sha256(&i.to_le_bytes()))
        .collect();
    put_format(
        "squashfs3",
        "three.bin",
        &squashfs3(&[
            ("hostname", b"bmc\n"),
            (
                "init",
                &[b"#!/bin/sh\n".repeat(410).as_slice(), &init].concat(),
            ),
            ("sh->busybox", b""),
        ]),
    );
    // A Supermicro X9 image: bootloader block, one cramfs image at 0x10000 with its 64-byte footer at the
    // end of its block, the ATENs_FW v2 footer before it.
    let sum = fwscan::formats::bmc::supermicro::checksum;
    let mut smc = vec![0xFFu8; 0x20000];
    smc[..0x100].copy_from_slice(&code[..0x100]);
    smc[0x10000..0x10000 + cramfs.len()].copy_from_slice(&cramfs);
    let mut f = Vec::new();
    for v in [2u32, 0x4001_0000, cramfs.len() as u32, 0, 0] {
        f.extend_from_slice(&v.to_le_bytes());
    }
    f.extend_from_slice(b"1stFS\0\0\0\0\0\0\0\0\0\0\0");
    f.extend_from_slice(&sum(&cramfs).to_le_bytes());
    f.extend_from_slice(&[0x9F, 0xFF, 0xFF, 0xA0]);
    f.extend_from_slice(&8u32.to_le_bytes());
    let fsum = sum(&f);
    f.extend_from_slice(&fsum.to_le_bytes());
    smc[0x20000 - 52..].copy_from_slice(&f);
    let g = 0x20000 - 52 - 12 - 16;
    smc[g..g + 8].copy_from_slice(b"ATENs_FW");
    smc[g + 8..g + 11].copy_from_slice(&[3, 17, 0x71]);
    let all = crc32fast::hash(&crc32fast::hash(&cramfs).to_le_bytes());
    smc[g + 11..g + 15].copy_from_slice(&all.to_le_bytes());
    smc[g + 15] = 0x17;
    put_format("supermicro", "x9.bin", &smc);
    // Stand-alone executables, a single FFS file, OpenPOWER images (issue 22.5, 22.6).
    let pe = fwscan::formats::exe::pe_file::build(&[(".text", &[0xC3; 16]), (".data", b"data")]);
    put_format("pe", "app.efi", &pe);
    put_format(
        "elf",
        "bl31.elf",
        &fwscan::formats::exe::elf::build(&[0x1F, 0x20, 0x03, 0xD5].repeat(4)),
    );
    put_format(
        "ffs",
        "driver.ffs",
        &file(
            guid_bytes("0F0E0D0C-0B0A-0908-0706-050403020100"),
            0x07,
            &sections(&[section(0x10, &pe), ui("Driver")]),
            0x40,
        ),
    );
    put_format(
        "slof",
        "slof.bin",
        &fwscan::formats::power::slof::build(&[("stage1", &[0x48; 24]), ("ofw_main", b"main")]),
    );
    put_format(
        "skiboot",
        "skiboot.lid",
        &fwscan::formats::power::skiboot::build(),
    );
    put_format(
        "psp",
        "bootloader.sbin",
        &fwscan::formats::amd::psp::build(&[0xA5; 64]),
    );
    put_format(
        "npcm-bootblock",
        "merged-bootblock-u-boot.bin",
        &fwscan::formats::bmc::npcm::build(0x300, Some(b"U-Boot 2019.01 (Jan 01 2020)\0")),
    );
    put_format(
        "stm",
        "stm.bin",
        &fwscan::formats::intel::stm::build(0x2000),
    );
    put_format(
        "stb-container",
        "skiboot.lid.stb",
        &fwscan::formats::power::container::build(1, &fwscan::formats::power::skiboot::build()),
    );
    put(
        "layout",
        "layout.txt",
        b"00000000:00000fff fd\n00001000:0007ffff bios\n",
    );

    let data = Arc::new(fwscan::input::Data::Owned(fv.clone()));
    let parsed = fwscan::formats::parse_image(data, &fwscan::formats::ParseOptions::default());
    let m = Manifest::from_tree(&parsed, BaselineOptions::default()).expect("manifest");
    let json = m.to_json();
    put("manifest", "manifest.json", json.as_bytes());
    // The same baseline as a signed CoRIM (fixed key and times, so this seed is deterministic).
    let ck = fwscan::manifest::corim::cose::SigningKey::Ed25519(
        ed25519_dalek::SigningKey::from_bytes(&[0x42; 32]),
    );
    let mut cm = m.clone();
    cm.created = "2026-01-01T00:00:00Z".into();
    let corim = fwscan::manifest::corim::export(
        &cm,
        &ck,
        &fwscan::manifest::corim::ExportOptions {
            signer: "seed".into(),
            not_before: std::time::UNIX_EPOCH,
            not_after: None,
            x5chain: Vec::new(),
        },
    );
    put("manifest", "manifest.corim", &corim);
    // The `corim` target: the export, and others' CoRIMs (testdata/corim, see its PROVENANCE): Veraison's
    // COSE_Sign1 and unsigned ones, OCP S.A.F.E.'s COSE_Sign whose signer names no alg.
    put("corim", "fwscan-export.corim", &corim);
    let corims = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/corim");
    for e in std::fs::read_dir(&corims).expect("testdata/corim") {
        let p = e.expect("testdata/corim entry").path();
        if p.extension().is_some_and(|x| x == "cbor") {
            let name = p.file_name().expect("a file name").to_string_lossy();
            put("corim", &name, &std::fs::read(&p).expect("a CoRIM vector"));
        }
    }
    // A fresh key per run: the signature and key files only need to be well-formed.
    let sk = SecretKey::generate().expect("key");
    let sig = sk
        .sign(json.as_bytes(), SigAlg::Prehashed, "seed", "fwscan seed")
        .expect("sign");
    put(
        "minisign_parsers",
        "manifest.minisig",
        sig.to_file().as_bytes(),
    );
    put(
        "minisign_parsers",
        "key.pub",
        sk.public().to_file().as_bytes(),
    );
    let pk = sk.public();
    let policy = format!(
        r#"{{"schema_version":1,"keys":[{{"id":"{}","public_key":"{}","role":"vendor","products":["OVMF-*"]}}],"rules":[{{"product":"OVMF-*","component":"bios","threshold":1,"min_sequence":1}}]}}"#,
        pk.id,
        pk.to_base64()
    );
    put("trust_policy", "policy.json", policy.as_bytes());
    put(
        "rules",
        "threats.toml",
        include_str!("../signatures/threats.toml").as_bytes(),
    );
    println!("seeds written under {}", out.display());
}
