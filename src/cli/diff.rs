//! `fwscan diff`: region-by-region differences between two images (or manifests), for release gating.

use std::path::{Path, PathBuf};

use anyhow::Context;
use fwscan::compare::{self, Change};
use fwscan::finding::{Code, Finding};
use fwscan::manifest::{corim, BaselineOptions, Manifest, VerifiedManifest};
use fwscan::region::glob_match;
use fwscan::region::RegionKind;
use fwscan::report::ImageRef;
use fwscan::scan::{Baseline, Scanner};
use fwscan::{formats, input};
use serde_json::json;

use super::{emit, Format, ParseArgs};

/// Compare two images (or two manifests or CoRIMs, or a manifest and an image) region by region; fail
/// only on changes outside the allowed path globs.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  fwscan diff release-1.3.bin release-1.4.bin --allow 'bios/**/file[*:Setup]'\n  fwscan diff golden.manifest.json candidate.bin --allow 'bios/**/var[*]' --format json\n\nOLD or NEW may be a manifest (JSON) or a CoRIM instead of an image. An image given as OLD is baselined\non the fly without a signature; a manifest or CoRIM is used without signature verification: both inputs\nare your own files. Another producer's CoRIM is diffed by reference value (environment, mkey).\n\nExit codes: 0 no change outside the allowed globs, 1 a change outside them, 2 error."
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
    Ok((
        baseline_of_image(a, &a.old)?.accept_unsigned_insecure(),
        "image, baselined on the fly (unsigned)",
    ))
}

/// A baseline of an image made on the fly (unsigned).
fn baseline_of_image(a: &Args, p: &Path) -> anyhow::Result<Manifest> {
    let opts = a.parse.parse_options()?;
    let data = input::read_image(p, &a.parse.read_options())?;
    let tree = formats::parse_image(data, &opts);
    Ok(Manifest::from_tree(
        &tree,
        BaselineOptions {
            layout: opts.layout.clone(),
            blank: opts.blank,
            ..BaselineOptions::default()
        },
    )?)
}

fn change_of(code: Code) -> &'static str {
    Change::of(code).map(Change::as_str).unwrap_or("problem")
}

/// A CoRIM given to `diff` (used without signature verification, like a manifest): a fwscan-profile
/// CoRIM's embedded baseline, or another producer's reference values.
enum CorimInput {
    Profile(Box<Manifest>),
    Foreign(Box<corim::Corim>),
}

const PROFILE_KIND: &str = "fwscan-profile CoRIM, used without signature verification";
const FOREIGN_KIND: &str = "CoRIM, used without signature verification";

/// The CoRIM in `p`, if it holds one: it starts like CBOR and decodes as a CoRIM. A file named `.corim` or
/// `.cbor` that does not decode is an error; anything else that does not is an image.
fn read_corim(p: &Path) -> anyhow::Result<Option<CorimInput>> {
    use std::io::Read;
    let mut head = [0u8; 1];
    let n = std::fs::File::open(p)
        .with_context(|| format!("opening {}", p.display()))?
        .read(&mut head)?;
    if !corim::looks_like(&head[..n]) {
        return Ok(None);
    }
    let named = p
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("corim") || e.eq_ignore_ascii_case("cbor"));
    let size = std::fs::metadata(p)?.len();
    if size > corim::MAX_CORIM_SIZE && !named {
        return Ok(None);
    }
    let bytes = input::read_capped(p, corim::MAX_CORIM_SIZE)?;
    let c = match corim::decode(&bytes) {
        Ok(c) => c,
        Err(e) if named => anyhow::bail!("{}: CoRIM: {e}", p.display()),
        Err(_) => return Ok(None),
    };
    if c.profile.as_deref() == Some(corim::PROFILE) {
        let m = corim::profile_baseline(&c, p)
            .map_err(|e| anyhow::anyhow!("{}: CoRIM: {e}", p.display()))?;
        return Ok(Some(CorimInput::Profile(Box::new(m))));
    }
    Ok(Some(CorimInput::Foreign(Box::new(c))))
}

/// One side's reference values by (environment, mkey) for a diff involving another producer's CoRIM. A
/// manifest or image has no environment of its own; with `envs` false (one side is not a CoRIM) only
/// keys are compared.
type Refs = std::collections::BTreeMap<(Option<String>, String), (bool, Vec<corim::Measurement>)>;

fn env_text(
    vendor: Option<&str>,
    model: Option<&str>,
    layer: Option<u64>,
    index: Option<u64>,
) -> String {
    format!(
        "{{vendor {}, model {}, layer {}, index {}}}",
        vendor.unwrap_or("-"),
        model.unwrap_or("-"),
        layer.map_or("-".into(), |l| l.to_string()),
        index.map_or("-".into(), |l| l.to_string())
    )
}

fn refs_of(side: &Side, envs: bool) -> Refs {
    let mut out = Refs::new();
    let mut add = |env: String, m: corim::Measurement| {
        let Some(k) = m.mkey.clone() else {
            // A value without a key is keyed by its name, else by its place.
            let key = m.name.clone().unwrap_or_else(|| format!("#{}", out.len()));
            out.entry((envs.then_some(env), key))
                .or_insert((false, Vec::new()))
                .1
                .push(m);
            return;
        };
        let uuid = matches!(k, corim::MKey::Uuid(_));
        let e = out
            .entry((envs.then_some(env), k.to_string()))
            .or_insert((uuid, Vec::new()));
        e.1.push(m);
    };
    match side {
        Side::Corim(c) => {
            for (comid, m) in c.measurements() {
                let env = env_text(
                    comid.vendor.as_deref(),
                    comid.model.as_deref(),
                    comid.layer,
                    comid.index,
                );
                add(env, m.clone());
            }
        }
        Side::Manifest(man) => {
            let model = corim::model_of(man);
            let env = env_text(
                Some(man.product.vendor.as_str()),
                Some(model.as_str()),
                Some(0),
                None,
            );
            for m in corim::measurements_of(man) {
                add(env.clone(), m);
            }
        }
    }
    out
}

enum Side {
    Corim(Box<corim::Corim>),
    Manifest(Box<Manifest>),
}

/// What differs between two sets of values of one key (digests, svn, flags, name).
fn value_changes(old: &[corim::Measurement], new: &[corim::Measurement]) -> Vec<String> {
    let mut out = Vec::new();
    if old.len() != new.len() {
        out.push(format!("{} value(s) -> {}", old.len(), new.len()));
        return out;
    }
    let hexes = |m: &corim::Measurement| -> Vec<String> {
        let mut v: Vec<String> = m
            .digests
            .iter()
            .map(|(a, d)| format!("{a}:{}", hex::encode(d)))
            .collect();
        v.sort();
        v
    };
    for (o, n) in old.iter().zip(new) {
        if hexes(o) != hexes(n) {
            out.push(format!(
                "digests [{}] -> [{}]",
                hexes(o).join(", "),
                hexes(n).join(", ")
            ));
        }
        if (o.svn, o.min_svn) != (n.svn, n.min_svn) {
            let svn = |m: &corim::Measurement| match m.svn {
                Some(s) if m.min_svn => format!(">= {s}"),
                Some(s) => s.to_string(),
                None => "none".into(),
            };
            out.push(format!("svn {} -> {}", svn(o), svn(n)));
        }
        if (o.immutable, o.runtime_updatable) != (n.immutable, n.runtime_updatable) {
            let flags = |m: &corim::Measurement| {
                format!(
                    "is-immutable {:?}, is-runtime-updatable {:?}",
                    m.immutable, m.runtime_updatable
                )
            };
            out.push(format!("flags {{{}}} -> {{{}}}", flags(o), flags(n)));
        }
        if o.name != n.name {
            out.push(format!("name {:?} -> {:?}", o.name, n.name));
        }
    }
    out
}

/// The diff of reference values by (environment, mkey): added, removed, modified (digests, svn, flags).
fn measurement_diff(old: &Side, new: &Side) -> Vec<Finding> {
    let envs = matches!((old, new), (Side::Corim(_), Side::Corim(_)));
    let (o, n) = (refs_of(old, envs), refs_of(new, envs));
    let kind = |uuid: bool| {
        if uuid {
            RegionKind::File
        } else {
            RegionKind::Blob
        }
    };
    let finding = |code: Code, key: &(Option<String>, String), message: String| {
        let mut f = Finding::general(code, message);
        f.path = key.1.clone();
        f
    };
    let mut out = Vec::new();
    let at = |key: &(Option<String>, String)| {
        key.0
            .as_ref()
            .map(|e| format!(" in environment {e}"))
            .unwrap_or_default()
    };
    for (key, (uuid, nv)) in &n {
        match o.get(key) {
            None => out.push(finding(
                compare::code_for(kind(*uuid), Change::Added),
                key,
                format!("reference value present in NEW, not in OLD{}", at(key)),
            )),
            Some((_, ov)) => {
                let changes = value_changes(ov, nv);
                if !changes.is_empty() {
                    let mut f = finding(
                        compare::code_for(kind(*uuid), Change::Modified),
                        key,
                        format!("{}{}", changes.join("; "), at(key)),
                    );
                    f.expected_digest = ov
                        .first()
                        .and_then(|m| m.digests.first())
                        .map(|d| hex::encode(&d.1));
                    f.actual_digest = nv
                        .first()
                        .and_then(|m| m.digests.first())
                        .map(|d| hex::encode(&d.1));
                    out.push(f);
                }
            }
        }
    }
    for (key, (uuid, _)) in &o {
        if !n.contains_key(key) {
            out.push(finding(
                compare::code_for(kind(*uuid), Change::Removed),
                key,
                format!(
                    "reference value present in OLD, missing from NEW{}",
                    at(key)
                ),
            ));
        }
    }
    out
}

/// One side of a diff with another producer's CoRIM: its reference values, or a manifest (a JSON
/// manifest, a fwscan-profile CoRIM's baseline, an image baselined on the fly) whose pinned nodes are
/// turned into reference values as `export --format corim` does.
fn side(a: &Args, p: &Path, c: Option<CorimInput>) -> anyhow::Result<(Side, &'static str)> {
    Ok(match c {
        Some(CorimInput::Foreign(c)) => (Side::Corim(c), FOREIGN_KIND),
        Some(CorimInput::Profile(m)) => (Side::Manifest(m), PROFILE_KIND),
        None if is_manifest(p)? => (
            Side::Manifest(Box::new(Manifest::load(p)?)),
            "manifest, used without signature verification",
        ),
        None => (
            Side::Manifest(Box::new(baseline_of_image(a, p)?)),
            "image, baselined on the fly (unsigned)",
        ),
    })
}

pub fn run(a: Args) -> anyhow::Result<u8> {
    let (old_c, new_c) = (read_corim(&a.old)?, read_corim(&a.new)?);
    let foreign = |c: &Option<CorimInput>| matches!(c, Some(CorimInput::Foreign(_)));
    let (findings, old_kind, new_kind) = if foreign(&old_c) || foreign(&new_c) {
        let (o, old_kind) = side(&a, &a.old, old_c)?;
        let (n, new_kind) = side(&a, &a.new, new_c)?;
        (measurement_diff(&o, &n), old_kind, new_kind)
    } else {
        baseline_diff(&a, old_c, new_c)?
    };
    render(&a, findings, old_kind, new_kind)
}

/// The diff of two baselines (manifests, fwscan-profile CoRIMs, images) by the region tree.
fn baseline_diff(
    a: &Args,
    old_c: Option<CorimInput>,
    new_c: Option<CorimInput>,
) -> anyhow::Result<(Vec<Finding>, &'static str, &'static str)> {
    let (old, old_kind) = match old_c {
        Some(CorimInput::Profile(m)) => ((*m).accept_unsigned_insecure(), PROFILE_KIND),
        _ => old_baseline(a)?,
    };
    let man = old.manifest();
    let (findings, new_kind) = if let Some(CorimInput::Profile(new)) = new_c {
        (compare::manifests(man, &new), PROFILE_KIND)
    } else if is_manifest(&a.new)? {
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
    Ok((findings, old_kind, new_kind))
}

fn render(a: &Args, findings: Vec<Finding>, old_kind: &str, new_kind: &str) -> anyhow::Result<u8> {
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
