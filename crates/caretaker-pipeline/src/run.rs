//! One nightly run.

use crate::candidates::{contenders, model_card, train_and_score};
use crate::progress::Stages;
use crate::split::split;
use crate::{Error, Result};
use caretaker_core::Clock;
use caretaker_core::config::PipelineConfig;
use caretaker_core::events::LabelledEvents;
use caretaker_core::ids::RunId;
use caretaker_core::lock::ProcessLock;
use caretaker_core::report::{ChampionReport, GateReport, QualityReport, REPORT_SCHEMA_VERSION, RunReport, RunStatus};
use caretaker_data::dataset::DatasetFiles;
use caretaker_evaluate::gate::{self, ChampionStanding, Contender};
use caretaker_evaluate::metrics::classification_metrics;
use caretaker_registry::Registry;
use caretaker_train::TrainedModel;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Show a spinner per stage on stderr.
    pub progress: bool,
}

pub struct RunOutcome {
    pub report: RunReport,
    pub report_path: PathBuf,
}

/// Removes the temporary files a run or reset killed mid-write left, once a minute old: the run
/// directories are also written by `caretaker quality` (which takes no run lock), and the reports
/// and state directories by other processes too (maintenance mode, the textfile); no live write
/// lasts a minute.
pub(crate) fn sweep_killed_writes(config: &PipelineConfig) {
    let mut removed = Vec::new();
    if let Ok(runs) = std::fs::read_dir(&config.output.reports) {
        for run in runs.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_dir())) {
            removed.extend(caretaker_core::fs::sweep_temp_files(&run.path(), Duration::from_secs(60)));
        }
    }
    for dir in [&config.output.reports, &config.output.state] {
        removed.extend(caretaker_core::fs::sweep_temp_files(dir, Duration::from_secs(60)));
    }
    for path in removed {
        tracing::warn!("removed {}, left by a process killed mid-write", path.display());
    }
}

/// Runs the whole nightly pipeline.
pub fn run(config: &PipelineConfig, clock: Clock, options: &RunOptions) -> Result<RunOutcome> {
    let started_at = clock.now();
    // Durations come from the monotonic clock: a fixed or replayed clock still times the run.
    let started = Instant::now();
    let run_id = RunId::new(started_at);
    let _lock = ProcessLock::acquire(
        &config.output.state.join("run.lock"),
        &format!("the pipeline {}", config.source.display()),
    )?;
    sweep_killed_writes(config);
    // The history first: a database that cannot be reached stops the run before anything is
    // trained or deployed, instead of after a deploy it could not record.
    let history = caretaker_history::History::of(&config.output)?;
    // The registry too: one in object storage that cannot be reached or read stops the run here.
    if let Some(registry) = Registry::existing(&config.output)? {
        registry.observe()?;
    }
    let report_dir = config.output.reports.join(run_id.as_str());
    let mut stages = Stages::new(options.progress);
    let mut report = RunReport {
        schema_version: REPORT_SCHEMA_VERSION,
        run_id: run_id.clone(),
        pipeline: config.name.clone(),
        config_path: config.source.display().to_string(),
        config_hash: config.hash.clone(),
        started_at,
        finished_at: started_at,
        status: RunStatus::Succeeded,
        message: None,
        data: None,
        quality: None,
        split: None,
        candidates: Vec::new(),
        champion: None,
        gate: GateReport::skipped("the run stopped before the gate"),
        estimate: None,
        realised_estimates: Vec::new(),
        importance: None,
        patterns: None,
        stages: Vec::new(),
        report_dir: report_dir.display().to_string(),
    };
    if let Err(e) = stages_of_the_run(config, &history, clock, &run_id, &report_dir, &mut stages, &mut report) {
        tracing::error!(error = %e, "the run failed");
        report.status = RunStatus::Failed;
        report.message = Some(e.to_string());
    }
    report.stages = stages.timings;
    report.finished_at = started_at + chrono::Duration::from_std(started.elapsed()).unwrap_or_default();
    let (report_path, _) = record(config, &history, &report)?;
    Ok(RunOutcome { report, report_path })
}

/// With `output.reports` in object storage: copies the run directories the bucket does not hold
/// yet (this run's, and any an earlier failed copy left), each `report.json` after the rest of
/// its directory. A failed copy is logged, not fatal: the run is recorded, the next run copies it.
pub(crate) fn copy_reports(config: &PipelineConfig) {
    let Some(url) = &config.output.reports_remote else { return };
    let copied = caretaker_objects::Bucket::open(url, &config.output.storage_options)
        .and_then(|bucket| bucket.upload_dir(&config.output.reports, "", &["report.json"], &[]));
    match copied {
        Ok(files) => tracing::info!(reports = %url, files, "copied the reports to object storage"),
        Err(e) => {
            tracing::error!(error = %e, "the reports were not copied to object storage; the next run tries again")
        }
    }
}

/// Writes report.json, records the run in the history, writes report.html with the trends of the
/// runs recorded so far and the Prometheus textfile. Returns report.json's path and the newest
/// runs (oldest first, this one last) the page's trends show.
pub(crate) fn record(
    config: &PipelineConfig,
    history: &caretaker_history::History,
    report: &RunReport,
) -> Result<(PathBuf, Vec<RunReport>)> {
    let report_path = caretaker_report::write_json(report)?;
    history.record(report)?;
    // The page's trends read the runs just recorded; the textfile is what node_exporter serves.
    // An older report the history cannot read costs the page its trends, not the run its page.
    let recent = history
        .recent_reports(&report.pipeline, Some(report.run_id.as_str()), caretaker_report::html::TREND_RUNS)
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "report.html shows no trends");
            Vec::new()
        });
    caretaker_report::write_html(report, &recent)?;
    caretaker_report::textfile::write(report, &config.output.metrics_textfile)?;
    copy_reports(config);
    Ok((report_path, recent))
}

fn stages_of_the_run(
    config: &PipelineConfig,
    history: &caretaker_history::History,
    clock: Clock,
    run_id: &RunId,
    report_dir: &Path,
    stages: &mut Stages,
    report: &mut RunReport,
) -> Result<()> {
    crate::example::ensure_example(config, clock.now())?;

    // Quality.
    let stage = stages.start("quality", "checking the training data");
    let quality = assess_quality(config, clock, report_dir)?;
    stages.finish(stage, Some(quality.report.rows));
    report.data = Some(quality.data);
    report.quality = Some(quality.report.clone());
    let awaiting = quality.awaiting;
    let Some(events) = quality.events.filter(|_| quality.report.passed) else {
        report.status = RunStatus::QualityFailed;
        report.message = Some(quality_failure(&quality.report));
        report.gate = GateReport::skipped("the data failed the quality stage: nothing was trained or deployed");
        return Ok(());
    };

    // Earlier estimates whose labels have arrived since, against what came true; the event times
    // of this run's rows awaiting their label, for the run that realises its estimate.
    if config.dataset.label_delay.is_some() {
        let stage = stages.start("realise", "scoring earlier estimates whose labels have arrived");
        let registry = Registry::of(&config.output)?;
        report.realised_estimates = crate::realised::realise(config, history, &registry, &events, clock.now());
        if let Some(awaiting) = awaiting.as_ref().filter(|a| !a.is_empty()) {
            crate::realised::keep_awaiting_times(report_dir, awaiting)?;
        }
        stages.finish(stage, Some(report.realised_estimates.iter().map(|r| r.labelled_rows).sum()));
    }

    // Split.
    let newest = report.data.as_ref().and_then(|d| d.newest_event).map(|t| t.timestamp_micros());
    let Some(split) = split(&events, newest, quality.sample, &config.training) else {
        report.gate = GateReport::skipped("no clean rows to train on");
        return Ok(());
    };
    // The split holds copies of the rows it keeps: the clean rows are not needed past here.
    drop(events);
    let train_hash = split.train.content_hash();
    report.split = Some(split.summary(train_hash.clone()));
    if let Some(reason) = too_little_data(&split.train, &split.holdout, config.training.min_rows) {
        report.gate = GateReport::skipped(format!("training skipped: {reason}"));
        return Ok(());
    }

    // Retrain and evaluate the candidates.
    let stage = stages.start("retrain", "fitting the candidates");
    let (candidates, scored) = train_and_score(config, &split);
    report.candidates = candidates;
    stages.finish(stage, Some(split.train.len() as u64));

    // The champion, re-scored on the same holdout.
    let stage = stages.start("evaluate", "scoring the champion on the holdout");
    let registry = Registry::of(&config.output)?;
    // The champion as read now is the one the candidates are weighed against: the deploy below
    // replaces it only if it still serves then.
    let observed = registry.observe()?;
    let champion =
        score_champion(&registry, observed.pointer.as_ref(), &split.holdout, awaiting.as_ref(), config.training.seed);
    report.champion = champion.as_ref().map(|(c, _)| c.clone());
    if let Some(awaiting) = &awaiting {
        for (candidate, scored) in report.candidates.iter_mut().zip(&scored) {
            if let Some(s) = scored {
                candidate.estimated = estimate_on(&s.model, awaiting, config.training.seed)
                    .map_err(|e| tracing::warn!(candidate = %candidate.name, error = %e, "no estimate"))
                    .ok()
                    .flatten();
            }
        }
        let holdout_p = champion.as_ref().and_then(|(_, p)| p.as_deref());
        report.estimate = Some(estimate_report(config, awaiting, report.champion.as_ref(), holdout_p));
    }
    stages.finish(stage, Some(split.holdout.len() as u64));

    // Gate.
    let contenders = contenders(config, &scored);
    let champion_version = report.champion.as_ref().map(|c| c.version.to_string()).unwrap_or_default();
    let standing = match &champion {
        None => ChampionStanding::None,
        Some((ChampionReport { metrics: Some(m), .. }, Some(p))) => ChampionStanding::Scored {
            version: &champion_version,
            scored: Contender { name: "champion", metrics: m, probabilities: p, predict_micros_per_row: None },
        },
        Some((c, _)) => ChampionStanding::Unscorable {
            version: &champion_version,
            reason: c.error.as_deref().unwrap_or("no metrics"),
        },
    };
    let only: Vec<Contender> = contenders.iter().map(|(_, c)| *c).collect();
    let slices = caretaker_evaluate::slices::define(&split.holdout, &config.gate.slices);
    let verdict = gate::decide(&config.gate, &split.holdout.labels, &slices, standing, &only);
    let mut gate_report = verdict.report;

    // Which features the gate's candidate and the champion lean on.
    let stage = stages.start("importance", "measuring permutation importance");
    let rows = crate::importance::sample(&split.holdout, config.training.seed);
    let metric = config.gate.primary_metric;
    let measure = |model: &TrainedModel| {
        crate::importance::importances(model, &rows, metric, config.training.seed)
            .map_err(|e| tracing::warn!(error = %e, "no permutation importance"))
            .ok()
            .flatten()
    };
    let best = verdict.best.map(|k| (contenders[k].1.name, scored[contenders[k].0].as_ref().expect("a contender")));
    let candidate = best.and_then(|(_, s)| measure(&s.model));
    let champion_model = report
        .champion
        .as_ref()
        .filter(|c| c.error.is_none())
        .and_then(|c| registry.load(c.version).ok())
        .and_then(|(_, bytes)| TrainedModel::from_bytes(&bytes).ok());
    let champion_importance = champion_model.as_ref().and_then(measure);
    report.importance = crate::importance::report(
        metric,
        rows.len() as u64,
        config.training.seed,
        best.map(|(name, _)| name),
        candidate,
        champion_importance,
    );
    stages.finish(stage, Some(rows.len() as u64));
    if let Some(c) = &report.champion
        && c.trained_on_hash.as_deref() == Some(train_hash.as_str())
    {
        gate_report.reasons.push(format!(
            "the training data is unchanged since champion {} was trained (same content hash)",
            c.version
        ));
    }

    // Deploy, unless maintenance mode holds deploys back.
    let (maintenance, recovered) = caretaker_core::maintenance::current_live(&config.output.state)
        .map_err(|e| Error::Other { path: config.output.state.clone(), reason: e.to_string() })?;
    // What killed runners left: their maintenance mode and the process groups they started.
    let left_behind = recovered.map(|m| m.recovered_note()).into_iter();
    for note in left_behind.chain(caretaker_core::children::sweep(&config.output.state)) {
        tracing::warn!("{note}");
        gate_report.reasons.push(note);
    }
    gate_report.maintenance = maintenance.clone();
    if let (Some(_), Some(mode)) = (verdict.deploy, &maintenance) {
        gate_report.decision = caretaker_core::report::GateOutcome::KeptChampion;
        gate_report.reasons.insert(
            0,
            format!(
                "maintenance mode is on (since {}, by {}: {}): the gate chose {} but nothing was deployed",
                mode.since.format("%Y-%m-%d %H:%M UTC"),
                mode.by,
                mode.reason,
                gate_report.candidate.as_deref().unwrap_or("a candidate")
            ),
        );
    }
    if let Some(k) = verdict.best {
        let winner = scored[contenders[k].0].as_ref().expect("a contender was scored");
        let card = model_card(config, run_id, winner, &split.train, &train_hash, clock.now());
        let deploy = verdict.deploy.is_some() && maintenance.is_none();
        if deploy || config.registry.keep_challengers {
            let stage =
                stages.start("deploy", if deploy { "deploying the new champion" } else { "storing the challenger" });
            let lock = registry.lock()?;
            if deploy {
                let reason = gate_report.reasons.first().cloned().unwrap_or_default();
                match registry.deploy_over(&lock, &observed, &winner.bytes, card, &reason, clock.now()) {
                    Ok(version) => gate_report.deployed_version = Some(version),
                    // Another run (another machine) or an operator changed the champion since it
                    // was scored: this candidate never faced the one serving now.
                    Err(changed @ caretaker_registry::Error::ChampionChanged { .. }) => {
                        tracing::warn!("{changed}");
                        gate_report.decision = caretaker_core::report::GateOutcome::KeptChampion;
                        gate_report.reasons.insert(0, changed.to_string());
                    }
                    Err(e) => return Err(e.into()),
                }
            } else {
                let version = registry.store(&lock, &winner.bytes, card, clock.now())?;
                gate_report.reasons.push(format!(
                    "{} is stored as {version}, not deployed: `caretaker models promote {version} --reason ...` deploys it",
                    gate_report.candidate.as_deref().unwrap_or("the candidate")
                ));
            }
            for (version, bytes) in registry.prune(&lock, config.registry.keep_last)? {
                tracing::info!(%version, bytes, "registry retention removed a version");
            }
            stages.finish(stage, None);
        }
    }
    report.gate = gate_report;

    // Patterns.
    if let Some(policy) = &config.patterns {
        let stage = stages.start("patterns", "mining, counting and cleaning up patterns");
        let discovery = match policy.discovery.enabled {
            true => Some(caretaker_patterns::discover::run(policy, &split.train, &split.holdout, clock.now())?),
            false => None,
        };
        let mut patterns = caretaker_patterns::cleanup::run(policy, clock.now(), run_id.as_str())?;
        patterns.discovery = discovery;
        stages.finish(stage, Some(patterns.before));
        report.patterns = Some(patterns);
    }
    Ok(())
}

pub(crate) fn too_little_data(train: &LabelledEvents, holdout: &LabelledEvents, min_rows: usize) -> Option<String> {
    if train.len() < min_rows {
        return Some(format!("{} training rows, fewer than training.min_rows = {min_rows}", train.len()));
    }
    let positives = train.positives();
    if positives == 0 || positives == train.len() {
        return Some(format!("the training rows hold one class only ({positives} positives of {})", train.len()));
    }
    if holdout.is_empty() {
        return Some("the holdout is empty: no events in the newest training.holdout_days".into());
    }
    None
}

pub(crate) fn quality_failure(q: &QualityReport) -> String {
    let failed: Vec<String> = q
        .checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| match &c.column {
            Some(col) => format!("{} {col} ({})", c.check, c.detail),
            None => format!("{} ({})", c.check, c.detail),
        })
        .collect();
    format!(
        "quality score {:.3} is below quality.min_score {:.3}{}",
        q.score,
        q.min_score,
        if failed.is_empty() { String::new() } else { format!("; failed: {}", failed.join(", ")) }
    )
}

/// The champion's report and, when it could be scored, its holdout probabilities.
/// Draws of the labels behind an estimate's band, and the band's confidence.
const ESTIMATE_DRAWS: u32 = 200;
const ESTIMATE_CONFIDENCE: f64 = 0.95;

/// `model`'s metrics estimated on the rows awaiting their label; `None` without such rows.
fn estimate_on(
    model: &TrainedModel,
    awaiting: &LabelledEvents,
    seed: u64,
) -> std::result::Result<Option<caretaker_core::report::EstimatedMetrics>, String> {
    let p = model.predict_proba(awaiting).map_err(|e| e.to_string())?;
    Ok(caretaker_evaluate::estimate::estimate(&p, model.threshold, ESTIMATE_DRAWS, ESTIMATE_CONFIDENCE, seed))
}

/// The champion's estimate against its realised value, and the alarm.
fn estimate_report(
    config: &PipelineConfig,
    awaiting: &LabelledEvents,
    champion: Option<&ChampionReport>,
    holdout_probabilities: Option<&[f64]>,
) -> caretaker_core::report::EstimateReport {
    use caretaker_core::metrics::Metric;
    let primary = config.gate.primary_metric;
    let metric =
        if caretaker_core::report::EstimatedMetrics::METRICS.contains(&primary) { primary } else { Metric::F1 };
    let realised = champion.and_then(|c| c.metrics.as_ref()).and_then(|m| metric.value(m));
    let estimated = champion.and_then(|c| c.estimated.as_ref()).and_then(|e| e.get(metric));
    // The baseline is the same estimator on the labelled holdout, so that the champion's own
    // miscalibration, present in both, does not raise the alarm by itself.
    let baseline = champion.and_then(|c| c.metrics.as_ref()).zip(holdout_probabilities).and_then(|(m, p)| {
        caretaker_evaluate::estimate::estimate(
            p,
            m.threshold,
            ESTIMATE_DRAWS,
            ESTIMATE_CONFIDENCE,
            config.training.seed,
        )
        .and_then(|e| e.get(metric))
        .map(|v| v.value)
    });
    let drop = baseline.zip(estimated).map(|(b, e)| b - e.value);
    let threshold = config.quality.estimated_drop_alarm;
    let note = match (champion, estimated) {
        _ if awaiting.is_empty() => Some("no row awaits its label".to_string()),
        (None, _) => Some("there is no champion to estimate".to_string()),
        (Some(c), None) if c.error.is_some() => Some(format!("champion {} cannot be scored", c.version)),
        (Some(_), None) => Some(format!("{metric} cannot be estimated on these rows")),
        _ if metric != primary => Some(format!("{primary} cannot be estimated without labels: {metric} is")),
        _ => None,
    };
    let micros = |t: Option<&i64>| t.and_then(|&t| chrono::DateTime::from_timestamp_micros(t));
    caretaker_core::report::EstimateReport {
        rows: awaiting.len() as u64,
        from: micros(awaiting.timestamps.iter().min()),
        to: micros(awaiting.timestamps.iter().max()),
        metric,
        champion_realised: realised,
        champion_holdout_estimate: baseline,
        champion_estimated: estimated,
        drop,
        alarm_threshold: threshold,
        // A drop the band explains (few rows, a wide band) is label noise, not an alarm.
        alarm: drop.is_some_and(|d| d > threshold) && baseline.zip(estimated).is_some_and(|(b, e)| e.high < b),
        note,
    }
}

fn score_champion(
    registry: &Registry,
    pointer: Option<&caretaker_registry::ChampionPointer>,
    holdout: &LabelledEvents,
    awaiting: Option<&LabelledEvents>,
    seed: u64,
) -> Option<(ChampionReport, Option<Vec<f64>>)> {
    let pointer = pointer?;
    let version = pointer.version;
    let mut report = ChampionReport {
        version,
        name: String::new(),
        family: String::new(),
        metrics: None,
        curves: None,
        error: None,
        trained_on_hash: None,
        estimated: None,
    };
    let loaded = registry.load(version).map_err(|e| e.to_string()).and_then(|(card, bytes)| {
        report.name = card.name.clone();
        report.family = card.family.clone();
        report.trained_on_hash = Some(card.train_hash.clone());
        let model = TrainedModel::from_bytes(&bytes).map_err(|e| e.to_string())?;
        let p = model.predict_proba(holdout).map_err(|e| e.to_string())?;
        if let Some(awaiting) = awaiting {
            // Without an estimate the champion still defends its place on the holdout.
            report.estimated = estimate_on(&model, awaiting, seed)
                .map_err(|e| tracing::warn!(error = %e, "no estimate of the champion"))
                .ok()
                .flatten();
        }
        Ok((classification_metrics(&holdout.labels, &p, model.threshold), p))
    });
    match loaded {
        Ok((m, p)) => {
            report.metrics = Some(m);
            report.curves = Some(caretaker_evaluate::curves::curves(&holdout.labels, &p));
            Some((report, Some(p)))
        }
        Err(e) => {
            tracing::warn!(champion = %version, error = %e, "the champion cannot be scored");
            report.error = Some(e);
            Some((report, None))
        }
    }
}

/// The quality stage on the pipeline's dataset, its quarantine in `report_dir`.
pub(crate) fn assess_quality(
    config: &PipelineConfig,
    clock: Clock,
    report_dir: &Path,
) -> Result<caretaker_quality::QualityOutcome> {
    let files = dataset_files(config, clock.now())?;
    Ok(caretaker_quality::assess(&caretaker_quality::QualityInput {
        files: &files,
        spec: &config.dataset,
        policy: &config.quality,
        quarantine_path: &report_dir.join("quarantine.parquet"),
        now: clock.now(),
        state_dir: &config.output.state,
        sample: caretaker_quality::SampleSpec::of(&config.training),
    })?)
}

/// The files of the pipeline's dataset; for one in object storage, local copies of the objects a
/// run reads: the date partitions within the training window or the drift windows of the newest.
pub(crate) fn dataset_files(config: &PipelineConfig, now: chrono::DateTime<chrono::Utc>) -> Result<DatasetFiles> {
    let drift = &config.quality.drift;
    let days = config.training.window_days.max(drift.reference_days + drift.current_days) + 1;
    Ok(DatasetFiles::open(&config.dataset, &config.output.state, Some(days), now.date_naive())?)
}

/// The quality stage over `files` as a measurement: its quarantine and drift state go to
/// `scratch`, so the pipeline's state is left as it was (benchmarks, compaction's before and
/// after). A second call with the same `scratch` finds the drift bins the first one froze, as a
/// nightly run does.
pub(crate) fn assess_quality_in_scratch(
    config: &PipelineConfig,
    files: &DatasetFiles,
    now: chrono::DateTime<chrono::Utc>,
    scratch: &Path,
) -> Result<caretaker_quality::QualityOutcome> {
    Ok(caretaker_quality::assess(&caretaker_quality::QualityInput {
        files,
        spec: &config.dataset,
        policy: &config.quality,
        quarantine_path: &scratch.join("quarantine.parquet"),
        now,
        state_dir: scratch,
        sample: caretaker_quality::SampleSpec::of(&config.training),
    })?)
}

/// A temporary directory for [`assess_quality_in_scratch`].
pub(crate) fn scratch_dir() -> Result<tempfile::TempDir> {
    tempfile::tempdir().map_err(|e| Error::Other { path: std::env::temp_dir(), reason: e.to_string() })
}

/// The quality stage alone, as `caretaker quality` runs it.
pub struct QualityOnly {
    pub run_id: RunId,
    pub report: QualityReport,
    pub data: caretaker_core::report::DataSummary,
}

pub fn quality_only(config: &PipelineConfig, clock: Clock) -> Result<QualityOnly> {
    crate::example::ensure_example(config, clock.now())?;
    let run_id = RunId::new(clock.now());
    let report_dir = config.output.reports.join(run_id.as_str());
    let outcome = assess_quality(config, clock, &report_dir)?;
    let bytes = serde_json::to_vec_pretty(&outcome.report).expect("a quality report serialises");
    caretaker_core::fs::write_atomic(&report_dir.join("quality.json"), &bytes).map_err(Error::Fs)?;
    Ok(QualityOnly { run_id, report: outcome.report, data: outcome.data })
}
