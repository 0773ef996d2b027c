//! `caretaker runs export --format parquet OUT`: the run history as one table for notebooks.
//!
//! One row per run and model (the champion re-scored in the run, and each candidate), with every
//! metric the reports hold as a column, so `pd.read_parquet(OUT)` or `pl.read_parquet(OUT)` is
//! the trend table. The rows come from [`caretaker_report::table`], the same table the HTML trend
//! plots and `runs compare` read; this module only turns them into a polars frame (it lives here
//! because polars stays out of the report and history crates).

use crate::{Error, Result};
use caretaker_core::report::RunReport;
use caretaker_report::table::{RunModelRow, metric_columns, model_rows};
use polars::prelude::*;
use std::path::Path;

/// What an export wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportSummary {
    pub runs: usize,
    pub rows: usize,
    pub columns: Vec<String>,
    pub bytes: u64,
}

/// The table of `reports` as a data frame. The columns, in order: `run_id`, `pipeline`,
/// `started_at`, `finished_at` (UTC, milliseconds), `status`, `quality_score`, `gate_decision`,
/// `deployed_version`, `model`, `role` (`champion` or `candidate`), `family`, `version`,
/// `deployed`, `error`, `train_seconds`, `predict_micros_per_row`, then every metric, sorted by
/// name (`accuracy`, `brier`, `confusion_fn`, ...). A run without models has one row with a null
/// `model`.
pub fn history_frame(reports: &[RunReport]) -> PolarsResult<DataFrame> {
    let rows: Vec<RunModelRow> = reports.iter().flat_map(model_rows).collect();
    let metrics = metric_columns(&rows);
    let height = rows.len();
    let text = |name: &str, f: &dyn Fn(&RunModelRow) -> Option<String>| {
        Column::new(name.into(), rows.iter().map(f).collect::<Vec<Option<String>>>())
    };
    let number = |name: &str, f: &dyn Fn(&RunModelRow) -> Option<f64>| {
        Column::new(name.into(), rows.iter().map(f).collect::<Vec<Option<f64>>>())
    };
    let time = |name: &str, f: &dyn Fn(&RunModelRow) -> i64| -> PolarsResult<Column> {
        Ok(Series::new(name.into(), rows.iter().map(f).collect::<Vec<i64>>())
            .cast(&DataType::Datetime(TimeUnit::Milliseconds, None))?
            .into_column())
    };
    let mut columns = vec![
        text("run_id", &|r| Some(r.run_id.clone())),
        text("pipeline", &|r| Some(r.pipeline.clone())),
        time("started_at", &|r| r.started_at.timestamp_millis())?,
        time("finished_at", &|r| r.finished_at.timestamp_millis())?,
        text("status", &|r| Some(r.status.clone())),
        number("quality_score", &|r| r.quality_score),
        text("gate_decision", &|r| Some(r.gate_decision.clone())),
        text("deployed_version", &|r| r.deployed_version.clone()),
        text("model", &|r| r.model.clone()),
        text("role", &|r| r.role.map(|r| r.name().to_string())),
        text("family", &|r| r.family.clone()),
        text("version", &|r| r.version.clone()),
        Column::new("deployed".into(), rows.iter().map(|r| r.deployed).collect::<Vec<bool>>()),
        text("error", &|r| r.error.clone()),
        number("train_seconds", &|r| r.train_seconds),
        number("predict_micros_per_row", &|r| r.predict_micros_per_row),
    ];
    let fixed: Vec<String> = columns.iter().map(|c| c.name().to_string()).collect();
    for metric in &metrics {
        // A metric named like a fixed column would make two columns of one name.
        let name = if fixed.contains(metric) { format!("metric_{metric}") } else { metric.clone() };
        columns.push(number(&name, &|r| r.metric(metric)));
    }
    DataFrame::new(height, columns)
}

/// Writes the table of `reports` to `out` as Parquet, atomically.
pub fn export_parquet(reports: &[RunReport], out: &Path) -> Result<ExportSummary> {
    let mut frame = history_frame(reports).map_err(|e| caretaker_data::parquet_io::write_error(out, e))?;
    let bytes = caretaker_data::parquet_io::write_parquet_atomic(&mut frame, out).map_err(Error::Data)?;
    Ok(ExportSummary {
        runs: reports.len(),
        rows: frame.height(),
        columns: frame.get_column_names().iter().map(|c| c.to_string()).collect(),
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(night: u32, f1: Option<f64>) -> RunReport {
        let started = format!("2026-11-{:02}T02:00:00Z", 10 + night);
        let metrics = f1.map(|f1| {
            serde_json::json!({"rows": 100, "accuracy": 0.9, "precision": 0.8, "recall": 0.7, "f1": f1,
                "roc_auc": null, "pr_auc": 0.6, "log_loss": 0.3, "brier": 0.1, "threshold": 0.5,
                "confusion": {"tp": 7, "fp": 2, "tn": 88, "fn": 3}})
        });
        serde_json::from_value(serde_json::json!({
            "schema_version": 1, "run_id": format!("run{night}"), "pipeline": "p", "config_path": "p.toml",
            "config_hash": "h", "started_at": started, "finished_at": started, "status": if f1.is_some() { "succeeded" } else { "quality_failed" },
            "message": null, "data": null, "quality": {"score": 0.99, "min_score": 0.9, "passed": true, "rows": 100,
                "clean_rows": 100, "quarantined_rows": 0, "quarantine_path": null, "rule_counts": [], "checks": []},
            "split": null,
            "candidates": if metrics.is_some() { serde_json::json!([
                {"name": "tree", "family": "decision_tree", "params": {}, "metrics": metrics, "train_seconds": 0.5,
                 "predict_micros_per_row": 2.0, "error": null},
                {"name": "broken", "family": "gaussian_nb", "params": {}, "metrics": null, "train_seconds": 0.1,
                 "predict_micros_per_row": null, "error": "one class"}]) } else { serde_json::json!([]) },
            "champion": null,
            "gate": {"decision": if f1.is_some() { "deployed" } else { "skipped" }, "candidate": "tree",
                     "deployed_version": if f1.is_some() { serde_json::json!("v0001") } else { serde_json::Value::Null },
                     "reasons": [], "rules": []},
            "patterns": null, "stages": [], "report_dir": "reports/x"
        }))
        .unwrap()
    }

    #[test]
    fn one_row_per_run_and_model_with_every_metric_as_a_column() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("history.parquet");
        let summary = export_parquet(&[report(0, Some(0.61)), report(1, None), report(2, Some(0.65))], &out).unwrap();
        assert_eq!((summary.runs, summary.rows), (3, 5));
        let frame = caretaker_data::parquet_io::read_parquet(&out).unwrap();
        assert_eq!(frame.height(), 5);
        let names: Vec<String> = frame.get_column_names().iter().map(|c| c.to_string()).collect();
        for column in ["run_id", "started_at", "model", "role", "deployed", "f1", "roc_auc", "confusion_tp", "log_loss"]
        {
            assert!(names.iter().any(|n| n == column), "no {column} column in {names:?}");
        }
        let f1 = frame.column("f1").unwrap().f64().unwrap().clone();
        let f1: Vec<Option<f64>> = (0..f1.len()).map(|i| f1.get(i)).collect();
        assert_eq!(f1, [Some(0.61), None, None, Some(0.65), None]);
        let model = frame.column("model").unwrap().str().unwrap().clone();
        let model: Vec<Option<&str>> = (0..model.len()).map(|i| model.get(i)).collect();
        assert_eq!(model, [Some("tree"), Some("broken"), None, Some("tree"), Some("broken")]);
        let deployed = frame.column("deployed").unwrap().bool().unwrap().clone();
        let deployed: Vec<Option<bool>> = (0..deployed.len()).map(|i| deployed.get(i)).collect();
        assert_eq!(deployed, [Some(true), Some(false), Some(false), Some(true), Some(false)]);
        assert_eq!(frame.column("roc_auc").unwrap().null_count(), 5, "an undefined metric is null, not 0");
        assert!(matches!(frame.column("started_at").unwrap().dtype(), DataType::Datetime(TimeUnit::Milliseconds, _)));
    }

    #[test]
    fn an_empty_history_is_an_empty_table() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("empty.parquet");
        let summary = export_parquet(&[], &out).unwrap();
        assert_eq!(summary.rows, 0);
        assert_eq!(caretaker_data::parquet_io::read_parquet(&out).unwrap().height(), 0);
    }
}
