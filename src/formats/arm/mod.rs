//! Arm: Trusted Firmware-A firmware image packages (FIP) and their trusted-board-boot certificates.

pub mod fip;
