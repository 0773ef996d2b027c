//! One test suite, run against both stores: SQLite in a temporary directory, and PostgreSQL in
//! a database of its own (skipped, saying so, when no server answers; see
//! `caretaker_test_support::postgres_url`).

use super::*;
use crate::catalog::HistoryTarget;
use caretaker_test_support::postgres::TestDatabase;
use chrono::TimeZone;

/// A store of each kind, each fresh; the PostgreSQL database is dropped with it.
pub(crate) struct Fresh {
    pub target: HistoryTarget,
    pub state: tempfile::TempDir,
    _database: Option<TestDatabase>,
}

pub(crate) async fn targets() -> Vec<Fresh> {
    let state = tempfile::tempdir().unwrap();
    let mut out =
        vec![Fresh { target: HistoryTarget::Sqlite(state.path().join("executions.sqlite")), state, _database: None }];
    if let Some(database) = TestDatabase::create("sched") {
        out.push(Fresh {
            target: HistoryTarget::Postgres(database.url().to_string()),
            state: tempfile::tempdir().unwrap(),
            _database: Some(database),
        });
    }
    out
}

fn at(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, h, m, 0).single().unwrap()
}

fn execution(id: &str, task: &str, scheduled: Option<DateTime<Utc>>, started: DateTime<Utc>) -> Execution {
    Execution {
        id: id.into(),
        task_id: task.into(),
        task_name: task.into(),
        trigger: if scheduled.is_some() { Trigger::Schedule } else { Trigger::Manual },
        scheduled_for: scheduled,
        started_at: started,
        finished_at: None,
        status: ExecutionStatus::Running,
        summary: String::new(),
        attempts: Vec::new(),
        metrics: BTreeMap::new(),
        criteria: Vec::new(),
        rollback: None,
        estimated_seconds: 60.0,
        duration_seconds: None,
        scheduler: "test".into(),
        notes: Vec::new(),
        details: serde_json::Value::Null,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_store_records_claims_and_reports_executions() {
    for fresh in targets().await {
        let store = HistoryStore::open(&fresh.target, fresh.state.path()).await.unwrap();
        let what = store.describe();

        // A firing is claimed once: the second scheduler's insert does nothing.
        let first = execution("e1", "backup", Some(at(1, 0)), at(1, 0));
        assert!(store.claim(&first).await.unwrap(), "{what}");
        assert!(!store.claim(&execution("e2", "backup", Some(at(1, 0)), at(1, 0))).await.unwrap(), "{what}");
        // Another task at the same time, and manual runs (no firing), are separate.
        assert!(store.claim(&execution("e3", "update", Some(at(1, 0)), at(1, 0))).await.unwrap(), "{what}");
        assert!(store.claim(&execution("e4", "backup", None, at(3, 0))).await.unwrap(), "{what}");
        assert!(store.claim(&execution("e5", "backup", None, at(3, 5))).await.unwrap(), "{what}");

        let mut done = first.clone();
        done.status = ExecutionStatus::Succeeded;
        done.finished_at = Some(at(1, 7));
        done.metrics.insert("bytes".into(), 1e6);
        store.update(&done).await.unwrap();

        let all = store.since(at(0, 0)).await.unwrap();
        let ids: Vec<_> = all.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, vec!["e1", "e3", "e4", "e5"], "{what}");
        assert_eq!(all[0], done, "{what}: the record round-trips");
        assert_eq!(store.since(at(2, 0)).await.unwrap().len(), 2, "{what}");

        assert_eq!(store.latest_firing("backup").await.unwrap(), Some(at(1, 0)), "{what}");
        assert_eq!(store.latest_firing("nothing").await.unwrap(), None, "{what}");
        assert_eq!(store.last_success("backup").await.unwrap().map(|e| e.id), Some("e1".into()), "{what}");
        assert_eq!(store.last_success("update").await.unwrap(), None, "{what}");

        // Reopening runs no migration twice and keeps the data.
        drop(store);
        let store = HistoryStore::open(&fresh.target, fresh.state.path()).await.unwrap();
        assert_eq!(store.since(at(0, 0)).await.unwrap().len(), 4, "{what}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_lock_is_held_until_dropped_across_connections() {
    for fresh in targets().await {
        let a = HistoryStore::open(&fresh.target, fresh.state.path()).await.unwrap();
        let b = HistoryStore::open(&fresh.target, fresh.state.path()).await.unwrap();
        let what = a.describe();
        let held = a.lock_task("backup").await.unwrap();
        assert!(held.is_some(), "{what}");
        assert!(b.lock_task("backup").await.unwrap().is_none(), "{what}: a second run got the lock");
        assert!(b.lock_task("update").await.unwrap().is_some(), "{what}: other tasks are free");
        drop(held);
        // PostgreSQL releases the lock when the server sees the connection close.
        let mut again = None;
        for _ in 0..50 {
            again = b.lock_task("backup").await.unwrap();
            if again.is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(again.is_some(), "{what}: the lock was not released");
    }
}

#[tokio::test]
async fn passwords_stay_out_of_error_messages() {
    let err = match HistoryStore::open(
        &HistoryTarget::Postgres("postgres://caretaker:Sup3rS3cret@127.0.0.1:1/x".into()),
        std::path::Path::new("."),
    )
    .await
    {
        Err(e) => e.to_string(),
        Ok(_) => panic!("connected to port 1"),
    };
    assert!(!err.contains("Sup3rS3cret"), "{err}");
    assert!(err.contains("postgres://caretaker:***@127.0.0.1:1/x"), "{err}");
}
