//! The shared vocabulary of Caretaker.
//!
//! Every stage crate speaks in these types: the validated [`config::PipelineConfig`], the
//! [`clock::Clock`] that tests can fake, the [`events::LabelledEvents`] table that crosses from
//! the data crates (polars) to the training crate (linfa, smartcore), the metric and result types
//! that end up in `report.json`, and the one atomic-write helper.
//!
//! The design decision behind this crate: polars and linfa must never meet (they pin different
//! `ndarray` versions and each costs minutes of build), so the data that crosses between them is
//! plain Rust vectors defined here, and this crate depends on nothing heavy.
//!
//! ```
//! use caretaker_core::config::PipelineConfig;
//! let toml = r#"
//! name = "example"
//! [dataset]
//! path = "events.parquet"
//! id = "event_id"
//! timestamp = "ts"
//! label = "failed"
//! numeric = ["latency_ms"]
//! [[candidates]]
//! name = "logreg"
//! family = "logistic_regression"
//! "#;
//! let config = PipelineConfig::from_toml_str(toml, "nightly.toml".as_ref()).unwrap();
//! assert_eq!(config.gate.min_improvement, 0.01);
//! ```

pub mod children;
pub mod clock;
pub mod config;
pub mod events;
pub mod fs;
pub mod health;
pub mod ids;
pub mod lock;
pub mod maintenance;
pub mod metrics;
pub mod redact;
pub mod report;
pub mod rng;
pub mod task;
pub mod units;

pub use clock::Clock;

/// An error with its causes, one after the other (a cause whose text the error already holds is
/// left out): where reqwest and the database clients say what really happened ("connection
/// refused", "invalid peer certificate").
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Test hook for crash safety: a process started with `CARETAKER_CRASH_AT=<point>` aborts at that
/// point, as a `kill -9` would, so tests can check what a crash there leaves behind. Each crash
/// point is named after the step it follows (`deploy:pointer_swapped`, ...).
pub fn crash_point(point: &str) {
    if std::env::var("CARETAKER_CRASH_AT").is_ok_and(|p| p == point) {
        std::process::abort();
    }
}

/// A test hook beside [`crash_point`]: with `CARETAKER_PAUSE_AT=<point>` and
/// `CARETAKER_PAUSE_FILE=<path>` set, a process reaching `point` writes `<path>.reached` and waits
/// (ten minutes at most) until `<path>` exists, so that a test can order two processes' steps
/// (a deploy race). Without the variables it does nothing.
pub fn pause_point(point: &str) {
    if !std::env::var("CARETAKER_PAUSE_AT").is_ok_and(|p| p == point) {
        return;
    }
    let Ok(release) = std::env::var("CARETAKER_PAUSE_FILE") else { return };
    let _ = std::fs::write(format!("{release}.reached"), point);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    while !std::path::Path::new(&release).exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
