//! An offline advisory database in OSV JSON format, and the matching of a package version
//! against it.
//!
//! The database is a directory of `*.json` files (searched recursively), one OSV record each,
//! as the OSV project and the RustSec, GitHub and PyPA databases export them. A file that is not
//! an OSV record makes the scan fail, naming the file: skipping it would hide its advisories.
//! Withdrawn records are ignored.
//!
//! A version is affected when it is listed in `versions`, or falls in a `SEMVER` or `ECOSYSTEM`
//! range: events sorted by version, each `introduced` at or below the version switches it on,
//! each `fixed` at or below it and each `last_affected` below it switches it off (the OSV
//! specification's evaluation). Versions compare as semantic versions for crates.io and npm and
//! as PEP 440 versions for PyPI. `GIT` ranges are not evaluated.

use super::lockfiles::{Ecosystem, Package};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

#[derive(Debug, Deserialize)]
pub struct OsvRecord {
    pub id: String,
    /// When the record last changed (RFC 3339): the newest says how fresh a database is.
    #[serde(default)]
    pub modified: Option<String>,
    #[serde(default)]
    pub summary: Option<String>,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub withdrawn: Option<String>,
    #[serde(default)]
    pub affected: Vec<Affected>,
    #[serde(default)]
    pub severity: Vec<SeverityScore>,
    #[serde(default)]
    pub database_specific: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
pub struct Affected {
    pub package: Option<OsvPackage>,
    #[serde(default)]
    pub ranges: Vec<Range>,
    #[serde(default)]
    pub versions: Vec<String>,
    #[serde(default)]
    pub severity: Vec<SeverityScore>,
    #[serde(default)]
    pub database_specific: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
pub struct OsvPackage {
    pub ecosystem: String,
    pub name: String,
}

#[derive(Debug, Deserialize)]
pub struct Range {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub events: Vec<Event>,
}

#[derive(Debug, Deserialize)]
pub struct Event {
    pub introduced: Option<String>,
    pub fixed: Option<String>,
    pub last_affected: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct SeverityScore {
    #[serde(rename = "type")]
    pub kind: String,
    pub score: String,
}

/// How bad an advisory is. `Unknown` (no severity in the record) ranks with `High` for
/// `fail_on`: a finding nobody graded is not waved through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Not a vulnerability: unmaintained, unsound, a notice (RustSec's informational advisories).
    Informational,
    Low,
    Medium,
    High,
    Critical,
    Unknown,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Informational => "informational",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
            Severity::Unknown => "unknown",
        }
    }

    pub fn from_name(name: &str) -> Option<Severity> {
        match name.to_ascii_lowercase().as_str() {
            "informational" => Some(Severity::Informational),
            "low" => Some(Severity::Low),
            "medium" | "moderate" => Some(Severity::Medium),
            "high" => Some(Severity::High),
            "critical" => Some(Severity::Critical),
            _ => None,
        }
    }

    /// Rank for `fail_on`: unknown counts as high.
    pub fn rank(self) -> u8 {
        match self {
            Severity::Informational => 0,
            Severity::Low => 1,
            Severity::Medium => 2,
            Severity::High | Severity::Unknown => 3,
            Severity::Critical => 4,
        }
    }
}

/// A match of one package version against one record.
#[derive(Debug, Clone)]
pub struct Match {
    pub record: Arc<OsvRecord>,
    pub severity: Severity,
    /// `unmaintained`, `unsound`, ... for informational advisories.
    pub informational: Option<String>,
    /// Versions that fix it, from the ranges that matched (may be empty: no fix yet).
    pub fixed: Vec<String>,
}

/// A record and the index of its `affected` entry that names a package.
type AffectedEntry = (Arc<OsvRecord>, usize);

/// The loaded database, indexed by ecosystem and normalised package name.
pub struct AdvisoryDb {
    index: HashMap<(Ecosystem, String), Vec<AffectedEntry>>,
    pub records: usize,
    pub withdrawn: usize,
    /// The newest `modified` of its records.
    pub newest_modified: Option<chrono::DateTime<chrono::Utc>>,
}

impl AdvisoryDb {
    pub fn load(dir: &Path) -> Result<AdvisoryDb> {
        let reading = || format!("reading the advisory database {}", dir.display());
        if !dir.is_dir() {
            return Err(Error::step(
                reading(),
                format!(
                    "it does not exist: download it with `caretaker advisories sync --advisories {}` (from OSV's public export, or --source a mirror or a directory of its zips)",
                    dir.display()
                ),
            ));
        }
        let mut files = Vec::new();
        collect_json(dir, &mut files).map_err(|e| Error::file("list the advisory database", dir, e))?;
        files.sort();
        let mut db = AdvisoryDb { index: HashMap::new(), records: 0, withdrawn: 0, newest_modified: None };
        for file in files {
            let bytes = std::fs::read(&file).map_err(|e| Error::file("read", &file, e))?;
            let record: OsvRecord = serde_json::from_slice(&bytes)
                .map_err(|e| Error::step(format!("reading {}", file.display()), format!("not an OSV record: {e}")))?;
            let modified = record.modified.as_deref().and_then(|m| chrono::DateTime::parse_from_rfc3339(m).ok());
            if let Some(m) = modified.map(|m| m.with_timezone(&chrono::Utc)) {
                db.newest_modified = db.newest_modified.max(Some(m));
            }
            if record.withdrawn.is_some() {
                db.withdrawn += 1;
                continue;
            }
            db.records += 1;
            let record = Arc::new(record);
            for (i, affected) in record.affected.iter().enumerate() {
                let Some(package) = &affected.package else { continue };
                let Some(ecosystem) = Ecosystem::from_osv(&package.ecosystem) else { continue };
                db.index.entry((ecosystem, ecosystem.normalize(&package.name))).or_default().push((record.clone(), i));
            }
        }
        if db.records == 0 {
            return Err(Error::step(
                reading(),
                "it holds no advisory: a scan against it would find nothing whatever the lockfiles say",
            ));
        }
        Ok(db)
    }

    /// Every advisory affecting `package`, or why its version cannot be compared.
    pub fn matches(&self, package: &Package) -> Result<Vec<Match>> {
        let Some(entries) = self.index.get(&(package.ecosystem, package.ecosystem.normalize(&package.name))) else {
            return Ok(Vec::new());
        };
        let version = Version::parse(package.ecosystem, &package.version).ok_or_else(|| {
            Error::step(format!("comparing {} {}", package.name, package.version), "not a version the scan can compare")
        })?;
        let mut out = Vec::new();
        for (record, i) in entries {
            let affected = &record.affected[*i];
            let listed = affected.versions.iter().any(|v| v == &package.version);
            let mut fixed = Vec::new();
            let mut in_range = false;
            for range in affected.ranges.iter().filter(|r| r.kind == "SEMVER" || r.kind == "ECOSYSTEM") {
                if in_range_of(&version, package.ecosystem, &range.events) {
                    in_range = true;
                    fixed.extend(range.events.iter().filter_map(|e| e.fixed.clone()));
                }
            }
            if listed || in_range {
                let (severity, informational) = severity_of(record, affected);
                out.push(Match { record: record.clone(), severity, informational, fixed });
            }
        }
        Ok(out)
    }
}

fn collect_json(dir: &Path, out: &mut Vec<std::path::PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            collect_json(&path, out)?;
        } else if kind.is_file()
            && path.extension().is_some_and(|e| e == "json")
            && !entry.file_name().to_string_lossy().starts_with('.')
        {
            out.push(path);
        }
    }
    Ok(())
}

/// A version in its ecosystem's ordering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Version {
    Semver(semver::Version),
    Pep440(pep440_rs::Version),
}

impl Version {
    pub fn parse(ecosystem: Ecosystem, text: &str) -> Option<Version> {
        match ecosystem {
            Ecosystem::CratesIo | Ecosystem::Npm => {
                semver::Version::parse(text.trim().trim_start_matches('v')).ok().map(Version::Semver)
            }
            Ecosystem::PyPI => pep440_rs::Version::from_str(text.trim()).ok().map(Version::Pep440),
        }
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Version) -> Option<Ordering> {
        match (self, other) {
            (Version::Semver(a), Version::Semver(b)) => Some(a.cmp(b)),
            (Version::Pep440(a), Version::Pep440(b)) => Some(a.cmp(b)),
            _ => None,
        }
    }
}

/// The OSV evaluation of one range's events for `version`.
fn in_range_of(version: &Version, ecosystem: Ecosystem, events: &[Event]) -> bool {
    enum Kind {
        Introduced,
        Fixed,
        LastAffected,
    }
    // `introduced: "0"` is the start of time in every ecosystem.
    let mut points: Vec<(Option<Version>, Kind)> = Vec::new();
    for e in events {
        let mut add = |text: &Option<String>, kind: Kind| {
            if let Some(t) = text {
                if t == "0" {
                    points.push((None, kind));
                } else if let Some(v) = Version::parse(ecosystem, t) {
                    points.push((Some(v), kind));
                }
            }
        };
        add(&e.introduced, Kind::Introduced);
        add(&e.fixed, Kind::Fixed);
        add(&e.last_affected, Kind::LastAffected);
    }
    points.sort_by(|a, b| match (&a.0, &b.0) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(x), Some(y)) => x.partial_cmp(y).unwrap_or(Ordering::Equal),
    });
    let mut affected = false;
    for (at, kind) in &points {
        let reached = at.as_ref().is_none_or(|v| version >= v);
        let passed = at.as_ref().is_none_or(|v| version > v);
        match kind {
            Kind::Introduced if reached => affected = true,
            Kind::Fixed if reached => affected = false,
            Kind::LastAffected if passed => affected = false,
            _ => {}
        }
    }
    affected
}

/// The record's severity: the database's own grade (`database_specific.severity`, as GitHub's
/// advisories carry it), else the highest CVSS v3/v4 score in the record, else informational
/// for RustSec's `informational` advisories, else unknown.
fn severity_of(record: &OsvRecord, affected: &Affected) -> (Severity, Option<String>) {
    let informational = affected
        .database_specific
        .as_ref()
        .and_then(|d| d.get("informational"))
        .and_then(|i| i.as_str())
        .map(str::to_string);
    if let Some(s) = record
        .database_specific
        .as_ref()
        .and_then(|d| d.get("severity"))
        .and_then(|s| s.as_str())
        .and_then(Severity::from_name)
    {
        return (s, informational);
    }
    let cvss = record
        .severity
        .iter()
        .chain(&affected.severity)
        .filter(|s| s.kind.starts_with("CVSS_V3") || s.kind.starts_with("CVSS_V4"))
        .filter_map(|s| cvss::Cvss::from_str(&s.score).ok())
        .map(|c| c.score())
        .fold(None, |best: Option<f64>, s| Some(best.map_or(s, |b| b.max(s))));
    if let Some(score) = cvss {
        let s = match score {
            s if s >= 9.0 => Severity::Critical,
            s if s >= 7.0 => Severity::High,
            s if s >= 4.0 => Severity::Medium,
            _ => Severity::Low,
        };
        return (s, informational);
    }
    match informational {
        Some(kind) => (Severity::Informational, Some(kind)),
        None => (Severity::Unknown, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(introduced: Option<&str>, fixed: Option<&str>, last: Option<&str>) -> Event {
        Event {
            introduced: introduced.map(str::to_string),
            fixed: fixed.map(str::to_string),
            last_affected: last.map(str::to_string),
        }
    }

    fn semver(v: &str) -> Version {
        Version::parse(Ecosystem::CratesIo, v).unwrap()
    }

    #[test]
    fn ranges_follow_the_osv_evaluation() {
        // Two affected spans: [1.0, 1.5) and [2.0, 2.3).
        let events = vec![
            ev(Some("1.0.0"), None, None),
            ev(None, Some("1.5.0"), None),
            ev(Some("2.0.0"), None, None),
            ev(None, Some("2.3.0"), None),
        ];
        let affected = |v: &str| in_range_of(&semver(v), Ecosystem::CratesIo, &events);
        assert!(!affected("0.9.9"));
        assert!(affected("1.0.0"));
        assert!(affected("1.4.9"));
        assert!(!affected("1.5.0"));
        assert!(!affected("1.9.0"));
        assert!(affected("2.2.0"));
        assert!(!affected("2.3.0"));
        // Pre-releases sort before their release.
        assert!(affected("2.3.0-rc.1"));
        // From the start of time, up to and including a last affected version.
        let events = vec![ev(Some("0"), None, None), ev(None, None, Some("0.4.2"))];
        assert!(in_range_of(&semver("0.1.0"), Ecosystem::CratesIo, &events));
        assert!(in_range_of(&semver("0.4.2"), Ecosystem::CratesIo, &events));
        assert!(!in_range_of(&semver("0.4.3"), Ecosystem::CratesIo, &events));
    }

    #[test]
    fn pypi_versions_compare_as_pep_440() {
        let events = vec![ev(Some("0"), None, None), ev(None, Some("2.20.0"), None)];
        let v = |t: &str| Version::parse(Ecosystem::PyPI, t).unwrap();
        assert!(in_range_of(&v("2.19.1"), Ecosystem::PyPI, &events));
        assert!(in_range_of(&v("2.20.0rc1"), Ecosystem::PyPI, &events), "a release candidate comes before its release");
        assert!(!in_range_of(&v("2.20"), Ecosystem::PyPI, &events), "2.20 is 2.20.0 in PEP 440");
        assert!(!in_range_of(&v("2.20.0.post1"), Ecosystem::PyPI, &events));
    }

    #[test]
    fn severity_from_grade_cvss_or_informational() {
        let record = |json: &str| -> OsvRecord { serde_json::from_str(json).unwrap() };
        let r = record(r#"{"id":"X","database_specific":{"severity":"MODERATE"},"affected":[{}]}"#);
        assert_eq!(severity_of(&r, &r.affected[0]).0, Severity::Medium);
        let r = record(
            r#"{"id":"X","severity":[{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],"affected":[{}]}"#,
        );
        assert_eq!(severity_of(&r, &r.affected[0]).0, Severity::Critical);
        let r = record(r#"{"id":"X","affected":[{"database_specific":{"informational":"unmaintained"}}]}"#);
        assert_eq!(severity_of(&r, &r.affected[0]), (Severity::Informational, Some("unmaintained".into())));
        let r = record(r#"{"id":"X","affected":[{}]}"#);
        assert_eq!(severity_of(&r, &r.affected[0]).0, Severity::Unknown);
        assert_eq!(Severity::Unknown.rank(), Severity::High.rank());
    }
}
