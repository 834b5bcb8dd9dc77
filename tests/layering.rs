//! The plan of the house, checked from the source: which top-level module of `src/` may import which.
//!
//! ```text
//! finding → error → input → region → hash → formats → coverage → manifest → compare → check → report → scan → audit → cli
//! ```
//! Each stage depends only on the ones before it (a module may skip floors downwards, never go up), so there
//! is no import cycle between top-level modules. The rules of issue 10 are spelled out as their own asserts so
//! a violation names the edge that broke them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level modules from the ground floor up. A module may import modules of a lower floor only.
const FLOORS: &[&[&str]] = &[
    &["finding"],
    &["error"],
    &["input"],
    &["region"],
    &["hash"],
    &["formats"],
    // Which signature covers each byte: reads the tree's `covered-by`/`coverage` attributes.
    &["coverage"],
    &["manifest"],
    &["compare"],
    &["check", "export"],
    &["report"],
    &["scan"],
    &["audit"],
    &["cli"],
];

fn floor(m: &str) -> Option<usize> {
    FLOORS.iter().position(|f| f.contains(&m))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Top-level module of a source file (`src/formats/uefi/fv.rs` → `formats`), `None` for lib.rs/main.rs.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main")).then(|| name.to_string())
}

/// Modules a file refers to (`crate::x` in the library, `fwscan::x` in the binary), comments left out.
fn references(text: &str, prefix: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let code = match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        };
        let mut rest = code;
        while let Some(i) = rest.find(prefix) {
            let before_ok = i == 0
                || !rest.as_bytes()[i - 1].is_ascii_alphanumeric()
                    && rest.as_bytes()[i - 1] != b'_';
            let after = &rest[i + prefix.len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_' || c.is_ascii_digit())
                .collect();
            if before_ok && !name.is_empty() {
                out.insert(name.clone());
            }
            // `use crate::{a, b::c}` groups.
            if before_ok && after.starts_with('{') {
                let group = &after[1..after.find('}').unwrap_or(after.len())];
                for part in group.split(',') {
                    let n: String = part
                        .trim()
                        .chars()
                        .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                        .collect();
                    if !n.is_empty() {
                        out.insert(n);
                    }
                }
            }
            rest = &rest[i + prefix.len()..];
        }
    }
    out
}

/// Edges `from → to` between top-level modules, with one file that makes each.
fn edges() -> BTreeMap<(String, String), PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut out = BTreeMap::new();
    for f in files {
        let Some(from) = module_of(&src, &f) else {
            continue;
        };
        let text = std::fs::read_to_string(&f).unwrap();
        let prefix = if from == "cli" { "fwscan::" } else { "crate::" };
        for to in references(&text, prefix) {
            if to != from && floor(&to).is_some() {
                out.entry((from.clone(), to)).or_insert_with(|| f.clone());
            }
        }
    }
    out
}

#[test]
fn every_top_level_module_has_a_floor() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for e in std::fs::read_dir(&src).unwrap() {
        let p = e.unwrap().path();
        if let Some(m) = module_of(&src, &p) {
            assert!(
                floor(&m).is_some(),
                "src/{m} is not placed on a floor of tests/layering.rs"
            );
        }
    }
}

#[test]
fn modules_import_only_downwards() {
    let mut bad = Vec::new();
    for ((from, to), file) in edges() {
        let (Some(a), Some(b)) = (floor(&from), floor(&to)) else {
            continue;
        };
        if b >= a {
            bad.push(format!("{from} → {to} ({})", file.display()));
        }
    }
    assert!(
        bad.is_empty(),
        "upward or sideways imports:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_rules_of_issue_10_hold() {
    let e = edges();
    let forbid = |from: &[&str], to: &[&str]| {
        for f in from {
            for t in to {
                if let Some(file) = e.get(&(f.to_string(), t.to_string())) {
                    panic!("{f} must not import {t} ({})", file.display());
                }
            }
        }
    };
    forbid(
        &["input", "formats", "region", "hash", "finding"],
        &[
            "compare", "manifest", "check", "audit", "report", "cli", "scan",
        ],
    );
    forbid(
        &["manifest"],
        &["compare", "audit", "check", "report", "cli"],
    );
    forbid(&["compare"], &["formats"]);
    forbid(
        &["finding"],
        &["error", "input", "region", "hash", "formats"],
    );
}

#[test]
fn the_checker_sees_imports() {
    // The checker itself must be able to fail: it finds the references it is meant to find.
    let r = references(
        "use crate::{finding::Code, region};\nlet x = crate::hash::digest(); // crate::cli\n",
        "crate::",
    );
    assert_eq!(
        r.into_iter().collect::<Vec<_>>(),
        vec!["finding", "hash", "region"]
    );
    assert!(!edges().is_empty());
}
