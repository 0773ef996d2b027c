//! The retention policy: delete old useless patterns, archive old valuable ones, keep the rest.
//!
//! A pattern is old when it was created more than `retention_days` before now. Old patterns used
//! fewer than `delete_below_usage` times with a confidence below `delete_below_confidence` are
//! deleted; old patterns with a confidence above `archive_above_confidence` are archived; every
//! other pattern stays. Bytes are measured from the files before and after, not estimated.

use crate::archive::{self, EntryState, Manifest, ManifestEntry};
use crate::recovery::{self, polars_error};
use crate::{Result, store};
use caretaker_core::config::PatternPolicy;
use caretaker_core::crash_point;
use caretaker_core::fs::{disk_size, file_blake3};
use caretaker_core::report::PatternsReport;
use chrono::{DateTime, Duration, Utc};
use polars::prelude::*;

/// What cleanup would do, without doing it. Sizes are measured by writing the would-be store and
/// archive file to a temporary directory, not estimated.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CleanupPlan {
    pub dry_run: bool,
    pub before: u64,
    pub delete: u64,
    pub archive: u64,
    pub keep: u64,
    /// Status `restored`: left alone whatever their age.
    pub restored_exempt: u64,
    /// Patterns created after now: kept, and reported, because a clock or a writer is wrong.
    pub created_in_future: u64,
    /// The store's size now.
    pub store_bytes: u64,
    /// The store's size after cleanup.
    pub store_bytes_after: u64,
    /// The archive file cleanup would write.
    pub archive_bytes: u64,
    /// Archive entries an interrupted command left unfinished; the next cleanup finishes them first.
    pub unfinished_archive_entries: u64,
}

impl CleanupPlan {
    /// Store bytes freed, net of the archive file written.
    pub fn bytes_freed(&self) -> i64 {
        self.store_bytes as i64 - self.store_bytes_after as i64
    }
}

struct Split {
    delete: BooleanChunked,
    archive: BooleanChunked,
    future: u64,
    restored: u64,
}

fn split(df: &DataFrame, policy: &PatternPolicy, now: DateTime<Utc>) -> PolarsResult<Split> {
    let cutoff = (now - Duration::days(policy.retention_days as i64)).timestamp_micros();
    let created = col("created_at").cast(DataType::Int64);
    let restored = col("status").eq(lit(store::RESTORED)).fill_null(lit(false));
    let old = created.clone().lt(lit(cutoff)).and(restored.clone().not());
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
            restored.alias("restored"),
        ])
        .collect()?;
    let mask = |name: &str| -> PolarsResult<BooleanChunked> { Ok(masks.column(name)?.bool()?.clone()) };
    Ok(Split {
        delete: mask("delete")?,
        archive: mask("archive")?,
        future: mask("future")?.sum().unwrap_or(0) as u64,
        restored: mask("restored")?.sum().unwrap_or(0) as u64,
    })
}

/// The archive rows of a cleanup: the store's rows plus the time they were archived.
fn archive_rows(df: &DataFrame, mask: &BooleanChunked, now: DateTime<Utc>) -> PolarsResult<DataFrame> {
    let mut rows = df.filter(mask)?;
    let stamp = Series::new("archived_at".into(), vec![now.timestamp_micros(); rows.height()])
        .cast(&DataType::Datetime(TimeUnit::Microseconds, None))?;
    rows.with_column(stamp.into_column())?;
    Ok(rows)
}

/// What cleanup would do now: counts, and sizes measured by writing the would-be files to a
/// temporary directory. Changes nothing.
pub fn plan(policy: &PatternPolicy, now: DateTime<Utc>) -> Result<CleanupPlan> {
    let df = store::read(&policy.store)?;
    let err = polars_error(&policy.store);
    let s = split(&df, policy, now).map_err(&err)?;
    let delete = s.delete.sum().unwrap_or(0) as u64;
    let archive = s.archive.sum().unwrap_or(0) as u64;
    let before = df.height() as u64;
    let unfinished = Manifest::load(&policy.archive)?.files.iter().filter(|e| e.state != EntryState::Committed).count();
    let store_bytes = disk_size(&policy.store);
    let (mut store_bytes_after, mut archive_bytes) = (store_bytes, 0);
    if delete + archive > 0 {
        let scratch = tempfile::tempdir().map_err(|e| {
            caretaker_core::fs::FsError::new("create a temporary directory in", std::env::temp_dir(), e)
        })?;
        let mut kept = df.filter(&!(&s.delete | &s.archive)).map_err(&err)?;
        store_bytes_after = store::write(&mut kept, &scratch.path().join("store.parquet"))?;
        if archive > 0 {
            let mut rows = archive_rows(&df, &s.archive, now).map_err(&err)?;
            archive_bytes =
                caretaker_data::parquet_io::write_parquet_atomic(&mut rows, &scratch.path().join("part.parquet"))?;
        }
    }
    Ok(CleanupPlan {
        dry_run: true,
        before,
        delete,
        archive,
        keep: before - delete - archive,
        restored_exempt: s.restored,
        created_in_future: s.future,
        store_bytes,
        store_bytes_after,
        archive_bytes,
        unfinished_archive_entries: unfinished as u64,
    })
}

/// Applies the policy: archive first (written, synced, listed as pending), then the store
/// (replaced atomically), then the manifest entry committed. Finishes whatever an interrupted
/// command left first.
pub fn run(policy: &PatternPolicy, now: DateTime<Utc>, run_id: &str) -> Result<PatternsReport> {
    let lock = recovery::lock(policy)?;
    recovery::reconcile(policy, &lock)?;
    let df = store::read(&policy.store)?;
    let err = polars_error(&policy.store);
    let before = df.height() as u64;
    let store_bytes_before = disk_size(&policy.store);
    let s = split(&df, policy, now).map_err(&err)?;
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
        created_in_future: s.future,
        restored_exempt: s.restored,
        discovery: None,
    };
    if deleted == 0 && archived == 0 {
        return Ok(report);
    }

    let mut manifest = Manifest::load(&policy.archive)?;
    let mut archive_entry = None;
    if archived > 0 {
        let mut rows = archive_rows(&df, &s.archive, now).map_err(&err)?;
        let ids = store::ids(&rows).map_err(&err)?;
        let rel = archive::part_path(now.date_naive(), &ids);
        let path = archive::absolute(&policy.archive, &rel);
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
            restore_ids: None,
        });
        manifest.save(&policy.archive)?;
        crash_point("patterns:manifest_pending");
        report.archive_bytes_written = bytes;
        report.archive_files.push(path.display().to_string());
        archive_entry = Some(rel);
    }

    let keep = !(&s.delete | &s.archive);
    let mut kept = df.filter(&keep).map_err(&err)?;
    drop(df);
    store::write(&mut kept, &policy.store)?;
    crash_point("patterns:store_written");
    report.store_bytes_after = disk_size(&policy.store);

    if let Some(rel) = archive_entry {
        if let Some(e) = manifest.entry_mut(&rel) {
            e.state = EntryState::Committed;
        }
        manifest.save(&policy.archive)?;
        crash_point("patterns:manifest_committed");
    }
    archive::push(policy)?;
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
        crate::fixtures::policy(dir, 0.005)
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
