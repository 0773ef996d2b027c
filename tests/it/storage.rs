//! Issue 25: training data in object storage, against the S3-compatible server `.ci/run` starts.

use crate::context;
use caretaker_test_support::{S3Server, TestContext};
use object_store::ObjectStoreExt;
use std::path::Path;

/// Writes the example events locally and uploads them under `prefix/events/` of the test bucket,
/// with one more partition far older than any run reads. Returns how many files the run reads.
fn upload_example(ctx: &TestContext, s3: &S3Server, prefix: &str) -> usize {
    ctx.caretaker(&["demo", "--out", "local", "--rows", "3000", "--seed", "42", "--end", "2026-11-28T02:00:00Z"])
        .assert_code(0);
    let store = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(&s3.endpoint)
        .with_allow_http(true)
        .with_virtual_hosted_style_request(false)
        .with_region("us-east-1")
        .with_bucket_name(&s3.bucket)
        .with_access_key_id(&s3.access_key)
        .with_secret_access_key(&s3.secret_key)
        .build()
        .unwrap();
    let root = ctx.path().join("local/events");
    let mut files = Vec::new();
    walk(&root, &mut files);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        for file in &files {
            let key = format!("{prefix}/events/{}", file.strip_prefix(&root).unwrap().display());
            let bytes = std::fs::read(file).unwrap();
            store.put(&key.as_str().into(), bytes.clone().into()).await.unwrap();
            if file == &files[0] {
                // Ten years older than the data: left out of the run (read, its ids would be
                // duplicates of the first partition's).
                let old = format!("{prefix}/events/date=2016-11-01/part-0.parquet");
                store.put(&old.as_str().into(), bytes.into()).await.unwrap();
            }
        }
    });
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
    let Some(admin) = caretaker_test_support::postgres_url() else { return };
    let name = caretaker_test_support::unique_name("runs_history");
    let rt = caretaker_scheduler::runtime().unwrap();
    let url = rt.block_on(caretaker_scheduler::history::postgres::create_database(&admin, &name)).unwrap();
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
    rt.block_on(caretaker_scheduler::history::postgres::drop_database(&admin, &name)).unwrap();
}
