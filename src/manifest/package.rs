//! Baselines from release packages (issue 11): which parts of a package tree are anchored where in a
//! flash dump, and which vendor signatures cover them.
//!
//! A vendor ships an OpenBMC update tarball or a UEFI capsule, and the field has flash dumps laid out
//! differently: the tarball's `image-kernel` is the dump's `kernel` partition followed by erased space,
//! a capsule's firmware volumes are a span of a SPI dump's BIOS region, after an NVRAM volume the
//! capsule never held. A manifest made from a package therefore lists its **parts**, each with an
//! [`Anchor`] that finds it in an image by identity (a partition name, the names and sizes of firmware
//! volumes), never by file offset. `scan` compares each part where its anchor puts it and lists what no
//! part covers.
//!
//! The vendor's own signatures are what make such a baseline vendor-signed: [`vendor_check`] collects
//! what the parsers verified (OpenBMC RSA signatures, capsule PKCS#7) and refuses a package whose
//! signatures do not verify or whose signer no vendor key of the trust policy vouches for.
//!
//! What a package is, which parts it has and how they anchor, is not decided here: it is the
//! [`PackageSpec`](crate::formats::package::PackageSpec) of the tree's format in the registry.

use serde::{Deserialize, Serialize};

use crate::finding::Code;
use crate::formats::package::{self, Parts, Signing};
use crate::region::{Region, RegionKind, Space};

/// Most parts a manifest may list.
pub const MAX_PARTS: usize = 64;

/// How a part of a baseline is found in an image laid out otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Anchor {
    /// A flash partition (BMC layout) or flash region (Intel descriptor) of this name. The part's content
    /// lies at its start; the rest of the partition must be blank.
    Partition { name: String },
    /// UEFI firmware volumes: the part lies where its volumes are found by name and size (most volumes
    /// agreeing on one position).
    Volumes,
    /// The UBI volume of this name in the dump's UBI area (a UBI-layout OpenBMC package's kernel FIT in
    /// `kernel-<version id>`): compared with the volume's content as reassembled from its logical erase
    /// blocks, wherever wear levelling put them. `per_machine`: the volume holds per-machine data the
    /// part is only the initial content of (OpenBMC's UBIFS `rwfs`): it must be there, and is compared
    /// only when it holds a read-only image.
    UbiVolume {
        name: String,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        per_machine: bool,
    },
}

impl Anchor {
    pub fn describe(&self) -> String {
        match self {
            Anchor::Partition { name } => format!("partition `{name}`"),
            Anchor::Volumes => "firmware volumes".to_string(),
            Anchor::UbiVolume { name, .. } => format!("UBI volume `{name}`"),
        }
    }
}

/// A part of the baseline tree and where it is found in another image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Part {
    /// Path of the part's node in the baseline tree (empty: the root).
    pub path: String,
    pub anchor: Anchor,
    /// The vendor signature that covered this part when the baseline was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<VendorSignature>,
    /// Other places of the flash where a copy of this part legitimately lives (an A/B image set, a
    /// recovery boot block), declared at baseline time (`fwscan baseline --copy`): each is compared too.
    /// A copy anywhere else stays `anchor-ambiguous`; the dump cannot declare one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub copies: Vec<CopyPlace>,
}

/// Most declared copies of one part.
pub const MAX_COPIES: usize = 8;

/// Where a declared copy of a part lies (see [`Part::copies`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum CopyPlace {
    /// The flash offset where the copy starts: where its first firmware volume lies (a `volumes` part),
    /// or the start of the partition or flash region holding it (a `partition` part).
    Offset(u64),
    /// The start of the flash partition (or flash region) of this name.
    Partition(String),
}

impl CopyPlace {
    pub fn describe(&self) -> String {
        match self {
            CopyPlace::Offset(o) => format!("offset {o:#x}"),
            CopyPlace::Partition(n) => format!("partition `{n}`"),
        }
    }
}

/// A vendor signature of a release package, as verified when the baseline was made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VendorSignature {
    /// The evidence scheme: `openbmc-rsa` (phosphor-bmc-code-mgmt) or `pkcs7` (EDK2 FMP authentication;
    /// `uefi-pkcs7` in manifests written before issue 19).
    pub scheme: String,
    /// Path of the node the signature covers (a tarball member, a capsule payload).
    pub covers: String,
    /// What verifying it said.
    pub status: String,
    /// Who signed, and why fwscan trusts (or does not trust) the signer.
    pub signer: String,
    /// The signer chains to a vendor key or certificate given (trust policy or command line).
    pub trusted: bool,
}

/// A reason a package is not vendor-verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub code: Code,
    pub path: String,
    pub message: String,
    /// Where in the package file (the member's header or data, where a listing stopped).
    pub offset: Option<u64>,
}

impl Problem {
    /// Whether `--insecure-unsigned` may waive it: a signature that does not verify or a signer no vendor
    /// key vouches for. A package that reads differently to another extractor (`package-ambiguous`), or
    /// whose keys are too weak to mean anything (`vendor-key-weak`), is refused whatever the flag says:
    /// those are structural refusals, not a missing signature. A code not listed here is never waived.
    pub fn waivable(&self) -> bool {
        matches!(
            self.code,
            Code::VendorSignatureInvalid | Code::VendorUntrusted
        )
    }
}

/// What is known about a package's vendor signatures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VendorCheck {
    /// The tree is a vendor-signed release package: its spec's kind (`openbmc-tarball`, `uefi-capsule`).
    pub package: Option<&'static str>,
    pub signatures: Vec<VendorSignature>,
    /// Empty: every signature verifies and the signer is trusted.
    pub problems: Vec<Problem>,
}

impl VendorCheck {
    pub fn verified(&self) -> bool {
        self.package.is_some() && self.problems.is_empty()
    }
}

/// Deepest level searched for firmware volumes.
const MAX_ANCHOR_DEPTH: usize = 6;

/// The parts of a baseline tree, as its format's package spec ([`crate::formats::package`]) names them:
/// members anchored in flash partitions (an OpenBMC tarball's image files), the whole file as a flash
/// region (an ME region file), or, for every other tree and for capsules, the shallowest nodes (not inside
/// decompressed data) whose children are firmware volumes.
pub fn parts_of(tree: &Region) -> Vec<Part> {
    let spec = package::of(tree);
    match spec.map(|s| s.parts) {
        Some(Parts::Members(members)) => members
            .iter()
            .filter_map(|m| {
                let c = tree.children.iter().find(|c| c.name == m.name)?;
                // A package of a UBI layout: the member's volume by name, else its partition.
                let volume = spec
                    .and_then(|s| s.ubi_volume)
                    .and_then(|f| f(tree, m.name));
                Some(Part {
                    path: c.path.clone(),
                    anchor: match volume {
                        Some((name, per_machine)) => Anchor::UbiVolume { name, per_machine },
                        None => Anchor::Partition {
                            name: m.partition.to_string(),
                        },
                    },
                    signature: None,
                    copies: Vec::new(),
                })
            })
            .collect(),
        Some(Parts::Whole(name)) => vec![Part {
            path: String::new(),
            anchor: Anchor::Partition { name: name.into() },
            signature: None,
            copies: Vec::new(),
        }],
        Some(Parts::Volumes) | None => volume_parts(tree),
    }
}

/// The shallowest nodes (not inside decompressed data) whose children are firmware volumes.
fn volume_parts(tree: &Region) -> Vec<Part> {
    let mut level: Vec<&Region> = vec![tree];
    for _ in 0..MAX_ANCHOR_DEPTH {
        let holders: Vec<&Region> = level
            .iter()
            .copied()
            .filter(|r| r.children.iter().any(|c| c.kind == RegionKind::Volume))
            .collect();
        if !holders.is_empty() {
            return holders
                .into_iter()
                .take(MAX_PARTS)
                .map(|r| Part {
                    path: r.path.clone(),
                    anchor: Anchor::Volumes,
                    signature: None,
                    copies: Vec::new(),
                })
                .collect();
        }
        level = level
            .iter()
            .flat_map(|r| r.children.iter())
            .filter(|c| c.space == Space::Image && !c.children.is_empty())
            .collect();
        if level.is_empty() {
            break;
        }
    }
    Vec::new()
}

/// The flash layout a package carries, signed with it (an OpenBMC package's kernel FIT's device tree:
/// its `fixed-partitions`), for the `partition` anchors of its parts; `None` for other trees and for
/// packages without one (a dump is then laid out by the OpenBMC preset of its flash size).
pub fn flash_layout_of(tree: &Region) -> Option<crate::formats::layout::Layout> {
    (package::of(tree)?.flash_layout?)(tree)
}

/// Whether a manifest's parts are the members of a package that carries its own flash layout (an OpenBMC
/// package's image files), anchored in the partitions of that layout: a dump compared with it is laid out
/// by the baseline's layout, never its own.
pub fn lays_out_flash(parts: &[Part]) -> bool {
    parts.iter().any(|p| {
        matches!(&p.anchor, Anchor::Partition { name }
            if package::with_flash_layout().any(|s| s.anchors_partition(name)))
    })
}

/// [`lays_out_flash`] under its former name.
pub fn is_openbmc_parts(parts: &[Part]) -> bool {
    lays_out_flash(parts)
}

fn find<'a>(tree: &'a Region, path: &str) -> Option<&'a Region> {
    let mut cur = tree;
    while cur.path != path {
        cur = cur
            .children
            .iter()
            .find(|c| crate::region::leads_to(&c.path, path))?;
    }
    Some(cur)
}

/// Who signed and how far fwscan trusts the signer, in words.
fn describe_signer(e: &crate::finding::Evidence) -> String {
    use crate::finding::Trust;
    let who = e.signer.as_deref().unwrap_or("unknown signer");
    match (&e.trust, e.status.why()) {
        (_, Some(why)) if !e.status.is_valid() => format!("{}: {why}", e.status.as_str()),
        (Trust::Anchored(k), _) => format!("trusted: {who}, chains to vendor key `{k}`"),
        (Trust::SelfSigned, _) => format!("not trusted: {who}, which no vendor key vouches for"),
        (Trust::Unknown, _) => format!("not trusted: {who}"),
    }
}

/// The vendor signatures of a package tree: every piece of evidence of a release-package scheme that did
/// not fail, whatever the format (an OpenBMC member's `.sig`, a capsule payload's PKCS#7).
fn vendor_signatures(tree: &Region) -> Vec<VendorSignature> {
    let mut out = Vec::new();
    tree.walk(&mut |r| {
        for e in &r.evidence {
            // A vendor signature that did not fail (a failure is a problem, noted by the parser).
            if !e.scheme.is_vendor_package()
                || matches!(e.status, crate::finding::Status::Invalid(_))
            {
                continue;
            }
            out.push(VendorSignature {
                scheme: e.scheme.as_str().into(),
                covers: r.path.clone(),
                status: match e.status.why() {
                    Some(why) => format!("{}: {why}", e.status.as_str()),
                    None => e.status.as_str().to_string(),
                },
                signer: describe_signer(e),
                trusted: e.status.is_valid()
                    && matches!(e.trust, crate::finding::Trust::Anchored(_)),
            });
        }
    });
    out
}

/// Collects the vendor signatures of a package tree and every reason it is not vendor-verified: a
/// signature that does not verify, a signer no vendor key vouches for, a payload without a signature.
/// `parts` get the signature that covers each of them. How signatures vouch for the package is its
/// format's [`Signing`]; a tree that is no vendor-signed package has no `package`.
pub fn vendor_check(tree: &Region, parts: &mut [Part]) -> VendorCheck {
    let mut c = VendorCheck {
        problems: noted_problems(tree),
        ..VendorCheck::default()
    };
    if let Some(spec) = package::of(tree) {
        match spec.signing {
            Some(Signing::PerPart { root, key_hint }) => {
                per_part(tree, parts, root, key_hint, &mut c)
            }
            Some(Signing::Covering { noun, key_hint }) => {
                covering(tree, parts, noun, key_hint, &mut c)
            }
            None => {}
        }
        if spec.signing.is_some() {
            c.package = Some(spec.kind);
        }
    }
    c.problems.sort_by(|a, b| a.path.cmp(&b.path));
    c.problems.dedup();
    c
}

/// The problems the parsers noted anywhere in the tree (a signature that does not verify, an untrusted
/// signer, an ambiguous package, a weak key).
fn noted_problems(tree: &Region) -> Vec<Problem> {
    let mut out = Vec::new();
    tree.walk(&mut |r| {
        for n in &r.notes {
            if matches!(
                n.code,
                Code::VendorSignatureInvalid
                    | Code::VendorUntrusted
                    | Code::PackageAmbiguous
                    | Code::VendorKeyWeak
            ) {
                out.push(Problem {
                    code: n.code,
                    path: r.path.clone(),
                    message: n.message.clone(),
                    offset: n.offset.or(Some(r.offset)),
                });
            }
        }
    });
    out
}

/// [`Signing::PerPart`]: the package's key is trusted when the vendor-package evidence on `root` verified
/// and is anchored in a vendor key; every part needs a verified signature of its own.
fn per_part(tree: &Region, parts: &mut [Part], root: &str, key_hint: &str, c: &mut VendorCheck) {
    let root_node = find(tree, root);
    let system = root_node.and_then(|m| m.evidence.iter().find(|e| e.scheme.is_vendor_package()));
    let trusted = system.is_some_and(|e| {
        e.status.is_valid() && matches!(e.trust, crate::finding::Trust::Anchored(_))
    });
    if !trusted && c.problems.is_empty() {
        let why = match system {
            Some(e) => describe_signer(e),
            None => format!("unknown: {root}'s signature was not verified"),
        };
        c.problems.push(Problem {
            code: Code::VendorUntrusted,
            path: root.into(),
            message: format!("the package is signed by its own key only ({why}); {key_hint}"),
            offset: root_node.map(|m| m.offset),
        });
    }
    c.signatures = vendor_signatures(tree);
    for p in parts.iter_mut() {
        p.signature = c.signatures.iter().find(|s| s.covers == p.path).cloned();
        if p.signature.is_none() && !c.problems.iter().any(|x| x.path == p.path) {
            c.problems.push(Problem {
                code: Code::VendorSignatureInvalid,
                path: p.path.clone(),
                message: format!("{}: no verified signature covers it", p.path),
                offset: find(tree, &p.path).map(|r| r.offset),
            });
        }
    }
}

/// [`Signing::Covering`]: every verified signer must be anchored in a vendor key, and every part must lie
/// in a subtree a verified signature covers (the closest one is recorded).
fn covering(tree: &Region, parts: &mut [Part], noun: &str, key_hint: &str, c: &mut VendorCheck) {
    c.signatures = vendor_signatures(tree)
        .into_iter()
        .filter(|s| s.status.starts_with("valid"))
        .collect();
    for s in &c.signatures {
        if !s.trusted && !c.problems.iter().any(|x| x.path.starts_with(&s.covers)) {
            c.problems.push(Problem {
                code: Code::VendorUntrusted,
                path: s.covers.clone(),
                message: format!("{}: {}; {key_hint}", s.covers, s.signer),
                offset: find(tree, &s.covers).map(|r| r.offset),
            });
        }
    }
    for p in parts.iter_mut() {
        p.signature = c
            .signatures
            .iter()
            .filter(|s| p.path == s.covers || p.path.starts_with(&format!("{}/", s.covers)))
            .max_by_key(|s| s.covers.len())
            .cloned();
        if p.signature.is_none() && !c.problems.iter().any(|x| p.path.starts_with(&x.path)) {
            c.problems.push(Problem {
                code: Code::VendorUntrusted,
                path: p.path.clone(),
                message: format!(
                    "{}: no verified vendor signature covers this firmware (unsigned, or a signature fwscan does not verify)",
                    if p.path.is_empty() { noun } else { &p.path }
                ),
                offset: find(tree, &p.path).map(|r| r.offset),
            });
        }
    }
    if parts.is_empty() && c.problems.is_empty() && c.signatures.is_empty() {
        c.problems.push(Problem {
            code: Code::VendorUntrusted,
            path: String::new(),
            message: format!("{noun} carries no signature fwscan verifies"),
            offset: Some(tree.offset),
        });
    }
}

/// Parses a file with the vendor keys of `policy` (those scoped to `product`/`component`, `None`: any)
/// added to `opts`, eagerly, and checks its vendor signatures: what `baseline` and `verify` do with a
/// release package.
pub fn parse_verified(
    data: std::sync::Arc<crate::input::Data>,
    opts: &crate::formats::ParseOptions,
    policy: Option<&super::trust::TrustPolicy>,
    product: Option<&str>,
    component: Option<&str>,
) -> (Region, Vec<Part>, VendorCheck) {
    let mut o = opts.clone();
    if let Some(p) = policy {
        // The package-signature keys only: Boot Guard pins are read by `inspect --trust` alone today.
        let ring = p.key_ring(product, component);
        o.keys.extend(
            ring.iter()
                .filter(|k| k.scheme().is_vendor_package())
                .cloned(),
        );
    }
    o.eager = true;
    let tree = crate::formats::parse_image(data, &o);
    let mut parts = parts_of(&tree);
    let check = vendor_check(&tree, &mut parts);
    (tree, parts, check)
}
