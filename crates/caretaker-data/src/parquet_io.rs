//! Writing Parquet atomically.

use crate::{Error, Result};
use polars::prelude::*;
use std::path::Path;

/// Writes `df` to `path` through the atomic-write helper (temp file, fsync, rename), zstd
/// compressed, with statistics so later scans can skip row groups. Returns the bytes written.
pub fn write_parquet_atomic(df: &mut DataFrame, path: &Path) -> Result<u64> {
    caretaker_core::fs::write_atomic_with(path, |file| {
        ParquetWriter::new(file)
            .with_compression(ParquetCompression::Zstd(None))
            .with_statistics(StatisticsOptions::full())
            .finish(df)
            .map(|_| ())
            .map_err(std::io::Error::other)
    })?;
    Ok(caretaker_core::fs::disk_size(path))
}

/// Reads a whole Parquet file.
pub fn read_parquet(path: &Path) -> Result<DataFrame> {
    let file =
        std::fs::File::open(path).map_err(|e| Error::Read { path: path.to_path_buf(), reason: e.to_string() })?;
    ParquetReader::new(file).finish().map_err(|e| Error::Read { path: path.to_path_buf(), reason: e.to_string() })
}

/// Maps a polars error on writing `path` into ours.
pub fn write_error(path: &Path, e: PolarsError) -> Error {
    Error::Write { path: path.to_path_buf(), reason: e.to_string() }
}
