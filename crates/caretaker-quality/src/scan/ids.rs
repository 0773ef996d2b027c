//! The id rules: which rows repeat an id seen before (in this batch or an earlier one) and which
//! have none. The fast path keys each id as a number ([`super::keys`]) and keeps ids that come in
//! order in a sorted vector, the rest in a hash set in parts; the property tests below compare it
//! with a plain set of every id seen.

use super::keys::{mixed, mixed128, text_key};
use foldhash::fast::RandomState;
use polars::prelude::*;
use std::collections::HashSet;

/// The ids seen so far, each by a key: an integer id by its value with the sign bit flipped, so
/// that keys ascend as the ids do (8 bytes a row); a text id by [`text_key`] (16), which ascends
/// with length, then bytes, up to 15 bytes, and is a hash beyond.
pub(super) enum Seen {
    Integers(Ids<u64>),
    Text(Ids<u128>),
}

/// An id's key: ordered, hashable, and mixed into the 64 bits that choose its part.
pub(super) trait IdKey: std::hash::Hash + Ord + Copy + Default {
    fn mixed(self) -> u64;
}

impl IdKey for u64 {
    fn mixed(self) -> u64 {
        mixed(self)
    }
}

impl IdKey for u128 {
    fn mixed(self) -> u64 {
        mixed128(self)
    }
}

/// Share of a batch's ids (in eighths) that may come out of order before the set stops keeping
/// ids in order: above it, the binary searches would cost more than the hash inserts they save.
const OUT_OF_ORDER_EIGHTHS: usize = 1;

/// Ids at the end of the ordered ids that a smaller new id moves to the set, as ids that came
/// early: more than this, and the new id goes to the set itself.
const JUMPS_AHEAD: usize = 4;

/// The ids seen so far. Ids often come in ascending order (an integer sequence or time-ordered
/// integer key, a counter formatted into a short text), and while they do they are kept in a
/// sorted vector: an id above every id kept is new without any lookup (one above the last id of
/// the vector but not above the ids moved to the set is looked up there), and only the few below
/// it (a repeated id, one out of place) are looked up, by binary search and in a small set beside
/// the vector. A batch with more than an eighth of its ids out of order (not above the id before
/// it, a repeat on the next row included) moves every id to a hash set in parts ([`Parts`]), for
/// good. Text ids of more than 15 bytes (UUIDs, ULIDs) are keyed by a hash and so take that path.
pub(super) struct Ids<K> {
    mode: Mode<K>,
    /// The ids the footers announce, to size the parts if they are needed.
    expected: usize,
    /// The batch's keys and rows (the rows that have an id).
    keys: Vec<(K, u32)>,
}

enum Mode<K> {
    /// Every id seen is in exactly one of `ascending` (strictly ascending) and `rest`, whose
    /// largest key is `rest_max`.
    Ordered {
        ascending: Vec<K>,
        rest: HashSet<K, RandomState>,
        rest_max: Option<K>,
    },
    Hashed(Parts<K>),
}

impl<K: IdKey> Ids<K> {
    fn new(expected: usize) -> Ids<K> {
        Ids {
            mode: Mode::Ordered { ascending: Vec::with_capacity(expected), rest: HashSet::default(), rest_max: None },
            expected,
            keys: Vec::new(),
        }
    }

    /// Marks in `duplicate` the rows of `self.keys` whose id came before (in an earlier batch or
    /// an earlier row), and empties `self.keys`.
    fn insert_keys(&mut self, duplicate: &mut [bool]) {
        let keys = std::mem::take(&mut self.keys);
        let in_order = |out_of_order: usize| out_of_order * 8 <= keys.len() * OUT_OF_ORDER_EIGHTHS;
        if matches!(self.mode, Mode::Ordered { .. }) && !in_order(keys.windows(2).filter(|w| w[0].0 >= w[1].0).count())
        {
            self.hash_all();
        }
        match &mut self.mode {
            Mode::Ordered { ascending, rest, rest_max } => {
                let mut out_of_order = 0;
                for &(key, row) in &keys {
                    duplicate[row as usize] = match ascending.last() {
                        Some(&last) if key <= last => match ascending.binary_search(&key) {
                            Ok(_) => true,
                            Err(_) if rest.contains(&key) => true,
                            Err(place) => {
                                out_of_order += 1;
                                // Below only the last few ids: they came early (jumps ahead, such
                                // as ids copied from later rows), and the set takes them instead.
                                let moved = if ascending.len() - place <= JUMPS_AHEAD {
                                    let early = ascending.split_off(place);
                                    ascending.push(key);
                                    early
                                } else {
                                    vec![key]
                                };
                                // (Ascending, so the last is the largest.)
                                *rest_max = (*rest_max).max(moved.last().copied());
                                rest.extend(moved);
                                false
                            }
                        },
                        _ if rest_max.is_some_and(|m| key <= m) && rest.contains(&key) => true,
                        _ => {
                            ascending.push(key);
                            false
                        }
                    };
                }
                if !in_order(out_of_order) {
                    self.hash_all();
                }
            }
            Mode::Hashed(parts) => {
                let n = parts.sets.len();
                parts.keyed.extend(keys.iter().map(|&(key, row)| (part_of(key.mixed(), n), key, row)));
                parts.insert_keyed(duplicate);
            }
        }
        self.keys = keys;
        self.keys.clear();
    }

    /// Moves every id kept in order to the hash set in parts.
    fn hash_all(&mut self) {
        if let Mode::Ordered { ascending, rest, .. } = &mut self.mode {
            let mut parts = Parts::with_capacity(self.expected.max(ascending.len() + rest.len()));
            let n = parts.sets.len();
            for key in ascending.drain(..).chain(rest.drain()) {
                parts.sets[part_of(key.mixed(), n) as usize].insert(key);
            }
            self.mode = Mode::Hashed(parts);
        }
    }
}

/// Ids a part is sized for: three quarters of a table of 4096 slots, which holds up to 3584
/// before it grows. A part's share of the ids varies by about the square root of it (55 here), so
/// on a large dataset whose footers tell its rows the parts hold their shares without growing and
/// the set stays about three quarters full, where 256 parts left most tables half empty. (Small
/// sets, of a few parts, can be half full or have a part grow once.)
const PART_IDS: usize = 3072;

/// An id set in parts, chosen by a hash of the id. A batch's ids are grouped by part (a stable
/// counting sort, so each part sees its ids in row order) and inserted part by part: each part is
/// a small table, so its inserts stay within a few pages and cache lines instead of ranging over
/// one large table. An id always falls in the same part, so a row is a duplicate exactly when an
/// earlier row had its id, as with one set.
struct Parts<K> {
    sets: Vec<HashSet<K, RandomState>>,
    /// The batch's `(part, key, row)`, the same grouped by part, and where each part's group
    /// starts.
    keyed: Vec<(u32, K, u32)>,
    grouped: Vec<(K, u32)>,
    starts: Vec<usize>,
}

/// The part, of `parts`, of an id whose hash is `mixed` (a multiplicative hash: its high bits are
/// the well-mixed ones, and they choose the part).
fn part_of(mixed: u64, parts: usize) -> u32 {
    ((mixed as u128 * parts as u128) >> 64) as u32
}

impl<K: IdKey> Parts<K> {
    fn with_capacity(ids: usize) -> Parts<K> {
        let parts = ids.div_ceil(PART_IDS).max(1);
        let each = ids.div_ceil(parts);
        Parts {
            sets: (0..parts).map(|_| HashSet::with_capacity_and_hasher(each, RandomState::default())).collect(),
            keyed: Vec::new(),
            grouped: Vec::new(),
            starts: Vec::new(),
        }
    }

    /// Inserts the ids in `self.keyed` and marks in `duplicate` the rows whose id was seen before.
    fn insert_keyed(&mut self, duplicate: &mut [bool]) {
        let parts = self.sets.len();
        self.starts.clear();
        self.starts.resize(parts + 1, 0);
        for &(part, _, _) in &self.keyed {
            self.starts[part as usize + 1] += 1;
        }
        for p in 0..parts {
            self.starts[p + 1] += self.starts[p];
        }
        let mut next = self.starts.clone();
        self.grouped.clear();
        self.grouped.resize(self.keyed.len(), (K::default(), 0));
        for &(part, key, row) in &self.keyed {
            self.grouped[next[part as usize]] = (key, row);
            next[part as usize] += 1;
        }
        for (p, set) in self.sets.iter_mut().enumerate() {
            for &(key, row) in &self.grouped[self.starts[p]..self.starts[p + 1]] {
                duplicate[row as usize] = !set.insert(key);
            }
        }
        self.keyed.clear();
    }
}

impl Seen {
    pub(super) fn new(integers: bool, expected_rows: usize) -> Seen {
        if integers { Seen::Integers(Ids::new(expected_rows)) } else { Seen::Text(Ids::new(expected_rows)) }
    }

    /// An empty set that allocates nothing, to stand in while the set is on another thread.
    pub(super) fn placeholder() -> Seen {
        Seen::Integers(Ids::new(0))
    }

    /// Marks in `duplicate` the rows of `column` whose id was seen before (in an earlier batch
    /// or an earlier row), and in `null` the rows without an id.
    pub(super) fn insert(&mut self, column: &Column, duplicate: &mut [bool], null: &mut [bool]) -> PolarsResult<()> {
        match self {
            Seen::Integers(ids) => {
                let column = column.cast(&DataType::Int64)?;
                let mut row = 0u32;
                // The sign bit flipped, so that the keys' order is the ids' order.
                let key = |v: i64| (v as u64) ^ (1 << 63);
                for array in column.i64()?.downcast_iter() {
                    let values = array.values().as_slice();
                    match array.validity().filter(|v| v.unset_bits() > 0) {
                        None => {
                            ids.keys.extend(values.iter().zip(row..).map(|(&v, row)| (key(v), row)));
                            row += values.len() as u32;
                        }
                        Some(validity) => {
                            for (&v, valid) in values.iter().zip(validity.iter()) {
                                if valid {
                                    ids.keys.push((key(v), row));
                                } else {
                                    null[row as usize] = true;
                                }
                                row += 1;
                            }
                        }
                    }
                }
                ids.insert_keys(duplicate);
            }
            Seen::Text(ids) => {
                let column = column.cast(&DataType::String)?;
                let mut row = 0u32;
                let column = column.str()?;
                for array in column.downcast_iter() {
                    for id in array.iter() {
                        match id {
                            Some(id) => ids.keys.push((text_key(id), row)),
                            None => null[row as usize] = true,
                        }
                        row += 1;
                    }
                }
                ids.insert_keys(duplicate);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `ids` to an id set in batches of `batch` and checks every row's verdict against a
    /// plain hash set; returns whether the set still keeps its ids in order.
    fn duplicates_as_a_plain_set_finds(ids: &[u64], batch: usize) -> bool {
        let mut set = Ids::<u64>::new(ids.len());
        let mut model = std::collections::HashSet::new();
        for (b, chunk) in ids.chunks(batch).enumerate() {
            set.keys.extend(chunk.iter().zip(0..).map(|(&id, row)| (id, row)));
            let mut duplicate = vec![false; chunk.len()];
            set.insert_keys(&mut duplicate);
            for (row, &id) in chunk.iter().enumerate() {
                assert_eq!(duplicate[row], !model.insert(id), "batch {b}, row {row}, id {id}");
            }
        }
        matches!(set.mode, Mode::Ordered { .. })
    }

    #[test]
    fn ids_in_order_are_kept_in_order_and_any_order_finds_the_same_duplicates() {
        let mut state = 7u64;
        let mut random = |below: u64| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 33) % below
        };
        let n = 20_000u64;
        let ascending: Vec<u64> = (0..n).map(|i| 3 * i + 1).collect();
        // 0.2% of the rows take the id of another row, earlier or later (as gen_data.py plants
        // them): the later copies jump ahead of the sequence.
        let mut copied = ascending.clone();
        for _ in 0..40 {
            let (from, to) = (random(n) as usize, random(n) as usize);
            copied[to] = ascending[from];
        }
        // Three rows in a row taking ids from far ahead.
        let mut runs_ahead = ascending.clone();
        for _ in 0..10 {
            let to = random(n - 3) as usize;
            for k in 0..3 {
                runs_ahead[to + k] = ascending[(to + 1000 + random(5000) as usize).min(n as usize - 1)];
            }
        }
        let mut swapped = ascending.clone();
        for i in (0..n as usize - 1).step_by(97) {
            swapped.swap(i, i + 1);
        }
        let shuffled: Vec<u64> = (0..n).map(|_| random(n / 2)).collect();
        let descending: Vec<u64> = ascending.iter().rev().copied().collect();
        // Each batch ascending, the batches out of order.
        let blocks: Vec<u64> = [2u64, 0, 3, 1].iter().flat_map(|&b| b * 5000..(b + 1) * 5000).collect();
        // In order, then repeating all of it.
        let repeated: Vec<u64> = ascending.iter().chain(&ascending).copied().collect();
        for batch in [1000, 4096, 20_000] {
            assert!(duplicates_as_a_plain_set_finds(&ascending, batch));
            assert!(duplicates_as_a_plain_set_finds(&copied, batch), "copied ids, batches of {batch}");
            assert!(duplicates_as_a_plain_set_finds(&runs_ahead, batch), "runs ahead, batches of {batch}");
            assert!(duplicates_as_a_plain_set_finds(&swapped, batch));
            assert!(!duplicates_as_a_plain_set_finds(&shuffled, batch));
            assert!(!duplicates_as_a_plain_set_finds(&descending, batch));
            duplicates_as_a_plain_set_finds(&blocks, batch);
            duplicates_as_a_plain_set_finds(&repeated, batch);
        }
    }

    /// The id rules' fast path (keys read off the column, an ordered vector or hashed parts)
    /// against a plain set of every id seen, over random batches of text and integer ids: short
    /// and long (either side of the 15 bytes a key holds), repeated, null, in order or not.
    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// The reference: a row's id is a duplicate if a plain set has seen it.
        fn reference<T: Eq + std::hash::Hash + Clone>(batches: &[Vec<Option<T>>]) -> Vec<Vec<(bool, bool)>> {
            let mut seen = std::collections::HashSet::new();
            let mut out = Vec::new();
            for batch in batches {
                out.push(
                    batch
                        .iter()
                        .map(|id| match id {
                            None => (false, true),
                            Some(id) => (!seen.insert(id.clone()), false),
                        })
                        .collect(),
                );
            }
            out
        }

        /// Each batch through the id set; (duplicate, null) per row.
        fn fast(integers: bool, columns: Vec<Column>) -> Vec<Vec<(bool, bool)>> {
            let mut seen = Seen::new(integers, 64);
            let mut out = Vec::new();
            for column in columns {
                let (mut duplicate, mut null) = (vec![false; column.len()], vec![false; column.len()]);
                seen.insert(&column, &mut duplicate, &mut null).expect("the ids read");
                out.push(duplicate.into_iter().zip(null).collect());
            }
            out
        }

        fn text_id() -> impl Strategy<Value = Option<String>> {
            // Ids of 1 to 24 bytes from a few hundred values: repeats across and within batches.
            let id = (0u32..300, 0usize..24).prop_map(|(n, width)| Some(format!("{n:0>width$}")));
            prop_oneof![1 => Just(None), 12 => id]
        }

        fn batches<T: std::fmt::Debug + Clone + Ord>(
            id: impl Strategy<Value = Option<T>>,
        ) -> impl Strategy<Value = Vec<Vec<Option<T>>>> {
            // Sorted batches keep the ids in order (the ordered vector); shuffled ones do not.
            let batch = (prop::collection::vec(id, 0..200), any::<bool>()).prop_map(|(mut batch, sorted)| {
                if sorted {
                    batch.sort();
                }
                batch
            });
            prop::collection::vec(batch, 1..6)
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

            #[test]
            fn text_ids_are_duplicates_exactly_when_a_plain_set_has_seen_them(batches in batches(text_id())) {
                let columns = batches.iter().map(|b| Column::new("id".into(), b.clone())).collect();
                prop_assert_eq!(fast(false, columns), reference(&batches));
            }

            #[test]
            fn integer_ids_are_duplicates_exactly_when_a_plain_set_has_seen_them(
                batches in batches(prop_oneof![1 => Just(None), 12 => (-50i64..400).prop_map(Some)])
            ) {
                let columns = batches.iter().map(|b| Column::new("id".into(), b.clone())).collect();
                prop_assert_eq!(fast(true, columns), reference(&batches));
            }
        }
    }
}
