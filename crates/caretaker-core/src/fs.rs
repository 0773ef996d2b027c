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
        .prefix(TEMP_PREFIX)
        .tempfile_in(dir)
        .map_err(|e| FsError::new("create a temporary file in", dir, e))?;
    fill(temp.as_file_mut()).map_err(|e| FsError::new("write", path, e))?;
    temp.as_file().sync_all().map_err(|e| FsError::new("sync", path, e))?;
    temp.persist(path).map_err(|e| FsError::new("replace", path, e.error))?;
    sync_dir(dir)
}

/// The prefix of the temporary files atomic writes start from.
pub const TEMP_PREFIX: &str = ".caretaker-tmp-";

/// Removes the temporary files of atomic writes (`.caretaker-tmp-*`) directly in `dir` that are
/// at least `min_age` old: what a writer killed mid-write left. A caller that holds the lock every
/// writer of `dir` holds passes zero; elsewhere an age no live write lasts. Returns the paths
/// removed.
pub fn sweep_temp_files(dir: &Path, min_age: std::time::Duration) -> Vec<std::path::PathBuf> {
    let mut removed = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return removed };
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            continue;
        }
        let old_enough = entry
            .metadata()
            .and_then(|m| m.modified())
            .map(|t| t.elapsed().unwrap_or_default() >= min_age)
            .unwrap_or(false);
        if old_enough && entry.file_type().is_ok_and(|t| t.is_file()) && std::fs::remove_file(entry.path()).is_ok() {
            removed.push(entry.path());
        }
    }
    removed
}

/// Makes a file readable by all (0644 on Unix), for the files others read (reports, the
/// quarantine, the metrics textfile): the temporary files the atomic writes start from are
/// private to their owner.
pub fn make_shared(file: &File) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    #[cfg(not(unix))]
    let _ = file;
    Ok(())
}

/// Puts the directory `new` in the place of `target` in one step: on Linux the two are exchanged
/// (`renameat2(RENAME_EXCHANGE)`), so a reader sees the old directory or the new one, never
/// neither, and `new` then holds the old one for the caller to remove. When `target` does not
/// exist, `new` is renamed to it. Both must be on one file system.
pub fn exchange_dirs(new: &Path, target: &Path) -> Result<(), FsError> {
    match std::fs::symlink_metadata(target) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            std::fs::rename(new, target).map_err(|e| FsError::new("rename to", target, e))?;
        }
        Err(e) => return Err(FsError::new("read", target, e)),
        Ok(_) => exchange(new, target)?,
    }
    sync_dir(parent_dir(target))
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn exchange(new: &Path, target: &Path) -> Result<(), FsError> {
    use nix::fcntl::{AT_FDCWD, RenameFlags, renameat2};
    renameat2(AT_FDCWD, new, AT_FDCWD, target, RenameFlags::RENAME_EXCHANGE)
        .map_err(|e| FsError::new("exchange with", target, io::Error::from(e)))
}

/// Elsewhere: the old directory moves aside, then the new one in (a crash between the two leaves
/// the old one beside, under `new`'s name with `.old`).
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn exchange(new: &Path, target: &Path) -> Result<(), FsError> {
    let aside = new.with_extension("old");
    std::fs::rename(target, &aside).map_err(|e| FsError::new("move aside", target, e))?;
    std::fs::rename(new, target).map_err(|e| FsError::new("rename to", target, e))?;
    std::fs::rename(&aside, new).map_err(|e| FsError::new("rename", &aside, e))
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
    fn a_directory_is_exchanged_whole_or_renamed_into_place() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("advisories");
        let new = dir.path().join(".new");
        std::fs::create_dir_all(&new).unwrap();
        std::fs::write(new.join("A.json"), "first").unwrap();
        exchange_dirs(&new, &target).unwrap();
        assert_eq!(std::fs::read_to_string(target.join("A.json")).unwrap(), "first");
        assert!(!new.exists());
        std::fs::create_dir_all(&new).unwrap();
        std::fs::write(new.join("B.json"), "second").unwrap();
        exchange_dirs(&new, &target).unwrap();
        assert_eq!(std::fs::read_to_string(target.join("B.json")).unwrap(), "second");
        assert!(!target.join("A.json").exists());
        assert_eq!(std::fs::read_to_string(new.join("A.json")).unwrap(), "first", "the old one, for the caller");
    }

    #[test]
    fn a_killed_writers_temporary_files_are_swept_once_old_enough() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".caretaker-tmp-abc"), "half").unwrap();
        std::fs::write(dir.path().join("report.json"), "{}").unwrap();
        assert!(sweep_temp_files(dir.path(), std::time::Duration::from_secs(3600)).is_empty(), "too young");
        assert_eq!(
            sweep_temp_files(dir.path(), std::time::Duration::ZERO),
            vec![dir.path().join(".caretaker-tmp-abc")]
        );
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("report.json")]);
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
