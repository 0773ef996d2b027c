//! Choosing a candidate's hyperparameters (from its grid) and decision threshold on a validation
//! slice of the training window: the newest `validation_days` of the training rows. The holdout is
//! never seen here; it belongs to the gate.

use crate::{Result, TrainedModel};
use caretaker_core::config::{CandidateSpec, ModelParams, TrainingSpec};
use caretaker_core::events::LabelledEvents;
use caretaker_core::metrics::Metric;
use caretaker_evaluate::metrics::{best_threshold, classification_metrics};
use serde::Serialize;

/// One grid point and how it scored on the validation rows.
#[derive(Debug, Clone, Serialize)]
pub struct GridPoint {
    pub params: ModelParams,
    /// The primary metric on the validation rows (at the tuned threshold, when tuning).
    pub validation_score: f64,
    pub threshold: f64,
}

/// A candidate trained for the nightly run, and how its settings were chosen.
#[derive(Debug, Clone)]
pub struct Selected {
    pub model: TrainedModel,
    /// Every grid point tried, in config order; empty when nothing was chosen on validation rows.
    pub grid: Vec<GridPoint>,
    pub validation_rows: usize,
    /// Why the validation step was skipped, when it was.
    pub note: Option<String>,
}

/// Splits the training rows: older rows fit, the newest `days` validate.
fn validation_split(train: &LabelledEvents, days: u32) -> (LabelledEvents, LabelledEvents) {
    let newest = train.timestamps.iter().copied().max().unwrap_or(0);
    let from = newest - days as i64 * 86_400_000_000;
    let (mut fit, mut validate) = (Vec::new(), Vec::new());
    for (i, &t) in train.timestamps.iter().enumerate() {
        if t > from { validate.push(i) } else { fit.push(i) }
    }
    (train.take(&fit), train.take(&validate))
}

fn score(metric: Metric, labels: &[bool], p: &[f64], tune: bool) -> (f64, f64) {
    let threshold_metric = matches!(metric, Metric::F1 | Metric::Accuracy);
    if tune {
        let (t, v) = best_threshold(labels, p, metric);
        if threshold_metric {
            return (v, t);
        }
        let m = classification_metrics(labels, p, t);
        return (
            metric.value(&m).map(|v| if metric.higher_is_better() { v } else { -v }).unwrap_or(f64::NEG_INFINITY),
            t,
        );
    }
    let m = classification_metrics(labels, p, 0.5);
    (metric.value(&m).map(|v| if metric.higher_is_better() { v } else { -v }).unwrap_or(f64::NEG_INFINITY), 0.5)
}

/// Trains `spec` on `train`: when it has a grid or thresholds are tuned, every grid point is fitted
/// on the older training rows and scored on the validation rows; the best is refitted on all
/// training rows and keeps the threshold chosen on validation.
pub fn train_candidate(
    spec: &CandidateSpec,
    training: &TrainingSpec,
    metric: Metric,
    train: &LabelledEvents,
) -> Result<Selected> {
    let choices: Vec<ModelParams> = if spec.grid.is_empty() { vec![spec.params.clone()] } else { spec.grid.clone() };
    if choices.len() == 1 && !training.tune_threshold {
        let model = TrainedModel::fit_params(&spec.name, &choices[0], training, train)?;
        return Ok(Selected { model, grid: Vec::new(), validation_rows: 0, note: None });
    }
    let (fit, validate) = validation_split(train, training.validation_days);
    let positives = validate.positives();
    let usable = fit.len() >= training.min_rows
        && positives > 0
        && positives < validate.len()
        && fit.positives() > 0
        && fit.positives() < fit.len();
    if !usable {
        let model = TrainedModel::fit_params(&spec.name, &spec.params, training, train)?;
        return Ok(Selected {
            model,
            grid: Vec::new(),
            validation_rows: validate.len(),
            note: Some(format!(
                "no grid search or threshold tuning: the validation rows ({} rows, {positives} positive) or the rows before them ({} rows) are too few or hold one class",
                validate.len(),
                fit.len()
            )),
        });
    }
    let mut grid = Vec::with_capacity(choices.len());
    for params in &choices {
        let model = TrainedModel::fit_params(&spec.name, params, training, &fit)?;
        let p = model.predict_proba(&validate)?;
        let (validation_score, threshold) = score(metric, &validate.labels, &p, training.tune_threshold);
        grid.push(GridPoint { params: params.clone(), validation_score, threshold });
    }
    let best = grid
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.validation_score.total_cmp(&b.1.validation_score).then(b.0.cmp(&a.0)))
        .map(|(i, _)| i)
        .expect("at least one grid point");
    let mut model = TrainedModel::fit_params(&spec.name, &grid[best].params, training, train)?;
    model.threshold = grid[best].threshold;
    Ok(Selected { model, grid, validation_rows: validate.len(), note: None })
}
