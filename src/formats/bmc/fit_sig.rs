//! U-Boot verified boot repeated offline: FIT configuration and image signatures checked, as U-Boot checks
//! them at boot, against the public keys of its control device tree (`/signature/key-NAME`) and the `fit`
//! keys of the trust policy.
//!
//! - Keys ([`keys_from_dtb`], [`key_from_pem`]): RSA (`rsa,num-bits`, `rsa,modulus`, `rsa,exponent`,
//!   2048-4096 bits) and ECDSA (`ecdsa,curve` prime256v1/secp384r1, `ecdsa,x-point`, `ecdsa,y-point`), with
//!   `required = "conf"` / `"image"` and the `/signature` node's `required-mode` (`all`, or `any`).
//! - Configuration signatures ([`config_regions`]): the bytes U-Boot hashes are regions of the FIT's
//!   structure block computed by `fdt_find_regions` over the signature's `hashed-nodes` (every property of a
//!   listed node except `data`, `data-size`, `data-position`, `data-offset`; the begin/end tags of its
//!   direct subnodes; the `FDT_END` tag), then the first `hashed-strings[1]` bytes of the strings block.
//!   A signature whose `hashed-nodes` leaves out an image the configuration loads (or its hash nodes, the
//!   root or the configuration itself) protects nothing there: it is refused even when it verifies.
//! - Image signatures: over the image's data (embedded or external).
//! - Algorithms ([`verify`]): `sha1`/`sha256`/`sha384`/`sha512` with `rsa2048`/`rsa3072`/`rsa4096`,
//!   PKCS#1 v1.5 or PSS (`padding = "pss"`, any salt length as U-Boot accepts it), and `ecdsa256` /
//!   `ecdsa384` (raw `r || s`).
//!
//! The whole-tree pass ([`annotate`]) gathers the keys of every control device tree of the image and of the
//! policy, then judges every FIT of the image (module documentation of `docs/bmc.md`, "U-Boot verified
//! boot"). Everything is bounded: at most [`MAX_KEYS`] keys, [`MAX_HASHED_NODES`] hashed nodes,
//! [`MAX_SIGS`] signatures per node, 4096-bit RSA; nothing here panics.
#![deny(clippy::arithmetic_side_effects)]

use crate::finding::{Code, Evidence, Scheme, Status, Trust};
use crate::formats::fdt::{self, Fdt};
use crate::formats::keys::{FitKeyData, VendorKey};
use crate::formats::util::be32;
use crate::formats::Ctx;
use crate::region::{Note, Region};

/// Most keys read from one device tree (and from all sources together).
pub const MAX_KEYS: usize = 64;
/// Most entries of a `hashed-nodes` list (U-Boot's `IMAGE_MAX_HASHED_NODES`).
pub const MAX_HASHED_NODES: usize = 100;
/// Most `signature-N` nodes looked at per configuration or image.
pub const MAX_SIGS: usize = 16;
/// U-Boot's path buffer in `fit_config_check_sig`: a longer node path is an error.
const PATH_MAX: usize = 200;
/// Deepest tree `fdt_find_regions` walks.
const MAX_DEPTH: usize = 32;
/// The properties a configuration signature never covers (the data lies outside the tree or is hashed).
const EXCLUDED_PROPS: [&str; 4] = ["data", "data-size", "data-position", "data-offset"];

/// Which signatures a key is required for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Required {
    Conf,
    Image,
}

/// A public key's numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Material {
    /// RSA: modulus (big-endian, `bits / 8` bytes) and public exponent.
    Rsa { n: Vec<u8>, e: u64, bits: usize },
    /// ECDSA: curve size in bytes (32: P-256, 48: P-384) and the affine point.
    Ecdsa { size: usize, x: Vec<u8>, y: Vec<u8> },
}

impl Material {
    fn describe(&self) -> String {
        match self {
            Material::Rsa { bits, .. } => format!("RSA-{bits}"),
            Material::Ecdsa { size: 32, .. } => "ECDSA P-256".into(),
            Material::Ecdsa { .. } => "ECDSA P-384".into(),
        }
    }
}

/// Why a key cannot verify anything (as U-Boot's `rsa_mod_exp_sw` and ECDSA verifiers refuse it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    #[error("unsupported ECDSA curve `{0}`")]
    Curve(String),
    #[error("{0} of the wrong size")]
    PointSize(&'static str),
    #[error("no rsa,num-bits (nor ecdsa,curve)")]
    NoNumBits,
    #[error("rsa,exponent is {0} bytes, not 8")]
    ExponentSize(usize),
    #[error("rsa,num-bits {0}: U-Boot verifies 2048 to 4096-bit keys")]
    NumBits(u64),
    #[error("rsa,modulus longer than rsa,num-bits")]
    ModulusTooLong,
    #[error("rsa,modulus is not a {0}-bit number")]
    ModulusBits(usize),
    #[error("rsa,modulus is even")]
    EvenModulus,
    #[error("rsa,exponent {0} is not an odd number of at least 3")]
    Exponent(u64),
    #[error("RSA exponent wider than 64 bits")]
    WideExponent,
    #[error("not a PEM RSA, P-256 or P-384 public key")]
    NotPem,
    #[error("public key algorithm {0} is not RSA or EC")]
    Algorithm(String),
    #[error("EC point of {0} bytes: P-256 or P-384 only")]
    PointLength(usize),
    #[error("bad EC point")]
    BadPoint,
    #[error("not an ECDSA key")]
    NotEcdsa,
    #[error("ECDSA point is not on {0}")]
    OffCurve(&'static str),
}

/// Where a key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A control device tree of the image (the node's path in the tree).
    ControlDtb(String),
    /// A `fit` key of the trust policy (or `--fit-key`): its id.
    Policy(String),
}

/// One public key U-Boot (or the policy) verifies FIT signatures with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FitKey {
    /// The node name without `key-` (what a signature's `key-name-hint` names), or the policy id.
    pub name: String,
    pub required: Option<Required>,
    /// The key, or why it cannot be used (a bogus size, exponent 0, a point off the curve): such a key
    /// verifies nothing, so a signature it is required for fails, as in U-Boot.
    pub material: Result<Material, KeyError>,
    pub source: Source,
}

/// The keys of a control device tree and whether `required-mode = "any"`.
pub fn keys_from_dtb(f: &Fdt, source: &str) -> (Vec<FitKey>, bool) {
    let Some(sig) = f.root.child("signature") else {
        return (Vec::new(), false);
    };
    let any = f.str_prop(sig, "required-mode").as_deref() == Some("any");
    let keys = sig
        .children
        .iter()
        .take(MAX_KEYS)
        .map(|k| {
            let name = k.name.strip_prefix("key-").unwrap_or(&k.name).to_string();
            let required = match f.str_prop(k, "required").as_deref() {
                Some("conf") => Some(Required::Conf),
                Some("image") => Some(Required::Image),
                _ => None,
            };
            FitKey {
                name,
                required,
                material: dtb_material(f, k),
                source: Source::ControlDtb(format!("{source}:/signature/{}", k.name)),
            }
        })
        .collect();
    (keys, any)
}

/// The key numbers of one `/signature/key-NAME` node, checked as U-Boot's `rsa_mod_exp_sw` and ECDSA
/// verifiers check them.
fn dtb_material(f: &Fdt, k: &fdt::Node) -> Result<Material, KeyError> {
    if let Some(curve) = f.str_prop(k, "ecdsa,curve") {
        let size = match curve.as_str() {
            "prime256v1" | "secp256r1" => 32usize,
            "secp384r1" => 48,
            other => return Err(KeyError::Curve(other.to_string())),
        };
        let x = k.prop("ecdsa,x-point").map(|p| f.value(p)).unwrap_or(&[]);
        let y = k.prop("ecdsa,y-point").map(|p| f.value(p)).unwrap_or(&[]);
        let x = fixed(x, size).ok_or(KeyError::PointSize("ecdsa,x-point"))?;
        let y = fixed(y, size).ok_or(KeyError::PointSize("ecdsa,y-point"))?;
        let m = Material::Ecdsa { size, x, y };
        ec_key(&m)?;
        return Ok(m);
    }
    let bits = f.u64_prop(k, "rsa,num-bits").ok_or(KeyError::NoNumBits)?;
    let n = k.prop("rsa,modulus").map(|p| f.value(p)).unwrap_or(&[]);
    // The exponent is 64 bits; absent means 65537 (U-Boot's default).
    let e = match k.prop("rsa,exponent") {
        None => 65537,
        Some(p) => {
            let v = f.value(p);
            let mut a = [0u8; 8];
            if v.len() != 8 {
                return Err(KeyError::ExponentSize(v.len()));
            }
            a.copy_from_slice(v);
            u64::from_be_bytes(a)
        }
    };
    rsa_material(n, e, bits)
}

/// `v` as exactly `size` bytes (leading zero bytes may be dropped or added).
fn fixed(v: &[u8], size: usize) -> Option<Vec<u8>> {
    let skip = v.iter().take_while(|&&c| c == 0).count();
    let v = v.get(skip..)?;
    if v.len() > size {
        return None;
    }
    let mut out = vec![0u8; size.checked_sub(v.len())?];
    out.extend_from_slice(v);
    Some(out)
}

/// An RSA key as U-Boot accepts it: 2048 to 4096 bits, a modulus of exactly that many bits, an odd
/// exponent of at least 3.
fn rsa_material(n: &[u8], e: u64, bits: u64) -> Result<Material, KeyError> {
    if !(2048..=4096).contains(&bits) || bits % 8 != 0 {
        return Err(KeyError::NumBits(bits));
    }
    let bits = bits as usize;
    let n = fixed(n, bits / 8).ok_or(KeyError::ModulusTooLong)?;
    if n.first().is_none_or(|&c| c & 0x80 == 0) {
        return Err(KeyError::ModulusBits(bits));
    }
    if n.last().is_none_or(|&c| c & 1 == 0) {
        return Err(KeyError::EvenModulus);
    }
    if e < 3 || e % 2 == 0 {
        return Err(KeyError::Exponent(e));
    }
    Ok(Material::Rsa { n, e, bits })
}

/// A PEM public key (`BEGIN PUBLIC KEY` RSA or EC, `BEGIN RSA PUBLIC KEY`) as key numbers.
pub fn key_from_pem(pem: &str) -> Result<Material, KeyError> {
    use rsa::pkcs1::DecodeRsaPublicKey;
    use rsa::pkcs8::DecodePublicKey;
    use rsa::traits::PublicKeyParts;
    let rsa_key = rsa::RsaPublicKey::from_public_key_pem(pem.trim())
        .or_else(|_| rsa::RsaPublicKey::from_pkcs1_pem(pem.trim()));
    if let Ok(k) = rsa_key {
        let e = k.e().to_bytes_be();
        if e.len() > 8 {
            return Err(KeyError::WideExponent);
        }
        let mut a = [0u8; 8];
        a[8usize.saturating_sub(e.len())..].copy_from_slice(&e);
        return rsa_material(
            &k.n().to_bytes_be(),
            u64::from_be_bytes(a),
            k.n().bits() as u64,
        );
    }
    use x509_cert::der::DecodePem;
    let spki = x509_cert::spki::SubjectPublicKeyInfoOwned::from_pem(pem.trim())
        .map_err(|_| KeyError::NotPem)?;
    if spki.algorithm.oid.to_string() != "1.2.840.10045.2.1" {
        return Err(KeyError::Algorithm(spki.algorithm.oid.to_string()));
    }
    let sec1 = spki.subject_public_key.raw_bytes();
    let m = match sec1.len() {
        65 => ec_material(sec1, 32)?,
        97 => ec_material(sec1, 48)?,
        n => return Err(KeyError::PointLength(n)),
    };
    ec_key(&m)?;
    Ok(m)
}

fn ec_material(sec1: &[u8], size: usize) -> Result<Material, KeyError> {
    // Uncompressed: 04 || x || y.
    let x = sec1
        .get(1..size.saturating_add(1))
        .ok_or(KeyError::BadPoint)?;
    let y = sec1
        .get(size.saturating_add(1)..size.saturating_mul(2).saturating_add(1))
        .ok_or(KeyError::BadPoint)?;
    Ok(Material::Ecdsa {
        size,
        x: x.to_vec(),
        y: y.to_vec(),
    })
}

enum EcKey {
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
}

fn ec_key(m: &Material) -> Result<EcKey, KeyError> {
    let Material::Ecdsa { size, x, y } = m else {
        return Err(KeyError::NotEcdsa);
    };
    let mut sec1 = vec![4u8];
    sec1.extend_from_slice(x);
    sec1.extend_from_slice(y);
    match size {
        32 => p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1)
            .map(EcKey::P256)
            .map_err(|_| KeyError::OffCurve("P-256")),
        _ => p384::ecdsa::VerifyingKey::from_sec1_bytes(&sec1)
            .map(EcKey::P384)
            .map_err(|_| KeyError::OffCurve("P-384")),
    }
}

/// A signature algorithm (`sha256,rsa2048`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Algo {
    pub hash: &'static str,
    /// RSA key bits, or ECDSA curve bytes.
    pub crypto: Crypto,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crypto {
    Rsa(usize),
    Ecdsa(usize),
}

/// Parses U-Boot's `algo` string.
pub fn algo(s: &str) -> Option<Algo> {
    let (h, c) = s.split_once(',')?;
    let hash = match h {
        "sha1" => "sha1",
        "sha256" => "sha256",
        "sha384" => "sha384",
        "sha512" => "sha512",
        _ => return None,
    };
    let crypto = match c {
        "rsa2048" => Crypto::Rsa(2048),
        "rsa3072" => Crypto::Rsa(3072),
        "rsa4096" => Crypto::Rsa(4096),
        "ecdsa256" => Crypto::Ecdsa(32),
        "ecdsa384" => Crypto::Ecdsa(48),
        _ => return None,
    };
    Some(Algo { hash, crypto })
}

/// The digest of `regions`, concatenated, under `hash`.
pub fn digest(hash: &str, regions: &[&[u8]]) -> Vec<u8> {
    fn run<D: sha2::Digest>(regions: &[&[u8]]) -> Vec<u8> {
        let mut d = D::new();
        for r in regions {
            d.update(r);
        }
        d.finalize().to_vec()
    }
    match hash {
        "sha1" => run::<sha1::Sha1>(regions),
        "sha384" => run::<sha2::Sha384>(regions),
        "sha512" => run::<sha2::Sha512>(regions),
        _ => run::<sha2::Sha256>(regions),
    }
}

/// The DER DigestInfo prefix of PKCS#1 v1.5 for `hash`.
fn digest_info(hash: &str) -> &'static [u8] {
    match hash {
        "sha1" => &[
            0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04,
            0x14,
        ],
        "sha384" => &[
            0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x02, 0x05, 0x00, 0x04, 0x30,
        ],
        "sha512" => &[
            0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x03, 0x05, 0x00, 0x04, 0x40,
        ],
        _ => &[
            0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x01, 0x05, 0x00, 0x04, 0x20,
        ],
    }
}

/// The result of one signature against one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    Valid,
    /// The key made a signature (its padding decodes) over other bytes.
    Changed(String),
    /// Not this key's signature (or it cannot be checked with this key).
    NotThisKey(String),
}

/// Verifies `sig` over `digest` (of `algo.hash`) with `key`, as U-Boot's `rsa_verify_key` /
/// `ecdsa_verify` do. `pss` selects RSASSA-PSS.
pub fn verify(algo: Algo, pss: bool, key: &Material, hashed: &[u8], sig: &[u8]) -> Check {
    match (algo.crypto, key) {
        (Crypto::Rsa(abits), Material::Rsa { n, e, bits }) => {
            if abits != *bits {
                return Check::NotThisKey(format!(
                    "algorithm wants RSA-{abits}, the key is RSA-{bits}"
                ));
            }
            if sig.len() != n.len() {
                return Check::NotThisKey(format!(
                    "signature is {} bytes, the key {} bytes",
                    sig.len(),
                    n.len()
                ));
            }
            let nn = rsa::BigUint::from_bytes_be(n);
            let s = rsa::BigUint::from_bytes_be(sig);
            if s >= nn {
                return Check::NotThisKey("signature is not below the modulus".into());
            }
            let m = s.modpow(&rsa::BigUint::from(*e), &nn).to_bytes_be();
            let Some(em) = fixed(&m, n.len()) else {
                return Check::NotThisKey("bad RSA result".into());
            };
            if pss {
                pss_check(algo.hash, &em, hashed)
            } else {
                pkcs1_check(algo.hash, &em, hashed)
            }
        }
        (Crypto::Ecdsa(size), m @ Material::Ecdsa { size: ksize, .. }) => {
            use p256::ecdsa::signature::hazmat::PrehashVerifier;
            if size != *ksize || sig.len() != size.saturating_mul(2) {
                return Check::NotThisKey(format!(
                    "ECDSA signature of {} bytes for a {} key",
                    sig.len(),
                    m.describe()
                ));
            }
            let ok = match ec_key(m) {
                Ok(EcKey::P256(vk)) => p256::ecdsa::Signature::from_slice(sig)
                    .is_ok_and(|s| vk.verify_prehash(hashed, &s).is_ok()),
                Ok(EcKey::P384(vk)) => p384::ecdsa::Signature::from_slice(sig)
                    .is_ok_and(|s| vk.verify_prehash(hashed, &s).is_ok()),
                Err(e) => return Check::NotThisKey(e.to_string()),
            };
            if ok {
                Check::Valid
            } else {
                // ECDSA cannot tell another key from changed bytes.
                Check::NotThisKey("ECDSA signature does not verify".into())
            }
        }
        (_, m) => Check::NotThisKey(format!(
            "a {} key cannot verify this algorithm",
            m.describe()
        )),
    }
}

fn pkcs1_check(hash: &str, em: &[u8], hashed: &[u8]) -> Check {
    let info = digest_info(hash);
    let t_len = info.len().saturating_add(hashed.len());
    let Some(ps_len) = em.len().checked_sub(t_len.saturating_add(3)) else {
        return Check::NotThisKey("key too small for the digest".into());
    };
    let head_ok = em.first() == Some(&0)
        && em.get(1) == Some(&1)
        && em
            .get(2..ps_len.saturating_add(2))
            .is_some_and(|p| p.iter().all(|&c| c == 0xFF))
        && em.get(ps_len.saturating_add(2)) == Some(&0)
        && em.get(ps_len.saturating_add(3)..em.len().saturating_sub(hashed.len())) == Some(info);
    if !head_ok {
        return Check::NotThisKey("PKCS#1 v1.5 padding does not decode with this key".into());
    }
    let tail = em
        .get(em.len().saturating_sub(hashed.len())..)
        .unwrap_or(&[]);
    if tail == hashed {
        Check::Valid
    } else {
        Check::Changed(format!(
            "the key's signature is over digest {}, the signed bytes hash to {}",
            hex::encode(tail),
            hex::encode(hashed)
        ))
    }
}

/// MGF1 with `hash`.
fn mgf1(hash: &str, seed: &[u8], len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut counter = 0u32;
    while out.len() < len {
        let c = counter.to_be_bytes();
        out.extend_from_slice(&digest(hash, &[seed, &c]));
        counter = counter.wrapping_add(1);
    }
    out.truncate(len);
    out
}

/// EMSA-PSS verification with any salt length (U-Boot's `padding_pss_verify`).
fn pss_check(hash: &str, em: &[u8], hashed: &[u8]) -> Check {
    let h_len = hashed.len();
    let Some(db_len) = em.len().checked_sub(h_len.saturating_add(1)) else {
        return Check::NotThisKey("key too small for PSS".into());
    };
    if em.last() != Some(&0xBC) || db_len == 0 {
        return Check::NotThisKey("PSS trailer 0xbc missing with this key".into());
    }
    let masked = &em[..db_len];
    let h = &em[db_len..db_len.saturating_add(h_len)];
    // emBits = modBits - 1: the leftmost bit of the encoded message is zero.
    if masked[0] & 0x80 != 0 {
        return Check::NotThisKey("PSS leftmost bit set".into());
    }
    let mask = mgf1(hash, h, db_len);
    let mut db: Vec<u8> = masked.iter().zip(&mask).map(|(a, b)| a ^ b).collect();
    db[0] &= 0x7F;
    let Some(one) = db.iter().position(|&c| c != 0) else {
        return Check::NotThisKey("PSS data block is all zero".into());
    };
    if db[one] != 1 {
        return Check::NotThisKey("PSS data block separator missing with this key".into());
    }
    let salt = &db[one.saturating_add(1)..];
    let hp = digest(hash, &[&[0u8; 8], hashed, salt]);
    if hp == h {
        Check::Valid
    } else {
        // The block decoded, so the trailer and separator came from this key: the bytes changed.
        Check::Changed("PSS hash does not match the signed bytes".into())
    }
}

/// Why the signed bytes of a signature cannot be given (U-Boot refuses the signature too).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum NoBytes {
    #[error(transparent)]
    Regions(#[from] RegionError),
    #[error("configuration node name contains `@` (U-Boot refuses it)")]
    ConfAt,
    #[error("signature node name contains `@` (U-Boot refuses it)")]
    SigAt,
    #[error("the image data lies outside the FIT")]
    Outside,
}

/// Why the bytes of a configuration signature cannot be computed (U-Boot refuses the signature too).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegionError {
    #[error("no hashed-nodes property")]
    NoHashedNodes,
    #[error("hashed-nodes is not NUL-terminated")]
    Unterminated,
    #[error("hashed-nodes lists more than {MAX_HASHED_NODES} nodes")]
    TooManyNodes,
    #[error("hashed-strings is shorter than 8 bytes")]
    BadStrings,
    #[error("hashed-strings size {0:#x} exceeds the strings block ({1:#x})")]
    StringsOutOfBounds(u32, u32),
    #[error("device tree structure: {0} at {1:#x}")]
    Structure(&'static str, usize),
    #[error("too many hash regions ({0})")]
    TooManyRegions(usize),
}

/// The header fields the regions need: (off_struct, size_struct, off_strings, size_strings).
fn blocks(b: &[u8]) -> Result<(usize, usize, usize, usize), RegionError> {
    let w = |o: u64| {
        be32(b, o, "fdt header")
            .map(|v| v as usize)
            .map_err(|_| RegionError::Structure("short header", 0))
    };
    let (off_struct, off_strings) = (w(8)?, w(12)?);
    let (size_strings, size_struct) = (w(32)?, w(36)?);
    let ok = |o: usize, s: usize| o.checked_add(s).is_some_and(|e| e <= b.len());
    if !ok(off_struct, size_struct) || !ok(off_strings, size_strings) {
        return Err(RegionError::Structure("blocks outside the blob", 0));
    }
    Ok((off_struct, size_struct, off_strings, size_strings))
}

/// The `hashed-nodes` list of a signature node.
pub fn hashed_nodes(f: &Fdt, sig: &fdt::Node) -> Result<Vec<String>, RegionError> {
    let p = sig.prop("hashed-nodes").ok_or(RegionError::NoHashedNodes)?;
    let v = f.value(p);
    if v.is_empty() {
        return Err(RegionError::NoHashedNodes);
    }
    if v.last() != Some(&0) {
        return Err(RegionError::Unterminated);
    }
    let list: Vec<String> = v[..v.len().saturating_sub(1)]
        .split(|&c| c == 0)
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    if list.len() > MAX_HASHED_NODES {
        return Err(RegionError::TooManyNodes);
    }
    Ok(list)
}

/// The byte ranges `(offset, size)` of the blob `b` a configuration signature over `inc` (node paths)
/// covers, as U-Boot's `fdt_find_regions` (without the string table) followed by the `hashed-strings`
/// region computes them.
pub fn config_regions(
    b: &[u8],
    inc: &[String],
    strings_size: Option<u32>,
) -> Result<Vec<(usize, usize)>, RegionError> {
    let (base, size_struct, off_strings, size_strings) = blocks(b)?;
    let sb = &b[base..base.saturating_add(size_struct)];
    let strings = &b[off_strings..off_strings.saturating_add(size_strings)];
    let max_regions = inc.len().saturating_mul(7).saturating_add(20);
    let word = |o: usize| -> Result<u32, RegionError> {
        sb.get(o..o.saturating_add(4))
            .map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
            .ok_or(RegionError::Structure("truncated token", o))
    };
    let align = |v: usize| v.saturating_add(3) & !3;
    let mut regions: Vec<(usize, usize)> = Vec::new();
    let mut count = 0usize;
    let mut stack = [0u8; MAX_DEPTH];
    let mut depth: isize = -1;
    let mut want = 0u8;
    let mut start: Option<usize> = None;
    let mut path = String::new();
    let mut next = 0usize;
    let mut expect_end = false;
    loop {
        let offset = next;
        let tag = word(offset)?;
        let mut stop_at;
        let include;
        match tag {
            1 => {
                // FDT_BEGIN_NODE
                let name_at = offset.saturating_add(4);
                let rest = sb.get(name_at..).unwrap_or(&[]);
                let len = rest
                    .iter()
                    .position(|&c| c == 0)
                    .ok_or(RegionError::Structure("unterminated node name", name_at))?;
                next = align(name_at.saturating_add(len).saturating_add(1));
                stop_at = next;
                if expect_end {
                    return Err(RegionError::Structure("second root node", offset));
                }
                depth = depth.saturating_add(1);
                let d = usize::try_from(depth).unwrap_or(0);
                if d >= MAX_DEPTH {
                    return Err(RegionError::Structure("tree too deep", offset));
                }
                let name = String::from_utf8_lossy(&rest[..len]);
                if d == 0 && !name.is_empty() {
                    return Err(RegionError::Structure("named root node", offset));
                }
                if path.len().saturating_add(2).saturating_add(len) >= PATH_MAX {
                    return Err(RegionError::Structure("node path too long", offset));
                }
                if path != "/" {
                    path.push('/');
                }
                path.push_str(&name);
                stack[d] = want;
                if want == 1 {
                    stop_at = offset;
                }
                if inc.contains(&path) {
                    want = 2;
                } else if want > 0 {
                    want = want.saturating_sub(1);
                } else {
                    stop_at = offset;
                }
                include = want > 0;
            }
            2 => {
                // FDT_END_NODE
                next = offset.saturating_add(4);
                stop_at = next;
                if expect_end {
                    return Err(RegionError::Structure("token after the root node", offset));
                }
                let Ok(d) = usize::try_from(depth) else {
                    return Err(RegionError::Structure(
                        "FDT_END_NODE without a node",
                        offset,
                    ));
                };
                include = want > 0;
                want = stack[d];
                depth = depth.saturating_sub(1);
                match path.rfind('/') {
                    Some(i) => path.truncate(i),
                    None => path.clear(),
                }
                if depth == -1 {
                    expect_end = true;
                }
            }
            3 => {
                // FDT_PROP
                let len = word(offset.saturating_add(4))? as usize;
                let nameoff = word(offset.saturating_add(8))? as usize;
                let val = offset.saturating_add(12);
                next = align(val.saturating_add(len));
                if val.saturating_add(len) > sb.len() {
                    return Err(RegionError::Structure("property past the block", offset));
                }
                if expect_end {
                    return Err(RegionError::Structure("token after the root node", offset));
                }
                let name = strings
                    .get(nameoff..)
                    .and_then(|s| s.iter().position(|&c| c == 0).and_then(|n| s.get(..n)))
                    .ok_or(RegionError::Structure(
                        "property name outside strings",
                        offset,
                    ))?;
                stop_at = offset;
                include = want >= 2 && !EXCLUDED_PROPS.iter().any(|x| x.as_bytes() == name);
            }
            4 => {
                // FDT_NOP
                next = offset.saturating_add(4);
                if expect_end {
                    return Err(RegionError::Structure("token after the root node", offset));
                }
                stop_at = offset;
                include = want >= 2;
            }
            9 => {
                next = offset.saturating_add(4);
                stop_at = next;
                include = true;
            }
            _ => return Err(RegionError::Structure("bad token", offset)),
        }
        if include && start.is_none() {
            // Merge with the previous region when it ends here.
            match regions.last() {
                Some(&(o, s))
                    if count > 0 && count <= max_regions && o.saturating_add(s) == offset =>
                {
                    start = Some(o);
                    regions.pop();
                    count = count.saturating_sub(1);
                }
                _ => start = Some(offset),
            }
        }
        if !include {
            if let Some(s) = start.take() {
                if regions.len() < max_regions {
                    regions.push((s, stop_at.saturating_sub(s)));
                }
                count = count.saturating_add(1);
            }
        }
        if tag == 9 {
            break;
        }
        if next > sb.len() {
            return Err(RegionError::Structure("structure block overrun", offset));
        }
    }
    if next != sb.len() {
        return Err(RegionError::Structure(
            "FDT_END before the end of the structure block",
            next,
        ));
    }
    let s = start.unwrap_or(next);
    regions.push((s, next.saturating_sub(s)));
    count = count.saturating_add(1);
    if count >= max_regions.saturating_sub(1) {
        return Err(RegionError::TooManyRegions(count));
    }
    let mut out: Vec<(usize, usize)> = regions
        .into_iter()
        .map(|(o, s)| (base.saturating_add(o), s))
        .collect();
    if let Some(size) = strings_size {
        if size as usize > size_strings {
            return Err(RegionError::StringsOutOfBounds(size, size_strings as u32));
        }
        out.push((off_strings, size as usize));
    }
    Ok(out)
}

/// The `hashed-strings` size of a signature node (`None` when absent).
fn hashed_strings(f: &Fdt, sig: &fdt::Node) -> Result<Option<u32>, RegionError> {
    let Some(p) = sig.prop("hashed-strings") else {
        return Ok(None);
    };
    let v = f.value(p);
    if v.len() < 8 {
        return Err(RegionError::BadStrings);
    }
    Ok(Some(u32::from_be_bytes([v[4], v[5], v[6], v[7]])))
}

/// The node paths a configuration signature must cover: the root, the configuration, and every image
/// the configuration references with its `hash-N` nodes (and `cipher` node).
fn needed_nodes(f: &Fdt, conf: &fdt::Node) -> Vec<String> {
    let mut out = vec!["/".to_string(), format!("/configurations/{}", conf.name)];
    let Some(images) = f.root.child("images") else {
        return out;
    };
    for p in &conf.props {
        if matches!(
            p.name.as_str(),
            "description" | "compatible" | "default" | "load-only"
        ) {
            continue;
        }
        for name in f.str_list(conf, &p.name).into_iter().take(MAX_HASHED_NODES) {
            let Some(img) = images.child(&name) else {
                continue;
            };
            out.push(format!("/images/{name}"));
            for c in &img.children {
                if c.name.starts_with("hash") || c.name == "cipher" {
                    out.push(format!("/images/{name}/{}", c.name));
                }
            }
        }
    }
    out
}

/// What one signature node established.
#[derive(Debug, Clone)]
struct SigResult {
    node: String,
    hint: Option<String>,
    /// The key that verified it.
    key: Option<usize>,
    /// Why it did not verify (if not), and whether a known key made it over other bytes.
    why: String,
    changed: bool,
}

/// Verifies one signature node over `regions` (byte slices of the FIT) with every key: the hinted key
/// first, then all others (as U-Boot does without a required key).
fn check_sig(
    f: &Fdt,
    s: &fdt::Node,
    regions: Result<Vec<&[u8]>, NoBytes>,
    keys: &[FitKey],
) -> SigResult {
    let hint = f.str_prop(s, "key-name-hint");
    let mut r = SigResult {
        node: s.name.clone(),
        hint: hint.clone(),
        key: None,
        why: String::new(),
        changed: false,
    };
    let fail = |mut r: SigResult, why: String| {
        r.why = why;
        r
    };
    let algo_s = f.str_prop(s, "algo").unwrap_or_default();
    let Some(a) = algo(&algo_s) else {
        return fail(r, format!("unsupported algorithm `{algo_s}`"));
    };
    let pss = match f.str_prop(s, "padding").as_deref() {
        None | Some("pkcs-1.5") => false,
        Some("pss") => true,
        Some(other) => return fail(r, format!("unsupported padding `{other}`")),
    };
    let regions = match regions {
        Ok(r) => r,
        Err(e) => return fail(r, e.to_string()),
    };
    let Some(value) = s.prop("value").map(|p| f.value(p)) else {
        return fail(r, "no signature value".into());
    };
    let hashed = digest(a.hash, &regions);
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by_key(|&i| Some(&keys[i].name) != hint.as_ref());
    let mut reasons = Vec::new();
    for i in order {
        let k = &keys[i];
        let m = match &k.material {
            Ok(m) => m,
            Err(e) => {
                reasons.push(format!("key `{}` unusable: {e}", k.name));
                continue;
            }
        };
        match verify(a, pss, m, &hashed, value) {
            Check::Valid => {
                r.key = Some(i);
                return r;
            }
            Check::Changed(w) => {
                r.changed = true;
                reasons.insert(0, format!("key `{}`: {w}", k.name));
            }
            Check::NotThisKey(w) => reasons.push(format!("key `{}`: {w}", k.name)),
        }
    }
    r.why = if reasons.is_empty() {
        "no key".into()
    } else {
        reasons.into_iter().take(4).collect::<Vec<_>>().join("; ")
    };
    r
}

/// The regions of a configuration signature as slices, or why U-Boot would refuse it. Also checks that
/// the signed node list covers what the configuration loads.
fn conf_slices<'b>(
    b: &'b [u8],
    f: &Fdt,
    conf: &fdt::Node,
    s: &fdt::Node,
) -> (Result<Vec<&'b [u8]>, NoBytes>, Vec<String>) {
    let inc = match hashed_nodes(f, s) {
        Ok(i) => i,
        Err(e) => return (Err(e.into()), Vec::new()),
    };
    let missing: Vec<String> = needed_nodes(f, conf)
        .into_iter()
        .filter(|n| !inc.contains(n))
        .take(8)
        .collect();
    let strings = match hashed_strings(f, s) {
        Ok(v) => v,
        Err(e) => return (Err(e.into()), missing),
    };
    let r = config_regions(b, &inc, strings).map_err(NoBytes::from);
    let r = r.map(|v| {
        v.into_iter()
            .filter_map(|(o, l)| b.get(o..o.saturating_add(l)))
            .collect()
    });
    (r, missing)
}

/// Where the data of an image lies in the FIT blob `b` (embedded or external).
fn image_bytes<'b>(b: &'b [u8], f: &Fdt, img: &fdt::Node) -> Option<&'b [u8]> {
    if let Some(p) = img.prop("data") {
        return crate::formats::util::slice(b, p.offset, p.len, "data").ok();
    }
    let size = f.u64_prop(img, "data-size")?;
    let start = match f.u64_prop(img, "data-position") {
        Some(p) => p,
        None => {
            (f.totalsize.saturating_add(3) & !3).saturating_add(f.u64_prop(img, "data-offset")?)
        }
    };
    crate::formats::util::slice(b, start, size, "external data").ok()
}

/// The keys of the ring and of the image's control device trees.
#[derive(Debug, Default)]
pub struct KeySet {
    pub keys: Vec<FitKey>,
    /// `required-mode = "any"` in a control device tree.
    pub any: bool,
    /// Keys of the policy that could not be read (id, why).
    pub problems: Vec<String>,
}

impl KeySet {
    fn required(&self, kind: Required) -> Vec<usize> {
        (0..self.keys.len())
            .filter(|&i| self.keys[i].required == Some(kind))
            .collect()
    }

    fn trust(&self, i: usize) -> Trust {
        let k = &self.keys[i];
        match &k.source {
            Source::Policy(id) => Trust::Anchored(format!("fit:{id}")),
            Source::ControlDtb(_) => {
                // A control-DTB key the policy also holds is anchored by the policy.
                let pinned = self.keys.iter().find_map(|p| match &p.source {
                    Source::Policy(id) if p.material.is_ok() && p.material == k.material => {
                        Some(id.clone())
                    }
                    _ => None,
                });
                pinned.map_or(Trust::SelfSigned, |id| Trust::Anchored(format!("fit:{id}")))
            }
        }
    }

    fn describe(&self, i: usize) -> String {
        let k = &self.keys[i];
        let what = k
            .material
            .as_ref()
            .map(Material::describe)
            .unwrap_or_else(|_| "unusable".into());
        match &k.source {
            Source::ControlDtb(p) => format!("key `{}` ({what}) of the control DTB {p}", k.name),
            Source::Policy(id) => format!("{what} key `{id}` of the trust policy"),
        }
    }
}

/// Adds the keys of a policy/`--fit-key` entry.
pub fn add_ring_key(set: &mut KeySet, id: &str, data: &FitKeyData) {
    match data {
        FitKeyData::Pem(pem) => set.keys.push(FitKey {
            name: id.to_string(),
            // A vendor key in the policy says the vendor signs its FIT configurations.
            required: Some(Required::Conf),
            material: key_from_pem(pem),
            source: Source::Policy(id.to_string()),
        }),
        FitKeyData::Dtb(b) => match Fdt::parse(b) {
            Ok(f) => {
                let (keys, any) = keys_from_dtb(&f, id);
                set.any |= any;
                set.keys.extend(keys.into_iter().map(|mut k| {
                    k.source = Source::Policy(format!("{id}/{}", k.name));
                    k
                }));
            }
            Err(e) => set.problems.push(format!("{id}: {e}")),
        },
    }
}

/// The control device trees of the image: `control-dtb` nodes (split off U-Boot binaries).
fn control_dtbs(root: &Region, out: &mut Vec<(String, Vec<u8>)>, path: &str, depth: usize) {
    if depth > 64 || out.len() >= 8 {
        return;
    }
    for c in &root.children {
        let p = if path.is_empty() {
            c.name.clone()
        } else {
            format!("{path}/{}", c.name)
        };
        if c.name == "control-dtb" {
            out.push((p.clone(), c.bytes().to_vec()));
        }
        control_dtbs(c, out, &p, depth.saturating_add(1));
    }
}

/// The key set of one parse: the ring's `fit` keys and every control DTB's keys.
pub fn key_set(ctx: &Ctx, root: &Region) -> KeySet {
    let mut set = KeySet::default();
    for k in ctx.opts.keys.for_scheme(Scheme::FitSignature) {
        if let VendorKey::Fit(d) = &k.key {
            add_ring_key(&mut set, &k.id, d);
        }
    }
    let mut dtbs = Vec::new();
    control_dtbs(root, &mut dtbs, "", 0);
    for (path, b) in dtbs {
        if let Ok(f) = Fdt::parse(&b) {
            let (keys, any) = keys_from_dtb(&f, &path);
            set.any |= any;
            set.keys.extend(keys);
        }
    }
    set.keys.truncate(MAX_KEYS);
    set
}

/// The whole-tree pass: every FIT of the image judged with the key set (module documentation).
pub fn annotate(ctx: &Ctx, root: &mut Region) {
    let set = key_set(ctx, root);
    if set.keys.is_empty() {
        return;
    }
    visit(&set, root, 0);
}

fn visit(set: &KeySet, n: &mut Region, depth: usize) {
    if depth > 64 {
        return;
    }
    // A FIT node: parsed by the FIT format, and the FIT itself (not a node inside it).
    let fit = super::fit::FORMAT_FIT.name;
    if n.attr_str("format") == Some(fit) && n.name == fit {
        judge_fit(set, n);
    }
    for c in &mut n.children {
        visit(set, c, depth.saturating_add(1));
    }
}

/// Judges one `fit` node: its configuration signatures (evidence and findings on the node) and its image
/// signatures (on each `image[NAME]` node).
fn judge_fit(set: &KeySet, node: &mut Region) {
    let data = node.data.clone();
    let b = usize::try_from(node.offset)
        .ok()
        .zip(usize::try_from(node.size).ok())
        .and_then(|(o, l)| data.get(o..o.checked_add(l)?))
        .unwrap_or(&[]);
    let Ok(f) = Fdt::parse(b) else { return };
    node.evidence.retain(|e| e.scheme != Scheme::FitSignature);
    let at = node.offset;
    let req_conf = set.required(Required::Conf);
    if let Some(cfgs) = f.root.child("configurations") {
        for conf in cfgs.children.iter().take(crate::formats::fit::MAX_IMAGES) {
            let (ev, notes) = judge_conf(set, b, &f, conf, &req_conf);
            node.evidence.extend(ev);
            node.notes
                .extend(notes.into_iter().map(|(c, m)| Note::new(c, m, Some(at))));
        }
    }
    let req_image = set.required(Required::Image);
    let Some(images) = f.root.child("images") else {
        return;
    };
    for img in images.children.iter().take(crate::formats::fit::MAX_IMAGES) {
        let Some(r) = node.children.iter_mut().find(|c| {
            c.attr_str("name") == Some(img.name.as_str()) && c.name.starts_with("image[")
        }) else {
            continue;
        };
        r.evidence.retain(|e| e.scheme != Scheme::FitSignature);
        let bytes = image_bytes(b, &f, img);
        let (ev, notes) = judge_image(set, &f, img, bytes, &req_image);
        let off = r.offset;
        r.evidence.extend(ev);
        r.notes
            .extend(notes.into_iter().map(|(c, m)| Note::new(c, m, Some(off))));
    }
}

type Judged = (Vec<Evidence>, Vec<(Code, String)>);

fn sig_nodes(n: &fdt::Node) -> impl Iterator<Item = &fdt::Node> {
    n.children
        .iter()
        .filter(|s| s.name.starts_with("signature"))
        .take(MAX_SIGS)
}

/// Evidence for one signature result.
fn evidence(set: &KeySet, r: &SigResult, over: &str, extra: Option<String>) -> Evidence {
    let status = match (r.key, &extra) {
        (Some(_), None) => Status::Valid,
        (Some(_), Some(w)) => Status::Invalid(w.clone()),
        (None, _) => Status::Invalid(format!("{over} {}: {}", r.node, r.why)),
    };
    let mut e = Evidence::on_node(Scheme::FitSignature, status);
    if let Some(i) = r.key {
        e = e.with_trust(set.trust(i));
    }
    match &r.hint {
        Some(h) => e.with_signer(h.clone()),
        None => e,
    }
}

/// Whether a failed signature was made by a known key over other bytes (or names a key we hold).
fn known_signer(set: &KeySet, r: &SigResult) -> bool {
    r.changed
        || r.hint
            .as_ref()
            .is_some_and(|h| set.keys.iter().any(|k| &k.name == h))
}

fn judge_conf(set: &KeySet, b: &[u8], f: &Fdt, conf: &fdt::Node, req: &[usize]) -> Judged {
    let over = format!("configuration `{}`", conf.name);
    let mut ev = Vec::new();
    let mut notes = Vec::new();
    let mut verified_by: Vec<usize> = Vec::new();
    let mut any_sig = false;
    for s in sig_nodes(conf) {
        any_sig = true;
        let (regions, missing) = conf_slices(b, f, conf, s);
        let regions = if conf.name.contains('@') {
            Err(NoBytes::ConfAt)
        } else {
            regions
        };
        let r = check_sig(f, s, regions, &set.keys);
        let gap = (!missing.is_empty()).then(|| {
            format!(
                "{over} {}: the signature verifies but its hashed-nodes leave out {} that the configuration uses: those bytes are not signed",
                r.node,
                missing.join(", ")
            )
        });
        match (r.key, &gap) {
            (Some(i), None) => verified_by.push(i),
            (Some(_), Some(w)) => notes.push((Code::FitSignatureInvalid, w.clone())),
            (None, _) => {
                let code = if known_signer(set, &r) || !req.is_empty() {
                    Code::FitSignatureInvalid
                } else {
                    Code::FitKeyUntrusted
                };
                let msg = if code == Code::FitKeyUntrusted {
                    format!(
                        "{over} {} is signed by key `{}`, which neither a control DTB of the image nor the trust policy holds ({})",
                        r.node,
                        r.hint.as_deref().unwrap_or("?"),
                        r.why
                    )
                } else {
                    format!("{over} {} does not verify: {}", r.node, r.why)
                };
                notes.push((code, msg));
            }
        }
        ev.push(evidence(set, &r, &over, gap));
    }
    if req.is_empty() {
        return (ev, notes);
    }
    if !any_sig {
        notes.push((
            Code::FitUnsigned,
            format!(
                "{over} carries no signature, but {} requires one: U-Boot refuses to boot it",
                names(set, req)
            ),
        ));
        return (ev, notes);
    }
    // A required key is met by a signature that it verifies: one of the same numbers (the same key may
    // sit in the control DTB and in the policy).
    let same = |a: usize, b: usize| {
        a == b || (set.keys[a].material.is_ok() && set.keys[a].material == set.keys[b].material)
    };
    let met: Vec<usize> = req
        .iter()
        .copied()
        .filter(|&r| verified_by.iter().any(|&v| same(v, r)))
        .collect();
    let ok = if set.any {
        !met.is_empty()
    } else {
        met.len() == req.len()
    };
    if !ok && notes.is_empty() {
        let missing: Vec<usize> = req.iter().copied().filter(|i| !met.contains(i)).collect();
        notes.push((
            Code::FitSignatureInvalid,
            format!(
                "{over} is not signed by the required {}: U-Boot refuses to boot it",
                names(set, &missing)
            ),
        ));
    }
    (ev, notes)
}

fn names(set: &KeySet, idx: &[usize]) -> String {
    idx.iter()
        .take(4)
        .map(|&i| set.describe(i))
        .collect::<Vec<_>>()
        .join(", ")
}

fn judge_image(
    set: &KeySet,
    f: &Fdt,
    img: &fdt::Node,
    data: Option<&[u8]>,
    req: &[usize],
) -> Judged {
    let over = format!("image `{}`", img.name);
    let mut ev = Vec::new();
    let mut notes = Vec::new();
    let mut verified = false;
    let mut any_sig = false;
    for s in sig_nodes(img) {
        any_sig = true;
        let regions = match data {
            Some(d) if !s.name.contains('@') => Ok(vec![d]),
            Some(_) => Err(NoBytes::SigAt),
            None => Err(NoBytes::Outside),
        };
        let r = check_sig(f, s, regions, &set.keys);
        if r.key.is_some() {
            verified = true;
        } else {
            let code = if known_signer(set, &r) || !req.is_empty() {
                Code::FitSignatureInvalid
            } else {
                Code::FitKeyUntrusted
            };
            notes.push((
                code,
                format!("{over} {} does not verify: {}", r.node, r.why),
            ));
        }
        ev.push(evidence(set, &r, &over, None));
    }
    if !req.is_empty() {
        if !any_sig {
            notes.push((
                Code::FitUnsigned,
                format!(
                    "{over} carries no signature, but {} requires image signatures: U-Boot refuses to load it",
                    names(set, req)
                ),
            ));
        } else if !verified && notes.is_empty() {
            notes.push((
                Code::FitSignatureInvalid,
                format!("{over}: no signature verifies"),
            ));
        }
    }
    (ev, notes)
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

    /// Builds a device tree blob from (struct tokens, strings).
    fn blob(st: &[u8], strings: &[u8]) -> Vec<u8> {
        let off_struct = 40u32;
        let off_strings = off_struct + st.len() as u32;
        let total = off_strings + strings.len() as u32;
        let mut b = Vec::new();
        for x in [
            fdt::MAGIC,
            total,
            off_struct,
            off_strings,
            40,
            17,
            16,
            0,
            strings.len() as u32,
            st.len() as u32,
        ] {
            b.extend_from_slice(&x.to_be_bytes());
        }
        b.extend_from_slice(st);
        b.extend_from_slice(strings);
        b
    }

    struct T(Vec<u8>, Vec<u8>);
    impl T {
        fn w(&mut self, x: u32) -> &mut Self {
            self.0.extend_from_slice(&x.to_be_bytes());
            self
        }
        fn begin(&mut self, name: &str) -> &mut Self {
            self.w(1);
            self.0.extend_from_slice(name.as_bytes());
            self.0.push(0);
            while self.0.len() % 4 != 0 {
                self.0.push(0);
            }
            self
        }
        fn end(&mut self) -> &mut Self {
            self.w(2)
        }
        fn prop(&mut self, name: &str, v: &[u8]) -> &mut Self {
            let off = match self
                .1
                .windows(name.len() + 1)
                .position(|w| &w[..name.len()] == name.as_bytes() && w[name.len()] == 0)
            {
                Some(o) => o,
                None => {
                    let o = self.1.len();
                    self.1.extend_from_slice(name.as_bytes());
                    self.1.push(0);
                    o
                }
            };
            self.w(3).w(v.len() as u32).w(off as u32);
            self.0.extend_from_slice(v);
            while self.0.len() % 4 != 0 {
                self.0.push(0);
            }
            self
        }
        fn build(&mut self) -> Vec<u8> {
            self.w(9);
            blob(&self.0, &self.1)
        }
    }

    /// / { a; images { k { data; x; hash-1 { value; }; }; }; configurations { c { kernel; s { v; }; }; }; }
    fn sample() -> Vec<u8> {
        let mut t = T(Vec::new(), Vec::new());
        t.begin("").prop("a", b"1\0");
        t.begin("images")
            .begin("k")
            .prop("data", b"DATA")
            .prop("x", b"y\0");
        t.begin("hash-1").prop("value", b"0123").end().end().end();
        t.begin("configurations").begin("c").prop("kernel", b"k\0");
        t.begin("signature-1")
            .prop("value", b"sig!")
            .end()
            .end()
            .end();
        t.end().build()
    }

    #[test]
    fn regions_follow_fdt_find_regions() {
        let b = sample();
        let inc: Vec<String> = ["/", "/configurations/c", "/images/k", "/images/k/hash-1"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let r = config_regions(&b, &inc, Some(4)).unwrap();
        // Every byte of the structure block except the excluded `data` property and the signature's
        // property is covered; the strings region is last.
        let covered: usize = r.iter().map(|x| x.1).sum();
        let st_len = u32::from_be_bytes(b[36..40].try_into().unwrap()) as usize;
        let data_prop = 12 + 4; // header + "DATA"
        let sig_prop = 12 + 4;
        assert_eq!(covered, st_len - data_prop - sig_prop + 4);
        assert_eq!(r.last().unwrap(), &(40 + st_len, 4));
        // A hashed-strings size past the strings block is refused.
        assert!(matches!(
            config_regions(&b, &inc, Some(10_000)),
            Err(RegionError::StringsOutOfBounds(..))
        ));
        // Leaving the image out drops its properties but keeps its begin/end tags (via /images).
        let r2 = config_regions(&b, &inc[..2], None).unwrap();
        let covered2: usize = r2.iter().map(|x| x.1).sum();
        assert!(covered2 < covered - 4);
    }

    #[test]
    fn hostile_trees_are_errors_not_panics() {
        let b = sample();
        let inc: Vec<String> = vec!["/".into(), "/images/k".into()];
        for cut in 0..b.len() {
            let _ = config_regions(&b[..cut], &inc, Some(4));
        }
        for i in 0..b.len() {
            for x in [0xFFu8, 0x01, 0x80] {
                let mut t = b.clone();
                t[i] ^= x;
                let _ = config_regions(&t, &inc, Some(u32::MAX));
            }
        }
        // A huge hashed-nodes list is refused before any work.
        let mut t = T(Vec::new(), Vec::new());
        let mut list = Vec::new();
        for i in 0..5000 {
            list.extend_from_slice(format!("/n{i}").as_bytes());
            list.push(0);
        }
        let big = t
            .begin("")
            .begin("s")
            .prop("hashed-nodes", &list)
            .end()
            .end()
            .build();
        let f = Fdt::parse(&big).unwrap();
        let s = f.root.child("s").unwrap();
        assert_eq!(hashed_nodes(&f, s), Err(RegionError::TooManyNodes));
        // Non-terminated hashed-nodes.
        let mut t = T(Vec::new(), Vec::new());
        let nt = t
            .begin("")
            .begin("s")
            .prop("hashed-nodes", b"/abc")
            .end()
            .end()
            .build();
        let f = Fdt::parse(&nt).unwrap();
        assert_eq!(
            hashed_nodes(&f, f.root.child("s").unwrap()),
            Err(RegionError::Unterminated)
        );
        // Many regions (every other node included) is bounded by U-Boot's limit.
        let mut t = T(Vec::new(), Vec::new());
        t.begin("");
        for i in 0..300 {
            t.begin(&format!("n{i}")).prop("p", b"x").end();
        }
        let many = t.end().build();
        let inc: Vec<String> = (0..300).step_by(2).map(|i| format!("/n{i}")).collect();
        assert!(config_regions(&many, &inc[..2], None).is_ok());
        assert!(config_regions(&many, &inc[..1], None).is_ok());
    }

    fn key_node(props: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut t = T(Vec::new(), Vec::new());
        t.begin("").begin("signature").begin("key-dev");
        for (n, v) in props {
            t.prop(n, v);
        }
        t.end().end().end().build()
    }

    #[test]
    fn bogus_keys_are_refused_not_panics() {
        let n = {
            let mut v = vec![0xC3u8; 256];
            v[255] |= 1;
            v
        };
        type Props = Vec<(&'static str, Vec<u8>)>;
        let cases: Vec<(Props, &str)> = vec![
            (
                vec![
                    ("rsa,num-bits", 2048u32.to_be_bytes().to_vec()),
                    ("rsa,modulus", n.clone()),
                    ("rsa,exponent", 0u64.to_be_bytes().to_vec()),
                ],
                "exponent 0",
            ),
            (
                vec![
                    ("rsa,num-bits", 2048u32.to_be_bytes().to_vec()),
                    ("rsa,modulus", n.clone()),
                    ("rsa,exponent", vec![1, 2, 3]),
                ],
                "short exponent",
            ),
            (
                vec![
                    ("rsa,num-bits", 0xFFFF_FFF8u32.to_be_bytes().to_vec()),
                    ("rsa,modulus", n.clone()),
                ],
                "huge num-bits",
            ),
            (
                vec![
                    ("rsa,num-bits", 1024u32.to_be_bytes().to_vec()),
                    ("rsa,modulus", n[..128].to_vec()),
                ],
                "1024 bits",
            ),
            (
                vec![
                    ("rsa,num-bits", 2048u32.to_be_bytes().to_vec()),
                    ("rsa,modulus", vec![0xFF; 300]),
                ],
                "modulus too long",
            ),
            (
                vec![
                    ("rsa,num-bits", 4096u32.to_be_bytes().to_vec()),
                    ("rsa,modulus", n.clone()),
                ],
                "modulus too short",
            ),
            (
                vec![
                    ("ecdsa,curve", b"prime256v1\0".to_vec()),
                    ("ecdsa,x-point", vec![1; 32]),
                    ("ecdsa,y-point", vec![2; 32]),
                ],
                "off-curve point",
            ),
            (
                vec![("ecdsa,curve", b"secp521r1\0".to_vec())],
                "unknown curve",
            ),
            (vec![], "no key"),
        ];
        for (props, what) in cases {
            let b = key_node(&props);
            let f = Fdt::parse(&b).unwrap();
            let (keys, _) = keys_from_dtb(&f, "t");
            assert_eq!(keys.len(), 1, "{what}");
            assert!(keys[0].material.is_err(), "{what}: {:?}", keys[0].material);
        }
        // A usable key is read.
        let b = key_node(&[
            ("rsa,num-bits", 2048u32.to_be_bytes().to_vec()),
            ("rsa,modulus", n.clone()),
            ("rsa,exponent", 65537u64.to_be_bytes().to_vec()),
            ("required", b"conf\0".to_vec()),
        ]);
        let f = Fdt::parse(&b).unwrap();
        let (keys, any) = keys_from_dtb(&f, "t");
        assert!(!any);
        assert_eq!(keys[0].required, Some(Required::Conf));
        assert!(keys[0].material.is_ok());
        // Signatures of any length against it: never a panic, never valid.
        let a = algo("sha256,rsa2048").unwrap();
        for len in [0usize, 1, 255, 256, 257, 4096] {
            for pss in [false, true] {
                let sig = vec![0x5Au8; len];
                let r = verify(a, pss, keys[0].material.as_ref().unwrap(), &[0; 32], &sig);
                assert_ne!(r, Check::Valid);
            }
        }
    }

    #[test]
    fn rsa_pkcs1_and_pss_round_trip() {
        use rsa::pkcs8::EncodePublicKey;
        use rsa::traits::PublicKeyParts;
        let mut rng = rand_core_rng();
        let sk = rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap();
        let pem = sk
            .to_public_key()
            .to_public_key_pem(rsa::pkcs8::LineEnding::LF)
            .unwrap();
        let m = key_from_pem(&pem).unwrap();
        assert!(matches!(m, Material::Rsa { bits: 2048, .. }));
        let h = digest("sha256", &[b"hello ", b"world"]);
        let a = algo("sha256,rsa2048").unwrap();
        let s1 = sk
            .sign(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &h)
            .unwrap();
        assert_eq!(verify(a, false, &m, &h, &s1), Check::Valid);
        let other = digest("sha256", &[b"hello world!"]);
        assert!(matches!(
            verify(a, false, &m, &other, &s1),
            Check::Changed(_)
        ));
        for salt in [0usize, 20, 32, 222] {
            let s2 = sk
                .sign_with_rng(&mut rng, rsa::Pss::new_with_salt::<sha2::Sha256>(salt), &h)
                .unwrap();
            assert_eq!(verify(a, true, &m, &h, &s2), Check::Valid, "salt {salt}");
            assert!(matches!(
                verify(a, true, &m, &other, &s2),
                Check::Changed(_)
            ));
            assert!(matches!(
                verify(a, false, &m, &h, &s2),
                Check::NotThisKey(_)
            ));
        }
        // Another key of the same size: not this key.
        let sk2 = rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap();
        let s3 = sk2
            .sign(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &h)
            .unwrap();
        assert!(matches!(
            verify(a, false, &m, &h, &s3),
            Check::NotThisKey(_)
        ));
        assert_eq!(sk.n().bits(), 2048);
    }

    fn rand_core_rng() -> impl rsa::rand_core::CryptoRngCore {
        rsa::rand_core::OsRng
    }

    #[test]
    fn ecdsa_round_trip() {
        use p256::ecdsa::signature::hazmat::PrehashSigner;
        let sk = p256::ecdsa::SigningKey::random(&mut rsa::rand_core::OsRng);
        let point = sk.verifying_key().to_encoded_point(false);
        let m = ec_material(point.as_bytes(), 32).unwrap();
        assert!(ec_key(&m).is_ok());
        let h = digest("sha256", &[b"x"]);
        let sig: p256::ecdsa::Signature = sk.sign_prehash(&h).unwrap();
        let a = algo("sha256,ecdsa256").unwrap();
        assert_eq!(verify(a, false, &m, &h, &sig.to_bytes()), Check::Valid);
        let h2 = digest("sha256", &[b"y"]);
        assert_ne!(verify(a, false, &m, &h2, &sig.to_bytes()), Check::Valid);
        assert_ne!(
            verify(
                algo("sha384,ecdsa384").unwrap(),
                false,
                &m,
                &h,
                &sig.to_bytes()
            ),
            Check::Valid
        );
    }
}
