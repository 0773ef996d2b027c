//! `redis_cleanup`: delete the keys that match patterns, with `SCAN` and `UNLINK` in batches.
//!
//! Never `KEYS` (it blocks the server while it walks the whole keyspace) and never `FLUSHALL` or
//! `FLUSHDB`: `SCAN` walks the keyspace a batch at a time, and each batch is removed with one
//! `UNLINK`, which frees the values on a background thread. A pattern with no literal
//! character (`*`, `?*`, `**`, `[a-z]*`) matches every key and is refused: name a prefix. With a dry run the keys are counted, not deleted.
//!
//! Memory freed is `used_memory` (from `INFO memory`) before minus after. `UNLINK` frees lazily
//! and other clients write meanwhile, so the figure is what the server reports, not a promise;
//! `keys_deleted` is exact (the sum of what `UNLINK` answered). A dropped future stops between
//! two batches: the batches already sent are deleted, the rest are not.

use crate::connect;
use crate::params::{ConnectionUrl, positive, problem};
use crate::redact;
use caretaker_core::config::ConfigProblem;
use caretaker_core::task::{BoxFuture, Task, TaskContext, TaskError, TaskOutcome, parse_params};
use serde::Deserialize;
use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

/// Parameters of `redis_cleanup`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisCleanupConfig {
    /// `redis://[user]:password@host:port/db`, or `env:VARIABLE`. The password is never shown.
    /// With `env:VARIABLE` unset or empty the task is skipped: no cache is configured.
    pub url: ConnectionUrl,
    /// Glob-style patterns of the keys to delete (`SCAN ... MATCH`), e.g. `["cache:predictions:*"]`.
    pub patterns: Vec<String>,
    /// Keys per `SCAN` step and per `UNLINK`. Default 500.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Stop after deleting this many keys (the rest wait for the next run). Default: no limit.
    pub max_keys: Option<u64>,
    /// Count the keys without deleting them, whatever the scheduler says. Default false.
    #[serde(default)]
    pub dry_run: bool,
    /// Connecting and each command time out after this many seconds. Default 10.
    pub timeout_seconds: Option<f64>,
}

fn default_batch() -> usize {
    500
}

pub struct RedisCleanup {
    config: RedisCleanupConfig,
    timeout: Duration,
}

/// Whether a glob pattern (Redis' `MATCH` syntax) holds a character that must appear in a key: a
/// pattern made only of `*`, `?` and `[...]` classes (`*`, `?*`, `**`, `[a-z]*`) matches every
/// key, or nearly, whatever its length.
fn has_literal(pattern: &str) -> bool {
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '*' | '?' => {}
            '[' => {
                // A class: up to its closing bracket (an escaped one does not close it).
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        ']' => break,
                        _ => {}
                    }
                }
            }
            '\\' => return chars.next().is_some(),
            c if c.is_whitespace() => {}
            _ => return true,
        }
    }
    false
}

impl RedisCleanup {
    pub fn build(params: &toml::Table, _root: &Path) -> Result<RedisCleanup, ConfigProblem> {
        let config: RedisCleanupConfig = parse_params(params)?;
        if config.patterns.is_empty() {
            return Err(problem("patterns", "must name at least one key pattern"));
        }
        for (i, p) in config.patterns.iter().enumerate() {
            if !has_literal(p) {
                return Err(problem(
                    &format!("patterns[{i}]"),
                    format!(
                        "{p:?} would match every key: name a prefix (`cache:*`); emptying a database is not a cleanup"
                    ),
                ));
            }
        }
        if config.batch_size == 0 || config.batch_size > 100_000 {
            return Err(problem("batch_size", format!("must be between 1 and 100000, got {}", config.batch_size)));
        }
        let timeout = Duration::from_secs_f64(positive("timeout_seconds", config.timeout_seconds.unwrap_or(10.0))?);
        Ok(RedisCleanup { config, timeout })
    }
}

/// `used_memory` from `INFO memory`.
async fn used_memory(conn: &mut redis::aio::MultiplexedConnection) -> redis::RedisResult<Option<u64>> {
    let info: String = redis::cmd("INFO").arg("memory").query_async(conn).await?;
    Ok(info.lines().find_map(|l| l.strip_prefix("used_memory:")).and_then(|v| v.trim().parse().ok()))
}

#[derive(Debug, Default, serde::Serialize)]
struct PatternResult {
    pattern: String,
    matched: u64,
    deleted: u64,
    /// Up to ten of the keys, to show what the pattern catches.
    sample: Vec<String>,
}

impl RedisCleanup {
    async fn clean(&self, url: &str, dry_run: bool) -> TaskOutcome {
        let mut conn = match connect::redis(url, self.timeout).await {
            Ok(c) => c,
            Err(e) => return TaskOutcome::failed(format!("{e}; nothing was deleted")),
        };
        let memory_before = match used_memory(&mut conn).await {
            Ok(m) => m,
            Err(e) => return TaskOutcome::failed(format!("INFO memory failed: {e}; nothing was deleted")),
        };
        let mut results = Vec::new();
        let mut total_deleted = 0u64;
        let mut error = None;
        'patterns: for pattern in &self.config.patterns {
            let mut result = PatternResult { pattern: pattern.clone(), ..Default::default() };
            // SCAN may return a key twice; a dry run counts each once.
            let mut seen = HashSet::new();
            let mut cursor: u64 = 0;
            loop {
                let step: redis::RedisResult<(u64, Vec<String>)> = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(self.config.batch_size)
                    .query_async(&mut conn)
                    .await;
                let (next, keys) = match step {
                    Ok(s) => s,
                    Err(e) => {
                        error = Some(format!("SCAN MATCH {pattern} failed: {e}"));
                        results.push(result);
                        break 'patterns;
                    }
                };
                let mut keys: Vec<String> = keys.into_iter().filter(|k| seen.insert(k.clone())).collect();
                if let Some(max) = self.config.max_keys {
                    keys.truncate(max.saturating_sub(total_deleted + result.matched) as usize);
                }
                result.matched += keys.len() as u64;
                for k in keys.iter().take(10usize.saturating_sub(result.sample.len())) {
                    result.sample.push(k.clone());
                }
                if !dry_run && !keys.is_empty() {
                    let unlinked: redis::RedisResult<u64> =
                        redis::cmd("UNLINK").arg(&keys).query_async(&mut conn).await;
                    match unlinked {
                        Ok(n) => result.deleted += n,
                        Err(e) => {
                            error = Some(format!("UNLINK of {} keys matching {pattern} failed: {e}", keys.len()));
                            results.push(result);
                            break 'patterns;
                        }
                    }
                }
                let limit_reached = self.config.max_keys.is_some_and(|max| total_deleted + result.matched >= max);
                cursor = next;
                if cursor == 0 || limit_reached {
                    break;
                }
            }
            total_deleted += if dry_run { result.matched } else { result.deleted };
            results.push(result);
        }
        let memory_after = used_memory(&mut conn).await.ok().flatten();
        let matched: u64 = results.iter().map(|r| r.matched).sum();
        let deleted: u64 = results.iter().map(|r| r.deleted).sum();
        let mut outcome = match &error {
            Some(e) => TaskOutcome::failed(format!("{e}; {deleted} keys were deleted before it")),
            None if dry_run => TaskOutcome::succeeded(format!(
                "dry run: {matched} keys match {}; nothing was deleted",
                self.config.patterns.join(", ")
            )),
            None => TaskOutcome::succeeded(format!(
                "deleted {deleted} keys matching {}; used memory {} -> {}",
                self.config.patterns.join(", "),
                memory_before.map(|m| m.to_string()).unwrap_or_else(|| "?".into()),
                memory_after.map(|m| m.to_string()).unwrap_or_else(|| "?".into()),
            )),
        };
        outcome.metrics.insert("keys_matched".into(), matched as f64);
        outcome.metrics.insert("keys_deleted".into(), deleted as f64);
        if let (Some(before), Some(after)) = (memory_before, memory_after) {
            outcome.metrics.insert("memory_before_bytes".into(), before as f64);
            outcome.metrics.insert("memory_after_bytes".into(), after as f64);
            outcome.metrics.insert("memory_freed_bytes".into(), before as f64 - after as f64);
        }
        outcome.details = serde_json::json!({ "dry_run": dry_run, "patterns": results });
        outcome
    }
}

impl Task for RedisCleanup {
    fn kind(&self) -> &'static str {
        "redis_cleanup"
    }

    fn metric_names(&self) -> Vec<String> {
        ["keys_matched", "keys_deleted", "memory_before_bytes", "memory_after_bytes", "memory_freed_bytes"]
            .map(String::from)
            .to_vec()
    }

    fn run<'a>(&'a self, ctx: &'a TaskContext) -> BoxFuture<'a, Result<TaskOutcome, TaskError>> {
        Box::pin(async move {
            let url = match self.config.url.resolve() {
                Ok(url) => url,
                // No cache configured on this install (`url = "env:CARETAKER_REDIS_URL"`, unset):
                // nothing to clean, and nothing failed.
                Err(e) if self.config.url.env_var().is_some() => {
                    return Ok(TaskOutcome {
                        status: caretaker_core::task::TaskStatus::Skipped,
                        ..TaskOutcome::succeeded(format!(
                            "no Redis is configured: {e}; set it to the cache's URL (redis://...) to clean it"
                        ))
                    });
                }
                Err(e) => return Ok(TaskOutcome::failed(e)),
            };
            let outcome = self.clean(&url, ctx.dry_run || self.config.dry_run).await;
            Ok(redact::scrub_outcome(outcome, &redact::secrets_of(&url)))
        })
    }
}

#[cfg(test)]
mod tests;
