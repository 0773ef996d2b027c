//! The example data, for `caretaker demo` and for a pipeline whose `[dataset.example]` asks for it.

use crate::Result;
use caretaker_core::config::PipelineConfig;
use chrono::{DateTime, Timelike, Utc};
use std::path::{Path, PathBuf};

/// What `write_example` wrote.
#[derive(Debug, Clone)]
pub struct ExampleFiles {
    pub events_dir: PathBuf,
    pub event_files: usize,
    pub rows: usize,
    pub pattern_store: Option<PathBuf>,
    pub patterns: usize,
}

/// Writes the example events (daily Hive partitions under `events_dir`) ending at `end`, the
/// newest `unlabelled_hours` without a label, and, when `pattern_store` is given, an example
/// pattern store of `rows / 10` patterns.
pub fn write_example(
    events_dir: &Path,
    pattern_store: Option<&Path>,
    rows: usize,
    seed: u64,
    files_per_day: usize,
    unlabelled_hours: u32,
    end: DateTime<Utc>,
) -> Result<ExampleFiles> {
    let mut df = caretaker_data::example::events(rows, seed, end);
    if unlabelled_hours > 0 {
        let after = end - chrono::Duration::hours(unlabelled_hours.into());
        caretaker_data::example::withhold_labels(&mut df, after)
            .map_err(|e| caretaker_data::parquet_io::write_error(events_dir, e))?;
    }
    let files = caretaker_data::example::write_events(&df, events_dir, files_per_day)?;
    let patterns = match pattern_store {
        Some(path) => caretaker_patterns::example::write(path, (rows / 10).max(50), seed, end)?,
        None => 0,
    };
    Ok(ExampleFiles {
        events_dir: events_dir.to_path_buf(),
        event_files: files.len(),
        rows,
        pattern_store: pattern_store.map(Path::to_path_buf),
        patterns,
    })
}

/// The end of the example's time span for a run at `now`: the start of the current hour.
pub fn example_end(now: DateTime<Utc>) -> DateTime<Utc> {
    now.with_nanosecond(0).and_then(|t| t.with_second(0)).and_then(|t| t.with_minute(0)).unwrap_or(now)
}

/// Writes the example data of a pipeline whose `[dataset.example]` asks for it, when the dataset
/// does not exist yet. Returns what was written, if anything.
pub(crate) fn ensure_example(config: &PipelineConfig, now: DateTime<Utc>) -> Result<Option<ExampleFiles>> {
    let Some(example) = config.dataset.example else { return Ok(None) };
    if config.dataset.path.exists() {
        return Ok(None);
    }
    let store = config.patterns.as_ref().map(|p| p.store.as_path()).filter(|s| !s.exists());
    tracing::info!(
        dataset = %config.dataset.path.display(),
        rows = example.rows,
        seed = example.seed,
        "the dataset does not exist yet: writing the example data ([dataset.example])"
    );
    write_example(
        &config.dataset.path,
        store,
        example.rows,
        example.seed,
        example.files_per_day,
        example.unlabelled_hours,
        example_end(now),
    )
    .map(Some)
}
