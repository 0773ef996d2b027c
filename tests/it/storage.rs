//! Issue 25: training data in object storage, against the S3-compatible server `.ci/run` starts.

use crate::context;
use caretaker_test_support::{S3Server, TestContext};
use std::path::Path;

/// Writes the example events locally and uploads them under `prefix/events/` of the test bucket,
/// with one more partition far older than any run reads. Returns how many files the run reads.
fn upload_example(ctx: &TestContext, s3: &S3Server, prefix: &str) -> usize {
    ctx.caretaker(&["demo", "--out", "local", "--rows", "3000", "--seed", "42", "--end", "2026-11-28T02:00:00Z"])
        .assert_code(0);
    let bucket = caretaker_objects::Bucket::open(&format!("s3://{}/{prefix}", s3.bucket), &s3.options()).unwrap();
    let root = ctx.path().join("local/events");
    let mut files = Vec::new();
    walk(&root, &mut files);
    for file in &files {
        let key = format!("events/{}", file.strip_prefix(&root).unwrap().display());
        let bytes = std::fs::read(file).unwrap();
        bucket.put(&key, bytes.clone()).unwrap();
        if file == &files[0] {
            // Ten years older than the data: left out of the run (read, its ids would be
            // duplicates of the first partition's).
            bucket.put("events/date=2016-11-01/part-0.parquet", bytes).unwrap();
        }
    }
    files.len()
}

fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(&path, out);
        } else {
            out.push(path);
        }
    }
    out.sort();
}

/// The example pipeline reading `url`, its `[dataset.example]` removed.
fn pipeline(ctx: &TestContext, url: &str, options: &str) -> String {
    let base = caretaker_test_support::example_pipeline(3_000)
        .replace("path = \"data/events\"", &format!("path = {url:?}"))
        .replace("[dataset.example]\nrows = 3000\nseed = 42\n", "");
    ctx.pipeline_from(&base, options).to_str().unwrap().to_string()
}

fn prefix(ctx: &TestContext) -> String {
    // Bucket names are lower case.
    format!("run-{}", ctx.path().file_name().unwrap().to_string_lossy().replace(['.', '_'], "").to_lowercase())
}

#[test]
fn a_run_reads_its_training_data_from_object_storage() {
    let Some(s3) = caretaker_test_support::s3_server() else { return };
    let mut ctx = context();
    let prefix = prefix(&ctx);
    let files = upload_example(&ctx, &s3, &prefix);
    let url = format!("s3://{}/{prefix}/events/", s3.bucket);
    let pipeline = pipeline(&ctx, &url, &s3.storage_options(None));
    ctx.set_now("2026-11-28T03:00:00Z");
    let run = ctx.caretaker(&["run", &pipeline, "--json"]);
    run.assert_code(0);
    let report = run.json();
    assert_eq!(report["data"]["path"], url.as_str());
    assert_eq!(report["data"]["files"].as_u64(), Some(files as u64), "the old partition is left out");
    assert_eq!(report["data"]["rows"].as_u64(), Some(3000), "the old partition's rows are not read");
    assert_eq!(report["gate"]["decision"], "deployed", "{:#}", report["gate"]);
    // The next run reads the same objects from the local cache.
    ctx.set_now("2026-11-28T04:00:00Z");
    let again = ctx.caretaker(&["-v", "run", &pipeline]);
    again.assert_code(0).assert_stderr_contains(&format!("{files} objects in the local cache, 0 fetched now"));
    // One object: the quality stage reads that file alone.
    let one = format!("s3://{}/{prefix}/events/date=2026-11-27/part-0.parquet", s3.bucket);
    let single = self::pipeline(&ctx, &one, &s3.storage_options(None));
    let quality = ctx.caretaker(&["quality", &single, "--json"]);
    assert_ne!(quality.code, Some(2), "{}", quality.stderr);
    assert_eq!(quality.json()["data"]["files"].as_u64(), Some(1));
    // Compaction does not rewrite object storage; it says so and changes nothing.
    let compact = ctx.caretaker(&["data", "compact", &pipeline]);
    compact.assert_code(2).assert_stderr_contains("object storage");
}

#[test]
fn a_dataset_that_cannot_be_read_from_object_storage_is_named_and_nothing_is_deployed() {
    let Some(s3) = caretaker_test_support::s3_server() else { return };
    let ctx = context();
    let prefix = prefix(&ctx);
    upload_example(&ctx, &s3, &prefix);
    let cases = [
        (format!("s3://no-such-bucket-{prefix}/events/"), s3.storage_options(None), "no such bucket"),
        (
            format!("s3://{}/{prefix}/events/", s3.bucket),
            s3.storage_options(Some("not-the-secret-7f3a")),
            "access denied",
        ),
        (
            format!("s3://{}/{prefix}/events/", s3.bucket),
            s3.storage_options(None).replace(&s3.endpoint, "http://127.0.0.1:9"),
            "unreachable",
        ),
        (format!("s3://{}/{prefix}/nothing-here/", s3.bucket), s3.storage_options(None), "no Parquet files"),
    ];
    for (url, options, reason) in cases {
        let pipeline = pipeline(&ctx, &url, &options);
        let run = ctx.caretaker(&["run", &pipeline]);
        run.assert_code(2);
        let said = format!("{}{}", run.stdout, run.stderr);
        assert!(
            said.contains(url.trim_end_matches('/')) && said.contains(reason),
            "{url}: expected {reason:?} in {said}"
        );
        assert!(
            !said.contains("caretaker-secret") && !said.contains("not-the-secret-7f3a"),
            "no secret in the output: {said}"
        );
        assert!(!ctx.path().join("models/champion.json").exists(), "nothing deployed");
    }
}

#[test]
fn two_machines_keep_their_run_history_in_one_postgresql_database() {
    // Dropped when the test ends, whether it passes or fails.
    let Some(database) = caretaker_test_support::postgres::TestDatabase::create("runs_history") else { return };
    let url = database.url().to_string();
    // Two machines (two directories, each with its own models and state), two pipelines, one
    // database named by output.history ([output] ends the example pipeline).
    let history = format!("history = \"{url}\"");
    let mut a = context();
    let a_pipeline = a.pipeline(&history);
    let a_pipeline = a_pipeline.to_str().unwrap();
    let b = context();
    let other =
        caretaker_test_support::example_pipeline(3_000).replace("name = \"bridge-failures\"", "name = \"other\"");
    let b_pipeline = b.pipeline_from(&other, &history);
    let b_pipeline = b_pipeline.to_str().unwrap();

    let first = a.caretaker(&["run", a_pipeline, "--json"]);
    first.assert_code(0);
    b.caretaker(&["run", b_pipeline]).assert_code(0);
    a.set_now("2026-11-29T02:00:00Z");
    let second = a.caretaker(&["run", a_pipeline, "--json"]);
    second.assert_code(0);
    let (id1, id2) =
        (first.json()["run_id"].as_str().unwrap().to_string(), second.json()["run_id"].as_str().unwrap().to_string());
    assert!(!a.path().join("state/history.sqlite").exists(), "no SQLite history beside the database");

    // Each pipeline's runs, from the database: listed, shown, trended and exported.
    let listed = a.caretaker(&["runs", "list", "--pipeline", a_pipeline, "--json"]);
    listed.assert_code(0);
    let ids: Vec<String> =
        listed.json().as_array().unwrap().iter().map(|r| r["run_id"].as_str().unwrap().to_string()).collect();
    assert_eq!(ids, [id2.clone(), id1.clone()], "the other pipeline's run is not listed");
    let listed = b.caretaker(&["runs", "list", "--pipeline", b_pipeline, "--json"]);
    assert_eq!(listed.json().as_array().unwrap().len(), 1);
    a.caretaker(&["runs", "show", &id1, "--pipeline", a_pipeline]).assert_code(0).assert_stdout_contains(&id1);
    let page = std::fs::read_to_string(a.path().join(format!("reports/{id2}/report.html"))).unwrap();
    assert!(page.contains("aria-label=\"Quality score") && page.contains(&id1), "the trends hold both nights");
    let exported =
        a.caretaker(&["runs", "export", "--format", "parquet", "runs.parquet", "--pipeline", a_pipeline, "--json"]);
    exported.assert_code(0);
    assert_eq!(exported.json()["runs"], 2, "{}", exported.stdout);

    // A database that does not answer stops the run before anything is trained or deployed.
    let c = context();
    let unreachable = c.pipeline("history = \"postgres://app:Sup3rS3cret@127.0.0.1:1/runs?connect_timeout=2\"");
    let out = c.caretaker(&["run", unreachable.to_str().unwrap()]);
    out.assert_code(2);
    assert!(out.stderr.contains("run history PostgreSQL postgres://app:***@127.0.0.1:1/runs"), "{}", out.stderr);
    assert!(!out.stderr.contains("Sup3rS3cret") && !out.stdout.contains("Sup3rS3cret"));
    assert!(!c.path().join("models/champion.json").exists(), "nothing deployed");
}

/// The example pipeline with its registry and reports under `url` in the test bucket and its
/// pattern archive at `archive`, reached with `[output.storage_options]`; the example data and
/// the pattern store stay local (each machine has its own store, so each its own archive).
fn pipeline_with_outputs_in(ctx: &TestContext, s3: &S3Server, url: &str, archive: &str) -> String {
    let base = caretaker_test_support::example_pipeline(3_000)
        .replace("models = \"models\"", &format!("models = \"{url}/models\""))
        .replace("reports = \"reports\"", &format!("reports = \"{url}/reports\""))
        .replace("archive = \"data/patterns/archive\"", &format!("archive = \"{archive}\""));
    let options = s3.storage_options(None).replace("[dataset.storage_options]", "[output.storage_options]");
    ctx.pipeline_from(&base, &options).to_str().unwrap().to_string()
}

#[test]
fn a_run_keeps_its_registry_reports_and_pattern_archive_in_object_storage() {
    let Some(s3) = caretaker_test_support::s3_server() else { return };
    let ctx = context();
    let url = s3.fresh_url("outputs");
    let pipeline = pipeline_with_outputs_in(&ctx, &s3, &url, &format!("{url}/archive"));
    let run = ctx.caretaker(&["run", &pipeline, "--json"]);
    run.assert_code(0);
    let report = run.json();
    assert_eq!(report["gate"]["decision"], "deployed", "{:#}", report["gate"]);
    assert!(!ctx.path().join("models").exists(), "no registry on the machine");

    let bucket = caretaker_objects::Bucket::open(&url, &s3.options()).unwrap();
    let pointer: serde_json::Value =
        serde_json::from_slice(&bucket.get("models/champion.json").unwrap().expect("a champion pointer").bytes)
            .unwrap();
    assert_eq!(pointer["version"], "v0001");
    // The run's directory: report.json as the run printed it, and its page.
    let run_id = report["run_id"].as_str().unwrap();
    let copied = bucket.get(&format!("reports/{run_id}/report.json")).unwrap().expect("report.json in the bucket");
    let copied: serde_json::Value = serde_json::from_slice(&copied.bytes).unwrap();
    assert_eq!((copied["run_id"].as_str(), &copied["gate"]["deployed_version"]), (Some(run_id), &pointer["version"]));
    assert!(bucket.get(&format!("reports/{run_id}/report.html")).unwrap().is_some());
    // The archive: what the cleanup archived, and the manifest naming it.
    let archived = report["patterns"]["archived"].as_u64().unwrap();
    assert!(archived > 0, "the example store has old valuable patterns: {:#}", report["patterns"]);
    let manifest: serde_json::Value =
        serde_json::from_slice(&bucket.get("archive/manifest.json").unwrap().expect("a manifest").bytes).unwrap();
    let files = manifest["files"].as_array().unwrap();
    assert_eq!(files.len(), 1, "{manifest:#}");
    let file = files[0]["path"].as_str().unwrap();
    assert!(bucket.get(&format!("archive/{file}")).unwrap().is_some(), "{file} is in the bucket");

    // The operator's commands read and change the registry in the bucket.
    ctx.caretaker(&["models", "list", "--pipeline", &pipeline]).assert_code(0).assert_stdout_contains("v0001");
    ctx.caretaker(&["models", "ledger", "--pipeline", &pipeline]).assert_code(0).assert_stdout_contains("v0001");
    let rollback = ctx.caretaker(&["models", "rollback", "--pipeline", &pipeline, "--reason", "test"]);
    rollback.assert_code(2).assert_stderr_contains("nothing to roll back to");

    // The machine loses its local copy of the archive (a new container, say): the next run
    // finds the archive where the run left it, and the champion defends its place.
    std::fs::remove_dir_all(ctx.path().join("state/pattern-archive")).unwrap();
    let run = ctx.caretaker(&["run", &pipeline, "--json"]);
    run.assert_code(0);
    let report = run.json();
    assert_eq!(report["champion"]["version"], "v0001", "{:#}", report["champion"]);
    let local: serde_json::Value = ctx.read_json("state/pattern-archive/manifest.json");
    assert_eq!(local["files"][0]["path"].as_str(), Some(file), "{local:#}");
    assert!(ctx.path().join("state/pattern-archive").join(file).is_file(), "fetched back");

    // Another machine (another directory) finds the champion in the bucket.
    let other = context();
    let second = pipeline_with_outputs_in(&other, &s3, &url, &s3.fresh_url("archive"));
    let run = other.caretaker(&["run", &second, "--json"]);
    run.assert_code(0);
    assert_eq!(run.json()["champion"]["version"], "v0001");
}

#[test]
fn two_machines_racing_to_deploy_cannot_both_deploy() {
    let Some(s3) = caretaker_test_support::s3_server() else { return };
    let url = s3.fresh_url("race");
    let (a, b) = (context(), context());
    let pipeline_a = pipeline_with_outputs_in(&a, &s3, &url, &s3.fresh_url("archive"));
    let pipeline_b = pipeline_with_outputs_in(&b, &s3, &url, &s3.fresh_url("archive"));
    // Machine A weighs its candidate against "no champion", writes its version, and stops just
    // before it writes the pointer.
    let release = a.path().join("release");
    let mut run_a = a
        .command(&["run", &pipeline_a, "--json"])
        .env("CARETAKER_PAUSE_AT", "deploy:before_pointer")
        .env("CARETAKER_PAUSE_FILE", &release)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let reached = a.path().join("release.reached");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    while !reached.exists() {
        if let Some(status) = run_a.try_wait().unwrap() {
            let out = run_a.wait_with_output().unwrap();
            panic!("A ended ({status}) before its deploy: {}", String::from_utf8_lossy(&out.stderr));
        }
        assert!(std::time::Instant::now() < deadline, "A never reached its deploy");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // Machine B, weighed against the same "no champion", deploys meanwhile.
    let run_b = b.caretaker(&["run", &pipeline_b, "--json"]);
    run_b.assert_code(0);
    let report_b = run_b.json();
    assert_eq!(report_b["gate"]["decision"], "deployed");
    assert_eq!(report_b["gate"]["deployed_version"], "v0002", "A took v0001 before it paused");
    // A goes on: its pointer write is refused; its model stays stored, not deployed.
    std::fs::write(&release, "").unwrap();
    let out = run_a.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let report_a: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let gate = &report_a["gate"];
    assert_eq!(
        (gate["decision"].as_str(), &gate["deployed_version"]),
        (Some("kept_champion"), &serde_json::Value::Null)
    );
    let reason = gate["reasons"][0].as_str().unwrap();
    assert!(
        reason.contains("the champion changed")
            && reason.contains("v0002")
            && reason.contains("v0001 is stored, not deployed"),
        "{reason}"
    );
    // One champion, one deploy in the ledger; A's model can be promoted by hand.
    let ledger = b.caretaker(&["models", "ledger", "--pipeline", &pipeline_b]);
    ledger.assert_code(0);
    assert_eq!(ledger.stdout.matches("deploy").count(), 1, "{}", ledger.stdout);
    let list = a.caretaker(&["models", "list", "--pipeline", &pipeline_a]);
    list.assert_code(0).assert_stdout_contains("v0001").assert_stdout_contains("v0002");
    let bucket = caretaker_objects::Bucket::open(&url, &s3.options()).unwrap();
    let pointer: serde_json::Value =
        serde_json::from_slice(&bucket.get("models/champion.json").unwrap().unwrap().bytes).unwrap();
    assert_eq!(pointer["version"], "v0002");
}

#[test]
fn a_registry_in_object_storage_that_cannot_be_reached_stops_the_run_before_training() {
    let Some(s3) = caretaker_test_support::s3_server() else { return };
    let ctx = context();
    let cases = [
        (s3.storage_options(None).replace(&s3.endpoint, "http://127.0.0.1:9"), "unreachable"),
        (s3.storage_options(Some("not-the-secret-7f3a")), "access denied"),
    ];
    for (options, reason) in cases {
        let url = s3.fresh_url("unreachable");
        let base = caretaker_test_support::example_pipeline(3_000)
            .replace("models = \"models\"", &format!("models = \"{url}/models\""));
        let options = options.replace("[dataset.storage_options]", "[output.storage_options]");
        let pipeline = ctx.pipeline_from(&base, &options);
        let run = ctx.caretaker(&["run", pipeline.to_str().unwrap()]);
        run.assert_code(2);
        let said = format!("{}{}", run.stdout, run.stderr);
        assert!(said.contains(&format!("{url}/models/champion.json")) && said.contains(reason), "{reason}: {said}");
        assert!(!said.contains("caretaker-secret") && !said.contains("not-the-secret-7f3a"), "{said}");
        assert!(!ctx.path().join("reports").exists(), "stopped before anything ran");
    }
}
