//! Bytes a run has already verified, for deciding the next image's identical nodes by comparing bytes
//! instead of hashing them (issue 20).
//!
//! In a fleet audit most dumps carry the vendor's bytes in most nodes. Once one image's node was hashed
//! and found equal to a baseline digest, its bytes are *verified*: any later node whose bytes are equal
//! has that digest too (same bytes, same hash). Comparing bytes (`memcmp`, several GB/s) is several times
//! faster than SHA-256, so every image after the first costs a read and a compare where it cost a hash.
//!
//! The store is content-addressed, and an entry is only what its key proves:
//! - [`KnownKey::Digest`]: bytes whose whole digest was computed and equalled the key;
//! - [`KnownKey::Blocks`]: bytes whose per-block digests were computed and equalled the key's block list
//!   (a fingerprint of the list: the verdict it gives is exactly the one the block check gives).
//!
//! An entry is a copy in this process's memory, made after the check (never a view of an image's buffer,
//! which another image's reader cannot change, and never read from disk), so nothing outside the run can
//! alter a verified entry. A lookup that finds no entry, or an entry of another length, or unequal bytes,
//! decides nothing: the caller hashes as it would have. Memory is bounded by [`KnownBytes::new`]'s budget;
//! past it nothing more is stored. Small nodes are not stored (hashing them costs less than a lookup).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use super::Alg;

/// Nodes smaller than this are hashed, never looked up or stored.
pub const MIN_BYTES: usize = 4096;

/// Default budget of a run's store: a few golden images' worth of static bytes, well inside the audit's
/// memory target (256 MiB for any fleet size).
pub const DEFAULT_MAX_BYTES: u64 = 64 << 20;

/// What an entry's bytes were verified against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KnownKey {
    /// The whole digest (lowercase hex) under `Alg`.
    Digest(Alg, String),
    /// Per-block digests of `block`-byte blocks: the SHA-256 of the list (hex strings, newline-separated).
    Blocks(Alg, u64, [u8; 32]),
}

impl KnownKey {
    /// The key of a per-block digest list.
    pub fn blocks(alg: Alg, block: u64, list: &[String]) -> KnownKey {
        use sha2::Digest as _;
        let mut h = sha2::Sha256::new();
        for d in list {
            h.update(d.as_bytes());
            h.update(b"\n");
        }
        KnownKey::Blocks(alg, block, h.finalize().into())
    }
}

/// A run's verified bytes (see the module documentation).
#[derive(Debug)]
pub struct KnownBytes {
    max: u64,
    used: AtomicU64,
    map: RwLock<HashMap<KnownKey, Arc<[u8]>>>,
    /// Bytes decided by comparison rather than hashing.
    matched: AtomicU64,
}

impl Default for KnownBytes {
    fn default() -> Self {
        KnownBytes::new(DEFAULT_MAX_BYTES)
    }
}

impl KnownBytes {
    /// An empty store that keeps at most `max` bytes.
    pub fn new(max: u64) -> KnownBytes {
        KnownBytes {
            max,
            used: AtomicU64::new(0),
            map: RwLock::new(HashMap::new()),
            matched: AtomicU64::new(0),
        }
    }

    /// Whether `bytes` are the verified bytes stored under `key`: `Some(true)` decides (the bytes have
    /// the key's digests), anything else decides nothing (no entry: `None`; an entry that differs:
    /// `Some(false)`, which only says the bytes are not those, not what their digest is).
    pub fn same(&self, key: &KnownKey, bytes: &[u8]) -> Option<bool> {
        if bytes.len() < MIN_BYTES {
            return None;
        }
        let entry = self.map.read().ok()?.get(key).cloned()?;
        let same = entry[..] == *bytes;
        if same {
            self.matched
                .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        }
        Some(same)
    }

    /// Stores a copy of `bytes`, which the caller has just verified against `key`, if the budget allows
    /// and the key has no entry yet.
    pub fn offer(&self, key: KnownKey, bytes: &[u8]) {
        if bytes.len() < MIN_BYTES {
            return;
        }
        let len = bytes.len() as u64;
        if self.map.read().is_ok_and(|m| m.contains_key(&key)) {
            return;
        }
        // Reserve the bytes first, so that concurrent offers never exceed the budget together.
        let reserved = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                u.checked_add(len).filter(|&n| n <= self.max)
            })
            .is_ok();
        if !reserved {
            return;
        }
        let stored = match self.map.write() {
            Ok(mut m) if !m.contains_key(&key) => {
                m.insert(key, Arc::from(bytes));
                true
            }
            _ => false,
        };
        if !stored {
            self.used.fetch_sub(len, Ordering::Relaxed);
        }
    }

    /// Bytes stored.
    pub fn stored_bytes(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// Bytes decided by comparison with a stored entry rather than by hashing.
    pub fn matched_bytes(&self) -> u64 {
        self.matched.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(d: &[u8]) -> KnownKey {
        KnownKey::Digest(Alg::Sha256, super::super::digest(Alg::Sha256, d))
    }

    #[test]
    fn only_equal_bytes_of_a_stored_key_decide() {
        let k = KnownBytes::new(1 << 20);
        let a = vec![0xA5u8; 8192];
        assert_eq!(k.same(&key(&a), &a), None, "nothing stored yet");
        k.offer(key(&a), &a);
        assert_eq!(k.same(&key(&a), &a), Some(true));
        let mut b = a.clone();
        b[8191] ^= 1;
        assert_eq!(k.same(&key(&a), &b), Some(false), "one byte differs");
        assert_eq!(k.same(&key(&a), &a[..4096]), Some(false), "shorter");
        assert_eq!(k.same(&key(&b), &b), None, "another key");
        assert_eq!(k.matched_bytes(), 8192);
        // Too small to be worth a lookup.
        let s = vec![1u8; 100];
        k.offer(key(&s), &s);
        assert_eq!(k.same(&key(&s), &s), None);
    }

    #[test]
    fn the_budget_holds_under_concurrent_offers() {
        let k = KnownBytes::new(64 << 10);
        std::thread::scope(|s| {
            for t in 0..8u8 {
                let k = &k;
                s.spawn(move || {
                    for i in 0..16u8 {
                        let b = vec![t.wrapping_mul(31).wrapping_add(i); 8192];
                        k.offer(key(&b), &b);
                    }
                });
            }
        });
        assert!(k.stored_bytes() <= 64 << 10);
        assert_eq!(k.stored_bytes(), 64 << 10, "filled up to the budget");
        let n = k
            .map
            .read()
            .unwrap()
            .values()
            .map(|v| v.len() as u64)
            .sum::<u64>();
        assert_eq!(n, k.stored_bytes(), "the counter is the bytes held");
    }

    #[test]
    fn block_keys_differ_by_list_and_block_size() {
        let l = vec!["aa".to_string(), "bb".to_string()];
        let m = vec!["aa".to_string(), "bc".to_string()];
        assert_ne!(
            KnownKey::blocks(Alg::Sha256, 4096, &l),
            KnownKey::blocks(Alg::Sha256, 4096, &m)
        );
        assert_ne!(
            KnownKey::blocks(Alg::Sha256, 4096, &l),
            KnownKey::blocks(Alg::Sha256, 8192, &l)
        );
    }
}
