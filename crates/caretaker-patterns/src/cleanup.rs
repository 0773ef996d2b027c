//! The retention policy: delete old useless patterns, archive old valuable ones, keep the rest.
//!
//! A pattern is old when it was created more than `retention_days` before now. Old patterns used
//! fewer than `delete_below_usage` times with a confidence below `delete_below_confidence` are
//! deleted; old patterns with a confidence above `archive_above_confidence` are archived; every
//! other pattern stays. Bytes are measured from the files before and after, not estimated.

use crate::archive::{self, EntryState, Manifest, ManifestEntry};
use crate::{Result, store};
use caretaker_core::config::PatternPolicy;
use caretaker_core::crash_point;
use caretaker_core::fs::{FsError, disk_size, file_blake3};
use caretaker_core::lock::ProcessLock;
use caretaker_core::report::PatternsReport;
use chrono::{DateTime, Duration, Utc};
use polars::prelude::*;
use std::collections::HashSet;

/// What cleanup would do, without doing it.
#[derive(Debug, Clone, PartialEq)]
pub struct CleanupPlan {
    pub before: u64,
    pub delete: u64,
    pub archive: u64,
    pub keep: u64,
    pub store_bytes: u64,
    /// Patterns created after now: kept, and reported, because a clock or a writer is wrong.
    pub created_in_future: u64,
}

struct Split {
    delete: BooleanChunked,
    archive: BooleanChunked,
    future: u64,
}

fn split(df: &DataFrame, policy: &PatternPolicy, now: DateTime<Utc>) -> PolarsResult<Split> {
    let cutoff = (now - Duration::days(policy.retention_days as i64)).timestamp_micros();
    let created = col("created_at").cast(DataType::Int64);
    let old = created.clone().lt(lit(cutoff));
    let delete = old
        .clone()
        .and(col("usage_count").cast(DataType::Int64).lt(lit(policy.delete_below_usage as i64)))
        .and(col("confidence").lt(lit(policy.delete_below_confidence)));
    let archive = old.and(col("confidence").gt(lit(policy.archive_above_confidence))).and(delete.clone().not());
    let masks = df
        .clone()
        .lazy()
        .select([
            delete.fill_null(lit(false)).alias("delete"),
            archive.fill_null(lit(false)).alias("archive"),
            created.gt(lit(now.timestamp_micros())).fill_null(lit(false)).alias("future"),
        ])
        .collect()?;
    let mask = |name: &str| -> PolarsResult<BooleanChunked> { Ok(masks.column(name)?.bool()?.clone()) };
    Ok(Split { delete: mask("delete")?, archive: mask("archive")?, future: mask("future")?.sum().unwrap_or(0) as u64 })
}

fn lock(policy: &PatternPolicy) -> Result<ProcessLock> {
    let path = caretaker_core::fs::parent_dir(&policy.store).join(".patterns.lock");
    Ok(ProcessLock::acquire(&path, &format!("the pattern store {}", policy.store.display()))?)
}

fn polars_error(policy: &PatternPolicy) -> impl Fn(PolarsError) -> crate::Error + '_ {
    move |e| caretaker_data::Error::Read { path: policy.store.clone(), reason: e.to_string() }.into()
}

/// What cleanup would do now.
pub fn plan(policy: &PatternPolicy, now: DateTime<Utc>) -> Result<CleanupPlan> {
    let df = store::read(&policy.store)?;
    let s = split(&df, policy, now).map_err(polars_error(policy))?;
    let delete = s.delete.sum().unwrap_or(0) as u64;
    let archive = s.archive.sum().unwrap_or(0) as u64;
    let before = df.height() as u64;
    Ok(CleanupPlan {
        before,
        delete,
        archive,
        keep: before - delete - archive,
        store_bytes: disk_size(&policy.store),
        created_in_future: s.future,
    })
}

/// Finishes an interrupted cleanup: drops from the store the patterns of pending archive files,
/// and removes archive files the manifest does not list. Needs the store's lock.
fn reconcile(policy: &PatternPolicy, _lock: &ProcessLock) -> Result<()> {
    let dir = &policy.archive;
    let mut manifest = Manifest::load(dir)?;
    let listed: HashSet<&str> = manifest.files.iter().map(|e| e.path.as_str()).collect();
    for orphan in archive::part_files(dir)?.into_iter().filter(|p| !listed.contains(p.as_str())) {
        let path = archive::absolute(dir, &orphan);
        tracing::warn!(file = %path.display(), "removing an archive file no manifest entry lists (an interrupted cleanup; its patterns are still in the store)");
        std::fs::remove_file(&path).map_err(|e| FsError::new("remove", &path, e))?;
    }
    let pending: Vec<String> =
        manifest.files.iter().filter(|e| e.state == EntryState::Pending).map(|e| e.path.clone()).collect();
    if pending.is_empty() {
        return Ok(());
    }
    let mut archived = HashSet::new();
    for rel in &pending {
        let df = caretaker_data::parquet_io::read_parquet(&archive::absolute(dir, rel))?;
        archived.extend(store::ids(&df).map_err(polars_error(policy))?);
    }
    let df = store::read(&policy.store)?;
    let ids = store::ids(&df).map_err(polars_error(policy))?;
    let keep: BooleanChunked = ids.iter().map(|id| !archived.contains(id)).collect();
    if keep.sum().unwrap_or(0) as usize != df.height() {
        let mut kept = df.filter(&keep).map_err(polars_error(policy))?;
        tracing::warn!(
            patterns = df.height() - kept.height(),
            "finishing an interrupted cleanup: removing already archived patterns from the store"
        );
        store::write(&mut kept, &policy.store)?;
    }
    for rel in &pending {
        if let Some(e) = manifest.entry_mut(rel) {
            e.state = EntryState::Committed;
        }
    }
    manifest.save(dir)?;
    Ok(())
}

/// Applies the policy: archive first (written, synced, listed as pending), then the store
/// (replaced atomically), then the manifest entry committed.
pub fn run(policy: &PatternPolicy, now: DateTime<Utc>, run_id: &str) -> Result<PatternsReport> {
    let lock = lock(policy)?;
    reconcile(policy, &lock)?;
    let df = store::read(&policy.store)?;
    let before = df.height() as u64;
    let store_bytes_before = disk_size(&policy.store);
    let s = split(&df, policy, now).map_err(polars_error(policy))?;
    if s.future > 0 {
        tracing::warn!(patterns = s.future, store = %policy.store.display(), "patterns created in the future: kept, check the clock of whoever wrote them");
    }
    let (deleted, archived) = (s.delete.sum().unwrap_or(0) as u64, s.archive.sum().unwrap_or(0) as u64);
    let mut report = PatternsReport {
        store: policy.store.display().to_string(),
        before,
        deleted,
        archived,
        kept: before - deleted - archived,
        store_bytes_before,
        store_bytes_after: store_bytes_before,
        archive_bytes_written: 0,
        archive_files: Vec::new(),
    };
    if deleted == 0 && archived == 0 {
        return Ok(report);
    }

    let mut manifest = Manifest::load(&policy.archive)?;
    let mut archive_entry = None;
    if archived > 0 {
        let mut rows = df.filter(&s.archive).map_err(polars_error(policy))?;
        let ids = store::ids(&rows).map_err(polars_error(policy))?;
        let rel = archive::part_path(now, &ids);
        let path = archive::absolute(&policy.archive, &rel);
        let stamp = Series::new("archived_at".into(), vec![now.timestamp_micros(); rows.height()])
            .cast(&DataType::Datetime(TimeUnit::Microseconds, None))
            .map_err(polars_error(policy))?;
        rows.with_column(stamp.into_column()).map_err(polars_error(policy))?;
        let bytes = caretaker_data::parquet_io::write_parquet_atomic(&mut rows, &path)?;
        crash_point("patterns:archive_written");
        manifest.files.retain(|e| e.path != rel);
        manifest.files.push(ManifestEntry {
            path: rel.clone(),
            rows: archived,
            bytes,
            blake3: file_blake3(&path)?,
            archived_at: now,
            run_id: run_id.to_string(),
            state: EntryState::Pending,
        });
        manifest.save(&policy.archive)?;
        crash_point("patterns:manifest_pending");
        report.archive_bytes_written = bytes;
        report.archive_files.push(path.display().to_string());
        archive_entry = Some(rel);
    }

    let keep = !(&s.delete | &s.archive);
    let mut kept = df.filter(&keep).map_err(polars_error(policy))?;
    store::write(&mut kept, &policy.store)?;
    crash_point("patterns:store_written");
    report.store_bytes_after = disk_size(&policy.store);

    if let Some(rel) = archive_entry {
        if let Some(e) = manifest.entry_mut(&rel) {
            e.state = EntryState::Committed;
        }
        manifest.save(&policy.archive)?;
    }
    drop(lock);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::example::{Condition, Pattern, frame};

    fn pattern(value: &str, age_days: i64, usage: u64, confidence: f64, now: DateTime<Utc>) -> Pattern {
        let created_at = now - Duration::days(age_days);
        Pattern {
            conditions: vec![Condition { feature: "service".into(), op: "=".into(), value: value.into() }],
            predicts: true,
            support: 0.01,
            confidence,
            lift: 2.0,
            created_at,
            last_seen_at: created_at,
            last_used_at: None,
            usage_count: usage,
        }
    }

    fn policy(dir: &std::path::Path) -> PatternPolicy {
        PatternPolicy {
            store: dir.join("store.parquet"),
            archive: dir.join("archive"),
            retention_days: 90,
            delete_below_usage: 5,
            delete_below_confidence: 0.5,
            archive_above_confidence: 0.8,
        }
    }

    #[test]
    fn the_runbook_policy_deletes_archives_and_keeps_exactly_the_right_patterns() {
        let dir = tempfile::tempdir().unwrap();
        let p = policy(dir.path());
        let now: DateTime<Utc> = "2026-11-28T00:00:00Z".parse().unwrap();
        let patterns = vec![
            pattern("old_useless", 120, 2, 0.3, now),  // deleted
            pattern("old_used", 120, 50, 0.3, now),    // kept: used
            pattern("old_valuable", 120, 1, 0.9, now), // archived
            pattern("old_middling", 120, 1, 0.6, now), // kept
            pattern("young_useless", 10, 0, 0.1, now), // kept: young
            pattern("future", -3, 0, 0.1, now),        // kept, reported
            pattern("edge_conf", 120, 1, 0.5, now),    // kept: 0.5 is not < 0.5
            pattern("edge_usage", 120, 5, 0.1, now),   // kept: 5 is not < 5
        ];
        let mut df = frame(&patterns).unwrap();
        store::write(&mut df, &p.store).unwrap();

        let planned = plan(&p, now).unwrap();
        assert_eq!((planned.delete, planned.archive, planned.keep, planned.created_in_future), (1, 1, 6, 1));
        let report = run(&p, now, "r1").unwrap();
        assert_eq!((report.before, report.deleted, report.archived, report.kept), (8, 1, 1, 6));
        assert!(report.store_bytes_after > 0 && report.archive_bytes_written > 0);

        let kept = store::read(&p.store).unwrap();
        assert_eq!(kept.height(), 6);
        let manifest = Manifest::load(&p.archive).unwrap();
        assert_eq!(manifest.files.len(), 1);
        assert_eq!(manifest.files[0].state, EntryState::Committed);
        assert!(manifest.files[0].path.starts_with("date=2026-11-28/part-"));
        let archived = caretaker_data::parquet_io::read_parquet(&p.archive.join(&manifest.files[0].path)).unwrap();
        assert_eq!(archived.height(), 1);
        assert_eq!(manifest.files[0].blake3, file_blake3(&p.archive.join(&manifest.files[0].path)).unwrap());

        // A second cleanup finds nothing more to do and writes nothing.
        let again = run(&p, now, "r2").unwrap();
        assert_eq!((again.deleted, again.archived, again.kept), (0, 0, 6));
    }

    #[test]
    fn a_store_with_the_wrong_schema_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let p = policy(dir.path());
        let mut df = df!("pattern_id" => ["a"], "created_at" => ["yesterday"]).unwrap();
        caretaker_data::parquet_io::write_parquet_atomic(&mut df, &p.store).unwrap();
        let before = std::fs::read(&p.store).unwrap();
        let err = run(&p, Utc::now(), "r").unwrap_err().to_string();
        assert!(err.contains("store.parquet") && err.contains("not a pattern store"), "{err}");
        assert_eq!(std::fs::read(&p.store).unwrap(), before);
    }
}
