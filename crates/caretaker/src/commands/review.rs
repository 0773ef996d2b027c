//! `caretaker review`: the weekly performance review, now, on one pipeline. The same task kind
//! the catalog's `weekly_performance_review` runs (`caretaker_tasks::performance_review`).

use super::{load, print_json};
use anyhow::{Result, anyhow};
use caretaker_core::Clock;
use caretaker_core::task::{Task, TaskContext, TaskStatus};
use caretaker_tasks::performance_review::{PerformanceReview, PerformanceReviewConfig};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct ReviewArgs {
    /// The pipeline file.
    pub pipeline: PathBuf,
    /// How many of the newest runs to read.
    #[arg(long, default_value_t = 8)]
    pub runs: usize,
    /// Apply the safe recommendation: compaction of the training data.
    #[arg(long)]
    pub apply: bool,
    /// Print the outcome as one JSON document on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn review(args: ReviewArgs, clock: Clock) -> Result<ExitCode> {
    let config = load(&args.pipeline)?;
    let mut review = PerformanceReviewConfig::for_pipeline(args.pipeline.clone());
    review.runs = args.runs;
    review.apply = args.apply;
    let task = PerformanceReview::from_config(review, std::path::Path::new("."))
        .map_err(|p| anyhow!("--{}: {}", p.key, p.reason))?;
    let ctx = TaskContext {
        task_id: "review".into(),
        execution_id: "manual".into(),
        started_at: clock.now(),
        dry_run: false,
        state_dir: config.output.state.clone(),
    };
    let rt = caretaker_scheduler::runtime()?;
    let outcome = rt.block_on(task.run(&ctx)).map_err(|e| anyhow!(e))?;
    if args.json {
        print_json(&outcome);
    } else {
        println!("review    {}", outcome.summary);
        let recommendations = outcome.details["review"]["recommendations"].as_array().cloned().unwrap_or_default();
        for r in recommendations {
            println!(
                "{}  {}\n          -> {}",
                if r["safe_to_apply"] == true { "apply   " } else { "consider" },
                r["figure"].as_str().unwrap_or(""),
                r["action"].as_str().unwrap_or("")
            );
        }
        if !outcome.metrics.is_empty() {
            let metrics: Vec<String> = outcome.metrics.iter().map(|(k, v)| format!("{k} {v:.4}")).collect();
            println!("metrics   {}", metrics.join(", "));
        }
    }
    Ok(if outcome.status == TaskStatus::Succeeded { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
