//! Drift of every feature between a reference window and the current window, on the clean rows.
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

/// Row indices of the two windows (ascending), anchored at the newest clean event.
pub struct Windows {
    pub reference: Vec<usize>,
    pub current: Vec<usize>,
}

impl Windows {
    pub fn of(events: &LabelledEvents, policy: &DriftPolicy) -> Windows {
        let Some(&newest) = events.timestamps.iter().max() else {
            return Windows { reference: Vec::new(), current: Vec::new() };
        };
        let current_from = newest - policy.current_days as i64 * DAY;
        let reference_from = current_from - policy.reference_days as i64 * DAY;
        let (mut reference, mut current) = (Vec::new(), Vec::new());
        for (i, &t) in events.timestamps.iter().enumerate() {
            if t > current_from {
                current.push(i);
            } else if t > reference_from {
                reference.push(i);
            }
        }
        Windows { reference, current }
    }
}

/// The values of the rows `rows` (ascending): borrowed when the rows are consecutive, as they are
/// in data stored in time order.
fn pick<'a>(rows: &[usize], values: &'a [f64]) -> std::borrow::Cow<'a, [f64]> {
    match (rows.first(), rows.last()) {
        (Some(&first), Some(&last)) if last - first + 1 == rows.len() => values[first..=last].into(),
        _ => rows.iter().map(|&i| values[i]).collect::<Vec<f64>>().into(),
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

/// Measures every feature; freezes bins for the features that have none yet.
pub fn measure(
    events: &LabelledEvents,
    windows: &Windows,
    policy: &QualityPolicy,
    spec: &DatasetSpec,
    state_dir: &Path,
) -> Result<DriftOutcome, caretaker_data::Error> {
    let p = &policy.drift;
    if windows.reference.is_empty() || windows.current.is_empty() {
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
                    windows.reference.len(),
                    p.reference_days,
                    p.current_days,
                    windows.current.len()
                ),
            ),
        });
    }
    let mut frozen = FrozenBins::load(state_dir)?;
    let mut changed = false;

    // Freeze what is missing, from this reference window (numeric features in their threads
    // below).
    for column in &events.categorical {
        if !matches!(frozen.features.get(&column.name), Some(Bins::Categorical { .. })) {
            let mut counts = vec![0u64; column.levels.len()];
            for &i in &windows.reference {
                counts[column.codes[i] as usize] += 1;
            }
            let mut order: Vec<usize> = (0..counts.len()).filter(|&k| counts[k] > 0).collect();
            order.sort_by(|&a, &b| counts[b].cmp(&counts[a]).then_with(|| column.levels[a].cmp(&column.levels[b])));
            order.truncate(p.max_categories);
            let categories = order.iter().map(|&k| column.levels[k].clone()).collect();
            frozen.features.insert(column.name.clone(), Bins::Categorical { categories });
            changed = true;
        }
    }
    // Numeric features: one thread per feature at a time. A feature without bins (`None`) freezes
    // them from its reference window.
    let qs: Vec<f64> = (1..p.bins).map(|k| k as f64 / p.bins as f64).collect();
    let measured: Vec<(DriftResult, Option<Vec<f64>>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = events
            .numeric
            .iter()
            .map(|column| {
                let edges = match frozen.features.get(&column.name) {
                    Some(Bins::Numeric { edges }) => Some(edges.clone()),
                    _ if spec.numeric.contains(&column.name) => None,
                    _ => Some(Vec::new()),
                };
                let qs = &qs;
                scope.spawn(move || {
                    let (reference, current) =
                        (pick(&windows.reference, &column.values), pick(&windows.current, &column.values));
                    let fresh = edges.is_none();
                    let edges = edges.unwrap_or_else(|| {
                        let mut edges = quantiles(&reference, qs);
                        edges.dedup();
                        edges
                    });
                    let ks::Measured { ks, reference_counts: rc, current_counts: cc } =
                        ks::measure(&reference, &current, &edges);
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
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a drift thread does not panic")).collect()
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
        let slot: Vec<usize> =
            column.levels.iter().map(|l| index.get(l.as_str()).copied().unwrap_or(categories.len())).collect();
        let (mut rc, mut cc) = (vec![0u64; categories.len() + 1], vec![0u64; categories.len() + 1]);
        windows.reference.iter().for_each(|&i| rc[slot[column.codes[i] as usize]] += 1);
        windows.current.iter().for_each(|&i| cc[slot[column.codes[i] as usize]] += 1);
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
                windows.reference.len(),
                windows.current.len()
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
}
