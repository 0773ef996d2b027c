//! `caretaker runs ...` and `caretaker report`: the run history.

use super::{load, print_json};
use crate::cli::PipelineSelect;
use anyhow::{Result, anyhow};
use clap::{Args, Subcommand};
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
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    pub run_id: String,
    #[command(flatten)]
    pub select: PipelineSelect,
}

fn history(select: &PipelineSelect) -> Result<caretaker_history::History> {
    let config = load(&select.pipeline)?;
    Ok(caretaker_history::History::open(&config.output.state.join("history.sqlite"))?)
}

pub fn runs(cmd: RunsCommand) -> Result<ExitCode> {
    match cmd {
        RunsCommand::List { limit, select } => {
            let rows = history(&select)?.runs(limit)?;
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
            let report = history(&select)?
                .report(&run_id)?
                .ok_or_else(|| anyhow!("no run {run_id:?} in the history of {}", select.pipeline.display()))?;
            if select.json {
                print_json(&report);
            } else {
                print!("{}", caretaker_report::summary(&report));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn report(run_id: &str, select: &PipelineSelect) -> Result<ExitCode> {
    let report = history(select)?
        .report(run_id)?
        .ok_or_else(|| anyhow!("no run {run_id:?} in the history of {}", select.pipeline.display()))?;
    print_json(&report);
    Ok(ExitCode::SUCCESS)
}
