//! Issue 2: the nightly run, end to end, from a fresh clone.

use crate::context;

#[test]
fn two_nights_deploy_then_compare_against_the_deployed_champion() {
    let mut ctx = context();
    let pipeline = ctx.pipeline("");
    let pipeline = pipeline.to_str().unwrap();

    // Night 1: the example data is made on first use, the first candidate above the floor deploys.
    let first = ctx.caretaker(&["run", pipeline, "--json"]);
    first.assert_code(0);
    let report = first.json();
    let run_id = report["run_id"].as_str().unwrap().to_string();
    let on_disk = ctx.read_json(format!("reports/{run_id}/report.json"));
    assert_eq!(report, on_disk, "--json prints the same document as report.json");
    assert_eq!(report["status"], "succeeded");
    assert!(report["quality"]["score"].as_f64().unwrap() > 0.9);
    assert_eq!(report["champion"], serde_json::Value::Null);
    assert_eq!(report["gate"]["decision"], "deployed", "{:#}", report["gate"]);
    assert_eq!(report["gate"]["deployed_version"], "v0001");
    let names: Vec<&str> =
        report["candidates"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["logreg", "tree", "naive_bayes", "forest"]);
    for c in report["candidates"].as_array().unwrap() {
        for metric in ["accuracy", "precision", "recall", "f1"] {
            let v = c["metrics"][metric].as_f64().unwrap_or_else(|| panic!("{} has no {metric}", c["name"]));
            assert!((0.0..=1.0).contains(&v), "{} {metric} = {v}", c["name"]);
        }
    }
    assert!(report["patterns"]["deleted"].as_u64().unwrap() > 0, "{:#}", report["patterns"]);
    assert!(report["patterns"]["archived"].as_u64().unwrap() > 0, "{:#}", report["patterns"]);
    assert!(ctx.path().join("models/versions/v0001/model.msgpack").exists());
    let pointer = ctx.read_json("models/champion.json");
    assert_eq!(pointer["version"], "v0001");

    // Night 2, a day later: the champion deployed by night 1 is re-scored on the same holdout
    // as the new candidates.
    ctx.set_now("2026-11-29T02:00:00Z");
    let second = ctx.caretaker(&["run", pipeline, "--json"]);
    second.assert_code(0);
    let report = second.json();
    assert_eq!(report["champion"]["version"], "v0001");
    let champion_f1 = report["champion"]["metrics"]["f1"].as_f64().unwrap();
    let deployed =
        &report["candidates"].as_array().unwrap().iter().find(|c| c["name"] == on_disk["gate"]["candidate"]).unwrap();
    // The same data and seed retrain the same model: the champion and its retrained twin score the same.
    assert!((deployed["metrics"]["f1"].as_f64().unwrap() - champion_f1).abs() < 1e-12);
    assert_eq!(report["gate"]["decision"], "kept_champion", "{:#}", report["gate"]);
    let reasons = report["gate"]["reasons"].to_string();
    assert!(reasons.contains("does not beat champion v0001"), "{reasons}");
    assert!(reasons.contains("training data is unchanged"), "{reasons}");
    assert_eq!(ctx.read_json("models/champion.json")["version"], "v0001");

    // Both runs are in the history.
    let runs = ctx.caretaker(&["runs", "list", "--pipeline", pipeline, "--json"]);
    runs.assert_code(0);
    assert_eq!(runs.json().as_array().unwrap().len(), 2);
}

#[test]
fn a_calibrated_candidate_reports_its_map_and_its_calibration_error() {
    let ctx = context();
    let pipeline =
        ctx.pipeline("[[candidates]]\nname = \"nb_isotonic\"\nfamily = \"gaussian_nb\"\ncalibration = \"isotonic\"\n");
    let out = ctx.caretaker(&["run", pipeline.to_str().unwrap(), "--json"]);
    out.assert_code(0);
    let report = out.json();
    let candidates = report["candidates"].as_array().unwrap();
    let find = |name: &str| candidates.iter().find(|c| c["name"] == name).unwrap();
    for c in candidates {
        let ece = c["metrics"]["ece"].as_f64().unwrap_or_else(|| panic!("{} has no ece", c["name"]));
        assert!((0.0..=1.0).contains(&ece), "{} ece {ece}", c["name"]);
    }
    let (raw, calibrated) = (find("naive_bayes"), find("nb_isotonic"));
    assert!(raw.get("calibration").is_none(), "{:#}", raw);
    let fit = &calibrated["calibration"];
    assert_eq!(fit["method"], "isotonic", "{fit:#}");
    assert!(fit["validation_rows"].as_u64().unwrap() > 100, "{fit:#}");
    assert!(fit["validation_ece_after"].as_f64().unwrap() < fit["validation_ece_before"].as_f64().unwrap());
    // Naive Bayes on correlated features is too sure of itself; on the holdout, which the map
    // never saw, the calibrated twin is closer to the observed rates.
    let (before, after) = (raw["metrics"]["ece"].as_f64().unwrap(), calibrated["metrics"]["ece"].as_f64().unwrap());
    assert!(after < before, "holdout ece {before} -> {after}");

    let run_id = report["run_id"].as_str().unwrap();
    let html = std::fs::read_to_string(ctx.path().join(format!("reports/{run_id}/report.html"))).unwrap();
    assert!(html.contains("isotonic calibration fitted on"), "the models table names the calibration");
    assert!(html.contains(">ece<"), "the models table has an ece column");
    let textfile = std::fs::read_to_string(ctx.path().join("state/metrics.prom")).unwrap();
    assert!(
        textfile.lines().any(|l| l.starts_with("caretaker_model_ece{") && l.contains("model=\"nb_isotonic\"")),
        "{textfile}"
    );
}

#[test]
fn rows_awaiting_their_label_get_estimated_metrics_for_every_model() {
    let mut ctx = context();
    // The newest 36 hours of the example have no label yet; labels take up to two days.
    let base = caretaker_test_support::example_pipeline(3_000)
        .replace("rows = 3000\n", "rows = 3000\nunlabelled_hours = 36\n")
        .replace("label = \"failed\"", "label = \"failed\"\nlabel_delay = \"2d\"");
    let pipeline = ctx.pipeline_from(&base, "");
    let pipeline = pipeline.to_str().unwrap();
    let first = ctx.caretaker(&["run", pipeline, "--json"]);
    first.assert_code(0);
    let report = first.json();
    let awaiting = report["quality"]["awaiting_label_rows"].as_u64().unwrap();
    assert!(awaiting > 20, "{:#}", report["quality"]);
    let rules = report["quality"]["rule_counts"].to_string();
    assert!(!rules.contains("null:failed"), "rows within the delay are not quarantined: {rules}");
    let estimate = &report["estimate"];
    assert_eq!(estimate["rows"].as_u64(), Some(awaiting));
    assert_eq!(estimate["note"], "there is no champion to estimate", "{estimate:#}");
    for c in report["candidates"].as_array().unwrap() {
        let f1 = &c["estimated"]["f1"];
        let (v, low, high) = (f1["value"].as_f64().unwrap(), f1["low"].as_f64().unwrap(), f1["high"].as_f64().unwrap());
        assert!((0.0..=1.0).contains(&v) && low <= v && v <= high, "{}: {f1}", c["name"]);
        assert_eq!(c["estimated"]["rows"].as_u64(), Some(awaiting));
    }

    // A day later the same rows are 24 to 60 hours old: those past two days have no label still
    // and are quarantined; the others still await theirs, and the champion is estimated on them.
    ctx.set_now("2026-11-29T02:00:00Z");
    let second = ctx.caretaker(&["run", pipeline, "--json"]);
    second.assert_code(0);
    let report = second.json();
    let still = report["quality"]["awaiting_label_rows"].as_u64().unwrap();
    assert!(still > 0 && still < awaiting, "{still} of {awaiting}");
    assert!(report["quality"]["rule_counts"].to_string().contains("null:failed"));
    let estimate = &report["estimate"];
    assert_eq!(estimate["metric"], "f1");
    assert!(estimate["champion_realised"].is_number(), "{estimate:#}");
    let baseline = estimate["champion_holdout_estimate"].as_f64().unwrap();
    let estimated = estimate["champion_estimated"]["value"].as_f64().unwrap();
    assert!((estimate["drop"].as_f64().unwrap() - (baseline - estimated)).abs() < 1e-12, "{estimate:#}");
    let high = estimate["champion_estimated"]["high"].as_f64().unwrap();
    assert_eq!(estimate["alarm"].as_bool().unwrap(), baseline - estimated > 0.05 && high < baseline);
    assert_eq!(report["champion"]["estimated"]["f1"]["value"].as_f64(), Some(estimated));

    let run_id = report["run_id"].as_str().unwrap();
    let html = std::fs::read_to_string(ctx.path().join(format!("reports/{run_id}/report.html"))).unwrap();
    assert!(html.contains("id=\"estimate\"") && html.contains("rows await their label"));
    let textfile = std::fs::read_to_string(ctx.path().join("state/metrics.prom")).unwrap();
    assert!(
        textfile.lines().any(|l| l.starts_with("caretaker_awaiting_label_rows{") && l.ends_with(&format!(" {still}"))),
        "{textfile}"
    );
    assert!(
        textfile.lines().any(|l| l.starts_with("caretaker_model_estimated_f1{") && l.contains("role=\"champion\"")),
        "{textfile}"
    );
    // The terminal summary says it too.
    ctx.set_now("2026-11-29T03:00:00Z");
    let third = ctx.caretaker(&["run", pipeline]);
    third.assert_code(0).assert_stdout_contains("rows awaiting their label");
    let (a, b) = (first.json()["run_id"].as_str().unwrap().to_string(), run_id.to_string());
    let compare = ctx.caretaker(&["runs", "compare", &a, &b, "--pipeline", pipeline]);
    compare.assert_code(0).assert_stdout_contains("awaiting label (f1)");
    compare.assert_stdout_contains("champion estimated");
}

#[test]
fn an_estimate_is_set_against_what_came_true_once_its_labels_arrive() {
    let mut ctx = context();
    // The newest two days of the example have no label yet, and labels take up to two days.
    let base = caretaker_test_support::example_pipeline(3_000)
        .replace("rows = 3000\n", "rows = 3000\nunlabelled_hours = 48\n")
        .replace("label = \"failed\"", "label = \"failed\"\nlabel_delay = \"2d\"")
        .replace("max_age_hours = 48 ", "max_age_hours = 96 ");
    let pipeline = ctx.pipeline_from(&base, "");
    let pipeline = pipeline.to_str().unwrap();
    // Night 1 deploys v0001; an hour later v0001 is estimated on the rows awaiting their label.
    ctx.caretaker(&["run", pipeline]).assert_code(0);
    ctx.set_now("2026-11-28T03:00:00Z");
    let estimating = ctx.caretaker(&["run", pipeline, "--json"]);
    estimating.assert_code(0);
    let estimating = estimating.json();
    let estimate = &estimating["estimate"];
    let estimated = &estimate["champion_estimated"];
    assert!(estimated["value"].is_number(), "{estimate:#}");
    let awaiting = estimate["rows"].as_u64().unwrap();
    assert!(awaiting > 50, "{estimate:#}");

    // The labels arrive: the same events, now labelled.
    ctx.caretaker(&[
        "demo",
        "--out",
        "data",
        "--rows",
        "3000",
        "--seed",
        "42",
        "--end",
        "2026-11-28T02:00:00Z",
        "--force",
    ])
    .assert_code(0);
    // A day later the window is not two days old yet: nothing is realised.
    ctx.set_now("2026-11-29T03:00:00Z");
    let early = ctx.caretaker(&["run", pipeline, "--json"]);
    early.assert_code(0);
    assert!(early.json().get("realised_estimates").is_none(), "{:#}", early.json()["realised_estimates"]);

    // Two days after the estimate, v0001 is scored on the same window, every row labelled now.
    ctx.set_now("2026-11-30T03:00:00Z");
    let realising = ctx.caretaker(&["run", pipeline, "--json"]);
    realising.assert_code(0);
    let report = realising.json();
    let pairs = report["realised_estimates"].as_array().unwrap();
    assert_eq!(pairs.len(), 1, "{pairs:#?}");
    let pair = &pairs[0];
    assert_eq!(pair["run_id"], estimating["run_id"]);
    assert_eq!(pair["version"], "v0001");
    assert_eq!(pair["metric"], "f1");
    assert_eq!(&pair["estimate"], estimated);
    assert_eq!((pair["from"].clone(), pair["to"].clone()), (estimate["from"].clone(), estimate["to"].clone()));
    assert_eq!(pair["estimated_rows"].as_u64(), Some(awaiting));
    assert_eq!(pair["labelled_rows"].as_u64(), Some(awaiting), "every estimated row has its label now");
    assert!(pair.get("note").is_none(), "the rows were found by the event times the estimating run kept: {pair:#}");
    // CBPE's estimate, made before the labels existed, holds the value they reveal.
    let realised = pair["realised"].as_f64().unwrap();
    let (low, high) = (estimated["low"].as_f64().unwrap(), estimated["high"].as_f64().unwrap());
    assert!(low <= realised && realised <= high, "realised {realised} outside [{low}, {high}]");
    assert_eq!(pair["within_band"], true);

    let run_id = report["run_id"].as_str().unwrap();
    let html = std::fs::read_to_string(ctx.path().join(format!("reports/{run_id}/report.html"))).unwrap();
    assert!(
        html.contains("Estimates against what came true") && html.contains("within the band"),
        "the page pairs them"
    );
    let textfile = std::fs::read_to_string(ctx.path().join("state/metrics.prom")).unwrap();
    assert!(
        textfile.lines().any(|l| l.starts_with("caretaker_realised_f1{")
            && l.split_whitespace()
                .last()
                .and_then(|v| v.parse::<f64>().ok())
                .is_some_and(|v| (v - realised).abs() < 1e-12)),
        "{textfile}"
    );
    let estimating_id = estimating["run_id"].as_str().unwrap();
    let compare = ctx.caretaker(&["runs", "compare", estimating_id, run_id, "--pipeline", pipeline]);
    compare.assert_code(0).assert_stdout_contains("estimates realised");

    // The next run does not realise it again; the summary said it once.
    ctx.set_now("2026-11-30T04:00:00Z");
    let next = ctx.caretaker(&["run", pipeline]);
    next.assert_code(0);
    assert!(!next.stdout.contains("realised  "), "realised once: {}", next.stdout);
    let show = ctx.caretaker(&["runs", "show", run_id, "--pipeline", pipeline]);
    show.assert_code(0).assert_stdout_contains(&format!("by run {estimating_id}; realised {realised:.4}"));
}

#[test]
fn the_gate_scores_its_candidate_and_the_champion_on_every_slice() {
    let mut ctx = context();
    let pipeline = ctx.pipeline("[gate.slices]\nnumeric = [\"latency_ms\"]\nmin_rows = 50\n");
    let pipeline = pipeline.to_str().unwrap();
    let first = ctx.caretaker(&["run", pipeline, "--json"]);
    first.assert_code(0);
    ctx.set_now("2026-11-29T02:00:00Z");
    let second = ctx.caretaker(&["run", pipeline, "--json"]);
    second.assert_code(0);
    let report = second.json();
    let table = &report["gate"]["slices"];
    assert_eq!(table["metric"], "f1", "{table:#}");
    let slices = table["slices"].as_array().unwrap();
    let features: std::collections::BTreeSet<&str> = slices.iter().map(|s| s["feature"].as_str().unwrap()).collect();
    assert_eq!(features, ["client_version", "latency_ms", "region", "service", "tool"].into());
    // Four quantile bins of latency, covering the holdout once.
    let holdout = report["split"]["holdout_rows"].as_u64().unwrap();
    let latency: u64 =
        slices.iter().filter(|s| s["feature"] == "latency_ms").map(|s| s["rows"].as_u64().unwrap()).sum();
    assert_eq!(latency, holdout);
    // The champion was scored on every slice; the gains are ordered worst first.
    let gains: Vec<f64> = slices.iter().filter_map(|s| s["gain"].as_f64()).collect();
    assert!(!gains.is_empty() && gains.windows(2).all(|w| w[0] <= w[1]), "{gains:?}");
    for s in slices.iter().filter(|s| s["guarded"] == true) {
        assert!(s["rows"].as_u64().unwrap() >= 50 && s["champion"].is_number(), "{s:#}");
    }

    // Permutation importance of every feature, for the candidate and the champion, ranked.
    let importance = &report["importance"];
    let features = importance["features"].as_array().unwrap();
    assert_eq!(features.len(), 12, "{importance:#}");
    let ranks: Vec<u64> = features.iter().map(|f| f["candidate_rank"].as_u64().unwrap()).collect();
    assert_eq!(ranks, (1..=12).collect::<Vec<u64>>());
    assert!(features.iter().all(|f| f["champion"].is_number()), "{importance:#}");
    assert!(features[0]["candidate"].as_f64().unwrap() > 0.0, "the model leans on some feature");

    let run_id = report["run_id"].as_str().unwrap();
    let html = std::fs::read_to_string(ctx.path().join(format!("reports/{run_id}/report.html"))).unwrap();
    assert!(html.contains("id=\"slices\"") && html.contains("gate.slice_guardrail is off"));
    assert!(html.contains("id=\"importance\""));
    let runs = ctx.caretaker(&["runs", "list", "--pipeline", pipeline, "--json"]).json();
    let ids: Vec<&str> = runs.as_array().unwrap().iter().map(|r| r["run_id"].as_str().unwrap()).collect();
    let compare = ctx.caretaker(&["runs", "compare", ids[1], ids[0], "--pipeline", pipeline]);
    compare.assert_code(0).assert_stdout_contains("slice (f1)");
    compare.assert_stdout_contains("latency_ms=[");
}

#[test]
fn above_training_max_rows_every_row_is_checked_and_the_models_train_on_a_seeded_sample() {
    let mut ctx = context();
    let base = caretaker_test_support::example_pipeline(3_000);
    let sampled = base.replace("min_rows = 100\n", "min_rows = 100\nmax_rows = 1500\n");
    assert_ne!(sampled, base);
    let pipeline = ctx.pipeline_from(&sampled, "");
    let pipeline = pipeline.to_str().unwrap();
    let first = ctx.caretaker(&["run", pipeline, "--json"]);
    first.assert_code(0);
    let r = first.json();
    // Every row went through the rules; the models saw a sample of the clean ones.
    assert_eq!(r["data"]["rows"], 3_000);
    let clean = r["quality"]["clean_rows"].as_u64().unwrap();
    assert!(clean > 2_900, "{:#}", r["quality"]);
    assert_eq!(r["split"]["sampled_from"], clean, "{:#}", r["split"]);
    assert_eq!(r["split"]["sample_seed"], 42);
    let in_window = r["split"]["train_rows"].as_u64().unwrap() + r["split"]["holdout_rows"].as_u64().unwrap();
    assert!((1_480..=1_500).contains(&in_window), "{in_window} of the 1,500 sampled rows in the 60-day window");
    assert_eq!(r["gate"]["decision"], "deployed");

    // A night later on the same data, the same rows are drawn: the training data is unchanged.
    ctx.set_now("2026-11-29T02:00:00Z");
    let second = ctx.caretaker(&["run", pipeline, "--json"]);
    second.assert_code(0);
    let again = second.json();
    assert_eq!(again["split"]["train_hash"], r["split"]["train_hash"]);
    assert!(again["gate"]["reasons"].to_string().contains("training data is unchanged"), "{:#}", again["gate"]);
    let shown = ctx.caretaker(&["runs", "show", again["run_id"].as_str().unwrap(), "--pipeline", pipeline]);
    shown.assert_code(0).assert_stdout_contains(&format!("(training.max_rows: a sample of {clean} clean rows)"));
}

#[test]
fn the_human_summary_names_scores_decision_patterns_and_report() {
    let ctx = context();
    let pipeline = ctx.pipeline("");
    let out = ctx.caretaker(&["run", pipeline.to_str().unwrap()]);
    out.assert_code(0)
        .assert_stdout_contains("quality   score")
        .assert_stdout_contains("logreg")
        .assert_stdout_contains("gate      deployed")
        .assert_stdout_contains("patterns  ")
        .assert_stdout_contains("report.json");
}

#[test]
fn data_that_fails_quality_stops_the_run_and_deploys_nothing() {
    let ctx = context();
    let base = caretaker_test_support::example_pipeline(3_000).replace("min_score = 0.9 ", "min_score = 0.9999 ");
    let pipeline = ctx.pipeline_from(&base, "");
    let out = ctx.caretaker(&["run", pipeline.to_str().unwrap(), "--json"]);
    out.assert_code(1);
    let report = out.json();
    assert_eq!(report["status"], "quality_failed");
    assert_eq!(report["gate"]["decision"], "skipped");
    assert_eq!(report["candidates"], serde_json::json!([]));
    assert!(report["message"].as_str().unwrap().contains("below quality.min_score"), "{}", report["message"]);
    assert!(!ctx.path().join("models/champion.json").exists());
    assert_eq!(std::fs::read_dir(ctx.path().join("models/versions")).map(|d| d.count()).unwrap_or(0), 0);
    // The failing rows are kept for inspection, with the rules they broke.
    let quarantine = report["quality"]["quarantine_path"].as_str().unwrap();
    assert!(std::path::Path::new(quarantine).exists());
}

#[test]
fn demo_is_deterministic_for_a_seed_and_an_end() {
    let ctx = context();
    for out in ["a", "b"] {
        ctx.caretaker(&["demo", "--out", out, "--rows", "1000", "--seed", "5", "--end", "2026-01-01T00:00:00Z"])
            .assert_code(0);
    }
    let files = |root: &str| {
        let mut v: Vec<_> = walk(&ctx.path().join(root))
            .into_iter()
            .map(|p| (p.strip_prefix(ctx.path().join(root)).unwrap().to_path_buf(), std::fs::read(&p).unwrap()))
            .collect();
        v.sort();
        v
    };
    let (a, b) = (files("a"), files("b"));
    assert_eq!(a.len(), 61, "60 daily files and the pattern store"); // 60 days + the store
    assert!(a == b, "same seed and end, same bytes");
    // A second demo into the same place refuses rather than overwrite.
    ctx.caretaker(&["demo", "--out", "a"]).assert_code(2).assert_stderr_contains("--force");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

#[test]
fn maintenance_mode_holds_deploys_back() {
    let ctx = context();
    let pipeline = ctx.pipeline("");
    std::fs::create_dir_all(ctx.path().join("state")).unwrap();
    std::fs::write(
        ctx.path().join("state/maintenance.json"),
        r#"{"since":"2026-11-28T01:00:00Z","reason":"database upgrade","by":"manual"}"#,
    )
    .unwrap();
    let out = ctx.caretaker(&["run", pipeline.to_str().unwrap(), "--json"]);
    out.assert_code(0);
    let report = out.json();
    assert_eq!(report["gate"]["decision"], "kept_champion");
    assert!(report["gate"]["reasons"][0].as_str().unwrap().contains("maintenance mode is on"), "{}", report["gate"]);
    assert_eq!(report["gate"]["maintenance"]["reason"], "database upgrade");
    assert!(!ctx.path().join("models/champion.json").exists());
    let textfile = std::fs::read_to_string(ctx.path().join("state/metrics.prom")).unwrap();
    assert!(textfile.contains("caretaker_maintenance_mode{pipeline="), "{textfile}");
    assert!(textfile.lines().any(|l| l.starts_with("caretaker_maintenance_mode{") && l.ends_with(" 1")), "{textfile}");
}
