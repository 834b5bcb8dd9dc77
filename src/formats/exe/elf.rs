//! An ELF file of its own (TF-A `bl31.elf`, U-Boot's ELF, OpenSBI `fw_dynamic.elf`, OpenBIOS, skiboot's
//! ELF), read with goblin (System V ABI, ELF header, program and section header tables).
//!
//! Nodes: `elf-header`, `program-headers`, `section-headers`, one `segment[N:TYPE]` per program header with
//! file bytes (`p_filesz` at `p_offset`), and one `section[NAME]` per section with file bytes (`SHT_NOBITS`
//! such as `.bss` has none). A section inside a segment is that segment's child, a segment inside another
//! (`PT_NOTE`, `PT_DYNAMIC` inside a `PT_LOAD`) too; one that only partly overlaps another is left out and
//! named in the `overlapping` attribute. Bytes no node explains are padding (reported by `check` at the
//! top level when they hold data).
//!
//! Attributes: class, endianness, machine, ELF type, entry point, counts of segments and sections.
#![deny(clippy::arithmetic_side_effects)]

use goblin::container::Ctx as GCtx;
use goblin::elf::header::Header;
use goblin::elf::program_header::{self, ProgramHeader};
use goblin::elf::section_header::{self, SectionHeader};

use crate::error::ParseError;
use crate::formats::{Confidence, Ctx, Format, Parsed, Scope};
use crate::region::{Region, RegionKind};

/// Most program headers and section headers listed (u16 counts; real firmware has tens).
const MAX_ENTRIES: usize = 1024;

pub fn probe(b: &[u8]) -> Option<Confidence> {
    if b.get(..4)? != b"\x7fELF" {
        return None;
    }
    // Class 1 or 2, data 1 or 2, version 1.
    let ok = matches!(b.get(4)?, 1 | 2) && matches!(b.get(5)?, 1 | 2) && *b.get(6)? == 1;
    ok.then_some(Confidence::High)
}

/// The registry entry.
pub const FORMAT: Format = Format {
    name: "elf",
    description:
        "ELF executable of its own (TF-A BL31, U-Boot, OpenSBI, OpenBIOS): segments and sections",
    probe,
    parse,
    scope: Scope::File(Confidence::High),
    component: Some("bios"),
    policy: None,
    not_inside: &["elf"],
    payloads: &[],
    package: None,
};

fn machine(m: u16) -> String {
    match m {
        3 => "i386".into(),
        62 => "x86-64".into(),
        40 => "arm".into(),
        183 => "aarch64".into(),
        243 => "riscv".into(),
        20 => "ppc".into(),
        21 => "ppc64".into(),
        8 => "mips".into(),
        2 => "sparc".into(),
        43 => "sparcv9".into(),
        258 => "loongarch".into(),
        m => format!("{m}"),
    }
}

fn seg_type(t: u32) -> String {
    match t {
        program_header::PT_LOAD => "load".into(),
        program_header::PT_DYNAMIC => "dynamic".into(),
        program_header::PT_INTERP => "interp".into(),
        program_header::PT_NOTE => "note".into(),
        program_header::PT_PHDR => "phdr".into(),
        program_header::PT_TLS => "tls".into(),
        program_header::PT_GNU_EH_FRAME => "gnu-eh-frame".into(),
        program_header::PT_GNU_RELRO => "gnu-relro".into(),
        t => format!("{t:#x}"),
    }
}

/// The NUL-terminated name at `at` of the section name table `strtab` (at most 64 bytes, `?` if none).
fn name_at(strtab: &[u8], at: usize) -> String {
    let s = strtab.get(at..).unwrap_or(&[]);
    let end = s.iter().take(64).position(|&c| c == 0).unwrap_or(0);
    let n: String = String::from_utf8_lossy(&s[..end])
        .chars()
        .filter(|c| !c.is_control() && *c != '/')
        .collect();
    if n.is_empty() {
        "?".into()
    } else {
        n
    }
}

/// The headers of an ELF file, from goblin (tables bounded by the file's size).
fn headers(
    b: &[u8],
) -> Result<(Header, Vec<ProgramHeader>, Vec<SectionHeader>), super::HeaderError> {
    let h = goblin::elf::Elf::parse_header(b)?;
    let ctx = GCtx::new(h.container()?, h.endianness()?);
    let ph = if h.e_phnum > 0 && h.e_phoff > 0 {
        ProgramHeader::parse(b, h.e_phoff as usize, usize::from(h.e_phnum), ctx)?
    } else {
        Vec::new()
    };
    let sh = if h.e_shnum > 0 && h.e_shoff > 0 {
        SectionHeader::parse(b, h.e_shoff as usize, usize::from(h.e_shnum), ctx)?
    } else {
        Vec::new()
    };
    Ok((h, ph, sh))
}

pub fn parse(ctx: &Ctx, node: &Region) -> Result<Parsed, ParseError> {
    let b = node.bytes();
    let len = b.len() as u64;
    let bad = |detail: String| ParseError::Invalid {
        what: "ELF file",
        offset: node.offset,
        detail,
    };
    let (h, ph, sh) = std::panic::catch_unwind(|| headers(b))
        .map_err(|_| bad("ELF parser panicked on this file".into()))?
        .map_err(|e| bad(e.to_string()))?;
    let at = |o: u64, s: u64, kind: RegionKind, name: String| -> Option<Region> {
        (s > 0 && o < len).then(|| {
            Region::new(
                kind,
                name,
                &node.data,
                node.offset.saturating_add(o),
                s.min(len.saturating_sub(o)),
            )
        })
    };
    let mut nodes: Vec<Region> = Vec::new();
    nodes.extend(at(
        0,
        u64::from(h.e_ehsize),
        RegionKind::Header,
        "elf-header".into(),
    ));
    nodes.extend(at(
        h.e_phoff,
        u64::from(h.e_phnum).saturating_mul(u64::from(h.e_phentsize)),
        RegionKind::Header,
        "program-headers".into(),
    ));
    nodes.extend(at(
        h.e_shoff,
        u64::from(h.e_shnum).saturating_mul(u64::from(h.e_shentsize)),
        RegionKind::Header,
        "section-headers".into(),
    ));
    for (i, p) in ph.iter().enumerate().take(MAX_ENTRIES) {
        // PT_PHDR is the program header table, already a node.
        if p.p_type == program_header::PT_PHDR || !ctx.take_region() {
            continue;
        }
        if let Some(r) = at(
            p.p_offset,
            p.p_filesz,
            RegionKind::Partition,
            format!("segment[{i}:{}]", seg_type(p.p_type)),
        ) {
            nodes.push(
                r.with_attr("vaddr", format!("{:#x}", p.p_vaddr))
                    .with_attr("memsz", p.p_memsz)
                    .with_attr("flags", flags(p.p_flags)),
            );
        }
    }
    let strtab = sh
        .get(usize::from(h.e_shstrndx))
        .filter(|s| s.sh_type != section_header::SHT_NOBITS)
        .and_then(|s| {
            let start = usize::try_from(s.sh_offset).ok()?;
            let end = start.checked_add(usize::try_from(s.sh_size).ok()?)?;
            b.get(start..end)
        })
        .unwrap_or(&[]);
    for s in sh.iter().take(MAX_ENTRIES) {
        if s.sh_type == section_header::SHT_NOBITS
            || s.sh_type == section_header::SHT_NULL
            || !ctx.take_region()
        {
            continue;
        }
        let name = name_at(strtab, s.sh_name);
        if let Some(r) = at(
            s.sh_offset,
            s.sh_size,
            RegionKind::Section,
            format!("section[{name}]"),
        ) {
            nodes.push(
                r.with_attr("addr", format!("{:#x}", s.sh_addr))
                    .with_attr("section-type", format!("{:#x}", s.sh_type)),
            );
        }
    }
    let (kids, dropped) = super::nest(&node.data, nodes, ctx.opts.blank);
    let mut p = Parsed::from(kids)
        .attr("executable-format", "elf")
        .attr("class", if h.e_ident[4] == 2 { "elf64" } else { "elf32" })
        .attr(
            "endianness",
            if h.e_ident[5] == 2 { "big" } else { "little" },
        )
        .attr("machine", machine(h.e_machine))
        .attr(
            "elf-type",
            match h.e_type {
                1 => "rel".to_string(),
                2 => "exec".into(),
                3 => "dyn".into(),
                4 => "core".into(),
                t => format!("{t:#x}"),
            },
        )
        .attr("entry-point", format!("{:#x}", h.e_entry))
        .attr("segments", ph.len() as u64)
        .attr("section-count", sh.len() as u64);
    if !dropped.is_empty() {
        p = p.attr("overlapping", dropped);
    }
    Ok(p)
}

fn flags(f: u32) -> String {
    let mut s = String::new();
    s.push(if f & program_header::PF_R != 0 {
        'r'
    } else {
        '-'
    });
    s.push(if f & program_header::PF_W != 0 {
        'w'
    } else {
        '-'
    });
    s.push(if f & program_header::PF_X != 0 {
        'x'
    } else {
        '-'
    });
    s
}

/// A minimal ELF64 little-endian AArch64 executable writer for tests and fuzz seeds: the ELF header, one
/// program header (a `PT_LOAD` over the headers and `.text`), `.text` at 0x80, `.shstrtab`, and the
/// section header table (null, `.text`, `.shstrtab`).
#[cfg(any(test, feature = "fixtures"))]
#[allow(clippy::arithmetic_side_effects)] // test fixtures of small, known sizes
pub fn build(text: &[u8]) -> Vec<u8> {
    fn p16(b: &mut [u8], o: usize, v: u16) {
        b[o..o + 2].copy_from_slice(&v.to_le_bytes());
    }
    fn p32(b: &mut [u8], o: usize, v: u32) {
        b[o..o + 4].copy_from_slice(&v.to_le_bytes());
    }
    fn p64(b: &mut [u8], o: usize, v: u64) {
        b[o..o + 8].copy_from_slice(&v.to_le_bytes());
    }
    let text_off = 0x80usize;
    let text_end = text_off + text.len();
    let names = b"\0.text\0.shstrtab\0";
    let str_off = text_end;
    let sh_off = (str_off + names.len()).next_multiple_of(8);
    let mut b = vec![0u8; sh_off + 3 * 64];
    b[..4].copy_from_slice(b"\x7fELF");
    b[4] = 2;
    b[5] = 1;
    b[6] = 1;
    p16(&mut b, 16, 2);
    p16(&mut b, 18, 183);
    p32(&mut b, 20, 1);
    p64(&mut b, 24, 0x8000_0080);
    p64(&mut b, 32, 64);
    p64(&mut b, 40, sh_off as u64);
    p16(&mut b, 52, 64);
    p16(&mut b, 54, 56);
    p16(&mut b, 56, 1);
    p16(&mut b, 58, 64);
    p16(&mut b, 60, 3);
    p16(&mut b, 62, 2);
    // PT_LOAD r-x over [0, text_end).
    p32(&mut b, 64, 1);
    p32(&mut b, 68, 5);
    p64(&mut b, 72, 0);
    p64(&mut b, 80, 0x8000_0000);
    p64(&mut b, 88, 0x8000_0000);
    p64(&mut b, 96, text_end as u64);
    p64(&mut b, 104, text_end as u64);
    p64(&mut b, 112, 0x1000);
    b[text_off..text_end].copy_from_slice(text);
    b[str_off..str_off + names.len()].copy_from_slice(names);
    // [1] .text: PROGBITS, alloc+exec.
    let s1 = sh_off + 64;
    p32(&mut b, s1, 1);
    p32(&mut b, s1 + 4, 1);
    p64(&mut b, s1 + 8, 6);
    p64(&mut b, s1 + 16, 0x8000_0080);
    p64(&mut b, s1 + 24, text_off as u64);
    p64(&mut b, s1 + 32, text.len() as u64);
    // [2] .shstrtab: STRTAB.
    let s2 = sh_off + 128;
    p32(&mut b, s2, 7);
    p32(&mut b, s2 + 4, 3);
    p64(&mut b, s2 + 24, str_off as u64);
    p64(&mut b, s2 + 32, names.len() as u64);
    b
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

    #[test]
    fn segments_hold_their_sections_and_mutations_stay_in_bounds() {
        let img = build(&[0x1F, 0x20, 0x03, 0xD5].repeat(8));
        let data = std::sync::Arc::new(crate::input::Data::Owned(img.clone()));
        let opts = crate::formats::ParseOptions {
            format: Some("elf".into()),
            ..crate::formats::ParseOptions::default()
        };
        let t = crate::formats::parse_image(data, &opts);
        let top: Vec<&str> = t.children.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            top,
            [
                "segment[0:load]",
                "section[.shstrtab]",
                "padding",
                "section-headers"
            ]
        );
        let seg: Vec<&str> = t.children[0]
            .children
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(
            seg,
            ["elf-header", "program-headers", "padding", "section[.text]"]
        );
        assert_eq!(t.attrs["machine"], "aarch64");
        assert_eq!(
            crate::formats::detect_file(&img).map(|f| f.name),
            Some("elf")
        );
        crate::formats::util::mutations_stay_in_bounds(&img, "elf", 2000);
    }
}
