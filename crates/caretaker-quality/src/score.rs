//! The 0-1 quality score.
//!
//! ```text
//! score = 0.3 * completeness + 0.3 * validity + 0.2 * uniqueness + 0.2 * stability
//!   completeness = 1 - rows with a null in a required column / rows
//!   validity     = 1 - rows breaking a value rule (range, not finite, category not allowed,
//!                      label not 0/1, timestamp in the future) / rows
//!   uniqueness   = 1 - rows whose id was seen before / rows
//!   stability    = 1 - features in drift alarm / features measured
//! ```
//! The weights are those of the reference pipeline (`../shared/peers`), on a 0-1 scale instead of
//! 0-100. A failed integrity or schema check, or no rows at all, scores 0: nothing in such data
//! can be trusted. Other checks (outliers, freshness, label balance) are reported with their
//! numbers but do not move the score.

/// The four dimensions, each a 0-1 share of good rows or stable features.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dimensions {
    pub completeness: f64,
    pub validity: f64,
    pub uniqueness: f64,
    pub stability: f64,
}

pub fn quality_score(d: &Dimensions) -> f64 {
    0.3 * d.completeness + 0.3 * d.validity + 0.2 * d.uniqueness + 0.2 * d.stability
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_data_scores_one_and_the_weights_apply() {
        let perfect = Dimensions { completeness: 1.0, validity: 1.0, uniqueness: 1.0, stability: 1.0 };
        assert_eq!(quality_score(&perfect), 1.0);
        let half_complete = Dimensions { completeness: 0.5, ..perfect };
        assert!((quality_score(&half_complete) - 0.85).abs() < 1e-12);
        let drifting = Dimensions { stability: 0.5, ..perfect };
        assert!((quality_score(&drifting) - 0.9).abs() < 1e-12);
    }
}
