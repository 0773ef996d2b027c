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

/// A pattern's status: `active` as discovered, `restored` once `patterns restore` brought it back
/// from the archive (cleanup then leaves it alone: the user asked for it).
pub const ACTIVE: &str = "active";
pub const RESTORED: &str = "restored";

/// Reads the store for a command that writes whole rows back (discovery, restore): every column
/// of [`schema`] must be there with its type (any integer type for `usage_count`), and no other,
/// since a rewrite would drop it. Columns come back in the schema's order. A missing store is an
/// empty one.
pub fn read_canonical(path: &Path) -> Result<DataFrame> {
    let df = read(path)?;
    canonical(df, path)
}

/// `df` with the store's columns in order and types, or an error naming the column.
pub fn canonical(df: DataFrame, path: &Path) -> Result<DataFrame> {
    let expected = schema();
    let invalid = |reason: String| Error::Invalid { path: path.to_path_buf(), reason };
    let extra: Vec<&str> =
        df.get_column_names().into_iter().map(|c| c.as_str()).filter(|c| !expected.contains(c)).collect();
    if !extra.is_empty() {
        return Err(invalid(format!(
            "unexpected column(s) {extra:?}: this command rewrites whole rows and would drop them; expected exactly {:?}",
            expected.iter_names().map(|n| n.as_str()).collect::<Vec<_>>()
        )));
    }
    let mut columns = Vec::with_capacity(expected.len());
    for (name, want) in expected.iter() {
        let column = df
            .column(name)
            .map_err(|_| invalid(format!("not a pattern store: column {name:?} is missing (expected {want})")))?;
        let got = column.dtype();
        if got == want {
            columns.push(column.clone());
        } else if name == "usage_count" && got.is_integer() {
            columns.push(column.cast(want).map_err(|e| invalid(format!("column \"usage_count\": {e}")))?);
        } else {
            return Err(invalid(format!("not a pattern store: column {name:?} is {got}, expected {want}")));
        }
    }
    DataFrame::new(df.height(), columns).map_err(|e| invalid(e.to_string()))
}

/// Each row's conditions, read from the `conditions` column in one pass.
pub fn conditions(df: &DataFrame) -> PolarsResult<Vec<Vec<crate::pattern::Condition>>> {
    let columns = ConditionColumns::new(df)?;
    Ok((0..columns.len()).map(|row| columns.row(row)).collect())
}

/// The `conditions` column, read a row at a time: a store of a million patterns holds a million
/// condition lists, which as owned strings cost some hundreds of megabytes at once.
pub struct ConditionColumns {
    offsets: Vec<i64>,
    feature: StringChunked,
    op: StringChunked,
    value: StringChunked,
}

impl ConditionColumns {
    pub fn new(df: &DataFrame) -> PolarsResult<ConditionColumns> {
        let list = df.column("conditions")?.list()?.rechunk();
        let offsets = list.offsets()?.to_vec();
        let inner = list.get_inner();
        let fields = inner.struct_()?.fields_as_series();
        let get = |name: &str| -> PolarsResult<StringChunked> {
            let s = fields
                .iter()
                .find(|f| f.name().as_str() == name)
                .ok_or_else(|| polars_err!(ColumnNotFound: "{name}"))?;
            Ok(s.str()?.rechunk().into_owned())
        };
        Ok(ConditionColumns { offsets, feature: get("feature")?, op: get("op")?, value: get("value")? })
    }

    /// Rows (patterns).
    pub fn len(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Row `row`'s conditions.
    pub fn row(&self, row: usize) -> Vec<crate::pattern::Condition> {
        let text = |a: &StringChunked, i: usize| a.get(i).unwrap_or("").to_string();
        (self.offsets[row] as usize..self.offsets[row + 1] as usize)
            .map(|i| crate::pattern::Condition {
                feature: text(&self.feature, i),
                op: text(&self.op, i),
                value: text(&self.value, i),
            })
            .collect()
    }
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
