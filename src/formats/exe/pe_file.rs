//! A PE32/PE32+ or TE file of its own (a UEFI driver or application, an option ROM's EFI image written
//! out, shim, GRUB, systemd-boot), read with goblin (Microsoft PE/COFF specification; TE from the PI
//! specification, vol. 1, 15.2).
//!
//! Nodes: `headers` (DOS header, PE signature, COFF and optional headers, section table: `SizeOfHeaders`
//! bytes; for TE the 40-byte TE header and the section table), one `section[NAME]` per section with file
//! bytes (`SizeOfRawData` at `PointerToRawData`; TE pointers are moved by `StrippedSize - 40`), and the
//! Authenticode `certificate-table` (data directory 4, a file offset) when the file is signed, and the
//! `coff-symbol-table` (with its string table) when the COFF header points at one. What lies
//! between them is padding (reported by `check` when it holds data); a section that overlaps another or
//! the headers is left out and named in the `overlapping` attribute.
//!
//! Attributes of the file: machine, subsystem, entry point, image size and `authenticode-sha256`
//! ([`crate::formats::pe::describe`]), and `body-sha256`, the SHA-256 of the whole file (CHIPSEC's digest of
//! a PE32/TE section's body, i.e. of the same module stored in a volume).
#![deny(clippy::arithmetic_side_effects)]

use sha2::{Digest, Sha256};

use crate::error::ParseError;
use crate::formats::util::{le32, slice};
use crate::formats::{Confidence, Ctx, Format, Parsed, Scope};
use crate::region::{Region, RegionKind};

/// Most sections listed (the COFF header's count is a u16; real images have under 20).
const MAX_SECTIONS: usize = 256;
const TE_HEADER: u64 = 40;

/// `e_lfanew` when `b` starts with a DOS header pointing at a `PE\0\0` signature.
fn pe_header(b: &[u8]) -> Option<u64> {
    if b.get(..2)? != b"MZ" {
        return None;
    }
    let l = u64::from(le32(b, 0x3C, "e_lfanew").ok()?);
    ((0x40..0x10000).contains(&l) && slice(b, l, 4, "PE signature").ok()? == b"PE\0\0").then_some(l)
}

/// A plausible TE header at 0: `VZ`, a known machine, 1..=96 sections, an EFI subsystem, a stripped size
/// at least the TE header's.
fn te_header(b: &[u8]) -> bool {
    let Some(h) = b.get(..40) else { return false };
    let machine = u16::from_le_bytes([h[2], h[3]]);
    let stripped = u16::from_le_bytes([h[6], h[7]]);
    &h[..2] == b"VZ"
        && matches!(
            machine,
            0x014C | 0x8664 | 0xAA64 | 0x01C2 | 0x5064 | 0x0200 | 0x6264 | 0x0EBC
        )
        && (1..=96).contains(&h[4])
        && (10..=13).contains(&h[5])
        && u64::from(stripped) >= TE_HEADER
}

/// A Linux kernel image (ARM zImage magic at 0x24, arm64 `ARM\x64` at 0x38) may carry an EFI stub that
/// makes it a PE file too: the kernel format (`zimage`, earlier in the registry) keeps it on a tie.
fn kernel(b: &[u8]) -> bool {
    b.get(0x24..0x28) == Some(&[0x18, 0x28, 0x6F, 0x01]) || b.get(0x38..0x3C) == Some(b"ARM\x64")
}

pub fn probe(b: &[u8]) -> Option<Confidence> {
    if pe_header(b).is_some() {
        return Some(if kernel(b) {
            Confidence::Medium
        } else {
            Confidence::High
        });
    }
    te_header(b).then_some(Confidence::Medium)
}

/// The registry entry.
pub const FORMAT: Format = Format {
    name: "pe",
    description: "PE32/PE32+ or TE executable of its own (UEFI driver or application, boot loader)",
    probe,
    parse,
    scope: Scope::File(Confidence::Medium),
    component: Some("bios"),
    policy: None,
    not_inside: &["pe"],
    payloads: &[],
    package: None,
};

/// One section of the table: (name, file offset, file size, virtual address, virtual size,
/// characteristics).
type Sec = (String, u64, u64, u32, u32, u32);

/// What [`table`] reads: the header length, the sections, the certificate table and the COFF symbol
/// table (with its string table), as (file offset, size).
type Table = (u64, Vec<Sec>, Option<(u64, u64)>, Option<(u64, u64)>);

pub fn parse(ctx: &Ctx, node: &Region) -> Result<Parsed, ParseError> {
    let b = node.bytes();
    let len = b.len() as u64;
    let te = pe_header(b).is_none();
    let bad = |detail: String| ParseError::Invalid {
        what: "PE image",
        offset: node.offset,
        detail,
    };
    let (hdr_len, secs, cert, symbols) = std::panic::catch_unwind(|| table(b, te))
        .map_err(|_| bad("PE parser panicked on this image".into()))?
        .map_err(|e| bad(e.to_string()))?;
    let mut nodes = vec![Region::new(
        RegionKind::Header,
        "headers",
        &node.data,
        node.offset,
        hdr_len.min(len),
    )];
    for (name, off, size, va, vsize, ch) in secs.iter().take(MAX_SECTIONS) {
        if *size == 0 || *off >= len {
            continue;
        }
        if !ctx.take_region() {
            break;
        }
        nodes.push(
            Region::new(
                RegionKind::Section,
                format!("section[{name}]"),
                &node.data,
                node.offset.saturating_add(*off),
                (*size).min(len.saturating_sub(*off)),
            )
            .with_attr("virtual-address", format!("{va:#x}"))
            .with_attr("virtual-size", u64::from(*vsize))
            .with_attr("characteristics", format!("{ch:#010x}")),
        );
    }
    if let Some((off, size)) = cert.filter(|&(o, s)| s > 0 && o < len) {
        nodes.push(Region::new(
            RegionKind::Header,
            "certificate-table",
            &node.data,
            node.offset.saturating_add(off),
            size.min(len.saturating_sub(off)),
        ));
    }
    if let Some((off, size)) = symbols.filter(|&(o, s)| s > 0 && o < len) {
        nodes.push(Region::new(
            RegionKind::Header,
            "coff-symbol-table",
            &node.data,
            node.offset.saturating_add(off),
            size.min(len.saturating_sub(off)),
        ));
    }
    let (kids, dropped) = super::nest(&node.data, nodes, ctx.opts.blank);
    let mut p = Parsed::from(kids)
        .attr("executable-format", if te { "te" } else { "pe" })
        .attr("sections", secs.len() as u64)
        .attr("body-sha256", hex::encode(Sha256::digest(b)));
    for (k, v) in crate::formats::pe::describe(b, te) {
        p = p.attr(k, v);
    }
    if !dropped.is_empty() {
        p = p.attr("overlapping", dropped);
    }
    Ok(p)
}

/// The header length, the sections (file ranges in this file) and the certificate table of a PE or TE
/// image, from goblin.
fn table(b: &[u8], te: bool) -> Result<Table, super::HeaderError> {
    let conv = |s: &goblin::pe::section_table::SectionTable, adj: u64| -> Sec {
        let name = s
            .name()
            .map(|n| n.trim_end_matches('\0').to_string())
            .unwrap_or_default();
        (
            if name.is_empty() { "?".into() } else { name },
            u64::from(s.pointer_to_raw_data).saturating_sub(adj),
            u64::from(s.size_of_raw_data),
            s.virtual_address,
            s.virtual_size,
            s.characteristics,
        )
    };
    if te {
        // Validate what goblin's TE parser subtracts before calling it (StrippedSize >= header size).
        if !te_header(b) {
            return Err(super::HeaderError::NotTe);
        }
        let n = u64::from(b[4]);
        let t = goblin::pe::TE::parse(b)?;
        // goblin already moved the raw-data pointers into this file (StrippedSize - 40).
        let secs = t.sections.iter().map(|s| conv(s, 0)).collect();
        let hdr = TE_HEADER.saturating_add(n.saturating_mul(40));
        return Ok((hdr, secs, None, None));
    }
    let mut opts = goblin::pe::options::ParseOptions::default();
    opts.parse_tls_data = false;
    opts.parse_resources = false;
    opts.parse_imports = false;
    opts.parse_attribute_certificates = false;
    let pe = goblin::pe::PE::parse_with_opts(b, &opts)?;
    let oh = pe.header.optional_header.as_ref();
    let hdr = oh.map_or(0, |o| u64::from(o.windows_fields.size_of_headers));
    // At least the section table: DOS header, PE signature, COFF header, optional header, table.
    let coff = &pe.header.coff_header;
    let lfanew = u64::from(pe.header.dos_header.pe_pointer);
    let table_end = lfanew
        .saturating_add(24)
        .saturating_add(u64::from(coff.size_of_optional_header))
        .saturating_add(u64::from(coff.number_of_sections).saturating_mul(40));
    let cert = oh
        .and_then(|o| o.data_directories.get_certificate_table())
        .map(|d| (u64::from(d.virtual_address), u64::from(d.size)));
    let secs = pe.sections.iter().map(|s| conv(s, 0)).collect();
    // The COFF symbol table (18-byte records) and the string table after it (its u32 size counts itself),
    // which objcopy-built EFI binaries may keep.
    let symbols = (coff.pointer_to_symbol_table != 0).then(|| {
        let at = u64::from(coff.pointer_to_symbol_table);
        let syms = u64::from(coff.number_of_symbol_table).saturating_mul(18);
        let strings = le32(b, at.saturating_add(syms), "string table size")
            .map_or(0, u64::from)
            .max(4);
        (at, syms.saturating_add(strings))
    });
    Ok((hdr.max(table_end), secs, cert, symbols))
}

/// A minimal PE32+ EFI application writer for tests and fuzz seeds: x64, subsystem 10, file alignment
/// 0x200, section alignment 0x1000, one section per `(name, data)`.
#[cfg(any(test, feature = "fixtures"))]
#[allow(clippy::arithmetic_side_effects)] // test fixtures of small, known sizes
pub fn build(sections: &[(&str, &[u8])]) -> Vec<u8> {
    let put16 = |b: &mut Vec<u8>, o: usize, v: u16| b[o..o + 2].copy_from_slice(&v.to_le_bytes());
    let put32 = |b: &mut Vec<u8>, o: usize, v: u32| b[o..o + 4].copy_from_slice(&v.to_le_bytes());
    let mut b = vec![0u8; 0x200];
    b[..2].copy_from_slice(b"MZ");
    put32(&mut b, 0x3C, 0x40);
    b[0x40..0x44].copy_from_slice(b"PE\0\0");
    let coff = 0x44;
    put16(&mut b, coff, 0x8664);
    put16(&mut b, coff + 2, sections.len() as u16);
    put16(&mut b, coff + 16, 0xF0);
    put16(&mut b, coff + 18, 0x2022);
    let oh = coff + 20;
    put16(&mut b, oh, 0x20B);
    put32(&mut b, oh + 16, 0x1000);
    put32(&mut b, oh + 20, 0x1000);
    put32(&mut b, oh + 32, 0x1000);
    put32(&mut b, oh + 36, 0x200);
    put32(&mut b, oh + 60, 0x200);
    put16(&mut b, oh + 68, 10);
    put32(&mut b, oh + 108, 16);
    let table = oh + 0xF0;
    let mut raw = 0x200u32;
    let mut va = 0x1000u32;
    let mut body = Vec::new();
    for (i, (name, data)) in sections.iter().enumerate() {
        let t = table + 40 * i;
        let n = name.as_bytes();
        b[t..t + n.len().min(8)].copy_from_slice(&n[..n.len().min(8)]);
        let rawsize = (data.len() as u32).next_multiple_of(0x200);
        put32(&mut b, t + 8, data.len() as u32);
        put32(&mut b, t + 12, va);
        put32(&mut b, t + 16, rawsize);
        put32(&mut b, t + 20, raw);
        put32(&mut b, t + 36, 0x6000_0020);
        let mut d = data.to_vec();
        d.resize(rawsize as usize, 0);
        body.extend(d);
        raw += rawsize;
        va += (data.len() as u32).max(1).next_multiple_of(0x1000);
    }
    put32(&mut b, oh + 56, va);
    b.extend(body);
    b
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

    #[test]
    fn kernels_and_non_pe_bytes_are_not_taken_for_pe_files() {
        assert_eq!(probe(b"MZ"), None);
        let mut b = vec![0u8; 0x200];
        b[..2].copy_from_slice(b"MZ");
        b[0x3C] = 0x80;
        assert_eq!(probe(&b), None);
        b[0x80..0x84].copy_from_slice(b"PE\0\0");
        assert_eq!(probe(&b), Some(Confidence::High));
        b[0x38..0x3C].copy_from_slice(b"ARM\x64");
        assert_eq!(probe(&b), Some(Confidence::Medium));
    }

    #[test]
    fn sections_of_a_written_image_and_mutations_stay_in_bounds() {
        let img = build(&[(".text", &[0xC3; 0x30]), (".data", &[1; 0x210])]);
        let data = std::sync::Arc::new(crate::input::Data::Owned(img.clone()));
        let opts = crate::formats::ParseOptions {
            format: Some("pe".into()),
            ..crate::formats::ParseOptions::default()
        };
        let t = crate::formats::parse_image(data, &opts);
        let kids: Vec<(&str, u64, u64)> = t
            .children
            .iter()
            .map(|c| (c.name.as_str(), c.offset, c.size))
            .collect();
        assert_eq!(
            kids,
            [
                ("headers", 0, 0x200),
                ("section[.text]", 0x200, 0x200),
                ("section[.data]", 0x400, 0x400)
            ]
        );
        assert_eq!(t.attrs["machine"], "x64");
        assert_eq!(t.attrs["subsystem"], "efi-application");
        assert_eq!(
            t.attrs["body-sha256"],
            hex::encode(sha2::Sha256::digest(&img))
        );
        assert!(detect_file_is_pe(&img));
        crate::formats::util::mutations_stay_in_bounds(&img, "pe", 2000);
    }

    fn detect_file_is_pe(b: &[u8]) -> bool {
        crate::formats::detect_file(b).map(|f| f.name) == Some("pe")
    }
}
