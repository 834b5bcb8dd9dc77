//! JFFS2 (the OpenBMC writable overlay, `rwfs`): per-machine data, [`Policy::Mutable`] as a whole. The
//! parser walks the node log (little-endian, magic 0x1985, 4-byte aligned) and lists the live file names
//! from directory-entry nodes in the `files` attribute, for `inspect`. Nothing in it is compared.
#![deny(clippy::arithmetic_side_effects)]

use std::collections::HashMap;

use crate::error::ParseError;
use crate::formats::util::{le16, le32, u8_at};
use crate::formats::{Confidence, Ctx, Parsed};
use crate::region::{Policy, Region, RegionKind};

pub const MAGIC: u16 = 0x1985;
const DIRENT: u16 = 0xE001;
const INODE: u16 = 0xE002;
const CLEANMARKER: u16 = 0x2003;
/// Most directory entries listed.
pub const MAX_LISTED: usize = 100_000;

pub fn probe(b: &[u8]) -> Option<Confidence> {
    let m = le16(b, 0, "jffs2").ok()?;
    let t = le16(b, 2, "jffs2").ok()?;
    (m == MAGIC && matches!(t, DIRENT | INODE | CLEANMARKER)).then_some(Confidence::High)
}

/// The registry entry.
pub const FORMAT: crate::formats::Format = crate::formats::Format {
    name: "jffs2",
    description: "JFFS2 filesystem (per-machine)",
    probe,
    parse,
    scope: crate::formats::Scope::File(crate::formats::Confidence::Low),
    component: Some("bmc"),
    policy: Some(crate::region::Policy::Mutable),
    not_inside: &[],
    payloads: &[],
    package: None,
};

// Reviewed: `pos <= len` (the loop condition) and `totlen` is a 32-bit value checked against `len - pos`: every sum is at most len + 2^32 in u64; each step moves forward by at least 4.
#[allow(clippy::arithmetic_side_effects)]
pub fn parse(_ctx: &Ctx, node: &Region) -> Result<Parsed, ParseError> {
    let b = node.bytes();
    let len = b.len() as u64;
    // ino -> (version, parent ino, name)
    let mut dirents: HashMap<u32, (u32, u32, String)> = HashMap::new();
    let mut nodes = 0u64;
    let mut pos = 0u64;
    while pos + 12 <= len {
        let magic = le16(b, pos, "jffs2 magic")?;
        if magic != MAGIC {
            pos += 4;
            continue;
        }
        let typ = le16(b, pos + 2, "jffs2 nodetype")?;
        let totlen = u64::from(le32(b, pos + 4, "jffs2 totlen")?);
        if totlen < 12 || pos + totlen > len {
            pos += 4;
            continue;
        }
        nodes += 1;
        if typ == DIRENT && pos + 40 <= len && dirents.len() < MAX_LISTED {
            let pino = le32(b, pos + 12, "pino")?;
            let version = le32(b, pos + 16, "version")?;
            let ino = le32(b, pos + 20, "ino")?;
            let nsize = u64::from(u8_at(b, pos + 28, "nsize")?);
            if let Ok(name) = crate::formats::util::slice(b, pos + 40, nsize, "name") {
                let name = String::from_utf8_lossy(name).into_owned();
                let newer = dirents.get(&ino).is_none_or(|(v, _, _)| version >= *v);
                if newer && ino != 0 {
                    dirents.insert(ino, (version, pino, name));
                }
            }
        }
        pos += (totlen + 3) & !3;
    }
    let mut files: Vec<String> = dirents
        .keys()
        .map(|&ino| {
            let mut parts = Vec::new();
            let mut cur = ino;
            for _ in 0..64 {
                match dirents.get(&cur) {
                    Some((_, p, n)) => {
                        parts.push(n.as_str());
                        cur = *p;
                    }
                    None => break,
                }
            }
            parts.reverse();
            format!("/{}", parts.join("/"))
        })
        .collect();
    files.sort();
    let fs = Region::new(
        RegionKind::Filesystem,
        "jffs2",
        &node.data,
        node.offset,
        len,
    )
    .with_policy(Policy::Mutable)
    .with_attr("format", "jffs2")
    .with_attr("nodes", nodes)
    .with_attr("files", files);
    Ok(Parsed::from(vec![fs]))
}
