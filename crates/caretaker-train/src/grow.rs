//! linfa's decision tree, grown one node at a time.
//!
//! `linfa_trees::DecisionTree::fit` sorts every feature once and then, at every node, walks the
//! whole sorted index of the training window, skipping the rows that are not in the node. A tree
//! of depth 10 has up to a thousand nodes, so on a million rows it visits about a thousand
//! million rows per feature, where scikit-learn visits a million per level.
//!
//! Here the recursion is ours and the split is linfa's: each node's rows are handed to linfa as a
//! dataset of their own, fitted with `max_depth = 1`, and the split linfa chooses for that root is
//! the node's split. The nodes of one depth are fitted on all cores, each independent of the
//! others, so the tree does not depend on the number of cores.
//!
//! This is not only faster. linfa's own fit, walking the window's sorted index at a node, decides
//! whether a threshold lies between two values by comparing a row with the *window's* next row,
//! which may not be in the node: below the root it skips every threshold whose upper neighbour
//! lies outside the node (on a 0/1 column, unless the window's last 0 happens to be in the node,
//! the column is never split there) and puts the midpoint between values of different nodes. At a
//! root the next row is always in the node, so node by node every threshold between the node's
//! own values is weighed, as scikit-learn does; the test `every_split_is_the_best_for_its_rows`
//! checks each split against an exhaustive search.
//!
//! linfa picks a node's class by iterating a `HashMap`, so a tied node could get either class from
//! one process to the next; that class is not used here (leaves carry their share of positive
//! rows), and with two classes the impurity sums are the same in either order, so the rows need
//! no tie-breaking weights and linfa's minimum leaf and split weights are plain row counts.
//!
//! Each leaf gets the share of positive rows among the rows the fit sent to it, and the tree
//! routes a row as the fit divided them (a value at or below the split goes left; linfa's own
//! prediction sends a value equal to the split right, unlike its fit).
//!
//! One more difference: linfa's fit ends by pruning, which merges sibling leaves that predict the
//! same class. Those leaves can still differ in their share of positive rows, which is what the
//! model's probabilities are made of, so they are kept, as in scikit-learn's trees.

use crate::on_all_cores;
use crate::trees::{FlatNode, FlatTree};
use caretaker_core::events::FeatureMatrix;
use linfa::prelude::*;
use linfa_trees::{DecisionTree, DecisionTreeParams};
use ndarray::{Array1, Array2, ShapeBuilder};

/// A node waiting for its split: where it goes in the tree, its rows (ascending) and its depth.
struct Pending {
    slot: usize,
    rows: Vec<u32>,
    depth: usize,
}

/// The split linfa found among some of a node's features: the feature, the threshold and the
/// impurity decrease.
type Found = Option<(usize, f64, f64)>;

/// Nodes of at least this many rows have their features divided among the cores when their
/// depth has fewer nodes than cores to keep busy (the root, and the level below it).
const CHUNK_MIN_ROWS: usize = 20_000;

/// Grows linfa's tree for `params` (whose own `max_depth` is ignored) to `max_depth` on `x`.
pub(crate) fn linfa_tree(
    params: &DecisionTreeParams<f64, bool>,
    max_depth: Option<usize>,
    x: &FeatureMatrix,
    labels: &[bool],
) -> Result<FlatTree, String> {
    let stump = params.max_depth(Some(1));
    let min_split = params.check().map_err(|e| e.to_string())?.min_weight_split();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mut nodes = vec![FlatNode::Leaf { positive_rate: 0.0, rows: 0 }];
    let mut level = vec![Pending { slot: 0, rows: (0..x.rows as u32).collect(), depth: 0 }];
    while !level.is_empty() {
        // Work items: (node, first feature, end feature). A node is one item, or one per core
        // over consecutive features when the level alone would leave cores idle.
        let mut items = Vec::new();
        for (i, node) in level.iter().enumerate() {
            if max_depth.is_some_and(|d| node.depth >= d) || (node.rows.len() as f32) < min_split {
                continue;
            }
            let chunks =
                if level.len() < cores && node.rows.len() >= CHUNK_MIN_ROWS { cores.min(x.cols()).max(1) } else { 1 };
            let per = x.cols().div_ceil(chunks);
            items.extend((0..x.cols()).step_by(per.max(1)).map(|from| (i, from, (from + per).min(x.cols()))));
        }
        let found = on_all_cores(items.len(), |n| {
            let (i, from, to) = items[n];
            best_split(&stump, x, labels, &level[i].rows, from..to)
        });
        // Per node, the largest decrease; on a tie the earlier features win, as in linfa.
        let mut best: Vec<Found> = vec![None; level.len()];
        for (&(i, _, _), found) in items.iter().zip(found) {
            if let Some((feature, value, decrease)) = found?
                && best[i].is_none_or(|(_, _, d)| decrease > d)
            {
                best[i] = Some((feature, value, decrease));
            }
        }
        let mut next = Vec::new();
        for (node, best) in level.into_iter().zip(best) {
            // linfa's fit sends a row to the left child when its value is <= the split.
            let sides = best.map(|(feature, value, _)| {
                let column = x.column(feature);
                let (left, right): (Vec<u32>, Vec<u32>) = node.rows.iter().partition(|&&r| column[r as usize] <= value);
                (feature, value, left, right)
            });
            match sides {
                Some((feature, value, left, right)) if !left.is_empty() && !right.is_empty() => {
                    let (l, r) = (nodes.len(), nodes.len() + 1);
                    nodes.push(FlatNode::Leaf { positive_rate: 0.0, rows: 0 });
                    nodes.push(FlatNode::Leaf { positive_rate: 0.0, rows: 0 });
                    nodes[node.slot] =
                        FlatNode::Split { feature: feature as u32, value, left: l as u32, right: r as u32 };
                    next.push(Pending { slot: l, rows: left, depth: node.depth + 1 });
                    next.push(Pending { slot: r, rows: right, depth: node.depth + 1 });
                }
                _ => {
                    let positive = node.rows.iter().filter(|&&r| labels[r as usize]).count();
                    nodes[node.slot] = FlatNode::Leaf {
                        positive_rate: positive as f64 / node.rows.len().max(1) as f64,
                        rows: node.rows.len() as u64,
                    };
                }
            }
        }
        level = next;
    }
    // Prediction routes rows as the fit divided them: a value equal to the split goes left.
    Ok(FlatTree { nodes, left_inclusive: true })
}

/// The split linfa chooses for a tree of the rows `rows` alone, among the features `features`.
fn best_split(
    stump: &DecisionTreeParams<f64, bool>,
    x: &FeatureMatrix,
    labels: &[bool],
    rows: &[u32],
    features: std::ops::Range<usize>,
) -> Result<Found, String> {
    // Columns whose values in the node lie within linfa's 1e-5 of each other cannot split it
    // (linfa weighs a threshold only between values further apart), so linfa is spared them: in
    // small nodes most one-hot columns are all zeros. The others keep their order, so a tie still
    // goes to the earlier feature.
    let mut kept = Vec::with_capacity(features.len());
    let mut values = Vec::with_capacity(rows.len() * features.len());
    for j in features {
        let column = x.column(j);
        let start = values.len();
        values.extend(rows.iter().map(|&r| column[r as usize]));
        // Within 5e-6 of the first value, all are within 1e-5 of each other; the test stops at
        // the first value further away, which in a column that can split comes early.
        let first = values[start];
        if values[start..].iter().all(|&v| (v - first).abs() < 5e-6) {
            values.truncate(start);
        } else {
            kept.push(j);
        }
    }
    if kept.is_empty() {
        return Ok(None);
    }
    let records = Array2::from_shape_vec((rows.len(), kept.len()).f(), values).map_err(|e| e.to_string())?;
    // Labels as bool: linfa hashes the label of every row to count classes (with SipHash where
    // vendor/linfa-trees does not patch it), and one byte hashes faster than eight.
    let targets: Array1<bool> = rows.iter().map(|&r| labels[r as usize]).collect();
    let fitted: DecisionTree<f64, bool> = stump.fit(&Dataset::new(records, targets)).map_err(|e| e.to_string())?;
    // A root that found no split is an empty leaf with no impurity decrease; a root whose two
    // children predicted the same class was pruned to a leaf but keeps its split (linfa accepts
    // only splits that decrease the impurity by at least `min_impurity_decrease`, which is > 0).
    let (feature, value, decrease) = fitted.root_node().split();
    Ok((decrease > 0.0).then_some((kept[feature], value, decrease)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use caretaker_core::rng::SplitMix64;

    /// `n` rows of four features (two continuous, one with few distinct values, one 0/1) and a
    /// label that depends on three of them, with 10% noise.
    fn data(n: usize, seed: u64) -> (FeatureMatrix, Vec<bool>) {
        let mut rng = SplitMix64::new(seed);
        let mut u = || (rng.next() >> 11) as f64 / (1u64 << 53) as f64;
        let mut columns: Vec<Vec<f64>> = (0..4).map(|_| Vec::with_capacity(n)).collect();
        let mut labels = Vec::with_capacity(n);
        for _ in 0..n {
            let (a, b, c, d) = (u(), u() * 10.0 - 5.0, (u() * 6.0).floor(), (u() < 0.3) as u8 as f64);
            let noise = u() < 0.1;
            columns[0].push(a);
            columns[1].push(b);
            columns[2].push(c);
            columns[3].push(d);
            labels.push(((a > 0.4 && c >= 2.0) || (b < -2.0 && d == 1.0)) != noise);
        }
        let names = (0..4).map(|j| format!("f{j}")).collect();
        (FeatureMatrix { rows: n, names, values: columns.concat() }, labels)
    }

    /// The lowest weighted Gini impurity of any split of `rows` that leaves at least `leaf` weight
    /// on each side, over every feature and every threshold between two of the rows' distinct
    /// values (closer than 1e-5 counts as equal, as in linfa).
    fn best_score(x: &FeatureMatrix, labels: &[bool], rows: &[u32], leaf: f64) -> Option<f64> {
        let gini = |pos: f64, neg: f64| {
            let t = pos + neg;
            1.0 - (pos / t).powi(2) - (neg / t).powi(2)
        };
        let (mut pos_all, mut neg_all) = (0.0f64, 0.0f64);
        for &r in rows {
            if labels[r as usize] { pos_all += 1.0 } else { neg_all += 1.0 }
        }
        let mut best: Option<f64> = None;
        for j in 0..x.cols() {
            let column = x.column(j);
            let mut sorted = rows.to_vec();
            sorted.sort_by(|a, b| column[*a as usize].total_cmp(&column[*b as usize]));
            let (mut pos, mut neg) = (0.0f64, 0.0f64);
            for pair in sorted.windows(2) {
                let r = pair[0] as usize;
                if labels[r] {
                    pos += 1.0
                } else {
                    neg += 1.0
                }
                if (column[pair[1] as usize] - column[r]).abs() < 1e-5 {
                    continue;
                }
                let (left, right) = (pos + neg, pos_all + neg_all - pos - neg);
                if left < leaf || right < leaf {
                    continue;
                }
                let score = (left * gini(pos, neg) + right * gini(pos_all - pos, neg_all - neg)) / (left + right);
                best = Some(best.map_or(score, |b: f64| b.min(score)));
            }
        }
        best
    }

    #[test]
    fn every_split_is_the_best_for_its_rows() {
        // 30,000 rows: the first two depths are split by features across the cores.
        for (rows, depth, leaf) in
            [(3_000, Some(6), 1.0f32), (2_000, Some(12), 5.0), (500, None, 1.0), (30_000, Some(4), 1.0)]
        {
            let (x, labels) = data(rows, rows as u64);
            let params = DecisionTree::params().min_weight_leaf(leaf).min_weight_split(2.0 * leaf);
            let tree = linfa_tree(&params, depth, &x, &labels).unwrap();
            assert!(tree.nodes.len() > 15, "the check needs a tree with some depth");
            // Follow the rows down the tree as the fit divided them (values <= split go left).
            let mut stack = vec![(0usize, (0..rows as u32).collect::<Vec<u32>>())];
            let mut splits = 0;
            while let Some((i, node_rows)) = stack.pop() {
                match tree.nodes[i] {
                    FlatNode::Split { feature, value, left, right } => {
                        let column = x.column(feature as usize);
                        let (l, r): (Vec<u32>, Vec<u32>) =
                            node_rows.iter().partition(|&&r| column[r as usize] <= value);
                        let chosen = best_score(&x, &labels, &node_rows, leaf as f64).expect("a split node can split");
                        let theirs = {
                            let score = |side: &[u32]| {
                                let (p, n) = side.iter().fold((0.0f64, 0.0f64), |(p, n), &r| {
                                    if labels[r as usize] { (p + 1.0, n) } else { (p, n + 1.0) }
                                });
                                (
                                    p + n,
                                    if p + n > 0.0 { 1.0 - (p / (p + n)).powi(2) - (n / (p + n)).powi(2) } else { 0.0 },
                                )
                            };
                            let ((wl, gl), (wr, gr)) = (score(&l), score(&r));
                            (wl * gl + wr * gr) / (wl + wr)
                        };
                        assert!(
                            theirs - chosen < 1e-5,
                            "node {i} ({} rows): split scores {theirs}, best is {chosen}",
                            node_rows.len()
                        );
                        splits += 1;
                        stack.push((left as usize, l));
                        stack.push((right as usize, r));
                    }
                    FlatNode::Leaf { rows, .. } => assert_eq!(rows as usize, node_rows.len()),
                }
            }
            assert!(splits > 7);
        }
    }

    #[test]
    fn the_root_split_is_linfa_s_own() {
        // Above CHUNK_MIN_ROWS, so the root's features are divided among the cores.
        let (x, labels) = data(CHUNK_MIN_ROWS + 5_000, 3);
        let params = DecisionTree::params();
        let ours = linfa_tree(&params, Some(1), &x, &labels).unwrap();
        let records = Array2::from_shape_vec((x.rows, x.cols()).f(), x.values.clone()).unwrap();
        let targets: Array1<bool> = labels.iter().copied().collect();
        let theirs = params.max_depth(Some(1)).fit(&Dataset::new(records, targets)).unwrap();
        let (feature, value, _) = theirs.root_node().split();
        assert_eq!(ours.nodes[0], FlatNode::Split { feature: feature as u32, value, left: 1, right: 2 });
    }

    #[test]
    fn a_column_that_cannot_split_changes_nothing_but_the_feature_numbers() {
        let (x, labels) = data(5_000, 13);
        let tree = linfa_tree(&DecisionTree::params(), Some(7), &x, &labels).unwrap();
        let mut names = vec!["constant".to_string()];
        names.extend(x.names.iter().cloned());
        let wider = FeatureMatrix { rows: x.rows, names, values: [vec![3.0; x.rows], x.values.clone()].concat() };
        let shifted = linfa_tree(&DecisionTree::params(), Some(7), &wider, &labels).unwrap();
        let expected: Vec<FlatNode> = tree
            .nodes
            .iter()
            .map(|n| match *n {
                FlatNode::Split { feature, value, left, right } => {
                    FlatNode::Split { feature: feature + 1, value, left, right }
                }
                ref leaf => leaf.clone(),
            })
            .collect();
        assert!(expected.len() > 31);
        assert_eq!(shifted.nodes, expected);
    }

    #[test]
    fn leaves_carry_their_positive_share_and_every_row_lands_once() {
        let (x, labels) = data(3_000, 7);
        let tree = linfa_tree(&DecisionTree::params(), Some(6), &x, &labels).unwrap();
        let leaves: Vec<(f64, u64)> = tree
            .nodes
            .iter()
            .filter_map(|n| match n {
                FlatNode::Leaf { positive_rate, rows } => Some((*positive_rate, *rows)),
                _ => None,
            })
            .collect();
        assert!(leaves.iter().any(|&(r, _)| r > 0.0 && r < 1.0), "shares, not just classes: {leaves:?}");
        assert_eq!(leaves.iter().map(|&(_, n)| n).sum::<u64>(), 3_000);
    }

    #[test]
    fn the_result_does_not_depend_on_the_order_threads_finish() {
        let (x, labels) = data(4_000, 11);
        let params = DecisionTree::params();
        let first = linfa_tree(&params, Some(8), &x, &labels).unwrap();
        for _ in 0..3 {
            assert_eq!(linfa_tree(&params, Some(8), &x, &labels).unwrap(), first);
        }
        assert_eq!(on_all_cores(100, |i| i * i), (0..100).map(|i| i * i).collect::<Vec<_>>());
    }
}
