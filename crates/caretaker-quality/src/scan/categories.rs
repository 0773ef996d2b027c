//! The categorical columns, dictionary-coded across batches: each clean row's value becomes a code,
//! and the levels are sorted at the end so that the coding does not depend on row order.

use super::keys::{mixed128, short_key};
use caretaker_core::events::CategoricalColumn;
use foldhash::fast::RandomState;
use polars::prelude::*;
use std::collections::HashMap;

/// A categorical column being dictionary-coded across batches.
pub(super) struct Dictionary {
    /// The codes of values of at most 15 bytes, by [`short_key`] (found without hashing and
    /// comparing strings), and of longer ones.
    short: HashMap<u128, u32, RandomState>,
    index: HashMap<String, u32, RandomState>,
    levels: Vec<String>,
    codes: Vec<u32>,
    /// The codes of recent values of at most 15 bytes, by their [`short_key`], in [`RECENT`]
    /// slots: a category column's few values are coded without a hash-table lookup. A slot not
    /// yet used holds a key no value has.
    recent: Vec<(u128, u32)>,
}

/// Slots of [`Dictionary::recent`], chosen by a multiplicative hash of the key.
const RECENT: usize = 1024;

impl Dictionary {
    pub(super) fn new(expected_rows: usize) -> Dictionary {
        Dictionary {
            short: HashMap::with_hasher(RandomState::default()),
            index: HashMap::with_hasher(RandomState::default()),
            levels: Vec::new(),
            codes: Vec::with_capacity(expected_rows),
            // A length byte of 255 is never a short value's.
            recent: vec![(u128::MAX, 0); RECENT],
        }
    }

    /// Codes the value at row `i` of `array`.
    pub(super) fn push_at(&mut self, array: &<StringType as PolarsDataType>::Array, i: usize) {
        let value = array.value(i);
        let code = match short_key(value) {
            Some(key) => {
                let slot = (mixed128(key) >> 54) as usize;
                match self.recent[slot] {
                    (recent, code) if recent == key => code,
                    _ => {
                        let code = self.code(value);
                        self.recent[slot] = (key, code);
                        code
                    }
                }
            }
            None => self.code(value),
        };
        self.codes.push(code);
    }

    /// The code of `value`, a new one for a value not seen before.
    fn code(&mut self, value: &str) -> u32 {
        use std::collections::hash_map::Entry;
        let next = self.levels.len() as u32;
        let (code, new) = match short_key(value) {
            Some(key) => match self.short.entry(key) {
                Entry::Occupied(e) => (*e.get(), false),
                Entry::Vacant(e) => (*e.insert(next), true),
            },
            None => match self.index.get(value) {
                Some(&c) => (c, false),
                None => {
                    self.index.insert(value.to_string(), next);
                    (next, true)
                }
            },
        };
        if new {
            self.levels.push(value.to_string());
        }
        code
    }

    /// Levels sorted, so that the coding does not depend on row order.
    pub(super) fn finish(self, name: &str) -> CategoricalColumn {
        let mut order: Vec<u32> = (0..self.levels.len() as u32).collect();
        order.sort_by(|&a, &b| self.levels[a as usize].cmp(&self.levels[b as usize]));
        let mut remap = vec![0u32; order.len()];
        for (new, &old) in order.iter().enumerate() {
            remap[old as usize] = new as u32;
        }
        let levels = order.iter().map(|&i| self.levels[i as usize].clone()).collect();
        CategoricalColumn {
            name: name.to_string(),
            levels,
            codes: self.codes.into_iter().map(|c| remap[c as usize]).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The reference: levels sorted, each value's code its level's place.
    fn reference(values: &[String]) -> CategoricalColumn {
        let levels: Vec<String> =
            values.iter().cloned().collect::<std::collections::BTreeSet<_>>().into_iter().collect();
        let codes = values.iter().map(|v| levels.binary_search(v).expect("a level") as u32).collect();
        CategoricalColumn { name: "c".into(), levels, codes }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// The fast path (recent slots, short keys, a table of long values) against a sorted set
        /// of the values, over batches of short and long values (either side of 15 bytes).
        #[test]
        fn values_are_coded_as_a_sorted_set_of_them_codes_them(
            batches in prop::collection::vec(
                prop::collection::vec((0u32..400, 0usize..24).prop_map(|(n, w)| format!("{n:0>w$}")), 0..300),
                1..5,
            )
        ) {
            let mut dictionary = Dictionary::new(16);
            for batch in &batches {
                let column = StringChunked::from_iter_values("c".into(), batch.iter().map(String::as_str));
                for array in column.downcast_iter() {
                    (0..array.len()).for_each(|i| dictionary.push_at(array, i));
                }
            }
            let all: Vec<String> = batches.concat();
            let coded = dictionary.finish("c");
            let expected = reference(&all);
            prop_assert_eq!(coded.levels, expected.levels);
            prop_assert_eq!(coded.codes, expected.codes);
        }
    }
}
