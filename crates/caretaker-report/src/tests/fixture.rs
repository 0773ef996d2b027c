//! Reports made up for tests: every optional part filled in (drift, curves, champion, patterns),
//! built through JSON so that a field added to the report later with a default does not break
//! them.

use caretaker_core::report::RunReport;
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

/// The category value that must show as text, never run.
pub const SCRIPT: &str = "<script>alert(1)</script>";

pub fn start(night: usize) -> DateTime<Utc> {
    "2026-11-18T02:00:00Z".parse::<DateTime<Utc>>().unwrap() + Duration::days(night as i64)
}

fn metrics(f1: f64, rows: u64) -> Value {
    let tp = (rows as f64 * 0.1 * f1).round() as u64;
    let fn_ = (rows as f64 * 0.15) as u64 - tp.min((rows as f64 * 0.15) as u64);
    let fp = (rows / 30).max(1);
    let tn = rows - tp - fn_ - fp;
    json!({
        "rows": rows, "accuracy": 0.9 + f1 / 20.0, "precision": (f1 + 0.1).min(1.0), "recall": f1 - 0.05,
        "f1": f1, "roc_auc": (f1 + 0.2).min(0.99), "pr_auc": f1 + 0.02, "log_loss": 0.5 - f1 / 4.0,
        "brier": 0.12 - f1 / 20.0, "ece": 0.05 - f1 / 50.0, "threshold": 0.5,
        "confusion": {"tp": tp, "fp": fp, "tn": tn, "fn": fn_}
    })
}

/// Metrics estimated on `rows` rows awaiting their label.
fn estimated(f1: f64, rows: u64) -> Value {
    let band = |v: f64| json!({"value": v, "low": v - 0.04, "high": (v + 0.04).min(1.0)});
    json!({
        "rows": rows, "threshold": 0.5, "confidence": 0.95, "expected_positives": rows as f64 * 0.14,
        "accuracy": band(0.9 + f1 / 20.0), "precision": band((f1 + 0.1).min(1.0)), "recall": band(f1 - 0.05),
        "f1": band(f1), "roc_auc": band((f1 + 0.2).min(0.99))
    })
}

/// A curve family whose area grows with `skill` (0-1).
fn curves(skill: f64, points: usize) -> Value {
    let power = 1.0 / (1.0 + 4.0 * skill);
    let roc: Vec<[f64; 2]> = (0..=points)
        .map(|i| {
            let x = i as f64 / points as f64;
            [x, x.powf(power)]
        })
        .collect();
    let pr: Vec<[f64; 2]> = (0..=points)
        .map(|i| {
            let r = i as f64 / points as f64;
            [r, (1.0 - r.powi(3) * (1.0 - 0.15)) * (0.6 + 0.4 * skill)]
        })
        .collect();
    let calibration: Vec<Value> = (0..10).map(|b| {
        let p = (b as f64 + 0.5) / 10.0;
        json!({"predicted": p, "observed": (p + (skill - 0.6) * p * (1.0 - p)).clamp(0.0, 1.0), "rows": 100 + b * 7})
    }).collect();
    json!({"roc": roc, "pr": pr, "calibration": calibration})
}

fn drift(features: usize, night: usize) -> Vec<Value> {
    (0..features)
        .map(|i| {
            let categorical = i % 4 == 3;
            let alarm = i % 7 == 2 || (categorical && i == 3);
            let bins: Vec<String> = if categorical {
                let mut b = vec!["api".to_string(), "batch".into(), "stream".into(), "web".into()];
                if i == 3 {
                    b.push(SCRIPT.to_string());
                }
                b
            } else {
                (0..10).map(|k| format!("[{:.1}, {:.1})", k as f64 * 12.5, (k + 1) as f64 * 12.5)).collect()
            };
            let n = bins.len();
            let reference: Vec<f64> = (0..n)
                .map(|k| 1.0 / n as f64 + if k % 2 == 0 { 0.01 } else { -0.01 } * n.is_multiple_of(2) as u8 as f64)
                .collect();
            let shift = if alarm { 0.06 } else { 0.004 };
            let mut current: Vec<f64> =
                (0..n).map(|k| (reference[k] + if k < n / 2 { shift } else { -shift }).max(0.0)).collect();
            let total: f64 = current.iter().sum();
            current.iter_mut().for_each(|c| *c /= total);
            let psi: f64 = reference.iter().zip(&current).map(|(r, c)| (c - r) * ((c + 1e-6) / (r + 1e-6)).ln()).sum();
            json!({
                "feature": format!("feature_{i:02}"), "kind": if categorical { "categorical" } else { "numeric" },
                "psi": psi + night as f64 * 0.0005, "ks": if categorical { Value::Null } else { json!(shift * 2.5) },
                "js": if categorical { json!(shift) } else { Value::Null },
                "psi_threshold": 0.2,
                "ks_threshold": if categorical { Value::Null } else { json!(0.1) },
                "js_threshold": if categorical { json!(0.1) } else { Value::Null },
                "alarm": alarm, "bins": bins, "reference_share": reference, "current_share": current
            })
        })
        .collect()
}

/// Night `night` of a pipeline with `features` features, everything measured.
pub fn full_report(night: usize, features: usize) -> RunReport {
    report_with(night, features, 200)
}

/// [`full_report`] with `curve_points` points per ROC and PR curve.
pub fn report_with(night: usize, features: usize, curve_points: usize) -> RunReport {
    let started = start(night);
    let finished = started + Duration::milliseconds(3_250);
    let names = ["logreg", "tree", "naive_bayes", "forest"];
    let base = [0.62, 0.72, 0.55, 0.74];
    let candidates: Vec<Value> = names.iter().zip(base).map(|(name, f1)| {
        let f1: f64 = f1 + night as f64 * 0.002;
        json!({
            "name": name, "family": match *name { "logreg" => "logistic_regression", "tree" => "decision_tree",
                "naive_bayes" => "gaussian_nb", _ => "random_forest" },
            "params": {"seed": 42}, "metrics": metrics(f1, 2395), "curves": curves(f1, curve_points),
            "train_seconds": 0.25, "predict_micros_per_row": 1.5, "model_bytes": 48_213,
            "model_blake3": "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00",
            "selection": [{"params": {"max_depth": 6}, "validation_score": f1 - 0.01, "threshold": 0.45, "chosen": false},
                          {"params": {"max_depth": 8}, "validation_score": f1, "threshold": 0.5, "chosen": true}],
            "note": null, "error": null, "estimated": estimated(f1 - 0.03, 412),
            "calibration": if *name == "naive_bayes" {
                json!({"method": "isotonic", "validation_rows": 3000, "validation_ece_before": 0.081, "validation_ece_after": 0.012})
            } else {
                Value::Null
            }
        })
    }).collect();
    let id_of = |night: usize| format!("{}-{:04x}", start(night).format("%Y%m%dT%H%M%SZ"), 0xa000 + night);
    let run_id = id_of(night);
    // Each night realises the estimate of the night before (its labels came within a day); every
    // third one fell outside its band, and night 1 found the version pruned from the registry.
    let realised_estimates: Vec<Value> = (1..=night).rev().take(1).map(|n| {
        let mut pair = json!({"run_id": id_of(n - 1), "version": "v0001", "from": start(n - 1) - Duration::hours(60),
               "to": start(n - 1) - Duration::hours(1), "metric": "f1",
               "estimate": {"value": 0.62, "low": 0.58, "high": 0.66}, "estimated_rows": 412, "labelled_rows": 405,
               "realised": 0.63, "within_band": true});
        if night.is_multiple_of(3) {
            (pair["realised"], pair["within_band"]) = (json!(0.55), json!(false));
        } else if night == 1 {
            (pair["realised"], pair["within_band"]) = (Value::Null, Value::Null);
            pair["note"] = json!("v0001 cannot be loaded: no such version in the registry");
        }
        pair
    }).collect();
    let quality = json!({
        "score": 0.995 - night as f64 * 0.001, "min_score": 0.9, "passed": true, "rows": 20_000, "clean_rows": 19_983,
        "quarantined_rows": 17, "awaiting_label_rows": 412,
        "quarantine_path": format!("/srv/caretaker/reports/{run_id}/quarantine.parquet"),
        "rule_counts": [{"rule": "null:latency_ms", "rows": 9}, {"rule": "duplicate_id", "rows": 8}],
        "checks": [
            {"check": "null_fraction", "column": "latency_ms", "measured": 0.00045, "threshold": 0.05, "passed": true, "detail": "9 of 20000 rows"},
            {"check": "duplicate_ids", "column": "event_id", "measured": 0.0004, "threshold": 0.01, "passed": true, "detail": "8 replayed ids"},
            {"check": "allowed_values", "column": "service", "measured": 1.0, "threshold": 0.0, "passed": false,
             "detail": format!("unseen category {SCRIPT}")}
        ],
        "drift": drift(features, night)
    });
    let patterns = json!({"store": "/srv/caretaker/data/patterns/store.parquet", "before": 2000, "deleted": 190, "archived": 142,
                     "kept": 1668, "store_bytes_before": 72_908, "store_bytes_after": 64_000, "archive_bytes_written": 9_000,
                     "archive_files": ["/srv/caretaker/data/patterns/archive/date=2026-11-28/part-1a2b3c.parquet"],
                     "created_in_future": 0, "restored_exempt": 3,
                     "discovery": {"train_rows": 17_588, "mined": 57, "discovered": 12, "updated": 45, "already_archived": 2,
                                   "matched": 380, "uses_counted": 4_210, "unmatchable": 1, "holdout_matches": 640,
                                   "holdout_precision": 0.81, "cut_points": {"latency_ms": [250.0, 1000.0], "retries": [3.0]}}});
    let value = json!({
        "schema_version": caretaker_core::report::REPORT_SCHEMA_VERSION,
        "run_id": run_id,
        "pipeline": "bridge-failures",
        "config_path": "/srv/caretaker/pipelines/nightly.toml",
        "config_hash": "9f2c1e7d4b8a6f0e3c5d7a9b1e2f4c6d8a0b2c4e6f8a1b3c5d7e9f0a2b4c6d8e",
        "started_at": started, "finished_at": finished,
        "status": "succeeded", "message": null,
        "data": {"path": "/srv/caretaker/data/events", "files": 60, "bytes": 1_234_567, "rows": 20_000,
                 "newest_event": started - Duration::hours(1)},
        "quality": quality,
        "split": {"train_rows": 17_588, "holdout_rows": 2_395, "train_positive_rate": 0.15, "holdout_positive_rate": 0.16,
                  "holdout_from": started - Duration::days(7), "window_from": started - Duration::days(60),
                  "train_hash": "5e1d2c3b4a59687766554433221100ffeeddccbbaa99887766554433221100ff",
                  "sampled_from": 35_000, "sample_seed": 42},
        "candidates": candidates,
        "champion": {"version": "v0001", "name": "tree", "family": "decision_tree", "metrics": metrics(0.70, 2395),
                     "curves": curves(0.70, curve_points), "error": null, "trained_on_hash": "0f1e2d3c",
                     "estimated": estimated(0.62, 412)},
        "importance": {"metric": "f1", "rows": 2395, "repeats": 3, "seed": 42, "candidate": "forest",
                       "features": (0..features).map(|i| json!({
                           "feature": format!("feature_{i:02}"), "candidate": 0.3 / (i + 1) as f64,
                           "champion": 0.25 / ((i + 2) % (features + 1) + 1) as f64,
                           "candidate_rank": i + 1, "champion_rank": (i + 2) % (features + 1) + 1
                       })).collect::<Vec<_>>()},
        "estimate": {"rows": 412, "from": started - Duration::hours(60), "to": started - Duration::hours(1), "metric": "f1",
                     "champion_realised": 0.70, "champion_holdout_estimate": 0.70,
                     "champion_estimated": {"value": 0.62, "low": 0.58, "high": 0.66},
                     "drop": 0.08, "alarm_threshold": 0.05, "alarm": true, "note": null},
        "realised_estimates": realised_estimates,
        "gate": {"decision": "deployed", "candidate": "forest", "deployed_version": "v0002",
                 "reasons": ["forest f1 0.7400 beats champion v0001 (0.7000) by 0.0400, at least gate.min_improvement 0.0100"],
                 "rules": [{"rule": "min_improvement", "passed": true, "measured": 0.04, "threshold": 0.01, "detail": "f1 0.7400 - 0.7000"}],
                 "slices": {"metric": "f1", "min_rows": 200, "guardrail": 0.05, "slices": [
                     {"feature": "service", "value": SCRIPT, "key": SCRIPT, "rows": 420, "positives": 61,
                      "candidate": 0.66, "champion": 0.69, "gain": -0.03, "guarded": true},
                     {"feature": "latency_ms", "value": "[1200, 5000]", "key": "bin 04", "rows": 150, "positives": 40,
                      "candidate": 0.70, "champion": 0.71, "gain": -0.01, "guarded": false},
                     {"feature": "service", "value": "api", "key": "api", "rows": 1200, "positives": 190,
                      "candidate": 0.78, "champion": 0.71, "gain": 0.07, "guarded": true}]}},
        "patterns": patterns,
        "stages": [{"stage": "quality", "seconds": 0.9, "rows": 20_000}, {"stage": "retrain", "seconds": 1.8, "rows": 17_588},
                   {"stage": "evaluate", "seconds": 0.1, "rows": 2_395}, {"stage": "deploy", "seconds": 0.05, "rows": null},
                   {"stage": "patterns", "seconds": 0.2, "rows": 2000}],
        "report_dir": format!("/srv/caretaker/reports/{run_id}")
    });
    serde_json::from_value(value).expect("the fixture is a report")
}

/// Nights `0..nights`, oldest first.
pub fn history(nights: usize, features: usize) -> Vec<RunReport> {
    (0..nights).map(|n| full_report(n, features)).collect()
}

/// A run stopped by the quality stage: no models, no drift, no curves.
pub fn quality_failed_report() -> RunReport {
    let mut r = full_report(0, 0);
    r.status = caretaker_core::report::RunStatus::QualityFailed;
    r.message = Some("quality score 0.500 is below quality.min_score 0.900".into());
    if let Some(q) = r.quality.as_mut() {
        q.score = 0.5;
        q.passed = false;
    }
    r.split = None;
    r.candidates.clear();
    r.champion = None;
    r.patterns = None;
    r.gate = caretaker_core::report::GateReport::skipped(
        "the data failed the quality stage: nothing was trained or deployed",
    );
    r
}
