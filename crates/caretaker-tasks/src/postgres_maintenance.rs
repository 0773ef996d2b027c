//! `postgres_maintenance`: backup first, then `VACUUM (ANALYZE)` and a REINDEX of the indexes
//! whose estimated bloat is over a threshold, with sizes, dead tuples and a probe query's time
//! measured before and after.
//!
//! The order is the safety: nothing is vacuumed or reindexed unless `pg_dump` wrote a
//! non-empty custom-format dump that `pg_restore --list` can read. Without `pg_restore` the
//! task fails before it changes anything, unless `verify_backup = false` says to go on with an
//! unverified backup (the summary says "unverified" and `backup_verified` is 0). The dump goes to a temporary
//! file in the backup directory and is renamed to `<database>-<UTC time>.dump` only when it is
//! complete, so a full disk or a killed task leaves no half backup that looks whole. `VACUUM` and
//! `REINDEX ... CONCURRENTLY` cannot run inside a transaction, so each is sent on its own, in
//! autocommit.
//!
//! Index bloat is estimated without extensions, from the catalog and the planner's statistics
//! (refreshed by the `VACUUM (ANALYZE)` just before): the pages a freshly built B-tree would need
//! for the index's tuples (key widths from `pg_stats`, the index's fillfactor) against the pages
//! it has. Estimated bloat = `1 - expected / actual`. Only B-tree indexes are considered.
//!
//! A dropped future (a scheduler timeout) kills `pg_dump` and removes its temporary file; a
//! `VACUUM` or `REINDEX` already sent finishes on the server. A `REINDEX CONCURRENTLY` that fails
//! leaves an invalid `*_ccnew` index, which PostgreSQL asks you to drop by hand: the outcome
//! names it.

use crate::connect;
use crate::error::{Error, Result};
use crate::params::{ConnectionUrl, positive, problem, resolve};
use crate::redact;
use caretaker_core::config::ConfigProblem;
use caretaker_core::task::{BoxFuture, Task, TaskContext, TaskError, TaskOutcome, parse_params};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Parameters of `postgres_maintenance`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresMaintenanceConfig {
    /// `postgres://user:password@host:port/database`, or `env:VARIABLE`. The password reaches
    /// `pg_dump` through `PGPASSWORD`, never its command line, and is never shown.
    pub url: ConnectionUrl,
    /// Where the dumps go (created if missing), relative to the catalog's root.
    pub backup_dir: PathBuf,
    /// The `pg_dump` program (`pg_restore` is looked for beside it). Default `pg_dump` on the PATH.
    #[serde(default = "default_pg_dump")]
    pub pg_dump: PathBuf,
    /// B-tree indexes whose estimated bloat is at or above this fraction are rebuilt. Default 0.3.
    #[serde(default = "default_bloat")]
    pub reindex_bloat_threshold: f64,
    /// Indexes smaller than this are never rebuilt (estimates of tiny indexes are noise).
    /// Default 1048576 (1 MiB).
    #[serde(default = "default_min_bytes")]
    pub reindex_min_bytes: u64,
    /// `REINDEX INDEX CONCURRENTLY` (writes go on meanwhile) rather than a plain REINDEX (which
    /// blocks writes to the table). Default true.
    #[serde(default = "default_true")]
    pub reindex_concurrently: bool,
    /// `VACUUM (FULL, ANALYZE)`: rewrites every table to give all free space back to the
    /// operating system, under an exclusive lock. Default false (a plain VACUUM only returns the
    /// empty pages at the end of a table).
    #[serde(default)]
    pub vacuum_full: bool,
    /// A query timed before and after (median of `probe_runs`), say your slowest dashboard query.
    /// Default: none.
    pub probe_query: Option<String>,
    /// Default 3.
    #[serde(default = "default_probe_runs")]
    pub probe_runs: usize,
    /// Connecting, and `pg_dump`'s connection, time out after this many seconds. Default 10.
    pub connect_timeout_seconds: Option<f64>,
    /// `false`: the backup only (a backup task another task can require as a prerequisite).
    /// Default true.
    #[serde(default = "default_true")]
    pub vacuum: bool,
    /// Read the dump back with `pg_restore --list` (found beside `pg_dump`) before anything is
    /// vacuumed or reindexed; without it the task fails. `false`: go on unverified, and say so.
    /// Default true.
    #[serde(default = "default_true")]
    pub verify_backup: bool,
}

fn default_pg_dump() -> PathBuf {
    "pg_dump".into()
}
fn default_bloat() -> f64 {
    0.3
}
fn default_min_bytes() -> u64 {
    1 << 20
}
fn default_true() -> bool {
    true
}
fn default_probe_runs() -> usize {
    3
}

pub struct PostgresMaintenance {
    config: PostgresMaintenanceConfig,
    connect_timeout: Duration,
}

impl PostgresMaintenance {
    pub fn build(params: &toml::Table, root: &Path) -> Result<PostgresMaintenance, ConfigProblem> {
        let mut config: PostgresMaintenanceConfig = parse_params(params)?;
        if !(0.0..=1.0).contains(&config.reindex_bloat_threshold) {
            return Err(problem(
                "reindex_bloat_threshold",
                format!("must be between 0 and 1, got {}", config.reindex_bloat_threshold),
            ));
        }
        if config.probe_runs == 0 {
            return Err(problem("probe_runs", "must be at least 1"));
        }
        if config.probe_query.as_deref().is_some_and(|q| q.trim().is_empty()) {
            return Err(problem("probe_query", "must not be empty"));
        }
        let connect_timeout = Duration::from_secs_f64(positive(
            "connect_timeout_seconds",
            config.connect_timeout_seconds.unwrap_or(10.0),
        )?);
        config.backup_dir = resolve(root, &config.backup_dir);
        if config.pg_dump.components().count() > 1 {
            config.pg_dump = resolve(root, &config.pg_dump);
        }
        Ok(PostgresMaintenance { config, connect_timeout })
    }
}

/// One table's figures.
#[derive(Debug, Clone, Serialize)]
pub struct TableSize {
    pub table: String,
    pub total_bytes: i64,
    pub live_tuples: i64,
    pub dead_tuples: i64,
}

/// One B-tree index's size and estimated bloat.
#[derive(Debug, Clone, Serialize)]
pub struct IndexBloat {
    pub index: String,
    pub table: String,
    pub bytes: i64,
    pub estimated_bloat: f64,
}

#[derive(Debug, Default, Serialize)]
struct Sizes {
    database_bytes: i64,
    tables: Vec<TableSize>,
}

impl Sizes {
    fn dead_tuples(&self) -> i64 {
        self.tables.iter().map(|t| t.dead_tuples).sum()
    }
    fn table_bytes(&self) -> i64 {
        self.tables.iter().map(|t| t.total_bytes).sum()
    }
}

async fn sizes(client: &tokio_postgres::Client) -> Result<Sizes, tokio_postgres::Error> {
    let database_bytes: i64 = client.query_one("SELECT pg_database_size(current_database())", &[]).await?.get(0);
    let rows = client
        .query(
            "SELECT format('%I.%I', schemaname, relname), pg_total_relation_size(relid), n_live_tup, n_dead_tup
             FROM pg_stat_user_tables ORDER BY 1",
            &[],
        )
        .await?;
    let tables = rows
        .iter()
        .map(|r| TableSize { table: r.get(0), total_bytes: r.get(1), live_tuples: r.get(2), dead_tuples: r.get(3) })
        .collect();
    Ok(Sizes { database_bytes, tables })
}

const INDEX_STATS: &str = r"
SELECT format('%I.%I', n.nspname, ic.relname),
       format('%I.%I', n.nspname, c.relname),
       pg_relation_size(i.indexrelid),
       (CASE WHEN ic.reltuples >= 0 THEN ic.reltuples ELSE greatest(c.reltuples, 0) END)::float8,
       current_setting('block_size')::float8,
       coalesce((SELECT sum(coalesce(s.avg_width, CASE WHEN a.attlen > 0 THEN a.attlen ELSE 32 END))
                 FROM unnest(i.indkey::int2[]) AS k(attnum)
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                 LEFT JOIN pg_stats s ON s.schemaname = n.nspname AND s.tablename = c.relname AND s.attname = a.attname),
                0)::float8,
       0 = ANY(i.indkey::int2[]),
       coalesce((regexp_match(array_to_string(ic.reloptions, ','), 'fillfactor=(\d+)'))[1]::float8, 90)
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_am am ON am.oid = ic.relam
WHERE am.amname = 'btree' AND i.indisvalid
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'
ORDER BY 1";

async fn index_bloat(client: &tokio_postgres::Client) -> Result<Vec<IndexBloat>, tokio_postgres::Error> {
    let rows = client.query(INDEX_STATS, &[]).await?;
    Ok(rows
        .iter()
        .filter(|r| !r.get::<_, bool>(6)) // expression indexes: key width unknown
        .map(|r| {
            let bytes: i64 = r.get(2);
            IndexBloat {
                index: r.get(0),
                table: r.get(1),
                bytes,
                estimated_bloat: estimated_bloat(bytes as f64, r.get(3), r.get(4), r.get(5), r.get(7)),
            }
        })
        .collect())
}

/// `1 - expected pages / actual pages` of a B-tree: each tuple is an 8-byte header plus its keys,
/// aligned to 8 bytes, plus a 4-byte line pointer; a page holds `block - 40` bytes (page header
/// and B-tree special space) filled to `fillfactor` percent; one metapage, and 1% of internal
/// pages on top of the leaves.
pub fn estimated_bloat(bytes: f64, tuples: f64, block_size: f64, key_width: f64, fillfactor: f64) -> f64 {
    let actual_pages = bytes / block_size;
    if actual_pages <= 1.0 {
        return 0.0;
    }
    let tuple_bytes = ((8.0 + key_width) / 8.0).ceil() * 8.0 + 4.0;
    let usable = (block_size - 40.0) * fillfactor / 100.0;
    let leaf_pages = (tuples * tuple_bytes / usable).ceil().max(1.0);
    let expected_pages = leaf_pages * 1.01 + 1.0;
    (1.0 - expected_pages / actual_pages).max(0.0)
}

async fn probe(client: &tokio_postgres::Client, query: &str, runs: usize) -> Result<f64, tokio_postgres::Error> {
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        client.simple_query(query).await?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// A written, checked dump.
#[derive(Debug, Serialize)]
struct Backup {
    path: String,
    bytes: u64,
    seconds: f64,
    /// Whether `pg_restore --list` read it back (false only with `verify_backup = false`).
    verified: bool,
}

impl PostgresMaintenance {
    async fn backup(&self, url: &str, database: &str, ctx: &TaskContext) -> Result<Backup> {
        let dir = &self.config.backup_dir;
        std::fs::create_dir_all(dir).map_err(|e| Error::file("create the backup directory", dir, e))?;
        let name = format!("{database}-{}.dump", ctx.started_at.format("%Y%m%dT%H%M%SZ"));
        let target = dir.join(&name);
        // Removed on drop: a failed or cancelled dump leaves nothing behind.
        let temp = tempfile::Builder::new()
            .prefix(".caretaker-tmp-")
            .suffix(".dump")
            .tempfile_in(dir)
            .map_err(|e| Error::file("create a file in the backup directory", dir, e))?;
        let started = Instant::now();
        let password = redact::password_of(url).map(|p| redact::percent_decode(&p));
        let mut dump = tokio::process::Command::new(&self.config.pg_dump);
        dump.arg("--format=custom")
            .arg("--file")
            .arg(temp.path())
            .arg("--dbname")
            .arg(redact::without_password(url))
            .env("PGCONNECT_TIMEOUT", self.connect_timeout.as_secs().max(2).to_string())
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        match &password {
            Some(p) => dump.env("PGPASSWORD", p),
            None => dump.env_remove("PGPASSWORD"),
        };
        let pg_dump = &self.config.pg_dump;
        let output = dump.output().await.map_err(|e| Error::file("run", pg_dump, e))?;
        let dumping = || format!("dumping {database} with {}", pg_dump.display());
        if !output.status.success() {
            let said = String::from_utf8_lossy(&output.stderr);
            return Err(Error::step(dumping(), format!("it exited with {}: {}", output.status, said.trim())));
        }
        let bytes = temp.as_file().metadata().map_err(|e| Error::file("measure the dump", temp.path(), e))?.len();
        if bytes == 0 {
            return Err(Error::step(dumping(), "it wrote an empty dump"));
        }
        let verified = self.config.verify_backup && self.verify(temp.path()).await?;
        temp.as_file().sync_all().map_err(|e| Error::file("sync the dump", temp.path(), e))?;
        temp.persist(&target).map_err(|e| Error::file("rename the dump to", &target, e.error))?;
        caretaker_core::fs::sync_dir(dir).map_err(|e| Error::step("syncing the backup directory", e))?;
        caretaker_core::crash_point("postgres_maintenance:backed_up");
        Ok(Backup { path: target.display().to_string(), bytes, seconds: started.elapsed().as_secs_f64(), verified })
    }

    /// Reads the dump's table of contents back with `pg_restore --list`; an error when it cannot.
    async fn verify(&self, dump: &Path) -> Result<bool> {
        let restore = match self.config.pg_dump.parent().filter(|p| !p.as_os_str().is_empty()) {
            Some(dir) => dir.join("pg_restore"),
            None => PathBuf::from("pg_restore"),
        };
        let output = tokio::process::Command::new(&restore)
            .arg("--list")
            .arg(dump)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output()
            .await;
        match output {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::step(
                format!("cannot verify the dump {}", dump.display()),
                format!(
                    "{} is not installed (install the PostgreSQL client tools beside {}, or set verify_backup = false to go on with an unverified backup)",
                    restore.display(),
                    self.config.pg_dump.display()
                ),
            )),
            Err(e) => Err(Error::file("run", &restore, e)),
            Ok(o) if o.status.success() => Ok(true),
            Ok(o) => Err(Error::step(
                format!("verifying the dump {}", dump.display()),
                format!("it does not read back: pg_restore --list said {}", String::from_utf8_lossy(&o.stderr).trim()),
            )),
        }
    }

    async fn maintain(&self, ctx: &TaskContext, url: &str) -> TaskOutcome {
        let client = match connect::postgres(url, self.connect_timeout).await {
            Ok(c) => c,
            Err(e) => return TaskOutcome::failed(format!("{e}; nothing was backed up or changed")),
        };
        let pg = |what: &str, e: tokio_postgres::Error| format!("{what} failed: {}", connect::postgres_error(&e));
        let database: String = match client.query_one("SELECT current_database()", &[]).await {
            Ok(row) => row.get(0),
            Err(e) => return TaskOutcome::failed(pg("reading the database's name", e)),
        };
        let before = match sizes(&client).await {
            Ok(s) => s,
            Err(e) => return TaskOutcome::failed(pg("measuring sizes", e)),
        };
        let probe_before = match &self.config.probe_query {
            Some(q) => match probe(&client, q, self.config.probe_runs).await {
                Ok(ms) => Some(ms),
                Err(e) => return TaskOutcome::failed(format!("{}; nothing was changed", pg("the probe query", e))),
            },
            None => None,
        };
        let mut metrics = BTreeMap::new();
        metrics.insert("database_bytes_before".to_string(), before.database_bytes as f64);
        metrics.insert("table_bytes_before".to_string(), before.table_bytes() as f64);
        metrics.insert("dead_tuples_before".to_string(), before.dead_tuples() as f64);
        if let Some(ms) = probe_before {
            metrics.insert("probe_ms_before".into(), ms);
        }

        if ctx.dry_run {
            let indexes = match index_bloat(&client).await {
                Ok(i) => i,
                Err(e) => return TaskOutcome::failed(pg("estimating index bloat", e)),
            };
            let candidates: Vec<&IndexBloat> = indexes.iter().filter(|i| self.wants_reindex(i)).collect();
            metrics.insert("indexes_to_reindex".into(), candidates.len() as f64);
            return TaskOutcome {
                summary: format!(
                    "dry run on {database}: would back up to {}, VACUUM{} {} tables ({} dead tuples) and rebuild {} of {} B-tree indexes",
                    self.config.backup_dir.display(),
                    if self.config.vacuum_full { " FULL" } else { "" },
                    before.tables.len(),
                    before.dead_tuples(),
                    candidates.len(),
                    indexes.len()
                ),
                metrics,
                details: serde_json::json!({ "database": database, "before": before, "indexes": indexes, "dry_run": true }),
                ..TaskOutcome::succeeded("")
            };
        }

        // 1. The backup. Nothing else happens without it.
        let backup = match self.backup(url, &database, ctx).await {
            Ok(b) => b,
            Err(e) => {
                return TaskOutcome {
                    metrics,
                    ..TaskOutcome::failed(format!(
                        "backup of {database} failed, nothing was vacuumed or reindexed: {e}"
                    ))
                };
            }
        };
        metrics.insert("backup_bytes".into(), backup.bytes as f64);
        metrics.insert("backup_seconds".into(), backup.seconds);
        metrics.insert("backup_verified".into(), if backup.verified { 1.0 } else { 0.0 });
        let shown_backup = format!(
            "backup {} ({} bytes{})",
            backup.path,
            backup.bytes,
            if backup.verified { "" } else { ", unverified: verify_backup = false" }
        );

        if !self.config.vacuum {
            return TaskOutcome {
                metrics,
                details: serde_json::json!({ "database": database, "backup": backup, "before": before }),
                ..TaskOutcome::succeeded(format!("{database}: {shown_backup}; not vacuumed (vacuum = false)"))
            };
        }

        // 2. VACUUM (ANALYZE), outside any transaction.
        let vacuum = if self.config.vacuum_full { "VACUUM (FULL, ANALYZE)" } else { "VACUUM (ANALYZE)" };
        let started = Instant::now();
        if let Err(e) = client.batch_execute(vacuum).await {
            return TaskOutcome {
                metrics,
                details: serde_json::json!({ "database": database, "backup": backup }),
                ..TaskOutcome::failed(format!("{} (the backup {} was written)", pg(vacuum, e), backup.path))
            };
        }
        metrics.insert("vacuum_seconds".into(), started.elapsed().as_secs_f64());

        // 3. REINDEX of the bloated indexes, with statistics fresh from the ANALYZE.
        let indexes = match index_bloat(&client).await {
            Ok(i) => i,
            Err(e) => return TaskOutcome { metrics, ..TaskOutcome::failed(pg("estimating index bloat", e)) },
        };
        let mut reindexed = Vec::new();
        let mut failures = Vec::new();
        for index in indexes.iter().filter(|i| self.wants_reindex(i)) {
            let sql = format!(
                "REINDEX INDEX {}{}",
                if self.config.reindex_concurrently { "CONCURRENTLY " } else { "" },
                index.index
            );
            match client.batch_execute(&sql).await {
                Ok(()) => reindexed.push(index.index.clone()),
                Err(e) => failures.push(format!("{sql}: {}", connect::postgres_error(&e))),
            }
        }
        let index_after: BTreeMap<String, i64> = match index_bloat(&client).await {
            Ok(after) => after.into_iter().map(|i| (i.index, i.bytes)).collect(),
            Err(e) => return TaskOutcome { metrics, ..TaskOutcome::failed(pg("measuring indexes", e)) },
        };

        // 4. After.
        let after = match sizes(&client).await {
            Ok(s) => s,
            Err(e) => return TaskOutcome { metrics, ..TaskOutcome::failed(pg("measuring sizes", e)) },
        };
        let probe_after = match &self.config.probe_query {
            Some(q) => match probe(&client, q, self.config.probe_runs).await {
                Ok(ms) => Some(ms),
                Err(e) => return TaskOutcome { metrics, ..TaskOutcome::failed(pg("the probe query", e)) },
            },
            None => None,
        };
        metrics.insert("database_bytes_after".into(), after.database_bytes as f64);
        metrics.insert("table_bytes_after".into(), after.table_bytes() as f64);
        metrics.insert("dead_tuples_after".into(), after.dead_tuples() as f64);
        metrics.insert("bytes_freed".into(), (before.database_bytes - after.database_bytes) as f64);
        metrics.insert("indexes_reindexed".into(), reindexed.len() as f64);
        let index_bytes_before: i64 = indexes.iter().map(|i| i.bytes).sum();
        let index_bytes_after: i64 = index_after.values().sum();
        metrics.insert("index_bytes_before".into(), index_bytes_before as f64);
        metrics.insert("index_bytes_after".into(), index_bytes_after as f64);
        if let Some(ms) = probe_after {
            metrics.insert("probe_ms_after".into(), ms);
        }
        let index_details: Vec<serde_json::Value> = indexes
            .iter()
            .map(|i| {
                serde_json::json!({
                    "index": i.index, "table": i.table, "bytes_before": i.bytes,
                    "bytes_after": index_after.get(&i.index), "estimated_bloat": i.estimated_bloat,
                    "reindexed": reindexed.contains(&i.index),
                })
            })
            .collect();
        let summary = format!(
            "{database}: {shown_backup}; {vacuum}: {} -> {} bytes, dead tuples {} -> {}; reindexed {} of {} B-tree indexes ({} -> {} bytes){}{}",
            before.database_bytes,
            after.database_bytes,
            before.dead_tuples(),
            after.dead_tuples(),
            reindexed.len(),
            indexes.len(),
            index_bytes_before,
            index_bytes_after,
            match (probe_before, probe_after) {
                (Some(b), Some(a)) => format!("; probe {b:.2} -> {a:.2} ms"),
                _ => String::new(),
            },
            if failures.is_empty() { String::new() } else { format!("; FAILED: {}", failures.join("; ")) }
        );
        let details = serde_json::json!({
            "database": database,
            "backup": backup,
            "before": before,
            "after": after,
            "indexes": index_details,
            "reindex_failures": failures,
        });
        let outcome = if failures.is_empty() { TaskOutcome::succeeded(summary) } else { TaskOutcome::failed(summary) };
        TaskOutcome { metrics, details, ..outcome }
    }

    fn wants_reindex(&self, index: &IndexBloat) -> bool {
        index.bytes as u64 >= self.config.reindex_min_bytes
            && index.estimated_bloat >= self.config.reindex_bloat_threshold
    }
}

impl Task for PostgresMaintenance {
    fn kind(&self) -> &'static str {
        "postgres_maintenance"
    }

    fn metric_names(&self) -> Vec<String> {
        [
            "database_bytes_before",
            "table_bytes_before",
            "dead_tuples_before",
            "probe_ms_before",
            "indexes_to_reindex",
            "backup_bytes",
            "backup_seconds",
            "backup_verified",
            "vacuum_seconds",
            "database_bytes_after",
            "table_bytes_after",
            "dead_tuples_after",
            "bytes_freed",
            "indexes_reindexed",
            "index_bytes_before",
            "index_bytes_after",
            "probe_ms_after",
        ]
        .map(String::from)
        .to_vec()
    }

    fn run<'a>(&'a self, ctx: &'a TaskContext) -> BoxFuture<'a, Result<TaskOutcome, TaskError>> {
        Box::pin(async move {
            let url = match self.config.url.resolve() {
                Ok(url) => url,
                Err(e) => return Ok(TaskOutcome::failed(e)),
            };
            let outcome = self.maintain(ctx, &url).await;
            Ok(redact::scrub_outcome(outcome, &redact::secrets_of(&url)))
        })
    }
}

#[cfg(test)]
mod tests;
