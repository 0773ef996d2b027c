//! The one atomic-write helper.
//!
//! A write that matters goes to a temporary file in the destination's directory, is synced, and
//! is renamed over the destination; the directory is synced after the rename. A crash at any
//! point leaves either the old file or the new one, never a torn one.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// An I/O error with the path it concerns.
#[derive(Debug, thiserror::Error)]
#[error("{action} {path}: {source}")]
pub struct FsError {
    pub action: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

impl FsError {
    pub fn new(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> FsError {
        FsError { action, path: path.into(), source }
    }
}

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), FsError> {
    write_atomic_with(path, |file| file.write_all(bytes))
}

/// Writes `path` atomically with `fill`, which gets a temporary file in the same directory.
pub fn write_atomic_with(path: &Path, fill: impl FnOnce(&mut File) -> io::Result<()>) -> Result<(), FsError> {
    let dir = parent_dir(path);
    std::fs::create_dir_all(dir).map_err(|e| FsError::new("create directory", dir, e))?;
    let mut temp = tempfile::Builder::new()
        .prefix(".caretaker-tmp-")
        .tempfile_in(dir)
        .map_err(|e| FsError::new("create a temporary file in", dir, e))?;
    fill(temp.as_file_mut()).map_err(|e| FsError::new("write", path, e))?;
    temp.as_file().sync_all().map_err(|e| FsError::new("sync", path, e))?;
    temp.persist(path).map_err(|e| FsError::new("replace", path, e.error))?;
    sync_dir(dir)
}

/// Syncs a directory so that a rename or a new entry in it survives a crash.
pub fn sync_dir(dir: &Path) -> Result<(), FsError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| FsError::new("sync directory", dir, e))
}

/// Syncs a file that was written in place (for example by a Parquet writer).
pub fn sync_file(path: &Path) -> Result<(), FsError> {
    File::open(path).and_then(|f| f.sync_all()).map_err(|e| FsError::new("sync", path, e))
}

/// Renames `from` to `to` and syncs the destination's directory.
pub fn rename_synced(from: &Path, to: &Path) -> Result<(), FsError> {
    std::fs::rename(from, to).map_err(|e| FsError::new("rename", from, e))?;
    sync_dir(parent_dir(to))
}

/// The directory holding `path` (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Total size in bytes of the files under `path` (a file or a directory tree); 0 when missing.
pub fn disk_size(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if meta.is_file() {
        return meta.len();
    }
    if !meta.is_dir() {
        return 0;
    }
    std::fs::read_dir(path).map(|entries| entries.flatten().map(|e| disk_size(&e.path())).sum()).unwrap_or(0)
}

/// blake3 of a file's bytes, as hex.
pub fn file_blake3(path: &Path) -> Result<String, FsError> {
    let mut hasher = blake3::Hasher::new();
    let file = File::open(path).map_err(|e| FsError::new("open", path, e))?;
    hasher.update_reader(file).map_err(|e| FsError::new("read", path, e))?;
    Ok(hasher.finalize().to_hex().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temporary_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pointer.json");
        write_atomic(&path, b"old").unwrap();
        write_atomic(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("pointer.json")]);
    }

    #[test]
    fn a_failed_fill_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.parquet");
        write_atomic(&path, b"good").unwrap();
        let err = write_atomic_with(&path, |f| {
            f.write_all(b"half")?;
            Err(io::Error::other("disk full"))
        })
        .unwrap_err();
        assert!(err.to_string().contains("store.parquet"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"good");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn disk_size_sums_a_tree() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        std::fs::write(dir.path().join("a/x"), [0u8; 10]).unwrap();
        std::fs::write(dir.path().join("a/b/y"), [0u8; 5]).unwrap();
        assert_eq!(disk_size(dir.path()), 15);
        assert_eq!(disk_size(&dir.path().join("missing")), 0);
    }
}
