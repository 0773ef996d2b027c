//! Earlier runs' estimates set against what came true once their labels arrived.
//!
//! A run with rows awaiting their label estimates its champion on them (`report.estimate`) and
//! keeps their event times (`awaiting_times.bin` in its report directory). Once
//! `dataset.label_delay` has passed since the newest of those rows, a later run finds the same
//! rows among its clean rows by their event times, now labelled, scores the same model version on
//! them and records the realised value beside the estimate (`report.realised_estimates`).

use caretaker_core::config::PipelineConfig;
use caretaker_core::events::LabelledEvents;
use caretaker_core::ids::ModelVersion;
use caretaker_core::report::{RealisedEstimate, RunReport};
use caretaker_evaluate::metrics::classification_metrics;
use caretaker_registry::Registry;
use caretaker_train::TrainedModel;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

/// How many of the pipeline's latest runs are searched for an estimate to realise.
pub(crate) const LOOKBACK_RUNS: usize = 90;
/// The event times of a run's rows awaiting their label, in its report directory: little-endian
/// microseconds since the epoch, ascending.
pub(crate) const AWAITING_TIMES: &str = "awaiting_times.bin";

/// Keeps the event times of the rows awaiting their label in `report_dir`, for the run that
/// realises their estimate.
pub(crate) fn keep_awaiting_times(report_dir: &Path, awaiting: &LabelledEvents) -> crate::Result<()> {
    let mut times = awaiting.timestamps.clone();
    times.sort_unstable();
    let bytes: Vec<u8> = times.iter().flat_map(|t| t.to_le_bytes()).collect();
    caretaker_core::fs::write_atomic(&report_dir.join(AWAITING_TIMES), &bytes).map_err(crate::Error::Fs)
}

fn read_awaiting_times(report_dir: &Path) -> Option<Vec<i64>> {
    let bytes = std::fs::read(report_dir.join(AWAITING_TIMES)).ok()?;
    (bytes.len() % 8 == 0).then(|| bytes.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect())
}

/// The estimates to realise now, for a run of `config` at `now` on its clean rows `events`.
/// Reads the run's `history`; a history it cannot read costs the run its realisations, not the
/// run.
pub(crate) fn realise(
    config: &PipelineConfig,
    history: &caretaker_history::History,
    registry: &Registry,
    events: &LabelledEvents,
    now: DateTime<Utc>,
) -> Vec<RealisedEstimate> {
    if config.dataset.label_delay.is_none() {
        return Vec::new();
    }
    let earlier = history.recent_reports(&config.name, None, LOOKBACK_RUNS).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "earlier estimates cannot be read: none is realised");
        Vec::new()
    });
    let delay = config.dataset.label_delay.unwrap_or_default();
    let delay = chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
    // Each version loaded once; `Err(None)`: it could not be read this time.
    let mut models: BTreeMap<ModelVersion, Result<TrainedModel, Option<String>>> = BTreeMap::new();
    let mut realised = Vec::new();
    for report in due(&earlier, now, delay) {
        let (Some(estimate), Some(champion)) = (&report.estimate, &report.champion) else { continue };
        let (Some(from), Some(to), Some(estimated)) = (estimate.from, estimate.to, estimate.champion_estimated) else {
            continue;
        };
        // The rows the estimate covered, by their event times; the window's rows when the
        // estimating run's times are gone (its report directory removed).
        let (rows, matched) = match read_awaiting_times(Path::new(&report.report_dir)) {
            Some(times) => (same_times(events, &times), true),
            None => (window(events, from, to), false),
        };
        if rows.is_empty() {
            // The rows are not among this run's clean rows (past the data's window, or
            // quarantined): a later run may find them.
            continue;
        }
        let rows = events.take(&rows);
        let model = models.entry(champion.version).or_insert_with(|| match registry.load(champion.version) {
            Ok((_, bytes)) => TrainedModel::from_bytes(&bytes).map_err(|e| Some(e.to_string())),
            // A version pruned from the registry can never be scored; a read that failed may
            // succeed on the next run.
            Err(_) if registry.versions().is_ok_and(|v| !v.contains(&champion.version)) => {
                Err(Some(format!("{} is no longer in the registry (registry.keep_last)", champion.version)))
            }
            Err(e) => {
                tracing::warn!(version = %champion.version, error = %e, "cannot load the version an estimate was of");
                Err(None)
            }
        });
        let model = match model {
            Ok(m) => Ok(&*m),
            Err(Some(reason)) => Err(reason.clone()),
            Err(None) => continue,
        };
        let window = rows;
        let scored = model.and_then(|m| {
            let p =
                m.predict_proba(&window).map_err(|e| format!("{} cannot score the window: {e}", champion.version))?;
            Ok(classification_metrics(&window.labels, &p, m.threshold))
        });
        let (value, note) = match scored {
            Ok(m) => match estimate.metric.value(&m) {
                Some(v) => (Some(v), None),
                None => (None, Some(format!("{} is undefined on the window's labels", estimate.metric))),
            },
            Err(reason) => (None, Some(reason)),
        };
        realised.push(RealisedEstimate {
            run_id: report.run_id.clone(),
            version: champion.version,
            from,
            to,
            metric: estimate.metric,
            estimate: estimated,
            estimated_rows: estimate.rows,
            labelled_rows: window.len() as u64,
            realised: value,
            within_band: value.map(|v| estimated.low <= v && v <= estimated.high),
            note: note.or_else(|| {
                (!matched).then(|| {
                    format!("{AWAITING_TIMES} of run {} is gone: scored on every row of its window", report.run_id)
                })
            }),
        });
    }
    realised
}

/// The runs among `earlier` whose estimate of their champion is due by `now` (the newest row it
/// covered is older than the label delay) and not yet realised by a run among them.
fn due(earlier: &[RunReport], now: DateTime<Utc>, delay: chrono::Duration) -> Vec<&RunReport> {
    let done: HashSet<&str> = earlier.iter().flat_map(|r| &r.realised_estimates).map(|e| e.run_id.as_str()).collect();
    earlier
        .iter()
        .filter(|r| !done.contains(r.run_id.as_str()))
        .filter(|r| {
            r.estimate.as_ref().is_some_and(|e| {
                e.champion_estimated.is_some()
                    && e.to.is_some_and(|to| to.checked_add_signed(delay).is_some_and(|t| t <= now))
            })
        })
        .collect()
}

/// The rows of `events` whose event time is within `[from, to]`.
fn window(events: &LabelledEvents, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<usize> {
    let (from, to) = (from.timestamp_micros(), to.timestamp_micros());
    (0..events.len()).filter(|&i| (from..=to).contains(&events.timestamps[i])).collect()
}

/// The rows of `events` with the event times `times` (ascending), each time taken as many times
/// as it is listed: the rows an estimate covered, and not the rows of its window that had their
/// label already (and may have been trained on).
fn same_times(events: &LabelledEvents, times: &[i64]) -> Vec<usize> {
    let (Some(&first), Some(&last)) = (times.first(), times.last()) else { return Vec::new() };
    let mut left: HashMap<i64, u32> = HashMap::new();
    for &t in times {
        *left.entry(t).or_default() += 1;
    }
    (0..events.len())
        .filter(|&i| {
            let t = events.timestamps[i];
            (first..=last).contains(&t)
                && left.get_mut(&t).is_some_and(|n| {
                    let take = *n > 0;
                    *n = n.saturating_sub(1);
                    take
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use caretaker_core::metrics::Metric;
    use caretaker_core::report::{ChampionReport, EstimateReport, EstimatedValue};

    fn at(hour: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + hour * 3600, 0).unwrap()
    }

    /// A run at `hour` that estimated champion v0001 on rows from `hour - 6` to `hour`.
    fn estimating(hour: i64) -> RunReport {
        let mut report: RunReport = serde_json::from_value(serde_json::json!({
            "schema_version": 1, "run_id": format!("run-{hour:03}"), "pipeline": "p", "config_path": "p.toml",
            "config_hash": "h", "started_at": at(hour), "finished_at": at(hour), "status": "succeeded",
            "message": null, "data": null, "quality": null, "split": null, "candidates": [], "champion": null,
            "gate": {"decision": "skipped", "candidate": null, "deployed_version": null, "reasons": [], "rules": []},
            "patterns": null, "stages": [], "report_dir": "r"
        }))
        .expect("a minimal report");
        let value = EstimatedValue { value: 0.8, low: 0.7, high: 0.9 };
        report.champion = Some(ChampionReport {
            version: "v0001".parse().unwrap(),
            name: "forest".into(),
            family: "random_forest".into(),
            metrics: None,
            curves: None,
            error: None,
            trained_on_hash: None,
            estimated: None,
        });
        report.estimate = Some(EstimateReport {
            rows: 10,
            from: Some(at(hour - 6)),
            to: Some(at(hour)),
            metric: Metric::F1,
            champion_realised: None,
            champion_holdout_estimate: None,
            champion_estimated: Some(value),
            drop: None,
            alarm_threshold: 0.05,
            alarm: false,
            note: None,
        });
        report
    }

    fn ids<'a>(reports: &[&'a RunReport]) -> Vec<&'a str> {
        reports.iter().map(|r| r.run_id.as_str()).collect()
    }

    #[test]
    fn an_estimate_is_due_once_its_newest_row_is_older_than_the_delay_and_realised_once() {
        let runs = [estimating(0), estimating(24), estimating(48)];
        let day = chrono::Duration::hours(24);
        assert_eq!(ids(&due(&runs, at(47), day)), ["run-000"], "the run at 24 h is due at 48 h");
        assert_eq!(ids(&due(&runs, at(72), day)), ["run-000", "run-024", "run-048"]);
        // A run that realised the first estimate leaves the others due.
        let mut later = estimating(60);
        later.estimate = None;
        let estimate = runs[0].estimate.as_ref().unwrap();
        later.realised_estimates.push(RealisedEstimate {
            run_id: runs[0].run_id.clone(),
            version: "v0001".parse().unwrap(),
            from: estimate.from.unwrap(),
            to: estimate.to.unwrap(),
            metric: Metric::F1,
            estimate: estimate.champion_estimated.unwrap(),
            estimated_rows: 10,
            labelled_rows: 10,
            realised: Some(0.75),
            within_band: Some(true),
            note: None,
        });
        let runs = [runs[0].clone(), runs[1].clone(), runs[2].clone(), later];
        assert_eq!(ids(&due(&runs, at(72), day)), ["run-024", "run-048"]);
        // A run without an estimate of its champion has nothing to realise.
        let mut unscored = estimating(10);
        unscored.estimate.as_mut().unwrap().champion_estimated = None;
        assert!(due(&[unscored], at(100), day).is_empty());
    }

    #[test]
    fn the_window_is_the_rows_whose_event_time_is_within_the_estimates_span() {
        let micros = |h: i64| at(h).timestamp_micros();
        let events = LabelledEvents {
            timestamps: vec![micros(-7), micros(-6), micros(-3), micros(0), micros(1)],
            labels: vec![true, false, true, false, true],
            numeric: vec![caretaker_core::events::NumericColumn { name: "x".into(), values: vec![1., 2., 3., 4., 5.] }],
            categorical: Vec::new(),
        };
        assert_eq!(window(&events, at(-6), at(0)), [1, 2, 3], "both ends belong to the window");
        // By event time: the row at -3 twice listed is taken once (there is one), the row at -6
        // not at all (it had its label when the estimate was made).
        let times = [micros(-3), micros(-3), micros(0)];
        assert_eq!(same_times(&events, &times), [2, 3]);
        assert!(same_times(&events, &[]).is_empty());
    }

    #[test]
    fn the_awaiting_times_are_kept_and_read_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let awaiting =
            LabelledEvents { timestamps: vec![30, -5, 10, 10], labels: vec![false; 4], ..Default::default() };
        keep_awaiting_times(dir.path(), &awaiting).unwrap();
        assert_eq!(read_awaiting_times(dir.path()), Some(vec![-5, 10, 10, 30]));
        assert_eq!(read_awaiting_times(&dir.path().join("gone")), None);
    }
}
