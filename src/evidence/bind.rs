//! Binding measurements to a dump: which node of the dump's region tree holds the bytes an event measured.
//!
//! - `EV_EFI_PLATFORM_FIRMWARE_BLOB(2)` (and `EV_POST_CODE` given as a blob): the digest of a node of the
//!   measured length, searched through the whole tree with compressed sections decompressed (EDK2 measures
//!   the volumes it decompressed from FVMAIN_COMPACT, not flash bytes).
//! - `EV_EFI_BOOT_SERVICES_*`/`RUNTIME_SERVICES_DRIVER` loaded from a firmware volume (an `FvFile` device
//!   path): the PE image's Authenticode digest (as EDK2's DxeTpm2MeasureBootLib computes it), over every PE
//!   or TE section of the tree. Loaded from elsewhere (a PCI option ROM, boot media): not reproducible from
//!   the flash.
//! - `EV_S_CRTM_VERSION`: the version string, UCS-2 or ASCII, found in the bytes of a node.
#![deny(clippy::arithmetic_side_effects)]

use std::collections::HashMap;

use serde::Serialize;

use crate::formats::tpm::eventlog::{
    Event, EventData, PathNode, ALG_SHA1, ALG_SHA256, ALG_SHA384, ALG_SHA512,
    EV_EFI_BOOT_SERVICES_APPLICATION, EV_EFI_BOOT_SERVICES_DRIVER, EV_EFI_HCRTM_EVENT,
    EV_EFI_PLATFORM_FIRMWARE_BLOB, EV_EFI_PLATFORM_FIRMWARE_BLOB2, EV_EFI_RUNTIME_SERVICES_DRIVER,
    EV_POST_CODE, EV_S_CRTM_CONTENTS, EV_S_CRTM_VERSION,
};
use crate::region::{Region, RegionKind};

use super::pcrs::hash2;

/// What an event's measurement was bound to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum Binding {
    /// The measured bytes are this node of a dump (`image` is the dump's path).
    Bound {
        image: String,
        path: String,
        /// How: `digest` (the node's bytes), `authenticode` (the PE image digest), `string`.
        by: String,
    },
    /// The firmware measured code no dump holds: the dump is not what booted.
    NotInImage { reason: String },
    /// The measurement cannot be recomputed from flash bytes, and why.
    NotReproducible { reason: String },
}

/// FFS file types of PEI-phase modules (PI spec vol. 3, table 3): PEI core, PEIM, combined PEIM/driver.
const PEI_FILE_TYPES: &[&str] = &["0x04", "0x06", "0x08"];

/// A dump's tree, flattened for lookups by size.
pub struct Index<'a> {
    nodes: Vec<(&'a str, &'a Region)>,
    by_size: HashMap<u64, Vec<usize>>,
    digests: HashMap<(usize, u16), Vec<u8>>,
    authenticode: Option<Vec<(usize, u16, Vec<u8>)>>,
}

impl std::fmt::Debug for Index<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Index({} nodes)", self.nodes.len())
    }
}

fn digest(alg: u16, b: &[u8]) -> Vec<u8> {
    hash2(alg, b, &[])
}

/// The event's digest in the strongest bank fwscan can compute.
fn best(e: &Event) -> Option<(u16, &[u8])> {
    [ALG_SHA512, ALG_SHA384, ALG_SHA256, ALG_SHA1]
        .into_iter()
        .find_map(|a| e.digest(a).map(|d| (a, d)))
}

/// The Authenticode digest of a PE image (headers without the checksum and the certificate table entry,
/// sections in file order, trailing data without the certificate table), as firmware measures images it
/// loads. `None`: not a PE image goblin reads.
pub fn authenticode(alg: u16, pe: &[u8]) -> Option<Vec<u8>> {
    let p = goblin::pe::PE::parse(pe).ok()?;
    fn run<D: sha2::Digest>(p: &goblin::pe::PE) -> Vec<u8> {
        let mut d = D::new();
        for r in p.authenticode_ranges() {
            d.update(r);
        }
        d.finalize().to_vec()
    }
    Some(match alg {
        ALG_SHA1 => run::<sha1::Sha1>(&p),
        ALG_SHA256 => run::<sha2::Sha256>(&p),
        ALG_SHA384 => run::<sha2::Sha384>(&p),
        ALG_SHA512 => run::<sha2::Sha512>(&p),
        _ => return None,
    })
}

/// The PE image of a PE32 section: it follows the 4-byte section header (8 with the extended size).
fn pe_body(r: &Region) -> Option<&[u8]> {
    let b = r.bytes();
    [4usize, 8]
        .into_iter()
        .find(|&h| b.get(h..h.saturating_add(2)) == Some(b"MZ"))
        .and_then(|h| b.get(h..))
}

impl<'a> Index<'a> {
    /// Indexes every node of the dumps' trees: `(dump path, tree)`.
    pub fn new(trees: &'a [(String, Region)]) -> Index<'a> {
        let mut nodes = Vec::new();
        for (image, t) in trees {
            t.walk(&mut |r| nodes.push((image.as_str(), r)));
        }
        let mut by_size: HashMap<u64, Vec<usize>> = HashMap::new();
        for (i, (_, r)) in nodes.iter().enumerate() {
            by_size.entry(r.size).or_default().push(i);
        }
        Index {
            nodes,
            by_size,
            digests: HashMap::new(),
            authenticode: None,
        }
    }

    fn digest_of(&mut self, i: usize, alg: u16) -> &[u8] {
        let r = self.nodes[i].1;
        self.digests
            .entry((i, alg))
            .or_insert_with(|| digest(alg, r.bytes()))
    }

    fn bound(&self, i: usize, by: &str) -> Binding {
        let (image, r) = self.nodes[i];
        Binding::Bound {
            image: image.to_string(),
            path: r.path.clone(),
            by: by.into(),
        }
    }

    /// The volume of this size holding PEI-phase modules, if any.
    fn pei_volume(&self, size: u64) -> Option<&'a Region> {
        let ids = self.by_size.get(&size)?;
        ids.iter().map(|&i| self.nodes[i].1).find(|r| {
            r.kind == RegionKind::Volume
                && r.children.iter().any(|c| {
                    c.kind == RegionKind::File
                        && c.attr_str("file-type")
                            .is_some_and(|t| PEI_FILE_TYPES.contains(&t))
                })
        })
    }

    fn blob(&mut self, e: &Event, length: u64) -> Binding {
        let Some((alg, want)) = best(e) else {
            return Binding::NotReproducible {
                reason: "the event has no digest in a bank fwscan computes".into(),
            };
        };
        let ids = self.by_size.get(&length).cloned().unwrap_or_default();
        // Outermost node first: a volume rather than its only child of the same size.
        for i in ids {
            if self.digest_of(i, alg) == want {
                return self.bound(i, "digest");
            }
        }
        if let Some(v) = self.pei_volume(length) {
            return Binding::NotReproducible {
                reason: format!(
                    "{} is a PEI volume of this length: its modules run in place from the RAM copy the \
                     firmware measures, and write their global variables (their PE .data sections) before \
                     the TPM driver measures it, so the measured bytes hold run-time values no flash \
                     byte has (see docs/eventlog.md)",
                    v.path
                ),
            };
        }
        // Name the volumes of the measured length: the place the booted code differs from the dump.
        let same: Vec<&str> = self
            .by_size
            .get(&length)
            .into_iter()
            .flatten()
            .map(|&i| self.nodes[i].1)
            .filter(|r| r.kind == RegionKind::Volume)
            .map(|r| r.path.as_str())
            .collect();
        Binding::NotInImage {
            reason: format!(
                "no node of {length:#x} bytes in the dump has the measured {} digest {}{}",
                super::pcrs_name(alg),
                hex::encode(want),
                if same.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; the dump's volume of that length differs from what booted: {}",
                        same.join(", ")
                    )
                }
            ),
        }
    }

    fn image(&mut self, e: &Event, path: &[PathNode]) -> Option<Binding> {
        let in_fv = path
            .iter()
            .any(|n| matches!(n, PathNode::FvFile { .. } | PathNode::Fv { .. }));
        if !in_fv {
            let text = path
                .iter()
                .map(PathNode::to_text)
                .collect::<Vec<_>>()
                .join("/");
            return (e.pcr == 0 || e.pcr == 2).then(|| Binding::NotReproducible {
                reason: format!(
                    "loaded from outside the flash ({}): a PCI option ROM or other device, not in the dump",
                    if text.is_empty() { "no device path".into() } else { text }
                ),
            });
        }
        let (alg, want) = best(e)?;
        if self.authenticode.is_none() {
            let mut list = Vec::new();
            for (i, (_, r)) in self.nodes.iter().enumerate() {
                if r.kind != RegionKind::Section || r.attr_str("section-type") != Some("0x10") {
                    continue;
                }
                if let Some(body) = pe_body(r) {
                    for a in [ALG_SHA1, ALG_SHA256, ALG_SHA384, ALG_SHA512] {
                        if e.digest(a).is_some() {
                            if let Some(d) = authenticode(a, body) {
                                list.push((i, a, d));
                            }
                        }
                    }
                }
            }
            self.authenticode = Some(list);
        }
        let hit = self
            .authenticode
            .as_ref()
            .and_then(|l| l.iter().find(|(_, a, d)| *a == alg && d == want))
            .map(|(i, _, _)| *i);
        Some(match hit {
            Some(i) => self.bound(i, "authenticode"),
            None => Binding::NotInImage {
                reason: format!(
                    "no PE image in the dump has the measured Authenticode {} digest {}",
                    super::pcrs_name(alg),
                    hex::encode(want)
                ),
            },
        })
    }

    fn string(&self, needle: &[u8]) -> Option<usize> {
        // The smallest node whose bytes hold it (leaves first: a file rather than its volume).
        let mut best: Option<usize> = None;
        for (i, (_, r)) in self.nodes.iter().enumerate() {
            if r.children.is_empty()
                && memchr::memmem::find(r.bytes(), needle).is_some()
                && best.is_none_or(|b| self.nodes[b].1.size > r.size)
            {
                best = Some(i);
            }
        }
        best
    }

    /// The binding of one event, or `None` for events that do not measure firmware code or data of the
    /// flash (configuration, boot variables, separators, the OS loader's own measurements).
    pub fn bind(&mut self, e: &Event) -> Option<Binding> {
        match (e.event_type, e.decode()) {
            (
                EV_EFI_PLATFORM_FIRMWARE_BLOB | EV_EFI_PLATFORM_FIRMWARE_BLOB2 | EV_POST_CODE,
                EventData::FirmwareBlob { length, .. },
            ) => Some(self.blob(e, length)),
            (EV_POST_CODE, EventData::Text { text }) => Some(Binding::NotReproducible {
                reason: format!(
                    "POST code `{text}`: memory the firmware filled at run time (tables, SMM), not flash bytes"
                ),
            }),
            (
                EV_EFI_BOOT_SERVICES_DRIVER
                | EV_EFI_RUNTIME_SERVICES_DRIVER
                | EV_EFI_BOOT_SERVICES_APPLICATION,
                EventData::Image { device_path, .. },
            ) => self.image(e, &device_path),
            (EV_S_CRTM_VERSION, data) => {
                // The measured bytes themselves (UCS-2, ASCII or binary), without their terminator.
                let mut needle = e.data.clone();
                while needle.last() == Some(&0) {
                    needle.pop();
                }
                if needle.is_empty() {
                    return Some(Binding::NotReproducible {
                        reason: "empty CRTM version string: nothing in the dump to find".into(),
                    });
                }
                if needle.len() % 2 == 1 && needle.get(1) == Some(&0) {
                    needle.push(0);
                }
                let shown = match data {
                    EventData::Text { text } => format!("`{text}`"),
                    _ => hex::encode(&e.data),
                };
                Some(match self.string(&needle) {
                    Some(i) => self.bound(i, "string"),
                    None => Binding::NotReproducible {
                        reason: format!(
                            "CRTM version {shown} is not stored verbatim in the dump (firmware may build it \
                             at run time)"
                        ),
                    },
                })
            }
            (EV_S_CRTM_CONTENTS | EV_EFI_HCRTM_EVENT, _) => Some(Binding::NotReproducible {
                reason: "measured by the hardware root of trust (H-CRTM/S-CRTM contents) before the \
                         firmware ran; the measured range is not named in the log"
                    .into(),
            }),
            _ => None,
        }
    }

    /// The digest, in bank `alg`, of what the dump holds in the place of a measurement: the bound node
    /// (its bytes, its PE image's Authenticode digest, or the measured string), or for a firmware blob no
    /// node matches, the dump's one volume of the measured length (its counterpart). Returns the digest, the
    /// node path and how it was computed; `None` when the dump has no such bytes.
    pub fn measure_again(
        &mut self,
        e: &Event,
        b: &Binding,
        alg: u16,
    ) -> Option<(Vec<u8>, String, String)> {
        match b {
            Binding::Bound { image, path, by } => {
                let i = self
                    .nodes
                    .iter()
                    .position(|(im, r)| *im == image.as_str() && r.path == *path)?;
                let r = self.nodes[i].1;
                let d = match by.as_str() {
                    "digest" => self.digest_of(i, alg).to_vec(),
                    "authenticode" => authenticode(alg, pe_body(r)?)?,
                    // The measured string was found verbatim in the node: its digest is the data's.
                    "string" => digest(alg, &e.data),
                    _ => return None,
                };
                Some((d, path.clone(), by.clone()))
            }
            Binding::NotInImage { .. } => {
                let EventData::FirmwareBlob { length, .. } = e.decode() else {
                    return None;
                };
                let volumes: Vec<usize> = self
                    .by_size
                    .get(&length)
                    .into_iter()
                    .flatten()
                    .copied()
                    .filter(|&i| self.nodes[i].1.kind == RegionKind::Volume)
                    .collect();
                let [i] = volumes[..] else {
                    return None;
                };
                let path = self.nodes[i].1.path.clone();
                Some((self.digest_of(i, alg).to_vec(), path, "counterpart".into()))
            }
            Binding::NotReproducible { .. } => None,
        }
    }

    /// Volumes holding code (FFS files of module types) that no binding names, nor any volume inside or
    /// around them: what booted from them is not witnessed by the log.
    pub fn unmeasured(&self, bindings: &[Option<Binding>]) -> Vec<String> {
        let bound: Vec<&str> = bindings
            .iter()
            .flatten()
            .filter_map(|b| match b {
                Binding::Bound { path, .. } => Some(path.as_str()),
                _ => None,
            })
            .collect();
        let mut reasoned: Vec<String> = Vec::new();
        for b in bindings.iter().flatten() {
            if let Binding::NotReproducible { reason } = b {
                if let Some(p) = reason.split(' ').next() {
                    reasoned.push(p.to_string());
                }
            }
        }
        let related = |p: &str, q: &str| {
            crate::region::leads_to(p, q) || crate::region::leads_to(q, p) || p == q
        };
        let mut out = Vec::new();
        for (_, r) in &self.nodes {
            let code = r.kind == RegionKind::Volume
                && r.children.iter().any(|c| {
                    c.kind == RegionKind::File
                        && c.attr_str("file-type").is_some_and(|t| {
                            matches!(
                                t,
                                "0x03"
                                    | "0x04"
                                    | "0x05"
                                    | "0x06"
                                    | "0x07"
                                    | "0x08"
                                    | "0x09"
                                    | "0x0a"
                                    | "0x0c"
                            )
                        })
                });
            if code
                && !bound.iter().any(|b| related(b, &r.path))
                && !reasoned.iter().any(|b| related(b, &r.path))
            {
                out.push(r.path.clone());
            }
        }
        out
    }
}
