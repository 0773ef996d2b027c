//! The Prometheus textfile of a run, for node_exporter's textfile collector.
//!
//! One file per pipeline, replaced atomically after every run (the collector reads `*.prom`
//! files; our temporary file is `.caretaker-tmp-*`, so a half-written file is never collected).
//! Every series carries the `pipeline` label, so several pipelines can share one collector
//! directory. The metrics are built with the `prometheus` crate and its text encoder, which
//! escapes label values (model and feature names come from user config and data).
//!
//! What an operator alerts on: `caretaker_run_success == 0`, a stale
//! `caretaker_run_timestamp_seconds`, `caretaker_quality_score < caretaker_quality_min_score`,
//! `caretaker_drift_alarms > 0`, a falling `caretaker_model_f1{role="champion"}`.

use caretaker_core::fs::FsError;
use caretaker_core::metrics::Metric;
use caretaker_core::report::{GateOutcome, RunReport, RunStatus};
use prometheus::{Gauge, GaugeVec, Opts, Registry};
use std::collections::HashMap;
use std::path::Path;

/// The metrics of one run, in the Prometheus text format (version 0.0.4).
pub fn render(report: &RunReport) -> String {
    let labels = HashMap::from([("pipeline".to_string(), report.pipeline.clone())]);
    let registry = Registry::new_custom(Some("caretaker".into()), Some(labels)).expect("a valid registry");
    let metrics = Metrics { registry: &registry };

    let succeeded = report.status == RunStatus::Succeeded;
    metrics.gauge(
        "run_success",
        "1 if every stage of the last run ran (a kept champion is a success), 0 if not.",
        b(succeeded),
    );
    let status = metrics.vec("run_status", "The last run's status: 1 for the status it ended in.", &["status"]);
    for s in [RunStatus::Succeeded, RunStatus::QualityFailed, RunStatus::Failed] {
        status.with_label_values(&[s.name()]).set(b(s == report.status));
    }
    metrics.gauge(
        "run_timestamp_seconds",
        "When the last run finished, in seconds since the Unix epoch (alert when it is too old).",
        report.finished_at.timestamp_millis() as f64 / 1000.0,
    );
    metrics.gauge(
        "run_duration_seconds",
        "Wall time of the last run.",
        (report.finished_at - report.started_at).num_milliseconds() as f64 / 1000.0,
    );
    metrics.gauge(
        "maintenance_mode",
        "1 if maintenance mode was on at the last run's deploy step (nothing was deployed), 0 if not.",
        b(report.gate.maintenance.is_some()),
    );
    if let Some(mode) = &report.gate.maintenance {
        metrics.gauge(
            "maintenance_held_seconds",
            "How long maintenance mode had been on when the last run finished.",
            (report.finished_at - mode.since).num_milliseconds().max(0) as f64 / 1000.0,
        );
    }
    let stages = metrics.vec("stage_duration_seconds", "Wall time of each stage of the last run.", &["stage"]);
    for s in &report.stages {
        stages.with_label_values(&[s.stage.as_str()]).set(s.seconds);
    }
    if report.stages.iter().any(|s| s.peak_rss_bytes.is_some()) {
        let peaks = metrics.vec(
            "stage_peak_rss_bytes",
            "Peak resident memory of the process during each stage of the last run.",
            &["stage"],
        );
        for s in &report.stages {
            if let Some(p) = s.peak_rss_bytes {
                peaks.with_label_values(&[s.stage.as_str()]).set(p as f64);
            }
        }
    }

    if let Some(q) = &report.quality {
        metrics.gauge("quality_score", "The 0-1 quality score of the last run's data.", q.score);
        metrics.gauge("quality_min_score", "The score below which a run stops before training.", q.min_score);
        metrics.gauge("quality_passed", "1 if the data passed the quality stage.", b(q.passed));
        metrics.gauge("quality_rows", "Rows read by the quality stage.", q.rows as f64);
        metrics.gauge(
            "quarantined_rows",
            "Rows that failed a row-level check and went to quarantine.",
            q.quarantined_rows as f64,
        );
        metrics.gauge(
            "quality_checks_failed",
            "Quality checks that failed in the last run.",
            q.checks.iter().filter(|c| !c.passed).count() as f64,
        );
        if !q.drift.is_empty() {
            metrics.gauge("drift_features", "Features whose drift was measured.", q.drift.len() as f64);
            metrics.gauge(
                "drift_alarms",
                "Features whose drift is above a threshold.",
                q.drift.iter().filter(|d| d.alarm).count() as f64,
            );
            let psi = metrics.vec("feature_psi", "Population stability index of each feature.", &["feature"]);
            let alarm =
                metrics.vec("feature_drift_alarm", "1 if the feature's drift is above a threshold.", &["feature"]);
            for d in &q.drift {
                psi.with_label_values(&[d.feature.as_str()]).set(d.psi);
                alarm.with_label_values(&[d.feature.as_str()]).set(b(d.alarm));
            }
        }
    }

    // Models: the champion re-scored on the holdout, and every candidate.
    let vecs: Vec<(caretaker_core::metrics::Metric, GaugeVec)> = caretaker_core::metrics::Metric::ALL
        .iter()
        .map(|&m| {
            (
                m,
                metrics.vec(
                    &format!("model_{m}"),
                    &format!("{m} of each model on the last run's holdout."),
                    &["model", "role"],
                ),
            )
        })
        .collect();
    let set = |name: &str, role: &str, m: &caretaker_core::metrics::ClassificationMetrics| {
        for (metric, vec) in &vecs {
            if let Some(v) = metric.value(m) {
                vec.with_label_values(&[name, role]).set(v);
            }
        }
    };
    if let Some(c) = &report.champion
        && let Some(m) = &c.metrics
    {
        set(&c.name, "champion", m);
    }
    for c in &report.candidates {
        if let Some(m) = &c.metrics {
            set(&c.name, "candidate", m);
        }
    }
    // Estimates on the rows awaiting their label.
    if let Some(q) = report.quality.as_ref().filter(|q| q.awaiting_label_rows > 0 || report.estimate.is_some()) {
        metrics.gauge(
            "awaiting_label_rows",
            "Rows of the last run without a label yet, newer than dataset.label_delay.",
            q.awaiting_label_rows as f64,
        );
    }
    if let Some(e) = &report.estimate {
        metrics.gauge(
            "estimate_alarm",
            "1 if the champion's primary metric estimated on the rows awaiting their label fell below the same estimate on its holdout by more than quality.estimated_drop_alarm, and below the estimate's band.",
            b(e.alarm),
        );
        if let Some(d) = e.drop {
            metrics.gauge(
                "estimated_drop",
                "The champion's primary metric estimated on the holdout minus its estimate on the rows awaiting their label.",
                d,
            );
        }
        let vecs: Vec<(Metric, GaugeVec)> = caretaker_core::report::EstimatedMetrics::METRICS
            .iter()
            .map(|&m| {
                let help = format!("{m} of each model estimated on the last run's rows awaiting their label.");
                (m, metrics.vec(&format!("model_estimated_{m}"), &help, &["model", "role"]))
            })
            .collect();
        let models = report
            .champion
            .iter()
            .map(|c| (c.name.as_str(), "champion", c.estimated.as_ref()))
            .chain(report.candidates.iter().map(|c| (c.name.as_str(), "candidate", c.estimated.as_ref())));
        for (name, role, estimated) in models {
            for (metric, vec) in &vecs {
                if let Some(v) = estimated.and_then(|e| e.get(*metric)) {
                    vec.with_label_values(&[name, role]).set(v.value);
                }
            }
        }
    }
    // The newest estimate realised in this run: what the champion was estimated at, against what
    // came true once the labels arrived.
    if let Some(r) = report.realised_estimates.iter().filter(|r| r.realised.is_some()).max_by_key(|r| r.to) {
        let m = r.metric.name();
        metrics.gauge(
            &format!("realised_estimated_{m}"),
            &format!(
                "The champion's {m} estimated before the labels arrived, for the newest estimate the last run realised."
            ),
            r.estimate.value,
        );
        metrics.gauge(
            &format!("realised_{m}"),
            &format!("The same model's {m} on the same rows once their labels arrived."),
            r.realised.unwrap_or_default(),
        );
        metrics.gauge(
            "realised_within_band",
            "1 if that realised value fell inside the estimate's band.",
            b(r.within_band == Some(true)),
        );
    }
    metrics.gauge(
        "candidates_failed",
        "Candidates that failed to train or predict in the last run.",
        report.candidates.iter().filter(|c| c.error.is_some()).count() as f64,
    );
    if let Some(c) = &report.champion {
        let info = metrics.vec(
            "champion_info",
            "The champion the last run found in the registry (before its gate).",
            &["version", "model", "family"],
        );
        info.with_label_values(&[c.version.to_string().as_str(), c.name.as_str(), c.family.as_str()]).set(1.0);
        metrics.gauge(
            "champion_version",
            "The champion's version number before the last run's gate.",
            c.version.0 as f64,
        );
        metrics.gauge("champion_scorable", "1 if the champion could be loaded and scored.", b(c.error.is_none()));
    }

    let gate = &report.gate;
    let decision =
        metrics.vec("gate_decision", "The last run's gate decision: 1 for the decision taken.", &["decision"]);
    for d in [GateOutcome::Deployed, GateOutcome::KeptChampion, GateOutcome::Skipped] {
        decision.with_label_values(&[d.name()]).set(b(d == gate.decision));
    }
    let deployed = gate.decision == GateOutcome::Deployed && gate.deployed_version.is_some();
    metrics.gauge("deployed", "1 if the last run deployed a new champion.", b(deployed));
    if let (true, Some(v)) = (deployed, gate.deployed_version) {
        metrics.gauge("deployed_version", "The version the last run deployed.", v.0 as f64);
    }

    if let Some(p) = &report.patterns {
        metrics.gauge("patterns_before", "Patterns in the store before cleanup.", p.before as f64);
        metrics.gauge("patterns_deleted", "Patterns deleted by the last run.", p.deleted as f64);
        metrics.gauge("patterns_archived", "Patterns archived by the last run.", p.archived as f64);
        metrics.gauge("patterns_kept", "Patterns kept in the store.", p.kept as f64);
        metrics.gauge("pattern_store_bytes", "Size of the pattern store after cleanup.", p.store_bytes_after as f64);
        metrics.gauge(
            "pattern_store_bytes_freed",
            "Bytes the last cleanup freed in the store.",
            p.store_bytes_before.saturating_sub(p.store_bytes_after) as f64,
        );
    }

    let mut out = String::new();
    prometheus::TextEncoder::new().encode_utf8(&registry.gather(), &mut out).expect("gauges encode");
    out
}

/// Writes the run's textfile to `path`, atomically, readable by all (node_exporter often runs
/// as its own user).
pub fn write(report: &RunReport, path: &Path) -> Result<(), FsError> {
    crate::write_shared(path, render(report).as_bytes())
}

fn b(v: bool) -> f64 {
    if v { 1.0 } else { 0.0 }
}

struct Metrics<'a> {
    registry: &'a Registry,
}

impl Metrics<'_> {
    fn gauge(&self, name: &str, help: &str, value: f64) {
        let g = Gauge::with_opts(Opts::new(name, help)).expect("a valid gauge");
        g.set(value);
        self.registry.register(Box::new(g)).expect("each gauge registered once");
    }

    fn vec(&self, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
        let v = GaugeVec::new(Opts::new(name, help), labels).expect("a valid gauge family");
        self.registry.register(Box::new(v.clone())).expect("each gauge family registered once");
        v
    }
}
