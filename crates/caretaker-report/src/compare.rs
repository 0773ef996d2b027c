//! `runs compare A B`: what changed between two runs, as deltas `B - A`.
//!
//! Models are matched by name (candidates) and by role (the champion, whichever version it was in
//! each run); features by name. A value one run does not have is shown as absent, never as 0.

use crate::table::{ModelRole, RunModelRow, model_rows};
use caretaker_core::metrics::Metric;
use caretaker_core::report::RunReport;
use serde::Serialize;
use std::fmt::Write;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunComparison {
    pub a: RunSide,
    pub b: RunSide,
    pub quality_score: Delta,
    pub models: Vec<ModelDelta>,
    /// Quality checks whose verdict or value changed.
    pub checks: Vec<CheckDelta>,
    /// Features whose drift was measured in either run.
    pub drift: Vec<DriftDelta>,
    /// Slices of the holdout scored in either run, when both runs scored them by the same metric.
    pub slices: Vec<SliceDelta>,
    /// The champion's estimate on the rows awaiting their label, when either run made one.
    pub estimate: Option<EstimateDelta>,
    /// Earlier estimates each run set against what came true (`realised_estimates`).
    pub realised_in_a: Vec<caretaker_core::report::RealisedEstimate>,
    pub realised_in_b: Vec<caretaker_core::report::RealisedEstimate>,
}

/// The champion's primary metric estimated on the rows awaiting their label, and realised on the
/// holdout, in each run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EstimateDelta {
    pub metric: String,
    pub awaiting_rows: Delta,
    pub champion_estimated: Delta,
    pub champion_realised: Delta,
    pub alarm_a: Option<bool>,
    pub alarm_b: Option<bool>,
}

/// One slice of the holdout (`feature=value`, the value as run B names it): the champion's and
/// the gate's candidate's primary metric there in each run. Numeric bins are matched by their
/// number, not their edges.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SliceDelta {
    pub slice: String,
    pub metric: String,
    pub champion: Delta,
    pub candidate: Delta,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSide {
    pub run_id: String,
    pub started_at: String,
    pub status: String,
    pub gate_decision: String,
    pub deployed_version: Option<String>,
    pub champion_version: Option<String>,
}

/// A value in run A, in run B, and `b - a` when both exist.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Delta {
    pub a: Option<f64>,
    pub b: Option<f64>,
    pub delta: Option<f64>,
    /// Whether B is better than A (for metrics with a direction; `None` when unchanged or unknown).
    pub improved: Option<bool>,
}

impl Delta {
    fn new(a: Option<f64>, b: Option<f64>, higher_is_better: Option<bool>) -> Delta {
        let delta = a.zip(b).map(|(a, b)| b - a);
        let improved = match (delta, higher_is_better) {
            (Some(d), Some(up)) if d != 0.0 => Some((d > 0.0) == up),
            _ => None,
        };
        Delta { a, b, delta, improved }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelDelta {
    /// The candidate's name, or `champion`.
    pub model: String,
    pub role: String,
    /// The champion's version (or the deployed candidate's) in each run.
    pub version_a: Option<String>,
    pub version_b: Option<String>,
    pub metrics: Vec<MetricDelta>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricDelta {
    pub metric: String,
    #[serde(flatten)]
    pub delta: Delta,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckDelta {
    pub check: String,
    pub column: Option<String>,
    pub passed_a: Option<bool>,
    pub passed_b: Option<bool>,
    pub measured: Delta,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriftDelta {
    pub feature: String,
    pub psi: Delta,
    pub alarm_a: Option<bool>,
    pub alarm_b: Option<bool>,
}

fn side(report: &RunReport) -> RunSide {
    RunSide {
        run_id: report.run_id.to_string(),
        started_at: report.started_at.to_rfc3339(),
        status: report.status.name().to_string(),
        gate_decision: report.gate.decision.name().to_string(),
        deployed_version: report.gate.deployed_version.map(|v| v.to_string()),
        champion_version: report.champion.as_ref().map(|c| c.version.to_string()),
    }
}

/// Metric names in display order: the gate's metrics in [`Metric::ALL`]'s order, then the rest
/// sorted.
fn ordered_metrics<'a>(names: impl Iterator<Item = &'a String>) -> Vec<String> {
    let mut all: Vec<String> = names.cloned().collect();
    all.sort();
    all.dedup();
    let mut out: Vec<String> =
        Metric::ALL.iter().map(|m| m.name()).filter(|m| all.iter().any(|n| n == m)).map(String::from).collect();
    out.extend(all.into_iter().filter(|n| Metric::from_name(n).is_none()));
    out
}

fn direction(metric: &str) -> Option<bool> {
    Metric::from_name(metric).map(Metric::higher_is_better)
}

pub fn compare(a: &RunReport, b: &RunReport) -> RunComparison {
    let rows_a: Vec<RunModelRow> = model_rows(a).into_iter().filter(|r| r.model.is_some()).collect();
    let rows_b: Vec<RunModelRow> = model_rows(b).into_iter().filter(|r| r.model.is_some()).collect();
    let mut names: Vec<(String, ModelRole)> = Vec::new();
    for r in rows_a.iter().chain(&rows_b) {
        let key = (r.series_name().expect("a model row"), r.role.expect("a model row"));
        if !names.contains(&key) {
            names.push(key);
        }
    }
    let find = |rows: &[RunModelRow], name: &str| -> Option<RunModelRow> {
        rows.iter().find(|r| r.series_name().as_deref() == Some(name)).cloned()
    };
    let models = names
        .into_iter()
        .map(|(name, role)| {
            let ra = find(&rows_a, &name);
            let rb = find(&rows_b, &name);
            let metric_names =
                ordered_metrics(ra.iter().chain(rb.iter()).flat_map(|r| r.metrics.iter().map(|(n, _)| n)));
            let metrics = metric_names
                .into_iter()
                .map(|m| {
                    let va = ra.as_ref().and_then(|r| r.metric(&m));
                    let vb = rb.as_ref().and_then(|r| r.metric(&m));
                    MetricDelta { delta: Delta::new(va, vb, direction(&m)), metric: m }
                })
                .collect();
            ModelDelta {
                model: name,
                role: role.name().to_string(),
                version_a: ra.and_then(|r| r.version),
                version_b: rb.and_then(|r| r.version),
                metrics,
            }
        })
        .collect();

    let mut checks = Vec::new();
    let checks_a = a.quality.as_ref().map(|q| q.checks.as_slice()).unwrap_or_default();
    let checks_b = b.quality.as_ref().map(|q| q.checks.as_slice()).unwrap_or_default();
    let mut keys: Vec<(String, Option<String>)> = Vec::new();
    for c in checks_a.iter().chain(checks_b) {
        let key = (c.check.clone(), c.column.clone());
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    for (check, column) in keys {
        let ca = checks_a.iter().find(|c| c.check == check && c.column == column);
        let cb = checks_b.iter().find(|c| c.check == check && c.column == column);
        let measured = Delta::new(ca.map(|c| c.measured), cb.map(|c| c.measured), None);
        let changed = ca.map(|c| c.passed) != cb.map(|c| c.passed) || measured.delta.is_none_or(|d| d != 0.0);
        if changed {
            checks.push(CheckDelta {
                check,
                column,
                passed_a: ca.map(|c| c.passed),
                passed_b: cb.map(|c| c.passed),
                measured,
            });
        }
    }

    let drift_a = a.quality.as_ref().map(|q| q.drift.as_slice()).unwrap_or_default();
    let drift_b = b.quality.as_ref().map(|q| q.drift.as_slice()).unwrap_or_default();
    let mut features: Vec<&str> = Vec::new();
    for d in drift_a.iter().chain(drift_b) {
        if !features.contains(&d.feature.as_str()) {
            features.push(&d.feature);
        }
    }
    let drift = features
        .into_iter()
        .map(|f| {
            let da = drift_a.iter().find(|d| d.feature == f);
            let db = drift_b.iter().find(|d| d.feature == f);
            DriftDelta {
                feature: f.to_string(),
                // Lower PSI is "better" (less drift).
                psi: Delta::new(da.map(|d| d.psi), db.map(|d| d.psi), Some(false)),
                alarm_a: da.map(|d| d.alarm),
                alarm_b: db.map(|d| d.alarm),
            }
        })
        .collect();

    let slices = slice_deltas(a, b);
    let estimate = (a.estimate.is_some() || b.estimate.is_some()).then(|| {
        let (ea, eb) = (a.estimate.as_ref(), b.estimate.as_ref());
        let metric = eb.or(ea).map(|e| e.metric).unwrap_or(Metric::F1);
        let (ma, mb) = (ea.filter(|e| e.metric == metric), eb.filter(|e| e.metric == metric));
        let up = Some(metric.higher_is_better());
        EstimateDelta {
            metric: metric.name().to_string(),
            awaiting_rows: Delta::new(ea.map(|e| e.rows as f64), eb.map(|e| e.rows as f64), None),
            champion_estimated: Delta::new(
                ma.and_then(|e| e.champion_estimated.map(|v| v.value)),
                mb.and_then(|e| e.champion_estimated.map(|v| v.value)),
                up,
            ),
            champion_realised: Delta::new(
                ma.and_then(|e| e.champion_realised),
                mb.and_then(|e| e.champion_realised),
                up,
            ),
            alarm_a: ea.map(|e| e.alarm),
            alarm_b: eb.map(|e| e.alarm),
        }
    });

    RunComparison {
        slices,
        estimate,
        realised_in_a: a.realised_estimates.clone(),
        realised_in_b: b.realised_estimates.clone(),
        a: side(a),
        b: side(b),
        quality_score: Delta::new(a.quality.as_ref().map(|q| q.score), b.quality.as_ref().map(|q| q.score), Some(true)),
        models,
        checks,
        drift,
    }
}

fn slice_deltas(a: &RunReport, b: &RunReport) -> Vec<SliceDelta> {
    let (ta, tb) = (a.gate.slices.as_ref(), b.gate.slices.as_ref());
    let metric = match (ta, tb) {
        (Some(x), Some(y)) if x.metric != y.metric => return Vec::new(),
        (Some(t), _) | (None, Some(t)) => t.metric,
        (None, None) => return Vec::new(),
    };
    // Slices are matched by feature and key (a numeric bin's edges move from run to run).
    let mut keys: Vec<(String, String)> = Vec::new();
    for s in ta.iter().chain(tb.iter()).flat_map(|t| &t.slices) {
        let key = (s.feature.clone(), s.key.clone());
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    keys.sort();
    let find = |t: Option<&caretaker_core::report::SliceReport>, (feature, key): &(String, String)| {
        t.and_then(|t| t.slices.iter().find(|s| &s.feature == feature && &s.key == key)).cloned()
    };
    keys.iter()
        .map(|k| {
            let (sa, sb) = (find(ta, k), find(tb, k));
            let up = Some(metric.higher_is_better());
            let shown = sb.as_ref().or(sa.as_ref()).map(|s| s.value.clone()).unwrap_or_default();
            SliceDelta {
                champion: Delta::new(sa.as_ref().and_then(|s| s.champion), sb.as_ref().and_then(|s| s.champion), up),
                candidate: Delta::new(sa.as_ref().and_then(|s| s.candidate), sb.as_ref().and_then(|s| s.candidate), up),
                metric: metric.name().to_string(),
                slice: format!("{}={shown}", k.0),
            }
        })
        .collect()
}

fn num(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.4}")).unwrap_or_else(|| "-".into())
}

fn delta(d: &Delta) -> String {
    match d.delta {
        None => "-".into(),
        Some(x) => {
            let mark = match d.improved {
                Some(true) => " better",
                Some(false) => " worse",
                None => "",
            };
            format!("{x:+.4}{mark}")
        }
    }
}

fn passed(p: Option<bool>) -> &'static str {
    match p {
        Some(true) => "passed",
        Some(false) => "FAILED",
        None => "-",
    }
}

/// The comparison as a person reads it in a terminal.
pub fn render_text(c: &RunComparison) -> String {
    let mut out = String::new();
    for (label, s) in [("A", &c.a), ("B", &c.b)] {
        let _ = writeln!(
            out,
            "{label}  {}  {}  {}  gate {}{}",
            s.run_id,
            s.started_at,
            s.status,
            s.gate_decision,
            s.deployed_version.as_ref().map(|v| format!(" {v}")).unwrap_or_default()
        );
    }
    let _ = writeln!(
        out,
        "\nquality score  {} -> {}  {}",
        num(c.quality_score.a),
        num(c.quality_score.b),
        delta(&c.quality_score)
    );
    if !c.models.is_empty() {
        let _ = writeln!(out, "\n{:<22} {:<16} {:>10} {:>10}  B - A", "model", "metric", "A", "B");
        for m in &c.models {
            let label = match (&m.version_a, &m.version_b) {
                (Some(a), Some(b)) if m.role == "champion" && a != b => format!("champion {a}->{b}"),
                (Some(v), _) | (None, Some(v)) if m.role == "champion" => format!("champion {v}"),
                _ => m.model.clone(),
            };
            for (i, d) in m.metrics.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "{:<22} {:<16} {:>10} {:>10}  {}",
                    if i == 0 { label.as_str() } else { "" },
                    d.metric,
                    num(d.delta.a),
                    num(d.delta.b),
                    delta(&d.delta)
                );
            }
            if m.metrics.is_empty() {
                let _ = writeln!(out, "{label:<22} no metrics in either run");
            }
        }
    }
    if !c.checks.is_empty() {
        let _ = writeln!(out, "\n{:<32} {:>8} {:>8}  {:>10} {:>10}  B - A", "check", "A", "B", "A value", "B value");
        for ch in &c.checks {
            let name = match &ch.column {
                Some(col) => format!("{} {col}", ch.check),
                None => ch.check.clone(),
            };
            let _ = writeln!(
                out,
                "{name:<32} {:>8} {:>8}  {:>10} {:>10}  {}",
                passed(ch.passed_a),
                passed(ch.passed_b),
                num(ch.measured.a),
                num(ch.measured.b),
                delta(&ch.measured)
            );
        }
    }
    if c.drift.is_empty() {
        let _ = writeln!(out, "\ndrift          not measured in either run");
    } else {
        let _ = writeln!(out, "\n{:<24} {:>10} {:>10}  B - A", "feature (PSI)", "A", "B");
        for d in &c.drift {
            let alarm = |a: Option<bool>| if a == Some(true) { "!" } else { "" };
            let _ = writeln!(
                out,
                "{:<24} {:>10} {:>10}  {}",
                d.feature,
                format!("{}{}", num(d.psi.a), alarm(d.alarm_a)),
                format!("{}{}", num(d.psi.b), alarm(d.alarm_b)),
                delta(&d.psi)
            );
        }
    }
    if let Some(e) = &c.estimate {
        let alarm = |a: Option<bool>| if a == Some(true) { "!" } else { "" };
        let _ = writeln!(out, "\n{:<28} {:>10} {:>10}  B - A", format!("awaiting label ({})", e.metric), "A", "B");
        let _ = writeln!(
            out,
            "{:<28} {:>10} {:>10}  {}",
            "rows",
            e.awaiting_rows.a.map(|v| v.to_string()).unwrap_or_else(|| "-".into()),
            e.awaiting_rows.b.map(|v| v.to_string()).unwrap_or_else(|| "-".into()),
            delta(&e.awaiting_rows)
        );
        let _ = writeln!(
            out,
            "{:<28} {:>10} {:>10}  {}",
            "champion estimated",
            format!("{}{}", num(e.champion_estimated.a), alarm(e.alarm_a)),
            format!("{}{}", num(e.champion_estimated.b), alarm(e.alarm_b)),
            delta(&e.champion_estimated)
        );
        let _ = writeln!(
            out,
            "{:<28} {:>10} {:>10}  {}",
            "champion on the holdout",
            num(e.champion_realised.a),
            num(e.champion_realised.b),
            delta(&e.champion_realised)
        );
    }
    if !c.realised_in_a.is_empty() || !c.realised_in_b.is_empty() {
        let _ = writeln!(out, "\nestimates realised");
        for (side, r) in c.realised_in_a.iter().map(|r| ("A", r)).chain(c.realised_in_b.iter().map(|r| ("B", r))) {
            let _ = writeln!(out, "  {side}  {}", crate::realised_line(r));
        }
    }
    if !c.slices.is_empty() {
        let _ = writeln!(
            out,
            "\n{:<28} {:>10} {:>10}  {:<16} {:>10} {:>10}  B - A",
            format!("slice ({})", c.slices[0].metric),
            "champion A",
            "B",
            "B - A",
            "candidate A",
            "B"
        );
        for s in &c.slices {
            let _ = writeln!(
                out,
                "{:<28} {:>10} {:>10}  {:<16} {:>10} {:>10}  {}",
                s.slice,
                num(s.champion.a),
                num(s.champion.b),
                delta(&s.champion),
                num(s.candidate.a),
                num(s.candidate.b),
                delta(&s.candidate)
            );
        }
    }
    out
}
