//! The execution history: one record per execution of a task, in SQLite (a file in the state
//! directory) or PostgreSQL (shared by several schedulers).
//!
//! Both stores keep the same table, with the whole [`Execution`] as JSON beside the columns the
//! queries need, and the same guarantees:
//!
//! - **each firing runs once**: an execution of a scheduled firing is inserted before it runs,
//!   and a unique index on (task, scheduled time) makes the insert of a second scheduler fail,
//!   so the firing is claimed by exactly one of them ([`HistoryStore::claim`]);
//! - **one run of a task at a time**: [`HistoryStore::lock_task`] takes a lock that other
//!   processes see (a lock file in the state directory for SQLite, a session advisory lock for
//!   PostgreSQL), released when the run ends or its process dies;
//! - **versioned migrations**: SQLite counts them in `user_version`, PostgreSQL in the
//!   `caretaker_schema` table; each runs once, in order, under a lock.

pub mod postgres;
pub mod sqlite;

use crate::catalog::HistoryTarget;
use crate::criteria::CriterionResult;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("execution history {target}: {reason}")]
    Store { target: String, reason: String },
    #[error("execution history {target}: execution {id} has an unreadable record: {reason}")]
    Corrupt { target: String, id: String, reason: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What started an execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// The daemon, at a scheduled firing.
    Schedule,
    /// The daemon, for a firing missed while it was down (`missed = "run_once"` or `"catch_up"`).
    CatchUp,
    /// `caretaker task run`.
    Manual,
    /// Run first because another task needs it.
    Prerequisite,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionStatus {
    /// Claimed and started, no result yet (or its process died).
    Running,
    Succeeded,
    /// The task failed, or a success criterion did not hold.
    Failed,
    TimedOut,
    /// Stopped by a shutdown.
    Cancelled,
    /// Did not run: a prerequisite failed, maintenance mode, another run in progress, a dry run.
    Skipped,
}

impl ExecutionStatus {
    pub fn name(self) -> &'static str {
        match self {
            ExecutionStatus::Running => "running",
            ExecutionStatus::Succeeded => "succeeded",
            ExecutionStatus::Failed => "failed",
            ExecutionStatus::TimedOut => "timed_out",
            ExecutionStatus::Cancelled => "cancelled",
            ExecutionStatus::Skipped => "skipped",
        }
    }

    /// Whether this counts as a failure in reports (and triggers rollback and notification).
    pub fn is_failure(self) -> bool {
        matches!(self, ExecutionStatus::Failed | ExecutionStatus::TimedOut | ExecutionStatus::Cancelled)
    }
}

/// The rollback command's run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RollbackRecord {
    pub argv: Vec<String>,
    /// `succeeded`, `failed` or `timed_out`.
    pub status: String,
    pub exit_code: Option<i32>,
    pub summary: String,
    pub stdout: String,
    pub stderr: String,
    pub seconds: f64,
}

/// One attempt of an execution (an execution with retries has several).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    pub number: u32,
    pub status: ExecutionStatus,
    pub summary: String,
    pub seconds: f64,
}

/// One execution of a task, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Execution {
    pub id: String,
    pub task_id: String,
    pub task_name: String,
    pub trigger: Trigger,
    /// The firing this execution is for (daemon and catch-up runs); `None` for manual runs.
    pub scheduled_for: Option<DateTime<Utc>>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub status: ExecutionStatus,
    pub summary: String,
    pub attempts: Vec<Attempt>,
    pub metrics: BTreeMap<String, f64>,
    pub criteria: Vec<CriterionResult>,
    pub rollback: Option<RollbackRecord>,
    /// From the catalog, for the "slower than 1.5x" report.
    pub estimated_seconds: f64,
    pub duration_seconds: Option<f64>,
    /// `host pid N`: which scheduler ran it.
    pub scheduler: String,
    /// What else happened: maintenance mode entered, notifications, shutdown.
    pub notes: Vec<String>,
    /// The last attempt's task-specific detail (process output, ...).
    pub details: serde_json::Value,
}

/// The execution history, in one of its two stores.
pub enum HistoryStore {
    Sqlite(sqlite::SqliteHistory),
    Postgres(postgres::PostgresHistory),
}

/// Held while a task runs; dropping it releases the lock.
pub enum TaskLock {
    File(#[allow(dead_code)] caretaker_core::lock::ProcessLock),
    Postgres(#[allow(dead_code)] postgres::AdvisoryLock),
}

impl HistoryStore {
    /// Opens (creating and migrating if needed) the store; `state_dir` holds SQLite's task locks.
    pub async fn open(target: &HistoryTarget, state_dir: &Path) -> Result<HistoryStore> {
        Ok(match target {
            HistoryTarget::Sqlite(path) => HistoryStore::Sqlite(sqlite::SqliteHistory::open(path, state_dir).await?),
            HistoryTarget::Postgres(url) => HistoryStore::Postgres(postgres::PostgresHistory::open(url).await?),
        })
    }

    /// Where it is, with any password hidden.
    pub fn describe(&self) -> String {
        match self {
            HistoryStore::Sqlite(s) => s.describe(),
            HistoryStore::Postgres(p) => p.describe(),
        }
    }

    /// Inserts a new execution. For a scheduled firing, returns `false` when another scheduler
    /// already claimed the same task and time (nothing is inserted then).
    pub async fn claim(&self, execution: &Execution) -> Result<bool> {
        match self {
            HistoryStore::Sqlite(s) => s.claim(execution).await,
            HistoryStore::Postgres(p) => p.claim(execution).await,
        }
    }

    /// Replaces a claimed execution's record with its result.
    pub async fn update(&self, execution: &Execution) -> Result<()> {
        match self {
            HistoryStore::Sqlite(s) => s.update(execution).await,
            HistoryStore::Postgres(p) => p.update(execution).await,
        }
    }

    /// Executions started at or after `from`, oldest first.
    pub async fn since(&self, from: DateTime<Utc>) -> Result<Vec<Execution>> {
        match self {
            HistoryStore::Sqlite(s) => s.since(from).await,
            HistoryStore::Postgres(p) => p.since(from).await,
        }
    }

    /// The executions of a task still recorded as running, oldest first.
    pub async fn running(&self, task_id: &str) -> Result<Vec<Execution>> {
        match self {
            HistoryStore::Sqlite(s) => s.running(task_id).await,
            HistoryStore::Postgres(p) => p.running(task_id).await,
        }
    }

    /// The latest scheduled firing of a task that any scheduler claimed.
    pub async fn latest_firing(&self, task_id: &str) -> Result<Option<DateTime<Utc>>> {
        match self {
            HistoryStore::Sqlite(s) => s.latest_firing(task_id).await,
            HistoryStore::Postgres(p) => p.latest_firing(task_id).await,
        }
    }

    /// The latest successful execution of a task.
    pub async fn last_success(&self, task_id: &str) -> Result<Option<Execution>> {
        match self {
            HistoryStore::Sqlite(s) => s.last_success(task_id).await,
            HistoryStore::Postgres(p) => p.last_success(task_id).await,
        }
    }

    /// Takes the task's run lock; `None` when another run holds it.
    pub async fn lock_task(&self, task_id: &str) -> Result<Option<TaskLock>> {
        match self {
            HistoryStore::Sqlite(s) => s.lock_task(task_id).map(|l| l.map(TaskLock::File)),
            HistoryStore::Postgres(p) => p.lock_task(task_id).await.map(|l| l.map(TaskLock::Postgres)),
        }
    }
}

pub(crate) fn decode(target: &str, id: &str, json: &str) -> Result<Execution> {
    serde_json::from_str(json).map_err(|e| Error::Corrupt {
        target: target.into(),
        id: id.into(),
        reason: e.to_string(),
    })
}

pub(crate) fn encode(execution: &Execution) -> String {
    serde_json::to_string(execution).expect("an execution serialises")
}

#[cfg(test)]
pub(crate) mod tests;
