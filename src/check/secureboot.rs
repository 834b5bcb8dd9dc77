//! Secure Boot variable contents: EFI_SIGNATURE_LIST parsing (UEFI spec 32.4.1) and X.509 subjects
//! (with `x509-parser`). Bounds-checked; never panics.

use crate::error::ParseError;
use crate::formats::util::{guid, le32, slice};

/// EFI_CERT_X509_GUID.
pub const CERT_X509: &str = "A5C059A1-94E4-4AA7-87B5-AB155C2BF072";
/// EFI_CERT_SHA256_GUID.
pub const CERT_SHA256: &str = "C1C41626-504C-4092-ACA9-41F936934328";
/// EFI_GLOBAL_VARIABLE (PK, KEK).
pub const GLOBAL_VARIABLE: &str = "8BE4DF61-93CA-11D2-AA0D-00E098032B8C";
/// EFI_IMAGE_SECURITY_DATABASE_GUID (db, dbx).
pub const IMAGE_SECURITY_DATABASE: &str = "D719B2CB-3D3A-4596-A3BC-DAD00E67656F";

/// Most signatures read from one variable.
pub const MAX_SIGNATURES: usize = 100_000;

/// One EFI_SIGNATURE_DATA entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature<'a> {
    /// SignatureType of its list.
    pub sig_type: String,
    pub owner: String,
    pub data: &'a [u8],
}

/// Parses a sequence of EFI_SIGNATURE_LISTs.
pub fn parse_signature_lists(b: &[u8]) -> Result<Vec<Signature<'_>>, ParseError> {
    let mut out = Vec::new();
    let mut off: u64 = 0;
    let len = b.len() as u64;
    while off < len {
        let sig_type = guid(slice(b, off, 16, "EFI_SIGNATURE_LIST type")?);
        let list_size = u64::from(le32(b, off + 16, "SignatureListSize")?);
        let header_size = u64::from(le32(b, off + 20, "SignatureHeaderSize")?);
        let sig_size = u64::from(le32(b, off + 24, "SignatureSize")?);
        let body = list_size
            .checked_sub(28)
            .and_then(|v| v.checked_sub(header_size))
            .ok_or_else(|| ParseError::Invalid {
                what: "EFI_SIGNATURE_LIST",
                offset: off,
                detail: format!("list size {list_size} smaller than its headers"),
            })?;
        if sig_size < 16 || body % sig_size != 0 {
            return Err(ParseError::Invalid {
                what: "EFI_SIGNATURE_LIST",
                offset: off,
                detail: format!("signature size {sig_size} does not divide the list body {body}"),
            });
        }
        // The whole list must be inside the variable.
        slice(b, off, list_size, "EFI_SIGNATURE_LIST")?;
        let mut s = off + 28 + header_size;
        let end = off + list_size;
        while s < end {
            if out.len() >= MAX_SIGNATURES {
                return Err(ParseError::Limit {
                    what: format!("more than {MAX_SIGNATURES} signatures"),
                    offset: s,
                });
            }
            let owner = guid(slice(b, s, 16, "SignatureOwner")?);
            let data = slice(b, s + 16, sig_size - 16, "SignatureData")?;
            out.push(Signature {
                sig_type: sig_type.clone(),
                owner,
                data,
            });
            s += sig_size;
        }
        off = end;
    }
    Ok(out)
}

/// Subjects of the X.509 certificates in a signature-list variable (unparsable certificates are
/// reported as `<unparsable certificate: ...>`, so that they are visible).
pub fn certificate_subjects(b: &[u8]) -> Result<Vec<String>, ParseError> {
    Ok(parse_signature_lists(b)?
        .into_iter()
        .filter(|s| s.sig_type == CERT_X509)
        .map(|s| match x509_parser::parse_x509_certificate(s.data) {
            Ok((_, cert)) => cert.subject().to_string(),
            Err(e) => format!("<unparsable certificate: {e}>"),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(sig_type: [u8; 16], entries: &[&[u8]]) -> Vec<u8> {
        let sig_size = 16 + entries.first().map_or(0, |e| e.len());
        let mut v = sig_type.to_vec();
        v.extend(((28 + sig_size * entries.len()) as u32).to_le_bytes());
        v.extend(0u32.to_le_bytes());
        v.extend((sig_size as u32).to_le_bytes());
        for e in entries {
            v.extend([0x11u8; 16]);
            v.extend(*e);
        }
        v
    }

    #[test]
    fn parses_lists_and_rejects_bad_sizes() {
        let sha256_guid = [
            0x26, 0x16, 0xC4, 0xC1, 0x4C, 0x50, 0x92, 0x40, 0xAC, 0xA9, 0x41, 0xF9, 0x36, 0x93,
            0x43, 0x28,
        ];
        let mut b = list(sha256_guid, &[&[1u8; 32], &[2u8; 32]]);
        let sigs = parse_signature_lists(&b).unwrap();
        assert_eq!(sigs.len(), 2);
        assert_eq!(sigs[0].sig_type, CERT_SHA256);
        assert_eq!(sigs[1].data, &[2u8; 32]);
        // A list size past the end, and a zero signature size.
        b[16] = 0xFF;
        assert!(parse_signature_lists(&b).is_err());
        let mut z = list(sha256_guid, &[&[1u8; 32]]);
        z[24..28].copy_from_slice(&0u32.to_le_bytes());
        assert!(parse_signature_lists(&z).is_err());
        assert!(parse_signature_lists(&[0u8; 10]).is_err());
        assert!(parse_signature_lists(&[]).unwrap().is_empty());
    }
}
