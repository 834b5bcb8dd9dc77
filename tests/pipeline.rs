//! The one scan pipeline (issue 10): per-image limits that hold through lazy expansion, one JUnit document
//! and one JSON shape for any number of images, trust status in every machine format.

use std::path::Path;
use std::sync::Arc;

use fwscan::finding::Code;
use fwscan::formats::uefi::build::{self as b, guid_bytes};
use fwscan::formats::{self, ParseOptions};
use fwscan::input::Data;
use fwscan::region::Region;
use serde_json::Value;

use crate::harness::{fwscan, run, split};

/// A firmware volume of `n` drivers, each holding one LZMA section that decompresses to `each` bytes
/// (derived from `seed`, so two seeds give different contents of the same size).
fn compressed_volume(n: usize, each: usize, seed: u8) -> Vec<u8> {
    let files: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            let mut raw = vec![seed.wrapping_add(i as u8); each];
            raw[0] = i as u8;
            let inner = b::sections(&[b::section(0x19, &raw)]);
            b::file(
                guid_bytes(&format!("11111111-2222-3333-4444-{:012X}", i + 1)),
                0x07,
                &b::sections(&[b::lzma_section(&inner), b::ui(&format!("Drv{i}"))]),
                0,
            )
        })
        .collect();
    let size = files.iter().map(|f| f.len().div_ceil(8) * 8).sum::<usize>() + 0x1000;
    b::volume(b::FFS2, None, &files, size.div_ceil(0x1000) * 0x1000)
}

fn lazy(bytes: Vec<u8>, total: u64) -> Region {
    let opts = ParseOptions {
        eager: false,
        max_decompressed_total: total,
        ..ParseOptions::default()
    };
    formats::parse_image(Arc::new(Data::Owned(bytes)), &opts)
}

/// Expands every lazy node of a tree, the way a comparison does, until none is left.
fn expand_all(r: &mut Region) -> usize {
    let mut n = 0;
    if r.is_lazy() && r.expand() {
        n += 1;
    }
    for c in &mut r.children {
        n += expand_all(c);
    }
    n
}

fn limit_notes(r: &Region) -> usize {
    let mut n = 0;
    r.walk(&mut |x| {
        n += x
            .notes
            .iter()
            .filter(|n| n.code == Code::LimitExceeded)
            .count()
    });
    n
}

#[test]
fn lazy_expansion_is_charged_to_the_images_own_budget() {
    // Four sections of 1 MiB each under a budget of 2.5 MiB: the first two expand, the others are refused
    // by the budget of the parse that made the lazy nodes (no fresh budget per expansion).
    let mut tree = lazy(compressed_volume(4, 1 << 20, 1), 5 << 19);
    assert!(expand_all(&mut tree) >= 4);
    assert_eq!(limit_notes(&tree), 2, "{tree:#?}");
    // With a budget for all of them, none is refused: the test can fail both ways.
    let mut tree = lazy(compressed_volume(4, 1 << 20, 1), 8 << 20);
    expand_all(&mut tree);
    assert_eq!(limit_notes(&tree), 0);
}

#[test]
fn nesting_depth_holds_through_lazy_expansion() {
    // 40 LZMA sections nested in each other: expanded lazily one level at a time, the depth keeps counting
    // from where the node was parsed, so the nesting limit (24) stops it.
    let mut inner = b::sections(&[b::section(0x19, b"core")]);
    for _ in 0..40 {
        inner = b::lzma_section(&inner);
    }
    let file = b::file(
        guid_bytes("AAAAAAAA-2222-3333-4444-555555555555"),
        0x07,
        &inner,
        0,
    );
    let vol = b::volume(b::FFS2, None, &[file], 0x10000);
    let mut tree = lazy(vol, 256 << 20);
    let mut rounds = 0;
    while expand_all(&mut tree) > 0 {
        rounds += 1;
        assert!(rounds < 100, "expansion does not end");
    }
    assert_eq!(limit_notes(&tree), 1);
    assert!(
        rounds <= 24,
        "expanded {rounds} levels, past the depth limit"
    );
}

#[test]
fn scan_stops_changed_compressed_sections_at_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    std::fs::write(p("golden.bin"), compressed_volume(4, 1 << 20, 1)).unwrap();
    std::fs::write(p("changed.bin"), compressed_volume(4, 1 << 20, 7)).unwrap();
    let (c, _, e) = run(&["baseline", &p("golden.bin"), "-o", &p("m.json")]);
    assert_eq!(c, 0, "{e}");
    let scan = |budget: &str| {
        let (c, out, e) = run(&[
            "scan",
            &p("changed.bin"),
            "-m",
            &p("m.json"),
            "--insecure-unsigned",
            "--max-decompressed",
            budget,
            "--format",
            "json",
        ]);
        assert_eq!(c, 1, "{e}");
        let v: Value = serde_json::from_str(&out).unwrap();
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["code"] == "limit-exceeded")
            .count()
    };
    // 3 MiB: two of the four changed sections (1 MiB and a section header each) expand, two are stopped
    // at the budget of the scan's parse.
    assert_eq!(scan("3"), 2);
    assert_eq!(scan("64"), 0);
}

fn two_images(dir: &Path) -> (String, String) {
    let a = dir.join("a.bin");
    let c = dir.join("b.bin");
    std::fs::write(&a, compressed_volume(1, 2048, 9)).unwrap();
    std::fs::write(&c, compressed_volume(1, 4096, 3)).unwrap();
    (a.display().to_string(), c.display().to_string())
}

#[test]
fn check_junit_is_one_document_with_a_suite_per_image() {
    let dir = tempfile::tempdir().unwrap();
    let (a, c) = two_images(dir.path());
    let (code, out, e) = run(&["check", &a, &c, "--format", "junit"]);
    assert_eq!(code, 0, "{e}");
    assert_eq!(out.matches("<?xml").count(), 1, "{out}");
    assert_eq!(out.matches("<testsuites").count(), 1, "{out}");
    assert_eq!(out.matches("<testsuite ").count(), 2, "{out}");
    assert!(out.trim_end().ends_with("</testsuites>"), "{out}");
}

#[test]
fn check_json_has_one_shape_for_one_and_many_images() {
    let dir = tempfile::tempdir().unwrap();
    let (a, c) = two_images(dir.path());
    for images in [vec![a.as_str()], vec![a.as_str(), c.as_str()]] {
        let mut args = vec!["check", "--format", "json"];
        args.extend(&images);
        let (code, out, e) = run(&args);
        assert_eq!(code, 0, "{e}");
        let v: Value = serde_json::from_str(&out).unwrap();
        let arr = v.as_array().expect("an array of reports");
        assert_eq!(arr.len(), images.len());
        for r in arr {
            assert_eq!(r["command"], "check");
            assert_eq!(r["schema_version"], 1);
        }
    }
}

#[test]
fn write_errors_reach_the_exit_code() {
    // /dev/full accepts no bytes: the report cannot be written, so the run could not decide (2).
    let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
        crate::harness::skip("/dev/full is not available");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = two_images(dir.path());
    let out = fwscan()
        .args(["check", &a, "--format", "json"])
        .stdout(full)
        .output()
        .unwrap();
    let (code, _, e) = split(out);
    assert_eq!(code, 2, "{e}");
    assert!(e.contains("writing the report"), "{e}");
}

#[test]
fn machine_formats_say_whether_the_baseline_was_verified() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n).display().to_string();
    std::fs::write(p("g.bin"), compressed_volume(1, 4096, 1)).unwrap();
    let (c, _, e) = run(&["baseline", &p("g.bin"), "-o", &p("m.json")]);
    assert_eq!(c, 0, "{e}");
    let base = [
        "scan",
        &p("g.bin"),
        "-m",
        &p("m.json"),
        "--insecure-unsigned",
        "--format",
    ];
    let (c, sarif, e) = run(&[&base[..], &["sarif"]].concat());
    assert_eq!(c, 0, "{e}");
    let v: Value = serde_json::from_str(&sarif).unwrap();
    let props = &v["runs"][0]["properties"]["fwscan"];
    assert_eq!(props["baselines_verified"], false, "{props}");
    assert_eq!(props["baselines"][0]["trust"], "UNVERIFIED");
    assert_eq!(
        v["runs"][0]["invocations"][0]["properties"]["fwscan"]["baselines_verified"],
        false
    );
    let (c, junit, e) = run(&[&base[..], &["junit"]].concat());
    assert_eq!(c, 0, "{e}");
    assert!(
        junit.contains("<property name=\"fwscan.trust\" value=\"UNVERIFIED\"/>"),
        "{junit}"
    );
    // A verified scan says `verified` (the signed fixtures of testdata/).
    let root = env!("CARGO_MANIFEST_DIR");
    let (c, junit, e) = run(&[
        "scan",
        &format!("{root}/testdata/core/golden.bin"),
        "-m",
        &format!("{root}/testdata/core/golden.manifest.json"),
        "--trust",
        &format!("{root}/testdata/trust.json"),
        "--format",
        "junit",
    ]);
    assert_eq!(c, 0, "{e}");
    assert!(
        junit.contains("<property name=\"fwscan.trust\" value=\"verified\"/>"),
        "{junit}"
    );
}
