//! Caretaker's training data on disk: finding the Parquet files of a dataset, scanning them with
//! polars, handing clean rows to the training crate as plain vectors, and writing Parquet
//! atomically. Also the example events of `caretaker demo`.
//!
//! Polars stays in the crates that read or write data frames (this one, quality, patterns); what
//! leaves this crate for training is [`caretaker_core::events::LabelledEvents`], plain vectors.
//!
//! ```no_run
//! use caretaker_data::dataset::DatasetFiles;
//! let files = DatasetFiles::find("data/events".as_ref()).unwrap();
//! let frame = files.scan().unwrap(); // a polars LazyFrame over every file, Hive columns included
//! # let _ = frame;
//! ```

pub mod compact;
pub mod dataset;
pub mod example;
pub mod parquet_io;
pub mod remote;

use std::path::PathBuf;

/// Why data could not be read or written. Every variant names the file (and the column, where
/// there is one).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("dataset {path} does not exist")]
    Missing { path: PathBuf },
    #[error("dataset {path} holds no Parquet files (looked for *.parquet, skipping names that start with '.' or '_')")]
    NoFiles { path: PathBuf },
    #[error("bad glob {pattern:?}: {reason}")]
    Glob { pattern: String, reason: String },
    #[error("cannot read {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{path}: column {column:?}: {reason}")]
    Column { path: PathBuf, column: String, reason: String },
    #[error("cannot write {path}: {reason}")]
    Write { path: PathBuf, reason: String },
    #[error("dataset {path} cannot be compacted: {reason}")]
    NotCompactable { path: PathBuf, reason: String },
    #[error(
        "compaction of {dir}: the new files hold {found} (rows:hash), the files they would replace {expected}; nothing was swapped"
    )]
    Mismatch { dir: PathBuf, expected: String, found: String },
    /// A dataset in object storage could not be listed or fetched.
    #[error("dataset {url}: {reason}")]
    Remote { url: String, reason: String },
    #[error(transparent)]
    Fs(#[from] caretaker_core::fs::FsError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
