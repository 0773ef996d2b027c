//! `model_health`: the intelligence health score, 0 to 10, of a pipeline's newest runs, as a
//! task kind. The score itself (its five components, their formulas and the grades) is
//! [`caretaker_evaluate::health`]; this module builds its [`HealthPolicy`] from the task's
//! parameters, reads the pipeline's run history and turns the score into an outcome: unhealthy is
//! a `Failed` outcome, each component's points a metric (`data_quality_points`, ...), and the whole
//! score, every component with its maximum, measured value and detail, the outcome's details.

use crate::params::{positive, problem, resolve};
use crate::pipeline_state;
use crate::redact;
use caretaker_core::config::ConfigProblem;
use caretaker_core::health::Health;
use caretaker_core::metrics::Metric;
use caretaker_core::task::{BoxFuture, Task, TaskContext, TaskError, TaskOutcome, TaskStatus, parse_params};
use caretaker_evaluate::health::{self, HealthPolicy};
use serde::Deserialize;
use std::path::{Path, PathBuf};

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

// The defaults are the score's own, so `models reset` (which scores with them) and a catalog
// entry without parameters agree.
fn default_window() -> usize {
    HealthPolicy::default().window
}
fn default_metric() -> String {
    HealthPolicy::default().metric.name().into()
}
fn default_metric_target() -> f64 {
    HealthPolicy::default().metric_target
}
fn default_latency_budget() -> f64 {
    HealthPolicy::default().latency_budget_micros
}
fn default_max_data_age() -> f64 {
    HealthPolicy::default().max_data_age_hours
}

pub struct ModelHealth {
    pipeline: PathBuf,
    policy: HealthPolicy,
}

impl ModelHealth {
    pub fn build(params: &toml::Table, root: &Path) -> Result<ModelHealth, ConfigProblem> {
        let config: ModelHealthConfig = parse_params(params)?;
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
            policy: HealthPolicy {
                window: config.window,
                metric,
                metric_target: config.metric_target,
                latency_budget_micros: positive("latency_budget_micros", config.latency_budget_micros)?,
                max_data_age_hours: positive("max_data_age_hours", config.max_data_age_hours)?,
            },
        })
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
            let window = self.policy.window;
            let state =
                match crate::blocking("reading the pipeline's state", move || pipeline_state::read(&pipeline, window))
                    .await
                {
                    Ok(Ok(state)) => state,
                    Ok(Err(e)) | Err(e) => return Ok(TaskOutcome::failed(redact::redact(&e.to_string()))),
                };
            let score = health::score(&self.policy, &state.runs, state.config.patterns.is_some(), ctx.started_at);
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
