//! Issue 9: `models reset`, `data compact` (and a kill at each of its steps), and the weekly
//! performance review through the real binary.

use crate::context;
use crate::models::{champion, weak_pipeline};
use caretaker_test_support::{TestContext, example_pipeline};
use serde_json::Value;
use std::path::PathBuf;

fn ledger(ctx: &TestContext, pipeline: &str) -> Vec<Value> {
    let out = ctx.caretaker(&["models", "ledger", "--pipeline", pipeline, "--json"]);
    out.assert_code(0);
    out.json().as_array().unwrap().clone()
}

fn maintenance_file(ctx: &TestContext) -> PathBuf {
    ctx.path().join("state/maintenance.json")
}

#[test]
fn a_reset_replaces_a_champion_the_gate_would_keep_and_records_why() {
    let ctx = context();
    let pipeline = ctx.pipeline("");
    let pipeline = pipeline.to_str().unwrap();
    ctx.caretaker(&["run", pipeline, "--json"]).assert_code(0);
    let first = champion(&ctx).as_str().unwrap().to_string();
    // The next night, on the same data, the gate keeps that champion: nothing beats it by 0.01.
    let kept = ctx.caretaker(&["run", pipeline, "--json"]);
    kept.assert_code(0);
    assert_eq!(kept.json()["gate"]["decision"], "kept_champion", "{:#}", kept.json()["gate"]);
    assert_eq!(champion(&ctx), first);
    let out = ctx.caretaker(&["models", "reset", pipeline, "--reason", "champion flags every proxy call", "--json"]);
    out.assert_code(0);
    let outcome = out.json();
    assert_eq!(outcome["previous_champion"], first.as_str());
    let deployed = outcome["deployed_version"].as_str().unwrap().to_string();
    assert_ne!(deployed, first, "the reset deploys a new version");
    assert_eq!(champion(&ctx), deployed);
    assert_eq!(outcome["maintenance_left"], true);
    assert!(!maintenance_file(&ctx).exists(), "maintenance mode is left after the reset");
    let reasons = outcome["gate"]["reasons"].to_string();
    assert!(reasons.contains("models reset (champion flags every proxy call)"), "{reasons}");
    assert!(reasons.contains(&format!("champion {first} is not compared")), "{reasons}");
    let rules: Vec<&str> =
        outcome["gate"]["rules"].as_array().unwrap().iter().map(|r| r["rule"].as_str().unwrap()).collect();
    assert!(rules.contains(&"first_run_floor"), "{rules:?}");
    assert!(!rules.contains(&"min_improvement"), "a reset does not compare with the champion: {rules:?}");
    // Every candidate was retrained; the health check ran over the history with this run.
    assert_eq!(outcome["candidates"].as_array().unwrap().len(), 4);
    let health = &outcome["health"];
    assert!(health["score"].as_f64().unwrap() > 0.0, "{health:#}");
    assert!(!health["components"].as_array().unwrap().is_empty());
    // The ledger says reset, with the reason; the run is in the history with its report.
    let entries = ledger(&ctx, pipeline);
    let last = entries.last().unwrap();
    assert_eq!((last["action"].as_str(), last["version"].as_str()), (Some("reset"), Some(deployed.as_str())));
    assert_eq!(last["previous"], first.as_str());
    assert_eq!(last["reason"], "champion flags every proxy call");
    let report_path = PathBuf::from(outcome["report_path"].as_str().unwrap());
    assert!(report_path.exists() && report_path.with_file_name("report.html").exists());
    let runs = ctx.caretaker(&["runs", "list", "--pipeline", pipeline, "--json"]);
    runs.assert_code(0);
    assert!(runs.stdout.contains(outcome["run_id"].as_str().unwrap()), "{}", runs.stdout);
    // A rollback undoes a reset like any deploy.
    ctx.caretaker(&["models", "rollback", "--reason", "reset undone", "--pipeline", pipeline])
        .assert_code(0)
        .assert_stdout_contains(&format!("{first} is the champion again"));
}

#[test]
fn a_reset_that_no_candidate_survives_changes_nothing_and_says_why() {
    let ctx = context();
    let weak = weak_pipeline(&ctx);
    ctx.caretaker(&["run", weak.to_str().unwrap()]).assert_code(0);
    let before = ledger(&ctx, weak.to_str().unwrap()).len();
    let high_floor = ctx.path().join("pipelines/high-floor.toml");
    std::fs::write(&high_floor, example_pipeline(3_000).replace("first_run_floor = 0.5", "first_run_floor = 0.99"))
        .unwrap();
    let out = ctx.caretaker(&["models", "reset", high_floor.to_str().unwrap(), "--reason", "bad champion"]);
    out.assert_code(1)
        .assert_stdout_contains("refused, champion v0001 unchanged")
        .assert_stdout_contains("below the floor 0.9900");
    assert_eq!(champion(&ctx), "v0001");
    assert_eq!(ledger(&ctx, weak.to_str().unwrap()).len(), before, "no ledger line");
    let versions = std::fs::read_dir(ctx.path().join("models/versions")).unwrap().count();
    assert_eq!(versions, 1, "no version stored");
    assert!(!maintenance_file(&ctx).exists(), "maintenance mode is left also when the reset refuses");
}

#[test]
fn a_reset_needs_a_reason_and_leaves_someone_elses_maintenance_alone() {
    let ctx = context();
    let pipeline = ctx.pipeline("");
    let pipeline = pipeline.to_str().unwrap();
    ctx.caretaker(&["models", "reset", pipeline, "--reason", "  "]).assert_code(2).assert_stderr_contains("--reason");
    ctx.caretaker(&["models", "reset", "pipelines/missing.toml", "--reason", "x"])
        .assert_code(2)
        .assert_stderr_contains("pipelines/missing.toml");

    let catalog = ctx.path().join("maintenance.toml");
    std::fs::write(&catalog, "[scheduler]\nstate = \"state\"\n").unwrap();
    let catalog = catalog.to_str().unwrap();
    ctx.caretaker(&["maintenance", "on", "--reason", "database upgrade", "--catalog", catalog]).assert_code(0);
    let held = std::fs::read_to_string(maintenance_file(&ctx)).unwrap();
    ctx.caretaker(&["models", "reset", pipeline, "--reason", "bad champion"])
        .assert_code(2)
        .assert_stderr_contains("maintenance mode is on")
        .assert_stderr_contains("database upgrade");
    assert_eq!(std::fs::read_to_string(maintenance_file(&ctx)).unwrap(), held, "their maintenance stays");
    assert!(!ctx.path().join("models/champion.json").exists(), "nothing deployed");
}

#[test]
fn a_killed_reset_does_not_leave_the_pipeline_in_maintenance() {
    let ctx = context();
    let pipeline = ctx.pipeline("");
    let pipeline = pipeline.to_str().unwrap();
    ctx.caretaker(&["run", pipeline]).assert_code(0);
    let first = champion(&ctx);
    // Killed while it holds maintenance mode: the mode stays behind, naming the dead process.
    let killed = ctx.caretaker_with_env(
        &["models", "reset", pipeline, "--reason", "bad champion"],
        &[("CARETAKER_CRASH_AT", "reset:in_maintenance")],
    );
    assert_ne!(killed.code, Some(0));
    let left: Value = serde_json::from_slice(&std::fs::read(maintenance_file(&ctx)).unwrap()).unwrap();
    assert_eq!(left["by"], "models reset");
    let pid = left["holder"]["pid"].as_u64().unwrap();
    let state = ctx.path().join("state");
    let state = state.to_str().unwrap();
    let status = ctx.caretaker(&["maintenance", "status", "--state", state]);
    status.assert_code(0).assert_stdout_contains("STALE").assert_stdout_contains(&format!("process {pid} on"));
    let status = ctx.caretaker(&["maintenance", "status", "--state", state, "--json"]);
    assert_eq!(status.json()["stale"], true);

    // The next night's run deploys (nothing holds it back) and says whose mode it left.
    let night = ctx.caretaker(&["run", pipeline, "--json"]);
    night.assert_code(0);
    let reasons = night.json()["gate"]["reasons"].to_string();
    assert!(reasons.contains(&format!("recovered stale maintenance mode: process {pid} on")), "{reasons}");
    assert!(!reasons.contains("maintenance mode is on"), "{reasons}");
    assert!(!maintenance_file(&ctx).exists());
    assert_eq!(champion(&ctx), first, "the champion the killed reset left is still the champion");

    // Killed again, after it wrote its working directory; the next reset proceeds with no manual
    // step and sweeps the directory.
    let killed = ctx.caretaker_with_env(
        &["models", "reset", pipeline, "--reason", "bad champion"],
        &[("CARETAKER_CRASH_AT", "reset:quality_checked")],
    );
    assert_ne!(killed.code, Some(0));
    assert!(maintenance_file(&ctx).exists());
    let working = |ctx: &TestContext| -> Vec<String> {
        std::fs::read_dir(ctx.path().join("state"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".reset-"))
            .collect()
    };
    assert_eq!(working(&ctx).len(), 1, "the killed reset's working directory");
    let reset = ctx.caretaker(&["models", "reset", pipeline, "--reason", "bad champion", "--json"]);
    reset.assert_code(0).assert_stderr_contains("recovered stale maintenance mode");
    assert_eq!(reset.json()["maintenance_left"], true);
    assert!(!maintenance_file(&ctx).exists());
    assert_ne!(champion(&ctx), first);
    assert_eq!(working(&ctx), Vec::<String>::new());
}

/// The example pipeline whose data lands as an hourly ingest would leave it: 4 files in each of the
/// 61 daily partitions.
fn ingested(ctx: &TestContext) -> String {
    let base = example_pipeline(3_000).replacen("# files_per_day = 24", "files_per_day = 4", 1);
    let path = ctx.pipeline_from(&base, "");
    ctx.caretaker(&["quality", path.to_str().unwrap()]).assert_code(0); // writes the example data
    path.to_str().unwrap().to_string()
}

/// The dataset's rows and order-free content hash, as `data compact --dry-run` measures them.
fn content(ctx: &TestContext, pipeline: &str) -> (u64, String, u64) {
    let out = ctx.caretaker(&["data", "compact", pipeline, "--dry-run", "--json"]);
    out.assert_code(0);
    let r = out.json();
    (
        r["before"]["rows"].as_u64().unwrap(),
        r["before"]["content_hash"].as_str().unwrap().to_string(),
        r["before"]["files"].as_u64().unwrap(),
    )
}

/// Parquet files under data/events, in any partition.
fn parquet_files(ctx: &TestContext) -> usize {
    fn count(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| {
                let path = e.path();
                if path.is_dir() {
                    count(&path)
                } else {
                    usize::from(e.file_name().to_string_lossy().ends_with(".parquet"))
                }
            })
            .sum()
    }
    count(&ctx.path().join("data/events"))
}

#[test]
fn compaction_turns_each_days_files_into_one_file_with_the_same_rows() {
    let ctx = context();
    let pipeline = &ingested(&ctx);
    let (rows, hash, files) = content(&ctx, pipeline);
    assert_eq!((rows, files), (3_000, 244));
    assert_eq!(parquet_files(&ctx), 244, "a dry run changes nothing");

    let out = ctx.caretaker(&["data", "compact", pipeline]);
    out.assert_code(0).assert_stdout_contains("244 files replaced by 61").assert_stdout_contains("quality   scan");
    assert_eq!(parquet_files(&ctx), 61, "one file per daily partition");
    let (rows_after, hash_after, _) = content(&ctx, pipeline);
    assert_eq!((rows_after, hash_after), (rows, hash.clone()));
    let json = ctx.caretaker(&["data", "compact", pipeline, "--json"]);
    json.assert_code(0);
    assert!(json.json()["plan"]["groups"].as_array().unwrap().is_empty(), "nothing left to compact");
    // The nightly run reads the compacted data as it read the ingested files.
    let out = ctx.caretaker(&["run", pipeline, "--json"]);
    out.assert_code(0);
    assert_eq!(out.json()["quality"]["rows"], 3_000);
}

#[test]
fn a_compaction_killed_at_any_step_loses_no_row_and_counts_none_twice() {
    let ctx = context();
    let pipeline = &ingested(&ctx);
    let (rows, hash, _) = content(&ctx, pipeline);
    for point in [
        "compact:staged",
        "compact:journal_written",
        "compact:swapping",
        "compact:new_visible",
        "compact:removing",
        "compact:old_removed",
    ] {
        let out = ctx.caretaker_with_env(&["data", "compact", pipeline], &[("CARETAKER_CRASH_AT", point)]);
        assert_ne!(out.code, Some(0), "the crash at {point} happened");
        // Whatever the kill left, the dataset reads whole: the same rows, none twice.
        let (rows_now, hash_now, _) = content(&ctx, pipeline);
        assert_eq!((rows_now, hash_now), (rows, hash.clone()), "after a kill at {point}");
        let q = ctx.caretaker(&["quality", pipeline, "--json"]);
        assert_eq!(q.json()["quality"]["rows"], 3_000, "the quality stage after a kill at {point}");
        // The next compaction finishes (or redoes) it.
        ctx.caretaker(&["data", "compact", pipeline]).assert_code(0);
        assert_eq!(parquet_files(&ctx), 61, "after the compaction that followed a kill at {point}");
        assert_eq!(content(&ctx, pipeline), (rows, hash.clone(), 61));
        // Back to the ingested files for the next step.
        std::fs::remove_dir_all(ctx.path().join("data")).unwrap();
        ctx.caretaker(&["quality", pipeline]).assert_code(0);
        assert_eq!(content(&ctx, pipeline), (rows, hash.clone(), 244));
    }
}

#[test]
fn compaction_of_data_it_cannot_read_names_the_file_and_changes_nothing() {
    let ctx = context();
    let pipeline = &ingested(&ctx);
    let (rows, hash, _) = content(&ctx, pipeline);
    let day = std::fs::read_dir(ctx.path().join("data/events")).unwrap().flatten().next().unwrap().path();
    let broken = day.join("part-9.parquet");
    std::fs::write(&broken, b"PAR1 this is not parquet").unwrap();
    let out = ctx.caretaker(&["data", "compact", pipeline]);
    out.assert_code(2).assert_stderr_contains("part-9.parquet");
    assert_eq!(parquet_files(&ctx), 245, "nothing compacted, nothing removed");
    std::fs::remove_file(&broken).unwrap();
    assert_eq!(content(&ctx, pipeline), (rows, hash, 244));
}

/// Three nightly runs (one a day) so the review has a history.
fn three_nights(ctx: &mut TestContext, pipeline: &str) {
    for day in ["2026-11-26T02:00:00Z", "2026-11-27T02:00:00Z", "2026-11-28T02:00:00Z"] {
        ctx.set_now(day);
        ctx.caretaker(&["run", pipeline]).assert_code(0);
    }
}

#[test]
fn the_review_recommends_compaction_with_its_figures_and_applies_it_when_asked() {
    let mut ctx = context();
    let pipeline = ingested(&ctx);
    three_nights(&mut ctx, &pipeline);

    let out = ctx.caretaker(&["review", &pipeline, "--json"]);
    out.assert_code(0);
    let review = out.json();
    assert_eq!(review["details"]["review"]["runs"].as_array().unwrap().len(), 3);
    let recs = review["details"]["review"]["recommendations"].as_array().unwrap().clone();
    let compact = recs.iter().find(|r| r["kind"] == "compact_training_data").expect("compaction recommended");
    assert!(compact["figure"].as_str().unwrap().contains("244 Parquet files"), "{compact:#}");
    assert_eq!(compact["safe_to_apply"], true);
    assert_eq!(review["metrics"]["dataset_files_before"], 244.0);
    assert_eq!(review["metrics"]["dataset_files_after"], 244.0, "not applied without --apply");
    assert_eq!(parquet_files(&ctx), 244);
    let stages: Vec<&str> = review["details"]["review"]["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    assert!(stages.contains(&"quality") && stages.contains(&"retrain"), "{stages:?}");

    let out = ctx.caretaker(&["review", &pipeline, "--apply", "--json"]);
    out.assert_code(0);
    let applied = out.json();
    assert_eq!(applied["metrics"]["dataset_files_before"], 244.0);
    assert_eq!(applied["metrics"]["dataset_files_after"], 61.0);
    assert!(applied["metrics"]["quality_speedup"].as_f64().unwrap() > 0.0);
    assert_eq!(parquet_files(&ctx), 61);

    // The catalog's weekly task runs the same review through the scheduler's path.
    let catalog = ctx.path().join("maintenance.toml");
    std::fs::write(
        &catalog,
        format!(
            "[scheduler]\nstate = \"state\"\n\n[[tasks]]\nid = \"review\"\nkind = \"performance_review\"\nschedule = \"0 3 * * 0\"\nestimated_duration = \"10m\"\nsuccess_criteria = [\"quality_speedup >= 0.5\"]\n\n[tasks.params]\npipeline = \"{pipeline}\"\napply = true\n"
        ),
    )
    .unwrap();
    let out = ctx.caretaker(&["task", "run", "review", "--catalog", catalog.to_str().unwrap()]);
    out.assert_code(0).assert_stdout_contains("reviewed 3 runs");
}

#[test]
fn a_review_of_a_pipeline_without_runs_says_so() {
    let ctx = context();
    let pipeline = ctx.pipeline("");
    let out = ctx.caretaker(&["review", pipeline.to_str().unwrap()]);
    out.assert_code(0).assert_stdout_contains("no runs in the history yet");
    ctx.caretaker(&["review", "pipelines/nope.toml"]).assert_code(2).assert_stderr_contains("pipelines/nope.toml");
}

/// `bench/train.sh pipelines/nightly.toml` on a fresh clone: the bench commands write the example
/// data on first use, as `run` and `quality` do, instead of stopping on a missing dataset.
#[test]
fn the_bench_commands_write_the_example_data_on_first_use() {
    let ctx = context();
    let pipeline = ctx.pipeline("");
    let pipeline = pipeline.to_str().unwrap();
    let train = ctx.caretaker(&["bench", "train", pipeline, "--candidate", "naive_bayes", "--json"]);
    train.assert_code(0);
    let train = train.json();
    assert_eq!(train["rows"], 3_000, "{train:#}");
    assert_eq!(train["candidates"].as_array().unwrap().len(), 1);
    assert!(train["candidates"][0]["f1"].as_f64().unwrap() > 0.0, "{train:#}");

    let other = context();
    let pipeline = other.pipeline("");
    let quality = other.caretaker(&["bench", "quality", pipeline.to_str().unwrap(), "--repeats", "1", "--json"]);
    quality.assert_code(0);
    let quality = quality.json();
    assert_eq!(quality["rows"], 3_000);
    // Each side's kernel time and page faults, under their own names (the kernel's share is
    // part of the processor time, so a swap of the two fields shows), on Linux where
    // /proc/self/stat tells them.
    if cfg!(target_os = "linux") {
        for side in ["scan", "quality"] {
            let (cpu, system) = (&quality[format!("{side}_cpu_seconds")], &quality[format!("{side}_system_seconds")]);
            assert!(system.as_f64().unwrap() <= cpu.as_f64().unwrap(), "{quality:#}");
            assert!(quality[format!("{side}_page_faults")].as_f64().unwrap() > 0.0, "{quality:#}");
        }
    }
}
