//! Issue 13 (selection by structure) and issue 15.3 (selection steered by image content): a fleet of
//! per-machine dumps of three products baselined with a plain `--version 1`, tampered dumps, another
//! product, two products that match equally, and a laxer manifest that an implanted image tries to steer
//! itself to.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::harness::{run as fwscan, skip, BIN};
use crate::support;
use crate::support::spi::{descriptor, me_region, noise};

const OVMF: &str = "/usr/share/OVMF";

fn ovmf(names: &[&str]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for n in names {
        match std::fs::read(Path::new(OVMF).join(n)) {
            Ok(b) => out.extend(b),
            Err(_) => {
                skip(&format!("{OVMF}/{n} not installed (Debian package ovmf)"));
                return None;
            }
        }
    }
    Some(out)
}

/// A GbE region with the given MAC address and a valid checksum.
fn gbe_region(mac: [u8; 6]) -> Vec<u8> {
    let mut b = vec![0xFFu8; 0x2000];
    b[..0x80].fill(0);
    b[..6].copy_from_slice(&mac);
    b[0x0A] = 0x05;
    b[0x27] = 0x80;
    let sum = (0..0x3F).fold(0u16, |s, i| {
        s.wrapping_add(u16::from_le_bytes([b[2 * i], b[2 * i + 1]]))
    });
    b[0x7E..0x80].copy_from_slice(&0xBABAu16.wrapping_sub(sum).to_le_bytes());
    b
}

/// An 8 MiB SPI image: descriptor, GbE, ME, and a 4 MiB BIOS region.
fn spi_image(bios: &[u8], mac: [u8; 6]) -> Vec<u8> {
    let regs = [(0, 0, 0), (3, 1, 2), (2, 0x10, 0x3FF), (1, 0x400, 0x7FF)];
    let mut img = vec![0xFFu8; 8 << 20];
    img[..0x1000].copy_from_slice(&descriptor(&regs));
    img[0x1000..0x3000].copy_from_slice(&gbe_region(mac));
    img[0x10000..0x400000].copy_from_slice(&me_region(0x3F0000));
    img[0x400000..].copy_from_slice(bios);
    img
}

/// A per-machine change of the OVMF variable store at the start of `img`: the `Timeout` variable's data
/// and a byte in the store's free space (where the firmware appends variables).
fn change_nvram(img: &mut [u8], at: usize) {
    let name: Vec<u8> = "Timeout"
        .encode_utf16()
        .flat_map(|c| c.to_le_bytes())
        .collect();
    let p = img[at..at + 0x40000]
        .windows(name.len())
        .position(|w| w == name.as_slice())
        .expect("Timeout variable")
        + at;
    // Name (with its NUL) is followed by the 2-byte data.
    img[p + name.len() + 2] ^= 0x07;
    img[at + 0x30000] = 0x5A;
}

fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len())
        .position(|w| w == needle)
        .expect("needle")
}

/// A temporary directory with an empty `fleet/` and `manifests/` in it.
fn fleet_dirs() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let (fleet, mdir) = (d.path().join("fleet"), d.path().join("manifests"));
    std::fs::create_dir_all(&fleet).unwrap();
    std::fs::create_dir_all(&mdir).unwrap();
    (d, fleet, mdir)
}

fn baseline(golden: &[u8], dir: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let g = dir.join(format!("{name}.golden"));
    std::fs::write(&g, golden).unwrap();
    let out = dir.join(format!("{name}.json"));
    let mut args = vec![
        "baseline",
        g.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--product",
        name,
        "--version",
        "1",
    ];
    args.extend_from_slice(extra);
    let (code, _, err) = fwscan(&args);
    assert_eq!(code, 0, "baseline {name}: {err}");
    std::fs::remove_file(&g).unwrap();
    out
}

fn audit(fleet: &Path, mdir: &Path, out: &Path) -> (i32, Vec<Value>) {
    let (code, rows, _) = audit_with(fleet, mdir, out, &["-q"]);
    (code, rows)
}

/// An unsigned-catalogue audit of `fleet` with `extra` options: exit code, image rows, stderr.
fn audit_with(fleet: &Path, mdir: &Path, out: &Path, extra: &[&str]) -> (i32, Vec<Value>, String) {
    let mut args = vec![
        "audit",
        fleet.to_str().unwrap(),
        "--manifests",
        mdir.to_str().unwrap(),
        "--insecure-unsigned",
        "--no-timing",
        "-o",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let (code, _, err) = fwscan(&args);
    let text = std::fs::read_to_string(out).unwrap_or_else(|e| panic!("{e}: {err}"));
    let rows = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["kind"] == "image")
        .collect();
    (code, rows, err)
}

fn row<'a>(rows: &'a [Value], name: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["path"] == name)
        .unwrap_or_else(|| panic!("no row for {name}"))
}

fn codes_and_paths(r: &Value) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["code"].as_str().unwrap_or("").to_string(),
                f["path"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    if let Some(e) = r["error"]["code"].as_str() {
        v.push((e.to_string(), String::new()));
    }
    v
}

/// The row is clean, chosen by structure for `product` with a score at or above the threshold.
fn assert_clean_by_structure(rows: &[Value], name: &str, product: &str) {
    let r = row(rows, name);
    assert_eq!(r["verdict"], "clean", "{name}: {r}");
    assert_eq!(r["manifest"]["product"]["product"], product, "{name}: {r}");
    assert_eq!(r["manifest"]["selected_by"], "structure", "{name}: {r}");
    let score = r["manifest"]["score"].as_u64().unwrap();
    assert!(
        score >= fwscan::audit::catalogue::STRUCTURE_THRESHOLD as u64,
        "{name}: {score}"
    );
}

/// The row has findings against `product`, one of them `code` naming a path that contains `what`.
fn assert_names(rows: &[Value], name: &str, product: &str, code: &str, what: &str) {
    let r = row(rows, name);
    assert_eq!(r["verdict"], "findings", "{name}: {r}");
    assert_eq!(r["manifest"]["product"]["product"], product, "{name}: {r}");
    let got = codes_and_paths(r);
    assert!(
        got.iter().any(|(c, p)| c == code && p.contains(what)),
        "{name}: expected {code} naming {what}, got {got:?}"
    );
    assert!(
        got.iter().all(|(c, _)| c != "unknown-firmware"),
        "{name}: {got:?}"
    );
}

#[test]
fn fleet_dumps_are_matched_by_structure_and_tampering_is_named() {
    let Some(bios) = ovmf(&["OVMF_VARS_4M.ms.fd", "OVMF_CODE_4M.fd"]) else {
        return;
    };
    let Some(other_bios) = ovmf(&["OVMF_VARS_4M.ms.fd", "OVMF_CODE_4M.secboot.fd"]) else {
        return;
    };
    let Some(ia32_bios) = ovmf(&["OVMF_VARS_4M.ms.fd", "OVMF32_CODE_4M.secboot.fd"]) else {
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let fleet = d.path().join("fleet");
    let mdir = d.path().join("manifests");
    std::fs::create_dir_all(&fleet).unwrap();
    std::fs::create_dir_all(&mdir).unwrap();
    let put = |name: &str, bytes: &[u8]| std::fs::write(fleet.join(name), bytes).unwrap();

    // 1. UEFI firmware with an NVRAM store (OVMF VARS + CODE), baselined with a plain `--version 1`.
    baseline(&bios, &mdir, "ACME-UEFI", &["--component", "bios"]);
    for i in 0..3u8 {
        let mut m = bios.clone();
        change_nvram(&mut m, 0);
        m[0x30001] = i;
        put(&format!("uefi-machine-{i}.bin"), &m);
    }
    // SecMain's PE32 body, patched.
    let mut t = bios.clone();
    let sec = find(&t, b"S\0e\0c\0M\0a\0i\0n\0") - 0x2000;
    t[sec] ^= 0x55;
    change_nvram(&mut t, 0);
    put("uefi-tampered.bin", &t);
    // Another product of the same vendor (the Secure Boot build) and another architecture.
    put("uefi-other-product.bin", &other_bios);
    put("uefi-ia32.bin", &ia32_bios);

    // 2. IFD flash image: descriptor, GbE (per-machine MAC), ME, BIOS.
    let ifd = spi_image(&bios, [0x00, 0x1B, 0x21, 0x12, 0x34, 0x56]);
    baseline(&ifd, &mdir, "ACME-IFD", &[]);
    for i in 0..2u8 {
        let mut m = spi_image(&bios, [0x00, 0x1B, 0x21, 0xAB, 0xCD, i]);
        change_nvram(&mut m, 0x400000);
        put(&format!("ifd-machine-{i}.bin"), &m);
    }
    let mut t = spi_image(&bios, [0x00, 0x1B, 0x21, 0xAB, 0xCD, 0xEF]);
    t[0x10000 + 0x1000 + 0x777] ^= 0xFF; // inside the ME's FTPR partition
    put("ifd-tampered.bin", &t);

    // 3. OpenBMC flash (real tools): per-machine rwfs and U-Boot environment.
    let with_bmc = support::bmc::available();
    if with_bmc {
        use support::bmc as b;
        let work = d.path().join("bmc-build");
        std::fs::create_dir_all(&work).unwrap();
        let pieces = b::build(&work, b::LAYOUT_32, b::UBOOT_32, true);
        let golden = pieces.image(b::LAYOUT_32);
        baseline(&golden, &mdir, "ACME-BMC", &["--component", "bmc"]);
        for i in 0..2 {
            let mut m = pieces.clone();
            m.rwfs = b::jffs2(
                &work,
                &[("etc/hostname", &format!("bmc-{i:04}\n"))],
                "rw.jffs2",
            );
            m.env = b::env(
                &work,
                &b::ENV.replace("00:11:22:33:44:55", &format!("00:11:22:33:44:{i:02}")),
                "env-m.bin",
            );
            put(&format!("bmc-machine-{i}.bin"), &m.image(b::LAYOUT_32));
        }
        // A replaced rofs binary.
        let mut m = pieces.clone();
        let root = work.join("root");
        let mut busybox = std::fs::read(root.join("bin/busybox")).unwrap();
        busybox.extend_from_slice(b"implant");
        std::fs::write(root.join("bin/busybox"), busybox).unwrap();
        m.rofs = b::squashfs(&work, &root, "rofs-t.sqsh");
        put("bmc-tampered.bin", &m.image(b::LAYOUT_32));
    } else {
        skip("BMC tools not installed: the BMC product of the fleet is left out");
    }

    let (code, rows) = audit(&fleet, &mdir, &d.path().join("rows.jsonl"));
    assert_eq!(code, 1, "{rows:?}");
    for i in 0..3 {
        assert_clean_by_structure(&rows, &format!("uefi-machine-{i}.bin"), "ACME-UEFI");
    }
    assert_names(
        &rows,
        "uefi-tampered.bin",
        "ACME-UEFI",
        "module-modified",
        "SecMain",
    );
    for name in ["uefi-other-product.bin", "uefi-ia32.bin"] {
        let r = row(&rows, name);
        assert_eq!(r["verdict"], "findings", "{name}: {r}");
        assert_eq!(
            codes_and_paths(r),
            vec![("unknown-firmware".to_string(), String::new())],
            "{name}"
        );
    }
    for i in 0..2 {
        assert_clean_by_structure(&rows, &format!("ifd-machine-{i}.bin"), "ACME-IFD");
    }
    assert_names(
        &rows,
        "ifd-tampered.bin",
        "ACME-IFD",
        "region-modified",
        "FTPR",
    );
    if with_bmc {
        for i in 0..2 {
            assert_clean_by_structure(&rows, &format!("bmc-machine-{i}.bin"), "ACME-BMC");
        }
        assert_names(
            &rows,
            "bmc-tampered.bin",
            "ACME-BMC",
            "file-modified",
            "bin/busybox",
        );
    }

    // The threshold, both ways: the other product's score is computed and is below it, a machine's is
    // above it.
    use fwscan::audit::catalogue::{structure_score, STRUCTURE_THRESHOLD};
    let m = fwscan::manifest::Manifest::load(&mdir.join("ACME-UEFI.json")).unwrap();
    let score = |bytes: &[u8]| {
        let data = std::sync::Arc::new(fwscan::input::Data::Owned(bytes.to_vec()));
        let tree = fwscan::formats::parse_image(data, &fwscan::formats::ParseOptions::default());
        structure_score(&m, &tree).unwrap()
    };
    let (mine, other) = (
        score(&std::fs::read(fleet.join("uefi-machine-0.bin")).unwrap()),
        score(&other_bios),
    );
    println!("structure scores: own machine {mine}, other product {other}");
    assert!(mine >= STRUCTURE_THRESHOLD && other < STRUCTURE_THRESHOLD);
    assert!(other > 500, "a near miss, not an unrelated image: {other}");
}

#[test]
fn two_products_matching_equally_are_ambiguous() {
    let Some(bios) = ovmf(&["OVMF_VARS_4M.ms.fd", "OVMF_CODE_4M.fd"]) else {
        return;
    };
    let (d, fleet, mdir) = fleet_dirs();
    baseline(&bios, &mdir, "ACME-A", &[]);
    baseline(&bios, &mdir, "ACME-B", &[]);
    let mut m = bios.clone();
    change_nvram(&mut m, 0);
    std::fs::write(fleet.join("machine.bin"), &m).unwrap();
    let (code, rows) = audit(&fleet, &mdir, &d.path().join("rows.jsonl"));
    assert_eq!(code, 2);
    let r = row(&rows, "machine.bin");
    assert_eq!(r["verdict"], "error", "{r}");
    assert_eq!(r["error"]["code"], "ambiguous-manifest", "{r}");
}

/// Issue 15.3: a strict manifest and a laxer one of another version (its main volume mutable) whose match
/// rules include a string. An implanted image that carries the string must not be steered to the lax
/// manifest: on today's main it is chosen by its rules and reported clean.
#[test]
fn an_implanted_image_cannot_steer_itself_to_a_laxer_manifest() {
    let Some(bios) = ovmf(&["OVMF_VARS_4M.ms.fd", "OVMF_CODE_4M.fd"]) else {
        return;
    };
    let (d, fleet, mdir) = fleet_dirs();
    let main_fv = "fv[48DB5E17-707C-472D-91CD-1613E7EF51B0]";
    let tag = "ACME DEV BUILD";
    // The dev build carries its tag in the variable store (per-machine data, writable by anyone who can
    // write the flash).
    let mut dev = bios.clone();
    dev[0x30100..0x30100 + tag.len()].copy_from_slice(tag.as_bytes());
    baseline(&bios, &mdir, "ACME", &["--component", "bios"]);
    let g = mdir.join("dev.golden");
    std::fs::write(&g, &dev).unwrap();
    let out = mdir.join("ACME-dev.json");
    let (c, _, err) = fwscan(&[
        "baseline",
        g.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--product",
        "ACME",
        "--version",
        "1-dev",
        "--mutable",
        main_fv,
        "--match-string",
        tag,
    ]);
    assert_eq!(c, 0, "{err}");
    std::fs::remove_file(&g).unwrap();

    // The implant: a byte of the main volume's compressed payload, plus the dev tag.
    let mut implanted = dev.clone();
    implanted[0x84000 + 0x1000] ^= 0x20;
    std::fs::write(fleet.join("implanted.bin"), &implanted).unwrap();
    // An honest machine of the strict product is still matched to it.
    let mut honest = bios.clone();
    change_nvram(&mut honest, 0);
    std::fs::write(fleet.join("honest.bin"), &honest).unwrap();

    let (code, rows) = audit(&fleet, &mdir, &d.path().join("rows.jsonl"));
    let r = row(&rows, "implanted.bin");
    assert_ne!(r["verdict"], "clean", "steered to the lax manifest: {r}");
    assert_eq!(r["error"]["code"], "ambiguous-manifest", "{r}");
    assert_eq!(code, 2);
    let h = row(&rows, "honest.bin");
    assert_eq!(h["verdict"], "clean", "{h}");
    assert_eq!(h["manifest"]["product"]["version"], "1", "{h}");
}

/// The README's category table lists exactly the codes `Code::category` puts outside `integrity`.
#[test]
fn readme_category_table_is_in_step_with_the_code() {
    use fwscan::finding::{Category, Code};
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    for cat in Category::ALL.iter().filter(|c| **c != Category::Integrity) {
        let prefix = format!("| `{}` | ", cat.as_str());
        let line = readme
            .lines()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("README lacks the row of {cat}"));
        let mut listed: Vec<&str> = line[prefix.len()..]
            .trim_end_matches(" |")
            .split(", ")
            .map(|c| c.trim_matches('`'))
            .collect();
        let mut want: Vec<&str> = Code::ALL
            .iter()
            .filter(|c| c.category() == *cat)
            .map(|c| c.as_str())
            .collect();
        listed.sort();
        want.sort();
        assert_eq!(listed, want, "README category row {cat}");
    }
}

/// `--fail-on` and `--ignore-category`: exit code, JSON severity, SARIF level and JUnit agree, for
/// `check`, `scan` and `audit`; integrity findings are never waived.
#[test]
fn fail_policy_is_consistent_across_commands_and_formats() {
    let Some(bios) = ovmf(&["OVMF_VARS_4M.ms.fd", "OVMF_CODE_4M.fd"]) else {
        return;
    };
    let d = tempfile::tempdir().unwrap();
    // Secure Boot configured (PK enrolled) without a dbx: rename the variable.
    let mut nodbx = bios.clone();
    let name: Vec<u8> = "dbx\0"
        .encode_utf16()
        .flat_map(|c| c.to_le_bytes())
        .collect();
    let at = find(&nodbx, &name);
    nodbx[at + 4] = b'z';
    let img = d.path().join("nodbx.bin");
    std::fs::write(&img, &nodbx).unwrap();
    let img_s = img.to_str().unwrap();

    let run = |args: &[&str]| {
        let (code, out, err) = fwscan(args);
        assert!(code == 0 || code == 1, "{args:?}: {code} {err}");
        (code, out)
    };
    // check: the default fails on the warning; both options let it pass, reported as info.
    // `check --format json` prints an array of reports, one per image.
    let first = |out: &str| serde_json::from_str::<Value>(out).unwrap()[0].clone();
    let (c, out) = run(&["check", img_s, "--format", "json"]);
    let j = first(&out);
    assert_eq!(c, 1);
    assert_eq!(j["findings"][0]["code"], "dbx-missing");
    assert_eq!(j["findings"][0]["severity"], "warning");
    for opt in [
        &["--fail-on", "error"][..],
        &["--ignore-category", "configuration"][..],
    ] {
        let mut args = vec!["check", img_s, "--format", "json"];
        args.extend_from_slice(opt);
        let (c, out) = run(&args);
        let j = first(&out);
        assert_eq!(c, 0, "{opt:?}: {j}");
        assert_eq!(j["verdict"], "clean");
        assert_eq!(j["findings"][0]["code"], "dbx-missing");
        assert_eq!(j["findings"][0]["severity"], "info");
        let mut args = vec!["check", img_s, "--format", "sarif"];
        args.extend_from_slice(opt);
        let (_, out) = run(&args);
        let s: Value = serde_json::from_str(&out).unwrap();
        let results = s["runs"][0]["results"].as_array().unwrap();
        assert_eq!(results.len(), 1);
        assert_eq!(results[0]["level"], "note");
        let mut args = vec!["check", img_s, "--format", "junit"];
        args.extend_from_slice(opt);
        let (_, out) = run(&args);
        assert!(out.contains("failures=\"0\""), "{out}");
        assert!(!out.contains("<failure"), "{out}");
    }
    let (_, out) = run(&["check", img_s, "--format", "sarif"]);
    assert!(out.contains("\"level\":\"warning\""));
    let (_, out) = run(&["check", img_s, "--format", "junit"]);
    assert!(out.contains("<failure"), "{out}");
    let (c, _, err) = fwscan(&["check", img_s, "--ignore-category", "integrity"]);
    assert_eq!(c, 2, "{err}");

    // scan: a patched module next to the missing dbx; ignoring configuration keeps the integrity finding.
    let man = d.path().join("m.json");
    let golden = d.path().join("golden.bin");
    std::fs::write(&golden, &bios).unwrap();
    let (c, _, err) = fwscan(&[
        "baseline",
        golden.to_str().unwrap(),
        "-o",
        man.to_str().unwrap(),
        "--mutable",
        "**/vss2",
    ]);
    assert_eq!(c, 0, "{err}");
    let mut tampered = nodbx.clone();
    let sec = find(&tampered, b"S\0e\0c\0M\0a\0i\0n\0") - 0x2000;
    tampered[sec] ^= 1;
    let timg = d.path().join("tampered.bin");
    std::fs::write(&timg, &tampered).unwrap();
    let scan = |image: &Path, extra: &[&str]| {
        let mut args = vec![
            "scan",
            image.to_str().unwrap(),
            "--manifest",
            man.to_str().unwrap(),
            "--insecure-unsigned",
            "--format",
            "json",
        ];
        args.extend_from_slice(extra);
        let (c, out) = run(&args);
        (c, serde_json::from_str::<Value>(&out).unwrap())
    };
    let (c, j) = scan(&img, &[]);
    assert_eq!(c, 1, "{j}");
    let (c, j) = scan(&img, &["--ignore-category", "configuration"]);
    assert_eq!(c, 0, "{j}");
    let (c, j) = scan(&timg, &["--ignore-category", "configuration"]);
    assert_eq!(c, 1, "{j}");
    let sev = |j: &Value, code: &str| {
        j["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["code"] == code)
            .map(|f| f["severity"].as_str().unwrap().to_string())
    };
    assert_eq!(sev(&j, "module-modified").as_deref(), Some("error"));
    assert_eq!(sev(&j, "dbx-missing").as_deref(), Some("info"));
    let (c, j) = scan(&timg, &["--fail-on", "error"]);
    assert_eq!(c, 1, "{j}");

    // audit: rows, summary and merge follow the same policy.
    let fleet = d.path().join("fleet");
    let mdir = d.path().join("manifests");
    std::fs::create_dir_all(&fleet).unwrap();
    std::fs::create_dir_all(&mdir).unwrap();
    std::fs::copy(&man, mdir.join("m.json")).unwrap();
    std::fs::copy(&img, fleet.join("nodbx.bin")).unwrap();
    let rows = d.path().join("rows.jsonl");
    let audit = |extra: &[&str]| {
        let mut args = vec![
            "audit",
            fleet.to_str().unwrap(),
            "--manifests",
            mdir.to_str().unwrap(),
            "--insecure-unsigned",
            "-q",
            "-o",
            rows.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        fwscan(&args)
    };
    let (c, _, err) = audit(&[]);
    assert_eq!(c, 1, "{err}");
    let (c, _, err) = audit(&["--ignore-category", "configuration"]);
    assert_eq!(c, 0, "{err}");
    let (c, _, _) = fwscan(&["merge", rows.to_str().unwrap()]);
    assert_eq!(c, 0);
}

/// `fwscan completions SHELL` for every shell and `fwscan man`, from the same definitions as `--help`.
#[test]
fn completions_and_man_page_are_generated() {
    let subcommands = [
        "inspect", "baseline", "scan", "check", "audit", "merge", "diff", "verify",
    ];
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let (c, out, err) = fwscan(&["completions", shell]);
        assert_eq!(c, 0, "{shell}: {err}");
        for s in subcommands {
            assert!(out.contains(s), "{shell} completion lacks {s}");
        }
        assert!(
            out.contains("fail-on"),
            "{shell} completion lacks --fail-on"
        );
    }
    let d = tempfile::tempdir().unwrap();
    let (_, bash, _) = fwscan(&["completions", "bash"]);
    let script = d.path().join("fwscan.bash");
    std::fs::write(&script, &bash).unwrap();
    let st = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .status()
        .unwrap();
    assert!(st.success(), "bash -n rejects the completion script");
    // The script really completes: load it and ask for the subcommands of `fwscan sc`.
    let probe = format!(
        "source {}; COMP_WORDS=(fwscan sc); COMP_CWORD=1; COMP_LINE='fwscan sc'; COMP_POINT=9; _fwscan fwscan sc fwscan; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display()
    );
    let out = Command::new("bash").arg("-c").arg(&probe).output().unwrap();
    let words = String::from_utf8_lossy(&out.stdout);
    assert!(
        words.lines().any(|w| w == "scan"),
        "completion of `sc`: {words:?}"
    );

    let (c, page, err) = fwscan(&["man"]);
    assert_eq!(c, 0, "{err}");
    assert!(
        page.starts_with(".ie") || page.contains(".TH fwscan 1"),
        "{page}"
    );
    for s in subcommands {
        assert!(page.contains(s), "man page lacks {s}");
    }
    let dir = d.path().join("man1");
    let (c, _, err) = fwscan(&["man", "--dir", dir.to_str().unwrap()]);
    assert_eq!(c, 0, "{err}");
    assert!(dir.join("fwscan-scan.1").is_file());
    // groff (man-db's formatter) renders every page without a warning.
    if Command::new("groff").arg("--version").output().is_err() {
        skip("groff not installed (Debian groff-base)");
        return;
    }
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        let out = Command::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .arg(&p)
            .output()
            .unwrap();
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "{}: {}",
            p.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The clean Debian images the UEFI tests use (see tests/uefi.rs).
const CHIPSEC_IMAGES: &[&str] = &[
    "/usr/share/OVMF/OVMF_CODE_4M.fd",
    "/usr/share/OVMF/OVMF_CODE_4M.secboot.fd",
    "/usr/share/OVMF/OVMF32_CODE_4M.secboot.fd",
    "/usr/share/qemu-efi-aarch64/QEMU_EFI.fd",
];

fn find_tool(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

/// `fwscan export --format chipsec-efilist` is byte-identical to the file CHIPSEC itself writes
/// (`chipsec_main -i -n -m tools.uefi.scan_image -a generate,OUT,IMAGE`, CHIPSEC from PyPI).
#[test]
fn chipsec_efilist_export_equals_chipsec_output() {
    let Some(chipsec) = std::env::var_os("FWSCAN_CHIPSEC_MAIN")
        .map(PathBuf::from)
        .or_else(|| find_tool("chipsec_main"))
    else {
        skip("chipsec_main not installed (pip install chipsec)");
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let mut compared = 0;
    for image in CHIPSEC_IMAGES {
        if !Path::new(image).is_file() {
            skip(&format!(
                "{image} not installed (Debian ovmf, ovmf-ia32, qemu-efi-aarch64)"
            ));
            continue;
        }
        let img = d.path().join(Path::new(image).file_name().unwrap());
        std::fs::copy(image, &img).unwrap();
        let theirs = d.path().join("chipsec.json");
        let out = Command::new(&chipsec)
            .args(["-i", "-n", "-m", "tools.uefi.scan_image", "-a"])
            .arg(format!("generate,{},{}", theirs.display(), img.display()))
            .current_dir(d.path())
            .output()
            .expect("run chipsec_main");
        assert!(
            out.status.success() && theirs.is_file(),
            "chipsec failed on {image}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let ours = d.path().join("fwscan.json");
        let (c, _, err) = fwscan(&[
            "export",
            img.to_str().unwrap(),
            "--format",
            "chipsec-efilist",
            "-o",
            ours.to_str().unwrap(),
        ]);
        assert_eq!(c, 0, "{err}");
        let (a, b) = (
            std::fs::read(&theirs).unwrap(),
            std::fs::read(&ours).unwrap(),
        );
        let n = serde_json::from_slice::<Value>(&a)
            .unwrap()
            .as_object()
            .unwrap()
            .len();
        assert!(n > 50, "{image}: CHIPSEC listed only {n} executables");
        assert!(
            a == b,
            "{image}: export differs from CHIPSEC's output ({} vs {} bytes)",
            b.len(),
            a.len()
        );
        println!("{image}: {n} executables, byte-identical to CHIPSEC");
        compared += 1;
        std::fs::remove_file(&theirs).unwrap();
    }
    if compared == 0 {
        skip("no Debian UEFI image installed");
    }
}

/// Every PE/TE section carries `body-sha256` in inspect JSON and in manifests.
#[test]
fn pe_and_te_sections_carry_their_body_sha256() {
    let image = "/usr/share/qemu-efi-aarch64/QEMU_EFI.fd";
    if !Path::new(image).is_file() {
        skip("QEMU_EFI.fd not installed (Debian qemu-efi-aarch64)");
        return;
    }
    let (c, out, err) = fwscan(&["inspect", image, "--format", "json"]);
    assert_eq!(c, 0, "{err}");
    let j: Value = serde_json::from_str(&out).unwrap();
    let (mut pe, mut te) = (0, 0);
    fn walk(n: &Value, f: &mut dyn FnMut(&Value)) {
        f(n);
        for c in n["children"].as_array().into_iter().flatten() {
            walk(c, f);
        }
    }
    let bytes = std::fs::read(image).unwrap();
    walk(&j["root"], &mut |n| {
        let t = n["attrs"]["type"].as_str().unwrap_or("");
        if n["kind"] == "section" && (t == "pe32" || t == "te") {
            let d = n["attrs"]["body-sha256"].as_str().expect("body-sha256");
            if t == "pe32" {
                pe += 1;
            } else {
                te += 1;
            }
            // Recompute from the file for sections in image space (4-byte section header).
            if n["space"].as_str().unwrap_or("image") == "image" {
                let (o, s) = (
                    n["offset"].as_u64().unwrap() as usize,
                    n["size"].as_u64().unwrap() as usize,
                );
                let body = &bytes[o + 4..o + s];
                assert_eq!(d, fwscan::hash::digest(fwscan::hash::Alg::Sha256, body));
            }
        }
    });
    assert!(pe > 10 && te > 0, "pe32 {pe}, te {te}");
    let d = tempfile::tempdir().unwrap();
    let m = d.path().join("m.json");
    let (c, _, err) = fwscan(&["baseline", image, "-o", m.to_str().unwrap()]);
    assert_eq!(c, 0, "{err}");
    let text = std::fs::read_to_string(&m).unwrap();
    assert!(text.matches("\"body-sha256\"").count() >= pe + te);
}

/// `fwscan export --format flashrom-layout` is accepted by Debian's flashrom: every region it names is
/// read back by `flashrom -p dummy:emulate=VARIABLE_SIZE,... --layout FILE -i NAME -r OUT` and holds the
/// image's bytes at that place; fwscan reads the layout too.
#[test]
fn flashrom_layout_export_is_accepted_by_flashrom() {
    let Some(flashrom) = find_tool("flashrom")
        .or_else(|| Some(PathBuf::from("/usr/sbin/flashrom")).filter(|p| p.is_file()))
    else {
        skip("flashrom not installed (Debian flashrom)");
        return;
    };
    let Some(bios) = ovmf(&["OVMF_VARS_4M.ms.fd", "OVMF_CODE_4M.fd"]) else {
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let ifd = spi_image(&bios, [0, 0x1B, 0x21, 1, 2, 3]);
    for (name, bytes, min_regions) in [("ifd.bin", &ifd, 4), ("uefi.bin", &bios, 2)] {
        let img = d.path().join(name);
        std::fs::write(&img, bytes).unwrap();
        let (c, layout, err) = fwscan(&[
            "export",
            img.to_str().unwrap(),
            "--format",
            "flashrom-layout",
        ]);
        assert_eq!(c, 0, "{err}");
        let lpath = d.path().join(format!("{name}.layout"));
        std::fs::write(&lpath, &layout).unwrap();
        let regions: Vec<(usize, usize, String)> = layout
            .lines()
            .map(|l| {
                let (r, n) = l.split_once(' ').unwrap();
                let (s, e) = r.split_once(':').unwrap();
                (
                    usize::from_str_radix(s, 16).unwrap(),
                    usize::from_str_radix(e, 16).unwrap(),
                    n.to_string(),
                )
            })
            .collect();
        assert!(regions.len() >= min_regions, "{name}: {layout}");
        // The regions tile the image.
        assert_eq!(regions[0].0, 0);
        assert_eq!(regions.last().unwrap().1 + 1, bytes.len(), "{layout}");
        for (s, e, n) in &regions {
            let chip = d.path().join("chip.bin");
            std::fs::write(&chip, bytes).unwrap();
            let out = d.path().join("read.bin");
            let _ = std::fs::remove_file(&out);
            let o = Command::new(&flashrom)
                .arg("-p")
                .arg(format!(
                    "dummy:emulate=VARIABLE_SIZE,size={},image={}",
                    bytes.len(),
                    chip.display()
                ))
                .arg("--layout")
                .arg(&lpath)
                .args(["-i", n, "-r"])
                .arg(&out)
                .output()
                .unwrap();
            let log = String::from_utf8_lossy(&o.stdout).to_string()
                + &String::from_utf8_lossy(&o.stderr);
            assert!(o.status.success(), "{name} region {n}: {log}");
            assert!(log.contains(&format!("Using region: \"{n}\"")), "{log}");
            let read = std::fs::read(&out).unwrap();
            assert_eq!(read.len(), bytes.len());
            assert!(read[*s..=*e] == bytes[*s..=*e], "{name} region {n}");
        }
        // fwscan reads its own export.
        let (c, _, err) = fwscan(&[
            "inspect",
            img.to_str().unwrap(),
            "--layout",
            lpath.to_str().unwrap(),
        ]);
        assert_eq!(c, 0, "{err}");
    }
}

// ---------------------------------------------------------------------------------------------------
// A real scheduler: a one-node Slurm cluster on localhost runs docs/slurm/audit-array.sh
// ---------------------------------------------------------------------------------------------------

/// The daemons of a throw-away cluster; stopped (by their own pids) when dropped, also on panic.
struct Cluster {
    dir: PathBuf,
    conf: PathBuf,
}

impl Cluster {
    fn pid(&self, name: &str) -> Option<i32> {
        std::fs::read_to_string(self.dir.join(format!("{name}.pid")))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    fn cmd(&self, prog: &str) -> Command {
        let mut c = Command::new(prog);
        c.env("SLURM_CONF", &self.conf);
        c
    }

    fn out(&self, prog: &str, args: &[&str]) -> String {
        let o = self.cmd(prog).args(args).output().unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn log(&self) -> String {
        ["slurmctld.log", "slurmd.log", "munged.log"]
            .iter()
            .map(|f| {
                let t = std::fs::read_to_string(self.dir.join(f)).unwrap_or_default();
                let tail: Vec<&str> = t.lines().rev().take(15).collect();
                format!(
                    "--- {f}\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Waits (bounded) until `f` holds.
    fn wait(&self, what: &str, secs: u64, mut f: impl FnMut() -> bool) {
        let t0 = std::time::Instant::now();
        while !f() {
            assert!(
                t0.elapsed().as_secs() < secs,
                "timed out after {secs} s waiting for {what}\n{}",
                self.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
    }

    /// Waits until no element of job `id` is queued or running.
    fn wait_job(&self, id: &str, secs: u64) {
        self.wait(&format!("job {id} to finish"), secs, || {
            self.out("squeue", &["-h", "-j", id, "-o", "%i"])
                .trim()
                .is_empty()
        });
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for name in ["slurmd", "slurmctld", "munged"] {
            if let Some(pid) = self.pid(name) {
                let _ = Command::new("kill").arg(pid.to_string()).status();
                // Bounded wait for it to go away, then SIGKILL.
                for _ in 0..40 {
                    if !Path::new(&format!("/proc/{pid}")).exists() {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                if Path::new(&format!("/proc/{pid}")).exists() {
                    let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
                }
            }
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts munged, slurmctld and slurmd (as root) with a configuration in `dir`, or says why not.
fn start_cluster(dir: &Path) -> Result<Cluster, String> {
    for t in [
        "munged",
        "slurmctld",
        "slurmd",
        "sbatch",
        "squeue",
        "scancel",
        "sinfo",
    ] {
        if find_tool(t).is_none() && !Path::new("/usr/sbin").join(t).is_file() {
            return Err(format!("`{t}` not installed (Debian slurm-wlm, munge)"));
        }
    }
    if !Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
    {
        return Err("not root: the test cluster's daemons run as root".into());
    }
    let d = dir.display();
    let key: Vec<u8> = noise(1024, 99);
    std::fs::write(dir.join("munge.key"), key).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dir.join("munge.key"),
        std::fs::Permissions::from_mode(0o400),
    )
    .unwrap();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    for s in ["state", "spool"] {
        std::fs::create_dir_all(dir.join(s)).unwrap();
    }
    let conf = dir.join("slurm.conf");
    std::fs::write(
        &conf,
        format!(
            "ClusterName=fwscantest\nSlurmctldHost=localhost\nSlurmUser=root\nSlurmdUser=root\n\
             AuthType=auth/munge\nAuthInfo=socket={d}/munge.sock\nCredType=cred/munge\n\
             StateSaveLocation={d}/state\nSlurmdSpoolDir={d}/spool\n\
             SlurmctldPidFile={d}/slurmctld.pid\nSlurmdPidFile={d}/slurmd.pid\n\
             SlurmctldPort={}\nSlurmdPort={}\n\
             SlurmctldLogFile={d}/slurmctld.log\nSlurmdLogFile={d}/slurmd.log\n\
             ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\nSchedulerType=sched/builtin\n\
             SelectType=select/cons_tres\nSelectTypeParameters=CR_Core\nReturnToService=2\n\
             MpiDefault=none\nJobCompType=jobcomp/none\nAccountingStorageType=accounting_storage/none\n\
             JobAcctGatherType=jobacct_gather/none\nKillWait=2\nMinJobAge=300\n\
             NodeName=localhost CPUs=2 RealMemory=2048 State=UNKNOWN\n\
             PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP\n",
            free_port(),
            free_port()
        ),
    )
    .unwrap();
    let c = Cluster {
        dir: dir.to_path_buf(),
        conf: conf.clone(),
    };
    let run = |prog: &str, args: &[String]| {
        let o = c.cmd(prog).args(args).output().unwrap();
        assert!(
            o.status.success(),
            "{prog} failed: {}{}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
            c.log()
        );
    };
    run(
        "munged",
        &[
            format!("--key-file={d}/munge.key"),
            format!("--socket={d}/munge.sock"),
            format!("--pid-file={d}/munged.pid"),
            format!("--log-file={d}/munged.log"),
            format!("--seed-file={d}/munged.seed"),
            "--force".into(),
        ],
    );
    c.wait("munged", 20, || c.pid("munged").is_some());
    let f = conf.display().to_string();
    run("slurmctld", &["-f".into(), f.clone()]);
    run("slurmd", &["-f".into(), f]);
    c.wait("the node to be idle", 60, || {
        c.out("sinfo", &["-h", "-o", "%T"]).trim() == "idle"
    });
    Ok(c)
}

/// Issue 13.5: `docs/slurm/audit-array.sh` (parameterised by environment, unedited) runs as a 4-task array
/// over a generated fleet of 240 images; `fwscan merge` of the shards gives the summary and exit code of an
/// unsharded run. A task killed mid-run (`scancel` of one array element) makes `merge` report the run as
/// not finished, exit 2.
#[test]
fn slurm_array_audit_merges_to_the_unsharded_result() {
    let base = tempfile::Builder::new()
        .prefix("fws")
        .tempdir_in("/tmp")
        .unwrap();
    let cluster_dir = base.path().join("c");
    std::fs::create_dir_all(&cluster_dir).unwrap();
    let cluster = match start_cluster(&cluster_dir) {
        Ok(c) => c,
        Err(why) => {
            skip(&why);
            return;
        }
    };
    // The fleet: two products (signed manifests with match rules), clean, tampered and unknown images.
    let dumps = base.path().join("dumps");
    let mdir = base.path().join("manifests");
    let keys = base.path().join("keys");
    for p in [&dumps, &mdir, &keys] {
        std::fs::create_dir_all(p).unwrap();
    }
    let key = keys.join("k.key");
    let (c, entry, err) = fwscan(&[
        "keygen",
        "-s",
        key.to_str().unwrap(),
        "-p",
        keys.join("k.pub").to_str().unwrap(),
        "--unencrypted",
    ]);
    assert_eq!(c, 0, "{err}");
    let entry: Value = serde_json::from_str(&entry).unwrap();
    let trust = keys.join("trust.json");
    std::fs::write(
        &trust,
        serde_json::json!({"schema_version": 1, "keys": [entry], "rules": []}).to_string(),
    )
    .unwrap();
    let mut goldens = Vec::new();
    for (i, name) in ["ACME-X1", "ACME-X2"].iter().enumerate() {
        let mut g = noise(0x8000, 11 + i as u32);
        let tag = format!("{name} BIOS v1.0");
        g[0x100..0x100 + tag.len()].copy_from_slice(tag.as_bytes());
        let gp = keys.join(format!("{name}.bin"));
        std::fs::write(&gp, &g).unwrap();
        let m = mdir.join(format!("{name}.json"));
        let (c, _, err) = fwscan(&[
            "baseline",
            gp.to_str().unwrap(),
            "-o",
            m.to_str().unwrap(),
            "--product",
            name,
            "--version",
            "1.0",
            "--match-string",
            &tag,
        ]);
        assert_eq!(c, 0, "{err}");
        let (c, _, err) = fwscan(&["sign", m.to_str().unwrap(), "--key", key.to_str().unwrap()]);
        assert_eq!(c, 0, "{err}");
        goldens.push(g);
    }
    for i in 0..240usize {
        let mut img = goldens[i % 2].clone();
        if i % 10 == 3 {
            img[0x4000 + i] ^= 0xFF; // tampered
        }
        if i % 40 == 7 {
            img = noise(0x8000, 1000 + i as u32); // nobody's firmware
        }
        let sub = dumps.join(format!("rack{:02}", i / 24));
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(sub.join(format!("node{i:03}.bin")), img).unwrap();
    }

    // The unsharded run.
    let (want_code, want_summary, err) = fwscan(&[
        "audit",
        dumps.to_str().unwrap(),
        "--manifests",
        mdir.to_str().unwrap(),
        "--trust",
        trust.to_str().unwrap(),
        "-q",
        "--no-timing",
        "--format",
        "json",
        "-o",
        base.path().join("all.jsonl").to_str().unwrap(),
    ]);
    assert_eq!(want_code, 1, "{err}");

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/slurm/audit-array.sh");
    let work = base.path().join("work");
    std::fs::create_dir_all(work.join("logs")).unwrap();
    let submit_to = |results: &str, fwscan_bin: &str, dumps: &Path| -> String {
        let o = cluster
            .cmd("sbatch")
            .args([
                "--parsable",
                "--array=0-3",
                "--cpus-per-task=1",
                "--mem=100M",
            ])
            .arg(format!("--chdir={}", work.display()))
            .env("FWSCAN", fwscan_bin)
            .env("FWSCAN_DUMPS", dumps)
            .env("FWSCAN_MANIFESTS", &mdir)
            .env("FWSCAN_TRUST", &trust)
            .env("FWSCAN_RESULTS", work.join(results))
            .arg(&script)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "sbatch: {}\n{}",
            String::from_utf8_lossy(&o.stderr),
            cluster.log()
        );
        String::from_utf8_lossy(&o.stdout)
            .trim()
            .split(';')
            .next()
            .unwrap()
            .to_string()
    };
    let submit = |results: &str, fwscan_bin: &str| submit_to(results, fwscan_bin, &dumps);
    let shard_files = |dir: &str| -> Vec<String> {
        (0..4)
            .map(|i| {
                work.join(dir)
                    .join(format!("audit-{i}.jsonl"))
                    .display()
                    .to_string()
            })
            .collect()
    };
    let merge = |files: &[String]| {
        let mut args = vec!["merge", "--no-timing", "--format", "json"];
        args.extend(files.iter().map(String::as_str));
        fwscan(&args)
    };

    let job = submit("results", BIN);
    cluster.wait_job(&job, 180);
    let files = shard_files("results");
    for f in &files {
        assert!(Path::new(f).is_file(), "{f} missing\n{}", cluster.log());
    }
    let (code, summary, err) = merge(&files);
    assert_eq!(code, want_code, "{err}");
    assert_eq!(
        summary, want_summary,
        "merged summary differs from the unsharded run"
    );
    let s: Value = serde_json::from_str(&summary).unwrap();
    println!(
        "slurm array of 4: merged summary equals the unsharded run ({} images)",
        s["images"]
    );

    // A task killed mid-run: the wrapper stops fwscan of task 1 once it has written rows; scancel kills it.
    let wrapper = base.path().join("fwscan-wrapper.sh");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\n\"{BIN}\" \"$@\" &\nchild=$!\nif [ \"$SLURM_ARRAY_TASK_ID\" = 1 ]; then\n  \
             out=\"$FWSCAN_RESULTS/audit-1.jsonl\"\n  \
             i=0; while [ ! -s \"$out\" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done\n  \
             kill -STOP $child\n  touch \"$FWSCAN_RESULTS/stopped\"\nfi\nwait $child\n"
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    // Its fleet: large (sparse) images, so that a shard takes long enough to be caught mid-run.
    let big = base.path().join("dumps-big");
    std::fs::create_dir_all(&big).unwrap();
    for i in 0..40 {
        let f = std::fs::File::create(big.join(format!("big{i:02}.bin"))).unwrap();
        f.set_len(128 << 20).unwrap();
    }
    let job = submit_to("killed", wrapper.to_str().unwrap(), &big);
    let stopped = work.join("killed/stopped");
    cluster.wait("task 1 to be running with its header written", 120, || {
        stopped.exists()
    });
    let partial = std::fs::read_to_string(work.join("killed/audit-1.jsonl")).unwrap();
    assert!(
        partial.starts_with("{") && !partial.contains("\"kind\":\"end\""),
        "task 1 was not caught mid-run: {partial}"
    );
    let o = cluster
        .cmd("scancel")
        .arg(format!("{job}_1"))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "scancel: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    cluster.wait_job(&job, 120);
    let files = shard_files("killed");
    let (code, text, err) = merge(&files);
    assert_eq!(code, 2, "{text}{err}");
    assert!(
        format!("{text}{err}").contains("did not finish"),
        "merge does not say the run did not finish: {text}{err}"
    );
    drop(cluster);
}

/// The Kubernetes Indexed Job example validates offline against the API types of the official client
/// (docs/k8s/validate.py); a misspelt field, a wrong type and a missing required field are caught.
#[test]
fn kubernetes_indexed_job_example_validates_offline() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let validator = root.join("docs/k8s/validate.py");
    let job = root.join("docs/k8s/indexed-job.yaml");
    let run = |f: &Path| {
        Command::new("python3")
            .arg(&validator)
            .arg(f)
            .output()
            .unwrap()
    };
    let o = run(&job);
    if o.status.code() == Some(2) {
        skip(&format!(
            "cannot validate: {} (pip install kubernetes)",
            String::from_utf8_lossy(&o.stderr).trim()
        ));
        return;
    }
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let text = std::fs::read_to_string(&job).unwrap();
    let d = tempfile::tempdir().unwrap();
    for (what, bad) in [
        (
            "misspelt field",
            text.replace("backoffLimitPerIndex", "backoffLimitPerIndx"),
        ),
        (
            "wrong type",
            text.replace("parallelism: 8", "parallelism: \"8\""),
        ),
        (
            "missing container name",
            text.replace(
                "        - name: fwscan\n",
                "        - imagePullPolicy: Always\n",
            ),
        ),
    ] {
        assert_ne!(bad, text, "{what}: the mutation did not apply");
        let f = d.path().join("bad.yaml");
        std::fs::write(&f, bad).unwrap();
        assert_eq!(run(&f).status.code(), Some(1), "{what} not caught");
    }
}

/// Issue 15.10: an image whose path is longer than PATH_MAX (18 levels of 250-character names, 4,5xx
/// bytes) is scanned: the walk lists and the audit reads it relative to its directory's descriptor. On
/// the path alone the kernel refuses it (`ENAMETOOLONG`) and it was a `read-error`.
#[test]
fn images_under_paths_longer_than_path_max_are_scanned() {
    use rustix::fs::{Mode, OFlags};
    let Some(bios) = ovmf(&["OVMF_VARS_4M.ms.fd", "OVMF_CODE_4M.fd"]) else {
        return;
    };
    let (d, fleet, mdir) = fleet_dirs();
    baseline(&bios, &mdir, "ACME", &[]);
    let mut m = bios.clone();
    change_nvram(&mut m, 0);
    // Built one level at a time relative to the parent's descriptor (no chdir: tests share the cwd).
    let mut dir =
        rustix::fs::open(&fleet, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
    let mut rel = Vec::new();
    for level in 0..18 {
        let name = format!("{level:02}{}", "d".repeat(248));
        rustix::fs::mkdirat(&dir, name.as_str(), Mode::from_raw_mode(0o755)).unwrap();
        dir = rustix::fs::openat(
            &dir,
            name.as_str(),
            OFlags::RDONLY | OFlags::DIRECTORY,
            Mode::empty(),
        )
        .unwrap();
        rel.push(name);
    }
    let f = rustix::fs::openat(
        &dir,
        "machine.bin",
        OFlags::WRONLY | OFlags::CREATE,
        Mode::from_raw_mode(0o644),
    )
    .unwrap();
    std::io::Write::write_all(&mut std::fs::File::from(f), &m).unwrap();
    rel.push("machine.bin".into());
    let rel = rel.join("/");
    assert!(fleet.join(&rel).as_os_str().len() > 4096);
    // The short neighbour is scanned as before.
    std::fs::write(fleet.join("short.bin"), &m).unwrap();

    let (code, rows) = audit(&fleet, &mdir, &d.path().join("rows.jsonl"));
    assert_clean_by_structure(&rows, "short.bin", "ACME");
    assert_clean_by_structure(&rows, &rel, "ACME");
    assert!(rows.iter().all(|r| r["error"].is_null()), "{rows:?}");
    assert_eq!(code, 0);
}

/// Issue 15.1 (audit bound to the hardware identity): two products whose manifests match the same content
/// equally. A dump whose sidecar `X.bin.product` (or a `--product-map` entry) says product A is compared
/// with A's manifest, never B's, although B's matches it byte for byte; a machine of a product with no
/// manifest is unknown firmware, not a clean row of another product; the sidecar itself is not an image.
/// On today's main the sidecars are ignored (ambiguous-manifest) and scanned as images.
#[test]
fn an_image_is_only_compared_with_manifests_of_its_hardware_product() {
    let Some(bios) = ovmf(&["OVMF_VARS_4M.ms.fd", "OVMF_CODE_4M.fd"]) else {
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let (fleet, mdir) = (d.path().join("fleet"), d.path().join("manifests"));
    std::fs::create_dir_all(fleet.join("rack7")).unwrap();
    std::fs::create_dir_all(&mdir).unwrap();
    baseline(&bios, &mdir, "ACME-A", &[]);
    baseline(&bios, &mdir, "ACME-B", &[]);
    let mut m = bios.clone();
    change_nvram(&mut m, 0);
    for n in [
        "a.bin",
        "b.bin",
        "c.bin",
        "none.bin",
        "rack7/x.bin",
        "exact.bin",
    ] {
        std::fs::write(fleet.join(n), if n == "exact.bin" { &bios } else { &m }).unwrap();
    }
    std::fs::write(
        fleet.join("a.bin.product"),
        "# dmidecode -s system-product-name\nACME-A\n",
    )
    .unwrap();
    std::fs::write(fleet.join("b.bin.product"), "ACME-B\n").unwrap();
    std::fs::write(fleet.join("c.bin.product"), "ACME-C\n").unwrap();
    // Byte-identical to both golden images: still only the machine's product.
    std::fs::write(fleet.join("exact.bin.product"), "ACME-B").unwrap();
    let pmap = d.path().join("products.json");
    std::fs::write(
        &pmap,
        r#"[{"path": "rack7/**", "product": "ACME-A"}, {"path": "*.bin", "product": "ACME-C"}]"#,
    )
    .unwrap();
    let out = d.path().join("rows.jsonl");
    let (_, _, err) = fwscan(&[
        "audit",
        fleet.to_str().unwrap(),
        "--manifests",
        mdir.to_str().unwrap(),
        "--insecure-unsigned",
        "--product-map",
        pmap.to_str().unwrap(),
        "-q",
        "--no-timing",
        "-o",
        out.to_str().unwrap(),
    ]);
    let all: Vec<Value> = std::fs::read_to_string(&out)
        .unwrap_or_else(|e| panic!("{e}: {err}"))
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .collect();
    let rows: Vec<Value> = all
        .iter()
        .filter(|r| r["kind"] == "image")
        .cloned()
        .collect();
    let product = |name: &str| row(&rows, name)["manifest"]["product"]["product"].clone();
    for (name, want) in [
        ("a.bin", "ACME-A"),
        ("b.bin", "ACME-B"),
        ("rack7/x.bin", "ACME-A"),
    ] {
        assert_eq!(
            row(&rows, name)["verdict"],
            "clean",
            "{name}: {}",
            row(&rows, name)
        );
        assert_eq!(product(name), want, "{name}");
    }
    let e = row(&rows, "exact.bin");
    assert_eq!(e["verdict"], "clean", "{e}");
    assert_eq!(e["manifest"]["product"]["product"], "ACME-B", "{e}");
    // ACME-C has no manifest: both A and B match the content, neither is chosen.
    for name in ["c.bin", "none.bin"] {
        let r = row(&rows, name);
        assert_eq!(r["verdict"], "findings", "{name}: {r}");
        assert!(r["manifest"].is_null(), "{name}: {r}");
        assert_eq!(r["findings"][0]["code"], "unknown-firmware", "{name}: {r}");
        assert!(
            r["findings"][0]["message"]
                .as_str()
                .unwrap()
                .contains("ACME-C"),
            "{name}: {r}"
        );
    }
    // The sidecars are read with their dumps, not scanned.
    assert!(!rows
        .iter()
        .any(|r| r["path"].as_str().unwrap().ends_with(".product")));
    assert_eq!(
        all.iter()
            .filter(|r| r["kind"] == "skipped" && r["reason"] == "product-sidecar")
            .count(),
        4
    );
    // Without an identity the two products are ambiguous, as before.
    std::fs::remove_file(fleet.join("b.bin.product")).unwrap();
    let (code, rows) = audit(&fleet, &mdir, &d.path().join("rows2.jsonl"));
    assert_eq!(code, 2);
    assert_eq!(row(&rows, "b.bin")["error"]["code"], "ambiguous-manifest");
    assert_eq!(
        row(&rows, "a.bin")["manifest"]["product"]["product"],
        "ACME-A"
    );
}

/// Issue 20: selection is hash-first. A dump whose compressed DXE volume differs from the manifest (a
/// driver patched, a module implanted, both recompressed with every checksum fixed) is still matched to
/// its own product by structure, and the comparison names the module; another product of the same size
/// in the catalogue does not take it. A per-machine dump is matched without decompressing anything: with
/// a decompression budget of zero it is still matched by structure and clean (before issue 20 selection
/// decompressed every compressed volume to compute identity keys, so the same audit found it
/// `unknown-firmware`), while the patched dump, whose compressed volume must be opened, is not clean.
#[test]
fn a_dump_whose_compressed_volume_differs_gets_its_manifest_and_the_implant_is_named() {
    let Some(bios) = ovmf(&["OVMF_VARS_4M.ms.fd", "OVMF_CODE_4M.fd"]) else {
        return;
    };
    let Some(other_bios) = ovmf(&["OVMF_VARS_4M.ms.fd", "OVMF_CODE_4M.secboot.fd"]) else {
        return;
    };
    use fwscan::formats::uefi::build as b;
    let (d, fleet, mdir) = fleet_dirs();
    baseline(&bios, &mdir, "ACME", &[]);
    baseline(&other_bios, &mdir, "OTHER", &[]);

    // A driver of the compressed DXE volume patched (one byte of its PE image).
    let (mut patched, guid, name) = crate::uefi::patch_dxe_driver(&bios, 10);
    change_nvram(&mut patched, 0);
    std::fs::write(fleet.join("patched.bin"), &patched).unwrap();
    // A module implanted in the DXE volume's free space.
    let tree = crate::uefi::parse_bytes(bios.clone(), true);
    let c = crate::uefi::compact(&bios, &tree);
    let fv = crate::uefi::find(&tree, &|r| {
        r.attr_str("guid") == Some("7CB8BDC9-F8EB-4F34-AAEA-3EE4AF6516A1")
            && r.kind == fwscan::region::RegionKind::Volume
    })
    .expect("DXEFV");
    let free = fv
        .children
        .iter()
        .find(|r| r.kind == fwscan::region::RegionKind::FreeSpace)
        .expect("free space in DXEFV");
    let donor = crate::uefi::dxe_driver(&tree, 3);
    let pe = crate::uefi::find(&donor, &|r| r.attr_str("type") == Some("pe32")).unwrap();
    let implant_guid = "DEADBEEF-0BAD-4C0D-8E11-0123456789AB";
    let file = b::file(
        b::guid_bytes(implant_guid),
        0x07,
        &b::sections(&[pe.bytes().to_vec(), b::ui("Implant")]),
        0,
    );
    // The decompressed bytes of the LZMA section (the buffer its children live in).
    let lzma = crate::uefi::find(&tree, &|r| {
        r.attr_str("guid") == Some("EE4E5898-3914-4259-9D6E-DC7BD79403CF")
            && r.kind == fwscan::region::RegionKind::Section
    })
    .expect("LZMA section");
    let mut dxe = lzma.children[0].data.to_vec();
    let at = free.offset as usize;
    dxe[at..at + file.len()].copy_from_slice(&file);
    let mut implanted = crate::uefi::rebuild(&bios, &c, &dxe);
    change_nvram(&mut implanted, 0);
    std::fs::write(fleet.join("implanted.bin"), &implanted).unwrap();
    // An honest machine.
    let mut honest = bios.clone();
    change_nvram(&mut honest, 0);
    std::fs::write(fleet.join("honest.bin"), &honest).unwrap();

    let (code, rows) = audit(&fleet, &mdir, &d.path().join("rows.jsonl"));
    assert_eq!(code, 1);
    assert_clean_by_structure(&rows, "honest.bin", "ACME");
    assert_names(&rows, "patched.bin", "ACME", "module-modified", &guid);
    assert!(
        codes_and_paths(row(&rows, "patched.bin"))
            .iter()
            .any(|(c, p)| c == "module-modified" && p.contains(&name)),
        "the patched driver is named"
    );
    assert_names(
        &rows,
        "implanted.bin",
        "ACME",
        "module-added",
        &format!("file[{implant_guid}:Implant]"),
    );
    for n in ["patched.bin", "implanted.bin"] {
        assert_eq!(row(&rows, n)["manifest"]["selected_by"], "structure");
    }

    // No decompression budget at all: the honest machine needs none; the patched dump cannot be
    // decided clean.
    let out = d.path().join("rows0.jsonl");
    let (code0, _, err) = fwscan(&[
        "audit",
        fleet.to_str().unwrap(),
        "--manifests",
        mdir.to_str().unwrap(),
        "--insecure-unsigned",
        "-q",
        "--no-timing",
        "--max-decompressed",
        "0",
        "-o",
        out.to_str().unwrap(),
    ]);
    let rows0: Vec<Value> = std::fs::read_to_string(&out)
        .unwrap_or_else(|e| panic!("{e}: {err}"))
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["kind"] == "image")
        .collect();
    assert_ne!(code0, 0);
    assert_clean_by_structure(&rows0, "honest.bin", "ACME");
    assert_eq!(row(&rows0, "honest.bin")["manifest"]["score"], 1000);
    for n in ["patched.bin", "implanted.bin"] {
        assert_ne!(row(&rows0, n)["verdict"], "clean", "{n}");
    }

    // The hash-first score is the score of the eagerly parsed tree; it leaves the honest machine's
    // compressed volume unopened and opens the patched one.
    use fwscan::audit::catalogue::{structure_score, structure_score_lazy};
    let m = fwscan::manifest::Manifest::load(&mdir.join("ACME.json")).unwrap();
    let lazy_opts = fwscan::scan::Scanner::new(fwscan::formats::ParseOptions::default(), None)
        .parse_options(Some(&m));
    let eager_opts = fwscan::formats::ParseOptions {
        eager: true,
        ..lazy_opts.clone()
    };
    let mut honest_unopened = 0;
    for (n, img) in [
        ("honest", &honest),
        ("patched", &patched),
        ("implanted", &implanted),
        ("other product", &other_bios),
    ] {
        let data = std::sync::Arc::new(fwscan::input::Data::Owned(img.clone()));
        let eager = fwscan::formats::parse_image(data.clone(), &eager_opts);
        let mut lazy = fwscan::formats::parse_image(data, &lazy_opts);
        let score = structure_score_lazy(&m, &mut lazy);
        assert_eq!(score, structure_score(&m, &eager), "{n}");
        let mut unopened = 0;
        lazy.walk(&mut |r| unopened += usize::from(r.is_lazy()));
        if n == "honest" {
            honest_unopened = unopened;
            assert!(
                unopened > 0,
                "the honest machine's compressed volume was opened"
            );
        } else {
            assert!(
                unopened < honest_unopened,
                "{n}: the changed volume was not opened"
            );
        }
        println!("{n}: structure score {score:?}, {unopened} nodes left unparsed");
    }
}

/// `audit --cache DIR` (issue 20, point 2): the rows of an audit with a cold cache, a warm one, one a killed
/// run left behind, and one whose every entry had a byte flipped are the rows of an audit without a
/// cache. The fleet shares one patched compressed DXE volume (its dumps differ in NVRAM), so its second
/// dump is served from memory and a rerun from disk.
#[test]
fn a_killed_cached_audit_and_a_flipped_cache_byte_change_no_verdict() {
    let Some(bios) = ovmf(&["OVMF_VARS_4M.ms.fd", "OVMF_CODE_4M.fd"]) else {
        return;
    };
    let (d, fleet, mdir) = fleet_dirs();
    baseline(&bios, &mdir, "ACME", &[]);
    let (patched, guid, _) = crate::uefi::patch_dxe_driver(&bios, 10);
    for i in 0..6 {
        let mut p = patched.clone();
        change_nvram(&mut p, i);
        std::fs::write(fleet.join(format!("patched{i}.bin")), &p).unwrap();
        let mut h = bios.clone();
        change_nvram(&mut h, i);
        std::fs::write(fleet.join(format!("honest{i}.bin")), &h).unwrap();
    }
    let run = |tag: &str, cache: Option<&Path>| -> (i32, Vec<Value>, String) {
        let out = d.path().join(format!("rows-{tag}.jsonl"));
        let mut args = vec![
            "audit".to_string(),
            fleet.display().to_string(),
            "--manifests".into(),
            mdir.display().to_string(),
            "--insecure-unsigned".into(),
            "--no-timing".into(),
            "-o".into(),
            out.display().to_string(),
        ];
        match cache {
            Some(c) => args.extend(["--cache".into(), c.display().to_string()]),
            None => args.push("--no-cache".into()),
        }
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, _, err) = fwscan(&a);
        let mut rows: Vec<Value> = std::fs::read_to_string(&out)
            .unwrap_or_else(|e| panic!("{e}: {err}"))
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|r| r["kind"] == "image")
            .collect();
        rows.sort_by(|a, b| a["path"].as_str().cmp(&b["path"].as_str()));
        (code, rows, err)
    };
    let stat = |err: &str, what: &str| -> u64 {
        let line = err
            .lines()
            .find(|l| l.starts_with("decompression cache:"))
            .unwrap_or_else(|| panic!("no cache statistics in: {err}"));
        line.split(' ')
            .find_map(|w| w.strip_prefix(&format!("{what}=")))
            .unwrap_or_else(|| panic!("{what} in {line}"))
            .parse()
            .unwrap()
    };
    let (code, reference, _) = run("none", None);
    assert_eq!(code, 1);
    for i in 0..6 {
        assert_names(
            &reference,
            &format!("patched{i}.bin"),
            "ACME",
            "module-modified",
            &guid,
        );
        assert_clean_by_structure(&reference, &format!("honest{i}.bin"), "ACME");
    }

    let cache = d.path().join("cache");
    let (code, cold, err) = run("cold", Some(&cache));
    assert_eq!((code, &cold), (1, &reference));
    assert!(stat(&err, "written") >= 1, "{err}");
    assert!(
        stat(&err, "memory-hits") >= 1,
        "the shared volume is decoded once: {err}"
    );
    let (code, warm, err) = run("warm", Some(&cache));
    assert_eq!((code, &warm), (1, &reference));
    assert!(stat(&err, "disk-hits") >= 1, "{err}");
    assert_eq!(stat(&err, "rejected"), 0, "{err}");

    // Killed while it writes: as soon as a temporary entry file (a write in progress) shows up, or else the
    // first whole entry, the run is killed; whatever it left changes no row.
    let killed = d.path().join("killed");
    let scan_dir = |dir: &Path| -> (bool, bool) {
        let (mut tmp, mut whole) = (false, false);
        for sub in std::fs::read_dir(dir.join("v1"))
            .into_iter()
            .flatten()
            .flatten()
        {
            for f in std::fs::read_dir(sub.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                if f.file_name().to_string_lossy().starts_with(".tmp-") {
                    tmp = true;
                } else {
                    whole = true;
                }
            }
        }
        (tmp, whole)
    };
    let mut caught_mid_write = 0;
    for _ in 0..3 {
        let _ = std::fs::remove_dir_all(&killed);
        let mut child = Command::new(BIN)
            .args([
                "audit",
                fleet.to_str().unwrap(),
                "--manifests",
                mdir.to_str().unwrap(),
            ])
            .args(["--insecure-unsigned", "-q", "--no-timing", "-j", "1", "-o"])
            .arg(d.path().join("rows-partial.jsonl"))
            .arg("--cache")
            .arg(&killed)
            .spawn()
            .unwrap();
        let t0 = std::time::Instant::now();
        let mut state = (false, false);
        while t0.elapsed() < std::time::Duration::from_secs(120) {
            state = scan_dir(&killed);
            if state.0 || state.1 || child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
        let still_running = child.try_wait().unwrap().is_none();
        let _ = child.kill();
        let _ = child.wait();
        assert!(
            still_running,
            "the audit ended before it wrote to its cache"
        );
        if state.0 {
            caught_mid_write += 1;
        }
        let (code, rerun, err) = run("after-kill", Some(&killed));
        assert_eq!(
            (code, &rerun),
            (1, &reference),
            "killed at {state:?}: {err}"
        );
    }
    eprintln!("killed mid-write (temporary entry file present) in {caught_mid_write} of 3 runs");

    // One flipped byte in every entry: each is rejected, decoded again, and no verdict changes.
    let mut flipped = 0;
    for sub in std::fs::read_dir(cache.join("v1")).unwrap().flatten() {
        for f in std::fs::read_dir(sub.path()).unwrap().flatten() {
            let mut b = std::fs::read(f.path()).unwrap();
            let at = b.len() / 2;
            b[at] ^= 0x01;
            std::fs::write(f.path(), &b).unwrap();
            flipped += 1;
        }
    }
    assert!(flipped >= 1);
    let (code, after, err) = run("flipped", Some(&cache));
    assert_eq!((code, &after), (1, &reference));
    assert!(stat(&err, "rejected") >= 1, "{err}");
    assert_eq!(
        stat(&err, "disk-hits"),
        0,
        "no flipped entry is believed: {err}"
    );
}

/// Static bytes verified in one dump decide the equal nodes of the next dumps by comparison instead of
/// hashing (issue 20, `hash::KnownBytes`): the rows are those of a run that hashes everything
/// (`--no-cache`), the comparison is really used (the verbose counter), and a dump whose verified node
/// differs in one byte, audited after the dumps that stored that node, still names the changed module.
#[test]
fn bytes_verified_in_one_dump_decide_the_next_and_a_changed_byte_is_still_named() {
    let Some(bios) = ovmf(&["OVMF_VARS_4M.ms.fd", "OVMF_CODE_4M.fd"]) else {
        return;
    };
    let (d, fleet, mdir) = fleet_dirs();
    let golden = spi_image(&bios, [0, 0x1B, 0x21, 0, 0, 1]);
    baseline(&golden, &mdir, "SPI", &[]);
    for i in 0..3u8 {
        let mut m = spi_image(&bios, [0, 0x1B, 0x21, 0, 0, 2 + i]);
        change_nvram(&mut m, 0x400000);
        std::fs::write(fleet.join(format!("a{i}.bin")), &m).unwrap();
    }
    // One byte in the middle of the uncompressed SEC core's PE image (a static node of several KiB that
    // the earlier dumps stored as verified bytes).
    let tree = crate::uefi::parse_bytes(golden.clone(), false);
    let pe = crate::uefi::find(&tree, &|r| {
        r.attr_str("type") == Some("pe32")
            && r.space == fwscan::region::Space::Image
            && r.size >= 8192
    })
    .expect("an uncompressed PE32 section");
    let at = (pe.offset + pe.size / 2) as usize;
    let mut changed = spi_image(&bios, [0, 0x1B, 0x21, 0, 0, 9]);
    changed[at] ^= 0x40;
    std::fs::write(fleet.join("z.bin"), &changed).unwrap();

    let run = |extra: &[&str], out: &Path| {
        let mut args = vec!["-j", "1", "-v"];
        args.extend_from_slice(extra);
        audit_with(&fleet, &mdir, out, &args)
    };
    let (code, rows, err) = run(&[], &d.path().join("known.jsonl"));
    let (code_nc, rows_nc, _) = run(&["--no-cache"], &d.path().join("hashed.jsonl"));
    assert_eq!((code, code_nc), (1, 1), "{err}");
    assert_eq!(
        rows, rows_nc,
        "the same rows with and without verified bytes"
    );
    for i in 0..3 {
        assert_eq!(row(&rows, &format!("a{i}.bin"))["verdict"], "clean");
    }
    let z = row(&rows, "z.bin");
    let named = codes_and_paths(z);
    assert!(
        named
            .iter()
            .any(|(c, p)| c == "module-modified" && pe.path.starts_with(p.as_str())),
        "the changed SEC module is named: {named:?} (changed {})",
        pe.path
    );
    let matched: u64 = err
        .lines()
        .find_map(|l| l.split("compared-instead-of-hashed=").nth(1))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no verified-bytes line: {err}"));
    // Dumps a1, a2 and z are decided from a0's bytes for the ME region and the firmware volumes (about
    // 4 MB each; the rest is blank, per machine, or nodes too small to be worth a lookup).
    assert!(matched > 3 * (3 << 20), "compared {matched} bytes: {err}");
}
