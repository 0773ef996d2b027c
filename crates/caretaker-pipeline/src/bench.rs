//! `caretaker bench train`: fit time, prediction time and holdout scores of every candidate on a
//! pipeline's data, measured the way the nightly run measures them. The figures are compared with
//! the scikit-learn reference by `bench/train.sh`, which runs both on the same file, with the same
//! split and hyperparameters, one after the other.

use crate::split::split;
use crate::{Error, Result};
use caretaker_core::config::PipelineConfig;
use caretaker_data::dataset::DatasetFiles;
use caretaker_evaluate::metrics::classification_metrics;
use caretaker_train::TrainedModel;
use serde::Serialize;
use std::time::Instant;

#[derive(Debug, Serialize)]
pub struct TrainBench {
    pub dataset: String,
    pub rows: u64,
    pub train_rows: usize,
    pub holdout_rows: usize,
    pub quality_seconds: f64,
    pub candidates: Vec<CandidateBench>,
}

#[derive(Debug, Serialize)]
pub struct CandidateBench {
    pub name: String,
    pub family: String,
    pub fit_seconds: f64,
    pub predict_micros_per_row: f64,
    pub f1: f64,
    pub roc_auc: Option<f64>,
    pub threshold: f64,
    pub model_bytes: usize,
}

/// Fits every candidate of `config` (or those named in `only`) on its training window.
pub fn train(config: &PipelineConfig, only: &[String]) -> Result<TrainBench> {
    let scratch =
        tempfile::tempdir().map_err(|e| Error::Other { path: std::env::temp_dir(), reason: e.to_string() })?;
    let started = Instant::now();
    let files = DatasetFiles::find(&config.dataset.path)?;
    let quality = caretaker_quality::assess(&caretaker_quality::QualityInput {
        files: &files,
        spec: &config.dataset,
        policy: &config.quality,
        quarantine_path: &scratch.path().join("quarantine.parquet"),
        now: chrono::Utc::now(),
        state_dir: scratch.path(),
    })?;
    let quality_seconds = started.elapsed().as_secs_f64();
    let events = quality.events.ok_or_else(|| Error::Other {
        path: config.dataset.path.clone(),
        reason: "the data fails a blocking quality check; run `caretaker quality` for the details".into(),
    })?;
    let split = split(&events, &config.training)
        .ok_or_else(|| Error::Other { path: config.dataset.path.clone(), reason: "no clean rows".into() })?;
    drop(events);
    let mut candidates = Vec::new();
    for spec in config.candidates.iter().filter(|c| only.is_empty() || only.contains(&c.name)) {
        let started = Instant::now();
        let model = TrainedModel::fit(spec, &config.training, &split.train)
            .map_err(|e| Error::Other { path: config.source.clone(), reason: e.to_string() })?;
        let fit_seconds = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let p = model
            .predict_proba(&split.holdout)
            .map_err(|e| Error::Other { path: config.source.clone(), reason: e.to_string() })?;
        let predict_micros_per_row = started.elapsed().as_secs_f64() * 1e6 / split.holdout.len().max(1) as f64;
        let m = classification_metrics(&split.holdout.labels, &p, model.threshold);
        tracing::info!(candidate = %spec.name, fit_seconds, f1 = m.f1, "fitted");
        candidates.push(CandidateBench {
            name: spec.name.clone(),
            family: spec.params.family().to_string(),
            fit_seconds,
            predict_micros_per_row,
            f1: m.f1,
            roc_auc: m.roc_auc,
            threshold: model.threshold,
            model_bytes: model.to_bytes().len(),
        });
    }
    Ok(TrainBench {
        dataset: config.dataset.path.display().to_string(),
        rows: quality.report.rows,
        train_rows: split.train.len(),
        holdout_rows: split.holdout.len(),
        quality_seconds,
        candidates,
    })
}
