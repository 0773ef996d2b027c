//! `caretaker run` and `caretaker quality`.

use super::{load, print_json};
use crate::cli::PipelineArgs;
use anyhow::Result;
use caretaker_core::Clock;
use caretaker_core::report::RunStatus;
use std::io::IsTerminal;
use std::process::ExitCode;

pub fn run(args: PipelineArgs, clock: Clock) -> Result<ExitCode> {
    let config = load(&args.pipeline)?;
    let options = caretaker_pipeline::RunOptions { progress: !args.json && std::io::stderr().is_terminal() };
    let outcome = caretaker_pipeline::run(&config, clock, &options)?;
    if args.json {
        print_json(&outcome.report);
    } else {
        print!("{}", caretaker_report::summary(&outcome.report));
    }
    Ok(match outcome.report.status {
        RunStatus::Succeeded => ExitCode::SUCCESS,
        RunStatus::QualityFailed => ExitCode::from(1),
        RunStatus::Failed => ExitCode::from(2),
    })
}

/// `, N awaiting their label` when rows await one.
fn awaiting(rows: u64) -> String {
    if rows == 0 { String::new() } else { format!(", {rows} awaiting their label") }
}

pub fn quality(args: PipelineArgs, clock: Clock) -> Result<ExitCode> {
    let config = load(&args.pipeline)?;
    let q = caretaker_pipeline::quality_only(&config, clock)?;
    if args.json {
        print_json(&serde_json::json!({ "run_id": q.run_id, "data": q.data, "quality": q.report }));
    } else {
        println!(
            "quality score {:.3} (min {:.3}) {}: {} rows in {} files, {} quarantined{}",
            q.report.score,
            q.report.min_score,
            if q.report.passed { "passed" } else { "FAILED" },
            q.report.rows,
            q.data.files,
            q.report.quarantined_rows,
            awaiting(q.report.awaiting_label_rows)
        );
        for c in &q.report.checks {
            println!(
                "  {:<4} {:<24} {:<16} {}",
                if c.passed { "ok" } else { "FAIL" },
                c.check,
                c.column.as_deref().unwrap_or(""),
                c.detail
            );
        }
        if let Some(path) = &q.report.quarantine_path {
            println!("quarantine: {path}");
        }
    }
    Ok(if q.report.passed { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
