//! The three health grades. One vocabulary for two graders: the service and pipeline checks
//! (`caretaker-tasks`' `health` kinds) and the model health score (`caretaker_evaluate::health`),
//! so a success criterion on the `health` metric reads the same whichever produced it.

use serde::Serialize;

/// A grade. Ordered worst first, so the worst of several is their minimum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    Unhealthy,
    Degraded,
    Healthy,
}

impl Health {
    pub fn name(self) -> &'static str {
        match self {
            Health::Unhealthy => "unhealthy",
            Health::Degraded => "degraded",
            Health::Healthy => "healthy",
        }
    }

    /// The value of the `health` metric: 2 healthy, 1 degraded, 0 unhealthy.
    pub fn metric(self) -> f64 {
        match self {
            Health::Unhealthy => 0.0,
            Health::Degraded => 1.0,
            Health::Healthy => 2.0,
        }
    }
}
