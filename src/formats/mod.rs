//! Format parsers and their registry.
//!
//! Every parser has one signature, [`ParseFn`]: given the context and a container node, it returns the
//! children it understands, with offsets in the container's buffer (or in a new, decompressed buffer it
//! creates). The caller ([`parse_into`]) fills the gaps with padding, turns a parse error into an opaque
//! leaf with an `unparsed` note (a tampered image must never simply "fail to parse"), and recurses.
//!
//! The registry ([`registry`]) lists every format with a command-line name, a probe and a parser, in the
//! spirit of binwalk's `patterns()`; [`detect`] picks the most confident probe.
#![deny(clippy::arithmetic_side_effects)]

// One directory per family of formats, as goblin lays out its formats (issue 19.11).
pub mod amd;
pub mod arm;
pub mod bmc;
pub mod cache;
pub mod compress;
pub mod coreboot;
pub mod exe;
pub mod fs;
pub mod intel;
pub mod keys;
pub mod layout;
pub mod package;
pub mod pci;
pub mod pe;
pub mod power;
pub mod tpm;
pub mod uefi;
pub mod util;
pub mod x509;

// Each format also by its flat path (`formats::squashfs`, ...), as every caller names it.
pub use arm::fip;
pub use bmc::{dtb, fdt, fit, obmc_tar, uboot, ubootenv, zimage};
pub use compress::compressed;
pub use fs::{cpio, cramfs, jffs2, romfs, squashfs, squashfs3, squashfs_inodes, yaffs2};
pub use intel::{gbe, ifd, me, me_cpd, me_manifest, me_mn2};
pub use uefi::{capsule, decompress, nvram};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::ParseError;
use crate::finding::{Code, Evidence};
use crate::input::Data;
use crate::region::{self, Note, Policy, Region, RegionKind};

pub use layout::{Layout, LayoutEntry};

/// Limits and switches for parsing. Defaults are safe for hostile input.
#[derive(Debug, Clone)]
pub struct ParseOptions {
    /// Deepest nesting of containers (volumes in sections in files in volumes ...).
    pub max_depth: u32,
    /// Total bytes all decompressions of one image may produce.
    pub max_decompressed_total: u64,
    /// Bytes one decompressed stream may produce.
    pub max_decompressed_section: u64,
    /// Most nodes the parsers may create for one image (files, sections, variables, ...). Past it the
    /// rest of a container is one opaque, hashed node with a `limit-exceeded` note (issue 15: a volume of
    /// a million empty files must not need gigabytes).
    pub max_regions: u64,
    /// Decompress and parse compressed sections now (`inspect`, `baseline`); when false they stay leaves
    /// with an expander, and `scan` expands only those whose compressed digest differs.
    pub eager: bool,
    /// The erased-flash byte.
    pub blank: u8,
    /// A flash layout that overrides detection (user `--layout`, or the manifest's).
    pub layout: Option<Layout>,
    /// Force a top-level format by registry name (`raw` disables detection).
    pub format: Option<String>,
    /// The vendor keys signatures are verified with ([`keys`]): OpenBMC system keys (as in
    /// `/etc/activationdata/KEYTYPE/`) for an update tarball's `MANIFEST.sig` and `publickey.sig` (none: the
    /// tarball is only checked against its own key); X.509 certificates or CAs, with their path rules, a
    /// UEFI capsule's PKCS#7 signer must chain to (none: verified with the signer's own certificate, not
    /// trusted); Boot Guard OEM key hashes (SHA-256 or SHA-384 of the Key Manifest key as the chipset fuses
    /// hold it): a verified IBB counts as hardware-rooted coverage (`bootguard-ibb`) only under a KM whose
    /// key one of them pins, otherwise it is `bootguard-self-signed`.
    pub keys: keys::KeyRing,
    /// The time certificate validity is evaluated at (`verify --at`); `None`: the clock.
    pub at: Option<std::time::SystemTime>,
    /// A BMC flash layout from a verified baseline (the vendor-signed package's device tree, or the OpenBMC
    /// preset of the flash's size): the `bmc` parser lays the whole flash out by it instead of by what the
    /// dump declares (issue 19: the dump never chooses its own layout).
    pub bmc_layout: Option<Layout>,
    /// Decoder outputs shared across the images of a fleet audit ([`cache`]): a compressed section whose
    /// bytes were decoded before is not decoded again. `None`: every section is decoded.
    pub cache: Option<Arc<cache::DecompressCache>>,
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions {
            max_depth: 24,
            max_decompressed_total: 256 << 20,
            max_decompressed_section: 64 << 20,
            max_regions: DEFAULT_MAX_REGIONS,
            eager: true,
            blank: 0xFF,
            layout: None,
            format: None,
            keys: keys::KeyRing::new(),
            at: None,
            bmc_layout: None,
            cache: None,
        }
    }
}

/// Default [`ParseOptions::max_regions`] (`--max-regions`): far above real firmware and small enough that
/// a tree of that many nodes stays within about 100 MiB. Measured (whole trees, every node counted):
/// OVMF_CODE_4M.fd 1,005 nodes, OVMF_CODE.secboot.fd 1,132, AAVMF_CODE.fd 654, QEMU_EFI.fd 653, a
/// Chromebook BIOS region (galagopro3) 1,170, the BMC rootfs fixture 412; a large OpenBMC squashfs holds
/// some thousands of files. 50,000 leaves 40x headroom over the UEFI images and >= 5x over a 10,000-file
/// BMC file system.
pub const DEFAULT_MAX_REGIONS: u64 = 50_000;

/// Parsing context: options, depth, and the shared decompression budget and region budget of one image.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub opts: Arc<ParseOptions>,
    pub depth: u32,
    budget: Arc<AtomicU64>,
    regions: Arc<AtomicU64>,
}

impl Ctx {
    pub fn new(opts: &ParseOptions) -> Ctx {
        Ctx {
            opts: Arc::new(opts.clone()),
            depth: 0,
            budget: Arc::new(AtomicU64::new(opts.max_decompressed_total)),
            regions: Arc::new(AtomicU64::new(opts.max_regions)),
        }
    }

    /// Takes one node from the image's region budget; `false` once it is spent. A parser's loop calls
    /// this before building each node it creates in bulk (files, sections, variables) and, when it is
    /// refused, ends the container with [`Ctx::limit_node`] over the rest.
    pub fn take_region(&self) -> bool {
        self.regions
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |cur| {
                cur.checked_sub(1)
            })
            .is_ok()
    }

    /// The opaque node that stands for the rest of a container once the region budget is spent: hashed
    /// like any leaf, with a `limit-exceeded` note.
    pub fn limit_node(&self, data: &Arc<Data>, offset: u64, len: u64, what: &str) -> Region {
        let mut r = Region::new(RegionKind::Blob, "unparsed", data, offset, len);
        r.notes.push(Note::new(
            Code::LimitExceeded,
            format!(
                "{what}: more than {} regions in this image; the rest of this container is one opaque node",
                self.opts.max_regions
            ),
            Some(offset),
        ));
        r
    }

    /// A context one level deeper, or a limit error.
    pub fn deeper(&self, offset: u64) -> Result<Ctx, ParseError> {
        if self.depth >= self.opts.max_depth {
            return Err(ParseError::Limit {
                what: format!("nesting deeper than {} levels", self.opts.max_depth),
                offset,
            });
        }
        let mut c = self.clone();
        // Below `max_depth` (checked just above): cannot overflow.
        c.depth = c.depth.saturating_add(1);

        Ok(c)
    }

    /// How many bytes one decompression may produce now: the per-section cap, bounded by what is left of the
    /// image's total budget.
    pub fn decompress_limit(&self) -> u64 {
        self.opts
            .max_decompressed_section
            .min(self.budget.load(Ordering::Relaxed))
    }

    /// What is left of the image's decompression budget.
    pub fn decompress_budget_left(&self) -> u64 {
        self.budget.load(Ordering::Relaxed)
    }

    /// Takes `n` bytes from the image's decompression budget.
    pub fn charge(&self, n: u64, offset: u64) -> Result<(), ParseError> {
        let mut cur = self.budget.load(Ordering::Relaxed);
        loop {
            let next = cur.checked_sub(n).ok_or_else(|| ParseError::Limit {
                what: format!(
                    "decompressed data exceeds the image budget of {} bytes",
                    self.opts.max_decompressed_total
                ),
                offset,
            })?;
            match self
                .budget
                .compare_exchange(cur, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return Ok(()),
                Err(actual) => cur = actual,
            }
        }
    }
}

/// The image's decompression budget pays for decompressed bytes as they are produced (see
/// [`decompress::Meter`]): what is left is taken, and `false` says it did not cover `n` (the budget is
/// then spent and every later decompression of the image stops at once).
impl decompress::Meter for Ctx {
    fn pay(&self, n: u64) -> bool {
        let prev = self
            .budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |cur| {
                Some(cur.saturating_sub(n))
            })
            .unwrap_or(0);
        prev >= n
    }
}

/// How sure a probe is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Confidence {
    Low,
    Medium,
    High,
}

impl Confidence {
    /// The most confident a probe can be: detection stops at the first format that is.
    pub const MAX: Confidence = Confidence::High;
}

/// The one parser signature: what the parser found in `node` (which it must not modify): its children,
/// and facts and notes about the node itself.
pub type ParseFn = fn(&Ctx, &Region) -> Result<Parsed, ParseError>;

/// A parser's findings about one node: its children, and the attributes, notes and evidence of the node
/// itself (never smuggled onto a child).
#[derive(Debug, Default)]
pub struct Parsed {
    pub children: Vec<Region>,
    /// Attributes set on the parsed node (e.g. a descriptor version, where its layout came from).
    pub attrs: Vec<(&'static str, serde_json::Value)>,
    /// Notes on the parsed node itself.
    pub notes: Vec<Note>,
    /// Signature and digest checks over the parsed node's bytes (or ranges it names).
    pub evidence: Vec<Evidence>,
}

impl From<Vec<Region>> for Parsed {
    fn from(children: Vec<Region>) -> Parsed {
        Parsed {
            children,
            ..Parsed::default()
        }
    }
}

impl Parsed {
    /// Adds an attribute of the parsed node.
    pub fn attr(mut self, key: &'static str, value: impl Into<serde_json::Value>) -> Parsed {
        self.attrs.push((key, value.into()));
        self
    }

    /// Adds a note on the parsed node.
    pub fn note(mut self, n: Note) -> Parsed {
        self.notes.push(n);
        self
    }

    /// Adds notes on the parsed node.
    pub fn notes(mut self, n: impl IntoIterator<Item = Note>) -> Parsed {
        self.notes.extend(n);
        self
    }

    /// Adds evidence about the parsed node.
    pub fn evidence(mut self, e: Evidence) -> Parsed {
        self.evidence.push(e);
        self
    }

    /// Puts the findings on `node`: its children (replacing any), attributes, notes and evidence.
    fn apply_to(self, node: &mut Region) {
        let Parsed {
            children,
            attrs,
            notes,
            evidence,
        } = self;
        node.children = children;
        for (k, v) in attrs {
            node.attrs.insert(k.into(), v);
        }
        node.notes.extend(notes);
        node.evidence.extend(evidence);
    }
}

/// Where a format may be found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// A whole flash image (a layout of regions or partitions).
    Flash,
    /// Content of a region, partition, volume or file, never a file of its own.
    Content,
    /// Content, and also a file of its own (a partition image, a release package member) when no
    /// whole-image format matches and the probe is at least this sure (a U-Boot environment only with a
    /// valid CRC, never by guessing).
    File(Confidence),
    /// Either a whole flash image or content.
    Both,
}

/// A registry entry: how to recognise a format and parse it, and how it behaves in a tree.
#[derive(Debug, Clone, Copy)]
pub struct Format {
    /// Name on the command line (`--format-hint`) and in `inspect` output.
    pub name: &'static str,
    pub description: &'static str,
    /// Looks at a container's bytes; `None` when the format is not there.
    pub probe: fn(&[u8]) -> Option<Confidence>,
    pub parse: ParseFn,
    /// Whether it may be a whole image (its probe is tried at the top level) or only content (tried inside
    /// regions, partitions, volumes and files, where every format is tried).
    pub scope: Scope,
    /// The firmware component the format implies (`bios`, `bmc`), for manifest selection.
    pub component: Option<&'static str>,
    /// `Some(Mutable)` when the format holds per-machine data (a node it parses is not compared, its pinned
    /// children are), `Some(Static)` when it is an image that never changes on a machine (a kernel, a
    /// read-only file system), `None` when its parser decides per part.
    pub policy: Option<Policy>,
    /// Formats that are never looked for inside a node of this format (nesting them would recurse or
    /// mislead: a flash layout inside a partition, a descriptor inside a descriptor region).
    pub not_inside: &'static [&'static str],
    /// The only formats looked for inside a node of this format, when it names any (a FIP's BL33 as UEFI
    /// or U-Boot, an AMD BIOS image as UEFI: configuration blobs and random data must not be taken for an
    /// environment or a file system by a loose probe). Empty: every content format but `not_inside`.
    pub payloads: &'static [&'static str],
    /// How a tree parsed as this format is a release package: its parts and their anchors, the flash
    /// layout it carries, how vendor signatures vouch for it ([`package`]). `None`: never a package.
    pub package: Option<&'static package::PackageSpec>,
}

impl Format {
    /// Whether the probe may be tried on a whole image.
    pub fn whole_flash(&self) -> bool {
        matches!(self.scope, Scope::Flash | Scope::Both)
    }

    /// Whether the probe may be tried inside a region.
    pub fn content(&self) -> bool {
        matches!(self.scope, Scope::Content | Scope::File(_) | Scope::Both)
    }

    /// Whether the format is recognised as a whole file of its own with confidence `c` (see [`Scope::File`]).
    pub fn standalone(&self, c: Confidence) -> bool {
        matches!(self.scope, Scope::File(least) if c >= least)
    }
}

/// Every known format, most specific first. Each entry is the `FORMAT` constant of its own module.
pub fn registry() -> &'static [Format] {
    &[
        ifd::FORMAT,
        fip::FORMAT,
        amd::FORMAT,
        capsule::FORMAT,
        uefi::FORMAT,
        me::FORMAT,
        gbe::FORMAT,
        nvram::FORMAT,
        obmc_tar::FORMAT,
        intel::FORMAT_MANIFEST,
        // --- BMC (docs/bmc.md) ---
        fit::FORMAT_FIT,
        fit::FORMAT_UIMAGE,
        squashfs::FORMAT,
        jffs2::FORMAT,
        bmc::ubi::FORMAT,
        ubootenv::FORMAT,
        bmc::aspeed::FORMAT,
        uboot::FORMAT,
        cpio::FORMAT,
        compressed::FORMAT_XZ,
        compressed::FORMAT_GZIP,
        zimage::FORMAT,
        dtb::FORMAT,
        bmc::FORMAT,
        // --- coreboot (after the others: fuzz seeds select formats by index) ---
        coreboot::fmap::FORMAT,
        coreboot::cbfs::FORMAT,
        // --- PCI option ROMs ---
        pci::FORMAT,
        // --- older BMC file systems and Supermicro images (issue 21; after the others: fuzz seeds select
        // formats by index) ---
        cramfs::FORMAT,
        romfs::FORMAT,
        yaffs2::FORMAT,
        bmc::supermicro::FORMAT,
        // --- stand-alone executables, single FFS files, OpenPOWER (issue 22.5, 22.6) ---
        exe::pe_file::FORMAT,
        exe::elf::FORMAT,
        uefi::ffs::FORMAT,
        power::slof::FORMAT,
        power::skiboot::FORMAT,
        amd::psp::FORMAT,
        // --- NPCM7xx boot block, Intel STM, OpenPOWER secure-boot container (issue 22.6) ---
        bmc::npcm::FORMAT,
        intel::stm::FORMAT,
        power::container::FORMAT,
        // --- squashfs 2.x/3.x (issue 21.4; appended: fuzz seeds select formats by index) ---
        squashfs3::FORMAT,
    ]
}

/// Finds a format by its registry name.
pub fn by_name(name: &str) -> Option<&'static Format> {
    registry().iter().find(|f| f.name == name)
}

/// The most confident format whose probe accepts `bytes` (first wins on ties): among whole-image formats
/// at the top level, among all formats inside a region.
pub fn detect(bytes: &[u8], top_level: bool) -> Option<&'static Format> {
    detect_inside(bytes, top_level, None)
}

/// [`detect`] for the content of a node of format `parent`: what the parent must not nest is not tried,
/// and when the parent names its payloads, only they are.
pub fn detect_inside(
    bytes: &[u8],
    top_level: bool,
    parent: Option<&Format>,
) -> Option<&'static Format> {
    let mut best: Option<(&'static Format, Confidence)> = None;
    for f in registry() {
        // Inside a region anything may be found (a whole BMC flash in a region of a larger dump), except
        // what the parent must not nest; at the top level, only what can be a whole image.
        let in_scope = !top_level || f.whole_flash();
        let excluded = parent.is_some_and(|p| {
            p.not_inside.contains(&f.name)
                || !p.payloads.is_empty() && !p.payloads.contains(&f.name)
        });
        if !in_scope || excluded {
            continue;
        }
        if let Some(c) = (f.probe)(bytes) {
            if best.is_none_or(|(_, b)| c > b) {
                best = Some((f, c));
            }
        }
        if best.is_some_and(|(_, b)| b == Confidence::MAX) {
            // Nothing later can win: the first most confident format wins ties. (Probes that scan the
            // whole image, such as FMAP's and the Supermicro footers', are skipped for an IFD flash.)
            break;
        }
    }
    best.map(|(f, _)| f)
}

/// The format of a whole file: a whole-image format (flash, volume, package), else a stand-alone
/// component (FIT, uImage, U-Boot, squashfs, ...; see [`Scope::File`]).
pub fn detect_file(bytes: &[u8]) -> Option<&'static Format> {
    detect(bytes, true).or_else(|| detect_standalone(bytes))
}

/// The most confident format that may be a file of its own ([`Scope::File`]), first wins on ties.
pub fn detect_standalone(bytes: &[u8]) -> Option<&'static Format> {
    let mut best: Option<(&'static Format, Confidence)> = None;
    for f in registry() {
        if !matches!(f.scope, Scope::File(_)) {
            continue;
        }
        if let Some(c) = (f.probe)(bytes).filter(|c| f.standalone(*c)) {
            if best.is_none_or(|(_, b)| c > b) {
                best = Some((f, c));
            }
        }
        if best.is_some_and(|(_, b)| b == Confidence::MAX) {
            break;
        }
    }
    best.map(|(f, _)| f)
}

/// The component a top-level format name implies (`layout` and `raw` imply none).
pub fn component_of(format: &str) -> Option<&'static str> {
    by_name(format).and_then(|f| f.component)
}

/// The one way into a child format: parses `node`'s content one level deeper with `forced`, or with the
/// content format detected in its bytes (leaving out what `parent` must not nest), applies the format's
/// per-machine policy, and records a depth or parse failure as a note. Returns the format used.
pub fn descend(
    ctx: &Ctx,
    node: &mut Region,
    parent: Option<&Format>,
    forced: Option<&'static Format>,
) -> Option<&'static Format> {
    let f = forced.or_else(|| detect_inside(node.bytes(), false, parent))?;
    if f.policy == Some(Policy::Mutable) {
        node.policy = Policy::Mutable;
    }
    match ctx.deeper(node.offset) {
        Ok(c) => {
            parse_into(&c, node, f);
        }
        Err(e) => node.notes.push(unparsed_note(f.name, &e)),
    }
    Some(f)
}

/// [`descend`] in whole-file mode: the node's bytes are a file of their own (a tarball member, a capsule's
/// payload, a decompressed stream), so its format is detected as a whole file's ([`detect_file`]: container
/// formats and stand-alone components alike).
pub fn descend_file(ctx: &Ctx, node: &mut Region) -> Option<&'static Format> {
    let f = detect_file(node.bytes())?;
    descend(ctx, node, None, Some(f))
}

/// An analysis pass over a whole parsed tree: it finds structures that live inside bytes other parsers
/// already own (Intel's FIT, microcode, ACM and Boot Guard manifests sit in UEFI pad and raw files), from an
/// anchor the hardware uses (the FIT pointer at 4 GiB - 0x40) rather than from one container's header. A
/// pass runs after the top-level parse and before identity paths are assigned; it may add children below
/// existing leaves (never rename or move existing nodes, so baselines keep matching), notes and evidence.
#[derive(Debug)]
pub struct Pass {
    /// Kebab-case name.
    pub name: &'static str,
    pub description: &'static str,
    pub run: fn(&Ctx, &mut Region),
}

static PASSES: &[Pass] = &[Pass {
    name: "intel-fit",
    description: "Intel FIT, microcode updates, startup ACM, Boot Guard / CBnT key and boot policy \
                  manifests: attached below the leaves that hold them; signatures and IBB digests as evidence",
    run: intel::annotate,
},
Pass {
    name: "aspeed-rot",
    description: "ASPEED AST2600/AST10x0 root of trust: the boot ROM's signature check of the boot image at \
                  offset 0, repeated against the keys of the OTP images of the key ring",
    run: bmc::aspeed::annotate,
},
Pass {
    name: "fit-signature",
    description: "U-Boot verified boot: every FIT configuration and image signature checked with the keys \
                  of the image's U-Boot control device trees and the `fit` keys of the key ring",
    run: bmc::fit_sig::annotate,
}];

/// Every whole-tree pass, in the order [`parse_image`] runs them.
pub fn passes() -> &'static [Pass] {
    PASSES
}

/// Parses a whole image into a finalized region tree. Never fails: what cannot be parsed stays an opaque
/// leaf with an `unparsed` note.
pub fn parse_image(data: Arc<Data>, opts: &ParseOptions) -> Region {
    let ctx = Ctx::new(opts);
    let len = data.len() as u64;
    let mut root = Region::new(RegionKind::Image, "", &data, 0, len);
    if let Some(layout) = &opts.layout {
        root.attrs
            .insert("layout-source".into(), layout.source.clone().into());
        root.attrs.insert("format".into(), "layout".into());
        let children = layout.apply(&data, &mut root.notes);
        root.children = children;
        region::fill_gaps(
            &data,
            0,
            len,
            &mut root.children,
            opts.blank,
            RegionKind::Padding,
        );
        for child in &mut root.children {
            if child.kind == RegionKind::FlashRegion && child.policy != Policy::Ignore {
                descend(&ctx, child, None, None);
            }
        }
    } else {
        let forced = opts.format.as_deref();
        let fmt = match forced {
            Some("raw") => None,
            Some(name) => by_name(name),
            None => detect_file(&data),
        };
        match fmt {
            Some(f) => {
                parse_into(&ctx, &mut root, f);
            }
            None => {
                root.attrs.insert("format".into(), "raw".into());
            }
        }
    }
    for pass in passes() {
        (pass.run)(&ctx, &mut root);
    }
    region::finalize(&mut root);
    root
}

/// Runs `format` on `node`, filling gaps and recording errors as notes. Returns whether it parsed.
pub fn parse_into(ctx: &Ctx, node: &mut Region, format: &Format) -> bool {
    node.attrs
        .insert_if_absent("format".into(), || format.name.into());
    match (format.parse)(ctx, node) {
        Ok(mut parsed) => {
            adopt(ctx, node, &mut parsed.children);
            parsed.apply_to(node);
            true
        }
        Err(e) => {
            node.notes.push(unparsed_note(format.name, &e));
            false
        }
    }
}

/// Fills the gaps of freshly parsed children that live in the parent's buffer.
pub fn adopt(ctx: &Ctx, node: &Region, children: &mut Vec<Region>) {
    if children.iter().any(|c| Arc::ptr_eq(&c.data, &node.data)) {
        region::fill_gaps(
            &node.data,
            node.offset,
            node.end(),
            children,
            ctx.opts.blank,
            RegionKind::Padding,
        );
    }
}

/// The note for a container that could not be parsed.
pub fn unparsed_note(format: &str, e: &ParseError) -> Note {
    Note::new(e.code(), format!("{format}: {e}"), Some(e.offset()))
}

/// A parser deferred to later, with the context of its image (see [`region::Expander`]).
struct Deferred {
    ctx: Ctx,
    parse: ChildrenFn,
    what: &'static str,
}

/// The parser of a lazily parsed node's content (its expander): like a [`ParseFn`], what it finds goes on
/// the node it parses.
pub type ChildrenFn = fn(&Ctx, &Region) -> Result<Parsed, ParseError>;

impl region::Expander for Deferred {
    fn expand(&self, node: &mut Region) -> Result<(), ParseError> {
        (self.parse)(&self.ctx, node)?.apply_to(node);
        Ok(())
    }
    fn what(&self) -> &'static str {
        self.what
    }
}

/// Parses `node`'s children with `parse` now (eager parsing: `inspect`, `baseline`, `check`), or leaves
/// the node lazy with an expander that owns this image's context (`scan` expands only what differs). A
/// failure now becomes a note on the node.
pub fn now_or_later(ctx: &Ctx, node: &mut Region, what: &'static str, parse: ChildrenFn) {
    if ctx.opts.eager {
        match parse(ctx, node) {
            Ok(parsed) => parsed.apply_to(node),
            Err(e) => node.notes.push(unparsed_note(what, &e)),
        }
    } else {
        node.expand = Some(Arc::new(Deferred {
            ctx: ctx.clone(),
            parse,
            what,
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_entries_are_consistent() {
        let names: Vec<&str> = registry().iter().map(|f| f.name).collect();
        for (i, f) in registry().iter().enumerate() {
            assert!(!names[..i].contains(&f.name), "duplicate format {}", f.name);
            for n in f.not_inside.iter().chain(f.payloads) {
                assert!(
                    names.contains(n),
                    "{}: not_inside/payloads names unknown {n}",
                    f.name
                );
            }
            assert!(
                matches!(f.component, Some("bios" | "bmc")),
                "{}: component",
                f.name
            );
        }
        assert_eq!(component_of("ifd"), Some("bios"));
        assert_eq!(component_of("squashfs"), Some("bmc"));
        assert_eq!(component_of("layout"), None);
        // Scope decides what is tried at the top level: a BMC flash, not a bare U-Boot environment.
        assert!(registry()
            .iter()
            .any(|f| f.name == "bmc" && f.whole_flash()));
        assert!(registry()
            .iter()
            .any(|f| f.name == "uboot-env" && !f.whole_flash()));
        // A file of its own: components; an environment only with a valid CRC, a GbE region only with a
        // known controller and a consistent checksum.
        let env = by_name("uboot-env").unwrap();
        assert!(env.standalone(Confidence::High) && !env.standalone(Confidence::Medium));
        assert!(by_name("squashfs").unwrap().standalone(Confidence::Low));
        let gbe = by_name("gbe").unwrap();
        assert!(gbe.standalone(Confidence::High) && !gbe.standalone(Confidence::Medium));
        assert!(registry()
            .iter()
            .all(|f| !f.whole_flash() || !f.standalone(Confidence::High)));
    }

    #[test]
    fn a_parent_never_nests_what_it_forbids() {
        // An all-blank buffer with a UBI erase-counter header: found as content, but not inside UBI.
        let mut b = vec![0xFFu8; 256 * 1024];
        b[..4].copy_from_slice(b"UBI#");
        let inside_ubi = detect_inside(&b, false, Some(&bmc::ubi::FORMAT)).map(|f| f.name);
        assert_ne!(inside_ubi, Some("ubi"));
    }

    /// Whole-tree passes: unique kebab-case names with a description; the Intel FIT pass is one.
    #[test]
    fn passes_are_named_and_described() {
        let names: Vec<&str> = passes().iter().map(|p| p.name).collect();
        assert!(names.contains(&"intel-fit"), "{names:?}");
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len());
        for p in passes() {
            assert!(p
                .name
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-'));
            assert!(!p.description.is_empty());
        }
    }

    #[test]
    fn a_parser_annotates_the_node_it_parses() {
        fn parse(_: &Ctx, node: &Region) -> Result<Parsed, ParseError> {
            let child = Region::new(RegionKind::Blob, "x", &node.data, 0, 4);
            Ok(Parsed::from(vec![child])
                .attr("version", 2)
                .note(Note::new(crate::finding::Code::Unparsed, "odd", Some(1)))
                .evidence(Evidence::on_node(
                    crate::finding::Scheme::FitHash,
                    crate::finding::Status::Valid,
                )))
        }
        let f = Format {
            name: "test",
            description: "",
            probe: |_| None,
            parse,
            scope: Scope::Content,
            component: None,
            policy: None,
            not_inside: &[],
            payloads: &[],
            package: None,
        };
        let data = Arc::new(Data::Owned(vec![0u8; 8]));
        let mut node = Region::new(RegionKind::Blob, "n", &data, 0, 8);
        assert!(parse_into(
            &Ctx::new(&ParseOptions::default()),
            &mut node,
            &f
        ));
        assert_eq!(node.attrs["version"], 2);
        assert_eq!(node.attrs["format"], "test");
        assert_eq!(node.notes.len(), 1);
        assert_eq!(node.evidence.len(), 1);
        // The gap after the child is padding: every byte still belongs to a node.
        assert_eq!(node.children.len(), 2);
        // Nothing was put on a child.
        assert!(node
            .children
            .iter()
            .all(|c| c.notes.is_empty() && c.evidence.is_empty()));
    }

    /// One entry style (issue 19.3): `registry()` only lists each module's `FORMAT` constant, and no
    /// parser needs an adapter to return [`Parsed`].
    #[test]
    fn registry_lists_format_constants_and_parsers_return_parsed() {
        let src = include_str!("mod.rs");
        let start = src.find("pub fn registry()").unwrap();
        let body = &src[start..start + src[start..].find("\n}\n").unwrap()];
        assert_eq!(body.matches("Format {").count(), 0, "{body}");
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/formats");
        let mut offenders = Vec::new();
        for fam in [
            "amd", "arm", "bmc", "compress", "coreboot", "exe", "fs", "intel", "pci", "power",
            "uefi",
        ] {
            for f in std::fs::read_dir(root.join(fam)).unwrap() {
                let p = f.unwrap().path();
                if p.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&p).unwrap();
                    if text.contains("map(Into::into)") {
                        offenders.push(p.display().to_string());
                    }
                }
            }
        }
        assert!(offenders.is_empty(), "{offenders:?}");
    }
}
