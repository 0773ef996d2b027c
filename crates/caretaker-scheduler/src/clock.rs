//! The scheduler's time: the project's [`Clock`], made to advance.
//!
//! A daemon waits for time to pass, so a fixed instant (`CARETAKER_NOW`) cannot be its clock.
//! Here a fixed instant is where time *starts*: `now()` is that instant plus the time elapsed
//! since the scheduler started. Tests use it to run the daemon across a daylight-saving
//! transition in a few seconds of real time; without `CARETAKER_NOW` it is the system clock.

use caretaker_core::Clock;
use chrono::{DateTime, Utc};
use std::time::Instant;

#[derive(Debug, Clone, Copy)]
pub struct SchedulerClock {
    start: Option<(DateTime<Utc>, Instant)>,
}

impl SchedulerClock {
    pub fn new(clock: Clock) -> SchedulerClock {
        match clock {
            Clock::System => SchedulerClock { start: None },
            Clock::Fixed(t) => SchedulerClock { start: Some((t, Instant::now())) },
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        match self.start {
            None => Utc::now(),
            Some((t, since)) => t + since.elapsed(),
        }
    }
}
