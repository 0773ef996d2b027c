//! The data-quality stage: it stands between bad data and a bad model.
//!
//! It reads the dataset once, checks the schema contract, finds the rows that break a row-level
//! rule (a null where a value is required, a value outside its declared range or not finite, an
//! id seen before), writes those rows to a quarantine file with the rules each one broke, and
//! hands the clean rows on. Every check is reported with its measured value, its threshold and
//! pass or fail; the 0-1 score combines them (see [`score`]). A failed check is a finding in the
//! report, not an error: errors are for data that cannot be read at all.
//!
//! ```no_run
//! # use caretaker_core::config::PipelineConfig;
//! # use caretaker_data::dataset::DatasetFiles;
//! # let config = PipelineConfig::load("pipelines/nightly.toml".as_ref()).unwrap();
//! let files = DatasetFiles::find(&config.dataset.path).unwrap();
//! let outcome = caretaker_quality::assess(&files, &config.dataset, &config.quality, "reports/r1/quarantine.parquet".as_ref()).unwrap();
//! println!("quality score {:.3}", outcome.report.score);
//! ```

mod rules;
pub mod score;

use caretaker_core::config::{DatasetSpec, QualityPolicy};
use caretaker_core::report::{DataSummary, QualityCheck, QualityReport, RuleCount};
use caretaker_data::dataset::DatasetFiles;
use polars::prelude::*;
use std::path::Path;

pub use caretaker_data::Error;
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What the quality stage found, and the rows fit for training.
pub struct QualityOutcome {
    pub report: QualityReport,
    pub data: DataSummary,
    /// The clean rows (all columns), or `None` when the schema contract failed and no row can be
    /// trusted.
    pub clean: Option<DataFrame>,
}

/// Runs every check on the dataset and writes failing rows to `quarantine_path`.
pub fn assess(
    files: &DatasetFiles,
    spec: &DatasetSpec,
    policy: &QualityPolicy,
    quarantine_path: &Path,
) -> Result<QualityOutcome> {
    let df = files.scan()?.collect().map_err(|e| files.read_error(e))?;
    let mut data = DataSummary {
        path: files.path.display().to_string(),
        files: files.files.len(),
        bytes: files.bytes,
        rows: df.height() as u64,
        newest_event: None,
    };

    let mut checks = rules::schema_checks(&df, spec);
    if checks.iter().any(|c| !c.passed) {
        let report = blocked_report(policy, df.height() as u64, checks);
        return Ok(QualityOutcome { report, data, clean: None });
    }
    data.newest_event =
        caretaker_data::dataset::timestamp_micros(df.column(&spec.timestamp).map_err(|e| files.read_error(e))?)
            .map_err(|e| files.read_error(e))?
            .max()
            .and_then(chrono::DateTime::from_timestamp_micros);

    let found = rules::row_rules(&df, spec, policy).map_err(|e| files.read_error(e))?;
    checks.extend(found.checks(df.height(), policy));
    let bad = found.any_broken();
    let quarantined = bad.iter().filter(|b| **b).count();

    let quarantine_written = if quarantined > 0 {
        let mut rows = df.filter(&BooleanChunked::from_slice("bad".into(), &bad)).map_err(|e| files.read_error(e))?;
        let rules_column = found.rules_per_row(&bad);
        rows.with_column(rules_column.into_column()).map_err(|e| files.read_error(e))?;
        caretaker_data::parquet_io::write_parquet_atomic(&mut rows, quarantine_path)?;
        Some(quarantine_path.display().to_string())
    } else {
        None
    };
    let keep: BooleanChunked = bad.iter().map(|b| !b).collect();
    let clean = df.filter(&keep).map_err(|e| files.read_error(e))?;

    let rows = df.height() as u64;
    let score = score::quality_score(&score::Dimensions::measure(&found, rows));
    let report = QualityReport {
        score,
        min_score: policy.min_score,
        passed: score >= policy.min_score,
        rows,
        clean_rows: clean.height() as u64,
        quarantined_rows: quarantined as u64,
        quarantine_path: quarantine_written,
        rule_counts: found.counts().into_iter().map(|(rule, rows)| RuleCount { rule, rows }).collect(),
        checks,
        drift: Vec::new(),
    };
    Ok(QualityOutcome { report, data, clean: Some(clean) })
}

fn blocked_report(policy: &QualityPolicy, rows: u64, checks: Vec<QualityCheck>) -> QualityReport {
    QualityReport {
        score: 0.0,
        min_score: policy.min_score,
        passed: false,
        rows,
        clean_rows: 0,
        quarantined_rows: 0,
        quarantine_path: None,
        rule_counts: Vec::new(),
        checks,
        drift: Vec::new(),
    }
}
