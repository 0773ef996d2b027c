//! The two-sample Kolmogorov-Smirnov statistic and the PSI bin counts of one numeric feature's two
//! drift windows, exact, without sorting the windows.
//!
//! The statistic is the largest `|i/n - j/m|` over the distinct values `x` of both windows, where
//! `i` and `j` count the values at or below `x` in each. Values are counted into buckets of equal
//! width between the smallest and the largest value. A bucket's counts give the exact term at its
//! last value, and bound every term inside it (a division, a subtraction and `abs` of floating
//! point numbers are monotone in their arguments). Only the buckets whose bound exceeds the best
//! term found are searched further, the same way, until few enough values are left to sort. The
//! terms are computed by the same expression as on sorted slices ([`ks_statistic`]), and a maximum
//! does not depend on the order it is taken in, so the statistic is the same to the bit.
//!
//! A bin count is the number of values below an edge: the buckets below the edge's own bucket,
//! plus the values of that bucket below the edge, compared one by one.

/// Values below this many (both windows together) are sorted instead of bucketed.
const SORT_BELOW: usize = 128;
/// Bucketing levels before the rest is sorted (adversarial spacing cannot recurse for long).
const MAX_DEPTH: u32 = 6;

/// The two-sample Kolmogorov-Smirnov statistic of two slices sorted ascending (in
/// `f64::total_cmp`'s order, or any order in which equal values are adjacent).
pub fn ks_statistic(a: &[f64], b: &[f64]) -> f64 {
    if a.is_empty() || b.is_empty() {
        return f64::NAN;
    }
    let mut search = Search { n: a.len() as f64, m: b.len() as f64, best: 0.0 };
    search.sorted(a, b, 0, 0);
    search.best
}

fn counts_from_below(below: Vec<u64>, len: usize) -> Vec<u64> {
    let mut counts = Vec::with_capacity(below.len() + 1);
    let mut previous = 0;
    for b in below {
        counts.push(b.saturating_sub(previous));
        previous = previous.max(b);
    }
    counts.push((len as u64).saturating_sub(previous));
    counts
}

/// What drift measures of a numeric feature: the KS statistic, and the bin counts of each window
/// for `edges` (ascending).
#[derive(Debug, PartialEq)]
pub struct Measured {
    pub ks: f64,
    pub reference_counts: Vec<u64>,
    pub current_counts: Vec<u64>,
}

/// [`ks_statistic`] and the bin counts of `reference` and `current`, in any order. The quality
/// pass quarantines NaN and infinities, so the windows are finite; should one not be, both are
/// sorted instead (in `f64::total_cmp`'s order: a NaN then counts as above every edge).
pub fn measure(reference: &[f64], current: &[f64], edges: &[f64]) -> Measured {
    let mut search = Search { n: reference.len() as f64, m: current.len() as f64, best: 0.0 };
    let empty = reference.is_empty() || current.is_empty();
    let (below_a, below_b) = match joint_range(reference, current) {
        Some(range) if !empty => search.bucketed(reference, current, range, 0, 0, 0, edges),
        _ => search.by_sorting(reference, current, 0, 0, edges),
    };
    Measured {
        ks: if empty { f64::NAN } else { search.best },
        reference_counts: counts_from_below(below_a, reference.len()),
        current_counts: counts_from_below(below_b, current.len()),
    }
}

/// The smallest and the largest value of `a` and `b`, unless one is not finite or there is none.
fn joint_range(a: &[f64], b: &[f64]) -> Option<(f64, f64)> {
    // Eight lanes, so that the loop vectorises. A NaN fails both comparisons and never becomes a
    // bound; `v * 0.0` is 0 for a finite value and NaN for NaN or an infinity, and a NaN in the sum
    // stays.
    const LANES: usize = 8;
    let (mut lo, mut hi, mut finite) = ([f64::INFINITY; LANES], [f64::NEG_INFINITY; LANES], [0.0; LANES]);
    for values in [a, b] {
        let chunks = values.chunks_exact(LANES);
        let rest = chunks.remainder();
        for chunk in chunks {
            for k in 0..LANES {
                let v = chunk[k];
                lo[k] = if v < lo[k] { v } else { lo[k] };
                hi[k] = if v > hi[k] { v } else { hi[k] };
                finite[k] += v * 0.0;
            }
        }
        for (k, &v) in rest.iter().enumerate() {
            lo[k] = if v < lo[k] { v } else { lo[k] };
            hi[k] = if v > hi[k] { v } else { hi[k] };
            finite[k] += v * 0.0;
        }
    }
    let lo = lo.into_iter().fold(f64::INFINITY, f64::min);
    let hi = hi.into_iter().fold(f64::NEG_INFINITY, f64::max);
    (finite.iter().sum::<f64>() == 0.0 && lo.is_finite() && hi.is_finite()).then_some((lo, hi))
}

/// The values of one bucket of both windows: the first one seen and how often each window holds
/// it, then the others, so that a bucket of one repeated value (an integer feature's) is counted,
/// not copied.
#[derive(Default)]
struct Members {
    first: Option<f64>,
    same: [u64; 2],
    others: [Vec<f64>; 2],
}

impl Members {
    fn push(&mut self, side: usize, v: f64) {
        match self.first {
            Some(first) if first == v => self.same[side] += 1,
            Some(_) => self.others[side].push(v),
            None => {
                self.first = Some(v);
                self.same[side] += 1;
            }
        }
    }

    /// How many values of a window lie below `edge`.
    fn below(&self, side: usize, edge: f64) -> u64 {
        let first = self.first.map_or(0, |f| if f < edge { self.same[side] } else { 0 });
        first + self.others[side].iter().filter(|&&v| v < edge).count() as u64
    }

    /// Both windows' values, unless they are all one value.
    fn values(self) -> Option<(Vec<f64>, Vec<f64>)> {
        let first = self.first?;
        let [mut a, mut b] = self.others;
        if a.is_empty() && b.is_empty() {
            return None;
        }
        a.extend(std::iter::repeat_n(first, self.same[0] as usize));
        b.extend(std::iter::repeat_n(first, self.same[1] as usize));
        Some((a, b))
    }
}

struct Search {
    n: f64,
    m: f64,
    /// The largest term found so far.
    best: f64,
}

/// A bucket's place: the values of both windows below it, and the bound of its terms.
struct Candidate {
    bucket: usize,
    i: usize,
    j: usize,
    bound: f64,
}

impl Search {
    fn term(&self, i: usize, j: usize) -> f64 {
        (i as f64 / self.n - j as f64 / self.m).abs()
    }

    /// The signed term, whose bounds over a bucket bound the term.
    fn signed(&self, i: usize, j: usize) -> f64 {
        i as f64 / self.n - j as f64 / self.m
    }

    /// The terms at the distinct values of `a` and `b` (sorted), `i0` and `j0` values of each
    /// window lying below them.
    fn sorted(&mut self, a: &[f64], b: &[f64], i0: usize, j0: usize) {
        let (mut i, mut j) = (0, 0);
        while i < a.len() || j < b.len() {
            let x = match (a.get(i), b.get(j)) {
                (Some(&x), Some(&y)) => {
                    if x <= y {
                        x
                    } else {
                        y
                    }
                }
                (Some(&x), None) | (None, Some(&x)) => x,
                (None, None) => unreachable!("the loop stops first"),
            };
            let (i_was, j_was) = (i, j);
            while i < a.len() && a[i] <= x {
                i += 1;
            }
            while j < b.len() && b[j] <= x {
                j += 1;
            }
            if (i, j) == (i_was, j_was) {
                // A NaN equals nothing, not even itself: step past it.
                if a.get(i).is_some_and(|v| v.is_nan()) {
                    i += 1;
                } else {
                    j += 1;
                }
            }
            self.best = self.best.max(self.term(i0 + i, j0 + j));
        }
    }

    /// [`Search::sorted`] on sorted copies of `a` and `b`; and, for each of `edges`, how many
    /// values of `a` and of `b` lie below it.
    fn by_sorting(&mut self, a: &[f64], b: &[f64], i0: usize, j0: usize, edges: &[f64]) -> (Vec<u64>, Vec<u64>) {
        let (mut a, mut b) = (a.to_vec(), b.to_vec());
        a.sort_unstable_by(f64::total_cmp);
        b.sort_unstable_by(f64::total_cmp);
        self.sorted(&a, &b, i0, j0);
        let below = |sorted: &[f64]| edges.iter().map(|&e| sorted.partition_point(|&v| v < e) as u64).collect();
        (below(&a), below(&b))
    }

    /// Searches the finite values `a` and `b`, lying in `range` with `i0` and `j0` values below
    /// them, for terms above `self.best`. Returns, for each of `edges`, how many values of `a`
    /// and of `b` lie below it.
    #[allow(clippy::too_many_arguments)]
    fn bucketed(
        &mut self,
        a: &[f64],
        b: &[f64],
        (lo, hi): (f64, f64),
        i0: usize,
        j0: usize,
        depth: u32,
        edges: &[f64],
    ) -> (Vec<u64>, Vec<u64>) {
        let below = |values: &[f64]| -> Vec<u64> {
            edges.iter().map(|&e| values.iter().filter(|&&v| v < e).count() as u64).collect()
        };
        if lo == hi {
            // One distinct value: one term.
            self.best = self.best.max(self.term(i0 + a.len(), j0 + b.len()));
            return (below(a), below(b));
        }
        // About 16 values a bucket, up to 131,072 buckets (two count arrays of 512 KiB): with fewer,
        // a narrow bulk inside a wide range (a skewed or clipped feature) leaves big buckets to
        // search further on large windows.
        let buckets = ((a.len() + b.len()) / 16).next_power_of_two().clamp(64, 1 << 17);
        let scale = buckets as f64 / (hi - lo);
        // (The bucket counts are u32: more values than that are sorted too.)
        let sort = a.len() + b.len() < SORT_BELOW || a.len() + b.len() > u32::MAX as usize;
        if sort || depth >= MAX_DEPTH || !(scale.is_finite() && scale > 0.0) {
            return self.by_sorting(a, b, i0, j0, edges);
        }
        // Monotone in the value: a smaller value never lands in a later bucket.
        let last = buckets as i64 - 1;
        let bucket = move |v: f64| (((v - lo) * scale) as i64).clamp(0, last) as usize;
        let (mut count_a, mut count_b) = (vec![0u32; buckets], vec![0u32; buckets]);
        a.iter().for_each(|&v| count_a[bucket(v)] += 1);
        b.iter().for_each(|&v| count_b[bucket(v)] += 1);

        // Every bucket's last term, and the bound of the others.
        let mut candidates = Vec::with_capacity(buckets);
        let (mut i, mut j) = (i0, j0);
        for k in 0..buckets {
            let (ca, cb) = (count_a[k] as usize, count_b[k] as usize);
            if ca + cb == 0 {
                continue;
            }
            let bound = self.signed(i + ca, j).max(-self.signed(i, j + cb));
            candidates.push(Candidate { bucket: k, i, j, bound });
            i += ca;
            j += cb;
            self.best = self.best.max(self.term(i, j));
        }
        candidates.retain(|c| c.bound > self.best && count_a[c.bucket] + count_b[c.bucket] > 1);

        // The values of the buckets still in question, and of the edges' buckets, by slot: the
        // candidates' first, then the edge buckets that are not candidates. A bucket's tag is its
        // slot, or NONE.
        const NONE: u32 = u32::MAX;
        let mut tag = vec![NONE; buckets];
        let mut slots: Vec<usize> = candidates.iter().map(|c| c.bucket).collect();
        let edge_bucket: Vec<Option<usize>> = edges.iter().map(|&e| (e > lo && e <= hi).then(|| bucket(e))).collect();
        for &k in edge_bucket.iter().flatten() {
            if !slots.contains(&k) {
                slots.push(k);
            }
        }
        for (s, &k) in slots.iter().enumerate() {
            tag[k] = s as u32;
        }
        let mut members: Vec<Members> = slots.iter().map(|_| Members::default()).collect();
        if !slots.is_empty() {
            for (side, values) in [a, b].into_iter().enumerate() {
                for &v in values {
                    let t = tag[bucket(v)];
                    if t != NONE {
                        members[t as usize].push(side, v);
                    }
                }
            }
        }
        let mut edge_below = [vec![0u64; edges.len()], vec![0u64; edges.len()]];
        for (e, k) in edge_bucket.iter().enumerate() {
            if let Some(k) = k {
                let m = &members[tag[*k] as usize];
                for (side, below) in edge_below.iter_mut().enumerate() {
                    below[e] = m.below(side, edges[e]);
                }
            }
        }
        let counts_below = |counts: &[u32], side: usize| -> Vec<u64> {
            edges
                .iter()
                .enumerate()
                .map(|(e, &edge)| match edge_bucket[e] {
                    Some(k) => counts[..k].iter().map(|&c| c as u64).sum::<u64>() + edge_below[side][e],
                    None if edge > hi => counts.iter().map(|&c| c as u64).sum(),
                    None => 0,
                })
                .collect()
        };
        let result = (counts_below(&count_a, 0), counts_below(&count_b, 1));
        drop((count_a, count_b, tag));

        // The most promising buckets first: the higher the best term, the fewer left to search.
        let mut order: Vec<usize> = (0..candidates.len()).collect();
        order.sort_by(|&x, &y| candidates[y].bound.total_cmp(&candidates[x].bound));
        for s in order {
            let c = &candidates[s];
            if c.bound > self.best {
                // A bucket of one distinct value has one term, at its end, already taken.
                if let Some((ma, mb)) = std::mem::take(&mut members[s]).values() {
                    let range = joint_range(&ma, &mb).expect("a bucket of finite values, two at least");
                    self.bucketed(&ma, &mb, range, c.i, c.j, depth + 1, &[]);
                }
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use caretaker_core::rng::SplitMix64;

    fn uniform(rng: &mut SplitMix64) -> f64 {
        (rng.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// The reference: KS on both windows sorted, and each value put in its bin, the bin of the
    /// number of edges at or below it (numpy's `searchsorted(side="right")`).
    fn by_sorting(a: &[f64], b: &[f64], edges: &[f64]) -> Measured {
        let binned = |values: &[f64]| {
            let mut counts = vec![0u64; edges.len() + 1];
            values.iter().for_each(|&v| counts[edges.partition_point(|&e| e <= v)] += 1);
            counts
        };
        let (mut sa, mut sb) = (a.to_vec(), b.to_vec());
        sa.sort_by(f64::total_cmp);
        sb.sort_by(f64::total_cmp);
        let ks = ks_statistic(&sa, &sb);
        assert_eq!(ks.to_bits(), merged(&sa, &sb).to_bits());
        Measured { ks, reference_counts: binned(a), current_counts: binned(b) }
    }

    /// The statistic as the previous release computed it: a merge of the sorted windows that
    /// stops when either runs out.
    fn merged(a: &[f64], b: &[f64]) -> f64 {
        let (n, m) = (a.len() as f64, b.len() as f64);
        let (mut i, mut j, mut d) = (0usize, 0usize, 0.0f64);
        while i < a.len() && j < b.len() {
            let x = if a[i] <= b[j] { a[i] } else { b[j] };
            while i < a.len() && a[i] <= x {
                i += 1;
            }
            while j < b.len() && b[j] <= x {
                j += 1;
            }
            d = d.max((i as f64 / n - j as f64 / m).abs());
        }
        d
    }

    #[test]
    fn ks_matches_scipy() {
        // scipy.stats.ks_2samp([1, 2, 3, 4], [3, 4, 5, 6, 7]).statistic = 0.6
        let (a, b) = ([1.0, 2.0, 3.0, 4.0], [3.0, 4.0, 5.0, 6.0, 7.0]);
        assert!((ks_statistic(&a, &b) - 0.6).abs() < 1e-12);
        assert_eq!(measure(&[4.0, 2.0, 3.0, 1.0], &[7.0, 3.0, 6.0, 4.0, 5.0], &[]).ks, ks_statistic(&a, &b));
        assert_eq!(ks_statistic(&[1.0, 2.0], &[1.0, 2.0]), 0.0);
        assert!(ks_statistic(&[], &[1.0]).is_nan());
    }

    #[test]
    fn bucketed_windows_give_the_sorted_statistic_and_counts_to_the_bit() {
        // Shapes that bucket badly and well: shifted normals-ish sums, heavy tails, ties on few
        // values, both zeros, a single far value, all equal, counts with a few fractions among
        // them (buckets of one repeated value beside buckets that mix it with others), and sizes
        // either side of the sort threshold.
        let mut rng = SplitMix64::new(11);
        let mut cases = 0;
        for size in [3usize, 90, 100, 2_100, 20_000, 120_000] {
            for shape in 0..8 {
                let draw = |rng: &mut SplitMix64, shift: f64| -> f64 {
                    let u = uniform(rng);
                    match shape {
                        0 => (0..4).map(|_| uniform(rng)).sum::<f64>() + shift,
                        1 => (1.0 / (1.0 - u)).powf(3.0) + shift * 10.0,
                        2 => ((u * 5.0).floor() - 2.0) * (1.0 + shift),
                        3 => {
                            if u < 0.5 {
                                -0.0
                            } else {
                                0.0
                            }
                        }
                        4 => {
                            if u < 1e-3 {
                                1e300
                            } else {
                                u + shift
                            }
                        }
                        5 => 7.25,
                        6 => (u - 0.5) * 1e-300 + shift * 1e-301,
                        _ => {
                            if u < 0.9 {
                                (u * 16.0).floor() + (shift * 20.0).floor()
                            } else {
                                u * 15.0
                            }
                        }
                    }
                };
                let a: Vec<f64> = (0..size).map(|_| draw(&mut rng, 0.0)).collect();
                let b: Vec<f64> = (0..size / 3 + 1).map(|_| draw(&mut rng, 0.05)).collect();
                let mut edges = crate::checks::quantiles(&a, &[0.1, 0.25, 0.5, 0.75, 0.9]);
                edges.dedup();
                edges.extend([f64::MAX]);
                edges.insert(0, -1e308);
                for (x, y) in [(&a, &b), (&b, &a), (&a, &a)] {
                    let got = measure(x, y, &edges);
                    let want = by_sorting(x, y, &edges);
                    assert_eq!(got.ks.to_bits(), want.ks.to_bits(), "size {size}, shape {shape}");
                    assert_eq!(got, want, "size {size}, shape {shape}");
                    cases += 1;
                }
            }
        }
        assert_eq!(cases, 144);
    }

    #[test]
    fn windows_with_nan_or_infinity_are_sorted_instead() {
        let (a, b) = ([1.0, 3.0, f64::INFINITY, -1.0], [0.5, 2.0, f64::NEG_INFINITY]);
        assert_eq!(measure(&a, &b, &[0.0, 2.0]), by_sorting(&a, &b, &[0.0, 2.0]));
        // NaNs (never in a window: the pass quarantines them) neither hang nor panic.
        let (a, b) = ([f64::NAN, 1.0, -f64::NAN], [f64::NAN, 2.0]);
        let m = measure(&a, &b, &[1.5]);
        assert!((0.0..=1.0).contains(&m.ks), "{m:?}");
        assert_eq!(m.current_counts, vec![0, 2]);
    }

    #[test]
    fn a_value_on_an_edge_counts_in_the_upper_bin() {
        let a: Vec<f64> = (0..10_000).map(|i| (i % 10) as f64).collect();
        let m = measure(&a, &a, &[1.0, 2.0, 9.0]);
        assert_eq!(m.reference_counts, vec![1_000, 1_000, 7_000, 1_000]);
        assert_eq!(m.ks, 0.0);
    }
}
