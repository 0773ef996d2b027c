//! Performance estimated before the labels arrive: confidence-based performance estimation
//! (CBPE, as NannyML names it).
//!
//! If a model's probabilities are calibrated, row `i` is positive with probability `p_i`, so the
//! confusion matrix at the threshold `t` is expected to hold `TP = Σ_{p_i ≥ t} p_i`,
//! `FP = Σ_{p_i ≥ t} (1 - p_i)`, `FN = Σ_{p_i < t} p_i` and `TN = Σ_{p_i < t} (1 - p_i)`;
//! precision, recall, F1 and accuracy are computed from those expected cells, and ROC-AUC from the
//! expected true and false positive rates at every distinct probability (NannyML's estimators).
//!
//! The band is the spread of the realised value over seeded draws of the labels the probabilities
//! describe (each row positive with probability `p_i`): where the metric will land once the labels
//! arrive, if the model is calibrated on these rows. It widens on few rows and narrows on many.
//! A band says nothing about a model whose calibration broke: compare estimates with realised
//! values as labels arrive.

use caretaker_core::report::{EstimatedMetrics, EstimatedValue};

/// Estimates accuracy, precision, recall, F1 and ROC-AUC on rows with `probabilities` and no
/// labels, with a `confidence` band from `draws` seeded label draws. A probability that is not a
/// number is left out; `None` when no row is left.
pub fn estimate(
    probabilities: &[f64],
    threshold: f64,
    draws: u32,
    confidence: f64,
    seed: u64,
) -> Option<EstimatedMetrics> {
    let p: Vec<f64> = probabilities.iter().filter(|p| !p.is_nan()).map(|p| p.clamp(0.0, 1.0)).collect();
    if p.is_empty() {
        return None;
    }
    let n = p.len() as f64;
    let (mut tp, mut fp, mut fn_, mut tn) = (0.0, 0.0, 0.0, 0.0);
    for &q in &p {
        if q >= threshold {
            tp += q;
            fp += 1.0 - q;
        } else {
            fn_ += q;
            tn += 1.0 - q;
        }
    }
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    // The rows by ascending probability, and the ranges of `order` that share one: ROC-AUC's
    // groups.
    let mut order: Vec<usize> = (0..p.len()).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut groups: Vec<std::ops::Range<usize>> = Vec::new();
    for k in 0..order.len() {
        match groups.last_mut() {
            Some(g) if p[order[g.start]] == p[order[k]] => g.end = k + 1,
            _ => groups.push(k..k + 1),
        }
    }
    // Each row is also paired with itself (`0.5·p(1-p)` in its group), as NannyML's estimator does.
    let expected_auc = {
        let (mut below, mut area, mut positives) = (0.0, 0.0, 0.0);
        for g in &groups {
            let rows = &order[g.clone()];
            let pos: f64 = rows.iter().map(|&i| p[i]).sum();
            let neg = rows.len() as f64 - pos;
            area += pos * below + 0.5 * pos * neg;
            below += neg;
            positives += pos;
        }
        let negatives = n - positives;
        (positives > 0.0 && negatives > 0.0).then(|| area / (positives * negatives))
    };

    // Realised values over label draws.
    let mut rng = caretaker_core::rng::SplitMix64::new(seed);
    let mut uniform = || (rng.next() >> 11) as f64 / (1u64 << 53) as f64;
    let mut drawn: [Vec<f64>; 5] = Default::default();
    let mut y = vec![false; p.len()];
    for _ in 0..draws {
        let (mut tp, mut fp, mut fn_, mut tn) = (0u64, 0u64, 0u64, 0u64);
        for (i, &q) in p.iter().enumerate() {
            y[i] = uniform() < q;
            match (y[i], q >= threshold) {
                (true, true) => tp += 1,
                (false, true) => fp += 1,
                (true, false) => fn_ += 1,
                (false, false) => tn += 1,
            }
        }
        let r = |a: u64, b: u64| if b > 0 { a as f64 / b as f64 } else { 0.0 };
        drawn[0].push(r(tp + tn, tp + fp + fn_ + tn));
        drawn[1].push(r(tp, tp + fp));
        drawn[2].push(r(tp, tp + fn_));
        drawn[3].push(r(2 * tp, 2 * tp + fp + fn_));
        let (mut below, mut area, mut positives) = (0u64, 0.0, 0u64);
        for g in &groups {
            let rows = &order[g.clone()];
            let pos = rows.iter().filter(|&&i| y[i]).count() as u64;
            let neg = rows.len() as u64 - pos;
            area += pos as f64 * below as f64 + 0.5 * pos as f64 * neg as f64;
            below += neg;
            positives += pos;
        }
        let negatives = p.len() as u64 - positives;
        if positives > 0 && negatives > 0 {
            drawn[4].push(area / (positives as f64 * negatives as f64));
        }
    }
    let band = |value: f64, values: &mut Vec<f64>| -> EstimatedValue {
        if values.is_empty() {
            return EstimatedValue { value, low: value, high: value };
        }
        values.sort_by(f64::total_cmp);
        let tail = (1.0 - confidence) / 2.0;
        let at = |q: f64| values[((q * (values.len() - 1) as f64).round() as usize).min(values.len() - 1)];
        EstimatedValue { value, low: at(tail).min(value), high: at(1.0 - tail).max(value) }
    };
    let [mut accuracy, mut precision, mut recall, mut f1, mut auc] = drawn;
    Some(EstimatedMetrics {
        rows: p.len() as u64,
        threshold,
        confidence,
        expected_positives: tp + fn_,
        accuracy: band(ratio(tp + tn, n), &mut accuracy),
        precision: band(ratio(tp, tp + fp), &mut precision),
        recall: band(ratio(tp, tp + fn_), &mut recall),
        f1: band(ratio(2.0 * tp, 2.0 * tp + fp + fn_), &mut f1),
        roc_auc: expected_auc.map(|v| band(v, &mut auc)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::classification_metrics;

    #[test]
    fn the_estimate_is_the_expected_confusion_matrix() {
        // By hand, at 0.5: TP = 0.9 + 0.8, FP = 0.1 + 0.2, FN = 0.3 + 0.1, TN = 0.7 + 0.9.
        let e = estimate(&[0.9, 0.8, 0.3, 0.1], 0.5, 100, 0.95, 1).unwrap();
        let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
        assert!(close(e.expected_positives, 2.1));
        assert!(close(e.precision.value, 1.7 / 2.0), "{:?}", e.precision);
        assert!(close(e.recall.value, 1.7 / 2.1));
        assert!(close(e.f1.value, 3.4 / 4.1));
        assert!(close(e.accuracy.value, 3.3 / 4.0));
        // ROC-AUC: pairs (positive above negative) weighted by their probabilities, by hand:
        // ascending 0.1, 0.3, 0.8, 0.9; negatives' mass below each: 0, 0.9, 1.6, 1.8.
        let area =
            0.1 * 0.9 * 0.5 + 0.3 * 0.9 + 0.3 * 0.7 * 0.5 + 0.8 * 1.6 + 0.8 * 0.2 * 0.5 + 0.9 * 1.8 + 0.9 * 0.1 * 0.5;
        assert!(close(e.roc_auc.unwrap().value, area / (2.1 * 1.9)), "{:?}", e.roc_auc);
        for v in [e.accuracy, e.precision, e.recall, e.f1, e.roc_auc.unwrap()] {
            assert!(v.low <= v.value && v.value <= v.high, "{v:?}");
        }
        assert!(estimate(&[], 0.5, 10, 0.95, 1).is_none());
        assert!(estimate(&[0.0, 0.0], 0.5, 10, 0.95, 1).unwrap().roc_auc.is_none());
    }

    #[test]
    fn hidden_labels_once_revealed_fall_within_the_band_of_a_calibrated_model() {
        // 50 batches of 2,000 rows whose labels are drawn from their probabilities (a calibrated
        // model), hidden while estimating, then revealed.
        let mut rng = caretaker_core::rng::SplitMix64::new(99);
        let mut u = || (rng.next() >> 11) as f64 / (1u64 << 53) as f64;
        let mut inside = [0usize; 5];
        let mut worst_gap: f64 = 0.0;
        for batch in 0..50 {
            let p: Vec<f64> = (0..2000).map(|_| u().powi(2)).collect();
            let labels: Vec<bool> = p.iter().map(|&q| u() < q).collect();
            let e = estimate(&p, 0.4, 400, 0.95, batch).unwrap();
            let m = classification_metrics(&labels, &p, 0.4);
            let pairs = [
                (e.accuracy, m.accuracy),
                (e.precision, m.precision),
                (e.recall, m.recall),
                (e.f1, m.f1),
                (e.roc_auc.unwrap(), m.roc_auc.unwrap()),
            ];
            for (k, (band, real)) in pairs.iter().enumerate() {
                inside[k] += (band.low <= *real && *real <= band.high) as usize;
                worst_gap = worst_gap.max((band.value - real).abs());
            }
        }
        // A 95% band holds the realised value about 95% of the time: at least 43 of 50 each.
        assert!(inside.iter().all(|&k| k >= 43), "{inside:?}");
        assert!(worst_gap < 0.06, "{worst_gap}");
    }

    #[test]
    fn a_miscalibrated_model_is_caught_when_the_labels_arrive() {
        // The model says p, the rows are positive at p² (overconfident): the estimate is too
        // optimistic, and the realised precision falls below the band.
        let mut rng = caretaker_core::rng::SplitMix64::new(5);
        let mut u = || (rng.next() >> 11) as f64 / (1u64 << 53) as f64;
        let p: Vec<f64> = (0..5000).map(|_| u()).collect();
        let labels: Vec<bool> = p.iter().map(|&q| u() < q * q).collect();
        let e = estimate(&p, 0.5, 300, 0.95, 3).unwrap();
        let m = classification_metrics(&labels, &p, 0.5);
        assert!(m.precision < e.precision.low, "{} against {:?}", m.precision, e.precision);
    }

    #[test]
    fn nannyml_reference_values_are_reproduced() {
        // Printed by `python bench/cbpe_reference.py` (NannyML 0.13.1, its probabilities kept).
        let p: Vec<f64> = (0..2000u64).map(|i| ((((i * 7919) % 1000) as f64 + 0.5) / 1000.0).powi(2)).collect();
        let e = estimate(&p, 0.5, 200, 0.95, 1).unwrap();
        let expected = [
            (e.roc_auc.unwrap().value, 0.8749996710971774),
            (e.f1.value, 0.6882456304211855),
            (e.precision.value, 0.73561625),
            (e.recall.value, 0.6466068454017113),
            (e.accuracy.value, 0.8047378725),
        ];
        for (ours, theirs) in expected {
            assert!((ours - theirs).abs() < 1e-8, "{ours} against NannyML's {theirs}");
        }
    }
}
