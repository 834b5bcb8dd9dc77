//! Evidence: what a signature or digest check established about bytes of an image (issue 19).
//!
//! Parsers verify signatures and digests (an OpenBMC file's RSA signature, a capsule's PKCS#7, Boot Guard
//! manifests, ME manifests and module hashes, ...). Each result is one typed [`Evidence`] on the node it
//! was found on: which [`Scheme`], what it [`Covers`] (the node, or byte ranges such as Boot Guard IBB
//! segments), its [`Status`] (valid, invalid or not verified, with why), who signed and how far the signer
//! is [`Trust`]ed (anchored in a key of the trust policy or the hardware, self-signed, unknown), and the
//! [`Protection`] class it gives the bytes it covers when it holds. Every floor above reads this record;
//! none parses it back from strings. Coverage (`inspect --coverage`) is a fold over it, and the JSON
//! renderer writes it on each node as `"evidence": [{"scheme", "status", "why", "trust", "key", "signer",
//! "covers", "protection"}]`.

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

/// A signature or digest scheme. Lower-case, kebab-case names; schemes other issues add follow the same
/// spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Scheme {
    /// A minisign signature of a baseline manifest.
    Minisign,
    /// An OpenBMC update tarball's per-file RSA signature (`openssl dgst -sign`).
    OpenbmcRsa,
    /// A UEFI capsule's PKCS#7 `EFI_FIRMWARE_IMAGE_AUTHENTICATION`.
    Pkcs7,
    /// A Boot Guard key manifest's signature.
    BootguardKm,
    /// A Boot Guard boot policy manifest's signature.
    BootguardBpm,
    /// A Boot Guard IBB digest of the boot policy manifest over IBB segments.
    BootguardIbb,
    /// An Intel authenticated code module's RSA signature.
    IntelAcm,
    /// A microcode update's checksum (the CPU verifies Intel's signature on load).
    Microcode,
    /// An ME/CSME/SPS partition manifest's RSA signature.
    MeManifest,
    /// An ME module's hash listed in its signed manifest.
    MeModuleHash,
    /// A FIT image's `hash-N` node (a digest inside the FIT it describes: protects nothing).
    FitHash,
    /// A FIT image's or configuration's `signature-N` node (not verified: fwscan holds no FIT keys).
    FitSignature,
    /// A legacy uImage's header or data CRC (inside the image it describes: protects nothing).
    UimageCrc,
    /// An AMD PSP/BIOS directory entry's signature.
    AmdPsp,
    /// A TF-A firmware image package entry's hash in its trusted-board-boot certificate (whose signature
    /// is not verified: protects nothing).
    FipHash,
    /// AMI Aptio's own capsule signature (not read: recorded as not verified).
    AmiCapsule,
    /// An ASPEED AST2600/AST10x0 boot image's RoT signature, checked as the boot ROM checks it against
    /// the keys of an OTP image.
    AspeedRot,
    /// A CoRIM's COSE signature (`#6.18` COSE_Sign1 or `#6.98` COSE_Sign), by a trust-policy `cose` key.
    Cose,
}

impl Scheme {
    pub const ALL: &'static [Scheme] = &[
        Scheme::Minisign,
        Scheme::OpenbmcRsa,
        Scheme::Pkcs7,
        Scheme::BootguardKm,
        Scheme::BootguardBpm,
        Scheme::BootguardIbb,
        Scheme::IntelAcm,
        Scheme::Microcode,
        Scheme::MeManifest,
        Scheme::MeModuleHash,
        Scheme::FitHash,
        Scheme::FitSignature,
        Scheme::UimageCrc,
        Scheme::AmdPsp,
        Scheme::FipHash,
        Scheme::AmiCapsule,
        Scheme::AspeedRot,
        Scheme::Cose,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Minisign => "minisign",
            Scheme::OpenbmcRsa => "openbmc-rsa",
            Scheme::Pkcs7 => "pkcs7",
            Scheme::BootguardKm => "bootguard-km",
            Scheme::BootguardBpm => "bootguard-bpm",
            Scheme::BootguardIbb => "bootguard-ibb",
            Scheme::IntelAcm => "intel-acm",
            Scheme::Microcode => "microcode",
            Scheme::MeManifest => "me-manifest",
            Scheme::MeModuleHash => "me-module-hash",
            Scheme::FitHash => "fit-hash",
            Scheme::FitSignature => "fit-signature",
            Scheme::UimageCrc => "uimage-crc",
            Scheme::AmdPsp => "amd-psp",
            Scheme::FipHash => "fip-hash",
            Scheme::AmiCapsule => "ami-capsule",
            Scheme::AspeedRot => "aspeed-rot",
            Scheme::Cose => "cose",
        }
    }

    pub fn parse(s: &str) -> Option<Scheme> {
        Scheme::ALL.iter().copied().find(|x| x.as_str() == s)
    }

    /// A vendor's signature over a release package's files (what `baseline` requires of a package).
    pub fn is_vendor_package(self) -> bool {
        matches!(self, Scheme::OpenbmcRsa | Scheme::Pkcs7)
    }
}

impl Serialize for Scheme {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Whether the check held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// The signature or digest verified.
    Valid,
    /// It did not verify: why.
    Invalid(String),
    /// It could not be checked (unknown algorithm, no key given, outside the image): why.
    NotVerified(String),
}

impl Status {
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Valid => "valid",
            Status::Invalid(_) => "invalid",
            Status::NotVerified(_) => "not-verified",
        }
    }

    pub fn why(&self) -> Option<&str> {
        match self {
            Status::Valid => None,
            Status::Invalid(w) | Status::NotVerified(w) => Some(w),
        }
    }

    pub fn is_valid(&self) -> bool {
        *self == Status::Valid
    }
}

/// How far the signer is trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// The key chains to an anchor: a key of the trust policy (its id), a known Intel key, a fused hash.
    Anchored(String),
    /// Verified with a key the signed object carries itself and nothing pins.
    SelfSigned,
    /// Not known (a digest without a signature, or no key to judge).
    Unknown,
}

impl Trust {
    pub fn as_str(&self) -> &'static str {
        match self {
            Trust::Anchored(_) => "anchored",
            Trust::SelfSigned => "self-signed",
            Trust::Unknown => "unknown",
        }
    }

    /// The anchoring key's id, if anchored.
    pub fn key(&self) -> Option<&str> {
        match self {
            Trust::Anchored(k) => Some(k),
            _ => None,
        }
    }
}

/// What the evidence covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Covers {
    /// The node it is on, all of its bytes.
    Node,
    /// Byte ranges of the image, `(offset, size)` (Boot Guard IBB segments).
    Ranges(Vec<(u64, u64)>),
}

/// A protection class of `inspect --coverage`, strongest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protection {
    /// Inside an Initial Boot Block segment whose digest a verified Boot Policy Manifest carries, under a
    /// Key Manifest whose key a `bootguard-km-hash` of the trust policy pins (the chipset's fused hash).
    BootguardIbb,
    /// A startup/BIOS ACM whose RSA signature verified.
    Acm,
    /// A microcode update (signed by Intel, verified by the CPU on load).
    Microcode,
    /// Covered by a verified ME/CSME/SPS partition manifest signed by a known Intel key.
    MeManifest,
    /// Covered by the vendor signature of a release package.
    VendorPackage,
    /// Inside a verified IBB under a Key Manifest whose key nothing pins: consistent in itself, not rooted
    /// in hardware.
    BootguardSelfSigned,
    /// Static bytes that only an fwscan baseline protects.
    BaselineOnly,
    /// Per-machine or mutable data, free space, blank bytes: nothing protects them.
    None,
}

impl Protection {
    /// Every protection, strongest first (the overlap order).
    pub const ALL: [Protection; 8] = [
        Protection::BootguardIbb,
        Protection::Acm,
        Protection::Microcode,
        Protection::MeManifest,
        Protection::VendorPackage,
        Protection::BootguardSelfSigned,
        Protection::BaselineOnly,
        Protection::None,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Protection::BootguardIbb => "bootguard-ibb",
            Protection::Acm => "acm",
            Protection::Microcode => "microcode",
            Protection::MeManifest => "me-manifest",
            Protection::VendorPackage => "vendor-package",
            Protection::BootguardSelfSigned => "bootguard-self-signed",
            Protection::BaselineOnly => "baseline-only",
            Protection::None => "none",
        }
    }

    pub fn parse(s: &str) -> Option<Protection> {
        Protection::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// One verified (or failed) signature or digest check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    pub scheme: Scheme,
    pub covers: Covers,
    pub status: Status,
    /// Who signed (a certificate subject, a key hash, a `KeyType`), where the scheme names one.
    pub signer: Option<String>,
    pub trust: Trust,
    /// The coverage class the covered bytes get when the check is valid; `None`: the check protects
    /// nothing by itself (a CRC, a digest the bytes carry themselves).
    pub protection: Option<Protection>,
}

impl Evidence {
    /// Evidence on the node it is attached to.
    pub fn on_node(scheme: Scheme, status: Status) -> Evidence {
        Evidence {
            scheme,
            covers: Covers::Node,
            status,
            signer: None,
            trust: Trust::Unknown,
            protection: None,
        }
    }

    pub fn with_trust(mut self, trust: Trust) -> Evidence {
        self.trust = trust;
        self
    }

    pub fn with_signer(mut self, signer: impl Into<String>) -> Evidence {
        self.signer = Some(signer.into());
        self
    }

    pub fn with_protection(mut self, p: Protection) -> Evidence {
        self.protection = Some(p);
        self
    }

    pub fn with_ranges(mut self, ranges: Vec<(u64, u64)>) -> Evidence {
        self.covers = Covers::Ranges(ranges);
        self
    }

    /// The protection the covered bytes get: only from a valid check.
    pub fn protects(&self) -> Option<Protection> {
        self.protection.filter(|_| self.status.is_valid())
    }
}

impl Serialize for Evidence {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("scheme", &self.scheme)?;
        m.serialize_entry("status", self.status.as_str())?;
        if let Some(w) = self.status.why() {
            m.serialize_entry("why", w)?;
        }
        m.serialize_entry("trust", self.trust.as_str())?;
        if let Some(k) = self.trust.key() {
            m.serialize_entry("key", k)?;
        }
        if let Some(sg) = &self.signer {
            m.serialize_entry("signer", sg)?;
        }
        match &self.covers {
            Covers::Node => m.serialize_entry("covers", "node")?,
            Covers::Ranges(r) => {
                let v: Vec<serde_json::Value> = r
                    .iter()
                    .map(|(o, l)| serde_json::json!({"offset": o, "size": l}))
                    .collect();
                m.serialize_entry("covers", &v)?;
            }
        }
        if let Some(p) = self.protection {
            m.serialize_entry("protection", &p)?;
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_round_trip_and_only_valid_evidence_protects() {
        for s in Scheme::ALL {
            assert_eq!(Scheme::parse(s.as_str()), Some(*s));
        }
        let e = Evidence::on_node(Scheme::MeModuleHash, Status::Valid)
            .with_protection(Protection::MeManifest);
        assert_eq!(e.protects(), Some(Protection::MeManifest));
        let bad = Evidence {
            status: Status::Invalid("hash differs".into()),
            ..e.clone()
        };
        assert_eq!(bad.protects(), None);
        let j = serde_json::to_value(&bad).unwrap();
        assert_eq!(j["status"], "invalid");
        assert_eq!(j["why"], "hash differs");
        assert_eq!(j["covers"], "node");
        let r = Evidence::on_node(Scheme::BootguardIbb, Status::Valid)
            .with_ranges(vec![(16, 32)])
            .with_trust(Trust::Anchored("oem".into()));
        let j = serde_json::to_value(&r).unwrap();
        assert_eq!(j["covers"][0]["size"], 32);
        assert_eq!(j["key"], "oem");
    }

    /// The inspect JSON schema (its node definition lives in the manifest schema) names exactly the schemes
    /// and protections there are: a scheme added here without the schema, or the reverse, fails.
    #[test]
    fn the_schema_lists_every_scheme_and_protection() {
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../../schemas/manifest-v1.schema.json")).unwrap();
        let props = &schema["$defs"]["node"]["properties"]["evidence"]["items"]["properties"];
        let list = |v: &serde_json::Value| -> Vec<String> {
            v["enum"]
                .as_array()
                .expect("an enum")
                .iter()
                .map(|x| x.as_str().unwrap().to_string())
                .collect()
        };
        let schemes: Vec<String> = Scheme::ALL.iter().map(|s| s.as_str().into()).collect();
        assert_eq!(list(&props["scheme"]), schemes);
        let protections: Vec<String> = Protection::ALL.iter().map(|p| p.as_str().into()).collect();
        assert_eq!(list(&props["protection"]), protections);
    }
}
