//! Compaction of a dataset: the small Parquet files of each directory rewritten into fewer files
//! of about a target size, their rows sorted by event time, every directory (and so every Hive
//! partition) kept as it is.
//!
//! A nightly ingest that lands a file an hour leaves thousands of small files; every scan then
//! pays a file open, a footer read and a row group per file. Fewer, larger files sorted by time
//! are cheaper to scan, and their row-group statistics let a time-window scan skip what it does
//! not need.
//!
//! The order of the work is what makes it safe to kill at any point:
//!
//! 1. each group's new files are written and synced under staged names (`.caretaker-compact-*`,
//!    which no listing sees), read back, and their rows and content hash checked equal to the
//!    files they replace ([`content`]); a mismatch removes them and stops with an error;
//! 2. the journal is written (atomically): from this moment the new files are the dataset;
//! 3. the new files are renamed in, the old ones removed, the journal removed ([`journal`]).
//!
//! A listing ([`crate::dataset::DatasetFiles::find`]) follows a pending journal, so at every
//! point it sees exactly the old files or exactly the new ones; the next compaction (or
//! [`recover`]) finishes the swap or removes orphaned staged files, so a rerun converges. The
//! caller holds the pipeline's run lock, so that no run reads the dataset while files move.
//!
//! ```no_run
//! # use caretaker_data::{compact, dataset::DatasetFiles};
//! let root = std::path::Path::new("data/events");
//! compact::recover(root).unwrap();
//! let plan = compact::plan(&DatasetFiles::find(root).unwrap(), 128 << 20).unwrap();
//! let outcome = compact::compact(root, &plan, "ts", "20261128T030000Z-1a2b").unwrap();
//! println!("{} files written", outcome.files_written);
//! ```

pub mod content;
pub mod journal;

pub use content::{ContentHash, content_hash};
pub use journal::{Journal, Swapped};

use crate::dataset::DatasetFiles;
use crate::{Error, Result};
use caretaker_core::crash_point;
use caretaker_core::fs::FsError;
use journal::{JournalGroup, NewFile, STAGED_PREFIX};
use polars::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Rows per row group of the files compaction writes: small enough that a time-window scan of a
/// sorted file skips most of it, large enough to keep the footer small.
pub const ROW_GROUP_ROWS: usize = 65_536;

/// What compaction would do.
#[derive(Debug, Clone, Serialize)]
pub struct CompactionPlan {
    pub dataset: PathBuf,
    pub target_bytes: u64,
    /// Files and bytes of the dataset now.
    pub files: usize,
    pub bytes: u64,
    /// Directories holding its files (the Hive partitions, for a partitioned dataset).
    pub directories: usize,
    /// Files smaller than half the target: the ones compaction rewrites, where a directory has
    /// two or more of them.
    pub small_files: usize,
    pub groups: Vec<PlannedGroup>,
    /// Files the dataset would have afterwards.
    pub files_after: usize,
}

/// One directory's small files and how many files replace them.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedGroup {
    /// Relative to the dataset's directory (empty for the directory itself).
    pub dir: PathBuf,
    pub files: Vec<PathBuf>,
    pub bytes: u64,
    pub outputs: usize,
}

impl CompactionPlan {
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }
}

/// What a compaction did.
#[derive(Debug, Clone, Serialize)]
pub struct CompactionOutcome {
    pub id: String,
    pub groups: usize,
    pub files_replaced: usize,
    pub files_written: usize,
    pub rows: u64,
}

/// What [`recover`] found and finished.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Recovery {
    /// The interrupted compaction whose swap was finished.
    pub finished: Option<String>,
    pub swapped: Swapped,
    /// Staged files of a compaction that stopped before its journal, removed.
    pub orphans_removed: usize,
}

impl Recovery {
    pub fn did_something(&self) -> bool {
        self.finished.is_some() || self.orphans_removed > 0
    }
}

/// Refuses datasets whose files compaction cannot rewrite in place.
fn compactable_root(files: &DatasetFiles) -> Result<&Path> {
    let root = files.path.as_path();
    let text = root.to_string_lossy();
    if text.contains(['*', '?', '[']) {
        return Err(Error::NotCompactable {
            path: root.to_path_buf(),
            reason:
                "a glob names files, not a directory compaction could write into; point dataset.path at the directory"
                    .into(),
        });
    }
    if !root.is_dir() {
        return Err(Error::NotCompactable {
            path: root.to_path_buf(),
            reason: "a single file is already as compact as it gets; compaction works on a directory of Parquet files"
                .into(),
        });
    }
    Ok(root)
}

/// Plans the compaction of `files` towards files of `target_bytes`.
pub fn plan(files: &DatasetFiles, target_bytes: u64) -> Result<CompactionPlan> {
    let root = compactable_root(files)?;
    let small_below = (target_bytes / 2).max(1);
    let mut by_dir: BTreeMap<PathBuf, Vec<(PathBuf, u64)>> = BTreeMap::new();
    for file in &files.files {
        let size = std::fs::metadata(file).map_err(|e| FsError::new("inspect", file, e))?.len();
        by_dir.entry(caretaker_core::fs::parent_dir(file).to_path_buf()).or_default().push((file.clone(), size));
    }
    let mut groups = Vec::new();
    let mut small_files = 0;
    let mut files_after = 0;
    for (dir, entries) in &by_dir {
        let small: Vec<&(PathBuf, u64)> = entries.iter().filter(|(_, size)| *size < small_below).collect();
        small_files += small.len();
        if small.len() < 2 {
            files_after += entries.len();
            continue;
        }
        let bytes: u64 = small.iter().map(|(_, s)| s).sum();
        let outputs = bytes.div_ceil(target_bytes).max(1) as usize;
        files_after += entries.len() - small.len() + outputs;
        groups.push(PlannedGroup {
            dir: dir.strip_prefix(root).unwrap_or(dir).to_path_buf(),
            files: small.iter().map(|(f, _)| f.clone()).collect(),
            bytes,
            outputs,
        });
    }
    Ok(CompactionPlan {
        dataset: root.to_path_buf(),
        target_bytes,
        files: files.files.len(),
        bytes: files.bytes,
        directories: by_dir.len(),
        small_files,
        groups,
        files_after,
    })
}

/// Finishes what an interrupted compaction of the dataset at `root` left: a pending journal's
/// swap, or staged files no journal names. The caller holds the pipeline's run lock.
pub fn recover(root: &Path) -> Result<Recovery> {
    if !root.is_dir() {
        return Ok(Recovery::default());
    }
    let pending = journal::read(root)?;
    let mut recovery = Recovery::default();
    if let Some(j) = &pending {
        tracing::warn!(compaction = %j.id, "finishing an interrupted compaction");
        recovery.swapped = journal::roll_forward(root, j)?;
        recovery.finished = Some(j.id.clone());
    }
    recovery.orphans_removed = journal::remove_orphans(root, None)?;
    Ok(recovery)
}

/// The rows and content hash of every file of the dataset (a pending journal followed).
pub fn dataset_content(files: &DatasetFiles) -> Result<ContentHash> {
    let mut total = ContentHash::default();
    for file in &files.files {
        total = total + content_hash(&crate::parquet_io::read_parquet(file)?, file)?;
    }
    Ok(total)
}

/// Carries out `plan` on the dataset at `root`, sorting rows by `timestamp`. `id` names the new
/// files (`part-<id>-<k>.parquet`). The caller holds the pipeline's run lock and ran [`recover`].
pub fn compact(root: &Path, plan: &CompactionPlan, timestamp: &str, id: &str) -> Result<CompactionOutcome> {
    let mut staged_groups: Vec<JournalGroup> = Vec::new();
    let result = (|| {
        for group in &plan.groups {
            staged_groups.push(stage_group(root, group, timestamp, id)?);
        }
        Ok(())
    })();
    if let Err(e) = result {
        // Nothing was swapped: the staged files of this attempt go, the dataset is as it was.
        let _ = journal::remove_orphans(root, None);
        return Err(e);
    }
    crash_point("compact:staged");
    let journal = Journal { id: id.to_string(), created_at: chrono::Utc::now(), groups: staged_groups };
    let outcome = CompactionOutcome {
        id: id.to_string(),
        groups: journal.groups.len(),
        files_replaced: journal.groups.iter().map(|g| g.old.len()).sum(),
        files_written: journal.groups.iter().map(|g| g.new.len()).sum(),
        rows: journal.groups.iter().map(|g| g.content.rows).sum(),
    };
    if journal.groups.is_empty() {
        return Ok(outcome);
    }
    journal::write(root, &journal)?;
    crash_point("compact:journal_written");
    journal::roll_forward(root, &journal)?;
    Ok(outcome)
}

/// Reads a group's files, writes their rows sorted by time into the group's new files under
/// staged names, and checks the new files hold exactly the same rows.
fn stage_group(root: &Path, group: &PlannedGroup, timestamp: &str, id: &str) -> Result<JournalGroup> {
    let dir = root.join(&group.dir);
    let mut combined: Option<(PathBuf, DataFrame)> = None;
    let mut expected = ContentHash::default();
    for file in &group.files {
        let df = crate::parquet_io::read_parquet(file)?;
        expected = expected + content_hash(&df, file)?;
        combined = Some(match combined {
            None => (file.clone(), df),
            Some((first, mut all)) => {
                let df = same_columns(&first, &all, file, df)?;
                all.vstack_mut_owned(df).map_err(|e| Error::Read { path: file.clone(), reason: e.to_string() })?;
                (first, all)
            }
        });
    }
    let Some((first, mut rows)) = combined else {
        return Ok(JournalGroup { dir: group.dir.clone(), old: Vec::new(), new: Vec::new(), content: expected });
    };
    if rows.get_column_names().iter().all(|n| n.as_str() != timestamp) {
        return Err(Error::NotCompactable {
            path: first,
            reason: format!(
                "the timestamp column {timestamp:?} (dataset.timestamp) is not in the file, so its rows cannot be sorted by time"
            ),
        });
    }
    rows.sort_in_place([timestamp], SortMultipleOptions::default().with_maintain_order(true))
        .map_err(|e| Error::Column { path: first.clone(), column: timestamp.to_string(), reason: e.to_string() })?;
    rows.rechunk_mut();

    let per_file = rows.height().div_ceil(group.outputs.max(1)).max(1);
    let mut new = Vec::new();
    let mut offset = 0;
    for k in 0..group.outputs {
        if offset >= rows.height() && k > 0 {
            break;
        }
        let name = format!("part-{id}-{k}.parquet");
        let staged = format!("{STAGED_PREFIX}{id}-{k}.parquet");
        if dir.join(&name).exists() {
            return Err(Error::Write {
                path: dir.join(&name),
                reason: "a file of this name exists already; compaction never overwrites one".into(),
            });
        }
        let mut chunk = rows.slice(offset as i64, per_file);
        offset += chunk.height();
        let bytes = write_staged(&mut chunk, &dir.join(&staged))?;
        new.push(NewFile { staged, name, rows: chunk.height() as u64, bytes });
    }
    // Read back from disk what was written: the check is on the files, not on memory.
    let mut found = ContentHash::default();
    for file in &new {
        let path = dir.join(&file.staged);
        found = found + content_hash(&crate::parquet_io::read_parquet(&path)?, &path)?;
    }
    if found != expected {
        return Err(Error::Mismatch { dir, expected: expected.to_string(), found: found.to_string() });
    }
    Ok(JournalGroup {
        dir: group.dir.clone(),
        old: group.files.iter().filter_map(|f| f.file_name().map(|n| n.to_string_lossy().into_owned())).collect(),
        new,
        content: expected,
    })
}

/// `df` with its columns in the order of `all`, or an error naming both files when the two do
/// not hold the same columns with the same types.
fn same_columns(first: &Path, all: &DataFrame, file: &Path, df: DataFrame) -> Result<DataFrame> {
    let describe = |d: &DataFrame| -> BTreeMap<String, String> {
        d.columns().iter().map(|c| (c.name().to_string(), c.dtype().to_string())).collect()
    };
    let (want, have) = (describe(all), describe(&df));
    if want != have {
        let differences: Vec<String> = want
            .iter()
            .filter(|(k, v)| have.get(*k) != Some(v))
            .map(|(k, v)| format!("{k} ({v} in {}, {} here)", first.display(), have.get(k).map_or("absent", |s| s)))
            .chain(have.keys().filter(|k| !want.contains_key(*k)).map(|k| format!("{k} (only here)")))
            .collect();
        return Err(Error::NotCompactable {
            path: file.to_path_buf(),
            reason: format!(
                "its columns differ from the other files of its directory, so their rows cannot share a file: {}",
                differences.join(", ")
            ),
        });
    }
    df.select(all.get_column_names().into_iter().cloned())
        .map_err(|e| Error::Read { path: file.to_path_buf(), reason: e.to_string() })
}

/// Writes a staged file (itself through the atomic-write helper, so it is synced) with row
/// groups small enough for time-window scans to skip. Returns its bytes.
fn write_staged(df: &mut DataFrame, path: &Path) -> Result<u64> {
    caretaker_core::fs::write_atomic_with(path, |file| {
        ParquetWriter::new(file)
            .with_compression(ParquetCompression::Zstd(None))
            .with_statistics(StatisticsOptions::full())
            .with_row_group_size(Some(ROW_GROUP_ROWS))
            .finish(df)
            .map(|_| ())
            .map_err(std::io::Error::other)
    })?;
    Ok(caretaker_core::fs::disk_size(path))
}

#[cfg(test)]
mod tests;
