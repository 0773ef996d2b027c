//! Maintenance mode: a flag in the state directory that critical tasks raise while they work.
//!
//! While it is on, the nightly pipeline does not deploy (the gate's choice is reported, not
//! applied) and the scheduler holds back non-critical tasks. The flag is a file,
//! `<state>/maintenance.json`, replaced atomically, so every process sharing the state directory
//! sees the same mode and a crash leaves it as it was last set (on, with who set it and why,
//! until someone turns it off).

use crate::fs::{FsError, write_atomic};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const FILE: &str = "maintenance.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaintenanceMode {
    pub since: DateTime<Utc>,
    pub reason: String,
    /// Who turned it on: a task id, or `manual`.
    pub by: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MaintenanceError {
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error("{path}: not a maintenance-mode file: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

/// The current mode: `Some` while maintenance mode is on.
pub fn current(state_dir: &Path) -> Result<Option<MaintenanceMode>, MaintenanceError> {
    let path = state_dir.join(FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| MaintenanceError::Corrupt { path, reason: e.to_string() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(FsError::new("read", path, e).into()),
    }
}

/// Turns maintenance mode on (replacing who and why if it was already on).
pub fn enter(state_dir: &Path, mode: &MaintenanceMode) -> Result<(), MaintenanceError> {
    let bytes = serde_json::to_vec_pretty(mode).expect("the mode serialises");
    Ok(write_atomic(&state_dir.join(FILE), &bytes)?)
}

/// Turns maintenance mode on only if it is off, in one step no other process can interleave with
/// (the file is linked into place only if none exists). `Ok(Err(mode))` names the mode that was
/// already on, which is left as it is.
pub fn enter_if_off(state_dir: &Path, mode: &MaintenanceMode) -> Result<Result<(), MaintenanceMode>, MaintenanceError> {
    let path = state_dir.join(FILE);
    std::fs::create_dir_all(state_dir).map_err(|e| FsError::new("create directory", state_dir, e))?;
    let mut temp = tempfile::Builder::new()
        .prefix(".caretaker-tmp-")
        .tempfile_in(state_dir)
        .map_err(|e| FsError::new("create a temporary file in", state_dir, e))?;
    let bytes = serde_json::to_vec_pretty(mode).expect("the mode serialises");
    std::io::Write::write_all(temp.as_file_mut(), &bytes).map_err(|e| FsError::new("write", &path, e))?;
    temp.as_file().sync_all().map_err(|e| FsError::new("sync", &path, e))?;
    match temp.persist_noclobber(&path) {
        Ok(_) => {
            crate::fs::sync_dir(state_dir)?;
            Ok(Ok(()))
        }
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => match current(state_dir)? {
            Some(holder) => Ok(Err(holder)),
            // Turned off between our attempt and the read: try once more.
            None => enter_if_off(state_dir, mode),
        },
        Err(e) => Err(FsError::new("create", path, e.error).into()),
    }
}

/// Turns maintenance mode off; returns the mode that was on, if any.
pub fn leave(state_dir: &Path) -> Result<Option<MaintenanceMode>, MaintenanceError> {
    let was = current(state_dir)?;
    let path = state_dir.join(FILE);
    match std::fs::remove_file(&path) {
        Ok(()) => crate::fs::sync_dir(state_dir)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(FsError::new("remove", path, e).into()),
    }
    Ok(was)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_and_off() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(current(dir.path()).unwrap(), None);
        let mode = MaintenanceMode { since: Utc::now(), reason: "db upgrade".into(), by: "manual".into() };
        enter(dir.path(), &mode).unwrap();
        assert_eq!(current(dir.path()).unwrap(), Some(mode.clone()));
        assert_eq!(leave(dir.path()).unwrap(), Some(mode));
        assert_eq!(current(dir.path()).unwrap(), None);
        assert_eq!(leave(dir.path()).unwrap(), None);
    }

    #[test]
    fn entering_if_off_leaves_someone_elses_mode_alone() {
        let dir = tempfile::tempdir().unwrap();
        let theirs = MaintenanceMode { since: Utc::now(), reason: "db upgrade".into(), by: "ops".into() };
        let ours = MaintenanceMode { since: Utc::now(), reason: "model reset".into(), by: "models reset".into() };
        assert_eq!(enter_if_off(dir.path(), &theirs).unwrap(), Ok(()));
        assert_eq!(enter_if_off(dir.path(), &ours).unwrap(), Err(theirs.clone()));
        assert_eq!(current(dir.path()).unwrap(), Some(theirs));
        leave(dir.path()).unwrap();
        assert_eq!(enter_if_off(dir.path(), &ours).unwrap(), Ok(()));
        assert_eq!(current(dir.path()).unwrap(), Some(ours));
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from(FILE)], "no temporary file is left");
    }
}
