use super::*;
use crate::testing::{self, all_text, build, closed_port};
use caretaker_core::task::TaskStatus;
use caretaker_test_support::postgres::{TestDatabase, with_database};

async fn client(db: &TestDatabase) -> tokio_postgres::Client {
    connect::postgres(db.url(), Duration::from_secs(10)).await.unwrap()
}

/// `rows` rows with an index on a random-looking column, then 90% of them deleted from the end
/// of the table (so even a plain VACUUM can give the pages back). Autovacuum is off for the
/// table, so only the task cleans it.
async fn bloat(db: &TestDatabase, rows: i64) {
    let c = client(db).await;
    c.batch_execute(&format!(
        "CREATE TABLE events (id bigint PRIMARY KEY, payload text NOT NULL) WITH (autovacuum_enabled = false);
         INSERT INTO events SELECT i, md5(i::text) || md5((i * 7)::text) FROM generate_series(1, {rows}) AS i;
         CREATE INDEX events_payload ON events (payload);
         DELETE FROM events WHERE id > {};",
        rows / 10
    ))
    .await
    .unwrap();
    // The dead tuples reach the statistics when the session ends.
    drop(c);
    tokio::time::sleep(Duration::from_millis(1500)).await;
}

/// Dead tuples of the bloated table, as the statistics say now.
async fn dead_tuples(db: &TestDatabase) -> i64 {
    client(db)
        .await
        .query_one("SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'events'", &[])
        .await
        .unwrap()
        .get(0)
}

fn params(url: &str, extra: &str) -> String {
    format!(
        "url = '{url}'\nbackup_dir = 'backups'\nreindex_min_bytes = 65536\nprobe_query = 'SELECT count(*) FROM events'\n{extra}"
    )
}

fn files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir).map(|e| e.flatten().map(|e| e.path()).collect()).unwrap_or_default()
}

#[tokio::test]
async fn backup_then_vacuum_and_reindex_shrink_a_bloated_database() {
    let Some(db) = TestDatabase::create("caretaker_pgm") else { return };
    bloat(&db, 200_000).await;
    let dir = tempfile::tempdir().unwrap();
    let task = build("postgres_maintenance", &params(db.url(), ""), dir.path());
    let outcome = testing::run(task.as_ref(), dir.path()).await;
    let name = db.name().to_string();
    drop(db);

    assert_eq!(outcome.status, TaskStatus::Succeeded, "{}", outcome.summary);
    eprintln!("{}", outcome.summary); // the figures, for `cargo test -- --nocapture`
    let m = &outcome.metrics;
    assert!(m["dead_tuples_before"] >= 150_000.0, "{m:?}");
    assert!(m["dead_tuples_after"] < 1_000.0, "{m:?}");
    assert!(m["table_bytes_after"] < 0.5 * m["table_bytes_before"], "{m:?}");
    assert!(m["database_bytes_after"] < m["database_bytes_before"], "{m:?}");
    assert!(m["bytes_freed"] > 0.0);
    // Both indexes were 90% empty pages; both were rebuilt and shrank.
    assert_eq!(m["indexes_reindexed"], 2.0, "{}", outcome.details["indexes"]);
    assert!(m["index_bytes_after"] < 0.3 * m["index_bytes_before"], "{m:?}");
    assert!(m.contains_key("probe_ms_before") && m.contains_key("probe_ms_after"));
    // The backup came first: a non-empty dump, read back by pg_restore, named with the time.
    let dumps = files(&dir.path().join("backups"));
    assert_eq!(dumps.len(), 1, "{dumps:?}");
    assert_eq!(dumps[0].file_name().unwrap().to_string_lossy(), format!("{name}-20261128T020000Z.dump"));
    assert!(m["backup_bytes"] > 0.0);
    assert_eq!(std::fs::metadata(&dumps[0]).unwrap().len() as f64, m["backup_bytes"]);
    assert_eq!(outcome.details["backup"]["verified"], true);
    assert_eq!(m["backup_verified"], 1.0);
    assert!(!outcome.summary.contains("unverified"), "{}", outcome.summary);
}

#[tokio::test]
async fn without_pg_restore_the_backup_is_unverified_and_nothing_runs_unless_allowed() {
    let Some(pg_dump) = which("pg_dump") else { return };
    // pg_dump alone in a directory: no pg_restore beside it.
    let dir = tempfile::tempdir().unwrap();
    let tools = dir.path().join("tools");
    std::fs::create_dir_all(&tools).unwrap();
    std::os::unix::fs::symlink(&pg_dump, tools.join("pg_dump")).unwrap();
    let Some(db) = TestDatabase::create("caretaker_pgm") else { return };
    bloat(&db, 20_000).await;
    let extra = format!("pg_dump = '{}'", tools.join("pg_dump").display());
    let refused =
        testing::run(build("postgres_maintenance", &params(db.url(), &extra), dir.path()).as_ref(), dir.path()).await;
    let dead_after: i64 = dead_tuples(&db).await;
    let kept_after_refusal = files(&dir.path().join("backups")).len();
    let allowed = testing::run(
        build("postgres_maintenance", &params(db.url(), &format!("{extra}\nverify_backup = false")), dir.path())
            .as_ref(),
        dir.path(),
    )
    .await;
    drop(db);

    assert_eq!(refused.status, TaskStatus::Failed);
    assert!(refused.summary.contains("nothing was vacuumed or reindexed"), "{}", refused.summary);
    assert!(
        refused.summary.contains("pg_restore is not installed") && refused.summary.contains("verify_backup = false"),
        "{}",
        refused.summary
    );
    assert_eq!(dead_after as f64, refused.metrics["dead_tuples_before"], "nothing was vacuumed");
    assert_eq!(kept_after_refusal, 0, "an unverified dump is not kept as a backup");

    assert_eq!(allowed.status, TaskStatus::Succeeded, "{}", allowed.summary);
    assert!(allowed.summary.contains("unverified: verify_backup = false"), "{}", allowed.summary);
    assert_eq!(allowed.metrics["backup_verified"], 0.0);
    assert_eq!(allowed.details["backup"]["verified"], false);
    assert!(allowed.metrics["dead_tuples_after"] < allowed.metrics["dead_tuples_before"]);
}

/// A program on the PATH.
fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| Path::new(d).join(program)).find(|p| p.is_file())
}

#[tokio::test]
async fn a_dry_run_backs_up_nothing_and_changes_nothing() {
    let Some(db) = TestDatabase::create("caretaker_pgm") else { return };
    bloat(&db, 50_000).await;
    let dir = tempfile::tempdir().unwrap();
    let task = build("postgres_maintenance", &params(db.url(), ""), dir.path());
    let mut ctx = testing::context(&dir.path().join("state"));
    ctx.dry_run = true;
    let first = task.run(&ctx).await.unwrap();
    let second = task.run(&ctx).await.unwrap();
    drop(db);
    assert_eq!(first.status, TaskStatus::Succeeded, "{}", first.summary);
    assert!(first.summary.starts_with("dry run on"), "{}", first.summary);
    assert_eq!(first.metrics["dead_tuples_before"], second.metrics["dead_tuples_before"]);
    assert_eq!(first.metrics["indexes_to_reindex"], 2.0, "{}", first.details);
    assert!(!dir.path().join("backups").exists());
}

#[tokio::test]
async fn a_down_server_or_a_missing_database_fails_clearly_without_a_password() {
    let dir = tempfile::tempdir().unwrap();
    let down = format!("postgres://app:hunter2-secret@127.0.0.1:{}/main", closed_port());
    let outcome =
        testing::run(build("postgres_maintenance", &params(&down, ""), dir.path()).as_ref(), dir.path()).await;
    assert_eq!(outcome.status, TaskStatus::Failed);
    assert!(outcome.summary.starts_with("cannot connect to postgres://app:***@127.0.0.1:"), "{}", outcome.summary);
    assert!(outcome.summary.ends_with("nothing was backed up or changed"), "{}", outcome.summary);
    assert!(!all_text(&outcome).contains("hunter2-secret"));
    assert!(!dir.path().join("backups").exists());

    let Some(admin) = caretaker_test_support::postgres_url() else { return };
    let missing = with_database(&admin, "caretaker_no_such_database");
    let outcome =
        testing::run(build("postgres_maintenance", &params(&missing, ""), dir.path()).as_ref(), dir.path()).await;
    assert_eq!(outcome.status, TaskStatus::Failed);
    assert!(outcome.summary.contains("caretaker_no_such_database\" does not exist"), "{}", outcome.summary);

    let (hang, _server) = testing::silent_server().await;
    let hanging = format!("postgres://app:hunter2-secret@{hang}/main");
    let outcome = testing::run(
        build("postgres_maintenance", &params(&hanging, "connect_timeout_seconds = 0.5"), dir.path()).as_ref(),
        dir.path(),
    )
    .await;
    assert_eq!(outcome.status, TaskStatus::Failed);
    assert!(outcome.summary.contains("no answer within 0.5 s"), "{}", outcome.summary);
    assert!(!all_text(&outcome).contains("hunter2-secret"));
}

#[tokio::test]
async fn a_password_in_the_url_never_reaches_the_outcome() {
    let Some(db) = TestDatabase::create("caretaker_pgm") else { return };
    bloat(&db, 2_000).await;
    // The test server trusts loopback connections, so any password is accepted: it must still
    // never be shown, nor put on pg_dump's command line.
    let with_password = db.url().replacen("://postgres@", "://postgres:hunter2-secret@", 1);
    assert!(with_password.contains("hunter2-secret"), "the test URL has a user: {with_password}");
    let dir = tempfile::tempdir().unwrap();
    let outcome =
        testing::run(build("postgres_maintenance", &params(&with_password, ""), dir.path()).as_ref(), dir.path()).await;
    drop(db);
    assert_eq!(outcome.status, TaskStatus::Succeeded, "{}", outcome.summary);
    assert!(!all_text(&outcome).contains("hunter2-secret"), "{}", all_text(&outcome));
}

#[tokio::test]
async fn a_full_disk_during_the_backup_fails_and_vacuums_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let Some(_disk) = testing::TinyDisk::mount(&dir.path().join("backups")) else { return };
    let Some(db) = TestDatabase::create("caretaker_pgm") else { return };
    bloat(&db, 50_000).await;
    let task = build("postgres_maintenance", &params(db.url(), ""), dir.path());
    let outcome = testing::run(task.as_ref(), dir.path()).await;
    let dead_after: i64 = dead_tuples(&db).await;
    drop(db);
    assert_eq!(outcome.status, TaskStatus::Failed);
    assert!(
        outcome.summary.contains("backup of") && outcome.summary.contains("nothing was vacuumed or reindexed"),
        "{}",
        outcome.summary
    );
    assert!(outcome.summary.contains("No space left on device"), "{}", outcome.summary);
    assert_eq!(dead_after as f64, outcome.metrics["dead_tuples_before"], "nothing was vacuumed");
    assert_eq!(files(&dir.path().join("backups")), Vec::<PathBuf>::new(), "no partial dump is left");
}

#[test]
fn bloat_estimate_of_a_packed_and_a_sparse_index() {
    // 100 000 bigint keys: 16-byte tuples + 4-byte pointers, (8192 - 40) * 0.9 usable: 275 leaf
    // pages. Packed at ~280 pages: no bloat; the same tuples in 2 800 pages: ~90% bloat.
    let packed = estimated_bloat(280.0 * 8192.0, 100_000.0, 8192.0, 8.0, 90.0);
    assert!(packed < 0.02, "{packed}");
    let sparse = estimated_bloat(2_800.0 * 8192.0, 100_000.0, 8192.0, 8.0, 90.0);
    assert!((0.88..0.92).contains(&sparse), "{sparse}");
    assert_eq!(estimated_bloat(8192.0, 0.0, 8192.0, 8.0, 90.0), 0.0);
}

#[test]
fn bad_parameters_name_the_key() {
    use caretaker_core::task::TaskKinds;
    let root = Path::new(".");
    let problem = |p: &str| crate::Kinds.build("postgres_maintenance", &testing::table(p), root).err().unwrap();
    assert_eq!(problem("backup_dir = 'b'").key, "url");
    assert_eq!(problem("url = 'postgres://h/d'").key, "backup_dir");
    assert_eq!(
        problem("url = 'postgres://h/d'\nbackup_dir = 'b'\nreindex_bloat_threshold = 1.5").key,
        "reindex_bloat_threshold"
    );
    assert_eq!(problem("url = 'postgres://h/d'\nbackup_dir = 'b'\nvacum_full = true").key, "vacum_full");
    let p = problem("url = 'localhost:5432 password=hunter2'\nbackup_dir = 'b'");
    assert_eq!(p.key, "url");
    assert!(!p.reason.contains("hunter2"), "{p}");
}
