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
    Demo(DemoArgs),
    /// Run the whole nightly pipeline.
    Run(PipelineArgs),
    /// Run the quality stage alone.
    Quality(PipelineArgs),
    /// The model registry: list, show, roll back.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// The pattern store: list, clean up.
    #[command(subcommand)]
    Patterns(PatternsCommand),
    /// The run history.
    #[command(subcommand)]
    Runs(RunsCommand),
    /// Print a run's report.
    Report(ReportArgs),
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Directory to write into: OUT/events/ and OUT/patterns/store.parquet.
    #[arg(long, default_value = "data")]
    pub out: PathBuf,
    /// Number of events.
    #[arg(long, default_value_t = 20_000)]
    pub rows: usize,
    /// Random seed: the same seed and end give the same data.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// The end of the 60 days of events (RFC 3339); default: the start of the current hour.
    #[arg(long)]
    pub end: Option<chrono::DateTime<chrono::Utc>>,
    /// Replace existing example data in OUT.
    #[arg(long)]
    pub force: bool,
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

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Every version, newest first, with the champion marked.
    List(PipelineSelect),
    /// One version's card.
    Show {
        /// The version (v0003 or 3).
        version: String,
        #[command(flatten)]
        select: PipelineSelect,
    },
    /// Make the previous champion (or --to VERSION) the champion again.
    Rollback {
        /// The version to return to; default: the one the current champion replaced.
        #[arg(long)]
        to: Option<String>,
        /// Why, for the ledger.
        #[arg(long, default_value = "manual rollback")]
        reason: String,
        #[command(flatten)]
        select: PipelineSelect,
    },
    /// The ledger of deploys and rollbacks, oldest first.
    Ledger(PipelineSelect),
}

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
