//! The nightly run, stage by stage: quality, retrain, evaluate, gate, deploy, patterns, report.
//!
//! This crate only orchestrates: each stage's logic lives in its own crate, and this one threads
//! the validated config, the clock and the run id through them, times each stage, and turns every
//! outcome into the [`RunReport`]. Domain outcomes (a failed quality check, a refused gate) are
//! values in the report; an error that stops the run is recorded in the report too (status
//! `failed`) whenever the run got far enough to have a report directory.
//!
//! ```no_run
//! # use caretaker_core::{Clock, config::PipelineConfig};
//! let config = PipelineConfig::load("pipelines/nightly.toml".as_ref()).unwrap();
//! let outcome = caretaker_pipeline::run(&config, Clock::System, &caretaker_pipeline::RunOptions::default()).unwrap();
//! println!("{}", caretaker_report::summary(&outcome.report));
//! ```

pub mod bench;
mod candidates;
pub mod compact;
mod example;
pub mod history_export;
mod importance;
mod progress;
mod realised;
pub mod reset;
mod run;
mod split;

pub use example::{ExampleFiles, example_end, write_example};
pub use run::{QualityOnly, RunOptions, RunOutcome, quality_only, run};

use std::path::PathBuf;

/// What stopped a run before it could write its report.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Busy(#[from] caretaker_core::lock::LockError),
    #[error(transparent)]
    Fs(#[from] caretaker_core::fs::FsError),
    #[error(transparent)]
    Data(#[from] caretaker_data::Error),
    #[error(transparent)]
    Patterns(#[from] caretaker_patterns::Error),
    #[error(transparent)]
    Registry(#[from] caretaker_registry::Error),
    #[error(transparent)]
    History(#[from] caretaker_history::Error),
    #[error("{path}: {reason}")]
    Other { path: PathBuf, reason: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
