//! StrictModes for the trust policy and the anti-rollback state (issue 15): a file that a local user
//! other than its owner or root could have written decides nothing.
//!
//! As OpenSSH's `StrictModes` (`safe_path`) checks `authorized_keys`: the file must not be a symbolic
//! link, must be a regular file owned by root or by the effective user, and must not be writable by its
//! group or by others; every directory from its parent up to `/` (after resolving symbolic links in the
//! directories) must be owned by root or the effective user and must not be writable by group or others —
//! except that a directory above the parent may be group/world-writable when it has the sticky bit (like
//! `/tmp`: other users cannot rename or remove entries they do not own there). The parent itself may
//! never be group/world-writable, sticky or not: another user could have created the file first.
//! On non-Unix systems nothing is checked.

use std::path::{Path, PathBuf};

/// What another user could have done to a file or to a directory above it (or why that could not be
/// checked). The text names the path.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InsecureError {
    #[error("cannot stat {}: {error}", path.display())]
    Stat {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{} is a symbolic link; name the file itself (a link can be re-pointed by whoever owns it or its directory)", path.display())]
    Symlink { path: PathBuf },
    #[error("{} is not a regular file", path.display())]
    NotRegular { path: PathBuf },
    #[error("{} is owned by uid {uid}, neither root nor the user running fwscan", path.display())]
    Owner { path: PathBuf, uid: u32 },
    #[error("{} is writable by its group or by others (mode {mode:04o}); chmod go-w it", path.display())]
    Writable { path: PathBuf, mode: u32 },
    #[error("cannot resolve directory {}: {error}", dir.display())]
    ResolveDir { dir: PathBuf, error: std::io::Error },
    #[error("cannot stat directory {}: {error}", dir.display())]
    StatDir { dir: PathBuf, error: std::io::Error },
    #[error("directory {} (above {}) is owned by uid {uid}, neither root nor the user running fwscan", dir.display(), path.display())]
    DirOwner {
        dir: PathBuf,
        path: PathBuf,
        uid: u32,
    },
    #[error("directory {} (above {}) is writable by its group or by others (mode {mode:04o}); another user could replace the file", dir.display(), path.display())]
    DirWritable {
        dir: PathBuf,
        path: PathBuf,
        mode: u32,
    },
}

/// Checks a file that must exist. `Err` says what another user could have done.
pub fn check_file(path: &Path) -> Result<(), InsecureError> {
    imp::check_file(path)
}

/// Checks a file that may not exist yet (the state file): if it exists, as [`check_file`]; if not, its
/// directories, since whoever can write there can create it.
pub fn check_file_or_dir(path: &Path) -> Result<(), InsecureError> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => check_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => imp::check_dirs(path),
        Err(error) => Err(InsecureError::Stat {
            path: path.to_path_buf(),
            error,
        }),
    }
}

#[cfg(unix)]
mod imp {
    use super::InsecureError;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    use std::path::{Path, PathBuf};

    const GROUP_OTHER_WRITE: u32 = 0o022;
    const STICKY: u32 = 0o1000;

    fn owner_ok(uid: u32) -> bool {
        uid == 0 || uid == rustix::process::geteuid().as_raw()
    }

    pub fn check_file(path: &Path) -> Result<(), InsecureError> {
        let md = std::fs::symlink_metadata(path).map_err(|error| InsecureError::Stat {
            path: path.to_path_buf(),
            error,
        })?;
        let ft = md.file_type();
        if ft.is_symlink() {
            return Err(InsecureError::Symlink {
                path: path.to_path_buf(),
            });
        }
        if !ft.is_file() || ft.is_fifo() {
            return Err(InsecureError::NotRegular {
                path: path.to_path_buf(),
            });
        }
        if !owner_ok(md.uid()) {
            return Err(InsecureError::Owner {
                path: path.to_path_buf(),
                uid: md.uid(),
            });
        }
        if md.mode() & GROUP_OTHER_WRITE != 0 {
            return Err(InsecureError::Writable {
                path: path.to_path_buf(),
                mode: md.mode() & 0o7777,
            });
        }
        check_dirs(path)
    }

    /// The directories above `path` (which need not exist).
    pub fn check_dirs(path: &Path) -> Result<(), InsecureError> {
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let parent = std::fs::canonicalize(&parent)
            .map_err(|error| InsecureError::ResolveDir { dir: parent, error })?;
        for (i, dir) in parent.ancestors().enumerate() {
            let md = std::fs::metadata(dir).map_err(|error| InsecureError::StatDir {
                dir: dir.to_path_buf(),
                error,
            })?;
            if !owner_ok(md.uid()) {
                return Err(InsecureError::DirOwner {
                    dir: dir.to_path_buf(),
                    path: path.to_path_buf(),
                    uid: md.uid(),
                });
            }
            let writable = md.mode() & GROUP_OTHER_WRITE != 0;
            if writable && (i == 0 || md.mode() & STICKY == 0) {
                return Err(InsecureError::DirWritable {
                    dir: dir.to_path_buf(),
                    path: path.to_path_buf(),
                    mode: md.mode() & 0o7777,
                });
            }
        }
        Ok(())
    }
}

#[cfg(not(unix))]
mod imp {
    use super::InsecureError;
    use std::path::Path;
    pub fn check_file(_: &Path) -> Result<(), InsecureError> {
        Ok(())
    }
    pub fn check_dirs(_: &Path) -> Result<(), InsecureError> {
        Ok(())
    }
}
