//! A content-addressed cache of decompressed sections for fleet audits (issue 20, point 2).
//!
//! A fleet holds the same compressed volume in many dumps. When such a volume differs from the baseline,
//! every dump pays for its decompression (LZMA is most of a lazy scan's cost). The cache maps
//! `SHA-256(decoder ‖ 0 ‖ compressed bytes)` to the decoder's output and what the decoding cost the image's
//! budget, so a second dump with the same compressed bytes gets the same output without decoding.
//!
//! Two layers:
//! - **in memory**, for one run: bounded by [`MEM_MAX_BYTES`], least recently used out first;
//! - **on disk** (`audit --cache DIR`), across runs and Slurm shards on a shared file system, bounded by
//!   `--cache-max-bytes` (least recently used out first, by modification time, which a hit refreshes).
//!
//! What is believed: an entry is used only when it is intact and authentic. Each entry file holds its key,
//! the budget its decoding cost, the output length, and a keyed BLAKE2b-256 MAC over all of it under the
//! cache's secret (`DIR/secret`, 32 random bytes made on first use, readable by its owner only; a secret
//! that the group or others can read or write is refused, as ssh refuses such a private key). A torn,
//! truncated, flipped or foreign entry fails the MAC and is ignored, decoded again and rewritten. Nothing
//! else about an entry is trusted: its key must equal the digest of the compressed bytes in hand, its
//! length must fit the decompression limits of the image being parsed, and the output still pays the
//! image's budget as the decoder would have.
//!
//! Writers never leave a partial entry under its name: an entry is written to a temporary file in the
//! same directory and renamed into place, so concurrent writers (shards) and a killed run are safe; stale
//! temporary files are removed when the cache is opened.

use std::collections::HashMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use blake2::digest::consts::U32;
use blake2::digest::{KeyInit, Mac};
use sha2::{Digest, Sha256};

/// Bytes of decoder output the in-memory layer keeps for one run.
pub const MEM_MAX_BYTES: u64 = 64 << 20;
/// Default on-disk bound (`--cache-max-bytes`).
pub const DEFAULT_DISK_MAX_BYTES: u64 = 1 << 30;
/// Entry file header: magic, key, cost, length, MAC.
const MAGIC: &[u8; 8] = b"FWSDC\x00\x00\x01";
const HEADER: usize = 8 + 32 + 8 + 8 + 32;
/// Most entry files considered when the cache directory is opened (a bound on a hostile directory).
const MAX_SCAN_ENTRIES: usize = 1_000_000;

type Blake2bMac256 = blake2::Blake2bMac<U32>;

/// The key of one decoding: the decoder's name and the compressed bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Key([u8; 32]);

impl Key {
    pub fn new(decoder: &str, compressed: &[u8]) -> Key {
        let mut h = Sha256::new();
        h.update(decoder.as_bytes());
        h.update([0u8]);
        h.update(compressed);
        Key(h.finalize().into())
    }

    fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// A cached decoding: the output and what decoding it cost the image's decompression budget (more than
/// the output when a decoder tried several variants).
#[derive(Clone, Debug)]
pub struct Entry {
    pub output: Arc<Vec<u8>>,
    pub cost: u64,
}

/// Counters of one run, reported by `audit --cache`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub memory_hits: u64,
    pub disk_hits: u64,
    pub misses: u64,
    pub written: u64,
    /// Entry files that failed their checks (torn, flipped, foreign) and were ignored.
    pub rejected: u64,
    pub evicted: u64,
}

/// Why a cache directory could not be used.
#[derive(Debug, thiserror::Error)]
#[error("decompression cache {path}: {detail}")]
pub struct CacheError {
    pub path: String,
    pub detail: String,
}

struct Mem {
    map: HashMap<Key, (Entry, u64)>,
    bytes: u64,
    tick: u64,
}

struct Disk {
    dir: PathBuf,
    secret: [u8; 32],
    max_bytes: u64,
    /// Bytes of entry files this process believes the directory holds.
    bytes: AtomicU64,
    evict: Mutex<()>,
}

/// The cache one audit run shares across its worker threads.
pub struct DecompressCache {
    mem: Mutex<Mem>,
    disk: Option<Disk>,
    memory_hits: AtomicU64,
    disk_hits: AtomicU64,
    misses: AtomicU64,
    written: AtomicU64,
    rejected: AtomicU64,
    evicted: AtomicU64,
}

impl std::fmt::Debug for DecompressCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecompressCache")
            .field("dir", &self.disk.as_ref().map(|d| &d.dir))
            .field("stats", &self.stats())
            .finish()
    }
}

impl Default for DecompressCache {
    fn default() -> Self {
        DecompressCache::memory()
    }
}

impl DecompressCache {
    /// An in-memory cache for one run.
    pub fn memory() -> DecompressCache {
        DecompressCache {
            mem: Mutex::new(Mem {
                map: HashMap::new(),
                bytes: 0,
                tick: 0,
            }),
            disk: None,
            memory_hits: AtomicU64::new(0),
            disk_hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            written: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
        }
    }

    /// An in-memory cache backed by the directory `dir` (created if missing), bounded by `max_bytes`.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<DecompressCache, CacheError> {
        let err = |detail: String| CacheError {
            path: dir.display().to_string(),
            detail,
        };
        fs::create_dir_all(dir).map_err(|e| err(format!("cannot create: {e}")))?;
        let secret = secret(dir).map_err(err)?;
        let bytes = sweep(dir);
        let mut c = DecompressCache::memory();
        c.disk = Some(Disk {
            dir: dir.to_path_buf(),
            secret,
            max_bytes,
            bytes: AtomicU64::new(bytes),
            evict: Mutex::new(()),
        });
        if let Some(d) = &c.disk {
            c.evict(d);
        }
        Ok(c)
    }

    pub fn stats(&self) -> Stats {
        Stats {
            memory_hits: self.memory_hits.load(Ordering::Relaxed),
            disk_hits: self.disk_hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            written: self.written.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            evicted: self.evicted.load(Ordering::Relaxed),
        }
    }

    /// The entry for `key` whose output is at most `max_len` bytes, from memory or disk. A miss is
    /// counted; the caller decodes and calls [`DecompressCache::put`].
    pub fn get(&self, key: &Key, max_len: u64) -> Option<Entry> {
        if let Some(e) = self.mem_get(key) {
            if e.output.len() as u64 <= max_len {
                self.memory_hits.fetch_add(1, Ordering::Relaxed);
                return Some(e);
            }
            self.misses.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let found = self
            .disk
            .as_ref()
            .and_then(|d| self.disk_get(d, key, max_len));
        match found {
            Some(e) => {
                self.disk_hits.fetch_add(1, Ordering::Relaxed);
                self.mem_put(*key, e.clone());
                Some(e)
            }
            None => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Records a successful decoding.
    pub fn put(&self, key: Key, output: Vec<u8>, cost: u64) -> Entry {
        let e = Entry {
            output: Arc::new(output),
            cost,
        };
        if let Some(d) = &self.disk {
            if self.disk_put(d, &key, &e).is_ok() {
                self.written.fetch_add(1, Ordering::Relaxed);
                self.evict(d);
            }
        }
        self.mem_put(key, e.clone());
        e
    }

    fn mem_get(&self, key: &Key) -> Option<Entry> {
        let mut m = self.mem.lock().unwrap_or_else(|p| p.into_inner());
        m.tick = m.tick.wrapping_add(1);
        let t = m.tick;
        m.map.get_mut(key).map(|(e, used)| {
            *used = t;
            e.clone()
        })
    }

    fn mem_put(&self, key: Key, e: Entry) {
        let len = e.output.len() as u64;
        if len > MEM_MAX_BYTES {
            return;
        }
        let mut m = self.mem.lock().unwrap_or_else(|p| p.into_inner());
        m.tick = m.tick.wrapping_add(1);
        let t = m.tick;
        if let Some((old, _)) = m.map.insert(key, (e, t)) {
            m.bytes = m.bytes.saturating_sub(old.output.len() as u64);
        }
        m.bytes = m.bytes.saturating_add(len);
        while m.bytes > MEM_MAX_BYTES {
            let Some(oldest) = m.map.iter().min_by_key(|(_, (_, u))| *u).map(|(k, _)| *k) else {
                break;
            };
            if let Some((old, _)) = m.map.remove(&oldest) {
                m.bytes = m.bytes.saturating_sub(old.output.len() as u64);
            }
        }
    }

    fn disk_get(&self, d: &Disk, key: &Key, max_len: u64) -> Option<Entry> {
        let path = entry_path(&d.dir, key);
        // Non-blocking, and only a regular file: a FIFO or device planted under an entry's name cannot
        // stall or feed the audit.
        let (mut f, md) = match crate::input::open_regular(&path) {
            Ok(f) => f,
            Err(crate::Error::NotRegularFile { .. }) => return self.reject(&path),
            Err(_) => return None,
        };
        let mut head = [0u8; HEADER];
        if f.read_exact(&mut head).is_err() {
            return self.reject(&path);
        }
        let (magic, rest) = head.split_at(8);
        let (k, rest) = rest.split_at(32);
        let (cost, rest) = rest.split_at(8);
        let (len, mac) = rest.split_at(8);
        let cost = u64::from_le_bytes(cost.try_into().ok()?);
        let len = u64::from_le_bytes(len.try_into().ok()?);
        if magic != MAGIC || k != key.0 {
            return self.reject(&path);
        }
        if len > max_len {
            // Intact or not, more than this image may decode: decode for real and let the decoder decide.
            return None;
        }
        let file_len = md.len();
        if Some(file_len) != (HEADER as u64).checked_add(len) {
            return self.reject(&path);
        }
        let mut out = Vec::new();
        if out.try_reserve_exact(usize::try_from(len).ok()?).is_err() {
            return None;
        }
        if (&mut f).take(len).read_to_end(&mut out).is_err() || out.len() as u64 != len {
            return self.reject(&path);
        }
        // Constant-time comparison.
        if keyed(&d.secret, &head[..HEADER - 32], &out)?
            .verify_slice(mac)
            .is_err()
        {
            return self.reject(&path);
        }
        // A hit is a use: least recently used entries go first when the cache is full.
        let _ = f.set_modified(SystemTime::now());
        Some(Entry {
            output: Arc::new(out),
            cost,
        })
    }

    fn reject(&self, path: &Path) -> Option<Entry> {
        self.rejected.fetch_add(1, Ordering::Relaxed);
        // Removed so that the decoding rewrites it (the sweep on the next open recounts the bytes).
        let _ = fs::remove_file(path);
        None
    }

    fn disk_put(&self, d: &Disk, key: &Key, e: &Entry) -> std::io::Result<()> {
        let path = entry_path(&d.dir, key);
        let parent = path.parent().unwrap_or(&d.dir);
        fs::create_dir_all(parent)?;
        let mut head = Vec::with_capacity(HEADER);
        head.extend_from_slice(MAGIC);
        head.extend_from_slice(&key.0);
        head.extend_from_slice(&e.cost.to_le_bytes());
        head.extend_from_slice(&(e.output.len() as u64).to_le_bytes());
        let mac = mac_of(&d.secret, &head, &e.output)
            .ok_or_else(|| std::io::Error::other("BLAKE2b refused the key"))?;
        head.extend_from_slice(&mac);
        let mut nonce = [0u8; 8];
        getrandom::getrandom(&mut nonce).map_err(std::io::Error::other)?;
        let tmp = parent.join(format!(
            ".tmp-{}-{}",
            std::process::id(),
            hex::encode(nonce)
        ));
        let res = (|| {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&head)?;
            f.write_all(&e.output)?;
            f.sync_data()?;
            fs::rename(&tmp, &path)
        })();
        if res.is_err() {
            let _ = fs::remove_file(&tmp);
        } else {
            d.bytes.fetch_add(
                (HEADER as u64).saturating_add(e.output.len() as u64),
                Ordering::Relaxed,
            );
        }
        res
    }

    /// Removes least recently used entries until the directory holds at most 90% of its bound.
    fn evict(&self, d: &Disk) {
        if d.bytes.load(Ordering::Relaxed) <= d.max_bytes {
            return;
        }
        let _g = d.evict.lock().unwrap_or_else(|p| p.into_inner());
        let mut files = entries(&d.dir);
        let mut total: u64 = files.iter().map(|f| f.1).sum();
        files.sort_by_key(|f| f.2);
        let target = (d.max_bytes / 10).saturating_mul(9);
        for (p, len, _) in files {
            if total <= target {
                break;
            }
            if fs::remove_file(&p).is_ok() {
                total = total.saturating_sub(len);
                self.evicted.fetch_add(1, Ordering::Relaxed);
            }
        }
        d.bytes.store(total, Ordering::Relaxed);
    }
}

/// The keyed BLAKE2b-256 state over an entry's header and output (BLAKE2b takes keys of up to 64 bytes,
/// so a 32-byte secret is always accepted).
fn keyed(secret: &[u8; 32], head: &[u8], out: &[u8]) -> Option<Blake2bMac256> {
    let mut m = <Blake2bMac256 as KeyInit>::new_from_slice(secret).ok()?;
    m.update(head);
    m.update(out);
    Some(m)
}

fn mac_of(secret: &[u8; 32], head: &[u8], out: &[u8]) -> Option<[u8; 32]> {
    Some(keyed(secret, head, out)?.finalize().into_bytes().into())
}

fn entry_path(dir: &Path, key: &Key) -> PathBuf {
    let h = key.hex();
    dir.join("v1").join(&h[..2]).join(h)
}

/// The cache's secret: read, or made on first use (readable and writable by its owner only).
fn secret(dir: &Path) -> Result<[u8; 32], String> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
    let p = dir.join("secret");
    let mut s = [0u8; 32];
    match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&p)
    {
        Ok(mut f) => {
            getrandom::getrandom(&mut s).map_err(|e| format!("no randomness: {e}"))?;
            f.write_all(&s)
                .and_then(|_| f.sync_all())
                .map_err(|e| format!("writing {}: {e}", p.display()))?;
            return Ok(s);
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("creating {}: {e}", p.display())),
    }
    let md = fs::symlink_metadata(&p).map_err(|e| format!("{}: {e}", p.display()))?;
    if !md.file_type().is_file() {
        return Err(format!("{} is not a regular file", p.display()));
    }
    if md.permissions().mode() & 0o077 != 0 {
        return Err(format!(
            "{} is accessible by group or others (mode {:o}); whoever can read it can forge entries: chmod 600 it",
            p.display(),
            md.permissions().mode() & 0o777
        ));
    }
    if md.uid() != rustix::process::geteuid().as_raw() {
        return Err(format!("{} is owned by another user", p.display()));
    }
    let b = fs::read(&p).map_err(|e| format!("reading {}: {e}", p.display()))?;
    if b.len() != 32 {
        return Err(format!(
            "{} holds {} bytes, not a 32-byte secret",
            p.display(),
            b.len()
        ));
    }
    s.copy_from_slice(&b);
    Ok(s)
}

/// Entry files under `dir/v1`: path, length, modification time (bounded by [`MAX_SCAN_ENTRIES`]).
fn entries(dir: &Path) -> Vec<(PathBuf, u64, SystemTime)> {
    let mut out = Vec::new();
    let Ok(subs) = fs::read_dir(dir.join("v1")) else {
        return out;
    };
    for sub in subs.flatten() {
        let Ok(files) = fs::read_dir(sub.path()) else {
            continue;
        };
        for f in files.flatten() {
            if out.len() >= MAX_SCAN_ENTRIES {
                return out;
            }
            let Ok(md) = f.metadata() else { continue };
            if !md.is_file() || f.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let t = md.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            out.push((f.path(), md.len(), t));
        }
    }
    out
}

/// Removes temporary files older than an hour (left by killed writers) and returns the entries' total size.
fn sweep(dir: &Path) -> u64 {
    let hour = std::time::Duration::from_secs(3600);
    if let Ok(subs) = fs::read_dir(dir.join("v1")) {
        for sub in subs.flatten() {
            let Ok(files) = fs::read_dir(sub.path()) else {
                continue;
            };
            for f in files.flatten() {
                if !f.file_name().to_string_lossy().starts_with(".tmp-") {
                    continue;
                }
                let old = f
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > hour);
                if old {
                    let _ = fs::remove_file(f.path());
                }
            }
        }
    }
    entries(dir).iter().map(|e| e.1).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    #[test]
    fn an_entry_survives_a_reopen_and_a_flipped_byte_is_rejected() {
        let d = tmp();
        let k = Key::new("lzma", b"compressed");
        {
            let c = DecompressCache::open(d.path(), 1 << 20).unwrap();
            assert!(c.get(&k, 100).is_none());
            c.put(k, b"output bytes".to_vec(), 17);
        }
        let c = DecompressCache::open(d.path(), 1 << 20).unwrap();
        let e = c.get(&k, 100).unwrap();
        assert_eq!(&e.output[..], b"output bytes");
        assert_eq!(e.cost, 17);
        assert_eq!(c.stats().disk_hits, 1);
        // Too long for this image's limit: not served (the decoder decides).
        let c = DecompressCache::open(d.path(), 1 << 20).unwrap();
        assert!(c.get(&k, 5).is_none());
        // One flipped output byte: the MAC fails, the entry is ignored and removed.
        let p = entry_path(d.path(), &k);
        let mut b = fs::read(&p).unwrap();
        let last = b.len() - 1;
        b[last] ^= 1;
        fs::write(&p, &b).unwrap();
        let c = DecompressCache::open(d.path(), 1 << 20).unwrap();
        assert!(c.get(&k, 100).is_none());
        assert_eq!(c.stats().rejected, 1);
        assert!(!p.exists());
    }

    #[test]
    fn truncated_and_foreign_entries_are_rejected() {
        let d = tmp();
        let k = Key::new("lzma", b"a");
        let c = DecompressCache::open(d.path(), 1 << 20).unwrap();
        c.put(k, vec![7u8; 1000], 1000);
        let p = entry_path(d.path(), &k);
        let full = fs::read(&p).unwrap();
        for cut in [0, 10, HEADER, full.len() - 1] {
            fs::write(&p, &full[..cut]).unwrap();
            let c = DecompressCache::open(d.path(), 1 << 20).unwrap();
            assert!(c.get(&k, 1 << 20).is_none(), "cut at {cut}");
        }
        // An entry made under another cache's secret: not believed.
        let other = tmp();
        let c2 = DecompressCache::open(other.path(), 1 << 20).unwrap();
        c2.put(k, vec![9u8; 10], 10);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::copy(entry_path(other.path(), &k), &p).unwrap();
        let c = DecompressCache::open(d.path(), 1 << 20).unwrap();
        assert!(c.get(&k, 1 << 20).is_none());
        assert_eq!(c.stats().rejected, 1);
    }

    #[test]
    fn a_fifo_under_an_entry_name_is_rejected_without_blocking() {
        let d = tmp();
        let k = Key::new("lzma", b"fifo");
        let c = DecompressCache::open(d.path(), 1 << 20).unwrap();
        let p = entry_path(d.path(), &k);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &p,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        assert!(c.get(&k, 1 << 20).is_none());
        assert_eq!(c.stats().rejected, 1);
    }

    #[test]
    fn a_secret_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let d = tmp();
        DecompressCache::open(d.path(), 1 << 20).unwrap();
        let s = d.path().join("secret");
        fs::set_permissions(&s, fs::Permissions::from_mode(0o644)).unwrap();
        let e = DecompressCache::open(d.path(), 1 << 20).unwrap_err();
        assert!(e.detail.contains("group or others"), "{e}");
    }

    #[test]
    fn the_disk_layer_stays_within_its_bound_least_recently_used_first() {
        let d = tmp();
        let c = DecompressCache::open(d.path(), 10_000).unwrap();
        let keys: Vec<Key> = (0..20u8).map(|i| Key::new("gzip", &[i])).collect();
        for k in &keys {
            c.put(*k, vec![0u8; 1000], 1000);
        }
        let total: u64 = entries(d.path()).iter().map(|e| e.1).sum();
        assert!(total <= 10_000, "{total}");
        assert!(c.stats().evicted > 0);
        // The newest entry is still there.
        let fresh = DecompressCache::open(d.path(), 10_000).unwrap();
        assert!(fresh.get(keys.last().unwrap(), 1 << 20).is_some());
        assert!(fresh.get(&keys[0], 1 << 20).is_none());
    }

    #[test]
    fn stale_temporary_files_are_swept_and_never_read() {
        let d = tmp();
        let k = Key::new("lzma", b"x");
        let c = DecompressCache::open(d.path(), 1 << 20).unwrap();
        c.put(k, vec![1u8; 10], 10);
        let dir = entry_path(d.path(), &k).parent().unwrap().to_path_buf();
        let t = dir.join(".tmp-1-00");
        fs::write(&t, b"torn").unwrap();
        let old = SystemTime::now() - std::time::Duration::from_secs(7200);
        fs::File::options()
            .write(true)
            .open(&t)
            .unwrap()
            .set_modified(old)
            .unwrap();
        DecompressCache::open(d.path(), 1 << 20).unwrap();
        assert!(!t.exists());
    }
}
