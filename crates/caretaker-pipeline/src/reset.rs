//! `caretaker models reset`: for the day the champion is known to be bad and the gate would keep
//! it. Every candidate is retrained from scratch on the current window and the best is deployed
//! under the first-run policy (the absolute floor, `gate.first_run_floor`), never weighed against
//! the champion it replaces.
//!
//! The order, and why:
//!
//! 1. the pipeline's run lock, then maintenance mode, entered only if it is off: a reset needs
//!    the pipeline to itself, and someone else's maintenance is not ours to end;
//! 2. quality, split, retrain and score, as the nightly run does them (the same crates and
//!    calls), with the quarantine kept aside until there is something to keep;
//! 3. the gate's first-run policy; when no candidate clears the floor nothing changes (no
//!    version, no ledger line, no run in the history) and the outcome says why;
//! 4. the deploy, recorded in the ledger as `reset` with the operator's reason, and the run
//!    recorded like a nightly run (report.json, report.html, history, Prometheus textfile), so
//!    the history and the health check see the new champion;
//! 5. the model health score ([`caretaker_evaluate::health`], the `model_health` task's default
//!    parameters) over the history including this run;
//! 6. maintenance mode left, also when a step failed (only if it is still the one this reset
//!    entered). A crash (a kill) leaves it on, as for any maintenance: `caretaker maintenance
//!    off` ends it.

use crate::candidates::{contenders, model_card, train_and_score};
use crate::progress::Stages;
use crate::run::{assess_quality, quality_failure, record, too_little_data};
use crate::split::split;
use crate::{Error, Result};
use caretaker_core::Clock;
use caretaker_core::config::PipelineConfig;
use caretaker_core::ids::{ModelVersion, RunId};
use caretaker_core::lock::ProcessLock;
use caretaker_core::maintenance::{self, MaintenanceMode};
use caretaker_core::report::{CandidateReport, GateReport, REPORT_SCHEMA_VERSION, RunReport, RunStatus};
use caretaker_evaluate::gate::{self, ChampionStanding, Contender};
use caretaker_evaluate::health::{self, HealthPolicy, HealthScore};
use caretaker_registry::Registry;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Who a reset's maintenance mode names.
pub const RESET_BY: &str = "models reset";

/// What a reset did, or why it changed nothing.
#[derive(Debug, Clone, Serialize)]
pub struct ResetOutcome {
    pub pipeline: String,
    pub reason: String,
    pub run_id: String,
    /// The champion before the reset.
    pub previous_champion: Option<ModelVersion>,
    /// The version the reset deployed; `None` when nothing changed.
    pub deployed_version: Option<ModelVersion>,
    /// The candidate deployed (or the best one, when it missed the floor).
    pub candidate: Option<String>,
    /// Why nothing changed, when nothing did.
    pub refused: Option<String>,
    /// The first-run policy's reasons and rules, with their numbers.
    pub gate: GateReport,
    /// Every candidate with its holdout scores (curves left out: they are in report.json).
    pub candidates: Vec<CandidateReport>,
    /// report.json of the run the reset recorded, when it deployed.
    pub report_path: Option<PathBuf>,
    /// The model health check after the deploy.
    pub health: Option<HealthScore>,
    /// Whether maintenance mode was left (it is not, when someone replaced it meanwhile).
    pub maintenance_left: bool,
    /// What killed runs had left and this reset settled first (a stale maintenance mode, process
    /// groups of dead runners); also in the run report's gate reasons.
    pub recovered: Vec<String>,
}

/// Resets the champion of `config`'s pipeline; `reason` goes to the ledger.
pub fn reset(config: &PipelineConfig, clock: Clock, reason: &str) -> Result<ResetOutcome> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(Error::Other {
            path: config.source.clone(),
            reason: "a reset needs a reason (--reason TEXT): the ledger keeps why the champion was replaced".into(),
        });
    }
    let state = &config.output.state;
    let _lock = ProcessLock::acquire(&state.join("run.lock"), &format!("the pipeline {}", config.source.display()))?;
    // The history before anything changes: the reset is recorded there at the end.
    let history = caretaker_history::History::of(&config.output)?;
    let holder = maintenance::Holder::this_process();
    let mode = MaintenanceMode {
        since: clock.now(),
        reason: format!("models reset: {reason}"),
        by: RESET_BY.into(),
        holder: Some(holder.clone()),
    };
    let maintenance_error =
        |e: maintenance::MaintenanceError| Error::Other { path: state.join(maintenance::FILE), reason: e.to_string() };
    // A reset that was killed left its working directory behind: no other reset is running while
    // this one holds the run lock, so every one there is a dead reset's.
    sweep_dead_resets(state);
    crate::run::sweep_killed_writes(config);
    // A reset or critical task that was killed left its mode behind: leave it, and say so.
    let mut recovered = Vec::new();
    if let (_, Some(stale)) = maintenance::current_live(state).map_err(maintenance_error)? {
        recovered.push(stale.recovered_note());
    }
    recovered.extend(caretaker_core::children::sweep(state));
    for note in &recovered {
        tracing::warn!("{note}");
    }
    if let Err(holder) = maintenance::enter_if_off(state, &mode).map_err(maintenance_error)? {
        return Err(Error::Other {
            path: state.join(maintenance::FILE),
            reason: format!(
                "maintenance mode is on (since {}, by {}: {}); a reset needs the pipeline to itself and does not end someone else's maintenance. Nothing was changed; try again when `caretaker maintenance status` says it is off",
                holder.since.format("%Y-%m-%d %H:%M UTC"),
                holder.by,
                holder.reason
            ),
        });
    }
    let hold = maintenance::Hold::renewing(state, &holder);
    tracing::info!(reason, "maintenance mode on for the reset");
    caretaker_core::crash_point("reset:in_maintenance");
    let result = reset_in_maintenance(config, &history, clock, reason, &recovered);
    hold.stop();
    // Left whatever happened, but only if it is still ours.
    let ours = |m: &MaintenanceMode| m.is_held_by(&holder) && m.since == mode.since && m.by == mode.by;
    let left = match maintenance::current(state).map_err(maintenance_error) {
        Ok(Some(current)) if ours(&current) => maintenance::leave(state).map(|_| true).map_err(maintenance_error),
        Ok(_) => {
            tracing::warn!("maintenance mode was changed by someone else during the reset; left as it is");
            Ok(false)
        }
        Err(e) => Err(e),
    };
    match (result, left) {
        (Ok(mut outcome), Ok(left)) => {
            outcome.maintenance_left = left;
            Ok(outcome)
        }
        (Err(e), Ok(_)) => Err(e),
        (Ok(_), Err(e)) => Err(e),
        (Err(e), Err(leave)) => Err(Error::Other {
            path: state.join(maintenance::FILE),
            reason: format!("{e}; and maintenance mode could not be turned off: {leave}"),
        }),
    }
}

/// Removes the `.reset-*` working directories of resets that were killed (called under the run
/// lock, which every live reset holds).
fn sweep_dead_resets(state: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(state) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name.to_string_lossy().starts_with(".reset-") && entry.file_type().is_ok_and(|t| t.is_dir()) {
            match std::fs::remove_dir_all(entry.path()) {
                Ok(()) => tracing::warn!("removed {}, left by a reset that was killed", entry.path().display()),
                Err(e) => tracing::warn!("could not remove {}, left by a killed reset: {e}", entry.path().display()),
            }
        }
    }
}

fn reset_in_maintenance(
    config: &PipelineConfig,
    history: &caretaker_history::History,
    clock: Clock,
    reason: &str,
    recovered: &[String],
) -> Result<ResetOutcome> {
    let started_at = clock.now();
    let started = Instant::now();
    let run_id = RunId::new(started_at);
    let report_dir = config.output.reports.join(run_id.as_str());
    let registry = Registry::of(&config.output)?;
    let previous = registry.champion()?.map(|p| p.version);
    let mut outcome = ResetOutcome {
        pipeline: config.name.clone(),
        reason: reason.to_string(),
        run_id: run_id.to_string(),
        previous_champion: previous,
        deployed_version: None,
        candidate: None,
        refused: None,
        gate: GateReport::skipped("the reset stopped before the gate"),
        candidates: Vec::new(),
        report_path: None,
        health: None,
        maintenance_left: false,
        recovered: recovered.to_vec(),
    };
    let refuse = |mut outcome: ResetOutcome, why: String| {
        outcome.gate = GateReport::skipped(why.clone());
        outcome.refused = Some(why);
        Ok(outcome)
    };
    crate::example::ensure_example(config, started_at)?;
    let mut stages = Stages::new(false);

    // Quality: the quarantine waits aside until the reset deploys.
    let stage = stages.start("quality", "checking the training data");
    std::fs::create_dir_all(&config.output.state)
        .map_err(|e| caretaker_core::fs::FsError::new("create directory", &config.output.state, e))?;
    let aside = tempfile::Builder::new()
        .prefix(".reset-")
        .tempdir_in(&config.output.state)
        .map_err(|e| Error::Other { path: config.output.state.clone(), reason: e.to_string() })?;
    let quality = assess_quality(config, clock, aside.path())?;
    caretaker_core::crash_point("reset:quality_checked");
    stages.finish(stage, Some(quality.report.rows));
    let Some(events) = quality.events.as_ref().filter(|_| quality.report.passed) else {
        return refuse(outcome, format!("the data failed the quality stage: {}", quality_failure(&quality.report)));
    };
    let newest = quality.data.newest_event.map(|t| t.timestamp_micros());
    let Some(split) = split(events, newest, quality.sample, &config.training) else {
        return refuse(outcome, "no clean rows to train on".into());
    };
    if let Some(why) = too_little_data(&split.train, &split.holdout, config.training.min_rows) {
        return refuse(outcome, format!("training skipped: {why}"));
    }
    let train_hash = split.train.content_hash();

    // Every candidate, from scratch, scored on the holdout.
    let stage = stages.start("retrain", "fitting the candidates from scratch");
    let (candidates, scored) = train_and_score(config, &split);
    outcome.candidates = candidates;
    stages.finish(stage, Some(split.train.len() as u64));

    // The first-run policy: the floor, no champion to weigh against.
    let contenders = contenders(config, &scored);
    let only: Vec<Contender> = contenders.iter().map(|(_, c)| *c).collect();
    let slices = caretaker_evaluate::slices::define(&split.holdout, &config.gate.slices);
    let verdict = gate::decide(&config.gate, &split.holdout.labels, &slices, ChampionStanding::None, &only);
    let mut gate_report = verdict.report;
    // The gate speaks of a first run; say what really happened.
    let not_compared = match previous {
        Some(v) => format!("champion {v} is not compared"),
        None => "there was no champion".to_string(),
    };
    for r in &mut gate_report.reasons {
        *r = r.replace(
            gate::FIRST_RUN_REASON,
            &format!("models reset ({reason}): the first-run policy applies and {not_compared}"),
        );
    }
    outcome.candidate = gate_report.candidate.clone();
    let Some(k) = verdict.deploy else {
        let why = if gate_report.reasons.is_empty() {
            "no candidate could be trained and scored".to_string()
        } else {
            gate_report.reasons.join("; ")
        };
        outcome.gate = gate_report;
        outcome.refused = Some(format!("no candidate clears the floor, so nothing changed: {why}"));
        return Ok(outcome);
    };
    let winner = scored[contenders[k].0].as_ref().expect("a contender was scored");

    // Deploy, recorded as a reset.
    let stage = stages.start("deploy", "deploying the reset champion");
    let card = model_card(config, &run_id, winner, &split.train, &train_hash, clock.now());
    let version = {
        let lock = registry.lock()?;
        registry.reset(&lock, &winner.bytes, card, reason, clock.now())?
    };
    stages.finish(stage, None);
    gate_report.deployed_version = Some(version);
    gate_report.reasons.extend(recovered.iter().cloned());
    outcome.deployed_version = Some(version);

    // The run, recorded like a nightly run.
    let quarantine_path = keep_quarantine(aside.path(), &report_dir)?;
    let mut quality_report = quality.report.clone();
    quality_report.quarantine_path = quarantine_path.map(|p| p.display().to_string());
    let report = RunReport {
        schema_version: REPORT_SCHEMA_VERSION,
        run_id: run_id.clone(),
        pipeline: config.name.clone(),
        config_path: config.source.display().to_string(),
        config_hash: config.hash.clone(),
        started_at,
        finished_at: started_at + chrono::Duration::from_std(started.elapsed()).unwrap_or_default(),
        status: RunStatus::Succeeded,
        message: Some(format!("models reset: {reason}")),
        data: Some(quality.data.clone()),
        quality: Some(quality_report),
        split: Some(split.summary(train_hash)),
        candidates: outcome.candidates.clone(),
        champion: None,
        gate: gate_report.clone(),
        estimate: None,
        realised_estimates: Vec::new(),
        importance: None,
        patterns: None,
        stages: stages.timings,
        report_dir: report_dir.display().to_string(),
    };
    let (report_path, mut recent) = record(config, history, &report)?;
    outcome.report_path = Some(report_path);
    outcome.gate = gate_report;

    // The health check, over the history with this run as the newest.
    let policy = HealthPolicy::default();
    recent.reverse();
    recent.truncate(policy.window);
    outcome.health = Some(health::score(&policy, &recent, config.patterns.is_some(), clock.now()));
    for c in &mut outcome.candidates {
        c.curves = None;
    }
    Ok(outcome)
}

/// Moves the quarantine written aside (if any) into the run's report directory.
fn keep_quarantine(aside: &Path, report_dir: &Path) -> Result<Option<PathBuf>> {
    let from = aside.join("quarantine.parquet");
    if !from.exists() {
        return Ok(None);
    }
    let to = report_dir.join("quarantine.parquet");
    std::fs::create_dir_all(report_dir)
        .map_err(|e| caretaker_core::fs::FsError::new("create directory", report_dir, e))?;
    if caretaker_core::fs::rename_synced(&from, &to).is_err() {
        // Another file system: copy, then sync.
        std::fs::copy(&from, &to).map_err(|e| caretaker_core::fs::FsError::new("copy", &from, e))?;
        caretaker_core::fs::sync_file(&to)?;
    }
    Ok(Some(to))
}
