//! The stage on planted defects: every count exact, every bad input a clear finding.

use crate::{QualityInput, QualityOutcome, assess};
use caretaker_core::config::PipelineConfig;
use caretaker_data::dataset::DatasetFiles;
use chrono::{DateTime, Duration, Utc};
use polars::prelude::*;
use std::path::Path;

fn now() -> DateTime<Utc> {
    "2026-11-28T12:00:00Z".parse().unwrap()
}

const PIPELINE: &str = r#"
name = "t"
[dataset]
path = "data"
id = "id"
timestamp = "ts"
label = "y"
numeric = ["x"]
categorical = ["c"]
[quality.ranges]
x = [0, 10]
[quality.allowed]
c = ["a", "b"]
[[candidates]]
name = "nb"
family = "gaussian_nb"
"#;

fn config(dir: &Path) -> PipelineConfig {
    PipelineConfig::from_toml_str(PIPELINE, &dir.join("p.toml")).unwrap()
}

fn run(dir: &Path) -> QualityOutcome {
    run_config(dir, config(dir))
}

fn run_config(dir: &Path, config: PipelineConfig) -> QualityOutcome {
    let files = DatasetFiles::find(&config.dataset.path).unwrap();
    assess(&QualityInput {
        files: &files,
        spec: &config.dataset,
        policy: &config.quality,
        quarantine_path: &dir.join("reports/quarantine.parquet"),
        now: now(),
        state_dir: &dir.join("state"),
        sample: crate::SampleSpec::of(&config.training),
    })
    .unwrap()
}

fn write(dir: &Path, name: &str, mut df: DataFrame) {
    caretaker_data::parquet_io::write_parquet_atomic(&mut df, &dir.join("data").join(name)).unwrap();
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// 1000 clean rows over 60 days, then defects planted in rows of their own.
fn planted() -> DataFrame {
    let n = 1000;
    let start = now() - Duration::days(60);
    let mut id: Vec<String> = (0..n).map(|i| format!("e{i}")).collect();
    let mut ts: Vec<i64> = (0..n).map(|i| micros(start + Duration::minutes(i as i64 * 86))).collect();
    let y: Vec<bool> = (0..n).map(|i| i % 3 == 0).collect();
    let mut x: Vec<Option<f64>> = (0..n).map(|i| Some((i % 100) as f64 / 10.0)).collect();
    let mut c: Vec<Option<&str>> = (0..n).map(|i| Some(if i % 2 == 0 { "a" } else { "b" })).collect();
    // Rows 10.. hold the defects, one defect per row.
    let mut row = 10;
    let mut next = || {
        row += 7;
        row
    };
    for _ in 0..7 {
        x[next()] = None;
    }
    for _ in 0..5 {
        x[next()] = Some(-1.0);
    }
    for v in [f64::NAN, f64::NAN, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        x[next()] = Some(v);
    }
    for _ in 0..4 {
        c[next()] = Some("z");
    }
    for _ in 0..6 {
        c[next()] = None;
    }
    for k in 0..9 {
        id[next()] = format!("e{k}");
    }
    for _ in 0..2 {
        ts[next()] = micros(now() + Duration::days(1));
    }
    let ts = Series::new("ts".into(), ts).cast(&DataType::Datetime(TimeUnit::Microseconds, None)).unwrap();
    DataFrame::new(
        n,
        vec![
            Column::new("id".into(), id),
            ts.into_column(),
            Column::new("y".into(), y),
            Column::new("x".into(), x),
            Column::new("c".into(), c),
            Column::new("note".into(), vec!["extra"; n]),
        ],
    )
    .unwrap()
}

#[test]
fn every_planted_defect_is_found_exactly_and_quarantined_with_its_rules() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "part-0.parquet", planted());
    let out = run(dir.path());
    let r = &out.report;
    let counts: std::collections::BTreeMap<&str, u64> =
        r.rule_counts.iter().map(|c| (c.rule.as_str(), c.rows)).collect();
    let expected: std::collections::BTreeMap<&str, u64> = [
        ("null:x", 7),
        ("range:x", 5),
        ("not_finite:x", 5),
        ("category:c", 4),
        ("null:c", 6),
        ("duplicate_id", 9),
        ("future_timestamp", 2),
    ]
    .into_iter()
    .collect();
    assert_eq!(counts, expected);
    assert_eq!((r.rows, r.quarantined_rows, r.clean_rows), (1000, 38, 962));
    let events = out.events.unwrap();
    assert_eq!(events.len(), 962);
    assert!(events.numeric[0].values.iter().all(|v| (0.0..=10.0).contains(v)));

    let q = caretaker_data::parquet_io::read_parquet(Path::new(r.quarantine_path.as_ref().unwrap())).unwrap();
    assert_eq!(q.height(), 38);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(r.quarantine_path.as_ref().unwrap()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644, "whoever reads report.json reads the quarantine beside it");
    }
    assert!(q.column("note").is_ok(), "the original columns are kept");
    let rules = q.column(crate::scan::RULES_COLUMN).unwrap().list().unwrap().clone();
    let all: Vec<String> = rules
        .series_iter()
        .flatten()
        .flat_map(|s| s.str().unwrap().iter().flatten().map(str::to_string).collect::<Vec<_>>())
        .collect();
    assert_eq!(all.iter().filter(|r| *r == "duplicate_id").count(), 9);
    assert_eq!(all.len(), 38, "one rule per planted row");

    let check = |name: &str, column: Option<&str>| {
        r.checks.iter().find(|c| c.check == name && c.column.as_deref() == column).unwrap_or_else(|| panic!("{name}"))
    };
    assert!(
        check("duplicate_ids", Some("id")).detail.contains("\"e0\""),
        "{}",
        check("duplicate_ids", Some("id")).detail
    );
    assert!(check("allowed_values", Some("c")).detail.contains("\"z\" (4)"));
    assert!(!check("future_timestamps", Some("ts")).passed);
    assert!(check("schema.extra_columns", None).detail.contains("note"));
    let stability = 1.0 - r.drift.iter().filter(|d| d.alarm).count() as f64 / r.drift.len() as f64;
    let expected_score =
        0.3 * (1.0 - 13.0 / 1000.0) + 0.3 * (1.0 - 16.0 / 1000.0) + 0.2 * (1.0 - 9.0 / 1000.0) + 0.2 * stability;
    assert!((r.score - expected_score).abs() < 1e-12, "{} vs {expected_score}", r.score);
}

#[test]
fn above_max_rows_every_row_is_checked_and_a_stratified_sample_of_the_clean_ones_kept() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "part-0.parquet", planted());
    let whole = run(dir.path());
    let mut config = config(dir.path());
    config.training.max_rows = Some(300);
    let out = run_config(dir.path(), config.clone());
    let (r, w) = (&out.report, &whole.report);
    // The row rules, the quarantine and the counts saw every row, as without a sample.
    assert_eq!((r.rows, r.quarantined_rows, r.clean_rows), (1000, 38, 962));
    assert_eq!(r.rule_counts, w.rule_counts);
    assert_eq!(out.data.newest_event, whole.data.newest_event, "the newest clean row, sampled or not");
    let check = |r: &caretaker_core::report::QualityReport, name: &str| {
        r.checks.iter().find(|c| c.check == name).unwrap_or_else(|| panic!("{name}")).clone()
    };
    assert_eq!(check(r, "freshness"), check(w, "freshness"));
    // 300 of the 962 clean rows, each label its share (to a row), drawn from the whole file.
    let all = whole.events.unwrap();
    let sample = out.events.unwrap();
    assert_eq!(out.sample, Some(crate::SampleSummary { rows: 300, from_rows: 962, seed: config.training.seed }));
    assert_eq!(sample.len(), 300);
    let share = (all.positives() as f64 / all.len() as f64 * 300.0).round() as usize;
    assert_eq!(sample.positives(), share);
    assert!(sample.timestamps.windows(2).all(|t| t[0] <= t[1]), "the rows in their order");
    let day = 86_400_000_000;
    assert!(sample.timestamps[0] < all.timestamps[0] + 5 * day, "from the oldest days");
    assert!(sample.timestamps[299] > all.timestamps[all.len() - 1] - 5 * day, "to the newest");
    // Every sampled row is one of the clean rows, with its values.
    for i in (0..300).step_by(37) {
        let j = all.timestamps.iter().position(|&t| t == sample.timestamps[i]).unwrap();
        assert_eq!(all.numeric[0].values[j], sample.numeric[0].values[i]);
        assert_eq!(all.categorical[0].value(j), sample.categorical[0].value(i));
    }
    // The same seed, the same rows; another seed, others.
    assert_eq!(run_config(dir.path(), config.clone()).events.unwrap(), sample);
    config.training.seed += 1;
    assert_ne!(run_config(dir.path(), config).events.unwrap().timestamps, sample.timestamps);
}

#[test]
fn drift_bins_are_frozen_by_the_first_run_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "part-0.parquet", planted());
    let first = run(dir.path());
    let frozen = std::fs::read(dir.path().join("state").join(crate::drift::FILE)).unwrap();
    let x = first.report.drift.iter().find(|d| d.feature == "x").unwrap();
    assert_eq!(x.bins.len(), 10, "nine deciles of the reference, ten bins: {:?}", x.bins);
    // Each result carries the thresholds of its own measures (the defaults here).
    assert_eq!((x.psi_threshold, x.ks_threshold, x.js_threshold), (Some(0.2), Some(0.1), None));
    let categorical = first.report.drift.iter().find(|d| d.kind == "categorical").unwrap();
    assert_eq!((categorical.ks_threshold, categorical.js_threshold.is_some()), (None, true));
    // A second night with shifted values keeps the first night's bins, and sees the shift.
    let mut df = planted();
    let shifted = df.column("x").unwrap().as_materialized_series().f64().unwrap().apply_values(|v| (v + 3.0).min(10.0));
    df.with_column(shifted.into_series().into_column()).unwrap();
    write(dir.path(), "part-0.parquet", df);
    let second = run(dir.path());
    assert_eq!(std::fs::read(dir.path().join("state").join(crate::drift::FILE)).unwrap(), frozen);
    let x2 = second.report.drift.iter().find(|d| d.feature == "x").unwrap();
    assert_eq!(x2.bins, x.bins);
    // Deciles recomputed on the new reference would share it out evenly; frozen bins show the
    // whole reference moved up: the top bin now holds far more than a tenth of it.
    let top = *x2.reference_share.last().unwrap();
    assert!(top > 0.3, "reference shares over the frozen bins: {:?}", x2.reference_share);
}

#[test]
fn frozen_bins_edited_out_of_order_are_refused_with_the_file_and_feature() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "part-0.parquet", planted());
    run(dir.path());
    let path = dir.path().join("state").join(crate::drift::FILE);
    let mut frozen: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let edges = frozen["features"]["x"]["edges"].as_array_mut().unwrap();
    edges.swap(0, 1);
    let edited = serde_json::to_vec_pretty(&frozen).unwrap();
    std::fs::write(&path, &edited).unwrap();
    let config = config(dir.path());
    let files = DatasetFiles::find(&config.dataset.path).unwrap();
    let err = assess(&QualityInput {
        files: &files,
        spec: &config.dataset,
        policy: &config.quality,
        quarantine_path: &dir.path().join("reports/quarantine.parquet"),
        now: now(),
        state_dir: &dir.path().join("state"),
        sample: None,
    })
    .err()
    .expect("edges out of order are an error")
    .to_string();
    assert!(err.contains("drift_reference.json") && err.contains("\"x\"") && err.contains("out of order"), "{err}");
    // Nothing was rewritten: the file is as the user left it.
    assert_eq!(std::fs::read(&path).unwrap(), edited);
}

fn blocked_on(dir: &Path, check: &str) -> String {
    let out = run(dir);
    assert!(out.events.is_none(), "a blocking failure hands no rows to training");
    assert_eq!(out.report.score, 0.0);
    let c = out.report.checks.iter().find(|c| c.check == check && !c.passed);
    c.unwrap_or_else(|| panic!("no failed {check}: {:#?}", out.report.checks)).detail.clone()
}

#[test]
fn an_empty_file_and_a_file_that_is_not_parquet_are_blocking_findings() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("data/empty.parquet"), b"").unwrap();
    std::fs::write(dir.path().join("data/csv.parquet"), b"id,ts\n1,2\n").unwrap();
    let detail = blocked_on(dir.path(), "parquet.readable_files");
    assert!(detail.contains("empty.parquet") && detail.contains("csv.parquet"), "{detail}");
}

#[test]
fn zero_rows_is_a_blocking_finding() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "part-0.parquet", planted().slice(0, 0));
    assert_eq!(blocked_on(dir.path(), "rows"), "the dataset has no rows");
}

#[test]
fn a_missing_label_and_wrongly_typed_columns_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut df = planted().drop("y").unwrap();
    let text_ts = df.column("ts").unwrap().cast(&DataType::String).unwrap();
    df.with_column(text_ts).unwrap();
    let text_x = df.column("x").unwrap().cast(&DataType::String).unwrap();
    df.with_column(text_x).unwrap();
    write(dir.path(), "part-0.parquet", df);
    let out = run(dir.path());
    let failed: Vec<String> = out.report.checks.iter().filter(|c| !c.passed).map(|c| c.detail.clone()).collect();
    assert!(failed.iter().any(|d| d.contains("the label column \"y\" is missing")), "{failed:?}");
    assert!(
        failed.iter().any(|d| d.contains("\"ts\" is str") && d.contains("timestamps stored as text")),
        "{failed:?}"
    );
    assert!(failed.iter().any(|d| d.contains("\"x\" is str") && d.contains("numbers stored as text")), "{failed:?}");
    assert!(out.events.is_none());
}

#[test]
fn bytes_that_are_not_text_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut df = planted();
    let bytes: Vec<Option<&[u8]>> = (0..df.height()).map(|_| Some(&[0xffu8, 0xfe][..])).collect();
    df.with_column(Column::new("c".into(), bytes)).unwrap();
    write(dir.path(), "part-0.parquet", df);
    assert!(blocked_on(dir.path(), "schema.column_type").contains("not UTF-8"));
}

#[test]
fn an_all_null_column_quarantines_every_row_and_fails_the_score() {
    let dir = tempfile::tempdir().unwrap();
    let mut df = planted();
    df.with_column(Column::full_null("x".into(), df.height(), &DataType::Float64)).unwrap();
    write(dir.path(), "part-0.parquet", df);
    let out = run(dir.path());
    let null_x =
        out.report.checks.iter().find(|c| c.check == "null_fraction" && c.column.as_deref() == Some("x")).unwrap();
    assert_eq!((null_x.measured, null_x.passed), (1.0, false));
    assert_eq!(out.report.clean_rows, 0);
    assert!(!out.report.passed);
}

#[test]
fn a_label_with_one_class_or_a_value_of_two_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let mut df = planted();
    let y: Vec<i64> = (0..df.height()).map(|i| if i == 500 { 2 } else { 0 }).collect();
    df.with_column(Column::new("y".into(), y)).unwrap();
    write(dir.path(), "part-0.parquet", df);
    let out = run(dir.path());
    let counts: Vec<(&str, u64)> = out.report.rule_counts.iter().map(|c| (c.rule.as_str(), c.rows)).collect();
    assert!(counts.contains(&("label_not_binary", 1)), "{counts:?}");
    let both = out.report.checks.iter().find(|c| c.check == "label.both_classes").unwrap();
    assert!(!both.passed, "{}", both.detail);
}

#[test]
fn long_strings_and_a_hundred_thousand_categories_are_handled() {
    let dir = tempfile::tempdir().unwrap();
    let n = 120_000;
    let start = now() - Duration::days(60);
    let ts: Vec<i64> = (0..n).map(|i| micros(start + Duration::seconds(i as i64 * 40))).collect();
    let ts = Series::new("ts".into(), ts).cast(&DataType::Datetime(TimeUnit::Microseconds, None)).unwrap();
    let long = "x".repeat(100_000);
    let c: Vec<String> = (0..n).map(|i| if i == 7 { long.clone() } else { format!("cat{}", i % 100_000) }).collect();
    let df = DataFrame::new(
        n,
        vec![
            Column::new("id".into(), (0..n as i64).collect::<Vec<_>>()),
            ts.into_column(),
            Column::new("y".into(), (0..n).map(|i| i % 5 == 0).collect::<Vec<_>>()),
            Column::new("x".into(), (0..n).map(|i| (i % 10) as f64).collect::<Vec<_>>()),
            Column::new("c".into(), c.clone()),
        ],
    )
    .unwrap();
    write(dir.path(), "part-0.parquet", df);
    let dir2 = dir.path();
    let mut config = config(dir2);
    config.quality.allowed.clear();
    let files = DatasetFiles::find(&config.dataset.path).unwrap();
    let out = assess(&QualityInput {
        files: &files,
        spec: &config.dataset,
        policy: &config.quality,
        quarantine_path: &dir2.join("q.parquet"),
        now: now(),
        state_dir: &dir2.join("state"),
        sample: None,
    })
    .unwrap();
    assert_eq!(out.report.quarantined_rows, 0);
    let events = out.events.unwrap();
    assert_eq!(events.categorical[0].levels.len(), 100_001);
    // Every row coded to its own value (short values pass a cache of 1,024 slots, which a
    // hundred thousand of them keep evicting from each other).
    let column = &events.categorical[0];
    assert_eq!(column.codes.len(), n);
    assert!((0..n).all(|row| column.value(row) == c[row]));
    let c = out.report.drift.iter().find(|d| d.feature == "c").unwrap();
    assert_eq!(c.bins.len(), config.quality.drift.max_categories + 1, "the tracked categories and 'other'");
}

/// Integer ids and integer labels with nulls, over two files of more than one batch each: an id
/// repeated within a batch, across batches and across files is caught at its second occurrence in
/// file order, and the clean rows keep that order.
#[test]
fn integer_ids_and_labels_with_nulls_across_files_and_batches() {
    let dir = tempfile::tempdir().unwrap();
    let per_file = crate::scan::BATCH_ROWS + 1_000;
    let start = now() - Duration::days(60);
    let file = |first: i64| {
        let ids: Vec<Option<i64>> = (first..first + per_file as i64).map(Some).collect();
        let ts: Vec<i64> =
            (first..first + per_file as i64).map(|i| micros(start + Duration::seconds(i * 10))).collect();
        let y: Vec<Option<i32>> = (0..per_file).map(|i| Some((i % 4 == 0) as i32)).collect();
        (ids, ts, y)
    };
    let (mut ids_a, ts_a, mut y_a) = file(0);
    let (mut ids_b, ts_b, y_b) = file(per_file as i64);
    // File a: a repeat within the first batch, one in its second batch of an id of the first,
    // a null id and a null label. File b: a repeat of an id of file a.
    ids_a[5] = Some(3);
    ids_a[per_file - 10] = Some(20);
    ids_a[40] = None;
    y_a[50] = None;
    ids_b[7] = Some(100);
    let frame = |ids: Vec<Option<i64>>, ts: Vec<i64>, y: Vec<Option<i32>>| {
        let n = ids.len();
        let ts = Series::new("ts".into(), ts).cast(&DataType::Datetime(TimeUnit::Microseconds, None)).unwrap();
        DataFrame::new(
            n,
            vec![
                Column::new("id".into(), ids),
                ts.into_column(),
                Column::new("y".into(), y),
                Column::new("x".into(), (0..n).map(|i| (i % 10) as f64).collect::<Vec<_>>()),
                Column::new("c".into(), (0..n).map(|i| if i % 2 == 0 { "a" } else { "b" }).collect::<Vec<_>>()),
            ],
        )
        .unwrap()
    };
    write(dir.path(), "part-0.parquet", frame(ids_a, ts_a.clone(), y_a));
    write(dir.path(), "part-1.parquet", frame(ids_b, ts_b.clone(), y_b));
    let out = run(dir.path());
    let counts: std::collections::BTreeMap<&str, u64> =
        out.report.rule_counts.iter().map(|c| (c.rule.as_str(), c.rows)).collect();
    let expected: std::collections::BTreeMap<&str, u64> =
        [("duplicate_id", 3), ("null:id", 1), ("null:y", 1)].into_iter().collect();
    assert_eq!(counts, expected);
    let duplicates = out.report.checks.iter().find(|c| c.check == "duplicate_ids").unwrap();
    assert!(duplicates.detail.contains("e.g. 3, 20, 100"), "{}", duplicates.detail);
    // The clean rows are every row but those five, in file order.
    let bad = [5, 40, 50, per_file - 10, per_file + 7];
    let expected_ts: Vec<i64> =
        ts_a.iter().chain(&ts_b).enumerate().filter(|(i, _)| !bad.contains(i)).map(|(_, &t)| t).collect();
    let events = out.events.unwrap();
    assert_eq!(events.timestamps, expected_ts);
    let positives = events.labels.iter().filter(|&&l| l).count();
    let expected_positives = (0..2 * per_file).filter(|i| (i % per_file).is_multiple_of(4) && !bad.contains(i)).count();
    assert_eq!(positives, expected_positives);
}

/// Rows with ids `0..`, event times `ts` (microseconds), labels `y`, feature `x` and the
/// category `c` alternating `a`, `b`.
fn hourly(ts: Vec<i64>, y: Vec<Option<bool>>, x: Vec<f64>) -> DataFrame {
    let n = ts.len();
    let ts = Series::new("ts".into(), ts).cast(&DataType::Datetime(TimeUnit::Microseconds, None)).unwrap();
    DataFrame::new(
        n,
        vec![
            Column::new("id".into(), (0..n as i64).collect::<Vec<_>>()),
            ts.into_column(),
            Column::new("y".into(), y),
            Column::new("x".into(), x),
            Column::new("c".into(), (0..n).map(|i| if i % 2 == 0 { "a" } else { "b" }).collect::<Vec<_>>()),
        ],
    )
    .unwrap()
}

/// The stage on `dir/data` with `dataset.label_delay = delay`.
fn run_with_delay(dir: &Path, delay: &str) -> QualityOutcome {
    let text = PIPELINE.replace("label = \"y\"", &format!("label = \"y\"\nlabel_delay = \"{delay}\""));
    run_config(dir, PipelineConfig::from_toml_str(&text, &dir.join("p.toml")).unwrap())
}

#[test]
fn rows_newer_than_the_label_delay_await_their_label_and_older_ones_are_quarantined() {
    let dir = tempfile::tempdir().unwrap();
    // 1,000 rows an hour apart, the newest 100 within the last 100 hours.
    let n = 1000;
    let newest = now() - Duration::minutes(30);
    let ts: Vec<i64> = (0..n).map(|i| micros(newest - Duration::hours((n - 1 - i) as i64))).collect();
    let mut y: Vec<Option<bool>> = (0..n).map(|i| Some(i % 3 == 0)).collect();
    let mut x: Vec<f64> = (0..n).map(|i| (i % 10) as f64).collect();
    // Older than three days without a label: 5 rows, quarantined. Within three days (the newest
    // 72 rows): 40 rows without a label, one of them also out of range (quarantined for that).
    for i in [100, 200, 300, 400, 500] {
        y[i] = None;
    }
    y[n - 40..].iter_mut().for_each(|label| *label = None);
    x[n - 1] = 99.0;
    write(dir.path(), "part-0.parquet", hourly(ts, y, x));
    let out = run_with_delay(dir.path(), "3d");
    let counts: std::collections::BTreeMap<&str, u64> =
        out.report.rule_counts.iter().map(|c| (c.rule.as_str(), c.rows)).collect();
    assert_eq!(counts, [("null:y", 5), ("range:x", 1)].into_iter().collect());
    assert_eq!((out.report.awaiting_label_rows, out.report.quarantined_rows), (39, 6));
    let events = out.events.unwrap();
    assert_eq!(events.len(), n - 45, "the awaiting rows are not trained on");
    let awaiting = out.awaiting.unwrap();
    assert_eq!(awaiting.len(), 39);
    assert_eq!(awaiting.numeric[0].values, ((n - 40)..(n - 1)).map(|i| (i % 10) as f64).collect::<Vec<_>>());
    let first = awaiting.categorical[0].value(0);
    assert_eq!(first, if (n - 40) % 2 == 0 { "a" } else { "b" });
    assert!(awaiting.timestamps.iter().all(|&t| t > micros(now() - Duration::days(3))));
    // Without a delay, every row without a label is quarantined, as before.
    let plain = run(dir.path());
    assert_eq!(plain.report.awaiting_label_rows, 0);
    assert!(plain.awaiting.is_none());
    assert_eq!(plain.report.quarantined_rows, 45);
}

#[test]
fn drift_counts_the_features_of_the_rows_awaiting_their_label() {
    let dir = tempfile::tempdir().unwrap();
    // 40 days of hourly rows; the newest two days have no label yet, and their x is shifted to
    // the top of its range.
    let n = 960;
    let newest = now() - Duration::minutes(30);
    let ts: Vec<i64> = (0..n).map(|i| micros(newest - Duration::hours((n - 1 - i) as i64))).collect();
    let unlabelled = n - 48;
    let y: Vec<Option<bool>> = (0..n).map(|i| (i < unlabelled).then_some(i % 3 == 0)).collect();
    let x: Vec<f64> = (0..n).map(|i| if i < unlabelled { (i % 10) as f64 } else { 9.0 }).collect();
    write(dir.path(), "part-0.parquet", hourly(ts, y, x));
    let out = run_with_delay(dir.path(), "3d");
    assert_eq!(out.report.awaiting_label_rows, 48);
    // The current window is the last seven days of every row: 120 labelled (a tenth of them
    // at 9), 48 awaiting (all at 9).
    let x = out.report.drift.iter().find(|d| d.feature == "x").unwrap();
    assert!(x.alarm && x.psi > 0.2, "the shift of the newest rows is seen: psi {}", x.psi);
    let top = *x.current_share.last().unwrap();
    assert!((top - (12.0 + 48.0) / 168.0).abs() < 1e-9, "current shares {:?}", x.current_share);

    // Without the awaiting rows (no delay: they are quarantined), the labelled rows show no shift.
    let dir2 = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir2.path().join("data")).unwrap();
    std::fs::copy(dir.path().join("data/part-0.parquet"), dir2.path().join("data/part-0.parquet")).unwrap();
    let plain = run(dir2.path());
    let x = plain.report.drift.iter().find(|d| d.feature == "x").unwrap();
    assert!(!x.alarm, "psi {}", x.psi);
}
