//! A broken config is rejected before any work, naming the file and the key.

use crate::context;

#[test]
fn an_unknown_key_is_rejected_with_the_file_and_the_key() {
    let ctx = context();
    let base = caretaker_test_support::example_pipeline(3_000).replace("[gate]\n", "[gate]\nprimary_metirc = \"f1\"\n");
    let pipeline = ctx.pipeline_from(&base, "");
    let out = ctx.caretaker(&["run", pipeline.to_str().unwrap()]);
    out.assert_code(2).assert_stderr_contains("test.toml").assert_stderr_contains("primary_metirc");
    assert!(!ctx.path().join("data").exists(), "nothing was written");
    assert!(!ctx.path().join("reports").exists(), "nothing was written");
}

#[test]
fn bad_values_are_rejected_with_every_key_and_reason() {
    let ctx = context();
    let base = caretaker_test_support::example_pipeline(3_000)
        .replace("min_improvement = 0.01", "min_improvement = -1")
        .replace("holdout_days = 7", "holdout_days = 90");
    let pipeline = ctx.pipeline_from(&base, "");
    let out = ctx.caretaker(&["run", pipeline.to_str().unwrap()]);
    out.assert_code(2)
        .assert_stderr_contains("gate.min_improvement: must be a number >= 0, got -1")
        .assert_stderr_contains("training.window_days: must be longer than training.holdout_days (90), got 60");
}

#[test]
fn a_missing_pipeline_file_is_named() {
    let ctx = context();
    ctx.caretaker(&["run", "pipelines/nope.toml"]).assert_code(2).assert_stderr_contains("pipelines/nope.toml");
}

#[test]
fn a_dataset_that_does_not_exist_is_an_error_naming_it() {
    let ctx = context();
    let base =
        caretaker_test_support::example_pipeline(3_000).replace("[dataset.example]\nrows = 3000\nseed = 42\n", "");
    let pipeline = ctx.pipeline_from(&base, "");
    let out = ctx.caretaker(&["run", pipeline.to_str().unwrap(), "--json"]);
    out.assert_code(2);
    let report = out.json();
    assert_eq!(report["status"], "failed");
    assert!(report["message"].as_str().unwrap().contains("data/events does not exist"), "{}", report["message"]);
    assert!(!ctx.path().join("models/champion.json").exists());
}
