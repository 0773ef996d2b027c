//! `retention`: one engine that removes what is old enough to go: run report directories,
//! quarantine files, model versions and logs, with a dry run that lists the same plan without
//! removing anything.
//!
//! What is never removed: the newest `reports.keep_last` report directories; the report
//! directory of the run that trained the serving champion; any model version the registry's
//! prune protects (the champion, every version that ever was champion, the newest
//! `models.keep_last`); anything that is not what it looks like (a report directory's name must
//! be a run id, a log must be a plain file matching the pattern; symlinks are never followed).
//! The run history keeps every run's full report, so `caretaker report RUN_ID` still works after
//! its directory is gone.
//!
//! A directory is renamed to `.retention-removing-<name>` before it is deleted, so a crash never
//! leaves a half-deleted report that looks complete; the next run finishes such leftovers.
//! Bytes freed are measured from the file system: the size of the directories concerned before
//! minus after. The first error stops the task; what was removed before it is reported.

use crate::error::{Error, Result};
use crate::params::{problem, resolve};
use crate::redact;
use caretaker_core::config::{ConfigProblem, PipelineConfig};
use caretaker_core::fs::disk_size;
use caretaker_core::task::{BoxFuture, Task, TaskContext, TaskError, TaskOutcome, parse_params};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const REMOVING: &str = ".retention-removing-";

/// Parameters of `retention`. At least one of `reports`, `quarantine`, `models`, `logs`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    /// The pipeline file whose reports directory and registry `reports`, `quarantine` and
    /// `models` apply to, relative to the catalog's root.
    pub pipeline: Option<PathBuf>,
    /// Run report directories (`reports/<run id>/`).
    pub reports: Option<ReportsPolicy>,
    /// `quarantine.parquet` files inside report directories that are kept.
    pub quarantine: Option<QuarantinePolicy>,
    /// Model versions in the registry.
    pub models: Option<ModelsPolicy>,
    /// Log directories.
    #[serde(default)]
    pub logs: Vec<LogsPolicy>,
    /// Backup directories (the database maintenance tasks' `backup_dir`).
    #[serde(default)]
    pub backups: Vec<BackupsPolicy>,
    /// List what would go without removing it, whatever the scheduler says. Default false.
    #[serde(default)]
    pub dry_run: bool,
}

/// `[reports]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportsPolicy {
    /// Report directories of runs that started more than this many days ago go.
    pub keep_days: u32,
    /// The newest this many are kept whatever their age. Default 10.
    #[serde(default = "default_keep_last")]
    pub keep_last: usize,
}

/// `[quarantine]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuarantinePolicy {
    /// Quarantine files of runs that started more than this many days ago go.
    pub keep_days: u32,
}

/// `[models]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelsPolicy {
    /// The newest this many versions are kept; so is every version that is or ever was champion.
    pub keep_last: usize,
}

/// `[[logs]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsPolicy {
    /// The directory, relative to the catalog's root (not searched recursively).
    pub dir: PathBuf,
    /// File names to consider, a glob. Default `*.log*` (rotated logs too).
    #[serde(default = "default_log_pattern")]
    pub pattern: String,
    /// Files last modified more than this many days ago go.
    pub keep_days: u32,
}

/// `[[backups]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupsPolicy {
    /// The directory, relative to the catalog's root (not searched recursively).
    pub dir: PathBuf,
    /// File names to consider, a glob. Default `*` (temporary files of a backup in progress,
    /// `.caretaker-tmp-*`, are never considered).
    #[serde(default = "default_backup_pattern")]
    pub pattern: String,
    /// Backups last modified more than this many days ago go...
    pub keep_days: u32,
    /// ...except the newest this many, whatever their age: a backup task that stopped working
    /// does not leave you with none. Default 3.
    #[serde(default = "default_backups_keep_last")]
    pub keep_last: usize,
}

fn default_backup_pattern() -> String {
    "*".into()
}
fn default_backups_keep_last() -> usize {
    3
}

fn default_keep_last() -> usize {
    10
}
fn default_log_pattern() -> String {
    "*.log*".into()
}

#[derive(Debug, Clone)]
pub struct Retention {
    config: RetentionConfig,
    pipeline: Option<PathBuf>,
    /// `(target, directory, pattern, keep_days, keep_last)` of the logs and backups rules.
    file_rules: Vec<(&'static str, PathBuf, glob::Pattern, u32, usize)>,
}

impl Retention {
    pub fn build(params: &toml::Table, root: &Path) -> Result<Retention, ConfigProblem> {
        let config: RetentionConfig = parse_params(params)?;
        if config.reports.is_none()
            && config.quarantine.is_none()
            && config.models.is_none()
            && config.logs.is_empty()
            && config.backups.is_empty()
        {
            return Err(problem("", "retention needs at least one of reports, quarantine, models, logs, backups"));
        }
        let needs_pipeline = config.reports.is_some() || config.quarantine.is_some() || config.models.is_some();
        if needs_pipeline && config.pipeline.is_none() {
            return Err(problem("pipeline", "reports, quarantine and models need the pipeline file they belong to"));
        }
        if config.models.as_ref().is_some_and(|m| m.keep_last == 0) {
            return Err(problem("models.keep_last", "must be at least 1"));
        }
        let rules =
            config.logs.iter().map(|l| ("log", "logs", &l.dir, &l.pattern, l.keep_days, 0)).chain(
                config.backups.iter().map(|b| ("backup", "backups", &b.dir, &b.pattern, b.keep_days, b.keep_last)),
            );
        let mut file_rules = Vec::new();
        let mut index = std::collections::BTreeMap::<&str, usize>::new();
        for (target, table, dir, text, keep_days, keep_last) in rules {
            let i = index.entry(table).or_default();
            let key = format!("{table}[{i}].pattern");
            *i += 1;
            let pattern =
                glob::Pattern::new(text).map_err(|e| problem(&key, format!("{text:?} is not a glob: {e}")))?;
            if text.contains('/') {
                return Err(problem(&key, "matches file names: no `/`"));
            }
            file_rules.push((target, resolve(root, dir), pattern, keep_days, keep_last));
        }
        Ok(Retention { pipeline: config.pipeline.as_ref().map(|p| resolve(root, p)), config, file_rules })
    }
}

/// One thing the plan removes.
#[derive(Debug, Clone, Serialize)]
pub struct Removal {
    /// `report`, `quarantine`, `model_version`, `log` or `backup`.
    pub target: &'static str,
    pub path: String,
    /// Its size on disk when the plan was made.
    pub bytes: u64,
    pub age_days: Option<f64>,
}

/// When a run started, from its report directory's name (`20261128T180712Z-3f9a`); `None` when
/// the whole name is not a run id.
fn run_started(name: &str) -> Option<DateTime<Utc>> {
    caretaker_core::ids::RunId::started_at_of(name)
}

fn age_days(now: DateTime<Utc>, then: DateTime<Utc>) -> f64 {
    (now - then).num_seconds() as f64 / 86_400.0
}

/// The report directories, newest first.
fn run_dirs(reports: &Path) -> Result<Vec<(String, DateTime<Utc>)>> {
    let entries = match std::fs::read_dir(reports) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::file("list", reports, e)),
    };
    let mut dirs = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if let (true, Some(started)) = (is_dir, run_started(&name)) {
            dirs.push((name, started));
        }
    }
    dirs.sort_by(|a, b| b.cmp(a));
    Ok(dirs)
}

/// Removes a file, or a directory by renaming it out of sight first.
fn remove(path: &Path) -> Result<()> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| Error::file("read", path, e))?;
    if meta.is_dir() {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let doomed = caretaker_core::fs::parent_dir(path).join(format!("{REMOVING}{name}"));
        caretaker_core::fs::rename_synced(path, &doomed)
            .map_err(|e| Error::step(format!("moving {} aside to remove it", path.display()), e))?;
        std::fs::remove_dir_all(&doomed).map_err(|e| Error::file("remove", &doomed, e))
    } else {
        std::fs::remove_file(path).map_err(|e| Error::file("remove", path, e))
    }
}

/// Finishes removals a crash interrupted.
fn sweep_leftovers(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(REMOVING) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

struct Plan {
    removals: Vec<Removal>,
    /// Versions the registry would prune (models are removed through the registry, not by path).
    model_versions: Vec<caretaker_core::ids::ModelVersion>,
    /// The directories whose size is measured before and after.
    measured_dirs: Vec<PathBuf>,
    kept_for_champion: Option<String>,
}

impl Retention {
    fn plan(&self, now: DateTime<Utc>) -> Result<(Plan, Option<PipelineConfig>)> {
        let pipeline = match &self.pipeline {
            Some(p) => Some(PipelineConfig::load(p).map_err(|e| Error::step("reading the pipeline", e))?),
            None => None,
        };
        let mut plan = Plan {
            removals: Vec::new(),
            model_versions: Vec::new(),
            measured_dirs: Vec::new(),
            kept_for_champion: None,
        };

        if let Some(config) = &pipeline {
            let reports = &config.output.reports;
            if self.config.reports.is_some() || self.config.quarantine.is_some() {
                plan.measured_dirs.push(reports.clone());
            }
            let registry_dir = &config.output.models;
            let registry = caretaker_registry::Registry::existing(&config.output)
                .map_err(|e| Error::step("opening the registry", e))?;
            // The run that trained the serving champion (from its card: a rollback's pointer
            // names no run).
            plan.kept_for_champion = match &registry {
                Some(r) => match r.champion().map_err(|e| Error::step("reading the champion", e))? {
                    Some(pointer) => {
                        r.card(pointer.version).map_err(|e| Error::step("reading the champion's card", e))?.run_id
                    }
                    None => None,
                },
                None => None,
            };
            let runs = run_dirs(reports)?;
            let mut removed_runs = BTreeSet::new();
            if let Some(policy) = &self.config.reports {
                for (name, started) in runs.iter().skip(policy.keep_last) {
                    let age = age_days(now, *started);
                    if age > f64::from(policy.keep_days) && plan.kept_for_champion.as_deref() != Some(name) {
                        let path = reports.join(name);
                        plan.removals.push(Removal {
                            target: "report",
                            bytes: disk_size(&path),
                            path: path.display().to_string(),
                            age_days: Some(age),
                        });
                        removed_runs.insert(name.clone());
                    }
                }
            }
            if let Some(policy) = &self.config.quarantine {
                for (name, started) in runs.iter().filter(|(n, _)| !removed_runs.contains(n)) {
                    let age = age_days(now, *started);
                    let path = reports.join(name).join("quarantine.parquet");
                    let is_file = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file());
                    if is_file && age > f64::from(policy.keep_days) {
                        plan.removals.push(Removal {
                            target: "quarantine",
                            bytes: disk_size(&path),
                            path: path.display().to_string(),
                            age_days: Some(age),
                        });
                    }
                }
            }
            if let (Some(policy), Some(registry)) = (&self.config.models, &registry) {
                plan.measured_dirs.push(registry_dir.clone());
                for version in registry
                    .prunable(policy.keep_last)
                    .map_err(|e| Error::step("listing the model versions to prune", e))?
                {
                    let path = registry_dir.join("versions").join(version.to_string());
                    plan.removals.push(Removal {
                        target: "model_version",
                        bytes: disk_size(&path),
                        path: path.display().to_string(),
                        age_days: None,
                    });
                    plan.model_versions.push(version);
                }
            }
        }

        for (target, dir, pattern, keep_days, keep_last) in &self.file_rules {
            plan.measured_dirs.push(dir.clone());
            let entries = match std::fs::read_dir(dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::file("list", dir, e)),
            };
            let mut files = Vec::new();
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let Ok(meta) = std::fs::symlink_metadata(entry.path()) else { continue };
                if !meta.is_file() || !pattern.matches(&name) || name.starts_with(caretaker_core::fs::TEMP_PREFIX) {
                    continue;
                }
                let Ok(modified) = meta.modified() else { continue };
                files.push((DateTime::<Utc>::from(modified), entry.path(), meta.len()));
            }
            // Newest first: the newest `keep_last` stay whatever their age.
            files.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
            let mut doomed: Vec<Removal> = files
                .into_iter()
                .skip(*keep_last)
                .map(|(modified, path, bytes)| (age_days(now, modified), path, bytes))
                .filter(|(age, _, _)| *age > f64::from(*keep_days))
                .map(|(age, path, bytes)| Removal {
                    target,
                    bytes,
                    path: path.display().to_string(),
                    age_days: Some(age),
                })
                .collect();
            doomed.sort_by(|a, b| a.path.cmp(&b.path));
            plan.removals.extend(doomed);
        }
        Ok((plan, pipeline))
    }

    fn apply(&self, now: DateTime<Utc>, dry_run: bool) -> TaskOutcome {
        let (plan, pipeline) = match self.plan(now) {
            Ok(p) => p,
            Err(e) => return TaskOutcome::failed(format!("retention could not plan, nothing was removed: {e}")),
        };
        for dir in &plan.measured_dirs {
            sweep_leftovers(dir);
        }
        let size_of_dirs = || plan.measured_dirs.iter().map(|d| disk_size(d)).sum::<u64>();
        let planned_bytes: u64 = plan.removals.iter().map(|r| r.bytes).sum();
        let count = |target: &str| plan.removals.iter().filter(|r| r.target == target).count();
        let mut outcome = TaskOutcome::succeeded("");
        for target in ["report", "quarantine", "model_version", "log", "backup"] {
            outcome.metrics.insert(format!("{target}s_removed"), if dry_run { 0.0 } else { count(target) as f64 });
        }
        let described = format!(
            "{} report directories, {} quarantine files, {} model versions, {} logs, {} backups ({} bytes)",
            count("report"),
            count("quarantine"),
            count("model_version"),
            count("log"),
            count("backup"),
            planned_bytes
        );
        if dry_run {
            outcome.summary = format!("dry run: would remove {described}");
            outcome.metrics.insert("bytes_to_free".into(), planned_bytes as f64);
            outcome.metrics.insert("bytes_freed".into(), 0.0);
            outcome.details = serde_json::json!({ "dry_run": true, "removals": plan.removals, "kept_for_champion": plan.kept_for_champion });
            return outcome;
        }

        let before = size_of_dirs();
        let mut removed = 0usize;
        let mut error = None;
        for removal in plan.removals.iter().filter(|r| r.target != "model_version") {
            if let Err(e) = remove(Path::new(&removal.path)) {
                error = Some(e.to_string());
                break;
            }
            removed += 1;
        }
        if error.is_none()
            && !plan.model_versions.is_empty()
            && let (Some(policy), Some(config)) = (&self.config.models, &pipeline)
        {
            let pruned = caretaker_registry::Registry::of(&config.output)
                .and_then(|registry| registry.lock().and_then(|lock| registry.prune(&lock, policy.keep_last)));
            match pruned {
                Ok(versions) => removed += versions.len(),
                Err(e) => error = Some(format!("pruning the registry failed: {e}")),
            }
        }
        let after = size_of_dirs();
        outcome.metrics.insert("bytes_freed".into(), before.saturating_sub(after) as f64);
        outcome.metrics.insert("entries_removed".into(), removed as f64);
        outcome.details = serde_json::json!({
            "dry_run": false, "removals": plan.removals, "kept_for_champion": plan.kept_for_champion,
            "bytes_before": before, "bytes_after": after,
        });
        match error {
            Some(e) => {
                outcome.status = caretaker_core::task::TaskStatus::Failed;
                outcome.summary =
                    format!("{e}; removed {removed} entries before it, {} bytes freed", before.saturating_sub(after));
            }
            None => outcome.summary = format!("removed {described}; {} bytes freed", before.saturating_sub(after)),
        }
        outcome
    }
}

impl Task for Retention {
    fn kind(&self) -> &'static str {
        "retention"
    }

    fn metric_names(&self) -> Vec<String> {
        [
            "reports_removed",
            "quarantines_removed",
            "model_versions_removed",
            "logs_removed",
            "backups_removed",
            "bytes_to_free",
            "bytes_freed",
            "entries_removed",
        ]
        .map(String::from)
        .to_vec()
    }

    fn run<'a>(&'a self, ctx: &'a TaskContext) -> BoxFuture<'a, Result<TaskOutcome, TaskError>> {
        Box::pin(async move {
            let this = self.clone();
            let (now, dry_run) = (ctx.started_at, ctx.dry_run || self.config.dry_run);
            let outcome = crate::blocking("retention", move || this.apply(now, dry_run))
                .await
                .unwrap_or_else(|e| TaskOutcome::failed(e.to_string()));
            Ok(redact::scrub_outcome(outcome, &[]))
        })
    }
}

#[cfg(test)]
mod tests;
