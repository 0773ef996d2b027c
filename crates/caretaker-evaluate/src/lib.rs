//! Evaluation, the deploy-if-improved gate and the model health score.
//!
//! [`metrics`] turns labels and predicted probabilities into the numbers of a report, with
//! scikit-learn's definitions; [`gate`] decides from those numbers whether the best candidate
//! replaces the champion, and writes down every rule it applied; [`health`] scores the recent runs
//! of a pipeline 0 to 10 and shows every component's points. All are pure functions of their
//! inputs: no files, no clock, so the gate's behaviour is tested exhaustively on plain numbers,
//! and the nightly pipeline can score its health without the maintenance task kinds.
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
pub mod health;
pub mod metrics;
pub mod slices;
