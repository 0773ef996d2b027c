//! Retraining: feature encoding fitted on training rows, and the candidate model families.
//!
//! A [`TrainedModel`] is everything needed to score raw events: the [`encoding::Encoding`]
//! (one-hot with a cap and an "other" bucket, standardisation), fitted on the training rows only,
//! and the classifier. It serialises with rmp-serde, byte for byte the same for the same data,
//! config and seed, and scores [`LabelledEvents`] directly, so the champion and the candidates go
//! through exactly the same code at evaluation.
//!
//! Families: linfa logistic regression, linfa decision tree, linfa Gaussian naive Bayes and
//! smartcore random forest. Both tree families end up as [`trees::FlatTree`]s (the decision tree
//! is grown node by node with linfa choosing each split, see [`grow`]; forest trees are copied
//! from smartcore), which route a row as the fit divided the rows and carry each leaf's share of
//! positive training rows: neither linfa's tree nor smartcore's forest exposes class
//! probabilities, and ROC-AUC, log loss and the Brier score need them.
//!
//! ```no_run
//! # use caretaker_core::{config::*, events::LabelledEvents};
//! # fn example(spec: &CandidateSpec, training: &TrainingSpec, train: &LabelledEvents, holdout: &LabelledEvents) {
//! let model = caretaker_train::TrainedModel::fit(spec, training, train).unwrap();
//! let probabilities = model.predict_proba(holdout).unwrap();
//! let bytes = model.to_bytes();
//! # }
//! ```

pub mod binned;
pub mod boosting;
pub mod encoding;
mod families;
mod hist_tree;
pub mod linear;
pub mod select;
pub mod trees;

use caretaker_core::config::{CandidateSpec, ModelParams, TrainingSpec};
use caretaker_core::events::LabelledEvents;
use caretaker_evaluate::calibration::Calibrator;
use serde::{Deserialize, Serialize};

pub use families::Classifier;

/// Why a model could not be trained or used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("candidate {name} ({family}) failed to train: {reason}")]
    Fit { name: String, family: &'static str, reason: String },
    #[error("the model expects feature {feature:?}, which the data does not have")]
    MissingFeature { feature: String },
    #[error("the model file is not a readable model: {0}")]
    Decode(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Bumped when the serialised form changes incompatibly.
pub const MODEL_FORMAT: u32 = 1;

/// The format of a model that carries a calibrator: a release that reads only format 1 would drop
/// the map and score the model on uncalibrated probabilities against a threshold chosen on
/// calibrated ones, so it must refuse the model instead. A model without a calibrator keeps format
/// 1, and its bytes are what they were.
pub const CALIBRATED_MODEL_FORMAT: u32 = 2;

/// A fitted model with its encoding.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainedModel {
    pub format: u32,
    pub name: String,
    pub params: ModelParams,
    pub encoding: encoding::Encoding,
    pub classifier: Classifier,
    /// Rows with a probability at or above this are predicted positive.
    pub threshold: f64,
    /// Applied to the classifier's probabilities before the threshold; absent (and not written)
    /// for a model without calibration, so such a model's bytes are what they were before
    /// calibration existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibrator: Option<Calibrator>,
}

impl TrainedModel {
    /// Fits the candidate on `train` with its configured parameters (no grid, threshold 0.5).
    pub fn fit(spec: &CandidateSpec, training: &TrainingSpec, train: &LabelledEvents) -> Result<TrainedModel> {
        Self::fit_params(&spec.name, &spec.params, training, train)
    }

    /// Fits a model of `params` on `train`.
    pub fn fit_params(
        name: &str,
        params: &ModelParams,
        training: &TrainingSpec,
        train: &LabelledEvents,
    ) -> Result<TrainedModel> {
        Self::fit_from(name, params, training, train, None)
    }

    /// As [`TrainedModel::fit_params`], starting from `near` where the family can (see
    /// `families::fit`).
    pub(crate) fn fit_from(
        name: &str,
        params: &ModelParams,
        training: &TrainingSpec,
        train: &LabelledEvents,
        near: Option<&TrainedModel>,
    ) -> Result<TrainedModel> {
        let fail = |reason: String| Error::Fit { name: name.to_string(), family: params.family(), reason };
        if train.is_empty() {
            return Err(fail("no training rows".into()));
        }
        let positives = train.positives();
        if positives == 0 || positives == train.len() {
            return Err(fail(format!(
                "the training rows hold one class only ({positives} positives of {})",
                train.len()
            )));
        }
        if families::is_binned(params) {
            let (encoding, window) = binned_window(train, training)?;
            let pool: Vec<u32> = (0..train.len() as u32).collect();
            return Ok(Self::from_binned(name, params, encoding, &window, &pool, training.seed));
        }
        let encoding = encoding::Encoding::fit(train, training.one_hot_max_levels);
        let design = linear::Design::new(&encoding, train)?;
        let start = near.and_then(|m| families::start_from(&m.classifier, &m.encoding.names(), &encoding.names()));
        let classifier = families::fit(params, &design, &train.labels, start).map_err(fail)?;
        Ok(TrainedModel {
            format: MODEL_FORMAT,
            name: name.to_string(),
            params: params.clone(),
            encoding,
            classifier,
            threshold: 0.5,
            calibrator: None,
        })
    }

    /// A tree family fitted on the rows `pool` of `window`, binned from rows encoded by `encoding`.
    fn from_binned(
        name: &str,
        params: &ModelParams,
        encoding: encoding::Encoding,
        window: &binned::BinnedWindow,
        pool: &[u32],
        seed: u64,
    ) -> TrainedModel {
        let fit = families::fit_binned(params, window, pool, seed);
        TrainedModel::from_fit(name, params, encoding, fit)
    }

    /// A model of a family grown on the binned window, from its fit.
    fn from_fit(
        name: &str,
        params: &ModelParams,
        encoding: encoding::Encoding,
        fit: families::BinnedFit,
    ) -> TrainedModel {
        TrainedModel {
            format: MODEL_FORMAT,
            name: name.to_string(),
            params: params.clone(),
            encoding,
            classifier: fit.into_classifier(params),
            threshold: 0.5,
            calibrator: None,
        }
    }

    /// The probability that each row is positive, calibrated when the model carries a
    /// calibrator. Rows are encoded and scored a block at a time: a holdout of millions of rows as
    /// one dense matrix of its encoded columns would take gigabytes.
    pub fn predict_proba(&self, events: &LabelledEvents) -> Result<Vec<f64>> {
        let mut p = self.predict_uncalibrated(events)?;
        if let Some(c) = &self.calibrator {
            c.apply_all(&mut p);
        }
        Ok(p)
    }

    /// The classifier's own probabilities, before any calibration.
    pub fn predict_uncalibrated(&self, events: &LabelledEvents) -> Result<Vec<f64>> {
        const BLOCK: usize = 16_384;
        let mut out = Vec::with_capacity(events.len());
        for start in (0..events.len()).step_by(BLOCK) {
            let x = self.encoding.transform_rows(events, start..(start + BLOCK).min(events.len()))?;
            out.extend(self.classifier.predict_proba(&x));
        }
        if events.is_empty() {
            // A model still names a feature the data lacks.
            self.encoding.transform(events)?;
        }
        Ok(out)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        rmp_serde::to_vec_named(self).expect("a model always serialises")
    }

    /// Makes `calibrator` part of the model: applied to every probability from now on.
    pub fn calibrate(&mut self, calibrator: Calibrator) {
        self.calibrator = Some(calibrator);
        self.format = CALIBRATED_MODEL_FORMAT;
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<TrainedModel> {
        let model: TrainedModel = rmp_serde::from_slice(bytes).map_err(|e| Error::Decode(e.to_string()))?;
        let expected = if model.calibrator.is_some() { CALIBRATED_MODEL_FORMAT } else { MODEL_FORMAT };
        if model.format != expected {
            return Err(Error::Decode(format!(
                "model format {} is not a format this caretaker reads ({MODEL_FORMAT}, or {CALIBRATED_MODEL_FORMAT} with a calibrator)",
                model.format
            )));
        }
        Ok(model)
    }
}

/// The encoding of the tree families (numeric values in their own units) fitted on `train`, and
/// `train` binned by it.
fn binned_window(
    train: &LabelledEvents,
    training: &TrainingSpec,
) -> Result<(encoding::Encoding, binned::BinnedWindow)> {
    let encoding = encoding::Encoding::fit_raw(train, training.one_hot_max_levels);
    let window = binned::BinnedWindow::new(&encoding, train, training.seed)?;
    Ok((encoding, window))
}

/// The cores this process may use.
pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// Runs `f` on `0..items` on every core and returns the results in index order: which thread
/// ran which item does not show in the result.
pub(crate) fn on_all_cores<R: Send>(items: usize, f: impl Fn(usize) -> R + Sync) -> Vec<R> {
    let threads = cores().min(items.max(1));
    if threads <= 1 {
        return (0..items).map(f).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut results: Vec<Option<R>> = Vec::new();
    results.resize_with(items, || None);
    let results = std::sync::Mutex::new(results);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= items {
                        break;
                    }
                    let r = f(i);
                    results.lock().expect("no thread panicked holding it")[i] = Some(r);
                }
            });
        }
    });
    results
        .into_inner()
        .expect("no thread panicked holding it")
        .into_iter()
        .map(|r| r.expect("every item ran"))
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use caretaker_core::config::SplitQuality;
    use caretaker_core::events::{CategoricalColumn, NumericColumn};
    use caretaker_core::rng::SplitMix64;

    /// `n` rows: failures when `load` is high on service "b", plus 5% noise.
    pub(crate) fn events(n: usize, seed: u64) -> LabelledEvents {
        let mut rng = SplitMix64::new(seed);
        let mut u = || (rng.next() >> 11) as f64 / (1u64 << 53) as f64;
        let (mut load, mut noise, mut codes, mut labels) = (vec![], vec![], vec![], vec![]);
        for _ in 0..n {
            let (l, z, c) = (u(), u(), (u() * 3.0) as u32);
            let flip = u() < 0.05;
            load.push(l);
            noise.push(z);
            codes.push(c);
            labels.push((l > 0.6 && c == 1) != flip);
        }
        LabelledEvents {
            timestamps: (0..n as i64).map(|i| i * 60_000_000).collect(),
            labels,
            numeric: vec![
                NumericColumn { name: "load".into(), values: load },
                NumericColumn { name: "noise".into(), values: noise },
            ],
            categorical: vec![CategoricalColumn {
                name: "service".into(),
                levels: vec!["a".into(), "b".into(), "c".into()],
                codes,
            }],
        }
    }

    pub(crate) fn training() -> TrainingSpec {
        TrainingSpec {
            window_days: 60,
            holdout_days: 7,
            seed: 3,
            min_rows: 10,
            one_hot_max_levels: 5,
            validation_days: 1,
            tune_threshold: false,
            max_rows: None,
        }
    }

    pub(crate) fn families() -> Vec<ModelParams> {
        vec![
            ModelParams::LogisticRegression { alpha: 1.0, max_iterations: 100, gradient_tolerance: 1e-4 },
            ModelParams::DecisionTree { max_depth: Some(4), min_samples_leaf: 5, split_quality: SplitQuality::Gini },
            ModelParams::GaussianNb { var_smoothing: 1e-9 },
            ModelParams::RandomForest {
                n_trees: 12,
                max_depth: Some(5),
                min_samples_leaf: 3,
                features_per_split: None,
                max_samples: None,
            },
            ModelParams::GradientBoosting {
                learning_rate: 0.1,
                max_iterations: 50,
                max_leaf_nodes: 31,
                max_depth: None,
                min_samples_leaf: 20,
                l2_regularization: 0.0,
                early_stopping: None,
            },
        ]
    }

    #[test]
    fn every_family_learns_round_trips_and_is_deterministic() {
        let (train, test) = (events(3000, 1), events(1000, 2));
        for params in families() {
            let a = TrainedModel::fit_params("m", &params, &training(), &train).unwrap();
            let b = TrainedModel::fit_params("m", &params, &training(), &train).unwrap();
            assert!(a.to_bytes() == b.to_bytes(), "{}: same data and seed, same bytes", params.family());
            let p = a.predict_proba(&test).unwrap();
            assert!(p.iter().all(|p| (0.0..=1.0).contains(p)), "{}", params.family());
            let m = caretaker_evaluate::metrics::classification_metrics(&test.labels, &p, 0.5);
            // The rule is learnable: every family ranks far better than chance.
            assert!(m.roc_auc.unwrap() > 0.75, "{}: auc {:?}", params.family(), m.roc_auc);
            let back = TrainedModel::from_bytes(&a.to_bytes()).unwrap();
            assert_eq!(back.predict_proba(&test).unwrap(), p, "{}", params.family());
        }
    }

    #[test]
    fn a_forest_whose_trees_draw_max_samples_rows_still_learns() {
        let (train, test) = (events(4000, 4), events(1000, 5));
        let params = ModelParams::RandomForest {
            n_trees: 10,
            max_depth: Some(5),
            min_samples_leaf: 3,
            features_per_split: None,
            max_samples: Some(500),
        };
        let model = TrainedModel::fit_params("f", &params, &training(), &train).unwrap();
        let Classifier::RandomForest(trees) = &model.classifier else { panic!() };
        assert_eq!(trees.len(), 10);
        // Each tree draws 500 rows (with replacement): no leaf counts more rows than that.
        let most: u64 = trees
            .iter()
            .flat_map(|t| &t.nodes)
            .map(|n| match n {
                trees::FlatNode::Leaf { rows, .. } => *rows,
                _ => 0,
            })
            .max()
            .unwrap();
        assert!(most <= 500, "{most}");
        let p = model.predict_proba(&test).unwrap();
        let m = caretaker_evaluate::metrics::classification_metrics(&test.labels, &p, 0.5);
        assert!(m.roc_auc.unwrap() > 0.75, "{:?}", m.roc_auc);
    }

    #[test]
    fn scoring_in_blocks_gives_every_row_what_the_whole_matrix_gives() {
        let (train, test) = (events(3000, 8), events(40_000, 9));
        for params in families() {
            let model = TrainedModel::fit_params("m", &params, &training(), &train).unwrap();
            let whole = model.classifier.predict_proba(&model.encoding.transform(&test).unwrap());
            assert_eq!(model.predict_proba(&test).unwrap(), whole, "{}", params.family());
        }
    }

    #[test]
    fn one_class_training_data_is_refused_with_the_reason() {
        let mut train = events(200, 6);
        train.labels.iter_mut().for_each(|l| *l = false);
        let err = TrainedModel::fit_params("m", &families()[0], &training(), &train).unwrap_err().to_string();
        assert!(err.contains("one class only"), "{err}");
    }

    #[test]
    fn garbage_bytes_are_not_a_model() {
        assert!(TrainedModel::from_bytes(b"not a model").unwrap_err().to_string().contains("not a readable model"));
    }
}
