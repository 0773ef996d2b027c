//! The quarantine file: the rows that broke a rule, with the names of the rules each broke (the
//! column [`RULES_COLUMN`]), written batch by batch to a temporary file beside the report and put
//! in place when the pass ends (no file when no row broke a rule).

use super::{Accumulator, RULES_COLUMN};
use crate::Result;
use caretaker_core::fs::FsError;
use polars::prelude::*;
use std::path::{Path, PathBuf};

pub(super) struct Quarantine {
    final_path: PathBuf,
    temp: tempfile::NamedTempFile,
    writer: Option<polars::io::parquet::write::BatchedWriter<std::fs::File>>,
}

impl Quarantine {
    /// A temporary file in the directory of `path`, readable by whoever reads the reports.
    pub(super) fn create(path: &Path) -> Result<Quarantine> {
        let dir = caretaker_core::fs::parent_dir(path);
        std::fs::create_dir_all(dir).map_err(|e| FsError::new("create directory", dir, e))?;
        let temp = tempfile::Builder::new()
            .prefix(caretaker_core::fs::TEMP_PREFIX)
            .tempfile_in(dir)
            .map_err(|e| FsError::new("create a temporary file in", dir, e))?;
        // Read by whoever reads the reports, like report.json beside it.
        caretaker_core::fs::make_shared(temp.as_file())
            .map_err(|e| FsError::new("set permissions of", temp.path(), e))?;
        Ok(Quarantine { final_path: path.to_path_buf(), temp, writer: None })
    }

    fn write(&mut self, rows: &DataFrame) -> PolarsResult<()> {
        if self.writer.is_none() {
            let file = self.temp.reopen().map_err(|e| polars_err!(ComputeError: "{e}"))?;
            let writer = ParquetWriter::new(file)
                .with_compression(ParquetCompression::Zstd(None))
                .with_statistics(StatisticsOptions::full())
                .batched(rows.schema())?;
            self.writer = Some(writer);
        }
        self.writer.as_mut().expect("just made").write_batch(rows)
    }

    /// Finishes the file and puts it in place (synced); `None` when no row was quarantined.
    pub(super) fn finish(self) -> Result<Option<PathBuf>> {
        let Some(writer) = self.writer else { return Ok(None) };
        let path = self.final_path;
        writer.finish().map_err(|e| caretaker_data::parquet_io::write_error(&path, e))?;
        self.temp.as_file().sync_all().map_err(|e| FsError::new("sync", &path, e))?;
        self.temp.persist(&path).map_err(|e| FsError::new("replace", &path, e.error))?;
        caretaker_core::fs::sync_dir(caretaker_core::fs::parent_dir(&path))?;
        Ok(Some(path))
    }
}

impl Accumulator {
    /// Writes the rows marked in `bad`, with the names of the rules each one broke.
    pub(super) fn quarantine_rows(
        &mut self,
        df: &DataFrame,
        bad: &[bool],
        broken: &[Vec<bool>],
        active: &[usize],
    ) -> PolarsResult<()> {
        let bad_rows = bad.iter().filter(|b| **b).count();
        let mut rows = df.filter(&BooleanChunked::from_slice("bad".into(), bad))?;
        let mut list = ListStringChunkedBuilder::new(RULES_COLUMN.into(), bad_rows, bad_rows * 2);
        for i in (0..bad.len()).filter(|&i| bad[i]) {
            list.append_values_iter(active.iter().filter(|&&r| broken[r][i]).map(|&r| self.rules[r].name.as_str()));
        }
        rows.with_column(list.finish().into_column())?;
        rows.align_chunks();
        self.quarantine.write(&rows)
    }
}
