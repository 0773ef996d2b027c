//! The run-and-model table: one row per run and model, with every metric the report holds.
//!
//! It is the one shape behind the trend plots of `report.html`, `runs compare` and the Parquet
//! export, so that the three never disagree. Metrics are read from the serialised
//! [`ClassificationMetrics`] rather than named one by one: a metric added to the report appears in
//! every view (and as a Parquet column) without touching this module.

use caretaker_core::metrics::ClassificationMetrics;
use caretaker_core::report::{GateOutcome, RunReport};
use chrono::{DateTime, Utc};

/// Whether a row's model is a candidate trained in the run or the champion re-scored in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelRole {
    Candidate,
    Champion,
}

impl ModelRole {
    pub fn name(self) -> &'static str {
        match self {
            ModelRole::Candidate => "candidate",
            ModelRole::Champion => "champion",
        }
    }
}

/// One model in one run. A run without any model (the quality stage stopped it, say) has one row
/// with `model: None`, so that the table still shows the night.
#[derive(Debug, Clone, PartialEq)]
pub struct RunModelRow {
    pub run_id: String,
    pub pipeline: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub status: String,
    pub quality_score: Option<f64>,
    pub gate_decision: String,
    /// The version the gate deployed in this run, if any.
    pub deployed_version: Option<String>,
    pub model: Option<String>,
    pub role: Option<ModelRole>,
    pub family: Option<String>,
    /// The champion's registry version (champion rows), or the version this candidate was
    /// deployed as (the deployed candidate's row).
    pub version: Option<String>,
    /// This candidate was deployed by this run.
    pub deployed: bool,
    /// Why the model has no metrics.
    pub error: Option<String>,
    pub train_seconds: Option<f64>,
    pub predict_micros_per_row: Option<f64>,
    /// Every numeric metric, sorted by name (`confusion_tp`, ... for the nested confusion
    /// matrix). A metric the report does not hold (ROC-AUC on one class) is absent.
    pub metrics: Vec<(String, f64)>,
}

impl RunModelRow {
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.metrics.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }

    /// `champion` for the champion, the candidate's name otherwise.
    pub fn series_name(&self) -> Option<String> {
        match (self.role, &self.model) {
            (Some(ModelRole::Champion), _) => Some("champion".to_string()),
            (_, Some(m)) => Some(m.clone()),
            _ => None,
        }
    }
}

/// Every numeric value of `metrics`, flattened (`confusion.tp` becomes `confusion_tp`), sorted
/// by name.
pub fn metric_values(metrics: &ClassificationMetrics) -> Vec<(String, f64)> {
    let value = serde_json::to_value(metrics).expect("metrics serialise");
    let mut out = Vec::new();
    flatten("", &value, &mut out);
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn flatten(prefix: &str, value: &serde_json::Value, out: &mut Vec<(String, f64)>) {
    match value {
        serde_json::Value::Number(n) => {
            if let Some(v) = n.as_f64() {
                out.push((prefix.to_string(), v));
            }
        }
        serde_json::Value::Object(fields) => {
            for (key, v) in fields {
                let name = if prefix.is_empty() { key.clone() } else { format!("{prefix}_{key}") };
                flatten(&name, v, out);
            }
        }
        // Strings, booleans, nulls and arrays are not metrics.
        _ => {}
    }
}

/// The rows of one run: the champion first (when there was one), then the candidates in the
/// config's order.
pub fn model_rows(report: &RunReport) -> Vec<RunModelRow> {
    let deployed_version = match report.gate.decision {
        GateOutcome::Deployed => report.gate.deployed_version.map(|v| v.to_string()),
        _ => None,
    };
    let base = RunModelRow {
        run_id: report.run_id.to_string(),
        pipeline: report.pipeline.clone(),
        started_at: report.started_at,
        finished_at: report.finished_at,
        status: report.status.name().to_string(),
        quality_score: report.quality.as_ref().map(|q| q.score),
        gate_decision: report.gate.decision.name().to_string(),
        deployed_version: deployed_version.clone(),
        model: None,
        role: None,
        family: None,
        version: None,
        deployed: false,
        error: None,
        train_seconds: None,
        predict_micros_per_row: None,
        metrics: Vec::new(),
    };
    let mut rows = Vec::new();
    if let Some(c) = &report.champion {
        rows.push(RunModelRow {
            model: Some(c.name.clone()),
            role: Some(ModelRole::Champion),
            family: Some(c.family.clone()),
            version: Some(c.version.to_string()),
            error: c.error.clone(),
            metrics: c.metrics.as_ref().map(metric_values).unwrap_or_default(),
            ..base.clone()
        });
    }
    for c in &report.candidates {
        let deployed = deployed_version.is_some() && report.gate.candidate.as_deref() == Some(c.name.as_str());
        rows.push(RunModelRow {
            model: Some(c.name.clone()),
            role: Some(ModelRole::Candidate),
            family: Some(c.family.clone()),
            version: if deployed { deployed_version.clone() } else { None },
            deployed,
            error: c.error.clone(),
            train_seconds: Some(c.train_seconds),
            predict_micros_per_row: c.predict_micros_per_row,
            metrics: c.metrics.as_ref().map(metric_values).unwrap_or_default(),
            ..base.clone()
        });
    }
    if rows.is_empty() {
        rows.push(base);
    }
    rows
}

/// The metric columns of `rows`: every metric name, sorted.
pub fn metric_columns(rows: &[RunModelRow]) -> Vec<String> {
    // The gate's metrics are always columns, also when undefined in every row (ROC-AUC of a
    // holdout with one class): a notebook's `df["roc_auc"]` should find nulls, not fail.
    let mut names: std::collections::BTreeSet<String> =
        rows.iter().flat_map(|r| r.metrics.iter().map(|(n, _)| n.clone())).collect();
    if rows.iter().any(|r| r.model.is_some()) {
        names.extend(caretaker_core::metrics::Metric::ALL.map(|m| m.name().to_string()));
    }
    names.into_iter().collect()
}
