//! The four candidate families, fitted on a [`FeatureMatrix`] through the plain-vector bridge:
//! a column-major view of its values for linfa (no copy), `DenseMatrix::new(n, k, v, true)` for
//! smartcore.

use crate::grow;
use crate::trees::{self, FlatTree};
use caretaker_core::config::{ModelParams, SplitQuality};
use caretaker_core::events::FeatureMatrix;
use linfa::prelude::*;
use linfa_bayes::{GaussianNb, NaiveBayes};
use linfa_logistic::{FittedLogisticRegression, LogisticRegression};
use linfa_trees::DecisionTree;
use ndarray::{Array1, ArrayView2, ShapeBuilder};
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

/// The matrix as linfa reads it, without copying it: on a million rows a copy costs more than a
/// tenth of a second and as much memory again as the matrix.
fn linfa_matrix(x: &FeatureMatrix) -> ArrayView2<'_, f64> {
    ArrayView2::from_shape((x.rows, x.cols()).f(), &x.values).expect("rows x cols values")
}

fn class_targets(labels: &[bool]) -> Array1<usize> {
    labels.iter().map(|&l| l as usize).collect()
}

pub(crate) fn fit(params: &ModelParams, x: &FeatureMatrix, labels: &[bool], seed: u64) -> Result<Classifier, String> {
    match *params {
        ModelParams::LogisticRegression { alpha, max_iterations, gradient_tolerance } => {
            let logistic = |x: &FeatureMatrix, labels: &[bool], alpha: f64, start: Option<Array1<f64>>| {
                let data = DatasetBase::new(linfa_matrix(x), class_targets(labels));
                let mut model = LogisticRegression::default()
                    .alpha(alpha)
                    .max_iterations(max_iterations)
                    .gradient_tolerance(summed_loss_tolerance(gradient_tolerance, x.rows));
                if let Some(start) = start {
                    model = model.initial_params(start);
                }
                model.fit(&data).map_err(|e| e.to_string())
            };
            let start = match warm_start_rows(x.rows) {
                Some(rows) => {
                    let (sub, sub_labels) = rows_of(x, labels, &rows);
                    // The same objective per row: the penalty shrinks with the rows.
                    let first = logistic(&sub, &sub_labels, alpha * sub.rows as f64 / x.rows as f64, None)?;
                    Some(start_for(&first, labels))
                }
                None => None,
            };
            logistic(x, labels, alpha, start).map(Classifier::LogisticRegression)
        }
        ModelParams::DecisionTree { max_depth, min_samples_leaf, split_quality } => {
            let params = DecisionTree::params()
                .split_quality(match split_quality {
                    SplitQuality::Gini => linfa_trees::SplitQuality::Gini,
                    SplitQuality::Entropy => linfa_trees::SplitQuality::Entropy,
                })
                .min_weight_leaf(min_samples_leaf as f32)
                .min_weight_split((2 * min_samples_leaf) as f32);
            grow::linfa_tree(&params, max_depth, x, labels).map(Classifier::DecisionTree)
        }
        ModelParams::GaussianNb { var_smoothing } => {
            let data = DatasetBase::new(linfa_matrix(x), class_targets(labels));
            let model = GaussianNb::params().var_smoothing(var_smoothing).fit(&data).map_err(|e| e.to_string())?;
            serde_json::to_value(&model).map(Classifier::GaussianNb).map_err(|e| e.to_string())
        }
        ModelParams::RandomForest { n_trees, max_depth, min_samples_leaf, features_per_split, max_samples } => {
            let k = x.cols();
            let mtry = features_per_split.unwrap_or_else(|| default_mtry(k)).clamp(1, k.max(1));
            let forest = ForestPlan { n_trees, max_depth, min_samples_leaf, mtry, max_samples, seed };
            forest.fit(x, labels).map(Classifier::RandomForest)
        }
    }
}

/// The rows `rows` of `x` and their labels.
fn rows_of(x: &FeatureMatrix, labels: &[bool], rows: &[usize]) -> (FeatureMatrix, Vec<bool>) {
    (x.select_rows(rows), rows.iter().map(|&r| labels[r]).collect())
}

/// linfa minimises the logistic loss summed over the rows (plus `alpha/2 |w|^2`, the same
/// objective as scikit-learn's with `C = 1/alpha`) and stops when the L2 norm of that sum's
/// gradient falls below its tolerance. scikit-learn's `tol` bounds the gradient of the *mean* loss,
/// so the same number given to linfa unscaled asks for a gradient `rows` times smaller: on a
/// million rows linfa never gets there and runs every iteration it is allowed. The configured
/// tolerance keeps scikit-learn's meaning (per row) and is scaled to the summed loss here; the L2
/// norm is still at least scikit-learn's largest component, so the stop is never looser.
fn summed_loss_tolerance(per_row: f64, rows: usize) -> f64 {
    per_row * rows.max(1) as f64
}

/// Windows of at least this many rows start logistic regression from the fit on every
/// [`WARM_START_STRIDE`]th row.
const WARM_START_MIN_ROWS: usize = 200_000;
const WARM_START_STRIDE: usize = 8;

/// linfa's L-BFGS starts from zero and evaluates the loss and its gradient over the whole window
/// at every step. On large windows it starts instead from the optimum of an evenly spaced eighth
/// of the rows (same loss per row), which is close to the full optimum, so the full fit needs far
/// fewer steps. The fit still runs until the full window's gradient is within the tolerance, so
/// the model is the full window's optimum either way; only the path there is shorter.
fn warm_start_rows(rows: usize) -> Option<Vec<usize>> {
    (rows >= WARM_START_MIN_ROWS).then(|| (0..rows).step_by(WARM_START_STRIDE).collect())
}

/// The parameters of `first` (weights, then the intercept) as a start for the fit on `labels`.
/// linfa calls the more frequent class positive (on a tie, the first row's), so when the
/// subsample's majority differs from the window's, the signs flip.
fn start_for(first: &FittedLogisticRegression<f64, usize>, labels: &[bool]) -> Array1<f64> {
    let ones = labels.iter().filter(|&&l| l).count();
    let zeros = labels.len() - ones;
    let window_positive = match ones.cmp(&zeros) {
        std::cmp::Ordering::Greater => 1,
        std::cmp::Ordering::Less => 0,
        std::cmp::Ordering::Equal => labels.first().map_or(0, |&l| l as usize),
    };
    let sign = if first.labels().pos.class == window_positive { 1.0 } else { -1.0 };
    first.params().iter().chain(std::iter::once(&first.intercept())).map(|p| sign * p).collect()
}

/// smartcore stops splitting a node when none of the features drawn for it can split it, where
/// scikit-learn keeps drawing; with many sparse one-hot columns, sqrt(k) features then grows
/// stunted trees. max(sqrt(k), k/3) gives smartcore's trees the depth scikit-learn's reach.
fn default_mtry(k: usize) -> usize {
    ((k as f64).sqrt().floor() as usize).max(k / 3).max(1)
}

/// Trees grown per smartcore forest fit: a group of trees shares one row subsample.
const TREES_PER_GROUP: u16 = 5;

/// A random forest grown as groups of smartcore forests: each group of [`TREES_PER_GROUP`] trees
/// is fitted by smartcore's `RandomForestClassifier` on the training rows (or, on windows larger
/// than `max_samples`, on its own subsample of that many rows, drawn without replacement), with
/// its own seed. Groups are fitted on all cores; the grouping does not depend on the number of
/// cores, so the same data and seed give the same trees anywhere. Bounding the rows bounds the fit
/// time and memory on large windows (smartcore's split search is patched to visit only a node's
/// own rows, see vendor/README.md, but each group still sorts and copies its matrix).
struct ForestPlan {
    n_trees: u16,
    max_depth: Option<u16>,
    min_samples_leaf: usize,
    mtry: usize,
    max_samples: usize,
    seed: u64,
}

impl ForestPlan {
    fn fit(&self, x: &FeatureMatrix, labels: &[bool]) -> Result<Vec<FlatTree>, String> {
        let groups = self.n_trees.div_ceil(TREES_PER_GROUP) as usize;
        let fitted = crate::on_all_cores(groups, |g| {
            let trees = (self.n_trees - g as u16 * TREES_PER_GROUP).min(TREES_PER_GROUP);
            self.fit_group(x, labels, g as u64, trees)
        });
        let mut forest = Vec::with_capacity(self.n_trees as usize);
        for group in fitted {
            forest.extend(group?);
        }
        Ok(forest)
    }

    fn fit_group(&self, x: &FeatureMatrix, labels: &[bool], group: u64, trees: u16) -> Result<Vec<FlatTree>, String> {
        let seed = self.seed.wrapping_add(group.wrapping_mul(1_000_003));
        let (sub, sub_labels);
        let (x, labels) = if x.rows > self.max_samples {
            let mut rows = caretaker_core::rng::SplitMix64::new(seed).sample(x.rows, self.max_samples);
            rows.sort_unstable();
            (sub, sub_labels) = rows_of(x, labels, &rows);
            (&sub, sub_labels.as_slice())
        } else {
            (x, labels)
        };
        let matrix = DenseMatrix::new(x.rows, x.cols(), x.values.clone(), true).map_err(|e| e.to_string())?;
        let y: Vec<u32> = labels.iter().map(|&l| l as u32).collect();
        let mut p = RandomForestClassifierParameters::default()
            .with_n_trees(trees)
            .with_min_samples_leaf(self.min_samples_leaf)
            .with_min_samples_split(2 * self.min_samples_leaf)
            .with_m(self.mtry)
            .with_seed(seed)
            .with_keep_samples(true);
        if let Some(d) = self.max_depth {
            p = p.with_max_depth(d);
        }
        let forest = RandomForestClassifier::fit(&matrix, &y, p).map_err(|e| e.to_string())?;
        drop(matrix);
        let (mut flat, samples) = trees::from_smartcore_forest(&forest)?;
        drop(forest);
        // Each tree's leaves get the positive share of its own bootstrap rows, as in scikit-learn.
        for (t, tree) in flat.iter_mut().enumerate() {
            match samples.as_ref().and_then(|s| s.get(t)) {
                Some(in_bag) => tree.calibrate_rows(x, labels, |row| in_bag[row]),
                None => tree.calibrate(x, labels),
            }
        }
        Ok(flat)
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
                let jll = model.joint_log_likelihood(linfa_matrix(x));
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

#[cfg(test)]
mod tests {
    use super::*;
    use caretaker_core::rng::SplitMix64;

    /// `n` rows of three features and a label drawn from a logistic model of them.
    fn logistic_data(n: usize, seed: u64) -> (FeatureMatrix, Vec<bool>) {
        let mut rng = SplitMix64::new(seed);
        let mut u = || (rng.next() >> 11) as f64 / (1u64 << 53) as f64;
        let mut columns: Vec<Vec<f64>> = (0..3).map(|_| Vec::with_capacity(n)).collect();
        let mut labels = Vec::with_capacity(n);
        for _ in 0..n {
            let (a, b, c) = (u() * 4.0 - 2.0, u() * 2.0 - 1.0, (u() < 0.5) as u8 as f64);
            let z = 1.5 * a - 0.8 * b + 0.6 * c - 0.4;
            labels.push(u() < 1.0 / (1.0 + (-z).exp()));
            columns[0].push(a);
            columns[1].push(b);
            columns[2].push(c);
        }
        (FeatureMatrix { rows: n, names: vec!["a".into(), "b".into(), "c".into()], values: columns.concat() }, labels)
    }

    #[test]
    fn a_warm_started_fit_reaches_the_cold_fit_s_model() {
        let (x, labels) = logistic_data(WARM_START_MIN_ROWS + 10_000, 5);
        let params = ModelParams::LogisticRegression { alpha: 1.0, max_iterations: 200, gradient_tolerance: 1e-4 };
        let warm = fit(&params, &x, &labels, 0).unwrap().predict_proba(&x);
        let cold = LogisticRegression::default()
            .max_iterations(200)
            .gradient_tolerance(summed_loss_tolerance(1e-4, x.rows))
            .fit(&DatasetBase::new(linfa_matrix(&x), class_targets(&labels)))
            .unwrap();
        let cold = Classifier::LogisticRegression(cold).predict_proba(&x);
        let worst = warm.iter().zip(&cold).map(|(w, c)| (w - c).abs()).fold(0.0, f64::max);
        assert!(worst < 1e-3, "largest difference in probability {worst}");
        assert!(warm.iter().zip(&labels).filter(|&(p, &l)| (*p >= 0.5) == l).count() > x.rows * 6 / 10);
    }

    /// The patched linfa-logistic (vendor/README.md) computes `X w` column by column on a
    /// column-major matrix, the layout every fit here uses, and as a matrix product on any other.
    /// Both must fit the same model: same loss, same gradient, same stop.
    #[test]
    fn the_matrix_layout_does_not_change_the_fitted_model() {
        // 15,000 values take the patch's single-threaded column path; 300,000 (above its 2^18)
        // its path on all cores. Either way the row-major copy takes linfa's own product.
        for n in [5_000, 100_000] {
            let (x, labels) = logistic_data(n, 21);
            let model = LogisticRegression::default().max_iterations(200).gradient_tolerance(1e-4);
            let by_column = model.fit(&DatasetBase::new(linfa_matrix(&x), class_targets(&labels))).unwrap();
            let row_major = linfa_matrix(&x).as_standard_layout().into_owned();
            assert!(row_major.is_standard_layout() && !linfa_matrix(&x).is_standard_layout());
            let by_row = model.fit(&DatasetBase::new(row_major, class_targets(&labels))).unwrap();
            for (a, b) in by_column
                .params()
                .iter()
                .chain([&by_column.intercept()])
                .zip(by_row.params().iter().chain([&by_row.intercept()]))
            {
                assert!((a - b).abs() < 1e-6, "{n} rows: {a} vs {b}");
            }
            // The threads split the work, not the sums: a second fit is the same to the bit.
            let again = model.fit(&DatasetBase::new(linfa_matrix(&x), class_targets(&labels))).unwrap();
            assert_eq!(again.params(), by_column.params(), "{n} rows");
            assert_eq!(again.intercept().to_bits(), by_column.intercept().to_bits(), "{n} rows");
            // And it is the model the data were drawn from, up to sampling noise.
            let weights: Vec<f64> = by_column.params().to_vec();
            let sign = if by_column.labels().pos.class == 1 { 1.0 } else { -1.0 };
            assert!((sign * weights[0] - 1.5).abs() < 0.2 && (sign * weights[1] + 0.8).abs() < 0.2, "{weights:?}");
        }
    }

    #[test]
    fn the_start_flips_its_signs_when_the_majority_class_differs() {
        let (x, labels) = logistic_data(2_000, 9);
        let flipped: Vec<bool> = labels.iter().map(|l| !l).collect();
        let first =
            LogisticRegression::default().fit(&DatasetBase::new(linfa_matrix(&x), class_targets(&labels))).unwrap();
        let same = start_for(&first, &labels);
        let other = start_for(&first, &flipped);
        assert_eq!(same.len(), 4, "three weights and the intercept");
        assert_eq!(same.iter().map(|p| -p).collect::<Vec<_>>(), other.to_vec());
        assert_eq!(same[3], first.intercept());
    }
}
