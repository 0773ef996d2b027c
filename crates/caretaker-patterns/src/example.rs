//! The example pattern store of `caretaker demo`: patterns of the bridge's events, learned over the
//! last eight months, so that cleanup has old useless ones to delete and old valuable ones to
//! archive.

use crate::Result;
pub use crate::pattern::{Condition, Pattern, frame, pattern_id};
use crate::store;
use chrono::{DateTime, Duration, Utc};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use std::path::Path;

const CATEGORIES: [(&str, &[&str]); 4] = [
    ("service", &["auth_gateway", "tool_proxy", "search_index", "model_router", "billing", "notifier"]),
    (
        "tool",
        &["http_fetch", "sql_query", "file_read", "code_exec", "vector_search", "email_send", "calendar", "shell"],
    ),
    ("region", &["eu-west", "us-east", "us-west", "ap-south"]),
    ("client_version", &["1.8", "1.9", "2.0", "2.1"]),
];
const THRESHOLDS: [(&str, &[&str]); 5] = [
    ("latency_ms", &["250", "1000", "4000", "10000"]),
    ("payload_bytes", &["100000", "1000000", "5000000"]),
    ("retries", &["1", "2", "3"]),
    ("queue_depth", &["20", "50", "80"]),
    ("error_rate_1h", &["0.1", "0.2", "0.3"]),
];

/// `count` distinct example patterns, created over the 240 days before `now`.
pub fn patterns(count: usize, seed: u64, now: DateTime<Utc>) -> Vec<Pattern> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(count);
    let mut attempts = 0;
    while out.len() < count && attempts < count * 50 {
        attempts += 1;
        let mut conditions = Vec::new();
        let size = rng.random_range(1..=3);
        let mut used = std::collections::HashSet::new();
        while conditions.len() < size {
            let c = if rng.random::<f64>() < 0.5 {
                let (feature, values) = CATEGORIES[rng.random_range(0..CATEGORIES.len())];
                let op = if rng.random::<f64>() < 0.85 { "=" } else { "!=" };
                Condition {
                    feature: feature.into(),
                    op: op.into(),
                    value: values[rng.random_range(0..values.len())].into(),
                }
            } else {
                let (feature, values) = THRESHOLDS[rng.random_range(0..THRESHOLDS.len())];
                let op = if rng.random::<f64>() < 0.75 { ">" } else { "<=" };
                Condition {
                    feature: feature.into(),
                    op: op.into(),
                    value: values[rng.random_range(0..values.len())].into(),
                }
            };
            if used.insert(c.feature.clone()) {
                conditions.push(c);
            }
        }
        let predicts = rng.random::<f64>() < 0.9;
        if !seen.insert(pattern_id(&conditions, predicts)) {
            continue;
        }
        let age_days = rng.random::<f64>() * 240.0;
        let created_at = now - Duration::seconds((age_days * 86_400.0) as i64);
        let confidence = 0.2 + 0.79 * rng.random::<f64>();
        let usage_count = if rng.random::<f64>() < 0.35 { rng.random_range(0..5) } else { rng.random_range(5..500) };
        let last_used_at = (usage_count > 0)
            .then(|| created_at + Duration::seconds((rng.random::<f64>() * age_days * 86_400.0) as i64));
        let support = 0.001 + 0.05 * rng.random::<f64>();
        out.push(Pattern {
            conditions,
            predicts,
            support,
            confidence,
            lift: confidence / 0.15,
            created_at,
            last_seen_at: last_used_at.unwrap_or(created_at),
            last_used_at,
            usage_count,
        });
    }
    out
}

/// Writes the example store at `path`, atomically. Returns the number of patterns.
pub fn write(path: &Path, count: usize, seed: u64, now: DateTime<Utc>) -> Result<usize> {
    let patterns = patterns(count, seed, now);
    let mut df = frame(&patterns).map_err(|e| caretaker_data::parquet_io::write_error(path, e))?;
    store::write(&mut df, path)?;
    Ok(patterns.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_ids_ignore_condition_order_but_not_content() {
        let a = Condition { feature: "service".into(), op: "=".into(), value: "tool_proxy".into() };
        let b = Condition { feature: "payload_bytes".into(), op: ">".into(), value: "1000000".into() };
        assert_eq!(pattern_id(&[a.clone(), b.clone()], true), pattern_id(&[b.clone(), a.clone()], true));
        assert_ne!(pattern_id(&[a.clone(), b.clone()], true), pattern_id(&[a.clone(), b.clone()], false));
        assert_ne!(pattern_id(std::slice::from_ref(&a), true), pattern_id(&[a, b], true));
    }

    #[test]
    fn the_example_store_round_trips_with_structured_conditions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.parquet");
        let now: DateTime<Utc> = "2026-11-28T00:00:00Z".parse().unwrap();
        let n = write(&path, 300, 3, now).unwrap();
        assert_eq!(n, 300);
        let df = store::read(&path).unwrap();
        assert_eq!(df.height(), 300);
        assert_eq!(df.schema().get("conditions"), store::schema().get("conditions"));
        let ids = store::ids(&df).unwrap();
        assert_eq!(ids.iter().collect::<std::collections::HashSet<_>>().len(), 300);
    }
}
