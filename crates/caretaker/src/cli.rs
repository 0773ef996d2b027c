//! The command-line grammar. Doc comments here are the `--help` text.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Caretaker keeps prediction models healthy: it checks the night's training data, retrains
/// candidates, deploys one only if it really beats the champion, and cleans up learned patterns.
#[derive(Debug, Parser)]
#[command(name = "caretaker", version, propagate_version = true)]
pub struct Cli {
    /// More logging on stderr (-v info, -vv debug); CARETAKER_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write the example events (daily Hive partitions) and an example pattern store.
    Demo(crate::commands::demo::DemoArgs),
    /// Run the whole nightly pipeline.
    Run(PipelineArgs),
    /// Run the quality stage alone.
    Quality(PipelineArgs),
    /// The model registry: list, show, roll back, promote, reset.
    #[command(subcommand)]
    Models(crate::commands::models::ModelsCommand),
    /// The training data: compaction of its small Parquet files.
    #[command(subcommand)]
    Data(crate::commands::data::DataCommand),
    /// The performance review: stage times, memory and rows over the last runs, what got slower,
    /// recommendations with their figures; --apply applies the safe one (compaction).
    Review(crate::commands::review::ReviewArgs),
    /// The pattern store: list, clean up, restore, verify.
    #[command(subcommand)]
    Patterns(crate::commands::patterns::PatternsCommand),
    /// The run history.
    #[command(subcommand)]
    Runs(crate::commands::runs::RunsCommand),
    /// Print a run's report.json, or write its report.html (--html FILE).
    Report(crate::commands::runs::ReportArgs),
    /// The maintenance scheduler's plan: preview the next days.
    #[command(subcommand)]
    Schedule(crate::commands::scheduler::ScheduleCommand),
    /// The maintenance scheduler daemon.
    #[command(subcommand)]
    Scheduler(crate::commands::scheduler::SchedulerCommand),
    /// One maintenance task: run it now, list the catalog.
    #[command(subcommand)]
    Task(crate::commands::task::TaskCommand),
    /// Maintenance mode: on, off, status.
    #[command(subcommand)]
    Maintenance(crate::commands::maintenance::MaintenanceCommand),
    /// The maintenance executions of the last days: success rate, failures, slow tasks, advice.
    History(crate::commands::history::HistoryArgs),
    /// The offline advisory database of the security scan: sync it from OSV, see its age.
    #[command(subcommand)]
    Advisories(crate::commands::advisories::AdvisoriesCommand),
    /// Measurements for engineers: fit and prediction times on a pipeline's data.
    #[command(subcommand)]
    Bench(crate::commands::bench::BenchCommand),
}

#[derive(Debug, Args)]
pub struct PipelineArgs {
    /// The pipeline file.
    pub pipeline: PathBuf,
    /// Print one JSON document on stdout (logs stay on stderr).
    #[arg(long)]
    pub json: bool,
}

/// Which pipeline's registry, store or history a command works on.
#[derive(Debug, Args)]
pub struct PipelineSelect {
    /// The pipeline file whose registry, store or history to use.
    #[arg(short, long, env = "CARETAKER_PIPELINE", default_value = "pipelines/nightly.toml")]
    pub pipeline: PathBuf,
    /// Print JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[cfg(test)]
mod tests {
    /// clap checks a command line only when it is used: this walks every subcommand, so a clash
    /// (two arguments named `version`, say) fails here rather than in a user's hands.
    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
