use crate::testing::{self, PipelineFixture, build};
use caretaker_core::task::TaskStatus;
use caretaker_test_support::run_report;
use std::path::Path;

/// TEST_NOW is 2026-11-28T02:00Z. Runs on 2026-11-01 .. 2026-11-27, each with a 10 KiB
/// quarantine file; v0001 .. v0006 deployed, v0002 by the run of 2026-11-02 being the champion
/// after a rollback; two logs, one old.
fn fixture() -> PipelineFixture {
    let fixture = PipelineFixture::new();
    for day in 1..=27 {
        let run_id = format!("202611{day:02}T020000Z-ab{day:02}");
        fixture.record(&run_report(&run_id, &format!("2026-11-{day:02}T02:00:00Z"), 0.99, 0.7, 10.0));
        std::fs::write(fixture.path().join("reports").join(&run_id).join("quarantine.parquet"), vec![7u8; 10 * 1024])
            .unwrap();
    }
    for (i, day) in [1, 2, 3, 4, 5, 6].iter().enumerate() {
        fixture.deploy(
            "tree",
            &format!("202611{day:02}T020000Z-ab{day:02}"),
            format!("model {i}").repeat(500).as_bytes(),
        );
    }
    let registry = caretaker_registry::Registry::open(&fixture.path().join("models")).unwrap();
    let lock = registry.lock().unwrap();
    let now = chrono::Utc::now();
    registry.rollback(&lock, Some(caretaker_core::ids::ModelVersion(2)), "test", now).unwrap();
    drop(lock);
    // Not a run directory: never touched, even when the name starts like an old run's.
    std::fs::create_dir_all(fixture.path().join("reports/notes")).unwrap();
    std::fs::write(fixture.path().join("reports/notes/keep.txt"), "mine").unwrap();
    std::fs::create_dir_all(fixture.path().join("reports/20261101T020000Z-backup")).unwrap();
    std::fs::write(fixture.path().join("reports/20261101T020000Z-backup/keep.txt"), "mine").unwrap();
    let logs = fixture.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::write(logs.join("old.log"), vec![b'x'; 4096]).unwrap();
    std::fs::write(logs.join("new.log"), vec![b'y'; 2048]).unwrap();
    std::fs::write(logs.join("old.txt"), vec![b'z'; 100]).unwrap();
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(40 * 86_400);
    for name in ["old.log", "old.txt"] {
        std::fs::File::options().write(true).open(logs.join(name)).unwrap().set_modified(old).unwrap();
    }
    fixture
}

const PARAMS: &str = r#"
pipeline = "pipelines/test.toml"
[reports]
keep_days = 14
keep_last = 5
[quarantine]
keep_days = 7
[models]
keep_last = 2
[[logs]]
dir = "logs"
keep_days = 30
"#;

fn exists(root: &Path, relative: &str) -> bool {
    root.join(relative).exists()
}

#[tokio::test]
async fn a_dry_run_lists_the_plan_and_removes_nothing() {
    let fixture = fixture();
    let before = caretaker_core::fs::disk_size(fixture.path());
    let task = build("retention", &format!("dry_run = true\n{PARAMS}"), fixture.path());
    let outcome = testing::run(task.as_ref(), fixture.path()).await;
    assert_eq!(outcome.status, TaskStatus::Succeeded, "{}", outcome.summary);
    // Runs of Nov 1-13 are older than 14 days, less the champion's (Nov 2): 12 directories.
    // Quarantine files older than 7 days in the kept runs: Nov 2 and 14-20: 8.
    // Versions: all but the newest 2 (v0005, v0006) and the ever-champions: none left to prune
    // (each deploy made its version champion), so 0.
    assert!(
        outcome
            .summary
            .starts_with("dry run: would remove 12 report directories, 8 quarantine files, 0 model versions, 1 logs"),
        "{}",
        outcome.summary
    );
    assert_eq!(outcome.metrics["bytes_freed"], 0.0);
    assert!(outcome.metrics["bytes_to_free"] > 20.0 * 10_240.0);
    assert_eq!(caretaker_core::fs::disk_size(fixture.path()), before);
    assert_eq!(outcome.details["kept_for_champion"], "20261102T020000Z-ab02");
}

#[tokio::test]
async fn removes_what_is_old_keeps_what_is_protected_and_measures_bytes() {
    let fixture = fixture();
    let root = fixture.path();
    let task = build("retention", PARAMS, root);
    let outcome = testing::run(task.as_ref(), root).await;
    assert_eq!(outcome.status, TaskStatus::Succeeded, "{}", outcome.summary);
    assert_eq!(outcome.metrics["reports_removed"], 12.0);
    assert_eq!(outcome.metrics["quarantines_removed"], 8.0);
    assert_eq!(outcome.metrics["logs_removed"], 1.0);
    // Old runs gone, the champion's run and the recent ones kept.
    assert!(!exists(root, "reports/20261101T020000Z-ab01"));
    assert!(!exists(root, "reports/20261113T020000Z-ab13"));
    assert!(exists(root, "reports/20261102T020000Z-ab02/report.json"));
    assert!(!exists(root, "reports/20261102T020000Z-ab02/quarantine.parquet"));
    assert!(exists(root, "reports/20261114T020000Z-ab14/report.json"));
    assert!(!exists(root, "reports/20261114T020000Z-ab14/quarantine.parquet"));
    assert!(exists(root, "reports/20261121T020000Z-ab21/quarantine.parquet"));
    assert!(exists(root, "reports/notes/keep.txt"));
    assert!(exists(root, "reports/20261101T020000Z-backup/keep.txt"), "only whole run ids are run directories");
    assert!(!exists(root, "logs/old.log"));
    assert!(exists(root, "logs/new.log") && exists(root, "logs/old.txt"), "the pattern is *.log*");
    // Every version stays: each was champion once, and rollbacks need them.
    assert_eq!(caretaker_registry::Registry::open(&root.join("models")).unwrap().versions().unwrap().len(), 6);
    // The history still has every run's report.
    let history = caretaker_history::History::open(&root.join("state/history.sqlite")).unwrap();
    assert!(history.report(None, "20261101T020000Z-ab01").unwrap().is_some());
    // Bytes freed: measured, at least the quarantine files and the old log.
    assert!(outcome.metrics["bytes_freed"] >= (20 * 10_240 + 4096) as f64, "{:?}", outcome.metrics);
    let second = testing::run(task.as_ref(), root).await;
    assert!(
        second.summary.starts_with("removed 0 report directories, 0 quarantine files, 0 model versions, 0 logs"),
        "{}",
        second.summary
    );
}

#[tokio::test]
async fn model_versions_are_pruned_through_the_registry() {
    let fixture = PipelineFixture::new();
    fixture.record(&run_report("20261127T020000Z-0001", "2026-11-27T02:00:00Z", 0.99, 0.7, 10.0));
    // Versions written without becoming champion: only v0001 and the newest are protected.
    let registry = caretaker_registry::Registry::open(&fixture.path().join("models")).unwrap();
    fixture.deploy("tree", "20261127T020000Z-0001", b"the champion");
    for i in 0..4 {
        let src = fixture.path().join("models/versions/v0001");
        let dst = fixture.path().join(format!("models/versions/v000{}", i + 2));
        std::fs::create_dir_all(&dst).unwrap();
        for f in ["model.msgpack", "card.json"] {
            std::fs::copy(src.join(f), dst.join(f)).unwrap();
        }
    }
    assert_eq!(registry.versions().unwrap().len(), 5);
    let params = "pipeline = 'pipelines/test.toml'\n[models]\nkeep_last = 2";
    let outcome = testing::run(build("retention", params, fixture.path()).as_ref(), fixture.path()).await;
    assert_eq!(outcome.status, TaskStatus::Succeeded, "{}", outcome.summary);
    assert_eq!(outcome.metrics["model_versions_removed"], 2.0);
    let left: Vec<String> = registry.versions().unwrap().iter().map(|v| v.to_string()).collect();
    assert_eq!(left, vec!["v0001", "v0004", "v0005"]);
    assert!(outcome.metrics["bytes_freed"] > 0.0);
}

#[tokio::test]
async fn a_busy_registry_fails_the_task_with_the_reason() {
    let fixture = PipelineFixture::new();
    fixture.deploy("tree", "20261127T020000Z-0001", b"the champion");
    let copy = fixture.path().join("models/versions/v0002");
    std::fs::create_dir_all(&copy).unwrap();
    std::fs::write(
        copy.join("card.json"),
        std::fs::read(fixture.path().join("models/versions/v0001/card.json")).unwrap(),
    )
    .unwrap();
    std::fs::write(copy.join("model.msgpack"), b"x").unwrap();
    std::fs::create_dir_all(fixture.path().join("models/versions/v0003")).unwrap();
    std::fs::write(
        fixture.path().join("models/versions/v0003/card.json"),
        std::fs::read(copy.join("card.json")).unwrap(),
    )
    .unwrap();
    let registry = caretaker_registry::Registry::open(&fixture.path().join("models")).unwrap();
    let held = registry.lock().unwrap();
    let params = "pipeline = 'pipelines/test.toml'\n[models]\nkeep_last = 1";
    let outcome = testing::run(build("retention", params, fixture.path()).as_ref(), fixture.path()).await;
    drop(held);
    assert_eq!(outcome.status, TaskStatus::Failed, "{}", outcome.summary);
    assert!(outcome.summary.contains("pruning the registry failed"), "{}", outcome.summary);
    assert_eq!(registry.versions().unwrap().len(), 3);
}

#[test]
fn bad_parameters_name_the_key() {
    use caretaker_core::task::TaskKinds;
    let problem = |p: &str| crate::Kinds.build("retention", &testing::table(p), Path::new(".")).err().unwrap();
    assert!(problem("").reason.contains("at least one of"));
    assert_eq!(problem("[reports]\nkeep_days = 3").key, "pipeline");
    assert_eq!(problem("pipeline = 'p'\n[models]\nkeep_last = 0").key, "models.keep_last");
    assert_eq!(problem("[[logs]]\ndir = 'l'\nkeep_days = 3\npattern = '[a'").key, "logs[0].pattern");
    assert_eq!(problem("pipeline = 'p'\n[reports]\nkeep_day = 3").key, "reports.keep_day");
    assert_eq!(
        problem("[[logs]]\ndir = 'l'\nkeep_days = 3\n[[backups]]\ndir = 'b'\nkeep_days = 3\npattern = 'x/*'").key,
        "backups[0].pattern"
    );
}

#[tokio::test]
async fn old_backups_go_but_the_newest_stay_whatever_their_age() {
    let dir = tempfile::tempdir().unwrap();
    let backups = dir.path().join("backups");
    std::fs::create_dir_all(&backups).unwrap();
    // Five dumps, 60, 50, 40, 30 and 1 day old; a temporary file of a dump in progress.
    for (name, days) in [("a.dump", 60), ("b.dump", 50), ("c.dump", 40), ("d.dump", 30), ("e.dump", 1)] {
        std::fs::write(backups.join(name), vec![1u8; 1000]).unwrap();
        let at = std::time::SystemTime::now() - std::time::Duration::from_secs(days * 86_400);
        std::fs::File::options().write(true).open(backups.join(name)).unwrap().set_modified(at).unwrap();
    }
    std::fs::write(backups.join(".caretaker-tmp-x.dump"), b"in progress").unwrap();
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(90 * 86_400);
    std::fs::File::options()
        .write(true)
        .open(backups.join(".caretaker-tmp-x.dump"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    let task = build("retention", "[[backups]]\ndir = 'backups'\nkeep_days = 14\nkeep_last = 3", dir.path());
    let outcome = testing::run(task.as_ref(), dir.path()).await;
    assert_eq!(outcome.status, TaskStatus::Succeeded, "{}", outcome.summary);
    // Older than 14 days: a, b, c, d; but the newest three (e, d, c) stay.
    assert_eq!(outcome.metrics["backups_removed"], 2.0, "{}", outcome.summary);
    assert!(outcome.summary.contains("2 backups"), "{}", outcome.summary);
    let mut left: Vec<String> =
        std::fs::read_dir(&backups).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    left.sort();
    assert_eq!(left, vec![".caretaker-tmp-x.dump", "c.dump", "d.dump", "e.dump"]);
    assert_eq!(outcome.metrics["bytes_freed"], 2000.0);
}
