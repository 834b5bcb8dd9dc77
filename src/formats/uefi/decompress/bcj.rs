//! The x86 branch/call/jump (BCJ) filter of the LZMA SDK, as EDK2's LZMAF86 sections apply it after LZMA.
//! Relative CALL/JMP targets (E8/E9 followed by a 32-bit displacement whose top byte is 00 or FF) were
//! turned into absolute addresses by the encoder; decoding turns them back. Written from the filter's
//! description (xz `simple/x86.c` behaviour, start position 0).
#![deny(clippy::arithmetic_side_effects)]

fn ms_byte_ok(b: u8) -> bool {
    b == 0 || b == 0xFF
}

// Reviewed: `buf.len() >= 5` (checked), `pos <= buf.len() - 5` (the loop condition) so `pos + 4` indexes `buf`; `i` is 0..=3 from BIT, so the shifts stay in 0..=32 and their subtractions are positive.
#[allow(clippy::arithmetic_side_effects)]
fn code(buf: &mut [u8], encode: bool) {
    const ALLOWED: [bool; 8] = [true, true, true, false, true, false, false, false];
    const BIT: [u32; 8] = [0, 1, 2, 2, 3, 3, 3, 3];
    if buf.len() < 5 {
        return;
    }
    let mut prev_mask: u32 = 0;
    let mut prev_pos: u32 = 0u32.wrapping_sub(5);
    let limit = buf.len() - 5;
    let mut pos = 0usize;
    while pos <= limit {
        let b = buf[pos];
        if b != 0xE8 && b != 0xE9 {
            pos += 1;
            continue;
        }
        let p = pos as u32;
        let offset = p.wrapping_sub(prev_pos);
        prev_pos = p;
        if offset > 5 {
            prev_mask = 0;
        } else {
            for _ in 0..offset {
                prev_mask &= 0x77;
                prev_mask <<= 1;
            }
        }
        let b4 = buf[pos + 4];
        if ms_byte_ok(b4) && ALLOWED[((prev_mask >> 1) & 7) as usize] && (prev_mask >> 1) < 0x10 {
            let mut src = u32::from_le_bytes([buf[pos + 1], buf[pos + 2], buf[pos + 3], b4]);
            let mut dest;
            loop {
                let here = p.wrapping_add(5);
                dest = if encode {
                    src.wrapping_add(here)
                } else {
                    src.wrapping_sub(here)
                };
                if prev_mask == 0 {
                    break;
                }
                let i = BIT[((prev_mask >> 1) & 7) as usize];
                let bb = (dest >> (24 - i * 8)) as u8;
                if !ms_byte_ok(bb) {
                    break;
                }
                src = dest ^ ((1u32 << (32 - i * 8)) - 1);
            }
            let top = !(((dest >> 24) & 1).wrapping_sub(1)) as u8;
            buf[pos + 1] = dest as u8;
            buf[pos + 2] = (dest >> 8) as u8;
            buf[pos + 3] = (dest >> 16) as u8;
            buf[pos + 4] = top;
            pos += 5;
            prev_mask = 0;
        } else {
            pos += 1;
            prev_mask |= 1;
            if ms_byte_ok(b4) {
                prev_mask |= 0x10;
            }
        }
    }
}

/// Undoes the x86 BCJ filter in place.
pub fn x86_decode(buf: &mut [u8]) {
    code(buf, false);
}

/// Applies the x86 BCJ filter in place (used by the builder).
pub fn x86_encode(buf: &mut [u8]) {
    code(buf, true);
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)] // fixtures built from small constants
mod tests {

    use super::*;

    fn sample() -> Vec<u8> {
        let mut v = Vec::new();
        for i in 0..5000u32 {
            match i % 7 {
                0 => v.extend_from_slice(&[0xE8, (i & 0xFF) as u8, 0x10, 0, 0]),
                1 => v.extend_from_slice(&[0xE9, 0xF0, 0xFF, 0xFF, 0xFF]),
                2 => v.extend_from_slice(&[0xE8, 0xE8, 0x00, 0x00, 0x00, 0xE9]),
                _ => v.push((i * 31) as u8),
            }
        }
        v
    }

    #[test]
    fn matches_liblzma_x86_filter() {
        use liblzma::stream::{Action, Filters, LzmaOptions, Stream};
        let data = sample();
        // Encode with liblzma's x86+LZMA2 raw chain, decode with LZMA2 only: what is left is liblzma's BCJ
        // output, which our decoder must turn back into the input.
        let opts = LzmaOptions::new_preset(6).unwrap();
        let mut f = Filters::new();
        f.x86().lzma2(&opts);
        let mut enc = Stream::new_raw_encoder(&f).unwrap();
        let mut c = Vec::with_capacity(data.len() * 2 + 1024);
        enc.process_vec(&data, &mut c, Action::Finish).unwrap();
        let mut f2 = Filters::new();
        f2.lzma2(&opts);
        let mut dec = Stream::new_raw_decoder(&f2).unwrap();
        let mut bcj = Vec::with_capacity(data.len() + 1024);
        dec.process_vec(&c, &mut bcj, Action::Finish).unwrap();
        assert_eq!(bcj.len(), data.len());
        assert_ne!(
            bcj, data,
            "the filter changed nothing; sample has no branches"
        );
        let mut ours = data.clone();
        x86_encode(&mut ours);
        assert_eq!(ours, bcj, "our encoder differs from liblzma's");
        x86_decode(&mut bcj);
        assert_eq!(bcj, data);
    }

    #[test]
    fn encode_then_decode_is_identity_on_branchy_noise() {
        let mut x: u32 = 7;
        for n in 0..300usize {
            let mut v: Vec<u8> = (0..n * 7)
                .map(|_| {
                    x = x.wrapping_mul(1664525).wrapping_add(1013904223);
                    [0xE8, 0xE9, 0x00, 0xFF, (x >> 24) as u8][(x >> 8) as usize % 5]
                })
                .collect();
            let orig = v.clone();
            x86_encode(&mut v);
            x86_decode(&mut v);
            assert_eq!(v, orig, "length {}", orig.len());
        }
    }
}
