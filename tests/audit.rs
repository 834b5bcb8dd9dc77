//! Fleet audits end to end: a generated fleet of images with known verdicts, bad entries, exit codes,
//! SIGKILL safety of the JSON Lines stream, sharding and merge, `diff` gating and JUnit output.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::harness::{run as fwscan, BIN};
use crate::support;

/// A small deterministic PRNG (xorshift), so fleets are reproducible.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// What an image in the fleet must come out as.
#[derive(Debug, Clone, PartialEq)]
struct Expect {
    verdict: &'static str,
    /// A finding or error code the row must carry.
    code: Option<&'static str>,
    /// The product the chosen manifest must name.
    product: Option<String>,
}

/// One firmware product of the fleet: a golden image, how it is baselined, how machines vary.
struct Product {
    name: String,
    version: String,
    golden: Vec<u8>,
    /// Extra `fwscan baseline` arguments (layout, mutable regions, match rules).
    baseline_args: Vec<String>,
    /// Byte range that is per-machine data (changed on some clean machines), if any.
    mutable: Option<(usize, usize)>,
    /// Byte range that is static and may be tampered with.
    static_range: (usize, usize),
    /// Where the version string lives.
    version_at: usize,
}

/// A generated fleet. Add a product kind by writing one more `Product` constructor (BIOS/BMC images from
/// the format parsers can be plugged in the same way).
struct Fleet {
    root: PathBuf,
    manifests: PathBuf,
    expected: BTreeMap<String, Expect>,
}

fn raw_product(rng: &mut Rng, name: &str, version: &str, size: usize) -> Product {
    let mut golden = rng.bytes(size);
    let tag = format!("{name} BIOS v{version}");
    let at = 0x200;
    golden[at..at + tag.len()].copy_from_slice(tag.as_bytes());
    Product {
        name: name.into(),
        version: version.into(),
        golden,
        baseline_args: vec!["--match-size".into(), "--match-string".into(), tag],
        mutable: None,
        static_range: (0x1000, size),
        version_at: at,
    }
}

/// A flash image with a flashrom layout: descriptor, bios (static, holds the version), nvram (per
/// machine, mutable).
fn layout_product(rng: &mut Rng, dir: &Path, name: &str, version: &str) -> Product {
    let size = 0x10000;
    let mut golden = rng.bytes(size);
    for b in &mut golden[0xe000..] {
        *b = 0xff;
    }
    let tag = format!("{name} BIOS v{version}");
    let at = 0x1100;
    golden[at..at + tag.len()].copy_from_slice(tag.as_bytes());
    let layout = dir.join(format!("{name}.layout"));
    std::fs::write(
        &layout,
        "00000000:00000fff descriptor\n00001000:0000dfff bios\n0000e000:0000ffff nvram\n",
    )
    .unwrap();
    Product {
        name: name.into(),
        version: version.into(),
        golden,
        baseline_args: vec![
            "--layout".into(),
            layout.display().to_string(),
            "--mutable".into(),
            "nvram".into(),
            "--match-string".into(),
            tag,
        ],
        mutable: Some((0xe000, size)),
        static_range: (0x1000, 0xe000),
        version_at: at,
    }
}

impl Fleet {
    fn new(base: &Path) -> Fleet {
        let root = base.join("fleet");
        let manifests = base.join("manifests");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&manifests).unwrap();
        Fleet {
            root,
            manifests,
            expected: BTreeMap::new(),
        }
    }

    fn baseline(&self, p: &Product) {
        let golden = self.manifests.join(format!("{}.golden", p.name));
        std::fs::write(&golden, &p.golden).unwrap();
        let out = self
            .manifests
            .join(format!("{}-{}.json", p.name, p.version));
        let mut args = vec![
            "baseline".to_string(),
            golden.display().to_string(),
            "-o".into(),
            out.display().to_string(),
            "--vendor".into(),
            "Acme".into(),
            "--product".into(),
            p.name.clone(),
            "--version".into(),
            p.version.clone(),
        ];
        args.extend(p.baseline_args.iter().cloned());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, _, err) = fwscan(&args);
        assert_eq!(code, 0, "baseline failed: {err}");
        std::fs::remove_file(golden).unwrap();
    }

    fn put(&mut self, rel: &str, bytes: &[u8], e: Expect) {
        let p = self.root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
        self.expected.insert(rel.to_string(), e);
    }

    /// Adds `clean` clean machines (half with changed per-machine data), `tampered` tampered ones,
    /// `unknown` running an unapproved version and `corrupted` truncated dumps.
    fn machines(
        &mut self,
        rng: &mut Rng,
        p: &Product,
        clean: usize,
        tampered: usize,
        unknown: usize,
        corrupted: usize,
    ) {
        let rack = format!("dc1/{}", p.name.to_lowercase());
        let ok = |code| Expect {
            verdict: "clean",
            code,
            product: Some(p.name.clone()),
        };
        for i in 0..clean {
            let mut img = p.golden.clone();
            if let (Some((a, b)), true) = (p.mutable, i % 2 == 1) {
                let n = rng.bytes(16);
                img[a..a + 16].copy_from_slice(&n);
                let _ = b;
            }
            self.put(&format!("{rack}/clean-{i:03}.bin"), &img, ok(None));
        }
        for i in 0..tampered {
            let mut img = p.golden.clone();
            let (a, b) = p.static_range;
            let at = a + (rng.next() as usize % (b - a));
            // Never touch the version string: the image must still be recognised.
            let at = if (p.version_at..p.version_at + 64).contains(&at) {
                b - 1
            } else {
                at
            };
            img[at] ^= 0x5a;
            self.put(
                &format!("{rack}/tampered-{i:03}.bin"),
                &img,
                Expect {
                    verdict: "findings",
                    code: Some("region-modified"),
                    product: Some(p.name.clone()),
                },
            );
        }
        for i in 0..unknown {
            let mut img = p.golden.clone();
            // Version 9.9 was never approved.
            let tag = format!("{} BIOS v9.9", p.name);
            img[p.version_at..p.version_at + tag.len()].copy_from_slice(tag.as_bytes());
            for b in &mut img[p.version_at + tag.len()..p.version_at + tag.len() + 4] {
                *b = b' ';
            }
            self.put(
                &format!("{rack}/unknown-{i:03}.bin"),
                &img,
                Expect {
                    verdict: "findings",
                    code: Some("unknown-firmware"),
                    product: None,
                },
            );
        }
        for i in 0..corrupted {
            let img = &p.golden[..p.golden.len() / 2 + i];
            self.put(
                &format!("{rack}/corrupted-{i:03}.bin"),
                img,
                Expect {
                    verdict: "findings",
                    // Raw products declare their size: a truncated dump is firmware nobody approved; layout
                    // products match by version string and report the size change.
                    code: Some(if p.mutable.is_some() {
                        "size-mismatch"
                    } else {
                        "unknown-firmware"
                    }),
                    product: p.mutable.map(|_| p.name.clone()),
                },
            );
        }
    }
}

/// Reads a results file: image rows by relative path, skipped rows by relative path.
fn rows(path: &Path) -> (Vec<Value>, Vec<Value>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut images = Vec::new();
    let mut skipped = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("line {} does not parse: {e}: {line}", i + 1));
        match v["kind"].as_str() {
            Some("image") => images.push(v),
            Some("skipped") => skipped.push(v),
            Some("run") => assert_eq!(i, 0, "run header must be the first line"),
            Some("end") => assert_eq!(i + 1, text.lines().count(), "end row must be the last line"),
            k => panic!("unknown row kind {k:?}"),
        }
    }
    (images, skipped)
}

fn row_codes(r: &Value) -> Vec<String> {
    let mut c: Vec<String> = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_string())
        .collect();
    if let Some(e) = r["error"]["code"].as_str() {
        c.push(e.to_string());
    }
    c
}

/// The standard fleet: 3 products, ≥ 200 images, plus ambiguous ones.
fn standard_fleet(base: &Path) -> Fleet {
    let mut rng = Rng(0x9e3779b97f4a7c15);
    let mut f = Fleet::new(base);
    let a = raw_product(&mut rng, "X11", "1.40", 48 * 1024);
    let b = raw_product(&mut rng, "H12", "2.10", 40 * 1024);
    let c = layout_product(&mut rng, base, "L1", "3.00");
    for p in [&a, &b, &c] {
        f.baseline(p);
    }
    f.machines(&mut rng, &a, 42, 12, 8, 4);
    f.machines(&mut rng, &b, 42, 12, 8, 4);
    f.machines(&mut rng, &c, 45, 12, 8, 6);
    // Two manifests claim the same firmware string for different products: never a guess.
    let mut amb = raw_product(&mut rng, "Z9", "1.00", 20 * 1024);
    amb.baseline_args = vec!["--match-string".into(), "ZZ-SHARED-ID".into()];
    amb.golden[0x300..0x30c].copy_from_slice(b"ZZ-SHARED-ID");
    f.baseline(&amb);
    let mut amb2 = raw_product(&mut rng, "Z8", "1.00", 20 * 1024);
    amb2.baseline_args = vec!["--match-string".into(), "ZZ-SHARED-ID".into()];
    amb2.golden[0x300..0x30c].copy_from_slice(b"ZZ-SHARED-ID");
    f.baseline(&amb2);
    for i in 0..5 {
        let mut img = rng.bytes(20 * 1024);
        img[0x300..0x30c].copy_from_slice(b"ZZ-SHARED-ID");
        f.put(
            &format!("dc2/odd-{i}.bin"),
            &img,
            Expect {
                verdict: "error",
                code: Some("ambiguous-manifest"),
                product: None,
            },
        );
    }
    assert!(f.expected.len() >= 200, "{}", f.expected.len());
    f
}

fn is_privileged_reader(p: &Path) -> bool {
    std::fs::File::open(p).is_ok()
}

#[test]
fn fleet_every_image_one_row_with_the_right_verdict_and_bad_entries_reported() {
    let d = tempfile::tempdir().unwrap();
    let mut f = standard_fleet(d.path());
    let root = f.root.clone();
    // Bad entries: an unreadable file, a FIFO, a symlink loop, a symlink to a real image.
    let unreadable = root.join("dc3/locked.bin");
    std::fs::create_dir_all(unreadable.parent().unwrap()).unwrap();
    std::fs::write(&unreadable, b"secret").unwrap();
    std::fs::set_permissions(
        &unreadable,
        std::os::unix::fs::PermissionsExt::from_mode(0o000),
    )
    .unwrap();
    let privileged = is_privileged_reader(&unreadable);
    if privileged {
        eprintln!(
            "NOTE: running with privileges that ignore file modes (root?): chmod 000 does not make a file \
             unreadable here; the unreadable-file case is checked as an ordinary (unknown) image instead"
        );
        f.expected.insert(
            "dc3/locked.bin".into(),
            Expect {
                verdict: "findings",
                code: Some("unknown-firmware"),
                product: None,
            },
        );
    } else {
        f.expected.insert(
            "dc3/locked.bin".into(),
            Expect {
                verdict: "error",
                code: Some("read-error"),
                product: None,
            },
        );
    }
    rustix::fs::mknodat(
        rustix::fs::CWD,
        root.join("dc3/pipe"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    std::os::unix::fs::symlink("loop-b", root.join("dc3/loop-a")).unwrap();
    std::os::unix::fs::symlink("loop-a", root.join("dc3/loop-b")).unwrap();
    std::os::unix::fs::symlink("..", root.join("dc3/up")).unwrap();

    let out = d.path().join("rows.jsonl");
    let (code, stdout, stderr) = fwscan(&[
        "audit",
        root.to_str().unwrap(),
        "--manifests",
        f.manifests.to_str().unwrap(),
        "--insecure-unsigned",
        "--image-digests",
        "-o",
        out.to_str().unwrap(),
        "--format",
        "json",
        "-q",
    ]);
    // The FIFO must not have been opened (the run would hang): we got here. Ambiguous images make it 2.
    assert_eq!(code, 2, "{stderr}\n{stdout}");
    let (images, skipped) = rows(&out);
    let mut by_path: HashMap<String, Vec<&Value>> = HashMap::new();
    for r in &images {
        by_path
            .entry(r["path"].as_str().unwrap().to_string())
            .or_default()
            .push(r);
    }
    assert_eq!(
        images.len(),
        f.expected.len(),
        "one row per image, nothing else"
    );
    for (rel, e) in &f.expected {
        let rs = by_path
            .get(rel)
            .unwrap_or_else(|| panic!("no row for {rel}"));
        assert_eq!(rs.len(), 1, "{rel}: {} rows", rs.len());
        let r = rs[0];
        assert_eq!(r["verdict"], e.verdict, "{rel}: {r}");
        if let Some(c) = e.code {
            assert!(row_codes(r).iter().any(|x| x == c), "{rel}: want {c}: {r}");
        }
        if e.verdict == "clean" {
            assert!(row_codes(r).is_empty(), "{rel}: {r}");
        }
        match &e.product {
            Some(p) => assert_eq!(r["manifest"]["product"]["product"], p.as_str(), "{rel}"),
            None => assert!(r["manifest"].is_null(), "{rel}: {r}"),
        }
    }
    // Clean machines with changed per-machine data were compared region by region, identical ones by digest.
    let how: Vec<&str> = images
        .iter()
        .filter_map(|r| r["manifest"]["selected_by"].as_str())
        .collect();
    assert!(
        how.contains(&"exact-digest") && how.contains(&"match-rules"),
        "{how:?}"
    );
    // --image-digests: every image that was read carries its digest.
    for r in &images {
        if r["error"]["code"] != "read-error" {
            let sha = r["sha256"]
                .as_str()
                .unwrap_or_else(|| panic!("no sha256: {r}"));
            assert_eq!(sha.len(), 64);
        }
    }
    let reasons: BTreeMap<String, String> = skipped
        .iter()
        .map(|s| {
            (
                s["path"].as_str().unwrap().to_string(),
                s["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(reasons.get("dc3/pipe").map(String::as_str), Some("fifo"));
    assert_eq!(
        reasons.get("dc3/loop-a").map(String::as_str),
        Some("symlink")
    );
    assert_eq!(reasons.get("dc3/up").map(String::as_str), Some("symlink"));
    // The summary agrees with the rows.
    let s: Value = serde_json::from_str(&stdout).unwrap();
    let count = |v: &str| f.expected.values().filter(|e| e.verdict == v).count() as u64;
    assert_eq!(s["images"], f.expected.len() as u64);
    assert_eq!(s["verdicts"]["clean"], count("clean"));
    assert_eq!(s["verdicts"]["findings"], count("findings"));
    assert_eq!(s["verdicts"]["error"], count("error"));
    assert_eq!(s["skipped"]["fifo"], 1);
    assert_eq!(s["skipped"]["symlink"], 3);
    assert_eq!(s["exit_code"], 2);
    assert_eq!(s["errors_by_code"]["ambiguous-manifest"], 5);
    assert_eq!(
        s["by_product"]["Acme X11 bios 1.40"]["clean"], 42,
        "{}",
        s["by_product"]
    );
    assert!(s["regions_failing_most"][0]["value"].as_u64().unwrap() >= 10);

    // With --follow the loops are detected and reported, not followed forever.
    let (code, stdout, _) = fwscan(&[
        "audit",
        root.to_str().unwrap(),
        "--manifests",
        f.manifests.to_str().unwrap(),
        "--insecure-unsigned",
        "--follow",
        "--format",
        "json",
        "-q",
    ]);
    assert_eq!(code, 2);
    let s: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(s["skipped"]["symlink-loop"], 3, "{}", s["skipped"]);
    assert_eq!(s["images"], f.expected.len() as u64);

    // The results file may live inside the audited tree: it is not audited itself.
    let inside = root.join("dc1/results.jsonl");
    let (code, _, _) = fwscan(&[
        "audit",
        root.join("dc1").to_str().unwrap(),
        "--manifests",
        f.manifests.to_str().unwrap(),
        "--insecure-unsigned",
        "--include",
        "clean-*",
        "--include",
        "*.jsonl",
        "-o",
        inside.to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(code, 0);
    let (images, _) = rows(&inside);
    assert!(images.iter().all(|r| r["path"] != "results.jsonl"));
    std::fs::remove_file(&inside).unwrap();

    // Exit codes: only clean images → 0; clean and tampered → 1; nothing → 2.
    let m = f.manifests.to_str().unwrap();
    let r = root.to_str().unwrap();
    let (code, out, _) = fwscan(&[
        "audit",
        r,
        "--manifests",
        m,
        "--insecure-unsigned",
        "--include",
        "clean-*",
        "-q",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("verdict: CLEAN"), "{out}");
    let (code, _, _) = fwscan(&[
        "audit",
        r,
        "--manifests",
        m,
        "--insecure-unsigned",
        "--include",
        "clean-*",
        "--include",
        "tampered-*",
        "-q",
    ]);
    assert_eq!(code, 1);
    let empty = d.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let (code, out, _) = fwscan(&[
        "audit",
        empty.to_str().unwrap(),
        "--manifests",
        m,
        "--insecure-unsigned",
        "-q",
    ]);
    assert_eq!(code, 2);
    assert!(out.contains("nothing scanned"), "{out}");

    // Without --insecure-unsigned and without a trust policy, the audit refuses to start.
    let (code, _, err) = fwscan(&["audit", r, "--manifests", m, "-q"]);
    assert_eq!(code, 2);
    assert!(err.contains("trust policy"), "{err}");
    // With a policy, unsigned manifests are refused: nothing is decided.
    let trust = d.path().join("trust.json");
    std::fs::write(&trust, r#"{"schema_version": 1, "keys": []}"#).unwrap();
    let (code, out, _) = fwscan(&[
        "audit",
        r,
        "--manifests",
        m,
        "--trust",
        trust.to_str().unwrap(),
        "--include",
        "clean-00*",
        "--format",
        "json",
        "-q",
    ]);
    assert_eq!(code, 2);
    let s: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(s["verdicts"]["error"], s["images"]);
    assert!(s["errors_by_code"]["manifest-unsigned"].as_u64().unwrap() > 0);

    // An explicit mapping overrides the automatic choice (and resolves the ambiguous images).
    let map = d.path().join("map.csv");
    std::fs::write(
        &map,
        format!(
            "path-glob,manifest\ndc2/**,{}/Z9-1.00.json\n",
            f.manifests.display()
        ),
    )
    .unwrap();
    let (code, out, _) = fwscan(&[
        "audit",
        r,
        "--manifests",
        m,
        "--insecure-unsigned",
        "--map",
        map.to_str().unwrap(),
        "--include",
        "dc2/**",
        "--format",
        "json",
        "-q",
    ]);
    let s: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(s["images"], 5);
    assert_eq!(s["verdicts"]["error"], 0, "{s}");
    assert_eq!(s["by_product"]["Acme Z9 bios 1.00"]["findings"], 5, "{s}");
    assert_eq!(code, 1);
}

#[test]
fn file_truncated_or_replaced_during_the_scan_is_an_error_row() {
    use fwscan::audit::{catalogue, results::RowWriter, AuditOptions};
    let d = tempfile::tempdir().unwrap();
    let mut rng = Rng(7);
    let mut f = Fleet::new(d.path());
    let p = raw_product(&mut rng, "X11", "1.40", 32 * 1024);
    f.baseline(&p);
    f.machines(&mut rng, &p, 6, 0, 0, 0);
    let victim = f.root.join("dc1/x11/clean-002.bin");
    let replaced = f.root.join("dc1/x11/clean-004.bin");
    let cat =
        catalogue::Catalogue::load_dir(&f.manifests, &catalogue::LoadOptions::insecure_unsigned())
            .unwrap();
    let buggy = f.root.join("dc1/x11/clean-005.bin");
    let (v2, r2, b2) = (victim.clone(), replaced.clone(), buggy.clone());
    let hook: fwscan::audit::BeforeRead = std::sync::Arc::new(move |path: &Path| {
        if path == v2 {
            // Truncated after it was listed.
            std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .unwrap()
                .set_len(1000)
                .unwrap();
        } else if path == r2 {
            // Replaced by another file of the same size.
            let tmp = path.with_extension("new");
            std::fs::write(&tmp, vec![0u8; 32 * 1024]).unwrap();
            std::fs::rename(&tmp, path).unwrap();
        } else if path == b2 {
            // A bug while scanning one image (e.g. a parser panic) must not end the audit.
            panic!("simulated bug");
        }
    });
    let opts = AuditOptions {
        roots: vec![f.root.clone()],
        timing: false,
        max_decompressed: 64 << 20,
        before_read: Some(hook),
        ..AuditOptions::default()
    };
    let out = d.path().join("rows.jsonl");
    let w = RowWriter::new(Box::new(std::fs::File::create(&out).unwrap()));
    let summary = fwscan::audit::run(&opts, &cat, w, &fwscan::audit::Quiet);
    assert_eq!(summary.exit_code, 2);
    assert_eq!(summary.images, 6);
    assert_eq!(
        summary.errors_by_code.get("file-changed"),
        Some(&2),
        "{summary:?}"
    );
    assert_eq!(
        summary.errors_by_code.get("internal-error"),
        Some(&1),
        "{summary:?}"
    );
    assert_eq!(summary.verdicts.clean, 3);
    let (images, _) = rows(&out);
    for r in &images {
        let rel = r["path"].as_str().unwrap();
        if rel.ends_with("clean-002.bin") || rel.ends_with("clean-004.bin") {
            assert_eq!(r["verdict"], "error");
            assert_eq!(r["error"]["code"], "file-changed", "{r}");
        } else if rel.ends_with("clean-005.bin") {
            assert_eq!(r["error"]["code"], "internal-error", "{r}");
        } else {
            assert_eq!(r["verdict"], "clean", "{r}");
        }
    }
}

#[test]
fn sigkill_midway_leaves_only_complete_json_lines() {
    let d = tempfile::tempdir().unwrap();
    let mut rng = Rng(11);
    let mut f = Fleet::new(d.path());
    let p = layout_product(&mut rng, d.path(), "L1", "3.00");
    f.baseline(&p);
    // Per-machine data differs on every other machine, so most images are compared region by region.
    f.machines(&mut rng, &p, 1200, 300, 0, 0);
    let total = f.expected.len();
    let out = d.path().join("rows.jsonl");
    let mut child = Command::new(BIN)
        .args([
            "audit",
            f.root.to_str().unwrap(),
            "--manifests",
            f.manifests.to_str().unwrap(),
            "--insecure-unsigned",
            "-o",
            out.to_str().unwrap(),
            "-q",
            "-j",
            "1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    loop {
        let n = std::fs::read_to_string(&out)
            .map(|s| s.lines().count())
            .unwrap_or(0);
        if n >= 20 || t0.elapsed().as_secs() > 60 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    // SIGKILL (what `Child::kill` sends on Unix): no destructor, no flush runs.
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success());
    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines.len() > 1 && lines.len() < total + 1,
        "the audit must have been killed midway ({} of {} rows)",
        lines.len(),
        total + 1
    );
    assert!(text.ends_with('\n'), "last line cut");
    for l in &lines {
        serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{e}: {l}"));
    }
    assert!(!text.contains("\"kind\":\"end\""));
    // `merge` of the cut file summarizes what it has, and refuses to call it a complete audit.
    let (code, stdout, _) = fwscan(&["merge", out.to_str().unwrap()]);
    assert_eq!(code, 2, "{stdout}");
    assert!(stdout.contains("did not finish"), "{stdout}");
}

#[test]
fn shards_merged_equal_the_single_run_byte_for_byte() {
    let d = tempfile::tempdir().unwrap();
    let f = standard_fleet(d.path());
    let r = f.root.to_str().unwrap();
    let m = f.manifests.to_str().unwrap();
    let single = d.path().join("single.jsonl");
    let base = [
        "audit",
        r,
        "--manifests",
        m,
        "--insecure-unsigned",
        "--no-timing",
        "-q",
    ];
    let with = |extra: &[&str]| -> Vec<String> {
        base.iter()
            .chain(extra.iter())
            .map(|s| s.to_string())
            .collect()
    };
    let run = |args: Vec<String>| {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        fwscan(&a)
    };
    let (code1, text1, _) = run(with(&["-o", single.to_str().unwrap()]));
    let (code_j, json1, _) = run(with(&["--format", "json"]));
    assert_eq!(code1, code_j);
    let n = 4;
    let mut shard_files = Vec::new();
    let mut shard_images = 0;
    for i in 0..n {
        let p = d.path().join(format!("shard-{i}.jsonl"));
        let (c, _, err) = run(with(&[
            "--shard",
            &format!("{i}/{n}"),
            "-o",
            p.to_str().unwrap(),
        ]));
        assert!(c == 1 || c == 2, "{err}");
        let (imgs, _) = rows(&p);
        assert!(!imgs.is_empty(), "shard {i} is empty");
        shard_images += imgs.len();
        shard_files.push(p.to_str().unwrap().to_string());
    }
    let (single_imgs, _) = rows(&single);
    assert_eq!(
        shard_images,
        single_imgs.len(),
        "shards partition the fleet"
    );
    let mut margs = vec!["merge".to_string(), "--no-timing".into()];
    margs.extend(shard_files.iter().cloned());
    let (code2, text2, _) = run(margs.clone());
    assert_eq!(code2, code1);
    assert_eq!(text2, text1, "text summary differs");
    margs.extend(["--format".into(), "json".into()]);
    let (_, json2, _) = run(margs);
    assert_eq!(json2, json1, "JSON summary differs");
    // The same verdict per image, whichever shard scanned it.
    let key = |v: &Value| {
        (
            v["path"].as_str().unwrap().to_string(),
            v["verdict"].as_str().unwrap().to_string(),
            row_codes(v),
        )
    };
    let mut a: Vec<_> = single_imgs.iter().map(key).collect();
    let mut b: Vec<_> = shard_files
        .iter()
        .flat_map(|p| rows(Path::new(p)).0)
        .map(|v| key(&v))
        .collect();
    a.sort();
    b.sort();
    assert_eq!(a, b);
    // A missing shard, or a shard merged twice, cannot pass for the whole fleet.
    let (code3, text3, _) = run(vec![
        "merge".into(),
        shard_files[0].clone(),
        shard_files[1].clone(),
        shard_files[2].clone(),
    ]);
    assert_eq!(code3, 2);
    assert!(
        text3.contains("shards missing from the merge: 3/4"),
        "{text3}"
    );
    let (code4, text4, _) = run(vec![
        "merge".into(),
        shard_files[0].clone(),
        shard_files[0].clone(),
    ]);
    assert_eq!(code4, 2);
    assert!(text4.contains("more than once"), "{text4}");
}

#[test]
fn diff_gates_on_allowed_globs() {
    let d = tempfile::tempdir().unwrap();
    let mut rng = Rng(3);
    let p = layout_product(&mut rng, d.path(), "L1", "3.00");
    let layout = p.baseline_args[1].clone();
    let old = d.path().join("old.bin");
    std::fs::write(&old, &p.golden).unwrap();
    let mut new = p.golden.clone();
    new[0x5000] ^= 1; // bios
    new[0xe010] ^= 1; // nvram
    let newp = d.path().join("new.bin");
    std::fs::write(&newp, &new).unwrap();
    let (o, n) = (old.to_str().unwrap(), newp.to_str().unwrap());
    let (code, out, err) = fwscan(&["diff", o, n, "--layout", &layout]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("bios") && out.contains("nvram") && out.contains("NOT ALLOWED"),
        "{out}"
    );
    assert!(out.contains("baselined on the fly"), "{out}");
    let (code, out, _) = fwscan(&["diff", o, n, "--layout", &layout, "--allow", "nvram"]);
    assert_eq!(code, 1, "bios is still outside the allowed globs: {out}");
    let (code, out, _) = fwscan(&[
        "diff", o, n, "--layout", &layout, "--allow", "nvram", "--allow", "bios", "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["disallowed"], 0);
    assert_eq!(v["changes"].as_array().unwrap().len(), 2);
    assert!(v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["change"] == "modified" && c["allowed"] == true));
    // Identical images: no change at all.
    let (code, out, _) = fwscan(&["diff", o, o, "--layout", &layout]);
    assert_eq!(code, 0);
    assert!(out.contains("no differences"), "{out}");
    // Manifest against manifest.
    let m1 = d.path().join("m1.json");
    let m2 = d.path().join("m2.json");
    for (img, m) in [(&old, &m1), (&newp, &m2)] {
        let (c, _, e) = fwscan(&[
            "baseline",
            img.to_str().unwrap(),
            "-o",
            m.to_str().unwrap(),
            "--layout",
            &layout,
        ]);
        assert_eq!(c, 0, "{e}");
    }
    let (code, out, _) = fwscan(&["diff", m1.to_str().unwrap(), m2.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("bios") && out.contains("nvram"), "{out}");
    let (code, _, _) = fwscan(&[
        "diff",
        m1.to_str().unwrap(),
        m2.to_str().unwrap(),
        "--allow",
        "*",
    ]);
    assert_eq!(code, 0);
    // Manifest against image (the manifest's layout is used).
    let (code, out, _) = fwscan(&["diff", m1.to_str().unwrap(), n, "--allow", "nvram"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("bios") && out.contains("used without signature verification"),
        "{out}"
    );
    let (code, _, _) = fwscan(&["diff", m1.to_str().unwrap(), o]);
    assert_eq!(code, 0);
}

#[test]
fn audit_junit_is_read_by_junitparser() {
    let have = Command::new("python3")
        .args(["-c", "import junitparser"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !have {
        crate::harness::skip("python3 with junitparser not available (pip install junitparser)");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let mut rng = Rng(5);
    let mut f = Fleet::new(d.path());
    let p = raw_product(&mut rng, "X11", "1.40", 16 * 1024);
    f.baseline(&p);
    f.machines(&mut rng, &p, 5, 3, 2, 0);
    std::fs::write(f.root.join("dc1/zz.bin"), b"x").unwrap();
    let xml = d.path().join("audit.xml");
    let out = Command::new(BIN)
        .args([
            "audit",
            f.root.to_str().unwrap(),
            "--manifests",
            f.manifests.to_str().unwrap(),
            "--insecure-unsigned",
            "--format",
            "junit",
            "-q",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    std::fs::write(&xml, &out.stdout).unwrap();
    let script = r#"
import sys, junitparser
x = junitparser.JUnitXml.fromfile(sys.argv[1])
cases = [c for s in x for c in s]
fail = sum(1 for c in cases if any(isinstance(r, junitparser.Failure) for r in c.result))
err = sum(1 for c in cases if any(isinstance(r, junitparser.Error) for r in c.result))
ok = sum(1 for c in cases if c.is_passed)
print(len(cases), fail, err, ok)
"#;
    let r = Command::new("python3")
        .args(["-c", script, xml.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let got = String::from_utf8_lossy(&r.stdout).trim().to_string();
    // 5 clean; 3 tampered + 2 unknown + zz.bin (unknown) fail.
    assert_eq!(got, "11 6 0 5");

    // `scan --format junit`: one case per top-level region of the baseline plus one for the whole image.
    let layout = layout_product(&mut rng, d.path(), "L1", "3.00");
    let golden = d.path().join("l1.bin");
    std::fs::write(&golden, &layout.golden).unwrap();
    let man = d.path().join("l1.json");
    let (c, _, e) = fwscan(&[
        "baseline",
        golden.to_str().unwrap(),
        "-o",
        man.to_str().unwrap(),
        "--layout",
        &layout.baseline_args[1],
        "--mutable",
        "nvram",
    ]);
    assert_eq!(c, 0, "{e}");
    let mut bad = layout.golden.clone();
    bad[0x2000] ^= 1;
    let badp = d.path().join("bad.bin");
    std::fs::write(&badp, &bad).unwrap();
    let out = Command::new(BIN)
        .args([
            "scan",
            badp.to_str().unwrap(),
            "-m",
            man.to_str().unwrap(),
            "--insecure-unsigned",
            "--format",
            "junit",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    std::fs::write(&xml, &out.stdout).unwrap();
    let script = r#"
import sys, junitparser
x = junitparser.JUnitXml.fromfile(sys.argv[1])
for s in x:
    for c in s:
        print(c.name, "pass" if c.is_passed else "fail")
"#;
    let r = Command::new("python3")
        .args(["-c", script, xml.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let got = String::from_utf8_lossy(&r.stdout).to_string();
    assert_eq!(
        got, "descriptor pass\nbios fail\nnvram pass\n/ pass\n",
        "{got}"
    );
}

/// A UEFI firmware volume image (built with the library's builder): drivers with PE32 sections and a
/// version file. Returns the image and the offset of a byte inside the first driver's PE body.
fn uefi_image(version: &str) -> (Vec<u8>, usize) {
    use fwscan::formats::uefi::build;
    let driver = |guid: &str, name: &str, seed: u8| {
        let mut pe = vec![seed; 0x800];
        pe[0..2].copy_from_slice(b"MZ");
        let body = build::sections(&[build::section(0x10, &pe), build::ui(name)]);
        build::file(build::guid_bytes(guid), 0x07, &body, 0)
    };
    let tag = format!("ACME-UEFI-BIOS version {version}   ");
    let version_file = build::file(
        build::guid_bytes("0A0A0A0A-1111-2222-3333-444444444444"),
        0x01,
        &build::sections(&[build::section(0x19, tag.as_bytes())]),
        0,
    );
    let files = vec![
        driver("11111111-2222-3333-4444-555555555555", "AcmeDxe", 0x31),
        driver("66666666-7777-8888-9999-AAAAAAAAAAAA", "AcmeSmm", 0x32),
        version_file,
    ];
    let img = build::volume(build::FFS2, None, &files, 0x20000);
    let at = img.windows(4).position(|w| w == [0x31; 4]).unwrap() + 0x100;
    (img, at)
}

#[test]
fn bios_and_bmc_images_get_their_manifest_and_the_right_verdict() {
    let d = tempfile::tempdir().unwrap();
    let fleet = d.path().join("fleet");
    let mdir = d.path().join("manifests");
    std::fs::create_dir_all(&fleet).unwrap();
    std::fs::create_dir_all(&mdir).unwrap();
    let mut expected: Vec<(String, &str, Vec<&str>)> = Vec::new();
    let put = |name: &str, bytes: &[u8]| std::fs::write(fleet.join(name), bytes).unwrap();
    let baseline = |golden: &[u8], name: &str, extra: &[&str]| {
        let g = d.path().join(format!("{name}.golden"));
        std::fs::write(&g, golden).unwrap();
        let out = mdir.join(format!("{name}.json"));
        let mut args = vec![
            "baseline",
            g.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--product",
            name,
        ];
        args.extend_from_slice(extra);
        let (code, _, err) = fwscan(&args);
        assert_eq!(code, 0, "{err}");
    };

    // BIOS: UEFI volumes, identified by their version string.
    let (bios, at) = uefi_image("5.0");
    baseline(
        &bios,
        "ACME-UEFI",
        &[
            "--component",
            "bios",
            "--version",
            "5.0",
            "--match-string",
            "ACME-UEFI-BIOS version 5.0",
        ],
    );
    for i in 0..3 {
        put(&format!("bios-clean-{i}.bin"), &bios);
        expected.push((format!("bios-clean-{i}.bin"), "clean", vec![]));
    }
    let mut t = bios.clone();
    t[at] ^= 0xFF;
    put("bios-tampered.bin", &t);
    expected.push((
        "bios-tampered.bin".into(),
        "findings",
        vec!["module-modified"],
    ));
    put("bios-unknown.bin", &uefi_image("6.6").0);
    expected.push((
        "bios-unknown.bin".into(),
        "findings",
        vec!["unknown-firmware"],
    ));
    put("bios-corrupted.bin", &bios[..bios.len() / 2]);
    expected.push((
        "bios-corrupted.bin".into(),
        "findings",
        vec!["unknown-firmware", "size-mismatch"],
    ));

    // BMC: an OpenBMC 32 MiB image from the real tools, identified by /etc/os-release in its rofs.
    let with_bmc = support::bmc::available();
    if with_bmc {
        use support::bmc as b;
        let work = d.path().join("bmc-build");
        std::fs::create_dir_all(&work).unwrap();
        let pieces = b::build(&work, b::LAYOUT_32, b::UBOOT_32, true);
        let golden = pieces.image(b::LAYOUT_32);
        baseline(
            &golden,
            "ACME-BMC",
            &[
                "--component",
                "bmc",
                "--version",
                "test-1",
                "--match-os-release",
                "VERSION_ID=test-1",
                "--mutable",
                "**/u-boot-env",
                "--mutable",
                "rwfs",
            ],
        );
        put("bmc-clean.bin", &golden);
        expected.push(("bmc-clean.bin".into(), "clean", vec![]));
        let mut t = golden.clone();
        t[0x200] ^= 0xFF;
        put("bmc-tampered.bin", &t);
        expected.push((
            "bmc-tampered.bin".into(),
            "findings",
            vec!["region-modified"],
        ));
        // `build` writes the standard root; change its os-release afterwards and rebuild the rofs.
        let mut other = b::build(&work, b::LAYOUT_32, b::UBOOT_32, true);
        let root = work.join("root");
        std::fs::write(
            root.join("etc/os-release"),
            "ID=openbmc-phosphor\nVERSION_ID=test-9\n",
        )
        .unwrap();
        other.rofs = b::squashfs(&work, &root, "rofs-9.sqsh");
        put("bmc-unknown.bin", &other.image(b::LAYOUT_32));
        expected.push((
            "bmc-unknown.bin".into(),
            "findings",
            vec!["unknown-firmware"],
        ));
    } else {
        crate::harness::skip("BMC part skipped: BMC tools not installed");
    }

    let rows_path = d.path().join("rows.jsonl");
    let (code, _, err) = fwscan(&[
        "audit",
        fleet.to_str().unwrap(),
        "--manifests",
        mdir.to_str().unwrap(),
        "--insecure-unsigned",
        "-q",
        "-o",
        rows_path.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{err}");
    let (images, _) = rows(&rows_path);
    assert_eq!(images.len(), expected.len());
    for (name, verdict, codes) in &expected {
        let r = images
            .iter()
            .find(|r| r["path"].as_str().unwrap() == name)
            .unwrap_or_else(|| panic!("no row for {name}"));
        assert_eq!(r["verdict"], *verdict, "{name}: {r}");
        let got = row_codes(r);
        if codes.is_empty() {
            assert!(got.is_empty(), "{name}: {got:?}");
        } else {
            assert!(
                got.iter().any(|c| codes.contains(&c.as_str())),
                "{name}: {got:?} not in {codes:?}"
            );
        }
        if *verdict == "clean" || name.contains("tampered") {
            let product = r["manifest"]["product"]["product"].as_str().unwrap();
            assert!(
                name.starts_with("bios") == (product == "ACME-UEFI"),
                "{name} matched {product}"
            );
        }
    }
    let tampered = images
        .iter()
        .find(|r| r["path"] == "bios-tampered.bin")
        .unwrap();
    let f = &tampered["findings"][0];
    assert!(
        f["path"]
            .as_str()
            .unwrap()
            .contains("file[11111111-2222-3333-4444-555555555555:AcmeDxe]"),
        "{f}"
    );
}

#[test]
fn an_unreadable_image_is_an_error_row_and_the_audit_goes_on() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    let base = d.path();
    let chmod = |p: &Path, mode: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    chmod(base, 0o755);
    let fleet = base.join("fleet");
    let mdir = base.join("manifests");
    let out = base.join("out");
    for p in [&fleet, &mdir, &out] {
        std::fs::create_dir(p).unwrap();
        chmod(p, 0o755);
    }
    chmod(&out, 0o777);
    let mut rng = Rng(7);
    let p = raw_product(&mut rng, "R1", "1.0", 16 * 1024);
    let golden = base.join("golden.bin");
    std::fs::write(&golden, &p.golden).unwrap();
    let m = mdir.join("r1.json");
    let mut args = vec![
        "baseline",
        golden.to_str().unwrap(),
        "-o",
        m.to_str().unwrap(),
        "--product",
        "R1",
    ];
    let extra: Vec<&str> = p.baseline_args.iter().map(String::as_str).collect();
    args.extend(extra);
    assert_eq!(fwscan(&args).0, 0);
    chmod(&m, 0o644);
    std::fs::write(fleet.join("readable.bin"), &p.golden).unwrap();
    chmod(&fleet.join("readable.bin"), 0o644);
    std::fs::write(fleet.join("locked.bin"), &p.golden).unwrap();
    chmod(&fleet.join("locked.bin"), 0o000);
    let rows_path = out.join("rows.jsonl");
    // As root, file modes do not stop reads: run the audit as `nobody` so the test means something.
    let as_root = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata("/proc/self")
            .map(|m| m.uid() == 0)
            .unwrap_or(false)
    };
    let mut cmd = if as_root {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN]);
        c
    } else {
        Command::new(BIN)
    };
    let status = cmd
        .args([
            "audit",
            fleet.to_str().unwrap(),
            "--manifests",
            mdir.to_str().unwrap(),
            "--insecure-unsigned",
            "-q",
            "-o",
        ])
        .arg(&rows_path)
        .output();
    let Ok(output) = status else {
        crate::harness::skip("setpriv not available to drop root privileges");
        return;
    };
    assert_eq!(
        output.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let (images, _) = rows(&rows_path);
    assert_eq!(images.len(), 2, "{images:#?}");
    let locked = images.iter().find(|r| r["path"] == "locked.bin").unwrap();
    assert_eq!(locked["verdict"], "error", "{locked}");
    assert_eq!(locked["error"]["code"], "read-error", "{locked}");
    assert!(
        locked["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ermission denied"),
        "{locked}"
    );
    let readable = images.iter().find(|r| r["path"] == "readable.bin").unwrap();
    assert_eq!(readable["verdict"], "clean", "{readable}");
}
