//! The candidate families. Logistic regression and Gaussian naive Bayes are fitted on the
//! encoded window without its one-hot columns written out ([`crate::linear`]); the decision tree,
//! the random forest and gradient boosting are grown from the binned window they share
//! ([`crate::hist_tree`], [`crate::boosting`]).

use crate::binned::BinnedWindow;
use crate::boosting::{self, BoostParams, Boosted, BoostedFit};
use crate::hist_tree::{self, Grown, Sample, TreeParams};
use crate::linear::{self, Design, GaussianModel, LinearModel};
use crate::trees::FlatTree;
use caretaker_core::config::ModelParams;
use caretaker_core::events::FeatureMatrix;
use linfa_bayes::GaussianNb;
use linfa_bayes::NaiveBayes;
use linfa_logistic::FittedLogisticRegression;
use ndarray::{ArrayView2, ShapeBuilder};
use serde::{Deserialize, Serialize};

/// A fitted classifier of one of the families.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Classifier {
    /// linfa's logistic regression, as models saved before [`Classifier::Logistic`] hold it; read
    /// and scored, no longer fitted.
    LogisticRegression(FittedLogisticRegression<f64, usize>),
    DecisionTree(FlatTree),
    /// linfa's `GaussianNb` as a JSON value, as models saved before [`Classifier::NaiveBayes`]
    /// hold it; read and scored, no longer fitted.
    GaussianNb(serde_json::Value),
    RandomForest(Vec<FlatTree>),
    GradientBoosting(Boosted),
    Logistic(LinearModel),
    NaiveBayes(GaussianModel),
}

/// The matrix as linfa reads it, without copying it.
fn linfa_matrix(x: &FeatureMatrix) -> ArrayView2<'_, f64> {
    ArrayView2::from_shape((x.rows, x.cols()).f(), &x.values).expect("rows x cols values")
}

/// Where logistic regression on columns `to` starts from `near`, a model fitted on columns `from`
/// (the validation fit of the same candidate, whose encoding was fitted on fewer rows: its one-hot
/// columns may come in another order, or miss a level): each weight by its column's name, 0 for a
/// column `near` did not have, then the intercept. `None` for another family.
pub(crate) fn start_from(near: &Classifier, from: &[String], to: &[String]) -> Option<Vec<f64>> {
    let Classifier::Logistic(near) = near else { return None };
    let weight: std::collections::HashMap<&str, f64> =
        from.iter().map(String::as_str).zip(near.weights.iter().copied()).collect();
    Some(to.iter().map(|c| weight.get(c.as_str()).copied().unwrap_or(0.0)).chain([near.intercept]).collect())
}

/// Fits logistic regression or naive Bayes on `design`. `start` (weights, then the intercept; see
/// [`start_from`]) is where logistic regression starts its search: the objective is convex, so the
/// start changes how many steps it takes, not where it ends (to the tolerance).
pub(crate) fn fit(
    params: &ModelParams,
    design: &Design,
    labels: &[bool],
    start: Option<Vec<f64>>,
) -> Result<Classifier, String> {
    match *params {
        ModelParams::LogisticRegression { alpha, max_iterations, gradient_tolerance } => {
            let tolerance = summed_loss_tolerance(gradient_tolerance, labels.len());
            linear::fit_logistic(design, labels, alpha, max_iterations, tolerance, start).map(Classifier::Logistic)
        }
        ModelParams::GaussianNb { var_smoothing } => {
            Ok(Classifier::NaiveBayes(linear::fit_gaussian(design, labels, var_smoothing)))
        }
        ModelParams::DecisionTree { .. } | ModelParams::RandomForest { .. } | ModelParams::GradientBoosting { .. } => {
            unreachable!("the tree families are fitted on the binned window (fit_binned)")
        }
    }
}

/// Whether `params` is a family grown from the binned window.
pub(crate) fn is_binned(params: &ModelParams) -> bool {
    matches!(
        params,
        ModelParams::DecisionTree { .. } | ModelParams::RandomForest { .. } | ModelParams::GradientBoosting { .. }
    )
}

/// A family fitted on the binned window: its trees with their splits in bin space.
pub(crate) enum BinnedFit {
    /// A decision tree or a forest: the probability is the mean of the trees' leaf rates.
    Trees(Vec<Grown>),
    Boosted(BoostedFit),
}

impl BinnedFit {
    /// The probabilities of rows `rows` of the window, from their bins.
    pub fn predict_binned(&self, window: &BinnedWindow, rows: &[u32]) -> Vec<f64> {
        match self {
            BinnedFit::Trees(trees) => {
                let mut p = vec![0.0; rows.len()];
                for tree in trees {
                    tree.add_binned(window, rows, &mut p);
                }
                let n = trees.len().max(1) as f64;
                p.iter_mut().for_each(|p| *p /= n);
                p
            }
            BinnedFit::Boosted(fit) => fit.predict_binned(window, rows),
        }
    }

    pub fn into_classifier(self, params: &ModelParams) -> Classifier {
        match self {
            BinnedFit::Boosted(fit) => Classifier::GradientBoosting(fit.model),
            BinnedFit::Trees(grown) => {
                let mut trees: Vec<FlatTree> = grown.into_iter().map(|g| g.tree).collect();
                match params {
                    ModelParams::DecisionTree { .. } => Classifier::DecisionTree(trees.remove(0)),
                    _ => Classifier::RandomForest(trees),
                }
            }
        }
    }
}

/// Above this many rows, boosting stops early unless told otherwise (scikit-learn's "auto").
const EARLY_STOPPING_MIN_ROWS: usize = 10_000;

/// Fits a family on the rows `pool` (ascending) of `window`.
/// A forest's number of trees, rows drawn per tree and tree parameters; `None` for another family.
fn forest_params(params: &ModelParams, window: &BinnedWindow, pool: &[u32]) -> Option<(usize, usize, TreeParams)> {
    let ModelParams::RandomForest { n_trees, max_depth, min_samples_leaf, features_per_split, max_samples } = *params
    else {
        return None;
    };
    let k = window.columns();
    let p = TreeParams {
        max_depth: max_depth.map(usize::from),
        min_samples_leaf,
        criterion: caretaker_core::config::SplitQuality::Gini,
        features_per_split: Some(features_per_split.unwrap_or_else(|| default_mtry(k)).clamp(1, k.max(1))),
    };
    let draws = max_samples.map_or(pool.len(), |m| m.min(pool.len()));
    Some((n_trees as usize, draws, p))
}

/// A random forest of `params` grown on every row of `pool`, and the out-of-bag probability of
/// each row of `rows` (ascending rows of `pool`; `None` for a row every tree drew). `None` for the
/// other families.
pub(crate) fn fit_forest_out_of_bag(
    params: &ModelParams,
    window: &BinnedWindow,
    pool: &[u32],
    rows: &[u32],
    seed: u64,
) -> Option<(BinnedFit, Vec<Option<f64>>)> {
    let (n_trees, draws, p) = forest_params(params, window, pool)?;
    let (trees, oob) = hist_tree::forest(window, pool, n_trees, draws, &p, seed, rows);
    Some((BinnedFit::Trees(trees), oob))
}

pub(crate) fn fit_binned(params: &ModelParams, window: &BinnedWindow, pool: &[u32], seed: u64) -> BinnedFit {
    match *params {
        ModelParams::DecisionTree { max_depth, min_samples_leaf, split_quality } => {
            let p = TreeParams { max_depth, min_samples_leaf, criterion: split_quality, features_per_split: None };
            BinnedFit::Trees(vec![hist_tree::grow(window, Sample::all(pool), &p, seed, crate::cores())])
        }
        ModelParams::RandomForest { .. } => fit_forest_out_of_bag(params, window, pool, &[], seed).expect("a forest").0,
        ModelParams::GradientBoosting {
            learning_rate,
            max_iterations,
            max_leaf_nodes,
            max_depth,
            min_samples_leaf,
            l2_regularization,
            early_stopping,
        } => {
            let p = BoostParams {
                learning_rate,
                max_iterations,
                max_leaf_nodes,
                max_depth,
                min_samples_leaf,
                l2_regularization,
                early_stopping: early_stopping.unwrap_or(pool.len() > EARLY_STOPPING_MIN_ROWS),
                validation_fraction: 0.1,
                n_iter_no_change: 10,
            };
            BinnedFit::Boosted(boosting::fit(window, pool, &p, seed, crate::cores()))
        }
        _ => unreachable!("only the tree families are binned"),
    }
}

/// The fit minimises the logistic loss summed over the rows (plus `alpha/2 |w|^2`, the same
/// objective as scikit-learn's with `C = 1/alpha`) and stops when the L2 norm of that sum's
/// gradient falls below its tolerance. scikit-learn's `tol` bounds the gradient of the *mean* loss,
/// so the same number unscaled would ask for a gradient `rows` times smaller: on a million rows the
/// fit would never get there and run every iteration it is allowed. The configured tolerance keeps
/// scikit-learn's meaning (per row) and is scaled to the summed loss here; the L2 norm is still at
/// least scikit-learn's largest component, so the stop is never looser.
fn summed_loss_tolerance(per_row: f64, rows: usize) -> f64 {
    per_row * rows.max(1) as f64
}

/// scikit-learn's default for classification forests: the square root of the columns.
fn default_mtry(k: usize) -> usize {
    ((k as f64).sqrt().floor() as usize).max(1)
}

impl Classifier {
    pub fn predict_proba(&self, x: &FeatureMatrix) -> Vec<f64> {
        match self {
            Classifier::LogisticRegression(model) => {
                // linfa's "positive" class is the more frequent one, whatever its value.
                let p = model.predict_probabilities(&linfa_matrix(x));
                if model.labels().pos.class == 1 { p.to_vec() } else { p.iter().map(|p| 1.0 - p).collect() }
            }
            Classifier::DecisionTree(tree) => {
                let mut out = vec![0.0; x.rows];
                tree.predict_into(x, &mut out);
                out
            }
            Classifier::GaussianNb(value) => {
                let model: GaussianNb<f64, usize> =
                    serde_json::from_value(value.clone()).expect("a GaussianNb this crate serialised");
                // A stable two-class softmax of the joint log-likelihoods: linfa's predict_proba
                // exponentiates them unshifted and underflows on wide inputs.
                let jll = model.joint_log_likelihood(linfa_matrix(x));
                match (jll.get(&0), jll.get(&1)) {
                    (Some(neg), Some(pos)) => neg.iter().zip(pos).map(|(n, p)| 1.0 / (1.0 + (n - p).exp())).collect(),
                    (None, Some(_)) => vec![1.0; x.rows],
                    _ => vec![0.0; x.rows],
                }
            }
            Classifier::GradientBoosting(model) => model.predict_proba(x),
            Classifier::Logistic(model) => model.predict_proba(x),
            Classifier::NaiveBayes(model) => model.predict_proba(x),
            Classifier::RandomForest(trees) => {
                let mut out = vec![0.0; x.rows];
                for tree in trees {
                    tree.predict_into(x, &mut out);
                }
                let n = trees.len().max(1) as f64;
                out.iter_mut().for_each(|p| *p /= n);
                out
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TrainedModel;
    use crate::encoding::Encoding;
    use crate::tests::{events, training};
    use linfa::prelude::*;
    use linfa_bayes::GaussianNb;
    use linfa_logistic::LogisticRegression;
    use ndarray::Array1;

    /// Champions in registries were saved with linfa's models inside: they must still load and
    /// score the same after an upgrade.
    #[test]
    fn models_saved_with_linfa_s_logistic_regression_and_naive_bayes_still_score() {
        let train = events(2000, 7);
        let encoding = Encoding::fit(&train, training().one_hot_max_levels);
        let x = encoding.transform(&train).unwrap();
        let targets: Array1<usize> = train.labels.iter().map(|&l| l as usize).collect();
        let data = DatasetBase::new(linfa_matrix(&x), targets);
        let logistic = LogisticRegression::default().fit(&data).unwrap();
        let expected = logistic.predict_probabilities(&linfa_matrix(&x));
        let nb = GaussianNb::params().fit(&data).unwrap();
        let legacy = [
            (
                ModelParams::LogisticRegression { alpha: 1.0, max_iterations: 100, gradient_tolerance: 1e-4 },
                Classifier::LogisticRegression(logistic),
            ),
            (
                ModelParams::GaussianNb { var_smoothing: 1e-9 },
                Classifier::GaussianNb(serde_json::to_value(&nb).unwrap()),
            ),
        ];
        for (params, classifier) in legacy {
            let model = TrainedModel {
                format: crate::MODEL_FORMAT,
                name: "old".into(),
                params,
                encoding: encoding.clone(),
                classifier,
                threshold: 0.5,
                calibrator: None,
            };
            let back = TrainedModel::from_bytes(&model.to_bytes()).unwrap();
            let p = back.predict_proba(&train).unwrap();
            assert!(p.iter().all(|p| (0.0..=1.0).contains(p)));
            let hits = p.iter().zip(&train.labels).filter(|&(p, &l)| (*p >= 0.5) == l).count();
            assert!(hits > train.len() * 7 / 10, "{hits}");
            if let Classifier::LogisticRegression(m) = &back.classifier {
                let positive_is_one = m.labels().pos.class == 1;
                for (p, e) in p.iter().zip(expected.iter()) {
                    let e = if positive_is_one { *e } else { 1.0 - e };
                    assert!((p - e).abs() < 1e-12);
                }
            }
        }
    }
}
