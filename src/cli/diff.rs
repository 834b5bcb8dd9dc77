//! `fwscan diff`: region-by-region differences between two images (or manifests), for release gating.

use std::path::{Path, PathBuf};

use anyhow::Context;
use fwscan::compare::{self, Change};
use fwscan::finding::{Code, Finding};
use fwscan::manifest::{BaselineOptions, Manifest, VerifiedManifest};
use fwscan::region::glob_match;
use fwscan::report::ImageRef;
use fwscan::scan::{Baseline, Scanner};
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

fn change_of(code: Code) -> &'static str {
    Change::of(code).map(Change::as_str).unwrap_or("problem")
}

pub fn run(a: Args) -> anyhow::Result<u8> {
    let (old, old_kind) = old_baseline(&a)?;
    let man = old.manifest();
    let (findings, new_kind) = if is_manifest(&a.new)? {
        let new = Manifest::load(&a.new)?;
        (
            compare::manifests(man, &new),
            "manifest, used without signature verification",
        )
    } else {
        let data = input::read_image(&a.new, &a.parse.read_options())?;
        let size = data.len() as u64;
        let scanner = Scanner::new(a.parse.parse_options()?, None);
        let image = ImageRef {
            path: a.new.display().to_string(),
            size,
            sha256: None,
        };
        let old_path = a.old.display().to_string();
        let report = scanner.run("diff", image, data, Baseline::Manifest(&old, &old_path));
        (report.findings, "image")
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
