//! EFI 1.1 and Tiano decompression (UEFI specification, "Compression Algorithm Specification").
//!
//! The stream is an 8-byte header (u32 compressed size, u32 original size) followed by blocks, each with
//! three canonical Huffman tables (code lengths for the literal/length alphabet, that alphabet, and the
//! position alphabet) and LZ77 codes. EFI 1.1 and Tiano differ only in the width of the position-table
//! count (4 and 5 bits). Written from the specification; every table index and every back-reference is
//! checked, so corrupt input is an error, never a panic or an unbounded allocation.
#![deny(clippy::arithmetic_side_effects)]

use super::Error;

/// Which variant of the format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Efi11,
    Tiano,
}

const MAXMATCH: usize = 256;
const THRESHOLD: usize = 3;
const NC: usize = 0xFF + MAXMATCH + 2 - THRESHOLD; // 510 literal/length codes
const CBIT: u32 = 9;
const NT: usize = 19; // code-length alphabet
const TBIT: u32 = 5;
const MAXNP: usize = 31; // position alphabet (Tiano; EFI 1.1 uses fewer)
const NPT: usize = 31;
const CTBITS: u32 = 12;
const PTBITS: u32 = 8;

struct Bits<'a> {
    src: &'a [u8],
    pos: usize,
    buf: u32,
    sub: u32,
    count: u32,
}

impl Bits<'_> {
    // Reviewed: `n <= 32` (every caller passes a code length <= 16 or a field width <= 16); `n > count`
    // before `n - count`, `n <= count` after the loop; `pos` indexes `src` (checked by get()).
    #[allow(clippy::arithmetic_side_effects)]
    fn fill(&mut self, mut n: u32) {
        // n <= 32
        self.buf = if n >= 32 { 0 } else { self.buf << n };
        while n > self.count {
            n -= self.count;
            self.buf |= if n >= 32 { 0 } else { self.sub << n };
            self.sub = match self.src.get(self.pos) {
                Some(&b) => {
                    self.pos += 1;
                    u32::from(b)
                }
                None => 0,
            };
            self.count = 8;
        }
        self.count -= n;
        self.buf |= self.sub >> self.count;
    }

    // Reviewed: `1 <= n <= 32` (n == 0 returns first; widths are at most 16, or p - 1 <= 29).
    #[allow(clippy::arithmetic_side_effects)]
    fn get(&mut self, n: u32) -> u32 {
        if n == 0 {
            return 0;
        }
        let v = self.buf >> (32 - n);
        self.fill(n);
        v
    }
}

struct Tables {
    left: Vec<u16>,
    right: Vec<u16>,
    c_len: [u8; NC],
    pt_len: [u8; NPT],
    c_table: Vec<u16>,
    pt_table: Vec<u16>,
}

fn bad(what: &str) -> Error {
    Error::Failed(format!("EFI/Tiano: {what}"))
}

/// Builds a decoding table (direct lookup of `table_bits` bits, then a binary tree in left/right).
// Reviewed: code lengths are checked <= 16 first; `count[i] << (16 - i)` is at most 510 << 15 and their sum below 2^24; `table_bits` is 8 or 12 (the callers' constants), so `16 - table_bits` and `15 - table_bits` are positive and `len - table_bits` runs only when `len > table_bits`; `avail` is checked against the tree's length before it grows.
#[allow(clippy::arithmetic_side_effects)]
fn make_table(
    n_char: usize,
    bit_len: &[u8],
    table_bits: u32,
    table: &mut [u16],
    left: &mut [u16],
    right: &mut [u16],
) -> Result<(), Error> {
    let mut count = [0u32; 17];
    let mut start = [0u32; 18];
    let mut weight = [0u32; 17];
    for &l in &bit_len[..n_char] {
        if l > 16 {
            return Err(bad("code length above 16"));
        }
        count[l as usize] += 1;
    }
    count[0] = 0;
    for i in 1..=16 {
        start[i + 1] = start[i] + (count[i] << (16 - i));
    }
    if start[17] != 1 << 16 {
        // An all-zero table is allowed only when no code is ever decoded from it.
        if start[17] != 0 {
            return Err(bad("bad Huffman table"));
        }
    }
    let ju = 16 - table_bits;
    for i in 1..=table_bits as usize {
        start[i] >>= ju;
        weight[i] = 1 << (table_bits as usize - i);
    }
    for (i, w) in weight.iter_mut().enumerate().skip(table_bits as usize + 1) {
        *w = 1 << (16 - i);
    }
    let tsize = 1usize << table_bits;
    let first_free = (start[table_bits as usize + 1] >> ju) as usize;
    for t in table.iter_mut().take(tsize).skip(first_free.min(tsize)) {
        *t = 0;
    }
    let mut avail = n_char;
    let mask = 1u32 << (15 - table_bits);
    for (ch, &l) in bit_len[..n_char].iter().enumerate() {
        let len = l as usize;
        if len == 0 {
            continue;
        }
        let next = start[len] + weight[len];
        if len <= table_bits as usize {
            if next as usize > tsize {
                return Err(bad("table overflow"));
            }
            for t in &mut table[start[len] as usize..next as usize] {
                *t = ch as u16;
            }
        } else {
            let mut k = start[len];
            let idx0 = (k >> ju) as usize;
            if idx0 >= tsize {
                return Err(bad("table overflow"));
            }
            // Walk/extend the tree below table[idx0].
            enum Slot {
                Table(usize),
                Left(usize),
                Right(usize),
            }
            let mut slot = Slot::Table(idx0);
            for _ in 0..(len - table_bits as usize) {
                let cur = match slot {
                    Slot::Table(i) => table[i],
                    Slot::Left(i) => left[i],
                    Slot::Right(i) => right[i],
                };
                let node = if cur == 0 {
                    if avail >= left.len() {
                        return Err(bad("tree overflow"));
                    }
                    left[avail] = 0;
                    right[avail] = 0;
                    match slot {
                        Slot::Table(i) => table[i] = avail as u16,
                        Slot::Left(i) => left[i] = avail as u16,
                        Slot::Right(i) => right[i] = avail as u16,
                    }
                    avail += 1;
                    avail - 1
                } else {
                    cur as usize
                };
                if node >= left.len() {
                    return Err(bad("tree index out of range"));
                }
                slot = if k & mask != 0 {
                    Slot::Right(node)
                } else {
                    Slot::Left(node)
                };
                k <<= 1;
            }
            match slot {
                Slot::Table(i) => table[i] = ch as u16,
                Slot::Left(i) => left[i] = ch as u16,
                Slot::Right(i) => right[i] = ch as u16,
            }
        }
        start[len] = next;
    }
    Ok(())
}

/// Follows the tree from a direct-table entry until a symbol below `n` is reached.
fn walk(t: &Tables, mut v: u16, n: usize, buf: u32, first_bit: u32) -> Result<u16, Error> {
    let mut mask = 1u32 << first_bit;
    while v as usize >= n {
        if mask == 0 || v as usize >= t.left.len() {
            return Err(bad("bad Huffman code"));
        }
        v = if buf & mask != 0 {
            t.right[v as usize]
        } else {
            t.left[v as usize]
        };
        mask >>= 1;
    }
    Ok(v)
}

// Reviewed: `i` is bounded by NPT, `c <= 16` (checked) before `c - 3`.
#[allow(clippy::arithmetic_side_effects)]
fn read_pt_len(
    b: &mut Bits,
    t: &mut Tables,
    nn: usize,
    nbit: u32,
    special: Option<usize>,
) -> Result<(), Error> {
    let number = b.get(nbit) as usize;
    if number == 0 {
        let c = b.get(nbit) as u16;
        t.pt_table.iter_mut().for_each(|x| *x = c);
        t.pt_len[..nn].iter_mut().for_each(|x| *x = 0);
        return Ok(());
    }
    if number > nn {
        return Err(bad("position/length table too long"));
    }
    let mut i = 0;
    while i < number && i < NPT {
        let mut c = b.buf >> 29;
        if c == 7 {
            let mut mask = 1u32 << 28;
            while mask & b.buf != 0 {
                mask >>= 1;
                c += 1;
                if c > 16 {
                    return Err(bad("code length above 16"));
                }
            }
        }
        b.fill(if c < 7 { 3 } else { c - 3 });
        t.pt_len[i] = c as u8;
        i += 1;
        if Some(i) == special {
            let z = b.get(2);
            for _ in 0..z {
                if i >= NPT {
                    break;
                }
                t.pt_len[i] = 0;
                i += 1;
            }
        }
    }
    while i < nn && i < NPT {
        t.pt_len[i] = 0;
        i += 1;
    }
    let Tables {
        left,
        right,
        pt_len,
        pt_table,
        ..
    } = t;
    make_table(nn, &pt_len[..], PTBITS, pt_table, left, right)
}

// Reviewed: `i` is bounded by NC; `c` comes from walk() below NT (19), so `c - 2` runs for 3..=18 only; the repeat counts are 4- and 9-bit fields plus small constants.
#[allow(clippy::arithmetic_side_effects)]
fn read_c_len(b: &mut Bits, t: &mut Tables) -> Result<(), Error> {
    let number = b.get(CBIT) as usize;
    if number == 0 {
        let c = b.get(CBIT) as u16;
        t.c_len.iter_mut().for_each(|x| *x = 0);
        t.c_table.iter_mut().for_each(|x| *x = c);
        return Ok(());
    }
    let mut i = 0;
    while i < number && i < NC {
        let v = t.pt_table[(b.buf >> (32 - PTBITS)) as usize];
        let c = walk(t, v, NT, b.buf, 31 - PTBITS)? as usize;
        b.fill(u32::from(t.pt_len.get(c).copied().unwrap_or(0)));
        if c <= 2 {
            let n = match c {
                0 => 1,
                1 => b.get(4) + 3,
                _ => b.get(CBIT) + 20,
            };
            for _ in 0..n {
                if i >= NC {
                    break;
                }
                t.c_len[i] = 0;
                i += 1;
            }
        } else {
            if c - 2 > 16 {
                return Err(bad("code length above 16"));
            }
            t.c_len[i] = (c - 2) as u8;
            i += 1;
        }
    }
    while i < NC {
        t.c_len[i] = 0;
        i += 1;
    }
    let Tables {
        left,
        right,
        c_len,
        c_table,
        ..
    } = t;
    make_table(NC, &c_len[..], CTBITS, c_table, left, right)
}

/// Decompresses one EFI 1.1 or Tiano stream, producing at most `limit` bytes.
pub fn decompress(src: &[u8], version: Version, limit: u64) -> Result<Vec<u8>, Error> {
    decompress_metered(src, version, limit, &super::Unmetered)
}

/// [`decompress`], paying what was produced to `meter` whether the stream decoded or failed (output
/// never exceeds the header's size, itself at most `limit`).
pub fn decompress_metered(
    src: &[u8],
    version: Version,
    limit: u64,
    meter: &dyn super::Meter,
) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    let r = decode(src, version, limit, &mut out);
    if !meter.pay(out.len() as u64) {
        return Err(Error::Budget);
    }
    r.map(|()| out)
}

// Reviewed: `p` comes from walk() below MAXNP (31): `1 << (p - 1)` is at most 2^29 and `dist + 1` fits; `from + k < out.len()` (from = len - dist - 1, k < len of the match, and the loop stops at `orig`); `block_left > 0` before it is decremented; `idle` is bounded by the checks.
#[allow(clippy::arithmetic_side_effects)]
fn decode(src: &[u8], version: Version, limit: u64, out: &mut Vec<u8>) -> Result<(), Error> {
    if src.len() < 8 {
        return Err(bad("stream shorter than its 8-byte header"));
    }
    let comp = u32::from_le_bytes([src[0], src[1], src[2], src[3]]) as usize;
    let orig = u32::from_le_bytes([src[4], src[5], src[6], src[7]]) as u64;
    if orig > limit {
        return Err(Error::Limit(limit));
    }
    let body = &src[8..];
    if comp > body.len() {
        return Err(bad("compressed size exceeds the data"));
    }
    let pbit = match version {
        Version::Efi11 => 4,
        Version::Tiano => 5,
    };
    let orig = orig as usize;
    out.reserve(orig.min(1 << 20));
    if orig == 0 {
        return Ok(());
    }
    let mut b = Bits {
        src: &body[..comp],
        pos: 0,
        buf: 0,
        sub: 0,
        count: 0,
    };
    b.fill(32);
    let mut t = Tables {
        left: vec![0; 2 * NC - 1],
        right: vec![0; 2 * NC - 1],
        c_len: [0; NC],
        pt_len: [0; NPT],
        c_table: vec![0; 1 << CTBITS],
        pt_table: vec![0; 1 << PTBITS],
    };
    let mut block_left: u32 = 0;
    // Each symbol consumes input bits or emits output; a stream that keeps decoding zero-length codes
    // past its input is stopped by this bound.
    let mut idle: u64 = 0;
    while out.len() < orig {
        if block_left == 0 {
            block_left = b.get(16);
            read_pt_len(&mut b, &mut t, NT, TBIT, Some(3))?;
            read_c_len(&mut b, &mut t)?;
            read_pt_len(&mut b, &mut t, MAXNP, pbit, None)?;
            if block_left == 0 {
                idle += 1;
                if idle > 1024 {
                    return Err(bad("empty blocks"));
                }
                continue;
            }
        }
        block_left -= 1;
        let v = t.c_table[(b.buf >> (32 - CTBITS)) as usize];
        let c = walk(&t, v, NC, b.buf, 31 - CTBITS)? as usize;
        b.fill(u32::from(t.c_len[c]));
        if c < 256 {
            out.push(c as u8);
        } else {
            let len = c - (0x100 - THRESHOLD);
            let v = t.pt_table[(b.buf >> (32 - PTBITS)) as usize];
            let p = walk(&t, v, MAXNP, b.buf, 31 - PTBITS)? as u32;
            b.fill(u32::from(t.pt_len.get(p as usize).copied().unwrap_or(0)));
            let dist = if p > 1 {
                (1u32 << (p - 1)) + b.get(p - 1)
            } else {
                p
            } as usize;
            let from = out
                .len()
                .checked_sub(dist + 1)
                .ok_or_else(|| bad("back-reference before the start of the output"))?;
            for k in 0..len {
                if out.len() >= orig {
                    break;
                }
                let byte = out[from + k];
                out.push(byte);
            }
        }
        if b.pos >= b.src.len() && b.count == 0 {
            idle += 1;
            if idle > (orig as u64).saturating_mul(2).saturating_add(64) {
                return Err(bad("input exhausted"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::uefi::build::{efi_compress, efi_store};

    #[test]
    fn streams_with_matches_round_trip() {
        let mut data = b"EFI_SYSTEM_TABLE ".repeat(300);
        data.extend((0..5000u32).map(|i| (i % 7) as u8));
        data.extend(b"abcabcabcabd".repeat(100));
        for v in [Version::Efi11, Version::Tiano] {
            let c = efi_compress(&data, v);
            assert!(c.len() < data.len() / 2, "no matches were used");
            assert_eq!(decompress(&c, v, 1 << 20).unwrap(), data);
        }
        // Decoding with the wrong variant does not give the data back.
        let c = efi_compress(&data, Version::Efi11);
        assert_ne!(decompress(&c, Version::Tiano, 1 << 20).ok(), Some(data));
    }

    #[test]
    fn literal_stream_round_trips_in_both_versions() {
        let data: Vec<u8> = (0..70_000u32).map(|i| (i * 7 + i / 300) as u8).collect();
        for v in [Version::Efi11, Version::Tiano] {
            let c = efi_store(&data, v);
            assert_eq!(decompress(&c, v, 1 << 20).unwrap(), data);
            assert_eq!(decompress(&c, v, 100), Err(Error::Limit(100)));
        }
    }

    #[test]
    fn garbage_never_panics() {
        let mut x: u32 = 12345;
        for n in 0..2000usize {
            let mut v = vec![0u8; 8 + n % 300];
            for b in v.iter_mut() {
                x = x.wrapping_mul(1103515245).wrapping_add(12345);
                *b = (x >> 16) as u8;
            }
            v[0..4].copy_from_slice(&((n % 300) as u32).to_le_bytes());
            v[4..8].copy_from_slice(&((n * 13) as u32).to_le_bytes());
            let _ = decompress(&v, Version::Tiano, 1 << 16);
            let _ = decompress(&v, Version::Efi11, 1 << 16);
        }
    }
}
