//! Passwords out of everything Caretaker records, prints, logs or sends: one redactor for the
//! whole program.
//!
//! Two nets, because one is not enough: [`redact`] replaces the password of every URL
//! (`postgres://user:secret@`, `redis://:secret@`) and the value of every secret-looking key
//! (`password=`, `PGPASSWORD=`, `token=`, `secret: `, ...) in a text, and a [`Redactor`] also
//! replaces each secret it was told of (the passwords of the connection URLs in the
//! configuration, raw and percent-decoded, and the secret values of command tasks' environments)
//! wherever they appear, for the error message of a driver that quotes one some other way. The
//! scheduler redacts every execution it records, logs or notifies through one [`Redactor`]; every
//! task passes its outcome through [`scrub_outcome`] before it returns it.

use crate::task::TaskOutcome;

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

/// Keys whose value is a secret, matched without regard to case and wherever they end a longer
/// key (`PGPASSWORD`, `api_token`, `DB_SECRET`).
const SECRET_KEYS: [&str; 7] = ["password", "passwd", "pwd", "secret", "token", "rediscli_auth", "api_key"];

/// Where the values of secret keys are in `text`: libpq's key-value form (`host=db
/// password=secret`), environment assignments (`PGPASSWORD=secret`, `REDISCLI_AUTH=secret`), query
/// strings (`?token=abc`) and `key: value` pairs, quoted or not. `(start, length)`, in order.
fn secret_values(text: &str) -> Vec<(usize, usize)> {
    let lower = text.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    let mut starts: Vec<usize> = Vec::new();
    for key in SECRET_KEYS {
        let mut from = 0;
        while let Some(i) = lower[from..].find(key) {
            let mut at = from + i + key.len();
            from = at;
            // The key must end here (`tokens=` is not `token=`), then `=` or `:`, spaces around.
            while bytes.get(at) == Some(&b' ') {
                at += 1;
            }
            if !matches!(bytes.get(at), Some(b'=' | b':')) {
                continue;
            }
            at += 1;
            while bytes.get(at) == Some(&b' ') {
                at += 1;
            }
            // `scheme://` is a URL, not a `key: value`.
            if !lower[at..].starts_with("//") {
                starts.push(at);
            }
        }
    }
    starts.sort_unstable();
    starts.dedup();
    let mut spans = Vec::new();
    let mut covered = 0;
    for start in starts {
        if start < covered {
            continue;
        }
        let value = &text[start..];
        let len = match value.chars().next().filter(|c| *c == '\'' || *c == '"') {
            Some(quote) => value[1..].find(quote).map(|e| e + 2).unwrap_or(value.len()),
            None => value.find(|c: char| c.is_whitespace() || c == '&' || c == ';' || c == ',').unwrap_or(value.len()),
        };
        if len > 0 {
            spans.push((start, len));
            covered = start + len;
        }
    }
    spans
}

fn redact_key_values(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for (start, len) in secret_values(text) {
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

/// Redacts [`redact`]'s patterns and every secret it knows; see the module docs.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    /// A redactor that also hides the passwords (raw and percent-decoded) of the URLs and
    /// key-value strings in `connection_strings`.
    pub fn new<'a>(connection_strings: impl IntoIterator<Item = &'a str>) -> Redactor {
        let mut secrets = Vec::new();
        for text in connection_strings {
            for word in text.split_whitespace() {
                secrets.extend(secrets_of(word.trim_matches(['\'', '"'])));
            }
            secrets.extend(key_value_secrets(text));
        }
        Redactor::default().with_secrets(secrets)
    }

    /// This redactor, also hiding `secrets` (values shorter than 4 characters are ignored: they
    /// would blank out ordinary words, and a password that short is no secret).
    pub fn with_secrets(mut self, secrets: impl IntoIterator<Item = String>) -> Redactor {
        self.secrets.extend(secrets.into_iter().filter(|s| s.len() >= 4));
        self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        self.secrets.dedup();
        self
    }

    pub fn redact(&self, text: &str) -> String {
        redact_with(text, &self.secrets)
    }

    /// Redacts every string inside a JSON value.
    pub fn redact_json(&self, value: &mut serde_json::Value) {
        scrub_json(value, &self.secrets);
    }
}

/// The values of the secret keys in a key-value string (`host=db password=s3cret`).
fn key_value_secrets(text: &str) -> Vec<String> {
    secret_values(text)
        .into_iter()
        .map(|(start, len)| text[start..start + len].trim_matches(['\'', '"']).to_string())
        .collect()
}

/// Whether an environment variable (or any key) names a secret: `PGPASSWORD`, `API_TOKEN`, ...
pub fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_KEYS.iter().any(|k| key.ends_with(k)) || key.ends_with("_key") || key.ends_with("auth")
}

/// Why an argument must not be on a command line, if it holds a password: every user of the
/// machine can read a process's command line (`ps`, `/proc/<pid>/cmdline`).
pub fn password_on_command_line(arg: &str) -> Option<String> {
    // A shell expansion (`password=$PGPASS`, `postgres://u:${PW}@db`) names a secret held
    // elsewhere: only a value written out is on the command line.
    let literal = |value: &str| !value.trim_start_matches(['\'', '"']).starts_with('$');
    let in_pair = secret_values(arg).into_iter().any(|(start, len)| literal(&arg[start..start + len]));
    let in_url = arg.split_whitespace().filter_map(|w| password_of(w.trim_matches(['\'', '"']))).any(|p| literal(&p));
    let shown = redact(arg);
    (in_pair || in_url).then(|| {
        format!(
            "{shown:?} holds a password, which every user of this machine can read on a command line (ps); pass it through the environment instead (env = {{ PGPASSWORD = \"...\" }}, or a URL in an env variable the program reads)"
        )
    })
}

/// The first argument of `argv` that writes a password out on the command line, and why: one
/// that holds it ([`password_on_command_line`]), or the value after a flag that names a secret
/// (`--password hunter2`, `--token abc`).
pub fn argv_password(argv: &[String]) -> Option<(usize, String)> {
    for (i, arg) in argv.iter().enumerate() {
        if let Some(why) = password_on_command_line(arg) {
            return Some((i, why));
        }
        let flag = arg.strip_prefix("--").map(|f| f.replace('-', "_"));
        let names_secret = flag.as_deref().is_some_and(|f| SECRET_KEYS.contains(&f.to_ascii_lowercase().as_str()));
        if argv.get(i + 1).is_some_and(|v| names_secret && !v.starts_with('$') && !v.starts_with('-')) {
            return Some((
                i + 1,
                format!(
                    "the value after {arg} is a password, which every user of this machine can read on a command line (ps); pass it through the environment instead"
                ),
            ));
        }
    }
    None
}

/// A connection string with its password hidden, for messages.
pub fn redact_url(url: &str) -> String {
    redact(url)
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

    #[test]
    fn secret_keys_of_every_form_are_hidden() {
        let r = Redactor::default();
        assert_eq!(r.redact("postgres://app:s3cr3t@db:5432/x"), "postgres://app:***@db:5432/x");
        assert_eq!(
            r.redact("connect host=db user=app password=s3cr3t dbname=x"),
            "connect host=db user=app password=*** dbname=x"
        );
        assert_eq!(r.redact("PGPASSWORD='hunter 2' pg_dump"), "PGPASSWORD=*** pg_dump");
        assert_eq!(r.redact("PGPASSWORD=\"hunter 2\" pg_dump"), "PGPASSWORD=*** pg_dump");
        assert_eq!(
            r.redact("postgres://app@db/x and redis://127.0.0.1:6379"),
            "postgres://app@db/x and redis://127.0.0.1:6379"
        );
        assert_eq!(r.redact("https://hooks.example/x?token=abc123&v=1"), "https://hooks.example/x?token=***&v=1");
        assert_eq!(r.redact("API_TOKEN=abc DB_SECRET: xyz pwd=p"), "API_TOKEN=*** DB_SECRET: *** pwd=***");
        // Not keys: longer words. A secret key's value is hidden even when it is a URL.
        assert_eq!(r.redact("tokens=5 secretary=bob"), "tokens=5 secretary=bob");
        assert_eq!(r.redact("secret: https://example.org/a"), "secret: ***");
    }

    #[test]
    fn secret_keys_and_passwords_on_command_lines_are_recognised() {
        assert!(is_secret_key("PGPASSWORD") && is_secret_key("api_token") && is_secret_key("AWS_SECRET_ACCESS_KEY"));
        assert!(is_secret_key("REDISCLI_AUTH") && !is_secret_key("PATH") && !is_secret_key("REINDEX_MODE"));
        assert!(password_on_command_line("postgres://app:pw@db/x").unwrap().contains("postgres://app:***@db/x"));
        assert!(password_on_command_line("psql 'host=db password=pw'").is_some());
        assert_eq!(password_on_command_line("--table=events"), None);
        assert_eq!(password_on_command_line("postgres://app@db/x"), None);
        assert_eq!(password_on_command_line("psql password=$PGPASS postgres://app:${PW}@db"), None, "expansions");
        let argv = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(argv_password(&argv(&["mysql", "--password", "hunter2"])).map(|p| p.0), Some(2));
        assert_eq!(argv_password(&argv(&["tool", "--api-key", "abc"])).map(|p| p.0), Some(2));
        assert_eq!(argv_password(&argv(&["psql", "postgres://u:pw@h/d"])).map(|p| p.0), Some(1));
        assert_eq!(argv_password(&argv(&["tool", "--token", "$TOKEN", "--password", "--verbose"])), None);
        assert_eq!(argv_password(&argv(&["pg_dump", "-p", "5432", "--table", "events"])), None);
    }

    #[test]
    fn a_known_password_is_hidden_wherever_it_appears() {
        let r = Redactor::new(["postgres://app:Tr0ub4dor@db/x", "host=db password=Kr4ken2 user=x"]);
        assert_eq!(r.redact("auth failed for Tr0ub4dor and Kr4ken2"), "auth failed for *** and ***");
        let mut v = serde_json::json!({"argv": ["psql", "Tr0ub4dor"], "n": 1});
        r.redact_json(&mut v);
        assert_eq!(v, serde_json::json!({"argv": ["psql", "***"], "n": 1}));
        let r = Redactor::default().with_secrets(["S3cretValue".to_string(), "ab".to_string()]);
        assert_eq!(r.redact("echo S3cretValue ab"), "echo *** ab", "too short to be a secret: ab");
    }
}
