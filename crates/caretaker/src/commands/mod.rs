//! What each command does: load, call, print, choose the exit code. One module per command
//! group; `dispatch` routes.

pub mod advisories;
pub mod bench;
pub mod data;
pub mod demo;
pub mod history;
pub mod maintenance;
pub mod models;
pub mod patterns;
pub mod review;
pub mod run;
pub mod runs;
pub mod scheduler;
pub mod task;

use crate::cli::{Cli, Command};
use anyhow::{Result, anyhow};
use caretaker_core::Clock;
use caretaker_core::config::PipelineConfig;
use std::process::ExitCode;

pub fn dispatch(cli: Cli) -> Result<ExitCode> {
    let clock = Clock::from_env().map_err(|e| anyhow!(e))?;
    match cli.command {
        Command::Demo(args) => demo::demo(args, clock),
        Command::Run(args) => run::run(args, clock),
        Command::Quality(args) => run::quality(args, clock),
        Command::Models(cmd) => models::models(cmd, clock),
        Command::Data(cmd) => data::data(cmd, clock),
        Command::Review(args) => review::review(args, clock),
        Command::Patterns(cmd) => patterns::patterns(cmd, clock),
        Command::Runs(cmd) => runs::runs(cmd),
        Command::Report(args) => runs::report(&args),
        Command::Schedule(cmd) => scheduler::schedule(cmd, clock),
        Command::Scheduler(cmd) => scheduler::scheduler(cmd, clock),
        Command::Task(cmd) => task::task(cmd, clock),
        Command::Maintenance(cmd) => maintenance::maintenance(cmd, clock),
        Command::History(args) => history::history(args, clock),
        Command::Bench(cmd) => bench::bench(cmd),
        Command::Advisories(cmd) => advisories::advisories(cmd, clock),
    }
}

pub(crate) fn load(path: &std::path::Path) -> Result<PipelineConfig> {
    Ok(PipelineConfig::load(path)?)
}

pub(crate) fn print_json<T: serde::Serialize>(value: &T) {
    println!("{}", serde_json::to_string_pretty(value).expect("serialisable"));
}
