//! Logistic regression and Gaussian naive Bayes on the encoded window, its one-hot columns never
//! written out.
//!
//! Both families read every encoded column, and on a window with categorical features most of
//! those columns are one-hot: 60 of the nightly benchmark's 68, on 759,004 rows, which as a dense
//! `f64` matrix is 413 MB, read in full twice per optimiser step. A [`Design`] keeps the numeric
//! columns (standardised, as the encoding does) and, per categorical feature, one code per row
//! naming the column that holds its 1. A row's score `x . w` is then its numeric terms plus one
//! weight per categorical feature, and the gradient's one-hot terms are sums by code: the work and
//! the memory shrink with the one-hot columns, and the model is the one the dense matrix would
//! give (the same objective, the same optimiser).
//!
//! Logistic regression minimises linfa's and scikit-learn's objective, the log loss summed over the
//! rows plus `alpha/2 |w|^2` (the intercept unpenalised; scikit-learn's `C = 1/alpha`), with
//! argmin's L-BFGS (10 corrections, Moré-Thuente line search), as linfa-logistic does, stopping
//! when the gradient's norm falls below the tolerance. Gaussian naive Bayes is scikit-learn's:
//! per class, each column's mean and variance, every variance raised by `var_smoothing` times the
//! largest column variance.
//!
//! The fitted models score a dense [`FeatureMatrix`], as every model does at evaluation.

use crate::encoding::Encoding;
use crate::{Error, Result};
use argmin::core::{CostFunction, Executor, Gradient, State};
use argmin::solver::linesearch::MoreThuenteLineSearch;
use argmin::solver::quasinewton::LBFGS;
use caretaker_core::events::{FeatureMatrix, LabelledEvents};
use ndarray::Array1;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::HashMap;

/// No categorical column: the row's level has none (an unseen level without an "other" column).
const NONE: u32 = u32::MAX;

/// The encoded window: numeric columns written out, categorical features as codes.
pub(crate) struct Design {
    rows: usize,
    /// Standardised numeric columns, encoded columns `0..numeric.len()`.
    numeric: Vec<Vec<f64>>,
    /// Per categorical feature: its first encoded column and each row's column within it (or
    /// [`NONE`]).
    groups: Vec<(usize, Vec<u32>)>,
    columns: usize,
}

impl Design {
    /// `events` encoded by `encoding`, the same values [`Encoding::transform`] gives.
    pub fn new(encoding: &Encoding, events: &LabelledEvents) -> Result<Design> {
        let mut numeric = Vec::with_capacity(encoding.numeric.len());
        for s in &encoding.numeric {
            let column = events
                .numeric
                .iter()
                .find(|c| c.name == s.feature)
                .ok_or_else(|| Error::MissingFeature { feature: s.feature.clone() })?;
            numeric.push(column.values.iter().map(|v| (v - s.mean) / s.std).collect());
        }
        let mut groups = Vec::with_capacity(encoding.categorical.len());
        let mut first = numeric.len();
        for oh in &encoding.categorical {
            let column = events
                .categorical
                .iter()
                .find(|c| c.name == oh.feature)
                .ok_or_else(|| Error::MissingFeature { feature: oh.feature.clone() })?;
            let index: HashMap<&str, u32> = oh.levels.iter().enumerate().map(|(i, l)| (l.as_str(), i as u32)).collect();
            let target: Vec<u32> = column
                .levels
                .iter()
                .map(|l| index.get(l.as_str()).copied().or(oh.other.then_some(oh.levels.len() as u32)).unwrap_or(NONE))
                .collect();
            groups.push((first, column.codes.iter().map(|&c| target[c as usize]).collect()));
            first += oh.levels.len() + oh.other as usize;
        }
        Ok(Design { rows: events.len(), numeric, groups, columns: first })
    }

    /// `out[i] = x_i . w + b`.
    fn scores(&self, w: &[f64], b: f64, out: &mut [f64]) {
        out.iter_mut().for_each(|o| *o = b);
        for (column, &wj) in self.numeric.iter().zip(w) {
            for (o, &x) in out.iter_mut().zip(column) {
                *o += wj * x;
            }
        }
        for (first, codes) in &self.groups {
            let weights = &w[*first..];
            for (o, &c) in out.iter_mut().zip(codes) {
                if c != NONE {
                    *o += weights[c as usize];
                }
            }
        }
    }

    /// `out[j] = sum_i x_ij r_i` for every encoded column.
    fn transpose_times(&self, r: &[f64], out: &mut [f64]) {
        out.iter_mut().for_each(|o| *o = 0.0);
        for (j, column) in self.numeric.iter().enumerate() {
            out[j] = column.iter().zip(r).map(|(x, r)| x * r).sum();
        }
        for (first, codes) in &self.groups {
            let sums = &mut out[*first..];
            for (&c, &r) in codes.iter().zip(r) {
                if c != NONE {
                    sums[c as usize] += r;
                }
            }
        }
    }
}

/// A fitted logistic regression: `P(positive) = sigmoid(intercept + x . weights)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearModel {
    pub weights: Vec<f64>,
    pub intercept: f64,
    /// Optimiser steps taken, and whether the gradient reached the tolerance in them.
    pub iterations: u64,
    pub converged: bool,
}

impl LinearModel {
    pub fn predict_proba(&self, x: &FeatureMatrix) -> Vec<f64> {
        let mut z = vec![self.intercept; x.rows];
        for (j, &w) in self.weights.iter().enumerate().take(x.cols()) {
            for (z, &v) in z.iter_mut().zip(x.column(j)) {
                *z += w * v;
            }
        }
        z.into_iter().map(sigmoid).collect()
    }
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// `ln(1 + e^-m)` without overflow.
fn log_one_plus_exp_minus(m: f64) -> f64 {
    if m > 0.0 { (-m).exp().ln_1p() } else { -m + m.exp().ln_1p() }
}

/// The penalised log loss of the design's rows, and its gradient. The scores of the last point
/// are kept: the line search asks for the cost and then the gradient at the same point.
struct Problem<'a> {
    design: &'a Design,
    /// +1 for a positive row, -1 for a negative one.
    signs: Vec<f64>,
    alpha: f64,
    last: RefCell<Option<(Array1<f64>, Vec<f64>)>>,
}

impl Problem<'_> {
    /// The scores `z = X w + b` at `p` (weights, then the intercept).
    fn with_scores<T>(&self, p: &Array1<f64>, f: impl FnOnce(&[f64]) -> T) -> T {
        let mut last = self.last.borrow_mut();
        if last.as_ref().is_none_or(|(q, _)| q != p) {
            let k = self.design.columns;
            let mut z = vec![0.0; self.design.rows];
            let w = p.as_slice().expect("a contiguous parameter vector");
            self.design.scores(&w[..k], w[k], &mut z);
            *last = Some((p.clone(), z));
        }
        f(&last.as_ref().expect("just computed").1)
    }
}

impl CostFunction for Problem<'_> {
    type Param = Array1<f64>;
    type Output = f64;

    fn cost(&self, p: &Self::Param) -> std::result::Result<f64, argmin::core::Error> {
        let k = self.design.columns;
        let penalty = 0.5 * self.alpha * p.iter().take(k).map(|w| w * w).sum::<f64>();
        Ok(self.with_scores(p, |z| z.iter().zip(&self.signs).map(|(z, y)| log_one_plus_exp_minus(y * z)).sum::<f64>())
            + penalty)
    }
}

impl Gradient for Problem<'_> {
    type Param = Array1<f64>;
    type Gradient = Array1<f64>;

    fn gradient(&self, p: &Self::Param) -> std::result::Result<Array1<f64>, argmin::core::Error> {
        let k = self.design.columns;
        // d loss / d z_i = -y_i sigmoid(-y_i z_i)
        let r: Vec<f64> =
            self.with_scores(p, |z| z.iter().zip(&self.signs).map(|(z, y)| -y * sigmoid(-y * z)).collect());
        let mut g = vec![0.0; k + 1];
        self.design.transpose_times(&r, &mut g[..k]);
        for (g, w) in g.iter_mut().zip(p.iter()).take(k) {
            *g += self.alpha * w;
        }
        g[k] = r.iter().sum();
        Ok(Array1::from(g))
    }
}

/// Fits logistic regression on `design` and `labels`, from `start` (weights then intercept) or
/// from zero. `tolerance` bounds the norm of the summed loss's gradient.
pub(crate) fn fit_logistic(
    design: &Design,
    labels: &[bool],
    alpha: f64,
    max_iterations: u64,
    tolerance: f64,
    start: Option<Vec<f64>>,
) -> std::result::Result<LinearModel, String> {
    let k = design.columns;
    let init = match start {
        Some(s) if s.len() == k + 1 && s.iter().all(|v| v.is_finite()) => Array1::from(s),
        _ => Array1::zeros(k + 1),
    };
    let problem = Problem {
        design,
        signs: labels.iter().map(|&l| if l { 1.0 } else { -1.0 }).collect(),
        alpha,
        last: RefCell::new(None),
    };
    let solver = LBFGS::new(MoreThuenteLineSearch::new(), 10)
        .with_tolerance_grad(tolerance)
        .map_err(|e| e.to_string())?
        .with_tolerance_cost(0.0)
        .map_err(|e| e.to_string())?;
    let result = Executor::new(problem, solver)
        .configure(|state| state.param(init).max_iters(max_iterations))
        .run()
        .map_err(|e| e.to_string())?;
    let state = result.state();
    let best = state.get_best_param().or(state.get_param()).ok_or("the optimiser returned no parameters")?.to_vec();
    let converged = state.get_gradient().is_some_and(|g| g.dot(g).sqrt() < tolerance)
        || matches!(state.get_termination_reason(), Some(argmin::core::TerminationReason::SolverConverged));
    Ok(LinearModel { weights: best[..k].to_vec(), intercept: best[k], iterations: state.get_iter(), converged })
}

/// A fitted Gaussian naive Bayes: per class (negative, positive) its prior and each column's mean
/// and variance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GaussianModel {
    pub priors: [f64; 2],
    pub means: [Vec<f64>; 2],
    pub variances: [Vec<f64>; 2],
}

impl GaussianModel {
    pub fn predict_proba(&self, x: &FeatureMatrix) -> Vec<f64> {
        // Each class's joint log-likelihood, then a stable two-class softmax.
        let jll = |c: usize| {
            let mut out = vec![self.priors[c].ln(); x.rows];
            for j in 0..self.means[c].len().min(x.cols()) {
                let (m, v) = (self.means[c][j], self.variances[c][j]);
                let norm = -0.5 * (2.0 * std::f64::consts::PI * v).ln();
                for (o, &value) in out.iter_mut().zip(x.column(j)) {
                    *o += norm - 0.5 * (value - m) * (value - m) / v;
                }
            }
            out
        };
        let (neg, pos) = (jll(0), jll(1));
        neg.iter().zip(&pos).map(|(n, p)| sigmoid(p - n)).collect()
    }
}

/// Fits Gaussian naive Bayes on `design` and `labels` (both classes present).
pub(crate) fn fit_gaussian(design: &Design, labels: &[bool], var_smoothing: f64) -> GaussianModel {
    let k = design.columns;
    let count = [labels.iter().filter(|l| !**l).count() as f64, labels.iter().filter(|l| **l).count() as f64];
    let n = count[0] + count[1];
    let mut means = [vec![0.0; k], vec![0.0; k]];
    let mut variances = [vec![0.0; k], vec![0.0; k]];
    let mut largest: f64 = 0.0;
    for (j, column) in design.numeric.iter().enumerate() {
        let mut sum = [0.0; 2];
        for (&x, &l) in column.iter().zip(labels) {
            sum[l as usize] += x;
        }
        let mean = [sum[0] / count[0], sum[1] / count[1]];
        let mut squares = [0.0; 2];
        for (&x, &l) in column.iter().zip(labels) {
            let d = x - mean[l as usize];
            squares[l as usize] += d * d;
        }
        let overall = (sum[0] + sum[1]) / n;
        let spread = column.iter().map(|x| (x - overall) * (x - overall)).sum::<f64>() / n;
        largest = largest.max(spread);
        for c in 0..2 {
            means[c][j] = mean[c];
            variances[c][j] = squares[c] / count[c];
        }
    }
    for (first, codes) in &design.groups {
        let width = design.columns_of_group(*first);
        let mut ones = vec![[0.0f64; 2]; width];
        for (&code, &l) in codes.iter().zip(labels) {
            if code != NONE {
                ones[code as usize][l as usize] += 1.0;
            }
        }
        for (level, ones) in ones.iter().enumerate() {
            let overall = (ones[0] + ones[1]) / n;
            largest = largest.max(overall * (1.0 - overall));
            for c in 0..2 {
                // A 0/1 column: its mean is the share of ones, its variance mean * (1 - mean).
                let mean = ones[c] / count[c];
                means[c][first + level] = mean;
                variances[c][first + level] = mean * (1.0 - mean);
            }
        }
    }
    let epsilon = var_smoothing * largest;
    for v in variances.iter_mut().flatten() {
        *v += epsilon;
    }
    GaussianModel { priors: [count[0] / n, count[1] / n], means, variances }
}

impl Design {
    /// The columns of the categorical feature whose first column is `first`.
    fn columns_of_group(&self, first: usize) -> usize {
        let next = self.groups.iter().map(|(f, _)| *f).filter(|&f| f > first).min().unwrap_or(self.columns);
        next - first
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use caretaker_core::events::{CategoricalColumn, NumericColumn};
    use caretaker_core::rng::SplitMix64;

    /// `n` rows of two numeric features and a categorical one of four levels, the label drawn
    /// from a logistic model of them.
    fn events(n: usize, seed: u64) -> LabelledEvents {
        let mut rng = SplitMix64::new(seed);
        let mut u = || (rng.next() >> 11) as f64 / (1u64 << 53) as f64;
        let (mut a, mut b, mut codes, mut labels) = (vec![], vec![], vec![], vec![]);
        for _ in 0..n {
            let (x, y, k) = (u() * 4.0 - 2.0, u() * 10.0, (u() * 4.0) as u32);
            let z = 1.5 * x - 0.2 * y + [0.5, -1.0, 0.0, 1.0][k as usize];
            labels.push(u() < sigmoid(z));
            a.push(x);
            b.push(y);
            codes.push(k);
        }
        LabelledEvents {
            timestamps: vec![0; n],
            labels,
            numeric: vec![NumericColumn { name: "a".into(), values: a }, NumericColumn { name: "b".into(), values: b }],
            categorical: vec![CategoricalColumn {
                name: "k".into(),
                levels: (0..4).map(|i| format!("k{i}")).collect(),
                codes,
            }],
        }
    }

    #[test]
    fn the_design_computes_what_the_dense_matrix_computes() {
        let e = events(500, 1);
        // Three levels keep a column of their own, the fourth goes to "other".
        let enc = Encoding::fit(&e, 3);
        let design = Design::new(&enc, &e).unwrap();
        let x = enc.transform(&e).unwrap();
        assert_eq!(design.columns, x.cols());
        let w: Vec<f64> = (0..x.cols()).map(|j| j as f64 * 0.3 - 0.7).collect();
        let mut z = vec![0.0; e.len()];
        design.scores(&w, 0.25, &mut z);
        let r: Vec<f64> = (0..e.len()).map(|i| (i % 7) as f64 - 3.0).collect();
        let mut g = vec![0.0; x.cols()];
        design.transpose_times(&r, &mut g);
        for (i, z) in z.iter().enumerate() {
            let dense: f64 = 0.25 + (0..x.cols()).map(|j| x.column(j)[i] * w[j]).sum::<f64>();
            assert!((dense - z).abs() < 1e-12);
        }
        for (j, g) in g.iter().enumerate() {
            let dense: f64 = x.column(j).iter().zip(&r).map(|(x, r)| x * r).sum();
            assert!((dense - g).abs() < 1e-9, "column {j}: {dense} against {g}");
        }
    }

    #[test]
    fn logistic_regression_finds_the_model_the_data_were_drawn_from() {
        let e = events(50_000, 2);
        let enc = Encoding::fit(&e, 10);
        let design = Design::new(&enc, &e).unwrap();
        let model = fit_logistic(&design, &e.labels, 1.0, 200, 1e-4 * e.len() as f64, None).unwrap();
        assert!(model.converged, "{model:?}");
        // Standardised units: a's weight is 1.5 times its standard deviation (about 1.15).
        let a = 1.5 * enc.numeric[0].std;
        assert!((model.weights[0] - a).abs() < 0.1, "{:?} against {a}", model.weights);
        // Level k3 against k1: 2.0 apart in log-odds.
        let (k1, k3) = (
            enc.categorical[0].levels.iter().position(|l| l == "k1").unwrap() + 2,
            enc.categorical[0].levels.iter().position(|l| l == "k3").unwrap() + 2,
        );
        assert!((model.weights[k3] - model.weights[k1] - 2.0).abs() < 0.15, "{:?}", model.weights);
        // From its own optimum it stops at once, with the same model.
        let mut start = model.weights.clone();
        start.push(model.intercept);
        let again = fit_logistic(&design, &e.labels, 1.0, 200, 1e-4 * e.len() as f64, Some(start)).unwrap();
        assert!(again.iterations <= 1, "{}", again.iterations);
        let x = enc.transform(&e).unwrap();
        for (p, q) in model.predict_proba(&x).iter().zip(again.predict_proba(&x)) {
            assert!((p - q).abs() < 1e-9);
        }
    }

    #[test]
    fn naive_bayes_matches_the_class_means_and_variances_of_the_dense_columns() {
        let e = events(2_000, 3);
        let enc = Encoding::fit(&e, 3);
        let design = Design::new(&enc, &e).unwrap();
        let model = fit_gaussian(&design, &e.labels, 1e-9);
        let x = enc.transform(&e).unwrap();
        let mut largest: f64 = 0.0;
        for j in 0..x.cols() {
            let col = x.column(j);
            let mean = col.iter().sum::<f64>() / col.len() as f64;
            largest = largest.max(col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / col.len() as f64);
        }
        for c in 0..2 {
            let rows: Vec<usize> = (0..e.len()).filter(|&i| e.labels[i] == (c == 1)).collect();
            for j in 0..x.cols() {
                let vals: Vec<f64> = rows.iter().map(|&i| x.column(j)[i]).collect();
                let mean = vals.iter().sum::<f64>() / vals.len() as f64;
                let var = vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / vals.len() as f64 + 1e-9 * largest;
                assert!((model.means[c][j] - mean).abs() < 1e-12, "class {c} column {j}");
                assert!((model.variances[c][j] - var).abs() < 1e-12, "class {c} column {j}");
            }
        }
        let p = model.predict_proba(&x);
        assert!(p.iter().all(|p| (0.0..=1.0).contains(p)));
    }
}
