//! Every finding code fwscan can emit, in one place. Codes are a contract: scripts, SARIF `ruleId`s and
//! JSON `code` fields use them. Add new ones freely; never rename or reuse one.

use serde::{Deserialize, Serialize};

/// Severity of a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    /// Informational: does not change the verdict.
    Info,
    /// A problem that makes the image fail.
    Warning,
    /// A problem that makes the image fail, likely tampering.
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

macro_rules! codes {
    ($( $(#[$m:meta])* $variant:ident = $code:literal, $sev:ident, $desc:literal; )*) => {
        /// A stable finding code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum Code { $( $(#[$m])* $variant, )* }

        impl Code {
            /// Every code, in declaration order.
            pub const ALL: &'static [Code] = &[ $( Code::$variant, )* ];

            /// The kebab-case code string.
            pub fn as_str(self) -> &'static str {
                match self { $( Code::$variant => $code, )* }
            }

            /// One-sentence description (SARIF rule `shortDescription`, README table).
            pub fn description(self) -> &'static str {
                match self { $( Code::$variant => $desc, )* }
            }

            /// Default severity.
            pub fn severity(self) -> Severity {
                match self { $( Code::$variant => Severity::$sev, )* }
            }

            /// Looks a code up by its string.
            pub fn parse(s: &str) -> Option<Code> {
                match s { $( $code => Some(Code::$variant), )* _ => None }
            }
        }
    };
}

codes! {
    // --- baseline comparison -------------------------------------------------------------------------
    RegionModified = "region-modified", Error, "A static region's bytes differ from the baseline.";
    RegionAdded = "region-added", Error, "A region exists in the image but not in the baseline.";
    RegionRemoved = "region-removed", Error, "A region of the baseline is missing from the image.";
    RegionMoved = "region-moved", Warning, "A region is present with the same content but at another position.";
    SizeMismatch = "size-mismatch", Error, "The image or a region has a different size than in the baseline.";
    NotBlank = "not-blank", Error, "A region that must be erased (all blank bytes) contains data.";
    ModuleModified = "module-modified", Error, "A firmware module (FFS file) differs from the baseline.";
    ModuleAdded = "module-added", Error, "A firmware module (FFS file) was added.";
    ModuleRemoved = "module-removed", Error, "A firmware module (FFS file) was removed.";
    ModuleMoved = "module-moved", Warning, "A firmware module (FFS file) moved to another position in its volume.";
    FileModified = "file-modified", Error, "A file in an embedded filesystem differs from the baseline.";
    FileAdded = "file-added", Error, "A file was added to an embedded filesystem.";
    FileRemoved = "file-removed", Error, "A file was removed from an embedded filesystem.";
    VariableModified = "variable-modified", Error, "A pinned NVRAM or environment variable differs from the baseline.";
    SvnRollback = "svn-rollback", Error, "A node's security version number (ME partition, Boot Guard KM/BPM, capsule lowest-supported-version) is below the baseline's: an older, vulnerable version of signed firmware.";
    SvnMismatch = "svn-mismatch", Error, "A node's security version number differs from the exact value its baseline (or CoRIM reference value) pins.";
    FormatMismatch = "format-mismatch", Error, "The image's detected format or layout differs from the baseline's.";
    // --- parsing and self-consistency ----------------------------------------------------------------
    Unparsed = "unparsed", Warning, "A structure could not be parsed; it is kept as an opaque region and still hashed.";
    DecompressFailed = "decompress-failed", Error, "A compressed section could not be decompressed; it is compared by its compressed digest.";
    LimitExceeded = "limit-exceeded", Error, "A safety limit (nesting depth, decompressed size, entry count) was reached while parsing.";
    PartitionOverlap = "partition-overlap", Error, "Two flash regions or partitions overlap.";
    PartitionOutOfBounds = "partition-out-of-bounds", Error, "A flash region or partition extends past the end of the image.";
    LayoutMismatch = "layout-mismatch", Error, "A flash layout disagrees with the content found at its partitions.";
    PaddingNotEmpty = "padding-not-empty", Warning, "Bytes between known structures are not blank.";
    FvHeaderChecksum = "fv-header-checksum", Error, "A firmware volume header checksum is wrong.";
    FfsHeaderChecksum = "ffs-header-checksum", Error, "An FFS file header checksum is wrong.";
    FfsDataChecksum = "ffs-data-checksum", Error, "An FFS file data checksum is wrong.";
    GuidedSectionCrc32 = "guided-section-crc32", Error, "A CRC32 GUID-defined section's checksum does not match its data.";
    DuplicateGuid = "duplicate-guid", Warning, "Two files in one firmware volume share a GUID.";
    CodeOutsideFfs = "code-outside-ffs", Error, "Executable code (PE/TE header) was found outside any FFS file.";
    GbeChecksum = "gbe-checksum", Warning, "A GbE NVM bank with a valid signature has a wrong checksum (words 0x00-0x3F must sum to 0xBABA).";
    FitHashMismatch = "fit-hash-mismatch", Error, "A FIT image's embedded hash does not match its data.";
    FipHashMismatch = "fip-hash-mismatch", Error, "An image in an Arm TF-A firmware image package does not match the hash in its trusted-board-boot certificate.";
    AmdDirectoryChecksum = "amd-directory-checksum", Error, "An AMD PSP, BIOS or combo directory's Fletcher-32 checksum is wrong.";
    UimageHeaderCrc = "uimage-header-crc", Error, "A legacy uImage header CRC is wrong.";
    UimageDataCrc = "uimage-data-crc", Error, "A legacy uImage data CRC is wrong.";
    EnvCrc = "env-crc", Error, "A U-Boot environment CRC is wrong.";
    EnvShell = "env-shell", Error, "A boot-relevant environment variable gives a shell (init=/bin/sh, single, ...).";
    SecureBootTestKey = "secure-boot-test-key", Error, "A Secure Boot PK or KEK certificate is a known test key.";
    DbxMissing = "dbx-missing", Warning, "The Secure Boot forbidden-signature database (dbx) is missing or empty.";
    KnownThreat = "known-threat", Error, "A known implant or vulnerable component matched a signature rule.";
    // --- Intel platform structures (FIT, microcode, ACM, Boot Guard) ------------------------------------
    FitInvalid = "fit-invalid", Warning, "The Intel Firmware Interface Table is malformed: bad checksum, or an entry outside the image, overlapping another or not pointing to its structure.";
    MicrocodeChecksum = "microcode-checksum", Error, "A microcode update's checksum (or its extended signature table's) is wrong.";
    AcmSignatureInvalid = "acm-signature-invalid", Error, "The startup ACM's RSA signature does not verify with the public key in its header.";
    BootguardSignatureInvalid = "bootguard-signature-invalid", Error, "A Boot Guard key manifest or boot policy manifest signature does not verify.";
    BootguardKmBpmKeyMismatch = "bootguard-km-bpm-key-mismatch", Error, "The boot policy manifest is signed by a key that the key manifest does not name.";
    BootguardIbbMismatch = "bootguard-ibb-mismatch", Error, "An IBB digest of the boot policy manifest does not match the IBB segments in the image.";
    BootguardUnsignedIbbGap = "bootguard-unsigned-ibb-gap", Error, "The reset vector or the FIT is not inside a hashed IBB segment of the boot policy manifest.";
    // --- ASPEED root of trust (docs/bmc.md) --------------------------------------------------------------
    BmcRotSignatureInvalid = "bmc-rot-signature-invalid", Error, "An ASPEED boot image's RoT signature does not verify with the keys of the OTP image (changed signed bytes, a missing or moved RoT header, or a header that disagrees with the OTP configuration): the boot ROM refuses it.";
    BmcRotKeyRetired = "bmc-rot-key-retired", Error, "An ASPEED boot image verifies only with an OTP key that the OTP configuration retires: the boot ROM refuses it.";
    // --- older BMC file systems and Supermicro images (docs/bmc.md) --------------------------------------
    FsChecksum = "fs-checksum", Error, "A file system's own checksum is wrong (the cramfs superblock CRC-32, a romfs superblock or file header checksum, a ZIP member's CRC-32).";
    SmcImageChecksum = "smc-image-checksum", Error, "A Supermicro BMC image's checksum (in its 64-byte footer or the [img] index) does not match its bytes: the bootloader or updater refuses it.";
    SmcFooterChecksum = "smc-footer-checksum", Error, "A Supermicro BMC image footer's own checksum, or the ATENs_FW footer's CRC-32 over the images, is wrong.";
    // --- U-Boot verified boot (docs/bmc.md) -------------------------------------------------------------
    FitSignatureInvalid = "fit-signature-invalid", Error, "A FIT configuration or image signature does not verify with the keys of the U-Boot control DTB or the trust policy (changed signed bytes, a signature that leaves out what the configuration loads), or is not made by the key U-Boot requires: U-Boot refuses it.";
    FitUnsigned = "fit-unsigned", Error, "A FIT configuration or image carries no signature while the U-Boot control DTB (or the trust policy) requires one.";
    FitKeyUntrusted = "fit-key-untrusted", Error, "A FIT signature is made by a key that neither the U-Boot control DTB of the image nor the trust policy holds.";
    // --- Intel ME / CSME / SPS (docs/intel-me.md) ------------------------------------------------------
    FptHeaderChecksum = "fpt-header-checksum", Error, "An ME region's $FPT partition table header checksum is wrong.";
    CpdHeaderChecksum = "cpd-header-checksum", Error, "A CSE code partition directory ($CPD) header checksum is wrong.";
    MeManifestSignatureInvalid = "me-manifest-signature-invalid", Error, "An ME/CSME/SPS partition manifest's RSA signature does not verify with its embedded public key.";
    MeManifestUntrustedKey = "me-manifest-untrusted-key", Error, "An ME/CSME/SPS partition manifest is signed by a key that is not a known Intel key.";
    MeModuleHashMismatch = "me-module-hash-mismatch", Error, "An ME module or module metadata file does not match the hash its signed manifest lists.";
    // --- inputs, manifests and trust -----------------------------------------------------------------
    ReadError = "read-error", Error, "The image could not be read (missing, unreadable, not a regular file, changed during the read).";
    ManifestInvalid = "manifest-invalid", Error, "The manifest is malformed, oversized or not of schema v1.";
    ManifestUnsigned = "manifest-unsigned", Error, "The manifest has no signature; it is refused unless verification is explicitly waived.";
    UnknownFirmware = "unknown-firmware", Error, "No approved manifest matches this image's firmware.";
    // --- signatures, trust policy, anti-rollback (manifest refusals; exit 2) ---------------------------
    ManifestTooLarge = "manifest-too-large", Error, "The manifest file is larger than the size limit; it was not read.";
    SignatureMalformed = "signature-malformed", Error, "A manifest signature file is truncated, oversized or not in minisign format.";
    ManifestSignatureInvalid = "manifest-signature-invalid", Error, "A manifest signature does not verify (manifest or trusted comment changed after signing, or a non-strict Ed25519 signature).";
    ManifestUntrustedKey = "manifest-untrusted-key", Error, "A manifest is signed by a key that is not in the trust policy.";
    ManifestKeyIdMismatch = "manifest-key-id-mismatch", Error, "The key id in a signature file names another key than the one that made the signature.";
    ManifestKeyRevoked = "manifest-key-revoked", Error, "A manifest is signed by a key the trust policy revokes.";
    ManifestKeyNotAllowed = "manifest-key-not-allowed", Error, "A manifest is signed by a trusted key that may not sign for its product or component.";
    ManifestThresholdNotMet = "manifest-threshold-not-met", Error, "Fewer distinct trusted keys signed the manifest than the trust policy requires.";
    ManifestLegacySignature = "manifest-legacy-signature", Error, "A manifest signature uses the legacy non-prehashed Ed algorithm (accepted only when legacy signatures are explicitly allowed).";
    ManifestExpired = "manifest-expired", Error, "The manifest's expiry time has passed (at the evaluation time).";
    ManifestNotYetValid = "manifest-not-yet-valid", Error, "A CoRIM's validity (rim-validity or signature validity) starts after the evaluation time.";
    ManifestRollback = "manifest-rollback", Error, "The manifest's sequence is below the policy minimum or below a sequence already accepted.";
    ManifestCommentMismatch = "manifest-comment-mismatch", Error, "A signature's trusted comment disagrees with the manifest body (product, component, version, sequence or digest).";
    KeyExpired = "key-expired", Error, "A manifest is signed by a trusted key whose expiry time has passed.";
    TrustPolicyInvalid = "trust-policy-invalid", Error, "The trust policy is missing, oversized or invalid.";
    TrustStateInvalid = "trust-state-invalid", Error, "The anti-rollback state file is corrupt or cannot be written.";
    TrustPolicyInsecure = "trust-policy-insecure", Error, "The trust policy (or a directory above it) could have been written by a user other than its owner or root, or is reached through a symbolic link.";
    TrustStateInsecure = "trust-state-insecure", Error, "The anti-rollback state file (or a directory above it) could have been written by a user other than its owner or root, or is reached through a symbolic link.";
    ManifestProductMismatch = "manifest-product-mismatch", Error, "The manifest is for another product than the one the scan was bound to (--product).";
    AmbiguousManifest = "ambiguous-manifest", Error, "Two or more approved manifests match this image equally well; none was guessed.";
    InternalError = "internal-error", Error, "fwscan failed on this input (a bug, reported on stderr); it could not be decided.";
    FileChanged = "file-changed", Error, "The image file was truncated, grown or replaced between listing and reading, or during the read.";
    // --- vendor signatures of release packages (OpenBMC tarballs) --------------------------------------
    VendorSignatureInvalid = "vendor-signature-invalid", Error, "A vendor signature in a release package does not verify (the file it covers changed after signing, or the signature or key is missing or malformed).";
    VendorUntrusted = "vendor-untrusted", Error, "A release package (or an ASPEED boot image) is signed, but by no vendor key of the trust policy (or of the OTP image).";
    AnchorNotFound = "anchor-not-found", Error, "A part of a baseline anchored by identity (a release package's image file, a firmware payload's volumes) was not found in the image.";
    // --- fail-closed evidence (issue 19) -----------------------------------------------------------------
    NotCovered = "not-covered", Error, "Non-blank bytes that no verified evidence accounts for: not compared equal to a verified baseline part at the place the hardware uses it, not per-machine by structure, not declared per-machine by the baseline.";
    AnchorAmbiguous = "anchor-ambiguous", Error, "A second copy of a baselined part lies elsewhere in the image; only the copy at the place the hardware uses (and the copies the baseline declares) is compared.";
    CopyMissing = "copy-missing", Error, "A copy of a baseline part that the baseline declares (an A/B image set, a recovery copy: `baseline --copy`) is not at its declared place.";
    UnrecognizedImage = "unrecognized-image", Error, "Nothing in the image was recognised (empty, all blank, or no known structure): nothing could be checked, so it cannot be called clean.";
    PackageAmbiguous = "package-ambiguous", Error, "A release package names one member twice (after normalising `./`, pax `path` and GNU long names), or lacks a member its layout requires; it is refused.";
    VendorKeyWeak = "vendor-key-weak", Error, "A vendor key is too weak to be trusted (RSA under 2048 bits or with a public exponent below 65537).";
    // --- others' reference values (issue 24, docs/corim.md) ------------------------------------------------
    ReferenceMissing = "reference-missing", Error, "A reference value of another producer's CoRIM names nothing in the image (no FFS file with its GUID, no node at its path), names it by a key fwscan cannot locate, or carries no digest fwscan can compute: the dump lacks something the vendor shipped, or the value was not checked.";
    // --- boot evidence: TCG event logs (issue 23, docs/eventlog.md) --------------------------------------
    PcrMismatch = "pcr-mismatch", Error, "A PCR the TPM reports differs from the value the event log replays to: the log is incomplete or was edited.";
    MeasurementUnexplained = "measurement-unexplained", Warning, "The event log measured firmware code that no node of the dump holds: the dump is not what booted.";
    PcrPredictionMismatch = "pcr-prediction-mismatch", Error, "The PCR 0 recomputed from the dump (`eventlog --predict`) differs from the TPM's value, or from the log's replay: the dump did not produce the measured boot.";
    EventlogInvalid = "eventlog-invalid", Error, "The TCG event log is malformed, truncated or over a size limit; it could not be replayed.";
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Code {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Code, D::Error> {
        let s = String::deserialize(d)?;
        Code::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown finding code `{s}`")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_kebab_case_and_round_trip() {
        let mut seen = HashSet::new();
        for c in Code::ALL {
            let s = c.as_str();
            assert!(seen.insert(s), "duplicate code {s}");
            assert!(
                s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                "{s} is not kebab-case"
            );
            assert_eq!(Code::parse(s), Some(*c));
            assert!(c.description().ends_with('.'));
        }
    }
}
