//! A pattern: conditions on event features that predict the label, its stable id, and the store
//! frame built from patterns.

use chrono::{DateTime, Utc};
use polars::prelude::*;

/// One condition of a pattern: `feature op value`, with `op` one of `=`, `!=`, `<=`, `>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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
