//! Earlier runs' estimates set against what came true once their labels arrived.
//!
//! A run with rows awaiting their label estimates its champion on them (`report.estimate`). Once
//! `dataset.label_delay` has passed since the newest of those rows, a later run finds the same
//! window of event times in its clean rows, now labelled, scores the same model version on them
//! and records the realised value beside the estimate (`report.realised_estimates`).

use crate::run::history_path;
use caretaker_core::config::PipelineConfig;
use caretaker_core::events::LabelledEvents;
use caretaker_core::ids::ModelVersion;
use caretaker_core::report::{RealisedEstimate, RunReport};
use caretaker_evaluate::metrics::classification_metrics;
use caretaker_registry::Registry;
use caretaker_train::TrainedModel;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashSet};

/// How many of the pipeline's latest runs are searched for an estimate to realise.
pub(crate) const LOOKBACK_RUNS: usize = 90;

/// The estimates to realise now, for a run of `config` at `now` on its clean rows `events`.
/// Reads the history; a history it cannot read costs the run its realisations, not the run.
pub(crate) fn realise(
    config: &PipelineConfig,
    registry: &Registry,
    events: &LabelledEvents,
    now: DateTime<Utc>,
) -> Vec<RealisedEstimate> {
    let earlier = caretaker_history::History::open(&history_path(config))
        .and_then(|h| h.recent_reports(&config.name, None, LOOKBACK_RUNS))
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "earlier estimates cannot be read: none is realised");
            Vec::new()
        });
    let delay = config.dataset.label_delay.unwrap_or_default();
    let delay = chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
    let mut models: BTreeMap<ModelVersion, Result<TrainedModel, String>> = BTreeMap::new();
    let mut realised = Vec::new();
    for report in due(&earlier, now, delay) {
        let (Some(estimate), Some(champion)) = (&report.estimate, &report.champion) else { continue };
        let (Some(from), Some(to), Some(estimated)) = (estimate.from, estimate.to, estimate.champion_estimated) else {
            continue;
        };
        let window = window(events, from, to);
        if window.is_empty() {
            // The window's rows are not among this run's clean rows (past the data's window, or
            // quarantined): a later run may find them.
            continue;
        }
        let model = models.entry(champion.version).or_insert_with(|| {
            registry
                .load(champion.version)
                .map_err(|e| format!("{} cannot be loaded: {e}", champion.version))
                .and_then(|(_, bytes)| TrainedModel::from_bytes(&bytes).map_err(|e| e.to_string()))
        });
        let scored = model.as_ref().map_err(Clone::clone).and_then(|m| {
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
            note,
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
fn window(events: &LabelledEvents, from: DateTime<Utc>, to: DateTime<Utc>) -> LabelledEvents {
    let (from, to) = (from.timestamp_micros(), to.timestamp_micros());
    let rows: Vec<usize> = (0..events.len()).filter(|&i| (from..=to).contains(&events.timestamps[i])).collect();
    events.take(&rows)
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
        let w = window(&events, at(-6), at(0));
        assert_eq!(w.numeric[0].values, [2., 3., 4.], "both ends belong to the window");
        assert_eq!(w.labels, [false, true, false]);
    }
}
