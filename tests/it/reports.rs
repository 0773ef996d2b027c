//! Issue 6: reports data scientists want to open in the morning — report.html, the Prometheus
//! textfile, `report --html`, `runs compare`, `runs export`, and report.json's snapshot.

use crate::context;
use caretaker_test_support::{TestContext, browser, example_pipeline};
use serde_json::Value;

/// The example pipeline with its textfile in a collector directory.
fn pipeline(ctx: &TestContext, name: Option<&str>) -> String {
    let mut base = example_pipeline(3_000)
        .replace("state = \"state\"", "state = \"state\"\nmetrics_textfile = \"collector/caretaker.prom\"");
    if let Some(name) = name {
        base = base.replace("name = \"bridge-failures\"", &format!("name = {name:?}"));
    }
    ctx.pipeline_from(&base, "").to_str().unwrap().to_string()
}

/// The value of `name{labels}` in a textfile, every label given as `key="value"`.
fn sample(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
        (metric == name && labels.iter().all(|l| rest.contains(l))).then(|| value.parse().ok())?
    })
}

fn f1_of(report: &Value, model: &str) -> f64 {
    report["candidates"].as_array().unwrap().iter().find(|c| c["name"] == model).unwrap()["metrics"]["f1"]
        .as_f64()
        .unwrap()
}

#[test]
fn issue_6_two_nights_write_pages_textfiles_comparisons_and_an_export() {
    let mut ctx = context();
    let pipeline = pipeline(&ctx, None);
    let pipeline = pipeline.as_str();

    let first = ctx.caretaker(&["run", pipeline, "--json"]);
    first.assert_code(0);
    let night1 = first.json();
    let id1 = night1["run_id"].as_str().unwrap().to_string();
    let textfile = ctx.path().join("collector/caretaker.prom");
    let text = std::fs::read_to_string(&textfile).expect("the run wrote its textfile");
    let p = "pipeline=\"bridge-failures\"";
    assert_eq!(sample(&text, "caretaker_run_success", &[p]), Some(1.0), "{text}");
    assert_eq!(sample(&text, "caretaker_deployed", &[p]), Some(1.0), "{text}");
    let close = |a: Option<f64>, b: f64| a.is_some_and(|a| (a - b).abs() < 1e-12);
    assert!(
        close(sample(&text, "caretaker_quality_score", &[p]), night1["quality"]["score"].as_f64().unwrap()),
        "{text}"
    );
    assert!(
        close(
            sample(&text, "caretaker_model_f1", &[p, "model=\"tree\"", "role=\"candidate\""]),
            f1_of(&night1, "tree")
        ),
        "{text}"
    );
    assert!(sample(&text, "caretaker_run_duration_seconds", &[p]).unwrap() > 0.0);
    // Each stage's own peak memory, as report.json gives it (Linux reads it from /proc).
    if cfg!(target_os = "linux") {
        let retrain = night1["stages"].as_array().unwrap().iter().find(|s| s["stage"] == "retrain").unwrap();
        let peak = retrain["peak_rss_bytes"].as_f64().expect("the retrain stage's peak memory");
        assert!(peak > 1e6, "{retrain}");
        assert_eq!(sample(&text, "caretaker_stage_peak_rss_bytes", &[p, "stage=\"retrain\""]), Some(peak), "{text}");
    }

    ctx.set_now("2026-11-29T02:00:00Z");
    let second = ctx.caretaker(&["run", pipeline]);
    second.assert_code(0).assert_stdout_contains("report.html");
    let runs = ctx.caretaker(&["runs", "list", "--pipeline", pipeline, "--json"]).json();
    let id2 = runs[0]["run_id"].as_str().unwrap().to_string();
    let night2 = ctx.read_json(format!("reports/{id2}/report.json"));

    // The textfile is the second night's now: the champion was kept.
    let text = std::fs::read_to_string(&textfile).unwrap();
    assert_eq!(sample(&text, "caretaker_deployed", &[p]), Some(0.0), "{text}");
    assert_eq!(sample(&text, "caretaker_gate_decision", &[p, "decision=\"kept_champion\""]), Some(1.0), "{text}");
    assert_eq!(sample(&text, "caretaker_champion_version", &[p]), Some(1.0), "{text}");
    assert!(sample(&text, "caretaker_model_f1", &[p, "role=\"champion\""]).is_some(), "{text}");

    // Each night's page; the second one's trends hold both nights.
    let page2 = std::fs::read_to_string(ctx.path().join(format!("reports/{id2}/report.html"))).unwrap();
    assert!(page2.len() < 2 * 1024 * 1024);
    for needle in ["id=\"summary\"", "kept champion v0001", "aria-label=\"F1 on each run", "aria-label=\"Quality score"]
    {
        assert!(page2.contains(needle), "the second night's page lacks {needle:?}");
    }
    assert!(page2.contains(&id1) && page2.contains(&id2), "the trend table lists both runs");
    assert!(page2.contains("Drift was not measured in this run.") || page2.contains("aria-label=\"PSI per feature\""));

    // `report --html` renders a past run again, with the trends up to that run only.
    let out = ctx.caretaker(&["report", &id1, "--html", "out/night1.html", "--pipeline", pipeline]);
    out.assert_code(0).assert_stdout_contains("night1.html");
    let page1 = std::fs::read_to_string(ctx.path().join("out/night1.html")).unwrap();
    assert!(page1.contains("deployed tree as v0001") || page1.contains("as v0001"), "night 1 deployed v0001");
    assert!(page1.contains("first recorded run"), "night 1 has no earlier run to trend against");
    assert!(!page1.contains(&id2), "night 1's page knows nothing of night 2");

    // `runs compare` gives B - A for every model, the champion included.
    let compare = ctx.caretaker(&["runs", "compare", &id1, &id2, "--pipeline", pipeline, "--json"]);
    compare.assert_code(0);
    let c = compare.json();
    assert_eq!(c["a"]["run_id"], id1.as_str());
    let tree = c["models"].as_array().unwrap().iter().find(|m| m["model"] == "tree").unwrap();
    let f1 = tree["metrics"].as_array().unwrap().iter().find(|m| m["metric"] == "f1").unwrap();
    let delta = f1_of(&night2, "tree") - f1_of(&night1, "tree");
    assert!((f1["delta"].as_f64().unwrap() - delta).abs() < 1e-12, "{f1}");
    let champion = c["models"].as_array().unwrap().iter().find(|m| m["model"] == "champion").unwrap();
    assert_eq!(champion["metrics"][0]["a"], Value::Null, "night 1 had no champion");
    let text = ctx.caretaker(&["runs", "compare", &id1, &id2, "--pipeline", pipeline]);
    text.assert_code(0).assert_stdout_contains("quality score").assert_stdout_contains("B - A");

    // `runs export` writes one row per run and model.
    let export = ctx.caretaker(&[
        "runs",
        "export",
        "--format",
        "parquet",
        "out/history.parquet",
        "--pipeline",
        pipeline,
        "--json",
    ]);
    export.assert_code(0);
    let e = export.json();
    assert_eq!(e["runs"], 2);
    assert_eq!(e["rows"], 4 + 5, "four candidates on night 1; the champion and four candidates on night 2");
    let columns: Vec<&str> = e["columns"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
    for column in ["run_id", "started_at", "model", "role", "f1", "roc_auc", "log_loss", "confusion_tp"] {
        assert!(columns.contains(&column), "no {column} in {columns:?}");
    }
    let bytes = std::fs::read(ctx.path().join("out/history.parquet")).unwrap();
    assert_eq!(&bytes[..4], b"PAR1");
}

#[test]
fn issue_6_bad_report_commands_name_what_is_wrong() {
    let ctx = context();
    let pipeline = pipeline(&ctx, None);
    let pipeline = pipeline.as_str();
    ctx.caretaker(&["run", pipeline]).assert_code(0);
    let id = ctx.caretaker(&["runs", "list", "--pipeline", pipeline, "--json"]).json()[0]["run_id"]
        .as_str()
        .unwrap()
        .to_string();

    ctx.caretaker(&["runs", "compare", &id, "20990101T000000Z-dead", "--pipeline", pipeline])
        .assert_code(2)
        .assert_stderr_contains("no run \"20990101T000000Z-dead\"");
    ctx.caretaker(&["report", "nope", "--html", "x.html", "--pipeline", pipeline])
        .assert_code(2)
        .assert_stderr_contains("no run \"nope\"");
    assert!(!ctx.path().join("x.html").exists());
    ctx.caretaker(&["runs", "export", "--format", "csv", "x.csv", "--pipeline", pipeline])
        .assert_code(2)
        .assert_stderr_contains("csv");
    // A directory where the export file should go.
    std::fs::create_dir_all(ctx.path().join("taken.parquet")).unwrap();
    ctx.caretaker(&["runs", "export", "--format", "parquet", "taken.parquet", "--pipeline", pipeline])
        .assert_code(2)
        .assert_stderr_contains("taken.parquet");

    let bad =
        example_pipeline(3_000).replace("state = \"state\"", "state = \"state\"\nmetrics_textfile = \"metrics.txt\"");
    let bad = ctx.pipeline_from(&bad, "");
    ctx.caretaker(&["run", bad.to_str().unwrap()])
        .assert_code(2)
        .assert_stderr_contains("output.metrics_textfile")
        .assert_stderr_contains("must end in .prom");
}

#[test]
fn issue_6_the_page_of_a_real_run_opens_in_chromium_and_escapes_user_data() {
    let ctx = context();
    let name = "<script>alert(1)</script> & co";
    let pipeline = pipeline(&ctx, Some(name));
    let run = ctx.caretaker(&["run", &pipeline, "--json"]);
    run.assert_code(0);
    let report = run.json();
    let page = std::path::PathBuf::from(report["report_dir"].as_str().unwrap()).join("report.html");
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(!html.to_ascii_lowercase().contains("<script"), "the pipeline name got in as markup");
    assert!(html.contains("&#60;script&#62;alert(1)&#60;/script&#62; &#38; co"), "the name is not shown as text");
    let text = std::fs::read_to_string(ctx.path().join("collector/caretaker.prom")).unwrap();
    assert!(text.contains(r#"pipeline="<script>alert(1)</script> & co""#), "{text}");

    let Some(chromium) = browser::chromium() else { return };
    let shot = browser::artifacts_dir().join("report-real-run.png");
    let _ = std::fs::remove_file(&shot);
    let load = browser::load(&chromium, &page, Some((&shot, 1280, 3600)));
    eprintln!("report: {}\nscreenshot: {}", page.display(), shot.display());
    assert!(load.console.is_empty(), "console messages: {:#?}", load.console);
    assert!(load.requests.is_empty(), "the page requested {:?}", load.requests);
    assert!(load.dom.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; co"), "the name is not text in the DOM");
    for id in ["summary", "quality", "drift", "models", "confusion", "curves", "trends", "patterns"] {
        assert!(load.dom.contains(&format!("id=\"{id}\"")), "the loaded page lacks #{id}");
    }
    assert_eq!(load.dom.matches("class=\"confusion\"").count(), 4, "one confusion matrix per candidate");
    assert!(load.screenshot.is_some());
}

/// Floats become `"[f64]"`: the snapshot pins the fields, names, counts and decisions of a real
/// run, not figures that any change to training moves.
fn without_floats(value: &mut Value) {
    match value {
        Value::Number(n) if !(n.is_i64() || n.is_u64()) => *value = Value::String("[f64]".into()),
        Value::Array(items) => items.iter_mut().for_each(without_floats),
        Value::Object(fields) => fields.values_mut().for_each(without_floats),
        _ => {}
    }
}

#[test]
fn issue_6_report_json_of_a_first_run_snapshot() {
    let ctx = context();
    let pipeline = pipeline(&ctx, None);
    let run = ctx.caretaker(&["run", &pipeline, "--json"]);
    run.assert_code(0);
    let mut report = run.json();
    without_floats(&mut report);
    insta::assert_json_snapshot!("first_run_report", report, {
        ".run_id" => "[run_id]",
        ".started_at" => "[time]",
        ".finished_at" => "[time]",
        ".config_path" => "[path]",
        ".config_hash" => "[hash]",
        ".report_dir" => "[path]",
        ".data.path" => "[path]",
        ".data.bytes" => "[bytes]",
        ".data.newest_event" => "[time]",
        ".quality.quarantine_path" => "[path]",
        ".split.holdout_from" => "[time]",
        ".split.window_from" => "[time]",
        ".split.train_hash" => "[hash]",
        ".candidates[].model_blake3" => "[hash]",
        ".patterns.store" => "[path]",
        ".patterns.archive_files[]" => "[path]",
        ".patterns.store_bytes_before" => "[bytes]",
        ".patterns.store_bytes_after" => "[bytes]",
        ".patterns.archive_bytes_written" => "[bytes]",
        ".stages[].peak_rss_bytes" => "[bytes]",
        ".quality.drift[].reference_share" => "[shares]",
        ".quality.drift[].current_share" => "[shares]",
    });
}
