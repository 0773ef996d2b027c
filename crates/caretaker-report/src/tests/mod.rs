//! Tests of the report files on made-up reports that hold everything (drift, curves, champion):
//! the pipeline does not fill all of it yet, and the page must already show it.

mod browser;
mod fixture;

use crate::{compare, html, table, textfile};
use fixture::{SCRIPT, full_report, history, quality_failed_report, report_with};
use std::collections::BTreeSet;

/// The value of the sample `name{labels...}` in a textfile, labels given as `key="value"`.
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
        (metric == name && labels.iter().all(|l| rest.contains(l))).then(|| value.parse().ok())?
    })
}

#[test]
fn report_json_schema_v1_snapshot() {
    let report = report_with(3, 4, 3);
    insta::assert_json_snapshot!("report_v1", report, {
        ".run_id" => "[run_id]",
        ".started_at" => "[time]",
        ".finished_at" => "[time]",
        ".data.newest_event" => "[time]",
        ".split.holdout_from" => "[time]",
        ".split.window_from" => "[time]",
        ".config_path" => "[path]",
        ".report_dir" => "[path]",
        ".data.path" => "[path]",
        ".quality.quarantine_path" => "[path]",
        ".patterns.store" => "[path]",
        ".patterns.archive_files[]" => "[path]",
    });
}

/// Every field path of a report as `docs/report-schema.md` names it: array items as `[]`, the
/// fields of a metrics, a curves and an estimated object under `metrics.`, `curves.` and
/// `estimated.` (the shapes that occur in several places), family parameters and cut points as free-form fields.
fn field_paths(value: &serde_json::Value, prefix: &str, out: &mut BTreeSet<String>) {
    match value {
        serde_json::Value::Object(fields) => {
            for (key, v) in fields {
                let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                out.insert(path.clone());
                // `selection[].params` is a family's parameters too.
                match key.as_str() {
                    // Free-form: family parameters, cut points per feature.
                    "params" | "cut_points" => {}
                    "metrics" | "curves" | "estimated" => field_paths(v, key, out),
                    _ => field_paths(v, &path, out),
                }
            }
        }
        serde_json::Value::Array(items) => {
            for item in items.iter().filter(|i| i.is_object()) {
                field_paths(item, &format!("{prefix}[]"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn the_schema_document_names_every_field_of_the_report_and_no_other() {
    let doc = include_str!("../../../../docs/report-schema.md");
    let documented: BTreeSet<String> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once('`').map(|(path, _)| path.to_string()))
        .collect();
    let mut actual = BTreeSet::new();
    // With maintenance mode on, held by a process (absent from the report otherwise).
    let mut report = full_report(1, 4);
    report.gate.maintenance = Some(caretaker_core::maintenance::MaintenanceMode {
        since: report.started_at,
        reason: "models reset: bad model".into(),
        by: "models reset".into(),
        holder: Some(caretaker_core::maintenance::Holder::this_process()),
    });
    field_paths(&serde_json::to_value(report).unwrap(), "", &mut actual);
    let undocumented: Vec<_> = actual.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&actual).collect();
    assert!(
        undocumented.is_empty() && stale.is_empty(),
        "docs/report-schema.md is out of date.\nfields missing from the document: {undocumented:?}\n\
         documented fields the report does not have: {stale:?}"
    );
    let version = format!("schema_version {}", caretaker_core::report::REPORT_SCHEMA_VERSION);
    assert!(doc.contains(&version), "the document names {version}");
}

#[test]
fn a_script_in_a_category_value_shows_as_text() {
    let mut report = full_report(2, 8);
    report.pipeline = "\"><img src=x onerror=alert(2)>".into();
    report.report_dir = "/tmp/<b>reports</b>/run".into();
    report.candidates[0].error = Some("failed on </td><script>alert(3)</script>".into());
    let page = html::render(&report, &[]);
    let lower = page.to_ascii_lowercase();
    assert!(!lower.contains("<script"), "a script element got into the page");
    assert!(!lower.contains("<img"), "an img element got into the page");
    assert!(!page.contains("<b>reports"), "a path was not escaped");
    // The category value is in an alarmed feature's histogram (plotters escapes it, and
    // shortens it to fit under its bar), in its bins table and in a check's detail (askama
    // escapes those).
    assert!(page.contains("&lt;script&gt;"), "the histogram label is missing");
    assert!(page.contains("<td>&#60;script&#62;alert(1)&#60;/script&#62;</td>"), "the bins table lacks it");
    assert!(page.contains("unseen category &#60;script&#62;alert(1)&#60;/script&#62;"), "the check detail lacks it");
    assert!(page.contains("&#60;/td&#62;&#60;script&#62;alert(3)"), "the error text is missing");
    assert!(SCRIPT.starts_with("<script>"));
}

#[test]
fn the_page_loads_nothing_from_anywhere() {
    let page = html::render(&full_report(2, 8), &history(3, 8));
    let lower = page.to_ascii_lowercase();
    for needle in ["<script", "<link", "<img", "<iframe", "src=", "url(", "@import", "@font-face"] {
        assert!(!lower.contains(needle), "the page holds {needle:?}");
    }
    let outside: Vec<&str> = lower
        .match_indices("http")
        .map(|(i, _)| &lower[i..(i + 40).min(lower.len())])
        .filter(|s| !s.starts_with("http://www.w3.org/2000/svg"))
        .collect();
    assert!(outside.is_empty(), "the page refers to {outside:?}");
    // Internal anchors only.
    for (i, _) in lower.match_indices("href=\"") {
        assert_eq!(&lower[i + 6..i + 7], "#", "{}", &lower[i..i + 30]);
    }
}

#[test]
fn the_summary_comes_first_and_every_section_is_there() {
    let page = html::render(&full_report(9, 12), &history(10, 12));
    let at = |needle: &str| page.find(needle).unwrap_or_else(|| panic!("the page lacks {needle:?}"));
    let order = [
        "id=\"summary\"",
        "id=\"quality\"",
        "id=\"drift\"",
        "id=\"models\"",
        "id=\"estimate\"",
        "id=\"importance\"",
        "id=\"slices\"",
        "id=\"confusion\"",
        "id=\"curves\"",
        "id=\"trends\"",
        "id=\"patterns\"",
    ];
    let positions: Vec<usize> = order.iter().map(|n| at(n)).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "sections out of order: {positions:?}");
    // The summary names the status, the gate decision and its reason, the quality score and the
    // drift alarms.
    let summary = &page[positions[0]..positions[1]];
    for needle in ["succeeded", "deployed forest as v0002", "beats champion v0001", "0.986 passed", "Drift alarms"] {
        assert!(summary.contains(needle), "the summary lacks {needle:?}");
    }
    // Plots: PSI bars, one histogram per alarmed feature, ROC, PR, calibration, three trends.
    let alarms = full_report(9, 12).quality.unwrap().drift.iter().filter(|d| d.alarm).count();
    assert!(alarms > 0);
    assert_eq!(page.matches("aria-label=\"PSI per feature\"").count(), 1);
    assert_eq!(page.matches("reference and current distribution\"").count(), alarms);
    for title in
        ["ROC curve", "Precision-recall curve", "Reliability", "Quality score", "F1 on each run", "ROC-AUC on each run"]
    {
        assert!(page.contains(&format!("aria-label=\"{title}")), "no {title} plot");
    }
    // The calibrated candidate says how, and the slices are listed worst first, the small one
    // greyed; the level that is a script shows as text.
    assert!(page.contains("isotonic calibration fitted on 3000 validation rows (ECE there 0.0810 → 0.0120)"));
    let slices = &page[page.find("id=\"slices\"").expect("a slices section")..];
    let slices = &slices[..slices.find("</section>").unwrap()];
    assert!(slices.contains("gate.slice_guardrail allows a drop of 0.05"), "{slices}");
    let worst = slices.find("service=&#60;script&#62;").unwrap_or_else(|| panic!("the script level as text: {slices}"));
    assert!(worst < slices.find("service=api").unwrap());
    assert_eq!(slices.matches("<tr class=\"muted\">").count(), 1);
    // Importance: every feature, the candidate's rank against the champion's; the drift summary
    // names the alarmed features the most important first.
    let importance = &page[page.find("id=\"importance\"").expect("an importance section")..];
    let importance = &importance[..importance.find("</section>").unwrap()];
    assert_eq!(importance.matches("<tr><td class=\"name\">feature_").count(), 12, "{importance}");
    assert!(importance.contains("0.3000 (#1)") && importance.contains("up 2"), "{importance}");
    assert!(
        page.contains("Alarmed, the most important to the models first: feature_02 (0.1000), feature_03"),
        "drift summary"
    );
    // The rows awaiting their label: the champion's estimate against its holdout value, alarmed.
    let estimate = &page[page.find("id=\"estimate\"").expect("an estimate section")..];
    let estimate = &estimate[..estimate.find("</section>").unwrap()];
    assert!(estimate.contains("412 rows await their label"), "{estimate}");
    assert!(
        estimate.contains("champion f1 estimated at 0.6200 [0.5800, 0.6600] against 0.7000 estimated the same way"),
        "{estimate}"
    );
    assert!(estimate.contains("above the alarm threshold 0.0500") && estimate.contains("pill bad"), "{estimate}");
    assert_eq!(estimate.matches("<tr><td><strong>").count(), 5, "the champion and four candidates");
    // Each of the nine earlier estimates against what came true (realised by the next night), and
    // this night's still waiting for its labels.
    assert!(estimate.contains("Estimates against what came true"), "{estimate}");
    assert!(estimate.contains("5 of 8 realised values fell within their band"), "{estimate}");
    assert!(estimate.contains("aria-label=\"Estimated, then realised"), "the plot");
    for (verdict, n) in [("within the band", 5), ("outside the band", 3), ("not realised", 1), ("labels due", 1)] {
        assert_eq!(estimate.matches(&format!(">{verdict}</span>")).count(), n, "{verdict}");
    }
    assert!(estimate.contains("no such version in the registry"), "the note of the pair without a value");
    // Five models in the table and five confusion matrices; ten runs in the trend table.
    assert_eq!(page.matches("class=\"swatch\"").count(), 5);
    assert_eq!(page.matches("class=\"confusion\"").count(), 5);
    assert_eq!(page.matches("<tr class=\"current\">").count(), 1);
    let trends = &page[positions[9]..positions[10]];
    assert_eq!(trends.matches("<code>2026").count(), 10);
}

#[test]
fn what_a_run_did_not_measure_is_said_so() {
    let mut report = full_report(0, 0);
    for c in &mut report.candidates {
        c.curves = None;
    }
    report.champion.as_mut().unwrap().curves = None;
    let page = html::render(&report, &[]);
    assert!(page.contains("Drift was not measured in this run."));
    assert!(page.contains("Curves were not measured in this run."));
    assert!(page.contains("first recorded run"));

    let page = html::render(&quality_failed_report(), &[]);
    assert!(page.contains("quality failed"));
    assert!(page.contains("No model was trained or scored in this run."));
    assert!(page.contains("The pattern stage did not run in this run."));
}

#[test]
fn fifty_features_and_ten_runs_stay_under_two_megabytes() {
    let features = 50;
    let runs = history(10, features);
    let page = html::render(runs.last().unwrap(), &runs);
    let size = page.len();
    eprintln!("report.html with {features} features and 10 runs of history: {size} bytes");
    assert!(size < 2 * 1024 * 1024, "{size} bytes");
    assert_eq!(page.matches("<td>feature_").count(), features, "every feature has its drift row");
}

#[test]
fn the_textfile_holds_what_an_operator_alerts_on() {
    let report = full_report(3, 6);
    let text = textfile::render(&report);
    let p = "pipeline=\"bridge-failures\"";
    assert_eq!(sample(&text, "caretaker_run_success", &[p]), Some(1.0));
    assert_eq!(sample(&text, "caretaker_run_status", &[p, "status=\"succeeded\""]), Some(1.0));
    assert_eq!(sample(&text, "caretaker_run_status", &[p, "status=\"failed\""]), Some(0.0));
    assert_eq!(sample(&text, "caretaker_quality_score", &[p]), Some(report.quality.as_ref().unwrap().score));
    assert_eq!(sample(&text, "caretaker_run_duration_seconds", &[p]), Some(3.25));
    assert_eq!(
        sample(&text, "caretaker_run_timestamp_seconds", &[p]),
        Some(report.finished_at.timestamp_millis() as f64 / 1000.0)
    );
    let forest = report.candidates.iter().find(|c| c.name == "forest").unwrap().metrics.as_ref().unwrap().f1;
    assert_eq!(sample(&text, "caretaker_model_f1", &[p, "model=\"forest\"", "role=\"candidate\""]), Some(forest));
    assert_eq!(sample(&text, "caretaker_model_f1", &[p, "model=\"tree\"", "role=\"champion\""]), Some(0.70));
    assert_eq!(sample(&text, "caretaker_deployed", &[p]), Some(1.0));
    assert_eq!(sample(&text, "caretaker_deployed_version", &[p]), Some(2.0));
    assert_eq!(sample(&text, "caretaker_champion_version", &[p]), Some(1.0));
    assert_eq!(sample(&text, "caretaker_champion_info", &[p, "version=\"v0001\"", "model=\"tree\""]), Some(1.0));
    assert_eq!(sample(&text, "caretaker_quarantined_rows", &[p]), Some(17.0));
    assert_eq!(sample(&text, "caretaker_patterns_deleted", &[p]), Some(190.0));
    assert_eq!(sample(&text, "caretaker_patterns_archived", &[p]), Some(142.0));
    let alarms = report.quality.as_ref().unwrap().drift.iter().filter(|d| d.alarm).count() as f64;
    assert_eq!(sample(&text, "caretaker_drift_alarms", &[p]), Some(alarms));
    assert_eq!(sample(&text, "caretaker_feature_drift_alarm", &[p, "feature=\"feature_02\""]), Some(1.0));
    assert!(text.contains("# TYPE caretaker_run_success gauge"), "{text}");
    assert!(text.contains("# HELP caretaker_model_f1 "), "{text}");
    assert_eq!(sample(&text, "caretaker_maintenance_mode", &[p]), Some(0.0));
    assert!(!text.contains("caretaker_maintenance_held_seconds"), "{text}");
    // The rows awaiting their label: how many, the alarm, and every model's estimates.
    assert_eq!(sample(&text, "caretaker_awaiting_label_rows", &[p]), Some(412.0));
    assert_eq!(sample(&text, "caretaker_estimate_alarm", &[p]), Some(1.0));
    assert_eq!(sample(&text, "caretaker_estimated_drop", &[p]), Some(0.08));
    assert_eq!(sample(&text, "caretaker_model_estimated_f1", &[p, "model=\"tree\"", "role=\"champion\""]), Some(0.62));
    assert_eq!(
        sample(&text, "caretaker_model_ece", &[p, "model=\"tree\"", "role=\"champion\""]),
        Some(0.05 - 0.70 / 50.0)
    );
}

#[test]
fn the_textfile_says_when_maintenance_mode_held_the_deploy_and_for_how_long() {
    let mut report = full_report(3, 6);
    report.gate.maintenance = Some(caretaker_core::maintenance::MaintenanceMode {
        since: report.finished_at - chrono::Duration::minutes(90),
        reason: "database upgrade".into(),
        by: "manual".into(),
        holder: None,
    });
    let text = textfile::render(&report);
    let p = "pipeline=\"bridge-failures\"";
    assert_eq!(sample(&text, "caretaker_maintenance_mode", &[p]), Some(1.0));
    assert_eq!(sample(&text, "caretaker_maintenance_held_seconds", &[p]), Some(5400.0));
}

#[test]
fn a_failed_run_reports_failure_and_no_model_scores() {
    let text = textfile::render(&quality_failed_report());
    let p = "pipeline=\"bridge-failures\"";
    assert_eq!(sample(&text, "caretaker_run_success", &[p]), Some(0.0));
    assert_eq!(sample(&text, "caretaker_run_status", &[p, "status=\"quality_failed\""]), Some(1.0));
    assert_eq!(sample(&text, "caretaker_quality_passed", &[p]), Some(0.0));
    assert_eq!(sample(&text, "caretaker_gate_decision", &[p, "decision=\"skipped\""]), Some(1.0));
    assert_eq!(sample(&text, "caretaker_deployed", &[p]), Some(0.0));
    assert!(!text.contains("caretaker_model_f1{"), "{text}");
    assert!(!text.contains("caretaker_drift_alarms"), "drift was not measured: {text}");
}

#[test]
fn label_values_from_user_data_are_escaped_in_the_textfile() {
    let mut report = full_report(1, 4);
    report.quality.as_mut().unwrap().drift[0].feature = "we\"ird\\name\nnext".into();
    let text = textfile::render(&report);
    assert!(text.contains(r#"feature="we\"ird\\name\nnext""#), "{text}");
    assert!(text.lines().all(|l| l.is_empty() || l.starts_with('#') || l.starts_with("caretaker_")), "{text}");
}

#[test]
fn the_textfile_is_replaced_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("collector/caretaker.prom");
    textfile::write(&quality_failed_report(), &path).unwrap();
    textfile::write(&full_report(1, 2), &path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(sample(&text, "caretaker_run_success", &[]), Some(1.0));
    let names: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("caretaker.prom")], "no temporary file is left");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644, "node_exporter, running as another user, reads the file");
    }
}

#[test]
fn compare_gives_deltas_with_their_direction() {
    let a = full_report(0, 4);
    let b = full_report(5, 4);
    let c = compare::compare(&a, &b);
    let forest = c.models.iter().find(|m| m.model == "forest").unwrap();
    let f1 = forest.metrics.iter().find(|m| m.metric == "f1").unwrap();
    assert!((f1.delta.delta.unwrap() - 0.010).abs() < 1e-9, "{f1:?}");
    assert_eq!(f1.delta.improved, Some(true));
    let log_loss = forest.metrics.iter().find(|m| m.metric == "log_loss").unwrap();
    assert!(log_loss.delta.delta.unwrap() < 0.0);
    assert_eq!(log_loss.delta.improved, Some(true), "a lower loss is better");
    assert_eq!(c.models[0].model, "champion");
    assert_eq!(c.models[0].metrics[0].delta.delta, Some(0.0));
    assert!((c.quality_score.delta.unwrap() + 0.005).abs() < 1e-9);
    assert_eq!(c.drift.len(), 4);
    let text = compare::render_text(&c);
    assert!(text.contains("+0.0100 better"), "{text}");
    assert!(text.contains("feature (PSI)"), "{text}");

    // Against a run that stopped at the quality stage: the models it lacks show as absent.
    let c = compare::compare(&quality_failed_report(), &b);
    let forest = c.models.iter().find(|m| m.model == "forest").unwrap();
    assert_eq!(forest.metrics[0].delta.a, None);
    assert_eq!(forest.metrics[0].delta.delta, None);
    assert!(compare::render_text(&c).contains("quality score  0.5000 -> 0.9900"));
}

#[test]
fn the_table_has_a_row_per_model_and_one_for_a_run_without_models() {
    let rows = table::model_rows(&full_report(0, 2));
    let names: Vec<_> = rows.iter().map(|r| r.series_name().unwrap()).collect();
    assert_eq!(names, ["champion", "logreg", "tree", "naive_bayes", "forest"]);
    let forest = &rows[4];
    assert!(forest.deployed);
    assert_eq!(forest.version.as_deref(), Some("v0002"));
    assert_eq!(forest.metric("confusion_tp"), Some((2395.0 * 0.1 * 0.74f64).round()));
    assert_eq!(rows[0].version.as_deref(), Some("v0001"));
    assert!(!rows[0].deployed);

    let rows = table::model_rows(&quality_failed_report());
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].model, None);
    assert_eq!(rows[0].status, "quality_failed");
    assert_eq!(rows[0].quality_score, Some(0.5));
}

#[test]
fn a_report_with_non_finite_values_reads_back() {
    // JSON has no infinity: a check without a threshold is written as null and must read back,
    // or the history, `caretaker report` and the trends could not read the run again.
    let mut report = full_report(1, 2);
    let q = report.quality.as_mut().unwrap();
    q.checks[0].threshold = f64::INFINITY;
    q.drift[0].psi = f64::NAN;
    let json = serde_json::to_string(&report).unwrap();
    let back: caretaker_core::report::RunReport = serde_json::from_str(&json).unwrap();
    let q = back.quality.unwrap();
    assert!(q.checks[0].threshold.is_nan());
    assert!(q.drift[0].psi.is_nan());
    assert_eq!(q.checks[1].threshold, 0.01);
    let page = html::render(&report, &[]);
    assert!(page.contains("PSI per feature"));
}

#[test]
fn the_drift_section_says_what_each_measure_was_held_against() {
    // A threshold other than the customary 0.2, so the page can only have it from the report.
    let mut report = full_report(9, 12);
    for d in &mut report.quality.as_mut().unwrap().drift {
        d.psi_threshold = Some(0.25);
    }
    let page = html::render(&report, &history(10, 12));
    assert!(page.contains("PSI threshold, 0.25."), "the note names the run's own threshold");
    assert!(page.contains("threshold 0.25"), "the plot's line is labelled with it");
    assert!(page.contains("A feature alarms above: PSI 0.25, KS 0.1, JS distance 0.1."));
    // A report written before the thresholds were recorded still renders, with the customary line.
    let mut old = full_report(9, 12);
    for d in &mut old.quality.as_mut().unwrap().drift {
        (d.psi_threshold, d.ks_threshold, d.js_threshold) = (None, None, None);
    }
    let page = html::render(&old, &history(10, 12));
    assert!(page.contains("the customary level of a significant shift"));
    assert!(!page.contains("A feature alarms above"));
}
