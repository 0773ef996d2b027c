//! The time-based split: train on the older part of the window, hold out the newest days.

use caretaker_core::config::TrainingSpec;
use caretaker_core::events::LabelledEvents;
use caretaker_core::report::SplitSummary;
use caretaker_quality::SampleSummary;
use chrono::{DateTime, Duration, Utc};

pub(crate) struct TimeSplit {
    pub train: LabelledEvents,
    pub holdout: LabelledEvents,
    pub window_from: DateTime<Utc>,
    pub holdout_from: DateTime<Utc>,
    /// With `training.max_rows`, when the quality stage sampled the clean rows.
    pub sample: Option<SampleSummary>,
}

impl TimeSplit {
    /// The split as report.json gives it; `train_hash` is `train.content_hash()`.
    pub fn summary(&self, train_hash: String) -> SplitSummary {
        SplitSummary {
            train_rows: self.train.len() as u64,
            holdout_rows: self.holdout.len() as u64,
            train_positive_rate: rate(&self.train),
            holdout_positive_rate: rate(&self.holdout),
            holdout_from: self.holdout_from,
            window_from: self.window_from,
            train_hash,
            sampled_from: self.sample.map(|s| s.from_rows),
            sample_seed: self.sample.map(|s| s.seed),
        }
    }
}

fn rate(events: &LabelledEvents) -> f64 {
    if events.is_empty() { 0.0 } else { events.positives() as f64 / events.len() as f64 }
}

/// Rows from `window_days` before the newest event up to `holdout_days` before it train; the rows
/// after that are the holdout. Windows are anchored at the newest event, not at the wall clock, so
/// a late or replayed dataset still splits the same way. `newest` is the newest clean row's
/// timestamp when `events` are the quality stage's `sample` of the clean rows (`training.max_rows`),
/// which may have left it out; `None`: the newest of `events`.
pub(crate) fn split(
    events: &LabelledEvents,
    newest: Option<i64>,
    sample: Option<SampleSummary>,
    spec: &TrainingSpec,
) -> Option<TimeSplit> {
    if events.is_empty() {
        return None;
    }
    let newest = newest.or_else(|| events.timestamps.iter().max().copied())?;
    let newest = DateTime::from_timestamp_micros(newest)?;
    let holdout_from = newest - Duration::days(spec.holdout_days as i64);
    let window_from = newest - Duration::days(spec.window_days as i64);
    let (h, w) = (holdout_from.timestamp_micros(), window_from.timestamp_micros());
    let mut train_rows = Vec::new();
    let mut holdout_rows = Vec::new();
    for (i, &t) in events.timestamps.iter().enumerate() {
        if t > h {
            holdout_rows.push(i);
        } else if t > w {
            train_rows.push(i);
        }
    }
    Some(TimeSplit {
        train: events.take(&train_rows),
        holdout: events.take(&holdout_rows),
        window_from,
        holdout_from,
        sample,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_days_are_held_out_and_older_rows_fall_outside_the_window() {
        let day = 86_400_000_000i64;
        let events = LabelledEvents {
            timestamps: vec![0, 10 * day, 50 * day, 55 * day, 60 * day],
            labels: vec![true, false, true, false, true],
            numeric: vec![],
            categorical: vec![],
        };
        let spec = TrainingSpec {
            window_days: 30,
            holdout_days: 7,
            seed: 1,
            min_rows: 1,
            one_hot_max_levels: 5,
            validation_days: 7,
            tune_threshold: false,
            max_rows: None,
        };
        let s = split(&events, None, None, &spec).unwrap();
        assert_eq!(s.train.timestamps, vec![50 * day]);
        assert_eq!(s.holdout.timestamps, vec![55 * day, 60 * day]);
        assert_eq!(s.summary(String::new()).sampled_from, None);
        // Anchored at a newer row the sample left out, the windows move with it.
        let s = split(&events, Some(62 * day), None, &spec).unwrap();
        assert_eq!(s.holdout.timestamps, vec![60 * day]);
        assert_eq!(s.train.timestamps, vec![50 * day, 55 * day]);
    }
}
