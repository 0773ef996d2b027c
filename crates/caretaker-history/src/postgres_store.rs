//! The run history in PostgreSQL: the table `caretaker_runs`, one row per run, its report as
//! JSONB (queryable in SQL). No TLS (the database is expected on a trusted network or a local
//! socket, as the scheduler's history); messages never show the URL's password.

use crate::{Error, Result, Row, RunRow};
use chrono::{DateTime, Utc};
use postgres::{Client, NoTls};

/// The migrations, in order; `caretaker_schema` holds how many have run, per component.
const MIGRATIONS: &[&str] = &["CREATE TABLE caretaker_runs (
        run_id TEXT NOT NULL,
        pipeline TEXT NOT NULL,
        started_at TIMESTAMPTZ NOT NULL,
        finished_at TIMESTAMPTZ NOT NULL,
        status TEXT NOT NULL,
        quality_score DOUBLE PRECISION,
        decision TEXT NOT NULL,
        deployed_version TEXT,
        report_dir TEXT NOT NULL,
        report JSONB NOT NULL,
        PRIMARY KEY (pipeline, run_id)
    );
    CREATE INDEX caretaker_runs_pipeline_started_at ON caretaker_runs (pipeline, started_at);
    CREATE INDEX caretaker_runs_started_at ON caretaker_runs (started_at);"];

const COMPONENT: &str = "runs";

/// How long connecting may take when the URL does not say (`connect_timeout=N`).
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

pub(crate) struct PostgresRuns {
    /// The URL without its password.
    target: String,
    secrets: Vec<String>,
    client: Client,
}

impl PostgresRuns {
    pub fn connect(url: &str) -> Result<PostgresRuns> {
        let target = caretaker_core::redact::redact_url(url);
        let secrets = caretaker_core::redact::secrets_of(url);
        let mut config: postgres::Config = url.parse().map_err(|e| fail_with(&target, &secrets, e))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let client = config.connect(NoTls).map_err(|e| fail_with(&target, &secrets, e))?;
        let mut runs = PostgresRuns { target, secrets, client };
        runs.migrate()?;
        Ok(runs)
    }

    pub fn target(&self) -> String {
        self.target.clone()
    }

    fn fail(&self, e: postgres::Error) -> Error {
        fail_with(&self.target, &self.secrets, e)
    }

    fn migrate(&mut self) -> Result<()> {
        let script = crate::schema::postgres_migration(COMPONENT, MIGRATIONS);
        let mut tx = self.client.transaction().map_err(|e| fail_with(&self.target, &self.secrets, e))?;
        match tx.batch_execute(&script) {
            Ok(()) => tx.commit().map_err(|e| fail_with(&self.target, &self.secrets, e)),
            Err(e) => Err(fail_with(&self.target, &self.secrets, e)),
        }
    }

    pub fn record(&mut self, row: &Row<'_>) -> Result<()> {
        let r = row.report;
        self.client
            .execute(
                "INSERT INTO caretaker_runs (run_id, pipeline, started_at, finished_at, status, quality_score,
                 decision, deployed_version, report_dir, report)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, CAST($10::TEXT AS JSONB))
                 ON CONFLICT (pipeline, run_id) DO UPDATE SET started_at = EXCLUDED.started_at,
                   finished_at = EXCLUDED.finished_at, status = EXCLUDED.status,
                   quality_score = EXCLUDED.quality_score, decision = EXCLUDED.decision,
                   deployed_version = EXCLUDED.deployed_version, report_dir = EXCLUDED.report_dir,
                   report = EXCLUDED.report",
                &[
                    &r.run_id.as_str(),
                    &r.pipeline,
                    &r.started_at,
                    &r.finished_at,
                    &r.status.name(),
                    &row.quality_score(),
                    &r.gate.decision.name(),
                    &row.deployed_version(),
                    &r.report_dir,
                    &row.json,
                ],
            )
            .map_err(|e| self.fail(e))?;
        Ok(())
    }

    pub fn runs(&mut self, pipeline: Option<&str>, limit: usize) -> Result<Vec<RunRow>> {
        let rows = self
            .client
            .query(
                "SELECT run_id, pipeline, started_at, status, quality_score, decision, deployed_version, report_dir
                 FROM caretaker_runs WHERE $1::TEXT IS NULL OR pipeline = $1
                 ORDER BY started_at DESC, run_id DESC LIMIT $2",
                &[&pipeline, &(limit.min(i64::MAX as usize) as i64)],
            )
            .map_err(|e| self.fail(e))?;
        Ok(rows
            .iter()
            .map(|r| RunRow {
                run_id: r.get(0),
                pipeline: r.get(1),
                started_at: r.get::<_, DateTime<Utc>>(2).to_rfc3339(),
                status: r.get(3),
                quality_score: r.get(4),
                decision: r.get(5),
                deployed_version: r.get(6),
                report_dir: r.get(7),
            })
            .collect())
    }

    /// `(run_id, report JSON)` of `pipeline`'s runs up to `run_id`, newest first.
    pub fn recent_reports(
        &mut self,
        pipeline: &str,
        run_id: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, String)>> {
        let rows = self
            .client
            .query(
                "SELECT run_id, report::TEXT FROM caretaker_runs
                 WHERE pipeline = $1
                   AND ($2::TEXT IS NULL OR started_at <= (SELECT started_at FROM caretaker_runs
                                                          WHERE run_id = $2 AND pipeline = $1))
                 ORDER BY started_at DESC, run_id DESC LIMIT $3",
                &[&pipeline, &run_id, &(limit.min(i64::MAX as usize) as i64)],
            )
            .map_err(|e| self.fail(e))?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// `(run_id, report JSON)` of `pipeline`'s runs (every run when `None`), oldest first.
    pub fn all_reports(&mut self, pipeline: Option<&str>) -> Result<Vec<(String, String)>> {
        let rows = self
            .client
            .query(
                "SELECT run_id, report::TEXT FROM caretaker_runs WHERE $1::TEXT IS NULL OR pipeline = $1
                 ORDER BY started_at, run_id",
                &[&pipeline],
            )
            .map_err(|e| self.fail(e))?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    pub fn report(&mut self, pipeline: Option<&str>, run_id: &str) -> Result<Option<String>> {
        let row = self
            .client
            .query_opt(
                "SELECT report::TEXT FROM caretaker_runs WHERE run_id = $1 AND ($2::TEXT IS NULL OR pipeline = $2)
                 LIMIT 1",
                &[&run_id, &pipeline],
            )
            .map_err(|e| self.fail(e))?;
        Ok(row.map(|r| r.get(0)))
    }
}

/// The error of `e` on the history at `target`, the URL's `secrets` hidden in its text.
fn fail_with(target: &str, secrets: &[String], e: postgres::Error) -> Error {
    Error::Postgres { target: target.to_string(), reason: caretaker_core::redact::redact_with(&reason(&e), secrets) }
}

/// The server's message (`DbError`) where there is one: more useful than the driver's "db error".
fn reason(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => match std::error::Error::source(e) {
            Some(source) => format!("{e}: {source}"),
            None => e.to_string(),
        },
    }
}
