//! The run history: one row per nightly run, with its full report, in SQLite by default, or in
//! PostgreSQL when the pipeline names a database (`output.history = "postgres://..."`), so that
//! the runs of many machines are listed, trended and exported from one place.
//!
//! A data scientist lists and compares runs from here (`caretaker runs list`), and the report of
//! any past run can be rebuilt from it even after its report directory was cleaned up. The schema
//! is versioned: SQLite's `user_version`, PostgreSQL's `caretaker_schema` table (the component
//! `runs`, beside the scheduler's); each migration runs once, in order.
//!
//! ```no_run
//! # let config = caretaker_core::config::PipelineConfig::load("pipelines/nightly.toml".as_ref()).unwrap();
//! let history = caretaker_history::History::of(&config.output).unwrap();
//! for run in history.runs(Some(&config.name), 10).unwrap() {
//!     println!("{} {} {:?}", run.run_id, run.status, run.quality_score);
//! }
//! ```

use caretaker_core::config::OutputDirs;
use caretaker_core::report::RunReport;
use rusqlite::{Connection, OptionalExtension, params};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

mod postgres_store;
pub mod schema;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("run history {path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    /// `target` is the URL without its password.
    #[error("run history PostgreSQL {target}: {reason}")]
    Postgres { target: String, reason: String },
    #[error("run history {target}: run {run_id} has an unreadable report: {reason}")]
    Corrupt { target: String, run_id: String, reason: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The migrations, in order; `user_version` counts how many have run. The second keys a run by
/// its pipeline and id, as the PostgreSQL table does (two pipelines may share a history).
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE runs (
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
    CREATE INDEX runs_started_at ON runs (started_at);",
    "CREATE TABLE runs_by_pipeline (
        run_id TEXT NOT NULL,
        pipeline TEXT NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT NOT NULL,
        status TEXT NOT NULL,
        quality_score REAL,
        decision TEXT NOT NULL,
        deployed_version TEXT,
        report_dir TEXT NOT NULL,
        report_json TEXT NOT NULL,
        PRIMARY KEY (pipeline, run_id)
    );
    INSERT INTO runs_by_pipeline SELECT run_id, pipeline, started_at, finished_at, status, quality_score,
        decision, deployed_version, report_dir, report_json FROM runs;
    DROP TABLE runs;
    ALTER TABLE runs_by_pipeline RENAME TO runs;
    CREATE INDEX runs_started_at ON runs (started_at);",
];

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
    store: Store,
}

enum Store {
    Sqlite { path: PathBuf, conn: Connection },
    Postgres(Box<Mutex<postgres_store::PostgresRuns>>),
}

/// The columns of a run's row, as both stores write them.
struct Row<'a> {
    report: &'a RunReport,
    json: String,
}

impl<'a> Row<'a> {
    fn of(report: &'a RunReport) -> Row<'a> {
        Row { report, json: serde_json::to_string(report).expect("a report serialises") }
    }
    fn quality_score(&self) -> Option<f64> {
        self.report.quality.as_ref().map(|q| q.score)
    }
    fn deployed_version(&self) -> Option<String> {
        self.report.gate.deployed_version.map(|v| v.to_string())
    }
}

impl History {
    /// Where a pipeline keeps its SQLite run history: `history.sqlite` in its state directory
    /// (`output.state`). The one place the file is named.
    pub fn path_in(state_dir: &Path) -> PathBuf {
        state_dir.join("history.sqlite")
    }

    /// A pipeline's run history: in PostgreSQL when `output.history` names a database, else in
    /// SQLite in its state directory.
    pub fn of(output: &OutputDirs) -> Result<History> {
        match &output.history {
            Some(url) => History::connect(url),
            None => History::open(&History::path_in(&output.state)),
        }
    }

    /// [`History::of`] when there may be runs to read: `None` when the SQLite file was never
    /// made (no run yet), rather than an empty file made by a reader.
    pub fn existing(output: &OutputDirs) -> Result<Option<History>> {
        if output.history.is_none() && !History::path_in(&output.state).exists() {
            return Ok(None);
        }
        History::of(output).map(Some)
    }

    /// Where [`History::of`] keeps the runs, for messages: the SQLite file, or the database's URL
    /// without its password.
    pub fn describe(output: &OutputDirs) -> String {
        match &output.history {
            Some(url) => format!("PostgreSQL {}", caretaker_core::redact::redact_url(url)),
            None => History::path_in(&output.state).display().to_string(),
        }
    }

    /// Opens (creating if needed) the SQLite history at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<History> {
        let err = |source| Error::Sqlite { path: path.to_path_buf(), source };
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let mut conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(err)?;
        schema::migrate_sqlite(&mut conn, MIGRATIONS).map_err(err)?;
        Ok(History { store: Store::Sqlite { path: path.to_path_buf(), conn } })
    }

    /// Connects to the PostgreSQL history at `url` (creating its table if needed).
    pub fn connect(url: &str) -> Result<History> {
        Ok(History { store: Store::Postgres(Box::new(Mutex::new(postgres_store::PostgresRuns::connect(url)?))) })
    }

    fn target(&self) -> String {
        match &self.store {
            Store::Sqlite { path, .. } => path.display().to_string(),
            Store::Postgres(pg) => pg.lock().map(|pg| pg.target()).unwrap_or_default(),
        }
    }

    fn sqlite_err(path: &Path) -> impl Fn(rusqlite::Error) -> Error + '_ {
        |source| Error::Sqlite { path: path.to_path_buf(), source }
    }

    /// The PostgreSQL connection (a thread that panicked while holding it leaves it usable: its
    /// statements are each complete or not run).
    fn postgres(pg: &Mutex<postgres_store::PostgresRuns>) -> std::sync::MutexGuard<'_, postgres_store::PostgresRuns> {
        pg.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records a finished run (a rerun with the same id replaces it).
    pub fn record(&self, report: &RunReport) -> Result<()> {
        let row = Row::of(report);
        match &self.store {
            Store::Sqlite { path, conn } => {
                conn.execute(
                    "INSERT OR REPLACE INTO runs (run_id, pipeline, started_at, finished_at, status, quality_score,
                     decision, deployed_version, report_dir, report_json) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                    params![
                        report.run_id.as_str(),
                        report.pipeline,
                        report.started_at.to_rfc3339(),
                        report.finished_at.to_rfc3339(),
                        report.status.name(),
                        row.quality_score(),
                        report.gate.decision.name(),
                        row.deployed_version(),
                        report.report_dir,
                        row.json,
                    ],
                )
                .map_err(Self::sqlite_err(path))?;
                Ok(())
            }
            Store::Postgres(pg) => Self::postgres(pg).record(&row),
        }
    }

    /// The newest `limit` runs of `pipeline` (of every pipeline recorded here when `None`),
    /// newest first.
    pub fn runs(&self, pipeline: Option<&str>, limit: usize) -> Result<Vec<RunRow>> {
        match &self.store {
            Store::Sqlite { path, conn } => {
                let err = Self::sqlite_err(path);
                let mut stmt = conn
                    .prepare(
                        "SELECT run_id, pipeline, started_at, status, quality_score, decision, deployed_version, report_dir
                         FROM runs WHERE ?1 IS NULL OR pipeline = ?1 ORDER BY started_at DESC, run_id DESC LIMIT ?2",
                    )
                    .map_err(&err)?;
                let rows = stmt
                    .query_map(params![pipeline, limit as i64], |r| {
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
                    .map_err(&err)?;
                rows.collect::<rusqlite::Result<Vec<_>>>().map_err(&err)
            }
            Store::Postgres(pg) => Self::postgres(pg).runs(pipeline, limit),
        }
    }

    /// The reports of `pipeline`'s runs up to and including `run_id` (up to now when `None`), at
    /// most `limit` of them, oldest first: the trend of `report.html`.
    pub fn recent_reports(&self, pipeline: &str, run_id: Option<&str>, limit: usize) -> Result<Vec<RunReport>> {
        let rows = match &self.store {
            Store::Sqlite { path, conn } => {
                let err = Self::sqlite_err(path);
                let mut stmt = conn
                    .prepare(
                        "SELECT run_id, report_json FROM runs
                         WHERE pipeline = ?1
                           AND (?2 IS NULL OR started_at <= (SELECT started_at FROM runs WHERE run_id = ?2 AND pipeline = ?1))
                         ORDER BY started_at DESC, run_id DESC LIMIT ?3",
                    )
                    .map_err(&err)?;
                stmt.query_map(params![pipeline, run_id, limit as i64], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                })
                .map_err(&err)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(&err)?
            }
            Store::Postgres(pg) => Self::postgres(pg).recent_reports(pipeline, run_id, limit)?,
        };
        let mut reports = rows.iter().map(|(id, json)| self.parse(id, json)).collect::<Result<Vec<_>>>()?;
        reports.reverse();
        Ok(reports)
    }

    /// Every recorded run's report of `pipeline` (of every pipeline when `None`), oldest first:
    /// the history export.
    pub fn all_reports(&self, pipeline: Option<&str>) -> Result<Vec<RunReport>> {
        let rows = match &self.store {
            Store::Sqlite { path, conn } => {
                let err = Self::sqlite_err(path);
                let mut stmt = conn
                    .prepare(
                        "SELECT run_id, report_json FROM runs WHERE ?1 IS NULL OR pipeline = ?1
                         ORDER BY started_at, run_id",
                    )
                    .map_err(&err)?;
                stmt.query_map([pipeline], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
                    .map_err(&err)?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map_err(&err)?
            }
            Store::Postgres(pg) => Self::postgres(pg).all_reports(pipeline)?,
        };
        rows.iter().map(|(id, json)| self.parse(id, json)).collect()
    }

    fn parse(&self, run_id: &str, json: &str) -> Result<RunReport> {
        serde_json::from_str(json).map_err(|e| Error::Corrupt {
            target: self.target(),
            run_id: run_id.to_string(),
            reason: e.to_string(),
        })
    }

    /// The full report of one run (of `pipeline`'s runs, when given: two pipelines sharing a
    /// database may each have a run of the same id).
    pub fn report(&self, pipeline: Option<&str>, run_id: &str) -> Result<Option<RunReport>> {
        let json: Option<String> = match &self.store {
            Store::Sqlite { path, conn } => conn
                .query_row(
                    "SELECT report_json FROM runs WHERE run_id = ?1 AND (?2 IS NULL OR pipeline = ?2)",
                    params![run_id, pipeline],
                    |r| r.get(0),
                )
                .optional()
                .map_err(Self::sqlite_err(path))?,
            Store::Postgres(pg) => Self::postgres(pg).report(pipeline, run_id)?,
        };
        json.map(|j| self.parse(run_id, &j)).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use caretaker_test_support::postgres::TestDatabase;

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

    /// The history in SQLite and, when the server answers, in PostgreSQL (a database of its own,
    /// `None` when no server answers: the test then checks SQLite alone, unless
    /// CARETAKER_REQUIRE_SERVICES=1).
    fn stores(dir: &Path, db: Option<&TestDatabase>) -> Vec<History> {
        let mut stores = vec![History::open(&dir.join("history.sqlite")).unwrap()];
        stores.extend(db.map(|db| History::connect(db.url()).unwrap()));
        stores
    }

    #[test]
    fn recent_reports_are_one_pipelines_runs_up_to_a_run_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let db = TestDatabase::create("history_recent");
        for history in stores(dir.path(), db.as_ref()) {
            history.record(&report("a", "r3", "2026-11-03T02:00:00Z")).unwrap();
            history.record(&report("a", "r1", "2026-11-01T02:00:00Z")).unwrap();
            history.record(&report("b", "b1", "2026-11-02T03:00:00Z")).unwrap();
            history.record(&report("a", "r2", "2026-11-02T02:00:00Z")).unwrap();
            // A rerun with the same id replaces its row.
            history.record(&report("a", "r2", "2026-11-02T02:00:00Z")).unwrap();

            let store = history.target();
            assert_eq!(ids(&history.recent_reports("a", None, 10).unwrap()), ["r1", "r2", "r3"], "{store}");
            assert_eq!(ids(&history.recent_reports("a", Some("r2"), 10).unwrap()), ["r1", "r2"], "{store}");
            assert_eq!(ids(&history.recent_reports("a", None, 2).unwrap()), ["r2", "r3"], "{store}");
            assert_eq!(ids(&history.recent_reports("a", Some("missing"), 10).unwrap()), Vec::<&str>::new());
            assert_eq!(ids(&history.all_reports(None).unwrap()), ["r1", "r2", "b1", "r3"], "{store}");
            assert_eq!(ids(&history.all_reports(Some("b")).unwrap()), ["b1"], "{store}");
            let listed = |pipeline, limit| -> Vec<String> {
                history.runs(pipeline, limit).unwrap().into_iter().map(|r| r.run_id).collect()
            };
            assert_eq!(listed(None, 3), ["r3", "b1", "r2"], "{store}");
            assert_eq!(listed(Some("a"), 3), ["r3", "r2", "r1"], "{store}");
            assert_eq!(
                history.report(None, "b1").unwrap().unwrap(),
                report("b", "b1", "2026-11-02T03:00:00Z"),
                "{store}"
            );
            assert_eq!(history.report(Some("b"), "b1").unwrap().unwrap().pipeline, "b", "{store}");
            assert_eq!(history.report(Some("a"), "b1").unwrap(), None, "{store}");
            assert_eq!(history.report(None, "missing").unwrap(), None);
            // Two pipelines sharing a database may each have a run of the same id.
            history.record(&report("b", "r1", "2026-11-05T02:00:00Z")).unwrap();
            assert_eq!(
                history.report(Some("a"), "r1").unwrap().unwrap().started_at.to_rfc3339(),
                "2026-11-01T02:00:00+00:00"
            );
            assert_eq!(ids(&history.recent_reports("a", Some("r1"), 10).unwrap()), ["r1"], "{store}");
        }
    }

    #[test]
    fn a_history_of_the_first_schema_keeps_its_runs_when_keyed_by_pipeline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.sqlite");
        {
            // A history as the first release wrote it.
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
            let r = report("a", "r1", "2026-11-01T02:00:00Z");
            conn.execute(
                "INSERT INTO runs VALUES ('r1', 'a', ?1, ?1, 'succeeded', NULL, 'skipped', NULL, 'reports/r1', ?2)",
                params![r.started_at.to_rfc3339(), serde_json::to_string(&r).unwrap()],
            )
            .unwrap();
        }
        let history = History::open(&path).unwrap();
        assert_eq!(history.report(Some("a"), "r1").unwrap(), Some(report("a", "r1", "2026-11-01T02:00:00Z")));
        history.record(&report("b", "r1", "2026-11-02T02:00:00Z")).unwrap();
        assert_eq!(ids(&history.all_reports(None).unwrap()), ["r1", "r1"], "both pipelines' r1");
    }

    #[test]
    fn an_unreadable_report_is_named_by_its_run() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.sqlite");
        let history = History::open(&path).unwrap();
        history.record(&report("a", "r1", "2026-11-01T02:00:00Z")).unwrap();
        let Store::Sqlite { conn, .. } = &history.store else { unreachable!() };
        conn.execute("UPDATE runs SET report_json = '{\"schema_version\": 1}' WHERE run_id = 'r1'", []).unwrap();
        let err = history.all_reports(None).unwrap_err().to_string();
        assert!(err.contains("run r1 has an unreadable report"), "{err}");
        assert!(err.contains("history.sqlite"), "{err}");
    }

    #[test]
    fn a_database_that_refuses_is_named_without_its_password() {
        // Nothing listens on port 1.
        let err = History::connect("postgres://app:Sup3rS3cret@127.0.0.1:1/runs?connect_timeout=2")
            .err()
            .expect("no server on port 1")
            .to_string();
        assert!(err.contains("run history PostgreSQL postgres://app:***@127.0.0.1:1/runs"), "{err}");
        assert!(!err.contains("Sup3rS3cret"), "{err}");
    }
}
