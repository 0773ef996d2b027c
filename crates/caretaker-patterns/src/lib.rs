//! The pattern store: the rules the intelligence layer has learned, kept in Parquet; their
//! discovery from the events, their cleanup, and their archival and restoration.
//!
//! A pattern is a conjunction of conditions on event features that predicts the label
//! (`service = tool_proxy AND payload_bytes > 1000000 -> failed`), with its support, confidence,
//! lift and usage, and an id that hashes its conditions so that rediscovering it updates it.
//! [`mining`] finds class association rules: frequent itemsets over features binned at
//! label-driven cut points snapped to round numbers (chosen over decision-tree paths because
//! itemsets find overlapping rules and keep their ids from night to night; see docs/pipeline.md).
//! [`discover`] upserts them and counts every pattern's uses. [`cleanup`] applies the retention
//! policy: old, rarely used, low-confidence patterns are deleted; old high-confidence ones are
//! moved to a date-partitioned archive whose manifest lists each file's rows, bytes and blake3;
//! [`restore`] brings archived ones back and [`verify`] checks the manifest against the files.
//!
//! The design decision: the manifest is a journal. Files are written and synced before the
//! manifest lists them, the manifest marks what is in flight (`pending`, `restoring`) before the
//! store is rewritten, and whoever next takes the store's lock finishes it ([`recovery`]). So a
//! process killed at any point loses no pattern, and the next command leaves each pattern exactly
//! once, in the store or in the archive.
//!
//! ```no_run
//! # use caretaker_core::config::PatternPolicy;
//! # fn example(policy: &PatternPolicy) {
//! let now = chrono::Utc::now();
//! let plan = caretaker_patterns::cleanup::plan(policy, now).unwrap();
//! println!("{} to delete, {} to archive", plan.delete, plan.archive);
//! let report = caretaker_patterns::cleanup::run(policy, now, "run-1").unwrap();
//! # }
//! ```

pub mod archive;
pub mod cleanup;
pub mod discover;
pub mod example;
#[cfg(test)]
mod fixtures;
pub mod matching;
pub mod mining;
pub mod pattern;
pub mod recovery;
pub mod restore;
pub mod store;
pub mod verify;

use std::path::PathBuf;

/// Why the pattern store could not be read or changed; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Data(#[from] caretaker_data::Error),
    #[error(transparent)]
    Fs(#[from] caretaker_core::fs::FsError),
    #[error(transparent)]
    Busy(#[from] caretaker_core::lock::LockError),
    #[error(transparent)]
    Objects(#[from] caretaker_objects::Error),
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    /// A request that cannot be met as asked (an unknown pattern id, a date in the future).
    #[error("{reason}")]
    Request { reason: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
