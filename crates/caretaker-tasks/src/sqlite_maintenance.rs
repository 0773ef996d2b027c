//! `sqlite_maintenance`: online backup, `integrity_check`, `VACUUM`, `ANALYZE`, with the file's
//! size (database and write-ahead log) before and after.
//!
//! The backup uses SQLite's online backup API, so writers can go on while it copies; it is
//! written to a temporary file in the backup directory, checked with `quick_check`, synced and
//! only then renamed to `<name>-<UTC time>.sqlite`: a full disk or a cancelled task leaves no
//! half backup. A database that fails `integrity_check` is not vacuumed (VACUUM of a damaged file
//! can drop rows); the task fails and names the problems. The database must exist: it is never
//! created. All of it runs on a blocking thread; a task dropped at a timeout still finishes the
//! SQLite statement in progress.

use crate::error::{Error, Result};
use crate::params::{problem, resolve};
use crate::redact;
use caretaker_core::config::ConfigProblem;
use caretaker_core::task::{BoxFuture, Task, TaskContext, TaskError, TaskOutcome, parse_params};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Parameters of `sqlite_maintenance`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqliteMaintenanceConfig {
    /// The database file, relative to the catalog's root (for the run history:
    /// `state/history.sqlite`).
    pub database: PathBuf,
    /// Where backups go (created if missing), relative to the catalog's root.
    pub backup_dir: PathBuf,
    /// How long to wait for another connection's lock, in seconds. Default 30.
    #[serde(default = "default_busy")]
    pub busy_timeout_seconds: u64,
    /// `false`: back up and check integrity only (a backup task another task can require as a
    /// prerequisite). Default true.
    #[serde(default = "default_vacuum")]
    pub vacuum: bool,
}

fn default_vacuum() -> bool {
    true
}

fn default_busy() -> u64 {
    30
}

#[derive(Clone)]
pub struct SqliteMaintenance {
    database: PathBuf,
    backup_dir: PathBuf,
    busy_timeout: Duration,
    vacuum: bool,
}

impl SqliteMaintenance {
    pub fn build(params: &toml::Table, root: &Path) -> Result<SqliteMaintenance, ConfigProblem> {
        let config: SqliteMaintenanceConfig = parse_params(params)?;
        let database = resolve(root, &config.database);
        let backup_dir = resolve(root, &config.backup_dir);
        if backup_dir == database {
            return Err(problem("backup_dir", "must be a directory, not the database itself"));
        }
        Ok(SqliteMaintenance {
            database,
            backup_dir,
            busy_timeout: Duration::from_secs(config.busy_timeout_seconds),
            vacuum: config.vacuum,
        })
    }
}

/// The file's figures at one moment.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct SqliteSize {
    /// The database file plus its write-ahead log, from the file system.
    pub file_bytes: u64,
    pub page_size: i64,
    pub page_count: i64,
    /// Pages on the free list: what a VACUUM gives back.
    pub freelist_count: i64,
}

fn measure(conn: &Connection, path: &Path) -> rusqlite::Result<SqliteSize> {
    let pragma = |name: &str| conn.pragma_query_value(None, name, |r| r.get::<_, i64>(0));
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let file_bytes = caretaker_core::fs::disk_size(path) + caretaker_core::fs::disk_size(Path::new(&wal));
    Ok(SqliteSize {
        file_bytes,
        page_size: pragma("page_size")?,
        page_count: pragma("page_count")?,
        freelist_count: pragma("freelist_count")?,
    })
}

fn integrity_problems(conn: &Connection, pragma: &str) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare(&format!("PRAGMA {pragma}"))?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?.collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(if rows == ["ok"] { Vec::new() } else { rows })
}

#[derive(Debug, Serialize)]
struct Backup {
    path: String,
    bytes: u64,
    seconds: f64,
}

/// Copies the live database to a checked file in `dir`.
fn backup(conn: &Connection, source: &Path, dir: &Path, now: DateTime<Utc>) -> Result<Backup> {
    std::fs::create_dir_all(dir).map_err(|e| Error::file("create the backup directory", dir, e))?;
    let stem = source.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "database".into());
    let target = dir.join(format!("{stem}-{}.sqlite", now.format("%Y%m%dT%H%M%SZ")));
    let temp = tempfile::Builder::new()
        .prefix(".caretaker-tmp-")
        .suffix(".sqlite")
        .tempfile_in(dir)
        .map_err(|e| Error::file("create a file in the backup directory", dir, e))?;
    let copy_path = temp.path().to_path_buf();
    let copying = || format!("copying {} to {}", source.display(), copy_path.display());
    let started = Instant::now();
    let copied = (|| {
        let mut copy = Connection::open(&copy_path).map_err(|e| Error::step(copying(), e))?;
        // A fresh file needs no rollback journal, and a failed copy then leaves no journal behind.
        copy.pragma_update(None, "journal_mode", "OFF").map_err(|e| Error::step(copying(), e))?;
        rusqlite::backup::Backup::new(conn, &mut copy)
            .and_then(|b| b.run_to_completion(256, Duration::from_millis(5), None))
            .map_err(|e| Error::step(copying(), e))?;
        let checking = || format!("checking the copy {}", copy_path.display());
        let problems = integrity_problems(&copy, "quick_check").map_err(|e| Error::step(checking(), e))?;
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::step(checking(), format!("quick_check found {}", problems.join("; "))))
        }
    })();
    if let Err(e) = copied {
        for sidecar in ["-journal", "-wal", "-shm"] {
            let mut path = temp.path().as_os_str().to_owned();
            path.push(sidecar);
            let _ = std::fs::remove_file(path);
        }
        return Err(e);
    }
    let bytes = temp.as_file().metadata().map_err(|e| Error::file("measure the copy", &copy_path, e))?.len();
    if bytes == 0 {
        return Err(Error::step(copying(), "the copy is empty"));
    }
    temp.as_file().sync_all().map_err(|e| Error::file("sync the copy", &copy_path, e))?;
    temp.persist(&target).map_err(|e| Error::file("rename the copy to", &target, e.error))?;
    caretaker_core::fs::sync_dir(dir).map_err(|e| Error::step("syncing the backup directory", e))?;
    Ok(Backup { path: target.display().to_string(), bytes, seconds: started.elapsed().as_secs_f64() })
}

impl SqliteMaintenance {
    fn maintain(&self, now: DateTime<Utc>, dry_run: bool) -> TaskOutcome {
        let db = self.database.display().to_string();
        let conn = match Connection::open_with_flags(
            &self.database,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI,
        ) {
            Ok(c) => c,
            Err(e) => return TaskOutcome::failed(format!("cannot open {db}: {e}; nothing was changed")),
        };
        if let Err(e) = conn.busy_timeout(self.busy_timeout) {
            return TaskOutcome::failed(format!("{db}: {e}"));
        }
        let fail = |what: &str, e: rusqlite::Error| TaskOutcome::failed(format!("{db}: {what} failed: {e}"));
        let before = match measure(&conn, &self.database) {
            Ok(s) => s,
            Err(e) => return fail("measuring", e),
        };
        let mut outcome = TaskOutcome::succeeded("");
        outcome.metrics.insert("bytes_before".into(), before.file_bytes as f64);
        outcome.metrics.insert("free_pages_before".into(), before.freelist_count as f64);

        if dry_run {
            let problems = match integrity_problems(&conn, "integrity_check") {
                Ok(p) => p,
                Err(e) => return fail("integrity_check", e),
            };
            outcome.metrics.insert("integrity_problems".into(), problems.len() as f64);
            outcome.summary = format!(
                "dry run on {db}: {} bytes, {} free pages ({} bytes a VACUUM would give back), integrity_check {}",
                before.file_bytes,
                before.freelist_count,
                before.freelist_count * before.page_size,
                if problems.is_empty() { "ok".to_string() } else { format!("found {} problems", problems.len()) }
            );
            outcome.details = serde_json::json!({ "database": db, "before": before, "integrity_problems": problems, "dry_run": true });
            return outcome;
        }

        let backup = match backup(&conn, &self.database, &self.backup_dir, now) {
            Ok(b) => b,
            Err(e) => {
                return TaskOutcome {
                    metrics: outcome.metrics,
                    ..TaskOutcome::failed(format!("backup of {db} failed, nothing was vacuumed: {e}"))
                };
            }
        };
        outcome.metrics.insert("backup_bytes".into(), backup.bytes as f64);
        caretaker_core::crash_point("sqlite_maintenance:backed_up");

        let problems = match integrity_problems(&conn, "integrity_check") {
            Ok(p) => p,
            Err(e) => return fail("integrity_check", e),
        };
        outcome.metrics.insert("integrity_problems".into(), problems.len() as f64);
        if !problems.is_empty() {
            return TaskOutcome {
                metrics: outcome.metrics,
                details: serde_json::json!({ "database": db, "backup": backup, "integrity_problems": problems }),
                ..TaskOutcome::failed(format!(
                    "{db} fails integrity_check ({} problems, first: {}); not vacuumed; backup at {}",
                    problems.len(),
                    problems[0],
                    backup.path
                ))
            };
        }
        if !self.vacuum {
            outcome.summary = format!(
                "{db}: backup {} ({} bytes), integrity_check ok; not vacuumed (vacuum = false)",
                backup.path, backup.bytes
            );
            outcome.details = serde_json::json!({ "database": db, "backup": backup, "before": before });
            return outcome;
        }
        let started = Instant::now();
        if let Err(e) = conn.execute_batch("VACUUM; ANALYZE;") {
            return TaskOutcome { metrics: outcome.metrics, ..fail("VACUUM and ANALYZE", e) };
        }
        // In WAL mode the freed pages leave the file only when the log is checkpointed.
        let journal: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0)).unwrap_or_default();
        if journal.eq_ignore_ascii_case("wal")
            && let Err(e) = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        {
            return TaskOutcome { metrics: outcome.metrics, ..fail("checkpointing the write-ahead log", e) };
        }
        let seconds = started.elapsed().as_secs_f64();
        let after = match measure(&conn, &self.database) {
            Ok(s) => s,
            Err(e) => return fail("measuring", e),
        };
        outcome.metrics.insert("bytes_after".into(), after.file_bytes as f64);
        outcome.metrics.insert("bytes_freed".into(), before.file_bytes as f64 - after.file_bytes as f64);
        outcome.metrics.insert("free_pages_after".into(), after.freelist_count as f64);
        outcome.metrics.insert("vacuum_seconds".into(), seconds);
        outcome.summary = format!(
            "{db}: backup {} ({} bytes), integrity_check ok, VACUUM and ANALYZE: {} -> {} bytes",
            backup.path, backup.bytes, before.file_bytes, after.file_bytes
        );
        outcome.details = serde_json::json!({ "database": db, "backup": backup, "before": before, "after": after });
        outcome
    }
}

impl Task for SqliteMaintenance {
    fn kind(&self) -> &'static str {
        "sqlite_maintenance"
    }

    fn metric_names(&self) -> Vec<String> {
        [
            "bytes_before",
            "free_pages_before",
            "integrity_problems",
            "backup_bytes",
            "bytes_after",
            "bytes_freed",
            "free_pages_after",
            "vacuum_seconds",
        ]
        .map(String::from)
        .to_vec()
    }

    fn run<'a>(&'a self, ctx: &'a TaskContext) -> BoxFuture<'a, Result<TaskOutcome, TaskError>> {
        Box::pin(async move {
            let task = self.clone();
            let (now, dry_run) = (ctx.started_at, ctx.dry_run);
            let outcome = crate::blocking("SQLite maintenance", move || task.maintain(now, dry_run))
                .await
                .unwrap_or_else(|e| TaskOutcome::failed(e.to_string()));
            Ok(redact::scrub_outcome(outcome, &[]))
        })
    }
}

#[cfg(test)]
mod tests;
