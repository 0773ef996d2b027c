//! `redis_health`: does the server answer `PING` with `PONG`?

use super::{CheckReport, Health, timeout_of};
use crate::connect;
use crate::params::{ConnectionUrl, positive};
use caretaker_core::config::ConfigProblem;
use serde::Deserialize;
use std::time::{Duration, Instant};

/// Parameters of `redis_health`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://[user]:password@host:port/db`, or `env:VARIABLE` naming a variable that holds
    /// it. The password is never shown.
    pub url: ConnectionUrl,
    /// Above this time (connect and PING) the server is degraded. Default: not checked.
    pub max_latency_ms: Option<f64>,
    /// No answer within this many seconds is unhealthy. Default 10.
    pub timeout_seconds: Option<f64>,
}

pub struct RedisCheck {
    pub(super) url: ConnectionUrl,
    max_latency_ms: Option<f64>,
    pub(super) timeout: Duration,
}

impl RedisCheck {
    pub fn build(config: RedisConfig) -> Result<RedisCheck, ConfigProblem> {
        if let Some(ms) = config.max_latency_ms {
            positive("max_latency_ms", ms)?;
        }
        Ok(RedisCheck {
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
        let mut connection = match connect::redis(&url, self.timeout).await {
            Ok(connection) => connection,
            Err(e) => return report.lower(Health::Unhealthy, e.to_string()),
        };
        let answer: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut connection).await;
        match answer {
            Ok(pong) if pong == "PONG" => {}
            Ok(other) => report.lower(Health::Unhealthy, format!("PING answered {other:?}, expected PONG")),
            Err(e) => report.lower(Health::Unhealthy, format!("PING failed: {e}")),
        }
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        report.metric("latency_ms", ms);
        if let Some(max) = self.max_latency_ms
            && ms > max
        {
            report.lower(Health::Degraded, format!("connect and PING took {ms:.0} ms, above {max} ms"));
        }
    }
}
