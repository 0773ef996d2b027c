//! The schema contract: the id, timestamp, label and every feature present, with a type the
//! stage can use as it is or cast without loss. Extra columns are listed and kept (they go to the
//! quarantine file with the rest of a row), never an error.

use crate::check;
use caretaker_core::config::DatasetSpec;
use caretaker_core::report::QualityCheck;
use polars::prelude::{DataType, Schema};

#[derive(Clone, Copy)]
enum Role {
    Id,
    Timestamp,
    Label,
    Numeric,
    Categorical,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Id => "id",
            Role::Timestamp => "timestamp",
            Role::Label => "label",
            Role::Numeric => "numeric",
            Role::Categorical => "categorical",
        }
    }

    fn expected(self) -> &'static str {
        match self {
            Role::Id => "a string or an integer",
            Role::Timestamp => "a Parquet TIMESTAMP or DATE",
            Role::Label => "a boolean, or an integer holding 0 and 1",
            Role::Numeric => "an integer or a float",
            Role::Categorical => "a string, a categorical, an integer or a boolean",
        }
    }

    fn accepts(self, dtype: &DataType) -> bool {
        match self {
            Role::Id => {
                matches!(dtype, DataType::String | DataType::Categorical(..) | DataType::Enum(..)) || dtype.is_integer()
            }
            Role::Timestamp => matches!(dtype, DataType::Datetime(..) | DataType::Date),
            Role::Label => matches!(dtype, DataType::Boolean) || dtype.is_integer(),
            Role::Numeric => dtype.is_primitive_numeric(),
            Role::Categorical => {
                matches!(dtype, DataType::String | DataType::Categorical(..) | DataType::Enum(..) | DataType::Boolean)
                    || dtype.is_integer()
            }
        }
    }
}

/// Required columns present with usable types; extra columns listed.
pub(crate) fn contract(schema: &Schema, spec: &DatasetSpec) -> Vec<QualityCheck> {
    let mut checks = Vec::new();
    let required = [(Role::Id, &spec.id), (Role::Timestamp, &spec.timestamp), (Role::Label, &spec.label)]
        .into_iter()
        .chain(spec.numeric.iter().map(|c| (Role::Numeric, c)))
        .chain(spec.categorical.iter().map(|c| (Role::Categorical, c)));
    let mut missing = 0;
    let mut wrong = 0;
    for (role, name) in required {
        match schema.get(name) {
            None => {
                missing += 1;
                checks.push(check(
                    "schema.required_column",
                    Some(name),
                    0.0,
                    1.0,
                    false,
                    format!("the {} column {name:?} is missing", role.name()),
                ));
            }
            Some(dtype) if !role.accepts(dtype) => {
                wrong += 1;
                let hint = match (role, dtype) {
                    (Role::Timestamp, DataType::String) => {
                        " (timestamps stored as text: write them as Parquet TIMESTAMP)"
                    }
                    (Role::Numeric, DataType::String) => " (numbers stored as text)",
                    (_, DataType::Binary) => " (bytes that are not UTF-8 text)",
                    _ => "",
                };
                checks.push(check(
                    "schema.column_type",
                    Some(name),
                    0.0,
                    1.0,
                    false,
                    format!("the {} column {name:?} is {dtype}; expected {}{hint}", role.name(), role.expected()),
                ));
            }
            Some(_) => {}
        }
    }
    if missing + wrong == 0 {
        checks.push(check(
            "schema.contract",
            None,
            1.0,
            1.0,
            true,
            "every required column present with a usable type".into(),
        ));
    }
    let known: Vec<&String> = [&spec.id, &spec.timestamp, &spec.label].into_iter().chain(spec.features()).collect();
    let extra: Vec<String> = schema
        .iter_names()
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
