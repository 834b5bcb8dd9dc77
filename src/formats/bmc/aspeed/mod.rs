//! ASPEED AST2600/AST10x0 root of trust (socsec's secure-boot images): the boot image at the start of the
//! boot flash (a stand-alone signed SPL, or the first partition of a BMC flash) split at its RoT header
//! into the signed region, the AES data, the signature and what follows (U-Boot proper), and the boot
//! ROM's signature check repeated offline against the keys of an OTP image.
//!
//! - [`otp`]: the OTP image (`otptool`/`socsec` format): SoC, key order, signing mode, retired keys, keys.
//! - [`rot`]: the RoT header, the chain-of-trust info, and the check itself.
//!
//! The parser ([`FORMAT`]) only lays the image out. The check is a whole-tree pass ([`annotate`]) anchored
//! where the SoC boots, offset 0 of the image, so that an image whose header was removed or moved is
//! refused like the ROM would refuse it, not silently parsed as something else. It runs when the key ring
//! holds OTP images (`--aspeed-otp`, or `aspeed-otp` keys of the trust policy) and the image is BMC
//! firmware or unrecognised; without an OTP the signed region gets `aspeed-rot` evidence "not verified".
#![deny(clippy::arithmetic_side_effects)]

pub mod otp;
pub mod rot;

use crate::error::ParseError;
use crate::finding::{Code, Evidence, Scheme, Status, Trust};
use crate::formats::keys::VendorKey;
use crate::formats::{Confidence, Ctx, Parsed};
use crate::region::{Note, Region, RegionKind};

/// Room socsec leaves for the signature (it pads every signature to 512 bytes).
const SIG_SLOT: u64 = 512;

pub fn probe(b: &[u8]) -> Option<Confidence> {
    rot::OFFSETS
        .iter()
        .find_map(|&at| rot::plausible(b, at))
        .map(|_| Confidence::High)
}

/// The registry entry.
pub const FORMAT: crate::formats::Format = crate::formats::Format {
    name: "aspeed-rot",
    description:
        "ASPEED AST2600/AST10x0 secure-boot image (RoT header, signed SPL, signature, next stage)",
    probe,
    parse,
    scope: crate::formats::Scope::File(Confidence::High),
    component: Some("bmc"),
    policy: Some(crate::region::Policy::Static),
    not_inside: &["aspeed-rot", "bmc"],
    payloads: &[],
    package: None,
};

pub fn parse(ctx: &Ctx, node: &Region) -> Result<Parsed, ParseError> {
    let b = node.bytes();
    let h = rot::OFFSETS
        .iter()
        .find_map(|&at| rot::plausible(b, at))
        .ok_or(ParseError::Invalid {
            what: "ASPEED RoT header",
            offset: node.offset,
            detail: "no RoT header at 0x20 or 0x400".into(),
        })?;
    let at = |o: u32| node.offset.saturating_add(u64::from(o));
    let size = u64::from(h.sign_image_size);
    let mut signed = Region::new(RegionKind::Blob, "signed", &node.data, node.offset, size)
        .with_attr("format", "aspeed-spl");
    if let Some(v) = super::uboot::version(&b[..h.sign_image_size as usize]) {
        signed.attrs.insert("version".into(), v.into());
    }
    let mut children = vec![signed];
    let sig_off = u64::from(h.signature_offset);
    if h.aes_data_offset != 0 && h.aes_data_offset >= h.sign_image_size {
        let len = sig_off.saturating_sub(u64::from(h.aes_data_offset));
        if len > 0 {
            children.push(Region::new(
                RegionKind::Header,
                "aes-data",
                &node.data,
                at(h.aes_data_offset),
                len,
            ));
        }
    }
    let sig_end = sig_off.saturating_add(SIG_SLOT).min(node.size);
    children.push(Region::new(
        RegionKind::Header,
        "signature",
        &node.data,
        at(h.signature_offset),
        sig_end.saturating_sub(sig_off),
    ));
    // What follows: the next stage (U-Boot proper, a FIT) after blank bytes, parsed by its own format.
    let rest = &b[sig_end as usize..];
    if let Some(first) = rest.iter().position(|&c| c != ctx.opts.blank) {
        let start = sig_end.saturating_add(first as u64);
        let mut next = Region::new(
            RegionKind::Blob,
            "next-stage",
            &node.data,
            node.offset.saturating_add(start),
            node.size.saturating_sub(start),
        );
        crate::formats::descend(ctx, &mut next, Some(&FORMAT), None);
        children.push(next);
    }
    let mut p = Parsed::from(children)
        .attr("rot-header-offset", format!("{:#x}", h.at))
        .attr("sign-image-size", h.sign_image_size)
        .attr("signature-offset", format!("{:#x}", h.signature_offset))
        .attr("revision", h.revision());
    if h.enc_offset != 0 {
        p = p
            .attr("encrypted-from", format!("{:#x}", h.enc_offset))
            .attr("aes-data-offset", format!("{:#x}", h.aes_data_offset));
    }
    if let Some(c) = rot::cot(b, &h) {
        p = p
            .attr("cot-algorithm", c.algorithm)
            .attr("cot-data-offset", format!("{:#x}", c.data_offset))
            .attr("cot-data-sha256", c.data_sha256);
    }
    Ok(p)
}

/// The OTP images of the key ring, parsed (each was validated when the ring was built).
fn otps(ctx: &Ctx) -> Vec<(String, Result<otp::Otp, otp::OtpError>)> {
    ctx.opts
        .keys
        .for_scheme(Scheme::AspeedRot)
        .filter_map(|k| match &k.key {
            VendorKey::AspeedOtp(bytes) => Some((k.id.clone(), otp::parse(bytes))),
            _ => None,
        })
        .collect()
}

/// The `aspeed-rot` node the SoC boots: at the image's offset 0, the root or a first node below it.
fn boot_node(root: &mut Region) -> Option<&mut Region> {
    let start = root.offset;
    let mut n = root;
    // Bounded by the tree's depth (itself bounded by the parse context).
    loop {
        if n.attr_str("format") == Some(FORMAT.name) {
            return Some(n);
        }
        n = n
            .children
            .iter_mut()
            .find(|c| c.offset == start && c.size > 0 && c.space == crate::region::Space::Image)?;
    }
}

/// The whole-tree pass: repeats the boot ROM's check at the image's offset 0 (module documentation).
pub fn annotate(ctx: &Ctx, root: &mut Region) {
    let otps = otps(ctx);
    // BMC firmware, or nothing recognised (a boot image whose header was destroyed): with an OTP image
    // it is what the SoC would refuse. BIOS images are never judged by a BMC's OTP.
    let bmc = match root.attr_str("format") {
        None | Some("raw") => true,
        Some(f) => crate::formats::component_of(f) == FORMAT.component,
    };
    let has_boot = boot_node(root).is_some();
    if !has_boot && (otps.is_empty() || !bmc) {
        return;
    }
    let (evidence, note) = if otps.is_empty() {
        (
            Evidence::on_node(
                Scheme::AspeedRot,
                Status::NotVerified(
                    "no ASPEED OTP image given (--aspeed-otp, or an aspeed-otp key of the trust policy): the boot ROM's check was not repeated".into(),
                ),
            ),
            None,
        )
    } else {
        judge(root.bytes(), &otps)
    };
    // The signed region of the boot image, else the first partition at offset 0, else the image.
    let target: &mut Region = if has_boot {
        // `boot_node` found it just above: the tree did not change since.
        let Some(n) = boot_node(root) else { return };
        match n.children.iter().position(|c| c.name == "signed") {
            Some(i) => &mut n.children[i],
            None => n,
        }
    } else {
        match root
            .children
            .iter()
            .position(|c| c.offset == root.offset && c.kind == RegionKind::Partition)
        {
            Some(i) => &mut root.children[i],
            None => root,
        }
    };
    let offset = target.offset;
    if let Some((code, msg)) = note {
        target.notes.push(Note::new(code, msg, Some(offset)));
    }
    target.evidence.push(evidence);
}

/// The evidence and finding of the check against every OTP image of the ring: the best outcome wins
/// (valid, then retired key, then changed image, then unknown signer).
fn judge(
    image: &[u8],
    otps: &[(String, Result<otp::Otp, otp::OtpError>)],
) -> (Evidence, Option<(Code, String)>) {
    let mut results: Vec<(u8, String, rot::Outcome, Option<&otp::Otp>)> = Vec::new();
    for (id, o) in otps {
        match o {
            Ok(o) => {
                let out = rot::verify(image, o);
                let rank = match &out {
                    rot::Outcome::Valid { .. } => 0,
                    rot::Outcome::Retired { .. } => 1,
                    rot::Outcome::Invalid(_) => 2,
                    rot::Outcome::Untrusted(_) => 3,
                    rot::Outcome::NotVerified(_) => 4,
                };
                results.push((rank, id.clone(), out, Some(o)));
            }
            Err(e) => results.push((
                5,
                id.clone(),
                rot::Outcome::NotVerified(format!("OTP image refused: {e}")),
                None,
            )),
        }
    }
    results.sort_by_key(|r| r.0);
    let Some((_, id, out, o)) = results.first() else {
        return (
            Evidence::on_node(
                Scheme::AspeedRot,
                Status::NotVerified("no OTP image".into()),
            ),
            None,
        );
    };
    let name = |o: Option<&otp::Otp>| {
        o.map(|o| {
            format!(
                "{} OTP image {id} (sha256 {})",
                o.soc.name(),
                &o.sha256[..16]
            )
        })
        .unwrap_or_else(|| format!("OTP image {id}"))
    };
    let others = if results.len() > 1 {
        format!(" ({} OTP images tried)", results.len())
    } else {
        String::new()
    };
    match out {
        rot::Outcome::Valid { id: kid, kind } => (
            Evidence::on_node(Scheme::AspeedRot, Status::Valid)
                .with_signer(format!("key {kid} ({kind}) of the {}", name(*o)))
                .with_trust(Trust::Anchored(format!("aspeed-otp:{id}"))),
            None,
        ),
        rot::Outcome::Retired { id: kid } => {
            let m = format!(
                "the boot image verifies only with key {kid} of the {}, which the OTP retires: the boot ROM refuses it{others}",
                name(*o)
            );
            (
                Evidence::on_node(Scheme::AspeedRot, Status::Invalid(m.clone())),
                Some((Code::BmcRotKeyRetired, m)),
            )
        }
        rot::Outcome::Invalid(why) => {
            let m = format!("{why} ({}){others}", name(*o));
            (
                Evidence::on_node(Scheme::AspeedRot, Status::Invalid(m.clone())),
                Some((Code::BmcRotSignatureInvalid, m)),
            )
        }
        rot::Outcome::Untrusted(why) => {
            let m = format!("{why} ({}){others}", name(*o));
            (
                Evidence::on_node(Scheme::AspeedRot, Status::Invalid(m.clone())),
                Some((Code::VendorUntrusted, m)),
            )
        }
        rot::Outcome::NotVerified(why) => (
            Evidence::on_node(
                Scheme::AspeedRot,
                Status::NotVerified(format!("{why} ({}){others}", name(*o))),
            ),
            None,
        ),
    }
}
