//! `http_health`: an HTTP(S) GET, graded on its status, its body and its latency.

use super::{CheckReport, Health, timeout_of};
use crate::error_chain;
use crate::params::{ConnectionUrl, positive, problem};
use caretaker_core::config::ConfigProblem;
use serde::Deserialize;
use std::time::{Duration, Instant};

/// Parameters of `http_health`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// The URL to GET, `http://` or `https://` (TLS through rustls, the system's root
    /// certificates). A password in it (`https://user:pw@host/`) is sent as basic auth and never
    /// shown.
    pub url: ConnectionUrl,
    /// The status the endpoint must answer with. Default 200; any other is unhealthy.
    #[serde(default = "default_status")]
    pub expect_status: u16,
    /// Text the body must contain; a body without it is unhealthy. Default: not checked.
    pub body_contains: Option<String>,
    /// Above this latency (from the request to the whole body) the endpoint is degraded.
    /// Default: not checked.
    pub max_latency_ms: Option<f64>,
    /// No complete answer within this many seconds is unhealthy. Default 10.
    pub timeout_seconds: Option<f64>,
}

fn default_status() -> u16 {
    200
}

pub struct HttpCheck {
    pub(super) url: ConnectionUrl,
    expect_status: u16,
    body_contains: Option<String>,
    max_latency_ms: Option<f64>,
    pub(super) timeout: Duration,
}

impl HttpCheck {
    pub fn build(config: HttpConfig) -> Result<HttpCheck, ConfigProblem> {
        if let Ok(url) = config.url.resolve()
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(problem("url", format!("{} is not an http:// or https:// URL", config.url)));
        }
        if !(100..=599).contains(&config.expect_status) {
            return Err(problem("expect_status", format!("{} is not an HTTP status", config.expect_status)));
        }
        if let Some(ms) = config.max_latency_ms {
            positive("max_latency_ms", ms)?;
        }
        Ok(HttpCheck {
            url: config.url,
            expect_status: config.expect_status,
            body_contains: config.body_contains,
            max_latency_ms: config.max_latency_ms,
            timeout: timeout_of("timeout_seconds", config.timeout_seconds)?,
        })
    }

    pub(super) async fn check(&self, report: &mut CheckReport) {
        let url = match self.url.resolve() {
            Ok(url) => url,
            Err(e) => return report.lower(Health::Unhealthy, e),
        };
        let client = match reqwest::Client::builder().timeout(self.timeout).build() {
            Ok(client) => client,
            Err(e) => return report.lower(Health::Unhealthy, format!("cannot set up the HTTP client: {e}")),
        };
        let started = Instant::now();
        let response = match client.get(&url).send().await {
            Ok(response) => response,
            Err(e) => {
                return report.lower(Health::Unhealthy, format!("GET {} failed: {}", self.url, error_chain(&e)));
            }
        };
        let status = response.status().as_u16();
        let body = response.text().await;
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        report.metric("status", f64::from(status));
        report.metric("latency_ms", latency_ms);
        if status != self.expect_status {
            report.lower(
                Health::Unhealthy,
                format!("GET {} answered {status}, expected {}", self.url, self.expect_status),
            );
        }
        match (&self.body_contains, body) {
            (_, Err(e)) => {
                report.lower(Health::Unhealthy, format!("reading the body of {} failed: {}", self.url, error_chain(&e)))
            }
            (Some(needle), Ok(body)) if !body.contains(needle.as_str()) => {
                report.lower(Health::Unhealthy, format!("the body of {} does not contain {needle:?}", self.url))
            }
            _ => {}
        }
        if let Some(max) = self.max_latency_ms
            && latency_ms > max
        {
            report.lower(Health::Degraded, format!("latency {latency_ms:.0} ms is above {max} ms"));
        }
    }
}
