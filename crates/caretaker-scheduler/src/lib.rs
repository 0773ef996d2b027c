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

use std::sync::Arc;

/// A multi-threaded runtime for the commands (the binary has no runtime of its own).
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build()
}

/// Everything a command needs to run tasks: the history store opened and a runner, with the
/// sender that moves it through its [`run::Lifecycle`].
pub struct Session {
    pub runner: Arc<run::Runner>,
    pub lifecycle: tokio::sync::watch::Sender<run::Lifecycle>,
}

impl Session {
    /// Opens the catalog's history (`CARETAKER_DATABASE_URL` first) and builds a runner.
    pub async fn open(catalog: catalog::Catalog, clock: caretaker_core::Clock) -> Result<Session, history::Error> {
        let target = catalog
            .history_target()
            .map_err(|reason| history::Error::Store { target: catalog.source.display().to_string(), reason })?;
        let mut secrets = Vec::new();
        if let catalog::HistoryTarget::Postgres(url) = &target {
            secrets.push(url.clone());
        }
        if let catalog::HistoryTarget::Postgres(url) = &catalog.history {
            secrets.push(url.clone());
        }
        secrets.extend(catalog.notifications.webhook.clone());
        // The catalog's connection URLs (the runner adds its tasks' own secrets).
        let redactor = redact::Redactor::new(secrets.iter().map(String::as_str));
        let store = history::HistoryStore::open(&target, &catalog.state_dir).await?;
        let (tx, rx) = tokio::sync::watch::channel(run::Lifecycle::Running);
        let runner =
            run::Runner::new(Arc::new(catalog), Arc::new(store), clock::SchedulerClock::new(clock), redactor, rx);
        Ok(Session { runner: Arc::new(runner), lifecycle: tx })
    }
}

impl Session {
    /// Turns SIGTERM or SIGINT into a cancellation of what runs (its execution is still recorded,
    /// as cancelled). Abort the returned task when the run is over.
    pub fn cancel_on_signals(&self) -> tokio::task::JoinHandle<()> {
        let lifecycle = self.lifecycle.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
                return;
            };
            let why = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            let _ = lifecycle.send(run::Lifecycle::Cancelling(why.to_string()));
        })
    }
}
