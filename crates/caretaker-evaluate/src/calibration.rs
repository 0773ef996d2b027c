//! How far a model's probabilities are from the rates they promise, and the maps that bring them
//! closer.
//!
//! [`reliability`] bins the holdout by predicted probability (ten equal-width bins) and sets each
//! bin's mean prediction against its observed positive rate: the points of a reliability diagram.
//! [`expected_calibration_error`] is the row-weighted mean distance between the two,
//! `Σ n_b / N · |observed_b - predicted_b|`, the binary form of the expected calibration error
//! over the probability of the positive class (not of the predicted class, as multi-class
//! definitions use).
//!
//! A [`Calibrator`] is fitted on the validation rows' probabilities and labels and maps every later
//! probability of the model:
//! - isotonic: the non-decreasing step function of least squares (pool-adjacent-violators),
//!   interpolated linearly between its points and clipped at its ends, as scikit-learn's
//!   `IsotonicRegression(out_of_bounds="clip")` predicts;
//! - sigmoid: Platt scaling of the model's log-odds, `1 / (1 + exp(a·logit(p) + b))`, with Platt's
//!   smoothed targets, fitted by Newton's method with a backtracking line search (Lin, Lin and Weng,
//!   2007), the same objective scikit-learn's `_sigmoid_calibration` minimises. On log-odds, so
//!   that a calibrated model stays as it was (`a = -1`, `b = 0`).
//!
//! `bench/calibration_reference.py` computes the reference values the tests compare with.

use caretaker_core::config::Calibration;
use caretaker_core::report::CalibrationBin;
use serde::{Deserialize, Serialize};

/// Equal-width probability bins of the reliability diagram and of the calibration error.
pub const BINS: usize = 10;

/// The rows of each probability bin: mean prediction against observed positive rate. Empty bins
/// are left out, and so is a probability that is not a number.
pub fn reliability(labels: &[bool], probabilities: &[f64]) -> Vec<CalibrationBin> {
    let mut sums = [(0.0f64, 0u64, 0u64); BINS];
    for (&y, &q) in labels.iter().zip(probabilities).filter(|(_, q)| !q.is_nan()) {
        let bin = ((q.clamp(0.0, 1.0) * BINS as f64) as usize).min(BINS - 1);
        sums[bin].0 += q;
        sums[bin].1 += 1;
        sums[bin].2 += y as u64;
    }
    sums.iter()
        .filter(|(_, rows, _)| *rows > 0)
        .map(|&(sum, rows, positives)| CalibrationBin {
            predicted: sum / rows as f64,
            observed: positives as f64 / rows as f64,
            rows,
        })
        .collect()
}

/// The expected calibration error of [`reliability`]'s bins; `None` without rows.
pub fn expected_calibration_error(labels: &[bool], probabilities: &[f64]) -> Option<f64> {
    ece_of(&reliability(labels, probabilities))
}

/// The expected calibration error of reliability bins; `None` when they hold no rows.
pub fn ece_of(bins: &[CalibrationBin]) -> Option<f64> {
    let rows: u64 = bins.iter().map(|b| b.rows).sum();
    (rows > 0).then(|| bins.iter().map(|b| b.rows as f64 * (b.observed - b.predicted).abs()).sum::<f64>() / rows as f64)
}

/// A fitted map from a model's probability to a calibrated one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum Calibrator {
    /// Points of a non-decreasing function, `x` ascending: interpolated linearly between them and
    /// constant beyond the first and the last.
    Isotonic { x: Vec<f64>, y: Vec<f64> },
    /// `1 / (1 + exp(a·logit(p) + b))`.
    Sigmoid { a: f64, b: f64 },
}

/// Probabilities are kept this far from 0 and 1 before their log-odds are taken.
const LOGIT_EPS: f64 = 1e-12;

fn logit(p: f64) -> f64 {
    let p = p.clamp(LOGIT_EPS, 1.0 - LOGIT_EPS);
    (p / (1.0 - p)).ln()
}

impl Calibrator {
    /// Fits `method` on `probabilities` and their `labels`; `None` without rows.
    pub fn fit(method: Calibration, labels: &[bool], probabilities: &[f64]) -> Option<Calibrator> {
        if labels.is_empty() || labels.len() != probabilities.len() {
            return None;
        }
        Some(match method {
            Calibration::Isotonic => isotonic(labels, probabilities),
            Calibration::Sigmoid => {
                let scores: Vec<f64> = probabilities.iter().map(|&p| logit(p)).collect();
                let (a, b) = platt(&scores, labels);
                Calibrator::Sigmoid { a, b }
            }
        })
    }

    pub fn method(&self) -> Calibration {
        match self {
            Calibrator::Isotonic { .. } => Calibration::Isotonic,
            Calibrator::Sigmoid { .. } => Calibration::Sigmoid,
        }
    }

    /// The calibrated probability of `p`.
    pub fn apply(&self, p: f64) -> f64 {
        match self {
            Calibrator::Isotonic { x, y } => {
                if x.is_empty() || p.is_nan() {
                    return p;
                }
                let last = x.len() - 1;
                if p <= x[0] {
                    return y[0];
                }
                if p >= x[last] {
                    return y[last];
                }
                // x[i - 1] < p < x[i]
                let i = x.partition_point(|&v| v <= p);
                let (x0, x1, y0, y1) = (x[i - 1], x[i], y[i - 1], y[i]);
                y0 + (y1 - y0) * (p - x0) / (x1 - x0)
            }
            Calibrator::Sigmoid { a, b } => 1.0 / (1.0 + (a * logit(p) + b).exp()),
        }
    }

    /// Calibrates every probability of `p` in place.
    pub fn apply_all(&self, p: &mut [f64]) {
        for v in p {
            *v = self.apply(*v);
        }
    }
}

/// Pool-adjacent-violators on the distinct probabilities (each weighted by its rows, its target
/// the rows' positive rate), keeping only the first and last point of each flat stretch.
fn isotonic(labels: &[bool], probabilities: &[f64]) -> Calibrator {
    let mut order: Vec<usize> = (0..labels.len()).filter(|&i| !probabilities[i].is_nan()).collect();
    order.sort_by(|&a, &b| probabilities[a].total_cmp(&probabilities[b]));
    // Distinct x with (sum of labels, rows).
    let mut xs: Vec<f64> = Vec::new();
    let mut sums: Vec<(f64, f64)> = Vec::new();
    for &i in &order {
        let (x, y) = (probabilities[i], labels[i] as u8 as f64);
        if xs.last() == Some(&x) {
            let s = sums.last_mut().expect("a sum per x");
            s.0 += y;
            s.1 += 1.0;
        } else {
            xs.push(x);
            sums.push((y, 1.0));
        }
    }
    // Blocks of (sum, weight, points): merged while the previous block's mean is above this one's.
    let mut blocks: Vec<(f64, f64, usize)> = Vec::with_capacity(xs.len());
    for &(s, w) in &sums {
        blocks.push((s, w, 1));
        while blocks.len() > 1 {
            let (s1, w1, n1) = blocks[blocks.len() - 1];
            let (s0, w0, n0) = blocks[blocks.len() - 2];
            if s0 / w0 < s1 / w1 {
                break;
            }
            blocks.pop();
            *blocks.last_mut().expect("two blocks") = (s0 + s1, w0 + w1, n0 + n1);
        }
    }
    let mut x = Vec::new();
    let mut y = Vec::new();
    let mut at = 0;
    for (s, w, n) in blocks {
        let value = s / w;
        // The first and the last point of the block carry the whole of its interpolation.
        x.push(xs[at]);
        y.push(value);
        if n > 1 {
            x.push(xs[at + n - 1]);
            y.push(value);
        }
        at += n;
    }
    Calibrator::Isotonic { x, y }
}

/// Platt's `(a, b)` minimising the log loss of `1 / (1 + exp(a·f + b))` against the smoothed
/// targets `(positives + 1) / (positives + 2)` and `1 / (negatives + 2)`.
fn platt(f: &[f64], labels: &[bool]) -> (f64, f64) {
    let positives = labels.iter().filter(|&&y| y).count() as f64;
    let negatives = labels.len() as f64 - positives;
    let (hi, lo) = ((positives + 1.0) / (positives + 2.0), 1.0 / (negatives + 2.0));
    let t: Vec<f64> = labels.iter().map(|&y| if y { hi } else { lo }).collect();
    let objective = |a: f64, b: f64| -> f64 {
        f.iter()
            .zip(&t)
            .map(|(&f, &t)| {
                let z = a * f + b;
                if z >= 0.0 { t * z + (-z).exp().ln_1p() } else { (t - 1.0) * z + z.exp().ln_1p() }
            })
            .sum()
    };
    let (mut a, mut b) = (0.0, ((negatives + 1.0) / (positives + 1.0)).ln());
    let mut value = objective(a, b);
    const SIGMA: f64 = 1e-12;
    const MIN_STEP: f64 = 1e-10;
    for _ in 0..100 {
        let (mut h11, mut h22, mut h21, mut g1, mut g2) = (SIGMA, SIGMA, 0.0, 0.0, 0.0);
        for (&f, &t) in f.iter().zip(&t) {
            let z = a * f + b;
            // p: the predicted probability of the positive class, q = 1 - p.
            let (p, q) = if z >= 0.0 {
                let e = (-z).exp();
                (e / (1.0 + e), 1.0 / (1.0 + e))
            } else {
                let e = z.exp();
                (1.0 / (1.0 + e), e / (1.0 + e))
            };
            let d2 = p * q;
            h11 += f * f * d2;
            h22 += d2;
            h21 += f * d2;
            let d1 = t - p;
            g1 += f * d1;
            g2 += d1;
        }
        if g1.abs() < 1e-9 * f.len() as f64 && g2.abs() < 1e-9 * f.len() as f64 {
            break;
        }
        let det = h11 * h22 - h21 * h21;
        let da = -(h22 * g1 - h21 * g2) / det;
        let db = -(-h21 * g1 + h11 * g2) / det;
        let slope = g1 * da + g2 * db;
        let mut step = 1.0;
        while step >= MIN_STEP {
            let (na, nb) = (a + step * da, b + step * db);
            let next = objective(na, nb);
            if next < value + 1e-4 * step * slope {
                (a, b, value) = (na, nb, next);
                break;
            }
            step /= 2.0;
        }
        if step < MIN_STEP {
            break;
        }
    }
    (a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_calibration_error_is_the_row_weighted_gap_of_the_bins() {
        // By hand: bin 0.1-0.2 holds 0.1, 0.1 (mean 0.1) with one positive of two (0.5): gap 0.4;
        // bin 0.9-1.0 holds 0.9, 0.95, 1.0 (mean 0.95) with three positives (1.0): gap 0.05.
        // ECE = (2 · 0.4 + 3 · 0.05) / 5 = 0.19.
        let labels = [true, false, true, true, true];
        let p = [0.1, 0.1, 0.9, 0.95, 1.0];
        assert!((expected_calibration_error(&labels, &p).unwrap() - 0.19).abs() < 1e-12);
        assert_eq!(expected_calibration_error(&[], &[]), None);
        // Probabilities equal to the rates in each bin: no error.
        let labels = [true, false, false, false, true, true, true, false];
        let p = [0.25, 0.25, 0.25, 0.25, 0.75, 0.75, 0.75, 0.75];
        assert_eq!(expected_calibration_error(&labels, &p), Some(0.0));
    }

    #[test]
    fn isotonic_pools_the_violators_and_interpolates_between_its_points() {
        // Sorted by p: labels 0 1 0 1 1. PAV pools (1, 0) at p 0.2 and 0.3 into 0.5.
        let p = [0.1, 0.2, 0.3, 0.4, 0.5];
        let labels = [false, true, false, true, true];
        let c = Calibrator::fit(Calibration::Isotonic, &labels, &p).unwrap();
        let Calibrator::Isotonic { x, y } = &c else { panic!() };
        assert_eq!(x, &[0.1, 0.2, 0.3, 0.4, 0.5]);
        assert_eq!(y, &[0.0, 0.5, 0.5, 1.0, 1.0]);
        assert_eq!(c.apply(0.05), 0.0);
        assert!((c.apply(0.15) - 0.25).abs() < 1e-12);
        assert_eq!(c.apply(0.25), 0.5);
        assert!((c.apply(0.35) - 0.75).abs() < 1e-12);
        assert_eq!(c.apply(0.9), 1.0);
        // Rows at one probability are one point, weighted by their count.
        let c = Calibrator::fit(Calibration::Isotonic, &[true, false, false, true], &[0.6, 0.6, 0.6, 0.2]).unwrap();
        assert_eq!(c, Calibrator::Isotonic { x: vec![0.2, 0.6], y: vec![0.5, 0.5] });
    }

    /// The rows of `bench/calibration_reference.py`: the model says `p` where the rate is `p²`.
    fn reference_rows() -> (Vec<bool>, Vec<f64>) {
        (0..600u64)
            .map(|i| {
                let p = ((i * 7919) % 1000) as f64 + 0.5;
                let p = p / 1000.0;
                let u = ((i * 2654435761) % (1 << 32)) as f64 / (1u64 << 32) as f64;
                (u < p * p, p)
            })
            .unzip()
    }

    const PROBES: [f64; 9] = [0.0, 0.05, 0.2, 0.37, 0.5, 0.63, 0.81, 0.99, 1.0];

    #[test]
    fn reference_values_of_numpy_and_scikit_learn_are_reproduced() {
        // Printed by `python bench/calibration_reference.py` (scikit-learn 1.9.1).
        let (labels, p) = reference_rows();
        assert_eq!(labels.iter().filter(|&&y| y).count(), 202);
        let ece = expected_calibration_error(&labels, &p).unwrap();
        assert!((ece - 0.16433333333333336).abs() < 1e-12, "{ece}");

        let isotonic = Calibrator::fit(Calibration::Isotonic, &labels, &p).unwrap();
        let expected = [
            0.012987012987012988,
            0.012987012987012988,
            0.043478260869565216,
            0.09090909090909091,
            0.2727272727272727,
            0.3870967741935484,
            0.625,
            1.0,
            1.0,
        ];
        for (&at, &e) in PROBES.iter().zip(&expected) {
            assert!((isotonic.apply(at) - e).abs() < 1e-12, "isotonic at {at}: {} against {e}", isotonic.apply(at));
        }

        let sigmoid = Calibrator::fit(Calibration::Sigmoid, &labels, &p).unwrap();
        let Calibrator::Sigmoid { a, b } = sigmoid else { panic!() };
        assert!((a - -1.171782409830516).abs() < 1e-4 && (b - 1.109285052657976).abs() < 1e-4, "a {a} b {b}");
        let expected = [
            2.8632199064201512e-15,
            0.010358586749782978,
            0.06101267221428207,
            0.15021352205650662,
            0.24800420086990826,
            0.3809205597485025,
            0.6433218629129958,
            0.9862814869412764,
            0.9999999999999736,
        ];
        for (&at, &e) in PROBES.iter().zip(&expected) {
            assert!((sigmoid.apply(at) - e).abs() < 1e-4, "sigmoid at {at}: {} against {e}", sigmoid.apply(at));
        }
        let mut q = p.clone();
        sigmoid.apply_all(&mut q);
        let after = expected_calibration_error(&labels, &q).unwrap();
        assert!((after - 0.013818249426875475).abs() < 1e-3, "{after}");
    }

    /// Miscalibrated scores: 2,000 rows whose true rate is `p²` but whose model says `p`.
    fn overconfident() -> (Vec<bool>, Vec<f64>) {
        let mut rng = caretaker_core::rng::SplitMix64::new(42);
        let mut u = || (rng.next() >> 11) as f64 / (1u64 << 53) as f64;
        (0..2000)
            .map(|_| {
                let p = u();
                (u() < p * p, p)
            })
            .unzip()
    }

    #[test]
    fn both_methods_shrink_a_planted_miscalibration_and_sigmoid_keeps_a_calibrated_model() {
        let (labels, p) = overconfident();
        let before = expected_calibration_error(&labels, &p).unwrap();
        // The planted gap: E|p - p²| over uniform p is 1/6.
        assert!((before - 1.0 / 6.0).abs() < 0.02, "{before}");
        for method in [Calibration::Isotonic, Calibration::Sigmoid] {
            let c = Calibrator::fit(method, &labels, &p).unwrap();
            let mut q = p.clone();
            c.apply_all(&mut q);
            let after = expected_calibration_error(&labels, &q).unwrap();
            assert!(after < 0.03, "{method:?}: {before} -> {after}");
            // Calibration keeps the order of the rows.
            let mut sorted: Vec<(f64, f64)> = p.iter().copied().zip(q.iter().copied()).collect();
            sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
            assert!(sorted.windows(2).all(|w| w[0].1 <= w[1].1 + 1e-12), "{method:?}");
        }
        // A model already calibrated on the log-odds scale keeps (nearly) its probabilities.
        let mut rng = caretaker_core::rng::SplitMix64::new(7);
        let mut u = || (rng.next() >> 11) as f64 / (1u64 << 53) as f64;
        let (labels, p): (Vec<bool>, Vec<f64>) = (0..20_000)
            .map(|_| {
                let p = u();
                (u() < p, p)
            })
            .unzip();
        let Some(Calibrator::Sigmoid { a, b }) = Calibrator::fit(Calibration::Sigmoid, &labels, &p) else { panic!() };
        assert!((a + 1.0).abs() < 0.05 && b.abs() < 0.05, "a {a} b {b}");
    }
}
