//! A flattened device tree blob of its own (`*.dtb`): one static node `fdt` over `totalsize` bytes with the
//! tree's facts as attributes (`model`, `compatible`, node count, top-level nodes) and every
//! `fixed-partitions` node it declares listed as information (`fixed-partitions`: `path: name
//! start..=end`). A layout found here is never applied to the file itself: a `.dtb` is not a flash image.
//! Bytes after `totalsize` are `slack` that must be blank. The reader is [`crate::formats::fdt`].
#![deny(clippy::arithmetic_side_effects)]

use crate::error::ParseError;
use crate::formats::fdt::{self, Fdt};
use crate::formats::{Confidence, Ctx, Format, Parsed, Scope};
use crate::region::{Region, RegionKind};

pub fn probe(b: &[u8]) -> Option<Confidence> {
    if !fdt::probe(b) {
        return None;
    }
    Fdt::parse(b).ok().map(|_| Confidence::Medium)
}

/// The registry entry.
pub const FORMAT: Format = Format {
    name: "fdt",
    description: "flattened device tree blob (nodes; fixed-partitions listed as information)",
    probe,
    parse,
    scope: Scope::File(Confidence::Low),
    component: Some("bmc"),
    policy: None,
    not_inside: &[],
    payloads: &[],
    package: None,
};

pub fn parse(ctx: &Ctx, node: &Region) -> Result<Parsed, ParseError> {
    let b = node.bytes();
    let f = Fdt::parse(b)?;
    let mut count = 0usize;
    let mut stack = vec![&f.root];
    while let Some(n) = stack.pop() {
        count = count.saturating_add(1);
        if count > fdt::MAX_NODES {
            break;
        }
        stack.extend(n.children.iter());
    }
    let mut r = Region::new(
        RegionKind::Blob,
        "fdt",
        &node.data,
        node.offset,
        f.totalsize,
    )
    .with_attr("fdt-version", f.version)
    .with_attr("nodes", count)
    .with_attr(
        "top-level-nodes",
        f.root
            .children
            .iter()
            .take(64)
            .map(|c| c.name.clone())
            .collect::<Vec<_>>(),
    );
    if let Some(m) = f.str_prop(&f.root, "model") {
        r.attrs.insert("model".into(), m.into());
    }
    let compat = f.str_list(&f.root, "compatible");
    if !compat.is_empty() {
        r.attrs.insert("compatible".into(), compat.into());
    }
    if let Ok(sets) = crate::formats::bmc::fixed_partitions(b) {
        let list: Vec<String> = sets
            .iter()
            .flat_map(|(path, entries, _)| {
                entries
                    .iter()
                    .map(move |e| format!("{path}: {} {:#x}..={:#x}", e.name, e.start, e.end))
            })
            .collect();
        if !list.is_empty() {
            r.attrs.insert("fixed-partitions".into(), list.into());
        }
    }
    let keys = signature_keys(&f);
    if !keys.is_empty() {
        r.attrs.insert("signature-keys".into(), keys.into());
    }
    let end = node.offset.saturating_add(f.totalsize);

    let mut out = vec![r];
    out.extend(crate::formats::fit::slack(
        &node.data,
        end,
        node.end(),
        ctx.opts.blank,
    ));
    Ok(out.into())
}

/// The public keys of U-Boot's verified boot in a control device tree: every `/signature/key-NAME` node
/// with its `algo`, `required` (`conf` or `image`: U-Boot then refuses a FIT not signed by it),
/// `key-name-hint`, and a SHA-256 of the key (`rsa,modulus`, or `ecdsa,x-point` || `ecdsa,y-point`).
pub fn signature_keys(f: &Fdt) -> Vec<serde_json::Value> {
    use sha2::Digest;
    let Some(sig) = f.root.child("signature") else {
        return Vec::new();
    };
    sig.children
        .iter()
        .filter(|k| k.name.starts_with("key-"))
        .take(64)
        .map(|k| {
            let mut m = serde_json::Map::new();
            m.insert("name".into(), k.name.trim_start_matches("key-").into());
            for p in ["algo", "required", "key-name-hint", "ecdsa,curve"] {
                if let Some(v) = f.str_prop(k, p) {
                    m.insert(p.into(), v.into());
                }
            }
            if let Some(bits) = f.u64_prop(k, "rsa,num-bits") {
                m.insert("rsa-num-bits".into(), bits.into());
            }
            if let Some(n) = k.prop("rsa,modulus") {
                m.insert(
                    "rsa-modulus-sha256".into(),
                    hex::encode(sha2::Sha256::digest(f.value(n))).into(),
                );
            }
            if let (Some(x), Some(y)) = (k.prop("ecdsa,x-point"), k.prop("ecdsa,y-point")) {
                let mut h = sha2::Sha256::new();
                h.update(f.value(x));
                h.update(f.value(y));
                m.insert(
                    "ecdsa-point-sha256".into(),
                    hex::encode(h.finalize()).into(),
                );
            }
            serde_json::Value::Object(m)
        })
        .collect()
}
