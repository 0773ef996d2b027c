use super::*;
use crate::testing::{self, PipelineFixture, build};
use caretaker_test_support::run_report;

fn task(extra: &str) -> ModelHealth {
    ModelHealth::build(&testing::table(&format!("pipeline = 'p.toml'\n{extra}")), Path::new(".")).unwrap()
}

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(caretaker_test_support::TEST_NOW).unwrap().with_timezone(&Utc)
}

fn component<'a>(score: &'a HealthScore, name: &str) -> &'a Component {
    score.components.iter().find(|c| c.name == name).unwrap()
}

#[test]
fn a_steady_fast_fresh_pipeline_scores_full_marks() {
    let runs = vec![
        run_report("20261128T010000Z-0002", "2026-11-28T01:00:00Z", 1.0, 0.8, 20.0),
        run_report("20261127T010000Z-0001", "2026-11-27T01:00:00Z", 1.0, 0.8, 20.0),
    ];
    let score = task("").score(&runs, true, now());
    assert!((score.score - 10.0).abs() < 1e-9, "{score:?}");
    assert_eq!(score.health, Health::Healthy);
    assert!(!score.maintenance_required);
    assert_eq!(score.components.len(), 5);
}

#[test]
fn each_component_follows_its_formula() {
    // Quality 0.90 after a mean of 0.98: 2.5 * (0.90 - 0.08) = 2.05.
    // F1 0.63 after 0.70, target 0.7: 2.5 * (0.9 - 0.1) = 2.0.
    // 200 µs per row against 100: 2.0 * 0.5 = 1.0.
    // Newest event 1 h old: 2.0. Patterns kept: 1.0.
    let runs = vec![
        run_report("20261128T010000Z-0002", "2026-11-28T02:00:00Z", 0.90, 0.63, 200.0),
        run_report("20261127T010000Z-0001", "2026-11-27T02:00:00Z", 0.98, 0.70, 200.0),
    ];
    let score = task("").score(&runs, true, now());
    let points = |name| component(&score, name).points;
    assert!((points("data quality") - 2.05).abs() < 1e-9, "{score:?}");
    assert!((points("model performance") - 2.0).abs() < 1e-9, "{score:?}");
    assert!((points("prediction latency") - 1.0).abs() < 1e-9);
    assert!((points("data freshness") - 2.0).abs() < 1e-9);
    assert!((points("pattern store") - 1.0).abs() < 1e-9);
    assert!((score.score - 8.05).abs() < 1e-9);
    assert_eq!(score.health, Health::Healthy);
    assert!(!score.maintenance_required);
}

#[test]
fn grades_and_the_maintenance_threshold() {
    // Stale data (newest event 73 h old with a 24 h budget: (72 - 73) / 48 < 0, so 0 points) and a
    // slow model: 2.5 + 2.5 * (0.7/0.7) + 2.0 * 100/400 + 0 + 1 = 6.5: degraded, maintenance required.
    let mut r = run_report("20261125T020000Z-0001", "2026-11-25T02:00:00Z", 1.0, 0.7, 400.0);
    r.data.as_mut().unwrap().newest_event = Some(now() - chrono::Duration::hours(73));
    let score = task("max_data_age_hours = 24").score(&[r.clone()], true, now());
    assert!((score.score - 6.5).abs() < 1e-9, "{score:?}");
    assert_eq!(score.health, Health::Degraded);
    assert!(score.maintenance_required);

    // And no quality score, no metrics: unhealthy, and each missing part says so.
    r.quality = None;
    r.candidates.clear();
    let score = task("max_data_age_hours = 24").score(&[r], true, now());
    assert_eq!(score.health, Health::Unhealthy, "{score:?}");
    assert!(component(&score, "data quality").detail.contains("no run in the window has a quality score"));
    assert_eq!(component(&score, "model performance").measured, None);
}

#[test]
fn without_a_pattern_store_four_components_share_ten_points() {
    let runs = vec![run_report("20261128T010000Z-0001", "2026-11-28T01:00:00Z", 1.0, 0.7, 10.0)];
    let score = task("").score(&runs, false, now());
    assert_eq!(score.components.len(), 4);
    assert!((score.score - 10.0).abs() < 1e-9);
    assert!((component(&score, "data quality").max_points - 2.5 * 10.0 / 9.0).abs() < 1e-9);
    // With a store that the newest run did not clean: that point is lost.
    let mut r = runs[0].clone();
    r.patterns = None;
    let score = task("").score(&[r], true, now());
    assert!((score.score - 9.0).abs() < 1e-9);
}

#[test]
fn the_metric_must_be_one_where_higher_is_better() {
    use caretaker_core::task::TaskKinds;
    let p = crate::Kinds.build("model_health", &testing::table("pipeline = 'p'\nmetric = 'log_loss'"), Path::new("."));
    assert_eq!(p.err().unwrap().key, "metric");
    let p = crate::Kinds.build("model_health", &testing::table("pipeline = 'p'\nmetric_target = 2"), Path::new("."));
    assert_eq!(p.err().unwrap().key, "metric_target");
}

#[tokio::test]
async fn the_task_reads_the_history_and_shows_every_component() {
    let fixture = PipelineFixture::new();
    fixture.record(&run_report("20261127T020000Z-0001", "2026-11-27T02:00:00Z", 1.0, 0.75, 30.0));
    fixture.record(&run_report("20261128T010000Z-0002", "2026-11-28T01:00:00Z", 1.0, 0.75, 30.0));
    let task = build("model_health", "pipeline = 'pipelines/test.toml'", fixture.path());
    let outcome = testing::run(task.as_ref(), fixture.path()).await;
    assert_eq!(outcome.status, caretaker_core::task::TaskStatus::Succeeded, "{}", outcome.summary);
    assert!((outcome.metrics["health_score"] - 10.0).abs() < 1e-9, "{}", outcome.summary);
    assert_eq!(outcome.metrics["maintenance_required"], 0.0);
    assert_eq!(outcome.metrics["runs"], 2.0);
    for key in [
        "data_quality_points",
        "model_performance_points",
        "prediction_latency_points",
        "data_freshness_points",
        "pattern_store_points",
    ] {
        assert!(outcome.metrics.contains_key(key), "{key} missing: {:?}", outcome.metrics);
    }
    assert_eq!(outcome.details["components"].as_array().unwrap().len(), 5);
    assert!(
        outcome.summary.starts_with("intelligence health 10.0/10, healthy: data quality 2.50/2.50"),
        "{}",
        outcome.summary
    );

    // No history at all: every component is 0 and the task fails.
    let empty = PipelineFixture::new();
    let outcome =
        testing::run(build("model_health", "pipeline = 'pipelines/test.toml'", empty.path()).as_ref(), empty.path())
            .await;
    assert_eq!(outcome.status, caretaker_core::task::TaskStatus::Failed);
    assert_eq!(outcome.metrics["health_score"], 0.0);

    // A pipeline file that does not exist: a failed outcome naming it.
    let outcome =
        testing::run(build("model_health", "pipeline = 'pipelines/none.toml'", empty.path()).as_ref(), empty.path())
            .await;
    assert_eq!(outcome.status, caretaker_core::task::TaskStatus::Failed);
    assert!(outcome.summary.contains("none.toml"), "{}", outcome.summary);
}
