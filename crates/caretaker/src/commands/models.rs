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
    /// The ledger of deploys, rollbacks, promotions and resets, oldest first.
    Ledger(PipelineSelect),
    /// For the day the champion is known to be bad and the gate would keep it: enter maintenance
    /// mode, retrain every candidate from scratch on the current window, deploy the best under
    /// the first-run policy (gate.first_run_floor, no comparison with the champion), record a
    /// `reset` in the ledger, run the model health check, and leave maintenance mode (also on
    /// failure). When no candidate clears the floor, nothing changes and it says why (exit 1).
    Reset {
        /// The pipeline file.
        pipeline: std::path::PathBuf,
        /// Why the champion is replaced, for the ledger (required).
        #[arg(long)]
        reason: String,
        /// Print the outcome as one JSON document on stdout.
        #[arg(long)]
        json: bool,
    },
}

fn parse_version(text: &str) -> Result<ModelVersion> {
    text.parse().map_err(|e: String| anyhow!(e))
}

pub fn models(cmd: ModelsCommand, clock: Clock) -> Result<ExitCode> {
    match cmd {
        ModelsCommand::List(select) => {
            let registry = Registry::of(&load(&select.pipeline)?.output)?;
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
            let registry = Registry::of(&load(&select.pipeline)?.output)?;
            let (card, _) = registry.load(parse_version(&version)?)?;
            print_json(&card);
        }
        ModelsCommand::Rollback { to, reason, select } => {
            let registry = Registry::of(&load(&select.pipeline)?.output)?;
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
            let registry = Registry::of(&load(&select.pipeline)?.output)?;
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
            let registry = Registry::of(&load(&select.pipeline)?.output)?;
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
        ModelsCommand::Reset { pipeline, reason, json } => return reset(&pipeline, &reason, json, clock),
    }
    Ok(ExitCode::SUCCESS)
}

fn reset(pipeline: &std::path::Path, reason: &str, json: bool, clock: Clock) -> Result<ExitCode> {
    if reason.trim().is_empty() {
        anyhow::bail!("--reason must say why the champion is reset: the ledger keeps it");
    }
    let config = load(pipeline)?;
    let outcome = caretaker_pipeline::reset::reset(&config, clock, reason)?;
    if json {
        print_json(&outcome);
    } else {
        for note in &outcome.recovered {
            println!("recovered {note}");
        }
        for c in &outcome.candidates {
            match (&c.metrics, &c.error) {
                (Some(m), _) => {
                    println!("candidate {:<12} f1 {:.4}  (trained in {:.2} s)", c.name, m.f1, c.train_seconds)
                }
                (None, Some(e)) => println!("candidate {:<12} failed: {e}", c.name),
                (None, None) => println!("candidate {:<12} not scored", c.name),
            }
        }
        for rule in &outcome.gate.rules {
            println!("rule      {:<16} {}  {}", rule.rule, if rule.passed { "pass" } else { "FAIL" }, rule.detail);
        }
        let was = outcome.previous_champion.map(|v| v.to_string()).unwrap_or_else(|| "none".into());
        match (&outcome.deployed_version, &outcome.refused) {
            (Some(v), _) => println!(
                "reset     {v} ({}) is the champion (was {was}); the ledger records the reset: {}",
                outcome.candidate.as_deref().unwrap_or("?"),
                outcome.reason
            ),
            (None, Some(why)) => println!("reset     refused, champion {was} unchanged: {why}"),
            (None, None) => println!("reset     nothing changed (champion {was})"),
        }
        if let Some(h) = &outcome.health {
            println!(
                "health    {:.1}/10 ({}){}",
                h.score,
                h.health.name(),
                if h.maintenance_required { ", maintenance required" } else { "" }
            );
            for c in &h.components {
                println!("          {:<18} {:.2}/{:.2}  {}", c.name, c.points, c.max_points, c.detail);
            }
        }
        if let Some(path) = &outcome.report_path {
            println!("report    {}", path.display());
        }
        if !outcome.maintenance_left {
            println!("maintenance mode was changed by someone else during the reset and is left as it is");
        }
    }
    Ok(if outcome.deployed_version.is_some() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
