//! fwscan's integration tests: one binary, one shared harness ([`harness`]), one module per area.
//!
//! Cross-checks against reference tools (UEFIExtract, ifdtool, minisign, mkimage, ...) and real firmware
//! (Debian's OVMF/AAVMF/SeaBIOS, `../shared/fixtures/`) say `SKIPPED` when what they need is missing, and fail
//! under CI (`CI=true`), where `.ci/run` installs all of it.

mod harness;
mod support;

mod aspeed;
mod audit;
mod basics;
mod bmc;
mod bootguard_coverage;
mod chains;
mod check;
mod coreboot;
mod corim;
mod corim_interop;
mod errors;
mod eventlog;
mod failclosed;
mod fit_sig;
mod fleet;
mod gbe;
mod hardening;
mod hostexe;
mod html;
mod ifd;
mod intel;
mod intel_me;
mod layering;
mod npcm;
mod nvram;
mod obmc_complete;
mod oldfs;
mod optionrom;
mod packages;
mod pipeline;
mod platforms;
mod sarif;
mod signing;
mod stb;
mod stm;
mod ubi;
mod uefi;
