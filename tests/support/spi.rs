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
