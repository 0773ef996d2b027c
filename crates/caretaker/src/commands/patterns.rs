//! `caretaker patterns ...`: the pattern store.

use super::{load, print_json};
use crate::cli::PipelineSelect;
use anyhow::{Result, anyhow};
use caretaker_core::Clock;
use clap::Subcommand;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum PatternsCommand {
    /// The patterns with the most uses.
    List {
        /// How many.
        #[arg(long, default_value_t = 20)]
        top: usize,
        #[command(flatten)]
        select: PipelineSelect,
    },
    /// Apply the retention policy now: delete old useless patterns, archive old valuable ones.
    Cleanup {
        /// Show what would be deleted and archived, change nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        select: PipelineSelect,
    },
}

fn pattern_policy(select: &PipelineSelect) -> Result<caretaker_core::config::PatternPolicy> {
    let config = load(&select.pipeline)?;
    config.patterns.ok_or_else(|| {
        anyhow!("{}: no [patterns] section: this pipeline keeps no pattern store", select.pipeline.display())
    })
}

pub fn patterns(cmd: PatternsCommand, clock: Clock) -> Result<ExitCode> {
    match cmd {
        PatternsCommand::List { top, select } => {
            let policy = pattern_policy(&select)?;
            let top = caretaker_patterns::store::top(&policy.store, top)?;
            if select.json {
                print_json(&top);
            } else {
                for p in &top {
                    println!(
                        "{}  used {:>6}  confidence {:.3}  support {:.4}  {} -> {}",
                        p.pattern_id,
                        p.usage_count,
                        p.confidence,
                        p.support,
                        p.conditions,
                        if p.predicts { "failed" } else { "ok" }
                    );
                }
            }
        }
        PatternsCommand::Cleanup { dry_run, select } => {
            let policy = pattern_policy(&select)?;
            let now = clock.now();
            if dry_run {
                let plan = caretaker_patterns::cleanup::plan(&policy, now)?;
                if select.json {
                    print_json(&serde_json::json!({
                        "dry_run": true, "before": plan.before, "delete": plan.delete, "archive": plan.archive,
                        "keep": plan.keep, "store_bytes": plan.store_bytes, "created_in_future": plan.created_in_future,
                    }));
                } else {
                    println!(
                        "dry run: of {} patterns ({} bytes), {} would be deleted, {} archived, {} kept; nothing changed",
                        plan.before, plan.store_bytes, plan.delete, plan.archive, plan.keep
                    );
                    if plan.created_in_future > 0 {
                        println!(
                            "warning: {} patterns were created in the future; they are kept",
                            plan.created_in_future
                        );
                    }
                }
            } else {
                let run_id = caretaker_core::ids::RunId::new(now);
                let report = caretaker_patterns::cleanup::run(&policy, now, run_id.as_str())?;
                if select.json {
                    print_json(&report);
                } else {
                    println!(
                        "of {} patterns: {} deleted, {} archived, {} kept; store {} -> {} bytes, archive +{} bytes",
                        report.before,
                        report.deleted,
                        report.archived,
                        report.kept,
                        report.store_bytes_before,
                        report.store_bytes_after,
                        report.archive_bytes_written
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
