//! `caretaker demo`.

use anyhow::{Context, Result, bail};
use caretaker_core::Clock;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Directory to write into: OUT/events/ and OUT/patterns/store.parquet.
    #[arg(long, default_value = "data")]
    pub out: PathBuf,
    /// Number of events.
    #[arg(long, default_value_t = 20_000)]
    pub rows: usize,
    /// Random seed: the same seed and end give the same data.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// The end of the 60 days of events (RFC 3339); default: the start of the current hour.
    #[arg(long)]
    pub end: Option<chrono::DateTime<chrono::Utc>>,
    /// Files per daily partition (1-24), as an hourly ingest leaves them: many small files for
    /// `caretaker data compact` to compact.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=24))]
    pub files_per_day: u8,
    /// Leave the newest HOURS of events without a label, as a pipeline whose labels come late
    /// sees them (`dataset.label_delay`); the same seed and end without it give the same rows
    /// with their labels, as if they had arrived.
    #[arg(long, value_name = "HOURS", default_value_t = 0)]
    pub unlabelled_hours: u32,
    /// Replace existing example data in OUT.
    #[arg(long)]
    pub force: bool,
}

pub fn demo(args: DemoArgs, clock: Clock) -> Result<ExitCode> {
    let events = args.out.join("events");
    let store = args.out.join("patterns").join("store.parquet");
    if !args.force && (events.exists() || store.exists()) {
        bail!(
            "{} already holds example data ({} or {} exists); pass --force to replace it",
            args.out.display(),
            events.display(),
            store.display()
        );
    }
    if args.rows < 100 {
        bail!("--rows {}: the example needs at least 100 rows", args.rows);
    }
    if args.force {
        for path in [&events, &args.out.join("patterns")] {
            if path.exists() {
                std::fs::remove_dir_all(path).with_context(|| format!("removing {}", path.display()))?;
            }
        }
    }
    let end = args.end.unwrap_or_else(|| caretaker_pipeline::example_end(clock.now()));
    let written = caretaker_pipeline::write_example(
        &events,
        Some(&store),
        args.rows,
        args.seed,
        args.files_per_day.into(),
        args.unlabelled_hours,
        end,
    )?;
    println!(
        "wrote {} events in {} files (daily partitions) under {}, ending {}",
        written.rows,
        written.event_files,
        written.events_dir.display(),
        end.format("%Y-%m-%d %H:%M UTC")
    );
    println!("wrote {} patterns to {}", written.patterns, store.display());
    Ok(ExitCode::SUCCESS)
}
