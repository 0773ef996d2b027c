//! The `command` kind: runs a program from an argv list, never through a shell.
//!
//! ```toml
//! [tasks.params]
//! argv = ["scripts/reindex.sh", "--table", "events"]
//! cwd = "."                          # relative to the catalog's root (the default)
//! env = { REINDEX_MODE = "online" }  # added to the scheduler's environment
//! metrics = ["rows_fixed"]           # the METRICS names success criteria may use
//! output_limit = 65536               # bytes of stdout and of stderr kept (the end)
//! ```
//!
//! The task succeeds when the program exits with code 0. Each stdout line `METRICS: {json}`
//! (a JSON object of numbers or booleans) adds its figures to the execution's metrics, next to
//! `exit_code`. In the argv, `{execution_id}`, `{task_id}`, `{timestamp}` (the start,
//! `20261128T020000Z`) and `{state}` (the state directory) are replaced; the same values are in
//! the environment as `CARETAKER_EXECUTION_ID`, `CARETAKER_TASK_ID` and `CARETAKER_STATE_DIR`.

use super::process::{self, ProcessSpec};
use super::resolve;
use caretaker_core::config::ConfigProblem;
use caretaker_core::task::{BoxFuture, Task, TaskContext, TaskError, TaskOutcome, TaskStatus, parse_params};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const KIND: &str = "command";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCommand {
    /// The program and its arguments.
    argv: Vec<String>,
    /// Working directory, relative to the catalog's root.
    cwd: Option<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    /// Metric names the command reports in `METRICS:` lines.
    #[serde(default)]
    metrics: Vec<String>,
    output_limit: Option<usize>,
}

/// A validated `command` task.
#[derive(Debug, Clone)]
pub struct CommandTask {
    pub argv: Vec<String>,
    pub cwd: PathBuf,
    pub env: BTreeMap<String, String>,
    pub metrics: Vec<String>,
    pub output_limit: usize,
}

impl CommandTask {
    pub fn from_params(params: &toml::Table, root: &Path) -> Result<CommandTask, ConfigProblem> {
        let raw: RawCommand = parse_params(params)?;
        let problem = |key: &str, reason: String| ConfigProblem { key: key.into(), reason };
        if raw.argv.is_empty() || raw.argv[0].trim().is_empty() {
            return Err(problem("argv", "must name a program: argv = [\"program\", \"arg\", ...]".into()));
        }
        if let Some((i, why)) = caretaker_core::redact::argv_password(&raw.argv) {
            return Err(problem(&format!("argv[{i}]"), why));
        }
        for name in &raw.metrics {
            if !is_metric_name(name) {
                return Err(problem("metrics", format!("{name:?} is not a metric name (letters, digits, _)")));
            }
        }
        let output_limit = raw.output_limit.unwrap_or(process::DEFAULT_OUTPUT_LIMIT);
        if output_limit < 1024 {
            return Err(problem("output_limit", format!("must be at least 1024 bytes, got {output_limit}")));
        }
        let cwd = raw.cwd.as_deref().map(|c| resolve(root, c)).unwrap_or_else(|| root.to_path_buf());
        Ok(CommandTask { argv: raw.argv, cwd, env: raw.env, metrics: raw.metrics, output_limit })
    }
}

pub(crate) fn is_metric_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Replaces the argv placeholders (see the module docs).
pub fn expand(arg: &str, ctx: &TaskContext) -> String {
    arg.replace("{execution_id}", &ctx.execution_id)
        .replace("{task_id}", &ctx.task_id)
        .replace("{timestamp}", &ctx.started_at.format("%Y%m%dT%H%M%SZ").to_string())
        .replace("{state}", &ctx.state_dir.to_string_lossy())
}

/// The environment every child of the scheduler gets on top of its own.
pub fn context_env(ctx: &TaskContext) -> BTreeMap<String, String> {
    BTreeMap::from([
        (caretaker_core::children::MARKER.to_string(), ctx.execution_id.clone()),
        ("CARETAKER_TASK_ID".to_string(), ctx.task_id.clone()),
        ("CARETAKER_STATE_DIR".to_string(), ctx.state_dir.to_string_lossy().into_owned()),
    ])
}

/// The figures of `METRICS: {json}` lines, and the problems with the lines that are not valid.
pub fn parse_metrics(stdout: &str) -> (BTreeMap<String, f64>, Vec<String>) {
    let mut metrics = BTreeMap::new();
    let mut problems = Vec::new();
    for line in stdout.lines() {
        let Some(json) = line.trim_start().strip_prefix("METRICS:") else { continue };
        match serde_json::from_str::<serde_json::Value>(json.trim()) {
            Ok(serde_json::Value::Object(map)) => {
                for (name, value) in map {
                    let number = match &value {
                        serde_json::Value::Number(n) => n.as_f64(),
                        serde_json::Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
                        _ => None,
                    };
                    match number {
                        Some(v) if is_metric_name(&name) => {
                            metrics.insert(name, v);
                        }
                        _ => problems.push(format!("METRICS {name}: {value} is not a number or a boolean")),
                    }
                }
            }
            Ok(other) => problems.push(format!("METRICS line is not a JSON object: {other}")),
            Err(e) => problems.push(format!("METRICS line is not JSON: {e}")),
        }
    }
    (metrics, problems)
}

impl Task for CommandTask {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn metric_names(&self) -> Vec<String> {
        std::iter::once("exit_code".to_string()).chain(self.metrics.iter().cloned()).collect()
    }

    /// The values of its secret environment variables (`PGPASSWORD`, `API_TOKEN`, ...) and the
    /// passwords of URLs in any of them.
    fn secrets(&self) -> Vec<String> {
        let mut secrets = Vec::new();
        for (key, value) in &self.env {
            if caretaker_core::redact::is_secret_key(key) {
                secrets.push(value.clone());
            }
            secrets.extend(caretaker_core::redact::secrets_of(value));
        }
        secrets
    }

    fn run<'a>(&'a self, ctx: &'a TaskContext) -> BoxFuture<'a, Result<TaskOutcome, TaskError>> {
        Box::pin(async move {
            let argv: Vec<String> = self.argv.iter().map(|a| expand(a, ctx)).collect();
            if ctx.dry_run {
                return Ok(TaskOutcome {
                    status: TaskStatus::Skipped,
                    ..TaskOutcome::succeeded(format!("dry run: would run {argv:?} in {}", self.cwd.display()))
                });
            }
            let mut env = context_env(ctx);
            env.extend(self.env.clone());
            let run = process::run(ProcessSpec {
                argv: &argv,
                cwd: &self.cwd,
                env: &env,
                stdin: None,
                output_limit: self.output_limit,
                track: Some(ctx),
            })
            .await;
            Ok(outcome_of(run))
        })
    }
}

/// A finished process as a task outcome: exit code 0 succeeds; METRICS lines become metrics.
pub fn outcome_of(run: process::ProcessRun) -> TaskOutcome {
    let (mut metrics, metric_problems) = parse_metrics(&run.stdout);
    if let Some(code) = run.exit_code {
        metrics.insert("exit_code".into(), code as f64);
    }
    let program = Path::new(run.argv.first().map(String::as_str).unwrap_or(""))
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut summary = format!("{program} {}", run.describe());
    if let Some(line) = run.last_line().filter(|_| run.spawn_error.is_none()) {
        let line: String = line.chars().take(200).collect();
        summary.push_str(": ");
        summary.push_str(&line);
    }
    let status = if run.succeeded() { TaskStatus::Succeeded } else { TaskStatus::Failed };
    let details = serde_json::json!({ "process": run, "metric_problems": metric_problems });
    TaskOutcome { status, summary, metrics, details }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(text: &str) -> toml::Table {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn metrics_lines_become_metrics_and_bad_lines_are_reported() {
        let (m, problems) = parse_metrics(
            "starting\nMETRICS: {\"rows_fixed\": 12, \"ok\": true}\n  METRICS: {\"lag\": 0.5}\nMETRICS: nope\nMETRICS: {\"who\": \"me\"}\n",
        );
        assert_eq!(m, BTreeMap::from([("rows_fixed".into(), 12.0), ("ok".into(), 1.0), ("lag".into(), 0.5)]));
        assert_eq!(problems.len(), 2, "{problems:?}");
    }

    #[test]
    fn params_are_checked() {
        let root = Path::new("/srv");
        let task = CommandTask::from_params(&params("argv = [\"echo\", \"hi\"]\ncwd = \"jobs\""), root).unwrap();
        assert_eq!(task.cwd, Path::new("/srv/jobs"));
        assert_eq!(task.metric_names(), vec!["exit_code".to_string()]);
        let err = CommandTask::from_params(&params("argv = []"), root).err().unwrap();
        assert_eq!(err.key, "argv");
        let err = CommandTask::from_params(&params("argv = [\"x\"]\nargs = [\"y\"]"), root).err().unwrap();
        assert_eq!(err.key, "args", "{err}");
        let err = CommandTask::from_params(&params("cwd = \"x\""), root).err().unwrap();
        assert_eq!(err.key, "argv", "{err}");
        let err = CommandTask::from_params(&params("argv = [\"x\"]\nmetrics = [\"a b\"]"), root).err().unwrap();
        assert_eq!(err.key, "metrics");
    }

    #[tokio::test]
    async fn a_command_runs_with_placeholders_and_reports_its_metrics() {
        let dir = tempfile::tempdir().unwrap();
        let task = CommandTask::from_params(
            &params(
                "argv = [\"sh\", \"-c\", \"echo task=$CARETAKER_TASK_ID arg=$0; echo 'METRICS: {\\\"n\\\": 3}'\", \"{execution_id}\"]\nmetrics = [\"n\"]",
            ),
            dir.path(),
        )
        .unwrap();
        let ctx = TaskContext {
            task_id: "t1".into(),
            execution_id: "e42".into(),
            started_at: chrono::Utc::now(),
            dry_run: false,
            state_dir: dir.path().to_path_buf(),
        };
        let outcome = task.run(&ctx).await.unwrap();
        assert_eq!(outcome.status, TaskStatus::Succeeded, "{outcome:?}");
        assert_eq!(outcome.metrics.get("n"), Some(&3.0));
        assert_eq!(outcome.metrics.get("exit_code"), Some(&0.0));
        assert!(outcome.details["process"]["stdout"].as_str().unwrap().starts_with("task=t1 arg=e42\n"));
    }
}
