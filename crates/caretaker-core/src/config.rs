//! The pipeline configuration: parsed into raw structs that reject unknown keys, then validated
//! into checked ones before any work starts.
//!
//! Every problem is reported with the file, the key and the reason, and all of them at once, so
//! that fixing a config is one edit, not one edit per run. Relative paths are resolved against
//! `root`, itself relative to the config file's directory (so a cron job's working directory does
//! not matter).

use crate::metrics::Metric;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

/// A config that could not be read, parsed or validated.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: {}", problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; "))]
    Invalid { path: PathBuf, problems: Vec<ConfigProblem> },
}

/// One bad value: the key (dotted path) and why it is bad.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub key: String,
    pub reason: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.reason)
    }
}

// ---------------------------------------------------------------------------------------------
// Raw: what the TOML says. Doc comments here are the user documentation of each key.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPipeline {
    /// The pipeline's name, shown in reports.
    name: String,
    /// Directory that relative paths are resolved against, relative to this file. Default: the
    /// file's own directory.
    root: Option<PathBuf>,
    dataset: RawDataset,
    #[serde(default)]
    quality: RawQuality,
    #[serde(default)]
    training: RawTraining,
    /// Each table is a [`RawCandidate`] plus an optional `grid` table.
    #[serde(default)]
    candidates: Vec<toml::Table>,
    #[serde(default)]
    gate: RawGate,
    #[serde(default)]
    registry: RawRegistry,
    patterns: Option<RawPatterns>,
    #[serde(default)]
    output: RawOutput,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDataset {
    /// A Parquet file, a directory of Parquet files (Hive partitions included) or a glob.
    path: String,
    id: String,
    timestamp: String,
    label: String,
    #[serde(default)]
    numeric: Vec<String>,
    #[serde(default)]
    categorical: Vec<String>,
    /// When `path` does not exist yet, write the example data there first.
    example: Option<RawExample>,
    /// `caretaker data compact` rewrites small files into files of about this many MiB.
    compact_target_mb: Option<f64>,
    /// How long a label takes to arrive (`"3d"`, `"12h"`): newer rows without one await it.
    label_delay: Option<String>,
    /// With an `s3://` path: endpoint, region, credentials, addressing (see [`STORAGE_OPTIONS`]).
    #[serde(default)]
    storage_options: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExample {
    rows: usize,
    seed: u64,
    files_per_day: Option<usize>,
    unlabelled_hours: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuality {
    min_score: Option<f64>,
    max_null_fraction: Option<f64>,
    max_duplicate_fraction: Option<f64>,
    max_range_violation_fraction: Option<f64>,
    #[serde(default)]
    ranges: BTreeMap<String, [f64; 2]>,
    #[serde(default)]
    allowed: BTreeMap<String, Vec<String>>,
    outlier_rule: Option<OutlierRule>,
    max_outlier_fraction: Option<f64>,
    max_age_hours: Option<f64>,
    future_tolerance_minutes: Option<f64>,
    max_label_shift: Option<f64>,
    estimated_drop_alarm: Option<f64>,
    #[serde(default)]
    drift: RawDrift,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDrift {
    reference_days: Option<u32>,
    current_days: Option<u32>,
    psi_alarm: Option<f64>,
    ks_alarm: Option<f64>,
    js_alarm: Option<f64>,
    max_drifted_share: Option<f64>,
    bins: Option<usize>,
    max_categories: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTraining {
    window_days: Option<u32>,
    holdout_days: Option<u32>,
    seed: Option<u64>,
    min_rows: Option<usize>,
    one_hot_max_levels: Option<usize>,
    validation_days: Option<u32>,
    tune_threshold: Option<bool>,
    max_rows: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "family", rename_all = "snake_case", deny_unknown_fields)]
enum RawCandidate {
    LogisticRegression {
        name: String,
        alpha: Option<f64>,
        max_iterations: Option<u64>,
        gradient_tolerance: Option<f64>,
    },
    DecisionTree {
        name: String,
        max_depth: Option<usize>,
        min_samples_leaf: Option<usize>,
        split_quality: Option<SplitQuality>,
    },
    GaussianNb {
        name: String,
        var_smoothing: Option<f64>,
    },
    RandomForest {
        name: String,
        n_trees: Option<u16>,
        max_depth: Option<u16>,
        min_samples_leaf: Option<usize>,
        features_per_split: Option<usize>,
        max_samples: Option<usize>,
    },
    GradientBoosting {
        name: String,
        learning_rate: Option<f64>,
        max_iterations: Option<usize>,
        max_leaf_nodes: Option<usize>,
        max_depth: Option<usize>,
        min_samples_leaf: Option<usize>,
        l2_regularization: Option<f64>,
        early_stopping: Option<bool>,
    },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGate {
    primary_metric: Option<String>,
    min_improvement: Option<f64>,
    first_run_floor: Option<f64>,
    guardrails: Option<BTreeMap<String, f64>>,
    bootstrap: Option<RawBootstrap>,
    max_predict_micros_per_row: Option<f64>,
    slices: Option<RawSlices>,
    slice_guardrail: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSlices {
    categorical: Option<Vec<String>>,
    numeric: Option<Vec<String>>,
    top_levels: Option<usize>,
    bins: Option<usize>,
    min_rows: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBootstrap {
    resamples: Option<u32>,
    confidence: Option<f64>,
    seed: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegistry {
    keep_last: Option<usize>,
    keep_challengers: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPatterns {
    store: String,
    archive: Option<String>,
    retention_days: Option<u32>,
    delete_below_usage: Option<u64>,
    delete_below_confidence: Option<f64>,
    archive_above_confidence: Option<f64>,
    discover: Option<bool>,
    min_support: Option<f64>,
    min_confidence: Option<f64>,
    min_lift: Option<f64>,
    max_conditions: Option<usize>,
    max_bins: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutput {
    models: Option<String>,
    reports: Option<String>,
    state: Option<String>,
    /// The Prometheus textfile every run replaces (for node_exporter's textfile collector).
    metrics_textfile: Option<String>,
    /// `postgres://...`: the run history in PostgreSQL instead of SQLite in the state directory.
    history: Option<String>,
    /// With `s3://` models, reports or pattern archive: how to reach the object store (default:
    /// the dataset's, when it is in object storage).
    #[serde(default)]
    storage_options: BTreeMap<String, String>,
}

// ---------------------------------------------------------------------------------------------
// Validated.
// ---------------------------------------------------------------------------------------------

/// A validated pipeline: every path resolved, every value in range, every default filled in.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PipelineConfig {
    pub name: String,
    /// The file this came from.
    pub source: PathBuf,
    /// blake3 of the file's bytes, recorded with every model and run.
    pub hash: String,
    pub dataset: DatasetSpec,
    pub quality: QualityPolicy,
    pub training: TrainingSpec,
    pub candidates: Vec<CandidateSpec>,
    pub gate: GatePolicy,
    pub registry: RegistryPolicy,
    pub patterns: Option<PatternPolicy>,
    pub output: OutputDirs,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DatasetSpec {
    pub path: PathBuf,
    pub id: String,
    pub timestamp: String,
    pub label: String,
    pub numeric: Vec<String>,
    pub categorical: Vec<String>,
    pub example: Option<ExampleSpec>,
    /// The size `caretaker data compact` aims at for each file it writes, in bytes
    /// (`dataset.compact_target_mb`, default 128 MiB).
    pub compact_target_bytes: u64,
    /// Rows newer than the run time minus this, with no label, await it: they are neither
    /// quarantined nor trained on, and the models' performance on them is estimated. `None`: every
    /// row without a label is quarantined.
    pub label_delay: Option<std::time::Duration>,
    /// With an `s3://` path (`DatasetSpec::remote`): how to reach the object store, by the keys
    /// of [`STORAGE_OPTIONS`]; anything unset comes from the AWS environment and profile.
    pub storage_options: StorageOptions,
}

/// A directory kept in object storage: its `s3://bucket/prefix` URL and how to reach it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RemoteDir {
    pub url: String,
    pub storage_options: StorageOptions,
}

/// `dataset.storage_options`: serialised and printed (`{:?}`) with the keys' values replaced by
/// `[redacted]`, so that a logged or dumped configuration shows no secret.
#[derive(Clone, PartialEq, Default)]
pub struct StorageOptions(pub BTreeMap<String, String>);

impl StorageOptions {
    /// The options as shown: the keys' values replaced by `[redacted]`.
    fn shown(&self) -> impl Iterator<Item = (&String, &str)> {
        self.0.iter().map(|(key, value)| {
            let secret = matches!(key.as_str(), "access_key_id" | "secret_access_key" | "session_token");
            (key, if secret { "[redacted]" } else { value.as_str() })
        })
    }
}

impl std::ops::Deref for StorageOptions {
    type Target = BTreeMap<String, String>;
    fn deref(&self) -> &BTreeMap<String, String> {
        &self.0
    }
}

impl std::fmt::Debug for StorageOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.shown()).finish()
    }
}

impl Serialize for StorageOptions {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.shown())
    }
}

/// The keys `dataset.storage_options` accepts, and what each sets.
pub const STORAGE_OPTIONS: &[(&str, &str)] = &[
    ("endpoint", "the S3 endpoint URL, for an S3-compatible server (MinIO, Ceph, ...)"),
    ("region", "the bucket's region (default: AWS_REGION, the profile's region, else us-east-1)"),
    ("allow_http", "\"true\" to allow an http:// endpoint"),
    ("virtual_hosted_style_request", "\"false\" for path-style addressing (most S3-compatible servers)"),
    ("access_key_id", "the access key (default: AWS_ACCESS_KEY_ID, else the profile's)"),
    ("secret_access_key", "the secret key (default: AWS_SECRET_ACCESS_KEY, else the profile's)"),
    ("session_token", "a session token for temporary credentials"),
    ("profile", "the profile of ~/.aws/credentials and ~/.aws/config (default: AWS_PROFILE, else default)"),
    ("timeout", "a request's time limit, the whole object's transfer included, such as \"5m\" (default 120s)"),
    ("connect_timeout", "a connection's time limit, such as \"5s\" (default 5s)"),
];

/// Whether `text` (the value of `key`) is an object store URL; anything but `s3://bucket/...`
/// with a `://` fails.
fn check_url(check: &mut Checker, key: &str, text: &str) -> bool {
    let remote = text.contains("://");
    match text.split_once("://") {
        Some(("s3", rest)) if !rest.is_empty() && !rest.starts_with('/') => {}
        Some(("s3", _)) => check.fail(key, format!("{text:?} names no bucket: s3://bucket/prefix/")),
        Some((scheme, _)) => check.fail(
            key,
            format!("{text:?}: {scheme}:// is not supported; a local path or s3://bucket/prefix/ (S3 and S3-compatible servers)"),
        ),
        None => {}
    }
    remote
}

/// `<section>.storage_options`: known keys, well-formed values, keys in pairs; `remote_key` names
/// the s3:// setting that takes them (`None`: nothing in object storage, so no options).
fn check_storage_options(
    check: &mut Checker,
    section: &str,
    options: &BTreeMap<String, String>,
    remote_key: Option<&str>,
) {
    let at = |key: &str| format!("{section}.storage_options.{key}");
    if options.contains_key("access_key_id") != options.contains_key("secret_access_key") {
        check.fail(
            format!("{section}.storage_options"),
            "access_key_id and secret_access_key go together (a key from the file with a secret from the environment is refused by the server)",
        );
    }
    for (key, value) in options {
        if remote_key.is_none() {
            let what = if section == "dataset" {
                "an s3:// dataset.path"
            } else {
                "an s3:// output.models, output.reports or patterns.archive"
            };
            check.fail(at(key), format!("only {what} takes storage options"));
        } else if !STORAGE_OPTIONS.iter().any(|(k, _)| k == key) {
            let known: Vec<&str> = STORAGE_OPTIONS.iter().map(|(k, _)| *k).collect();
            check.fail(at(key), format!("unknown option; the options are {}", known.join(", ")));
        } else if matches!(key.as_str(), "allow_http" | "virtual_hosted_style_request")
            && !matches!(value.as_str(), "true" | "false")
        {
            check.fail(at(key), format!("{value:?} is not \"true\" or \"false\""));
        } else if matches!(key.as_str(), "timeout" | "connect_timeout") && humantime::parse_duration(value).is_err() {
            check.fail(at(key), format!("{value:?} is not a duration such as \"30s\""));
        }
    }
}

impl DatasetSpec {
    /// The object store URL of the dataset, when `path` is one (`s3://bucket/prefix/`).
    pub fn remote(&self) -> Option<&str> {
        self.path.to_str().filter(|p| p.starts_with("s3://"))
    }
}

impl DatasetSpec {
    /// Every feature column, numeric first.
    pub fn features(&self) -> impl Iterator<Item = &String> {
        self.numeric.iter().chain(&self.categorical)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ExampleSpec {
    pub rows: usize,
    pub seed: u64,
    /// Files per daily partition, as an hourly ingest would leave them (default 1).
    pub files_per_day: usize,
    /// The newest hours of the example have no label yet, as in a pipeline whose labels come
    /// late (default 0).
    pub unlabelled_hours: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QualityPolicy {
    /// Below this 0-1 score the run stops before training.
    pub min_score: f64,
    pub max_null_fraction: f64,
    pub max_duplicate_fraction: f64,
    pub max_range_violation_fraction: f64,
    /// Inclusive valid range per numeric column.
    pub ranges: BTreeMap<String, (f64, f64)>,
    /// Allowed values per categorical column; a row with another value is quarantined.
    pub allowed: BTreeMap<String, Vec<String>>,
    pub outlier_rule: OutlierRule,
    /// Share of clean rows flagged as outliers, per numeric column, above which the check fails
    /// (outliers are counted and reported, never dropped).
    pub max_outlier_fraction: f64,
    /// The newest event may be at most this old at run time.
    pub max_age_hours: f64,
    /// Events later than the run time by more than this are quarantined (`future_timestamp`).
    pub future_tolerance_minutes: f64,
    /// Largest allowed change of the positive rate between the reference and current windows.
    pub max_label_shift: f64,
    /// The champion's primary metric estimated on the rows awaiting their label may fall this far
    /// below its realised value on the holdout before the run raises the alarm.
    pub estimated_drop_alarm: f64,
    pub drift: DriftPolicy,
}

/// How outliers are found in each numeric column, on the clean rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutlierRule {
    /// Outside [Q1 - 1.5 IQR, Q3 + 1.5 IQR], quartiles by linear interpolation.
    Iqr,
    /// More than 3.5 robust z-scores from the median (0.6745 |x - median| / MAD).
    Mad,
}

/// Drift between a reference window and the current window, both counted back from the newest
/// event: the current window is the last `current_days`, the reference the `reference_days`
/// before it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriftPolicy {
    pub reference_days: u32,
    pub current_days: u32,
    pub psi_alarm: f64,
    pub ks_alarm: f64,
    pub js_alarm: f64,
    /// Share of features in alarm above which the drift check fails.
    pub max_drifted_share: f64,
    /// Quantile bins of numeric features (frozen from the first reference window seen).
    pub bins: usize,
    /// Categories of a categorical feature tracked by name; the rest share an "other" bin.
    pub max_categories: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrainingSpec {
    /// Days of data, counted back from the newest event, used for training and holdout.
    pub window_days: u32,
    /// The newest days of the window, held out for evaluation.
    pub holdout_days: u32,
    pub seed: u64,
    /// Fewer clean training rows than this and the training stage is skipped.
    pub min_rows: usize,
    /// Categorical features with more levels keep the most frequent ones and an "other" bucket.
    pub one_hot_max_levels: usize,
    /// The newest days of the training rows, set aside to choose grid parameters and the decision
    /// threshold; never the holdout.
    pub validation_days: u32,
    /// Choose each candidate's decision threshold on the validation rows to maximise the primary
    /// metric (F1 when the primary metric does not depend on a threshold).
    pub tune_threshold: bool,
    /// Above this many training rows, the candidates train on a seeded sample of this many,
    /// stratified by label; `None`: every row.
    pub max_rows: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CandidateSpec {
    pub name: String,
    pub params: ModelParams,
    /// Alternatives to `params` from the candidate's `grid`, every combination, validated; the one
    /// scoring best on the validation rows is refitted on all training rows. Empty: no grid.
    pub grid: Vec<ModelParams>,
    /// The map fitted on the validation rows' probabilities and applied to every probability the
    /// model gives, before its threshold; `None`: the model's own probabilities.
    pub calibration: Option<Calibration>,
}

/// How a candidate's probabilities are calibrated (see `caretaker_evaluate::calibration`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Calibration {
    /// A non-decreasing step function fitted by least squares (pool-adjacent-violators).
    Isotonic,
    /// Platt scaling of the model's log-odds.
    Sigmoid,
}

impl Calibration {
    pub fn name(self) -> &'static str {
        match self {
            Calibration::Isotonic => "isotonic",
            Calibration::Sigmoid => "sigmoid",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SplitQuality {
    Gini,
    Entropy,
}

/// A model family and its hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "family", rename_all = "snake_case")]
pub enum ModelParams {
    LogisticRegression {
        alpha: f64,
        max_iterations: u64,
        gradient_tolerance: f64,
    },
    DecisionTree {
        max_depth: Option<usize>,
        min_samples_leaf: usize,
        split_quality: SplitQuality,
    },
    GaussianNb {
        var_smoothing: f64,
    },
    RandomForest {
        n_trees: u16,
        max_depth: Option<u16>,
        min_samples_leaf: usize,
        /// Encoded columns weighed at each split, drawn at random (columns that do not vary in the
        /// node are passed over and not counted); default the square root of the k encoded columns,
        /// as scikit-learn's `max_features = "sqrt"`.
        features_per_split: Option<usize>,
        /// Rows each tree's bootstrap sample draws on average (each row a Poisson number of times);
        /// default as many as the training window holds, as scikit-learn's `max_samples = None`.
        max_samples: Option<usize>,
    },
    /// Gradient boosting on histograms, with scikit-learn's HistGradientBoostingClassifier's
    /// parameters and defaults.
    GradientBoosting {
        learning_rate: f64,
        max_iterations: usize,
        max_leaf_nodes: usize,
        max_depth: Option<usize>,
        min_samples_leaf: usize,
        l2_regularization: f64,
        /// Hold out a tenth of the rows to stop the rounds early; `None`: above 10,000 rows.
        early_stopping: Option<bool>,
    },
}

impl ModelParams {
    pub fn family(&self) -> &'static str {
        match self {
            ModelParams::LogisticRegression { .. } => "logistic_regression",
            ModelParams::DecisionTree { .. } => "decision_tree",
            ModelParams::GaussianNb { .. } => "gaussian_nb",
            ModelParams::RandomForest { .. } => "random_forest",
            ModelParams::GradientBoosting { .. } => "gradient_boosting",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GatePolicy {
    pub primary_metric: Metric,
    /// The best candidate must beat the champion's primary metric by at least this much.
    pub min_improvement: f64,
    /// With no champion, the best candidate deploys only if its primary metric reaches this.
    pub first_run_floor: f64,
    /// The largest drop allowed per metric against the champion (an increase, for losses).
    pub guardrails: BTreeMap<Metric, f64>,
    /// A paired bootstrap over holdout rows: deploy only if the lower bound of the improvement's
    /// confidence interval is above zero.
    pub bootstrap: Option<BootstrapSpec>,
    /// The candidate's batch prediction time per row must stay at or below this.
    pub max_predict_micros_per_row: Option<f64>,
    /// How the holdout is sliced for per-slice metrics.
    pub slices: SliceSpec,
    /// The largest drop of the primary metric against the champion allowed in any slice with
    /// `slices.min_rows` rows; `None`: slices are reported, not guarded.
    pub slice_guardrail: Option<f64>,
}

/// `[gate.slices]`: the slices of the holdout each model is scored on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SliceSpec {
    /// Categorical features sliced by their most frequent levels; `None`: every one.
    pub categorical: Option<Vec<String>>,
    /// Numeric features sliced into quantile bins (none by default).
    pub numeric: Vec<String>,
    /// The most frequent levels of each categorical feature that get a slice.
    pub top_levels: usize,
    /// Quantile bins per numeric feature.
    pub bins: usize,
    /// A slice with fewer holdout rows is reported but not guarded.
    pub min_rows: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BootstrapSpec {
    pub resamples: u32,
    /// Two-sided confidence level of the interval, e.g. 0.95.
    pub confidence: f64,
    pub seed: u64,
}

/// What the registry keeps.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegistryPolicy {
    /// Versions kept besides every version that ever was champion.
    pub keep_last: usize,
    /// Store the gate's candidate as a version even when the gate keeps the champion, so an
    /// operator can `models promote` it.
    pub keep_challengers: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PatternPolicy {
    pub store: PathBuf,
    /// The archive's directory; with `archive_remote`, the local copy in the state directory.
    pub archive: PathBuf,
    /// `patterns.archive = "s3://..."`: where the archive is kept; `archive` is its local copy.
    pub archive_remote: Option<RemoteDir>,
    pub retention_days: u32,
    /// Old patterns used fewer times than this ...
    pub delete_below_usage: u64,
    /// ... and with a confidence below this are deleted.
    pub delete_below_confidence: f64,
    /// Old patterns with a confidence above this are archived.
    pub archive_above_confidence: f64,
    /// How the nightly run mines new patterns from the training window.
    pub discovery: DiscoverySpec,
}

/// Pattern discovery: class association rules mined from the training window over features
/// binned at label-driven cut points.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiscoverySpec {
    /// Mine patterns in the nightly run (`patterns.discover`, default true).
    pub enabled: bool,
    /// A rule's support: the share of training rows that match its conditions and carry its
    /// label (`patterns.min_support`, default 0.005).
    pub min_support: f64,
    /// Of the training rows matching the conditions, the share with the predicted label
    /// (`patterns.min_confidence`, default 0.6).
    pub min_confidence: f64,
    /// Confidence divided by the label's base rate (`patterns.min_lift`, default 1.5).
    pub min_lift: f64,
    /// Conditions per pattern, at most one per feature (`patterns.max_conditions`, default 3).
    pub max_conditions: usize,
    /// Bins per numeric feature, at most (`patterns.max_bins`, default 8).
    pub max_bins: usize,
}

#[derive(Clone, PartialEq, Serialize)]
pub struct OutputDirs {
    /// The registry's directory, or its `s3://bucket/prefix` URL (kept as written).
    pub models: PathBuf,
    /// The run directories; with `reports_remote`, the local copy in the state directory.
    pub reports: PathBuf,
    /// `output.reports = "s3://..."`: where each run's directory is copied once it is written.
    pub reports_remote: Option<String>,
    pub state: PathBuf,
    /// The Prometheus textfile each run replaces; default `<state>/metrics.prom`.
    pub metrics_textfile: PathBuf,
    /// A `postgres://` URL (its password, if any, never printed): the run history in PostgreSQL;
    /// `None`: in SQLite, `history.sqlite` in `state`.
    #[serde(serialize_with = "redacted_url")]
    pub history: Option<String>,
    /// How to reach the object store of `s3://` models, reports or archive (as
    /// `dataset.storage_options`, whose values it takes when it is left out).
    pub storage_options: StorageOptions,
}

impl std::fmt::Debug for OutputDirs {
    /// As serialised: the history's URL without its password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputDirs")
            .field("models", &self.models)
            .field("reports", &self.reports)
            .field("reports_remote", &self.reports_remote)
            .field("state", &self.state)
            .field("metrics_textfile", &self.metrics_textfile)
            .field("history", &self.history.as_deref().map(crate::redact::redact_url))
            .field("storage_options", &self.storage_options)
            .finish()
    }
}

fn redacted_url<S: serde::Serializer>(url: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match url {
        Some(url) => s.serialize_some(&crate::redact::redact_url(url)),
        None => s.serialize_none(),
    }
}

impl PipelineConfig {
    /// Reads and validates a pipeline file.
    pub fn load(path: &Path) -> Result<PipelineConfig, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        Self::from_toml_str(&text, path)
    }

    /// Parses and validates `text` as if it were the file at `path` (which anchors relative paths).
    pub fn from_toml_str(text: &str, path: &Path) -> Result<PipelineConfig, ConfigError> {
        let raw: RawPipeline = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let hash = blake3::hash(text.as_bytes()).to_hex().to_string();
        let mut check = Checker::default();
        let config = validate(raw, path, hash, &mut check);
        if check.problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid { path: path.to_path_buf(), problems: check.problems })
        }
    }
}

#[derive(Default)]
struct Checker {
    problems: Vec<ConfigProblem>,
}

impl Checker {
    fn fail(&mut self, key: impl Into<String>, reason: impl Into<String>) {
        self.problems.push(ConfigProblem { key: key.into(), reason: reason.into() });
    }

    fn fraction(&mut self, key: &str, value: Option<f64>, default: f64) -> f64 {
        let v = value.unwrap_or(default);
        if !(0.0..=1.0).contains(&v) {
            self.fail(key, format!("must be between 0 and 1, got {v}"));
        }
        v
    }

    fn non_empty(&mut self, key: &str, value: &str) {
        if value.trim().is_empty() {
            self.fail(key, "must not be empty");
        }
    }

    fn at_least<T: PartialOrd + fmt::Display + Copy>(&mut self, key: &str, value: T, min: T) -> T {
        if value < min {
            self.fail(key, format!("must be at least {min}, got {value}"));
        }
        value
    }
}

fn validate(raw: RawPipeline, path: &Path, hash: String, check: &mut Checker) -> PipelineConfig {
    let file_dir = crate::fs::parent_dir(path);
    let root = match &raw.root {
        Some(r) => file_dir.join(r),
        None => file_dir.to_path_buf(),
    };
    let resolve = |p: &str| -> PathBuf {
        let p = Path::new(p);
        normalize(&if p.is_absolute() { p.to_path_buf() } else { root.join(p) })
    };

    check.non_empty("name", &raw.name);

    // Dataset: every column named once.
    let d = &raw.dataset;
    check.non_empty("dataset.path", &d.path);
    for (key, v) in [("dataset.id", &d.id), ("dataset.timestamp", &d.timestamp), ("dataset.label", &d.label)] {
        check.non_empty(key, v);
    }
    if d.numeric.is_empty() && d.categorical.is_empty() {
        check.fail("dataset.numeric", "no features: list at least one numeric or categorical column");
    }
    let mut seen = BTreeSet::new();
    let named = [(&d.id, "dataset.id"), (&d.timestamp, "dataset.timestamp"), (&d.label, "dataset.label")];
    let listed = d
        .numeric
        .iter()
        .map(|c| (c, "dataset.numeric"))
        .chain(d.categorical.iter().map(|c| (c, "dataset.categorical")));
    for (column, key) in named.into_iter().chain(listed) {
        if !seen.insert(column.as_str()) {
            check.fail(key, format!("column {column:?} is named more than once in [dataset]"));
        }
    }
    let example = d.example.as_ref().map(|e| {
        check.at_least("dataset.example.rows", e.rows, 100);
        let files_per_day = e.files_per_day.unwrap_or(1);
        check.at_least("dataset.example.files_per_day", files_per_day, 1);
        if files_per_day > 24 {
            check.fail(
                "dataset.example.files_per_day",
                format!("must be at most 24 (one file an hour), got {files_per_day}"),
            );
        }
        ExampleSpec { rows: e.rows, seed: e.seed, files_per_day, unlabelled_hours: e.unlabelled_hours.unwrap_or(0) }
    });
    // Object storage: only s3:// (and S3-compatible servers); nothing is written there.
    let remote = check_url(check, "dataset.path", &d.path);
    if remote && d.example.is_some() {
        check.fail(
            "dataset.example",
            format!("the example data is written locally, not to {}: remove [dataset.example]", d.path),
        );
    }
    check_storage_options(check, "dataset", &d.storage_options, remote.then_some("dataset.path"));
    let label_delay = d.label_delay.as_deref().and_then(|text| match humantime::parse_duration(text.trim()) {
        Ok(delay) if !delay.is_zero() => Some(delay),
        Ok(_) => {
            check.fail(
                "dataset.label_delay",
                "must be longer than zero (leave it out when labels arrive with the events)",
            );
            None
        }
        Err(e) => {
            check.fail("dataset.label_delay", format!("{text:?} is not a duration such as \"3d\" or \"12h\": {e}"));
            None
        }
    });
    let compact_target_mb = d.compact_target_mb.unwrap_or(128.0);
    if !(0.001..=1_048_576.0).contains(&compact_target_mb) {
        check.fail(
            "dataset.compact_target_mb",
            format!("must be a number of MiB between 0.001 and 1048576, got {compact_target_mb}"),
        );
    }

    // Quality.
    let q = &raw.quality;
    let mut ranges = BTreeMap::new();
    for (column, [lo, hi]) in &q.ranges {
        let key = format!("quality.ranges.{column}");
        if !d.numeric.contains(column) {
            check.fail(&key, format!("{column:?} is not a numeric feature of [dataset]"));
        } else if !(lo.is_finite() && hi.is_finite()) || lo > hi {
            check.fail(&key, format!("must be [low, high] with low <= high, got [{lo}, {hi}]"));
        }
        ranges.insert(column.clone(), (*lo, *hi));
    }
    let quality = QualityPolicy {
        min_score: check.fraction("quality.min_score", q.min_score, 0.8),
        max_null_fraction: check.fraction("quality.max_null_fraction", q.max_null_fraction, 0.05),
        max_duplicate_fraction: check.fraction("quality.max_duplicate_fraction", q.max_duplicate_fraction, 0.01),
        max_range_violation_fraction: check.fraction(
            "quality.max_range_violation_fraction",
            q.max_range_violation_fraction,
            0.01,
        ),
        ranges,
        allowed: BTreeMap::new(),
        outlier_rule: q.outlier_rule.unwrap_or(OutlierRule::Iqr),
        max_outlier_fraction: check.fraction("quality.max_outlier_fraction", q.max_outlier_fraction, 0.05),
        max_age_hours: match q.max_age_hours.unwrap_or(48.0) {
            v if v.is_finite() && v > 0.0 => v,
            v => {
                check.fail("quality.max_age_hours", format!("must be a number > 0, got {v}"));
                v
            }
        },
        future_tolerance_minutes: match q.future_tolerance_minutes.unwrap_or(5.0) {
            v if v.is_finite() && v >= 0.0 => v,
            v => {
                check.fail("quality.future_tolerance_minutes", format!("must be a number >= 0, got {v}"));
                v
            }
        },
        max_label_shift: check.fraction("quality.max_label_shift", q.max_label_shift, 0.1),
        estimated_drop_alarm: check.fraction("quality.estimated_drop_alarm", q.estimated_drop_alarm, 0.05),
        drift: DriftPolicy {
            reference_days: check.at_least("quality.drift.reference_days", q.drift.reference_days.unwrap_or(30), 1),
            current_days: check.at_least("quality.drift.current_days", q.drift.current_days.unwrap_or(7), 1),
            psi_alarm: check.at_least("quality.drift.psi_alarm", q.drift.psi_alarm.unwrap_or(0.2), 0.0),
            ks_alarm: check.fraction("quality.drift.ks_alarm", q.drift.ks_alarm, 0.1),
            js_alarm: check.fraction("quality.drift.js_alarm", q.drift.js_alarm, 0.1),
            max_drifted_share: check.fraction("quality.drift.max_drifted_share", q.drift.max_drifted_share, 0.5),
            bins: check.at_least("quality.drift.bins", q.drift.bins.unwrap_or(10), 2),
            max_categories: check.at_least("quality.drift.max_categories", q.drift.max_categories.unwrap_or(50), 1),
        },
    };
    let mut quality = quality;
    for (column, values) in &q.allowed {
        let key = format!("quality.allowed.{column}");
        if !d.categorical.contains(column) {
            check.fail(&key, format!("{column:?} is not a categorical feature of [dataset]"));
        } else if values.is_empty() {
            check.fail(&key, "must list at least one value");
        }
        quality.allowed.insert(column.clone(), values.clone());
    }

    // Training.
    let t = &raw.training;
    let holdout_days = check.at_least("training.holdout_days", t.holdout_days.unwrap_or(7), 1);
    let window_days = t.window_days.unwrap_or(60);
    if window_days <= holdout_days {
        check.fail(
            "training.window_days",
            format!("must be longer than training.holdout_days ({holdout_days}), got {window_days}"),
        );
    }
    let training = TrainingSpec {
        window_days,
        holdout_days,
        seed: t.seed.unwrap_or(42),
        min_rows: check.at_least("training.min_rows", t.min_rows.unwrap_or(100), 2),
        one_hot_max_levels: check.at_least("training.one_hot_max_levels", t.one_hot_max_levels.unwrap_or(20), 1),
        validation_days: t.validation_days.unwrap_or(7),
        tune_threshold: t.tune_threshold.unwrap_or(true),
        max_rows: t.max_rows.map(|m| check.at_least("training.max_rows", m, 100)),
    };
    let train_days = window_days.saturating_sub(holdout_days);
    if window_days > holdout_days && (training.validation_days < 1 || training.validation_days >= train_days) {
        check.fail(
            "training.validation_days",
            format!(
                "must be at least 1 and shorter than the training days (window_days - holdout_days = {train_days}), got {}",
                training.validation_days
            ),
        );
    }

    // Candidates.
    if raw.candidates.is_empty() {
        check.fail("candidates", "no candidate models: add at least one [[candidates]] table");
    }
    let mut names = BTreeSet::new();
    let candidates =
        raw.candidates.iter().enumerate().map(|(i, c)| validate_candidate_table(i, c, &mut names, check)).collect();

    // Gate.
    let g = &raw.gate;
    let primary_metric = match g.primary_metric.as_deref() {
        None => Metric::F1,
        Some(name) => Metric::from_name(name).unwrap_or_else(|| {
            let known: Vec<_> = Metric::ALL.iter().map(|m| m.name()).collect();
            check.fail("gate.primary_metric", format!("unknown metric {name:?}; known: {}", known.join(", ")));
            Metric::F1
        }),
    };
    let min_improvement = g.min_improvement.unwrap_or(0.01);
    if !(min_improvement.is_finite() && min_improvement >= 0.0) {
        check.fail("gate.min_improvement", format!("must be a number >= 0, got {min_improvement}"));
    }
    let mut guardrails = BTreeMap::new();
    match &g.guardrails {
        None => {
            for m in [Metric::Accuracy, Metric::Precision, Metric::Recall, Metric::RocAuc] {
                guardrails.insert(m, 0.02);
            }
        }
        Some(table) => {
            for (name, limit) in table {
                let key = format!("gate.guardrails.{name}");
                match Metric::from_name(name) {
                    None => check.fail(&key, format!("unknown metric {name:?}")),
                    Some(_) if !(limit.is_finite() && *limit >= 0.0) => {
                        check.fail(&key, format!("must be a number >= 0, got {limit}"))
                    }
                    Some(m) => {
                        guardrails.insert(m, *limit);
                    }
                }
            }
        }
    }
    let bootstrap = g.bootstrap.as_ref().map(|b| {
        let confidence = b.confidence.unwrap_or(0.95);
        if !(confidence > 0.5 && confidence < 1.0) {
            check.fail("gate.bootstrap.confidence", format!("must be between 0.5 and 1 (exclusive), got {confidence}"));
        }
        BootstrapSpec {
            resamples: check.at_least("gate.bootstrap.resamples", b.resamples.unwrap_or(1000), 100),
            confidence,
            seed: b.seed.unwrap_or(7),
        }
    });
    if let Some(budget) = g.max_predict_micros_per_row
        && !(budget.is_finite() && budget > 0.0)
    {
        check.fail("gate.max_predict_micros_per_row", format!("must be a number > 0, got {budget}"));
    }
    let slices = match &g.slices {
        None => SliceSpec { categorical: None, numeric: Vec::new(), top_levels: 5, bins: 4, min_rows: 200 },
        Some(s) => {
            for name in s.categorical.iter().flatten() {
                if !d.categorical.contains(name) {
                    check.fail("gate.slices.categorical", format!("{name:?} is not one of dataset.categorical"));
                }
            }
            for name in s.numeric.iter().flatten() {
                if !d.numeric.contains(name) {
                    check.fail("gate.slices.numeric", format!("{name:?} is not one of dataset.numeric"));
                }
            }
            SliceSpec {
                categorical: s.categorical.clone(),
                numeric: s.numeric.clone().unwrap_or_default(),
                top_levels: check.at_least("gate.slices.top_levels", s.top_levels.unwrap_or(5), 1),
                bins: check.at_least("gate.slices.bins", s.bins.unwrap_or(4), 2),
                min_rows: check.at_least("gate.slices.min_rows", s.min_rows.unwrap_or(200), 1),
            }
        }
    };
    if let Some(limit) = g.slice_guardrail
        && !(limit.is_finite() && limit >= 0.0)
    {
        check.fail("gate.slice_guardrail", format!("must be a number >= 0, got {limit}"));
    }
    let gate = GatePolicy {
        slices,
        slice_guardrail: g.slice_guardrail,
        guardrails,
        bootstrap,
        max_predict_micros_per_row: g.max_predict_micros_per_row,
        primary_metric,
        min_improvement,
        first_run_floor: match g.first_run_floor {
            Some(v) if !v.is_finite() => {
                check.fail("gate.first_run_floor", format!("must be a number, got {v}"));
                v
            }
            v => v.unwrap_or(if primary_metric.higher_is_better() { 0.5 } else { f64::INFINITY }),
        },
    };

    let registry = RegistryPolicy {
        keep_last: check.at_least("registry.keep_last", raw.registry.keep_last.unwrap_or(10), 1),
        keep_challengers: raw.registry.keep_challengers.unwrap_or(true),
    };

    // The options reaching the object store of s3:// models, reports or archive: the output's,
    // else the dataset's when the dataset is there too.
    let output_options = match (raw.output.storage_options.is_empty(), remote) {
        (true, true) => d.storage_options.clone(),
        _ => raw.output.storage_options.clone(),
    };

    // Patterns.
    let patterns = raw.patterns.as_ref().map(|p| {
        check.non_empty("patterns.store", &p.store);
        let store = resolve(&p.store);
        // An archive in object storage is kept in the state directory too, and copied there after
        // each change.
        let archive_remote = p
            .archive
            .clone()
            .filter(|a| check_url(check, "patterns.archive", a))
            .map(|url| RemoteDir { url, storage_options: StorageOptions(output_options.clone()) });
        let archive = match &p.archive {
            _ if archive_remote.is_some() => {
                resolve(raw.output.state.as_deref().unwrap_or("state")).join("pattern-archive")
            }
            Some(a) => resolve(a),
            None => crate::fs::parent_dir(&store).join("archive"),
        };
        let delete_below_confidence =
            check.fraction("patterns.delete_below_confidence", p.delete_below_confidence, 0.5);
        let archive_above_confidence =
            check.fraction("patterns.archive_above_confidence", p.archive_above_confidence, 0.8);
        if archive_above_confidence < delete_below_confidence {
            check.fail(
                "patterns.archive_above_confidence",
                format!(
                    "must not be below patterns.delete_below_confidence ({delete_below_confidence}), got {archive_above_confidence}"
                ),
            );
        }
        PatternPolicy {
            store,
            archive,
            archive_remote,
            retention_days: check.at_least("patterns.retention_days", p.retention_days.unwrap_or(90), 1),
            delete_below_usage: p.delete_below_usage.unwrap_or(5),
            delete_below_confidence,
            archive_above_confidence,
            discovery: DiscoverySpec {
                enabled: p.discover.unwrap_or(true),
                min_support: check.fraction("patterns.min_support", p.min_support, 0.005),
                min_confidence: check.fraction("patterns.min_confidence", p.min_confidence, 0.6),
                min_lift: match p.min_lift.unwrap_or(1.5) {
                    v if v.is_finite() && v >= 0.0 => v,
                    v => {
                        check.fail("patterns.min_lift", format!("must be a number >= 0, got {v}"));
                        v
                    }
                },
                max_conditions: check.at_least("patterns.max_conditions", p.max_conditions.unwrap_or(3), 1),
                max_bins: check.at_least("patterns.max_bins", p.max_bins.unwrap_or(8), 2),
            },
        }
    });

    let o = &raw.output;
    let state = resolve(o.state.as_deref().unwrap_or("state"));
    if let Some(t) = &o.metrics_textfile {
        check.non_empty("output.metrics_textfile", t);
        if !t.ends_with(".prom") {
            check.fail("output.metrics_textfile", format!("{t:?} must end in .prom (node_exporter reads only those)"));
        }
    }
    if let Some(url) = &o.history
        && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
    {
        check.fail(
            "output.history",
            format!(
                "{:?} is not a postgres:// URL (leave it out for the SQLite history in the state directory)",
                crate::redact::redact_url(url)
            ),
        );
    }
    // Models, reports and the pattern archive may live in object storage; the options to reach
    // it are the output's, else the dataset's when the dataset is there too.
    let models_remote = o.models.as_deref().is_some_and(|m| check_url(check, "output.models", m));
    let reports_remote = o.reports.clone().filter(|r| check_url(check, "output.reports", r));
    let archive_remote = raw.patterns.as_ref().and_then(|p| p.archive.as_deref()).is_some_and(|a| a.contains("://"));
    let any_remote = models_remote || reports_remote.is_some() || archive_remote;
    check_storage_options(check, "output", &o.storage_options, any_remote.then_some("output.models"));
    let output = OutputDirs {
        history: o.history.clone(),
        models: match o.models.as_deref() {
            Some(url) if models_remote => PathBuf::from(url),
            models => resolve(models.unwrap_or("models")),
        },
        reports: match &reports_remote {
            Some(_) => state.join("reports"),
            None => resolve(o.reports.as_deref().unwrap_or("reports")),
        },
        reports_remote,
        metrics_textfile: o.metrics_textfile.as_deref().map(resolve).unwrap_or_else(|| state.join("metrics.prom")),
        storage_options: StorageOptions(output_options),
        state,
    };

    PipelineConfig {
        name: raw.name.clone(),
        source: path.to_path_buf(),
        hash,
        dataset: DatasetSpec {
            path: if remote { PathBuf::from(&d.path) } else { resolve(&d.path) },
            id: d.id.clone(),
            timestamp: d.timestamp.clone(),
            label: d.label.clone(),
            numeric: d.numeric.clone(),
            categorical: d.categorical.clone(),
            example,
            compact_target_bytes: (compact_target_mb.clamp(0.001, 1_048_576.0) * 1024.0 * 1024.0) as u64,
            label_delay,
            storage_options: StorageOptions(d.storage_options.clone()),
        },
        quality,
        training,
        candidates,
        gate,
        registry,
        patterns,
        output,
    }
}

/// `a/b/../c` as `a/c`, lexically (no file system access: the path may not exist yet), so that
/// reports show `data/events` rather than `pipelines/../data/events`.
fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.components().next_back(), Some(Component::Normal(_))) => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    if out.as_os_str().is_empty() { PathBuf::from(".") } else { out }
}

/// The most grid combinations one candidate may ask for.
const MAX_GRID: usize = 64;

/// Validates one `[[candidates]]` table: the candidate itself, then every combination of its
/// `grid` (each a copy of the table with the grid's values put in).
fn validate_candidate_table(
    i: usize,
    table: &toml::Table,
    names: &mut BTreeSet<String>,
    check: &mut Checker,
) -> CandidateSpec {
    let mut table = table.clone();
    let grid = table.remove("grid");
    let key = format!("candidates[{i}]");
    let calibration = match table.remove("calibration") {
        None => None,
        Some(toml::Value::String(name)) if name == "none" => None,
        Some(toml::Value::String(name)) if name == "isotonic" => Some(Calibration::Isotonic),
        Some(toml::Value::String(name)) if name == "sigmoid" => Some(Calibration::Sigmoid),
        Some(other) => {
            check.fail(
                format!("{key}.calibration"),
                format!("must be \"isotonic\", \"sigmoid\" or \"none\", got {other}"),
            );
            None
        }
    };
    let parse = |t: toml::Table, check: &mut Checker, key: &str| -> Option<RawCandidate> {
        t.try_into::<RawCandidate>().map_err(|e| check.fail(key, e.to_string().trim_end().to_string())).ok()
    };
    let Some(raw) = parse(table.clone(), check, &key) else {
        return CandidateSpec {
            name: table.get("name").and_then(|n| n.as_str()).unwrap_or_default().to_string(),
            params: ModelParams::GaussianNb { var_smoothing: 1e-9 },
            grid: Vec::new(),
            calibration,
        };
    };
    let mut spec = validate_candidate(i, &raw, names, check);
    spec.calibration = calibration;
    let Some(grid) = grid else { return spec };
    let Some(grid) = grid.as_table() else {
        check.fail(format!("{key}.grid"), "must be a table of parameter = [values]");
        return spec;
    };
    // Each value of each parameter on its own first, so a bad one is reported once, by name.
    let mut axes: Vec<(String, Vec<toml::Value>)> = Vec::new();
    for (param, values) in grid {
        let gkey = format!("{key}.grid.{param}");
        if matches!(param.as_str(), "name" | "family" | "calibration") {
            check.fail(&gkey, "only hyperparameters can vary in a grid");
            continue;
        }
        let Some(values) = values.as_array().filter(|v| !v.is_empty()) else {
            check.fail(&gkey, "must be a non-empty list of values");
            continue;
        };
        let mut good = Vec::new();
        for value in values {
            let mut one = table.clone();
            one.insert(param.clone(), value.clone());
            let before = check.problems.len();
            let parsed = one.try_into::<RawCandidate>();
            match parsed {
                Err(e) => {
                    check.fail(&gkey, e.to_string().trim_end().to_string());
                    break;
                }
                Ok(raw) => {
                    validate_candidate(i, &raw, &mut BTreeSet::new(), check);
                    for p in &mut check.problems[before..] {
                        p.key = p.key.replacen(&format!("{key}."), &format!("{key}.grid."), 1);
                    }
                    if check.problems.len() == before {
                        good.push(value.clone());
                    }
                }
            }
        }
        axes.push((param.clone(), good));
    }
    let combinations: usize = axes.iter().map(|(_, v)| v.len()).product();
    if combinations > MAX_GRID {
        check.fail(format!("{key}.grid"), format!("{combinations} combinations, more than {MAX_GRID}"));
        return spec;
    }
    let mut combos: Vec<toml::Table> = vec![table.clone()];
    for (param, values) in &axes {
        combos = combos
            .into_iter()
            .flat_map(|c| {
                values.iter().map(move |v| {
                    let mut c = c.clone();
                    c.insert(param.clone(), v.clone());
                    c
                })
            })
            .collect();
    }
    for combo in combos {
        if let Some(raw) = parse(combo, check, &format!("{key}.grid")) {
            let params = validate_candidate(i, &raw, &mut BTreeSet::new(), check).params;
            if !spec.grid.contains(&params) {
                spec.grid.push(params);
            }
        }
    }
    spec
}

fn validate_candidate(
    i: usize,
    raw: &RawCandidate,
    names: &mut BTreeSet<String>,
    check: &mut Checker,
) -> CandidateSpec {
    let key = |field: &str| format!("candidates[{i}].{field}");
    let name = match raw {
        RawCandidate::LogisticRegression { name, .. }
        | RawCandidate::DecisionTree { name, .. }
        | RawCandidate::GaussianNb { name, .. }
        | RawCandidate::RandomForest { name, .. }
        | RawCandidate::GradientBoosting { name, .. } => name.clone(),
    };
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        check.fail(key("name"), format!("{name:?} must be non-empty letters, digits, '_' or '-'"));
    }
    if !names.insert(name.clone()) {
        check.fail(key("name"), format!("candidate name {name:?} is used twice"));
    }
    let params = match raw {
        RawCandidate::LogisticRegression { alpha, max_iterations, gradient_tolerance, .. } => {
            let alpha = alpha.unwrap_or(1.0);
            if !(alpha.is_finite() && alpha >= 0.0) {
                check.fail(key("alpha"), format!("must be a number >= 0, got {alpha}"));
            }
            let gradient_tolerance = gradient_tolerance.unwrap_or(1e-4);
            if !(gradient_tolerance.is_finite() && gradient_tolerance > 0.0) {
                check.fail(key("gradient_tolerance"), format!("must be > 0, got {gradient_tolerance}"));
            }
            ModelParams::LogisticRegression {
                alpha,
                max_iterations: check.at_least(&key("max_iterations"), max_iterations.unwrap_or(100), 1),
                gradient_tolerance,
            }
        }
        RawCandidate::DecisionTree { max_depth, min_samples_leaf, split_quality, .. } => {
            if let Some(d) = max_depth {
                check.at_least(&key("max_depth"), *d, 1);
            }
            ModelParams::DecisionTree {
                max_depth: *max_depth,
                min_samples_leaf: check.at_least(&key("min_samples_leaf"), min_samples_leaf.unwrap_or(1), 1),
                split_quality: split_quality.unwrap_or(SplitQuality::Gini),
            }
        }
        RawCandidate::GaussianNb { var_smoothing, .. } => {
            let v = var_smoothing.unwrap_or(1e-9);
            if !(v.is_finite() && v >= 0.0) {
                check.fail(key("var_smoothing"), format!("must be a number >= 0, got {v}"));
            }
            ModelParams::GaussianNb { var_smoothing: v }
        }
        RawCandidate::RandomForest {
            n_trees, max_depth, min_samples_leaf, features_per_split, max_samples, ..
        } => {
            if let Some(d) = max_depth {
                check.at_least(&key("max_depth"), *d, 1);
            }
            if let Some(m) = features_per_split {
                check.at_least(&key("features_per_split"), *m, 1);
            }
            ModelParams::RandomForest {
                n_trees: check.at_least(&key("n_trees"), n_trees.unwrap_or(100), 1),
                max_depth: *max_depth,
                min_samples_leaf: check.at_least(&key("min_samples_leaf"), min_samples_leaf.unwrap_or(1), 1),
                features_per_split: *features_per_split,
                max_samples: max_samples.map(|m| check.at_least(&key("max_samples"), m, 1)),
            }
        }
        RawCandidate::GradientBoosting {
            learning_rate,
            max_iterations,
            max_leaf_nodes,
            max_depth,
            min_samples_leaf,
            l2_regularization,
            early_stopping,
            ..
        } => {
            let learning_rate = learning_rate.unwrap_or(0.1);
            if !(learning_rate.is_finite() && learning_rate > 0.0) {
                check.fail(key("learning_rate"), format!("must be a number above 0, got {learning_rate}"));
            }
            let l2_regularization = l2_regularization.unwrap_or(0.0);
            if !(l2_regularization.is_finite() && l2_regularization >= 0.0) {
                check.fail(key("l2_regularization"), format!("must be a number >= 0, got {l2_regularization}"));
            }
            if let Some(d) = max_depth {
                check.at_least(&key("max_depth"), *d, 1);
            }
            ModelParams::GradientBoosting {
                learning_rate,
                max_iterations: check.at_least(&key("max_iterations"), max_iterations.unwrap_or(100), 1),
                max_leaf_nodes: check.at_least(&key("max_leaf_nodes"), max_leaf_nodes.unwrap_or(31), 2),
                max_depth: *max_depth,
                min_samples_leaf: check.at_least(&key("min_samples_leaf"), min_samples_leaf.unwrap_or(20), 1),
                l2_regularization,
                early_stopping: *early_stopping,
            }
        }
    };
    CandidateSpec { name, params, grid: Vec::new(), calibration: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
name = "bridge"
root = ".."
[dataset]
path = "data/events"
id = "event_id"
timestamp = "ts"
label = "failed"
numeric = ["latency_ms", "retries"]
categorical = ["service"]
[[candidates]]
name = "logreg"
family = "logistic_regression"
[[candidates]]
name = "tree"
family = "decision_tree"
max_depth = 6
"#;

    fn load(text: &str) -> Result<PipelineConfig, ConfigError> {
        PipelineConfig::from_toml_str(text, Path::new("/srv/caretaker/pipelines/nightly.toml"))
    }

    #[test]
    fn the_run_history_goes_to_postgresql_only_by_a_postgres_url_never_printed_with_its_password() {
        assert_eq!(load(MINIMAL).unwrap().output.history, None, "SQLite in the state directory by default");
        let c = load(&format!("{MINIMAL}[output]\nhistory = \"postgres://app:Pa55@db/runs\"\n")).unwrap();
        assert_eq!(c.output.history.as_deref(), Some("postgres://app:Pa55@db/runs"));
        let shown = serde_json::to_string(&c.output).unwrap();
        assert!(shown.contains("postgres://app:***@db/runs") && !shown.contains("Pa55"), "{shown}");
        let printed = format!("{c:?}");
        assert!(printed.contains("postgres://app:***@db/runs") && !printed.contains("Pa55"), "{printed}");
        let err = load(&format!("{MINIMAL}[output]\nhistory = \"mysql://app:Pa55@db/runs\"\n")).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("output.history") && text.contains("not a postgres:// URL"), "{text}");
        assert!(!text.contains("Pa55"), "{text}");
    }

    #[test]
    fn models_reports_and_the_archive_may_be_urls_reached_with_the_output_or_dataset_options() {
        let outputs = "[patterns]\nstore = \"data/patterns/store.parquet\"\narchive = \"s3://ml/bridge/archive\"\n[output]\nmodels = \"s3://ml/bridge/models\"\nreports = \"s3://ml/bridge/reports/\"\n";
        let options = "[output.storage_options]\nendpoint = \"http://127.0.0.1:9000\"\naccess_key_id = \"AKIA0000\"\nsecret_access_key = \"s3cr3t\"\n";
        let c = load(&format!("{MINIMAL}{outputs}{options}")).unwrap();
        assert_eq!(c.output.models, Path::new("s3://ml/bridge/models"), "not resolved against root");
        assert_eq!(c.output.reports_remote.as_deref(), Some("s3://ml/bridge/reports/"));
        assert_eq!(c.output.reports, Path::new("/srv/caretaker/state/reports"), "the local copy");
        let archive = c.patterns.as_ref().unwrap().archive_remote.as_ref().unwrap();
        assert_eq!(
            (archive.url.as_str(), archive.storage_options["endpoint"].as_str()),
            ("s3://ml/bridge/archive", "http://127.0.0.1:9000")
        );
        assert_eq!(c.patterns.as_ref().unwrap().archive, Path::new("/srv/caretaker/state/pattern-archive"));
        let printed = format!("{c:?}{}", serde_json::to_string(&c).unwrap());
        assert!(!printed.contains("s3cr3t") && !printed.contains("AKIA0000"), "{printed}");

        // Without options of their own, the output takes the dataset's when the dataset is in s3.
        let remote = MINIMAL.replace("path = \"data/events\"", "path = \"s3://ml/bridge/events/\"");
        let c = load(&format!("{remote}[dataset.storage_options]\nregion = \"eu-west-1\"\n{outputs}")).unwrap();
        assert_eq!(c.output.storage_options["region"], "eu-west-1");

        for (text, expected) in [
            (format!("{MINIMAL}[output]\nmodels = \"gs://ml/models\"\n"), "output.models"),
            (format!("{MINIMAL}[output]\nreports = \"s3:///reports\"\n"), "names no bucket"),
            (format!("{MINIMAL}[output.storage_options]\nregion = \"eu\"\n"), "output.storage_options.region"),
            (format!("{MINIMAL}{outputs}[output.storage_options]\nendpiont = \"x\"\n"), "unknown option"),
        ] {
            let err = load(&text).unwrap_err().to_string();
            assert!(err.contains(expected), "{expected:?} not in {err}");
        }
    }

    #[test]
    fn defaults_are_filled_in_and_paths_resolved_against_root() {
        let c = load(MINIMAL).unwrap();
        assert_eq!(c.dataset.path, Path::new("/srv/caretaker/data/events"));
        assert_eq!(c.output.models, Path::new("/srv/caretaker/models"));
        assert_eq!(c.gate.primary_metric, Metric::F1);
        assert_eq!(c.gate.min_improvement, 0.01);
        assert_eq!(c.quality.min_score, 0.8);
        assert_eq!(c.training.holdout_days, 7);
        assert_eq!(
            c.candidates[1].params,
            ModelParams::DecisionTree { max_depth: Some(6), min_samples_leaf: 1, split_quality: SplitQuality::Gini }
        );
        assert!(c.patterns.is_none());
    }

    #[test]
    fn an_s3_path_is_kept_as_a_url_with_its_storage_options_checked() {
        let remote = MINIMAL.replace("path = \"data/events\"", "path = \"s3://ml-data/bridge/events/\"");
        let options = "[dataset.storage_options]\nendpoint = \"http://127.0.0.1:9000\"\nallow_http = \"true\"\naccess_key_id = \"AKIA0000\"\nsecret_access_key = \"s3cr3t\"\n";
        let c = load(&format!("{remote}{options}")).unwrap();
        assert_eq!(c.dataset.remote(), Some("s3://ml-data/bridge/events/"), "not resolved against root");
        assert_eq!(c.dataset.storage_options["endpoint"], "http://127.0.0.1:9000");
        let printed = format!("{c:?}");
        assert!(printed.contains("\"secret_access_key\": \"[redacted]\"") && !printed.contains("s3cr3t"), "{printed}");
        let shown = serde_json::to_string(&c.dataset).unwrap();
        assert!(!shown.contains("s3cr3t") && shown.contains("[redacted]"), "{shown}");
        assert_eq!(load(MINIMAL).unwrap().dataset.remote(), None);
        let problems = |text: &str| load(text).unwrap_err().to_string();
        for (text, needle) in [
            (format!("{remote}[dataset.storage_options]\nendpiont = \"x\"\n"), "dataset.storage_options.endpiont"),
            (format!("{remote}[dataset.storage_options]\nallow_http = \"yes\"\n"), "not \"true\" or \"false\""),
            (format!("{remote}[dataset.storage_options]\ntimeout = \"soon\"\n"), "dataset.storage_options.timeout"),
            (format!("{MINIMAL}[dataset.storage_options]\nregion = \"eu\"\n"), "only an s3:// dataset.path"),
            (format!("{remote}[dataset.storage_options]\nsecret_access_key = \"x\"\n"), "go together"),
            (remote.replace("s3://ml-data", "gs://ml-data"), "gs:// is not supported"),
            (remote.replace("s3://ml-data/bridge/events/", "s3:///events"), "names no bucket"),
            (format!("{remote}[dataset.example]\nrows = 1000\nseed = 1\n"), "the example data is written locally"),
        ] {
            let err = problems(&text);
            assert!(err.contains(needle), "expected {needle:?} in {err}");
        }
    }

    #[test]
    fn an_unknown_key_is_named_with_its_line() {
        let text = MINIMAL.replace("[dataset]", "[dataset]\nlabel_column = \"x\"");
        let err = load(&text).unwrap_err().to_string();
        assert!(err.contains("nightly.toml"), "{err}");
        assert!(err.contains("label_column"), "{err}");
        assert!(err.contains("line"), "{err}");
    }

    #[test]
    fn an_unknown_family_is_named() {
        let err = load(&MINIMAL.replace("decision_tree", "deep_net")).unwrap_err().to_string();
        assert!(err.contains("deep_net"), "{err}");
    }

    #[test]
    fn bad_values_are_all_reported_with_their_keys() {
        let text = format!(
            "{MINIMAL}\n[quality]\nmin_score = 1.5\n[quality.ranges]\nretries = [5, 1]\nservice = [0, 1]\n[gate]\nprimary_metric = \"auc\"\n[training]\nwindow_days = 5\nholdout_days = 7\n"
        );
        let err = load(&text).unwrap_err();
        let ConfigError::Invalid { problems, .. } = &err else { panic!("{err}") };
        let keys: Vec<_> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "quality.ranges.retries",
                "quality.ranges.service",
                "quality.min_score",
                "training.window_days",
                "gate.primary_metric"
            ]
        );
        assert!(err.to_string().contains("must be between 0 and 1, got 1.5"), "{err}");
    }

    #[test]
    fn the_compaction_target_defaults_to_128_mib_and_rejects_nonsense() {
        assert_eq!(load(MINIMAL).unwrap().dataset.compact_target_bytes, 128 * 1024 * 1024);
        let half = load(&MINIMAL.replace("[dataset]", "[dataset]\ncompact_target_mb = 0.5")).unwrap();
        assert_eq!(half.dataset.compact_target_bytes, 512 * 1024);
        let err = load(&MINIMAL.replace("[dataset]", "[dataset]\ncompact_target_mb = 0")).unwrap_err().to_string();
        assert!(err.contains("dataset.compact_target_mb: must be a number of MiB between 0.001"), "{err}");
    }

    #[test]
    fn a_grid_expands_to_every_validated_combination() {
        let text = MINIMAL
            .replace("max_depth = 6", "max_depth = 6\ngrid = { max_depth = [4, 8], min_samples_leaf = [5, 20] }");
        let c = load(&text).unwrap();
        assert_eq!(c.candidates[1].grid.len(), 4);
        assert!(c.candidates[1].grid.contains(&ModelParams::DecisionTree {
            max_depth: Some(8),
            min_samples_leaf: 20,
            split_quality: SplitQuality::Gini
        }));
        assert!(c.candidates[0].grid.is_empty());
    }

    #[test]
    fn a_label_delay_is_a_duration_and_a_wrong_one_is_named() {
        assert_eq!(load(MINIMAL).unwrap().dataset.label_delay, None);
        let with = |delay: &str| {
            MINIMAL.replace("label = \"failed\"", &format!("label = \"failed\"\nlabel_delay = {delay:?}"))
        };
        let c = load(&with("3d")).unwrap();
        assert_eq!(c.dataset.label_delay, Some(std::time::Duration::from_secs(3 * 86_400)));
        assert_eq!(c.quality.estimated_drop_alarm, 0.05);
        let err = load(&with("three days")).unwrap_err().to_string();
        assert!(err.contains("dataset.label_delay: \"three days\" is not a duration such as \"3d\""), "{err}");
        let err = load(&with("0s")).unwrap_err().to_string();
        assert!(err.contains("dataset.label_delay: must be longer than zero"), "{err}");
    }

    #[test]
    fn slices_default_to_every_categorical_feature_and_name_only_dataset_features() {
        let c = load(MINIMAL).unwrap();
        assert_eq!(c.gate.slices.categorical, None);
        assert!(c.gate.slices.numeric.is_empty());
        assert_eq!((c.gate.slices.top_levels, c.gate.slices.min_rows), (5, 200));
        assert_eq!(c.gate.slice_guardrail, None);
        let text = format!(
            "{MINIMAL}\n[gate]\nslice_guardrail = 0.05\n[gate.slices]\nnumeric = [\"latency_ms\"]\nbins = 5\nmin_rows = 50\n"
        );
        let c = load(&text).unwrap();
        assert_eq!(c.gate.slice_guardrail, Some(0.05));
        assert_eq!(
            (c.gate.slices.numeric.as_slice(), c.gate.slices.bins, c.gate.slices.min_rows),
            (&["latency_ms".to_string()][..], 5, 50)
        );
        let text =
            format!("{MINIMAL}\n[gate]\nslice_guardrail = -1\n[gate.slices]\nnumeric = [\"service\"]\nbins = 1\n");
        let err = load(&text).unwrap_err().to_string();
        assert!(err.contains("gate.slices.numeric: \"service\" is not one of dataset.numeric"), "{err}");
        assert!(err.contains("gate.slices.bins: must be at least 2, got 1"), "{err}");
        assert!(err.contains("gate.slice_guardrail: must be a number >= 0, got -1"), "{err}");
    }

    #[test]
    fn a_candidate_names_its_calibration_and_a_wrong_one_is_refused_by_key() {
        let text = MINIMAL.replace("max_depth = 6", "max_depth = 6\ncalibration = \"isotonic\"");
        let c = load(&text).unwrap();
        assert_eq!(c.candidates[1].calibration, Some(Calibration::Isotonic));
        assert_eq!(c.candidates[0].calibration, None);
        let text = MINIMAL.replace("max_depth = 6", "max_depth = 6\ncalibration = \"platt\"");
        let err = load(&text).unwrap_err().to_string();
        assert!(
            err.contains("candidates[1].calibration: must be \"isotonic\", \"sigmoid\" or \"none\", got \"platt\""),
            "{err}"
        );
        let text =
            MINIMAL.replace("max_depth = 6", "max_depth = 6\ngrid = { calibration = [\"isotonic\", \"sigmoid\"] }");
        let err = load(&text).unwrap_err().to_string();
        assert!(err.contains("candidates[1].grid.calibration: only hyperparameters can vary"), "{err}");
    }

    #[test]
    fn a_bad_grid_value_is_named_under_grid() {
        let text = MINIMAL.replace("max_depth = 6", "max_depth = 6\ngrid = { max_depth = [4, 0], depth = [1] }");
        let err = load(&text).unwrap_err().to_string();
        assert!(err.contains("candidates[1].grid.max_depth: must be at least 1, got 0"), "{err}");
        assert!(err.contains("candidates[1].grid.depth: unknown field `depth`"), "{err}");
        assert_eq!(err.matches("unknown field").count(), 1, "{err}");
    }

    #[test]
    fn gate_guardrails_default_and_can_be_set() {
        let c = load(MINIMAL).unwrap();
        assert_eq!(c.gate.guardrails.get(&Metric::Recall), Some(&0.02));
        assert!(c.gate.bootstrap.is_none());
        let text = format!(
            "{MINIMAL}\n[gate]\nguardrails = {{ recall = 0.05, speed = 1 }}\nbootstrap = {{ resamples = 500 }}\n"
        );
        let err = load(&text).unwrap_err().to_string();
        assert!(err.contains("gate.guardrails.speed: unknown metric"), "{err}");
        let text = format!("{MINIMAL}\n[gate]\nguardrails = {{ recall = 0.05 }}\nbootstrap = {{ resamples = 500 }}\n");
        let c = load(&text).unwrap();
        assert_eq!(c.gate.guardrails.len(), 1);
        assert_eq!(c.gate.bootstrap.unwrap().resamples, 500);
    }

    #[test]
    fn duplicate_columns_and_candidate_names_are_rejected() {
        let text = MINIMAL
            .replace("categorical = [\"service\"]", "categorical = [\"retries\"]")
            .replace("\"tree\"", "\"logreg\"");
        let err = load(&text).unwrap_err().to_string();
        assert!(err.contains("dataset.categorical: column \"retries\" is named more than once"), "{err}");
        assert!(err.contains("candidates[1].name: candidate name \"logreg\" is used twice"), "{err}");
    }
}
