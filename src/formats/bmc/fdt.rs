//! A bounded reader for flattened device trees (FDT / DTB, magic 0xD00DFEED), the container of FIT images
//! and of the Linux device tree that describes a BMC's flash layout.
//!
//! The whole structure block is walked once into a small owned tree; properties keep their value's offset
//! in the blob so that callers can make regions of them (a FIT image's `data`). Limits: at most
//! [`MAX_NODES`] nodes, [`MAX_DEPTH`] levels; every offset is checked. Nothing here panics.

#![deny(clippy::arithmetic_side_effects)]

use crate::error::ParseError;
use crate::formats::util::{be32, slice};

pub const MAGIC: u32 = 0xD00D_FEED;
/// Most nodes one tree may have.
pub const MAX_NODES: usize = 100_000;
/// Deepest nesting.
pub const MAX_DEPTH: usize = 32;
/// Size of the header (version 17).
pub const HEADER_SIZE: u64 = 40;

const BEGIN_NODE: u32 = 1;
const END_NODE: u32 = 2;
const PROP: u32 = 3;
const NOP: u32 = 4;
const END: u32 = 9;

/// One property: its name and where its value lies in the blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prop {
    pub name: String,
    /// Offset of the value in the blob (the FDT's first byte is 0).
    pub offset: u64,
    pub len: u64,
}

/// One node of the tree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Node {
    /// Full name with unit address (`u-boot@0`); the root's is empty.
    pub name: String,
    pub props: Vec<Prop>,
    pub children: Vec<Node>,
}

/// A parsed device tree over its blob.
#[derive(Debug, Clone)]
pub struct Fdt<'a> {
    pub blob: &'a [u8],
    /// `totalsize` from the header.
    pub totalsize: u64,
    pub version: u32,
    pub root: Node,
}

/// Whether `b` starts with a plausible FDT header.
pub fn probe(b: &[u8]) -> bool {
    header(b).is_ok()
}

struct Header {
    totalsize: u64,
    off_struct: u64,
    off_strings: u64,
    size_strings: u64,
    size_struct: u64,
    version: u32,
}

fn header(b: &[u8]) -> Result<Header, ParseError> {
    let magic = be32(b, 0, "fdt magic")?;
    if magic != MAGIC {
        return Err(ParseError::Invalid {
            what: "fdt magic",
            offset: 0,
            detail: format!("{magic:#x}"),
        });
    }
    let totalsize = u64::from(be32(b, 4, "fdt totalsize")?);
    let off_struct = u64::from(be32(b, 8, "fdt off_dt_struct")?);
    let off_strings = u64::from(be32(b, 12, "fdt off_dt_strings")?);
    let version = be32(b, 20, "fdt version")?;
    let last_comp = be32(b, 24, "fdt last_comp_version")?;
    let bad = |detail: String| ParseError::Invalid {
        what: "fdt header",
        offset: 0,
        detail,
    };
    if !(2..=17).contains(&last_comp) || !(16..=0x100).contains(&version) {
        return Err(bad(format!(
            "version {version} / last compatible {last_comp} not supported"
        )));
    }
    let size_strings = if version >= 3 {
        u64::from(be32(b, 32, "fdt size_dt_strings")?)
    } else {
        0
    };
    let size_struct = if version >= 17 {
        u64::from(be32(b, 36, "fdt size_dt_struct")?)
    } else {
        totalsize.saturating_sub(off_struct)
    };
    if totalsize < HEADER_SIZE
        || off_struct < HEADER_SIZE
        || off_struct.saturating_add(size_struct) > totalsize
        || off_strings.saturating_add(size_strings) > totalsize
    {
        return Err(bad(format!(
            "blocks outside totalsize {totalsize:#x} (struct {off_struct:#x}+{size_struct:#x}, strings {off_strings:#x}+{size_strings:#x})"
        )));
    }
    Ok(Header {
        totalsize,
        off_struct,
        off_strings,
        size_strings,
        size_struct,
        version,
    })
}

impl<'a> Fdt<'a> {
    /// Parses the tree at the start of `b` (which may extend past `totalsize`).
    pub fn parse(b: &'a [u8]) -> Result<Fdt<'a>, ParseError> {
        let h = header(b)?;
        let blob = slice(b, 0, h.totalsize, "fdt blob")?;
        let strings = slice(blob, h.off_strings, h.size_strings, "fdt strings")?;
        // The structure block alone: every read below is bounded by it, so a block that ends inside a
        // token, a name or a property is a `Truncated` error. `pos` is relative to the block; offsets in
        // errors and in `Prop::offset` are relative to the blob (`base + pos`, both within a u32).
        let sb = slice(blob, h.off_struct, h.size_struct, "fdt structure block")?;
        let base = h.off_struct;
        let at = |pos: u64| base.saturating_add(pos);
        let end = sb.len() as u64;
        let mut pos = 0u64;
        let mut stack: Vec<Node> = Vec::new();
        let mut root: Option<Node> = None;
        let mut count = 0usize;
        loop {
            if pos >= end {
                return Err(ParseError::Truncated {
                    what: "fdt structure block (no FDT_END)",
                    offset: at(pos),
                    need: 4,
                    have: 0,
                });
            }
            let tok = be32(sb, pos, "fdt token").map_err(|_| ParseError::Truncated {
                what: "fdt token",
                offset: at(pos),
                need: 4,
                have: end.saturating_sub(pos),
            })?;
            let tok_at = pos;
            pos = pos.saturating_add(4);
            match tok {
                BEGIN_NODE => {
                    let rest = sb.get(pos as usize..).unwrap_or(&[]);
                    let nul = rest
                        .iter()
                        .position(|&c| c == 0)
                        .ok_or(ParseError::Invalid {
                            what: "fdt node name",
                            offset: at(pos),
                            detail: "not NUL-terminated inside the structure block".into(),
                        })?;
                    let name = String::from_utf8_lossy(rest.get(..nul).unwrap_or(&[])).into_owned();
                    pos = align4(pos.saturating_add(nul as u64).saturating_add(1));
                    count = count.saturating_add(1);
                    if count > MAX_NODES || stack.len() >= MAX_DEPTH {
                        return Err(ParseError::Limit {
                            what: format!(
                                "device tree deeper than {MAX_DEPTH} or more than {MAX_NODES} nodes"
                            ),
                            offset: at(pos),
                        });
                    }
                    if root.is_some() {
                        return Err(ParseError::Invalid {
                            what: "fdt structure",
                            offset: at(pos),
                            detail: "second root node".into(),
                        });
                    }
                    stack.push(Node {
                        name,
                        ..Node::default()
                    });
                }
                END_NODE => {
                    let node = stack.pop().ok_or(ParseError::Invalid {
                        what: "fdt structure",
                        offset: at(pos),
                        detail: "FDT_END_NODE without a node".into(),
                    })?;
                    match stack.last_mut() {
                        Some(parent) => parent.children.push(node),
                        None => root = Some(node),
                    }
                }
                PROP => {
                    let len = u64::from(be32(sb, pos, "fdt prop len")?);
                    let nameoff = u64::from(be32(sb, pos.saturating_add(4), "fdt prop nameoff")?);
                    pos = pos.saturating_add(8);
                    // Bounded by the structure block, not just the blob.
                    slice(sb, pos, len, "fdt prop value")?;
                    let sname = usize::try_from(nameoff)
                        .ok()
                        .and_then(|o| strings.get(o..))
                        .and_then(|s| s.iter().position(|&c| c == 0).and_then(|n| s.get(..n)))
                        .ok_or(ParseError::Invalid {
                            what: "fdt prop name",
                            offset: at(pos),
                            detail: format!("string offset {nameoff:#x} outside the strings block"),
                        })?;
                    let node = stack.last_mut().ok_or(ParseError::Invalid {
                        what: "fdt structure",
                        offset: at(pos),
                        detail: "property outside a node".into(),
                    })?;
                    count = count.saturating_add(1);
                    if count > MAX_NODES {
                        return Err(ParseError::Limit {
                            what: format!("more than {MAX_NODES} device-tree nodes and properties"),
                            offset: at(pos),
                        });
                    }
                    node.props.push(Prop {
                        name: String::from_utf8_lossy(sname).into_owned(),
                        offset: at(pos),
                        len,
                    });
                    pos = align4(pos.saturating_add(len));
                }
                NOP => {}
                END => break,
                other => {
                    return Err(ParseError::Invalid {
                        what: "fdt token",
                        offset: at(tok_at),
                        detail: format!("{other:#x}"),
                    })
                }
            }
        }
        let root = match (root, stack.is_empty()) {
            (Some(r), true) => r,
            _ => {
                return Err(ParseError::Invalid {
                    what: "fdt structure",
                    offset: at(pos),
                    detail: "unbalanced nodes".into(),
                })
            }
        };
        Ok(Fdt {
            blob,
            totalsize: h.totalsize,
            version: h.version,
            root,
        })
    }

    /// The value bytes of a property.
    pub fn value(&self, p: &Prop) -> &'a [u8] {
        slice(self.blob, p.offset, p.len, "fdt prop").unwrap_or(&[])
    }

    /// A property's value as a string (first NUL-terminated string).
    pub fn str_prop(&self, n: &Node, name: &str) -> Option<String> {
        let p = n.prop(name)?;
        let v = self.value(p);
        let v = v.split(|&c| c == 0).next().unwrap_or(&[]);
        Some(String::from_utf8_lossy(v).into_owned())
    }

    /// Every string of a string-list property.
    pub fn str_list(&self, n: &Node, name: &str) -> Vec<String> {
        let Some(p) = n.prop(name) else {
            return Vec::new();
        };
        self.value(p)
            .split(|&c| c == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect()
    }

    /// A property holding one big-endian u32 (or u64 when 8 bytes long).
    pub fn u64_prop(&self, n: &Node, name: &str) -> Option<u64> {
        let v = self.value(n.prop(name)?);
        match v.len() {
            4 => Some(u64::from(u32::from_be_bytes([v[0], v[1], v[2], v[3]]))),
            8 => {
                let mut a = [0u8; 8];
                a.copy_from_slice(v);
                Some(u64::from_be_bytes(a))
            }
            _ => None,
        }
    }

    /// The cells of a property as big-endian u32s.
    pub fn cells(&self, n: &Node, name: &str) -> Vec<u32> {
        n.prop(name)
            .map(|p| {
                self.value(p)
                    .chunks_exact(4)
                    .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Node {
    pub fn prop(&self, name: &str) -> Option<&Prop> {
        self.props.iter().find(|p| p.name == name)
    }

    pub fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }

    /// The name without the unit address (`u-boot@0` → `u-boot`).
    pub fn base_name(&self) -> &str {
        self.name.split('@').next().unwrap_or("")
    }

    /// Visits every node depth first with its parent.
    pub fn walk<'n>(
        &'n self,
        parent: Option<&'n Node>,
        f: &mut dyn FnMut(&'n Node, Option<&'n Node>),
    ) {
        f(self, parent);
        for c in &self.children {
            c.walk(Some(self), f);
        }
    }
}

fn align4(v: u64) -> u64 {
    v.saturating_add(3) & !3
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

    /// A tiny hand-made FDT: / { a = <1>; n@0 { s = "x"; }; };
    fn tiny() -> Vec<u8> {
        let mut st = Vec::new();
        let w = |v: &mut Vec<u8>, x: u32| v.extend_from_slice(&x.to_be_bytes());
        w(&mut st, BEGIN_NODE);
        w(&mut st, 0); // empty name + pad
        w(&mut st, PROP);
        w(&mut st, 4);
        w(&mut st, 0);
        w(&mut st, 1);
        w(&mut st, BEGIN_NODE);
        st.extend_from_slice(b"n@0\0");
        w(&mut st, PROP);
        w(&mut st, 2);
        w(&mut st, 2);
        st.extend_from_slice(b"x\0\0\0");
        w(&mut st, END_NODE);
        w(&mut st, END_NODE);
        w(&mut st, END);
        let strings = b"a\0s\0".to_vec();
        let off_struct = 40u32;
        let off_strings = off_struct + st.len() as u32;
        let total = off_strings + strings.len() as u32;
        let mut b = Vec::new();
        for x in [
            MAGIC,
            total,
            off_struct,
            off_strings,
            40,
            17,
            16,
            0,
            strings.len() as u32,
            st.len() as u32,
        ] {
            w(&mut b, x);
        }
        b.extend_from_slice(&st);
        b.extend_from_slice(&strings);
        b
    }

    #[test]
    fn parses_a_tiny_tree() {
        let b = tiny();
        let f = Fdt::parse(&b).unwrap();
        assert_eq!(f.u64_prop(&f.root, "a"), Some(1));
        let n = f.root.child("n@0").unwrap();
        assert_eq!(n.base_name(), "n");
        assert_eq!(f.str_prop(n, "s").as_deref(), Some("x"));
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let b = tiny();
        for cut in 0..b.len() {
            let mut t = b[..cut].to_vec();
            let _ = Fdt::parse(&t);
            t.resize(b.len(), 0xFF);
            let _ = Fdt::parse(&t);
        }
        for i in 0..b.len() {
            let mut t = b.clone();
            t[i] ^= 0xFF;
            let _ = Fdt::parse(&t);
        }
    }

    /// Issue 15 point 13: a structure block whose size ends inside a token or a property header made
    /// `end - pos` underflow (`attempt to subtract with overflow` at the node name and the prop value).
    #[test]
    fn struct_size_ending_inside_a_token_is_an_error_not_an_overflow() {
        let b = tiny();
        let st_len = u32::from_be_bytes(b[36..40].try_into().unwrap());
        for size in 0..=st_len {
            let mut t = b.clone();
            t[36..40].copy_from_slice(&size.to_be_bytes());
            let r = Fdt::parse(&t);
            assert_eq!(r.is_ok(), size == st_len, "size_dt_struct {size}");
        }
    }
}
