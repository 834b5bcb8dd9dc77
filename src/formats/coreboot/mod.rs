//! coreboot: the flash map (FMAP) and the coreboot file system (CBFS) with its stages and payloads.
//!
//! Layouts from coreboot's `commonlib/bsd/include/commonlib/bsd/cbfs_serialized.h` and
//! `util/cbfstool/` and the flashmap specification (`fmap.h`); the reference is `cbfstool IMAGE print` and
//! `cbfstool IMAGE layout -w` (Debian coreboot-utils), which `tests/coreboot.rs` compares node by node.

pub mod cbfs;
pub mod fmap;
