//! COSE Hash Envelope (draft-ietf-cose-hash-envelope) for very large CoRIMs: a `COSE_Sign1` whose payload
//! is the digest of the CoRIM bytes, which lie in a file beside it.
//!
//! Protected header: `1 alg`, `258 payload_hash_alg` (-16 SHA-256; -43 SHA-384 and -44 SHA-512 are read),
//! `259 payload_preimage_content_type` (`application/rim+cbor`), `260 payload_location` (the preimage's
//! file name, relative to the envelope), and fwscan's `corim-meta` and embedded baseline as in an
//! ordinary export. No content type (3): the payload is a digest, not a CoRIM.
//!
//! Reading: the location must be a plain file name in the envelope's own directory (no `/`, `\`, `..`,
//! no NUL), the file is read capped at [`super::MAX_CORIM_SIZE`], its digest must equal the signed
//! payload, and only then is it decoded as the (unsigned, `#6.501`) CoRIM the envelope's signature vouches
//! for.

use std::path::{Path, PathBuf};

use sha2::Digest as _;

use super::cbor::{self, Value};
use super::CorimError;

pub const PAYLOAD_HASH_ALG: u64 = 258;
pub const PAYLOAD_PREIMAGE_CONTENT_TYPE: u64 = 259;
pub const PAYLOAD_LOCATION: u64 = 260;
/// COSE algorithm ids of hash functions (RFC 9054).
pub const COSE_SHA256: i64 = -16;
const COSE_SHA384: i128 = -43;
const COSE_SHA512: i128 = -44;

/// The protected header and payload of a `COSE_Sign1` message (`#6.18([prot, unprot, payload, sig])`),
/// when `bytes` are one whose protected header names a `payload_hash_alg`: a hash envelope.
fn envelope_header(bytes: &[u8]) -> Option<(Value, Vec<u8>)> {
    let top = cbor::decode(bytes).ok()?;
    let (18, msg) = top.as_tag()? else {
        return None;
    };
    let a = msg.as_array()?;
    let h = cbor::decode(a.first()?.as_bytes()?).ok()?;
    let payload = a.get(2)?.as_bytes()?.to_vec();
    h.get(i128::from(PAYLOAD_HASH_ALG))
        .is_some()
        .then_some((h, payload))
}

/// Is `prot` (an encoded protected header) a hash envelope's?
pub fn is_envelope_header(prot: &[u8]) -> bool {
    cbor::decode(prot).is_ok_and(|h| h.get(i128::from(PAYLOAD_HASH_ALG)).is_some())
}

/// A hash envelope's preimage, read and hashed, not yet compared.
#[derive(Debug, Clone)]
pub struct Preimage {
    pub path: PathBuf,
    pub bytes: Vec<u8>,
    /// `sha-256`, `sha-384` or `sha-512`.
    pub alg: &'static str,
    /// The digest the envelope signs (its payload).
    pub signed: Vec<u8>,
    /// The digest of the file.
    pub actual: Vec<u8>,
}

impl Preimage {
    pub fn matches(&self) -> bool {
        self.signed == self.actual
    }
}

fn bad<T>(message: impl Into<String>) -> Result<T, CorimError> {
    Err(CorimError {
        message: format!("COSE hash envelope: {}", message.into()),
    })
}

/// A `payload_location` that names a file in the envelope's own directory, or why not.
fn local_file(loc: &str) -> Result<&str, CorimError> {
    let plain = !loc.is_empty()
        && loc.len() <= 255
        && loc != "."
        && loc != ".."
        && !loc.contains(['/', '\\', '\0'])
        && !loc.starts_with('~');
    if plain {
        Ok(loc)
    } else {
        bad(format!(
            "payload_location (260) `{}` is not a file name beside the envelope (no directories, no `..`)",
            loc.escape_debug()
        ))
    }
}

/// When `bytes` are a hash envelope: its preimage, read from beside `envelope` (capped) and hashed.
/// `Ok(None)`: not a hash envelope.
pub fn preimage(bytes: &[u8], envelope: &Path) -> Result<Option<Preimage>, CorimError> {
    let Some((h, signed)) = envelope_header(bytes) else {
        return Ok(None);
    };
    let alg = match h.get(i128::from(PAYLOAD_HASH_ALG)).and_then(Value::as_int) {
        Some(a) if a == i128::from(COSE_SHA256) => "sha-256",
        Some(COSE_SHA384) => "sha-384",
        Some(COSE_SHA512) => "sha-512",
        Some(a) => {
            return bad(format!(
            "payload_hash_alg (258) {a}: SHA-256 (-16), SHA-384 (-43) or SHA-512 (-44) are read"
        ))
        }
        None => return bad("payload_hash_alg (258) is not an integer"),
    };
    match h.get(i128::from(PAYLOAD_PREIMAGE_CONTENT_TYPE)) {
        None => {}
        Some(Value::Text(t)) if t == super::CONTENT_TYPE => {}
        Some(o) => {
            return bad(format!(
                "payload_preimage_content_type (259) is {}, not `{}`",
                match o {
                    Value::Text(t) => format!("`{t}`"),
                    o => format!("a {}", o.type_name()),
                },
                super::CONTENT_TYPE
            ))
        }
    }
    let loc = match h.get(i128::from(PAYLOAD_LOCATION)) {
        Some(Value::Text(t)) => local_file(t)?,
        Some(o) => {
            return bad(format!(
                "payload_location (260) is a {}, not text",
                o.type_name()
            ))
        }
        None => return bad("no payload_location (260): the preimage cannot be found"),
    };
    let dir = match envelope.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let path = dir.join(loc);
    if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
        return bad(format!(
            "preimage {} is a symbolic link (it must be a file beside the envelope)",
            path.display()
        ));
    }
    let bytes =
        crate::input::read_capped(&path, super::MAX_CORIM_SIZE).map_err(|e| CorimError {
            message: format!("COSE hash envelope: preimage {}: {e}", path.display()),
        })?;
    let actual = match alg {
        "sha-256" => sha2::Sha256::digest(&bytes).to_vec(),
        "sha-384" => sha2::Sha384::digest(&bytes).to_vec(),
        _ => sha2::Sha512::digest(&bytes).to_vec(),
    };
    Ok(Some(Preimage {
        path,
        bytes,
        alg,
        signed,
        actual,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_location_is_a_plain_file_name() {
        assert!(local_file("golden.corim.payload.cbor").is_ok());
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "a/b",
            "/etc/passwd",
            "a\\b",
            "~x",
            "a\0b",
        ] {
            assert!(local_file(bad).is_err(), "{bad:?}");
        }
        assert!(local_file(&"x".repeat(256)).is_err());
    }
}
