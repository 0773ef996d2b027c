//! Issue 5: pattern discovery, cleanup and crash-safe archival of old patterns.
//!
//! The crash tests kill the real binary at each step (`CARETAKER_CRASH_AT`), then check that the
//! store and the archive files together still hold every pattern that must survive, and that a
//! rerun leaves each of them exactly once, in the same place as an uninterrupted command.

use crate::context;
use caretaker_patterns::archive::{self, EntryState, Manifest};
use caretaker_patterns::store;
use caretaker_test_support::{Output, TestContext};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

const STORE: &str = "data/patterns/store.parquet";
const ARCHIVE: &str = "data/patterns/archive";

/// A test directory with the example pipeline and its example data (3,000 events, 300 patterns).
fn with_store() -> (TestContext, String) {
    let ctx = context();
    let pipeline = ctx.pipeline("").to_str().unwrap().to_string();
    ctx.caretaker(&["demo", "--out", "data", "--rows", "3000", "--seed", "42"]).assert_code(0);
    (ctx, pipeline)
}

/// Pattern ids with their number of copies.
type Counts = BTreeMap<String, usize>;

fn counts(ids: impl IntoIterator<Item = String>) -> Counts {
    let mut out = Counts::new();
    for id in ids {
        *out.entry(id).or_default() += 1;
    }
    out
}

fn store_ids(ctx: &TestContext) -> Counts {
    counts(store::ids(&store::read(&ctx.path().join(STORE)).unwrap()).unwrap())
}

/// Ids in committed archive files (what the archive holds between commands).
fn archived_ids(ctx: &TestContext) -> Counts {
    let dir = ctx.path().join(ARCHIVE);
    let manifest = Manifest::load(&dir).unwrap();
    let mut ids = Vec::new();
    for e in manifest.files.iter().filter(|e| e.state == EntryState::Committed) {
        ids.extend(archive::file_ids(&dir.join(&e.path)).unwrap());
    }
    counts(ids)
}

/// Ids in every archive file on disk, listed or not (what a crash may have left).
fn ids_on_disk(ctx: &TestContext) -> BTreeSet<String> {
    let dir = ctx.path().join(ARCHIVE);
    let mut ids: BTreeSet<String> = store_ids(ctx).into_keys().collect();
    for rel in archive::part_files(&dir).unwrap() {
        ids.extend(archive::file_ids(&dir.join(rel)).unwrap());
    }
    ids
}

fn keys(c: &Counts) -> BTreeSet<String> {
    c.keys().cloned().collect()
}

#[track_caller]
fn assert_killed(out: &Output) {
    assert_eq!(
        out.code, None,
        "the process should have been killed at the crash point\n{}\n{}",
        out.stdout, out.stderr
    );
}

#[track_caller]
fn assert_each_once(ctx: &TestContext, pipeline: &str, store: &BTreeSet<String>, archive: &BTreeSet<String>) {
    let (s, a) = (store_ids(ctx), archived_ids(ctx));
    assert!(s.values().all(|n| *n == 1), "a pattern is in the store twice");
    assert!(a.values().all(|n| *n == 1), "a pattern is in the archive twice");
    assert_eq!(&keys(&s), store, "the store");
    assert_eq!(&keys(&a), archive, "the archive");
    assert!(keys(&s).is_disjoint(&keys(&a)), "a pattern is in the store and the archive");
    ctx.caretaker(&["patterns", "verify", "--pipeline", pipeline])
        .assert_code(0)
        .assert_stdout_contains("ok: no findings");
}

fn cleanup(ctx: &TestContext, pipeline: &str) -> serde_json::Value {
    let out = ctx.caretaker(&["patterns", "cleanup", "--pipeline", pipeline, "--json"]);
    out.assert_code(0);
    out.json()
}

/// What an uninterrupted cleanup of the example store leaves: (original, store, archive).
fn reference_cleanup() -> (BTreeSet<String>, BTreeSet<String>, BTreeSet<String>) {
    let (ctx, pipeline) = with_store();
    let original = keys(&store_ids(&ctx));
    let report = cleanup(&ctx, &pipeline);
    assert!(report["deleted"].as_u64().unwrap() > 0 && report["archived"].as_u64().unwrap() > 0, "{report:#}");
    (original, keys(&store_ids(&ctx)), keys(&archived_ids(&ctx)))
}

#[test]
fn issue_5_cleanup_killed_at_every_step_loses_nothing_and_a_rerun_duplicates_nothing() {
    let (original, kept, archived) = reference_cleanup();
    let survivors: BTreeSet<String> = kept.union(&archived).cloned().collect();
    assert!(survivors.len() < original.len());
    for point in [
        "patterns:archive_written",
        "patterns:manifest_pending",
        "patterns:store_written",
        "patterns:manifest_committed",
    ] {
        let (ctx, pipeline) = with_store();
        let out =
            ctx.caretaker_with_env(&["patterns", "cleanup", "--pipeline", &pipeline], &[("CARETAKER_CRASH_AT", point)]);
        assert_killed(&out);
        let held = ids_on_disk(&ctx);
        assert!(
            survivors.is_subset(&held),
            "{point}: {} patterns lost right after the crash",
            survivors.difference(&held).count()
        );
        cleanup(&ctx, &pipeline);
        assert_each_once(&ctx, &pipeline, &kept, &archived);
    }
}

#[test]
fn issue_5_a_crash_while_finishing_an_interrupted_cleanup_is_finished_by_the_next_command() {
    let (_, kept, archived) = reference_cleanup();
    let (ctx, pipeline) = with_store();
    let crash = |point: &str| {
        ctx.caretaker_with_env(&["patterns", "cleanup", "--pipeline", &pipeline], &[("CARETAKER_CRASH_AT", point)])
    };
    assert_killed(&crash("patterns:manifest_pending"));
    assert_killed(&crash("patterns:recovery_store_written"));
    assert_killed(&crash("patterns:recovery_files_removed"));
    cleanup(&ctx, &pipeline);
    assert_each_once(&ctx, &pipeline, &kept, &archived);
}

/// The state after one uninterrupted cleanup, and the id of one archived pattern.
fn cleaned() -> (TestContext, String, BTreeSet<String>, BTreeSet<String>) {
    let (ctx, pipeline) = with_store();
    cleanup(&ctx, &pipeline);
    let (s, a) = (keys(&store_ids(&ctx)), keys(&archived_ids(&ctx)));
    (ctx, pipeline, s, a)
}

#[test]
fn issue_5_restore_killed_at_every_step_loses_nothing_and_a_rerun_duplicates_nothing() {
    // One pattern out of a file that keeps others (the file is cut), and a whole day (files go).
    let (_, _, _, archived) = cleaned();
    let one = archived.iter().next().unwrap().clone();
    let by_id = ["--id", one.as_str()];
    let since = ["--since", "2026-11-28"];
    let cases: [(&[&str], &[&str]); 2] = [
        (
            &by_id,
            &[
                "patterns:restore_remainders_written",
                "patterns:restore_marked",
                "patterns:restore_store_written",
                "patterns:restore_files_removed",
            ],
        ),
        (&since, &["patterns:restore_marked", "patterns:restore_store_written", "patterns:restore_files_removed"]),
    ];
    for (selection, points) in cases {
        for point in points {
            let (ctx, pipeline, kept, archived) = cleaned();
            let everything: BTreeSet<String> = kept.union(&archived).cloned().collect();
            let restored: BTreeSet<String> =
                if selection[0] == "--id" { BTreeSet::from([one.clone()]) } else { archived.clone() };
            let mut args = vec!["patterns", "restore", "--pipeline", pipeline.as_str()];
            args.extend_from_slice(selection);
            assert_killed(&ctx.caretaker_with_env(&args, &[("CARETAKER_CRASH_AT", point)]));
            let held = ids_on_disk(&ctx);
            assert!(everything.is_subset(&held), "{point}: {} patterns lost", everything.difference(&held).count());
            ctx.caretaker(&args).assert_code(0);
            let store: BTreeSet<String> = kept.union(&restored).cloned().collect();
            let archive: BTreeSet<String> = archived.difference(&restored).cloned().collect();
            assert_each_once(&ctx, &pipeline, &store, &archive);
        }
    }
}

#[test]
fn issue_5_restored_patterns_come_back_marked_and_cleanup_leaves_them_alone() {
    let (ctx, pipeline, kept, archived) = cleaned();
    let ids: Vec<&String> = archived.iter().take(2).collect();
    let dry =
        ctx.caretaker(&["patterns", "restore", "--pipeline", &pipeline, "--id", ids[0], "--id", ids[1], "--dry-run"]);
    dry.assert_code(0).assert_stdout_contains("would restore 2 patterns");
    assert_eq!(keys(&archived_ids(&ctx)), archived, "a dry run changes nothing");

    let out =
        ctx.caretaker(&["patterns", "restore", "--pipeline", &pipeline, "--id", ids[0], "--id", ids[1], "--json"]);
    out.assert_code(0);
    let report = out.json();
    assert_eq!(report["restored"], 2);
    assert_eq!(report["files_rewritten"].as_array().unwrap().len(), 1);
    let df = store::read(&ctx.path().join(STORE)).unwrap();
    let statuses: BTreeMap<String, String> = store::ids(&df)
        .unwrap()
        .into_iter()
        .zip(df.column("status").unwrap().str().unwrap().iter().map(|s| s.unwrap().to_string()))
        .collect();
    assert_eq!(statuses[ids[0]], "restored");
    assert_eq!(statuses[ids[1]], "restored");
    assert_eq!(statuses.len(), kept.len() + 2);

    // The next cleanup does not send them back; restoring them again is a no-op that says so.
    let again = cleanup(&ctx, &pipeline);
    assert_eq!(again["restored_exempt"], 2, "{again:#}");
    assert!(store_ids(&ctx).contains_key(ids[0]));
    ctx.caretaker(&["patterns", "restore", "--pipeline", &pipeline, "--id", ids[0]])
        .assert_code(0)
        .assert_stdout_contains("already in the store");
    ctx.caretaker(&["patterns", "verify", "--pipeline", &pipeline]).assert_code(0);
}

#[test]
fn issue_5_dry_run_shows_counts_and_the_bytes_the_real_cleanup_then_measures() {
    let (ctx, pipeline) = with_store();
    let store_path = ctx.path().join(STORE);
    let before = std::fs::read(&store_path).unwrap();
    let out = ctx.caretaker(&["patterns", "cleanup", "--pipeline", &pipeline, "--dry-run"]);
    out.assert_code(0).assert_stdout_contains("would be deleted").assert_stdout_contains("bytes: store");
    let plan = ctx.caretaker(&["patterns", "cleanup", "--pipeline", &pipeline, "--dry-run", "--json"]).json();
    assert_eq!(std::fs::read(&store_path).unwrap(), before, "a dry run changes nothing");
    assert!(!ctx.path().join(ARCHIVE).exists());

    let report = cleanup(&ctx, &pipeline);
    assert_eq!(plan["delete"], report["deleted"]);
    assert_eq!(plan["archive"], report["archived"]);
    assert_eq!(plan["keep"], report["kept"]);
    assert_eq!(plan["store_bytes"].as_u64().unwrap(), before.len() as u64);
    // Bytes come from the files: the store file's real size before and after.
    assert_eq!(report["store_bytes_before"].as_u64().unwrap(), before.len() as u64);
    assert_eq!(report["store_bytes_after"].as_u64().unwrap(), std::fs::metadata(&store_path).unwrap().len());
    assert_eq!(plan["store_bytes_after"], report["store_bytes_after"]);
    assert_eq!(plan["archive_bytes"], report["archive_bytes_written"]);
    let file = PathBuf::from(report["archive_files"][0].as_str().unwrap());
    assert_eq!(report["archive_bytes_written"].as_u64().unwrap(), std::fs::metadata(file).unwrap().len());
}

/// Every file under the pattern directory with its bytes, to show nothing changed.
fn snapshot(ctx: &TestContext) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(dir: &std::path::Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if !p.file_name().unwrap().to_string_lossy().starts_with(".patterns.lock") {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(&ctx.path().join("data/patterns"), &mut out);
    out
}

#[test]
fn issue_5_a_corrupted_store_is_refused_by_every_command_and_left_alone() {
    let (ctx, pipeline, _, _) = cleaned();
    std::fs::write(ctx.path().join(STORE), b"PAR1 this is not parquet at all").unwrap();
    let before = snapshot(&ctx);
    for args in [
        vec!["patterns", "cleanup", "--pipeline", &pipeline],
        vec!["patterns", "cleanup", "--pipeline", &pipeline, "--dry-run"],
        vec!["patterns", "restore", "--pipeline", &pipeline, "--since", "2026-11-01"],
        vec!["patterns", "list", "--pipeline", &pipeline],
    ] {
        ctx.caretaker(&args).assert_code(2).assert_stderr_contains("store.parquet");
    }
    let verify = ctx.caretaker(&["patterns", "verify", "--pipeline", &pipeline]);
    verify.assert_code(1).assert_stdout_contains("unreadable_store");
    assert_eq!(snapshot(&ctx), before);
}

#[test]
fn issue_5_a_store_with_an_unexpected_schema_is_refused_and_left_alone() {
    let (ctx, pipeline, _, _) = cleaned();
    // A real Parquet file, but events, not patterns.
    let events = std::fs::read_dir(ctx.path().join("data/events")).unwrap().flatten().next().unwrap().path();
    let events =
        if events.is_dir() { std::fs::read_dir(events).unwrap().flatten().next().unwrap().path() } else { events };
    std::fs::copy(events, ctx.path().join(STORE)).unwrap();
    let before = snapshot(&ctx);
    ctx.caretaker(&["patterns", "cleanup", "--pipeline", &pipeline])
        .assert_code(2)
        .assert_stderr_contains("not a pattern store: column \"pattern_id\" is missing");
    ctx.caretaker(&["patterns", "restore", "--pipeline", &pipeline, "--since", "2026-11-01"])
        .assert_code(2)
        .assert_stderr_contains("not a pattern store");
    assert_eq!(snapshot(&ctx), before);
}

#[test]
fn issue_5_a_manifest_that_does_not_match_its_files_is_found_and_nothing_is_deleted() {
    // A file altered in place (same size): verify finds it, restore refuses to read it.
    let (ctx, pipeline, _, archived) = cleaned();
    let dir = ctx.path().join(ARCHIVE);
    let manifest = Manifest::load(&dir).unwrap();
    let file = dir.join(&manifest.files[0].path);
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&file, &bytes).unwrap();
    let before = snapshot(&ctx);
    ctx.caretaker(&["patterns", "verify", "--pipeline", &pipeline])
        .assert_code(1)
        .assert_stdout_contains("hash_mismatch");
    ctx.caretaker(&["patterns", "restore", "--pipeline", &pipeline, "--since", "2026-11-28"])
        .assert_code(2)
        .assert_stderr_contains("differs from the manifest");
    let one = archived.iter().next().unwrap();
    ctx.caretaker(&["patterns", "restore", "--pipeline", &pipeline, "--id", one])
        .assert_code(2)
        .assert_stderr_contains("differs from the manifest");
    assert_eq!(snapshot(&ctx), before);

    // A wrong row count in the manifest.
    let (ctx, pipeline, _, _) = cleaned();
    let mut manifest = Manifest::load(&dir_of(&ctx)).unwrap();
    manifest.files[0].rows += 1;
    manifest.save(&dir_of(&ctx)).unwrap();
    ctx.caretaker(&["patterns", "verify", "--pipeline", &pipeline])
        .assert_code(1)
        .assert_stdout_contains("row_count_mismatch");

    // A listed file that is gone: verify says so; cleanup and restore stop before changing anything.
    let (ctx, pipeline, _, _) = cleaned();
    let manifest = Manifest::load(&dir_of(&ctx)).unwrap();
    std::fs::remove_file(dir_of(&ctx).join(&manifest.files[0].path)).unwrap();
    let before = snapshot(&ctx);
    ctx.caretaker(&["patterns", "verify", "--pipeline", &pipeline])
        .assert_code(1)
        .assert_stdout_contains("missing_file");
    ctx.caretaker(&["patterns", "cleanup", "--pipeline", &pipeline]).assert_code(2).assert_stderr_contains("missing");
    assert_eq!(snapshot(&ctx), before);

    // A file the manifest lost track of, holding patterns found nowhere else: never deleted.
    let (ctx, pipeline, _, archived) = cleaned();
    let dir = dir_of(&ctx);
    let manifest = Manifest::load(&dir).unwrap();
    Manifest { format: 1, files: Vec::new() }.save(&dir).unwrap();
    let before = snapshot(&ctx);
    ctx.caretaker(&["patterns", "verify", "--pipeline", &pipeline]).assert_code(1).assert_stdout_contains("extra_file");
    ctx.caretaker(&["patterns", "cleanup", "--pipeline", &pipeline])
        .assert_code(2)
        .assert_stderr_contains("found nowhere else");
    assert_eq!(snapshot(&ctx), before);
    assert_eq!(archive::file_ids(&dir.join(&manifest.files[0].path)).unwrap().len(), archived.len());

    // A manifest that is not JSON.
    let (ctx, pipeline, _, _) = cleaned();
    std::fs::write(dir_of(&ctx).join("manifest.json"), "{ \"format\": 1, \"files\": [").unwrap();
    let before = snapshot(&ctx);
    for sub in ["cleanup", "verify"] {
        ctx.caretaker(&["patterns", sub, "--pipeline", &pipeline])
            .assert_code(2)
            .assert_stderr_contains("not an archive manifest");
    }
    assert_eq!(snapshot(&ctx), before);
}

fn dir_of(ctx: &TestContext) -> PathBuf {
    ctx.path().join(ARCHIVE)
}

#[test]
fn issue_5_dates_in_the_future_are_refused_or_reported_and_nothing_is_deleted() {
    // Restoring from a day that has not come.
    let (ctx, pipeline, _, archived) = cleaned();
    ctx.caretaker(&["patterns", "restore", "--pipeline", &pipeline, "--since", "2027-01-01"])
        .assert_code(2)
        .assert_stderr_contains("in the future");
    assert_eq!(keys(&archived_ids(&ctx)), archived);

    // An archive written "tomorrow" as this clock sees it.
    let mut ctx = ctx;
    ctx.set_now("2026-11-20T00:00:00Z");
    ctx.caretaker(&["patterns", "verify", "--pipeline", &pipeline])
        .assert_code(1)
        .assert_stdout_contains("future_date");

    // A store whose patterns were created after now (a clock gone back 100 days): kept, reported.
    let (mut ctx, pipeline) = with_store();
    let original = store_ids(&ctx);
    ctx.set_now("2026-08-20T02:00:00Z");
    let report = cleanup(&ctx, &pipeline);
    let future = report["created_in_future"].as_u64().unwrap();
    assert!(future > 0, "{report:#}");
    let text = ctx.caretaker(&["patterns", "cleanup", "--pipeline", &pipeline, "--dry-run"]);
    text.assert_code(0).assert_stdout_contains("created in the future; they are kept");
    // verify counts the future patterns still in the store: all of them.
    let verify = ctx.caretaker(&["patterns", "verify", "--pipeline", &pipeline]);
    verify.assert_code(1).assert_stdout_contains(&format!("{future} pattern(s) created after now"));
    assert_eq!(
        store_ids(&ctx).len() as u64,
        original.len() as u64 - report["deleted"].as_u64().unwrap() - report["archived"].as_u64().unwrap()
    );
}

#[test]
fn issue_5_discovery_mines_the_planted_rules_and_a_second_night_on_the_same_data_counts_nothing_twice() {
    let mut ctx = context();
    let pipeline = ctx.pipeline("");
    let pipeline = pipeline.to_str().unwrap();
    let first = ctx.caretaker(&["run", pipeline, "--json"]);
    first.assert_code(0);
    let report = first.json();
    let d = &report["patterns"]["discovery"];
    let mined = d["mined"].as_u64().unwrap();
    assert!(mined > 0 && d["discovered"].as_u64().unwrap() > 0, "{d:#}");
    assert_eq!(
        d["mined"].as_u64().unwrap(),
        d["discovered"].as_u64().unwrap() + d["updated"].as_u64().unwrap() + d["already_archived"].as_u64().unwrap()
    );
    assert!(d["matched"].as_u64().unwrap() > 0 && d["uses_counted"].as_u64().unwrap() > 0, "{d:#}");
    // A matching rule is right far more often than the base rate of failures.
    let precision = d["holdout_precision"].as_f64().unwrap();
    assert!(precision > 0.6 && precision > 2.0 * report["split"]["holdout_positive_rate"].as_f64().unwrap(), "{d:#}");
    // The planted `retries >= 3` rule, with its threshold snapped to a round number.
    let list = ctx.caretaker(&["patterns", "list", "--pipeline", pipeline, "--top", "100000", "--json"]).json();
    let texts: Vec<&str> = list.as_array().unwrap().iter().map(|p| p["conditions"].as_str().unwrap()).collect();
    assert!(texts.iter().any(|t| t.contains("retries > 2.5")), "{texts:#?}");

    // Night 2 on the same data: the same rules (same ids) are refreshed, none created, and no
    // event is counted again.
    ctx.set_now("2026-11-29T02:00:00Z");
    let second = ctx.caretaker(&["run", pipeline, "--json"]).json();
    let d2 = &second["patterns"]["discovery"];
    assert_eq!(d2["mined"], d["mined"]);
    assert_eq!(d2["discovered"], 0, "{d2:#}");
    assert_eq!(d2["uses_counted"], 0, "{d2:#}");
    ctx.caretaker(&["patterns", "verify", "--pipeline", pipeline]).assert_code(0);
}
