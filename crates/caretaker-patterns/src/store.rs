//! The store's schema, and reading and writing it.

use crate::{Error, Result};
use polars::prelude::*;
use std::path::Path;

/// The columns of a pattern store, in order, with their types.
pub fn schema() -> Schema {
    let condition = DataType::Struct(vec![
        Field::new("feature".into(), DataType::String),
        Field::new("op".into(), DataType::String),
        Field::new("value".into(), DataType::String),
    ]);
    let time = DataType::Datetime(TimeUnit::Microseconds, None);
    Schema::from_iter([
        Field::new("pattern_id".into(), DataType::String),
        Field::new("conditions".into(), DataType::List(Box::new(condition))),
        Field::new("predicts".into(), DataType::Boolean),
        Field::new("support".into(), DataType::Float64),
        Field::new("confidence".into(), DataType::Float64),
        Field::new("lift".into(), DataType::Float64),
        Field::new("created_at".into(), time.clone()),
        Field::new("last_seen_at".into(), time.clone()),
        Field::new("last_used_at".into(), time),
        Field::new("usage_count".into(), DataType::UInt64),
        Field::new("status".into(), DataType::String),
    ])
}

/// The columns cleanup depends on, with the types it needs.
const REQUIRED: [&str; 5] = ["pattern_id", "created_at", "usage_count", "confidence", "status"];

/// Reads the store, checking that the columns cleanup relies on are there with usable types. A
/// missing store is an empty one.
pub fn read(path: &Path) -> Result<DataFrame> {
    if !path.exists() {
        return Ok(DataFrame::empty_with_schema(&schema()));
    }
    let df = caretaker_data::parquet_io::read_parquet(path)?;
    check_schema(path, df.schema())?;
    Ok(df)
}

pub fn check_schema(path: &Path, found: &Schema) -> Result<()> {
    let expected = schema();
    for name in REQUIRED {
        let want = expected.get(name).expect("required columns are in the schema");
        match found.get(name) {
            None => {
                return Err(Error::Invalid {
                    path: path.to_path_buf(),
                    reason: format!("not a pattern store: column {name:?} is missing (expected {want})"),
                });
            }
            Some(got) if got != want && !(name == "usage_count" && got.is_integer()) => {
                return Err(Error::Invalid {
                    path: path.to_path_buf(),
                    reason: format!("not a pattern store: column {name:?} is {got}, expected {want}"),
                });
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Replaces the store atomically.
pub fn write(df: &mut DataFrame, path: &Path) -> Result<u64> {
    Ok(caretaker_data::parquet_io::write_parquet_atomic(df, path)?)
}

/// The column of pattern ids.
pub fn ids(df: &DataFrame) -> PolarsResult<Vec<String>> {
    Ok(df.column("pattern_id")?.str()?.iter().map(|s| s.unwrap_or_default().to_string()).collect())
}

/// A pattern as `patterns list` shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PatternSummary {
    pub pattern_id: String,
    /// The conditions joined with AND, as text.
    pub conditions: String,
    pub predicts: bool,
    pub support: f64,
    pub confidence: f64,
    pub usage_count: u64,
}

/// Renders one row's conditions (a list of structs) as `feature op value AND ...`.
pub fn conditions_text(conditions: &Series) -> PolarsResult<String> {
    let fields = conditions.struct_()?.fields_as_series();
    let get = |name: &str| -> PolarsResult<Vec<String>> {
        let s =
            fields.iter().find(|f| f.name().as_str() == name).ok_or_else(|| polars_err!(ColumnNotFound: "{name}"))?;
        Ok(s.str()?.iter().map(|v| v.unwrap_or("").to_string()).collect())
    };
    let (feature, op, value) = (get("feature")?, get("op")?, get("value")?);
    Ok((0..feature.len()).map(|i| format!("{} {} {}", feature[i], op[i], value[i])).collect::<Vec<_>>().join(" AND "))
}

/// The `n` most used patterns.
pub fn top(path: &Path, n: usize) -> Result<Vec<PatternSummary>> {
    let err = |e: PolarsError| Error::Invalid { path: path.to_path_buf(), reason: e.to_string() };
    let df = read(path)?;
    let df = df
        .lazy()
        .sort(["usage_count"], SortMultipleOptions::default().with_order_descending(true).with_maintain_order(true))
        .limit(n as IdxSize)
        .collect()
        .map_err(err)?;
    let ids = ids(&df).map_err(err)?;
    let conditions = df.column("conditions").and_then(|c| c.list().cloned()).map_err(err)?;
    let predicts = df.column("predicts").and_then(|c| c.bool().cloned()).map_err(err)?;
    let support = df.column("support").and_then(|c| c.f64().cloned()).map_err(err)?;
    let confidence = df.column("confidence").and_then(|c| c.f64().cloned()).map_err(err)?;
    let usage = df.column("usage_count").and_then(|c| c.cast(&DataType::UInt64)).map_err(err)?;
    let usage = usage.u64().map_err(err)?;
    let mut out = Vec::with_capacity(ids.len());
    for (i, id) in ids.into_iter().enumerate() {
        out.push(PatternSummary {
            pattern_id: id,
            conditions: match conditions.get_as_series(i) {
                Some(s) => conditions_text(&s).map_err(err)?,
                None => String::new(),
            },
            predicts: predicts.get(i).unwrap_or(true),
            support: support.get(i).unwrap_or(f64::NAN),
            confidence: confidence.get(i).unwrap_or(f64::NAN),
            usage_count: usage.get(i).unwrap_or(0),
        });
    }
    Ok(out)
}
