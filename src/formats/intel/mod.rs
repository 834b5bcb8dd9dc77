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
//! It is the `intel-fit` entry of the whole-tree pass registry ([`crate::formats::passes`]).
//!
//! Each check is [`Evidence`] on the node that carries the signature or digest, covering byte ranges (the
//! node's own bytes, or the IBB segments a boot policy manifest hashes): `microcode` on each microcode
//! update (valid when its checksums hold), `intel-acm` on the startup ACM, `bootguard-km` and
//! `bootguard-bpm` on the key and boot policy manifests, and one `bootguard-ibb` per IBB set on the boot
//! policy manifest. An IBB set is valid only when the whole chain verified: KM signature, BPM signature by
//! the key the KM names, and the set's digest (computed and equal); otherwise its evidence is invalid or
//! not verified and says why. Its protection is `bootguard-ibb` when the KM key is pinned by a
//! `bootguard-km-hash` key of the parse context's key ring ([`crate::formats::keys::KeyRing`]), trust
//! anchored in that pin; else `bootguard-self-signed`, trust self-signed. `inspect --coverage` folds it.
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
pub mod stm;

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
struct Found {
    data: Arc<Data>,
    /// New nodes, each carrying the evidence of the check it holds.
    plan: Vec<Region>,
    root_notes: Vec<Note>,
    /// Pinned Boot Guard OEM key hashes (the key ring's `bootguard-km-hash` keys).
    km_pins: Vec<Vec<u8>>,
}

impl Found {
    fn planned_at(&mut self, offset: u64) -> Option<&mut Region> {
        self.plan.iter_mut().find(|r| r.offset == offset)
    }
}

/// Evidence of a check over byte ranges of the image, for the node that carries the signature or digest:
/// its scheme and status, the coverage class it gives when valid, how far its key is trusted and who
/// signed (`by`: a key hash, `intel`; empty: nobody named). Byte ranges rather than "the node": the
/// coverage names the signer, IBB segments are not nodes, and the evidence keeps its meaning on the root
/// when its node cannot be placed.
fn range_evidence(
    ranges: Vec<(u64, u64)>,
    scheme: Scheme,
    status: Status,
    protection: Option<Protection>,
    trust: Trust,
    by: &str,
) -> Evidence {
    let mut e = Evidence::on_node(scheme, status)
        .with_ranges(ranges)
        .with_trust(trust);
    if !by.is_empty() {
        e = e.with_signer(by);
    }
    e.protection = protection;
    e
}

/// The pass: finds FIT, microcode, ACM and Boot Guard structures and attaches them to `root`.
pub fn annotate(ctx: &Ctx, root: &mut Region) {
    let mut found = Found {
        data: Arc::clone(&root.data),
        plan: Vec::new(),
        root_notes: Vec::new(),
        km_pins: ctx
            .opts
            .keys
            .bootguard_km_hashes()
            .into_iter()
            .map(<[u8]>::to_vec)
            .collect(),
    };
    microcode_files(&mut found, root);
    for space in bios_spaces(root) {
        fit_pass(&mut found, space);
    }
    let Found {
        plan, root_notes, ..
    } = found;
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
            // Its evidence names byte ranges of the image: still true of them, so it moves along.
            node.walk(&mut |r| root.evidence.extend(r.evidence.iter().cloned()));
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
}

/// Microcode updates in the microcode FFS files of the firmware volumes.
fn microcode_files(found: &mut Found, root: &Region) {
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
        let bytes = slice_of(&found.data, off, size);
        for (o, u) in microcode::scan(bytes) {
            let node = microcode_node(&found.data, off.saturating_add(o as u64), &u);
            found.plan.push(node);
        }
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
    // The CPU checks Intel's signature when it loads the update; fwscan checks the checksums.
    let status = if u.problems.is_empty() {
        Status::Valid
    } else {
        Status::Invalid(u.problems.join("; "))
    };
    r.evidence.push(range_evidence(
        vec![(off, u.total_size as u64)],
        Scheme::Microcode,
        status,
        Some(Protection::Microcode),
        Trust::Anchored("intel".into()),
        "intel",
    ));
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

/// The status of a signature check.
fn sig_status(check: &SigCheck) -> Status {
    match check {
        SigCheck::Valid => Status::Valid,
        SigCheck::Invalid(why) => Status::Invalid(why.clone()),
        SigCheck::NotVerified(why) => Status::NotVerified(why.clone()),
    }
}

/// A signature check as evidence on its node: the key it names is carried by the structure itself, so it is
/// self-signed (a loose KM/BPM file: nothing in it says which platform enforces it).
fn sig_evidence(scheme: Scheme, check: &SigCheck) -> Evidence {
    Evidence::on_node(scheme, sig_status(check)).with_trust(Trust::SelfSigned)
}

/// A finding `code` on `r` when its signature check failed.
fn sig_finding(r: &mut Region, code: Code, what: &str, check: &SigCheck) {
    if let SigCheck::Invalid(why) = check {
        r.notes
            .push(Note::new(code, format!("{what}: {why}"), Some(r.offset)))
    }
}

/// The FIT's table and the physical address its pointer holds, if the BIOS space has one.
fn fit_table(found: &mut Found, space: Space) -> Option<(fit::Table, u64)> {
    let bytes: &[u8] = &found.data;
    let ptr_off = space.end.checked_sub(0x40).filter(|&o| o >= space.start)?;
    let ptr = bytes
        .get(ptr_off as usize..(ptr_off as usize).saturating_add(8))
        .map(|p| u64::from_le_bytes(p.try_into().unwrap_or([0; 8])))?;
    // Erased or absent pointer: no FIT (most non-Intel or old images).
    if ptr == 0 || ptr == u64::MAX || ptr as u32 == u32::MAX {
        return None;
    }
    let table_off = space.offset_of(ptr & 0xFFFF_FFFF)?;
    match fit::parse(bytes, table_off) {
        Ok(t) => Some((t, ptr)),
        // A pointer without a table is common on non-Intel images: no FIT, no note.
        Err(_)
            if bytes.get(table_off as usize..(table_off as usize).saturating_add(8))
                != Some(fit::FIT_SIGNATURE) =>
        {
            None
        }
        Err(e) => {
            found
                .root_notes
                .push(Note::new(Code::FitInvalid, e.to_string(), Some(table_off)));
            None
        }
    }
}

/// The `fit` node: the table with its header checksum, before its entries.
fn fit_header_node(data: &Arc<Data>, table: &fit::Table, ptr: u64) -> Region {
    let table_off = table.offset;
    let mut fit_node = Region::new(
        RegionKind::Header,
        "fit",
        data,
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
    fit_node
}

/// What the FIT's entries named, for the Boot Guard part of the pass.
#[derive(Default)]
struct Named {
    km: Option<(u64, bootguard::KeyManifest)>,
    bpm: Option<(u64, bootguard::BootPolicy)>,
    /// Targets parsed so far (offset, size, FIT type), to report overlaps.
    targets: Vec<(u64, u64, u8)>,
}

/// The FIT of one BIOS space: its table, each entry's target, then Boot Guard.
fn fit_pass(found: &mut Found, space: Space) {
    let Some((table, ptr)) = fit_table(found, space) else {
        return;
    };
    let data = Arc::clone(&found.data);
    let mut fit_node = fit_header_node(&data, &table, ptr);
    let mut named = Named::default();
    for (i, e) in table.entries.iter().enumerate() {
        let en = fit_entry(found, space, &table, i, e, &mut named);
        fit_node.children.push(en);
    }
    // The table first: a target that overlaps it is the one left out.
    found.plan.push(fit_node);
    bootguard_pass(found, space, &table, named.km, named.bpm);
}

/// The node of FIT entry `i`; its target parsed (microcode and ACM nodes planned, KM and BPM kept in
/// `named`).
fn fit_entry(
    found: &mut Found,
    space: Space,
    table: &fit::Table,
    i: usize,
    e: &fit::Entry,
    named: &mut Named,
) -> Region {
    let data = Arc::clone(&found.data);
    let eoff = table.offset.saturating_add((i as u64).saturating_mul(16));
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
        return en;
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
        return en;
    };
    en = en.with_attr("target-offset", format!("0x{toff:X}"));
    let rest = &data[toff as usize..space.end as usize];
    let parsed = fit_target(found, e.kind, toff, rest, named);
    let size = match parsed {
        Ok(size) => size,
        Err(note) => {
            en.notes.push(Note::new(note.0, note.1, Some(eoff)));
            None
        }
    };
    if let Some(s) = size {
        if let Some(&(o, l, t)) = named
            .targets
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
        named.targets.push((toff, s, e.kind));
    }
    en
}

/// Parses the target of a FIT entry of `kind` at image offset `toff` (`rest`: its bytes to the end of the
/// BIOS space): its size, or a finding for the entry.
fn fit_target(
    found: &mut Found,
    kind: u8,
    toff: u64,
    rest: &[u8],
    named: &mut Named,
) -> Result<Option<u64>, (Code, String)> {
    match kind {
        fit::TYPE_MICROCODE => {
            let u = microcode::parse(rest).ok_or_else(|| {
                (
                    Code::FitInvalid,
                    format!(
                        "FIT microcode entry at 0x{toff:X} does not point to a microcode update"
                    ),
                )
            })?;
            if let Some(existing) = found.planned_at(toff) {
                existing.attrs.insert("fit-entry".into(), true.into());
            } else {
                let n = microcode_node(&found.data, toff, &u).with_attr("fit-entry", true);
                found.plan.push(n);
            }
            Ok(Some(u.total_size as u64))
        }
        fit::TYPE_STARTUP_ACM => {
            let a = acm::parse(rest)
                .map_err(|err| (Code::Unparsed, format!("startup ACM at 0x{toff:X}: {err}")))?;
            found.plan.push(acm_node(&found.data, toff, &a));
            Ok(Some(a.size))
        }
        fit::TYPE_KEY_MANIFEST => {
            let k = bootguard::key_manifest(rest)
                .map_err(|err| (Code::Unparsed, format!("key manifest at 0x{toff:X}: {err}")))?;
            let size = k.size;
            named.km = Some((toff, k));
            Ok(Some(size))
        }
        fit::TYPE_BOOT_POLICY => {
            let b = bootguard::boot_policy(rest).map_err(|err| {
                (
                    Code::Unparsed,
                    format!("boot policy manifest at 0x{toff:X}: {err}"),
                )
            })?;
            let size = b.size;
            named.bpm = Some((toff, b));
            Ok(Some(size))
        }
        _ => Ok(None),
    }
}

/// The node of a startup ACM, with its signature's evidence (`acm` coverage when valid, by the key's
/// SHA-256; fwscan knows no list of Intel's ACM keys, so the key's trust is unknown).
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
    r.evidence.push(range_evidence(
        vec![(off, a.size)],
        Scheme::IntelAcm,
        sig_status(&a.signature),
        Some(Protection::Acm),
        Trust::Unknown,
        &a.key_sha256,
    ));
    sig_finding(
        &mut r,
        Code::AcmSignatureInvalid,
        "startup ACM signature",
        &a.signature,
    );
    r
}

/// What the key manifest established for the rest of the Boot Guard chain.
struct KmChain {
    /// Whether the FIT names a key manifest that parsed.
    present: bool,
    /// The KM key's hash (`key-hash`), empty without a KM.
    key_hash: String,
    /// The key hashes the KM lists (usage, digest).
    hashes: Vec<(u64, bootguard::HashValue)>,
    /// Whether a `bootguard-km-hash` pin matches the KM key.
    pinned: bool,
    /// Why the IBB cannot count as Boot Guard coverage at all (the chain KM -> BPM did not verify).
    broken: Option<&'static str>,
}

impl KmChain {
    /// How far the KM key is trusted: anchored in a `bootguard-km-hash` pin, else self-signed.
    fn trust(&self) -> Trust {
        if self.pinned {
            Trust::Anchored(self.key_hash.clone())
        } else {
            Trust::SelfSigned
        }
    }
}

/// KM and BPM: nodes, signatures, the KM's hash of the BPM key, IBB digests and coverage. Findings that
/// depend on bytes outside the manifest (IBB digests and gaps, the KM naming the BPM key) are notes on the
/// root node: `scan` descends only into nodes whose bytes changed, and the root changes with any byte, so
/// an IBB edit is reported even though the BPM itself is untouched. A signature finding stays on its
/// manifest (it depends on the manifest's bytes alone). Evidence sits on the manifest that carries the
/// signature or digest: the KM's and BPM's signatures on their nodes, the IBB digests on the BPM node.
fn bootguard_pass(
    found: &mut Found,
    space: Space,
    table: &fit::Table,
    km: Option<(u64, bootguard::KeyManifest)>,
    bpm: Option<(u64, bootguard::BootPolicy)>,
) {
    let mut chain = key_manifest_step(found, km);
    let Some((off, b)) = bpm else {
        return;
    };
    let mut r = boot_policy_step(found, off, &b, &mut chain);
    let hashed = ibb_sets(found, space, off, &b, &chain, &mut r);
    ibb_gaps(found, space, table, &hashed);
    found.plan.push(r);
}

/// The key manifest's node and signature; the chain state it leaves for the BPM and IBB.
fn key_manifest_step(found: &mut Found, km: Option<(u64, bootguard::KeyManifest)>) -> KmChain {
    let Some((off, k)) = km else {
        return KmChain {
            present: false,
            key_hash: String::new(),
            hashes: Vec::new(),
            pinned: false,
            broken: Some("the FIT names no key manifest"),
        };
    };
    let mut r = km_node(&found.data, off, &k);
    let check = verify_ks(&found.data[off as usize..], k.signed_len, &k.key_signature);
    sig_finding(
        &mut r,
        Code::BootguardSignatureInvalid,
        "key manifest signature",
        &check,
    );
    let pinned = km_key_pinned(&k.key_signature.key, &found.km_pins);
    r.attrs.insert("key-pinned".into(), pinned.into());
    let chain = KmChain {
        present: true,
        key_hash: r.attr_str("key-hash").unwrap_or_default().to_string(),
        hashes: k.hashes.clone(),
        pinned,
        broken: (check != SigCheck::Valid).then_some("the key manifest's signature did not verify"),
    };
    r.evidence.push(range_evidence(
        vec![(off, k.size)],
        Scheme::BootguardKm,
        sig_status(&check),
        None,
        chain.trust(),
        &chain.key_hash,
    ));
    found.plan.push(r);
    chain
}

/// The boot policy manifest's node, its signature, and whether the KM names its key.
fn boot_policy_step(
    found: &mut Found,
    off: u64,
    b: &bootguard::BootPolicy,
    chain: &mut KmChain,
) -> Region {
    let mut r = bpm_node(&found.data, off, b);
    let Some(ks) = &b.key_signature else {
        chain.broken = chain
            .broken
            .or(Some("the boot policy manifest's signature did not verify"));
        return r;
    };
    let check = verify_ks(&found.data[off as usize..], b.signed_len, ks);
    sig_finding(
        &mut r,
        Code::BootguardSignatureInvalid,
        "boot policy manifest signature",
        &check,
    );
    let bpm_key = ks.key.hash_input(false);
    let bpm_key_sha256 =
        keys::hex(&keys::digest(keys::ALG_SHA256, &[&bpm_key]).unwrap_or_default());
    r.attrs
        .insert("key-hash".into(), bpm_key_sha256.clone().into());
    let mut named = false;
    if chain.present {
        named = chain
            .hashes
            .iter()
            .filter(|(usage, _)| usage & 1 != 0)
            .any(|(_, h)| keys::digest(h.alg, &[&bpm_key]).is_some_and(|d| d == h.digest));
        r.attrs.insert("km-names-key".into(), named.into());
        if !named {
            chain.broken = chain.broken.or(Some(
                "the key manifest does not name the boot policy manifest's key",
            ));
            found.root_notes.push(Note::new(
                Code::BootguardKmBpmKeyMismatch,
                "the boot policy manifest is signed by a key whose hash the key manifest does not list",
                Some(off),
            ));
        }
    }
    if check != SigCheck::Valid {
        chain.broken = chain
            .broken
            .or(Some("the boot policy manifest's signature did not verify"));
    }
    // The BPM key is as trusted as the KM that names it.
    let trust = if named {
        chain.trust()
    } else {
        Trust::SelfSigned
    };
    r.evidence.push(range_evidence(
        vec![(off, b.size)],
        Scheme::BootguardBpm,
        sig_status(&check),
        None,
        trust,
        &bpm_key_sha256,
    ));
    r
}

/// Verifies the IBB sets of the BPM at `off`: their `ibb` attribute and `bootguard-ibb` evidence on the BPM
/// node `r`; returns the hashed segments (offset, size).
fn ibb_sets(
    found: &mut Found,
    space: Space,
    off: u64,
    b: &bootguard::BootPolicy,
    chain: &KmChain,
    r: &mut Region,
) -> Vec<(u64, u64)> {
    let mut hashed: Vec<(u64, u64)> = Vec::new();
    let mut ibb = Vec::new();
    // Hostile BPMs may list many sets, segments and digests over the same bytes: at most four times the
    // BIOS space is hashed, the rest is reported as not verified (limit-exceeded).
    let mut budget = space.end.saturating_sub(space.start).saturating_mul(4);
    for set in &b.ibb_sets {
        let s = ibb_set(found, space, off, set, &mut budget);
        if let Some(e) = ibb_evidence(set.set_number, &s, chain) {
            r.evidence.push(e);
        }
        hashed.extend(s.hashed);
        ibb.push(s.json);
    }
    r.attrs.insert("ibb".into(), Value::Array(ibb));
    hashed
}

/// One IBB set, its digests recomputed.
struct IbbSet {
    /// Its hashed segments inside the image (offset, size).
    hashed: Vec<(u64, u64)>,
    /// A hashed segment lies outside the image.
    outside: bool,
    /// Per listed digest: `valid`, `mismatch`, `not-verified` or `segment-outside-image`.
    statuses: Vec<&'static str>,
    /// The `ibb` attribute's entry.
    json: Value,
}

impl IbbSet {
    /// A digest was computed and equal and none disagreed (the ACM may check any of them).
    fn ok(&self) -> bool {
        self.statuses.contains(&"valid") && !self.statuses.iter().any(|s| Self::bad(s))
    }

    fn bad(status: &str) -> bool {
        matches!(status, "mismatch" | "segment-outside-image")
    }
}

/// Reads the segments of `set` and checks its digests within `budget` hashed bytes.
fn ibb_set(
    found: &mut Found,
    space: Space,
    off: u64,
    set: &bootguard::IbbSet,
    budget: &mut u64,
) -> IbbSet {
    let data = Arc::clone(&found.data);
    let bytes: &[u8] = &data;
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
    let mut statuses: Vec<&'static str> = Vec::new();
    for h in &set.digests {
        let cost: u64 = parts.iter().map(|p| p.len() as u64).sum();
        let status = if outside {
            "segment-outside-image"
        } else if cost > *budget {
            found.root_notes.push(Note::new(
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
            *budget = budget.saturating_sub(cost);
            match keys::digest(h.alg, &parts) {
                Some(d) if d == h.digest => "valid",
                Some(_) => "mismatch",
                None => "not-verified",
            }
        };
        if IbbSet::bad(status) {
            found.root_notes.push(Note::new(
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
        digests.push(
            json!({"alg": keys::alg_name(h.alg), "digest": keys::hex(&h.digest), "status": status}),
        );
    }
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
    IbbSet {
        hashed: set_hashed,
        outside,
        statuses,
        json: v,
    }
}

/// The `bootguard-ibb` evidence of one IBB set over its hashed segments: valid when its digest verified
/// and the KM -> BPM chain holds (protection `bootguard-ibb` under a pinned KM key, `bootguard-self-signed`
/// under an unpinned one, trust saying which); otherwise invalid or not verified, saying why. A set with no
/// hashed segment in the image and none outside has nothing to say.
fn ibb_evidence(number: u8, s: &IbbSet, chain: &KmChain) -> Option<Evidence> {
    if s.hashed.is_empty() && !s.outside {
        return None;
    }
    let status = if s.ok() {
        match chain.broken {
            None => Status::Valid,
            Some(why) => Status::NotVerified(format!(
                "IBB set {number}: its digest matches, but {why}: its segments count as without Boot Guard"
            )),
        }
    } else {
        let why = format!(
            "IBB set {number}: no digest verified ({}): its segments count as without Boot Guard",
            if s.statuses.is_empty() {
                "no digest listed".to_string()
            } else {
                s.statuses.join(", ")
            }
        );
        if s.statuses.iter().any(|x| IbbSet::bad(x)) {
            Status::Invalid(why)
        } else {
            Status::NotVerified(why)
        }
    };
    let protection = if chain.pinned {
        Protection::BootguardIbb
    } else {
        Protection::BootguardSelfSigned
    };
    Some(range_evidence(
        s.hashed.clone(),
        Scheme::BootguardIbb,
        status,
        Some(protection),
        chain.trust(),
        &chain.key_hash,
    ))
}

/// The reset vector and the FIT must be inside hashed IBB segments.
fn ibb_gaps(found: &mut Found, space: Space, table: &fit::Table, hashed: &[(u64, u64)]) {
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
            found.root_notes.push(Note::new(
                Code::BootguardUnsignedIbbGap,
                format!("the {what} at 0x{o:X} is not inside a hashed IBB segment"),
                Some(o),
            ));
        }
    }
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
/// The registry entry of a stand-alone Boot Guard / CBnT key or boot policy manifest file.
pub const FORMAT_MANIFEST: crate::formats::Format = crate::formats::Format {
    name: "intel-manifest",
    description: "Intel Boot Guard / CBnT key or boot policy manifest (__KEYM__, __ACBP__)",
    probe: probe_manifest,
    parse: parse_manifest,
    scope: crate::formats::Scope::Flash,
    component: Some("bios"),
    policy: None,
    not_inside: &[],
    payloads: &[],
    package: None,
};

pub fn probe_manifest(b: &[u8]) -> Option<crate::formats::Confidence> {
    bootguard::probe(b).map(|_| crate::formats::Confidence::High)
}

/// Registry parser for standalone KM/BPM files: the structure and its elements. The signature is checked
/// and reported as evidence; findings about it need the image the manifest protects (the ACM only
/// enforces a manifest the FIT names), so a loose file gets no finding.
pub fn parse_manifest(
    _ctx: &Ctx,
    node: &Region,
) -> Result<crate::formats::Parsed, crate::error::ParseError> {
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
    Ok(vec![r].into())
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

    /// A microcode update's evidence sits on its node, covers its bytes and protects them only when its
    /// checksums hold.
    #[test]
    fn microcode_evidence_follows_its_checksum() {
        let data = Arc::new(Data::Owned(vec![0u8; 0x1000]));
        let mut u = microcode::Update {
            revision: 1,
            date: "2020-01-01".into(),
            signature: 0x806EA,
            platform_flags: 0,
            data_size: 0x7D0,
            total_size: 0x800,
            checksum_ok: true,
            extended: Vec::new(),
            problems: Vec::new(),
        };
        let good = microcode_node(&data, 0x400, &u);
        let e = &good.evidence[0];
        assert_eq!(
            e.covers,
            crate::finding::Covers::Ranges(vec![(0x400, 0x800)])
        );
        assert_eq!(e.protects(), Some(Protection::Microcode));
        u.checksum_ok = false;
        u.problems.push("checksum does not sum to zero".into());
        let bad = microcode_node(&data, 0x400, &u);
        assert_eq!(bad.evidence[0].status.as_str(), "invalid");
        assert_eq!(bad.evidence[0].protects(), None);
        assert_eq!(bad.notes[0].code, Code::MicrocodeChecksum);
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
