//! Release packages as a property of the registry (issue 19.3).
//!
//! A vendor ships an OpenBMC update tarball, a UEFI capsule or an ME region file; a flash dump holds its
//! parts elsewhere. Which parsed trees are such a package, which of their nodes are the parts, how each
//! part is found again in a flash image, where the flash layout for those anchors comes from and how the
//! vendor's signatures vouch for the package are facts about a format, so they are a field of its registry
//! entry ([`Format::package`](super::Format::package)). `manifest::package`, `fwscan verify` and the
//! baseline read them from there and never ask for a format by its name.

use crate::formats::layout::Layout;
use crate::region::Region;

/// How a parsed tree of one format is a release package.
#[derive(Debug, Clone, Copy)]
pub struct PackageSpec {
    /// What `verify` and `baseline` call the package (`openbmc-tarball`, `uefi-capsule`, `me-region`).
    pub kind: &'static str,
    /// Whether a tree whose root was parsed as this format is such a package (a tar archive is an OpenBMC
    /// package only with a `MANIFEST` member, whatever image files it still holds).
    pub is_package: fn(&Region) -> bool,
    /// Which nodes are its parts and how each is anchored in a flash image.
    pub parts: Parts,
    /// The flash layout the package itself carries, signed with it (an OpenBMC kernel FIT's device tree),
    /// for the `partition` anchors of its parts; `None`: the package carries none.
    pub flash_layout: Option<fn(&Region) -> Option<Layout>>,
    /// How the vendor's signatures vouch for the package; `None`: the package is not vendor-signed as a
    /// whole (its parts are anchored, no vendor signature is required of it).
    pub signing: Option<Signing>,
    /// For a package of a UBI flash layout: the name of the UBI volume the member of this name is found in
    /// (an OpenBMC `*.ubi.mtd.tar`'s `image-kernel` in `kernel-<version id>`), and whether that volume
    /// holds per-machine data the member is only the initial content of (`rwfs`). `None` (or a function
    /// returning `None` for the tree or the member): the member is anchored in its [`Member::partition`].
    pub ubi_volume: Option<UbiVolumeOf>,
}

/// The UBI volume of a package member (see [`PackageSpec::ubi_volume`]): its name, and whether it holds
/// per-machine data.
pub type UbiVolumeOf = fn(&Region, &str) -> Option<(String, bool)>;

/// Which nodes of a package tree are its parts.
#[derive(Debug, Clone, Copy)]
pub enum Parts {
    /// Children of the root, each by name, anchored in the flash partition named beside it (an OpenBMC
    /// `image-kernel` in the `kernel` partition). A member the package lacks is no part.
    Members(&'static [Member]),
    /// The whole file is the flash region (Intel descriptor) or partition of this name.
    Whole(&'static str),
    /// The shallowest nodes (outside decompressed data) whose children are firmware volumes, anchored by
    /// the names and sizes of those volumes: what every image without a package spec is split into, too.
    Volumes,
}

/// A part of a package that is one member of its root.
#[derive(Debug, Clone, Copy)]
pub struct Member {
    /// The member's node name (`image-u-boot`).
    pub name: &'static str,
    /// The flash partition it is found in (`u-boot`).
    pub partition: &'static str,
}

/// How a package's vendor signatures make it verified.
#[derive(Debug, Clone, Copy)]
pub enum Signing {
    /// Every part carries a signature of its own, made with the package's key; that key is vouched for by
    /// the vendor-package evidence on the member `root` (OpenBMC: `MANIFEST.sig`, verified with a system
    /// key), which must verify and be anchored in a vendor key.
    PerPart {
        root: &'static str,
        /// How to trust the vendor's key, for the refusal's message.
        key_hint: &'static str,
    },
    /// A signature covers a subtree (a capsule payload's PKCS#7); every part must lie in a subtree a
    /// verified signature covers, and every verified signer must be anchored in a vendor key.
    Covering {
        /// What the package is called in a refusal (`the capsule`).
        noun: &'static str,
        key_hint: &'static str,
    },
}

impl PackageSpec {
    /// Whether a part anchored in the flash partition `name` is one of this package's members.
    pub fn anchors_partition(&self, name: &str) -> bool {
        matches!(self.parts, Parts::Members(ms) if ms.iter().any(|m| m.partition == name))
    }
}

/// The package spec of a parsed tree: its root's format's, when the tree is such a package.
pub fn of(tree: &Region) -> Option<&'static PackageSpec> {
    let spec = super::by_name(tree.attr_str("format")?)?.package?;
    (spec.is_package)(tree).then_some(spec)
}

/// Whether the first bytes of a file look like a vendor-signed release package of any format in the
/// registry (what `fwscan verify` takes for a package rather than a manifest).
pub fn probe_signed(head: &[u8]) -> bool {
    super::registry()
        .iter()
        .any(|f| f.package.is_some_and(|p| p.signing.is_some()) && (f.probe)(head).is_some())
}

/// The package specs of the registry whose packages carry their own flash layout.
pub fn with_flash_layout() -> impl Iterator<Item = &'static PackageSpec> {
    super::registry()
        .iter()
        .filter_map(|f| f.package)
        .filter(|p| p.flash_layout.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::Data;
    use crate::region::RegionKind;
    use std::sync::Arc;

    fn tree(format: &str, children: &[&str]) -> Region {
        let data = Arc::new(Data::Owned(vec![0u8; 64]));
        let mut root = Region::new(RegionKind::Image, "", &data, 0, 64);
        root.attrs.insert("format".into(), format.into());
        for (c, at) in children.iter().zip((0u64..64).step_by(8)) {
            root.children
                .push(Region::new(RegionKind::FsFile, *c, &data, at, 8));
        }
        root
    }

    #[test]
    fn a_tree_is_a_package_by_its_formats_registry_entry() {
        // A tar archive is an OpenBMC package only with a MANIFEST member, stripped of images or not.
        assert!(of(&tree("tar", &["a", "b"])).is_none());
        let obmc = of(&tree("tar", &["MANIFEST"])).expect("a package");
        assert!(obmc.signing.is_some() && obmc.flash_layout.is_some());
        assert!(obmc.anchors_partition("u-boot") && !obmc.anchors_partition("me"));
        // Every capsule is a signed package whose parts are its volumes; an ME region file is the `me`
        // region, not vendor-signed as a whole; other formats are no package.
        let cap = of(&tree("capsule", &[])).expect("a package");
        assert!(matches!(cap.parts, Parts::Volumes) && cap.signing.is_some());
        let me = of(&tree("me", &[])).expect("a package");
        assert!(matches!(me.parts, Parts::Whole("me")) && me.signing.is_none());
        for f in ["uefi", "ifd", "bmc", "raw", "layout"] {
            assert!(of(&tree(f, &["MANIFEST"])).is_none(), "{f}");
        }
        // Only the OpenBMC package carries its own flash layout.
        assert_eq!(with_flash_layout().count(), 1);
        // A manifest (JSON) is not taken for a package.
        assert!(!probe_signed(b"{\n  \"schema_version\": 1\n}\n"));
        assert!(!probe_signed(&[0xFF; 4096]));
    }
}
