//! The hashing engine: SHA-256 (default) or SHA-384, whole-region and per block, in parallel with rayon.
//!
//! `sha2` picks the x86 SHA extensions (SHA-NI) at run time through `cpufeatures` when the CPU has them;
//! `benches/hash.sh` shows the throughput against `openssl dgst -sha256`, and `sha256rnds2` instructions can
//! be seen in the release binary (`objdump -d target/release/fwscan | grep -c sha256rnds2`).

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::region::{Policy, Region};

pub mod known;
pub use known::{KnownBytes, KnownKey};

/// Default block size for localising changes inside large regions.
pub const DEFAULT_BLOCK_SIZE: u64 = 64 * 1024;

/// Digest algorithm of a manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Alg {
    #[default]
    Sha256,
    Sha384,
}

impl Alg {
    /// Length of the hex form.
    pub fn hex_len(self) -> usize {
        match self {
            Alg::Sha256 => 64,
            Alg::Sha384 => 96,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Alg::Sha256 => "sha256",
            Alg::Sha384 => "sha384",
        }
    }
}

/// Lowercase hex digest of `bytes`.
pub fn digest(alg: Alg, bytes: &[u8]) -> String {
    match alg {
        Alg::Sha256 => hex::encode(sha2::Sha256::digest(bytes)),
        Alg::Sha384 => hex::encode(sha2::Sha384::digest(bytes)),
    }
}

/// `a` on a thread of its own while `b` runs on the calling thread: the manifest's own SHA-256 beside its
/// parse or signature check. Not on rayon's pool: called from outside the pool, `rayon::join` runs both
/// closures on pool threads, so the calling thread waits, the pool is started on the critical path, and a
/// large parse grows a fresh malloc arena on a worker (measured on a 1.2 MB manifest: 3.1-4.9 ms against
/// 2.3-2.5 ms for the parse alone on the main thread). Runs both here, one after the other, when no thread
/// can be started.
pub fn beside<A, B>(a: impl FnOnce() -> A + Send, b: impl FnOnce() -> B) -> (A, B)
where
    A: Send,
{
    // The closure stays reachable from here: if no thread can be started, it runs on this one.
    let a = std::sync::Mutex::new(Some(a));
    let take = || a.lock().ok().and_then(|mut g| g.take());
    std::thread::scope(|s| {
        let spawned = std::thread::Builder::new()
            .name("fwscan-beside".into())
            .spawn_scoped(s, || take().map(|f| f()));
        let rb = b();
        let ra = match spawned {
            Ok(h) => match h.join() {
                Ok(ra) => ra,
                Err(panic) => std::panic::resume_unwind(panic),
            },
            Err(_) => None,
        };
        let ra = ra.or_else(|| take().map(|f| f()));
        (ra.expect("`a` ran on one of the two threads"), rb)
    })
}

/// The digest of `r`'s bytes, hashed at most once per node and algorithm: the first computation is kept on
/// the node ([`crate::region::DigestMemo`]) for selection, comparison and findings alike.
pub fn region_digest(alg: Alg, r: &Region) -> String {
    region_digest_counted(alg, r).0
}

/// [`region_digest`], and how many bytes were hashed for it (0 when the node already had it).
pub fn region_digest_counted(alg: Alg, r: &Region) -> (String, u64) {
    let (d, computed) = r.digest_once(alg as u8, || digest(alg, r.bytes()));
    (d, if computed { r.bytes().len() as u64 } else { 0 })
}

/// Whether `r`'s bytes have the digest `d` (lowercase hex): the digest the node remembers, else equal bytes
/// the run verified before (`known`), else the node hashed once ([`region_digest`]); bytes found to have
/// `d` by hashing are offered to `known`.
pub fn region_has_digest(alg: Alg, r: &Region, d: &str, known: Option<&KnownBytes>) -> bool {
    if let Some(m) = remembered(alg, r) {
        return m == d;
    }
    let key = known.map(|k| (k, KnownKey::Digest(alg, d.to_string())));
    if let Some((k, key)) = &key {
        if k.same(key, r.bytes()) == Some(true) {
            r.remember_digest(alg as u8, d.to_string());
            return true;
        }
    }
    let same = region_digest(alg, r) == d;
    if let (true, Some((k, key))) = (same, key) {
        k.offer(key, r.bytes());
    }
    same
}

/// Gives `r` the digest `d` computed elsewhere over `bytes` (the whole file's SHA-256 of an audit), only when
/// `bytes` are exactly `r`'s bytes (the same memory, not merely equal contents).
pub fn remember_for(alg: Alg, r: &Region, bytes: &[u8], d: &str) {
    let own = r.bytes();
    if std::ptr::eq(own.as_ptr(), bytes.as_ptr()) && own.len() == bytes.len() {
        r.remember_digest(alg as u8, d.to_string());
    }
}

/// The digest of `r`'s bytes if it was computed already ([`region_digest`]).
pub fn remembered(alg: Alg, r: &Region) -> Option<&str> {
    r.remembered_digest(alg as u8)
}

/// SHA-256 of `bytes` as raw bytes (used for Authenticode, signatures and matching).
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(bytes).into()
}

/// Digests of consecutive `block`-sized pieces of `bytes` (the last may be shorter), in parallel.
pub fn block_digests(alg: Alg, bytes: &[u8], block: u64) -> Vec<String> {
    let block = usize::try_from(block.max(1)).unwrap_or(usize::MAX);
    bytes.par_chunks(block).map(|c| digest(alg, c)).collect()
}

/// Digests computed for a tree node (baseline, inspect).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeDigests {
    pub digest: String,
    /// Per-block digests, for static regions larger than one block.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocks: Vec<String>,
}

/// Computes digests for every node of a tree, in parallel across nodes (and across blocks within large
/// nodes). The result mirrors the tree: `result.children[i]` belongs to `node.children[i]`.
#[derive(Debug, Clone, Default)]
pub struct HashedNode {
    pub digests: NodeDigests,
    pub children: Vec<HashedNode>,
}

/// Hashes `node` and its whole subtree. Blocks are stored for static nodes larger than one block.
pub fn hash_tree(node: &Region, alg: Alg, block: u64) -> HashedNode {
    let (digests, children) = rayon::join(
        || {
            let bytes = node.bytes();
            let blocks = if node.policy == Policy::Static && node.size > block {
                block_digests(alg, bytes, block)
            } else {
                Vec::new()
            };
            NodeDigests {
                digest: digest(alg, bytes),
                blocks,
            }
        },
        || {
            node.children
                .par_iter()
                .map(|c| hash_tree(c, alg, block))
                .collect()
        },
    );
    HashedNode { digests, children }
}

/// Checks `bytes` against stored per-block digests in parallel. Returns the byte ranges (offset, length)
/// of the blocks that differ, relative to `bytes`; blocks past the end of either side count as differing.
pub fn changed_blocks(alg: Alg, bytes: &[u8], block: u64, expected: &[String]) -> Vec<(u64, u64)> {
    let block_us = usize::try_from(block.max(1)).unwrap_or(usize::MAX);
    let actual_n = bytes.len().div_ceil(block_us);
    let n = actual_n.max(expected.len());
    let diffs: Vec<bool> = (0..n)
        .into_par_iter()
        .map(|i| {
            let start = i.saturating_mul(block_us);
            let chunk = bytes.get(start..bytes.len().min(start.saturating_add(block_us)));
            match (chunk, expected.get(i)) {
                (Some(c), Some(e)) if !c.is_empty() => digest(alg, c) != *e,
                _ => true,
            }
        })
        .collect();
    merge_ranges(diffs.iter().enumerate().filter(|(_, d)| **d).map(|(i, _)| {
        let start = (i as u64).saturating_mul(block);
        let len = (bytes.len() as u64).saturating_sub(start);
        // A block missing from the image is described by its expected extent.
        (start, if len == 0 { block } else { len.min(block) })
    }))
}

/// Merges adjacent or overlapping (offset, length) ranges given in ascending order.
pub fn merge_ranges(ranges: impl IntoIterator<Item = (u64, u64)>) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for (o, l) in ranges {
        if let Some(last) = out.last_mut() {
            if o <= last.0.saturating_add(last.1) {
                let end = (last.0.saturating_add(last.1)).max(o.saturating_add(l));
                last.1 = end - last.0;
                continue;
            }
        }
        out.push((o, l));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answer() {
        assert_eq!(
            digest(Alg::Sha256, b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(digest(Alg::Sha384, b"abc").len(), 96);
    }

    #[test]
    fn beside_runs_both_and_a_panic_beside_is_the_callers() {
        let here = std::thread::current().id();
        let (a, b) = beside(
            || (std::thread::current().id(), digest(Alg::Sha256, b"abc")),
            || std::thread::current().id(),
        );
        assert_eq!(b, here);
        assert_ne!(a.0, here);
        assert_eq!(a.1, digest(Alg::Sha256, b"abc"));
        let r = std::panic::catch_unwind(|| beside(|| panic!("beside"), || 1));
        assert!(r.is_err());
    }

    #[test]
    fn changed_blocks_localise_a_byte() {
        let mut data = vec![7u8; 10 * 1024];
        let blocks = block_digests(Alg::Sha256, &data, 1024);
        assert!(changed_blocks(Alg::Sha256, &data, 1024, &blocks).is_empty());
        data[5000] ^= 1;
        assert_eq!(
            changed_blocks(Alg::Sha256, &data, 1024, &blocks),
            vec![(4096, 1024)]
        );
        // Shorter data: the missing blocks differ.
        assert_eq!(
            changed_blocks(Alg::Sha256, &data[..8192], 1024, &blocks),
            vec![(4096, 1024), (8192, 2048)]
        );
    }

    #[test]
    fn a_node_reached_by_many_threads_at_once_is_hashed_once() {
        use crate::input::Data;
        use crate::region::RegionKind;
        use std::sync::Arc;
        // 16 MiB: long enough that every thread asks while the first is still hashing.
        let d = Arc::new(Data::Owned(vec![0x5A; 16 << 20]));
        let r = Region::new(RegionKind::Blob, "b", &d, 0, 16 << 20);
        let counted: Vec<(String, u64)> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|_| s.spawn(|| region_digest_counted(Alg::Sha256, &r)))
                .collect();
            hs.into_iter().map(|h| h.join().expect("thread")).collect()
        });
        let total: u64 = counted.iter().map(|(_, n)| n).sum();
        assert_eq!(total, 16 << 20, "hashed exactly once in all");
        let want = digest(Alg::Sha256, &d[..]);
        assert!(counted.iter().all(|(dg, _)| *dg == want));
        // Another algorithm on the same node is computed, not answered from the SHA-256 memo.
        let (d384, n) = region_digest_counted(Alg::Sha384, &r);
        assert_eq!((d384.len(), n), (96, 16 << 20));
    }
}
