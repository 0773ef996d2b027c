//! `pipeline_health`: the nightly pipeline's own health, from its run history and registry.
//!
//! Unhealthy: no run recorded, the last run failed, the last run is older than `max_age_hours`,
//! or the champion does not load (its model file is missing or its hash does not match the card).
//! Degraded: the last run stopped at the quality gate, no champion was ever deployed, or the
//! newest quality score fell more than `max_quality_drop` below the mean of the runs before it.

use super::{CheckReport, Health};
use crate::params::{positive, problem, resolve};
use crate::pipeline_state::{self, mean};
use caretaker_core::config::ConfigProblem;
use caretaker_core::report::RunStatus;
use caretaker_core::task::TaskContext;
use serde::Deserialize;
use std::path::PathBuf;

/// Parameters of `pipeline_health`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineHealthConfig {
    /// The pipeline file (its history and registry are found from it), relative to the
    /// catalog's root.
    pub pipeline: PathBuf,
    /// A last run that started longer ago than this is unhealthy. Default 26 (a nightly run, with
    /// two hours of slack).
    #[serde(default = "default_max_age_hours")]
    pub max_age_hours: f64,
    /// How many of the newest runs the quality trend looks at. Default 7.
    #[serde(default = "default_window")]
    pub window: usize,
    /// A newest quality score this far below the mean of the earlier runs in the window is
    /// degraded. Default 0.05.
    #[serde(default = "default_max_quality_drop")]
    pub max_quality_drop: f64,
}

fn default_max_age_hours() -> f64 {
    26.0
}
fn default_window() -> usize {
    7
}
fn default_max_quality_drop() -> f64 {
    0.05
}

pub struct PipelineCheck {
    pipeline: PathBuf,
    max_age_hours: f64,
    window: usize,
    max_quality_drop: f64,
}

impl PipelineCheck {
    pub fn build(config: PipelineHealthConfig, root: &std::path::Path) -> Result<PipelineCheck, ConfigProblem> {
        positive("max_age_hours", config.max_age_hours)?;
        if config.window < 2 {
            return Err(problem("window", format!("must be at least 2 runs to show a trend, got {}", config.window)));
        }
        if !(0.0..=1.0).contains(&config.max_quality_drop) {
            return Err(problem(
                "max_quality_drop",
                format!("must be between 0 and 1, got {}", config.max_quality_drop),
            ));
        }
        Ok(PipelineCheck {
            pipeline: resolve(root, &config.pipeline),
            max_age_hours: config.max_age_hours,
            window: config.window,
            max_quality_drop: config.max_quality_drop,
        })
    }

    pub(super) async fn check(&self, report: &mut CheckReport, ctx: &TaskContext) {
        let pipeline = self.pipeline.clone();
        let window = self.window;
        let state = match crate::blocking("reading the pipeline's state", move || {
            pipeline_state::read(&pipeline, window)
        })
        .await
        {
            Ok(Ok(state)) => state,
            Ok(Err(e)) | Err(e) => return report.lower(Health::Unhealthy, e.to_string()),
        };
        let Some(last) = state.runs.first() else {
            return report.lower(
                Health::Unhealthy,
                format!(
                    "no run of {} is recorded in {}",
                    state.config.name,
                    caretaker_history::History::describe(&state.config.output)
                ),
            );
        };
        let age_hours = (ctx.started_at - last.started_at).num_seconds() as f64 / 3600.0;
        report.metric("last_run_age_hours", age_hours);
        report.metric("last_run_succeeded", f64::from(u8::from(last.status == RunStatus::Succeeded)));
        match last.status {
            RunStatus::Succeeded => {}
            RunStatus::QualityFailed => report.lower(
                Health::Degraded,
                format!("the last run {} stopped at the quality gate: nothing was trained", last.run_id),
            ),
            RunStatus::Failed => report.lower(
                Health::Unhealthy,
                format!(
                    "the last run {} failed: {}",
                    last.run_id,
                    last.message.as_deref().unwrap_or("no reason recorded")
                ),
            ),
        }
        if age_hours > self.max_age_hours {
            report.lower(
                Health::Unhealthy,
                format!("the last run started {age_hours:.1} h ago, more than {} h", self.max_age_hours),
            );
        }
        match &state.champion {
            None => report.lower(Health::Degraded, "no champion has been deployed yet"),
            Some(Ok(card)) => report.metric("champion_version", f64::from(card.version.0)),
            Some(Err(e)) => report.lower(Health::Unhealthy, format!("the champion does not load: {e}")),
        }
        report.metric("champion_loadable", f64::from(u8::from(matches!(state.champion, Some(Ok(_))))));

        let scores: Vec<f64> = state.runs.iter().filter_map(|r| r.quality.as_ref().map(|q| q.score)).collect();
        if let Some((&newest, earlier)) = scores.split_first() {
            report.metric("quality_score", newest);
            if let Some(before) = mean(earlier) {
                let change = newest - before;
                report.metric("quality_score_change", change);
                if -change > self.max_quality_drop {
                    report.lower(
                        Health::Degraded,
                        format!(
                            "the quality score fell to {newest:.3} from a mean of {before:.3} over the {} runs before",
                            earlier.len()
                        ),
                    );
                }
            }
        }
    }
}
