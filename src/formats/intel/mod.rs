//! Intel platform structures signed by Intel or the board vendor: the Firmware Interface Table
//! ([`fit`]), microcode updates ([`microcode`]), the startup ACM ([`acm`]) and Boot Guard / CBnT key and
//! boot policy manifests ([`bootguard`]); signatures in [`keys`].
//!
//! These structures live inside bytes that other parsers already own (the FIT and the manifests usually
//! sit in a pad file or a RAW file of the SEC volume, microcode in the microcode FFS file). So this is
//! a pass over the finished tree, not a container format: [`annotate`] runs after the top-level parse
//! and before paths are assigned, finds the FIT through the pointer at 4 GiB - 0x40 of each BIOS space (a
//! descriptor-less BIOS image, or the IFD `bios` region), parses each entry's target and attaches the
//! results as **new children of the leaf that holds them** (a blob, a raw section, padding), filling the
//! rest of that leaf with padding nodes. Existing nodes keep their names, offsets and digests, so every
//! identity path of a baseline made before stays valid; the new nodes sit one level below.
//!
//! What each signature covers is recorded on the root node's `coverage` attribute as
//! `{offset, size, protection, by}` objects (protections `bootguard-ibb`, `bootguard-self-signed`,
//! `bootguard-manifest`, `acm`, `microcode`), for `inspect --coverage`. An IBB segment counts only when
//! the whole chain verified: KM signature, BPM signature by the key the KM names, and the IBB set's digest
//! (computed and equal); it is `bootguard-ibb` only when the KM key is pinned by a
//! `bootguard-km-hash` key of the parse context's key ring ([`crate::formats::keys::KeyRing`]), else
//! `bootguard-self-signed`. Why a segment counts for less is said in the root's `coverage-notes`.
#![deny(clippy::arithmetic_side_effects)]

pub mod acm;
pub mod bootguard;
pub mod fit;
pub mod gbe;
pub mod ifd;
pub mod keys;
pub mod me;
pub mod me_cpd;
pub mod me_manifest;
pub mod me_mn2;
pub mod microcode;

use std::sync::Arc;

use serde_json::{json, Value};

use crate::finding::{Code, Evidence, Protection, Scheme, Status, Trust};
use crate::formats::Ctx;
use crate::input::Data;
use crate::region::{self, Note, Region, RegionKind};
use keys::{PubKey, SigCheck};

const HOST: &str = "\u{0}intel-host";
const FOUR_GIB: u64 = 1 << 32;

/// The 4 GiB-aligned mapping of a BIOS space: image offset `start` .. `end` maps to `4 GiB - (end -
/// start)` .. 4 GiB.
#[derive(Debug, Clone, Copy)]
pub struct Space {
    pub start: u64,
    pub end: u64,
}

impl Space {
    /// Image offset of a physical address, if it lies in this space.
    pub fn offset_of(&self, phys: u64) -> Option<u64> {
        let size = self.end.checked_sub(self.start)?;
        let base = FOUR_GIB.checked_sub(size)?;
        if phys < base || phys >= FOUR_GIB {
            return None;
        }
        // `phys - base < size`, so the result is below `end`.
        Some(self.start.saturating_add(phys.saturating_sub(base)))
    }
}

/// BIOS spaces of a parsed tree: the whole image when it is a descriptor-less UEFI image, else the IFD
/// `bios` region (or, with a user layout, flash regions holding firmware volumes).
fn bios_spaces(root: &Region) -> Vec<Space> {
    if root.attr_str("format") == Some("uefi") {
        return vec![Space {
            start: root.offset,
            end: root.end(),
        }];
    }
    let mut out = Vec::new();
    for c in &root.children {
        if c.kind == RegionKind::FlashRegion
            && (c.name == "bios" || c.attr_str("format") == Some("uefi"))
            && Arc::ptr_eq(&c.data, &root.data)
            && c.size >= 0x40
        {
            out.push(Space {
                start: c.offset,
                end: c.end(),
            });
        }
    }
    out
}

/// What the pass found, before it is placed in the tree.
struct Pass {
    data: Arc<Data>,
    plan: Vec<Region>,
    /// What the pass verified, as range evidence for the root ([`crate::finding::Evidence`]).
    coverage: Vec<Evidence>,
    root_notes: Vec<Note>,
    /// Pinned Boot Guard OEM key hashes (the key ring's `bootguard-km-hash` keys).
    km_pins: Vec<Vec<u8>>,
    /// Why coverage is weaker than the structures suggest (root attribute `coverage-notes`).
    coverage_notes: Vec<String>,
}

impl Pass {
    /// Records a verified check over `size` bytes at `offset`: its scheme, the coverage class it gives (if
    /// any), how far its key is trusted, and who signed (`by`: a key hash, `intel`).
    fn cover(
        &mut self,
        (offset, size): (u64, u64),
        scheme: Scheme,
        protection: Option<Protection>,
        trust: Trust,
        by: &str,
    ) {
        let mut e = Evidence::on_node(scheme, Status::Valid)
            .with_ranges(vec![(offset, size)])
            .with_trust(trust)
            .with_signer(by);
        e.protection = protection;
        self.coverage.push(e);
    }

    fn planned_at(&mut self, offset: u64) -> Option<&mut Region> {
        self.plan.iter_mut().find(|r| r.offset == offset)
    }
}

/// The pass: finds FIT, microcode, ACM and Boot Guard structures and attaches them to `root`.
pub fn annotate(ctx: &Ctx, root: &mut Region) {
    let mut pass = Pass {
        data: Arc::clone(&root.data),
        plan: Vec::new(),
        coverage: Vec::new(),
        root_notes: Vec::new(),
        km_pins: ctx
            .opts
            .keys
            .bootguard_km_hashes()
            .into_iter()
            .map(<[u8]>::to_vec)
            .collect(),
        coverage_notes: Vec::new(),
    };
    // Microcode files of the firmware volumes.
    let mut blobs = Vec::new();
    root.walk(&mut |r| {
        if r.kind == RegionKind::File
            && r.attr_str("guid") == Some(microcode::MICROCODE_FILE_GUID)
            && Arc::ptr_eq(&r.data, &root.data)
        {
            for c in &r.children {
                if matches!(c.kind, RegionKind::Blob | RegionKind::Section) && c.children.is_empty()
                {
                    blobs.push((c.offset, c.size));
                }
            }
        }
    });
    for (off, size) in blobs {
        let bytes = slice_of(&pass.data, off, size);
        for (o, u) in microcode::scan(bytes) {
            let node = microcode_node(&pass.data, off.saturating_add(o as u64), &u);
            pass.cover(
                (node.offset, node.size),
                Scheme::Microcode,
                Some(Protection::Microcode),
                Trust::Anchored("intel".into()),
                "intel",
            );
            pass.plan.push(node);
        }
    }
    for space in bios_spaces(root) {
        fit_pass(&mut pass, space);
    }
    let Pass {
        plan,
        coverage,
        root_notes,
        coverage_notes,
        ..
    } = pass;
    for node in plan {
        if let Err(node) = place(root, Box::new(node)) {
            root.notes.push(Note::new(
                Code::FitInvalid,
                format!(
                    "{} at 0x{:x} straddles existing structures; reported here",
                    node.name, node.offset
                ),
                Some(node.offset),
            ));
            root.notes.extend(node.notes.iter().cloned());
        }
    }
    let blank = ctx.opts.blank;
    root.walk_mut(&mut |r| {
        if r.attrs.remove(HOST).is_some() {
            let (d, s, e) = (Arc::clone(&r.data), r.offset, r.end());
            region::fill_gaps(&d, s, e, &mut r.children, blank, RegionKind::Padding);
        }
    });
    root.notes.extend(root_notes);
    root.evidence.extend(coverage);
    if !coverage_notes.is_empty() {
        let items: Vec<Value> = coverage_notes.into_iter().map(Value::from).collect();
        match root.attrs.get_mut("coverage-notes") {
            Some(Value::Array(a)) => a.extend(items),
            _ => {
                root.attrs
                    .insert("coverage-notes".into(), Value::Array(items));
            }
        }
    }
}

/// How far a Key Manifest's key is trusted: anchored in a `bootguard-km-hash` pin, else self-signed.
fn km_trust(pinned: bool, km_key_hash: &str) -> Trust {
    if pinned {
        Trust::Anchored(km_key_hash.to_string())
    } else {
        Trust::SelfSigned
    }
}

/// Whether a Key Manifest key is one of the pinned OEM key hashes: the SHA-256 or SHA-384 (by the pin's
/// length) of the key as the chipset fuses hold it, the modulus (little-endian) followed by the exponent,
/// or X then Y ([`PubKey::hash_input`]); the Skylake/Kaby Lake form, the modulus alone, counts only with
/// the exponent 65537 (a modulus-only pin says nothing about the exponent, and a tiny one makes forging
/// easy).
pub fn km_key_pinned(key: &PubKey, pins: &[Vec<u8>]) -> bool {
    let mut forms = vec![key.hash_input(true)];
    if matches!(key, PubKey::Rsa { exponent, .. } if *exponent == 65537) {
        forms.push(key.hash_input(false));
    }
    pins.iter().any(|pin| {
        let alg = match pin.len() {
            32 => keys::ALG_SHA256,
            48 => keys::ALG_SHA384,
            _ => return false,
        };
        forms
            .iter()
            .any(|f| keys::digest(alg, &[f]).is_some_and(|d| d == *pin))
    })
}

fn slice_of(data: &Arc<Data>, off: u64, size: u64) -> &[u8] {
    let s = usize::try_from(off).unwrap_or(usize::MAX);
    let l = usize::try_from(size).unwrap_or(usize::MAX);
    s.checked_add(l).and_then(|e| data.get(s..e)).unwrap_or(&[])
}

/// Inserts `new` under the deepest node that holds all of its bytes; fails when it straddles children.
fn place(node: &mut Region, new: Box<Region>) -> Result<(), Box<Region>> {
    let contains = |c: &Region| {
        Arc::ptr_eq(&c.data, &new.data)
            && c.offset <= new.offset
            && new.end() <= c.end()
            && c.size > 0
    };
    if let Some(i) = node.children.iter().position(contains) {
        return place(&mut node.children[i], new);
    }
    let ours = node.attrs.contains_key(HOST);
    if !node.children.is_empty() && !ours {
        return Err(new);
    }
    if node
        .children
        .iter()
        .any(|c| c.offset < new.end() && new.offset < c.end())
    {
        return Err(new);
    }
    node.attrs.insert(HOST.into(), Value::Bool(true));
    node.children.push(*new);
    Ok(())
}

fn microcode_node(data: &Arc<Data>, off: u64, u: &microcode::Update) -> Region {
    let mut r = Region::new(
        RegionKind::Blob,
        format!("microcode[cpuid-{:X}:rev-{:X}]", u.signature, u.revision),
        data,
        off,
        u.total_size as u64,
    )
    .with_attr("structure", "microcode")
    .with_attr("cpuid", format!("0x{:X}", u.signature))
    .with_attr("revision", format!("0x{:X}", u.revision))
    .with_attr("date", u.date.clone())
    .with_attr("platform-flags", format!("0x{:X}", u.platform_flags))
    .with_attr("data-size", u.data_size)
    .with_attr(
        "checksum",
        if u.problems.is_empty() {
            "valid"
        } else {
            "invalid"
        },
    );
    if let Some(name) = microcode::cpu_name(u.signature) {
        r = r.with_attr("cpu", name);
    }
    if !u.extended.is_empty() {
        let ext: Vec<String> = u
            .extended
            .iter()
            .map(|(s, f)| format!("0x{s:X}/0x{f:X}"))
            .collect();
        r = r.with_attr("extended-signatures", ext);
    }
    for p in &u.problems {
        r.notes.push(Note::new(
            Code::MicrocodeChecksum,
            format!(
                "microcode for CPUID 0x{:X} revision 0x{:X}: {p}",
                u.signature, u.revision
            ),
            Some(off),
        ));
    }
    r
}

fn key_attrs(r: &mut Region, prefix: &str, key: &PubKey) {
    r.attrs.insert(
        format!("{prefix}-type").into(),
        format!("{}-{}", key.kind(), key.bits()).into(),
    );
    if let PubKey::Rsa { exponent, .. } = key {
        r.attrs
            .insert(format!("{prefix}-exponent").into(), (*exponent).into());
    }
}

/// A signature check as evidence on its node: the key it names is carried by the structure itself, so it is
/// self-signed unless something else anchors it (the FIT pass records that as range evidence).
fn sig_evidence(scheme: Scheme, check: &SigCheck) -> Evidence {
    let status = match check {
        SigCheck::Valid => Status::Valid,
        SigCheck::Invalid(why) => Status::Invalid(why.clone()),
        SigCheck::NotVerified(why) => Status::NotVerified(why.clone()),
    };
    Evidence::on_node(scheme, status).with_trust(Trust::SelfSigned)
}

/// Records a signature check on `r` (evidence of `scheme`), and a finding `code` when it failed.
fn sig_note(r: &mut Region, scheme: Scheme, code: Code, what: &str, check: &SigCheck) {
    r.evidence.push(sig_evidence(scheme, check));
    if let SigCheck::Invalid(why) = check {
        r.notes
            .push(Note::new(code, format!("{what}: {why}"), Some(r.offset)))
    }
}

fn fit_pass(pass: &mut Pass, space: Space) {
    let data = Arc::clone(&pass.data);
    let bytes: &[u8] = &data;
    let Some(ptr_off) = space.end.checked_sub(0x40).filter(|&o| o >= space.start) else {
        return;
    };
    let Some(ptr) = bytes
        .get(ptr_off as usize..(ptr_off as usize).saturating_add(8))
        .map(|p| u64::from_le_bytes(p.try_into().unwrap_or([0; 8])))
    else {
        return;
    };
    // Erased or absent pointer: no FIT (most non-Intel or old images).
    if ptr == 0 || ptr == u64::MAX || ptr as u32 == u32::MAX {
        return;
    }
    let Some(table_off) = space.offset_of(ptr & 0xFFFF_FFFF) else {
        return;
    };
    let table = match fit::parse(bytes, table_off) {
        Ok(t) => t,
        // A pointer without a table is common on non-Intel images: no FIT, no note.
        Err(_)
            if bytes.get(table_off as usize..(table_off as usize).saturating_add(8))
                != Some(fit::FIT_SIGNATURE) =>
        {
            return
        }
        Err(e) => {
            pass.root_notes
                .push(Note::new(Code::FitInvalid, e.to_string(), Some(table_off)));
            return;
        }
    };
    let mut fit_node = Region::new(
        RegionKind::Header,
        "fit",
        &data,
        table_off,
        (table.entries.len() as u64).saturating_mul(16),
    )
    .with_attr("structure", "intel-fit")
    .with_attr("pointer", format!("0x{ptr:08X}"))
    .with_attr("entries", table.entries.len());
    if let Some(ok) = table.checksum_ok {
        fit_node = fit_node.with_attr("checksum", if ok { "valid" } else { "invalid" });
        if !ok {
            fit_node.notes.push(Note::new(
                Code::FitInvalid,
                "FIT checksum does not sum to zero",
                Some(table_off),
            ));
        }
    }
    let mut km: Option<(u64, bootguard::KeyManifest)> = None;
    let mut bpm: Option<(u64, bootguard::BootPolicy)> = None;
    let mut targets: Vec<(u64, u64, u8)> = Vec::new();
    for (i, e) in table.entries.iter().enumerate() {
        let eoff = table_off.saturating_add((i as u64).saturating_mul(16));
        let mut en = Region::new(
            RegionKind::Header,
            format!("entry[{}]", fit::type_name(e.kind)),
            &data,
            eoff,
            16,
        )
        .with_attr("type", format!("0x{:02X}", e.kind))
        .with_attr("type-name", fit::type_description(e.kind))
        .with_attr("address", format!("0x{:X}", e.address))
        .with_attr("size", e.size)
        .with_attr("version", format!("0x{:04X}", e.version));
        if e.checksum_valid {
            en = en.with_attr("checksum", format!("0x{:02X}", e.checksum));
        }
        if i == 0 || matches!(e.kind, fit::TYPE_HEADER | fit::TYPE_SKIP) {
            fit_node.children.push(en);
            continue;
        }
        let target = if e.address >> 32 == 0 {
            space.offset_of(e.address)
        } else {
            None
        };
        let structural = matches!(
            e.kind,
            fit::TYPE_MICROCODE
                | fit::TYPE_STARTUP_ACM
                | fit::TYPE_KEY_MANIFEST
                | fit::TYPE_BOOT_POLICY
        );
        let Some(toff) = target else {
            if structural {
                en.notes.push(Note::new(
                    Code::FitInvalid,
                    format!(
                        "FIT {} entry points to 0x{:X}, outside the image",
                        fit::type_name(e.kind),
                        e.address
                    ),
                    Some(eoff),
                ));
            }
            fit_node.children.push(en);
            continue;
        };
        en = en.with_attr("target-offset", format!("0x{toff:X}"));
        let rest = &bytes[toff as usize..space.end as usize];
        let mut size = None;
        match e.kind {
            fit::TYPE_MICROCODE => match microcode::parse(rest) {
                Some(u) => {
                    size = Some(u.total_size as u64);
                    if let Some(existing) = pass.planned_at(toff) {
                        existing.attrs.insert("fit-entry".into(), true.into());
                    } else {
                        let n = microcode_node(&data, toff, &u).with_attr("fit-entry", true);
                        pass.cover(
                            (n.offset, n.size),
                            Scheme::Microcode,
                            Some(Protection::Microcode),
                            Trust::Anchored("intel".into()),
                            "intel",
                        );
                        pass.plan.push(n);
                    }
                }
                None => en.notes.push(Note::new(
                    Code::FitInvalid,
                    format!(
                        "FIT microcode entry at 0x{toff:X} does not point to a microcode update"
                    ),
                    Some(eoff),
                )),
            },
            fit::TYPE_STARTUP_ACM => match acm::parse(rest) {
                Ok(a) => {
                    size = Some(a.size);
                    let n = acm_node(&data, toff, &a);
                    if matches!(a.signature, SigCheck::Valid) {
                        pass.cover(
                            (toff, a.size),
                            Scheme::IntelAcm,
                            Some(Protection::Acm),
                            Trust::Unknown,
                            &a.key_sha256,
                        );
                    }
                    pass.plan.push(n);
                }
                Err(err) => en.notes.push(Note::new(
                    Code::Unparsed,
                    format!("startup ACM at 0x{toff:X}: {err}"),
                    Some(eoff),
                )),
            },
            fit::TYPE_KEY_MANIFEST => match bootguard::key_manifest(rest) {
                Ok(k) => {
                    size = Some(k.size);
                    km = Some((toff, k));
                }
                Err(err) => en.notes.push(Note::new(
                    Code::Unparsed,
                    format!("key manifest at 0x{toff:X}: {err}"),
                    Some(eoff),
                )),
            },
            fit::TYPE_BOOT_POLICY => match bootguard::boot_policy(rest) {
                Ok(b) => {
                    size = Some(b.size);
                    bpm = Some((toff, b));
                }
                Err(err) => en.notes.push(Note::new(
                    Code::Unparsed,
                    format!("boot policy manifest at 0x{toff:X}: {err}"),
                    Some(eoff),
                )),
            },
            _ => {}
        }
        if let Some(s) = size {
            if let Some(&(o, l, t)) = targets
                .iter()
                .find(|&&(o, l, _)| o < toff.saturating_add(s) && toff < o.saturating_add(l))
            {
                en.notes.push(Note::new(
                    Code::FitInvalid,
                    format!(
                        "FIT {} target 0x{toff:X}+0x{s:X} overlaps the {} target at 0x{o:X}+0x{l:X}",
                        fit::type_name(e.kind),
                        fit::type_name(t)
                    ),
                    Some(eoff),
                ));
            }
            targets.push((toff, s, e.kind));
        }
        fit_node.children.push(en);
    }
    // The table first: a target that overlaps it is the one left out.
    pass.plan.push(fit_node);
    bootguard_pass(pass, space, &table, km, bpm);
}

fn acm_node(data: &Arc<Data>, off: u64, a: &acm::Acm) -> Region {
    let mut r = Region::new(RegionKind::Blob, "startup-acm", data, off, a.size)
        .with_attr("structure", "intel-acm")
        .with_attr("module-subtype", a.module_subtype)
        .with_attr("header-version", format!("0x{:08X}", a.header_version))
        .with_attr("chipset-id", format!("0x{:04X}", a.chipset_id))
        .with_attr("flags", format!("0x{:04X}", a.flags))
        .with_attr("vendor", format!("0x{:X}", a.vendor))
        .with_attr("date", a.date.clone())
        .with_attr("txt-svn", a.txt_svn)
        .with_attr("se-svn", a.se_svn)
        .with_attr("key-sha256", a.key_sha256.clone());
    key_attrs(&mut r, "key", &a.key);
    sig_note(
        &mut r,
        Scheme::IntelAcm,
        Code::AcmSignatureInvalid,
        "startup ACM signature",
        &a.signature,
    );
    r
}

/// KM and BPM: nodes, signatures, the KM's hash of the BPM key, IBB digests and coverage.
/// KM and BPM: nodes, signatures, the KM's hash of the BPM key, IBB digests and coverage. Findings that
/// depend on bytes outside the manifest (IBB digests and gaps, the KM naming the BPM key) are notes on the
/// root node: `scan` descends only into nodes whose bytes changed, and the root changes with any byte, so
/// an IBB edit is reported even though the BPM itself is untouched. A signature finding stays on its
/// manifest (it depends on the manifest's bytes alone).
fn bootguard_pass(
    pass: &mut Pass,
    space: Space,
    table: &fit::Table,
    km: Option<(u64, bootguard::KeyManifest)>,
    bpm: Option<(u64, bootguard::BootPolicy)>,
) {
    let data = Arc::clone(&pass.data);
    let bytes: &[u8] = &data;
    let mut km_key_hash = String::new();
    let mut km_hashes = Vec::new();
    // Why the IBB cannot count as Boot Guard coverage at all (the chain KM -> BPM did not verify).
    let mut broken: Option<&str> = None;
    let mut pinned = false;
    if let Some((off, k)) = &km {
        let mut r = km_node(&data, *off, k);
        let check = verify_ks(&bytes[*off as usize..], k.signed_len, &k.key_signature);
        sig_note(
            &mut r,
            Scheme::BootguardKm,
            Code::BootguardSignatureInvalid,
            "key manifest signature",
            &check,
        );
        km_key_hash = r.attr_str("key-hash").unwrap_or_default().to_string();
        km_hashes = k.hashes.clone();
        pinned = km_key_pinned(&k.key_signature.key, &pass.km_pins);
        r.attrs.insert("key-pinned".into(), pinned.into());
        if check == SigCheck::Valid {
            let trust = km_trust(pinned, &km_key_hash);
            pass.cover(
                (*off, k.size),
                Scheme::BootguardKm,
                None,
                trust,
                &km_key_hash,
            );
        } else {
            broken = Some("the key manifest's signature did not verify");
        }
        pass.plan.push(r);
    } else {
        broken = Some("the FIT names no key manifest");
    }
    let Some((off, b)) = bpm else {
        return;
    };
    let mut r = bpm_node(&data, off, &b);
    let bpm_bytes = &bytes[off as usize..];
    let mut signed = false;
    if let Some(ks) = &b.key_signature {
        let check = verify_ks(bpm_bytes, b.signed_len, ks);
        signed = check == SigCheck::Valid;
        sig_note(
            &mut r,
            Scheme::BootguardBpm,
            Code::BootguardSignatureInvalid,
            "boot policy manifest signature",
            &check,
        );
        let bpm_key = ks.key.hash_input(false);
        let bpm_key_sha256 =
            keys::hex(&keys::digest(keys::ALG_SHA256, &[&bpm_key]).unwrap_or_default());
        r.attrs.insert("key-hash".into(), bpm_key_sha256.into());
        if km.is_some() {
            let named: Vec<_> = km_hashes
                .iter()
                .filter(|(usage, _)| usage & 1 != 0)
                .collect();
            let matches = named
                .iter()
                .any(|(_, h)| keys::digest(h.alg, &[&bpm_key]).is_some_and(|d| d == h.digest));
            r.attrs.insert("km-names-key".into(), matches.into());
            if !matches {
                broken = broken.or(Some(
                    "the key manifest does not name the boot policy manifest's key",
                ));
                pass.root_notes.push(Note::new(
                    Code::BootguardKmBpmKeyMismatch,
                    "the boot policy manifest is signed by a key whose hash the key manifest does not list",
                    Some(off),
                ));
            }
        }
    }
    if signed {
        let trust = km_trust(pinned, &km_key_hash);
        pass.cover(
            (off, b.size),
            Scheme::BootguardBpm,
            None,
            trust,
            &km_key_hash,
        );
    } else {
        broken = broken.or(Some("the boot policy manifest's signature did not verify"));
    }
    // Segments of the IBB sets whose digest verified.
    let mut verified: Vec<(u64, u64)> = Vec::new();
    // IBB segments and digests.
    let mut hashed: Vec<(u64, u64)> = Vec::new();
    let mut ibb = Vec::new();
    // Hostile BPMs may list many sets, segments and digests over the same bytes: at most four times the
    // BIOS space is hashed, the rest is reported as not verified (limit-exceeded).
    let mut budget = space.end.saturating_sub(space.start).saturating_mul(4);
    for set in &b.ibb_sets {
        let mut parts: Vec<&[u8]> = Vec::new();
        let mut outside = false;
        let mut segs = Vec::new();
        let mut set_hashed: Vec<(u64, u64)> = Vec::new();
        for s in &set.segments {
            let so = space.offset_of(s.base as u64);
            segs.push(json!({
                "base": format!("0x{:08X}", s.base), "size": s.size, "flags": s.flags,
                "hashed": s.hashed(), "offset": so,
            }));
            if !s.hashed() {
                continue;
            }
            match so {
                Some(o) if o.saturating_add(s.size as u64) <= space.end => {
                    // `o + size <= space.end`, inside the image.
                    parts.push(&bytes[o as usize..o.saturating_add(s.size as u64) as usize]);
                    set_hashed.push((o, s.size as u64));
                }
                _ => outside = true,
            }
        }
        let mut digests = Vec::new();
        let mut statuses: Vec<&str> = Vec::new();
        for h in &set.digests {
            let cost: u64 = parts.iter().map(|p| p.len() as u64).sum();
            let status = if outside {
                "segment-outside-image"
            } else if cost > budget {
                pass.root_notes.push(Note::new(
                    Code::LimitExceeded,
                    format!(
                        "IBB set {}: digest not computed (hashing limit reached)",
                        set.set_number
                    ),
                    Some(off),
                ));
                "not-verified"
            } else {
                // `cost <= budget` (checked just above).
                budget = budget.saturating_sub(cost);
                match keys::digest(h.alg, &parts) {
                    Some(d) if d == h.digest => "valid",
                    Some(_) => "mismatch",
                    None => "not-verified",
                }
            };
            if matches!(status, "mismatch" | "segment-outside-image") {
                pass.root_notes.push(Note::new(
                    Code::BootguardIbbMismatch,
                    format!(
                        "IBB set {} {} digest: {status}",
                        set.set_number,
                        keys::alg_name(h.alg)
                    ),
                    Some(off),
                ));
            }
            statuses.push(status);
            digests.push(json!({"alg": keys::alg_name(h.alg), "digest": keys::hex(&h.digest), "status": status}));
        }
        // The set counts when a digest was computed and equal and none disagreed (the ACM may check any
        // of them).
        let ok = statuses.contains(&"valid")
            && !statuses
                .iter()
                .any(|s| matches!(*s, "mismatch" | "segment-outside-image"));
        if ok {
            verified.extend(&set_hashed);
        } else if !set_hashed.is_empty() || outside {
            pass.coverage_notes.push(format!(
                "IBB set {}: no digest verified ({}): its segments count as without Boot Guard",
                set.set_number,
                if statuses.is_empty() {
                    "no digest listed".to_string()
                } else {
                    statuses.join(", ")
                }
            ));
        }
        hashed.extend(set_hashed);
        let mut v = json!({
            "set": set.set_number, "flags": format!("0x{:X}", set.flags),
            "entry-point": format!("0x{:08X}", set.entry_point), "segments": segs, "digests": digests,
        });
        if set.post_ibb.alg != keys::ALG_NULL && !set.post_ibb.digest.iter().all(|&x| x == 0) {
            v["post-ibb-digest"] = json!({"alg": keys::alg_name(set.post_ibb.alg), "digest": keys::hex(&set.post_ibb.digest), "status": "not-verified"});
        }
        if let Some(obb) = &set.obb {
            if obb.alg != keys::ALG_NULL {
                v["obb-digest"] =
                    json!({"alg": keys::alg_name(obb.alg), "digest": keys::hex(&obb.digest)});
            }
        }
        ibb.push(v);
    }
    r.attrs.insert("ibb".into(), Value::Array(ibb));
    match broken {
        Some(why) if !verified.is_empty() => pass
            .coverage_notes
            .push(format!("IBB segments count as without Boot Guard: {why}")),
        Some(_) => {}
        None if !verified.is_empty() => {
            let protection = if pinned {
                Protection::BootguardIbb
            } else {
                pass.coverage_notes.push(format!(
                    "key manifest key {km_key_hash} is pinned by none of the {} `bootguard-km-hash` key(s) given \
                     (trust policy, inspect --trust): IBB segments count as bootguard-self-signed, not as \
                     hardware-verified (fwscan cannot read the chipset fuses from a dump)",
                    pass.km_pins.len()
                ));
                Protection::BootguardSelfSigned
            };
            for &(o, l) in &verified {
                let trust = km_trust(pinned, &km_key_hash);
                pass.cover(
                    (o, l),
                    Scheme::BootguardIbb,
                    Some(protection),
                    trust,
                    &km_key_hash,
                );
            }
        }
        None => {}
    }
    // The reset vector and the FIT must be inside hashed IBB segments.
    let covered = |o: u64, l: u64| {
        hashed
            .iter()
            .any(|&(s, n)| s <= o && o.saturating_add(l) <= s.saturating_add(n))
    };
    let reset = space.end.saturating_sub(0x10);
    let fit_len = (table.entries.len() as u64).saturating_mul(16);
    for (what, o, l) in [
        ("reset vector", reset, 0x10),
        ("FIT", table.offset, fit_len),
    ] {
        if !covered(o, l) {
            pass.root_notes.push(Note::new(
                Code::BootguardUnsignedIbbGap,
                format!("the {what} at 0x{o:X} is not inside a hashed IBB segment"),
                Some(o),
            ));
        }
    }
    pass.plan.push(r);
}

fn verify_ks(b: &[u8], signed_len: u64, ks: &bootguard::KeySignature) -> SigCheck {
    match b.get(..signed_len as usize) {
        Some(msg) => keys::verify(&ks.key, ks.scheme, ks.hash_alg, &ks.sig, msg),
        None => SigCheck::Invalid("signed part past the end".into()),
    }
}

/// The node of a Key Manifest (standalone or in an image), with its key hash attributes.
pub fn km_node(data: &Arc<Data>, off: u64, k: &bootguard::KeyManifest) -> Region {
    let ks = &k.key_signature;
    let alg = if keys::digest_len(k.pubkey_hash_alg).is_some() && k.pubkey_hash_alg != keys::ALG_SM3
    {
        k.pubkey_hash_alg
    } else {
        keys::ALG_SHA256
    };
    let full = keys::hex(&keys::digest(alg, &[&ks.key.hash_input(true)]).unwrap_or_default());
    let modulus = keys::hex(&keys::digest(alg, &[&ks.key.hash_input(false)]).unwrap_or_default());
    let mut r = Region::new(RegionKind::Blob, "key-manifest", data, off, k.size)
        .with_attr("structure", "bootguard-km")
        .with_attr("struct-version", format!("0x{:02X}", k.struct_version))
        .with_attr(
            "generation",
            if bootguard::is_cbnt(k.struct_version) {
                "cbnt"
            } else {
                "boot-guard-1.0"
            },
        )
        .with_attr("km-revision", k.revision)
        .with_attr("km-svn", k.svn)
        .with_attr("km-id", k.id)
        .with_attr("key-hash-alg", keys::alg_name(alg))
        .with_attr("key-hash", full)
        .with_attr("key-hash-modulus-only", modulus)
        .with_attr("sig-scheme", keys::alg_name(ks.scheme))
        .with_attr("sig-hash", keys::alg_name(ks.hash_alg));
    key_attrs(&mut r, "key", &ks.key);
    let hashes: Vec<Value> = k
        .hashes
        .iter()
        .map(|(u, h)| json!({"usage": format!("0x{u:X}"), "alg": keys::alg_name(h.alg), "digest": keys::hex(&h.digest)}))
        .collect();
    r.attrs.insert("key-hashes".into(), Value::Array(hashes));
    r
}

/// The node of a Boot Policy Manifest with one child per element.
pub fn bpm_node(data: &Arc<Data>, off: u64, b: &bootguard::BootPolicy) -> Region {
    let mut r = Region::new(RegionKind::Blob, "boot-policy-manifest", data, off, b.size)
        .with_attr("structure", "bootguard-bpm")
        .with_attr("struct-version", format!("0x{:02X}", b.struct_version))
        .with_attr(
            "generation",
            if bootguard::is_cbnt(b.struct_version) {
                "cbnt"
            } else {
                "boot-guard-1.0"
            },
        )
        .with_attr("bpm-revision", b.revision)
        .with_attr("bpm-svn", b.svn)
        .with_attr("acm-svn", b.acm_svn);
    if let Some(ks) = &b.key_signature {
        key_attrs(&mut r, "key", &ks.key);
        r.attrs
            .insert("sig-scheme".into(), keys::alg_name(ks.scheme).into());
        r.attrs
            .insert("sig-hash".into(), keys::alg_name(ks.hash_alg).into());
    }
    for e in &b.elements {
        let name = e.id.trim_matches('_').to_ascii_lowercase();
        r.children.push(
            Region::new(
                RegionKind::Header,
                name,
                data,
                off.saturating_add(e.offset),
                e.size,
            )
            .with_attr("version", format!("0x{:02X}", e.version)),
        );
    }
    let (d, s, e) = (Arc::clone(data), r.offset, r.end());
    region::fill_gaps(&d, s, e, &mut r.children, 0xFF, RegionKind::Padding);
    r
}

/// Registry probe for standalone KM/BPM files.
pub fn probe_manifest(b: &[u8]) -> Option<crate::formats::Confidence> {
    bootguard::probe(b).map(|_| crate::formats::Confidence::High)
}

/// Registry parser for standalone KM/BPM files: the structure and its elements. The signature is checked
/// and reported as evidence; findings about it need the image the manifest protects (the ACM only
/// enforces a manifest the FIT names), so a loose file gets no finding.
pub fn parse_manifest(_ctx: &Ctx, node: &Region) -> Result<Vec<Region>, crate::error::ParseError> {
    let b = node.bytes();
    let mut r = match bootguard::probe(b) {
        Some("key-manifest") => {
            let k = bootguard::key_manifest(b)?;
            let mut r = km_node(&node.data, node.offset, &k);
            let c = verify_ks(b, k.signed_len, &k.key_signature);
            r.evidence.push(sig_evidence(Scheme::BootguardKm, &c));
            r
        }
        _ => {
            let p = bootguard::boot_policy(b)?;
            let mut r = bpm_node(&node.data, node.offset, &p);
            if let Some(ks) = &p.key_signature {
                let c = verify_ks(b, p.signed_len, ks);
                r.evidence.push(sig_evidence(Scheme::BootguardBpm, &c));
            }
            r
        }
    };
    r.size = r.size.min(node.size);
    Ok(vec![r])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::ParseOptions;

    /// Deterministic pseudo-random bytes (xorshift).
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    /// A KM key matches a pin of its fused form (modulus then exponent, or X then Y) by SHA-256 or SHA-384,
    /// the modulus-only form only with the exponent 65537, and nothing else.
    #[test]
    fn km_pins_match_the_fused_key_hash() {
        let modulus_le: Vec<u8> = (0..256u32).map(|i| (i * 7 + 1) as u8).collect();
        let rsa = |exponent| PubKey::Rsa {
            modulus_le: modulus_le.clone(),
            exponent,
        };
        let d = |alg, b: &[u8]| keys::digest(alg, &[b]).unwrap();
        let mut fused = modulus_le.clone();
        fused.extend(65537u32.to_le_bytes());
        let k = rsa(65537);
        assert!(km_key_pinned(&k, &[d(keys::ALG_SHA256, &fused)]));
        assert!(km_key_pinned(
            &k,
            &[vec![0; 32], d(keys::ALG_SHA384, &fused)]
        ));
        assert!(km_key_pinned(&k, &[d(keys::ALG_SHA256, &modulus_le)]));
        assert!(!km_key_pinned(&k, &[]));
        assert!(!km_key_pinned(&k, &[d(keys::ALG_SHA1, &fused)]));
        assert!(!km_key_pinned(&k, &[d(keys::ALG_SHA512, &fused)]));
        // Another exponent: its own fused form only, never the modulus alone.
        let mut fused3 = modulus_le.clone();
        fused3.extend(3u32.to_le_bytes());
        assert!(km_key_pinned(&rsa(3), &[d(keys::ALG_SHA256, &fused3)]));
        assert!(!km_key_pinned(&rsa(3), &[d(keys::ALG_SHA256, &fused)]));
        assert!(!km_key_pinned(&rsa(3), &[d(keys::ALG_SHA256, &modulus_le)]));
        let ecc = PubKey::Ecc {
            x_le: vec![1; 32],
            y_le: vec![2; 32],
        };
        let mut xy = vec![1u8; 32];
        xy.extend([2u8; 32]);
        assert!(km_key_pinned(&ecc, &[d(keys::ALG_SHA256, &xy)]));
        assert!(!km_key_pinned(&ecc, &[d(keys::ALG_SHA256, &fused)]));
    }

    /// Random images with a FIT whose entries point at mangled KM/BPM/ACM/microcode headers: the pass
    /// never panics and every node it adds lies inside the image (a bounded stand-in for the fuzz targets).
    #[test]
    fn mangled_fit_targets_are_bounded() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let size = 0x8000usize;
        let base = FOUR_GIB - size as u64;
        let ctx = Ctx::new(&ParseOptions::default());
        for round in 0..1500 {
            let mut b: Vec<u8> = (0..size).map(|_| rng.next() as u8).collect();
            let fit_off = 0x7000usize;
            let n = 1 + (rng.next() % 6) as usize;
            let mut fit = b"_FIT_   ".to_vec();
            fit.extend([n as u8, 0, 0, 0, 0, 1, 0x80, 0]);
            for _ in 1..n {
                let t = [1u8, 2, 0x0B, 0x0C, 7, 0x7F][(rng.next() % 6) as usize];
                let off = (rng.next() % 0x7000) & !0xF;
                let addr = if rng.next() % 8 == 0 {
                    rng.next()
                } else {
                    base + off
                };
                fit.extend(addr.to_le_bytes());
                fit.extend((rng.next() as u32 & 0xFF_FFFF).to_le_bytes());
                fit.extend([0, 1, t, 0]);
                let o = off as usize;
                let head: &[u8] = match t {
                    0x0B => b"__KEYM__",
                    0x0C => b"__ACBP__",
                    _ => b"",
                };
                b[o..o + head.len()].copy_from_slice(head);
                if t == 1 {
                    b[o] = 1;
                    b[o + 1..o + 4].fill(0);
                    b[o + 20..o + 24].copy_from_slice(&1u32.to_le_bytes());
                }
                if t == 2 {
                    b[o..o + 2].copy_from_slice(&2u16.to_le_bytes());
                    b[o + 16..o + 20].copy_from_slice(&0x8086u32.to_le_bytes());
                }
                if head.len() == 8 {
                    b[o + 8] = if round % 2 == 0 { 0x10 } else { 0x21 };
                }
            }
            fit.truncate(n * 16);
            b[fit_off..fit_off + fit.len()].copy_from_slice(&fit);
            b[size - 0x40..size - 0x38].copy_from_slice(&(base + fit_off as u64).to_le_bytes());
            let data = Arc::new(Data::Owned(b));
            let mut root = Region::new(RegionKind::Image, "", &data, 0, size as u64)
                .with_attr("format", "uefi");
            annotate(&ctx, &mut root);
            root.walk(&mut |r| assert!(r.end() <= size as u64, "{} past the end", r.name));
            let fit_placed = root.children.iter().any(|c| c.name == "fit");
            let straddle = root.notes.iter().any(|n| n.code == Code::FitInvalid);
            assert!(fit_placed || straddle, "round {round}");
        }
    }
}
