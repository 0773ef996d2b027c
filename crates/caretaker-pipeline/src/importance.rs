//! Permutation importance on the holdout: how much a model's primary metric falls when one
//! feature's values are shuffled across the rows (scikit-learn's `permutation_importance`), for
//! the champion and the gate's candidate, seeded.

use caretaker_core::events::LabelledEvents;
use caretaker_core::metrics::Metric;
use caretaker_core::report::{FeatureImportance, ImportanceReport};
use caretaker_core::rng::SplitMix64;
use caretaker_evaluate::gate::goodness;
use caretaker_evaluate::metrics::classification_metrics;
use caretaker_train::TrainedModel;

/// Holdout rows scored per shuffle, at most: enough to rank features, cheap on any holdout.
pub(crate) const MAX_ROWS: usize = 20_000;
/// Shuffles per feature, averaged.
pub(crate) const REPEATS: u32 = 3;

/// The holdout rows importance is measured on: every row, or a seeded sample of [`MAX_ROWS`].
pub(crate) fn sample(holdout: &LabelledEvents, seed: u64) -> LabelledEvents {
    if holdout.len() <= MAX_ROWS {
        return holdout.clone();
    }
    let mut rng = SplitMix64::new(seed);
    let mut rows: Vec<usize> = (0..holdout.len()).collect();
    for i in 0..MAX_ROWS {
        let j = i + rng.below(rows.len() - i);
        rows.swap(i, j);
    }
    rows.truncate(MAX_ROWS);
    rows.sort_unstable();
    holdout.take(&rows)
}

/// Each feature's importance for `model` on `rows`: the mean drop of `metric` (oriented so that a
/// drop is positive) over [`REPEATS`] seeded shuffles of the feature. `None` when the metric is
/// undefined on the rows.
pub(crate) fn importances(
    model: &TrainedModel,
    rows: &LabelledEvents,
    metric: Metric,
    seed: u64,
) -> Result<Option<Vec<(String, f64)>>, String> {
    let score = |events: &LabelledEvents| -> Result<Option<f64>, String> {
        let p = model.predict_proba(events).map_err(|e| e.to_string())?;
        Ok(metric.value(&classification_metrics(&events.labels, &p, model.threshold)).map(|v| goodness(metric, v)))
    };
    let Some(base) = score(rows)? else { return Ok(None) };
    let mut rng = SplitMix64::new(seed);
    let mut shuffled = rows.clone();
    let mut out = Vec::new();
    // Numeric columns first (`Ok(k)`), then categorical ones (`Err(k)`).
    let columns = (0..rows.numeric.len()).map(Ok).chain((0..rows.categorical.len()).map(Err));
    for column in columns {
        let mut drops = 0.0;
        for _ in 0..REPEATS {
            let order = permutation(rows.len(), &mut rng);
            match column {
                Ok(k) => shuffled.numeric[k].values = order.iter().map(|&i| rows.numeric[k].values[i]).collect(),
                Err(k) => shuffled.categorical[k].codes = order.iter().map(|&i| rows.categorical[k].codes[i]).collect(),
            }
            drops += base - score(&shuffled)?.unwrap_or(base);
        }
        // The next feature shuffles a copy whose other columns are the rows' own.
        let name = match column {
            Ok(k) => {
                shuffled.numeric[k].values.clone_from(&rows.numeric[k].values);
                rows.numeric[k].name.clone()
            }
            Err(k) => {
                shuffled.categorical[k].codes.clone_from(&rows.categorical[k].codes);
                rows.categorical[k].name.clone()
            }
        };
        out.push((name, drops / REPEATS as f64));
    }
    Ok(Some(out))
}

fn permutation(n: usize, rng: &mut SplitMix64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        order.swap(i, rng.below(i + 1));
    }
    order
}

/// The report: every feature with the candidate's and the champion's importance and rank (1 is
/// the most important), ordered by the candidate's importance (the champion's without one).
pub(crate) fn report(
    metric: Metric,
    rows: u64,
    seed: u64,
    candidate_name: Option<&str>,
    candidate: Option<Vec<(String, f64)>>,
    champion: Option<Vec<(String, f64)>>,
) -> Option<ImportanceReport> {
    if candidate.is_none() && champion.is_none() {
        return None;
    }
    let ranks = |values: &Option<Vec<(String, f64)>>| -> Vec<(String, f64, u32)> {
        let mut v = values.clone().unwrap_or_default();
        v.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        v.into_iter().enumerate().map(|(i, (name, value))| (name, value, i as u32 + 1)).collect()
    };
    let (c, h) = (ranks(&candidate), ranks(&champion));
    let lead = if c.is_empty() { &h } else { &c };
    let features = lead
        .iter()
        .map(|(name, _, _)| {
            let find = |list: &[(String, f64, u32)]| list.iter().find(|(n, _, _)| n == name).map(|&(_, v, r)| (v, r));
            let (cv, hv) = (find(&c), find(&h));
            FeatureImportance {
                feature: name.clone(),
                candidate: cv.map(|v| v.0),
                champion: hv.map(|v| v.0),
                candidate_rank: cv.map(|v| v.1),
                champion_rank: hv.map(|v| v.1),
            }
        })
        .collect();
    Some(ImportanceReport {
        metric,
        rows,
        repeats: REPEATS,
        seed,
        candidate: candidate.is_some().then(|| candidate_name.unwrap_or_default().to_string()),
        features,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use caretaker_core::config::{ModelParams, SplitQuality, TrainingSpec};
    use caretaker_core::events::{CategoricalColumn, NumericColumn};

    /// Failures when `load` is high, whatever `noise` and `service` say.
    fn events(n: usize, seed: u64) -> LabelledEvents {
        let mut rng = SplitMix64::new(seed);
        let mut u = || (rng.next() >> 11) as f64 / (1u64 << 53) as f64;
        let (mut load, mut noise, mut codes, mut labels) = (vec![], vec![], vec![], vec![]);
        for _ in 0..n {
            let (l, z, c) = (u(), u(), (u() * 3.0) as u32);
            load.push(l);
            noise.push(z);
            codes.push(c);
            labels.push((l > 0.7) != (u() < 0.03));
        }
        LabelledEvents {
            timestamps: (0..n as i64).collect(),
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

    #[test]
    fn the_feature_that_carries_the_signal_matters_and_noise_does_not() {
        let training = TrainingSpec {
            window_days: 60,
            holdout_days: 7,
            seed: 3,
            min_rows: 10,
            one_hot_max_levels: 5,
            validation_days: 1,
            tune_threshold: false,
            max_rows: None,
        };
        let params =
            ModelParams::DecisionTree { max_depth: Some(4), min_samples_leaf: 5, split_quality: SplitQuality::Gini };
        let model = TrainedModel::fit_params("tree", &params, &training, &events(3000, 1)).unwrap();
        let holdout = events(2000, 2);
        let found = importances(&model, &holdout, Metric::F1, 7).unwrap().unwrap();
        let get = |name: &str| found.iter().find(|(n, _)| n == name).unwrap().1;
        assert!(get("load") > 0.3, "{found:?}");
        assert!(get("noise").abs() < 0.02 && get("service").abs() < 0.02, "{found:?}");
        // Seeded: the same rows and seed give the same figures.
        assert_eq!(importances(&model, &holdout, Metric::F1, 7).unwrap().unwrap(), found);
        let report = report(Metric::F1, 2000, 7, Some("tree"), Some(found.clone()), None).unwrap();
        assert_eq!(report.features[0].feature, "load");
        assert_eq!(report.features[0].candidate_rank, Some(1));
        assert_eq!(report.features.len(), 3);
        // A holdout above MAX_ROWS is sampled, seeded.
        let big = events(MAX_ROWS + 500, 4);
        assert_eq!(sample(&big, 1).len(), MAX_ROWS);
        assert_eq!(sample(&big, 1), sample(&big, 1));
    }
}
