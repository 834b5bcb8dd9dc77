//! tar archives, and OpenBMC update tarballs in particular (`obmc-phosphor-image-*.static.mtd.tar`,
//! `*.ubi.mtd.tar`, `*.static.mtd.all.tar` with `image-bmc`): `MANIFEST`, `publickey`, `image-*` and one
//! `.sig` per file, plus `image-full.sig`.
//!
//! **Reading.** A small bounded reader (POSIX ustar, GNU `L`/`K` long names, pax `x`/`g` headers):
//! 512-byte headers with their checksum checked, octal or base-256 sizes; nothing is extracted and no
//! name is ever used as a path on disk (a `../x` member is a label). Names, sizes and data are read as
//! GNU tar's `tar -x` reads them (see [`entries`]), since that is what a BMC runs on an upload. At most [`MAX_ENTRIES`] members; a
//! member whose size runs past the end of the file is clipped and noted, and the listing stops there.
//! Every member is a node named by its path (`fs-file`, `fs-dir`, `fs-symlink`; hard links are `blob`s
//! with their `target`), with `tar-header[NAME]` and `tar-pad[NAME]` nodes around it and `end` after the
//! archive. Each `image-*` member is parsed as the component it holds (FIT, U-Boot, squashfs, JFFS2, UBI,
//! a whole flash for `image-bmc`); `MANIFEST`'s `key=value` lines become its attributes.
//!
//! **Signatures** are verified as phosphor-bmc-code-mgmt does (`bmc/image_verify.cpp`), RSA PKCS#1 v1.5
//! with the digest named by `HashType` (`RSA-SHA256`, `RSA-SHA384`, `RSA-SHA512`):
//! - `MANIFEST.sig` and `publickey.sig` with a *system key* ([`OpenbmcKey`](crate::formats::keys::OpenbmcKey), the keys an OpenBMC keeps
//!   in `/etc/activationdata/KEYTYPE/publickey` with its `hashfunc`), any one of them sufficing. With
//!   system keys given and none verifying both files: `vendor-untrusted` on `MANIFEST`. Without any, the
//!   package can only be checked for self-consistency: when `publickey.sig` verifies with the package's
//!   own `publickey` (the usual OpenBMC build, where one key signs everything), `MANIFEST.sig` must too;
//!   the signer is reported as not trusted (attribute `signer`), which is not a finding.
//! - every `image-*` file with its `.sig` and the package's `publickey` (a missing `.sig` is invalid);
//! - `image-full.sig` (for `purpose` BMC packages, as the reference does) over the concatenation, in this
//!   order and skipping absent ones, of `image-bmc.sig`, `image-hostfw.sig`, `image-kernel.sig`,
//!   `image-rofs.sig`, `image-rwfs.sig`, `image-u-boot.sig`, `MANIFEST.sig`, `publickey.sig`.
//!
//! A signature that does not verify is `vendor-signature-invalid` on the file it covers, naming it. Each
//! checked file carries `openbmc-rsa` evidence: status, key, trust.
//!
//! **Complete or refused** (issue 19.7): a BMC package without `image-full.sig` is
//! `vendor-signature-invalid` on `MANIFEST`; one missing an image file of its set (those MANIFEST lists,
//! else [`WHOLE_FLASH_IMAGE`] or [`PARTITION_IMAGES`]) is `package-ambiguous` on `MANIFEST`; a name
//! `tar -x` would write twice, a link or directory with a size, or a listing that stops early is
//! `package-ambiguous`; an RSA key under 2048 bits or with an exponent under 65537 verifying any of it
//! is `vendor-key-weak`.
#![deny(clippy::arithmetic_side_effects)]

use std::collections::HashMap;

use crate::error::ParseError;
use crate::finding::{Code, Evidence, Protection, Scheme, Status, Trust};
use crate::formats::{Confidence, Ctx, Format, Parsed, Scope};
use crate::region::{Note, Policy, Region, RegionKind};

/// Most members listed from one archive.
pub const MAX_ENTRIES: usize = 100_000;
/// Largest `MANIFEST`, `publickey`, `.sig` or long-name member read.
const MAX_SMALL: u64 = 64 << 10;
const BLOCK: u64 = 512;

/// The files `image-full.sig` covers, in the order the reference concatenates them.
pub const FULL_ORDER: &[&str] = &[
    "image-bmc.sig",
    "image-hostfw.sig",
    "image-kernel.sig",
    "image-rofs.sig",
    "image-rwfs.sig",
    "image-u-boot.sig",
    "MANIFEST.sig",
    "publickey.sig",
];

/// One tar member.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The name `tar -x` writes it under: GNU `GNU.sparse.name`, else pax `path` (of the member's own
    /// `x` header, else of the last global `g` header), else the GNU long name, else ustar prefix/name.
    pub name: String,
    pub typ: u8,
    /// First header block (including GNU/pax extension headers before it).
    pub hdr: u64,
    pub data: u64,
    pub size: u64,
    pub link: String,
    /// The size a link, device, FIFO or directory header declares: GNU tar's `-x` reads no data for
    /// them and takes the next block as the next header (`-t` skips the data of all but directories).
    pub ignored_size: u64,
}

/// Values of a pax extended header that change how a member is read (`x`: the next member only; `g`:
/// every member after it, until the next `g`).
#[derive(Debug, Clone, Default)]
struct Pax {
    path: Option<String>,
    sparse_name: Option<String>,
    linkpath: Option<String>,
    size: Option<u64>,
    /// A `GNU.sparse.*` keyword other than `GNU.sparse.name`: the member's data starts with a sparse map.
    sparse: bool,
}

/// A pax extended header fwscan cannot read as GNU tar does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum PaxError {
    #[error("pax `size` record `{0}` is not a decimal number")]
    Size(String),
}

impl Pax {
    fn parse(body: &[u8]) -> Result<Pax, PaxError> {
        let mut p = Pax::default();
        for (k, v) in pax(body) {
            match k.as_str() {
                "path" => p.path = Some(v),
                "linkpath" => p.linkpath = Some(v),
                "GNU.sparse.name" => p.sparse_name = Some(v),
                "size" => p.size = Some(v.parse().map_err(|_| PaxError::Size(v.clone()))?),
                k if k.starts_with("GNU.sparse.") => p.sparse = true,
                _ => {}
            }
        }
        Ok(p)
    }
}

/// A problem that stopped a tar listing: its code, message and offset.
pub type Stop = (Code, String, u64);

/// The members of a tar archive at the start of `b`, and where the archive ends (the first zero block, or
/// where reading stopped); a problem that stopped the listing comes with its offset.
///
/// Members are read as GNU tar's `tar -x` reads them (checked against GNU tar 1.34 in the tests): a pax
/// `GNU.sparse.name` wins over `path`, a member's own `x` header over the last `g` header, both over a
/// GNU long name (`L`), which wins over the ustar prefix (used whenever the magic is `ustar\0`, whatever
/// the version) and name; each `x` or `g` header replaces the previous one; pax `size` overrides the
/// header's size; links, devices, FIFOs and directories have no data, whatever their size field says.
/// Sparse members (type `S`, pax `GNU.sparse.*` maps) stop the listing: their data is not read.
pub fn entries(b: &[u8]) -> (Vec<Entry>, u64, Option<Stop>) {
    let mut reader = Reader::default();
    let mut out = Vec::new();
    let mut pos = 0u64;
    loop {
        // The data (or extension body) after the header block at `pos`.
        let (data, size) = match reader.record(b, pos, &mut out) {
            Ok(v) => v,
            Err((end, problem)) => return (out, end, problem),
        };
        let next = data
            .checked_add(size)
            .and_then(|e| e.checked_add(BLOCK.saturating_sub(1)))
            .map(|e| (e / BLOCK).saturating_mul(BLOCK));
        let Some(n) = next.filter(|&n| n > pos) else {
            return (
                out,
                pos,
                Some((Code::Unparsed, "tar: member size overflows".into(), pos)),
            );
        };
        pos = n;
    }
}

/// An extension header the listing stops at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum ExtensionError {
    #[error("tar: extension header of {0} bytes is too large or truncated")]
    TooLarge(u64),
    #[error("tar: {0}")]
    Pax(PaxError),
}

/// Where a listing ends (the archive's end, or where reading stopped) and why, when it stopped early.
type End = (u64, Option<Stop>);

/// What a tar reader carries from one header to the next: extension headers that apply to the next
/// member (GNU long names, a pax `x` header) or to every member after them (a pax `g` header).
#[derive(Default)]
struct Reader {
    /// The first header block of the member being read (its extension headers come first).
    ext_start: Option<u64>,
    long_name: Option<String>,
    long_link: Option<String>,
    local: Pax,
    global: Pax,
}

impl Reader {
    /// Reads the record whose header block is at `pos`: an extension header, or a member (pushed on `out`).
    /// Returns where its data starts and how many bytes of data follow the header; `Err` ends the listing.
    fn record(&mut self, b: &[u8], pos: u64, out: &mut Vec<Entry>) -> Result<(u64, u64), End> {
        let (block, header_size) = header_block(b, pos, out.len())?;
        // The header block was read at `pos`, so `pos + BLOCK <= len`.
        let data = pos.saturating_add(BLOCK);
        let typ = block[156];
        let hdr = *self.ext_start.get_or_insert(pos);
        let avail = (b.len() as u64).saturating_sub(data);
        let stop = |msg: String| (pos, Some((Code::Unparsed, msg, pos)));
        let size = match typ {
            b'L' | b'K' | b'x' | b'g' => self
                .extension(b, typ, data, header_size, avail)
                .map_err(|msg| stop(msg.to_string()))?,
            b'S' => {
                return Err(stop(
                    "tar: GNU sparse member (type S): its sparse map is not read".into(),
                ))
            }
            _ => {
                if self.local.sparse || self.global.sparse {
                    return Err(stop(
                        "tar: pax GNU sparse member: its sparse map is not read".into(),
                    ));
                }
                let (e, declared) = self.member(block, typ, hdr, data, header_size, avail);
                out.push(e);
                if declared > avail {
                    return Err((
                        b.len() as u64,
                        Some((
                            Code::PartitionOutOfBounds,
                            format!("tar: member's size {declared:#x} runs past the end of the archive ({avail:#x} bytes left)"),
                            pos,
                        )),
                    ));
                }
                declared
            }
        };
        Ok((data, size))
    }

    /// An extension header (`L`, `K`, `x`, `g`): remembered for the members it applies to. Returns the size
    /// of its body; `Err` stops the listing.
    fn extension(
        &mut self,
        b: &[u8],
        typ: u8,
        data: u64,
        header_size: u64,
        avail: u64,
    ) -> Result<u64, ExtensionError> {
        if header_size > MAX_SMALL || header_size > avail {
            return Err(ExtensionError::TooLarge(header_size));
        }
        let body = &b[data as usize..data.saturating_add(header_size) as usize];
        match typ {
            b'L' => self.long_name = Some(cstr(body)),
            b'K' => self.long_link = Some(cstr(body)),
            _ => match Pax::parse(body) {
                Ok(p) if typ == b'x' => self.local = p,
                Ok(p) => self.global = p,
                Err(e) => return Err(ExtensionError::Pax(e)),
            },
        }
        Ok(header_size)
    }

    /// A member, under the name, link target and size `tar -x` gives it (see [`entries`]), and the size of
    /// the data `tar -x` reads after its header (0 for links, devices, FIFOs and directories), before it is
    /// clipped to the archive; the extension headers of this member are used up.
    fn member(
        &mut self,
        block: &[u8],
        typ: u8,
        hdr: u64,
        data: u64,
        header_size: u64,
        avail: u64,
    ) -> (Entry, u64) {
        let pax = std::mem::take(&mut self.local);
        let mut name = pax
            .sparse_name
            .or_else(|| self.global.sparse_name.clone())
            .or(pax.path)
            .or_else(|| self.global.path.clone())
            .or_else(|| self.long_name.take())
            .unwrap_or_else(|| {
                let n = cstr(&block[..100]);
                let prefix = cstr(&block[345..500]);
                if &block[257..263] == b"ustar\0" && !prefix.is_empty() {
                    format!("{prefix}/{n}")
                } else {
                    n
                }
            });
        self.long_name = None;
        if name.is_empty() {
            name = "unnamed".into();
        }
        let link = pax
            .linkpath
            .or_else(|| self.global.linkpath.clone())
            .or_else(|| self.long_link.take())
            .unwrap_or_else(|| cstr(&block[157..257]));
        self.long_link = None;
        self.ext_start = None;
        let size = pax.size.or(self.global.size).unwrap_or(header_size);
        // `tar -x` reads no data for links, devices, FIFOs and directories.
        let has_data = !matches!(typ, b'1'..=b'6');
        let entry = Entry {
            name,
            typ,
            hdr,
            data,
            size: if has_data { size.min(avail) } else { 0 },
            link,
            ignored_size: if has_data { 0 } else { size },
        };
        (entry, if has_data { size } else { 0 })
    }
}

/// The header block at `pos` and the size it declares; `Err` where the listing ends: the end of the data
/// (a partial block is a problem), a zero block (the archive's end), too many members, a bad checksum, a
/// size that is no number.
fn header_block(b: &[u8], pos: u64, members: usize) -> Result<(&[u8], u64), End> {
    let stop = |code: Code, msg: String| (pos, Some((code, msg, pos)));
    // `pos` may lie far past the end of a clipped member, up to u64::MAX - 511: the block's end
    // saturates (it overflowed, issue 15.13).
    let Some(block) = b.get(pos as usize..pos.saturating_add(BLOCK) as usize) else {
        let len = b.len() as u64;
        if pos < len {
            return Err(stop(
                Code::Unparsed,
                format!(
                    "tar: {} trailing bytes are not a whole header block",
                    len.saturating_sub(pos)
                ),
            ));
        }
        return Err((pos, None));
    };
    if block.iter().all(|&c| c == 0) {
        return Err((pos, None));
    }
    if members >= MAX_ENTRIES {
        return Err(stop(
            Code::LimitExceeded,
            format!("tar: more than {MAX_ENTRIES} members; the rest is not listed"),
        ));
    }
    if !checksum_ok(block) {
        return Err(stop(
            Code::Unparsed,
            "tar: header checksum is wrong (GNU tar skips to the next valid header; fwscan stops)"
                .into(),
        ));
    }
    let Some(header_size) = number(&block[124..136]) else {
        return Err(stop(
            Code::Unparsed,
            "tar: size field is not a number".into(),
        ));
    };
    Ok((block, header_size))
}

fn cstr(b: &[u8]) -> String {
    let s = b.split(|&c| c == 0).next().unwrap_or(&[]);
    String::from_utf8_lossy(s)
        .chars()
        .map(|c| if c.is_control() { '_' } else { c })
        .collect()
}

/// `len key=value\n` records of a pax extended header.
// Reviewed: `pos` and `n` index the record text (`n <= rest.len()`).
#[allow(clippy::arithmetic_side_effects)]
fn pax(b: &[u8]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < b.len() && out.len() < 256 {
        let rest = &b[pos..];
        let Some(sp) = rest.iter().position(|&c| c == b' ') else {
            break;
        };
        let Some(n) = std::str::from_utf8(&rest[..sp])
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
        else {
            break;
        };
        if n <= sp + 1 || n > rest.len() {
            break;
        }
        let rec = &rest[sp + 1..n];
        let rec = rec.strip_suffix(b"\n").unwrap_or(rec);
        if let Some(eq) = rec.iter().position(|&c| c == b'=') {
            out.push((cstr(&rec[..eq]), cstr(&rec[eq + 1..])));
        }
        pos += n;
    }
    out
}

/// An octal (NUL/space terminated) or base-256 number field.
fn number(f: &[u8]) -> Option<u64> {
    if f.first().is_some_and(|&c| c & 0x80 != 0) {
        let mut v = u64::from(f[0] & 0x7F);
        for &c in &f[1..] {
            v = v.checked_mul(256)?.checked_add(u64::from(c))?;
        }
        return Some(v);
    }
    let s: Vec<u8> = f
        .iter()
        .copied()
        .skip_while(|&c| c == b' ' || c == 0)
        .take_while(|&c| c != b' ' && c != 0)
        .collect();
    if s.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(std::str::from_utf8(&s).ok()?, 8).ok()
}

// Reviewed: a sum of 512 bytes.
#[allow(clippy::arithmetic_side_effects)]
fn checksum_ok(block: &[u8]) -> bool {
    let Some(stored) = number(&block[148..156]) else {
        return false;
    };
    let mut unsigned = 0u64;
    let mut signed = 0i64;
    for (i, &c) in block.iter().enumerate() {
        let c = if (148..156).contains(&i) { b' ' } else { c };
        unsigned += u64::from(c);
        signed += i64::from(c as i8);
    }
    stored == unsigned || i64::try_from(stored).is_ok_and(|s| s == signed)
}

pub fn probe(b: &[u8]) -> Option<Confidence> {
    let block = b.get(..BLOCK as usize)?;
    if &block[257..262] != b"ustar" || !checksum_ok(block) {
        return None;
    }
    // An OpenBMC package names its MANIFEST among the first members.
    let (list, _, _) = entries(b.get(..(64 * 1024).min(b.len()))?);
    if list
        .iter()
        .any(|e| e.name.trim_start_matches("./") == "MANIFEST")
    {
        Some(Confidence::High)
    } else {
        Some(Confidence::Medium)
    }
}

/// The digest named by an OpenBMC `HashType` (`EVP_get_digestbyname` names).
fn hash_name(h: &str) -> Option<&'static str> {
    let u = h.trim().to_ascii_uppercase();
    let u = u.strip_prefix("RSA-").unwrap_or(&u);
    match u.replace('-', "").as_str() {
        "SHA256" => Some("SHA256"),
        "SHA384" => Some("SHA384"),
        "SHA512" => Some("SHA512"),
        _ => None,
    }
}

/// Why bytes are not an RSA public key in PEM.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PemKeyError {
    #[error("not PEM text")]
    NotText,
    #[error("no PEM `-----BEGIN` line")]
    NoBegin,
    #[error("no PEM `-----END` line")]
    NoEnd,
    #[error("unterminated PEM `-----END` line")]
    Unterminated,
    #[error("not an RSA public key: {0}")]
    NotRsa(rsa::pkcs1::Error),
}

/// Parses an RSA public key in PEM (SubjectPublicKeyInfo, else PKCS#1).
// Reviewed: indices into the PEM text found by `find`, plus the lengths of the markers.
#[allow(clippy::arithmetic_side_effects)]
pub fn public_key(pem: &[u8]) -> Result<rsa::RsaPublicKey, PemKeyError> {
    use rsa::pkcs1::DecodeRsaPublicKey;
    use rsa::pkcs8::DecodePublicKey;
    let text = std::str::from_utf8(pem).map_err(|_| PemKeyError::NotText)?;
    let start = text.find("-----BEGIN ").ok_or(PemKeyError::NoBegin)?;
    let end_at = text[start..]
        .find("-----END ")
        .map(|e| start + e)
        .ok_or(PemKeyError::NoEnd)?;
    let close = text[end_at + 9..]
        .find("-----")
        .map(|e| end_at + 9 + e + 5)
        .ok_or(PemKeyError::Unterminated)?;
    let block = &text[start..close];
    rsa::RsaPublicKey::from_public_key_pem(block)
        .or_else(|_| rsa::RsaPublicKey::from_pkcs1_pem(block))
        .map_err(PemKeyError::NotRsa)
}

/// An OpenBMC `HashType` (or a CMS digest) this build does not verify with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("HashType `{hash_type}` is not supported")]
#[non_exhaustive]
pub struct UnsupportedHash {
    pub hash_type: String,
}

/// Verifies an RSA PKCS#1 v1.5 signature over `data` with the digest of `hash_type`. `Err` when the hash
/// type is not supported; `Ok(false)` when the signature does not verify.
pub fn verify_rsa(
    key: &rsa::RsaPublicKey,
    hash_type: &str,
    data: &[u8],
    sig: &[u8],
) -> Result<bool, UnsupportedHash> {
    use rsa::pkcs1v15::{Signature, VerifyingKey};
    use rsa::signature::Verifier;
    let h = hash_name(hash_type).ok_or_else(|| UnsupportedHash {
        hash_type: hash_type.to_string(),
    })?;
    let Ok(sig) = Signature::try_from(sig) else {
        return Ok(false);
    };
    let k = key.clone();
    Ok(match h {
        "SHA256" => VerifyingKey::<sha2::Sha256>::new(k)
            .verify(data, &sig)
            .is_ok(),
        "SHA384" => VerifyingKey::<sha2::Sha384>::new(k)
            .verify(data, &sig)
            .is_ok(),
        _ => VerifyingKey::<sha2::Sha512>::new(k)
            .verify(data, &sig)
            .is_ok(),
    })
}

/// `key=value` lines of a `MANIFEST` (as phosphor's `Version::getValue` reads them).
pub fn manifest_fields(b: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(b)
        .lines()
        .take(1024)
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// A member's name as GNU tar's `tar -x` writes it: leading `/` removed, empty and `.` components
/// dropped (`./a`, `.//a` and `/a` are all `a`). `..` components are kept (GNU tar does not extract such
/// a member; the name is only a label).
fn clean(name: &str) -> String {
    let n = name
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect::<Vec<_>>()
        .join("/");
    if n.is_empty() {
        ".".into()
    } else {
        n
    }
}

/// The key two members collide under: [`clean`], then everything up to the last `..` component removed
/// (BusyBox tar's rule for `../x` and `a/../x`; GNU tar skips such members), so that no extractor can
/// write one name twice without fwscan seeing it.
fn collision_key(name: &str) -> String {
    let c = clean(name);
    let parts: Vec<&str> = c.split('/').collect();
    match parts.iter().rposition(|p| *p == "..") {
        Some(i) => match parts.get(i.saturating_add(1)..) {
            Some(rest) if !rest.is_empty() => rest.join("/"),
            _ => ".".into(),
        },
        None => c,
    }
}

/// The registry entry.
pub const FORMAT: Format = Format {
    name: "tar",
    description: "tar archive; OpenBMC update tarball (MANIFEST, publickey, image-* parsed, RSA signatures verified)",
    probe,
    parse,
    scope: Scope::Flash,
    component: Some("bmc"),
    policy: None,
    not_inside: &[],
    payloads: &[],
    package: Some(&PACKAGE),
};

// Reviewed: a member's data and padding lie inside `b` (entries() clips sizes to what is left), `hdr <= data`, and `base` plus an offset inside the node fits.
#[allow(clippy::arithmetic_side_effects)]
pub fn parse(ctx: &Ctx, node: &Region) -> Result<Parsed, ParseError> {
    let b = node.bytes();
    let base = node.offset;
    let (list, end, problem) = entries(b);
    if list.is_empty() && problem.is_some() {
        let (_, msg, at) = problem.unwrap_or((Code::Unparsed, String::new(), 0));
        return Err(ParseError::Invalid {
            what: "tar",
            offset: base + at,
            detail: msg,
        });
    }
    let mut out: Vec<Region> = Vec::new();
    let mut by_name: HashMap<String, usize> = HashMap::new();
    let mut member_at: Vec<usize> = Vec::with_capacity(list.len());
    for e in &list {
        let name = clean(&e.name);
        out.push(
            Region::new(
                RegionKind::Header,
                format!("tar-header[{name}]"),
                &node.data,
                base + e.hdr,
                e.data - e.hdr,
            )
            .with_attr("tar-path", e.name.clone()),
        );
        let kind = match e.typ {
            b'0' | 0 | b'7' => RegionKind::FsFile,
            b'5' => RegionKind::FsDir,
            b'2' => RegionKind::FsSymlink,
            _ => RegionKind::Blob,
        };
        let mut r = Region::new(kind, name.clone(), &node.data, base + e.data, e.size)
            .with_attr("tar-path", e.name.clone())
            .with_attr("size", e.size);
        if matches!(e.typ, b'1' | b'2') {
            r.attrs.insert("target".into(), e.link.clone().into());
        }
        let padded = e.size.div_ceil(BLOCK) * BLOCK;
        let pad_end = (e.data + padded).min(b.len() as u64);
        let pad = (e.data + e.size < pad_end).then(|| {
            Region::new(
                RegionKind::Padding,
                format!("tar-pad[{name}]"),
                &node.data,
                base + e.data + e.size,
                pad_end - e.data - e.size,
            )
        });
        // `tar -x` keeps the last member of a name.
        by_name.insert(name, out.len());
        member_at.push(out.len());
        out.push(r);
        out.extend(pad);
    }
    // An OpenBMC package (a `MANIFEST` member) must read the same whatever extracts it.
    let package = by_name.contains_key("MANIFEST");
    if package {
        ambiguities(&list, &member_at, base, &mut out);
    }
    if let Some((code, msg, at)) = problem {
        let at = at.min(b.len() as u64);
        let mut r = Region::new(
            RegionKind::Blob,
            "unparsed",
            &node.data,
            base + at,
            b.len() as u64 - at,
        );
        r.notes.push(Note::new(code, msg, Some(base + at)));
        if package {
            // GNU tar skips a bad header and goes on: what it extracts after it is not seen here.
            r.notes.push(Note::new(
                Code::PackageAmbiguous,
                format!("the package's tar listing stops at {:#x}, before its end: members after it are not seen, though tar -x may extract them", base + at),
                Some(base + at),
            ));
        }
        out.push(r);
    } else if end < b.len() as u64 {
        out.push(Region::new(
            RegionKind::Padding,
            "end",
            &node.data,
            base + end,
            b.len() as u64 - end,
        ));
    }

    // Components.
    for r in out.iter_mut() {
        if r.kind == RegionKind::FsFile
            && r.name.starts_with("image-")
            && !r.name.ends_with(".sig")
            && r.size > 0
        {
            crate::formats::descend_file(ctx, r);
        }
    }
    verify(ctx, &mut out, &by_name);
    Ok(out.into())
}

/// `package-ambiguous` notes for an OpenBMC package whose members another reader could see otherwise:
/// a name written twice (`tar -x` keeps the last copy, which no signature check before it saw), a link,
/// device or directory header with a size (`tar -x` reads its "data" as headers, `tar -t` skips it), a
/// listing that stops before the end is noted where it stops.
// Reviewed: offsets inside the archive plus the node's base.
#[allow(clippy::arithmetic_side_effects)]
fn ambiguities(list: &[Entry], member_at: &[usize], base: u64, out: &mut [Region]) {
    let mut first: HashMap<String, &Entry> = HashMap::new();
    for (e, &i) in list.iter().zip(member_at) {
        let key = collision_key(&e.name);
        if let Some(f) = first.get(key.as_str()) {
            let m = format!(
                "`{key}` occurs twice, at {:#x} (`{}`) and at {:#x} (`{}`): tar -x writes both to one file and keeps the last, so what is verified need not be what is installed",
                base + f.hdr,
                f.name,
                base + e.hdr,
                e.name
            );
            out[i]
                .notes
                .push(Note::new(Code::PackageAmbiguous, m, Some(base + e.hdr)));
        } else {
            first.insert(key, e);
        }
        if e.ignored_size > 0 {
            let m = format!(
                "`{}` (type `{}`) declares {} bytes of data it cannot have: tar -x reads the next header right after it, tar -t skips those bytes",
                e.name,
                char::from(e.typ).escape_default(),
                e.ignored_size
            );
            out[i]
                .notes
                .push(Note::new(Code::PackageAmbiguous, m, Some(base + e.hdr)));
        }
    }
}

fn small<'a>(out: &'a [Region], by_name: &HashMap<String, usize>, name: &str) -> Option<&'a [u8]> {
    let r = &out[*by_name.get(name)?];
    (r.kind == RegionKind::FsFile && r.size <= MAX_SMALL).then(|| r.bytes())
}

fn note(out: &mut [Region], by_name: &HashMap<String, usize>, name: &str, code: Code, msg: String) {
    if let Some(&i) = by_name.get(name) {
        let at = out[i].offset;
        out[i].notes.push(Note::new(code, msg, Some(at)));
    }
}

/// Records an OpenBMC RSA signature check on member `name`: what a `.sig` established about it.
fn evidence(out: &mut [Region], by_name: &HashMap<String, usize>, name: &str, e: Evidence) {
    if let Some(&i) = by_name.get(name) {
        out[i].evidence.push(e);
    }
}

/// An OpenBMC signature check: `signer` names the key, `trust` how far it is trusted; image files get
/// `vendor-package` coverage when it holds.
fn obmc(status: Status, signer: &str, trust: &Trust, protects: bool) -> Evidence {
    let e = Evidence::on_node(Scheme::OpenbmcRsa, status)
        .with_signer(signer)
        .with_trust(trust.clone());
    if protects {
        e.with_protection(Protection::VendorPackage)
    } else {
        e
    }
}

/// The image files of a BMC package of a partition layout: static (`*.static.mtd.tar`), UBI
/// (`*.ubi.mtd.tar`) and eMMC (`*.ext4.mmc.tar`) alike, as `image_types_phosphor.bbclass` makes them and
/// phosphor-bmc-code-mgmt's `bmcImages` lists them.
pub const PARTITION_IMAGES: &[&str] = &["image-u-boot", "image-kernel", "image-rofs", "image-rwfs"];
/// The image file of a whole-flash BMC package (`*.static.mtd.all.tar`).
pub const WHOLE_FLASH_IMAGE: &str = "image-bmc";

/// An OpenBMC update tarball is a release package: a tar archive with a `MANIFEST` member (whatever image
/// files it still holds: one stripped of them is refused, not taken for a plain archive). Its partition
/// images are its parts, each in the flash partition of its name; the flash layout is the one its signed
/// kernel FIT carries; each image file carries its own signature, made with the package's key, which
/// `MANIFEST.sig` ties to a system key.
pub const PACKAGE: crate::formats::package::PackageSpec = crate::formats::package::PackageSpec {
    kind: "openbmc-tarball",
    is_package: |tree| tree.children.iter().any(|c| c.name == "MANIFEST"),
    parts: crate::formats::package::Parts::Members(PARTS),
    flash_layout: Some(|tree| {
        let kernel = tree.children.iter().find(|c| c.name == "image-kernel")?;
        crate::formats::bmc::fit_flash_layout(kernel.bytes())
    }),
    signing: Some(crate::formats::package::Signing::PerPart {
        root: "MANIFEST",
        key_hint: "give the vendor's OpenBMC key in the trust policy (`vendor_keys`) or with --openbmc-key",
    }),
    ubi_volume: Some(ubi_volume),
};

/// The UBI volume a member of a UBI-layout package (`*.ubi.mtd.tar`) is found in, as phosphor's
/// `image_types_phosphor.bbclass` (`do_make_ubi`) names the volumes it writes with `ubinize`: the kernel
/// FIT in static volume 0 `kernel-<version id>`, the read-only squashfs in static volume 1
/// `rofs-<version id>`, the per-machine UBIFS in dynamic volume 2 `rwfs`. U-Boot stays in the `u-boot`
/// partition in front of the UBI area (`None` for it: partition anchor). The version id is
/// `image_version.bbclass`'s `do_get_versionID`: the first 8 hex digits of the SHA-512 of the `version`
/// the package's `MANIFEST` states (quotes stripped), the id phosphor-bmc-code-mgmt names the volumes by.
/// `None` for a package of the static or eMMC layout. The flag: the volume is per-machine (`rwfs`).
fn ubi_volume(tree: &Region, member: &str) -> Option<(String, bool)> {
    let id = ubi_version_id(tree)?;
    match member {
        "image-kernel" => Some((format!("kernel-{id}"), false)),
        "image-rofs" => Some((format!("rofs-{id}"), false)),
        "image-rwfs" => Some(("rwfs".into(), true)),
        _ => None,
    }
}

/// UBIFS's node magic (0x06101831, little-endian) and the superblock node type at byte 20: the first
/// node of a UBIFS image (`mkfs.ubifs`).
fn is_ubifs(b: &[u8]) -> bool {
    b.get(..4) == Some(&[0x31, 0x18, 0x10, 0x06][..]) && b.get(20) == Some(&6)
}

/// The version id of a UBI-layout package: its `image-rwfs` is UBIFS (`FLASH_UBI_OVERLAY_BASETYPE`), or
/// the flash layout its kernel FIT carries has a UBI partition (`obmc-ubi`); `None` otherwise, or without
/// a `MANIFEST` version.
fn ubi_version_id(tree: &Region) -> Option<String> {
    let member = |n: &str| {
        tree.children
            .iter()
            .find(|c| c.name == n && c.kind == RegionKind::FsFile)
    };
    let ubifs_rwfs = member("image-rwfs").is_some_and(|r| is_ubifs(r.bytes()));
    let ubi_layout = || {
        member("image-kernel")
            .and_then(|k| crate::formats::bmc::fit_flash_layout(k.bytes()))
            .is_some_and(|l| {
                l.entries
                    .iter()
                    .any(|e| e.name.to_ascii_lowercase().contains("ubi"))
            })
    };
    if !ubifs_rwfs && !ubi_layout() {
        return None;
    }
    let manifest = member("MANIFEST").filter(|m| m.size <= MAX_SMALL)?;
    let (_, version) = manifest_fields(manifest.bytes())
        .into_iter()
        .find(|(k, _)| k == "version")?;
    let version = version.trim_matches('"');
    if version.is_empty() {
        return None;
    }
    use sha2::Digest;
    let d = sha2::Sha512::digest(version.as_bytes());
    Some(hex::encode(&d[..4]))
}

/// The package's parts: each of [`PARTITION_IMAGES`] in the flash partition OpenBMC's static layout names
/// after it.
const PARTS: &[crate::formats::package::Member] = &[
    crate::formats::package::Member {
        name: "image-u-boot",
        partition: "u-boot",
    },
    crate::formats::package::Member {
        name: "image-kernel",
        partition: "kernel",
    },
    crate::formats::package::Member {
        name: "image-rofs",
        partition: "rofs",
    },
    crate::formats::package::Member {
        name: "image-rwfs",
        partition: "rwfs",
    },
];

/// The image files `MANIFEST` lists: keys that are image file names (`image-kernel=...`) and the words
/// of `Files=` or `Images=` values (any case), sorted.
fn manifest_images(fields: &[(String, String)]) -> Vec<String> {
    let is_image = |w: &str| {
        w.len() > 6
            && w.starts_with("image-")
            && !w.ends_with(".sig")
            && w != "image-full"
            && w.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    let mut v: Vec<String> = Vec::new();
    for (k, val) in fields {
        if is_image(k) {
            v.push(k.clone());
        }
        if k.eq_ignore_ascii_case("files") || k.eq_ignore_ascii_case("images") {
            v.extend(
                val.split(|c: char| c.is_whitespace() || c == ',' || c == ';')
                    .filter(|w| is_image(w))
                    .map(str::to_string),
            );
        }
    }
    v.sort();
    v.dedup();
    v
}

/// `package-ambiguous` on `MANIFEST` for every image file the package must hold and does not: those
/// `MANIFEST` lists, else (BMC packages) the standard set of its layout: [`WHOLE_FLASH_IMAGE`] when
/// present, else [`PARTITION_IMAGES`].
fn completeness(
    out: &mut [Region],
    by_name: &HashMap<String, usize>,
    fields: &[(String, String)],
    bmc: bool,
) {
    let present = |n: &str| {
        by_name
            .get(n)
            .is_some_and(|&i| out[i].kind == RegionKind::FsFile)
    };
    let listed = manifest_images(fields);
    let (required, why): (Vec<String>, &str) = if !listed.is_empty() {
        (listed, "MANIFEST lists")
    } else if !bmc {
        return;
    } else if present(WHOLE_FLASH_IMAGE) {
        (
            vec![WHOLE_FLASH_IMAGE.to_string()],
            "a whole-flash BMC package holds",
        )
    } else {
        (
            PARTITION_IMAGES.iter().map(|s| s.to_string()).collect(),
            "a BMC package of the static, UBI or eMMC layout holds",
        )
    };
    let missing: Vec<&String> = required.iter().filter(|n| !present(n)).collect();
    for m in missing {
        note(
            out,
            by_name,
            "MANIFEST",
            Code::PackageAmbiguous,
            format!(
                "{m} is missing: {why} {}; a package without it would leave that part of the flash as it is, unverified",
                required.join(", ")
            ),
        );
    }
}

/// Key strength: the one rule for every RSA vendor key ([`crate::formats::x509::rsa_key_strength`]).
use crate::formats::x509::rsa_key_strength as key_strength;

/// Signature verification (see the module documentation); results as evidence and notes on `out`. One
/// step per part of the reference's check: `MANIFEST` and the package's completeness, the package's own
/// key, the system level (`MANIFEST.sig`, `publickey.sig`), every image file, `image-full.sig`.
fn verify(ctx: &Ctx, out: &mut [Region], by_name: &HashMap<String, usize>) {
    let Some((fields, bmc)) = read_manifest(out, by_name) else {
        return;
    };
    let get = |k: &str| fields.iter().find(|(x, _)| x == k).map(|(_, v)| v.clone());
    let hash_type = get("HashType").unwrap_or_else(|| "RSA-SHA256".into());
    let key_type = get("KeyType").unwrap_or_default();
    let Some(pk) = package_key(out, by_name, &hash_type) else {
        return;
    };
    let own = format!("the package's publickey ({hash_type})");
    let trust = system_level(ctx, out, by_name, &pk, &hash_type, &key_type, &own);
    image_files(out, by_name, &pk, &hash_type, &own, &trust);
    full_signature(out, by_name, &pk, &hash_type, &own, &trust, bmc);
}

/// `MANIFEST`: its `key=value` lines as attributes, and the package's completeness. Returns its fields and
/// whether it is a BMC package (`purpose` BMC); `None` without a readable `MANIFEST` (not a package).
fn read_manifest(
    out: &mut [Region],
    by_name: &HashMap<String, usize>,
) -> Option<(Vec<(String, String)>, bool)> {
    let manifest = small(out, by_name, "MANIFEST").map(<[u8]>::to_vec)?;
    let fields = manifest_fields(&manifest);
    if let Some(&i) = by_name.get("MANIFEST") {
        for (k, v) in fields.iter().take(64) {
            out[i]
                .attrs
                .insert(format!("manifest.{k}").into(), v.clone().into());
        }
        out[i].policy = Policy::Static;
    }
    let bmc = fields
        .iter()
        .find(|(k, _)| k == "purpose")
        .is_some_and(|(_, p)| p.ends_with(".BMC") || p == "BMC");
    completeness(out, by_name, &fields, bmc);
    Some((fields, bmc))
}

/// The package's own `publickey`, which verifies its files: present (else every `.sig` is unverifiable, or
/// the package is not signed), readable, of adequate strength (else `vendor-key-weak`, verification goes
/// on), and a `HashType` fwscan verifies with. `None` stops verification.
fn package_key(
    out: &mut [Region],
    by_name: &HashMap<String, usize>,
    hash_type: &str,
) -> Option<rsa::RsaPublicKey> {
    let Some(pk_bytes) = small(out, by_name, "publickey").map(<[u8]>::to_vec) else {
        if by_name.keys().any(|n| n.ends_with(".sig")) {
            note(
                out,
                by_name,
                "MANIFEST",
                Code::VendorSignatureInvalid,
                "MANIFEST: the package has signature files but no `publickey` to verify them with"
                    .into(),
            );
        } else {
            evidence(
                out,
                by_name,
                "MANIFEST",
                obmc(
                    Status::NotVerified("the package is not signed".into()),
                    "none",
                    &Trust::Unknown,
                    false,
                ),
            );
        }
        return None;
    };
    let pk = match public_key(&pk_bytes) {
        Ok(k) => k,
        Err(e) => {
            note(
                out,
                by_name,
                "publickey",
                Code::VendorSignatureInvalid,
                format!("publickey: {e}; no file of the package can be verified"),
            );
            return None;
        }
    };
    if let Err(w) = key_strength(&pk) {
        note(
            out,
            by_name,
            "publickey",
            Code::VendorKeyWeak,
            format!("publickey: the package's own key, which verifies its image files, is {w}"),
        );
    }
    if hash_name(hash_type).is_none() {
        note(
            out,
            by_name,
            "MANIFEST",
            Code::VendorSignatureInvalid,
            format!("MANIFEST: HashType `{hash_type}` is not a supported RSA digest (RSA-SHA256, RSA-SHA384, RSA-SHA512)"),
        );
        return None;
    }
    Some(pk)
}

/// One file and its `.sig` with `key`: `None` when either is missing.
fn check_file(
    out: &[Region],
    by_name: &HashMap<String, usize>,
    file: &str,
    key: &rsa::RsaPublicKey,
    h: &str,
) -> Option<bool> {
    let data = out.get(*by_name.get(file)?)?.bytes();
    let sig = small(out, by_name, &format!("{file}.sig"))?;
    Some(verify_rsa(key, h, data, sig).unwrap_or(false))
}

/// The system level: `MANIFEST.sig` and `publickey.sig`, with the system keys of the key ring (any one
/// verifying both, of adequate strength), else with the package's own key. Returns how far the package's
/// own key is trusted: anchored in the system key that verified both, self-signed when only the package's
/// own key does.
fn system_level(
    ctx: &Ctx,
    out: &mut [Region],
    by_name: &HashMap<String, usize>,
    pk: &rsa::RsaPublicKey,
    hash_type: &str,
    key_type: &str,
    own: &str,
) -> Trust {
    let keys = ctx.opts.keys.openbmc();
    if keys.is_empty() {
        return self_signed(out, by_name, pk, hash_type, own);
    }
    let mut trusted = None;
    let mut weak = None;
    for &k in &keys {
        let Ok(sk) = public_key(k.pem.as_bytes()) else {
            continue;
        };
        if check_file(out, by_name, "MANIFEST", &sk, &k.hash_type) == Some(true)
            && check_file(out, by_name, "publickey", &sk, &k.hash_type) == Some(true)
        {
            match key_strength(&sk) {
                Ok(()) => {
                    trusted = Some(k);
                    break;
                }
                Err(w) => weak = weak.or(Some((k, w))),
            }
        }
    }
    if let (None, Some((k, w))) = (trusted, &weak) {
        note(
            out,
            by_name,
            "MANIFEST",
            Code::VendorKeyWeak,
            format!(
                "MANIFEST.sig and publickey.sig verify only with the system key of KeyType `{}`, which is {w}",
                k.key_type
            ),
        );
    }
    match trusted {
        Some(k) => {
            let m = format!(
                "trusted: system key of KeyType `{}` ({}) verifies MANIFEST.sig and publickey.sig{}",
                k.key_type,
                k.hash_type,
                if k.key_type == key_type || key_type.is_empty() {
                    String::new()
                } else {
                    format!(" (MANIFEST names KeyType `{key_type}`)")
                }
            );
            let trust = Trust::Anchored(format!("openbmc:{}", k.key_type));
            for f in ["MANIFEST", "publickey"] {
                evidence(out, by_name, f, obmc(Status::Valid, &m, &trust, false));
            }
            trust
        }
        None => {
            if weak.is_none() {
                note(
                    out,
                    by_name,
                    "MANIFEST",
                    Code::VendorUntrusted,
                    format!(
                        "MANIFEST.sig and publickey.sig do not both verify with any of the {} OpenBMC system key(s) of the trust policy (MANIFEST names KeyType `{key_type}`)",
                        keys.len()
                    ),
                );
            }
            Trust::Unknown
        }
    }
}

/// The system level without any system key: the package can only be checked for self-consistency. When
/// `publickey.sig` verifies with the package's own key (one key signs everything, OpenBMC's default),
/// `MANIFEST.sig` must too; the signer is then self-signed, which is no finding.
fn self_signed(
    out: &mut [Region],
    by_name: &HashMap<String, usize>,
    pk: &rsa::RsaPublicKey,
    hash_type: &str,
    own: &str,
) -> Trust {
    let self_pk = check_file(out, by_name, "publickey", pk, hash_type);
    let self_mf = check_file(out, by_name, "MANIFEST", pk, hash_type);
    match (self_pk, self_mf) {
        (Some(true), Some(true)) => {
            let m = "self-signed: verifies with the package's own publickey; signer not trusted (no OpenBMC system key given)";
            for f in ["MANIFEST", "publickey"] {
                evidence(
                    out,
                    by_name,
                    f,
                    obmc(Status::Valid, m, &Trust::SelfSigned, false),
                );
            }
            return Trust::SelfSigned;
        }
        (Some(true), Some(false)) => note(
            out,
            by_name,
            "MANIFEST",
            Code::VendorSignatureInvalid,
            format!("MANIFEST.sig does not verify MANIFEST with the package's publickey ({hash_type}), which signed publickey.sig: MANIFEST changed after signing"),
        ),
        (Some(true), None) => note(
            out,
            by_name,
            "MANIFEST",
            Code::VendorSignatureInvalid,
            "MANIFEST has no MANIFEST.sig".into(),
        ),
        _ => evidence(
            out,
            by_name,
            "MANIFEST",
            obmc(
                Status::NotVerified(
                    "MANIFEST.sig and publickey.sig need a system key (none given)".into(),
                ),
                own,
                &Trust::Unknown,
                false,
            ),
        ),
    }
    Trust::Unknown
}

/// Every image file with its `.sig` and the package's own key (a missing `.sig` is invalid).
fn image_files(
    out: &mut [Region],
    by_name: &HashMap<String, usize>,
    pk: &rsa::RsaPublicKey,
    hash_type: &str,
    own: &str,
    trust: &Trust,
) {
    let mut images: Vec<String> = by_name
        .keys()
        .filter(|n| n.starts_with("image-") && !n.ends_with(".sig") && *n != "image-full")
        .cloned()
        .collect();
    images.sort();
    for img in &images {
        match check_file(out, by_name, img, pk, hash_type) {
            Some(true) => evidence(out, by_name, img, obmc(Status::Valid, own, trust, true)),
            Some(false) => {
                let why = format!("{img}.sig does not verify {img} with the package's publickey ({hash_type}): {img} changed after signing");
                evidence(
                    out,
                    by_name,
                    img,
                    obmc(Status::Invalid(why.clone()), own, trust, true),
                );
                note(out, by_name, img, Code::VendorSignatureInvalid, why);
            }
            None => note(
                out,
                by_name,
                img,
                Code::VendorSignatureInvalid,
                format!("{img} has no {img}.sig"),
            ),
        }
    }
}

/// `image-full.sig`: required of a BMC package and verified over the concatenation of [`FULL_ORDER`]'s
/// files present; other packages' is not verified (as phosphor-bmc-code-mgmt).
fn full_signature(
    out: &mut [Region],
    by_name: &HashMap<String, usize>,
    pk: &rsa::RsaPublicKey,
    hash_type: &str,
    own: &str,
    trust: &Trust,
    bmc: bool,
) {
    let Some(full_sig) = small(out, by_name, "image-full.sig").map(<[u8]>::to_vec) else {
        if bmc {
            note(
                out,
                by_name,
                "MANIFEST",
                Code::VendorSignatureInvalid,
                "image-full.sig is missing: a BMC package (MANIFEST purpose BMC) must carry it, as phosphor-bmc-code-mgmt requires; without it, image files can be removed and signed files of different releases mixed".into(),
            );
        }
        return;
    };
    if !bmc {
        evidence(
            out,
            by_name,
            "image-full.sig",
            obmc(
                Status::NotVerified(
                    "only BMC packages' image-full.sig is verified (as phosphor-bmc-code-mgmt)"
                        .into(),
                ),
                own,
                trust,
                false,
            ),
        );
        return;
    }
    let mut cat = Vec::new();
    let mut parts = Vec::new();
    for n in FULL_ORDER {
        if let Some(s) = small(out, by_name, n) {
            cat.extend_from_slice(s);
            parts.push(*n);
        }
    }
    if verify_rsa(pk, hash_type, &cat, &full_sig).unwrap_or(false) {
        let covers = format!("{own}, over {}", parts.join(" + "));
        evidence(
            out,
            by_name,
            "image-full.sig",
            obmc(Status::Valid, &covers, trust, false),
        );
    } else {
        note(
            out,
            by_name,
            "image-full.sig",
            Code::VendorSignatureInvalid,
            format!(
                "image-full.sig does not verify the concatenation of {} with the package's publickey ({hash_type})",
                parts.join(" + ")
            ),
        );
    }
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

    #[test]
    fn a_ubi_layout_package_names_its_volumes_by_the_manifests_version_id() {
        // MANIFEST, then a UBIFS superblock node (magic, type 6 at byte 20) or a JFFS2 node as image-rwfs.
        let manifest = b"purpose=xyz.openbmc_project.Software.Version.VersionPurpose.BMC\nversion=\"2.16.0-test\"\n";
        let mut ubifs = vec![0u8; 64];
        ubifs[..4].copy_from_slice(&[0x31, 0x18, 0x10, 0x06]);
        ubifs[20] = 6;
        let tree = |rwfs: &[u8]| {
            let mut bytes = manifest.to_vec();
            bytes.extend_from_slice(rwfs);
            let data = Arc::new(Data::Owned(bytes));
            let mut root = Region::new(RegionKind::Image, "", &data, 0, data.len() as u64);
            let m = manifest.len() as u64;
            root.children
                .push(Region::new(RegionKind::FsFile, "MANIFEST", &data, 0, m));
            root.children.push(Region::new(
                RegionKind::FsFile,
                "image-rwfs",
                &data,
                m,
                rwfs.len() as u64,
            ));
            root
        };
        // `printf 2.16.0-test | sha512sum | cut -c1-8` (quotes stripped as do_get_versionID strips them).
        let t = tree(&ubifs);
        let vol = |m: &str| ubi_volume(&t, m);
        assert_eq!(vol("image-kernel"), Some(("kernel-779ebf23".into(), false)));
        assert_eq!(vol("image-rofs"), Some(("rofs-779ebf23".into(), false)));
        assert_eq!(vol("image-rwfs"), Some(("rwfs".into(), true)));
        assert_eq!(ubi_volume(&t, "image-u-boot"), None);
        // A JFFS2 rwfs (static layout), or a UBIFS node that is no superblock: partitions.
        assert_eq!(
            ubi_volume(&tree(&[0x85, 0x19, 0x03, 0x20]), "image-kernel"),
            None
        );
        ubifs[20] = 9;
        assert_eq!(ubi_volume(&tree(&ubifs), "image-kernel"), None);
    }

    fn hdr(name: &str, size: u64, typ: u8) -> Vec<u8> {
        let mut h = vec![0u8; 512];
        h[..name.len().min(100)].copy_from_slice(&name.as_bytes()[..name.len().min(100)]);
        h[100..107].copy_from_slice(b"0000644");
        if size < 1 << 33 {
            h[124..135].copy_from_slice(format!("{size:011o}").as_bytes());
        } else {
            // GNU base-256 for sizes octal cannot hold.
            h[124] = 0x80;
            h[128..136].copy_from_slice(&size.to_be_bytes());
        }
        h[136..147].copy_from_slice(b"00000000000");
        h[156] = typ;
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].fill(b' ');
        let sum: u32 = h.iter().map(|&c| u32::from(c)).sum();
        h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        h
    }

    /// A directory's size field does not move the next header: GNU tar's `tar -x` reads the block right
    /// after it as the next header (a hidden member there is extracted). Once it moved the next header
    /// to u64::MAX - 511, whose block end overflowed (issue 15.13); it is now the next block.
    #[test]
    fn a_directory_size_hides_nothing_and_does_not_overflow() {
        let mut v = hdr("d/", u64::MAX - 1023, b'5');
        v.extend(member("f", b"x"));
        let (list, end, problem) = entries(&v);
        assert!(problem.is_none(), "{problem:?}");
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].ignored_size, u64::MAX - 1023);
        assert_eq!(list[1].name, "f");
        assert_eq!(end, 1024 + 512);
        // A pax `size` near u64::MAX on a regular file: clipped and noted, no overflow.
        let mut v = pax_hdr(b'x', &[("size", "18446744073709551615")]);
        v.extend(member("g", b"x"));
        let (list, _, problem) = entries(&v);
        assert_eq!(list.len(), 1);
        assert_eq!(problem.map(|p| p.0), Some(Code::PartitionOutOfBounds));
    }

    /// A pax extended header (`x` or `g`) with these records.
    fn pax_hdr(typ: u8, recs: &[(&str, &str)]) -> Vec<u8> {
        let mut body = Vec::new();
        for (k, v) in recs {
            let rest = format!(" {k}={v}\n");
            let mut n = rest.len() + 1;
            while format!("{n}{rest}").len() != n {
                n += 1;
            }
            body.extend_from_slice(format!("{n}{rest}").as_bytes());
        }
        let mut v = hdr("PaxHeaders/x", body.len() as u64, typ);
        v.extend_from_slice(&body);
        v.resize(v.len().div_ceil(512) * 512, 0);
        v
    }

    fn gnu_long(name: &str) -> Vec<u8> {
        let mut d = name.as_bytes().to_vec();
        d.push(0);
        let mut v = hdr("././@LongLink", d.len() as u64, b'L');
        v.extend_from_slice(&d);
        v.resize(v.len().div_ceil(512) * 512, 0);
        v
    }

    /// The name a member is listed under is the name GNU tar 1.34's `tar -x` writes (each case checked
    /// with it; the integration tests in tests/obmc_complete.rs extract real archives side by side).
    #[test]
    fn member_names_are_the_names_gnu_tar_writes() {
        let names =
            |v: Vec<u8>| -> Vec<String> { entries(&v).0.into_iter().map(|e| e.name).collect() };
        // pax `path` wins over a GNU long name, before or after it.
        let mut v = pax_hdr(b'x', &[("path", "fromx")]);
        v.extend(gnu_long("fromL"));
        v.extend(member("hdr", b"1"));
        assert_eq!(names(v), ["fromx"]);
        let mut v = gnu_long("fromL");
        v.extend(pax_hdr(b'x', &[("path", "fromx")]));
        v.extend(member("hdr", b"1"));
        assert_eq!(names(v), ["fromx"]);
        // GNU.sparse.name wins over `path`; a later `x` header replaces an earlier one.
        let mut v = pax_hdr(b'x', &[("GNU.sparse.name", "sparse"), ("path", "p")]);
        v.extend(member("hdr", b"1"));
        assert_eq!(names(v), ["sparse"]);
        let mut v = pax_hdr(b'x', &[("path", "first")]);
        v.extend(pax_hdr(b'x', &[("mtime", "1")]));
        v.extend(member("hdr", b"1"));
        assert_eq!(names(v), ["hdr"]);
        // A global `g` path names every member after it, above a long name, below a member's `x`.
        let mut v = pax_hdr(b'g', &[("path", "fromg")]);
        v.extend(gnu_long("fromL"));
        v.extend(member("a", b"1"));
        v.extend(pax_hdr(b'x', &[("path", "fromx")]));
        v.extend(member("b", b"2"));
        v.extend(member("c", b"3"));
        assert_eq!(names(v), ["fromg", "fromx", "fromg"]);
        // The ustar prefix counts whenever the magic is `ustar\0`, whatever the version says.
        let mut h = hdr("name", 0, b'0');
        h[263..265].copy_from_slice(b"xx");
        h[345..348].copy_from_slice(b"pre");
        h[148..156].fill(b' ');
        let sum: u32 = h.iter().map(|&c| u32::from(c)).sum();
        h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        assert_eq!(names(h), ["pre/name"]);
        // pax `size` overrides the header's: the data it skips is read as the next header.
        let mut v = pax_hdr(b'x', &[("size", "0")]);
        let inner = member("smuggled", b"EVIL");
        let mut m = hdr("sz", inner.len() as u64, b'0');
        m.extend_from_slice(&inner);
        v.extend(m);
        assert_eq!(names(v), ["sz", "smuggled"]);
        // Links, devices and FIFOs carry no data for tar -x either.
        for t in [b'1', b'2', b'3', b'4', b'6'] {
            let mut v = hdr("l", 512, t);
            v.extend(member("smuggled", b"EVIL"));
            assert_eq!(names(v), ["l", "smuggled"], "type {}", t as char);
        }
        // Sparse members stop the listing.
        let mut v = pax_hdr(b'x', &[("GNU.sparse.major", "1")]);
        v.extend(member("s", b"1"));
        assert_eq!(entries(&v).2.map(|p| p.0), Some(Code::Unparsed));
    }

    #[test]
    fn names_collide_as_any_tar_would_write_them() {
        for n in [
            "image-u-boot",
            "./image-u-boot",
            ".//./image-u-boot",
            "/image-u-boot",
            "image-u-boot/",
            "../image-u-boot",
            "a/../image-u-boot",
        ] {
            assert_eq!(collision_key(n), "image-u-boot", "{n}");
        }
        assert_eq!(clean("./a//b/"), "a/b");
        assert_eq!(clean("../x"), "../x");
        assert_eq!(clean("./"), ".");
        assert_eq!(collision_key("x../y"), "x../y");
        assert_eq!(collision_key("a/.."), ".");
    }

    fn member(name: &str, data: &[u8]) -> Vec<u8> {
        let mut v = hdr(name, data.len() as u64, b'0');
        v.extend_from_slice(data);
        v.resize(v.len().div_ceil(512) * 512, 0);
        v
    }

    fn tree(b: Vec<u8>) -> Region {
        crate::formats::parse_image(Arc::new(Data::Owned(b)), &ParseOptions::default())
    }

    #[test]
    fn hostile_archives_are_bounded_and_noted() {
        // `..` names and links are labels; a size past the end is clipped and noted.
        let mut a = member("../../etc/passwd", b"root::0:0\n");
        a.extend(hdr("link", 0, b'2'));
        a.extend(member(
            "MANIFEST",
            b"purpose=xyz.openbmc_project.Software.Version.VersionPurpose.BMC\n",
        ));
        let mut big = hdr("image-kernel", 1 << 40, b'0');
        big.extend_from_slice(&[1, 2, 3]);
        a.extend(big);
        let t = tree(a);
        assert_eq!(t.attr_str("format"), Some("tar"));
        assert!(
            t.find("../../etc/passwd").is_some()
                || t.children.iter().any(|c| c.name == "../../etc/passwd")
        );
        let notes = all_notes(&t);
        assert!(
            notes.iter().any(|n| n.code == Code::PartitionOutOfBounds),
            "{notes:?}"
        );
        // 10^5 + 1 empty members: bounded, a limit note.
        let mut many = Vec::new();
        let h = hdr("f", 0, b'0');
        for _ in 0..=MAX_ENTRIES {
            many.extend_from_slice(&h);
        }
        let (list, _, problem) = entries(&many);
        assert_eq!(list.len(), MAX_ENTRIES);
        assert_eq!(problem.map(|p| p.0), Some(Code::LimitExceeded));
        // A wrong checksum stops the listing.
        let mut bad = member("MANIFEST", b"x=y\n");
        bad[0] ^= 1;
        let (list, _, problem) = entries(&bad);
        assert!(list.is_empty() && problem.is_some());
    }

    #[test]
    fn numbers() {
        assert_eq!(number(b"00000001750\0"), Some(0o1750));
        assert_eq!(number(b"   17 \0\0\0\0\0\0"), Some(0o17));
        assert_eq!(number(&[0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]), Some(256));
        assert_eq!(number(&[0xFF; 12]), None);
        assert_eq!(number(b"0000000009\0\0"), None);
    }
}
