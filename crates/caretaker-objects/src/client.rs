//! The S3 client and its errors in an operator's words.

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::{ClientOptions, RetryConfig};
use std::collections::BTreeMap;
use std::time::Duration;

type Result<T> = crate::Result<T>;
use crate::Error;

/// The secret values an error text must not carry: the keys of the options and the environment.
pub fn secrets(options: &BTreeMap<String, String>) -> Vec<String> {
    let from_options =
        ["access_key_id", "secret_access_key", "session_token"].into_iter().filter_map(|k| options.get(k).cloned());
    let from_environment = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"]
        .into_iter()
        .filter_map(|k| std::env::var(k).ok());
    from_options.chain(from_environment).filter(|v| v.len() >= 4).collect()
}

/// The S3 client for `bucket`: `options` first, then the environment, then the profile.
pub fn client(url: &str, bucket: &str, options: &BTreeMap<String, String>) -> Result<AmazonS3> {
    let option = |key: &str| options.get(key).map(String::as_str);
    let duration = |key: &str, default: u64| {
        option(key).and_then(|v| humantime::parse_duration(v).ok()).unwrap_or(Duration::from_secs(default))
    };
    // Keys or a profile named in the file win over the environment's keys (whose session token
    // would otherwise be sent with the file's keys); without them the environment's whole chain
    // applies (keys, web identity, container and instance roles).
    let environment = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let explicit = option("access_key_id").is_some() || option("profile").is_some();
    let mut builder =
        if explicit { AmazonS3Builder::new() } else { AmazonS3Builder::from_env() }.with_bucket_name(bucket);
    if let (true, Some(endpoint)) = (explicit, environment("AWS_ENDPOINT_URL").or_else(|| environment("AWS_ENDPOINT")))
    {
        builder = builder.with_endpoint(endpoint);
    }
    let profile = option("profile").map(str::to_string).or_else(|| environment("AWS_PROFILE"));
    let profile = profile.as_deref().unwrap_or("default");
    if option("access_key_id").is_none() && (option("profile").is_some() || environment("AWS_ACCESS_KEY_ID").is_none())
    {
        let credentials = profile::credentials(profile);
        if credentials.is_empty() && option("profile").is_some() {
            return Err(Error {
                url: url.to_string(),
                reason: format!(
                    "profile {profile:?} has no keys in the shared credentials file (~/.aws/credentials, or AWS_SHARED_CREDENTIALS_FILE)"
                ),
            });
        }
        for (key, value) in credentials {
            builder = match key.as_str() {
                "aws_access_key_id" => builder.with_access_key_id(value),
                "aws_secret_access_key" => builder.with_secret_access_key(value),
                "aws_session_token" => builder.with_token(value),
                _ => builder,
            };
        }
    }
    if let Some(region) =
        environment("AWS_REGION").or_else(|| environment("AWS_DEFAULT_REGION")).or_else(|| profile::region(profile))
    {
        builder = builder.with_region(region);
    }
    for (key, value) in options {
        builder = match key.as_str() {
            "endpoint" => builder.with_endpoint(value),
            "region" => builder.with_region(value),
            "virtual_hosted_style_request" => builder.with_virtual_hosted_style_request(value == "true"),
            "access_key_id" => builder.with_access_key_id(value),
            "secret_access_key" => builder.with_secret_access_key(value),
            "session_token" => builder.with_token(value),
            _ => builder,
        };
    }
    // A run that cannot reach its data says so within a minute, not after ten retries.
    // The client options replace those of the environment: `allow_http` is one of them.
    let allow_http = option("allow_http").map(str::to_string).or_else(|| std::env::var("AWS_ALLOW_HTTP").ok());
    let client = ClientOptions::new()
        .with_allow_http(allow_http.as_deref() == Some("true"))
        .with_timeout(duration("timeout", 120))
        .with_connect_timeout(duration("connect_timeout", 5));
    let retry = RetryConfig { max_retries: 2, retry_timeout: Duration::from_secs(60), ..RetryConfig::default() };
    builder
        .with_client_options(client)
        .with_retry(retry)
        .build()
        .map_err(|e| Error { url: url.to_string(), reason: describe(&e) })
}

/// What went wrong, in the words an operator acts on.
pub fn describe(e: &object_store::Error) -> String {
    let text = without_response_body(&caretaker_core::error_chain(e));
    let has = |needles: &[&str]| needles.iter().any(|n| text.contains(n));
    let what = match e {
        object_store::Error::NotFound { .. } if has(&["NoSuchBucket"]) => "no such bucket",
        object_store::Error::NotFound { .. } => "no such object",
        object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. } => {
            "access denied: the credentials were refused"
        }
        _ if has(&["NoSuchBucket"]) => "no such bucket",
        _ if has(&["InvalidBucketName"]) => "not a valid bucket name",
        _ if has(&["InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403 Forbidden"]) => {
            "access denied: the credentials were refused"
        }
        _ if has(&["169.254.169.254", "169.254.170.2"]) => {
            "no credentials found (none in the storage_options, the AWS environment or the profile, and no instance role answered)"
        }
        _ if has(&["onnection refused", "error trying to connect", "dns error", "tcp connect error"]) => "unreachable",
        _ if has(&["timed out", "deadline has elapsed", "operation timed out"]) => "timed out",
        _ => return text,
    };
    format!("{what} ({text})")
}

/// `text` with an S3 error response's body cut down to its `Code` and `Message`: the rest of an
/// AWS error body (`SignatureDoesNotMatch`'s canonical request, say) can carry the key id or the
/// session token.
fn without_response_body(text: &str) -> String {
    let Some(at) = text.find("<?xml").or_else(|| text.find("<Error>")) else { return text.to_string() };
    let body = &text[at..];
    let element = |name: &str| {
        let open = format!("<{name}>");
        let start = body.find(&open)? + open.len();
        let end = body[start..].find(&format!("</{name}>"))? + start;
        Some(body[start..end].to_string())
    };
    let summary: Vec<String> = [element("Code"), element("Message")].into_iter().flatten().collect();
    format!("{}{}", &text[..at], summary.join(": "))
}

/// The shared AWS files: `~/.aws/credentials` (or `AWS_SHARED_CREDENTIALS_FILE`) and
/// `~/.aws/config` (or `AWS_CONFIG_FILE`), read for one profile's keys and region. Hand-written
/// (an INI section and its `key = value` lines): the AWS SDK's loader would bring the whole SDK.
mod profile {
    use std::path::PathBuf;

    fn file(variable: &str, name: &str) -> Option<PathBuf> {
        std::env::var_os(variable)
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".aws").join(name)))
    }

    /// The `key = value` lines of section `[section]` of `text`.
    pub(super) fn section(text: &str, section: &str) -> Vec<(String, String)> {
        let mut inside = false;
        let mut out = Vec::new();
        for line in text.lines().map(str::trim) {
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                inside = name.trim() == section;
            } else if inside
                && !line.starts_with(['#', ';'])
                && let Some((key, value)) = line.split_once('=')
            {
                out.push((key.trim().to_string(), value.trim().to_string()));
            }
        }
        out
    }

    pub(super) fn credentials(profile: &str) -> Vec<(String, String)> {
        file("AWS_SHARED_CREDENTIALS_FILE", "credentials")
            .and_then(|path| std::fs::read_to_string(path).ok())
            .map(|text| section(&text, profile))
            .unwrap_or_default()
    }

    pub(super) fn region(profile: &str) -> Option<String> {
        let text = std::fs::read_to_string(file("AWS_CONFIG_FILE", "config")?).ok()?;
        let name = if profile == "default" { "default".to_string() } else { format!("profile {profile}") };
        section(&text, &name).into_iter().find(|(k, _)| k == "region").map(|(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_body_is_cut_to_its_code_and_message_and_keys_never_show() {
        let body = "Generic S3 error: 403 Forbidden: <?xml version=\"1.0\"?><Error><Code>SignatureDoesNotMatch</Code><Message>The signature does not match</Message><AWSAccessKeyId>AKIAEXAMPLEKEY</AWSAccessKeyId><CanonicalRequest>x-amz-security-token:TOKEN123</CanonicalRequest></Error>";
        let cut = without_response_body(body);
        assert_eq!(cut, "Generic S3 error: 403 Forbidden: SignatureDoesNotMatch: The signature does not match");
        assert_eq!(without_response_body("connection refused"), "connection refused");
        let options: BTreeMap<String, String> =
            [("secret_access_key".to_string(), "s3cr3t-value".to_string())].into_iter().collect();
        let said = caretaker_core::redact::redact_with("refused s3cr3t-value", &secrets(&options));
        assert!(!said.contains("s3cr3t-value"), "{said}");
    }

    #[test]
    fn a_profile_is_a_section_of_the_shared_files() {
        let text =
            "[default]\naws_access_key_id = A\n# note\n[profile ci]\nregion = eu-west-1\n[ci]\naws_access_key_id=B\n";
        assert_eq!(section(text, "ci"), [("aws_access_key_id".to_string(), "B".to_string())]);
        assert_eq!(section(text, "profile ci"), [("region".to_string(), "eu-west-1".to_string())]);
        assert!(section(text, "missing").is_empty());
    }

    use profile::section;
}
