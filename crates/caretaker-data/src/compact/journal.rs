//! The compaction journal: the one file that decides, after a crash, which files are the dataset.
//!
//! `<dataset>/_caretaker_compaction.json` is written (atomically) only once every new file is on
//! disk, synced and checked equal to the files it replaces. From then on the new files are the
//! dataset: a listing drops the old files the journal names and takes each new file under its
//! final name or, before it was renamed, under its staged name. Without a journal the staged
//! files are invisible (their names start with `.`) and the old files are the dataset. The swap
//! itself (rename the new files in, remove the old ones, remove the journal) is idempotent, so
//! whoever finds the journal next finishes it.

use super::content::ContentHash;
use crate::{Error, Result};
use caretaker_core::crash_point;
use caretaker_core::fs::{FsError, sync_dir};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The journal's name in the dataset's directory (`_` keeps it out of every listing).
pub const JOURNAL: &str = "_caretaker_compaction.json";
/// Names of files compaction writes before they are swapped in (`.` keeps them out of listings).
pub const STAGED_PREFIX: &str = ".caretaker-compact-";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Journal {
    pub id: String,
    pub created_at: DateTime<Utc>,
    pub groups: Vec<JournalGroup>,
}

/// One directory's small files and the files that replace them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalGroup {
    /// The directory, relative to the dataset's (empty for the dataset's own directory).
    pub dir: PathBuf,
    /// The files replaced (names in `dir`).
    pub old: Vec<String>,
    pub new: Vec<NewFile>,
    /// Rows and content hash of the old files, which the new ones were checked to match.
    pub content: ContentHash,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewFile {
    /// The name it was written under.
    pub staged: String,
    /// The name it is swapped in under.
    pub name: String,
    pub rows: u64,
    pub bytes: u64,
}

/// What finishing a journal did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Swapped {
    pub renamed: usize,
    pub removed: usize,
}

pub fn path(root: &Path) -> PathBuf {
    root.join(JOURNAL)
}

/// The pending journal of the dataset at `root`, if a compaction is (or was, before a crash)
/// swapping files.
pub fn read(root: &Path) -> Result<Option<Journal>> {
    let path = path(root);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| Error::Read {
            path: path.clone(),
            reason: format!(
                "not a compaction journal ({e}); it decides which files are the dataset after an interrupted compaction, so nothing reads the dataset until it is repaired or removed by hand"
            ),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(FsError::new("read", path, e).into()),
    }
}

pub(super) fn write(root: &Path, journal: &Journal) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(journal).expect("a journal serialises");
    caretaker_core::fs::write_atomic(&path(root), &bytes)?;
    Ok(())
}

/// Makes a listing of the dataset at `root` follow a pending journal: the old files it names are
/// left out and its new files are in, under whichever name they have now.
pub fn resolve_listing(root: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    let Some(journal) = read(root)? else { return Ok(()) };
    for group in &journal.groups {
        let dir = root.join(&group.dir);
        let old: Vec<PathBuf> = group.old.iter().map(|n| dir.join(n)).collect();
        files.retain(|f| !old.contains(f));
        for new in &group.new {
            let (name, staged) = (dir.join(&new.name), dir.join(&new.staged));
            if name.is_file() {
                if !files.contains(&name) {
                    files.push(name);
                }
            } else if staged.is_file() {
                files.push(staged);
            } else {
                return Err(Error::Read {
                    path: path(root),
                    reason: format!(
                        "the journal of compaction {} names {} but neither it nor {} exists",
                        journal.id,
                        name.display(),
                        staged.display()
                    ),
                });
            }
        }
    }
    files.sort();
    Ok(())
}

/// Finishes the swap `journal` describes: renames each new file in, removes each old file,
/// removes the journal. Every step is skipped when already done, so it can run again after a
/// crash at any point.
pub(super) fn roll_forward(root: &Path, journal: &Journal) -> Result<Swapped> {
    let mut swapped = Swapped::default();
    for group in &journal.groups {
        let dir = root.join(&group.dir);
        for new in &group.new {
            let (name, staged) = (dir.join(&new.name), dir.join(&new.staged));
            if name.exists() {
                remove_if_present(&staged)?;
            } else {
                std::fs::rename(&staged, &name).map_err(|e| FsError::new("rename", &staged, e))?;
                swapped.renamed += 1;
                crash_point("compact:swapping");
            }
        }
        sync_dir(&dir)?;
    }
    crash_point("compact:new_visible");
    for group in &journal.groups {
        let dir = root.join(&group.dir);
        for old in &group.old {
            if remove_if_present(&dir.join(old))? {
                swapped.removed += 1;
                crash_point("compact:removing");
            }
        }
        sync_dir(&dir)?;
    }
    crash_point("compact:old_removed");
    remove_if_present(&path(root))?;
    sync_dir(root)?;
    Ok(swapped)
}

fn remove_if_present(path: &Path) -> Result<bool> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(FsError::new("remove", path, e).into()),
    }
}

/// Removes staged files no journal names: what a compaction that stopped before its journal left.
/// Returns how many it removed.
pub(super) fn remove_orphans(root: &Path, journal: Option<&Journal>) -> Result<usize> {
    let keep: Vec<PathBuf> = journal
        .iter()
        .flat_map(|j| j.groups.iter())
        .flat_map(|g| g.new.iter().map(move |n| root.join(&g.dir).join(&n.staged)))
        .collect();
    let mut removed = 0;
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| FsError::new("list", &dir, e))?;
        let mut here = 0;
        for entry in entries {
            let entry = entry.map_err(|e| FsError::new("list", &dir, e))?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let is_dir = entry.file_type().map_err(|e| FsError::new("inspect", &path, e))?.is_dir();
            if is_dir {
                dirs.push(path);
            } else if name.starts_with(STAGED_PREFIX) && !keep.contains(&path) && remove_if_present(&path)? {
                here += 1;
            }
        }
        if here > 0 {
            sync_dir(&dir)?;
            removed += here;
        }
    }
    Ok(removed)
}
