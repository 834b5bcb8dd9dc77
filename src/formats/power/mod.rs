//! OpenPOWER host firmware (issue 22.6): OPAL `skiboot` ([`skiboot`]) and SLOF, the Open Firmware of
//! QEMU's pSeries machine ([`slof`]), and the secure-boot container signed PNOR partitions are wrapped in
//! ([`container`]). skiboot's ELF build is read by the `elf` format.
#![deny(clippy::arithmetic_side_effects)]

pub mod container;
pub mod skiboot;
pub mod slof;
