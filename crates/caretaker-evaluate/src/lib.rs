//! Evaluation and the deploy-if-improved gate.
//!
//! [`metrics`] turns labels and predicted probabilities into the numbers of a report, with
//! scikit-learn's definitions; [`gate`] decides from those numbers whether the best candidate
//! replaces the champion, and writes down every rule it applied. Both are pure functions of their
//! inputs: no files, no clock, so the gate's behaviour is tested exhaustively on plain numbers.
//!
//! ```
//! use caretaker_evaluate::metrics::classification_metrics;
//! let m = classification_metrics(&[true, false, true, false], &[0.9, 0.2, 0.4, 0.6], 0.5);
//! assert_eq!(m.accuracy, 0.5);
//! assert_eq!(m.roc_auc, Some(0.75));
//! ```

pub mod calibration;
pub mod curves;
pub mod estimate;
pub mod gate;
pub mod metrics;
pub mod slices;
