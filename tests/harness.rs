//! The shared harness of the one integration test binary (ripgrep's `tests/util.rs` is the model).
//!
//! * [`fwscan`] builds a command for the binary under test, with the environment that could change its
//!   behaviour (trust policy, state, password) removed and no standard input.
//! * [`run`] and [`output`] run it.
//! * [`skip`], [`have_tool`] and [`have_file`] handle missing reference tools and fixtures: a cross-check that
//!   cannot run says so visibly (`SKIPPED: ...` in the test output), and under CI (`CI=true`, set by the CI
//!   runner) it fails instead, because a cross-check that did not run is not a pass.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_fwscan");

/// A `fwscan` command with a clean environment.
pub fn fwscan() -> Command {
    let mut c = Command::new(BIN);
    c.env_remove("FWSCAN_TRUST")
        .env_remove("FWSCAN_STATE")
        .env_remove("FWSCAN_PASSWORD")
        .stdin(Stdio::null());
    c
}

/// Runs `fwscan ARGS`: (exit code, stdout, stderr).
pub fn run(args: &[&str]) -> (i32, String, String) {
    split(output(args))
}

/// Runs `fwscan ARGS` and returns its raw output.
pub fn output(args: &[&str]) -> Output {
    fwscan().args(args).output().expect("run fwscan")
}

/// (exit code, stdout, stderr) of an output.
pub fn split(out: Output) -> (i32, String, String) {
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `(code, path)` of every finding of a report (or of an `inspect` document).
pub fn code_paths(doc: &serde_json::Value) -> Vec<(String, String)> {
    doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["code"].as_str().unwrap().to_string(),
                f["path"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// `(code, path, message)` of every finding of a report (or of an `inspect` document).
pub fn code_path_messages(doc: &serde_json::Value) -> Vec<(String, String, String)> {
    code_paths(doc)
        .into_iter()
        .zip(doc["findings"].as_array().unwrap())
        .map(|((c, p), f)| (c, p, f["message"].as_str().unwrap_or("").to_string()))
        .collect()
}

/// `fwscan inspect --format json PATH`, which must succeed.
#[track_caller]
pub fn inspect_json(path: &Path) -> serde_json::Value {
    let out = fwscan()
        .args(["inspect", "--format", "json"])
        .arg(path)
        .output()
        .expect("run fwscan");
    assert!(
        out.status.success(),
        "fwscan inspect failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("inspect JSON")
}

/// Every evidence record of one scheme in an `inspect --format json` document, in tree order.
pub fn evidence_of(doc: &serde_json::Value, scheme: &str) -> Vec<serde_json::Value> {
    fn rec(n: &serde_json::Value, scheme: &str, out: &mut Vec<serde_json::Value>) {
        for e in n["evidence"].as_array().into_iter().flatten() {
            if e["scheme"] == scheme {
                out.push(e.clone());
            }
        }
        for c in n["children"].as_array().into_iter().flatten() {
            rec(c, scheme, out);
        }
    }
    let mut out = Vec::new();
    rec(&doc["root"], scheme, &mut out);
    out
}

/// What fwscan says of one image with `extra` options: `check`'s exit code and finding codes, and the
/// evidence records of `scheme` in `inspect` (which must succeed).
pub fn check_and_evidence(
    image: &Path,
    extra: &[&str],
    scheme: &str,
) -> (i32, Vec<String>, Vec<serde_json::Value>) {
    let img = image.to_str().unwrap();
    let mut args = vec!["check", img, "--format", "json"];
    args.extend_from_slice(extra);
    let (exit, out, err) = run(&args);
    let doc: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out} {err}"));
    let codes = code_paths(&doc[0]).into_iter().map(|(c, _)| c).collect();
    let mut args = vec!["inspect", img, "--format", "json"];
    args.extend_from_slice(extra);
    let (code, out, err) = run(&args);
    assert_eq!(code, 0, "inspect: {err}");
    let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
    (exit, codes, evidence_of(&doc, scheme))
}

/// Whether the tests run under CI, where nothing may be skipped.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Reports that a cross-check cannot run. Prints `SKIPPED: why` (visible with `cargo test -- --nocapture`
/// and in the failure output); under CI it fails the test instead.
#[track_caller]
pub fn skip(why: &str) {
    if under_ci() {
        panic!("a required reference tool or fixture is missing under CI: {why}");
    }
    eprintln!("SKIPPED: {why}");
    println!("SKIPPED: {why}");
}

/// Whether `tool` can be run (found on PATH); otherwise [`skip`]s, naming the Debian package.
#[track_caller]
pub fn have_tool(tool: &str, package: &str) -> bool {
    let found = std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|d| {
            let p = d.join(tool);
            p.is_file()
        })
    });
    if !found {
        skip(&format!(
            "`{tool}` is not installed (Debian package {package})"
        ));
    }
    found
}

/// Whether `path` exists; otherwise [`skip`]s, naming where it comes from.
#[track_caller]
pub fn have_file(path: impl AsRef<Path>, from: &str) -> bool {
    let p = path.as_ref();
    let ok = p.exists();
    if !ok {
        skip(&format!("{} is missing ({from})", p.display()));
    }
    ok
}

/// The real third-party fixtures beside the checkout (`../shared/fixtures/`).
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures")
}

/// A fixture file, or `None` after [`skip`] when it is missing.
#[track_caller]
pub fn fixture(rel: &str) -> Option<PathBuf> {
    let p = fixtures().join(rel);
    have_file(&p, "../shared/fixtures, see its README").then_some(p)
}

/// Whether a file is one repeated byte 0x00 or 0xFF (an erased chip or store, or a failed read).
pub fn all_one_byte(path: &Path) -> bool {
    let b = std::fs::read(path).unwrap_or_default();
    b.first()
        .is_some_and(|&x| (x == 0 || x == 0xFF) && b.iter().all(|&y| y == x))
}
