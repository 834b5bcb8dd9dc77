//! File systems and archives inside firmware: squashfs 4 (and its inode walk), JFFS2, cpio (initramfs), and the
//! older BMC file systems cramfs, romfs, yaffs2 and squashfs 2.x/3.x (listed through [`tree`] like squashfs).

pub mod cpio;
pub mod cramfs;
pub mod jffs2;
pub mod romfs;
pub mod squashfs;
pub mod squashfs3;
pub mod squashfs_inodes;
pub mod tree;
pub mod yaffs2;
