//! Intel SPI flash pieces built by the tests: IFD v2 descriptors and deterministic filler.

pub fn w32(b: &mut [u8], o: usize, v: u32) {
    b[o..o + 4].copy_from_slice(&v.to_le_bytes());
}

/// Descriptor bytes (4 KiB) with the given FLREGs (index, base, limit in 4 KiB units); others unused.
pub fn descriptor(regs: &[(usize, u32, u32)]) -> Vec<u8> {
    let mut d = vec![0xFFu8; 0x1000];
    w32(&mut d, 0x10, 0x0FF0_A55A);
    w32(&mut d, 0x14, 0x0004_0003);
    w32(&mut d, 0x18, 0x1010_0308);
    w32(&mut d, 0x1C, 0x0000_0030);
    let clk = 6u32; // 17 MHz: IFD v2
    w32(
        &mut d,
        0x30,
        (clk << 17) | (clk << 21) | (clk << 24) | (clk << 27) | 0xF4,
    );
    w32(&mut d, 0x34, 0);
    w32(&mut d, 0x38, 0);
    for i in 0..16 {
        w32(&mut d, 0x40 + 4 * i, 0x0000_7FFF);
    }
    for &(i, base, limit) in regs {
        w32(&mut d, 0x40 + 4 * i, (limit << 16) | base);
    }
    for i in 0..3 {
        w32(&mut d, 0x80 + 4 * i, 0xFFFF_0000);
    }
    w32(&mut d, 0xEFC, 0);
    d
}

/// Deterministic filler bytes.
pub fn noise(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

/// ME partitions (name, offset in the region, size, flags).
pub const ME_PARTS: [(&str, u32, u32, u32); 3] = [
    ("FTPR", 0x1000, 0x20000, 0),
    ("MFS", 0x21000, 0x10000, 1),
    ("NFTP", 0x31000, 0x40000, 0),
];

/// An ME region of `len` bytes with a `$FPT` of [`ME_PARTS`] (FTPR code, MFS data, NFTP code) holding noise.
pub fn me_region(len: usize) -> Vec<u8> {
    let mut b = vec![0xFFu8; len];
    b[0x10..0x14].copy_from_slice(b"$FPT");
    w32(&mut b, 0x14, ME_PARTS.len() as u32);
    b[0x18] = 0x10;
    b[0x19] = 0x10;
    b[0x1A] = 0x20;
    b[0x1C..0x30].fill(0);
    for (i, (n, off, size, flags)) in ME_PARTS.iter().enumerate() {
        let e = 0x30 + i * 0x20;
        b[e..e + 0x20].fill(0);
        b[e..e + n.len()].copy_from_slice(n.as_bytes());
        w32(&mut b, e + 8, *off);
        w32(&mut b, e + 12, *size);
        w32(&mut b, e + 28, *flags);
        let (o, s) = (*off as usize, *size as usize);
        b[o..o + s].copy_from_slice(&noise(s, i as u32 + 7));
    }
    b
}
