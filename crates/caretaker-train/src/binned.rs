//! The training window binned once, one byte per value, for the tree families.
//!
//! The decision tree and the forest find their splits from per-node histograms of bin codes, as
//! LightGBM, XGBoost's `hist` method and scikit-learn's HistGradientBoosting do, instead of sorting
//! the rows of every node. This module turns the window into those codes once per run; both tree
//! families then share it (see [`crate::hist_tree`]).
//!
//! The bins follow the encoded columns the model is scored on ([`crate::encoding::Encoding`]), so
//! a split is a threshold on an encoded column and prediction needs no bins:
//!
//! - A numeric column has at most [`MAX_THRESHOLDS`] thresholds `t_0 < t_1 < ...`, and a value's
//!   bin is the number of thresholds below it. So `value <= t_b` exactly when `bin <= b`: a split
//!   at bin `b` stored as the threshold `t_b` routes every row at prediction as the fit divided
//!   it, with no rounding in between (the tree families keep numeric values unstandardised, see
//!   [`crate::encoding::Encoding::fit_raw`]). With at most 256 distinct values each has its own
//!   bin and the thresholds are the midpoints between them, as scikit-learn's exact trees place
//!   theirs; with more, the thresholds are quantiles of a sample of at most [`BINNING_SAMPLE`]
//!   values (scikit-learn's HistGradientBoosting bins the same way). NaN (which the quality stage
//!   quarantines) takes the top bin, which prediction also sends right of every threshold.
//! - A categorical feature's one-hot columns are kept as one code per row: the column that holds
//!   its 1. One pass over those codes gives the histograms of all its columns (a column's "1" bin
//!   is its level's count, its "0" bin the rest), so a 50-level feature costs what one numeric
//!   column costs, not fifty. A split on one-hot column `j` sends rows whose code is not `j` left
//!   (value 0 <= 0.5) and the rest right. Features of more than 255 columns are kept in chunks
//!   of 255; a row whose column is in another chunk has the chunk's "none" code.

use crate::encoding::Encoding;
use crate::{Error, Result};
use caretaker_core::events::LabelledEvents;
use caretaker_core::rng::SplitMix64;
use std::collections::HashMap;

/// At most this many thresholds (256 bins) per numeric column.
pub const MAX_THRESHOLDS: usize = 255;
/// Values sampled to place the thresholds of a column with more distinct values than bins.
pub const BINNING_SAMPLE: usize = 200_000;
/// One-hot columns per chunk of a categorical feature (its codes, plus "none", fit in a byte).
const CHUNK_COLUMNS: usize = 255;

/// The training rows as bin codes, one feature (a numeric column or a chunk of one-hot columns)
/// after another.
#[derive(Debug, Clone)]
pub struct BinnedWindow {
    pub rows: usize,
    pub labels: Vec<bool>,
    pub features: Vec<BinnedFeature>,
    /// Per encoded column: the feature that holds it.
    column_feature: Vec<u32>,
}

#[derive(Debug, Clone)]
pub struct BinnedFeature {
    /// Each row's bin.
    pub codes: Vec<u8>,
    pub kind: FeatureKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum FeatureKind {
    /// Encoded column `column`: rows of bin `b` have values in `(thresholds[b-1], thresholds[b]]`.
    Numeric { column: u32, thresholds: Vec<f64> },
    /// Encoded columns `first .. first + width`, one-hot: a row of bin `b < width` holds its 1 in
    /// column `first + b`; bin `width` holds none of them.
    OneHot { first: u32, width: u32 },
}

impl BinnedFeature {
    /// Bins of the feature's histogram.
    pub fn bins(&self) -> usize {
        match &self.kind {
            FeatureKind::Numeric { thresholds, .. } => thresholds.len() + 2,
            FeatureKind::OneHot { width, .. } => *width as usize + 1,
        }
    }

    /// The encoded columns this feature holds.
    pub fn columns(&self) -> std::ops::Range<u32> {
        match &self.kind {
            FeatureKind::Numeric { column, .. } => *column..*column + 1,
            FeatureKind::OneHot { first, width } => *first..*first + *width,
        }
    }
}

impl BinnedWindow {
    /// Bins `events`, encoded by `encoding` (fitted on them, with [`Encoding::fit_raw`]).
    pub fn new(encoding: &Encoding, events: &LabelledEvents, seed: u64) -> Result<BinnedWindow> {
        let rows = events.len();
        let mut features = Vec::new();
        let mut column = 0u32;
        for s in &encoding.numeric {
            let values = &events
                .numeric
                .iter()
                .find(|c| c.name == s.feature)
                .ok_or_else(|| Error::MissingFeature { feature: s.feature.clone() })?
                .values;
            features.push((column, Pending::Numeric(values, s.mean, s.std)));
            column += 1;
        }
        for oh in &encoding.categorical {
            let source = events
                .categorical
                .iter()
                .find(|c| c.name == oh.feature)
                .ok_or_else(|| Error::MissingFeature { feature: oh.feature.clone() })?;
            let index: HashMap<&str, usize> = oh.levels.iter().enumerate().map(|(i, l)| (l.as_str(), i)).collect();
            let width = oh.levels.len() + oh.other as usize;
            // The encoded column of each of the data's levels, or none.
            let target: Vec<Option<usize>> = source
                .levels
                .iter()
                .map(|l| index.get(l.as_str()).copied().or(oh.other.then_some(oh.levels.len())))
                .collect();
            for start in (0..width).step_by(CHUNK_COLUMNS) {
                let chunk = (width - start).min(CHUNK_COLUMNS);
                features.push((column + start as u32, Pending::OneHot(&source.codes, target.clone(), start, chunk)));
            }
            column += width as u32;
        }
        let features = crate::on_all_cores(features.len(), |i| match &features[i] {
            (column, Pending::Numeric(values, mean, std)) => numeric(*column, values, *mean, *std, seed ^ i as u64),
            (first, Pending::OneHot(codes, target, start, width)) => {
                let none = *width as u8;
                let code_of: Vec<u8> = target
                    .iter()
                    .map(|t| match t {
                        Some(c) if (*start..start + width).contains(c) => (c - start) as u8,
                        _ => none,
                    })
                    .collect();
                BinnedFeature {
                    codes: codes.iter().map(|&c| code_of[c as usize]).collect(),
                    kind: FeatureKind::OneHot { first: *first, width: *width as u32 },
                }
            }
        });
        let mut column_feature = vec![0u32; column as usize];
        for (f, feature) in features.iter().enumerate() {
            for c in feature.columns() {
                column_feature[c as usize] = f as u32;
            }
        }
        Ok(BinnedWindow { rows, labels: events.labels.clone(), features, column_feature })
    }

    pub fn columns(&self) -> usize {
        self.column_feature.len()
    }

    /// The feature holding encoded column `column`.
    pub fn feature_of(&self, column: u32) -> usize {
        self.column_feature[column as usize] as usize
    }

    /// Whether row `row` goes left of `split`.
    pub fn goes_left(&self, split: &Split, row: usize) -> bool {
        self.router(split).goes_left(row)
    }

    /// Routes rows by `split`, its feature looked up once.
    pub fn router(&self, split: &Split) -> Router<'_> {
        let feature = &self.features[self.feature_of(split.column)];
        // The codes that go right are one range: a numeric column's bins above the split, a
        // one-hot column's own level.
        let (lo, hi) = match &feature.kind {
            FeatureKind::Numeric { .. } => (split.bin + 1, u8::MAX),
            FeatureKind::OneHot { first, .. } => {
                let level = (split.column - first) as u8;
                (level, level)
            }
        };
        Router { codes: &feature.codes, lo, span: hi - lo }
    }

    /// The encoded value a split at `split` compares against, so that a raw value `<=` it goes
    /// left exactly when its row's bin goes left.
    pub fn threshold(&self, split: &Split) -> f64 {
        match &self.features[self.feature_of(split.column)].kind {
            FeatureKind::Numeric { thresholds, .. } => thresholds[split.bin as usize],
            FeatureKind::OneHot { .. } => 0.5,
        }
    }
}

/// Sends a row left or right of one split by its code alone.
pub struct Router<'a> {
    codes: &'a [u8],
    lo: u8,
    span: u8,
}

impl Router<'_> {
    /// Left unless the row's code is in `lo ..= lo + span` (one comparison, no branch).
    #[inline]
    pub fn goes_left(&self, row: usize) -> bool {
        self.code_goes_left(self.codes[row])
    }

    /// Whether a row of code `code` (in this split's feature) goes left.
    #[inline]
    pub fn code_goes_left(&self, code: u8) -> bool {
        code.wrapping_sub(self.lo) > self.span
    }
}

/// A split of a tree in bin space: a numeric column's rows of bin `<= bin` go left; a one-hot
/// column's rows without its 1 go left (`bin` is then unused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Split {
    pub column: u32,
    pub bin: u8,
}

enum Pending<'a> {
    Numeric(&'a [f64], f64, f64),
    OneHot(&'a [u32], Vec<Option<usize>>, usize, usize),
}

/// The thresholds and codes of one numeric column, standardised as `(v - mean) / std`.
fn numeric(column: u32, values: &[f64], mean: f64, std: f64, seed: u64) -> BinnedFeature {
    let encode = |v: f64| (v - mean) / std;
    let thresholds = thresholds(values, seed, encode);
    let top = (thresholds.len() + 1) as u8;
    let codes = values
        .iter()
        .map(|&v| {
            let v = encode(v);
            if v.is_nan() { top } else { thresholds.partition_point(|&t| t < v) as u8 }
        })
        .collect();
    BinnedFeature { codes, kind: FeatureKind::Numeric { column, thresholds } }
}

/// At most [`MAX_THRESHOLDS`] increasing thresholds between the (encoded) values of `values`.
fn thresholds(values: &[f64], seed: u64, encode: impl Fn(f64) -> f64) -> Vec<f64> {
    let mut sample: Vec<f64> = if values.len() > BINNING_SAMPLE {
        let mut rng = SplitMix64::new(seed);
        (0..BINNING_SAMPLE).map(|_| encode(values[rng.below(values.len())])).collect()
    } else {
        values.iter().map(|&v| encode(v)).collect()
    };
    sample.retain(|v| !v.is_nan());
    sample.sort_unstable_by(f64::total_cmp);
    let mut distinct = sample.clone();
    distinct.dedup();
    let midpoint = |a: f64, b: f64| {
        let m = a + (b - a) / 2.0;
        // Between neighbouring floats the midpoint rounds to one of them: keep the lower, so the
        // upper value still lies above the threshold.
        if m >= b { a } else { m }
    };
    let mut out: Vec<f64> = if distinct.len() <= MAX_THRESHOLDS + 1 {
        distinct.windows(2).map(|w| midpoint(w[0], w[1])).collect()
    } else {
        // Each quantile's threshold lies between its value and the next larger one: a value
        // repeated across several quantiles (a heavy value, or a row drawn twice) gives one.
        let n = sample.len();
        (1..=MAX_THRESHOLDS)
            .map(|k| k * n / (MAX_THRESHOLDS + 1))
            .filter_map(|p| {
                let below = sample[p.max(1) - 1];
                let above = *sample.get(sample.partition_point(|&v| v <= below))?;
                Some(midpoint(below, above))
            })
            .collect()
    };
    out.retain(|t| t.is_finite());
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use caretaker_core::events::{CategoricalColumn, NumericColumn};

    fn events(x: Vec<f64>, codes: Vec<u32>, levels: &[&str]) -> LabelledEvents {
        LabelledEvents {
            timestamps: vec![0; x.len()],
            labels: (0..x.len()).map(|i| i % 2 == 0).collect(),
            numeric: vec![NumericColumn { name: "x".into(), values: x }],
            categorical: vec![CategoricalColumn {
                name: "c".into(),
                levels: levels.iter().map(|l| l.to_string()).collect(),
                codes,
            }],
        }
    }

    #[test]
    fn few_distinct_values_get_a_bin_each_and_thresholds_between_them() {
        let e = events(vec![3.0, 1.0, 2.0, 1.0, 3.0, 2.0], vec![0, 1, 2, 0, 1, 2], &["a", "b", "c"]);
        let enc = Encoding::fit_raw(&e, 2);
        let w = BinnedWindow::new(&enc, &e, 1).unwrap();
        assert_eq!(w.features[0].kind, FeatureKind::Numeric { column: 0, thresholds: vec![1.5, 2.5] });
        assert_eq!(w.features[0].codes, [2, 0, 1, 0, 2, 1]);
        // "a" and "b" have columns 1 and 2 (two levels at most); "c" goes to "other", column 3.
        assert_eq!(w.features[1].kind, FeatureKind::OneHot { first: 1, width: 3 });
        assert_eq!(w.columns(), 4);
        let m = enc.transform(&e).unwrap();
        for row in 0..e.len() {
            for column in 0..w.columns() as u32 {
                for bin in 0..2 {
                    let split = Split { column, bin };
                    let raw = m.column(column as usize)[row] <= w.threshold(&split);
                    assert_eq!(w.goes_left(&split, row), raw, "row {row}, column {column}, bin {bin}");
                }
            }
        }
    }

    #[test]
    fn bins_route_rows_as_their_raw_values_do_on_many_distinct_values() {
        let mut rng = SplitMix64::new(4);
        let x: Vec<f64> = (0..300_000)
            .map(|i| if i % 7 == 0 { 5.0 } else { (rng.next() >> 11) as f64 / (1u64 << 53) as f64 * 100.0 - 30.0 })
            .collect();
        let n = x.len();
        let e = events(x, vec![0; n], &["a"]);
        let enc = Encoding::fit_raw(&e, 2);
        let w = BinnedWindow::new(&enc, &e, 9).unwrap();
        let FeatureKind::Numeric { thresholds, .. } = &w.features[0].kind else { panic!() };
        assert!(thresholds.len() > 200 && thresholds.len() <= MAX_THRESHOLDS, "{}", thresholds.len());
        assert!(thresholds.windows(2).all(|t| t[0] < t[1]));
        for bin in [0u8, 17, 100, (thresholds.len() - 1) as u8] {
            let split = Split { column: 0, bin };
            let t = w.threshold(&split);
            for row in (0..n).step_by(97) {
                assert_eq!(w.goes_left(&split, row), e.numeric[0].values[row] <= t);
            }
        }
    }

    #[test]
    fn a_feature_of_more_than_255_columns_is_kept_in_chunks() {
        let levels: Vec<String> = (0..600).map(|i| format!("l{i}")).collect();
        let refs: Vec<&str> = levels.iter().map(|s| s.as_str()).collect();
        let codes: Vec<u32> = (0..1800).map(|i| (i % 600) as u32).collect();
        let e = events(vec![0.0; 1800], codes, &refs);
        let enc = Encoding::fit_raw(&e, 1000);
        let w = BinnedWindow::new(&enc, &e, 1).unwrap();
        assert_eq!(w.columns(), 601);
        let m = enc.transform(&e).unwrap();
        for column in [1u32, 255, 256, 300, 510, 511, 600] {
            let split = Split { column, bin: 0 };
            for row in 0..1800 {
                assert_eq!(w.goes_left(&split, row), m.column(column as usize)[row] <= 0.5, "column {column}");
            }
        }
    }
}
