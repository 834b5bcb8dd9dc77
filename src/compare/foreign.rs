//! Comparison of an image with another producer's CoRIM (a profile other than fwscan's: reference values
//! without the region tree a [`super::compare`] needs). Each reference value is located in the image's
//! tree by its `mkey`, its digests are checked against the bytes found there, and whatever can run in the
//! image but no reference value accounts for is named. See `docs/corim.md` ("Others' CoRIMs").
//!
//! * `#6.37` UUID: every UEFI FFS file with that GUID; each must match (the digest covers the whole FFS
//!   file, header included, as fwscan's own export hashes it). Text: the node of that path (`/` the
//!   image). Any other key (uint, OID, none) cannot be located: `reference-missing`, so the verdict is never
//!   CLEAN, and the rest of the comparison is still reported.
//! * A value naming nothing in the image: `reference-missing`. A digest that differs: the code a manifest
//!   comparison gives a modified node of that kind (`module-modified` for an FFS file, ...), reported where
//!   the change is ([`fold`]: a changed driver also changes the volume and image digests around it).
//! * Coverage: the nodes a `baseline` of this image would pin as static (not blank, not per-machine, not
//!   ignored), minus those equal to or inside a matched node (or a node the CoRIM declares
//!   runtime-updatable), are `not-covered`: one finding per outermost node nothing inside of which is
//!   accounted for. A container's headers are its structure (validated by its parser), as in a part-by-part
//!   comparison.

use std::collections::{HashMap, HashSet};

use sha2::Digest as _;

use super::{code_for, Change, ScanResult, ScanStats};
use crate::finding::{Code, Finding};
use crate::hash::{self, Alg};
use crate::manifest::corim::{uuid_text, MKey, Measurement};
use crate::manifest::verify::VerifiedCorim;
use crate::manifest::{pinned_structure, BaselineOptions, Node};
use crate::region::{Policy, Region, RegionKind};

/// Why the coverage of a dump by a foreign CoRIM cannot be decided: the dump's tree cannot be baselined.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the image cannot be baselined for coverage: {0}")]
pub struct CoverageError(pub String);

/// The comparison of `tree` (parsed eagerly by its own structure) with a verified foreign CoRIM. `Err`:
/// the tree cannot be baselined (deeper than a manifest holds), so coverage cannot be decided.
pub fn compare(v: &VerifiedCorim, tree: &Region, blank: u8) -> Result<ScanResult, CoverageError> {
    // What a baseline of the dump would pin (its node tree, not its digests: the reference values'
    // digests are checked against the nodes they name, and nothing else is hashed).
    let own = pinned_structure(
        tree,
        &BaselineOptions {
            blank,
            ..BaselineOptions::default()
        },
    )
    .map_err(|e| CoverageError(e.to_string()))?;
    let index = Index::of(&own);
    let mut findings = Vec::new();
    let mut mismatched: HashMap<&str, Finding> = HashMap::new();
    // Paths a reference value accounts for (matched digests, declared runtime-updatable).
    let mut accounted: HashSet<String> = HashSet::new();
    let mut hashed = 0u64;
    for (comid, m) in v.corim().measurements() {
        let env = environment(comid);
        let Some(nodes) = index.locate(m.mkey.as_ref()) else {
            findings.push(unlocatable(m, &env));
            continue;
        };
        if nodes.is_empty() {
            findings.push(missing(m, &env));
            continue;
        }
        if m.digests.is_empty() {
            // Per machine by the vendor's word (as a manifest's `mutable`); a value with neither digest nor
            // that flag asserts nothing about the bytes and accounts for none of them.
            if m.runtime_updatable == Some(true) {
                accounted.extend(nodes.iter().map(|n| n.path.clone()));
            }
            continue;
        }
        for n in nodes {
            let Some(r) = tree.find(&n.path) else {
                continue;
            };
            match check(m, r, &mut hashed) {
                Checked::Match => {
                    accounted.insert(n.path.clone());
                }
                Checked::Differs {
                    alg,
                    expected,
                    actual,
                } => {
                    let mut f = Finding::on(
                        code_for(n.kind, Change::Modified),
                        n,
                        format!(
                            "{alg} differs from the reference value `{}` of {env}",
                            mkey_text(m)
                        ),
                    );
                    f.expected_digest = Some(expected);
                    f.actual_digest = Some(actual);
                    f.expected_size = None;
                    f.actual_size = Some(n.size);
                    mismatched.entry(n.path.as_str()).or_insert(f);
                }
                Checked::NoKnownAlg(algs) => {
                    // Not checked is not matched: the node stays uncovered unless something else covers it.
                    let mut f = Finding::on(
                        Code::ReferenceMissing,
                        n,
                        format!(
                            "the reference value `{}` of {env} carries only digests fwscan cannot compute ({}): it was not checked",
                            mkey_text(m),
                            algs.join(", ")
                        ),
                    );
                    f.expected_digest = None;
                    findings.push(f);
                }
            }
        }
    }
    // Reported where the change is, as a manifest comparison reports it.
    findings.extend(fold(&own, &mut mismatched, &mut accounted));
    let mut uncovered = Vec::new();
    coverage(&own, &accounted, &mut uncovered);
    for n in uncovered {
        findings.push(Finding::on(
            Code::NotCovered,
            n,
            format!(
                "{} ({} bytes at {:#x}): no reference value of the CoRIM accounts for it",
                what(n),
                n.size,
                n.offset
            ),
        ));
        if let Some(f) = findings.last_mut() {
            f.expected_digest = None;
            f.expected_size = None;
        }
    }
    Ok(ScanResult {
        findings,
        stats: ScanStats {
            bytes_hashed: hashed,
            nodes_compared: v.corim().measurements().count() as u64,
            nodes_expanded: 0,
        },
        ..ScanResult::default()
    })
}

/// Structure whose change follows from a change beside it (a file that grew moves the padding and free
/// space after it and changes its own header's size and checksum).
fn follows(f: &Finding) -> bool {
    matches!(
        f.kind,
        Some(RegionKind::Header | RegionKind::Padding | RegionKind::FreeSpace)
    ) && super::collapsible(f.code)
}

/// The digest mismatches of `n`'s subtree, reported where the change is, as [`super::compare`] does: a
/// node whose parts differ is explained by them (its own mismatch is dropped); headers, padding and free
/// space that only follow from a change beside them are folded; a module (FFS file) reports the changes
/// of its sections as one finding on itself. Every node reported accounts for itself in coverage (it is
/// named by a finding already), and so does structure folded into a change beside it.
fn fold(
    n: &Node,
    mismatched: &mut HashMap<&str, Finding>,
    accounted: &mut HashSet<String>,
) -> Vec<Finding> {
    if mismatched.is_empty() {
        return Vec::new();
    }
    let mut own = mismatched.remove(n.path.as_str());
    let mut below = Vec::new();
    for c in &n.children {
        below.extend(fold(c, mismatched, accounted));
    }
    let (structure, structural): (Vec<Finding>, Vec<Finding>) =
        below.into_iter().partition(follows);
    let mut below = if structural.is_empty() {
        structure
    } else {
        accounted.extend(structure.into_iter().map(|f| f.path));
        structural
    };
    if below.is_empty() {
        below.extend(own.take());
    }
    if n.kind.is_module() {
        let (parts, mut keep): (Vec<Finding>, Vec<Finding>) = below
            .into_iter()
            .partition(|f| super::collapsible(f.code) && f.path != n.path);
        if !parts.is_empty() {
            let mut f = own.take().unwrap_or_else(|| {
                let mut f = Finding::on(
                    code_for(n.kind, Change::Modified),
                    n,
                    "its parts differ from their reference values",
                );
                f.expected_digest = None;
                f.expected_size = None;
                f
            });
            f.changed = parts.iter().map(|c| c.path.clone()).collect();
            f.message = format!(
                "module changed in {}; {}",
                f.changed
                    .iter()
                    .map(|p| p.strip_prefix(&n.path).unwrap_or(p).trim_start_matches('/'))
                    .collect::<Vec<_>>()
                    .join(", "),
                f.message
            );
            keep.insert(0, f);
        }
        below = keep;
    }
    accounted.extend(below.iter().map(|f| f.path.clone()));
    below
}

/// The nodes of the image's baseline by path and by FFS GUID.
struct Index<'a> {
    paths: HashMap<&'a str, &'a Node>,
    guids: HashMap<String, Vec<&'a Node>>,
}

impl<'a> Index<'a> {
    fn of(root: &'a Node) -> Index<'a> {
        let mut paths = HashMap::new();
        let mut guids: HashMap<String, Vec<&Node>> = HashMap::new();
        root.walk(&mut |n| {
            paths.insert(n.path.as_str(), n);
            if n.kind == RegionKind::File {
                if let Some(g) = n.attrs.get("guid").and_then(|g| g.as_str()) {
                    guids.entry(g.to_ascii_uppercase()).or_default().push(n);
                }
            }
        });
        Index { paths, guids }
    }

    /// The nodes a key names (empty: none in this image); `None`: a key of a kind that names no node.
    fn locate(&self, k: Option<&MKey>) -> Option<Vec<&'a Node>> {
        match k? {
            MKey::Uuid(u) => Some(self.guids.get(&uuid_text(u)).cloned().unwrap_or_default()),
            MKey::Text(t) => {
                let p = if t == "/" { "" } else { t.as_str() };
                Some(self.paths.get(p).map(|n| vec![*n]).unwrap_or_default())
            }
            MKey::Uint(_) | MKey::Oid(_) => None,
        }
    }
}

enum Checked {
    Match,
    Differs {
        alg: String,
        expected: String,
        actual: String,
    },
    NoKnownAlg(Vec<String>),
}

/// Every digest of `m` that fwscan can compute, against `r`'s bytes: all must match.
fn check(m: &Measurement, r: &Region, hashed: &mut u64) -> Checked {
    let mut checked = 0;
    for (alg, want) in &m.digests {
        let got = match alg.as_str() {
            "sha-256" | "sha-384" => {
                let a = if alg == "sha-256" {
                    Alg::Sha256
                } else {
                    Alg::Sha384
                };
                let (d, n) = hash::region_digest_counted(a, r);
                *hashed = hashed.saturating_add(n);
                d
            }
            "sha-512" => {
                *hashed = hashed.saturating_add(r.bytes().len() as u64);
                hex::encode(sha2::Sha512::digest(r.bytes()))
            }
            _ => continue,
        };
        checked += 1;
        let want = hex::encode(want);
        if got != want {
            return Checked::Differs {
                alg: alg.clone(),
                expected: want,
                actual: got,
            };
        }
    }
    if checked == 0 {
        return Checked::NoKnownAlg(m.digests.iter().map(|(a, _)| a.clone()).collect());
    }
    Checked::Match
}

fn environment(c: &crate::manifest::corim::Comid) -> String {
    format!(
        "environment {{vendor {}, model {}{}}}",
        c.vendor.as_deref().unwrap_or("-"),
        c.model.as_deref().unwrap_or("-"),
        c.layer.map(|l| format!(", layer {l}")).unwrap_or_default()
    )
}

fn mkey_text(m: &Measurement) -> String {
    match (&m.mkey, &m.name) {
        (Some(k), Some(n)) if k.to_string() != *n => format!("{k}` (`{n}`)"),
        (Some(k), _) => k.to_string(),
        (None, Some(n)) => format!("(no mkey)` (`{n}`)"),
        (None, None) => "(no mkey)".into(),
    }
}

fn reference_finding(m: &Measurement, message: String) -> Finding {
    let mut f = Finding::general(Code::ReferenceMissing, message);
    f.path = m.mkey.as_ref().map(|k| k.to_string()).unwrap_or_default();
    f.name = m.name.clone();
    f.expected_digest = m.digests.first().map(|(_, d)| hex::encode(d));
    f
}

fn missing(m: &Measurement, env: &str) -> Finding {
    let what = match &m.mkey {
        Some(MKey::Uuid(_)) => "no UEFI FFS file with this GUID",
        _ => "no node at this path",
    };
    reference_finding(
        m,
        format!(
            "the reference value `{}` of {env} names nothing in the image ({what}): the dump lacks something the vendor shipped",
            mkey_text(m)
        ),
    )
}

fn unlocatable(m: &Measurement, env: &str) -> Finding {
    let kind = match &m.mkey {
        Some(MKey::Uint(_)) => "an integer",
        Some(MKey::Oid(_)) => "an OID",
        _ => "no",
    };
    reference_finding(
        m,
        format!(
            "the reference value `{}` of {env} has {kind} mkey, which names no node fwscan can locate (a #6.37 UUID is an FFS file GUID, text a node path): it was not checked",
            mkey_text(m)
        ),
    )
}

/// What is left of a node for coverage.
enum Cover<'a> {
    /// Nothing to say: blank, per machine, ignored, a container's header.
    Neutral,
    /// Accounted for by a reference value.
    Covered,
    /// Nothing inside is accounted for: the node is reported whole.
    Whole,
    /// Some of it is accounted for: these outermost nodes are not.
    Partial(Vec<&'a Node>),
}

fn cover<'a>(n: &'a Node, accounted: &HashSet<String>) -> Cover<'a> {
    if accounted.contains(n.path.as_str()) {
        return Cover::Covered;
    }
    if matches!(n.policy, Policy::Blank | Policy::Mutable | Policy::Ignore)
        || n.kind == RegionKind::Header
        || n.size == 0
    {
        return Cover::Neutral;
    }
    if n.children.is_empty() {
        return Cover::Whole;
    }
    let (mut covered, mut partial, mut out) = (false, false, Vec::new());
    for c in &n.children {
        match cover(c, accounted) {
            Cover::Neutral => {}
            Cover::Covered => covered = true,
            Cover::Whole => out.push(c),
            Cover::Partial(v) => {
                partial = true;
                out.extend(v);
            }
        }
    }
    match (out.is_empty(), covered || partial) {
        (true, true) => Cover::Covered,
        (true, false) => Cover::Neutral,
        (false, false) => Cover::Whole,
        (false, true) => Cover::Partial(out),
    }
}

/// The outermost static nodes of `root` no reference value accounts for.
fn coverage<'a>(root: &'a Node, accounted: &HashSet<String>, out: &mut Vec<&'a Node>) {
    match cover(root, accounted) {
        Cover::Whole => out.push(root),
        Cover::Partial(v) => out.extend(v),
        Cover::Neutral | Cover::Covered => {}
    }
}

fn what(n: &Node) -> String {
    let name = if n.name.is_empty() { "/" } else { &n.name };
    match n.kind {
        RegionKind::Volume => format!("firmware volume `{name}`"),
        RegionKind::File => format!("firmware file `{name}`"),
        k => format!("{} `{name}`", k.as_str()),
    }
}
