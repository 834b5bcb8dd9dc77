//! UEFI capsules (`.cap`): `EFI_CAPSULE_HEADER` (GUID, `HeaderSize`, `Flags`, `CapsuleImageSize`; UEFI
//! spec 2.10 §8.5.3), FMP capsules (`EFI_FIRMWARE_MANAGEMENT_CAPSULE_HEADER` §23.3) with their embedded
//! drivers and payloads (`EFI_FIRMWARE_MANAGEMENT_CAPSULE_IMAGE_HEADER` versions 1-3), authenticated
//! payloads (`EFI_FIRMWARE_IMAGE_AUTHENTICATION`: monotonic count + `WIN_CERTIFICATE_UEFI_GUID` of type
//! `EFI_CERT_TYPE_PKCS7_GUID`), EDK2's FMP payload header (`MSS1`), and AMI Aptio capsules (whose ROM
//! image starts at `RomImageOffset`, the `u16` after the standard header, as UEFITool reads it).
//!
//! **Signature.** As EDK2's `FmpAuthenticationLibPkcs7` (`FmpAuthenticatedHandlerPkcs7`): the PKCS#7
//! `SignedData` in `CertData` is verified over `payload ‖ MonotonicCount` (the bytes after the
//! authentication header, then the count as a little-endian `u64`), detached; with signed attributes
//! the `messageDigest` must match and the signature covers their DER. The signer certificate is named
//! (`pkcs7` evidence on the payload; `issuer` on `authentication`). The CMS digest must be SHA-256 or stronger. The signer, or a
//! certificate it chains to through the message's own certificates, must be one of the vendor
//! certificates given (the `x509` keys of [`ParseOptions::keys`]), partial chains allowed as in EDK2's
//! `Pkcs7Verify`, along a certification path that satisfies RFC 5280's rules as [`crate::formats::x509`] checks
//! them (CA and keyCertSign on issuers, path length, SHA-256+, RSA-2048+ with e >= 65537, code-signing
//! EKU, validity at [`ParseOptions::at`]). CMS and X.509 are decoded with the RustCrypto `cms` and
//! `x509-cert` crates, RSA PKCS#1 v1.5 with `rsa`.
//!
//! A signature that does not verify is `vendor-signature-invalid` on the payload; a valid signature whose
//! signer has no valid path to the given certificates is `vendor-untrusted` (`vendor-key-weak` for a weak
//! key on the path), naming the certificate and the rule; without any given, the signer is reported as
//! not trusted (attribute `signer`), which is not a finding. The firmware image inside is
//! parsed as a file of its own (a UEFI volume, a BIOS region, ...).
//!
//! [`ParseOptions::keys`]: crate::formats::ParseOptions::keys
//! [`ParseOptions::at`]: crate::formats::ParseOptions::at
#![deny(clippy::arithmetic_side_effects)]

use x509_cert::der::{Decode, Encode};

use crate::error::ParseError;
use crate::finding::{Code, Evidence, Protection, Scheme, Status, Trust};
use crate::formats::keys::{Rules, VendorCert};
use crate::formats::util::{guid, le16, le32, le64, slice};
use crate::formats::x509;
use crate::formats::{Confidence, Ctx, Format, Parsed, Scope};
use crate::region::{Note, Region, RegionKind};

pub const FMP_CAPSULE: &str = "6DCBD5ED-E82D-4C44-BDA1-7194199AD92A";
pub const EFI_CAPSULE: &str = "3B6686BD-0D76-4030-B70E-B5519E2FC5A0";
pub const APTIO_SIGNED: &str = "4A3CA68B-7723-48FB-803D-578CC1FEC44D";
pub const APTIO_UNSIGNED: &str = "14EEBB90-890A-43DB-AED1-5D3C4588A418";
pub const PKCS7_CERT: &str = "4AAFD29D-68DF-49EE-8AA9-347D375665A7";
const WIN_CERT_TYPE_EFI_GUID: u16 = 0x0EF1;
/// Most embedded drivers plus payloads read from one FMP capsule.
const MAX_ITEMS: u64 = 256;

/// A capsule is a release package: its parts are the payload images holding firmware volumes (anchored by
/// those volumes), each covered by the PKCS#7 signature of the payload it lies in.
pub const PACKAGE: crate::formats::package::PackageSpec = crate::formats::package::PackageSpec {
    kind: "uefi-capsule",
    is_package: |_| true,
    parts: crate::formats::package::Parts::Volumes,
    flash_layout: None,
    ubi_volume: None,
    signing: Some(crate::formats::package::Signing::Covering {
        noun: "the capsule",
        key_hint: "give the vendor's certificate or CA in the trust policy (`vendor_keys`) or with --capsule-cert",
    }),
};

fn header(b: &[u8]) -> Option<(String, u64, u32, u64)> {
    let g = guid(slice(b, 0, 16, "capsule guid").ok()?);
    let hs = u64::from(le32(b, 16, "capsule header size").ok()?);
    let flags = le32(b, 20, "capsule flags").ok()?;
    let size = u64::from(le32(b, 24, "capsule image size").ok()?);
    Some((g, hs, flags, size))
}

pub fn probe(b: &[u8]) -> Option<Confidence> {
    let (g, hs, _, size) = header(b)?;
    let len = b.len() as u64;
    if hs < 28 || hs > len || size < hs {
        return None;
    }
    if [FMP_CAPSULE, EFI_CAPSULE, APTIO_SIGNED, APTIO_UNSIGNED].contains(&g.as_str()) {
        return Some(Confidence::High);
    }
    // Another vendor's GUID: only when the declared size is exactly the file's.
    (size == len && hs <= 0x1000).then_some(Confidence::Low)
}

/// The registry entry.
pub const FORMAT: Format = Format {
    name: "capsule",
    description: "UEFI capsule (EFI_CAPSULE_HEADER, FMP with PKCS#7 authentication, AMI Aptio)",
    probe,
    parse,
    scope: Scope::Flash,
    component: Some("bios"),
    policy: None,
    not_inside: &[],
    payloads: &[],
    package: Some(&PACKAGE),
};

// Reviewed: `body_at <= end <= len` (end is CapsuleImageSize clipped to the file) and `base` plus an offset inside the node fits.
#[allow(clippy::arithmetic_side_effects)]
pub fn parse(ctx: &Ctx, node: &Region) -> Result<Parsed, ParseError> {
    let b = node.bytes();
    let base = node.offset;
    let len = b.len() as u64;
    let (g, hs, flags, size) = header(b).ok_or(ParseError::Invalid {
        what: "capsule header",
        offset: base,
        detail: "shorter than EFI_CAPSULE_HEADER".into(),
    })?;
    let aptio = g == APTIO_SIGNED || g == APTIO_UNSIGNED;
    let mut body_at = hs;
    if aptio {
        // AMI: the ROM image starts at RomImageOffset (UEFITool's reading); else at HeaderSize.
        if let Ok(rom) = le16(b, 28, "Aptio RomImageOffset") {
            let rom = u64::from(rom);
            if rom >= 32 && rom <= len {
                body_at = rom;
            }
        }
    }
    let mut out = Vec::new();
    let kind = if g == FMP_CAPSULE {
        "fmp"
    } else if aptio {
        "ami-aptio"
    } else {
        "uefi"
    };
    let mut h = Region::new(
        RegionKind::Header,
        "capsule-header",
        &node.data,
        base,
        body_at,
    )
    .with_attr("capsule-guid", g.clone())
    .with_attr("capsule-type", kind)
    .with_attr("header-size", hs)
    .with_attr("flags", format!("{flags:#010x}"))
    .with_attr("capsule-image-size", size);
    let end = if size > len {
        h.notes.push(Note::new(
            Code::PartitionOutOfBounds,
            format!("capsule: CapsuleImageSize {size:#x} exceeds the {len:#x}-byte file"),
            Some(base + 24),
        ));
        len
    } else {
        size
    };
    out.push(h);
    if g == FMP_CAPSULE {
        out.extend(fmp(ctx, node, body_at, end)?);
    } else if body_at < end {
        let mut p = Region::new(
            RegionKind::Blob,
            "payload",
            &node.data,
            base + body_at,
            end - body_at,
        );
        parse_file(ctx, &mut p);
        out.push(p);
    }
    if end < len {
        out.push(Region::new(
            RegionKind::Blob,
            "trailing",
            &node.data,
            base + end,
            len - end,
        ));
    }
    let mut parsed = Parsed::from(out);
    if g == APTIO_SIGNED {
        // AMI's signature is over the capsule: evidence on the capsule node itself.
        parsed = parsed.evidence(Evidence::on_node(
            Scheme::AmiCapsule,
            Status::NotVerified("AMI's own capsule signature format is not read".into()),
        ));
    }
    Ok(parsed)
}

/// Parses `r` as a file of its own when its format is known.
fn parse_file(ctx: &Ctx, r: &mut Region) {
    crate::formats::descend_file(ctx, r);
}

// Reviewed: the item count is at most MAX_ITEMS (checked before `8 + 8 * items`), the list was sliced out of `b`, item offsets are kept only inside `at + list_len..=end` (checked_add) and `next >= o`.
#[allow(clippy::arithmetic_side_effects)]
fn fmp(ctx: &Ctx, node: &Region, at: u64, end: u64) -> Result<Vec<Region>, ParseError> {
    let b = node.bytes().get(..end as usize).unwrap_or(&[]);
    let base = node.offset;
    let version = le32(b, at, "FMP capsule version")?;
    let drivers = u64::from(le16(b, at + 4, "EmbeddedDriverCount")?);
    let payloads = u64::from(le16(b, at + 6, "PayloadItemCount")?);
    let items = drivers + payloads;
    if items > MAX_ITEMS {
        return Err(ParseError::Limit {
            what: format!("FMP capsule lists {items} items (limit {MAX_ITEMS})"),
            offset: base + at + 4,
        });
    }
    let list_len = 8 + 8 * items;
    slice(b, at, list_len, "FMP ItemOffsetList")?;
    let mut offs = Vec::new();
    for i in 0..items {
        let o = le64(b, at + 8 + 8 * i, "item offset")?;
        let abs = at
            .checked_add(o)
            .filter(|&x| x >= at + list_len && x <= end);
        offs.push(abs.ok_or(ParseError::Invalid {
            what: "FMP item offset",
            offset: base + at + 8 + 8 * i,
            detail: format!("{o:#x} is outside the capsule"),
        })?);
    }
    let mut out = vec![Region::new(
        RegionKind::Header,
        "fmp-header",
        &node.data,
        base + at,
        list_len,
    )
    .with_attr("fmp-version", version)
    .with_attr("embedded-drivers", drivers)
    .with_attr("payloads", payloads)];
    for (i, &o) in offs.iter().enumerate() {
        let next = offs.get(i + 1).copied().filter(|&n| n >= o).unwrap_or(end);
        if (i as u64) < drivers {
            let mut d = Region::new(
                RegionKind::File,
                format!("driver[{i}]"),
                &node.data,
                base + o,
                next - o,
            );
            for (k, v) in crate::formats::pe::describe(d.bytes(), false) {
                d.attrs.insert(k.into(), v);
            }
            out.push(d);
        } else {
            out.push(payload(ctx, node, o, next)?);
        }
    }
    Ok(out)
}

/// An `EFI_FIRMWARE_MANAGEMENT_CAPSULE_IMAGE_HEADER` (versions 1-3) as read.
struct ImageHeader {
    version: u32,
    /// Header size: 32, 40 or 48 bytes by version.
    len: u64,
    type_id: String,
    index: u8,
    image_size: u64,
    vendor_size: u64,
    instance: u64,
    support: u64,
}

/// Reads the FMP capsule image header at `at` of `b` (UEFI spec 2.10 §23.3,
/// `EFI_FIRMWARE_MANAGEMENT_CAPSULE_IMAGE_HEADER`).
fn image_header(b: &[u8], at: u64) -> Result<ImageHeader, ParseError> {
    let version = le32(b, at, "FMP image header version")?;
    let len = match version {
        1 => 32,
        2 => 40,
        _ => 48,
    };
    let h = slice(b, at, len, "FMP image header")?;
    Ok(ImageHeader {
        version,
        len,
        type_id: guid(&h[4..20]),
        index: h[20],
        image_size: u64::from(le32(h, 24, "UpdateImageSize")?),
        vendor_size: u64::from(le32(h, 28, "UpdateVendorCodeSize")?),
        instance: if version >= 2 {
            le64(h, 32, "HardwareInstance")?
        } else {
            0
        },
        support: if version >= 3 {
            le64(h, 40, "ImageCapsuleSupport")?
        } else {
            0
        },
    })
}

// Reviewed: `at < next <= end` (fmp()), the header and image were sliced out of `b` before their ends are used, the authentication length is inside the image (auth_len), the MSS1 header is kept only when `cursor + hlen <= rest` (a 32-bit `hlen` in u64), and `base` plus an offset inside the node fits.
#[allow(clippy::arithmetic_side_effects)]
fn payload(ctx: &Ctx, node: &Region, at: u64, next: u64) -> Result<Region, ParseError> {
    let b = node.bytes();
    let base = node.offset;
    let ImageHeader {
        version,
        len: hdr_len,
        type_id,
        index,
        image_size,
        vendor_size,
        instance,
        support,
    } = image_header(b, at)?;
    let img_at = at + hdr_len;
    let avail = next.saturating_sub(img_at);
    let mut p = Region::new(
        RegionKind::File,
        format!("payload[{type_id}]"),
        &node.data,
        base + at,
        next - at,
    )
    .with_attr("update-image-type-id", type_id.clone())
    .with_attr("update-image-index", index)
    .with_attr("image-header-version", version)
    .with_attr("hardware-instance", instance)
    .with_attr("image-capsule-support", support);
    let mut kids = vec![Region::new(
        RegionKind::Header,
        "image-header",
        &node.data,
        base + at,
        hdr_len,
    )];
    let img_len = if image_size.saturating_add(vendor_size) > avail {
        p.notes.push(Note::new(
            Code::PartitionOutOfBounds,
            format!("FMP payload: image {image_size:#x} + vendor code {vendor_size:#x} bytes exceed the {avail:#x} available"),
            Some(base + at + 24),
        ));
        image_size.min(avail)
    } else {
        image_size
    };
    let img = slice(b, img_at, img_len, "FMP image")?;
    // Authentication: EFI_FIRMWARE_IMAGE_AUTHENTICATION when the v3 header says so, or when a
    // WIN_CERTIFICATE_UEFI_GUID of type PKCS7 is where it would be.
    let auth = auth_len(img).filter(|_| support & 1 == 1 || version < 3 || support == 0);
    let mut cursor = img_at;
    if let Some(alen) = auth {
        kids.push(authentication(
            ctx, node, &mut p, &type_id, img, img_at, alen,
        )?);
        cursor += alen;
    }
    let rest = img_at + img_len;
    if let Some(h) = payload_header(node, cursor, rest)? {
        cursor += h.size;
        kids.push(h);
    }
    image(
        ctx,
        node,
        cursor,
        rest,
        vendor_size.min(next.saturating_sub(rest)),
        &mut kids,
    );
    p.children = kids;
    crate::region::fill_gaps(
        &node.data,
        p.offset,
        p.end(),
        &mut p.children,
        ctx.opts.blank,
        RegionKind::Padding,
    );
    Ok(p)
}

/// The `EFI_FIRMWARE_IMAGE_AUTHENTICATION` node of `img` (UEFI spec 2.10 §23.1: `MonotonicCount`, then a
/// `WIN_CERTIFICATE_UEFI_GUID` of type PKCS#7), its `alen` bytes at `img_at`; the PKCS#7 result becomes
/// `pkcs7` evidence (and notes) on the payload `p`.
// Reviewed: `alen` is at least 32 and inside `img` (auth_len), and `base` plus an offset inside the node fits.
#[allow(clippy::arithmetic_side_effects)]
fn authentication(
    ctx: &Ctx,
    node: &Region,
    p: &mut Region,
    type_id: &str,
    img: &[u8],
    img_at: u64,
    alen: u64,
) -> Result<Region, ParseError> {
    let base = node.offset;
    let mut a = Region::new(
        RegionKind::Header,
        "authentication",
        &node.data,
        base + img_at,
        alen,
    )
    .with_attr("monotonic-count", le64(img, 0, "MonotonicCount")?);
    let cert = &img[32..alen as usize];
    let signed = &img[alen as usize..];
    let mut data = signed.to_vec();
    data.extend_from_slice(&img[..8]);
    let at = ctx.opts.at.unwrap_or_else(std::time::SystemTime::now);
    match verify_pkcs7(cert, &data, &ctx.opts.keys.x509(), at) {
        Ok(v) => {
            let trust = match &v.path {
                Some(Ok(path)) => Trust::Anchored(path.anchor.clone()),
                // Verified with the signer's own certificate, which nothing vouches for.
                None => Trust::SelfSigned,
                Some(Err(e)) => {
                    p.notes.push(Note::new(
                        e.code(),
                        format!("capsule payload {type_id}: {e}"),
                        Some(base + img_at),
                    ));
                    Trust::Unknown
                }
            };
            a.attrs.insert("issuer".into(), v.issuer.clone().into());
            p.evidence.push(
                Evidence::on_node(Scheme::Pkcs7, Status::Valid)
                    .with_signer(v.subject.clone())
                    .with_trust(trust)
                    .with_protection(Protection::VendorPackage),
            );
        }
        Err(e) => {
            p.evidence.push(
                Evidence::on_node(Scheme::Pkcs7, Status::Invalid(e.to_string()))
                    .with_protection(Protection::VendorPackage),
            );
            p.notes.push(Note::new(
                Code::VendorSignatureInvalid,
                format!("capsule payload {type_id}: {e}"),
                Some(base + img_at),
            ))
        }
    }
    Ok(a)
}

/// EDK2's FMP payload header (`FMP_PAYLOAD_HEADER`: `MSS1`, HeaderSize, FwVersion,
/// LowestSupportedVersion) at `cursor`, when one fits before `rest`.
// Reviewed: the header is kept only when `cursor + hlen <= rest` (a 32-bit `hlen` in u64, `rest` inside the node), and `base` plus an offset inside the node fits.
#[allow(clippy::arithmetic_side_effects)]
fn payload_header(node: &Region, cursor: u64, rest: u64) -> Result<Option<Region>, ParseError> {
    let b = node.bytes();
    if slice(b, cursor, 4, "fmp payload header").ok() != Some(&b"MSS1"[..]) {
        return Ok(None);
    }
    let hlen = u64::from(le32(b, cursor + 4, "payload header size")?);
    if hlen < 16 || cursor + hlen > rest {
        return Ok(None);
    }
    Ok(Some(
        Region::new(
            RegionKind::Header,
            "fmp-payload-header",
            &node.data,
            node.offset + cursor,
            hlen,
        )
        .with_attr("fw-version", le32(b, cursor + 8, "FwVersion")?)
        .with_attr(
            "lowest-supported-version",
            le32(b, cursor + 12, "LowestSupportedVersion")?,
        ),
    ))
}

/// The firmware image (`cursor..rest`, parsed as a file of its own) and the `vend` bytes of vendor code
/// after it (`UpdateVendorCodeSize`, UEFI spec 2.10 §23.3).
// Reviewed: `cursor < rest` is checked before `rest - cursor`, and `base` plus an offset inside the node fits.
#[allow(clippy::arithmetic_side_effects)]
fn image(ctx: &Ctx, node: &Region, cursor: u64, rest: u64, vend: u64, kids: &mut Vec<Region>) {
    let base = node.offset;
    if cursor < rest {
        let mut fw = Region::new(
            RegionKind::Blob,
            "image",
            &node.data,
            base + cursor,
            rest - cursor,
        );
        parse_file(ctx, &mut fw);
        kids.push(fw);
    }
    if vend > 0 {
        kids.push(Region::new(
            RegionKind::Blob,
            "vendor-code",
            &node.data,
            base + rest,
            vend,
        ));
    }
}

/// Length of the `EFI_FIRMWARE_IMAGE_AUTHENTICATION` at the start of `img` (8 + `dwLength`), when it is
/// a `WIN_CERTIFICATE_UEFI_GUID` with a PKCS#7 certificate type.
fn auth_len(img: &[u8]) -> Option<u64> {
    let dw = u64::from(le32(img, 8, "dwLength").ok()?);
    let rev = le16(img, 12, "wRevision").ok()?;
    let typ = le16(img, 14, "wCertificateType").ok()?;
    let cert_type = guid(slice(img, 16, 16, "CertType").ok()?);
    let total = dw.checked_add(8)?;
    (rev == 0x0200
        && typ == WIN_CERT_TYPE_EFI_GUID
        && cert_type == PKCS7_CERT
        && dw >= 24
        && total <= img.len() as u64)
        .then_some(total)
}

/// A verified PKCS#7 signature: its signer, and with vendor certificates given, the certification path
/// to one of them or why there is none.
#[derive(Debug, Clone)]
pub struct Verified {
    pub subject: String,
    pub issuer: String,
    pub path: Option<Result<x509::Validated, x509::PathError>>,
}

fn digest(h: &str, data: &[u8]) -> Vec<u8> {
    use sha2::Digest as _;
    match h {
        "SHA256" => sha2::Sha256::digest(data).to_vec(),
        "SHA384" => sha2::Sha384::digest(data).to_vec(),
        _ => sha2::Sha512::digest(data).to_vec(),
    }
}

/// Why a capsule's PKCS#7 signature does not verify (code `vendor-signature-invalid`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Pkcs7Error {
    #[error("PKCS#7 SignedData is malformed: {0}")]
    MalformedSignedData(x509_cert::der::Error),
    #[error("PKCS#7 content type {0} is not signedData")]
    NotSignedData(x509_cert::der::asn1::ObjectIdentifier),
    #[error("PKCS#7 is malformed: {0}")]
    Malformed(x509_cert::der::Error),
    #[error("PKCS#7 carries attached content that is not the signed payload")]
    AttachedContent,
    #[error("PKCS#7 has no SignerInfo")]
    NoSignerInfo,
    #[error("the signer's certificate is not in the PKCS#7 message")]
    NoSignerCertificate,
    #[error("the CMS digest algorithm is {0}: SHA-256 or stronger is required")]
    WeakDigest(&'static str),
    #[error("digest algorithm {0} is not supported")]
    UnsupportedDigest(x509_cert::der::asn1::ObjectIdentifier),
    #[error("the signer key is not RSA; only RSA PKCS#1 v1.5 is verified")]
    NotRsa,
    #[error("signed attributes have no messageDigest")]
    NoMessageDigest,
    #[error("the {0} digest of payload ‖ monotonic count does not match the signed messageDigest: the payload changed after signing")]
    DigestMismatch(&'static str),
    #[error("{0}")]
    Encode(x509_cert::der::Error),
    #[error("{0}")]
    Hash(crate::formats::obmc_tar::UnsupportedHash),
    #[error("the PKCS#7 signature does not verify with the signer's certificate")]
    BadSignature,
}

/// Verifies a DER PKCS#7 `SignedData` (with or without its `ContentInfo` wrapper, as EDK2 accepts) over
/// the detached `data`, and validates the signer's certification path to one of `trusted` at time `at`
/// ([`x509::validate`]).
pub fn verify_pkcs7(
    p7: &[u8],
    data: &[u8],
    trusted: &[&VendorCert],
    at: std::time::SystemTime,
) -> Result<Verified, Pkcs7Error> {
    use cms::content_info::ContentInfo;
    use cms::signed_data::{SignedData, SignerIdentifier};
    const SIGNED_DATA: &str = "1.2.840.113549.1.7.2";
    const MESSAGE_DIGEST: &str = "1.2.840.113549.1.9.4";
    let sd = match ContentInfo::from_der(p7) {
        Ok(ci) if ci.content_type.to_string() == SIGNED_DATA => ci
            .content
            .to_der()
            .and_then(|d| SignedData::from_der(&d))
            .map_err(Pkcs7Error::MalformedSignedData)?,
        Ok(ci) => return Err(Pkcs7Error::NotSignedData(ci.content_type)),
        Err(_) => SignedData::from_der(p7).map_err(Pkcs7Error::Malformed)?,
    };
    let certs: Vec<x509_cert::Certificate> = sd
        .certificates
        .as_ref()
        .map(|s| {
            s.0.iter()
                .filter_map(|c| match c {
                    cms::cert::CertificateChoices::Certificate(c) => Some(c.clone()),
                    _ => None,
                })
                .take(64)
                .collect()
        })
        .unwrap_or_default();
    if let Some(content) = &sd.encap_content_info.econtent {
        if content.value() != data {
            return Err(Pkcs7Error::AttachedContent);
        }
    }
    let si = sd
        .signer_infos
        .0
        .iter()
        .next()
        .ok_or(Pkcs7Error::NoSignerInfo)?;
    let signer = certs
        .iter()
        .find(|c| match &si.sid {
            SignerIdentifier::IssuerAndSerialNumber(ias) => {
                c.tbs_certificate.issuer == ias.issuer
                    && c.tbs_certificate.serial_number == ias.serial_number
            }
            SignerIdentifier::SubjectKeyIdentifier(_) => false,
        })
        .ok_or(Pkcs7Error::NoSignerCertificate)?;
    let h = match x509::hash_of(&si.digest_alg.oid.to_string()) {
        Some(Ok(h)) => h,
        Some(Err(weak)) => return Err(Pkcs7Error::WeakDigest(weak)),
        None => return Err(Pkcs7Error::UnsupportedDigest(si.digest_alg.oid)),
    };
    let key = x509::rsa_key(signer).ok_or(Pkcs7Error::NotRsa)?;
    let message = match &si.signed_attrs {
        Some(attrs) => {
            let md = attrs
                .iter()
                .find(|a| a.oid.to_string() == MESSAGE_DIGEST)
                .and_then(|a| a.values.iter().next())
                .ok_or(Pkcs7Error::NoMessageDigest)?;
            if md.value() != digest(h, data).as_slice() {
                return Err(Pkcs7Error::DigestMismatch(h));
            }
            attrs.to_der().map_err(Pkcs7Error::Encode)?
        }
        None => data.to_vec(),
    };
    if !crate::formats::obmc_tar::verify_rsa(&key, h, &message, si.signature.as_bytes())
        .map_err(Pkcs7Error::Hash)?
    {
        return Err(Pkcs7Error::BadSignature);
    }
    let subject = signer.tbs_certificate.subject.to_string();
    let issuer = signer.tbs_certificate.issuer.to_string();
    // The certification path: signer → issuers among the message's certificates → a vendor
    // certificate (partial chains, as EDK2 allows), with RFC 5280's rules (x509.rs).
    let path = (!trusted.is_empty()).then(|| {
        let anchors: Vec<(x509_cert::Certificate, Rules)> = trusted
            .iter()
            .filter_map(|t| {
                x509_cert::Certificate::from_der(&t.der)
                    .ok()
                    .map(|c| (c, t.rules))
            })
            .collect();
        x509::validate(signer, &certs, &anchors, at)
    });
    Ok(Verified {
        subject,
        issuer,
        path,
    })
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)] // fixtures built from small constants
mod tests {

    use super::*;

    fn all_notes(t: &Region) -> Vec<crate::region::Note> {
        let mut v = Vec::new();
        t.walk(&mut |r| v.extend(r.notes.iter().cloned()));
        v
    }
    use crate::formats::ParseOptions;
    use crate::input::Data;
    use std::sync::Arc;

    fn tree(b: Vec<u8>) -> Region {
        crate::formats::parse_image(Arc::new(Data::Owned(b)), &ParseOptions::default())
    }

    /// An FMP capsule with one v3 payload whose authentication carries `p7`.
    fn fmp_with(p7: &[u8], items: u16) -> Vec<u8> {
        let mut c = vec![0u8; 0x20];
        c[..16].copy_from_slice(&[
            0xED, 0xD5, 0xCB, 0x6D, 0x2D, 0xE8, 0x44, 0x4C, 0xBD, 0xA1, 0x71, 0x94, 0x19, 0x9A,
            0xD9, 0x2A,
        ]);
        c[16..20].copy_from_slice(&0x20u32.to_le_bytes());
        c.extend_from_slice(&1u32.to_le_bytes());
        c.extend_from_slice(&0u16.to_le_bytes());
        c.extend_from_slice(&items.to_le_bytes());
        c.extend_from_slice(&16u64.to_le_bytes());
        let mut img = 9u64.to_le_bytes().to_vec();
        img.extend_from_slice(&((24 + p7.len()) as u32).to_le_bytes());
        img.extend_from_slice(&0x0200u16.to_le_bytes());
        img.extend_from_slice(&0x0EF1u16.to_le_bytes());
        img.extend_from_slice(&[
            0x9D, 0xD2, 0xAF, 0x4A, 0xDF, 0x68, 0xEE, 0x49, 0x8A, 0xA9, 0x34, 0x7D, 0x37, 0x56,
            0x65, 0xA7,
        ]);
        img.extend_from_slice(p7);
        img.extend_from_slice(b"payload bytes");
        let mut h = 3u32.to_le_bytes().to_vec();
        h.extend_from_slice(&[0x11; 16]);
        h.extend_from_slice(&[1, 0, 0, 0]);
        h.extend_from_slice(&(img.len() as u32).to_le_bytes());
        h.extend_from_slice(&0u32.to_le_bytes());
        h.extend_from_slice(&0u64.to_le_bytes());
        h.extend_from_slice(&1u64.to_le_bytes());
        c.extend_from_slice(&h);
        c.extend_from_slice(&img);
        let total = c.len() as u32;
        c[24..28].copy_from_slice(&total.to_le_bytes());
        c
    }

    #[test]
    fn hostile_pkcs7_and_fmp_headers_are_findings_not_panics() {
        for p7 in [
            &[][..],
            &[0x30, 0x84, 0xFF, 0xFF, 0xFF, 0xFF, 0x06][..],
            &[
                0x30, 0x80, 0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, 0x02,
            ][..],
            &[0x30; 64][..],
        ] {
            assert!(verify_pkcs7(p7, b"x", &[], std::time::SystemTime::now()).is_err());
            let t = tree(fmp_with(p7, 1));
            assert_eq!(t.attr_str("format"), Some("capsule"));
            let notes = all_notes(&t);
            assert!(
                notes.iter().any(|n| n.code == Code::VendorSignatureInvalid),
                "{notes:?}"
            );
        }
        // 65535 items: a limit, not an allocation.
        let t = tree(fmp_with(&[0x30, 0x00], 0xFFFF));
        assert!(!all_notes(&t).is_empty());
        // Every truncation of a capsule parses without a panic.
        let c = fmp_with(&[0x30, 0x03, 0x02, 0x01, 0x00], 1);
        for cut in 0..c.len() {
            let _ = tree(c[..cut].to_vec());
        }
    }
}
