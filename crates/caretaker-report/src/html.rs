//! `report.html`: one self-contained page per run, for the data scientist's morning.
//!
//! The page is an askama template (`templates/report.html`) fed with a view of the report
//! prepared here; askama escapes every value the template prints, so user data (category values,
//! paths, error text, pattern conditions) shows as text. The plots are inline SVG from
//! [`crate::plots`], the only markup inserted unescaped, and plotters escapes the text inside
//! them. The page loads nothing: no script, no style sheet, no font, no image from anywhere, so
//! it opens from disk, from a mail attachment or from an artifact store alike.

use crate::plots::{self, CurveKind, CurveSeries, PsiBar, TrendSeries};
use crate::table::{ModelRole, RunModelRow, model_rows};
use askama::Template;
use caretaker_core::metrics::ClassificationMetrics;
use caretaker_core::report::{GateOutcome, QualityReport, RunReport, RunStatus};
use caretaker_core::units::bytes;

/// How many runs the trend plots show, this one included.
pub const TREND_RUNS: usize = 10;

/// PSI above this is customarily read as a significant shift; drawn when the report names no
/// threshold of its own.
const CUSTOMARY_PSI_THRESHOLD: f64 = 0.2;

/// Escapes `text` for HTML text and attribute values.
pub fn escape(text: &str) -> String {
    askama::filters::escape(text, askama::filters::Html).map(|s| s.to_string()).unwrap_or_default()
}

/// Renders the page of `report`; `history` holds the pipeline's recent runs, oldest first (the
/// report itself is added when it is not among them, and only runs up to it are shown).
pub fn render(report: &RunReport, history: &[RunReport]) -> String {
    let page = Page::new(report, history);
    page.render().expect("the report template renders")
}

#[derive(Template)]
#[template(path = "report.html")]
struct Page {
    title: String,
    pipeline: String,
    run_id: String,
    started: String,
    duration: String,
    status: String,
    status_tone: &'static str,
    message: Option<String>,
    cards: Vec<Card>,
    gate_headline: String,
    gate_reasons: Vec<String>,
    gate_rules: Vec<GateRuleRow>,
    data: Vec<(String, String)>,
    quality: Option<QualityView>,
    drift: Option<DriftView>,
    models: Vec<ModelRow>,
    metric_names: Vec<String>,
    models_note: Option<String>,
    confusions: Vec<ConfusionView>,
    estimate: Option<EstimateView>,
    realised: Option<RealisedView>,
    importance: Option<ImportanceView>,
    slices: Option<SlicesView>,
    curves: Option<CurvesView>,
    trends: TrendsView,
    patterns: Option<PatternsView>,
    stages: Vec<(String, String, String)>,
    footer: Vec<(String, String)>,
}

struct Card {
    label: &'static str,
    value: String,
    detail: String,
    tone: &'static str,
}

/// Permutation importance: feature, candidate's (rank), champion's (rank), how the rank moved.
struct ImportanceView {
    note: String,
    rows: Vec<(String, String, String, String)>,
}

/// The models' metrics estimated on the rows awaiting their label.
struct EstimateView {
    summary: String,
    tone: &'static str,
    metrics: Vec<&'static str>,
    rows: Vec<(String, &'static str, Vec<String>)>,
}

/// Earlier estimates of the champion against what came true, newest estimate first.
struct RealisedView {
    note: String,
    plot: Option<String>,
    rows: Vec<RealisedRow>,
}

struct RealisedRow {
    run_id: String,
    window: String,
    version: String,
    estimated: String,
    realised: String,
    error: String,
    rows: String,
    verdict: &'static str,
    tone: &'static str,
    realised_in: String,
}

/// The gate's candidate against the champion per slice, worst first.
struct SlicesView {
    note: String,
    rows: Vec<SliceRow>,
    /// Slices left out of the table (the best for the candidate).
    more: usize,
}

struct SliceRow {
    slice: String,
    rows: String,
    positives: String,
    candidate: String,
    champion: String,
    gain: String,
    tone: &'static str,
    guarded: bool,
}

/// The slice table shows this many slices, worst first.
const SLICE_ROWS: usize = 12;

struct GateRuleRow {
    rule: String,
    passed: bool,
    measured: String,
    threshold: String,
    detail: String,
}

struct QualityView {
    score: String,
    min_score: String,
    passed: bool,
    rows: String,
    quarantined: String,
    quarantine_path: Option<String>,
    rule_counts: Vec<(String, String)>,
    checks: Vec<CheckRow>,
}

struct CheckRow {
    check: String,
    column: String,
    measured: String,
    threshold: String,
    passed: bool,
    detail: String,
}

struct DriftView {
    summary: String,
    threshold_note: String,
    alarm_thresholds: String,
    psi_svg: String,
    features: Vec<DriftRow>,
    histograms: Vec<HistogramView>,
}

/// An alarmed feature: its histogram and, folded, the bins in full.
struct HistogramView {
    svg: String,
    feature: String,
    bins: Vec<(String, String, String)>,
}

struct DriftRow {
    feature: String,
    kind: String,
    psi: String,
    ks: String,
    js: String,
    alarm: bool,
}

struct ModelRow {
    name: String,
    role: &'static str,
    family: String,
    swatch: String,
    badges: Vec<&'static str>,
    cells: Vec<MetricCell>,
    timing: String,
    /// How the candidate's probabilities were calibrated, when they were.
    calibration: String,
    error: Option<String>,
}

struct MetricCell {
    value: String,
    /// Against the champion: `+0.0123`, with a tone.
    delta: String,
    tone: &'static str,
}

struct ConfusionView {
    name: String,
    tp: String,
    fp: String,
    tn: String,
    fn_: String,
    /// Shading of each cell, 0-1 share of the rows.
    tp_alpha: String,
    fp_alpha: String,
    tn_alpha: String,
    fn_alpha: String,
    rows: String,
    threshold: String,
}

struct CurvesView {
    roc: String,
    pr: String,
    calibration: String,
    missing: Vec<String>,
}

struct TrendsView {
    note: Option<String>,
    plots: Vec<String>,
    runs: Vec<TrendRunRow>,
}

struct TrendRunRow {
    current: bool,
    run_id: String,
    started: String,
    status: String,
    status_tone: &'static str,
    quality: String,
    decision: String,
    best: String,
}

struct PatternsView {
    store: String,
    counts: Vec<(String, String)>,
    sizes: Vec<(&'static str, String)>,
    archive_files: Vec<String>,
    /// What discovery did, field by field, when it ran.
    discovery: Option<Vec<(String, String)>>,
}

fn f4(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v:.4}"),
        Some(v) => v.to_string(),
        None => "–".into(),
    }
}

fn f3(v: f64) -> String {
    if v.is_finite() { format!("{v:.3}") } else { v.to_string() }
}

fn count(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push('\u{202f}');
        }
        out.push(c);
    }
    out
}

fn status_tone(status: RunStatus) -> &'static str {
    match status {
        RunStatus::Succeeded => "ok",
        RunStatus::QualityFailed => "warn",
        RunStatus::Failed => "bad",
    }
}

impl Page {
    fn new(report: &RunReport, history: &[RunReport]) -> Page {
        let seconds = (report.finished_at - report.started_at).num_milliseconds() as f64 / 1000.0;
        let series_names = series_order(report, history);
        let colour_of = |name: &str| series_names.iter().position(|n| n == name).unwrap_or(0);

        let (models, metric_names, models_note) = models_table(report, &colour_of);
        Page {
            title: format!("{} · run {}", report.pipeline, report.run_id),
            pipeline: report.pipeline.clone(),
            run_id: report.run_id.to_string(),
            started: report.started_at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
            duration: format!("{seconds:.1} s"),
            status: report.status.name().replace('_', " "),
            status_tone: status_tone(report.status),
            message: report.message.clone(),
            cards: cards(report),
            gate_headline: gate_headline(report),
            gate_reasons: report.gate.reasons.clone(),
            gate_rules: report
                .gate
                .rules
                .iter()
                .map(|r| GateRuleRow {
                    rule: r.rule.clone(),
                    passed: r.passed,
                    measured: f4(r.measured),
                    threshold: f4(r.threshold),
                    detail: r.detail.clone(),
                })
                .collect(),
            data: data_rows(report),
            quality: report.quality.as_ref().map(quality_view),
            drift: report
                .quality
                .as_ref()
                .filter(|q| !q.drift.is_empty())
                .map(|q| drift_view(q, report.importance.as_ref())),
            models,
            metric_names,
            models_note,
            confusions: confusions(report),
            estimate: estimate_view(report),
            realised: realised_view(report, history),
            importance: importance_view(report),
            slices: slices_view(report),
            curves: curves_view(report, &colour_of),
            trends: trends_view(report, history, &series_names),
            patterns: report.patterns.as_ref().map(patterns_view),
            stages: report
                .stages
                .iter()
                .map(|s| (s.stage.clone(), format!("{:.2} s", s.seconds), s.rows.map(count).unwrap_or_default()))
                .collect(),
            footer: vec![
                ("schema_version".into(), report.schema_version.to_string()),
                ("config".into(), report.config_path.clone()),
                ("config hash".into(), report.config_hash.chars().take(16).collect()),
                ("report directory".into(), report.report_dir.clone()),
                ("finished".into(), report.finished_at.format("%Y-%m-%d %H:%M:%S UTC").to_string()),
                ("caretaker".into(), env!("CARGO_PKG_VERSION").to_string()),
            ],
        }
    }
}

/// Every model series name of the page, champion first, then candidates in the order they first
/// appear (this run's order, then older runs'), so that a model keeps one colour everywhere.
fn series_order(report: &RunReport, history: &[RunReport]) -> Vec<String> {
    let mut names = vec!["champion".to_string()];
    for r in std::iter::once(report).chain(history.iter().rev()) {
        for c in &r.candidates {
            if !names.contains(&c.name) {
                names.push(c.name.clone());
            }
        }
    }
    names
}

fn gate_headline(report: &RunReport) -> String {
    let gate = &report.gate;
    match gate.decision {
        GateOutcome::Deployed => format!(
            "deployed {} as {}",
            gate.candidate.as_deref().unwrap_or("a candidate"),
            gate.deployed_version.map(|v| v.to_string()).unwrap_or_else(|| "?".into())
        ),
        GateOutcome::KeptChampion => match &report.champion {
            Some(c) => format!("kept champion {} ({})", c.version, c.name),
            None => "kept the champion".into(),
        },
        GateOutcome::Skipped => "skipped".into(),
    }
}

fn cards(report: &RunReport) -> Vec<Card> {
    let mut cards = vec![Card {
        label: "Run",
        value: report.status.name().replace('_', " "),
        detail: report.message.clone().unwrap_or_else(|| "every stage ran".into()),
        tone: status_tone(report.status),
    }];
    cards.push(Card {
        label: "Gate",
        value: gate_headline(report),
        detail: report.gate.reasons.first().cloned().unwrap_or_default(),
        tone: match report.gate.decision {
            GateOutcome::Deployed => "ok",
            GateOutcome::KeptChampion => "muted",
            GateOutcome::Skipped => "warn",
        },
    });
    cards.push(match &report.quality {
        Some(q) => Card {
            label: "Quality",
            value: format!("{} {}", f3(q.score), if q.passed { "passed" } else { "failed" }),
            detail: format!(
                "minimum {}; {} of {} rows quarantined; {} of {} checks failed",
                f3(q.min_score),
                count(q.quarantined_rows),
                count(q.rows),
                q.checks.iter().filter(|c| !c.passed).count(),
                q.checks.len()
            ),
            tone: if q.passed { "ok" } else { "bad" },
        },
        None => Card {
            label: "Quality",
            value: "not measured".into(),
            detail: "not measured in this run".into(),
            tone: "muted",
        },
    });
    let drift = report.quality.as_ref().map(|q| q.drift.as_slice()).unwrap_or_default();
    cards.push(if drift.is_empty() {
        Card { label: "Drift", value: "not measured".into(), detail: "not measured in this run".into(), tone: "muted" }
    } else {
        let alarms: Vec<&str> = drift.iter().filter(|d| d.alarm).map(|d| d.feature.as_str()).collect();
        Card {
            label: "Drift alarms",
            value: format!("{} of {} features", alarms.len(), drift.len()),
            detail: if alarms.is_empty() { "no feature drifted past its threshold".into() } else { alarms.join(", ") },
            tone: if alarms.is_empty() { "ok" } else { "warn" },
        }
    });
    let best = report
        .candidates
        .iter()
        .filter_map(|c| c.metrics.as_ref().map(|m| (c, m)))
        .max_by(|a, b| a.1.f1.total_cmp(&b.1.f1));
    cards.push(Card {
        label: "Models",
        value: match best {
            Some((c, m)) => format!("{} f1 {}", c.name, f4(Some(m.f1))),
            None => "none scored".into(),
        },
        detail: match &report.champion {
            Some(c) => match &c.metrics {
                Some(m) => format!("champion {} ({}) f1 {} on the same holdout", c.version, c.name, f4(Some(m.f1))),
                None => format!("champion {} could not be scored", c.version),
            },
            None => "no champion before this run".into(),
        },
        tone: if best.is_some() { "ok" } else { "muted" },
    });
    if let Some(p) = &report.patterns {
        cards.push(Card {
            label: "Patterns",
            value: format!("{} kept", count(p.kept)),
            detail: format!("{} deleted, {} archived of {}", count(p.deleted), count(p.archived), count(p.before)),
            tone: "muted",
        });
    }
    cards
}

fn data_rows(report: &RunReport) -> Vec<(String, String)> {
    let mut rows = Vec::new();
    if let Some(d) = &report.data {
        rows.push(("dataset".into(), d.path.clone()));
        rows.push(("read".into(), format!("{} rows in {} files, {}", count(d.rows), d.files, bytes(d.bytes))));
        if let Some(t) = d.newest_event {
            rows.push(("newest event".into(), t.format("%Y-%m-%d %H:%M UTC").to_string()));
        }
    }
    if let Some(s) = &report.split {
        rows.push((
            "training".into(),
            format!(
                "{} rows from {}{}, positive rate {:.1}%",
                count(s.train_rows),
                s.window_from.format("%Y-%m-%d"),
                s.sampled_from
                    .map(|n| format!(" (training.max_rows: a sample of the {} clean rows)", count(n)))
                    .unwrap_or_default(),
                s.train_positive_rate * 100.0
            ),
        ));
        rows.push((
            "holdout".into(),
            format!(
                "{} rows from {}, positive rate {:.1}%",
                count(s.holdout_rows),
                s.holdout_from.format("%Y-%m-%d %H:%M"),
                s.holdout_positive_rate * 100.0
            ),
        ));
    }
    rows
}

fn quality_view(q: &QualityReport) -> QualityView {
    QualityView {
        score: f3(q.score),
        min_score: f3(q.min_score),
        passed: q.passed,
        rows: count(q.rows),
        quarantined: count(q.quarantined_rows),
        quarantine_path: q.quarantine_path.clone(),
        rule_counts: q.rule_counts.iter().map(|r| (r.rule.clone(), count(r.rows))).collect(),
        checks: q
            .checks
            .iter()
            .map(|c| CheckRow {
                check: c.check.clone(),
                column: c.column.clone().unwrap_or_default(),
                measured: f4(Some(c.measured)),
                threshold: if c.threshold.is_finite() { f4(Some(c.threshold)) } else { "–".into() },
                passed: c.passed,
                detail: c.detail.clone(),
            })
            .collect(),
    }
}

/// The PSI threshold of the report: the one its drift results were held against, or, in reports
/// written before those recorded it, a check that names one (`drift.psi`, say). Not the `drift`
/// check's threshold: that one is the share of drifted features.
fn psi_threshold(q: &QualityReport) -> Option<f64> {
    q.drift.iter().find_map(|d| d.psi_threshold.filter(|t| t.is_finite())).or_else(|| {
        q.checks
            .iter()
            .find(|c| c.check.to_ascii_lowercase().contains("psi") && c.threshold.is_finite())
            .map(|c| c.threshold)
    })
}

/// "Alarm above: PSI 0.2, KS 0.1, JS distance 0.1", from the thresholds the results carry.
fn alarm_thresholds(q: &QualityReport) -> String {
    let first = |get: fn(&caretaker_core::report::DriftResult) -> Option<f64>| q.drift.iter().find_map(get);
    let parts: Vec<String> = [
        ("PSI", first(|d| d.psi_threshold)),
        ("KS", first(|d| d.ks_threshold)),
        ("JS distance", first(|d| d.js_threshold)),
    ]
    .into_iter()
    .filter_map(|(name, t)| t.map(|t| format!("{name} {t}")))
    .collect();
    if parts.is_empty() { String::new() } else { format!("A feature alarms above: {}.", parts.join(", ")) }
}

/// The alarmed features, the most important first, when the run measured importance.
fn alarms_by_importance(q: &QualityReport, importance: Option<&caretaker_core::report::ImportanceReport>) -> String {
    let Some(importance) = importance else { return String::new() };
    let alarmed: Vec<String> = importance
        .features
        .iter()
        .filter(|f| q.drift.iter().any(|d| d.alarm && d.feature == f.feature))
        .map(|f| format!("{} ({})", f.feature, f4(f.candidate.or(f.champion))))
        .collect();
    if alarmed.is_empty() {
        return String::new();
    }
    format!(" Alarmed, the most important to the models first: {}.", alarmed.join(", "))
}

fn drift_view(q: &QualityReport, importance: Option<&caretaker_core::report::ImportanceReport>) -> DriftView {
    let (threshold, threshold_note, label) = match psi_threshold(q) {
        Some(t) => (t, format!("The line is the drift check's PSI threshold, {t}."), format!("threshold {t}")),
        None => (
            CUSTOMARY_PSI_THRESHOLD,
            format!(
                "The report names no PSI threshold; the line marks {CUSTOMARY_PSI_THRESHOLD}, the customary \
                 level of a significant shift. Alarms are the report's own."
            ),
            format!("PSI {CUSTOMARY_PSI_THRESHOLD}"),
        ),
    };
    let bars: Vec<PsiBar> =
        q.drift.iter().map(|d| PsiBar { feature: &d.feature, psi: d.psi, alarm: d.alarm }).collect();
    let alarms = q.drift.iter().filter(|d| d.alarm).count();
    DriftView {
        summary: format!(
            "{alarms} of {} features alarmed ({:.0}% drifted).{}",
            q.drift.len(),
            100.0 * alarms as f64 / q.drift.len() as f64,
            alarms_by_importance(q, importance)
        ),
        threshold_note,
        alarm_thresholds: alarm_thresholds(q),
        psi_svg: plots::psi_bars(&bars, threshold, &label),
        features: q
            .drift
            .iter()
            .map(|d| DriftRow {
                feature: d.feature.clone(),
                kind: d.kind.clone(),
                psi: f4(Some(d.psi)),
                ks: f4(d.ks),
                js: f4(d.js),
                alarm: d.alarm,
            })
            .collect(),
        histograms: q
            .drift
            .iter()
            .filter(|d| d.alarm)
            .map(|d| HistogramView {
                svg: plots::histogram(&d.feature, &d.bins, &d.reference_share, &d.current_share),
                feature: d.feature.clone(),
                bins: d
                    .bins
                    .iter()
                    .enumerate()
                    .map(|(i, b)| {
                        let share =
                            |v: Option<&f64>| v.map(|v| format!("{:.1}%", v * 100.0)).unwrap_or_else(|| "–".into());
                        (b.clone(), share(d.reference_share.get(i)), share(d.current_share.get(i)))
                    })
                    .collect(),
            })
            .collect(),
    }
}

fn models_table(report: &RunReport, colour_of: &dyn Fn(&str) -> usize) -> (Vec<ModelRow>, Vec<String>, Option<String>) {
    let rows: Vec<RunModelRow> = model_rows(report).into_iter().filter(|r| r.model.is_some()).collect();
    if rows.is_empty() {
        return (Vec::new(), Vec::new(), Some("No model was trained or scored in this run.".into()));
    }
    // The usual metrics, then any other the report holds (not the confusion cells, which have
    // their own section, nor the row count and threshold, which are not scores).
    let mut names: Vec<String> = caretaker_core::metrics::Metric::ALL.iter().map(|m| m.name().to_string()).collect();
    for row in &rows {
        for (name, _) in &row.metrics {
            if !names.contains(name) && !name.starts_with("confusion") && name != "rows" && name != "threshold" {
                names.push(name.clone());
            }
        }
    }
    let champion = rows.iter().find(|r| r.role == Some(ModelRole::Champion)).cloned();
    let out = rows
        .iter()
        .map(|r| {
            let series = r.series_name().unwrap_or_default();
            let mut badges = Vec::new();
            if report.gate.candidate.as_deref() == r.model.as_deref() && r.role == Some(ModelRole::Candidate) {
                badges.push("gate's pick");
            }
            if r.deployed {
                badges.push("deployed");
            }
            let cells = names
                .iter()
                .map(|m| {
                    let v = r.metric(m);
                    let reference =
                        champion.as_ref().filter(|_| r.role == Some(ModelRole::Candidate)).and_then(|c| c.metric(m));
                    let (delta, tone) = match (v, reference) {
                        (Some(v), Some(c)) => {
                            let d = v - c;
                            let up = caretaker_core::metrics::Metric::from_name(m).map(|k| k.higher_is_better());
                            let tone = match up {
                                _ if d.abs() < 5e-5 => "muted",
                                Some(true) if d > 0.0 => "ok",
                                Some(false) if d < 0.0 => "ok",
                                Some(_) => "bad",
                                None => "muted",
                            };
                            (format!("{d:+.4}"), tone)
                        }
                        _ => (String::new(), "muted"),
                    };
                    MetricCell { value: f4(v), delta, tone }
                })
                .collect();
            let timing = match (r.train_seconds, r.predict_micros_per_row) {
                (Some(t), Some(p)) => format!("trained in {t:.2} s, {p:.2} µs/row"),
                (Some(t), None) => format!("trained in {t:.2} s"),
                _ => String::new(),
            };
            let candidate = (r.role == Some(ModelRole::Candidate))
                .then(|| report.candidates.iter().find(|c| Some(&c.name) == r.model.as_ref()))
                .flatten();
            let calibration = candidate
                .and_then(|c| c.calibration.as_ref())
                .map(|c| {
                    format!(
                        "{} calibration fitted on {} validation rows (ECE there {:.4} → {:.4})",
                        c.method.name(),
                        c.validation_rows,
                        c.validation_ece_before,
                        c.validation_ece_after
                    )
                })
                .unwrap_or_default();
            ModelRow {
                name: match (r.role, &r.version) {
                    (Some(ModelRole::Champion), Some(v)) => format!("{v} {}", r.model.clone().unwrap_or_default()),
                    _ => r.model.clone().unwrap_or_default(),
                },
                role: r.role.map(|r| r.name()).unwrap_or(""),
                family: r.family.clone().unwrap_or_default(),
                swatch: plots::color_hex(colour_of(&series)),
                badges,
                cells,
                timing,
                calibration,
                error: r.error.clone(),
            }
        })
        .collect();
    let note = if champion.is_some() {
        Some("Small figures under each candidate's value: its difference from the champion on the same holdout (green: better).".into())
    } else {
        None
    };
    (out, names, note)
}

fn importance_view(report: &RunReport) -> Option<ImportanceView> {
    let i = report.importance.as_ref()?;
    let cell = |v: Option<f64>, rank: Option<u32>| match (v, rank) {
        (Some(v), Some(r)) => format!("{v:.4} (#{r})"),
        _ => "–".to_string(),
    };
    let rows = i
        .features
        .iter()
        .map(|f| {
            let moved = match (f.champion_rank, f.candidate_rank) {
                (Some(h), Some(c)) if c < h => format!("up {}", h - c),
                (Some(h), Some(c)) if c > h => format!("down {}", c - h),
                (Some(_), Some(_)) => "same".to_string(),
                _ => String::new(),
            };
            (f.feature.clone(), cell(f.candidate, f.candidate_rank), cell(f.champion, f.champion_rank), moved)
        })
        .collect();
    Some(ImportanceView {
        note: format!(
            "How much {} falls when a feature's values are shuffled across {} holdout rows (mean of {} seeded shuffles); the rank's move is the candidate's against the champion's.",
            i.metric,
            count(i.rows),
            i.repeats
        ),
        rows,
    })
}

fn estimate_view(report: &RunReport) -> Option<EstimateView> {
    let e = report.estimate.as_ref()?;
    let span = match (e.from, e.to) {
        (Some(a), Some(b)) => format!(", events from {} to {}", a.format("%Y-%m-%d %H:%M"), b.format("%Y-%m-%d %H:%M")),
        _ => String::new(),
    };
    let verdict = match (e.champion_holdout_estimate, e.champion_estimated, e.drop) {
        (Some(b), Some(v), Some(d)) => format!(
            "champion {} estimated at {:.4} [{:.4}, {:.4}] against {b:.4} estimated the same way on the labelled holdout (realised {}): {} of {:.4}{}",
            e.metric,
            v.value,
            v.low,
            v.high,
            f4(e.champion_realised),
            if d >= 0.0 { "a drop" } else { "a rise" },
            d.abs(),
            match (e.alarm, d > e.alarm_threshold) {
                (true, _) => format!(", above the alarm threshold {:.4}", e.alarm_threshold),
                (false, true) => format!(
                    ", above the alarm threshold {:.4} but inside the estimate's band (label noise on these rows could give it): no alarm",
                    e.alarm_threshold
                ),
                _ => String::new(),
            }
        ),
        _ => e.note.clone().unwrap_or_default(),
    };
    let metrics = caretaker_core::report::EstimatedMetrics::METRICS;
    let cells = |m: Option<&caretaker_core::report::EstimatedMetrics>| -> Vec<String> {
        metrics
            .iter()
            .map(|&k| match m.and_then(|m| m.get(k)) {
                Some(v) => format!("{:.4} [{:.4}, {:.4}]", v.value, v.low, v.high),
                None => "–".into(),
            })
            .collect()
    };
    let mut rows = Vec::new();
    if let Some(c) = report.champion.as_ref().filter(|c| c.estimated.is_some()) {
        rows.push((format!("{} {}", c.version, c.name), "champion", cells(c.estimated.as_ref())));
    }
    for c in report.candidates.iter().filter(|c| c.estimated.is_some()) {
        rows.push((c.name.clone(), "candidate", cells(c.estimated.as_ref())));
    }
    Some(EstimateView {
        summary: if e.rows == 0 {
            "No row awaits its label in this run.".to_string()
        } else {
            format!("{} rows await their label{span}; {verdict}.", count(e.rows))
        },
        tone: if e.alarm { "bad" } else { "ok" },
        metrics: metrics.iter().map(|m| m.name()).collect(),
        rows,
    })
}

/// The champion's estimates of the recent runs against the values realised once their labels
/// arrived: every pair the recent runs (this one included) recorded, and the recent estimates
/// still waiting for their labels; the oldest estimate on the left of the plot, first in the table
/// the newest.
fn realised_view(report: &RunReport, history: &[RunReport]) -> Option<RealisedView> {
    use caretaker_core::report::RealisedEstimate;
    let runs = &recent_runs(report, history);
    let pairs: Vec<(&RealisedEstimate, &RunReport)> =
        runs.iter().flat_map(|r| r.realised_estimates.iter().map(move |e| (e, *r))).collect();
    if pairs.is_empty() {
        return None;
    }
    // One entry per estimate: its pair and the run that realised it, or still pending.
    struct Entry<'a> {
        run_id: String,
        /// When the estimating run started: the plot's axis and the order.
        at: Option<chrono::DateTime<chrono::Utc>>,
        version: String,
        from: Option<chrono::DateTime<chrono::Utc>>,
        to: Option<chrono::DateTime<chrono::Utc>>,
        estimate: caretaker_core::report::EstimatedValue,
        rows: u64,
        pair: Option<(&'a RealisedEstimate, &'a RunReport)>,
    }
    let mut entries: Vec<Entry> = pairs
        .iter()
        .map(|&(e, by)| Entry {
            run_id: e.run_id.to_string(),
            at: caretaker_core::ids::RunId::started_at_of(e.run_id.as_str()).or(Some(e.to)),
            version: e.version.to_string(),
            from: Some(e.from),
            to: Some(e.to),
            estimate: e.estimate,
            rows: e.estimated_rows,
            pair: Some((e, by)),
        })
        .collect();
    for r in runs.iter().filter(|r| pairs.iter().all(|(e, _)| e.run_id != r.run_id)) {
        if let (Some(e), Some(c)) = (&r.estimate, &r.champion)
            && let Some(v) = e.champion_estimated
        {
            entries.push(Entry {
                run_id: r.run_id.to_string(),
                at: Some(r.started_at),
                version: c.version.to_string(),
                from: e.from,
                to: e.to,
                estimate: v,
                rows: e.rows,
                pair: None,
            });
        }
    }
    entries.sort_by(|a, b| (a.at, &a.run_id).cmp(&(b.at, &b.run_id)));
    let metric = pairs.last().map(|(e, _)| e.metric);
    let rows = entries
        .iter()
        .rev()
        .map(|x| {
            let realised = x.pair.map(|(e, _)| e);
            let (verdict, tone) = match realised.map(|e| e.within_band) {
                Some(Some(true)) => ("within the band", "ok"),
                Some(Some(false)) => ("outside the band", "bad"),
                Some(None) => ("not realised", "warn"),
                None => ("labels due", "muted"),
            };
            RealisedRow {
                run_id: x.run_id.clone(),
                window: match (x.from, x.to) {
                    (Some(a), Some(b)) => format!("{} – {}", a.format("%m-%d %H:%M"), b.format("%m-%d %H:%M")),
                    _ => String::new(),
                },
                version: x.version.clone(),
                estimated: format!("{:.4} [{:.4}, {:.4}]", x.estimate.value, x.estimate.low, x.estimate.high),
                realised: match realised {
                    Some(e) if e.realised.is_none() => e.note.clone().unwrap_or_else(|| "–".into()),
                    _ => f4(realised.and_then(|e| e.realised)),
                },
                error: realised.and_then(|e| e.error()).map(|d| format!("{d:+.4}")).unwrap_or_default(),
                rows: match realised {
                    Some(e) => format!("{} of {}", count(e.labelled_rows), count(e.estimated_rows)),
                    None => count(x.rows),
                },
                verdict,
                tone,
                realised_in: x.pair.map(|(_, by)| by.run_id.to_string()).unwrap_or_default(),
            }
        })
        .collect();
    let labels: Vec<String> =
        entries.iter().map(|x| x.at.map(|t| t.format("%m-%d %H:%M").to_string()).unwrap_or_default()).collect();
    let series = |f: &dyn Fn(&Entry) -> Option<f64>| -> Vec<Option<f64>> { entries.iter().map(f).collect() };
    let plot = (entries.len() >= 2).then(|| {
        plots::trend(
            "Estimated, then realised",
            metric.map(|m| m.name()).unwrap_or("metric"),
            &labels,
            &[
                TrendSeries { name: "estimated", color: 0, values: series(&|x| Some(x.estimate.value)) },
                TrendSeries { name: "band low", color: 9, values: series(&|x| Some(x.estimate.low)) },
                TrendSeries { name: "band high", color: 9, values: series(&|x| Some(x.estimate.high)) },
                TrendSeries { name: "realised", color: 2, values: series(&|x| x.pair.and_then(|(e, _)| e.realised)) },
            ],
        )
    });
    let inside = pairs.iter().filter(|(e, _)| e.within_band == Some(true)).count();
    let scored = pairs.iter().filter(|(e, _)| e.within_band.is_some()).count();
    Some(RealisedView {
        note: format!(
            "Each run's estimate of the champion{} on its rows awaiting their label, against the same model on the same rows once their labels arrived (scored by a later run): {inside} of {scored} realised values fell within their band.",
            metric.map(|m| format!(" ({m})")).unwrap_or_default()
        ),
        plot,
        rows,
    })
}

fn slices_view(report: &RunReport) -> Option<SlicesView> {
    let table = report.gate.slices.as_ref()?;
    let candidate = report.gate.candidate.as_deref().unwrap_or("the candidate");
    let against = match &report.champion {
        Some(c) if table.slices.iter().any(|s| s.champion.is_some()) => format!(" against champion {}", c.version),
        _ => " (no champion was scored to compare with)".to_string(),
    };
    let note = format!(
        "{} of {candidate}{against} on each slice of the holdout, the worst for {candidate} first. Slices under {} rows are shown in grey and not guarded{}.",
        table.metric,
        count(table.min_rows),
        match table.guardrail {
            Some(limit) => format!(" (gate.slice_guardrail allows a drop of {limit} in a guarded slice)"),
            None => " (gate.slice_guardrail is off)".to_string(),
        }
    );
    let rows = table
        .slices
        .iter()
        .take(SLICE_ROWS)
        .map(|s| SliceRow {
            slice: format!("{}={}", s.feature, s.value),
            rows: count(s.rows),
            positives: count(s.positives),
            candidate: f4(s.candidate),
            champion: f4(s.champion),
            gain: s.gain.map(|g| format!("{g:+.4}")).unwrap_or_else(|| "–".into()),
            tone: match s.gain {
                Some(g) if g.abs() < 5e-5 => "muted",
                Some(g) if g > 0.0 => "ok",
                Some(_) => "bad",
                None => "muted",
            },
            guarded: s.guarded,
        })
        .collect();
    Some(SlicesView { note, rows, more: table.slices.len().saturating_sub(SLICE_ROWS) })
}

fn confusions(report: &RunReport) -> Vec<ConfusionView> {
    let mut out = Vec::new();
    let mut push = |name: String, m: &ClassificationMetrics| {
        let c = &m.confusion;
        let total = c.total().max(1) as f64;
        let alpha = |n: u64| format!("{:.3}", 0.08 + 0.72 * (n as f64 / total));
        out.push(ConfusionView {
            name,
            tp: count(c.tp),
            fp: count(c.fp),
            tn: count(c.tn),
            fn_: count(c.fn_),
            tp_alpha: alpha(c.tp),
            fp_alpha: alpha(c.fp),
            tn_alpha: alpha(c.tn),
            fn_alpha: alpha(c.fn_),
            rows: count(c.total()),
            threshold: format!("{:.2}", m.threshold),
        });
    };
    if let Some(c) = &report.champion
        && let Some(m) = &c.metrics
    {
        push(format!("champion {} ({})", c.version, c.name), m);
    }
    for c in &report.candidates {
        if let Some(m) = &c.metrics {
            push(c.name.clone(), m);
        }
    }
    out
}

fn curves_view(report: &RunReport, colour_of: &dyn Fn(&str) -> usize) -> Option<CurvesView> {
    let mut models: Vec<(String, usize, &caretaker_core::report::Curves)> = Vec::new();
    let mut missing = Vec::new();
    if let Some(c) = &report.champion {
        match &c.curves {
            Some(curves) => models.push((format!("champion {}", c.version), colour_of("champion"), curves)),
            None if c.metrics.is_some() => missing.push(format!("champion {}", c.version)),
            None => {}
        }
    }
    for c in &report.candidates {
        match &c.curves {
            Some(curves) => models.push((c.name.clone(), colour_of(&c.name), curves)),
            None if c.metrics.is_some() => missing.push(c.name.clone()),
            None => {}
        }
    }
    if models.is_empty() {
        return None;
    }
    let series = |pick: &dyn Fn(&caretaker_core::report::Curves) -> Vec<(f64, f64)>| -> Vec<CurveSeries> {
        models.iter().map(|(name, colour, c)| CurveSeries { name, color: *colour, points: pick(c) }).collect()
    };
    Some(CurvesView {
        roc: plots::curves(CurveKind::Roc, &series(&|c| c.roc.iter().map(|p| (p[0], p[1])).collect())),
        pr: plots::curves(CurveKind::PrecisionRecall, &series(&|c| c.pr.iter().map(|p| (p[0], p[1])).collect())),
        calibration: plots::curves(
            CurveKind::Calibration,
            &series(&|c| c.calibration.iter().map(|b| (b.predicted, b.observed)).collect()),
        ),
        missing,
    })
}

/// The runs up to `report`, oldest first, `report` last, at most TREND_RUNS: what the trends and
/// the realised estimates show.
fn recent_runs<'a>(report: &'a RunReport, history: &'a [RunReport]) -> Vec<&'a RunReport> {
    let mut runs: Vec<&RunReport> =
        history.iter().filter(|r| r.run_id != report.run_id && r.started_at <= report.started_at).collect();
    runs.sort_by_key(|r| (r.started_at, r.run_id.clone()));
    runs.push(report);
    runs.split_off(runs.len().saturating_sub(TREND_RUNS))
}

fn trends_view(report: &RunReport, history: &[RunReport], series_names: &[String]) -> TrendsView {
    let runs = recent_runs(report, history);

    let rows: Vec<Vec<RunModelRow>> = runs.iter().map(|r| model_rows(r)).collect();
    let labels: Vec<String> = runs.iter().map(|r| r.started_at.format("%m-%d %H:%M").to_string()).collect();
    let table = runs
        .iter()
        .zip(&rows)
        .rev()
        .map(|(r, rows)| {
            let best = rows
                .iter()
                .filter(|m| m.role == Some(ModelRole::Candidate))
                .filter_map(|m| m.metric("f1").map(|v| (m, v)))
                .max_by(|a, b| a.1.total_cmp(&b.1));
            TrendRunRow {
                current: r.run_id == report.run_id,
                run_id: r.run_id.to_string(),
                started: r.started_at.format("%Y-%m-%d %H:%M").to_string(),
                status: r.status.name().replace('_', " "),
                status_tone: status_tone(r.status),
                quality: r.quality.as_ref().map(|q| f3(q.score)).unwrap_or_else(|| "–".into()),
                decision: match (r.gate.decision, r.gate.deployed_version) {
                    (GateOutcome::Deployed, Some(v)) => format!("deployed {v}"),
                    (d, _) => d.name().replace('_', " "),
                },
                best: best
                    .map(|(m, v)| format!("{} {}", m.model.as_deref().unwrap_or(""), f4(Some(v))))
                    .unwrap_or_else(|| "–".into()),
            }
        })
        .collect();
    if runs.len() < 2 {
        return TrendsView {
            note: Some("This is the pipeline's first recorded run: the trends start with the next one.".into()),
            plots: Vec::new(),
            runs: table,
        };
    }
    let mut plots = Vec::new();
    let quality: Vec<Option<f64>> = runs.iter().map(|r| r.quality.as_ref().map(|q| q.score)).collect();
    plots.push(plots::trend(
        "Quality score",
        "score",
        &labels,
        &[TrendSeries { name: "quality score", color: 2, values: quality }],
    ));
    for (metric, title) in [("f1", "F1 on each run's holdout"), ("roc_auc", "ROC-AUC on each run's holdout")] {
        let series: Vec<TrendSeries> = series_names
            .iter()
            .enumerate()
            .map(|(colour, name)| TrendSeries {
                name,
                color: colour,
                values: rows
                    .iter()
                    .map(|run| {
                        run.iter().find(|m| m.series_name().as_ref() == Some(name)).and_then(|m| m.metric(metric))
                    })
                    .collect(),
            })
            .filter(|s| s.values.iter().any(Option::is_some))
            .collect();
        if !series.is_empty() {
            plots.push(plots::trend(title, metric, &labels, &series));
        }
    }
    TrendsView { note: None, plots, runs: table }
}

/// The pattern stage's counts. Read through the serialised report, so that counts the stage adds
/// (discovery's, say) show without a change here.
fn patterns_view(p: &caretaker_core::report::PatternsReport) -> PatternsView {
    let value = serde_json::to_value(p).expect("a patterns report serialises");
    let fields = value.as_object().cloned().unwrap_or_default();
    let shown = |v: &serde_json::Value| -> Option<String> {
        match v {
            serde_json::Value::Number(n) if n.is_u64() => n.as_u64().map(count),
            serde_json::Value::Number(n) => n.as_f64().map(|v| f4(Some(v))),
            serde_json::Value::Null => Some("–".into()),
            _ => None,
        }
    };
    let first = ["before", "deleted", "archived", "kept"];
    let sizes = ["store_bytes_before", "store_bytes_after", "archive_bytes_written"];
    let mut counts: Vec<(String, String)> =
        first.iter().filter_map(|k| fields.get(*k).and_then(shown).map(|v| (k.replace('_', " "), v))).collect();
    for (k, v) in &fields {
        if !first.contains(&k.as_str())
            && !sizes.contains(&k.as_str())
            && let Some(v) = shown(v).filter(|_| !v.is_null())
        {
            counts.push((k.replace('_', " "), v));
        }
    }
    let discovery = fields.get("discovery").and_then(|d| d.as_object()).map(|d| {
        d.iter()
            .filter_map(|(k, v)| match v {
                serde_json::Value::Object(per_feature) => Some((
                    k.replace('_', " "),
                    per_feature
                        .iter()
                        .map(|(f, cuts)| {
                            format!(
                                "{f}: {}",
                                cuts.as_array()
                                    .map(|c| c.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(", "))
                                    .unwrap_or_default()
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("; "),
                )),
                v => shown(v).map(|s| (k.replace('_', " "), s)),
            })
            .collect()
    });
    PatternsView {
        store: p.store.clone(),
        counts,
        sizes: vec![
            ("store before", bytes(p.store_bytes_before)),
            ("store after", bytes(p.store_bytes_after)),
            ("archive written", bytes(p.archive_bytes_written)),
        ],
        archive_files: p.archive_files.clone(),
        discovery,
    }
}
