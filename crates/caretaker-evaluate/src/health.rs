//! The model health score: 0 to 10, from five components read from the pipeline's run history,
//! with every component's points shown.
//!
//! | component | points | from |
//! |---|---|---|
//! | data quality | 2.5 | the newest quality score `s`, less its drop below the mean `p` of the earlier runs in the window: `2.5 * clamp(s - max(0, p - s), 0, 1)` |
//! | model performance | 2.5 | the serving model's `metric` `m` against `metric_target` `t`, less its relative drop below the earlier runs' mean `p`: `2.5 * clamp(min(1, m / t) - max(0, (p - m) / p), 0, 1)` |
//! | prediction latency | 2.0 | per-row prediction time `l` against `latency_budget_micros` `b`: `2.0 * min(1, b / l)` |
//! | data freshness | 2.0 | age `a` of the newest event against `max_data_age_hours` `h`: `2.0 * clamp((3h - a) / 2h, 0, 1)` (full up to `h`, none from `3h`) |
//! | pattern store | 1.0 | 1 when the newest run cleaned a non-empty store, 0.5 when the store is empty, 0 when the newest run did not reach it |
//!
//! A component without data scores 0 and says so (a missing measurement is never a pass). A
//! pipeline with no pattern store has four components: their points are scaled by 10/9. The
//! grade: healthy above 7, degraded above 5, unhealthy otherwise; maintenance is required below 8.
//!
//! The serving model after a run is the candidate it deployed, or else the champion it
//! re-scored. Its latency is that of the candidate of the same name in the newest run that
//! trained one (the champion itself is scored in a batch with no separate timing).
//!
//! [`score`] is a pure function of the runs, the [`HealthPolicy`] and the time: no files, no
//! clock, no runtime. The `model_health` task kind (caretaker-tasks) reads the history and calls
//! it on a schedule; `caretaker models reset` (caretaker-pipeline) calls it with the default
//! policy right after its deploy, without linking the task kinds' database clients.
//!
//! ```
//! use caretaker_core::health::Health;
//! use caretaker_evaluate::health::{self, HealthPolicy};
//! // No run in the history: every component is missing, and a missing measurement is no pass.
//! let score = health::score(&HealthPolicy::default(), &[], true, chrono::Utc::now());
//! assert_eq!(score.score, 0.0);
//! assert_eq!(score.health, Health::Unhealthy);
//! assert_eq!(score.components.len(), 5);
//! ```

use caretaker_core::health::Health;
use caretaker_core::metrics::{ClassificationMetrics, Metric};
use caretaker_core::report::{GateOutcome, RunReport};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// Below this score maintenance is required.
pub const MAINTENANCE_BELOW: f64 = 8.0;
/// Above this score the intelligence is healthy.
pub const HEALTHY_ABOVE: f64 = 7.0;
/// Above this score (and not above [`HEALTHY_ABOVE`]) it is degraded; otherwise unhealthy.
pub const DEGRADED_ABOVE: f64 = 5.0;

/// What the score measures against: the `model_health` task's parameters (less the pipeline),
/// already checked. The defaults are the task's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthPolicy {
    /// How many of the newest runs the trends look at: the caller passes at most this many.
    /// Default 7.
    pub window: usize,
    /// The performance metric (one where higher is better). Default f1.
    pub metric: Metric,
    /// The metric value that earns full points, in (0, 1]. Default 0.7.
    pub metric_target: f64,
    /// Prediction time per row, in microseconds, that earns full points. Default 100.
    pub latency_budget_micros: f64,
    /// Age of the newest event, in hours, that still earns full points. Default 48.
    pub max_data_age_hours: f64,
}

impl Default for HealthPolicy {
    fn default() -> HealthPolicy {
        HealthPolicy {
            window: 7,
            metric: Metric::F1,
            metric_target: 0.7,
            latency_budget_micros: 100.0,
            max_data_age_hours: 48.0,
        }
    }
}

/// One component's contribution.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Component {
    pub name: &'static str,
    /// Points earned, after scaling.
    pub points: f64,
    /// The most this component can earn, after scaling.
    pub max_points: f64,
    /// The measured value the points come from, when there was one.
    pub measured: Option<f64>,
    pub detail: String,
}

/// The score and how it was reached.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthScore {
    pub score: f64,
    pub health: Health,
    pub maintenance_required: bool,
    pub components: Vec<Component>,
}

/// The score of `runs` (newest first, at most `policy.window` of them) at `now`; `has_patterns`
/// says whether the pipeline keeps a pattern store.
pub fn score(policy: &HealthPolicy, runs: &[RunReport], has_patterns: bool, now: DateTime<Utc>) -> HealthScore {
    let mut components =
        vec![quality(runs), performance(policy, runs), latency(policy, runs), freshness(policy, runs, now)];
    if has_patterns {
        components.push(patterns(runs));
    }
    let available: f64 = components.iter().map(|c| c.max_points).sum();
    let scale = 10.0 / available;
    for c in &mut components {
        c.points *= scale;
        c.max_points *= scale;
    }
    let score = components.iter().map(|c| c.points).sum::<f64>();
    let health = if score > HEALTHY_ABOVE {
        Health::Healthy
    } else if score > DEGRADED_ABOVE {
        Health::Degraded
    } else {
        Health::Unhealthy
    };
    HealthScore { score, health, maintenance_required: score < MAINTENANCE_BELOW, components }
}

fn quality(runs: &[RunReport]) -> Component {
    let scores: Vec<f64> = runs.iter().filter_map(|r| r.quality.as_ref().map(|q| q.score)).collect();
    let Some((&s, earlier)) = scores.split_first() else {
        return Component::missing("data quality", 2.5, "no run in the window has a quality score");
    };
    let drop = mean(earlier).map(|p| (p - s).max(0.0)).unwrap_or(0.0);
    Component {
        name: "data quality",
        points: 2.5 * (s - drop).clamp(0.0, 1.0),
        max_points: 2.5,
        measured: Some(s),
        detail: format!("newest quality score {s:.3}, {drop:.3} below the earlier runs' mean"),
    }
}

fn performance(policy: &HealthPolicy, runs: &[RunReport]) -> Component {
    let values: Vec<f64> =
        runs.iter().filter_map(|r| serving_metrics(r).and_then(|m| policy.metric.value(m))).collect();
    let Some((&m, earlier)) = values.split_first() else {
        return Component::missing(
            "model performance",
            2.5,
            &format!("no run in the window scored a serving model's {}", policy.metric),
        );
    };
    let drop = mean(earlier).filter(|p| *p > 0.0).map(|p| ((p - m) / p).max(0.0)).unwrap_or(0.0);
    let reach = (m / policy.metric_target).min(1.0);
    Component {
        name: "model performance",
        points: 2.5 * (reach - drop).clamp(0.0, 1.0),
        max_points: 2.5,
        measured: Some(m),
        detail: format!(
            "serving model's {} {m:.4} against the target {}, {:.1}% below the earlier runs' mean",
            policy.metric,
            policy.metric_target,
            drop * 100.0
        ),
    }
}

fn latency(policy: &HealthPolicy, runs: &[RunReport]) -> Component {
    let latency = runs.iter().find_map(|r| {
        let name = serving_name(r)?;
        r.candidates.iter().find(|c| c.name == name).and_then(|c| c.predict_micros_per_row)
    });
    let Some(l) = latency else {
        return Component::missing(
            "prediction latency",
            2.0,
            "no run in the window timed the serving model's predictions",
        );
    };
    let b = policy.latency_budget_micros;
    Component {
        name: "prediction latency",
        points: 2.0 * if l <= b { 1.0 } else { b / l },
        max_points: 2.0,
        measured: Some(l),
        detail: format!("{l:.2} µs per row against a budget of {b} µs"),
    }
}

fn freshness(policy: &HealthPolicy, runs: &[RunReport], now: DateTime<Utc>) -> Component {
    let Some(newest) = runs.first().and_then(|r| r.data.as_ref()).and_then(|d| d.newest_event) else {
        return Component::missing("data freshness", 2.0, "the newest run recorded no event time");
    };
    let age = (now - newest).num_seconds() as f64 / 3600.0;
    let h = policy.max_data_age_hours;
    Component {
        name: "data freshness",
        points: 2.0 * ((3.0 * h - age) / (2.0 * h)).clamp(0.0, 1.0),
        max_points: 2.0,
        measured: Some(age),
        detail: format!("newest event {age:.1} h old, full points up to {h} h, none from {} h", 3.0 * h),
    }
}

fn patterns(runs: &[RunReport]) -> Component {
    let Some(p) = runs.first().and_then(|r| r.patterns.as_ref()) else {
        return Component::missing("pattern store", 1.0, "the newest run did not clean the pattern store");
    };
    let (points, detail) = if p.kept > 0 {
        (1.0, format!("the newest run kept {} of {} patterns", p.kept, p.before))
    } else {
        (0.5, "the pattern store is empty after the newest run's cleanup".to_string())
    };
    Component { name: "pattern store", points, max_points: 1.0, measured: Some(p.kept as f64), detail }
}

impl Component {
    fn missing(name: &'static str, max_points: f64, detail: &str) -> Component {
        Component { name, points: 0.0, max_points, measured: None, detail: detail.to_string() }
    }
}

/// The name of the model that served after run `r`: the candidate it deployed, or the champion.
fn serving_name(r: &RunReport) -> Option<&str> {
    if r.gate.decision == GateOutcome::Deployed {
        r.gate.candidate.as_deref()
    } else {
        r.champion.as_ref().map(|c| c.name.as_str())
    }
}

fn serving_metrics(r: &RunReport) -> Option<&ClassificationMetrics> {
    if r.gate.decision == GateOutcome::Deployed {
        let name = r.gate.candidate.as_deref()?;
        r.candidates.iter().find(|c| c.name == name)?.metrics.as_ref()
    } else {
        r.champion.as_ref()?.metrics.as_ref()
    }
}

/// The mean of `values`, `None` when empty.
fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use caretaker_test_support::run_report;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(caretaker_test_support::TEST_NOW).unwrap().with_timezone(&Utc)
    }

    fn component<'a>(score: &'a HealthScore, name: &str) -> &'a Component {
        score.components.iter().find(|c| c.name == name).unwrap()
    }

    #[test]
    fn a_steady_fast_fresh_pipeline_scores_full_marks() {
        let runs = vec![
            run_report("20261128T010000Z-0002", "2026-11-28T01:00:00Z", 1.0, 0.8, 20.0),
            run_report("20261127T010000Z-0001", "2026-11-27T01:00:00Z", 1.0, 0.8, 20.0),
        ];
        let score = super::score(&HealthPolicy::default(), &runs, true, now());
        assert!((score.score - 10.0).abs() < 1e-9, "{score:?}");
        assert_eq!(score.health, Health::Healthy);
        assert!(!score.maintenance_required);
        assert_eq!(score.components.len(), 5);
    }

    #[test]
    fn each_component_follows_its_formula() {
        // Quality 0.90 after a mean of 0.98: 2.5 * (0.90 - 0.08) = 2.05.
        // F1 0.63 after 0.70, target 0.7: 2.5 * (0.9 - 0.1) = 2.0.
        // 200 µs per row against 100: 2.0 * 0.5 = 1.0.
        // Newest event 1 h old: 2.0. Patterns kept: 1.0.
        let runs = vec![
            run_report("20261128T010000Z-0002", "2026-11-28T02:00:00Z", 0.90, 0.63, 200.0),
            run_report("20261127T010000Z-0001", "2026-11-27T02:00:00Z", 0.98, 0.70, 200.0),
        ];
        let score = super::score(&HealthPolicy::default(), &runs, true, now());
        let points = |name| component(&score, name).points;
        assert!((points("data quality") - 2.05).abs() < 1e-9, "{score:?}");
        assert!((points("model performance") - 2.0).abs() < 1e-9, "{score:?}");
        assert!((points("prediction latency") - 1.0).abs() < 1e-9);
        assert!((points("data freshness") - 2.0).abs() < 1e-9);
        assert!((points("pattern store") - 1.0).abs() < 1e-9);
        assert!((score.score - 8.05).abs() < 1e-9);
        assert_eq!(score.health, Health::Healthy);
        assert!(!score.maintenance_required);
    }

    #[test]
    fn grades_and_the_maintenance_threshold() {
        // Stale data (newest event 73 h old with a 24 h budget: (72 - 73) / 48 < 0, so 0 points) and a
        // slow model: 2.5 + 2.5 * (0.7/0.7) + 2.0 * 100/400 + 0 + 1 = 6.5: degraded, maintenance required.
        let policy = HealthPolicy { max_data_age_hours: 24.0, ..HealthPolicy::default() };
        let mut r = run_report("20261125T020000Z-0001", "2026-11-25T02:00:00Z", 1.0, 0.7, 400.0);
        r.data.as_mut().unwrap().newest_event = Some(now() - chrono::Duration::hours(73));
        let score = super::score(&policy, &[r.clone()], true, now());
        assert!((score.score - 6.5).abs() < 1e-9, "{score:?}");
        assert_eq!(score.health, Health::Degraded);
        assert!(score.maintenance_required);

        // And no quality score, no metrics: unhealthy, and each missing part says so.
        r.quality = None;
        r.candidates.clear();
        let score = super::score(&policy, &[r], true, now());
        assert_eq!(score.health, Health::Unhealthy, "{score:?}");
        assert!(component(&score, "data quality").detail.contains("no run in the window has a quality score"));
        assert_eq!(component(&score, "model performance").measured, None);
    }

    #[test]
    fn without_a_pattern_store_four_components_share_ten_points() {
        let runs = vec![run_report("20261128T010000Z-0001", "2026-11-28T01:00:00Z", 1.0, 0.7, 10.0)];
        let score = super::score(&HealthPolicy::default(), &runs, false, now());
        assert_eq!(score.components.len(), 4);
        assert!((score.score - 10.0).abs() < 1e-9);
        assert!((component(&score, "data quality").max_points - 2.5 * 10.0 / 9.0).abs() < 1e-9);
        // With a store that the newest run did not clean: that point is lost.
        let mut r = runs[0].clone();
        r.patterns = None;
        let score = super::score(&HealthPolicy::default(), &[r], true, now());
        assert!((score.score - 9.0).abs() < 1e-9);
    }
}
