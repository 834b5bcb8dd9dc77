//! The OpenBMC static flash layouts (`openbmc-flash-layout.dtsi`, `-64.dtsi`, `-128.dtsi` in Linux's
//! `arch/arm/boot/dts/aspeed/`), used only when the content at their offsets confirms them.
#![deny(clippy::arithmetic_side_effects)]

/// A preset: its name, flash size and `(name, offset, size)` partitions.
#[derive(Debug, Clone, Copy)]
pub struct Preset {
    pub name: &'static str,
    pub flash_size: u64,
    pub parts: &'static [(&'static str, u64, u64)],
}

pub const PRESETS: &[Preset] = &[
    Preset {
        name: "openbmc-32M",
        flash_size: 32 << 20,
        parts: &[
            ("u-boot", 0x0, 0x60000),
            ("u-boot-env", 0x60000, 0x20000),
            ("kernel", 0x80000, 0x440000),
            ("rofs", 0x4C0000, 0x1740000),
            ("rwfs", 0x1C00000, 0x400000),
        ],
    },
    Preset {
        name: "openbmc-64M",
        flash_size: 64 << 20,
        parts: &[
            ("u-boot", 0x0, 0xE0000),
            ("u-boot-env", 0xE0000, 0x20000),
            ("kernel", 0x100000, 0x900000),
            ("rofs", 0xA00000, 0x2000000),
            ("rwfs", 0x2A00000, 0x1600000),
        ],
    },
    Preset {
        name: "openbmc-128M",
        flash_size: 128 << 20,
        parts: &[
            ("u-boot", 0x0, 0xE0000),
            ("u-boot-env", 0xE0000, 0x20000),
            ("kernel", 0x100000, 0x900000),
            ("rofs", 0xA00000, 0x5600000),
            ("rwfs", 0x6000000, 0x2000000),
        ],
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_tile_their_flash() {
        for p in PRESETS {
            let mut cursor = 0;
            for &(_, off, size) in p.parts {
                assert_eq!(off, cursor, "{}", p.name);
                cursor = off + size;
            }
            assert_eq!(cursor, p.flash_size, "{}", p.name);
        }
    }
}
