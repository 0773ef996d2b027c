//! Parquet integrity, read from the footers with the `parquet` crate before polars decodes a row:
//! every file must open as Parquet (a truncated file or a file that is not Parquet fails here,
//! named), every file of the dataset must have the same columns with the same types, and the
//! row-group statistics that scans rely on to skip data must be self-consistent (min <= max, no
//! more nulls than values).

use crate::check;
use caretaker_core::report::QualityCheck;
use caretaker_data::dataset::DatasetFiles;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::file::statistics::Statistics;

/// What the footers say.
pub struct Footers {
    pub rows: u64,
    pub checks: Vec<QualityCheck>,
}

/// Columns and types of one file, for comparing files.
fn signature(reader: &SerializedFileReader<std::fs::File>) -> Vec<(String, String)> {
    reader
        .metadata()
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .map(|c| {
            let logical =
                c.logical_type_ref().map(|l| format!("{l:?}")).unwrap_or_else(|| format!("{:?}", c.converted_type()));
            (c.path().string(), format!("{} {logical}", c.physical_type()))
        })
        .collect()
}

fn consistent(stats: &Statistics) -> bool {
    fn ordered<T: PartialOrd>(min: Option<&T>, max: Option<&T>) -> bool {
        match (min, max) {
            // min <= max, or incomparable (NaN statistics are not a contradiction).
            (Some(a), Some(b)) => a.partial_cmp(b) != Some(std::cmp::Ordering::Greater),
            _ => true,
        }
    }
    match stats {
        Statistics::Int32(s) => ordered(s.min_opt(), s.max_opt()),
        Statistics::Int64(s) => ordered(s.min_opt(), s.max_opt()),
        Statistics::Float(s) => ordered(s.min_opt(), s.max_opt()),
        Statistics::Double(s) => ordered(s.min_opt(), s.max_opt()),
        _ => true,
    }
}

/// Opens every footer. Each failure is a failed check naming the file; they are all blocking.
pub fn inspect(files: &DatasetFiles) -> Footers {
    let mut rows = 0u64;
    let mut unreadable = Vec::new();
    let mut bad_stats = Vec::new();
    let mut missing_stats = 0usize;
    let mut first: Option<(std::path::PathBuf, Vec<(String, String)>)> = None;
    let mut disagree = Vec::new();
    for path in &files.files {
        let reader = std::fs::File::open(path)
            .map_err(|e| e.to_string())
            .and_then(|f| SerializedFileReader::new(f).map_err(|e| e.to_string()));
        let reader = match reader {
            Ok(r) => r,
            Err(e) => {
                unreadable.push(format!("{}: {e}", path.display()));
                continue;
            }
        };
        let meta = reader.metadata();
        rows += meta.file_metadata().num_rows().max(0) as u64;
        for (g, group) in meta.row_groups().iter().enumerate() {
            for column in group.columns() {
                match column.statistics() {
                    None => missing_stats += 1,
                    Some(stats) => {
                        let too_many_nulls = stats.null_count_opt().is_some_and(|n| n > group.num_rows().max(0) as u64);
                        if !consistent(stats) || too_many_nulls {
                            bad_stats.push(format!("{} row group {g} column {}", path.display(), column.column_path()));
                        }
                    }
                }
            }
        }
        let sig = signature(&reader);
        match &first {
            None => first = Some((path.clone(), sig)),
            Some((first_path, first_sig)) if *first_sig != sig => {
                let differences: Vec<String> = sig
                    .iter()
                    .filter(|c| !first_sig.contains(c))
                    .map(|(name, ty)| format!("{name} ({ty})"))
                    .chain(
                        first_sig
                            .iter()
                            .filter(|c| !sig.iter().any(|s| s.0 == c.0))
                            .map(|(name, _)| format!("no {name}")),
                    )
                    .collect();
                disagree.push(format!(
                    "{} differs from {}: {}",
                    path.display(),
                    first_path.display(),
                    differences.join(", ")
                ));
            }
            Some(_) => {}
        }
    }
    let mut checks = vec![check(
        "parquet.readable_files",
        None,
        unreadable.len() as f64,
        0.0,
        unreadable.is_empty(),
        if unreadable.is_empty() {
            format!("{} files, every footer read", files.files.len())
        } else {
            format!(
                "{} of {} files are not readable Parquet: {}",
                unreadable.len(),
                files.files.len(),
                unreadable.join("; ")
            )
        },
    )];
    if unreadable.is_empty() {
        checks.push(check(
            "parquet.same_schema",
            None,
            disagree.len() as f64,
            0.0,
            disagree.is_empty(),
            if disagree.is_empty() { "every file has the same columns and types".into() } else { disagree.join("; ") },
        ));
        checks.push(check(
            "parquet.statistics",
            None,
            bad_stats.len() as f64,
            0.0,
            bad_stats.is_empty(),
            if bad_stats.is_empty() {
                format!(
                    "row-group statistics consistent{}",
                    if missing_stats > 0 {
                        format!(" ({missing_stats} column chunks carry none)")
                    } else {
                        String::new()
                    }
                )
            } else {
                format!("inconsistent statistics (min > max or more nulls than rows): {}", bad_stats.join("; "))
            },
        ));
    }
    Footers { rows, checks }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_truncated_file_and_a_file_that_is_not_parquet_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut df = polars::df!("x" => [1i64, 2, 3]).unwrap();
        let good = dir.path().join("a.parquet");
        caretaker_data::parquet_io::write_parquet_atomic(&mut df, &good).unwrap();
        let bytes = std::fs::read(&good).unwrap();
        std::fs::write(dir.path().join("b.parquet"), &bytes[..bytes.len() / 2]).unwrap();
        std::fs::write(dir.path().join("c.parquet"), b"event_id,ts\n1,2\n").unwrap();
        std::fs::write(dir.path().join("d.parquet"), b"").unwrap();
        let files = DatasetFiles::find(dir.path()).unwrap();
        let footers = inspect(&files);
        let readable = &footers.checks[0];
        assert!(!readable.passed);
        assert_eq!(readable.measured, 3.0);
        for name in ["b.parquet", "c.parquet", "d.parquet"] {
            assert!(readable.detail.contains(name), "{}", readable.detail);
        }
        assert!(!readable.detail.contains("a.parquet"), "{}", readable.detail);
    }

    #[test]
    fn files_whose_schemas_disagree_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = polars::df!("x" => [1i64, 2], "y" => ["a", "b"]).unwrap();
        let mut b = polars::df!("x" => ["1", "2"], "y" => ["a", "b"]).unwrap();
        caretaker_data::parquet_io::write_parquet_atomic(&mut a, &dir.path().join("a.parquet")).unwrap();
        caretaker_data::parquet_io::write_parquet_atomic(&mut b, &dir.path().join("b.parquet")).unwrap();
        let footers = inspect(&DatasetFiles::find(dir.path()).unwrap());
        assert_eq!(footers.rows, 4);
        let same = footers.checks.iter().find(|c| c.check == "parquet.same_schema").unwrap();
        assert!(!same.passed);
        assert!(
            same.detail.contains("b.parquet differs from") && same.detail.contains("x (BYTE_ARRAY"),
            "{}",
            same.detail
        );
    }
}
