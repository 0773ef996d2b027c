//! Fitted trees in one flat form, with leaf probabilities.
//!
//! linfa's `DecisionTree` predicts a class, and smartcore's `RandomForestClassifier` a majority
//! vote; neither gives probabilities. The decision tree is grown straight into a [`FlatTree`]
//! (`crate::grow`); each smartcore tree is copied into one after fitting. A row goes left when
//! its value is at or below the split, as both fits divided the rows, and each leaf carries the
//! share of positive training rows that reach it, as scikit-learn's `predict_proba` does.

use caretaker_core::events::FeatureMatrix;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FlatNode {
    Split { feature: u32, value: f64, left: u32, right: u32 },
    Leaf { positive_rate: f64, rows: u64 },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlatTree {
    pub nodes: Vec<FlatNode>,
    /// Whether a value equal to the split goes left. Every tree fitted now says yes; decision
    /// trees saved before they were grown here (copied from linfa's, which sends it right when it
    /// predicts) say no, and keep scoring as they did.
    pub left_inclusive: bool,
}

impl FlatTree {
    /// The leaf that row `row` of `x` reaches.
    fn leaf_of(&self, x: &FeatureMatrix, row: usize) -> usize {
        let mut i = 0;
        loop {
            match self.nodes[i] {
                FlatNode::Leaf { .. } => return i,
                FlatNode::Split { feature, value, left, right } => {
                    let v = x.values[feature as usize * x.rows + row];
                    let go_left = if self.left_inclusive { v <= value } else { v < value };
                    i = if go_left { left } else { right } as usize;
                }
            }
        }
    }

    /// Sets each leaf's positive rate from the training rows that reach it. A leaf no training
    /// row reaches keeps the class the fitting library gave it (rate 0 or 1).
    pub fn calibrate(&mut self, x: &FeatureMatrix, labels: &[bool]) {
        self.calibrate_rows(x, labels, |_| true);
    }

    /// As [`FlatTree::calibrate`], from the rows `in_bag` selects: a forest's tree is calibrated on
    /// its own bootstrap sample, as scikit-learn's forests are, not on rows it never saw.
    pub fn calibrate_rows(&mut self, x: &FeatureMatrix, labels: &[bool], in_bag: impl Fn(usize) -> bool) {
        let mut counts = vec![(0u64, 0u64); self.nodes.len()];
        for (row, &label) in labels.iter().enumerate().filter(|(row, _)| in_bag(*row)) {
            let leaf = self.leaf_of(x, row);
            counts[leaf].0 += 1;
            counts[leaf].1 += label as u64;
        }
        for (node, (n, pos)) in self.nodes.iter_mut().zip(counts) {
            if let FlatNode::Leaf { positive_rate, rows } = node
                && n > 0
            {
                *positive_rate = pos as f64 / n as f64;
                *rows = n;
            }
        }
    }

    pub fn predict_into(&self, x: &FeatureMatrix, out: &mut [f64]) {
        for (row, o) in out.iter_mut().enumerate() {
            if let FlatNode::Leaf { positive_rate, .. } = self.nodes[self.leaf_of(x, row)] {
                *o += positive_rate;
            }
        }
    }

    pub fn leaves(&self) -> usize {
        self.nodes.iter().filter(|n| matches!(n, FlatNode::Leaf { .. })).count()
    }
}

/// The parts of smartcore's fitted forest that scoring needs, read through its serde form: the
/// forest keeps its trees private.
#[derive(Deserialize)]
struct SmartcoreForest {
    trees: Option<Vec<SmartcoreTree>>,
    /// Per tree, whether each training row was in its bootstrap sample (`keep_samples`).
    samples: Option<Vec<Vec<bool>>>,
}

#[derive(Deserialize)]
struct SmartcoreTree {
    nodes: Vec<SmartcoreNode>,
}

#[derive(Deserialize)]
struct SmartcoreNode {
    output: usize,
    split_feature: usize,
    split_value: Option<f64>,
    true_child: Option<usize>,
    false_child: Option<usize>,
}

/// A forest's trees and, when the forest kept them, each tree's in-bag rows.
pub type ForestParts = (Vec<FlatTree>, Option<Vec<Vec<bool>>>);

/// Copies the trees of a fitted smartcore forest (serialised by serde with field names), with the
/// in-bag rows of each tree when the forest kept them. The labels were 0 and 1, so a leaf's
/// `output` class index is its label.
pub fn from_smartcore_forest<T: Serialize>(forest: &T) -> Result<ForestParts, String> {
    let bytes = rmp_serde::to_vec_named(forest).map_err(|e| e.to_string())?;
    let parts: SmartcoreForest =
        rmp_serde::from_slice(&bytes).map_err(|e| format!("unexpected smartcore forest layout: {e}"))?;
    let samples = parts.samples;
    let trees = parts
        .trees
        .unwrap_or_default()
        .into_iter()
        .map(|t| FlatTree {
            nodes: t
                .nodes
                .into_iter()
                .map(|n| match (n.true_child, n.false_child) {
                    (Some(left), Some(right)) => FlatNode::Split {
                        feature: n.split_feature as u32,
                        value: n.split_value.unwrap_or(f64::NAN),
                        left: left as u32,
                        right: right as u32,
                    },
                    _ => FlatNode::Leaf { positive_rate: n.output as f64, rows: 0 },
                })
                .collect(),
            left_inclusive: true,
        })
        .collect();
    Ok((trees, samples))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_respects_each_library_side_for_ties() {
        let nodes = vec![
            FlatNode::Split { feature: 0, value: 1.0, left: 1, right: 2 },
            FlatNode::Leaf { positive_rate: 0.0, rows: 0 },
            FlatNode::Leaf { positive_rate: 1.0, rows: 0 },
        ];
        let x = FeatureMatrix { rows: 3, names: vec!["x".into()], values: vec![0.5, 1.0, 1.5] };
        let mut linfa = vec![0.0; 3];
        FlatTree { nodes: nodes.clone(), left_inclusive: false }.predict_into(&x, &mut linfa);
        assert_eq!(linfa, [0.0, 1.0, 1.0]);
        let mut smart = vec![0.0; 3];
        FlatTree { nodes, left_inclusive: true }.predict_into(&x, &mut smart);
        assert_eq!(smart, [0.0, 0.0, 1.0]);
    }

    #[test]
    fn calibration_gives_leaves_their_positive_share() {
        let mut tree = FlatTree {
            nodes: vec![
                FlatNode::Split { feature: 0, value: 1.0, left: 1, right: 2 },
                FlatNode::Leaf { positive_rate: 0.0, rows: 0 },
                FlatNode::Leaf { positive_rate: 1.0, rows: 0 },
            ],
            left_inclusive: false,
        };
        let x = FeatureMatrix { rows: 4, names: vec!["x".into()], values: vec![0.0, 0.5, 2.0, 3.0] };
        tree.calibrate(&x, &[false, true, true, true]);
        let mut p = vec![0.0; 4];
        tree.predict_into(&x, &mut p);
        assert_eq!(p, [0.5, 0.5, 1.0, 1.0]);
    }
}
