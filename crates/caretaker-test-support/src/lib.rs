//! Fixtures for Caretaker's tests: a temporary directory per test, a pipeline file pointing into
//! it, and a runner for the real `caretaker` binary whose failed assertions print the command, the
//! directory, stdout and stderr.
//!
//! ```no_run
//! # let bin = "target/debug/caretaker";
//! let ctx = caretaker_test_support::TestContext::new(bin);
//! let pipeline = ctx.pipeline("");
//! let out = ctx.caretaker(&["run", pipeline.to_str().unwrap(), "--json"]);
//! out.assert_code(0);
//! let report = out.json();
//! ```

pub mod browser;
pub mod postgres;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The fixed "now" of tests: the example data ends at this hour.
pub const TEST_NOW: &str = "2026-11-28T02:00:00Z";

pub struct TestContext {
    pub dir: tempfile::TempDir,
    bin: PathBuf,
    now: String,
}

/// The result of one `caretaker` invocation.
pub struct Output {
    pub command: String,
    pub dir: PathBuf,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    fn context(&self) -> String {
        format!(
            "command: {}\ndirectory: {}\nexit code: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.command,
            self.dir.display(),
            self.code,
            self.stdout,
            self.stderr
        )
    }

    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, Some(code), "unexpected exit code\n{}", self.context());
        self
    }

    #[track_caller]
    pub fn assert_stderr_contains(&self, needle: &str) -> &Self {
        assert!(self.stderr.contains(needle), "stderr lacks {needle:?}\n{}", self.context());
        self
    }

    #[track_caller]
    pub fn assert_stdout_contains(&self, needle: &str) -> &Self {
        assert!(self.stdout.contains(needle), "stdout lacks {needle:?}\n{}", self.context());
        self
    }

    /// stdout parsed as one JSON document.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON document: {e}\n{}", self.context()))
    }
}

impl TestContext {
    /// A fresh temporary directory; `bin` is `env!("CARGO_BIN_EXE_caretaker")` of the caller.
    pub fn new(bin: &str) -> TestContext {
        TestContext {
            dir: tempfile::tempdir().expect("a temp dir"),
            bin: PathBuf::from(bin),
            now: TEST_NOW.to_string(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Sets the instant the binary sees as "now" (`CARETAKER_NOW`).
    pub fn set_now(&mut self, now: &str) {
        self.now = now.to_string();
    }

    /// Writes `pipelines/test.toml`: the example pipeline with a small example dataset in this
    /// directory, followed by `extra` TOML (later keys of a table must come in their own
    /// `[table]` header, as TOML requires).
    pub fn pipeline(&self, extra: &str) -> PathBuf {
        self.pipeline_from(&example_pipeline(3_000), extra)
    }

    pub fn pipeline_from(&self, base: &str, extra: &str) -> PathBuf {
        let path = self.path().join("pipelines/test.toml");
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("pipelines dir");
        std::fs::write(&path, format!("{base}\n{extra}\n")).expect("write pipeline");
        path
    }

    /// Runs the binary in this directory with the fixed clock.
    pub fn caretaker(&self, args: &[&str]) -> Output {
        self.caretaker_with_env(args, &[])
    }

    /// Runs the binary with extra environment variables (`CARETAKER_CRASH_AT`, ...).
    pub fn caretaker_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let out = self.command(args).envs(env.iter().copied()).output().expect("the caretaker binary runs");
        Output {
            command: format!("caretaker {}", args.join(" ")),
            dir: self.path().to_path_buf(),
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// The binary with `args`, in this directory with the fixed clock, not started yet (to kill it
    /// partway, say).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.bin);
        command
            .args(args)
            .current_dir(self.path())
            .env("CARETAKER_NOW", &self.now)
            .env_remove("CARETAKER_PIPELINE")
            .env_remove("CARETAKER_LOG");
        command
    }

    /// Reads a JSON file under this directory.
    pub fn read_json(&self, relative: impl AsRef<Path>) -> serde_json::Value {
        let path = self.path().join(relative);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
    }
}

/// The example pipeline, with `rows` example events and its outputs in the test directory.
pub fn example_pipeline(rows: usize) -> String {
    let shipped = include_str!("../../../pipelines/nightly.toml");
    shipped.replace("rows = 20000", &format!("rows = {rows}"))
}

/// The PostgreSQL server tests use: `CARETAKER_TEST_POSTGRES_URL`, by default
/// `postgres://postgres@127.0.0.1:5432/postgres`. `None` (the test skips, saying so) when it does
/// not answer, unless `CARETAKER_REQUIRE_SERVICES=1`, when a missing server fails the test. Each
/// test creates and drops its own database on it ([`postgres::TestDatabase`]).
pub fn postgres_url() -> Option<String> {
    service("CARETAKER_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres", 5432)
}

/// The Redis server tests use: `CARETAKER_TEST_REDIS_URL`, by default `redis://127.0.0.1:6379`.
/// Same skipping rule as [`postgres_url`]; each test works under its own key prefix.
pub fn redis_url() -> Option<String> {
    service("CARETAKER_TEST_REDIS_URL", "redis://127.0.0.1:6379", 6379)
}

/// The S3-compatible server tests use, as `.ci/run` starts it: `CARETAKER_TEST_S3_URL` (default
/// `http://127.0.0.1:9000`), the keys `caretaker` / `caretaker-secret`, the bucket
/// `caretaker-test`. Same skipping rule as [`postgres_url`]; each test works under its own prefix.
pub fn s3_server() -> Option<S3Server> {
    let url = service("CARETAKER_TEST_S3_URL", "http://127.0.0.1:9000", 9000)?;
    Some(S3Server {
        endpoint: url,
        access_key: "caretaker".into(),
        secret_key: "caretaker-secret".into(),
        bucket: "caretaker-test".into(),
    })
}

#[derive(Debug, Clone)]
pub struct S3Server {
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    pub bucket: String,
}

impl S3Server {
    /// The storage options reaching this server, as a map (`Bucket::open`, `Registry::at`).
    pub fn options(&self) -> std::collections::BTreeMap<String, String> {
        [
            ("endpoint", self.endpoint.as_str()),
            ("allow_http", "true"),
            ("virtual_hosted_style_request", "false"),
            ("region", "us-east-1"),
            ("access_key_id", self.access_key.as_str()),
            ("secret_access_key", self.secret_key.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// A fresh `s3://` URL in the test bucket, for one test's files.
    pub fn fresh_url(&self, what: &str) -> String {
        format!("s3://{}/{}", self.bucket, unique_name(what).replace('_', "-"))
    }

    /// `[dataset.storage_options]` reaching this server with these keys (or `secret` instead).
    pub fn storage_options(&self, secret: Option<&str>) -> String {
        format!(
            "[dataset.storage_options]\nendpoint = {:?}\nallow_http = \"true\"\nvirtual_hosted_style_request = \"false\"\nregion = \"us-east-1\"\naccess_key_id = {:?}\nsecret_access_key = {:?}\n",
            self.endpoint,
            self.access_key,
            secret.unwrap_or(&self.secret_key)
        )
    }
}

fn service(var: &str, default: &str, default_port: u16) -> Option<String> {
    let url = std::env::var(var).unwrap_or_else(|_| default.to_string());
    let authority = url.split("://").nth(1).unwrap_or(&url);
    let authority = authority.split(['/', '?']).next().unwrap_or(authority);
    let host_port = authority.rsplit('@').next().unwrap_or(authority);
    let (host, port) = match host_port.rsplit_once(':') {
        Some((h, p)) => (h.to_string(), p.parse().unwrap_or(default_port)),
        None => (host_port.to_string(), default_port),
    };
    let reachable = std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port))
        .ok()
        .and_then(|mut addrs| addrs.next())
        .is_some_and(|addr| std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(2)).is_ok());
    if reachable {
        return Some(url);
    }
    if std::env::var("CARETAKER_REQUIRE_SERVICES").is_ok_and(|v| v == "1") {
        panic!("{var}: no server answers at {host}:{port}, and CARETAKER_REQUIRE_SERVICES=1");
    }
    eprintln!("skipping: no server answers at {host}:{port} ({var}); set CARETAKER_REQUIRE_SERVICES=1 to fail instead");
    None
}

/// A name unique to this test process and call, for databases and key prefixes.
pub fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("{prefix}_{}_{}_{nanos}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// A run report for the tests of what reads the run history (the task kinds, the model health
/// score): started at `started` (RFC 3339), the quality score, and the deployed candidate `tree`
/// with `f1` and a prediction time of `micros` per row; its newest event one hour before the start.
pub fn run_report(
    run_id: &str,
    started: &str,
    quality: f64,
    f1: f64,
    micros: f64,
) -> caretaker_core::report::RunReport {
    let start = chrono::DateTime::parse_from_rfc3339(started).unwrap().with_timezone(&chrono::Utc);
    let metrics = serde_json::json!({
        "rows": 100, "accuracy": 0.9, "precision": 0.8, "recall": 0.7, "f1": f1, "roc_auc": 0.9,
        "pr_auc": 0.8, "log_loss": 0.3, "brier": 0.1, "threshold": 0.5,
        "confusion": {"tp": 1, "fp": 1, "tn": 1, "fn": 1},
    });
    serde_json::from_value(serde_json::json!({
        "schema_version": 1, "run_id": run_id, "pipeline": "bridge-failures", "config_path": "p", "config_hash": "h",
        "started_at": start, "finished_at": start, "status": "succeeded", "message": null,
        "data": {"path": "d", "files": 1, "bytes": 1, "rows": 100, "newest_event": start - chrono::Duration::hours(1)},
        "quality": {"score": quality, "min_score": 0.9, "passed": true, "rows": 100, "clean_rows": 100,
                    "quarantined_rows": 0, "quarantine_path": null, "rule_counts": [], "checks": []},
        "split": null,
        "candidates": [{"name": "tree", "family": "decision_tree", "params": {}, "metrics": metrics,
                        "train_seconds": 1.0, "predict_micros_per_row": micros, "error": null}],
        "champion": null,
        "gate": {"decision": "deployed", "candidate": "tree", "deployed_version": "v0001", "reasons": [], "rules": []},
        "patterns": {"store": "s", "before": 100, "deleted": 10, "archived": 5, "kept": 85,
                     "store_bytes_before": 10, "store_bytes_after": 8, "archive_bytes_written": 1, "archive_files": []},
        "stages": [], "report_dir": "r",
    }))
    .unwrap()
}
