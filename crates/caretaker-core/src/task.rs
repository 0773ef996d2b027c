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

use crate::config::ConfigProblem;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
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
    /// parameters are resolved against `root`. A bad parameter is a [`ConfigProblem`] naming the
    /// key (relative to the parameters table) and the reason; [`parse_params`] reads the table
    /// into a kind's config struct that way.
    fn build(&self, kind: &str, params: &toml::Table, root: &Path) -> Result<Box<dyn Task>, ConfigProblem>;
}

/// A path from a catalog's parameters, relative to the catalog's root unless absolute.
pub fn resolve_path(root: &Path, path: impl AsRef<Path>) -> PathBuf {
    let path = path.as_ref();
    if path.is_absolute() { path.to_path_buf() } else { root.join(path) }
}

/// A problem with the parameter `key` (dotted, relative to the parameters table).
pub fn problem(key: &str, reason: impl Into<String>) -> ConfigProblem {
    ConfigProblem { key: key.to_string(), reason: reason.into() }
}

/// Reads a kind's parameters table into its config struct (which should `deny_unknown_fields`):
/// the one parser of every kind's parameters, whichever crate provides the kind. A problem names
/// the key, dotted and relative to the table (`inner.limit`, `argv[0]`), so the scheduler can say
/// `tasks.backup.params.url: ...`; its reason is redacted, since a value quoted back may hold a
/// password.
pub fn parse_params<T: DeserializeOwned>(params: &toml::Table) -> Result<T, ConfigProblem> {
    serde_path_to_error::deserialize(toml::Value::Table(params.clone())).map_err(|e| {
        let path = e.path().to_string();
        let reason = e.inner().to_string().trim().to_string();
        // Unknown and missing fields are reported at the table that holds them: name the field.
        let field = ["unknown field `", "missing field `"]
            .iter()
            .find_map(|p| reason.strip_prefix(p))
            .and_then(|rest| rest.split('`').next())
            .map(str::to_string);
        // serde_path_to_error's path ends at an unknown field, but at the table holding a
        // missing one.
        let key = match (path.as_str(), field) {
            (".", Some(f)) => f,
            (p, Some(f)) if p == f || p.ends_with(&format!(".{f}")) => p.to_string(),
            (p, Some(f)) => format!("{p}.{f}"),
            (".", None) => String::new(),
            (p, None) => p.to_string(),
        };
        // toml ends its message with a line naming the table (`in `inner``): the key says it.
        let reason = match reason.rsplit_once("\nin `") {
            Some((head, _)) if !key.is_empty() => head.trim_end().to_string(),
            _ => reason,
        };
        ConfigProblem { key, reason: crate::redact::redact(&reason) }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Example {
        argv: Vec<String>,
        #[serde(default)]
        inner: Option<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        limit: u32,
    }

    fn problem(text: &str) -> ConfigProblem {
        parse_params::<Example>(&toml::from_str(text).unwrap()).unwrap_err()
    }

    #[test]
    fn problems_name_the_key() {
        let e = problem("argv = ['a']\ncolour = 1");
        assert_eq!(e.key, "colour");
        assert_eq!(e.reason, "unknown field `colour`, expected `argv` or `inner`");
        let e = problem("colour = 1");
        assert!(e.key == "colour" || e.key == "argv", "{e}");
        assert_eq!(problem("").to_string(), "argv: missing field `argv`");
        assert_eq!(problem("argv = [1]").key, "argv[0]");
        let e = problem("argv = ['a']\n[inner]\nlimit = 'ten'");
        assert_eq!(e.to_string(), "inner.limit: invalid type: string \"ten\", expected u32");
        assert_eq!(problem("argv = ['a']\n[inner]\nlimt = 3").key, "inner.limt");
        assert_eq!(problem("argv = ['a']\n[inner]\n").key, "inner.limit");
    }

    #[test]
    fn a_value_quoted_back_loses_its_password() {
        let e = problem("argv = 'postgres://app:hunter2@db/main'");
        assert_eq!(e.key, "argv");
        assert!(!e.reason.contains("hunter2") && e.reason.contains("postgres://app:***@db/main"), "{e}");
    }
}
