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

use std::path::Path;

/// Checks a file that must exist. `Err` says what another user could have done.
pub fn check_file(path: &Path) -> Result<(), String> {
    imp::check_file(path)
}

/// Checks a file that may not exist yet (the state file): if it exists, as [`check_file`]; if not, its
/// directories, since whoever can write there can create it.
pub fn check_file_or_dir(path: &Path) -> Result<(), String> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => check_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => imp::check_dirs(path),
        Err(e) => Err(format!("cannot stat {}: {e}", path.display())),
    }
}

#[cfg(unix)]
mod imp {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    use std::path::{Path, PathBuf};

    const GROUP_OTHER_WRITE: u32 = 0o022;
    const STICKY: u32 = 0o1000;

    fn owner_ok(uid: u32) -> bool {
        uid == 0 || uid == rustix::process::geteuid().as_raw()
    }

    pub fn check_file(path: &Path) -> Result<(), String> {
        let md = std::fs::symlink_metadata(path)
            .map_err(|e| format!("cannot stat {}: {e}", path.display()))?;
        let ft = md.file_type();
        if ft.is_symlink() {
            return Err(format!(
                "{} is a symbolic link; name the file itself (a link can be re-pointed by whoever owns it or its directory)",
                path.display()
            ));
        }
        if !ft.is_file() || ft.is_fifo() {
            return Err(format!("{} is not a regular file", path.display()));
        }
        if !owner_ok(md.uid()) {
            return Err(format!(
                "{} is owned by uid {}, neither root nor the user running fwscan",
                path.display(),
                md.uid()
            ));
        }
        if md.mode() & GROUP_OTHER_WRITE != 0 {
            return Err(format!(
                "{} is writable by its group or by others (mode {:04o}); chmod go-w it",
                path.display(),
                md.mode() & 0o7777
            ));
        }
        check_dirs(path)
    }

    /// The directories above `path` (which need not exist).
    pub fn check_dirs(path: &Path) -> Result<(), String> {
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let parent = std::fs::canonicalize(&parent)
            .map_err(|e| format!("cannot resolve directory {}: {e}", parent.display()))?;
        for (i, dir) in parent.ancestors().enumerate() {
            let md = std::fs::metadata(dir)
                .map_err(|e| format!("cannot stat directory {}: {e}", dir.display()))?;
            if !owner_ok(md.uid()) {
                return Err(format!(
                    "directory {} (above {}) is owned by uid {}, neither root nor the user running fwscan",
                    dir.display(),
                    path.display(),
                    md.uid()
                ));
            }
            let writable = md.mode() & GROUP_OTHER_WRITE != 0;
            if writable && (i == 0 || md.mode() & STICKY == 0) {
                return Err(format!(
                    "directory {} (above {}) is writable by its group or by others (mode {:04o}); another user could replace the file",
                    dir.display(),
                    path.display(),
                    md.mode() & 0o7777
                ));
            }
        }
        Ok(())
    }
}

#[cfg(not(unix))]
mod imp {
    use std::path::Path;
    pub fn check_file(_: &Path) -> Result<(), String> {
        Ok(())
    }
    pub fn check_dirs(_: &Path) -> Result<(), String> {
        Ok(())
    }
}
