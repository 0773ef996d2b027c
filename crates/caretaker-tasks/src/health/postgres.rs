//! `postgres_health`: does the server answer `SELECT 1`?

use super::{CheckReport, Health, timeout_of};
use crate::connect;
use crate::params::{ConnectionUrl, positive};
use caretaker_core::config::ConfigProblem;
use serde::Deserialize;
use std::time::{Duration, Instant};

/// Parameters of `postgres_health`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// `postgres://user:password@host:port/database`, or `env:VARIABLE` naming a variable that
    /// holds it. The password is never shown.
    pub url: ConnectionUrl,
    /// Above this time (connect and query) the server is degraded. Default: not checked.
    pub max_latency_ms: Option<f64>,
    /// No answer within this many seconds is unhealthy. Default 10.
    pub timeout_seconds: Option<f64>,
}

pub struct PostgresCheck {
    pub(super) url: ConnectionUrl,
    max_latency_ms: Option<f64>,
    pub(super) timeout: Duration,
}

impl PostgresCheck {
    pub fn build(config: PostgresConfig) -> Result<PostgresCheck, ConfigProblem> {
        if let Some(ms) = config.max_latency_ms {
            positive("max_latency_ms", ms)?;
        }
        Ok(PostgresCheck {
            url: config.url,
            max_latency_ms: config.max_latency_ms,
            timeout: timeout_of("timeout_seconds", config.timeout_seconds)?,
        })
    }

    pub(super) async fn check(&self, report: &mut CheckReport) {
        let started = Instant::now();
        let url = match self.url.resolve() {
            Ok(url) => url,
            Err(e) => return report.lower(Health::Unhealthy, e),
        };
        let client = match connect::postgres(&url, self.timeout).await {
            Ok(client) => client,
            Err(e) => return report.lower(Health::Unhealthy, e.to_string()),
        };
        let queried = Instant::now();
        match client.query_one("SELECT 1", &[]).await.map(|row| row.try_get::<_, i32>(0)) {
            Ok(Ok(1)) => {}
            Ok(Ok(other)) => report.lower(Health::Unhealthy, format!("SELECT 1 answered {other}")),
            Ok(Err(e)) | Err(e) => {
                report.lower(Health::Unhealthy, format!("SELECT 1 failed: {}", connect::postgres_error(&e)))
            }
        }
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        report.metric("latency_ms", ms);
        report.metric("query_ms", queried.elapsed().as_secs_f64() * 1000.0);
        if let Some(max) = self.max_latency_ms
            && ms > max
        {
            report.lower(Health::Degraded, format!("connect and SELECT 1 took {ms:.0} ms, above {max} ms"));
        }
    }
}
