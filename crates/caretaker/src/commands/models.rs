//! `caretaker models ...`: the registry.

use super::{load, print_json};
use crate::cli::PipelineSelect;
use anyhow::{Result, anyhow};
use caretaker_core::Clock;
use caretaker_core::ids::ModelVersion;
use caretaker_registry::Registry;
use clap::Subcommand;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Every version, newest first, with the champion marked.
    List(PipelineSelect),
    /// One version's card.
    Show {
        /// The version (v0003 or 3).
        #[arg(value_name = "VERSION")]
        model_version: String,
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
    /// Make a version the champion (a stored challenger, or any earlier version), with a reason.
    Promote {
        /// The version (v0003 or 3).
        #[arg(value_name = "VERSION")]
        model_version: String,
        /// Why, for the ledger (required).
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        select: PipelineSelect,
    },
    /// The ledger of deploys, rollbacks and promotions, oldest first.
    Ledger(PipelineSelect),
}

fn parse_version(text: &str) -> Result<ModelVersion> {
    text.parse().map_err(|e: String| anyhow!(e))
}

pub fn models(cmd: ModelsCommand, clock: Clock) -> Result<ExitCode> {
    match cmd {
        ModelsCommand::List(select) => {
            let registry = Registry::open(&load(&select.pipeline)?.output.models)?;
            let versions = registry.list()?;
            if select.json {
                let cards: Vec<_> =
                    versions.iter().map(|v| serde_json::json!({ "champion": v.is_champion, "card": v.card })).collect();
                print_json(&cards);
            } else if versions.is_empty() {
                println!("no model versions in {}", registry.root().display());
            } else {
                println!(
                    "  {:<7} {:<12} {:<20} {:>7} {:>10}  created",
                    "version", "name", "family", "f1", "train rows"
                );
                for v in versions {
                    let c = &v.card;
                    println!(
                        "{} {:<7} {:<12} {:<20} {:>7} {:>10}  {}",
                        if v.is_champion { "*" } else { " " },
                        c.version,
                        c.name,
                        c.family,
                        c.metrics.as_ref().map(|m| format!("{:.4}", m.f1)).unwrap_or_else(|| "-".into()),
                        c.train_rows,
                        c.created_at.format("%Y-%m-%d %H:%M")
                    );
                }
            }
        }
        ModelsCommand::Show { model_version: version, select } => {
            let registry = Registry::open(&load(&select.pipeline)?.output.models)?;
            let (card, _) = registry.load(parse_version(&version)?)?;
            print_json(&card);
        }
        ModelsCommand::Rollback { to, reason, select } => {
            let registry = Registry::open(&load(&select.pipeline)?.output.models)?;
            let to = to.as_deref().map(parse_version).transpose()?;
            let lock = registry.lock()?;
            let (from, to) = registry.rollback(&lock, to, &reason, clock.now())?;
            if select.json {
                print_json(&serde_json::json!({ "from": from, "to": to, "reason": reason }));
            } else {
                println!("rolled back: {to} is the champion again (was {from})");
            }
        }
        ModelsCommand::Promote { model_version: version, reason, select } => {
            if reason.trim().is_empty() {
                anyhow::bail!("--reason must say why {version} is promoted: the ledger keeps it");
            }
            let registry = Registry::open(&load(&select.pipeline)?.output.models)?;
            let version = parse_version(&version)?;
            let lock = registry.lock()?;
            let previous = registry.promote(&lock, version, &reason, clock.now())?;
            if select.json {
                print_json(&serde_json::json!({ "from": previous, "to": version, "reason": reason }));
            } else {
                println!(
                    "promoted: {version} is the champion (was {})",
                    previous.map(|v| v.to_string()).unwrap_or_else(|| "none".into())
                );
            }
        }
        ModelsCommand::Ledger(select) => {
            let registry = Registry::open(&load(&select.pipeline)?.output.models)?;
            let ledger = registry.ledger()?;
            if select.json {
                print_json(&ledger);
            } else {
                for e in ledger {
                    println!(
                        "{}  {:<8} {} (was {})  {}",
                        e.at.format("%Y-%m-%d %H:%M:%S"),
                        serde_json::to_value(e.action)?.as_str().unwrap_or(""),
                        e.version,
                        e.previous.map(|v| v.to_string()).unwrap_or_else(|| "none".into()),
                        e.reason
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
