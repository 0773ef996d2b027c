//! `caretaker advisories ...`: the offline advisory database the security scan reads.

use super::print_json;
use anyhow::{Result, anyhow, bail};
use caretaker_core::Clock;
use caretaker_tasks::security::lockfiles::Ecosystem;
use caretaker_tasks::security::sync::{self, AdvisoriesSync, DEFAULT_SOURCE, Source, SyncRecord};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, Subcommand)]
pub enum AdvisoriesCommand {
    /// Download OSV's advisories for the ecosystems the lockfiles use (crates.io, PyPI, npm),
    /// check each archive whole, and swap the new database in at once; on any failure the old
    /// one stays as it was.
    Sync(SyncArgs),
    /// When the database was synced, from where, and how many advisories it holds.
    Status(StatusArgs),
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// The database directory (the `advisories` of the catalog's security_scan task).
    #[arg(long, default_value = "advisories")]
    pub advisories: PathBuf,
    /// Where the exports come from: a URL laid out as OSV's (<source>/<ecosystem>/all.zip) or a
    /// local directory laid out the same way (for a machine without internet).
    #[arg(long, default_value = DEFAULT_SOURCE)]
    pub source: String,
    /// An ecosystem to fetch (crates.io, PyPI, npm); repeat for more. Default: those of the
    /// lockfiles in --root (all three when there is none).
    #[arg(long = "ecosystem", value_name = "NAME")]
    pub ecosystems: Vec<String>,
    /// The project whose lockfiles choose the ecosystems.
    #[arg(long, default_value = ".")]
    pub root: PathBuf,
    /// Each download is given up after this many seconds.
    #[arg(long, default_value_t = 300.0)]
    pub timeout_seconds: f64,
    /// Print the sync record as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[arg(long, default_value = "advisories")]
    pub advisories: PathBuf,
    #[arg(long)]
    pub json: bool,
}

pub fn advisories(cmd: AdvisoriesCommand, clock: Clock) -> Result<ExitCode> {
    match cmd {
        AdvisoriesCommand::Sync(args) => {
            let ecosystems = if args.ecosystems.is_empty() {
                sync::ecosystems_of(&args.root)
            } else {
                args.ecosystems
                    .iter()
                    .map(|n| {
                        Ecosystem::from_osv(n)
                            .ok_or_else(|| anyhow!("--ecosystem {n:?}: not one of crates.io, PyPI, npm"))
                    })
                    .collect::<Result<_>>()?
            };
            if !(args.timeout_seconds.is_finite() && args.timeout_seconds > 0.0) {
                bail!("--timeout-seconds must be a positive number of seconds");
            }
            let source = Source::parse(&args.source, std::path::Path::new(".")).map_err(|e| anyhow!("--source {e}"))?;
            let job = AdvisoriesSync {
                advisories: args.advisories.clone(),
                source,
                ecosystems,
                timeout: Duration::from_secs_f64(args.timeout_seconds),
            };
            let runtime = caretaker_scheduler::runtime()?;
            match runtime.block_on(job.sync(clock.now())) {
                Ok(record) if args.json => print_json(&record),
                Ok(record) => println!("{}", sync::outcome_of(&record, &args.advisories).summary),
                Err(e) => {
                    eprintln!("error: {e}; the advisory database {} is as it was", args.advisories.display());
                    return Ok(ExitCode::from(1));
                }
            }
        }
        AdvisoriesCommand::Status(args) => match SyncRecord::read(&args.advisories) {
            Some(record) if args.json => print_json(&record),
            Some(record) => {
                let age = clock.now() - record.synced_at;
                println!(
                    "{}: {} advisories synced {} ({} days ago) from {}",
                    args.advisories.display(),
                    record.records(),
                    record.synced_at.format("%Y-%m-%d %H:%M UTC"),
                    age.num_days(),
                    record.source
                );
                for e in &record.ecosystems {
                    println!(
                        "  {:<10} {:>7} advisories  {} ({} bytes, blake3 {})",
                        e.ecosystem,
                        e.records,
                        e.url,
                        e.archive_bytes,
                        e.archive_blake3.get(..16).unwrap_or(&e.archive_blake3)
                    );
                }
            }
            None if args.json => print_json(&serde_json::json!({ "synced": false })),
            None => println!(
                "{}: never synced by caretaker; run `caretaker advisories sync --advisories {}`",
                args.advisories.display(),
                args.advisories.display()
            ),
        },
    }
    Ok(ExitCode::SUCCESS)
}
