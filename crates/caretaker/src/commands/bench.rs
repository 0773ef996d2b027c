//! `caretaker bench ...`: measurements for engineers, on a pipeline's own data.

use super::{load, print_json};
use anyhow::Result;
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Fit every candidate on the pipeline's training window: fit seconds, prediction time per
    /// row, holdout F1 and ROC-AUC, model size. Compare with scikit-learn: bench/train.sh.
    Train {
        /// The pipeline file.
        pipeline: PathBuf,
        /// Only these candidates (by name); default: all.
        #[arg(long = "candidate")]
        candidates: Vec<String>,
        /// Print JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Time the quality stage against a bare polars streaming scan of the same files (the
    /// reference), alternating, in one process. Compare with the Python reference: bench/quality.sh.
    Quality {
        /// The pipeline file.
        pipeline: PathBuf,
        /// Measurements of each side.
        #[arg(long, default_value_t = 3)]
        repeats: usize,
        /// Run one side alone (`scan` or `quality`), to read its peak memory.
        #[arg(long, value_parser = ["scan", "quality"])]
        only: Option<String>,
        /// Print JSON on stdout.
        #[arg(long)]
        json: bool,
    },
}

pub fn bench(cmd: BenchCommand) -> Result<ExitCode> {
    match cmd {
        BenchCommand::Train { pipeline, candidates, json } => {
            let config = load(&pipeline)?;
            let b = caretaker_pipeline::bench::train(&config, &candidates)?;
            if json {
                print_json(&b);
            } else {
                println!(
                    "{}: {} rows, {} train, {} holdout; quality stage {:.2} s",
                    b.dataset, b.rows, b.train_rows, b.holdout_rows, b.quality_seconds
                );
                println!(
                    "{:<14} {:<20} {:>9} {:>12} {:>7} {:>7} {:>10}",
                    "candidate", "family", "fit s", "predict µs", "f1", "auc", "bytes"
                );
                for c in &b.candidates {
                    println!(
                        "{:<14} {:<20} {:>9.3} {:>12.3} {:>7.4} {:>7} {:>10}",
                        c.name,
                        c.family,
                        c.fit_seconds,
                        c.predict_micros_per_row,
                        c.f1,
                        c.roc_auc.map(|a| format!("{a:.4}")).unwrap_or_else(|| "-".into()),
                        c.model_bytes
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        BenchCommand::Quality { pipeline, repeats, only, json } => {
            let config = load(&pipeline)?;
            let b = caretaker_pipeline::bench::quality(&config, repeats, only.as_deref())?;
            if json {
                print_json(&b);
            } else {
                println!(
                    "{}: {} rows in {} files, {} bytes; quality score {:.3}",
                    b.dataset, b.rows, b.files, b.bytes, b.quality_score
                );
                println!(
                    "bare scan {:.3} s, quality stage {:.3} s (medians of {}): ratio {:.2}; peak memory {} MiB",
                    b.scan_median,
                    b.quality_median,
                    repeats,
                    b.ratio,
                    b.peak_rss_bytes.map(|b| (b >> 20).to_string()).unwrap_or_else(|| "?".into())
                );
                let side = |cpu: Option<f64>, system: Option<f64>, faults: Option<f64>| match (cpu, system, faults) {
                    (Some(cpu), Some(system), Some(faults)) => {
                        format!("{cpu:.3} s ({system:.3} s in the kernel, {faults:.0} page faults)")
                    }
                    _ => "-".into(),
                };
                println!(
                    "per repeat, all threads: bare scan {}, quality stage {}",
                    side(b.scan_cpu_seconds, b.scan_system_seconds, b.scan_page_faults),
                    side(b.quality_cpu_seconds, b.quality_system_seconds, b.quality_page_faults)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
