//! An AMD PSP binary of its own (`*.sbin`: the PSP boot loader, SMU firmware, ABL stages, as AMD ships them
//! for coreboot and openSIL): the 256-byte PSP header with `$PS1` at 0x10, the body, and the signature.
//!
//! Header fields (as PSPTool's `HeaderFile` reads them): `size_signed` (0x14), encrypted (0x18, then the IV
//! at 0x20 and the wrapped key at 0x80), signed (0x30: 1), signature type (0x34: 0 RSA-2048, 2 RSA-4096),
//! the signing key's id (fingerprint, 0x38..0x48), compressed (0x48), uncompressed and zlib sizes (0x50,
//! 0x54), checksum bits (0x58, big-endian: SHA-256 / SHA-384 of the body at 0xD0), version (0x60..0x64,
//! most significant byte last), load address (0x68), total size (`rom_size`, 0x6C; 0: the whole file).
//!
//! Nodes: `header`, `body`, `signature` (the last 256 or 512 bytes of `rom_size` when signed); bytes after
//! `rom_size` are padding. A signed binary carries `amd-psp` evidence `not-verified` naming the key id: AMD's
//! keys are not available offline, so the binary is compared by digest (as PSP entries in a flash are).
#![deny(clippy::arithmetic_side_effects)]

use crate::error::ParseError;
use crate::formats::util::{le32, slice};
use crate::formats::{Confidence, Ctx, Format, Parsed, Scope};
use crate::region::{Region, RegionKind};

const HEADER: u64 = 0x100;
const MAGIC: &[u8] = b"$PS1";

pub fn probe(b: &[u8]) -> Option<Confidence> {
    if b.len() < HEADER as usize || b.get(0x10..0x14)? != MAGIC {
        return None;
    }
    let signed = le32(b, 0x30, "signed").ok()?;
    let rom = u64::from(le32(b, 0x6C, "rom size").ok()?);
    (matches!(signed, 0 | 1 | 0xFFFF_0000) && rom <= b.len() as u64).then_some(Confidence::High)
}

/// The registry entry.
pub const FORMAT: Format = Format {
    name: "psp",
    description: "AMD PSP binary of its own (.sbin): $PS1 header (key id, signature type, sizes), body, signature",
    probe,
    parse,
    scope: Scope::File(Confidence::High),
    component: Some("bios"),
    policy: None,
    not_inside: &["psp"],
    payloads: &[],
    package: None,
};

pub fn parse(_ctx: &Ctx, node: &Region) -> Result<Parsed, ParseError> {
    let b = node.bytes();
    let len = b.len() as u64;
    let h = slice(b, 0, HEADER, "PSP header")?;
    if h.get(0x10..0x14) != Some(MAGIC) {
        return Err(ParseError::Invalid {
            what: "PSP header",
            offset: node.offset.saturating_add(0x10),
            detail: "no $PS1 magic".into(),
        });
    }
    let f = |o: u64, w: &'static str| le32(h, o, w);
    let size_signed = f(0x14, "size signed")?;
    let encrypted = f(0x18, "encrypted")? == 1;
    let signed = f(0x30, "signed")?;
    let sig_type = f(0x34, "signature type")?;
    let key = hex::encode(&h[0x38..0x48]);
    let compressed = f(0x48, "compressed")? == 1;
    let bits = u32::from_be_bytes([h[0x58], h[0x59], h[0x5A], h[0x5B]]);
    let version: Vec<String> = h[0x60..0x64]
        .iter()
        .rev()
        .map(|x| format!("{x:X}"))
        .collect();
    let load = f(0x68, "load address")?;
    let rom = match u64::from(f(0x6C, "rom size")?) {
        0 => len,
        n => n,
    };
    if rom > len || rom < HEADER {
        return Err(ParseError::Invalid {
            what: "PSP header",
            offset: node.offset.saturating_add(0x6C),
            detail: format!("size {rom:#x} does not fit the file ({len:#x}) or its header"),
        });
    }
    let is_signed = signed != 0;
    let sig_len = match (is_signed, sig_type) {
        (false, _) => 0,
        (true, 2) => 0x200,
        (true, _) => 0x100,
    };
    let body_end = rom.saturating_sub(sig_len).max(HEADER);
    let at = |o: u64| node.offset.saturating_add(o);
    let mut kids = vec![Region::new(
        RegionKind::Header,
        "header",
        &node.data,
        at(0),
        HEADER,
    )];
    if body_end > HEADER {
        kids.push(Region::new(
            RegionKind::Blob,
            "body",
            &node.data,
            at(HEADER),
            body_end.saturating_sub(HEADER),
        ));
    }
    if rom > body_end {
        kids.push(Region::new(
            RegionKind::Header,
            "signature",
            &node.data,
            at(body_end),
            rom.saturating_sub(body_end),
        ));
    }
    let mut p = Parsed::from(kids)
        .attr("psp-header", true)
        .attr("size-signed", size_signed)
        .attr("encrypted", encrypted)
        .attr("compressed", compressed)
        .attr("signed", is_signed)
        .attr("version", version.join("."))
        .attr("load-address", format!("{load:#x}"))
        .attr("rom-size", rom)
        .attr(
            "checksum",
            match bits & 3 {
                1 => "sha256",
                2 => "sha384",
                3 => "both",
                _ => "none",
            },
        );
    if is_signed {
        p = p
            .attr("signature-type", sig_type)
            .attr("signing-key-id", key.clone())
            .evidence(
                crate::finding::Evidence::on_node(
                    crate::finding::Scheme::AmdPsp,
                    crate::finding::Status::NotVerified(
                        "AMD's signing keys are not available offline; compared by digest".into(),
                    ),
                )
                .with_signer(key),
            );
    }
    Ok(p)
}

/// A signed PSP binary for tests and fuzz seeds: header (key id 0x11.., RSA-2048), `body`, a zero
/// signature.
#[cfg(any(test, feature = "fixtures"))]
#[allow(clippy::arithmetic_side_effects)] // test fixtures of small, known sizes
pub fn build(body: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 0x100];
    b[0x10..0x14].copy_from_slice(MAGIC);
    b[0x14..0x18].copy_from_slice(&(body.len() as u32).to_le_bytes());
    b[0x30] = 1;
    b[0x38..0x48].fill(0x11);
    b[0x60..0x64].copy_from_slice(&[0x05, 0x00, 0x2A, 0x00]);
    let rom = 0x100 + body.len() + 0x100;
    b[0x6C..0x70].copy_from_slice(&(rom as u32).to_le_bytes());
    b.extend_from_slice(body);
    b.resize(rom, 0);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_body_signature_and_mutations_stay_in_bounds() {
        let img = build(&[0xA5; 0x40]);
        let data = std::sync::Arc::new(crate::input::Data::Owned(img.clone()));
        let t = crate::formats::parse_image(data, &crate::formats::ParseOptions::default());
        assert_eq!(t.attrs["format"], "psp");
        let kids: Vec<(&str, u64, u64)> = t
            .children
            .iter()
            .map(|c| (c.name.as_str(), c.offset, c.size))
            .collect();
        assert_eq!(
            kids,
            [
                ("header", 0, 0x100),
                ("body", 0x100, 0x40),
                ("signature", 0x140, 0x100)
            ]
        );
        assert_eq!(t.attrs["signing-key-id"], "11".repeat(16));
        assert_eq!(t.attrs["version"], "0.2A.0.5");
        crate::formats::util::mutations_stay_in_bounds(&img, "psp", 2000);
    }
}
