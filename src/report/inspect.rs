//! `inspect --format json`, written as the tree is walked (issue 15).
//!
//! The document is the one described by `schemas/inspect-v1.schema.json`: `findings` (every parser note
//! of the tree, in walk order), `format`, `image`, `root` (the region tree: each node as a manifest node,
//! see [`crate::manifest::Node`]), `schema_version`, `tool`, keys in sorted order at every level. It used to
//! be built as one `manifest::Node` tree, then one `serde_json::Value`, then one string: three copies of a
//! tree that a volume of many small files makes large. Here each node and each finding is serialized
//! straight from the region tree and its digests into the writer, so memory is the tree, its digests and
//! the writer's buffer.

use std::io::Write;

use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::Serialize;

use crate::finding::{Finding, ToolInfo};
use crate::hash::{self, HashedNode};
use crate::region::{Policy, Region};

/// Writes the `inspect --format json` document of `tree` (an image read from `path`) to `w`, pretty
/// printed, followed by a newline.
pub fn write_inspect_json<W: Write>(w: W, path: &str, tree: &Region) -> std::io::Result<()> {
    let hashed = hash::hash_tree(tree, hash::Alg::Sha256, u64::MAX);
    let mut ser = serde_json::Serializer::pretty(w);
    let doc = Doc {
        path,
        tree,
        hashed: &hashed,
    };
    doc.serialize(&mut ser).map_err(std::io::Error::other)?;
    let mut w = ser.into_inner();
    w.write_all(b"\n")?;
    w.flush()
}

struct Doc<'a> {
    path: &'a str,
    tree: &'a Region,
    hashed: &'a HashedNode,
}

impl Serialize for Doc<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(6))?;
        m.serialize_entry("findings", &Findings(self.tree))?;
        m.serialize_entry("format", self.tree.attr_str("format").unwrap_or("raw"))?;
        m.serialize_entry(
            "image",
            &Image {
                path: self.path,
                sha256: digest(self.tree, self.hashed),
                size: self.tree.size,
            },
        )?;
        m.serialize_entry(
            "root",
            &Node {
                r: self.tree,
                h: self.hashed,
            },
        )?;
        m.serialize_entry("schema_version", &1)?;
        m.serialize_entry("tool", &ToolJson(ToolInfo::default()))?;
        m.end()
    }
}

/// The digest a manifest node carries (none for ignored nodes).
fn digest<'a>(r: &Region, h: &'a HashedNode) -> Option<&'a str> {
    (r.policy != Policy::Ignore).then_some(h.digests.digest.as_str())
}

#[derive(Serialize)]
struct Image<'a> {
    path: &'a str,
    sha256: Option<&'a str>,
    size: u64,
}

struct ToolJson(ToolInfo);

impl Serialize for ToolJson {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("name", &self.0.name)?;
        m.serialize_entry("version", &self.0.version)?;
        m.end()
    }
}

/// Every parser note of the tree as a finding, one at a time (keys sorted, as a `serde_json::Value`
/// would have them).
struct Findings<'a>(&'a Region);

impl Serialize for Findings<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(None)?;
        let mut err = None;
        self.0.walk(&mut |x| {
            if err.is_some() {
                return;
            }
            for f in Finding::from_notes(x, &x.notes, &|_| false) {
                let v = match serde_json::to_value(&f) {
                    Ok(v) => v,
                    Err(e) => {
                        err = Some(<S::Error as serde::ser::Error>::custom(e));
                        return;
                    }
                };
                if let Err(e) = seq.serialize_element(&v) {
                    err = Some(e);
                    return;
                }
            }
        });
        if let Some(e) = err {
            return Err(e);
        }
        seq.end()
    }
}

/// One node as `manifest::Node` serializes it (the same fields, skipped when empty), keys sorted.
struct Node<'a> {
    r: &'a Region,
    h: &'a HashedNode,
}

struct Children<'a>(&'a Region, &'a HashedNode);

impl Serialize for Children<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.children.len()))?;
        for (r, h) in self.0.children.iter().zip(&self.1.children) {
            seq.serialize_element(&Node { r, h })?;
        }
        seq.end()
    }
}

impl Serialize for Node<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (r, h) = (self.r, self.h);
        let mut notes: Vec<&str> = r.notes.iter().map(|n| n.code.as_str()).collect();
        notes.sort_unstable();
        notes.dedup();
        let blocks: &[String] = if r.policy == Policy::Static {
            &h.digests.blocks
        } else {
            &[]
        };
        let mut m = s.serialize_map(None)?;
        if !r.attrs.is_empty() {
            m.serialize_entry("attrs", &r.attrs)?;
        }
        if let Some(b) = &r.base {
            m.serialize_entry("base", b)?;
        }
        if !blocks.is_empty() {
            m.serialize_entry("blocks", blocks)?;
        }
        if !r.children.is_empty() {
            m.serialize_entry("children", &Children(r, h))?;
        }
        if let Some(d) = digest(r, h) {
            m.serialize_entry("digest", d)?;
        }
        if !r.evidence.is_empty() {
            m.serialize_entry("evidence", &r.evidence)?;
        }
        m.serialize_entry("kind", &r.kind)?;
        m.serialize_entry("name", &r.name)?;
        if !notes.is_empty() {
            m.serialize_entry("notes", &notes)?;
        }
        m.serialize_entry("offset", &r.offset)?;
        m.serialize_entry("path", &r.path)?;
        m.serialize_entry("policy", &r.policy)?;
        m.serialize_entry("size", &r.size)?;
        m.serialize_entry("space", &r.space)?;
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::{parse_image, ParseOptions};
    use crate::input::Data;
    use std::sync::Arc;

    /// The document as it was built before (manifest nodes, then one `serde_json::Value`).
    fn built(path: &str, tree: &Region) -> serde_json::Value {
        let root = crate::manifest::describe(tree, hash::Alg::Sha256);
        serde_json::json!({
            "schema_version": 1,
            "tool": ToolInfo::default(),
            "image": { "path": path, "size": tree.size, "sha256": root.digest },
            "format": tree.attr_str("format").unwrap_or("raw"),
            "root": root,
            "findings": crate::region::note_findings(tree),
        })
    }

    /// Counts the bytes of the largest single `write` call.
    struct Largest(Vec<u8>, usize);
    impl Write for Largest {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.1 = self.1.max(b.len());
            self.0.extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn streamed_document_equals_the_built_one_byte_for_byte() {
        use crate::formats::uefi::hostile;
        // A volume with notes (duplicate GUIDs), many nodes, and a compressed section (decompressed
        // space, bases).
        let mut images = vec![
            hostile::empty_files_volume(300, true),
            hostile::bomb_volume(hostile::Codec::Gzip, 2, 4096),
        ];
        if let Ok(b) = std::fs::read("/usr/share/OVMF/OVMF_CODE_4M.fd") {
            images.push(b);
        }
        for bytes in images {
            let tree = parse_image(Arc::new(Data::Owned(bytes)), &ParseOptions::default());
            let mut w = Largest(Vec::new(), 0);
            write_inspect_json(&mut w, "x.bin", &tree).unwrap();
            let want = format!(
                "{}\n",
                serde_json::to_string_pretty(&built("x.bin", &tree)).unwrap()
            );
            assert_eq!(String::from_utf8(w.0).unwrap(), want);
            // Written piece by piece as the tree is walked, never as one document.
            assert!(w.1 < 4096, "largest write {} bytes", w.1);
        }
    }
}
