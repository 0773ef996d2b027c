//! The candidates of one run: each trained on the training rows, scored on the holdout, and
//! offered to the gate. The nightly run and `models reset` share this, so a reset trains exactly
//! what a nightly run would.

use crate::split::TimeSplit;
use caretaker_core::config::PipelineConfig;
use caretaker_core::events::LabelledEvents;
use caretaker_core::ids::{ModelVersion, RunId};
use caretaker_core::metrics::ClassificationMetrics;
use caretaker_core::report::{CandidateReport, GridResult};
use caretaker_evaluate::gate::Contender;
use caretaker_evaluate::metrics::classification_metrics;
use caretaker_registry::ModelCard;
use caretaker_train::TrainedModel;
use chrono::{DateTime, Utc};
use std::time::Instant;

/// A trained candidate with its holdout scores.
pub(crate) struct Scored {
    pub model: TrainedModel,
    pub bytes: Vec<u8>,
    pub metrics: ClassificationMetrics,
    pub probabilities: Vec<f64>,
    pub micros: f64,
}

/// Trains every candidate of `config` on `split.train` and scores it on `split.holdout`. One
/// report per candidate, in config order; a candidate that failed has its error in the report
/// and `None` beside it.
pub(crate) fn train_and_score(
    config: &PipelineConfig,
    split: &TimeSplit,
) -> (Vec<CandidateReport>, Vec<Option<Scored>>) {
    let mut reports = Vec::with_capacity(config.candidates.len());
    let mut scored = Vec::with_capacity(config.candidates.len());
    // Shared by the candidates: the validation split and the tree families' binned window.
    let rows = caretaker_train::select::TrainingRows::new(&split.train, &config.training);
    for spec in &config.candidates {
        let started = Instant::now();
        let selected = caretaker_train::select::train_candidate(spec, config.gate.primary_metric, &rows);
        let train_seconds = started.elapsed().as_secs_f64();
        let mut candidate = CandidateReport {
            name: spec.name.clone(),
            family: spec.params.family().to_string(),
            params: params_json(&spec.params),
            metrics: None,
            curves: None,
            train_seconds,
            predict_micros_per_row: None,
            model_bytes: None,
            model_blake3: None,
            selection: Vec::new(),
            note: None,
            calibration: None,
            estimated: None,
            error: None,
        };
        let predicted = selected.and_then(|selected| {
            let started = Instant::now();
            let p = selected.model.predict_proba(&split.holdout)?;
            let micros = started.elapsed().as_secs_f64() * 1e6 / split.holdout.len().max(1) as f64;
            Ok((selected, p, micros))
        });
        match predicted {
            Ok((selected, p, micros)) => {
                let model = selected.model;
                let metrics = classification_metrics(&split.holdout.labels, &p, model.threshold);
                let bytes = model.to_bytes();
                candidate.params = params_json(&model.params);
                candidate.metrics = Some(metrics.clone());
                candidate.curves = Some(caretaker_evaluate::curves::curves(&split.holdout.labels, &p));
                candidate.predict_micros_per_row = Some(micros);
                candidate.model_bytes = Some(bytes.len() as u64);
                candidate.model_blake3 = Some(blake3::hash(&bytes).to_hex().to_string());
                candidate.note = selected.note;
                candidate.calibration = selected.calibration;
                candidate.selection = selected
                    .grid
                    .iter()
                    .map(|g| GridResult {
                        params: params_json(&g.params),
                        validation_score: g.validation_score,
                        threshold: g.threshold,
                        chosen: g.params == model.params,
                    })
                    .collect();
                tracing::debug!(candidate = %spec.name, f1 = metrics.f1, train_seconds, "candidate scored");
                scored.push(Some(Scored { bytes, model, metrics, probabilities: p, micros }));
            }
            Err(e) => {
                tracing::warn!(candidate = %spec.name, error = %e, "candidate failed");
                candidate.error = Some(e.to_string());
                scored.push(None);
            }
        }
        reports.push(candidate);
    }
    (reports, scored)
}

/// The scored candidates as the gate sees them, each with its index in `scored`.
pub(crate) fn contenders<'a>(config: &'a PipelineConfig, scored: &'a [Option<Scored>]) -> Vec<(usize, Contender<'a>)> {
    scored
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            s.as_ref().map(|s| {
                (
                    i,
                    Contender {
                        name: &config.candidates[i].name,
                        metrics: &s.metrics,
                        probabilities: &s.probabilities,
                        predict_micros_per_row: Some(s.micros),
                    },
                )
            })
        })
        .collect()
}

/// The registry card of `winner`, trained on `train` in run `run_id`.
pub(crate) fn model_card(
    config: &PipelineConfig,
    run_id: &RunId,
    winner: &Scored,
    train: &LabelledEvents,
    train_hash: &str,
    now: DateTime<Utc>,
) -> ModelCard {
    ModelCard {
        version: ModelVersion(0),
        name: winner.model.name.clone(),
        family: winner.model.params.family().to_string(),
        params: params_json(&winner.model.params),
        features: winner.model.encoding.names(),
        metrics: Some(winner.metrics.clone()),
        threshold: winner.model.threshold,
        calibration: winner.model.calibrator.as_ref().map(|c| c.method()),
        train_rows: train.len() as u64,
        train_hash: train_hash.to_string(),
        config_hash: config.hash.clone(),
        seed: config.training.seed,
        code_version: env!("CARGO_PKG_VERSION").to_string(),
        created_at: now,
        run_id: Some(run_id.to_string()),
        replaced: None,
        model_blake3: String::new(),
        model_bytes: winner.bytes.len() as u64,
    }
}

fn params_json(params: &impl serde::Serialize) -> serde_json::Value {
    serde_json::to_value(params).expect("model parameters serialise to JSON")
}
