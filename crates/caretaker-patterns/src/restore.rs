//! `patterns restore`: bringing archived patterns back into the store.
//!
//! A restored pattern leaves the archive: a file whose patterns all come back is removed, a file
//! that keeps some is replaced by a new file holding only those. The steps, each survivable:
//!
//! 1. write and sync the remainder files (unlisted: a crash leaves an orphan whose patterns are
//!    all in the file it was cut from, which recovery removes);
//! 2. in one manifest write, list the remainders as committed and mark the source files
//!    `restoring` (with the ids coming back when not all of them);
//! 3. rewrite the store with the restored patterns (status `restored`), atomically;
//! 4. remove the source files;
//! 5. drop their entries from the manifest.
//!
//! After a crash at any step, the next command that takes the store's lock finishes steps 3-5
//! (see [`crate::recovery`]); store + archive never hold a pattern twice once a command has
//! completed.

use crate::archive::{self, EntryState, Manifest, ManifestEntry};
use crate::recovery::{self, polars_error};
use crate::{Error, Result, store};
use caretaker_core::config::PatternPolicy;
use caretaker_core::crash_point;
use caretaker_core::fs::{FsError, disk_size, file_blake3};
use chrono::{DateTime, NaiveDate, Utc};
use polars::prelude::*;
use serde::Serialize;
use std::collections::{BTreeSet, HashSet};
use std::path::Path;

/// Which archived patterns to bring back.
#[derive(Debug, Clone, PartialEq)]
pub enum Selection {
    /// Every pattern archived on this day or later.
    Since(NaiveDate),
    /// These patterns.
    Ids(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RestoreReport {
    pub dry_run: bool,
    /// Patterns brought back (or that would be).
    pub restored: u64,
    /// Requested ids the store already holds (restored before): nothing to do for them.
    pub already_in_store: Vec<String>,
    /// Archive files removed because all their patterns came back.
    pub files_removed: Vec<String>,
    /// Archive files replaced by a smaller one holding the patterns that stay archived.
    pub files_rewritten: Vec<String>,
    pub store_bytes_before: u64,
    pub store_bytes_after: u64,
    pub archive_bytes_before: u64,
    pub archive_bytes_after: u64,
}

/// Archive rows as store rows: without `archived_at`, with status `restored`, in the store's
/// columns. `wanted` keeps only those ids.
pub(crate) fn as_store_rows(df: DataFrame, wanted: Option<&HashSet<String>>, path: &Path) -> Result<DataFrame> {
    let err = polars_error(path);
    let mut df = match wanted {
        Some(wanted) => {
            let ids = store::ids(&df).map_err(&err)?;
            let mask: BooleanChunked = ids.iter().map(|id| wanted.contains(id)).collect();
            df.filter(&mask).map_err(&err)?
        }
        None => df,
    };
    if df.get_column_index("archived_at").is_some() {
        df = df.drop("archived_at").map_err(&err)?;
    }
    let status = Column::new("status".into(), vec![store::RESTORED; df.height()]);
    df.with_column(status).map_err(&err)?;
    store::canonical(df, path)
}

/// Restores the selected patterns (or, with `dry_run`, says what it would restore).
pub fn run(policy: &PatternPolicy, selection: &Selection, now: DateTime<Utc>, dry_run: bool) -> Result<RestoreReport> {
    if let Selection::Since(day) = selection
        && *day > now.date_naive()
    {
        return Err(Error::Request {
            reason: format!(
                "--since {day} is in the future (today is {}): no pattern can have been archived then",
                now.date_naive()
            ),
        });
    }
    if let Selection::Ids(ids) = selection
        && ids.is_empty()
    {
        return Err(Error::Request { reason: "name at least one pattern id".into() });
    }
    let lock = recovery::lock(policy)?;
    if !dry_run {
        recovery::reconcile(policy, &lock)?;
    }
    let dir = &policy.archive;
    let mut manifest = Manifest::load(dir)?;
    manifest.check_files(dir)?;
    // Read (and check) the store before anything changes: a store that cannot take whole rows
    // back must stop the restore here, not after the archive was cut.
    let current = store::read_canonical(&policy.store)?;
    let in_store: HashSet<String> = store::ids(&current).map_err(polars_error(&policy.store))?.into_iter().collect();
    let mut report = RestoreReport {
        dry_run,
        restored: 0,
        already_in_store: Vec::new(),
        files_removed: Vec::new(),
        files_rewritten: Vec::new(),
        store_bytes_before: disk_size(&policy.store),
        store_bytes_after: disk_size(&policy.store),
        archive_bytes_before: disk_size(dir),
        archive_bytes_after: disk_size(dir),
    };

    // Which rows of which committed file come back.
    struct Cut {
        rel: String,
        all: bool,
        ids: HashSet<String>,
    }
    let mut cuts: Vec<Cut> = Vec::new();
    match selection {
        Selection::Since(day) => {
            for e in manifest.files.iter().filter(|e| e.state == EntryState::Committed) {
                if e.date().is_some_and(|d| d >= *day) {
                    let ids = archive::file_ids(&archive::absolute(dir, &e.path))?;
                    cuts.push(Cut { rel: e.path.clone(), all: true, ids: ids.into_iter().collect() });
                }
            }
        }
        Selection::Ids(wanted) => {
            let wanted: BTreeSet<&String> = wanted.iter().collect();
            let mut found = HashSet::new();
            for e in manifest.files.iter().filter(|e| e.state == EntryState::Committed) {
                let ids = archive::file_ids(&archive::absolute(dir, &e.path))?;
                let hits: HashSet<String> = ids.iter().filter(|id| wanted.contains(id)).cloned().collect();
                if !hits.is_empty() {
                    found.extend(hits.iter().cloned());
                    cuts.push(Cut { rel: e.path.clone(), all: hits.len() == ids.len(), ids: hits });
                }
            }
            let mut unknown = Vec::new();
            for id in wanted {
                if found.contains(id) {
                    continue;
                }
                if in_store.contains(id) {
                    report.already_in_store.push(id.clone());
                } else {
                    unknown.push(id.as_str());
                }
            }
            if !unknown.is_empty() {
                return Err(Error::Request {
                    reason: format!(
                        "no archived pattern has id {}, and the store {} does not hold it either; nothing was changed",
                        unknown.join(", "),
                        policy.store.display()
                    ),
                });
            }
        }
    }
    report.restored = cuts.iter().map(|c| c.ids.len() as u64).sum();
    if cuts.is_empty() {
        return Ok(report);
    }

    // Check every source against its manifest entry, and cut the remainders (not yet listed).
    let mut restored_rows = Vec::new();
    let mut remainders: Vec<ManifestEntry> = Vec::new();
    for cut in &cuts {
        let path = archive::absolute(dir, &cut.rel);
        let entry = manifest.files.iter().find(|e| e.path == cut.rel).expect("cuts come from the manifest");
        let hash = file_blake3(&path)?;
        if hash != entry.blake3 {
            return Err(Error::Invalid {
                path,
                reason: format!(
                    "blake3 {hash} differs from the manifest's {}: the file changed since it was archived; nothing was changed: run `caretaker patterns verify`",
                    entry.blake3
                ),
            });
        }
        let df = caretaker_data::parquet_io::read_parquet(&path)?;
        let ids = store::ids(&df).map_err(polars_error(&path))?;
        restored_rows.push(as_store_rows(df.clone(), Some(&cut.ids), &path)?);
        if cut.all {
            report.files_removed.push(cut.rel.clone());
            continue;
        }
        report.files_rewritten.push(cut.rel.clone());
        if dry_run {
            continue;
        }
        let stay: BooleanChunked = ids.iter().map(|id| !cut.ids.contains(id)).collect();
        let mut rest = df.filter(&stay).map_err(polars_error(&path))?;
        let rest_ids = store::ids(&rest).map_err(polars_error(&path))?;
        let day = entry.date().unwrap_or_else(|| entry.archived_at.date_naive());
        let rel = archive::part_path(day, &rest_ids);
        let rest_path = archive::absolute(dir, &rel);
        let bytes = caretaker_data::parquet_io::write_parquet_atomic(&mut rest, &rest_path)?;
        remainders.push(ManifestEntry {
            path: rel,
            rows: rest.height() as u64,
            bytes,
            blake3: file_blake3(&rest_path)?,
            archived_at: entry.archived_at,
            run_id: entry.run_id.clone(),
            state: EntryState::Committed,
            restore_ids: None,
        });
    }
    if dry_run {
        return Ok(report);
    }
    crash_point("patterns:restore_remainders_written");

    for cut in &cuts {
        let e = manifest.entry_mut(&cut.rel).expect("cuts come from the manifest");
        e.state = EntryState::Restoring;
        e.restore_ids = (!cut.all).then(|| {
            let mut ids: Vec<String> = cut.ids.iter().cloned().collect();
            ids.sort();
            ids
        });
    }
    manifest.files.extend(remainders);
    manifest.save(dir)?;
    crash_point("patterns:restore_marked");

    let mut next = current;
    for rows in restored_rows {
        let ids = store::ids(&rows).map_err(polars_error(&policy.store))?;
        let missing: BooleanChunked = ids.iter().map(|id| !in_store.contains(id)).collect();
        next.vstack_mut(&rows.filter(&missing).map_err(polars_error(&policy.store))?)
            .map_err(polars_error(&policy.store))?;
    }
    store::write(&mut next, &policy.store)?;
    crash_point("patterns:restore_store_written");

    for cut in &cuts {
        let path = archive::absolute(dir, &cut.rel);
        match std::fs::remove_file(&path) {
            Ok(()) => recovery::remove_empty_parent(&path, dir),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(FsError::new("remove", &path, e).into()),
        }
    }
    caretaker_core::fs::sync_dir(dir).ok();
    crash_point("patterns:restore_files_removed");

    manifest.files.retain(|e| e.state != EntryState::Restoring);
    manifest.save(dir)?;
    archive::push(policy)?;
    drop(lock);
    report.store_bytes_after = disk_size(&policy.store);
    report.archive_bytes_after = disk_size(dir);
    Ok(report)
}
