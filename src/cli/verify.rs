//! `fwscan verify`: check a manifest's signatures against the trust policy, and the trust options shared
//! with `scan` (`--trust`, `--state`, `--at`, `--allow-legacy`, `--sig`).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use fwscan::finding::Code;
use fwscan::manifest::parse_time;
use fwscan::manifest::trust::TrustPolicy;
use fwscan::manifest::verify::{self, TrustError, VerifyOptions};

use super::{emit, Format};

/// Default trust policy location when neither `--trust` nor `$FWSCAN_TRUST` is given.
pub const DEFAULT_TRUST: &str = "/etc/fwscan/trust.json";

/// Trust options shared by `verify` and `scan`.
#[derive(clap::Args, Debug, Clone)]
pub struct TrustArgs {
    /// Trust policy (JSON). Default: $FWSCAN_TRUST, then /etc/fwscan/trust.json.
    #[arg(long, value_name = "POLICY")]
    pub trust: Option<PathBuf>,
    /// Anti-rollback state file (highest sequence accepted per product). Default: $FWSCAN_STATE; none
    /// means only the policy's minimum sequence is enforced.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Evaluate expiry at this time (RFC 3339) instead of now, for historical audits. The state file is
    /// then checked but not updated, and the report says so.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub at: Option<SystemTime>,
    /// Accept legacy non-prehashed `Ed` minisign signatures.
    #[arg(long)]
    pub allow_legacy: bool,
    /// Signature file(s) to use instead of MANIFEST.minisig, MANIFEST.2.minisig, ... Repeatable.
    #[arg(id = "sig_files", long = "sig", value_name = "FILE")]
    pub signatures: Vec<PathBuf>,
    /// The product the image is known to be (from the hardware, the asset inventory): a manifest for
    /// any other product is refused (manifest-product-mismatch), whoever signed it.
    #[arg(long, value_name = "PRODUCT")]
    pub product: Option<String>,
}

fn env_path(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The policy path in effect: `given`, then `$FWSCAN_TRUST`, then [`DEFAULT_TRUST`] if it exists.
pub fn policy_path(given: Option<&Path>) -> Option<PathBuf> {
    given
        .map(Path::to_path_buf)
        .or_else(|| env_path("FWSCAN_TRUST"))
        .or_else(|| Some(PathBuf::from(DEFAULT_TRUST)).filter(|p| p.exists()))
}

/// Loads the policy at `path` (warnings to stderr).
pub fn load_policy(path: &Path) -> Result<TrustPolicy, TrustError> {
    let policy = TrustPolicy::load(path).map_err(|e| TrustError {
        code: e.code(),
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    for w in &policy.warnings {
        eprintln!("fwscan: warning: trust policy {}: {w}", path.display());
    }
    Ok(policy)
}

impl TrustArgs {
    /// The policy path in effect, if any.
    pub fn policy_path(&self) -> Option<PathBuf> {
        policy_path(self.trust.as_deref())
    }

    /// Builds the verification options, reading the clock once. `need_policy` = false skips the policy
    /// (for `--insecure-unsigned`).
    pub fn options(&self, need_policy: bool) -> Result<VerifyOptions, TrustError> {
        let (now, at_override) = match self.at {
            Some(t) => (t, true),
            None => (SystemTime::now(), false),
        };
        let policy = if need_policy {
            let Some(p) = self.policy_path() else {
                return Err(TrustError {
                    code: Code::TrustPolicyInvalid,
                    path: PathBuf::from(DEFAULT_TRUST),
                    message: "no trust policy: pass --trust POLICY, set FWSCAN_TRUST, or install /etc/fwscan/trust.json (or use --insecure-unsigned)".into(),
                });
            };
            Some(load_policy(&p)?)
        } else {
            None
        };
        let mut o = VerifyOptions::new(policy, now);
        o.at_override = at_override;
        o.state = self.state.clone().or_else(|| env_path("FWSCAN_STATE"));
        o.update_state = !at_override;
        o.allow_legacy = self.allow_legacy;
        o.signatures = self.signatures.clone();
        o.expected_product = self.product.clone();
        Ok(o)
    }
}

/// Verify a manifest's signatures, signers, expiry and sequence against the trust policy.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  fwscan verify golden.manifest.json --trust trust.json\n  fwscan verify golden.manifest.json --trust trust.json --state /var/lib/fwscan/state.json\n  fwscan verify old.manifest.json --trust trust.json --at 2025-01-01T00:00:00Z --format json\n\nSignatures are read from MANIFEST.minisig and MANIFEST.2.minisig ... MANIFEST.16.minisig.\nExit codes: 0 verified, 2 refused (the code says why, e.g. manifest-signature-invalid, manifest-rollback)."
)]
pub struct Args {
    /// Manifest file (JSON), or a release package (OpenBMC tarball, UEFI capsule) whose vendor signatures
    /// are checked with the trust policy's `vendor_keys`.
    #[arg(value_name = "MANIFEST|PACKAGE")]
    pub manifest: PathBuf,
    #[command(flatten)]
    pub trust: TrustArgs,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

fn refused(a: &Args, e: &TrustError) -> u8 {
    match a.format {
        Format::Json => emit(
            &(serde_json::to_string_pretty(&serde_json::json!({
                "manifest": a.manifest.display().to_string(),
                "verdict": "refused",
                "code": e.code.as_str(),
                "file": e.path.display().to_string(),
                "message": e.message,
            }))
            .unwrap_or_default()
                + "\n"),
        ),
        Format::Text => emit(&format!(
            "manifest:  {}\nverdict:   REFUSED\ncode:      {}\nfile:      {}\nreason:    {}\n",
            a.manifest.display(),
            e.code,
            e.path.display(),
            e.message
        )),
    }
    eprintln!("fwscan: error: {}", super::with_hint(e.code, e));
    super::EXIT_ERROR
}

/// True when `path` starts like a vendor-signed release package of a format in the registry (a tar
/// archive, a UEFI capsule) rather than a manifest.
fn is_package(path: &Path) -> bool {
    use std::io::Read;
    let mut head = vec![0u8; 4096];
    let n = std::fs::File::open(path)
        .and_then(|f| f.take(4096).read(&mut head))
        .unwrap_or(0);
    let head = &head[..n];
    fwscan::formats::package::probe_signed(head)
}

/// `fwscan verify PACKAGE`: the vendor signatures of a release package, with the trust policy's vendor
/// keys (scoped by `--product`).
fn run_package(a: &Args) -> anyhow::Result<u8> {
    let policy = match a.trust.policy_path() {
        Some(p) => match load_policy(&p) {
            Ok(p) => Some(p),
            Err(e) => return Ok(refused(a, &e)),
        },
        None => None,
    };
    let data = match fwscan::input::read_image(&a.manifest, &Default::default()) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("fwscan: error: {e}");
            return Ok(super::EXIT_ERROR);
        }
    };
    // Certificate validity on a capsule's signing path is evaluated at --at, or now.
    let opts = fwscan::formats::ParseOptions {
        at: a.trust.at,
        ..Default::default()
    };
    let (_, parts, check) = fwscan::manifest::package::parse_verified(
        data,
        &opts,
        policy.as_ref(),
        a.trust.product.as_deref(),
        None,
    );
    let Some(kind) = check.package else {
        let e = TrustError {
            code: Code::ManifestInvalid,
            path: a.manifest.clone(),
            message: "neither a manifest (JSON) nor a release package fwscan verifies (OpenBMC tarball, UEFI capsule)".into(),
        };
        return Ok(refused(a, &e));
    };
    let verified = check.verified();
    match a.format {
        Format::Json => {
            let j = serde_json::json!({
                "package": a.manifest.display().to_string(),
                "kind": kind,
                "verdict": if verified { "verified" } else { "refused" },
                "policy": a.trust.policy_path().map(|p| p.display().to_string()),
                "signatures": check.signatures,
                "parts": parts,
                "problems": check.problems.iter().map(|p| serde_json::json!({
                    "code": p.code.as_str(), "path": p.path, "offset": p.offset, "message": p.message,
                })).collect::<Vec<_>>(),
            });
            emit(&(serde_json::to_string_pretty(&j).unwrap_or_default() + "\n"));
        }
        Format::Text => {
            let mut o = format!("package:   {} ({kind})\n", a.manifest.display());
            for s in &check.signatures {
                o += &format!(
                    "signature: {} [{}] {}; signer {}\n",
                    if s.covers.is_empty() { "/" } else { &s.covers },
                    s.scheme,
                    s.status,
                    s.signer
                );
            }
            for p in &parts {
                o += &format!(
                    "part:      {} -> {}\n",
                    if p.path.is_empty() { "/" } else { &p.path },
                    p.anchor.describe()
                );
            }
            for p in &check.problems {
                o += &format!(
                    "problem:   {} {}{}: {}\n",
                    p.code,
                    if p.path.is_empty() { "/" } else { &p.path },
                    p.offset
                        .map(|o| format!(" (offset {o:#x})"))
                        .unwrap_or_default(),
                    p.message
                );
            }
            o += if verified {
                "verdict:   VERIFIED (every vendor signature verifies; the signer is trusted)\n"
            } else {
                "verdict:   REFUSED\n"
            };
            emit(&o);
        }
    }
    Ok(if verified {
        super::EXIT_CLEAN
    } else {
        super::EXIT_ERROR
    })
}

/// True when `path` starts like CBOR (a CoRIM) rather than JSON.
fn is_corim(path: &Path) -> bool {
    use std::io::Read;
    let mut head = vec![0u8; 64];
    let n = std::fs::File::open(path)
        .and_then(|f| f.take(64).read(&mut head))
        .unwrap_or(0);
    fwscan::manifest::corim::looks_like(&head[..n])
}

/// `fwscan verify X.corim`: the COSE signature with the trust policy's `cose` keys, the validity, and
/// (fwscan profile) the whole manifest path; lists the CoRIM's environments, reference values and notes.
fn run_corim(a: &Args) -> anyhow::Result<u8> {
    use fwscan::manifest::corim;
    let opts = match a.trust.options(true) {
        Ok(o) => o,
        Err(e) => return Ok(refused(a, &e)),
    };
    let cv = match verify::verify_corim(&a.manifest, &opts) {
        Ok(cv) => cv,
        Err(e) => return Ok(refused(a, &e)),
    };
    let c = &cv.corim;
    let fwscan_profile = c.profile.as_deref() == Some(corim::PROFILE);
    if fwscan_profile {
        // Product binding, threshold, expiry and anti-rollback, as for a JSON manifest.
        if let Err(e) = verify::verify_manifest(&a.manifest, &opts) {
            return Ok(refused(a, &e));
        }
    }
    let t = |t: Option<SystemTime>| t.map(fwscan::manifest::rfc3339);
    match a.format {
        Format::Json => {
            let j = serde_json::json!({
                "manifest": a.manifest.display().to_string(),
                "verdict": "verified",
                "format": "corim",
                "id": c.id,
                "profile": c.profile,
                "signer": c.signer,
                "keys": cv.signers,
                "sha256": cv.sha256,
                "rim_validity": {"not_before": t(c.not_before), "not_after": t(c.not_after)},
                "signature_validity": {"not_before": t(c.sig_not_before), "not_after": t(c.sig_not_after)},
                "evaluated_at": fwscan::manifest::rfc3339(opts.now),
                "at_override": opts.at_override,
                "comids": c.comids.iter().map(|m| serde_json::json!({
                    "tag_id": m.tag_id, "tag_version": m.tag_version, "vendor": m.vendor,
                    "model": m.model, "layer": m.layer, "index": m.index,
                    "measurements": m.measurements.len(),
                })).collect::<Vec<_>>(),
                "notes": c.notes,
            });
            emit(&(serde_json::to_string_pretty(&j).unwrap_or_default() + "\n"));
        }
        Format::Text => {
            let mut o = format!("manifest:  {} (CoRIM {})\n", a.manifest.display(), c.id);
            o += &format!("profile:   {}\n", c.profile.as_deref().unwrap_or("none"));
            o += &format!(
                "signer:    {} (trust-policy cose key {})\n",
                c.signer.as_deref().unwrap_or("-"),
                cv.signers.join(", ")
            );
            for (what, nb, na) in [
                ("validity", c.not_before, c.not_after),
                ("sig-valid", c.sig_not_before, c.sig_not_after),
            ] {
                if nb.is_some() || na.is_some() {
                    o += &format!(
                        "{what}:{}{} .. {}\n",
                        " ".repeat(10usize.saturating_sub(what.len() + 1)),
                        t(nb).unwrap_or_else(|| "-".into()),
                        t(na).unwrap_or_else(|| "-".into())
                    );
                }
            }
            for m in &c.comids {
                o += &format!(
                    "comid:     {} v{}: {} {} layer {} index {}: {} reference value(s)\n",
                    m.tag_id,
                    m.tag_version,
                    m.vendor.as_deref().unwrap_or("-"),
                    m.model.as_deref().unwrap_or("-"),
                    m.layer.map(|l| l.to_string()).unwrap_or_else(|| "-".into()),
                    m.index.map(|l| l.to_string()).unwrap_or_else(|| "-".into()),
                    m.measurements.len()
                );
            }
            for n in &c.notes {
                o += &format!("note:      {n}\n");
            }
            o += &format!(
                "verdict:   VERIFIED (COSE signature by a trusted cose key; validity evaluated at {}{})\n",
                fwscan::manifest::rfc3339(opts.now),
                if opts.at_override { ", given by the caller" } else { "" }
            );
            emit(&o);
        }
    }
    Ok(super::EXIT_CLEAN)
}

pub fn run(a: Args) -> anyhow::Result<u8> {
    if is_package(&a.manifest) {
        return run_package(&a);
    }
    if is_corim(&a.manifest) {
        return run_corim(&a);
    }
    let opts = match a.trust.options(true) {
        Ok(o) => o,
        Err(e) => return Ok(refused(&a, &e)),
    };
    let v = match verify::verify_manifest(&a.manifest, &opts) {
        Ok(v) => v,
        Err(e) => return Ok(refused(&a, &e)),
    };
    let m = v.manifest.manifest();
    let t = v.manifest.trust();
    match a.format {
        Format::Json => {
            let signers: Vec<_> = v
                .signers
                .iter()
                .map(|s| {
                    serde_json::json!({
                        "key_id": s.key_id, "role": s.role, "name": s.name,
                        "key_expires": s.key_expires,
                        "signature_file": s.signature_file.display().to_string(),
                        "legacy": s.legacy, "trusted_comment": s.trusted_comment,
                    })
                })
                .collect();
            let j = serde_json::json!({
                "manifest": a.manifest.display().to_string(),
                "verdict": "verified",
                "sha256": v.sha256,
                "product": m.product,
                "sequence": m.sequence,
                "expires": m.expires,
                "signers": signers,
                "threshold": v.requirement.threshold,
                "min_sequence": v.requirement.min_sequence,
                "previous_sequence": v.previous_sequence,
                "state_updated": v.state_updated,
                "trust": t,
            });
            emit(&(serde_json::to_string_pretty(&j).unwrap_or_default() + "\n"));
        }
        Format::Text => {
            let mut o = String::new();
            o += &format!("manifest:  {}\n", a.manifest.display());
            o += &format!(
                "product:   {} {} {} version {}\n",
                m.product.vendor, m.product.product, m.product.component, m.product.version
            );
            o += &format!(
                "sequence:  {} (policy minimum {})\n",
                m.sequence, v.requirement.min_sequence
            );
            o += &format!("expires:   {}\n", m.expires.as_deref().unwrap_or("never"));
            o += &format!(
                "evaluated: {}{}\n",
                t.evaluated_at.as_deref().unwrap_or("-"),
                if t.at_override {
                    " (given with --at)"
                } else {
                    ""
                }
            );
            for s in &v.signers {
                o += &format!(
                    "signer:    key {} role {}{}{} ({})\n",
                    s.key_id,
                    s.role,
                    s.name
                        .as_deref()
                        .map(|n| format!(" \"{n}\""))
                        .unwrap_or_default(),
                    s.key_expires
                        .as_deref()
                        .map(|e| format!(" key-expires {e}"))
                        .unwrap_or_default(),
                    s.signature_file.display()
                );
            }
            o += &format!(
                "verdict:   VERIFIED ({} of {} required distinct keys)\n",
                v.signers.len(),
                v.requirement.threshold
            );
            emit(&o);
        }
    }
    Ok(super::EXIT_CLEAN)
}

/// Reads a password: `--password-file`, then `$FWSCAN_PASSWORD`, then a prompt when stdin is a terminal.
/// Never blocks when stdin is not a terminal.
pub fn read_password(
    file: Option<&Path>,
    confirm: bool,
) -> anyhow::Result<zeroize::Zeroizing<String>> {
    use std::io::IsTerminal;
    if let Some(f) = file {
        let bytes = fwscan::input::read_capped(f, 4096)?;
        let s = String::from_utf8(bytes)
            .map_err(|_| anyhow::anyhow!("{}: password is not UTF-8", f.display()))?;
        let line = s.lines().next().unwrap_or("").to_string();
        return Ok(zeroize::Zeroizing::new(line));
    }
    if let Ok(p) = std::env::var("FWSCAN_PASSWORD") {
        return Ok(zeroize::Zeroizing::new(p));
    }
    if !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "a password is needed: use --password-file FILE or FWSCAN_PASSWORD (stdin is not a terminal)"
        );
    }
    let p = zeroize::Zeroizing::new(rpassword::prompt_password("Password: ")?);
    if confirm {
        let again = zeroize::Zeroizing::new(rpassword::prompt_password("Password (again): ")?);
        if *again != *p {
            anyhow::bail!("passwords do not match");
        }
    }
    Ok(p)
}
