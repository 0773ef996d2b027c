//! `security_scan`: every package version pinned by the lockfiles, matched against an offline
//! advisory database in OSV format.
//!
//! The scan reads `Cargo.lock`, `requirements.txt` and `package-lock.json` (those present, or
//! the ones listed), matches each pinned version (see [`osv`]) and reports each finding with
//! its advisory id, package, version, severity and fixed versions, and the command that would
//! move to a fixed version. It changes nothing: no lockfile is edited and no command is run on
//! the project's behalf; the recommendations are for a person to apply.
//!
//! An allowlist entry (id, optional package, reason, expiry date) suppresses a finding until it
//! expires; an expired entry suppresses nothing and the outcome says it expired. The findings of
//! each scan are kept in the task's state directory (`<state>/<task id>.security_scan.json`),
//! and each scan reports what is new and what was resolved since the previous one.
//!
//! `cargo audit`, `pip-audit` and `trivy` run too when they are installed, and what they say
//! (exit code, their count of findings, or their error) is recorded beside the scan. They need
//! their own databases, often from the network; their failure does not fail the scan.

pub mod lockfiles;
pub mod osv;
pub mod sync;
mod tools;

use crate::error::{Error, Result};
use crate::params::{positive, problem, resolve};
use crate::redact;
use caretaker_core::config::ConfigProblem;
use caretaker_core::task::{BoxFuture, Task, TaskContext, TaskError, TaskOutcome, TaskStatus, parse_params};
use chrono::NaiveDate;
use lockfiles::{Ecosystem, Package};
use osv::{AdvisoryDb, Severity};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The lockfiles looked for under the root when `lockfiles` is not given.
pub const DEFAULT_LOCKFILES: [&str; 3] = ["Cargo.lock", "requirements.txt", "package-lock.json"];

/// Parameters of `security_scan`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityScanConfig {
    /// The advisory database: a directory of OSV JSON records (searched recursively), relative
    /// to the catalog's root. An export of osv.dev, RustSec (`advisory-db` in OSV form), GitHub
    /// or PyPA advisories works as it is.
    pub advisories: PathBuf,
    /// The lockfiles to scan, relative to the root. Every one listed must exist. Default: those of
    /// `Cargo.lock`, `requirements.txt` and `package-lock.json` present in the root (at least one).
    pub lockfiles: Option<Vec<PathBuf>>,
    /// Findings at or above this severity, not allowlisted, fail the task: `informational`, `low`,
    /// `medium`, `high`, `critical` or `never`. A finding without a severity counts as high.
    /// Default `high`.
    #[serde(default = "default_fail_on")]
    pub fail_on: String,
    /// Accepted findings.
    #[serde(default)]
    pub allow: Vec<AllowEntry>,
    /// The scan refuses a database older than this many days (its last `advisories_sync`, or,
    /// for a directory filled by hand, its newest record's `modified`); 0 scans whatever its
    /// age. Default 7.
    #[serde(default = "default_max_age_days")]
    pub max_age_days: f64,
    /// Run `cargo audit`, `pip-audit` and `trivy` as well, when installed. Default true.
    #[serde(default = "default_true")]
    pub external_tools: bool,
    /// Each external tool is stopped after this many seconds. Default 300.
    #[serde(default = "default_tool_timeout")]
    pub tool_timeout_seconds: f64,
}

fn default_max_age_days() -> f64 {
    7.0
}

fn default_fail_on() -> String {
    "high".into()
}
fn default_true() -> bool {
    true
}
fn default_tool_timeout() -> f64 {
    300.0
}

/// An accepted finding: `[[allow]]` with `id`, `reason` and `expires`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AllowEntry {
    /// The advisory id (or one of its aliases, a CVE say).
    pub id: String,
    /// Only for this package. Default: every package the advisory names.
    pub package: Option<String>,
    /// Why it is accepted: required.
    pub reason: String,
    /// The last day it suppresses the finding (`2026-12-31`, a TOML date or a string): required.
    /// From the next day on the finding is reported again, with a note that the entry expired.
    #[serde(deserialize_with = "date")]
    pub expires: NaiveDate,
}

fn date<'de, D: serde::Deserializer<'de>>(d: D) -> Result<NaiveDate, D::Error> {
    let value = toml::Value::deserialize(d)?;
    let text = match &value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Datetime(dt) => dt.to_string(),
        other => return Err(serde::de::Error::custom(format!("expected a date (2026-12-31), got {other}"))),
    };
    NaiveDate::parse_from_str(text.get(..10).unwrap_or(&text), "%Y-%m-%d")
        .map_err(|_| serde::de::Error::custom(format!("{text:?} is not a date (2026-12-31)")))
}

#[derive(Clone)]
pub struct SecurityScan {
    advisories: PathBuf,
    /// `None`: any age.
    max_age: Option<chrono::Duration>,
    lockfiles: Option<Vec<PathBuf>>,
    root: PathBuf,
    /// `None`: never fail on findings.
    fail_on: Option<Severity>,
    allow: Vec<AllowEntry>,
    external_tools: bool,
    tool_timeout: Duration,
}

impl SecurityScan {
    pub fn build(params: &toml::Table, root: &Path) -> Result<SecurityScan, ConfigProblem> {
        let config: SecurityScanConfig = parse_params(params)?;
        let fail_on = match config.fail_on.as_str() {
            "never" => None,
            name => Some(Severity::from_name(name).filter(|s| *s != Severity::Unknown).ok_or_else(|| {
                problem("fail_on", format!("{name:?} is not one of informational, low, medium, high, critical, never"))
            })?),
        };
        for (i, entry) in config.allow.iter().enumerate() {
            if entry.id.trim().is_empty() {
                return Err(problem(&format!("allow[{i}].id"), "must not be empty"));
            }
            if entry.reason.trim().is_empty() {
                return Err(problem(&format!("allow[{i}].reason"), "must say why the finding is accepted"));
            }
        }
        let lockfiles = match config.lockfiles {
            Some(list) => {
                if list.is_empty() {
                    return Err(problem("lockfiles", "must list at least one lockfile (or be left out)"));
                }
                for (i, path) in list.iter().enumerate() {
                    if Ecosystem::of_lockfile(path).is_none() {
                        return Err(problem(
                            &format!("lockfiles[{i}]"),
                            format!("{} is not a Cargo.lock, package-lock.json or requirements*.txt", path.display()),
                        ));
                    }
                }
                Some(list.iter().map(|p| resolve(root, p)).collect())
            }
            None => None,
        };
        if !config.max_age_days.is_finite() || config.max_age_days < 0.0 {
            return Err(problem("max_age_days", format!("must be 0 (any age) or more, got {}", config.max_age_days)));
        }
        Ok(SecurityScan {
            advisories: resolve(root, &config.advisories),
            max_age: (config.max_age_days > 0.0)
                .then(|| chrono::Duration::seconds((config.max_age_days * 86_400.0).min(1e12) as i64)),
            lockfiles,
            root: root.to_path_buf(),
            fail_on,
            allow: config.allow,
            external_tools: config.external_tools,
            tool_timeout: Duration::from_secs_f64(positive("tool_timeout_seconds", config.tool_timeout_seconds)?),
        })
    }
}

/// One advisory matching one package version.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Finding {
    pub id: String,
    pub aliases: Vec<String>,
    pub ecosystem: String,
    pub package: String,
    pub version: String,
    pub severity: Severity,
    /// `unmaintained`, `unsound`, ... for informational advisories.
    pub informational: Option<String>,
    pub summary: Option<String>,
    pub fixed_versions: Vec<String>,
    /// The lockfile that pins it.
    pub lockfile: String,
    /// What a person would run or edit to move to a fixed version (never run by the scan).
    pub recommendation: String,
    /// The allowlist entry's reason, when one suppresses it.
    pub allowed: Option<String>,
    /// The expiry of an allowlist entry that would have suppressed it but has expired.
    pub allow_expired: Option<NaiveDate>,
    /// Not in the previous scan.
    pub new: bool,
}

impl Finding {
    fn key(&self) -> (String, String, String, String) {
        (self.id.clone(), self.ecosystem.clone(), self.package.clone(), self.version.clone())
    }
}

/// What is kept between scans.
#[derive(Debug, Serialize, Deserialize)]
struct ScanState {
    scanned_at: chrono::DateTime<chrono::Utc>,
    findings: Vec<Finding>,
}

fn recommendation(ecosystem: Ecosystem, name: &str, version: &str, fixed: &[String]) -> String {
    let target = fixed
        .iter()
        .filter(|f| {
            osv::Version::parse(ecosystem, f).zip(osv::Version::parse(ecosystem, version)).is_some_and(|(f, v)| f > v)
        })
        .min_by(|a, b| {
            osv::Version::parse(ecosystem, a)
                .partial_cmp(&osv::Version::parse(ecosystem, b))
                .unwrap_or(std::cmp::Ordering::Equal)
        });
    match (target, ecosystem) {
        (None, _) => "no fixed version is known: replace the package or accept the risk in the allowlist".into(),
        (Some(f), Ecosystem::CratesIo) => format!("cargo update -p {name}@{version} --precise {f}"),
        (Some(f), Ecosystem::PyPI) => format!("pin {name}=={f} in requirements.txt"),
        (Some(f), Ecosystem::Npm) => format!("npm install {name}@{f}"),
    }
}

impl SecurityScan {
    fn state_path(&self, ctx: &TaskContext) -> PathBuf {
        ctx.state_dir.join(format!("{}.security_scan.json", ctx.task_id))
    }

    fn lockfile_paths(&self) -> Result<Vec<PathBuf>> {
        match &self.lockfiles {
            Some(list) => {
                for p in list {
                    if !p.is_file() {
                        return Err(Error::step(format!("finding the lockfile {}", p.display()), "it does not exist"));
                    }
                }
                Ok(list.clone())
            }
            None => {
                let found: Vec<PathBuf> =
                    DEFAULT_LOCKFILES.iter().map(|n| self.root.join(n)).filter(|p| p.is_file()).collect();
                if found.is_empty() {
                    return Err(Error::step(
                        format!("finding the lockfiles in {}", self.root.display()),
                        format!("no lockfile ({}) is there", DEFAULT_LOCKFILES.join(", ")),
                    ));
                }
                Ok(found)
            }
        }
    }

    /// The scan itself: blocking file work.
    fn scan(&self, ctx: &TaskContext) -> Result<(Vec<Finding>, serde_json::Value)> {
        let db = AdvisoryDb::load(&self.advisories)?;
        let synced = sync::SyncRecord::read(&self.advisories);
        let dated = synced.as_ref().map(|s| s.synced_at).or(db.newest_modified);
        if let Some(max) = self.max_age {
            let refresh = format!(
                "run `caretaker advisories sync --advisories {}` (or the catalog's advisories_sync task), or set max_age_days = 0 to scan with it anyway",
                self.advisories.display()
            );
            let checking = || format!("checking the age of the advisory database {}", self.advisories.display());
            match dated {
                Some(at) if ctx.started_at - at <= max => {}
                Some(at) => {
                    return Err(Error::step(
                        checking(),
                        format!(
                            "it is from {} ({} days old, {}), older than max_age_days = {}: {refresh}",
                            at.format("%Y-%m-%d"),
                            (ctx.started_at - at).num_days(),
                            if synced.is_some() { "its last sync" } else { "its newest record; it was never synced" },
                            max.num_seconds() as f64 / 86_400.0,
                        ),
                    ));
                }
                None => {
                    return Err(Error::step(
                        checking(),
                        format!("it says neither when it was synced nor when its records changed: {refresh}"),
                    ));
                }
            }
        }
        let today = ctx.started_at.date_naive();
        let mut findings = Vec::new();
        let mut lockfile_details = Vec::new();
        let mut unchecked = Vec::new();
        let mut packages = 0usize;
        for path in self.lockfile_paths()? {
            let ecosystem = Ecosystem::of_lockfile(&path).expect("checked when built or by name");
            let lockfile = lockfiles::read(&path, ecosystem)?;
            packages += lockfile.packages.len();
            lockfile_details.push(serde_json::json!({
                "path": lockfile.path, "ecosystem": ecosystem.osv_name(),
                "packages": lockfile.packages.len(), "unchecked": lockfile.unchecked,
            }));
            for package in &lockfile.packages {
                let matches = match db.matches(package) {
                    Ok(m) => m,
                    Err(e) => {
                        unchecked.push(e.to_string());
                        continue;
                    }
                };
                for m in matches {
                    findings.push(self.finding(package, &lockfile.path, m, today));
                }
            }
        }
        findings.sort_by(|a, b| b.severity.rank().cmp(&a.severity.rank()).then_with(|| a.key().cmp(&b.key())));
        findings.dedup_by(|a, b| a.key() == b.key());
        let unused_allow: Vec<&AllowEntry> =
            self.allow.iter().filter(|e| !findings.iter().any(|f| allows(e, f))).collect();
        let details = serde_json::json!({
            "advisories": {
                "path": self.advisories.display().to_string(), "records": db.records, "withdrawn": db.withdrawn,
                "date": dated, "synced_at": synced.as_ref().map(|s| s.synced_at),
                "source": synced.as_ref().map(|s| s.source.clone()),
            },
            "lockfiles": lockfile_details,
            "packages_checked": packages,
            "versions_not_compared": unchecked,
            "unused_allow_entries": unused_allow,
        });
        Ok((findings, details))
    }

    fn finding(&self, package: &Package, lockfile: &str, m: osv::Match, today: NaiveDate) -> Finding {
        let mut finding = Finding {
            id: m.record.id.clone(),
            aliases: m.record.aliases.clone(),
            ecosystem: package.ecosystem.osv_name().to_string(),
            package: package.name.clone(),
            version: package.version.clone(),
            severity: m.severity,
            informational: m.informational,
            summary: m.record.summary.clone(),
            recommendation: recommendation(package.ecosystem, &package.name, &package.version, &m.fixed),
            fixed_versions: m.fixed,
            lockfile: lockfile.to_string(),
            allowed: None,
            allow_expired: None,
            new: false,
        };
        let entries: Vec<&AllowEntry> = self.allow.iter().filter(|e| allows(e, &finding)).collect();
        match entries.iter().find(|e| e.expires >= today) {
            Some(live) => finding.allowed = Some(live.reason.clone()),
            None => finding.allow_expired = entries.iter().map(|e| e.expires).max(),
        }
        finding
    }
}

fn allows(entry: &AllowEntry, finding: &Finding) -> bool {
    let id_matches = entry.id == finding.id || finding.aliases.contains(&entry.id);
    id_matches && entry.package.as_ref().is_none_or(|p| p == &finding.package)
}

impl Task for SecurityScan {
    fn kind(&self) -> &'static str {
        "security_scan"
    }

    fn metric_names(&self) -> Vec<String> {
        [
            "findings",
            "findings_allowlisted",
            "findings_critical",
            "findings_high",
            "findings_medium",
            "findings_low",
            "findings_informational",
            "findings_unknown",
            "findings_new",
            "findings_resolved",
            "allowlist_expired",
            "packages_checked",
        ]
        .map(String::from)
        .to_vec()
    }

    fn run<'a>(&'a self, ctx: &'a TaskContext) -> BoxFuture<'a, Result<TaskOutcome, TaskError>> {
        Box::pin(async move {
            let outcome = self.run_scan(ctx).await;
            Ok(redact::scrub_outcome(outcome, &[]))
        })
    }
}

impl SecurityScan {
    async fn run_scan(&self, ctx: &TaskContext) -> TaskOutcome {
        let this = self.clone();
        let state_path = self.state_path(ctx);
        let ctx_owned = ctx.clone();
        let scanned = crate::blocking("the security scan", move || {
            let scan = this.scan(&ctx_owned)?;
            let previous = read_state(&state_path)?;
            Ok::<_, Error>((scan, previous, this.lockfile_paths()?))
        })
        .await;
        let ((mut findings, mut details), previous, lockfile_paths) = match scanned {
            Ok(Ok(s)) => s,
            Ok(Err(e)) | Err(e) => {
                return TaskOutcome::failed(format!("security scan failed, nothing was changed: {e}"));
            }
        };

        // New and resolved, against the previous scan.
        let resolved: Vec<Finding> = match &previous {
            Some(prev) => {
                let now: BTreeSet<_> = findings.iter().map(Finding::key).collect();
                prev.findings.iter().filter(|f| !now.contains(&f.key())).cloned().collect()
            }
            None => Vec::new(),
        };
        let before: BTreeSet<_> =
            previous.as_ref().map(|p| p.findings.iter().map(Finding::key).collect()).unwrap_or_default();
        for f in &mut findings {
            f.new = !before.contains(&f.key());
        }

        let tools = if self.external_tools {
            tools::run_all(&self.root, &lockfile_paths, self.tool_timeout).await
        } else {
            Vec::new()
        };

        let active: Vec<&Finding> = findings.iter().filter(|f| f.allowed.is_none()).collect();
        let failing: Vec<&&Finding> =
            active.iter().filter(|f| self.fail_on.is_some_and(|t| f.severity.rank() >= t.rank())).collect();
        let expired: Vec<&Finding> = findings.iter().filter(|f| f.allow_expired.is_some()).collect();
        let count = |s: Severity| active.iter().filter(|f| f.severity == s).count();
        let mut summary = format!(
            "{} findings ({} critical, {} high, {} medium, {} low, {} informational, {} unknown), {} allowlisted; {} new, {} resolved{}",
            active.len(),
            count(Severity::Critical),
            count(Severity::High),
            count(Severity::Medium),
            count(Severity::Low),
            count(Severity::Informational),
            count(Severity::Unknown),
            findings.len() - active.len(),
            findings.iter().filter(|f| f.new).count(),
            resolved.len(),
            if previous.is_none() { " (first scan)" } else { "" },
        );
        let db = &details["advisories"];
        summary.push_str(&format!(
            "; against {} advisories{}",
            db["records"],
            match db["date"].as_str().and_then(|d| d.get(..10)) {
                Some(day) if db["synced_at"].is_null() => format!(" (newest record {day})"),
                Some(day) => format!(" (synced {day})"),
                None => String::new(),
            }
        ));
        for f in &expired {
            summary.push_str(&format!(
                "; the allowlist entry for {} {} expired on {} and no longer suppresses it",
                f.id,
                f.package,
                f.allow_expired.expect("filtered")
            ));
        }
        if !failing.is_empty() {
            let names: Vec<String> = failing
                .iter()
                .take(5)
                .map(|f| format!("{} {} {} ({})", f.id, f.package, f.version, f.severity.name()))
                .collect();
            summary.push_str(&format!(
                "; at or above {}: {}",
                self.fail_on.expect("failing implies a threshold").name(),
                names.join(", ")
            ));
        }

        let mut outcome = TaskOutcome {
            status: if failing.is_empty() { TaskStatus::Succeeded } else { TaskStatus::Failed },
            summary,
            metrics: Default::default(),
            details: serde_json::Value::Null,
        };
        let m = &mut outcome.metrics;
        m.insert("findings".into(), active.len() as f64);
        m.insert("findings_allowlisted".into(), (findings.len() - active.len()) as f64);
        for s in [
            Severity::Critical,
            Severity::High,
            Severity::Medium,
            Severity::Low,
            Severity::Informational,
            Severity::Unknown,
        ] {
            m.insert(format!("findings_{}", s.name()), count(s) as f64);
        }
        m.insert("findings_new".into(), findings.iter().filter(|f| f.new).count() as f64);
        m.insert("findings_resolved".into(), resolved.len() as f64);
        m.insert("allowlist_expired".into(), expired.len() as f64);
        m.insert("packages_checked".into(), details["packages_checked"].as_f64().unwrap_or(0.0));

        let object = details.as_object_mut().expect("details is an object");
        object.insert("findings".into(), serde_json::to_value(&findings).expect("findings serialise"));
        object.insert("resolved".into(), serde_json::to_value(&resolved).expect("findings serialise"));
        object.insert("first_scan".into(), previous.is_none().into());
        object.insert("external_tools".into(), serde_json::to_value(&tools).expect("tool runs serialise"));
        object.insert("dry_run".into(), ctx.dry_run.into());
        outcome.details = details;

        // The findings become the next scan's reference (not in a dry run).
        if !ctx.dry_run {
            let state = ScanState { scanned_at: ctx.started_at, findings };
            let path = self.state_path(ctx);
            let bytes = serde_json::to_vec_pretty(&state).expect("the scan state serialises");
            if let Err(e) = caretaker_core::fs::write_atomic(&path, &bytes) {
                outcome.status = TaskStatus::Failed;
                outcome.summary = format!("{}; saving the findings for the next scan failed: {e}", outcome.summary);
            }
        }
        outcome
    }
}

fn read_state(path: &Path) -> Result<Option<ScanState>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            Error::step(
                format!("reading {}", path.display()),
                format!("not a previous scan's findings ({e}); remove it to start afresh"),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::file("read", path, e)),
    }
}

#[cfg(test)]
mod tests;
