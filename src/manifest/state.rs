//! Anti-rollback state: the highest manifest sequence accepted so far, per product and component, and
//! (for CoRIMs under a policy `anti_rollback` of `svn` or `both`) the highest svn per reference value.
//!
//! ```json
//! { "schema_version": 1,
//!   "entries": [ { "product": "X11SPi", "component": "bios", "sequence": 7,
//!                  "sha256": "…", "accepted": "2026-11-21T03:00:00Z" } ],
//!   "svns": [ { "product": "X11SPi", "component": "bios", "mkey": "ifd/me/fpt/FTPR",
//!               "svn": 3, "sha256": "…", "accepted": "2026-11-21T03:00:00Z" } ] }
//! ```
//!
//! The file is only written after a successful verification, and atomically: a temporary file in the
//! same directory is written, synced and renamed over the old one, so a crash leaves either the old or
//! the new state, never a torn one. A missing file is an empty state; a corrupt one is an error (never
//! silently reset, which would re-open rollback).

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// State files larger than this are refused.
pub const MAX_STATE_SIZE: u64 = 4 << 20;
const STATE_SCHEMA_VERSION: u32 = 1;

/// One product/component entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub product: String,
    pub component: String,
    pub sequence: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted: Option<String>,
}

/// The highest svn accepted for one reference value of a CoRIM (policy `anti_rollback` `svn`/`both`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SvnEntry {
    pub product: String,
    pub component: String,
    /// The reference value's key: a node path, `uuid:` and a UUID, `uint:N` or `oid:HEX`.
    pub mkey: String,
    pub svn: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted: Option<String>,
}

/// The whole state file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    pub schema_version: u32,
    #[serde(default)]
    pub entries: Vec<Entry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub svns: Vec<SvnEntry>,
}

impl Default for State {
    fn default() -> Self {
        State {
            schema_version: STATE_SCHEMA_VERSION,
            entries: Vec::new(),
            svns: Vec::new(),
        }
    }
}

/// Why the anti-rollback state could not be read, written or locked (code `trust-state-invalid`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    // I/O and JSON errors are part of the message (not a `source`), as in [`crate::Error`].
    #[error("{0}")]
    Stat(std::io::Error),
    #[error("{0}")]
    Read(crate::Error),
    #[error("state is larger than {MAX_STATE_SIZE} bytes")]
    TooLarge,
    #[error("corrupt state: {0}")]
    Corrupt(serde_json::Error),
    #[error("state schema_version {0} is not supported")]
    Schema(u32),
    #[error("{0}")]
    Serialize(serde_json::Error),
    #[error("{0}")]
    Write(std::io::Error),
    #[error("cannot open lock file {}: {error}", path.display())]
    LockOpen {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("cannot lock {}: {error}", path.display())]
    Lock {
        path: PathBuf,
        error: std::io::Error,
    },
}

impl State {
    /// Reads the state; a missing file is an empty state.
    pub fn load(path: &Path) -> Result<State, StateError> {
        match std::fs::symlink_metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(State::default()),
            Err(e) => return Err(StateError::Stat(e)),
            Ok(_) => {}
        }
        let bytes = crate::input::read_capped(path, MAX_STATE_SIZE).map_err(StateError::Read)?;
        State::parse(&bytes)
    }

    /// Parses state bytes.
    pub fn parse(bytes: &[u8]) -> Result<State, StateError> {
        if bytes.len() as u64 > MAX_STATE_SIZE {
            return Err(StateError::TooLarge);
        }
        let s: State = serde_json::from_slice(bytes).map_err(StateError::Corrupt)?;
        if s.schema_version != STATE_SCHEMA_VERSION {
            return Err(StateError::Schema(s.schema_version));
        }
        Ok(s)
    }

    /// Highest sequence accepted for a product/component.
    pub fn highest(&self, product: &str, component: &str) -> Option<u64> {
        self.entries
            .iter()
            .filter(|e| e.product == product && e.component == component)
            .map(|e| e.sequence)
            .max()
    }

    /// Records an accepted sequence (keeps the maximum). Returns true when the state changed.
    pub fn record(
        &mut self,
        product: &str,
        component: &str,
        sequence: u64,
        sha256: &str,
        now: &str,
    ) -> bool {
        if let Some(e) = self
            .entries
            .iter_mut()
            .find(|e| e.product == product && e.component == component)
        {
            if sequence > e.sequence {
                e.sequence = sequence;
                e.sha256 = Some(sha256.to_string());
                e.accepted = Some(now.to_string());
                return true;
            }
            return false;
        }
        self.entries.push(Entry {
            product: product.to_string(),
            component: component.to_string(),
            sequence,
            sha256: Some(sha256.to_string()),
            accepted: Some(now.to_string()),
        });
        true
    }

    /// Highest svn accepted for one reference value of a product/component.
    pub fn highest_svn(&self, product: &str, component: &str, mkey: &str) -> Option<u64> {
        self.svns
            .iter()
            .filter(|e| e.product == product && e.component == component && e.mkey == mkey)
            .map(|e| e.svn)
            .max()
    }

    /// Records an accepted svn (keeps the maximum). Returns true when the state changed.
    pub fn record_svn(
        &mut self,
        product: &str,
        component: &str,
        mkey: &str,
        svn: u64,
        sha256: &str,
        now: &str,
    ) -> bool {
        if let Some(e) = self
            .svns
            .iter_mut()
            .find(|e| e.product == product && e.component == component && e.mkey == mkey)
        {
            if svn > e.svn {
                e.svn = svn;
                e.sha256 = Some(sha256.to_string());
                e.accepted = Some(now.to_string());
                return true;
            }
            return false;
        }
        self.svns.push(SvnEntry {
            product: product.to_string(),
            component: component.to_string(),
            mkey: mkey.to_string(),
            svn,
            sha256: Some(sha256.to_string()),
            accepted: Some(now.to_string()),
        });
        true
    }

    /// Writes the state atomically (temporary file in the same directory, fsync, rename, fsync dir).
    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        let mut text = serde_json::to_string_pretty(self).map_err(StateError::Serialize)?;
        text.push('\n');
        write_atomic(path, text.as_bytes()).map_err(StateError::Write)
    }
}

/// An exclusive lock on `STATE.lock` next to the state file, held from reading the state to writing
/// it, so that two concurrent runs cannot lower the recorded sequence. Released when dropped.
#[derive(Debug)]
pub struct StateLock {
    _file: std::fs::File,
}

impl StateLock {
    pub fn acquire(state_path: &Path) -> Result<StateLock, StateError> {
        let mut p = state_path.as_os_str().to_os_string();
        p.push(".lock");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(PathBuf::from(&p))
            .map_err(|error| StateError::LockOpen {
                path: PathBuf::from(&p),
                error,
            })?;
        #[cfg(unix)]
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive).map_err(|e| {
            StateError::Lock {
                path: PathBuf::from(&p),
                error: e.into(),
            }
        })?;
        Ok(StateLock { _file: file })
    }
}

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "state".into());
    let mut rnd = [0u8; 8];
    let _ = super::minisign::random_bytes(&mut rnd);
    let tmp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        hex::encode(rnd)
    ));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_is_empty_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.json");
        let mut s = State::load(&p).unwrap();
        assert_eq!(s.highest("X", "bios"), None);
        assert!(s.record("X", "bios", 5, "aa", "t"));
        assert!(!s.record("X", "bios", 3, "bb", "t"));
        s.save(&p).unwrap();
        let back = State::load(&p).unwrap();
        assert_eq!(back.highest("X", "bios"), Some(5));
        assert_eq!(back.highest("X", "bmc"), None);
        // No temporary files left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let mut s = back;
        assert!(s.record_svn("X", "bios", "fv[0]/file[me]", 3, "aa", "t"));
        assert!(!s.record_svn("X", "bios", "fv[0]/file[me]", 2, "bb", "t"));
        assert!(s.record_svn("X", "bios", "fv[0]/file[me]", 4, "cc", "t"));
        s.save(&p).unwrap();
        let back = State::load(&p).unwrap();
        assert_eq!(back.highest_svn("X", "bios", "fv[0]/file[me]"), Some(4));
        assert_eq!(back.highest_svn("X", "bmc", "fv[0]/file[me]"), None);
        assert_eq!(back.highest("X", "bios"), Some(5));
        std::fs::write(&p, b"{not json").unwrap();
        assert!(State::load(&p).is_err());
    }
}
