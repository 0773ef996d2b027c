//! The task trait: what the maintenance scheduler runs.
//!
//! A task kind (the nightly pipeline, a command, a health check, database maintenance, ...) is a
//! value implementing [`Task`], built from its config section. The scheduler decides when a task
//! runs, enforces its timeout (by dropping the future, so a task must not block the async
//! runtime: blocking work goes to `spawn_blocking`), checks prerequisites and success criteria,
//! and records the [`TaskOutcome`]. Domain failures (an unhealthy endpoint, a failed backup) are
//! outcomes with [`TaskStatus::Failed`] and a reason; [`TaskError`] is for a task that could not
//! run at all (bad config discovered late, an internal error).
//!
//! This crate defines the vocabulary only; it depends on no async runtime, so the future is a
//! plain boxed `Future`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;

/// A boxed, sendable future: what [`Task::run`] returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a task gets when it runs.
#[derive(Debug, Clone)]
pub struct TaskContext {
    /// The task's id in the catalog.
    pub task_id: String,
    /// The execution's id in the history.
    pub execution_id: String,
    /// When this execution started (from the scheduler's clock).
    pub started_at: DateTime<Utc>,
    /// Change nothing; report what would be done.
    pub dry_run: bool,
    /// Where tasks keep state between runs (previous scans, backups, ...).
    pub state_dir: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    Succeeded,
    Failed,
    /// Did not run (prerequisites failed, maintenance mode, ...); `summary` says why.
    Skipped,
}

/// What a task reports back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskOutcome {
    pub status: TaskStatus,
    /// One line a person reads: what was done, or why it failed.
    pub summary: String,
    /// Named figures (`bytes_freed`, `latency_ms`, ...): success criteria and reports use them.
    pub metrics: BTreeMap<String, f64>,
    /// Task-specific structured detail (findings, per-table sizes, ...).
    pub details: serde_json::Value,
}

impl TaskOutcome {
    pub fn succeeded(summary: impl Into<String>) -> TaskOutcome {
        TaskOutcome {
            status: TaskStatus::Succeeded,
            summary: summary.into(),
            metrics: BTreeMap::new(),
            details: serde_json::Value::Null,
        }
    }

    pub fn failed(summary: impl Into<String>) -> TaskOutcome {
        TaskOutcome { status: TaskStatus::Failed, ..TaskOutcome::succeeded(summary) }
    }

    pub fn with_metric(mut self, name: &str, value: f64) -> TaskOutcome {
        self.metrics.insert(name.to_string(), value);
        self
    }
}

/// A task that could not run at all.
#[derive(Debug, thiserror::Error)]
#[error("task {task}: {reason}")]
pub struct TaskError {
    pub task: String,
    pub reason: String,
}

/// A kind of maintenance work.
pub trait Task: Send + Sync {
    /// The kind's name in the catalog (`pipeline`, `command`, `http_health`, ...).
    fn kind(&self) -> &'static str;

    /// Runs once. Must not block the async runtime; must leave nothing half-done when the future
    /// is dropped at a timeout (or say in its docs what it leaves).
    fn run<'a>(&'a self, ctx: &'a TaskContext) -> BoxFuture<'a, Result<TaskOutcome, TaskError>>;

    /// The names of the metrics this task can put in its outcome. Success criteria may name only
    /// these (the scheduler rejects any other name when it loads the catalog, so a typo is a
    /// config error, never a silent pass); a declared metric missing from an outcome fails the
    /// criterion. The default declares none.
    fn metric_names(&self) -> Vec<String> {
        Vec::new()
    }

    /// Secrets in its configuration that are not connection URLs (the values of a command's
    /// secret environment variables, say): the scheduler hides them wherever they appear in what
    /// it records, logs and sends. The default has none.
    fn secrets(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Builds tasks of some kinds from their catalog parameters. The scheduler holds one per crate
/// that provides kinds and asks each for the kinds it knows, so a crate adds kinds without the
/// scheduler knowing them by name.
pub trait TaskKinds: Send + Sync {
    /// The kind names this builds.
    fn kinds(&self) -> Vec<&'static str>;

    /// Builds a task of `kind` from its parameters table in the catalog. Relative paths in the
    /// parameters are resolved against `root`. A bad parameter is a [`crate::config::ConfigProblem`]
    /// naming the key (relative to the parameters table) and the reason.
    fn build(
        &self,
        kind: &str,
        params: &toml::Table,
        root: &Path,
    ) -> Result<Box<dyn Task>, crate::config::ConfigProblem>;
}
