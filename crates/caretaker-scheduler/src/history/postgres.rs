//! The execution history in PostgreSQL, shared by several schedulers.
//!
//! Selected by `[history] database = "postgres://..."` or `CARETAKER_DATABASE_URL`. No TLS (the
//! database is expected on a trusted network or a local socket). Messages never show the URL's
//! password.

use super::{Error, Execution, ExecutionStatus, Result, decode, encode};
use crate::redact::Redactor;
use chrono::{DateTime, Utc};
use tokio_postgres::{Client, NoTls};

/// The migrations, in order; `caretaker_schema` holds how many have run, per component.
const MIGRATIONS: &[&str] = &["CREATE TABLE scheduler_executions (
        id TEXT PRIMARY KEY,
        task_id TEXT NOT NULL,
        scheduled_for TIMESTAMPTZ,
        started_at TIMESTAMPTZ NOT NULL,
        finished_at TIMESTAMPTZ,
        status TEXT NOT NULL,
        record TEXT NOT NULL
    );
    CREATE UNIQUE INDEX scheduler_executions_firing ON scheduler_executions (task_id, scheduled_for);
    CREATE INDEX scheduler_executions_started_at ON scheduler_executions (started_at);"];

const COMPONENT: &str = "scheduler";

pub struct PostgresHistory {
    url: String,
    redactor: Redactor,
    client: Client,
}

/// A session-level advisory lock on its own connection; closing the connection releases it, so
/// a scheduler that dies releases its tasks too.
pub struct AdvisoryLock {
    _client: Client,
}

/// How long connecting may take when the URL does not say (`connect_timeout=N`): a server that
/// accepts and never answers must not hang the scheduler.
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Opens a connection, its driver running on the runtime.
pub async fn connect(url: &str) -> Result<Client> {
    connect_within(url, CONNECT_TIMEOUT).await
}

async fn connect_within(url: &str, default_timeout: std::time::Duration) -> Result<Client> {
    let redactor = Redactor::new([url]);
    let fail = |reason: String| Error::Store { target: redactor.redact(url), reason: redactor.redact(&reason) };
    let mut config: tokio_postgres::Config = url.parse().map_err(|e: tokio_postgres::Error| fail(e.to_string()))?;
    let timeout = *config.get_connect_timeout().unwrap_or(&default_timeout);
    config.connect_timeout(timeout);
    let (client, connection) = match tokio::time::timeout(timeout, config.connect(NoTls)).await {
        Ok(connected) => connected.map_err(|e| fail(e.to_string()))?,
        Err(_) => return Err(fail(format!("no answer within {} s", timeout.as_secs_f64()))),
    };
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!("history connection closed: {}", e);
        }
    });
    Ok(client)
}

/// A 64-bit key for a task's advisory lock (FNV-1a of the id: stable across processes).
fn task_key(task_id: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in b"caretaker-task:".iter().chain(task_id.as_bytes()) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash as i64
}

impl PostgresHistory {
    pub async fn open(url: &str) -> Result<PostgresHistory> {
        let redactor = Redactor::new([url]);
        let client = connect(url).await?;
        let history = PostgresHistory { url: url.to_string(), redactor, client };
        history.migrate().await?;
        Ok(history)
    }

    fn fail(&self, e: tokio_postgres::Error) -> Error {
        // The server's message (`DbError`) is more useful than the driver's "db error".
        let reason = match e.as_db_error() {
            Some(db) => format!("{}: {}", db.code().code(), db.message()),
            None => e.to_string(),
        };
        Error::Store { target: self.describe(), reason: self.redactor.redact(&reason) }
    }

    pub fn describe(&self) -> String {
        format!("PostgreSQL {}", self.redactor.redact(&self.url))
    }

    async fn migrate(&self) -> Result<()> {
        let mut client = connect(&self.url).await?;
        let tx = client.transaction().await.map_err(|e| self.fail(e))?;
        let script = caretaker_history::schema::postgres_migration(COMPONENT, MIGRATIONS);
        tx.batch_execute(&script).await.map_err(|e| self.fail(e))?;
        tx.commit().await.map_err(|e| self.fail(e))
    }

    pub async fn claim(&self, e: &Execution) -> Result<bool> {
        let inserted = self
            .client
            .execute(
                "INSERT INTO scheduler_executions (id, task_id, scheduled_for, started_at, status, record)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (task_id, scheduled_for) DO NOTHING",
                &[&e.id, &e.task_id, &e.scheduled_for, &e.started_at, &e.status.name(), &encode(e)],
            )
            .await
            .map_err(|err| self.fail(err))?;
        Ok(inserted == 1)
    }

    pub async fn update(&self, e: &Execution) -> Result<()> {
        self.client
            .execute(
                "UPDATE scheduler_executions SET finished_at = $2, status = $3, record = $4 WHERE id = $1",
                &[&e.id, &e.finished_at, &e.status.name(), &encode(e)],
            )
            .await
            .map(|_| ())
            .map_err(|err| self.fail(err))
    }

    pub async fn since(&self, from: DateTime<Utc>) -> Result<Vec<Execution>> {
        let rows = self
            .client
            .query(
                "SELECT id, record FROM scheduler_executions WHERE started_at >= $1 ORDER BY started_at, id",
                &[&from],
            )
            .await
            .map_err(|e| self.fail(e))?;
        let target = self.describe();
        rows.iter().map(|r| decode(&target, r.get(0), r.get(1))).collect()
    }

    pub async fn running(&self, task_id: &str) -> Result<Vec<Execution>> {
        let rows = self
            .client
            .query(
                "SELECT id, record FROM scheduler_executions WHERE task_id = $1 AND status = $2 ORDER BY started_at, id",
                &[&task_id, &ExecutionStatus::Running.name()],
            )
            .await
            .map_err(|e| self.fail(e))?;
        let target = self.describe();
        rows.iter().map(|r| decode(&target, r.get(0), r.get(1))).collect()
    }

    pub async fn latest_firing(&self, task_id: &str) -> Result<Option<DateTime<Utc>>> {
        let row = self
            .client
            .query_one("SELECT max(scheduled_for) FROM scheduler_executions WHERE task_id = $1", &[&task_id])
            .await
            .map_err(|e| self.fail(e))?;
        Ok(row.get(0))
    }

    pub async fn last_success(&self, task_id: &str) -> Result<Option<Execution>> {
        let row = self
            .client
            .query_opt(
                "SELECT id, record FROM scheduler_executions WHERE task_id = $1 AND status = $2
                 ORDER BY finished_at DESC LIMIT 1",
                &[&task_id, &ExecutionStatus::Succeeded.name()],
            )
            .await
            .map_err(|e| self.fail(e))?;
        row.map(|r| decode(&self.describe(), r.get(0), r.get(1))).transpose()
    }

    pub async fn lock_task(&self, task_id: &str) -> Result<Option<AdvisoryLock>> {
        let client = connect(&self.url).await?;
        let row = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&task_key(task_id)])
            .await
            .map_err(|e| self.fail(e))?;
        Ok(row.get::<_, bool>(0).then_some(AdvisoryLock { _client: client }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_task_has_a_lock_key_of_its_own() {
        assert_ne!(task_key("a"), task_key("b"));
    }

    #[tokio::test]
    async fn a_server_that_never_answers_is_given_up_on_without_showing_the_password() {
        // Accepts connections and says nothing.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let held: Vec<_> = listener.incoming().take(2).collect();
            std::thread::sleep(std::time::Duration::from_secs(30));
            drop(held);
        });
        let url = format!("postgres://app:hunter2-secret@127.0.0.1:{port}/history");
        let err = super::connect_within(&url, std::time::Duration::from_millis(300)).await.err().unwrap().to_string();
        assert!(err.contains("no answer within 0.3 s") || err.contains("timed out"), "{err}");
        assert!(err.contains(&format!("127.0.0.1:{port}")) && !err.contains("hunter2-secret"), "{err}");
    }
}
