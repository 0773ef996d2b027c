//! Passwords never reach logs, the history or the terminal.
//!
//! Everything the scheduler records or prints that came from outside (a command's argv, its
//! stdout and stderr, error messages, connection strings) goes through [`Redactor::redact`]: the
//! password of any `scheme://user:password@host` URL and any `password=...` pair becomes `***`,
//! and so does every occurrence of a secret the scheduler knows (the history database's password).

use regex::Regex;
use std::sync::LazyLock;

static URL_PASSWORD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)([a-z][a-z0-9+.\-]*://[^:/?#@\s]*:)([^@\s]+)(@)").expect("a valid regex"));
static KEY_VALUE_PASSWORD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?i)((?:password|passwd|pwd|secret|token)\s*[=:]\s*)('[^']*'|"[^"]*"|[^\s&;,]+)"#)
        .expect("a valid regex")
});

/// Redacts passwords; see the module docs.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    /// A redactor that also hides the passwords found in `connection_strings`.
    pub fn new<'a>(connection_strings: impl IntoIterator<Item = &'a str>) -> Redactor {
        let mut secrets = Vec::new();
        for text in connection_strings {
            for caps in URL_PASSWORD.captures_iter(text) {
                secrets.push(caps[2].to_string());
            }
            for caps in KEY_VALUE_PASSWORD.captures_iter(text) {
                secrets.push(caps[2].trim_matches(['\'', '"']).to_string());
            }
        }
        // Very short "secrets" would redact ordinary words; a password that short is no secret.
        secrets.retain(|s| s.len() >= 4);
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Redactor { secrets }
    }

    pub fn redact(&self, text: &str) -> String {
        let mut out = URL_PASSWORD.replace_all(text, "${1}***${3}").into_owned();
        out = KEY_VALUE_PASSWORD.replace_all(&out, "${1}***").into_owned();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), "***");
            }
        }
        out
    }

    /// Redacts every string inside a JSON value.
    pub fn redact_json(&self, value: &mut serde_json::Value) {
        match value {
            serde_json::Value::String(s) => *s = self.redact(s),
            serde_json::Value::Array(items) => items.iter_mut().for_each(|v| self.redact_json(v)),
            serde_json::Value::Object(map) => map.values_mut().for_each(|v| self.redact_json(v)),
            _ => {}
        }
    }
}

/// A connection string with its password hidden, for messages.
pub fn redact_url(url: &str) -> String {
    Redactor::default().redact(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_urls_and_pairs_are_hidden() {
        let r = Redactor::default();
        assert_eq!(r.redact("postgres://app:s3cr3t@db:5432/x"), "postgres://app:***@db:5432/x");
        assert_eq!(
            r.redact("connect host=db user=app password=s3cr3t dbname=x"),
            "connect host=db user=app password=*** dbname=x"
        );
        assert_eq!(r.redact("PGPASSWORD='hunter 2' pg_dump"), "PGPASSWORD=*** pg_dump");
        assert_eq!(
            r.redact("postgres://app@db/x and redis://127.0.0.1:6379"),
            "postgres://app@db/x and redis://127.0.0.1:6379"
        );
        assert_eq!(r.redact("https://hooks.example/x?token=abc123"), "https://hooks.example/x?token=***");
    }

    #[test]
    fn a_known_password_is_hidden_wherever_it_appears() {
        let r = Redactor::new(["postgres://app:Tr0ub4dor@db/x"]);
        assert_eq!(r.redact("auth failed for Tr0ub4dor"), "auth failed for ***");
        let mut v = serde_json::json!({"argv": ["psql", "Tr0ub4dor"], "n": 1});
        r.redact_json(&mut v);
        assert_eq!(v, serde_json::json!({"argv": ["psql", "***"], "n": 1}));
    }
}
