//! Why a step of a task failed: what the task was doing, on what (the file, the server, the
//! database) and the cause, kept apart until the task words its outcome. A task turns an
//! [`Error`] into its failed outcome's reason (`cannot connect to postgres://app:***@db/main: no
//! answer within 5 s; nothing was backed up or changed`); it is never a [`TaskError`], which is
//! for a task that could not run at all.
//!
//! A server's URL is redacted when the error is built, so no message holds its password even
//! before the outcome goes through [`crate::redact::scrub_outcome`].
//!
//! It is public for what the `caretaker` binary calls directly (`caretaker advisories sync`), which
//! prints it; building one is for this crate.
//!
//! [`TaskError`]: caretaker_core::task::TaskError

use crate::redact;
use std::fmt::Display;
use std::path::{Path, PathBuf};

pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory the task reads, writes, lists or removes.
    #[error("cannot {action} {}: {source}", path.display())]
    File { action: &'static str, path: PathBuf, source: std::io::Error },
    /// A server (PostgreSQL, Redis) that does not answer or refuses the task.
    #[error("cannot connect to {url}: {cause}")]
    Connect { url: String, cause: String },
    /// A download that got no complete answer: refused, unresolved, timed out. A machine without
    /// internet sees this one; a server that answered wrongly (a 404, a truncated body) is a
    /// [`Error::Step`].
    #[error("cannot fetch {url}: {cause}")]
    Fetch { url: String, cause: String },
    /// A connection URL its driver does not accept.
    #[error("{url} is not a {expected} URL: {cause}")]
    NotAUrl { url: String, expected: &'static str, cause: String },
    /// Any other step: what the task was doing, naming what it did it to, and why it failed.
    #[error("{step}: {cause}")]
    Step { step: String, cause: String },
}

impl Error {
    /// `action` names what was done to `path`: "create the backup directory", "remove", "list".
    pub(crate) fn file(action: &'static str, path: &Path, source: std::io::Error) -> Error {
        Error::File { action, path: path.to_path_buf(), source }
    }

    /// `url` is shown without its password; so is the cause, which a driver may quote it in.
    pub(crate) fn connect(url: &str, cause: impl Display) -> Error {
        Error::Connect { url: redact::redact(url), cause: redact::redact(&cause.to_string()) }
    }

    /// `url` and the cause are shown without a password, as for [`Error::connect`].
    pub(crate) fn fetch(url: &str, cause: impl Display) -> Error {
        Error::Fetch { url: redact::redact(url), cause: redact::redact(&cause.to_string()) }
    }

    pub(crate) fn not_a_url(url: &str, expected: &'static str, cause: impl Display) -> Error {
        Error::NotAUrl { url: redact::redact(url), expected, cause: redact::redact(&cause.to_string()) }
    }

    pub(crate) fn step(step: impl Into<String>, cause: impl Display) -> Error {
        Error::Step { step: step.into(), cause: cause.to_string() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_names_its_target_without_a_password() {
        // The cause is redacted by pattern (a quoted URL); a bare password in it is for the task's
        // scrub_outcome, which knows the secrets.
        let e = Error::connect("postgres://app:hunter2@db/main", "refused by postgres://app:hunter2@db/main");
        assert_eq!(
            e.to_string(),
            "cannot connect to postgres://app:***@db/main: refused by postgres://app:***@db/main"
        );
        let e = Error::fetch("https://osv:hunter2@mirror/crates.io/all.zip", "no complete answer within 1 s");
        assert_eq!(
            e.to_string(),
            "cannot fetch https://osv:***@mirror/crates.io/all.zip: no complete answer within 1 s"
        );
        let e = Error::not_a_url("redis://:hunter2@cache:port", "Redis", "invalid port");
        assert_eq!(e.to_string(), "redis://:***@cache:port is not a Redis URL: invalid port");
        let e = Error::file("remove", Path::new("/srv/reports/run-1"), std::io::ErrorKind::PermissionDenied.into());
        assert_eq!(e.to_string(), "cannot remove /srv/reports/run-1: permission denied");
    }
}
