//! Classification trees grown from histograms of bin codes: the decision tree and the forest.
//!
//! A node's split comes from a histogram of its rows over each feature's bins (rows, weight and
//! positive weight per bin), built in one pass over the node's rows; no node sorts anything. The
//! decision tree builds the histograms of every feature for the smaller child of each split and
//! gets the larger child's by subtracting it from the parent's (as LightGBM does), so each level
//! of the tree reads at most half the window. A forest tree weighs a random draw of columns at
//! each node and builds only the histograms of the features those columns belong to; one-hot
//! columns of one categorical feature share one histogram ([`crate::binned`]).
//!
//! The split rules are scikit-learn's: the impurity decrease of Gini or entropy over weighted
//! rows, every boundary between two bins that hold rows of the node (the threshold is the one in
//! the middle of the empty bins between them), at least `min_samples_leaf` rows on each side, a
//! node that is pure or at `max_depth` is a leaf. A forest tree draws its columns as
//! scikit-learn's do: columns constant in the node are skipped and do not count, so a node is
//! split whenever `features_per_split` columns that vary can be found. On a tie the column weighed
//! first wins. Bins hold integer counts, so the threads a histogram is built on do not change it,
//! and the same sample and seed give the same tree.
//!
//! A leaf carries the share of positive weight among its rows (for a forest tree, its bootstrap
//! draws), which is what the model's probabilities are made of.

use crate::binned::{BinnedWindow, FeatureKind, Split};
use crate::trees::{FlatNode, FlatTree};
use caretaker_core::config::SplitQuality;
use caretaker_core::rng::SplitMix64;

/// How a tree grows.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TreeParams {
    pub max_depth: Option<usize>,
    pub min_samples_leaf: usize,
    pub criterion: SplitQuality,
    /// Columns weighed at each node, drawn at random; `None`: every column, in order.
    pub features_per_split: Option<usize>,
}

/// Nodes with at least this many rows build their histograms on all cores.
const PARALLEL_MIN_ROWS: usize = 100_000;

/// The rows a tree grows from, ascending, each with its weight (1, or a bootstrap count).
#[derive(Debug, Clone)]
pub(crate) struct Sample {
    rows: Vec<u32>,
    weights: Vec<u32>,
}

impl Sample {
    /// Every row of `pool`, once.
    pub fn all(pool: &[u32]) -> Sample {
        Sample { rows: pool.to_vec(), weights: vec![1; pool.len()] }
    }

    /// `draws` rows of `pool` drawn with replacement: each drawn row once, weighted by how often
    /// it was drawn.
    #[cfg(test)]
    pub fn bootstrap(pool: &[u32], draws: usize, rng: &mut SplitMix64) -> Sample {
        let mut sample = Sample { rows: Vec::new(), weights: Vec::new() };
        sample.redraw(pool, draws, rng);
        sample
    }

    /// Replaces this sample by a bootstrap draw (as [`Sample::bootstrap`]), reusing its buffers.
    ///
    /// Each row of `pool` is drawn a Poisson-distributed number of times with mean
    /// `draws / pool.len()` (one uniform number per row, through the distribution's table), not
    /// `draws` times uniformly among the rows: the two agree but for the total, which varies by
    /// about its square root, and the Poisson draw walks the rows in order, where `draws` uniform
    /// picks scatter increments over a table the size of the window (on 7.6M rows, a cache miss
    /// each, a third of a second per tree).
    fn redraw(&mut self, pool: &[u32], draws: usize, rng: &mut SplitMix64) {
        self.rows.clear();
        self.weights.clear();
        if pool.is_empty() {
            return;
        }
        let lambda = draws as f64 / pool.len() as f64;
        // P(count <= k), until it leaves less than 1e-15 above.
        let mut cdf = Vec::with_capacity(32);
        let (mut p, mut total) = ((-lambda).exp(), 0.0);
        for k in 0..64 {
            total += p;
            cdf.push(total);
            if total >= 1.0 - 1e-15 {
                break;
            }
            p *= lambda / (k + 1) as f64;
        }
        for &r in pool {
            let u = (rng.next() >> 11) as f64 / (1u64 << 53) as f64;
            let count = cdf.iter().position(|&c| u < c).unwrap_or(cdf.len()) as u32;
            if count > 0 {
                self.rows.push(r);
                self.weights.push(count);
            }
        }
    }
}

/// A grown tree as it is stored, and the same splits in bin space, to score rows of the window
/// without their raw values (the validation rows of threshold tuning).
#[derive(Debug, Clone)]
pub(crate) struct Grown {
    pub tree: FlatTree,
    pub splits: Vec<Option<Split>>,
}

impl Grown {
    /// Adds each row's leaf probability to `out`.
    pub fn add_binned(&self, window: &BinnedWindow, rows: &[u32], out: &mut [f64]) {
        for (&row, o) in rows.iter().zip(out.iter_mut()) {
            *o += self.leaf_binned(window, row);
        }
    }

    /// The leaf probability of row `row` of the window.
    fn leaf_binned(&self, window: &BinnedWindow, row: u32) -> f64 {
        let mut i = 0;
        loop {
            match (&self.tree.nodes[i], self.splits[i]) {
                (FlatNode::Split { left, right, .. }, Some(split)) => {
                    i = if window.goes_left(&split, row as usize) { *left } else { *right } as usize;
                }
                (FlatNode::Split { .. }, None) => unreachable!("every split node has its bin split"),
                (leaf, _) => return leaf.leaf_value(),
            }
        }
    }
}

/// One histogram bin: the rows of the node in it, their weight and their positive weight.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Bin {
    rows: u32,
    weight: u32,
    positive: u32,
}

impl Bin {
    fn add(&mut self, other: &Bin) {
        self.rows += other.rows;
        self.weight += other.weight;
        self.positive += other.positive;
    }

    fn minus(&self, other: &Bin) -> Bin {
        Bin {
            rows: self.rows - other.rows,
            weight: self.weight - other.weight,
            positive: self.positive - other.positive,
        }
    }
}

/// The weighted impurity of a node of `weight` with `positive` positive weight, times its weight
/// (the quantity a split's children sum).
fn weighted_impurity(criterion: SplitQuality, bin: &Bin) -> f64 {
    let (w, p) = (bin.weight as f64, bin.positive as f64);
    if w == 0.0 {
        return 0.0;
    }
    let n = w - p;
    match criterion {
        SplitQuality::Gini => w - (p * p + n * n) / w,
        SplitQuality::Entropy => {
            let term = |c: f64| if c > 0.0 { c * (c / w).ln() } else { 0.0 };
            -(term(p) + term(n))
        }
    }
}

/// Where each feature's bins start in a node's histogram.
pub(crate) struct Layout {
    offsets: Vec<usize>,
    pub len: usize,
}

impl Layout {
    pub fn new(window: &BinnedWindow) -> Layout {
        let mut offsets = Vec::with_capacity(window.features.len());
        let mut len = 0;
        for f in &window.features {
            offsets.push(len);
            len += f.bins();
        }
        Layout { offsets, len }
    }

    pub fn range(&self, window: &BinnedWindow, feature: usize) -> std::ops::Range<usize> {
        self.offsets[feature]..self.offsets[feature] + window.features[feature].bins()
    }
}

/// The best split found so far at a node.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    split: Split,
    decrease: f64,
    left: Bin,
}

/// A node waiting for its split.
struct Task {
    slot: usize,
    start: usize,
    end: usize,
    depth: usize,
    totals: Bin,
    /// Every feature's histogram, when the tree weighs every column.
    hist: Option<Vec<Bin>>,
}

struct Grower<'a> {
    window: &'a BinnedWindow,
    params: TreeParams,
    layout: Layout,
    rows: Vec<u32>,
    weights: Vec<u32>,
    positive: Vec<u32>,
    /// The sample's codes, row by row, kept in the rows' order as nodes divide them: a node's
    /// histograms and its division read its own rows' codes in sequence, where the window's
    /// columns would be read a row here and a row there (on a window of millions of rows, a cache
    /// miss a value). A row's codes are packed eight to a word (`codes[i * words + f / 8]`, byte
    /// `f % 8`), so moving a row is moving a word or two.
    codes: Vec<u64>,
    /// Words per row in `codes`.
    words: usize,
    threads: usize,
}

/// A tree's working buffers, handed from one tree to the next by a forest's worker.
#[derive(Default)]
struct Buffers {
    positive: Vec<u32>,
    codes: Vec<u64>,
}

/// Grows a tree on `sample` of `window`. `threads` build the histograms of large nodes (a forest
/// grows its trees on the cores instead, one thread each).
pub(crate) fn grow(window: &BinnedWindow, sample: Sample, params: &TreeParams, seed: u64, threads: usize) -> Grown {
    grow_in(window, sample, Buffers::default(), params, seed, threads).0
}

/// [`grow`] in buffers handed back with the tree (the sample's, reordered, and the working
/// buffers), so the next tree can reuse them.
fn grow_in(
    window: &BinnedWindow,
    sample: Sample,
    buffers: Buffers,
    params: &TreeParams,
    seed: u64,
    threads: usize,
) -> (Grown, Sample, Buffers) {
    let Buffers { mut positive, mut codes } = buffers;
    positive.clear();
    positive
        .extend(sample.rows.iter().zip(&sample.weights).map(|(&r, &w)| if window.labels[r as usize] { w } else { 0 }));
    let words = window.features.len().div_ceil(8).max(1);
    codes.clear();
    codes.resize(sample.rows.len() * words, 0);
    for (f, feature) in window.features.iter().enumerate() {
        let (word, shift) = (f / 8, 8 * (f % 8));
        for (i, &r) in sample.rows.iter().enumerate() {
            codes[i * words + word] |= (feature.codes[r as usize] as u64) << shift;
        }
    }
    let mut grower = Grower {
        window,
        params: *params,
        layout: Layout::new(window),
        rows: sample.rows,
        weights: sample.weights,
        positive,
        codes,
        words,
        threads: threads.max(1),
    };
    let grown = grower.run(seed);
    let buffers = Buffers { positive: grower.positive, codes: grower.codes };
    (grown, Sample { rows: grower.rows, weights: grower.weights }, buffers)
}

impl Grower<'_> {
    fn run(&mut self, seed: u64) -> Grown {
        let mut rng = SplitMix64::new(seed);
        let mut nodes = vec![FlatNode::Leaf { positive_rate: 0.0, rows: 0 }];
        let mut splits: Vec<Option<Split>> = vec![None];
        let totals = Bin {
            rows: self.rows.len() as u32,
            weight: self.weights.iter().sum(),
            positive: self.positive.iter().sum(),
        };
        let all_columns = self.params.features_per_split.is_none();
        // Sampled trees draw from every column; a permutation kept across nodes (any order is as
        // random as any other).
        let mut order: Vec<u32> = (0..self.window.columns() as u32).collect();
        let mut scratch = Scratch::default();
        let mut node_hist = vec![Bin::default(); self.layout.len];
        let mut built = vec![false; self.window.features.len()];
        let root_hist = (all_columns && !self.is_leaf(&totals, 0)).then(|| self.histogram(0, self.rows.len()));
        let mut stack = vec![Task { slot: 0, start: 0, end: self.rows.len(), depth: 0, totals, hist: root_hist }];
        while let Some(task) = stack.pop() {
            let best = if self.is_leaf(&task.totals, task.depth) {
                None
            } else if let Some(hist) = &task.hist {
                self.best_of_all(hist, &task.totals)
            } else {
                built.iter_mut().for_each(|b| *b = false);
                self.best_of_drawn(&task, &mut order, &mut rng, &mut node_hist, &mut built)
            };
            let Some(best) = best else {
                nodes[task.slot] = FlatNode::Leaf {
                    positive_rate: task.totals.positive as f64 / task.totals.weight.max(1) as f64,
                    rows: task.totals.rows as u64,
                };
                continue;
            };
            let mid = self.partition(task.start, task.end, &best.split, &mut scratch);
            let left_totals = best.left;
            let right_totals = task.totals.minus(&left_totals);
            debug_assert_eq!((mid - task.start) as u32, left_totals.rows);
            let (l, r) = (nodes.len(), nodes.len() + 1);
            nodes.push(FlatNode::Leaf { positive_rate: 0.0, rows: 0 });
            nodes.push(FlatNode::Leaf { positive_rate: 0.0, rows: 0 });
            splits.extend([None, None]);
            nodes[task.slot] = FlatNode::Split {
                feature: best.split.column,
                value: self.window.threshold(&best.split),
                left: l as u32,
                right: r as u32,
            };
            splits[task.slot] = Some(best.split);
            let depth = task.depth + 1;
            let (mut left_hist, mut right_hist) = (None, None);
            if let Some(parent) = task.hist {
                let (grow_left, grow_right) = (!self.is_leaf(&left_totals, depth), !self.is_leaf(&right_totals, depth));
                let smaller_left = left_totals.rows <= right_totals.rows;
                match (grow_left, grow_right) {
                    (true, true) => {
                        let (s, e) = if smaller_left { (task.start, mid) } else { (mid, task.end) };
                        let small = self.histogram(s, e);
                        let large: Vec<Bin> = parent.iter().zip(&small).map(|(p, s)| p.minus(s)).collect();
                        (left_hist, right_hist) =
                            if smaller_left { (Some(small), Some(large)) } else { (Some(large), Some(small)) };
                    }
                    (true, false) => left_hist = Some(self.histogram(task.start, mid)),
                    (false, true) => right_hist = Some(self.histogram(mid, task.end)),
                    (false, false) => {}
                }
            }
            stack.push(Task { slot: r, start: mid, end: task.end, depth, totals: right_totals, hist: right_hist });
            stack.push(Task { slot: l, start: task.start, end: mid, depth, totals: left_totals, hist: left_hist });
        }
        Grown { tree: FlatTree { nodes, left_inclusive: true }, splits }
    }

    fn is_leaf(&self, totals: &Bin, depth: usize) -> bool {
        self.params.max_depth.is_some_and(|d| depth >= d)
            || (totals.rows as usize) < 2 * self.params.min_samples_leaf
            || totals.positive == 0
            || totals.positive == totals.weight
    }

    /// Every feature's histogram over the rows `start..end`.
    fn histogram(&self, start: usize, end: usize) -> Vec<Bin> {
        let mut hist = vec![Bin::default(); self.layout.len];
        let features = self.window.features.len();
        if self.threads > 1 && end - start >= PARALLEL_MIN_ROWS && features > 1 {
            // Features in contiguous groups, one per thread; each writes its own part.
            let per = features.div_ceil(self.threads);
            let mut parts: Vec<(usize, &mut [Bin])> = Vec::new();
            let mut rest = hist.as_mut_slice();
            for first in (0..features).step_by(per) {
                let last = (first + per).min(features);
                let len: usize = (first..last).map(|f| self.window.features[f].bins()).sum();
                let (part, tail) = rest.split_at_mut(len);
                parts.push((first, part));
                rest = tail;
            }
            std::thread::scope(|scope| {
                for (first, part) in parts {
                    scope.spawn(move || {
                        let mut offset = 0;
                        for f in first..(first + per).min(features) {
                            let bins = self.window.features[f].bins();
                            self.fill(f, start, end, &mut part[offset..offset + bins]);
                            offset += bins;
                        }
                    });
                }
            });
        } else {
            for f in 0..features {
                let range = self.layout.range(self.window, f);
                self.fill(f, start, end, &mut hist[range]);
            }
        }
        hist
    }

    /// Feature `feature`'s histogram over the rows `start..end`, into `out` (zeroed first).
    fn fill(&self, feature: usize, start: usize, end: usize, out: &mut [Bin]) {
        out.iter_mut().for_each(|b| *b = Bin::default());
        let (word, shift) = (feature / 8, 8 * (feature % 8));
        let codes = self.codes[start * self.words..end * self.words].iter().skip(word).step_by(self.words);
        let weights = &self.weights[start..end];
        let positive = &self.positive[start..end];
        for ((&code, &w), &p) in codes.zip(weights).zip(positive) {
            let bin = &mut out[(code >> shift) as u8 as usize];
            bin.rows += 1;
            bin.weight += w;
            bin.positive += p;
        }
    }

    /// The best split over every column, in column order.
    fn best_of_all(&self, hist: &[Bin], totals: &Bin) -> Option<Candidate> {
        let parent = weighted_impurity(self.params.criterion, totals);
        let mut best: Option<Candidate> = None;
        for f in 0..self.window.features.len() {
            let h = &hist[self.layout.range(self.window, f)];
            let columns = self.window.features[f].columns();
            for column in columns {
                if let Some(c) = self.best_of_column(f, column, h, totals, parent)
                    && best.is_none_or(|b| c.decrease > b.decrease)
                {
                    best = Some(c);
                }
            }
        }
        best
    }

    /// The best split over columns drawn at random, until `features_per_split` columns that vary
    /// in the node have been weighed (or every column has been drawn).
    fn best_of_drawn(
        &self,
        task: &Task,
        order: &mut [u32],
        rng: &mut SplitMix64,
        hist: &mut [Bin],
        built: &mut [bool],
    ) -> Option<Candidate> {
        let wanted = self.params.features_per_split.unwrap_or(order.len()).max(1);
        let parent = weighted_impurity(self.params.criterion, &task.totals);
        let mut best: Option<Candidate> = None;
        let mut weighed = 0;
        for i in 0..order.len() {
            if weighed >= wanted {
                break;
            }
            let j = i + rng.below(order.len() - i);
            order.swap(i, j);
            let column = order[i];
            let f = self.window.feature_of(column);
            let range = self.layout.range(self.window, f);
            if !built[f] {
                self.fill(f, task.start, task.end, &mut hist[range.clone()]);
                built[f] = true;
            }
            let h = &hist[range];
            if is_constant(&self.window.features[f].kind, column, h, &task.totals) {
                continue;
            }
            weighed += 1;
            if let Some(c) = self.best_of_column(f, column, h, &task.totals, parent)
                && best.is_none_or(|b| c.decrease > b.decrease)
            {
                best = Some(c);
            }
        }
        best
    }

    /// The best split of one column from its feature's histogram `h`.
    fn best_of_column(&self, feature: usize, column: u32, h: &[Bin], totals: &Bin, parent: f64) -> Option<Candidate> {
        let leaf = self.params.min_samples_leaf as u32;
        let criterion = self.params.criterion;
        let score = |left: &Bin| {
            let right = totals.minus(left);
            (left.rows >= leaf && right.rows >= leaf)
                .then(|| parent - weighted_impurity(criterion, left) - weighted_impurity(criterion, &right))
        };
        match &self.window.features[feature].kind {
            FeatureKind::OneHot { first, .. } => {
                let level = (column - first) as usize;
                // The rows without the level go left.
                let left = totals.minus(&h[level]);
                let decrease = score(&left)?;
                Some(Candidate { split: Split { column, bin: 0 }, decrease, left })
            }
            FeatureKind::Numeric { .. } => {
                let mut best: Option<Candidate> = None;
                let mut left = Bin::default();
                let mut last: Option<usize> = None;
                for (b, bin) in h.iter().enumerate() {
                    if bin.rows == 0 {
                        continue;
                    }
                    if let Some(last) = last
                        && let Some(decrease) = score(&left)
                        && best.is_none_or(|c| decrease > c.decrease)
                    {
                        // Any boundary between the two non-empty bins divides the node alike:
                        // the one in the middle.
                        let bin = (last + (b - 1 - last) / 2) as u8;
                        best = Some(Candidate { split: Split { column, bin }, decrease, left });
                    }
                    left.add(bin);
                    last = Some(b);
                }
                best
            }
        }
    }

    /// Stably moves the rows of `start..end` that go left of `split` to the front; returns where
    /// the right ones start.
    fn partition(&mut self, start: usize, end: usize, split: &Split, scratch: &mut Scratch) -> usize {
        scratch.rows.clear();
        scratch.codes.clear();
        let router = self.window.router(split);
        let words = self.words;
        let feature = self.window.feature_of(split.column);
        let (word, shift) = (feature / 8, 8 * (feature % 8));
        let mut next = start;
        for i in start..end {
            let row = self.rows[i];
            if router.code_goes_left((self.codes[i * words + word] >> shift) as u8) {
                self.rows[next] = row;
                self.weights[next] = self.weights[i];
                self.positive[next] = self.positive[i];
                for k in 0..words {
                    self.codes[next * words + k] = self.codes[i * words + k];
                }
                next += 1;
            } else {
                scratch.rows.push((row, self.weights[i], self.positive[i]));
                scratch.codes.extend_from_slice(&self.codes[i * words..(i + 1) * words]);
            }
        }
        for (k, &(row, w, p)) in scratch.rows.iter().enumerate() {
            self.rows[next + k] = row;
            self.weights[next + k] = w;
            self.positive[next + k] = p;
        }
        self.codes[next * words..end * words].copy_from_slice(&scratch.codes);
        next
    }
}

/// The right-hand rows of a division, held while the left ones move down.
#[derive(Default)]
struct Scratch {
    rows: Vec<(u32, u32, u32)>,
    codes: Vec<u64>,
}

/// Whether every row of the node holds the same value of `column`.
fn is_constant(kind: &FeatureKind, column: u32, h: &[Bin], totals: &Bin) -> bool {
    match kind {
        FeatureKind::OneHot { first, .. } => {
            let ones = h[(column - first) as usize].rows;
            ones == 0 || ones == totals.rows
        }
        FeatureKind::Numeric { .. } => h.iter().filter(|b| b.rows > 0).nth(1).is_none(),
    }
}

/// Out-of-bag sums of a forest's probabilities for some rows of its pool: per row, the sum of the
/// leaf probabilities of the trees whose bootstrap draw left the row out, and how many there were.
/// Sums are kept in fixed point, so that they do not depend on the order in which the cores
/// finish their trees (the threshold chosen from them is saved with the model).
#[derive(Debug, Clone, Default)]
struct OutOfBag {
    sums: Vec<u64>,
    trees: Vec<u32>,
}

/// Fixed-point scale of [`OutOfBag`] sums: a leaf probability to 2^-40.
const OOB_SCALE: f64 = (1u64 << 40) as f64;

impl OutOfBag {
    fn new(rows: usize) -> OutOfBag {
        OutOfBag { sums: vec![0; rows], trees: vec![0; rows] }
    }

    /// Adds `tree`'s probability for each row of `rows` its draw `sample` left out (both
    /// ascending).
    fn add(&mut self, window: &BinnedWindow, tree: &Grown, sample_rows: &[u32], rows: &[u32]) {
        let mut drawn = sample_rows.iter().peekable();
        for (i, &row) in rows.iter().enumerate() {
            while drawn.next_if(|&&d| d < row).is_some() {}
            if drawn.peek() == Some(&&row) {
                continue;
            }
            self.sums[i] += (tree.leaf_binned(window, row) * OOB_SCALE).round() as u64;
            self.trees[i] += 1;
        }
    }

    fn merge(&mut self, other: &OutOfBag) {
        for (a, b) in self.sums.iter_mut().zip(&other.sums) {
            *a += b;
        }
        for (a, b) in self.trees.iter_mut().zip(&other.trees) {
            *a += b;
        }
    }

    /// Each row's mean out-of-bag probability; `None` for a row every tree drew.
    fn probabilities(&self) -> Vec<Option<f64>> {
        self.sums.iter().zip(&self.trees).map(|(&s, &t)| (t > 0).then(|| s as f64 / OOB_SCALE / t as f64)).collect()
    }
}

/// A forest's trees: each grown on its own bootstrap draw of `draws` rows of `pool` (with
/// replacement), with its own seed, on all cores. Which core grows which tree does not change it.
/// Each core's worker keeps its buffers from tree to tree: drawing and growing a tree allocates
/// nothing new, so a forest does not leave the allocator's free lists full of tree-sized holes.
///
/// With it, the out-of-bag probability of each row of `rows` (ascending, rows of `pool`; empty
/// when none is wanted): the mean over the trees whose bootstrap draw left the row out (about 37 of 100 trees when
/// each tree draws as many rows as the pool holds), as scikit-learn's `oob_decision_function_`.
/// `None` for a row that every tree drew.
pub(crate) fn forest(
    window: &BinnedWindow,
    pool: &[u32],
    n_trees: usize,
    draws: usize,
    params: &TreeParams,
    seed: u64,
    rows: &[u32],
) -> (Vec<Grown>, Vec<Option<f64>>) {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let workers = crate::cores().clamp(1, n_trees.max(1));
    let done: Vec<(Vec<(usize, Grown)>, OutOfBag)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    let mut oob = OutOfBag::new(rows.len());
                    let (mut sample, mut buffers) =
                        (Sample { rows: Vec::new(), weights: Vec::new() }, Buffers::default());
                    let mut drawn = Vec::new();
                    loop {
                        let t = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if t >= n_trees {
                            break;
                        }
                        let mut rng =
                            SplitMix64::new(seed.wrapping_add((t as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)));
                        sample.redraw(pool, draws, &mut rng);
                        if !rows.is_empty() {
                            drawn.clone_from(&sample.rows);
                        }
                        let tree;
                        (tree, sample, buffers) = grow_in(window, sample, buffers, params, rng.next(), 1);
                        if !rows.is_empty() {
                            oob.add(window, &tree, &drawn, rows);
                        }
                        done.push((t, tree));
                    }
                    (done, oob)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("growing a tree does not panic")).collect()
    });
    let mut oob = OutOfBag::new(rows.len());
    let mut grown = Vec::with_capacity(n_trees);
    for (trees, theirs) in done {
        oob.merge(&theirs);
        grown.extend(trees);
    }
    grown.sort_by_key(|(t, _)| *t);
    (grown.into_iter().map(|(_, g)| g).collect(), oob.probabilities())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoding::Encoding;
    use caretaker_core::events::{CategoricalColumn, LabelledEvents, NumericColumn};

    /// `n` rows: two continuous features, one with few distinct values, a categorical of five
    /// levels; the label depends on three of them, with 10% noise.
    fn events(n: usize, seed: u64) -> LabelledEvents {
        let mut rng = SplitMix64::new(seed);
        let mut u = || (rng.next() >> 11) as f64 / (1u64 << 53) as f64;
        let (mut a, mut b, mut c, mut codes, mut labels) = (vec![], vec![], vec![], vec![], vec![]);
        for _ in 0..n {
            let (x, y, z, k) = (u(), u() * 10.0 - 5.0, (u() * 6.0).floor(), (u() * 5.0) as u32);
            let noise = u() < 0.1;
            a.push(x);
            b.push(y);
            c.push(z);
            codes.push(k);
            labels.push(((x > 0.4 && z >= 2.0) || (y < -2.0 && k == 3)) != noise);
        }
        LabelledEvents {
            timestamps: vec![0; n],
            labels,
            numeric: vec![
                NumericColumn { name: "a".into(), values: a },
                NumericColumn { name: "b".into(), values: b },
                NumericColumn { name: "c".into(), values: c },
            ],
            categorical: vec![CategoricalColumn {
                name: "k".into(),
                levels: (0..5).map(|i| format!("k{i}")).collect(),
                codes,
            }],
        }
    }

    /// The lowest weighted Gini impurity of any split of `rows` leaving at least `leaf` rows on
    /// each side, over every column and every threshold between two of the rows' distinct values:
    /// an exhaustive search on the raw values, as scikit-learn's exact trees do it.
    fn best_exact(
        x: &caretaker_core::events::FeatureMatrix,
        labels: &[bool],
        rows: &[u32],
        leaf: usize,
    ) -> Option<f64> {
        let gini = |p: f64, n: f64| {
            let t = p + n;
            t - (p * p + n * n) / t
        };
        let pos_all = rows.iter().filter(|&&r| labels[r as usize]).count() as f64;
        let all = rows.len() as f64;
        let mut best: Option<f64> = None;
        for j in 0..x.cols() {
            let column = x.column(j);
            let mut sorted = rows.to_vec();
            sorted.sort_by(|a, b| column[*a as usize].total_cmp(&column[*b as usize]));
            let mut pos = 0.0;
            for (i, pair) in sorted.windows(2).enumerate() {
                pos += labels[pair[0] as usize] as u8 as f64;
                if column[pair[1] as usize] == column[pair[0] as usize] {
                    continue;
                }
                let left = (i + 1) as f64;
                if (i + 1) < leaf || rows.len() - (i + 1) < leaf {
                    continue;
                }
                let score = gini(pos, left - pos) + gini(pos_all - pos, all - left - (pos_all - pos));
                best = Some(best.map_or(score, |b: f64| b.min(score)));
            }
        }
        best
    }

    fn params(max_depth: Option<usize>, leaf: usize) -> TreeParams {
        TreeParams { max_depth, min_samples_leaf: leaf, criterion: SplitQuality::Gini, features_per_split: None }
    }

    #[test]
    fn every_split_is_the_best_an_exhaustive_search_finds_for_its_rows() {
        // Few distinct values per column (each its own bin), so the histogram search must find what
        // the exact search finds. 150,000 rows: the root's histograms are built on all cores.
        for (n, depth, leaf) in [(3_000, Some(6), 1), (2_000, Some(12), 5), (400, None, 1), (150_000, Some(3), 1)] {
            let mut e = events(n, n as u64);
            // Round the continuous features to 200 values so every value has a bin.
            for c in &mut e.numeric {
                c.values.iter_mut().for_each(|v| *v = (*v * 20.0).round() / 20.0);
            }
            let enc = Encoding::fit_raw(&e, 10);
            let window = BinnedWindow::new(&enc, &e, 1).unwrap();
            let x = enc.transform(&e).unwrap();
            let pool: Vec<u32> = (0..n as u32).collect();
            let grown = grow(&window, Sample::all(&pool), &params(depth, leaf), 0, 2);
            let tree = &grown.tree;
            assert!(tree.nodes.len() > 7, "the check needs a tree with some depth");
            let mut stack = vec![(0usize, pool.clone())];
            let mut splits = 0;
            while let Some((i, rows)) = stack.pop() {
                match tree.nodes[i] {
                    FlatNode::Split { feature, value, left, right } => {
                        let column = x.column(feature as usize);
                        let (l, r): (Vec<u32>, Vec<u32>) = rows.iter().partition(|&&r| column[r as usize] <= value);
                        let ours = {
                            let g = |side: &[u32]| {
                                let p = side.iter().filter(|&&r| e.labels[r as usize]).count() as f64;
                                let t = side.len() as f64;
                                t - (p * p + (t - p) * (t - p)) / t
                            };
                            g(&l) + g(&r)
                        };
                        let exact = best_exact(&x, &e.labels, &rows, leaf).expect("a split node can split");
                        assert!(ours - exact < 1e-6, "node {i} ({} rows): {ours} against {exact}", rows.len());
                        assert!(l.len() >= leaf && r.len() >= leaf);
                        splits += 1;
                        stack.push((left as usize, l));
                        stack.push((right as usize, r));
                    }
                    FlatNode::Leaf { rows: count, positive_rate } => {
                        assert_eq!(count as usize, rows.len());
                        let p = rows.iter().filter(|&&r| e.labels[r as usize]).count() as f64 / rows.len() as f64;
                        assert_eq!(positive_rate, p);
                    }
                    FlatNode::Step { .. } => panic!("a classification tree has no boosting steps"),
                }
            }
            assert!(splits > 3);
            // Binned routing agrees with raw routing on every row.
            let mut binned = vec![0.0; n];
            grown.add_binned(&window, &pool, &mut binned);
            let mut raw = vec![0.0; n];
            tree.predict_into(&x, &mut raw);
            assert_eq!(binned, raw);
        }
    }

    #[test]
    fn the_threads_building_the_histograms_do_not_change_the_tree() {
        let e = events(120_000, 3);
        let enc = Encoding::fit_raw(&e, 10);
        let window = BinnedWindow::new(&enc, &e, 1).unwrap();
        let pool: Vec<u32> = (0..e.len() as u32).collect();
        let one = grow(&window, Sample::all(&pool), &params(Some(8), 3), 0, 1);
        let two = grow(&window, Sample::all(&pool), &params(Some(8), 3), 0, 2);
        assert_eq!(one.tree, two.tree);
    }

    #[test]
    fn a_bootstrap_draws_with_replacement_and_weighs_repeats() {
        let pool: Vec<u32> = (10..100_010).collect();
        let s = Sample::bootstrap(&pool, 100_000, &mut SplitMix64::new(5));
        // About as many draws as asked (the total's standard deviation is about 316).
        let total = s.weights.iter().sum::<u32>();
        assert!((98_500..101_500).contains(&total), "{total}");
        assert!(s.rows.windows(2).all(|w| w[0] < w[1]), "ascending, each row once");
        assert!(s.rows.iter().all(|r| (10..100_010).contains(r)));
        // About 1 - 1/e of the pool is drawn, a share e^-1 / 2 of it twice.
        assert!((62_000..64_500).contains(&s.rows.len()), "{}", s.rows.len());
        let twice = s.weights.iter().filter(|&&w| w == 2).count();
        assert!((17_800..19_000).contains(&twice), "{twice}");
        // Half as many draws: each row drawn with mean 1/2.
        let half = Sample::bootstrap(&pool, 50_000, &mut SplitMix64::new(6));
        assert!((38_500..40_200).contains(&half.rows.len()), "{}", half.rows.len());
    }

    #[test]
    fn a_forest_tree_weighs_only_columns_that_vary_and_keeps_drawing_past_constant_ones() {
        // One informative column among many one-hot columns that are constant below the root:
        // drawing a single column per node still finds the informative one at every node.
        let n = 4000;
        let mut rng = SplitMix64::new(8);
        let x: Vec<f64> = (0..n).map(|_| (rng.next() % 200) as f64).collect();
        let labels: Vec<bool> = x.iter().map(|&v| v >= 100.0).collect();
        let e = LabelledEvents {
            timestamps: vec![0; n],
            labels,
            numeric: vec![NumericColumn { name: "x".into(), values: x }],
            categorical: vec![CategoricalColumn {
                name: "k".into(),
                levels: (0..40).map(|i| format!("k{i}")).collect(),
                codes: vec![7; n],
            }],
        };
        let enc = Encoding::fit_raw(&e, 50);
        let window = BinnedWindow::new(&enc, &e, 1).unwrap();
        let pool: Vec<u32> = (0..n as u32).collect();
        let p = TreeParams { features_per_split: Some(1), ..params(Some(4), 1) };
        let grown = grow(&window, Sample::all(&pool), &p, 3, 1);
        // The one-hot column of level k7 is all ones: constant, never drawn for a split.
        match grown.tree.nodes[0] {
            FlatNode::Split { feature, value, .. } => assert_eq!((feature, value), (0, 99.5)),
            ref other => panic!("{other:?}"),
        }
        assert_eq!(grown.tree.leaves(), 2, "the split separates the classes: both leaves are pure");
    }
}
