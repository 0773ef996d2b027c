//! The schema contract and the row-level rules.

use caretaker_core::config::{DatasetSpec, QualityPolicy};
use caretaker_core::report::QualityCheck;
use polars::prelude::*;

/// A rule broken by some rows: `kind:column` (`null:latency_ms`, `range:latency_ms`), or
/// `duplicate_id`.
pub(crate) struct Rule {
    pub name: String,
    pub kind: &'static str,
    pub broken: Vec<bool>,
    pub count: usize,
}

pub(crate) struct RowRules {
    pub rules: Vec<Rule>,
    pub rows: usize,
}

fn check(
    check: &str,
    column: Option<&str>,
    measured: f64,
    threshold: f64,
    passed: bool,
    detail: String,
) -> QualityCheck {
    QualityCheck { check: check.to_string(), column: column.map(str::to_string), measured, threshold, passed, detail }
}

fn type_ok(kind: &str, dtype: &DataType) -> bool {
    match kind {
        "timestamp" => matches!(dtype, DataType::Datetime(..) | DataType::Date),
        "label" => matches!(dtype, DataType::Boolean) || dtype.is_integer(),
        "numeric" => dtype.is_primitive_numeric(),
        "categorical" => {
            matches!(dtype, DataType::String | DataType::Categorical(..) | DataType::Enum(..) | DataType::Boolean)
                || dtype.is_integer()
        }
        _ => true, // the id: any type can be compared for duplicates
    }
}

const EXPECTED: [(&str, &str); 5] = [
    ("id", "any type"),
    ("timestamp", "a Parquet TIMESTAMP or DATE"),
    ("label", "boolean, or integers 0 and 1"),
    ("numeric", "a number (integer or float)"),
    ("categorical", "a string (or integer) category"),
];

/// Required columns present with usable types; extra columns listed.
pub(crate) fn schema_checks(df: &DataFrame, spec: &DatasetSpec) -> Vec<QualityCheck> {
    let mut checks = Vec::new();
    let required = [("id", &spec.id), ("timestamp", &spec.timestamp), ("label", &spec.label)]
        .into_iter()
        .chain(spec.numeric.iter().map(|c| ("numeric", c)))
        .chain(spec.categorical.iter().map(|c| ("categorical", c)));
    for (kind, name) in required {
        let expected = EXPECTED.iter().find(|(k, _)| *k == kind).map(|(_, e)| *e).unwrap_or("");
        match df.schema().get(name) {
            None => checks.push(check(
                "schema.required_column",
                Some(name),
                0.0,
                1.0,
                false,
                format!("{kind} column {name:?} is missing"),
            )),
            Some(dtype) if !type_ok(kind, dtype) => checks.push(check(
                "schema.column_type",
                Some(name),
                0.0,
                1.0,
                false,
                format!("{kind} column {name:?} is {dtype}; expected {expected}"),
            )),
            Some(_) => {}
        }
    }
    if df.height() == 0 {
        checks.push(check("rows", None, 0.0, 1.0, false, "the dataset has no rows".into()));
    }
    let known: Vec<&String> = [&spec.id, &spec.timestamp, &spec.label].into_iter().chain(spec.features()).collect();
    let extra: Vec<String> = df
        .get_column_names()
        .into_iter()
        .filter(|c| !known.iter().any(|k| k.as_str() == c.as_str()))
        .map(|c| c.to_string())
        .collect();
    checks.push(check(
        "schema.extra_columns",
        None,
        extra.len() as f64,
        f64::INFINITY,
        true,
        if extra.is_empty() { "none".into() } else { format!("kept but not used: {}", extra.join(", ")) },
    ));
    checks
}

fn rule(name: String, kind: &'static str, broken: Vec<bool>) -> Rule {
    let count = broken.iter().filter(|b| **b).count();
    Rule { name, kind, broken, count }
}

/// Evaluates every row-level rule on every row.
pub(crate) fn row_rules(df: &DataFrame, spec: &DatasetSpec, policy: &QualityPolicy) -> PolarsResult<RowRules> {
    let mut rules = Vec::new();
    let required = [&spec.id, &spec.timestamp, &spec.label].into_iter().chain(spec.features());
    for name in required {
        let nulls = df.column(name)?.is_null();
        rules.push(rule(format!("null:{name}"), "null", nulls.no_null_iter().collect()));
    }
    for name in &spec.numeric {
        let values = df.column(name)?.cast(&DataType::Float64)?;
        let values = values.as_materialized_series().f64()?;
        rules.push(rule(
            format!("not_finite:{name}"),
            "not_finite",
            values.iter().map(|v| v.is_some_and(|v| !v.is_finite())).collect(),
        ));
        if let Some(&(lo, hi)) = policy.ranges.get(name) {
            rules.push(rule(
                format!("range:{name}"),
                "range",
                values.iter().map(|v| v.is_some_and(|v| v.is_finite() && (v < lo || v > hi))).collect(),
            ));
        }
    }
    let first = df.clone().lazy().select([col(spec.id.as_str()).is_first_distinct()]).collect()?;
    let first = first.columns()[0].as_materialized_series().bool()?.clone();
    rules.push(rule("duplicate_id".into(), "duplicate_id", first.iter().map(|f| f == Some(false)).collect()));
    Ok(RowRules { rules, rows: df.height() })
}

impl RowRules {
    /// Rows that break at least one rule of any of `kinds`.
    pub fn rows_with_any(&self, kinds: &[&str]) -> usize {
        let selected: Vec<&Rule> = self.rules.iter().filter(|r| kinds.contains(&r.kind) && r.count > 0).collect();
        (0..self.rows).filter(|&i| selected.iter().any(|r| r.broken[i])).count()
    }

    /// For every row, whether it breaks any rule.
    pub fn any_broken(&self) -> Vec<bool> {
        let mut bad = vec![false; self.rows];
        for r in self.rules.iter().filter(|r| r.count > 0) {
            for (b, broken) in bad.iter_mut().zip(&r.broken) {
                *b |= broken;
            }
        }
        bad
    }

    /// The `quarantine_rules` column: for each bad row, the rules it broke.
    pub fn rules_per_row(&self, bad: &[bool]) -> ListChunked {
        let active: Vec<&Rule> = self.rules.iter().filter(|r| r.count > 0).collect();
        let bad_rows = bad.iter().filter(|b| **b).count();
        let mut builder = ListStringChunkedBuilder::new("quarantine_rules".into(), bad_rows, bad_rows * 2);
        for (i, _) in bad.iter().enumerate().filter(|(_, b)| **b) {
            builder.append_values_iter(active.iter().filter(|r| r.broken[i]).map(|r| r.name.as_str()));
        }
        builder.finish()
    }

    /// Rows per broken rule, rules that no row broke left out.
    pub fn counts(&self) -> Vec<(String, u64)> {
        self.rules.iter().filter(|r| r.count > 0).map(|r| (r.name.clone(), r.count as u64)).collect()
    }

    /// The column-level checks that follow from the row rules.
    pub fn checks(&self, rows: usize, policy: &QualityPolicy) -> Vec<QualityCheck> {
        let frac = |n: usize| if rows == 0 { 0.0 } else { n as f64 / rows as f64 };
        let mut out = Vec::new();
        for r in &self.rules {
            let column = r.name.split_once(':').map(|(_, c)| c);
            let measured = frac(r.count);
            let (name, threshold) = match r.kind {
                "null" => ("null_fraction", policy.max_null_fraction),
                "range" => ("range_violations", policy.max_range_violation_fraction),
                "not_finite" => ("not_finite", 0.0),
                _ => ("duplicate_ids", policy.max_duplicate_fraction),
            };
            out.push(check(
                name,
                column,
                measured,
                threshold,
                measured <= threshold,
                format!("{} of {rows} rows", r.count),
            ));
        }
        out
    }
}
