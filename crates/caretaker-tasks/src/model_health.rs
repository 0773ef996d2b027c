//! `model_health`: the intelligence health score, 0 to 10, from five components read from the
//! pipeline's run history, with every component's points shown.
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
//! grade: healthy above 7, degraded above 5, unhealthy otherwise (a `Failed` outcome);
//! maintenance is required below 8.
//!
//! The serving model after a run is the candidate it deployed, or else the champion it
//! re-scored. Its latency is that of the candidate of the same name in the newest run that
//! trained one (the champion itself is scored in a batch with no separate timing).

use crate::health::Health;
use crate::params::{self, positive, problem, resolve};
use crate::pipeline_state::{self, mean};
use crate::redact;
use caretaker_core::config::ConfigProblem;
use caretaker_core::metrics::Metric;
use caretaker_core::report::{GateOutcome, RunReport};
use caretaker_core::task::{BoxFuture, Task, TaskContext, TaskError, TaskOutcome, TaskStatus};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Below this score maintenance is required.
pub const MAINTENANCE_BELOW: f64 = 8.0;
/// Above this score the intelligence is healthy.
pub const HEALTHY_ABOVE: f64 = 7.0;
/// Above this score (and not above [`HEALTHY_ABOVE`]) it is degraded; otherwise unhealthy.
pub const DEGRADED_ABOVE: f64 = 5.0;

/// Parameters of `model_health`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelHealthConfig {
    /// The pipeline file, relative to the catalog's root.
    pub pipeline: PathBuf,
    /// How many of the newest runs the trends look at. Default 7.
    #[serde(default = "default_window")]
    pub window: usize,
    /// The performance metric (higher is better): accuracy, precision, recall, f1, roc_auc or
    /// pr_auc. Default f1.
    #[serde(default = "default_metric")]
    pub metric: String,
    /// The metric value that earns full points. Default 0.7.
    #[serde(default = "default_metric_target")]
    pub metric_target: f64,
    /// Prediction time per row, in microseconds, that earns full points. Default 100.
    #[serde(default = "default_latency_budget")]
    pub latency_budget_micros: f64,
    /// Age of the newest event, in hours, that still earns full points. Default 48.
    #[serde(default = "default_max_data_age")]
    pub max_data_age_hours: f64,
}

fn default_window() -> usize {
    7
}
fn default_metric() -> String {
    "f1".into()
}
fn default_metric_target() -> f64 {
    0.7
}
fn default_latency_budget() -> f64 {
    100.0
}
fn default_max_data_age() -> f64 {
    48.0
}

pub struct ModelHealth {
    pipeline: PathBuf,
    window: usize,
    metric: Metric,
    metric_target: f64,
    latency_budget_micros: f64,
    max_data_age_hours: f64,
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

impl ModelHealth {
    pub fn build(params: &toml::Table, root: &Path) -> Result<ModelHealth, ConfigProblem> {
        let config: ModelHealthConfig = params::parse(params)?;
        let metric = Metric::from_name(&config.metric).filter(|m| m.higher_is_better()).ok_or_else(|| {
            problem(
                "metric",
                format!("{:?} is not one of accuracy, precision, recall, f1, roc_auc, pr_auc", config.metric),
            )
        })?;
        if config.window < 1 {
            return Err(problem("window", "must be at least 1 run"));
        }
        if !(config.metric_target > 0.0 && config.metric_target <= 1.0) {
            return Err(problem("metric_target", format!("must be in (0, 1], got {}", config.metric_target)));
        }
        Ok(ModelHealth {
            pipeline: resolve(root, &config.pipeline),
            window: config.window,
            metric,
            metric_target: config.metric_target,
            latency_budget_micros: positive("latency_budget_micros", config.latency_budget_micros)?,
            max_data_age_hours: positive("max_data_age_hours", config.max_data_age_hours)?,
        })
    }

    /// How many of the newest runs the score reads.
    pub fn window(&self) -> usize {
        self.window
    }

    /// The score of `runs` (newest first) at `now`; `has_patterns` says whether the pipeline
    /// keeps a pattern store.
    pub fn score(&self, runs: &[RunReport], has_patterns: bool, now: DateTime<Utc>) -> HealthScore {
        let mut components =
            vec![self.quality(runs), self.performance(runs), self.latency(runs), self.freshness(runs, now)];
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

    fn quality(&self, runs: &[RunReport]) -> Component {
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

    fn performance(&self, runs: &[RunReport]) -> Component {
        let values: Vec<f64> =
            runs.iter().filter_map(|r| serving_metrics(r).and_then(|m| self.metric.value(m))).collect();
        let Some((&m, earlier)) = values.split_first() else {
            return Component::missing(
                "model performance",
                2.5,
                &format!("no run in the window scored a serving model's {}", self.metric),
            );
        };
        let drop = mean(earlier).filter(|p| *p > 0.0).map(|p| ((p - m) / p).max(0.0)).unwrap_or(0.0);
        let reach = (m / self.metric_target).min(1.0);
        Component {
            name: "model performance",
            points: 2.5 * (reach - drop).clamp(0.0, 1.0),
            max_points: 2.5,
            measured: Some(m),
            detail: format!(
                "serving model's {} {m:.4} against the target {}, {:.1}% below the earlier runs' mean",
                self.metric,
                self.metric_target,
                drop * 100.0
            ),
        }
    }

    fn latency(&self, runs: &[RunReport]) -> Component {
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
        let b = self.latency_budget_micros;
        Component {
            name: "prediction latency",
            points: 2.0 * if l <= b { 1.0 } else { b / l },
            max_points: 2.0,
            measured: Some(l),
            detail: format!("{l:.2} µs per row against a budget of {b} µs"),
        }
    }

    fn freshness(&self, runs: &[RunReport], now: DateTime<Utc>) -> Component {
        let Some(newest) = runs.first().and_then(|r| r.data.as_ref()).and_then(|d| d.newest_event) else {
            return Component::missing("data freshness", 2.0, "the newest run recorded no event time");
        };
        let age = (now - newest).num_seconds() as f64 / 3600.0;
        let h = self.max_data_age_hours;
        Component {
            name: "data freshness",
            points: 2.0 * ((3.0 * h - age) / (2.0 * h)).clamp(0.0, 1.0),
            max_points: 2.0,
            measured: Some(age),
            detail: format!("newest event {age:.1} h old, full points up to {h} h, none from {} h", 3.0 * h),
        }
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

fn serving_metrics(r: &RunReport) -> Option<&caretaker_core::metrics::ClassificationMetrics> {
    if r.gate.decision == GateOutcome::Deployed {
        let name = r.gate.candidate.as_deref()?;
        r.candidates.iter().find(|c| c.name == name)?.metrics.as_ref()
    } else {
        r.champion.as_ref()?.metrics.as_ref()
    }
}

fn metric_key(name: &str) -> String {
    name.replace(' ', "_")
}

impl Task for ModelHealth {
    fn kind(&self) -> &'static str {
        "model_health"
    }

    fn metric_names(&self) -> Vec<String> {
        [
            "health_score",
            "health",
            "maintenance_required",
            "runs",
            "data_quality_points",
            "model_performance_points",
            "prediction_latency_points",
            "data_freshness_points",
            "pattern_store_points",
        ]
        .map(String::from)
        .to_vec()
    }

    fn run<'a>(&'a self, ctx: &'a TaskContext) -> BoxFuture<'a, Result<TaskOutcome, TaskError>> {
        Box::pin(async move {
            let pipeline = self.pipeline.clone();
            let window = self.window;
            let state =
                match crate::blocking("reading the pipeline's state", move || pipeline_state::read(&pipeline, window))
                    .await
                {
                    Ok(Ok(state)) => state,
                    Ok(Err(e)) | Err(e) => return Ok(TaskOutcome::failed(redact::redact(&e))),
                };
            let score = self.score(&state.runs, state.config.patterns.is_some(), ctx.started_at);
            let mut outcome = TaskOutcome {
                status: if score.health == Health::Unhealthy { TaskStatus::Failed } else { TaskStatus::Succeeded },
                summary: format!(
                    "intelligence health {:.1}/10, {}{}: {}",
                    score.score,
                    score.health.name(),
                    if score.maintenance_required { ", maintenance required" } else { "" },
                    score
                        .components
                        .iter()
                        .map(|c| format!("{} {:.2}/{:.2}", c.name, c.points, c.max_points))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                metrics: Default::default(),
                details: serde_json::to_value(&score).expect("a score serialises"),
            };
            outcome.metrics.insert("health_score".into(), score.score);
            outcome.metrics.insert("health".into(), score.health.metric());
            outcome.metrics.insert("maintenance_required".into(), f64::from(u8::from(score.maintenance_required)));
            outcome.metrics.insert("runs".into(), state.runs.len() as f64);
            for c in &score.components {
                outcome.metrics.insert(format!("{}_points", metric_key(c.name)), c.points);
            }
            Ok(outcome)
        })
    }
}

#[cfg(test)]
mod tests;
