//! The streaming pass: row-level rules, the quarantine file and the clean rows, batch by batch.
//!
//! Each batch goes through the id rules ([`ids`], on a second core) and the other column rules
//! ([`rules`]) at once; then the rows that broke any rule go to the quarantine file
//! ([`quarantine`]) and the clean ones into the training columns, categories coded by
//! [`categories`]. The second cores are scoped threads, one per batch and stage (a batch is 128K
//! rows, so a spawn costs far less than a batch's work).

mod categories;
mod ids;
mod keys;
mod quarantine;
mod rules;

use categories::Dictionary;
use ids::Seen;
use quarantine::Quarantine;
use rules::{Kind, Rule, Tested, mark, rule};

use crate::sample::{SampleSummary, Sampler};
use crate::{QualityInput, Result, check};
use caretaker_core::events::{CategoricalColumn, LabelledEvents, NumericColumn};
use caretaker_core::report::QualityCheck;
use caretaker_data::Error;
use caretaker_data::dataset::timestamp_micros;
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
            quarantine: Quarantine::create(input.quarantine_path)?,
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
}

/// The runs of consecutive rows not marked in `bad`, as ranges: clean rows are copied run by run.
pub(super) fn clean_runs(bad: &[bool]) -> Vec<std::ops::Range<usize>> {
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
pub(super) fn for_each_segment(
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
    finish(acc, input)
}

fn finish(mut acc: Accumulator, input: &QualityInput<'_>) -> Result<Pass> {
    let quarantine_path = acc.quarantine.finish()?;
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
}
