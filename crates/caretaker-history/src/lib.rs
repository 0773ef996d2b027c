//! The run history: one row per nightly run, with its full report, in SQLite by default.
//!
//! A data scientist lists and compares runs from here (`caretaker runs list`), and the report of
//! any past run can be rebuilt from it even after its report directory was cleaned up. The schema
//! is versioned with SQLite's `user_version`; each migration runs once, in order.
//!
//! ```no_run
//! let history = caretaker_history::History::open("state/history.sqlite".as_ref()).unwrap();
//! for run in history.runs(10).unwrap() {
//!     println!("{} {} {:?}", run.run_id, run.status, run.quality_score);
//! }
//! ```

use caretaker_core::report::RunReport;
use rusqlite::{Connection, OptionalExtension, params};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("run history {path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("run history {path}: run {run_id} has an unreadable report: {reason}")]
    Corrupt { path: PathBuf, run_id: String, reason: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The migrations, in order; `user_version` counts how many have run.
const MIGRATIONS: &[&str] = &["CREATE TABLE runs (
        run_id TEXT PRIMARY KEY,
        pipeline TEXT NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT NOT NULL,
        status TEXT NOT NULL,
        quality_score REAL,
        decision TEXT NOT NULL,
        deployed_version TEXT,
        report_dir TEXT NOT NULL,
        report_json TEXT NOT NULL
    );
    CREATE INDEX runs_started_at ON runs (started_at);"];

/// A run as `runs list` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    pub run_id: String,
    pub pipeline: String,
    pub started_at: String,
    pub status: String,
    pub quality_score: Option<f64>,
    pub decision: String,
    pub deployed_version: Option<String>,
    pub report_dir: String,
}

pub struct History {
    path: PathBuf,
    conn: Connection,
}

impl History {
    /// Where a pipeline keeps its run history: `history.sqlite` in its state directory
    /// (`output.state`). The one place the file is named.
    pub fn path_in(state_dir: &Path) -> PathBuf {
        state_dir.join("history.sqlite")
    }

    /// Opens (creating if needed) the history at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<History> {
        let err = |source| Error::Sqlite { path: path.to_path_buf(), source };
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let mut conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(err)?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(err)?;
        for (i, migration) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
            let tx = conn.transaction().map_err(err)?;
            tx.execute_batch(migration).map_err(err)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64).map_err(err)?;
            tx.commit().map_err(err)?;
        }
        Ok(History { path: path.to_path_buf(), conn })
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> Error + '_ {
        |source| Error::Sqlite { path: self.path.clone(), source }
    }

    /// Records a finished run (a rerun with the same id replaces it).
    pub fn record(&self, report: &RunReport) -> Result<()> {
        let json = serde_json::to_string(report).expect("a report serialises");
        self.conn
            .execute(
                "INSERT OR REPLACE INTO runs (run_id, pipeline, started_at, finished_at, status, quality_score,
                 decision, deployed_version, report_dir, report_json) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    report.run_id.as_str(),
                    report.pipeline,
                    report.started_at.to_rfc3339(),
                    report.finished_at.to_rfc3339(),
                    report.status.name(),
                    report.quality.as_ref().map(|q| q.score),
                    report.gate.decision.name(),
                    report.gate.deployed_version.map(|v| v.to_string()),
                    report.report_dir,
                    json,
                ],
            )
            .map_err(self.err())?;
        Ok(())
    }

    /// The newest `limit` runs, newest first.
    pub fn runs(&self, limit: usize) -> Result<Vec<RunRow>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT run_id, pipeline, started_at, status, quality_score, decision, deployed_version, report_dir
                 FROM runs ORDER BY started_at DESC, run_id DESC LIMIT ?1",
            )
            .map_err(self.err())?;
        let rows = stmt
            .query_map([limit as i64], |r| {
                Ok(RunRow {
                    run_id: r.get(0)?,
                    pipeline: r.get(1)?,
                    started_at: r.get(2)?,
                    status: r.get(3)?,
                    quality_score: r.get(4)?,
                    decision: r.get(5)?,
                    deployed_version: r.get(6)?,
                    report_dir: r.get(7)?,
                })
            })
            .map_err(self.err())?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(self.err())
    }

    /// The reports of `pipeline`'s runs up to and including `run_id` (up to now when `None`), at
    /// most `limit` of them, oldest first: the trend of `report.html`.
    pub fn recent_reports(&self, pipeline: &str, run_id: Option<&str>, limit: usize) -> Result<Vec<RunReport>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT run_id, report_json FROM runs
                 WHERE pipeline = ?1
                   AND (?2 IS NULL OR started_at <= (SELECT started_at FROM runs WHERE run_id = ?2))
                 ORDER BY started_at DESC, run_id DESC LIMIT ?3",
            )
            .map_err(self.err())?;
        let rows = stmt
            .query_map(params![pipeline, run_id, limit as i64], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(self.err())?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.err())?;
        let mut reports = rows.iter().map(|(id, json)| self.parse(id, json)).collect::<Result<Vec<_>>>()?;
        reports.reverse();
        Ok(reports)
    }

    /// Every recorded run's report, oldest first: the history export.
    pub fn all_reports(&self) -> Result<Vec<RunReport>> {
        let mut stmt = self
            .conn
            .prepare("SELECT run_id, report_json FROM runs ORDER BY started_at, run_id")
            .map_err(self.err())?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(self.err())?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(self.err())?;
        rows.iter().map(|(id, json)| self.parse(id, json)).collect()
    }

    fn parse(&self, run_id: &str, json: &str) -> Result<RunReport> {
        serde_json::from_str(json).map_err(|e| Error::Corrupt {
            path: self.path.clone(),
            run_id: run_id.to_string(),
            reason: e.to_string(),
        })
    }

    /// The full report of one run.
    pub fn report(&self, run_id: &str) -> Result<Option<RunReport>> {
        let json: Option<String> = self
            .conn
            .query_row("SELECT report_json FROM runs WHERE run_id = ?1", [run_id], |r| r.get(0))
            .optional()
            .map_err(self.err())?;
        json.map(|j| self.parse(run_id, &j)).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(pipeline: &str, run_id: &str, started_at: &str) -> RunReport {
        serde_json::from_value(serde_json::json!({
            "schema_version": 1, "run_id": run_id, "pipeline": pipeline, "config_path": "p.toml",
            "config_hash": "h", "started_at": started_at, "finished_at": started_at, "status": "succeeded",
            "message": null, "data": null, "quality": null, "split": null, "candidates": [], "champion": null,
            "gate": {"decision": "skipped", "candidate": null, "deployed_version": null, "reasons": [], "rules": []},
            "patterns": null, "stages": [], "report_dir": format!("reports/{run_id}")
        }))
        .unwrap()
    }

    fn ids(reports: &[RunReport]) -> Vec<&str> {
        reports.iter().map(|r| r.run_id.as_str()).collect()
    }

    #[test]
    fn recent_reports_are_one_pipelines_runs_up_to_a_run_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let history = History::open(&dir.path().join("history.sqlite")).unwrap();
        history.record(&report("a", "r3", "2026-11-03T02:00:00Z")).unwrap();
        history.record(&report("a", "r1", "2026-11-01T02:00:00Z")).unwrap();
        history.record(&report("b", "b1", "2026-11-02T03:00:00Z")).unwrap();
        history.record(&report("a", "r2", "2026-11-02T02:00:00Z")).unwrap();

        assert_eq!(ids(&history.recent_reports("a", None, 10).unwrap()), ["r1", "r2", "r3"]);
        assert_eq!(ids(&history.recent_reports("a", Some("r2"), 10).unwrap()), ["r1", "r2"]);
        assert_eq!(ids(&history.recent_reports("a", None, 2).unwrap()), ["r2", "r3"]);
        assert_eq!(ids(&history.recent_reports("a", Some("missing"), 10).unwrap()), Vec::<&str>::new());
        assert_eq!(ids(&history.all_reports().unwrap()), ["r1", "r2", "b1", "r3"]);
    }

    #[test]
    fn an_unreadable_report_is_named_by_its_run() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.sqlite");
        let history = History::open(&path).unwrap();
        history.record(&report("a", "r1", "2026-11-01T02:00:00Z")).unwrap();
        history
            .conn
            .execute("UPDATE runs SET report_json = '{\"schema_version\": 1}' WHERE run_id = 'r1'", [])
            .unwrap();
        let err = history.all_reports().unwrap_err().to_string();
        assert!(err.contains("run r1 has an unreadable report"), "{err}");
        assert!(err.contains("history.sqlite"), "{err}");
    }
}
