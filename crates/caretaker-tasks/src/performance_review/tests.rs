use super::*;
use crate::testing::{self, PipelineFixture};
use caretaker_core::report::StageTiming;
use caretaker_test_support::run_report;

fn task(fixture: &PipelineFixture, extra: &str) -> PerformanceReview {
    PerformanceReview::build(&testing::table(&format!("pipeline = 'pipelines/test.toml'\n{extra}")), fixture.path())
        .unwrap_or_else(|p| panic!("{p}"))
}

/// Run `i` (day `i` of November) with the given stages: (name, seconds, rows).
fn run(i: usize, stages: &[(&str, f64, Option<u64>)]) -> RunReport {
    let mut r = run_report(
        &format!("202611{:02}T020000Z-000{i}", i + 1),
        &format!("2026-11-{:02}T02:00:00Z", i + 1),
        1.0,
        0.8,
        10.0,
    );
    r.stages = stages
        .iter()
        .map(|(stage, seconds, rows)| StageTiming {
            stage: stage.to_string(),
            seconds: *seconds,
            rows: *rows,
            peak_rss_bytes: None,
        })
        .collect();
    r
}

fn kinds(review: &Review) -> Vec<&'static str> {
    review.recommendations.iter().map(|r| r.kind).collect()
}

#[test]
fn a_stage_over_one_and_a_half_times_its_median_is_flagged_with_its_figure() {
    let fixture = PipelineFixture::new();
    let retrain = [10.0, 11.0, 9.0, 10.0, 30.0];
    let runs: Vec<RunReport> = retrain
        .iter()
        .enumerate()
        .map(|(i, &s)| {
            run(i, &[("quality", 2.0, Some(1000)), ("retrain", s, Some(800)), ("deploy", 0.01 + i as f64 * 0.01, None)])
        })
        .collect();
    let review = task(&fixture, "").review(&runs, None);
    let stage = |name: &str| review.stages.iter().find(|s| s.stage == name).unwrap();
    assert!(stage("retrain").slow);
    assert_eq!(stage("retrain").median_seconds, 10.0);
    assert!((stage("retrain").latest_over_median - 3.0).abs() < 1e-9);
    assert!(!stage("quality").slow);
    // 0.05 s against a median of 0.03 s is 1.7x, but below a second: noise, not a finding.
    assert!(!stage("deploy").slow);
    assert_eq!(stage("quality").rows_per_second, Some(500.0));
    // Its rows did not change, so its time also outgrew them.
    assert_eq!(kinds(&review), ["investigate_slow_stage", "investigate_scaling"]);
    assert_eq!(
        review.recommendations[0].figure,
        "retrain took 30.00 s in the newest run, 3.0x its median of 10.00 s over 5 runs"
    );
    // Two runs are too few to call anything slow.
    assert!(task(&fixture, "").review(&runs[3..], None).stages.iter().all(|s| !s.slow));
}

#[test]
fn a_stage_whose_time_grows_faster_than_its_rows_is_flagged_and_one_that_keeps_pace_is_not() {
    let fixture = PipelineFixture::new();
    // quality: rows x1.1, time x2. retrain: rows x2, time x2.
    let runs: Vec<RunReport> =
        [(1000, 2.0, 500, 3.0), (1000, 2.0, 500, 3.0), (1100, 4.0, 1000, 6.0), (1100, 4.0, 1000, 6.0)]
            .iter()
            .enumerate()
            .map(|(i, &(qr, qs, rr, rs))| run(i, &[("quality", qs, Some(qr)), ("retrain", rs, Some(rr))]))
            .collect();
    let review = task(&fixture, "").review(&runs, None);
    let quality = &review.stages[0];
    assert_eq!(quality.stage, "quality");
    assert!(quality.outgrows_rows);
    assert_eq!((quality.time_growth, quality.rows_growth), (Some(2.0), Some(1.1)));
    assert!(!review.stages[1].outgrows_rows, "{:?}", review.stages[1]);
    let scaling: Vec<&Recommendation> =
        review.recommendations.iter().filter(|r| r.kind == "investigate_scaling").collect();
    assert_eq!(scaling.len(), 1);
    assert!(
        scaling[0].figure.starts_with("quality time grew x2.00 while its rows grew x1.10"),
        "{}",
        scaling[0].figure
    );
}

#[test]
fn a_quarantine_growing_run_over_run_is_named_with_its_counts_and_its_top_rule() {
    let fixture = PipelineFixture::new();
    let with_quarantine = |counts: &[u64]| -> Vec<RunReport> {
        counts
            .iter()
            .enumerate()
            .map(|(i, &q)| {
                let mut r = run(i, &[]);
                let quality = r.quality.as_mut().unwrap();
                quality.rows = 1000;
                quality.quarantined_rows = q;
                quality.rule_counts = vec![
                    caretaker_core::report::RuleCount { rule: "range:latency_ms".into(), rows: q.saturating_sub(2) },
                    caretaker_core::report::RuleCount { rule: "duplicate_id".into(), rows: 2 },
                ];
                r
            })
            .collect()
    };
    let review = task(&fixture, "").review(&with_quarantine(&[5, 10, 20, 45]), None);
    assert_eq!(review.quarantined_rows, [5, 10, 20, 45]);
    assert_eq!(kinds(&review), ["fix_quarantine_source"]);
    assert_eq!(
        review.recommendations[0].figure,
        "quarantined rows 10 -> 20 -> 45 over the newest 3 runs (1.00% -> 2.00% -> 4.50% of their rows); most broken rule range:latency_ms (43 rows)"
    );
    // Up and down again is not a trend; a small rise is not one worth a recommendation.
    assert!(task(&fixture, "").review(&with_quarantine(&[10, 20, 15]), None).recommendations.is_empty());
    assert!(task(&fixture, "").review(&with_quarantine(&[10, 11, 12]), None).recommendations.is_empty());
}

#[test]
fn a_candidate_that_never_wins_and_costs_most_of_the_training_time_is_named() {
    let fixture = PipelineFixture::new();
    let runs_where = |forest_wins_in: Option<usize>| -> Vec<RunReport> {
        (0..4)
            .map(|i| {
                let mut r = run(i, &[]);
                let mut forest = r.candidates[0].clone();
                forest.name = "forest".into();
                forest.family = "random_forest".into();
                forest.train_seconds = 9.0;
                r.candidates.push(forest);
                if forest_wins_in == Some(i) {
                    r.gate.candidate = Some("forest".into());
                }
                r
            })
            .collect()
    };
    let review = task(&fixture, "").review(&runs_where(None), None);
    assert_eq!(kinds(&review), ["drop_costly_candidate"]);
    assert_eq!(
        review.recommendations[0].figure,
        "forest (random_forest) was never the best in 4 runs and took 90% of the training time (36.0 s of 40.0 s)"
    );
    let tree = review.candidates.iter().find(|c| c.name == "tree").unwrap();
    assert_eq!((tree.wins, tree.runs), (4, 4));
    // A family that wins now and then earns its cost.
    assert!(task(&fixture, "").review(&runs_where(Some(2)), None).recommendations.is_empty());
    // Raising the share it must cost keeps it quiet.
    assert!(task(&fixture, "training_share = 0.95").review(&runs_where(None), None).recommendations.is_empty());
}

#[test]
fn peak_memory_far_above_its_median_is_named_with_the_stage_where_it_rose() {
    let fixture = PipelineFixture::new();
    let runs: Vec<RunReport> = [100u64, 110, 105, 400]
        .iter()
        .enumerate()
        .map(|(i, &mib)| {
            let mut r = run(i, &[("quality", 2.0, Some(1000)), ("retrain", 5.0, Some(800))]);
            r.stages[0].peak_rss_bytes = Some(90 << 20);
            r.stages[1].peak_rss_bytes = Some(mib << 20);
            r
        })
        .collect();
    let review = task(&fixture, "").review(&runs, None);
    assert_eq!(review.peak_rss_bytes.last(), Some(&Some(400 << 20)));
    assert_eq!(kinds(&review), ["investigate_memory"]);
    assert_eq!(
        review.recommendations[0].figure,
        "peak memory 400.0 MiB in the newest run, 3.7x its median of 107.5 MiB (it rose most in the retrain stage)"
    );
}

fn dataset(files: usize, files_after: usize, seconds: f64) -> DatasetReport {
    DatasetReport {
        dataset: "data/events".into(),
        target_bytes: 128 << 20,
        plan: DatasetPlan { files, bytes: files as u64 * 200 * 1024, directories: 60, small_files: files, files_after },
        before: DatasetFigures {
            files,
            bytes: files as u64 * 200 * 1024,
            rows: 20_000,
            content_hash: "20000:ab".into(),
            quality_seconds: seconds,
        },
        after: None,
        interrupted: None,
    }
}

#[test]
fn many_small_files_recommend_compaction_the_one_safe_recommendation() {
    let fixture = PipelineFixture::new();
    let many = dataset(400, 60, 2.0);
    let review = task(&fixture, "").review(&[], Some(&many));
    assert_eq!(kinds(&review), ["compact_training_data"]);
    let r = &review.recommendations[0];
    assert!(r.safe_to_apply);
    assert_eq!(
        r.figure,
        "400 Parquet files (400 small) of 200.0 KiB on average in 60 directories; compaction into files of 128.0 MiB leaves 60 (-85%); the quality stage scans them in 2.00 s"
    );
    // One file fewer out of sixty is not worth a rewrite.
    assert!(task(&fixture, "").review(&[], Some(&dataset(61, 60, 2.0))).recommendations.is_empty());
}

#[test]
fn the_metrics_hold_the_figures_before_and_after_an_apply() {
    let fixture = PipelineFixture::new();
    let t = task(&fixture, "apply = true");
    let runs = vec![run(0, &[("quality", 2.0, Some(1000))]), run(1, &[("quality", 2.5, Some(1000))])];
    let dry = dataset(400, 60, 2.0);
    let review = t.review(&runs, Some(&dry));
    let mut applied = dataset(400, 60, 2.1);
    applied.after = Some(DatasetFigures {
        files: 60,
        bytes: 10 << 20,
        rows: 20_000,
        content_hash: "20000:ab".into(),
        quality_seconds: 0.7,
    });
    let done = outcome(&review, Some(&dry), Some(&applied), None, None);
    testing::assert_declared(&t, &done);
    let m = |name: &str| done.metrics[name];
    assert_eq!((m("applied"), m("dataset_files_before"), m("dataset_files_after")), (1.0, 400.0, 60.0));
    assert_eq!((m("quality_seconds_before"), m("quality_seconds_after")), (2.1, 0.7));
    assert!((m("quality_speedup") - 3.0).abs() < 1e-9);
    assert_eq!((m("runs"), m("quality_seconds"), m("quality_rows_per_second")), (2.0, 2.5, 400.0));
    assert!(done.summary.contains("applied compaction: 400 -> 60 files"), "{}", done.summary);
    assert!(done.summary.contains("quality scan 2.10 s -> 0.70 s"), "{}", done.summary);

    // Nothing applied: the dataset did not change, so its after figures are its before figures.
    let kept = outcome(&review, Some(&dry), None, None, Some("apply is off: nothing applied"));
    assert_eq!((kept.metrics["applied"], kept.metrics["quality_speedup"]), (0.0, 1.0));
    assert_eq!(kept.metrics["dataset_files_after"], 400.0);
    assert_eq!(kept.details["after"], "unchanged");
    assert!(kept.summary.ends_with("apply is off: nothing applied"), "{}", kept.summary);

    // No measurement at all: no before/after metric, so a criterion naming one fails.
    let unmeasured = outcome(&review, None, None, Some("no such dataset".into()), None);
    assert!(!unmeasured.metrics.contains_key("quality_speedup"));
    assert!(unmeasured.summary.contains("the dataset was not measured: no such dataset"), "{}", unmeasured.summary);
}

#[test]
fn an_empty_history_says_there_is_nothing_to_review() {
    let fixture = PipelineFixture::new();
    let t = task(&fixture, "");
    let review = t.review(&[], None);
    let done = outcome(&review, None, None, None, None);
    assert_eq!(done.summary, "no runs in the history yet: nothing to review");
    assert_eq!(done.metrics["runs"], 0.0);
    assert_eq!(done.status, TaskStatus::Succeeded);
}

#[test]
fn bad_parameters_are_named_by_their_key() {
    let fixture = PipelineFixture::new();
    let problem = |extra: &str| {
        PerformanceReview::build(&testing::table(&format!("pipeline = 'pipelines/test.toml'\n{extra}")), fixture.path())
            .unwrap_err()
    };
    assert_eq!(problem("runs = 1").key, "runs");
    assert_eq!(problem("slow_factor = 1.0").key, "slow_factor");
    assert_eq!(problem("training_share = 1.5").key, "training_share");
    assert_eq!(problem("growth_tolerance = 0.5").key, "growth_tolerance");
    assert_eq!(problem("aply = true").key, "aply");
    let missing =
        PerformanceReview::build(&testing::table("pipeline = 'pipelines/nope.toml'"), fixture.path()).unwrap_err();
    assert_eq!(missing.key, "pipeline");
    assert!(missing.reason.contains("nope.toml"), "{}", missing.reason);
}

#[tokio::test]
async fn reading_the_history_the_task_reviews_the_recorded_runs() {
    let fixture = PipelineFixture::new();
    for i in 0..3 {
        fixture.record(&run(i, &[("quality", 1.5 + i as f64, Some(1000)), ("retrain", 4.0, Some(800))]));
    }
    let t = task(&fixture, "measure_dataset = false");
    let done = testing::run(&t, fixture.path()).await;
    assert_eq!(done.status, TaskStatus::Succeeded, "{}", done.summary);
    assert_eq!(done.metrics["runs"], 3.0);
    assert_eq!(done.metrics["quality_seconds"], 3.5);
    assert_eq!(done.metrics["retrain_rows_per_second"], 200.0);
    assert_eq!(done.metrics["run_seconds"], 7.5);
    assert!(!done.metrics.contains_key("quality_speedup"), "no dataset measured, no before/after");
    assert!(done.summary.starts_with("reviewed 3 runs"), "{}", done.summary);
}
