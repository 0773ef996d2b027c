//! The `pipeline` kind: the nightly pipeline (or its quality stage alone) as a scheduled task.
//!
//! ```toml
//! [tasks.params]
//! pipeline = "pipelines/nightly.toml"   # relative to the catalog's root
//! mode = "run"                          # "run" (the whole night) or "quality" (the check alone)
//! ```
//!
//! The task runs the caretaker binary itself (`caretaker run PIPELINE --json`) as a child process:
//! a timeout or a shutdown kills the run for real, the scheduler stays free of polars and linfa,
//! and the run keeps its own locks and crash safety. The pipeline file is validated when the
//! catalog loads. Metrics, from the run's `report.json`:
//!
//! | metric | mode | meaning |
//! |---|---|---|
//! | `exit_code` | both | 0 ran, 1 the data failed the quality stage, 2 the run stopped |
//! | `quality_score`, `rows`, `quarantined_rows` | both | from the quality stage |
//! | `quality_passed` | both | 1 when the score reached the pipeline's minimum |
//! | `deployed` | run | 1 when the gate deployed a candidate |
//! | `f1`, `champion_f1` | run | F1 on the holdout of the candidate the gate weighed, and of the champion |
//! | `candidates_trained` | run | candidates with metrics |
//! | `patterns_deleted`, `patterns_archived` | run | the pattern stage's counts |
//!
//! Exit code 0 succeeds (a gate that keeps the champion is a normal outcome); 1 and 2 fail.

use super::command::context_env;
use super::process::{self, ProcessSpec};
use super::resolve;
use caretaker_core::config::{ConfigProblem, PipelineConfig};
use caretaker_core::task::{BoxFuture, Task, TaskContext, TaskError, TaskOutcome, TaskStatus, parse_params};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const KIND: &str = "pipeline";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPipelineTask {
    /// The pipeline file, relative to the catalog's root.
    pipeline: String,
    /// `run` (default) or `quality`.
    mode: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PipelineMode {
    Run,
    Quality,
}

/// A validated `pipeline` task.
#[derive(Debug, Clone)]
pub struct PipelineTask {
    pub pipeline: PathBuf,
    pub mode: PipelineMode,
    pub caretaker_exe: PathBuf,
    /// Where the child runs: the catalog's root.
    pub cwd: PathBuf,
}

const RUN_METRICS: &[&str] = &[
    "exit_code",
    "quality_score",
    "quality_passed",
    "rows",
    "quarantined_rows",
    "deployed",
    "f1",
    "champion_f1",
    "candidates_trained",
    "patterns_deleted",
    "patterns_archived",
];
const QUALITY_METRICS: &[&str] = &["exit_code", "quality_score", "quality_passed", "rows", "quarantined_rows"];

impl PipelineTask {
    pub fn from_params(params: &toml::Table, root: &Path, caretaker_exe: &Path) -> Result<PipelineTask, ConfigProblem> {
        let raw: RawPipelineTask = parse_params(params)?;
        let mode = match raw.mode.as_deref() {
            None | Some("run") => PipelineMode::Run,
            Some("quality") => PipelineMode::Quality,
            Some(other) => {
                return Err(ConfigProblem {
                    key: "mode".into(),
                    reason: format!("{other:?} is not a mode (run, quality)"),
                });
            }
        };
        let pipeline = resolve(root, &raw.pipeline);
        // The pipeline is checked now, so that a broken pipeline file fails the catalog, not the night.
        PipelineConfig::load(&pipeline).map_err(|e| ConfigProblem { key: "pipeline".into(), reason: e.to_string() })?;
        Ok(PipelineTask { pipeline, mode, caretaker_exe: caretaker_exe.to_path_buf(), cwd: root.to_path_buf() })
    }
}

impl Task for PipelineTask {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn metric_names(&self) -> Vec<String> {
        let names = if self.mode == PipelineMode::Run { RUN_METRICS } else { QUALITY_METRICS };
        names.iter().map(|s| s.to_string()).collect()
    }

    fn run<'a>(&'a self, ctx: &'a TaskContext) -> BoxFuture<'a, Result<TaskOutcome, TaskError>> {
        Box::pin(async move {
            let command = if self.mode == PipelineMode::Run { "run" } else { "quality" };
            let argv = vec![
                self.caretaker_exe.to_string_lossy().into_owned(),
                command.to_string(),
                self.pipeline.to_string_lossy().into_owned(),
                "--json".to_string(),
            ];
            if ctx.dry_run {
                return Ok(TaskOutcome {
                    status: TaskStatus::Skipped,
                    ..TaskOutcome::succeeded(format!(
                        "dry run: would run caretaker {command} {}",
                        self.pipeline.display()
                    ))
                });
            }
            let env = context_env(ctx);
            // The report is one JSON document; keep all of it (it holds curves, so it can be large).
            let run = process::run(ProcessSpec {
                argv: &argv,
                cwd: &self.cwd,
                env: &env,
                stdin: None,
                output_limit: 64 * 1024 * 1024,
                track: Some(ctx),
            })
            .await;
            Ok(self.outcome(run))
        })
    }
}

impl PipelineTask {
    fn outcome(&self, mut run: process::ProcessRun) -> TaskOutcome {
        let report: Option<Value> = serde_json::from_str(&run.stdout).ok();
        let mut metrics = BTreeMap::new();
        if let Some(code) = run.exit_code {
            metrics.insert("exit_code".to_string(), code as f64);
        }
        let quality = report.as_ref().and_then(|r| r.get("quality")).filter(|q| !q.is_null());
        if let Some(q) = quality {
            put(&mut metrics, "quality_score", q.get("score"));
            put(&mut metrics, "rows", q.get("rows"));
            put(&mut metrics, "quarantined_rows", q.get("quarantined_rows"));
            put(&mut metrics, "quality_passed", q.get("passed"));
        }
        let mut summary = match (&report, run.exit_code) {
            (_, None) | (None, _) => format!(
                "caretaker {} {}{}",
                if self.mode == PipelineMode::Run { "run" } else { "quality" },
                run.describe(),
                run.last_line().map(|l| format!(": {}", l.chars().take(300).collect::<String>())).unwrap_or_default()
            ),
            (Some(_), Some(_)) => String::new(),
        };
        if let Some(r) = &report {
            if self.mode == PipelineMode::Run {
                let gate = &r["gate"];
                metrics.insert("deployed".into(), if gate["decision"] == "deployed" { 1.0 } else { 0.0 });
                let candidates = r["candidates"].as_array().cloned().unwrap_or_default();
                let trained = candidates.iter().filter(|c| !c["metrics"].is_null()).count();
                metrics.insert("candidates_trained".into(), trained as f64);
                if let Some(name) = gate["candidate"].as_str() {
                    let weighed = candidates.iter().find(|c| c["name"] == name);
                    put(&mut metrics, "f1", weighed.map(|c| &c["metrics"]["f1"]));
                }
                put(&mut metrics, "champion_f1", Some(&r["champion"]["metrics"]["f1"]));
                put(&mut metrics, "patterns_deleted", Some(&r["patterns"]["deleted"]));
                put(&mut metrics, "patterns_archived", Some(&r["patterns"]["archived"]));
                if summary.is_empty() {
                    let reason = gate["reasons"][0].as_str().unwrap_or("");
                    summary = match (r["status"].as_str(), gate["decision"].as_str()) {
                        (Some("succeeded"), Some("deployed")) => format!(
                            "run {} deployed {} as {}",
                            r["run_id"].as_str().unwrap_or("?"),
                            gate["candidate"].as_str().unwrap_or("?"),
                            gate["deployed_version"].as_str().unwrap_or("?")
                        ),
                        (Some("succeeded"), _) => {
                            format!("run {} kept the champion: {reason}", r["run_id"].as_str().unwrap_or("?"))
                        }
                        (Some("quality_failed"), _) => format!(
                            "run {}: the data failed the quality stage (score {})",
                            r["run_id"].as_str().unwrap_or("?"),
                            metrics.get("quality_score").map(|s| format!("{s:.3}")).unwrap_or_else(|| "?".into())
                        ),
                        _ => format!(
                            "run {} stopped: {}",
                            r["run_id"].as_str().unwrap_or("?"),
                            r["message"].as_str().unwrap_or(reason)
                        ),
                    };
                }
            } else if summary.is_empty() {
                summary = match quality {
                    Some(q) => format!(
                        "quality score {:.3} (min {:.3}) {}",
                        q["score"].as_f64().unwrap_or(f64::NAN),
                        q["min_score"].as_f64().unwrap_or(f64::NAN),
                        if q["passed"] == true { "passed" } else { "FAILED" }
                    ),
                    None => "the quality check produced no report".into(),
                };
            }
        }
        let status = if run.succeeded() { TaskStatus::Succeeded } else { TaskStatus::Failed };
        // The full report is in the pipeline's own history; keep only what the execution needs.
        let run_id = report.as_ref().and_then(|r| r["run_id"].as_str().map(str::to_string));
        run.stdout = match &run_id {
            Some(id) => format!("(report.json of run {id}; `caretaker report {id}` shows it)"),
            None => run.stdout.chars().rev().take(8 * 1024).collect::<Vec<_>>().into_iter().rev().collect(),
        };
        let details = serde_json::json!({ "process": run, "run_id": run_id });
        TaskOutcome { status, summary, metrics, details }
    }
}

fn put(metrics: &mut BTreeMap<String, f64>, name: &str, value: Option<&Value>) {
    let number = match value {
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::Bool(b)) => Some(if *b { 1.0 } else { 0.0 }),
        _ => None,
    };
    if let Some(v) = number {
        metrics.insert(name.to_string(), v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_pipeline_file_is_a_config_problem_naming_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let params: toml::Table = toml::from_str("pipeline = \"missing.toml\"").unwrap();
        let err = PipelineTask::from_params(&params, dir.path(), Path::new("caretaker")).err().unwrap();
        assert_eq!(err.key, "pipeline");
        assert!(err.reason.contains("missing.toml"), "{err}");
        let params: toml::Table = toml::from_str("pipeline = \"x.toml\"\nmode = \"train\"").unwrap();
        let err = PipelineTask::from_params(&params, dir.path(), Path::new("caretaker")).err().unwrap();
        assert_eq!(err.key, "mode");
    }

    #[test]
    fn the_report_becomes_metrics_and_a_summary() {
        let task = PipelineTask {
            pipeline: "p.toml".into(),
            mode: PipelineMode::Run,
            caretaker_exe: "caretaker".into(),
            cwd: ".".into(),
        };
        let report = serde_json::json!({
            "run_id": "20261128T020000Z-abcd", "status": "succeeded",
            "quality": {"score": 0.97, "min_score": 0.9, "passed": true, "rows": 3000, "quarantined_rows": 4},
            "candidates": [{"name": "tree", "metrics": {"f1": 0.72}}, {"name": "nb", "metrics": null}],
            "champion": null,
            "gate": {"decision": "deployed", "candidate": "tree", "deployed_version": "v0001", "reasons": ["first run"]},
            "patterns": {"deleted": 10, "archived": 3}
        });
        let run = process::ProcessRun {
            argv: vec!["caretaker".into()],
            exit_code: Some(0),
            signal: None,
            stdout: report.to_string(),
            stderr: String::new(),
            truncated: false,
            seconds: 1.0,
            spawn_error: None,
        };
        let outcome = task.outcome(run);
        assert_eq!(outcome.status, TaskStatus::Succeeded);
        assert_eq!(outcome.summary, "run 20261128T020000Z-abcd deployed tree as v0001");
        assert_eq!(outcome.metrics["deployed"], 1.0);
        assert_eq!(outcome.metrics["f1"], 0.72);
        assert_eq!(outcome.metrics["quality_score"], 0.97);
        assert_eq!(outcome.metrics["candidates_trained"], 1.0);
        assert_eq!(outcome.metrics["patterns_deleted"], 10.0);
        assert!(!outcome.metrics.contains_key("champion_f1"));
        for name in outcome.metrics.keys() {
            assert!(task.metric_names().contains(name), "{name} is not declared");
        }
    }
}
