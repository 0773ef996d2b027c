//! The run report: what `report.json` holds, stage by stage.
//!
//! Field names are a contract with the data scientists and dashboards that read them: add fields,
//! never rename one without bumping [`REPORT_SCHEMA_VERSION`].

use crate::ids::{ModelVersion, RunId};
use crate::metrics::ClassificationMetrics;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Bumped when a field of the report changes meaning or disappears.
pub const REPORT_SCHEMA_VERSION: u32 = 1;

/// serde_json writes a non-finite `f64` as `null`; this reads such a `null` back as NaN, so that
/// every report written can be read again (`caretaker report`, the history, the trends).
fn null_as_nan<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(deserializer)?.unwrap_or(f64::NAN))
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    pub schema_version: u32,
    pub run_id: RunId,
    pub pipeline: String,
    pub config_path: String,
    pub config_hash: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub status: RunStatus,
    /// Why the run did not succeed, when it did not.
    pub message: Option<String>,
    pub data: Option<DataSummary>,
    pub quality: Option<QualityReport>,
    pub split: Option<SplitSummary>,
    pub candidates: Vec<CandidateReport>,
    pub champion: Option<ChampionReport>,
    pub gate: GateReport,
    /// Performance estimated on the rows awaiting their label (`dataset.label_delay`); absent
    /// without a delay or when no model was scored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimate: Option<EstimateReport>,
    /// Earlier runs' estimates of their champion whose labels have arrived since, each against
    /// the value realised on the same window of events (oldest estimate first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub realised_estimates: Vec<RealisedEstimate>,
    /// Permutation importance of each feature for the gate's candidate and the champion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub importance: Option<ImportanceReport>,
    pub patterns: Option<PatternsReport>,
    pub stages: Vec<StageTiming>,
    /// The directory holding this report and the run's other files.
    pub report_dir: String,
}

/// Permutation importance on the holdout: the mean drop of the primary metric (a rise, for a loss)
/// when one feature's values are shuffled across the rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportanceReport {
    pub metric: crate::metrics::Metric,
    /// Holdout rows scored per shuffle (a seeded sample of a large holdout).
    pub rows: u64,
    pub repeats: u32,
    pub seed: u64,
    /// The gate's candidate, when it was measured.
    pub candidate: Option<String>,
    /// Most important first (for the candidate, else the champion).
    pub features: Vec<FeatureImportance>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureImportance {
    pub feature: String,
    pub candidate: Option<f64>,
    pub champion: Option<f64>,
    /// 1 is the most important.
    pub candidate_rank: Option<u32>,
    pub champion_rank: Option<u32>,
}

/// What the rows awaiting their label say of the champion before their labels arrive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EstimateReport {
    /// Rows awaiting their label, and the span of their event times.
    pub rows: u64,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// The primary metric, or F1 when the primary metric cannot be estimated (a loss).
    pub metric: crate::metrics::Metric,
    /// The champion's value on the labelled holdout, the same estimator's value there (the
    /// baseline), and its estimate on the awaiting rows.
    pub champion_realised: Option<f64>,
    #[serde(default)]
    pub champion_holdout_estimate: Option<f64>,
    pub champion_estimated: Option<EstimatedValue>,
    /// Baseline minus estimated: how far the champion is expected to fall on the newest rows,
    /// its own miscalibration (present in both) set aside.
    pub drop: Option<f64>,
    /// `quality.estimated_drop_alarm`, and whether the drop is above it.
    pub alarm_threshold: f64,
    pub alarm: bool,
    /// Why there is no estimate of the champion, when there is none.
    #[serde(default)]
    pub note: Option<String>,
}

/// An earlier run's estimate of its champion set against what came true: the same model scored on
/// the same window of events once their labels arrived.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RealisedEstimate {
    /// The run that made the estimate, and the champion it estimated.
    pub run_id: RunId,
    pub version: ModelVersion,
    /// The window of event times the estimate covered (its awaiting rows' first and last).
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub metric: crate::metrics::Metric,
    pub estimate: EstimatedValue,
    /// Rows the estimate covered, and rows of the window that carry a label now.
    pub estimated_rows: u64,
    pub labelled_rows: u64,
    /// The metric of that model on the labelled rows of the window; absent when the model can no
    /// longer be scored (see `note`).
    pub realised: Option<f64>,
    /// Whether the realised value fell inside the estimate's band.
    pub within_band: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl RealisedEstimate {
    /// Realised minus estimated.
    pub fn error(&self) -> Option<f64> {
        self.realised.map(|r| r - self.estimate.value)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Every stage ran. The gate may still have kept the champion: that is a normal outcome.
    Succeeded,
    /// The data failed the quality gate; nothing was trained or deployed (exit code 1).
    QualityFailed,
    /// An error stopped the run; see `message` (exit code 2).
    Failed,
}

impl RunStatus {
    pub fn name(self) -> &'static str {
        match self {
            RunStatus::Succeeded => "succeeded",
            RunStatus::QualityFailed => "quality_failed",
            RunStatus::Failed => "failed",
        }
    }
}

/// What was read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataSummary {
    pub path: String,
    pub files: usize,
    pub bytes: u64,
    pub rows: u64,
    /// Newest event time in the data.
    pub newest_event: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityReport {
    /// 0-1, see docs/pipeline.md for the formula.
    pub score: f64,
    pub min_score: f64,
    pub passed: bool,
    pub rows: u64,
    pub clean_rows: u64,
    pub quarantined_rows: u64,
    /// Rows without a label, newer than the run time minus `dataset.label_delay`: neither clean
    /// (not trained on) nor quarantined; the models' performance on them is estimated.
    #[serde(default)]
    pub awaiting_label_rows: u64,
    /// Where the failing rows went, when there were any.
    pub quarantine_path: Option<String>,
    /// Rows per broken rule (a row can break several).
    pub rule_counts: Vec<RuleCount>,
    pub checks: Vec<QualityCheck>,
    /// Drift of every feature between the reference and the current window, recorded every run.
    #[serde(default)]
    pub drift: Vec<DriftResult>,
}

/// One feature's drift between the reference window and the current window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftResult {
    pub feature: String,
    /// `numeric` or `categorical`.
    pub kind: String,
    /// Population stability index over bins frozen from the reference.
    #[serde(deserialize_with = "null_as_nan")]
    pub psi: f64,
    /// Two-sample Kolmogorov-Smirnov statistic (numeric features).
    pub ks: Option<f64>,
    /// Jensen-Shannon distance (categorical features).
    pub js: Option<f64>,
    /// The thresholds each measure was held against (`quality.drift.psi_alarm`, `ks_alarm`,
    /// `js_alarm`), for the measures this feature has; absent from reports written before they
    /// were recorded.
    #[serde(default)]
    pub psi_threshold: Option<f64>,
    #[serde(default)]
    pub ks_threshold: Option<f64>,
    #[serde(default)]
    pub js_threshold: Option<f64>,
    /// Whether any measure is above its threshold.
    pub alarm: bool,
    /// Bin labels (`[lo, hi)` ranges or category values) and the share of rows in each bin.
    pub bins: Vec<String>,
    pub reference_share: Vec<f64>,
    pub current_share: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleCount {
    pub rule: String,
    pub rows: u64,
}

/// One check: its measured value against its threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityCheck {
    pub check: String,
    pub column: Option<String>,
    /// JSON has no NaN or infinity: a non-finite value is written as `null` and read back as NaN.
    #[serde(deserialize_with = "null_as_nan")]
    pub measured: f64,
    /// Non-finite (no threshold) is written as `null` and read back as NaN.
    #[serde(deserialize_with = "null_as_nan")]
    pub threshold: f64,
    pub passed: bool,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitSummary {
    pub train_rows: u64,
    pub holdout_rows: u64,
    pub train_positive_rate: f64,
    pub holdout_positive_rate: f64,
    /// Training rows are older than this; holdout rows are this new or newer.
    pub holdout_from: DateTime<Utc>,
    pub window_from: DateTime<Utc>,
    /// Content hash of the training rows.
    pub train_hash: String,
    /// With `training.max_rows`, when the clean rows were more: the clean labelled rows the
    /// quality stage drew its sample from (every row of the dataset it read, not the window
    /// alone); `train_rows` and `holdout_rows` are then the sample's rows in the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampled_from: Option<u64>,
    /// The seed of that sample (`training.seed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_seed: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CandidateReport {
    pub name: String,
    pub family: String,
    pub params: serde_json::Value,
    pub metrics: Option<ClassificationMetrics>,
    /// ROC, precision-recall and calibration curves on the holdout, for plots.
    #[serde(default)]
    pub curves: Option<Curves>,
    pub train_seconds: f64,
    /// Batch prediction time on the holdout, per row.
    pub predict_micros_per_row: Option<f64>,
    /// Size of the serialised model (what `model.msgpack` would hold) and its blake3: the same data,
    /// config and seed give the same bytes.
    #[serde(default)]
    pub model_bytes: Option<u64>,
    #[serde(default)]
    pub model_blake3: Option<String>,
    /// The grid points tried on the validation rows, when there was a grid or threshold tuning.
    #[serde(default)]
    pub selection: Vec<GridResult>,
    /// How settings were chosen, when something is worth saying (validation skipped, say).
    #[serde(default)]
    pub note: Option<String>,
    /// The calibration fitted on the validation rows, when the candidate asks for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<CalibrationReport>,
    /// Its metrics estimated on the rows awaiting their label (`dataset.label_delay`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated: Option<EstimatedMetrics>,
    /// Why the candidate has no metrics, when it failed to train.
    pub error: Option<String>,
}

/// A candidate's calibration: fitted on the validation rows' probabilities (out of bag for a
/// forest) and applied to every probability of the model. The calibration error on the holdout,
/// which neither fit saw, is the candidate's `metrics.ece`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationReport {
    pub method: crate::config::Calibration,
    pub validation_rows: u64,
    /// The validation rows' calibration error before and after the map (after is in-sample).
    pub validation_ece_before: f64,
    pub validation_ece_after: f64,
}

/// Metrics estimated without labels from a model's (calibrated) probabilities: confidence-based
/// performance estimation, as NannyML's CBPE. The expected confusion matrix at the threshold gives
/// the values; the band is where the realised value falls in `confidence` of the label draws the
/// probabilities describe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EstimatedMetrics {
    pub rows: u64,
    pub threshold: f64,
    pub confidence: f64,
    /// The sum of the probabilities: the positives the model expects among the rows.
    pub expected_positives: f64,
    pub accuracy: EstimatedValue,
    pub precision: EstimatedValue,
    pub recall: EstimatedValue,
    pub f1: EstimatedValue,
    /// Absent when the rows cannot hold both classes (every probability 0, or every one 1).
    pub roc_auc: Option<EstimatedValue>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EstimatedValue {
    pub value: f64,
    pub low: f64,
    pub high: f64,
}

impl EstimatedMetrics {
    /// The metrics CBPE estimates, in the order reports show them.
    pub const METRICS: [crate::metrics::Metric; 5] = [
        crate::metrics::Metric::F1,
        crate::metrics::Metric::Precision,
        crate::metrics::Metric::Recall,
        crate::metrics::Metric::Accuracy,
        crate::metrics::Metric::RocAuc,
    ];

    /// The estimate of `metric`, for the metrics CBPE estimates (not the losses).
    pub fn get(&self, metric: crate::metrics::Metric) -> Option<EstimatedValue> {
        use crate::metrics::Metric;
        match metric {
            Metric::Accuracy => Some(self.accuracy),
            Metric::Precision => Some(self.precision),
            Metric::Recall => Some(self.recall),
            Metric::F1 => Some(self.f1),
            Metric::RocAuc => self.roc_auc,
            Metric::PrAuc | Metric::LogLoss | Metric::Brier | Metric::Ece => None,
        }
    }
}

/// One grid point of a candidate, scored on the validation rows (never the holdout).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GridResult {
    pub params: serde_json::Value,
    pub validation_score: f64,
    pub threshold: f64,
    pub chosen: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChampionReport {
    pub version: ModelVersion,
    pub name: String,
    pub family: String,
    /// The champion re-scored on this run's holdout.
    pub metrics: Option<ClassificationMetrics>,
    #[serde(default)]
    pub curves: Option<Curves>,
    /// Why it could not be scored (unloadable files, say).
    pub error: Option<String>,
    pub trained_on_hash: Option<String>,
    /// Its metrics estimated on the rows awaiting their label (`dataset.label_delay`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated: Option<EstimatedMetrics>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateOutcome {
    Deployed,
    KeptChampion,
    Skipped,
}

impl GateOutcome {
    pub fn name(self) -> &'static str {
        match self {
            GateOutcome::Deployed => "deployed",
            GateOutcome::KeptChampion => "kept_champion",
            GateOutcome::Skipped => "skipped",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateReport {
    pub decision: GateOutcome,
    /// The candidate the gate weighed (the best by the primary metric).
    pub candidate: Option<String>,
    pub deployed_version: Option<ModelVersion>,
    /// Plain-language reasons, most important first.
    pub reasons: Vec<String>,
    /// Every rule the gate applied, with its numbers.
    pub rules: Vec<GateRule>,
    /// Maintenance mode, when it was on at the deploy step: nothing is deployed then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<crate::maintenance::MaintenanceMode>,
    /// The weighed candidate against the champion on each slice of the holdout, worst first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slices: Option<SliceReport>,
}

/// The primary metric of the gate's candidate and of the champion on every slice of the holdout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SliceReport {
    pub metric: crate::metrics::Metric,
    /// Slices with fewer rows are listed, not guarded.
    pub min_rows: u64,
    /// `gate.slice_guardrail`, when set (the rule applies only against a scored champion).
    #[serde(default)]
    pub guardrail: Option<f64>,
    /// Worst gain for the candidate first; slices without a gain (no champion, or a metric
    /// undefined on the slice) last.
    pub slices: Vec<SliceMetrics>,
}

/// One slice: the rows of the holdout with one level of a categorical feature, or in one quantile
/// bin of a numeric feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SliceMetrics {
    pub feature: String,
    /// The level, or the range: `[low, high)`, the last bin `[low, high]`.
    pub value: String,
    /// What names the slice from run to run: the level, or `bin 01`, `bin 02`, ... of a numeric
    /// feature (whose edges are each holdout's quantiles, so they move a little).
    pub key: String,
    pub rows: u64,
    pub positives: u64,
    pub candidate: Option<f64>,
    pub champion: Option<f64>,
    /// The candidate's gain over the champion, oriented so that positive is better (for a loss,
    /// the champion's value minus the candidate's).
    pub gain: Option<f64>,
    /// Whether the slice guardrail weighs it: `min_rows` rows and a gain.
    pub guarded: bool,
}

impl GateReport {
    pub fn skipped(reason: impl Into<String>) -> GateReport {
        GateReport {
            decision: GateOutcome::Skipped,
            candidate: None,
            deployed_version: None,
            reasons: vec![reason.into()],
            rules: Vec::new(),
            maintenance: None,
            slices: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateRule {
    pub rule: String,
    pub passed: bool,
    pub measured: Option<f64>,
    pub threshold: Option<f64>,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatternsReport {
    pub store: String,
    pub before: u64,
    pub deleted: u64,
    pub archived: u64,
    pub kept: u64,
    /// Size of the store file before and after, from the file system.
    pub store_bytes_before: u64,
    pub store_bytes_after: u64,
    /// Bytes of archive files written by this run.
    pub archive_bytes_written: u64,
    pub archive_files: Vec<String>,
    /// Patterns created after now: kept by cleanup, because a clock or a writer is wrong.
    #[serde(default)]
    pub created_in_future: u64,
    /// Patterns with status `restored`: brought back by `patterns restore`, left alone by cleanup.
    #[serde(default)]
    pub restored_exempt: u64,
    /// What discovery did before cleanup ran; absent when discovery is off or did not run.
    #[serde(default)]
    pub discovery: Option<PatternDiscoveryReport>,
}

/// Pattern discovery in one run: rules mined from the training window, upserted into the store,
/// their uses counted on the window's events and their precision measured on the holdout.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PatternDiscoveryReport {
    /// Training rows mined.
    pub train_rows: u64,
    /// Rules that passed min_support, min_confidence and min_lift.
    pub mined: u64,
    /// Mined rules new to the store (created now).
    pub discovered: u64,
    /// Mined rules already in the store: support, confidence, lift and last_seen_at refreshed.
    pub updated: u64,
    /// Mined rules found in the archive: left there (`patterns restore` brings them back).
    pub already_archived: u64,
    /// Store patterns that matched at least one event newer than their last use.
    pub matched: u64,
    /// Uses added to usage_count across the store.
    pub uses_counted: u64,
    /// Store patterns whose conditions cannot be evaluated on these events (a feature the data
    /// lacks, an unknown operator or a value that is not a number).
    pub unmatchable: u64,
    /// Holdout events matched by a mined rule, counted once per (rule, event).
    pub holdout_matches: u64,
    /// Of those matches, the share where the event's label is the one the rule predicts; absent
    /// when no rule matched a holdout event.
    pub holdout_precision: Option<f64>,
    /// The numeric cut points used, per feature, after snapping to round numbers.
    pub cut_points: std::collections::BTreeMap<String, Vec<f64>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageTiming {
    pub stage: String,
    pub seconds: f64,
    pub rows: Option<u64>,
    /// The process's peak resident memory during the stage (Linux: `VmHWM` when the stage raised
    /// the process's peak, else the largest `VmRSS` sampled every 5 ms during it); the largest of
    /// the stages' is the run's peak.
    #[serde(default)]
    pub peak_rss_bytes: Option<u64>,
}

/// Curve points of one model on one holdout, thinned to at most a few hundred points each.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Curves {
    /// (false positive rate, true positive rate), from (0, 0) to (1, 1).
    pub roc: Vec<[f64; 2]>,
    /// (recall, precision), by decreasing threshold.
    pub pr: Vec<[f64; 2]>,
    pub calibration: Vec<CalibrationBin>,
}

/// Rows whose predicted probability fell in one bin: mean prediction against observed rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationBin {
    pub predicted: f64,
    pub observed: f64,
    pub rows: u64,
}
