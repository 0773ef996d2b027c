//! Gradient boosting on the binned window, as scikit-learn's HistGradientBoostingClassifier does it.
//!
//! Each round fits a tree to the gradients of the log loss: the node's split comes from
//! histograms of gradient and hessian sums over the bins of the shared window
//! ([`crate::binned`]), the smaller child's histogram is built and the larger's is the parent's
//! minus it, and the tree grows leaf by leaf, always splitting the leaf whose best split gains
//! most, up to `max_leaf_nodes` leaves. The defaults and rules are scikit-learn's: a baseline at
//! the log-odds of the positive rate, a learning rate of 0.1, at most 100 rounds and 31 leaves,
//! at least 20 rows and a hessian of 1e-3 on each side of a split, the gain
//! `G_L^2/(H_L+l2) + G_R^2/(H_R+l2) - G^2/(H+l2)` (positive to split), leaf steps of
//! `-learning_rate * G / (H + l2)`. With early stopping (by default above 10,000 rows) a seeded,
//! label-stratified tenth of the rows is held out and the rounds stop once its log loss has not
//! improved by 1e-7 in 10 rounds.
//!
//! Why not a library: perpetual (the pure-Rust booster) builds on stable only as a release
//! candidate (3.0.0-rc.2; every 1.x and 2.x release declares a nightly feature), and on the
//! nightly benchmark's 759,004 training rows it took 228 s at its default budget, with a 169 MB
//! model, where scikit-learn's HistGradientBoostingClassifier took 29 s (perpetual's own Python
//! build: 29-185 s for budgets 0.1-0.5, F1 0.830-0.849 against 0.861). Boosting on the window the
//! tree families already share costs no second binning and no second copy of the rows.
//!
//! Sums are taken in row order, one feature per thread, so the threads do not change them, and
//! the same rows and seed give the same model.

use crate::binned::{BinnedWindow, FeatureKind, Split};
use crate::hist_tree::{Grown, Layout};
use crate::trees::{FlatNode, FlatTree};
use caretaker_core::events::FeatureMatrix;
use caretaker_core::rng::SplitMix64;
use serde::{Deserialize, Serialize};

/// How the boosting fits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BoostParams {
    pub learning_rate: f64,
    pub max_iterations: usize,
    pub max_leaf_nodes: usize,
    pub max_depth: Option<usize>,
    pub min_samples_leaf: usize,
    pub l2_regularization: f64,
    /// Whether a share of the rows is held out to stop the rounds early.
    pub early_stopping: bool,
    pub validation_fraction: f64,
    pub n_iter_no_change: usize,
}

/// A smaller improvement of the held-out score than this does not count (scikit-learn's `tol`).
const TOLERANCE: f64 = 1e-7;
/// The least hessian on each side of a split (scikit-learn's `min_hessian_to_split`).
const MIN_HESSIAN: f64 = 1e-3;
/// Nodes with at least this many rows build their histograms on all cores.
const PARALLEL_MIN_ROWS: usize = 50_000;

/// A fitted boosting model: a row's log-odds are the baseline plus each tree's step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Boosted {
    pub baseline: f64,
    pub trees: Vec<FlatTree>,
    /// Rounds run, and whether early stopping ended them before `max_iterations`.
    pub rounds: usize,
    pub stopped_early: bool,
}

impl Boosted {
    pub fn predict_proba(&self, x: &FeatureMatrix) -> Vec<f64> {
        let mut raw = vec![self.baseline; x.rows];
        for tree in &self.trees {
            tree.predict_into(x, &mut raw);
        }
        raw.into_iter().map(sigmoid).collect()
    }
}

/// A boosting fit in bin space: the model and each tree's bin splits.
pub(crate) struct BoostedFit {
    pub model: Boosted,
    pub grown: Vec<Grown>,
}

impl BoostedFit {
    /// The probabilities of rows `rows` of the window.
    pub fn predict_binned(&self, window: &BinnedWindow, rows: &[u32]) -> Vec<f64> {
        let mut raw = vec![self.model.baseline; rows.len()];
        for tree in &self.grown {
            tree.add_binned(window, rows, &mut raw);
        }
        raw.into_iter().map(sigmoid).collect()
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// The mean log loss of raw scores `raw` for labels `labels`.
fn log_loss(raw: &[f64], labels: impl Iterator<Item = bool>) -> f64 {
    let (mut sum, mut n) = (0.0, 0usize);
    for (&r, y) in raw.iter().zip(labels) {
        // log(1 + e^r) - y r, computed without overflow.
        let softplus = if r > 0.0 { r + (-r).exp().ln_1p() } else { r.exp().ln_1p() };
        sum += softplus - if y { r } else { 0.0 };
        n += 1;
    }
    sum / n.max(1) as f64
}

/// One histogram bin: gradient and hessian sums and the rows in it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct GradBin {
    g: f64,
    h: f64,
    n: u32,
}

impl GradBin {
    fn minus(&self, other: &GradBin) -> GradBin {
        GradBin { g: self.g - other.g, h: self.h - other.h, n: self.n - other.n }
    }

    fn add(&mut self, other: &GradBin) {
        self.g += other.g;
        self.h += other.h;
        self.n += other.n;
    }
}

/// Fits the boosting on rows `pool` (ascending) of `window`.
pub(crate) fn fit(window: &BinnedWindow, pool: &[u32], params: &BoostParams, seed: u64, threads: usize) -> BoostedFit {
    let (train, held_out) = if params.early_stopping {
        stratified_split(pool, &window.labels, params.validation_fraction, seed)
    } else {
        (pool.to_vec(), Vec::new())
    };
    let positives = train.iter().filter(|&&r| window.labels[r as usize]).count() as f64;
    let rate = (positives / train.len().max(1) as f64).clamp(1e-15, 1.0 - 1e-15);
    let baseline = (rate / (1.0 - rate)).ln();
    // Scores, gradients and hessians by row number (rows outside `train` stay unused).
    let mut raw = vec![0.0; window.rows];
    train.iter().for_each(|&r| raw[r as usize] = baseline);
    let mut g = vec![0.0; window.rows];
    let mut h = vec![0.0; window.rows];
    let mut held_raw = vec![baseline; held_out.len()];
    let held_labels = || held_out.iter().map(|&r| window.labels[r as usize]);
    let mut scores = vec![-log_loss(&held_raw, held_labels())];
    let layout = Layout::new(window);
    let mut grower = LeafGrower { window, params, layout: &layout, rows: train.clone(), threads: threads.max(1) };
    let mut grown = Vec::new();
    let mut stopped_early = false;
    for _ in 0..params.max_iterations {
        for &r in &train {
            let r = r as usize;
            let p = sigmoid(raw[r]);
            g[r] = p - window.labels[r] as u8 as f64;
            h[r] = p * (1.0 - p);
        }
        grower.rows.copy_from_slice(&train);
        let (tree, leaves) = grower.grow(&g, &h);
        for (start, end, step) in leaves {
            for &r in &grower.rows[start..end] {
                raw[r as usize] += step;
            }
        }
        if !held_out.is_empty() {
            tree.add_binned(window, &held_out, &mut held_raw);
        }
        let single_leaf = tree.tree.nodes.len() == 1;
        grown.push(tree);
        if !held_out.is_empty() {
            scores.push(-log_loss(&held_raw, held_labels()));
            if should_stop(&scores, params.n_iter_no_change) {
                stopped_early = true;
                break;
            }
        }
        if single_leaf {
            // Nothing left to split: every later round would be the same single leaf.
            break;
        }
    }
    tracing::debug!(
        rounds = grown.len(),
        stopped_early,
        rows = train.len(),
        held_out = held_out.len(),
        "boosting fitted"
    );
    let model =
        Boosted { baseline, trees: grown.iter().map(|t| t.tree.clone()).collect(), rounds: grown.len(), stopped_early };
    BoostedFit { model, grown }
}

/// scikit-learn's rule: stop when none of the last `n` scores beats the one before them by more
/// than the tolerance.
fn should_stop(scores: &[f64], n: usize) -> bool {
    if scores.len() < n + 1 {
        return false;
    }
    let reference = scores[scores.len() - n - 1] + TOLERANCE;
    !scores[scores.len() - n..].iter().any(|&s| s > reference)
}

/// `pool` split into the rows that fit and a seeded share of each label's rows held out; both
/// ascending.
fn stratified_split(pool: &[u32], labels: &[bool], fraction: f64, seed: u64) -> (Vec<u32>, Vec<u32>) {
    let mut rng = SplitMix64::new(seed ^ 0x0005_EED0_FB00_57ED);
    let mut fit = Vec::with_capacity(pool.len());
    let mut held = Vec::new();
    for class in [false, true] {
        let rows: Vec<u32> = pool.iter().copied().filter(|&r| labels[r as usize] == class).collect();
        let take = (rows.len() as f64 * fraction).round() as usize;
        let mut chosen = vec![false; rows.len()];
        for i in rng.sample(rows.len(), take) {
            chosen[i] = true;
        }
        for (r, c) in rows.into_iter().zip(chosen) {
            if c { held.push(r) } else { fit.push(r) }
        }
    }
    fit.sort_unstable();
    held.sort_unstable();
    (fit, held)
}

/// A leaf of the tree being grown: its rows (a range of the grower's rows), sums, histogram and
/// best split.
struct Leaf {
    slot: usize,
    start: usize,
    end: usize,
    depth: usize,
    sums: GradBin,
    hist: Option<Vec<GradBin>>,
    best: Option<Best>,
}

#[derive(Debug, Clone, Copy)]
struct Best {
    split: Split,
    gain: f64,
    left: GradBin,
}

struct LeafGrower<'a> {
    window: &'a BinnedWindow,
    params: &'a BoostParams,
    layout: &'a Layout,
    rows: Vec<u32>,
    threads: usize,
}

impl LeafGrower<'_> {
    /// One tree on the gradients `g` and hessians `h`; its leaves as ranges of `self.rows` with
    /// their steps.
    fn grow(&mut self, g: &[f64], h: &[f64]) -> (Grown, Vec<(usize, usize, f64)>) {
        let mut nodes = vec![FlatNode::Step { value: 0.0, rows: 0 }];
        let mut splits: Vec<Option<Split>> = vec![None];
        let root_hist = self.histogram(0, self.rows.len(), g, h);
        let sums = self.layout_sums(&root_hist);
        let mut leaves = vec![self.leaf(0, 0, self.rows.len(), 0, sums, Some(root_hist))];
        let mut scratch = Vec::new();
        while leaves.len() < self.params.max_leaf_nodes {
            // The leaf whose split gains most; on a tie the earlier one.
            let Some(k) = leaves
                .iter()
                .enumerate()
                .filter_map(|(k, l)| l.best.map(|b| (k, b.gain)))
                .fold(None, |acc: Option<(usize, f64)>, (k, gain)| match acc {
                    Some((_, best)) if best >= gain => acc,
                    _ => Some((k, gain)),
                })
                .map(|(k, _)| k)
            else {
                break;
            };
            let leaf = leaves.swap_remove(k);
            let best = leaf.best.expect("chosen for its split");
            let mid = self.partition(leaf.start, leaf.end, &best.split, &mut scratch);
            let (l, r) = (nodes.len(), nodes.len() + 1);
            nodes.push(FlatNode::Step { value: 0.0, rows: 0 });
            nodes.push(FlatNode::Step { value: 0.0, rows: 0 });
            splits.extend([None, None]);
            nodes[leaf.slot] = FlatNode::Split {
                feature: best.split.column,
                value: self.window.threshold(&best.split),
                left: l as u32,
                right: r as u32,
            };
            splits[leaf.slot] = Some(best.split);
            let (left_sums, right_sums) = (best.left, leaf.sums.minus(&best.left));
            let depth = leaf.depth + 1;
            let (grow_left, grow_right) = (self.can_split(&left_sums, depth), self.can_split(&right_sums, depth));
            let parent = leaf.hist.expect("a leaf with a split has its histogram");
            let (mut left_hist, mut right_hist) = (None, None);
            if grow_left || grow_right {
                let smaller_left = left_sums.n <= right_sums.n;
                let (s, e) = if smaller_left { (leaf.start, mid) } else { (mid, leaf.end) };
                let small = self.histogram(s, e, g, h);
                let large: Vec<GradBin> = parent.iter().zip(&small).map(|(p, s)| p.minus(s)).collect();
                (left_hist, right_hist) =
                    if smaller_left { (Some(small), Some(large)) } else { (Some(large), Some(small)) };
            }
            leaves.push(self.leaf(l, leaf.start, mid, depth, left_sums, left_hist.filter(|_| grow_left)));
            leaves.push(self.leaf(r, mid, leaf.end, depth, right_sums, right_hist.filter(|_| grow_right)));
        }
        let mut out = Vec::with_capacity(leaves.len());
        for leaf in &leaves {
            let step = -self.params.learning_rate * leaf.sums.g / (leaf.sums.h + self.params.l2_regularization);
            let step = if step.is_finite() { step } else { 0.0 };
            nodes[leaf.slot] = FlatNode::Step { value: step, rows: leaf.sums.n as u64 };
            out.push((leaf.start, leaf.end, step));
        }
        (Grown { tree: FlatTree { nodes, left_inclusive: true }, splits }, out)
    }

    fn can_split(&self, sums: &GradBin, depth: usize) -> bool {
        self.params.max_depth.is_none_or(|d| depth < d)
            && sums.n as usize >= 2 * self.params.min_samples_leaf
            && sums.h >= 2.0 * MIN_HESSIAN
    }

    fn leaf(
        &self,
        slot: usize,
        start: usize,
        end: usize,
        depth: usize,
        sums: GradBin,
        hist: Option<Vec<GradBin>>,
    ) -> Leaf {
        let best = hist.as_ref().and_then(|h| self.best_split(h, &sums));
        // A leaf that cannot split needs no histogram.
        let hist = hist.filter(|_| best.is_some());
        Leaf { slot, start, end, depth, sums, hist, best }
    }

    /// The node's totals, from the first feature's histogram (every row is in one of its bins).
    fn layout_sums(&self, hist: &[GradBin]) -> GradBin {
        let mut sums = GradBin::default();
        hist[self.layout.range(self.window, 0)].iter().for_each(|b| sums.add(b));
        sums
    }

    fn gain_of(&self, left: &GradBin, sums: &GradBin) -> Option<f64> {
        let right = sums.minus(left);
        let leaf = self.params.min_samples_leaf as u32;
        if left.n < leaf || right.n < leaf || left.h < MIN_HESSIAN || right.h < MIN_HESSIAN {
            return None;
        }
        let l2 = self.params.l2_regularization;
        let score = |b: &GradBin| b.g * b.g / (b.h + l2);
        let gain = score(left) + score(&right) - score(sums);
        (gain > 0.0).then_some(gain)
    }

    /// The best split over every column, in column order (on a tie the earlier column).
    fn best_split(&self, hist: &[GradBin], sums: &GradBin) -> Option<Best> {
        let mut best: Option<Best> = None;
        let mut consider = |candidate: Best| {
            if best.is_none_or(|b| candidate.gain > b.gain) {
                best = Some(candidate);
            }
        };
        for (f, feature) in self.window.features.iter().enumerate() {
            let h = &hist[self.layout.range(self.window, f)];
            match &feature.kind {
                FeatureKind::OneHot { first, width } => {
                    for (level, ones) in h.iter().enumerate().take(*width as usize) {
                        // The rows without the level go left.
                        let left = sums.minus(ones);
                        if let Some(gain) = self.gain_of(&left, sums) {
                            consider(Best { split: Split { column: first + level as u32, bin: 0 }, gain, left });
                        }
                    }
                }
                FeatureKind::Numeric { column, .. } => {
                    let mut left = GradBin::default();
                    let mut last: Option<usize> = None;
                    for (b, bin) in h.iter().enumerate() {
                        if bin.n == 0 {
                            continue;
                        }
                        if let Some(last) = last
                            && let Some(gain) = self.gain_of(&left, sums)
                        {
                            // Any boundary between the two non-empty bins divides the rows alike:
                            // the one in the middle.
                            let split = Split { column: *column, bin: (last + (b - 1 - last) / 2) as u8 };
                            consider(Best { split, gain, left });
                        }
                        left.add(bin);
                        last = Some(b);
                    }
                }
            }
        }
        best
    }

    /// Every feature's gradient histogram over rows `start..end`.
    fn histogram(&self, start: usize, end: usize, g: &[f64], h: &[f64]) -> Vec<GradBin> {
        let mut hist = vec![GradBin::default(); self.layout.len];
        let features = self.window.features.len();
        let fill = |f: usize, out: &mut [GradBin]| {
            let codes = &self.window.features[f].codes;
            for &r in &self.rows[start..end] {
                let r = r as usize;
                let bin = &mut out[codes[r] as usize];
                bin.g += g[r];
                bin.h += h[r];
                bin.n += 1;
            }
        };
        if self.threads > 1 && end - start >= PARALLEL_MIN_ROWS && features > 1 {
            // Each feature's bins are summed by one thread, in row order.
            let next = std::sync::atomic::AtomicUsize::new(0);
            let mut parts: Vec<Option<&mut [GradBin]>> = Vec::with_capacity(features);
            let mut rest = hist.as_mut_slice();
            for f in 0..features {
                let (part, tail) = rest.split_at_mut(self.window.features[f].bins());
                parts.push(Some(part));
                rest = tail;
            }
            let parts = std::sync::Mutex::new(parts);
            std::thread::scope(|scope| {
                for _ in 0..self.threads.min(features) {
                    scope.spawn(|| {
                        loop {
                            let f = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            if f >= features {
                                break;
                            }
                            let part = parts.lock().expect("no thread panicked holding it")[f].take();
                            if let Some(part) = part {
                                fill(f, part);
                            }
                        }
                    });
                }
            });
        } else {
            for f in 0..features {
                let range = self.layout.range(self.window, f);
                fill(f, &mut hist[range]);
            }
        }
        hist
    }

    /// Stably moves the rows of `start..end` that go left of `split` to the front; returns where
    /// the right ones start.
    fn partition(&mut self, start: usize, end: usize, split: &Split, scratch: &mut Vec<u32>) -> usize {
        scratch.clear();
        let router = self.window.router(split);
        let mut next = start;
        for i in start..end {
            let row = self.rows[i];
            if router.goes_left(row as usize) {
                self.rows[next] = row;
                next += 1;
            } else {
                scratch.push(row);
            }
        }
        self.rows[next..end].copy_from_slice(scratch);
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::Encoding;
    use caretaker_core::events::{CategoricalColumn, LabelledEvents, NumericColumn};

    /// `n` rows whose log-odds are a sum of a smooth effect, a step and a categorical effect.
    fn events(n: usize, seed: u64) -> LabelledEvents {
        let mut rng = SplitMix64::new(seed);
        let mut u = || (rng.next() >> 11) as f64 / (1u64 << 53) as f64;
        let (mut a, mut b, mut codes, mut labels) = (vec![], vec![], vec![], vec![]);
        for _ in 0..n {
            let (x, y, k) = (u() * 4.0 - 2.0, u(), (u() * 4.0) as u32);
            let z = 1.5 * x + if y > 0.7 { 1.0 } else { -0.5 } + [0.0, 1.0, -1.0, 0.5][k as usize];
            labels.push(u() < sigmoid(z));
            a.push(x);
            b.push(y);
            codes.push(k);
        }
        LabelledEvents {
            timestamps: vec![0; n],
            labels,
            numeric: vec![NumericColumn { name: "a".into(), values: a }, NumericColumn { name: "b".into(), values: b }],
            categorical: vec![CategoricalColumn {
                name: "k".into(),
                levels: (0..4).map(|i| format!("k{i}")).collect(),
                codes,
            }],
        }
    }

    fn params() -> BoostParams {
        BoostParams {
            learning_rate: 0.1,
            max_iterations: 100,
            max_leaf_nodes: 31,
            max_depth: None,
            min_samples_leaf: 20,
            l2_regularization: 0.0,
            early_stopping: true,
            validation_fraction: 0.1,
            n_iter_no_change: 10,
        }
    }

    fn fitted(n: usize, p: &BoostParams, threads: usize) -> (LabelledEvents, Encoding, BinnedWindow, BoostedFit) {
        let e = events(n, 5);
        let enc = Encoding::fit_raw(&e, 10);
        let window = BinnedWindow::new(&enc, &e, 1).unwrap();
        let pool: Vec<u32> = (0..n as u32).collect();
        let fit = fit(&window, &pool, p, 3, threads);
        (e, enc, window, fit)
    }

    #[test]
    fn boosting_lowers_the_training_loss_and_scores_raw_rows_as_it_scored_their_bins() {
        let p = BoostParams { early_stopping: false, max_iterations: 30, ..params() };
        let (e, enc, window, fit) = fitted(20_000, &p, 2);
        assert_eq!(fit.model.rounds, 30);
        let x = enc.transform(&e).unwrap();
        let proba = fit.model.predict_proba(&x);
        let rows: Vec<u32> = (0..e.len() as u32).collect();
        let binned = fit.predict_binned(&window, &rows);
        for (a, b) in proba.iter().zip(&binned) {
            assert!((a - b).abs() < 1e-12, "{a} against {b}");
        }
        let raw = |p: &[f64]| p.iter().map(|p| (p / (1.0 - p)).ln()).collect::<Vec<_>>();
        let base = vec![fit.model.baseline; e.len()];
        let loss = log_loss(&raw(&proba), e.labels.iter().copied());
        let before = log_loss(&base, e.labels.iter().copied());
        assert!(loss < before - 0.05, "{before} -> {loss}");
        // Every tree keeps to 31 leaves and 20 rows a leaf.
        for tree in &fit.model.trees {
            assert!(tree.leaves() <= 31);
            for node in &tree.nodes {
                if let FlatNode::Step { rows, .. } = node {
                    assert!(*rows >= 20);
                }
            }
        }
    }

    #[test]
    fn early_stopping_ends_the_rounds_once_the_held_out_loss_stops_improving() {
        // A large learning rate overfits fast: the held-out loss turns within 100 rounds.
        let p = BoostParams { learning_rate: 1.0, ..params() };
        let (_, _, _, fit) = fitted(20_000, &p, 1);
        assert!(fit.model.stopped_early && fit.model.rounds < 100, "{} rounds", fit.model.rounds);
    }

    #[test]
    fn the_threads_do_not_change_the_model() {
        let p = BoostParams { max_iterations: 10, ..params() };
        let (_, _, _, one) = fitted(120_000, &p, 1);
        let (_, _, _, two) = fitted(120_000, &p, 2);
        assert_eq!(one.model, two.model);
    }

    #[test]
    fn the_stop_rule_is_scikit_learns() {
        // Scores (negative losses): better, then flat for 3 rounds.
        assert!(!should_stop(&[-1.0, -0.9, -0.9, -0.9], 3));
        assert!(should_stop(&[-1.0, -0.9, -0.9, -0.9, -0.9], 3));
        assert!(!should_stop(&[-1.0, -0.9, -0.9, -0.9, -0.8], 3));
    }
}
