//! The execution history in SQLite: `<state>/executions.sqlite` by default.
//!
//! rusqlite is synchronous, so every call runs on tokio's blocking pool; WAL mode and a busy
//! timeout let several processes (a daemon and a `task run`) share the file.

use super::{Error, Execution, ExecutionStatus, Result, decode, encode};
use caretaker_core::lock::{LockError, ProcessLock};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The migrations, in order; `user_version` counts how many have run.
const MIGRATIONS: &[&str] = &["CREATE TABLE executions (
        id TEXT PRIMARY KEY,
        task_id TEXT NOT NULL,
        scheduled_for TEXT,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        status TEXT NOT NULL,
        record TEXT NOT NULL
    );
    CREATE UNIQUE INDEX executions_firing ON executions (task_id, scheduled_for);
    CREATE INDEX executions_started_at ON executions (started_at);"];

pub struct SqliteHistory {
    path: PathBuf,
    lock_dir: PathBuf,
    conn: Arc<Mutex<Connection>>,
}

/// Fixed-width UTC text, so that text order is time order.
fn stamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

impl SqliteHistory {
    pub async fn open(path: &Path, state_dir: &Path) -> Result<SqliteHistory> {
        let path = path.to_path_buf();
        let p = path.clone();
        let conn = tokio::task::spawn_blocking(move || -> rusqlite::Result<Connection> {
            if let Some(dir) = p.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            let mut conn = Connection::open(&p)?;
            conn.busy_timeout(std::time::Duration::from_secs(30))?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            caretaker_history::schema::migrate_sqlite(&mut conn, MIGRATIONS)?;
            Ok(conn)
        })
        .await
        .expect("the blocking pool runs")
        .map_err(|e| Error::Store { target: path.display().to_string(), reason: e.to_string() })?;
        Ok(SqliteHistory { path, lock_dir: state_dir.join("locks"), conn: Arc::new(Mutex::new(conn)) })
    }

    pub fn describe(&self) -> String {
        format!("SQLite {}", self.path.display())
    }

    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let conn = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&conn)
        })
        .await
        .expect("the blocking pool runs")
        .map_err(|e| Error::Store { target: self.path.display().to_string(), reason: e.to_string() })
    }

    pub async fn claim(&self, e: &Execution) -> Result<bool> {
        let row = (e.id.clone(), e.task_id.clone(), e.scheduled_for.map(stamp), stamp(e.started_at));
        let (status, record) = (e.status.name(), encode(e));
        self.with(move |conn| {
            let inserted = conn.execute(
                "INSERT INTO executions (id, task_id, scheduled_for, started_at, status, record)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (task_id, scheduled_for) DO NOTHING",
                params![row.0, row.1, row.2, row.3, status, record],
            )?;
            Ok(inserted == 1)
        })
        .await
    }

    pub async fn update(&self, e: &Execution) -> Result<()> {
        let (id, finished, status, record) = (e.id.clone(), e.finished_at.map(stamp), e.status.name(), encode(e));
        self.with(move |conn| {
            conn.execute(
                "UPDATE executions SET finished_at = ?2, status = ?3, record = ?4 WHERE id = ?1",
                params![id, finished, status, record],
            )
            .map(|_| ())
        })
        .await
    }

    pub async fn since(&self, from: DateTime<Utc>) -> Result<Vec<Execution>> {
        let from = stamp(from);
        let rows = self
            .with(move |conn| {
                let mut stmt =
                    conn.prepare("SELECT id, record FROM executions WHERE started_at >= ?1 ORDER BY started_at, id")?;
                let rows = stmt.query_map([from], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?;
        let target = self.path.display().to_string();
        rows.iter().map(|(id, json)| decode(&target, id, json)).collect()
    }

    pub async fn running(&self, task_id: &str) -> Result<Vec<Execution>> {
        let (task_id, status) = (task_id.to_string(), ExecutionStatus::Running.name());
        let rows = self
            .with(move |conn| {
                let mut stmt = conn.prepare(
                    "SELECT id, record FROM executions WHERE task_id = ?1 AND status = ?2 ORDER BY started_at, id",
                )?;
                let rows = stmt
                    .query_map([task_id.as_str(), status], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?;
        let target = self.path.display().to_string();
        rows.iter().map(|(id, json)| decode(&target, id, json)).collect()
    }

    pub async fn latest_firing(&self, task_id: &str) -> Result<Option<DateTime<Utc>>> {
        let task_id = task_id.to_string();
        let text: Option<String> = self
            .with(move |conn| {
                conn.query_row(
                    "SELECT max(scheduled_for) FROM executions WHERE task_id = ?1 AND scheduled_for IS NOT NULL",
                    [task_id],
                    |r| r.get(0),
                )
            })
            .await?;
        Ok(text.and_then(|t| DateTime::parse_from_rfc3339(&t).ok()).map(|t| t.with_timezone(&Utc)))
    }

    pub async fn last_success(&self, task_id: &str) -> Result<Option<Execution>> {
        let task_id = task_id.to_string();
        let status = ExecutionStatus::Succeeded.name();
        let row: Option<(String, String)> = self
            .with(move |conn| {
                conn.query_row(
                    "SELECT id, record FROM executions WHERE task_id = ?1 AND status = ?2
                     ORDER BY finished_at DESC LIMIT 1",
                    params![task_id, status],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
            })
            .await?;
        row.map(|(id, json)| decode(&self.path.display().to_string(), &id, &json)).transpose()
    }

    pub fn lock_task(&self, task_id: &str) -> Result<Option<ProcessLock>> {
        let path = self.lock_dir.join(format!("task-{task_id}.lock"));
        match ProcessLock::acquire(&path, &format!("task {task_id}")) {
            Ok(lock) => Ok(Some(lock)),
            Err(LockError::Busy { .. }) => Ok(None),
            Err(e) => Err(Error::Store { target: path.display().to_string(), reason: e.to_string() }),
        }
    }
}
