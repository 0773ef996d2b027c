//! When a task fires: a cron expression read in an IANA time zone.
//!
//! The pattern matching and the daylight-saving rules are `croner`'s, which follows the Open Cron
//! Pattern Specification and Vixie cron:
//!
//! - a *fixed-time* schedule (a single value in each of the second, minute and hour fields, like
//!   `30 2 * * *`) whose wall-clock time does not exist on a spring-forward day runs once, at the
//!   first instant after the gap (03:00 local in Europe/Berlin on 2026-03-29); on a fall-back day,
//!   when its wall-clock time happens twice, it runs once, at the first of the two;
//! - an *interval* schedule (`*/15 * * * *`, `0 * * * *`, ...) follows the clock: firings inside
//!   the gap do not happen, and the repeated hour fires twice.
//!
//! [`Firing::dst`] says when daylight saving moved or doubled a firing, so that the preview can
//! warn about it.

use chrono::{DateTime, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds, Year};
use croner::{Cron, JobType};
use serde::Serialize;

/// A parsed cron expression with its time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// The expression as written in the catalog.
    pub expression: String,
    pub time_zone: Tz,
    cron: Cron,
    fixed_time: bool,
}

/// One moment a task fires.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Firing {
    pub at: DateTime<Utc>,
    /// The wall-clock time in the schedule's time zone.
    pub local: DateTime<Tz>,
    /// How daylight saving changed this firing, if it did.
    pub dst: Option<DstNote>,
}

/// How daylight saving changed a firing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DstNote {
    /// The scheduled wall-clock time did not exist (the clock jumped over it): the firing was
    /// moved to the first instant after the gap.
    MovedOutOfGap { scheduled: String },
    /// The wall-clock time happened twice (the clock went back); a fixed-time task runs once, at
    /// the first of the two.
    OnceInRepeatedHour,
    /// The wall-clock time happened twice and this interval task fires at both; `second` is true
    /// for the later one.
    RepeatedHour { second: bool },
}

impl Schedule {
    /// Parses a 5-field (minute hour day month weekday) or 6-field (with seconds first) cron
    /// expression. The error is the reason, for a config problem.
    pub fn parse(expression: &str, time_zone: Tz) -> Result<Schedule, String> {
        let fields = expression.split_whitespace().count();
        if !(fields == 5 || fields == 6) {
            return Err(format!(
                "{expression:?} has {fields} fields; a cron expression has 5 (minute hour day-of-month month \
                 day-of-week) or 6 (seconds first)"
            ));
        }
        let parser = CronParser::builder().seconds(Seconds::Optional).year(Year::Disallowed).build();
        let cron = parser.parse(expression).map_err(|e| format!("{expression:?} is not a cron expression: {e}"))?;
        let fixed_time = cron.determine_job_type() == JobType::FixedTime;
        let schedule = Schedule { expression: expression.trim().to_string(), time_zone, cron, fixed_time };
        // A pattern that can never match (30 February) is a mistake, not a quiet schedule.
        let probe = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().expect("a valid instant");
        if schedule.next_after(probe).is_none() {
            return Err(format!("{expression:?} never fires (no date matches it)"));
        }
        Ok(schedule)
    }

    /// Whether this is a fixed-time schedule (see the module docs for what that changes).
    pub fn is_fixed_time(&self) -> bool {
        self.fixed_time
    }

    /// The first firing strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&self.time_zone);
        self.cron.find_next_occurrence(&local, false).ok().map(|t| t.with_timezone(&Utc))
    }

    /// Every firing in `[from, to)`, oldest first, at most `limit` of them.
    pub fn firings(&self, from: DateTime<Utc>, to: DateTime<Utc>, limit: usize) -> Vec<Firing> {
        let mut out = Vec::new();
        // Inclusive start: step back one second and ask for "strictly after".
        let mut cursor = from - chrono::Duration::seconds(1);
        while out.len() < limit {
            let Some(at) = self.next_after(cursor) else { break };
            if at >= to {
                break;
            }
            out.push(self.firing(at));
            cursor = at;
        }
        out
    }

    /// The firing at instant `at` (which the schedule produced), with its daylight-saving note.
    pub fn firing(&self, at: DateTime<Utc>) -> Firing {
        let local = at.with_timezone(&self.time_zone);
        let naive = local.naive_local();
        let dst = if !self.cron.is_time_matching(&naive).unwrap_or(true) {
            // Only a time moved out of a gap does not match its own pattern.
            let scheduled = self
                .cron
                .find_previous_occurrence(&naive, false)
                .map(|t| t.format("%H:%M:%S").to_string())
                .unwrap_or_else(|_| "?".into());
            Some(DstNote::MovedOutOfGap { scheduled })
        } else {
            match self.time_zone.from_local_datetime(&naive) {
                chrono::LocalResult::Ambiguous(..) if self.fixed_time => Some(DstNote::OnceInRepeatedHour),
                chrono::LocalResult::Ambiguous(earlier, _) => {
                    Some(DstNote::RepeatedHour { second: earlier.with_timezone(&Utc) != at })
                }
                _ => None,
            }
        };
        Firing { at, local, dst }
    }

    /// The firings an interval schedule loses in the daylight-saving gaps of `[from, to)`: the
    /// wall-clock times it matches inside each gap. Fixed-time schedules lose none (they move).
    pub fn lost_in_gaps(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<(DateTime<Tz>, usize)> {
        if self.fixed_time {
            return Vec::new();
        }
        let mut out = Vec::new();
        for gap in gaps(self.time_zone, from, to) {
            // The wall-clock times the gap skipped, as naive times: the pattern is matched against
            // them as if they had existed.
            let mut count = 0usize;
            let mut cursor = gap.skipped_from - chrono::Duration::seconds(1);
            while let Ok(t) = self.cron.find_next_occurrence(&cursor, false) {
                if t >= gap.skipped_to || count > 100_000 {
                    break;
                }
                count += 1;
                cursor = t;
            }
            if count > 0 {
                out.push((gap.at.with_timezone(&self.time_zone), count));
            }
        }
        out
    }
}

/// A spring-forward transition: at `at` the wall clock jumped from `skipped_from` to `skipped_to`.
struct Gap {
    at: DateTime<Utc>,
    skipped_from: NaiveDateTime,
    skipped_to: NaiveDateTime,
}

/// The spring-forward transitions of `tz` in `[from, to)`, found by comparing the UTC offset
/// hour by hour and then narrowing down to the minute (real transitions are on minute boundaries).
fn gaps(tz: Tz, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Gap> {
    let offset = |t: DateTime<Utc>| tz.offset_from_utc_datetime(&t.naive_utc()).fix().local_minus_utc();
    let mut out = Vec::new();
    let mut t = from;
    while t < to {
        let next = t + chrono::Duration::hours(1);
        let (before, after) = (offset(t), offset(next));
        if after > before {
            // Narrow to the first minute with the new offset.
            let (mut lo, mut hi) = (t, next);
            while hi - lo > chrono::Duration::minutes(1) {
                let mid = lo + (hi - lo) / 2;
                if offset(mid) == before { lo = mid } else { hi = mid }
            }
            let at = hi.with_second(0);
            let jump = chrono::Duration::seconds((after - before) as i64);
            let skipped_from = at.naive_utc() + chrono::Duration::seconds(before as i64);
            if at >= from && at < to {
                out.push(Gap { at, skipped_from, skipped_to: skipped_from + jump });
            }
        }
        t = next;
    }
    out
}

trait WithSecondZero {
    fn with_second(self, second: u32) -> Self;
}

impl WithSecondZero for DateTime<Utc> {
    fn with_second(self, second: u32) -> Self {
        chrono::Timelike::with_second(&self, second)
            .and_then(|t| chrono::Timelike::with_nanosecond(&t, 0))
            .unwrap_or(self)
    }
}

/// Parses an IANA time zone name (`Europe/Berlin`, `UTC`). The error is the reason.
pub fn parse_time_zone(name: &str) -> Result<Tz, String> {
    name.parse::<Tz>().map_err(|_| format!("{name:?} is not an IANA time zone (like \"Europe/Berlin\" or \"UTC\")"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    fn day(schedule: &Schedule, date: &str) -> Vec<Firing> {
        // The whole local day, with a margin: from 00:00 to 24:00 local in UTC terms.
        let from = utc(&format!("{date}T00:00:00Z")) - chrono::Duration::hours(14);
        let to = utc(&format!("{date}T00:00:00Z")) + chrono::Duration::hours(38);
        schedule
            .firings(from, to, 1000)
            .into_iter()
            .filter(|f| f.local.format("%Y-%m-%d").to_string() == date)
            .collect()
    }

    fn at(schedule: &Schedule, date: &str) -> Vec<String> {
        day(schedule, date).iter().map(|f| f.at.to_rfc3339()).collect()
    }

    #[test]
    fn a_0230_task_runs_once_on_the_berlin_spring_forward_day_moved_past_the_gap() {
        let s = Schedule::parse("30 2 * * *", parse_time_zone("Europe/Berlin").unwrap()).unwrap();
        let firings = day(&s, "2026-03-29");
        assert_eq!(firings.len(), 1, "{firings:?}");
        // 02:00 CET jumps to 03:00 CEST (01:00 UTC): the first instant after the gap.
        assert_eq!(firings[0].at, utc("2026-03-29T01:00:00Z"));
        assert_eq!(firings[0].local.format("%H:%M %Z").to_string(), "03:00 CEST");
        assert_eq!(firings[0].dst, Some(DstNote::MovedOutOfGap { scheduled: "02:30:00".into() }));
        // The days around it are ordinary.
        assert_eq!(at(&s, "2026-03-28"), vec!["2026-03-28T01:30:00+00:00"]);
        assert_eq!(at(&s, "2026-03-30"), vec!["2026-03-30T00:30:00+00:00"]);
        assert_eq!(day(&s, "2026-03-30")[0].dst, None);
    }

    #[test]
    fn a_0230_task_runs_once_on_the_berlin_fall_back_day_at_the_first_0230() {
        let s = Schedule::parse("30 2 * * *", parse_time_zone("Europe/Berlin").unwrap()).unwrap();
        let firings = day(&s, "2026-10-25");
        assert_eq!(firings.len(), 1, "{firings:?}");
        // 02:30 CEST (+02:00), not 02:30 CET an hour later.
        assert_eq!(firings[0].at, utc("2026-10-25T00:30:00Z"));
        assert_eq!(firings[0].dst, Some(DstNote::OnceInRepeatedHour));
        assert_eq!(at(&s, "2026-10-26"), vec!["2026-10-26T01:30:00+00:00"]);
    }

    #[test]
    fn new_york_transitions_2026() {
        let tz = parse_time_zone("America/New_York").unwrap();
        let s = Schedule::parse("30 2 * * *", tz).unwrap();
        // Spring forward 2026-03-08: 02:00 EST -> 03:00 EDT (07:00 UTC).
        assert_eq!(at(&s, "2026-03-08"), vec!["2026-03-08T07:00:00+00:00"]);
        // Fall back 2026-11-01: 02:00 EDT -> 01:00 EST; 02:30 happens once anyway (after the
        // repeated hour), at 02:30 EST.
        assert_eq!(at(&s, "2026-11-01"), vec!["2026-11-01T07:30:00+00:00"]);
        // A 01:30 task meets the repeated hour in New York: once, at 01:30 EDT.
        let s = Schedule::parse("30 1 * * *", tz).unwrap();
        let firings = day(&s, "2026-11-01");
        assert_eq!(firings.len(), 1, "{firings:?}");
        assert_eq!(firings[0].at, utc("2026-11-01T05:30:00Z"));
        assert_eq!(firings[0].dst, Some(DstNote::OnceInRepeatedHour));
    }

    #[test]
    fn interval_schedules_follow_the_clock_through_both_transitions() {
        let tz = parse_time_zone("Europe/Berlin").unwrap();
        let hourly = Schedule::parse("0 * * * *", tz).unwrap();
        // 23 hours on the spring-forward day, 25 on the fall-back day.
        assert_eq!(day(&hourly, "2026-03-29").len(), 23);
        let fall = day(&hourly, "2026-10-25");
        assert_eq!(fall.len(), 25);
        let doubled: Vec<_> = fall.iter().filter(|f| f.dst.is_some()).collect();
        assert_eq!(doubled.len(), 2, "02:00 CEST and 02:00 CET");
        assert_eq!(doubled[0].dst, Some(DstNote::RepeatedHour { second: false }));
        assert_eq!(doubled[1].dst, Some(DstNote::RepeatedHour { second: true }));
        // The gap costs the hourly schedule its 02:00 firing, and the preview can say so.
        let lost = hourly.lost_in_gaps(utc("2026-03-28T00:00:00Z"), utc("2026-03-30T00:00:00Z"));
        assert_eq!(lost.len(), 1);
        assert_eq!(lost[0].1, 1);
        assert_eq!(lost[0].0.with_timezone(&Utc), utc("2026-03-29T01:00:00Z"));
    }

    #[test]
    fn six_fields_are_seconds_and_the_next_firing_is_strictly_after() {
        let s = Schedule::parse("*/2 * * * * *", chrono_tz::UTC).unwrap();
        let t = utc("2026-11-28T02:00:00Z");
        assert_eq!(s.next_after(t), Some(utc("2026-11-28T02:00:02Z")));
        assert_eq!(s.firings(t, utc("2026-11-28T02:00:10Z"), 100).len(), 5);
    }

    #[test]
    fn bad_expressions_say_why() {
        let err = Schedule::parse("0 25 * * *", chrono_tz::UTC).unwrap_err();
        assert!(err.contains("\"0 25 * * *\" is not a cron expression"), "{err}");
        let err = Schedule::parse("0 2 * *", chrono_tz::UTC).unwrap_err();
        assert!(err.contains("has 4 fields"), "{err}");
        let err = Schedule::parse("0 0 0 30 2 * 2027", chrono_tz::UTC).unwrap_err();
        assert!(err.contains("has 7 fields"), "{err}");
        let err = Schedule::parse("0 0 30 2 *", chrono_tz::UTC).unwrap_err();
        assert!(err.contains("never fires"), "{err}");
        assert!(parse_time_zone("Europe/Atlantis").unwrap_err().contains("not an IANA time zone"));
    }
}
