//! Format parsers and their registry.
//!
//! Every parser has one signature, [`ParseFn`]: given the context and a container node, it returns the
//! children it understands, with offsets in the container's buffer (or in a new, decompressed buffer it
//! creates). The caller ([`parse_into`]) fills the gaps with padding, turns a parse error into an opaque
//! leaf with an `unparsed` note (a tampered image must never simply "fail to parse"), and recurses.
//!
//! The registry ([`registry`]) lists every format with a command-line name, a probe and a parser, in the
//! spirit of binwalk's `patterns()`; [`detect`] picks the most confident probe.

pub mod bmc;
pub mod capsule;
pub mod compressed;
pub mod cpio;
pub mod decompress;
pub mod dtb;
pub mod fdt;
pub mod fit;
pub mod gbe;
pub mod ifd;
pub mod jffs2;
pub mod layout;
pub mod me;
pub mod nvram;
pub mod obmc_tar;
pub mod pe;
pub mod squashfs;
pub mod squashfs_inodes;
pub mod uboot;
pub mod ubootenv;
pub mod uefi;
pub mod util;
pub mod zimage;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::ParseError;
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
    /// Decompress and parse compressed sections now (`inspect`, `baseline`); when false they stay leaves
    /// with an expander, and `scan` expands only those whose compressed digest differs.
    pub eager: bool,
    /// The erased-flash byte.
    pub blank: u8,
    /// A flash layout that overrides detection (user `--layout`, or the manifest's).
    pub layout: Option<Layout>,
    /// Force a top-level format by registry name (`raw` disables detection).
    pub format: Option<String>,
    /// OpenBMC system keys (as in `/etc/activationdata/KEYTYPE/`) that `MANIFEST.sig` and `publickey.sig`
    /// of an update tarball are verified with; empty: the tarball is only checked against its own key.
    pub openbmc_keys: Vec<obmc_tar::SystemKey>,
    /// Vendor X.509 certificates or CAs (DER) that a UEFI capsule's PKCS#7 signer must chain to; empty:
    /// the signature is verified with the signer's own certificate and the signer is not trusted.
    pub capsule_certs: Vec<Vec<u8>>,
}

impl Default for ParseOptions {
    fn default() -> Self {
        ParseOptions {
            max_depth: 24,
            max_decompressed_total: 256 << 20,
            max_decompressed_section: 64 << 20,
            eager: true,
            blank: 0xFF,
            layout: None,
            format: None,
            openbmc_keys: Vec::new(),
            capsule_certs: Vec::new(),
        }
    }
}

/// Parsing context: options, depth and the shared decompression budget of one image.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub opts: Arc<ParseOptions>,
    pub depth: u32,
    budget: Arc<AtomicU64>,
}

impl Ctx {
    pub fn new(opts: &ParseOptions) -> Ctx {
        Ctx {
            opts: Arc::new(opts.clone()),
            depth: 0,
            budget: Arc::new(AtomicU64::new(opts.max_decompressed_total)),
        }
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
        c.depth += 1;
        Ok(c)
    }

    /// How many bytes one decompression may produce now: the per-section cap, bounded by what is left of the
    /// image's total budget.
    pub fn decompress_limit(&self) -> u64 {
        self.opts
            .max_decompressed_section
            .min(self.budget.load(Ordering::Relaxed))
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

/// How sure a probe is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Confidence {
    Low,
    Medium,
    High,
}

/// The one parser signature: children of `node` (which must not be modified).
pub type ParseFn = fn(&Ctx, &Region) -> Result<Vec<Region>, ParseError>;

/// A registry entry.
#[derive(Debug, Clone, Copy)]
pub struct Format {
    /// Name on the command line (`--format-hint`) and in `inspect` output.
    pub name: &'static str,
    pub description: &'static str,
    /// Looks at a container's bytes; `None` when the format is not there.
    pub probe: fn(&[u8]) -> Option<Confidence>,
    pub parse: ParseFn,
    /// Whether the probe may be tried on the whole image (top level) and on partitions.
    pub top_level: bool,
}

/// Every known format, most specific first.
pub fn registry() -> &'static [Format] {
    &[
        Format {
            name: "ifd",
            description: "Intel flash descriptor image (FLREG regions)",
            probe: ifd::probe,
            parse: ifd::parse,
            top_level: true,
        },
        Format {
            name: "capsule",
            description: "UEFI capsule (EFI_CAPSULE_HEADER, FMP with PKCS#7 authentication, AMI Aptio)",
            probe: capsule::probe,
            parse: capsule::parse,
            top_level: true,
        },
        uefi::FORMAT,
        Format {
            name: "me",
            description: "Intel ME region ($FPT partition table)",
            probe: me::probe,
            parse: me::parse,
            top_level: false,
        },
        Format {
            name: "gbe",
            description: "Intel GbE region (NVM banks, MAC address)",
            probe: gbe::probe,
            parse: gbe::parse,
            top_level: false,
        },
        Format {
            name: "nvram",
            description: "NVRAM volume or variable store (VSS, VSS2, NVAR, EVSA, FTW)",
            probe: nvram::probe,
            parse: nvram::parse,
            top_level: true,
        },
        Format {
            name: "tar",
            description: "tar archive; OpenBMC update tarball (MANIFEST, publickey, image-* parsed, RSA signatures verified)",
            probe: obmc_tar::probe,
            parse: obmc_tar::parse,
            top_level: true,
        },
        // --- BMC (docs/bmc.md) ---
        Format {
            name: "fit",
            description: "U-Boot FIT image (flattened device tree with /images)",
            probe: fit::probe_fit,
            parse: fit::parse_fit,
            top_level: false,
        },
        Format {
            name: "uimage",
            description: "legacy U-Boot uImage (64-byte header, CRC32s)",
            probe: fit::probe_uimage,
            parse: fit::parse_uimage,
            top_level: false,
        },
        Format {
            name: "squashfs",
            description: "squashfs 4 filesystem (xz, gzip)",
            probe: squashfs::probe,
            parse: squashfs::parse,
            top_level: false,
        },
        Format {
            name: "jffs2",
            description: "JFFS2 filesystem (per-machine)",
            probe: jffs2::probe,
            parse: jffs2::parse,
            top_level: false,
        },
        Format {
            name: "ubi",
            description: "UBI image (volumes listed)",
            probe: bmc::ubi::probe,
            parse: bmc::ubi::parse,
            top_level: false,
        },
        Format {
            name: "uboot-env",
            description:
                "U-Boot environment (CRC32, variables; per-machine with pinned boot variables)",
            probe: ubootenv::probe,
            parse: ubootenv::parse,
            top_level: false,
        },
        Format {
            name: "u-boot",
            description: "raw U-Boot binary (content extent, blank slack)",
            probe: uboot::probe,
            parse: uboot::parse,
            top_level: false,
        },
        Format {
            name: "cpio",
            description: "cpio archive, newc/crc (initramfs): files with their digests",
            probe: cpio::probe,
            parse: cpio::parse,
            top_level: false,
        },
        Format {
            name: "xz",
            description: "xz stream (decompressed and parsed)",
            probe: compressed::probe_xz,
            parse: compressed::parse_xz,
            top_level: false,
        },
        Format {
            name: "gzip",
            description: "gzip stream (decompressed and parsed)",
            probe: compressed::probe_gzip,
            parse: compressed::parse_gzip,
            top_level: false,
        },
        Format {
            name: "zimage",
            description: "ARM Linux zImage (self-decompressing kernel, extent from its header)",
            probe: zimage::probe,
            parse: zimage::parse,
            top_level: false,
        },
        Format {
            name: "fdt",
            description: "flattened device tree blob (nodes; fixed-partitions listed as information)",
            probe: dtb::probe,
            parse: dtb::parse,
            top_level: false,
        },
        Format {
            name: "bmc",
            description: "BMC SPI flash (device-tree, OpenBMC preset, MegaRAC or UBI layout)",
            probe: bmc::probe,
            parse: bmc::parse,
            top_level: true,
        },
    ]
}

/// Finds a format by its registry name.
pub fn by_name(name: &str) -> Option<&'static Format> {
    registry().iter().find(|f| f.name == name)
}

/// The most confident format whose probe accepts `bytes` (first wins on ties).
pub fn detect(bytes: &[u8], top_level: bool) -> Option<&'static Format> {
    let mut best: Option<(&'static Format, Confidence)> = None;
    for f in registry() {
        if top_level && !f.top_level {
            continue;
        }
        if let Some(c) = (f.probe)(bytes) {
            if best.is_none_or(|(_, b)| c > b) {
                best = Some((f, c));
            }
        }
    }
    best.map(|(f, _)| f)
}

/// The format of a whole file: a whole-image format (flash, volume, package), else a stand-alone
/// component (FIT, uImage, U-Boot, squashfs, ...; see [`bmc::STANDALONE`]).
pub fn detect_file(bytes: &[u8]) -> Option<&'static Format> {
    detect(bytes, true).or_else(|| bmc::detect_component(bytes))
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
                if let Some(f) = detect(child.bytes(), false) {
                    parse_into(&ctx, child, f);
                }
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
    region::finalize(&mut root);
    root
}

/// Runs `format` on `node`, filling gaps and recording errors as notes. Returns whether it parsed.
pub fn parse_into(ctx: &Ctx, node: &mut Region, format: &Format) -> bool {
    node.attrs
        .entry("format".to_string())
        .or_insert_with(|| format.name.into());
    match (format.parse)(ctx, node) {
        Ok(mut children) => {
            adopt(ctx, node, &mut children);
            node.children = children;
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
    parse: ParseFn,
    what: &'static str,
}

impl region::Expander for Deferred {
    fn expand(&self, node: &Region) -> Result<Vec<Region>, ParseError> {
        (self.parse)(&self.ctx, node)
    }
    fn what(&self) -> &'static str {
        self.what
    }
}

/// Parses `node`'s children with `parse` now (eager parsing: `inspect`, `baseline`, `check`), or leaves
/// the node lazy with an expander that owns this image's context (`scan` expands only what differs). A
/// failure now becomes a note on the node.
pub fn now_or_later(ctx: &Ctx, node: &mut Region, what: &'static str, parse: ParseFn) {
    if ctx.opts.eager {
        match parse(ctx, node) {
            Ok(children) => node.children = children,
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
