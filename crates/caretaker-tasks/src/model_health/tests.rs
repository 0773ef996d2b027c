use super::*;
use crate::testing::{self, PipelineFixture, build};
use caretaker_test_support::run_report;

fn task(extra: &str) -> ModelHealth {
    ModelHealth::build(&testing::table(&format!("pipeline = 'p.toml'\n{extra}")), Path::new(".")).unwrap()
}

#[test]
fn the_parameters_are_the_scores_policy_and_default_to_its_defaults() {
    assert_eq!(task("").policy, HealthPolicy::default());
    let policy =
        task("window = 3\nmetric = 'recall'\nmetric_target = 0.5\nlatency_budget_micros = 20\nmax_data_age_hours = 24")
            .policy;
    assert_eq!(
        policy,
        HealthPolicy {
            window: 3,
            metric: Metric::Recall,
            metric_target: 0.5,
            latency_budget_micros: 20.0,
            max_data_age_hours: 24.0
        }
    );
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
