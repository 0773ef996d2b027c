//! `caretaker runs ...` and `caretaker report`: the run history.

use super::{load, print_json};
use crate::cli::PipelineSelect;
use anyhow::{Result, anyhow};
use clap::{Args, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// The latest runs, newest first.
    List {
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[command(flatten)]
        select: PipelineSelect,
    },
    /// One run's summary.
    Show {
        run_id: String,
        #[command(flatten)]
        select: PipelineSelect,
    },
    /// What changed from run A to run B: quality, every metric of every model, drift (B - A).
    Compare {
        a: String,
        b: String,
        #[command(flatten)]
        select: PipelineSelect,
    },
    /// The whole history as one table (one row per run and model, every metric a column).
    Export {
        /// The file format.
        #[arg(long, value_enum)]
        format: ExportFormat,
        /// The file to write (replaced atomically).
        out: PathBuf,
        #[command(flatten)]
        select: PipelineSelect,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    /// Apache Parquet: `pandas.read_parquet(OUT)` or `polars.read_parquet(OUT)` gives the trend table.
    Parquet,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    pub run_id: String,
    /// Write the run's report.html to FILE (with the trends of the runs up to it) instead of
    /// printing report.json.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    #[command(flatten)]
    pub select: PipelineSelect,
}

/// The pipeline's run history and the pipeline's name (a history in PostgreSQL may hold the runs
/// of many pipelines).
fn history(select: &PipelineSelect) -> Result<(caretaker_history::History, String)> {
    let config = load(&select.pipeline)?;
    Ok((caretaker_history::History::of(&config.output)?, config.name))
}

pub fn runs(cmd: RunsCommand) -> Result<ExitCode> {
    match cmd {
        RunsCommand::List { limit, select } => {
            let (history, name) = history(&select)?;
            let rows = history.runs(Some(&name), limit)?;
            if select.json {
                let rows: Vec<_> = rows
                    .iter()
                    .map(|r| {
                        serde_json::json!({
                            "run_id": r.run_id, "pipeline": r.pipeline, "started_at": r.started_at, "status": r.status,
                            "quality_score": r.quality_score, "decision": r.decision,
                            "deployed_version": r.deployed_version, "report_dir": r.report_dir,
                        })
                    })
                    .collect();
                print_json(&rows);
            } else {
                for r in rows {
                    println!(
                        "{:<22} {:<25} {:<14} quality {:<6} {:<13} {}",
                        r.run_id,
                        r.started_at,
                        r.status,
                        r.quality_score.map(|s| format!("{s:.3}")).unwrap_or_else(|| "-".into()),
                        r.decision,
                        r.deployed_version.unwrap_or_default()
                    );
                }
            }
        }
        RunsCommand::Show { run_id, select } => {
            let report = find(&history(&select)?, &run_id, &select)?;
            if select.json {
                print_json(&report);
            } else {
                print!("{}", caretaker_report::summary(&report));
            }
        }
        RunsCommand::Compare { a, b, select } => {
            let history = history(&select)?;
            let a = find(&history, &a, &select)?;
            let b = find(&history, &b, &select)?;
            let comparison = caretaker_report::compare::compare(&a, &b);
            if select.json {
                print_json(&comparison);
            } else {
                print!("{}", caretaker_report::compare::render_text(&comparison));
            }
        }
        RunsCommand::Export { format: ExportFormat::Parquet, out, select } => {
            let (history, name) = history(&select)?;
            let reports = history.all_reports(Some(&name))?;
            let summary = caretaker_pipeline::history_export::export_parquet(&reports, &out)?;
            if select.json {
                print_json(&serde_json::json!({
                    "path": out.display().to_string(), "runs": summary.runs, "rows": summary.rows,
                    "columns": summary.columns, "bytes": summary.bytes,
                }));
            } else {
                println!(
                    "exported {} runs as {} rows of {} columns to {} ({} bytes)",
                    summary.runs,
                    summary.rows,
                    summary.columns.len(),
                    out.display(),
                    summary.bytes
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn find(
    (history, name): &(caretaker_history::History, String),
    run_id: &str,
    select: &PipelineSelect,
) -> Result<caretaker_core::report::RunReport> {
    history.report(Some(name), run_id)?.ok_or_else(|| {
        anyhow!("no run {run_id:?} in the history of {} (see `caretaker runs list`)", select.pipeline.display())
    })
}

pub fn report(args: &ReportArgs) -> Result<ExitCode> {
    let history = history(&args.select)?;
    let report = find(&history, &args.run_id, &args.select)?;
    match &args.html {
        None => print_json(&report),
        Some(path) => {
            let recent =
                history.0.recent_reports(&report.pipeline, Some(&args.run_id), caretaker_report::html::TREND_RUNS)?;
            caretaker_report::write_html_to(&report, &recent, path)?;
            if args.select.json {
                print_json(&serde_json::json!({"run_id": report.run_id, "html": path.display().to_string()}));
            } else {
                println!("{}", path.display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
