//! Passwords out of everything a task says.
//!
//! Two nets, because one is not enough: [`redact`] replaces the password of every URL
//! (`postgres://user:secret@`, `redis://:secret@`) and every `password=...` pair in a text, and
//! [`scrub_outcome`] also replaces each known secret (the password of the task's own connection
//! URL, raw and percent-decoded) wherever it appears, for the error message of a driver that
//! quotes it some other way. Every task passes its outcome through [`scrub_outcome`] before it
//! returns it, so the scheduler's history, reports and logs never see a password.

use caretaker_core::task::TaskOutcome;

pub const MASK: &str = "***";

/// `text` with the password of every URL and every `password=` pair replaced by `***`.
pub fn redact(text: &str) -> String {
    redact_key_values(&redact_urls(text))
}

fn redact_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail.find(|c: char| "/?#\"'`<>".contains(c) || c.is_whitespace()).unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@').map(|at| (at, &authority[..at])) {
            Some((at, userinfo)) if userinfo.contains(':') => {
                let colon = userinfo.find(':').expect("checked above");
                out.push_str(&userinfo[..=colon]);
                out.push_str(MASK);
                out.push_str(&authority[at..]);
            }
            _ => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// libpq's key-value form (`host=db password=secret`) and environment assignments
/// (`PGPASSWORD=secret`, `REDISCLI_AUTH=secret`).
fn redact_key_values(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut starts: Vec<usize> = Vec::new();
    // `PGPASSWORD=` ends in `password=`, so two keys cover the three forms.
    for key in ["password=", "rediscli_auth="] {
        let mut from = 0;
        while let Some(i) = lower[from..].find(key) {
            starts.push(from + i + key.len());
            from += i + key.len();
        }
    }
    starts.sort_unstable();
    starts.dedup();
    for start in starts {
        if start < copied {
            continue;
        }
        let value = &text[start..];
        let len = if let Some(quoted) = value.strip_prefix('\'') {
            quoted.find('\'').map(|e| e + 2).unwrap_or(value.len())
        } else {
            value.find(|c: char| c.is_whitespace() || c == '&' || c == ';' || c == ',').unwrap_or(value.len())
        };
        if len == 0 {
            continue;
        }
        out.push_str(&text[copied..start]);
        out.push_str(MASK);
        copied = start + len;
    }
    out.push_str(&text[copied..]);
    out
}

/// The password in a URL's user information, if any (`postgres://u:pw@h` gives `pw`).
pub fn password_of(url: &str) -> Option<String> {
    let tail = &url[url.find("://")? + 3..];
    let end = tail.find(['/', '?', '#']).unwrap_or(tail.len());
    let authority = &tail[..end];
    let userinfo = &authority[..authority.rfind('@')?];
    let password = &userinfo[userinfo.find(':')? + 1..];
    (!password.is_empty()).then(|| password.to_string())
}

/// The URL without its password (`postgres://u:pw@h/d` gives `postgres://u@h/d`), for a tool
/// that gets the password another way (`PGPASSWORD`) and shows its command line to every user
/// of the machine.
pub fn without_password(url: &str) -> String {
    redact_urls(url).replacen(&format!(":{MASK}@"), "@", 1)
}

/// The secrets to scrub for a connection URL: its password as written and percent-decoded.
pub fn secrets_of(url: &str) -> Vec<String> {
    // The decoded form is what a server's error message would quote.
    let Some(raw) = password_of(url) else { return Vec::new() };
    let decoded = percent_decode(&raw);
    let mut secrets = vec![raw];
    if !secrets.contains(&decoded) {
        secrets.push(decoded);
    }
    secrets
}

pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        // Digits read byte by byte: `%aé` must not slice a string inside a character.
        let hex = |j: usize| bytes.get(j).and_then(|b| (*b as char).to_digit(16));
        if bytes[i] == b'%'
            && let (Some(high), Some(low)) = (hex(i + 1), hex(i + 2))
        {
            out.push((high * 16 + low) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `text` redacted, with each secret (at least 3 characters long, so a one-letter password does
/// not blank out every `a`) replaced too.
pub fn redact_with(text: &str, secrets: &[String]) -> String {
    let mut out = redact(text);
    for secret in secrets.iter().filter(|s| s.len() >= 3) {
        out = out.replace(secret.as_str(), MASK);
    }
    out
}

/// The outcome with every string in it (summary, details) redacted.
pub fn scrub_outcome(mut outcome: TaskOutcome, secrets: &[String]) -> TaskOutcome {
    outcome.summary = redact_with(&outcome.summary, secrets);
    scrub_json(&mut outcome.details, secrets);
    outcome
}

fn scrub_json(value: &mut serde_json::Value, secrets: &[String]) {
    match value {
        serde_json::Value::String(s) => *s = redact_with(s, secrets),
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| scrub_json(v, secrets)),
        serde_json::Value::Object(map) => map.values_mut().for_each(|v| scrub_json(v, secrets)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_passwords() {
        assert_eq!(
            redact("cannot connect to postgres://app:s3cret@db.internal:5432/main?sslmode=disable"),
            "cannot connect to postgres://app:***@db.internal:5432/main?sslmode=disable"
        );
        assert_eq!(redact("redis://:s3cret@127.0.0.1:6379/0"), "redis://:***@127.0.0.1:6379/0");
        assert_eq!(redact("rediss://default:p%40ss@cache:6380"), "rediss://default:***@cache:6380");
        assert_eq!(
            redact("url \"postgresql://a:b@h/d\" and 'redis://:c@h'"),
            "url \"postgresql://a:***@h/d\" and 'redis://:***@h'"
        );
        // No password: nothing to hide, the user stays visible.
        assert_eq!(redact("postgres://app@db/main"), "postgres://app@db/main");
        assert_eq!(redact("http://example.org/a:b@c"), "http://example.org/a:b@c");
    }

    #[test]
    fn key_value_passwords_are_hidden() {
        assert_eq!(redact("host=db user=app password=s3cret dbname=x"), "host=db user=app password=*** dbname=x");
        assert_eq!(redact("PGPASSWORD=s3cret pg_dump"), "PGPASSWORD=*** pg_dump");
        assert_eq!(redact("password='two words' port=5"), "password=*** port=5");
    }

    #[test]
    fn known_secrets_are_scrubbed_wherever_they_appear() {
        let secrets = secrets_of("postgres://app:p%40ss@db/main");
        assert_eq!(secrets, vec!["p%40ss".to_string(), "p@ss".to_string()]);
        let outcome = TaskOutcome::failed("auth failed for p@ss").with_metric("x", 1.0);
        let mut outcome = outcome;
        outcome.details = serde_json::json!({"error": ["the server said p@ss was wrong"], "n": 3});
        let scrubbed = scrub_outcome(outcome, &secrets);
        let text = serde_json::to_string(&scrubbed).unwrap();
        assert!(!text.contains("p@ss") && !text.contains("p%40ss"), "{text}");
        assert_eq!(scrubbed.details["n"], 3);
    }

    #[test]
    fn a_password_that_is_not_ascii_is_decoded_without_a_panic() {
        // `%a` followed by a two-byte character once sliced a string inside that character.
        assert_eq!(percent_decode("%aé"), "%aé");
        assert_eq!(percent_decode("é%41%4"), "éA%4");
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(secrets_of("postgres://app:p%aé@db/main"), vec!["p%aé".to_string()]);
        assert_eq!(secrets_of("postgres://app:%C3%A9t%C3%A9@db/main")[1], "été");
        assert_eq!(redact("postgres://app:p%aé@db/main"), "postgres://app:***@db/main");
    }

    #[test]
    fn without_password_keeps_the_rest() {
        assert_eq!(without_password("postgres://u:pw@h:5/d?x=1"), "postgres://u@h:5/d?x=1");
        assert_eq!(without_password("postgres://u@h/d"), "postgres://u@h/d");
    }

    #[test]
    fn password_of_reads_the_user_information() {
        assert_eq!(password_of("redis://:pw@h:1/0").as_deref(), Some("pw"));
        assert_eq!(password_of("postgres://u:pw@h/d").as_deref(), Some("pw"));
        assert_eq!(password_of("postgres://u@h/d"), None);
        assert_eq!(password_of("not a url"), None);
    }
}
