//! U-Boot environment: a little-endian CRC32 over the rest of the environment, then NUL-separated
//! `name=value` pairs ending with an empty string (a redundant environment has one flag byte after the CRC).
//! The environment size is not stored; it is found by trying the partition size and power-of-two sizes
//! (as `mkenvimage -s` makes them) until the CRC matches. No match is an `env-crc` note on one static opaque
//! node (no variables are read from bytes whose CRC does not hold).
//!
//! The environment (`env`, kind `environment`) is per-machine data: [`Policy::Mutable`]. Variables that
//! decide what boots (list in `signatures/uboot-env-pinned.txt`) are pinned: attribute `pinned: true` and
//! [`Policy::Static`], so a change is a `variable-modified` finding. Values that give a shell
//! (`init=/bin/sh`, `single`, `rd.break`, ...) are `env-shell` notes.
#![deny(clippy::arithmetic_side_effects)]

use crate::error::ParseError;
use crate::finding::Code;
use crate::formats::util::{le32, slice};
use crate::formats::{Confidence, Ctx, Parsed};
use crate::region::{Note, Policy, Region, RegionKind};

/// The built-in list of pinned variable names.
pub const PINNED: &str = include_str!("../../../signatures/uboot-env-pinned.txt");
/// Most variables read from one environment.
pub const MAX_VARS: usize = 65_536;

/// Whether variable `name` is pinned by the built-in list.
pub fn is_pinned(name: &str) -> bool {
    PINNED
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .any(|p| match p.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => name == p,
        })
}

/// A shell-giving fragment in a variable's value, if any.
pub fn shell_token(value: &str) -> Option<String> {
    const EXACT: &[&str] = &[
        "single",
        "emergency",
        "rd.break",
        "systemd.unit=rescue.target",
        "systemd.unit=emergency.target",
        "rescue",
    ];
    for tok in value.split(|c: char| c.is_whitespace() || c == ';' || c == '\'' || c == '"') {
        if EXACT.contains(&tok) {
            return Some(tok.to_string());
        }
        if let Some(init) = tok
            .strip_prefix("init=")
            .or_else(|| tok.strip_prefix("rdinit="))
        {
            let prog = init.rsplit('/').next().unwrap_or(init);
            if matches!(prog, "sh" | "bash" | "ash" | "dash" | "busybox" | "zsh") {
                return Some(tok.to_string());
            }
        }
    }
    None
}

/// Size and layout of the environment at the start of `b`, when a CRC matches.
pub fn find_env(b: &[u8]) -> Option<(u64, u64)> {
    let len = b.len() as u64;
    let stored = le32(b, 0, "env crc").ok()?;
    let mut sizes = vec![len];
    let mut s = 1u64 << 20;
    while s >= 0x400 {
        if s < len {
            sizes.push(s);
        }
        s >>= 1;
    }
    for size in sizes {
        for hdr in [4u64, 5] {
            let body = slice(b, hdr, size.saturating_sub(hdr), "env").ok()?;
            if crc32fast::hash(body) == stored {
                return Some((size, hdr));
            }
        }
    }
    None
}

// Reviewed: positions are indices into the slice (below its length, at most isize::MAX) plus small constants: no overflow.
#[allow(clippy::arithmetic_side_effects)]
fn looks_like_vars(b: &[u8]) -> bool {
    [4usize, 5].iter().any(|&h| {
        let t = b.get(h..(h + 64).min(b.len())).unwrap_or(&[]);
        let name_len = t
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_' || **c == b'.' || **c == b'-')
            .count();
        name_len > 0
            && t.get(name_len) == Some(&b'=')
            && t.first()
                .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_')
    })
}

pub fn probe(b: &[u8]) -> Option<Confidence> {
    if b.len() < 8 || b.len() > 16 << 20 {
        return None;
    }
    if !looks_like_vars(b) {
        return None;
    }
    if find_env(b).is_some() {
        Some(Confidence::High)
    } else {
        Some(Confidence::Medium)
    }
}

/// The registry entry.
pub const FORMAT: crate::formats::Format = crate::formats::Format {
    name: "uboot-env",
    description: "U-Boot environment (CRC32, variables; per-machine with pinned boot variables)",
    probe,
    parse,
    // A file of its own only with a valid CRC (probe `High`), never by guessing.
    scope: crate::formats::Scope::File(crate::formats::Confidence::High),
    component: Some("bmc"),
    policy: None,
    not_inside: &[],
    payloads: &[],
    package: None,
};

/// Parser for a partition holding a U-Boot environment (and possibly its redundant copy).
// Reviewed: offsets are the node's offset plus positions inside its bytes (at most node.end(), which fits), positions are below the slice length: no overflow.
#[allow(clippy::arithmetic_side_effects)]
pub fn parse(ctx: &Ctx, node: &Region) -> Result<Parsed, ParseError> {
    let b = node.bytes();
    let base = node.offset;
    let mut out = Vec::new();
    let first = env_region(node, 0, b, "env")?;
    let redundant = first.attrs.get("redundant") == Some(&true.into());
    let size = first.size;
    let mut cursor = size;
    out.push(first);
    // A redundant copy right after the first; with a redundant environment whose second copy was never
    // written, its slot is per-machine too (U-Boot writes it on the next `saveenv`).
    if let Some(rest) = b.get(cursor as usize..) {
        if rest.len() >= 8 && find_env(rest).is_some() {
            let second = env_region(node, cursor, rest, "env-redundant")?;
            cursor += second.size;
            out.push(second);
        } else if redundant && rest.len() as u64 >= size {
            out.push(
                Region::new(
                    RegionKind::Environment,
                    "env-redundant",
                    &node.data,
                    base + cursor,
                    size,
                )
                .with_policy(Policy::Mutable)
                .with_attr("format", "uboot-env"),
            );
            cursor += size;
        }
    }
    out.extend(crate::formats::fit::slack(
        &node.data,
        base + cursor,
        node.end(),
        ctx.opts.blank,
    ));
    Ok(out.into())
}

// Reviewed: offsets are the node's offset plus positions inside its bytes (at most node.end(), which fits), positions are below the slice length: no overflow.
#[allow(clippy::arithmetic_side_effects)]
fn env_region(node: &Region, rel: u64, b: &[u8], name: &str) -> Result<Region, ParseError> {
    let base = node.offset + rel;
    let found = find_env(b);
    let (size, hdr) = match found {
        Some(x) => x,
        None => {
            // Guess: the variables end at the first double NUL; the size is the next power of two.
            let hdr = 4usize;
            let end = b
                .windows(2)
                .skip(hdr)
                .position(|w| w == [0, 0])
                .map(|p| (p + hdr + 2) as u64)
                .unwrap_or(b.len() as u64);
            let mut size = 0x400u64;
            while size < end && size < b.len() as u64 {
                size <<= 1;
            }
            (size.min(b.len() as u64), hdr as u64)
        }
    };
    let stored = le32(b, 0, "env crc")?;
    let mut env = Region::new(RegionKind::Environment, name, &node.data, base, size)
        .with_policy(Policy::Mutable)
        .with_attr("format", "uboot-env")
        .with_attr("env-size", size)
        .with_attr("crc", format!("{stored:#010x}"))
        .with_attr("redundant", hdr == 5);
    if found.is_none() {
        // Without a valid CRC the bytes are not known to be an environment: one static opaque node, never a
        // set of per-machine variables (which would hide any change made to them).
        env.policy = Policy::Static;
        env.notes.push(Note::new(
            Code::EnvCrc,
            format!(
                "U-Boot environment CRC {stored:#010x} matches no environment size (tried the partition size and powers of two)"
            ),
            Some(base),
        ));
        return Ok(env);
    }
    let body = slice(b, hdr, size.saturating_sub(hdr), "env body")?;
    let mut pos = 0usize;
    let mut vars = Vec::new();
    while pos < body.len() {
        let end = body[pos..]
            .iter()
            .position(|&c| c == 0)
            .map(|p| pos + p)
            .unwrap_or(body.len());
        if end == pos {
            break; // double NUL: end of the variables
        }
        if vars.len() >= MAX_VARS {
            env.notes.push(Note::new(
                Code::LimitExceeded,
                format!("more than {MAX_VARS} environment variables"),
                Some(base + hdr + pos as u64),
            ));
            break;
        }
        let entry = &body[pos..end];
        let text = String::from_utf8_lossy(entry);
        let (vname, value) = text.split_once('=').unwrap_or((&text, ""));
        let clean: String = vname
            .chars()
            .map(|c| if c == '/' || c.is_control() { '_' } else { c })
            .collect();
        let clean = if clean.is_empty() {
            "unnamed".to_string()
        } else {
            clean
        };
        let mut v = Region::new(
            RegionKind::EnvVariable,
            clean,
            &node.data,
            base + hdr + pos as u64,
            entry.len() as u64,
        )
        .with_attr("name", vname.to_string())
        .with_attr("value", value.to_string());
        if is_pinned(vname) {
            v.policy = Policy::Static;
            v.attrs.insert("pinned".into(), true.into());
        } else {
            v.policy = Policy::Mutable;
        }
        if let Some(tok) = shell_token(value) {
            v.notes.push(Note::new(
                Code::EnvShell,
                format!("environment variable `{vname}` gives a shell: `{tok}` in `{value}`"),
                Some(v.offset),
            ));
        }
        vars.push(v);
        pos = end + 1;
    }
    env.attrs.insert("variables".into(), vars.len().into());
    env.children = vars;
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_list_and_shell_tokens() {
        assert!(is_pinned("bootcmd"));
        assert!(is_pinned("bootcmd_mmc0"));
        assert!(!is_pinned("ethaddr"));
        assert_eq!(
            shell_token("console=ttyS4 init=/bin/sh").as_deref(),
            Some("init=/bin/sh")
        );
        assert_eq!(
            shell_token("root=/dev/ram single").as_deref(),
            Some("single")
        );
        assert_eq!(shell_token("console=ttyS4,115200n8 root=/dev/ram rw"), None);
    }

    #[test]
    fn a_redundant_environment_keeps_its_second_slot_per_machine() {
        let mut part = vec![0xFFu8; 0x4000];
        let mut env = vec![0u8; 0x1000];
        let vars = b"bootcmd=run x\0\0";
        env[5..5 + vars.len()].copy_from_slice(vars);
        env[4] = 1; // active flag
        let crc = crc32fast::hash(&env[5..]);
        env[..4].copy_from_slice(&crc.to_le_bytes());
        part[..0x1000].copy_from_slice(&env);
        let d = std::sync::Arc::new(crate::input::Data::Owned(part));
        let node = Region::new(RegionKind::Partition, "u-boot-env", &d, 0, 0x4000);
        let ctx = Ctx::new(&crate::formats::ParseOptions::default());
        let out = parse(&ctx, &node).unwrap().children;
        let names: Vec<_> = out
            .iter()
            .map(|r| (r.name.as_str(), r.size, r.policy))
            .collect();
        assert_eq!(
            names,
            vec![
                ("env", 0x1000, Policy::Mutable),
                ("env-redundant", 0x1000, Policy::Mutable),
                ("slack", 0x2000, Policy::Blank)
            ]
        );
        assert_eq!(out[0].children[0].name, "bootcmd");
        assert!(out[0].notes.is_empty());
    }

    #[test]
    fn finds_the_environment_size_by_crc() {
        let mut env = vec![0u8; 0x2000];
        let vars = b"bootcmd=bootm 20080000\0ethaddr=00:11:22:33:44:55\0\0";
        env[4..4 + vars.len()].copy_from_slice(vars);
        let crc = crc32fast::hash(&env[4..0x1000]);
        env[..4].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(find_env(&env), Some((0x1000, 4)));
        assert_eq!(probe(&env), Some(Confidence::High));
    }
}
