//! What each command does: load, call, print, choose the exit code.

use crate::cli::{Cli, Command, DemoArgs, ModelsCommand, PatternsCommand, PipelineArgs, PipelineSelect, RunsCommand};
use anyhow::{Context, Result, anyhow, bail};
use caretaker_core::Clock;
use caretaker_core::config::PipelineConfig;
use caretaker_core::ids::ModelVersion;
use caretaker_core::report::RunStatus;
use caretaker_registry::Registry;
use std::io::IsTerminal;
use std::process::ExitCode;

pub fn dispatch(cli: Cli) -> Result<ExitCode> {
    let clock = Clock::from_env().map_err(|e| anyhow!(e))?;
    match cli.command {
        Command::Demo(args) => demo(args, clock),
        Command::Run(args) => run(args, clock),
        Command::Quality(args) => quality(args, clock),
        Command::Models(cmd) => models(cmd, clock),
        Command::Patterns(cmd) => patterns(cmd, clock),
        Command::Runs(cmd) => runs(cmd),
        Command::Report(args) => report(&args.run_id, &args.select),
    }
}

fn load(path: &std::path::Path) -> Result<PipelineConfig> {
    Ok(PipelineConfig::load(path)?)
}

fn print_json<T: serde::Serialize>(value: &T) {
    println!("{}", serde_json::to_string_pretty(value).expect("serialisable"));
}

fn demo(args: DemoArgs, clock: Clock) -> Result<ExitCode> {
    let events = args.out.join("events");
    let store = args.out.join("patterns").join("store.parquet");
    if !args.force && (events.exists() || store.exists()) {
        bail!(
            "{} already holds example data ({} or {} exists); pass --force to replace it",
            args.out.display(),
            events.display(),
            store.display()
        );
    }
    if args.rows < 100 {
        bail!("--rows {}: the example needs at least 100 rows", args.rows);
    }
    if args.force {
        for path in [&events, &args.out.join("patterns")] {
            if path.exists() {
                std::fs::remove_dir_all(path).with_context(|| format!("removing {}", path.display()))?;
            }
        }
    }
    let end = args.end.unwrap_or_else(|| caretaker_pipeline::example_end(clock.now()));
    let written = caretaker_pipeline::write_example(&events, Some(&store), args.rows, args.seed, end)?;
    println!(
        "wrote {} events in {} daily files under {}, ending {}",
        written.rows,
        written.event_files,
        written.events_dir.display(),
        end.format("%Y-%m-%d %H:%M UTC")
    );
    println!("wrote {} patterns to {}", written.patterns, store.display());
    Ok(ExitCode::SUCCESS)
}

fn run(args: PipelineArgs, clock: Clock) -> Result<ExitCode> {
    let config = load(&args.pipeline)?;
    let options = caretaker_pipeline::RunOptions { progress: !args.json && std::io::stderr().is_terminal() };
    let outcome = caretaker_pipeline::run(&config, clock, &options)?;
    if args.json {
        print_json(&outcome.report);
    } else {
        print!("{}", caretaker_report::summary(&outcome.report));
    }
    Ok(match outcome.report.status {
        RunStatus::Succeeded => ExitCode::SUCCESS,
        RunStatus::QualityFailed => ExitCode::from(1),
        RunStatus::Failed => ExitCode::from(2),
    })
}

fn quality(args: PipelineArgs, clock: Clock) -> Result<ExitCode> {
    let config = load(&args.pipeline)?;
    let q = caretaker_pipeline::quality_only(&config, clock)?;
    if args.json {
        print_json(&serde_json::json!({ "run_id": q.run_id, "data": q.data, "quality": q.report }));
    } else {
        println!(
            "quality score {:.3} (min {:.3}) {}: {} rows in {} files, {} quarantined",
            q.report.score,
            q.report.min_score,
            if q.report.passed { "passed" } else { "FAILED" },
            q.report.rows,
            q.data.files,
            q.report.quarantined_rows
        );
        for c in &q.report.checks {
            println!(
                "  {:<4} {:<24} {:<16} {}",
                if c.passed { "ok" } else { "FAIL" },
                c.check,
                c.column.as_deref().unwrap_or(""),
                c.detail
            );
        }
        if let Some(path) = &q.report.quarantine_path {
            println!("quarantine: {path}");
        }
    }
    Ok(if q.report.passed { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn parse_version(text: &str) -> Result<ModelVersion> {
    text.parse().map_err(|e: String| anyhow!(e))
}

fn models(cmd: ModelsCommand, clock: Clock) -> Result<ExitCode> {
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
        ModelsCommand::Show { version, select } => {
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

fn pattern_policy(select: &PipelineSelect) -> Result<caretaker_core::config::PatternPolicy> {
    let config = load(&select.pipeline)?;
    config.patterns.ok_or_else(|| {
        anyhow!("{}: no [patterns] section: this pipeline keeps no pattern store", select.pipeline.display())
    })
}

fn patterns(cmd: PatternsCommand, clock: Clock) -> Result<ExitCode> {
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
                    print_json(&serde_json::json!({
                        "dry_run": true, "before": plan.before, "delete": plan.delete, "archive": plan.archive,
                        "keep": plan.keep, "store_bytes": plan.store_bytes, "created_in_future": plan.created_in_future,
                    }));
                } else {
                    println!(
                        "dry run: of {} patterns ({} bytes), {} would be deleted, {} archived, {} kept; nothing changed",
                        plan.before, plan.store_bytes, plan.delete, plan.archive, plan.keep
                    );
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
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn history(select: &PipelineSelect) -> Result<caretaker_history::History> {
    let config = load(&select.pipeline)?;
    Ok(caretaker_history::History::open(&config.output.state.join("history.sqlite"))?)
}

fn runs(cmd: RunsCommand) -> Result<ExitCode> {
    match cmd {
        RunsCommand::List { limit, select } => {
            let rows = history(&select)?.runs(limit)?;
            if select.json {
                let rows: Vec<_> = rows
                    .iter()
                    .map(|r| {
                        serde_json::json!({
                            "run_id": r.run_id, "pipeline": r.pipeline, "started_at": r.started_at, "status": r.status,
                            "quality_score": r.quality_score, "decision": r.decision,
                            "deployed_version": r.deployed_version, "report_dir": r.report_dir,
                        })
                    })
                    .collect();
                print_json(&rows);
            } else {
                for r in rows {
                    println!(
                        "{:<22} {:<25} {:<14} quality {:<6} {:<13} {}",
                        r.run_id,
                        r.started_at,
                        r.status,
                        r.quality_score.map(|s| format!("{s:.3}")).unwrap_or_else(|| "-".into()),
                        r.decision,
                        r.deployed_version.unwrap_or_default()
                    );
                }
            }
        }
        RunsCommand::Show { run_id, select } => {
            let report = history(&select)?
                .report(&run_id)?
                .ok_or_else(|| anyhow!("no run {run_id:?} in the history of {}", select.pipeline.display()))?;
            if select.json {
                print_json(&report);
            } else {
                print!("{}", caretaker_report::summary(&report));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn report(run_id: &str, select: &PipelineSelect) -> Result<ExitCode> {
    let report = history(select)?
        .report(run_id)?
        .ok_or_else(|| anyhow!("no run {run_id:?} in the history of {}", select.pipeline.display()))?;
    print_json(&report);
    Ok(ExitCode::SUCCESS)
}
