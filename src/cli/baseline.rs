//! `fwscan baseline`: write a manifest from a golden image.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::Context;
use fwscan::hash::Alg;
use fwscan::input;
use fwscan::manifest::package;
use fwscan::manifest::{BaselineOptions, CopyPlace, Manifest, Part, PolicyRules, Product};
use fwscan::region::Region;

use super::ParseArgs;

/// Write a baseline manifest (unsigned JSON) from a golden image.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Examples:\n  fwscan baseline golden.bin -o golden.manifest.json --vendor Acme --product X11 --component bios --version 1.4 --expires 365d\n  fwscan baseline bmc.bin -o bmc.json --layout bmc.layout --component bmc --mutable 'u-boot-env' --mutable 'rwfs'"
)]
pub struct Args {
    /// Golden image file.
    pub image: PathBuf,
    /// Where to write the manifest.
    #[arg(short, long, value_name = "MANIFEST")]
    pub output: PathBuf,
    #[command(flatten)]
    pub id: Identity,
    /// Declare a `match` rule for `audit`: the image size must equal this image's.
    #[arg(long)]
    pub match_size: bool,
    /// Declare a `match` rule for `audit`: this string (e.g. the BIOS version string) must occur in the
    /// image. Repeatable.
    #[arg(long, value_name = "STRING")]
    pub match_string: Vec<String>,
    /// Declare a `match` rule for `audit`: this GUID must occur in the parsed image. Repeatable.
    #[arg(long, value_name = "GUID")]
    pub match_guid: Vec<String>,
    /// Declare a `match` rule for `audit`: `/etc/os-release` must contain KEY=VALUE. Repeatable.
    #[arg(long, value_name = "KEY=VALUE")]
    pub match_os_release: Vec<String>,
    /// Declare a place where a copy of a baseline part legitimately lives (an A/B image set, a recovery
    /// boot block): PLACE is a flash offset (`0x400000`: where the copy's first firmware volume, or its
    /// partition, starts) or a partition or flash region name; PART is the part's path, needed when the
    /// baseline has more than one part. `scan` compares the copy there too; a copy anywhere else stays
    /// `anchor-ambiguous`, and a declared copy that is not there is `copy-missing`. Repeatable.
    #[arg(long = "copy", value_name = "[PART=]PLACE")]
    pub copies: Vec<String>,
    #[command(flatten)]
    pub parse: ParseArgs,
}

/// What a baseline says about an image and how it pins it: shared by `baseline` and `export --format
/// corim`, so that both pin exactly the same nodes.
#[derive(clap::Args, Debug, Clone)]
pub struct Identity {
    #[arg(long, default_value = "unknown")]
    pub vendor: String,
    #[arg(long, default_value = "unknown")]
    pub product: String,
    /// Component: bios, bmc, ec, me, ...
    #[arg(long, default_value = "bios")]
    pub component: String,
    /// Firmware version.
    #[arg(long, default_value = "0")]
    pub version: String,
    #[arg(long)]
    pub build_id: Option<String>,
    /// Monotonic release counter (anti-rollback).
    #[arg(long, default_value_t = 1)]
    pub sequence: u64,
    /// Mark regions matching this path glob as per-machine (not compared). Repeatable.
    #[arg(long, value_name = "PATH-GLOB")]
    pub mutable: Vec<String>,
    /// Keep regions matching this glob static even inside a mutable parent (e.g. a variable). Repeatable.
    #[arg(long, value_name = "PATH-GLOB")]
    pub pin: Vec<String>,
    /// Do not look at regions matching this glob at all. Repeatable.
    #[arg(long, value_name = "PATH-GLOB")]
    pub ignore: Vec<String>,
    /// Expiry, as a duration from now (e.g. 90d, 1y, 12weeks).
    #[arg(long, value_name = "DURATION")]
    pub expires: Option<humantime::Duration>,
    /// Digest algorithm.
    #[arg(long, value_enum, default_value_t = HashArg::Sha256)]
    pub hash: HashArg,
    /// Block size for per-block digests (a power of two, 4096 to 16 MiB).
    #[arg(long, default_value_t = fwscan::hash::DEFAULT_BLOCK_SIZE)]
    pub block_size: u64,
    /// Trust policy whose `vendor_keys` verify a release package's signatures (OpenBMC tarball, UEFI
    /// capsule). Default: $FWSCAN_TRUST, then /etc/fwscan/trust.json.
    #[arg(long, value_name = "POLICY")]
    pub trust: Option<PathBuf>,
    /// Make the baseline from a release package even though its vendor signatures do not verify or its
    /// signer is not trusted (the manifest records the signatures as untrusted). Never for a package
    /// that is ambiguous (package-ambiguous) or signed with a weak key (vendor-key-weak).
    #[arg(long)]
    pub insecure_unsigned: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum HashArg {
    Sha256,
    Sha384,
}

/// The manifest of an image (release packages verified first, as `baseline` does), and the parsed tree;
/// `Err(code)`: refused, with the message printed.
pub fn manifest_of(
    image: &Path,
    id: &Identity,
    parse: &ParseArgs,
    now: SystemTime,
) -> anyhow::Result<Result<(Manifest, Region), u8>> {
    let a = id;
    let opts = parse.parse_options()?;
    let data = input::read_image(image, &parse.read_options())?;
    let policy = match super::verify::policy_path(a.trust.as_deref()) {
        Some(p) => match super::verify::load_policy(&p) {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!("fwscan: error: {}", super::with_hint(e.code, &e));
                return Ok(Err(super::EXIT_ERROR));
            }
        },
        None => None,
    };
    // A release package is verified with the vendor keys scoped to this product and component.
    let (tree, parts, vendor) = package::parse_verified(
        data,
        &opts,
        policy.as_ref(),
        Some(&a.product),
        Some(&a.component),
    );
    if let Some(kind) = vendor.package {
        if vendor.verified() {
            eprintln!(
                "fwscan: {}: {kind}: vendor signatures verified ({} signature(s), signer trusted)",
                image.display(),
                vendor.signatures.len()
            );
        } else {
            // `--insecure-unsigned` stands in for a missing or untrusted signature, never for a package
            // that is ambiguous or signed with a weak key.
            let waived = a.insecure_unsigned && vendor.problems.iter().all(|p| p.waivable());
            for p in &vendor.problems {
                let level = if a.insecure_unsigned && p.waivable() {
                    "warning"
                } else {
                    "error"
                };
                eprintln!(
                    "fwscan: {level}: {}: {} at {}{}: {}",
                    image.display(),
                    p.code,
                    if p.path.is_empty() { "/" } else { &p.path },
                    p.offset
                        .map(|o| format!(" (offset {o:#x})"))
                        .unwrap_or_default(),
                    p.message
                );
            }
            if a.insecure_unsigned && !waived {
                eprintln!(
                    "fwscan: error: {}: refusing to make a baseline from a {kind} that is ambiguous or signed with a weak key (--insecure-unsigned waives only a missing or untrusted signature)",
                    image.display()
                );
                return Ok(Err(super::EXIT_ERROR));
            }
            if !a.insecure_unsigned {
                eprintln!(
                    "fwscan: error: {}: refusing to make a baseline from a {kind} whose vendor signatures are not verified (trust the vendor key in the trust policy's `vendor_keys`, or pass --insecure-unsigned)",
                    image.display()
                );
                return Ok(Err(super::EXIT_ERROR));
            }
        }
    }
    let m = Manifest::from_tree(
        &tree,
        BaselineOptions {
            product: Product {
                vendor: a.vendor.clone(),
                product: a.product.clone(),
                component: a.component.clone(),
                version: a.version.clone(),
                build_id: a.build_id.clone(),
            },
            sequence: a.sequence,
            alg: match a.hash {
                HashArg::Sha256 => Alg::Sha256,
                HashArg::Sha384 => Alg::Sha384,
            },
            block_size: a.block_size,
            now,
            expires: a.expires.map(|d| now + *d),
            layout: opts.layout.clone(),
            rules: PolicyRules {
                mutable: a.mutable.clone(),
                pinned: a.pin.clone(),
                ignore: a.ignore.clone(),
            },
            blank: opts.blank,
        },
    )?;
    let mut m = m;
    m.parts = parts;
    m.vendor_signatures = vendor.signatures;
    Ok(Ok((m, tree)))
}

pub fn run(a: Args) -> anyhow::Result<u8> {
    let (mut m, tree) = match manifest_of(&a.image, &a.id, &a.parse, SystemTime::now())? {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    let opts = a.parse.parse_options()?;
    let signatures = std::mem::take(&mut m.vendor_signatures);
    declare_copies(&mut m.parts, &a.copies)?;
    m.validate(&a.output)?;
    m.vendor_signatures = signatures;
    let rules = fwscan::audit::catalogue::MatchRules {
        size: a.match_size.then_some(tree.size),
        format: None,
        strings: a.match_string,
        guids: a
            .match_guid
            .iter()
            .map(|g| g.to_ascii_uppercase())
            .collect(),
        os_release: a
            .match_os_release
            .iter()
            .map(|kv| {
                kv.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .ok_or_else(|| anyhow::anyhow!("--match-os-release {kv}: expected KEY=VALUE"))
            })
            .collect::<anyhow::Result<_>>()?,
    };
    if !rules.is_empty() {
        rules.validate().map_err(|e| anyhow::anyhow!(e))?;
        // The golden image must satisfy its own rules, or the manifest would never be chosen.
        let mut facts =
            fwscan::audit::catalogue::ImageFacts::new(&tree.data, opts.max_decompressed_total)
                .with_max_regions(opts.max_regions);
        if !fwscan::audit::catalogue::rules_match(&rules, &mut facts) {
            anyhow::bail!(
                "{}: the image does not satisfy its own --match-* rules",
                a.image.display()
            );
        }
        m.r#match = Some(rules);
    }
    std::fs::write(&a.output, m.to_json())
        .with_context(|| format!("writing {}", a.output.display()))?;
    eprintln!(
        "fwscan: wrote {} ({} regions, image sha256 {})",
        a.output.display(),
        m.root.count(),
        m.image.sha256
    );
    Ok(super::EXIT_CLEAN)
}

/// Adds the `--copy [PART=]PLACE` declarations to the parts they name.
fn declare_copies(parts: &mut [Part], specs: &[String]) -> anyhow::Result<()> {
    for spec in specs {
        let (part, place) = match spec.rsplit_once('=') {
            Some((p, place)) => (Some(p), place),
            None => (None, spec.as_str()),
        };
        let place = if let Some(hex) = place
            .strip_prefix("0x")
            .or_else(|| place.strip_prefix("0X"))
        {
            CopyPlace::Offset(
                u64::from_str_radix(hex, 16)
                    .map_err(|_| anyhow::anyhow!("--copy {spec}: bad hexadecimal offset"))?,
            )
        } else if !place.is_empty() && place.bytes().all(|b| b.is_ascii_digit()) {
            CopyPlace::Offset(
                place
                    .parse()
                    .map_err(|_| anyhow::anyhow!("--copy {spec}: bad offset"))?,
            )
        } else if place.is_empty() {
            anyhow::bail!(
                "--copy {spec}: expected [PART=]PLACE, PLACE an offset or a partition name"
            );
        } else {
            CopyPlace::Partition(place.to_string())
        };
        let listed = || {
            parts
                .iter()
                .map(|p| format!("`{}`", p.path))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let target = match part {
            Some(name) => parts.iter().position(|p| p.path == name).ok_or_else(|| {
                anyhow::anyhow!("--copy {spec}: no part `{name}` (parts: {})", listed())
            })?,
            None if parts.len() == 1 => 0,
            None if parts.is_empty() => {
                anyhow::bail!("--copy {spec}: this baseline has no part anchored by identity")
            }
            None => anyhow::bail!(
                "--copy {spec}: name the part, PART=PLACE (parts: {})",
                listed()
            ),
        };
        parts[target].copies.push(place);
    }
    Ok(())
}
