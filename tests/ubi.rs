//! UBI anchoring (issue 21, point 5): the images of a UBI-layout OpenBMC package (`*.ubi.mtd.tar`, built
//! and signed as `image_types_phosphor.bbclass` does) are found in a UBI flash dump by volume name, as
//! `do_make_ubi` names the volumes it gives `ubinize` (mtd-utils): `kernel-<version id>`, `rofs-<version
//! id>`, `rwfs`, with U-Boot and its environment in front of the UBI area. The version id is computed here
//! with coreutils' `sha512sum`, as `do_get_versionID` does; the volume list is checked against the
//! `ubinize` configuration and against ubi_reader (`ubireader_display_info`, `ubireader_extract_images`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::harness::{code_paths, have_tool, run as fwscan};
use crate::packages::{have, inspect, nodes, scan_json, uncovered_paths, vendor_policy, Pkg};
use crate::support::bmc as b;

/// The flash layout a UBI machine's device tree declares (OpenBMC's UBI layout on a 32 MiB NOR flash):
/// U-Boot, its environment, then the UBI area from `FLASH_UBI_OFFSET` (512 KiB) to the end.
const UBI_LAYOUT_32: &[(&str, u64, u64)] = &[
    ("u-boot", 0x0, 0x60000),
    ("u-boot-env", 0x60000, 0x20000),
    ("obmc-ubi", 0x80000, 0x1F8_0000),
];
const UBI_OFFSET: usize = 0x80000;
/// `FLASH_PEB_SIZE` 64 KiB, `FLASH_PAGE_SIZE` 1, `FLASH_NOR_UBI_OVERHEAD` 64: LEB = 64 KiB - 2 * 64.
const LEB: u64 = 0x10000 - 128;
const VERSION: &str = "2.16.0-test";

/// A tool of mtd-utils, where Debian installs it.
fn mtd(tool: &str) -> String {
    let p = Path::new("/usr/sbin").join(tool);
    if p.is_file() {
        p.display().to_string()
    } else {
        tool.to_string()
    }
}

/// `do_get_versionID`: the first 8 hex digits of the SHA-512 of the version, by `sha512sum`.
fn version_id(dir: &Path, version: &str) -> String {
    std::fs::write(dir.join("version.txt"), version).unwrap();
    b::run(dir, "sha512sum", &["version.txt"])[..8].to_string()
}

/// One `ubinize` section, as `add_volume` writes it.
struct Vol<'a> {
    id: u32,
    typ: &'a str,
    name: String,
    image: &'a str,
    size: Option<&'a str>,
}

/// Runs `ubinize -p 64KiB -m 1` on the volumes (in the order given) and returns the UBI image.
fn ubinize(dir: &Path, vols: &[Vol<'_>], out: &str) -> Vec<u8> {
    let mut cfg = String::new();
    for v in vols {
        cfg.push_str(&format!(
            "[{}]\nmode=ubi\nimage={}\nvol_type={}\nvol_name={}\nvol_id={}\n",
            v.name, v.image, v.typ, v.name, v.id
        ));
        if let Some(s) = v.size {
            cfg.push_str(&format!("vol_size={s}\n"));
        }
    }
    let cfg_name = format!("{out}.cfg");
    std::fs::write(dir.join(&cfg_name), cfg).unwrap();
    b::run(
        dir,
        &mtd("ubinize"),
        &["-p", "64KiB", "-m", "1", "-o", out, &cfg_name],
    );
    std::fs::read(dir.join(out)).unwrap()
}

/// OpenBMC's three volumes (`do_make_ubi`), from the package's files.
fn phosphor_volumes(id: &str) -> Vec<Vol<'static>> {
    vec![
        Vol {
            id: 0,
            typ: "static",
            name: format!("kernel-{id}"),
            image: "image-kernel",
            size: None,
        },
        Vol {
            id: 1,
            typ: "static",
            name: format!("rofs-{id}"),
            image: "image-rofs",
            size: None,
        },
        Vol {
            id: 2,
            typ: "dynamic",
            name: "rwfs".into(),
            image: "image-rwfs",
            size: Some("6MiB"),
        },
    ]
}

/// The 32 MiB flash: U-Boot at 0, a per-machine environment, the UBI image at 512 KiB, the rest erased.
fn flash(pkg: &Pkg, ubi: &[u8]) -> Vec<u8> {
    let uboot = std::fs::read(pkg.dir.join("image-u-boot")).unwrap();
    let env = b::env(&pkg.dir, b::ENV, "machine-env.bin");
    let mut img = vec![0xFFu8; 32 << 20];
    img[..uboot.len()].copy_from_slice(&uboot);
    img[0x60000..0x60000 + env.len()].copy_from_slice(&env);
    img[UBI_OFFSET..UBI_OFFSET + ubi.len()].copy_from_slice(ubi);
    img
}

/// A UBIFS overlay holding `/etc/hostname`, made with `mkfs.ubifs` as `UBIFS_RWFS_CMD` runs it (6 MiB
/// of LEBs, min I/O 1).
fn ubifs(dir: &Path, hostname: &str, out: &str) {
    let src = format!("{out}.d");
    let rw = dir.join(&src);
    std::fs::create_dir_all(rw.join("etc")).unwrap();
    std::fs::write(rw.join("etc/hostname"), format!("{hostname}\n")).unwrap();
    let lebs = (6u64 << 20).div_ceil(LEB).to_string();
    let leb = LEB.to_string();
    let args = ["-r", &src, "-c", &lebs, "-m", "1", "-e", &leb, out];
    b::run(dir, &mtd("mkfs.ubifs"), &args);
}

/// A UBI-layout package: the static package's parts with a UBIFS `image-rwfs` ([`ubifs`]), signed again
/// and tarred as `*.ubi.mtd.tar`.
fn ubi_package(name: &str, layout_in_dtb: bool) -> Option<(Pkg, PathBuf)> {
    if !have("mkfs.ubifs") || !have("ubinize") || !have("sha512sum") {
        return None;
    }
    let pkg = Pkg::for_flash(name, "sha256", "RSA-SHA256", UBI_LAYOUT_32)?;
    ubifs(&pkg.dir, "bmc-0001", "image-rwfs");
    if !layout_in_dtb {
        // A kernel whose device tree declares no flash layout: the dump's own structure lays it out.
        let kernel = b::fit(
            &pkg.dir,
            &b::kernel_bytes(1, 600_000),
            &b::dts(None),
            "image-kernel",
        );
        assert!(!kernel.is_empty());
    }
    pkg.sign_all();
    let tar = pkg.tar("obmc-phosphor-image.ubi.mtd.tar");
    Some((pkg, tar))
}

/// `fwscan baseline` of the package, trusted through the policy's vendor key.
fn baseline(pkg: &Pkg, tar: &Path) -> PathBuf {
    let pem = std::fs::read_to_string(pkg.dir.join("publickey")).unwrap();
    let key = serde_json::json!({"id": "evb-openbmc", "type": "openbmc", "key_type": "OpenBMC",
        "hash_type": "RSA-SHA256", "pem": pem, "components": ["bmc"]});
    let policy_dir = pkg.dir.join("policy");
    std::fs::create_dir_all(&policy_dir).unwrap();
    let policy = vendor_policy(&policy_dir, &[key]);
    let m = pkg.dir.join("ubi.manifest.json");
    let (code, _, err) = fwscan(&[
        "baseline",
        tar.to_str().unwrap(),
        "-o",
        m.to_str().unwrap(),
        "--component",
        "bmc",
        "--trust",
        policy.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    m
}

fn scan(pkg: &Pkg, m: &Path, img: &[u8], name: &str) -> (i32, Value) {
    let p = pkg.dir.join(name);
    std::fs::write(&p, img).unwrap();
    scan_json(&p, &[m], &[])
}

/// `(part, region)` of every anchor of a scan.
fn anchors(r: &Value) -> Vec<(String, String)> {
    r["anchors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["part"].as_str().unwrap().into(),
                a["region"].as_str().unwrap().into(),
            )
        })
        .collect()
}

#[test]
fn ubi_package_parts_are_anchored_in_a_ubinize_dump_by_volume_name() {
    let Some((pkg, tar)) = ubi_package("ubi-anchor", true) else {
        return;
    };
    let dir = &pkg.dir;
    let id = version_id(dir, VERSION);
    let m = baseline(&pkg, &tar);
    let man: Value = serde_json::from_slice(&std::fs::read(&m).unwrap()).unwrap();
    let parts: BTreeMap<String, Value> = man["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["path"].as_str().unwrap().to_string(), p["anchor"].clone()))
        .collect();
    assert_eq!(
        parts["image-kernel"],
        serde_json::json!({"kind": "ubi-volume", "name": format!("kernel-{id}")})
    );
    assert_eq!(
        parts["image-rofs"],
        serde_json::json!({"kind": "ubi-volume", "name": format!("rofs-{id}")})
    );
    assert_eq!(
        parts["image-rwfs"],
        serde_json::json!({"kind": "ubi-volume", "name": "rwfs", "per_machine": true})
    );
    assert_eq!(
        parts["image-u-boot"],
        serde_json::json!({"kind": "partition", "name": "u-boot"})
    );
    crate::basics::validate("manifest-v1.schema.json", &man);

    // The flash as phosphor assembles it: exit 0, each image compared with its volume.
    let ubi = ubinize(dir, &phosphor_volumes(&id), "ubi-img");
    let img = flash(&pkg, &ubi);
    let (code, r) = scan(&pkg, &m, &img, "flash.bin");
    assert_eq!(code, 0, "{}", r["findings"]);
    let vol = |n: &str| format!("obmc-ubi/ubi/volume[{n}]");
    assert_eq!(
        anchors(&r),
        [
            ("image-u-boot", "u-boot".to_string()),
            ("image-kernel", vol(&format!("kernel-{id}"))),
            ("image-rofs", vol(&format!("rofs-{id}"))),
            ("image-rwfs", vol("rwfs")),
        ]
        .map(|(a, b)| (a.to_string(), b))
    );
    // The UBI area is covered (its volumes compared one by one); the environment is per machine.
    assert_eq!(uncovered_paths(&r), ["u-boot-env"]);
    // The per-machine UBIFS is anchored, not compared.
    let skipped: Vec<&str> = r["skipped"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["path"].as_str())
        .collect();
    assert!(skipped.contains(&vol("rwfs").as_str()), "{skipped:?}");

    // The volume list against ubinize's configuration and ubi_reader; the volumes' bytes against
    // ubireader_extract_images. (`inspect` lays the dump out by its own structure: `ubi`.)
    std::fs::write(dir.join("flash.bin"), &img).unwrap();
    let doc = inspect(&dir.join("flash.bin"), &[]);
    let n = nodes(&doc);
    let listed: Vec<(u64, String, String)> = n["ubi/ubi"]["attrs"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["id"].as_u64().unwrap(),
                v["name"].as_str().unwrap().to_string(),
                v["type"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: Vec<(u64, String, String)> = phosphor_volumes(&id)
        .into_iter()
        .map(|v| (u64::from(v.id), v.name, v.typ.to_string()))
        .collect();
    assert_eq!(listed, want);
    ubi_reader_agrees(dir, &n, "ubi/ubi");

    // A file changed in the rofs squashfs: named by its path inside the volume.
    let evil = dir.join("evil");
    std::fs::create_dir_all(&evil).unwrap();
    let root = b::make_root(&evil);
    std::fs::write(
        root.join("etc/passwd"),
        "root::0:0:root:/home/root:/bin/sh\n",
    )
    .unwrap();
    let evil_rofs = b::squashfs(&evil, &root, "rofs.sqsh");
    std::fs::write(dir.join("evil-rofs"), evil_rofs).unwrap();
    let mut vols = phosphor_volumes(&id);
    vols[1].image = "evil-rofs";
    let (code, r) = scan(
        &pkg,
        &m,
        &flash(&pkg, &ubinize(dir, &vols, "evil.img")),
        "evil.bin",
    );
    assert_eq!(code, 1);
    let f = code_paths(&r);
    assert!(
        f.contains(&(
            "file-modified".into(),
            format!("{}/squashfs/etc/passwd", vol(&format!("rofs-{id}")))
        )),
        "{f:?}"
    );

    // No kernel volume: anchor-not-found for the kernel part.
    let vols: Vec<Vol<'_>> = phosphor_volumes(&id)
        .into_iter()
        .filter(|v| v.id != 0)
        .collect();
    let (code, r) = scan(
        &pkg,
        &m,
        &flash(&pkg, &ubinize(dir, &vols, "nokernel.img")),
        "nokernel.bin",
    );
    assert_eq!(code, 1);
    assert!(
        code_paths(&r).contains(&("anchor-not-found".into(), "image-kernel".into())),
        "{:?}",
        code_paths(&r)
    );

    // The volumes in another order and with other ids: other PEBs, same volumes; still clean.
    let mut vols = phosphor_volumes(&id);
    vols.reverse();
    for (v, new_id) in vols.iter_mut().zip([0u32, 4, 7]) {
        v.id = new_id;
    }
    let moved = ubinize(dir, &vols, "moved.img");
    assert_ne!(moved, ubi, "the volumes must lie in other PEBs");
    let (code, r) = scan(&pkg, &m, &flash(&pkg, &moved), "moved.bin");
    assert_eq!(code, 0, "{}", r["findings"]);

    // The overlay as a machine wrote it (another UBIFS): per-machine, still clean. A read-only image in
    // the `rwfs` volume is compared with the package's file, and differs.
    ubifs(dir, "bmc-0002", "rwfs-machine");
    let mut vols = phosphor_volumes(&id);
    vols[2].image = "rwfs-machine";
    let (code, r) = scan(
        &pkg,
        &m,
        &flash(&pkg, &ubinize(dir, &vols, "rw2.img")),
        "rw2.bin",
    );
    assert_eq!(code, 0, "{}", r["findings"]);
    let mut vols = phosphor_volumes(&id);
    vols[2].image = "image-rofs";
    let (code, r) = scan(
        &pkg,
        &m,
        &flash(&pkg, &ubinize(dir, &vols, "rw3.img")),
        "rw3.bin",
    );
    assert_eq!(code, 1);
    assert!(
        code_paths(&r)
            .iter()
            .any(|(_, p)| p.starts_with(&vol("rwfs"))),
        "{:?}",
        code_paths(&r)
    );

    // A volume the package does not hold: named, never clean.
    std::fs::write(dir.join("extra.bin"), b::kernel_bytes(7, 100_000)).unwrap();
    let mut vols = phosphor_volumes(&id);
    vols.push(Vol {
        id: 3,
        typ: "static",
        name: "extra".into(),
        image: "extra.bin",
        size: None,
    });
    let (code, r) = scan(
        &pkg,
        &m,
        &flash(&pkg, &ubinize(dir, &vols, "extra.img")),
        "extra.bin",
    );
    assert_eq!(code, 1);
    assert!(
        code_paths(&r).contains(&("not-covered".into(), vol("extra"))),
        "{:?}",
        code_paths(&r)
    );
}

#[test]
fn ubi_volume_padding_must_be_blank_and_the_dumps_own_layout_serves_without_one_in_the_package() {
    // The kernel's device tree declares no layout: the dump is laid out by its own structure (U-Boot at
    // 0, the UBI area where its first erase-counter header is).
    let Some((pkg, tar)) = ubi_package("ubi-anchor-nolayout", false) else {
        return;
    };
    let dir = &pkg.dir;
    let id = version_id(dir, VERSION);
    let m = baseline(&pkg, &tar);
    // rofs in a dynamic volume: its last LEB is padded with 0xFF after the squashfs.
    let mut vols = phosphor_volumes(&id);
    vols[1].typ = "dynamic";
    vols[1].size = Some("2MiB");
    let ubi = ubinize(dir, &vols, "dyn.img");
    let mut img = flash(&pkg, &ubi);
    let (code, r) = scan(&pkg, &m, &img, "dyn.bin");
    assert_eq!(code, 0, "{}", r["findings"]);
    let rofs_vol = format!("ubi/ubi/volume[rofs-{id}]");
    assert!(
        anchors(&r).contains(&("image-rofs".into(), rofs_vol.clone())),
        "{:?}",
        anchors(&r)
    );
    // Bytes hidden after the squashfs inside the volume's last LEB: not blank.
    let rofs_len = std::fs::metadata(dir.join("image-rofs")).unwrap().len();
    let last = rofs_len / LEB;
    let at =
        peb_data(&img, 1, last).expect("the last LEB of the rofs volume") + rofs_len % LEB + 64;
    img[at as usize..at as usize + 8].copy_from_slice(b"IMPLANT!");
    let (code, r) = scan(&pkg, &m, &img, "dyn-implant.bin");
    assert_eq!(code, 1);
    let f = code_paths(&r);
    assert!(
        f.iter()
            .any(|(c, p)| c == "not-blank" && p.starts_with(&rofs_vol)),
        "{f:?}"
    );
}

/// The flash offset of the data of LEB `lnum` of volume `vol` in a flash with the UBI area at
/// [`UBI_OFFSET`], from the erase-counter and volume-id headers (big-endian, as ubi-media.h lays them
/// out).
fn peb_data(img: &[u8], vol: u32, lnum: u64) -> Option<u64> {
    let be = |o: usize| u32::from_be_bytes(img[o..o + 4].try_into().unwrap());
    (UBI_OFFSET..img.len()).step_by(0x10000).find_map(|p| {
        if &img[p..p + 4] != b"UBI#" {
            return None;
        }
        let (vid, data) = (p + be(p + 16) as usize, p + be(p + 20) as usize);
        (&img[vid..vid + 4] == b"UBI!" && be(vid + 8) == vol && u64::from(be(vid + 12)) == lnum)
            .then_some(data as u64)
    })
}

/// ubi_reader's view of the UBI image inside the flash (`ubireader_display_info`: names, ids, types,
/// reserved PEBs, blocks; `ubireader_extract_images`: each volume's bytes) against fwscan's node `area`.
fn ubi_reader_agrees(dir: &Path, n: &BTreeMap<String, Value>, area: &str) {
    if !have_tool("ubireader_display_info", "PyPI ubi_reader, see .ci/run")
        || !have_tool("ubireader_extract_images", "PyPI ubi_reader, see .ci/run")
    {
        return;
    }
    let img = std::fs::read(dir.join("ubi-img")).unwrap();
    assert!(!img.is_empty());
    let out = Command::new("ubireader_display_info")
        .arg(dir.join("ubi-img"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Per volume: (id, name, type, reserved PEBs, blocks found).
    let mut theirs: Vec<(u64, String, String, u64, u64)> = Vec::new();
    let mut cur: Option<(u64, String, String, u64, u64)> = None;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let l = line.trim();
        let val = |p: &str| {
            l.strip_prefix(p)
                .map(|v| v.trim().trim_matches('\'').to_string())
        };
        if let Some(name) = val("Volume: ") {
            theirs.extend(cur.take());
            cur = Some((0, name, String::new(), 0, 0));
        } else if let Some(c) = cur.as_mut() {
            if let Some(v) = val("Vol ID:") {
                c.0 = v.parse().unwrap();
            } else if let Some(v) = val("Block Count:") {
                c.4 = v.parse().unwrap();
            } else if let Some(v) = val("reserved_pebs:") {
                c.3 = v.parse().unwrap();
            } else if let Some(v) = val("vol_type:") {
                c.2 = v;
            }
        }
    }
    theirs.extend(cur);
    let ours: Vec<(u64, String, String, u64, u64)> = n[area]["attrs"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["id"].as_u64().unwrap(),
                v["name"].as_str().unwrap().to_string(),
                v["type"].as_str().unwrap().to_string(),
                v["reserved-pebs"].as_u64().unwrap(),
                v["lebs-found"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(!theirs.is_empty());
    assert_eq!(ours, theirs);
    // Each volume's bytes, as ubi_reader reassembles them, are the volume node's.
    let out_dir = dir.join("ubireader");
    let _ = std::fs::remove_dir_all(&out_dir);
    let st = Command::new("ubireader_extract_images")
        .arg("-o")
        .arg(&out_dir)
        .arg(dir.join("ubi-img"))
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let mut compared = 0;
    for e in walk(&out_dir) {
        let file = e.file_name().unwrap().to_string_lossy().into_owned();
        let Some((_, name)) = file
            .strip_suffix(".ubifs")
            .and_then(|f| f.split_once("_vol-"))
        else {
            continue;
        };
        let digest = b::run(dir, "sha256sum", &[e.to_str().unwrap()])[..64].to_string();
        let node = &n[&format!("{area}/volume[{name}]")];
        assert_eq!(node["digest"].as_str(), Some(digest.as_str()), "{name}");
        compared += 1;
    }
    assert_eq!(compared, ours.len());
}

fn walk(d: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
