//! Reading image files safely.
//!
//! Policy (see the README, "Reading files"): an image is memory-mapped **only** when the file lives on a
//! read-only mount (`statvfs` reports `ST_RDONLY`), where no other process can truncate it under us; a
//! truncated mapping would otherwise raise SIGBUS and kill the whole batch. Everything else is read into a
//! buffer of exactly the size reported by `fstat` (bounded by [`ReadOptions::max_size`]), and the file is
//! checked again after reading: a file that grew, shrank or was replaced during the read is an error for that
//! file ([`Error::FileChanged`]), never a crash and never a silently partial scan.

use std::fs::File;
use std::io::Read;
use std::ops::Deref;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;
use std::sync::Arc;

use crate::error::Error;

/// Default cap on the size of one image file: 1 GiB (real SPI flash is at most 256 MiB).
pub const DEFAULT_MAX_IMAGE_SIZE: u64 = 1 << 30;

/// Bytes of an image or of a decompressed buffer. Cheap to clone through [`Arc`].
#[derive(Debug)]
pub enum Data {
    Owned(Vec<u8>),
    Mapped(memmap2::Mmap),
    /// A file's bytes read into an anonymous mapping (the first `len` bytes of it): see [`read_into_anon`].
    Read {
        map: memmap2::Mmap,
        len: usize,
    },
}

impl Deref for Data {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Data::Owned(v) => v,
            Data::Mapped(m) => m,
            Data::Read { map, len } => &map[..*len],
        }
    }
}

impl From<Vec<u8>> for Data {
    fn from(v: Vec<u8>) -> Self {
        Data::Owned(v)
    }
}

/// How [`read_image`] reads.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// Files larger than this are refused before anything is read.
    pub max_size: u64,
    /// Allow memory mapping on read-only mounts (the only place it is safe).
    pub allow_mmap: bool,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            max_size: DEFAULT_MAX_IMAGE_SIZE,
            allow_mmap: true,
        }
    }
}

/// How an image was read, for reports and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMode {
    Buffered,
    Mapped,
}

/// Opens a file for reading only if it is a regular file, deciding on the opened descriptor (`fstat`),
/// not on the path: the path may have been swapped for a FIFO after an earlier check, so it is opened
/// with `O_NONBLOCK` (which changes nothing for reads of a regular file) and never blocks (issue 15).
pub fn open_regular(path: &Path) -> Result<(File, std::fs::Metadata), Error> {
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        error: source,
    };
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
    {
        Err(e) if too_long(&e) => long::open(
            path,
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::NONBLOCK,
        )
        .map(File::from),
        r => r,
    }
    .map_err(io)?;
    let md = file.metadata().map_err(io)?;
    if !md.is_file() {
        return Err(Error::NotRegularFile {
            path: path.to_path_buf(),
        });
    }
    Ok((file, md))
}

/// Reads one image file. Errors name the file.
pub fn read_image(path: &Path, opts: &ReadOptions) -> Result<Arc<Data>, Error> {
    read_image_with_mode(path, opts).map(|(d, _)| d)
}

/// Like [`read_image`], also telling whether the file was mapped.
pub fn read_image_with_mode(
    path: &Path,
    opts: &ReadOptions,
) -> Result<(Arc<Data>, ReadMode), Error> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        error: source,
    };
    regular_file(path)?;
    let (file, before) = open_regular(path)?;
    let size = before.len();
    if size > opts.max_size {
        return Err(Error::TooLarge {
            path: path.to_path_buf(),
            size,
            limit: opts.max_size,
        });
    }
    if opts.allow_mmap && size > 0 && on_read_only_mount(&file) {
        // SAFETY: the file is on a read-only mount (checked with fstatvfs just above), so no process can
        // truncate or modify it while the mapping lives; the mapping is read-only and private.
        #[allow(unsafe_code)]
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        return Ok((Arc::new(Data::Mapped(map)), ReadMode::Mapped));
    }
    let cap = usize::try_from(size).map_err(|_| Error::TooLarge {
        path: path.to_path_buf(),
        size,
        limit: opts.max_size,
    })?;
    if size >= ANON_READ_MIN {
        let (map, len) = read_into_anon(&file, cap).map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => Error::FileChanged {
                path: path.to_path_buf(),
                what: format!("file shorter than the {size} bytes it had when opened"),
            },
            _ => io(e),
        })?;
        unchanged_after_read(path, &file, &before, len as u64)?;
        return Ok((Arc::new(Data::Read { map, len }), ReadMode::Buffered));
    }
    let mut buf = Vec::with_capacity(cap);
    (&file).take(size).read_to_end(&mut buf).map_err(io)?;
    unchanged_after_read(path, &file, &before, buf.len() as u64)?;
    Ok((Arc::new(Data::Owned(buf)), ReadMode::Buffered))
}

/// After reading `read` bytes of `file` (whose metadata was `before`): a file that grew, shrank or was
/// modified during the read is [`Error::FileChanged`].
fn unchanged_after_read(
    path: &Path,
    file: &File,
    before: &std::fs::Metadata,
    read: u64,
) -> Result<(), Error> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        error: source,
    };
    let size = before.len();
    // One byte more than expected means the file grew.
    let mut probe = [0u8; 1];
    let grew = file.read_at(&mut probe, size).map_err(io)? != 0;
    if grew || read != size {
        return Err(Error::FileChanged {
            path: path.to_path_buf(),
            what: format!("expected {size} bytes, read {read}"),
        });
    }
    let after = file.metadata().map_err(io)?;
    if after.len() != size
        || after.mtime() != before.mtime()
        || after.mtime_nsec() != before.mtime_nsec()
    {
        return Err(Error::FileChanged {
            path: path.to_path_buf(),
            what: "size or modification time changed during the read".into(),
        });
    }
    Ok(())
}

/// Files at least this large are read into an anonymous mapping advised for transparent huge pages.
const ANON_READ_MIN: u64 = 2 << 20;
/// The transparent huge page size of x86-64 and AArch64 (4 KiB base pages).
const HUGE_PAGE: usize = 2 << 20;

/// Reads `len` bytes from offset 0 into a private anonymous mapping whose length is rounded up to whole
/// huge pages and advised `MADV_HUGEPAGE`. Reading a file copies it into fresh memory, and each fresh 4 KiB
/// page costs a page fault (most of a clean scan's system time: 900 faults for a 3.5 MiB image); with huge
/// pages the same copy faults a few times. Where the kernel gives no huge page the mapping works as any
/// other. The mapping is made read-only once filled.
///
/// A mapping this thread's previous image left behind ([`recycle`]) is read into instead when it is large
/// enough: its pages are already there, so the read neither faults nor has the kernel zero them (a quarter
/// of a fleet audit's CPU time went to zeroing and faulting fresh pages). The read overwrites the first
/// `len` bytes and only those are ever visible; a read that fails drops the mapping.
fn read_into_anon(file: &File, len: usize) -> std::io::Result<(memmap2::Mmap, usize)> {
    let mapped = len
        .checked_next_multiple_of(HUGE_PAGE)
        .ok_or_else(|| std::io::Error::other("image too large to map"))?;
    let spare = SPARE
        .with(|s| s.borrow_mut().take())
        .filter(|m| m.len() >= mapped);
    let mut map = match spare {
        Some(m) => m,
        None => {
            let m = memmap2::MmapMut::map_anon(mapped)?;
            // Advice only: a kernel without transparent huge pages refuses it and the read goes on.
            let _ = m.advise(memmap2::Advice::HugePage);
            m
        }
    };
    if len as u64 >= PARALLEL_READ_MIN {
        read_parallel(file, &mut map[..len])?;
    } else {
        file.read_exact_at(&mut map[..len], 0)?;
    }
    Ok((map.make_read_only()?, len))
}

thread_local! {
    /// The mapping of an image this thread finished with ([`recycle`]), read into by its next image.
    static SPARE: std::cell::RefCell<Option<memmap2::MmapMut>> = const { std::cell::RefCell::new(None) };
}

/// Hands an image's bytes back once the caller is done with them: when nothing else refers to them (no
/// tree, finding or cache: [`Arc::try_unwrap`]) and they were read into an anonymous mapping, the mapping
/// is kept for the next image this thread reads (a fleet audit's workers read one image after another)
/// instead of being unmapped. No earlier image's view can then see the next image's bytes, and at most
/// one mapping of at most [`SPARE_MAX`] bytes is kept per thread.
pub fn recycle(data: Arc<Data>) {
    if let Ok(Data::Read { map, .. }) = Arc::try_unwrap(data) {
        if map.len() > SPARE_MAX {
            return;
        }
        if let Ok(m) = map.make_mut() {
            SPARE.with(|s| *s.borrow_mut() = Some(m));
        }
    }
}

/// The largest mapping [`recycle`] keeps (a 32 MiB BMC flash, a 64 MiB host flash).
pub const SPARE_MAX: usize = 64 << 20;

/// Files at least this large are read by several threads at once.
const PARALLEL_READ_MIN: u64 = 16 << 20;
/// Bytes each parallel read covers.
const PARALLEL_READ_CHUNK: usize = 8 << 20;

/// Fills `buf` from offset 0 with positioned reads on rayon's threads: copying a large file out of the
/// page cache is spread over the cores.
fn read_parallel(file: &File, buf: &mut [u8]) -> std::io::Result<()> {
    use rayon::prelude::*;
    buf.par_chunks_mut(PARALLEL_READ_CHUNK)
        .enumerate()
        .try_for_each(|(i, chunk)| file.read_exact_at(chunk, (i * PARALLEL_READ_CHUNK) as u64))
}

fn on_read_only_mount(file: &File) -> bool {
    match rustix::fs::fstatvfs(file) {
        Ok(st) => st.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY),
        Err(_) => false,
    }
}

/// Metadata of `path` if it is a regular file (following links). Checked before opening: opening a FIFO
/// would block, and a directory is a distinct, clear error.
pub fn regular_file(path: &Path) -> Result<std::fs::Metadata, Error> {
    let meta = metadata(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        error: source,
    })?;
    if meta.is_dir() {
        return Err(Error::IsDirectory {
            path: path.to_path_buf(),
        });
    }
    if !meta.is_file() {
        return Err(Error::NotRegularFile {
            path: path.to_path_buf(),
        });
    }
    Ok(meta)
}

/// Reads a small file (manifest, policy, layout) with a size cap checked before reading.
pub fn read_capped(path: &Path, limit: u64) -> Result<Vec<u8>, Error> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        error: source,
    };
    let meta = regular_file(path)?;
    if meta.len() > limit {
        return Err(Error::TooLarge {
            path: path.to_path_buf(),
            size: meta.len(),
            limit,
        });
    }
    let (file, md) = open_regular(path)?;
    // Sized once from the open file's length (one byte more tells a file that grew), instead of growing
    // by doubling: a 1.2 MB manifest was copied a dozen times into fresh pages on its way in.
    let expect = md.len().min(limit).saturating_add(1);
    let mut buf = Vec::with_capacity(usize::try_from(expect).unwrap_or(0));
    file.take(limit.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(io)?;
    if buf.len() as u64 > limit {
        return Err(Error::TooLarge {
            path: path.to_path_buf(),
            size: buf.len() as u64,
            limit,
        });
    }
    Ok(buf)
}

fn too_long(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(rustix::io::Errno::NAMETOOLONG.raw_os_error())
}

/// `std::fs::metadata`, also for paths longer than the kernel's `PATH_MAX` (issue 15.10): such a path is
/// resolved one directory at a time by descriptor (`openat`).
pub fn metadata(path: &Path) -> std::io::Result<std::fs::Metadata> {
    match std::fs::metadata(path) {
        Err(e) if too_long(&e) => long::metadata(path, true),
        r => r,
    }
}

/// `std::fs::symlink_metadata`, also for paths longer than `PATH_MAX` (see [`metadata`]).
pub fn symlink_metadata(path: &Path) -> std::io::Result<std::fs::Metadata> {
    match std::fs::symlink_metadata(path) {
        Err(e) if too_long(&e) => long::metadata(path, false),
        r => r,
    }
}

/// The names in directory `path` (without `.` and `..`), also for paths longer than `PATH_MAX` (see
/// [`metadata`]). Unsorted.
pub fn dir_names(path: &Path) -> std::io::Result<Vec<std::ffi::OsString>> {
    match std::fs::read_dir(path) {
        Ok(rd) => rd.map(|e| e.map(|e| e.file_name())).collect(),
        Err(e) if too_long(&e) => long::dir_names(path),
        Err(e) => Err(e),
    }
}

/// Paths longer than `PATH_MAX` (4096 bytes on Linux): the kernel refuses them whole (`ENAMETOOLONG`), but
/// every component is at most `NAME_MAX`, so they are opened one directory at a time, each relative to the
/// descriptor of its parent (`openat`). Symbolic links met on the way are followed, as path resolution
/// would; at most one descriptor per level is open at a time.
mod long {
    use std::ffi::{OsStr, OsString};
    use std::os::fd::OwnedFd;
    use std::os::unix::ffi::OsStrExt;
    use std::path::{Component, Path};

    use rustix::fs::{Mode, OFlags, CWD};

    fn dir_flags() -> OFlags {
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC
    }

    /// The directory `path`, opened component by component.
    fn open_dir(path: &Path) -> std::io::Result<OwnedFd> {
        let mut fd: Option<OwnedFd> = None;
        for c in path.components() {
            let name: &OsStr = match c {
                Component::RootDir => {
                    fd = Some(rustix::fs::open("/", dir_flags(), Mode::empty())?);
                    continue;
                }
                Component::CurDir => continue,
                Component::ParentDir => OsStr::new(".."),
                Component::Normal(n) => n,
                Component::Prefix(_) => {
                    return Err(std::io::Error::from(std::io::ErrorKind::InvalidInput))
                }
            };
            let next = match &fd {
                Some(d) => rustix::fs::openat(d, name, dir_flags(), Mode::empty())?,
                None => rustix::fs::openat(CWD, name, dir_flags(), Mode::empty())?,
            };
            fd = Some(next);
        }
        match fd {
            Some(fd) => Ok(fd),
            None => Ok(rustix::fs::open(".", dir_flags(), Mode::empty())?),
        }
    }

    /// The parent directory of `path`, opened by [`open_dir`], and the last component's name.
    fn parent(path: &Path) -> std::io::Result<(OwnedFd, &OsStr)> {
        let name = path
            .file_name()
            .ok_or_else(|| std::io::Error::from(rustix::io::Errno::NAMETOOLONG))?;
        let dir = open_dir(path.parent().unwrap_or(Path::new(".")))?;
        Ok((dir, name))
    }

    /// `path` opened with `flags` (plus `O_CLOEXEC`) relative to its parent's descriptor.
    pub fn open(path: &Path, flags: OFlags) -> std::io::Result<OwnedFd> {
        let (dir, name) = parent(path)?;
        Ok(rustix::fs::openat(
            &dir,
            name,
            flags | OFlags::CLOEXEC,
            Mode::empty(),
        )?)
    }

    /// Metadata through an `O_PATH` descriptor (which opens nothing: a FIFO does not block), of the link
    /// itself unless `follow`.
    pub fn metadata(path: &Path, follow: bool) -> std::io::Result<std::fs::Metadata> {
        let mut flags = OFlags::PATH;
        if !follow {
            flags |= OFlags::NOFOLLOW;
        }
        std::fs::File::from(open(path, flags)?).metadata()
    }

    pub fn dir_names(path: &Path) -> std::io::Result<Vec<OsString>> {
        let fd = open_dir(path)?;
        let mut out = Vec::new();
        for e in rustix::fs::Dir::read_from(&fd)? {
            let e = e?;
            let n = e.file_name().to_bytes();
            if n != b"." && n != b".." {
                out.push(OsStr::from_bytes(n).to_os_string());
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_and_missing_are_errors_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let e = read_image(dir.path(), &ReadOptions::default()).unwrap_err();
        assert!(matches!(e, Error::IsDirectory { .. }), "{e}");
        let missing = dir.path().join("nope.bin");
        let e = read_image(&missing, &ReadOptions::default()).unwrap_err();
        assert!(e.to_string().contains("nope.bin"), "{e}");
    }

    #[test]
    fn large_files_are_read_in_parallel_chunks_exactly() {
        let len = (PARALLEL_READ_MIN as usize) + 3 * PARALLEL_READ_CHUNK + 12345;
        let d = read_back_exactly(len);
        // Into a mapping the next image of the thread may reuse.
        assert!(matches!(*d, Data::Read { .. }));
        let at = d.as_ptr();
        recycle(d);
        let again = read_back_exactly(len - 1);
        assert_eq!(again.as_ptr(), at);
    }

    #[test]
    fn files_read_into_huge_pages_are_their_bytes_exactly() {
        // Not a whole number of huge pages: the mapping is longer than the file, the data is not.
        let d = read_back_exactly(ANON_READ_MIN as usize + HUGE_PAGE / 2 + 7);
        assert!(matches!(*d, Data::Read { .. }));
        read_back_exactly(ANON_READ_MIN as usize - 1);
    }

    fn read_back_exactly(len: usize) -> Arc<Data> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.bin");
        let bytes: Vec<u8> = (0..len)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        std::fs::write(&p, &bytes).unwrap();
        let d = read_image(&p, &ReadOptions::default()).unwrap();
        assert_eq!(d.len(), len);
        assert!(d[..] == bytes[..]);
        d
    }

    #[test]
    fn a_recycled_mapping_is_read_into_and_a_mapping_still_in_use_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, len: usize, byte: u8| {
            let p = dir.path().join(name);
            std::fs::write(&p, vec![byte; len]).unwrap();
            p
        };
        let big = file("a.bin", 3 << 20, 0xAA);
        let small = file("b.bin", (2 << 20) + 5, 0xBB);
        let read = |p: &Path| read_image(p, &ReadOptions::default()).unwrap();
        // Recycled: the next image of this thread is read into the same memory, and is its own bytes
        // exactly (shorter than the mapping and the earlier image).
        let a = read(&big);
        let at = a.as_ptr();
        recycle(a);
        let b = read(&small);
        assert_eq!(b.as_ptr(), at);
        assert_eq!(b.len(), (2 << 20) + 5);
        assert!(b.iter().all(|&x| x == 0xBB));
        // Still referred to elsewhere: not recycled, and that view keeps its bytes after the next read.
        let held = Arc::clone(&b);
        recycle(b);
        let c = read(&big);
        assert_ne!(c.as_ptr(), held.as_ptr());
        assert!(held.iter().all(|&x| x == 0xBB) && c.iter().all(|&x| x == 0xAA));
        // A spare smaller than the next image is not used.
        drop(held);
        let small_again = read(&small);
        recycle(small_again);
        let d = read(&file("c.bin", 5 << 20, 0xCC));
        assert_eq!(d.len(), 5 << 20);
        assert!(d.iter().all(|&x| x == 0xCC));
    }

    #[test]
    fn size_cap_is_checked_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.bin");
        std::fs::write(&p, vec![0u8; 4096]).unwrap();
        let opts = ReadOptions {
            max_size: 100,
            allow_mmap: true,
        };
        assert!(matches!(
            read_image(&p, &opts),
            Err(Error::TooLarge { size: 4096, .. })
        ));
        let (d, mode) = read_image_with_mode(&p, &ReadOptions::default()).unwrap();
        assert_eq!(d.len(), 4096);
        // /tmp is a writable mount: never mapped.
        assert_eq!(mode, ReadMode::Buffered);
    }
}
