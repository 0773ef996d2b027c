//! Finding and scanning a dataset: one Parquet file, a directory of them (Hive-style `key=value`
//! partitions included), or a glob.
//!
//! The file list is made here rather than by polars so that the run can report files and bytes,
//! check each file's footer, and skip the temporary and hidden files a crashed writer may leave
//! (names starting with `.` or `_`), whichever tool wrote them.

use crate::{Error, Result};
use caretaker_core::config::DatasetSpec;
use caretaker_core::events::{CategoricalColumn, LabelledEvents, NumericColumn};
use polars::prelude::*;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The Parquet files of one dataset.
#[derive(Debug, Clone)]
pub struct DatasetFiles {
    /// What the config named.
    pub path: PathBuf,
    pub files: Vec<PathBuf>,
    pub bytes: u64,
    /// Whether the files sit in `key=value` directories whose keys become columns.
    pub hive: bool,
}

fn is_glob(path: &str) -> bool {
    path.contains(['*', '?', '['])
}

fn is_visible(name: &std::ffi::OsStr) -> bool {
    let name = name.to_string_lossy();
    !(name.starts_with('.') || name.starts_with('_'))
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::Read { path: dir.to_path_buf(), reason: e.to_string() })?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::Read { path: dir.to_path_buf(), reason: e.to_string() })?;
        let path = entry.path();
        if !is_visible(&entry.file_name()) {
            continue;
        }
        if path.is_dir() {
            walk(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "parquet") {
            out.push(path);
        }
    }
    Ok(())
}

impl DatasetFiles {
    /// Lists the files of the dataset at `path`, sorted by path.
    pub fn find(path: &Path) -> Result<DatasetFiles> {
        let text = path.to_string_lossy();
        let mut files = Vec::new();
        let mut hive = false;
        if is_glob(&text) {
            let paths =
                glob::glob(&text).map_err(|e| Error::Glob { pattern: text.to_string(), reason: e.to_string() })?;
            for p in paths {
                let p = p.map_err(|e| Error::Read { path: e.path().to_path_buf(), reason: e.error().to_string() })?;
                if p.is_file() && p.file_name().is_some_and(is_visible) {
                    files.push(p);
                }
            }
        } else if path.is_dir() {
            walk(path, &mut files)?;
            // An interrupted compaction's journal says which of the files are the dataset.
            crate::compact::journal::resolve_listing(path, &mut files)?;
            hive = files.iter().any(|f| {
                f.strip_prefix(path)
                    .ok()
                    .and_then(|rel| rel.parent())
                    .is_some_and(|dirs| dirs.components().any(|c| c.as_os_str().to_string_lossy().contains('=')))
            });
        } else if path.is_file() {
            files.push(path.to_path_buf());
        } else {
            return Err(Error::Missing { path: path.to_path_buf() });
        }
        if files.is_empty() {
            return Err(Error::NoFiles { path: path.to_path_buf() });
        }
        files.sort();
        let bytes = files.iter().map(|f| caretaker_core::fs::disk_size(f)).sum();
        Ok(DatasetFiles { path: path.to_path_buf(), files, bytes, hive })
    }

    /// The files of the dataset `spec` names: listed locally, or, for an `s3://` path, copied
    /// into a cache under `state_dir` (see [`crate::remote`]) reading only the date partitions
    /// within `days` of the newest one.
    pub fn open(
        spec: &DatasetSpec,
        state_dir: &Path,
        days: Option<u32>,
        today: chrono::NaiveDate,
    ) -> Result<DatasetFiles> {
        match spec.remote() {
            Some(url) => {
                let key = format!("{:016x}", xxhash_rust::xxh3::xxh3_64(url.as_bytes()));
                crate::remote::stage(spec, &state_dir.join("objects").join(key), days, today)
            }
            None => DatasetFiles::find(&spec.path),
        }
    }

    /// A lazy scan over every file. Nothing is read until the frame is collected.
    pub fn scan(&self) -> Result<LazyFrame> {
        let paths: Vec<PlRefPath> = self
            .files
            .iter()
            .map(|p| PlRefPath::try_from_path(p))
            .collect::<PolarsResult<_>>()
            .map_err(|e| self.read_error(e))?;
        let args = ScanArgsParquet {
            hive_options: if self.hive { HiveOptions::new_enabled() } else { HiveOptions::new_disabled() },
            glob: false,
            ..Default::default()
        };
        LazyFrame::scan_parquet_files(paths.into_iter().collect(), args).map_err(|e| self.read_error(e))
    }

    /// The schema of the dataset, as polars reads it (Hive columns included).
    pub fn schema(&self) -> Result<SchemaRef> {
        self.scan()?.collect_schema().map_err(|e| self.read_error(e))
    }

    pub fn read_error(&self, e: PolarsError) -> Error {
        Error::Read { path: self.path.clone(), reason: e.to_string() }
    }
}

/// Microseconds since the epoch for a timestamp column of any unit; `None` for nulls.
pub fn timestamp_micros(column: &Column) -> PolarsResult<Int64Chunked> {
    let micros = match column.dtype() {
        DataType::Datetime(_, tz) => {
            column.cast(&DataType::Datetime(TimeUnit::Microseconds, tz.clone()))?.cast(&DataType::Int64)?
        }
        DataType::Date => {
            let days = column.cast(&DataType::Int32)?.cast(&DataType::Int64)?;
            (days.as_materialized_series() * 86_400_000_000i64).into_column()
        }
        other => polars_bail!(SchemaMismatch: "expected a timestamp (Parquet TIMESTAMP or DATE), found {other}"),
    };
    Ok(micros.as_materialized_series().i64()?.clone())
}

/// The label as booleans: a boolean column, or integers that are 0 or 1.
pub fn label_values(column: &Column) -> PolarsResult<BooleanChunked> {
    match column.dtype() {
        DataType::Boolean => Ok(column.as_materialized_series().bool()?.clone()),
        dt if dt.is_integer() => {
            let ints = column.cast(&DataType::Int64)?;
            let ints = ints.as_materialized_series().i64()?;
            if let Some(bad) = ints.iter().flatten().find(|v| *v != 0 && *v != 1) {
                polars_bail!(ComputeError: "label values must be 0 or 1, found {bad}");
            }
            Ok(ints.iter().map(|v| v.map(|v| v == 1)).collect())
        }
        other => polars_bail!(SchemaMismatch: "expected a boolean or 0/1 integer label, found {other}"),
    }
}

/// Converts clean rows (no nulls in the columns of `spec`) into plain vectors for training.
pub fn labelled_events(df: &DataFrame, spec: &DatasetSpec, source: &Path) -> Result<LabelledEvents> {
    let column_error = |column: &str, e: PolarsError| Error::Column {
        path: source.to_path_buf(),
        column: column.to_string(),
        reason: e.to_string(),
    };
    let get = |name: &str| df.column(name).map_err(|e| column_error(name, e));
    let no_nulls = |name: &str, nulls: usize| {
        if nulls > 0 {
            Err(Error::Column {
                path: source.to_path_buf(),
                column: name.to_string(),
                reason: format!("{nulls} null values reached training (they should have been quarantined)"),
            })
        } else {
            Ok(())
        }
    };

    let ts = timestamp_micros(get(&spec.timestamp)?).map_err(|e| column_error(&spec.timestamp, e))?;
    no_nulls(&spec.timestamp, ts.null_count())?;
    let labels = label_values(get(&spec.label)?).map_err(|e| column_error(&spec.label, e))?;
    no_nulls(&spec.label, labels.null_count())?;

    let mut numeric = Vec::with_capacity(spec.numeric.len());
    for name in &spec.numeric {
        let values = get(name)?.cast(&DataType::Float64).map_err(|e| column_error(name, e))?;
        let values = values.as_materialized_series().f64().map_err(|e| column_error(name, e))?.clone();
        no_nulls(name, values.null_count())?;
        numeric.push(NumericColumn { name: name.clone(), values: values.no_null_iter().collect() });
    }

    let mut categorical = Vec::with_capacity(spec.categorical.len());
    for name in &spec.categorical {
        let values = get(name)?.cast(&DataType::String).map_err(|e| column_error(name, e))?;
        let values = values.as_materialized_series().str().map_err(|e| column_error(name, e))?.clone();
        no_nulls(name, values.null_count())?;
        categorical.push(dictionary_code(name, values.no_null_iter()));
    }

    Ok(LabelledEvents {
        timestamps: ts.no_null_iter().collect(),
        labels: labels.no_null_iter().collect(),
        numeric,
        categorical,
    })
}

/// Dictionary-codes strings, levels sorted so that the coding does not depend on row order.
fn dictionary_code<'a>(name: &str, values: impl Iterator<Item = &'a str>) -> CategoricalColumn {
    let mut index: HashMap<&'a str, u32> = HashMap::new();
    let mut first_seen: Vec<&'a str> = Vec::new();
    let codes: Vec<u32> = values
        .map(|v| {
            *index.entry(v).or_insert_with(|| {
                first_seen.push(v);
                (first_seen.len() - 1) as u32
            })
        })
        .collect();
    let mut order: Vec<u32> = (0..first_seen.len() as u32).collect();
    order.sort_by_key(|&i| first_seen[i as usize]);
    let mut remap = vec![0u32; order.len()];
    for (new, &old) in order.iter().enumerate() {
        remap[old as usize] = new as u32;
    }
    CategoricalColumn {
        name: name.to_string(),
        levels: order.iter().map(|&i| first_seen[i as usize].to_string()).collect(),
        codes: codes.into_iter().map(|c| remap[c as usize]).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dictionary_levels_are_sorted_and_codes_follow() {
        let c = dictionary_code("svc", ["b", "a", "b", "c"].into_iter());
        assert_eq!(c.levels, ["a", "b", "c"]);
        assert_eq!(c.codes, [1, 0, 1, 2]);
    }

    #[test]
    fn finding_files_skips_hidden_and_temporary_ones_and_detects_hive() {
        let dir = tempfile::tempdir().unwrap();
        let day = dir.path().join("date=2026-01-01");
        std::fs::create_dir_all(&day).unwrap();
        std::fs::write(day.join("part-0.parquet"), b"x").unwrap();
        std::fs::write(day.join(".caretaker-tmp-abc"), b"x").unwrap();
        std::fs::write(day.join("_SUCCESS"), b"").unwrap();
        std::fs::write(day.join("notes.txt"), b"x").unwrap();
        let found = DatasetFiles::find(dir.path()).unwrap();
        assert_eq!(found.files, vec![day.join("part-0.parquet")]);
        assert!(found.hive);
        assert!(matches!(DatasetFiles::find(&dir.path().join("nope")), Err(Error::Missing { .. })));
        let empty = tempfile::tempdir().unwrap();
        let err = DatasetFiles::find(empty.path()).unwrap_err();
        assert!(err.to_string().contains("holds no Parquet files"), "{err}");
    }
}
