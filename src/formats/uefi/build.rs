//! Writers for firmware volumes, FFS files and sections with correct sizes, alignment and checksums. Used
//! by the tests (tamper and malformed-input cases) and by fixture generators that plant files with given
//! GUIDs. Everything here works on plain byte vectors.
//!
//! Test firmware, not scanner code: compiled only with the `fixtures` feature (which `cargo test` and the
//! examples enable) or in the library's own unit tests, so the shipped library and binary do not hold it.
//!
//! ```
//! use fwscan::formats::uefi::build::*;
//! let pe = vec![0u8; 64];
//! let f = file(guid_bytes("11111111-2222-3333-4444-555555555555"), 0x07,
//!              &[section(0x10, &pe), ui("Demo")].concat(), 0);
//! let v = volume(FFS2, Some(guid_bytes("AAAAAAAA-0000-0000-0000-000000000000")), &[f], 0x10000);
//! assert_eq!(&v[0x28..0x2C], b"_FVH");
//! ```
#![cfg(any(test, feature = "fixtures"))]
#![deny(clippy::arithmetic_side_effects)]

use super::ffs::{header_checksum, sum8, ATTR_CHECKSUM, ATTR_LARGE_FILE, FIXED_CHECKSUM};
use super::fv::header_sum;
use crate::formats::decompress::efi::Version;

/// FFSv2 file-system GUID.
pub const FFS2: [u8; 16] = guid_const(super::guids::FFS2);
/// FFSv3 file-system GUID.
pub const FFS3: [u8; 16] = guid_const(super::guids::FFS3);
/// LZMA GUID-defined section GUID.
pub const LZMA: [u8; 16] = guid_const(super::guids::LZMA);
/// LZMAF86 GUID-defined section GUID.
pub const LZMAF86: [u8; 16] = guid_const(super::guids::LZMAF86);
/// Brotli GUID-defined section GUID.
pub const BROTLI: [u8; 16] = guid_const(super::guids::BROTLI);
/// CRC32 GUID-defined section GUID.
pub const CRC32: [u8; 16] = guid_const(super::guids::CRC32);

// Reviewed: ASCII hex digit arithmetic on a checked digit range.
#[allow(clippy::arithmetic_side_effects)]
const fn hexval(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => panic!("bad hex digit in GUID"),
    }
}

// Reviewed: builder of well-formed images from the caller's own data (tests, fixture generators), never given parsed input; sizes are those of in-memory buffers.
#[allow(clippy::arithmetic_side_effects)]
const fn guid_const(s: &str) -> [u8; 16] {
    let b = s.as_bytes();
    assert!(b.len() == 36);
    // Field byte positions in the text, in on-flash order.
    const POS: [usize; 16] = [6, 4, 2, 0, 11, 9, 16, 14, 19, 21, 24, 26, 28, 30, 32, 34];
    let mut out = [0u8; 16];
    let mut i = 0;
    while i < 16 {
        out[i] = hexval(b[POS[i]]) << 4 | hexval(b[POS[i] + 1]);
        i += 1;
    }
    out
}

/// The on-flash bytes of a GUID in registry form. Panics on malformed text (builder input is trusted).
pub fn guid_bytes(s: &str) -> [u8; 16] {
    guid_const(s)
}

/// One section: common header (extended when the size needs it), type and body.
pub fn section(typ: u8, body: &[u8]) -> Vec<u8> {
    section_with(typ, &[], body)
}

/// A section with type-specific header bytes `extra` before `body`.
// Reviewed: builder of well-formed images from the caller's own data (tests, fixture generators), never given parsed input; sizes are those of in-memory buffers.
#[allow(clippy::arithmetic_side_effects)]
pub fn section_with(typ: u8, extra: &[u8], body: &[u8]) -> Vec<u8> {
    let n = 4 + extra.len() + body.len();
    let mut v = Vec::with_capacity(n + 4);
    if n < 0xFF_FFFF {
        v.extend_from_slice(&(n as u32).to_le_bytes()[..3]);
        v.push(typ);
    } else {
        v.extend_from_slice(&[0xFF, 0xFF, 0xFF, typ]);
        v.extend_from_slice(&((n + 4) as u32).to_le_bytes());
    }
    v.extend_from_slice(extra);
    v.extend_from_slice(body);
    v
}

/// Concatenates sections with 4-byte alignment (zero fill).
pub fn sections(list: &[Vec<u8>]) -> Vec<u8> {
    let mut v = Vec::new();
    for s in list {
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v.extend_from_slice(s);
    }
    v
}

/// A UI section.
pub fn ui(name: &str) -> Vec<u8> {
    let mut b: Vec<u8> = name.encode_utf16().flat_map(u16::to_le_bytes).collect();
    b.extend_from_slice(&[0, 0]);
    section(0x15, &b)
}

/// A GUID-defined section with `payload` after a 20-byte (GUID, data offset, attributes) header.
// Reviewed: builder of well-formed images from the caller's own data (tests, fixture generators), never given parsed input; sizes are those of in-memory buffers.
#[allow(clippy::arithmetic_side_effects)]
pub fn guided(g: [u8; 16], attributes: u16, extra: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut hdr = g.to_vec();
    let common = if 4 + 20 + extra.len() + payload.len() < 0xFF_FFFF {
        4
    } else {
        8
    };
    hdr.extend_from_slice(&((common + 20 + extra.len()) as u16).to_le_bytes());
    hdr.extend_from_slice(&attributes.to_le_bytes());
    hdr.extend_from_slice(extra);
    section_with(0x02, &hdr, payload)
}

/// EDK2-style LZMA "alone" stream (13-byte header with the real uncompressed size).
// Reviewed: builder of well-formed images from the caller's own data (tests, fixture generators), never given parsed input; sizes are those of in-memory buffers.
#[allow(clippy::arithmetic_side_effects)]
pub fn lzma_compress(data: &[u8]) -> Vec<u8> {
    use liblzma::stream::{Action, LzmaOptions, Status, Stream};
    let opts = LzmaOptions::new_preset(6).expect("preset");
    let mut s = Stream::new_lzma_encoder(&opts).expect("lzma encoder");
    let mut out = Vec::with_capacity(data.len() / 2 + 4096);
    let mut input = data;
    loop {
        if out.capacity() - out.len() < 4096 {
            out.reserve(out.capacity().max(65536));
        }
        let before = s.total_in();
        let st = s
            .process_vec(input, &mut out, Action::Finish)
            .expect("lzma");
        input = &input[(s.total_in() - before) as usize..];
        if st == Status::StreamEnd {
            break;
        }
    }
    out[5..13].copy_from_slice(&(data.len() as u64).to_le_bytes());
    out
}

/// An LZMA GUID-defined section (processing required) holding `inner` sections.
pub fn lzma_section(inner: &[u8]) -> Vec<u8> {
    guided(LZMA, 0x01, &[], &lzma_compress(inner))
}

/// An LZMAF86 GUID-defined section holding `inner` sections.
pub fn lzmaf86_section(inner: &[u8]) -> Vec<u8> {
    let mut x = inner.to_vec();
    crate::formats::decompress::bcj::x86_encode(&mut x);
    guided(LZMAF86, 0x01, &[], &lzma_compress(&x))
}

/// A CRC32 GUID-defined section (no processing required) holding `inner` sections.
pub fn crc32_section(inner: &[u8]) -> Vec<u8> {
    let mut c = flate2::Crc::new();
    c.update(inner);
    guided(CRC32, 0x02, &c.sum().to_le_bytes(), inner)
}

/// A compression section (`EFI_COMPRESSION_SECTION`) of type `ct` over an already-encoded `payload`.
pub fn compression_section(ct: u8, uncompressed_len: u32, payload: &[u8]) -> Vec<u8> {
    let mut extra = uncompressed_len.to_le_bytes().to_vec();
    extra.push(ct);
    section_with(0x01, &extra, payload)
}

/// A valid EFI 1.1/Tiano stream that stores `data` as literals (one block per 65535 bytes, every literal
/// an 8-bit code). Enough to exercise the decoder's table and block handling.
// Reviewed: builder of well-formed images from the caller's own data (tests, fixture generators), never given parsed input; sizes are those of in-memory buffers.
#[allow(clippy::arithmetic_side_effects)]
pub fn efi_store(data: &[u8], v: Version) -> Vec<u8> {
    struct W {
        out: Vec<u8>,
        acc: u32,
        n: u32,
    }
    impl W {
        fn put(&mut self, val: u32, bits: u32) {
            for i in (0..bits).rev() {
                self.acc = self.acc << 1 | ((val >> i) & 1);
                self.n += 1;
                if self.n == 8 {
                    self.out.push(self.acc as u8);
                    self.acc = 0;
                    self.n = 0;
                }
            }
        }
    }
    let pbit = if v == Version::Tiano { 5 } else { 4 };
    let mut w = W {
        out: Vec::new(),
        acc: 0,
        n: 0,
    };
    for chunk in data.chunks(0xFFFF) {
        w.put(chunk.len() as u32, 16);
        // Code-length table: none, all symbols decode to 10 (= length 8).
        w.put(0, 5);
        w.put(10, 5);
        // 256 literal lengths (8 each) read through that table without consuming bits.
        w.put(256, 9);
        // Position table: none.
        w.put(0, pbit);
        w.put(0, pbit);
        for &b in chunk {
            w.put(u32::from(b), 8);
        }
    }
    if w.n > 0 {
        let pad = 8 - w.n;
        w.put(0, pad);
    }
    let mut s = (w.out.len() as u32).to_le_bytes().to_vec();
    s.extend_from_slice(&(data.len() as u32).to_le_bytes());
    s.extend_from_slice(&w.out);
    s
}

/// MSB-first bit writer for EFI/Tiano streams.
struct BitW {
    out: Vec<u8>,
    acc: u32,
    n: u32,
}

impl BitW {
    // Reviewed: a bit writer for the builder; `bits <= 32` from its callers, buffer sizes in memory.
    #[allow(clippy::arithmetic_side_effects)]
    fn put(&mut self, val: u32, bits: u32) {
        for i in (0..bits).rev() {
            self.acc = self.acc << 1 | ((val >> i) & 1);
            self.n += 1;
            if self.n == 8 {
                self.out.push(self.acc as u8);
                self.acc = 0;
                self.n = 0;
            }
        }
    }
    #[allow(clippy::arithmetic_side_effects)] // as `put`
    fn finish(mut self) -> Vec<u8> {
        if self.n > 0 {
            let pad = 8 - self.n;
            self.put(0, pad);
        }
        self.out
    }
}

/// A valid EFI 1.1/Tiano stream with real LZ77 matches (greedy, distances up to 127) and fixed code
/// tables: literals 0 and 1 get 8-bit codes, every other literal/length symbol 9 bits, the 8 position
/// symbols 3 bits. Not a good compressor; it exercises the decoder's match path and UEFIExtract reads it.
// Reviewed: builder of well-formed images from the caller's own data (tests, fixture generators), never given parsed input; sizes are those of in-memory buffers.
#[allow(clippy::arithmetic_side_effects)]
pub fn efi_compress(data: &[u8], v: Version) -> Vec<u8> {
    let pbit = if v == Version::Tiano { 5 } else { 4 };
    // Symbols: (literal/length symbol, optional (position symbol, extra bits, extra count)).
    type Pos = (u32, u32, u32);
    let mut syms: Vec<(u32, Option<Pos>)> = Vec::new();
    let mut i = 0;
    while i < data.len() {
        let mut best = (0usize, 0usize);
        for d in 1..=127usize.min(i) {
            let from = i - d;
            let mut l = 0;
            while l < 256 && i + l < data.len() && data[from + l] == data[i + l] {
                l += 1;
            }
            if l > best.0 {
                best = (l, d);
                if l == 256 {
                    break; // the longest match there is
                }
            }
        }
        if best.0 >= 3 {
            let (l, d) = best;
            let dist = (d - 1) as u32;
            let p = if dist <= 1 {
                dist
            } else {
                32 - dist.leading_zeros()
            };
            let (extra, n) = if p > 1 {
                (dist - (1 << (p - 1)), p - 1)
            } else {
                (0, 0)
            };
            syms.push(((l + 253) as u32, Some((p, extra, n))));
            i += l;
        } else {
            syms.push((u32::from(data[i]), None));
            i += 1;
        }
    }
    let mut w = BitW {
        out: Vec::new(),
        acc: 0,
        n: 0,
    };
    for block in syms.chunks(0xFFFF) {
        w.put(block.len() as u32, 16);
        // Code-length alphabet: symbols 10 (= length 8) and 11 (= length 9) get 1-bit codes.
        w.put(12, 5);
        w.put(0, 3);
        w.put(0, 3);
        w.put(0, 3);
        w.put(3, 2); // three more zero lengths (3, 4, 5)
        for _ in 6..10 {
            w.put(0, 3);
        }
        w.put(1, 3);
        w.put(1, 3);
        // Literal/length code lengths: 0 and 1 length 8, the other 508 length 9.
        w.put(510, 9);
        for s in 0..510 {
            w.put(u32::from(s >= 2), 1);
        }
        // Position alphabet: 8 symbols of 3 bits.
        w.put(8, pbit);
        for _ in 0..8 {
            w.put(3, 3);
        }
        for &(c, pos) in block {
            if c < 2 {
                w.put(c, 8);
            } else {
                w.put(c + 2, 9);
            }
            if let Some((p, extra, n)) = pos {
                w.put(p, 3);
                w.put(extra, n);
            }
        }
    }
    let body = w.finish();
    let mut s = (body.len() as u32).to_le_bytes().to_vec();
    s.extend_from_slice(&(data.len() as u32).to_le_bytes());
    s.extend_from_slice(&body);
    s
}

/// An FFS file with correct header and data checksums. `attributes` may include `ATTR_CHECKSUM` (data
/// checksum computed) and `ATTR_LARGE_FILE` (32-byte header, for FFSv3 volumes; set automatically when the
/// file needs it).
// Reviewed: builder of well-formed images from the caller's own data (tests, fixture generators), never given parsed input; sizes are those of in-memory buffers.
#[allow(clippy::arithmetic_side_effects)]
pub fn file(g: [u8; 16], typ: u8, body: &[u8], attributes: u8) -> Vec<u8> {
    let mut attributes = attributes;
    if 24 + body.len() > 0xFF_FFFF {
        attributes |= ATTR_LARGE_FILE;
    }
    let large = attributes & ATTR_LARGE_FILE != 0;
    let hsize = if large { 32 } else { 24 };
    let size = hsize + body.len();
    let mut v = Vec::with_capacity(size);
    v.extend_from_slice(&g);
    v.extend_from_slice(&[0, 0, typ, attributes]);
    if large {
        v.extend_from_slice(&[0, 0, 0, 0xF8]);
        v.extend_from_slice(&(size as u64).to_le_bytes());
    } else {
        v.extend_from_slice(&(size as u32).to_le_bytes()[..3]);
        v.push(0xF8); // EFI_FILE_HEADER_CONSTRUCTION|VALID|DATA_VALID, inverted for erase polarity 1
    }
    v.extend_from_slice(body);
    fix_file_checksums(&mut v);
    v
}

/// Recomputes an FFS file's header and data checksums in place (after patching its body).
pub fn fix_file_checksums(f: &mut [u8]) {
    if f.len() < 24 {
        return;
    }
    let large = f[0x13] & ATTR_LARGE_FILE != 0 && f[0x14..0x17] == [0, 0, 0];
    let hsize = if large { 32 } else { 24 }.min(f.len());
    f[0x11] = if f[0x13] & ATTR_CHECKSUM != 0 {
        0u8.wrapping_sub(sum8(&f[hsize..]))
    } else {
        FIXED_CHECKSUM
    };
    f[0x10] = 0;
    f[0x10] = header_checksum(&f[..hsize]);
}

/// A pad file of `size` bytes (body 0xFF).
pub fn pad_file(size: usize) -> Vec<u8> {
    file([0xFF; 16], 0xF0, &vec![0xFF; size.saturating_sub(24)], 0)
}

/// A firmware volume of `size` bytes (one block map entry, erase polarity 1) holding `files` 8-byte
/// aligned, with an extended header naming it when `name` is given; the rest is 0xFF free space.
/// Panics when the files do not fit.
pub fn volume(fs: [u8; 16], name: Option<[u8; 16]>, files: &[Vec<u8>], size: usize) -> Vec<u8> {
    let hlen = 0x48usize;
    let mut v = vec![0u8; hlen];
    v[0x10..0x20].copy_from_slice(&fs);
    v[0x20..0x28].copy_from_slice(&(size as u64).to_le_bytes());
    v[0x28..0x2C].copy_from_slice(b"_FVH");
    v[0x2C..0x30].copy_from_slice(&0x0004_FEFFu32.to_le_bytes());
    v[0x30..0x32].copy_from_slice(&(hlen as u16).to_le_bytes());
    v[0x37] = 2;
    // The block map adds up to the volume size, as the PI specification requires.
    let (blocks, block) = if size % 0x1000 == 0 && size > 0 {
        (size / 0x1000, 0x1000)
    } else {
        (1, size)
    };
    v[0x38..0x3C].copy_from_slice(&(blocks as u32).to_le_bytes());
    v[0x3C..0x40].copy_from_slice(&(block as u32).to_le_bytes());
    if let Some(n) = name {
        v[0x34..0x36].copy_from_slice(&(hlen as u16).to_le_bytes());
        v.extend_from_slice(&n);
        v.extend_from_slice(&20u32.to_le_bytes());
    }
    for f in files {
        while v.len() % 8 != 0 {
            v.push(0xFF);
        }
        v.extend_from_slice(f);
    }
    assert!(v.len() <= size, "files do not fit in the volume");
    v.resize(size, 0xFF);
    fix_volume_checksum(&mut v);
    v
}

/// Recomputes a volume header checksum in place.
pub fn fix_volume_checksum(v: &mut [u8]) {
    if v.len() < 0x38 {
        return;
    }
    let hlen = (u16::from_le_bytes([v[0x30], v[0x31]]) as usize).min(v.len());
    v[0x32] = 0;
    v[0x33] = 0;
    let s = header_sum(&v[..hlen]);
    v[0x32..0x34].copy_from_slice(&0u16.wrapping_sub(s).to_le_bytes());
}

/// A Brotli stream (EDK2 framing: u64 size, u64 scratch size, stream) storing `data` in uncompressed
/// meta-blocks; valid Brotli that exercises the Brotli section path without an encoder.
// Reviewed: builder of well-formed images from the caller's own data (tests, fixture generators), never given parsed input; sizes are those of in-memory buffers.
#[allow(clippy::arithmetic_side_effects)]
pub fn brotli_store(data: &[u8]) -> Vec<u8> {
    struct W {
        out: Vec<u8>,
        acc: u64,
        n: u32,
    }
    impl W {
        fn put(&mut self, v: u64, bits: u32) {
            self.acc |= v << self.n;
            self.n += bits;
            while self.n >= 8 {
                self.out.push(self.acc as u8);
                self.acc >>= 8;
                self.n -= 8;
            }
        }
        fn align(&mut self) {
            if self.n > 0 {
                let pad = 8 - self.n;
                self.put(0, pad);
            }
        }
    }
    let mut w = W {
        out: Vec::new(),
        acc: 0,
        n: 0,
    };
    w.put(0, 1); // WBITS = 16
    for chunk in data.chunks(65536) {
        w.put(0, 1); // ISLAST = 0
        w.put(0, 2); // MNIBBLES = 4
        w.put(chunk.len() as u64 - 1, 16);
        w.put(1, 1); // ISUNCOMPRESSED
        w.align();
        w.out.extend_from_slice(chunk);
    }
    w.put(1, 1); // ISLAST
    w.put(1, 1); // ISLASTEMPTY
    w.align();
    let mut s = (data.len() as u64).to_le_bytes().to_vec();
    s.extend_from_slice(&0u64.to_le_bytes());
    s.extend_from_slice(&w.out);
    s
}

/// A Brotli GUID-defined section holding `inner` sections (stored, not compressed).
pub fn brotli_section(inner: &[u8]) -> Vec<u8> {
    guided(BROTLI, 0x01, &[], &brotli_store(inner))
}

/// A gzip GUID-defined section holding `inner` sections.
pub fn gzip_section(inner: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut g = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    g.write_all(inner).expect("gzip");
    guided(
        guid_const(super::guids::GZIP),
        0x01,
        &[],
        &g.finish().expect("gzip"),
    )
}

/// An FV image section holding `volume`.
pub fn fv_image(volume: &[u8]) -> Vec<u8> {
    section(0x17, volume)
}
