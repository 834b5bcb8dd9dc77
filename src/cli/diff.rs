//! `fwscan diff`: region-by-region differences between two images (or manifests), for release gating.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use fwscan::compare::{self, Code, Finding, ScanOptions};
use fwscan::manifest::{BaselineOptions, Manifest, Node, VerifiedManifest};
use fwscan::region::{glob_match, Policy};
use fwscan::{formats, input};
use serde_json::json;

use super::{emit, Format, ParseArgs};

/// Compare two images (or two manifests, or a manifest and an image) region by region; fail only on
/// changes outside the allowed path globs.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  fwscan diff release-1.3.bin release-1.4.bin --allow 'bios/**/file[*:Setup]'\n  fwscan diff golden.manifest.json candidate.bin --allow 'bios/**/var[*]' --format json\n\nOLD or NEW may be a manifest (JSON) instead of an image. An image given as OLD is baselined on the fly\nwithout a signature; a manifest is used without signature verification: both inputs are your own files.\n\nExit codes: 0 no change outside the allowed globs, 1 a change outside them, 2 error."
)]
pub struct Args {
    /// The old image or manifest.
    pub old: PathBuf,
    /// The new image or manifest.
    pub new: PathBuf,
    /// Changes at paths matching this glob are allowed (`*` within a segment, `**` across). Repeatable.
    #[arg(long, value_name = "PATH-GLOB")]
    pub allow: Vec<String>,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    #[command(flatten)]
    pub parse: ParseArgs,
}

/// Whether a file holds a manifest (JSON) rather than an image.
fn is_manifest(p: &Path) -> anyhow::Result<bool> {
    use std::io::Read;
    let mut f = std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?;
    let mut head = [0u8; 64];
    let n = f.read(&mut head)?;
    Ok(head[..n]
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'{'))
}

fn old_baseline(a: &Args) -> anyhow::Result<(VerifiedManifest, &'static str)> {
    if is_manifest(&a.old)? {
        let m = Manifest::load(&a.old)?;
        return Ok((
            m.accept_unsigned_insecure(),
            "manifest, used without signature verification",
        ));
    }
    let opts = a.parse.parse_options()?;
    let data = input::read_image(&a.old, &a.parse.read_options())?;
    let tree = formats::parse_image(data, &opts);
    let m = Manifest::from_tree(
        &tree,
        BaselineOptions {
            layout: opts.layout.clone(),
            blank: opts.blank,
            ..BaselineOptions::default()
        },
    )?;
    Ok((
        m.accept_unsigned_insecure(),
        "image, baselined on the fly (unsigned)",
    ))
}

fn kind_code(n: &Node, added: bool) -> Code {
    match (n.kind.is_module(), n.kind.is_fs_entry(), added) {
        (true, _, true) => Code::ModuleAdded,
        (true, _, false) => Code::ModuleRemoved,
        (_, true, true) => Code::FileAdded,
        (_, true, false) => Code::FileRemoved,
        (_, _, true) => Code::RegionAdded,
        (_, _, false) => Code::RegionRemoved,
    }
}

/// Differences between two manifests' trees, by identity path.
fn node_diff(old: &Node, new: &Node, out: &mut Vec<Finding>) {
    if matches!(old.policy, Policy::Ignore | Policy::Mutable) && old.children.is_empty() {
        return;
    }
    if old.digest.is_some() && old.digest == new.digest && old.size == new.size {
        return;
    }
    let before = out.len();
    let olds: HashMap<&str, &Node> = old.children.iter().map(|c| (c.path.as_str(), c)).collect();
    let news: HashMap<&str, &Node> = new.children.iter().map(|c| (c.path.as_str(), c)).collect();
    for c in &new.children {
        match olds.get(c.path.as_str()) {
            Some(o) => node_diff(o, c, out),
            None => {
                let mut f = Finding::on(kind_code(c, true), c, "present in NEW, not in OLD");
                f.expected_digest = None;
                f.actual_digest = c.digest.clone();
                f.expected_size = None;
                f.actual_size = Some(c.size);
                out.push(f);
            }
        }
    }
    for c in &old.children {
        if !news.contains_key(c.path.as_str()) {
            out.push(Finding::on(
                kind_code(c, false),
                c,
                "present in OLD, missing from NEW",
            ));
        }
    }
    if out.len() == before && old.policy == Policy::Static {
        let code = if old.kind.is_module() {
            Code::ModuleModified
        } else if old.kind.is_fs_entry() {
            Code::FileModified
        } else {
            Code::RegionModified
        };
        let mut f = Finding::on(code, new, "content differs");
        f.expected_digest = old.digest.clone();
        f.actual_digest = new.digest.clone();
        f.expected_size = Some(old.size);
        out.push(f);
    }
}

fn change_of(code: Code) -> &'static str {
    let s = code.as_str();
    if s.ends_with("-added") {
        "added"
    } else if s.ends_with("-removed") {
        "removed"
    } else if s.ends_with("-moved") {
        "moved"
    } else if s.ends_with("-modified") || code == Code::SizeMismatch || code == Code::NotBlank {
        "modified"
    } else {
        "problem"
    }
}

pub fn run(a: Args) -> anyhow::Result<u8> {
    let (old, old_kind) = old_baseline(&a)?;
    let man = old.manifest();
    let (findings, new_kind) = if is_manifest(&a.new)? {
        let new = Manifest::load(&a.new)?;
        let mut out = Vec::new();
        if new.image.size != man.image.size {
            let mut f = Finding::general(
                Code::SizeMismatch,
                format!("image size {} -> {} bytes", man.image.size, new.image.size),
            );
            f.expected_size = Some(man.image.size);
            f.actual_size = Some(new.image.size);
            out.push(f);
        }
        node_diff(&man.root, &new.root, &mut out);
        (out, "manifest, used without signature verification")
    } else {
        let mut opts = a.parse.parse_options()?;
        if opts.layout.is_none() {
            opts.layout = man.layout.clone();
        }
        opts.format = Some(man.image.format.clone()).filter(|f| f != "layout");
        opts.eager = false;
        let data = input::read_image(&a.new, &a.parse.read_options())?;
        let mut tree = formats::parse_image(data, &opts);
        (
            compare::scan(&old, &mut tree, &ScanOptions { parse: opts }).findings,
            "image",
        )
    };
    let mut findings: Vec<Finding> = findings.into_iter().filter(Finding::counts).collect();
    fwscan::report::sort_findings(&mut findings);
    let allowed_by = |f: &Finding| -> Option<&str> {
        a.allow
            .iter()
            .find(|g| glob_match(g, &f.path))
            .map(String::as_str)
    };
    let disallowed = findings.iter().filter(|f| allowed_by(f).is_none()).count();
    let code = if disallowed > 0 { 1u8 } else { 0 };
    match a.format {
        Format::Text => {
            let mut o = format!(
                "fwscan diff: OLD {} ({old_kind})\n             NEW {} ({new_kind})\n",
                a.old.display(),
                a.new.display()
            );
            if findings.is_empty() {
                o.push_str("no differences\n");
            }
            for f in &findings {
                let verdict = match allowed_by(f) {
                    Some(g) => format!("allowed by '{g}'"),
                    None => "NOT ALLOWED".into(),
                };
                o.push_str(&format!(
                    "  {:<9} {:<17} {}  [{verdict}]\n",
                    change_of(f.code).to_uppercase(),
                    f.code.as_str(),
                    fwscan::report::display_path(&f.path),
                ));
                if !f.message.is_empty() {
                    o.push_str(&format!("            {}\n", f.message));
                }
            }
            o.push_str(&format!(
                "{} change(s): {} allowed, {} not allowed\nverdict: {} (exit {code})\n",
                findings.len(),
                findings.len() - disallowed,
                disallowed,
                if disallowed > 0 { "FAIL" } else { "PASS" }
            ));
            emit(&o);
        }
        Format::Json => {
            let changes: Vec<_> = findings
                .iter()
                .map(|f| {
                    json!({
                        "change": change_of(f.code),
                        "code": f.code.as_str(),
                        "path": f.path,
                        "kind": f.kind,
                        "name": f.name,
                        "message": f.message,
                        "offset": f.offset,
                        "size": f.size,
                        "allowed": allowed_by(f).is_some(),
                        "allowed_by": allowed_by(f),
                    })
                })
                .collect();
            let doc = json!({
                "schema_version": 1,
                "tool": fwscan::report::ToolInfo::default(),
                "command": "diff",
                "old": { "path": a.old.display().to_string(), "kind": old_kind },
                "new": { "path": a.new.display().to_string(), "kind": new_kind },
                "allow": a.allow,
                "changes": changes,
                "allowed": findings.len() - disallowed,
                "disallowed": disallowed,
                "exit_code": code,
            });
            emit(&format!("{}\n", serde_json::to_string_pretty(&doc)?));
        }
    }
    Ok(code)
}
