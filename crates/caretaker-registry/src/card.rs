//! The model card and the champion pointer.

use caretaker_core::ids::ModelVersion;
use caretaker_core::metrics::ClassificationMetrics;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// `card.json`: what a version is, how it was made, how it scored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    pub version: ModelVersion,
    /// The candidate's name in the pipeline config.
    pub name: String,
    pub family: String,
    pub params: serde_json::Value,
    /// The encoded feature columns, in the model's order.
    pub features: Vec<String>,
    /// Scores on the holdout of the run that trained it.
    pub metrics: Option<ClassificationMetrics>,
    pub threshold: f64,
    /// The calibration the model applies to its probabilities before the threshold, when it has
    /// one (the map itself is in `model.msgpack`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<caretaker_core::config::Calibration>,
    pub train_rows: u64,
    /// Content hash of the training rows.
    pub train_hash: String,
    pub config_hash: String,
    pub seed: u64,
    /// The caretaker version that trained it.
    pub code_version: String,
    pub created_at: DateTime<Utc>,
    pub run_id: Option<String>,
    /// The champion this version replaced when it was deployed.
    pub replaced: Option<ModelVersion>,
    /// blake3 of `model.msgpack`, checked on every load.
    pub model_blake3: String,
    pub model_bytes: u64,
}

/// `champion.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChampionPointer {
    pub version: ModelVersion,
    pub since: DateTime<Utc>,
    pub reason: String,
    pub run_id: Option<String>,
}
