//! The archive of old valuable patterns: `archive/date=YYYY-MM-DD/part-<hash>.parquet` files (the
//! date is the day they were archived), and `archive/manifest.json` listing each file's rows,
//! bytes and blake3 with a state.
//!
//! The manifest is the archive's journal. An entry is `pending` from the moment its file is
//! safely on disk until the store no longer holds its patterns, then `committed`; it is
//! `restoring` from the moment `patterns restore` decides to bring (some of) its patterns back
//! until the store holds them and the file is gone. Whoever next takes the store's lock finishes
//! what a killed process left (see [`crate::recovery`]). Between commands, the store and the
//! committed files hold every pattern exactly once.

use crate::{Error, Result};
use caretaker_core::config::PatternPolicy;
use caretaker_core::fs::{FsError, write_atomic};
use chrono::{DateTime, NaiveDate, Utc};
use polars::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub const MANIFEST: &str = "manifest.json";

/// With `patterns.archive` in object storage: the bucket's files and manifest copied into the
/// local copy (what runs on other machines archived), before anything reads the manifest; but if
/// the local manifest changed since it was last copied to or from the bucket (a copy that failed,
/// a recovery after a crash), the local copy is the newer and is copied out instead. The caller
/// holds the store's lock.
pub fn pull(policy: &PatternPolicy) -> Result<()> {
    let Some(remote) = &policy.archive_remote else { return Ok(()) };
    let bucket = caretaker_objects::Bucket::open(&remote.url, &remote.storage_options)?;
    let local = std::fs::read(policy.archive.join(MANIFEST)).ok();
    let synced = std::fs::read_to_string(synced_marker(policy)).ok();
    if let Some(local) = &local
        && synced.as_deref() != Some(blake3::hash(local).to_hex().as_str())
    {
        return push_to(&bucket, policy, &remote.url);
    }
    let copied = bucket.download_dir("", &policy.archive, &[MANIFEST])?;
    tracing::debug!(archive = %remote.url, copied, "fetched the pattern archive");
    mark_synced(policy)
}

/// With `patterns.archive` in object storage: the local copy's new files, then its manifest,
/// copied to the bucket (a reader of the bucket never finds the manifest naming a file it does
/// not hold yet), then the files the local copy no longer holds (restored) removed from it. The
/// caller holds the store's lock and pulled under it, so the local copy holds all the bucket did.
pub fn push(policy: &PatternPolicy) -> Result<()> {
    let Some(remote) = &policy.archive_remote else { return Ok(()) };
    let bucket = caretaker_objects::Bucket::open(&remote.url, &remote.storage_options)?;
    push_to(&bucket, policy, &remote.url)
}

fn push_to(bucket: &caretaker_objects::Bucket, policy: &PatternPolicy, url: &str) -> Result<()> {
    let written = bucket.upload_dir(&policy.archive, "", &[MANIFEST], &[MANIFEST])?;
    let mut removed = 0;
    for listed in bucket.list("")? {
        if listed.key != MANIFEST && !policy.archive.join(&listed.key).is_file() {
            bucket.delete(&listed.key)?;
            removed += 1;
        }
    }
    tracing::info!(archive = %url, written, removed, "copied the pattern archive to object storage");
    mark_synced(policy)
}

/// Beside the local copy: the blake3 of the manifest last copied to or from the bucket.
fn synced_marker(policy: &PatternPolicy) -> PathBuf {
    policy.archive.with_extension("synced")
}

fn mark_synced(policy: &PatternPolicy) -> Result<()> {
    let Ok(manifest) = std::fs::read(policy.archive.join(MANIFEST)) else { return Ok(()) };
    write_atomic(&synced_marker(policy), blake3::hash(&manifest).to_hex().as_bytes())?;
    Ok(())
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: u32,
    pub files: Vec<ManifestEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestEntry {
    /// Relative to the archive directory.
    pub path: String,
    pub rows: u64,
    pub bytes: u64,
    pub blake3: String,
    pub archived_at: DateTime<Utc>,
    pub run_id: String,
    pub state: EntryState,
    /// While `restoring`: the ids being brought back; absent means every row of the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_ids: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryState {
    /// The file is written; the store may still hold its patterns.
    Pending,
    /// The store no longer holds its patterns.
    Committed,
    /// Its patterns (all, or `restore_ids`) are going back to the store; the file is about to go.
    Restoring,
}

impl EntryState {
    pub fn name(self) -> &'static str {
        match self {
            EntryState::Pending => "pending",
            EntryState::Committed => "committed",
            EntryState::Restoring => "restoring",
        }
    }
}

impl ManifestEntry {
    /// The day in the file's `date=YYYY-MM-DD` directory.
    pub fn date(&self) -> Option<NaiveDate> {
        partition_date(&self.path)
    }
}

/// Whether a listed path stays inside the archive: relative, not empty, only plain names.
fn inside_archive(relative: &str) -> bool {
    let path = Path::new(relative);
    !relative.is_empty()
        && path.components().all(|c| matches!(c, std::path::Component::Normal(_)))
        && !relative.contains('\\')
}

/// The day of a `date=YYYY-MM-DD/part-*.parquet` path.
pub fn partition_date(relative: &str) -> Option<NaiveDate> {
    let dir = relative.split('/').next()?;
    NaiveDate::parse_from_str(dir.strip_prefix("date=")?, "%Y-%m-%d").ok()
}

impl Manifest {
    /// Reads the manifest. A listed path that leaves the archive (absolute, or with `..`) is
    /// refused: every command joins these paths to the archive directory to read, hash and
    /// delete the files.
    pub fn load(dir: &Path) -> Result<Manifest> {
        let path = dir.join(MANIFEST);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| Error::Invalid {
                    path: path.clone(),
                    reason: format!("not an archive manifest ({e}); nothing was changed: restore it from a backup, or run `caretaker patterns verify`"),
                })?;
                if let Some(e) = manifest.files.iter().find(|e| !inside_archive(&e.path)) {
                    return Err(Error::Invalid {
                        path,
                        reason: format!(
                            "lists {:?}, which is not a path inside the archive (absolute, empty or with `..`); nothing was changed: restore the manifest from a backup",
                            e.path
                        ),
                    });
                }
                Ok(manifest)
            }
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

    /// Before a command changes anything: every listed file is there with its listed size, and
    /// no path is listed twice. A cheap check (no hashing); `patterns verify` does the full one.
    pub fn check_files(&self, dir: &Path) -> Result<()> {
        let mut seen = std::collections::HashSet::new();
        for e in &self.files {
            let path = dir.join(&e.path);
            let invalid = |reason: String| Error::Invalid { path: path.clone(), reason };
            if !seen.insert(e.path.as_str()) {
                return Err(invalid(format!(
                    "listed twice in {}; nothing was changed: run `caretaker patterns verify`",
                    dir.join(MANIFEST).display()
                )));
            }
            match std::fs::metadata(&path) {
                Ok(meta) if meta.len() == e.bytes || e.state == EntryState::Restoring => {}
                Ok(meta) => {
                    return Err(invalid(format!(
                        "is {} bytes but the manifest says {}; nothing was changed: run `caretaker patterns verify`",
                        meta.len(),
                        e.bytes
                    )));
                }
                // A restoring entry's file goes away last: its absence is a step, not damage.
                Err(err) if err.kind() == std::io::ErrorKind::NotFound && e.state == EntryState::Restoring => {}
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                    return Err(invalid(format!(
                        "is listed ({}) in the manifest but missing; nothing was changed: run `caretaker patterns verify`",
                        e.state.name()
                    )));
                }
                Err(err) => return Err(FsError::new("read", path, err).into()),
            }
        }
        Ok(())
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

/// Where an archive file holding `ids` for `day` goes: the name depends only on the day and the
/// patterns, so a rerun after a crash rewrites the same file instead of adding a second copy.
pub fn part_path(day: NaiveDate, ids: &[String]) -> String {
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

/// The pattern ids of an archive file (only that column is read).
pub fn file_ids(path: &Path) -> Result<Vec<String>> {
    let read = || -> PolarsResult<Vec<String>> {
        let file = std::fs::File::open(path).map_err(|e| polars_err!(ComputeError: "{e}"))?;
        let df = ParquetReader::new(file).with_columns(Some(vec!["pattern_id".into()])).finish()?;
        crate::store::ids(&df)
    };
    read().map_err(|e| caretaker_data::Error::Read { path: path.to_path_buf(), reason: e.to_string() }.into())
}

/// Rows of an archive file from its Parquet footer.
pub fn file_rows(path: &Path) -> Result<u64> {
    let read = || -> PolarsResult<u64> {
        let file = std::fs::File::open(path).map_err(|e| polars_err!(ComputeError: "{e}"))?;
        Ok(ParquetReader::new(file).num_rows()? as u64)
    };
    read().map_err(|e| caretaker_data::Error::Read { path: path.to_path_buf(), reason: e.to_string() }.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_paths_depend_on_day_and_ids_only() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 28).unwrap();
        let ids = vec!["a".to_string(), "b".to_string()];
        assert_eq!(part_path(day, &ids), part_path(day, &ids));
        assert_ne!(part_path(day, &ids), part_path(day, &ids[..1]));
        assert!(part_path(day, &ids).starts_with("date=2026-11-28/part-"));
        assert_eq!(partition_date(&part_path(day, &ids)), Some(day));
        assert_eq!(partition_date("elsewhere/part-x.parquet"), None);
    }

    #[test]
    fn a_manifest_that_is_not_json_is_refused_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(MANIFEST), "{ not json").unwrap();
        let err = Manifest::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("manifest.json") && err.contains("not an archive manifest"), "{err}");
    }

    #[test]
    fn a_manifest_path_that_leaves_the_archive_is_refused_and_nothing_is_touched() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("archive");
        std::fs::create_dir_all(&dir).unwrap();
        let outside = root.path().join("precious.parquet");
        std::fs::write(&outside, b"not the archive's").unwrap();
        let good = "date=2026-11-28/part-00.parquet";
        for bad in [
            "../precious.parquet",
            "date=2026-11-28/../../precious.parquet",
            "/etc/passwd",
            "",
            "date=2026-11-28\\..\\x",
        ] {
            let files: Vec<serde_json::Value> = [good, bad]
                .iter()
                .map(|p| {
                    serde_json::json!({
                        "path": p, "rows": 1, "bytes": 17, "blake3": "x", "archived_at": "2026-11-28T02:00:00Z",
                        "run_id": "r", "state": "committed"
                    })
                })
                .collect();
            let manifest = serde_json::json!({ "format": 1, "files": files });
            std::fs::write(dir.join(MANIFEST), manifest.to_string()).unwrap();
            let err = Manifest::load(&dir).unwrap_err().to_string();
            assert!(err.contains("manifest.json") && err.contains(&format!("{bad:?}")), "{bad}: {err}");
            assert!(err.contains("not a path inside the archive"), "{err}");
        }
        assert_eq!(std::fs::read(&outside).unwrap(), b"not the archive's");
    }
}
