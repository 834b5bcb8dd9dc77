//! Names of well-known GUIDs (file systems, section GUIDs, common EDK2 modules), read from
//! `signatures/uefi-guids.csv` (embedded at build time).
#![deny(clippy::arithmetic_side_effects)]

use std::collections::HashMap;
use std::sync::OnceLock;

const CSV: &str = include_str!("../../../signatures/uefi-guids.csv");

pub const FFS1: &str = "7A9354D9-0468-444A-81CE-0BF617D890DF";
pub const FFS2: &str = "8C8CE578-8A3D-4F1C-9935-896185C32DD3";
pub const FFS3: &str = "5473C07A-3DCB-4DCA-BD6F-1E9689E7349A";
pub const NVRAM_FS: [&str; 2] = [
    "FFF12B8D-7696-4C8B-A985-2747075B4F50",
    "00504624-8A59-4EEB-BD0F-6B36E96128E0",
];
pub const LZMA: &str = "EE4E5898-3914-4259-9D6E-DC7BD79403CF";
pub const LZMAF86: &str = "D42AE6BD-1352-4BFB-909A-CA72A6EAE889";
pub const TIANO: &str = "A31280AD-481E-41B6-95E8-127F4C984779";
pub const BROTLI: &str = "3D532050-5CDA-4FD0-879E-0F7F630D5AFB";
pub const GZIP: &str = "1D301FE9-BE79-4353-91C2-D23BC959AE0C";
pub const CRC32: &str = "FC1BCDB0-7D31-49AA-936A-A4600D9DD083";

fn table() -> &'static HashMap<String, String> {
    static T: OnceLock<HashMap<String, String>> = OnceLock::new();
    T.get_or_init(|| {
        CSV.lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .filter_map(|l| {
                let (g, n) = l.split_once(',')?;
                Some((g.trim().to_ascii_uppercase(), n.trim().to_string()))
            })
            .collect()
    })
}

/// The well-known name of a GUID (registry form), if any.
pub fn name(guid: &str) -> Option<&'static str> {
    table().get(guid).map(String::as_str)
}

#[cfg(test)]
mod tests {
    #[test]
    fn table_parses_and_names_section_guids() {
        assert_eq!(super::name(super::LZMA), Some("LzmaCustomDecompress"));
        assert_eq!(
            super::name(super::FFS2),
            Some("EFI_FIRMWARE_FILE_SYSTEM2_GUID")
        );
        for l in super::CSV
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let g = l.split(',').next().unwrap();
            assert_eq!(g.len(), 36, "{l}");
        }
    }
}
