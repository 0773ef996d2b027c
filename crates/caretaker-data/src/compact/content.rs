//! The content hash of a set of rows: what compaction checks equal before it swaps files.
//!
//! Compaction reorders rows (it sorts by time) and regroups them into other files, so the hash
//! must not depend on row order or on file boundaries: each row is hashed on its own (xxh3-128
//! over the hashes of its values, columns in name order, with the schema folded in) and the row
//! hashes are added up modulo 2^128. The sum of the files' hashes is the hash of the dataset, a
//! duplicated row changes it (a sum, not an exclusive or, so two equal rows do not cancel), and
//! a lost row changes it and the count.

use crate::{Error, Result};
use polars::prelude::*;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;
use xxhash_rust::xxh3::{xxh3_64_with_seed, xxh3_128};

/// Rows and the order-free sum of their hashes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct ContentHash {
    pub rows: u64,
    sum: u128,
}

/// The hash of the union of two sets of rows.
impl std::ops::Add for ContentHash {
    type Output = ContentHash;

    fn add(self, other: ContentHash) -> ContentHash {
        ContentHash { rows: self.rows + other.rows, sum: self.sum.wrapping_add(other.sum) }
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{:032x}", self.rows, self.sum)
    }
}

impl From<ContentHash> for String {
    fn from(h: ContentHash) -> String {
        h.to_string()
    }
}

impl TryFrom<String> for ContentHash {
    type Error = String;

    fn try_from(text: String) -> Result<ContentHash, String> {
        let (rows, sum) = text.split_once(':').ok_or_else(|| format!("{text:?} is not ROWS:HASH"))?;
        Ok(ContentHash {
            rows: rows.parse().map_err(|_| format!("{text:?}: bad row count"))?,
            sum: u128::from_str_radix(sum, 16).map_err(|_| format!("{text:?}: bad hash"))?,
        })
    }
}

/// Rows hashed per batch: bounds the memory of the per-row value hashes.
const BATCH: usize = 65_536;

/// The content hash of `df` (read from `source`, which errors name).
pub fn content_hash(df: &DataFrame, source: &Path) -> Result<ContentHash> {
    let mut names: Vec<&PlSmallStr> = df.get_column_names();
    names.sort();
    // The schema is part of every row's hash: the same values under another type or name are
    // other content.
    let schema: String = names.iter().map(|n| format!("{n}:{};", df.column(n).expect("listed").dtype())).collect();
    let schema_hash = xxh3_64_with_seed(schema.as_bytes(), 0);
    let columns: Vec<&Column> = names.iter().map(|n| df.column(n).expect("listed")).collect();
    let mut sum = 0u128;
    let mut offset = 0;
    let mut row_bytes: Vec<u8> = Vec::with_capacity(8 * (columns.len() + 1));
    while offset < df.height() {
        let len = BATCH.min(df.height() - offset);
        let hashes: Vec<Vec<u64>> = columns
            .iter()
            .map(|c| value_hashes(&c.slice(offset as i64, len)).map_err(|e| column_error(source, c, e)))
            .collect::<Result<_>>()?;
        for r in 0..len {
            row_bytes.clear();
            row_bytes.extend_from_slice(&schema_hash.to_le_bytes());
            for column in &hashes {
                row_bytes.extend_from_slice(&column[r].to_le_bytes());
            }
            sum = sum.wrapping_add(xxh3_128(&row_bytes));
        }
        offset += len;
    }
    Ok(ContentHash { rows: df.height() as u64, sum })
}

fn column_error(source: &Path, column: &Column, e: PolarsError) -> Error {
    Error::Column { path: source.to_path_buf(), column: column.name().to_string(), reason: e.to_string() }
}

/// A null hashes apart from every value.
const NULL: u64 = 0x9e37_79b9_7f4a_7c15;

fn hash_values<T>(values: impl Iterator<Item = Option<T>>, bytes: impl Fn(&T, u64) -> u64) -> Vec<u64> {
    values.map(|v| v.map(|v| bytes(&v, 1)).unwrap_or(NULL)).collect()
}

/// One hash per value, from the column's physical values (its logical type is in the schema).
fn value_hashes(column: &Column) -> PolarsResult<Vec<u64>> {
    let series = column.as_materialized_series();
    let physical = series.to_physical_repr();
    let dtype = physical.dtype().clone();
    Ok(match dtype {
        DataType::Boolean => hash_values(physical.bool()?.iter(), |v, s| xxh3_64_with_seed(&[u8::from(*v)], s)),
        DataType::String => hash_values(physical.str()?.iter(), |v, s| xxh3_64_with_seed(v.as_bytes(), s)),
        DataType::Binary => hash_values(physical.binary()?.iter(), |v, s| xxh3_64_with_seed(v, s)),
        dt if dt.is_signed_integer() => {
            let ints = physical.cast(&DataType::Int64)?;
            hash_values(ints.i64()?.iter(), |v, s| xxh3_64_with_seed(&v.to_le_bytes(), s))
        }
        dt if dt.is_unsigned_integer() => {
            let ints = physical.cast(&DataType::UInt64)?;
            hash_values(ints.u64()?.iter(), |v, s| xxh3_64_with_seed(&v.to_le_bytes(), s))
        }
        dt if dt.is_float() => {
            let floats = physical.cast(&DataType::Float64)?;
            hash_values(floats.f64()?.iter(), |v, s| xxh3_64_with_seed(&v.to_bits().to_le_bytes(), s))
        }
        other => polars_bail!(
            InvalidOperation: "values of type {other} cannot be compared, so compaction cannot prove it keeps them"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(ids: &[i64], names: &[Option<&str>]) -> DataFrame {
        DataFrame::new(ids.len(), vec![Column::new("id".into(), ids), Column::new("name".into(), names.to_vec())])
            .unwrap()
    }

    fn hash(df: &DataFrame) -> ContentHash {
        content_hash(df, Path::new("t.parquet")).unwrap()
    }

    #[test]
    fn the_hash_ignores_row_order_and_file_boundaries() {
        let whole = frame(&[1, 2, 3], &[Some("a"), None, Some("c")]);
        let reordered = frame(&[3, 1, 2], &[Some("c"), Some("a"), None]);
        assert_eq!(hash(&whole), hash(&reordered));
        let (head, tail) = (whole.slice(0, 1), whole.slice(1, 2));
        assert_eq!(hash(&head) + hash(&tail), hash(&whole));
        assert_eq!(hash(&whole).rows, 3);
    }

    #[test]
    fn a_changed_duplicated_or_lost_row_changes_the_hash() {
        let whole = hash(&frame(&[1, 2], &[Some("a"), Some("b")]));
        assert_ne!(whole, hash(&frame(&[1, 2], &[Some("a"), Some("B")])));
        assert_ne!(whole, hash(&frame(&[1, 2], &[Some("a"), None])));
        let twice = hash(&frame(&[1, 2, 2], &[Some("a"), Some("b"), Some("b")]));
        assert_ne!(twice.sum, whole.sum, "a row counted twice is seen");
        assert_eq!(twice, whole + hash(&frame(&[2], &[Some("b")])));
        assert_ne!(whole.sum, hash(&frame(&[1], &[Some("a")])).sum, "a lost row is seen");
        // Two equal rows do not cancel out.
        assert_ne!(hash(&frame(&[7, 7], &[None, None])).sum, 0);
    }

    #[test]
    fn the_same_values_under_another_type_are_other_content() {
        let ints = frame(&[1, 2], &[Some("a"), Some("b")]);
        let mut floats = ints.clone();
        floats.with_column(Column::new("id".into(), [1.0f64, 2.0])).unwrap();
        assert_ne!(hash(&ints), hash(&floats));
    }

    #[test]
    fn the_text_form_round_trips() {
        let h = hash(&frame(&[1], &[Some("a")]));
        assert_eq!(ContentHash::try_from(h.to_string()).unwrap(), h);
        assert!(ContentHash::try_from("nonsense".to_string()).is_err());
    }
}
