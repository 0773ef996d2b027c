//! The time-based split: train on the older part of the window, hold out the newest days.

use caretaker_core::config::TrainingSpec;
use caretaker_core::events::LabelledEvents;
use caretaker_core::report::SplitSummary;
use chrono::{DateTime, Duration, Utc};

pub(crate) struct TimeSplit {
    pub train: LabelledEvents,
    pub holdout: LabelledEvents,
    pub window_from: DateTime<Utc>,
    pub holdout_from: DateTime<Utc>,
    /// The training rows of the window before `training.max_rows` sampled them, when it did.
    pub sampled_from: Option<u64>,
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
            sampled_from: self.sampled_from,
        }
    }
}

fn rate(events: &LabelledEvents) -> f64 {
    if events.is_empty() { 0.0 } else { events.positives() as f64 / events.len() as f64 }
}

/// Rows from `window_days` before the newest event up to `holdout_days` before it train; the rows
/// after that are the holdout. Windows are anchored at the newest event, not at the wall clock, so
/// a late or replayed dataset still splits the same way. Above `max_rows` training rows, a
/// sample of that many trains: each label keeps its share (to a row), drawn with `seed`, the rows
/// kept in their order. The holdout is never sampled.
pub(crate) fn split(events: &LabelledEvents, spec: &TrainingSpec) -> Option<TimeSplit> {
    let newest = *events.timestamps.iter().max()?;
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
    let mut sampled_from = None;
    if let Some(max) = spec.max_rows.filter(|&m| train_rows.len() > m) {
        sampled_from = Some(train_rows.len() as u64);
        train_rows = stratified_sample(&train_rows, &events.labels, max, spec.seed);
    }
    Some(TimeSplit {
        train: events.take(&train_rows),
        holdout: events.take(&holdout_rows),
        window_from,
        holdout_from,
        sampled_from,
    })
}

/// `size` of `rows`, each label keeping its share (rounded), drawn with `seed`, in `rows`' order.
fn stratified_sample(rows: &[usize], labels: &[bool], size: usize, seed: u64) -> Vec<usize> {
    let mut rng = caretaker_core::rng::SplitMix64::new(seed);
    let positives: Vec<usize> = rows.iter().copied().filter(|&r| labels[r]).collect();
    let negatives: Vec<usize> = rows.iter().copied().filter(|&r| !labels[r]).collect();
    let take_positive = ((positives.len() as f64 / rows.len() as f64) * size as f64).round() as usize;
    let take_positive = take_positive.min(positives.len()).min(size);
    let mut kept: Vec<usize> = rng.sample(positives.len(), take_positive).into_iter().map(|i| positives[i]).collect();
    kept.extend(rng.sample(negatives.len(), size - take_positive).into_iter().map(|i| negatives[i]));
    kept.sort_unstable();
    kept
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
        let s = split(&events, &spec).unwrap();
        assert_eq!(s.train.timestamps, vec![50 * day]);
        assert_eq!(s.holdout.timestamps, vec![55 * day, 60 * day]);
        assert_eq!(s.sampled_from, None);
    }

    #[test]
    fn above_max_rows_the_training_rows_are_a_stratified_seeded_sample_and_the_holdout_is_whole() {
        let minute = 60_000_000i64;
        let n = 10_000;
        // A positive every fourth row; the last 1,000 rows are the holdout (newest day).
        let events = LabelledEvents {
            timestamps: (0..n as i64).map(|i| i * minute * 3).collect(),
            labels: (0..n).map(|i| i % 4 == 0).collect(),
            numeric: vec![],
            categorical: vec![],
        };
        let mut spec = TrainingSpec {
            window_days: 60,
            holdout_days: 2,
            seed: 5,
            min_rows: 1,
            one_hot_max_levels: 5,
            validation_days: 1,
            tune_threshold: false,
            max_rows: Some(2_000),
        };
        let s = split(&events, &spec).unwrap();
        let whole = split(&events, &TrainingSpec { max_rows: None, ..spec.clone() }).unwrap();
        assert_eq!(s.sampled_from, Some(whole.train.len() as u64));
        assert_eq!(s.train.len(), 2_000);
        assert_eq!(s.train.positives(), 500, "the positive share is kept");
        assert_eq!(s.holdout, whole.holdout);
        assert!(s.train.timestamps.windows(2).all(|w| w[0] < w[1]), "rows stay in their order");
        assert_eq!(split(&events, &spec).unwrap().train, s.train, "the same seed, the same sample");
        spec.seed = 6;
        assert_ne!(split(&events, &spec).unwrap().train, s.train);
    }
}
