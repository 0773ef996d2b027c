//! `caretaker history [--days N]`: the execution report of the maintenance scheduler.

use super::print_json;
use super::scheduler::{CatalogSelect, load_catalog};
use anyhow::Result;
use caretaker_core::Clock;
use clap::Args;
use std::process::ExitCode;

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// How many days back from now.
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=3660))]
    pub days: u32,
    #[command(flatten)]
    pub select: CatalogSelect,
}

pub fn history(args: HistoryArgs, clock: Clock) -> Result<ExitCode> {
    let catalog = load_catalog(&args.select.catalog)?;
    let to = clock.now();
    let from = to - chrono::Duration::days(i64::from(args.days));
    let rt = caretaker_scheduler::runtime()?;
    let report = rt.block_on(async {
        let session = caretaker_scheduler::Session::open(catalog, clock).await?;
        let executions = session.runner.history.since(from).await?;
        anyhow::Ok(caretaker_scheduler::report::build(
            &executions,
            from,
            to,
            args.days,
            session.runner.history.describe(),
        ))
    })?;
    if args.select.json {
        print_json(&report);
    } else {
        print!("{}", caretaker_scheduler::report::render(&report));
    }
    Ok(ExitCode::SUCCESS)
}
