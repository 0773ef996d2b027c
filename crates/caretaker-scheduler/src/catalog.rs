//! The task catalog (`pipelines/maintenance.toml`): parsed into raw structs that reject unknown
//! keys, then validated into a [`Catalog`] before anything runs.
//!
//! Every problem is reported at once, each with the file, the key (`tasks.<id>.<field>`) and the
//! reason: a malformed cron expression, an unknown time zone, an unknown or cyclic prerequisite,
//! a duplicate id, an unknown kind or success criterion, bad kind parameters. Doc comments of the
//! raw structs are the reference of each key (docs/scheduler.md has
//! the same table).

use crate::criteria::Criterion;
use crate::kinds::KindRegistry;
use crate::schedule::{Schedule, parse_time_zone};
use caretaker_core::config::{ConfigError, ConfigProblem};
use caretaker_core::task::Task;
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The environment variable that names the history database (overrides `[history] database`).
pub const DATABASE_ENV: &str = "CARETAKER_DATABASE_URL";

// ---------------------------------------------------------------------------------------------
// Raw: what the TOML says.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalog {
    /// Directory relative paths are resolved against, relative to this file. Default: the file's
    /// own directory.
    root: Option<String>,
    /// Time zone of tasks that name none (IANA name). Default `UTC`.
    time_zone: Option<String>,
    #[serde(default)]
    scheduler: RawScheduler,
    #[serde(default)]
    history: RawHistory,
    #[serde(default)]
    notifications: RawNotifications,
    #[serde(default)]
    tasks: Vec<RawTask>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScheduler {
    /// State directory: maintenance mode, task locks, the SQLite history. Default `state` (the
    /// nightly pipeline's, so that maintenance mode holds its deploys).
    state: Option<String>,
    /// On SIGTERM: `finish` running tasks (up to `shutdown_grace`, then cancel) or `cancel` them.
    shutdown: Option<String>,
    /// How long `finish` waits. Default `5m`.
    shutdown_grace: Option<String>,
    /// Executions this scheduler runs at once, at most; a firing beyond them waits for a slot,
    /// and another scheduler with one free takes it first. Default: no limit.
    max_running: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHistory {
    /// `postgres://user:password@host/db` for a shared history; absent: SQLite in the state
    /// directory. `CARETAKER_DATABASE_URL` overrides it.
    database: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotifications {
    /// A URL that gets a JSON body (POST) for each event.
    webhook: Option<String>,
    /// An argv list run for each event, with the JSON body on stdin.
    command: Option<Vec<String>>,
    /// Which events: `maintenance_entered`, `maintenance_left`, `task_failed`. Default all.
    events: Option<Vec<String>>,
    /// Time limit of each notification. Default `10s`.
    timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTask {
    /// Unique id: lowercase letters, digits, `_` and `-`.
    id: String,
    /// Display name. Default: the id.
    name: Option<String>,
    #[serde(default)]
    description: String,
    /// The task kind (`pipeline`, `command`, ...).
    kind: String,
    /// preventive, corrective, adaptive, perfective or emergency. Default preventive.
    #[serde(rename = "type")]
    maintenance_type: Option<String>,
    /// critical, high, medium or low. Default medium. Critical tasks run in maintenance mode.
    priority: Option<String>,
    /// Cron expression, 5 fields or 6 (seconds first). Absent: run on demand only.
    schedule: Option<String>,
    /// IANA time zone of the schedule. Default: the catalog's `time_zone`.
    time_zone: Option<String>,
    /// How long the task usually takes (`15m`, `1h 30m`); reports flag runs over 1.5x.
    estimated_duration: String,
    /// What the task touches; the preview warns when two tasks overlap on one component.
    #[serde(default)]
    components: Vec<String>,
    /// Task ids that run (and must succeed) before this one.
    #[serde(default)]
    prerequisites: Vec<String>,
    /// A prerequisite that succeeded this recently is not run again. Default: always run.
    prerequisites_fresh_for: Option<String>,
    /// Time limit of one attempt. Default: 3x the estimate, at least 1 minute.
    timeout: Option<String>,
    /// Extra attempts after a failure. Default 0.
    retries: Option<u32>,
    /// Wait before the first retry, doubled for each next one (at most 1 hour). Default `30s`.
    retry_backoff: Option<String>,
    /// Firings missed while the scheduler was down: `skip`, `run_once` or `catch_up`. Default skip.
    missed: Option<String>,
    /// With `missed = "catch_up"`: run at most this many of them. Default 3.
    catch_up_max: Option<u32>,
    /// argv list run when the task fails (after its retries), times out or is cancelled.
    rollback: Option<Vec<String>>,
    /// Time limit of the rollback command. Default `10m`.
    rollback_timeout: Option<String>,
    /// Checks of the outcome, all of which must hold (see the criteria language).
    #[serde(default)]
    success_criteria: Vec<String>,
    /// Scheduled by the daemon. Default true; a disabled task still runs with `task run`.
    enabled: Option<bool>,
    /// The kind's parameters.
    #[serde(default)]
    params: toml::Table,
}

// ---------------------------------------------------------------------------------------------
// Validated.
// ---------------------------------------------------------------------------------------------

/// The kind of maintenance a task does (the runbook's classification).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaintenanceType {
    Preventive,
    Corrective,
    Adaptive,
    Perfective,
    Emergency,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Critical,
    High,
    Medium,
    Low,
}

/// What happens to firings missed while no scheduler was running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "policy")]
pub enum MissedPolicy {
    /// Forget them; wait for the next firing.
    Skip,
    /// Run once, for the latest missed firing.
    RunOnce,
    /// Run the latest `max` missed firings, oldest first.
    CatchUp { max: u32 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ShutdownPolicy {
    Finish,
    Cancel,
}

/// Notification events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyEvent {
    MaintenanceEntered,
    MaintenanceLeft,
    TaskFailed,
}

impl NotifyEvent {
    pub const ALL: [NotifyEvent; 3] =
        [NotifyEvent::MaintenanceEntered, NotifyEvent::MaintenanceLeft, NotifyEvent::TaskFailed];

    pub fn name(self) -> &'static str {
        match self {
            NotifyEvent::MaintenanceEntered => "maintenance_entered",
            NotifyEvent::MaintenanceLeft => "maintenance_left",
            NotifyEvent::TaskFailed => "task_failed",
        }
    }
}

macro_rules! names {
    ($t:ty { $($v:ident => $n:literal),* $(,)? }) => {
        impl $t {
            pub const NAMES: &'static [&'static str] = &[$($n),*];
            pub fn name(self) -> &'static str { match self { $(<$t>::$v => $n),* } }
            fn parse(text: &str) -> Option<$t> { match text { $($n => Some(<$t>::$v),)* _ => None } }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.name()) }
        }
    };
}
names!(MaintenanceType { Preventive => "preventive", Corrective => "corrective", Adaptive => "adaptive", Perfective => "perfective", Emergency => "emergency" });
names!(Priority { Critical => "critical", High => "high", Medium => "medium", Low => "low" });

/// Where notifications go.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Notifications {
    pub webhook: Option<String>,
    pub command: Option<Vec<String>>,
    pub events: BTreeSet<NotifyEvent>,
    pub timeout: Duration,
}

/// Where the execution history lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryTarget {
    Sqlite(PathBuf),
    /// A `postgres://` URL (with its password, if any: never print it, see [`crate::redact`]).
    Postgres(String),
}

impl fmt::Display for HistoryTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HistoryTarget::Sqlite(path) => write!(f, "{}", path.display()),
            HistoryTarget::Postgres(url) => f.write_str(&crate::redact::redact_url(url)),
        }
    }
}

/// A validated task.
#[derive(Clone)]
pub struct TaskSpec {
    pub id: String,
    pub name: String,
    pub description: String,
    pub kind: String,
    pub maintenance_type: MaintenanceType,
    pub priority: Priority,
    pub schedule: Option<Schedule>,
    pub estimated: Duration,
    pub components: Vec<String>,
    pub prerequisites: Vec<String>,
    pub prerequisites_fresh_for: Option<Duration>,
    pub timeout: Duration,
    pub retries: u32,
    pub retry_backoff: Duration,
    pub missed: MissedPolicy,
    pub rollback: Option<Vec<String>>,
    pub rollback_timeout: Duration,
    pub criteria: Vec<Criterion>,
    pub enabled: bool,
    /// The runnable task, built by its kind.
    pub task: Arc<dyn Task>,
}

impl fmt::Debug for TaskSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskSpec")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("priority", &self.priority)
            .field("schedule", &self.schedule.as_ref().map(|s| &s.expression))
            .finish_non_exhaustive()
    }
}

impl TaskSpec {
    pub fn is_critical(&self) -> bool {
        self.priority == Priority::Critical
    }

    /// The wait before retry number `retry` (1-based): the backoff doubled each time, at most 1 h.
    pub fn backoff_before(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.saturating_sub(1));
        self.retry_backoff.saturating_mul(factor).min(Duration::from_secs(3600))
    }
}

/// A validated catalog.
#[derive(Debug, Clone)]
pub struct Catalog {
    /// The file this came from.
    pub source: PathBuf,
    pub root: PathBuf,
    pub state_dir: PathBuf,
    pub time_zone: Tz,
    pub history: HistoryTarget,
    pub notifications: Notifications,
    pub shutdown: ShutdownPolicy,
    pub shutdown_grace: Duration,
    /// `scheduler.max_running`: executions at once, at most (`None`: no limit).
    pub max_running: Option<usize>,
    /// In catalog order.
    pub tasks: Vec<TaskSpec>,
}

impl Catalog {
    /// Reads and validates a catalog file.
    pub fn load(path: &Path, kinds: &KindRegistry) -> Result<Catalog, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        Self::from_toml_str(&text, path, kinds)
    }

    /// Parses and validates `text` as if it were the file at `path` (which anchors relative paths).
    pub fn from_toml_str(text: &str, path: &Path, kinds: &KindRegistry) -> Result<Catalog, ConfigError> {
        let raw: RawCatalog = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let mut problems = Vec::new();
        let catalog = validate(raw, path, kinds, &mut problems);
        match catalog {
            Some(c) if problems.is_empty() => Ok(c),
            _ => Err(ConfigError::Invalid { path: path.to_path_buf(), problems }),
        }
    }

    pub fn task(&self, id: &str) -> Option<&TaskSpec> {
        self.tasks.iter().find(|t| t.id == id)
    }

    /// The history store to use: `CARETAKER_DATABASE_URL` when set, else the catalog's.
    pub fn history_target(&self) -> Result<HistoryTarget, String> {
        match std::env::var(DATABASE_ENV) {
            Ok(url) if !url.trim().is_empty() => {
                parse_database(url.trim(), &self.root).map_err(|reason| format!("{DATABASE_ENV}: {reason}"))
            }
            _ => Ok(self.history.clone()),
        }
    }
}

fn parse_database(text: &str, root: &Path) -> Result<HistoryTarget, String> {
    if text.starts_with("postgres://") || text.starts_with("postgresql://") {
        text.parse::<tokio_postgres::Config>()
            .map_err(|e| format!("{:?} is not a PostgreSQL URL: {e}", crate::redact::redact_url(text)))?;
        Ok(HistoryTarget::Postgres(text.to_string()))
    } else if let Some(path) = text.strip_prefix("sqlite:") {
        Ok(HistoryTarget::Sqlite(crate::kinds::resolve(root, path)))
    } else {
        Err(format!(
            "{:?} names no database: write postgres://user@host/db or sqlite:PATH",
            crate::redact::redact_url(text)
        ))
    }
}

/// Parses a duration like `15m`, `1h 30m`, `90s`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("{text:?} is not a duration ({e}); write it like \"90s\", \"15m\" or \"1h 30m\""))
}

fn validate(raw: RawCatalog, path: &Path, kinds: &KindRegistry, problems: &mut Vec<ConfigProblem>) -> Option<Catalog> {
    let mut fail = |key: String, reason: String| problems.push(ConfigProblem { key, reason });
    let file_dir = caretaker_core::fs::parent_dir(path);
    let root = match &raw.root {
        Some(r) => file_dir.join(r),
        None => file_dir.to_path_buf(),
    };
    let time_zone = match raw.time_zone.as_deref().map(parse_time_zone).unwrap_or(Ok(chrono_tz::UTC)) {
        Ok(tz) => tz,
        Err(reason) => {
            fail("time_zone".into(), reason);
            chrono_tz::UTC
        }
    };
    let mut duration = |key: String, text: Option<&str>, default: Duration| match text.map(parse_duration) {
        None => default,
        Some(Ok(d)) => d,
        Some(Err(reason)) => {
            fail(key, reason);
            default
        }
    };
    let shutdown_grace =
        duration("scheduler.shutdown_grace".into(), raw.scheduler.shutdown_grace.as_deref(), Duration::from_secs(300));
    let notify_timeout =
        duration("notifications.timeout".into(), raw.notifications.timeout.as_deref(), Duration::from_secs(10));
    let state_dir = crate::kinds::resolve(&root, raw.scheduler.state.as_deref().unwrap_or("state"));
    if raw.scheduler.max_running == Some(0) {
        fail("scheduler.max_running".into(), "must be at least 1 (leave it out for no limit)".into());
    }
    let shutdown = match raw.scheduler.shutdown.as_deref() {
        None | Some("finish") => ShutdownPolicy::Finish,
        Some("cancel") => ShutdownPolicy::Cancel,
        Some(other) => {
            fail("scheduler.shutdown".into(), format!("{other:?} is not a shutdown policy (finish, cancel)"));
            ShutdownPolicy::Finish
        }
    };
    let history = match raw.history.database.as_deref() {
        None => HistoryTarget::Sqlite(state_dir.join("executions.sqlite")),
        Some(text) => parse_database(text, &root).unwrap_or_else(|reason| {
            fail("history.database".into(), reason);
            HistoryTarget::Sqlite(state_dir.join("executions.sqlite"))
        }),
    };

    let n = &raw.notifications;
    if let Some(url) = &n.webhook
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        fail(
            "notifications.webhook".into(),
            format!("{:?} is not an http:// or https:// URL", crate::redact::redact_url(url)),
        );
    }
    if n.command.as_ref().is_some_and(|c| c.is_empty() || c[0].trim().is_empty()) {
        fail("notifications.command".into(), "must name a program: command = [\"program\", \"arg\", ...]".into());
    }
    if let Some((i, why)) = n.command.as_deref().and_then(caretaker_core::redact::argv_password) {
        fail(format!("notifications.command[{i}]"), why);
    }
    let mut events = BTreeSet::new();
    for name in n.events.clone().unwrap_or_else(|| NotifyEvent::ALL.iter().map(|e| e.name().to_string()).collect()) {
        match NotifyEvent::ALL.iter().find(|e| e.name() == name) {
            Some(e) => {
                events.insert(*e);
            }
            None => fail(
                "notifications.events".into(),
                format!("{name:?} is not an event (maintenance_entered, maintenance_left, task_failed)"),
            ),
        }
    }
    let notifications =
        Notifications { webhook: n.webhook.clone(), command: n.command.clone(), events, timeout: notify_timeout };

    // Ids first: prerequisites refer to them.
    let mut ids = BTreeSet::new();
    for (i, t) in raw.tasks.iter().enumerate() {
        let valid = !t.id.is_empty()
            && t.id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if !valid {
            fail(format!("tasks[{i}].id"), format!("{:?} is not a task id (lowercase letters, digits, _ and -)", t.id));
        } else if !ids.insert(t.id.clone()) {
            fail(format!("tasks[{i}].id"), format!("duplicate id {:?}: another task has it", t.id));
        }
    }

    let mut tasks = Vec::new();
    for raw_task in raw.tasks {
        if let Some(task) = validate_task(raw_task, &root, time_zone, &ids, kinds, &mut fail) {
            tasks.push(task);
        }
    }
    // Prerequisite cycles: a depth-first walk from each task.
    let graph: BTreeMap<&str, &[String]> = tasks.iter().map(|t| (t.id.as_str(), t.prerequisites.as_slice())).collect();
    let mut reported = BTreeSet::new();
    for t in &tasks {
        if let Some(cycle) = find_cycle(&t.id, &graph) {
            let members: BTreeSet<_> = cycle.iter().cloned().collect();
            if reported.insert(members) {
                fail(format!("tasks.{}.prerequisites", t.id), format!("prerequisite cycle: {}", cycle.join(" -> ")));
            }
        }
    }
    Some(Catalog {
        source: path.to_path_buf(),
        root,
        state_dir,
        time_zone,
        history,
        notifications,
        shutdown,
        shutdown_grace,
        max_running: raw.scheduler.max_running,
        tasks,
    })
}

fn validate_task(
    t: RawTask,
    root: &Path,
    default_tz: Tz,
    ids: &BTreeSet<String>,
    kinds: &KindRegistry,
    fail: &mut impl FnMut(String, String),
) -> Option<TaskSpec> {
    let key = |field: &str| format!("tasks.{}.{field}", t.id);
    let mut ok = true;
    let mut problem = |k: String, reason: String| {
        ok = false;
        fail(k, reason)
    };
    let name = t.name.clone().unwrap_or_else(|| t.id.clone());
    let maintenance_type = match t.maintenance_type.as_deref() {
        None => MaintenanceType::Preventive,
        Some(text) => MaintenanceType::parse(text).unwrap_or_else(|| {
            problem(key("type"), format!("{text:?} is not a maintenance type ({})", MaintenanceType::NAMES.join(", ")));
            MaintenanceType::Preventive
        }),
    };
    let priority = match t.priority.as_deref() {
        None => Priority::Medium,
        Some(text) => Priority::parse(text).unwrap_or_else(|| {
            problem(key("priority"), format!("{text:?} is not a priority ({})", Priority::NAMES.join(", ")));
            Priority::Medium
        }),
    };
    let tz = match t.time_zone.as_deref().map(parse_time_zone) {
        None => default_tz,
        Some(Ok(tz)) => tz,
        Some(Err(reason)) => {
            problem(key("time_zone"), reason);
            default_tz
        }
    };
    let schedule = t
        .schedule
        .as_deref()
        .and_then(|expr| Schedule::parse(expr, tz).map_err(|reason| problem(key("schedule"), reason)).ok());
    let mut duration = |field: &str, text: Option<&str>| -> Option<Duration> {
        text.and_then(|s| parse_duration(s).map_err(|reason| problem(key(field), reason)).ok())
    };
    let estimated = duration("estimated_duration", Some(&t.estimated_duration)).unwrap_or(Duration::from_secs(60));
    let timeout = duration("timeout", t.timeout.as_deref())
        .unwrap_or_else(|| estimated.saturating_mul(3).max(Duration::from_secs(60)));
    let retry_backoff = duration("retry_backoff", t.retry_backoff.as_deref()).unwrap_or(Duration::from_secs(30));
    let rollback_timeout =
        duration("rollback_timeout", t.rollback_timeout.as_deref()).unwrap_or(Duration::from_secs(600));
    let prerequisites_fresh_for = duration("prerequisites_fresh_for", t.prerequisites_fresh_for.as_deref());
    if timeout.is_zero() {
        problem(key("timeout"), "must be longer than 0s".into());
    }
    let missed = match (t.missed.as_deref(), t.catch_up_max) {
        (None | Some("skip"), None) => MissedPolicy::Skip,
        (Some("run_once"), None) => MissedPolicy::RunOnce,
        (Some("catch_up"), max) => {
            let max = max.unwrap_or(3);
            if max == 0 {
                problem(key("catch_up_max"), "must be at least 1 (or use missed = \"skip\")".into());
            }
            MissedPolicy::CatchUp { max }
        }
        (Some("skip" | "run_once") | None, Some(_)) => {
            problem(key("catch_up_max"), "only applies with missed = \"catch_up\"".into());
            MissedPolicy::Skip
        }
        (Some(other), _) => {
            problem(key("missed"), format!("{other:?} is not a missed-firing policy (skip, run_once, catch_up)"));
            MissedPolicy::Skip
        }
    };
    for p in &t.prerequisites {
        if p == &t.id {
            problem(key("prerequisites"), format!("{p:?} is this task itself"));
        } else if !ids.contains(p) {
            problem(key("prerequisites"), format!("unknown prerequisite {p:?}: no task has that id"));
        }
    }
    if t.rollback.as_ref().is_some_and(|r| r.is_empty() || r[0].trim().is_empty()) {
        problem(key("rollback"), "must name a program: rollback = [\"program\", \"arg\", ...]".into());
    }
    if let Some((i, why)) = t.rollback.as_deref().and_then(caretaker_core::redact::argv_password) {
        problem(key(&format!("rollback[{i}]")), why);
    }
    let mut components = Vec::new();
    for c in &t.components {
        if c.trim().is_empty() {
            problem(key("components"), "a component name must not be empty".into());
        } else if !components.contains(c) {
            components.push(c.clone());
        }
    }
    let built = match kinds.build(&t.kind, &t.params, root) {
        None => {
            problem(key("kind"), format!("unknown kind {:?}; known kinds: {}", t.kind, kinds.names().join(", ")));
            None
        }
        Some(Err(p)) => {
            let k = if p.key.is_empty() { key("params") } else { format!("{}.{}", key("params"), p.key) };
            problem(k, p.reason);
            None
        }
        Some(Ok(task)) => Some(Arc::<dyn Task>::from(task)),
    };
    let mut criteria = Vec::new();
    if let Some(task) = &built {
        let metrics = task.metric_names();
        for (i, text) in t.success_criteria.iter().enumerate() {
            match Criterion::parse(text, &metrics) {
                Ok(c) => criteria.push(c),
                Err(reason) => problem(format!("{}[{i}]", key("success_criteria")), reason),
            }
        }
    }
    let task = built?;
    ok.then(|| TaskSpec {
        id: t.id,
        name,
        description: t.description,
        kind: t.kind,
        maintenance_type,
        priority,
        schedule,
        estimated,
        components,
        prerequisites: t.prerequisites,
        prerequisites_fresh_for,
        timeout,
        retries: t.retries.unwrap_or(0),
        retry_backoff,
        missed,
        rollback: t.rollback,
        rollback_timeout,
        criteria,
        enabled: t.enabled.unwrap_or(true),
        task,
    })
}

/// A cycle through `start`, as the path `start -> ... -> start`, if there is one.
fn find_cycle(start: &str, graph: &BTreeMap<&str, &[String]>) -> Option<Vec<String>> {
    fn walk<'a>(
        node: &'a str,
        start: &str,
        graph: &BTreeMap<&'a str, &'a [String]>,
        path: &mut Vec<&'a str>,
        seen: &mut BTreeSet<&'a str>,
    ) -> bool {
        for next in graph.get(node).copied().unwrap_or_default() {
            if next == start {
                path.push(next);
                return true;
            }
            if seen.insert(next.as_str()) {
                path.push(next);
                if walk(next, start, graph, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let (&key, _) = graph.get_key_value(start)?;
    let mut path = vec![key];
    let mut seen = BTreeSet::new();
    walk(key, start, graph, &mut path, &mut seen).then(|| path.into_iter().map(str::to_string).collect())
}

/// Task ids in an order where every prerequisite comes before the tasks needing it.
pub fn prerequisite_order(catalog: &Catalog, id: &str) -> Vec<String> {
    fn visit(catalog: &Catalog, id: &str, out: &mut Vec<String>) {
        if out.iter().any(|o| o == id) {
            return;
        }
        if let Some(t) = catalog.task(id) {
            for p in &t.prerequisites {
                visit(catalog, p, out);
            }
        }
        out.push(id.to_string());
    }
    let mut out = Vec::new();
    visit(catalog, id, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::BuiltinKinds;

    fn kinds() -> KindRegistry {
        KindRegistry::new(vec![Box::new(BuiltinKinds { caretaker_exe: "caretaker".into() })])
    }

    fn load(text: &str) -> Result<Catalog, ConfigError> {
        Catalog::from_toml_str(text, Path::new("/srv/maintenance.toml"), &kinds())
    }

    fn problems(text: &str) -> Vec<String> {
        match load(text) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(ConfigError::Invalid { problems, .. }) => problems.iter().map(|p| p.to_string()).collect(),
            Err(other) => vec![other.to_string()],
        }
    }

    fn task(id: &str, extra: &str) -> String {
        format!(
            "[[tasks]]\nid = \"{id}\"\nkind = \"command\"\nestimated_duration = \"1m\"\n{extra}\n[tasks.params]\nargv = [\"true\"]\n"
        )
    }

    #[test]
    fn a_good_catalog_gets_its_defaults() {
        let c = load(&format!(
            "time_zone = \"Europe/Berlin\"\n{}{}",
            task("backup", "schedule = \"0 1 * * *\""),
            task("update", "schedule = \"0 1 1 * *\"\npriority = \"critical\"\nprerequisites = [\"backup\"]\nmissed = \"catch_up\"\nsuccess_criteria = [\"exit_code == 0\"]")
        ))
        .unwrap();
        assert_eq!(c.root, Path::new("/srv"));
        assert_eq!(c.state_dir, Path::new("/srv/state"));
        assert_eq!(c.history, HistoryTarget::Sqlite("/srv/state/executions.sqlite".into()));
        let update = c.task("update").unwrap();
        assert!(update.is_critical());
        assert_eq!(update.schedule.as_ref().unwrap().time_zone, chrono_tz::Europe::Berlin);
        assert_eq!(update.timeout, Duration::from_secs(180));
        assert_eq!(update.missed, MissedPolicy::CatchUp { max: 3 });
        assert_eq!(update.criteria.len(), 1);
        assert_eq!(update.backoff_before(1), Duration::from_secs(30));
        assert_eq!(update.backoff_before(3), Duration::from_secs(120));
        assert_eq!(prerequisite_order(&c, "update"), vec!["backup", "update"]);
        assert_eq!(c.notifications.events.len(), 3);
        assert_eq!(c.max_running, None, "no limit on executions at once");
        let c = load(&format!("[scheduler]\nmax_running = 2\n{}", task("backup", ""))).unwrap();
        assert_eq!(c.max_running, Some(2));
        let p = problems(&format!("[scheduler]\nmax_running = 0\n{}", task("backup", "")));
        assert!(p.iter().any(|x| x.contains("scheduler.max_running: must be at least 1")), "{p:#?}");
    }

    #[test]
    fn each_mistake_is_named_by_key_and_all_are_reported_at_once() {
        let text = format!(
            "{}{}{}{}{}",
            task("a", "schedule = \"0 25 * * *\""),
            task("b", "time_zone = \"Mars/Olympus\"\nschedule = \"0 1 * * *\""),
            task("c", "prerequisites = [\"nope\"]\npriority = \"urgent\"\ntype = \"cosmetic\""),
            task("c", ""),
            task("d", "success_criteria = [\"looks_good == 1\", \"all fine\"]\nmissed = \"sometimes\""),
        );
        let p = problems(&text);
        let has = |needle: &str| assert!(p.iter().any(|x| x.contains(needle)), "no {needle:?} in {p:#?}");
        has("tasks.a.schedule: \"0 25 * * *\" is not a cron expression");
        has("tasks.b.time_zone: \"Mars/Olympus\" is not an IANA time zone");
        has("tasks.c.prerequisites: unknown prerequisite \"nope\"");
        has("tasks.c.priority: \"urgent\" is not a priority");
        has("tasks.c.type: \"cosmetic\" is not a maintenance type");
        has("tasks[3].id: duplicate id \"c\"");
        has("tasks.d.success_criteria[0]: \"looks_good == 1\": unknown metric \"looks_good\"");
        has("tasks.d.success_criteria[1]");
        has("tasks.d.missed: \"sometimes\" is not a missed-firing policy");
    }

    #[test]
    fn prerequisite_cycles_are_rejected_with_the_cycle() {
        let p = problems(&format!(
            "{}{}{}",
            task("a", "prerequisites = [\"b\"]"),
            task("b", "prerequisites = [\"c\"]"),
            task("c", "prerequisites = [\"a\"]")
        ));
        assert_eq!(p, vec!["tasks.a.prerequisites: prerequisite cycle: a -> b -> c -> a".to_string()]);
        let p = problems(&task("a", "prerequisites = [\"a\"]"));
        assert_eq!(p, vec!["tasks.a.prerequisites: \"a\" is this task itself".to_string()]);
    }

    #[test]
    fn unknown_kinds_params_and_keys_are_errors() {
        let p = problems("[[tasks]]\nid = \"x\"\nkind = \"http_health\"\nestimated_duration = \"1m\"\n");
        assert_eq!(p.len(), 1);
        assert!(
            p[0].starts_with("tasks.x.kind: unknown kind \"http_health\"; known kinds: command, pipeline"),
            "{p:?}"
        );
        let p = problems(
            "[[tasks]]\nid = \"x\"\nkind = \"command\"\nestimated_duration = \"1m\"\n[tasks.params]\nargv = [\"a\"]\nshell = true\n",
        );
        assert!(p[0].starts_with("tasks.x.params.shell: unknown field `shell`"), "{p:?}");
        let p = problems("[[tasks]]\nid = \"x\"\nkind = \"command\"\nestimate = \"1m\"\n");
        assert!(p[0].contains("unknown field `estimate`"), "{p:?}");
        let p = problems(&format!("[history]\ndatabase = \"mysql://root:hunter22@db/x\"\n{}", task("a", "")));
        assert!(p[0].starts_with("history.database: \"mysql://root:***@db/x\" names no database"), "{p:?}");
    }
}
