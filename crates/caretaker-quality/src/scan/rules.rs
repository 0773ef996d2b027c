//! The column rules other than the id rules (nulls, values not finite or out of range, categories
//! not allowed, labels neither 0 nor 1, timestamps in the future), on one batch: each gives the
//! rows that broke it.

use super::{Accumulator, for_each_segment};
use caretaker_data::dataset::timestamp_micros;
use polars::prelude::*;

/// What a rule checks (each has a check of its own in the report).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Null,
    NotFinite,
    Range,
    Category,
    LabelNotBinary,
    Future,
    Duplicate,
}

/// A rule on one column (`null:price`, `range:amount`, `duplicate_id`...) and the rows that broke it.
pub(super) struct Rule {
    pub(super) name: String,
    pub(super) kind: Kind,
    pub(super) column: Option<String>,
    pub(super) count: u64,
}

pub(super) fn rule(name: String, kind: Kind, column: Option<&str>) -> Rule {
    Rule { name, kind, column: column.map(str::to_string), count: 0 }
}

/// A batch's columns as the rules read them, and which rules (other than the id rules) each row
/// broke (an empty mask: no row broke the rule).
pub(super) struct Tested {
    pub(super) broken: Vec<Vec<bool>>,
    pub(super) ts: Plain<Int64Type>,
    pub(super) labels: Vec<bool>,
    pub(super) numbers: Vec<Plain<Float64Type>>,
    pub(super) strings: Vec<StringChunked>,
    /// The rows that await their label (empty: none).
    pub(super) awaiting: Vec<bool>,
}

/// A batch's numeric column, read in place chunk by chunk, and the rows that are null (`None`:
/// none). A value at a null row is arbitrary; rows with a null are never read as clean.
pub(super) struct Plain<T: PolarsNumericType> {
    pub(super) array: ChunkedArray<T>,
    pub(super) null: Option<Vec<bool>>,
}

pub(super) fn plain<T: PolarsNumericType>(values: &ChunkedArray<T>) -> Plain<T> {
    Plain { array: values.clone(), null: null_rows(values) }
}

/// The rows of `values` that are null, or `None` when none is: read off the validity bitmaps 64
/// rows at a time.
pub(super) fn null_rows<T: PolarsDataType>(values: &ChunkedArray<T>) -> Option<Vec<bool>> {
    (values.null_count() > 0).then(|| {
        let mut null = Vec::with_capacity(values.len());
        for (validity, array) in values.iter_validities().zip(values.chunks()) {
            match validity {
                Some(validity) => {
                    let mut words = validity.chunks::<u64>();
                    for word in words.by_ref() {
                        null.extend((0..64).map(|bit| word >> bit & 1 == 0));
                    }
                    let rest = words.remainder();
                    null.extend((0..words.remainder_len()).map(|bit| rest >> bit & 1 == 0));
                }
                None => null.extend(std::iter::repeat_n(false, array.len())),
            }
        }
        null
    })
}

impl<T: PolarsNumericType> Plain<T> {
    fn chunks(&self) -> impl Iterator<Item = &[T::Native]> + '_ {
        self.array.downcast_iter().map(|a| a.values().as_slice())
    }

    pub(super) fn values(&self) -> impl Iterator<Item = T::Native> + '_ {
        self.chunks().flat_map(|c| c.iter().copied())
    }

    /// The rows whose value fails `test` (a null never does), or `None` when no row does: a
    /// clean batch allocates nothing. (The tests here combine their comparisons with `&` and `|`,
    /// not `&&` and `||`: without branches, the loops are vectorised.)
    fn failing(&self, test: impl Fn(T::Native) -> bool) -> Option<Vec<bool>> {
        if !self.any_fails(&test) {
            return None;
        }
        let null = self.null.as_deref();
        let mut mask = Vec::with_capacity(self.array.len());
        let mut start = 0;
        for chunk in self.chunks() {
            match null {
                None => mask.extend(chunk.iter().map(|&v| test(v))),
                Some(null) => mask.extend(chunk.iter().zip(&null[start..]).map(|(&v, &null)| !null & test(v))),
            }
            start += chunk.len();
        }
        Some(mask)
    }

    /// Whether the value of any row fails `test` (a null never does). Chunk by chunk, and within
    /// a chunk in blocks without an early exit, so that each block's loop is vectorised.
    fn any_fails(&self, test: impl Fn(T::Native) -> bool) -> bool {
        const BLOCK: usize = 1024;
        let null = self.null.as_deref();
        let mut start = 0;
        for chunk in self.chunks() {
            let failed = match null {
                None => chunk.chunks(BLOCK).any(|block| block.iter().fold(false, |any, &v| any | test(v))),
                Some(null) => chunk.chunks(BLOCK).zip(null[start..].chunks(BLOCK)).any(|(block, null)| {
                    block.iter().zip(null).fold(false, |any, (&v, &null)| any | (!null & test(v)))
                }),
            };
            if failed {
                return true;
            }
            start += chunk.len();
        }
        false
    }

    /// Appends the values of the rows in `runs` to `out`.
    pub(super) fn extend_runs(&self, out: &mut Vec<T::Native>, runs: &[std::ops::Range<usize>]) {
        let chunks: Vec<&[T::Native]> = self.chunks().collect();
        for_each_segment(chunks.iter().map(|c| c.len()), runs, |c, rows| out.extend_from_slice(&chunks[c][rows]));
    }
}

/// Keeps `mask` as the rows that broke rule `rule` of `broken` when any row did.
pub(super) fn mark(broken: &mut [Vec<bool>], rule: Option<usize>, mask: impl Into<Option<Vec<bool>>>) {
    if let (Some(r), Some(mask)) = (rule, mask.into())
        && mask.iter().any(|b| *b)
    {
        broken[r] = mask;
    }
}

impl Accumulator {
    /// Every rule but the id rules, on one batch.
    pub(super) fn test_columns(&mut self, df: &DataFrame) -> PolarsResult<Tested> {
        let mut broken: Vec<Vec<bool>> = vec![Vec::new(); self.rules.len()];

        let mut ts = plain(&timestamp_micros(df.column(&self.timestamp)?)?);
        let future_limit = self.future_limit;
        mark(&mut broken, self.rules.iter().position(|r| r.kind == Kind::Future), ts.failing(|t| t > future_limit));
        mark(&mut broken, self.rule_index(Kind::Null, &self.timestamp), ts.null.take());

        let label_column = df.column(&self.label)?;
        let (labels, label_null): (Vec<bool>, Option<Vec<bool>>) = if label_column.dtype().is_integer() {
            let ints = plain(label_column.cast(&DataType::Int64)?.i64()?);
            let not_binary = ints.failing(|v| (v != 0) & (v != 1));
            if let Some(not_binary) = &not_binary {
                for (v, &bad) in ints.values().zip(not_binary) {
                    if bad && self.label_values.len() < 5 {
                        self.label_values.push(v);
                    }
                }
            }
            mark(&mut broken, self.rules.iter().position(|r| r.kind == Kind::LabelNotBinary), not_binary);
            (ints.values().map(|v| v == 1).collect(), ints.null)
        } else {
            let values = label_column.as_materialized_series().bool()?;
            (
                values.iter().map(|v| v.unwrap_or_default()).collect(),
                (values.null_count() > 0).then(|| values.iter().map(|v| v.is_none()).collect()),
            )
        };
        let mut label_null = label_null;
        let awaiting = match (self.awaiting_after, label_null.as_mut()) {
            (Some(after), Some(nulls)) => {
                // A row whose timestamp is null is not recent: it stays a null label.
                let ts_null =
                    self.rule_index(Kind::Null, &self.timestamp).map(|r| &broken[r]).filter(|m| !m.is_empty());
                let mut awaiting = vec![false; nulls.len()];
                for (i, t) in ts.values().enumerate() {
                    if nulls[i] && t > after && !ts_null.is_some_and(|m| m[i]) {
                        awaiting[i] = true;
                        nulls[i] = false;
                    }
                }
                if awaiting.contains(&true) { awaiting } else { Vec::new() }
            }
            _ => Vec::new(),
        };
        mark(&mut broken, self.rule_index(Kind::Null, &self.label), label_null);

        let mut numbers = Vec::with_capacity(self.numeric.len());
        for (name, range) in &self.numeric {
            let mut values = plain(df.column(name)?.cast(&DataType::Float64)?.f64()?);
            // With a range, one pass finds whether any value is out of it or not finite (NaN
            // fails both comparisons); the two masks are made only then.
            let (lo, hi) = range.unwrap_or((f64::NEG_INFINITY, f64::INFINITY));
            if values.any_fails(|v| !((v >= lo) & (v <= hi) & v.is_finite())) {
                mark(&mut broken, self.rule_index(Kind::NotFinite, name), values.failing(|v| !v.is_finite()));
                if range.is_some() {
                    mark(
                        &mut broken,
                        self.rule_index(Kind::Range, name),
                        values.failing(|v| v.is_finite() & ((v < lo) | (v > hi))),
                    );
                }
            }
            // The rules that skip nulls are done: the null mask becomes the null rule's.
            mark(&mut broken, self.rule_index(Kind::Null, name), values.null.take());
            numbers.push(values);
        }

        let mut strings = Vec::with_capacity(self.categorical.len());
        for (k, (name, allowed)) in self.categorical.iter().enumerate() {
            let values = df.column(name)?.cast(&DataType::String)?.str()?.clone();
            mark(&mut broken, self.rule_index(Kind::Null, name), null_rows(&values));
            if let Some(allowed) = allowed {
                let mask: Vec<bool> = values.iter().map(|v| v.is_some_and(|v| !allowed.contains(v))).collect();
                let counts = &mut self.not_allowed[k];
                for (v, bad) in values.iter().zip(&mask) {
                    if let (Some(v), true) = (v, *bad)
                        && (counts.len() < 20 || counts.contains_key(v))
                    {
                        *counts.entry(v.to_string()).or_default() += 1;
                    }
                }
                mark(&mut broken, self.rule_index(Kind::Category, name), mask);
            }
            strings.push(values);
        }

        Ok(Tested { broken, ts, labels, numbers, strings, awaiting })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::clean_runs;

    #[test]
    fn a_column_in_chunks_is_read_in_place_with_its_nulls() {
        let mut column = Float64Chunked::from_slice_options("f".into(), &[Some(1.0), None, Some(f64::NAN)]);
        column.append(&Float64Chunked::from_slice("f".into(), &[4.0, 5.0])).unwrap();
        assert_eq!(column.chunks().len(), 2);
        let values = plain(&column);
        assert_eq!(values.null, Some(vec![false, true, false, false, false]));
        assert_eq!(values.failing(|v| !v.is_finite()), Some(vec![false, false, true, false, false]));
        assert_eq!(values.failing(|v| v > 10.0), None);
        let mut out = Vec::new();
        values.extend_runs(&mut out, &clean_runs(&[false, true, true, false, false]));
        assert_eq!(out, vec![1.0, 4.0, 5.0]);
    }

    #[test]
    fn null_rows_are_read_off_the_bitmaps_whatever_their_offset_and_length() {
        // A chunk sliced at an odd offset (its bitmap starts mid-byte), 64-row words and a
        // remainder, then a chunk without nulls and one of strings.
        let values: Vec<Option<f64>> = (0..300).map(|i| (i % 7 != 3 && i % 64 != 0).then_some(i as f64)).collect();
        let mut column = Float64Chunked::from_slice_options("f".into(), &values).slice(5, 250);
        column.append(&Float64Chunked::from_slice("f".into(), &[1.0, 2.0, 3.0])).unwrap();
        let expected: Vec<bool> = values[5..255].iter().map(Option::is_none).chain([false, false, false]).collect();
        assert_eq!(null_rows(&column), Some(expected));
        assert_eq!(null_rows(&Float64Chunked::from_slice("f".into(), &[1.0])), None);
        let strings = StringChunked::from_iter_options("s".into(), [Some("a"), None, Some("b")].into_iter());
        assert_eq!(null_rows(&strings), Some(vec![false, true, false]));
    }
}
