//! Choosing a candidate's hyperparameters (from its grid) and decision threshold on a validation
//! slice of the training window: the newest `validation_days` of the training rows. The holdout is
//! never seen here; it belongs to the gate.
//!
//! The candidates of a run share one [`TrainingRows`]: the split into fitting and validation rows,
//! and the binned window of the tree families, built once on first use. A tree family's
//! validation fit grows on the fitting rows of that window and scores the validation rows by their
//! bins. The window's bins are placed on every training row's feature values (no label is read to
//! place them), so the validation fit sees where the newest rows' values lie, never their labels.
//!
//! A random forest is not fitted twice: it is grown once on every training row, and each of its
//! grid points is scored on the validation rows out of bag (each row by the trees whose bootstrap
//! draw left it out, as scikit-learn's `oob_score`). No row's score comes from a tree that saw its
//! label; a fit on the older rows and a refit on all cost the nightly run's forest twice its time.

use crate::binned::BinnedWindow;
use crate::encoding::Encoding;
use crate::{Result, TrainedModel, families};
use caretaker_core::config::{CandidateSpec, ModelParams, TrainingSpec};
use caretaker_core::events::LabelledEvents;
use caretaker_core::metrics::Metric;
use caretaker_core::report::CalibrationReport;
use caretaker_evaluate::calibration::{Calibrator, expected_calibration_error};
use caretaker_evaluate::metrics::{best_threshold, classification_metrics};
use serde::Serialize;
use std::sync::OnceLock;

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
    /// The calibrator the model carries, how it was fitted and what it changed on the validation
    /// rows.
    pub calibration: Option<CalibrationReport>,
}

/// The training rows of one run and what its candidates share.
pub struct TrainingRows<'a> {
    events: &'a LabelledEvents,
    training: &'a TrainingSpec,
    /// Every training row, and the older rows that fit and the newest that validate (ascending).
    all: Vec<u32>,
    fit: Vec<u32>,
    validate: Vec<u32>,
    /// The fitting and validation rows as events of their own, for the families fitted on a
    /// matrix.
    parts: OnceLock<(LabelledEvents, LabelledEvents)>,
    binned: OnceLock<(Encoding, BinnedWindow)>,
}

impl<'a> TrainingRows<'a> {
    pub fn new(events: &'a LabelledEvents, training: &'a TrainingSpec) -> TrainingRows<'a> {
        let newest = events.timestamps.iter().copied().max().unwrap_or(0);
        let from = newest - training.validation_days as i64 * 86_400_000_000;
        let (validate, fit) = (0..events.len() as u32).partition(|&i| events.timestamps[i as usize] > from);
        TrainingRows {
            events,
            training,
            all: (0..events.len() as u32).collect(),
            fit,
            validate,
            parts: OnceLock::new(),
            binned: OnceLock::new(),
        }
    }

    fn parts(&self) -> &(LabelledEvents, LabelledEvents) {
        self.parts.get_or_init(|| {
            let take = |rows: &[u32]| self.events.take(&rows.iter().map(|&r| r as usize).collect::<Vec<_>>());
            (take(&self.fit), take(&self.validate))
        })
    }

    fn binned(&self) -> Result<&(Encoding, BinnedWindow)> {
        if let Some(b) = self.binned.get() {
            return Ok(b);
        }
        let b = crate::binned_window(self.events, self.training)?;
        Ok(self.binned.get_or_init(|| b))
    }

    fn positives(&self, rows: &[u32]) -> usize {
        rows.iter().filter(|&&r| self.events.labels[r as usize]).count()
    }

    /// A model of `params` fitted on every training row, from `near` (the validation fit) where
    /// the family can start from a model.
    fn fit_all(&self, name: &str, params: &ModelParams, near: Option<&TrainedModel>) -> Result<TrainedModel> {
        if families::is_binned(params) {
            let (encoding, window) = self.binned()?;
            return Ok(TrainedModel::from_binned(
                name,
                params,
                encoding.clone(),
                window,
                &self.all,
                self.training.seed,
            ));
        }
        TrainedModel::fit_from(name, params, self.training, self.events, near)
    }

    /// For a random forest: the forest grown on every training row, and the validation rows'
    /// out-of-bag probabilities (each from the trees whose draw left the row out) with their
    /// labels; a row that every tree drew is left out. `None` for the other families.
    fn out_of_bag_fit(&self, name: &str, params: &ModelParams) -> Result<Option<OutOfBagFit>> {
        if !matches!(params, ModelParams::RandomForest { .. }) {
            return Ok(None);
        }
        let (encoding, window) = self.binned()?;
        let (fit, oob) = families::fit_forest_out_of_bag(params, window, &self.all, &self.validate, self.training.seed)
            .expect("a forest");
        let (mut p, mut labels) = (Vec::with_capacity(oob.len()), Vec::with_capacity(oob.len()));
        for (&row, prob) in self.validate.iter().zip(oob) {
            if let Some(prob) = prob {
                p.push(prob);
                labels.push(self.events.labels[row as usize]);
            }
        }
        let model = TrainedModel::from_fit(name, params, encoding.clone(), fit);
        Ok(Some((p, labels, model)))
    }

    /// The validation rows' probabilities under a model of `params` fitted on the older rows, and
    /// that model when it was fitted on a matrix.
    fn validation_fit(&self, name: &str, params: &ModelParams) -> Result<(Vec<f64>, Option<TrainedModel>)> {
        if families::is_binned(params) {
            let (_, window) = self.binned()?;
            let fit = families::fit_binned(params, window, &self.fit, self.training.seed);
            return Ok((fit.predict_binned(window, &self.validate), None));
        }
        let (fit, validate) = self.parts();
        let model = TrainedModel::fit_params(name, params, self.training, fit)?;
        Ok((model.predict_proba(validate)?, Some(model)))
    }
}

/// A forest grown on every training row: its validation rows' out-of-bag probabilities, their
/// labels, and the model.
type OutOfBagFit = (Vec<f64>, Vec<bool>, TrainedModel);

/// What scoring a grid point on the validation rows left: the final model (a forest, grown on
/// every row and scored out of bag), or a fit on the older rows that the final fit may start from.
enum Fitted {
    Final(TrainedModel),
    Near(Option<TrainedModel>),
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

/// Trains `spec` on `rows`: when it has a grid, thresholds are tuned or it is calibrated, every
/// grid point is fitted on the older training rows and scored on the validation rows (calibrated
/// there first, when the candidate is calibrated); the best is refitted on all training rows and
/// keeps the threshold and the calibration chosen on the validation rows.
pub fn train_candidate(spec: &CandidateSpec, metric: Metric, rows: &TrainingRows) -> Result<Selected> {
    let training = rows.training;
    let choices: Vec<ModelParams> = if spec.grid.is_empty() { vec![spec.params.clone()] } else { spec.grid.clone() };
    if choices.len() == 1 && !training.tune_threshold && spec.calibration.is_none() {
        let model = rows.fit_all(&spec.name, &choices[0], None)?;
        return Ok(Selected { model, grid: Vec::new(), validation_rows: 0, note: None, calibration: None });
    }
    let (fit, validate) = (rows.fit.len(), rows.validate.len());
    let (fit_positives, positives) = (rows.positives(&rows.fit), rows.positives(&rows.validate));
    let usable =
        fit >= training.min_rows && positives > 0 && positives < validate && fit_positives > 0 && fit_positives < fit;
    if !usable {
        let model = rows.fit_all(&spec.name, &spec.params, None)?;
        let mut skipped = Vec::new();
        if choices.len() > 1 {
            skipped.push("grid search");
        }
        if training.tune_threshold {
            skipped.push("threshold tuning");
        }
        if spec.calibration.is_some() {
            skipped.push("calibration");
        }
        return Ok(Selected {
            model,
            grid: Vec::new(),
            validation_rows: validate,
            note: Some(format!(
                "no {}: the validation rows ({validate} rows, {positives} positive) or the rows before them ({fit} rows) are too few or hold one class",
                skipped.join(" or ")
            )),
            calibration: None,
        });
    }
    let labels: Vec<bool> = rows.validate.iter().map(|&r| rows.events.labels[r as usize]).collect();
    let mut grid = Vec::with_capacity(choices.len());
    let mut fitted = Vec::with_capacity(choices.len());
    // Each grid point's calibration, when the candidate asks for one.
    let mut calibrations: Vec<Option<(Calibrator, CalibrationReport)>> = Vec::with_capacity(choices.len());
    for params in &choices {
        // The validation rows' probabilities and labels (a forest's: the rows out of bag).
        let (mut p, p_labels, model) = match rows.out_of_bag_fit(&spec.name, params)? {
            // A forest is grown once, on every row, and scored out of bag.
            Some((p, oob_labels, model)) => (p, oob_labels, Fitted::Final(model)),
            None => {
                let (p, model) = rows.validation_fit(&spec.name, params)?;
                (p, labels.clone(), Fitted::Near(model))
            }
        };
        // A calibrated candidate's grid point is scored, and its threshold chosen, on the
        // probabilities its calibration gives.
        let calibration = spec.calibration.and_then(|method| {
            let calibrator = Calibrator::fit(method, &p_labels, &p)?;
            let before = expected_calibration_error(&p_labels, &p);
            calibrator.apply_all(&mut p);
            let report = CalibrationReport {
                method,
                validation_rows: p_labels.len() as u64,
                validation_ece_before: before.unwrap_or(0.0),
                validation_ece_after: expected_calibration_error(&p_labels, &p).unwrap_or(0.0),
            };
            Some((calibrator, report))
        });
        let (validation_score, threshold) = score(metric, &p_labels, &p, training.tune_threshold);
        grid.push(GridPoint { params: params.clone(), validation_score, threshold });
        fitted.push(Some(model));
        calibrations.push(calibration);
    }
    let best = grid
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.validation_score.total_cmp(&b.1.validation_score).then(b.0.cmp(&a.0)))
        .map(|(i, _)| i)
        .expect("at least one grid point");
    let mut model = match fitted[best].take().expect("each grid point's fit") {
        Fitted::Final(model) => model,
        Fitted::Near(near) => rows.fit_all(&spec.name, &grid[best].params, near.as_ref())?,
    };
    let calibration = calibrations[best].take().map(|(calibrator, report)| {
        model.calibrate(calibrator);
        report
    });
    model.threshold = grid[best].threshold;
    Ok(Selected { model, grid, validation_rows: validate, note: None, calibration })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Classifier;
    use crate::tests::{events, families, training};
    use caretaker_core::config::Calibration;

    fn tuned() -> TrainingSpec {
        TrainingSpec { tune_threshold: true, ..training() }
    }

    #[test]
    fn every_family_tunes_its_threshold_on_the_newest_rows_and_refits_on_all() {
        // 3,000 rows a minute apart: the newest day (1,440 rows) validates.
        let train = events(3000, 11);
        let spec = tuned();
        let rows = TrainingRows::new(&train, &spec);
        for params in families() {
            let candidate =
                CandidateSpec { name: "c".into(), params: params.clone(), grid: Vec::new(), calibration: None };
            let selected = train_candidate(&candidate, Metric::F1, &rows).unwrap();
            assert_eq!(selected.validation_rows, 1440, "{}", params.family());
            assert_eq!(selected.grid.len(), 1);
            assert_eq!(selected.model.threshold, selected.grid[0].threshold);
            assert!(selected.grid[0].validation_score > 0.5, "{}: {:?}", params.family(), selected.grid);
            // The final model is fitted on every training row: the same as fitting it directly.
            let direct = TrainedModel::fit_params("c", &params, &spec, &train).unwrap();
            let (ours, theirs) = (selected.model.predict_proba(&train).unwrap(), direct.predict_proba(&train).unwrap());
            match (&selected.model.classifier, &direct.classifier) {
                // Logistic regression starts from its validation fit: the same optimum (to the
                // tolerance), in fewer steps.
                (Classifier::Logistic(warm), Classifier::Logistic(cold)) => {
                    assert!(warm.iterations < cold.iterations, "{} against {}", warm.iterations, cold.iterations);
                    let worst = ours.iter().zip(&theirs).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
                    assert!(worst < 0.01, "{worst}");
                }
                _ => assert_eq!(ours, theirs, "{}", params.family()),
            }
        }
    }

    #[test]
    fn the_validation_fit_never_reads_the_labels_of_the_validation_rows() {
        let train = events(3000, 12);
        let mut flipped = train.clone();
        let spec = tuned();
        let newest = train.timestamps.iter().max().copied().unwrap();
        for (label, t) in flipped.labels.iter_mut().zip(&train.timestamps) {
            if *t > newest - 86_400_000_000 {
                *label = !*label;
            }
        }
        let (a, b) = (TrainingRows::new(&train, &spec), TrainingRows::new(&flipped, &spec));
        // (A forest has no validation fit: it is scored out of bag, below.)
        for params in families().into_iter().filter(|p| !matches!(p, ModelParams::RandomForest { .. })) {
            let (pa, _) = a.validation_fit("c", &params).unwrap();
            let (pb, _) = b.validation_fit("c", &params).unwrap();
            assert_eq!(pa, pb, "{}", params.family());
        }
    }

    #[test]
    fn a_forest_is_grown_once_and_scores_each_validation_row_by_the_trees_that_did_not_draw_it() {
        let train = events(3000, 13);
        let spec = tuned();
        let forest = families().into_iter().find(|p| matches!(p, ModelParams::RandomForest { .. })).unwrap();
        let rows = TrainingRows::new(&train, &spec);
        let (p, labels, model) = rows.out_of_bag_fit("c", &forest).unwrap().unwrap();
        // 12 trees each drawing 3,000 of 3,000 rows: a row is left out by about 12 e^-1 = 4.4 of
        // them, and drawn by all 12 with probability (1 - e^-1)^12, 0.4%.
        assert!(p.len() > 1400 && p.len() <= 1440, "{}", p.len());
        assert_eq!(labels.len(), p.len());
        // A validation row's label changes the trees that drew it, never its own probability: the
        // trees that score it never saw it.
        let validate: Vec<usize> = (0..train.len())
            .filter(|&i| train.timestamps[i] > train.timestamps.iter().max().unwrap() - 86_400_000_000)
            .collect();
        let mut flipped = train.clone();
        let row = validate[100];
        flipped.labels[row] = !flipped.labels[row];
        let other = TrainingRows::new(&flipped, &spec);
        let (q, _, flipped_model) = other.out_of_bag_fit("c", &forest).unwrap().unwrap();
        let oob = |rows: &TrainingRows, p: &[f64]| -> Vec<Option<f64>> {
            let (_, window) = rows.binned().unwrap();
            let (_, oob) =
                families::fit_forest_out_of_bag(&forest, window, &rows.all, &rows.validate, rows.training.seed)
                    .unwrap();
            assert_eq!(oob.iter().flatten().count(), p.len());
            oob
        };
        let (before, after) = (oob(&rows, &p), oob(&other, &q));
        let at = validate.iter().position(|&r| r == row).unwrap();
        assert!(before[at].is_some());
        assert_eq!(before[at], after[at]);
        assert_ne!(before, after, "the flipped label reached the trees that drew the row");
        assert_ne!(model.predict_proba(&train).unwrap(), flipped_model.predict_proba(&train).unwrap());
        // The forest chosen is that one fit, with the threshold its out-of-bag scores gave.
        let candidate = CandidateSpec { name: "c".into(), params: forest.clone(), grid: Vec::new(), calibration: None };
        let selected = train_candidate(&candidate, Metric::F1, &rows).unwrap();
        assert_eq!(selected.model.predict_proba(&train).unwrap(), model.predict_proba(&train).unwrap());
        assert_eq!(selected.model.threshold, score(Metric::F1, &labels, &p, true).1);
    }

    /// `n` rows a minute apart, 30% positive, with five copies of one noisy feature: naive Bayes
    /// counts the same evidence five times, and its probabilities are far too sure.
    fn echoed(n: usize, seed: u64) -> LabelledEvents {
        use caretaker_core::events::NumericColumn;
        let mut rng = caretaker_core::rng::SplitMix64::new(seed);
        let mut u = || (rng.next() >> 11) as f64 / (1u64 << 53) as f64;
        let (mut x, mut labels) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for _ in 0..n {
            let y = u() < 0.3;
            // Roughly normal noise (the sum of four uniforms) around 0 or 1.
            let noise = (u() + u() + u() + u() - 2.0) * 1.2;
            x.push(y as u8 as f64 + noise);
            labels.push(y);
        }
        LabelledEvents {
            timestamps: (0..n as i64).map(|i| i * 60_000_000).collect(),
            labels,
            numeric: (0..5).map(|k| NumericColumn { name: format!("x{k}"), values: x.clone() }).collect(),
            categorical: Vec::new(),
        }
    }

    #[test]
    fn a_calibrated_candidate_carries_its_map_and_its_probabilities_come_closer_to_the_rates() {
        let (train, holdout) = (echoed(6000, 21), echoed(4000, 22));
        let spec = training();
        let rows = TrainingRows::new(&train, &spec);
        let nb = ModelParams::GaussianNb { var_smoothing: 1e-9 };
        let plain = CandidateSpec { name: "nb".into(), params: nb.clone(), grid: Vec::new(), calibration: None };
        let raw = train_candidate(&plain, Metric::F1, &rows).unwrap();
        assert!(raw.calibration.is_none() && raw.model.calibrator.is_none());
        let ece = |m: &TrainedModel| {
            expected_calibration_error(&holdout.labels, &m.predict_proba(&holdout).unwrap()).unwrap()
        };
        let before = ece(&raw.model);
        assert!(before > 0.05, "the planted overconfidence: {before}");
        for method in [Calibration::Isotonic, Calibration::Sigmoid] {
            let candidate = CandidateSpec { calibration: Some(method), ..plain.clone() };
            let selected = train_candidate(&candidate, Metric::F1, &rows).unwrap();
            let report = selected.calibration.clone().unwrap();
            // A release that reads only uncalibrated models refuses this one rather than drop its map.
            assert_eq!(
                (selected.model.format, raw.model.format),
                (crate::CALIBRATED_MODEL_FORMAT, crate::MODEL_FORMAT)
            );
            assert_eq!((report.method, report.validation_rows), (method, 1440));
            assert!(report.validation_ece_after < report.validation_ece_before, "{report:?}");
            // On rows neither fit saw, the calibrated model is far closer to the rates.
            let after = ece(&selected.model);
            assert!(after < before / 2.0, "{method:?}: {before} -> {after}");
            // The map goes with the model: the bytes read back give the same probabilities, and
            // the classifier under it is the uncalibrated model's.
            let back = TrainedModel::from_bytes(&selected.model.to_bytes()).unwrap();
            assert_eq!(back.predict_proba(&holdout).unwrap(), selected.model.predict_proba(&holdout).unwrap());
            assert_eq!(back.predict_uncalibrated(&holdout).unwrap(), raw.model.predict_proba(&holdout).unwrap());
            // Calibration keeps the ranking (the isotonic map may tie rows, never reorder them).
            let m = classification_metrics(&holdout.labels, &back.predict_proba(&holdout).unwrap(), 0.5);
            let r = classification_metrics(&holdout.labels, &raw.model.predict_proba(&holdout).unwrap(), 0.5);
            assert!(m.roc_auc.unwrap() > r.roc_auc.unwrap() - 0.01, "{:?} {:?}", m.roc_auc, r.roc_auc);
        }
        // An uncalibrated model's bytes do not mention calibration at all.
        assert!(!raw.model.to_bytes().windows(10).any(|w| w == b"calibrator"));
    }
}
