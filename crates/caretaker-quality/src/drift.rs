//! Drift of every feature between a reference window and the current window, on the clean rows
//! and the rows awaiting their label (`dataset.label_delay`).
//!
//! PSI uses bins frozen from the first reference window seen and kept in
//! `<state>/drift_reference.json`, so that this run's PSI is comparable with last month's: with
//! bins recomputed every night, a slow drift would move the bins along with the data and never
//! show. Numeric bins are the reference deciles (unique values, numpy's linear interpolation); a
//! value equal to an edge goes to the upper bin (numpy's `searchsorted(side="right")`), and bin
//! shares are clipped at 1e-6 before `PSI = sum((cur - ref) * ln(cur / ref))`, as in the reference
//! pipeline. Numeric features also get the two-sample Kolmogorov-Smirnov statistic (exact, found
//! without sorting the windows: see [`crate::ks`]); categorical ones the Jensen-Shannon distance
//! (base 2, so between 0 and 1) over the frozen categories plus an "other" bin. Every value is
//! recorded every run, alarm or not. Delete the file to freeze new bins (after a deliberate change
//! of a feature, say).

use crate::check;
use crate::checks::quantiles;
use crate::ks;
use caretaker_core::config::{DatasetSpec, DriftPolicy, QualityPolicy};
use caretaker_core::events::LabelledEvents;
use caretaker_core::fs::{FsError, write_atomic};
use caretaker_core::report::{DriftResult, QualityCheck};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

pub const FILE: &str = "drift_reference.json";
const DAY: i64 = 86_400_000_000;
const OTHER: &str = "<other>";

/// The rows of the two windows, anchored at the newest event (see [`Windows::anchored`]).
pub struct Windows {
    pub reference: Rows,
    pub current: Rows,
}

/// The rows of one window, ascending: a run of consecutive rows, as in data stored in time order
/// (nothing to list, the values read in place), or the rows listed one by one.
#[derive(Debug, PartialEq)]
pub enum Rows {
    Run(std::ops::Range<usize>),
    Listed(Vec<usize>),
}

impl Rows {
    pub fn len(&self) -> usize {
        match self {
            Rows::Run(run) => run.len(),
            Rows::Listed(rows) => rows.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The rows whose timestamp is `within` the window: the first and last of them and how many
    /// there are make a run when they agree, else (rows out of time order) a second pass lists
    /// them.
    fn within(timestamps: &[i64], within: impl Fn(i64) -> bool) -> Rows {
        let (mut first, mut last, mut count) = (usize::MAX, 0, 0);
        for (i, &t) in timestamps.iter().enumerate() {
            if within(t) {
                first = first.min(i);
                last = i;
                count += 1;
            }
        }
        if count == 0 {
            Rows::Run(0..0)
        } else if last - first + 1 == count {
            Rows::Run(first..last + 1)
        } else {
            Rows::Listed((first..=last).filter(|&i| within(timestamps[i])).collect())
        }
    }

    /// The values of these rows: borrowed for a run.
    pub fn pick<'a, T: Copy>(&self, values: &'a [T]) -> std::borrow::Cow<'a, [T]> {
        match self {
            Rows::Run(run) => values[run.clone()].into(),
            Rows::Listed(rows) => rows.iter().map(|&i| values[i]).collect::<Vec<T>>().into(),
        }
    }
}

impl Windows {
    /// The windows of `events`, anchored at their newest event.
    pub fn of(events: &LabelledEvents, policy: &DriftPolicy) -> Windows {
        Windows::anchored(events, events.timestamps.iter().max().copied(), policy)
    }

    /// The windows of `events`, the current one ending at `newest` (an event of another set of
    /// rows, say: the rows awaiting their label are newer than the labelled ones).
    pub fn anchored(events: &LabelledEvents, newest: Option<i64>, policy: &DriftPolicy) -> Windows {
        let Some(newest) = newest else {
            return Windows { reference: Rows::Run(0..0), current: Rows::Run(0..0) };
        };
        let current_from = newest - policy.current_days as i64 * DAY;
        let reference_from = current_from - policy.reference_days as i64 * DAY;
        let timestamps = &events.timestamps;
        Windows {
            reference: Rows::within(timestamps, |t| t <= current_from && t > reference_from),
            current: Rows::within(timestamps, |t| t > current_from),
        }
    }
}

/// Frozen bins, by feature.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct FrozenBins {
    pub features: BTreeMap<String, Bins>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Bins {
    Numeric { edges: Vec<f64> },
    Categorical { categories: Vec<String> },
}

impl FrozenBins {
    fn load(dir: &Path) -> Result<FrozenBins, caretaker_data::Error> {
        let path = dir.join(FILE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let frozen: FrozenBins = serde_json::from_slice(&bytes).map_err(|e| caretaker_data::Error::Read {
                    path: path.clone(),
                    reason: format!("not a frozen drift reference ({e}); delete it to freeze new bins"),
                })?;
                // The bin counts need ascending edges (JSON has no NaN or infinity to worry about).
                for (feature, bins) in &frozen.features {
                    if let Bins::Numeric { edges } = bins
                        && let Some(w) = edges.windows(2).find(|w| w[0] > w[1])
                    {
                        return Err(caretaker_data::Error::Read {
                            path,
                            reason: format!(
                                "feature {feature:?}: bin edges out of order ({} before {}); delete the file to freeze \
                                 new bins",
                                w[0], w[1]
                            ),
                        });
                    }
                }
                Ok(frozen)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(FrozenBins::default()),
            Err(e) => Err(FsError::new("read", path, e).into()),
        }
    }
}

/// PSI over bin counts, shares clipped at 1e-6.
pub fn psi(reference: &[u64], current: &[u64]) -> f64 {
    let (r, c) = (reference.iter().sum::<u64>().max(1) as f64, current.iter().sum::<u64>().max(1) as f64);
    reference
        .iter()
        .zip(current)
        .map(|(&a, &b)| {
            let (p, q) = ((a as f64 / r).max(1e-6), (b as f64 / c).max(1e-6));
            (q - p) * (q / p).ln()
        })
        .sum()
}

/// Jensen-Shannon distance, base 2.
pub fn js_distance(reference: &[u64], current: &[u64]) -> f64 {
    let (r, c) = (reference.iter().sum::<u64>().max(1) as f64, current.iter().sum::<u64>().max(1) as f64);
    let mut divergence = 0.0;
    for (&a, &b) in reference.iter().zip(current) {
        let (p, q) = (a as f64 / r, b as f64 / c);
        let m = (p + q) / 2.0;
        if p > 0.0 {
            divergence += 0.5 * p * (p / m).log2();
        }
        if q > 0.0 {
            divergence += 0.5 * q * (q / m).log2();
        }
    }
    divergence.max(0.0).sqrt()
}

fn numeric_labels(edges: &[f64]) -> Vec<String> {
    let mut labels = Vec::with_capacity(edges.len() + 1);
    let mut lo = "-inf".to_string();
    for e in edges {
        labels.push(format!("[{lo}, {e:.4})"));
        lo = format!("{e:.4}");
    }
    labels.push(format!("[{lo}, inf)"));
    labels
}

fn shares(counts: &[u64]) -> Vec<f64> {
    let total = counts.iter().sum::<u64>().max(1) as f64;
    counts.iter().map(|&c| c as f64 / total).collect()
}

/// What drift found.
pub struct DriftOutcome {
    pub results: Vec<DriftResult>,
    /// 1 - the share of measured features in alarm.
    pub stability: f64,
    pub check: QualityCheck,
}

/// Rows drift is measured on: the clean rows and, with `dataset.label_delay`, the rows awaiting
/// their label (the newest, whose features are known already), each set with its windows, all
/// anchored at the newest of them. Every set holds the same feature columns.
pub struct Part<'a> {
    pub events: &'a LabelledEvents,
    pub windows: Windows,
}

impl<'a> Part<'a> {
    /// `events` and `awaiting`, windowed from the newest event of both; `newest` is that of the
    /// rows `events` were sampled from (of `events` when they were not sampled).
    pub fn both(
        events: &'a LabelledEvents,
        newest: Option<i64>,
        awaiting: Option<&'a LabelledEvents>,
        policy: &DriftPolicy,
    ) -> Vec<Part<'a>> {
        let sets: Vec<&LabelledEvents> = std::iter::once(events).chain(awaiting.filter(|a| !a.is_empty())).collect();
        let newest = sets.iter().skip(1).flat_map(|e| e.timestamps.iter()).max().copied().max(newest);
        sets.into_iter().map(|events| Part { events, windows: Windows::anchored(events, newest, policy) }).collect()
    }
}

/// The values of every part's rows in one window (borrowed when there is one part).
fn gather<'a, T: Copy>(
    parts: &'a [Part],
    window: impl Fn(&Windows) -> &Rows,
    values: impl Fn(&'a LabelledEvents) -> Option<&'a [T]>,
) -> std::borrow::Cow<'a, [T]> {
    // Parts with no row in the window are left out, so that one part with rows is borrowed.
    let picked: Vec<std::borrow::Cow<'a, [T]>> = parts
        .iter()
        .filter(|part| !window(&part.windows).is_empty())
        .filter_map(|part| values(part.events).map(|v| window(&part.windows).pick(v)))
        .collect();
    match <[_; 1]>::try_from(picked) {
        Ok([one]) => one,
        Err(many) => many.iter().flat_map(|v| v.iter().copied()).collect::<Vec<T>>().into(),
    }
}

/// The values of the numeric column `name` of `events`, if it has one.
fn numeric<'a>(events: &'a LabelledEvents, name: &str) -> Option<&'a [f64]> {
    events.numeric.iter().find(|c| c.name == name).map(|c| c.values.as_slice())
}

/// The categorical column `name` of each part that has it, with the part's windows.
fn categorical_parts<'a>(
    parts: &'a [Part],
    name: &'a str,
) -> impl Iterator<Item = (&'a caretaker_core::events::CategoricalColumn, &'a Windows)> + 'a {
    parts
        .iter()
        .filter_map(move |part| part.events.categorical.iter().find(|c| c.name == name).map(|c| (c, &part.windows)))
}

/// Measures every feature; freezes bins for the features that have none yet.
pub fn measure(
    parts: &[Part],
    policy: &QualityPolicy,
    spec: &DatasetSpec,
    state_dir: &Path,
) -> Result<DriftOutcome, caretaker_data::Error> {
    let p = &policy.drift;
    let events = parts[0].events;
    let reference_rows: usize = parts.iter().map(|part| part.windows.reference.len()).sum();
    let current_rows: usize = parts.iter().map(|part| part.windows.current.len()).sum();
    if reference_rows == 0 || current_rows == 0 {
        return Ok(DriftOutcome {
            results: Vec::new(),
            stability: 1.0,
            check: check(
                "drift",
                None,
                0.0,
                p.max_drifted_share,
                true,
                format!(
                    "not measured: {} rows in the reference window ({} days before the last {}), {} in the current window",
                    reference_rows, p.reference_days, p.current_days, current_rows
                ),
            ),
        });
    }
    let mut frozen = FrozenBins::load(state_dir)?;
    let mut changed = false;

    // Freeze what is missing, from this reference window (numeric features in the threads
    // below).
    for column in &events.categorical {
        if !matches!(frozen.features.get(&column.name), Some(Bins::Categorical { .. })) {
            let mut counts: HashMap<&str, u64> = HashMap::new();
            for (c, windows) in categorical_parts(parts, &column.name) {
                let mut by_code = vec![0u64; c.levels.len()];
                for &code in windows.reference.pick(&c.codes).iter() {
                    by_code[code as usize] += 1;
                }
                for (k, n) in by_code.into_iter().enumerate().filter(|&(_, n)| n > 0) {
                    *counts.entry(c.levels[k].as_str()).or_default() += n;
                }
            }
            let mut order: Vec<(&str, u64)> = counts.into_iter().collect();
            order.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
            order.truncate(p.max_categories);
            let categories = order.iter().map(|(level, _)| level.to_string()).collect();
            frozen.features.insert(column.name.clone(), Bins::Categorical { categories });
            changed = true;
        }
    }
    // Numeric features side by side ([`crate::each_in_parallel`]). A feature without bins (`None`)
    // freezes them from its reference window.
    let qs: Vec<f64> = (1..p.bins).map(|k| k as f64 / p.bins as f64).collect();
    let measured: Vec<(DriftResult, Option<Vec<f64>>)> = crate::each_in_parallel(&events.numeric, |column| {
        let edges = match frozen.features.get(&column.name) {
            Some(Bins::Numeric { edges }) => Some(edges.clone()),
            _ if spec.numeric.contains(&column.name) => None,
            _ => Some(Vec::new()),
        };
        let reference = gather(parts, |w| &w.reference, |e| numeric(e, &column.name));
        let current = gather(parts, |w| &w.current, |e| numeric(e, &column.name));
        let fresh = edges.is_none();
        let edges = edges.unwrap_or_else(|| {
            let mut edges = quantiles(&reference, &qs);
            edges.dedup();
            edges
        });
        let ks::Measured { ks, reference_counts: rc, current_counts: cc } = ks::measure(&reference, &current, &edges);
        let psi = psi(&rc, &cc);
        let result = DriftResult {
            feature: column.name.clone(),
            kind: "numeric".into(),
            psi,
            ks: Some(ks),
            js: None,
            psi_threshold: Some(p.psi_alarm),
            ks_threshold: Some(p.ks_alarm),
            js_threshold: None,
            alarm: psi > p.psi_alarm || ks > p.ks_alarm,
            bins: numeric_labels(&edges),
            reference_share: shares(&rc),
            current_share: shares(&cc),
        };
        (result, fresh.then_some(edges))
    });
    let mut results = Vec::with_capacity(measured.len() + events.categorical.len());
    for (result, fresh) in measured {
        if let Some(edges) = fresh {
            frozen.features.insert(result.feature.clone(), Bins::Numeric { edges });
            changed = true;
        }
        results.push(result);
    }
    if changed {
        let bytes = serde_json::to_vec_pretty(&frozen).expect("bins serialise");
        write_atomic(&state_dir.join(FILE), &bytes)?;
    }
    for column in &events.categorical {
        let categories = match frozen.features.get(&column.name) {
            Some(Bins::Categorical { categories }) => categories.clone(),
            _ => Vec::new(),
        };
        let index: HashMap<&str, usize> = categories.iter().enumerate().map(|(k, c)| (c.as_str(), k)).collect();
        let (mut rc, mut cc) = (vec![0u64; categories.len() + 1], vec![0u64; categories.len() + 1]);
        for (c, windows) in categorical_parts(parts, &column.name) {
            let slot: Vec<usize> =
                c.levels.iter().map(|l| index.get(l.as_str()).copied().unwrap_or(categories.len())).collect();
            windows.reference.pick(&c.codes).iter().for_each(|&code| rc[slot[code as usize]] += 1);
            windows.current.pick(&c.codes).iter().for_each(|&code| cc[slot[code as usize]] += 1);
        }
        let psi = psi(&rc, &cc);
        let js = js_distance(&rc, &cc);
        let mut bins = categories.clone();
        bins.push(OTHER.into());
        results.push(DriftResult {
            feature: column.name.clone(),
            kind: "categorical".into(),
            psi,
            ks: None,
            js: Some(js),
            psi_threshold: Some(p.psi_alarm),
            ks_threshold: None,
            js_threshold: Some(p.js_alarm),
            alarm: psi > p.psi_alarm || js > p.js_alarm,
            bins,
            reference_share: shares(&rc),
            current_share: shares(&cc),
        });
    }
    let alarms: Vec<&str> = results.iter().filter(|r| r.alarm).map(|r| r.feature.as_str()).collect();
    let share = alarms.len() as f64 / results.len().max(1) as f64;
    let check = check(
        "drift",
        None,
        share,
        p.max_drifted_share,
        share <= p.max_drifted_share,
        if alarms.is_empty() {
            format!(
                "no feature in alarm among {} ({} reference rows, {} current rows)",
                results.len(),
                reference_rows,
                current_rows
            )
        } else {
            format!("{} of {} features in alarm: {}", alarms.len(), results.len(), alarms.join(", "))
        },
    );
    Ok(DriftOutcome { results, stability: 1.0 - share, check })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psi_and_js_by_hand() {
        // ref shares (0.5, 0.5), cur (0.25, 0.75):
        // PSI = (0.25-0.5) ln(0.5) + (0.75-0.5) ln(1.5) = 0.25 (ln 2 + ln 1.5) = 0.27465307216702745
        assert!((psi(&[50, 50], &[25, 75]) - 0.274_653_072_167_027_45).abs() < 1e-12);
        assert_eq!(psi(&[10, 20], &[1, 2]), 0.0);
        // Disjoint distributions are at the maximum JS distance, identical ones at 0.
        assert!((js_distance(&[10, 0], &[0, 10]) - 1.0).abs() < 1e-12);
        assert_eq!(js_distance(&[3, 7], &[30, 70]), 0.0);
    }

    #[test]
    fn windows_are_runs_in_time_order_and_lists_out_of_it() {
        // Ten days, a row every twelve hours; the newest row anchors both windows.
        let policy = DriftPolicy {
            reference_days: 3,
            current_days: 2,
            psi_alarm: 0.2,
            ks_alarm: 0.1,
            js_alarm: 0.1,
            max_drifted_share: 0.3,
            bins: 10,
            max_categories: 20,
        };
        let ordered: Vec<i64> = (0..20).map(|k| k * DAY / 2).collect();
        let windows_of = |timestamps: Vec<i64>| {
            let events = LabelledEvents { labels: vec![false; timestamps.len()], timestamps, ..Default::default() };
            Windows::of(&events, &policy)
        };
        // The current window: after day 9.5 - 2 = 7.5 (rows 16-19); the reference: the 3 days
        // before (rows 10-15).
        let w = windows_of(ordered.clone());
        assert_eq!((w.reference, w.current), (Rows::Run(10..16), Rows::Run(16..20)));
        // The same rows out of order: the rows of each window, whether a run or a list.
        let mut shuffled = ordered.clone();
        shuffled.swap(0, 19);
        shuffled.swap(10, 16);
        let w = windows_of(shuffled.clone());
        let row_numbers: Vec<usize> = (0..20).collect();
        let rows_of =
            |within: &dyn Fn(i64) -> bool| -> Vec<usize> { (0..20).filter(|&i| within(shuffled[i])).collect() };
        let current_from = 19 * DAY / 2 - 2 * DAY;
        assert_eq!(w.current, Rows::Listed(vec![0, 10, 17, 18]));
        assert_eq!(w.current.pick(&row_numbers).to_vec(), rows_of(&|t| t > current_from));
        assert_eq!(w.reference, Rows::Run(11..17));
        assert_eq!(
            w.reference.pick(&row_numbers).to_vec(),
            rows_of(&|t| t <= current_from && t > current_from - 3 * DAY)
        );
        // No row in a window: an empty run.
        assert!(windows_of(vec![0]).reference.is_empty());
        assert!(windows_of(Vec::new()).current.is_empty());
    }
}
