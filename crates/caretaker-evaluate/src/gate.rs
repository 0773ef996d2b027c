//! The deploy-if-improved gate.
//!
//! The gate ranks the candidates by the primary metric, takes the best, and weighs it against the
//! champion re-scored on the same holdout. It deploys only when every rule passes, and returns
//! every rule it applied with its numbers, so the report can say why. A candidate is never
//! compared with itself: the champion's numbers come from the registry's model, scored in this
//! run, never from the candidate list.

use caretaker_core::config::GatePolicy;
use caretaker_core::metrics::{ClassificationMetrics, Metric};
use caretaker_core::report::{GateOutcome, GateReport, GateRule};

/// A scored model, as the gate sees it.
#[derive(Debug, Clone, Copy)]
pub struct Contender<'a> {
    pub name: &'a str,
    pub metrics: &'a ClassificationMetrics,
}

/// The champion as the gate sees it: scored on this holdout, or not scorable.
#[derive(Debug, Clone, Copy)]
pub enum ChampionStanding<'a> {
    /// No model has been deployed yet.
    None,
    /// The champion could not be loaded or scored; it cannot defend its place.
    Unscorable {
        version: &'a str,
        reason: &'a str,
    },
    Scored {
        version: &'a str,
        metrics: &'a ClassificationMetrics,
    },
}

/// The gate's verdict: the report, and the index of the candidate to deploy.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub deploy: Option<usize>,
    pub report: GateReport,
}

/// `value` oriented so that larger is better.
fn goodness(metric: Metric, value: f64) -> f64 {
    if metric.higher_is_better() { value } else { -value }
}

/// Decides whether the best of `candidates` replaces the champion.
pub fn decide(policy: &GatePolicy, champion: ChampionStanding<'_>, candidates: &[Contender<'_>]) -> Verdict {
    let metric = policy.primary_metric;
    let best = candidates
        .iter()
        .enumerate()
        .filter_map(|(i, c)| metric.value(c.metrics).filter(|v| v.is_finite()).map(|v| (i, v)))
        .max_by(|a, b| goodness(metric, a.1).total_cmp(&goodness(metric, b.1)).then(b.0.cmp(&a.0)));
    let Some((best_index, best_value)) = best else {
        return Verdict {
            deploy: None,
            report: GateReport::skipped(format!("no candidate has a {metric} to rank by")),
        };
    };
    let best_name = candidates[best_index].name;
    let mut rules = Vec::new();
    let mut reasons = Vec::new();

    match champion {
        ChampionStanding::Scored { version, metrics } => {
            let Some(champ_value) = metric.value(metrics) else {
                return Verdict {
                    deploy: None,
                    report: GateReport::skipped(format!("champion {version} has no {metric} on this holdout")),
                };
            };
            let gain = goodness(metric, best_value) - goodness(metric, champ_value);
            let passed = gain >= policy.min_improvement;
            rules.push(GateRule {
                rule: "min_improvement".into(),
                passed,
                measured: Some(gain),
                threshold: Some(policy.min_improvement),
                detail: format!(
                    "{best_name} {metric} {best_value:.4} vs champion {version} {champ_value:.4}: {} {:.4} (needs +{:.4})",
                    if gain >= 0.0 { "gain" } else { "loss" },
                    gain.abs(),
                    policy.min_improvement
                ),
            });
            reasons.push(if passed {
                format!(
                    "{best_name} beats champion {version} on {metric} by {gain:+.4} (>= +{:.4} required)",
                    policy.min_improvement
                )
            } else {
                format!(
                    "{best_name} does not beat champion {version} on {metric} by enough: {gain:+.4} < +{:.4}",
                    policy.min_improvement
                )
            });
        }
        ChampionStanding::None | ChampionStanding::Unscorable { .. } => {
            let passed = goodness(metric, best_value) >= goodness(metric, policy.first_run_floor);
            rules.push(GateRule {
                rule: "first_run_floor".into(),
                passed,
                measured: Some(best_value),
                threshold: Some(policy.first_run_floor),
                detail: format!("{best_name} {metric} {best_value:.4} against the floor {:.4}", policy.first_run_floor),
            });
            let why = match champion {
                ChampionStanding::Unscorable { version, reason } => {
                    format!("champion {version} cannot be scored ({reason}), so the first-run policy applies")
                }
                _ => "no champion yet, so the first-run policy applies".to_string(),
            };
            reasons.push(if passed {
                format!("{why}: {best_name} {metric} {best_value:.4} reaches the floor {:.4}", policy.first_run_floor)
            } else {
                format!("{why}: {best_name} {metric} {best_value:.4} is below the floor {:.4}", policy.first_run_floor)
            });
        }
    }

    let deploy = rules.iter().all(|r| r.passed);
    Verdict {
        deploy: deploy.then_some(best_index),
        report: GateReport {
            decision: if deploy { GateOutcome::Deployed } else { GateOutcome::KeptChampion },
            candidate: Some(best_name.to_string()),
            deployed_version: None,
            reasons,
            rules,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use caretaker_core::metrics::ConfusionMatrix;

    fn scored(f1: f64) -> ClassificationMetrics {
        ClassificationMetrics {
            rows: 100,
            accuracy: f1,
            precision: f1,
            recall: f1,
            f1,
            roc_auc: Some(f1),
            pr_auc: Some(f1),
            log_loss: 1.0 - f1,
            brier: 1.0 - f1,
            threshold: 0.5,
            confusion: ConfusionMatrix::default(),
        }
    }

    fn policy() -> GatePolicy {
        GatePolicy { primary_metric: Metric::F1, min_improvement: 0.01, first_run_floor: 0.5 }
    }

    #[test]
    fn deploys_the_best_candidate_when_it_beats_the_champion_by_the_margin() {
        let (a, b, champ) = (scored(0.70), scored(0.75), scored(0.735));
        let cands = [Contender { name: "a", metrics: &a }, Contender { name: "b", metrics: &b }];
        let v = decide(&policy(), ChampionStanding::Scored { version: "v0001", metrics: &champ }, &cands);
        assert_eq!(v.deploy, Some(1));
        assert_eq!(v.report.decision, GateOutcome::Deployed);
        assert_eq!(v.report.candidate.as_deref(), Some("b"));
        assert!((v.report.rules[0].measured.unwrap() - 0.015).abs() < 1e-12);
    }

    #[test]
    fn keeps_the_champion_when_the_gain_is_below_the_margin() {
        let (b, champ) = (scored(0.745), scored(0.740));
        let v = decide(
            &policy(),
            ChampionStanding::Scored { version: "v0001", metrics: &champ },
            &[Contender { name: "b", metrics: &b }],
        );
        assert_eq!(v.deploy, None);
        assert_eq!(v.report.decision, GateOutcome::KeptChampion);
        assert!(v.report.reasons[0].contains("+0.0050 < +0.0100"), "{:?}", v.report.reasons);
    }

    #[test]
    fn a_worse_candidate_never_deploys_even_with_zero_margin() {
        let p = GatePolicy { min_improvement: 0.0, ..policy() };
        let (b, champ) = (scored(0.70), scored(0.71));
        let v = decide(
            &p,
            ChampionStanding::Scored { version: "v0001", metrics: &champ },
            &[Contender { name: "b", metrics: &b }],
        );
        assert_eq!(v.deploy, None);
    }

    #[test]
    fn first_run_deploys_only_above_the_floor() {
        let (good, bad) = (scored(0.6), scored(0.4));
        let v = decide(&policy(), ChampionStanding::None, &[Contender { name: "g", metrics: &good }]);
        assert_eq!(v.deploy, Some(0));
        let v = decide(&policy(), ChampionStanding::None, &[Contender { name: "b", metrics: &bad }]);
        assert_eq!(v.deploy, None);
        assert!(v.report.reasons[0].contains("below the floor"), "{:?}", v.report.reasons);
    }

    #[test]
    fn an_unscorable_champion_falls_back_to_the_floor_and_says_so() {
        let good = scored(0.6);
        let v = decide(
            &policy(),
            ChampionStanding::Unscorable { version: "v0003", reason: "model.msgpack hash mismatch" },
            &[Contender { name: "g", metrics: &good }],
        );
        assert_eq!(v.deploy, Some(0));
        assert!(v.report.reasons[0].contains("v0003 cannot be scored"), "{:?}", v.report.reasons);
    }

    #[test]
    fn a_loss_metric_ranks_lower_as_better() {
        let p = GatePolicy { primary_metric: Metric::LogLoss, min_improvement: 0.01, first_run_floor: 0.7 };
        let (a, b, champ) = (scored(0.8), scored(0.7), scored(0.75)); // log loss .2, .3, .25
        let cands = [Contender { name: "a", metrics: &a }, Contender { name: "b", metrics: &b }];
        let v = decide(&p, ChampionStanding::Scored { version: "v0001", metrics: &champ }, &cands);
        assert_eq!(v.deploy, Some(0));
    }

    #[test]
    fn no_scored_candidate_skips() {
        let v = decide(&policy(), ChampionStanding::None, &[]);
        assert_eq!(v.report.decision, GateOutcome::Skipped);
    }
}
