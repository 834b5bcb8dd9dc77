//! The plan of the house, checked from the source: which top-level module of `src/` may import which,
//! which family of `src/formats/` may import which, and that no floor below `report/` decides by a format's
//! name.
//!
//! ```text
//! finding → error → input → region → hash → formats → coverage → manifest → compare → check → report → scan → audit → cli
//! ```
//! Each stage depends only on the ones before it (a module may skip floors downwards, never go up), so there
//! is no import cycle between top-level modules. The rules of issue 10 are spelled out as their own asserts so
//! a violation names the edge that broke them.
//!
//! The source is read as tokens, not lines: comments and string literals are left out, `use` trees are
//! parsed whole (multi-line groups, nested braces, `self`, `as`), and every path is resolved (`crate::`,
//! `super::`, `self::`, and names bound by a `use`) before its module is looked up.

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
    // Boot evidence: a TPM event log replayed and bound to a parsed tree (formats, hash, region below).
    &["evidence"],
    &["report"],
    &["scan"],
    &["audit"],
    &["cli"],
];

fn floor(m: &str) -> Option<usize> {
    FLOORS.iter().position(|f| f.contains(&m))
}

// ---------------------------------------------------------------------------------------------------------
// Families of `src/formats/`.

/// The families of format modules: a module of `src/formats/` (a file stem or directory name, today's flat
/// names and the family directories of the layout by family alike) → its family. `common` is the shared
/// vocabulary every family may use (the registry types in `mod.rs`, byte readers, layouts, PE, X.509).
const FAMILIES: &[(&str, &str)] = &[
    // common
    ("mod", "common"),
    ("util", "common"),
    ("layout", "common"),
    ("pe", "common"),
    ("x509", "common"),
    // The key ring the parsers verify vendor signatures with (built by `manifest::trust` and the CLI).
    ("keys", "common"),
    // What makes a parsed tree a release package (the registry's `package` field).
    ("package", "common"),
    // The fleet cache of decoded sections ([`fwscan::formats::cache`]), consulted by any decoder.
    ("cache", "common"),
    ("common", "common"),
    // Intel: descriptor, ME, GbE, Boot Guard / FIT / microcode / ACM.
    ("intel", "intel"),
    ("ifd", "intel"),
    ("me", "intel"),
    ("me_cpd", "intel"),
    ("me_mn2", "intel"),
    ("me_manifest", "intel"),
    ("gbe", "intel"),
    ("stm", "intel"),
    // UEFI: volumes, capsules, NVRAM, the EFI/Tiano decompressors.
    ("uefi", "uefi"),
    ("capsule", "uefi"),
    ("nvram", "uefi"),
    ("decompress", "uefi"),
    // Arm TF-A.
    ("arm", "arm"),
    ("fip", "arm"),
    // AMD PSP.
    ("amd", "amd"),
    ("psp", "amd"),
    // BMC: flash layouts, FIT/uImage, U-Boot and its environment, OpenBMC tarballs, device trees, kernels.
    ("bmc", "bmc"),
    ("fit", "bmc"),
    ("fit_sig", "bmc"),
    ("uboot", "bmc"),
    ("ubootenv", "bmc"),
    ("obmc_tar", "bmc"),
    ("dtb", "bmc"),
    ("fdt", "bmc"),
    ("zimage", "bmc"),
    ("aspeed", "bmc"),
    ("supermicro", "bmc"),
    ("npcm", "bmc"),
    // File systems and archives.
    ("fs", "fs"),
    ("squashfs", "fs"),
    ("squashfs_inodes", "fs"),
    ("jffs2", "fs"),
    ("cpio", "fs"),
    ("cramfs", "fs"),
    ("romfs", "fs"),
    ("squashfs3", "fs"),
    ("yaffs2", "fs"),
    ("tree", "fs"),
    // TPM evidence: the TCG event log (not a flash format; parsed on its own by `fwscan eventlog`).
    ("tpm", "tpm"),
    ("eventlog", "tpm"),
    // Compressed streams.
    ("compress", "compress"),
    ("compressed", "compress"),
    // coreboot: flash map and CBFS.
    ("coreboot", "coreboot"),
    ("fmap", "coreboot"),
    ("cbfs", "coreboot"),
    // PCI option ROMs.
    ("pci", "pci"),
    // Stand-alone executables: PE/TE and ELF files of their own.
    ("exe", "exe"),
    ("pe_file", "exe"),
    ("elf", "exe"),
    // OpenPOWER: skiboot and SLOF.
    ("power", "power"),
    ("skiboot", "power"),
    ("slof", "power"),
    ("container", "power"),
];

/// Cross-family imports that exist and are meant: `(from, to, why)`. A family may import `common` and
/// itself; `src/formats/mod.rs` (the registry) lists every family. Any other edge must be added here with
/// its reason, in review.
const FAMILY_EDGES: &[(&str, &str, &str)] = &[
    (
        "bmc",
        "fs",
        "a BMC flash's rofs/rwfs partitions are squashfs/JFFS2 (bmc/mod.rs probes and parses them)",
    ),
    (
        "fs",
        "bmc",
        "squashfs uses fit::slack for the blank tail of its partition; slack belongs in common",
    ),
    (
        "fs",
        "uefi",
        "cramfs blocks inflate through the metered decompressors of formats/uefi/decompress/",
    ),
    (
        "bmc",
        "uefi",
        "the Supermicro X9 kernel ZIP inflates through the metered decompressors of formats/uefi/decompress/",
    ),
    (
        "intel",
        "uefi",
        "ME modules are LZMA streams: me_mn2 uses the metered decompressors of formats/uefi/decompress/",
    ),
    (
        "compress",
        "uefi",
        "xz/gzip files use the metered decompressors of formats/uefi/decompress/ (shared with UEFI sections)",
    ),
    (
        "coreboot",
        "uefi",
        "CBFS LZMA files and stages use the metered decompressors of formats/uefi/decompress/",
    ),
    (
        "pci",
        "uefi",
        "EFI-compressed option ROM images use the EFI 1.1 decompressor of formats/uefi/decompress/",
    ),
    (
        "uefi",
        "pci",
        "an option ROM stored in a raw section or raw FFS file is parsed by formats/pci (issue 22.4)",
    ),
    (
        "uefi",
        "intel",
        "an Intel STM stored in a raw section or raw FFS file is parsed by formats/intel/stm (issue 22.6)",
    ),
    (
        "uefi",
        "arm",
        "an AArch64 UEFI image may start with a TF-A FIP: uefi/mod.rs finds it with fip::TOC_NAME/extent",
    ),
    (
        "uefi",
        "bmc",
        "capsule verifies its PKCS#7 RSA signature with obmc_tar::verify_rsa; the verifier belongs in common",
    ),
    (
        "common",
        "bmc",
        "x509 verifies certificate signatures with obmc_tar::verify_rsa; the verifier belongs in common",
    ),
];

fn family(module: &str) -> Option<&'static str> {
    FAMILIES.iter().find(|(m, _)| *m == module).map(|(_, f)| *f)
}

// ---------------------------------------------------------------------------------------------------------
// Registry names matched as strings below `report/`.

/// Comparisons against a registry format name below `report/` that still wait for a registry field or a
/// typed result: `(file under src/, literal, how many, why it is still there)`. The count can only go
/// down: a new match fails the test, and so does a count that is now too high (lower it).
const NAME_MATCHES: &[(&str, &str, usize, &str)] = &[
    (
        "formats/intel/mod.rs",
        "uefi",
        2,
        "intel::annotate finds the BIOS spaces by the format the root or a flash region was parsed as; \
         wants a registry field (`x86 BIOS space`)",
    ),
    (
        "formats/bmc/mod.rs",
        "fit",
        2,
        "`expected()`: the formats a partition name promises, for layout-mismatch; wants the partition \
         presets to carry them",
    ),
    ("formats/bmc/mod.rs", "uimage", 2, "`expected()`, as above"),
    ("formats/bmc/mod.rs", "squashfs", 1, "`expected()`, as above"),
    ("formats/bmc/mod.rs", "ubi", 1, "`expected()`, as above"),
];

/// Literals that are spelled like a format name but name something else: `(file, literal, how many, what
/// it names)`. Listed so that the checker stays strict and a reader sees each one.
const NOT_FORMAT_NAMES: &[(&str, &str, usize, &str)] = &[
    (
        "manifest/trust.rs",
        "fit",
        1,
        "the trust policy's vendor key type `fit` (U-Boot verified-boot keys), not a format",
    ),
    (
        "formats/bmc/mod.rs",
        "nvram",
        1,
        "a partition name meaning per-machine data",
    ),
    (
        "formats/bmc/mod.rs",
        "u-boot",
        2,
        "a partition name, and `expected()`'s promise for it (counted above)",
    ),
    (
        "formats/intel/ifd.rs",
        "me",
        2,
        "the descriptor's region name (REGION_NAMES, and the region parsed as ME by the descriptor)",
    ),
    (
        "formats/intel/ifd.rs",
        "gbe",
        2,
        "the descriptor's region name (REGION_NAMES, and the region parsed as GbE by the descriptor)",
    ),
    (
        "formats/bmc/fit.rs",
        "fdt",
        1,
        "a FIT configuration property (`kernel`, `fdt`, `ramdisk`, ...)",
    ),
    (
        "formats/uefi/section.rs",
        "gzip",
        1,
        "a compression algorithm of a UEFI section",
    ),
];

// ---------------------------------------------------------------------------------------------------------
// Reading the source.

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Punct(&'static str),
    Str(String),
    Other,
}

const PUNCTS: &[&str] = &[
    "::", "==", "!=", "=>", "->", "||", "&&", "<=", ">=", "..", "{", "}", "(", ")", "[", "]", ";",
    ",", ":", "=", "|", "&", "!", "#", "<", ">", ".", "*", "+", "-", "/", "%", "^", "?", "@", "$",
    "~",
];

/// Tokens of Rust source, comments dropped, string literals kept as one token with their text.
fn lex(src: &str) -> Vec<Tok> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let ident_start = |c: u8| c.is_ascii_alphabetic() || c == b'_';
    let ident_cont = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            let mut depth = 0;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == b'"'
            || (c == b'b' && b.get(i + 1) == Some(&b'"'))
            || ((c == b'r' || b[i..].starts_with(b"br")) && {
                let j = i + if c == b'b' { 2 } else { 1 };
                let k = j + b[j..].iter().take_while(|&&x| x == b'#').count();
                b.get(k) == Some(&b'"')
            })
        {
            // Plain, byte or raw string.
            let raw = c == b'r' || b[i..].starts_with(b"br");
            while b[i] != b'"' && b[i] != b'#' {
                i += 1;
            }
            let hashes = b[i..].iter().take_while(|&&x| x == b'#').count();
            i += hashes + 1;
            let start = i;
            if raw {
                let mut close = vec![b'"'];
                close.extend(std::iter::repeat_n(b'#', hashes));
                while i < b.len() && !b[i..].starts_with(&close) {
                    i += 1;
                }
                out.push(Tok::Str(src[start..i].to_string()));
                i += close.len();
            } else {
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                out.push(Tok::Str(src[start..i.min(b.len())].to_string()));
                i += 1;
            }
        } else if c == b'\'' || (c == b'b' && b.get(i + 1) == Some(&b'\'')) {
            // A char literal, or a lifetime (left out).
            let j = if c == b'b' { i + 1 } else { i };
            if b.get(j + 1) == Some(&b'\\') {
                i = j + 2;
                while i < b.len() && b[i] != b'\'' {
                    i += 1;
                }
                i += 1;
                out.push(Tok::Other);
            } else if b.get(j + 2) == Some(&b'\'') {
                i = j + 3;
                out.push(Tok::Other);
            } else if c == b'b' {
                i += 1;
            } else {
                // Lifetime or a multi-byte char: skip the quote, the name follows.
                let ch = src[j + 1..].chars().next().map_or(1, char::len_utf8);
                if b.get(j + 1 + ch) == Some(&b'\'') {
                    i = j + 2 + ch;
                    out.push(Tok::Other);
                } else {
                    i = j + 1;
                }
            }
        } else if ident_start(c) {
            let s = i;
            while i < b.len() && ident_cont(b[i]) {
                i += 1;
            }
            out.push(Tok::Ident(src[s..i].to_string()));
        } else if c.is_ascii_digit() {
            while i < b.len() && ident_cont(b[i]) {
                i += 1;
            }
            out.push(Tok::Other);
        } else if let Some(p) = PUNCTS.iter().find(|p| b[i..].starts_with(p.as_bytes())) {
            out.push(Tok::Punct(p));
            i += p.len();
        } else {
            // Non-ASCII outside literals and comments.
            i += src[i..].chars().next().map_or(1, char::len_utf8);
            out.push(Tok::Other);
        }
    }
    out
}

fn is_p(t: Option<&Tok>, p: &str) -> bool {
    matches!(t, Some(Tok::Punct(x)) if *x == p)
}

fn ident(t: Option<&Tok>) -> Option<&str> {
    match t {
        Some(Tok::Ident(s)) => Some(s),
        _ => None,
    }
}

/// Index of the token closing the bracket opened at `open`.
fn closing(toks: &[Tok], open: usize) -> usize {
    let mut depth = 0i32;
    for (i, t) in toks.iter().enumerate().skip(open) {
        match t {
            Tok::Punct("{" | "(" | "[") => depth += 1,
            Tok::Punct("}" | ")" | "]") => {
                depth -= 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
    }
    toks.len()
}

/// Token index ranges of `#[cfg(test)]` items (a test module, a test-only function).
fn test_items(toks: &[Tok]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for i in 0..toks.len() {
        let attr = [
            Tok::Punct("#"),
            Tok::Punct("["),
            Tok::Ident("cfg".into()),
            Tok::Punct("("),
            Tok::Ident("test".into()),
            Tok::Punct(")"),
            Tok::Punct("]"),
        ];
        if toks[i..].starts_with(&attr) {
            let mut j = i + attr.len();
            while j < toks.len() && !is_p(toks.get(j), "{") && !is_p(toks.get(j), ";") {
                j += 1;
            }
            let end = if is_p(toks.get(j), "{") {
                closing(toks, j)
            } else {
                j
            };
            out.push((i, end));
        }
    }
    out
}

/// Where a file's paths start from: its module path in the library, or in the binary (`src/cli/`, where
/// `fwscan::` is the library and `crate::` the binary).
struct Site {
    module: Vec<String>,
    binary: bool,
}

impl Site {
    fn of(src: &Path, file: &Path) -> Site {
        let rel = file.strip_prefix(src).unwrap();
        let mut module: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_str().unwrap().to_string())
            .collect();
        let last = module.pop().unwrap();
        let stem = last.strip_suffix(".rs").unwrap_or(&last);
        if !matches!(stem, "mod" | "lib" | "main") {
            module.push(stem.to_string());
        }
        let binary = module.first().is_some_and(|m| m == "cli") || stem == "main";
        Site { module, binary }
    }
}

/// Resolves a path to an absolute library path (`["formats", "fip", "parse"]`), or `None` when it leads
/// outside the library (std, other crates, local items, the binary's own modules).
fn resolve(
    segs: &[String],
    module: &[String],
    binary: bool,
    aliases: &BTreeMap<String, Vec<String>>,
) -> Option<Vec<String>> {
    let first = segs.first()?;
    let (mut base, rest, internal) = match first.as_str() {
        "crate" => (Vec::new(), &segs[1..], true),
        "fwscan" if binary => (Vec::new(), &segs[1..], false),
        "self" => (module.to_vec(), &segs[1..], true),
        "super" => {
            let mut m = module.to_vec();
            let mut k = 0;
            while segs.get(k).is_some_and(|s| s == "super") {
                m.pop();
                k += 1;
            }
            (m, &segs[k..], true)
        }
        _ => {
            let a = aliases.get(first)?;
            (a.clone(), &segs[1..], false)
        }
    };
    if internal && binary {
        // `crate::`/`super::` inside the binary name the binary's own modules.
        return None;
    }
    base.extend(rest.iter().cloned());
    (!base.is_empty()).then_some(base)
}

/// One `use` tree starting at `i`: pushes `(path, bound name)` for each leaf; returns the index after it.
fn use_tree(
    toks: &[Tok],
    mut i: usize,
    prefix: &[String],
    out: &mut Vec<(Vec<String>, String)>,
) -> usize {
    let mut path = prefix.to_vec();
    if is_p(toks.get(i), "::") {
        i += 1;
    }
    loop {
        match toks.get(i) {
            Some(Tok::Ident(s)) => {
                path.push(s.clone());
                i += 1;
                if is_p(toks.get(i), "::") {
                    i += 1;
                    continue;
                }
                let mut name = path.last().cloned().unwrap_or_default();
                if name == "self" {
                    path.pop();
                    name = path.last().cloned().unwrap_or_default();
                }
                if ident(toks.get(i)) == Some("as") {
                    name = ident(toks.get(i + 1)).unwrap_or("_").to_string();
                    i += 2;
                }
                out.push((path, name));
                return i;
            }
            Some(Tok::Punct("{")) => {
                i += 1;
                while i < toks.len() && !is_p(toks.get(i), "}") {
                    i = use_tree(toks, i, &path, out);
                    if is_p(toks.get(i), ",") {
                        i += 1;
                    }
                }
                return i + 1;
            }
            Some(Tok::Punct("*")) => {
                // A glob: the module itself is still a dependency.
                out.push((path, "*".into()));
                return i + 1;
            }
            _ => return i + 1,
        }
    }
}

/// Every library path a file refers to (resolved), from `use` trees and paths in code. Pass `module` and
/// `binary` as [`Site::of`] gives them; inline `mod x { ... }` blocks extend the module path.
fn paths(text: &str, module: &[String], binary: bool) -> Vec<Vec<String>> {
    let toks = lex(text);
    // The module path at each token (inline `mod` blocks).
    let mut at: Vec<Vec<String>> = Vec::with_capacity(toks.len());
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut depth = 0usize;
    let mut current = module.to_vec();
    for (i, t) in toks.iter().enumerate() {
        at.push(current.clone());
        match t {
            Tok::Punct("{") => {
                depth += 1;
                if i >= 2 && ident(toks.get(i - 2)) == Some("mod") {
                    if let Some(n) = ident(toks.get(i - 1)) {
                        stack.push((depth, n.to_string()));
                        current.push(n.to_string());
                    }
                }
            }
            Tok::Punct("}") => {
                if stack.last().is_some_and(|(d, _)| *d == depth) {
                    stack.pop();
                    current.pop();
                }
                depth = depth.saturating_sub(1);
            }
            _ => {}
        }
    }
    // `use` declarations: their paths, and the names they bind.
    let mut uses: Vec<(usize, Vec<String>)> = Vec::new();
    let mut aliases = BTreeMap::new();
    let mut in_use = vec![false; toks.len()];
    let mut i = 0;
    while i < toks.len() {
        if ident(toks.get(i)) == Some("use") && !is_p(toks.get(i + 1), "(") {
            let mut leaves = Vec::new();
            let end = use_tree(&toks, i + 1, &[], &mut leaves);
            let end_in = end.min(toks.len());
            in_use[i..end_in].fill(true);
            for (p, name) in leaves {
                if name != "*" {
                    if let Some(abs) = resolve(&p, &at[i], binary, &BTreeMap::new()) {
                        aliases.insert(name, abs);
                    }
                }
                uses.push((i, p));
            }
            i = end;
        } else {
            i += 1;
        }
    }
    let mut out = Vec::new();
    for (i, p) in uses {
        out.extend(resolve(&p, &at[i], binary, &BTreeMap::new()));
    }
    // Paths in code: `a::b::c` not preceded by `::`.
    for i in 0..toks.len() {
        if in_use[i] || is_p(toks.get(i.wrapping_sub(1)), "::") || !is_p(toks.get(i + 1), "::") {
            continue;
        }
        let Some(first) = ident(toks.get(i)) else {
            continue;
        };
        let mut segs = vec![first.to_string()];
        let mut j = i + 1;
        while is_p(toks.get(j), "::") {
            match ident(toks.get(j + 1)) {
                Some(s) => segs.push(s.to_string()),
                None => break,
            }
            j += 2;
        }
        out.extend(resolve(&segs, &at[i], binary, &aliases));
    }
    out
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

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Top-level module of a source file (`src/formats/uefi/fv.rs` → `formats`), `None` for lib.rs/main.rs.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main")).then(|| name.to_string())
}

/// Resolved library paths of every source file.
fn all_paths() -> Vec<(PathBuf, Vec<Vec<String>>)> {
    let src = src_dir();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    files
        .into_iter()
        .map(|f| {
            let site = Site::of(&src, &f);
            let text = std::fs::read_to_string(&f).unwrap();
            let p = paths(&text, &site.module, site.binary);
            (f, p)
        })
        .collect()
}

/// Edges `from → to` between top-level modules, with one file that makes each.
fn edges() -> BTreeMap<(String, String), PathBuf> {
    let src = src_dir();
    let mut out = BTreeMap::new();
    for (f, paths) in all_paths() {
        let Some(from) = module_of(&src, &f) else {
            continue;
        };
        for p in paths {
            let to = &p[0];
            if *to != from && floor(to).is_some() {
                out.entry((from.clone(), to.clone()))
                    .or_insert_with(|| f.clone());
            }
        }
    }
    out
}

/// The modules of `src/formats/` (file stems and directories), `mod` for `mod.rs`.
fn format_modules() -> BTreeSet<String> {
    std::fs::read_dir(src_dir().join("formats"))
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let n = p.file_name().unwrap().to_str().unwrap().to_string();
            n.strip_suffix(".rs").map(str::to_string).unwrap_or(n)
        })
        .collect()
}

/// Edges `from family → to family` inside `src/formats/` (the registry, `mod.rs`, left out: it lists every
/// family), with one file that makes each.
fn family_edges() -> BTreeMap<(String, String), PathBuf> {
    let src = src_dir();
    let dir = src.join("formats");
    let modules = format_modules();
    let mut out = BTreeMap::new();
    for (f, paths) in all_paths() {
        let Ok(rel) = f.strip_prefix(&dir) else {
            continue;
        };
        if rel == Path::new("mod.rs") {
            continue;
        }
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_str()
            .unwrap();
        let first = first.strip_suffix(".rs").unwrap_or(first);
        let from = family(first).unwrap_or("?");
        for p in paths {
            if p.first().is_none_or(|m| m != "formats") {
                continue;
            }
            let to = match p.get(1) {
                Some(m) if modules.contains(m) => family(m).unwrap_or("?"),
                // A format by its flat path, re-exported from its family (`formats::squashfs`).
                Some(m) if family(m).is_some() => family(m).unwrap_or("?"),
                // An item of `mod.rs` (Format, Ctx, descend, ...).
                _ => "common",
            };
            if to != from {
                out.entry((from.to_string(), to.to_string()))
                    .or_insert_with(|| f.clone());
            }
        }
    }
    out
}

/// A comparison against a format name: `(index of the literal, the literal)`.
fn name_matches(text: &str, names: &BTreeSet<&str>) -> Vec<(usize, String)> {
    let toks = lex(text);
    let tests = test_items(&toks);
    let in_tests = |i: usize| tests.iter().any(|(a, b)| (*a..=*b).contains(&i));
    // Literals in the pattern part of `matches!(x, ...)`.
    let mut pattern = vec![false; toks.len()];
    for i in 0..toks.len() {
        if ident(toks.get(i)) == Some("matches")
            && is_p(toks.get(i + 1), "!")
            && is_p(toks.get(i + 2), "(")
        {
            let end = closing(&toks, i + 2);
            let mut depth = 0;
            let mut after_comma = false;
            for k in i + 3..end {
                match &toks[k] {
                    Tok::Punct("(" | "[" | "{") => depth += 1,
                    Tok::Punct(")" | "]" | "}") => depth -= 1,
                    Tok::Punct(",") if depth == 0 => after_comma = true,
                    _ => {}
                }
                pattern[k] = after_comma;
            }
        }
    }
    // The innermost open bracket at each token, and where it opened.
    let mut open: Vec<usize> = Vec::new();
    let mut inner: Vec<Option<usize>> = Vec::with_capacity(toks.len());
    for (i, t) in toks.iter().enumerate() {
        inner.push(open.last().copied());
        match t {
            Tok::Punct("(" | "[" | "{") => open.push(i),
            Tok::Punct(")" | "]" | "}") => {
                open.pop();
            }
            _ => {}
        }
    }
    let cmp = |t: Option<&Tok>| is_p(t, "==") || is_p(t, "!=");
    let mut out = Vec::new();
    for (i, t) in toks.iter().enumerate() {
        let Tok::Str(s) = t else {
            continue;
        };
        if !names.contains(s.as_str()) || in_tests(i) {
            continue;
        }
        let prev = i.checked_sub(1).and_then(|k| toks.get(k));
        let next = toks.get(i + 1);
        // `Some("x")` as one operand.
        let some = i >= 2 && is_p(prev, "(") && ident(toks.get(i - 2)) == Some("Some");
        let (before, after) = if some && is_p(next, ")") {
            (i.checked_sub(3).and_then(|k| toks.get(k)), toks.get(i + 2))
        } else {
            (prev, next)
        };
        let compared = cmp(before) || cmp(after) || some && ident(before) == Some("let");
        let arm = is_p(next, "=>")
            || is_p(next, "|")
            || is_p(prev, "|")
            || ident(next) == Some("if") && (is_p(prev, "{") || is_p(prev, ","));
        // A list of names (`&["fit", "uimage"]`), except the registry's own fields.
        let list = inner[i].is_some_and(|o| {
            is_p(toks.get(o), "[")
                && !(o >= 3
                    && is_p(toks.get(o - 1), "&")
                    && is_p(toks.get(o - 2), ":")
                    && matches!(ident(toks.get(o - 3)), Some("not_inside" | "payloads")))
        });
        if compared || arm || pattern[i] || list {
            out.push((i, s.clone()));
        }
    }
    out
}

/// Files below `report/` and their comparisons against registry names, counted per literal.
fn all_name_matches() -> BTreeMap<(String, String), usize> {
    let names: BTreeSet<&str> = fwscan::formats::registry().iter().map(|f| f.name).collect();
    let report = floor("report").unwrap();
    let src = src_dir();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut out = BTreeMap::new();
    for f in files {
        let below = module_of(&src, &f)
            .and_then(|m| floor(&m))
            .is_some_and(|fl| fl < report);
        if !below {
            continue;
        }
        let rel = f.strip_prefix(&src).unwrap().to_str().unwrap().to_string();
        for (_, lit) in name_matches(&std::fs::read_to_string(&f).unwrap(), &names) {
            *out.entry((rel.clone(), lit)).or_insert(0) += 1;
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------------------
// The rules.

#[test]
fn every_top_level_module_has_a_floor() {
    let src = src_dir();
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
fn every_format_module_has_a_family() {
    for m in format_modules() {
        assert!(
            family(&m).is_some(),
            "src/formats/{m} is not placed in a family of tests/layering.rs (FAMILIES)"
        );
    }
}

#[test]
fn format_families_import_only_common_or_allowed_edges() {
    let found = family_edges();
    let mut bad = Vec::new();
    for ((from, to), file) in &found {
        let allowed = to == "common" || FAMILY_EDGES.iter().any(|(f, t, _)| f == from && t == to);
        if !allowed {
            bad.push(format!("{from} → {to} ({})", file.display()));
        }
    }
    assert!(
        bad.is_empty(),
        "new cross-family imports inside src/formats/ (move the shared part to common, or add the \
         edge to FAMILY_EDGES with its reason):\n{}",
        bad.join("\n")
    );
    // An allowed edge that no longer exists is removed, so the list stays the truth.
    for (f, t, _) in FAMILY_EDGES {
        assert!(
            found.contains_key(&(f.to_string(), t.to_string())),
            "FAMILY_EDGES lists {f} → {t}, which no longer exists: remove it"
        );
    }
}

#[test]
fn no_module_below_report_matches_a_format_name() {
    let found = all_name_matches();
    let listed: BTreeMap<(String, String), usize> = NAME_MATCHES
        .iter()
        .chain(NOT_FORMAT_NAMES)
        .map(|(f, l, n, _)| ((f.to_string(), l.to_string()), *n))
        .collect();
    let mut bad = Vec::new();
    for ((file, lit), n) in &found {
        let allowed = listed
            .get(&(file.clone(), lit.clone()))
            .copied()
            .unwrap_or(0);
        if *n > allowed {
            bad.push(format!(
                "src/{file}: \"{lit}\" compared {n} time(s), {allowed} allowed"
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "a format's behaviour decided by its name below report/ (make it a field of the registry \
         entry in src/formats/, or a typed result):\n{}",
        bad.join("\n")
    );
    for ((file, lit), n) in &listed {
        let now = found
            .get(&(file.clone(), lit.clone()))
            .copied()
            .unwrap_or(0);
        assert_eq!(
            now, *n,
            "the allow-list of tests/layering.rs says src/{file} compares \"{lit}\" {n} time(s); \
             it now does {now} time(s): lower the count (or remove the entry)"
        );
    }
}

// ---------------------------------------------------------------------------------------------------------
// The checker can fail.

fn tops(text: &str, module: &[&str]) -> Vec<String> {
    let m: Vec<String> = module.iter().map(|s| s.to_string()).collect();
    let set: BTreeSet<String> = paths(text, &m, false)
        .into_iter()
        .map(|p| p.join("::"))
        .collect();
    set.into_iter().collect()
}

#[test]
fn the_checker_sees_imports() {
    // Groups on one line, paths in code; comments and strings left out.
    let r = tops(
        "use crate::{finding::Code, region};\nlet x = crate::hash::digest(); // crate::cli\n\
         let s = \"crate::audit\"; /* crate::scan */",
        &["formats"],
    );
    assert_eq!(
        r,
        vec!["finding::Code", "hash::digest", "region"],
        "one-line group"
    );
    // A multi-line group with nested braces, `self` and `as`.
    let r = tops(
        "use crate::{\n    formats::{\n        self,\n        fip::{Entry as E, parse},\n    },\n    \
         manifest,\n};\nfn f() { formats::squashfs::read(); }",
        &["compare"],
    );
    assert_eq!(
        r,
        vec![
            "formats",
            "formats::fip::Entry",
            "formats::fip::parse",
            "formats::squashfs::read",
            "manifest",
        ]
    );
    // `super` from a nested file and an inline test module; raw strings and lifetimes do not confuse it.
    let r = tops(
        "fn a<'a>(x: &'a str) { let c = '\"'; let r = r#\"crate::cli\"#; super::super::gbe::probe(); }\n\
         mod tests { use super::super::fit; fn t() { fit::probe(); } }",
        &["formats", "intel", "keys"],
    );
    assert_eq!(
        r,
        vec![
            "formats::gbe::probe",
            "formats::intel::fit",
            "formats::intel::fit::probe"
        ]
    );
    // In the binary, `fwscan::` is the library and `crate::` is not.
    let m = vec!["cli".to_string(), "scan".to_string()];
    let r: Vec<_> = paths(
        "use fwscan::{report, scan::Scanner};\nuse crate::cli::x;",
        &m,
        true,
    )
    .into_iter()
    .map(|p| p.join("::"))
    .collect();
    assert_eq!(r, vec!["report", "scan::Scanner"]);
    assert!(!edges().is_empty());
    assert!(!family_edges().is_empty());
}

#[test]
fn the_checker_sees_name_matches() {
    let names: BTreeSet<&str> = ["tar", "uboot-env", "capsule", "uefi", "fit"].into();
    let found = |text: &str| -> Vec<String> {
        name_matches(text, &names)
            .into_iter()
            .map(|(_, s)| s)
            .collect()
    };
    assert_eq!(
        found("x(tree.attr_str(\"format\") == Some(\"tar\"))"),
        ["tar"]
    );
    assert_eq!(found("if f.name == \"uboot-env\" {}"), ["uboot-env"]);
    assert_eq!(found("if \"uefi\" != fmt {}"), ["uefi"]);
    assert_eq!(
        found("matches!(name, \"capsule\" | \"tar\")"),
        ["capsule", "tar"]
    );
    assert_eq!(found("matches!(name, \"capsule\")"), ["capsule"]);
    assert_eq!(
        found("match f { \"fit\" => 1, \"uefi\" if x => 2, _ => 3 }"),
        ["fit", "uefi"]
    );
    assert_eq!(found("if let Some(\"tar\") = fmt {}"), ["tar"]);
    assert_eq!(
        found("const L: &[&str] = &[\"fit\", \"uefi\"];"),
        ["fit", "uefi"]
    );
    // Not comparisons: the registry's own fields, attributes written, other words, comments, tests.
    assert!(
        found("Format { name: \"tar\", not_inside: &[\"uefi\"], payloads: &[\"fit\"] }").is_empty()
    );
    assert!(found("attrs.insert(\"format\".into(), \"uefi\".into()); x == \"tarball\"").is_empty());
    assert!(found("// f.name == \"tar\"\n/* == \"fit\" */").is_empty());
    assert!(found("#[cfg(test)]\nmod tests { fn t() { assert!(f == \"tar\"); } }").is_empty());
}
