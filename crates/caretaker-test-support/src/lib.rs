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
        let out = Command::new(&self.bin)
            .args(args)
            .current_dir(self.path())
            .env("CARETAKER_NOW", &self.now)
            .env_remove("CARETAKER_PIPELINE")
            .env_remove("CARETAKER_LOG")
            .output()
            .expect("the caretaker binary runs");
        Output {
            command: format!("caretaker {}", args.join(" ")),
            dir: self.path().to_path_buf(),
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
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
