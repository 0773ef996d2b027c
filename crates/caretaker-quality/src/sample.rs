//! `training.max_rows`: a seeded, label-stratified sample of the clean rows, drawn as they stream,
//! so that a run holds about `max_rows` rows however large the dataset.
//!
//! Each clean labelled row gets a draw, a 64-bit hash of its id and the seed: the same row has the
//! same draw in every run, so as the window moves the sample keeps the rows it shares with the
//! night before. During the pass a row is kept when its draw is below a threshold set from the
//! footers' row count with a margin above `max_rows` (a Bernoulli sample, about a tenth too
//! large); the pass counts every clean row by label. At the end each label keeps the rows of
//! its share of `max_rows` (rounded) with the smallest draws: a uniform sample of each label, of
//! exactly its share, in the rows' order. A label the pass kept fewer rows of than its share (more
//! rows quarantined or awaiting their label than the margin allows for; the footers count them
//! too) keeps every row it drew, which is a uniform sample of that label at the draw's rate.

use polars::prelude::*;

/// The sample a pass draws: at most `max_rows` of the clean rows, with `seed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleSpec {
    pub max_rows: usize,
    pub seed: u64,
}

impl SampleSpec {
    /// The sample `training.max_rows` asks for, if it does.
    pub fn of(training: &caretaker_core::config::TrainingSpec) -> Option<SampleSpec> {
        training.max_rows.map(|max_rows| SampleSpec { max_rows, seed: training.seed })
    }
}

/// What a sampled pass kept: `rows` of the `from_rows` clean labelled rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleSummary {
    pub rows: u64,
    pub from_rows: u64,
    pub seed: u64,
}

pub(crate) struct Sampler {
    spec: SampleSpec,
    /// A row whose draw is below this is kept during the pass (`u64::MAX`: every row).
    below: u64,
    /// The draw of each row kept, in the order kept.
    draws: Vec<u64>,
    /// Clean labelled rows seen, negatives then positives: every one, kept or not.
    seen: [u64; 2],
}

impl Sampler {
    /// A sampler for a pass over about `expected_rows` rows (the footers' count).
    pub fn new(spec: SampleSpec, expected_rows: u64) -> Sampler {
        let wanted = Sampler::wanted(spec);
        let below = if (expected_rows as f64) <= wanted {
            u64::MAX
        } else {
            (wanted / expected_rows as f64 * u64::MAX as f64) as u64
        };
        Sampler { spec, below, draws: Vec::new(), seen: [0; 2] }
    }

    /// The rows the pass keeps for `spec`, about: what the columns are sized for.
    pub fn kept_rows(spec: SampleSpec) -> u64 {
        Sampler::wanted(spec).ceil() as u64
    }

    fn wanted(spec: SampleSpec) -> f64 {
        let m = spec.max_rows as f64;
        // A tenth and six standard deviations of a binomial draw above max_rows, so that each
        // label's share is nearly always there to trim to, a few percent of the rows quarantined
        // included (the footers count those too: 5% of 100M rows of gen_data.py data with its
        // default defects left a 3% margin 2% short).
        m * 1.10 + 6.0 * m.sqrt() + 64.0
    }

    /// For the clean rows of a batch (`clean[i]`), their ids in `ids` and labels in `labels`:
    /// counts them and marks in the returned mask the ones left out of the sample.
    pub fn leave_out(&mut self, ids: &Column, labels: &[bool], clean: &[bool]) -> PolarsResult<Vec<bool>> {
        let seed = self.spec.seed;
        let draws: Vec<Option<u64>> = if ids.dtype().is_integer() {
            let ids = ids.cast(&DataType::Int64)?;
            ids.i64()?.iter().map(|id| id.map(|v| draw_integer(v, seed))).collect()
        } else {
            let ids = ids.cast(&DataType::String)?;
            ids.str()?.iter().map(|id| id.map(|v| xxhash_rust::xxh3::xxh3_64_with_seed(v.as_bytes(), seed))).collect()
        };
        let mut out = vec![false; clean.len()];
        for i in (0..clean.len()).filter(|&i| clean[i]) {
            self.seen[labels[i] as usize] += 1;
            // A clean row has an id.
            let draw = draws[i].unwrap_or(u64::MAX);
            if draw < self.below {
                self.draws.push(draw);
            } else {
                out[i] = true;
            }
        }
        Ok(out)
    }

    /// The rows kept during the pass (`labels` are theirs, in order) that stay in the sample, in
    /// order, or `None` when every one stays; and the summary for the report (`None` when the
    /// clean rows were no more than `max_rows`).
    pub fn finish(self, labels: &[bool]) -> (Option<Vec<usize>>, Option<SampleSummary>) {
        let from_rows = self.seen[0] + self.seen[1];
        let max = self.spec.max_rows as u64;
        if from_rows <= max && self.below == u64::MAX {
            return (None, None);
        }
        let kept = [labels.iter().filter(|l| !**l).count() as u64, labels.iter().filter(|l| **l).count() as u64];
        // Each label's share of max_rows, rounded, the positives' first; at most what was seen.
        let share = |seen: u64| (seen as f64 / from_rows.max(1) as f64 * max.min(from_rows) as f64).round() as u64;
        let positives = share(self.seen[1]).min(self.seen[1]);
        let target = [(max.min(from_rows) - positives).min(self.seen[0]), positives];
        // A label the draw left short of its share keeps every row it drew; the other keeps its
        // share (a rare label short by a row must not shrink the whole sample).
        let take: Vec<u64> = (0..2).map(|c| target[c].min(kept[c])).collect();
        let mut rows: Vec<usize> = Vec::with_capacity((take[0] + take[1]) as usize);
        for (c, &n) in take.iter().enumerate() {
            let mut of_label: Vec<(u64, usize)> =
                (0..labels.len()).filter(|&i| labels[i] as usize == c).map(|i| (self.draws[i], i)).collect();
            let n = n as usize;
            if n < of_label.len() {
                of_label.select_nth_unstable(n);
                of_label.truncate(n);
            }
            rows.extend(of_label.into_iter().map(|(_, i)| i));
        }
        rows.sort_unstable();
        let summary = SampleSummary { rows: rows.len() as u64, from_rows, seed: self.spec.seed };
        if rows.len() == labels.len() { (None, Some(summary)) } else { (Some(rows), Some(summary)) }
    }
}

/// An integer id's draw: SplitMix64's finaliser of the id mixed with the seed.
fn draw_integer(id: i64, seed: u64) -> u64 {
    let mut z = (id as u64 ^ seed.rotate_left(32)).wrapping_add(seed).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sample of `n` rows with integer ids `0..n`, a positive every `every`th, in batches of
    /// 1,000 rows of which `clean` says which are clean; returns the ids kept, in order.
    fn sample(n: i64, every: i64, spec: SampleSpec, expected: u64, clean: impl Fn(i64) -> bool) -> Vec<i64> {
        let mut sampler = Sampler::new(spec, expected);
        let (mut kept_ids, mut kept_labels) = (Vec::new(), Vec::new());
        for start in (0..n).step_by(1_000) {
            let ids: Vec<i64> = (start..(start + 1_000).min(n)).collect();
            let labels: Vec<bool> = ids.iter().map(|i| i % every == 0).collect();
            let mask: Vec<bool> = ids.iter().map(|&i| clean(i)).collect();
            let column = Column::new("id".into(), &ids);
            let out = sampler.leave_out(&column, &labels, &mask).unwrap();
            for (k, &id) in ids.iter().enumerate() {
                if mask[k] && !out[k] {
                    kept_ids.push(id);
                    kept_labels.push(labels[k]);
                }
            }
        }
        let (rows, _) = sampler.finish(&kept_labels);
        match rows {
            Some(rows) => rows.into_iter().map(|i| kept_ids[i]).collect(),
            None => kept_ids,
        }
    }

    #[test]
    fn each_label_keeps_its_share_to_a_row_and_the_same_seed_draws_the_same_rows() {
        let spec = SampleSpec { max_rows: 2_000, seed: 5 };
        let kept = sample(50_000, 4, spec, 50_000, |_| true);
        assert_eq!(kept.len(), 2_000);
        assert_eq!(kept.iter().filter(|i| *i % 4 == 0).count(), 500, "a quarter are positive, as in the data");
        assert!(kept.windows(2).all(|w| w[0] < w[1]), "rows stay in their order");
        assert!(kept.first() < Some(&5_000) && kept.last() > Some(&45_000), "drawn from the whole pass");
        assert_eq!(sample(50_000, 4, spec, 50_000, |_| true), kept);
        let other = sample(50_000, 4, SampleSpec { seed: 6, ..spec }, 50_000, |_| true);
        assert_ne!(other, kept);
    }

    #[test]
    fn a_row_stays_in_the_sample_when_the_rows_around_it_change() {
        // The draw is the id's: half the rows gone, the rows of the smaller sample are nearly
        // all rows the larger one kept.
        let spec = SampleSpec { max_rows: 1_000, seed: 1 };
        let all = sample(20_000, 3, spec, 20_000, |_| true);
        let newer: std::collections::HashSet<i64> =
            sample(20_000, 3, SampleSpec { max_rows: 500, ..spec }, 10_000, |i| i >= 10_000).into_iter().collect();
        let shared = all.iter().filter(|i| newer.contains(i)).count();
        assert!(shared >= 400, "{shared} of the 500 (about 25 if the draws were not the ids')");
    }

    #[test]
    fn few_rows_are_not_sampled_and_many_quarantined_keep_the_shares() {
        let spec = SampleSpec { max_rows: 5_000, seed: 2 };
        assert_eq!(sample(4_000, 4, spec, 4_000, |_| true).len(), 4_000);
        // The footers announce 40,000 rows, but four in five are quarantined: the pass kept
        // fewer than 5,000, every one of them stays (a uniform draw of each label), and the
        // shares hold but for the draw's noise.
        let kept = sample(40_000, 4, spec, 40_000, |i| i % 5 == 0);
        assert!(kept.len() < 5_000 && kept.len() > 800, "{}", kept.len());
        let positives = kept.iter().filter(|i| *i % 4 == 0).count() as f64;
        assert!((positives / kept.len() as f64 - 0.25).abs() < 0.05, "{positives} of {}", kept.len());
        // A rare label short of its share does not shrink the other: 10 positives in 50,000
        // rows, a share of 1 in a sample of 5,000.
        let spec = SampleSpec { max_rows: 5_000, seed: 9 };
        let kept = sample(50_000, 5_000, spec, 50_000, |_| true);
        assert!(kept.len() >= 4_999, "{}", kept.len());
    }

    #[test]
    fn text_ids_are_drawn_by_their_bytes() {
        let spec = SampleSpec { max_rows: 100, seed: 3 };
        let mut sampler = Sampler::new(spec, 10_000);
        let ids: Vec<String> = (0..10_000).map(|i| format!("ev-{i}")).collect();
        let column = Column::new("id".into(), &ids);
        let labels = vec![false; ids.len()];
        let out = sampler.leave_out(&column, &labels, &vec![true; ids.len()]).unwrap();
        let kept = out.iter().filter(|o| !**o).count();
        assert!((200..=300).contains(&kept), "{kept}");
        let (rows, summary) = sampler.finish(&vec![false; kept]);
        assert_eq!(rows.map(|r| r.len()), Some(100));
        assert_eq!(summary, Some(SampleSummary { rows: 100, from_rows: 10_000, seed: 3 }));
    }
}
