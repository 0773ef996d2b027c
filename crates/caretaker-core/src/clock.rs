//! The one time source. Tests and backfills fake it with `CARETAKER_NOW`.

use chrono::{DateTime, Utc};

/// Where "now" comes from. Every stage asks the clock, never `Utc::now()` directly, so a test
/// (or an operator replaying a night) can pin the time.
#[derive(Debug, Clone, Copy)]
pub enum Clock {
    /// The system clock.
    System,
    /// A fixed instant.
    Fixed(DateTime<Utc>),
}

impl Clock {
    /// The environment variable that fixes the clock, as an RFC 3339 instant.
    pub const ENV: &'static str = "CARETAKER_NOW";

    /// The system clock, unless `CARETAKER_NOW` names an instant.
    pub fn from_env() -> Result<Clock, String> {
        match std::env::var(Self::ENV) {
            Ok(text) => DateTime::parse_from_rfc3339(text.trim())
                .map(|t| Clock::Fixed(t.with_timezone(&Utc)))
                .map_err(|e| format!("{}={text:?} is not an RFC 3339 instant: {e}", Self::ENV)),
            Err(_) => Ok(Clock::System),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Clock::System => Utc::now(),
            Clock::Fixed(t) => *t,
        }
    }
}
