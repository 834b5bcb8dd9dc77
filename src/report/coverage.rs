//! Coverage: which protection covers each byte of an image (`fwscan inspect --coverage`).
//!
//! A fold over the tree's [`Evidence`](crate::finding::Evidence): every valid check with a protection
//! class covers its node (an ME module whose hash matches its signed manifest, a microcode update, an ACM)
//! or the byte ranges it names (Boot Guard IBB segments, on the node of the boot policy manifest).
//!
//! Every other byte gets a default from its leaf node: `none` for per-machine or ignored data (a `mutable`
//! or `ignore` node or a descendant of one, unless `pinned`) and for blank bytes (`blank` policy: free
//! space, erased padding); `baseline-only` for the rest (static bytes that only an fwscan baseline protects).
//!
//! Overlaps: the strongest protection wins per byte, in the order of [`Protection::ALL`]: hardware-rooted
//! signatures first (Boot Guard IBB under a key manifest whose key the trust policy pins, verified by the
//! ACM with the OEM key fused in the chipset; the ACM, microcode and ME manifests, verified by the CPU or ME
//! ROM with Intel's keys), then a vendor's release package signature, then a Boot Guard IBB whose key
//! manifest no one pins (self-signed: the image is consistent with itself, which any re-signer achieves),
//! then the baseline, then nothing. The ranges are contiguous, sorted and cover the image exactly once, so
//! the totals sum to the image size.
//!
//! Why a range got less than it seemed to claim is said by its evidence too: range evidence (bytes that are
//! not its node, such as Boot Guard IBB segments, or a signed structure the Intel pass found) that names
//! a protection class but does not give it (invalid or not verified: its `why`), or gives it only on the
//! word of a key that nothing anchors (valid, trust `self-signed`: the parser chose the weaker class).
//! [`compute`] lists those as [`Coverage::notes`]. Node evidence needs no note: `inspect` shows it, with
//! its `why`, on the node it covers.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

pub use crate::finding::evidence::Protection;
use crate::finding::evidence::{Covers, Evidence, Status, Trust};
use crate::region::{Policy, Region, Space};

/// One contiguous range with one protection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Range {
    pub offset: u64,
    pub size: u64,
    pub protection: Protection,
    /// What gives the protection (the node path or the `by` of a root range); absent for the defaults.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

/// The coverage of one image.
#[derive(Debug, Clone, Serialize)]
pub struct Coverage {
    pub size: u64,
    pub ranges: Vec<Range>,
    /// Bytes per protection, every protection listed (strongest first), zeros included.
    pub totals: BTreeMap<&'static str, u64>,
    /// Why a range got a weaker protection than its structure suggests (from its range evidence).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl Coverage {
    /// Bytes with protection `p`.
    pub fn total(&self, p: Protection) -> u64 {
        self.totals.get(p.as_str()).copied().unwrap_or(0)
    }
}

struct Interval {
    start: u64,
    end: u64,
    prot: Protection,
    by: Option<String>,
}

/// Computes the coverage of a finalized tree.
pub fn compute(root: &Region) -> Coverage {
    let size = root.size;
    let mut iv = Vec::new();
    let mut notes = Vec::new();
    collect(root, root, false, false, &mut iv, &mut notes);
    let mut cov = sweep(size, iv);
    let mut seen = std::collections::HashSet::new();
    notes.retain(|n| seen.insert(n.clone()));
    cov.notes = notes;
    cov
}

/// Why range evidence gives its bytes less than the class it names, if it does: it did not hold (its
/// status and why), or it holds on the word of a self-signed key (the weaker class its parser chose).
/// `by` names the signer, or the node when there is none.
fn weaker(e: &Evidence, by: &str) -> Option<String> {
    let Covers::Ranges(_) = e.covers else {
        return None;
    };
    let p = e.protection?;
    match &e.status {
        Status::Valid if e.trust == Trust::SelfSigned => Some(format!(
            "{} by {by}: signed by a key that nothing pins (trust self-signed), so its ranges count as {}, not as hardware- or vendor-verified",
            e.scheme.as_str(),
            p.as_str()
        )),
        Status::Valid => None,
        s => Some(format!(
            "{} by {by}: {}: {}",
            e.scheme.as_str(),
            s.as_str(),
            s.why().unwrap_or("no reason given")
        )),
    }
}

/// Adds the intervals of `r` and its image-space descendants.
fn collect(
    root: &Region,
    r: &Region,
    mutable: bool,
    pinned: bool,
    out: &mut Vec<Interval>,
    notes: &mut Vec<String>,
) {
    let mutable = mutable || matches!(r.policy, Policy::Mutable | Policy::Ignore);
    let pinned = pinned || r.attrs.get("pinned").and_then(|v| v.as_bool()) == Some(true);
    let start = r.offset.min(root.size);
    let end = r.end().min(root.size);
    let here = || {
        if r.path.is_empty() {
            "/".to_string()
        } else {
            r.path.clone()
        }
    };
    for e in &r.evidence {
        if let Some(n) = weaker(e, &e.signer.clone().unwrap_or_else(here)) {
            notes.push(n);
        }
        let Some(p) = e.protects() else {
            continue;
        };
        match &e.covers {
            Covers::Node => {
                if start < end && r.space == Space::Image {
                    out.push(Interval {
                        start,
                        end,
                        prot: p,
                        by: Some(here()),
                    });
                }
            }
            Covers::Ranges(rs) => {
                for &(off, len) in rs {
                    let e_end = off.saturating_add(len).min(root.size);
                    if off < e_end {
                        out.push(Interval {
                            start: off,
                            end: e_end,
                            prot: p,
                            by: Some(e.signer.clone().unwrap_or_else(here)),
                        });
                    }
                }
            }
        }
    }
    let in_image = |c: &Region| c.space == Space::Image && Arc::ptr_eq(&c.data, &root.data);
    let mut any = false;
    for c in r.children.iter().filter(|c| in_image(c)) {
        any = true;
        collect(root, c, mutable, pinned, out, notes);
    }
    if !any && start < end {
        let prot = if r.policy == Policy::Blank || (mutable && !pinned) {
            Protection::None
        } else {
            Protection::BaselineOnly
        };
        out.push(Interval {
            start,
            end,
            prot,
            by: None,
        });
    }
}

/// Resolves overlaps (strongest wins, then the first `by` in path order) and fills holes with `none`.
fn sweep(size: u64, iv: Vec<Interval>) -> Coverage {
    // Events: (position, is_start, interval index); ends before starts at one position.
    let mut ev: Vec<(u64, bool, usize)> = Vec::with_capacity(iv.len() * 2);
    for (i, x) in iv.iter().enumerate() {
        ev.push((x.start, true, i));
        ev.push((x.end, false, i));
    }
    ev.sort_unstable();
    // Active intervals per protection, ordered by (by, index) so the winner is deterministic.
    let weakest = Protection::ALL.len().saturating_sub(1);
    let mut active: Vec<BTreeMap<(Option<&str>, usize), ()>> =
        vec![BTreeMap::new(); Protection::ALL.len()];
    let rank = |p: Protection| {
        Protection::ALL
            .iter()
            .position(|&q| q == p)
            .unwrap_or(weakest)
    };
    let mut ranges: Vec<Range> = Vec::new();
    let mut push = |from: u64, to: u64, prot: Protection, by: Option<&str>| {
        if from >= to {
            return;
        }
        if let Some(last) = ranges.last_mut() {
            if last.protection == prot
                && last.by.as_deref() == by
                && last.offset + last.size == from
            {
                last.size += to - from;
                return;
            }
        }
        ranges.push(Range {
            offset: from,
            size: to - from,
            protection: prot,
            by: by.map(str::to_string),
        });
    };
    let mut cursor = 0u64;
    let mut k = 0;
    while cursor < size {
        // Apply every event at `cursor`.
        while k < ev.len() && ev[k].0 <= cursor {
            let (_, is_start, i) = ev[k];
            let key = (iv[i].by.as_deref(), i);
            let r = rank(iv[i].prot);
            if is_start {
                active[r].insert(key, ());
            } else {
                active[r].remove(&key);
            }
            k += 1;
        }
        let next = ev.get(k).map_or(size, |e| e.0.min(size));
        let winner = active
            .iter()
            .enumerate()
            .find_map(|(r, m)| m.keys().next().map(|(by, _)| (Protection::ALL[r], *by)));
        match winner {
            Some((p, by)) => push(cursor, next, p, by),
            None => push(cursor, next, Protection::None, None),
        }
        // `next > cursor`: every event at or before `cursor` was applied.
        cursor = next;
    }
    let mut totals: BTreeMap<&'static str, u64> =
        Protection::ALL.iter().map(|p| (p.as_str(), 0)).collect();
    for r in &ranges {
        *totals.entry(r.protection.as_str()).or_insert(0) += r.size;
    }
    Coverage {
        size,
        ranges,
        totals,
        notes: Vec::new(),
    }
}

/// Text rendering: ranges, then totals with percentages.
pub fn text(c: &Coverage) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(s, "coverage of {} bytes ({:#x})", c.size, c.size);
    let _ = writeln!(s, "{:<12} {:<12} {:<21} by", "offset", "size", "protection");
    for r in &c.ranges {
        let _ = writeln!(
            s,
            "{:<#12x} {:<#12x} {:<21} {}",
            r.offset,
            r.size,
            r.protection.as_str(),
            r.by.as_deref().unwrap_or("-")
        );
    }
    let _ = writeln!(s, "totals:");
    for p in Protection::ALL {
        let n = c.total(p);
        let pct = if c.size == 0 {
            0.0
        } else {
            n as f64 * 100.0 / c.size as f64
        };
        let _ = writeln!(s, "  {:<21} {:>12} bytes {:>6.2}%", p.as_str(), n, pct);
    }
    if !c.notes.is_empty() {
        let _ = writeln!(s, "notes:");
        for n in &c.notes {
            let _ = writeln!(s, "  {n}");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(p: Protection) -> crate::finding::Evidence {
        crate::finding::Evidence::on_node(
            crate::finding::Scheme::MeModuleHash,
            crate::finding::Status::Valid,
        )
        .with_protection(p)
    }

    fn ranges(p: Protection, offset: u64, size: u64) -> crate::finding::Evidence {
        crate::finding::Evidence::on_node(
            crate::finding::Scheme::BootguardIbb,
            crate::finding::Status::Valid,
        )
        .with_ranges(vec![(offset, size)])
        .with_protection(p)
    }
    use crate::input::Data;
    use crate::region::RegionKind;

    #[test]
    fn strongest_wins_and_totals_sum() {
        let data = Arc::new(Data::Owned(vec![0u8; 100]));
        let mut root = Region::new(RegionKind::Image, "", &data, 0, 100);
        let a = Region::new(RegionKind::Blob, "a", &data, 0, 40)
            .with_evidence(ev(Protection::MeManifest));
        let b = Region::new(RegionKind::Blob, "b", &data, 40, 30).with_policy(Policy::Mutable);
        let c = Region::new(RegionKind::Blob, "c", &data, 70, 20);
        root.children = vec![a, b, c];
        root.evidence = vec![
            ranges(Protection::BootguardIbb, 30, 20),
            ranges(Protection::Acm, 95, 1000),
            // An invalid check protects nothing.
            crate::finding::Evidence {
                status: crate::finding::Status::Invalid("digest differs".into()),
                ..ranges(Protection::BootguardIbb, 50, 20)
            },
        ];
        crate::region::finalize(&mut root);
        let cov = compute(&root);
        let got: Vec<(u64, u64, &str)> = cov
            .ranges
            .iter()
            .map(|r| (r.offset, r.size, r.protection.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (0, 30, "me-manifest"),
                (30, 20, "bootguard-ibb"),
                (50, 20, "none"),
                (70, 20, "baseline-only"),
                (90, 5, "none"),
                (95, 5, "acm"),
            ]
        );
        assert_eq!(cov.totals.values().sum::<u64>(), 100);
        assert_eq!(cov.total(Protection::None), 25);
        assert_eq!(cov.notes, ["bootguard-ibb by /: invalid: digest differs"]);
    }

    /// A self-signed Boot Guard range loses to a vendor package, wins over the baseline default; range
    /// evidence that is self-signed or does not hold says so in the notes, node evidence does not.
    #[test]
    fn self_signed_ranks_below_vendor_and_notes_pass_through() {
        assert!(Protection::ALL.len() == 8);
        let data = Arc::new(Data::Owned(vec![0u8; 100]));
        let mut root = Region::new(RegionKind::Image, "", &data, 0, 100);
        let a = Region::new(RegionKind::Blob, "a", &data, 0, 50)
            .with_evidence(ev(Protection::VendorPackage));
        let b = Region::new(RegionKind::Blob, "b", &data, 50, 50);
        root.children = vec![a, b];
        let self_signed = ranges(Protection::BootguardSelfSigned, 40, 40)
            .with_trust(crate::finding::Trust::SelfSigned)
            .with_signer("km");
        let failed = crate::finding::Evidence {
            status: crate::finding::Status::NotVerified("digest not computed".into()),
            ..ranges(Protection::BootguardIbb, 0, 10)
        };
        root.evidence = vec![self_signed, failed];
        // Node evidence that did not hold: shown on its node, no note.
        root.children[1].evidence.push(crate::finding::Evidence {
            status: crate::finding::Status::Invalid("hash differs".into()),
            ..ev(Protection::MeManifest)
        });
        crate::region::finalize(&mut root);
        let cov = compute(&root);
        let got: Vec<(u64, u64, &str)> = cov
            .ranges
            .iter()
            .map(|r| (r.offset, r.size, r.protection.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (0, 50, "vendor-package"),
                (50, 30, "bootguard-self-signed"),
                (80, 20, "baseline-only"),
            ]
        );
        assert_eq!(cov.notes.len(), 2, "{:?}", cov.notes);
        assert!(
            cov.notes[0].starts_with("bootguard-ibb by km: ")
                && cov.notes[0].contains("self-signed")
                && cov.notes[0].contains("count as bootguard-self-signed"),
            "{:?}",
            cov.notes
        );
        assert_eq!(
            cov.notes[1],
            "bootguard-ibb by /: not-verified: digest not computed"
        );
        assert!(text(&cov).contains("notes:\n  bootguard-ibb by km: "));
    }
}
