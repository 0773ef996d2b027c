//! The maintenance task kinds the scheduler runs: health checks, the intelligence health score,
//! the weekly performance review, PostgreSQL and SQLite maintenance, Redis cache cleanup,
//! dependency vulnerability scans and retention of old runs, quarantine files, model versions
//! and logs.
//!
//! Each kind is a module holding its config (a `deny_unknown_fields` struct whose doc comments
//! are the user documentation), its logic and its tests. [`Kinds`] builds them from a catalog
//! entry's parameters for the scheduler, which knows them only through
//! [`caretaker_core::task::TaskKinds`].
//!
//! The design decisions behind this crate:
//! - A task never panics and never returns an error for a domain failure: a server that is down,
//!   a wrong password, a timeout or a full disk is a [`TaskOutcome`] with status `Failed` and a
//!   reason, and the task stops before it touches anything else (a backup comes first, and
//!   nothing is vacuumed when it fails).
//! - Passwords never leave the task: every outcome goes through [`redact::scrub_outcome`] before
//!   it is returned, so the history, the reports and the logs only see `postgres://user:***@`.
//! - Nothing here reads the training data or loads a model: the tasks read the pipeline's state
//!   (run history, registry, report types), so this crate stays free of polars and linfa.
//!
//! ```no_run
//! use caretaker_core::task::TaskKinds;
//! let mut params = toml::Table::new();
//! params.insert("address".into(), "127.0.0.1:5432".into());
//! let task = caretaker_tasks::Kinds.build("tcp_health", &params, ".".as_ref()).unwrap();
//! assert_eq!(task.kind(), "tcp_health");
//! ```

pub mod health;
pub mod model_health;
pub mod performance_review;
pub mod postgres_maintenance;
pub mod redact;
pub mod redis_cleanup;
pub mod retention;
pub mod security;
pub mod sqlite_maintenance;

mod connect;
mod error;
mod params;
mod pipeline_state;

use caretaker_core::config::ConfigProblem;
use caretaker_core::task::{Task, TaskKinds};
use std::path::Path;

pub use error::Error;
pub use params::ConnectionUrl;

/// The kinds this crate provides, for the scheduler.
pub struct Kinds;

/// Every kind [`Kinds`] builds, in the order docs/tasks.md documents them.
pub const KINDS: &[&str] = &[
    "http_health",
    "tcp_health",
    "postgres_health",
    "redis_health",
    "pipeline_health",
    "health",
    "model_health",
    "performance_review",
    "postgres_maintenance",
    "sqlite_maintenance",
    "redis_cleanup",
    "security_scan",
    "advisories_sync",
    "retention",
];

impl TaskKinds for Kinds {
    fn kinds(&self) -> Vec<&'static str> {
        KINDS.to_vec()
    }

    fn build(&self, kind: &str, params: &toml::Table, root: &Path) -> Result<Box<dyn Task>, ConfigProblem> {
        Ok(match kind {
            "http_health" | "tcp_health" | "postgres_health" | "redis_health" | "pipeline_health" => {
                Box::new(health::SingleCheck::build(kind, params, root)?)
            }
            "health" => Box::new(health::HealthGroup::build(params, root)?),
            "model_health" => Box::new(model_health::ModelHealth::build(params, root)?),
            "performance_review" => Box::new(performance_review::PerformanceReview::build(params, root)?),
            "postgres_maintenance" => Box::new(postgres_maintenance::PostgresMaintenance::build(params, root)?),
            "sqlite_maintenance" => Box::new(sqlite_maintenance::SqliteMaintenance::build(params, root)?),
            "redis_cleanup" => Box::new(redis_cleanup::RedisCleanup::build(params, root)?),
            "security_scan" => Box::new(security::SecurityScan::build(params, root)?),
            "advisories_sync" => Box::new(security::sync::AdvisoriesSync::build(params, root)?),
            "retention" => Box::new(retention::Retention::build(params, root)?),
            other => {
                return Err(ConfigProblem {
                    key: "kind".into(),
                    reason: format!("unknown task kind {other:?}; this crate builds {}", KINDS.join(", ")),
                });
            }
        })
    }
}

/// Runs blocking work (SQLite, the file system) off the async runtime. A panic in it becomes a
/// failed outcome's reason rather than a panic of the scheduler.
pub(crate) async fn blocking<T: Send + 'static>(
    what: &str,
    work: impl FnOnce() -> T + Send + 'static,
) -> error::Result<T> {
    tokio::task::spawn_blocking(work).await.map_err(|e| error::Error::step(format!("{what} stopped unexpectedly"), e))
}

pub(crate) use caretaker_core::error_chain;

#[cfg(test)]
pub(crate) mod testing {
    //! Helpers shared by the modules' tests.
    use caretaker_core::task::TaskContext;
    use std::path::Path;

    pub fn context(state_dir: &Path) -> TaskContext {
        TaskContext {
            task_id: "test-task".into(),
            execution_id: "exec-1".into(),
            started_at: chrono::DateTime::parse_from_rfc3339(caretaker_test_support::TEST_NOW)
                .unwrap()
                .with_timezone(&chrono::Utc),
            dry_run: false,
            state_dir: state_dir.to_path_buf(),
        }
    }

    pub fn table(text: &str) -> toml::Table {
        toml::from_str(text).unwrap_or_else(|e| panic!("bad test TOML: {e}\n{text}"))
    }

    /// Builds a task of `kind` from TOML parameters, as the scheduler would.
    pub fn build(kind: &str, params: &str, root: &Path) -> Box<dyn caretaker_core::task::Task> {
        use caretaker_core::task::TaskKinds;
        crate::Kinds.build(kind, &table(params), root).unwrap_or_else(|p| panic!("{kind}: {p}"))
    }

    /// Runs a task once in a fresh state directory under `dir`.
    pub async fn run(task: &dyn caretaker_core::task::Task, dir: &Path) -> caretaker_core::task::TaskOutcome {
        let outcome = task.run(&context(&dir.join("task-state"))).await.expect("the task runs");
        assert!(!outcome.summary.is_empty(), "every outcome says what happened");
        assert_declared(task, &outcome);
        outcome
    }

    /// Every metric in an outcome is one the task declares, so success criteria can name it.
    pub fn assert_declared(task: &dyn caretaker_core::task::Task, outcome: &caretaker_core::task::TaskOutcome) {
        let declared = task.metric_names();
        for name in outcome.metrics.keys() {
            assert!(declared.contains(name), "{} reports {name} but does not declare it: {declared:?}", task.kind());
        }
    }

    /// The whole outcome as text, for "this never appears anywhere" assertions.
    pub fn all_text(outcome: &caretaker_core::task::TaskOutcome) -> String {
        serde_json::to_string(outcome).unwrap()
    }

    /// A TCP listener on the loopback that accepts connections and never answers: a server that
    /// hangs. Dropped with the returned guard.
    pub async fn silent_server() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        (addr, handle)
    }

    /// A pipeline in a temporary directory (the example pipeline: `models/`, `reports/`,
    /// `state/` under the directory), with runs and deploys written through the real history and
    /// registry.
    pub struct PipelineFixture {
        pub dir: tempfile::TempDir,
    }

    impl PipelineFixture {
        pub fn new() -> PipelineFixture {
            let dir = tempfile::tempdir().unwrap();
            let pipeline = dir.path().join("pipelines/test.toml");
            std::fs::create_dir_all(pipeline.parent().unwrap()).unwrap();
            std::fs::write(&pipeline, caretaker_test_support::example_pipeline(100)).unwrap();
            PipelineFixture { dir }
        }

        pub fn path(&self) -> &Path {
            self.dir.path()
        }

        /// Records a run in the history and writes its report directory.
        pub fn record(&self, report: &caretaker_core::report::RunReport) {
            let history =
                caretaker_history::History::open(&caretaker_history::History::path_in(&self.path().join("state")))
                    .unwrap();
            history.record(report).unwrap();
            let dir = self.path().join("reports").join(report.run_id.as_str());
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("report.json"), serde_json::to_vec(report).unwrap()).unwrap();
        }

        /// Deploys `bytes` as a new champion trained by `run_id`.
        pub fn deploy(&self, name: &str, run_id: &str, bytes: &[u8]) -> caretaker_core::ids::ModelVersion {
            let registry = caretaker_registry::Registry::open(&self.path().join("models")).unwrap();
            let lock = registry.lock().unwrap();
            let card: caretaker_registry::ModelCard = serde_json::from_value(serde_json::json!({
                "version": "v0001", "name": name, "family": "decision_tree", "params": {}, "features": ["x"],
                "metrics": null, "threshold": 0.5, "train_rows": 10, "train_hash": "h", "config_hash": "c",
                "seed": 1, "code_version": "test", "created_at": "2026-11-27T02:00:00Z", "run_id": run_id,
                "replaced": null, "model_blake3": "", "model_bytes": bytes.len(),
            }))
            .unwrap();
            let now = chrono::DateTime::parse_from_rfc3339("2026-11-27T02:00:00Z").unwrap().with_timezone(&chrono::Utc);
            registry.deploy(&lock, bytes, card, "test deploy", now).unwrap()
        }
    }

    /// A 64 KiB file system for the backups, so the backup runs out of space. Needs root (CI and
    /// the development machines run as root); elsewhere the test says why it did not run.
    pub struct TinyDisk {
        path: std::path::PathBuf,
    }

    impl TinyDisk {
        pub fn mount(path: &Path) -> Option<TinyDisk> {
            std::fs::create_dir_all(path).unwrap();
            let status = std::process::Command::new("mount")
                .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
                .arg(path)
                .stderr(std::process::Stdio::null())
                .status();
            if status.is_ok_and(|s| s.success()) {
                Some(TinyDisk { path: path.to_path_buf() })
            } else {
                eprintln!("skipping the full-disk part: cannot mount a tmpfs at {} (not root?)", path.display());
                None
            }
        }
    }

    impl Drop for TinyDisk {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.path).status();
        }
    }

    /// A loopback port with nothing listening on it.
    pub fn closed_port() -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    }
}
