//! `caretaker patterns ...`: the pattern store.

use super::{load, print_json};
use crate::cli::PipelineSelect;
use anyhow::{Result, anyhow};
use caretaker_core::Clock;
use caretaker_patterns::restore::Selection;
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
        /// Show what would be deleted and archived, with counts and bytes; change nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        select: PipelineSelect,
    },
    /// Bring archived patterns back into the store (status `restored`: cleanup leaves them alone).
    #[command(group(clap::ArgGroup::new("which").required(true).args(["since", "id"])))]
    Restore {
        /// Every pattern archived on this day (YYYY-MM-DD) or later.
        #[arg(long)]
        since: Option<chrono::NaiveDate>,
        /// This pattern (repeat for several).
        #[arg(long)]
        id: Vec<String>,
        /// Show what would come back; change nothing.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        select: PipelineSelect,
    },
    /// Check the archive's manifest against its files (existence, bytes, blake3, row counts,
    /// dates) and the store against the archive (no pattern held twice). Exit 1 on a finding.
    Verify {
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
                    print_json(&plan);
                } else {
                    println!(
                        "dry run: of {} patterns, {} would be deleted, {} archived, {} kept; nothing changed",
                        plan.before, plan.delete, plan.archive, plan.keep
                    );
                    println!(
                        "bytes: store {} -> {} ({} freed), archive +{} (measured by writing the would-be files to a temporary directory)",
                        plan.store_bytes,
                        plan.store_bytes_after,
                        plan.bytes_freed(),
                        plan.archive_bytes
                    );
                    if plan.restored_exempt > 0 {
                        println!("{} restored patterns are left alone", plan.restored_exempt);
                    }
                    if plan.unfinished_archive_entries > 0 {
                        println!(
                            "{} archive entries were left unfinished by an interrupted command; cleanup finishes them first",
                            plan.unfinished_archive_entries
                        );
                    }
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
                    if report.created_in_future > 0 {
                        println!(
                            "warning: {} patterns were created in the future; they are kept",
                            report.created_in_future
                        );
                    }
                }
            }
        }
        PatternsCommand::Restore { since, id, dry_run, select } => {
            let policy = pattern_policy(&select)?;
            let selection = match since {
                Some(day) => Selection::Since(day),
                None => Selection::Ids(id),
            };
            let report = caretaker_patterns::restore::run(&policy, &selection, clock.now(), dry_run)?;
            if select.json {
                print_json(&report);
            } else {
                let verb = if dry_run { "would restore" } else { "restored" };
                println!(
                    "{verb} {} patterns: {} archive files removed, {} rewritten without them{}",
                    report.restored,
                    report.files_removed.len(),
                    report.files_rewritten.len(),
                    if dry_run { "; nothing changed" } else { "" }
                );
                if !dry_run && report.restored > 0 {
                    println!(
                        "store {} -> {} bytes, archive {} -> {} bytes",
                        report.store_bytes_before,
                        report.store_bytes_after,
                        report.archive_bytes_before,
                        report.archive_bytes_after
                    );
                }
                if !report.already_in_store.is_empty() {
                    println!("already in the store: {}", report.already_in_store.join(", "));
                }
            }
        }
        PatternsCommand::Verify { select } => {
            let policy = pattern_policy(&select)?;
            let report = caretaker_patterns::verify::verify(&policy, clock.now())?;
            if select.json {
                print_json(&report);
            } else {
                println!(
                    "archive {}: {} files listed ({} rows), {} checked; store {}: {} patterns",
                    report.archive,
                    report.files_listed,
                    report.rows_listed,
                    report.files_checked,
                    report.store,
                    report.store_rows.map(|n| n.to_string()).unwrap_or_else(|| "unreadable".into())
                );
                for f in &report.findings {
                    println!(
                        "{}: {}: {}",
                        serde_json::to_value(f.kind)?.as_str().unwrap_or("finding"),
                        f.path,
                        f.detail
                    );
                }
                println!(
                    "{}",
                    if report.is_clean() {
                        "ok: no findings".to_string()
                    } else {
                        format!("{} findings", report.findings.len())
                    }
                );
            }
            if !report.is_clean() {
                return Ok(ExitCode::from(1));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
