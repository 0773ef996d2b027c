//! Metrics per slice of the holdout, so that a candidate which gains overall cannot hide a loss
//! on one service, one region or one range of a number.
//!
//! [`define`] cuts the holdout into slices: the most frequent levels of each categorical feature
//! (one slice per level) and quantile bins of each chosen numeric feature. [`compare`] scores two
//! models on every slice with the primary metric, each at its own threshold, and orders the slices
//! worst first for the candidate. A slice is *guarded* when it has at least `min_rows` rows and
//! both models have a value there (ROC-AUC has none on a slice of one class).

use crate::gate::{Contender, goodness};
use crate::metrics::classification_metrics;
use caretaker_core::config::SliceSpec;
use caretaker_core::events::LabelledEvents;
use caretaker_core::metrics::Metric;
use caretaker_core::report::SliceMetrics;

/// Rows of the holdout sharing one value (or range) of one feature.
#[derive(Debug, Clone, PartialEq)]
pub struct Slice {
    pub feature: String,
    /// The level, or the range `[low, high)` (the last bin closed: `[low, high]`).
    pub value: String,
    /// The level, or `bin NN` of a numeric feature.
    pub key: String,
    /// Holdout row indices, ascending.
    pub rows: Vec<u32>,
}

/// The slices of `holdout` that `spec` asks for, categorical features first, in the order the
/// events hold them. Features the events do not have are passed over.
pub fn define(holdout: &LabelledEvents, spec: &SliceSpec) -> Vec<Slice> {
    let mut out = Vec::new();
    for column in &holdout.categorical {
        if !spec.categorical.as_ref().is_none_or(|names| names.contains(&column.name)) {
            continue;
        }
        let mut counts = vec![0u64; column.levels.len()];
        for &c in &column.codes {
            counts[c as usize] += 1;
        }
        let mut levels: Vec<usize> = (0..counts.len()).filter(|&l| counts[l] > 0).collect();
        levels.sort_by(|&a, &b| counts[b].cmp(&counts[a]).then(column.levels[a].cmp(&column.levels[b])));
        levels.truncate(spec.top_levels);
        levels.sort_by(|&a, &b| column.levels[a].cmp(&column.levels[b]));
        for level in levels {
            let rows = (0..column.codes.len() as u32).filter(|&r| column.codes[r as usize] as usize == level).collect();
            let value = column.levels[level].clone();
            out.push(Slice { feature: column.name.clone(), key: value.clone(), value, rows });
        }
    }
    for column in &holdout.numeric {
        if !spec.numeric.contains(&column.name) {
            continue;
        }
        // The quality stage quarantines rows with a value that is not finite: every row has a bin.
        let mut sorted: Vec<f64> = column.values.iter().copied().filter(|v| v.is_finite()).collect();
        if sorted.is_empty() {
            continue;
        }
        sorted.sort_by(f64::total_cmp);
        // Cut points at the inner quantiles, each a value of the column, repeated ones once.
        let mut cuts: Vec<f64> = (1..spec.bins)
            .map(|k| sorted[(k * sorted.len() / spec.bins).min(sorted.len() - 1)])
            .filter(|&c| c > sorted[0])
            .collect();
        cuts.dedup();
        let edges: Vec<f64> =
            std::iter::once(sorted[0]).chain(cuts.iter().copied()).chain([sorted[sorted.len() - 1]]).collect();
        for b in 0..edges.len() - 1 {
            let (low, high, last) = (edges[b], edges[b + 1], b + 2 == edges.len());
            let rows: Vec<u32> = (0..column.values.len() as u32)
                .filter(|&r| {
                    let v = column.values[r as usize];
                    v >= low && (v < high || (last && v <= high))
                })
                .collect();
            if rows.is_empty() {
                continue;
            }
            let value = if last {
                format!("[{}, {}]", short(low), short(high))
            } else {
                format!("[{}, {})", short(low), short(high))
            };
            out.push(Slice { feature: column.name.clone(), value, key: format!("bin {:02}", b + 1), rows });
        }
    }
    out
}

/// A number with at most four significant digits, without trailing zeros.
fn short(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{v}");
    }
    let digits = (3 - v.abs().log10().floor() as i32).max(0) as usize;
    let s = format!("{v:.digits$}");
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
}

/// `metric` of `model` on the rows of `slice`, at the model's threshold.
fn value_on(metric: Metric, labels: &[bool], slice: &Slice, model: &Contender<'_>) -> Option<f64> {
    let y: Vec<bool> = slice.rows.iter().map(|&r| labels[r as usize]).collect();
    let p: Vec<f64> = slice.rows.iter().map(|&r| model.probabilities[r as usize]).collect();
    metric.value(&classification_metrics(&y, &p, model.metrics.threshold)).filter(|v| v.is_finite())
}

/// Every slice's `metric` for the candidate and the champion (when there is one), and the
/// candidate's gain (oriented so that a positive gain is better), worst gain first; slices
/// without a gain follow, in `slices` order.
pub fn compare(
    metric: Metric,
    labels: &[bool],
    slices: &[Slice],
    min_rows: u64,
    candidate: &Contender<'_>,
    champion: Option<&Contender<'_>>,
) -> Vec<SliceMetrics> {
    let mut out: Vec<SliceMetrics> = slices
        .iter()
        .map(|s| {
            let c = value_on(metric, labels, s, candidate);
            let h = champion.and_then(|h| value_on(metric, labels, s, h));
            let gain = c.zip(h).map(|(c, h)| goodness(metric, c) - goodness(metric, h));
            let rows = s.rows.len() as u64;
            SliceMetrics {
                feature: s.feature.clone(),
                value: s.value.clone(),
                key: s.key.clone(),
                rows,
                positives: s.rows.iter().filter(|&&r| labels[r as usize]).count() as u64,
                candidate: c,
                champion: h,
                gain,
                guarded: gain.is_some() && rows >= min_rows,
            }
        })
        .collect();
    out.sort_by(|a, b| match (a.gain, b.gain) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use caretaker_core::events::{CategoricalColumn, NumericColumn};

    fn spec() -> SliceSpec {
        SliceSpec { categorical: None, numeric: vec!["load".into()], top_levels: 2, bins: 4, min_rows: 3 }
    }

    fn events() -> LabelledEvents {
        LabelledEvents {
            timestamps: vec![0; 8],
            labels: vec![true, false, true, false, true, false, true, false],
            numeric: vec![NumericColumn { name: "load".into(), values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0] }],
            categorical: vec![CategoricalColumn {
                name: "service".into(),
                levels: vec!["a".into(), "b".into(), "c".into()],
                codes: vec![0, 0, 0, 1, 1, 1, 1, 2],
            }],
        }
    }

    #[test]
    fn slices_are_the_top_levels_and_the_quantile_bins() {
        let s = define(&events(), &spec());
        assert_eq!(s[2].key, "bin 01");
        let named: Vec<(String, String, Vec<u32>)> = s.into_iter().map(|s| (s.feature, s.value, s.rows)).collect();
        assert_eq!(
            named,
            vec![
                ("service".into(), "a".into(), vec![0, 1, 2]),
                ("service".into(), "b".into(), vec![3, 4, 5, 6]),
                ("load".into(), "[1, 3)".into(), vec![0, 1]),
                ("load".into(), "[3, 5)".into(), vec![2, 3]),
                ("load".into(), "[5, 7)".into(), vec![4, 5]),
                ("load".into(), "[7, 8]".into(), vec![6, 7]),
            ]
        );
        // Only the features asked for; a numeric column of one value is one closed slice.
        let mut flat = events();
        flat.numeric[0].values = vec![2.5; 8];
        let only = SliceSpec { categorical: Some(vec![]), ..spec() };
        let s = define(&flat, &only);
        assert_eq!(s.len(), 1);
        assert_eq!((s[0].value.as_str(), s[0].rows.len()), ("[2.5, 2.5]", 8));
        assert_eq!(short(1234.5678), "1235");
        assert_eq!(short(0.000123456), "0.0001235");
        assert_eq!(short(-12.5), "-12.5");
    }
}
