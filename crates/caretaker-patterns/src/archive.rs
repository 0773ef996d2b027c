//! The archive of old valuable patterns: `archive/date=YYYY-MM-DD/part-<hash>.parquet` files, one
//! per cleanup that archived something, and `archive/manifest.json` listing each file's rows,
//! bytes and blake3.
//!
//! An entry is `pending` from the moment its file is safely on disk until the store no longer
//! holds its patterns, then `committed`. Whoever next takes the store's lock finishes a pending
//! entry (removing its patterns from the store) and deletes any archive file the manifest does
//! not list (a crash before the manifest was written: its patterns are still in the store).

use crate::{Error, Result};
use caretaker_core::fs::{FsError, write_atomic};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const MANIFEST: &str = "manifest.json";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub files: Vec<ManifestEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// Relative to the archive directory.
    pub path: String,
    pub rows: u64,
    pub bytes: u64,
    pub blake3: String,
    pub archived_at: DateTime<Utc>,
    pub run_id: String,
    pub state: EntryState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryState {
    /// The file is written; the store may still hold its patterns.
    Pending,
    /// The store no longer holds its patterns.
    Committed,
}

impl Manifest {
    pub fn load(dir: &Path) -> Result<Manifest> {
        let path = dir.join(MANIFEST);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| Error::Invalid { path, reason: format!("not an archive manifest: {e}") }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Manifest { format: 1, files: Vec::new() }),
            Err(e) => Err(FsError::new("read", path, e).into()),
        }
    }

    pub fn save(&self, dir: &Path) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(self).expect("a manifest serialises");
        write_atomic(&dir.join(MANIFEST), &bytes)?;
        Ok(())
    }

    pub fn entry_mut(&mut self, path: &str) -> Option<&mut ManifestEntry> {
        self.files.iter_mut().find(|e| e.path == path)
    }
}

/// Every `part-*.parquet` file under the archive directory, relative paths.
pub fn part_files(dir: &Path) -> Result<Vec<String>> {
    fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let path = entry.path();
            if path.is_dir() {
                walk(&path, base, out)?;
            } else if entry.file_name().to_string_lossy().starts_with("part-")
                && path.extension().is_some_and(|e| e == "parquet")
            {
                out.push(path.strip_prefix(base).unwrap_or(&path).to_string_lossy().into_owned());
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    if dir.exists() {
        walk(dir, dir, &mut out).map_err(|e| FsError::new("list", dir, e))?;
    }
    out.sort();
    Ok(out)
}

/// Where a cleanup archiving `ids` on `day` writes: the name depends only on the patterns, so a
/// rerun after a crash rewrites the same file instead of adding a second copy.
pub fn part_path(day: DateTime<Utc>, ids: &[String]) -> String {
    let mut hasher = blake3::Hasher::new();
    for id in ids {
        hasher.update(id.as_bytes());
        hasher.update(b"\n");
    }
    format!("date={}/part-{}.parquet", day.format("%Y-%m-%d"), &hasher.finalize().to_hex()[..16])
}

pub fn absolute(dir: &Path, relative: &str) -> PathBuf {
    dir.join(relative)
}
