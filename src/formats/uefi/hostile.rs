//! Hostile inputs for tests and `benches/hostile.sh` (issue 15): decompression bombs in every codec and
//! volumes of very many tiny files. Everything is generated here (via [`super::build`]), nothing is a
//! binary fixture.
//!
//! Compiled only with the `fixtures` feature or in the library's unit tests, like [`super::build`].
//!
//! ```
//! use fwscan::formats::uefi::hostile::{bomb_volume, Codec};
//! let v = bomb_volume(Codec::Gzip, 3, 4096);
//! assert_eq!(&v[0x28..0x2C], b"_FVH");
//! ```
#![cfg(any(test, feature = "fixtures"))]
#![deny(clippy::arithmetic_side_effects)]

use super::build::{self, guid_bytes, FFS2};
use crate::formats::decompress::efi::Version;

/// The codec of a compressed section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// LZMA GUID-defined section, header size "unknown" (`u64::MAX`): decoded until the cap.
    Lzma,
    /// LZMAF86 GUID-defined section, likewise.
    LzmaF86,
    /// gzip GUID-defined section.
    Gzip,
    /// Tiano GUID-defined section whose stream claims exactly the cap.
    Tiano,
    /// `EFI_COMPRESSION_SECTION` type 1 (EFI 1.1 or Tiano, tried both ways) claiming exactly the cap.
    Efi,
    /// Brotli GUID-defined section whose header claims fewer bytes than the (stored) stream holds.
    Brotli,
}

impl Codec {
    pub const ALL: [Codec; 6] = [
        Codec::Lzma,
        Codec::LzmaF86,
        Codec::Gzip,
        Codec::Tiano,
        Codec::Efi,
        Codec::Brotli,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Codec::Lzma => "lzma",
            Codec::LzmaF86 => "lzmaf86",
            Codec::Gzip => "gzip",
            Codec::Tiano => "tiano",
            Codec::Efi => "efi",
            Codec::Brotli => "brotli",
        }
    }
}

/// One compressed section whose contents (`size` zero bytes, or `size + 4096` where the codec lets a
/// stream run past the cap) expand far beyond the section.
pub fn bomb_section(codec: Codec, size: u64) -> Vec<u8> {
    let n = usize::try_from(size).unwrap_or(usize::MAX);
    match codec {
        Codec::Lzma | Codec::LzmaF86 => {
            let mut c = build::lzma_compress(&vec![0u8; n.saturating_add(4096)]);
            c[5..13].copy_from_slice(&u64::MAX.to_le_bytes());
            let g = if codec == Codec::Lzma {
                build::LZMA
            } else {
                build::LZMAF86
            };
            build::guided(g, 0x01, &[], &c)
        }
        Codec::Gzip => build::gzip_section(&vec![0u8; n.saturating_add(4096)]),
        Codec::Tiano => {
            let c = build::efi_compress(&vec![0u8; n], Version::Tiano);
            build::guided(guid_bytes(super::guids::TIANO), 0x01, &[], &c)
        }
        Codec::Efi => {
            let c = build::efi_compress(&vec![0u8; n], Version::Tiano);
            build::compression_section(1, u32::try_from(n).unwrap_or(u32::MAX), &c)
        }
        Codec::Brotli => {
            // Stored meta-blocks cannot compress, so this one is as large as what it produces: it claims
            // 1 KiB and holds `size / 16` bytes.
            let mut c = build::brotli_store(&vec![0u8; n / 16]);
            c[..8].copy_from_slice(&1024u64.to_le_bytes());
            build::guided(build::BROTLI, 0x01, &[], &c)
        }
    }
}

/// A firmware volume of `count` FFS files, each holding one [`bomb_section`] of `size` bytes.
pub fn bomb_volume(codec: Codec, count: usize, size: u64) -> Vec<u8> {
    bomb_volume_sized(codec, count, size, 0)
}

/// [`bomb_volume`] in a volume of at least `volume_size` bytes (a clean counterpart of the same size as
/// its case, so that a baseline of one is found at the place of the other).
pub fn bomb_volume_sized(codec: Codec, count: usize, size: u64, volume_size: usize) -> Vec<u8> {
    let sec = bomb_section(codec, size);
    let files: Vec<Vec<u8>> = (0..count)
        .map(|i| {
            let g = guid_bytes(&format!("{:08X}-0000-4000-8000-000000000015", i));
            build::file(g, 0x07, &sec, 0)
        })
        .collect();
    let need: usize = files
        .iter()
        .map(|f| f.len().saturating_add(8))
        .fold(0x1000usize, usize::saturating_add);
    let size = need
        .div_ceil(0x1000)
        .saturating_mul(0x1000)
        .max(volume_size);
    build::volume(FFS2, None, &files, size)
}

/// A firmware volume of `count` empty FFS files (24-byte headers, no body), with distinct GUIDs or all
/// the same one.
pub fn empty_files_volume(count: usize, same_guid: bool) -> Vec<u8> {
    empty_files_volume_sized(count, same_guid, 0)
}

/// [`empty_files_volume`] in a volume of at least `volume_size` bytes.
pub fn empty_files_volume_sized(count: usize, same_guid: bool, volume_size: usize) -> Vec<u8> {
    let mut files = Vec::with_capacity(count);
    for i in 0..count {
        let g = if same_guid {
            guid_bytes("15151515-0000-4000-8000-000000000015")
        } else {
            guid_bytes(&format!("{:08X}-1515-4000-8000-000000000015", i))
        };
        files.push(build::file(g, 0x02, &[], 0));
    }
    let size = count
        .saturating_mul(24)
        .saturating_add(0x2000)
        .div_ceil(0x1000)
        .saturating_mul(0x1000)
        .max(volume_size);
    build::volume(FFS2, None, &files, size)
}
