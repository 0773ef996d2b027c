//! Health checks: is a service answering, and is the pipeline itself well?
//!
//! Five checks (`http_health`, `tcp_health`, `postgres_health`, `redis_health`,
//! `pipeline_health`), each usable as a task kind of its own, and the `health` kind that runs
//! several and grades the whole. Every check ends in one of three grades with the reasons that
//! lowered it: **healthy**; **degraded** (it answers, but slower than its threshold, or the
//! pipeline shows a warning sign); **unhealthy** (no answer, a wrong answer, a timeout, a failed
//! run). A check never passes what it does not understand: an unexpected answer is unhealthy.
//!
//! As a task, an unhealthy result is a `Failed` outcome; degraded and healthy are `Succeeded`,
//! with the grade in the metric `health` (2 healthy, 1 degraded, 0 unhealthy) for success
//! criteria that want more.

mod http;
mod pipeline;
mod postgres;
mod redis;
mod tcp;

/// A check's grade (shared with the model health score).
pub use caretaker_core::health::Health;
pub use http::HttpCheck;
pub use pipeline::PipelineCheck;
pub use postgres::PostgresCheck;
pub use redis::RedisCheck;
pub use tcp::TcpCheck;

use crate::params::{self, problem};
use crate::redact;
use caretaker_core::config::ConfigProblem;
use caretaker_core::task::{BoxFuture, Task, TaskContext, TaskError, TaskOutcome, TaskStatus, parse_params};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

/// What one check found.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub name: String,
    pub kind: &'static str,
    pub health: Health,
    /// Why the grade is not `healthy`, most important first.
    pub reasons: Vec<String>,
    pub metrics: BTreeMap<String, f64>,
}

impl CheckReport {
    pub fn new(name: &str, kind: &'static str) -> CheckReport {
        CheckReport {
            name: name.to_string(),
            kind,
            health: Health::Healthy,
            reasons: Vec::new(),
            metrics: BTreeMap::new(),
        }
    }

    /// Lowers the grade to at most `health`, with the reason.
    pub fn lower(&mut self, health: Health, reason: impl Into<String>) {
        self.health = self.health.min(health);
        self.reasons.push(reason.into());
    }

    pub fn metric(&mut self, name: &str, value: f64) {
        self.metrics.insert(name.to_string(), value);
    }

    /// The reasons, or `ok` when there are none.
    fn reasons_text(&self) -> String {
        if self.reasons.is_empty() { "ok".to_string() } else { self.reasons.join("; ") }
    }
}

/// One check, of any of the five kinds.
pub enum Check {
    Http(HttpCheck),
    Tcp(TcpCheck),
    Postgres(PostgresCheck),
    Redis(RedisCheck),
    Pipeline(PipelineCheck),
}

impl Check {
    fn build(kind: &str, params: &toml::Table, root: &Path) -> Result<Check, ConfigProblem> {
        Ok(match kind {
            "http_health" => Check::Http(HttpCheck::build(parse_params(params)?)?),
            "tcp_health" => Check::Tcp(TcpCheck::build(parse_params(params)?)?),
            "postgres_health" => Check::Postgres(PostgresCheck::build(parse_params(params)?)?),
            "redis_health" => Check::Redis(RedisCheck::build(parse_params(params)?)?),
            "pipeline_health" => Check::Pipeline(PipelineCheck::build(parse_params(params)?, root)?),
            other => {
                return Err(problem(
                    "kind",
                    format!(
                        "unknown check kind {other:?}: one of http_health, tcp_health, postgres_health, redis_health, pipeline_health"
                    ),
                ));
            }
        })
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Check::Http(_) => "http_health",
            Check::Tcp(_) => "tcp_health",
            Check::Postgres(_) => "postgres_health",
            Check::Redis(_) => "redis_health",
            Check::Pipeline(_) => "pipeline_health",
        }
    }

    /// The metrics a check of this kind can report (`health` among them).
    pub fn metric_names(&self) -> &'static [&'static str] {
        match self {
            Check::Http(_) => &["health", "status", "latency_ms"],
            Check::Tcp(_) | Check::Redis(_) => &["health", "latency_ms"],
            Check::Postgres(_) => &["health", "latency_ms", "query_ms"],
            Check::Pipeline(_) => &[
                "health",
                "last_run_age_hours",
                "last_run_succeeded",
                "champion_loadable",
                "champion_version",
                "quality_score",
                "quality_score_change",
            ],
        }
    }

    /// The passwords this check's URL carries, to scrub from what it reports.
    fn secrets(&self) -> Vec<String> {
        let url = match self {
            Check::Http(c) => c.url.resolve().ok(),
            Check::Postgres(c) => c.url.resolve().ok(),
            Check::Redis(c) => c.url.resolve().ok(),
            Check::Tcp(_) | Check::Pipeline(_) => None,
        };
        url.map(|u| redact::secrets_of(&u)).unwrap_or_default()
    }

    /// Runs the check once, within its timeout.
    pub async fn run(&self, name: &str, ctx: &TaskContext) -> CheckReport {
        let mut report = CheckReport::new(name, self.kind());
        let (timeout, finished) = match self {
            Check::Http(c) => (c.timeout, tokio::time::timeout(c.timeout, c.check(&mut report)).await.is_ok()),
            Check::Tcp(c) => (c.timeout, tokio::time::timeout(c.timeout, c.check(&mut report)).await.is_ok()),
            Check::Postgres(c) => (c.timeout, tokio::time::timeout(c.timeout, c.check(&mut report)).await.is_ok()),
            Check::Redis(c) => (c.timeout, tokio::time::timeout(c.timeout, c.check(&mut report)).await.is_ok()),
            Check::Pipeline(c) => {
                c.check(&mut report, ctx).await;
                (Duration::ZERO, true)
            }
        };
        if !finished {
            report.lower(Health::Unhealthy, format!("no answer within the timeout of {} s", timeout.as_secs_f64()));
        }
        let secrets = self.secrets();
        for reason in &mut report.reasons {
            *reason = redact::redact_with(reason, &secrets);
        }
        report
    }
}

/// A check kind run as a task of its own (`http_health`, ...).
pub struct SingleCheck {
    check: Check,
}

impl SingleCheck {
    pub fn build(kind: &str, params: &toml::Table, root: &Path) -> Result<SingleCheck, ConfigProblem> {
        Ok(SingleCheck { check: Check::build(kind, params, root)? })
    }
}

impl Task for SingleCheck {
    fn kind(&self) -> &'static str {
        self.check.kind()
    }

    fn metric_names(&self) -> Vec<String> {
        self.check.metric_names().iter().map(|m| m.to_string()).collect()
    }

    fn run<'a>(&'a self, ctx: &'a TaskContext) -> BoxFuture<'a, Result<TaskOutcome, TaskError>> {
        Box::pin(async move {
            let report = self.check.run(&ctx.task_id, ctx).await;
            let mut outcome = TaskOutcome {
                status: if report.health == Health::Unhealthy { TaskStatus::Failed } else { TaskStatus::Succeeded },
                summary: format!("{}: {}", report.health.name(), report.reasons_text()),
                metrics: report.metrics.clone(),
                details: serde_json::to_value(&report).expect("a check report serialises"),
            };
            outcome.metrics.insert("health".into(), report.health.metric());
            Ok(redact::scrub_outcome(outcome, &self.check.secrets()))
        })
    }
}

/// `health`: several checks graded as one.
///
/// ```toml
/// [[tasks.params.checks]]
/// name = "api"            # unique within the task; prefixes the check's metrics (`api.latency_ms`)
/// kind = "http_health"    # any of the five check kinds, with that kind's parameters
/// critical = true         # default true; an unhealthy non-critical check only degrades the whole
/// url = "https://api.example.org/health"
/// ```
///
/// The whole is the worst of its checks (an unhealthy non-critical check counts as degraded);
/// unhealthy fails the task. Checks run one after the other, each within its own timeout.
pub struct HealthGroup {
    checks: Vec<GroupMember>,
}

struct GroupMember {
    name: String,
    critical: bool,
    check: Check,
}

impl HealthGroup {
    pub fn build(params: &toml::Table, root: &Path) -> Result<HealthGroup, ConfigProblem> {
        if let Some(key) = params.keys().find(|k| *k != "checks") {
            return Err(problem(key, "unknown key: `health` takes only `checks`, a list of checks"));
        }
        let Some(list) = params.get("checks") else {
            return Err(problem("checks", "missing: list the checks to run"));
        };
        let Some(list) = list.as_array() else {
            return Err(problem("checks", "must be a list of tables ([[checks]])"));
        };
        if list.is_empty() {
            return Err(problem("checks", "must hold at least one check"));
        }
        let mut names = BTreeSet::new();
        let mut checks = Vec::new();
        for (i, entry) in list.iter().enumerate() {
            let at = |key: &str| format!("checks[{i}].{key}");
            let Some(table) = entry.as_table() else {
                return Err(problem(&format!("checks[{i}]"), "must be a table"));
            };
            let mut table = table.clone();
            let name = match table.remove("name") {
                Some(toml::Value::String(s)) if !s.trim().is_empty() => s,
                Some(_) => return Err(problem(&at("name"), "must be a non-empty string")),
                None => return Err(problem(&at("name"), "missing: each check needs a name")),
            };
            if !names.insert(name.clone()) {
                return Err(problem(&at("name"), format!("{name:?} names two checks")));
            }
            let kind = match table.remove("kind") {
                Some(toml::Value::String(s)) => s,
                _ => return Err(problem(&at("kind"), "missing or not a string")),
            };
            let critical = match table.remove("critical") {
                None => true,
                Some(toml::Value::Boolean(b)) => b,
                Some(_) => return Err(problem(&at("critical"), "must be true or false")),
            };
            let check = Check::build(&kind, &table, root).map_err(|p| problem(&at(&p.key), p.reason))?;
            checks.push(GroupMember { name, critical, check });
        }
        Ok(HealthGroup { checks })
    }
}

impl Task for HealthGroup {
    fn kind(&self) -> &'static str {
        "health"
    }

    fn metric_names(&self) -> Vec<String> {
        let mut names: Vec<String> =
            ["health", "checks", "checks_healthy", "checks_degraded", "checks_unhealthy"].map(String::from).to_vec();
        for member in &self.checks {
            names.extend(member.check.metric_names().iter().map(|m| format!("{}.{m}", member.name)));
        }
        names
    }

    fn run<'a>(&'a self, ctx: &'a TaskContext) -> BoxFuture<'a, Result<TaskOutcome, TaskError>> {
        Box::pin(async move {
            let mut reports = Vec::new();
            let mut grades = Vec::new();
            let mut overall = Health::Healthy;
            let mut reasons = Vec::new();
            let mut metrics = BTreeMap::new();
            let mut secrets = Vec::new();
            for member in &self.checks {
                let report = member.check.run(&member.name, ctx).await;
                let counted = match (report.health, member.critical) {
                    (Health::Unhealthy, false) => Health::Degraded,
                    (h, _) => h,
                };
                overall = overall.min(counted);
                if report.health != Health::Healthy {
                    reasons.push(format!("{} {}: {}", member.name, report.health.name(), report.reasons_text()));
                }
                for (k, v) in &report.metrics {
                    metrics.insert(format!("{}.{k}", member.name), *v);
                }
                metrics.insert(format!("{}.health", member.name), report.health.metric());
                secrets.extend(member.check.secrets());
                grades.push(report.health);
                reports.push(serde_json::json!({
                    "critical": member.critical,
                    "report": report,
                }));
            }
            let count = |h: Health| grades.iter().filter(|g| **g == h).count() as f64;
            metrics.insert("health".into(), overall.metric());
            metrics.insert("checks".into(), self.checks.len() as f64);
            metrics.insert("checks_healthy".into(), count(Health::Healthy));
            metrics.insert("checks_degraded".into(), count(Health::Degraded));
            metrics.insert("checks_unhealthy".into(), count(Health::Unhealthy));
            let summary = if reasons.is_empty() {
                format!("healthy: all {} checks passed", self.checks.len())
            } else {
                format!("{}: {}", overall.name(), reasons.join("; "))
            };
            let outcome = TaskOutcome {
                status: if overall == Health::Unhealthy { TaskStatus::Failed } else { TaskStatus::Succeeded },
                summary,
                metrics,
                details: serde_json::json!({ "health": overall, "checks": reports }),
            };
            Ok(redact::scrub_outcome(outcome, &secrets))
        })
    }
}

/// `timeout_seconds` of a check, default 10.
pub(crate) fn timeout_of(key: &str, seconds: Option<f64>) -> Result<Duration, ConfigProblem> {
    Ok(Duration::from_secs_f64(params::positive(key, seconds.unwrap_or(10.0))?))
}

#[cfg(test)]
mod tests;
