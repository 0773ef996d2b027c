//! The four candidate families, fitted on a [`FeatureMatrix`] through the plain-vector bridge:
//! `Array2::from_shape_vec((n, k).f(), v)` for linfa, `DenseMatrix::new(n, k, v, true)` for
//! smartcore.

use crate::trees::{self, FlatTree};
use caretaker_core::config::{ModelParams, SplitQuality};
use caretaker_core::events::FeatureMatrix;
use linfa::prelude::*;
use linfa_bayes::{GaussianNb, NaiveBayes};
use linfa_logistic::{FittedLogisticRegression, LogisticRegression};
use linfa_trees::DecisionTree;
use ndarray::{Array1, Array2, ShapeBuilder};
use serde::{Deserialize, Serialize};
use smartcore::ensemble::random_forest_classifier::{RandomForestClassifier, RandomForestClassifierParameters};
use smartcore::linalg::basic::matrix::DenseMatrix;

/// A fitted classifier of one of the families.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Classifier {
    LogisticRegression(FittedLogisticRegression<f64, usize>),
    DecisionTree(FlatTree),
    /// linfa's `GaussianNb`, kept as a JSON value: its classes live in a `HashMap`, whose
    /// iteration order would make the model bytes differ from run to run.
    GaussianNb(serde_json::Value),
    RandomForest(Vec<FlatTree>),
}

fn linfa_matrix(x: &FeatureMatrix) -> Array2<f64> {
    Array2::from_shape_vec((x.rows, x.cols()).f(), x.values.clone()).expect("rows x cols values")
}

fn class_targets(labels: &[bool]) -> Array1<usize> {
    labels.iter().map(|&l| l as usize).collect()
}

pub(crate) fn fit(params: &ModelParams, x: &FeatureMatrix, labels: &[bool], seed: u64) -> Result<Classifier, String> {
    match *params {
        ModelParams::LogisticRegression { alpha, max_iterations, gradient_tolerance } => {
            let data = Dataset::new(linfa_matrix(x), class_targets(labels));
            LogisticRegression::default()
                .alpha(alpha)
                .max_iterations(max_iterations)
                .gradient_tolerance(gradient_tolerance)
                .fit(&data)
                .map(Classifier::LogisticRegression)
                .map_err(|e| e.to_string())
        }
        ModelParams::DecisionTree { max_depth, min_samples_leaf, split_quality } => {
            let data = Dataset::new(linfa_matrix(x), class_targets(labels));
            let tree = DecisionTree::params()
                .split_quality(match split_quality {
                    SplitQuality::Gini => linfa_trees::SplitQuality::Gini,
                    SplitQuality::Entropy => linfa_trees::SplitQuality::Entropy,
                })
                .max_depth(max_depth)
                .min_weight_leaf(min_samples_leaf as f32)
                .min_weight_split((2 * min_samples_leaf) as f32)
                .fit(&data)
                .map_err(|e| e.to_string())?;
            let mut flat = trees::from_linfa(&tree);
            flat.calibrate(x, labels);
            Ok(Classifier::DecisionTree(flat))
        }
        ModelParams::GaussianNb { var_smoothing } => {
            let data = Dataset::new(linfa_matrix(x), class_targets(labels));
            let model = GaussianNb::params().var_smoothing(var_smoothing).fit(&data).map_err(|e| e.to_string())?;
            serde_json::to_value(&model).map(Classifier::GaussianNb).map_err(|e| e.to_string())
        }
        ModelParams::RandomForest { n_trees, max_depth, min_samples_leaf, features_per_split } => {
            let matrix = DenseMatrix::new(x.rows, x.cols(), x.values.clone(), true).map_err(|e| e.to_string())?;
            let y: Vec<u32> = labels.iter().map(|&l| l as u32).collect();
            let mut p = RandomForestClassifierParameters::default()
                .with_n_trees(n_trees)
                .with_min_samples_leaf(min_samples_leaf)
                .with_min_samples_split(2 * min_samples_leaf)
                .with_seed(seed);
            if let Some(d) = max_depth {
                p = p.with_max_depth(d);
            }
            if let Some(m) = features_per_split {
                p = p.with_m(m.min(x.cols()));
            }
            let forest = RandomForestClassifier::fit(&matrix, &y, p).map_err(|e| e.to_string())?;
            let mut flat = trees::from_smartcore_forest(&forest)?;
            for tree in &mut flat {
                tree.calibrate(x, labels);
            }
            Ok(Classifier::RandomForest(flat))
        }
    }
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
                let matrix = linfa_matrix(x);
                let jll = model.joint_log_likelihood(matrix.view());
                match (jll.get(&0), jll.get(&1)) {
                    (Some(neg), Some(pos)) => neg.iter().zip(pos).map(|(n, p)| 1.0 / (1.0 + (n - p).exp())).collect(),
                    (None, Some(_)) => vec![1.0; x.rows],
                    _ => vec![0.0; x.rows],
                }
            }
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
