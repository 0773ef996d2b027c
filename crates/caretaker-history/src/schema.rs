//! Versioned schemas, migrated one way by every store that keeps tables (the run history here, the
//! scheduler's execution history): a list of migrations, in order, each run once.
//!
//! - SQLite counts the migrations run in `user_version`; [`migrate_sqlite`] runs the missing ones
//!   in one `BEGIN IMMEDIATE` transaction, so two processes opening a new file do not both
//!   migrate it.
//! - PostgreSQL counts them per component in the table `caretaker_schema`;
//!   [`postgres_migration`] is one script, run in a transaction by either client (the sync one
//!   here, the scheduler's async one), that takes the advisory lock every component migrates
//!   under, so that components sharing a database take turns.

use rusqlite::Connection;

/// Brings the schema of `conn` up to date with `migrations`.
pub fn migrate_sqlite(conn: &mut Connection, migrations: &[&str]) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for (i, migration) in migrations.iter().enumerate().skip(version.max(0) as usize) {
        tx.execute_batch(migration)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
    }
    tx.commit()
}

/// The advisory lock every component migrates under ("cs" "mg" in ASCII).
const MIGRATION_LOCK: i64 = 0x6373_6d67;

/// The script that brings `component`'s tables up to date with `migrations`, to be run in one
/// transaction (`batch_execute`). A database migrated further by a newer release keeps its
/// version. `component` is a name in code (letters, digits, `_`), never user input.
pub fn postgres_migration(component: &str, migrations: &[&str]) -> String {
    assert!(component.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "a component name: {component}");
    let mut steps = String::new();
    for (i, migration) in migrations.iter().enumerate() {
        assert!(!migration.contains("$migration$"), "a migration of {component} holds the quote");
        steps.push_str(&format!("  IF done < {} THEN EXECUTE $migration${migration}$migration$; END IF;\n", i + 1));
    }
    format!(
        "SELECT pg_advisory_xact_lock({MIGRATION_LOCK});
CREATE TABLE IF NOT EXISTS caretaker_schema (component TEXT PRIMARY KEY, version INTEGER NOT NULL);
DO $caretaker$
DECLARE done INTEGER := coalesce((SELECT version FROM caretaker_schema WHERE component = '{component}'), 0);
BEGIN
{steps}  INSERT INTO caretaker_schema (component, version) VALUES ('{component}', {count})
    ON CONFLICT (component) DO UPDATE SET version = EXCLUDED.version
    WHERE caretaker_schema.version < EXCLUDED.version;
END
$caretaker$;",
        count = migrations.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIGRATIONS: &[&str] =
        &["CREATE TABLE a (x INTEGER);", "CREATE TABLE b (y INTEGER); CREATE INDEX b_y ON b (y);"];

    #[test]
    fn sqlite_runs_each_migration_once_and_only_the_missing_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.sqlite");
        let mut conn = Connection::open(&path).unwrap();
        migrate_sqlite(&mut conn, &MIGRATIONS[..1]).unwrap();
        conn.execute("INSERT INTO a VALUES (1)", []).unwrap();
        // A newer release adds the second; the first is not run again (its table keeps its row).
        migrate_sqlite(&mut conn, MIGRATIONS).unwrap();
        migrate_sqlite(&mut conn, MIGRATIONS).unwrap();
        let rows: i64 = conn.query_row("SELECT count(*) FROM a", [], |r| r.get(0)).unwrap();
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!((rows, version), (1, 2));
        conn.execute("INSERT INTO b VALUES (2)", []).unwrap();
    }

    #[test]
    fn postgresql_runs_each_migration_once_per_component_and_never_lowers_a_version() {
        let Some(database) = caretaker_test_support::postgres::TestDatabase::create("schema") else { return };
        let mut db = postgres::Client::connect(database.url(), postgres::NoTls).unwrap();
        let migrate = |db: &mut postgres::Client, component: &str, migrations: &[&str]| {
            let mut tx = db.transaction().unwrap();
            tx.batch_execute(&postgres_migration(component, migrations)).unwrap();
            tx.commit().unwrap();
        };
        migrate(&mut db, "first", &MIGRATIONS[..1]);
        db.execute("INSERT INTO a VALUES (1)", &[]).unwrap();
        migrate(&mut db, "first", MIGRATIONS);
        migrate(&mut db, "first", MIGRATIONS);
        // An older release (one migration) leaves the version at two.
        migrate(&mut db, "first", &MIGRATIONS[..1]);
        migrate(&mut db, "second", &["CREATE TABLE c (z INTEGER);"]);
        let rows: i64 = db.query_one("SELECT count(*) FROM a", &[]).unwrap().get(0);
        let versions: Vec<(String, i32)> = db
            .query("SELECT component, version FROM caretaker_schema ORDER BY component", &[])
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        assert_eq!(rows, 1);
        assert_eq!(versions, [("first".to_string(), 2), ("second".to_string(), 1)]);
    }
}
