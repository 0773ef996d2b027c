//! The pattern store: the rules the intelligence layer has learned, kept in Parquet, and their
//! cleanup and archival.
//!
//! A pattern is a conjunction of conditions on event features that predicts the label
//! (`service = tool_proxy AND payload_bytes > 1000000 -> failed`), with its support, confidence,
//! lift and usage. [`cleanup`] applies the retention policy: old, rarely used, low-confidence
//! patterns are deleted; old high-confidence ones are moved to a date-partitioned archive with a
//! manifest of row counts and blake3 hashes. The archive is written and synced before the store is
//! rewritten, and the manifest marks an archive file `pending` until the store no longer holds its
//! patterns, so a process killed at any point loses nothing, and the next cleanup finishes the
//! work without duplicating a pattern.
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
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    /// A request that cannot be met as asked (an unknown pattern id, a date in the future).
    #[error("{reason}")]
    Request { reason: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
