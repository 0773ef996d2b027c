//! Passwords never reach logs, the history or the terminal: the program's one redactor
//! ([`caretaker_core::redact`]). Everything the scheduler records or prints that came from outside
//! (a command's argv, its stdout and stderr, error messages, connection strings) goes through a
//! [`Redactor`] that knows the catalog's connection URLs and the secret values of its tasks'
//! environments.

pub use caretaker_core::redact::{Redactor, redact_url};
