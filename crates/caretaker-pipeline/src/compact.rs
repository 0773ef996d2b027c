//! `caretaker data compact`: a pipeline's training data rewritten into fewer, larger files, with
//! the figures that say whether it helped.
//!
//! The compaction itself (plan, staged files, content check, journal, swap) is
//! [`caretaker_data::compact`]. This module holds the pipeline's run lock while files move, so
//! that no nightly run reads the dataset meanwhile, finishes what an interrupted compaction left,
//! and measures the dataset before and after: files, bytes, rows, content hash, and the time the
//! quality stage takes to scan it (the stage each nightly run starts with, and the one the file
//! layout affects). The scan time is a measurement to report, never a pass/fail.

use crate::{Error, Result};
use caretaker_core::Clock;
use caretaker_core::config::PipelineConfig;
use caretaker_core::ids::RunId;
use caretaker_core::lock::ProcessLock;
use caretaker_data::compact::{self, CompactionOutcome, CompactionPlan, ContentHash, Recovery};
use caretaker_data::dataset::DatasetFiles;
use serde::Serialize;
use std::time::Instant;

#[derive(Debug, Clone, Default)]
pub struct CompactOptions {
    /// Plan and measure only; change nothing.
    pub dry_run: bool,
}

/// What `caretaker data compact` reports (`--json`).
#[derive(Debug, Clone, Serialize)]
pub struct CompactionReport {
    pub pipeline: String,
    pub dataset: String,
    pub dry_run: bool,
    pub target_bytes: u64,
    /// What an interrupted compaction had left and this one finished first.
    pub recovered: Option<Recovery>,
    /// In a dry run: the id of an interrupted compaction whose swap is still pending (the dataset
    /// reads whole through its journal; a compaction without `--dry-run` finishes it).
    pub interrupted: Option<String>,
    pub plan: CompactionPlan,
    /// What was done; `None` in a dry run or when there was nothing to compact.
    pub compaction: Option<CompactionOutcome>,
    pub before: DatasetFigures,
    /// Measured again after the compaction; `None` when nothing was compacted.
    pub after: Option<DatasetFigures>,
}

/// The dataset as measured at one moment.
#[derive(Debug, Clone, Serialize)]
pub struct DatasetFigures {
    pub files: usize,
    pub bytes: u64,
    pub rows: u64,
    /// Rows and order-free content hash (`ROWS:HASH`): equal before and after, or compaction
    /// would not have swapped.
    pub content_hash: ContentHash,
    /// Wall time of the quality stage over the whole dataset, in seconds (the first read of the
    /// files is the content hash, so both measurements find them in the page cache).
    pub quality_seconds: f64,
}

impl CompactionReport {
    /// The quality stage's scan time before over after (above 1: faster after).
    pub fn quality_speedup(&self) -> Option<f64> {
        let after = self.after.as_ref()?;
        (after.quality_seconds > 0.0).then(|| self.before.quality_seconds / after.quality_seconds)
    }
}

/// Compacts the training data of `config` (or, with `dry_run`, says what it would do).
pub fn compact_dataset(config: &PipelineConfig, clock: Clock, options: &CompactOptions) -> Result<CompactionReport> {
    let root = &config.dataset.path;
    if let Some(url) = config.dataset.remote() {
        // Objects cannot be swapped for others in one step on every S3-compatible store, and a
        // reader listing the prefix mid-swap would see rows twice or not at all.
        return Err(caretaker_data::Error::NotCompactable {
            path: root.clone(),
            reason: format!("{url} is in object storage, which compaction does not rewrite (not built yet): compact where the files are written"),
        }
        .into());
    }
    // A dry run reads only; a compaction takes the run lock, so no run reads files while they move.
    let _lock = if options.dry_run {
        None
    } else {
        Some(ProcessLock::acquire(
            &config.output.state.join("run.lock"),
            &format!("the pipeline {}", config.source.display()),
        )?)
    };
    let recovered = if options.dry_run { None } else { Some(compact::recover(root)?) };
    let interrupted = if options.dry_run && root.is_dir() { compact::journal::read(root)?.map(|j| j.id) } else { None };
    let files = DatasetFiles::find(root)?;
    let plan = compact::plan(&files, config.dataset.compact_target_bytes)?;
    let before = measure(config, &files, clock)?;
    let mut report = CompactionReport {
        pipeline: config.name.clone(),
        dataset: root.display().to_string(),
        dry_run: options.dry_run,
        target_bytes: config.dataset.compact_target_bytes,
        recovered: recovered.filter(Recovery::did_something),
        interrupted,
        plan,
        compaction: None,
        before,
        after: None,
    };
    if options.dry_run || report.plan.is_empty() {
        return Ok(report);
    }
    let id = RunId::new(clock.now()).to_string();
    let outcome = compact::compact(root, &report.plan, &config.dataset.timestamp, &id)?;
    tracing::info!(compaction = %id, files_replaced = outcome.files_replaced, files_written = outcome.files_written, "compacted");
    let after = measure(config, &DatasetFiles::find(root)?, clock)?;
    if after.content_hash != report.before.content_hash {
        // Each group was checked before its swap, so this means someone else wrote meanwhile.
        return Err(Error::Other {
            path: root.clone(),
            reason: format!(
                "the dataset held {} (rows:hash) before compaction {id} and {} after; another writer changed it meanwhile",
                report.before.content_hash, after.content_hash
            ),
        });
    }
    report.compaction = Some(outcome);
    report.after = Some(after);
    Ok(report)
}

/// Files, bytes, rows, content hash and the quality stage's wall time over `files`. The quality
/// stage runs with a scratch quarantine and state directory, so measuring changes nothing.
fn measure(config: &PipelineConfig, files: &DatasetFiles, clock: Clock) -> Result<DatasetFigures> {
    let content = compact::dataset_content(files)?;
    let scratch = crate::run::scratch_dir()?;
    let started = Instant::now();
    crate::run::assess_quality_in_scratch(config, files, clock.now(), scratch.path())?;
    let quality_seconds = started.elapsed().as_secs_f64();
    Ok(DatasetFigures {
        files: files.files.len(),
        bytes: files.bytes,
        rows: content.rows,
        content_hash: content,
        quality_seconds,
    })
}
