//! The deploy-if-improved gate.
//!
//! The gate ranks the candidates by the primary metric, takes the best, and weighs it against the
//! champion re-scored on the same holdout. It deploys only when every rule passes, and returns
//! every rule it applied with its numbers, so the report can say why. A candidate is never
//! compared with itself: the champion's numbers come from the registry's model, scored in this
//! run, never from the candidate list.

use crate::metrics::classification_metrics;
use crate::slices::Slice;
use caretaker_core::config::{BootstrapSpec, GatePolicy};
use caretaker_core::metrics::{ClassificationMetrics, Metric};
use caretaker_core::report::{GateOutcome, GateReport, GateRule, SliceReport};

/// Why the first-run policy applied when there is no champion; `models reset` replaces it with
/// its own reason.
pub const FIRST_RUN_REASON: &str = "no champion yet, so the first-run policy applies";

/// A scored model, as the gate sees it: its metrics, and its predictions on the holdout (for the
/// paired bootstrap).
#[derive(Debug, Clone, Copy)]
pub struct Contender<'a> {
    pub name: &'a str,
    pub metrics: &'a ClassificationMetrics,
    /// Probability of the positive class for every holdout row, in holdout order.
    pub probabilities: &'a [f64],
    pub predict_micros_per_row: Option<f64>,
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
        scored: Contender<'a>,
    },
}

/// The gate's verdict: the report, and the index of the candidate to deploy.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// The candidate the gate weighed (best by the primary metric), deployed or not.
    pub best: Option<usize>,
    pub deploy: Option<usize>,
    pub report: GateReport,
}

/// `value` oriented so that larger is better.
pub fn goodness(metric: Metric, value: f64) -> f64 {
    if metric.higher_is_better() { value } else { -value }
}

fn rule(rule: &str, passed: bool, measured: Option<f64>, threshold: Option<f64>, detail: String) -> GateRule {
    GateRule { rule: rule.to_string(), passed, measured, threshold, detail }
}

/// Decides whether the best of `candidates` replaces the champion. `labels` are the holdout's,
/// `slices` its slices (see [`crate::slices`]): the best candidate and the champion are scored on
/// each, for the report and for `slice_guardrail`.
pub fn decide(
    policy: &GatePolicy,
    labels: &[bool],
    slices: &[Slice],
    champion: ChampionStanding<'_>,
    candidates: &[Contender<'_>],
) -> Verdict {
    let metric = policy.primary_metric;
    let best = candidates
        .iter()
        .enumerate()
        .filter_map(|(i, c)| metric.value(c.metrics).filter(|v| v.is_finite()).map(|v| (i, v)))
        .max_by(|a, b| goodness(metric, a.1).total_cmp(&goodness(metric, b.1)).then(b.0.cmp(&a.0)));
    let Some((best_index, best_value)) = best else {
        return Verdict {
            best: None,
            deploy: None,
            report: GateReport::skipped(format!("no candidate has a {metric} to rank by")),
        };
    };
    let candidate = candidates[best_index];
    let best_name = candidate.name;
    let scored_champion = match champion {
        ChampionStanding::Scored { scored, .. } => Some(scored),
        _ => None,
    };
    // Worst gain first.
    let slice_table =
        crate::slices::compare(metric, labels, slices, policy.slices.min_rows, &candidate, scored_champion.as_ref());
    let mut rules = Vec::new();
    let mut reasons = Vec::new();

    match champion {
        ChampionStanding::Scored { version, scored } => {
            let Some(champ_value) = metric.value(scored.metrics) else {
                return Verdict {
                    best: Some(best_index),
                    deploy: None,
                    report: GateReport::skipped(format!("champion {version} has no {metric} on this holdout")),
                };
            };
            let gain = goodness(metric, best_value) - goodness(metric, champ_value);
            let passed = gain >= policy.min_improvement;
            rules.push(rule(
                "min_improvement",
                passed,
                Some(gain),
                Some(policy.min_improvement),
                format!(
                    "{best_name} {metric} {best_value:.4} vs champion {version} {champ_value:.4}: {gain:+.4} (needs +{:.4})",
                    policy.min_improvement
                ),
            ));
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
            for (&guarded, &limit) in &policy.guardrails {
                let (Some(c), Some(h)) = (guarded.value(candidate.metrics), guarded.value(scored.metrics)) else {
                    continue;
                };
                let drop = goodness(guarded, h) - goodness(guarded, c);
                let passed = drop <= limit + 1e-12;
                rules.push(rule(
                    &format!("guardrail:{guarded}"),
                    passed,
                    Some(drop),
                    Some(limit),
                    format!("{guarded} {c:.4} vs champion {h:.4}: a drop of {drop:+.4} (at most {limit:.4} allowed)"),
                ));
                if !passed {
                    let way = if guarded.higher_is_better() { "lower" } else { "raise" };
                    reasons.push(format!(
                        "{best_name} would {way} {guarded} by {drop:.4} against champion {version} (at most {limit:.4} allowed)"
                    ));
                }
            }
            if let Some(limit) = policy.slice_guardrail {
                let guarded = slice_table.iter().filter(|s| s.guarded).count();
                match slice_table.iter().find(|s| s.guarded) {
                    None => rules.push(rule(
                        "slice_guardrail",
                        true,
                        None,
                        Some(limit),
                        format!(
                            "no slice of the holdout has {} rows and a {metric} for both models",
                            policy.slices.min_rows
                        ),
                    )),
                    Some(worst) => {
                        let drop = -worst.gain.expect("a guarded slice has a gain");
                        let passed = drop <= limit + 1e-12;
                        let (c, h) = (worst.candidate.unwrap_or(f64::NAN), worst.champion.unwrap_or(f64::NAN));
                        rules.push(rule(
                            "slice_guardrail",
                            passed,
                            Some(drop),
                            Some(limit),
                            format!(
                                "worst of {guarded} slices with at least {} rows: {}={} ({} rows), {metric} {c:.4} vs champion {h:.4}: a drop of {drop:+.4} (at most {limit:.4} allowed)",
                                policy.slices.min_rows, worst.feature, worst.value, worst.rows
                            ),
                        ));
                        if !passed {
                            reasons.push(format!(
                                "{best_name} would lose {drop:.4} of {metric} on {}={} ({} holdout rows) against champion {version} (at most {limit:.4} allowed in a slice)",
                                worst.feature, worst.value, worst.rows
                            ));
                        }
                    }
                }
            }
            if let Some(spec) = &policy.bootstrap {
                let (low, high) = bootstrap_interval(metric, labels, &candidate, &scored, spec);
                let passed = low > 0.0;
                rules.push(rule(
                    "bootstrap",
                    passed,
                    Some(low),
                    Some(0.0),
                    format!(
                        "{:.0}% interval of the {metric} gain over {} paired resamples: [{low:+.4}, {high:+.4}]",
                        spec.confidence * 100.0,
                        spec.resamples
                    ),
                ));
                if !passed {
                    reasons.push(format!(
                        "the {metric} gain of {best_name} may be noise: its {:.0}% interval [{low:+.4}, {high:+.4}] does not lie above zero",
                        spec.confidence * 100.0
                    ));
                }
            }
        }
        ChampionStanding::None | ChampionStanding::Unscorable { .. } => {
            let passed = goodness(metric, best_value) >= goodness(metric, policy.first_run_floor);
            rules.push(rule(
                "first_run_floor",
                passed,
                Some(best_value),
                Some(policy.first_run_floor),
                format!("{best_name} {metric} {best_value:.4} against the floor {:.4}", policy.first_run_floor),
            ));
            let why = match champion {
                ChampionStanding::Unscorable { version, reason } => {
                    format!("champion {version} cannot be scored ({reason}), so the first-run policy applies")
                }
                _ => FIRST_RUN_REASON.to_string(),
            };
            reasons.push(if passed {
                format!("{why}: {best_name} {metric} {best_value:.4} reaches the floor {:.4}", policy.first_run_floor)
            } else {
                format!("{why}: {best_name} {metric} {best_value:.4} is below the floor {:.4}", policy.first_run_floor)
            });
        }
    }

    if let Some(budget) = policy.max_predict_micros_per_row {
        let measured = candidate.predict_micros_per_row;
        let passed = measured.is_some_and(|m| m <= budget);
        rules.push(rule(
            "latency_budget",
            passed,
            measured,
            Some(budget),
            match measured {
                Some(m) => format!("{best_name} predicts in {m:.2} µs per row (budget {budget:.2})"),
                None => format!("{best_name} has no measured prediction time (budget {budget:.2})"),
            },
        ));
        if !passed {
            reasons.push(format!("{best_name} is over the latency budget of {budget:.2} µs per row"));
        }
    }

    let deploy = rules.iter().all(|r| r.passed);
    if deploy && reasons.len() > 1 {
        reasons.truncate(1);
    }
    let slices = (!slices.is_empty()).then_some(SliceReport {
        metric,
        min_rows: policy.slices.min_rows,
        guardrail: policy.slice_guardrail,
        slices: slice_table,
    });
    Verdict {
        best: Some(best_index),
        deploy: deploy.then_some(best_index),
        report: GateReport {
            decision: if deploy { GateOutcome::Deployed } else { GateOutcome::KeptChampion },
            candidate: Some(best_name.to_string()),
            deployed_version: None,
            reasons,
            rules,
            maintenance: None,
            slices,
        },
    }
}

/// The paired bootstrap: resample holdout rows with replacement (the same rows for both models),
/// measure the gain of the candidate over the champion on each resample, and return the two-sided
/// interval at the configured confidence. Seeded: the same inputs give the same interval.
pub fn bootstrap_interval(
    metric: Metric,
    labels: &[bool],
    candidate: &Contender<'_>,
    champion: &Contender<'_>,
    spec: &BootstrapSpec,
) -> (f64, f64) {
    let n = labels.len();
    if n == 0 {
        return (f64::NEG_INFINITY, f64::INFINITY);
    }
    let mut rng = caretaker_core::rng::SplitMix64::new(spec.seed);
    let mut gains = Vec::with_capacity(spec.resamples as usize);
    let (mut y, mut pc, mut ph) = (vec![false; n], vec![0.0; n], vec![0.0; n]);
    for _ in 0..spec.resamples {
        for k in 0..n {
            let i = rng.below(n);
            y[k] = labels[i];
            pc[k] = candidate.probabilities[i];
            ph[k] = champion.probabilities[i];
        }
        let c = metric.value(&classification_metrics(&y, &pc, candidate.metrics.threshold));
        let h = metric.value(&classification_metrics(&y, &ph, champion.metrics.threshold));
        if let (Some(c), Some(h)) = (c, h) {
            gains.push(goodness(metric, c) - goodness(metric, h));
        }
    }
    if gains.is_empty() {
        return (f64::NEG_INFINITY, f64::INFINITY);
    }
    gains.sort_by(f64::total_cmp);
    let tail = (1.0 - spec.confidence) / 2.0;
    let at = |q: f64| gains[((q * (gains.len() - 1) as f64).round() as usize).min(gains.len() - 1)];
    (at(tail), at(1.0 - tail))
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
            ece: Some(0.02),
            threshold: 0.5,
            confusion: ConfusionMatrix::default(),
        }
    }

    fn policy() -> GatePolicy {
        GatePolicy {
            primary_metric: Metric::F1,
            min_improvement: 0.01,
            first_run_floor: 0.5,
            guardrails: Default::default(),
            bootstrap: None,
            max_predict_micros_per_row: None,
            slices: caretaker_core::config::SliceSpec {
                categorical: None,
                numeric: Vec::new(),
                top_levels: 5,
                bins: 4,
                min_rows: 100,
            },
            slice_guardrail: None,
        }
    }

    fn c<'a>(name: &'a str, m: &'a ClassificationMetrics) -> Contender<'a> {
        Contender { name, metrics: m, probabilities: &[], predict_micros_per_row: Some(1.0) }
    }

    fn champ<'a>(m: &'a ClassificationMetrics) -> ChampionStanding<'a> {
        ChampionStanding::Scored { version: "v0001", scored: c("champion", m) }
    }

    #[test]
    fn deploys_the_best_candidate_when_it_beats_the_champion_by_the_margin() {
        let (a, b, h) = (scored(0.70), scored(0.75), scored(0.735));
        let v = decide(&policy(), &[], &[], champ(&h), &[c("a", &a), c("b", &b)]);
        assert_eq!(v.deploy, Some(1));
        assert_eq!(v.report.decision, GateOutcome::Deployed);
        assert_eq!(v.report.candidate.as_deref(), Some("b"));
        assert!((v.report.rules[0].measured.unwrap() - 0.015).abs() < 1e-12);
    }

    #[test]
    fn keeps_the_champion_when_the_gain_is_below_the_margin() {
        let (b, h) = (scored(0.745), scored(0.740));
        let v = decide(&policy(), &[], &[], champ(&h), &[c("b", &b)]);
        assert_eq!((v.deploy, v.best), (None, Some(0)));
        assert_eq!(v.report.decision, GateOutcome::KeptChampion);
        assert!(v.report.reasons[0].contains("+0.0050 < +0.0100"), "{:?}", v.report.reasons);
    }

    #[test]
    fn a_worse_candidate_never_deploys_even_with_zero_margin() {
        let p = GatePolicy { min_improvement: 0.0, ..policy() };
        let (b, h) = (scored(0.70), scored(0.71));
        assert_eq!(decide(&p, &[], &[], champ(&h), &[c("b", &b)]).deploy, None);
    }

    #[test]
    fn a_guardrail_stops_a_candidate_that_gains_f1_by_dropping_recall() {
        let mut p = policy();
        p.guardrails.insert(Metric::Recall, 0.02);
        let h = scored(0.70);
        let mut b = scored(0.75);
        b.recall = 0.65; // a drop of 0.05 against the champion's 0.70
        let v = decide(&p, &[], &[], champ(&h), &[c("b", &b)]);
        assert_eq!(v.deploy, None);
        let guard = v.report.rules.iter().find(|r| r.rule == "guardrail:recall").unwrap();
        assert!(!guard.passed && (guard.measured.unwrap() - 0.05).abs() < 1e-12);
        assert!(v.report.reasons.iter().any(|r| r.contains("would lower recall by 0.0500")), "{:?}", v.report.reasons);
        b.recall = 0.69;
        assert_eq!(decide(&p, &[], &[], champ(&h), &[c("b", &b)]).deploy, Some(0));
    }

    #[test]
    fn a_calibration_guardrail_stops_a_candidate_whose_probabilities_got_worse() {
        let mut p = policy();
        p.guardrails.insert(Metric::Ece, 0.02);
        let h = scored(0.70);
        let mut b = scored(0.75);
        b.ece = Some(0.07); // 0.05 further from the observed rates than the champion's 0.02
        let v = decide(&p, &[], &[], champ(&h), &[c("b", &b)]);
        assert_eq!(v.deploy, None);
        let guard = v.report.rules.iter().find(|r| r.rule == "guardrail:ece").unwrap();
        assert!(!guard.passed && (guard.measured.unwrap() - 0.05).abs() < 1e-12);
        assert!(v.report.reasons.iter().any(|r| r.contains("would raise ece by 0.0500")), "{:?}", v.report.reasons);
        b.ece = Some(0.03);
        assert_eq!(decide(&p, &[], &[], champ(&h), &[c("b", &b)]).deploy, Some(0));
    }

    #[test]
    fn first_run_deploys_only_above_the_floor() {
        let (good, bad) = (scored(0.6), scored(0.4));
        assert_eq!(decide(&policy(), &[], &[], ChampionStanding::None, &[c("g", &good)]).deploy, Some(0));
        let v = decide(&policy(), &[], &[], ChampionStanding::None, &[c("b", &bad)]);
        assert_eq!(v.deploy, None);
        assert!(v.report.reasons[0].contains("below the floor"), "{:?}", v.report.reasons);
    }

    #[test]
    fn an_unscorable_champion_falls_back_to_the_floor_and_says_so() {
        let good = scored(0.6);
        let v = decide(
            &policy(),
            &[],
            &[],
            ChampionStanding::Unscorable { version: "v0003", reason: "model.msgpack hash mismatch" },
            &[c("g", &good)],
        );
        assert_eq!(v.deploy, Some(0));
        assert!(v.report.reasons[0].contains("v0003 cannot be scored"), "{:?}", v.report.reasons);
    }

    #[test]
    fn a_loss_metric_ranks_lower_as_better() {
        let p = GatePolicy { primary_metric: Metric::LogLoss, first_run_floor: 0.7, ..policy() };
        let (a, b, h) = (scored(0.8), scored(0.7), scored(0.75)); // log loss .2, .3, .25
        assert_eq!(decide(&p, &[], &[], champ(&h), &[c("a", &a), c("b", &b)]).deploy, Some(0));
    }

    #[test]
    fn the_latency_budget_is_a_rule() {
        let p = GatePolicy { max_predict_micros_per_row: Some(2.0), ..policy() };
        let good = scored(0.6);
        let slow = Contender { predict_micros_per_row: Some(3.5), ..c("slow", &good) };
        let v = decide(&p, &[], &[], ChampionStanding::None, &[slow]);
        assert_eq!(v.deploy, None);
        assert!(v.report.rules.iter().any(|r| r.rule == "latency_budget" && !r.passed));
    }

    #[test]
    fn no_scored_candidate_skips() {
        let v = decide(&policy(), &[], &[], ChampionStanding::None, &[]);
        assert_eq!(v.report.decision, GateOutcome::Skipped);
    }

    /// Holdout predictions of two models: the candidate is right on `better` more rows.
    fn paired(n: usize, better: usize) -> (Vec<bool>, Vec<f64>, Vec<f64>) {
        let labels: Vec<bool> = (0..n).map(|i| i % 2 == 0).collect();
        let champion: Vec<f64> =
            (0..n).map(|i| if i % 4 < 3 { labels[i] as u8 as f64 } else { 1.0 - labels[i] as u8 as f64 }).collect();
        let mut candidate = champion.clone();
        let mut fixed = 0;
        for i in 0..n {
            if fixed < better && (candidate[i] >= 0.5) != labels[i] {
                candidate[i] = labels[i] as u8 as f64;
                fixed += 1;
            }
        }
        (labels, candidate, champion)
    }

    #[test]
    fn the_bootstrap_passes_a_clear_gain_and_stops_noise() {
        let spec = BootstrapSpec { resamples: 300, confidence: 0.95, seed: 7 };
        let p = GatePolicy { bootstrap: Some(spec), min_improvement: 0.0, ..policy() };
        for (better, expect_deploy) in [(200, true), (2, false)] {
            let (labels, pc, ph) = paired(2000, better);
            let (mc, mh) = (classification_metrics(&labels, &pc, 0.5), classification_metrics(&labels, &ph, 0.5));
            let cand = Contender { name: "b", metrics: &mc, probabilities: &pc, predict_micros_per_row: None };
            let champ = Contender { name: "h", metrics: &mh, probabilities: &ph, predict_micros_per_row: None };
            let v = decide(&p, &labels, &[], ChampionStanding::Scored { version: "v0001", scored: champ }, &[cand]);
            assert_eq!(v.deploy.is_some(), expect_deploy, "better by {better} rows: {:?}", v.report.rules);
            // Seeded: the same inputs give the same interval.
            assert_eq!(
                bootstrap_interval(Metric::F1, &labels, &cand, &champ, &spec),
                bootstrap_interval(Metric::F1, &labels, &cand, &champ, &spec)
            );
        }
    }

    /// 4,000 holdout rows in two services: the champion is right on 80% of each; the candidate
    /// on 95% of service "a" (3,000 rows) and on 80 - `loss` percent of service "b" (1,000 rows).
    fn sliced(loss: usize) -> (Vec<bool>, Vec<f64>, Vec<f64>, Vec<Slice>) {
        let n = 4000;
        let labels: Vec<bool> = (0..n).map(|i| (i / 2) % 2 == 0).collect();
        let answer = |i: usize, percent_right: usize| if (i % 100 < percent_right) == labels[i] { 0.9 } else { 0.1 };
        let champion: Vec<f64> = (0..n).map(|i| answer(i, 80)).collect();
        let candidate: Vec<f64> = (0..n).map(|i| if i < 3000 { answer(i, 95) } else { answer(i, 80 - loss) }).collect();
        let slices = vec![
            Slice { feature: "service".into(), value: "a".into(), key: "a".into(), rows: (0..3000).collect() },
            Slice { feature: "service".into(), value: "b".into(), key: "b".into(), rows: (3000..4000).collect() },
            Slice { feature: "service".into(), value: "tiny".into(), key: "tiny".into(), rows: (3900..3950).collect() },
        ];
        (labels, candidate, champion, slices)
    }

    #[test]
    fn a_candidate_that_gains_overall_but_loses_a_slice_is_not_deployed() {
        let p = GatePolicy { slice_guardrail: Some(0.05), primary_metric: Metric::Accuracy, ..policy() };
        // Candidate: 0.95 on a, 0.70 on b (a planted drop of 0.10 on b); overall 0.8875 against 0.80.
        let (labels, pc, ph, slices) = sliced(10);
        let (mc, mh) = (classification_metrics(&labels, &pc, 0.5), classification_metrics(&labels, &ph, 0.5));
        assert!((mc.accuracy - 0.8875).abs() < 1e-12 && (mh.accuracy - 0.8).abs() < 1e-12);
        let cand = Contender { name: "b", metrics: &mc, probabilities: &pc, predict_micros_per_row: None };
        let champ = Contender { name: "h", metrics: &mh, probabilities: &ph, predict_micros_per_row: None };
        let v = decide(&p, &labels, &slices, ChampionStanding::Scored { version: "v0001", scored: champ }, &[cand]);
        assert_eq!(v.deploy, None, "{:?}", v.report.rules);
        let rule = v.report.rules.iter().find(|r| r.rule == "slice_guardrail").unwrap();
        assert!(!rule.passed && (rule.measured.unwrap() - 0.10).abs() < 1e-9, "{rule:?}");
        assert!(rule.detail.contains("service=b (1000 rows)"), "{}", rule.detail);
        let reasons = v.report.reasons.join("; ");
        assert!(reasons.contains("would lose 0.1000 of accuracy on service=b (1000 holdout rows)"), "{reasons}");
        // The report lists every slice, worst first; the 50-row slice is shown, not guarded.
        let table = v.report.slices.as_ref().unwrap();
        assert_eq!(table.metric, Metric::Accuracy);
        let order: Vec<(&str, bool)> = table.slices.iter().map(|s| (s.value.as_str(), s.guarded)).collect();
        assert_eq!(order[2], ("a", true));
        assert!(order.contains(&("tiny", false)) && order.contains(&("b", true)), "{order:?}");
        let a = &table.slices[2];
        assert!((a.candidate.unwrap() - 0.95).abs() < 1e-12 && (a.champion.unwrap() - 0.8).abs() < 1e-12);

        // A drop within the limit deploys; without the guardrail the slices are still reported.
        let (labels, pc, ph, slices) = sliced(3);
        let (mc, mh) = (classification_metrics(&labels, &pc, 0.5), classification_metrics(&labels, &ph, 0.5));
        let cand = Contender { name: "b", metrics: &mc, probabilities: &pc, predict_micros_per_row: None };
        let champ = Contender { name: "h", metrics: &mh, probabilities: &ph, predict_micros_per_row: None };
        let standing = ChampionStanding::Scored { version: "v0001", scored: champ };
        assert_eq!(decide(&p, &labels, &slices, standing, &[cand]).deploy, Some(0));
        let (labels, pc, ph, slices) = sliced(10);
        let (mc, mh) = (classification_metrics(&labels, &pc, 0.5), classification_metrics(&labels, &ph, 0.5));
        let cand = Contender { name: "b", metrics: &mc, probabilities: &pc, predict_micros_per_row: None };
        let champ = Contender { name: "h", metrics: &mh, probabilities: &ph, predict_micros_per_row: None };
        let standing = ChampionStanding::Scored { version: "v0001", scored: champ };
        let v =
            decide(&GatePolicy { primary_metric: Metric::Accuracy, ..policy() }, &labels, &slices, standing, &[cand]);
        assert_eq!(v.deploy, Some(0));
        assert!(v.report.slices.is_some() && !v.report.rules.iter().any(|r| r.rule == "slice_guardrail"));
    }
}
