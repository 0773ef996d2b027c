//! Finishing what a killed process left: run by every command that changes the store or the
//! archive, under the store's lock, before it does its own work.
//!
//! - An archive file no manifest entry lists is the first step of an interrupted cleanup (its
//!   patterns are still in the store) or restore (its patterns are still in the file it was cut
//!   from). It is removed only when every pattern in it is held elsewhere; otherwise the command
//!   stops, naming the file, and changes nothing.
//! - A `pending` entry's patterns are dropped from the store, and the entry committed.
//! - A `restoring` entry's patterns are added to the store where missing, then its file removed
//!   and the entry dropped.
//!
//! Each step is idempotent, so a crash during recovery is recovered by the next command too.

use crate::archive::{self, EntryState, Manifest};
use crate::{Error, Result, restore, store};
use caretaker_core::config::PatternPolicy;
use caretaker_core::crash_point;
use caretaker_core::fs::FsError;
use caretaker_core::lock::ProcessLock;
use polars::prelude::*;
use std::collections::HashSet;
use std::path::Path;

/// Takes the store's lock (`.patterns.lock` beside the store), or says who holds it, and removes
/// the temporary files a writer killed mid-write left in the archive (every writer there holds
/// this lock) and beside the store (once a minute old: that directory may be shared).
pub fn lock(policy: &PatternPolicy) -> Result<ProcessLock> {
    let dir = caretaker_core::fs::parent_dir(&policy.store);
    let lock =
        ProcessLock::acquire(&dir.join(".patterns.lock"), &format!("the pattern store {}", policy.store.display()))?;
    // The store's directory may be shared (`state/`): there, only what is a minute old.
    let mut dirs = vec![
        (dir.to_path_buf(), std::time::Duration::from_secs(60)),
        (policy.archive.clone(), std::time::Duration::ZERO),
    ];
    if let Ok(days) = std::fs::read_dir(&policy.archive) {
        dirs.extend(
            days.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| (e.path(), std::time::Duration::ZERO)),
        );
    }
    for (dir, min_age) in dirs {
        for path in caretaker_core::fs::sweep_temp_files(&dir, min_age) {
            tracing::warn!("removed {}, left by a process killed mid-write", path.display());
        }
    }
    // An archive in object storage: the local copy brought up to date before anyone reads it.
    crate::archive::pull(policy)?;
    Ok(lock)
}

pub(crate) fn polars_error(path: &Path) -> impl Fn(PolarsError) -> Error + '_ {
    move |e| caretaker_data::Error::Read { path: path.to_path_buf(), reason: e.to_string() }.into()
}

/// What recovery found and finished.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recovered {
    pub orphans_removed: Vec<String>,
    pub pending_committed: Vec<String>,
    pub restores_finished: Vec<String>,
}

impl Recovered {
    pub fn is_empty(&self) -> bool {
        self.orphans_removed.is_empty() && self.pending_committed.is_empty() && self.restores_finished.is_empty()
    }
}

/// Finishes interrupted cleanups and restores. Needs the store's lock.
pub fn reconcile(policy: &PatternPolicy, _lock: &ProcessLock) -> Result<Recovered> {
    let dir = &policy.archive;
    let mut manifest = Manifest::load(dir)?;
    manifest.check_files(dir)?;
    let mut recovered = Recovered::default();

    let listed: HashSet<&str> = manifest.files.iter().map(|e| e.path.as_str()).collect();
    let orphans: Vec<String> = archive::part_files(dir)?.into_iter().filter(|p| !listed.contains(p.as_str())).collect();
    if !orphans.is_empty() {
        let mut held: HashSet<String> =
            store::ids(&store::read(&policy.store)?).map_err(polars_error(&policy.store))?.into_iter().collect();
        for e in &manifest.files {
            let path = archive::absolute(dir, &e.path);
            if path.exists() {
                held.extend(archive::file_ids(&path)?);
            }
        }
        for orphan in &orphans {
            let path = archive::absolute(dir, orphan);
            let ids = archive::file_ids(&path)?;
            let alone = ids.iter().filter(|id| !held.contains(*id)).count();
            if alone > 0 {
                return Err(Error::Invalid {
                    path,
                    reason: format!(
                        "this archive file is not in {} and holds {alone} pattern(s) found nowhere else; nothing was changed: add it back to the manifest or move it away, then run `caretaker patterns verify`",
                        dir.join(archive::MANIFEST).display()
                    ),
                });
            }
        }
        for orphan in orphans {
            let path = archive::absolute(dir, &orphan);
            tracing::warn!(file = %path.display(), "removing an archive file left by an interrupted command (its patterns are held elsewhere)");
            std::fs::remove_file(&path).map_err(|e| FsError::new("remove", &path, e))?;
            remove_empty_parent(&path, dir);
            recovered.orphans_removed.push(orphan);
        }
    }

    let pending: Vec<String> =
        manifest.files.iter().filter(|e| e.state == EntryState::Pending).map(|e| e.path.clone()).collect();
    let restoring: Vec<(String, Option<Vec<String>>)> = manifest
        .files
        .iter()
        .filter(|e| e.state == EntryState::Restoring)
        .map(|e| (e.path.clone(), e.restore_ids.clone()))
        .collect();
    if pending.is_empty() && restoring.is_empty() {
        return Ok(recovered);
    }

    // One store rewrite for everything: drop the pending files' patterns, add the restoring ones.
    let mut archived = HashSet::new();
    for rel in &pending {
        archived.extend(archive::file_ids(&archive::absolute(dir, rel))?);
    }
    let mut coming_back: Vec<DataFrame> = Vec::new();
    for (rel, ids) in &restoring {
        let path = archive::absolute(dir, rel);
        if path.exists() {
            let df = caretaker_data::parquet_io::read_parquet(&path)?;
            let wanted: Option<HashSet<String>> = ids.as_ref().map(|v| v.iter().cloned().collect());
            coming_back.push(restore::as_store_rows(df, wanted.as_ref(), &path)?);
        }
    }
    let df = if coming_back.is_empty() { store::read(&policy.store)? } else { store::read_canonical(&policy.store)? };
    let ids = store::ids(&df).map_err(polars_error(&policy.store))?;
    let keep: BooleanChunked = ids.iter().map(|id| !archived.contains(id)).collect();
    let mut next = df.filter(&keep).map_err(polars_error(&policy.store))?;
    let mut changed = next.height() != df.height();
    if !coming_back.is_empty() {
        let present: HashSet<&String> = ids.iter().collect();
        for rows in coming_back {
            let row_ids = store::ids(&rows).map_err(polars_error(&policy.store))?;
            let missing: BooleanChunked = row_ids.iter().map(|id| !present.contains(id)).collect();
            let missing = rows.filter(&missing).map_err(polars_error(&policy.store))?;
            if missing.height() > 0 {
                next.vstack_mut(&missing).map_err(polars_error(&policy.store))?;
                changed = true;
            }
        }
    }
    if changed {
        tracing::warn!(
            dropped = df.height() - keep.sum().unwrap_or(0) as usize,
            store = %policy.store.display(),
            "finishing an interrupted cleanup or restore: rewriting the store"
        );
        store::write(&mut next, &policy.store)?;
    }
    crash_point("patterns:recovery_store_written");
    for (rel, _) in &restoring {
        let path = archive::absolute(dir, rel);
        match std::fs::remove_file(&path) {
            Ok(()) => remove_empty_parent(&path, dir),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(FsError::new("remove", &path, e).into()),
        }
    }
    caretaker_core::fs::sync_dir(dir).ok();
    crash_point("patterns:recovery_files_removed");
    manifest.files.retain(|e| e.state != EntryState::Restoring);
    for e in &mut manifest.files {
        if e.state == EntryState::Pending {
            e.state = EntryState::Committed;
        }
    }
    manifest.save(dir)?;
    recovered.pending_committed = pending;
    recovered.restores_finished = restoring.into_iter().map(|(p, _)| p).collect();
    Ok(recovered)
}

/// Removes a `date=...` directory left empty, best effort.
pub(crate) fn remove_empty_parent(file: &Path, archive_dir: &Path) {
    if let Some(parent) = file.parent()
        && parent != archive_dir
        && std::fs::remove_dir(parent).is_ok()
    {
        caretaker_core::fs::sync_dir(archive_dir).ok();
    }
}
