//! Metric and result types of a binary classifier, as they appear in reports and model cards.
//!
//! The computation lives in `caretaker-evaluate`; these are the names and shapes everyone shares.
//! Definitions follow scikit-learn for binary labels: the positive class is `true` (1), and a
//! ratio whose denominator is zero (precision with no predicted positive, say) is 0.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The four cells of a binary confusion matrix.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfusionMatrix {
    pub tp: u64,
    pub fp: u64,
    pub tn: u64,
    #[serde(rename = "fn")]
    pub fn_: u64,
}

impl ConfusionMatrix {
    pub fn total(&self) -> u64 {
        self.tp + self.fp + self.tn + self.fn_
    }
}

/// Everything measured of one model on one holdout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassificationMetrics {
    pub rows: u64,
    pub accuracy: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Area under the ROC curve; absent when the holdout holds one class only.
    pub roc_auc: Option<f64>,
    /// Average precision (scikit-learn's `average_precision_score`); absent without positives.
    pub pr_auc: Option<f64>,
    pub log_loss: f64,
    pub brier: f64,
    /// Expected calibration error: the row-weighted gap between mean prediction and observed rate
    /// over ten equal-width probability bins; absent without rows, and in records written before
    /// it was measured.
    #[serde(default)]
    pub ece: Option<f64>,
    /// The probability at or above which a row is predicted positive.
    pub threshold: f64,
    pub confusion: ConfusionMatrix,
}

/// A metric the gate can rank by or guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    Accuracy,
    Precision,
    Recall,
    F1,
    RocAuc,
    PrAuc,
    LogLoss,
    Brier,
    Ece,
}

impl Metric {
    /// Every metric, in the order reports show them: the thresholded ones first, then ranking,
    /// then the probabilities' quality.
    pub const ALL: [Metric; 9] = [
        Metric::F1,
        Metric::Precision,
        Metric::Recall,
        Metric::Accuracy,
        Metric::RocAuc,
        Metric::PrAuc,
        Metric::LogLoss,
        Metric::Brier,
        Metric::Ece,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Metric::Accuracy => "accuracy",
            Metric::Precision => "precision",
            Metric::Recall => "recall",
            Metric::F1 => "f1",
            Metric::RocAuc => "roc_auc",
            Metric::PrAuc => "pr_auc",
            Metric::LogLoss => "log_loss",
            Metric::Brier => "brier",
            Metric::Ece => "ece",
        }
    }

    pub fn from_name(name: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Log loss, the Brier score and the calibration error are losses: lower is better.
    pub fn higher_is_better(self) -> bool {
        !matches!(self, Metric::LogLoss | Metric::Brier | Metric::Ece)
    }

    pub fn value(self, m: &ClassificationMetrics) -> Option<f64> {
        match self {
            Metric::Accuracy => Some(m.accuracy),
            Metric::Precision => Some(m.precision),
            Metric::Recall => Some(m.recall),
            Metric::F1 => Some(m.f1),
            Metric::RocAuc => m.roc_auc,
            Metric::PrAuc => m.pr_auc,
            Metric::LogLoss => Some(m.log_loss),
            Metric::Brier => Some(m.brier),
            Metric::Ece => m.ece,
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
