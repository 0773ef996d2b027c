//! The pieces every kind's config shares: connection URLs that keep their password to
//! themselves, and paths resolved against the catalog's root. The parameters table itself is read
//! by [`caretaker_core::task::parse_params`], the scheduler's own kinds' parser too.

use crate::redact;
use caretaker_core::config::ConfigProblem;
use serde::Deserialize;
use std::fmt;

pub(crate) use caretaker_core::task::{problem, resolve_path as resolve};

/// A server's URL as the catalog gives it: either the URL itself (`postgres://user:pw@host/db`,
/// `redis://:pw@host:6379/0`) or `env:NAME`, the name of an environment variable that holds it
/// when the task runs (keeps the password out of the catalog). Shown everywhere with its password
/// replaced by `***`.
#[derive(Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct ConnectionUrl {
    spec: String,
}

impl TryFrom<String> for ConnectionUrl {
    type Error = String;

    fn try_from(spec: String) -> Result<ConnectionUrl, String> {
        let spec = spec.trim().to_string();
        if let Some(var) = spec.strip_prefix("env:") {
            if var.is_empty() {
                return Err("`env:` must be followed by an environment variable's name".into());
            }
        } else if !spec.contains("://") {
            // Not echoed: without a scheme there is no telling where a password would be.
            return Err("not a URL (scheme://user:password@host:port/database) nor env:VARIABLE".into());
        }
        Ok(ConnectionUrl { spec })
    }
}

impl ConnectionUrl {
    pub fn new(spec: &str) -> Result<ConnectionUrl, String> {
        ConnectionUrl::try_from(spec.to_string())
    }

    /// The environment variable an `env:NAME` URL is read from.
    pub fn env_var(&self) -> Option<&str> {
        self.spec.strip_prefix("env:")
    }

    /// The URL to connect with, reading the environment variable for `env:NAME`.
    pub fn resolve(&self) -> Result<String, String> {
        match self.spec.strip_prefix("env:") {
            Some(var) => std::env::var(var)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .ok_or_else(|| format!("environment variable {var} (the URL) is not set")),
            None => Ok(self.spec.clone()),
        }
    }
}

impl fmt::Display for ConnectionUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact::redact(&self.spec))
    }
}

impl fmt::Debug for ConnectionUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConnectionUrl({self})")
    }
}

/// Seconds in a config, as a positive number.
pub(crate) fn positive(key: &str, value: f64) -> Result<f64, ConfigProblem> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(problem(key, format!("must be above 0, got {value}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Example {
        url: ConnectionUrl,
    }

    fn table(text: &str) -> toml::Table {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn a_bad_url_is_refused_without_showing_its_password() {
        let e = caretaker_core::task::parse_params::<Example>(&table("url = 'user:hunter2@localhost'")).unwrap_err();
        assert_eq!(e.key, "url");
        assert!(!e.reason.contains("hunter2"), "{e}");
    }

    #[test]
    fn a_url_shows_without_its_password() {
        let url = ConnectionUrl::new("postgres://app:hunter2@db:5432/main").unwrap();
        assert_eq!(url.to_string(), "postgres://app:***@db:5432/main");
        assert!(!format!("{url:?}").contains("hunter2"));
        assert_eq!(url.resolve().unwrap(), "postgres://app:hunter2@db:5432/main");
        let env = ConnectionUrl::new("env:CARETAKER_TASKS_TEST_UNSET_VARIABLE").unwrap();
        assert!(env.resolve().unwrap_err().contains("CARETAKER_TASKS_TEST_UNSET_VARIABLE"));
    }
}
