//! Exclusive process locks on a lock file: one writer at a time, and a clear message for the
//! second. The operating system releases the lock when the process dies, so a crash never leaves
//! anything locked.

use crate::fs::FsError;
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("{what} is in use by another caretaker process{holder}; try again when it has finished (lock file {})", path.display())]
    Busy { what: String, path: PathBuf, holder: String },
    #[error(transparent)]
    Fs(#[from] FsError),
}

/// Held until dropped.
#[derive(Debug)]
pub struct ProcessLock {
    path: PathBuf,
    _file: File,
}

impl ProcessLock {
    /// Takes the lock at `path` (created if missing), or says who holds it. `what` names the thing
    /// locked, for the message ("the registry models/").
    pub fn acquire(path: &Path, what: &str) -> Result<ProcessLock, LockError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| FsError::new("create directory", dir, e))?;
        }
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| FsError::new("open", path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(LockError::Busy {
                    what: what.to_string(),
                    path: path.to_path_buf(),
                    holder: if holder.is_empty() { String::new() } else { format!(" ({holder})") },
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(FsError::new("lock", path, e).into()),
        }
        // Who holds it, for the message the next process shows; best effort.
        let _ = file.set_len(0).and_then(|_| file.rewind()).and_then(|_| {
            write!(file, "pid {}, since {}", std::process::id(), chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ"))
        });
        Ok(ProcessLock { path: path.to_path_buf(), _file: file })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_told_who_holds_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x/.lock");
        let _held = ProcessLock::acquire(&path, "the store").unwrap();
        let err = ProcessLock::acquire(&path, "the store").unwrap_err().to_string();
        assert!(err.starts_with("the store is in use by another caretaker process"), "{err}");
        assert!(err.contains(&format!("pid {}", std::process::id())), "{err}");
        drop(_held);
        assert!(ProcessLock::acquire(&path, "the store").is_ok());
    }
}
