//! The maintenance scheduler: the task catalog, cron schedules in time zones, running tasks
//! (prerequisites, maintenance mode, timeouts, retries, success criteria, rollback,
//! notifications), the execution history (SQLite or PostgreSQL) and its reports.

pub mod catalog;
pub mod criteria;
pub mod history;
pub mod kinds;
pub mod redact;
pub mod schedule;
