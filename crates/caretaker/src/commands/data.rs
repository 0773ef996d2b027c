//! `caretaker data compact`: the training data's small Parquet files rewritten into fewer files.

use super::{load, print_json};
use anyhow::Result;
use caretaker_core::Clock;
use caretaker_core::units::bytes;
use caretaker_pipeline::compact::{CompactOptions, CompactionReport, DatasetFigures};
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Rewrite the small Parquet files of each directory (each Hive partition) into fewer files
    /// of about dataset.compact_target_mb, sorted by event time. Crash-safe: the new files are
    /// checked equal (rows and content hash) before they replace the old ones. Reports files,
    /// bytes and the quality stage's scan time before and after.
    Compact {
        /// The pipeline file.
        pipeline: PathBuf,
        /// Plan and measure only; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print one JSON document on stdout (logs stay on stderr).
        #[arg(long)]
        json: bool,
    },
}

pub fn data(cmd: DataCommand, clock: Clock) -> Result<ExitCode> {
    match cmd {
        DataCommand::Compact { pipeline, dry_run, json } => {
            let config = load(&pipeline)?;
            let report = caretaker_pipeline::compact::compact_dataset(&config, clock, &CompactOptions { dry_run })?;
            if json {
                print_json(&report);
            } else {
                print!("{}", render(&report));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn figures(f: &DatasetFigures) -> String {
    format!("{} files, {}, {} rows", f.files, bytes(f.bytes), f.rows)
}

fn render(r: &CompactionReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let p = &r.plan;
    let _ = writeln!(
        out,
        "dataset   {}: {} in {} directories, {} small (target {} per file)",
        r.dataset,
        figures(&r.before),
        p.directories,
        p.small_files,
        bytes(r.target_bytes)
    );
    if let Some(rec) = &r.recovered {
        let _ = writeln!(
            out,
            "recovered {}{} staged files of an interrupted compaction removed",
            rec.finished.as_deref().map(|id| format!("finished the swap of compaction {id}; ")).unwrap_or_default(),
            rec.orphans_removed
        );
    }
    if let Some(id) = &r.interrupted {
        let _ = writeln!(
            out,
            "pending   compaction {id} was interrupted mid-swap: the dataset reads whole through its journal; run without --dry-run to finish it"
        );
    }
    if p.is_empty() {
        let _ = writeln!(out, "plan      nothing to compact: no directory holds two or more small files");
    } else {
        let _ = writeln!(
            out,
            "plan      {} directories: {} small files into {}; {} -> {} files in all",
            p.groups.len(),
            p.groups.iter().map(|g| g.files.len()).sum::<usize>(),
            p.groups.iter().map(|g| g.outputs).sum::<usize>(),
            p.files,
            p.files_after
        );
    }
    match (&r.compaction, &r.after) {
        (Some(c), Some(after)) => {
            let _ = writeln!(
                out,
                "compacted {} files replaced by {} (compaction {}); content {} before and after",
                c.files_replaced, c.files_written, c.id, r.before.content_hash
            );
            let _ = writeln!(out, "after     {}", figures(after));
            let speedup = r.quality_speedup().map(|s| format!(" ({s:.2}x)")).unwrap_or_default();
            let _ = writeln!(
                out,
                "quality   scan {:.3} s -> {:.3} s{speedup}",
                r.before.quality_seconds, after.quality_seconds
            );
        }
        _ => {
            let _ = writeln!(
                out,
                "quality   scan {:.3} s; content {}{}",
                r.before.quality_seconds,
                r.before.content_hash,
                if r.dry_run { "; dry run: nothing changed" } else { "" }
            );
        }
    }
    out
}
