//! Run reports: `report.json` (the [`RunReport`] of the core crate, a versioned schema),
//! `report.html` (one self-contained page with inline SVG plots), the Prometheus textfile for
//! node_exporter, the short summary printed after a run, and the comparison of two runs.
//!
//! Everything here is a function of the report (and, for the trends, of the pipeline's recent
//! reports from the history): the pipeline writes these files at the end of a run, and
//! `caretaker report RUN_ID --html FILE` renders the same page again from the history. Every file
//! is written atomically, so a crash never leaves a half-written report for a dashboard or a
//! textfile collector to choke on.
//!
//! ```no_run
//! # let report: caretaker_core::report::RunReport = todo!();
//! caretaker_report::write_json(&report).unwrap();
//! caretaker_report::write_html(&report, &[]).unwrap(); // `[]`: no history, no trends
//! caretaker_report::textfile::write(&report, "state/metrics.prom".as_ref()).unwrap();
//! ```

pub mod compare;
pub mod html;
pub mod plots;
pub mod table;
#[cfg(test)]
mod tests;
pub mod textfile;

use caretaker_core::fs::{FsError, write_atomic_with};
use caretaker_core::report::{GateOutcome, RunReport};
use caretaker_core::units::bytes;
use std::fmt::Write;
use std::path::{Path, PathBuf};

pub const REPORT_FILE: &str = "report.json";
pub const HTML_FILE: &str = "report.html";

/// Writes `report.json` into the report's directory; returns its path.
pub fn write_json(report: &RunReport) -> Result<PathBuf, FsError> {
    let path = Path::new(&report.report_dir).join(REPORT_FILE);
    let mut bytes = serde_json::to_vec_pretty(report).expect("a report serialises");
    bytes.push(b'\n');
    write_shared(&path, &bytes)?;
    Ok(path)
}

/// Writes a file others read (a dashboard, node_exporter, a colleague's browser) atomically,
/// readable by all (0644): the atomic-write helper's temporary file is private to its owner,
/// and a textfile collector running as another user could not read it.
pub(crate) fn write_shared(path: &Path, bytes: &[u8]) -> Result<(), FsError> {
    write_atomic_with(path, |file| {
        caretaker_core::fs::make_shared(file)?;
        std::io::Write::write_all(file, bytes)
    })
}

/// Writes `report.html` into the report's directory; returns its path. `history` holds the
/// pipeline's recent runs for the trend plots (see [`html::render`]).
pub fn write_html(report: &RunReport, history: &[RunReport]) -> Result<PathBuf, FsError> {
    let path = Path::new(&report.report_dir).join(HTML_FILE);
    write_html_to(report, history, &path)?;
    Ok(path)
}

/// Writes the page of `report` to `path`, atomically.
pub fn write_html_to(report: &RunReport, history: &[RunReport], path: &Path) -> Result<(), FsError> {
    write_shared(path, html::render(report, history).as_bytes())
}

/// Reads a `report.json`.
pub fn read_json(path: &Path) -> Result<RunReport, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("{}: not a caretaker report: {e}", path.display()))
}

fn metric(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.4}")).unwrap_or_else(|| "-".into())
}

/// The few lines a person reads after a run.
pub fn summary(report: &RunReport) -> String {
    let mut out = String::new();
    let seconds = (report.finished_at - report.started_at).num_milliseconds() as f64 / 1000.0;
    let _ = writeln!(
        out,
        "run       {}  pipeline {}  {} in {seconds:.1} s",
        report.run_id,
        report.pipeline,
        report.status.name()
    );
    if let Some(message) = &report.message {
        let _ = writeln!(out, "          {message}");
    }
    if let Some(q) = &report.quality {
        let _ = writeln!(
            out,
            "quality   score {:.3} (min {:.3}) {}; {} rows, {} quarantined{}{}",
            q.score,
            q.min_score,
            if q.passed { "passed" } else { "FAILED" },
            q.rows,
            q.quarantined_rows,
            if q.awaiting_label_rows > 0 {
                format!(", {} awaiting their label", q.awaiting_label_rows)
            } else {
                String::new()
            },
            q.quarantine_path.as_ref().map(|p| format!(" -> {p}")).unwrap_or_default()
        );
        for c in q.checks.iter().filter(|c| !c.passed) {
            let column = c.column.as_ref().map(|c| format!(" {c}")).unwrap_or_default();
            let _ = writeln!(
                out,
                "          failed {}{column}: {} ({})",
                c.check,
                c.detail,
                fmt_check(c.measured, c.threshold)
            );
        }
    }
    if let Some(split) = &report.split {
        let _ = writeln!(
            out,
            "models    trained on {} rows{}, holdout {} rows from {}",
            split.train_rows,
            split.sampled_from.map(|n| format!(" (training.max_rows: a sample of {n} clean rows)")).unwrap_or_default(),
            split.holdout_rows,
            split.holdout_from.format("%Y-%m-%d %H:%M")
        );
    }
    if report.champion.is_some() || !report.candidates.is_empty() {
        let _ = writeln!(
            out,
            "          {:<22} {:<20} {:>7} {:>9} {:>7} {:>8}",
            "model", "family", "f1", "precision", "recall", "accuracy"
        );
        if let Some(c) = &report.champion {
            let m = c.metrics.as_ref();
            let _ = writeln!(
                out,
                "          {:<22} {:<20} {:>7} {:>9} {:>7} {:>8}{}",
                format!("champion {} ({})", c.version, c.name),
                c.family,
                metric(m.map(|m| m.f1)),
                metric(m.map(|m| m.precision)),
                metric(m.map(|m| m.recall)),
                metric(m.map(|m| m.accuracy)),
                c.error.as_ref().map(|e| format!("  unscorable: {e}")).unwrap_or_default()
            );
        }
        for c in &report.candidates {
            let m = c.metrics.as_ref();
            let _ = writeln!(
                out,
                "          {:<22} {:<20} {:>7} {:>9} {:>7} {:>8}{}",
                c.name,
                c.family,
                metric(m.map(|m| m.f1)),
                metric(m.map(|m| m.precision)),
                metric(m.map(|m| m.recall)),
                metric(m.map(|m| m.accuracy)),
                c.error.as_ref().map(|e| format!("  failed: {e}")).unwrap_or_default()
            );
        }
    }
    if let Some(e) = &report.estimate {
        let line = match (e.champion_estimated, e.champion_holdout_estimate, e.drop) {
            (Some(v), Some(b), Some(d)) => format!(
                "champion {} {:.4} [{:.4}, {:.4}] on {} rows awaiting their label, {b:.4} estimated on the holdout ({d:+.4} drop){}",
                e.metric,
                v.value,
                v.low,
                v.high,
                e.rows,
                if e.alarm { format!("  ALARM: above {:.4}", e.alarm_threshold) } else { String::new() }
            ),
            _ => format!("{} rows await their label: {}", e.rows, e.note.as_deref().unwrap_or("no estimate")),
        };
        let _ = writeln!(out, "estimate  {line}");
    }
    for r in &report.realised_estimates {
        let _ = writeln!(out, "realised  {}", realised_line(r));
    }
    let gate = &report.gate;
    let decision = match (gate.decision, gate.deployed_version) {
        (GateOutcome::Deployed, Some(v)) => format!("deployed {} as {v}", gate.candidate.as_deref().unwrap_or("?")),
        (d, _) => d.name().to_string(),
    };
    let _ = writeln!(out, "gate      {decision}");
    for reason in &gate.reasons {
        let _ = writeln!(out, "          {reason}");
    }
    if let Some(p) = &report.patterns {
        let _ = writeln!(
            out,
            "patterns  {} before: {} deleted, {} archived, {} kept; store {} -> {}",
            p.before,
            p.deleted,
            p.archived,
            p.kept,
            bytes(p.store_bytes_before),
            bytes(p.store_bytes_after)
        );
        if let Some(d) = &p.discovery {
            let _ = writeln!(
                out,
                "          mined {} rules: {} new, {} updated, {} already archived; {} patterns matched new events ({} uses counted){}",
                d.mined,
                d.discovered,
                d.updated,
                d.already_archived,
                d.matched,
                d.uses_counted,
                d.holdout_precision.map(|p| format!("; holdout precision {p:.3}")).unwrap_or_default()
            );
        }
    }
    let _ = writeln!(out, "report    {}", Path::new(&report.report_dir).join(REPORT_FILE).display());
    let _ = writeln!(out, "          {}", Path::new(&report.report_dir).join(HTML_FILE).display());
    out
}

fn fmt_check(measured: f64, threshold: f64) -> String {
    if threshold.is_finite() {
        format!("measured {measured:.4}, threshold {threshold:.4}")
    } else {
        format!("measured {measured}")
    }
}

/// An earlier estimate against what came true, in one line: the terminal summary's and `runs
/// compare`'s wording.
pub fn realised_line(r: &caretaker_core::report::RealisedEstimate) -> String {
    let estimated = format!(
        "{} {} estimated {:.4} [{:.4}, {:.4}] on {} rows by run {}",
        r.version, r.metric, r.estimate.value, r.estimate.low, r.estimate.high, r.estimated_rows, r.run_id
    );
    match (r.realised, r.within_band) {
        (Some(v), Some(inside)) => format!(
            "{estimated}; realised {v:.4} on {} labelled rows ({:+.4}, {} the band)",
            r.labelled_rows,
            v - r.estimate.value,
            if inside { "within" } else { "outside" }
        ),
        _ => format!("{estimated}; not realised: {}", r.note.as_deref().unwrap_or("no value")),
    }
}
