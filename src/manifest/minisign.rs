//! minisign file formats: public keys, secret keys and detached signatures.
//!
//! Compatible with `minisign` (<https://jedisct1.github.io/minisign/>) and Debian's `minisign` package:
//!
//! * public key: `untrusted comment: ...` line, then base64(`Ed` ‖ key id (8 bytes) ‖ Ed25519 key (32)).
//! * secret key: `untrusted comment: ...` line, then base64(`Ed` ‖ kdf `Sc` (or two NUL bytes when not
//!   encrypted) ‖ `B2` ‖ salt (32) ‖ opslimit (u64 LE) ‖ memlimit (u64 LE) ‖ [key id (8) ‖ secret key (64) ‖
//!   BLAKE2b-256 checksum (32)] XOR scrypt(password)).
//! * signature: `untrusted comment: ...`, base64(`ED` ‖ key id (8) ‖ Ed25519 signature (64) of the
//!   BLAKE2b-512 of the file), `trusted comment: ...`, base64(Ed25519 signature (64) of the first signature
//!   ‖ the trusted comment). `Ed` (signature of the raw file) is the legacy, non-prehashed form.
//!
//! Key ids are shown as minisign shows them: the 8 bytes read as a little-endian u64, in uppercase hex.
//!
//! All cryptography comes from RustCrypto / dalek crates: `ed25519-dalek` (verification only through
//! [`ed25519_dalek::VerifyingKey::verify_strict`]: canonical `S`, canonical `R`, no small-order key or
//! `R`), `blake2`, `scrypt`. Parsers here take untrusted bytes and never panic.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use blake2::digest::{consts::U32, Digest};
use blake2::{Blake2b, Blake2b512};
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use zeroize::{Zeroize, Zeroizing};

/// Largest signature file read (several KiB of comments at most).
pub const MAX_SIGNATURE_FILE: u64 = 16 << 10;
/// Largest key file read.
pub const MAX_KEY_FILE: u64 = 16 << 10;
/// Longest trusted comment accepted (minisign's own limit is 1024 bytes).
pub const MAX_COMMENT: usize = 1024;
/// Most scrypt memory a secret key file may ask for when it is decrypted.
pub const MAX_KDF_MEMORY: u64 = 2 << 30;

const UNTRUSTED_PREFIX: &str = "untrusted comment: ";
const TRUSTED_PREFIX: &str = "trusted comment: ";

/// What went wrong reading a key or signature file. The caller attaches the file name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FormatError(pub String);

fn ferr(s: impl Into<String>) -> FormatError {
    FormatError(s.into())
}

/// An 8-byte minisign key id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 8]);

impl KeyId {
    /// Uppercase hex of the little-endian u64, as `minisign` prints it.
    pub fn to_hex(self) -> String {
        format!("{:016X}", u64::from_le_bytes(self.0))
    }

    /// Parses the form [`KeyId::to_hex`] prints (case-insensitive, exactly 16 hex digits).
    pub fn parse(s: &str) -> Option<KeyId> {
        if s.len() != 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u64::from_str_radix(s, 16)
            .ok()
            .map(|v| KeyId(v.to_le_bytes()))
    }
}

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Signature algorithm of a signature file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigAlg {
    /// `ED`: Ed25519 over BLAKE2b-512 of the file (minisign's default since 0.8).
    Prehashed,
    /// `Ed`: Ed25519 over the raw file (legacy).
    Legacy,
}

/// A minisign public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub id: KeyId,
    /// The raw 32-byte Ed25519 key (not checked for being a valid or strong point: verification is).
    pub key: [u8; 32],
}

impl PublicKey {
    /// Decodes the base64 form (`RWQ...`, the second line of a `.pub` file).
    pub fn from_base64(s: &str) -> Result<PublicKey, FormatError> {
        let s = s.trim();
        if s.len() > 128 {
            return Err(ferr("public key is too long"));
        }
        let raw = B64
            .decode(s)
            .map_err(|e| ferr(format!("public key is not base64: {e}")))?;
        if raw.len() != 42 {
            return Err(ferr(format!(
                "public key is {} bytes, a minisign public key is 42",
                raw.len()
            )));
        }
        if &raw[..2] != b"Ed" {
            return Err(ferr("public key algorithm is not Ed25519 (`Ed`)"));
        }
        let mut id = [0u8; 8];
        id.copy_from_slice(&raw[2..10]);
        let mut key = [0u8; 32];
        key.copy_from_slice(&raw[10..42]);
        Ok(PublicKey { id: KeyId(id), key })
    }

    /// Parses a `.pub` file (an `untrusted comment:` line then the key), or a bare base64 key.
    pub fn parse_file(text: &str) -> Result<PublicKey, FormatError> {
        let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
        let first = lines.next().ok_or_else(|| ferr("empty public key file"))?;
        let b64 = if first.starts_with(UNTRUSTED_PREFIX.trim_end()) {
            lines
                .next()
                .ok_or_else(|| ferr("public key file has a comment but no key"))?
        } else {
            first
        };
        PublicKey::from_base64(b64)
    }

    pub fn to_base64(&self) -> String {
        let mut raw = Vec::with_capacity(42);
        raw.extend_from_slice(b"Ed");
        raw.extend_from_slice(&self.id.0);
        raw.extend_from_slice(&self.key);
        B64.encode(raw)
    }

    /// The `.pub` file text.
    pub fn to_file(&self) -> String {
        format!(
            "{UNTRUSTED_PREFIX}minisign public key {}\n{}\n",
            self.id,
            self.to_base64()
        )
    }

    /// Strict Ed25519 verification of `sig` over `msg` (see the module documentation).
    pub fn verify_strict(&self, msg: &[u8], sig: &[u8; 64]) -> bool {
        let Ok(vk) = VerifyingKey::from_bytes(&self.key) else {
            return false;
        };
        let sig = ed25519_dalek::Signature::from_bytes(sig);
        vk.verify_strict(msg, &sig).is_ok()
    }
}

/// A parsed signature file (one signature).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureFile {
    pub untrusted_comment: String,
    pub alg: SigAlg,
    pub key_id: KeyId,
    pub signature: [u8; 64],
    pub trusted_comment: String,
    pub global_signature: [u8; 64],
}

/// BLAKE2b-512 of data: the message signed by a prehashed (`ED`) signature.
pub fn prehash(data: &[u8]) -> [u8; 64] {
    let mut out = [0u8; 64];
    out.copy_from_slice(&Blake2b512::digest(data));
    out
}

fn comment_ok(c: &str) -> bool {
    // minisign's default trusted comment separates its fields with tabs.
    c.len() <= MAX_COMMENT && !c.chars().any(|ch| ch.is_control() && ch != '\t')
}

impl SignatureFile {
    /// Parses the four lines of a minisign signature file. Lines end in `\n` (a `\r` before it is
    /// tolerated); nothing but blank lines may follow.
    pub fn parse(bytes: &[u8]) -> Result<SignatureFile, FormatError> {
        if bytes.len() as u64 > MAX_SIGNATURE_FILE {
            return Err(ferr(format!(
                "signature file is larger than {MAX_SIGNATURE_FILE} bytes"
            )));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| ferr("signature file is not UTF-8"))?;
        let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
        let mut next = |what: &str| {
            lines
                .next()
                .ok_or_else(|| ferr(format!("signature file is truncated: no {what} line")))
        };
        let l1 = next("untrusted comment")?;
        let untrusted = l1
            .strip_prefix(UNTRUSTED_PREFIX)
            .ok_or_else(|| ferr("first line is not an `untrusted comment:`"))?;
        let l2 = next("signature")?;
        let raw = B64
            .decode(l2.trim())
            .map_err(|e| ferr(format!("signature line is not base64: {e}")))?;
        if raw.len() != 74 {
            return Err(ferr(format!(
                "signature is {} bytes, a minisign signature is 74",
                raw.len()
            )));
        }
        let alg = match &raw[..2] {
            b"ED" => SigAlg::Prehashed,
            b"Ed" => SigAlg::Legacy,
            other => {
                return Err(ferr(format!(
                    "unknown signature algorithm {:?}",
                    String::from_utf8_lossy(other)
                )))
            }
        };
        let mut key_id = [0u8; 8];
        key_id.copy_from_slice(&raw[2..10]);
        let mut signature = [0u8; 64];
        signature.copy_from_slice(&raw[10..74]);
        let l3 = next("trusted comment")?;
        let trusted = l3
            .strip_prefix(TRUSTED_PREFIX)
            .ok_or_else(|| ferr("third line is not a `trusted comment:`"))?;
        if !comment_ok(trusted) || !comment_ok(untrusted) {
            return Err(ferr(format!(
                "a comment is longer than {MAX_COMMENT} bytes or holds control characters"
            )));
        }
        let l4 = next("global signature")?;
        let g = B64
            .decode(l4.trim())
            .map_err(|e| ferr(format!("global signature line is not base64: {e}")))?;
        let global_signature: [u8; 64] = g.as_slice().try_into().map_err(|_| {
            ferr(format!(
                "global signature is {} bytes, it must be 64",
                g.len()
            ))
        })?;
        if lines.any(|l| !l.trim().is_empty()) {
            return Err(ferr(
                "unexpected data after the global signature (one signature per file)",
            ));
        }
        Ok(SignatureFile {
            untrusted_comment: untrusted.to_string(),
            alg,
            key_id: KeyId(key_id),
            signature,
            trusted_comment: trusted.to_string(),
            global_signature,
        })
    }

    /// The file text.
    pub fn to_file(&self) -> String {
        let mut raw = Vec::with_capacity(74);
        raw.extend_from_slice(match self.alg {
            SigAlg::Prehashed => b"ED",
            SigAlg::Legacy => b"Ed",
        });
        raw.extend_from_slice(&self.key_id.0);
        raw.extend_from_slice(&self.signature);
        format!(
            "{UNTRUSTED_PREFIX}{}\n{}\n{TRUSTED_PREFIX}{}\n{}\n",
            self.untrusted_comment,
            B64.encode(raw),
            self.trusted_comment,
            B64.encode(self.global_signature)
        )
    }

    /// The message the first signature covers.
    pub fn signed_message<'a>(&self, data: &'a [u8]) -> std::borrow::Cow<'a, [u8]> {
        match self.alg {
            SigAlg::Prehashed => std::borrow::Cow::Owned(prehash(data).to_vec()),
            SigAlg::Legacy => std::borrow::Cow::Borrowed(data),
        }
    }

    /// The message the global signature covers: signature ‖ trusted comment.
    pub fn global_message(&self) -> Vec<u8> {
        let mut m = self.signature.to_vec();
        m.extend_from_slice(self.trusted_comment.as_bytes());
        m
    }

    /// Does `key` make the file signature over `data` valid (strict)?
    pub fn verify_data(&self, key: &PublicKey, data: &[u8]) -> bool {
        key.verify_strict(&self.signed_message(data), &self.signature)
    }

    /// Does `key` make the global signature (over the trusted comment) valid (strict)?
    pub fn verify_global(&self, key: &PublicKey) -> bool {
        key.verify_strict(&self.global_message(), &self.global_signature)
    }
}

/// A decrypted secret key.
pub struct SecretKey {
    pub id: KeyId,
    signing: SigningKey,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// scrypt cost of an encrypted secret key, in minisign's (libsodium's) units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfLimits {
    pub opslimit: u64,
    pub memlimit: u64,
}

impl KdfLimits {
    /// minisign's defaults (libsodium `..._SENSITIVE`): N = 2^20, r = 8, p = 1, 1 GiB of memory.
    pub const MINISIGN: KdfLimits = KdfLimits {
        opslimit: 33_554_432,
        memlimit: 1_073_741_824,
    };

    /// Limits using about `mib` MiB (a power of two is used; minimum 1 MiB).
    pub fn with_memory_mib(mib: u64) -> KdfLimits {
        let mem = mib.clamp(1, 1 << 20) << 20;
        KdfLimits {
            opslimit: mem / 32,
            memlimit: mem,
        }
    }

    /// libsodium's `pickparams` (crypto_pwhash_scryptsalsa208sha256): (log2 N, r, p).
    pub fn scrypt_params(self) -> (u8, u32, u32) {
        let opslimit = self.opslimit.max(32768);
        let r: u64 = 8;
        let mut n_log2: u32 = 1;
        let p: u64;
        if opslimit < self.memlimit / 32 {
            p = 1;
            let max_n = opslimit / (r * 4);
            while n_log2 < 63 {
                if (1u64 << n_log2) > max_n / 2 {
                    break;
                }
                n_log2 += 1;
            }
        } else {
            let max_n = self.memlimit / (r * 128);
            while n_log2 < 63 {
                if (1u64 << n_log2) > max_n / 2 {
                    break;
                }
                n_log2 += 1;
            }
            let maxrp = ((opslimit / 4) / (1u64 << n_log2)).min(0x3fff_ffff);
            p = maxrp / r;
        }
        (n_log2 as u8, r as u32, p as u32)
    }

    /// Memory scrypt needs with these limits (128 · r · N), saturating.
    pub fn memory(self) -> u64 {
        let (log_n, r, p) = self.scrypt_params();
        128u64
            .saturating_mul(r as u64)
            .saturating_mul(1u64.checked_shl(log_n as u32).unwrap_or(u64::MAX))
            .saturating_add(128u64.saturating_mul(r as u64).saturating_mul(p as u64))
    }
}

fn kdf_stream(
    password: &[u8],
    salt: &[u8; 32],
    limits: KdfLimits,
) -> Result<Zeroizing<[u8; 104]>, FormatError> {
    let (log_n, r, p) = limits.scrypt_params();
    if p == 0 {
        return Err(ferr("secret key has unusable scrypt parameters (p = 0)"));
    }
    if limits.memory() > MAX_KDF_MEMORY {
        return Err(ferr(format!(
            "secret key asks for {} MiB of scrypt memory, more than the limit of {} MiB",
            limits.memory() >> 20,
            MAX_KDF_MEMORY >> 20
        )));
    }
    let params = scrypt::Params::new(log_n, r, p, 32)
        .map_err(|_| ferr("secret key has invalid scrypt parameters"))?;
    let mut out = Zeroizing::new([0u8; 104]);
    scrypt::scrypt(password, salt, &params, out.as_mut()).map_err(|_| ferr("scrypt failed"))?;
    Ok(out)
}

fn checksum(id: &[u8; 8], sk: &[u8; 64]) -> [u8; 32] {
    let mut h = Blake2b::<U32>::new();
    h.update(b"Ed");
    h.update(id);
    h.update(sk);
    let mut out = [0u8; 32];
    out.copy_from_slice(&h.finalize());
    out
}

/// Fills `buf` from the operating system's random source.
pub fn random_bytes(buf: &mut [u8]) -> Result<(), FormatError> {
    getrandom::getrandom(buf).map_err(|e| ferr(format!("no randomness: {e}")))
}

/// Is the secret key file encrypted (needs a password)?
pub fn secret_key_is_encrypted(text: &str) -> Result<bool, FormatError> {
    let raw = secret_key_raw(text)?;
    Ok(raw[2..4] != [0, 0])
}

fn secret_key_raw(text: &str) -> Result<Zeroizing<Vec<u8>>, FormatError> {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().ok_or_else(|| ferr("empty secret key file"))?;
    let b64 = if first.starts_with(UNTRUSTED_PREFIX.trim_end()) {
        lines
            .next()
            .ok_or_else(|| ferr("secret key file has a comment but no key"))?
    } else {
        first
    };
    if b64.len() > 512 {
        return Err(ferr("secret key is too long"));
    }
    let raw = Zeroizing::new(
        B64.decode(b64)
            .map_err(|e| ferr(format!("secret key is not base64: {e}")))?,
    );
    if raw.len() != 158 {
        return Err(ferr(format!(
            "secret key is {} bytes, a minisign secret key is 158",
            raw.len()
        )));
    }
    if &raw[..2] != b"Ed" || &raw[4..6] != b"B2" {
        return Err(ferr("not an Ed25519/BLAKE2b minisign secret key"));
    }
    if &raw[2..4] != b"Sc" && raw[2..4] != [0, 0] {
        return Err(ferr("secret key uses an unknown key derivation function"));
    }
    Ok(raw)
}

impl SecretKey {
    /// Generates a fresh key.
    pub fn generate() -> Result<SecretKey, FormatError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        random_bytes(seed.as_mut())?;
        let mut id = [0u8; 8];
        random_bytes(&mut id)?;
        Ok(SecretKey {
            id: KeyId(id),
            signing: SigningKey::from_bytes(&seed),
        })
    }

    /// A key from a fixed id and seed. Only for reproducible test fixtures (`testdata/`): anyone who
    /// reads the seed can sign with it.
    pub fn from_seed(id: [u8; 8], seed: [u8; 32]) -> SecretKey {
        SecretKey {
            id: KeyId(id),
            signing: SigningKey::from_bytes(&seed),
        }
    }

    pub fn public(&self) -> PublicKey {
        PublicKey {
            id: self.id,
            key: self.signing.verifying_key().to_bytes(),
        }
    }

    /// Reads a secret key file; `password` is needed when it is encrypted.
    pub fn parse_file(text: &str, password: Option<&[u8]>) -> Result<SecretKey, FormatError> {
        let raw = secret_key_raw(text)?;
        let mut body = Zeroizing::new([0u8; 104]);
        body.copy_from_slice(&raw[54..158]);
        if &raw[2..4] == b"Sc" {
            let password =
                password.ok_or_else(|| ferr("secret key is encrypted: a password is needed"))?;
            let mut salt = [0u8; 32];
            salt.copy_from_slice(&raw[6..38]);
            let limits = KdfLimits {
                opslimit: u64::from_le_bytes(raw[38..46].try_into().unwrap_or_default()),
                memlimit: u64::from_le_bytes(raw[46..54].try_into().unwrap_or_default()),
            };
            let stream = kdf_stream(password, &salt, limits)?;
            for (b, s) in body.iter_mut().zip(stream.iter()) {
                *b ^= s;
            }
        }
        let mut id = [0u8; 8];
        id.copy_from_slice(&body[..8]);
        let mut sk = Zeroizing::new([0u8; 64]);
        sk.copy_from_slice(&body[8..72]);
        let chk = checksum(&id, &sk);
        // minisign (0.11) leaves the checksum of an unencrypted key all zero; the key is then checked
        // by deriving its public half below.
        let unencrypted_zero_chk = &raw[2..4] != b"Sc" && body[72..104].iter().all(|&b| b == 0);
        if chk[..] != body[72..104] && !unencrypted_zero_chk {
            return Err(ferr(
                "secret key checksum mismatch (wrong password or corrupted key)",
            ));
        }
        let mut seed = Zeroizing::new([0u8; 32]);
        seed.copy_from_slice(&sk[..32]);
        let signing = SigningKey::from_bytes(&seed);
        if signing.verifying_key().to_bytes()[..] != sk[32..] {
            return Err(ferr(
                "secret key is inconsistent (public half does not match)",
            ));
        }
        Ok(SecretKey {
            id: KeyId(id),
            signing,
        })
    }

    /// The secret key file text; encrypted with `password` (scrypt with `limits`) when given.
    pub fn to_file(
        &self,
        password: Option<&[u8]>,
        limits: KdfLimits,
    ) -> Result<String, FormatError> {
        let mut sk = Zeroizing::new([0u8; 64]);
        sk[..32].copy_from_slice(self.signing.as_bytes());
        sk[32..].copy_from_slice(&self.signing.verifying_key().to_bytes());
        let mut body = Zeroizing::new([0u8; 104]);
        body[..8].copy_from_slice(&self.id.0);
        body[8..72].copy_from_slice(sk.as_ref());
        body[72..].copy_from_slice(&checksum(&self.id.0, &sk));
        let mut salt = [0u8; 32];
        random_bytes(&mut salt)?;
        let kdf: [u8; 2] = if let Some(pw) = password {
            let stream = kdf_stream(pw, &salt, limits)?;
            for (b, s) in body.iter_mut().zip(stream.iter()) {
                *b ^= s;
            }
            *b"Sc"
        } else {
            [0, 0]
        };
        let mut raw = Zeroizing::new(Vec::with_capacity(158));
        raw.extend_from_slice(b"Ed");
        raw.extend_from_slice(&kdf);
        raw.extend_from_slice(b"B2");
        raw.extend_from_slice(&salt);
        raw.extend_from_slice(&limits.opslimit.to_le_bytes());
        raw.extend_from_slice(&limits.memlimit.to_le_bytes());
        raw.extend_from_slice(body.as_ref());
        let mut b64 = B64.encode(raw.as_slice());
        let comment = if password.is_some() {
            "minisign encrypted secret key"
        } else {
            "minisign secret key (NOT encrypted)"
        };
        let out = format!("{UNTRUSTED_PREFIX}{comment}\n{b64}\n");
        b64.zeroize();
        Ok(out)
    }

    /// Signs `data` (prehashed `ED`, or legacy `Ed`) with a trusted comment.
    pub fn sign(
        &self,
        data: &[u8],
        alg: SigAlg,
        untrusted_comment: &str,
        trusted_comment: &str,
    ) -> Result<SignatureFile, FormatError> {
        if !comment_ok(trusted_comment) || !comment_ok(untrusted_comment) {
            return Err(ferr(format!(
                "comments must be at most {MAX_COMMENT} bytes without control characters"
            )));
        }
        let mut sf = SignatureFile {
            untrusted_comment: untrusted_comment.to_string(),
            alg,
            key_id: self.id,
            signature: [0; 64],
            trusted_comment: trusted_comment.to_string(),
            global_signature: [0; 64],
        };
        sf.signature = self.signing.sign(&sf.signed_message(data)).to_bytes();
        sf.global_signature = self.signing.sign(&sf.global_message()).to_bytes();
        Ok(sf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_id_round_trip() {
        let id = KeyId([1, 2, 3, 4, 5, 6, 7, 0xAB]);
        assert_eq!(id.to_hex(), "AB07060504030201");
        assert_eq!(KeyId::parse("ab07060504030201"), Some(id));
        assert_eq!(KeyId::parse("AB0706050403020"), None);
        assert_eq!(KeyId::parse("+B07060504030201"), None);
    }

    #[test]
    fn sign_verify_and_tamper() {
        let sk = SecretKey::generate().unwrap();
        let pk = sk.public();
        let sf = sk
            .sign(b"hello", SigAlg::Prehashed, "u", "fwscan x=1")
            .unwrap();
        let back = SignatureFile::parse(sf.to_file().as_bytes()).unwrap();
        assert_eq!(back, sf);
        assert!(back.verify_data(&pk, b"hello"));
        assert!(back.verify_global(&pk));
        assert!(!back.verify_data(&pk, b"hellO"));
        let mut t = back.clone();
        t.trusted_comment.push('!');
        assert!(!t.verify_global(&pk));
        let other = SecretKey::generate().unwrap().public();
        assert!(!back.verify_data(&other, b"hello"));
    }

    #[test]
    fn secret_key_round_trip_plain_and_encrypted() {
        let sk = SecretKey::generate().unwrap();
        let plain = sk.to_file(None, KdfLimits::with_memory_mib(1)).unwrap();
        assert!(!secret_key_is_encrypted(&plain).unwrap());
        assert_eq!(
            SecretKey::parse_file(&plain, None).unwrap().public(),
            sk.public()
        );
        let enc = sk
            .to_file(Some(b"pw"), KdfLimits::with_memory_mib(1))
            .unwrap();
        assert!(secret_key_is_encrypted(&enc).unwrap());
        assert_eq!(
            SecretKey::parse_file(&enc, Some(b"pw")).unwrap().public(),
            sk.public()
        );
        assert!(SecretKey::parse_file(&enc, Some(b"wrong")).is_err());
        assert!(SecretKey::parse_file(&enc, None).is_err());
    }

    #[test]
    fn pickparams_matches_libsodium_for_minisign_defaults() {
        assert_eq!(KdfLimits::MINISIGN.scrypt_params(), (20, 8, 1));
        assert_eq!(KdfLimits::MINISIGN.memory() >> 20, 1024);
    }

    #[test]
    fn garbage_never_panics() {
        for input in [
            &b""[..],
            b"untrusted comment: x\n",
            b"untrusted comment: x\nRWQ=\n",
            b"untrusted comment: x\n\xff\xfe\n",
            b"trusted comment: x\n",
        ] {
            assert!(SignatureFile::parse(input).is_err());
        }
        assert!(PublicKey::from_base64("RWQ").is_err());
        assert!(SecretKey::parse_file("x\ny", None).is_err());
    }
}
