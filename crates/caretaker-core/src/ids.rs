//! Identifiers: run ids and model versions.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A run's id: its start time in UTC, sortable as text, plus a suffix that keeps runs (and task
/// executions, whose ids start with one) started in the same second apart
/// (`20261128T180712Z-3f9a01c7`). Releases before 2026-12-07 wrote four hex digits
/// (`20261128T180712Z-3f9a`): with a few hundred ids in one second, as a kill loop under a fixed
/// clock makes, two of them collided; eight digits from the process, the time and a counter make
/// that about once in four billion pairs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunId(String);

impl RunId {
    pub fn new(started_at: DateTime<Utc>) -> RunId {
        static COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let mut hasher = blake3::Hasher::new();
        hasher.update(&std::process::id().to_le_bytes());
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        hasher.update(&nanos.to_le_bytes());
        hasher.update(&COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed).to_le_bytes());
        let suffix = &hasher.finalize().to_hex()[..8];
        RunId(format!("{}-{suffix}", started_at.format("%Y%m%dT%H%M%SZ")))
    }

    /// Accepts a run id typed by a user; only the characters a run id can hold are allowed, so
    /// the id is safe to use as a directory name.
    pub fn parse(text: &str) -> Option<RunId> {
        let ok = !text.is_empty()
            && text.len() <= 64
            && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        ok.then(|| RunId(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// When the run named `name` started, if the whole name is a run id as [`RunId::new`] writes
    /// it (`20261128T180712Z-3f9a01c7`, or the four digits of earlier releases, nothing before or
    /// after); `None` for any other name, so
    /// that what removes old run directories never takes `20261128T180712Z-backup` for one.
    pub fn started_at_of(name: &str) -> Option<DateTime<Utc>> {
        let (stamp, suffix) = name.split_once('-')?;
        let hex =
            matches!(suffix.len(), 4 | 8) && suffix.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if stamp.len() != 16 || !hex {
            return None;
        }
        chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%SZ").ok().map(|t| t.and_utc())
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A model version in the registry: `v0001`, `v0002`, ... in deploy order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ModelVersion(pub u32);

impl ModelVersion {
    pub fn next(self) -> ModelVersion {
        ModelVersion(self.0 + 1)
    }
}

impl fmt::Display for ModelVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{:04}", self.0)
    }
}

impl std::str::FromStr for ModelVersion {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits = s.strip_prefix('v').unwrap_or(s);
        digits
            .parse::<u32>()
            .ok()
            .filter(|n| *n > 0 && digits.chars().all(|c| c.is_ascii_digit()))
            .map(ModelVersion)
            .ok_or_else(|| format!("{s:?} is not a model version (expected v0001, v0002, ...)"))
    }
}

impl TryFrom<String> for ModelVersion {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<ModelVersion> for String {
    fn from(v: ModelVersion) -> String {
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_whole_run_id_names_a_run() {
        let id = RunId::new("2026-11-28T18:07:12Z".parse().unwrap());
        assert_eq!(RunId::started_at_of(id.as_str()), Some("2026-11-28T18:07:12Z".parse().unwrap()));
        // An earlier release's id still names a run.
        assert_eq!(RunId::started_at_of("20261128T180712Z-3f9a"), Some("2026-11-28T18:07:12Z".parse().unwrap()));
        for other in [
            "20261128T180712Z-3f9a0",
            "20261128T180712Z-backup",
            "20261128T180712Z",
            "20261128T180712Z-3f9a-old",
            "x20261128T180712Z-3f9a",
            "20261128T180712Z-3F9A",
            "20261328T180712Z-3f9a",
            "notes",
        ] {
            assert_eq!(RunId::started_at_of(other), None, "{other}");
        }
    }

    #[test]
    fn versions_round_trip_and_reject_garbage() {
        assert_eq!("v0007".parse::<ModelVersion>().unwrap(), ModelVersion(7));
        assert_eq!("12".parse::<ModelVersion>().unwrap().to_string(), "v0012");
        for bad in ["", "v", "v-1", "v0", "x12", "v1.0", "../v1"] {
            assert!(bad.parse::<ModelVersion>().is_err(), "{bad}");
        }
    }

    #[test]
    fn ids_made_in_the_same_second_do_not_collide() {
        // Ten thousand ids of one second in one process: with four hex digits a collision was
        // near certain (the scheduler's execution history refused the second one).
        let at: DateTime<Utc> = "2026-11-28T18:07:12Z".parse().unwrap();
        let ids: std::collections::HashSet<RunId> = (0..10_000).map(|_| RunId::new(at)).collect();
        assert_eq!(ids.len(), 10_000);
    }

    #[test]
    fn run_ids_reject_path_tricks() {
        assert!(RunId::parse("20261128T180712Z-3f9a").is_some());
        for bad in ["", "../x", "a/b", "a b"] {
            assert!(RunId::parse(bad).is_none(), "{bad}");
        }
    }
}
