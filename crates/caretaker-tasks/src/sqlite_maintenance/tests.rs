use crate::testing::{self, build};
use caretaker_core::task::TaskStatus;
use rusqlite::Connection;
use std::path::Path;

/// A database with real bloat: `rows` rows of 500 bytes inserted, then 90% of them deleted.
fn bloated_database(path: &Path, rows: i64, wal: bool) {
    let conn = Connection::open(path).unwrap();
    if wal {
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    }
    conn.execute_batch("CREATE TABLE events (id INTEGER PRIMARY KEY, payload BLOB NOT NULL); CREATE INDEX events_payload ON events (payload);")
        .unwrap();
    let tx = conn.unchecked_transaction().unwrap();
    {
        let mut insert = tx.prepare("INSERT INTO events (id, payload) VALUES (?1, randomblob(500))").unwrap();
        for id in 0..rows {
            insert.execute([id]).unwrap();
        }
    }
    tx.commit().unwrap();
    conn.execute("DELETE FROM events WHERE id % 10 != 0", []).unwrap();
    if wal {
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).unwrap();
    }
}

fn count(path: &Path) -> i64 {
    Connection::open(path).unwrap().query_row("SELECT count(*) FROM events", [], |r| r.get(0)).unwrap()
}

fn backups(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir).map(|e| e.flatten().map(|e| e.path()).collect()).unwrap_or_default()
}

#[tokio::test]
async fn a_bloated_database_is_backed_up_checked_and_shrinks() {
    for wal in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        bloated_database(&dir.path().join("state.sqlite"), 5_000, wal);
        let size_before = caretaker_core::fs::disk_size(&dir.path().join("state.sqlite"));
        let task = build("sqlite_maintenance", "database = 'state.sqlite'\nbackup_dir = 'backups'", dir.path());
        let outcome = testing::run(task.as_ref(), dir.path()).await;
        assert_eq!(outcome.status, TaskStatus::Succeeded, "{}", outcome.summary);
        eprintln!("wal={wal}: {}", outcome.summary); // the figures, for `cargo test -- --nocapture`
        assert_eq!(outcome.metrics["bytes_before"], size_before as f64);
        assert!(
            outcome.metrics["bytes_after"] < 0.3 * outcome.metrics["bytes_before"],
            "wal={wal}: {} -> {}",
            outcome.metrics["bytes_before"],
            outcome.metrics["bytes_after"]
        );
        assert_eq!(outcome.metrics["free_pages_after"], 0.0);
        assert!(outcome.metrics["bytes_freed"] > 0.0);
        assert_eq!(outcome.metrics["integrity_problems"], 0.0);
        assert!(caretaker_core::fs::disk_size(&dir.path().join("state.sqlite")) < size_before);
        // The backup: one complete file, named with the time, holding the same rows.
        let files = backups(&dir.path().join("backups"));
        assert_eq!(files.len(), 1, "{files:?}");
        assert!(files[0].file_name().unwrap().to_string_lossy().starts_with("state-20261128T020000Z"));
        assert_eq!(count(&files[0]), 500);
        assert_eq!(count(&dir.path().join("state.sqlite")), 500);
    }
}

#[tokio::test]
async fn a_dry_run_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.sqlite");
    bloated_database(&db, 2_000, false);
    let hash = caretaker_core::fs::file_blake3(&db).unwrap();
    let task = build("sqlite_maintenance", "database = 'state.sqlite'\nbackup_dir = 'backups'", dir.path());
    let mut ctx = testing::context(&dir.path().join("task-state"));
    ctx.dry_run = true;
    let outcome = task.run(&ctx).await.unwrap();
    assert_eq!(outcome.status, TaskStatus::Succeeded);
    assert!(outcome.summary.starts_with("dry run on"), "{}", outcome.summary);
    assert!(outcome.metrics["free_pages_before"] > 0.0);
    assert_eq!(caretaker_core::fs::file_blake3(&db).unwrap(), hash);
    assert!(!dir.path().join("backups").exists());
}

#[tokio::test]
async fn a_missing_database_is_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let task = build("sqlite_maintenance", "database = 'nope.sqlite'\nbackup_dir = 'backups'", dir.path());
    let outcome = testing::run(task.as_ref(), dir.path()).await;
    assert_eq!(outcome.status, TaskStatus::Failed);
    assert!(outcome.summary.contains("cannot open") && outcome.summary.contains("nope.sqlite"), "{}", outcome.summary);
    assert!(!dir.path().join("nope.sqlite").exists());
}

#[tokio::test]
async fn a_damaged_database_is_not_vacuumed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.sqlite");
    bloated_database(&db, 2_000, false);
    // Garbage over the table's root page (most pages are free after the delete: garbage there
    // would go unnoticed, as it should).
    let root: usize = Connection::open(&db)
        .unwrap()
        .query_row("SELECT rootpage FROM sqlite_master WHERE name = 'events'", [], |r| r.get::<_, i64>(0))
        .unwrap() as usize;
    let mut bytes = std::fs::read(&db).unwrap();
    let page = (root - 1) * 4096;
    bytes[page..page + 4096].fill(0xA5);
    std::fs::write(&db, &bytes).unwrap();
    let task = build("sqlite_maintenance", "database = 'state.sqlite'\nbackup_dir = 'backups'", dir.path());
    let outcome = testing::run(task.as_ref(), dir.path()).await;
    assert_eq!(outcome.status, TaskStatus::Failed, "{}", outcome.summary);
    assert!(
        outcome.summary.contains("not vacuumed") || outcome.summary.contains("nothing was vacuumed"),
        "{}",
        outcome.summary
    );
    assert_eq!(std::fs::read(&db).unwrap(), bytes, "the damaged file is left as it was");
}

#[tokio::test]
async fn a_full_disk_during_the_backup_fails_and_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.sqlite");
    bloated_database(&db, 2_000, false);
    let hash = caretaker_core::fs::file_blake3(&db).unwrap();
    let Some(_disk) = testing::TinyDisk::mount(&dir.path().join("backups")) else { return };
    let task = build("sqlite_maintenance", "database = 'state.sqlite'\nbackup_dir = 'backups'", dir.path());
    let outcome = testing::run(task.as_ref(), dir.path()).await;
    assert_eq!(outcome.status, TaskStatus::Failed);
    assert!(
        outcome.summary.contains("backup of") && outcome.summary.contains("nothing was vacuumed"),
        "{}",
        outcome.summary
    );
    assert!(outcome.summary.to_lowercase().contains("full"), "{}", outcome.summary);
    assert_eq!(caretaker_core::fs::file_blake3(&db).unwrap(), hash, "the database was not vacuumed");
    assert_eq!(backups(&dir.path().join("backups")), Vec::<std::path::PathBuf>::new(), "no partial backup is left");
}

#[tokio::test]
async fn vacuum_false_backs_up_and_checks_only() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.sqlite");
    bloated_database(&db, 2_000, false);
    let hash = caretaker_core::fs::file_blake3(&db).unwrap();
    let task =
        build("sqlite_maintenance", "database = 'state.sqlite'\nbackup_dir = 'backups'\nvacuum = false", dir.path());
    let outcome = testing::run(task.as_ref(), dir.path()).await;
    assert_eq!(outcome.status, TaskStatus::Succeeded, "{}", outcome.summary);
    assert!(outcome.summary.ends_with("not vacuumed (vacuum = false)"), "{}", outcome.summary);
    assert_eq!(backups(&dir.path().join("backups")).len(), 1);
    assert_eq!(caretaker_core::fs::file_blake3(&db).unwrap(), hash);
}
