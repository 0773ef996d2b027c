//! The maintenance scheduler: it owns the task catalog (`pipelines/maintenance.toml`), when tasks
//! fire (cron expressions in IANA time zones, daylight-saving exact), how one execution runs
//! (prerequisites, maintenance mode, timeouts, retries with backoff, success criteria, rollback,
//! notifications), the execution history (SQLite, or PostgreSQL shared by several schedulers)
//! and the reports over it (`schedule preview`, `history`).
//!
//! The design decisions: task kinds come from outside through the core crate's
//! [`caretaker_core::task::TaskKinds`] factory, so that this crate knows no kind but its own two
//! (`command` and `pipeline`); the nightly pipeline runs as a child process of the caretaker
//! binary, so that a timeout really kills it and this crate stays free of polars and linfa; and
//! every firing is claimed in the history before it runs, so that each runs once however many
//! schedulers share the database.
//!
//! ```no_run
//! use caretaker_scheduler::{catalog::Catalog, kinds::{BuiltinKinds, KindRegistry}};
//! let kinds = KindRegistry::new(vec![Box::new(BuiltinKinds { caretaker_exe: "caretaker".into() })]);
//! let catalog = Catalog::load("pipelines/maintenance.toml".as_ref(), &kinds).unwrap();
//! let from = chrono::Utc::now();
//! let preview = caretaker_scheduler::preview::preview(&catalog, from, 7);
//! print!("{}", caretaker_scheduler::preview::render(&preview));
//! ```

pub mod catalog;
pub mod clock;
pub mod criteria;
pub mod daemon;
pub mod history;
pub mod kinds;
pub mod notify;
pub mod preview;
pub mod redact;
pub mod report;
pub mod run;
pub mod schedule;
#[cfg(test)]
mod tests;
