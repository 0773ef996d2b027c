//! Issue 4: retraining, the gate and a registry you can roll back.

use crate::context;
use caretaker_test_support::{TestContext, example_pipeline};
use serde_json::Value;

/// A pipeline whose only candidate is a decision stump: a weak champion that the full example
/// candidates beat by a wide margin.
pub(crate) fn weak_pipeline(ctx: &TestContext) -> std::path::PathBuf {
    let full = example_pipeline(3_000);
    let head = &full[..full.find("[[candidates]]").unwrap()];
    let tail = &full[full.find("[gate]").unwrap()..];
    let weak = format!(
        "{head}[[candidates]]\nname = \"stump\"\nfamily = \"decision_tree\"\nmax_depth = 1\n\n{}",
        tail.replace("first_run_floor = 0.5", "first_run_floor = 0.0")
    );
    let path = ctx.path().join("pipelines/weak.toml");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, weak).unwrap();
    path
}

pub(crate) fn champion(ctx: &TestContext) -> Value {
    ctx.read_json("models/champion.json")["version"].clone()
}

fn versions(ctx: &TestContext) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(ctx.path().join("models/versions"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Night 1 deploys the stump as v0001; returns the full pipeline for night 2.
fn with_weak_champion(ctx: &TestContext) -> String {
    let weak = weak_pipeline(ctx);
    ctx.caretaker(&["run", weak.to_str().unwrap(), "--json"]).assert_code(0);
    assert_eq!(champion(ctx), "v0001");
    ctx.pipeline("").to_str().unwrap().to_string()
}

#[test]
fn a_better_candidate_replaces_the_champion_and_rollback_and_promote_move_it_back_and_forth() {
    let ctx = context();
    let pipeline = with_weak_champion(&ctx);
    let out = ctx.caretaker(&["run", &pipeline, "--json"]);
    out.assert_code(0);
    let report = out.json();
    assert_eq!(report["champion"]["version"], "v0001");
    assert_eq!(report["gate"]["decision"], "deployed", "{:#}", report["gate"]);
    assert_eq!(report["gate"]["deployed_version"], "v0002");
    let rules: Vec<&str> =
        report["gate"]["rules"].as_array().unwrap().iter().map(|r| r["rule"].as_str().unwrap()).collect();
    assert!(rules.contains(&"min_improvement"), "{rules:?}");
    assert!(rules.iter().any(|r| r.starts_with("guardrail:")), "{rules:?}");
    assert_eq!(champion(&ctx), "v0002");

    let card = ctx.caretaker(&["models", "show", "v0002", "--pipeline", &pipeline]);
    card.assert_code(0);
    assert_eq!(card.json()["replaced"], "v0001");

    ctx.caretaker(&["models", "rollback", "--reason", "recall dropped in production", "--pipeline", &pipeline])
        .assert_code(0)
        .assert_stdout_contains("v0001 is the champion again");
    assert_eq!(champion(&ctx), "v0001");
    ctx.caretaker(&[
        "models",
        "promote",
        "v0002",
        "--reason",
        "the recall alarm was a false one",
        "--pipeline",
        &pipeline,
    ])
    .assert_code(0);
    assert_eq!(champion(&ctx), "v0002");
    let ledger = ctx.caretaker(&["models", "ledger", "--pipeline", &pipeline, "--json"]);
    let actions: Vec<String> =
        ledger.json().as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap().to_string()).collect();
    assert_eq!(actions, ["deploy", "deploy", "rollback", "promote"]);
    // promote without a reason is a usage error and changes nothing.
    ctx.caretaker(&["models", "promote", "v0001", "--pipeline", &pipeline]).assert_code(2);
    assert_eq!(champion(&ctx), "v0002");
}

#[test]
fn a_deploy_killed_at_any_step_leaves_a_loadable_champion_and_a_rerun_converges() {
    for (point, champion_after_crash) in
        [("deploy:staged", "v0001"), ("deploy:version_written", "v0001"), ("deploy:pointer_swapped", "v0002")]
    {
        let ctx = context();
        let pipeline = with_weak_champion(&ctx);
        let crashed = ctx.caretaker_with_env(&["run", &pipeline, "--json"], &[("CARETAKER_CRASH_AT", point)]);
        assert_ne!(crashed.code, Some(0), "{point}: the process should have died");
        assert_eq!(champion(&ctx), champion_after_crash, "{point}");
        // The champion loads: its hashes check out.
        let show = ctx.caretaker(&["models", "show", champion_after_crash, "--pipeline", &pipeline]);
        show.assert_code(0);

        // The next night finishes the work and the registry is consistent again.
        let rerun = ctx.caretaker(&["run", &pipeline, "--json"]);
        rerun.assert_code(0);
        let ledger = ctx.caretaker(&["models", "ledger", "--pipeline", &pipeline, "--json"]).json();
        let last = ledger.as_array().unwrap().last().unwrap().clone();
        assert_eq!(last["version"], champion(&ctx), "{point}: the ledger's last line names the champion");
        assert!(
            !versions(&ctx).iter().any(|v| v.starts_with('.')),
            "{point}: no staging directory left: {:?}",
            versions(&ctx)
        );
        for v in versions(&ctx) {
            ctx.caretaker(&["models", "show", &v, "--pipeline", &pipeline]).assert_code(0);
        }
    }
}

#[test]
fn a_second_run_on_the_same_pipeline_is_refused_with_a_clear_message() {
    let ctx = context();
    let pipeline = ctx.pipeline("");
    let _held = caretaker_core::lock::ProcessLock::acquire(&ctx.path().join("state/run.lock"), "a test").unwrap();
    let out = ctx.caretaker(&["run", pipeline.to_str().unwrap()]);
    out.assert_code(2).assert_stderr_contains("is in use by another caretaker process");
    assert!(!ctx.path().join("models/champion.json").exists());
}

#[test]
fn the_same_data_config_and_seed_give_the_same_model_bytes_and_metrics() {
    let (a, b) = (context(), context());
    let mut reports = Vec::new();
    for ctx in [&a, &b] {
        let out = ctx.caretaker(&["run", ctx.pipeline("").to_str().unwrap(), "--json"]);
        out.assert_code(0);
        reports.push(out.json());
    }
    let bytes = |ctx: &TestContext| std::fs::read(ctx.path().join("models/versions/v0001/model.msgpack")).unwrap();
    assert!(bytes(&a) == bytes(&b), "the deployed models differ");
    for (x, y) in reports[0]["candidates"].as_array().unwrap().iter().zip(reports[1]["candidates"].as_array().unwrap())
    {
        assert_eq!(x["model_blake3"], y["model_blake3"], "{}", x["name"]);
        assert!(x["model_blake3"].as_str().is_some_and(|h| h.len() == 64));
        assert_eq!(x["metrics"], y["metrics"], "{}", x["name"]);
    }
}

#[test]
fn a_tampered_champion_cannot_defend_its_place() {
    let ctx = context();
    let pipeline = with_weak_champion(&ctx);
    std::fs::write(ctx.path().join("models/versions/v0001/model.msgpack"), b"not a model").unwrap();
    let out = ctx.caretaker(&["run", &pipeline, "--json"]);
    out.assert_code(0);
    let report = out.json();
    let error = report["champion"]["error"].as_str().unwrap();
    assert!(error.contains("model.msgpack") && error.contains("does not match"), "{error}");
    assert!(report["gate"]["reasons"][0].as_str().unwrap().contains("v0001 cannot be scored"), "{:#}", report["gate"]);
    assert_eq!(report["gate"]["decision"], "deployed");
}

#[test]
fn too_little_data_skips_training_with_the_reason() {
    let ctx = context();
    let base = example_pipeline(3_000).replace("min_rows = 100", "min_rows = 1000000");
    let out = ctx.caretaker(&["run", ctx.pipeline_from(&base, "").to_str().unwrap(), "--json"]);
    out.assert_code(0);
    let report = out.json();
    assert_eq!(report["gate"]["decision"], "skipped");
    assert!(report["gate"]["reasons"][0].as_str().unwrap().contains("fewer than training.min_rows = 1000000"));
    assert!(!ctx.path().join("models/champion.json").exists());
}

#[test]
fn grid_points_and_tuned_thresholds_are_chosen_on_validation_rows_and_reported() {
    let ctx = context();
    let base = example_pipeline(3_000)
        .replace("max_depth = 8\n", "max_depth = 8\ngrid = { max_depth = [3, 6], min_samples_leaf = [10, 40] }\n");
    let out = ctx.caretaker(&["run", ctx.pipeline_from(&base, "").to_str().unwrap(), "--json"]);
    out.assert_code(0);
    let report = out.json();
    let tree = report["candidates"].as_array().unwrap().iter().find(|c| c["name"] == "tree").unwrap();
    let selection = tree["selection"].as_array().unwrap();
    assert_eq!(selection.len(), 4, "{:#}", tree);
    let chosen: Vec<&Value> = selection.iter().filter(|g| g["chosen"] == true).collect();
    assert_eq!(chosen.len(), 1);
    let best = selection.iter().map(|g| g["validation_score"].as_f64().unwrap()).fold(f64::MIN, f64::max);
    assert_eq!(chosen[0]["validation_score"].as_f64().unwrap(), best);
    assert_eq!(tree["params"], chosen[0]["params"], "the model is refitted with the chosen point");
    assert_eq!(tree["metrics"]["threshold"], chosen[0]["threshold"], "the threshold chosen on validation rows is kept");
}
