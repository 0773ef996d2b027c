//! `patterns verify`: the manifest against the files, and the store against the archive.
//!
//! Read-only: it reports and repairs nothing. A finding is something a user must look at (a
//! missing, extra, resized or altered file, a wrong row count, a pattern held twice, a date in the
//! future, an interrupted command); the command exits 1 when there is one.

use crate::archive::{self, EntryState, Manifest};
use crate::{Result, recovery, store};
use caretaker_core::config::PatternPolicy;
use caretaker_core::fs::file_blake3;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::{HashMap, HashSet};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// Listed in the manifest, not on disk.
    MissingFile,
    /// On disk under the archive, not listed.
    ExtraFile,
    /// Listed more than once.
    DuplicateEntry,
    /// Size on disk differs from the manifest.
    BytesMismatch,
    /// blake3 differs from the manifest.
    HashMismatch,
    /// Rows in the Parquet footer differ from the manifest.
    RowCountMismatch,
    /// The file cannot be read as Parquet.
    UnreadableFile,
    /// A pending or restoring entry: a command was interrupted; the next cleanup or restore
    /// finishes it.
    Unfinished,
    /// A partition date, an archive time or a pattern's creation time after now.
    FutureDate,
    /// A pattern id in two archive files.
    ArchivedTwice,
    /// A pattern id in the store and in the archive.
    InStoreAndArchive,
    /// A pattern id twice in the store.
    DuplicateInStore,
    /// The store cannot be read as a pattern store.
    UnreadableStore,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub kind: FindingKind,
    /// The file concerned, relative to the archive directory (or the store's path).
    pub path: String,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerifyReport {
    pub archive: String,
    pub store: String,
    pub files_listed: u64,
    pub files_checked: u64,
    pub rows_listed: u64,
    pub store_rows: Option<u64>,
    pub findings: Vec<Finding>,
}

impl VerifyReport {
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }
}

/// Checks every listed file (exists, bytes, blake3, row count, date), looks for unlisted files,
/// and for patterns held twice across the store and the archive.
pub fn verify(policy: &PatternPolicy, now: DateTime<Utc>) -> Result<VerifyReport> {
    let _lock = recovery::lock(policy)?;
    let dir = &policy.archive;
    let manifest = Manifest::load(dir)?;
    let mut report = VerifyReport {
        archive: dir.display().to_string(),
        store: policy.store.display().to_string(),
        files_listed: manifest.files.len() as u64,
        files_checked: 0,
        rows_listed: manifest.files.iter().map(|e| e.rows).sum(),
        store_rows: None,
        findings: Vec::new(),
    };
    let mut find = |kind, path: &str, detail: String| {
        report.findings.push(Finding { kind, path: path.to_string(), detail });
    };

    let mut listed = HashSet::new();
    // Where each archived id lives, for ids held twice.
    let mut home: HashMap<String, String> = HashMap::new();
    let mut files_checked = 0;
    for e in &manifest.files {
        if !listed.insert(e.path.as_str()) {
            find(FindingKind::DuplicateEntry, &e.path, "listed more than once in the manifest".into());
            continue;
        }
        if e.state != EntryState::Committed {
            find(
                FindingKind::Unfinished,
                &e.path,
                format!(
                    "state {}: a cleanup or restore was interrupted; the next `patterns cleanup` or `patterns restore` finishes it",
                    e.state.name()
                ),
            );
        }
        match e.date() {
            Some(day) if day > now.date_naive() => find(
                FindingKind::FutureDate,
                &e.path,
                format!("partition date {day} is after today ({})", now.date_naive()),
            ),
            Some(_) => {}
            None => find(FindingKind::ExtraFile, &e.path, "not under a date=YYYY-MM-DD directory".into()),
        }
        if e.archived_at > now {
            find(FindingKind::FutureDate, &e.path, format!("archived_at {} is after now ({now})", e.archived_at));
        }
        let path = archive::absolute(dir, &e.path);
        let Ok(meta) = std::fs::metadata(&path) else {
            if e.state != EntryState::Restoring {
                find(FindingKind::MissingFile, &e.path, format!("listed ({}) but not on disk", e.state.name()));
            }
            continue;
        };
        files_checked += 1;
        if meta.len() != e.bytes {
            find(
                FindingKind::BytesMismatch,
                &e.path,
                format!("{} bytes on disk, {} in the manifest", meta.len(), e.bytes),
            );
        }
        match file_blake3(&path) {
            Ok(hash) if hash != e.blake3 => {
                find(FindingKind::HashMismatch, &e.path, format!("blake3 {hash} on disk, {} in the manifest", e.blake3))
            }
            Ok(_) => {}
            Err(err) => find(FindingKind::UnreadableFile, &e.path, err.to_string()),
        }
        match archive::file_rows(&path) {
            Ok(rows) if rows != e.rows => find(
                FindingKind::RowCountMismatch,
                &e.path,
                format!("{rows} rows in the file, {} in the manifest", e.rows),
            ),
            Ok(_) => {}
            Err(err) => {
                find(FindingKind::UnreadableFile, &e.path, err.to_string());
                continue;
            }
        }
        if e.state == EntryState::Committed {
            match archive::file_ids(&path) {
                Ok(ids) => {
                    for id in ids {
                        if let Some(other) = home.insert(id.clone(), e.path.clone()) {
                            find(FindingKind::ArchivedTwice, &e.path, format!("pattern {id} is also in {other}"));
                        }
                    }
                }
                Err(err) => find(FindingKind::UnreadableFile, &e.path, err.to_string()),
            }
        }
    }
    for extra in archive::part_files(dir)?.into_iter().filter(|p| !listed.contains(p.as_str())) {
        find(FindingKind::ExtraFile, &extra, "on disk but not listed in the manifest".into());
    }

    let store_path = policy.store.display().to_string();
    match store::read(&policy.store) {
        Err(err) => find(FindingKind::UnreadableStore, &store_path, err.to_string()),
        Ok(df) => {
            report.store_rows = Some(df.height() as u64);
            match store::ids(&df) {
                Ok(ids) => {
                    let mut seen = HashSet::new();
                    for id in &ids {
                        if !seen.insert(id) {
                            find(
                                FindingKind::DuplicateInStore,
                                &store_path,
                                format!("pattern {id} is in the store twice"),
                            );
                        }
                        if let Some(file) = home.get(id) {
                            find(
                                FindingKind::InStoreAndArchive,
                                &store_path,
                                format!("pattern {id} is also archived in {file}"),
                            );
                        }
                    }
                }
                Err(err) => find(FindingKind::UnreadableStore, &store_path, err.to_string()),
            }
            let future = df
                .column("created_at")
                .and_then(|c| c.cast(&polars::prelude::DataType::Int64))
                .and_then(|c| Ok(c.i64()?.iter().flatten().filter(|t| *t > now.timestamp_micros()).count()));
            if let Ok(n) = future
                && n > 0
            {
                find(
                    FindingKind::FutureDate,
                    &store_path,
                    format!("{n} pattern(s) created after now ({now}); cleanup keeps them"),
                );
            }
        }
    }
    report.files_checked = files_checked;
    Ok(report)
}
