//! `caretaker task run NAME` (one task now, through the scheduler's own execution path) and
//! `caretaker task list`.

use super::print_json;
use super::scheduler::{CatalogSelect, load_catalog};
use anyhow::{Result, anyhow};
use caretaker_core::Clock;
use caretaker_scheduler::history::{Execution, ExecutionStatus, Trigger};
use caretaker_scheduler::run::{RunRequest, RunResult};
use clap::Subcommand;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum TaskCommand {
    /// Run one task now: prerequisites, maintenance mode, retries, criteria, rollback, history.
    /// Exit code 0 when it succeeded, 1 when it failed, timed out or was skipped.
    Run {
        /// The task's id in the catalog.
        name: String,
        /// Wait up to this many seconds for maintenance mode to end (non-critical tasks).
        #[arg(long, default_value_t = 0.0, value_name = "SECONDS")]
        wait: f64,
        /// Change nothing: report what would run.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        select: CatalogSelect,
    },
    /// The catalog's tasks.
    List {
        #[command(flatten)]
        select: CatalogSelect,
    },
}

pub fn task(cmd: TaskCommand, clock: Clock) -> Result<ExitCode> {
    match cmd {
        TaskCommand::Run { name, wait, dry_run, select } => run(&name, wait, dry_run, &select, clock),
        TaskCommand::List { select } => list(&select),
    }
}

fn run(name: &str, wait: f64, dry_run: bool, select: &CatalogSelect, clock: Clock) -> Result<ExitCode> {
    if !(wait.is_finite() && wait >= 0.0) {
        return Err(anyhow!("--wait {wait}: must be a number of seconds, 0 or more"));
    }
    let catalog = load_catalog(&select.catalog)?;
    if catalog.task(name).is_none() {
        let known = catalog.tasks.iter().map(|t| t.id.as_str()).collect::<Vec<_>>().join(", ");
        return Err(anyhow!("{}: no task {name:?}; tasks: {known}", catalog.source.display()));
    }
    let rt = caretaker_scheduler::runtime()?;
    let execution = rt.block_on(async {
        let session = caretaker_scheduler::Session::open(catalog, clock).await?;
        // SIGTERM or SIGINT cancels the running attempt; the execution is still recorded.
        let watcher = session.cancel_on_signals();
        let req = RunRequest {
            task_id: name.to_string(),
            trigger: Trigger::Manual,
            scheduled_for: None,
            dry_run,
            maintenance_wait: std::time::Duration::from_secs_f64(wait),
            for_critical: false,
        };
        let result = session.runner.execute(req).await;
        watcher.abort();
        match result? {
            RunResult::Recorded(e) => anyhow::Ok(*e),
            RunResult::ClaimedElsewhere => Err(anyhow!("the run was claimed by another scheduler")),
        }
    })?;
    if select.json {
        print_json(&execution);
    } else {
        print!("{}", render(&execution));
    }
    Ok(if execution.status == ExecutionStatus::Succeeded { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

pub fn render(e: &Execution) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "task      {}  {}{} (execution {})",
        e.task_id,
        e.status.name(),
        e.duration_seconds.map(|s| format!(" in {s:.1} s")).unwrap_or_default(),
        e.id
    );
    let _ = writeln!(out, "summary   {}", e.summary);
    if !e.metrics.is_empty() {
        let metrics = e.metrics.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ");
        let _ = writeln!(out, "metrics   {metrics}");
    }
    for c in &e.criteria {
        let _ = writeln!(
            out,
            "criterion {} `{}` (measured {})",
            if c.passed { "ok  " } else { "FAIL" },
            c.criterion,
            c.measured
        );
    }
    if e.attempts.len() > 1 {
        for a in &e.attempts {
            let _ = writeln!(out, "attempt   {} {} in {:.1} s: {}", a.number, a.status.name(), a.seconds, a.summary);
        }
    }
    if let Some(r) = &e.rollback {
        let _ = writeln!(out, "rollback  {}: {}", r.status, r.summary);
    }
    for n in &e.notes {
        let _ = writeln!(out, "note      {n}");
    }
    out
}

fn list(select: &CatalogSelect) -> Result<ExitCode> {
    let catalog = load_catalog(&select.catalog)?;
    if select.json {
        let tasks: Vec<_> = catalog
            .tasks
            .iter()
            .map(|t| {
                serde_json::json!({
                    "id": t.id, "name": t.name, "kind": t.kind, "type": t.maintenance_type, "priority": t.priority,
                    "schedule": t.schedule.as_ref().map(|s| &s.expression),
                    "time_zone": t.schedule.as_ref().map(|s| s.time_zone.name()),
                    "estimated_seconds": t.estimated.as_secs_f64(), "components": t.components,
                    "prerequisites": t.prerequisites, "enabled": t.enabled,
                })
            })
            .collect();
        print_json(&tasks);
    } else {
        for t in &catalog.tasks {
            println!(
                "{:<28} {:<10} {:<9} {:<20} {}",
                t.id,
                t.kind,
                t.priority.name(),
                t.schedule
                    .as_ref()
                    .map(|s| format!("{} {}", s.expression, s.time_zone.name()))
                    .unwrap_or_else(|| "on demand".into()),
                t.name
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
