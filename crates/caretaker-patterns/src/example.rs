//! The example pattern store of `caretaker demo`: patterns of the bridge's events, learned over the
//! last eight months, so that cleanup has old useless ones to delete and old valuable ones to
//! archive.

use crate::Result;
use crate::store;
use chrono::{DateTime, Duration, Utc};
use polars::prelude::*;
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use std::path::Path;

/// One condition of a pattern: `feature op value`, with `op` one of `=`, `!=`, `<=`, `>`.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub feature: String,
    pub op: String,
    pub value: String,
}

/// A pattern to be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    pub conditions: Vec<Condition>,
    pub predicts: bool,
    pub support: f64,
    pub confidence: f64,
    pub lift: f64,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub usage_count: u64,
}

/// The stable id of a pattern: a hash of its conditions (in canonical order) and its label, so
/// rediscovering a pattern updates it instead of adding a twin.
pub fn pattern_id(conditions: &[Condition], predicts: bool) -> String {
    let mut parts: Vec<String> =
        conditions.iter().map(|c| format!("{}\u{1f}{}\u{1f}{}", c.feature, c.op, c.value)).collect();
    parts.sort();
    let text = format!("{}\u{1e}{predicts}", parts.join("\u{1e}"));
    blake3::hash(text.as_bytes()).to_hex()[..16].to_string()
}

/// Builds a store frame from patterns.
pub fn frame(patterns: &[Pattern]) -> PolarsResult<DataFrame> {
    let n = patterns.len();
    let (mut row, mut feature, mut op, mut value) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (i, p) in patterns.iter().enumerate() {
        for c in &p.conditions {
            row.push(i as u32);
            feature.push(c.feature.as_str());
            op.push(c.op.as_str());
            value.push(c.value.as_str());
        }
    }
    let exploded = DataFrame::new(
        row.len(),
        vec![
            Column::new("row".into(), row),
            Column::new("feature".into(), feature),
            Column::new("op".into(), op),
            Column::new("value".into(), value),
        ],
    )?;
    let conditions = exploded
        .lazy()
        .group_by_stable([col("row")])
        .agg([as_struct(vec![col("feature"), col("op"), col("value")]).alias("conditions")])
        .collect()?;
    let micros = |t: DateTime<Utc>| t.timestamp_micros();
    let time = |name: &str, values: Vec<Option<i64>>| {
        Series::new(name.into(), values)
            .cast(&DataType::Datetime(TimeUnit::Microseconds, None))
            .map(|s| s.into_column())
    };
    let df = DataFrame::new(
        n,
        vec![
            Column::new(
                "pattern_id".into(),
                patterns.iter().map(|p| pattern_id(&p.conditions, p.predicts)).collect::<Vec<_>>(),
            ),
            conditions.column("conditions")?.clone(),
            Column::new("predicts".into(), patterns.iter().map(|p| p.predicts).collect::<Vec<_>>()),
            Column::new("support".into(), patterns.iter().map(|p| p.support).collect::<Vec<_>>()),
            Column::new("confidence".into(), patterns.iter().map(|p| p.confidence).collect::<Vec<_>>()),
            Column::new("lift".into(), patterns.iter().map(|p| p.lift).collect::<Vec<_>>()),
            time("created_at", patterns.iter().map(|p| Some(micros(p.created_at))).collect())?,
            time("last_seen_at", patterns.iter().map(|p| Some(micros(p.last_seen_at))).collect())?,
            time("last_used_at", patterns.iter().map(|p| p.last_used_at.map(micros)).collect())?,
            Column::new("usage_count".into(), patterns.iter().map(|p| p.usage_count).collect::<Vec<_>>()),
            Column::new("status".into(), vec!["active"; n]),
        ],
    )?;
    Ok(df)
}

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
