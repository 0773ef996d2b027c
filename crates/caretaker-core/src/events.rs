//! The labelled events that cross from the data crates to the training crate.
//!
//! Plain vectors, so the polars side and the linfa side never share a type. Categorical values
//! are dictionary-coded: a million rows of `service` cost four bytes each, not a `String` each.

use serde::{Deserialize, Serialize};

/// Clean rows ready for training and evaluation, sorted by nothing in particular.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelledEvents {
    /// Event time in microseconds since the Unix epoch (UTC).
    pub timestamps: Vec<i64>,
    /// The label: `true` is the positive class.
    pub labels: Vec<bool>,
    pub numeric: Vec<NumericColumn>,
    pub categorical: Vec<CategoricalColumn>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NumericColumn {
    pub name: String,
    pub values: Vec<f64>,
}

/// A dictionary-coded string column: row `i` holds `levels[codes[i]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct CategoricalColumn {
    pub name: String,
    pub levels: Vec<String>,
    pub codes: Vec<u32>,
}

impl CategoricalColumn {
    pub fn value(&self, row: usize) -> &str {
        &self.levels[self.codes[row] as usize]
    }
}

impl LabelledEvents {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn positives(&self) -> usize {
        self.labels.iter().filter(|l| **l).count()
    }

    /// The rows at `rows`, in that order.
    pub fn take(&self, rows: &[usize]) -> LabelledEvents {
        LabelledEvents {
            timestamps: rows.iter().map(|&i| self.timestamps[i]).collect(),
            labels: rows.iter().map(|&i| self.labels[i]).collect(),
            numeric: self
                .numeric
                .iter()
                .map(|c| NumericColumn { name: c.name.clone(), values: rows.iter().map(|&i| c.values[i]).collect() })
                .collect(),
            categorical: self
                .categorical
                .iter()
                .map(|c| CategoricalColumn {
                    name: c.name.clone(),
                    levels: c.levels.clone(),
                    codes: rows.iter().map(|&i| c.codes[i]).collect(),
                })
                .collect(),
        }
    }

    /// A content hash of the rows, independent of how they were stored: the same events give the
    /// same hash whether they came from one file or ten. Used to say "the training data is
    /// unchanged since the champion was trained".
    pub fn content_hash(&self) -> String {
        let mut h = blake3::Hasher::new();
        h.update(&(self.len() as u64).to_le_bytes());
        for t in &self.timestamps {
            h.update(&t.to_le_bytes());
        }
        for l in &self.labels {
            h.update(&[*l as u8]);
        }
        for c in &self.numeric {
            h.update(c.name.as_bytes());
            for v in &c.values {
                h.update(&v.to_bits().to_le_bytes());
            }
        }
        for c in &self.categorical {
            h.update(c.name.as_bytes());
            for row in 0..c.codes.len() {
                let v = c.value(row);
                h.update(&(v.len() as u64).to_le_bytes());
                h.update(v.as_bytes());
            }
        }
        h.finalize().to_hex().to_string()
    }
}

/// A dense feature matrix in column-major order: the bridge format between encoders and model
/// crates (`Array2::from_shape_vec((n, k).f(), v)` for linfa, `DenseMatrix::new(n, k, v, true)`
/// for smartcore).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureMatrix {
    pub rows: usize,
    pub names: Vec<String>,
    /// Column `j` is `values[j * rows .. (j + 1) * rows]`.
    pub values: Vec<f64>,
}

impl FeatureMatrix {
    pub fn cols(&self) -> usize {
        self.names.len()
    }

    pub fn column(&self, j: usize) -> &[f64] {
        &self.values[j * self.rows..(j + 1) * self.rows]
    }

    /// The rows `rows` (in that order) as a matrix of their own.
    pub fn select_rows(&self, rows: &[usize]) -> FeatureMatrix {
        let mut values = Vec::with_capacity(rows.len() * self.cols());
        for j in 0..self.cols() {
            let column = self.column(j);
            values.extend(rows.iter().map(|&r| column[r]));
        }
        FeatureMatrix { rows: rows.len(), names: self.names.clone(), values }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> LabelledEvents {
        LabelledEvents {
            timestamps: vec![1, 2, 3],
            labels: vec![true, false, true],
            numeric: vec![NumericColumn { name: "x".into(), values: vec![0.5, 1.5, 2.5] }],
            categorical: vec![CategoricalColumn {
                name: "svc".into(),
                levels: vec!["a".into(), "b".into()],
                codes: vec![0, 1, 1],
            }],
        }
    }

    #[test]
    fn take_keeps_rows_aligned() {
        let t = sample().take(&[2, 0]);
        assert_eq!(t.timestamps, vec![3, 1]);
        assert_eq!(t.numeric[0].values, vec![2.5, 0.5]);
        assert_eq!(t.categorical[0].value(0), "b");
        assert_eq!(t.categorical[0].value(1), "a");
    }

    #[test]
    fn content_hash_ignores_dictionary_order_but_not_values() {
        let a = sample();
        let mut b = sample();
        b.categorical[0].levels = vec!["b".into(), "a".into()];
        b.categorical[0].codes = vec![1, 0, 0];
        assert_eq!(a.content_hash(), b.content_hash());
        let mut c = sample();
        c.numeric[0].values[1] = 1.25;
        assert_ne!(a.content_hash(), c.content_hash());
    }
}
