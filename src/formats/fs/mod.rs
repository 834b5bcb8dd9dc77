//! File systems and archives inside firmware: squashfs (and its inode walk), JFFS2, cpio (initramfs).

pub mod cpio;
pub mod jffs2;
pub mod squashfs;
pub mod squashfs_inodes;
