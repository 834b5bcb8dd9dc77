//! Directory walking for audits.
//!
//! Rules: only regular files are images. Symbolic links are not followed unless [`WalkOptions::follow`];
//! when they are, a directory already on the current path (a loop) or already visited is not entered
//! again. FIFOs, sockets and devices are skipped and counted and never opened (opening a FIFO blocks). A
//! file over the size cap is an error entry (it could not be decided). Directories are read in sorted
//! order, so a walk is deterministic; sharding does not depend on that order anyway.

use std::collections::HashSet;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::finding::Code;
use crate::region::glob_match;

/// A file name as text, reversibly (issue 15): valid UTF-8 stays as it is except that `\` becomes
/// `\\`; every byte that is not part of valid UTF-8 becomes `\xNN`. `img-\xff.bin` and `img-\xfe.bin`
/// stay two rows (a lossy conversion made both `img-�.bin`); [`unescape_name`] gives the bytes back.
pub fn escape_name(name: &std::ffi::OsStr) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut out = String::with_capacity(name.len());
    for chunk in name.as_bytes().utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\\' {
                out.push_str("\\\\");
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

/// The raw bytes of a name (or relative path) written by [`escape_name`]; text that is not such an
/// escape is taken as it is.
pub fn unescape_name(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0usize;
    while let Some(&c) = b.get(i) {
        if c == b'\\' {
            if b.get(i.saturating_add(1)) == Some(&b'\\') {
                out.push(b'\\');
                i = i.saturating_add(2);
                continue;
            }
            if b.get(i.saturating_add(1)) == Some(&b'x') {
                let hex = b.get(i.saturating_add(2)..i.saturating_add(4));
                if let Some(v) = hex
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    out.push(v);
                    i = i.saturating_add(4);
                    continue;
                }
            }
        }
        out.push(c);
        i = i.saturating_add(1);
    }
    out
}

/// What the walk yields.
#[derive(Debug, Clone)]
pub enum Entry {
    /// A regular file to scan, with the metadata seen when it was listed.
    File {
        root: usize,
        rel: String,
        path: PathBuf,
        meta: FileId,
    },
    /// Not an image: skipped and counted (`fifo`, `socket`, `device`, `symlink`, `symlink-loop`, ...).
    Skipped {
        root: usize,
        rel: String,
        path: PathBuf,
        reason: &'static str,
    },
    /// Could not be listed or is over the size cap: an error row.
    Error {
        root: usize,
        rel: String,
        path: PathBuf,
        code: Code,
        message: String,
    },
}

impl Entry {
    pub fn rel(&self) -> &str {
        match self {
            Entry::File { rel, .. } | Entry::Skipped { rel, .. } | Entry::Error { rel, .. } => rel,
        }
    }
}

/// Identity of a file when it was listed; a different identity when read means it was replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime: i64,
    pub mtime_nsec: i64,
}

impl FileId {
    pub fn of(m: &std::fs::Metadata) -> FileId {
        FileId {
            dev: m.dev(),
            ino: m.ino(),
            size: m.len(),
            mtime: m.mtime(),
            mtime_nsec: m.mtime_nsec(),
        }
    }
}

/// Options of [`walk`].
#[derive(Debug, Clone)]
pub struct WalkOptions {
    pub follow: bool,
    /// Largest file scanned, in bytes.
    pub max_size: u64,
    /// Globs a file must match (any); empty means all. A glob without `/` matches the file name, one with
    /// `/` the path relative to the root (`*` within a segment, `**` across).
    pub include: Vec<String>,
    /// Globs of files and directories to leave out.
    pub exclude: Vec<String>,
    /// Deepest directory nesting.
    pub max_depth: u32,
    /// Files (device, inode) never listed: the audit's own results file.
    pub skip_files: Vec<(u64, u64)>,
}

impl Default for WalkOptions {
    fn default() -> Self {
        WalkOptions {
            follow: false,
            max_size: crate::input::DEFAULT_MAX_IMAGE_SIZE,
            include: Vec::new(),
            exclude: Vec::new(),
            max_depth: 64,
            skip_files: Vec::new(),
        }
    }
}

/// Whether `glob` matches `rel` (see [`WalkOptions::include`]).
pub fn path_glob(glob: &str, rel: &str) -> bool {
    if glob.contains('/') {
        glob_match(glob, rel)
    } else {
        glob_match(glob, rel.rsplit('/').next().unwrap_or(rel))
    }
}

/// Whether `name` is the hardware-identity sidecar (`X.product`) of a sibling `X` in the sorted `names`:
/// it is read with its dump, not scanned as an image.
/// The boot event log sidecar (`X.eventlog`) and the PCR values sidecar (`X.pcrs`) are read with their
/// dump the same way. Returns the skip reason.
fn is_sidecar(name: &std::ffi::OsStr, names: &[std::ffi::OsString]) -> Option<&'static str> {
    use std::os::unix::ffi::OsStrExt;
    [
        (
            crate::audit::catalogue::PRODUCT_SIDECAR_SUFFIX,
            "product-sidecar",
        ),
        (crate::audit::EVENTLOG_SIDECAR_SUFFIX, "eventlog-sidecar"),
        (crate::audit::PCRS_SIDECAR_SUFFIX, "pcrs-sidecar"),
    ]
    .iter()
    .find(|(suffix, _)| {
        name.as_bytes()
            .strip_suffix(suffix.as_bytes())
            .filter(|stem| !stem.is_empty())
            .is_some_and(|stem| names.binary_search_by(|n| n.as_bytes().cmp(stem)).is_ok())
    })
    .map(|(_, reason)| *reason)
}

struct Walker<'a, F: FnMut(Entry) -> bool> {
    opts: &'a WalkOptions,
    root: usize,
    emit: F,
    visited: HashSet<(u64, u64)>,
    stopped: bool,
}

/// Walks `roots` and calls `emit` for every entry, in sorted order per directory. `emit` returns false to
/// stop the walk. A root that is a file is yielded as itself (its `rel` is its file name).
pub fn walk<F: FnMut(Entry) -> bool>(roots: &[PathBuf], opts: &WalkOptions, emit: F) {
    let mut w = Walker {
        opts,
        root: 0,
        emit,
        visited: HashSet::new(),
        stopped: false,
    };
    for (i, root) in roots.iter().enumerate() {
        if w.stopped {
            return;
        }
        w.root = i;
        match crate::input::metadata(root) {
            Ok(m) if m.is_dir() => {
                let mut stack = Vec::new();
                w.dir(root, "", &m, &mut stack, 0);
            }
            Ok(m) => {
                let rel = root
                    .file_name()
                    .map(escape_name)
                    .unwrap_or_else(|| escape_name(root.as_os_str()));
                w.file(root.clone(), rel, &m);
            }
            Err(e) => w.send(Entry::Error {
                root: i,
                rel: root.file_name().map(escape_name).unwrap_or_default(),
                path: root.clone(),
                code: Code::ReadError,
                message: format!("{}: {e}", root.display()),
            }),
        }
    }
}

impl<F: FnMut(Entry) -> bool> Walker<'_, F> {
    fn send(&mut self, e: Entry) {
        if !self.stopped && !(self.emit)(e) {
            self.stopped = true;
        }
    }

    fn excluded(&self, rel: &str) -> bool {
        self.opts.exclude.iter().any(|g| path_glob(g, rel))
    }

    fn file(&mut self, path: PathBuf, rel: String, m: &std::fs::Metadata) {
        if !self.opts.include.is_empty() && !self.opts.include.iter().any(|g| path_glob(g, &rel)) {
            return;
        }
        let root = self.root;
        let ft = m.file_type();
        if self.opts.skip_files.contains(&(m.dev(), m.ino())) {
            return;
        }
        if ft.is_file() {
            if m.len() > self.opts.max_size {
                let message = format!(
                    "{}: file is {} bytes, larger than the limit of {} bytes",
                    path.display(),
                    m.len(),
                    self.opts.max_size
                );
                self.send(Entry::Error {
                    root,
                    rel,
                    path,
                    code: Code::ReadError,
                    message,
                });
            } else {
                self.send(Entry::File {
                    root,
                    rel,
                    path,
                    meta: FileId::of(m),
                });
            }
            return;
        }
        let reason = if ft.is_fifo() {
            "fifo"
        } else if ft.is_socket() {
            "socket"
        } else if ft.is_block_device() || ft.is_char_device() {
            "device"
        } else if ft.is_symlink() {
            "symlink"
        } else {
            "other"
        };
        self.send(Entry::Skipped {
            root,
            rel,
            path,
            reason,
        });
    }

    fn dir(
        &mut self,
        dir: &Path,
        rel: &str,
        m: &std::fs::Metadata,
        stack: &mut Vec<(u64, u64)>,
        depth: u32,
    ) {
        let id = (m.dev(), m.ino());
        if stack.contains(&id) {
            self.send(Entry::Skipped {
                root: self.root,
                rel: rel.to_string(),
                path: dir.to_path_buf(),
                reason: "symlink-loop",
            });
            return;
        }
        if !self.visited.insert(id) {
            self.send(Entry::Skipped {
                root: self.root,
                rel: rel.to_string(),
                path: dir.to_path_buf(),
                reason: "already-visited",
            });
            return;
        }
        if depth > self.opts.max_depth {
            self.send(Entry::Error {
                root: self.root,
                rel: rel.to_string(),
                path: dir.to_path_buf(),
                code: Code::ReadError,
                message: format!(
                    "{}: nested deeper than {} directories",
                    dir.display(),
                    self.opts.max_depth
                ),
            });
            return;
        }
        let mut names = match crate::input::dir_names(dir) {
            Ok(r) => r,
            Err(e) => {
                self.send(Entry::Error {
                    root: self.root,
                    rel: rel.to_string(),
                    path: dir.to_path_buf(),
                    code: Code::ReadError,
                    message: format!("{}: cannot list directory: {e}", dir.display()),
                });
                return;
            }
        };
        names.sort();
        stack.push(id);
        for name in &names {
            if self.stopped {
                break;
            }
            let path = dir.join(name);
            let child_rel = if rel.is_empty() {
                escape_name(name)
            } else {
                format!("{rel}/{}", escape_name(name))
            };
            if self.excluded(&child_rel) {
                continue;
            }
            if let Some(reason) = is_sidecar(name, &names) {
                if !self.opts.include.is_empty()
                    && !self.opts.include.iter().any(|g| path_glob(g, &child_rel))
                {
                    continue;
                }
                self.send(Entry::Skipped {
                    root: self.root,
                    rel: child_rel,
                    path,
                    reason,
                });
                continue;
            }
            let lm = match crate::input::symlink_metadata(&path) {
                Ok(m) => m,
                Err(e) => {
                    self.send(Entry::Error {
                        root: self.root,
                        rel: child_rel,
                        path: path.clone(),
                        code: Code::ReadError,
                        message: format!("{}: {e}", path.display()),
                    });
                    continue;
                }
            };
            let m = if lm.file_type().is_symlink() {
                if !self.opts.follow {
                    self.file(path, child_rel, &lm);
                    continue;
                }
                match crate::input::metadata(&path) {
                    Ok(m) => m,
                    Err(e) => {
                        // Dangling link, or a loop of links (ELOOP).
                        let reason = if e.raw_os_error() == Some(40) {
                            "symlink-loop"
                        } else {
                            "broken-symlink"
                        };
                        self.send(Entry::Skipped {
                            root: self.root,
                            rel: child_rel,
                            path,
                            reason,
                        });
                        continue;
                    }
                }
            } else {
                lm
            };
            if m.is_dir() {
                self.dir(&path, &child_rel, &m, stack, depth + 1);
            } else {
                self.file(path, child_rel, &m);
            }
        }
        stack.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(root: &Path, opts: &WalkOptions) -> Vec<(String, String)> {
        let mut out = Vec::new();
        walk(&[root.to_path_buf()], opts, |e| {
            out.push(match e {
                Entry::File { rel, .. } => (rel, "file".to_string()),
                Entry::Skipped { rel, reason, .. } => (rel, reason.to_string()),
                Entry::Error { rel, code, .. } => (rel, code.to_string()),
            });
            true
        });
        out
    }

    #[test]
    fn rules_for_links_fifos_size_and_globs() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir(r.join("sub")).unwrap();
        std::fs::write(r.join("a.bin"), b"a").unwrap();
        std::fs::write(r.join("sub/b.bin"), b"bb").unwrap();
        std::fs::write(r.join("big.bin"), vec![0u8; 100]).unwrap();
        std::fs::write(r.join("notes.txt"), b"x").unwrap();
        std::os::unix::fs::symlink("sub", r.join("link")).unwrap();
        std::os::unix::fs::symlink(".", r.join("sub/up")).unwrap();
        std::os::unix::fs::symlink("l2", r.join("l1")).unwrap();
        std::os::unix::fs::symlink("l1", r.join("l2")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            r.join("fifo"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let opts = WalkOptions {
            max_size: 50,
            exclude: vec!["*.txt".into()],
            ..Default::default()
        };
        let got = collect(r, &opts);
        let want: Vec<(String, String)> = [
            ("a.bin", "file"),
            ("big.bin", "read-error"),
            ("fifo", "fifo"),
            ("l1", "symlink"),
            ("l2", "symlink"),
            ("link", "symlink"),
            ("sub/b.bin", "file"),
            ("sub/up", "symlink"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(got, want);

        let follow = WalkOptions {
            follow: true,
            include: vec!["*.bin".into()],
            ..opts
        };
        let got = collect(r, &follow);
        assert!(
            got.contains(&("l1".into(), "symlink-loop".into())),
            "{got:?}"
        );
        assert!(
            got.iter()
                .any(|(p, k)| p.ends_with("/up") && k == "symlink-loop"),
            "{got:?}"
        );
        // `link` points at `sub`, which is visited once only.
        assert_eq!(
            got.iter()
                .filter(|(p, k)| p.ends_with("b.bin") && k == "file")
                .count(),
            1,
            "{got:?}"
        );
        assert!(!got.iter().any(|(p, _)| p == "notes.txt"));
    }
}
