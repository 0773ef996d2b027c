//! The streaming pass: row-level rules, the quarantine file and the clean rows, batch by batch.

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
const BATCH_ROWS: usize = 128 * 1024;

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
    pub events: LabelledEvents,
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
    index: HashMap<String, u32, RandomState>,
    levels: Vec<String>,
    codes: Vec<u32>,
}

impl Dictionary {
    fn push(&mut self, value: &str) {
        let code = match self.index.get(value) {
            Some(&c) => c,
            None => {
                let c = self.levels.len() as u32;
                self.index.insert(value.to_string(), c);
                self.levels.push(value.to_string());
                c
            }
        };
        self.codes.push(code);
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
    rules: Vec<Rule>,
    rows: u64,
    incomplete: u64,
    invalid: u64,
    duplicates: u64,
    quarantined: u64,
    /// Every id seen so far: an integer id as itself (tagged), a text id by its 128-bit hash.
    seen: HashSet<u128, RandomState>,
    duplicate_examples: Vec<String>,
    not_allowed: Vec<std::collections::BTreeMap<String, u64>>,
    label_values: Vec<i64>,
    timestamps: Vec<i64>,
    labels: Vec<bool>,
    numbers: Vec<Vec<f64>>,
    dictionaries: Vec<Dictionary>,
    quarantine: Quarantine,
    error: Option<Error>,
}

fn rule(name: String, kind: Kind, column: Option<&str>) -> Rule {
    Rule { name, kind, column: column.map(str::to_string), count: 0 }
}

/// `test` of every value of a batch's column, false for nulls; read from the contiguous values
/// when the column has one chunk and no nulls (the common case), else value by value.
fn test_values(values: &Float64Chunked, test: impl Fn(f64) -> bool) -> Vec<bool> {
    match values.cont_slice() {
        Ok(slice) => slice.iter().map(|&v| test(v)).collect(),
        Err(_) => values.iter().map(|v| v.is_some_and(&test)).collect(),
    }
}

/// The key of each id in the `seen` set. Integer ids are their own key (with bit 64 set, no
/// hashing and no collision); text ids are their xxh3-128 hash.
fn id_hash(column: &Column) -> PolarsResult<Vec<Option<u128>>> {
    Ok(match column.dtype() {
        dt if dt.is_integer() => column
            .cast(&DataType::Int64)?
            .i64()?
            .iter()
            .map(|v| v.map(|v| (1u128 << 64) | u128::from(v as u64)))
            .collect(),
        _ => column
            .cast(&DataType::String)?
            .str()?
            .iter()
            .map(|v| v.map(|v| xxhash_rust::xxh3::xxh3_128(v.as_bytes())))
            .collect(),
    })
}

impl Accumulator {
    /// `expected_rows`, from the footers, sizes the id set and the columns up front (capped, so a
    /// footer that lies costs no more than a rehash).
    fn new(input: &QualityInput<'_>, schema: &Schema, expected_rows: u64) -> Result<Accumulator> {
        let expected_rows = expected_rows.min(1 << 27) as usize;
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
            rules,
            rows: 0,
            incomplete: 0,
            invalid: 0,
            duplicates: 0,
            quarantined: 0,
            seen: HashSet::with_capacity_and_hasher(expected_rows, RandomState::default()),
            duplicate_examples: Vec::new(),
            not_allowed: vec![Default::default(); spec.categorical.len()],
            label_values: Vec::new(),
            timestamps: Vec::with_capacity(expected_rows),
            labels: Vec::with_capacity(expected_rows),
            numbers: vec![Vec::with_capacity(expected_rows); spec.numeric.len()],
            dictionaries: spec
                .categorical
                .iter()
                .map(|_| Dictionary {
                    index: HashMap::with_hasher(RandomState::default()),
                    levels: Vec::new(),
                    codes: Vec::with_capacity(expected_rows),
                })
                .collect(),
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
        let mut broken: Vec<Vec<bool>> = vec![Vec::new(); self.rules.len()];
        let mark = |r: Option<usize>, mask: Vec<bool>, broken: &mut Vec<Vec<bool>>| {
            if let Some(r) = r
                && mask.iter().any(|b| *b)
            {
                broken[r] = mask;
            }
        };

        let ts = timestamp_micros(df.column(&self.timestamp)?)?;
        let future_limit = self.future_limit;
        mark(
            self.rule_index(Kind::Null, &self.timestamp.clone()),
            ts.iter().map(|t| t.is_none()).collect(),
            &mut broken,
        );
        mark(
            self.rules.iter().position(|r| r.kind == Kind::Future),
            ts.iter().map(|t| t.is_some_and(|t| t > future_limit)).collect(),
            &mut broken,
        );

        let label_column = df.column(&self.label)?;
        let labels: Vec<Option<bool>> = if label_column.dtype().is_integer() {
            let ints = label_column.cast(&DataType::Int64)?;
            let ints = ints.i64()?;
            let not_binary: Vec<bool> = ints.iter().map(|v| v.is_some_and(|v| v != 0 && v != 1)).collect();
            for (v, bad) in ints.iter().zip(&not_binary) {
                if *bad && self.label_values.len() < 5 {
                    self.label_values.extend(v);
                }
            }
            mark(self.rules.iter().position(|r| r.kind == Kind::LabelNotBinary), not_binary, &mut broken);
            ints.iter().map(|v| v.map(|v| v == 1)).collect()
        } else {
            label_column.as_materialized_series().bool()?.iter().collect()
        };
        mark(
            self.rule_index(Kind::Null, &self.label.clone()),
            labels.iter().map(|l| l.is_none()).collect(),
            &mut broken,
        );

        let mut numbers = Vec::with_capacity(self.numeric.len());
        for k in 0..self.numeric.len() {
            let (name, range) = (&self.numeric[k].0, self.numeric[k].1);
            let values = df.column(name)?.cast(&DataType::Float64)?;
            let values = values.f64()?.clone();
            if values.null_count() > 0 {
                mark(self.rule_index(Kind::Null, name), values.iter().map(|v| v.is_none()).collect(), &mut broken);
            }
            mark(self.rule_index(Kind::NotFinite, name), test_values(&values, |v| !v.is_finite()), &mut broken);
            if let Some((lo, hi)) = range {
                mark(
                    self.rule_index(Kind::Range, name),
                    test_values(&values, |v| v.is_finite() && (v < lo || v > hi)),
                    &mut broken,
                );
            }
            numbers.push(values);
        }

        let mut strings = Vec::with_capacity(self.categorical.len());
        for (k, (name, allowed)) in self.categorical.clone().into_iter().enumerate() {
            let values = df.column(&name)?.cast(&DataType::String)?;
            let values = values.str()?.clone();
            if values.null_count() > 0 {
                mark(self.rule_index(Kind::Null, &name), values.iter().map(|v| v.is_none()).collect(), &mut broken);
            }
            if let Some(allowed) = &allowed {
                let mask: Vec<bool> = values.iter().map(|v| v.is_some_and(|v| !allowed.contains(v))).collect();
                for (v, bad) in values.iter().zip(&mask) {
                    if let (Some(v), true) = (v, *bad) {
                        let counts = &mut self.not_allowed[k];
                        if counts.len() < 20 || counts.contains_key(v) {
                            *counts.entry(v.to_string()).or_default() += 1;
                        }
                    }
                }
                mark(self.rule_index(Kind::Category, &name), mask, &mut broken);
            }
            strings.push(values);
        }

        let id_column = df.column(&self.id)?;
        let hashes = id_hash(id_column)?;
        mark(self.rule_index(Kind::Null, &self.id.clone()), hashes.iter().map(|h| h.is_none()).collect(), &mut broken);
        let mut duplicate = vec![false; n];
        for (i, h) in hashes.iter().enumerate() {
            if let Some(h) = h
                && !self.seen.insert(*h)
            {
                duplicate[i] = true;
                if self.duplicate_examples.len() < 5 {
                    let id = id_column.get(i).map(|v| v.to_string()).unwrap_or_default();
                    if !self.duplicate_examples.contains(&id) {
                        self.duplicate_examples.push(id);
                    }
                }
            }
        }
        mark(self.rules.iter().position(|r| r.kind == Kind::Duplicate), duplicate, &mut broken);

        // Which rows broke what.
        let active: Vec<usize> = (0..self.rules.len()).filter(|&r| !broken[r].is_empty()).collect();
        let mut bad = vec![false; n];
        for &r in &active {
            let mut count = 0;
            for (b, &x) in bad.iter_mut().zip(&broken[r]) {
                *b |= x;
                count += x as u64;
            }
            self.rules[r].count += count;
        }
        let any_of = |kinds: &[Kind]| -> u64 {
            let rules: Vec<usize> = active.iter().copied().filter(|&r| kinds.contains(&self.rules[r].kind)).collect();
            (0..n).filter(|&i| rules.iter().any(|&r| broken[r][i])).count() as u64
        };
        self.incomplete += any_of(&[Kind::Null]);
        self.invalid += any_of(&[Kind::NotFinite, Kind::Range, Kind::Category, Kind::LabelNotBinary, Kind::Future]);
        self.duplicates += any_of(&[Kind::Duplicate]);
        let bad_rows = bad.iter().filter(|b| **b).count();
        self.rows += n as u64;
        self.quarantined += bad_rows as u64;

        if bad_rows > 0 {
            let mut rows = df.filter(&BooleanChunked::from_slice("bad".into(), &bad))?;
            let mut list = ListStringChunkedBuilder::new(RULES_COLUMN.into(), bad_rows, bad_rows * 2);
            for i in (0..n).filter(|&i| bad[i]) {
                list.append_values_iter(active.iter().filter(|&&r| broken[r][i]).map(|&r| self.rules[r].name.as_str()));
            }
            rows.with_column(list.finish().into_column())?;
            rows.align_chunks();
            self.write_quarantine(&rows)?;
        }

        // The clean rows, into the training vectors.
        let clean = |i: &usize| !bad[*i];
        self.timestamps.extend((0..n).filter(clean).map(|i| ts.get(i).unwrap_or_default()));
        self.labels.extend((0..n).filter(clean).map(|i| labels[i].unwrap_or_default()));
        for (values, out) in numbers.iter().zip(&mut self.numbers) {
            if let Ok(slice) = values.cont_slice() {
                out.extend((0..n).filter(clean).map(|i| slice[i]));
            } else {
                out.extend((0..n).filter(clean).map(|i| values.get(i).unwrap_or_default()));
            }
        }
        for (values, dict) in strings.iter().zip(&mut self.dictionaries) {
            for (i, v) in values.iter().enumerate() {
                if !bad[i] {
                    dict.push(v.unwrap_or_default());
                }
            }
        }
        Ok(())
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
    Ok(Pass {
        rows,
        events,
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
