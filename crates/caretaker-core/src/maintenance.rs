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
}
