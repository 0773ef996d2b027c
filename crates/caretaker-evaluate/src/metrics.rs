//! Binary classification metrics, defined as scikit-learn defines them.
//!
//! Positive class: `true`. Zero division gives 0 (`zero_division=0`). ROC-AUC is the trapezoidal
//! area over distinct score thresholds (`roc_auc_score`); PR-AUC is average precision
//! (`average_precision_score`, a step function, not a trapezoid); log loss clips probabilities to
//! `[eps, 1 - eps]` with `eps` the f64 machine epsilon, as scikit-learn does for float64 input.

use caretaker_core::metrics::{ClassificationMetrics, ConfusionMatrix};

/// Every metric of one model on one holdout. `probabilities[i]` is the predicted probability that
/// row `i` is positive; a row is predicted positive when its probability is at least `threshold`.
pub fn classification_metrics(labels: &[bool], probabilities: &[f64], threshold: f64) -> ClassificationMetrics {
    assert_eq!(labels.len(), probabilities.len(), "one probability per label");
    let confusion = confusion_matrix(labels, probabilities, threshold);
    let ConfusionMatrix { tp, fp, tn, fn_ } = confusion;
    let n = labels.len() as f64;
    let ratio = |num: u64, den: u64| if den == 0 { 0.0 } else { num as f64 / den as f64 };
    let ranked = rank_by_score(labels, probabilities);
    ClassificationMetrics {
        rows: labels.len() as u64,
        accuracy: ratio(tp + tn, confusion.total()),
        precision: ratio(tp, tp + fp),
        recall: ratio(tp, tp + fn_),
        f1: ratio(2 * tp, 2 * tp + fp + fn_),
        roc_auc: roc_auc(&ranked),
        pr_auc: average_precision(&ranked),
        log_loss: if labels.is_empty() {
            0.0
        } else {
            let eps = f64::EPSILON;
            labels
                .iter()
                .zip(probabilities)
                .map(|(&y, &p)| {
                    let p = p.clamp(eps, 1.0 - eps);
                    if y { -p.ln() } else { -(1.0 - p).ln() }
                })
                .sum::<f64>()
                / n
        },
        brier: if labels.is_empty() {
            0.0
        } else {
            labels.iter().zip(probabilities).map(|(&y, &p)| (p - y as u8 as f64).powi(2)).sum::<f64>() / n
        },
        ece: crate::calibration::expected_calibration_error(labels, probabilities),
        threshold,
        confusion,
    }
}

pub fn confusion_matrix(labels: &[bool], probabilities: &[f64], threshold: f64) -> ConfusionMatrix {
    let mut m = ConfusionMatrix::default();
    for (&y, &p) in labels.iter().zip(probabilities) {
        match (y, p >= threshold) {
            (true, true) => m.tp += 1,
            (false, true) => m.fp += 1,
            (false, false) => m.tn += 1,
            (true, false) => m.fn_ += 1,
        }
    }
    m
}

/// Cumulative true and false positives at each distinct score, highest score first: the points
/// of the ROC and precision-recall curves.
#[derive(Debug, Default)]
pub struct RankedScores {
    /// (score, cumulative tp, cumulative fp) at the last row of each distinct score.
    pub steps: Vec<(f64, u64, u64)>,
    pub positives: u64,
    pub negatives: u64,
}

pub fn rank_by_score(labels: &[bool], scores: &[f64]) -> RankedScores {
    let mut order: Vec<usize> = (0..labels.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut steps: Vec<(f64, u64, u64)> = Vec::new();
    let (mut tp, mut fp) = (0u64, 0u64);
    for (k, &i) in order.iter().enumerate() {
        if labels[i] {
            tp += 1
        } else {
            fp += 1
        }
        let last_of_score = order.get(k + 1).is_none_or(|&j| scores[j] != scores[i]);
        if last_of_score {
            steps.push((scores[i], tp, fp));
        }
    }
    RankedScores { steps, positives: tp, negatives: fp }
}

/// Trapezoidal area under the ROC curve; `None` when the labels hold one class only.
pub fn roc_auc(r: &RankedScores) -> Option<f64> {
    if r.positives == 0 || r.negatives == 0 {
        return None;
    }
    let (p, n) = (r.positives as f64, r.negatives as f64);
    let (mut area, mut prev_tpr, mut prev_fpr) = (0.0, 0.0, 0.0);
    for &(_, tp, fp) in &r.steps {
        let (tpr, fpr) = (tp as f64 / p, fp as f64 / n);
        area += (fpr - prev_fpr) * (tpr + prev_tpr) / 2.0;
        (prev_tpr, prev_fpr) = (tpr, fpr);
    }
    Some(area)
}

/// Average precision: the sum over thresholds of (recall gained) x (precision there); `None`
/// without positives.
pub fn average_precision(r: &RankedScores) -> Option<f64> {
    if r.positives == 0 {
        return None;
    }
    let p = r.positives as f64;
    let (mut ap, mut prev_recall) = (0.0, 0.0);
    for &(_, tp, fp) in &r.steps {
        let recall = tp as f64 / p;
        let precision = tp as f64 / (tp + fp) as f64;
        ap += (recall - prev_recall) * precision;
        prev_recall = recall;
    }
    Some(ap)
}

/// The decision threshold that maximises `metric` on these predictions, with the value reached.
/// Only F1 and accuracy are maximised (precision and recall alone are maximised by degenerate
/// thresholds; ranking metrics and losses do not depend on one): any other metric gets the
/// F1-best threshold. Candidate thresholds are the distinct predicted probabilities; a row is
/// positive when its probability is at or above the threshold.
pub fn best_threshold(labels: &[bool], probabilities: &[f64], metric: caretaker_core::metrics::Metric) -> (f64, f64) {
    use caretaker_core::metrics::Metric;
    let r = rank_by_score(labels, probabilities);
    let n = labels.len() as f64;
    let (mut best_t, mut best_v) = (0.5, f64::NEG_INFINITY);
    for &(score, tp, fp) in &r.steps {
        let fn_ = r.positives - tp;
        let tn = r.negatives - fp;
        let value = match metric {
            Metric::Accuracy => (tp + tn) as f64 / n,
            _ => {
                let den = 2 * tp + fp + fn_;
                if den == 0 { 0.0 } else { 2.0 * tp as f64 / den as f64 }
            }
        };
        if value > best_v {
            (best_t, best_v) = (score, value);
        }
    }
    (best_t, best_v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    // Expected values computed with scikit-learn 1.9.1 on the same inputs:
    //   y = [1,0,1,1,0,0,1,0,1,0]; p = [.9,.8,.7,.6,.55,.5,.4,.3,.2,.1]; y_hat = p >= .5
    //   accuracy_score 0.5, precision_score 0.5, recall_score 0.6, f1_score 0.5454545454545454,
    //   roc_auc_score 0.6399999999999999, average_precision_score 0.7087301587301587,
    //   log_loss 0.7061717976479182, brier_score_loss 0.25525000000000003
    #[test]
    fn matches_scikit_learn_on_a_small_example() {
        let y = [true, false, true, true, false, false, true, false, true, false];
        let p = [0.9, 0.8, 0.7, 0.6, 0.55, 0.5, 0.4, 0.3, 0.2, 0.1];
        let m = classification_metrics(&y, &p, 0.5);
        assert_eq!(m.confusion, ConfusionMatrix { tp: 3, fp: 3, tn: 2, fn_: 2 });
        assert!(close(m.accuracy, 0.5));
        assert!(close(m.precision, 0.5));
        assert!(close(m.recall, 0.6));
        assert!(close(m.f1, 0.5454545454545454));
        assert!(close(m.roc_auc.unwrap(), 0.6399999999999999), "{:?}", m.roc_auc);
        assert!(close(m.pr_auc.unwrap(), 0.7087301587301587), "{:?}", m.pr_auc);
        assert!(close(m.log_loss, 0.7061717976479182), "{}", m.log_loss);
        assert!(close(m.brier, 0.25525000000000003), "{}", m.brier);
    }

    #[test]
    fn the_best_threshold_maximises_f1_on_the_given_rows() {
        use caretaker_core::metrics::Metric;
        let y = [true, false, true, true, false, false, true, false, true, false];
        let p = [0.9, 0.8, 0.7, 0.6, 0.55, 0.5, 0.4, 0.3, 0.2, 0.1];
        let (t, f1) = best_threshold(&y, &p, Metric::F1);
        // Exhaustively: no threshold among the scores does better, and the reported value is real.
        let at = |t: f64| classification_metrics(&y, &p, t).f1;
        assert!(close(at(t), f1));
        assert!(p.iter().all(|&c| at(c) <= f1 + 1e-12));
        assert_eq!(t, 0.2); // everything from 0.2 up: tp 5, fp 4, fn 0 -> f1 = 10/14
    }

    #[test]
    fn ties_in_scores_count_as_one_threshold() {
        // roc_auc_score([1,0,1,0], [.5,.5,.5,.5]) = 0.5; average_precision = 0.5
        let m = classification_metrics(&[true, false, true, false], &[0.5; 4], 0.5);
        assert!(close(m.roc_auc.unwrap(), 0.5));
        assert!(close(m.pr_auc.unwrap(), 0.5));
    }

    #[test]
    fn zero_division_gives_zero_and_one_class_has_no_auc() {
        let m = classification_metrics(&[false, false, false], &[0.1, 0.2, 0.3], 0.5);
        assert_eq!((m.precision, m.recall, m.f1), (0.0, 0.0, 0.0));
        assert_eq!(m.accuracy, 1.0);
        assert_eq!(m.roc_auc, None);
        assert_eq!(m.pr_auc, None);
    }

    #[test]
    fn log_loss_clips_certain_wrong_predictions_like_scikit_learn() {
        // log_loss([1, 0], [0.0, 1.0]) = 36.04365338911715
        let m = classification_metrics(&[true, false], &[0.0, 1.0], 0.5);
        assert!(close(m.log_loss, 36.04365338911715), "{}", m.log_loss);
    }
}
