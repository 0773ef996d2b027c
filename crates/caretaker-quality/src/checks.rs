//! Column checks on the clean rows: outliers, freshness, label sanity.

use crate::check;
use crate::drift::Windows;
use caretaker_core::config::{OutlierRule, QualityPolicy};
use caretaker_core::events::{LabelledEvents, NumericColumn};
use caretaker_core::report::QualityCheck;
use chrono::{DateTime, Utc};

/// The `k`-th smallest values (in `f64::total_cmp`'s order) for every `k` in `ks` (ascending, each
/// below `values.len()`), without reordering `values`. Large inputs go through a radix histogram:
/// one pass counts the values per 16-bit prefix of their order key (sign, exponent and 4 bits of
/// mantissa), then one more pass copies out the values of the prefixes holding an order
/// statistic, to select among: usually a small share of the column, but most of it when the
/// values cluster (a 0/1 column, counts; when one or two prefixes hold more than an eighth of the
/// values, they are copied out without a branch). Small inputs are copied whole. Selection is
/// successive, O(n) per order statistic on a shrinking slice; no full sort.
pub(crate) fn order_stats(values: &[f64], ks: &[usize]) -> Vec<f64> {
    const PREFIX_BITS: u32 = 16;
    // (The histogram counts in u32: more values than that take the plain path.)
    if values.len() < 1 << 15 || values.len() > u32::MAX as usize {
        return select_successively(&mut values.to_vec(), ks);
    }
    let prefix = |v: f64| (order_key(v) >> (64 - PREFIX_BITS)) as usize;
    let mut counts = vec![0u32; 1 << PREFIX_BITS];
    values.iter().for_each(|&v| counts[prefix(v)] += 1);
    // Each k's prefix, and its rank among the values of that prefix.
    let mut wanted: Vec<(usize, usize)> = Vec::with_capacity(ks.len());
    let (mut bucket, mut below) = (0usize, 0usize);
    for &k in ks {
        while below + counts[bucket] as usize <= k {
            below += counts[bucket] as usize;
            bucket += 1;
        }
        wanted.push((bucket, k - below));
    }
    // The members of every wanted prefix, in one pass.
    let mut buckets: Vec<usize> = wanted.iter().map(|w| w.0).collect();
    buckets.dedup();
    if buckets.len() >= u16::MAX as usize {
        return select_successively(&mut values.to_vec(), ks);
    }
    // (Branches are cheaper while few values are wanted: they are then predicted right.)
    let wanted_values: usize = buckets.iter().map(|&b| counts[b] as usize).sum();
    if buckets.len() <= 2 && wanted_values * 8 > values.len() {
        return select_in_few(values, &counts, &buckets, &wanted, prefix);
    }
    const NONE: u16 = u16::MAX;
    let mut slot = vec![NONE; 1 << PREFIX_BITS];
    for (s, &b) in buckets.iter().enumerate() {
        slot[b] = s as u16;
    }
    let mut members: Vec<Vec<f64>> = buckets.iter().map(|&b| Vec::with_capacity(counts[b] as usize)).collect();
    for &v in values {
        let s = slot[prefix(v)];
        if s != NONE {
            members[s as usize].push(v);
        }
    }
    let mut out = Vec::with_capacity(ks.len());
    for (b, members) in buckets.iter().zip(&mut members) {
        let ranks: Vec<usize> = wanted.iter().filter(|w| w.0 == *b).map(|w| w.1).collect();
        out.extend(select_successively(members, &ranks));
    }
    out
}

/// The order statistics of at most two wanted prefixes. Every value is written at the end of both
/// prefixes' members, and only its own prefix's end moves on: no branch, whose outcome would be a
/// coin toss when the values cluster on a few prefixes (an integer feature's). The copies of each
/// prefix's first value are counted instead of kept, so that a prefix of one repeated value (an
/// integer feature's, 2.0) writes nothing and needs no selection.
fn select_in_few(
    values: &[f64],
    counts: &[u32],
    buckets: &[usize],
    wanted: &[(usize, usize)],
    prefix: impl Fn(f64) -> usize,
) -> Vec<f64> {
    // (With one wanted prefix, the second is one no value has.)
    let b0 = buckets[0];
    let b1 = buckets.get(1).copied().unwrap_or(usize::MAX);
    let first_of = |b: usize| values.iter().find(|&&v| prefix(v) == b).map_or(0, |v| v.to_bits());
    let (c0, c1) = (first_of(b0), if b1 == usize::MAX { 0 } else { first_of(b1) });
    let len = |b: usize| counts.get(b).map_or(0, |&c| c as usize);
    let mut first = vec![0.0f64; len(b0) + 1];
    let mut second = vec![0.0f64; len(b1) + 1];
    let (mut n0, mut n1) = (0usize, 0usize);
    for &v in values {
        let p = prefix(v);
        first[n0] = v;
        second[n1] = v;
        n0 += ((p == b0) & (v.to_bits() != c0)) as usize;
        n1 += ((p == b1) & (v.to_bits() != c1)) as usize;
    }
    let mut out = Vec::with_capacity(wanted.len());
    for (b, members, others, repeated) in [(b0, &mut first, n0, c0), (b1, &mut second, n1, c1)] {
        let ranks: Vec<usize> = wanted.iter().filter(|w| w.0 == b).map(|w| w.1).collect();
        if ranks.is_empty() || len(b) == 0 {
            continue;
        }
        if others == 0 {
            // One value, repeated: every order statistic of the prefix is that value.
            out.extend(ranks.iter().map(|_| f64::from_bits(repeated)));
        } else {
            members[others..len(b)].fill(f64::from_bits(repeated));
            out.extend(select_successively(&mut members[..len(b)], &ranks));
        }
    }
    out
}

/// A key whose unsigned order is `f64::total_cmp`'s order.
fn order_key(v: f64) -> u64 {
    let bits = v.to_bits();
    if bits >> 63 == 1 { !bits } else { bits | 1 << 63 }
}

fn select_successively(values: &mut [f64], ks: &[usize]) -> Vec<f64> {
    let mut out = Vec::with_capacity(ks.len());
    let mut lo = 0;
    for &k in ks {
        let (_, x, _) = values[lo..].select_nth_unstable_by(k - lo, f64::total_cmp);
        out.push(*x);
        lo = k;
    }
    out
}

/// Quantiles with linear interpolation (numpy's default), for `qs` ascending in [0, 1].
pub(crate) fn quantiles(values: &[f64], qs: &[f64]) -> Vec<f64> {
    interpolated(values.len(), qs, |ks| order_stats(values, ks))
}

/// The quantiles `qs` of `n` values whose `k`-th smallest values `select` gives (for `ks`
/// ascending).
fn interpolated(n: usize, qs: &[f64], select: impl FnOnce(&[usize]) -> Vec<f64>) -> Vec<f64> {
    if n == 0 {
        return vec![f64::NAN; qs.len()];
    }
    let mut ks: Vec<usize> = Vec::new();
    for &q in qs {
        let pos = q * (n - 1) as f64;
        ks.push(pos.floor() as usize);
        ks.push((pos.floor() as usize + 1).min(n - 1));
    }
    let mut sorted_ks = ks.clone();
    sorted_ks.sort_unstable();
    sorted_ks.dedup();
    let stats = select(&sorted_ks);
    let at = |k: usize| stats[sorted_ks.binary_search(&k).expect("selected")];
    qs.iter()
        .enumerate()
        .map(|(i, &q)| {
            let pos = q * (n - 1) as f64;
            let (a, b) = (at(ks[2 * i]), at(ks[2 * i + 1]));
            a + (b - a) * (pos - pos.floor())
        })
        .collect()
}

/// Outliers per numeric column, counted and reported, never dropped; columns side by side
/// ([`crate::each_in_parallel`]).
pub(crate) fn outliers(events: &LabelledEvents, policy: &QualityPolicy) -> Vec<QualityCheck> {
    let rows = events.len();
    crate::each_in_parallel(&events.numeric, |column| column_outliers(column, rows, policy))
}

/// One column's outliers, among `rows` clean rows.
fn column_outliers(column: &NumericColumn, rows: usize, policy: &QualityPolicy) -> QualityCheck {
    let (count, detail) = match policy.outlier_rule {
        OutlierRule::Iqr => {
            let q = quantiles(&column.values, &[0.25, 0.75]);
            let iqr = q[1] - q[0];
            let (lo, hi) = (q[0] - 1.5 * iqr, q[1] + 1.5 * iqr);
            let count = column.values.iter().filter(|&&v| v < lo || v > hi).count();
            (count, format!("{count} of {rows} clean rows outside [{lo:.4}, {hi:.4}] (Q1 - 1.5 IQR, Q3 + 1.5 IQR)"))
        }
        OutlierRule::Mad => {
            let median = quantiles(&column.values, &[0.5])[0];
            let deviations: Vec<f64> = column.values.iter().map(|v| (v - median).abs()).collect();
            let mad = quantiles(&deviations, &[0.5])[0];
            // A MAD of 0 (more than half the values equal): the mean absolute deviation
            // scaled to match, as Iglewicz and Hoaglin suggest.
            let scale = if mad > 0.0 {
                mad / 0.6745
            } else {
                1.253314 * deviations.iter().sum::<f64>() / deviations.len().max(1) as f64
            };
            let count = if scale > 0.0 {
                column.values.iter().filter(|&&v| (v - median).abs() / scale > 3.5).count()
            } else {
                0
            };
            (count, format!("{count} of {rows} clean rows more than 3.5 robust z-scores from the median {median:.4}"))
        }
    };
    let measured = if rows == 0 { 0.0 } else { count as f64 / rows as f64 };
    check(
        "outliers",
        Some(&column.name),
        measured,
        policy.max_outlier_fraction,
        measured <= policy.max_outlier_fraction,
        detail,
    )
}

/// The newest event against the run time.
/// The newest event of `events` and of the rows awaiting their label (`awaiting`): labels that come
/// late do not make the data stale.
/// `newest` is the newest clean labelled row's timestamp.
pub(crate) fn freshness(
    newest: Option<i64>,
    awaiting: Option<&LabelledEvents>,
    policy: &QualityPolicy,
    now: DateTime<Utc>,
    future_rows: u64,
) -> Vec<QualityCheck> {
    let newest = awaiting.iter().flat_map(|a| a.timestamps.iter().copied()).max().max(newest);
    let Some(newest) = newest else {
        return vec![check("freshness", None, f64::INFINITY, policy.max_age_hours, false, "no clean rows".into())];
    };
    let age_hours = (now.timestamp_micros() - newest) as f64 / 3.6e9;
    let newest =
        DateTime::from_timestamp_micros(newest).map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string()).unwrap_or_default();
    let mut detail = format!("newest event {newest}, {age_hours:.1} hours before the run");
    if future_rows > 0 {
        detail.push_str(&format!("; {future_rows} rows dated in the future were quarantined"));
    }
    vec![check("freshness", None, age_hours, policy.max_age_hours, age_hours <= policy.max_age_hours, detail)]
}

/// Both classes present, and the positive rate of the current window near the reference's.
pub(crate) fn labels(events: &LabelledEvents, windows: &Windows, policy: &QualityPolicy) -> Vec<QualityCheck> {
    let rows = events.len();
    let positives = events.positives();
    let rate = |rows: &crate::drift::Rows| {
        rows.pick(&events.labels).iter().filter(|&&positive| positive).count() as f64 / rows.len().max(1) as f64
    };
    let mut checks = vec![check(
        "label.both_classes",
        None,
        if rows == 0 { 0.0 } else { positives as f64 / rows as f64 },
        0.0,
        positives > 0 && positives < rows,
        format!("{positives} positive of {rows} clean rows"),
    )];
    if windows.reference.is_empty() || windows.current.is_empty() {
        checks.push(check(
            "label.balance",
            None,
            0.0,
            policy.max_label_shift,
            true,
            "not measured: the reference or the current window holds no rows".into(),
        ));
    } else {
        let (r, c) = (rate(&windows.reference), rate(&windows.current));
        let shift = (c - r).abs();
        checks.push(check(
            "label.balance",
            None,
            shift,
            policy.max_label_shift,
            shift <= policy.max_label_shift,
            format!("positive rate {c:.4} in the current window against {r:.4} in the reference"),
        ));
    }
    checks
}

#[cfg(test)]
mod tests {
    use super::*;

    /// numpy's linear interpolation between the sorted neighbours of each quantile's position.
    fn numpy_quantiles(sorted: &[f64], qs: &[f64]) -> Vec<f64> {
        let n = sorted.len();
        qs.iter()
            .map(|q| {
                let pos = q * (n - 1) as f64;
                let (a, b) = (sorted[pos.floor() as usize], sorted[(pos.floor() as usize + 1).min(n - 1)]);
                a + (b - a) * (pos - pos.floor())
            })
            .collect()
    }

    #[test]
    fn order_statistics_are_those_of_the_sorted_values() {
        // Large enough for the radix histogram: ties, both zeros, infinities, NaNs of either sign,
        // a narrow cluster and a wide spread, against a full sort by f64::total_cmp.
        let mut rng = caretaker_core::rng::SplitMix64::new(4);
        let mut u = || (rng.next() >> 11) as f64 / (1u64 << 53) as f64;
        let mut values: Vec<f64> = vec![f64::NAN, -f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.0, -0.0];
        values.extend((0..40_000).map(|_| 1.0 + u() * 1e-9));
        values.extend((0..40_000).map(|_| (u() - 0.5) * 1e9));
        values.extend((0..20_000).map(|i| (i % 5) as f64));
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        let n = values.len();
        let ks = [0, 1, 2, 3, 50_000, 50_001, 60_000, 75_000, 99_999, n - 2, n - 1];
        let got = order_stats(&values, &ks);
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&got), bits(&ks.iter().map(|&k| sorted[k]).collect::<Vec<_>>()));
        // Quantiles of the finite values: numpy's linear interpolation between sorted neighbours.
        let mut finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        let qs = [0.1, 0.25, 0.5, 0.75, 0.9];
        let got = quantiles(&finite, &qs);
        finite.sort_by(f64::total_cmp);
        assert_eq!(bits(&got), bits(&numpy_quantiles(&finite, &qs)));
    }

    #[test]
    fn quantiles_match_numpy_linear_interpolation() {
        // numpy.quantile([7, 1, 3, 10, 4], [0.25, 0.5, 0.75]) = [3.0, 4.0, 7.0]
        let v = vec![7.0, 1.0, 3.0, 10.0, 4.0];
        assert_eq!(quantiles(&v, &[0.25, 0.5, 0.75]), vec![3.0, 4.0, 7.0]);
        // numpy.quantile([1, 2, 3, 4], [0.1, 0.9]) = [1.3, 3.7]
        let v = vec![4.0, 3.0, 2.0, 1.0];
        let q = quantiles(&v, &[0.1, 0.9]);
        assert!((q[0] - 1.3).abs() < 1e-12 && (q[1] - 3.7).abs() < 1e-12, "{q:?}");
    }

    #[test]
    fn quantiles_of_clustered_values_match_a_full_sort() {
        // Values that crowd one or two histogram prefixes (a 0/1 column, counts, one value, a
        // cluster with a few far values), where the quartiles' members are picked without a
        // branch, against a full sort.
        let mut rng = caretaker_core::rng::SplitMix64::new(9);
        let mut u = || (rng.next() >> 11) as f64 / (1u64 << 53) as f64;
        let n = 50_000;
        let shapes: Vec<Vec<f64>> = vec![
            (0..n).map(|_| (u() < 0.3) as u8 as f64).collect(),
            (0..n).map(|_| (u() * u() * 15.0).floor()).collect(),
            (0..n).map(|_| if u() < 0.95 { (u() * 4.0).floor() } else { u() * 4.0 }).collect(),
            vec![2.5; n],
            (0..n).map(|_| if u() < 0.99 { 1.0 + u() * 1e-12 } else { -1e6 * u() }).collect(),
        ];
        for (shape, values) in shapes.iter().enumerate() {
            let mut sorted = values.clone();
            sorted.sort_by(f64::total_cmp);
            for qs in [&[0.25, 0.75][..], &[0.5], &[0.1, 0.9], &[0.0, 1.0]] {
                assert_eq!(quantiles(values, qs), numpy_quantiles(&sorted, qs), "shape {shape}, quantiles {qs:?}");
            }
        }
    }
}
