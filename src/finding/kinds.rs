//! What a region is and what may happen to it: kinds, policies and offset spaces (the vocabulary shared
//! by parsers, the tree, manifests and reports).

use serde::{Deserialize, Serialize};

/// What a node is. Serialized in kebab-case; new kinds may be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum RegionKind {
    /// The whole image (the root).
    Image,
    /// A region of a flash descriptor, or of a user layout.
    FlashRegion,
    /// The Intel flash descriptor itself.
    Descriptor,
    /// A fixed-size header or other structure of a container.
    Header,
    /// A UEFI firmware volume.
    Volume,
    /// An FFS file (a module).
    File,
    /// An FFS section.
    Section,
    /// A flash partition (BMC layouts, ME `$FPT` entries).
    Partition,
    /// Unused space inside a container (e.g. the end of a firmware volume); expected to be blank.
    FreeSpace,
    /// Bytes between known structures.
    Padding,
    /// An NVRAM variable store.
    NvramStore,
    /// One NVRAM variable.
    Variable,
    /// A FIT or uImage sub-image.
    FitImage,
    /// A filesystem (squashfs, jffs2, UBI volume).
    Filesystem,
    /// A regular file inside a filesystem.
    FsFile,
    /// A directory inside a filesystem.
    FsDir,
    /// A symbolic link inside a filesystem.
    FsSymlink,
    /// A U-Boot environment.
    Environment,
    /// One environment variable.
    EnvVariable,
    /// Code or data the parser did not look into.
    Blob,
}

impl RegionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RegionKind::Image => "image",
            RegionKind::FlashRegion => "flash-region",
            RegionKind::Descriptor => "descriptor",
            RegionKind::Header => "header",
            RegionKind::Volume => "volume",
            RegionKind::File => "file",
            RegionKind::Section => "section",
            RegionKind::Partition => "partition",
            RegionKind::FreeSpace => "free-space",
            RegionKind::Padding => "padding",
            RegionKind::NvramStore => "nvram-store",
            RegionKind::Variable => "variable",
            RegionKind::FitImage => "fit-image",
            RegionKind::Filesystem => "filesystem",
            RegionKind::FsFile => "fs-file",
            RegionKind::FsDir => "fs-dir",
            RegionKind::FsSymlink => "fs-symlink",
            RegionKind::Environment => "environment",
            RegionKind::EnvVariable => "env-variable",
            RegionKind::Blob => "blob",
        }
    }

    /// Module-like kinds: a change anywhere below them is reported once, on them.
    pub fn is_module(self) -> bool {
        matches!(self, RegionKind::File)
    }

    /// Filesystem entries: reported as `file-*` findings.
    pub fn is_fs_entry(self) -> bool {
        matches!(
            self,
            RegionKind::FsFile | RegionKind::FsDir | RegionKind::FsSymlink
        )
    }
}

/// What a change to a node means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// Must be byte-identical to the baseline.
    #[default]
    Static,
    /// Per-machine data (NVRAM, MAC address, environment): not compared, but static children (pinned
    /// variables) inside it still are.
    Mutable,
    /// Not looked at at all, children included.
    Ignore,
    /// Must consist only of the blank byte (its size may change).
    Blank,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Static => "static",
            Policy::Mutable => "mutable",
            Policy::Ignore => "ignore",
            Policy::Blank => "blank",
        }
    }
}

/// Where a node's offset is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Space {
    /// Absolute offset in the image file.
    #[default]
    Image,
    /// Offset inside the decompressed bytes of an ancestor (named by `Region::base`).
    Decompressed,
}
