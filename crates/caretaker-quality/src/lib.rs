//! The data-quality stage: it stands between bad data and a bad model.
//!
//! It runs in one streaming pass over the dataset, at close to the speed of reading it: polars
//! decodes the Parquet files batch by batch (in file order, so "the first occurrence of an id" is
//! well defined) and hands each batch to [`scan`], which applies the row-level rules (a null where
//! a value is required, a number out of range or not finite, a category not allowed, a label that
//! is not 0/1, a timestamp in the future, an id seen before), streams the failing rows to the
//! quarantine file with the rules each one broke, and appends the clean rows to the
//! [`LabelledEvents`] that training uses. Memory holds the clean feature values and every id (an
//! integer as itself, a text id in 16 bytes: itself up to 15 bytes, else a hash), never the raw
//! file. Ids that arrive in ascending order, as integer sequences and short text counters do, are
//! kept in a sorted vector and cost a comparison each; others (and text ids of more than 15 bytes,
//! which are hashed) go to a hash set. Each batch uses two cores: the ids, which alone must follow
//! row order, beside the other rules. Before the pass, [`integrity`] reads every file's footer
//! with the `parquet` crate and [`schema`] checks the contract; after it, the column checks
//! (outliers, freshness, label balance) and [`drift`] run on the clean rows.
//!
//! Every check is reported with its measured value, its threshold and pass or fail. A failed check
//! is a finding in the report, not an error: errors are for data that cannot be read at all.
//!
//! ```no_run
//! # use caretaker_core::config::PipelineConfig;
//! # use caretaker_data::dataset::DatasetFiles;
//! # let config = PipelineConfig::load("pipelines/nightly.toml".as_ref()).unwrap();
//! let files = DatasetFiles::find(&config.dataset.path).unwrap();
//! let outcome = caretaker_quality::assess(&caretaker_quality::QualityInput {
//!     files: &files,
//!     spec: &config.dataset,
//!     policy: &config.quality,
//!     quarantine_path: "reports/r1/quarantine.parquet".as_ref(),
//!     now: chrono::Utc::now(),
//!     state_dir: &config.output.state,
//!     sample: None,
//! }).unwrap();
//! println!("quality score {:.3}", outcome.report.score);
//! ```

mod checks;
pub mod drift;
pub mod integrity;
pub mod ks;
mod sample;
mod scan;
mod schema;
pub mod score;
#[cfg(test)]
mod tests;

use caretaker_core::config::{DatasetSpec, QualityPolicy};
use caretaker_core::events::LabelledEvents;
use caretaker_core::report::{DataSummary, QualityCheck, QualityReport, RuleCount};
use caretaker_data::dataset::DatasetFiles;
use chrono::{DateTime, Utc};
pub use sample::{SampleSpec, SampleSummary};
use std::path::Path;

pub use caretaker_data::Error;
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What the stage needs.
pub struct QualityInput<'a> {
    pub files: &'a DatasetFiles,
    pub spec: &'a DatasetSpec,
    pub policy: &'a QualityPolicy,
    /// Where failing rows go (written only when there are some).
    pub quarantine_path: &'a Path,
    /// The run time: freshness and future timestamps are measured against it.
    pub now: DateTime<Utc>,
    /// Where the frozen drift bins are kept between runs.
    pub state_dir: &'a Path,
    /// `training.max_rows` and its seed: the clean rows are a sample of at most that many.
    pub sample: Option<SampleSpec>,
}

/// What the quality stage found, and the rows fit for training.
pub struct QualityOutcome {
    pub report: QualityReport,
    pub data: DataSummary,
    /// The clean rows, or `None` when a blocking check (integrity, schema, no rows) failed and no
    /// row can be trusted.
    pub events: Option<LabelledEvents>,
    /// With `dataset.label_delay`: the rows awaiting their label (labels unknown, written false).
    pub awaiting: Option<LabelledEvents>,
    /// With `training.max_rows`, when the clean rows were more: the sample `events` is.
    pub sample: Option<SampleSummary>,
}

pub(crate) fn check(
    check: &str,
    column: Option<&str>,
    measured: f64,
    threshold: f64,
    passed: bool,
    detail: String,
) -> QualityCheck {
    QualityCheck { check: check.to_string(), column: column.map(str::to_string), measured, threshold, passed, detail }
}

/// Runs every check on the dataset.
pub fn assess(input: &QualityInput<'_>) -> Result<QualityOutcome> {
    let files = input.files;
    let mut data = DataSummary {
        path: files.path.display().to_string(),
        files: files.files.len(),
        bytes: files.bytes,
        rows: 0,
        newest_event: None,
    };

    // Before reading any row: every footer, then the contract.
    let started = std::time::Instant::now();
    let footers = integrity::inspect(files);
    data.rows = footers.rows;
    let mut checks = footers.checks;
    if checks.iter().any(|c| !c.passed) {
        return Ok(blocked(input.policy, data, checks));
    }
    let schema = files.schema()?;
    checks.extend(schema::contract(&schema, input.spec));
    if checks.iter().any(|c| !c.passed) {
        return Ok(blocked(input.policy, data, checks));
    }

    let footers_seconds = started.elapsed().as_secs_f64();
    // The pass.
    let pass = scan::run(input, &schema, footers.rows)?;
    let pass_seconds = started.elapsed().as_secs_f64() - footers_seconds;
    data.rows = pass.rows;
    if pass.rows == 0 {
        checks.push(check("rows", None, 0.0, 1.0, false, "the dataset has no rows".into()));
        return Ok(blocked(input.policy, data, checks));
    }
    let events = pass.events;
    // (Of every clean row: with training.max_rows, `events` are a sample.)
    data.newest_event = pass.newest.and_then(DateTime::from_timestamp_micros);
    checks.extend(pass.checks);

    // Column checks and drift, on the clean rows: the outliers beside drift, column by column on
    // rayon's pool ([`each_in_parallel`]).
    let phase = std::time::Instant::now();
    let ((outliers, outliers_seconds), drift) = rayon::join(
        || {
            let started = std::time::Instant::now();
            (checks::outliers(&events, input.policy), started.elapsed().as_secs_f64())
        },
        || {
            // The label checks on the labelled rows; drift on the features of every row, the
            // newest, awaiting their label, included.
            let windows = drift::Windows::anchored(&events, pass.newest, &input.policy.drift);
            let labels = checks::labels(&events, &windows, input.policy);
            let parts = drift::Part::both(&events, pass.newest, pass.awaiting.as_ref(), &input.policy.drift);
            let drift = drift::measure(&parts, input.policy, input.spec, input.state_dir);
            drift.map(|d| (labels, d))
        },
    );
    let (labels, drift) = drift?;
    checks.extend(outliers);
    checks.extend(checks::freshness(pass.newest, pass.awaiting.as_ref(), input.policy, input.now, pass.future_rows));
    checks.extend(labels);
    checks.push(drift.check);
    tracing::debug!(
        footers_seconds,
        pass_seconds,
        columns_and_drift_seconds = phase.elapsed().as_secs_f64(),
        outliers_seconds,
        "quality stage phases"
    );

    let dims = score::Dimensions {
        completeness: share(pass.rows, pass.incomplete_rows),
        validity: share(pass.rows, pass.invalid_rows),
        uniqueness: share(pass.rows, pass.duplicate_rows),
        stability: drift.stability,
    };
    let score = score::quality_score(&dims);
    let report = QualityReport {
        score,
        min_score: input.policy.min_score,
        passed: score >= input.policy.min_score,
        rows: pass.rows,
        clean_rows: pass.clean_rows,
        quarantined_rows: pass.quarantined_rows,
        awaiting_label_rows: pass.awaiting.as_ref().map_or(0, |a| a.len() as u64),
        quarantine_path: pass.quarantine_path.map(|p| p.display().to_string()),
        rule_counts: pass.rule_counts.into_iter().map(|(rule, rows)| RuleCount { rule, rows }).collect(),
        checks,
        drift: drift.results,
    };
    Ok(QualityOutcome { report, data, events: Some(events), awaiting: pass.awaiting, sample: pass.sample })
}

/// `work` on every item, spread over rayon's pool (as many threads as cores: a dataset of many
/// columns holds no more columns' copies at once than that); the results in the items' order.
pub(crate) fn each_in_parallel<T: Sync, R: Send>(items: &[T], work: impl Fn(&T) -> R + Sync + Send) -> Vec<R> {
    use rayon::prelude::*;
    items.par_iter().map(work).collect()
}

fn share(rows: u64, bad: u64) -> f64 {
    if rows == 0 { 0.0 } else { 1.0 - bad as f64 / rows as f64 }
}

fn blocked(policy: &QualityPolicy, data: DataSummary, checks: Vec<QualityCheck>) -> QualityOutcome {
    let report = QualityReport {
        score: 0.0,
        min_score: policy.min_score,
        passed: false,
        rows: data.rows,
        clean_rows: 0,
        quarantined_rows: 0,
        awaiting_label_rows: 0,
        quarantine_path: None,
        rule_counts: Vec::new(),
        checks,
        drift: Vec::new(),
    };
    QualityOutcome { report, data, events: None, awaiting: None, sample: None }
}
