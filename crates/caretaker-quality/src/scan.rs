//! The streaming pass: row-level rules, the quarantine file and the clean rows, batch by batch.

use crate::sample::{SampleSummary, Sampler};
use crate::{QualityInput, Result, check};
use caretaker_core::events::{CategoricalColumn, LabelledEvents, NumericColumn};
use caretaker_core::report::QualityCheck;
use caretaker_data::Error;
use caretaker_data::dataset::timestamp_micros;
use foldhash::fast::RandomState;
use polars::prelude::*;
use std::collections::{HashMap, HashSet};
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Rows per batch handed to the rules: large enough to amortise the per-batch work, small enough
/// that memory stays flat whatever the size of the dataset.
pub(crate) const BATCH_ROWS: usize = 128 * 1024;

/// The name of the quarantine file's extra column.
pub const RULES_COLUMN: &str = "quarantine_rules";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Null,
    NotFinite,
    Range,
    Category,
    LabelNotBinary,
    Future,
    Duplicate,
}

struct Rule {
    name: String,
    kind: Kind,
    column: Option<String>,
    count: u64,
}

/// What the pass found.
pub(crate) struct Pass {
    pub rows: u64,
    /// The clean labelled rows, or with `training.max_rows` their sample.
    pub events: LabelledEvents,
    /// Every clean labelled row, sampled or not, and the newest one's timestamp.
    pub clean_rows: u64,
    pub newest: Option<i64>,
    pub sample: Option<SampleSummary>,
    /// With `dataset.label_delay`: the rows newer than the run time minus the delay that have no
    /// label yet and break no other rule (their `labels` are all false: unknown).
    pub awaiting: Option<LabelledEvents>,
    pub checks: Vec<QualityCheck>,
    pub rule_counts: Vec<(String, u64)>,
    pub quarantined_rows: u64,
    pub quarantine_path: Option<PathBuf>,
    pub incomplete_rows: u64,
    pub invalid_rows: u64,
    pub duplicate_rows: u64,
    pub future_rows: u64,
}

/// A categorical column being dictionary-coded across batches.
struct Dictionary {
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

/// A value of at most 15 bytes as one number: its length in the first (most significant) byte,
/// then its bytes, zero-padded. Keys order values by length, then byte by byte.
fn short_key(value: &str) -> Option<u128> {
    let bytes = value.as_bytes();
    (bytes.len() < 16).then(|| {
        let mut key = [0u8; 16];
        key[0] = bytes.len() as u8;
        key[1..=bytes.len()].copy_from_slice(bytes);
        u128::from_be_bytes(key)
    })
}

impl Dictionary {
    fn new(expected_rows: usize) -> Dictionary {
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
    fn push_at(&mut self, array: &<StringType as PolarsDataType>::Array, i: usize) {
        let value = array.value(i);
        let code = match short_key(value) {
            Some(key) => {
                let slot = (key.mixed() >> 54) as usize;
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
    fn finish(self, name: &str) -> CategoricalColumn {
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

/// A batch's columns as the rules read them, and which rules (other than the id rules) each row
/// broke (an empty mask: no row broke the rule).
struct Tested {
    broken: Vec<Vec<bool>>,
    ts: Plain<Int64Type>,
    labels: Vec<bool>,
    numbers: Vec<Plain<Float64Type>>,
    strings: Vec<StringChunked>,
    /// The rows that await their label (empty: none).
    awaiting: Vec<bool>,
}

struct Quarantine {
    final_path: PathBuf,
    temp: tempfile::NamedTempFile,
    writer: Option<polars::io::parquet::write::BatchedWriter<std::fs::File>>,
}

struct Accumulator {
    id: String,
    timestamp: String,
    label: String,
    numeric: Vec<(String, Option<(f64, f64)>)>,
    categorical: Vec<(String, Option<HashSet<String>>)>,
    future_limit: i64,
    /// With a label delay: a row later than this (µs) without a label awaits it.
    awaiting_after: Option<i64>,
    /// The awaiting rows' timestamp and feature columns, batch by batch, and how many.
    awaiting_frames: Vec<DataFrame>,
    awaiting_rows: u64,
    rules: Vec<Rule>,
    rows: u64,
    incomplete: u64,
    invalid: u64,
    duplicates: u64,
    quarantined: u64,
    /// Every id seen so far.
    seen: Seen,
    duplicate_examples: Vec<String>,
    not_allowed: Vec<std::collections::BTreeMap<String, u64>>,
    label_values: Vec<i64>,
    timestamps: Vec<i64>,
    labels: Vec<bool>,
    numbers: Vec<Vec<f64>>,
    dictionaries: Vec<Dictionary>,
    /// With `training.max_rows`: which clean rows the columns above keep.
    sampler: Option<Sampler>,
    /// Clean labelled rows, kept or not, and the newest one's timestamp.
    clean_rows: u64,
    newest: Option<i64>,
    quarantine: Quarantine,
    error: Option<Error>,
}

fn rule(name: String, kind: Kind, column: Option<&str>) -> Rule {
    Rule { name, kind, column: column.map(str::to_string), count: 0 }
}

/// The ids seen so far, each by a key: an integer id by its value with the sign bit flipped, so
/// that keys ascend as the ids do (8 bytes a row); a text id by [`text_key`] (16), which ascends
/// with length, then bytes, up to 15 bytes, and is a hash beyond.
enum Seen {
    Integers(Ids<u64>),
    Text(Ids<u128>),
}

/// An id's key: ordered, hashable, and mixed into the 64 bits that choose its part.
trait IdKey: std::hash::Hash + Ord + Copy + Default {
    fn mixed(self) -> u64;
}

impl IdKey for u64 {
    fn mixed(self) -> u64 {
        mixed(self)
    }
}

impl IdKey for u128 {
    fn mixed(self) -> u64 {
        mixed(self as u64 ^ (self >> 64) as u64)
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
struct Ids<K> {
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

/// A text id as a 128-bit key: itself when it has at most 15 bytes ([`short_key`], which orders
/// ids by length, then byte by byte, so that "ev-9" comes before "ev-10"), else its xxh3-128 hash
/// with the first byte set to 255, which no short key has.
fn text_key(id: &str) -> u128 {
    short_key(id).unwrap_or_else(|| xxhash_rust::xxh3::xxh3_128(id.as_bytes()) | 0xFF << 120)
}

/// A multiplicative hash of an id's bits, whose high bits choose its part: consecutive ids
/// spread over all parts.
fn mixed(bits: u64) -> u64 {
    bits.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

impl Seen {
    fn new(integers: bool, expected_rows: usize) -> Seen {
        if integers { Seen::Integers(Ids::new(expected_rows)) } else { Seen::Text(Ids::new(expected_rows)) }
    }

    /// An empty set that allocates nothing, to stand in while the set is on another thread.
    fn placeholder() -> Seen {
        Seen::Integers(Ids::new(0))
    }

    /// Marks in `duplicate` the rows of `column` whose id was seen before (in an earlier batch
    /// or an earlier row), and in `null` the rows without an id.
    fn insert(&mut self, column: &Column, duplicate: &mut [bool], null: &mut [bool]) -> PolarsResult<()> {
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

/// A batch's numeric column, read in place chunk by chunk, and the rows that are null (`None`:
/// none). A value at a null row is arbitrary; rows with a null are never read as clean.
struct Plain<T: PolarsNumericType> {
    array: ChunkedArray<T>,
    null: Option<Vec<bool>>,
}

fn plain<T: PolarsNumericType>(values: &ChunkedArray<T>) -> Plain<T> {
    Plain { array: values.clone(), null: null_rows(values) }
}

/// The rows of `values` that are null, or `None` when none is: read off the validity bitmaps 64
/// rows at a time.
fn null_rows<T: PolarsDataType>(values: &ChunkedArray<T>) -> Option<Vec<bool>> {
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

    fn values(&self) -> impl Iterator<Item = T::Native> + '_ {
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
    fn extend_runs(&self, out: &mut Vec<T::Native>, runs: &[std::ops::Range<usize>]) {
        let chunks: Vec<&[T::Native]> = self.chunks().collect();
        for_each_segment(chunks.iter().map(|c| c.len()), runs, |c, rows| out.extend_from_slice(&chunks[c][rows]));
    }
}

/// Keeps `mask` as the rows that broke rule `rule` of `broken` when any row did.
fn mark(broken: &mut [Vec<bool>], rule: Option<usize>, mask: impl Into<Option<Vec<bool>>>) {
    if let (Some(r), Some(mask)) = (rule, mask.into())
        && mask.iter().any(|b| *b)
    {
        broken[r] = mask;
    }
}

/// The runs of consecutive rows not marked in `bad`, as ranges: clean rows are copied run by run.
fn clean_runs(bad: &[bool]) -> Vec<std::ops::Range<usize>> {
    let mut runs = Vec::new();
    let mut start = None;
    for (i, &b) in bad.iter().enumerate() {
        match (b, start) {
            (false, None) => start = Some(i),
            (true, Some(s)) => {
                runs.push(s..i);
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        runs.push(s..bad.len());
    }
    runs
}

/// Calls `f(chunk, rows)` for the rows of `runs` (ascending, disjoint rows of a column whose
/// chunks have the lengths `chunk_lens`), chunk by chunk: a run across chunks comes in pieces.
fn for_each_segment(
    chunk_lens: impl Iterator<Item = usize>,
    runs: &[std::ops::Range<usize>],
    mut f: impl FnMut(usize, std::ops::Range<usize>),
) {
    let (mut start, mut r) = (0, 0);
    for (c, len) in chunk_lens.enumerate() {
        let end = start + len;
        while r < runs.len() && runs[r].start < end {
            f(c, runs[r].start.max(start) - start..runs[r].end.min(end) - start);
            if runs[r].end > end {
                break;
            }
            r += 1;
        }
        start = end;
    }
}

impl Accumulator {
    /// `expected_rows`, from the footers, sizes the id set and the columns up front (capped, so a
    /// footer that lies costs no more than a rehash).
    fn new(input: &QualityInput<'_>, schema: &Schema, expected_rows: u64) -> Result<Accumulator> {
        let sampler = input.sample.map(|spec| Sampler::new(spec, expected_rows));
        // A sample holds about max_rows rows (and the margin of its draw).
        let kept_rows = input.sample.map_or(expected_rows, |s| expected_rows.min(Sampler::kept_rows(s)));
        let expected_rows = expected_rows.min(1 << 27) as usize;
        let kept_rows = kept_rows.min(1 << 27) as usize;
        let spec = input.spec;
        let policy = input.policy;
        let mut rules = Vec::new();
        for c in [&spec.id, &spec.timestamp, &spec.label].into_iter().chain(spec.features()) {
            rules.push(rule(format!("null:{c}"), Kind::Null, Some(c)));
        }
        for c in &spec.numeric {
            rules.push(rule(format!("not_finite:{c}"), Kind::NotFinite, Some(c)));
            if policy.ranges.contains_key(c) {
                rules.push(rule(format!("range:{c}"), Kind::Range, Some(c)));
            }
        }
        for c in &spec.categorical {
            if policy.allowed.contains_key(c) {
                rules.push(rule(format!("category:{c}"), Kind::Category, Some(c)));
            }
        }
        if schema.get(&spec.label).is_some_and(|d| d.is_integer()) {
            rules.push(rule("label_not_binary".into(), Kind::LabelNotBinary, Some(&spec.label)));
        }
        rules.push(rule("future_timestamp".into(), Kind::Future, Some(&spec.timestamp)));
        rules.push(rule("duplicate_id".into(), Kind::Duplicate, Some(&spec.id)));
        let dir = caretaker_core::fs::parent_dir(input.quarantine_path);
        std::fs::create_dir_all(dir).map_err(|e| caretaker_core::fs::FsError::new("create directory", dir, e))?;
        let temp = tempfile::Builder::new()
            .prefix(".caretaker-tmp-")
            .tempfile_in(dir)
            .map_err(|e| caretaker_core::fs::FsError::new("create a temporary file in", dir, e))?;
        // Read by whoever reads the reports, like report.json beside it.
        caretaker_core::fs::make_shared(temp.as_file())
            .map_err(|e| caretaker_core::fs::FsError::new("set permissions of", temp.path(), e))?;
        let future_limit = input.now.timestamp_micros() + (input.policy.future_tolerance_minutes * 60e6) as i64;
        Ok(Accumulator {
            id: spec.id.clone(),
            timestamp: spec.timestamp.clone(),
            label: spec.label.clone(),
            numeric: spec.numeric.iter().map(|c| (c.clone(), policy.ranges.get(c).copied())).collect(),
            categorical: spec
                .categorical
                .iter()
                .map(|c| (c.clone(), policy.allowed.get(c).map(|v| v.iter().cloned().collect())))
                .collect(),
            future_limit,
            awaiting_after: spec.label_delay.map(|delay| {
                input.now.timestamp_micros().saturating_sub(delay.as_micros().min(i64::MAX as u128) as i64)
            }),
            awaiting_frames: Vec::new(),
            awaiting_rows: 0,
            rules,
            rows: 0,
            incomplete: 0,
            invalid: 0,
            duplicates: 0,
            quarantined: 0,
            seen: Seen::new(schema.get(&spec.id).is_some_and(|d| d.is_integer()), expected_rows),
            duplicate_examples: Vec::new(),
            not_allowed: vec![Default::default(); spec.categorical.len()],
            label_values: Vec::new(),
            timestamps: Vec::with_capacity(kept_rows),
            labels: Vec::with_capacity(kept_rows),
            // (Each made on its own: `vec![v; n]` clones, and a clone of an empty vector has no
            // capacity.)
            numbers: spec.numeric.iter().map(|_| Vec::with_capacity(kept_rows)).collect(),
            dictionaries: spec.categorical.iter().map(|_| Dictionary::new(kept_rows)).collect(),
            sampler,
            clean_rows: 0,
            newest: None,
            quarantine: Quarantine { final_path: input.quarantine_path.to_path_buf(), temp, writer: None },
            error: None,
        })
    }

    fn rule_index(&self, kind: Kind, column: &str) -> Option<usize> {
        self.rules.iter().position(|r| r.kind == kind && r.column.as_deref() == Some(column))
    }

    fn batch(&mut self, df: &DataFrame) -> PolarsResult<()> {
        let n = df.height();
        if n == 0 {
            return Ok(());
        }
        // The ids go into the set on a second core while this one tests the other columns: the
        // inserts are the largest single cost of the pass, and only they must follow row order.
        let id_column = df.column(&self.id)?;
        let mut seen = std::mem::replace(&mut self.seen, Seen::placeholder());
        std::thread::scope(|scope| {
            let ids = scope.spawn(move || {
                let (mut duplicate, mut null) = (vec![false; n], vec![false; n]);
                let inserted = seen.insert(id_column, &mut duplicate, &mut null);
                (seen, inserted.map(|()| (duplicate, null)))
            });
            let tested = self.test_columns(df);
            let (seen, inserted) = ids.join().map_err(|_| polars_err!(ComputeError: "the id check panicked"))?;
            self.seen = seen;
            let (duplicate, null) = inserted?;
            self.merge(df, id_column, tested?, duplicate, null)
        })
    }

    /// Every rule but the id rules, on one batch.
    fn test_columns(&mut self, df: &DataFrame) -> PolarsResult<Tested> {
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

    /// Adds the id rules to the other rules' findings, counts, quarantines the rows that broke
    /// any rule and keeps the others.
    fn merge(
        &mut self,
        df: &DataFrame,
        id_column: &Column,
        tested: Tested,
        duplicate: Vec<bool>,
        null: Vec<bool>,
    ) -> PolarsResult<()> {
        let n = df.height();
        let Tested { mut broken, ts, labels, numbers, strings, awaiting } = tested;
        for i in (0..n).filter(|&i| duplicate[i]) {
            if self.duplicate_examples.len() >= 5 {
                break;
            }
            let id = id_column.get(i).map(|v| v.to_string()).unwrap_or_default();
            if !self.duplicate_examples.contains(&id) {
                self.duplicate_examples.push(id);
            }
        }
        mark(&mut broken, self.rule_index(Kind::Null, &self.id), null);
        mark(&mut broken, self.rules.iter().position(|r| r.kind == Kind::Duplicate), duplicate);

        // Which rows broke what.
        let active: Vec<usize> = (0..self.rules.len()).filter(|&r| !broken[r].is_empty()).collect();
        // Each rule's mask once: into the rows to quarantine and the rows of its score dimension
        // (completeness, validity, uniqueness), made when a rule of that dimension is broken.
        let mut bad = vec![false; n];
        let mut dimensions: [Vec<bool>; 3] = Default::default();
        for &r in &active {
            let dimension = match self.rules[r].kind {
                Kind::Null => &mut dimensions[0],
                Kind::Duplicate => &mut dimensions[2],
                Kind::NotFinite | Kind::Range | Kind::Category | Kind::LabelNotBinary | Kind::Future => {
                    &mut dimensions[1]
                }
            };
            dimension.resize(n, false);
            let mut count = 0;
            for ((b, d), &x) in bad.iter_mut().zip(dimension.iter_mut()).zip(&broken[r]) {
                *b |= x;
                *d |= x;
                count += x as u64;
            }
            self.rules[r].count += count;
        }
        let rows_in = |mask: &[bool]| mask.iter().filter(|b| **b).count() as u64;
        self.incomplete += rows_in(&dimensions[0]);
        self.invalid += rows_in(&dimensions[1]);
        self.duplicates += rows_in(&dimensions[2]);
        let bad_rows = bad.iter().filter(|b| **b).count();
        self.rows += n as u64;
        self.quarantined += bad_rows as u64;

        // The rows that await their label and break no other rule: kept aside, not trained on.
        let mut kept_out = Vec::new();
        if !awaiting.is_empty() {
            let waiting: Vec<bool> = awaiting.iter().zip(&bad).map(|(&a, &b)| a && !b).collect();
            let count = waiting.iter().filter(|w| **w).count();
            if count > 0 {
                self.awaiting_rows += count as u64;
                let columns: Vec<&str> = std::iter::once(self.timestamp.as_str())
                    .chain(self.numeric.iter().map(|(c, _)| c.as_str()))
                    .chain(self.categorical.iter().map(|(c, _)| c.as_str()))
                    .collect();
                let rows = df.select(columns)?.filter(&BooleanChunked::from_slice("awaiting".into(), &waiting))?;
                self.awaiting_frames.push(rows);
                kept_out = bad.iter().zip(&waiting).map(|(&b, &w)| b | w).collect();
            }
        }

        let mut kept_out = if kept_out.is_empty() { bad.clone() } else { kept_out };
        for (t, &out) in ts.values().zip(&kept_out) {
            if !out {
                self.clean_rows += 1;
                self.newest = self.newest.max(Some(t));
            }
        }
        // With training.max_rows, the clean rows outside the sample are kept out too.
        if let Some(sampler) = &mut self.sampler {
            let clean: Vec<bool> = kept_out.iter().map(|out| !out).collect();
            let unsampled = sampler.leave_out(id_column, &labels, &clean)?;
            for (out, u) in kept_out.iter_mut().zip(unsampled) {
                *out |= u;
            }
        }

        // The clean rows, into the training vectors, run by run (a clean row has no null): the
        // categories on a second core, the rest on this one.
        let runs = clean_runs(&kept_out);
        let mut dictionaries = std::mem::take(&mut self.dictionaries);
        std::thread::scope(|scope| {
            let coded = scope.spawn(|| {
                for (values, dict) in strings.iter().zip(&mut dictionaries) {
                    let arrays: Vec<_> = values.downcast_iter().collect();
                    for_each_segment(arrays.iter().map(|a| a.len()), &runs, |c, rows| {
                        rows.for_each(|i| dict.push_at(arrays[c], i));
                    });
                }
            });
            ts.extend_runs(&mut self.timestamps, &runs);
            for run in &runs {
                self.labels.extend_from_slice(&labels[run.clone()]);
            }
            for (values, out) in numbers.iter().zip(&mut self.numbers) {
                values.extend_runs(out, &runs);
            }
            let written = if bad_rows > 0 { self.quarantine_rows(df, &bad, &broken, &active) } else { Ok(()) };
            coded.join().map_err(|_| polars_err!(ComputeError: "the category coding panicked"))?;
            written
        })?;
        self.dictionaries = dictionaries;
        Ok(())
    }

    /// Writes the rows marked in `bad`, with the names of the rules each one broke.
    fn quarantine_rows(
        &mut self,
        df: &DataFrame,
        bad: &[bool],
        broken: &[Vec<bool>],
        active: &[usize],
    ) -> PolarsResult<()> {
        let bad_rows = bad.iter().filter(|b| **b).count();
        let mut rows = df.filter(&BooleanChunked::from_slice("bad".into(), bad))?;
        let mut list = ListStringChunkedBuilder::new(RULES_COLUMN.into(), bad_rows, bad_rows * 2);
        for i in (0..bad.len()).filter(|&i| bad[i]) {
            list.append_values_iter(active.iter().filter(|&&r| broken[r][i]).map(|&r| self.rules[r].name.as_str()));
        }
        rows.with_column(list.finish().into_column())?;
        rows.align_chunks();
        self.write_quarantine(&rows)
    }

    fn write_quarantine(&mut self, rows: &DataFrame) -> PolarsResult<()> {
        if self.quarantine.writer.is_none() {
            let file = self.quarantine.temp.reopen().map_err(|e| polars_err!(ComputeError: "{e}"))?;
            let writer = ParquetWriter::new(file)
                .with_compression(ParquetCompression::Zstd(None))
                .with_statistics(StatisticsOptions::full())
                .batched(rows.schema())?;
            self.quarantine.writer = Some(writer);
        }
        self.quarantine.writer.as_mut().expect("just made").write_batch(rows)
    }
}

/// Streams every row of the dataset through the rules.
pub(crate) fn run(input: &QualityInput<'_>, schema: &Schema, expected_rows: u64) -> Result<Pass> {
    let files = input.files;
    let acc = Arc::new(Mutex::new(Accumulator::new(input, schema, expected_rows)?));
    let sink = acc.clone();
    let plan = files
        .scan()?
        .sink_batches(
            PlanCallback::new(move |df: DataFrame| {
                let mut acc = sink.lock().map_err(|_| polars_err!(ComputeError: "the quality pass panicked"))?;
                acc.batch(&df)?;
                Ok(false)
            }),
            true,
            NonZeroUsize::new(BATCH_ROWS),
        )
        .map_err(|e| files.read_error(e))?;
    plan.collect_with_engine(Engine::Streaming).map_err(|e| files.read_error(e))?;
    let acc = Arc::try_unwrap(acc)
        .map_err(|_| Error::Read { path: files.path.clone(), reason: "the scan still holds the quality pass".into() })?
        .into_inner()
        .map_err(|_| Error::Read { path: files.path.clone(), reason: "the quality pass panicked".into() })?;
    if let Some(e) = acc.error {
        return Err(e);
    }
    finish(acc, input)
}

fn finish(mut acc: Accumulator, input: &QualityInput<'_>) -> Result<Pass> {
    let quarantine_path = match acc.quarantine.writer.take() {
        None => None,
        Some(writer) => {
            let path = acc.quarantine.final_path.clone();
            writer.finish().map_err(|e| caretaker_data::parquet_io::write_error(&path, e))?;
            acc.quarantine.temp.as_file().sync_all().map_err(|e| caretaker_core::fs::FsError::new("sync", &path, e))?;
            acc.quarantine
                .temp
                .persist(&path)
                .map_err(|e| caretaker_core::fs::FsError::new("replace", &path, e.error))?;
            caretaker_core::fs::sync_dir(caretaker_core::fs::parent_dir(&path))?;
            Some(path)
        }
    };
    let rows = acc.rows;
    let frac = |n: u64| if rows == 0 { 0.0 } else { n as f64 / rows as f64 };
    let policy = input.policy;
    let mut checks = Vec::new();
    for r in &acc.rules {
        let column = r.column.as_deref();
        let measured = frac(r.count);
        let of = format!("{} of {rows} rows", r.count);
        let (name, threshold, detail) = match r.kind {
            Kind::Null => ("null_fraction", policy.max_null_fraction, of),
            Kind::NotFinite => ("not_finite", 0.0, format!("{of} NaN or infinite")),
            Kind::Range => {
                let (lo, hi) = policy.ranges[column.unwrap_or_default()];
                ("range_violations", policy.max_range_violation_fraction, format!("{of} outside [{lo}, {hi}]"))
            }
            Kind::Category => {
                let index = input.spec.categorical.iter().position(|c| Some(c.as_str()) == column).unwrap_or(0);
                let examples: Vec<String> =
                    acc.not_allowed[index].iter().take(10).map(|(v, n)| format!("{v:?} ({n})")).collect();
                (
                    "allowed_values",
                    policy.max_range_violation_fraction,
                    if examples.is_empty() { of } else { format!("{of} not allowed: {}", examples.join(", ")) },
                )
            }
            Kind::LabelNotBinary => (
                "label_values",
                0.0,
                if acc.label_values.is_empty() {
                    format!("{of} neither 0 nor 1")
                } else {
                    format!("{of} neither 0 nor 1, e.g. {:?}", acc.label_values)
                },
            ),
            Kind::Future => (
                "future_timestamps",
                0.0,
                format!("{of} later than the run time by more than {} minutes", policy.future_tolerance_minutes),
            ),
            Kind::Duplicate => (
                "duplicate_ids",
                policy.max_duplicate_fraction,
                if acc.duplicate_examples.is_empty() {
                    of
                } else {
                    format!("{of} repeat an earlier id, e.g. {}", acc.duplicate_examples.join(", "))
                },
            ),
        };
        checks.push(check(name, column, measured, threshold, measured <= threshold, detail));
    }
    let rule_counts = acc.rules.iter().filter(|r| r.count > 0).map(|r| (r.name.clone(), r.count)).collect();
    let future_rows = acc.rules.iter().find(|r| r.kind == Kind::Future).map(|r| r.count).unwrap_or(0);
    let spec = input.spec;
    let events = LabelledEvents {
        timestamps: acc.timestamps,
        labels: acc.labels,
        numeric: spec
            .numeric
            .iter()
            .zip(acc.numbers)
            .map(|(name, values)| NumericColumn { name: name.clone(), values })
            .collect(),
        categorical: spec.categorical.iter().zip(acc.dictionaries).map(|(name, d)| d.finish(name)).collect(),
    };
    let (sampled, sample) = match acc.sampler.take() {
        Some(sampler) => sampler.finish(&events.labels),
        None => (None, None),
    };
    // (The sample's rows replace the rows kept during the pass, which are dropped here.)
    let events = match sampled {
        Some(rows) => events.take(&rows),
        None => events,
    };
    let awaiting = match acc.awaiting_after {
        None => None,
        Some(_) => Some(awaiting_events(&acc.awaiting_frames, spec).map_err(|e| input.files.read_error(e))?),
    };
    Ok(Pass {
        rows,
        events,
        clean_rows: acc.clean_rows,
        newest: acc.newest,
        sample,
        awaiting,
        checks,
        rule_counts,
        quarantined_rows: acc.quarantined,
        quarantine_path,
        incomplete_rows: acc.incomplete,
        invalid_rows: acc.invalid,
        duplicate_rows: acc.duplicates,
        future_rows,
    })
}

/// The rows that await their label as events (labels false: unknown), categories coded in order
/// of first appearance.
fn awaiting_events(frames: &[DataFrame], spec: &caretaker_core::config::DatasetSpec) -> PolarsResult<LabelledEvents> {
    let mut events = LabelledEvents {
        numeric: spec.numeric.iter().map(|name| NumericColumn { name: name.clone(), values: Vec::new() }).collect(),
        categorical: spec
            .categorical
            .iter()
            .map(|name| CategoricalColumn { name: name.clone(), levels: Vec::new(), codes: Vec::new() })
            .collect(),
        ..LabelledEvents::default()
    };
    let mut index: Vec<HashMap<String, u32>> = vec![HashMap::new(); spec.categorical.len()];
    // The rows broke no rule: no value is null.
    for df in frames {
        events.timestamps.extend(timestamp_micros(df.column(&spec.timestamp)?)?.into_no_null_iter());
        events.labels.extend(std::iter::repeat_n(false, df.height()));
        for column in &mut events.numeric {
            let values = df.column(&column.name)?.cast(&DataType::Float64)?;
            column.values.extend(values.f64()?.into_no_null_iter());
        }
        for (column, index) in events.categorical.iter_mut().zip(&mut index) {
            let values = df.column(&column.name)?.cast(&DataType::String)?;
            for v in values.str()?.iter().map(Option::unwrap_or_default) {
                let code = match index.get(v) {
                    Some(&code) => code,
                    None => {
                        let code = column.levels.len() as u32;
                        column.levels.push(v.to_string());
                        index.insert(v.to_string(), code);
                        code
                    }
                };
                column.codes.push(code);
            }
        }
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_runs_across_chunks_are_copied_piece_by_piece() {
        let mut pieces = Vec::new();
        // Chunks of 3, 4 and 2 rows; runs within a chunk, across two and across all three.
        for_each_segment([3, 4, 2].into_iter(), &[0..2, 2..8, 8..9], |c, rows| pieces.push((c, rows)));
        assert_eq!(pieces, vec![(0, 0..2), (0, 2..3), (1, 0..4), (2, 0..1), (2, 1..2)]);
        let mut pieces = Vec::new();
        for_each_segment([3, 0, 4].into_iter(), &[1..2, 4..7], |c, rows| pieces.push((c, rows)));
        assert_eq!(pieces, vec![(0, 1..2), (2, 1..4)]);
    }

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

    #[test]
    fn text_keys_keep_the_order_of_counters_formatted_without_padding() {
        let keys: Vec<u128> = (0..2000).map(|i| text_key(&format!("ev1-{i}"))).collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        assert!(text_key("b") > text_key("a") && text_key("ab") > text_key("b"));
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

    #[test]
    fn short_text_ids_are_their_own_keys_and_long_ones_never_collide_with_them() {
        assert_eq!(text_key(""), 0);
        assert_ne!(text_key("a"), text_key("a\0"));
        let long = "an-id-of-more-than-fifteen-bytes";
        assert_eq!(text_key(long) >> 120, 0xFF);
        assert!((0..16).map(|n| "x".repeat(n)).all(|id| text_key(&id) >> 120 == id.len() as u128));
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
