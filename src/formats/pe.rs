//! PE32/PE32+ and TE images inside FFS sections, read with goblin: machine, subsystem, entry point, image
//! size and the Authenticode SHA-256 digest (goblin's Authenticode ranges). TE images have no Authenticode
//! definition; their `authenticode-sha256` is the SHA-256 of the whole TE body.
#![deny(clippy::arithmetic_side_effects)]

use goblin::pe::options::ParseOptions;
use serde_json::Value;
use sha2::{Digest, Sha256};

fn machine_name(m: u16) -> String {
    match m {
        0x014C => "i386".into(),
        0x8664 => "x64".into(),
        0xAA64 => "aarch64".into(),
        0x01C2 => "thumb".into(),
        0x01C0 => "arm".into(),
        0x5032 => "riscv32".into(),
        0x5064 => "riscv64".into(),
        0x6264 => "loongarch64".into(),
        0x0EBC => "ebc".into(),
        0x0200 => "ia64".into(),
        m => format!("{m:#06x}"),
    }
}

fn subsystem_name(s: u16) -> String {
    match s {
        10 => "efi-application".into(),
        11 => "efi-boot-service-driver".into(),
        12 => "efi-runtime-driver".into(),
        13 => "efi-rom".into(),
        s => format!("{s}"),
    }
}

/// Attributes of a PE32(+) or TE image; empty (or with a `pe-error`) when it does not parse.
///
/// goblin is a third-party parser fed hostile bytes: a panic inside it (a bug there) is caught and becomes
/// a `pe-error` attribute rather than taking the whole scan down. The fuzz target still sees such panics.
pub fn describe(body: &[u8], te: bool) -> Vec<(&'static str, Value)> {
    std::panic::catch_unwind(|| describe_inner(body, te))
        .unwrap_or_else(|_| vec![("pe-error", "PE parser panicked on this image".into())])
}

fn describe_inner(body: &[u8], te: bool) -> Vec<(&'static str, Value)> {
    let mut out = Vec::new();
    if te {
        // Validate what goblin's TE parser subtracts before calling it (StrippedSize >= header size).
        if body.len() < 40 || &body[..2] != b"VZ" {
            out.push(("pe-error", "not a TE image".into()));
            return out;
        }
        let stripped = u16::from_le_bytes([body[6], body[7]]);
        if (stripped as usize) < 40 {
            out.push((
                "pe-error",
                "TE StrippedSize smaller than the TE header".into(),
            ));
            return out;
        }
        match goblin::pe::TE::parse(body) {
            Ok(t) => {
                out.push(("machine", machine_name(t.header.machine).into()));
                out.push((
                    "subsystem",
                    subsystem_name(u16::from(t.header.subsystem)).into(),
                ));
                out.push(("entry-point", format!("{:#x}", t.header.entry_point).into()));
                let size = t
                    .sections
                    .iter()
                    .map(|s| u64::from(s.virtual_address).saturating_add(u64::from(s.virtual_size)))
                    .max()
                    .unwrap_or(0);
                out.push(("image-size", size.into()));
            }
            Err(e) => out.push(("pe-error", e.to_string().into())),
        }
        out.push((
            "authenticode-sha256",
            hex::encode(Sha256::digest(body)).into(),
        ));
        return out;
    }
    let mut opts = ParseOptions::default();
    opts.parse_tls_data = false;
    opts.parse_resources = false;
    opts.parse_imports = false;
    match goblin::pe::PE::parse_with_opts(body, &opts) {
        Ok(pe) => {
            out.push((
                "machine",
                machine_name(pe.header.coff_header.machine).into(),
            ));
            if let Some(oh) = &pe.header.optional_header {
                out.push((
                    "subsystem",
                    subsystem_name(oh.windows_fields.subsystem).into(),
                ));
                out.push((
                    "entry-point",
                    format!("{:#x}", oh.standard_fields.address_of_entry_point).into(),
                ));
                out.push((
                    "image-size",
                    u64::from(oh.windows_fields.size_of_image).into(),
                ));
            }
            let mut h = Sha256::new();
            for r in pe.authenticode_ranges() {
                h.update(r);
            }
            out.push(("authenticode-sha256", hex::encode(h.finalize()).into()));
        }
        Err(e) => out.push(("pe-error", e.to_string().into())),
    }
    out
}
