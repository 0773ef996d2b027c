//! `caretaker schedule preview` and `caretaker scheduler start`, and what the scheduler's
//! commands share: which catalog, which task kinds.

use super::print_json;
use anyhow::{Context, Result, anyhow};
use caretaker_core::Clock;
use caretaker_scheduler::catalog::Catalog;
use caretaker_scheduler::kinds::{BuiltinKinds, KindRegistry};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Which maintenance catalog a command works on.
#[derive(Debug, Args)]
pub struct CatalogSelect {
    /// The maintenance catalog.
    #[arg(short, long, env = "CARETAKER_CATALOG", default_value = "pipelines/maintenance.toml")]
    pub catalog: PathBuf,
    /// Print one JSON document on stdout (logs stay on stderr).
    #[arg(long)]
    pub json: bool,
}

/// Every task kind this binary can run: the scheduler's own (`command`, `pipeline`), then the
/// maintenance kinds of the other crates.
pub fn kinds() -> Result<KindRegistry> {
    let exe = std::env::current_exe().context("cannot find the caretaker binary itself")?;
    Ok(KindRegistry::new(vec![Box::new(BuiltinKinds { caretaker_exe: exe }), Box::new(caretaker_tasks::Kinds)]))
}

pub fn load_catalog(path: &std::path::Path) -> Result<Catalog> {
    Ok(Catalog::load(path, &kinds()?)?)
}

#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Every firing of the next days, with a summary and warnings (overlaps, daylight saving).
    Preview {
        /// How many days.
        #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=366))]
        days: u32,
        /// Start: a date (midnight in the catalog's time zone) or an RFC 3339 instant. Default: now.
        #[arg(long)]
        from: Option<String>,
        #[command(flatten)]
        select: CatalogSelect,
    },
}

#[derive(Debug, Subcommand)]
pub enum SchedulerCommand {
    /// Run the scheduler until SIGTERM or SIGINT: fire due tasks, record every execution.
    Start {
        /// Stop after this many seconds, as if SIGTERM came.
        #[arg(long = "for", value_name = "SECONDS")]
        run_for: Option<f64>,
        #[command(flatten)]
        select: CatalogSelect,
    },
}

pub fn schedule(cmd: ScheduleCommand, clock: Clock) -> Result<ExitCode> {
    let ScheduleCommand::Preview { days, from, select } = cmd;
    let catalog = load_catalog(&select.catalog)?;
    let from = match from {
        None => clock.now(),
        Some(text) => {
            caretaker_scheduler::preview::parse_from(&text, catalog.time_zone).map_err(|e| anyhow!("--from {e}"))?
        }
    };
    let preview = caretaker_scheduler::preview::preview(&catalog, from, days);
    if select.json {
        print_json(&preview);
    } else {
        print!("{}", caretaker_scheduler::preview::render(&preview));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn scheduler(cmd: SchedulerCommand, clock: Clock) -> Result<ExitCode> {
    let SchedulerCommand::Start { run_for, select } = cmd;
    let run_for = match run_for {
        Some(s) if !(s.is_finite() && s > 0.0) => {
            return Err(anyhow!("--for {s}: must be a positive number of seconds"));
        }
        Some(s) => Some(std::time::Duration::from_secs_f64(s)),
        None => None,
    };
    let catalog = load_catalog(&select.catalog)?;
    let rt = caretaker_scheduler::runtime()?;
    let summary = rt.block_on(async {
        let session = caretaker_scheduler::Session::open(catalog, clock).await?;
        let options = caretaker_scheduler::daemon::DaemonOptions { run_for };
        anyhow::Ok(caretaker_scheduler::daemon::run(session.runner.clone(), session.lifecycle, options).await)
    })?;
    if select.json {
        print_json(&summary);
    } else {
        let counts = summary.executions.iter().map(|(k, v)| format!("{v} {k}")).collect::<Vec<_>>().join(", ");
        println!(
            "scheduler stopped ({}): {} execution(s){}{}",
            summary.stop_reason,
            summary.executions.values().sum::<u64>(),
            if counts.is_empty() { String::new() } else { format!(" ({counts})") },
            if summary.claimed_elsewhere > 0 {
                format!(", {} firing(s) run by another scheduler", summary.claimed_elsewhere)
            } else {
                String::new()
            }
        );
        for r in &summary.recovered {
            println!("recovered {r}");
        }
        for m in &summary.missed {
            println!("missed    {m}");
        }
        for e in &summary.errors {
            println!("error     {e}");
        }
    }
    Ok(if summary.errors.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(2) })
}
