use super::*;
use crate::parquet_io::write_parquet_atomic;

const HOUR: i64 = 3_600_000_000;

/// `files` files of `rows` rows in each of `days` daily partitions; within a file the times run
/// backwards, so that sorting shows.
fn dataset(dir: &Path, days: usize, files: usize, rows: usize) {
    let mut id = 0i64;
    for day in 0..days {
        for f in 0..files {
            let ts: Vec<i64> =
                (0..rows).map(|r| day as i64 * 24 * HOUR + ((files - f) * rows - r) as i64 * 60_000_000).collect();
            let ids: Vec<i64> = (0..rows)
                .map(|_| {
                    id += 1;
                    id
                })
                .collect();
            let x: Vec<f64> = ids.iter().map(|i| *i as f64 * 0.5).collect();
            let mut df = DataFrame::new(
                rows,
                vec![
                    Column::new("event_id".into(), ids),
                    Column::new("ts".into(), ts).cast(&DataType::Datetime(TimeUnit::Microseconds, None)).unwrap(),
                    Column::new("x".into(), x),
                ],
            )
            .unwrap();
            let path = dir.join(format!("date=2026-01-{:02}/part-{f}.parquet", day + 1));
            write_parquet_atomic(&mut df, &path).unwrap();
        }
    }
}

fn content(dir: &Path) -> ContentHash {
    dataset_content(&DatasetFiles::find(dir).unwrap()).unwrap()
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

#[test]
fn small_files_of_each_partition_become_one_sorted_file_and_the_rows_stay_the_same() {
    let dir = tempfile::tempdir().unwrap();
    dataset(dir.path(), 3, 5, 40);
    let before = content(dir.path());
    let files = DatasetFiles::find(dir.path()).unwrap();
    let plan = plan(&files, 64 << 20).unwrap();
    assert_eq!((plan.files, plan.directories, plan.small_files, plan.files_after), (15, 3, 15, 3));
    assert!(plan.groups.iter().all(|g| g.files.len() == 5 && g.outputs == 1));

    let outcome = compact(dir.path(), &plan, "ts", "c1").unwrap();
    assert_eq!((outcome.groups, outcome.files_replaced, outcome.files_written, outcome.rows), (3, 15, 3, 600));
    assert_eq!(content(dir.path()), before);
    assert_eq!(names_in(&dir.path().join("date=2026-01-02")), ["part-c1-0.parquet"]);
    assert!(!journal::path(dir.path()).exists());

    let df = crate::parquet_io::read_parquet(&dir.path().join("date=2026-01-02/part-c1-0.parquet")).unwrap();
    let ts = crate::dataset::timestamp_micros(df.column("ts").unwrap()).unwrap();
    let ts: Vec<i64> = ts.no_null_iter().collect();
    assert!(ts.windows(2).all(|w| w[0] <= w[1]), "rows are sorted by time");

    // The partitions are still Hive partitions, and a second compaction has nothing to do.
    let after = DatasetFiles::find(dir.path()).unwrap();
    assert!(after.hive);
    assert!(plan_for(dir.path()).is_empty());
}

fn plan_for(dir: &Path) -> CompactionPlan {
    plan(&DatasetFiles::find(dir).unwrap(), 64 << 20).unwrap()
}

#[test]
fn a_group_larger_than_the_target_is_split_into_files_of_about_the_target() {
    let dir = tempfile::tempdir().unwrap();
    dataset(dir.path(), 1, 8, 2_000);
    let before = content(dir.path());
    let files = DatasetFiles::find(dir.path()).unwrap();
    // A target of a third of the partition: every file is small (an eighth), three files replace
    // them, each of them no longer small.
    let target = files.bytes / 3 + 1;
    let plan = plan(&files, target).unwrap();
    assert_eq!((plan.groups[0].files.len(), plan.groups[0].outputs), (8, 3));
    compact(dir.path(), &plan, "ts", "c2").unwrap();
    assert_eq!(content(dir.path()), before);
    let after = DatasetFiles::find(dir.path()).unwrap();
    assert_eq!(after.files.len(), 3);
    // Each new file is at least half the target, so the next plan leaves them alone.
    assert!(super::plan(&after, target).unwrap().is_empty(), "{:?}", after.files);
}

#[test]
fn files_already_big_enough_and_lone_small_files_are_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    dataset(dir.path(), 2, 1, 50);
    let plan = plan_for(dir.path());
    assert!(plan.is_empty());
    assert_eq!((plan.small_files, plan.files_after), (2, 2));
}

#[test]
fn a_glob_or_a_single_file_is_not_compactable() {
    let dir = tempfile::tempdir().unwrap();
    dataset(dir.path(), 1, 2, 10);
    let glob = dir.path().join("*/*.parquet");
    let err = plan(&DatasetFiles::find(&glob).unwrap(), 1 << 20).unwrap_err().to_string();
    assert!(err.contains("cannot be compacted: a glob"), "{err}");
    let one = dir.path().join("date=2026-01-01/part-0.parquet");
    let err = plan(&DatasetFiles::find(&one).unwrap(), 1 << 20).unwrap_err().to_string();
    assert!(err.contains("part-0.parquet cannot be compacted: a single file"), "{err}");
}

#[test]
fn files_of_one_directory_with_different_columns_stop_compaction_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    dataset(dir.path(), 1, 3, 10);
    let odd = dir.path().join("date=2026-01-01/part-9.parquet");
    let mut df = DataFrame::new(
        1,
        vec![
            Column::new("event_id".into(), [99i64]),
            Column::new("ts".into(), [0i64]).cast(&DataType::Datetime(TimeUnit::Microseconds, None)).unwrap(),
            Column::new("x".into(), ["not a number"]),
        ],
    )
    .unwrap();
    write_parquet_atomic(&mut df, &odd).unwrap();
    let before = names_in(&dir.path().join("date=2026-01-01"));
    let plan = plan_for(dir.path());
    let err = compact(dir.path(), &plan, "ts", "c3").unwrap_err().to_string();
    assert!(err.contains("part-9.parquet cannot be compacted: its columns differ"), "{err}");
    assert!(err.contains("x (f64 in") && err.contains("str here"), "{err}");
    assert_eq!(names_in(&dir.path().join("date=2026-01-01")), before, "no staged file is left");
}

#[test]
fn a_missing_timestamp_column_is_named() {
    let dir = tempfile::tempdir().unwrap();
    dataset(dir.path(), 1, 2, 10);
    let err = compact(dir.path(), &plan_for(dir.path()), "event_time", "c4").unwrap_err().to_string();
    assert!(err.contains("\"event_time\" (dataset.timestamp) is not in the file"), "{err}");
    assert!(
        DatasetFiles::find(dir.path())
            .unwrap()
            .files
            .iter()
            .all(|f| f.ends_with("part-0.parquet") || f.ends_with("part-1.parquet"))
    );
}

/// Stages and journals a compaction without swapping: the state a kill right after the journal
/// leaves.
fn journal_without_swap(dir: &Path, id: &str) -> Journal {
    let plan = plan_for(dir);
    let groups = plan.groups.iter().map(|g| stage_group(dir, g, "ts", id).unwrap()).collect();
    let j = Journal { id: id.into(), created_at: chrono::Utc::now(), groups };
    journal::write(dir, &j).unwrap();
    j
}

#[test]
fn with_a_pending_journal_a_listing_sees_the_new_files_only_at_every_step_of_the_swap() {
    let dir = tempfile::tempdir().unwrap();
    dataset(dir.path(), 2, 4, 30);
    let before = content(dir.path());
    let j = journal_without_swap(dir.path(), "c5");
    // Journal written, nothing renamed: the staged files are the dataset.
    let listed = DatasetFiles::find(dir.path()).unwrap();
    assert_eq!(listed.files.len(), 2);
    assert!(listed.files.iter().all(|f| f.file_name().unwrap().to_string_lossy().starts_with(STAGED_PREFIX)));
    assert_eq!(content(dir.path()), before);
    // One file renamed in, the old files all still there.
    let g = &j.groups[0];
    let pdir = dir.path().join(&g.dir);
    std::fs::rename(pdir.join(&g.new[0].staged), pdir.join(&g.new[0].name)).unwrap();
    assert_eq!(content(dir.path()), before);
    // Some old files removed.
    std::fs::remove_file(pdir.join(&g.old[0])).unwrap();
    assert_eq!(content(dir.path()), before);
    // Whoever comes next finishes the swap.
    let recovery = recover(dir.path()).unwrap();
    assert_eq!(recovery.finished.as_deref(), Some("c5"));
    assert_eq!((recovery.swapped.renamed, recovery.swapped.removed), (1, 7));
    assert!(!journal::path(dir.path()).exists());
    assert_eq!(content(dir.path()), before);
    assert_eq!(DatasetFiles::find(dir.path()).unwrap().files.len(), 2);
    assert!(!recover(dir.path()).unwrap().did_something(), "a second recovery has nothing to do");
}

#[test]
fn staged_files_without_a_journal_are_invisible_and_removed_by_recovery() {
    let dir = tempfile::tempdir().unwrap();
    dataset(dir.path(), 2, 3, 20);
    let before = content(dir.path());
    let plan = plan_for(dir.path());
    for g in &plan.groups {
        stage_group(dir.path(), g, "ts", "c6").unwrap();
    }
    assert_eq!(DatasetFiles::find(dir.path()).unwrap().files.len(), 6);
    assert_eq!(content(dir.path()), before);
    let recovery = recover(dir.path()).unwrap();
    assert_eq!((recovery.finished, recovery.orphans_removed), (None, 2));
    assert_eq!(names_in(&dir.path().join("date=2026-01-01")), ["part-0.parquet", "part-1.parquet", "part-2.parquet"]);
}

#[test]
fn a_journal_that_is_not_one_stops_every_listing_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    dataset(dir.path(), 1, 2, 5);
    std::fs::write(journal::path(dir.path()), b"{ half").unwrap();
    let err = DatasetFiles::find(dir.path()).unwrap_err().to_string();
    assert!(err.contains("_caretaker_compaction.json") && err.contains("not a compaction journal"), "{err}");
}
