//! Files that hold secrets: created with mode 0600 (directories 0700), and
//! tightened to that whatever mode they had before.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Writes `bytes` to a file only its owner can read or write.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    // An existing file keeps its old mode through open(): tighten it.
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Creates a directory only its owner can enter; an existing one (made
/// by hand, say with mode 0755) is tightened to 0700.
pub fn private_dir(path: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)?;
    set_mode(path, 0o700)
}

/// Creates an empty file with mode 0600 unless it exists, so that what
/// opens it next (SQLite) does not create it with the umask's mode.
pub fn private_file(path: &Path) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map(drop)
}

/// Sets `mode` on `path` if it is there. Symbolic links are left alone
/// (chmod would follow them out of the directory).
pub fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Ok(()),
        Ok(m) if m.permissions().mode() & 0o7777 == mode => Ok(()),
        Ok(_) => std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// 0700 on `root` and every directory under it, 0600 on every file (the
/// audit trail when it lives in the data directory).
pub fn private_tree(root: &Path) -> std::io::Result<()> {
    let meta = match std::fs::symlink_metadata(root) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if meta.is_dir() {
        set_mode(root, 0o700)?;
        for entry in std::fs::read_dir(root)? {
            private_tree(&entry?.path())?;
        }
        Ok(())
    } else if meta.is_file() {
        set_mode(root, 0o600)
    } else {
        Ok(())
    }
}
