//! Feature encoding, fitted on training rows only and saved with the model.
//!
//! Numeric features are standardised with the training mean and standard deviation. Categorical
//! features are one-hot encoded over their most frequent training levels (at most
//! `one_hot_max_levels`); rarer levels share an "other" column, and a level never seen in training
//! goes there too (or nowhere, when every training level has its own column), so a new service
//! appearing in production never breaks scoring.

use crate::{Error, Result};
use caretaker_core::events::{FeatureMatrix, LabelledEvents};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Encoding {
    pub numeric: Vec<Standardiser>,
    pub categorical: Vec<OneHot>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Standardiser {
    pub feature: String,
    pub mean: f64,
    pub std: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OneHot {
    pub feature: String,
    /// Levels with a column of their own, most frequent first.
    pub levels: Vec<String>,
    /// Whether an "other" column collects the remaining and unseen levels.
    pub other: bool,
}

impl Encoding {
    /// Fits the encoding on `train`, numeric features standardised.
    pub fn fit(train: &LabelledEvents, max_levels: usize) -> Encoding {
        let numeric = train
            .numeric
            .iter()
            .map(|c| {
                let n = c.values.len().max(1) as f64;
                let mean = c.values.iter().sum::<f64>() / n;
                let var = c.values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
                let std = var.sqrt();
                Standardiser {
                    feature: c.name.clone(),
                    mean,
                    std: if std > 0.0 && std.is_finite() { std } else { 1.0 },
                }
            })
            .collect();
        let categorical = train
            .categorical
            .iter()
            .map(|c| {
                let mut counts = vec![0u64; c.levels.len()];
                for &code in &c.codes {
                    counts[code as usize] += 1;
                }
                let mut order: Vec<usize> = (0..c.levels.len()).filter(|&i| counts[i] > 0).collect();
                order.sort_by(|&a, &b| counts[b].cmp(&counts[a]).then_with(|| c.levels[a].cmp(&c.levels[b])));
                let other = order.len() > max_levels;
                order.truncate(max_levels);
                OneHot { feature: c.name.clone(), levels: order.iter().map(|&i| c.levels[i].clone()).collect(), other }
            })
            .collect();
        Encoding { numeric, categorical }
    }

    /// As [`Encoding::fit`], numeric features kept in their own units (a mean of 0 and a standard
    /// deviation of 1 leave every value as it is, to the bit): the tree families split on raw
    /// values, so a split reads `latency_ms <= 1200` in the model card, not a z-score.
    pub fn fit_raw(train: &LabelledEvents, max_levels: usize) -> Encoding {
        let mut encoding = Encoding::fit(train, max_levels);
        for s in &mut encoding.numeric {
            (s.mean, s.std) = (0.0, 1.0);
        }
        encoding
    }

    /// Column names of the encoded matrix.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.numeric.iter().map(|s| s.feature.clone()).collect();
        for oh in &self.categorical {
            names.extend(oh.levels.iter().map(|l| format!("{}={l}", oh.feature)));
            if oh.other {
                names.push(format!("{}=<other>", oh.feature));
            }
        }
        names
    }

    pub fn transform(&self, events: &LabelledEvents) -> Result<FeatureMatrix> {
        self.transform_rows(events, 0..events.len())
    }

    /// The rows `range` of `events`, encoded.
    pub fn transform_rows(&self, events: &LabelledEvents, range: std::ops::Range<usize>) -> Result<FeatureMatrix> {
        let rows = range.len();
        let names = self.names();
        let mut values = Vec::with_capacity(rows * names.len());
        for s in &self.numeric {
            let column = events
                .numeric
                .iter()
                .find(|c| c.name == s.feature)
                .ok_or_else(|| Error::MissingFeature { feature: s.feature.clone() })?;
            values.extend(column.values[range.clone()].iter().map(|v| (v - s.mean) / s.std));
        }
        for oh in &self.categorical {
            let column = events
                .categorical
                .iter()
                .find(|c| c.name == oh.feature)
                .ok_or_else(|| Error::MissingFeature { feature: oh.feature.clone() })?;
            // Map the data's dictionary onto the model's columns once, not per row.
            let index: HashMap<&str, usize> = oh.levels.iter().enumerate().map(|(i, l)| (l.as_str(), i)).collect();
            let width = oh.levels.len() + oh.other as usize;
            let target: Vec<Option<usize>> = column
                .levels
                .iter()
                .map(|l| index.get(l.as_str()).copied().or(oh.other.then_some(oh.levels.len())))
                .collect();
            let start = values.len();
            values.resize(start + rows * width, 0.0);
            for (row, &code) in column.codes[range.clone()].iter().enumerate() {
                if let Some(j) = target[code as usize] {
                    values[start + j * rows + row] = 1.0;
                }
            }
        }
        Ok(FeatureMatrix { rows, names, values })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use caretaker_core::events::{CategoricalColumn, NumericColumn};

    fn events(levels: &[&str], codes: Vec<u32>, x: Vec<f64>) -> LabelledEvents {
        LabelledEvents {
            timestamps: vec![0; codes.len()],
            labels: vec![false; codes.len()],
            numeric: vec![NumericColumn { name: "x".into(), values: x }],
            categorical: vec![CategoricalColumn {
                name: "svc".into(),
                levels: levels.iter().map(|s| s.to_string()).collect(),
                codes,
            }],
        }
    }

    #[test]
    fn fitted_on_training_rows_applied_the_same_way_elsewhere() {
        let train = events(&["a", "b", "c"], vec![0, 0, 0, 1, 1, 2], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let enc = Encoding::fit(&train, 2);
        assert_eq!(enc.names(), ["x", "svc=a", "svc=b", "svc=<other>"]);
        // New data with a different dictionary order and an unseen level "z".
        let new = events(&["z", "b", "a", "c"], vec![1, 0, 3, 2], vec![3.5, 3.5, 3.5, 3.5]);
        let m = enc.transform(&new).unwrap();
        assert_eq!(m.column(0), &[0.0; 4]); // the training mean is 3.5
        assert_eq!(m.column(1), &[0.0, 0.0, 0.0, 1.0]); // a
        assert_eq!(m.column(2), &[1.0, 0.0, 0.0, 0.0]); // b
        assert_eq!(m.column(3), &[0.0, 1.0, 1.0, 0.0]); // z (unseen) and c (rare) share "other"
    }

    #[test]
    fn a_missing_feature_is_named() {
        let train = events(&["a"], vec![0, 0], vec![1.0, 2.0]);
        let enc = Encoding::fit(&train, 5);
        let mut other = train.clone();
        other.numeric[0].name = "y".into();
        let err = enc.transform(&other).unwrap_err();
        assert!(err.to_string().contains("\"x\""), "{err}");
    }
}
