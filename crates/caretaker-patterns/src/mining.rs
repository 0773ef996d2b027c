//! Mining class association rules from labelled events.
//!
//! Numeric features are cut at label-driven points (Fayyad and Irani's entropy split with its MDL
//! stopping rule, best split first, at most `max_bins` bins), each cut snapped to a round number
//! so that tomorrow's window yields the same `payload_bytes > 1000000` as today's and the rule
//! keeps its id. Items are `feature <= cut`, `feature > cut` and `feature = level`. Itemsets of
//! up to `max_conditions` items on distinct features are grown level by level (Apriori), pruned
//! by their support with the predicted label, which can only shrink as an itemset grows. A rule
//! `itemset -> label` is kept when its confidence and lift reach the configured minimums and its
//! confidence beats that of every rule made of a subset of its conditions (and the base rate) by
//! at least [`MIN_IMPROVEMENT`] and by two standard errors of a proportion: a condition that adds
//! nothing, or only sampling noise, is not a new pattern.

use crate::matching::RowSet;
use crate::pattern::Condition;
use caretaker_core::config::DiscoverySpec;
use caretaker_core::events::LabelledEvents;
use foldhash::{HashMap, HashMapExt, HashSet};
use std::collections::BTreeMap;

/// How much more confident a rule must be than any rule made of a subset of its conditions.
pub const MIN_IMPROVEMENT: f64 = 0.02;

/// A rule found in the events.
#[derive(Debug, Clone, PartialEq)]
pub struct MinedRule {
    pub conditions: Vec<Condition>,
    pub predicts: bool,
    /// Share of rows matching the conditions and carrying the predicted label.
    pub support: f64,
    /// Share of the matching rows that carry the predicted label.
    pub confidence: f64,
    /// Confidence over the label's base rate.
    pub lift: f64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mined {
    pub rules: Vec<MinedRule>,
    /// Cut points per numeric feature, after snapping.
    pub cut_points: BTreeMap<String, Vec<f64>>,
}

struct Item {
    feature: usize,
    condition: Condition,
    rows: RowSet,
}

/// Mines rules predicting either label from `events`.
pub fn mine(events: &LabelledEvents, spec: &DiscoverySpec) -> Mined {
    let n = events.len();
    let mut mined = Mined::default();
    if n == 0 {
        return mined;
    }
    // Each feature's cut points sort its values: the features are cut on all cores.
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).clamp(1, 8);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut all_cuts: Vec<(usize, Vec<f64>)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let j = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(col) = events.numeric.get(j) else { break };
                        done.push((j, cut_points(&col.values, &events.labels, spec.max_bins)));
                    }
                    done
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().expect("cutting does not panic")).collect()
    });
    all_cuts.sort_by_key(|(j, _)| *j);
    let mut items = Vec::new();
    let mut feature = 0;
    for (col, (_, cuts)) in events.numeric.iter().zip(all_cuts) {
        for &cut in &cuts {
            let value = format_number(cut);
            for (op, le) in [("<=", true), (">", false)] {
                items.push(Item {
                    feature,
                    condition: Condition { feature: col.name.clone(), op: op.into(), value: value.clone() },
                    rows: RowSet::from_fn(n, |i| if le { col.values[i] <= cut } else { col.values[i] > cut }),
                });
            }
        }
        mined.cut_points.insert(col.name.clone(), cuts);
        feature += 1;
    }
    for col in &events.categorical {
        for (code, level) in col.levels.iter().enumerate() {
            items.push(Item {
                feature,
                condition: Condition { feature: col.name.clone(), op: "=".into(), value: level.clone() },
                rows: RowSet::from_fn(n, |i| col.codes[i] as usize == code),
            });
        }
        feature += 1;
    }
    let positive = RowSet::from_fn(n, |i| events.labels[i]);
    let negative = positive.not();
    // The two labels' rules are independent: mined side by side, kept in label order.
    let (for_positive, for_negative) = std::thread::scope(|scope| {
        let other = scope.spawn(|| rules_for_label(&items, &negative, false, n, spec));
        let first = rules_for_label(&items, &positive, true, n, spec);
        (first, other.join().expect("mining does not panic"))
    });
    mined.rules.extend(for_positive);
    mined.rules.extend(for_negative);
    mined
}

/// The rules predicting one label.
fn rules_for_label(
    items: &[Item],
    label_rows: &RowSet,
    predicts: bool,
    n: usize,
    spec: &DiscoverySpec,
) -> Vec<MinedRule> {
    let label_count = label_rows.count();
    if label_count == 0 {
        return Vec::new();
    }
    let base_rate = label_count as f64 / n as f64;
    // No rule can beat 1 / base rate in lift: skip a label that cannot reach min_lift.
    if 1.0 / base_rate < spec.min_lift {
        return Vec::new();
    }
    let min_count = ((spec.min_support * n as f64).ceil() as u64).max(1);
    // Itemsets (sorted item indices) with enough rows of this label: that count and the count of
    // rows matching them. No itemset keeps its rows: on a million rows a row set is 125 KB, and a
    // level can hold thousands of itemsets, so both counts are taken when the itemset is made,
    // intersecting its rows word by word.
    let mut level: Vec<(Vec<usize>, u64, u64)> = items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| {
            let hits = item.rows.and_count(label_rows);
            (hits >= min_count).then(|| (vec![i], hits, item.rows.count()))
        })
        .collect();
    // For each itemset seen, the best confidence of it and all its subsets.
    let mut best: HashMap<Vec<usize>, f64> = HashMap::new();
    let mut rules = Vec::new();
    let mut size = 1;
    while !level.is_empty() {
        for (set, hits, matching) in &level {
            let matching = *matching;
            let conf = *hits as f64 / matching as f64;
            // The best confidence among the proper subsets, the empty one (the base rate) included.
            let best_subset = subsets(set).filter_map(|s| best.get(&s).copied()).fold(base_rate, f64::max);
            best.insert(set.clone(), conf.max(best_subset));
            let lift = conf / base_rate;
            let noise = 2.0 * (best_subset * (1.0 - best_subset) / matching as f64).sqrt();
            let improves = conf - best_subset >= MIN_IMPROVEMENT.max(noise);
            if conf >= spec.min_confidence && lift >= spec.min_lift && improves {
                rules.push(MinedRule {
                    conditions: set.iter().map(|&i| items[i].condition.clone()).collect(),
                    predicts,
                    support: *hits as f64 / n as f64,
                    confidence: conf,
                    lift,
                });
            }
        }
        if size == spec.max_conditions {
            break;
        }
        size += 1;
        level = next_level(items, label_rows, &level, min_count);
    }
    rules
}

/// The non-empty subsets one item shorter (enough: `best` carries the best confidence of their
/// own subsets).
fn subsets(set: &[usize]) -> impl Iterator<Item = Vec<usize>> + '_ {
    (0..set.len())
        .filter(move |_| set.len() > 1)
        .map(move |skip| set.iter().enumerate().filter(|(i, _)| *i != skip).map(|(_, v)| *v).collect())
}

/// Apriori join: itemsets sharing all but their last item, on distinct features, whose every
/// one-shorter subset is frequent, with their rows of the label.
fn next_level(
    items: &[Item],
    label_rows: &RowSet,
    level: &[(Vec<usize>, u64, u64)],
    min_count: u64,
) -> Vec<(Vec<usize>, u64, u64)> {
    let frequent: HashSet<&[usize]> = level.iter().map(|(s, _, _)| s.as_slice()).collect();
    let mut next = Vec::new();
    for (a, (set_a, _, _)) in level.iter().enumerate() {
        let prefix = &set_a[..set_a.len() - 1];
        // The rows of `set_a`, built once for every candidate that extends it.
        let mut rows_a: Option<RowSet> = None;
        for (set_b, _, _) in &level[a + 1..] {
            if &set_b[..set_b.len() - 1] != prefix {
                break; // `level` is sorted, so sets sharing a prefix are adjacent
            }
            let last = *set_b.last().expect("non-empty");
            if set_a.iter().any(|&i| items[i].feature == items[last].feature) {
                continue;
            }
            let mut candidate = set_a.clone();
            candidate.push(last);
            let all_frequent = (0..candidate.len()).all(|skip| {
                let sub: Vec<usize> =
                    candidate.iter().enumerate().filter(|(i, _)| *i != skip).map(|(_, v)| *v).collect();
                frequent.contains(sub.as_slice())
            });
            if !all_frequent {
                continue;
            }
            let rows_a = rows_a.get_or_insert_with(|| {
                let mut rows = items[set_a[0]].rows.clone();
                for &i in &set_a[1..] {
                    rows.and_assign(&items[i].rows);
                }
                rows
            });
            let (matching, hits) = rows_a.and_counts(&items[last].rows, label_rows);
            if hits >= min_count {
                next.push((candidate, hits, matching));
            }
        }
    }
    next.sort_by(|a, b| a.0.cmp(&b.0));
    next
}

/// Label-driven cut points of one numeric feature: the entropy split of Fayyad and Irani, best
/// gain first, each accepted by the MDL criterion, at most `max_bins - 1` of them, snapped to
/// round numbers. Non-finite values take no part.
pub fn cut_points(values: &[f64], labels: &[bool], max_bins: usize) -> Vec<f64> {
    let mut pairs: Vec<(f64, bool)> =
        values.iter().zip(labels).filter(|(v, _)| v.is_finite()).map(|(v, l)| (*v, *l)).collect();
    if pairs.len() < 2 {
        return Vec::new();
    }
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Positives among the first i rows.
    let mut prefix = Vec::with_capacity(pairs.len() + 1);
    prefix.push(0u64);
    for (_, l) in &pairs {
        prefix.push(prefix.last().copied().unwrap_or(0) + *l as u64);
    }
    let mut cuts = Vec::new();
    let mut segments = vec![(0usize, pairs.len())];
    while cuts.len() + 1 < max_bins {
        // The segment whose best accepted split gains most.
        let best = segments
            .iter()
            .enumerate()
            .filter_map(|(k, &(lo, hi))| best_split(&pairs, &prefix, lo, hi).map(|(at, gain)| (k, at, gain)))
            .max_by(|a, b| a.2.total_cmp(&b.2));
        let Some((k, at, _)) = best else { break };
        let (lo, hi) = segments.swap_remove(k);
        cuts.push((pairs[at - 1].0 + pairs[at].0) / 2.0);
        segments.push((lo, at));
        segments.push((at, hi));
    }
    let mut snapped: Vec<f64> = cuts.into_iter().map(round_number).collect();
    snapped.sort_by(f64::total_cmp);
    snapped.dedup();
    // A cut outside the data's range makes an empty or a whole bin.
    let (min, max) = (pairs[0].0, pairs[pairs.len() - 1].0);
    snapped.retain(|c| *c >= min && *c < max);
    snapped
}

fn entropy(pos: u64, n: u64) -> f64 {
    if n == 0 || pos == 0 || pos == n {
        return 0.0;
    }
    let p = pos as f64 / n as f64;
    -(p * p.log2() + (1.0 - p) * (1.0 - p).log2())
}

/// The split of `pairs[lo..hi]` between distinct values with the highest information gain, if the
/// MDL criterion accepts it: `(first row of the right part, gain)`.
fn best_split(pairs: &[(f64, bool)], prefix: &[u64], lo: usize, hi: usize) -> Option<(usize, f64)> {
    let n = (hi - lo) as u64;
    let pos = prefix[hi] - prefix[lo];
    if n < 2 || pos == 0 || pos == n {
        return None;
    }
    let whole = entropy(pos, n);
    let mut best: Option<(usize, f64)> = None;
    for at in lo + 1..hi {
        if pairs[at - 1].0 == pairs[at].0 {
            continue;
        }
        let (n1, p1) = ((at - lo) as u64, prefix[at] - prefix[lo]);
        let (n2, p2) = (n - n1, pos - p1);
        let split = (n1 as f64 * entropy(p1, n1) + n2 as f64 * entropy(p2, n2)) / n as f64;
        let gain = whole - split;
        if best.is_none_or(|(_, g)| gain > g) {
            best = Some((at, gain));
        }
    }
    let (at, gain) = best?;
    let (n1, p1) = ((at - lo) as u64, prefix[at] - prefix[lo]);
    let (n2, p2) = (n - n1, pos - p1);
    let classes = |p: u64, n: u64| if p == 0 || p == n { 1.0 } else { 2.0 };
    let (k, k1, k2) = (classes(pos, n), classes(p1, n1), classes(p2, n2));
    let delta = (3f64.powf(k) - 2.0).log2() - (k * whole - k1 * entropy(p1, n1) - k2 * entropy(p2, n2));
    let threshold = (((n - 1) as f64).log2() + delta) / n as f64;
    (gain > threshold).then_some((at, gain))
}

/// The nearest round number: 1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 times a power of ten.
pub fn round_number(x: f64) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    const MANTISSAS: [f64; 11] = [1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0];
    let exponent = x.abs().log10().floor() as i32;
    let scaled = x.abs() / 10f64.powi(exponent);
    let mantissa =
        MANTISSAS.iter().copied().min_by(|a, b| (a - scaled).abs().total_cmp(&(b - scaled).abs())).unwrap_or(1.0);
    // Through text, so that 1.2e5 is exactly 120000 and not 120000.00000000001.
    let rounded: f64 = format!("{mantissa}e{exponent}").parse().unwrap_or(x);
    rounded.copysign(x)
}

/// A cut point as a condition's value: the shortest text that reads back as the same number.
pub fn format_number(x: f64) -> String {
    format!("{x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_numbers_are_stable_and_exact() {
        assert_eq!(round_number(80.5), 80.0);
        assert_eq!(round_number(0.198), 0.2);
        assert_eq!(round_number(1_050_000.0), 1_000_000.0);
        assert_eq!(round_number(2.5), 2.5);
        assert_eq!(round_number(118_000.0), 120_000.0);
        assert_eq!(round_number(-3.1), -3.0);
        assert_eq!(format_number(round_number(1_234_567.0)), "1200000");
        assert_eq!(format_number(0.2), "0.2");
    }

    #[test]
    fn the_entropy_cut_finds_the_planted_threshold_and_ignores_noise() {
        // Label true exactly above 80; a feature with no relation to the label gets no cut.
        let values: Vec<f64> = (0..2000).map(|i| (i % 160) as f64).collect();
        let labels: Vec<bool> = values.iter().map(|v| *v > 80.0).collect();
        assert_eq!(cut_points(&values, &labels, 8), vec![80.0]);
        let noise: Vec<bool> = (0..2000).map(|i| (i * 7919) % 13 < 3).collect();
        assert_eq!(cut_points(&values, &noise, 8), Vec::<f64>::new());
    }

    fn planted() -> LabelledEvents {
        crate::fixtures::planted_events(4000, |i| i as i64)
    }

    fn spec() -> DiscoverySpec {
        crate::fixtures::policy(std::path::Path::new("."), 0.01).discovery
    }

    #[test]
    fn the_planted_rule_is_mined_with_its_support_and_confidence() {
        let events = planted();
        let mined = mine(&events, &spec());
        let text: Vec<String> = mined
            .rules
            .iter()
            .map(|r| {
                let mut c: Vec<String> =
                    r.conditions.iter().map(|c| format!("{} {} {}", c.feature, c.op, c.value)).collect();
                c.sort();
                format!("{} -> {}", c.join(" AND "), r.predicts)
            })
            .collect();
        assert!(text.contains(&"svc = b AND x > 50 -> true".to_string()), "{text:#?}");
        let rule = &mined.rules[text.iter().position(|t| t == "svc = b AND x > 50 -> true").unwrap()];
        // Recount by hand.
        let matching: Vec<usize> = (0..events.len())
            .filter(|&i| events.categorical[0].codes[i] == 1 && events.numeric[0].values[i] > 50.0)
            .collect();
        let hits = matching.iter().filter(|&&i| events.labels[i]).count();
        assert!((rule.support - hits as f64 / events.len() as f64).abs() < 1e-12);
        assert!((rule.confidence - hits as f64 / matching.len() as f64).abs() < 1e-12);
        assert!(rule.confidence > 0.85);
        // Neither condition alone explains the label well enough, and no third condition adds anything.
        assert!(text.iter().all(|t| t.matches(" AND ").count() < 2), "{text:#?}");
        assert!(mined.cut_points["x"].contains(&50.0), "{:?}", mined.cut_points);
    }

    #[test]
    fn thresholds_in_the_config_are_respected() {
        let events = planted();
        let strict = DiscoverySpec { min_confidence: 0.95, ..spec() };
        assert!(mine(&events, &strict).rules.iter().all(|r| r.confidence >= 0.95));
        let rare = DiscoverySpec { min_support: 0.5, ..spec() };
        assert!(mine(&events, &rare).rules.is_empty());
        let single = DiscoverySpec { max_conditions: 1, ..spec() };
        assert!(mine(&events, &single).rules.iter().all(|r| r.conditions.len() == 1));
    }
}
