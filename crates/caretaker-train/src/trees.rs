//! Fitted trees in one flat form, with leaf probabilities.
//!
//! The decision tree and every forest tree are grown straight into a [`FlatTree`]
//! (`crate::hist_tree`). A row goes left when its value is at or below the split, as the fit
//! divided the rows, and each leaf carries the share of positive training rows that reach it, as
//! scikit-learn's `predict_proba` does. Split values are encoded values, not bins: prediction
//! reads the encoded matrix and nothing else.

use caretaker_core::events::FeatureMatrix;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FlatNode {
    Split {
        feature: u32,
        value: f64,
        left: u32,
        right: u32,
    },
    /// A classification tree's leaf: the share of positive training rows that reached it.
    Leaf {
        positive_rate: f64,
        rows: u64,
    },
    /// A boosted tree's leaf: its step in log-odds (`crate::boosting`).
    Step {
        value: f64,
        rows: u64,
    },
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
                FlatNode::Leaf { .. } | FlatNode::Step { .. } => return i,
                FlatNode::Split { feature, value, left, right } => {
                    let v = x.values[feature as usize * x.rows + row];
                    let go_left = if self.left_inclusive { v <= value } else { v < value };
                    i = if go_left { left } else { right } as usize;
                }
            }
        }
    }

    /// Adds each row's leaf value (its positive rate, or its step) to `out`.
    pub fn predict_into(&self, x: &FeatureMatrix, out: &mut [f64]) {
        for (row, o) in out.iter_mut().enumerate() {
            *o += self.nodes[self.leaf_of(x, row)].leaf_value();
        }
    }

    pub fn leaves(&self) -> usize {
        self.nodes.iter().filter(|n| !matches!(n, FlatNode::Split { .. })).count()
    }
}

impl FlatNode {
    /// What a leaf adds to a row's score: its positive rate or its step (0 for a split).
    pub fn leaf_value(&self) -> f64 {
        match *self {
            FlatNode::Leaf { positive_rate, .. } => positive_rate,
            FlatNode::Step { value, .. } => value,
            FlatNode::Split { .. } => 0.0,
        }
    }
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
}
