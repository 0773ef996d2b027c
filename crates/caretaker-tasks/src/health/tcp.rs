//! `tcp_health`: can a TCP connection be opened, and how fast?

use super::{CheckReport, Health, timeout_of};
use crate::params::{positive, problem};
use caretaker_core::config::ConfigProblem;
use serde::Deserialize;
use std::time::{Duration, Instant};

/// Parameters of `tcp_health`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpConfig {
    /// `host:port` to connect to (a name is resolved first; every address it resolves to is
    /// tried in turn).
    pub address: String,
    /// Above this connect time the service is degraded. Default: not checked.
    pub max_latency_ms: Option<f64>,
    /// No connection within this many seconds is unhealthy. Default 10.
    pub timeout_seconds: Option<f64>,
}

pub struct TcpCheck {
    address: String,
    max_latency_ms: Option<f64>,
    pub(super) timeout: Duration,
}

impl TcpCheck {
    pub fn build(config: TcpConfig) -> Result<TcpCheck, ConfigProblem> {
        let port_ok =
            config.address.rsplit_once(':').is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !port_ok {
            return Err(problem("address", format!("{:?} is not host:port", config.address)));
        }
        if let Some(ms) = config.max_latency_ms {
            positive("max_latency_ms", ms)?;
        }
        Ok(TcpCheck {
            address: config.address,
            max_latency_ms: config.max_latency_ms,
            timeout: timeout_of("timeout_seconds", config.timeout_seconds)?,
        })
    }

    pub(super) async fn check(&self, report: &mut CheckReport) {
        let started = Instant::now();
        match tokio::net::TcpStream::connect(&self.address).await {
            Ok(_stream) => {
                let ms = started.elapsed().as_secs_f64() * 1000.0;
                report.metric("latency_ms", ms);
                if let Some(max) = self.max_latency_ms
                    && ms > max
                {
                    report.lower(
                        Health::Degraded,
                        format!("connecting to {} took {ms:.0} ms, above {max} ms", self.address),
                    );
                }
            }
            Err(e) => report.lower(Health::Unhealthy, format!("cannot connect to {}: {e}", self.address)),
        }
    }
}
