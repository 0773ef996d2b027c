//! Curve points for plots: ROC, precision-recall and calibration, thinned so that a report stays
//! small whatever the size of the holdout.

use crate::metrics::rank_by_score;
use caretaker_core::report::Curves;

/// At most this many points per curve.
pub const MAX_POINTS: usize = 200;

fn thin(points: Vec<[f64; 2]>) -> Vec<[f64; 2]> {
    if points.len() <= MAX_POINTS {
        return points;
    }
    let step = (points.len() - 1) as f64 / (MAX_POINTS - 1) as f64;
    (0..MAX_POINTS).map(|k| points[((k as f64 * step).round() as usize).min(points.len() - 1)]).collect()
}

pub fn curves(labels: &[bool], probabilities: &[f64]) -> Curves {
    let r = rank_by_score(labels, probabilities);
    let (p, n) = (r.positives.max(1) as f64, r.negatives.max(1) as f64);
    let mut roc = vec![[0.0, 0.0]];
    let mut pr = Vec::new();
    for &(_, tp, fp) in &r.steps {
        roc.push([fp as f64 / n, tp as f64 / p]);
        pr.push([tp as f64 / p, tp as f64 / (tp + fp).max(1) as f64]);
    }
    let calibration = crate::calibration::reliability(labels, probabilities);
    Curves { roc: thin(roc), pr: thin(pr), calibration }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_perfect_ranking_has_the_corner_roc_and_calibration_follows_the_rows() {
        let labels = [true, true, false, false];
        let c = curves(&labels, &[0.9, 0.8, 0.3, 0.1]);
        assert_eq!(c.roc.first(), Some(&[0.0, 0.0]));
        assert!(c.roc.contains(&[0.0, 1.0]));
        assert_eq!(c.roc.last(), Some(&[1.0, 1.0]));
        assert_eq!(c.pr[1], [1.0, 1.0]);
        let rows: u64 = c.calibration.iter().map(|b| b.rows).sum();
        assert_eq!(rows, 4);
        let top = c.calibration.last().unwrap();
        assert_eq!((top.predicted, top.observed, top.rows), (0.9, 1.0, 1));
    }

    #[test]
    fn long_curves_are_thinned() {
        let labels: Vec<bool> = (0..10_000).map(|i| i % 3 == 0).collect();
        let p: Vec<f64> = (0..10_000).map(|i| i as f64 / 10_000.0).collect();
        let c = curves(&labels, &p);
        assert_eq!(c.roc.len(), MAX_POINTS);
        assert_eq!(c.roc.last(), Some(&[1.0, 1.0]));
    }
}
