//! `fwscan export`: an image's tree in other tools' formats.
//!
//! * [`chipsec_efilist`]: the JSON that CHIPSEC's `chipsec_main -m tools.uefi.scan_image -a
//!   generate,OUT,IMAGE` writes: one object keyed by the SHA-256 of every executable section's body
//!   (PE32, TE, PIC, COMPAT16; header excluded) in the order the tree is walked, each with `sha1` (of the
//!   same body), `guid` (of the owning FFS file), `name` (the file's UI name, when it has one) and `type`
//!   (`S_PE32`, ...). A body seen twice keeps its first entry, as CHIPSEC does. Formatting follows
//!   Python's `json.dumps(indent=2, separators=(',', ': '))` with no final newline, so the output is
//!   byte-identical to CHIPSEC's.
//! * [`flashrom_layout`]: the image's top-level regions as a flashrom layout (`start:end name`, hex,
//!   inclusive end), accepted by `flashrom --layout` and by `fwscan --layout`.

use sha1::Digest as _;

use crate::region::{Region, RegionKind, Space};

/// CHIPSEC's name of an executable section type (`type` attribute), or `None`.
fn chipsec_type(t: &str) -> Option<&'static str> {
    match t {
        "pe32" => Some("S_PE32"),
        "te" => Some("S_TE"),
        "pic" => Some("S_PIC"),
        "compat16" => Some("S_COMPAT16"),
        _ => None,
    }
}

/// Python's `json.dumps` string escaping (ASCII only, `\uXXXX` for the rest).
fn py_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for u in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One executable of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Executable {
    pub sha256: String,
    pub sha1: String,
    pub guid: Option<String>,
    pub name: Option<String>,
    pub kind: &'static str,
}

/// Every executable section of an (eagerly parsed) tree, CHIPSEC's way: walk order, first of duplicates.
pub fn executables(tree: &Region) -> Vec<Executable> {
    fn rec<'a>(
        r: &'a Region,
        file: Option<&'a Region>,
        seen: &mut std::collections::HashSet<String>,
        out: &mut Vec<Executable>,
    ) {
        let file = if r.kind == RegionKind::File {
            Some(r)
        } else {
            file
        };
        if r.kind == RegionKind::Section {
            if let (Some(kind), Some(sha256)) = (
                r.attr_str("type").and_then(chipsec_type),
                r.attr_str("body-sha256"),
            ) {
                if seen.insert(sha256.to_string()) {
                    out.push(Executable {
                        sha256: sha256.to_string(),
                        sha1: section_body_sha1(r),
                        guid: file.and_then(|f| f.attr_str("guid")).map(str::to_string),
                        name: file
                            .and_then(|f| f.attr_str("ui-name"))
                            .filter(|n| !n.is_empty())
                            .map(str::to_string),
                        kind,
                    });
                }
            }
        }
        for c in &r.children {
            rec(c, file, seen, out);
        }
    }
    let mut out = Vec::new();
    rec(tree, None, &mut std::collections::HashSet::new(), &mut out);
    out
}

/// SHA-1 of a section's body (what CHIPSEC lists beside the SHA-256).
fn section_body_sha1(s: &Region) -> String {
    let body = crate::formats::uefi::section::body(s).unwrap_or(&[]);
    hex::encode(sha1::Sha1::digest(body))
}

/// The CHIPSEC `scan_image` list of an eagerly parsed tree.
pub fn chipsec_efilist(tree: &Region) -> String {
    let list = executables(tree);
    if list.is_empty() {
        return "{}".into();
    }
    let mut out = String::from("{\n");
    for (i, e) in list.iter().enumerate() {
        let mut fields = vec![("sha1", e.sha1.clone())];
        if let Some(g) = &e.guid {
            fields.push(("guid", g.clone()));
        }
        if let Some(n) = &e.name {
            fields.push(("name", n.clone()));
        }
        fields.push(("type", e.kind.to_string()));
        out.push_str(&format!("  {}: {{\n", py_str(&e.sha256)));
        for (j, (k, v)) in fields.iter().enumerate() {
            out.push_str(&format!("    {}: {}", py_str(k), py_str(v)));
            out.push_str(if j + 1 < fields.len() { ",\n" } else { "\n" });
        }
        out.push_str(if i + 1 < list.len() {
            "  },\n"
        } else {
            "  }\n"
        });
    }
    out.push('}');
    out
}

/// A flashrom-safe region name: whitespace, `#` (a comment in layout files) and `/` become `-`.
fn layout_name(name: &str) -> String {
    let n: String = name
        .chars()
        .map(|c| {
            if c.is_whitespace() || c == '#' || c == '/' || c.is_control() {
                '-'
            } else {
                c
            }
        })
        .collect();
    if n.is_empty() {
        "region".into()
    } else {
        n
    }
}

/// The top-level regions (absolute offsets, non-empty) as a flashrom layout; an image without
/// top-level regions is one region `image`. Names are made unique.
pub fn flashrom_layout(tree: &Region) -> String {
    let mut out = String::new();
    let mut used = std::collections::HashSet::new();
    let mut regions: Vec<(u64, u64, String)> = tree
        .children
        .iter()
        .filter(|c| c.size > 0 && c.space == Space::Image)
        .map(|c| (c.offset, c.size, layout_name(&c.name)))
        .collect();
    if regions.is_empty() && tree.size > 0 {
        regions.push((0, tree.size, "image".into()));
    }
    regions.sort();
    for (off, size, name) in regions {
        let mut n = name.clone();
        let mut k = 2;
        while !used.insert(n.clone()) {
            n = format!("{name}-{k}");
            k += 1;
        }
        let end = off.saturating_add(size - 1);
        out.push_str(&format!("{off:08x}:{end:08x} {n}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_json_escapes() {
        assert_eq!(py_str("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(py_str("é"), r#""\u00e9""#);
        assert_eq!(py_str("😀"), r#""\ud83d\ude00""#);
    }

    #[test]
    fn layout_names_are_safe_and_unique() {
        assert_eq!(layout_name("pad#2"), "pad-2");
        assert_eq!(layout_name("a b/c"), "a-b-c");
    }
}
