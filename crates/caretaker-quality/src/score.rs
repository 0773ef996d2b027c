//! The 0-1 quality score.
//!
//! ```text
//! score = (0.3 * completeness + 0.3 * validity + 0.2 * uniqueness) / 0.8
//!   completeness = 1 - rows with a null in a required column / rows
//!   validity     = 1 - rows with a value out of range or not finite / rows
//!   uniqueness   = 1 - rows whose id was seen before / rows
//! ```
//! The weights are those of the reference pipeline; its fourth dimension, stability (the share of
//! features that do not drift, weight 0.2), joins when the drift checks land. A failed schema
//! contract, or no rows at all, scores 0: nothing in such data can be trusted.

use crate::rules::RowRules;

/// The three row-level dimensions, each a 0-1 share of good rows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dimensions {
    pub completeness: f64,
    pub validity: f64,
    pub uniqueness: f64,
}

impl Dimensions {
    pub(crate) fn measure(found: &RowRules, rows: u64) -> Dimensions {
        if rows == 0 {
            return Dimensions { completeness: 0.0, validity: 0.0, uniqueness: 0.0 };
        }
        let share = |broken: usize| 1.0 - broken as f64 / rows as f64;
        Dimensions {
            completeness: share(found.rows_with_any(&["null"])),
            validity: share(found.rows_with_any(&["range", "not_finite"])),
            uniqueness: share(found.rows_with_any(&["duplicate_id"])),
        }
    }
}

pub fn quality_score(d: &Dimensions) -> f64 {
    (0.3 * d.completeness + 0.3 * d.validity + 0.2 * d.uniqueness) / 0.8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_data_scores_one_and_the_weights_apply() {
        let perfect = Dimensions { completeness: 1.0, validity: 1.0, uniqueness: 1.0 };
        assert_eq!(quality_score(&perfect), 1.0);
        let half_complete = Dimensions { completeness: 0.5, ..perfect };
        assert!((quality_score(&half_complete) - (0.15 + 0.3 + 0.2) / 0.8).abs() < 1e-12);
    }
}
