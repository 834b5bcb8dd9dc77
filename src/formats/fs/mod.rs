//! File systems and archives inside firmware: squashfs (and its inode walk), JFFS2, cpio (initramfs), and the
//! older BMC file systems cramfs, romfs and yaffs2 (listed through [`tree`] like squashfs).

pub mod cpio;
pub mod cramfs;
pub mod jffs2;
pub mod romfs;
pub mod squashfs;
pub mod squashfs_inodes;
pub mod tree;
pub mod yaffs2;
