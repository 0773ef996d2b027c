//! Which events a pattern's conditions match, as bitsets over the rows of a [`LabelledEvents`].
//!
//! One bitset per distinct condition, computed once and shared by every pattern that uses it, so
//! matching a store of many patterns costs one pass over the events per distinct condition and a
//! few word-wise ANDs per pattern.

use crate::pattern::Condition;
use caretaker_core::events::LabelledEvents;
use std::collections::HashMap;

/// A fixed-size set of row indices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowSet {
    words: Vec<u64>,
    len: usize,
}

impl RowSet {
    pub fn empty(len: usize) -> RowSet {
        RowSet { words: vec![0; len.div_ceil(64)], len }
    }

    pub fn full(len: usize) -> RowSet {
        let mut s = RowSet { words: vec![u64::MAX; len.div_ceil(64)], len };
        s.clear_tail();
        s
    }

    pub fn from_fn(len: usize, mut f: impl FnMut(usize) -> bool) -> RowSet {
        let mut s = RowSet::empty(len);
        for i in 0..len {
            if f(i) {
                s.words[i / 64] |= 1 << (i % 64);
            }
        }
        s
    }

    fn clear_tail(&mut self) {
        if !self.len.is_multiple_of(64)
            && let Some(last) = self.words.last_mut()
        {
            *last &= (1u64 << (self.len % 64)) - 1;
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn contains(&self, i: usize) -> bool {
        self.words[i / 64] >> (i % 64) & 1 == 1
    }

    pub fn count(&self) -> u64 {
        self.words.iter().map(|w| w.count_ones() as u64).sum()
    }

    pub fn and_assign(&mut self, other: &RowSet) {
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a &= b;
        }
    }

    pub fn and(&self, other: &RowSet) -> RowSet {
        let mut out = self.clone();
        out.and_assign(other);
        out
    }

    /// Rows in both this set and `other`, and of those the rows also in `third`, in one pass and
    /// without building either intersection.
    pub fn and_counts(&self, other: &RowSet, third: &RowSet) -> (u64, u64) {
        let (mut both, mut all) = (0u64, 0u64);
        for ((a, b), c) in self.words.iter().zip(&other.words).zip(&third.words) {
            let ab = a & b;
            both += ab.count_ones() as u64;
            all += (ab & c).count_ones() as u64;
        }
        (both, all)
    }

    /// Rows in both sets, without building the intersection.
    pub fn and_count(&self, other: &RowSet) -> u64 {
        self.words.iter().zip(&other.words).map(|(a, b)| (a & b).count_ones() as u64).sum()
    }

    pub fn not(&self) -> RowSet {
        let mut out = RowSet { words: self.words.iter().map(|w| !w).collect(), len: self.len };
        out.clear_tail();
        out
    }

    /// Members at index `from` or later.
    pub fn count_from(&self, from: usize) -> u64 {
        if from >= self.len {
            return 0;
        }
        let (word, bit) = (from / 64, from % 64);
        let first = (self.words[word] >> bit).count_ones() as u64;
        first + self.words[word + 1..].iter().map(|w| w.count_ones() as u64).sum::<u64>()
    }

    /// The highest member, if any.
    pub fn last(&self) -> Option<usize> {
        self.words
            .iter()
            .enumerate()
            .rev()
            .find(|(_, w)| **w != 0)
            .map(|(i, w)| i * 64 + 63 - w.leading_zeros() as usize)
    }
}

/// Why a condition cannot be evaluated on these events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unmatchable {
    UnknownFeature(String),
    UnknownOperator(String),
    NotANumber { feature: String, value: String },
}

/// Evaluates conditions on one set of events, caching one row set per distinct condition.
pub struct EventMatcher<'a> {
    events: &'a LabelledEvents,
    /// The rows of each condition evaluated so far. Only conditions that can be evaluated are
    /// kept: one that cannot says why at once, and a store can hold a million of those (patterns
    /// on a feature the data no longer has), each its own key.
    cache: HashMap<Condition, RowSet>,
}

impl<'a> EventMatcher<'a> {
    pub fn new(events: &'a LabelledEvents) -> EventMatcher<'a> {
        EventMatcher { events, cache: HashMap::new() }
    }

    pub fn events(&self) -> &LabelledEvents {
        self.events
    }

    /// The rows where the condition holds. `=`, `!=` on categorical features; `<=`, `<`, `>`,
    /// `>=`, `=`, `!=` on numeric ones (a NaN value matches no comparison).
    pub fn condition(&mut self, c: &Condition) -> Result<&RowSet, Unmatchable> {
        if !self.cache.contains_key(c) {
            let rows = evaluate(self.events, c)?;
            self.cache.insert(c.clone(), rows);
        }
        Ok(&self.cache[c])
    }

    /// The rows where every condition holds; an empty list of conditions is unmatchable (a
    /// pattern must say something).
    pub fn conditions(&mut self, conditions: &[Condition]) -> Result<RowSet, Unmatchable> {
        let Some((first, rest)) = conditions.split_first() else {
            return Err(Unmatchable::UnknownFeature(String::new()));
        };
        let mut rows = self.condition(first)?.clone();
        for c in rest {
            rows.and_assign(self.condition(c)?);
        }
        Ok(rows)
    }
}

fn evaluate(events: &LabelledEvents, c: &Condition) -> Result<RowSet, Unmatchable> {
    let n = events.len();
    if let Some(col) = events.categorical.iter().find(|col| col.name == c.feature) {
        let code = col.levels.iter().position(|l| *l == c.value).map(|p| p as u32);
        return match c.op.as_str() {
            "=" => Ok(RowSet::from_fn(n, |i| Some(col.codes[i]) == code)),
            "!=" => Ok(RowSet::from_fn(n, |i| Some(col.codes[i]) != code)),
            op => Err(Unmatchable::UnknownOperator(op.to_string())),
        };
    }
    let Some(col) = events.numeric.iter().find(|col| col.name == c.feature) else {
        return Err(Unmatchable::UnknownFeature(c.feature.clone()));
    };
    let Ok(v) = c.value.trim().parse::<f64>() else {
        return Err(Unmatchable::NotANumber { feature: c.feature.clone(), value: c.value.clone() });
    };
    let x = &col.values;
    Ok(match c.op.as_str() {
        "<=" => RowSet::from_fn(n, |i| x[i] <= v),
        "<" => RowSet::from_fn(n, |i| x[i] < v),
        ">" => RowSet::from_fn(n, |i| x[i] > v),
        ">=" => RowSet::from_fn(n, |i| x[i] >= v),
        "=" => RowSet::from_fn(n, |i| x[i] == v),
        "!=" => RowSet::from_fn(n, |i| !x[i].is_nan() && x[i] != v),
        op => return Err(Unmatchable::UnknownOperator(op.to_string())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use caretaker_core::events::{CategoricalColumn, NumericColumn};

    fn events() -> LabelledEvents {
        LabelledEvents {
            timestamps: (0..70).collect(),
            labels: (0..70).map(|i| i % 2 == 0).collect(),
            numeric: vec![NumericColumn { name: "x".into(), values: (0..70).map(|i| i as f64).collect() }],
            categorical: vec![CategoricalColumn {
                name: "svc".into(),
                levels: vec!["a".into(), "b".into()],
                codes: (0..70).map(|i| (i % 3 == 0) as u32).collect(),
            }],
        }
    }

    fn cond(feature: &str, op: &str, value: &str) -> Condition {
        Condition { feature: feature.into(), op: op.into(), value: value.into() }
    }

    #[test]
    fn row_sets_count_intersect_and_find_their_last_member() {
        let a = RowSet::from_fn(130, |i| i % 2 == 0);
        let b = RowSet::from_fn(130, |i| i >= 100);
        assert_eq!(a.count(), 65);
        assert_eq!(a.and_count(&b), 15);
        assert_eq!(a.not().count(), 65);
        assert_eq!(a.count_from(100), 15);
        assert_eq!(a.count_from(129), 0);
        assert_eq!(a.last(), Some(128));
        assert_eq!(RowSet::empty(10).last(), None);
        assert_eq!(RowSet::full(130).count(), 130);
    }

    #[test]
    fn conditions_match_numeric_and_categorical_rows() {
        let e = events();
        let mut m = EventMatcher::new(&e);
        assert_eq!(m.conditions(&[cond("x", ">", "59")]).unwrap().count(), 10);
        assert_eq!(m.conditions(&[cond("x", "<=", "9"), cond("svc", "=", "b")]).unwrap().count(), 4); // 0, 3, 6, 9
        assert_eq!(m.conditions(&[cond("svc", "!=", "b")]).unwrap().count(), 46);
        assert_eq!(m.conditions(&[cond("svc", "=", "zzz")]).unwrap().count(), 0);
        assert_eq!(m.conditions(&[cond("region", "=", "eu")]), Err(Unmatchable::UnknownFeature("region".into())));
        assert!(matches!(m.conditions(&[cond("x", ">", "many")]), Err(Unmatchable::NotANumber { .. })));
        assert_eq!(m.conditions(&[cond("x", "~", "1")]), Err(Unmatchable::UnknownOperator("~".into())));
    }
}
